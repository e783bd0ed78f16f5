/* A producer/consumer pipeline: asyncio.Queue's classic example.
 *
 * main puts twenty random "sleep for" durations on a queue; workers take
 * them one at a time, sleep, mark each done, and say so; main waits with
 * queue.join(), then cancels the workers. One worker takes the sum of the
 * durations; three share them and take about a third.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "coro.h"

#define JOBS 20
#define WORKERS 3

static const char *const variants[] = { "sync", "async", NULL };

static const struct demo_info info = {
    .name = "f_queue_workers",
    .about = "asyncio.Queue's example: twenty random sleeps (0.05 to 1 s)\n"
             "are put on a queue; workers take them one by one and sleep.\n"
             "sync: one worker, in a plain loop of blocking sleeps (the sum).\n"
             "async: three worker tasks, main waiting with await_queue_join\n"
             "and then cancelling them (about a third of the sum).",
    .original = "F comes from asyncio's documentation, in English: the "
                "lines stay as they are.",
    .variants = variants,
    .flags = DEMO_SEED,
};

static struct demo_opts opts;

struct worker {
    char        name[16];
    coro_queue *queue;
};

/* async def worker(name, queue):
 *     while True:
 *         sleep_for = await queue.get()
 *         await asyncio.sleep(sleep_for)
 *         queue.task_done()
 *         print(f'{name} has slept for {sleep_for:.2f} seconds') */
static void *worker(void *arg)
{
    struct worker *w = arg;
    for (;;) {
        void *item;
        int err = await_queue_get(w->queue, &item, -1);
        if (err)
            return err == ECANCELED ? NULL : coro_fail(err);
        double sleep_for = *(double *)item;
        err = await_sleep(sleep_for * opts.scale);
        coro_queue_task_done(w->queue);
        if (err)
            return err == ECANCELED ? NULL : coro_fail(err);
        printf("%s has slept for %.2f seconds\n", w->name, sleep_for);
    }
}

/* async def main(): ... */
static void *async_main(void *arg)
{
    double *jobs = arg;
    coro_queue *queue = coro_queue_new(0);              /* asyncio.Queue() */
    if (!queue)
        return coro_fail(ENOMEM);
    for (int i = 0; i < JOBS; i++)
        coro_queue_try_put(queue, &jobs[i]);            /* put_nowait */
    struct worker w[WORKERS];
    coro_task *tasks[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        snprintf(w[i].name, sizeof w[i].name, "worker-%d", i);
        w[i].queue = queue;
        tasks[i] = coro_spawn(worker, &w[i]);           /* create_task */
    }
    int err = await_queue_join(queue, -1);              /* queue.join() */
    for (int i = 0; i < WORKERS; i++)
        coro_cancel(tasks[i]);                          /* task.cancel() */
    await_gather(tasks, WORKERS, NULL, NULL);
    coro_queue_free(queue);
    return err ? coro_fail(err) : NULL;
}

int main(int argc, char **argv)
{
    demo_parse(argc, argv, &info, &opts);
    /* random.uniform(0.05, 1.0), twenty times */
    srand(opts.seeded ? (unsigned)opts.seed : 2024u);
    double jobs[JOBS], total = 0;
    for (int i = 0; i < JOBS; i++) {
        jobs[i] = 0.05 + 0.95 * rand() / (double)RAND_MAX;
        total += jobs[i];
    }

    if (demo_want(&opts, "sync")) {
        demo_heading("sync", "one worker, blocking sleeps");
        double t0 = demo_now();
        for (int i = 0; i < JOBS; i++) {
            timeline_row("job %d", i + 1);
            demo_block_sleep(jobs[i] * opts.scale);
            printf("worker has slept for %.2f seconds\n", jobs[i]);
        }
        double took = demo_now() - t0;
        printf("====\n1 worker slept for %.2f seconds\n", took);
        printf("total expected sleep time: %.2f seconds\n", total);
        demo_summary("sync", took, total * opts.scale);
    }
    if (demo_want(&opts, "async")) {
        demo_heading("async", "three workers sharing a queue");
        double t0 = demo_now();
        int err = coro_run(async_main, jobs, NULL);
        double took = demo_now() - t0;
        if (err) {
            fprintf(stderr, "f_queue_workers: coro_run: error %d\n", err);
            return 1;
        }
        printf("====\n3 workers slept in parallel for %.2f seconds\n", took);
        printf("total expected sleep time: %.2f seconds\n", total);
        demo_summary("async", took,
                     demo_makespan(jobs, JOBS, WORKERS) * opts.scale);
    }
    return 0;
}
