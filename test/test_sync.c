/* Coordination: channels and select, queues (FIFO, LIFO, priority), mutex,
 * semaphore, event, condition, barrier. Ordering and fairness, capacity,
 * close and shutdown, timeouts, cancellation of a waiter at each call,
 * waits on the shared stack, producer/consumer at scale, deadlocks, and
 * bad input across the objects (NULLs, limits, freeing once woken). */
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

/* The issue's reproduction: a select parked on the shared stack while
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

/* Waits on shared_cond (arg NULL) or with await_cond_wait_for (arg: the
 * predicate's flag), and says how it ended. */
static int flag_is_set(void *arg)
{
    return *(int *)arg;
}

static void *cond_waiter(void *arg)
{
    ck_assert_int_eq(await_mutex_lock(shared_mutex, 5), 0);
    int err = arg ? await_cond_wait_for(shared_cond, shared_mutex,
                                        flag_is_set, arg, 5)
                  : await_cond_wait(shared_cond, shared_mutex, 5);
    ck_assert_int_eq(coro_mutex_unlock(shared_mutex), 0);
    trace("woke%d", err);
    return NULL;
}

static void *cond_free_after_notify_main(void *arg)
{
    (void)arg;
    static int flag;
    shared_mutex = coro_mutex_new();
    for (int round = 0; round < 3; round++) {
        shared_cond = coro_cond_new();
        flag = 0;
        coro_task *t[2] = { coro_spawn(cond_waiter, round ? &flag : NULL),
                            coro_spawn(cond_waiter, round ? &flag : NULL) };
        await_yield(); /* both wait */
        flag = 1;
        if (round == 1)
            ck_assert_int_eq(coro_cond_notify(shared_cond, 2), 0);
        else
            ck_assert_int_eq(coro_cond_notify_all(shared_cond), 0);
        /* Nobody waits on it any more: it may go before they run. */
        ck_assert_int_eq(coro_cond_free(shared_cond), 0);
        shared_cond = NULL;
        ck_assert_int_eq(await_gather(t, 2, NULL, NULL), 0);
    }
    ck_assert_int_eq(coro_mutex_free(shared_mutex), 0);
    return NULL;
}

static void *cond_free_mutex_main(void *arg)
{
    (void)arg;
    shared_mutex = coro_mutex_new();
    shared_cond = coro_cond_new();
    coro_task *t = coro_spawn(cond_waiter, NULL);
    await_yield(); /* t waits, the mutex released meanwhile */
    ck_assert_int_eq(coro_mutex_locked(shared_mutex), 0);
    /* t takes the mutex back as it wakes: it is not free to go. */
    ck_assert_int_eq(coro_mutex_free(shared_mutex), EBUSY);
    ck_assert_int_eq(coro_cond_notify(shared_cond, 1), 0);
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_int_eq(coro_cond_free(shared_cond), 0);
    ck_assert_int_eq(coro_mutex_free(shared_mutex), 0);
    return NULL;
}

/* A mutex that a condition's waiter will take back is busy, though nobody
 * holds it while the waiter waits (it was freed, and the waiter then took
 * a freed mutex). */
START_TEST(a_mutex_a_condition_waiter_will_take_back_is_busy)
{
    run_expect(cond_free_mutex_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "woke0");
}
END_TEST

/* As pthread_cond_destroy allows after a broadcast: a condition whose
 * waiters were all notified may be freed before they run (a woken waiter
 * read the condition after it woke, freed by then). */
START_TEST(a_condition_may_be_freed_once_it_notified_its_waiters)
{
    run_expect(cond_free_after_notify_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "woke0 woke0 woke0 woke0 woke0 woke0");
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

static coro_barrier *py_barrier;
static int barrier_count;
static int barrier_results[3];

/* coro of BarrierTests.test_reset_barrier_while_tasks_draining: notes
 * what each wait returned. */
static void *pass_then_reset_or_wait(void *arg)
{
    (void)arg;
    if (await_barrier_wait(py_barrier, -1, NULL) != 0)
        return NULL;
    int err;
    if (++barrier_count == 5) {
        coro_barrier_reset(py_barrier);
        err = await_barrier_wait(py_barrier, -1, NULL);
        trace("reset-wait %d", err);
    } else {
        err = await_barrier_wait(py_barrier, -1, NULL);
        barrier_results[err == 0 ? 0 : 1]++;
        if (err != EPIPE && err != 0)
            return NULL;
    }
    err = await_barrier_wait(py_barrier, -1, NULL);
    if (err == 0)
        barrier_results[2]++;
    else
        trace("last %d", err);
    return NULL;
}

static void *barrier_reset_draining_main(void *arg)
{
    (void)arg;
    py_barrier = coro_barrier_new(5);
    barrier_count = 0;
    coro_task *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = coro_spawn(pass_then_reset_or_wait, NULL);
    ck_assert_int_eq(await_gather(t, 5, NULL, NULL), ECANCELED);
    /* asyncio: the four others' second wait is held back until the
     * draining ends, after the reset, so it succeeds with the resetter's
     * (results1 4, results2 0), and all five pass the last wait. Here the
     * round ended at the trip, the four wait in the next one already, and
     * the reset fails them (coro.h, barrier): their last wait then passes
     * with the resetter's wait, and the resetter's last wait finds nobody
     * left: the program, as written, deadlocks. */
    ck_assert_int_eq(barrier_results[0], 0);
    ck_assert_int_eq(barrier_results[1], 4);
    ck_assert_int_eq(barrier_results[2], 4);
    ck_assert_str_eq(trace_get(), "reset-wait 0 last 125");
    ck_assert_int_eq(coro_barrier_free(py_barrier), 0);
    return NULL;
}

/* BarrierTests.test_reset_barrier_while_tasks_draining, as coro's barrier
 * without a draining phase gives it: a deadlock (EDEADLK). */
START_TEST(py_barrier_test_reset_barrier_while_tasks_draining)
{
    free(run_reporting(barrier_reset_draining_main, NULL, EDEADLK));
}
END_TEST

/* coro of BarrierTests.test_draining_state: once through, the barrier is
 * empty at once, the round over. */
static void *pass_and_look(void *arg)
{
    (void)arg;
    ck_assert_int_eq(await_barrier_wait(py_barrier, -1, NULL), 0);
    trace("%u", coro_barrier_waiting(py_barrier));
    return NULL;
}

static void *barrier_draining_state_main(void *arg)
{
    (void)arg;
    py_barrier = coro_barrier_new(5);
    coro_task *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = coro_spawn(pass_and_look, NULL);
    ck_assert_int_eq(await_gather(t, 5, NULL, NULL), 0);
    ck_assert_uint_eq(coro_barrier_waiting(py_barrier), 0);
    ck_assert_int_eq(coro_barrier_broken(py_barrier), 0);
    coro_barrier_free(py_barrier);
    return NULL;
}

/* BarrierTests.test_draining_state: asyncio's barrier drains until every
 * released task has left; coro's has no such state (coro.h, barrier): it
 * is empty, and takes the next round, from the trip on. */
START_TEST(py_barrier_test_draining_state)
{
    run_expect(barrier_draining_state_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "0 0 0 0 0");
}
END_TEST

/* ---------------------------------------------------------------------- */
/* CPython's test_queues.py, test by test                                 */
/* ---------------------------------------------------------------------- */

/* Lib/test/test_asyncio/test_queues.py (3.13), translated where coro's
 * calls map: empty() and full() are read from coro_queue_size. The
 * shutdown, LIFO, priority and join tests are above. */

static coro_queue *py_queue;

static void *queue_basics_main(void *arg)
{
    (void)arg;
    /* test_empty */
    py_queue = coro_queue_new(0);
    ck_assert_uint_eq(coro_queue_size(py_queue), 0);
    ck_assert_int_eq(await_queue_put(py_queue, TOKEN(1), -1), 0);
    ck_assert_uint_eq(coro_queue_size(py_queue), 1);
    void *item;
    ck_assert_int_eq(await_queue_get(py_queue, &item, -1), 0);
    ck_assert_ptr_eq(item, TOKEN(1));
    ck_assert_uint_eq(coro_queue_size(py_queue), 0);
    /* test_order */
    ck_assert_int_eq(await_queue_put(py_queue, TOKEN(1), -1), 0);
    ck_assert_int_eq(await_queue_put(py_queue, TOKEN(3), -1), 0);
    ck_assert_int_eq(await_queue_put(py_queue, TOKEN(2), -1), 0);
    static const int order[3] = { 1, 3, 2 };
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(await_queue_get(py_queue, &item, -1), 0);
        ck_assert_ptr_eq(item, TOKEN(order[i]));
    }
    /* test_nonblocking_get, test_nonblocking_get_exception,
     * test_nonblocking_put, test_blocking_put */
    ck_assert_int_eq(coro_queue_try_get(py_queue, &item), EAGAIN);
    ck_assert_int_eq(coro_queue_try_put(py_queue, TOKEN(1)), 0);
    ck_assert_int_eq(coro_queue_try_get(py_queue, &item), 0);
    ck_assert_ptr_eq(item, TOKEN(1));
    coro_queue_free(py_queue);
    /* test_full, test_nonblocking_put_exception */
    py_queue = coro_queue_new(1);
    ck_assert_int_eq(await_queue_put(py_queue, TOKEN(1), -1), 0);
    ck_assert_uint_eq(coro_queue_size(py_queue), 1); /* full */
    ck_assert_int_eq(coro_queue_try_put(py_queue, TOKEN(2)), EAGAIN);
    ck_assert_int_eq(await_queue_put(py_queue, TOKEN(2), 0), ETIMEDOUT);
    coro_queue_free(py_queue);
    return NULL;
}

/* QueueBasicTests.test_empty, test_full, test_order; QueueGetTests
 * .test_nonblocking_get(_exception); QueuePutTests.test_nonblocking_put,
 * test_blocking_put, test_nonblocking_put_exception. */
START_TEST(py_queue_test_basics)
{
    run_expect(queue_basics_main, NULL, 0);
}
END_TEST

static void *queue_put_three(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        int err = await_queue_put(py_queue, TOKEN(i), -1);
        if (err)
            return coro_fail(err);
        trace("%d", i);
    }
    return TOKEN(1);
}

static void *queue_maxsize_main(void *arg)
{
    (void)arg;
    py_queue = coro_queue_new(2);
    coro_task *t = coro_spawn(queue_put_three, NULL);
    await_yield();
    await_yield();
    ck_assert_str_eq(trace_get(), "0 1"); /* blocked on the third */
    void *item;
    ck_assert_int_eq(await_queue_get(py_queue, &item, -1), 0);
    ck_assert_ptr_eq(item, TOKEN(0));
    await_yield();
    ck_assert_str_eq(trace_get(), "0 1 2");
    ck_assert_int_eq(await_queue_get(py_queue, &item, -1), 0);
    ck_assert_ptr_eq(item, TOKEN(1));
    ck_assert_int_eq(await_queue_get(py_queue, &item, -1), 0);
    ck_assert_ptr_eq(item, TOKEN(2));
    ck_assert_int_eq(coro_task_done(t), 1);
    ck_assert_int_eq(await_task(t, &item), 0);
    ck_assert_ptr_eq(item, TOKEN(1));
    coro_queue_free(py_queue);
    return NULL;
}

/* QueueBasicTests.test_maxsize: a putter blocks once maxsize items wait,
 * and goes on as soon as one is taken. */
START_TEST(py_queue_test_maxsize)
{
    run_expect(queue_maxsize_main, NULL, 0);
}
END_TEST

/* A get of py_queue: returns the item, or TOKEN(0x100 + error). */
static void *queue_get_one(void *arg)
{
    if (arg)
        coro_event_set(arg);
    void *item;
    int err = await_queue_get(py_queue, &item, -1);
    return err ? TOKEN(0x100 + err) : item;
}

static void *queue_put_one(void *arg)
{
    return TOKEN(await_queue_put(py_queue, arg, -1));
}

static void *queue_blocking_get_wait_main(void *arg)
{
    (void)arg;
    py_queue = coro_queue_new(0);
    coro_event *started = coro_event_new();
    coro_task *t = coro_spawn(queue_get_one, started);
    ck_assert_int_eq(await_event(started, -1), 0);
    ck_assert_int_eq(coro_task_done(t), 0);
    await_sleep(0.01);
    ck_assert_int_eq(coro_queue_try_put(py_queue, TOKEN(1)), 0);
    void *res;
    ck_assert_int_eq(await_task(t, &res), 0);
    ck_assert_ptr_eq(res, TOKEN(1));
    coro_event_free(started);
    coro_queue_free(py_queue);
    return NULL;
}

/* QueueGetTests.test_blocking_get_wait: a get waits until a put comes. */
START_TEST(py_queue_test_blocking_get_wait)
{
    run_expect(queue_blocking_get_wait_main, NULL, 0);
}
END_TEST

static void *queue_get_cancelled_race_main(void *arg)
{
    (void)arg;
    py_queue = coro_queue_new(0);
    coro_task *t1 = coro_spawn(queue_get_one, NULL);
    coro_task *t2 = coro_spawn(queue_get_one, NULL);
    await_yield();
    coro_cancel(t1);
    await_yield();
    ck_assert_int_eq(coro_task_done(t1), 1);
    ck_assert_int_eq(await_queue_put(py_queue, TOKEN('a'), -1), 0);
    await_yield();
    void *res;
    ck_assert_int_eq(await_task(t2, &res), 0);
    ck_assert_ptr_eq(res, TOKEN('a'));
    ck_assert_int_eq(await_task(t1, &res), ECANCELED);
    ck_assert_ptr_eq(res, TOKEN(0x100 + ECANCELED));
    coro_queue_free(py_queue);
    return NULL;
}

/* QueueGetTests.test_get_cancelled_race: a cancelled getter leaves, and
 * the item goes to the next one. */
START_TEST(py_queue_test_get_cancelled_race)
{
    run_expect(queue_get_cancelled_race_main, NULL, 0);
}
END_TEST

static void *queue_get_with_waiting_putters_main(void *arg)
{
    (void)arg;
    py_queue = coro_queue_new(1);
    coro_task *t[2] = { coro_spawn(queue_put_one, TOKEN('a')),
                        coro_spawn(queue_put_one, TOKEN('b')) };
    void *item;
    ck_assert_int_eq(await_queue_get(py_queue, &item, -1), 0);
    ck_assert_ptr_eq(item, TOKEN('a'));
    ck_assert_int_eq(await_queue_get(py_queue, &item, -1), 0);
    ck_assert_ptr_eq(item, TOKEN('b'));
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), 0);
    coro_queue_free(py_queue);
    return NULL;
}

/* QueueGetTests.test_get_with_waiting_putters (and test_get_with_putters):
 * a get makes room for the first waiting putter. */
START_TEST(py_queue_test_get_with_waiting_putters)
{
    run_expect(queue_get_with_waiting_putters_main, NULL, 0);
}
END_TEST

static void *queue_produce(void *arg)
{
    for (int i = 0; i < (int)(uintptr_t)arg; i++) {
        int err = await_queue_put(py_queue, TOKEN(i), -1);
        if (err)
            return coro_fail(err);
    }
    return NULL;
}

static void *queue_consume(void *arg)
{
    for (int i = 0; i < (int)(uintptr_t)arg; i++) {
        void *item;
        int err = await_queue_get(py_queue, &item, -1);
        if (err)
            return coro_fail(err);
        ck_assert_ptr_eq(item, TOKEN(i));
    }
    return NULL;
}

/* getter of test_why_are_putters_waiting: after a yield, takes what is
 * queued without waiting. */
static void *queue_take_queued(void *arg)
{
    (void)arg;
    await_yield();
    size_t n = coro_queue_size(py_queue);
    for (size_t i = 0; i < n; i++) {
        void *item;
        ck_assert_int_eq(coro_queue_try_get(py_queue, &item), 0);
    }
    return NULL;
}

static void *queue_waiting_main(void *arg)
{
    int putters = arg != NULL;
    py_queue = coro_queue_new(putters ? 2 : 1);
    coro_group *g = coro_group_new();
    if (putters) {
        coro_group_spawn(g, NULL, queue_take_queued, NULL);
        for (int i = 0; i < 4; i++)
            coro_group_spawn(g, NULL, queue_put_one, TOKEN(i));
    } else {
        coro_group_spawn(g, NULL, queue_produce, TOKEN(5));
        coro_group_spawn(g, NULL, queue_consume, TOKEN(5));
    }
    ck_assert_int_eq(await_group(g), 0);
    coro_group_free(g);
    /* putters: 0 and 1 taken, 2 and 3 moved in as they were. */
    ck_assert_uint_eq(coro_queue_size(py_queue), putters ? 2 : 0);
    coro_queue_free(py_queue);
    return NULL;
}

/* QueueGetTests.test_why_are_getters_waiting: a producer and a consumer
 * through a queue of one both finish. */
START_TEST(py_queue_test_why_are_getters_waiting)
{
    run_expect(queue_waiting_main, NULL, 0);
}
END_TEST

/* QueuePutTests.test_why_are_putters_waiting: gets without waiting let
 * every waiting putter in. */
START_TEST(py_queue_test_why_are_putters_waiting)
{
    run_expect(queue_waiting_main, TOKEN(1), 0);
}
END_TEST

static void *queue_cancelled_getters_main(void *arg)
{
    (void)arg;
    py_queue = coro_queue_new(5);
    void *item;
    ck_assert_int_eq(await_queue_get(py_queue, &item, 0.01), ETIMEDOUT);
    ck_assert_int_eq(coro_queue_free(py_queue), 0); /* no getter left */
    py_queue = coro_queue_new(1);
    ck_assert_int_eq(coro_queue_try_put(py_queue, TOKEN(1)), 0);
    coro_task *t = coro_spawn(queue_put_one, TOKEN(1));
    await_yield();
    ck_assert_int_eq(coro_queue_free(py_queue), EBUSY);
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, &item), ECANCELED);
    ck_assert_ptr_eq(item, TOKEN(ECANCELED));
    ck_assert_int_eq(coro_queue_free(py_queue), 0); /* no putter left */
    return NULL;
}

/* QueueGetTests.test_cancelled_getters_not_being_held_in_self_getters and
 * QueuePutTests.test_cancelled_puts_not_being_held_in_self_putters: a
 * get that times out and a put cancelled leave nothing behind. */
START_TEST(py_queue_test_cancelled_waiters_not_held)
{
    run_expect(queue_cancelled_getters_main, NULL, 0);
}
END_TEST

static void *queue_blocking_put_wait_main(void *arg)
{
    (void)arg;
    py_queue = coro_queue_new(1);
    coro_task *t = coro_spawn(queue_produce, TOKEN(2));
    await_yield();
    ck_assert_int_eq(coro_task_done(t), 0); /* waits to put the second */
    await_sleep(0.01);
    void *item;
    ck_assert_int_eq(coro_queue_try_get(py_queue, &item), 0);
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_uint_eq(coro_queue_size(py_queue), 1);
    coro_queue_free(py_queue);
    return NULL;
}

/* QueuePutTests.test_blocking_put_wait: a put into a full queue waits
 * until a get makes room. */
START_TEST(py_queue_test_blocking_put_wait)
{
    run_expect(queue_blocking_put_wait_main, NULL, 0);
}
END_TEST

static void *queue_get_cancel_drop_one_main(void *arg)
{
    (void)arg;
    py_queue = coro_queue_new(0);
    coro_task *reader = coro_spawn(queue_get_one, NULL);
    await_yield();
    ck_assert_int_eq(coro_queue_try_put(py_queue, TOKEN(1)), 0);
    ck_assert_int_eq(coro_queue_try_put(py_queue, TOKEN(2)), 0);
    coro_cancel(reader);
    void *res;
    /* The first put handed 1 to the waiting reader: its get returned it
     * before the cancellation came, so the task, cancelled, still has it
     * (asyncio's get raises CancelledError and leaves 1 in the queue for
     * the next reader). Either way 1 is not lost. */
    ck_assert_int_eq(await_task(reader, &res), ECANCELED);
    ck_assert_ptr_eq(res, TOKEN(1));
    ck_assert_int_eq(coro_queue_try_get(py_queue, &res), 0);
    ck_assert_ptr_eq(res, TOKEN(2));
    coro_queue_free(py_queue);
    return NULL;
}

/* QueuePutTests.test_get_cancel_drop_one_pending_reader: nothing is lost
 * when a reader is cancelled as items come. */
START_TEST(py_queue_test_get_cancel_drop_one_pending_reader)
{
    run_expect(queue_get_cancel_drop_one_main, NULL, 0);
}
END_TEST

static void *queue_get_cancel_drop_many_main(void *arg)
{
    (void)arg;
    py_queue = coro_queue_new(0);
    coro_task *r[3];
    for (int i = 0; i < 3; i++)
        r[i] = coro_spawn(queue_get_one, NULL);
    await_yield();
    ck_assert_int_eq(coro_queue_try_put(py_queue, TOKEN(1)), 0);
    ck_assert_int_eq(coro_queue_try_put(py_queue, TOKEN(2)), 0);
    coro_cancel(r[0]);
    void *res[3];
    int errs[3];
    /* Handed over in put order: 1 to r[0] before its cancellation, 2 to
     * r[1]; r[2] still waits. */
    ck_assert_int_eq(await_task(r[0], &res[0]), ECANCELED);
    ck_assert_ptr_eq(res[0], TOKEN(1));
    ck_assert_int_eq(coro_task_done(r[2]), 0);
    ck_assert_int_eq(coro_queue_try_put(py_queue, TOKEN(3)), 0);
    ck_assert_int_eq(await_gather(r + 1, 2, res + 1, errs), 0);
    ck_assert_ptr_eq(res[1], TOKEN(2));
    ck_assert_ptr_eq(res[2], TOKEN(3));
    coro_queue_free(py_queue);
    return NULL;
}

/* QueuePutTests.test_get_cancel_drop_many_pending_readers: of several
 * readers, one cancelled as items come, none loses an item. */
START_TEST(py_queue_test_get_cancel_drop_many_pending_readers)
{
    run_expect(queue_get_cancel_drop_many_main, NULL, 0);
}
END_TEST

static void *queue_put_cancel_drop_main(void *arg)
{
    (void)arg;
    py_queue = coro_queue_new(1);
    ck_assert_int_eq(coro_queue_try_put(py_queue, TOKEN(1)), 0);
    coro_task *writer = coro_spawn(queue_put_one, TOKEN(2));
    await_yield();
    void *item;
    ck_assert_int_eq(coro_queue_try_get(py_queue, &item), 0);
    ck_assert_ptr_eq(item, TOKEN(1));
    coro_cancel(writer);
    /* The get moved 2 in for the waiting writer: its put returned 0
     * before the cancellation (asyncio's put raises CancelledError, and
     * the test puts 2 again). */
    ck_assert_int_eq(await_task(writer, &item), ECANCELED);
    ck_assert_ptr_eq(item, TOKEN(0));
    ck_assert_int_eq(coro_queue_try_get(py_queue, &item), 0);
    ck_assert_ptr_eq(item, TOKEN(2));
    ck_assert_uint_eq(coro_queue_size(py_queue), 0);
    coro_queue_free(py_queue);
    return NULL;
}

/* QueuePutTests.test_put_cancel_drop and
 * test_cancelled_put_silence_value_error_exception: a writer cancelled
 * after a get made room for its item puts it exactly once. */
START_TEST(py_queue_test_put_cancel_drop)
{
    run_expect(queue_put_cancel_drop_main, NULL, 0);
}
END_TEST

static void *queue_put_cancelled_main(void *arg)
{
    (void)arg;
    py_queue = coro_queue_new(0);
    coro_task *t = coro_spawn(queue_put_one, TOKEN(1));
    void *item;
    ck_assert_int_eq(await_queue_get(py_queue, &item, -1), 0);
    ck_assert_ptr_eq(item, TOKEN(1));
    ck_assert_int_eq(coro_task_done(t), 1);
    ck_assert_int_eq(await_task(t, &item), 0);
    ck_assert_ptr_eq(item, TOKEN(0));
    /* test_put_with_waiting_getters */
    t = coro_spawn(queue_get_one, NULL);
    await_yield();
    ck_assert_int_eq(await_queue_put(py_queue, TOKEN('a'), -1), 0);
    ck_assert_int_eq(await_task(t, &item), 0);
    ck_assert_ptr_eq(item, TOKEN('a'));
    coro_queue_free(py_queue);
    return NULL;
}

/* QueuePutTests.test_put_cancelled (which cancels nothing) and
 * test_put_with_waiting_getters: a put into an unbounded queue, and a
 * put to a waiting getter. */
START_TEST(py_queue_test_put_cancelled)
{
    run_expect(queue_put_cancelled_main, NULL, 0);
}
END_TEST

static void *queue_put_cancelled_race_main(void *arg)
{
    (void)arg;
    py_queue = coro_queue_new(1);
    coro_task *a = coro_spawn(queue_put_one, TOKEN('a'));
    coro_task *b = coro_spawn(queue_put_one, TOKEN('b'));
    coro_task *c = coro_spawn(queue_put_one, TOKEN('X'));
    await_yield();
    ck_assert_int_eq(coro_task_done(a), 1);
    ck_assert_int_eq(coro_task_done(b), 0);
    coro_cancel(c);
    await_yield();
    ck_assert_int_eq(coro_task_done(c), 1);
    void *item;
    ck_assert_int_eq(coro_queue_try_get(py_queue, &item), 0);
    ck_assert_ptr_eq(item, TOKEN('a'));
    await_yield();
    ck_assert_int_eq(coro_queue_try_get(py_queue, &item), 0);
    ck_assert_ptr_eq(item, TOKEN('b'));
    ck_assert_int_eq(coro_queue_try_get(py_queue, &item), EAGAIN);
    ck_assert_int_eq(await_task(b, NULL), 0);
    ck_assert_int_eq(await_task(a, NULL), 0);
    ck_assert_int_eq(await_task(c, &item), ECANCELED);
    ck_assert_ptr_eq(item, TOKEN(ECANCELED));
    coro_queue_free(py_queue);
    return NULL;
}

/* QueuePutTests.test_put_cancelled_race: a cancelled putter leaves; its
 * item never enters the queue. */
START_TEST(py_queue_test_put_cancelled_race)
{
    run_expect(queue_put_cancelled_race_main, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* CPython's test_locks.py, test by test                                  */
/* ---------------------------------------------------------------------- */

/* Lib/test/test_asyncio/test_locks.py (3.13), translated where coro's
 * calls map. Two differences run through them, both in coro.h: an
 * asyncio.Lock has no owner (any task may release it, and a task may
 * wait on a Condition whose lock another task took), where a coro_mutex
 * belongs to the task that took it; and a released lock or permit is
 * handed to its waiter at once, where asyncio marks it free and lets the
 * waiter take it when it runs. Where the Python test releases a lock
 * another task took, the holder here releases it when told (py_go). */

static coro_mutex *py_lock;
static coro_sem   *py_sem;
static coro_sem   *py_go;    /* a holder waits here to be told to unlock */
static coro_event *py_event;
static coro_cond  *py_cond;

/* Takes the lock, notes arg, and holds the lock until told to let go. */
static void *lock_note_hold(void *arg)
{
    if (await_mutex_lock(py_lock, -1) != 0)
        return NULL;
    trace("%d", (int)(uintptr_t)arg);
    if (await_sem_acquire(py_go, -1) == 0)
        coro_mutex_unlock(py_lock);
    return TOKEN(1);
}

/* Each step of the Python test's sleep(0) is one yield here, and two
 * where a holder must first run to let go. */
static void *lock_acquire_main(void *arg)
{
    (void)arg;
    py_lock = coro_mutex_new();
    py_go = coro_sem_new(0);
    ck_assert_int_eq(await_mutex_lock(py_lock, -1), 0);
    coro_task *t[3];
    t[0] = coro_spawn(lock_note_hold, TOKEN(1));
    t[1] = coro_spawn(lock_note_hold, TOKEN(2));
    await_yield();
    ck_assert_str_eq(trace_get(), "");
    ck_assert_int_eq(coro_mutex_unlock(py_lock), 0);
    await_yield();
    ck_assert_str_eq(trace_get(), "1");
    await_yield();
    ck_assert_str_eq(trace_get(), "1");
    t[2] = coro_spawn(lock_note_hold, TOKEN(3));
    coro_sem_release(py_go);
    await_yield();
    await_yield();
    ck_assert_str_eq(trace_get(), "1 2"); /* 2 waited first, 3 behind it */
    coro_sem_release(py_go);
    await_yield();
    await_yield();
    ck_assert_str_eq(trace_get(), "1 2 3");
    ck_assert_int_eq(coro_task_done(t[0]), 1);
    ck_assert_int_eq(coro_task_done(t[1]), 1);
    coro_sem_release(py_go);
    void *res[3];
    ck_assert_int_eq(await_gather(t, 3, res, NULL), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_eq(res[i], TOKEN(1));
    ck_assert_int_eq(coro_mutex_locked(py_lock), 0);
    coro_sem_free(py_go);
    coro_mutex_free(py_lock);
    return NULL;
}

/* LockTests.test_acquire: waiters take the lock in the order they came,
 * one release each. */
START_TEST(py_lock_test_acquire)
{
    run_expect(lock_acquire_main, NULL, 0);
}
END_TEST

static void *lock_acquire_once(void *arg)
{
    (void)arg;
    return TOKEN(await_mutex_lock(py_lock, -1));
}

static void *lock_acquire_cancel_main(void *arg)
{
    (void)arg;
    py_lock = coro_mutex_new();
    ck_assert_int_eq(await_mutex_lock(py_lock, -1), 0);
    coro_task *t = coro_spawn(lock_acquire_once, NULL);
    await_yield();
    coro_cancel(t);
    void *res;
    ck_assert_int_eq(await_task(t, &res), ECANCELED);
    ck_assert_ptr_eq(res, TOKEN(ECANCELED));
    /* It left no waiter behind: the lock goes free, to nobody. */
    ck_assert_int_eq(coro_mutex_unlock(py_lock), 0);
    ck_assert_int_eq(coro_mutex_locked(py_lock), 0);
    ck_assert_int_eq(coro_mutex_free(py_lock), 0);
    return NULL;
}

/* LockTests.test_acquire_cancel: a cancelled acquire leaves no waiter. */
START_TEST(py_lock_test_acquire_cancel)
{
    run_expect(lock_acquire_cancel_main, NULL, 0);
}
END_TEST

/* lockit of LockTests.test_cancel_race: takes the lock, waits for the
 * event if it is A, lets go. */
static void *lock_it(void *arg)
{
    const char *name = arg;
    int err = await_mutex_lock(py_lock, -1);
    if (err)
        return coro_fail(err);
    trace("%s", name);
    if (name[0] == 'A')
        err = await_event(py_event, -1);
    coro_mutex_unlock(py_lock);
    return coro_fail(err);
}

static void *lock_cancel_race_main(void *arg)
{
    (void)arg;
    py_lock = coro_mutex_new();
    py_event = coro_event_new();
    coro_task *ta = coro_spawn(lock_it, "A");
    await_yield();
    ck_assert_int_eq(coro_mutex_locked(py_lock), 1);
    coro_task *tb = coro_spawn(lock_it, "B");
    await_yield();
    coro_task *tc = coro_spawn(lock_it, "C");
    await_yield();
    /* The race: A lets go as B is cancelled. */
    coro_event_set(py_event);
    coro_cancel(tb);
    await_yield();
    /* asyncio reads the lock free here, C not having run yet to take it;
     * handed over, it is C's already. */
    ck_assert_int_eq(coro_mutex_locked(py_lock), 1);
    ck_assert_int_eq(coro_task_done(ta), 1);
    ck_assert_int_eq(coro_task_cancelled(tb), 1);
    ck_assert_int_eq(await_task(ta, NULL), 0);
    ck_assert_int_eq(await_task(tb, NULL), ECANCELED);
    ck_assert_int_eq(await_task(tc, NULL), 0);
    ck_assert_str_eq(trace_get(), "A C");
    ck_assert_int_eq(coro_mutex_locked(py_lock), 0);
    coro_event_free(py_event);
    coro_mutex_free(py_lock);
    return NULL;
}

/* LockTests.test_cancel_race: the holder lets go while the first waiter
 * is cancelled; the lock passes over it to the next. */
START_TEST(py_lock_test_cancel_race)
{
    run_expect(lock_cancel_race_main, NULL, 0);
}
END_TEST

static int lock_calls, lock_takes;

static void *lock_count(void *arg)
{
    (void)arg;
    lock_calls++;
    int err = await_mutex_lock(py_lock, -1);
    if (!err)
        lock_takes++;
    return coro_fail(err);
}

static void *lock_cancel_release_race_main(void *arg)
{
    (void)arg;
    py_lock = coro_mutex_new();
    ck_assert_int_eq(await_mutex_lock(py_lock, -1), 0);
    coro_task *t1 = coro_spawn(lock_count, NULL);
    coro_task *t2 = coro_spawn(lock_count, NULL);
    coro_task *t3 = coro_spawn(lock_count, NULL);
    await_yield();
    coro_cancel(t1);
    coro_mutex_unlock(py_lock);
    ck_assert_int_eq(await_task(t1, NULL), ECANCELED);
    ck_assert_int_eq(lock_takes, 1);
    ck_assert_int_eq(lock_calls, 3);
    ck_assert_int_eq(coro_task_done(t2), 1);
    coro_cancel(t3);
    await_yield();
    ck_assert_int_eq(coro_task_cancelled(t3), 1);
    ck_assert_int_eq(await_task(t2, NULL), 0);
    ck_assert_int_eq(await_task(t3, NULL), ECANCELED);
    coro_mutex_free(py_lock); /* held by t2, which ended */
    return NULL;
}

/* LockTests.test_cancel_release_race (bpo-32734): cancel the first
 * waiter, release: exactly one waiter takes the lock. */
START_TEST(py_lock_test_cancel_release_race)
{
    run_expect(lock_cancel_release_race_main, NULL, 0);
}
END_TEST

static void *lock_finished_waiter_cancelled_main(void *arg)
{
    (void)arg;
    py_lock = coro_mutex_new();
    ck_assert_int_eq(await_mutex_lock(py_lock, -1), 0);
    coro_task *tb = coro_spawn(lock_acquire_once, NULL);
    await_yield();
    coro_task *tc = coro_spawn(lock_acquire_once, NULL);
    coro_cancel(tb);
    ck_assert_int_eq(coro_mutex_unlock(py_lock), 0);
    await_yield();
    ck_assert_int_eq(coro_mutex_locked(py_lock), 1); /* tc took it */
    ck_assert_int_eq(coro_task_cancelled(tb), 1);
    void *res;
    ck_assert_int_eq(await_task(tc, &res), 0);
    ck_assert_ptr_eq(res, TOKEN(0));
    ck_assert_int_eq(await_task(tb, &res), ECANCELED);
    ck_assert_ptr_eq(res, TOKEN(ECANCELED));
    coro_mutex_free(py_lock);
    return NULL;
}

/* LockTests.test_finished_waiter_cancelled: the only waiter cancelled as
 * the lock is released; a task that asks next gets it. */
START_TEST(py_lock_test_finished_waiter_cancelled)
{
    run_expect(lock_finished_waiter_cancelled_main, NULL, 0);
}
END_TEST

static void *lock_release_not_acquired_main(void *arg)
{
    (void)arg;
    py_lock = coro_mutex_new();
    ck_assert_int_eq(coro_mutex_unlock(py_lock), EPERM);
    ck_assert_int_eq(await_mutex_lock(py_lock, -1), 0);
    ck_assert_int_eq(coro_mutex_locked(py_lock), 1);
    ck_assert_int_eq(coro_mutex_unlock(py_lock), 0);
    ck_assert_int_eq(coro_mutex_locked(py_lock), 0);
    ck_assert_int_eq(coro_mutex_unlock(py_lock), EPERM);
    coro_mutex_free(py_lock);
    return NULL;
}

/* LockTests.test_release_not_acquired (RuntimeError here EPERM),
 * test_release_no_waiters and test_context_manager. */
START_TEST(py_lock_test_release_not_acquired)
{
    run_expect(lock_release_not_acquired_main, NULL, 0);
}
END_TEST

static void *event_note(void *arg)
{
    if (await_event(py_event, -1) == 0)
        trace("%d", (int)(uintptr_t)arg);
    return TOKEN(1);
}

static void *event_wait_main(void *arg)
{
    (void)arg;
    py_event = coro_event_new();
    ck_assert_int_eq(coro_event_is_set(py_event), 0);
    coro_task *t[3];
    t[0] = coro_spawn(event_note, TOKEN(1));
    t[1] = coro_spawn(event_note, TOKEN(2));
    await_yield();
    ck_assert_str_eq(trace_get(), "");
    t[2] = coro_spawn(event_note, TOKEN(3));
    coro_event_set(py_event);
    await_yield();
    ck_assert_str_eq(trace_get(), "3 1 2");
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(coro_task_done(t[i]), 1);
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), 0);
    /* test_wait_on_set */
    ck_assert_int_eq(await_event(py_event, -1), 0);
    coro_event_free(py_event);
    return NULL;
}

/* EventTests.test_wait and test_wait_on_set: set wakes every waiter, in
 * the order they came, behind a task already ready. */
START_TEST(py_event_test_wait)
{
    run_expect(event_wait_main, NULL, 0);
}
END_TEST

static void *event_wait_cancel_main(void *arg)
{
    (void)arg;
    py_event = coro_event_new();
    coro_task *t = coro_spawn(event_note, NULL);
    await_yield();
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    ck_assert_str_eq(trace_get(), "");
    ck_assert_int_eq(coro_event_free(py_event), 0); /* no waiter left */
    return NULL;
}

/* EventTests.test_wait_cancel: a cancelled wait leaves no waiter. */
START_TEST(py_event_test_wait_cancel)
{
    run_expect(event_wait_cancel_main, NULL, 0);
}
END_TEST

static void *event_clear_main(void *arg)
{
    (void)arg;
    py_event = coro_event_new();
    ck_assert_int_eq(coro_event_is_set(py_event), 0);
    coro_event_set(py_event);
    ck_assert_int_eq(coro_event_is_set(py_event), 1);
    coro_event_clear(py_event);
    ck_assert_int_eq(coro_event_is_set(py_event), 0);

    coro_task *t = coro_spawn(event_note, TOKEN(1));
    await_yield();
    ck_assert_str_eq(trace_get(), "");
    coro_event_set(py_event);
    coro_event_clear(py_event);
    ck_assert_int_eq(coro_event_is_set(py_event), 0);
    coro_event_set(py_event);
    coro_event_set(py_event);
    await_yield();
    ck_assert_str_eq(trace_get(), "1"); /* woken once */
    ck_assert_int_eq(coro_task_done(t), 1);
    void *res;
    ck_assert_int_eq(await_task(t, &res), 0);
    ck_assert_ptr_eq(res, TOKEN(1));
    coro_event_free(py_event);
    return NULL;
}

/* EventTests.test_clear and test_clear_with_waiters: a waiter woken by a
 * set returns even if the event is cleared before it runs. */
START_TEST(py_event_test_clear_with_waiters)
{
    run_expect(event_clear_main, NULL, 0);
}
END_TEST

/* c1, c2, c3 of ConditionTests.test_wait: wait for a notify, note arg,
 * hold the mutex until told to let go. */
static void *cond_note_hold(void *arg)
{
    if (await_mutex_lock(py_lock, -1) != 0)
        return NULL;
    int err = await_cond_wait(py_cond, py_lock, -1);
    if (!err)
        trace("%d", (int)(uintptr_t)arg);
    if (await_sem_acquire(py_go, -1) == 0)
        coro_mutex_unlock(py_lock);
    return TOKEN(!err);
}

static void *cond_wait_main(void *arg)
{
    (void)arg;
    py_lock = coro_mutex_new();
    py_cond = coro_cond_new();
    py_go = coro_sem_new(0);
    coro_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = coro_spawn(cond_note_hold, TOKEN(i + 1));
    await_yield();
    ck_assert_str_eq(trace_get(), "");
    ck_assert_int_eq(coro_mutex_locked(py_lock), 0);

    ck_assert_int_eq(await_mutex_lock(py_lock, -1), 0);
    ck_assert_int_eq(coro_cond_notify(py_cond, 1), 0);
    await_yield();
    ck_assert_str_eq(trace_get(), ""); /* 1 waits for the mutex */
    ck_assert_int_eq(coro_mutex_locked(py_lock), 1);

    ck_assert_int_eq(coro_mutex_unlock(py_lock), 0);
    await_yield();
    ck_assert_str_eq(trace_get(), "1");
    ck_assert_int_eq(coro_mutex_locked(py_lock), 1);

    /* Notified without the mutex: coro's notify does not ask for it. */
    ck_assert_int_eq(coro_cond_notify(py_cond, 2), 0);
    await_yield();
    ck_assert_str_eq(trace_get(), "1");
    ck_assert_int_eq(coro_mutex_locked(py_lock), 1);

    coro_sem_release(py_go);
    await_yield();
    await_yield();
    ck_assert_str_eq(trace_get(), "1 2");
    ck_assert_int_eq(coro_mutex_locked(py_lock), 1);

    coro_sem_release(py_go);
    await_yield();
    await_yield();
    ck_assert_str_eq(trace_get(), "1 2 3");
    ck_assert_int_eq(coro_mutex_locked(py_lock), 1);

    coro_sem_release(py_go);
    void *res[3];
    ck_assert_int_eq(await_gather(t, 3, res, NULL), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_eq(res[i], TOKEN(1));
    coro_sem_free(py_go);
    coro_cond_free(py_cond);
    coro_mutex_free(py_lock);
    return NULL;
}

/* ConditionTests.test_wait: notified waiters take the mutex back one at
 * a time, in the order they waited. */
START_TEST(py_cond_test_wait)
{
    run_expect(cond_wait_main, NULL, 0);
}
END_TEST

/* Waits once on py_cond, holding py_lock around it; returns the wait's
 * error, and ends holding the mutex if arg is not NULL. */
static void *cond_wait_once(void *arg)
{
    int err = await_mutex_lock(py_lock, -1);
    if (err)
        return TOKEN(err);
    trace("waiting");
    err = await_cond_wait(py_cond, py_lock, -1);
    ck_assert_int_eq(coro_mutex_locked(py_lock), 1);
    if (!arg)
        coro_mutex_unlock(py_lock);
    return TOKEN(err);
}

static void *cond_wait_cancel_main(void *arg)
{
    (void)arg;
    py_lock = coro_mutex_new();
    py_cond = coro_cond_new();
    coro_task *t = coro_spawn(cond_wait_once, TOKEN(1));
    await_yield();
    coro_cancel(t);
    void *res;
    ck_assert_int_eq(await_task(t, &res), ECANCELED);
    ck_assert_ptr_eq(res, TOKEN(ECANCELED));
    ck_assert_int_eq(coro_cond_free(py_cond), 0); /* no waiter left */
    ck_assert_int_eq(coro_mutex_locked(py_lock), 1); /* taken back */
    coro_mutex_free(py_lock);
    return NULL;
}

/* ConditionTests.test_wait_cancel: a cancelled wait leaves no waiter and
 * returns holding the mutex. */
START_TEST(py_cond_test_wait_cancel)
{
    run_expect(cond_wait_cancel_main, NULL, 0);
}
END_TEST

static void *cond_wait_cancel_contested_main(void *arg)
{
    (void)arg;
    py_lock = coro_mutex_new();
    py_cond = coro_cond_new();
    coro_task *t = coro_spawn(cond_wait_once, TOKEN(1));
    await_yield();
    ck_assert_int_eq(coro_mutex_locked(py_lock), 0);
    ck_assert_int_eq(await_mutex_lock(py_lock, -1), 0);
    ck_assert_int_eq(coro_cond_notify(py_cond, 1), 0);
    coro_cancel(t);
    ck_assert_int_eq(coro_mutex_unlock(py_lock), 0);
    void *res;
    /* The notify came first: the wait returns 0 holding the mutex; the
     * task, cancelled before it ended, counts as cancelled. */
    ck_assert_int_eq(await_task(t, &res), ECANCELED);
    ck_assert_ptr_eq(res, TOKEN(0));
    ck_assert_int_eq(coro_mutex_locked(py_lock), 1);
    coro_cond_free(py_cond);
    coro_mutex_free(py_lock);
    return NULL;
}

/* ConditionTests.test_wait_cancel_contested: notified, then cancelled
 * while the mutex is contested: the wait still takes the mutex back. */
START_TEST(py_cond_test_wait_cancel_contested)
{
    run_expect(cond_wait_cancel_contested_main, NULL, 0);
}
END_TEST

static void *cond_wait_cancel_after_notify_main(void *arg)
{
    (void)arg;
    py_lock = coro_mutex_new();
    py_cond = coro_cond_new();
    coro_task *t = coro_spawn(cond_wait_once, NULL);
    await_yield();
    ck_assert_int_eq(await_mutex_lock(py_lock, -1), 0);
    ck_assert_int_eq(coro_cond_notify(py_cond, 1), 0);
    await_yield(); /* t goes to take the mutex back */
    coro_cancel(t);
    await_yield();
    ck_assert_int_eq(coro_mutex_unlock(py_lock), 0);
    await_yield();
    ck_assert_int_eq(coro_task_cancelled(t), 1);
    ck_assert_str_eq(trace_get(), "waiting");
    void *res;
    ck_assert_int_eq(await_task(t, &res), ECANCELED);
    ck_assert_ptr_eq(res, TOKEN(0));
    ck_assert_int_eq(coro_mutex_locked(py_lock), 0);
    coro_cond_free(py_cond);
    coro_mutex_free(py_lock);
    return NULL;
}

/* ConditionTests.test_wait_cancel_after_notify (bpo-32841): cancelled
 * while taking the mutex back after a notify, the task ends cancelled
 * and lets the mutex go. */
START_TEST(py_cond_test_wait_cancel_after_notify)
{
    run_expect(cond_wait_cancel_after_notify_main, NULL, 0);
}
END_TEST

static void *cond_wait_unacquired_main(void *arg)
{
    (void)arg;
    py_lock = coro_mutex_new();
    py_cond = coro_cond_new();
    ck_assert_int_eq(await_cond_wait(py_cond, py_lock, -1), EPERM);
    /* ConditionTests.test_notify_unacquired and
     * test_notify_all_unacquired raise RuntimeError; coro's notify does
     * not ask for the mutex (coro.h). */
    ck_assert_int_eq(coro_cond_notify(py_cond, 1), 0);
    ck_assert_int_eq(coro_cond_notify_all(py_cond), 0);
    coro_cond_free(py_cond);
    coro_mutex_free(py_lock);
    return NULL;
}

/* ConditionTests.test_wait_unacquired: waiting without the mutex is
 * EPERM (RuntimeError). */
START_TEST(py_cond_test_wait_unacquired)
{
    run_expect(cond_wait_unacquired_main, NULL, 0);
}
END_TEST

/* c1, c2, c3 of ConditionTests.test_notify: wait, note arg, let go. */
static void *cond_note(void *arg)
{
    if (await_mutex_lock(py_lock, -1) != 0)
        return NULL;
    int err = await_cond_wait(py_cond, py_lock, -1);
    if (!err)
        trace("%d", (int)(uintptr_t)arg);
    coro_mutex_unlock(py_lock);
    return TOKEN(!err);
}

static void *cond_notify_main(void *arg)
{
    int all = arg != NULL;
    py_lock = coro_mutex_new();
    py_cond = coro_cond_new();
    size_t n = all ? 2 : 3;
    coro_task *t[3];
    for (size_t i = 0; i < n; i++)
        t[i] = coro_spawn(cond_note, TOKEN(i + 1));
    await_yield();
    ck_assert_str_eq(trace_get(), "");
    ck_assert_int_eq(await_mutex_lock(py_lock, -1), 0);
    if (all) {
        ck_assert_int_eq(coro_cond_notify_all(py_cond), 0);
    } else {
        ck_assert_int_eq(coro_cond_notify(py_cond, 1), 0);
        ck_assert_int_eq(coro_mutex_unlock(py_lock), 0);
        await_yield();
        ck_assert_str_eq(trace_get(), "1");
        ck_assert_int_eq(await_mutex_lock(py_lock, -1), 0);
        ck_assert_int_eq(coro_cond_notify(py_cond, 1), 0);
        ck_assert_int_eq(coro_cond_notify(py_cond, 2048), 0);
    }
    ck_assert_int_eq(coro_mutex_unlock(py_lock), 0);
    await_yield();
    ck_assert_str_eq(trace_get(), all ? "1 2" : "1 2 3");
    void *res[3];
    ck_assert_int_eq(await_gather(t, n, res, NULL), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_ptr_eq(res[i], TOKEN(1));
    coro_cond_free(py_cond);
    coro_mutex_free(py_lock);
    return NULL;
}

/* ConditionTests.test_notify: notify(n) wakes the first n waiters, and
 * no more than wait. */
START_TEST(py_cond_test_notify)
{
    run_expect(cond_notify_main, NULL, 0);
}
END_TEST

/* ConditionTests.test_notify_all. */
START_TEST(py_cond_test_notify_all)
{
    run_expect(cond_notify_main, TOKEN(1), 0);
}
END_TEST

static int cond_wake;
static int cond_state;

static int cond_woken(void *arg)
{
    (void)arg;
    return cond_wake;
}

/* func of test_cancelled_error_wakeup and _re_aquire: a wait_for on
 * cond_wake that holds the mutex around it. */
static void *cond_wait_for_wake(void *arg)
{
    (void)arg;
    int err = await_mutex_lock(py_lock, -1);
    if (err)
        return TOKEN(err);
    err = await_cond_wait_for(py_cond, py_lock, cond_woken, NULL, -1);
    ck_assert_int_eq(coro_mutex_locked(py_lock), 1);
    coro_mutex_unlock(py_lock);
    return TOKEN(err);
}

static void *cond_cancelled_error_main(void *arg)
{
    int relock = arg != NULL;
    py_lock = coro_mutex_new();
    py_cond = coro_cond_new();
    cond_wake = 0;
    coro_task *t = coro_spawn(cond_wait_for_wake, NULL);
    await_yield();
    if (relock) {
        ck_assert_int_eq(await_mutex_lock(py_lock, -1), 0);
        cond_wake = 1;
        ck_assert_int_eq(coro_cond_notify(py_cond, 1), 0);
        await_yield(); /* t waits to take the mutex back */
    }
    coro_cancel(t);
    if (relock)
        ck_assert_int_eq(coro_mutex_unlock(py_lock), 0);
    void *res;
    ck_assert_int_eq(await_task(t, &res), ECANCELED);
    /* Cancelled in the wait: ECANCELED. Cancelled after the notify came,
     * while taking the mutex back: the wait had completed, and the
     * predicate holds, so 0 (asyncio raises CancelledError there; coro.h:
     * an operation that completed before the cancellation returns its
     * result). */
    ck_assert_ptr_eq(res, TOKEN(relock ? 0 : ECANCELED));
    ck_assert_int_eq(coro_mutex_locked(py_lock), 0);
    ck_assert_int_eq(coro_cond_free(py_cond), 0);
    coro_mutex_free(py_lock);
    return NULL;
}

/* ConditionTests.test_cancelled_error_wakeup: a wait_for cancelled while
 * it waits returns ECANCELED, holding the mutex. */
START_TEST(py_cond_test_cancelled_error_wakeup)
{
    run_expect(cond_cancelled_error_main, NULL, 0);
}
END_TEST

/* ConditionTests.test_cancelled_error_re_aquire: cancelled while it takes
 * the mutex back after the notify. */
START_TEST(py_cond_test_cancelled_error_re_aquire)
{
    run_expect(cond_cancelled_error_main, TOKEN(1), 0);
}
END_TEST

static int cond_state_nonzero(void *arg)
{
    (void)arg;
    return cond_state != 0;
}

static int cond_state_zero(void *arg)
{
    (void)arg;
    return cond_state == 0;
}

/* consumer of test_cancelled_wakeup: takes one unit of state per wake,
 * until state goes negative. */
static void *cond_consume(void *arg)
{
    (void)arg;
    int err = await_mutex_lock(py_lock, -1);
    if (err)
        return TOKEN(err);
    for (;;) {
        err = await_cond_wait_for(py_cond, py_lock, cond_state_nonzero,
                                  NULL, -1);
        if (err || cond_state < 0)
            break;
        cond_state--;
    }
    coro_mutex_unlock(py_lock);
    return TOKEN(err);
}

static void *cond_cancelled_wakeup_main(void *arg)
{
    int relock = arg != NULL;
    py_lock = coro_mutex_new();
    py_cond = coro_cond_new();
    cond_state = 0;
    coro_task *c[2] = { coro_spawn(cond_consume, NULL),
                        coro_spawn(cond_consume, NULL) };
    await_yield();
    ck_assert_int_eq(await_mutex_lock(py_lock, -1), 0);
    cond_state++;
    ck_assert_int_eq(coro_cond_notify(py_cond, 1), 0);
    if (relock)
        await_yield(); /* c[0] goes to take the mutex back */
    coro_cancel(c[0]);
    /* The item must be consumed: the notify was not lost to the cancel. */
    int err = await_cond_wait_for(py_cond, py_lock, cond_state_zero, NULL,
                                  0.01 * test_slow());
    ck_assert(err == 0 || err == ETIMEDOUT);
    ck_assert_int_eq(cond_state, 0);
    cond_state = -1;
    ck_assert_int_eq(coro_cond_notify_all(py_cond), 0);
    ck_assert_int_eq(coro_mutex_unlock(py_lock), 0);
    void *res;
    ck_assert_int_eq(await_task(c[1], &res), 0);
    ck_assert_ptr_eq(res, TOKEN(0));
    /* c[0] took the item (its wake came before its cancellation), then
     * saw the cancellation at its next wait. */
    ck_assert_int_eq(await_task(c[0], &res), ECANCELED);
    ck_assert_ptr_eq(res, TOKEN(ECANCELED));
    coro_cond_free(py_cond);
    coro_mutex_free(py_lock);
    return NULL;
}

/* ConditionTests.test_cancelled_wakeup: a waiter notified and cancelled
 * before it runs does not lose the notify. */
START_TEST(py_cond_test_cancelled_wakeup)
{
    run_expect(cond_cancelled_wakeup_main, NULL, 0);
}
END_TEST

/* ConditionTests.test_cancelled_wakeup_relock: likewise, cancelled while
 * it takes the mutex back. */
START_TEST(py_cond_test_cancelled_wakeup_relock)
{
    run_expect(cond_cancelled_wakeup_main, TOKEN(1), 0);
}
END_TEST

static void *sem_note(void *arg)
{
    int err = await_sem_acquire(py_sem, -1);
    if (!err)
        trace("%d", (int)(uintptr_t)arg);
    return TOKEN(!err);
}

static void *sem_acquire_main(void *arg)
{
    (void)arg;
    py_sem = coro_sem_new(3);
    ck_assert_int_eq(await_sem_acquire(py_sem, -1), 0);
    ck_assert_int_eq(await_sem_acquire(py_sem, -1), 0);
    ck_assert_int_eq(coro_sem_locked(py_sem), 0);
    coro_task *t[4];
    for (int i = 0; i < 3; i++)
        t[i] = coro_spawn(sem_note, TOKEN(i + 1));
    await_yield();
    ck_assert_str_eq(trace_get(), "1");
    ck_assert_int_eq(coro_sem_locked(py_sem), 1);
    ck_assert_uint_eq(coro_sem_value(py_sem), 0);
    t[3] = coro_spawn(sem_note, TOKEN(4));
    ck_assert_int_eq(coro_sem_release(py_sem), 0);
    ck_assert_int_eq(coro_sem_release(py_sem), 0);
    ck_assert_uint_eq(coro_sem_value(py_sem), 0);
    await_yield();
    ck_assert_uint_eq(coro_sem_value(py_sem), 0);
    ck_assert_str_eq(trace_get(), "1 2 3");
    ck_assert_int_eq(coro_sem_locked(py_sem), 1);
    ck_assert_int_eq(coro_task_done(t[0]), 1);
    ck_assert_int_eq(coro_task_done(t[1]) + coro_task_done(t[2]) +
                     coro_task_done(t[3]), 2);
    ck_assert_int_eq(coro_sem_release(py_sem), 0);
    void *res[4];
    ck_assert_int_eq(await_gather(t, 4, res, NULL), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_eq(res[i], TOKEN(1));
    coro_sem_free(py_sem);
    return NULL;
}

/* SemaphoreTests.test_acquire: permits go to the waiters in the order
 * they came; value stays 0 while anyone waits. */
START_TEST(py_sem_test_acquire)
{
    run_expect(sem_acquire_main, NULL, 0);
}
END_TEST

static void *sem_acquire_cancel_main(void *arg)
{
    (void)arg;
    py_sem = coro_sem_new(1);
    ck_assert_int_eq(await_sem_acquire(py_sem, -1), 0);
    coro_task *t = coro_spawn(sem_note, NULL);
    await_yield();
    coro_cancel(t);
    void *res;
    ck_assert_int_eq(await_task(t, &res), ECANCELED);
    ck_assert_ptr_eq(res, TOKEN(0));
    ck_assert_int_eq(coro_sem_free(py_sem), 0); /* no waiter left */
    return NULL;
}

/* SemaphoreTests.test_acquire_cancel: a cancelled acquire leaves no
 * waiter. */
START_TEST(py_sem_test_acquire_cancel)
{
    run_expect(sem_acquire_cancel_main, NULL, 0);
}
END_TEST

static void *sem_cancel_before_awoken_main(void *arg)
{
    int four = arg != NULL;
    py_sem = coro_sem_new(0);
    size_t n = four ? 4 : 2;
    coro_task *t[4];
    for (size_t i = 0; i < n; i++)
        t[i] = coro_spawn(sem_note, TOKEN(i + 1));
    await_yield();
    coro_cancel(t[0]);
    if (four)
        coro_cancel(t[1]);
    ck_assert_int_eq(coro_sem_release(py_sem), 0);
    await_yield();
    await_yield();
    /* The permit skipped the cancelled waiters and went to the next. */
    ck_assert_int_eq(coro_task_done(t[four ? 2 : 1]), 1);
    ck_assert_int_eq(coro_sem_locked(py_sem), 1);
    ck_assert_str_eq(trace_get(), four ? "3" : "2");
    if (four)
        ck_assert_int_eq(coro_task_done(t[3]), 0);
    for (size_t i = 0; i < n; i++)
        coro_cancel(t[i]);
    int errs[4];
    await_gather(t, n, NULL, errs);
    ck_assert_uint_eq(coro_sem_value(py_sem), 0);
    coro_sem_free(py_sem);
    return NULL;
}

/* SemaphoreTests.test_acquire_cancel_before_awoken: two waiters cancelled
 * as a permit comes; the permit goes to the third, not to the fourth. */
START_TEST(py_sem_test_acquire_cancel_before_awoken)
{
    run_expect(sem_cancel_before_awoken_main, TOKEN(1), 0);
}
END_TEST

/* SemaphoreTests.test_acquire_hang: the first of two waiters cancelled as
 * a permit comes; the second gets it. */
START_TEST(py_sem_test_acquire_hang)
{
    run_expect(sem_cancel_before_awoken_main, NULL, 0);
}
END_TEST

static coro_task *sem_victim;

/* c1 of test_acquire_no_hang: holds the permit over a yield, gives it
 * back, then cancels c2, whose acquire has its permit by then. */
static void *sem_hold_then_cancel(void *arg)
{
    (void)arg;
    int err = await_sem_acquire(py_sem, -1);
    if (!err) {
        await_yield();
        coro_sem_release(py_sem);
    }
    coro_cancel(sem_victim);
    return TOKEN(err);
}

/* c2: in asyncio its acquire raises CancelledError and gives its permit
 * on; here the permit came before the cancellation, so the acquire
 * returns 0 and the task gives it back itself. */
static void *sem_take_give(void *arg)
{
    (void)arg;
    int err = await_sem_acquire(py_sem, -1);
    if (!err)
        coro_sem_release(py_sem);
    return TOKEN(err);
}

static void *sem_acquire_no_hang_main(void *arg)
{
    (void)arg;
    py_sem = coro_sem_new(1);
    coro_task *t[2];
    t[0] = coro_spawn(sem_hold_then_cancel, NULL);
    t[1] = sem_victim = coro_spawn(sem_take_give, NULL);
    void *res[2];
    int errs[2];
    ck_assert_int_eq(await_gather(t, 2, res, errs), ECANCELED);
    ck_assert_int_eq(errs[0], 0);
    ck_assert_int_eq(errs[1], ECANCELED);
    ck_assert_ptr_eq(res[1], TOKEN(0));
    /* Nothing hangs: the permit is free again. */
    ck_assert_int_eq(await_sem_acquire(py_sem, 1), 0);
    coro_sem_free(py_sem);
    return NULL;
}

/* SemaphoreTests.test_acquire_no_hang: a task cancelled right after its
 * permit was handed to it leaves the semaphore usable. */
START_TEST(py_sem_test_acquire_no_hang)
{
    run_expect(sem_acquire_no_hang_main, NULL, 0);
}
END_TEST

static void *sem_release_no_waiters_main(void *arg)
{
    (void)arg;
    py_sem = coro_sem_new(1);
    ck_assert_uint_eq(coro_sem_value(py_sem), 1);
    ck_assert_int_eq(coro_sem_locked(py_sem), 0);
    ck_assert_int_eq(await_sem_acquire(py_sem, -1), 0);
    ck_assert_int_eq(coro_sem_locked(py_sem), 1);
    ck_assert_int_eq(coro_sem_release(py_sem), 0);
    ck_assert_int_eq(coro_sem_locked(py_sem), 0);
    coro_sem_free(py_sem);
    py_sem = coro_sem_new(0); /* test_initial_value_zero */
    ck_assert_int_eq(coro_sem_locked(py_sem), 1);
    coro_sem_free(py_sem);
    return NULL;
}

/* SemaphoreTests.test_semaphore, test_initial_value_zero and
 * test_release_no_waiters. */
START_TEST(py_sem_test_release_no_waiters)
{
    run_expect(sem_release_no_waiters_main, NULL, 0);
}
END_TEST

static void *sem_twice(void *arg)
{
    for (int round = 1; round <= 2; round++) {
        if (await_sem_acquire(py_sem, -1) != 0)
            return NULL;
        trace("%s_%d", (const char *)arg, round);
        await_sleep(0.01);
        coro_sem_release(py_sem);
    }
    return NULL;
}

static void *sem_fifo_main(void *arg)
{
    (void)arg;
    py_sem = coro_sem_new(1);
    coro_group *g = coro_group_new();
    coro_group_spawn(g, NULL, sem_twice, "c1");
    coro_group_spawn(g, NULL, sem_twice, "c2");
    coro_group_spawn(g, NULL, sem_twice, "c3");
    ck_assert_int_eq(await_group(g), 0);
    coro_group_free(g);
    coro_sem_free(py_sem);
    return NULL;
}

/* SemaphoreTests.test_acquire_fifo_order: a task that gives its permit
 * back and asks again queues behind the others. */
START_TEST(py_sem_test_acquire_fifo_order)
{
    run_expect(sem_fifo_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "c1_1 c2_1 c3_1 c1_2 c2_2 c3_2");
}
END_TEST

/* c2 of test_acquire_fifo_order_2: takes, gives back, takes again. */
static void *sem_note_twice(void *arg)
{
    (void)arg;
    if (await_sem_acquire(py_sem, -1) != 0)
        return NULL;
    trace("2");
    coro_sem_release(py_sem);
    if (await_sem_acquire(py_sem, -1) != 0)
        return NULL;
    trace("4");
    return TOKEN(1);
}

static void *sem_fifo_2_main(void *arg)
{
    (void)arg;
    py_sem = coro_sem_new(1);
    coro_task *t[3] = { coro_spawn(sem_note, TOKEN(1)),
                        coro_spawn(sem_note_twice, NULL),
                        coro_spawn(sem_note, TOKEN(3)) };
    await_yield();
    ck_assert_int_eq(coro_sem_release(py_sem), 0); /* to 2 */
    ck_assert_int_eq(coro_sem_release(py_sem), 0); /* to 3 */
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), 0);
    coro_sem_free(py_sem);
    return NULL;
}

/* SemaphoreTests.test_acquire_fifo_order_2. Each release hands its permit
 * to a waiter at once, 2 and 3 in turn; 2 then gives one back and takes
 * it again before 3 has run, where asyncio makes it wait until 3 has
 * run (coro.h, semaphore: a permit nobody waits for goes to whoever
 * asks). asyncio's order is 1 2 3 4. */
START_TEST(py_sem_test_acquire_fifo_order_2)
{
    run_expect(sem_fifo_2_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "1 2 4 3");
}
END_TEST

static void *sem_fifo_3_main(void *arg)
{
    (void)arg;
    py_sem = coro_sem_new(0);
    coro_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = coro_spawn(sem_note, TOKEN(i + 1));
    await_yield();
    coro_cancel(t[0]);
    await_yield();
    coro_sem_release(py_sem);
    coro_sem_release(py_sem);
    int errs[3];
    ck_assert_int_eq(await_gather(t, 3, NULL, errs), ECANCELED);
    ck_assert_int_eq(errs[0], ECANCELED);
    ck_assert_int_eq(errs[1], 0);
    ck_assert_int_eq(errs[2], 0);
    coro_sem_free(py_sem);
    return NULL;
}

/* SemaphoreTests.test_acquire_fifo_order_3: a cancelled waiter gives up
 * its place; the permits go to the next two. */
START_TEST(py_sem_test_acquire_fifo_order_3)
{
    run_expect(sem_fifo_3_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "2 3");
}
END_TEST

static void *sem_trace_4(void *arg)
{
    (void)arg;
    trace("4");
    return NULL;
}

static coro_task *sem_t4;

/* c1 of test_acquire_fifo_order_4: waits, then spawns c4. */
static void *sem_c1(void *arg)
{
    (void)arg;
    ck_assert_uint_eq(coro_sem_value(py_sem), 0);
    if (await_sem_acquire(py_sem, -1) != 0)
        return NULL;
    sem_t4 = coro_spawn(sem_trace_4, NULL);
    trace("1");
    return NULL;
}

/* c2: releases three permits, then asks for one. */
static void *sem_c2(void *arg)
{
    (void)arg;
    coro_sem_release(py_sem);
    coro_sem_release(py_sem);
    coro_sem_release(py_sem);
    ck_assert_uint_eq(coro_sem_value(py_sem), 2);
    /* asyncio says locked here, c1 not having run yet to take its
     * permit; here c1 has it already, and two are free. */
    ck_assert_int_eq(coro_sem_locked(py_sem), 0);
    if (await_sem_acquire(py_sem, -1) != 0)
        return NULL;
    trace("2");
    return NULL;
}

static void *sem_fifo_4_main(void *arg)
{
    (void)arg;
    py_sem = coro_sem_new(0);
    coro_task *t[3] = { coro_spawn(sem_c1, NULL),
                        coro_spawn(sem_c2, NULL),
                        coro_spawn(sem_note, TOKEN(3)) };
    await_yield();
    ck_assert_uint_eq(coro_sem_value(py_sem), 0);
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), 0);
    ck_assert_int_eq(await_task(sem_t4, NULL), 0);
    coro_sem_free(py_sem);
    return NULL;
}

/* SemaphoreTests.test_acquire_fifo_order_4. c2's first release hands a
 * permit to c1, which waited; the two others stay free, so c2 and c3
 * take them without waiting, before c1 has run. asyncio's order is
 * 1 2 3 4: its c2 and c3 wait until c1 has run (coro.h, semaphore). */
START_TEST(py_sem_test_acquire_fifo_order_4)
{
    run_expect(sem_fifo_4_main, NULL, 0);
    ck_assert_str_eq(trace_get(), "2 3 1 4");
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

/* ---------------------------------------------------------------------- */
/* Bad input across the objects                                           */
/* ---------------------------------------------------------------------- */

static int no_pred(void *arg)
{
    (void)arg;
    return 1;
}

static void drop_nothing(void *item, void *arg)
{
    (void)item;
    (void)arg;
}

/* Every call of every object given NULL for it: EINVAL, a query's 0, or
 * nothing done (the setters, the _free calls). */
static void *null_objects_main(void *arg)
{
    (void)arg;
    int v = 1;
    void *item;
    unsigned index;
    size_t chosen = 99;
    coro_mutex *m = coro_mutex_new();
    coro_cond *c = coro_cond_new();
    ck_assert_int_eq(await_chan_send(NULL, &v, 1), EINVAL);
    ck_assert_int_eq(await_chan_recv(NULL, &v, 1), EINVAL);
    ck_assert_int_eq(coro_chan_try_send(NULL, &v), EINVAL);
    ck_assert_int_eq(coro_chan_try_recv(NULL, &v), EINVAL);
    ck_assert_int_eq(coro_chan_close(NULL), EINVAL);
    ck_assert_int_eq(coro_chan_free(NULL), 0);
    coro_chan_op op = { NULL, 0, &v };
    ck_assert_int_eq(await_select(&op, 1, 1, &chosen), EINVAL);
    ck_assert_int_eq(await_select(NULL, 1, 1, &chosen), EINVAL);
    ck_assert_int_eq(await_select(NULL, SIZE_MAX, 1, &chosen), EINVAL);
    ck_assert_uint_eq(chosen, 99);
    ck_assert_int_eq(await_queue_put(NULL, &v, 1), EINVAL);
    ck_assert_int_eq(await_queue_get(NULL, &item, 1), EINVAL);
    ck_assert_int_eq(coro_queue_try_put(NULL, &v), EINVAL);
    ck_assert_int_eq(coro_queue_try_get(NULL, &item), EINVAL);
    ck_assert_uint_eq(coro_queue_size(NULL), 0);
    ck_assert_int_eq(coro_queue_task_done(NULL), EINVAL);
    ck_assert_int_eq(await_queue_join(NULL, 1), EINVAL);
    ck_assert_int_eq(coro_queue_shutdown(NULL), EINVAL);
    ck_assert_int_eq(coro_queue_shutdown_now(NULL, drop_nothing, NULL),
                     EINVAL);
    ck_assert_int_eq(coro_queue_free(NULL), 0);
    ck_assert_int_eq(await_mutex_lock(NULL, 1), EINVAL);
    ck_assert_int_eq(coro_mutex_unlock(NULL), EINVAL);
    ck_assert_int_eq(coro_mutex_locked(NULL), 0);
    ck_assert_int_eq(coro_mutex_free(NULL), 0);
    ck_assert_int_eq(await_sem_acquire(NULL, 1), EINVAL);
    ck_assert_int_eq(coro_sem_release(NULL), EINVAL);
    ck_assert_uint_eq(coro_sem_value(NULL), 0);
    ck_assert_int_eq(coro_sem_locked(NULL), 0);
    ck_assert_int_eq(coro_sem_free(NULL), 0);
    ck_assert_int_eq(await_event(NULL, 1), EINVAL);
    coro_event_set(NULL);
    coro_event_clear(NULL);
    ck_assert_int_eq(coro_event_is_set(NULL), 0);
    ck_assert_int_eq(coro_event_free(NULL), 0);
    ck_assert_int_eq(await_mutex_lock(m, 1), 0);
    ck_assert_int_eq(await_cond_wait(NULL, m, 1), EINVAL);
    ck_assert_int_eq(await_cond_wait(c, NULL, 1), EINVAL);
    ck_assert_int_eq(await_cond_wait_for(NULL, m, no_pred, NULL, 1), EINVAL);
    ck_assert_int_eq(await_cond_wait_for(c, NULL, no_pred, NULL, 1), EINVAL);
    ck_assert_int_eq(await_cond_wait_for(c, m, NULL, NULL, 1), EINVAL);
    ck_assert_int_eq(coro_mutex_locked(m), 1); /* still held */
    ck_assert_int_eq(coro_cond_notify(NULL, 1), EINVAL);
    ck_assert_int_eq(coro_cond_notify_all(NULL), EINVAL);
    ck_assert_int_eq(coro_cond_free(NULL), 0);
    ck_assert_int_eq(await_barrier_wait(NULL, 1, &index), EINVAL);
    ck_assert_int_eq(coro_barrier_reset(NULL), EINVAL);
    ck_assert_int_eq(coro_barrier_abort(NULL), EINVAL);
    ck_assert_uint_eq(coro_barrier_parties(NULL), 0);
    ck_assert_uint_eq(coro_barrier_waiting(NULL), 0);
    ck_assert_int_eq(coro_barrier_broken(NULL), 0);
    ck_assert_int_eq(coro_barrier_free(NULL), 0);
    ck_assert_int_eq(coro_mutex_unlock(m), 0);
    ck_assert_int_eq(coro_mutex_free(m), 0);
    ck_assert_int_eq(coro_cond_free(c), 0);
    return NULL;
}

START_TEST(every_call_given_a_null_object_refuses_it)
{
    run_expect(null_objects_main, NULL, 0);
}
END_TEST

/* Numbers at their limits: counts and sizes up to the largest, wait
 * indices and select flags as C reads them. */
static void *limits_main(void *arg)
{
    (void)arg;
    coro_sem *s = coro_sem_new(UINT_MAX);
    ck_assert_uint_eq(coro_sem_value(s), UINT_MAX);
    ck_assert_int_eq(coro_sem_release(s), EOVERFLOW);
    ck_assert_int_eq(await_sem_acquire(s, 0), 0);
    ck_assert_int_eq(coro_sem_release(s), 0);
    ck_assert_int_eq(coro_sem_free(s), 0);
    const unsigned bounds[] = { 0, 1, UINT_MAX };
    for (size_t i = 0; i < sizeof bounds / sizeof *bounds; i++) {
        s = coro_sem_new_bounded(bounds[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_int_eq(coro_sem_release(s), EINVAL); /* full already */
        ck_assert_int_eq(coro_sem_locked(s), bounds[i] == 0);
        ck_assert_int_eq(coro_sem_free(s), 0);
    }
    coro_barrier *b = coro_barrier_new(UINT_MAX);
    ck_assert_uint_eq(coro_barrier_parties(b), UINT_MAX);
    unsigned index = 7;
    ck_assert_int_eq(await_barrier_wait(b, 0, &index), ETIMEDOUT);
    ck_assert_uint_eq(index, 7);
    ck_assert_uint_eq(coro_barrier_waiting(b), 0); /* it left the round */
    ck_assert_int_eq(coro_barrier_free(b), 0);
    b = coro_barrier_new(1); /* index may be NULL */
    ck_assert_int_eq(await_barrier_wait(b, -1, NULL), 0);
    ck_assert_int_eq(coro_barrier_free(b), 0);
    coro_cond *c = coro_cond_new();
    ck_assert_int_eq(coro_cond_notify(c, 0), 0);
    ck_assert_int_eq(coro_cond_notify(c, SIZE_MAX), 0);
    ck_assert_int_eq(coro_cond_free(c), 0);
    /* Unbounded in effect: SIZE_MAX items may be put, and are not
     * reserved. */
    coro_queue *q = coro_queue_new(SIZE_MAX);
    ck_assert_ptr_nonnull(q);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(coro_queue_try_put(q, TOKEN(i)), 0);
    ck_assert_uint_eq(coro_queue_size(q), 1000);
    ck_assert_int_eq(coro_queue_shutdown_now(q, NULL, NULL), 0);
    ck_assert_int_eq(coro_queue_free(q), 0);
    /* A select op sends for any non-zero send. */
    coro_chan *ch = coro_chan_new(sizeof(int), 2);
    int v = 4, got = 0;
    size_t chosen;
    coro_chan_op ops[2] = { { ch, 2, &v }, { ch, -1, &v } };
    ck_assert_int_eq(await_select(&ops[0], 1, 0, &chosen), 0);
    ck_assert_int_eq(await_select(&ops[1], 1, 0, &chosen), 0);
    ck_assert_int_eq(await_select(&ops[1], 1, 0, &chosen), ETIMEDOUT);
    ck_assert_int_eq(coro_chan_try_recv(ch, &got), 0);
    ck_assert_int_eq(got, 4);
    coro_chan_op none = { ch, 0, NULL }; /* nowhere to receive into */
    ck_assert_int_eq(await_select(&none, 1, 0, &chosen), EINVAL);
    ck_assert_int_eq(await_select(ops, 0, 0, &chosen), EINVAL);
    ck_assert_int_eq(await_select(ops, 1, 0, NULL), EINVAL);
    ck_assert_int_eq(await_select(ops, 1, NAN, &chosen), EINVAL);
    ck_assert_int_eq(coro_chan_try_recv(ch, &got), 0); /* the one left */
    ck_assert_int_eq(coro_chan_free(ch), 0);
    return NULL;
}

START_TEST(numbers_at_their_limits)
{
    run_expect(limits_main, NULL, 0);
}
END_TEST

/* Every kind of object, freed as soon as no task waits on it, before the
 * task it woke has run: the woken task never touches it again. */
static coro_chan *gone_chan;
static coro_queue *gone_queue;
static coro_sem *gone_sem;
static coro_event *gone_event;
static coro_barrier *gone_barrier;

static void *gone_recv(void *arg)
{
    static int v;
    return TOKEN(arg ? await_chan_send(gone_chan, &v, 5)
                     : await_chan_recv(gone_chan, &v, 5));
}

static void *gone_select(void *arg)
{
    (void)arg;
    static int v;
    static coro_chan_op ops[2];
    ops[0] = (coro_chan_op){ gone_chan, 0, &v };
    ops[1] = (coro_chan_op){ gone_chan, 0, &v };
    size_t chosen;
    return TOKEN(await_select(ops, 2, 5, &chosen));
}

static void *gone_get(void *arg)
{
    void *item;
    return TOKEN(arg ? await_queue_join(gone_queue, 5)
                     : await_queue_get(gone_queue, &item, 5));
}

static void *gone_acquire(void *arg)
{
    (void)arg;
    return TOKEN(await_sem_acquire(gone_sem, 5));
}

static void *gone_wait_event(void *arg)
{
    (void)arg;
    return TOKEN(await_event(gone_event, 5));
}

static void *gone_party(void *arg)
{
    (void)arg;
    unsigned index;
    return TOKEN(await_barrier_wait(gone_barrier, 5, &index));
}

/* Spawns fn(arg), lets it park, runs act, which frees what it waited on,
 * and checks what the task then returns. */
static void free_under(coro_fn fn, void *arg, void (*act)(void), int want)
{
    coro_task *t = coro_spawn(fn, arg);
    ck_assert_int_eq(await_yield(), 0);
    act();
    void *r;
    ck_assert_int_eq(await_task(t, &r), 0);
    ck_assert_ptr_eq(r, TOKEN(want));
}

static void send_and_free(void)
{
    int v = 1;
    ck_assert_int_eq(coro_chan_try_send(gone_chan, &v), 0);
    ck_assert_int_eq(coro_chan_free(gone_chan), 0);
}

static void recv_and_free(void)
{
    int v;
    ck_assert_int_eq(coro_chan_try_recv(gone_chan, &v), 0);
    ck_assert_int_eq(coro_chan_free(gone_chan), 0);
}

static void close_and_free(void)
{
    ck_assert_int_eq(coro_chan_close(gone_chan), 0);
    ck_assert_int_eq(coro_chan_free(gone_chan), 0);
}

static void put_and_free(void)
{
    ck_assert_int_eq(coro_queue_try_put(gone_queue, TOKEN(1)), 0);
    ck_assert_int_eq(coro_queue_free(gone_queue), 0);
}

static void done_and_free(void)
{
    ck_assert_int_eq(coro_queue_task_done(gone_queue), 0);
    ck_assert_int_eq(coro_queue_free(gone_queue), 0);
}

static void shut_and_free(void)
{
    ck_assert_int_eq(coro_queue_shutdown_now(gone_queue, NULL, NULL), 0);
    ck_assert_int_eq(coro_queue_free(gone_queue), 0);
}

static void release_and_free(void)
{
    ck_assert_int_eq(coro_sem_release(gone_sem), 0);
    ck_assert_int_eq(coro_sem_free(gone_sem), 0);
}

static void set_and_free(void)
{
    coro_event_set(gone_event);
    ck_assert_int_eq(coro_event_free(gone_event), 0);
}

static void reset_and_free(void)
{
    ck_assert_int_eq(coro_barrier_reset(gone_barrier), 0);
    ck_assert_int_eq(coro_barrier_free(gone_barrier), 0);
}

static void *freed_once_woken_main(void *arg)
{
    (void)arg;
    gone_chan = coro_chan_new(sizeof(int), 0);
    free_under(gone_recv, NULL, send_and_free, 0);
    gone_chan = coro_chan_new(sizeof(int), 0);
    free_under(gone_recv, TOKEN(1), recv_and_free, 0);
    gone_chan = coro_chan_new(sizeof(int), 0);
    free_under(gone_recv, NULL, close_and_free, EPIPE);
    gone_chan = coro_chan_new(sizeof(int), 0);
    free_under(gone_select, NULL, send_and_free, 0);
    gone_queue = coro_queue_new(0);
    free_under(gone_get, NULL, put_and_free, 0);
    gone_queue = coro_queue_new(0);
    void *item;
    ck_assert_int_eq(coro_queue_try_put(gone_queue, TOKEN(1)), 0);
    ck_assert_int_eq(coro_queue_try_get(gone_queue, &item), 0);
    free_under(gone_get, TOKEN(1), done_and_free, 0);
    gone_queue = coro_queue_new(0);
    free_under(gone_get, NULL, shut_and_free, EPIPE);
    gone_sem = coro_sem_new(0);
    free_under(gone_acquire, NULL, release_and_free, 0);
    gone_event = coro_event_new();
    free_under(gone_wait_event, NULL, set_and_free, 0);
    gone_barrier = coro_barrier_new(2);
    free_under(gone_party, NULL, reset_and_free, EPIPE);
    return NULL;
}

START_TEST(an_object_may_be_freed_once_nobody_waits_on_it)
{
    run_expect(freed_once_woken_main, NULL, 0);
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
    tcase_add_test(tc, a_condition_may_be_freed_once_it_notified_its_waiters);
    tcase_add_test(tc, a_mutex_a_condition_waiter_will_take_back_is_busy);
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

    tc = test_case("asyncio queues", 20);
    tcase_add_test(tc, py_queue_test_basics);
    tcase_add_test(tc, py_queue_test_maxsize);
    tcase_add_test(tc, py_queue_test_blocking_get_wait);
    tcase_add_test(tc, py_queue_test_get_cancelled_race);
    tcase_add_test(tc, py_queue_test_get_with_waiting_putters);
    tcase_add_test(tc, py_queue_test_why_are_getters_waiting);
    tcase_add_test(tc, py_queue_test_why_are_putters_waiting);
    tcase_add_test(tc, py_queue_test_cancelled_waiters_not_held);
    tcase_add_test(tc, py_queue_test_blocking_put_wait);
    tcase_add_test(tc, py_queue_test_get_cancel_drop_one_pending_reader);
    tcase_add_test(tc, py_queue_test_get_cancel_drop_many_pending_readers);
    tcase_add_test(tc, py_queue_test_put_cancel_drop);
    tcase_add_test(tc, py_queue_test_put_cancelled);
    tcase_add_test(tc, py_queue_test_put_cancelled_race);
    suite_add_tcase(s, tc);

    tc = test_case("asyncio locks", 20);
    tcase_add_test(tc, py_lock_test_acquire);
    tcase_add_test(tc, py_lock_test_acquire_cancel);
    tcase_add_test(tc, py_lock_test_cancel_race);
    tcase_add_test(tc, py_lock_test_cancel_release_race);
    tcase_add_test(tc, py_lock_test_finished_waiter_cancelled);
    tcase_add_test(tc, py_lock_test_release_not_acquired);
    tcase_add_test(tc, py_event_test_wait);
    tcase_add_test(tc, py_event_test_wait_cancel);
    tcase_add_test(tc, py_event_test_clear_with_waiters);
    tcase_add_test(tc, py_cond_test_wait);
    tcase_add_test(tc, py_cond_test_wait_cancel);
    tcase_add_test(tc, py_cond_test_wait_cancel_contested);
    tcase_add_test(tc, py_cond_test_wait_cancel_after_notify);
    tcase_add_test(tc, py_cond_test_wait_unacquired);
    tcase_add_test(tc, py_cond_test_notify);
    tcase_add_test(tc, py_cond_test_notify_all);
    tcase_add_test(tc, py_cond_test_cancelled_error_wakeup);
    tcase_add_test(tc, py_cond_test_cancelled_error_re_aquire);
    tcase_add_test(tc, py_cond_test_cancelled_wakeup);
    tcase_add_test(tc, py_cond_test_cancelled_wakeup_relock);
    tcase_add_test(tc, py_sem_test_acquire);
    tcase_add_test(tc, py_sem_test_acquire_cancel);
    tcase_add_test(tc, py_sem_test_acquire_cancel_before_awoken);
    tcase_add_test(tc, py_sem_test_acquire_hang);
    tcase_add_test(tc, py_sem_test_acquire_no_hang);
    tcase_add_test(tc, py_sem_test_release_no_waiters);
    tcase_add_test(tc, py_sem_test_acquire_fifo_order);
    tcase_add_test(tc, py_sem_test_acquire_fifo_order_2);
    tcase_add_test(tc, py_sem_test_acquire_fifo_order_3);
    tcase_add_test(tc, py_sem_test_acquire_fifo_order_4);
    tcase_add_test(tc, py_barrier_test_reset_barrier_while_tasks_draining);
    tcase_add_test(tc, py_barrier_test_draining_state);
    suite_add_tcase(s, tc);

    tc = test_case("bad input", 20);
    tcase_add_test(tc, every_call_given_a_null_object_refuses_it);
    tcase_add_test(tc, numbers_at_their_limits);
    tcase_add_test(tc, an_object_may_be_freed_once_nobody_waits_on_it);
    suite_add_tcase(s, tc);

    tc = test_case("shared stack", 20);
    tcase_add_test(tc, new_waits_parked_on_the_shared_stack_survive_others);
    suite_add_tcase(s, tc);
    return s;
}
