/* future.c: a coroutine submitted to another loop, and the future its
 * submitter waits on (asyncio.run_coroutine_threadsafe and
 * concurrent.futures.Future).
 *
 * Three threads may meet at a future: the submitter's, the target loop's,
 * which runs the task, and the waiter's (a task of any loop, or a plain
 * thread). Nothing of a loop is touched from another thread: the target
 * spawns and cancels the task in calls posted to it (loop.c), and a
 * waiting task is woken by a call posted to its own loop. What the
 * threads share is the future itself, under its mutex, and it is freed
 * when the last of them lets go (a reference count: the holder, the task
 * side, and each call in flight).
 *
 * The calls a future posts are embedded in it, so a post never fails for
 * memory: the spawn is new work, refused with ESHUTDOWN by a loop that is
 * ending (then there is no future); the cancel goes to a loop whose task
 * has not ended, and the wake to the loop of a task that waits for it,
 * both loops that cannot have ended (see coro__loop_post).
 *
 * A waiting task that times out or is cancelled cancels the task and
 * waits on, shielded, until it has ended, as await_task does: nothing it
 * waited for is left running unowned, and the result is still there to
 * free. The waiter's record is the future (on the heap), and a wake call
 * wakes only a task still registered on it: each wake of the waiting task,
 * whatever its source, takes it off (the detach hook), so a wake call that
 * comes late finds nobody and does nothing.
 */
#include "internal.h"

#include <errno.h>
#include <time.h>

struct coro_future {
    pthread_mutex_t    lock;
    pthread_cond_t     done_cond;   /* a waiting thread sleeps on it */
    atomic_int         refs;        /* the holder, the task side, each
                                       call in flight: the last frees */
    coro_fn            fn;
    void              *arg;
    const char        *fn_name;     /* for the task's name */
    const char        *site;
    struct coro_task  *task;        /* the task while it runs (the target
                                       loop's thread only) */
    struct coro__call  spawn;       /* to the target: spawn the task */
    struct coro__call  cancel;      /* to the target: cancel it */
    struct coro__call  wake;        /* to the waiter's loop: it ended */
    /* Under the lock: */
    struct coro_loop  *target;      /* the task's loop, referenced until
                                       the task ends; then NULL */
    unsigned char      done;        /* the task has ended */
    unsigned char      cancel_sent; /* the cancel is posted */
    unsigned char      awaited;     /* a waiter has claimed it (or it was
                                       let go): no second */
    unsigned char      thread_waits;/* a plain thread waits on done_cond */
    void              *result;      /* what the task returned */
    int                error;       /* what await_task would say of it */
    struct coro_task  *waiter;      /* a task parked on it, or NULL */
    struct coro_loop  *waiter_loop; /* that task's loop */
};

static void future_unref(struct coro_future *f)
{
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_cond_destroy(&f->done_cond);
    pthread_mutex_destroy(&f->lock);
    coro__free(f, sizeof *f);
}

/* Posts one of f's calls; lock held. It cannot be refused (see above). */
static void post_locked(struct coro_future *f, struct coro_loop *to,
                        struct coro__call *c)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    int err = coro__loop_post(to, c, 1);
    CORO__ASSERT(err == 0);
}

/* ----------------------------------------------------------------------
 * The task's side: on the target loop's thread
 * ---------------------------------------------------------------------- */

/* The task has ended (or could not be spawned): tell the waiter. */
static void complete(struct coro_future *f, void *result, int error)
{
    pthread_mutex_lock(&f->lock);
    struct coro_loop *target = f->target;
    f->target = NULL;
    f->result = result;
    f->error = error;
    f->done = 1;
    if (f->waiter)
        post_locked(f, f->waiter_loop, &f->wake);
    if (f->thread_waits)
        pthread_cond_signal(&f->done_cond);
    pthread_mutex_unlock(&f->lock);
    coro__loop_unref(target);
    future_unref(f); /* the task side's */
}

/* The submitted task: fn, then its outcome into the future. */
static void *runner(void *arg)
{
    struct coro_future *f = arg;
    struct coro_task *self = coro__current();
    void *result = f->fn(f->arg);
    int error = coro__task_error(self);
    /* Reported through the future: the task itself ends clean, so
     * CORO_DEBUG does not warn of a failure nobody joined. */
    self->error = 0;
    f->task = NULL;
    complete(f, result, error);
    return NULL;
}

static void spawn_run(struct coro__call *c)
{
    struct coro_future *f = CORO__CONTAINER_OF(c, struct coro_future,
                                               spawn);
    int err;
    struct coro_task *t = coro__spawn(NULL, runner, f, f->fn_name, f->site,
                                      NULL, NULL, &err);
    if (!t) {
        complete(f, NULL, err);
        return;
    }
    coro_detach(t);
    f->task = t;
}

/* The spawn was posted before any cancel could be (the future did not
 * exist yet), and one FIFO keeps them in that order: the task is running,
 * or has ended. */
static void cancel_run(struct coro__call *c)
{
    struct coro_future *f = CORO__CONTAINER_OF(c, struct coro_future,
                                               cancel);
    if (f->task)
        coro__cancel(f->task);
    future_unref(f);
}

/* Lock held. */
static void cancel_locked(struct coro_future *f)
{
    if (!f->done && !f->cancel_sent) {
        f->cancel_sent = 1;
        post_locked(f, f->target, &f->cancel);
    }
}

/* ----------------------------------------------------------------------
 * The waiter's side
 * ---------------------------------------------------------------------- */

/* On the waiting task's loop: wakes it if it still waits on f. */
static void wake_run(struct coro__call *c)
{
    struct coro_future *f = CORO__CONTAINER_OF(c, struct coro_future, wake);
    pthread_mutex_lock(&f->lock);
    struct coro_task *t = f->waiter;
    pthread_mutex_unlock(&f->lock);
    if (t)
        coro__wake(t, 0);
    future_unref(f);
}

/* Every wake of the waiting task takes it off f. */
static void waiter_detach(struct coro_task *t)
{
    struct coro_future *f = t->waiting_on;
    pthread_mutex_lock(&f->lock);
    if (f->waiter == t)
        f->waiter = NULL;
    pthread_mutex_unlock(&f->lock);
}

/* Parks self on f until the task ends: 0, or, unless shielded, ETIMEDOUT
 * or ECANCELED. 0 at once if it has ended. */
static int park_on(struct coro_future *f, struct coro_task *self,
                   struct coro_loop *h, int64_t deadline, int shielded)
{
    pthread_mutex_lock(&f->lock);
    int done = f->done;
    /* A task of the waiter's own loop: only that loop's tasks can end it,
     * so a wait on it is one of theirs, and deadlock detection sees it. */
    int own = f->target == h;
    if (!done) {
        f->waiter = self;
        f->waiter_loop = h;
    }
    pthread_mutex_unlock(&f->lock);
    if (done)
        return 0;
    struct coro__park wait = {
        .kind = CORO__W_FUTURE,
        .wakers = own ? 0 : CORO__BY_THREAD,
        .timeout_status = ETIMEDOUT,
        .deadline = deadline,
        .what = f,
        .detach = waiter_detach,
        .record = f,
        .record_size = sizeof *f,
    };
    return shielded ? coro__park_shielded(self, &wait)
                    : coro__park(self, &wait);
}

static int is_done(struct coro_future *f)
{
    pthread_mutex_lock(&f->lock);
    int done = f->done;
    pthread_mutex_unlock(&f->lock);
    return done;
}

/* Claims f for one waiter: 0, or EINVAL if another has. */
static int claim(struct coro_future *f, int thread)
{
    pthread_mutex_lock(&f->lock);
    int taken = f->awaited;
    f->awaited = 1;
    if (thread && !taken)
        f->thread_waits = 1;
    pthread_mutex_unlock(&f->lock);
    return taken ? EINVAL : 0;
}

/* The task has ended: its outcome, and f freed (the holder's share).
 * waited: status came while the caller waited, not at its entry. */
static int consume(struct coro_future *f, int status, int waited,
                   void **result)
{
    pthread_mutex_lock(&f->lock);
    void *r = f->result;
    int error = f->error;
    pthread_mutex_unlock(&f->lock);
    if (result)
        *result = r;
    future_unref(f);
    return coro__await_outcome(status, error, waited);
}

int await_future(coro_future *f, double timeout, void **result)
{
    struct coro_task *self;
    int64_t deadline;
    int entry = coro__enter_unrecorded(timeout, &self, &deadline);
    if (entry == EPERM || entry == EINVAL)
        return entry; /* ECANCELED, ETIMEDOUT (a scope): cancel, drain */
    if (!f)
        return EINVAL;
    struct coro_loop *h = coro__loop_handle(self->loop);
    if (!h)
        return errno;
    if (claim(f, 0))
        return EINVAL;
    int status = entry;
    if (!status) {
        status = park_on(f, self, h, deadline, 0);
        if (status && is_done(f))
            status = 0; /* it ended before the wake came: that counts */
    }
    if (status) {
        coro_future_cancel(f);
        while (!is_done(f))
            park_on(f, self, h, CORO__NEVER, 1);
        /* As await_task_timeout: the caller's own cancellation comes
         * first. */
        if (status == ETIMEDOUT &&
            coro__enter_unrecorded(-1, &self, NULL) == ECANCELED)
            status = ECANCELED;
    }
    return consume(f, status, entry == 0, result);
}

int coro_future_wait(coro_future *f, double timeout, void **result)
{
    int64_t deadline;
    if (coro__loop())
        return EPERM;
    if (!f || coro__deadline(timeout, &deadline) != 0)
        return EINVAL;
    if (claim(f, 1))
        return EINVAL;
    struct timespec at = { .tv_sec = deadline / 1000000000,
                           .tv_nsec = deadline % 1000000000 };
    int status = 0;
    pthread_mutex_lock(&f->lock);
    while (!f->done && !status) {
        if (deadline == CORO__NEVER)
            pthread_cond_wait(&f->done_cond, &f->lock);
        else if (pthread_cond_clockwait(&f->done_cond, &f->lock,
                                        CLOCK_MONOTONIC, &at) == ETIMEDOUT &&
                 !f->done)
            status = ETIMEDOUT;
    }
    if (status) { /* as await_future: cancel, and wait for its end */
        cancel_locked(f);
        while (!f->done)
            pthread_cond_wait(&f->done_cond, &f->lock);
    }
    pthread_mutex_unlock(&f->lock);
    return consume(f, status, 1, result);
}

int coro_future_cancel(coro_future *f)
{
    if (!f)
        return EINVAL;
    pthread_mutex_lock(&f->lock);
    cancel_locked(f);
    pthread_mutex_unlock(&f->lock);
    return 0;
}

int coro_future_done(const coro_future *f)
{
    return f ? is_done((coro_future *)f) : 0;
}

int coro_future_free(coro_future *f)
{
    if (!f)
        return 0;
    if (claim(f, 0))
        return EBUSY;
    future_unref(f);
    return 0;
}

/* ----------------------------------------------------------------------
 * Submitting
 * ---------------------------------------------------------------------- */

int coro__loop_submit_at(coro_loop *loop, coro_fn fn, void *arg,
                         coro_future **out, const char *fn_name,
                         const char *site)
{
    if (!loop || !fn || !out)
        return EINVAL;
    struct coro_future *f = coro__calloc(1, sizeof *f);
    if (!f)
        return ENOMEM;
    int err = pthread_mutex_init(&f->lock, NULL);
    if (err)
        goto out_free;
    if ((err = pthread_cond_init(&f->done_cond, NULL)) != 0)
        goto out_mutex;
    atomic_init(&f->refs, 2); /* the holder's and the task side's */
    f->fn = fn;
    f->arg = arg;
    f->fn_name = fn_name;
    f->site = site;
    f->spawn.run = spawn_run;
    f->cancel.run = cancel_run;
    f->wake.run = wake_run;
    f->target = loop;
    coro__loop_ref(loop);
    if ((err = coro__loop_post(loop, &f->spawn, 0)) != 0)
        goto out_loop;
    *out = f;
    return 0;

out_loop:
    coro__loop_unref(loop);
    pthread_cond_destroy(&f->done_cond);
out_mutex:
    pthread_mutex_destroy(&f->lock);
out_free:
    coro__free(f, sizeof *f);
    return err;
}

int (coro_loop_submit)(coro_loop *loop, coro_fn fn, void *arg,
                       coro_future **out)
{
    return coro__loop_submit_at(loop, fn, arg, out, NULL, NULL);
}
