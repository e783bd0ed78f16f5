/* local.c: task-local values. Keys, get and set, inheritance at spawn,
 * and destructors: once per value, in the task that lets it go last,
 * before that task counts as ended. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "internal.h"

#define TOKEN(i) ((void *)(uintptr_t)(i))

static coro_key key, key2;

static void make_keys(void (*destructor)(void *))
{
    ck_assert_int_eq(coro_key_new(destructor, &key), 0);
    ck_assert_int_eq(coro_key_new(destructor, &key2), 0);
}

/* Keys outlive loops: every test deletes what it made, so that a run
 * without a fork per test starts each with none. */
static void delete_keys(void)
{
    ck_assert_int_eq(coro_key_delete(key), 0);
    ck_assert_int_eq(coro_key_delete(key2), 0);
}

/* A value whose destruction is traced with its name. */
struct value {
    char name[16];
};

static struct value *value_new(const char *name)
{
    struct value *v = malloc(sizeof *v);
    ck_assert_ptr_nonnull(v);
    snprintf(v->name, sizeof v->name, "%s", name);
    return v;
}

static int destroyed;

/* Traces "~name@task": which value, destroyed in which task (or "-"
 * outside any task). No key reads the value any more. */
static void destroy(void *p)
{
    struct value *v = p;
    ck_assert_ptr_ne(coro_local_get(key), p);
    ck_assert_ptr_ne(coro_local_get(key2), p);
    coro_task *self = coro_self();
    trace("~%s@%s", v->name, self ? coro_name(self) : "-");
    destroyed++;
    free(v);
}

static void *set_to(coro_key k, const char *name)
{
    struct value *v = value_new(name);
    ck_assert_int_eq(coro_local_set(k, v), 0);
    return v;
}

static const char *name_of(coro_key k)
{
    struct value *v = coro_local_get(k);
    return v ? v->name : "none";
}

/* ---------------------------------------------------------------------- */
/* get and set                                                            */
/* ---------------------------------------------------------------------- */

static void *getset_main(void *arg)
{
    (void)arg;
    ck_assert_ptr_null(coro_local_get(key));
    ck_assert_int_eq(coro_local_set(key, TOKEN(42)), 0);
    ck_assert_ptr_eq(coro_local_get(key), TOKEN(42));
    ck_assert_ptr_null(coro_local_get(key2));
    ck_assert_int_eq(coro_local_set(key, TOKEN(43)), 0);
    ck_assert_ptr_eq(coro_local_get(key), TOKEN(43));
    ck_assert_int_eq(coro_local_set(key, NULL), 0);
    ck_assert_ptr_null(coro_local_get(key));
    ck_assert_int_eq(coro_local_set(key2, TOKEN(44)), 0);
    ck_assert_ptr_eq(coro_local_get(key2), TOKEN(44));
    return NULL;
}

/* test_context.py test_context_getset_1: unset reads the default (NULL),
 * a set reads back, NULL clears. */
START_TEST(a_key_reads_null_until_set_then_what_was_set)
{
    make_keys(NULL);
    run_expect(getset_main, NULL, 0);
    delete_keys();
}
END_TEST

static void *own_value(void *arg)
{
    uintptr_t n = (uintptr_t)arg;
    for (uintptr_t i = 0; i < 10; i++) {
        ck_assert_int_eq(coro_local_set(key, TOKEN(n * 100 + i + 1)), 0);
        ck_assert_int_eq(await_sleep((double)(n % 7) / 1000), 0);
        ck_assert_ptr_eq(coro_local_get(key), TOKEN(n * 100 + i + 1));
    }
    return NULL;
}

static void *many_main(void *arg)
{
    (void)arg;
    coro_task *t[100];
    for (uintptr_t i = 0; i < 100; i++)
        t[i] = coro_spawn(own_value, TOKEN(i));
    ck_assert_int_eq(await_gather(t, 100, NULL, NULL), 0);
    ck_assert_ptr_null(coro_local_get(key));
    return NULL;
}

/* test_tasks.py test_context_2 and test_context_3: 100 tasks each set
 * their own value and read it back across their waits. */
START_TEST(each_task_keeps_its_own_value_across_switches)
{
    make_keys(NULL);
    run_expect(many_main, NULL, 0);
    delete_keys();
}
END_TEST

static void *child_reads(void *arg)
{
    (void)arg;
    trace("child %s", name_of(key));
    ck_assert_int_eq(await_yield(), 0);
    trace("child %s", name_of(key)); /* not the spawner's later set */
    set_to(key, "c");
    trace("child %s", name_of(key));
    return NULL;
}

static void *inherit_main(void *arg)
{
    (void)arg;
    set_to(key, "a");
    coro_task *t = coro_spawn(child_reads, NULL);
    ck_assert_int_eq(await_yield(), 0);
    set_to(key, "b");
    ck_assert_int_eq(await_task(t, NULL), 0);
    trace("main %s", name_of(key));
    return NULL;
}

/* test_tasks.py test_context_1: a task starts with its spawner's values;
 * later sets on either side stay on that side. */
START_TEST(a_spawned_task_starts_with_its_spawners_values)
{
    make_keys(destroy);
    run_expect(inherit_main, NULL, 0);
    /* main let go of "a" first; the child held it last. */
    ck_assert_str_eq(trace_get(), "child a child a ~a@child_reads child c "
                                  "~c@child_reads main b ~b@main");
    delete_keys();
}
END_TEST

static void *grandchild(void *arg)
{
    (void)arg;
    trace("grandchild %s %s", name_of(key), name_of(key2));
    return NULL;
}

static void *middle(void *arg)
{
    (void)arg;
    set_to(key2, "m");
    coro_task *t = coro_spawn(grandchild, NULL);
    return TOKEN(await_task(t, NULL));
}

static void *chain_main(void *arg)
{
    (void)arg;
    set_to(key, "a");
    coro_task *t = coro_spawn(middle, NULL);
    void *r;
    ck_assert_int_eq(await_task(t, &r), 0);
    ck_assert_ptr_eq(r, TOKEN(0));
    return NULL;
}

/* test_context.py test_context_copy_1: a copy of a copy holds what each
 * held when it was copied. */
START_TEST(a_grandchild_inherits_through_its_parent)
{
    make_keys(destroy);
    run_expect(chain_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "grandchild a m ~m@middle ~a@main");
    delete_keys();
}
END_TEST

static void *outside_main(void *arg)
{
    (void)arg;
    ck_assert_ptr_null(coro_local_get(key)); /* nothing from coro_run's
                                                caller */
    return NULL;
}

static void *in_a_worker(void *arg)
{
    (void)arg;
    return TOKEN(coro_local_set(key, TOKEN(1)));
}

static void *worker_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_local_set(key, TOKEN(2)), 0);
    void *r;
    ck_assert_int_eq(await_blocking(in_a_worker, NULL, &r), 0);
    ck_assert_ptr_eq(r, TOKEN(EPERM));
    ck_assert_ptr_eq(coro_local_get(key), TOKEN(2));
    return NULL;
}

/* Outside a coroutine there is no task: get reads NULL, set is EPERM, and
 * main does not start with its caller's values (there are none). */
START_TEST(outside_a_coroutine_get_is_null_and_set_is_eperm)
{
    make_keys(NULL);
    ck_assert_int_eq(coro_local_set(key, TOKEN(1)), EPERM);
    ck_assert_ptr_null(coro_local_get(key));
    run_expect(outside_main, NULL, 0);
    run_expect(worker_main, NULL, 0);
    delete_keys();
}
END_TEST

/* On the other threads: no ck_assert (in Check's no-fork mode, valgrind's,
 * a failure there would jump into the test's thread). The thread returns
 * coro_run's error, else the line of main's first failed check, else 0,
 * for the test to assert after the join. */
static void *thread_loop_main(void *arg)
{
    if (coro_local_get(key) != NULL)
        return TOKEN(__LINE__);
    if (coro_local_set(key, arg) != 0)
        return TOKEN(__LINE__);
    if (await_sleep(0.01) != 0)
        return TOKEN(__LINE__);
    if (coro_local_get(key) != arg)
        return TOKEN(__LINE__);
    return TOKEN(0);
}

static void *thread_loop(void *arg)
{
    void *failed_at = TOKEN(0);
    int err = coro_run(thread_loop_main, arg, &failed_at);
    return err ? TOKEN(err) : failed_at;
}

/* Keys are process-wide: one key, made before any loop, serves loops on
 * two threads at once, each task with its own value. */
START_TEST(one_key_serves_loops_on_several_threads)
{
    make_keys(NULL);
    pthread_t th[2];
    for (uintptr_t i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, thread_loop,
                                        TOKEN(i + 1)), 0);
    for (int i = 0; i < 2; i++) {
        void *ret;
        ck_assert_int_eq(test_join(th[i], &ret, 10), 0);
        ck_assert_ptr_eq(ret, TOKEN(0));
    }
    delete_keys();
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Keys                                                                   */
/* ---------------------------------------------------------------------- */

START_TEST(key_new_runs_out_at_keys_max)
{
    static coro_key keys[CORO_KEYS_MAX];
    ck_assert_int_eq(coro_key_new(NULL, NULL), EINVAL);
    for (int i = 0; i < CORO_KEYS_MAX; i++) {
        ck_assert_int_eq(coro_key_new(NULL, &keys[i]), 0);
        ck_assert_uint_ne(keys[i], 0);
    }
    coro_key more = 0;
    ck_assert_int_eq(coro_key_new(NULL, &more), EAGAIN);
    ck_assert_uint_eq(more, 0);
    ck_assert_int_eq(coro_key_delete(keys[7]), 0);
    ck_assert_int_eq(coro_key_new(NULL, &more), 0);
    ck_assert_uint_ne(more, keys[7]); /* its slot, a new key */
    keys[7] = more;
    for (int i = 0; i < CORO_KEYS_MAX; i++)
        ck_assert_int_eq(coro_key_delete(keys[i]), 0);
}
END_TEST

static void *deleted_main(void *arg)
{
    (void)arg;
    struct value *a = set_to(key, "a");
    ck_assert_int_eq(coro_key_delete(key), 0);
    free(a); /* coro will not: its key is gone */
    ck_assert_ptr_null(coro_local_get(key));
    ck_assert_int_eq(coro_local_set(key, TOKEN(1)), EINVAL);
    ck_assert_int_eq(coro_key_delete(key), EINVAL);
    coro_key again;
    ck_assert_int_eq(coro_key_new(NULL, &again), 0);
    ck_assert_ptr_null(coro_local_get(again)); /* not the old value */
    ck_assert_int_eq(coro_local_set(again, TOKEN(1)), 0);
    ck_assert_int_eq(coro_local_set(again, NULL), 0);
    ck_assert_int_eq(coro_key_delete(again), 0);
    return NULL;
}

/* pthread_key_delete's rule: a deleted key reads NULL, refuses sets, and
 * runs no destructor for the values it had; a key made in its slot sees
 * none of them. */
START_TEST(a_deleted_key_reads_null_and_destroys_nothing)
{
    ck_assert_int_eq(coro_key_new(destroy, &key), 0);
    destroyed = 0;
    run_expect(deleted_main, NULL, 0);
    ck_assert_int_eq(destroyed, 0);
    ck_assert_str_eq(trace_get(), "");
}
END_TEST

static void *made_up_main(void *arg)
{
    (void)arg;
    ck_assert_ptr_null(coro_local_get(0));
    ck_assert_int_eq(coro_local_set(0, TOKEN(1)), EINVAL);
    ck_assert_ptr_null(coro_local_get(5));
    ck_assert_int_eq(coro_local_set(5, TOKEN(1)), EINVAL);
    ck_assert_int_eq(coro_local_set(key + CORO_KEYS_MAX, TOKEN(1)), EINVAL);
    return NULL;
}

START_TEST(zero_and_made_up_keys_are_refused)
{
    make_keys(NULL);
    ck_assert_int_eq(coro_key_delete(0), EINVAL);
    ck_assert_int_eq(coro_key_delete(1), EINVAL);
    ck_assert_int_eq(coro_key_delete(key + CORO_KEYS_MAX), EINVAL);
    run_expect(made_up_main, NULL, 0);
    delete_keys();
}
END_TEST

/* Numbers no coro_key_new gave: every bit pattern reads NULL, sets and
 * deletes nothing, and leaves the live key alone; a key's own slot under
 * another generation too. */
static void *bit_patterns_main(void *arg)
{
    const coro_key *bad = arg;
    ck_assert_int_eq(coro_local_set(key, TOKEN(7)), 0);
    for (size_t i = 0; bad[i] != 1; i++) {
        ck_assert_ptr_null(coro_local_get(bad[i]));
        ck_assert_int_eq(coro_local_set(bad[i], TOKEN(1)), EINVAL);
    }
    ck_assert_ptr_eq(coro_local_get(key), TOKEN(7));
    return NULL;
}

START_TEST(keys_of_any_bit_pattern_are_refused)
{
    make_keys(NULL);
    const coro_key bad[] = { 0, 2, CORO_KEYS_MAX - 1, ~0ull, ~0ull - 1,
                             1ull << 63, (1ull << 32) | 1, 0xffffffffull,
                             key + CORO_KEYS_MAX, key - CORO_KEYS_MAX,
                             key + 1000 * CORO_KEYS_MAX, key ^ (1ull << 63),
                             1 /* the end */ };
    ck_assert_int_eq(coro_key_new(NULL, NULL), EINVAL);
    for (size_t i = 0; bad[i] != 1; i++)
        ck_assert_int_eq(coro_key_delete(bad[i]), EINVAL);
    run_expect(bit_patterns_main, (void *)bad, 0);
    delete_keys();
    /* Deleted, a key is one of them. */
    ck_assert_int_eq(coro_key_delete(key), EINVAL);
    ck_assert_ptr_null(coro_local_get(key));
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Destructors                                                            */
/* ---------------------------------------------------------------------- */

static void *sets_and_returns(void *arg)
{
    (void)arg;
    set_to(key, "v");
    trace("return");
    return NULL;
}

static void end_hook(const coro_task_event *ev, void *arg)
{
    (void)arg;
    if (ev->kind == CORO_TASK_END && strcmp(ev->name, "main") != 0)
        trace("end %s", ev->name);
}

static void *end_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(sets_and_returns, NULL);
    ck_assert_int_eq(await_task(t, NULL), 0);
    trace("joined");
    return NULL;
}

/* The destructor runs in the ending task, after its function returned
 * and before anyone sees it ended: the END event, its joiner. */
START_TEST(a_destructor_runs_once_before_the_task_counts_as_ended)
{
    make_keys(destroy);
    destroyed = 0;
    coro_set_task_hook(end_hook, NULL);
    run_expect(end_main, NULL, 0);
    coro_set_task_hook(NULL, NULL);
    ck_assert_str_eq(trace_get(), "return ~v@sets_and_returns "
                                  "end sets_and_returns joined");
    ck_assert_int_eq(destroyed, 1);
    delete_keys();
}
END_TEST

static void *replace_main(void *arg)
{
    (void)arg;
    set_to(key, "a");
    trace("set");
    set_to(key, "b");
    trace("replaced");
    ck_assert_int_eq(coro_local_set(key, coro_local_get(key)), 0);
    trace("same");
    ck_assert_int_eq(coro_local_set(key, NULL), 0);
    trace("cleared");
    set_to(key, "c");
    return NULL;
}

/* A value replaced, or cleared, is let go at once; setting the value
 * held already changes nothing. */
START_TEST(a_replaced_value_is_destroyed_at_once)
{
    make_keys(destroy);
    destroyed = 0;
    run_expect(replace_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "set ~a@main replaced same ~b@main cleared "
                                  "~c@main");
    ck_assert_int_eq(destroyed, 3);
    delete_keys();
}
END_TEST

static void *outlives(void *arg)
{
    (void)arg;
    ck_assert_int_eq(await_sleep(0.05), 0);
    trace("child reads %s", name_of(key));
    return NULL;
}

static void *ends_first(void *arg)
{
    coro_task **child = arg;
    set_to(key, "p");
    *child = coro_spawn(outlives, NULL);
    return NULL;
}

static void *order_main(void *arg)
{
    (void)arg;
    coro_task *child = NULL;
    coro_task *p = coro_spawn(ends_first, &child);
    ck_assert_int_eq(await_task(p, NULL), 0);
    trace("parent joined");
    ck_assert_int_eq(await_task(child, NULL), 0);
    return NULL;
}

/* The spawner ends first: the value it set lives on in the child that
 * inherited it, and is destroyed once, at the child's end. */
START_TEST(an_inherited_value_is_destroyed_by_the_last_task_holding_it)
{
    make_keys(destroy);
    destroyed = 0;
    run_expect(order_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "parent joined child reads p ~p@outlives");
    ck_assert_int_eq(destroyed, 1);
    delete_keys();
}
END_TEST

static void *replaces_inherited(void *arg)
{
    (void)arg;
    set_to(key, "own");
    trace("child set");
    return NULL;
}

static void *keeps_main(void *arg)
{
    (void)arg;
    set_to(key, "p");
    coro_task *t = coro_spawn(replaces_inherited, NULL);
    ck_assert_int_eq(await_task(t, NULL), 0);
    trace("main %s", name_of(key));
    return NULL;
}

/* A child replacing an inherited value only lets go of its hold: the
 * spawner still holds it. */
START_TEST(replacing_an_inherited_value_leaves_the_spawners)
{
    make_keys(destroy);
    destroyed = 0;
    run_expect(keeps_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "child set ~own@replaces_inherited main p "
                                  "~p@main");
    ck_assert_int_eq(destroyed, 2);
    delete_keys();
}
END_TEST

static void *sets_and_sleeps(void *arg)
{
    set_to(key, arg);
    int err = await_sleep(INFINITY);
    trace("woke %s", err == ECANCELED ? "ECANCELED" : "?");
    return NULL;
}

static void *cancel_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(sets_and_sleeps, "x");
    ck_assert_int_eq(await_yield(), 0);
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    trace("joined");
    return NULL;
}

START_TEST(a_cancelled_tasks_values_are_destroyed_as_it_ends)
{
    make_keys(destroy);
    destroyed = 0;
    run_expect(cancel_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "woke ECANCELED ~x@sets_and_sleeps "
                                  "joined");
    ck_assert_int_eq(destroyed, 1);
    delete_keys();
}
END_TEST

static void *leaves_main(void *arg)
{
    (void)arg;
    coro_spawn(sets_and_sleeps, "l1");
    coro_spawn(sets_and_sleeps, "l2");
    ck_assert_int_eq(await_yield(), 0);
    trace("main returns");
    return NULL;
}

/* Tasks left running when main returns are cancelled by coro_run and end:
 * their values are destroyed before coro_run returns. */
START_TEST(values_of_tasks_left_when_main_returns_are_destroyed)
{
    make_keys(destroy);
    destroyed = 0;
    run_expect(leaves_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "main returns "
                                  "woke ECANCELED ~l1@sets_and_sleeps "
                                  "woke ECANCELED ~l2@sets_and_sleeps");
    ck_assert_int_eq(destroyed, 2);
    delete_keys();
}
END_TEST

static void *shielded_forever(void *arg)
{
    (void)arg;
    set_to(key, "s");
    coro_shield(1);
    await_sleep(INFINITY);
    trace("never");
    return NULL;
}

static void *abandon_main(void *arg)
{
    (void)arg;
    set_to(key2, "m");
    coro_spawn(shielded_forever, NULL);
    await_sleep(INFINITY);
    return NULL;
}

/* A deadlock in shielded clean-up: coro_run frees the task without letting
 * it end, and destroys its values as it does, outside any task. main ends
 * (cancelled) first, but the abandoned task inherited main's value and
 * holds it last. */
START_TEST(values_of_an_abandoned_task_are_destroyed_as_it_is_freed)
{
    make_keys(destroy);
    destroyed = 0;
    char *report = run_reporting(abandon_main, NULL, EDEADLK);
    free(report);
    ck_assert_str_eq(trace_get(), "~s@- ~m@-");
    ck_assert_int_eq(destroyed, 2);
    delete_keys();
}
END_TEST

static void destroy_and_set_other(void *p)
{
    trace("~%s", (const char *)p);
    ck_assert_int_eq(coro_local_set(key2, "second"), 0);
}

static void trace_destroy(void *p)
{
    trace("~%s", (const char *)p);
}

static void *sets_key(void *arg)
{
    ck_assert_int_eq(coro_local_set(key, arg), 0);
    return NULL;
}

/* A value set by a destructor is destroyed in turn. */
START_TEST(a_value_set_by_a_destructor_is_destroyed_in_turn)
{
    ck_assert_int_eq(coro_key_new(destroy_and_set_other, &key), 0);
    ck_assert_int_eq(coro_key_new(trace_destroy, &key2), 0);
    run_expect(sets_key, "first", 0);
    ck_assert_str_eq(trace_get(), "~first ~second");
    delete_keys();
}
END_TEST

static int rounds;

static void destroy_and_set_again(void *p)
{
    rounds++;
    ck_assert_int_eq(coro_local_set(key, p), 0);
}

/* A destructor that sets its value again forever is cut off after four
 * rounds, as pthread's are; the last value is let go, not leaked. */
START_TEST(destructors_that_set_values_forever_stop_after_four_rounds)
{
    ck_assert_int_eq(coro_key_new(destroy_and_set_again, &key), 0);
    ck_assert_int_eq(coro_key_new(NULL, &key2), 0);
    rounds = 0;
    run_expect(sets_key, "again", 0);
    ck_assert_int_eq(rounds, 4);
    delete_keys();
}
END_TEST

static void *reads_what_is_left(void *arg)
{
    (void)arg;
    trace("spawned %s %s", name_of(key), name_of(key2));
    return NULL;
}

/* Destroys its value, then spawns a task: that task starts with the values
 * its spawner, the ending task, still holds. */
static void destroy_and_spawn(void *p)
{
    destroy(p);
    coro_task *t = coro_spawn(reads_what_is_left, NULL);
    ck_assert_ptr_nonnull(t);
    coro_detach(t);
}

static void *holds_two(void *arg)
{
    (void)arg;
    set_to(key, "a");
    set_to(key2, "b");
    return NULL;
}

static void *spawn_in_destructor_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(holds_two, NULL);
    ck_assert_int_eq(await_task(t, NULL), 0);
    trace("joined");
    ck_assert_int_eq(await_sleep(0.001), 0);
    return NULL;
}

/* A destructor that spawns hands the values not yet destroyed on to the
 * new task, which destroys them as it ends, once. */
START_TEST(a_task_spawned_by_a_destructor_takes_the_rest_on)
{
    ck_assert_int_eq(coro_key_new(destroy_and_spawn, &key), 0);
    ck_assert_int_eq(coro_key_new(destroy, &key2), 0);
    destroyed = 0;
    run_expect(spawn_in_destructor_main, NULL, 0);
    /* The new task was queued before the joiner was woken. */
    ck_assert_str_eq(trace_get(), "~a@holds_two spawned none b "
                                  "~b@reads_what_is_left joined");
    ck_assert_int_eq(destroyed, 2);
    delete_keys();
}
END_TEST

static void *shared_child(void *arg)
{
    (void)arg;
    char frame[2048];
    frame_fill(frame, 1, sizeof frame);
    trace("child %s", name_of(key));
    ck_assert_int_eq(await_yield(), 0);
    set_to(key, "c");
    ck_assert_int_eq(await_yield(), 0);
    trace("child %s", name_of(key));
    return NULL;
}

static void *shared_main(void *arg)
{
    (void)arg;
    coro_attr attr = { .flags = CORO_SHARED_STACK };
    set_to(key, "a");
    coro_task *t[2] = { coro_spawn_attr(&attr, shared_child, NULL),
                        coro_spawn_attr(&attr, shared_child, NULL) };
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), 0);
    return NULL;
}

/* Shared-stack tasks, whose frames are copied away while they wait,
 * inherit, set and destroy values as any other. */
START_TEST(shared_stack_tasks_inherit_and_destroy_values)
{
    make_keys(destroy);
    destroyed = 0;
    run_expect(shared_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "child a child a child c ~c@shared_child "
                                  "child c ~c@shared_child ~a@main");
    ck_assert_int_eq(destroyed, 3);
    delete_keys();
}
END_TEST

static void *nothing(void *arg)
{
    return arg;
}

static void *reads_only(void *arg)
{
    (void)arg;
    ck_assert_str_eq(name_of(key), "a");
    ck_assert_int_eq(await_yield(), 0);
    return NULL;
}

static long blocks(void)
{
    return atomic_load(&coro__alloc_stats.blocks);
}

static void *memory_main(void *arg)
{
    (void)arg;
    coro_task *t[3];
    for (int i = 0; i < 3; i++) /* warm the stack pool and the timer heap */
        t[i] = coro_spawn(nothing, NULL);
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), 0);
    long base = blocks();
    for (int i = 0; i < 3; i++)
        t[i] = coro_spawn(nothing, NULL);
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), 0);
    ck_assert_int_eq(blocks(), base);
    set_to(key, "a");
    ck_assert_int_eq(blocks(), base + 2); /* the block and the box */
    for (int i = 0; i < 3; i++)
        t[i] = coro_spawn(reads_only, NULL);
    ck_assert_int_eq(await_yield(), 0);
    ck_assert_int_eq(blocks(), base + 2); /* inherited: shared */
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), 0);
    ck_assert_int_eq(coro_local_set(key, NULL), 0);
    ck_assert_int_eq(blocks(), base + 1); /* the block stays till the end */
    return NULL;
}

/* A task that never sets a value costs nothing, nor does one that only
 * inherits; the fixture checks everything is freed at the end. */
START_TEST(values_cost_nothing_until_set_and_are_shared_when_inherited)
{
    make_keys(destroy);
    run_expect(memory_main, NULL, 0);
    delete_keys();
}
END_TEST

static void *starved_child(void *arg)
{
    (void)arg;
    atomic_store(&coro__alloc_stats.fail_every, 1);
    int box = coro_local_set(key, "b");   /* the box */
    int copy = coro_local_set(key, NULL); /* the copy of the shared block */
    atomic_store(&coro__alloc_stats.fail_every, 0);
    ck_assert_int_eq(box, ENOMEM);
    ck_assert_int_eq(copy, ENOMEM);
    ck_assert_str_eq(coro_local_get(key), "a");
    return NULL;
}

static void *starved_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_local_set(key, "a"), 0);
    coro_task *t = coro_spawn(starved_child, NULL);
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_str_eq(coro_local_get(key), "a");
    return NULL;
}

/* Out of memory, a set is ENOMEM and changes nothing, in this task or
 * the one it shares its values with. */
START_TEST(a_set_without_memory_is_enomem_and_changes_nothing)
{
    ck_assert_int_eq(coro_key_new(trace_destroy, &key), 0);
    ck_assert_int_eq(coro_key_new(NULL, &key2), 0);
    run_expect(starved_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "~a");
    delete_keys();
}
END_TEST

Suite *local_suite(void)
{
    Suite *s = suite_create("local");
    TCase *tc = test_case("values", 10);
    tcase_add_test(tc, a_key_reads_null_until_set_then_what_was_set);
    tcase_add_test(tc, each_task_keeps_its_own_value_across_switches);
    tcase_add_test(tc, a_spawned_task_starts_with_its_spawners_values);
    tcase_add_test(tc, a_grandchild_inherits_through_its_parent);
    tcase_add_test(tc, outside_a_coroutine_get_is_null_and_set_is_eperm);
    tcase_add_test(tc, one_key_serves_loops_on_several_threads);
    suite_add_tcase(s, tc);

    tc = test_case("keys", 10);
    tcase_add_test(tc, key_new_runs_out_at_keys_max);
    tcase_add_test(tc, a_deleted_key_reads_null_and_destroys_nothing);
    tcase_add_test(tc, zero_and_made_up_keys_are_refused);
    tcase_add_test(tc, keys_of_any_bit_pattern_are_refused);
    suite_add_tcase(s, tc);

    tc = test_case("destructors", 10);
    tcase_add_test(tc, a_destructor_runs_once_before_the_task_counts_as_ended);
    tcase_add_test(tc, a_replaced_value_is_destroyed_at_once);
    tcase_add_test(tc,
                   an_inherited_value_is_destroyed_by_the_last_task_holding_it);
    tcase_add_test(tc, replacing_an_inherited_value_leaves_the_spawners);
    tcase_add_test(tc, a_cancelled_tasks_values_are_destroyed_as_it_ends);
    tcase_add_test(tc, values_of_tasks_left_when_main_returns_are_destroyed);
    tcase_add_test(tc,
                   values_of_an_abandoned_task_are_destroyed_as_it_is_freed);
    tcase_add_test(tc, a_value_set_by_a_destructor_is_destroyed_in_turn);
    tcase_add_test(tc,
                   destructors_that_set_values_forever_stop_after_four_rounds);
    tcase_add_test(tc, a_task_spawned_by_a_destructor_takes_the_rest_on);
    tcase_add_test(tc, shared_stack_tasks_inherit_and_destroy_values);
    suite_add_tcase(s, tc);

    tc = test_case("memory", 10);
    tcase_add_test(tc,
                   values_cost_nothing_until_set_and_are_shared_when_inherited);
    tcase_add_test(tc, a_set_without_memory_is_enomem_and_changes_nothing);
    suite_add_tcase(s, tc);
    return s;
}
