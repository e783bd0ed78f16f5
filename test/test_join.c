/* join.c: the as_completed iterator. (Joins, gathers and waits are tested
 * in test_sched.c, from before they moved to join.c.) Named after the
 * CPython tests (Lib/test/test_asyncio/test_tasks.py) they mirror. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "helpers.h"

#define TOKEN(i) ((void *)(uintptr_t)(i))

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
    TCase *tc = test_case("as_completed", 10);
    tcase_add_test(tc, as_completed_hands_out_tasks_in_the_order_they_end);
    tcase_add_test(tc, as_completed_times_out_as_a_whole);
    tcase_add_test(tc, cancelling_the_iterator_leaves_the_tasks_running);
    tcase_add_test(tc, as_completed_bad_input);
    tcase_add_test(tc, as_completed_works_on_the_shared_stack);
    suite_add_tcase(s, tc);
    return s;
}
