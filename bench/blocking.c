/* blocking: the worker pool. 200 blocking calls of 10 ms through 8 workers
 * (ideal: 25 rounds, 250 ms): wall and overhead over the ideal. Then the
 * round trip of an empty job (submit, run on a worker, wake the caller),
 * with the loop otherwise idle. bench/blocking.py is the asyncio twin
 * (run_in_executor with a ThreadPoolExecutor of 8). Targets: overhead under
 * 2% of ideal, round trip under 20 µs. */
#include <errno.h>

#include "bench.h"
#include "coro.h"

static const char usage[] =
    "usage: blocking [ROUNDTRIPS]\n"
    "200 blocking 10 ms calls through 8 workers, then ROUNDTRIPS (default\n"
    "20000) empty jobs one after another; prints wall, overhead and the\n"
    "round trip in microseconds.\n";

static void *sleep_10ms(void *arg)
{
    struct timespec ts = { 0, 10 * 1000 * 1000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return arg;
}

static void *empty(void *arg)
{
    return arg;
}

static void *caller(void *arg)
{
    return (void *)(long)await_blocking(sleep_10ms, arg, NULL);
}

struct run {
    long   roundtrips;
    double wall;
    double roundtrip_us;
};

static void *blocking_main(void *arg)
{
    struct run *r = arg;
    enum { CALLS = 200 };
    static coro_task *t[CALLS];
    coro_set_workers(8);
    /* Start the 8 workers first, as asyncio's pool would be warm after
     * its first round. */
    for (int i = 0; i < 8; i++)
        t[i] = coro_spawn(caller, NULL);
    await_gather(t, 8, NULL, NULL);
    double t0 = bench_now();
    for (int i = 0; i < CALLS; i++)
        t[i] = coro_spawn(caller, NULL);
    await_gather(t, CALLS, NULL, NULL);
    r->wall = bench_now() - t0;

    for (int i = 0; i < 100; i++)
        await_blocking(empty, NULL, NULL);
    t0 = bench_now();
    for (long i = 0; i < r->roundtrips; i++)
        await_blocking(empty, NULL, NULL);
    r->roundtrip_us = (bench_now() - t0) / (double)r->roundtrips * 1e6;
    return NULL;
}

int main(int argc, char **argv)
{
    struct run r = { bench_args(argc, argv, 20000, usage), 0, 0 };
    if (coro_run(blocking_main, &r, NULL) != 0)
        return 1;
    printf("coro   blocking: 200 x 10 ms on 8 workers: wall %.1f ms, "
           "overhead %.1f ms (%.1f%% of ideal 250 ms); empty job round "
           "trip %.1f us\n",
           r.wall * 1e3, (r.wall - 0.25) * 1e3, (r.wall - 0.25) / 0.25 * 100,
           r.roundtrip_us);
    return 0;
}
