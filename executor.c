/* executor.c: worker threads for blocking calls (await_blocking), asyncio's
 * run_in_executor with the default ThreadPoolExecutor.
 *
 * The rule that keeps this simple: worker threads never touch loop state.
 * They share with the loop only struct coro__executor's queues and flags,
 * under its mutex, and the jobs they run. A job is the wait record of the
 * task that submitted it. A cancellation takes a job that has not
 * started off the queue; one that runs cannot be stopped, so the task,
 * woken with ECANCELED, parks again, shielded, until the job is collected:
 * the job's memory and whatever fn uses on the task's stack stay valid
 * while a worker uses them.
 *
 * Completions go on a done list and are posted to the loop (CORO__POST_JOBS,
 * see poll.c), which collects them on its own thread at its next switch.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_CANCELLED };

#define WORKERS_MAX 1024 /* coro_set_workers and CORO_WORKERS accept 1..this */

/* asyncio's default: min(32, CPUs + 4), counting the CPUs this process may
 * run on. */
static unsigned default_workers(void)
{
    unsigned cpus = coro__cpus();
    return cpus + 4 < 32 ? cpus + 4 : 32;
}

static int env_workers(unsigned *out)
{
    size_t v;
    int err = coro__env_size("CORO_WORKERS", 1, WORKERS_MAX, &v);
    if (err == ENOENT) {
        *out = default_workers();
        return 0;
    }
    if (!err)
        *out = (unsigned)v;
    return err;
}

static void *worker_main(void *arg)
{
    struct coro__executor *x = arg;
    pthread_mutex_lock(&x->lock);
    for (;;) {
        while (!x->stop && (!x->queue.head || x->running >= x->max)) {
            x->idle++;
            pthread_cond_wait(&x->work, &x->lock);
            x->idle--;
        }
        if (x->stop)
            break;
        struct coro__job *job = CORO__ENTRY(x->queue.head, struct coro__job,
                                            link);
        coro__list_remove(&x->queue, &job->link);
        x->nqueued--;
        job->state = JOB_RUNNING;
        x->running++;
        pthread_mutex_unlock(&x->lock);

        errno = 0;
        void *result = job->fn(job->arg);
        int err = errno;

        pthread_mutex_lock(&x->lock);
        job->result = result;
        job->err = err;
        job->state = JOB_DONE;
        x->running--;
        coro__list_append(&x->done, &job->link);
        coro__poller_post(x->poller, CORO__POST_JOBS);
    }
    pthread_mutex_unlock(&x->lock);
    return NULL;
}

/* Starts one more worker, with every signal blocked (signals are for the
 * loop's thread). Called with the lock held. */
static int worker_start(struct coro__executor *x)
{
    if (x->nthreads == x->cap) {
        size_t cap = x->cap ? 2 * x->cap : 8;
        pthread_t *t = coro__realloc(x->threads, x->cap * sizeof *t,
                                     cap * sizeof *t);
        if (!t)
            return ENOMEM;
        x->threads = t;
        x->cap = cap;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&x->threads[x->nthreads], NULL, worker_main, x);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err)
        return err;
    pthread_setname_np(x->threads[x->nthreads], "coro-worker");
    x->nthreads++;
    return 0;
}

/* Starts workers until every queued job has one free to take it, or the
 * limit is reached (the rest wait their turn, FIFO). Workers not running a
 * job are free, including those just started and not yet waiting. Lock
 * held. */
static int workers_grow(struct coro__executor *x)
{
    while (x->nqueued > x->nthreads - x->running && x->nthreads < x->max) {
        int err = worker_start(x);
        if (err)
            return err;
    }
    return 0;
}

/* The loop's hook for CORO__POST_JOBS: wakes the tasks whose jobs are
 * done. */
static void collect(struct coro__poller *p)
{
    struct coro__executor *x =
        &CORO__CONTAINER_OF(p, struct coro__loop, poller)->executor;
    pthread_mutex_lock(&x->lock);
    struct coro__link *n = x->done.head;
    x->done = (struct coro__list){ NULL, NULL };
    pthread_mutex_unlock(&x->lock);
    while (n) {
        struct coro__job *job = CORO__ENTRY(n, struct coro__job, link);
        n = n->next;
        x->inflight--;
        job->collected = 1;
        coro__wake(job->task, 0);
    }
}

int coro__executor_init(struct coro__executor *x, struct coro__poller *p)
{
    memset(x, 0, sizeof *x);
    x->poller = p;
    p->on_post[CORO__POST_JOBS] = collect;
    int err = env_workers(&x->max);
    if (err)
        return err;
    if ((err = pthread_mutex_init(&x->lock, NULL)) != 0)
        return err;
    if ((err = pthread_cond_init(&x->work, NULL)) != 0) {
        pthread_mutex_destroy(&x->lock);
        return err;
    }
    x->initialized = 1;
    return 0;
}

void coro__executor_term(struct coro__executor *x)
{
    if (!x->initialized)
        return;
    CORO__ASSERT(x->inflight == 0);
    pthread_mutex_lock(&x->lock);
    x->stop = 1;
    pthread_cond_broadcast(&x->work);
    pthread_mutex_unlock(&x->lock);
    for (size_t i = 0; i < x->nthreads; i++)
        pthread_join(x->threads[i], NULL);
    coro__free(x->threads, x->cap * sizeof *x->threads);
    pthread_cond_destroy(&x->work);
    pthread_mutex_destroy(&x->lock);
    x->initialized = 0;
}

static int submit(struct coro__executor *x, struct coro__job *job)
{
    int err = coro__poller_wakeup_open(x->poller);
    if (err)
        return err;
    pthread_mutex_lock(&x->lock);
    coro__list_append(&x->queue, &job->link);
    x->nqueued++;
    err = workers_grow(x);
    if (err && x->nthreads == 0) {
        /* No worker at all: fail now rather than queue forever. With some,
         * the job waits its turn. */
        coro__list_remove(&x->queue, &job->link);
        x->nqueued--;
        pthread_mutex_unlock(&x->lock);
        return err == EAGAIN ? EAGAIN : ENOMEM;
    }
    if (x->idle > 0)
        pthread_cond_signal(&x->work);
    pthread_mutex_unlock(&x->lock);
    x->inflight++;
    return 0;
}

/* A cancellation or a deadlock: a queued job leaves the queue and never
 * runs; a running one is left to finish (await_blocking waits for it). */
static void job_detach(struct coro_task *t)
{
    struct coro__job *job = t->waiting_on;
    struct coro__executor *x = &t->loop->executor;
    pthread_mutex_lock(&x->lock);
    if (job->state == JOB_QUEUED) {
        coro__list_remove(&x->queue, &job->link);
        x->nqueued--;
        job->dropped = 1;
        x->inflight--;
    }
    pthread_mutex_unlock(&x->lock);
}

int await_blocking(void *(*fn)(void *), void *arg, void **result)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter(-1, &self, &deadline);
    if (err)
        return err;
    if (!fn)
        return EINVAL;
    struct coro__job *job = &self->wait->job;
    *job = (struct coro__job){ .fn = fn, .arg = arg, .task = self };
    err = submit(&self->loop->executor, job);
    if (err)
        return err;
    struct coro__park wait = {
        .kind = CORO__W_BLOCKING,
        .wakers = CORO__BY_WORKER,
        .timeout_status = ETIMEDOUT, /* a timeout scope's */
        .deadline = deadline,
        .detach = job_detach,
        .record = job,
        .record_size = sizeof *job,
    };
    int status = coro__park(self, &wait);
    if (job->dropped)
        return status;
    /* Woken early (cancelled, or a scope's deadline) while fn runs: wait
     * for it, uninterrupted. */
    wait.detach = NULL;
    wait.deadline = CORO__NEVER;
    while (!job->collected)
        coro__park_shielded(self, &wait);
    if (result)
        *result = job->result;
    errno = job->err;
    return status;
}

unsigned coro_workers(void)
{
    struct coro_task *self = coro__current();
    if (self)
        return self->loop->executor.max; /* written only on this thread */
    unsigned n;
    return env_workers(&n) == 0 ? n : 0;
}

int coro_set_workers(unsigned n)
{
    struct coro_task *self = coro__current();
    if (!self || n == 0 || n > WORKERS_MAX)
        return EINVAL;
    struct coro__executor *x = &self->loop->executor;
    pthread_mutex_lock(&x->lock);
    x->max = n;
    /* Raised: jobs queued behind the old limit may start now. A failure
     * to start more leaves them to the workers there are. */
    workers_grow(x);
    pthread_cond_broadcast(&x->work);
    pthread_mutex_unlock(&x->lock);
    return 0;
}
