/* xloop: messages between two loops on two threads (coro_run_loops(2)):
 * the round trip of an int through two rendezvous cross-thread channels
 * (a task on each loop), of a posted call answered by a posted call, and
 * of a coroutine submitted and awaited; then how soon an idle loop runs a
 * call posted to it. bench/xloop.go (two goroutines, GOMAXPROCS=2) and
 * bench/xloop_pthread.c (two threads, a mutex and a condition variable
 * each way) are the peers; bench/xloop.sh runs all three. */
#include <stdint.h>

#include "bench.h"
#include "coro.h"

static const char usage[] =
    "usage: xloop [ROUND_TRIPS]\n"
    "Two loops on two threads exchange ROUND_TRIPS (default 200000) round\n"
    "trips through cross-thread channels, posted calls and futures, then\n"
    "measure how soon an idle loop runs a call posted to it; prints ns per\n"
    "round trip and the wake-up latency.\n";

static long trips;

/* ---- channels: a task on each loop ---- */

struct pair {
    coro_xchan *to;
    coro_xchan *back;
};

static void *echo(void *arg)
{
    struct pair *p = arg;
    long v;
    while (await_xchan_recv(p->to, &v, -1) == 0)
        if (await_xchan_send(p->back, &v, -1) != 0)
            return coro_fail(5);
    return NULL;
}

static double chan_round_trip(coro_loop *other)
{
    struct pair p = { coro_xchan_new(sizeof(long), 0),
                      coro_xchan_new(sizeof(long), 0) };
    coro_future *f;
    if (coro_loop_submit(other, echo, &p, &f) != 0)
        return -1;
    double t0 = bench_now();
    for (long i = 0; i < trips; i++) {
        long v = i;
        if (await_xchan_send(p.to, &v, -1) || await_xchan_recv(p.back, &v, -1)
            || v != i)
            return -1;
    }
    double ns = (bench_now() - t0) / (double)trips * 1e9;
    coro_xchan_close(p.to);
    await_future(f, -1, NULL);
    coro_xchan_free(p.to);
    coro_xchan_free(p.back);
    return ns;
}

/* ---- posts: a call there, a call back ---- */

struct ping {
    coro_loop  *home;
    coro_loop  *other;
    coro_event *back;
};

static void pong(void *arg)
{
    coro_event_set(((struct ping *)arg)->back);
}

static void ping(void *arg)
{
    struct ping *p = arg;
    coro_loop_post(p->home, pong, p);
}

static double post_round_trip(coro_loop *home, coro_loop *other)
{
    struct ping p = { home, other, coro_event_new() };
    double t0 = bench_now();
    for (long i = 0; i < trips; i++) {
        coro_event_clear(p.back);
        if (coro_loop_post(other, ping, &p) != 0 ||
            await_event(p.back, -1) != 0)
            return -1;
    }
    double ns = (bench_now() - t0) / (double)trips * 1e9;
    coro_event_free(p.back);
    return ns;
}

/* ---- futures: a coroutine there, its result back ---- */

static void *twice(void *arg)
{
    return (void *)((uintptr_t)arg * 2);
}

static double submit_round_trip(coro_loop *other)
{
    long n = trips / 4 > 0 ? trips / 4 : 1;
    double t0 = bench_now();
    for (long i = 0; i < n; i++) {
        coro_future *f;
        void *r;
        if (coro_loop_submit(other, twice, (void *)(uintptr_t)i, &f) != 0 ||
            await_future(f, -1, &r) != 0 || r != (void *)(uintptr_t)(i * 2))
            return -1;
    }
    return (bench_now() - t0) / (double)n * 1e9;
}

/* ---- wake-up: a call posted to an idle loop ---- */

/* The call stamps the time it runs on the other loop and posts back to
 * this one, which is not timed: events belong to their own loop. */
struct wake {
    double      posted;
    double      ran;
    coro_event *done;
    coro_loop  *home;
};

static void set_done(void *arg)
{
    coro_event_set(((struct wake *)arg)->done);
}

static void stamp(void *arg)
{
    struct wake *w = arg;
    w->ran = bench_now();
    coro_loop_post(w->home, set_done, w);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Posts to the other loop while it sleeps in the kernel (it has had
 * nothing to do for 200 us), and measures from the post to the call. */
static void wake_latency(coro_loop *home, coro_loop *other, double *mean,
                         double *p99)
{
    enum { N = 2000 };
    static double lat[N];
    struct wake w = { .done = coro_event_new(), .home = home };
    double sum = 0;
    for (int i = 0; i < N; i++) {
        await_sleep(0.0002);
        coro_event_clear(w.done);
        w.posted = bench_now();
        coro_loop_post(other, stamp, &w);
        await_event(w.done, -1);
        lat[i] = (w.ran - w.posted) * 1e6;
        sum += lat[i];
    }
    qsort(lat, N, sizeof *lat, cmp_double);
    *mean = sum / N;
    *p99 = lat[N * 99 / 100];
    coro_event_free(w.done);
}

static void *xloop_main(void *arg)
{
    (void)arg;
    coro_loop *loops[2];
    if (coro_loops(loops, 2) != 2)
        return coro_fail(22);
    double chan = chan_round_trip(loops[1]);
    double post = post_round_trip(loops[0], loops[1]);
    double sub = submit_round_trip(loops[1]);
    double mean, p99;
    wake_latency(loops[0], loops[1], &mean, &p99);
    printf("coro   cross-loop round trip, rendezvous xchan: %.0f ns\n", chan);
    printf("coro   cross-loop round trip, post and post back: %.0f ns\n",
           post);
    printf("coro   cross-loop round trip, submit + await_future: %.0f ns\n",
           sub);
    printf("coro   idle loop runs a posted call after: mean %.1f us, "
           "p99 %.1f us\n", mean, p99);
    return chan < 0 || post < 0 || sub < 0 ? coro_fail(5) : NULL;
}

int main(int argc, char **argv)
{
    trips = bench_args(argc, argv, 200000, usage);
    return coro_run_loops(2, xloop_main, NULL, NULL) ? 1 : 0;
}
