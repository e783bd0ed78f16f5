/* Worker threads for blocking calls: results, overlap, queueing, FIFO,
 * cancellation (queued, running, before), errno, scale, shutdown. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"
#include "internal.h"

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A blocking job: sleeps for its milliseconds, counts how many run at
 * once, and records the order in which jobs started. */
struct job {
    int  ms;
    long id;
};

static atomic_int running_now;
static atomic_int running_peak;
static atomic_int started;
static atomic_int start_order[64];

static void *blocking_job(void *arg)
{
    struct job *j = arg;
    int slot = atomic_fetch_add(&started, 1);
    if (slot < 64)
        atomic_store(&start_order[slot], (int)j->id);
    int now = atomic_fetch_add(&running_now, 1) + 1;
    int peak = atomic_load(&running_peak);
    while (now > peak && !atomic_compare_exchange_weak(&running_peak, &peak,
                                                       now))
        ;
    sleep_ms(j->ms);
    atomic_fetch_sub(&running_now, 1);
    return (void *)(j->id * 10);
}

static void *call_blocking(void *arg)
{
    void *result = NULL;
    int err = await_blocking(blocking_job, arg, &result);
    return err ? coro_fail(err) : result;
}

struct batch {
    int    n;
    int    ms;
    int    workers;        /* 0: the default */
    double took;
    int    err;
};

static void *batch_main(void *arg)
{
    struct batch *b = arg;
    static struct job jobs[64];
    coro_task *t[64];
    void *results[64];
    if (b->workers)
        ck_assert_int_eq(coro_set_workers((unsigned)b->workers), 0);
    for (int i = 0; i < b->n; i++) {
        jobs[i] = (struct job){ b->ms, i + 1 };
        t[i] = coro_spawn(call_blocking, &jobs[i]);
    }
    double t0 = coro_now();
    b->err = await_gather(t, (size_t)b->n, results, NULL);
    b->took = coro_now() - t0;
    for (int i = 0; i < b->n; i++)
        ck_assert_ptr_eq(results[i], (void *)(intptr_t)((i + 1) * 10));
    return NULL;
}

/* Five 100 ms jobs on enough workers overlap: about one job's time, with
 * each result where its caller asked for it. The jobs last longer on slow
 * runs, so that all five are running at once even where starting a
 * thread takes longer than 50 ms (valgrind). */
START_TEST(jobs_overlap_and_return_their_results)
{
    int ms = (int)(100 * test_slow());
    struct batch b = { .n = 5, .ms = ms, .workers = 8 };
    run_expect(batch_main, &b, 0);
    ck_assert_int_eq(b.err, 0);
    ck_assert_double_ge(b.took, ms / 1000.0);
    ck_assert_msg(b.took < ms / 1000.0 * 2.5, "took %.3f s", b.took);
    ck_assert_int_eq(atomic_load(&running_peak), 5);
}
END_TEST

/* Beyond the pool size jobs queue, FIFO: on one worker six 40 ms jobs run
 * one at a time, in the order they were submitted; on two they take three
 * rounds, never more than two at once. */
START_TEST(jobs_beyond_the_pool_queue_in_fifo_order)
{
    struct batch b = { .n = 6, .ms = 40, .workers = 1 };
    run_expect(batch_main, &b, 0);
    ck_assert_int_eq(atomic_load(&running_peak), 1);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(atomic_load(&start_order[i]), i + 1);
    ck_assert_double_ge(b.took, 6 * 0.04);

    atomic_store(&running_peak, 0);
    atomic_store(&started, 0);
    b = (struct batch){ .n = 6, .ms = 40, .workers = 2 };
    run_expect(batch_main, &b, 0);
    ck_assert_int_eq(atomic_load(&running_peak), 2);
    ck_assert_double_ge(b.took, 3 * 0.04);
    ck_assert_msg(b.took < 6 * 0.04, "took %.3f s", b.took);
}
END_TEST

/* CORO_WORKERS sets the pool size; a malformed value is EINVAL. */
START_TEST(workers_environment_variable)
{
    struct batch b = { .n = 6, .ms = 20 };
    setenv("CORO_WORKERS", "3", 1);
    ck_assert_uint_eq(coro_workers(), 3);
    run_expect(batch_main, &b, 0);
    ck_assert_int_eq(atomic_load(&running_peak), 3);
    static const char *bad[] = { "0", "abc", "4x", "1025", "-1" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("CORO_WORKERS", bad[i], 1);
        ck_assert_msg(coro_run(batch_main, &b, NULL) == EINVAL,
                      "CORO_WORKERS=%s accepted", bad[i]);
        ck_assert_msg(coro_workers() == 0, "CORO_WORKERS=%s: %u", bad[i],
                      coro_workers());
    }
    unsetenv("CORO_WORKERS");
}
END_TEST

static void *workers_main(void *arg)
{
    unsigned *seen = arg;
    seen[0] = coro_workers();
    ck_assert_int_eq(coro_set_workers(3), 0);
    seen[1] = coro_workers();
    ck_assert_int_eq(coro_set_workers(0), EINVAL);
    seen[2] = coro_workers(); /* unchanged by the refusal */
    return NULL;
}

/* coro_workers: asyncio's min(32, CPUs + 4) by default, the loop's own
 * limit inside it, and what coro_run would choose outside. */
START_TEST(workers_tells_the_pools_size)
{
    unsetenv("CORO_WORKERS");
    cpu_set_t set;
    ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
    unsigned cpus = (unsigned)CPU_COUNT(&set);
    unsigned dflt = cpus + 4 < 32 ? cpus + 4 : 32;
    ck_assert_uint_eq(coro_workers(), dflt);
    unsigned seen[3] = { 0, 0, 0 };
    run_expect(workers_main, seen, 0);
    ck_assert_uint_eq(seen[0], dflt);
    ck_assert_uint_eq(seen[1], 3);
    ck_assert_uint_eq(seen[2], 3);
    ck_assert_uint_eq(coro_workers(), dflt); /* a new loop starts afresh */
    setenv("CORO_WORKERS", "1024", 1);
    ck_assert_uint_eq(coro_workers(), 1024);
    unsetenv("CORO_WORKERS");
}
END_TEST

static void *set_errno(void *arg)
{
    errno = (int)(intptr_t)arg;
    return arg;
}

static void *errno_main(void *arg)
{
    (void)arg;
    void *result = NULL;
    errno = 0;
    ck_assert_int_eq(await_blocking(set_errno, (void *)(intptr_t)ENOENT,
                                    &result), 0);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_ptr_eq(result, (void *)(intptr_t)ENOENT);
    ck_assert_int_eq(await_blocking(set_errno, NULL, NULL), 0);
    ck_assert_int_eq(errno, 0); /* fn starts with errno 0 */
    return NULL;
}

/* errno set by the job in its thread comes back to the caller. */
START_TEST(errno_of_the_job_is_carried_back)
{
    run_expect(errno_main, NULL, 0);
}
END_TEST

static atomic_int finished;
static atomic_int slow_started; /* slow jobs a worker has begun */

static void *slow_job(void *arg)
{
    atomic_fetch_add(&slow_started, 1);
    sleep_ms((int)(intptr_t)arg);
    atomic_fetch_add(&finished, 1);
    return arg;
}

struct cancel_probe {
    int    err;
    void  *result;
    double returned_at;
};

static void *cancellable_caller(void *arg)
{
    struct cancel_probe *p = arg;
    p->err = await_blocking(slow_job, (void *)(intptr_t)100, &p->result);
    p->returned_at = coro_now();
    return NULL;
}

static void *cancel_running_main(void *arg)
{
    struct cancel_probe *p = arg;
    double t0 = coro_now();
    coro_task *t = coro_spawn(cancellable_caller, p);
    /* Cancel once a worker runs the job, however long a busy machine
     * takes to give it one (a job still queued is dropped instead). */
    while (atomic_load(&slow_started) == 0)
        ck_assert_int_eq(await_sleep(0.001), 0);
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    p->returned_at -= t0;
    return NULL;
}

/* A task cancelled while its job runs stays parked until the job returns
 * (the job may use its stack), then gets ECANCELED with the result. */
START_TEST(cancel_during_a_running_job_waits_for_it)
{
    struct cancel_probe p = { -1, NULL, 0 };
    run_expect(cancel_running_main, &p, 0);
    ck_assert_int_eq(p.err, ECANCELED);
    ck_assert_ptr_eq(p.result, (void *)(intptr_t)100);
    ck_assert_int_eq(atomic_load(&finished), 1);
    ck_assert_double_ge(p.returned_at, 0.1);
}
END_TEST

static void *cancel_queued_main(void *arg)
{
    struct cancel_probe *p = arg;
    ck_assert_int_eq(coro_set_workers(1), 0);
    static struct cancel_probe first;
    coro_task *busy = coro_spawn(cancellable_caller, &first);
    await_yield(); /* its job takes the one worker */
    double t0 = coro_now();
    coro_task *t = coro_spawn(cancellable_caller, p);
    await_sleep(0.01);
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    p->returned_at -= t0;
    ck_assert_int_eq(await_task(busy, NULL), 0);
    return NULL;
}

/* A job still queued is dropped: ECANCELED at once, fn never runs. */
START_TEST(cancel_of_a_queued_job_drops_it)
{
    struct cancel_probe p = { -1, (void *)1, 0 };
    run_expect(cancel_queued_main, &p, 0);
    ck_assert_int_eq(p.err, ECANCELED);
    ck_assert_ptr_eq(p.result, (void *)1); /* untouched: fn did not run */
    ck_assert_int_eq(atomic_load(&finished), 1); /* only the first job */
    ck_assert_double_lt(p.returned_at, 0.09);
}
END_TEST

static atomic_int ran;

static void *mark_ran(void *arg)
{
    atomic_fetch_add(&ran, 1);
    return arg;
}

static void *already_cancelled_main(void *arg)
{
    (void)arg;
    coro_cancel(coro_self());
    ck_assert_int_eq(await_blocking(mark_ran, NULL, NULL), ECANCELED);
    /* A shield lets clean-up make blocking calls. */
    coro_shield(1);
    ck_assert_int_eq(await_blocking(mark_ran, NULL, NULL), 0);
    return NULL;
}

START_TEST(already_cancelled_caller_does_not_run_the_job)
{
    ck_assert_int_eq(coro_run(already_cancelled_main, NULL, NULL),
                     ECANCELED);
    ck_assert_int_eq(atomic_load(&ran), 1);
}
END_TEST

static void *count_job(void *arg);

static void *bad_input_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(await_blocking(NULL, NULL, NULL), EINVAL);
    ck_assert_int_eq(coro_set_workers(0), EINVAL);
    ck_assert_int_eq(coro_set_workers(1025), EINVAL);
    ck_assert_int_eq(coro_set_workers(UINT_MAX), EINVAL);
    ck_assert_int_eq(coro_set_workers((unsigned)-1 / 2 + 1), EINVAL);
    unsigned before = coro_workers();
    ck_assert_uint_ge(before, 1);
    ck_assert_uint_le(before, 1024);
    ck_assert_int_eq(coro_set_workers(1024), 0);
    ck_assert_uint_eq(coro_workers(), 1024);
    ck_assert_int_eq(coro_set_workers(1), 0);
    ck_assert_uint_eq(coro_workers(), 1);
    void *r = NULL;
    ck_assert_int_eq(await_blocking(count_job, NULL, &r), 0); /* still runs */
    ck_assert_ptr_eq(r, (void *)1);
    atomic_store(&ran, 0);
    return NULL;
}

START_TEST(bad_input_is_rejected)
{
    run_expect(bad_input_main, NULL, 0);
    ck_assert_int_eq(await_blocking(mark_ran, NULL, NULL), EPERM);
    ck_assert_int_eq(coro_set_workers(4), EINVAL);
    ck_assert_int_eq(atomic_load(&ran), 0);
}
END_TEST

static void *count_job(void *arg)
{
    atomic_fetch_add(&ran, 1);
    return (void *)((intptr_t)arg + 1);
}

static void *one_of_many(void *arg)
{
    void *result;
    int err = await_blocking(count_job, arg, &result);
    if (err)
        return coro_fail(err);
    return result == (void *)((intptr_t)arg + 1) ? NULL : coro_fail(EIO);
}

static void *many_main(void *arg)
{
    int n = *(int *)arg;
    coro_task **t = malloc((size_t)n * sizeof *t);
    for (int i = 0; i < n; i++)
        t[i] = coro_spawn(one_of_many, (void *)(intptr_t)i);
    int err = await_gather(t, (size_t)n, NULL, NULL);
    free(t);
    ck_assert_int_eq(err, 0);
    return NULL;
}

/* Thousands of jobs: each runs exactly once and its result comes back to
 * its own caller. */
START_TEST(thousands_of_jobs_lose_nothing)
{
    int n = 5000;
    run_expect(many_main, &n, 0);
    ck_assert_int_eq(atomic_load(&ran), n);
}
END_TEST

static void *queue_then_leave_main(void *arg)
{
    static struct job jobs[10];
    (void)arg;
    ck_assert_int_eq(coro_set_workers(1), 0);
    for (int i = 0; i < 10; i++) {
        jobs[i] = (struct job){ (int)(50 * test_slow()), i };
        coro_spawn(call_blocking, &jobs[i]);
    }
    /* One job runs, nine are queued; a slow machine may take a while to
     * start the worker. */
    while (atomic_load(&started) == 0)
        await_sleep(0.001);
    return NULL;
}

/* main returns with a job running and nine queued: the queued ones are
 * dropped, the running one is waited for, the workers are joined. */
START_TEST(shutdown_with_jobs_queued_is_clean)
{
    double t0 = coro_now();
    run_expect(queue_then_leave_main, NULL, 0);
    double took = coro_now() - t0;
    ck_assert_int_eq(atomic_load(&started), 1);
    ck_assert_int_eq(atomic_load(&running_now), 0);
    ck_assert_double_ge(took, 0.05);
    ck_assert_msg(took < 0.25 * test_slow(), "took %.3f s", took);
}
END_TEST

static void *leave_running_job(void *arg)
{
    static struct cancel_probe probe;
    (void)arg;
    coro_detach(coro_spawn(cancellable_caller, &probe));
    await_sleep(0.02); /* its job is running, not queued, when main ends */
    return NULL;
}

/* coro_run's clean-up waits for a job that is running. */
START_TEST(run_waits_for_running_jobs)
{
    double t0 = coro_now();
    run_expect(leave_running_job, NULL, 0);
    ck_assert_int_eq(atomic_load(&finished), 1);
    ck_assert_double_ge(coro_now() - t0, 0.1);
}
END_TEST

static void *only_blocking_main(void *arg)
{
    double *took = arg;
    double t0 = coro_now();
    ck_assert_int_eq(await_blocking(slow_job, (void *)(intptr_t)20, NULL), 0);
    *took = coro_now() - t0;
    return NULL;
}

/* The loop, blocked in the kernel with no timer at all, wakes as soon as
 * the job ends; a job in flight is not a deadlock. */
START_TEST(sleeping_loop_wakes_when_a_job_ends)
{
    double took = 0;
    run_expect(only_blocking_main, &took, 0);
    ck_assert_double_ge(took, 0.02);
    ck_assert_msg(took < 0.02 + 0.25 * test_slow(), "took %.3f s", took);
}
END_TEST

static void *spin_until(void *arg)
{
    atomic_int *stop = arg;
    long spins = 0;
    while (!atomic_load(stop)) {
        await_yield();
        spins++;
    }
    return (void *)spins;
}

static void *busy_loop_main(void *arg)
{
    double *took = arg;
    static atomic_int stop;
    coro_task *spinner = coro_spawn(spin_until, &stop);
    double t0 = coro_now();
    ck_assert_int_eq(await_blocking(slow_job, (void *)(intptr_t)20, NULL), 0);
    *took = coro_now() - t0;
    atomic_store(&stop, 1);
    void *spins;
    ck_assert_int_eq(await_task(spinner, &spins), 0);
    ck_assert_int_gt((long)spins, 0);
    return NULL;
}

/* A loop kept busy by other tasks still resumes the caller promptly. */
START_TEST(busy_loop_notices_completions)
{
    double took = 0;
    run_expect(busy_loop_main, &took, 0);
    ck_assert_double_ge(took, 0.02);
    /* A loop that never looked would never resume it (the spinner stops
     * only after): any bound shows it looks. A loaded machine can hold
     * the worker off the CPU for a while, and valgrind runs one thread at
     * a time, hence the room. */
    ck_assert_msg(took < 0.02 + 0.5 * test_slow(), "took %.3f s", took);
}
END_TEST

static void *signal_mask_job(void *arg)
{
    (void)arg;
    sigset_t set;
    pthread_sigmask(SIG_SETMASK, NULL, &set);
    return (void *)(intptr_t)(sigismember(&set, SIGINT) &&
                              sigismember(&set, SIGTERM));
}

static void *signal_mask_main(void *arg)
{
    void *blocked = NULL;
    ck_assert_int_eq(await_blocking(signal_mask_job, NULL, &blocked), 0);
    *(void **)arg = blocked;
    return NULL;
}

/* Signals are for the loop's thread, not the workers. */
START_TEST(workers_block_signals)
{
    void *blocked = NULL;
    run_expect(signal_mask_main, &blocked, 0);
    ck_assert_ptr_eq(blocked, (void *)1);
}
END_TEST

static void reset_counters(void)
{
    test_setup();
    atomic_store(&running_now, 0);
    atomic_store(&running_peak, 0);
    atomic_store(&started, 0);
    atomic_store(&finished, 0);
    atomic_store(&slow_started, 0);
    atomic_store(&ran, 0);
}

Suite *executor_suite(void)
{
    Suite *s = suite_create("executor");
    TCase *tc = test_case("blocking", 20);
    tcase_add_checked_fixture(tc, reset_counters, NULL);
    tcase_add_test(tc, jobs_overlap_and_return_their_results);
    tcase_add_test(tc, jobs_beyond_the_pool_queue_in_fifo_order);
    tcase_add_test(tc, workers_environment_variable);
    tcase_add_test(tc, workers_tells_the_pools_size);
    tcase_add_test(tc, errno_of_the_job_is_carried_back);
    tcase_add_test(tc, bad_input_is_rejected);
    tcase_add_test(tc, thousands_of_jobs_lose_nothing);
    tcase_add_test(tc, sleeping_loop_wakes_when_a_job_ends);
    tcase_add_test(tc, busy_loop_notices_completions);
    tcase_add_test(tc, workers_block_signals);
    suite_add_tcase(s, tc);

    tc = test_case("cancel", 20);
    tcase_add_checked_fixture(tc, reset_counters, NULL);
    tcase_add_test(tc, cancel_during_a_running_job_waits_for_it);
    tcase_add_test(tc, cancel_of_a_queued_job_drops_it);
    tcase_add_test(tc, already_cancelled_caller_does_not_run_the_job);
    tcase_add_test(tc, shutdown_with_jobs_queued_is_clean);
    tcase_add_test(tc, run_waits_for_running_jobs);
    suite_add_tcase(s, tc);
    return s;
}
