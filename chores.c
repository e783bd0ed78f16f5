/* chores.c: the runtime's housekeeping thread. It runs, in order, the
 * chores the loops hand it: work a loop needs done soon but need not wait
 * for, such as preparing the next slab of stacks (its guard pages and the
 * first page of each stack: system calls and page faults that cost about
 * 3 µs a stack here) or unmapping a slab whose stacks all came back. On a
 * machine with a second CPU that work then runs beside the loop instead of
 * in its spawns.
 *
 * One thread for the process, started when a loop first asks for it. A
 * poster never waits for it: there is no thread to be had with one CPU,
 * under valgrind (which runs one thread at a time anyway) or when
 * pthread_create fails, and the caller then does the work itself.
 *
 * fork: the child has no thread. Whatever was queued, or half done, at the
 * fork is done again by the child's handler before fork returns: every
 * chore is written so that running it twice is harmless.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static struct coro__chore *head, *tail; /* queued, oldest first */
static struct coro__chore *running;     /* the one the thread works on */
static int started;                     /* 1 thread, -1 none to be had */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void *chores_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!head)
            pthread_cond_wait(&work_cv, &lock);
        struct coro__chore *c = head;
        head = c->next;
        if (!head)
            tail = NULL;
        running = c;
        pthread_mutex_unlock(&lock);
        c->run(c);
        pthread_mutex_lock(&lock);
        running = NULL;
        /* Under the lock, so that a fork sees c either still running (and
         * the child runs it again) or gone. */
        if (c->release) {
            c->release(c);
        } else {
            atomic_store_explicit(&c->done, 1, memory_order_release);
            pthread_cond_broadcast(&done_cv);
        }
    }
    return NULL;
}

static void before_fork(void)
{
    pthread_mutex_lock(&lock);
}

static void after_fork_parent(void)
{
    pthread_mutex_unlock(&lock);
}

/* The child is single-threaded: it runs what the thread had left, itself,
 * and starts a thread of its own if it posts again. */
static void after_fork_child(void)
{
    struct coro__chore *left = running;
    if (left)
        left->next = head;
    else
        left = head;
    head = tail = running = NULL;
    started = 0;
    pthread_mutex_init(&lock, NULL);
    pthread_cond_init(&work_cv, NULL);
    pthread_cond_init(&done_cv, NULL);
    while (left) {
        struct coro__chore *c = left;
        left = c->next;
        c->run(c);
        if (c->release)
            c->release(c);
        else
            atomic_store_explicit(&c->done, 1, memory_order_release);
    }
}

static void atfork_install(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* Called with the lock held. */
static int thread_start(void)
{
    if (started)
        return started > 0;
    started = -1;
    if (coro__cpus() < 2 || coro__under_valgrind())
        return 0;
    pthread_once(&atfork_once, atfork_install);
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return 0;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, (size_t)64 << 10);
    /* The thread must not take the signals the program's threads wait for
     * (SIGQUIT for coro_dump, a watchdog's SIGURG): block them all in it. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t th;
    if (pthread_create(&th, &attr, chores_main, NULL) == 0)
        started = 1;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return started > 0;
}

int coro__chores_ready(int start)
{
    int saved = errno;
    pthread_mutex_lock(&lock);
    int ok = start ? thread_start() : started > 0;
    pthread_mutex_unlock(&lock);
    errno = saved;
    return ok;
}

int coro__chore_post(struct coro__chore *c, void (*run)(struct coro__chore *),
                     void (*release)(struct coro__chore *))
{
    c->run = run;
    c->release = release;
    c->next = NULL;
    atomic_init(&c->done, 0);
    int saved = errno;
    pthread_mutex_lock(&lock);
    int ok = thread_start();
    if (ok) {
        if (tail)
            tail->next = c;
        else
            head = c;
        tail = c;
        pthread_cond_signal(&work_cv);
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
    return ok ? 0 : ENOSYS;
}

void coro__chore_wait(struct coro__chore *c)
{
    if (coro__chore_done(c))
        return;
    int saved = errno;
    pthread_mutex_lock(&lock);
    while (!atomic_load_explicit(&c->done, memory_order_acquire))
        pthread_cond_wait(&done_cv, &lock);
    pthread_mutex_unlock(&lock);
    errno = saved;
}
