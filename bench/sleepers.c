/* sleepers: N tasks each sleeping 1 s, all at once. Prints wall and CPU
 * seconds and peak RSS (total and per task). bench/sleepers.go and
 * bench/sleepers.py are the same program in Go and Python asyncio;
 * bench/sleepers.sh runs all three side by side. */
#include "bench.h"
#include "coro.h"

static const char usage[] =
    "usage: sleepers [--shared] [--seconds S] [N]\n"
    "Runs N tasks (default 100000) that each sleep one second (or S),\n"
    "gathers them, and prints: wall s, CPU s, peak RSS MiB, KiB per task,\n"
    "and how many were asleep at once at most: from the first run to the\n"
    "resumption, so a task whose timer fired but that waits in the ready\n"
    "queue still counts (as its memory does). With --seconds 1, millions\n"
    "of tasks take longer than that to spawn and park: use S long enough\n"
    "for all timers to be pending at once.\n"
    "--shared runs them on the loop's shared stack (CORO_SHARED_STACK).\n";

static coro_attr attr;
static double seconds = 1.0;
static long asleep, most_asleep;

static void *sleeper(void *arg)
{
    (void)arg;
    if (++asleep > most_asleep)
        most_asleep = asleep;
    await_sleep(seconds);
    asleep--;
    return NULL;
}

static void *sleepers_main(void *arg)
{
    long n = *(long *)arg;
    coro_task **t = malloc((size_t)n * sizeof *t);
    if (!t)
        return coro_fail(12);
    for (long i = 0; i < n; i++) {
        t[i] = coro_spawn_attr(&attr, sleeper, NULL);
        if (!t[i]) {
            fprintf(stderr, "sleepers: spawn %ld failed\n", i);
            return coro_fail(12);
        }
    }
    int err = await_gather(t, (size_t)n, NULL, NULL);
    free(t);
    return err ? coro_fail(err) : NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--shared") == 0) {
        attr.flags = CORO_SHARED_STACK;
        argv[1] = argv[0];
        argc--;
        argv++;
    }
    if (argc > 2 && strcmp(argv[1], "--seconds") == 0) {
        char *end;
        seconds = strtod(argv[2], &end);
        if (*argv[2] == '\0' || *end != '\0' || !(seconds >= 0)) {
            fprintf(stderr, "%s", usage);
            return 2;
        }
        argv[2] = argv[0];
        argc -= 2;
        argv += 2;
    }
    long n = bench_args(argc, argv, 100000, usage);
    long rss0 = bench_peak_rss_kib();
    double t0 = bench_now();
    int err = coro_run(sleepers_main, &n, NULL);
    double wall = bench_now() - t0;
    if (err) {
        fprintf(stderr, "sleepers: coro_run: %d\n", err);
        return 1;
    }
    long rss = bench_peak_rss_kib();
    printf("coro%-7s %8ld sleepers: wall %.2f s, cpu %.2f s, peak rss %.0f "
           "MiB, %.2f KiB per task (%.0f bytes), %ld asleep at once\n",
           attr.flags ? "/shared" : "", n, wall, bench_cpu(), rss / 1024.0,
           (double)(rss - rss0) / n, (double)(rss - rss0) * 1024.0 / n,
           most_asleep);
    return 0;
}
