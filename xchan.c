/* xchan.c: a channel between threads (coro_xchan): Go's chan between the
 * tasks of any loops and plain threads at once.
 *
 * It is sync.c's channel (fixed-size elements, a ring buffer, FIFO wait
 * lists, direct hand-off) under a mutex, with two kinds of waiter. A task
 * parks as every wait does, its waiter its wait record; a plain
 * thread waits on a condition variable of its own, its waiter on its
 * stack. Whoever completes a waiter (hands it an element, takes its
 * element, or closes the channel) does it under the lock and then wakes
 * it: a thread with a signal, a task with a call posted to its loop
 * (loop.c), which wakes it there. So no thread ever touches another
 * loop's tasks, and each hand-off costs the loop one post: no system call
 * if it is busy, one eventfd write if it sleeps.
 *
 * The race every cross-thread wait has: a task's timeout or cancellation
 * (on its own thread) against a completion (on another). The detach hook
 * takes the waiter off its list under the lock; if it is no longer there,
 * the other side completed it first, and that counts (the element was
 * handed over): the task then waits, shielded, for the wake already
 * posted, since the waiter it lives in must not be reused while a wake
 * for it is on its way, and returns the completion's outcome.
 *
 * An element handed to a waiting receiver is copied by the sender's
 * thread into the receiver's elem, and a waiting sender's is copied out of
 * its elem: neither may be on the stack of a shared-stack task, which
 * moves while it waits (coro.h says so).
 */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* The limits of sync.c's channels. */
#define XCHAN_ELEM_MAX ((size_t)1 << 20)
#define XCHAN_BUF_MAX ((size_t)1 << 30)

struct coro_xchan {
    pthread_mutex_t    lock;
    size_t             elem_size;
    size_t             cap;         /* buffered elements it holds at most */
    char              *buf;         /* cap * elem_size bytes */
    /* Under the lock: */
    size_t             head;        /* oldest buffered element */
    size_t             count;       /* buffered elements */
    int                closed;
    struct coro__list  senders;     /* waiting with an element to send */
    struct coro__list  receivers;   /* waiting for an element */
};

/* A plain thread's waiter, on its stack. */
struct thread_waiter {
    struct coro__xwaiter w;
    pthread_cond_t       cond;
};

static struct coro__xwaiter *first(const struct coro__list *l)
{
    return l->head ? CORO__ENTRY(l->head, struct coro__xwaiter, link)
                   : NULL;
}

static struct coro__list *list_of(struct coro_xchan *c,
                                  const struct coro__xwaiter *w)
{
    return w->send ? &c->senders : &c->receivers;
}

static void *slot(const struct coro_xchan *c, size_t i)
{
    return c->buf + ((c->head + i) % c->cap) * c->elem_size;
}

/* ----------------------------------------------------------------------
 * Completing and waking; lock held
 * ---------------------------------------------------------------------- */

/* The wake of a task, on its loop's thread. */
static void wake_run(struct coro__call *call)
{
    struct coro__xwaiter *w = CORO__CONTAINER_OF(call, struct coro__xwaiter,
                                                 call);
    w->delivered = 1;
    coro__wake(w->task, 0);
}

/* w's operation is done (status 0), or refused by a close (EPIPE): take
 * it off its list and wake it. */
static void complete(struct coro_xchan *c, struct coro__xwaiter *w,
                     int status)
{
    coro__list_remove(list_of(c, w), &w->link);
    w->listed = 0;
    w->done = 1;
    w->status = status;
    if (w->loop) {
        /* The task waits for this wake: its loop cannot have ended. */
        int err = coro__loop_post(w->loop, &w->call, 1);
        CORO__ASSERT(err == 0);
    } else {
        pthread_cond_signal(
            &CORO__CONTAINER_OF(w, struct thread_waiter, w)->cond);
    }
}

/* Sends without waiting if it can: 0, EPIPE, or EAGAIN. */
static int send_now(struct coro_xchan *c, const void *elem)
{
    if (c->closed)
        return EPIPE;
    struct coro__xwaiter *r = first(&c->receivers);
    if (r) { /* the buffer is empty: hand it over */
        memcpy(r->elem, elem, c->elem_size);
        complete(c, r, 0);
        return 0;
    }
    if (c->count < c->cap) {
        memcpy(slot(c, c->count), elem, c->elem_size);
        c->count++;
        return 0;
    }
    return EAGAIN;
}

/* Receives without waiting if it can: 0, EPIPE (closed and drained), or
 * EAGAIN. A waiting sender refills the buffer, or, without one, hands its
 * element over directly. */
static int recv_now(struct coro_xchan *c, void *elem)
{
    struct coro__xwaiter *s = first(&c->senders);
    if (c->count > 0) {
        memcpy(elem, slot(c, 0), c->elem_size);
        c->head = (c->head + 1) % c->cap;
        c->count--;
        if (s) {
            memcpy(slot(c, c->count), s->elem, c->elem_size);
            c->count++;
            complete(c, s, 0);
        }
        return 0;
    }
    if (s) {
        memcpy(elem, s->elem, c->elem_size);
        complete(c, s, 0);
        return 0;
    }
    return c->closed ? EPIPE : EAGAIN;
}

static int now(struct coro_xchan *c, void *elem, int send)
{
    return send ? send_now(c, elem) : recv_now(c, elem);
}

static void enlist(struct coro_xchan *c, struct coro__xwaiter *w)
{
    coro__list_append(list_of(c, w), &w->link);
    w->listed = 1;
}

/* ----------------------------------------------------------------------
 * Tasks
 * ---------------------------------------------------------------------- */

/* A timeout or a cancellation (or the wake itself): off the list, unless
 * the other side completed it first. */
static void task_detach(struct coro_task *t)
{
    struct coro__xwaiter *w = t->waiting_on;
    if (w->delivered)
        return;
    pthread_mutex_lock(&w->chan->lock);
    if (w->listed) {
        coro__list_remove(list_of(w->chan, w), &w->link);
        w->listed = 0;
    }
    pthread_mutex_unlock(&w->chan->lock);
}

static int task_op(coro_xchan *c, void *elem, double timeout, int send)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter(timeout, &self, &deadline);
    if (err)
        return err;
    if (!c || !elem)
        return EINVAL;
    struct coro_loop *h = coro__loop_handle(self->loop);
    if (!h)
        return errno;
    pthread_mutex_lock(&c->lock);
    err = now(c, elem, send);
    if (err != EAGAIN) {
        pthread_mutex_unlock(&c->lock);
        return err;
    }
    struct coro__xwaiter *w = &self->wait->xwait;
    *w = (struct coro__xwaiter){ .elem = elem, .chan = c, .loop = h,
                                 .task = self, .call.run = wake_run,
                                 .send = (unsigned char)send };
    enlist(c, w);
    pthread_mutex_unlock(&c->lock);
    struct coro__park wait = {
        .kind = send ? CORO__W_XCHAN_SEND : CORO__W_XCHAN_RECV,
        .wakers = CORO__BY_THREAD,
        .timeout_status = ETIMEDOUT,
        .deadline = deadline,
        .what = c,
        .detach = task_detach,
        .record = w,
        .record_size = sizeof *w,
    };
    int status = coro__park(self, &wait);
    if (w->delivered)
        return w->status;
    /* detach took the lock after any completion: done is settled. */
    if (!w->done)
        return status;
    /* Completed just as the task gave up: that counts, once the wake on
     * its way has come. */
    wait.deadline = CORO__NEVER;
    while (!w->delivered)
        coro__park_shielded(self, &wait);
    return w->status;
}

int await_xchan_send(coro_xchan *c, const void *elem, double timeout)
{
    return task_op(c, (void *)elem, timeout, 1);
}

int await_xchan_recv(coro_xchan *c, void *elem, double timeout)
{
    return task_op(c, elem, timeout, 0);
}

/* ----------------------------------------------------------------------
 * Plain threads
 * ---------------------------------------------------------------------- */

static int thread_op(coro_xchan *c, void *elem, double timeout, int send)
{
    int64_t deadline;
    if (coro__loop())
        return EPERM;
    if (!c || !elem || coro__deadline(timeout, &deadline) != 0)
        return EINVAL;
    pthread_mutex_lock(&c->lock);
    int err = now(c, elem, send);
    if (err != EAGAIN) {
        pthread_mutex_unlock(&c->lock);
        return err;
    }
    struct thread_waiter tw = {
        .w = { .elem = elem, .chan = c, .send = (unsigned char)send },
    };
    pthread_cond_init(&tw.cond, NULL);
    enlist(c, &tw.w);
    struct timespec at = { .tv_sec = deadline / 1000000000,
                           .tv_nsec = deadline % 1000000000 };
    int status = 0;
    while (!tw.w.done && !status) {
        if (deadline == CORO__NEVER)
            pthread_cond_wait(&tw.cond, &c->lock);
        else if (pthread_cond_clockwait(&tw.cond, &c->lock,
                                        CLOCK_MONOTONIC, &at) == ETIMEDOUT &&
                 !tw.w.done)
            status = ETIMEDOUT;
    }
    if (status)
        coro__list_remove(list_of(c, &tw.w), &tw.w.link);
    else
        status = tw.w.status;
    pthread_mutex_unlock(&c->lock);
    pthread_cond_destroy(&tw.cond);
    return status;
}

int coro_xchan_send(coro_xchan *c, const void *elem, double timeout)
{
    return thread_op(c, (void *)elem, timeout, 1);
}

int coro_xchan_recv(coro_xchan *c, void *elem, double timeout)
{
    return thread_op(c, elem, timeout, 0);
}

/* ----------------------------------------------------------------------
 * Either
 * ---------------------------------------------------------------------- */

coro_xchan *coro_xchan_new(size_t elem_size, size_t capacity)
{
    if (elem_size == 0 || elem_size > XCHAN_ELEM_MAX ||
        capacity > XCHAN_BUF_MAX / elem_size) {
        errno = EINVAL;
        return NULL;
    }
    coro_xchan *c = coro__calloc(1, sizeof *c);
    if (!c)
        goto out_nomem;
    if (capacity && !(c->buf = coro__alloc(capacity * elem_size)))
        goto out_free;
    int err = pthread_mutex_init(&c->lock, NULL);
    if (err) {
        coro__free(c->buf, capacity * elem_size);
        coro__free(c, sizeof *c);
        errno = err;
        return NULL;
    }
    c->elem_size = elem_size;
    c->cap = capacity;
    return c;

out_free:
    coro__free(c, sizeof *c);
out_nomem:
    errno = ENOMEM;
    return NULL;
}

static int try_op(coro_xchan *c, void *elem, int send)
{
    if (!c || !elem)
        return EINVAL;
    pthread_mutex_lock(&c->lock);
    int err = now(c, elem, send);
    pthread_mutex_unlock(&c->lock);
    return err;
}

int coro_xchan_try_send(coro_xchan *c, const void *elem)
{
    return try_op(c, (void *)elem, 1);
}

int coro_xchan_try_recv(coro_xchan *c, void *elem)
{
    return try_op(c, elem, 0);
}

int coro_xchan_close(coro_xchan *c)
{
    if (!c)
        return EINVAL;
    pthread_mutex_lock(&c->lock);
    int was = c->closed;
    c->closed = 1;
    /* Receivers wait only on an empty buffer: nothing left to drain. */
    while (!was && c->senders.head)
        complete(c, first(&c->senders), EPIPE);
    while (!was && c->receivers.head)
        complete(c, first(&c->receivers), EPIPE);
    pthread_mutex_unlock(&c->lock);
    return was ? EPIPE : 0;
}

size_t coro_xchan_size(const coro_xchan *c)
{
    if (!c)
        return 0;
    pthread_mutex_t *lock = (pthread_mutex_t *)&c->lock;
    pthread_mutex_lock(lock);
    size_t n = c->count;
    pthread_mutex_unlock(lock);
    return n;
}

int coro_xchan_free(coro_xchan *c)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->lock);
    int busy = c->senders.head || c->receivers.head;
    pthread_mutex_unlock(&c->lock);
    if (busy)
        return EBUSY;
    pthread_mutex_destroy(&c->lock);
    coro__free(c->buf, c->cap * c->elem_size);
    coro__free(c, sizeof *c);
    return 0;
}
