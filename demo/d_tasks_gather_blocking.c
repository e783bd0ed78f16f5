/* Scenario D: tasks, gather and blocking calls.
 *
 * async_sleep() waits two seconds and logs the time. Awaited one after the
 * other, two take four seconds; as tasks (create_task) they take two; five
 * gathered take two, and gather hands back their results in argument
 * order. Last, five calls of a real blocking sleep go to the worker threads
 * (run_in_executor(None, ...)) and, gathered, also take two seconds: the
 * default pool, asyncio's and coro's alike, has min(32, CPUs + 4) threads,
 * so five always fit in one round. --workers 2 shows three rounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "coro.h"

static const char *const variants[] = { "sequential", "tasks", "gather",
                                        "gather-results", "executor", NULL };

static const struct demo_info info = {
    .name = "d_tasks_gather_blocking",
    .about = "Scenario D: async_sleep() waits 2 s and logs the time.\n"
             "sequential awaits two in turn (4 s); tasks spawns two and joins\n"
             "each (2 s); gather gathers five (2 s); gather-results gathers\n"
             "five that return strings, printed in argument order (2 s);\n"
             "executor sends five real blocking 2 s sleeps to coro's worker\n"
             "threads and gathers them, results in order 0..4: 2 s, as the\n"
             "default pool (min(32, CPUs + 4), asyncio's rule) runs five at\n"
             "once; 2 s a round with --workers.",
    .original = "D's tutorial prints no Korean: the lines stay as they are.",
    .variants = variants,
    .flags = DEMO_WORKERS,
};

static struct demo_opts opts;

/* def time_log(step): print(f'{time.strftime("%X")} {step}') */
static void time_log(const char *step)
{
    char now[9];
    printf("%s %s\n", demo_clock(now), step);
}

/* async def async_sleep(): await asyncio.sleep(2); time_log('async_sleep') */
static void *async_sleep(void *arg)
{
    (void)arg;
    int err = await_sleep(2.0 * opts.scale);
    if (err)
        return coro_fail(err);
    time_log("async_sleep");
    return NULL;
}

/* The same, returning its log line: return f'{time} async_sleep' */
static void *async_sleep_result(void *arg)
{
    (void)arg;
    int err = await_sleep(2.0 * opts.scale);
    if (err)
        return coro_fail(err);
    char now[9], *line = malloc(32);
    if (line)
        snprintf(line, 32, "%s async_sleep", demo_clock(now));
    return line; /* the heap, not this task's stack */
}

/* def sync_sleep(i): time.sleep(2); return f'{time} {i}': a plain blocking
 * function, run on a worker thread. */
static void *sync_sleep(void *arg)
{
    demo_block_sleep(2.0 * opts.scale);
    char now[9], *line = malloc(32);
    if (line)
        snprintf(line, 32, "%s %d", demo_clock(now), (int)(intptr_t)arg);
    return line;
}

static void *call_sync_sleep(void *arg)
{
    void *line = NULL;
    int err = await_blocking(sync_sleep, arg, &line); /* run_in_executor */
    if (err) {
        free(line); /* cancelled after sync_sleep ran: still ours */
        return coro_fail(err);
    }
    return line;
}

static void *sequential_main(void *arg)
{
    (void)arg;
    time_log("start");
    await_task(coro_spawn(async_sleep, NULL), NULL); /* await async_sleep() */
    int err = await_task(coro_spawn(async_sleep, NULL), NULL);
    time_log("end");
    return err ? coro_fail(err) : NULL;
}

static void *tasks_main(void *arg)
{
    (void)arg;
    time_log("start");
    coro_task *t1 = coro_spawn(async_sleep, NULL); /* create_task */
    coro_task *t2 = coro_spawn(async_sleep, NULL);
    int e1 = await_task(t1, NULL); /* await t1 */
    int e2 = await_task(t2, NULL); /* await t2 */
    time_log("end");
    return e1 || e2 ? coro_fail(e1 ? e1 : e2) : NULL;
}

/* Five of fn gathered; the strings they return, if any, printed in
 * argument order. */
static int gather_five(coro_fn fn, const char *name)
{
    coro_task *t[5];
    void *results[5];
    const coro_attr named = { .name = name };
    for (int i = 0; i < 5; i++)
        t[i] = coro_spawn_attr(&named, fn, (void *)(intptr_t)i);
    int err = await_gather(t, 5, results, NULL);
    for (int i = 0; i < 5; i++) {
        if (results[i])
            printf("%s\n", (char *)results[i]);
        free(results[i]);
    }
    return err;
}

static void *gather_main(void *arg)
{
    int kind = (int)(intptr_t)arg; /* 0 gather, 1 results, 2 executor */
    time_log("start");
    /* run_in_executor(None, ...): the default pool, unless --workers. */
    int err = kind == 2 ? demo_set_workers(&opts) : 0;
    if (err)
        return coro_fail(err);
    err = kind == 0   ? gather_five(async_sleep, "async_sleep")
          : kind == 1 ? gather_five(async_sleep_result, "async_sleep_result")
                      : gather_five(call_sync_sleep, "call_sync_sleep");
    time_log("end");
    return err ? coro_fail(err) : NULL;
}

static int run_variant(const char *name, const char *what, coro_fn fn,
                       intptr_t kind, double expected)
{
    if (!demo_want(&opts, name))
        return 0;
    demo_heading(name, what);
    if (kind == 2) {
        /* The pool runs the five sleeps a round at a time. */
        unsigned workers = demo_workers(&opts, 5, "sleeps");
        expected *= (5 + workers - 1) / workers;
    }
    double t0 = demo_now();
    int err = coro_run(fn, (void *)kind, NULL);
    if (err) {
        fprintf(stderr, "%s: %s: error %d\n", info.name, name, err);
        return 1;
    }
    demo_summary(name, demo_now() - t0, expected * opts.scale);
    return 0;
}

int main(int argc, char **argv)
{
    demo_parse(argc, argv, &info, &opts);
    return run_variant("sequential", "two async_sleep() in turn",
                       sequential_main, 0, 4.0) ||
           run_variant("tasks", "two tasks, then join each", tasks_main, 0,
                       2.0) ||
           run_variant("gather", "five tasks gathered", gather_main, 0,
                       2.0) ||
           run_variant("gather-results",
                       "five tasks gathered, results in argument order",
                       gather_main, 1, 2.0) ||
           run_variant("executor",
                       "five blocking sleeps on the worker threads, gathered",
                       gather_main, 2, 2.0); /* a round */
}
