/* Timeout scopes (scope.c): asyncio.timeout's behaviour, named after the
 * CPython tests (Lib/test/test_asyncio/test_timeouts.py) they mirror. */
#include <errno.h>
#include <float.h>
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

/* Deadlines at the ends of the doubles: past what int64 nanoseconds count
 * they never come (when() says -1); at or before now they have come. */
static void *extreme_deadlines_main(void *arg)
{
    (void)arg;
    const double never[] = { -INFINITY, -DBL_MAX, -1, 9.3e9 * 2, 9.3e18,
                             1e300, DBL_MAX, INFINITY };
    coro_timeout *s;
    for (size_t i = 0; i < sizeof never / sizeof *never; i++) {
        ck_assert_int_eq(coro_timeout_open(never[i], &s), 0);
        ck_assert_double_eq(coro_timeout_when(s), -1);
        ck_assert_int_eq(await_sleep(0.001), 0);
        ck_assert_int_eq(coro_timeout_reschedule(s, never[i]), 0);
        ck_assert_double_eq(coro_timeout_when(s), -1);
        ck_assert_int_eq(coro_timeout_expired(s), 0);
        ck_assert_int_eq(coro_timeout_close(s), 0);
        ck_assert_int_eq(coro_timeout_open_at(never[i], &s), 0);
        ck_assert_double_eq(coro_timeout_when(s), -1);
        ck_assert_int_eq(await_yield(), 0);
        ck_assert_int_eq(coro_timeout_close(s), 0);
    }
    const double now[] = { 0, -0.0, 5e-324, 1e-300 };
    for (size_t i = 0; i < sizeof now / sizeof *now; i++) {
        ck_assert_int_eq(coro_timeout_open(now[i], &s), 0);
        ck_assert_double_ge(coro_timeout_when(s), 0);
        ck_assert_int_eq(await_yield(), ETIMEDOUT);
        ck_assert_int_eq(coro_timeout_expired(s), 1);
        /* Expired: no reschedule, as asyncio refuses one. */
        ck_assert_int_eq(coro_timeout_reschedule(s, INFINITY), EINVAL);
        ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
        ck_assert_int_eq(coro_timeout_open_at(now[i], &s), 0);
        ck_assert_int_eq(await_sleep(-1), ETIMEDOUT);
        ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    }
    /* A reschedule to NaN, or of a scope not the innermost, changes
     * nothing wrong: NaN is refused, an outer one may move. */
    coro_timeout *outer, *inner;
    ck_assert_int_eq(coro_timeout_open(10, &outer), 0);
    ck_assert_int_eq(coro_timeout_open(10, &inner), 0);
    ck_assert_int_eq(coro_timeout_reschedule(outer, NAN), EINVAL);
    ck_assert_int_eq(coro_timeout_reschedule(outer, INFINITY), 0);
    ck_assert_double_eq(coro_timeout_when(outer), -1);
    ck_assert_int_eq(coro_timeout_close(outer), EINVAL); /* not innermost */
    ck_assert_int_eq(coro_timeout_close(inner), 0);
    ck_assert_int_eq(coro_timeout_close(outer), 0);
    return NULL;
}

START_TEST(scope_deadlines_at_the_ends_of_the_doubles)
{
    run_expect(extreme_deadlines_main, NULL, 0);
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

/* ---------------------------------------------------------------------- */
/* More of CPython's test_timeouts.py                                     */
/* ---------------------------------------------------------------------- */

/* Lib/test/test_asyncio/test_timeouts.py (3.13), the tests that map
 * beyond those above. asyncio.timeout(-11) is a deadline in the past, and
 * timeout(None) none; here a negative duration is none (coro.h's
 * conventions), so a deadline in the past is given with
 * coro_timeout_open_at. */

static void *zero_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        double t0 = coro_now();
        coro_timeout *s;
        if (i < 2)
            ck_assert_int_eq(coro_timeout_open(0, &s), 0);
        else
            ck_assert_int_eq(coro_timeout_open_at(t0 - 11, &s), 0);
        /* test_timeout_zero sleeps 10, the other two sleep 0 */
        ck_assert_int_eq(await_sleep(i == 0 ? 10 : 0), ETIMEDOUT);
        double t1 = coro_now();
        ck_assert(coro_timeout_expired(s));
        double when = coro_timeout_when(s);
        if (i < 2)
            ck_assert(t0 <= when && when <= t1);
        else
            ck_assert_double_eq_tol(when, t0 - 11, 1e-6);
        ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
        ck_assert_double_lt(t1 - t0, 0.5 * test_slow());
    }
    /* test_timeout_at_disabled */
    coro_timeout *s;
    ck_assert_int_eq(coro_timeout_open_at(-1, &s), 0);
    ck_assert_int_eq(await_sleep(0.01), 0);
    ck_assert(!coro_timeout_expired(s));
    ck_assert_double_eq(coro_timeout_when(s), -1);
    ck_assert_int_eq(coro_timeout_close(s), 0);
    return NULL;
}

/* test_timeout_zero, test_timeout_zero_sleep_zero,
 * test_timeout_in_the_past_sleep_zero and test_timeout_at_disabled: a
 * deadline now or past ends the first wait, even a sleep of 0. */
START_TEST(py_timeouts_test_timeout_zero)
{
    run_expect(zero_main, NULL, 0);
}
END_TEST

static void *foreign_cancel_main(void *arg)
{
    (void)arg;
    coro_timeout *s;
    ck_assert_int_eq(coro_timeout_open(10, &s), 0);
    coro_cancel(coro_self());
    ck_assert_int_eq(await_sleep(10), ECANCELED);
    ck_assert(!coro_timeout_expired(s));
    ck_assert_int_eq(coro_timeout_close(s), 0);
    return NULL;
}

/* test_foreign_cancel_doesnt_timeout_if_not_expired: a cancellation
 * inside a scope is ECANCELED, and the scope has not expired. */
START_TEST(py_timeouts_test_foreign_cancel_doesnt_timeout_if_not_expired)
{
    run_expect(foreign_cancel_main, NULL, ECANCELED);
}
END_TEST

static void *time_out_inside(void *arg)
{
    (void)arg;
    coro_timeout *s;
    ck_assert_int_eq(coro_timeout_open(0.001, &s), 0);
    ck_assert_int_eq(await_sleep(10), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    ck_assert_int_eq(coro_task_cancelling(coro_self()), 0);
    return TOKEN(1);
}

static void *outer_not_cancelled_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(time_out_inside, NULL);
    void *res;
    ck_assert_int_eq(await_task(t, &res), 0);
    ck_assert_ptr_eq(res, TOKEN(1));
    return NULL;
}

/* test_outer_task_is_not_cancelled: a scope that expires leaves its task
 * uncancelled. */
START_TEST(py_timeouts_test_outer_task_is_not_cancelled)
{
    run_expect(outer_not_cancelled_main, NULL, 0);
}
END_TEST

/* Keeps the thread busy for seconds, as time.sleep in the Python test. */
static void busy_for(double seconds)
{
    double end = coro_now() + seconds;
    while (coro_now() < end)
        ;
}

static void *nested_concurrent_main(void *arg)
{
    (void)arg;
    coro_timeout *outer, *inner;
    /* test_nested_timeouts_concurrent */
    ck_assert_int_eq(coro_timeout_open(0.002, &outer), 0);
    ck_assert_int_eq(coro_timeout_open(0.1, &inner), 0);
    busy_for(0.01);
    ck_assert_int_eq(await_sleep(1), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_close(inner), 0); /* not its deadline */
    ck_assert_int_eq(coro_timeout_close(outer), ETIMEDOUT);

    /* test_nested_timeouts_loop_busy */
    double t0 = coro_now();
    ck_assert_int_eq(coro_timeout_open(0.1, &outer), 0);
    ck_assert_int_eq(coro_timeout_open(0.01, &inner), 0);
    busy_for(0.1);
    ck_assert_int_eq(await_sleep(1), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_close(inner), ETIMEDOUT);
    ck_assert_int_eq(await_sleep(10), ETIMEDOUT); /* ended by the outer */
    ck_assert_int_eq(coro_timeout_close(outer), ETIMEDOUT);
    ck_assert_double_lt(coro_now() - t0, 1 * test_slow());
    return NULL;
}

/* test_nested_timeouts_concurrent and test_nested_timeouts_loop_busy: of
 * two scopes past their deadlines, the nearer deadline ends the wait and
 * expires its scope. */
START_TEST(py_timeouts_test_nested_timeouts_concurrent)
{
    run_expect(nested_concurrent_main, NULL, 0);
}
END_TEST

static void *in_finally_main(void *arg)
{
    (void)arg;
    coro_timeout *outer, *inner;
    ck_assert_int_eq(coro_timeout_open(0.01, &outer), 0);
    ck_assert_int_eq(await_sleep(1), ETIMEDOUT);
    /* The "finally": past the outer deadline every wait inside it ends at
     * once, where asyncio's timeout cancels once and lets the clean-up
     * wait; clean-up that must wait takes a shield, and a scope opened
     * inside the shield still applies (coro.h, timeout scopes). */
    ck_assert_int_eq(await_sleep(0.001), ETIMEDOUT);
    int shield = coro_shield(1);
    ck_assert_int_eq(coro_timeout_open(0.01, &inner), 0);
    double t0 = coro_now();
    ck_assert_int_eq(await_sleep(10), ETIMEDOUT);
    ck_assert_double_ge(coro_now() - t0, 0.01);
    ck_assert_int_eq(coro_timeout_close(inner), ETIMEDOUT);
    coro_shield(shield);
    ck_assert_int_eq(coro_timeout_close(outer), ETIMEDOUT);
    return NULL;
}

/* test_nested_timeout_in_finally: an inner scope in the clean-up after
 * the outer one expired expires in turn. */
START_TEST(py_timeouts_test_nested_timeout_in_finally)
{
    run_expect(in_finally_main, NULL, 0);
}
END_TEST

static void *after_cancellation_main(void *arg)
{
    int cancel_inside = arg != NULL;
    coro_cancel(coro_self());
    ck_assert_int_eq(await_sleep(1), ECANCELED);
    /* The "finally": asyncio's task caught the CancelledError; here the
     * cancellation is sticky, and the clean-up waits under a shield. */
    int shield = coro_shield(1);
    coro_timeout *s;
    ck_assert_int_eq(coro_timeout_open(cancel_inside ? 1 : 0, &s), 0);
    if (cancel_inside) {
        coro_shield(shield); /* the new cancellation is seen */
        coro_cancel(coro_self());
        ck_assert_int_eq(await_sleep(2), ECANCELED);
        ck_assert(!coro_timeout_expired(s));
        ck_assert_int_eq(coro_timeout_close(s), 0);
    } else {
        ck_assert_int_eq(await_sleep(1), ETIMEDOUT);
        ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
        coro_shield(shield);
    }
    return NULL;
}

/* test_timeout_after_cancellation: a scope in the clean-up after a
 * cancellation times out its wait. */
START_TEST(py_timeouts_test_timeout_after_cancellation)
{
    run_expect(after_cancellation_main, NULL, ECANCELED);
}
END_TEST

/* test_cancel_in_timeout_after_cancellation: a cancellation inside that
 * scope is ECANCELED. */
START_TEST(py_timeouts_test_cancel_in_timeout_after_cancellation)
{
    run_expect(after_cancellation_main, TOKEN(1), ECANCELED);
}
END_TEST

/* task of test_timeout_taskgroup: fails with EDOM in its clean-up. */
static void *fail_in_clean_up(void *arg)
{
    (void)arg;
    await_sleep(2);
    return coro_fail(EDOM);
}

static void *timeout_taskgroup_main(void *arg)
{
    (void)arg;
    coro_timeout *s;
    ck_assert_int_eq(coro_timeout_open(0.01, &s), 0);
    coro_group *g = coro_group_new();
    coro_group_spawn(g, NULL, fail_in_clean_up, NULL);
    ck_assert_int_eq(await_sleep(1), ETIMEDOUT); /* the body's "finally" */
    /* asyncio raises the member's ZeroDivisionError (an ExceptionGroup)
     * over the TimeoutError; here await_group says ETIMEDOUT and the
     * member's error is in coro_group_result (coro.h, await_group). */
    ck_assert_int_eq(await_group(g), ETIMEDOUT);
    ck_assert_int_eq(coro_group_result(g, 0, NULL), EDOM);
    coro_group_free(g);
    ck_assert_int_eq(coro_timeout_close(s), ETIMEDOUT);
    return NULL;
}

/* test_timeout_taskgroup: a scope expiring around a group cancels and
 * awaits its members; one fails in its clean-up. */
START_TEST(py_timeouts_test_timeout_taskgroup)
{
    run_expect(timeout_taskgroup_main, NULL, 0);
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
    tcase_add_test(tc, scope_deadlines_at_the_ends_of_the_doubles);
    tcase_add_test(tc, scopes_work_on_the_shared_stack);
    suite_add_tcase(s, tc);

    tc = test_case("asyncio timeouts", 10);
    tcase_add_test(tc, py_timeouts_test_timeout_zero);
    tcase_add_test(tc,
                   py_timeouts_test_foreign_cancel_doesnt_timeout_if_not_expired);
    tcase_add_test(tc, py_timeouts_test_outer_task_is_not_cancelled);
    tcase_add_test(tc, py_timeouts_test_nested_timeouts_concurrent);
    tcase_add_test(tc, py_timeouts_test_nested_timeout_in_finally);
    tcase_add_test(tc, py_timeouts_test_timeout_after_cancellation);
    tcase_add_test(tc, py_timeouts_test_cancel_in_timeout_after_cancellation);
    tcase_add_test(tc, py_timeouts_test_timeout_taskgroup);
    suite_add_tcase(s, tc);
    return s;
}
