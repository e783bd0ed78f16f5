/* run_loops.c: several loops at once (coro_run_loops): one per thread, the
 * first on the caller's, with one main.
 *
 * Loops do not share tasks or state: what runs on the others is what
 * main (or anything it starts) submits or posts to them (future.c,
 * loop.c), or what a server accepts on a port each loop listens on with
 * SO_REUSEPORT. Go spreads goroutines over its threads and steals work;
 * here each task stays where it was made (coro.h's promise, and what keeps
 * errno, thread-locals and every object a task uses sane), and the
 * program decides where work goes.
 *
 * The other loops are kept alive by a keeper, their main, which waits on
 * a cross-thread channel until coro_run_loops closes it, once main's loop
 * has ended: tasks submitted to them can finish what main's loop waited
 * for. Every loop of a run may post to every other at any time, so each
 * is held (as by coro_loop_retain) while the run lasts: none is reported
 * deadlocked, as a lone loop that nobody holds is.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#define LOOPS_MAX 1024

struct coro__loop_set {
    unsigned         n;
    coro_fn          main;
    void            *arg;
    coro_xchan      *stop;          /* closed to end the other loops */
    pthread_t       *threads;       /* of loops 1..n-1 */
    struct member   *members;       /* one per loop */
    pthread_mutex_t  lock;
    pthread_cond_t   cond;          /* a loop started, or failed to */
    unsigned         up;            /* loops that did either (lock) */
    int              err;           /* the first failure to start (lock) */
};

struct member {
    struct coro__loop_set *g;
    unsigned            index;
    coro_loop          *handle;     /* referenced until the end (lock) */
    int                 reported;   /* it started or failed (lock) */
};

/* A loop of the run has its handle, or could not start. */
static void report(struct member *m, coro_loop *h, int err)
{
    struct coro__loop_set *g = m->g;
    pthread_mutex_lock(&g->lock);
    if (!m->reported) {
        m->reported = 1;
        /* With other loops, each may post to this one at any time: it
         * is held, as by coro_loop_retain, so it waits for them rather
         * than report a deadlock. A lone loop is held by nobody. */
        m->handle = h;
        if (h && g->n > 1)
            coro_loop_retain(h);
        else if (h)
            coro__loop_ref(h);
        if (err && !g->err)
            g->err = err;
        g->up++;
        pthread_cond_broadcast(&g->cond);
    }
    pthread_mutex_unlock(&g->lock);
}

/* Joins the calling loop to the run: 0, or why it cannot. */
static int join_run(struct member *m)
{
    coro__loop()->group = m->g;
    coro_loop *h = coro_loop_current();
    int err = h ? 0 : errno;
    report(m, h, err);
    return err;
}

/* The main of loops 1..n-1. */
static void *keeper(void *arg)
{
    struct member *m = arg;
    int err = join_run(m);
    if (err)
        return coro_fail(err);
    char nothing;
    while (await_xchan_recv(m->g->stop, &nothing, -1) == 0)
        ;
    return NULL;
}

static void *loop_thread(void *arg)
{
    struct member *m = arg;
    char name[16];
    snprintf(name, sizeof name, "coro-loop-%u", m->index);
    pthread_setname_np(pthread_self(), name);
    int err = coro_run(keeper, m, NULL);
    report(m, NULL, err ? err : ECANCELED); /* if it never started */
    return NULL;
}

/* The main of loop 0: the run's main, once this loop has joined. */
static void *first(void *arg)
{
    struct member *m = arg;
    int err = join_run(m);
    if (err)
        return coro_fail(err);
    return m->g->main(m->g->arg);
}

static unsigned cpus(void)
{
    unsigned n = coro__cpus();
    return n > LOOPS_MAX ? LOOPS_MAX : n;
}

static void group_free(struct coro__loop_set *g)
{
    for (unsigned i = 0; i < g->n; i++) {
        coro_loop *h = g->members[i].handle;
        if (h && g->n > 1)
            coro_loop_release(h);
        else if (h)
            coro__loop_unref(h);
    }
    coro_xchan_free(g->stop);
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
    coro__free(g->threads, g->n * sizeof *g->threads);
    coro__free(g->members, g->n * sizeof *g->members);
    coro__free(g, sizeof *g);
}

static struct coro__loop_set *group_new(unsigned n, coro_fn main, void *arg)
{
    struct coro__loop_set *g = coro__calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->threads = coro__calloc(n, sizeof *g->threads);
    g->members = coro__calloc(n, sizeof *g->members);
    g->stop = coro_xchan_new(1, 0);
    if (!g->threads || !g->members || !g->stop) {
        coro_xchan_free(g->stop);
        coro__free(g->threads, n * sizeof *g->threads);
        coro__free(g->members, n * sizeof *g->members);
        coro__free(g, sizeof *g);
        return NULL;
    }
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->n = n;
    g->main = main;
    g->arg = arg;
    for (unsigned i = 0; i < n; i++)
        g->members[i] = (struct member){ .g = g, .index = i };
    return g;
}

/* Starts loops 1..n-1 and waits until each has started or failed: the
 * number of threads started, with g->err set on any failure. */
static unsigned start_others(struct coro__loop_set *g)
{
    unsigned started = 1;
    for (; started < g->n; started++) {
        int err = pthread_create(&g->threads[started], NULL, loop_thread,
                                 &g->members[started]);
        if (err) {
            pthread_mutex_lock(&g->lock);
            if (!g->err)
                g->err = err;
            pthread_mutex_unlock(&g->lock);
            break;
        }
    }
    pthread_mutex_lock(&g->lock);
    while (g->up < started - 1)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    return started;
}

int coro_run_loops(unsigned n, coro_fn main, void *arg, void **result)
{
    if (result)
        *result = NULL;
    if (!main || n > LOOPS_MAX)
        return EINVAL;
    if (coro__loop())
        return EBUSY;
    struct coro__loop_set *g = group_new(n ? n : cpus(), main, arg);
    if (!g)
        return ENOMEM;
    unsigned started = start_others(g);
    int err = g->err;
    if (!err)
        err = coro_run(first, &g->members[0], result);
    /* Main's loop has ended: the others may end too. */
    coro_xchan_close(g->stop);
    for (unsigned i = 1; i < started; i++)
        pthread_join(g->threads[i], NULL);
    group_free(g);
    return err;
}

size_t coro_loops(coro_loop **out, size_t cap)
{
    struct coro__loop *l = coro__loop();
    if (!l)
        return 0;
    if (!out)
        cap = 0;
    struct coro__loop_set *g = l->group;
    if (!g) {
        coro_loop *h = coro__loop_handle(l);
        if (h && cap > 0)
            out[0] = h;
        return h ? 1 : 0;
    }
    pthread_mutex_lock(&g->lock);
    for (size_t i = 0; i < g->n && i < cap; i++)
        out[i] = g->members[i].handle;
    pthread_mutex_unlock(&g->lock);
    return g->n;
}
