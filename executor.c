/* executor.c: worker threads for blocking calls (await_blocking), asyncio's
 * run_in_executor with the default ThreadPoolExecutor.
 *
 * The rule that keeps this simple: worker threads never touch loop state.
 * They share with the loop only struct coro__executor's queues and flags,
 * under its mutex, and the jobs they run. A job lives in the control block
 * of the task that submitted it; the task stays parked until the job is
 * collected, even when cancelled, so that memory is valid while a worker
 * uses it.
 *
 * Completions go on a done list. The loop looks at an atomic `pending` flag
 * on every switch (one load) and collects there; only when the loop is
 * asleep in the kernel does a worker write the eventfd that wakes it. The
 * two sides publish "I am about to sleep" and "there is work" with
 * sequentially consistent atomics and then read the other's flag, so at
 * least one of them sees the other: the loop never sleeps through a
 * completion, and a busy loop costs workers no system call.
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <unistd.h>

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_CANCELLED };

#define WORKERS_MAX 1024 /* coro_set_workers and CORO_WORKERS accept 1..this */

static void queue_append(struct coro__job **head, struct coro__job **tail,
                         struct coro__job *job)
{
    job->next = NULL;
    job->prev = *tail;
    if (*tail)
        (*tail)->next = job;
    else
        *head = job;
    *tail = job;
}

static void queue_remove(struct coro__job **head, struct coro__job **tail,
                         struct coro__job *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else
        *head = job->next;
    if (job->next)
        job->next->prev = job->prev;
    else
        *tail = job->prev;
}

/* asyncio's default: min(32, CPUs + 4), counting the CPUs this process may
 * run on. */
static unsigned default_workers(void)
{
    cpu_set_t set;
    long cpus = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        cpus = CPU_COUNT(&set);
    if (cpus <= 0)
        cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus <= 0)
        cpus = 1;
    return cpus + 4 < 32 ? (unsigned)cpus + 4 : 32;
}

static int env_workers(unsigned *out)
{
    const char *s = getenv("CORO_WORKERS");
    if (!s || !*s) {
        *out = default_workers();
        return 0;
    }
    unsigned v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (unsigned)(*s - '0');
        if (v > WORKERS_MAX)
            return EINVAL;
    }
    if (*s || v == 0)
        return EINVAL;
    *out = v;
    return 0;
}

static void *worker_main(void *arg)
{
    struct coro__executor *x = arg;
    pthread_mutex_lock(&x->lock);
    for (;;) {
        while (!x->stop && (!x->queue_head || x->running >= x->max)) {
            x->idle++;
            pthread_cond_wait(&x->work, &x->lock);
            x->idle--;
        }
        if (x->stop)
            break;
        struct coro__job *job = x->queue_head;
        queue_remove(&x->queue_head, &x->queue_tail, job);
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
        queue_append(&x->done_head, &x->done_tail, job);
        atomic_store(&x->pending, 1);
        if (atomic_load(&x->sleeping)) {
            uint64_t one = 1;
            ssize_t r = write(x->evfd, &one, sizeof one);
            (void)r; /* EAGAIN: the counter is already non-zero */
        }
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

static struct coro__loop *executor_loop(struct coro__executor *x)
{
    return CORO__CONTAINER_OF(x, struct coro__loop, executor);
}

void coro__executor_collect(struct coro__executor *x)
{
    pthread_mutex_lock(&x->lock);
    struct coro__job *job = x->done_head;
    x->done_head = x->done_tail = NULL;
    atomic_store(&x->pending, 0);
    pthread_mutex_unlock(&x->lock);
    while (job) {
        struct coro__job *next = job->next;
        x->inflight--;
        coro__wake(job->task, 0);
        job = next;
    }
}

static void evfd_ready(struct coro__pollable *self, uint32_t events)
{
    struct coro__executor *x =
        CORO__CONTAINER_OF(self, struct coro__executor, pollable);
    uint64_t count;
    ssize_t r = read(x->evfd, &count, sizeof count);
    (void)r;
    (void)events;
    coro__executor_collect(x);
}

int coro__executor_init(struct coro__executor *x)
{
    memset(x, 0, sizeof *x);
    x->evfd = -1;
    x->pollable.ready = evfd_ready;
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
    if (x->evfd >= 0)
        close(x->evfd);
    pthread_cond_destroy(&x->work);
    pthread_mutex_destroy(&x->lock);
    x->initialized = 0;
}

/* The wake-up fd, made and added to the loop's epoll set on first use. */
static int evfd_open(struct coro__executor *x)
{
    if (x->evfd >= 0)
        return 0;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return errno;
    int err = coro__poller_add(&executor_loop(x)->poller, fd, EPOLLIN,
                               &x->pollable);
    if (err) {
        close(fd);
        return err;
    }
    x->evfd = fd;
    return 0;
}

static int submit(struct coro__executor *x, struct coro__job *job)
{
    int err = evfd_open(x);
    if (err)
        return err;
    pthread_mutex_lock(&x->lock);
    queue_append(&x->queue_head, &x->queue_tail, job);
    x->nqueued++;
    err = workers_grow(x);
    if (err && x->nthreads == 0) {
        /* No worker at all: fail now rather than queue forever. With some,
         * the job waits its turn. */
        queue_remove(&x->queue_head, &x->queue_tail, job);
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

/* A queued job leaves the queue and never runs; a running one holds its
 * task until it returns. */
static int job_detach(struct coro_task *t)
{
    struct coro__job *job = t->waiting_on;
    struct coro__executor *x = &t->loop->executor;
    int err = 0;
    pthread_mutex_lock(&x->lock);
    if (job->state == JOB_QUEUED) {
        queue_remove(&x->queue_head, &x->queue_tail, job);
        x->nqueued--;
        job->state = JOB_CANCELLED;
        x->inflight--;
    } else if (job->state == JOB_RUNNING) {
        err = EBUSY;
    }
    pthread_mutex_unlock(&x->lock);
    return err;
}

int await_blocking(void *(*fn)(void *), void *arg, void **result)
{
    struct coro_task *self = coro__current();
    if (!self)
        return EPERM;
    if (!fn)
        return EINVAL;
    if (self->cancelled && !self->shield)
        return ECANCELED;
    struct coro__job *job = &self->wait.job;
    *job = (struct coro__job){ .fn = fn, .arg = arg, .task = self };
    int err = submit(&self->loop->executor, job);
    if (err)
        return err;
    self->waiting_on = job;
    int status = coro__park(self, CORO__W_BLOCKING, NULL, CORO__NEVER, 0,
                            job_detach);
    self->waiting_on = NULL;
    if (job->state == JOB_CANCELLED)
        return status;
    if (result)
        *result = job->result;
    errno = job->err;
    return self->cancelled && !self->shield ? ECANCELED : 0;
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
