/* eager: asyncio's eager task factory, measured as CPython measured it
 * (cpython#97696): a gather of many tasks that mostly finish without
 * suspending, spawned plainly and with CORO_EAGER, in one run. */
#include "bench.h"
#include "coro.h"

#include <stdlib.h>

static const char usage[] =
    "usage: eager [TASKS]\n"
    "Spawns TASKS tasks (default 10000), one in ten of which yields once\n"
    "and the rest return at once, gathers them, and prints ns per task for\n"
    "a plain spawn and for CORO_EAGER (best of 20 rounds each).\n";

static void *leaf(void *arg)
{
    long i = (long)arg;
    if (i % 10 == 0)
        await_yield();
    return arg;
}

struct run {
    long   tasks;
    double ns[2];   /* best per task: plain, eager */
};

static double round_ns(long n, unsigned flags, coro_task **t)
{
    coro_attr attr = { .flags = flags };
    double t0 = bench_now();
    for (long i = 0; i < n; i++)
        t[i] = coro_spawn_attr(&attr, leaf, (void *)i);
    if (await_gather(t, (size_t)n, NULL, NULL) != 0)
        abort();
    return (bench_now() - t0) / (double)n * 1e9;
}

static void *eager_main(void *arg)
{
    struct run *r = arg;
    coro_task **t = malloc((size_t)r->tasks * sizeof *t);
    if (!t)
        return coro_fail(12);
    round_ns(r->tasks, 0, t); /* warm the stack pool */
    r->ns[0] = r->ns[1] = 1e30;
    for (int k = 0; k < 20; k++) {
        for (int e = 0; e < 2; e++) {
            double ns = round_ns(r->tasks, e ? CORO_EAGER : 0, t);
            if (ns < r->ns[e])
                r->ns[e] = ns;
        }
    }
    free(t);
    return NULL;
}

int main(int argc, char **argv)
{
    struct run r = { bench_args(argc, argv, 10000, usage), { 0, 0 } };
    if (coro_run(eager_main, &r, NULL) != 0)
        return 1;
    printf("eager: gather of %ld tasks, 9 in 10 never suspend: plain spawn "
           "%.0f ns per task, CORO_EAGER %.0f ns (%.2fx)\n",
           r.tasks, r.ns[0], r.ns[1], r.ns[0] / r.ns[1]);
    return 0;
}
