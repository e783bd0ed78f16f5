/* inspect.c: a task's state without joining it (done, cancelled,
 * cancelling, result, set_name), the list of tasks, and coro_task_info,
 * which coro_dump is written from. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

#define TOKEN(i) ((void *)(uintptr_t)(i))

static void *returns_arg(void *arg)
{
    return arg;
}

static void *fails_eio(void *arg)
{
    (void)arg;
    return coro_fail(EIO);
}

static void *sleeps_long(void *arg)
{
    (void)arg;
    int err = await_sleep(30);
    return err ? coro_fail(err) : NULL;
}

/* Lets every ready task run until it parks or ends. */
static void settle(void)
{
    ck_assert_int_eq(await_sleep(0.001), 0);
}

/* ---------------------------------------------------------------------- */
/* done, cancelled, cancelling, result                                    */
/* ---------------------------------------------------------------------- */

static void *done_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(returns_arg, TOKEN(42));
    void *result = TOKEN(1);
    int error = -1;
    ck_assert_int_eq(coro_task_done(t), 0);
    ck_assert_int_eq(coro_task_result(t, &result, &error), EAGAIN);
    ck_assert_ptr_eq(result, TOKEN(1)); /* nothing stored */
    ck_assert_int_eq(error, -1);
    settle();
    ck_assert_int_eq(coro_task_done(t), 1);
    ck_assert_int_eq(coro_task_cancelled(t), 0);
    ck_assert_int_eq(coro_task_result(t, &result, &error), 0);
    ck_assert_ptr_eq(result, TOKEN(42));
    ck_assert_int_eq(error, 0);
    ck_assert_int_eq(coro_task_result(t, NULL, NULL), 0);
    /* Peeking freed nothing: the join still gets the same. */
    result = NULL;
    ck_assert_int_eq(await_task(t, &result), 0);
    ck_assert_ptr_eq(result, TOKEN(42));
    return NULL;
}

/* test_tasks.py test_task_class and test_futures.py test_result: not done
 * and no result (InvalidStateError) until it ends, then done with it. */
START_TEST(done_and_result_follow_a_task_to_its_end)
{
    run_expect(done_main, NULL, 0);
}
END_TEST

static void *self_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_task_done(coro_self()), 0);
    ck_assert_int_eq(coro_task_result(coro_self(), NULL, NULL), EAGAIN);
    return NULL;
}

START_TEST(the_running_task_is_not_done)
{
    run_expect(self_main, NULL, 0);
}
END_TEST

static void *failed_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(fails_eio, NULL);
    settle();
    void *result = TOKEN(1);
    int error = 0;
    ck_assert_int_eq(coro_task_done(t), 1);
    ck_assert_int_eq(coro_task_cancelled(t), 0);
    ck_assert_int_eq(coro_task_result(t, &result, &error), 0);
    ck_assert_ptr_null(result);
    ck_assert_int_eq(error, EIO);
    ck_assert_int_eq(await_task(t, NULL), EIO);
    return NULL;
}

/* test_futures.py test_exception and test_tasks.py
 * test_exception_traceback: a failed task's error is there to read before
 * anyone awaits it. */
START_TEST(a_failed_task_tells_its_error_before_the_join)
{
    run_expect(failed_main, NULL, 0);
}
END_TEST

static void *cancelled_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(sleeps_long, NULL);
    settle();
    ck_assert_int_eq(coro_task_cancelling(t), 0);
    ck_assert_int_eq(coro_cancel(t), 0);
    /* Asked, not yet seen: the task has not run since. */
    ck_assert_int_eq(coro_task_cancelling(t), 1);
    ck_assert_int_eq(coro_task_cancelled(t), 0);
    ck_assert_int_eq(coro_task_done(t), 0);
    settle();
    ck_assert_int_eq(coro_task_done(t), 1);
    ck_assert_int_eq(coro_task_cancelled(t), 1);
    ck_assert_int_eq(coro_task_cancelling(t), 1);
    int error = 0;
    ck_assert_int_eq(coro_task_result(t, NULL, &error), 0);
    ck_assert_int_eq(error, ECANCELED);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    return NULL;
}

/* test_tasks.py test_cancelling and test_cancel: cancelling() as soon as
 * cancel() is called, cancelled() once the task has ended of it. */
START_TEST(cancelled_is_set_once_a_cancelled_task_ends)
{
    run_expect(cancelled_main, NULL, 0);
}
END_TEST

/* EIO once cancelled, EPROTO otherwise: no ck_assert, for it runs on
 * another thread's loop too. */
static void *cancelled_then_fails(void *arg)
{
    (void)arg;
    int err = await_sleep(30);
    return coro_fail(err == ECANCELED ? EIO : EPROTO);
}

static void *own_error_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(cancelled_then_fails, NULL);
    settle();
    coro_cancel(t);
    settle();
    ck_assert_int_eq(coro_task_done(t), 1);
    ck_assert_int_eq(coro_task_cancelling(t), 1);
    ck_assert_int_eq(coro_task_cancelled(t), 0);
    ck_assert_int_eq(await_task(t, NULL), EIO);
    return NULL;
}

/* test_tasks.py test_cancel_task_catching: a task that handles its
 * cancellation and ends otherwise is not cancelled(). */
START_TEST(a_cancelled_task_that_fails_otherwise_is_not_cancelled)
{
    run_expect(own_error_main, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Names                                                                  */
/* ---------------------------------------------------------------------- */

static void *worker(void *arg)
{
    (void)arg;
    return NULL;
}

static void *names_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(worker, NULL);
    ck_assert_str_eq(coro_name(t), "worker");
    ck_assert_int_eq(coro_task_set_name(t, "renamed"), 0);
    ck_assert_str_eq(coro_name(t), "renamed");
    ck_assert_int_eq(coro_task_set_name(t, NULL), 0);
    ck_assert_str_eq(coro_name(t), "worker");
    ck_assert_int_eq(coro_task_set_name(t, "again"), 0);
    ck_assert_int_eq(coro_task_set_name(t, ""), 0);
    ck_assert_str_eq(coro_name(t), "worker");

    coro_attr attr = { .name = "given" };
    coro_task *u = coro_spawn_attr(&attr, worker, NULL);
    ck_assert_int_eq(coro_task_set_name(u, "other"), 0);
    ck_assert_str_eq(coro_name(u), "other");
    ck_assert_int_eq(coro_task_set_name(u, NULL), 0);
    ck_assert_str_eq(coro_name(u), "worker");

    ck_assert_int_eq(coro_task_set_name(coro_self(), "boss"), 0);
    ck_assert_str_eq(coro_name(coro_self()), "boss");
    ck_assert_int_eq(coro_task_set_name(coro_self(), NULL), 0);
    ck_assert_str_eq(coro_name(coro_self()), "main");
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_int_eq(await_task(u, NULL), 0);
    return NULL;
}

/* test_tasks.py test_task_set_name_pylong and test_bare_create_named_task:
 * set_name replaces the name; NULL or "" gives the default back. */
START_TEST(set_name_renames_and_null_gives_the_default_back)
{
    run_expect(names_main, NULL, 0);
}
END_TEST

/* A name is kept in a block beside the task, made when it is first named
 * (so that ten million unnamed tasks do not pay for 32 bytes each): where
 * that memory cannot be had, naming says ENOMEM and changes nothing, and
 * a spawn with a name fails as a spawn without memory does. */
static void *name_without_memory_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(worker, NULL);
    coro_attr shared = { .flags = CORO_SHARED_STACK };
    coro_task *s = coro_spawn_attr(&shared, worker, NULL);
    ck_assert_ptr_nonnull(s);
    atomic_store(&coro__alloc_stats.fail_every, 1);
    ck_assert_int_eq(coro_task_set_name(t, "renamed"), ENOMEM);
    ck_assert_int_eq(coro_task_set_name(s, "renamed"), ENOMEM);
    ck_assert_int_eq(coro_task_set_name(t, NULL), 0); /* nothing to do */
    coro_attr named = { .name = "named" };
    errno = 0;
    ck_assert_ptr_null(coro_spawn_attr(&named, worker, NULL));
    ck_assert_int_eq(errno, ENOMEM);
    atomic_store(&coro__alloc_stats.fail_every, 0);
    ck_assert_str_eq(coro_name(t), "worker");
    ck_assert_str_eq(coro_name(s), "worker");
    ck_assert_int_eq(coro_task_set_name(s, "renamed"), 0);
    ck_assert_str_eq(coro_name(s), "renamed");
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_int_eq(await_task(s, NULL), 0);
    return NULL;
}

START_TEST(naming_without_memory_is_enomem_and_keeps_the_name)
{
    run_expect(name_without_memory_main, NULL, 0);
}
END_TEST

static void *long_name_main(void *arg)
{
    (void)arg;
    const char *name = "0123456789012345678901234567890123456789";
    coro_attr attr = { .name = name };
    coro_task *given = coro_spawn_attr(&attr, worker, NULL);
    coro_task *t = coro_spawn(worker, NULL);
    ck_assert_int_eq(coro_task_set_name(t, name), 0);
    ck_assert_uint_eq(strlen(coro_name(t)), 31);
    ck_assert_str_eq(coro_name(t), coro_name(given));
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_int_eq(await_task(given, NULL), 0);
    return NULL;
}

START_TEST(set_name_keeps_31_bytes_as_attr_name_does)
{
    run_expect(long_name_main, NULL, 0);
}
END_TEST

static void *own_name_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(worker, NULL);
    ck_assert_int_eq(coro_task_set_name(t, "0123456789abcdef0123456789"), 0);
    ck_assert_int_eq(coro_task_set_name(t, coro_name(t)), 0);
    ck_assert_str_eq(coro_name(t), "0123456789abcdef0123456789");
    ck_assert_int_eq(coro_task_set_name(t, coro_name(t) + 10), 0);
    ck_assert_str_eq(coro_name(t), "abcdef0123456789");
    ck_assert_int_eq(coro_task_set_name(t, coro_name(t) + 6), 0);
    ck_assert_str_eq(coro_name(t), "0123456789");
    ck_assert_int_eq(coro_task_set_name(t, coro_name(t) + 10), 0); /* "" */
    ck_assert_str_eq(coro_name(t), "worker");
    ck_assert_int_eq(await_task(t, NULL), 0);
    return NULL;
}

/* A task renamed after (a tail of) its own name: the copy overlapped what
 * it copied (memcpy-param-overlap under AddressSanitizer). */
START_TEST(set_name_takes_the_tasks_own_name)
{
    run_expect(own_name_main, NULL, 0);
}
END_TEST

static void *ended_rename_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(worker, NULL);
    settle();
    ck_assert_int_eq(coro_task_done(t), 1);
    ck_assert_int_eq(coro_task_set_name(t, "late"), 0);
    ck_assert_str_eq(coro_name(t), "late");
    ck_assert_int_eq(await_task(t, NULL), 0);
    return NULL;
}

/* test_tasks.py test_task_set_name_pylong renames a task before running it
 * to the end; asyncio allows it after, too. */
START_TEST(set_name_renames_an_ended_task)
{
    run_expect(ended_rename_main, NULL, 0);
}
END_TEST

static void *renamed_dump_main(void *arg)
{
    char **out = arg;
    coro_task *t = coro_spawn(sleeps_long, NULL);
    ck_assert_int_eq(coro_task_set_name(t, "fetcher"), 0);
    settle();
    size_t len;
    FILE *f = open_memstream(out, &len);
    ck_assert_ptr_nonnull(f);
    coro_dump(f);
    fclose(f);
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    return NULL;
}

START_TEST(a_renamed_task_is_dumped_under_its_new_name)
{
    char *dump = NULL;
    run_expect(renamed_dump_main, &dump, 0);
    expect_report_line(dump, "#2 ", " fetcher ", "sleeping", NULL);
    ck_assert_ptr_null(strstr(dump, "sleeps_long"));
    free(dump);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* The list of tasks                                                      */
/* ---------------------------------------------------------------------- */

static void *list_main(void *arg)
{
    (void)arg;
    coro_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = coro_spawn(sleeps_long, NULL);
    settle();
    ck_assert_uint_eq(coro_tasks(NULL, 0), 4);
    coro_task *all[8];
    ck_assert_uint_eq(coro_tasks(all, 8), 4);
    ck_assert_ptr_eq(all[0], coro_self());
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_eq(all[i + 1], t[i]);
    for (int i = 0; i < 3; i++)
        coro_cancel(t[i]);
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), ECANCELED);
    ck_assert_uint_eq(coro_tasks(all, 8), 1);
    ck_assert_ptr_eq(all[0], coro_self());
    return NULL;
}

/* test_tasks.py test__register_task_1: all_tasks() lists the loop's
 * tasks; here main and its children, in the order they were spawned. */
START_TEST(tasks_lists_every_task_in_spawn_order)
{
    run_expect(list_main, NULL, 0);
}
END_TEST

static void *ended_listed_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(worker, NULL);
    settle();
    coro_task *all[4];
    ck_assert_uint_eq(coro_tasks(all, 4), 2);
    ck_assert_ptr_eq(all[1], t);
    ck_assert_int_eq(coro_task_done(all[1]), 1);
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_uint_eq(coro_tasks(all, 4), 1);
    return NULL;
}

/* Unlike asyncio.all_tasks, an ended task is listed until it is joined. */
START_TEST(tasks_lists_an_ended_task_until_it_is_joined)
{
    run_expect(ended_listed_main, NULL, 0);
}
END_TEST

static void *cap_main(void *arg)
{
    (void)arg;
    coro_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = coro_spawn(worker, NULL);
    coro_task *all[4] = { NULL, NULL, TOKEN(7), TOKEN(7) };
    ck_assert_uint_eq(coro_tasks(all, 2), 4);
    ck_assert_ptr_eq(all[0], coro_self());
    ck_assert_ptr_eq(all[1], t[0]);
    ck_assert_ptr_eq(all[2], TOKEN(7));
    ck_assert_ptr_eq(all[3], TOKEN(7));
    ck_assert_uint_eq(coro_tasks(NULL, 4), 4); /* NULL: only counts */
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), 0);
    return NULL;
}

START_TEST(tasks_fills_at_most_cap_and_counts_them_all)
{
    run_expect(cap_main, NULL, 0);
}
END_TEST

START_TEST(tasks_outside_a_loop_is_zero)
{
    coro_task *all[1] = { TOKEN(7) };
    ck_assert_uint_eq(coro_tasks(all, 1), 0);
    ck_assert_ptr_eq(all[0], TOKEN(7));
}
END_TEST

/* ---------------------------------------------------------------------- */
/* coro_task_info                                                         */
/* ---------------------------------------------------------------------- */

static int pipe_fds[2];
static coro_chan *chan;
static coro_mutex *mutex;

static void *joiner(void *arg)
{
    int err = await_task(arg, NULL);
    return err ? coro_fail(err) : NULL;
}

static void *gatherer(void *arg)
{
    coro_task **two = arg;
    int err = await_gather(two, 2, NULL, NULL);
    return err ? coro_fail(err) : NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    int err = await_readable(pipe_fds[0], -1);
    return err ? coro_fail(err) : NULL;
}

static void *receiver(void *arg)
{
    (void)arg;
    int x;
    int err = await_chan_recv(chan, &x, -1);
    return err ? coro_fail(err) : NULL;
}

static void *locker(void *arg)
{
    (void)arg;
    int err = await_mutex_lock(mutex, 30);
    if (!err)
        coro_mutex_unlock(mutex);
    return err ? coro_fail(err) : NULL;
}

static struct coro_task_info info_of(const coro_task *t)
{
    struct coro_task_info in;
    memset(&in, 0xa5, sizeof in);
    ck_assert_int_eq(coro_task_info(t, &in), 0);
    return in;
}

static void expect_not_waiting(const struct coro_task_info *in)
{
    ck_assert_ptr_null(in->wait);
    ck_assert_ptr_null(in->wait_object);
    ck_assert_uint_eq(in->wait_task, 0);
    ck_assert_int_eq(in->wait_fd, -1);
    ck_assert_double_eq(in->wait_deadline, -1);
}

static void *info_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(await_mutex_lock(mutex, -1), 0);
    double t0 = coro_now();
    coro_task *sleeper = coro_spawn(sleeps_long, NULL);
    coro_task *pair[2] = { coro_spawn(sleeps_long, NULL),
                           coro_spawn(sleeps_long, NULL) };
    coro_task *t[] = {
        coro_spawn(joiner, sleeper),  coro_spawn(gatherer, pair),
        coro_spawn(reader, NULL),     coro_spawn(receiver, NULL),
        coro_spawn(locker, NULL),     coro_spawn(fails_eio, NULL),
    };
    settle();
    coro_task *fresh = coro_spawn(worker, NULL);

    struct coro_task_info in = info_of(coro_self());
    ck_assert_uint_eq(in.id, 1);
    ck_assert_str_eq(in.name, "main");
    ck_assert_int_eq(in.state, CORO_STATE_RUNNING);
    expect_not_waiting(&in);
    ck_assert_ptr_null(in.site); /* coro_run made it, not the macro */
    ck_assert_ptr_nonnull(in.spawn_pc);

    in = info_of(fresh);
    ck_assert_int_eq(in.state, CORO_STATE_READY);
    expect_not_waiting(&in);
    ck_assert_ptr_nonnull(strstr(in.site, "test/test_inspect.c:"));
    ck_assert_ptr_null(in.spawn_pc); /* the site says where */

    coro_task *plain = (coro_spawn)(worker, NULL);
    ck_assert_ptr_nonnull(plain);
    in = info_of(plain);
    ck_assert_ptr_null(in.site);
    ck_assert_ptr_nonnull(in.spawn_pc);

    in = info_of(sleeper);
    ck_assert_str_eq(in.name, "sleeps_long");
    ck_assert_int_eq(in.state, CORO_STATE_PARKED);
    ck_assert_str_eq(in.wait, "sleep");
    ck_assert_ptr_null(in.wait_object);
    ck_assert_double_ge(in.wait_deadline, t0 + 29);
    ck_assert_double_le(in.wait_deadline, coro_now() + 30);
    ck_assert_uint_eq(in.awaited_by, 5); /* the joiner */
    ck_assert_int_eq(in.error, 0);
    ck_assert_uint_eq(in.stack_size, 64 << 10);
    ck_assert_uint_gt(in.stack_used, 0);
    ck_assert_uint_le(in.stack_used, in.stack_size);
    ck_assert_int_eq(in.shared_stack, 0);

    in = info_of(t[0]);
    ck_assert_str_eq(in.wait, "join");
    ck_assert_ptr_eq(in.wait_object, sleeper);
    ck_assert_uint_eq(in.wait_task, 2);
    ck_assert_uint_eq(in.wait_tasks, 1);
    ck_assert_uint_eq(in.wait_pending, 1);
    ck_assert_double_eq(in.wait_deadline, -1);
    ck_assert_uint_eq(in.awaited_by, 0);

    in = info_of(t[1]);
    ck_assert_str_eq(in.wait, "gather");
    ck_assert_ptr_null(in.wait_object);
    ck_assert_uint_eq(in.wait_tasks, 2);
    ck_assert_uint_eq(in.wait_pending, 2);

    in = info_of(t[2]);
    ck_assert_str_eq(in.wait, "read fd");
    ck_assert_int_eq(in.wait_fd, pipe_fds[0]);

    in = info_of(t[3]);
    ck_assert_str_eq(in.wait, "channel receive");
    ck_assert_ptr_eq(in.wait_object, chan);

    in = info_of(t[4]);
    ck_assert_str_eq(in.wait, "mutex");
    ck_assert_ptr_eq(in.wait_object, mutex);
    ck_assert_uint_eq(in.wait_task, 1); /* main holds it */
    ck_assert_double_ge(in.wait_deadline, t0 + 29);

    in = info_of(t[5]);
    ck_assert_int_eq(in.state, CORO_STATE_ENDED);
    expect_not_waiting(&in);
    ck_assert_int_eq(in.error, EIO);
    ck_assert_int_eq(in.cancelled, 0);

    /* Undo it all. */
    ck_assert_int_eq(coro_mutex_unlock(mutex), 0);
    ck_assert_int_eq(write(pipe_fds[1], "x", 1), 1);
    ck_assert_int_eq(coro_chan_close(chan), 0);
    coro_cancel(sleeper);
    coro_cancel(pair[0]);
    coro_cancel(pair[1]);
    int errors[6];
    await_gather(t, 6, NULL, errors);
    ck_assert_int_eq(errors[0], ECANCELED);
    ck_assert_int_eq(errors[1], ECANCELED);
    ck_assert_int_eq(errors[2], 0);
    ck_assert_int_eq(errors[3], EPIPE);
    ck_assert_int_eq(errors[4], 0);
    ck_assert_int_eq(errors[5], EIO);
    ck_assert_int_eq(await_task(fresh, NULL), 0);
    ck_assert_int_eq(await_task(plain, NULL), 0);
    return NULL;
}

/* test_tasks.py test_task_repr_wait_for: what a task waits for, here as
 * data, for each kind of wait. */
START_TEST(info_tells_what_each_task_waits_for)
{
    ck_assert_int_eq(pipe(pipe_fds), 0);
    chan = coro_chan_new(sizeof(int), 0);
    mutex = coro_mutex_new();
    ck_assert_ptr_nonnull(chan);
    ck_assert_ptr_nonnull(mutex);
    run_expect(info_main, NULL, 0);
    ck_assert_int_eq(coro_chan_free(chan), 0);
    ck_assert_int_eq(coro_mutex_free(mutex), 0);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}
END_TEST

static void *deep_then_sleep(void *arg)
{
    (void)arg;
    char frame[4096];
    frame_fill(frame, 1, sizeof frame);
    int err = await_sleep(30);
    return err ? coro_fail(err) : NULL;
}

static void *shared_info_main(void *arg)
{
    (void)arg;
    coro_attr attr = { .flags = CORO_SHARED_STACK };
    coro_task *t = coro_spawn_attr(&attr, deep_then_sleep, NULL);
    coro_task *u = coro_spawn_attr(&attr, sleeps_long, NULL);
    settle();
    struct coro_task_info in = info_of(t);
    ck_assert_int_eq(in.shared_stack, 1);
    ck_assert_int_eq(in.state, CORO_STATE_PARKED);
    ck_assert_str_eq(in.wait, "sleep");
    ck_assert_uint_gt(in.stack_size, 64 << 10); /* the shared stack's */
    ck_assert_uint_ge(in.stack_used, 4096);
    ck_assert_uint_lt(in.stack_used, in.stack_size);
    ck_assert_uint_eq(in.stack_used, coro_stack_high_water(t));
    coro_cancel(t);
    coro_cancel(u);
    settle();
    in = info_of(t);
    ck_assert_int_eq(in.state, CORO_STATE_ENDED);
    ck_assert_int_eq(in.cancelled, 1);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    ck_assert_int_eq(await_task(u, NULL), ECANCELED);
    return NULL;
}

START_TEST(info_of_a_shared_stack_task)
{
    run_expect(shared_info_main, NULL, 0);
}
END_TEST

static void *since_main(void *arg)
{
    (void)arg;
    double t0 = coro_now();
    coro_task *t = coro_spawn(sleeps_long, NULL);
    ck_assert_int_eq(await_sleep(0.05 * test_slow()), 0);
    struct coro_task_info in = info_of(t);
    double now = coro_now();
    ck_assert_int_eq(in.state, CORO_STATE_PARKED);
    /* It parked as main went to sleep, at least main's nap ago: the
     * coarse clock is good to a few milliseconds. */
    ck_assert_double_ge(in.since, t0 - 0.02);
    ck_assert_double_ge(now - in.since, 0.5 * 0.05 * test_slow());
    ck_assert_double_ge(in.wait_deadline, now);
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    return NULL;
}

START_TEST(info_since_tells_when_the_state_began)
{
    run_expect(since_main, NULL, 0);
}
END_TEST

static void *keeps_yielding(void *arg)
{
    (void)arg;
    for (;;)
        if (await_yield() != 0)
            return NULL;
}

/* A timer's wake reads a finer clock than the loop's ticks do, so the
 * loop's notion of now may be a little behind a task's since: that must
 * read as now, not as a time weeks ago. */
static void *since_after_timers_main(void *arg)
{
    (void)arg;
    coro_task *other = coro_spawn(keeps_yielding, NULL);
    double worst = 0;
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(await_sleep(0.0003), 0);
        for (int k = 0; k < 70; k++) {
            ck_assert_int_eq(await_yield(), 0);
            double age = coro_now() - info_of(coro_self()).since;
            if (fabs(age) > fabs(worst))
                worst = age;
        }
    }
    ck_assert_double_lt(fabs(worst), 1.0 * test_slow());
    coro_cancel(other);
    ck_assert_int_eq(await_task(other, NULL), ECANCELED);
    return NULL;
}

START_TEST(info_since_is_never_ahead_of_the_loop_by_a_wrap)
{
    run_expect(since_after_timers_main, NULL, 0);
}
END_TEST

static coro_event *gate;

/* Waits for the gate with its cancellation held back. */
static void *shielded_waiter(void *arg)
{
    (void)arg;
    coro_shield(1);
    int err = await_event(gate, -1);
    return err ? coro_fail(err) : NULL;
}

static void *flags_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(shielded_waiter, NULL);
    settle();
    ck_assert_int_eq(coro_cancel(t), 0);
    struct coro_task_info in = info_of(t);
    ck_assert_int_eq(in.state, CORO_STATE_PARKED); /* the shield holds */
    ck_assert_str_eq(in.wait, "event");
    ck_assert_ptr_eq(in.wait_object, gate);
    ck_assert_int_eq(in.cancelling, 1);
    ck_assert_int_eq(in.cancelled, 0);
    ck_assert_int_eq(in.shielded, 1);
    coro_event_set(gate);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    return NULL;
}

START_TEST(info_flags_a_cancelled_task_that_holds_a_shield)
{
    gate = coro_event_new();
    ck_assert_ptr_nonnull(gate);
    run_expect(flags_main, NULL, 0);
    ck_assert_int_eq(coro_event_free(gate), 0);
}
END_TEST

static void *agree_main(void *arg)
{
    char **out = arg;
    coro_task *w = coro_spawn(shielded_waiter, NULL);
    coro_task *j = coro_spawn(joiner, w);
    coro_task *s = coro_spawn(sleeps_long, NULL);
    settle();
    coro_cancel(j); /* it cancels w and waits for it, which holds out */
    settle();
    struct coro_task_info wi = info_of(w), ji = info_of(j), si = info_of(s);
    size_t len;
    FILE *f = open_memstream(out, &len);
    ck_assert_ptr_nonnull(f);
    coro_dump(f);
    fclose(f);
    char want[96];
    snprintf(want, sizeof want, "joining task #%llu (%s)", ji.wait_task,
             wi.name);
    expect_report_line(*out, "#3 ", " joiner ", want, " [cancelled]", NULL);
    snprintf(want, sizeof want, "on an %s (%p)", wi.wait, wi.wait_object);
    expect_report_line(*out, "#2 ", " shielded_waiter ", want,
                       " [cancelled] [shielded]", NULL);
    /* The dump looked at the clock first: as many whole seconds to go. */
    snprintf(want, sizeof want, "sleeping, %d.",
             (int)(si.wait_deadline - coro_now()));
    expect_report_line(*out, "#4 ", " sleeps_long ", want, NULL);
    coro_event_set(gate);
    coro_cancel(s);
    ck_assert_int_eq(await_task(j, NULL), ECANCELED);
    ck_assert_int_eq(await_task(s, NULL), ECANCELED);
    return NULL;
}

/* coro_dump's line is coro_task_info's snapshot in words. */
START_TEST(dump_tells_what_info_tells)
{
    gate = coro_event_new();
    ck_assert_ptr_nonnull(gate);
    char *dump = NULL;
    run_expect(agree_main, &dump, 0);
    free(dump);
    ck_assert_int_eq(coro_event_free(gate), 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Bad input                                                              */
/* ---------------------------------------------------------------------- */

/* Which of the calls did not refuse t (0: all did), for the threads that
 * must not call ck_assert: Check's no-fork mode (valgrind) records every
 * assertion in a stream its main thread closes when the test ends. */
static int refusals_missing(coro_task *t)
{
    void *result = TOKEN(1);
    int error = -1;
    struct coro_task_info in;
    if (coro_task_done(t) != 0)
        return 1;
    if (coro_task_cancelled(t) != 0)
        return 2;
    if (coro_task_cancelling(t) != 0)
        return 3;
    if (coro_task_result(t, &result, &error) != EINVAL ||
        result != TOKEN(1) || error != -1)
        return 4;
    if (coro_task_set_name(t, "x") != EINVAL)
        return 5;
    if (coro_task_info(t, &in) != EINVAL)
        return 6;
    return 0;
}

static void expect_refused(coro_task *t)
{
    ck_assert_int_eq(refusals_missing(t), 0);
}

static void *null_main(void *arg)
{
    (void)arg;
    expect_refused(NULL);
    ck_assert_int_eq(coro_task_info(coro_self(), NULL), EINVAL);
    /* No array to fill: only counted, whatever cap says. */
    ck_assert_uint_eq(coro_tasks(NULL, 5), 1);
    ck_assert_uint_eq(coro_tasks(NULL, SIZE_MAX), 1);
    return NULL;
}

START_TEST(calls_refuse_a_null_task)
{
    run_expect(null_main, NULL, 0);
}
END_TEST

static _Atomic(coro_task *) foreign;
static atomic_int checked;
/* What went wrong on the other side, for the test to assert once the
 * thread is joined: a line of foreign_main, or the refusal missing. */
static atomic_int foreign_failed, checking_missing;

#define FOREIGN_CHECK(c)                                                   \
    do {                                                                   \
        if (!(c) && !atomic_load(&foreign_failed))                         \
            atomic_store(&foreign_failed, __LINE__);                       \
    } while (0)

/* The other thread's loop: a task that has ended, not yet joined, which
 * stays until this side has looked. */
static void *foreign_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(cancelled_then_fails, NULL);
    FOREIGN_CHECK(await_sleep(0.001) == 0); /* settle(), unchecked */
    coro_cancel(t);
    FOREIGN_CHECK(await_sleep(0.001) == 0);
    atomic_store(&foreign, t);
    while (!atomic_load(&checked))
        FOREIGN_CHECK(await_sleep(0.001) == 0);
    FOREIGN_CHECK(strcmp(coro_name(t), "cancelled_then_fails") == 0);
    FOREIGN_CHECK(await_task(t, NULL) == EIO);
    return NULL;
}

static void *foreign_thread(void *arg)
{
    (void)arg;
    return TOKEN(coro_run(foreign_main, NULL, NULL));
}

static void *checking_main(void *arg)
{
    (void)arg;
    coro_task *t;
    /* Bounded: the other loop may have failed before it got this far. */
    double give_up = coro_now() + 10 * test_slow();
    while ((t = atomic_load(&foreign)) == NULL)
        if (await_sleep(0.001) != 0 || coro_now() > give_up)
            return NULL;
    atomic_store(&checking_missing, refusals_missing(t));
    return NULL;
}

/* A task belongs to its loop: a loop on another thread, and a thread with
 * no loop, can neither read nor rename it. Every assertion waits until
 * the other thread is joined. */
START_TEST(calls_refuse_a_task_of_another_loop)
{
    atomic_store(&foreign, NULL);
    atomic_store(&checked, 0);
    atomic_store(&foreign_failed, 0);
    atomic_store(&checking_missing, -1);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, foreign_thread, NULL), 0);
    int err = coro_run(checking_main, NULL, NULL);
    /* no loop on this thread */
    int missing = refusals_missing(atomic_load(&foreign));
    atomic_store(&checked, 1);
    void *ret;
    ck_assert_int_eq(test_join(th, &ret, 10), 0);
    ck_assert_int_eq(err, 0);
    ck_assert_int_eq(atomic_load(&checking_missing), 0);
    ck_assert_int_eq(missing, 0);
    ck_assert_int_eq(atomic_load(&foreign_failed), 0);
    ck_assert_ptr_eq(ret, TOKEN(0));
}
END_TEST

Suite *inspect_suite(void)
{
    Suite *s = suite_create("inspect");
    TCase *tc = test_case("state", 10);
    tcase_add_test(tc, done_and_result_follow_a_task_to_its_end);
    tcase_add_test(tc, the_running_task_is_not_done);
    tcase_add_test(tc, a_failed_task_tells_its_error_before_the_join);
    tcase_add_test(tc, cancelled_is_set_once_a_cancelled_task_ends);
    tcase_add_test(tc, a_cancelled_task_that_fails_otherwise_is_not_cancelled);
    suite_add_tcase(s, tc);

    tc = test_case("names", 10);
    tcase_add_test(tc, set_name_renames_and_null_gives_the_default_back);
    tcase_add_test(tc, set_name_keeps_31_bytes_as_attr_name_does);
    tcase_add_test(tc, set_name_takes_the_tasks_own_name);
    tcase_add_test(tc, naming_without_memory_is_enomem_and_keeps_the_name);
    tcase_add_test(tc, set_name_renames_an_ended_task);
    tcase_add_test(tc, a_renamed_task_is_dumped_under_its_new_name);
    suite_add_tcase(s, tc);

    tc = test_case("all_tasks", 10);
    tcase_add_test(tc, tasks_lists_every_task_in_spawn_order);
    tcase_add_test(tc, tasks_lists_an_ended_task_until_it_is_joined);
    tcase_add_test(tc, tasks_fills_at_most_cap_and_counts_them_all);
    tcase_add_test(tc, tasks_outside_a_loop_is_zero);
    suite_add_tcase(s, tc);

    tc = test_case("info", 10);
    tcase_add_test(tc, info_tells_what_each_task_waits_for);
    tcase_add_test(tc, info_of_a_shared_stack_task);
    tcase_add_test(tc, info_since_tells_when_the_state_began);
    tcase_add_test(tc, info_since_is_never_ahead_of_the_loop_by_a_wrap);
    tcase_add_test(tc, info_flags_a_cancelled_task_that_holds_a_shield);
    tcase_add_test(tc, dump_tells_what_info_tells);
    suite_add_tcase(s, tc);

    tc = test_case("errors", 20);
    tcase_add_test(tc, calls_refuse_a_null_task);
    tcase_add_test(tc, calls_refuse_a_task_of_another_loop);
    suite_add_tcase(s, tc);
    return s;
}
