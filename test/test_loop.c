/* Loop handles and posted calls (loop.c): the current loop, where and when
 * a posted call runs, order per poster, waking an idle loop, the end of a
 * loop with posts in flight, references and deadlock detection, bad
 * input.
 *
 * The posting threads call no ck_assert: in Check's no-fork mode
 * (valgrind) a failure there would jump into the test's thread, and even
 * a passing check writes to a stream the test's end closes. They record
 * what they saw, and the test asserts it once they are joined (within a
 * bound: no-fork mode has no timeout) and its loop has ended. What they
 * touch is static: a failed assertion leaves the test while they run. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"
#include "internal.h"

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---------------------------------------------------------------------
 * The current loop
 * --------------------------------------------------------------------- */

START_TEST(current_outside_a_loop_is_einval)
{
    errno = 0;
    ck_assert_ptr_null(coro_loop_current());
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(coro_loop_alive(NULL), 0);
    coro_loop_release(NULL);
    ck_assert_ptr_null(coro_loop_retain(NULL));
}
END_TEST

static void *report_loop(void *arg)
{
    *(coro_loop **)arg = coro_loop_current();
    return NULL;
}

static void *same_handle_main(void *arg)
{
    (void)arg;
    coro_loop *mine = coro_loop_current();
    ck_assert_ptr_nonnull(mine);
    ck_assert_int_eq(coro_loop_alive(mine), 1);
    coro_loop *theirs = NULL;
    ck_assert_int_eq(await_task(coro_spawn(report_loop, &theirs), NULL), 0);
    ck_assert_ptr_eq(mine, theirs);
    return NULL;
}

START_TEST(current_is_one_handle_for_every_task_of_a_loop)
{
    run_expect(same_handle_main, NULL, 0);
}
END_TEST

/* Two loops on two threads have two handles. */
static void *thread_loop(void *arg)
{
    coro_run(report_loop, arg, NULL);
    return NULL;
}

static void *two_loops_main(void *arg)
{
    (void)arg;
    coro_loop *other = NULL;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, thread_loop, &other), 0);
    pthread_join(th, NULL);
    ck_assert_ptr_nonnull(other); /* freed by now: only compared */
    ck_assert_ptr_ne(other, coro_loop_current());
    return NULL;
}

START_TEST(each_loop_has_its_own_handle)
{
    run_expect(two_loops_main, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------
 * Where and when a call runs
 * --------------------------------------------------------------------- */

struct where {
    pthread_t   loop_thread;
    int         ran;
    int         on_loop_thread;
    coro_task  *self;
    int         sleep_err;
    coro_task  *spawned;
    coro_event *done;
};

static void *spawned_by_call(void *arg)
{
    coro_event_set(((struct where *)arg)->done);
    return NULL;
}

static void where_call(void *arg)
{
    struct where *w = arg;
    w->ran++;
    w->on_loop_thread = pthread_equal(pthread_self(), w->loop_thread);
    w->self = coro_self();
    w->sleep_err = await_sleep(0.001);
    w->spawned = coro_spawn(spawned_by_call, w);
}

struct where_run {
    struct where w;
    coro_loop   *loop;
    atomic_int   post_err;   /* what the thread's post returned */
};

static void *post_from_thread(void *arg)
{
    struct where_run *r = arg;
    atomic_store(&r->post_err, coro_loop_post(r->loop, where_call, &r->w));
    coro_loop_release(r->loop);
    return NULL;
}

static void *where_main(void *arg)
{
    struct where_run *r = arg;
    r->w.loop_thread = pthread_self();
    r->w.done = coro_event_new();
    r->loop = coro_loop_retain(coro_loop_current());
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, post_from_thread, r), 0);
    int err = await_event(r->w.done, 10 * test_slow());
    int joined = test_join(th, NULL, 10);
    if (!err)
        err = await_task(r->w.spawned, NULL);
    coro_event_free(r->w.done);
    err = err ? err : joined;
    return err ? coro_fail(err) : NULL;
}

START_TEST(a_call_runs_on_the_loop_thread_outside_any_task)
{
    static struct where_run r;
    memset(&r, 0, sizeof r);
    atomic_init(&r.post_err, -1);
    int err = coro_run(where_main, &r, NULL);
    int post_err = atomic_load(&r.post_err);
    ck_assert_int_eq(post_err, 0);
    ck_assert_int_eq(err, 0);
    ck_assert_int_eq(r.w.ran, 1);
    ck_assert_int_eq(r.w.on_loop_thread, 1);
    ck_assert_ptr_null(r.w.self);
    ck_assert_int_eq(r.w.sleep_err, EPERM);
}
END_TEST

/* A task posts to its own loop: the call runs once no task is ready, or,
 * while tasks keep the loop busy, within 64 switches. */
static void own_call(void *arg)
{
    *(int *)arg = 1;
}

static void *own_idle(void *arg)
{
    int *ran = arg;
    ck_assert_int_eq(coro_loop_post(coro_loop_current(), own_call, ran), 0);
    ck_assert_int_eq(await_sleep(0.001), 0); /* the loop is idle */
    return *ran ? NULL : coro_fail(EIO);
}

static void *spin(void *arg)
{
    while (!*(int *)arg)
        await_yield();
    return NULL;
}

static void *own_loop_main(void *arg)
{
    (void)arg;
    int idle_ran = 0, busy_ran = 0, yields = 0;
    ck_assert_int_eq(await_task(coro_spawn(own_idle, &idle_ran), NULL), 0);
    coro_task *other = coro_spawn(spin, &busy_ran);
    ck_assert_int_eq(coro_loop_post(coro_loop_current(), own_call,
                                    &busy_ran), 0);
    while (!busy_ran) {
        await_yield();
        yields++;
    }
    ck_assert_int_le(yields, 64);
    return await_task(other, NULL) ? coro_fail(EIO) : NULL;
}

START_TEST(a_call_posted_by_a_task_runs_when_idle_or_at_the_next_tick)
{
    run_expect(own_loop_main, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------
 * Order, and waking an idle loop
 * --------------------------------------------------------------------- */

enum { ORDER_THREADS = 4, ORDER_CALLS = 500 };

struct order {
    coro_loop   *loop;
    long         next[ORDER_THREADS]; /* loop thread only */
    long         bad;
    long         ran;
    coro_event  *done;
    atomic_int   post_err;            /* a post that did not return 0 */
};

struct order_call {
    struct order *o;
    int           thread;
    long          seq;
};

static struct order_call order_calls[ORDER_THREADS][ORDER_CALLS];

static void order_run(void *arg)
{
    struct order_call *c = arg;
    struct order *o = c->o;
    if (o->next[c->thread] != c->seq)
        o->bad++;
    o->next[c->thread] = c->seq + 1;
    if (++o->ran == ORDER_THREADS * ORDER_CALLS)
        coro_event_set(o->done);
}

struct poster {
    struct order *o;
    int           thread;
};

static void *order_poster(void *arg)
{
    struct poster *p = arg;
    for (long i = 0; i < ORDER_CALLS; i++) {
        struct order_call *c = &order_calls[p->thread][i];
        *c = (struct order_call){ p->o, p->thread, i };
        int err = coro_loop_post(p->o->loop, order_run, c);
        if (err) {
            atomic_store(&p->o->post_err, err);
            break;
        }
    }
    coro_loop_release(p->o->loop);
    return NULL;
}

static void *order_main(void *arg)
{
    struct order *o = arg;
    o->done = coro_event_new();
    o->loop = coro_loop_current();
    pthread_t th[ORDER_THREADS];
    static struct poster p[ORDER_THREADS];
    for (int i = 0; i < ORDER_THREADS; i++) {
        p[i] = (struct poster){ o, i };
        coro_loop_retain(o->loop);
        ck_assert_int_eq(pthread_create(&th[i], NULL, order_poster, &p[i]),
                         0);
    }
    /* Half the time busy (yielding), half asleep on the event. */
    for (int i = 0; i < 200 && !coro_event_is_set(o->done); i++)
        await_yield();
    int err = await_event(o->done, 30 * test_slow());
    for (int i = 0; i < ORDER_THREADS; i++) {
        int joined = test_join(th[i], NULL, 10);
        err = err ? err : joined;
    }
    coro_event_free(o->done);
    return err ? coro_fail(err) : NULL;
}

START_TEST(calls_of_one_poster_run_in_its_order)
{
    static struct order o;
    memset(&o, 0, sizeof o);
    int err = coro_run(order_main, &o, NULL);
    int post_err = atomic_load(&o.post_err);
    ck_assert_int_eq(post_err, 0);
    ck_assert_int_eq(err, 0);
    ck_assert_int_eq(o.ran, ORDER_THREADS * ORDER_CALLS);
    ck_assert_int_eq(o.bad, 0);
    for (int i = 0; i < ORDER_THREADS; i++)
        ck_assert_int_eq(o.next[i], ORDER_CALLS);
}
END_TEST

/* An idle loop (main parked on an event, no timer anywhere) wakes for a
 * post at once. The bench (bench/xloop) measures how soon; here, only
 * that it is not a timer's or a poll interval's doing: far under the
 * 1 s the loop would otherwise sleep. */
struct wake {
    coro_loop  *loop;
    coro_event *ev;
    double      posted;
    double      ran;
    atomic_int  post_err;
};

static void wake_call(void *arg)
{
    struct wake *w = arg;
    w->ran = coro_now();
    coro_event_set(w->ev);
}

static void *wake_poster(void *arg)
{
    struct wake *w = arg;
    sleep_ms(50);
    w->posted = coro_now();
    /* Refused, the post leaves main to the deadlock the release makes. */
    atomic_store(&w->post_err, coro_loop_post(w->loop, wake_call, w));
    coro_loop_release(w->loop);
    return NULL;
}

static void *wake_main(void *arg)
{
    struct wake *w = arg;
    w->ev = coro_event_new();
    w->loop = coro_loop_retain(coro_loop_current());
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, wake_poster, w), 0);
    int err = await_event(w->ev, -1);
    int joined = test_join(th, NULL, 10);
    coro_event_free(w->ev);
    err = err ? err : joined;
    return err ? coro_fail(err) : NULL;
}

START_TEST(an_idle_loop_wakes_for_a_post_at_once)
{
    static struct wake w;
    memset(&w, 0, sizeof w);
    atomic_init(&w.post_err, -1);
    /* 0, not EDEADLK: the poster held a reference while main waited. */
    int err = coro_run(wake_main, &w, NULL);
    int post_err = atomic_load(&w.post_err);
    ck_assert_int_eq(post_err, 0);
    ck_assert_int_eq(err, 0);
    ck_assert(w.ran >= w.posted);
    ck_assert_msg(w.ran - w.posted < 0.05 * test_slow(),
                  "woke %.6f s after the post", w.ran - w.posted);
}
END_TEST

/* Without a reference held elsewhere, a loop whose tasks wait on each
 * other is deadlocked as before, handle or not. */
static void *deadlock_main(void *arg)
{
    (void)arg;
    ck_assert_ptr_nonnull(coro_loop_current());
    coro_event *ev = coro_event_new();
    int err = await_event(ev, -1);
    coro_event_free(ev);
    return err ? coro_fail(err) : NULL;
}

START_TEST(a_loop_nobody_else_holds_still_deadlocks)
{
    free(run_reporting(deadlock_main, NULL, EDEADLK));
}
END_TEST

/* A reference let go without a post: the loop, asleep with nothing else
 * to wake it, is told, and finds the deadlock. */
static void *release_later(void *arg)
{
    sleep_ms(30);
    coro_loop_release(arg);
    return NULL;
}

static void *released_main(void *arg)
{
    (void)arg;
    pthread_t th;
    coro_loop *l = coro_loop_retain(coro_loop_current());
    ck_assert_int_eq(pthread_create(&th, NULL, release_later, l), 0);
    coro_event *ev = coro_event_new();
    int err = await_event(ev, -1);
    pthread_join(th, NULL);
    coro_event_free(ev);
    return err ? coro_fail(err) : NULL;
}

START_TEST(a_reference_let_go_without_a_post_ends_in_a_deadlock)
{
    char *report = run_reporting(released_main, NULL, EDEADLK);
    expect_deadlock_report(report, 1);
    free(report);
}
END_TEST

/* ---------------------------------------------------------------------
 * The end of a loop
 * --------------------------------------------------------------------- */

static void *keep_handle(void *arg)
{
    *(coro_loop **)arg = coro_loop_retain(coro_loop_current());
    return NULL;
}

static void never(void *arg)
{
    (void)arg;
    ck_abort_msg("a call refused ran");
}

START_TEST(posting_to_a_loop_that_ended_is_eshutdown)
{
    coro_loop *l = NULL;
    run_expect(keep_handle, &l, 0);
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(coro_loop_alive(l), 0);
    ck_assert_int_eq(coro_loop_post(l, never, NULL), ESHUTDOWN);
    coro_loop_release(l);
}
END_TEST

/* Many threads post while the loop exits: every post that said 0 ran
 * exactly once, every one refused never ran, and a call accepted as the
 * loop ended still ran, spawning a task that ran to its end (cancelled). */
enum { EXIT_THREADS = 8, EXIT_ENOUGH = 2000 };

struct exiting {
    coro_loop  *loop;
    atomic_long accepted[EXIT_THREADS];
    long        ran[EXIT_THREADS];      /* loop thread only */
    long        dup;                    /* a call seen twice */
    long        spawned;
    long        spawned_ended;
    long        spawned_cancelled;
    long        total;                  /* calls run, loop thread only */
    coro_event *enough;
    atomic_int  go;
    atomic_int  post_err;               /* a refusal but ESHUTDOWN */
};

struct exit_call {
    struct exiting *x;
    int             thread;
    int             seen;
};

static void *exit_child(void *arg)
{
    struct exiting *x = arg;
    if (await_yield() == ECANCELED)
        x->spawned_cancelled++;
    x->spawned_ended++;
    return NULL;
}

static void exit_run(void *arg)
{
    struct exit_call *c = arg;
    struct exiting *x = c->x;
    if (c->seen++)
        x->dup++;
    x->ran[c->thread]++;
    if (++x->total == EXIT_ENOUGH)
        coro_event_set(x->enough);
    if (x->total % 64 == 0) {
        coro_task *t = coro_spawn(exit_child, x);
        ck_assert_ptr_nonnull(t);
        coro_detach(t);
        x->spawned++;
    }
    free(c);
}

struct exit_poster {
    struct exiting *x;
    int             thread;
};

static void *exit_post(void *arg)
{
    struct exit_poster *p = arg;
    struct exiting *x = p->x;
    while (!atomic_load(&x->go))
        sleep_ms(1);
    for (;;) {
        struct exit_call *c = malloc(sizeof *c);
        *c = (struct exit_call){ x, p->thread, 0 };
        int err = coro_loop_post(x->loop, exit_run, c);
        if (err) {
            if (err != ESHUTDOWN)
                atomic_store(&x->post_err, err);
            free(c);
            break;
        }
        /* At full speed, 8 threads bury a loop under TSan: a pause
         * every 32 posts. */
        if (atomic_fetch_add(&x->accepted[p->thread], 1) % 32 == 31)
            sleep_ms(1);
    }
    return NULL;
}

static void *exit_main(void *arg)
{
    struct exiting *x = arg;
    x->enough = coro_event_new();
    x->loop = coro_loop_retain(coro_loop_current());
    atomic_store(&x->go, 1);
    /* Let the posts flow for a while, then end the loop under them. No
     * ck_assert here: a failure must still end the loop, or the posters
     * would post on for ever. */
    int err = await_event(x->enough, -1);
    coro_event_free(x->enough);
    return err ? coro_fail(err) : NULL;
}

START_TEST(posts_from_many_threads_while_the_loop_exits)
{
    static struct exiting x;
    memset(&x, 0, sizeof x);
    pthread_t th[EXIT_THREADS];
    static struct exit_poster p[EXIT_THREADS];
    for (int i = 0; i < EXIT_THREADS; i++) {
        p[i] = (struct exit_poster){ &x, i };
        ck_assert_int_eq(pthread_create(&th[i], NULL, exit_post, &p[i]), 0);
    }
    int err = coro_run(exit_main, &x, NULL);
    /* The loop has ended: every post is refused now, and each poster
     * stops at its first refusal (go, should main never have run). */
    atomic_store(&x.go, 1);
    for (int i = 0; i < EXIT_THREADS; i++)
        ck_assert_int_eq(test_join(th[i], NULL, 10), 0);
    int post_err = atomic_load(&x.post_err);
    ck_assert_int_eq(post_err, 0);
    ck_assert_int_eq(err, 0);
    long total = 0;
    for (int i = 0; i < EXIT_THREADS; i++) {
        ck_assert_int_eq(atomic_load(&x.accepted[i]), x.ran[i]);
        total += x.ran[i];
    }
    ck_assert_int_gt(total, 0);
    ck_assert_int_eq(x.dup, 0);
    ck_assert_int_eq(x.spawned, x.spawned_ended);
    ck_assert_int_eq(coro_loop_post(x.loop, never, NULL), ESHUTDOWN);
    coro_loop_release(x.loop);
}
END_TEST

/* ---------------------------------------------------------------------
 * Bad input, memory
 * --------------------------------------------------------------------- */

static void nothing(void *arg)
{
    (void)arg;
}

static void *bad_input_main(void *arg)
{
    (void)arg;
    coro_loop *l = coro_loop_current();
    ck_assert_int_eq(coro_loop_post(NULL, nothing, NULL), EINVAL);
    ck_assert_int_eq(coro_loop_post(l, NULL, NULL), EINVAL);
    atomic_store(&coro__alloc_stats.fail_every, 1);
    int err = coro_loop_post(l, never, NULL);
    atomic_store(&coro__alloc_stats.fail_every, 0);
    ck_assert_int_eq(err, ENOMEM);
    return NULL;
}

/* Lets go of references it never took: the borrowed handle, and one
 * more than it retained. */
static void *over_release_main(void *arg)
{
    (void)arg;
    coro_loop *l = coro_loop_current();
    coro_loop_release(l);
    coro_loop_release(l);
    ck_assert_ptr_eq(coro_loop_retain(l), l);
    coro_loop_release(l);
    coro_loop_release(l);
    ck_assert_int_eq(coro_loop_alive(l), 1);
    ck_assert_ptr_eq(coro_loop_current(), l);
    ck_assert_int_eq(coro_loop_post(l, nothing, NULL), 0);
    ck_assert_int_eq(await_sleep(0.001), 0);
    /* Nobody holds it now: a wait that nothing can end is a deadlock. */
    coro_event *ev = coro_event_new();
    int err = await_event(ev, -1);
    coro_event_free(ev);
    return err ? coro_fail(err) : NULL;
}

/* A release without its retain does nothing (it freed the handle of the
 * running loop, which then aborted on its own handle). */
START_TEST(a_release_without_a_retain_does_nothing)
{
    char *report = run_reporting(over_release_main, NULL, EDEADLK);
    expect_deadlock_report(report, 1);
    free(report);
}
END_TEST

START_TEST(post_bad_input_and_no_memory)
{
    run_expect(bad_input_main, NULL, 0);
}
END_TEST

/* The first coro_loop_current of a loop allocates its handle: without
 * memory, NULL and ENOMEM, and the next call succeeds. */
static void *handle_nomem_main(void *arg)
{
    (void)arg;
    atomic_store(&coro__alloc_stats.fail_every, 1);
    errno = 0;
    coro_loop *l = coro_loop_current();
    int err = errno;
    atomic_store(&coro__alloc_stats.fail_every, 0);
    ck_assert_ptr_null(l);
    ck_assert_int_eq(err, ENOMEM);
    ck_assert_ptr_nonnull(coro_loop_current());
    return NULL;
}

START_TEST(a_handle_without_memory_is_enomem)
{
    run_expect(handle_nomem_main, NULL, 0);
}
END_TEST

Suite *loop_suite(void)
{
    Suite *s = suite_create("loop");
    TCase *tc = test_case("current", 10);
    tcase_add_test(tc, current_outside_a_loop_is_einval);
    tcase_add_test(tc, current_is_one_handle_for_every_task_of_a_loop);
    tcase_add_test(tc, each_loop_has_its_own_handle);
    suite_add_tcase(s, tc);

    tc = test_case("calls", 30);
    tcase_add_test(tc, a_call_runs_on_the_loop_thread_outside_any_task);
    tcase_add_test(tc, a_call_posted_by_a_task_runs_when_idle_or_at_the_next_tick);
    tcase_add_test(tc, calls_of_one_poster_run_in_its_order);
    tcase_add_test(tc, an_idle_loop_wakes_for_a_post_at_once);
    suite_add_tcase(s, tc);

    tc = test_case("deadlock", 20);
    tcase_add_test(tc, a_loop_nobody_else_holds_still_deadlocks);
    tcase_add_test(tc, a_reference_let_go_without_a_post_ends_in_a_deadlock);
    suite_add_tcase(s, tc);

    tc = test_case("end", 30);
    tcase_add_test(tc, posting_to_a_loop_that_ended_is_eshutdown);
    tcase_add_test(tc, posts_from_many_threads_while_the_loop_exits);
    suite_add_tcase(s, tc);

    tc = test_case("errors", 10);
    tcase_add_test(tc, post_bad_input_and_no_memory);
    tcase_add_test(tc, a_release_without_a_retain_does_nothing);
    tcase_add_test(tc, a_handle_without_memory_is_enomem);
    suite_add_tcase(s, tc);
    return s;
}
