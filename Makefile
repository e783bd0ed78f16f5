# coro: one plain Makefile. `make help` lists the targets.

PREFIX  ?= /usr/local
VERSION := 0.1.0
ABI     := 0
CC      ?= cc
WERROR  ?= -Werror
OPT     ?= -O2

# The default compiler (cc) builds into build/ and libcoro.a here; any other
# (CC=clang) into build/<its name>/, so that one compiler's objects never
# pass for the other's.
CC_NAME  := $(notdir $(firstword $(CC)))
ifeq ($(CC_NAME),cc)
TOP      := build
UC_LIBA  := libcoro.a
UC_LIBSO := libcoro.so
else
TOP      := build/$(CC_NAME)
UC_LIBA  := $(TOP)/libcoro.a
UC_LIBSO := $(TOP)/libcoro.so
endif
DEMO_DIR := $(TOP)/demo

# SWITCH=fast builds the fast switch (coro's own; see switch.h) into
# $(TOP)/fast/, beside the default swapcontext build in $(TOP)/.
SWITCH  ?= ucontext
ifeq ($(SWITCH),fast)
B          := $(TOP)/fast
SWITCH_DEF := -DCORO_SWITCH_FAST
LIBA       := $(TOP)/fast/libcoro.a
LIBSO      := $(TOP)/fast/libcoro.so
else ifeq ($(SWITCH),ucontext)
B          := $(TOP)
SWITCH_DEF :=
LIBA       := $(UC_LIBA)
LIBSO      := $(UC_LIBSO)
else
$(error SWITCH must be ucontext (the default) or fast)
endif

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wundef \
           -Werror=implicit-function-declaration \
           -Werror=incompatible-pointer-types -Werror=int-conversion
CSTD    := -std=c11 -D_GNU_SOURCE
CFLAGS_LIB := $(CSTD) $(WARN) $(WERROR) $(OPT) -g -fPIC -fvisibility=hidden \
              $(SWITCH_DEF)
CFLAGS_APP := $(CSTD) $(WARN) $(WERROR) $(OPT) -g $(SWITCH_DEF)
LDLIBS  := -lm -lpthread

SRCS    := coro.c chores.c sched.c join.c group.c scope.c timer.c poll.c env.c \
           executor.c io.c net.c sync.c debug.c trace.c overflow.c \
           inspect.c local.c loops.c watchdog.c loop.c future.c xchan.c \
           run_loops.c uring.c
HDRS    := coro.h internal.h switch.h
TESTS   := test/main.c test/helpers.c test/test_coro.c test/test_sched.c \
           test/test_join.c test/test_group.c test/test_scope.c \
           test/test_timer.c test/test_poll.c test/test_executor.c \
           test/test_io.c test/test_net.c test/test_http.c test/test_sync.c \
           test/test_debug.c test/test_trace.c \
           test/test_overflow.c test/test_demos.c test/test_waits.c \
           test/test_inspect.c test/test_local.c \
           test/test_loops.c test/test_watchdog.c test/test_loop.c \
           test/test_future.c test/test_xchan.c test/test_run_loops.c \
           test/test_chores.c test/test_uring.c
# The hooks library (hook.c, README "Hooks"): its own test runner, where
# the hooks are linked in, beside run_tests, where they are not.
HOOK_TESTS := test/hook_main.c test/helpers.c test/test_hook.c \
              demo/local_server.c demo/http.c
HOOK_DIR   := $(B)/hook
BENCHES := handoff spawn eager sleepers blocking chan timers http_server \
           bare_epoll \
           xloop xloop_pthread
DEMOS   := a_three_tasks b_five_jobs c_user_lookups d_tasks_gather_blocking \
           e_http_requests f_queue_workers
SLEEPERS ?= 100000 1000000

# CORO_IO=io_uring (or epoll, auto) on make's command line reaches every
# suite and demo the targets run: `make check CORO_IO=io_uring`.
export CORO_IO

ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=all
TSAN_FLAGS := -fsanitize=thread

# What the demos and tests need beyond a compiler, each as a check and the
# Debian package that satisfies it.
NEEDS := "pkg-config --version:pkg-config" \
         "pkg-config --exists libcurl:libcurl4-openssl-dev" \
         "pkg-config --exists check:check" \
         "curl --version:curl" \
         "openssl version:openssl"

.PHONY: all check asan tsan valgrind bench bench-peers install uninstall \
        clean help check-symbols deps demos demo soak soak-asan \
        fuzz fuzz-build fuzz-deps gdb-check

all: $(LIBA) $(LIBSO) $(HOOK_DIR)/libcoro_hook.so $(B)/libcoro_hook.a

help:
	@echo "make            build libcoro.a, libcoro.so and the hooks (libcoro_hook)"
	@echo "make demo       build and run the five scenario demos, then a table"
	@echo "make demos      build the demos without running them"
	@echo "make check      build and run the Check suites (installs Check if root)"
	@echo "                 (CORO_IO=io_uring: every loop on io_uring; see coro.h)"
	@echo "make asan       run the suites under AddressSanitizer + UBSan"
	@echo "make tsan       run the suites under ThreadSanitizer"
	@echo "make valgrind   run the suites under valgrind memcheck"
	@echo "make gdb-check  gdb/coro-gdb.py against a live process and a core"
	@echo "make bench      build and run the benchmarks (prints figures)"
	@echo "make bench-peers  both switch builds beside Go and asyncio: one table"
	@echo "make soak       churn for SOAK_SECONDS (300); RSS and fds must come back"
	@echo "SWITCH=fast     with any target: the fast switch build (no signal mask)"
	@echo "CC=clang        with any target: built with clang, in build/clang/"
	@echo "make install PREFIX=/usr/local  (and gdb's script: GDB_AUTOLOAD)"

# ---- the library, in three flavours with their own object directories ----

$(B)/%.o: %.c $(HDRS) | $(B)
	$(CC) $(CFLAGS_LIB) -c $< -o $@
$(B)/asan/%.o: %.c $(HDRS) | $(B)/asan
	$(CC) $(CFLAGS_LIB) $(ASAN_FLAGS) -c $< -o $@
$(B)/tsan/%.o: %.c $(HDRS) | $(B)/tsan
	$(CC) $(CFLAGS_LIB) $(TSAN_FLAGS) -c $< -o $@

$(sort $(TOP) $(B) $(B)/asan $(B)/tsan $(B)/bench $(DEMO_DIR) $(HOOK_DIR)):
	mkdir -p $@

$(LIBA): $(SRCS:%.c=$(B)/%.o)
	rm -f $@ && ar rcs $@ $^
$(LIBSO): $(SRCS:%.c=$(B)/%.o)
	$(CC) -shared -Wl,-soname,libcoro.so.$(ABI) -o $@ $^ $(LDLIBS)
$(B)/asan/libcoro.a: $(SRCS:%.c=$(B)/asan/%.o)
	rm -f $@ && ar rcs $@ $^
$(B)/tsan/libcoro.a: $(SRCS:%.c=$(B)/tsan/%.o)
	rm -f $@ && ar rcs $@ $^

# libcoro_hook.so needs libcoro.so.$(ABI): both in $(HOOK_DIR), where it
# finds it ($$ORIGIN), as it will in the directory make install fills.
$(HOOK_DIR)/libcoro.so.$(ABI): $(LIBSO) | $(HOOK_DIR)
	cp $< $@ && ln -sf libcoro.so.$(ABI) $(HOOK_DIR)/libcoro.so
$(HOOK_DIR)/libcoro_hook.so: $(B)/hook.o $(HOOK_DIR)/libcoro.so.$(ABI)
	$(CC) -shared -Wl,-soname,libcoro_hook.so.$(ABI) -o $@ $(B)/hook.o \
	    -L$(HOOK_DIR) -lcoro -Wl,-rpath,'$$ORIGIN' -ldl -lm
$(B)/libcoro_hook.a: $(B)/hook.o
	rm -f $@ && ar rcs $@ $^

# The demos link the swapcontext build whatever SWITCH says.
ifeq ($(SWITCH),fast)
$(TOP)/%.o: %.c $(HDRS) | $(TOP)
	$(CC) $(filter-out $(SWITCH_DEF),$(CFLAGS_LIB)) -c $< -o $@
$(UC_LIBA): $(SRCS:%.c=$(TOP)/%.o)
	rm -f $@ && ar rcs $@ $^
endif

# Everything the shared library exports must be ours.
check-symbols: $(LIBSO)
	@bad=$$(nm -D --defined-only $(LIBSO) | awk '{print $$3}' | \
	        grep -v -E '^(coro_|await_)' || true); \
	if [ -n "$$bad" ]; then echo "exported by mistake: $$bad"; exit 1; fi
	@echo "check-symbols: ok"

# ---- what the demos and tests need ----

# Installs what is missing with apt-get when run as root; otherwise says
# what to install.
deps:
	@missing=""; for need in $(NEEDS); do \
	    $${need%%:*} >/dev/null 2>&1 || missing="$$missing $${need##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        echo "installing$$missing with apt-get"; \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	            apt-get install -y -qq $$missing >/dev/null || exit 1; \
	    else \
	        echo "missing; install with: apt-get install$$missing"; exit 1; \
	    fi; \
	fi

# ---- tests (Check) ----

CHECK_FLAGS = $$(pkg-config --cflags check libcurl)
CHECK_LIBS  = $$(pkg-config --libs check libcurl)
# The HTTP tests exercise the demo's HTTP code.
TEST_DEMO_SRCS := demo/http.c demo/curl_reactor.c demo/timeline.c

# The acceptance tests (test_demos.c) run the demos: every test build
# needs them built, and is told where they are.
TEST_FLAGS = $(CFLAGS_APP) -I. -Idemo -DCORO_TEST_DEMO_DIR='"$(DEMO_DIR)"' \
             $(CHECK_FLAGS)
$(B)/run_tests: $(TESTS) $(TEST_DEMO_SRCS) test/helpers.h $(LIBA) | $(B) deps demos
	$(CC) $(TEST_FLAGS) $(TESTS) $(TEST_DEMO_SRCS) \
	    $(LIBA) $(CHECK_LIBS) $(LDLIBS) -o $@
$(B)/asan/run_tests: $(TESTS) $(TEST_DEMO_SRCS) test/helpers.h $(B)/asan/libcoro.a | deps demos
	$(CC) $(TEST_FLAGS) $(ASAN_FLAGS) $(TESTS) \
	    $(TEST_DEMO_SRCS) $(B)/asan/libcoro.a $(CHECK_LIBS) $(LDLIBS) -o $@
$(B)/tsan/run_tests: $(TESTS) $(TEST_DEMO_SRCS) test/helpers.h $(B)/tsan/libcoro.a | deps demos
	$(CC) $(TEST_FLAGS) $(TSAN_FLAGS) $(TESTS) \
	    $(TEST_DEMO_SRCS) $(B)/tsan/libcoro.a $(CHECK_LIBS) $(LDLIBS) -o $@

# The hooks' runner: hook.o linked in (-rdynamic: libcurl and the other
# shared objects find its read, poll... first), and a program built
# without it that the tests run with LD_PRELOAD=libcoro_hook.so.
HOOK_TEST_FLAGS = $(TEST_FLAGS) -DCORO_TEST_HOOK_DIR='"$(HOOK_DIR)"' -rdynamic
HOOK_TEST_DEPS  = $(HOOK_TESTS) test/helpers.h demo/http.h \
                  demo/local_server.h $(HOOK_DIR)/libcoro_hook.so \
                  $(HOOK_DIR)/preload_target
$(HOOK_DIR)/preload_target: test/hook_preload.c $(HOOK_DIR)/libcoro.so.$(ABI)
	$(CC) $(CFLAGS_APP) -I. $< -L$(HOOK_DIR) -lcoro \
	    -Wl,-rpath,$(abspath $(HOOK_DIR)) $(LDLIBS) -o $@
$(B)/run_hook_tests: $(HOOK_TEST_DEPS) $(B)/hook.o $(LIBA) | $(B) deps
	$(CC) $(HOOK_TEST_FLAGS) $(HOOK_TESTS) $(B)/hook.o $(LIBA) \
	    $(CHECK_LIBS) $(LDLIBS) -ldl -o $@
$(B)/asan/run_hook_tests: $(HOOK_TEST_DEPS) $(B)/asan/hook.o $(B)/asan/libcoro.a | deps
	$(CC) $(HOOK_TEST_FLAGS) $(ASAN_FLAGS) $(HOOK_TESTS) $(B)/asan/hook.o \
	    $(B)/asan/libcoro.a $(CHECK_LIBS) $(LDLIBS) -ldl -o $@
$(B)/tsan/run_hook_tests: $(HOOK_TEST_DEPS) $(B)/tsan/hook.o $(B)/tsan/libcoro.a | deps
	$(CC) $(HOOK_TEST_FLAGS) $(TSAN_FLAGS) $(HOOK_TESTS) $(B)/tsan/hook.o \
	    $(B)/tsan/libcoro.a $(CHECK_LIBS) $(LDLIBS) -ldl -o $@

check: $(B)/run_tests $(B)/run_hook_tests check-symbols
	./$(B)/run_tests
	./$(B)/run_hook_tests

ASAN_RUN := CORO_TEST_SLOW=3 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
asan: $(B)/asan/run_tests $(B)/asan/run_hook_tests
	$(ASAN_RUN) ./$(B)/asan/run_tests
	$(ASAN_RUN) ./$(B)/asan/run_hook_tests

TSAN_RUN := TSAN_OPTIONS=halt_on_error=1:die_after_fork=0 CORO_TEST_SLOW=4
tsan: $(B)/tsan/run_tests $(B)/tsan/run_hook_tests
	$(TSAN_RUN) ./$(B)/tsan/run_tests
	$(TSAN_RUN) ./$(B)/tsan/run_hook_tests

# Memcheck runs the suites in one process (CK_FORK=no), so a leak anywhere
# is seen; CORO_TEST_SLOW widens the timing margins for its slowdown.
# valgrind runs one thread at a time; --fair-sched hands the CPU round,
# or a task spinning on the loop thread can starve a worker for seconds.
VALGRIND_RUN := CK_FORK=no CORO_TEST_SLOW=20 valgrind --error-exitcode=1 \
                --leak-check=full --fair-sched=yes --quiet \
                --errors-for-leak-kinds=definite,indirect,possible
valgrind: $(B)/run_tests $(B)/run_hook_tests
	@command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind"; exit 1; }
	$(VALGRIND_RUN) ./$(B)/run_tests
	$(VALGRIND_RUN) ./$(B)/run_hook_tests

# ---- gdb (gdb/coro-gdb.py): test/gdb_check.sh runs gdb in batch mode on
# test/gdb_target, tasks parked in many kinds of wait, attached live and on
# a core; once with the script sourced (the program linked with libcoro.a),
# once as make install leaves it, auto-loaded for libcoro.so. ----

GDB_CHECK_DIR := $(abspath $(B))/gdb-install

$(B)/gdb_target: test/gdb_target.c $(LIBA) | $(B)
	$(CC) $(CFLAGS_APP) -I. $< $(LIBA) $(LDLIBS) -o $@

gdb-check: $(B)/gdb_target $(LIBSO)
	@command -v gdb >/dev/null || \
	    { echo "gdb is missing: apt-get install gdb"; exit 1; }
	./test/gdb_check.sh $(B)/gdb_target
	rm -rf $(GDB_CHECK_DIR)
	$(MAKE) --no-print-directory install PREFIX=$(GDB_CHECK_DIR) \
	    GDB_AUTOLOAD=$(GDB_CHECK_DIR)/gdb >/dev/null
	$(CC) $(CFLAGS_APP) -I. test/gdb_target.c -L$(GDB_CHECK_DIR)/lib -lcoro \
	    -Wl,-rpath,$(GDB_CHECK_DIR)/lib $(LDLIBS) -o $(B)/gdb_target_so
	./test/gdb_check.sh $(B)/gdb_target_so $(GDB_CHECK_DIR)/gdb

# ---- demos (demo/): the asyncio tutorials' scenarios, on the default
# build whatever SWITCH says, in $(DEMO_DIR) ----

DEMO_DEPS := demo/common.c demo/common.h demo/timeline.c demo/timeline.h \
             $(UC_LIBA)

$(DEMO_DIR)/%: demo/%.c $(DEMO_DEPS) | $(DEMO_DIR)
	$(CC) $(CFLAGS_APP) -I. -Idemo $< demo/common.c demo/timeline.c \
	    $(UC_LIBA) $(LDLIBS) -o $@

# E links the hooks (hook.c, README "Hooks") for its hooked variant, which
# runs the sync variant's blocking libcurl client in coroutines: with
# -rdynamic the program exports hook.o's poll, recv, send, connect...,
# and libcurl.so's calls find them before libc's. The other variants are
# unaffected: outside a coroutine (sync, and the worker threads of
# executor and wrapper) every hooked call passes straight through to
# libc's; native's calls are on non-blocking sockets already, which the
# hooks leave to say EAGAIN, and its numeric getaddrinfo is the plain call.
E_SRCS := demo/local_server.c demo/http.c demo/curl_reactor.c
$(DEMO_DIR)/e_http_requests: demo/e_http_requests.c $(E_SRCS) \
        $(E_SRCS:.c=.h) $(DEMO_DEPS) $(TOP)/hook.o | $(DEMO_DIR) deps
	$(CC) $(CFLAGS_APP) -I. -Idemo $$(pkg-config --cflags libcurl) $< \
	    $(E_SRCS) demo/common.c demo/timeline.c $(TOP)/hook.o $(UC_LIBA) \
	    $$(pkg-config --libs libcurl) $(LDLIBS) -ldl -rdynamic -o $@

demos: $(DEMOS:%=$(DEMO_DIR)/%)

# The README's first command: all five at scale 1, then one table.
demo: demos
	DEMO_DIR=$(DEMO_DIR) ./demo/all

# ---- benchmarks: print figures, never fail on time ----

$(B)/bench/%: bench/%.c bench/bench.h $(LIBA) | $(B)/bench
	$(CC) $(CFLAGS_APP) -I. $< $(LIBA) $(LDLIBS) -o $@

$(B)/bench/http_server: bench/http_server.c demo/http.c demo/http.h \
        $(LIBA) | $(B)/bench
	$(CC) $(CFLAGS_APP) -I. -Idemo $< demo/http.c $(LIBA) $(LDLIBS) -o $@

# bench/hook.c twice: with the hooks linked in, and without.
$(B)/bench/hook: bench/hook.c bench/bench.h $(B)/hook.o $(LIBA) | $(B)/bench
	$(CC) $(CFLAGS_APP) -DHOOKED=1 -I. -rdynamic $< $(B)/hook.o $(LIBA) \
	    $(LDLIBS) -ldl -o $@
$(B)/bench/hook_plain: bench/hook.c bench/bench.h $(LIBA) | $(B)/bench
	$(CC) $(CFLAGS_APP) -I. $< $(LIBA) $(LDLIBS) -o $@

bench: $(BENCHES:%=$(B)/bench/%) $(B)/bench/hook $(B)/bench/hook_plain
	./$(B)/bench/handoff
	./$(B)/bench/spawn
	./$(B)/bench/eager
	./$(B)/bench/timers
	./$(B)/bench/timers --churn 10000
	./$(B)/bench/blocking
	./$(B)/bench/hook_plain
	./$(B)/bench/hook
	-python3 bench/blocking.py
	BUILD=$(B)/bench ./bench/chan.sh
	BUILD=$(B)/bench ./bench/xloop.sh
	BUILD=$(B)/bench ./bench/sleepers.sh $(SLEEPERS)
	BUILD=$(B)/bench ./bench/http.sh
	BUILD=$(B)/bench ./bench/http_loops.sh

# Both switch builds beside Go and asyncio, in one run, one table.
PEERS := handoff spawn sleepers timers
bench-peers:
	$(MAKE) SWITCH=ucontext $(PEERS:%=$(TOP)/bench/%)
	$(MAKE) SWITCH=fast $(PEERS:%=$(TOP)/fast/bench/%)
	SLOW=$(TOP)/bench FAST=$(TOP)/fast/bench ./bench/peers.sh

# ---- soak (test/soak.c): minutes of churn, then the resident set and the
# fd count must be back at their baseline. Not part of check or CI.
# `make soak SOAK_SECONDS=120`; SOAK_FLAGS adds flags (--sample 10, --seed N).
# Under ASan the quarantine is capped so that it fills during the warm-up
# instead of passing for a leak later. ----

SOAK_SECONDS ?= 300
SOAK_FLAGS   ?=

$(B)/soak: test/soak.c $(LIBA) | $(B)
	$(CC) $(CFLAGS_APP) -I. $< $(LIBA) $(LDLIBS) -o $@
$(B)/asan/soak: test/soak.c $(B)/asan/libcoro.a | $(B)/asan
	$(CC) $(CFLAGS_APP) $(ASAN_FLAGS) -I. $< $(B)/asan/libcoro.a $(LDLIBS) -o $@

soak: $(B)/soak
	./$(B)/soak --seconds $(SOAK_SECONDS) $(SOAK_FLAGS)

soak-asan: $(B)/asan/soak
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=16 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ./$(B)/asan/soak --seconds $(SOAK_SECONDS) $(SOAK_FLAGS)

# ---- fuzzing (fuzz/): a libFuzzer target, built with clang into
# $(B)/fuzz/ whatever CC says. `make fuzz` runs it for FUZZ_SECONDS on
# fuzz/corpus, keeping what it finds new in $(B)/fuzz/corpus and any crash
# in $(B)/fuzz/crash-*; `make fuzz-build` only builds. ----

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BIN     := $(B)/fuzz/fuzz_program
FUZZ_CFLAGS  := $(CSTD) $(WARN) $(WERROR) -O1 -g $(SWITCH_DEF) \
                -fsanitize=address,undefined -fno-omit-frame-pointer \
                -fno-sanitize-recover=all

# The library gets libFuzzer's coverage instrumentation (fuzzer-no-link);
# the target links libFuzzer's main.
$(B)/fuzz/%.o: %.c $(HDRS) | fuzz-deps
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BIN): fuzz/fuzz_program.c $(SRCS:%.c=$(B)/fuzz/%.o) $(HDRS) | fuzz-deps
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -I. fuzz/fuzz_program.c \
	    $(SRCS:%.c=$(B)/fuzz/%.o) $(LDLIBS) -o $@

# clang, and libFuzzer with the sanitizer runtimes (Debian splits them into
# libclang-rt-14-dev): a probe that links a do-nothing target.
FUZZ_NEEDS := apt-get install clang libclang-rt-14-dev
fuzz-deps:
	@mkdir -p $(B)/fuzz
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { \
	    echo "fuzz: $(FUZZ_CC) is missing; install with: $(FUZZ_NEEDS)"; \
	    exit 1; }
	@printf 'int LLVMFuzzerTestOneInput(const char *d, long n)\n%s\n' \
	    '{ (void)d; (void)n; return 0; }' > $(B)/fuzz/probe.c
	@$(FUZZ_CC) -fsanitize=fuzzer,address,undefined $(B)/fuzz/probe.c \
	    -o $(B)/fuzz/probe >/dev/null 2>&1 || { \
	    echo "fuzz: $(FUZZ_CC) cannot link libFuzzer and the sanitizers;"; \
	    echo "install with: $(FUZZ_NEEDS)"; exit 1; }
	@rm -f $(B)/fuzz/probe.c $(B)/fuzz/probe

fuzz-build: $(FUZZ_BIN)

fuzz: $(FUZZ_BIN)
	mkdir -p $(B)/fuzz/corpus
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ./$(FUZZ_BIN) \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=10 -max_len=1024 \
	    -print_final_stats=1 -artifact_prefix=$(B)/fuzz/ \
	    $(B)/fuzz/corpus fuzz/corpus

# ---- install ----

# The dynamic linker finds a new library only once its cache is rebuilt:
# ldconfig, when installing for real (no DESTDIR) as root. Otherwise say
# what is left to do.
LDCONFIG = if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && \
               PATH="$$PATH:/sbin:/usr/sbin" command -v ldconfig >/dev/null; \
           then PATH="$$PATH:/sbin:/usr/sbin" ldconfig; \
           elif [ -z "$(DESTDIR)" ]; then \
               echo "run ldconfig as root (or set LD_LIBRARY_PATH=$(PREFIX)/lib)"; \
           fi

# gdb loads libcoro.so.0-gdb.py for libcoro.so.0 from its data directory's
# auto-load tree, under the library's own path: that directory, not
# $(PREFIX)/share, unless gdb was configured otherwise. GDB_AUTOLOAD moves
# it (then `add-auto-load-scripts-directory` in ~/.gdbinit).
GDB_AUTOLOAD ?= /usr/share/gdb/auto-load
GDB_SCRIPT    = $(GDB_AUTOLOAD)$(PREFIX)/lib/libcoro.so.$(ABI)-gdb.py

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 coro.h $(DESTDIR)$(PREFIX)/include/coro.h
	install -m 644 $(LIBA) $(DESTDIR)$(PREFIX)/lib/libcoro.a
	install -m 755 $(LIBSO) $(DESTDIR)$(PREFIX)/lib/libcoro.so.$(ABI)
	ln -sf libcoro.so.$(ABI) $(DESTDIR)$(PREFIX)/lib/libcoro.so
	install -m 644 $(B)/libcoro_hook.a $(DESTDIR)$(PREFIX)/lib/libcoro_hook.a
	install -m 755 $(HOOK_DIR)/libcoro_hook.so \
	    $(DESTDIR)$(PREFIX)/lib/libcoro_hook.so.$(ABI)
	ln -sf libcoro_hook.so.$(ABI) $(DESTDIR)$(PREFIX)/lib/libcoro_hook.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' coro.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/coro.pc
	install -d $(dir $(DESTDIR)$(GDB_SCRIPT))
	install -m 644 gdb/coro-gdb.py $(DESTDIR)$(GDB_SCRIPT)
	@$(LDCONFIG)

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/coro.h $(DESTDIR)$(PREFIX)/lib/libcoro.a \
	      $(DESTDIR)$(PREFIX)/lib/libcoro.so $(DESTDIR)$(PREFIX)/lib/libcoro.so.$(ABI) \
	      $(DESTDIR)$(PREFIX)/lib/pkgconfig/coro.pc $(DESTDIR)$(GDB_SCRIPT) \
	      $(DESTDIR)$(PREFIX)/lib/libcoro_hook.a \
	      $(DESTDIR)$(PREFIX)/lib/libcoro_hook.so \
	      $(DESTDIR)$(PREFIX)/lib/libcoro_hook.so.$(ABI)
	@$(LDCONFIG)

clean:
	rm -rf build libcoro.a libcoro.so
