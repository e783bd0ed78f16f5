/* The clock, the deadline heap and await_sleep. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "internal.h"

/* ---------------------------------------------------------------------- */
/* The heap, white-box                                                    */
/* ---------------------------------------------------------------------- */

/* Equal deadlines come out in the order they were set. */
START_TEST(heap_equal_deadlines_pop_in_insertion_order)
{
    struct coro__timers tm = { 0 };
    struct coro__timer nodes[100];
    ck_assert_int_eq(coro__timers_reserve(&tm, 100), 0);
    for (int i = 0; i < 100; i++) {
        nodes[i].id = CORO__TIMER_IDLE;
        coro__timer_start(&tm, &nodes[i], i % 2 ? 500 : 1000);
    }
    /* The 50 nodes at 500 first, then the 50 at 1000, each in order. */
    for (int round = 0; round < 2; round++)
        for (int i = round ? 0 : 1; i < 100; i += 2) {
            struct coro__timer *n = coro__timer_expired(&tm, 2000);
            ck_assert_ptr_eq(n, &nodes[i]);
            ck_assert_uint_eq(n->id, CORO__TIMER_IDLE);
        }
    ck_assert_ptr_null(coro__timer_expired(&tm, INT64_MAX - 1));
    coro__timers_term(&tm);
}
END_TEST

static int64_t rand_when(unsigned *seed)
{
    return (int64_t)(rand_r(seed) % 1000);
}

/* Random starts and stops keep (when, seq) order: what pops is sorted, and
 * nothing stopped pops. */
START_TEST(heap_random_removals_keep_order)
{
    enum { N = 20000 };
    struct coro__timers tm = { 0 };
    struct coro__timer *nodes = calloc(N, sizeof *nodes);
    int64_t *whens = calloc(N, sizeof *whens); /* the heap's, not a node's */
    unsigned seed = 12345;
    ck_assert_int_eq(coro__timers_reserve(&tm, N), 0);
    for (int i = 0; i < N; i++) {
        nodes[i].id = CORO__TIMER_IDLE;
        whens[i] = rand_when(&seed);
        coro__timer_start(&tm, &nodes[i], whens[i]);
        ck_assert_int_eq(coro__timer_when(&tm, &nodes[i]), whens[i]);
    }
    for (int i = 0; i < N; i += 2)
        coro__timer_stop(&tm, &nodes[(i * 7919) % N]);
    coro__timer_stop(&tm, &nodes[0]); /* stopping twice is harmless */
    ck_assert_int_eq(coro__timer_next(&tm) >= 0, 1);
    size_t popped = 0;
    int64_t last_when = -1;
    ptrdiff_t last_started = -1; /* node i was started i-th */
    struct coro__timer *n;
    while ((n = coro__timer_expired(&tm, INT64_MAX - 1)) != NULL) {
        ck_assert_uint_eq(n->id, CORO__TIMER_IDLE);
        int64_t when = whens[n - nodes];
        ck_assert(when > last_when ||
                  (when == last_when && n - nodes > last_started));
        last_when = when;
        last_started = n - nodes;
        popped++;
    }
    ck_assert_uint_eq(popped, N / 2);
    ck_assert_int_eq(coro__timer_next(&tm), CORO__NEVER);
    coro__timers_term(&tm);
    free(nodes);
    free(whens);
}
END_TEST

/* Ids go back to the free list on stop and on expiry: many more starts
 * than the reserve, with at most eight armed, keep the heap in order. */
START_TEST(heap_ids_are_reused)
{
    enum { K = 8 };
    struct coro__timers tm = { 0 };
    struct coro__timer nodes[K];
    int64_t whens[K];
    unsigned seed = 777;
    ck_assert_int_eq(coro__timers_reserve(&tm, K), 0);
    for (int i = 0; i < K; i++)
        nodes[i].id = CORO__TIMER_IDLE;
    for (int round = 0; round < 10000; round++) {
        struct coro__timer *n = &nodes[rand_r(&seed) % K];
        if (n->id == CORO__TIMER_IDLE)
            coro__timer_start(&tm, n, whens[n - nodes] = rand_when(&seed));
        else if (round % 3)
            coro__timer_stop(&tm, n);
        else
            ck_assert_ptr_nonnull(coro__timer_expired(&tm, INT64_MAX - 1));
    }
    int64_t last = -1;
    struct coro__timer *n;
    while ((n = coro__timer_expired(&tm, INT64_MAX - 1)) != NULL) {
        ck_assert_int_ge(whens[n - nodes], last);
        last = whens[n - nodes];
    }
    for (int i = 0; i < K; i++)
        ck_assert_uint_eq(nodes[i].id, CORO__TIMER_IDLE);
    coro__timers_term(&tm);
}
END_TEST

/* Ties are FIFO by an insertion number kept mod 2^32: across its wrap
 * too. */
START_TEST(heap_ties_stay_fifo_across_the_insertion_numbers_wrap)
{
    enum { N = 6 };
    struct coro__timers tm = { 0 };
    struct coro__timer nodes[N];
    ck_assert_int_eq(coro__timers_reserve(&tm, N), 0);
    tm.seq = UINT32_MAX - 2;
    for (int i = 0; i < N; i++) {
        nodes[i].id = CORO__TIMER_IDLE;
        coro__timer_start(&tm, &nodes[i], 42);
    }
    for (int i = 0; i < N; i++)
        ck_assert_ptr_eq(coro__timer_expired(&tm, 42), &nodes[i]);
    coro__timers_term(&tm);
}
END_TEST

START_TEST(deadline_conversion_handles_nan_negative_and_huge)
{
    int64_t d;
    ck_assert_int_eq(coro__deadline(NAN, &d), EINVAL);
    ck_assert_int_eq(coro__deadline(-1, &d), 0);
    ck_assert_int_eq(d, CORO__NEVER);
    ck_assert_int_eq(coro__deadline(INFINITY, &d), 0);
    ck_assert_int_eq(d, CORO__NEVER);
    ck_assert_int_eq(coro__deadline(1e300, &d), 0);
    ck_assert_int_eq(d, CORO__NEVER);
    int64_t now = coro__clock_ns();
    ck_assert_int_eq(coro__deadline(1.5, &d), 0);
    ck_assert_int_ge(d, now + 1500000000);
    ck_assert_int_lt(d, now + 1600000000);
}
END_TEST

START_TEST(now_is_monotonic_seconds)
{
    double a = coro_now();
    double b = coro_now();
    ck_assert_double_ge(b, a);
    ck_assert_double_gt(a, 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* await_sleep                                                            */
/* ---------------------------------------------------------------------- */

static void *sleep_and_trace(void *arg)
{
    int ms = (int)(intptr_t)arg;
    ck_assert_int_eq(await_sleep(ms / 1000.0), 0);
    trace("%d", ms);
    return NULL;
}

static void *sleep_sort_main(void *arg)
{
    (void)arg;
    static const int ms[] = { 30, 10, 50, 20, 40 };
    coro_task *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = coro_spawn(sleep_and_trace, (void *)(intptr_t)ms[i]);
    double t0 = coro_now();
    ck_assert_int_eq(await_gather(t, 5, NULL, NULL), 0);
    double took = coro_now() - t0;
    ck_assert_double_ge(took, 0.05);
    ck_assert_double_lt(took, 0.05 + 0.3 * test_slow());
    return NULL;
}

/* Sleepers wake in deadline order, all in about the longest sleep. */
START_TEST(sleepers_wake_in_deadline_order)
{
    run_expect(sleep_sort_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "10 20 30 40 50");
}
END_TEST

static void *zero_sleeper(void *arg)
{
    for (int i = 0; i < 2; i++) {
        trace("%s%d", (const char *)arg, i);
        ck_assert_int_eq(await_sleep(((const char *)arg)[0] == 'a' ? 0 : -1), 0);
    }
    return NULL;
}

static void *zero_sleep_main(void *arg)
{
    (void)arg;
    coro_task *t[2] = { coro_spawn(zero_sleeper, "a"),
                        coro_spawn(zero_sleeper, "b") };
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), 0);
    ck_assert_int_eq(await_sleep(NAN), EINVAL);
    return NULL;
}

/* sleep(0) and negative sleeps act as await_yield (asyncio.sleep(0)). */
START_TEST(sleep_zero_or_negative_yields)
{
    run_expect(zero_sleep_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "a0 b0 a1 b1");
    ck_assert_int_eq(await_sleep(1), EPERM);
    ck_assert_int_eq(await_yield(), EPERM);
}
END_TEST

static void *sleep_60(void *arg)
{
    *(int *)arg = await_sleep(60);
    return NULL;
}

static void *cancel_sleeper_main(void *arg)
{
    int err = -1;
    coro_task *t = coro_spawn(sleep_60, &err);
    await_sleep(0.01);
    double t0 = coro_now();
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    *(double *)arg = coro_now() - t0;
    ck_assert_int_eq(err, ECANCELED);
    return NULL;
}

/* A cancelled sleeper wakes at once with ECANCELED. */
START_TEST(cancelled_sleeper_wakes_promptly)
{
    double took = -1;
    run_expect(cancel_sleeper_main, &took, 0);
    ck_assert_double_lt(took, 0.3 * test_slow()); /* of a 60 s sleep */
}
END_TEST

static void *cancel_many_main(void *arg)
{
    (void)arg;
    enum { N = 2000 };
    static int errs[N];
    static coro_task *t[N];
    for (int i = 0; i < N; i++)
        t[i] = coro_spawn(sleep_60, &errs[i]);
    await_yield();
    /* Cancel every other one: the rest must still be in the heap. */
    for (int i = 0; i < N; i += 2)
        coro_cancel(t[i]);
    await_yield();
    ck_assert_uint_eq(coro_self()->loop->timers.n, N / 2);
    for (int i = 1; i < N; i += 2)
        coro_cancel(t[i]);
    ck_assert_int_eq(await_gather(t, N, NULL, NULL), ECANCELED);
    ck_assert_uint_eq(coro_self()->loop->timers.n, 0);
    return NULL;
}

/* Cancelled sleepers leave the heap at once (no lazy deletion). */
START_TEST(cancelled_sleepers_leave_the_heap)
{
    run_expect(cancel_many_main, NULL, 0);
}
END_TEST

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of 41 sleeps of 1.2 ms, as a ratio to 1.2 ms: a machine
 * busy with other work stretches a few sleeps, not the middle one. */
static void *precision_main(void *arg)
{
    enum { N = 41 };
    double want = 0.0012, took[N];
    for (int i = 0; i < N; i++) {
        double t0 = coro_now();
        ck_assert_int_eq(await_sleep(want), 0);
        took[i] = (coro_now() - t0) / want;
    }
    qsort(took, N, sizeof *took, by_value);
    *(double *)arg = took[N / 2];
    return NULL;
}

/* Sub-millisecond precision: a 1.2 ms sleep rounded to whole milliseconds
 * would take 2 ms (every sleep's ratio at least 1.67); ours oversleeps by
 * tens of microseconds. */
START_TEST(sleeps_are_precise_below_a_millisecond)
{
    double ratio = 0;
    if (test_slow() > 1)
        return; /* meaningless under valgrind or a sanitizer */
    run_expect(precision_main, &ratio, 0);
    ck_assert_double_ge(ratio, 1.0);
    ck_assert_msg(ratio < 1.45, "the median sleep took %.2fx its duration",
                  ratio);
}
END_TEST

START_TEST(timerfd_fallback_keeps_precision)
{
    double ratio = 0;
    if (test_slow() > 1)
        return;
    atomic_store(&coro__have_pwait2, 0);
    run_expect(precision_main, &ratio, 0);
    atomic_store(&coro__have_pwait2, 1);
    ck_assert_double_ge(ratio, 1.0);
    ck_assert_msg(ratio < 1.45, "the median sleep took %.2fx its duration",
                  ratio);
}
END_TEST

static void *idle_main(void *arg)
{
    (void)arg;
    coro_task *t[100];
    for (int i = 0; i < 100; i++)
        t[i] = coro_spawn(sleep_and_trace, (void *)(intptr_t)300);
    ck_assert_int_eq(await_gather(t, 100, NULL, NULL), 0);
    return NULL;
}

/* A loop whose tasks all sleep waits in the kernel: no CPU burnt. */
START_TEST(sleeping_loop_uses_no_cpu)
{
    double cpu0 = cpu_seconds();
    double t0 = coro_now();
    run_expect(idle_main, NULL, 0);
    double wall = coro_now() - t0;
    double cpu = cpu_seconds() - cpu0;
    ck_assert_double_ge(wall, 0.3);
    /* A busy loop would burn all of it; spawning 100 tasks under a
     * sanitizer costs a few tens of milliseconds. */
    double share = 0.1 * test_slow() < 0.5 ? 0.1 * test_slow() : 0.5;
    ck_assert_msg(cpu < share * wall, "cpu %.3f s over %.3f s", cpu, wall);
}
END_TEST

static void *spin_yield(void *arg)
{
    volatile int *stop = arg;
    while (!*stop)
        await_yield();
    return NULL;
}

static void *starve_main(void *arg)
{
    (void)arg;
    static volatile int stop;
    coro_task *a = coro_spawn(spin_yield, (void *)&stop);
    coro_task *b = coro_spawn(spin_yield, (void *)&stop);
    double t0 = coro_now();
    ck_assert_int_eq(await_sleep(0.01), 0);
    ck_assert_double_lt(coro_now() - t0, 0.01 + 0.2 * test_slow());
    stop = 1;
    coro_task *t[2] = { a, b };
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), 0);
    return NULL;
}

/* Two tasks yielding to each other forever do not starve a sleeper. */
START_TEST(busy_yielders_do_not_starve_sleepers)
{
    run_expect(starve_main, NULL, 0);
}
END_TEST

static void *sleep_inf_main(void *arg)
{
    *(int *)arg = await_sleep(INFINITY);
    return NULL;
}

/* An infinite sleep can never wake on its own: alone, it deadlocks. */
START_TEST(infinite_sleep_alone_is_a_deadlock)
{
    int err = -1;
    char *report = run_reporting(sleep_inf_main, &err, EDEADLK);
    ck_assert_int_eq(err, ECANCELED);
    expect_deadlock_report(report, 1);
    expect_report_line(report, "#1 ", " main ", "sleeping until cancelled",
                       NULL);
    free(report);
}
END_TEST

Suite *timer_suite(void)
{
    Suite *s = suite_create("timer");
    TCase *tc = test_case("heap", 10);
    tcase_add_test(tc, heap_equal_deadlines_pop_in_insertion_order);
    tcase_add_test(tc, heap_random_removals_keep_order);
    tcase_add_test(tc, heap_ids_are_reused);
    tcase_add_test(tc, heap_ties_stay_fifo_across_the_insertion_numbers_wrap);
    tcase_add_test(tc, deadline_conversion_handles_nan_negative_and_huge);
    tcase_add_test(tc, now_is_monotonic_seconds);
    suite_add_tcase(s, tc);

    tc = test_case("sleep", 20);
    tcase_add_test(tc, sleepers_wake_in_deadline_order);
    tcase_add_test(tc, sleep_zero_or_negative_yields);
    tcase_add_test(tc, cancelled_sleeper_wakes_promptly);
    tcase_add_test(tc, cancelled_sleepers_leave_the_heap);
    tcase_add_test(tc, sleeps_are_precise_below_a_millisecond);
    tcase_add_test(tc, timerfd_fallback_keeps_precision);
    tcase_add_test(tc, sleeping_loop_uses_no_cpu);
    tcase_add_test(tc, busy_yielders_do_not_starve_sleepers);
    tcase_add_test(tc, infinite_sleep_alone_is_a_deadlock);
    suite_add_tcase(s, tc);
    return s;
}
