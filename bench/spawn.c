/* spawn: spawn + run + join of a trivial task, ns per task, with pooled
 * stacks. Target: under 800 ns. */
#include "bench.h"
#include "coro.h"

static const char usage[] =
    "usage: spawn [TASKS]\n"
    "Spawns, runs and joins TASKS trivial tasks one after another (default\n"
    "1000000) and prints ns per task.\n";

static void *trivial(void *arg)
{
    return arg;
}

struct run {
    long   tasks;
    double ns_per_task;
};

static void *spawn_main(void *arg)
{
    struct run *r = arg;
    /* Warm the pool: the first spawn maps a stack. */
    await_task(coro_spawn(trivial, NULL), NULL);
    double t0 = bench_now();
    for (long i = 0; i < r->tasks; i++)
        await_task(coro_spawn(trivial, NULL), NULL);
    r->ns_per_task = (bench_now() - t0) / (double)r->tasks * 1e9;
    return NULL;
}

int main(int argc, char **argv)
{
    struct run r = { bench_args(argc, argv, 1000000, usage), 0 };
    if (coro_run(spawn_main, &r, NULL) != 0)
        return 1;
    printf("spawn: %.0f ns per spawn + run + join (target < 800 ns)\n",
           r.ns_per_task);
    return 0;
}
