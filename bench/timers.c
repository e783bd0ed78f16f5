/* timers: timer precision. 1000 sleeps of 1 ms one after another; prints
 * the mean and 99th-percentile oversleep in microseconds. Target: p99
 * under 100 µs. */
#include "bench.h"
#include "coro.h"

static const char usage[] =
    "usage: timers [SLEEPS]\n"
    "Sleeps 1 ms SLEEPS times (default 1000) and prints the mean and p99\n"
    "oversleep in microseconds.\n";

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct run {
    long    n;
    double *over;
};

static void *timers_main(void *arg)
{
    struct run *r = arg;
    for (long i = 0; i < r->n; i++) {
        double t0 = coro_now();
        await_sleep(0.001);
        r->over[i] = (coro_now() - t0 - 0.001) * 1e6;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct run r = { bench_args(argc, argv, 1000, usage), NULL };
    r.over = malloc((size_t)r.n * sizeof *r.over);
    if (!r.over || coro_run(timers_main, &r, NULL) != 0)
        return 1;
    double sum = 0;
    for (long i = 0; i < r.n; i++)
        sum += r.over[i];
    qsort(r.over, (size_t)r.n, sizeof *r.over, by_value);
    printf("timers: %ld sleeps of 1 ms: oversleep mean %.1f us, p99 %.1f us "
           "(target p99 < 100 us)\n",
           r.n, sum / (double)r.n, r.over[(r.n * 99) / 100]);
    free(r.over);
    return 0;
}
