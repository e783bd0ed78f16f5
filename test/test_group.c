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
    ck_assert_int_eq(await_group(g), 0);
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
    return s;
}
