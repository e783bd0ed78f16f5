/* The channel between threads (xchan.c): tasks and threads on either
 * side, rendezvous and buffered, timeouts and cancellation on both sides,
 * a hand-off that races a give-up, close from either side, bad input, and
 * a churn of many threads and tasks where nothing may be lost or
 * duplicated.
 *
 * Threads and other loops call no ck_assert: in Check's no-fork mode
 * (valgrind) a failure there would jump into the test's thread, and even
 * a passing check writes to a stream the test's end closes. They record
 * what they saw, for the test to assert once they are joined; every join
 * and every wait such a thread could leave unanswered is bounded (no-fork
 * mode has no timeout); and what they touch is static, since a failed
 * assertion leaves the test while they run. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---------------------------------------------------------------------
 * Across
 * --------------------------------------------------------------------- */

enum { PINGS = 300 };

struct pingpong {
    coro_xchan *to_thread;
    coro_xchan *to_task;
    int         bad;
};

static void *echo_thread(void *arg)
{
    struct pingpong *p = arg;
    long v;
    int err;
    while ((err = coro_xchan_recv(p->to_thread, &v, -1)) == 0) {
        v++;
        if (coro_xchan_send(p->to_task, &v, -1) != 0)
            p->bad++;
    }
    if (err != EPIPE)
        p->bad++;
    return NULL;
}

static void *pingpong_main(void *arg)
{
    struct pingpong *p = arg;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, echo_thread, p), 0);
    for (long i = 0; i < PINGS; i++) {
        long v = i * 2;
        ck_assert_int_eq(await_xchan_send(p->to_thread, &v, -1), 0);
        ck_assert_int_eq(await_xchan_recv(p->to_task, &v, -1), 0);
        ck_assert_int_eq(v, i * 2 + 1);
    }
    ck_assert_int_eq(coro_xchan_close(p->to_thread), 0);
    ck_assert_int_eq(coro_xchan_close(p->to_thread), EPIPE);
    return (void *)(uintptr_t)th;
}

START_TEST(a_task_and_a_thread_ping_pong_through_rendezvous_channels)
{
    static struct pingpong p;
    p = (struct pingpong){
        .to_thread = coro_xchan_new(sizeof(long), 0),
        .to_task = coro_xchan_new(sizeof(long), 0),
    };
    void *th = NULL;
    ck_assert_int_eq(coro_run(pingpong_main, &p, &th), 0);
    ck_assert_int_eq(test_join((pthread_t)(uintptr_t)th, NULL, 10), 0);
    ck_assert_int_eq(p.bad, 0);
    ck_assert_int_eq(coro_xchan_free(p.to_thread), 0);
    ck_assert_int_eq(coro_xchan_free(p.to_task), 0);
}
END_TEST

/* Two loops: a consumer submitted to the other loop, a producer here,
 * through a small buffer. */
enum { ITEMS = 2000 };

static void *consumer(void *arg)
{
    coro_xchan *c = arg;
    long v, sum = 0, n = 0;
    int err;
    while ((err = await_xchan_recv(c, &v, -1)) == 0) {
        if (v != n++)
            return coro_fail(EILSEQ); /* out of order */
        sum += v;
    }
    if (err != EPIPE)
        return coro_fail(err);
    return (void *)(intptr_t)sum;
}

struct two_loops {
    struct side_loop side;
    coro_xchan      *c;
    long             sum;
};

static void *producer_main(void *arg)
{
    struct two_loops *t = arg;
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(t->side.loop, consumer, t->c, &f), 0);
    for (long i = 0; i < ITEMS; i++)
        ck_assert_int_eq(await_xchan_send(t->c, &i, -1), 0);
    ck_assert_int_eq(coro_xchan_close(t->c), 0);
    void *sum = NULL;
    ck_assert_int_eq(await_future(f, -1, &sum), 0);
    t->sum = (long)(intptr_t)sum;
    return NULL;
}

START_TEST(two_loops_exchange_through_a_buffered_channel_in_order)
{
    static struct two_loops t;
    t = (struct two_loops){ .c = coro_xchan_new(sizeof(long), 4) };
    side_loop_start(&t.side);
    run_expect(producer_main, &t, 0);
    ck_assert_int_eq(side_loop_stop(&t.side), 0);
    ck_assert_int_eq(t.sum, (long)ITEMS * (ITEMS - 1) / 2);
    ck_assert_int_eq(coro_xchan_free(t.c), 0);
}
END_TEST

/* A shared-stack task may use the channel with its elements on the
 * heap: the waiter is in its control block. */
static void *shared_receiver(void *arg)
{
    coro_xchan *c = arg;
    long *v = malloc(sizeof *v);
    int err = await_xchan_recv(c, v, 10 * test_slow());
    long got = *v;
    free(v);
    return err ? coro_fail(err) : (void *)(intptr_t)got;
}

static atomic_int later_err; /* what send_later's or close_later's call
                                 returned */

static void *send_later(void *arg)
{
    sleep_ms(10);
    long v = 42;
    atomic_store(&later_err, coro_xchan_send(arg, &v, 10 * test_slow()));
    return NULL;
}

static void *shared_main(void *arg)
{
    coro_attr attr = { .flags = CORO_SHARED_STACK };
    test_scribbling_start();
    coro_task *s = coro_spawn_attr(&attr, test_scribbler, NULL);
    coro_task *r = coro_spawn_attr(&attr, shared_receiver, arg);
    pthread_t th;
    atomic_store(&later_err, -1);
    ck_assert_int_eq(pthread_create(&th, NULL, send_later, arg), 0);
    void *got = NULL;
    int err = await_task(r, &got);
    test_scribbling_stop();
    int scribbled = await_task(s, NULL);
    ck_assert_int_eq(test_join(th, NULL, 10), 0);
    int sent = atomic_load(&later_err);
    ck_assert_int_eq(sent, 0);
    ck_assert_int_eq(err, 0);
    ck_assert_int_eq(scribbled, 0);
    ck_assert_int_eq((long)(intptr_t)got, 42);
    return NULL;
}

START_TEST(a_shared_stack_task_receives_into_the_heap)
{
    coro_xchan *c = coro_xchan_new(sizeof(long), 0);
    run_expect(shared_main, c, 0);
    ck_assert_int_eq(coro_xchan_free(c), 0);
}
END_TEST

/* ---------------------------------------------------------------------
 * Try, timeouts, cancellation
 * --------------------------------------------------------------------- */

START_TEST(try_calls_work_from_any_thread)
{
    coro_xchan *c = coro_xchan_new(sizeof(int), 2);
    int v = 1;
    ck_assert_int_eq(coro_xchan_try_recv(c, &v), EAGAIN);
    ck_assert_int_eq(coro_xchan_try_send(c, &v), 0);
    v = 2;
    ck_assert_int_eq(coro_xchan_try_send(c, &v), 0);
    ck_assert_int_eq(coro_xchan_try_send(c, &v), EAGAIN);
    ck_assert_uint_eq(coro_xchan_size(c), 2);
    ck_assert_int_eq(coro_xchan_close(c), 0);
    ck_assert_int_eq(coro_xchan_try_send(c, &v), EPIPE);
    ck_assert_int_eq(coro_xchan_try_recv(c, &v), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(coro_xchan_recv(c, &v, 0), 0);
    ck_assert_int_eq(v, 2);
    ck_assert_int_eq(coro_xchan_try_recv(c, &v), EPIPE);
    ck_assert_int_eq(coro_xchan_recv(c, &v, -1), EPIPE);
    ck_assert_int_eq(coro_xchan_free(c), 0);
}
END_TEST

START_TEST(a_thread_times_out)
{
    coro_xchan *c = coro_xchan_new(sizeof(int), 0);
    int v = 0;
    double t0 = coro_now();
    ck_assert_int_eq(coro_xchan_recv(c, &v, 0), ETIMEDOUT);
    ck_assert_int_eq(coro_xchan_send(c, &v, 0.02), ETIMEDOUT);
    ck_assert(coro_now() - t0 >= 0.019);
    /* The thread left the list: a try finds nobody. */
    ck_assert_int_eq(coro_xchan_try_recv(c, &v), EAGAIN);
    ck_assert_int_eq(coro_xchan_free(c), 0);
}
END_TEST

static void *task_timeout_main(void *arg)
{
    coro_xchan *c = arg;
    int v = 0;
    double t0 = coro_now();
    ck_assert_int_eq(await_xchan_recv(c, &v, 0.02), ETIMEDOUT);
    ck_assert(coro_now() - t0 >= 0.019);
    ck_assert_int_eq(await_xchan_send(c, &v, 0), ETIMEDOUT);
    ck_assert_int_eq(coro_xchan_try_send(c, &v), EAGAIN);
    return NULL;
}

START_TEST(a_task_times_out_and_leaves_the_channel)
{
    coro_xchan *c = coro_xchan_new(sizeof(int), 0);
    run_expect(task_timeout_main, c, 0);
    ck_assert_int_eq(coro_xchan_free(c), 0);
}
END_TEST

static void *parked_receiver(void *arg)
{
    int v;
    int err = await_xchan_recv(arg, &v, -1);
    return err ? coro_fail(err) : NULL;
}

static void *cancel_main(void *arg)
{
    coro_xchan *c = arg;
    coro_task *t = coro_spawn(parked_receiver, c);
    await_sleep(0.005);
    ck_assert_int_eq(coro_xchan_free(c), EBUSY);
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    int v = 7;
    ck_assert_int_eq(coro_xchan_try_send(c, &v), EAGAIN);
    return NULL;
}

START_TEST(a_cancelled_task_leaves_the_channel)
{
    coro_xchan *c = coro_xchan_new(sizeof(int), 0);
    run_expect(cancel_main, c, 0);
    ck_assert_int_eq(coro_xchan_free(c), 0);
}
END_TEST

/* The hand-off races the receiver's give-up, over and over: whatever
 * the sending thread was told it delivered, the task got, and nothing
 * else. */
enum { RACES = 400 };

struct race {
    coro_xchan *c;
    long        sent_ok;      /* sends that returned 0 */
    long        sent_sum;
    long        got_ok;
    long        got_sum;
    int         end_err;      /* what the send of the end returned */
};

static void *racing_sender(void *arg)
{
    struct race *r = arg;
    for (long i = 1; i <= RACES; i++) {
        if (coro_xchan_send(r->c, &i, 0.0002 * (double)(i % 5)) == 0) {
            r->sent_ok++;
            r->sent_sum += i;
        }
    }
    long end = -1;
    r->end_err = coro_xchan_send(r->c, &end, 10 * test_slow());
    return NULL;
}

static void *race_main(void *arg)
{
    struct race *r = arg;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, racing_sender, r), 0);
    /* Not for ever, should the sender be gone without its end. */
    double give_up = coro_now() + 30 * test_slow();
    int err;
    for (long i = 0;; i++) {
        long v;
        err = await_xchan_recv(r->c, &v, 0.0001 * (double)(i % 7));
        if (err == ETIMEDOUT && coro_now() < give_up)
            continue;
        if (err || v < 0)
            break;
        r->got_ok++;
        r->got_sum += v;
    }
    int joined = test_join(th, NULL, 20);
    err = err ? err : joined;
    return err ? coro_fail(err) : NULL;
}

START_TEST(an_element_handed_over_as_the_task_gives_up_is_not_lost)
{
    static struct race r;
    r = (struct race){ .c = coro_xchan_new(sizeof(long), 0), .end_err = -1 };
    run_expect(race_main, &r, 0);
    ck_assert_int_eq(r.end_err, 0);
    ck_assert_int_gt(r.sent_ok, 0);
    ck_assert_int_eq(r.sent_ok, r.got_ok);
    ck_assert_int_eq(r.sent_sum, r.got_sum);
    ck_assert_int_eq(coro_xchan_free(r.c), 0);
}
END_TEST

/* Messages that keep coming (the loop spins for them, and a spin that
 * catches one skips the kernel wait) must not keep the loop from its
 * fds: a task waiting on a pipe wakes when a byte comes, while another
 * task ping-pongs with a task of another loop as fast as they can. The
 * loop's tick looks at the fds every 64 switches while a task is ready,
 * which each message makes one. */
struct stream {
    coro_xchan *to_thread;
    coro_xchan *to_task;
    int         pipe[2];
    double      written;
    double      woke;
    int         stop;
    ssize_t     wrote;      /* what the writer's write returned */
};

static void *write_later(void *arg)
{
    struct stream *st = arg;
    sleep_ms(50);
    st->written = coro_now();
    st->wrote = write(st->pipe[1], "x", 1);
    return NULL;
}

static void *pipe_reader(void *arg)
{
    struct stream *st = arg;
    int err = await_readable(st->pipe[0], 10 * test_slow());
    st->woke = coro_now();
    st->stop = 1;
    return err ? coro_fail(err) : NULL;
}

static void *streamer(void *arg)
{
    struct stream *st = arg;
    long v = 0;
    while (!st->stop) {
        if (await_xchan_send(st->to_thread, &v, -1) != 0 ||
            await_xchan_recv(st->to_task, &v, -1) != 0)
            return coro_fail(EIO);
    }
    coro_xchan_close(st->to_thread);
    return NULL;
}

static void *stream_echo(void *arg)
{
    struct stream *st = arg;
    long v;
    while (await_xchan_recv(st->to_thread, &v, -1) == 0)
        if (await_xchan_send(st->to_task, &v, -1) != 0)
            return coro_fail(EIO);
    return NULL;
}

/* The echo is a task of a second loop, so that both sides may spin. */
static void *stream_main(void *arg)
{
    struct stream *st = arg;
    coro_loop *loops[2];
    ck_assert_uint_eq(coro_loops(loops, 2), 2);
    coro_future *echo;
    ck_assert_int_eq(coro_loop_submit(loops[1], stream_echo, st, &echo), 0);
    coro_task *r = coro_spawn(pipe_reader, st);
    coro_task *s = coro_spawn(streamer, st);
    pthread_t writer;
    ck_assert_int_eq(pthread_create(&writer, NULL, write_later, st), 0);
    /* The reader gives up in bounded time, and then the streamer stops
     * and closes, which ends the echo: no wait here is for ever. */
    int reader_err = await_task(r, NULL);
    int streamed = await_task(s, NULL);
    int echoed = await_future(echo, -1, NULL);
    ck_assert_int_eq(test_join(writer, NULL, 10), 0);
    ck_assert_int_eq(st->wrote, 1);
    ck_assert_int_eq(reader_err, 0);
    ck_assert_int_eq(streamed, 0);
    ck_assert_int_eq(echoed, 0);
    return NULL;
}

START_TEST(a_stream_of_messages_does_not_starve_the_fds)
{
    static struct stream st;
    st = (struct stream){ .to_thread = coro_xchan_new(sizeof(long), 0),
                          .to_task = coro_xchan_new(sizeof(long), 0),
                          .wrote = -1 };
    ck_assert_int_eq(pipe(st.pipe), 0);
    ck_assert_int_eq(coro_run_loops(2, stream_main, &st, NULL), 0);
    ck_assert_msg(st.woke - st.written < 1.0 * test_slow(),
                  "the reader woke %.3f s after the write",
                  st.woke - st.written);
    close(st.pipe[0]);
    close(st.pipe[1]);
    ck_assert_int_eq(coro_xchan_free(st.to_thread), 0);
    ck_assert_int_eq(coro_xchan_free(st.to_task), 0);
}
END_TEST

/* ---------------------------------------------------------------------
 * Close, from either side
 * --------------------------------------------------------------------- */

static void *close_later(void *arg)
{
    sleep_ms(10);
    atomic_store(&later_err, coro_xchan_close(arg));
    return NULL;
}

static void *closed_under_task_main(void *arg)
{
    coro_xchan *c = arg;
    pthread_t th;
    int v = 5;
    ck_assert_int_eq(await_xchan_send(c, &v, -1), 0); /* buffered */
    atomic_store(&later_err, -1);
    ck_assert_int_eq(pthread_create(&th, NULL, close_later, c), 0);
    /* A sender waiting on the full buffer is refused by the close. */
    int sent = await_xchan_send(c, &v, 10 * test_slow());
    ck_assert_int_eq(test_join(th, NULL, 10), 0);
    int closed = atomic_load(&later_err);
    ck_assert_int_eq(closed, 0);
    ck_assert_int_eq(sent, EPIPE);
    /* A receiver drains what is buffered, then EPIPE. */
    v = 0;
    ck_assert_int_eq(await_xchan_recv(c, &v, -1), 0);
    ck_assert_int_eq(v, 5);
    ck_assert_int_eq(await_xchan_recv(c, &v, -1), EPIPE);
    return NULL;
}

START_TEST(a_close_from_a_thread_reaches_a_parked_task)
{
    coro_xchan *c = coro_xchan_new(sizeof(int), 1);
    run_expect(closed_under_task_main, c, 0);
    ck_assert_int_eq(coro_xchan_free(c), 0);
}
END_TEST

static void *parked_recv_main(void *arg)
{
    pthread_t th;
    int v;
    atomic_store(&later_err, -1);
    ck_assert_int_eq(pthread_create(&th, NULL, close_later, arg), 0);
    int got = await_xchan_recv(arg, &v, 10 * test_slow());
    ck_assert_int_eq(test_join(th, NULL, 10), 0);
    int closed = atomic_load(&later_err);
    ck_assert_int_eq(closed, 0);
    ck_assert_int_eq(got, EPIPE);
    return NULL;
}

START_TEST(a_close_from_a_thread_reaches_a_parked_receiver)
{
    coro_xchan *c = coro_xchan_new(sizeof(int), 0);
    run_expect(parked_recv_main, c, 0);
    ck_assert_int_eq(coro_xchan_free(c), 0);
}
END_TEST

struct blocked {
    coro_xchan *c;
    int         send_err;
    int         recv_err;
};

static void *blocked_sender(void *arg)
{
    struct blocked *b = arg;
    int v = 1;
    b->send_err = coro_xchan_send(b->c, &v, -1);
    return NULL;
}

static void *blocked_receiver(void *arg)
{
    struct blocked *b = arg;
    int v;
    b->recv_err = coro_xchan_recv(b->c, &v, -1);
    return NULL;
}

static void *task_closes_main(void *arg)
{
    struct blocked *b = arg;
    await_sleep(0.01);
    ck_assert_int_eq(coro_xchan_close(b->c), 0);
    return NULL;
}

START_TEST(a_close_from_a_task_reaches_blocked_threads)
{
    static struct blocked s, r;
    s = (struct blocked){ .c = coro_xchan_new(sizeof(int), 0) };
    r = (struct blocked){ .c = coro_xchan_new(sizeof(int), 0) };
    pthread_t ts, tr;
    ck_assert_int_eq(pthread_create(&ts, NULL, blocked_sender, &s), 0);
    ck_assert_int_eq(pthread_create(&tr, NULL, blocked_receiver, &r), 0);
    run_expect(task_closes_main, &s, 0);
    run_expect(task_closes_main, &r, 0);
    ck_assert_int_eq(test_join(ts, NULL, 10), 0);
    ck_assert_int_eq(test_join(tr, NULL, 10), 0);
    ck_assert_int_eq(s.send_err, EPIPE);
    ck_assert_int_eq(r.recv_err, EPIPE);
    ck_assert_int_eq(coro_xchan_free(s.c), 0);
    ck_assert_int_eq(coro_xchan_free(r.c), 0);
}
END_TEST

/* ---------------------------------------------------------------------
 * Bad input
 * --------------------------------------------------------------------- */

static void *bad_main(void *arg)
{
    coro_xchan *c = arg;
    int v = 0;
    ck_assert_int_eq(await_xchan_send(NULL, &v, -1), EINVAL);
    ck_assert_int_eq(await_xchan_recv(c, NULL, -1), EINVAL);
    ck_assert_int_eq(await_xchan_recv(c, &v, NAN), EINVAL);
    /* A loop's thread must not block. */
    ck_assert_int_eq(coro_xchan_send(c, &v, -1), EPERM);
    ck_assert_int_eq(coro_xchan_recv(c, &v, -1), EPERM);
    ck_assert_int_eq(coro_xchan_try_send(c, &v), EAGAIN);
    coro_cancel(coro_self());
    ck_assert_int_eq(await_xchan_recv(c, &v, -1), ECANCELED);
    return NULL;
}

START_TEST(xchan_bad_input)
{
    errno = 0;
    ck_assert_ptr_null(coro_xchan_new(0, 1));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(coro_xchan_new((size_t)1 << 21, 1));
    ck_assert_ptr_null(coro_xchan_new(1 << 20, (size_t)1 << 20));
    atomic_store(&coro__alloc_stats.fail_every, 1);
    errno = 0;
    coro_xchan *none = coro_xchan_new(4, 4);
    atomic_store(&coro__alloc_stats.fail_every, 0);
    ck_assert_ptr_null(none);
    ck_assert_int_eq(errno, ENOMEM);
    coro_xchan *c = coro_xchan_new(sizeof(int), 0);
    int v = 0;
    ck_assert_int_eq(await_xchan_send(c, &v, -1), EPERM);
    ck_assert_int_eq(coro_xchan_send(NULL, &v, -1), EINVAL);
    ck_assert_int_eq(coro_xchan_recv(c, &v, NAN), EINVAL);
    ck_assert_int_eq(coro_xchan_try_send(NULL, &v), EINVAL);
    ck_assert_int_eq(coro_xchan_try_recv(c, NULL), EINVAL);
    ck_assert_int_eq(coro_xchan_close(NULL), EINVAL);
    ck_assert_uint_eq(coro_xchan_size(NULL), 0);
    ck_assert_int_eq(coro_xchan_free(NULL), 0);
    run_expect(bad_main, c, ECANCELED);
    ck_assert_int_eq(coro_xchan_free(c), 0);
}
END_TEST

/* A plain thread's blocking calls with timeouts at the ends of the
 * doubles: an element that comes later is taken, whatever the timeout
 * (the conversion to a clock time neither overflows nor gives up), and
 * the smallest ones only try. */
static void *send_in_20_ms(void *arg)
{
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    int v = 9;
    ck_assert_int_eq(coro_xchan_send(arg, &v, -1), 0);
    return NULL;
}

START_TEST(blocking_calls_take_any_timeout_but_nan)
{
    coro_xchan *c = coro_xchan_new(sizeof(int), 1);
    const double forever[] = { -INFINITY, -DBL_MAX, -1, 9.3e9, 9.3e18,
                               1e300, DBL_MAX, INFINITY };
    for (size_t i = 0; i < sizeof forever / sizeof *forever; i++) {
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, send_in_20_ms, c), 0);
        int v = 0;
        ck_assert_int_eq(coro_xchan_recv(c, &v, forever[i]), 0);
        ck_assert_int_eq(v, 9);
        pthread_join(th, NULL);
    }
    int v = 1;
    const double tries[] = { 0, -0.0, 5e-324, 1e-300, 1e-9 };
    for (size_t i = 0; i < sizeof tries / sizeof *tries; i++) {
        ck_assert_int_eq(coro_xchan_recv(c, &v, tries[i]), ETIMEDOUT);
        ck_assert_int_eq(coro_xchan_send(c, &v, tries[i]), 0);
        ck_assert_int_eq(coro_xchan_send(c, &v, tries[i]), ETIMEDOUT);
        ck_assert_int_eq(coro_xchan_recv(c, &v, tries[i]), 0);
    }
    ck_assert_int_eq(coro_xchan_send(c, &v, -NAN), EINVAL);
    ck_assert_int_eq(coro_xchan_size(c), 0);
    ck_assert_int_eq(coro_xchan_free(c), 0);
}
END_TEST

/* ---------------------------------------------------------------------
 * Churn: ten producer threads and two producer tasks against two
 * consumer threads and six consumer tasks on two loops, all with short
 * timeouts that make them give up and try again, through one small
 * buffer. Every value comes out exactly once.
 * --------------------------------------------------------------------- */

enum {
    CHURN_PRODUCER_THREADS = 10,
    CHURN_PRODUCER_TASKS = 2,
    CHURN_CONSUMER_THREADS = 2,
    CHURN_CONSUMER_TASKS = 6,
    CHURN_EACH = 300,
    CHURN_VALUES = (CHURN_PRODUCER_THREADS + CHURN_PRODUCER_TASKS) *
                   CHURN_EACH
};

struct churn {
    coro_xchan      *c;
    struct side_loop sides[2];
    atomic_uchar     seen[CHURN_VALUES];
    atomic_long      dup;
    atomic_long      got;
    atomic_long      bad;
    double           give_up;   /* no one retries past it */
};

static struct churn churn;

static void churn_got(long v, int err)
{
    if (err) {
        atomic_fetch_add(&churn.bad, 1);
        return;
    }
    if (v < 0 || v >= CHURN_VALUES) {
        atomic_fetch_add(&churn.bad, 1);
        return;
    }
    if (atomic_fetch_add(&churn.seen[v], 1) != 0)
        atomic_fetch_add(&churn.dup, 1);
    atomic_fetch_add(&churn.got, 1);
}

static void *churn_producer_thread(void *arg)
{
    long base = (long)(intptr_t)arg * CHURN_EACH;
    for (long i = 0; i < CHURN_EACH; i++) {
        long v = base + i;
        int err;
        while ((err = coro_xchan_send(churn.c, &v, 0.0005)) == ETIMEDOUT &&
               coro_now() < churn.give_up)
            ;
        if (err) {
            atomic_fetch_add(&churn.bad, 1);
            if (err == ETIMEDOUT)
                break;
        }
    }
    return NULL;
}

static void *churn_producer_task(void *arg)
{
    long base = (long)(intptr_t)arg * CHURN_EACH;
    for (long i = 0; i < CHURN_EACH; i++) {
        long v = base + i;
        int err;
        while ((err = await_xchan_send(churn.c, &v, 0.0005)) == ETIMEDOUT &&
               coro_now() < churn.give_up)
            ;
        if (err)
            return coro_fail(err);
    }
    return NULL;
}

static void *churn_consumer_thread(void *arg)
{
    (void)arg;
    for (;;) {
        long v;
        int err = coro_xchan_recv(churn.c, &v, 0.0003);
        if (err == ETIMEDOUT && coro_now() < churn.give_up)
            continue;
        if (err == EPIPE)
            return NULL;
        churn_got(v, err);
        if (err == ETIMEDOUT)
            return NULL;
    }
}

static void *churn_consumer_task(void *arg)
{
    (void)arg;
    for (;;) {
        long v;
        int err = await_xchan_recv(churn.c, &v, 0.0003);
        if (err == ETIMEDOUT && coro_now() < churn.give_up)
            continue;
        if (err == EPIPE)
            return NULL;
        churn_got(v, err);
        if (err == ETIMEDOUT)
            return coro_fail(err);
    }
}

START_TEST(nothing_is_lost_or_duplicated_under_a_ten_thread_churn)
{
    memset(&churn, 0, sizeof churn);
    churn.give_up = coro_now() + 60 * test_slow();
    churn.c = coro_xchan_new(sizeof(long), 3);
    side_loop_start(&churn.sides[0]);
    side_loop_start(&churn.sides[1]);
    coro_future *consumers[CHURN_CONSUMER_TASKS];
    coro_future *producers[CHURN_PRODUCER_TASKS];
    for (int i = 0; i < CHURN_CONSUMER_TASKS; i++)
        ck_assert_int_eq(coro_loop_submit(churn.sides[i % 2].loop,
                                          churn_consumer_task, NULL,
                                          &consumers[i]),
                         0);
    for (int i = 0; i < CHURN_PRODUCER_TASKS; i++)
        ck_assert_int_eq(
            coro_loop_submit(churn.sides[i % 2].loop, churn_producer_task,
                             (void *)(intptr_t)(CHURN_PRODUCER_THREADS + i),
                             &producers[i]),
            0);
    pthread_t pt[CHURN_PRODUCER_THREADS], ct[CHURN_CONSUMER_THREADS];
    for (intptr_t i = 0; i < CHURN_PRODUCER_THREADS; i++)
        ck_assert_int_eq(pthread_create(&pt[i], NULL, churn_producer_thread,
                                        (void *)i),
                         0);
    for (int i = 0; i < CHURN_CONSUMER_THREADS; i++)
        ck_assert_int_eq(pthread_create(&ct[i], NULL, churn_consumer_thread,
                                        NULL),
                         0);
    /* Everyone gives up at churn.give_up: these waits are bounded. */
    for (int i = 0; i < CHURN_PRODUCER_THREADS; i++)
        ck_assert_int_eq(test_join(pt[i], NULL, 70), 0);
    for (int i = 0; i < CHURN_PRODUCER_TASKS; i++)
        ck_assert_int_eq(coro_future_wait(producers[i], 70 * test_slow(),
                                          NULL),
                         0);
    ck_assert_int_eq(coro_xchan_close(churn.c), 0);
    for (int i = 0; i < CHURN_CONSUMER_THREADS; i++)
        ck_assert_int_eq(test_join(ct[i], NULL, 70), 0);
    for (int i = 0; i < CHURN_CONSUMER_TASKS; i++)
        ck_assert_int_eq(coro_future_wait(consumers[i], 70 * test_slow(),
                                          NULL),
                         0);
    ck_assert_int_eq(side_loop_stop(&churn.sides[0]), 0);
    ck_assert_int_eq(side_loop_stop(&churn.sides[1]), 0);
    ck_assert_int_eq(atomic_load(&churn.bad), 0);
    ck_assert_int_eq(atomic_load(&churn.dup), 0);
    ck_assert_int_eq(atomic_load(&churn.got), CHURN_VALUES);
    ck_assert_int_eq(coro_xchan_free(churn.c), 0);
}
END_TEST

Suite *xchan_suite(void)
{
    Suite *s = suite_create("xchan");
    TCase *tc = test_case("across", 20);
    tcase_add_test(tc, a_task_and_a_thread_ping_pong_through_rendezvous_channels);
    tcase_add_test(tc, two_loops_exchange_through_a_buffered_channel_in_order);
    tcase_add_test(tc, a_shared_stack_task_receives_into_the_heap);
    suite_add_tcase(s, tc);

    tc = test_case("waits", 20);
    tcase_add_test(tc, try_calls_work_from_any_thread);
    tcase_add_test(tc, a_thread_times_out);
    tcase_add_test(tc, a_task_times_out_and_leaves_the_channel);
    tcase_add_test(tc, a_cancelled_task_leaves_the_channel);
    tcase_add_test(tc, an_element_handed_over_as_the_task_gives_up_is_not_lost);
    tcase_add_test(tc, a_stream_of_messages_does_not_starve_the_fds);
    suite_add_tcase(s, tc);

    tc = test_case("close", 20);
    tcase_add_test(tc, a_close_from_a_thread_reaches_a_parked_task);
    tcase_add_test(tc, a_close_from_a_thread_reaches_a_parked_receiver);
    tcase_add_test(tc, a_close_from_a_task_reaches_blocked_threads);
    suite_add_tcase(s, tc);

    tc = test_case("errors", 10);
    tcase_add_test(tc, xchan_bad_input);
    tcase_add_test(tc, blocking_calls_take_any_timeout_but_nan);
    suite_add_tcase(s, tc);

    tc = test_case("churn", 90);
    tcase_add_test(tc, nothing_is_lost_or_duplicated_under_a_ten_thread_churn);
    suite_add_tcase(s, tc);
    return s;
}
