/* join.c: await_task (join, and wait_for), await_gather, await_wait and
 * the as_completed iterator. Named after the CPython tests
 * (Lib/test/test_asyncio/test_tasks.py) they mirror. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

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
