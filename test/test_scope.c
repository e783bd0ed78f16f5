/* Timeout scopes (scope.c): asyncio.timeout's behaviour, named after the
 * CPython tests (Lib/test/test_asyncio/test_timeouts.py) they mirror. */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

#define TOKEN(i) ((void *)(uintptr_t)(i))

/* test_timeout_basic: a sleep longer than its scope ends with ETIMEDOUT
 * at the scope's deadline, and the scope says it expired. */
static void *basic_main(void *arg)
{
    (void)arg;
    coro_timeout *s;
    /* The clock read before the open, which sets the deadline: read after
     * it, the lower bound below is short by the time between the two. */
    double t0 = coro_now();
    ck_assert_int_eq(coro_timeout_open(0.02, &s), 0);
    ck_assert_int_eq(await_sleep(10), ETIMEDOUT);
    double took = coro_now() - t0;
    ck_assert_double_ge(took, 0.02);
    ck_assert_double_lt(took, 0.02 + 0.5 * test_slow());
    ck_assert(coro_timeout_expired(s));
    /* Every await_* inside it after the deadline: ETIMEDOUT at once. */
    ck_assert_int_eq(await_yield(), ETIMEDOUT);
    ck_assert_int_eq(await_sleep(0.001), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    /* Closed: the task waits as before. */
    ck_assert_int_eq(await_sleep(0.001), 0);
    return NULL;
}

START_TEST(timeout_ends_a_sleep_and_expires)
{
    run_expect(basic_main, NULL, 0);
}
END_TEST

/* A scope keeps its task's bound and shield records in the task's extra
 * block, made at the first open: without memory for either, the open says
 * ENOMEM and nothing is open; with memory back, scopes work, also in a
 * task that was shielded before it had the block. */
static void *open_without_memory(void *arg)
{
    (void)arg;
    coro_timeout *s = NULL;
    atomic_store(&coro__alloc_stats.fail_every, 1);
    int err = coro_timeout_open(0.01, &s);
    atomic_store(&coro__alloc_stats.fail_every, 0);
    ck_assert_int_eq(err, ENOMEM);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(await_sleep(0.001), 0); /* no scope ends it */
    ck_assert_int_eq(coro_shield(1), 0);
    ck_assert_int_eq(coro_timeout_open(0.01, &s), 0);
    ck_assert_int_eq(await_sleep(5), ETIMEDOUT); /* opened inside: counts */
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    ck_assert_int_eq(coro_shield(0), 1);
    return NULL;
}

static void *scope_in_a_child(void *arg)
{
    (void)arg;
    int err = await_task(coro_spawn(open_without_memory, NULL), NULL);
    return err ? coro_fail(err) : NULL;
}

START_TEST(open_without_memory_is_enomem)
{
    run_expect(scope_in_a_child, NULL, 0);
}
END_TEST

/* test_timeout_not_called / test_timeout_disabled: a scope that does not
 * expire changes nothing; one without a deadline neither. */
static void *not_reached_main(void *arg)
{
    (void)arg;
    coro_timeout *s, *none;
    ck_assert_int_eq(coro_timeout_open(5, &s), 0);
    ck_assert_int_eq(coro_timeout_open(-1, &none), 0);
    ck_assert_double_eq(coro_timeout_when(none), -1);
    ck_assert_int_eq(await_sleep(0.01), 0);
    ck_assert(!coro_timeout_expired(s));
    ck_assert_int_eq(coro_timeout_close(none), 0);
    ck_assert_int_eq(coro_timeout_close(s), 0);
    return NULL;
}

START_TEST(a_scope_not_reached_changes_nothing)
{
    run_expect(not_reached_main, NULL, 0);
}
END_TEST

/* test_timeout_at_basic and test_timeout_in_the_past: an absolute
 * deadline; one already past makes the first await ETIMEDOUT. */
static void *at_main(void *arg)
{
    (void)arg;
    coro_timeout *s;
    double when = coro_now() + 0.02;
    ck_assert_int_eq(coro_timeout_open_at(when, &s), 0);
    ck_assert_double_eq_tol(coro_timeout_when(s), when, 1e-6);
    ck_assert_int_eq(await_sleep(10), ETIMEDOUT);
    ck_assert_double_ge(coro_now(), when);
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_open_at(coro_now() - 1, &s), 0);
    ck_assert_int_eq(await_sleep(0), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_open(0, &s), 0); /* timeout(0) */
    ck_assert_int_eq(await_yield(), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    return NULL;
}

START_TEST(timeout_at_and_a_deadline_in_the_past)
{
    run_expect(at_main, NULL, 0);
}
END_TEST

/* test_nested_timeouts: an inner scope never extends an outer one; the
 * outer one expires, the inner one does not (it was not its deadline). */
static void *nested_main(void *arg)
{
    (void)arg;
    coro_timeout *outer, *inner;
    ck_assert_int_eq(coro_timeout_open(0.02, &outer), 0);
    ck_assert_int_eq(coro_timeout_open(10, &inner), 0);
    double t0 = coro_now();
    ck_assert_int_eq(await_sleep(10), ETIMEDOUT);
    ck_assert_double_lt(coro_now() - t0, 0.02 + 0.5 * test_slow());
    /* Innermost first: closing the outer one now is refused. */
    ck_assert_int_eq(coro_timeout_close(outer), EINVAL);
    ck_assert_int_eq(coro_timeout_close(inner), 0);
    ck_assert_int_eq(coro_timeout_close(outer), ETIMEDOUT);
    /* And an inner scope nearer than the outer expires itself. */
    ck_assert_int_eq(coro_timeout_open(10, &outer), 0);
    ck_assert_int_eq(coro_timeout_open(0.01, &inner), 0);
    ck_assert_int_eq(await_sleep(10), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_close(inner), ETIMEDOUT);
    ck_assert_int_eq(await_sleep(0.001), 0);
    ck_assert_int_eq(coro_timeout_close(outer), 0);
    return NULL;
}

START_TEST(nested_scopes_the_nearest_deadline_wins)
{
    run_expect(nested_main, NULL, 0);
}
END_TEST

/* test_reschedule: moving the deadline while the scope is open, later and
 * earlier; an expired scope cannot be rescheduled. */
static void *reschedule_main(void *arg)
{
    (void)arg;
    coro_timeout *s;
    ck_assert_int_eq(coro_timeout_open(0.01, &s), 0);
    ck_assert_int_eq(coro_timeout_reschedule(s, coro_now() + 10), 0);
    ck_assert_int_eq(await_sleep(0.03), 0); /* past the first deadline */
    ck_assert_int_eq(coro_timeout_reschedule(s, -1), 0);
    ck_assert_double_eq(coro_timeout_when(s), -1);
    ck_assert_int_eq(coro_timeout_reschedule(s, coro_now() + 0.01), 0);
    ck_assert_int_eq(await_sleep(10), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_reschedule(s, coro_now() + 10), EINVAL);
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    return NULL;
}

START_TEST(a_scope_is_rescheduled_while_open)
{
    run_expect(reschedule_main, NULL, 0);
}
END_TEST

/* Per-call timeouts stay as they are: a nearer one ends its call with its
 * own status, and the scope does not expire. */
static void *per_call_main(void *arg)
{
    (void)arg;
    coro_timeout *s;
    coro_event *e = coro_event_new();
    ck_assert_int_eq(coro_timeout_open(10, &s), 0);
    ck_assert_int_eq(await_event(e, 0.01), ETIMEDOUT);
    ck_assert(!coro_timeout_expired(s));
    ck_assert_int_eq(coro_timeout_close(s), 0);
    /* And a scope nearer than the call's timeout ends it. */
    ck_assert_int_eq(coro_timeout_open(0.01, &s), 0);
    ck_assert_int_eq(await_event(e, 10), ETIMEDOUT);
    ck_assert(coro_timeout_expired(s));
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    coro_event_free(e);
    return NULL;
}

START_TEST(per_call_timeouts_work_inside_a_scope)
{
    run_expect(per_call_main, NULL, 0);
}
END_TEST

/* Shields: the scopes open when the shield went on are held back, so
 * clean-up can wait; one opened inside the shield still applies. */
static void *shield_main(void *arg)
{
    (void)arg;
    coro_timeout *s, *inside;
    ck_assert_int_eq(coro_timeout_open(0.01, &s), 0);
    ck_assert_int_eq(await_sleep(10), ETIMEDOUT);
    int old = coro_shield(1);
    ck_assert_int_eq(await_sleep(0.02), 0); /* clean-up may wait */
    ck_assert_int_eq(coro_timeout_open(0.01, &inside), 0);
    ck_assert_int_eq(await_sleep(10), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_close(inside), ETIMEDOUT);
    coro_shield(old);
    ck_assert_int_eq(await_yield(), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    return NULL;
}

START_TEST(a_shield_holds_back_the_scopes_open_before_it)
{
    run_expect(shield_main, NULL, 0);
}
END_TEST

/* A scope closed inside the shield and another opened there: the new one
 * applies (the fuzzer's scope-shield-depth). */
static void *shield_reopen_main(void *arg)
{
    (void)arg;
    coro_timeout *before, *inside;
    ck_assert_int_eq(coro_timeout_open(5, &before), 0);
    int old = coro_shield(1);
    ck_assert_int_eq(coro_timeout_close(before), 0);
    ck_assert_int_eq(coro_timeout_open(0.01, &inside), 0);
    ck_assert_int_eq(await_sleep(10), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_close(inside), ETIMEDOUT);
    coro_shield(old);
    return NULL;
}

START_TEST(a_scope_reopened_inside_the_shield_applies)
{
    run_expect(shield_reopen_main, NULL, 0);
}
END_TEST

/* A condition wait ended by a scope the caller opened inside its shield
 * takes the mutex back however long that takes (the fuzzer's
 * cond-relock-scope). */
static coro_mutex *relock_m;
static coro_cond *relock_c;

static void *scoped_cond_waiter(void *arg)
{
    (void)arg;
    coro_shield(1);
    ck_assert_int_eq(await_mutex_lock(relock_m, -1), 0);
    coro_timeout *s;
    ck_assert_int_eq(coro_timeout_open(0.02, &s), 0);
    int err = await_cond_wait(relock_c, relock_m, -1);
    double at = coro_now();
    ck_assert_int_eq(coro_mutex_unlock(relock_m), 0); /* held again */
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    return TOKEN(err * 1000 + (at - *(double *)arg >= 0.04));
}

static void *holds_the_mutex_a_while(void *arg)
{
    (void)arg;
    await_sleep(0.01);
    ck_assert_int_eq(await_mutex_lock(relock_m, -1), 0);
    await_sleep(0.04);
    ck_assert_int_eq(coro_mutex_unlock(relock_m), 0);
    return NULL;
}

static void *cond_relock_main(void *arg)
{
    (void)arg;
    static double t0;
    relock_m = coro_mutex_new();
    relock_c = coro_cond_new();
    t0 = coro_now();
    coro_task *w = coro_spawn(scoped_cond_waiter, &t0);
    coro_task *h = coro_spawn(holds_the_mutex_a_while, NULL);
    void *r;
    ck_assert_int_eq(await_task(w, &r), 0);
    ck_assert_ptr_eq(r, TOKEN(ETIMEDOUT * 1000 + 1));
    ck_assert_int_eq(await_task(h, NULL), 0);
    coro_mutex_free(relock_m);
    coro_cond_free(relock_c);
    return NULL;
}

START_TEST(a_condition_wait_ended_by_a_scope_still_retakes_the_mutex)
{
    run_expect(cond_relock_main, NULL, 0);
}
END_TEST

/* test_timeout_cancels_gather-like: a gather, a join and a group that the
 * scope ends cancel and await what they wait for, then ETIMEDOUT. */
static int ended;

static void *long_nap(void *arg)
{
    (void)arg;
    int err = await_sleep(10);
    ended++;
    return coro_fail(err);
}

static void *structured_main(void *arg)
{
    (void)arg;
    coro_timeout *s;
    ck_assert_int_eq(coro_timeout_open(0.01, &s), 0);
    coro_task *t[2] = { coro_spawn(long_nap, NULL),
                        coro_spawn(long_nap, NULL) };
    int errors[2];
    ck_assert_int_eq(await_gather(t, 2, NULL, errors), ETIMEDOUT);
    ck_assert_int_eq(ended, 2);
    ck_assert_int_eq(errors[0], ECANCELED);
    ck_assert_int_eq(await_task(coro_spawn(long_nap, NULL), NULL), ETIMEDOUT);
    ck_assert_int_eq(ended, 3);
    coro_group *g = coro_group_new();
    coro_group_spawn(g, NULL, long_nap, NULL);
    ck_assert_int_eq(await_group(g), ETIMEDOUT);
    ck_assert_int_eq(ended, 4);
    coro_group_free(g);
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    return NULL;
}

START_TEST(joins_gathers_and_groups_ended_by_a_scope_clean_up)
{
    ended = 0;
    run_expect(structured_main, NULL, 0);
}
END_TEST

/* A blocking call ended by a scope waits for its running job, as for a
 * cancellation; await_wait ended by a scope says ETIMEDOUT, not 0. */
static void *slow_job(void *arg)
{
    const double *seconds = arg;
    usleep((useconds_t)(*seconds * 1e6));
    return TOKEN(7);
}

static void *blocking_and_wait_main(void *arg)
{
    (void)arg;
    /* The job starts well before the scope's deadline (a worker thread
     * starts within it even under valgrind) and runs well past it. */
    static double job;
    job = 0.2 * test_slow();
    coro_timeout *s;
    ck_assert_int_eq(coro_timeout_open(0.05 * test_slow(), &s), 0);
    void *r = NULL;
    double t0 = coro_now();
    ck_assert_int_eq(await_blocking(slow_job, &job, &r), ETIMEDOUT);
    ck_assert_double_ge(coro_now() - t0, job);
    ck_assert_ptr_eq(r, TOKEN(7));
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    coro_task *t = coro_spawn(long_nap, NULL);
    size_t ndone = 9;
    ck_assert_int_eq(coro_timeout_open(0.01, &s), 0);
    ck_assert_int_eq(await_wait(&t, 1, CORO_ALL_COMPLETED, 10, &ndone),
                     ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    /* Its own timeout still ends it with 0. */
    ck_assert_int_eq(await_wait(&t, 1, CORO_ALL_COMPLETED, 0.01, &ndone), 0);
    ck_assert_uint_eq(ndone, 0);
    coro_cancel(t);
    await_task(t, NULL);
    return NULL;
}

START_TEST(blocking_calls_and_waits_inside_a_scope)
{
    run_expect(blocking_and_wait_main, NULL, 0);
}
END_TEST

/* Cancellation comes first: a cancelled task inside an expired scope gets
 * ECANCELED. */
static void *cancelled_inside(void *arg)
{
    (void)arg;
    coro_timeout *s;
    coro_timeout_open(10, &s);
    int err = await_sleep(10);
    coro_timeout_reschedule(s, 0);
    int again = await_yield();
    coro_timeout_close(s);
    return TOKEN(err * 1000 + again);
}

static void *cancel_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(cancelled_inside, NULL);
    await_sleep(0.01);
    coro_cancel(t);
    void *r;
    ck_assert_int_eq(await_task(t, &r), ECANCELED);
    ck_assert_ptr_eq(r, TOKEN(ECANCELED * 1000 + ECANCELED));
    return NULL;
}

START_TEST(cancellation_comes_before_a_scope)
{
    run_expect(cancel_main, NULL, 0);
}
END_TEST

/* Bad input: scopes are their own task's; a task that ends with scopes
 * open leaks nothing. */
static coro_timeout *shared_scope;

static void *other_task(void *arg)
{
    (void)arg;
    return TOKEN(coro_timeout_close(shared_scope) * 1000 +
                 coro_timeout_reschedule(shared_scope, 1));
}

static void *leaves_scopes_open(void *arg)
{
    (void)arg;
    coro_timeout *a, *b;
    coro_timeout_open(10, &a);
    coro_timeout_open(20, &b);
    return NULL;
}

static void *misuse_main(void *arg)
{
    (void)arg;
    coro_timeout *s;
    ck_assert_int_eq(coro_timeout_open(NAN, &s), EINVAL);
    ck_assert_int_eq(coro_timeout_open_at(NAN, &s), EINVAL);
    ck_assert_int_eq(coro_timeout_open(1, NULL), EINVAL);
    ck_assert_int_eq(coro_timeout_close(NULL), EINVAL);
    ck_assert_int_eq(coro_timeout_reschedule(NULL, 1), EINVAL);
    ck_assert_double_eq(coro_timeout_when(NULL), -1);
    ck_assert_int_eq(coro_timeout_expired(NULL), 0);
    ck_assert_int_eq(coro_timeout_open(10, &shared_scope), 0);
    ck_assert_int_eq(coro_timeout_reschedule(shared_scope, NAN), EINVAL);
    void *r;
    ck_assert_int_eq(await_task(coro_spawn(other_task, NULL), &r), 0);
    ck_assert_ptr_eq(r, TOKEN(EINVAL * 1000 + EINVAL));
    ck_assert_int_eq(coro_timeout_close(shared_scope), 0);
    ck_assert_int_eq(await_task(coro_spawn(leaves_scopes_open, NULL), NULL),
                     0);
    return NULL;
}

START_TEST(scope_bad_input)
{
    run_expect(misuse_main, NULL, 0);
    coro_timeout *s;
    ck_assert_int_eq(coro_timeout_open(1, &s), EPERM);
    ck_assert_int_eq(coro_timeout_open_at(1, &s), EPERM);
}
END_TEST

/* From a shared-stack task while another shared-stack task writes over
 * the stack: the scope is on the heap, its deadline in the task. */
static void *scoped_waiter(void *arg)
{
    coro_chan *c = arg;
    coro_timeout *s;
    static int v;
    ck_assert_int_eq(coro_timeout_open(0.02, &s), 0);
    int err = await_chan_recv(c, &v, -1);
    return TOKEN(err * 1000 + coro_timeout_close(s));
}

static void *shared_main(void *arg)
{
    (void)arg;
    coro_attr shared = { .flags = CORO_SHARED_STACK };
    coro_chan *c = coro_chan_new(sizeof(int), 0);
    test_scribbling_start();
    coro_task *s = coro_spawn_attr(&shared, test_scribbler, NULL);
    coro_task *w = coro_spawn_attr(&shared, scoped_waiter, c);
    void *r;
    ck_assert_int_eq(await_task(w, &r), 0);
    ck_assert_ptr_eq(r, TOKEN(ETIMEDOUT * 1000 + ETIMEDOUT));
    test_scribbling_stop();
    ck_assert_int_eq(await_task(s, NULL), 0);
    coro_chan_free(c);
    return NULL;
}

START_TEST(scopes_work_on_the_shared_stack)
{
    run_expect(shared_main, NULL, 0);
}
END_TEST

Suite *scope_suite(void)
{
    Suite *s = suite_create("scope");
    TCase *tc = test_case("timeout", 10);
    tcase_add_test(tc, timeout_ends_a_sleep_and_expires);
    tcase_add_test(tc, open_without_memory_is_enomem);
    tcase_add_test(tc, a_scope_not_reached_changes_nothing);
    tcase_add_test(tc, timeout_at_and_a_deadline_in_the_past);
    tcase_add_test(tc, nested_scopes_the_nearest_deadline_wins);
    tcase_add_test(tc, a_scope_is_rescheduled_while_open);
    tcase_add_test(tc, per_call_timeouts_work_inside_a_scope);
    tcase_add_test(tc, a_shield_holds_back_the_scopes_open_before_it);
    tcase_add_test(tc, a_scope_reopened_inside_the_shield_applies);
    tcase_add_test(tc,
                   a_condition_wait_ended_by_a_scope_still_retakes_the_mutex);
    tcase_add_test(tc, joins_gathers_and_groups_ended_by_a_scope_clean_up);
    tcase_add_test(tc, blocking_calls_and_waits_inside_a_scope);
    tcase_add_test(tc, cancellation_comes_before_a_scope);
    tcase_add_test(tc, scope_bad_input);
    tcase_add_test(tc, scopes_work_on_the_shared_stack);
    suite_add_tcase(s, tc);
    return s;
}
