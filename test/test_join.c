/* join.c: await_task (join, and wait_for), await_gather, await_wait and
 * the as_completed iterator. Named after the CPython tests
 * (Lib/test/test_asyncio/test_tasks.py) they mirror. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "internal.h"

#define TOKEN(i) ((void *)(uintptr_t)(i))

/* ---------------------------------------------------------------------- */
/* Join                                                                   */
/* ---------------------------------------------------------------------- */

static void *fail_with(void *arg)
{
    return coro_fail((int)(uintptr_t)arg);
}

/* The caller's own cancellation comes before the task's error. */
static void *cancelled_joiner_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(fail_with, TOKEN(EIO));
    ck_assert_int_eq(await_yield(), 0); /* t fails with EIO */
    coro_cancel(coro_self());
    void *result = TOKEN(1);
    ck_assert_int_eq(await_task(t, &result), ECANCELED);
    ck_assert_ptr_null(result);
    return NULL;
}

START_TEST(join_by_a_cancelled_caller_is_ecanceled_first)
{
    run_expect(cancelled_joiner_main, NULL, ECANCELED);
}
END_TEST

static void *sleep_then_return(void *arg)
{
    await_sleep(0.01);
    return arg;
}

static void *join_main(void *arg)
{
    (void)arg;
    void *result = NULL;
    coro_task *t = coro_spawn(return_arg, TOKEN(42));
    ck_assert_int_eq(await_task(t, &result), 0);
    ck_assert_ptr_eq(result, TOKEN(42));

    t = coro_spawn(fail_with, TOKEN(EPIPE));
    ck_assert_int_eq(await_task(t, NULL), EPIPE);

    /* Already ended when joined. */
    t = coro_spawn(return_arg, TOKEN(9));
    await_yield();
    ck_assert_int_eq(await_task(t, &result), 0);
    ck_assert_ptr_eq(result, TOKEN(9));

    /* Suspends until the child ends. */
    t = coro_spawn(sleep_then_return, TOKEN(11));
    ck_assert_int_eq(await_task(t, &result), 0);
    ck_assert_ptr_eq(result, TOKEN(11));
    return NULL;
}

START_TEST(join_returns_result_and_error)
{
    run_expect(join_main, NULL, 0);
}
END_TEST

static void *cancel_then_return(void *arg)
{
    (void)arg;
    coro_cancel(coro_self());
    return TOKEN(1);
}

static void *join_cancelled_main(void *arg)
{
    (void)arg;
    void *result = NULL;
    coro_task *t = coro_spawn(cancel_then_return, NULL);
    ck_assert_int_eq(await_task(t, &result), ECANCELED);
    ck_assert_ptr_eq(result, TOKEN(1));
    return NULL;
}

/* A task cancelled before it ended reports ECANCELED, even if it returned
 * normally. */
START_TEST(join_reports_ecanceled_for_cancelled_task)
{
    run_expect(join_cancelled_main, NULL, 0);
}
END_TEST

static void *second_joiner(void *arg)
{
    return TOKEN(await_task(arg, NULL));
}

static void *join_errors_main(void *arg)
{
    (void)arg;
    void *result = NULL;
    ck_assert_int_eq(await_task(NULL, NULL), EINVAL);
    ck_assert_int_eq(await_task(coro_self(), NULL), EDEADLK);
    ck_assert_int_eq(await_task_timeout(coro_self(), 1, NULL), EDEADLK);

    coro_task *t = coro_spawn(sleep_then_return, TOKEN(4));
    coro_task *j = coro_spawn(second_joiner, t);
    await_yield(); /* j now awaits t */
    ck_assert_int_eq(await_task(t, NULL), EINVAL);
    ck_assert_int_eq(await_task_timeout(t, NAN, NULL), EINVAL);
    ck_assert_int_eq(await_task(j, &result), 0);
    ck_assert_ptr_eq(result, TOKEN(0));

    t = coro_spawn(return_arg, NULL);
    coro_detach(t);
    ck_assert_int_eq(await_task(t, NULL), EINVAL);
    await_yield(); /* t ends and is freed */
    return NULL;
}

START_TEST(join_rejects_bad_input)
{
    run_expect(join_errors_main, NULL, 0);
    ck_assert_int_eq(await_task(NULL, NULL), EPERM);
    ck_assert_int_eq(await_task_timeout(NULL, 1, NULL), EPERM);
}
END_TEST

static void *join_timeout_main(void *arg)
{
    (void)arg;
    void *result = NULL;
    double t0 = coro_now();
    coro_task *t = coro_spawn(record_sleep, TOKEN(1));
    ck_assert_int_eq(await_task_timeout(t, 0.02, &result), ETIMEDOUT);
    trace("timeout");
    ck_assert_ptr_eq(result, TOKEN(1)); /* it returned after the cancel */
    ck_assert_double_lt(coro_now() - t0, 1.0 * test_slow());

    t = coro_spawn(sleep_then_return, TOKEN(2));
    ck_assert_int_eq(await_task_timeout(t, 30, &result), 0);
    ck_assert_ptr_eq(result, TOKEN(2));

    t = coro_spawn(return_arg, TOKEN(3));
    await_yield();
    ck_assert_int_eq(await_task_timeout(t, 0, &result), 0);
    ck_assert_ptr_eq(result, TOKEN(3));

    t = coro_spawn(record_sleep, NULL);
    ck_assert_int_eq(await_task_timeout(t, 0, NULL), ETIMEDOUT);
    return NULL;
}

/* asyncio.wait_for: on timeout the task is cancelled, awaited and freed. */
START_TEST(join_timeout_cancels_and_frees_the_task)
{
    run_expect(join_timeout_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "child 125 timeout child 125");
}
END_TEST

static void *join_child_sleeping(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(record_sleep, NULL);
    int err = await_task(t, NULL);
    trace("parent %d", err);
    return coro_fail(err);
}

static void *cancel_joiner_main(void *arg)
{
    (void)arg;
    coro_task *parent = coro_spawn(join_child_sleeping, NULL);
    await_sleep(0.01);
    coro_cancel(parent);
    ck_assert_int_eq(await_task(parent, NULL), ECANCELED);
    return NULL;
}

/* Structured: cancelling a task that joins cancels what it joins. */
START_TEST(cancelling_a_joiner_cancels_its_child)
{
    run_expect(cancel_joiner_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "child 125 parent 125");
}
END_TEST

static void *join_timeout_child(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(record_sleep, NULL);
    int err = await_task_timeout(t, 30, NULL);
    trace("parent %d", err);
    return NULL;
}

static void *cancel_timed_joiner_main(void *arg)
{
    (void)arg;
    coro_task *parent = coro_spawn(join_timeout_child, NULL);
    await_sleep(0.01);
    coro_cancel(parent);
    ck_assert_int_eq(await_task(parent, NULL), ECANCELED);
    return NULL;
}

START_TEST(cancelling_a_timed_joiner_cancels_its_child)
{
    run_expect(cancel_timed_joiner_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "child 125 parent 125");
}
END_TEST

/* A child whose clean-up after a cancellation takes a while, shielded. */
static void *slow_to_clean_up(void *arg)
{
    (void)arg;
    int err = await_sleep(10);
    int shield = coro_shield(1);
    await_sleep(0.05);
    coro_shield(shield);
    trace("cleaned");
    return coro_fail(err);
}

static void *wait_for_then_cancelled(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(slow_to_clean_up, NULL);
    int err = await_task_timeout(t, 0.01, NULL);
    trace("wait_for %d", err);
    return coro_fail(err);
}

static void *wait_for_self_cancel_main(void *arg)
{
    (void)arg;
    coro_task *w = coro_spawn(wait_for_then_cancelled, NULL);
    await_sleep(0.03); /* after the timeout, during the clean-up */
    coro_cancel(w);
    ck_assert_int_eq(await_task(w, NULL), ECANCELED);
    return NULL;
}

/* CPython's test_wait_for_self_cancellation: the caller's own
 * cancellation, arriving while the timed-out task cleans up, comes
 * first. */
START_TEST(wait_for_cancelled_during_the_timeout_clean_up_is_ecanceled)
{
    run_expect(wait_for_self_cancel_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "cleaned wait_for 125");
}
END_TEST

static void *empty_sets_when_cancelled_main(void *arg)
{
    (void)arg;
    coro_cancel(coro_self());
    size_t ndone = 99;
    ck_assert_int_eq(await_gather(NULL, 0, NULL, NULL), ECANCELED);
    ck_assert_int_eq(await_wait(NULL, 0, CORO_ALL_COMPLETED, -1, &ndone),
                     ECANCELED);
    ck_assert_uint_eq(ndone, 0);
    coro_shield(1);
    ck_assert_int_eq(await_gather(NULL, 0, NULL, NULL), 0);
    ck_assert_int_eq(await_wait(NULL, 0, CORO_ALL_COMPLETED, -1, &ndone), 0);
    ck_assert_uint_eq(ndone, 0);
    return NULL;
}

/* Sticky cancellation holds for empty gathers and waits too. */
START_TEST(empty_gather_and_wait_see_the_callers_cancellation)
{
    run_expect(empty_sets_when_cancelled_main, NULL, ECANCELED);
}
END_TEST

static coro_task *main_task;

static void *main_joiner(void *arg)
{
    (void)arg;
    void *res = NULL;
    int err = await_task(main_task, &res);
    trace("joined %d %s", err, (const char *)res);
    int later = await_sleep(0.01);
    trace("then %d", later);
    return NULL;
}

static void *joined_main(void *arg)
{
    (void)arg;
    main_task = coro_self();
    coro_spawn(main_joiner, NULL);
    await_yield();
    return "main's";
}

/* main ended before the loop cancelled its joiner: the join returns main's
 * result, and the cancellation is seen at the next await. */
START_TEST(a_task_joining_main_gets_its_result)
{
    void *res = NULL;
    ck_assert_int_eq(coro_run(joined_main, NULL, &res), 0);
    ck_assert_str_eq(res, "main's");
    ck_assert_str_eq(trace_get(), "joined 0 main's then 125");
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Gather                                                                 */
/* ---------------------------------------------------------------------- */

static void *gather_order_main(void *arg)
{
    (void)arg;
    struct test_nap naps[4] = { { 0.2, 0, 1 }, { 0.15, 0, 2 }, { 0.1, 0, 3 },
                           { 0.05, 0, 4 } };
    coro_task *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = coro_spawn(test_nap, &naps[i]);
    void *results[4];
    int errors[4] = { -1, -1, -1, -1 };
    double t0 = coro_now();
    ck_assert_int_eq(await_gather(t, 4, results, errors), 0);
    double took = coro_now() - t0;
    for (int i = 0; i < 4; i++) {
        ck_assert_ptr_eq(results[i], TOKEN(i + 1));
        ck_assert_int_eq(errors[i], 0);
    }
    /* Concurrent: about the longest nap, not the sum (0.5 s), with room
     * for a loaded machine. */
    ck_assert_double_lt(took, 0.2 + 0.25 * test_slow());
    return NULL;
}

/* Results follow argument order whatever the finishing order. */
START_TEST(gather_results_follow_argument_order)
{
    run_expect(gather_order_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "4 3 2 1");
}
END_TEST

static void *gather_errors_main(void *arg)
{
    (void)arg;
    struct test_nap naps[4] = { { 0.03, EIO, 1 }, { 0.01, 0, 2 },
                           { 0.02, EPIPE, 3 }, { 0.04, 0, 4 } };
    coro_task *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = coro_spawn(test_nap, &naps[i]);
    void *results[4];
    int errors[4];
    /* EPIPE (0.02 s) fails before EIO (0.03 s): first in time wins. */
    ck_assert_int_eq(await_gather(t, 4, results, NULL), EPIPE);

    for (int i = 0; i < 4; i++)
        t[i] = coro_spawn(test_nap, &naps[i]);
    coro_cancel(t[3]); /* ends first, with ECANCELED */
    ck_assert_int_eq(await_gather(t, 4, NULL, errors), ECANCELED);
    ck_assert_int_eq(errors[0], EIO);
    ck_assert_int_eq(errors[1], 0);
    ck_assert_int_eq(errors[2], EPIPE);
    ck_assert_int_eq(errors[3], ECANCELED);
    ck_assert_int_eq(await_gather(t, 0, NULL, NULL), 0);
    return NULL;
}

START_TEST(gather_returns_first_failure_in_time)
{
    run_expect(gather_errors_main, NULL, 0);
}
END_TEST

static void *gather_bad_input_main(void *arg)
{
    (void)arg;
    struct test_nap n = { 0.001, 0, 1 };
    coro_task *t[3] = { coro_spawn(test_nap, &n), NULL, NULL };
    ck_assert_int_eq(await_gather(NULL, 2, NULL, NULL), EINVAL);
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), EINVAL);
    t[1] = t[0];
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), EINVAL);
    t[1] = coro_self();
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), EDEADLK);
    /* The rejected calls left t[0] untouched: it can still be joined. */
    void *result = NULL;
    ck_assert_int_eq(await_task(t[0], &result), 0);
    ck_assert_ptr_eq(result, TOKEN(1));
    return NULL;
}

START_TEST(gather_rejects_bad_input)
{
    run_expect(gather_bad_input_main, NULL, 0);
    ck_assert_int_eq(await_gather(NULL, 0, NULL, NULL), EPERM);
}
END_TEST

static void *gather_sleepers(void *arg)
{
    (void)arg;
    coro_task *t[3] = { coro_spawn(record_sleep, NULL),
                        coro_spawn(record_sleep, NULL),
                        coro_spawn(record_sleep, NULL) };
    int errors[3];
    int err = await_gather(t, 3, NULL, errors);
    trace("parent %d %d%d%d", err, errors[0], errors[1], errors[2]);
    return NULL;
}

static void *cancel_gatherer_main(void *arg)
{
    (void)arg;
    coro_task *parent = coro_spawn(gather_sleepers, NULL);
    await_sleep(0.01);
    coro_cancel(parent);
    ck_assert_int_eq(await_task(parent, NULL), ECANCELED);
    return NULL;
}

/* Cancelling a gatherer cancels all it gathers, waits and frees them. */
START_TEST(cancelling_a_gatherer_cancels_all_children)
{
    run_expect(cancel_gatherer_main, NULL, 0);
    ck_assert_str_eq(trace_get(),
                     "child 125 child 125 child 125 parent 125 125125125");
}
END_TEST

/* Issue 13, item 8: a gather's ECANCELED is the caller's own, or a
 * gathered task's, and coro_task_cancelling(coro_self()) tells which
 * without another await. */
static void *canceller_of(void *arg)
{
    await_sleep(0.01);
    coro_cancel(arg);
    return NULL;
}

static void *gathers_two(void *arg)
{
    (void)arg;
    struct test_nap *n = calloc(2, sizeof *n);
    n[0] = (struct test_nap){ 5, 0, 1 };
    n[1] = (struct test_nap){ 5, 0, 2 };
    coro_task *t[2] = { coro_spawn(test_nap, &n[0]),
                        coro_spawn(test_nap, &n[1]) };
    coro_task *c = coro_spawn(canceller_of, t[0]); /* a child, or nobody */
    int err = await_gather(t, 2, NULL, NULL);
    int own = coro_task_cancelling(coro_self());
    await_task(c, NULL);
    free(n);
    return TOKEN(err * 10 + own);
}

static void *two_kinds_main(void *arg)
{
    (void)arg;
    void *r;
    /* A gathered task cancelled by someone else: not the caller's. */
    ck_assert_int_eq(await_task(coro_spawn(gathers_two, NULL), &r), 0);
    ck_assert_ptr_eq(r, TOKEN(ECANCELED * 10 + 0));
    /* The caller itself cancelled. */
    coro_task *g = coro_spawn(gathers_two, NULL);
    await_sleep(0.005);
    coro_cancel(g);
    ck_assert_int_eq(await_task(g, &r), ECANCELED);
    ck_assert_ptr_eq(r, TOKEN(ECANCELED * 10 + 1));
    return NULL;
}

START_TEST(a_gathers_two_kinds_of_ecanceled_are_told_apart)
{
    run_expect(two_kinds_main, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Wait                                                                   */
/* ---------------------------------------------------------------------- */

static void *wait_first_completed_main(void *arg)
{
    (void)arg;
    /* Gaps of a tenth of a second: a busy machine that stalls the loop
     * past two deadlines makes them end in one batch. */
    struct test_nap naps[3] = { { 0.25, 0, 1 }, { 0.01, 0, 2 },
                                { 0.12, 0, 3 } };
    coro_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = coro_spawn(test_nap, &naps[i]);
    coro_task *orig[3] = { t[0], t[1], t[2] };
    size_t ndone = 99;
    ck_assert_int_eq(await_wait(t, 3, CORO_FIRST_COMPLETED, -1, &ndone), 0);
    ck_assert_uint_eq(ndone, 1);
    ck_assert_ptr_eq(t[0], orig[1]);

    ck_assert_int_eq(await_wait(t, 3, CORO_ALL_COMPLETED, -1, &ndone), 0);
    ck_assert_uint_eq(ndone, 3);
    /* Completion order: 2 (0.01 s), 3 (0.12 s), 1 (0.25 s). */
    ck_assert_ptr_eq(t[0], orig[1]);
    ck_assert_ptr_eq(t[1], orig[2]);
    ck_assert_ptr_eq(t[2], orig[0]);
    /* wait freed nothing: each can be joined. */
    void *results[3];
    ck_assert_int_eq(await_gather(orig, 3, results, NULL), 0);
    ck_assert_ptr_eq(results[0], TOKEN(1));
    return NULL;
}

START_TEST(wait_first_completed_then_all_in_completion_order)
{
    run_expect(wait_first_completed_main, NULL, 0);
}
END_TEST

static void *wait_first_exception_main(void *arg)
{
    (void)arg;
    struct test_nap naps[3] = { { 0.01, 0, 1 }, { 0.02, EIO, 2 },
                           { 5.0, 0, 3 } }; /* cancelled long before */
    coro_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = coro_spawn(test_nap, &naps[i]);
    coro_task *orig[3] = { t[0], t[1], t[2] };
    size_t ndone = 0;
    double t0 = coro_now();
    ck_assert_int_eq(await_wait(t, 3, CORO_FIRST_EXCEPTION, -1, &ndone), 0);
    ck_assert_double_lt(coro_now() - t0, 4.0);
    ck_assert_uint_eq(ndone, 2);
    ck_assert_ptr_eq(t[0], orig[0]);
    ck_assert_ptr_eq(t[1], orig[1]);
    coro_cancel(orig[2]);
    int errors[3];
    ck_assert_int_eq(await_gather(orig, 3, NULL, errors), EIO);
    ck_assert_int_eq(errors[2], ECANCELED);

    /* A cancelled task is not an exception: FIRST_EXCEPTION waits on. */
    struct test_nap more[2] = { { 0.01, 0, 4 }, { 0.03, 0, 5 } };
    t[0] = coro_spawn(test_nap, &more[0]);
    t[1] = coro_spawn(test_nap, &more[1]);
    coro_cancel(t[0]);
    ck_assert_int_eq(await_wait(t, 2, CORO_FIRST_EXCEPTION, -1, &ndone), 0);
    ck_assert_uint_eq(ndone, 2);
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), ECANCELED);
    return NULL;
}

START_TEST(wait_first_exception_ignores_cancellation)
{
    run_expect(wait_first_exception_main, NULL, 0);
}
END_TEST

static void *wait_timeout_main(void *arg)
{
    (void)arg;
    struct test_nap n = { 0.2, 0, 1 };
    coro_task *t = coro_spawn(test_nap, &n);
    size_t ndone = 99;
    double t0 = coro_now();
    ck_assert_int_eq(await_wait(&t, 1, CORO_ALL_COMPLETED, 0.01, &ndone), 0);
    ck_assert_uint_eq(ndone, 0);
    ck_assert_double_lt(coro_now() - t0, 0.15);
    ck_assert_int_eq(await_wait(NULL, 0, CORO_ALL_COMPLETED, -1, &ndone), 0);
    ck_assert_uint_eq(ndone, 0);
    ck_assert_int_eq(await_wait(&t, 1, 7, -1, &ndone), EINVAL);
    ck_assert_int_eq(await_wait(&t, 1, CORO_ALL_COMPLETED, NAN, &ndone),
                     EINVAL);
    ck_assert_int_eq(await_wait(NULL, 1, CORO_ALL_COMPLETED, 1, &ndone),
                     EINVAL);
    coro_task *me = coro_self();
    ck_assert_int_eq(await_wait(&me, 1, CORO_ALL_COMPLETED, 1, &ndone),
                     EDEADLK);
    /* Every `when` that is none of the three, also with no task. */
    const int whens[] = { -1, 3, 7, INT_MAX, INT_MIN };
    for (size_t i = 0; i < sizeof whens / sizeof *whens; i++) {
        ck_assert_int_eq(await_wait(&t, 1, (enum coro_when)whens[i], -1,
                                    &ndone),
                         EINVAL);
        ck_assert_int_eq(await_wait(NULL, 0, (enum coro_when)whens[i], -1,
                                    &ndone),
                         EINVAL);
    }
    ck_assert_int_eq(await_wait(NULL, 0, CORO_ALL_COMPLETED, NAN, &ndone),
                     EINVAL);
    /* Listed twice, or NULL among good ones: nothing claimed. */
    coro_task *twice[2] = { t, t }, *with_null[2] = { t, NULL };
    ck_assert_int_eq(await_wait(twice, 2, CORO_ALL_COMPLETED, 1, &ndone),
                     EINVAL);
    ck_assert_int_eq(await_wait(with_null, 2, CORO_ALL_COMPLETED, 1, &ndone),
                     EINVAL);
    ck_assert_int_eq(await_wait(NULL, SIZE_MAX, CORO_ALL_COMPLETED, 1,
                                &ndone),
                     EINVAL);
    ck_assert_int_eq(await_task(t, NULL), 0);
    return NULL;
}

START_TEST(wait_times_out_and_rejects_bad_input)
{
    run_expect(wait_timeout_main, NULL, 0);
    size_t ndone;
    ck_assert_int_eq(await_wait(NULL, 0, CORO_ALL_COMPLETED, 1, &ndone),
                     EPERM);
}
END_TEST

static void *waiter_of(void *arg)
{
    coro_task *t = arg;
    size_t ndone = 99;
    int err = await_wait(&t, 1, CORO_ALL_COMPLETED, -1, &ndone);
    trace("waiter %d %zu", err, ndone);
    return NULL;
}

static void *cancel_waiter_main(void *arg)
{
    (void)arg;
    struct test_nap n = { 0.3, 0, 1 }; /* still running when w is cancelled */
    coro_task *t = coro_spawn(test_nap, &n);
    coro_task *w = coro_spawn(waiter_of, t);
    await_sleep(0.01);
    coro_cancel(w);
    ck_assert_int_eq(await_task(w, NULL), ECANCELED);
    void *result;
    ck_assert_int_eq(await_task(t, &result), 0);
    ck_assert_ptr_eq(result, TOKEN(1));
    return NULL;
}

/* Cancelling the caller of await_wait does not cancel the tasks. */
START_TEST(cancelling_a_waiter_leaves_tasks_running)
{
    run_expect(cancel_waiter_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "waiter 125 0 1");
}
END_TEST

static void *wait_for(void *arg)
{
    coro_task *t = arg;
    size_t ndone;
    return (void *)(uintptr_t)await_wait(&t, 1, CORO_ALL_COMPLETED, 5, &ndone);
}

static void *wait_briefly(void *arg)
{
    coro_task *t = arg;
    size_t ndone;
    return (void *)(uintptr_t)await_wait(&t, 1, CORO_ALL_COMPLETED, 0.001,
                                         &ndone);
}

static void *detach_while_waited_main(void *arg)
{
    (void)arg;
    struct coro__loop *l = coro_self()->loop;
    struct test_nap n = { 0.02, 0, 1 };
    /* Ended by the time the wait returns: freed then. */
    coro_task *t = coro_spawn(test_nap, &n);
    coro_task *w = coro_spawn(wait_for, t);
    await_yield();
    coro_detach(t);
    ck_assert_int_eq(await_task(w, NULL), 0);
    ck_assert_uint_eq(l->ntasks, 1);
    /* Still running when the wait returns: freed when it ends. */
    t = coro_spawn(test_nap, &n);
    w = coro_spawn(wait_briefly, t);
    await_yield();
    coro_detach(t);
    ck_assert_int_eq(await_task(w, NULL), 0);
    ck_assert_uint_eq(l->ntasks, 2);
    await_sleep(0.05);
    ck_assert_uint_eq(l->ntasks, 1);
    return NULL;
}

/* A task detached while another awaits it with await_wait (which frees
 * nothing) is still freed, not kept until coro_run returns. */
START_TEST(detach_during_await_wait_is_honoured)
{
    run_expect(detach_while_waited_main, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* As completed                                                           */
/* ---------------------------------------------------------------------- */

static void *nap(void *arg)
{
    const double *s = arg;
    int err = await_sleep(*s);
    return err ? coro_fail(err) : (void *)arg;
}

static const double naps[] = { 0.04, 0.01, 0.03, 0.02 };

/* test_as_completed: tasks come out in the order they end, each ready to
 * be joined at once; then EPIPE. */
static void *order_main(void *arg)
{
    (void)arg;
    coro_task *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = coro_spawn(nap, (void *)&naps[i]);
    coro_completions *c;
    ck_assert_int_eq(coro_as_completed(t, 4, -1, &c), 0);
    /* Claimed: nobody else may join them meanwhile. */
    ck_assert_int_eq(await_task(t[0], NULL), EINVAL);
    const int want[] = { 1, 3, 2, 0 };
    for (int k = 0; k < 4; k++) {
        coro_task *done = NULL;
        ck_assert_int_eq(await_as_completed(c, &done), 0);
        ck_assert_ptr_eq(done, t[want[k]]);
        void *r;
        double t0 = coro_now();
        ck_assert_int_eq(await_task(done, &r), 0);
        ck_assert_double_lt(coro_now() - t0, 0.005 * test_slow());
        ck_assert_ptr_eq(r, &naps[want[k]]);
    }
    coro_task *none = NULL;
    ck_assert_int_eq(await_as_completed(c, &none), EPIPE);
    ck_assert_ptr_null(none);
    ck_assert_int_eq(coro_completions_free(c), 0);
    return NULL;
}

START_TEST(as_completed_hands_out_tasks_in_the_order_they_end)
{
    run_expect(order_main, NULL, 0);
}
END_TEST

/* test_as_completed_with_timeout: the timeout covers the whole iteration;
 * what ended before it still comes out; the rest stay claimed until the
 * iterator is freed, then they are the caller's to join. */
static void *timeout_main(void *arg)
{
    (void)arg;
    static const double quick = 0.01, slow = 5;
    coro_task *t[2] = { coro_spawn(nap, (void *)&slow),
                        coro_spawn(nap, (void *)&quick) };
    coro_completions *c;
    ck_assert_int_eq(coro_as_completed(t, 2, 0.05, &c), 0);
    coro_task *done;
    ck_assert_int_eq(await_as_completed(c, &done), 0);
    ck_assert_ptr_eq(done, t[1]);
    ck_assert_int_eq(await_task(done, NULL), 0);
    double t0 = coro_now();
    ck_assert_int_eq(await_as_completed(c, &done), ETIMEDOUT);
    ck_assert_double_lt(coro_now() - t0, 0.05 + 0.5 * test_slow());
    ck_assert_int_eq(await_as_completed(c, &done), ETIMEDOUT);
    ck_assert_int_eq(await_task_timeout(t[0], 0, NULL), EINVAL);
    ck_assert_int_eq(coro_completions_free(c), 0);
    coro_cancel(t[0]);
    ck_assert_int_eq(await_task(t[0], NULL), ECANCELED);
    return NULL;
}

START_TEST(as_completed_times_out_as_a_whole)
{
    run_expect(timeout_main, NULL, 0);
}
END_TEST

/* Cancelling the iterating task cancels nothing it iterates over, as
 * asyncio.as_completed. */
static coro_completions *shared_c;

static void *iterate(void *arg)
{
    (void)arg;
    coro_task *done;
    return TOKEN(await_as_completed(shared_c, &done));
}

static void *iterator_in_a_task(void *arg)
{
    coro_task **t = arg;
    ck_assert_int_eq(coro_as_completed(t, 1, -1, &shared_c), 0);
    void *r = iterate(NULL);
    ck_assert_int_eq(coro_completions_free(shared_c), 0);
    return r;
}

static void *cancel_main(void *arg)
{
    (void)arg;
    static const double slow = 5;
    coro_task *t = coro_spawn(nap, (void *)&slow);
    coro_task *it = coro_spawn(iterator_in_a_task, &t);
    await_sleep(0.01);
    coro_cancel(it);
    void *r;
    ck_assert_int_eq(await_task(it, &r), ECANCELED);
    ck_assert_ptr_eq(r, TOKEN(ECANCELED));
    /* The task it iterated over runs on, and is ours again. */
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    return NULL;
}

START_TEST(cancelling_the_iterator_leaves_the_tasks_running)
{
    run_expect(cancel_main, NULL, 0);
}
END_TEST

/* Bad input, the iterator of another task, detached tasks, and an
 * iterator left to coro_run's end. */
static void *other_task_main(void *arg)
{
    (void)arg;
    coro_task *done;
    return TOKEN(await_as_completed(shared_c, &done));
}

static void *misuse_main(void *arg)
{
    (void)arg;
    static const double quick = 0.01, slow = 5;
    coro_completions *c;
    ck_assert_int_eq(coro_as_completed(NULL, 1, -1, &c), EINVAL);
    ck_assert_int_eq(coro_as_completed(NULL, 0, 0.0 / 0.0, &c), EINVAL);
    coro_task *self = coro_self();
    ck_assert_int_eq(coro_as_completed(&self, 1, -1, &c), EDEADLK);
    coro_task *t[3] = { coro_spawn(nap, (void *)&quick),
                        coro_spawn(nap, (void *)&quick),
                        coro_spawn(nap, (void *)&slow) };
    coro_task *twice[2] = { t[0], t[0] };
    ck_assert_int_eq(coro_as_completed(twice, 2, -1, &c), EINVAL);
    ck_assert_int_eq(coro_as_completed(t, 3, -1, NULL), EINVAL);
    ck_assert_int_eq(coro_as_completed(t, 3, -1, &shared_c), 0);
    void *r;
    ck_assert_int_eq(await_task(coro_spawn(other_task_main, NULL), &r), 0);
    ck_assert_ptr_eq(r, TOKEN(EINVAL));
    ck_assert_int_eq(await_as_completed(shared_c, NULL), EINVAL);
    ck_assert_int_eq(await_as_completed(NULL, &t[0]), EINVAL);
    /* Detached while claimed: freed when it ends, never handed out. */
    coro_detach(t[0]);
    coro_task *done;
    ck_assert_int_eq(await_as_completed(shared_c, &done), 0);
    ck_assert_ptr_eq(done, t[1]);
    ck_assert_int_eq(await_task(done, NULL), 0);
    /* t[2] is left claimed, and the iterator to coro_run's end. */
    return NULL;
}

START_TEST(as_completed_bad_input)
{
    run_expect(misuse_main, NULL, 0);
    coro_completions *c = NULL;
    ck_assert_int_eq(coro_as_completed(NULL, 0, -1, &c), EPERM);
    ck_assert_int_eq(await_as_completed(c, NULL), EPERM);
    ck_assert_int_eq(coro_completions_free(NULL), 0);
}
END_TEST

/* Frees the iterator its owner (main) waits in. */
static void *free_shared_c(void *arg)
{
    (void)arg;
    return TOKEN(coro_completions_free(shared_c));
}

static void *free_while_waited_main(void *arg)
{
    (void)arg;
    static const double quick = 0.02;
    coro_task *t = coro_spawn(nap, (void *)&quick);
    ck_assert_int_eq(coro_as_completed(&t, 1, 5, &shared_c), 0);
    coro_task *f = coro_spawn(free_shared_c, NULL);
    coro_task *done = NULL;
    ck_assert_int_eq(await_as_completed(shared_c, &done), 0);
    ck_assert_ptr_eq(done, t);
    ck_assert_int_eq(await_task(done, NULL), 0);
    void *r;
    ck_assert_int_eq(await_task(f, &r), 0);
    ck_assert_ptr_eq(r, TOKEN(EBUSY));
    ck_assert_int_eq(coro_completions_free(shared_c), 0);
    return NULL;
}

/* An iterator its owner waits in is busy: another task that frees it gets
 * EBUSY, as coro_group_free does (it was freed under the waiting owner,
 * which then waited on freed memory until the loop found it deadlocked). */
START_TEST(an_iterator_its_owner_waits_in_cannot_be_freed)
{
    run_expect(free_while_waited_main, NULL, 0);
}
END_TEST

/* From a shared-stack task while another shared-stack task writes over
 * the stack. */
static void *shared_iterator(void *arg)
{
    (void)arg;
    coro_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = coro_spawn(nap, (void *)&naps[i]);
    coro_completions *c;
    ck_assert_int_eq(coro_as_completed(t, 3, 5, &c), 0);
    const int want[] = { 1, 2, 0 };
    for (int k = 0; k < 3; k++) {
        coro_task *done;
        ck_assert_int_eq(await_as_completed(c, &done), 0);
        ck_assert_ptr_eq(done, t[want[k]]);
        ck_assert_int_eq(await_task(done, NULL), 0);
    }
    coro_completions_free(c);
    return NULL;
}

static void *shared_main(void *arg)
{
    (void)arg;
    coro_attr shared = { .flags = CORO_SHARED_STACK };
    test_scribbling_start();
    coro_task *s = coro_spawn_attr(&shared, test_scribbler, NULL);
    coro_task *it = coro_spawn_attr(&shared, shared_iterator, NULL);
    ck_assert_int_eq(await_task(it, NULL), 0);
    test_scribbling_stop();
    ck_assert_int_eq(await_task(s, NULL), 0);
    return NULL;
}

START_TEST(as_completed_works_on_the_shared_stack)
{
    run_expect(shared_main, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* CPython's test_tasks.py: wait, as_completed, gather                    */
/* ---------------------------------------------------------------------- */

/* Lib/test/test_asyncio/test_tasks.py (3.13), the tests of asyncio.wait,
 * as_completed and gather, translated where coro's calls map. asyncio's
 * test loop moves time by hand; here nv are short and real, scaled by
 * test_slow(). Not translated: test_wait_really_done and
 * test_as_completed_reverse_wait/_concurrent, which turn on when asyncio
 * runs done-callbacks and on futures handed out before their tasks end. */

/* Spawns nv[i] into t[i]. */
static void spawn_naps(coro_task **t, struct test_nap *nv, size_t n)
{
    for (size_t i = 0; i < n; i++)
        t[i] = coro_spawn(test_nap, &nv[i]);
}

static void *py_wait_main(void *arg)
{
    (void)arg;
    double s = test_slow();
    struct test_nap nv[2] = { { 0.02 * s, 0, 'b' }, { 0.01 * s, 0, 'a' } };
    coro_task *t[2];
    spawn_naps(t, nv, 2); /* [b, a] */
    coro_task *b = t[0], *a = t[1];
    size_t ndone;
    ck_assert_int_eq(await_wait(t, 2, CORO_ALL_COMPLETED, -1, &ndone), 0);
    ck_assert_uint_eq(ndone, 2);
    ck_assert_ptr_eq(t[0], a); /* in the order they ended */
    ck_assert_ptr_eq(t[1], b);
    /* Doing it again takes no time. */
    double t0 = coro_now();
    ck_assert_int_eq(await_wait(t, 2, CORO_ALL_COMPLETED, -1, &ndone), 0);
    ck_assert_uint_eq(ndone, 2);
    ck_assert_double_lt(coro_now() - t0, 0.005 * s);
    void *res[2];
    ck_assert_int_eq(await_gather(t, 2, res, NULL), 0);
    ck_assert_ptr_eq(res[0], TOKEN('a'));
    ck_assert_ptr_eq(res[1], TOKEN('b'));

    /* test_wait_generator: ten tasks that return at once */
    coro_task *many[10];
    for (int i = 0; i < 10; i++)
        many[i] = coro_spawn(return_arg, TOKEN(i));
    ck_assert_int_eq(await_wait(many, 10, CORO_ALL_COMPLETED, -1, &ndone), 0);
    ck_assert_uint_eq(ndone, 10);
    ck_assert_int_eq(await_gather(many, 10, NULL, NULL), 0);
    return NULL;
}

/* test_wait, test_wait_with_iterator_of_tasks, test_wait_generator: wait
 * for all, the done ones first in the order they ended. */
START_TEST(py_tasks_test_wait)
{
    run_expect(py_wait_main, NULL, 0);
}
END_TEST

static void *py_wait_errors_main(void *arg)
{
    (void)arg;
    size_t ndone = 7;
    /* asyncio.wait(set()) raises ValueError; coro.h: n == 0 returns at
     * once. */
    ck_assert_int_eq(await_wait(NULL, 0, CORO_ALL_COMPLETED, -1, &ndone), 0);
    ck_assert_uint_eq(ndone, 0);
    struct test_nap nap = { 10, 0, 1 };
    coro_task *t = coro_spawn(test_nap, &nap);
    ck_assert_int_eq(await_wait(&t, 1, (enum coro_when)-1, -1, &ndone),
                     EINVAL);
    /* test_wait_duplicate_coroutines: asyncio takes a task listed twice
     * once; here it is EINVAL (coro.h), and nothing is claimed. */
    coro_task *twice[2] = { t, t };
    ck_assert_int_eq(await_wait(twice, 2, CORO_ALL_COMPLETED, -1, &ndone),
                     EINVAL);
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    return NULL;
}

/* test_wait_errors and test_wait_duplicate_coroutines. */
START_TEST(py_tasks_test_wait_errors)
{
    run_expect(py_wait_errors_main, NULL, 0);
}
END_TEST

static void *py_wait_first_main(void *arg)
{
    (void)arg;
    double s = test_slow();
    /* test_wait_first_completed */
    struct test_nap nv[2] = { { 0.01 * s, 0, 'b' }, { 10, 0, 'a' } };
    coro_task *t[2];
    spawn_naps(t, nv, 2); /* [b, a] */
    coro_task *a = t[1], *b = t[0];
    size_t ndone;
    ck_assert_int_eq(await_wait(t, 2, CORO_FIRST_COMPLETED, -1, &ndone), 0);
    ck_assert_uint_eq(ndone, 1);
    ck_assert_ptr_eq(t[0], b);
    ck_assert_int_eq(coro_task_done(a), 0);
    void *res;
    int err;
    ck_assert_int_eq(coro_task_result(b, &res, &err), 0);
    ck_assert_ptr_eq(res, TOKEN('b'));
    ck_assert_int_eq(err, 0);
    coro_cancel(a);
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), ECANCELED);

    /* test_wait_first_exception: b has failed already */
    nv[0] = (struct test_nap){ 0, EIO, 'b' };
    spawn_naps(t, nv, 2);
    a = t[1];
    b = t[0];
    await_yield(); /* b fails */
    double t0 = coro_now();
    ck_assert_int_eq(await_wait(t, 2, CORO_FIRST_EXCEPTION, -1, &ndone), 0);
    ck_assert_double_lt(coro_now() - t0, 0.5 * s);
    ck_assert_uint_eq(ndone, 1);
    ck_assert_ptr_eq(t[0], b);
    ck_assert_int_eq(coro_task_done(a), 0);
    coro_cancel(a);
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), EIO);

    /* test_wait_first_exception_in_wait: b fails while the wait waits */
    nv[0] = (struct test_nap){ 0.01 * s, EIO, 'b' };
    spawn_naps(t, nv, 2);
    a = t[1];
    b = t[0];
    ck_assert_int_eq(await_wait(t, 2, CORO_FIRST_EXCEPTION, -1, &ndone), 0);
    ck_assert_uint_eq(ndone, 1);
    ck_assert_ptr_eq(t[0], b);
    ck_assert_int_eq(coro_task_done(a), 0);
    coro_cancel(a);
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), EIO);
    return NULL;
}

/* test_wait_first_completed, test_wait_first_exception and
 * test_wait_first_exception_in_wait. */
START_TEST(py_tasks_test_wait_first_completed_or_exception)
{
    run_expect(py_wait_first_main, NULL, 0);
}
END_TEST

static void *py_wait_exception_timeout_main(void *arg)
{
    (void)arg;
    double s = test_slow();
    /* test_wait_with_exception */
    struct test_nap nv[2] = { { 0.02 * s, EIO, 'b' },
                                { 0.01 * s, 0, 'a' } };
    coro_task *t[2];
    spawn_naps(t, nv, 2);
    size_t ndone;
    ck_assert_int_eq(await_wait(t, 2, CORO_ALL_COMPLETED, -1, &ndone), 0);
    ck_assert_uint_eq(ndone, 2);
    int failed = 0;
    for (int i = 0; i < 2; i++) {
        int err;
        ck_assert_int_eq(coro_task_result(t[i], NULL, &err), 0);
        failed += err != 0;
    }
    ck_assert_int_eq(failed, 1);
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), EIO);

    /* test_wait_with_timeout: [b, a], a ends before the timeout */
    nv[0] = (struct test_nap){ 10, 0, 'b' };
    spawn_naps(t, nv, 2);
    coro_task *a = t[1], *b = t[0];
    ck_assert_int_eq(await_wait(t, 2, CORO_ALL_COMPLETED, 0.2 * s, &ndone),
                     0); /* the timeout passing is no error */
    ck_assert_uint_eq(ndone, 1);
    ck_assert_ptr_eq(t[0], a);
    ck_assert_ptr_eq(t[1], b);
    ck_assert_int_eq(coro_task_done(b), 0);
    coro_cancel(b);
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), ECANCELED);
    return NULL;
}

/* test_wait_with_exception and test_wait_with_timeout. */
START_TEST(py_tasks_test_wait_with_exception_and_timeout)
{
    run_expect(py_wait_exception_timeout_main, NULL, 0);
}
END_TEST

static void *py_as_completed_main(void *arg)
{
    (void)arg;
    double s = test_slow();
    struct test_nap nv[3] = { { 0.01 * s, 0, 'b' }, { 0.1 * s, 0, 'c' },
                                { 0.01 * s, 0, 'a' } };
    coro_task *t[3];
    spawn_naps(t, nv, 3); /* [b, c, a] */
    coro_completions *it;
    ck_assert_int_eq(coro_as_completed(t, 3, -1, &it), 0);
    char got[4] = "";
    for (int i = 0; i < 3; i++) {
        coro_task *done;
        void *res;
        ck_assert_int_eq(await_as_completed(it, &done), 0);
        ck_assert_int_eq(await_task(done, &res), 0);
        got[i] = (char)(uintptr_t)res;
    }
    coro_task *none;
    ck_assert_int_eq(await_as_completed(it, &none), EPIPE);
    coro_completions_free(it);
    ck_assert(strchr("ab", got[0]) && strchr("ab", got[1]));
    ck_assert_int_eq(got[2], 'c');

    /* test_as_completed_with_unused_timeout */
    struct test_nap one = { 0.01 * s, 0, 'a' };
    coro_task *a = coro_spawn(test_nap, &one);
    ck_assert_int_eq(coro_as_completed(&a, 1, 1 * s, &it), 0);
    coro_task *done;
    void *res;
    ck_assert_int_eq(await_as_completed(it, &done), 0);
    ck_assert_int_eq(await_task(done, &res), 0);
    ck_assert_ptr_eq(res, TOKEN('a'));
    coro_completions_free(it);
    return NULL;
}

/* test_as_completed and test_as_completed_with_unused_timeout: tasks
 * come out in the order they end. */
START_TEST(py_tasks_test_as_completed)
{
    run_expect(py_as_completed_main, NULL, 0);
}
END_TEST

static void *py_as_completed_timeout_main(void *arg)
{
    (void)arg;
    double s = test_slow();
    struct test_nap nv[2] = { { 0.01 * s, 0, 'a' }, { 10, 0, 'b' } };
    coro_task *t[2];
    spawn_naps(t, nv, 2);
    coro_task *b = t[1];
    coro_completions *it;
    ck_assert_int_eq(coro_as_completed(t, 2, 0.1 * s, &it), 0);
    coro_task *done;
    void *res;
    ck_assert_int_eq(await_as_completed(it, &done), 0);
    ck_assert_int_eq(await_task(done, &res), 0);
    ck_assert_ptr_eq(res, TOKEN('a'));
    ck_assert_int_eq(await_as_completed(it, &done), ETIMEDOUT);
    coro_completions_free(it);
    coro_cancel(b);
    ck_assert_int_eq(await_task(b, NULL), ECANCELED);
    return NULL;
}

/* test_as_completed_with_timeout: the first task in time, then
 * ETIMEDOUT (TimeoutError). */
START_TEST(py_tasks_test_as_completed_with_timeout)
{
    run_expect(py_as_completed_timeout_main, NULL, 0);
}
END_TEST

static void *py_as_completed_resume_main(void *arg)
{
    (void)arg;
    coro_task *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = coro_spawn(return_arg, TOKEN(i));
    coro_completions *it;
    ck_assert_int_eq(coro_as_completed(t, 4, -1, &it), 0);
    unsigned seen = 0;
    coro_task *done;
    void *res;
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(await_as_completed(it, &done), 0);
        ck_assert_int_eq(await_task(done, &res), 0);
        seen |= 1u << (uintptr_t)res;
    }
    /* Resumed later, the same iterator goes on where it stopped. */
    await_yield();
    while (await_as_completed(it, &done) == 0) {
        ck_assert_int_eq(await_task(done, &res), 0);
        seen |= 1u << (uintptr_t)res;
    }
    ck_assert_uint_eq(seen, 0xf);
    coro_completions_free(it);

    /* test_as_completed_duplicate_coroutines: asyncio takes a task listed
     * twice once; here it is EINVAL, and nothing is claimed (coro.h). */
    coro_task *a = coro_spawn(return_arg, "ham");
    coro_task *twice[3] = { a, a, coro_spawn(return_arg, "spam") };
    ck_assert_int_eq(coro_as_completed(twice, 3, -1, &it), EINVAL);
    ck_assert_int_eq(await_gather(twice + 1, 2, NULL, NULL), 0);
    return NULL;
}

/* test_as_completed_resume_iterator and
 * test_as_completed_duplicate_coroutines. */
START_TEST(py_tasks_test_as_completed_resume_iterator)
{
    run_expect(py_as_completed_resume_main, NULL, 0);
}
END_TEST

static coro_event *gate;

/* child_coro of test_cancel_gather_1: waits for the gate, returns 42. */
static void *wait_gate_42(void *arg)
{
    (void)arg;
    int err = await_event(gate, -1);
    return err ? coro_fail(err) : TOKEN(42);
}

struct gather_outcome {
    int   err;
    void *result;
};

static void *gather_one_child(void *arg)
{
    struct gather_outcome *o = arg;
    coro_task *child = coro_spawn(wait_gate_42, NULL);
    o->err = await_gather(&child, 1, &o->result, NULL);
    return NULL;
}

static void *py_cancel_gather_1_main(void *arg)
{
    (void)arg;
    gate = coro_event_new();
    struct gather_outcome o = { -1, NULL };
    coro_task *g = coro_spawn(gather_one_child, &o);
    await_yield();
    await_yield();
    /* The child ends, and the gatherer is cancelled before it runs. */
    coro_event_set(gate);
    await_yield();
    coro_cancel(g);
    ck_assert_int_eq(await_task(g, NULL), ECANCELED);
    /* Python issue #26923: the gather's result stands. */
    ck_assert_int_eq(o.err, 0);
    ck_assert_ptr_eq(o.result, TOKEN(42));
    coro_event_free(gate);
    return NULL;
}

/* test_cancel_gather_1: a gather whose children have all ended is not
 * undone by a cancellation that comes before its caller runs. */
START_TEST(py_tasks_test_cancel_gather_1)
{
    run_expect(py_cancel_gather_1_main, NULL, 0);
}
END_TEST

/* test of test_cancel_gather_2: gathers of nv, over and over. */
static void *gather_naps_forever(void *arg)
{
    (void)arg;
    for (;;) {
        struct test_nap *nap = arg;
        coro_task *t = coro_spawn(test_nap, nap);
        int errors[1];
        int err = await_gather(&t, 1, NULL, errors);
        if (err)
            return coro_fail(err);
    }
}

static void *py_cancel_gather_2_main(void *arg)
{
    (void)arg;
    struct test_nap nap = { 0.005, 0, 0 };
    coro_task *t = coro_spawn(gather_naps_forever, &nap);
    await_sleep(0.02);
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    ck_assert_int_eq(coro_task_cancelling(coro_self()), 0);
    return NULL;
}

/* test_cancel_gather_2: the cancellation of a task inside a gather comes
 * back out of the gather as ECANCELED. */
START_TEST(py_tasks_test_cancel_gather_2)
{
    run_expect(py_cancel_gather_2_main, NULL, 0);
}
END_TEST

static void *py_gather_results_main(void *arg)
{
    (void)arg;
    double s = test_slow();
    /* test_result_exception_one_cancellation: [1, zde, cancelled, 3,
     * cancelled, rte] with return_exceptions=True is errors[] here. */
    struct test_nap nv[6] = {
        { 0, 0, 1 }, { 0, EDOM, 2 }, { 10, 0, 3 },
        { 0.01 * s, 0, 4 }, { 10, 0, 5 }, { 0.02 * s, ERANGE, 6 },
    };
    coro_task *t[6];
    spawn_naps(t, nv, 6);
    await_yield();
    coro_cancel(t[2]);
    coro_cancel(t[4]);
    void *res[6];
    int errs[6];
    /* asyncio's gather without return_exceptions raises at the first
     * failure and leaves the rest running; coro's waits for every task
     * and returns the first failure in time (coro.h): EDOM. */
    ck_assert_int_eq(await_gather(t, 6, res, errs), EDOM);
    static const int want[6] = { 0, EDOM, ECANCELED, 0, ECANCELED, ERANGE };
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(errs[i], want[i]);
    ck_assert_ptr_eq(res[0], TOKEN(1));
    ck_assert_ptr_eq(res[3], TOKEN(4));

    /* test_one_cancellation: the first failure is a cancelled child; the
     * gatherer itself was not cancelled. */
    nv[1] = (struct test_nap){ 10, 0, 2 };
    spawn_naps(t, nv, 6);
    await_yield();
    coro_cancel(t[1]);
    await_yield();
    coro_cancel(t[2]);
    coro_cancel(t[4]);
    ck_assert_int_eq(await_gather(t, 6, NULL, errs), ECANCELED);
    ck_assert_int_eq(errs[1], ECANCELED);
    ck_assert_int_eq(errs[5], ERANGE);
    ck_assert_int_eq(coro_task_cancelling(coro_self()), 0);
    return NULL;
}

/* GatherTests.test_result_exception_one_cancellation and
 * test_one_cancellation (and test_return_exceptions, test_one_exception):
 * every child's outcome in argument order, and the first failure. */
START_TEST(py_tasks_test_gather_one_cancellation)
{
    run_expect(py_gather_results_main, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* CPython's test_waitfor.py, test by test                                */
/* ---------------------------------------------------------------------- */

/* Lib/test/test_asyncio/test_waitfor.py (3.13): asyncio.wait_for is
 * await_task_timeout. The WaitForShieldTests do not map: coro has no
 * asyncio.shield(task) to time out apart from the task it wraps. */

static int slow_exited;

/* SlowTask.run: runs for 0.1 s whatever cancellations come (asyncio's
 * swallows each CancelledError; here a shield holds them back), then
 * returns 0x51. */
static void *slow_task(void *arg)
{
    (void)arg;
    double end = coro_now() + 0.1 * test_slow();
    int shield = coro_shield(1);
    while (coro_now() < end)
        await_sleep(end - coro_now());
    coro_shield(shield);
    slow_exited = 1;
    return TOKEN(0x51);
}

static void *wait_for_slow(void *arg)
{
    double timeout = *(double *)arg;
    coro_task *t = coro_spawn(slow_task, NULL);
    return TOKEN(await_task_timeout(t, timeout, NULL));
}

static void *wait_for_cancelled_main(void *arg)
{
    (void)arg;
    slow_exited = 0;
    double timeout = 0.2 * test_slow();
    coro_task *w = coro_spawn(wait_for_slow, &timeout);
    await_yield();
    coro_cancel(w);
    size_t ndone;
    ck_assert_int_eq(await_wait(&w, 1, CORO_ALL_COMPLETED, -1, &ndone), 0);
    ck_assert_int_eq(slow_exited, 1);
    void *res;
    ck_assert_int_eq(await_task(w, &res), ECANCELED);
    ck_assert_ptr_eq(res, TOKEN(ECANCELED));

    /* test_asyncio_wait_for_timeout */
    slow_exited = 0;
    timeout = 0.05 * test_slow();
    ck_assert_ptr_eq(wait_for_slow(&timeout), TOKEN(ETIMEDOUT));
    ck_assert_int_eq(slow_exited, 1);
    return NULL;
}

/* AsyncioWaitForTest.test_asyncio_wait_for_cancelled and
 * test_asyncio_wait_for_timeout: cancelled, or timed out, wait_for waits
 * for its task to end, however long it takes. */
START_TEST(py_waitfor_test_asyncio_wait_for_cancelled)
{
    run_expect(wait_for_cancelled_main, NULL, 0);
}
END_TEST

static int foo_running, foo_started;

/* foo of test_wait_for: runs, sleeps long, stops running. */
static void *foo_sleeps(void *arg)
{
    foo_started = foo_running = 1;
    if (arg)
        coro_event_set(arg);
    int err = await_sleep(100);
    foo_running = 0;
    return err ? coro_fail(err) : "done";
}

static void *wait_for_timeout_0_main(void *arg)
{
    (void)arg;
    /* test_wait_for_timeout_less_then_0_or_0_future_done */
    coro_task *t = coro_spawn(return_arg, "done");
    await_yield();
    void *res;
    ck_assert_int_eq(await_task_timeout(t, 0, &res), 0);
    ck_assert_str_eq(res, "done");

    /* test_wait_for_timeout_less_then_0_or_0 (a negative timeout is
     * none here, where asyncio takes it for 0: coro.h's conventions) */
    coro_event *started = coro_event_new();
    t = coro_spawn(foo_sleeps, started);
    ck_assert_int_eq(await_event(started, -1), 0);
    ck_assert_int_eq(await_task_timeout(t, 0, &res), ETIMEDOUT);
    ck_assert_int_eq(foo_running, 0);
    coro_event_free(started);

    /* test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started:
     * asyncio never starts the coroutine; a task cancelled before it
     * runs still runs here, and its first wait says ECANCELED
     * (coro_cancel). */
    foo_started = 0;
    t = coro_spawn(foo_sleeps, NULL);
    ck_assert_int_eq(await_task_timeout(t, 0, &res), ETIMEDOUT);
    ck_assert_int_eq(foo_started, 1);
    ck_assert_int_eq(foo_running, 0);
    return NULL;
}

/* AsyncioWaitForTest.test_wait_for_timeout_less_then_0_or_0 and its two
 * siblings: a timeout of 0 takes a result that is there, else cancels. */
START_TEST(py_waitfor_test_wait_for_timeout_less_then_0_or_0)
{
    run_expect(wait_for_timeout_0_main, NULL, 0);
}
END_TEST

static void *wait_for_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(foo_sleeps, NULL);
    ck_assert_int_eq(await_task_timeout(t, 0.01, NULL), ETIMEDOUT);
    ck_assert_int_eq(foo_running, 0);
    /* test_wait_for_blocking: no timeout */
    void *res;
    t = coro_spawn(return_arg, "done");
    ck_assert_int_eq(await_task_timeout(t, -1, &res), 0);
    ck_assert_str_eq(res, "done");
    /* test_wait_for_race_condition: the result comes before the
     * timeout */
    t = coro_spawn(sleep_then_return, "ok");
    ck_assert_int_eq(await_task_timeout(t, 0.2 * test_slow(), &res), 0);
    ck_assert_str_eq(res, "ok");
    return NULL;
}

/* AsyncioWaitForTest.test_wait_for, test_wait_for_blocking and
 * test_wait_for_race_condition. */
START_TEST(py_waitfor_test_wait_for)
{
    run_expect(wait_for_main, NULL, 0);
}
END_TEST

/* return_42: cancelled, returns 42 after a shielded pause. */
static void *return_42_when_cancelled(void *arg)
{
    (void)arg;
    int err = await_sleep(10);
    if (err != ECANCELED)
        return coro_fail(err ? err : EIO);
    int shield = coro_shield(1);
    await_sleep(0.001);
    coro_shield(shield);
    return TOKEN(42);
}

static void *wait_for_cancel_suppressed_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(return_42_when_cancelled, NULL);
    void *res;
    ck_assert_int_eq(await_task_timeout(t, 0.01, &res), ETIMEDOUT);
    ck_assert_ptr_eq(res, TOKEN(42));
    return NULL;
}

/* AsyncioWaitForTest.test_wait_for_cancel_suppressed and
 * test_wait_for_cancellation_race_condition: a task that returns a value
 * after its cancellation. asyncio's wait_for returns the value; here
 * cancellation is sticky, the call says ETIMEDOUT, and *result holds the
 * value (coro.h, await_task_timeout). */
START_TEST(py_waitfor_test_wait_for_cancel_suppressed)
{
    run_expect(wait_for_cancel_suppressed_main, NULL, 0);
}
END_TEST

static int inner_done;

/* inner of test_wait_for_waits_for_task_cancellation: its clean-up after
 * the cancellation waits too; with arg, it then fails with EIO (the
 * FooException of test_wait_for_reraises_exception_during_cancellation). */
static void *inner_slow_clean_up(void *arg)
{
    int err = await_sleep(10);
    int shield = coro_shield(1);
    await_sleep(0.001);
    coro_shield(shield);
    inner_done = 1;
    return coro_fail(arg ? EIO : err);
}

static void *wait_for_waits_main(void *arg)
{
    double timeout = *(double *)arg;
    inner_done = 0;
    coro_task *t = coro_spawn(inner_slow_clean_up, NULL);
    await_sleep(0.001);
    ck_assert_int_eq(await_task_timeout(t, timeout, NULL), ETIMEDOUT);
    ck_assert_int_eq(inner_done, 1);
    return NULL;
}

/* AsyncioWaitForTest.test_wait_for_waits_for_task_cancellation: on
 * timeout, wait_for returns only once the task's clean-up is over. */
START_TEST(py_waitfor_test_wait_for_waits_for_task_cancellation)
{
    double timeout = 0.0001;
    run_expect(wait_for_waits_main, &timeout, 0);
}
END_TEST

/* AsyncioWaitForTest.test_wait_for_waits_for_task_cancellation_w_timeout_0 */
START_TEST(py_waitfor_test_wait_for_waits_for_task_cancellation_w_timeout_0)
{
    double timeout = 0;
    run_expect(wait_for_waits_main, &timeout, 0);
}
END_TEST

static void *wait_for_reraises_main(void *arg)
{
    (void)arg;
    inner_done = 0;
    coro_task *t = coro_spawn(inner_slow_clean_up, TOKEN(1));
    ck_assert_int_eq(await_task_timeout(t, 0.0001, NULL), EIO);
    ck_assert_int_eq(inner_done, 1);
    /* The same with asyncio.timeout around the await: a scope's deadline
     * ending the join. */
    inner_done = 0;
    t = coro_spawn(inner_slow_clean_up, TOKEN(1));
    coro_timeout *s;
    /* Long enough to be still ahead when the join enters (a scope past
     * at the entry is ETIMEDOUT at once), short beside the task's sleep. */
    ck_assert_int_eq(coro_timeout_open(0.02 * test_slow(), &s), 0);
    ck_assert_int_eq(await_task(t, NULL), EIO);
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    ck_assert_int_eq(inner_done, 1);
    return NULL;
}

/* AsyncioWaitForTest.test_wait_for_reraises_exception_during_cancellation:
 * a task that fails with an error of its own while it is cancelled for
 * the timeout: its error, not ETIMEDOUT, as await_task puts a task's own
 * error before its cancellation. */
START_TEST(py_waitfor_test_wait_for_reraises_exception_during_cancellation)
{
    run_expect(wait_for_reraises_main, NULL, 0);
}
END_TEST

static int blocked_err;

/* blocking_coroutine of _test_cancel_wait_for: waits on an event nobody
 * sets, and notes how the wait ended. */
static void *block_on_event(void *arg)
{
    blocked_err = await_event(arg, -1);
    return coro_fail(blocked_err);
}

struct timed_join {
    coro_task *task;
    double     timeout;
};

static void *timed_join(void *arg)
{
    struct timed_join *j = arg;
    return TOKEN(await_task_timeout(j->task, j->timeout, NULL));
}

static void *cancel_wait_for_main(void *arg)
{
    double timeout = *(double *)arg;
    coro_event *never = coro_event_new();
    blocked_err = -1;
    struct timed_join j = { coro_spawn(block_on_event, never), timeout };
    coro_task *wait = coro_spawn(timed_join, &j);
    await_yield();
    coro_cancel(wait);
    void *res;
    ck_assert_int_eq(await_task(wait, &res), ECANCELED);
    ck_assert_ptr_eq(res, TOKEN(ECANCELED));
    /* Python issue #23219: cancelling the wait cancels the task. */
    ck_assert_int_eq(blocked_err, ECANCELED);
    ck_assert_int_eq(coro_event_free(never), 0);
    return NULL;
}

/* AsyncioWaitForTest.test_cancel_blocking_wait_for: cancelling a wait_for
 * without a timeout cancels its task. */
START_TEST(py_waitfor_test_cancel_blocking_wait_for)
{
    double timeout = -1;
    run_expect(cancel_wait_for_main, &timeout, 0);
}
END_TEST

/* AsyncioWaitForTest.test_cancel_wait_for: likewise with a timeout. */
START_TEST(py_waitfor_test_cancel_wait_for)
{
    double timeout = 60;
    run_expect(cancel_wait_for_main, &timeout, 0);
}
END_TEST

static int reached_end;

/* wait_for_coro of test_wait_for_issue86296: a wait_for of a task that
 * has ended, then a long sleep. */
static void *wait_for_then_sleep(void *arg)
{
    void *res;
    int err = await_task_timeout(arg, 100, &res);
    ck_assert_int_eq(err, 0);
    ck_assert_str_eq(res, "done");
    err = await_sleep(1);
    if (!err)
        reached_end = 1;
    return coro_fail(err);
}

static void *wait_for_issue86296_main(void *arg)
{
    (void)arg;
    reached_end = 0;
    coro_task *inner = coro_spawn(return_arg, "done");
    coro_task *task = coro_spawn(wait_for_then_sleep, inner);
    ck_assert_int_eq(coro_task_done(task), 0);
    await_yield();
    coro_cancel(task);
    ck_assert_int_eq(await_task(task, NULL), ECANCELED);
    ck_assert_int_eq(reached_end, 0);
    return NULL;
}

/* AsyncioWaitForTest.test_wait_for_issue86296: the caller is cancelled
 * after its wait_for returned the result of a task that had ended: the
 * result stands, and the cancellation ends the next wait. */
START_TEST(py_waitfor_test_wait_for_issue86296)
{
    run_expect(wait_for_issue86296_main, NULL, 0);
}
END_TEST

static void *fails_when_cancelled(void *arg)
{
    (void)arg;
    await_sleep(INFINITY);
    return coro_fail(EIO);
}

static void *fails_at_once(void *arg)
{
    (void)arg;
    return coro_fail(EIO);
}

/* A scope already past when a join is made: ETIMEDOUT at once, as for
 * every await_*, even when the task fails with an error of its own as it
 * is cancelled, or had failed before; a deadline that comes while the
 * join waits gives the task's error, as asyncio's wait_for raises it. */
static void *past_scope_join_main(void *arg)
{
    (void)arg;
    coro_task *parked = coro_spawn(fails_when_cancelled, NULL);
    coro_task *failed = coro_spawn(fails_at_once, NULL);
    coro_task *later = coro_spawn(fails_when_cancelled, NULL);
    ck_assert_ptr_nonnull(parked);
    ck_assert_ptr_nonnull(failed);
    ck_assert_ptr_nonnull(later);
    ck_assert_int_eq(await_yield(), 0); /* parked and later park, failed
                                           ends */
    coro_timeout *s;
    ck_assert_int_eq(coro_timeout_open(0, &s), 0);
    ck_assert_int_eq(await_task(parked, NULL), ETIMEDOUT);
    ck_assert_int_eq(await_task_timeout(failed, 5, NULL), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_open(0.02 * test_slow(), &s), 0);
    ck_assert_int_eq(await_task(later, NULL), EIO);
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    return NULL;
}

START_TEST(a_scope_past_at_the_join_is_etimedout_at_once)
{
    run_expect(past_scope_join_main, NULL, 0);
}
END_TEST

Suite *join_suite(void)
{
    Suite *s = suite_create("join");
    TCase *tc = test_case("join", 10);
    tcase_add_test(tc, join_by_a_cancelled_caller_is_ecanceled_first);
    tcase_add_test(tc, join_returns_result_and_error);
    tcase_add_test(tc, join_reports_ecanceled_for_cancelled_task);
    tcase_add_test(tc, join_rejects_bad_input);
    tcase_add_test(tc, join_timeout_cancels_and_frees_the_task);
    tcase_add_test(tc, cancelling_a_joiner_cancels_its_child);
    tcase_add_test(tc, cancelling_a_timed_joiner_cancels_its_child);
    tcase_add_test(tc,
                   wait_for_cancelled_during_the_timeout_clean_up_is_ecanceled);
    tcase_add_test(tc, empty_gather_and_wait_see_the_callers_cancellation);
    tcase_add_test(tc, a_task_joining_main_gets_its_result);
    suite_add_tcase(s, tc);

    tc = test_case("asyncio tasks", 10);
    tcase_add_test(tc, py_tasks_test_wait);
    tcase_add_test(tc, py_tasks_test_wait_errors);
    tcase_add_test(tc, py_tasks_test_wait_first_completed_or_exception);
    tcase_add_test(tc, py_tasks_test_wait_with_exception_and_timeout);
    tcase_add_test(tc, py_tasks_test_as_completed);
    tcase_add_test(tc, py_tasks_test_as_completed_with_timeout);
    tcase_add_test(tc, py_tasks_test_as_completed_resume_iterator);
    tcase_add_test(tc, py_tasks_test_cancel_gather_1);
    tcase_add_test(tc, py_tasks_test_cancel_gather_2);
    tcase_add_test(tc, py_tasks_test_gather_one_cancellation);
    suite_add_tcase(s, tc);

    tc = test_case("asyncio wait_for", 10);
    tcase_add_test(tc, a_scope_past_at_the_join_is_etimedout_at_once);
    tcase_add_test(tc, py_waitfor_test_asyncio_wait_for_cancelled);
    tcase_add_test(tc, py_waitfor_test_wait_for_timeout_less_then_0_or_0);
    tcase_add_test(tc, py_waitfor_test_wait_for);
    tcase_add_test(tc, py_waitfor_test_wait_for_cancel_suppressed);
    tcase_add_test(tc, py_waitfor_test_wait_for_waits_for_task_cancellation);
    tcase_add_test(tc,
                   py_waitfor_test_wait_for_waits_for_task_cancellation_w_timeout_0);
    tcase_add_test(tc,
                   py_waitfor_test_wait_for_reraises_exception_during_cancellation);
    tcase_add_test(tc, py_waitfor_test_cancel_blocking_wait_for);
    tcase_add_test(tc, py_waitfor_test_cancel_wait_for);
    tcase_add_test(tc, py_waitfor_test_wait_for_issue86296);
    suite_add_tcase(s, tc);

    tc = test_case("gather", 10);
    tcase_add_test(tc, gather_results_follow_argument_order);
    tcase_add_test(tc, gather_returns_first_failure_in_time);
    tcase_add_test(tc, gather_rejects_bad_input);
    tcase_add_test(tc, cancelling_a_gatherer_cancels_all_children);
    tcase_add_test(tc, a_gathers_two_kinds_of_ecanceled_are_told_apart);
    suite_add_tcase(s, tc);

    tc = test_case("wait", 10);
    tcase_add_test(tc, wait_first_completed_then_all_in_completion_order);
    tcase_add_test(tc, wait_first_exception_ignores_cancellation);
    tcase_add_test(tc, wait_times_out_and_rejects_bad_input);
    tcase_add_test(tc, cancelling_a_waiter_leaves_tasks_running);
    tcase_add_test(tc, detach_during_await_wait_is_honoured);
    suite_add_tcase(s, tc);

    tc = test_case("as_completed", 10);
    tcase_add_test(tc, as_completed_hands_out_tasks_in_the_order_they_end);
    tcase_add_test(tc, as_completed_times_out_as_a_whole);
    tcase_add_test(tc, cancelling_the_iterator_leaves_the_tasks_running);
    tcase_add_test(tc, as_completed_bad_input);
    tcase_add_test(tc, an_iterator_its_owner_waits_in_cannot_be_freed);
    tcase_add_test(tc, as_completed_works_on_the_shared_stack);
    suite_add_tcase(s, tc);
    return s;
}
