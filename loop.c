/* loop.c: a loop's handle, and calls posted to a loop from any thread
 * (coro_loop_post: asyncio's call_soon_threadsafe).
 *
 * The handle. Other threads need something to name a loop by that stays
 * valid when the loop does not: a loop ends when its coro_run returns, and
 * a thread that still holds its address must get an error, not freed
 * memory. The handle is a small heap object with a reference count; the
 * loop holds one reference while it runs, coro_loop_retain gives more.
 * When the loop ends it detaches itself from the handle (under the
 * handle's lock), and every later post says ESHUTDOWN. A generation-checked
 * registry (a slot number and a generation in an integer) would need no
 * counting, but it needs a table that never shrinks and a limit on the
 * loops a process runs at once; a count is the smaller thing.
 *
 * Posts. A call goes on the handle's FIFO under its mutex and sets the
 * poller's CORO__POST_CALLS bit, which wakes the loop as the executor's
 * completions do (see poll.c): no system call when the loop is busy, one
 * eventfd write when it sleeps. The loop runs its calls in its own
 * context, on its thread's stack, never inside a task: the poller's hook
 * only marks them due, and the loop's context takes the whole queue and
 * runs it in order when no task is ready, or at the next tick (every 64
 * switches, when it also looks at I/O: sched.c), so neither the calls nor
 * the tasks can starve the other. One FIFO for all posters keeps each
 * poster's calls in order.
 *
 * The end. A call accepted (0 returned) runs exactly once. When main
 * returns, the loop closes the door to new work (ESHUTDOWN from then on):
 * a loop flooded with posts could otherwise never end. coro_run then runs
 * what was accepted, lets every task end (those the calls spawn are born
 * cancelled), and only then detaches the handle. Wakes, the
 * replies other threads post to tasks of the loop that wait for them (a
 * future's end, a channel's hand-off), are taken as long as the loop
 * exists: a task waiting for one keeps the loop from ending.
 */
#include "internal.h"

#include <errno.h>
#include <stdatomic.h>

struct coro_loop {
    pthread_mutex_t     lock;
    atomic_long         refs;       /* the loop's own, retains, and the
                                       runtime's (a future holds its
                                       task's loop): the last frees */
    atomic_long         holders;    /* references from coro_loop_retain:
                                       while any, posts may come */
    struct coro__loop  *loop;       /* the loop, NULL once it ended (lock) */
    int                 open;       /* new work is taken (lock) */
    struct coro__call  *head;       /* calls posted, FIFO (lock) */
    struct coro__call  *tail;
};

/* The poller's hook for CORO__POST_CALLS: the loop's context will run the
 * calls; here, perhaps inside a task that is switching away, they are only
 * marked due. */
static void calls_posted(struct coro__poller *p)
{
    CORO__CONTAINER_OF(p, struct coro__loop, poller)->calls_due = 1;
}

void coro__loop_init(struct coro__loop *l)
{
    l->poller.on_post[CORO__POST_CALLS] = calls_posted;
}

struct coro_loop *coro__loop_handle(struct coro__loop *l)
{
    if (l->handle)
        return l->handle;
    int err = coro__poller_wakeup_open(&l->poller);
    if (err) {
        errno = err;
        return NULL;
    }
    struct coro_loop *h = coro__calloc(1, sizeof *h);
    if (!h) {
        errno = ENOMEM;
        return NULL;
    }
    if ((err = pthread_mutex_init(&h->lock, NULL)) != 0) {
        coro__free(h, sizeof *h);
        errno = err;
        return NULL;
    }
    atomic_init(&h->refs, 1);
    atomic_init(&h->holders, 0);
    h->loop = l;
    h->open = 1;
    return l->handle = h;
}

void coro__loop_ref(struct coro_loop *h)
{
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
}

void coro__loop_unref(struct coro_loop *h)
{
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1)
        return;
    CORO__ASSERT(!h->loop && !h->head);
    pthread_mutex_destroy(&h->lock);
    coro__free(h, sizeof *h);
}

int coro__loop_post(struct coro_loop *h, struct coro__call *c, int wake)
{
    pthread_mutex_lock(&h->lock);
    if (!h->loop || (!h->open && !wake)) {
        pthread_mutex_unlock(&h->lock);
        return ESHUTDOWN;
    }
    c->next = NULL;
    if (h->tail)
        h->tail->next = c;
    else
        h->head = c;
    h->tail = c;
    /* Under the lock: the loop cannot detach and free its poller while a
     * poster still has to wake it. */
    coro__poller_post(&h->loop->poller, CORO__POST_CALLS);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

int coro__loop_calls(struct coro__loop *l)
{
    struct coro_loop *h = l->handle;
    l->calls_due = 0;
    if (!h)
        return 0;
    pthread_mutex_lock(&h->lock);
    struct coro__call *c = h->head;
    h->head = h->tail = NULL;
    pthread_mutex_unlock(&h->lock);
    int ran = c != NULL;
    while (c) {
        struct coro__call *next = c->next;
        c->run(c);
        c = next;
    }
    return ran;
}

/* A holder's release comes after its last post (program order, and the
 * decrement releases): a loop that reads no holder left then also sees
 * that post's bit, so it never gives up on a call already on its way. */
int coro__loop_reachable(struct coro__loop *l)
{
    struct coro_loop *h = l->handle;
    if (!h)
        return 0;
    return atomic_load_explicit(&h->holders, memory_order_acquire) > 0 ||
           coro__poller_posted(&l->poller);
}

void coro__loop_close(struct coro__loop *l)
{
    struct coro_loop *h = l->handle;
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->open = 0;
    pthread_mutex_unlock(&h->lock);
}

void coro__loop_term(struct coro__loop *l)
{
    struct coro_loop *h = l->handle;
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    CORO__ASSERT(!h->head); /* coro_run ran every call first */
    h->loop = NULL;
    h->open = 0;
    pthread_mutex_unlock(&h->lock);
    l->handle = NULL;
    coro__loop_unref(h);
}

/* ----------------------------------------------------------------------
 * The public calls
 * ---------------------------------------------------------------------- */

coro_loop *coro_loop_current(void)
{
    struct coro__loop *l = coro__loop();
    if (!l) {
        errno = EINVAL;
        return NULL;
    }
    return coro__loop_handle(l);
}

coro_loop *coro_loop_retain(coro_loop *loop)
{
    if (loop) {
        coro__loop_ref(loop);
        atomic_fetch_add_explicit(&loop->holders, 1, memory_order_relaxed);
    }
    return loop;
}

/* The last holder gone, a loop asleep with nothing else to wake it must
 * look again: it may be deadlocked now. An empty post makes it look. */
void coro_loop_release(coro_loop *loop)
{
    if (!loop)
        return;
    /* A release without its retain (of the borrowed handle, or once too
     * often) finds no holder to let go of, and does nothing: it would
     * free the handle under its running loop. */
    long held = atomic_load_explicit(&loop->holders, memory_order_relaxed);
    do {
        if (held <= 0)
            return;
    } while (!atomic_compare_exchange_weak_explicit(
        &loop->holders, &held, held - 1, memory_order_release,
        memory_order_relaxed));
    if (held == 1) {
        pthread_mutex_lock(&loop->lock);
        if (loop->loop)
            coro__poller_post(&loop->loop->poller, CORO__POST_CALLS);
        pthread_mutex_unlock(&loop->lock);
    }
    coro__loop_unref(loop);
}

int coro_loop_alive(const coro_loop *loop)
{
    if (!loop)
        return 0;
    pthread_mutex_t *lock = (pthread_mutex_t *)&loop->lock;
    pthread_mutex_lock(lock);
    int alive = loop->open;
    pthread_mutex_unlock(lock);
    return alive;
}

/* A call of coro_loop_post's: the user's function, and the memory to free
 * once it has run. */
struct user_call {
    struct coro__call call;
    void            (*fn)(void *);
    void             *arg;
};

static void user_call_run(struct coro__call *c)
{
    struct user_call *u = CORO__CONTAINER_OF(c, struct user_call, call);
    void (*fn)(void *) = u->fn;
    void *arg = u->arg;
    coro__free(u, sizeof *u);
    fn(arg);
}

int coro_loop_post(coro_loop *loop, void (*fn)(void *arg), void *arg)
{
    if (!loop || !fn)
        return EINVAL;
    struct user_call *u = coro__alloc(sizeof *u);
    if (!u)
        return ENOMEM;
    *u = (struct user_call){ .call.run = user_call_run, .fn = fn,
                             .arg = arg };
    int err = coro__loop_post(loop, &u->call, 0);
    if (err)
        coro__free(u, sizeof *u);
    return err;
}
