/* Scenario B: five one-second jobs.
 *
 * The tutorial opens with asyncio's hello world (Hello, a one-second wait,
 * World), then runs job(n) for n = 0..4: a loop of blocking calls takes five
 * seconds; the five gathered take one, and every job starts before any
 * finishes. Each prints its total time as the tutorial does, in Korean
 * with --original.
 */
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "coro.h"

static const char *const variants[] = { "sync", "async", NULL };

static const struct demo_info info = {
    .name = "b_five_jobs",
    .about = "Scenario B: Hello, a one-second wait, World; then job(n) for\n"
             "n = 0..4 prints Starting, waits one second, prints Finishing.\n"
             "sync runs the jobs in a loop (5 s); async gathers them (1 s),\n"
             "and every Starting line comes before any Finishing line.",
    .original = "In B that is the total-time lines (전체 소요시간).",
    .variants = variants,
};

static struct demo_opts opts;

/* async def main(): print('Hello'); await asyncio.sleep(1); print('World') */
static void *hello_world(void *arg)
{
    (void)arg;
    printf("Hello\n");
    int err = await_sleep(1.0 * opts.scale);
    printf("World\n");
    return err ? coro_fail(err) : NULL;
}

/* def job(n): print(...); time.sleep(1); print(...) */
static void job_sync(int n)
{
    printf("Starting job %d\n", n);
    timeline_row("job %d", n);
    demo_block_sleep(1.0 * opts.scale);
    printf("Finishing job %d\n", n);
}

/* async def job(n): print(...); await asyncio.sleep(1); print(...) */
static void *job(void *arg)
{
    int n = (int)(intptr_t)arg;
    printf("Starting job %d\n", n);
    int err = await_sleep(1.0 * opts.scale);
    if (err)
        return coro_fail(err);
    printf("Finishing job %d\n", n);
    return NULL;
}

/* async def main():
 *     tasks = [job(i) for i in range(5)]
 *     await asyncio.gather(*tasks) */
static void *jobs_main(void *arg)
{
    (void)arg;
    coro_task *jobs[5];
    for (int n = 0; n < 5; n++)
        jobs[n] = coro_spawn(job, (void *)(intptr_t)n);
    int err = await_gather(jobs, 5, NULL, NULL);
    return err ? coro_fail(err) : NULL;
}

/* print("전체 소요시간 : ", end - start): print puts a space between its
 * arguments, hence the two spaces after the colon. */
static void print_total(double seconds)
{
    char t[32];
    printf(SAY("total time :  %s\n", "전체 소요시간 :  %s\n"),
           demo_repr(seconds, t));
}

int main(int argc, char **argv)
{
    demo_parse(argc, argv, &info, &opts);

    if (coro_run(hello_world, NULL, NULL) != 0)
        return 1;
    if (demo_want(&opts, "sync")) {
        demo_heading("sync", "five jobs in a loop");
        double start = demo_now();
        for (int n = 0; n < 5; n++) /* for i in range(5): job(i) */
            job_sync(n);
        double took = demo_now() - start;
        print_total(took);
        demo_summary("sync", took, 5.0 * opts.scale);
    }
    if (demo_want(&opts, "async")) {
        demo_heading("async", "five jobs gathered");
        double start = demo_now();
        if (coro_run(jobs_main, NULL, NULL) != 0) /* asyncio.run(main()) */
            return 1;
        double took = demo_now() - start;
        print_total(took);
        demo_summary("async", took, 1.0 * opts.scale);
    }
    return 0;
}
