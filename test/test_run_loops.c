/* Several loops at once (run_loops.c): n loops on n threads with one main,
 * the default count, results, the order of the end (the other loops
 * outlive main's), a deadlock in main's loop, a port shared with
 * SO_REUSEPORT, bad input.
 *
 * What runs on the other loops calls no ck_assert (in Check's no-fork
 * mode, valgrind's, a check on another thread jumps into the test's, or
 * writes to a stream the test's end closes) and touches only what is
 * static: a failed assertion in main leaves coro_run_loops at once, while
 * the other loops run on. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

static void *where_am_i(void *arg)
{
    (void)arg;
    return (void *)(uintptr_t)pthread_self();
}

static void *three_main(void *arg)
{
    (void)arg;
    coro_loop *loops[4] = { 0 };
    ck_assert_uint_eq(coro_loops(NULL, 0), 3);
    ck_assert_uint_eq(coro_loops(loops, 4), 3);
    ck_assert_ptr_eq(loops[0], coro_loop_current());
    pthread_t seen[3];
    for (int i = 0; i < 3; i++) {
        coro_future *f;
        ck_assert_ptr_nonnull(loops[i]);
        ck_assert_int_eq(coro_loop_submit(loops[i], where_am_i, NULL, &f),
                         0);
        void *th = NULL;
        ck_assert_int_eq(await_future(f, -1, &th), 0);
        seen[i] = (pthread_t)(uintptr_t)th;
    }
    ck_assert(pthread_equal(seen[0], pthread_self()));
    ck_assert(!pthread_equal(seen[1], seen[0]));
    ck_assert(!pthread_equal(seen[2], seen[0]));
    ck_assert(!pthread_equal(seen[2], seen[1]));
    return arg;
}

START_TEST(n_loops_run_on_n_threads_with_one_main)
{
    void *result = NULL;
    int token;
    ck_assert_int_eq(coro_run_loops(3, three_main, &token, &result), 0);
    ck_assert_ptr_eq(result, &token);
}
END_TEST

static void *count_main(void *arg)
{
    *(size_t *)arg = coro_loops(NULL, 0);
    return NULL;
}

START_TEST(the_default_is_one_loop_per_cpu)
{
    cpu_set_t set;
    ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
    size_t n = 0;
    ck_assert_int_eq(coro_run_loops(0, count_main, &n, NULL), 0);
    ck_assert_uint_eq(n, (size_t)CPU_COUNT(&set));
    ck_assert_int_eq(coro_run_loops(1, count_main, &n, NULL), 0);
    ck_assert_uint_eq(n, 1);
}
END_TEST

static void *failing_main(void *arg)
{
    (void)arg;
    return coro_fail(EIO);
}

START_TEST(mains_result_and_error_come_back)
{
    void *result = NULL;
    ck_assert_int_eq(coro_run_loops(2, where_am_i, NULL, &result), 0);
    ck_assert(pthread_equal((pthread_t)(uintptr_t)result, pthread_self()));
    ck_assert_int_eq(coro_run_loops(2, failing_main, NULL, &result), EIO);
    ck_assert_ptr_null(result);
}
END_TEST

/* ---------------------------------------------------------------------
 * The end
 * --------------------------------------------------------------------- */

struct ending {
    atomic_int remote_cancelled;
    atomic_int remote_cleaned;
    atomic_int waiter_err;
};

static void *remote_forever(void *arg)
{
    struct ending *e = arg;
    if (await_sleep(1e9) == ECANCELED) {
        atomic_store(&e->remote_cancelled, 1);
        int old = coro_shield(1);
        await_sleep(0.01); /* clean-up that waits, on its loop */
        coro_shield(old);
        atomic_store(&e->remote_cleaned, 1);
    }
    return NULL;
}

static void *waiter(void *arg)
{
    struct ending *e = arg;
    coro_loop *loops[2];
    coro_loops(loops, 2);
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(loops[1], remote_forever, e, &f), 0);
    atomic_store(&e->waiter_err, await_future(f, -1, NULL));
    return NULL;
}

static void *leave_a_waiter_main(void *arg)
{
    coro_detach(coro_spawn(waiter, arg));
    await_sleep(0.005);
    return NULL; /* the loop cancels the waiter, which waits for its task */
}

START_TEST(the_other_loops_outlive_mains_loop)
{
    static struct ending e;
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(coro_run_loops(2, leave_a_waiter_main, &e, NULL), 0);
    ck_assert_int_eq(atomic_load(&e.waiter_err), ECANCELED);
    ck_assert_int_eq(atomic_load(&e.remote_cancelled), 1);
    ck_assert_int_eq(atomic_load(&e.remote_cleaned), 1);
}
END_TEST

static void *let_go_main(void *arg)
{
    coro_loop *loops[2];
    coro_loops(loops, 2);
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(loops[1], remote_forever, arg, &f), 0);
    ck_assert_int_eq(coro_future_free(f), 0);
    await_sleep(0.005);
    return NULL;
}

START_TEST(tasks_left_on_the_other_loops_are_cancelled_at_the_end)
{
    static struct ending e;
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(coro_run_loops(2, let_go_main, &e, NULL), 0);
    ck_assert_int_eq(atomic_load(&e.remote_cancelled), 1);
    ck_assert_int_eq(atomic_load(&e.remote_cleaned), 1);
}
END_TEST

static void *deadlocked_main(void *arg)
{
    (void)arg;
    coro_event *ev = coro_event_new();
    int err = await_event(ev, -1);
    coro_event_free(ev);
    return err ? coro_fail(err) : NULL;
}

START_TEST(a_lone_loops_deadlock_is_reported)
{
    stderr_capture();
    int err = coro_run_loops(1, deadlocked_main, NULL, NULL);
    char *text = stderr_captured();
    ck_assert_int_eq(err, EDEADLK);
    expect_deadlock_report(text, 1);
    free(text);
}
END_TEST

/* With two loops, main waits on its own event for a call that the other
 * loop posts back: no deadlock, though no task of main's loop waits on
 * anything outside it. */
struct answer {
    coro_loop  *home;
    coro_event *ev;
    atomic_int  post_err;   /* what the other loop's post home returned */
};

static void set_event(void *arg)
{
    coro_event_set(((struct answer *)arg)->ev);
}

static void answer_home(void *arg)
{
    struct answer *a = arg;
    atomic_store(&a->post_err, coro_loop_post(a->home, set_event, a));
}

static void *answered_main(void *arg)
{
    struct answer *a = arg;
    coro_loop *loops[2];
    coro_loops(loops, 2);
    a->home = loops[0];
    a->ev = coro_event_new();
    ck_assert_int_eq(coro_loop_post(loops[1], answer_home, a), 0);
    /* Bounded: should the answer never come, nothing else ends this. */
    int err = await_event(a->ev, 10 * test_slow());
    if (!err)
        coro_event_free(a->ev); /* else a late set_event may still use it */
    return err ? coro_fail(err) : NULL;
}

START_TEST(loops_of_a_run_wait_for_each_others_posts)
{
    static struct answer a;
    memset(&a, 0, sizeof a);
    atomic_init(&a.post_err, -1);
    int err = coro_run_loops(2, answered_main, &a, NULL);
    int post_err = atomic_load(&a.post_err);
    ck_assert_int_eq(post_err, 0);
    ck_assert_int_eq(err, 0);
}
END_TEST

/* ---------------------------------------------------------------------
 * A lone loop, bad input
 * --------------------------------------------------------------------- */

static void *lone_main(void *arg)
{
    (void)arg;
    coro_loop *l = NULL;
    ck_assert_uint_eq(coro_loops(&l, 1), 1);
    ck_assert_ptr_eq(l, coro_loop_current());
    ck_assert_int_eq(coro_run_loops(2, lone_main, NULL, NULL), EBUSY);
    return NULL;
}

START_TEST(a_lone_loop_lists_itself)
{
    ck_assert_uint_eq(coro_loops(NULL, 0), 0);
    run_expect(lone_main, NULL, 0);
}
END_TEST

/* No array to fill: coro_loops only counts, whatever cap says (it stored
 * through the NULL before). */
static void *count_without_array(void *arg)
{
    (void)arg;
    ck_assert_uint_eq(coro_loops(NULL, 5), *(unsigned *)arg);
    ck_assert_uint_eq(coro_loops(NULL, SIZE_MAX), *(unsigned *)arg);
    return NULL;
}

START_TEST(loops_without_an_array_only_count)
{
    ck_assert_uint_eq(coro_loops(NULL, 5), 0);
    unsigned n = 1;
    run_expect(count_without_array, &n, 0);
    n = 2;
    ck_assert_int_eq(coro_run_loops(2, count_without_array, &n, NULL), 0);
}
END_TEST

START_TEST(run_loops_bad_input)
{
    void *result = &result;
    ck_assert_int_eq(coro_run_loops(2, NULL, NULL, &result), EINVAL);
    ck_assert_ptr_null(result);
    ck_assert_int_eq(coro_run_loops(1025, count_main, NULL, NULL), EINVAL);
    atomic_store(&coro__alloc_stats.fail_every, 1);
    int err = coro_run_loops(2, count_main, &result, NULL);
    atomic_store(&coro__alloc_stats.fail_every, 0);
    ck_assert_int_eq(err, ENOMEM);
}
END_TEST

/* ---------------------------------------------------------------------
 * A port shared by the loops
 * --------------------------------------------------------------------- */

enum { CONNECTIONS = 48 };

struct shared_port {
    int        port;
    atomic_int accepted[2];
};

struct server {
    struct shared_port *sp;
    int                 index;
    int                 fd;
};

/* Accepts on its own socket until cancelled, answering each connection
 * with one byte. */
static void *serve(void *arg)
{
    struct server *s = arg;
    for (;;) {
        int conn;
        int err = await_accept(s->fd, -1, &conn);
        if (err)
            return err == ECANCELED ? NULL : coro_fail(err);
        atomic_fetch_add(&s->sp->accepted[s->index], 1);
        await_write_all(conn, "x", 1, 1);
        coro_close(conn);
    }
}

static void *shared_port_main(void *arg)
{
    struct shared_port *sp = arg;
    coro_loop *loops[2];
    ck_assert_uint_eq(coro_loops(loops, 2), 2);
    static struct server servers[2]; /* the other loop serves from one */
    for (int i = 0; i < 2; i++) {
        servers[i] = (struct server){ sp, i, -1 };
        ck_assert_int_eq(coro_listen_flags("127.0.0.1", sp->port, 64,
                                           CORO_LISTEN_REUSEPORT,
                                           &servers[i].fd),
                         0);
        if (!sp->port)
            ck_assert_int_eq(coro_sock_port(servers[i].fd, &sp->port), 0);
    }
    coro_future *f[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(coro_loop_submit(loops[i], serve, &servers[i],
                                          &f[i]),
                         0);
    for (int i = 0; i < CONNECTIONS; i++) {
        int fd;
        ck_assert_int_eq(await_dial("127.0.0.1", sp->port, 5 * test_slow(),
                                    &fd),
                         0);
        char c;
        size_t got;
        ck_assert_int_eq(await_read_full(fd, &c, 1, 5 * test_slow(), &got),
                         0);
        coro_close(fd);
    }
    for (int i = 0; i < 2; i++) {
        coro_future_cancel(f[i]);
        ck_assert_int_eq(await_future(f[i], -1, NULL), ECANCELED);
        close(servers[i].fd);
    }
    return NULL;
}

START_TEST(a_port_shared_with_reuseport_spreads_connections_over_loops)
{
    static struct shared_port sp;
    memset(&sp, 0, sizeof sp);
    ck_assert_int_eq(coro_run_loops(2, shared_port_main, &sp, NULL), 0);
    int a = atomic_load(&sp.accepted[0]), b = atomic_load(&sp.accepted[1]);
    ck_assert_int_eq(a + b, CONNECTIONS);
    /* The kernel hashes each connection to a socket: with 48, the chance
     * that one socket gets none is 2^-47. */
    ck_assert_int_gt(a, 0);
    ck_assert_int_gt(b, 0);
}
END_TEST

Suite *run_loops_suite(void)
{
    Suite *s = suite_create("run_loops");
    TCase *tc = test_case("run", 20);
    tcase_add_test(tc, n_loops_run_on_n_threads_with_one_main);
    tcase_add_test(tc, the_default_is_one_loop_per_cpu);
    tcase_add_test(tc, mains_result_and_error_come_back);
    suite_add_tcase(s, tc);

    tc = test_case("end", 20);
    tcase_add_test(tc, the_other_loops_outlive_mains_loop);
    tcase_add_test(tc, tasks_left_on_the_other_loops_are_cancelled_at_the_end);
    tcase_add_test(tc, a_lone_loops_deadlock_is_reported);
    tcase_add_test(tc, loops_of_a_run_wait_for_each_others_posts);
    suite_add_tcase(s, tc);

    tc = test_case("errors", 10);
    tcase_add_test(tc, a_lone_loop_lists_itself);
    tcase_add_test(tc, run_loops_bad_input);
    tcase_add_test(tc, loops_without_an_array_only_count);
    suite_add_tcase(s, tc);

    tc = test_case("reuseport", 30);
    tcase_add_test(tc, a_port_shared_with_reuseport_spreads_connections_over_loops);
    suite_add_tcase(s, tc);
    return s;
}
