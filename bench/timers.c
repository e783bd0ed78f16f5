/* timers: timer precision. SLEEPS sleeps of 1 ms one after another, alone
 * or while CHURN other tasks keep sleeping and waking; prints the mean and
 * 99th-percentile oversleep in microseconds. Target: p99 under 100 µs,
 * also beside 10,000 churning tasks. */
#include <errno.h>
#include <stdint.h>

#include "bench.h"
#include "coro.h"

static const char usage[] =
    "usage: timers [--churn N] [SLEEPS]\n"
    "Sleeps 1 ms SLEEPS times (default 1000) and prints the mean and p99\n"
    "oversleep in microseconds. --churn N runs N other tasks meanwhile,\n"
    "each sleeping between 10 and 100 ms over and over: the timer heap\n"
    "holds N timers, and 10,000 of them wake the loop about 180,000\n"
    "times a second.\n";

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct run {
    long    n;
    long    churn;
    double *over;
    int     done;  /* the measuring task has finished: churners stop */
    long    wakes; /* churners' wake-ups, to show the load was there */
    double  span;  /* seconds the sleeps took */
};

static void *churner(void *arg)
{
    struct run *r = arg;
    unsigned seed = (unsigned)(uintptr_t)coro_self();
    while (!r->done) {
        seed = seed * 1103515245u + 12345u;
        if (await_sleep(0.01 + (double)(seed >> 16 & 0x7fff) / 0x7fff *
                                   0.09) != 0)
            break;
        r->wakes++;
    }
    return NULL;
}

static void *timers_main(void *arg)
{
    struct run *r = arg;
    coro_task **churners = NULL;
    if (r->churn) {
        churners = malloc((size_t)r->churn * sizeof *churners);
        if (!churners)
            return coro_fail(ENOMEM);
        for (long i = 0; i < r->churn; i++)
            if (!(churners[i] = coro_spawn(churner, r)))
                return coro_fail(ENOMEM);
        await_sleep(0.1); /* let the churners spread their deadlines */
    }
    double start = coro_now();
    r->wakes = 0;
    for (long i = 0; i < r->n; i++) {
        double t0 = coro_now();
        await_sleep(0.001);
        r->over[i] = (coro_now() - t0 - 0.001) * 1e6;
    }
    r->span = coro_now() - start;
    r->done = 1;
    if (churners) {
        await_gather(churners, (size_t)r->churn, NULL, NULL);
        free(churners);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct run r = { 0 };
    if (argc > 2 && strcmp(argv[1], "--churn") == 0) {
        r.churn = bench_count(argv[2], usage);
        argv[2] = argv[0];
        argc -= 2;
        argv += 2;
    }
    r.n = bench_args(argc, argv, 1000, usage);
    r.over = malloc((size_t)r.n * sizeof *r.over);
    if (!r.over || coro_run(timers_main, &r, NULL) != 0)
        return 1;
    double sum = 0;
    for (long i = 0; i < r.n; i++)
        sum += r.over[i];
    qsort(r.over, (size_t)r.n, sizeof *r.over, by_value);
    printf("timers: %ld sleeps of 1 ms beside %ld churning tasks (%.0f "
           "wakes/s): oversleep mean %.1f us, p99 %.1f us (target p99 < 100 "
           "us)\n",
           r.n, r.churn, r.wakes / r.span, sum / (double)r.n,
           r.over[(r.n * 99) / 100]);
    free(r.over);
    return 0;
}
