/* Task groups (group.c): asyncio.TaskGroup's behaviour, named after the
 * CPython tests (Lib/test/test_asyncio/test_taskgroups.py) they mirror. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define TOKEN(i) ((void *)(uintptr_t)(i))

struct nap {
    double seconds;
    int    fail;     /* coro_fail with this after the nap, if not 0 */
    int    token;
};

static void *nap(void *arg)
{
    const struct nap *n = arg;
    int err = await_sleep(n->seconds);
    trace("%d:%d", n->token, err);
    if (err)
        return coro_fail(err);
    return n->fail ? coro_fail(n->fail) : TOKEN(n->token);
}

/* test_taskgroup_01: the group waits for its members; each one's result
 * is read afterwards, in spawn order. */
static void *results_main(void *arg)
{
    (void)arg;
    static const struct nap a = { 0.02, 0, 1 }, b = { 0.01, 0, 2 };
    coro_group *g = coro_group_new();
    ck_assert_ptr_nonnull(g);
    ck_assert_ptr_nonnull(coro_group_spawn(g, NULL, nap, (void *)&a));
    ck_assert_ptr_nonnull(coro_group_spawn(g, NULL, nap, (void *)&b));
    ck_assert_uint_eq(coro_group_size(g), 2);
    void *r = NULL;
    ck_assert_int_eq(coro_group_result(g, 0, &r), EAGAIN);
    ck_assert_int_eq(await_group(g), 0);
    ck_assert_int_eq(coro_group_result(g, 0, &r), 0);
    ck_assert_ptr_eq(r, TOKEN(1));
    ck_assert_int_eq(coro_group_result(g, 1, &r), 0);
    ck_assert_ptr_eq(r, TOKEN(2));
    ck_assert_int_eq(coro_group_result(g, 2, &r), EINVAL);
    ck_assert_int_eq(coro_group_free(g), 0);
    return NULL;
}

START_TEST(group_waits_for_every_member_and_keeps_their_results)
{
    run_expect(results_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "2:0 1:0");
}
END_TEST

/* test_taskgroup_02: a member that spawns into its own group; the group
 * waits for the late one too. */
static coro_group *shared_group;

static void *spawns_more(void *arg)
{
    (void)arg;
    static const struct nap late = { 0.03, 0, 9 };
    await_sleep(0.01);
    return coro_group_spawn(shared_group, NULL, nap, (void *)&late)
               ? TOKEN(1)
               : NULL;
}

static void *late_member_main(void *arg)
{
    (void)arg;
    shared_group = coro_group_new();
    coro_group_spawn(shared_group, NULL, spawns_more, NULL);
    ck_assert_int_eq(await_group(shared_group), 0);
    ck_assert_uint_eq(coro_group_size(shared_group), 2);
    void *r;
    ck_assert_int_eq(coro_group_result(shared_group, 1, &r), 0);
    ck_assert_ptr_eq(r, TOKEN(9));
    /* Awaited to its end: it takes no new members. */
    errno = 0;
    ck_assert_ptr_null(coro_group_spawn(shared_group, NULL, nap, NULL));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(coro_group_free(shared_group), 0);
    return NULL;
}

START_TEST(members_may_spawn_members_while_the_group_is_awaited)
{
    run_expect(late_member_main, NULL, 0);
}
END_TEST

/* test_taskgroup_03/04: the first member to fail cancels the others; the
 * group returns that error; each member's own outcome stays readable. */
static void *first_failure_main(void *arg)
{
    (void)arg;
    static const struct nap slow = { 5, 0, 1 }, bad = { 0.01, EIO, 2 },
                            worse = { 0.02, EPIPE, 3 };
    coro_group *g = coro_group_new();
    coro_group_spawn(g, NULL, nap, (void *)&slow);
    coro_group_spawn(g, NULL, nap, (void *)&bad);
    coro_group_spawn(g, NULL, nap, (void *)&worse);
    double t0 = coro_now();
    ck_assert_int_eq(await_group(g), EIO);
    ck_assert_double_lt(coro_now() - t0, 1.0); /* not the 5 s nap */
    ck_assert_int_eq(coro_group_result(g, 0, NULL), ECANCELED);
    ck_assert_int_eq(coro_group_result(g, 1, NULL), EIO);
    ck_assert_int_eq(coro_group_result(g, 2, NULL), ECANCELED);
    ck_assert_int_eq(coro_group_free(g), 0);
    return NULL;
}

START_TEST(the_first_failure_cancels_the_rest_and_is_returned)
{
    run_expect(first_failure_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "2:0 1:125 3:125");
}
END_TEST

/* test_cancel_children_on_child_error: a member cancelled by someone else
 * than the group is a failure like any other. */
static void *outside_cancel_main(void *arg)
{
    (void)arg;
    static const struct nap a = { 5, 0, 1 }, b = { 5, 0, 2 };
    coro_group *g = coro_group_new();
    coro_task *t = coro_group_spawn(g, NULL, nap, (void *)&a);
    coro_group_spawn(g, NULL, nap, (void *)&b);
    await_yield();
    coro_cancel(t);
    ck_assert_int_eq(await_group(g), ECANCELED);
    /* The caller was not cancelled: the ECANCELED is a member's. */
    ck_assert_int_eq(await_sleep(0), 0);
    ck_assert_int_eq(coro_group_free(g), 0);
    return NULL;
}

START_TEST(a_member_cancelled_from_outside_fails_the_group)
{
    run_expect(outside_cancel_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "1:125 2:125");
}
END_TEST

/* test_cancellation (parent cancelled): the members are cancelled and
 * still awaited before await_group returns. */
static void *owns_a_group(void *arg)
{
    (void)arg;
    static const struct nap a = { 5, 0, 1 }, b = { 5, 0, 2 };
    coro_group *g = coro_group_new();
    coro_group_spawn(g, NULL, nap, (void *)&a);
    coro_group_spawn(g, NULL, nap, (void *)&b);
    int err = await_group(g);
    trace("group %d", err);
    ck_assert_int_eq(coro_group_result(g, 0, NULL), ECANCELED);
    ck_assert_int_eq(coro_group_free(g), 0);
    return coro_fail(err);
}

static void *cancel_owner_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(owns_a_group, NULL);
    await_sleep(0.01);
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    return NULL;
}

START_TEST(cancelling_the_awaiter_cancels_and_awaits_the_members)
{
    run_expect(cancel_owner_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "1:125 2:125 group 125");
}
END_TEST

/* test_taskgroup_cancel_children_on_child_error, later spawns: a task
 * spawned into a group that is cancelling is cancelled at once, and still
 * runs to clean up. */
static void *cleans_up(void *arg)
{
    (void)arg;
    trace("ran");
    int err = await_yield();
    trace("saw %d", err);
    return coro_fail(err);
}

static void *spawn_into_cancelling_main(void *arg)
{
    (void)arg;
    static const struct nap bad = { 0, EIO, 1 }, slow = { 5, 0, 2 };
    coro_group *g = coro_group_new();
    coro_group_spawn(g, NULL, nap, (void *)&bad);
    coro_group_spawn(g, NULL, nap, (void *)&slow);
    await_sleep(0.01); /* bad has failed: the group is cancelling */
    ck_assert_ptr_nonnull(coro_group_spawn(g, NULL, cleans_up, NULL));
    ck_assert_int_eq(await_group(g), EIO);
    ck_assert_int_eq(coro_group_result(g, 2, NULL), ECANCELED);
    ck_assert_int_eq(coro_group_free(g), 0);
    return NULL;
}

START_TEST(a_task_spawned_into_a_cancelling_group_is_cancelled)
{
    run_expect(spawn_into_cancelling_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "1:0 2:125 ran saw 125");
}
END_TEST

/* test_taskgroup_nested: an inner group's failure fails its owner, which
 * fails the outer group, which cancels the owner's sibling. */
static void *inner_owner(void *arg)
{
    (void)arg;
    static const struct nap bad = { 0.01, EIO, 3 }, slow = { 5, 0, 4 };
    coro_group *g = coro_group_new();
    coro_group_spawn(g, NULL, nap, (void *)&bad);
    coro_group_spawn(g, NULL, nap, (void *)&slow);
    int err = await_group(g);
    coro_group_free(g);
    return coro_fail(err);
}

static void *nested_main(void *arg)
{
    (void)arg;
    static const struct nap sibling = { 5, 0, 1 };
    coro_group *outer = coro_group_new();
    coro_group_spawn(outer, NULL, nap, (void *)&sibling);
    coro_group_spawn(outer, NULL, inner_owner, NULL);
    ck_assert_int_eq(await_group(outer), EIO);
    ck_assert_int_eq(coro_group_result(outer, 0, NULL), ECANCELED);
    ck_assert_int_eq(coro_group_result(outer, 1, NULL), EIO);
    ck_assert_int_eq(coro_group_free(outer), 0);
    return NULL;
}

START_TEST(groups_nest)
{
    run_expect(nested_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "3:0 4:125 1:125");
}
END_TEST

/* A member spawned by another task after the last member ended, before
 * the awaiter ran again, is waited for too (the fuzzer's
 * group-late-member). */
static coro_task *first_member;

static void *yields_once(void *arg)
{
    (void)arg;
    await_yield();
    trace("first-ends");
    return NULL;
}

static void *spawns_late(void *arg)
{
    (void)arg;
    static const struct nap late = { 0.02, 0, 7 };
    while (!coro_task_done(first_member))
        await_yield();
    trace("late-spawn");
    coro_group_spawn(shared_group, NULL, nap, (void *)&late);
    return NULL;
}

static void *late_after_last_main(void *arg)
{
    (void)arg;
    shared_group = coro_group_new();
    first_member = coro_group_spawn(shared_group, NULL, yields_once, NULL);
    coro_task *x = coro_spawn(spawns_late, NULL);
    ck_assert_int_eq(await_group(shared_group), 0);
    trace("awaited");
    ck_assert_uint_eq(coro_group_size(shared_group), 2);
    ck_assert_int_eq(coro_group_result(shared_group, 1, NULL), 0);
    ck_assert_int_eq(await_task(x, NULL), 0);
    ck_assert_int_eq(coro_group_free(shared_group), 0);
    return NULL;
}

START_TEST(a_member_spawned_after_the_last_one_ended_is_waited_for)
{
    run_expect(late_after_last_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "first-ends late-spawn 7:0 awaited");
}
END_TEST

/* Bad input, and what members may not be. */
static void *misuse_main(void *arg)
{
    (void)arg;
    static const struct nap a = { 0.01, 0, 1 };
    ck_assert_int_eq(await_group(NULL), EINVAL);
    ck_assert_int_eq(coro_group_free(NULL), 0);
    ck_assert_uint_eq(coro_group_size(NULL), 0);
    ck_assert_int_eq(coro_group_result(NULL, 0, NULL), EINVAL);
    errno = 0;
    ck_assert_ptr_null(coro_group_spawn(NULL, NULL, nap, (void *)&a));
    ck_assert_int_eq(errno, EINVAL);
    coro_group *g = coro_group_new();
    errno = 0;
    ck_assert_ptr_null(coro_group_spawn(g, NULL, NULL, NULL));
    ck_assert_int_eq(errno, EINVAL);
    coro_task *t = coro_group_spawn(g, NULL, nap, (void *)&a);
    /* The group owns it: no join, no detach. */
    ck_assert_int_eq(await_task(t, NULL), EINVAL);
    ck_assert_int_eq(await_gather(&t, 1, NULL, NULL), EINVAL);
    coro_detach(t);
    ck_assert_int_eq(coro_group_free(g), EBUSY);
    /* Indices past the members, and past any size. */
    void *r = TOKEN(5);
    ck_assert_int_eq(coro_group_result(g, 1, &r), EINVAL);
    ck_assert_int_eq(coro_group_result(g, SIZE_MAX, &r), EINVAL);
    ck_assert_ptr_eq(r, TOKEN(5));
    ck_assert_int_eq(coro_group_result(g, 0, &r), EAGAIN);
    coro_attr bad = { .flags = 64 };
    errno = 0;
    ck_assert_ptr_null(coro_group_spawn(g, &bad, nap, (void *)&a));
    ck_assert_int_eq(errno, EINVAL);
    bad = (coro_attr){ .stack_size = 1 };
    ck_assert_ptr_null(coro_group_spawn(g, &bad, nap, (void *)&a));
    ck_assert_uint_eq(coro_group_size(g), 1); /* refused: not counted */
    ck_assert_int_eq(await_group(g), 0);
    /* Awaited to its end: no more members, nor a second await. */
    errno = 0;
    ck_assert_ptr_null(coro_group_spawn(g, NULL, nap, (void *)&a));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(coro_group_result(g, 0, NULL), 0);
    ck_assert_int_eq(coro_group_free(g), 0);
    return NULL;
}

START_TEST(group_bad_input)
{
    run_expect(misuse_main, NULL, 0);
    errno = 0;
    ck_assert_ptr_null(coro_group_new());
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(await_group(NULL), EPERM);
}
END_TEST

/* A member awaiting its own group would wait for itself. */
static void *awaits_its_group(void *arg)
{
    (void)arg;
    return TOKEN(await_group(shared_group));
}

static void *self_await_main(void *arg)
{
    (void)arg;
    shared_group = coro_group_new();
    coro_group_spawn(shared_group, NULL, awaits_its_group, NULL);
    ck_assert_int_eq(await_group(shared_group), 0);
    void *r;
    ck_assert_int_eq(coro_group_result(shared_group, 0, &r), 0);
    ck_assert_ptr_eq(r, TOKEN(EDEADLK));
    ck_assert_int_eq(coro_group_free(shared_group), 0);
    return NULL;
}

START_TEST(a_member_awaiting_its_own_group_is_edeadlk)
{
    run_expect(self_await_main, NULL, 0);
}
END_TEST

/* A group of another thread's loop is refused. The other thread calls no
 * ck_assert (in Check's no-fork mode, valgrind's, a failure there would
 * jump into the test's thread): its main returns the line of the first
 * refusal missing, for the test to assert after the join. */
static void *foreign_group_main(void *arg)
{
    coro_group *g = arg;
    if (await_group(g) != EINVAL)
        return TOKEN(__LINE__);
    if (coro_group_spawn(g, NULL, nap, NULL) != NULL)
        return TOKEN(__LINE__);
    if (coro_group_free(g) != EINVAL)
        return TOKEN(__LINE__);
    return TOKEN(0);
}

static int foreign_err, foreign_missing; /* read after the join */

static void *foreign_thread(void *arg)
{
    void *missing = TOKEN(-1);
    foreign_err = coro_run(foreign_group_main, arg, &missing);
    foreign_missing = (int)(uintptr_t)missing;
    return NULL;
}

static void *other_loop_main(void *arg)
{
    (void)arg;
    coro_group *g = coro_group_new();
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, foreign_thread, g), 0);
    ck_assert_int_eq(test_join(th, NULL, 10), 0);
    ck_assert_int_eq(foreign_err, 0);
    ck_assert_int_eq(foreign_missing, 0);
    ck_assert_int_eq(coro_group_free(g), 0);
    return NULL;
}

START_TEST(a_group_of_another_loop_is_einval)
{
    run_expect(other_loop_main, NULL, 0);
}
END_TEST

/* coro_dump says which group a task belongs to, and who awaits it. */
static void *dump_main(void *arg)
{
    char **text = arg;
    static const struct nap a = { 5, 0, 1 };
    shared_group = coro_group_new();
    coro_group_spawn(shared_group, NULL, nap, (void *)&a);
    coro_task *w = coro_spawn(awaits_its_group, NULL);
    await_yield();
    size_t len;
    FILE *f = open_memstream(text, &len);
    coro_dump(f);
    fclose(f);
    coro_cancel(w);
    await_task(w, NULL);
    return NULL;
}

START_TEST(dump_shows_group_membership)
{
    char *text = NULL;
    run_expect(dump_main, &text, 0); /* main's end cancels the member */
    ck_assert_msg(strstr(text, "sleeping, ") && strstr(text, "[group #1]"),
                  "%s", text);
    ck_assert_msg(strstr(text, "awaiting task group #1"), "%s", text);
    free(text);
}
END_TEST

/* Deadlock detection goes on working: a member blocked forever with
 * nothing that could wake it. */
static void *stuck(void *arg)
{
    coro_event *e = arg;
    return TOKEN(await_event(e, -1));
}

static void *deadlock_main(void *arg)
{
    coro_group *g = coro_group_new();
    coro_group_spawn(g, NULL, stuck, arg);
    int err = await_group(g);
    ck_assert_int_eq(coro_group_free(g), 0);
    return coro_fail(err);
}

START_TEST(a_deadlocked_group_is_reported)
{
    coro_event *e = coro_event_new();
    stderr_capture();
    int err = coro_run(deadlock_main, e, NULL);
    char *report = stderr_captured();
    ck_assert_int_eq(err, EDEADLK);
    ck_assert_msg(strstr(report, "awaiting task group #1") &&
                      strstr(report, "[group #1]"),
                  "%s", report);
    free(report);
    ck_assert_int_eq(coro_event_free(e), 0);
}
END_TEST

/* Members and the awaiter on the shared stack, with a scribbler. */
static void *shared_owner(void *arg)
{
    (void)arg;
    static const struct nap a = { 0.01, 0, 1 }, b = { 0.02, EIO, 2 };
    coro_attr shared = { .flags = CORO_SHARED_STACK };
    coro_group *g = coro_group_new();
    coro_group_spawn(g, &shared, nap, (void *)&a);
    coro_group_spawn(g, &shared, nap, (void *)&b);
    int err = await_group(g);
    void *r;
    ck_assert_int_eq(coro_group_result(g, 0, &r), 0);
    ck_assert_ptr_eq(r, TOKEN(1));
    ck_assert_int_eq(coro_group_free(g), 0);
    return coro_fail(err);
}

static void *shared_main(void *arg)
{
    (void)arg;
    coro_attr shared = { .flags = CORO_SHARED_STACK };
    test_scribbling_start();
    coro_task *s = coro_spawn_attr(&shared, test_scribbler, NULL);
    coro_task *o = coro_spawn_attr(&shared, shared_owner, NULL);
    ck_assert_int_eq(await_task(o, NULL), EIO);
    test_scribbling_stop();
    ck_assert_int_eq(await_task(s, NULL), 0);
    return NULL;
}

START_TEST(groups_work_on_the_shared_stack)
{
    run_expect(shared_main, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* More of CPython's test_taskgroups.py                                   */
/* ---------------------------------------------------------------------- */

/* Lib/test/test_asyncio/test_taskgroups.py (3.13), the tests that map
 * beyond those above. Where an exception in the Python `async with` body
 * ends the group early, the body here awaits the group inside a timeout
 * scope of 0 seconds, which cancels and awaits the members (coro.h, task
 * groups). */

static int group_num;

/* foo of test_taskgroup_07: counts its cancellation; with arg, fails
 * with EDOM in its clean-up (test_taskgroup_08's 1 / 0). */
static void *count_cancel(void *arg)
{
    int err = await_sleep(5);
    if (err == ECANCELED)
        group_num += 1;
    return coro_fail(arg ? EDOM : err);
}

/* runner of test_taskgroup_07 and _08: five members, then a long sleep
 * in the body. */
static void *five_and_sleep(void *arg)
{
    coro_group *g = coro_group_new();
    for (int i = 0; i < 5; i++)
        coro_group_spawn(g, NULL, count_cancel, arg);
    if (await_sleep(10) == ECANCELED)
        group_num += 10;
    int err = await_group(g);
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(coro_group_result(g, i, NULL), arg ? EDOM : ECANCELED);
    coro_group_free(g);
    return coro_fail(err);
}

/* Runs runner(arg), cancels it while its group's members sleep, and
 * expects it cancelled with group_num at `counted`. */
static void cancel_runner(coro_fn runner, void *arg, int counted)
{
    group_num = 0;
    coro_task *r = coro_spawn(runner, arg);
    await_sleep(0.01);
    ck_assert_int_eq(coro_task_done(r), 0);
    coro_cancel(r);
    ck_assert_int_eq(await_task(r, NULL), ECANCELED);
    ck_assert_int_eq(group_num, counted);
}

static void *group_07_main(void *arg)
{
    /* test_taskgroup_08: asyncio raises the members' ZeroDivisionErrors
     * (an ExceptionGroup) over the runner's own cancellation; here the
     * cancelled caller's await_group says ECANCELED, and the members'
     * errors are in coro_group_result (coro.h, await_group). */
    cancel_runner(five_and_sleep, arg, 15);
    return NULL;
}

/* test_taskgroup_07: the runner cancelled in its body: its sleep and
 * every member see the cancellation. */
START_TEST(py_taskgroup_07)
{
    run_expect(group_07_main, NULL, 0);
}
END_TEST

/* test_taskgroup_08: likewise, members failing in their clean-up. */
START_TEST(py_taskgroup_08)
{
    run_expect(group_07_main, TOKEN(1), 0);
}
END_TEST

static void *group_09_main(void *arg)
{
    int sleep_first = arg != NULL;
    static const struct nap foo1 = { 1, 0, 42 }, foo2 = { 2, 0, 11 };
    coro_group *g = coro_group_new();
    coro_group_spawn(g, NULL, nap, (void *)&foo1);
    coro_group_spawn(g, NULL, nap, (void *)&foo2);
    if (sleep_first)
        ck_assert_int_eq(await_sleep(0.01), 0);
    /* The body fails: it ends the group early. */
    coro_timeout *now;
    ck_assert_int_eq(coro_timeout_open(0, &now), 0);
    double t0 = coro_now();
    ck_assert_int_eq(await_group(g), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_close(now), ETIMEDOUT);
    ck_assert_double_lt(coro_now() - t0, 0.5);
    ck_assert_int_eq(coro_group_result(g, 0, NULL), ECANCELED);
    ck_assert_int_eq(coro_group_result(g, 1, NULL), ECANCELED);
    ck_assert_int_eq(coro_task_cancelling(coro_self()), 0);
    coro_group_free(g);
    return NULL;
}

/* test_taskgroup_09: the body fails after a sleep: both members are
 * cancelled. */
START_TEST(py_taskgroup_09)
{
    run_expect(group_09_main, TOKEN(1), 0);
    ck_assert_str_eq(trace_get(), "42:125 11:125");
}
END_TEST

/* test_taskgroup_10: the body fails before the members ran. */
START_TEST(py_taskgroup_10)
{
    run_expect(group_09_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "42:125 11:125");
}
END_TEST

/* crash_soon of test_taskgroup_15: fails with EDOM after a short nap. */
static void *crash_soon(void *arg)
{
    (void)arg;
    int err = await_sleep(0.02);
    return coro_fail(err ? err : EDOM);
}

/* runner of test_taskgroup_15: cancelled in its body, it cleans up for a
 * while (shielded), meanwhile the member crashes. */
static void *clean_up_slowly(void *arg)
{
    (void)arg;
    coro_group *g = coro_group_new();
    coro_group_spawn(g, NULL, crash_soon, NULL);
    int err = await_sleep(10);
    ck_assert_int_eq(err, ECANCELED);
    int shield = coro_shield(1);
    await_sleep(0.05);
    coro_shield(shield);
    err = await_group(g);
    ck_assert_int_eq(coro_group_result(g, 0, NULL), EDOM);
    coro_group_free(g);
    return coro_fail(err);
}

static void *group_15_main(void *arg)
{
    (void)arg;
    coro_task *r = coro_spawn(clean_up_slowly, NULL);
    await_sleep(0.005);
    ck_assert_int_eq(coro_task_done(r), 0);
    coro_cancel(r);
    /* asyncio: the ExceptionGroup of the crash; here the caller's own
     * ECANCELED, the crash in coro_group_result (coro.h, await_group). */
    ck_assert_int_eq(await_task(r, NULL), ECANCELED);
    return NULL;
}

/* test_taskgroup_15: a member crashes while the cancelled runner cleans
 * up. */
START_TEST(py_taskgroup_15)
{
    run_expect(group_15_main, NULL, 0);
}
END_TEST

/* runner of test_taskgroup_17 (no member, arg NULL) and _22 (two). */
static void *await_group_of(void *arg)
{
    static const struct nap foo1 = { 1, 0, 42 }, foo2 = { 2, 0, 11 };
    coro_group *g = coro_group_new();
    if (arg) {
        coro_group_spawn(g, NULL, nap, (void *)&foo1);
        coro_group_spawn(g, NULL, nap, (void *)&foo2);
    } else if (await_sleep(10) == ECANCELED) {
        group_num += 10;
    }
    int err = await_group(g);
    coro_group_free(g);
    return coro_fail(err);
}

static void *group_17_main(void *arg)
{
    group_num = 0;
    coro_task *r = coro_spawn(await_group_of, arg);
    await_sleep(0.01);
    ck_assert_int_eq(coro_task_done(r), 0);
    coro_cancel(r);
    ck_assert_int_eq(await_task(r, NULL), ECANCELED);
    ck_assert_int_eq(group_num, arg ? 0 : 10);
    return NULL;
}

/* test_taskgroup_17: the runner of an empty group cancelled in its body
 * ends cancelled. */
START_TEST(py_taskgroup_17)
{
    run_expect(group_17_main, NULL, 0);
}
END_TEST

/* test_taskgroup_22: the runner cancelled while it awaits the group. */
START_TEST(py_taskgroup_22)
{
    run_expect(group_17_main, TOKEN(1), 0);
    ck_assert_str_eq(trace_get(), "42:125 11:125");
}
END_TEST

static int nhydras;

static void *hydra(void *arg)
{
    coro_group *g = arg;
    nhydras++;
    int err = await_sleep(0.001);
    if (err)
        return coro_fail(err);
    coro_group_spawn(g, NULL, hydra, g);
    coro_group_spawn(g, NULL, hydra, g);
    return NULL;
}

static void *hercules(void *arg)
{
    (void)arg;
    while (nhydras < 10) {
        int err = await_sleep(0.0015);
        if (err)
            return coro_fail(err);
    }
    return coro_fail(EDOM);
}

static void *group_25_main(void *arg)
{
    (void)arg;
    nhydras = 0;
    coro_group *g = coro_group_new();
    coro_group_spawn(g, NULL, hydra, g);
    coro_group_spawn(g, NULL, hercules, NULL);
    ck_assert_int_eq(await_group(g), EDOM);
    ck_assert_int_ge(nhydras, 10);
    ck_assert_int_eq(coro_task_cancelling(coro_self()), 0);
    coro_group_free(g);
    return NULL;
}

/* test_taskgroup_25 (and _24): members spawn members until one fails;
 * the failure cancels all the rest, those spawned meanwhile included.
 * test_cancelling_level_preserved: the caller is not left cancelled. */
START_TEST(py_taskgroup_25)
{
    run_expect(group_25_main, NULL, 0);
}
END_TEST

static void *yield_once(void *arg)
{
    (void)arg;
    return coro_fail(await_yield());
}

static void *group_task_name_main(void *arg)
{
    (void)arg;
    coro_group *g = coro_group_new();
    coro_attr attr = { .name = "yolo" };
    coro_task *t = coro_group_spawn(g, &attr, yield_once, NULL);
    ck_assert_str_eq(coro_name(t), "yolo");
    ck_assert_int_eq(await_group(g), 0);
    /* test_taskgroup_finished: no member after the group was awaited */
    errno = 0;
    ck_assert_ptr_null(coro_group_spawn(g, NULL, yield_once, NULL));
    ck_assert_int_eq(errno, EINVAL);
    coro_group_free(g);
    return NULL;
}

/* test_taskgroup_task_name and test_taskgroup_finished (RuntimeError,
 * here EINVAL). */
START_TEST(py_taskgroup_task_name)
{
    run_expect(group_task_name_main, NULL, 0);
}
END_TEST

/* runner of test_taskgroup_11 and _12: a group in a group's body; five
 * inner members fail with EDOM in their clean-up; with arg, the outer
 * group has a member of its own. */
static void *nested_in_body(void *arg)
{
    static const struct nap outer_member = { 10, 0, 9 };
    coro_group *g1 = coro_group_new();
    if (arg)
        coro_group_spawn(g1, NULL, nap, (void *)&outer_member);
    coro_group *g2 = coro_group_new();
    for (int i = 0; i < 5; i++)
        coro_group_spawn(g2, NULL, count_cancel, TOKEN(1));
    int err = await_sleep(10);
    ck_assert_int_eq(err, ECANCELED);
    ck_assert_int_eq(await_group(g2), ECANCELED);
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(coro_group_result(g2, i, NULL), EDOM);
    coro_group_free(g2);
    err = await_group(g1);
    if (arg)
        ck_assert_int_eq(coro_group_result(g1, 0, NULL), ECANCELED);
    coro_group_free(g1);
    return coro_fail(err);
}

static void *group_11_main(void *arg)
{
    /* asyncio: an ExceptionGroup of the inner group's ExceptionGroup of
     * ZeroDivisionErrors; here ECANCELED all the way out, each member's
     * EDOM in coro_group_result (coro.h, await_group). */
    cancel_runner(nested_in_body, arg, 5);
    return NULL;
}

/* test_taskgroup_11: nested groups in a cancelled runner, the inner
 * members failing in their clean-up. */
START_TEST(py_taskgroup_11)
{
    run_expect(group_11_main, NULL, 0);
}
END_TEST

/* test_taskgroup_12: likewise, the outer group with a member of its own,
 * which the cancellation reaches too. */
START_TEST(py_taskgroup_12)
{
    run_expect(group_11_main, TOKEN(1), 0);
    ck_assert_str_eq(trace_get(), "9:125");
}
END_TEST

static void *group_13_main(void *arg)
{
    int inner_first = arg != NULL;
    double s = test_slow();
    struct nap quick = { 0.01 * s, EIO, 1 }, slow = { 0.1 * s, EDOM, 2 };
    coro_group *g1 = coro_group_new();
    coro_group_spawn(g1, NULL, nap, inner_first ? &slow : &quick);
    coro_group *g2 = coro_group_new();
    coro_group_spawn(g2, NULL, nap, inner_first ? &quick : &slow);
    double t0 = coro_now();
    int err2 = await_group(g2);
    int err1 = await_group(g1);
    /* test_taskgroup_13: asyncio's g1, its member failing first, cancels
     * the runner, which cancels g2's member at once. Here a member's
     * failure does not cancel the task that made the group (coro.h, task
     * groups): the runner waits in await_group(g2) until g2's member
     * fails by itself. test_taskgroup_14: g2's member fails first, which
     * fails g2, whose owner then awaits g1, whose member runs its course
     * (asyncio's runner, failing out of g2, cancels g1's member). */
    ck_assert_double_ge(coro_now() - t0, 0.1 * s);
    ck_assert_int_eq(err2, inner_first ? EIO : EDOM);
    ck_assert_int_eq(err1, inner_first ? EDOM : EIO);
    ck_assert_int_eq(coro_task_cancelling(coro_self()), 0);
    coro_group_free(g2);
    coro_group_free(g1);
    return NULL;
}

/* test_taskgroup_13: the outer group's member fails first. */
START_TEST(py_taskgroup_13)
{
    run_expect(group_13_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "1:0 2:0");
}
END_TEST

/* test_taskgroup_14: the inner group's member fails first. */
START_TEST(py_taskgroup_14)
{
    run_expect(group_13_main, TOKEN(1), 0);
    ck_assert_str_eq(trace_get(), "1:0 2:0");
}
END_TEST

static void *group_both_failed_main(void *arg)
{
    (void)arg;
    static const struct nap runtime = { 0, EIO, 1 }, value = { 0, EDOM, 2 };
    coro_group *outer = coro_group_new();
    coro_group *inner = coro_group_new();
    coro_group_spawn(inner, NULL, nap, (void *)&runtime);
    coro_group_spawn(outer, NULL, nap, (void *)&value);
    ck_assert_int_eq(await_group(inner), EIO);
    ck_assert_int_eq(coro_task_cancelling(coro_self()), 0);
    ck_assert_int_eq(await_group(outer), EDOM);
    ck_assert_int_eq(coro_task_cancelling(coro_self()), 0);
    /* test_taskgroup_double_enter: asyncio refuses to enter a group
     * twice; a second await_group returns the same at once (coro.h). */
    ck_assert_int_eq(await_group(outer), EDOM);
    coro_group_free(inner);
    coro_group_free(outer);
    return NULL;
}

/* test_nested_groups_both_cancelled: both groups fail, each with its own
 * member's error, and the caller is never left cancelled. */
START_TEST(py_taskgroup_nested_groups_both_cancelled)
{
    run_expect(group_both_failed_main, NULL, 0);
}
END_TEST

Suite *group_suite(void)
{
    Suite *s = suite_create("group");
    TCase *tc = test_case("group", 10);
    tcase_add_test(tc, group_waits_for_every_member_and_keeps_their_results);
    tcase_add_test(tc, members_may_spawn_members_while_the_group_is_awaited);
    tcase_add_test(tc,
                   a_member_spawned_after_the_last_one_ended_is_waited_for);
    tcase_add_test(tc, the_first_failure_cancels_the_rest_and_is_returned);
    tcase_add_test(tc, a_member_cancelled_from_outside_fails_the_group);
    tcase_add_test(tc, cancelling_the_awaiter_cancels_and_awaits_the_members);
    tcase_add_test(tc, a_task_spawned_into_a_cancelling_group_is_cancelled);
    tcase_add_test(tc, groups_nest);
    tcase_add_test(tc, group_bad_input);
    tcase_add_test(tc, a_member_awaiting_its_own_group_is_edeadlk);
    tcase_add_test(tc, a_group_of_another_loop_is_einval);
    tcase_add_test(tc, dump_shows_group_membership);
    tcase_add_test(tc, a_deadlocked_group_is_reported);
    tcase_add_test(tc, groups_work_on_the_shared_stack);
    suite_add_tcase(s, tc);

    tc = test_case("asyncio taskgroups", 10);
    tcase_add_test(tc, py_taskgroup_07);
    tcase_add_test(tc, py_taskgroup_08);
    tcase_add_test(tc, py_taskgroup_09);
    tcase_add_test(tc, py_taskgroup_10);
    tcase_add_test(tc, py_taskgroup_15);
    tcase_add_test(tc, py_taskgroup_17);
    tcase_add_test(tc, py_taskgroup_22);
    tcase_add_test(tc, py_taskgroup_25);
    tcase_add_test(tc, py_taskgroup_task_name);
    tcase_add_test(tc, py_taskgroup_11);
    tcase_add_test(tc, py_taskgroup_12);
    tcase_add_test(tc, py_taskgroup_13);
    tcase_add_test(tc, py_taskgroup_14);
    tcase_add_test(tc, py_taskgroup_nested_groups_both_cancelled);
    suite_add_tcase(s, tc);
    return s;
}
