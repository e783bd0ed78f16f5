/* watchdog.c: the stall watchdog. A task that runs a long time without
 * suspending holds up every other task of its loop. asyncio's debug mode
 * names such a slow callback after it returns, and so does CORO_DEBUG;
 * the watchdog names it while it still runs, with where it is, so that a
 * program stuck in one task says where.
 *
 * How. One thread per process, started with the first loop watched and
 * ended with the last, sleeps until the earliest moment a run of some
 * watched loop could pass its limit, and then looks at each loop's present
 * run (struct coro__watch, which the loop's thread writes as runs start
 * and end). For a run past its limit it queues SIGURG to the loop's thread
 * (pthread_sigqueue, with the loop's run number), once per run. The
 * handler, on that thread and on its alternate signal stack (overflow.c
 * gives every loop's thread one), checks that the same run still goes on,
 * and writes the report with write(2): the task, its spawn site, how long
 * it has run, and the backtrace of where it is now. backtrace() is glibc's,
 * called once beforehand so that it has loaded what it needs and allocates
 * nothing in the handler (libgcc's unwinder finds each frame's unwind
 * information with _dl_find_object, which takes no lock). Each frame is
 * named object(+offset)[address], for addr2line, by _dl_find_object too:
 * backtrace_symbols_fd would add exported symbols' names, but through
 * dladdr, which takes the dynamic loader's lock, and a task stalled inside
 * dlopen holds it.
 * When the task at last suspends, the loop's thread, no longer in a
 * handler, prints the run's total.
 *
 * Why SIGURG: its default action is to ignore it, so one that arrives late
 * (the run has ended, the loop has gone) does no harm, and programs seldom
 * use it (Go preempts goroutines with it for the same reasons). A SIGURG
 * that is not ours goes on to the handler installed before.
 *
 * No false reports: a loop that waits in the kernel, or whose tasks are
 * all parked, has no run going (seq is even), and a run that ends between
 * the look and the signal is told apart by its number.
 *
 * Cost: nothing per switch while off (it rides on the observers' one
 * branch, l->noting); while on, the accounting's clock read and three
 * stores per switch, and at most one wake-up of the thread per limit and
 * loop while nothing stalls.
 */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <link.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LIMIT_MIN_NS 1000000LL /* 1 ms: below it, every run would do */
#define FRAMES_MAX 48
/* Tells our SIGURGs from anyone else's: in the low bits of the value. */
#define TAG 0xc07aU
#define TAG_BITS 16

static __thread int64_t tls_limit_ns = -1; /* -1: CORO_WATCHDOG says */

/* The thread, under coro__loops_lock. */
static pthread_cond_t wake_cond;
static size_t nwatched;        /* loops with a limit */
static int watcher_running;
static pthread_t watcher;
static unsigned long watcher_gen; /* a thread runs while this is its own */

static struct sigaction old_urg;

/* ----------------------------------------------------------------------
 * The handler, on the stalled loop's thread
 * ---------------------------------------------------------------------- */

static void *interrupted_pc(const void *ucontext)
{
    const ucontext_t *uc = ucontext;
#if defined(__x86_64__)
    return (void *)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (void *)uc->uc_mcontext.pc;
#else
    (void)uc;
    return NULL;
#endif
}

#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 35)
/* object(+offset)[address], as backtrace_symbols_fd writes a frame whose
 * function it cannot name. */
static void write_frames(void *const *frames, int n)
{
    for (int i = 0; i < n; i++) {
        char buf[512];
        struct coro__line line = { buf, buf + sizeof buf };
        struct dl_find_object o;
        uintptr_t pc = (uintptr_t)frames[i];
        if (_dl_find_object(frames[i], &o) == 0 && o.dlfo_link_map) {
            const char *name = o.dlfo_link_map->l_name;
            coro__put(&line, *name ? name : program_invocation_name);
            coro__put(&line, "(+");
            coro__put_hex(&line, pc - o.dlfo_link_map->l_addr);
            coro__put(&line, ")");
        }
        coro__put(&line, "[");
        coro__put_hex(&line, pc);
        coro__put(&line, "]\n");
        coro__line_write(STDERR_FILENO, buf, &line);
    }
}
#else
static void write_frames(void *const *frames, int n)
{
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
}
#endif

/* The frames of the interrupted code: the handler's own, and the signal
 * trampoline's, come first, up to the interrupted instruction. */
static void write_backtrace(const void *ucontext)
{
    void *frames[FRAMES_MAX];
    int n = backtrace(frames, FRAMES_MAX);
    void *pc = interrupted_pc(ucontext);
    int from = 0;
    for (int i = 0; i < n; i++)
        if (frames[i] == pc) {
            from = i;
            break;
        }
    write_frames(frames + from, n - from);
}

static void report(struct coro__loop *l, const void *ucontext)
{
    struct coro__watch *w = &l->watch;
    uint64_t seq = atomic_load_explicit(&w->seq, memory_order_relaxed);
    if (!(seq & 1) ||
        atomic_load_explicit(&w->flagged, memory_order_relaxed) != seq)
        return; /* that run ended before the signal came */
    const struct coro_task *t =
        atomic_load_explicit(&w->task, memory_order_relaxed);
    int64_t ran = coro__clock_ns() -
                  atomic_load_explicit(&w->start_ns, memory_order_relaxed);
    char buf[512];
    struct coro__line line = { buf, buf + sizeof buf };
    coro__put(&line, "coro: stall: ");
    coro__put_task(&line, t);
    coro__put(&line, " has run ");
    coro__put_u(&line, (unsigned long long)(ran / 1000000));
    coro__put(&line, " ms without suspending; the other tasks of its loop "
                     "wait. It is at:\n");
    coro__line_write(STDERR_FILENO, buf, &line);
    write_backtrace(ucontext);
    atomic_store_explicit(&w->reported, seq, memory_order_relaxed);
}

static void pass_on(int signo, siginfo_t *si, void *ucontext)
{
    if ((old_urg.sa_flags & SA_SIGINFO) && old_urg.sa_sigaction)
        old_urg.sa_sigaction(signo, si, ucontext);
    else if (!(old_urg.sa_flags & SA_SIGINFO) &&
             old_urg.sa_handler != SIG_DFL && old_urg.sa_handler != SIG_IGN)
        old_urg.sa_handler(signo);
    /* SIGURG's default is to ignore it. */
}

static void on_sigurg(int signo, siginfo_t *si, void *ucontext)
{
    int saved = errno;
    uintptr_t v = (uintptr_t)si->si_value.sival_ptr;
    if (si->si_code == SI_QUEUE && si->si_pid == getpid() &&
        (v & ((1U << TAG_BITS) - 1)) == TAG) {
        struct coro__loop *l = coro__tls_loop;
        if (l && l->run_id == v >> TAG_BITS)
            report(l, ucontext);
        /* else a late one for a loop that has ended: dropped */
    } else {
        pass_on(signo, si, ucontext);
    }
    errno = saved;
}

/* The handler, and glibc's backtrace ready to run in it: its first call
 * loads the unwinder (dlopen, malloc), which a handler must not do. */
static void install_once(void)
{
    void *frame;
    backtrace(&frame, 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigurg;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGURG, &sa, &old_urg);
}

/* ----------------------------------------------------------------------
 * The watchdog's thread
 * ---------------------------------------------------------------------- */

static void cond_init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&wake_cond, &a);
    pthread_condattr_destroy(&a);
}

/* Looks at l's present run; signals its thread if the run has passed the
 * limit. Returns when l next needs a look. Lock held. */
static int64_t look(struct coro__loop *l, int64_t now)
{
    struct coro__watch *w = &l->watch;
    int64_t limit = atomic_load_explicit(&w->limit_ns, memory_order_relaxed);
    uint64_t seq = atomic_load_explicit(&w->seq, memory_order_acquire);
    if (!(seq & 1)) /* no run: none can pass the limit before then */
        return now + limit;
    int64_t start = atomic_load_explicit(&w->start_ns, memory_order_acquire);
    if (atomic_load_explicit(&w->seq, memory_order_acquire) != seq)
        return now; /* a run ended meanwhile: look again at once */
    if (atomic_load_explicit(&w->flagged, memory_order_relaxed) == seq)
        return now + limit; /* told already */
    if (now - start < limit)
        return start + limit;
    atomic_store_explicit(&w->flagged, seq, memory_order_relaxed);
    union sigval v = {
        .sival_ptr = (void *)(uintptr_t)(l->run_id << TAG_BITS | TAG)
    };
    pthread_sigqueue(l->thread, SIGURG, v);
    return now + limit;
}

static void *watcher_main(void *arg)
{
    unsigned long gen = (unsigned long)(uintptr_t)arg;
    pthread_mutex_lock(&coro__loops_lock);
    while (watcher_gen == gen) {
        int64_t now = coro__clock_ns();
        int64_t wake = now + 1000000000LL;
        for (struct coro__link *n = coro__loops.head; n; n = n->next) {
            struct coro__loop *l = CORO__ENTRY(n, struct coro__loop,
                                               loops_link);
            if (atomic_load_explicit(&l->watch.limit_ns,
                                     memory_order_relaxed) > 0) {
                int64_t next = look(l, now);
                if (next < wake)
                    wake = next;
            }
        }
        struct timespec ts = { .tv_sec = wake / 1000000000,
                               .tv_nsec = wake % 1000000000 };
        pthread_cond_timedwait(&wake_cond, &coro__loops_lock, &ts);
    }
    pthread_mutex_unlock(&coro__loops_lock);
    return NULL;
}

/* Starts the thread, with every signal blocked: SIGURG and the rest are
 * for the program's threads. Lock held. 0 or EAGAIN. */
static int watcher_start(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&watcher, NULL, watcher_main,
                             (void *)(uintptr_t)++watcher_gen);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err)
        return err;
    pthread_setname_np(watcher, "coro-watchdog");
    watcher_running = 1;
    return 0;
}

/* ----------------------------------------------------------------------
 * Watching a loop
 * ---------------------------------------------------------------------- */

static int watch(struct coro__loop *l, int64_t limit_ns)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    static pthread_once_t cond_once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install_once);
    pthread_once(&cond_once, cond_init);
    pthread_mutex_lock(&coro__loops_lock);
    if (!l->watching) {
        int err = watcher_running ? 0 : watcher_start();
        if (err) {
            pthread_mutex_unlock(&coro__loops_lock);
            return err;
        }
        nwatched++;
        l->watching = 1;
    }
    atomic_store_explicit(&l->watch.limit_ns, limit_ns, memory_order_relaxed);
    pthread_cond_signal(&wake_cond);
    pthread_mutex_unlock(&coro__loops_lock);
    coro__observe_update(l); /* the running task's run counts from now */
    return 0;
}

static void unwatch(struct coro__loop *l)
{
    if (!l->watching)
        return;
    pthread_t stopped = 0;
    int join = 0;
    pthread_mutex_lock(&coro__loops_lock);
    l->watching = 0;
    atomic_store_explicit(&l->watch.limit_ns, 0, memory_order_relaxed);
    /* A run in progress is no longer watched: a signal about it still on
     * its way finds its number changed. */
    uint64_t seq = atomic_load_explicit(&l->watch.seq, memory_order_relaxed);
    if (seq & 1)
        atomic_store_explicit(&l->watch.seq, seq + 1, memory_order_release);
    if (nwatched > 0 && --nwatched == 0 && watcher_running) {
        watcher_gen++;
        watcher_running = 0;
        stopped = watcher;
        join = 1;
        pthread_cond_signal(&wake_cond);
    }
    pthread_mutex_unlock(&coro__loops_lock);
    if (join)
        pthread_join(stopped, NULL);
    coro__observe_update(l);
}

/* The limit in ns, from seconds: 0 for off; -1 if not a limit. */
static int64_t limit_of(double seconds)
{
    if (isnan(seconds))
        return -1;
    if (seconds <= 0)
        return 0;
    if (seconds < (double)LIMIT_MIN_NS / 1e9)
        return -1;
    return seconds >= 1e9 ? (int64_t)1e18 : (int64_t)(seconds * 1e9);
}

/* CORO_WATCHDOG: the limit in seconds; unset or empty: off. */
static int64_t env_limit(void)
{
    const char *s = getenv("CORO_WATCHDOG");
    if (!s || !*s)
        return 0;
    char *end;
    double v = strtod(s, &end);
    int64_t ns = *end ? -1 : limit_of(v);
    if (ns < 0) {
        fprintf(stderr, "coro: CORO_WATCHDOG=%s is not a limit in seconds "
                        "(0.001 or more); no watchdog\n", s);
        return 0;
    }
    return ns;
}

void coro__watchdog_init(struct coro__loop *l)
{
    int64_t ns = tls_limit_ns >= 0 ? tls_limit_ns : env_limit();
    if (ns == 0)
        return;
    int err = watch(l, ns);
    if (err)
        fprintf(stderr, "coro: no watchdog: cannot start its thread (%s)\n",
                strerror(err));
}

void coro__watchdog_term(struct coro__loop *l)
{
    unwatch(l);
}

void coro__watchdog_run(struct coro__loop *l, struct coro_task *t,
                        int64_t now)
{
    struct coro__watch *w = &l->watch;
    uint64_t seq = atomic_load_explicit(&w->seq, memory_order_relaxed);
    if (CORO__UNLIKELY(seq & 1))
        return; /* this run is recorded already */
    atomic_store_explicit(&w->task, t, memory_order_relaxed);
    atomic_store_explicit(&w->start_ns, now, memory_order_release);
    atomic_store_explicit(&w->seq, seq + 1, memory_order_release);
}

void coro__watchdog_stop(struct coro__loop *l, struct coro_task *t,
                         int64_t now)
{
    struct coro__watch *w = &l->watch;
    uint64_t seq = atomic_load_explicit(&w->seq, memory_order_relaxed);
    if (CORO__UNLIKELY(!(seq & 1)))
        return;
    atomic_store_explicit(&w->seq, seq + 1, memory_order_release);
    if (CORO__LIKELY(atomic_load_explicit(&w->reported,
                                          memory_order_relaxed) != seq))
        return;
    int64_t ran = now - atomic_load_explicit(&w->start_ns,
                                             memory_order_relaxed);
    /* Not stdio: this runs on the task's stack, which may be small. */
    char buf[256];
    struct coro__line line = { buf, buf + sizeof buf };
    coro__put(&line, "coro: stall over: ");
    coro__put_task(&line, t);
    coro__put(&line, " suspended after running ");
    coro__put_u(&line, (unsigned long long)(ran / 1000000));
    coro__put(&line, " ms\n");
    coro__line_write(STDERR_FILENO, buf, &line);
}

void coro__watchdog_after_fork(void)
{
    cond_init();
    nwatched = 0;
    watcher_running = 0;
    watcher_gen++;
}

int coro_set_watchdog(double seconds)
{
    int64_t ns = limit_of(seconds);
    if (ns < 0)
        return EINVAL;
    tls_limit_ns = ns;
    struct coro__loop *l = coro__loop();
    if (!l)
        return 0;
    if (ns == 0) {
        unwatch(l);
        return 0;
    }
    return watch(l, ns);
}
