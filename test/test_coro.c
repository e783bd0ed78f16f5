/* Stacks and switching: sizes, the pool, the guard budget and slabs,
 * overflow detection, memory per parked task. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

/* Touches about `bytes` of stack through recursion. frame_fill keeps each
 * frame whole, and reading it after the call keeps it alive meanwhile. */
static __attribute__((noinline)) size_t burn_stack(size_t bytes)
{
    char frame[1024];
    frame_fill(frame, (int)bytes, sizeof frame);
    if (bytes <= sizeof frame)
        return (size_t)frame[7];
    return burn_stack(bytes - sizeof frame) + (size_t)frame[3];
}

static void *use_stack(void *arg)
{
    size_t bytes = (size_t)(uintptr_t)arg;
    burn_stack(bytes);
    await_yield(); /* switch with the deep pages touched */
    burn_stack(bytes);
    return arg;
}

static void *stack_sizes_main(void *arg)
{
    (void)arg;
    void *r;
    /* Each size holds frames of about 60% of it, whatever the frames'
     * overhead (ASan's redzones grow them), and far more than the default
     * 64 KiB where the size is larger. The default holds 36 KiB. */
    coro_task *t = coro_spawn(use_stack, (void *)(uintptr_t)(36 << 10));
    ck_assert_int_eq(await_task(t, &r), 0);
    coro_attr attr = { .stack_size = 1 << 20 };
    t = coro_spawn_attr(&attr, use_stack, (void *)(uintptr_t)(600 << 10));
    ck_assert_int_eq(await_task(t, &r), 0);
    attr.stack_size = 16 << 10;
    t = coro_spawn_attr(&attr, use_stack, (void *)(uintptr_t)(8 << 10));
    ck_assert_int_eq(await_task(t, &r), 0);
    /* main's own stack is at least 256 KiB. */
    burn_stack(150 << 10);
    return NULL;
}

START_TEST(stacks_hold_what_their_size_promises)
{
    run_expect(stack_sizes_main, NULL, 0);
}
END_TEST

START_TEST(stack_sizes_round_to_pages_and_reject_extremes)
{
    size_t out = 0;
    long page = sysconf(_SC_PAGESIZE);
    ck_assert_int_eq(coro__stack_size(0, 65536, &out), 0);
    ck_assert_uint_eq(out, 65536);
    ck_assert_int_eq(coro__stack_size((16 << 10) + 1, 0, &out), 0);
    ck_assert_uint_eq(out, (size_t)(16 << 10) + (size_t)page);
    ck_assert_int_eq(coro__stack_size((16 << 10) - 1, 0, &out), EINVAL);
    ck_assert_int_eq(coro__stack_size(((size_t)1 << 30) + 1, 0, &out),
                     EINVAL);
}
END_TEST

static void *env_stack_main(void *arg)
{
    coro_task *t = coro_spawn(use_stack, arg);
    return (void *)(uintptr_t)await_task(t, NULL);
}

/* CORO_STACK_SIZE sets the default for the process; bad values are EINVAL
 * from coro_run, not silently ignored. */
START_TEST(stack_size_environment_variable)
{
    void *r = (void *)1;
    setenv("CORO_STACK_SIZE", "256K", 1);
    ck_assert_int_eq(
        coro_run(env_stack_main, (void *)(uintptr_t)(150 << 10), &r), 0);
    ck_assert_ptr_null(r);
    setenv("CORO_STACK_SIZE", "1048576", 1);
    ck_assert_int_eq(
        coro_run(env_stack_main, (void *)(uintptr_t)(600 << 10), &r), 0);
    static const char *bad[] = { "12Q", "4K", "0", "K", "2T", "-5", "9G",
                                 "99999999999999999999" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("CORO_STACK_SIZE", bad[i], 1);
        ck_assert_msg(coro_run(env_stack_main, NULL, NULL) == EINVAL,
                      "CORO_STACK_SIZE=%s accepted", bad[i]);
    }
    unsetenv("CORO_STACK_SIZE");
}
END_TEST

static void *nothing(void *arg)
{
    return arg;
}

static void *pool_main(void *arg)
{
    long *peak = arg;
    for (int i = 0; i < 2000; i++) {
        coro_task *t = coro_spawn(nothing, NULL);
        ck_assert_int_eq(await_task(t, NULL), 0);
        long s = atomic_load(&coro__alloc_stats.stacks);
        if (s > *peak)
            *peak = s;
    }
    return NULL;
}

/* Spawning and joining over and over reuses one pooled stack: no new
 * mapping per task. */
START_TEST(stacks_are_pooled)
{
    long peak = 0;
    run_expect(pool_main, &peak, 0);
    ck_assert_int_le(peak, 2); /* main's stack and one task's */
}
END_TEST

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    long n = 0;
    int c;
    if (!f)
        return -1;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

struct slab_probe {
    long maps_before;
    long maps_during;
    long stacks_during;
};

static void *sleep_briefly(void *arg)
{
    await_sleep(0.02);
    burn_stack(30 << 10);
    return arg;
}

/* The housekeeping thread (chores.c), which bulk spawning starts: its
 * stack and guard, and what a sanitizer maps for a thread of its own. */
#define THREAD_MAPS 6

static void *slab_main(void *arg)
{
    struct slab_probe *p = arg;
    enum { N = 3000 };
    static coro_task *t[N];
    p->maps_before = count_maps();
    for (int i = 0; i < N; i++)
        ck_assert_ptr_nonnull(t[i] = coro_spawn(sleep_briefly, NULL));
    await_yield();
    p->maps_during = count_maps();
    p->stacks_during = atomic_load(&coro__alloc_stats.stacks);
    ck_assert_int_eq(await_gather(t, N, NULL, NULL), 0);
    return NULL;
}

/* With MADV_GUARD_INSTALL every stack is guarded and comes from a slab:
 * thousands of stacks take a few mappings (3000 / 240 per slab, plus
 * main's, plus one slab the housekeeping thread may hold ready). */
START_TEST(guarded_stacks_come_from_slabs)
{
    struct slab_probe p = { 0 };
    coro_run(NULL, NULL, NULL); /* probes the kernel */
    if (atomic_load(&coro__guard_install) <= 0)
        return; /* an older kernel: the fallback test below covers it */
    run_expect(slab_main, &p, 0);
    ck_assert_int_le(p.stacks_during, 13 + 1 + 1);
#ifndef CORO__TSAN /* TSan maps shadow memory of its own per stack */
    ck_assert_int_lt(p.maps_during - p.maps_before,
                     13 + 1 + 1 + THREAD_MAPS + 10);
#endif
}
END_TEST

/* Without it, guard pages cost two mappings each and draw on a budget;
 * past it, stacks come from unguarded slabs: a few mappings for thousands
 * of stacks, and they work like any other. */
START_TEST(stacks_beyond_the_guard_budget_come_from_slabs)
{
    struct slab_probe p = { 0 };
    long budget = atomic_exchange(&coro__guard_budget, 10);
    int install = atomic_exchange(&coro__guard_install, 0);
    run_expect(slab_main, &p, 0);
    atomic_store(&coro__guard_budget, budget);
    atomic_store(&coro__guard_install, install);
    /* 10 guarded stacks (two mappings each) + 3000/240 slabs, and one
     * the housekeeping thread may hold ready. */
    ck_assert_int_le(p.stacks_during, 10 + 13 + 1 + 1);
#ifndef CORO__TSAN
    ck_assert_int_lt(p.maps_during - p.maps_before,
                     2 * 10 + 13 + 1 + THREAD_MAPS + 10);
#endif
}
END_TEST

static void *smash_canary(void *arg)
{
    (void)arg;
    struct coro_task *self = coro_self();
    coro__stack_of(self)->lo[0] ^= 0x5a; /* as an overflow past the stack
                                           would */
    await_yield();
    return NULL;
}

static void *canary_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(smash_canary, NULL);
    await_task(t, NULL);
    return NULL;
}

/* The guard tests' programs abort: each runs in a child, and the test
 * reads what the child wrote. */
static int canary_run(void *arg)
{
    (void)arg;
    atomic_store(&coro__guard_budget, 0);
    atomic_store(&coro__guard_install, 0);
    coro_run(canary_main, NULL, NULL);
    return 0;
}

static void expect_abort(const char *text, int status)
{
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "status %#x:\n%s", status, text);
}

/* An unguarded (slab) stack's overflow is caught at the next switch. */
START_TEST(overwritten_canary_aborts_at_the_next_switch)
{
    int status;
    char *text = run_in_child(canary_run, NULL, &status);
    expect_abort(text, status);
    expect_report_line(text, "coro: stack overflow in task \"smash_canary\"",
                       "65536-byte stack", "the bottom of its stack was "
                       "overwritten", "CORO_STACK_SIZE", NULL);
    free(text);
}
END_TEST

/* Recurses until limit, which the caller sets far beyond any stack. */
static __attribute__((noinline)) int recurse_deep(int depth, int limit)
{
    char frame[512];
    frame_fill(frame, depth, sizeof frame);
    if (depth >= limit)
        return frame[0];
    return recurse_deep(depth + 1, limit) + frame[0];
}

static void *overflow(void *arg)
{
    recurse_deep(0, *(int *)arg);
    return NULL;
}

static void *overflow_main(void *arg)
{
    static int limit = 1 << 20; /* 512 MiB of frames */
    coro_attr attr = { .stack_size = 16 << 10 };
    (void)arg;
    await_task(coro_spawn_attr(&attr, overflow, &limit), NULL);
    return NULL;
}

static int overflow_run(void *mprotect_guard)
{
    if (mprotect_guard)
        atomic_store(&coro__guard_install, 0);
    coro_run(overflow_main, NULL, NULL);
    return 0;
}

static void expect_overflow_report(void *mprotect_guard)
{
    int status;
    char *text = run_in_child(overflow_run, mprotect_guard, &status);
    expect_abort(text, status);
    expect_report_line(text, "coro: task #2 \"overflow\" (test/test_coro.c:",
                       ") overflowed its 16 KiB stack;", "CORO_STACK_SIZE",
                       NULL);
    free(text);
}

/* A guarded stack's overflow faults on the guard page instead of
 * corrupting memory, whichever way the guard was made, and the fault
 * handler (overflow.c) reports it and aborts. */
START_TEST(overflow_of_a_guarded_stack_faults)
{
    expect_overflow_report(NULL);
}
END_TEST

START_TEST(overflow_of_an_mprotect_guarded_stack_faults)
{
    expect_overflow_report("mprotect");
}
END_TEST

static long vm_size_kib(void)
{
    long pages = -1;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        if (fscanf(f, "%ld", &pages) != 1)
            pages = -1;
        fclose(f);
    }
    return pages * (sysconf(_SC_PAGESIZE) / 1024);
}

static void *huge_stack_main(void *arg)
{
    long *grew = arg;
    long before = vm_size_kib();
    coro_attr attr = { .stack_size = (size_t)512 << 20 };
    coro_task *t = coro_spawn_attr(&attr, use_stack,
                                   (void *)(uintptr_t)(1 << 20));
    ck_assert_ptr_nonnull(t);
    *grew = vm_size_kib() - before;
    ck_assert_int_eq(await_task(t, NULL), 0);
    return NULL;
}

/* A huge stack gets a mapping of its own: a slab would reserve room for
 * sixteen of them. */
START_TEST(huge_stacks_do_not_reserve_slabs)
{
    long grew = 0;
    run_expect(huge_stack_main, &grew, 0);
    ck_assert_msg(grew < 1024 * 1024, "address space grew by %ld KiB", grew);
    /* Valgrind trims its own bookkeeping from the count by a few pages. */
    ck_assert_int_ge(grew, 500 * 1024);
}
END_TEST

static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void *park_shallow(void *arg)
{
    await_sleep(0.5);
    return arg;
}

static void *footprint_main(void *arg)
{
    enum { N = 20000 };
    static coro_task *t[N];
    long before = rss_kib();
    for (int i = 0; i < N; i++)
        t[i] = coro_spawn(park_shallow, NULL);
    await_sleep(0.1); /* all parked */
    *(double *)arg = (double)(rss_kib() - before) / N;
    ck_assert_int_eq(await_gather(t, N, NULL, NULL), 0);
    return NULL;
}

/* A task parked with a shallow stack costs about one page. */
START_TEST(parked_task_costs_about_one_page)
{
    double kib = 0;
    if (test_slow() > 1)
        return; /* sanitizers and valgrind add their own memory */
    run_expect(footprint_main, &kib, 0);
    ck_assert_msg(kib < 5.5, "%.2f KiB per parked task", kib);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Shared stacks                                                          */
/* ---------------------------------------------------------------------- */

/* Recurses n levels of 200-byte frames, yields at the bottom (so other
 * tasks' frames take the shared stack meanwhile), and sums what each level
 * wrote: n (n + 1) / 2 if every frame came back intact. */
static __attribute__((noinline)) int nested(int n)
{
    char frame[200];
    frame_fill(frame, n, sizeof frame);
    if (n == 0) {
        await_yield();
        return frame[5];
    }
    return nested(n - 1) + frame[7];
}

static void *frames_worker(void *arg)
{
    int n = (int)(uintptr_t)arg % 9 + 1;
    for (int i = 0; i < 40; i++)
        if (nested(n) != n * (n + 1) / 2)
            return coro_fail(EIO);
    return NULL;
}

static void *frames_main(void *arg)
{
    (void)arg;
    enum { N = 300 };
    static coro_task *t[N];
    coro_attr shared = { .flags = CORO_SHARED_STACK };
    for (uintptr_t i = 0; i < N; i++) /* two shared for one own */
        t[i] = i % 3 ? coro_spawn_attr(&shared, frames_worker, (void *)i)
                     : coro_spawn(frames_worker, (void *)i);
    ck_assert_int_eq(await_gather(t, N, NULL, NULL), 0);
    return NULL;
}

/* Shared-stack tasks' frames survive other tasks using the stack. */
START_TEST(shared_stack_frames_survive_switches)
{
    run_expect(frames_main, NULL, 0);
}
END_TEST

static int pipe_fds[3][2];
static int next_pipe;

static void *nap_shared(void *arg)
{
    (void)arg;
    return (void *)(uintptr_t)await_sleep(0.005);
}

static void *echo_job(void *arg)
{
    return arg;
}

/* Every kind of wait, from a shared-stack task; what others write while
 * it waits lives on the heap, as the documentation asks. */
static void *shared_waits(void *arg)
{
    coro_chan *c = arg;
    coro_attr shared = { .flags = CORO_SHARED_STACK };
    int *box = malloc(sizeof *box);
    void **result = malloc(sizeof *result);
    char *buf = malloc(8);
    size_t got;
    int fd = pipe_fds[next_pipe++][0];
    int err = await_yield() || await_sleep(0.001) ||
              await_task(coro_spawn_attr(&shared, nap_shared, NULL), result) ||
              await_chan_recv(c, box, 5) ||
              await_blocking(echo_job, box, result) ||
              await_read(fd, buf, 8, 5, &got);
    int ok = !err && *box == 42 && *result == box && got == 3;
    free(box);
    free(result);
    free(buf);
    return ok ? NULL : coro_fail(EIO);
}

static void *shared_waits_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pipe2(pipe_fds[i], O_NONBLOCK | O_CLOEXEC), 0);
    coro_chan *c = coro_chan_new(sizeof(int), 0);
    coro_attr shared = { .flags = CORO_SHARED_STACK };
    coro_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = coro_spawn_attr(&shared, shared_waits, c);
    for (int i = 0; i < 3; i++) {
        int v = 42;
        ck_assert_int_eq(await_chan_send(c, &v, 5), 0);
    }
    await_sleep(0.02);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(write(pipe_fds[i][1], "abc", 3), 3);
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), 0);
    coro_chan_free(c);
    for (int i = 0; i < 3; i++) {
        close(pipe_fds[i][0]);
        close(pipe_fds[i][1]);
    }
    return NULL;
}

START_TEST(shared_stack_tasks_wait_on_everything)
{
    run_expect(shared_waits_main, NULL, 0);
}
END_TEST

static void *shielded_forever(void *arg)
{
    (void)arg;
    coro_shield(1);
    await_sleep(INFINITY);
    return NULL;
}

static void *shared_errors_main(void *arg)
{
    (void)arg;
    coro_attr a = { .flags = CORO_SHARED_STACK, .stack_size = 1 << 20 };
    errno = 0;
    ck_assert_ptr_null(coro_spawn_attr(&a, nap_shared, NULL));
    ck_assert_int_eq(errno, EINVAL); /* deeper than the shared stack */
    a.stack_size = 64 << 10;
    coro_task *t = coro_spawn_attr(&a, nap_shared, NULL);
    ck_assert_ptr_nonnull(t);
    await_yield();
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    /* Two left parked forever, shielded: when main returns, clean-up
     * deadlocks and they are freed unrun, one with its frames saved off
     * the shared stack (the leak check sees that buffer go too). */
    coro_spawn_attr(&a, shielded_forever, NULL);
    coro_spawn_attr(&a, shielded_forever, NULL);
    await_yield();
    return NULL;
}

START_TEST(shared_stack_bad_size_cancel_and_cleanup)
{
    run_expect(shared_errors_main, NULL, 0);
}
END_TEST

static void *shared_footprint_main(void *arg)
{
    enum { N = 20000 };
    static coro_task *t[N];
    coro_attr shared = { .flags = CORO_SHARED_STACK };
    long before = rss_kib();
    for (int i = 0; i < N; i++)
        t[i] = coro_spawn_attr(&shared, park_shallow, NULL);
    await_sleep(0.1); /* all parked */
    *(double *)arg = (double)(rss_kib() - before) * 1024 / N;
    ck_assert_int_eq(await_gather(t, N, NULL, NULL), 0);
    return NULL;
}

/* A parked shared-stack task costs its control block and its frames'
 * bytes, not a page. */
START_TEST(parked_shared_stack_task_costs_under_a_page)
{
    double bytes = 0;
    if (test_slow() > 1)
        return; /* sanitizers and valgrind add their own memory */
    run_expect(shared_footprint_main, &bytes, 0);
    ck_assert_msg(bytes < 2048, "%.0f bytes per parked task", bytes);
}
END_TEST

static void *returns_arg(void *arg)
{
    await_yield();
    return arg;
}

static long blocks_live(void)
{
    return atomic_load(&coro__alloc_stats.blocks);
}

/* In a shared-stack task: a sleep makes no record; the first wait that
 * needs one fails with ENOMEM, changing nothing, while memory is short;
 * then it makes one, and later waits reuse it. */
static void *record_task(void *arg)
{
    (void)arg;
    long before = blocks_live();
    ck_assert_int_eq(await_sleep(0.001), 0);
    ck_assert_int_eq(await_yield(), 0);
    ck_assert_int_eq(blocks_live(), before);

    coro_task *other = coro_spawn(returns_arg, &before);
    ck_assert_ptr_nonnull(other);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq(write(fds[1], "x", 1), 1);
    char c = 0;
    size_t got;
    before = blocks_live();
    atomic_store(&coro__alloc_stats.fail_every, 1);
    ck_assert_int_eq(await_read(fds[0], &c, 1, -1, &got), ENOMEM);
    ck_assert_int_eq(await_task(other, NULL), ENOMEM);
    atomic_store(&coro__alloc_stats.fail_every, 0);
    ck_assert_int_eq(blocks_live(), before);

    void *result = NULL;
    ck_assert_int_eq(await_task(other, &result), 0); /* not cancelled */
    ck_assert_ptr_eq(result, &before);
    long with_record = blocks_live();
    ck_assert_int_eq(with_record, before + 1);
    ck_assert_int_eq(await_read(fds[0], &c, 1, -1, &got), 0);
    ck_assert_int_eq(c, 'x'); /* the failed read took nothing */
    ck_assert_int_eq(blocks_live(), with_record);
    coro_mutex *m = coro_mutex_new();
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(await_mutex_lock(m, -1), 0);
    coro_mutex_unlock(m);
    ck_assert_int_eq(blocks_live(), with_record + 1); /* the mutex only */
    coro_mutex_free(m);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

static void *record_main(void *arg)
{
    (void)arg;
    coro_attr shared = { .flags = CORO_SHARED_STACK };
    coro_task *t = coro_spawn_attr(&shared, record_task, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(await_task(t, NULL), 0);
    return NULL;
}

START_TEST(a_shared_stack_task_makes_its_wait_record_when_needed)
{
    run_expect(record_main, NULL, 0);
}
END_TEST

static void *spawns_keep_errno_main(void *arg)
{
    (void)arg;
    coro_attr attrs[2] = { { 0 }, { .flags = CORO_SHARED_STACK } };
    for (int i = 0; i < 2; i++) {
        errno = 0;
        coro_task *t = coro_spawn_attr(&attrs[i], nothing, NULL);
        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(errno, 0);
        ck_assert_int_eq(await_task(t, NULL), 0);
    }
    return NULL;
}

/* A spawn that succeeds leaves errno alone, the first shared-stack one too
 * (which asks the kernel about shadow stacks: EINVAL on most; the fuzzer
 * found it). */
START_TEST(spawns_that_succeed_leave_errno_alone)
{
    run_expect(spawns_keep_errno_main, NULL, 0);
}
END_TEST

Suite *coro_suite(void)
{
    Suite *s = suite_create("coro");
    TCase *tc = test_case("stacks", 30);
    tcase_add_test(tc, stacks_hold_what_their_size_promises);
    tcase_add_test(tc, stack_sizes_round_to_pages_and_reject_extremes);
    tcase_add_test(tc, stack_size_environment_variable);
    tcase_add_test(tc, stacks_are_pooled);
    tcase_add_test(tc, guarded_stacks_come_from_slabs);
    tcase_add_test(tc, stacks_beyond_the_guard_budget_come_from_slabs);
    tcase_add_test(tc, parked_task_costs_about_one_page);
    tcase_add_test(tc, huge_stacks_do_not_reserve_slabs);
    suite_add_tcase(s, tc);

    tc = test_case("shared", 30);
    tcase_add_test(tc, shared_stack_frames_survive_switches);
    tcase_add_test(tc, shared_stack_tasks_wait_on_everything);
    tcase_add_test(tc, a_shared_stack_task_makes_its_wait_record_when_needed);
    tcase_add_test(tc, shared_stack_bad_size_cancel_and_cleanup);
    tcase_add_test(tc, parked_shared_stack_task_costs_under_a_page);
    tcase_add_test(tc, spawns_that_succeed_leave_errno_alone);
    suite_add_tcase(s, tc);

    /* Under valgrind (CK_FORK=no) an overflow is valgrind's to report. */
    if (test_forking()) {
        tc = test_case("guards", 30);
        tcase_add_test(tc, overwritten_canary_aborts_at_the_next_switch);
        tcase_add_test(tc, overflow_of_a_guarded_stack_faults);
        tcase_add_test(tc, overflow_of_an_mprotect_guarded_stack_faults);
        suite_add_tcase(s, tc);
    }
    return s;
}
