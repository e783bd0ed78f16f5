/* Scenario A: three random tasks.
 *
 * The tutorial's example_task(n, t) waits t seconds and says so. Run one
 * after another the three take the sum of their waits; handed to
 * asyncio.wait together, they take the longest, and finish in the order of
 * their durations.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "coro.h"

static const char *const variants[] = { "sync", "async", NULL };

static const struct demo_info info = {
    .name = "a_three_tasks",
    .about = "Scenario A: three tasks each wait t seconds (t from 1 to 5).\n"
             "sync runs them one after another (the sum of the waits);\n"
             "async waits on the three together with await_wait (the\n"
             "longest wait), and they finish in order of their durations.",
    .original = "A's tutorial prints its lines in English: they stay as they "
                "are.",
    .variants = variants,
    .flags = DEMO_SEED,
};

static struct demo_opts opts;

struct example {
    int n; /* task number */
    int t; /* its wait, in (unscaled) seconds */
};

/* def example_task(n, t): time.sleep(t); print(...) */
static void example_task_sync(const struct example *e)
{
    timeline_row("task_%d", e->n);
    demo_block_sleep(e->t * opts.scale);
    printf("Done | proceed time of task_%d is %d\n", e->n, e->t);
}

/* async def example_task(n, t): await asyncio.sleep(t); print(...) */
static void *example_task(void *arg)
{
    const struct example *e = arg;
    int err = await_sleep(e->t * opts.scale);
    if (err)
        return coro_fail(err);
    printf("Done | proceed time of task_%d is %d\n", e->n, e->t);
    return NULL;
}

/* print(f"All process is Done | proceed time is {end-start}") */
static void print_total(double seconds)
{
    char t[32];
    printf("All process is Done | proceed time is %s\n", demo_repr(seconds, t));
}

/* async def main(): tasks = [...]; await asyncio.wait(tasks) */
static void *async_main(void *arg)
{
    struct example *ex = arg;
    coro_task *tasks[3];
    for (int i = 0; i < 3; i++)
        tasks[i] = coro_spawn(example_task, &ex[i]); /* create_task */
    size_t ndone;
    int err = await_wait(tasks, 3, CORO_ALL_COMPLETED, -1, &ndone);
    /* asyncio.wait leaves the tasks to the caller: collect them. */
    int joined = await_gather(tasks, 3, NULL, NULL);
    return err || joined ? coro_fail(err ? err : joined) : NULL;
}

int main(int argc, char **argv)
{
    demo_parse(argc, argv, &info, &opts);

    /* The tutorial drew 2, 4 and 1; --seed draws others. */
    struct example ex[3] = { { 1, 2 }, { 2, 4 }, { 3, 1 } };
    if (opts.seeded) {
        srand((unsigned)opts.seed);
        for (int i = 0; i < 3; i++)
            ex[i].t = 1 + rand() % 5;
    }
    int sum = ex[0].t + ex[1].t + ex[2].t;
    int longest = ex[0].t;
    for (int i = 1; i < 3; i++)
        longest = ex[i].t > longest ? ex[i].t : longest;

    if (demo_want(&opts, "sync")) {
        demo_heading("sync", "one after another");
        double t0 = demo_now();
        for (int i = 0; i < 3; i++)
            example_task_sync(&ex[i]);
        double took = demo_now() - t0;
        print_total(took);
        demo_summary("sync", took, sum * opts.scale);
    }
    if (demo_want(&opts, "async")) {
        demo_heading("async", "the three awaited together");
        double t0 = demo_now();
        int err = coro_run(async_main, ex, NULL); /* asyncio.run(main()) */
        double took = demo_now() - t0;
        if (err) {
            fprintf(stderr, "a_three_tasks: coro_run: error %d\n", err);
            return 1;
        }
        print_total(took);
        demo_summary("async", took, longest * opts.scale);
    }
    return 0;
}
