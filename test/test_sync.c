/* Coordination: channels and select, queues (FIFO, LIFO, priority), mutex,
 * semaphore, event, condition, barrier. Ordering and fairness, capacity,
 * close and shutdown, timeouts, cancellation of a waiter at each call,
 * waits on the shared stack, producer/consumer at scale, deadlocks. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "helpers.h"
#include "internal.h"

#define TOKEN(i) ((void *)(uintptr_t)(i))

/* ---------------------------------------------------------------------- */
/* Channels                                                               */
/* ---------------------------------------------------------------------- */

struct chan_arg {
    coro_chan *c;
    int        value;
    int        err;
    double     timeout;
};

static void *sender(void *arg)
{
    struct chan_arg *a = arg;
    trace("send%d", a->value);
    a->err = await_chan_send(a->c, &a->value, a->timeout);
    trace("sent%d:%d", a->value, a->err);
    return NULL;
}

static void *receiver(void *arg)
{
    struct chan_arg *a = arg;
    a->err = await_chan_recv(a->c, &a->value, a->timeout);
    trace("got%d:%d", a->value, a->err);
    return NULL;
}

static void *rendezvous_main(void *arg)
{
    (void)arg;
    coro_chan *c = coro_chan_new(sizeof(int), 0);
    struct chan_arg s = { c, 7, -1, -1 }, r = { c, 0, -1, -1 };
    coro_task *st = coro_spawn(sender, &s);
    await_sleep(0.01);
    trace("recv");
    coro_task *rt = coro_spawn(receiver, &r);
    coro_task *t[2] = { st, rt };
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), 0);
    ck_assert_int_eq(r.value, 7);
    /* Nothing buffered in a rendezvous: trying is EAGAIN both ways. */
    int v = 1;
    ck_assert_int_eq(coro_chan_try_send(c, &v), EAGAIN);
    ck_assert_int_eq(coro_chan_try_recv(c, &v), EAGAIN);
    ck_assert_int_eq(coro_chan_free(c), 0);
    return NULL;
}

/* Capacity 0: the sender waits until a receiver takes the element. */
START_TEST(rendezvous_send_waits_for_a_receiver)
{
    run_expect(rendezvous_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "send7 recv got7:0 sent7:0");
}
END_TEST

static void *buffered_main(void *arg)
{
    (void)arg;
    coro_chan *c = coro_chan_new(sizeof(int), 3);
    for (int i = 1; i <= 3; i++)
        ck_assert_int_eq(await_chan_send(c, &i, -1), 0); /* no wait */
    int v = 4;
    ck_assert_int_eq(coro_chan_try_send(c, &v), EAGAIN);
    ck_assert_int_eq(await_chan_send(c, &v, 0), ETIMEDOUT);
    double t0 = coro_now();
    ck_assert_int_eq(await_chan_send(c, &v, 0.02), ETIMEDOUT);
    ck_assert_double_ge(coro_now() - t0, 0.02);
    /* A blocked sender's element follows the buffered ones. */
    struct chan_arg s = { c, 4, -1, -1 };
    coro_task *st = coro_spawn(sender, &s);
    await_yield();
    for (int i = 1; i <= 4; i++) {
        ck_assert_int_eq(coro_chan_try_recv(c, &v), 0);
        ck_assert_int_eq(v, i);
    }
    ck_assert_int_eq(await_task(st, NULL), 0);
    ck_assert_int_eq(s.err, 0);
    ck_assert_int_eq(coro_chan_try_recv(c, &v), EAGAIN);
    ck_assert_int_eq(await_chan_recv(c, &v, 0), ETIMEDOUT);
    ck_assert_int_eq(coro_chan_free(c), 0);
    return NULL;
}

START_TEST(buffered_channel_holds_capacity_elements)
{
    run_expect(buffered_main, NULL, 0);
}
END_TEST

static void *fifo_main(void *arg)
{
    (void)arg;
    coro_chan *c = coro_chan_new(sizeof(int), 0);
    struct chan_arg r[3];
    coro_task *t[3];
    for (int i = 0; i < 3; i++) {
        r[i] = (struct chan_arg){ c, -1, -1, -1 };
        t[i] = coro_spawn(receiver, &r[i]);
    }
    await_yield(); /* all three wait, in order */
    for (int i = 10; i < 13; i++)
        ck_assert_int_eq(await_chan_send(c, &i, -1), 0);
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(r[i].value, 10 + i);
    /* And waiting senders are served in order too. */
    struct chan_arg s[3];
    for (int i = 0; i < 3; i++) {
        s[i] = (struct chan_arg){ c, 20 + i, -1, -1 };
        t[i] = coro_spawn(sender, &s[i]);
    }
    await_yield();
    for (int i = 0; i < 3; i++) {
        int v;
        ck_assert_int_eq(await_chan_recv(c, &v, -1), 0);
        ck_assert_int_eq(v, 20 + i);
    }
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), 0);
    coro_chan_free(c);
    return NULL;
}

/* Waiting receivers and senders are served first come, first served. */
START_TEST(channel_waiters_are_served_in_fifo_order)
{
    run_expect(fifo_main, NULL, 0);
}
END_TEST

static void *close_main(void *arg)
{
    (void)arg;
    coro_chan *c = coro_chan_new(sizeof(int), 2);
    int v = 1;
    ck_assert_int_eq(coro_chan_try_send(c, &v), 0);
    v = 2;
    ck_assert_int_eq(coro_chan_try_send(c, &v), 0);
    struct chan_arg s = { c, 3, -1, -1 };
    coro_task *st = coro_spawn(sender, &s);
    await_yield(); /* blocked: the buffer is full */
    ck_assert_int_eq(coro_chan_close(c), 0);
    ck_assert_int_eq(coro_chan_close(c), EPIPE);
    ck_assert_int_eq(await_task(st, NULL), 0);
    ck_assert_int_eq(s.err, EPIPE); /* its element is not delivered */
    ck_assert_int_eq(await_chan_send(c, &v, -1), EPIPE);
    ck_assert_int_eq(coro_chan_try_send(c, &v), EPIPE);
    /* Receivers drain what is buffered, then get EPIPE. */
    ck_assert_int_eq(await_chan_recv(c, &v, -1), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(coro_chan_try_recv(c, &v), 0);
    ck_assert_int_eq(v, 2);
    ck_assert_int_eq(await_chan_recv(c, &v, -1), EPIPE);
    ck_assert_int_eq(coro_chan_try_recv(c, &v), EPIPE);
    coro_chan_free(c);
    /* A receiver waiting when the channel closes gets EPIPE. */
    c = coro_chan_new(sizeof(int), 0);
    struct chan_arg r = { c, -1, -1, -1 };
    coro_task *rt = coro_spawn(receiver, &r);
    await_yield();
    coro_chan_close(c);
    ck_assert_int_eq(await_task(rt, NULL), 0);
    ck_assert_int_eq(r.err, EPIPE);
    coro_chan_free(c);
    return NULL;
}

START_TEST(close_drains_then_refuses)
{
    run_expect(close_main, NULL, 0);
}
END_TEST

static void *cancel_receiver_main(void *arg)
{
    (void)arg;
    coro_chan *c = coro_chan_new(sizeof(int), 0);
    struct chan_arg r1 = { c, -1, -1, -1 }, r2 = { c, -1, -1, -1 };
    coro_task *t1 = coro_spawn(receiver, &r1);
    await_yield();
    coro_cancel(t1);
    coro_task *t2 = coro_spawn(receiver, &r2);
    await_yield();
    int v = 42;
    ck_assert_int_eq(await_chan_send(c, &v, 1), 0);
    ck_assert_int_eq(await_task(t1, NULL), ECANCELED);
    ck_assert_int_eq(await_task(t2, NULL), 0);
    ck_assert_int_eq(r1.err, ECANCELED);
    ck_assert_int_eq(r2.err, 0);
    ck_assert_int_eq(r2.value, 42); /* not lost with the cancelled one */
    /* A sender cancelled while waiting: its element never arrives. */
    struct chan_arg s = { c, 5, -1, -1 };
    coro_task *st = coro_spawn(sender, &s);
    await_yield();
    coro_cancel(st);
    await_task(st, NULL);
    ck_assert_int_eq(s.err, ECANCELED);
    ck_assert_int_eq(coro_chan_try_recv(c, &v), EAGAIN);
    /* Cancelled before: nothing is sent, even to a waiting receiver. */
    coro_task *t3 = coro_spawn(receiver, &r1);
    await_yield();
    coro_cancel(coro_self());
    ck_assert_int_eq(await_chan_send(c, &v, 1), ECANCELED);
    ck_assert_int_eq(await_chan_recv(c, &v, 1), ECANCELED);
    coro_cancel(t3);
    coro_shield(1);
    await_task(t3, NULL);
    ck_assert_int_eq(coro_chan_free(c), 0);
    return NULL;
}

/* A cancelled receiver never loses a message: it stays for the next. */
START_TEST(cancelled_channel_waiters_leave_cleanly)
{
    ck_assert_int_eq(coro_run(cancel_receiver_main, NULL, NULL), ECANCELED);
}
END_TEST

static void *select_main(void *arg)
{
    (void)arg;
    coro_chan *a = coro_chan_new(sizeof(int), 1);
    coro_chan *b = coro_chan_new(sizeof(int), 1);
    int va = 0, vb = 0, one = 1, two = 2;
    size_t chosen = 99;
    coro_chan_op ops[2] = { { a, 0, &va }, { b, 0, &vb } };
    /* Both ready: the first in array order wins. */
    coro_chan_try_send(a, &one);
    coro_chan_try_send(b, &two);
    ck_assert_int_eq(await_select(ops, 2, -1, &chosen), 0);
    ck_assert_uint_eq(chosen, 0);
    ck_assert_int_eq(va, 1);
    ck_assert_int_eq(await_select(ops, 2, -1, &chosen), 0);
    ck_assert_uint_eq(chosen, 1);
    ck_assert_int_eq(vb, 2);
    /* None ready: waits until one is. */
    struct chan_arg s = { b, 9, -1, -1 };
    coro_task *st = coro_spawn(sender, &s);
    chosen = 99;
    ck_assert_int_eq(await_select(ops, 2, 5, &chosen), 0);
    ck_assert_uint_eq(chosen, 1);
    ck_assert_int_eq(vb, 9);
    await_task(st, NULL);
    /* A send op, and a timeout that leaves *chosen alone. */
    coro_chan_try_send(a, &one); /* a is full now */
    coro_chan_op full[1] = { { a, 1, &two } };
    chosen = 99;
    ck_assert_int_eq(await_select(full, 1, 0.01, &chosen), ETIMEDOUT);
    ck_assert_uint_eq(chosen, 99);
    coro_chan_op mixed[2] = { { a, 1, &two }, { b, 1, &two } };
    ck_assert_int_eq(await_select(mixed, 2, -1, &chosen), 0);
    ck_assert_uint_eq(chosen, 1);
    /* A chosen op on a closed channel is EPIPE. */
    coro_chan *closed = coro_chan_new(sizeof(int), 0);
    coro_chan_close(closed);
    coro_chan_op shut[2] = { { closed, 0, &va }, { a, 0, &va } };
    ck_assert_int_eq(await_select(shut, 2, -1, &chosen), EPIPE);
    ck_assert_uint_eq(chosen, 0);
    ck_assert_int_eq(await_select(ops, 0, -1, &chosen), EINVAL);
    ck_assert_int_eq(await_select(ops, 2, -1, NULL), EINVAL);
    coro_chan_free(a);
    coro_chan_free(b);
    coro_chan_free(closed);
    return NULL;
}

START_TEST(select_picks_the_first_ready_op)
{
    run_expect(select_main, NULL, 0);
}
END_TEST

struct select_arg {
    coro_chan **chans;
    size_t      n;
    int         value;
    size_t      chosen;
    int         err;
};

static void *selector(void *arg)
{
    struct select_arg *s = arg;
    coro_chan_op ops[16];
    for (size_t i = 0; i < s->n; i++)
        ops[i] = (coro_chan_op){ s->chans[i], 0, &s->value };
    s->err = await_select(ops, s->n, 5, &s->chosen);
    return NULL;
}

static void *select_many_main(void *arg)
{
    (void)arg;
    enum { N = 12 };
    coro_chan *chans[N];
    for (int i = 0; i < N; i++)
        chans[i] = coro_chan_new(sizeof(int), 0);
    struct select_arg s = { chans, N, -1, 99, -1 };
    coro_task *t = coro_spawn(selector, &s);
    await_yield();
    int v = 77;
    ck_assert_int_eq(await_chan_send(chans[10], &v, 1), 0);
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_int_eq(s.err, 0);
    ck_assert_uint_eq(s.chosen, 10);
    ck_assert_int_eq(s.value, 77);
    /* The select left every other channel: nobody waits on them. */
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(coro_chan_free(chans[i]), 0);
    /* Cancelled while selecting: it leaves all its channels too. */
    for (int i = 0; i < N; i++)
        chans[i] = coro_chan_new(sizeof(int), 0);
    t = coro_spawn(selector, &s);
    await_yield();
    coro_cancel(t);
    await_task(t, NULL);
    ck_assert_int_eq(s.err, ECANCELED);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(coro_chan_free(chans[i]), 0);
    return NULL;
}

START_TEST(select_over_many_channels_leaves_the_others)
{
    run_expect(select_many_main, NULL, 0);
}
END_TEST

/* The reproduction: a select parked on the shared stack while
 * another shared-stack task writes all over that stack. The select's
 * records must not be there. */
static coro_chan *shared_a, *shared_b;
static int shared_va, shared_vb;
static coro_chan_op shared_ops[2];
static size_t shared_chosen;
static int shared_err;

static void *shared_selector(void *arg)
{
    (void)arg;
    shared_ops[0] = (coro_chan_op){ shared_a, 0, &shared_va };
    shared_ops[1] = (coro_chan_op){ shared_b, 0, &shared_vb };
    shared_err = await_select(shared_ops, 2, -1, &shared_chosen);
    return NULL;
}

static void *shared_scribbler(void *arg)
{
    (void)arg;
    volatile char big[8192];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = 0x41;
    await_yield();
    return (void *)(uintptr_t)big[100];
}

static void *shared_sender(void *arg)
{
    (void)arg;
    static int v = 7;
    await_sleep(0.01);
    return (void *)(uintptr_t)await_chan_send(shared_a, &v, -1);
}

static void *select_shared_main(void *arg)
{
    (void)arg;
    shared_a = coro_chan_new(sizeof(int), 0);
    shared_b = coro_chan_new(sizeof(int), 0);
    shared_err = -1;
    coro_attr sh = { .flags = CORO_SHARED_STACK };
    coro_task *t[3] = { coro_spawn_attr(&sh, shared_selector, NULL),
                        coro_spawn_attr(&sh, shared_scribbler, NULL),
                        coro_spawn(shared_sender, NULL) };
    void *res[3];
    ck_assert_int_eq(await_gather(t, 3, res, NULL), 0);
    ck_assert_int_eq(shared_err, 0);
    ck_assert_uint_eq(shared_chosen, 0);
    ck_assert_int_eq(shared_va, 7);
    ck_assert_ptr_eq(res[1], (void *)0x41);
    ck_assert_ptr_null(res[2]);
    ck_assert_int_eq(coro_chan_free(shared_a), 0);
    ck_assert_int_eq(coro_chan_free(shared_b), 0);
    return NULL;
}

START_TEST(select_parked_on_the_shared_stack_survives_other_tasks)
{
    run_expect(select_shared_main, NULL, 0);
}
END_TEST

/* A select abandoned where it waits (shielded, when main returns, with
 * nothing left that could wake it) leaves nothing allocated: the fuzzer's
 * select-abandoned-leak. */
static coro_chan *abandoned[10];

static void *shielded_selector(void *arg)
{
    (void)arg;
    static int v;
    static coro_chan_op ops[10];
    for (int i = 0; i < 10; i++)
        ops[i] = (coro_chan_op){ abandoned[i], 0, &v };
    coro_shield(1);
    size_t chosen;
    await_select(ops, 10, -1, &chosen); /* never returns */
    return NULL;
}

static void *abandon_select_main(void *arg)
{
    (void)arg;
    coro_spawn(shielded_selector, NULL);
    await_yield();
    return NULL;
}

START_TEST(a_select_abandoned_in_a_deadlock_leaks_nothing)
{
    for (int i = 0; i < 10; i++)
        abandoned[i] = coro_chan_new(sizeof(int), 0);
    run_expect(abandon_select_main, NULL, 0);
    /* Its waiters were taken off the channels with it. */
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(coro_chan_free(abandoned[i]), 0);
}
END_TEST

static void *chan_errors_main(void *arg)
{
    (void)arg;
    int v = 0;
    ck_assert_int_eq(await_chan_send(NULL, &v, 1), EINVAL);
    ck_assert_int_eq(await_chan_recv(NULL, &v, 1), EINVAL);
    coro_chan *c = coro_chan_new(sizeof v, 0);
    ck_assert_int_eq(await_chan_send(c, NULL, 1), EINVAL);
    ck_assert_int_eq(await_chan_recv(c, &v, NAN), EINVAL);
    struct chan_arg r = { c, -1, -1, -1 };
    coro_task *t = coro_spawn(receiver, &r);
    await_yield();
    ck_assert_int_eq(coro_chan_free(c), EBUSY);
    coro_chan_close(c);
    await_task(t, NULL);
    ck_assert_int_eq(coro_chan_free(c), 0);
    return NULL;
}

START_TEST(channel_bad_input)
{
    errno = 0;
    ck_assert_ptr_null(coro_chan_new(0, 4));
    ck_assert_int_eq(errno, EINVAL);
    /* Too large a buffer or element is refused, never tried. */
    const size_t bad[][2] = { { SIZE_MAX / 2, 4 }, { SIZE_MAX, 1 },
                              { 1, SIZE_MAX }, { (1 << 20) + 1, 0 },
                              { 8, (1 << 27) + 1 } };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        errno = 0;
        ck_assert_ptr_null(coro_chan_new(bad[i][0], bad[i][1]));
        ck_assert_int_eq(errno, EINVAL);
    }
    coro_chan *big = coro_chan_new(1 << 20, 0);
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(coro_chan_free(big), 0);
    ck_assert_int_eq(coro_chan_free(NULL), 0);
    run_expect(chan_errors_main, NULL, 0);
    /* Outside a coroutine: try_* work, await_* are EPERM. */
    coro_chan *c = coro_chan_new(sizeof(int), 1);
    int v = 3;
    ck_assert_int_eq(coro_chan_try_send(c, &v), 0);
    ck_assert_int_eq(await_chan_send(c, &v, 1), EPERM);
    ck_assert_int_eq(await_chan_recv(c, &v, 1), EPERM);
    ck_assert_int_eq(coro_chan_try_recv(c, &v), 0);
    ck_assert_int_eq(v, 3);
    coro_chan_free(c);
}
END_TEST

/* An object belongs to the thread of the first loop that uses it: another
 * thread's loop, or a thread without one, gets EINVAL, decided without
 * reading anything the owner's tasks write (ThreadSanitizer watches this
 * test: the owner's receiver keeps joining and leaving the wait list while
 * the other thread knocks). */
static coro_chan *shared_chan;
static atomic_int owner_claimed, knocks_done;
/* Both threads of the test call no ck_assert (in Check's no-fork mode,
 * valgrind's, a failure there would jump into the test's thread): the
 * line of the first check that failed, asserted after the joins. */
static atomic_int other_failed;

#define OTHER_CHECK(c)                                                     \
    do {                                                                   \
        if (!(c) && !atomic_load(&other_failed))                           \
            atomic_store(&other_failed, __LINE__);                         \
    } while (0)

static void *keep_waiting(void *arg)
{
    (void)arg;
    int v;
    while (!atomic_load(&knocks_done))
        OTHER_CHECK(await_chan_recv(shared_chan, &v, 0.001) == ETIMEDOUT);
    return NULL;
}

static void *owner_main(void *arg)
{
    (void)arg;
    int v;
    OTHER_CHECK(coro_chan_try_recv(shared_chan, &v) == EAGAIN);
    atomic_store(&owner_claimed, 1);
    return await_task(coro_spawn(keep_waiting, NULL), NULL) ? TOKEN(1)
                                                            : NULL;
}

static void *owner_thread(void *arg)
{
    (void)arg;
    return TOKEN(coro_run(owner_main, NULL, NULL));
}

static void *foreign_main(void *arg)
{
    (void)arg;
    int v = 1;
    for (int i = 0; i < 200; i++) {
        OTHER_CHECK(coro_chan_try_send(shared_chan, &v) == EINVAL);
        OTHER_CHECK(await_chan_send(shared_chan, &v, 1) == EINVAL);
        OTHER_CHECK(coro_chan_close(shared_chan) == EINVAL);
        await_yield();
    }
    return NULL;
}

static void *foreign_thread(void *arg)
{
    (void)arg;
    /* Bounded: the owner's loop may have failed before its claim. */
    double give_up = coro_now() + 10 * test_slow();
    while (!atomic_load(&owner_claimed) && coro_now() < give_up)
        sched_yield();
    OTHER_CHECK(atomic_load(&owner_claimed));
    int err = coro_run(foreign_main, NULL, NULL);
    /* A thread without a loop is refused as well. */
    int v = 2;
    OTHER_CHECK(coro_chan_try_send(shared_chan, &v) == EINVAL);
    atomic_store(&knocks_done, 1);
    return TOKEN(err);
}

static void *reuse_main(void *arg)
{
    int *v = arg;
    return TOKEN(coro_chan_try_recv(shared_chan, v));
}

START_TEST(objects_belong_to_the_first_loops_thread)
{
    /* Made before any loop, and used from outside one: nobody's yet. */
    shared_chan = coro_chan_new(sizeof(int), 1);
    atomic_store(&owner_claimed, 0);
    atomic_store(&knocks_done, 0);
    atomic_store(&other_failed, 0);
    pthread_t a, b;
    void *ra, *rb;
    ck_assert_int_eq(pthread_create(&a, NULL, owner_thread, NULL), 0);
    ck_assert_int_eq(pthread_create(&b, NULL, foreign_thread, NULL), 0);
    ck_assert_int_eq(test_join(b, &rb, 20), 0);
    ck_assert_int_eq(test_join(a, &ra, 10), 0);
    int failed_at = atomic_load(&other_failed);
    ck_assert_int_eq(failed_at, 0);
    ck_assert_ptr_eq(ra, TOKEN(0));
    ck_assert_ptr_eq(rb, TOKEN(0));
    /* This thread is not the owner either; it may still free it. */
    int v = 3;
    ck_assert_int_eq(coro_chan_try_send(shared_chan, &v), EINVAL);
    ck_assert_int_eq(coro_chan_free(shared_chan), 0);
    /* The owning thread's later loops use it as its first did. */
    shared_chan = coro_chan_new(sizeof(int), 1);
    v = 4;
    ck_assert_int_eq(coro_run(reuse_main, &v, NULL), 0); /* claims it */
    ck_assert_int_eq(coro_chan_try_send(shared_chan, &v), 0);
    void *res;
    v = 0;
    ck_assert_int_eq(coro_run(reuse_main, &v, &res), 0);
    ck_assert_ptr_eq(res, TOKEN(0));
    ck_assert_int_eq(v, 4);
    ck_assert_int_eq(coro_chan_free(shared_chan), 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Producer / consumer at scale                                           */
/* ---------------------------------------------------------------------- */

enum { PAIRS = 5000, PER = 4 };
#ifdef CORO__TSAN
static const int pairs = 3000; /* TSan counts fibers against 8128 threads */
#else
static const int pairs = PAIRS;
#endif
static unsigned char seen[PAIRS * PER];
static int next_message;

/* A task may wait through most of the run for its partner: the bound
 * (there only so that a lost message fails rather than hangs) scales with
 * the slowdown, as the run's length does. */
static void *produce(void *arg)
{
    coro_chan *c = arg;
    for (int i = 0; i < PER; i++) {
        int v = next_message++;
        if (await_chan_send(c, &v, 10 * test_slow()) != 0)
            return coro_fail(EIO);
    }
    return NULL;
}

static void *consume(void *arg)
{
    coro_chan *c = arg;
    for (int i = 0; i < PER; i++) {
        int v;
        if (await_chan_recv(c, &v, 10 * test_slow()) != 0 || v < 0 ||
            v >= pairs * PER)
            return coro_fail(EIO);
        seen[v]++;
    }
    return NULL;
}

static void *many_main(void *arg)
{
    size_t cap = *(size_t *)arg;
    coro_chan *c = coro_chan_new(sizeof(int), cap);
    next_message = 0;
    coro_task **t = malloc(2 * (size_t)pairs * sizeof *t);
    for (int i = 0; i < pairs; i++) {
        t[2 * i] = coro_spawn(consume, c);
        t[2 * i + 1] = coro_spawn(produce, c);
    }
    ck_assert_int_eq(await_gather(t, 2 * (size_t)pairs, NULL, NULL), 0);
    free(t);
    ck_assert_int_eq(coro_chan_free(c), 0);
    return NULL;
}

/* 10,000 tasks through one channel: every message once, none lost. */
START_TEST(ten_thousand_tasks_lose_and_duplicate_nothing)
{
    size_t caps[2] = { 0, 16 };
    for (int k = 0; k < 2; k++) {
        memset(seen, 0, sizeof seen);
        run_expect(many_main, &caps[k], 0);
        for (int i = 0; i < pairs * PER; i++)
            ck_assert_msg(seen[i] == 1, "message %d seen %d times", i,
                          seen[i]);
    }
}
END_TEST

static void *wait_forever_on_chan(void *arg)
{
    int v;
    return TOKEN(await_chan_recv(arg, &v, -1));
}

static void *deadlock_main(void *arg)
{
    coro_chan **c = arg;
    *c = coro_chan_new(sizeof(int), 0);
    void *err;
    await_task(coro_spawn(wait_forever_on_chan, *c), &err);
    return err;
}

/* A receive nobody can ever satisfy, and nothing else alive: EDEADLK. */
START_TEST(blocked_forever_on_a_channel_is_a_deadlock)
{
    coro_chan *c = NULL;
    char *report = run_reporting(deadlock_main, &c, EDEADLK);
    char chan_at[32];
    snprintf(chan_at, sizeof chan_at, "(%p)", (void *)c);
    ck_assert_int_eq(coro_chan_free(c), 0); /* its waiter left */
    expect_deadlock_report(report, 2);
    expect_report_line(report, "#1 ", " main ",
                       "joining task #2 (wait_forever_on_chan)", NULL);
    expect_report_line(report, "#2 ", " wait_forever", "on a channel receive",
                       chan_at, NULL);
    free(report);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Queue                                                                  */
/* ---------------------------------------------------------------------- */

struct q_arg {
    coro_queue *q;
    void       *item;
    int         err;
};

static void *getter(void *arg)
{
    struct q_arg *a = arg;
    a->err = await_queue_get(a->q, &a->item, 5);
    return NULL;
}

static void *putter(void *arg)
{
    struct q_arg *a = arg;
    a->err = await_queue_put(a->q, a->item, 5);
    return NULL;
}

static void *queue_main(void *arg)
{
    (void)arg;
    coro_queue *q = coro_queue_new(0); /* unbounded */
    for (uintptr_t i = 1; i <= 100; i++)
        ck_assert_int_eq(await_queue_put(q, TOKEN(i), 0), 0);
    ck_assert_uint_eq(coro_queue_size(q), 100);
    for (uintptr_t i = 1; i <= 100; i++) {
        void *item;
        ck_assert_int_eq(await_queue_get(q, &item, 0), 0);
        ck_assert_ptr_eq(item, TOKEN(i));
    }
    void *item;
    ck_assert_int_eq(coro_queue_try_get(q, &item), EAGAIN);
    ck_assert_int_eq(await_queue_get(q, &item, 0.01), ETIMEDOUT);
    /* A waiting getter is handed the next item directly. */
    struct q_arg g = { q, NULL, -1 };
    coro_task *gt = coro_spawn(getter, &g);
    await_yield();
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(5)), 0);
    ck_assert_int_eq(await_task(gt, NULL), 0);
    ck_assert_ptr_eq(g.item, TOKEN(5));
    ck_assert_uint_eq(coro_queue_size(q), 0);
    ck_assert_int_eq(coro_queue_free(q), 0);

    q = coro_queue_new(2); /* bounded */
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(1)), 0);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(2)), 0);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(3)), EAGAIN);
    struct q_arg p = { q, TOKEN(3), -1 };
    coro_task *pt = coro_spawn(putter, &p);
    await_yield();
    ck_assert_int_eq(p.err, -1); /* waits: full */
    ck_assert_uint_eq(coro_queue_size(q), 2);
    ck_assert_int_eq(await_queue_get(q, &item, 0), 0);
    ck_assert_ptr_eq(item, TOKEN(1));
    ck_assert_int_eq(await_task(pt, NULL), 0);
    ck_assert_int_eq(p.err, 0);
    ck_assert_int_eq(await_queue_get(q, &item, 0), 0);
    ck_assert_ptr_eq(item, TOKEN(2));
    ck_assert_int_eq(await_queue_get(q, &item, 0), 0);
    ck_assert_ptr_eq(item, TOKEN(3));
    ck_assert_int_eq(coro_queue_free(q), 0);
    return NULL;
}

START_TEST(queue_is_fifo_bounded_or_not)
{
    run_expect(queue_main, NULL, 0);
}
END_TEST

static void *worker(void *arg)
{
    coro_queue *q = arg;
    void *item;
    while (await_queue_get(q, &item, -1) == 0) {
        await_sleep(0.001);
        trace("did%d", (int)(uintptr_t)item);
        coro_queue_task_done(q);
    }
    return NULL;
}

static void *join_main(void *arg)
{
    (void)arg;
    coro_queue *q = coro_queue_new(0);
    ck_assert_int_eq(await_queue_join(q, 0), 0); /* nothing put */
    ck_assert_int_eq(coro_queue_task_done(q), EINVAL);
    coro_task *w = coro_spawn(worker, q);
    for (uintptr_t i = 1; i <= 3; i++)
        coro_queue_try_put(q, TOKEN(i));
    ck_assert_int_eq(await_queue_join(q, 0.001), ETIMEDOUT);
    ck_assert_int_eq(await_queue_join(q, 5), 0);
    trace("joined");
    /* Shutdown: the worker drains, then its get says EPIPE. */
    coro_queue_try_put(q, TOKEN(4));
    ck_assert_int_eq(coro_queue_shutdown(q), 0);
    ck_assert_int_eq(await_queue_put(q, TOKEN(5), 1), EPIPE);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(5)), EPIPE);
    ck_assert_int_eq(await_task(w, NULL), 0);
    void *item;
    ck_assert_int_eq(coro_queue_try_get(q, &item), EPIPE);
    ck_assert_int_eq(coro_queue_free(q), 0);
    return NULL;
}

/* asyncio's task_done / join, and 3.13's shutdown. */
START_TEST(queue_join_and_shutdown)
{
    run_expect(join_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "did1 did2 did3 joined did4");
}
END_TEST

static void *queue_cancel_main(void *arg)
{
    (void)arg;
    coro_queue *q = coro_queue_new(1);
    struct q_arg g1 = { q, NULL, -1 }, g2 = { q, NULL, -1 };
    coro_task *t1 = coro_spawn(getter, &g1);
    await_yield();
    coro_cancel(t1);
    coro_task *t2 = coro_spawn(getter, &g2);
    await_yield();
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(8)), 0);
    await_task(t1, NULL);
    await_task(t2, NULL);
    ck_assert_int_eq(g1.err, ECANCELED);
    ck_assert_ptr_eq(g2.item, TOKEN(8));
    /* Waiting putters and getters get EPIPE at shutdown. */
    coro_queue_try_put(q, TOKEN(1));
    struct q_arg p = { q, TOKEN(2), -1 };
    coro_task *pt = coro_spawn(putter, &p);
    await_yield();
    coro_queue_shutdown(q);
    await_task(pt, NULL);
    ck_assert_int_eq(p.err, EPIPE);
    ck_assert_int_eq(coro_queue_free(q), 0); /* drops item 1 */
    q = coro_queue_new(0);
    struct q_arg g3 = { q, NULL, -1 };
    coro_task *t3 = coro_spawn(getter, &g3);
    await_yield();
    ck_assert_int_eq(coro_queue_free(q), EBUSY);
    coro_queue_shutdown(q);
    await_task(t3, NULL);
    ck_assert_int_eq(g3.err, EPIPE);
    ck_assert_int_eq(coro_queue_free(q), 0);
    return NULL;
}

START_TEST(queue_waiters_cancelled_or_shut_down)
{
    run_expect(queue_cancel_main, NULL, 0);
}
END_TEST

/* Orders TOKEN(n) items by n. */
static int by_token(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return (x > y) - (x < y);
}

static void *lifo_main(void *arg)
{
    (void)arg;
    coro_queue *q = coro_queue_new_lifo(0);
    const uintptr_t in[3] = { 1, 3, 2 }, out[3] = { 2, 3, 1 };
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(await_queue_put(q, TOKEN(in[i]), 0), 0);
    void *item;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(await_queue_get(q, &item, 0), 0);
        ck_assert_ptr_eq(item, TOKEN(out[i]));
    }
    ck_assert_int_eq(coro_queue_free(q), 0);

    /* Bounded: a waiting putter's item goes on top once a get makes
     * room, and a waiting getter is handed the next item directly. */
    q = coro_queue_new_lifo(2);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(1)), 0);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(2)), 0);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(3)), EAGAIN);
    struct q_arg p = { q, TOKEN(3), -1 };
    coro_task *pt = coro_spawn(putter, &p);
    await_yield();
    ck_assert_int_eq(await_queue_get(q, &item, 0), 0);
    ck_assert_ptr_eq(item, TOKEN(2));
    ck_assert_int_eq(await_task(pt, NULL), 0);
    ck_assert_int_eq(p.err, 0);
    ck_assert_uint_eq(coro_queue_size(q), 2);
    ck_assert_int_eq(coro_queue_try_get(q, &item), 0);
    ck_assert_ptr_eq(item, TOKEN(3));
    ck_assert_int_eq(coro_queue_try_get(q, &item), 0);
    ck_assert_ptr_eq(item, TOKEN(1));
    struct q_arg g = { q, NULL, -1 };
    coro_task *gt = coro_spawn(getter, &g);
    await_yield();
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(4)), 0);
    ck_assert_int_eq(await_task(gt, NULL), 0);
    ck_assert_ptr_eq(g.item, TOKEN(4));
    ck_assert_int_eq(await_queue_get(q, &item, 0.01), ETIMEDOUT);
    ck_assert_int_eq(coro_queue_free(q), 0);
    return NULL;
}

/* Mirrors CPython's LifoQueueTests.test_order: 1, 3, 2 put, 2, 3, 1 got. */
START_TEST(lifo_queue_gets_the_newest_first)
{
    run_expect(lifo_main, NULL, 0);
}
END_TEST

/* A priority queue's item: ordered by key only, so that equal keys show
 * the order in which they leave. */
struct keyed {
    unsigned key;
    unsigned id;
};

static int by_key(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    return (x->key > y->key) - (x->key < y->key);
}

enum { RANKED = 2000 };
static struct keyed keyed[RANKED];

/* The index of the entry a stable priority queue gives next among the
 * n of pending: the smallest key, and of equal keys the first put. */
static size_t reference_next(const unsigned *pending, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++) {
        const struct keyed *a = &keyed[pending[i]];
        const struct keyed *b = &keyed[pending[best]];
        if (a->key < b->key || (a->key == b->key && a->id < b->id))
            best = i;
    }
    return best;
}

static void *priority_main(void *arg)
{
    (void)arg;
    coro_queue *q = coro_queue_new_priority(0, by_token);
    const uintptr_t in[3] = { 1, 3, 2 };
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(await_queue_put(q, TOKEN(in[i]), 0), 0);
    void *item;
    for (uintptr_t want = 1; want <= 3; want++) {
        ck_assert_int_eq(await_queue_get(q, &item, 0), 0);
        ck_assert_ptr_eq(item, TOKEN(want));
    }
    ck_assert_int_eq(coro_queue_free(q), 0);

    /* Puts and gets mixed at random, against a slow, obviously stable
     * reference: few distinct keys, so that ties are many. */
    q = coro_queue_new_priority(0, by_key);
    static unsigned pending[RANKED];
    size_t npending = 0, put = 0;
    uint32_t x = 12345;
    while (put < RANKED || npending > 0) {
        x = x * 1103515245u + 12345u;
        if (put < RANKED && (npending == 0 || (x >> 16) % 3 != 0)) {
            keyed[put] = (struct keyed){ (x >> 8) % 17, (unsigned)put };
            ck_assert_int_eq(coro_queue_try_put(q, &keyed[put]), 0);
            pending[npending++] = (unsigned)put++;
            continue;
        }
        size_t next = reference_next(pending, npending);
        ck_assert_int_eq(coro_queue_try_get(q, &item), 0);
        ck_assert_ptr_eq(item, &keyed[pending[next]]);
        pending[next] = pending[--npending];
        ck_assert_uint_eq(coro_queue_size(q), npending);
    }
    ck_assert_int_eq(coro_queue_free(q), 0);
    return NULL;
}

/* Mirrors CPython's PriorityQueueTests.test_order (1, 3, 2 put, 1, 2, 3
 * got), and goes further: equal items leave in the order they were put,
 * through any mix of puts and gets. */
START_TEST(priority_queue_gets_the_smallest_first)
{
    run_expect(priority_main, NULL, 0);
}
END_TEST

static void *priority_waiters_main(void *arg)
{
    (void)arg;
    coro_queue *q = coro_queue_new_priority(2, by_token);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(5)), 0);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(1)), 0);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(0)), EAGAIN);
    ck_assert_int_eq(await_queue_put(q, TOKEN(0), 0.01), ETIMEDOUT);
    /* A putter waits for room; the get that makes it takes the smallest
     * of what was queued, not the waiting item. */
    struct q_arg p = { q, TOKEN(3), -1 };
    coro_task *pt = coro_spawn(putter, &p);
    await_yield();
    void *item;
    ck_assert_int_eq(await_queue_get(q, &item, 0), 0);
    ck_assert_ptr_eq(item, TOKEN(1));
    ck_assert_int_eq(await_task(pt, NULL), 0);
    ck_assert_int_eq(p.err, 0);
    ck_assert_int_eq(await_queue_get(q, &item, 0), 0);
    ck_assert_ptr_eq(item, TOKEN(3));
    ck_assert_int_eq(await_queue_get(q, &item, 0), 0);
    ck_assert_ptr_eq(item, TOKEN(5));
    /* A getter cancelled while it waits leaves; the next one is handed
     * the item. */
    struct q_arg g1 = { q, NULL, -1 }, g2 = { q, NULL, -1 };
    coro_task *t1 = coro_spawn(getter, &g1);
    coro_task *t2 = coro_spawn(getter, &g2);
    await_yield();
    coro_cancel(t1);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(7)), 0);
    ck_assert_int_eq(await_task(t1, NULL), ECANCELED);
    ck_assert_int_eq(await_task(t2, NULL), 0);
    ck_assert_int_eq(g1.err, ECANCELED);
    ck_assert_int_eq(g2.err, 0);
    ck_assert_ptr_eq(g2.item, TOKEN(7));
    ck_assert_int_eq(await_queue_get(q, &item, 0.01), ETIMEDOUT);
    ck_assert_int_eq(coro_queue_free(q), 0);
    return NULL;
}

/* Bounded, the priority queue's putters and getters wait, time out and
 * leave as a FIFO queue's do. */
START_TEST(priority_queue_waiters_wait_and_leave_as_a_queues_do)
{
    run_expect(priority_waiters_main, NULL, 0);
}
END_TEST

/* A FIFO, LIFO and priority queue, for the tests that every kind must
 * pass alike. */
static coro_queue *new_of_kind(int kind, size_t maxsize)
{
    switch (kind) {
    case 0:
        return coro_queue_new(maxsize);
    case 1:
        return coro_queue_new_lifo(maxsize);
    default:
        return coro_queue_new_priority(maxsize, by_token);
    }
}

static uintptr_t worked_sum;

static void *summing_worker(void *arg)
{
    coro_queue *q = arg;
    void *item;
    while (await_queue_get(q, &item, -1) == 0) {
        worked_sum += (uintptr_t)item;
        await_yield();
        ck_assert_int_eq(coro_queue_task_done(q), 0);
    }
    return NULL;
}

static void *join_kinds_main(void *arg)
{
    (void)arg;
    for (int kind = 0; kind < 3; kind++) {
        coro_queue *q = new_of_kind(kind, 0);
        ck_assert_int_eq(coro_queue_task_done(q), EINVAL);
        ck_assert_int_eq(await_queue_join(q, 0), 0);
        ck_assert_int_eq(await_queue_join(q, 0), 0);
        for (uintptr_t i = 0; i < 100; i++)
            ck_assert_int_eq(coro_queue_try_put(q, TOKEN(i)), 0);
        worked_sum = 0;
        coro_task *w[2] = { coro_spawn(summing_worker, q),
                            coro_spawn(summing_worker, q) };
        ck_assert_int_eq(await_queue_join(q, 5), 0);
        ck_assert_uint_eq(worked_sum, 4950);
        ck_assert_int_eq(coro_queue_shutdown(q), 0);
        ck_assert_int_eq(await_gather(w, 2, NULL, NULL), 0);
        ck_assert_int_eq(coro_queue_free(q), 0);
    }
    return NULL;
}

/* task_done and join count items on every kind of queue. Mirrors
 * CPython's LifoQueueJoinTests and PriorityQueueJoinTests: test_task_done,
 * test_join_empty_queue, test_task_done_underflow. */
START_TEST(lifo_and_priority_queues_count_work_for_join)
{
    run_expect(join_kinds_main, NULL, 0);
}
END_TEST

static coro_queue *joined_queue;

static void *join_queue(void *arg)
{
    (void)arg;
    int err = await_queue_join(joined_queue, 5);
    trace("joined%d", err);
    return TOKEN(err);
}

static void *shutdown_kinds_main(void *arg)
{
    (void)arg;
    void *item;
    for (int kind = 0; kind < 3; kind++) {
        /* Empty: a waiting getter gets EPIPE, join returns at once. */
        coro_queue *q = new_of_kind(kind, 0);
        struct q_arg g = { q, NULL, -1 };
        coro_task *gt = coro_spawn(getter, &g);
        await_yield();
        ck_assert_int_eq(coro_queue_shutdown(q), 0);
        ck_assert_uint_eq(coro_queue_size(q), 0);
        ck_assert_int_eq(await_queue_join(q, 0), 0);
        ck_assert_int_eq(await_task(gt, NULL), 0);
        ck_assert_int_eq(g.err, EPIPE);
        ck_assert_int_eq(await_queue_put(q, TOKEN(1), 1), EPIPE);
        ck_assert_int_eq(coro_queue_try_put(q, TOKEN(1)), EPIPE);
        ck_assert_int_eq(await_queue_get(q, &item, 1), EPIPE);
        ck_assert_int_eq(coro_queue_try_get(q, &item), EPIPE);
        ck_assert_int_eq(coro_queue_free(q), 0);

        /* Not empty: the waiting putter gets EPIPE, gets drain what is
         * queued, and join waits for task_done. */
        q = joined_queue = new_of_kind(kind, 1);
        ck_assert_int_eq(coro_queue_try_put(q, TOKEN(1)), 0);
        coro_task *jt = coro_spawn(join_queue, NULL);
        struct q_arg p = { q, TOKEN(2), -1 };
        coro_task *pt = coro_spawn(putter, &p);
        await_yield();
        ck_assert_int_eq(coro_queue_shutdown(q), 0);
        ck_assert_uint_eq(coro_queue_size(q), 1);
        ck_assert_int_eq(await_task(pt, NULL), 0);
        ck_assert_int_eq(p.err, EPIPE);
        ck_assert_int_eq(await_queue_get(q, &item, 1), 0);
        ck_assert_ptr_eq(item, TOKEN(1));
        await_yield();
        trace("got");
        ck_assert_int_eq(coro_queue_try_put(q, TOKEN(1)), EPIPE);
        ck_assert_int_eq(coro_queue_try_get(q, &item), EPIPE);
        ck_assert_int_eq(coro_queue_task_done(q), 0);
        ck_assert_int_eq(await_task(jt, NULL), 0);
        ck_assert_int_eq(coro_queue_task_done(q), EINVAL);
        ck_assert_int_eq(coro_queue_free(q), 0);
    }
    return NULL;
}

/* Every kind of queue shuts down alike. Mirrors CPython's
 * _QueueShutdownTestMixin for Queue, LifoQueue and PriorityQueue:
 * test_shutdown_empty, test_shutdown_nonempty. */
START_TEST(every_kind_of_queue_shuts_down_alike)
{
    run_expect(shutdown_kinds_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "got joined0 got joined0 got joined0");
}
END_TEST

/* What a drop callback was handed: a bit per TOKEN(0..31) item, and what
 * the queue answered when the callback called into it. */
struct dropped {
    coro_queue *q;
    unsigned    seen;
    int         calls;
    int         put_err;
    int         get_err;
};

static void note_drop(void *item, void *arg)
{
    struct dropped *d = arg;
    void *got;
    d->seen |= 1u << (uintptr_t)item;
    d->calls++;
    d->put_err = coro_queue_try_put(d->q, item);
    d->get_err = coro_queue_try_get(d->q, &got);
}

static void *shutdown_now_main(void *arg)
{
    (void)arg;
    void *item;
    for (int kind = 0; kind < 3; kind++) {
        coro_queue *q = joined_queue = new_of_kind(kind, 0);
        for (uintptr_t i = 1; i <= 3; i++)
            ck_assert_int_eq(coro_queue_try_put(q, TOKEN(i)), 0);
        coro_task *jt = coro_spawn(join_queue, NULL);
        await_yield();
        struct dropped d = { q, 0, 0, -1, -1 };
        ck_assert_int_eq(coro_queue_shutdown_now(q, note_drop, &d), 0);
        ck_assert_uint_eq(coro_queue_size(q), 0);
        /* Each item once, and the queue refused the callback's calls. */
        ck_assert_uint_eq(d.seen, 0xeu);
        ck_assert_int_eq(d.calls, 3);
        ck_assert_int_eq(d.put_err, EPIPE);
        ck_assert_int_eq(d.get_err, EPIPE);
        /* The dropped items counted as done: the joiner is through. */
        ck_assert_int_eq(await_task(jt, NULL), 0);
        ck_assert_int_eq(await_queue_put(q, TOKEN(1), 1), EPIPE);
        ck_assert_int_eq(coro_queue_try_put(q, TOKEN(1)), EPIPE);
        ck_assert_int_eq(await_queue_get(q, &item, 1), EPIPE);
        ck_assert_int_eq(coro_queue_try_get(q, &item), EPIPE);
        ck_assert_int_eq(coro_queue_task_done(q), EINVAL);
        ck_assert_int_eq(coro_queue_free(q), 0);
    }
    return NULL;
}

/* Immediate shutdown drops what is queued, hands each item to the
 * callback, counts it done for join, and refuses every later put and get.
 * Mirrors CPython's _QueueShutdownTestMixin.test_shutdown_immediate, for
 * Queue, LifoQueue and PriorityQueue. */
START_TEST(queue_shutdown_now_drops_the_items_and_releases_join)
{
    run_expect(shutdown_now_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "joined0 joined0 joined0");
}
END_TEST

static void *shutdown_now_unfinished_main(void *arg)
{
    (void)arg;
    void *item;
    coro_queue *q = joined_queue = coro_queue_new(0);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(1)), 0);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(2)), 0);
    coro_task *jt = coro_spawn(join_queue, NULL);
    ck_assert_int_eq(await_queue_get(q, &item, 0), 0);
    ck_assert_int_eq(coro_queue_shutdown_now(q, NULL, NULL), 0);
    ck_assert_uint_eq(coro_queue_size(q), 0);
    await_yield();
    trace("shut");
    /* The item taken before is still to be done. */
    ck_assert_int_eq(coro_queue_task_done(q), 0);
    ck_assert_int_eq(coro_queue_task_done(q), EINVAL);
    ck_assert_int_eq(await_task(jt, NULL), 0);
    ck_assert_int_eq(coro_queue_free(q), 0);

    /* task_done called ahead for a queued item: the drop does not count
     * it twice. */
    q = coro_queue_new(0);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(1)), 0);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(2)), 0);
    ck_assert_int_eq(coro_queue_task_done(q), 0);
    ck_assert_int_eq(coro_queue_shutdown_now(q, NULL, NULL), 0);
    ck_assert_int_eq(await_queue_join(q, 0), 0);
    ck_assert_int_eq(coro_queue_task_done(q), EINVAL);
    ck_assert_int_eq(coro_queue_free(q), 0);
    return NULL;
}

/* Mirrors CPython's
 * _QueueShutdownTestMixin.test_shutdown_immediate_with_unfinished: only
 * the dropped items count as done; those taken before still need
 * task_done. */
START_TEST(queue_shutdown_now_leaves_items_taken_before_to_task_done)
{
    run_expect(shutdown_now_unfinished_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "shut joined0");
}
END_TEST

static void *shutdown_now_waiters_main(void *arg)
{
    (void)arg;
    /* Getters wait on an empty queue: EPIPE. */
    coro_queue *q = coro_queue_new_priority(0, by_token);
    struct q_arg g1 = { q, NULL, -1 }, g2 = { q, NULL, -1 };
    coro_task *t[2] = { coro_spawn(getter, &g1), coro_spawn(getter, &g2) };
    await_yield();
    ck_assert_int_eq(coro_queue_shutdown_now(q, NULL, NULL), 0);
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), 0);
    ck_assert_int_eq(g1.err, EPIPE);
    ck_assert_int_eq(g2.err, EPIPE);
    ck_assert_int_eq(coro_queue_free(q), 0);

    /* A putter waits on a full queue: EPIPE, and its item, never queued,
     * is not handed to drop. */
    q = coro_queue_new_lifo(2);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(1)), 0);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(2)), 0);
    struct q_arg p = { q, TOKEN(3), -1 };
    coro_task *pt = coro_spawn(putter, &p);
    await_yield();
    struct dropped d = { q, 0, 0, -1, -1 };
    ck_assert_int_eq(coro_queue_shutdown_now(q, note_drop, &d), 0);
    ck_assert_uint_eq(d.seen, 0x6u);
    ck_assert_int_eq(await_task(pt, NULL), 0);
    ck_assert_int_eq(p.err, EPIPE);
    ck_assert_int_eq(coro_queue_free(q), 0);

    /* After a graceful shutdown, it drops what the gets had yet to
     * drain. */
    q = coro_queue_new(0);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(4)), 0);
    ck_assert_int_eq(coro_queue_shutdown(q), 0);
    d = (struct dropped){ q, 0, 0, -1, -1 };
    ck_assert_int_eq(coro_queue_shutdown_now(q, note_drop, &d), 0);
    ck_assert_uint_eq(d.seen, 0x10u);
    ck_assert_int_eq(coro_queue_free(q), 0);
    return NULL;
}

/* Every waiting getter and putter is woken with EPIPE. */
START_TEST(queue_shutdown_now_fails_every_waiter_with_epipe)
{
    run_expect(shutdown_now_waiters_main, NULL, 0);
    ck_assert_int_eq(coro_queue_shutdown_now(NULL, NULL, NULL), EINVAL);
    /* Callable outside a loop. */
    coro_queue *q = coro_queue_new(0);
    ck_assert_int_eq(coro_queue_try_put(q, TOKEN(1)), 0);
    ck_assert_int_eq(coro_queue_shutdown_now(q, NULL, NULL), 0);
    ck_assert_uint_eq(coro_queue_size(q), 0);
    ck_assert_int_eq(coro_queue_free(q), 0);
}
END_TEST

static void *queue_kinds_errors_main(void *arg)
{
    (void)arg;
    void *item;
    ck_assert_int_eq(await_queue_get(NULL, &item, 1), EINVAL);
    coro_queue *q = coro_queue_new_priority(0, by_token);
    ck_assert_int_eq(await_queue_get(q, NULL, 1), EINVAL);
    ck_assert_int_eq(await_queue_get(q, &item, NAN), EINVAL);
    ck_assert_int_eq(await_queue_put(q, TOKEN(1), NAN), EINVAL);
    ck_assert_int_eq(coro_queue_free(q), 0);
    return NULL;
}

START_TEST(lifo_and_priority_queue_bad_input)
{
    errno = 0;
    ck_assert_ptr_null(coro_queue_new_priority(4, NULL));
    ck_assert_int_eq(errno, EINVAL);
    run_expect(queue_kinds_errors_main, NULL, 0);
    /* Outside a coroutine: try_* work, await_* are EPERM. */
    for (int kind = 1; kind < 3; kind++) {
        coro_queue *q = new_of_kind(kind, 0);
        void *item;
        ck_assert_int_eq(coro_queue_try_put(q, TOKEN(2)), 0);
        ck_assert_int_eq(await_queue_put(q, TOKEN(1), 1), EPERM);
        ck_assert_int_eq(await_queue_get(q, &item, 1), EPERM);
        ck_assert_int_eq(coro_queue_try_get(q, &item), 0);
        ck_assert_ptr_eq(item, TOKEN(2));
        /* A queue that cannot grow says ENOMEM, and holds what it had. */
        for (uintptr_t i = 0; i < 16; i++)
            ck_assert_int_eq(coro_queue_try_put(q, TOKEN(i)), 0);
        atomic_store(&coro__alloc_stats.fail_every, 1);
        int err = coro_queue_try_put(q, TOKEN(99));
        atomic_store(&coro__alloc_stats.fail_every, 0);
        ck_assert_int_eq(err, ENOMEM);
        ck_assert_uint_eq(coro_queue_size(q), 16);
        ck_assert_int_eq(coro_queue_try_get(q, &item), 0);
        ck_assert_ptr_eq(item, TOKEN(kind == 1 ? 15 : 0));
        ck_assert_int_eq(coro_queue_free(q), 0);
    }
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Mutex, semaphore                                                       */
/* ---------------------------------------------------------------------- */

static coro_mutex *shared_mutex;

static void *critical(void *arg)
{
    const char *name = arg;
    if (await_mutex_lock(shared_mutex, 5) != 0)
        return coro_fail(EIO);
    trace("%s+", name);
    await_sleep(0.005);
    trace("%s-", name);
    coro_mutex_unlock(shared_mutex);
    return NULL;
}

static void *relocker(void *arg)
{
    (void)arg;
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 5), 0);
    trace("r+");
    await_sleep(0.005);
    coro_mutex_unlock(shared_mutex);
    /* Released to the first waiter: locking again waits behind them. */
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 5), 0);
    trace("r+");
    coro_mutex_unlock(shared_mutex);
    return NULL;
}

static void *mutex_main(void *arg)
{
    (void)arg;
    shared_mutex = coro_mutex_new();
    coro_task *t[3] = { coro_spawn(relocker, NULL),
                        coro_spawn(critical, "a"),
                        coro_spawn(critical, "b") };
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), 0);
    ck_assert_int_eq(coro_mutex_free(shared_mutex), 0);
    return NULL;
}

/* One holder at a time, FIFO, and no barging: a released lock goes to
 * the first waiter even if the releaser asks again at once. */
START_TEST(mutex_is_exclusive_fifo_without_barging)
{
    run_expect(mutex_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "r+ a+ a- b+ b- r+");
}
END_TEST

static void *lock_for(void *arg)
{
    return TOKEN(await_mutex_lock(shared_mutex, *(double *)arg));
}

static void *mutex_errors_main(void *arg)
{
    (void)arg;
    shared_mutex = coro_mutex_new();
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), EPERM);
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 1), 0);
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 1), EDEADLK);
    ck_assert_int_eq(coro_mutex_free(shared_mutex), EBUSY);
    double wait = 0.01;
    void *err;
    coro_task *t = coro_spawn(lock_for, &wait);
    ck_assert_int_eq(await_task(t, &err), 0);
    ck_assert_ptr_eq(err, TOKEN(ETIMEDOUT));
    /* A waiter cancelled leaves; the next one still gets the lock. */
    wait = 5;
    coro_task *c1 = coro_spawn(lock_for, &wait);
    coro_task *c2 = coro_spawn(lock_for, &wait);
    await_yield();
    coro_cancel(c1);
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), 0);
    ck_assert_int_eq(await_task(c1, &err), ECANCELED);
    ck_assert_ptr_eq(err, TOKEN(ECANCELED));
    ck_assert_int_eq(await_task(c2, &err), 0);
    ck_assert_ptr_eq(err, TOKEN(0)); /* c2 ended holding it */
    /* Ownership is by task id: a task that ends holding it leaves it
     * held, and a new task on the reused stack does not own it. */
    wait = 0.01;
    t = coro_spawn(lock_for, &wait);
    ck_assert_int_eq(await_task(t, &err), 0);
    ck_assert_ptr_eq(err, TOKEN(ETIMEDOUT));
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), EPERM);
    return NULL;
}

START_TEST(mutex_errors_timeouts_and_cancellation)
{
    run_expect(mutex_errors_main, NULL, 0);
    ck_assert_int_eq(coro_mutex_unlock(NULL), EINVAL);
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 1), EPERM);
    /* Still held by a task that ended: nobody can unlock it, but it can
     * be freed. */
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), EPERM);
    ck_assert_int_eq(coro_mutex_free(shared_mutex), 0);
}
END_TEST

/* Ownership names one task of one run: a task of a later coro_run, with
 * the same id and perhaps the same loop address, is not the holder. */
static void *lock_and_end(void *arg)
{
    (void)arg;
    return TOKEN(await_mutex_lock(shared_mutex, 1)); /* ends holding it */
}

static void *first_run(void *arg)
{
    (void)arg;
    void *res;
    ck_assert_int_eq(await_task(coro_spawn(lock_and_end, NULL), &res), 0);
    return res;
}

/* Task #2 of a later run, as the holder was in the first. */
static void *try_as_the_same_id(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), EPERM);
    return TOKEN(await_mutex_lock(shared_mutex, 0.02));
}

static void *later_run(void *arg)
{
    (void)arg;
    void *res;
    ck_assert_int_eq(await_task(coro_spawn(try_as_the_same_id, NULL), &res),
                     0);
    ck_assert_ptr_eq(res, TOKEN(ETIMEDOUT));
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), EPERM);
    /* Its holder is gone with its run: it can be freed. */
    ck_assert_int_eq(coro_mutex_free(shared_mutex), 0);
    return NULL;
}

START_TEST(a_mutex_is_never_inherited_by_a_later_run)
{
    shared_mutex = coro_mutex_new();
    void *res;
    ck_assert_int_eq(coro_run(first_run, NULL, &res), 0);
    ck_assert_ptr_eq(res, TOKEN(0));
    ck_assert_int_eq(coro_run(later_run, NULL, NULL), 0);
}
END_TEST

static coro_sem *shared_sem;

static void *permit_user(void *arg)
{
    const char *name = arg;
    if (await_sem_acquire(shared_sem, 5) != 0)
        return coro_fail(EIO);
    trace("%s+", name);
    await_sleep(name[0] == 'b' ? 0.04 : 0.01);
    trace("%s-", name);
    coro_sem_release(shared_sem);
    return NULL;
}

static void *sem_main(void *arg)
{
    (void)arg;
    shared_sem = coro_sem_new(2);
    coro_task *t[3] = { coro_spawn(permit_user, "a"),
                        coro_spawn(permit_user, "b"),
                        coro_spawn(permit_user, "c") };
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), 0);
    /* Timeouts and cancellation of waiters. */
    ck_assert_int_eq(await_sem_acquire(shared_sem, 0), 0);
    ck_assert_int_eq(await_sem_acquire(shared_sem, 0), 0);
    ck_assert_int_eq(await_sem_acquire(shared_sem, 0.01), ETIMEDOUT);
    ck_assert_int_eq(coro_sem_release(shared_sem), 0);
    ck_assert_int_eq(coro_sem_release(shared_sem), 0);
    ck_assert_int_eq(coro_sem_free(shared_sem), 0);
    coro_sem *s = coro_sem_new(UINT_MAX);
    ck_assert_int_eq(coro_sem_release(s), EOVERFLOW);
    coro_sem_free(s);
    return NULL;
}

/* Two permits, three users: two at once, the third takes the first
 * permit given back (b holds its own longer). */
START_TEST(semaphore_counts_permits)
{
    run_expect(sem_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "a+ b+ a- c+ c- b-");
}
END_TEST

static void *release_own_permit(void *arg)
{
    (void)arg;
    int err = await_sem_acquire(shared_sem, 5);
    if (err == 0)
        err = coro_sem_release(shared_sem);
    return TOKEN(err);
}

static void *bounded_main(void *arg)
{
    (void)arg;
    shared_sem = coro_sem_new_bounded(1);
    ck_assert_int_eq(coro_sem_release(shared_sem), EINVAL);
    ck_assert_uint_eq(coro_sem_value(shared_sem), 1);
    ck_assert_int_eq(await_sem_acquire(shared_sem, 1), 0);
    /* A waiter is handed the permit given back; its own release then
     * fills the semaphore, and one more is refused. */
    coro_task *t = coro_spawn(release_own_permit, NULL);
    await_yield();
    ck_assert_int_eq(coro_sem_release(shared_sem), 0);
    void *res;
    ck_assert_int_eq(await_task(t, &res), 0);
    ck_assert_ptr_eq(res, TOKEN(0));
    ck_assert_uint_eq(coro_sem_value(shared_sem), 1);
    ck_assert_int_eq(coro_sem_release(shared_sem), EINVAL);
    ck_assert_uint_eq(coro_sem_value(shared_sem), 1);
    ck_assert_int_eq(coro_sem_free(shared_sem), 0);
    return NULL;
}

/* A bounded semaphore never holds more than its initial count: mirrors
 * CPython's SemaphoreTests.test_release_not_acquired. */
START_TEST(bounded_semaphore_refuses_a_release_past_its_bound)
{
    run_expect(bounded_main, NULL, 0);
    /* Bounded at 0, it can never be released; callable outside a loop. */
    coro_sem *s = coro_sem_new_bounded(0);
    ck_assert_int_eq(coro_sem_release(s), EINVAL);
    ck_assert_int_eq(coro_sem_locked(s), 1);
    ck_assert_int_eq(coro_sem_free(s), 0);
    /* The plain semaphore is not bounded by its initial count. */
    s = coro_sem_new(1);
    ck_assert_int_eq(coro_sem_release(s), 0);
    ck_assert_uint_eq(coro_sem_value(s), 2);
    ck_assert_int_eq(coro_sem_free(s), 0);
}
END_TEST

static void *take_permit(void *arg)
{
    (void)arg;
    return TOKEN(await_sem_acquire(shared_sem, 5));
}

struct lock_state {
    coro_mutex *m;
    coro_sem   *s;
    int         locked;
    unsigned    value;
    int         sem_locked;
};

static void *locked_main(void *arg)
{
    struct lock_state *st = arg;
    coro_mutex *m = st->m;
    ck_assert_int_eq(coro_mutex_locked(m), 0);
    ck_assert_int_eq(await_mutex_lock(m, 1), 0);
    ck_assert_int_eq(coro_mutex_locked(m), 1);
    ck_assert_int_eq(coro_mutex_unlock(m), 0);
    ck_assert_int_eq(coro_mutex_locked(m), 0);

    shared_sem = coro_sem_new(0);
    ck_assert_int_eq(coro_sem_locked(shared_sem), 1);
    ck_assert_int_eq(coro_sem_release(shared_sem), 0);
    ck_assert_int_eq(coro_sem_locked(shared_sem), 0);
    ck_assert_uint_eq(coro_sem_value(shared_sem), 1);
    /* With a task waiting, a release goes to it: the value stays 0. */
    coro_task *t[2] = { coro_spawn(take_permit, NULL),
                        coro_spawn(take_permit, NULL) };
    await_yield();
    ck_assert_uint_eq(coro_sem_value(shared_sem), 0);
    ck_assert_int_eq(coro_sem_locked(shared_sem), 1);
    ck_assert_int_eq(coro_sem_release(shared_sem), 0);
    ck_assert_uint_eq(coro_sem_value(shared_sem), 0);
    void *res[2];
    ck_assert_int_eq(await_gather(t, 2, res, NULL), 0);
    ck_assert_ptr_eq(res[0], TOKEN(0));
    ck_assert_ptr_eq(res[1], TOKEN(0));
    ck_assert_int_eq(coro_sem_free(shared_sem), 0);

    /* Left for the test to read from two threads: m held by a task that
     * ended, a semaphore with two permits. */
    ck_assert_int_eq(await_mutex_lock(m, 1), 0);
    ck_assert_int_eq(coro_sem_release(st->s), 0);
    ck_assert_int_eq(coro_sem_release(st->s), 0);
    return NULL;
}

static void *read_lock_state(void *arg)
{
    struct lock_state *st = arg;
    st->locked = coro_mutex_locked(st->m);
    st->value = coro_sem_value(st->s);
    st->sem_locked = coro_sem_locked(st->s);
    return NULL;
}

/* asyncio's locked() and a semaphore's value, read without waiting,
 * anywhere but another thread (which reads 0). Mirrors CPython's
 * LockTests.test_lock and SemaphoreTests.test_initial_value_zero,
 * test_release_no_waiters and test_acquire. */
START_TEST(mutex_and_semaphore_say_whether_they_are_locked)
{
    struct lock_state here = { coro_mutex_new(), coro_sem_new(0), -1, 99,
                               -1 };
    run_expect(locked_main, &here, 0);
    read_lock_state(&here);
    ck_assert_int_eq(here.locked, 1);
    ck_assert_uint_eq(here.value, 2);
    ck_assert_int_eq(here.sem_locked, 0);
    static struct lock_state there; /* static: the join is bounded */
    there = (struct lock_state){ here.m, here.s, -1, 99, -1 };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, read_lock_state, &there), 0);
    ck_assert_int_eq(test_join(th, NULL, 10), 0);
    ck_assert_int_eq(there.locked, 0);
    ck_assert_uint_eq(there.value, 0);
    ck_assert_int_eq(there.sem_locked, 0);
    ck_assert_int_eq(coro_mutex_locked(NULL), 0);
    ck_assert_uint_eq(coro_sem_value(NULL), 0);
    ck_assert_int_eq(coro_sem_locked(NULL), 0);
    ck_assert_int_eq(coro_mutex_free(here.m), 0);
    ck_assert_int_eq(coro_sem_free(here.s), 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Event, condition                                                       */
/* ---------------------------------------------------------------------- */

static coro_event *shared_event;

static void *event_waiter(void *arg)
{
    int err = await_event(shared_event, 5);
    trace("%s%d", (const char *)arg, err);
    return NULL;
}

static void *event_main(void *arg)
{
    (void)arg;
    shared_event = coro_event_new();
    ck_assert_int_eq(coro_event_is_set(shared_event), 0);
    coro_task *t[2] = { coro_spawn(event_waiter, "a"),
                        coro_spawn(event_waiter, "b") };
    await_yield();
    trace("set");
    coro_event_set(shared_event);
    coro_event_clear(shared_event); /* woken waiters still return 0 */
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), 0);
    ck_assert_int_eq(await_event(shared_event, 0.01), ETIMEDOUT);
    coro_event_set(shared_event);
    ck_assert_int_eq(coro_event_is_set(shared_event), 1);
    ck_assert_int_eq(await_event(shared_event, 0), 0);
    /* A cancelled waiter leaves. */
    coro_event_clear(shared_event);
    coro_task *c = coro_spawn(event_waiter, "c");
    await_yield();
    ck_assert_int_eq(coro_event_free(shared_event), EBUSY);
    coro_cancel(c);
    await_task(c, NULL);
    ck_assert_int_eq(coro_event_free(shared_event), 0);
    return NULL;
}

START_TEST(event_wakes_every_waiter)
{
    run_expect(event_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "set a0 b0 c125");
}
END_TEST

static coro_cond *shared_cond;
static int ready_items;

static void *cond_consumer(void *arg)
{
    const char *name = arg;
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 5), 0);
    while (ready_items == 0) {
        int err = await_cond_wait(shared_cond, shared_mutex, 5);
        if (err) {
            coro_mutex_unlock(shared_mutex);
            return coro_fail(err);
        }
    }
    ready_items--;
    trace("%s", name);
    coro_mutex_unlock(shared_mutex);
    return NULL;
}

static void *cond_main(void *arg)
{
    (void)arg;
    shared_mutex = coro_mutex_new();
    shared_cond = coro_cond_new();
    coro_task *t[3] = { coro_spawn(cond_consumer, "a"),
                        coro_spawn(cond_consumer, "b"),
                        coro_spawn(cond_consumer, "c") };
    await_yield();
    ready_items = 1;
    ck_assert_int_eq(coro_cond_notify(shared_cond, 1), 0); /* wakes a */
    await_sleep(0.01);
    ready_items = 2;
    ck_assert_int_eq(coro_cond_notify_all(shared_cond), 0);
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), 0);

    /* Waiting needs the mutex; times out holding it again. */
    ck_assert_int_eq(await_cond_wait(shared_cond, shared_mutex, 1), EPERM);
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 1), 0);
    ck_assert_int_eq(await_cond_wait(shared_cond, shared_mutex, 0.01),
                     ETIMEDOUT);
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), 0); /* held again */
    ck_assert_int_eq(coro_cond_free(shared_cond), 0);
    ck_assert_int_eq(coro_mutex_free(shared_mutex), 0);
    return NULL;
}

/* notify(1) wakes one waiter, notify_all the rest, first come first. */
START_TEST(condition_notify_one_and_all)
{
    run_expect(cond_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "a b c");
}
END_TEST

static void *cond_cancelled(void *arg)
{
    coro_mutex *other = arg;
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 5), 0);
    int err = await_cond_wait(shared_cond, shared_mutex, 5);
    /* Cancelled or not, the mutex is held again. */
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), 0);
    if (other) {
        ck_assert_int_eq(await_mutex_lock(other, 1), ECANCELED);
    }
    return TOKEN(err);
}

static void *cond_other_mutex(void *arg)
{
    coro_mutex *other = arg;
    ck_assert_int_eq(await_mutex_lock(other, 5), 0);
    int err = await_cond_wait(shared_cond, other, 1);
    coro_mutex_unlock(other);
    return TOKEN(err);
}

static void *cond_cancel_main(void *arg)
{
    (void)arg;
    shared_mutex = coro_mutex_new();
    shared_cond = coro_cond_new();
    coro_mutex *other = coro_mutex_new();
    coro_task *t = coro_spawn(cond_cancelled, other);
    await_yield();
    /* The condition is in use with shared_mutex: another is EINVAL. */
    void *err;
    ck_assert_int_eq(await_task(coro_spawn(cond_other_mutex, other), &err),
                     0);
    ck_assert_ptr_eq(err, TOKEN(EINVAL));
    /* Hold the mutex so the cancelled waiter must wait to retake it. */
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 1), 0);
    coro_cancel(t);
    await_sleep(0.01);
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), 0);
    ck_assert_int_eq(await_task(t, &err), ECANCELED);
    ck_assert_ptr_eq(err, TOKEN(ECANCELED));
    coro_cond_free(shared_cond);
    coro_mutex_free(shared_mutex);
    coro_mutex_free(other);
    return NULL;
}

/* Cancelled while waiting, a task takes the mutex back (shielded) before
 * it returns ECANCELED. */
START_TEST(condition_cancellation_retakes_the_mutex)
{
    run_expect(cond_cancel_main, NULL, 0);
}
END_TEST

/* The state a wait_for waits on: how often its predicate was asked, and
 * what it answers. */
static int pred_calls;
static int pred_value;

static int pred_is_set(void *arg)
{
    pred_calls++;
    trace("pred%d", *(int *)arg);
    return *(int *)arg;
}

static void *wait_for_pred(void *arg)
{
    (void)arg;
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 5), 0);
    int err = await_cond_wait_for(shared_cond, shared_mutex, pred_is_set,
                                  &pred_value, 5);
    trace("done%d", err);
    /* Held on return, whatever the outcome. */
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), 0);
    return TOKEN(err);
}

static void *notify_under_lock(void)
{
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 1), 0);
    ck_assert_int_eq(coro_cond_notify(shared_cond, 1), 0);
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), 0);
    return NULL;
}

static void *wait_for_main(void *arg)
{
    (void)arg;
    shared_mutex = coro_mutex_new();
    shared_cond = coro_cond_new();
    pred_value = 0;
    coro_task *t = coro_spawn(wait_for_pred, NULL);
    await_yield();
    trace("notify");
    notify_under_lock(); /* the predicate is still false: waits on */
    await_yield();
    pred_value = 1;
    trace("notify");
    notify_under_lock();
    void *res;
    ck_assert_int_eq(await_task(t, &res), 0);
    ck_assert_ptr_eq(res, TOKEN(0));
    ck_assert_int_eq(coro_cond_free(shared_cond), 0);
    ck_assert_int_eq(coro_mutex_free(shared_mutex), 0);
    return NULL;
}

/* The predicate is asked once before waiting and once per notify, with
 * the mutex held; the wait ends when it holds. Mirrors CPython's
 * ConditionTests.test_wait_for. */
START_TEST(condition_wait_for_returns_once_the_predicate_holds)
{
    run_expect(wait_for_main, NULL, 0);
    ck_assert_str_eq(trace_get(),
                     "pred0 notify pred0 notify pred1 done0");
}
END_TEST

static void *bystander(void *arg)
{
    (void)arg;
    trace("bystander");
    return NULL;
}

static void *wait_for_first_main(void *arg)
{
    (void)arg;
    shared_mutex = coro_mutex_new();
    shared_cond = coro_cond_new();
    pred_value = 1;
    /* Without the mutex it is EPERM, true predicate or not, and the
     * predicate is not asked. */
    ck_assert_int_eq(await_cond_wait_for(shared_cond, shared_mutex,
                                         pred_is_set, &pred_value, 1),
                     EPERM);
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 1), 0);
    /* A true predicate returns at once: nothing else runs. */
    coro_task *t = coro_spawn(bystander, NULL);
    ck_assert_int_eq(await_cond_wait_for(shared_cond, shared_mutex,
                                         pred_is_set, &pred_value, 0),
                     0);
    trace("returned");
    ck_assert_int_eq(coro_mutex_locked(shared_mutex), 1);
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), 0);
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_int_eq(coro_cond_free(shared_cond), 0);
    ck_assert_int_eq(coro_mutex_free(shared_mutex), 0);
    return NULL;
}

/* The predicate is asked before any wait. Mirrors CPython's
 * ConditionTests.test_wait_for_unacquired, but stricter: a wait_for
 * without the mutex is EPERM even when the predicate already holds. */
START_TEST(condition_wait_for_asks_the_predicate_before_waiting)
{
    run_expect(wait_for_first_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "pred1 returned bystander");
}
END_TEST

static int notifier_stop;

static void *keep_notifying(void *arg)
{
    (void)arg;
    while (!notifier_stop) {
        coro_cond_notify_all(shared_cond);
        if (await_sleep(0.002) != 0)
            break;
    }
    return NULL;
}

static void *wait_for_timeout_main(void *arg)
{
    (void)arg;
    shared_mutex = coro_mutex_new();
    shared_cond = coro_cond_new();
    pred_value = 0;
    pred_calls = 0;
    notifier_stop = 0;
    coro_task *n = coro_spawn(keep_notifying, NULL);
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 1), 0);
    double t0 = coro_now();
    int err = await_cond_wait_for(shared_cond, shared_mutex, pred_is_set,
                                  &pred_value, 0.05);
    double took = coro_now() - t0;
    notifier_stop = 1;
    ck_assert_int_eq(err, ETIMEDOUT);
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), 0); /* held */
    /* Notifies woke it and found the predicate false, and still the
     * timeout ran from the call, not from the last notify. */
    ck_assert_int_ge(pred_calls, 3);
    ck_assert_double_ge(took, 0.05);
    ck_assert_msg(took < 0.05 + 0.25 * test_slow(), "took %.3f s", took);
    /* Timeout 0 with a false predicate only tries. */
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 1), 0);
    ck_assert_int_eq(await_cond_wait_for(shared_cond, shared_mutex,
                                         pred_is_set, &pred_value, 0),
                     ETIMEDOUT);
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), 0);
    ck_assert_int_eq(await_task(n, NULL), 0);
    ck_assert_int_eq(coro_cond_free(shared_cond), 0);
    ck_assert_int_eq(coro_mutex_free(shared_mutex), 0);
    return NULL;
}

/* One timeout covers the whole wait_for, however many notifies come
 * while the predicate stays false (asyncio: wait_for under
 * asyncio.timeout, as ConditionTests.test_timeout_in_block). If each
 * notify restarted it, the wait would never end. */
START_TEST(condition_wait_for_timeout_covers_the_whole_wait)
{
    run_expect(wait_for_timeout_main, NULL, 0);
}
END_TEST

static void *wait_for_cancel_main(void *arg)
{
    (void)arg;
    shared_mutex = coro_mutex_new();
    shared_cond = coro_cond_new();
    pred_value = 0;
    coro_task *t = coro_spawn(wait_for_pred, NULL);
    await_yield();
    /* Hold the mutex, so that the cancelled waiter must wait for it. */
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 1), 0);
    coro_cancel(t);
    await_sleep(0.005);
    trace("unlock");
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), 0);
    void *res;
    ck_assert_int_eq(await_task(t, &res), ECANCELED);
    ck_assert_ptr_eq(res, TOKEN(ECANCELED));
    /* Cancelled before: ECANCELED without asking the predicate. */
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 1), 0);
    coro_cancel(coro_self());
    pred_value = 1;
    ck_assert_int_eq(await_cond_wait_for(shared_cond, shared_mutex,
                                         pred_is_set, &pred_value, 1),
                     ECANCELED);
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), 0);
    ck_assert_int_eq(coro_cond_free(shared_cond), 0);
    ck_assert_int_eq(coro_mutex_free(shared_mutex), 0);
    return NULL;
}

/* Cancelled while it waits, a wait_for takes the mutex back and returns
 * ECANCELED without asking the predicate again. Mirrors CPython's
 * ConditionTests.test_wait_cancel, for wait_for. */
START_TEST(condition_wait_for_cancelled_retakes_the_mutex)
{
    ck_assert_int_eq(coro_run(wait_for_cancel_main, NULL, NULL), ECANCELED);
    ck_assert_str_eq(trace_get(), "pred0 unlock done125");
}
END_TEST

static void *wait_on_other_mutex(void *arg)
{
    coro_mutex *other = arg;
    ck_assert_int_eq(await_mutex_lock(other, 5), 0);
    int err = await_cond_wait(shared_cond, other, 0.01);
    ck_assert_int_eq(coro_mutex_unlock(other), 0);
    return TOKEN(err);
}

static void *wait_for_errors_main(void *arg)
{
    (void)arg;
    shared_mutex = coro_mutex_new();
    shared_cond = coro_cond_new();
    coro_mutex *other = coro_mutex_new();
    pred_value = 0;
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 1), 0);
    ck_assert_int_eq(await_cond_wait_for(shared_cond, shared_mutex, NULL,
                                         NULL, 1),
                     EINVAL);
    ck_assert_int_eq(await_cond_wait_for(NULL, shared_mutex, pred_is_set,
                                         &pred_value, 1),
                     EINVAL);
    ck_assert_int_eq(await_cond_wait_for(shared_cond, NULL, pred_is_set,
                                         &pred_value, 1),
                     EINVAL);
    ck_assert_int_eq(await_cond_wait_for(shared_cond, shared_mutex,
                                         pred_is_set, &pred_value, NAN),
                     EINVAL);
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), 0);
    /* Woken by a notify, it finds a task waiting on the condition with
     * another mutex before it can wait again: EINVAL, its mutex held.
     * The other task is woken (handed `other`) first, so it runs first.
     */
    ck_assert_int_eq(await_mutex_lock(other, 1), 0);
    coro_task *t = coro_spawn(wait_for_pred, NULL);
    coro_task *o = coro_spawn(wait_on_other_mutex, other);
    await_yield();
    ck_assert_int_eq(coro_mutex_unlock(other), 0);
    ck_assert_int_eq(coro_cond_notify(shared_cond, 1), 0);
    void *res;
    ck_assert_int_eq(await_task(t, &res), 0);
    ck_assert_ptr_eq(res, TOKEN(EINVAL));
    ck_assert_int_eq(await_task(o, &res), 0);
    ck_assert_ptr_eq(res, TOKEN(ETIMEDOUT));
    ck_assert_int_eq(coro_cond_free(shared_cond), 0);
    ck_assert_int_eq(coro_mutex_free(shared_mutex), 0);
    ck_assert_int_eq(coro_mutex_free(other), 0);
    return NULL;
}

START_TEST(condition_wait_for_bad_input)
{
    run_expect(wait_for_errors_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "pred0 pred0 done22");
    /* Outside a coroutine. */
    coro_cond *c = coro_cond_new();
    coro_mutex *m = coro_mutex_new();
    ck_assert_int_eq(await_cond_wait_for(c, m, pred_is_set, &pred_value, 1),
                     EPERM);
    ck_assert_int_eq(coro_cond_free(c), 0);
    ck_assert_int_eq(coro_mutex_free(m), 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Barrier                                                                */
/* ---------------------------------------------------------------------- */

struct party {
    coro_barrier *b;
    double        timeout;
    const char   *name;
    int           err;
    unsigned      index;
};

static void *party(void *arg)
{
    struct party *p = arg;
    unsigned index = 99; /* on this task's stack: written once it runs */
    p->err = await_barrier_wait(p->b, p->timeout, &index);
    p->index = index;
    trace("%s%d:%u", p->name, p->err, index);
    return NULL;
}

static const char *const names[] = { "a", "b", "c", "d", "e", "f" };

static void *barrier_main(void *arg)
{
    (void)arg;
    enum { N = 5 };
    coro_barrier *b = coro_barrier_new(N);
    ck_assert_uint_eq(coro_barrier_parties(b), N);
    struct party p[N];
    coro_task *t[N];
    for (unsigned i = 0; i < N; i++) {
        ck_assert_uint_eq(coro_barrier_waiting(b), i);
        p[i] = (struct party){ b, 5, names[i], -1, 99 };
        t[i] = coro_spawn(party, &p[i]);
        await_yield();
        trace("%u", coro_barrier_waiting(b));
    }
    ck_assert_int_eq(await_gather(t, N, NULL, NULL), 0);
    for (unsigned i = 0; i < N; i++) {
        ck_assert_int_eq(p[i].err, 0);
        ck_assert_uint_eq(p[i].index, i);
    }
    ck_assert_uint_eq(coro_barrier_waiting(b), 0);
    ck_assert_int_eq(coro_barrier_broken(b), 0);
    ck_assert_int_eq(coro_barrier_free(b), 0);
    return NULL;
}

/* Nobody passes before the last party arrives; each learns its place in
 * arrival order; the last does not wait. Mirrors CPython's
 * BarrierTests.test_filling_task_by_task, test_context_manager and
 * test_filling_tasks_check_return_value. */
START_TEST(barrier_releases_every_party_with_its_arrival_index)
{
    run_expect(barrier_main, NULL, 0);
    ck_assert_str_eq(trace_get(),
                     "1 2 3 4 e0:4 0 a0:0 b0:1 c0:2 d0:3");
}
END_TEST

static void *barrier_one_main(void *arg)
{
    (void)arg;
    coro_barrier *b = coro_barrier_new(1);
    coro_task *t = coro_spawn(bystander, NULL);
    for (int i = 0; i < 2; i++) {
        unsigned index = 99;
        ck_assert_int_eq(await_barrier_wait(b, 0, &index), 0);
        ck_assert_uint_eq(index, 0);
        ck_assert_uint_eq(coro_barrier_waiting(b), 0);
    }
    trace("passed");
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_int_eq(coro_barrier_broken(b), 0);
    ck_assert_int_eq(await_barrier_wait(b, -1, NULL), 0); /* no index */
    ck_assert_int_eq(coro_barrier_free(b), 0);
    return NULL;
}

/* A barrier of one party passes its task at once, every time, without
 * letting another run. Mirrors CPython's BarrierTests.test_filling_one_task
 * and test_filling_one_task_twice. */
START_TEST(barrier_of_one_party_never_waits)
{
    run_expect(barrier_one_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "passed bystander");
}
END_TEST

enum { ROUND_PARTIES = 4, ROUNDS = 3 };
static coro_barrier *round_barrier;
static int passed[ROUNDS];

static void *round_runner(void *arg)
{
    (void)arg;
    for (int r = 0; r < ROUNDS; r++) {
        if (await_barrier_wait(round_barrier, 5, NULL) != 0)
            return coro_fail(EIO);
        /* Everyone passed the round before before anyone passes this. */
        if (r > 0)
            ck_assert_int_eq(passed[r - 1], ROUND_PARTIES);
        passed[r]++;
        await_yield();
    }
    return NULL;
}

static void *barrier_rounds_main(void *arg)
{
    (void)arg;
    round_barrier = coro_barrier_new(ROUND_PARTIES);
    memset(passed, 0, sizeof passed);
    coro_task *t[ROUND_PARTIES];
    for (int i = 0; i < ROUND_PARTIES; i++)
        t[i] = coro_spawn(round_runner, NULL);
    ck_assert_int_eq(await_gather(t, ROUND_PARTIES, NULL, NULL), 0);
    for (int r = 0; r < ROUNDS; r++)
        ck_assert_int_eq(passed[r], ROUND_PARTIES);
    ck_assert_int_eq(coro_barrier_free(round_barrier), 0);
    return NULL;
}

/* The barrier serves round after round, and no task passes a round before
 * every party has passed the one before. Mirrors CPython's
 * BarrierTests.test_filling_tasks_wait_twice and
 * test_blocking_tasks_while_draining. */
START_TEST(barrier_serves_round_after_round)
{
    run_expect(barrier_rounds_main, NULL, 0);
}
END_TEST

static void *barrier_cancel_main(void *arg)
{
    (void)arg;
    coro_barrier *b = coro_barrier_new(3);
    struct party p[4];
    coro_task *t[4];
    for (int i = 0; i < 2; i++) {
        p[i] = (struct party){ b, 5, names[i], -1, 99 };
        t[i] = coro_spawn(party, &p[i]);
    }
    await_yield();
    ck_assert_uint_eq(coro_barrier_waiting(b), 2);
    coro_cancel(t[0]);
    await_yield();
    ck_assert_uint_eq(coro_barrier_waiting(b), 1);
    ck_assert_int_eq(await_task(t[0], NULL), ECANCELED);
    ck_assert_int_eq(p[0].err, ECANCELED);
    for (int i = 2; i < 4; i++) {
        p[i] = (struct party){ b, 5, names[i], -1, 99 };
        t[i] = coro_spawn(party, &p[i]);
        await_yield();
    }
    ck_assert_int_eq(await_gather(t + 1, 3, NULL, NULL), 0);
    /* The indices count those there at the trip: no gap, no repeat. */
    for (int i = 1; i < 4; i++) {
        ck_assert_int_eq(p[i].err, 0);
        ck_assert_uint_eq(p[i].index, (unsigned)i - 1);
    }
    ck_assert_int_eq(coro_barrier_broken(b), 0);
    ck_assert_uint_eq(coro_barrier_waiting(b), 0);
    ck_assert_int_eq(coro_barrier_free(b), 0);
    return NULL;
}

/* A waiter cancelled while it waits leaves the round, which waits for one
 * more; the barrier is not broken. Mirrors CPython's
 * BarrierTests.test_filling_tasks_cancel_one. */
START_TEST(barrier_waiter_cancelled_leaves_without_breaking_it)
{
    run_expect(barrier_cancel_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "a125:99 d0:2 b0:0 c0:1");
}
END_TEST

static void *barrier_timeout_main(void *arg)
{
    (void)arg;
    coro_barrier *b = coro_barrier_new(2);
    unsigned index = 99;
    double t0 = coro_now();
    ck_assert_int_eq(await_barrier_wait(b, 0.02, &index), ETIMEDOUT);
    double took = coro_now() - t0;
    ck_assert_double_ge(took, 0.02);
    ck_assert_msg(took < 0.02 + 0.25 * test_slow(), "took %.3f s", took);
    ck_assert_uint_eq(index, 99);
    ck_assert_uint_eq(coro_barrier_waiting(b), 0);
    ck_assert_int_eq(coro_barrier_broken(b), 0);
    /* Timeout 0 only tries: the others run once. */
    ck_assert_int_eq(await_barrier_wait(b, 0, &index), ETIMEDOUT);
    ck_assert_uint_eq(coro_barrier_waiting(b), 0);
    /* ... and passes if its arrival completes the round. */
    struct party p = { b, 5, "a", -1, 99 };
    coro_task *t = coro_spawn(party, &p);
    await_yield();
    ck_assert_int_eq(await_barrier_wait(b, 0, &index), 0);
    ck_assert_uint_eq(index, 1);
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_int_eq(p.err, 0);
    ck_assert_int_eq(coro_barrier_free(b), 0);
    return NULL;
}

/* A waiter that times out leaves as a cancelled one does: the barrier is
 * not broken (asyncio's timeout is a cancellation; threading.Barrier's
 * would break it). */
START_TEST(barrier_waiter_timing_out_leaves_without_breaking_it)
{
    run_expect(barrier_timeout_main, NULL, 0);
}
END_TEST

static void *barrier_reset_main(void *arg)
{
    (void)arg;
    enum { N = 4 };
    coro_barrier *b = coro_barrier_new(N);
    ck_assert_int_eq(coro_barrier_reset(b), 0); /* nobody waits */
    ck_assert_int_eq(coro_barrier_broken(b), 0);
    struct party p[N];
    coro_task *t[N];
    for (int i = 0; i < N - 1; i++) {
        p[i] = (struct party){ b, 5, names[i], -1, 99 };
        t[i] = coro_spawn(party, &p[i]);
    }
    await_yield();
    ck_assert_uint_eq(coro_barrier_waiting(b), N - 1);
    trace("reset");
    ck_assert_int_eq(coro_barrier_reset(b), 0);
    ck_assert_uint_eq(coro_barrier_waiting(b), 0);
    ck_assert_int_eq(coro_barrier_broken(b), 0);
    ck_assert_int_eq(await_gather(t, N - 1, NULL, NULL), 0);
    for (int i = 0; i < N - 1; i++)
        ck_assert_int_eq(p[i].err, EPIPE);
    /* Whole again: a full round passes. */
    for (int i = 0; i < N; i++) {
        p[i] = (struct party){ b, 5, names[i], -1, 99 };
        t[i] = coro_spawn(party, &p[i]);
    }
    ck_assert_int_eq(await_gather(t, N, NULL, NULL), 0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(p[i].err, 0);
    ck_assert_int_eq(coro_barrier_free(b), 0);
    return NULL;
}

/* A reset fails the waiting tasks with EPIPE (asyncio's
 * BrokenBarrierError) and leaves the barrier whole and empty. Mirrors
 * CPython's BarrierTests.test_reset_barrier,
 * test_reset_barrier_while_tasks_waiting and
 * test_reset_barrier_while_tasks_waiting_and_waiting_again. */
START_TEST(barrier_reset_fails_the_waiters_and_leaves_it_whole)
{
    run_expect(barrier_reset_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "reset a32:99 b32:99 c32:99 "
                                  "d0:3 a0:0 b0:1 c0:2");
}
END_TEST

static void *barrier_abort_main(void *arg)
{
    (void)arg;
    coro_barrier *b = coro_barrier_new(3);
    struct party p[3];
    coro_task *t[3];
    for (int i = 0; i < 2; i++) {
        p[i] = (struct party){ b, 5, names[i], -1, 99 };
        t[i] = coro_spawn(party, &p[i]);
    }
    await_yield();
    trace("abort");
    ck_assert_int_eq(coro_barrier_abort(b), 0);
    ck_assert_int_eq(coro_barrier_broken(b), 1);
    ck_assert_uint_eq(coro_barrier_waiting(b), 0);
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), 0);
    /* Broken until reset: every wait is EPIPE at once. */
    coro_task *by = coro_spawn(bystander, NULL);
    ck_assert_int_eq(await_barrier_wait(b, -1, NULL), EPIPE);
    ck_assert_int_eq(await_barrier_wait(b, 0, NULL), EPIPE);
    trace("refused");
    ck_assert_int_eq(await_task(by, NULL), 0);
    ck_assert_int_eq(coro_barrier_abort(b), 0); /* again: still broken */
    ck_assert_int_eq(coro_barrier_broken(b), 1);
    ck_assert_int_eq(coro_barrier_reset(b), 0);
    ck_assert_int_eq(coro_barrier_broken(b), 0);
    for (int i = 0; i < 3; i++) {
        p[i] = (struct party){ b, 5, names[i], -1, 99 };
        t[i] = coro_spawn(party, &p[i]);
    }
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), 0);
    ck_assert_int_eq(coro_barrier_free(b), 0);
    return NULL;
}

/* An abort fails the waiting tasks and every later wait with EPIPE, until
 * a reset. Mirrors CPython's BarrierTests.test_abort_barrier,
 * test_abort_barrier_when_exception and
 * test_abort_barrier_when_exception_then_resetting. */
START_TEST(barrier_abort_breaks_it_until_reset)
{
    run_expect(barrier_abort_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "abort a32:99 b32:99 refused bystander "
                                  "c0:2 a0:0 b0:1");
}
END_TEST

static void *barrier_after_trip_main(void *arg)
{
    (void)arg;
    coro_barrier *b = coro_barrier_new(3);
    struct party p[2];
    coro_task *t[2];
    for (int i = 0; i < 2; i++) {
        p[i] = (struct party){ b, 5, names[i], -1, 99 };
        t[i] = coro_spawn(party, &p[i]);
    }
    await_yield();
    /* The trip, then a reset and an abort before the others have run. */
    unsigned index;
    ck_assert_int_eq(await_barrier_wait(b, 5, &index), 0);
    ck_assert_int_eq(coro_barrier_reset(b), 0);
    ck_assert_int_eq(coro_barrier_abort(b), 0);
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(p[i].err, 0);
        ck_assert_uint_eq(p[i].index, (unsigned)i);
    }
    ck_assert_int_eq(coro_barrier_free(b), 0);
    return NULL;
}

/* The trip completes every waiter before any of them runs: a reset or an
 * abort right after it does not reach them. Differs on purpose from
 * CPython's BarrierTests.test_reset_barrier_when_tasks_half_draining and
 * test_abort_barrier_when_tasks_half_draining_half_blocking, where
 * released tasks that have not yet run get BrokenBarrierError. */
START_TEST(barrier_trip_outlives_a_reset_before_the_parties_run)
{
    run_expect(barrier_after_trip_main, NULL, 0);
}
END_TEST

static void *other_thread_reads_barrier(void *arg)
{
    coro_barrier *b = arg;
    int ok = coro_barrier_parties(b) == 0 && coro_barrier_waiting(b) == 0 &&
             coro_barrier_broken(b) == 0 && coro_barrier_reset(b) == EINVAL &&
             coro_barrier_abort(b) == EINVAL;
    return TOKEN(ok);
}

static void *barrier_errors_main(void *arg)
{
    coro_barrier *b = arg;
    ck_assert_int_eq(await_barrier_wait(NULL, 1, NULL), EINVAL);
    ck_assert_int_eq(await_barrier_wait(b, NAN, NULL), EINVAL);
    struct party p = { b, 5, "a", -1, 99 };
    coro_task *t = coro_spawn(party, &p);
    await_yield();
    ck_assert_int_eq(coro_barrier_free(b), EBUSY);
    ck_assert_int_eq(coro_barrier_abort(b), 0);
    ck_assert_int_eq(await_task(t, NULL), 0);
    return NULL;
}

/* Mirrors CPython's BarrierTests.test_barrier_parties (no barrier of 0
 * parties), and the rest of the usual bad input. */
START_TEST(barrier_bad_input)
{
    errno = 0;
    ck_assert_ptr_null(coro_barrier_new(0));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(coro_barrier_reset(NULL), EINVAL);
    ck_assert_int_eq(coro_barrier_abort(NULL), EINVAL);
    ck_assert_uint_eq(coro_barrier_parties(NULL), 0);
    ck_assert_uint_eq(coro_barrier_waiting(NULL), 0);
    ck_assert_int_eq(coro_barrier_broken(NULL), 0);
    ck_assert_int_eq(coro_barrier_free(NULL), 0);
    coro_barrier *b = coro_barrier_new(2);
    ck_assert_int_eq(await_barrier_wait(b, 1, NULL), EPERM);
    run_expect(barrier_errors_main, b, 0);
    /* Claimed by this thread's loop: another thread reads 0 and may not
     * reset or abort it. */
    ck_assert_int_eq(coro_barrier_broken(b), 1);
    pthread_t th;
    void *ok;
    ck_assert_int_eq(pthread_create(&th, NULL, other_thread_reads_barrier, b),
                     0);
    ck_assert_int_eq(test_join(th, &ok, 10), 0);
    ck_assert_ptr_eq(ok, TOKEN(1));
    ck_assert_int_eq(coro_barrier_broken(b), 1);
    ck_assert_int_eq(coro_barrier_free(b), 0);
}
END_TEST

static void *wait_forever_at_barrier(void *arg)
{
    return TOKEN(await_barrier_wait(arg, -1, NULL));
}

static void *barrier_deadlock_main(void *arg)
{
    coro_barrier **b = arg;
    *b = coro_barrier_new(2);
    void *err;
    await_task(coro_spawn(wait_forever_at_barrier, *b), &err);
    return err;
}

/* A party nobody will ever join, and nothing else alive: EDEADLK, and the
 * report says where it waits. */
START_TEST(blocked_forever_at_a_barrier_is_a_deadlock)
{
    coro_barrier *b = NULL;
    char *report = run_reporting(barrier_deadlock_main, &b, EDEADLK);
    char at[32];
    snprintf(at, sizeof at, "(%p)", (void *)b);
    ck_assert_int_eq(coro_barrier_free(b), 0); /* its waiter left */
    expect_deadlock_report(report, 2);
    expect_report_line(report, "#2 ", " wait_forever_at_ba",
                       "on a barrier", at, NULL);
    free(report);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* The new waits on the shared stack                                      */
/* ---------------------------------------------------------------------- */

/* Each new wait parked on the shared stack while another shared-stack
 * task writes all over it: nothing the waits hand out may be there.
 * Objects and buffers are static; only the barrier's index lives on the
 * waiting task's stack, which the call allows. */
static coro_barrier *sh_barrier;
static coro_cond *sh_cond;
static coro_mutex *sh_mutex;
static coro_queue *sh_prio, *sh_lifo;
static int sh_flag;
static void *sh_item;
static int sh_err[4];
static unsigned sh_index;

static void *sh_barrier_party(void *arg)
{
    (void)arg;
    unsigned index = 99;
    sh_err[0] = await_barrier_wait(sh_barrier, 5, &index);
    sh_index = index;
    return NULL;
}

static void *sh_wait_for(void *arg)
{
    (void)arg;
    if (await_mutex_lock(sh_mutex, 5) != 0)
        return coro_fail(EIO);
    sh_err[1] = await_cond_wait_for(sh_cond, sh_mutex, pred_is_set, &sh_flag,
                                    5);
    coro_mutex_unlock(sh_mutex);
    return NULL;
}

static void *sh_get(void *arg)
{
    (void)arg;
    sh_err[2] = await_queue_get(sh_prio, &sh_item, 5);
    return NULL;
}

static void *sh_put(void *arg)
{
    (void)arg;
    sh_err[3] = await_queue_put(sh_lifo, TOKEN(2), 5);
    return NULL;
}

static void *sh_scribble(void *arg)
{
    (void)arg;
    for (int pass = 0; pass < 4; pass++) {
        char big[8192];
        frame_fill(big, 0x41 + pass, sizeof big);
        if (await_sleep(0.002) != 0)
            break;
    }
    return NULL;
}

static void *new_waits_shared_main(void *arg)
{
    (void)arg;
    sh_barrier = coro_barrier_new(2);
    sh_cond = coro_cond_new();
    sh_mutex = coro_mutex_new();
    sh_prio = coro_queue_new_priority(0, by_token);
    sh_lifo = coro_queue_new_lifo(1);
    ck_assert_int_eq(coro_queue_try_put(sh_lifo, TOKEN(1)), 0);
    sh_flag = 0;
    sh_item = NULL;
    for (int i = 0; i < 4; i++)
        sh_err[i] = -1;
    coro_attr sh = { .flags = CORO_SHARED_STACK };
    coro_fn fns[5] = { sh_barrier_party, sh_wait_for, sh_get, sh_put,
                       sh_scribble };
    coro_task *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = coro_spawn_attr(&sh, fns[i], NULL);
    await_sleep(0.004); /* all parked, the scribbler at work */
    unsigned index;
    ck_assert_int_eq(await_barrier_wait(sh_barrier, 1, &index), 0);
    ck_assert_uint_eq(index, 1);
    ck_assert_int_eq(await_mutex_lock(sh_mutex, 1), 0);
    sh_flag = 1;
    ck_assert_int_eq(coro_cond_notify_all(sh_cond), 0);
    ck_assert_int_eq(coro_mutex_unlock(sh_mutex), 0);
    ck_assert_int_eq(coro_queue_try_put(sh_prio, TOKEN(7)), 0);
    void *item;
    ck_assert_int_eq(coro_queue_try_get(sh_lifo, &item), 0);
    ck_assert_ptr_eq(item, TOKEN(1));
    ck_assert_int_eq(await_gather(t, 5, NULL, NULL), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(sh_err[i], 0);
    ck_assert_uint_eq(sh_index, 0);
    ck_assert_ptr_eq(sh_item, TOKEN(7));
    ck_assert_int_eq(coro_queue_try_get(sh_lifo, &item), 0);
    ck_assert_ptr_eq(item, TOKEN(2));
    ck_assert_int_eq(coro_barrier_free(sh_barrier), 0);
    ck_assert_int_eq(coro_cond_free(sh_cond), 0);
    ck_assert_int_eq(coro_mutex_free(sh_mutex), 0);
    ck_assert_int_eq(coro_queue_free(sh_prio), 0);
    ck_assert_int_eq(coro_queue_free(sh_lifo), 0);
    return NULL;
}

START_TEST(new_waits_parked_on_the_shared_stack_survive_others)
{
    run_expect(new_waits_shared_main, NULL, 0);
}
END_TEST

Suite *sync_suite(void)
{
    Suite *s = suite_create("sync");
    TCase *tc = test_case("channel", 20);
    tcase_add_test(tc, rendezvous_send_waits_for_a_receiver);
    tcase_add_test(tc, buffered_channel_holds_capacity_elements);
    tcase_add_test(tc, channel_waiters_are_served_in_fifo_order);
    tcase_add_test(tc, close_drains_then_refuses);
    tcase_add_test(tc, cancelled_channel_waiters_leave_cleanly);
    tcase_add_test(tc, select_picks_the_first_ready_op);
    tcase_add_test(tc, select_over_many_channels_leaves_the_others);
    tcase_add_test(tc, select_parked_on_the_shared_stack_survives_other_tasks);
    tcase_add_test(tc, a_select_abandoned_in_a_deadlock_leaks_nothing);
    tcase_add_test(tc, channel_bad_input);
    tcase_add_test(tc, objects_belong_to_the_first_loops_thread);
    tcase_add_test(tc, ten_thousand_tasks_lose_and_duplicate_nothing);
    tcase_add_test(tc, blocked_forever_on_a_channel_is_a_deadlock);
    suite_add_tcase(s, tc);

    tc = test_case("queue", 20);
    tcase_add_test(tc, queue_is_fifo_bounded_or_not);
    tcase_add_test(tc, queue_join_and_shutdown);
    tcase_add_test(tc, queue_waiters_cancelled_or_shut_down);
    tcase_add_test(tc, lifo_queue_gets_the_newest_first);
    tcase_add_test(tc, priority_queue_gets_the_smallest_first);
    tcase_add_test(tc, priority_queue_waiters_wait_and_leave_as_a_queues_do);
    tcase_add_test(tc, lifo_and_priority_queues_count_work_for_join);
    tcase_add_test(tc, every_kind_of_queue_shuts_down_alike);
    tcase_add_test(tc, lifo_and_priority_queue_bad_input);
    tcase_add_test(tc, queue_shutdown_now_drops_the_items_and_releases_join);
    tcase_add_test(tc,
                   queue_shutdown_now_leaves_items_taken_before_to_task_done);
    tcase_add_test(tc, queue_shutdown_now_fails_every_waiter_with_epipe);
    suite_add_tcase(s, tc);

    tc = test_case("locks", 20);
    tcase_add_test(tc, mutex_is_exclusive_fifo_without_barging);
    tcase_add_test(tc, mutex_errors_timeouts_and_cancellation);
    tcase_add_test(tc, a_mutex_is_never_inherited_by_a_later_run);
    tcase_add_test(tc, semaphore_counts_permits);
    tcase_add_test(tc, bounded_semaphore_refuses_a_release_past_its_bound);
    tcase_add_test(tc, mutex_and_semaphore_say_whether_they_are_locked);
    tcase_add_test(tc, event_wakes_every_waiter);
    tcase_add_test(tc, condition_notify_one_and_all);
    tcase_add_test(tc, condition_cancellation_retakes_the_mutex);
    tcase_add_test(tc, condition_wait_for_returns_once_the_predicate_holds);
    tcase_add_test(tc, condition_wait_for_asks_the_predicate_before_waiting);
    tcase_add_test(tc, condition_wait_for_timeout_covers_the_whole_wait);
    tcase_add_test(tc, condition_wait_for_cancelled_retakes_the_mutex);
    tcase_add_test(tc, condition_wait_for_bad_input);
    suite_add_tcase(s, tc);

    tc = test_case("barrier", 20);
    tcase_add_test(tc, barrier_releases_every_party_with_its_arrival_index);
    tcase_add_test(tc, barrier_of_one_party_never_waits);
    tcase_add_test(tc, barrier_serves_round_after_round);
    tcase_add_test(tc, barrier_waiter_cancelled_leaves_without_breaking_it);
    tcase_add_test(tc, barrier_waiter_timing_out_leaves_without_breaking_it);
    tcase_add_test(tc, barrier_reset_fails_the_waiters_and_leaves_it_whole);
    tcase_add_test(tc, barrier_abort_breaks_it_until_reset);
    tcase_add_test(tc, barrier_trip_outlives_a_reset_before_the_parties_run);
    tcase_add_test(tc, barrier_bad_input);
    tcase_add_test(tc, blocked_forever_at_a_barrier_is_a_deadlock);
    suite_add_tcase(s, tc);

    tc = test_case("shared stack", 20);
    tcase_add_test(tc, new_waits_parked_on_the_shared_stack_survive_others);
    suite_add_tcase(s, tc);
    return s;
}
