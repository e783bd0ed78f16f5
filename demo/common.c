#include "common.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coro.h"

static int timeline_wanted; /* --timeline */
int demo_original;          /* --original */

/* The most worker threads coro_set_workers and CORO_WORKERS accept. */
#define WORKERS_MAX 1024

/* The columns len bytes of UTF-8 take on a terminal: one a character,
 * two for those of three bytes or more (Hangul, as the help's Korean). */
static int columns(const char *s, size_t len)
{
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xC0) != 0x80) /* not a continuation byte */
            n += c >= 0xE0 ? 2 : 1;
    }
    return n;
}

/* Writes text after what the line holds so far (an option's description),
 * as words wrapped to 78 columns and indented under that description. */
static void wrap(FILE *out, const char *text)
{
    int column = 78; /* start a new line before the first word */
    while (*text) {
        size_t len = strcspn(text, " ");
        int width = columns(text, len);
        if (column + 1 + width > 78) {
            fprintf(out, "\n%18s", "");
            column = 18;
        } else {
            fputc(' ', out);
            column++;
        }
        fprintf(out, "%.*s", (int)len, text);
        column += width;
        text += len + strspn(text + len, " ");
    }
    fputc('\n', out);
}

static void usage(FILE *out, const struct demo_info *info)
{
    fprintf(out, "usage: %s [OPTION]...\n\n%s\n", info->name, info->about);
    fprintf(out, "\nVariants:");
    for (const char *const *v = info->variants; *v; v++)
        fprintf(out, " %s", *v);
    fprintf(out,
            "\n\nOptions:\n"
            "  --scale F       multiply every wait by F (default 1; 0.01 runs\n"
            "                  the demo in well under a second)\n"
            "  --only VARIANT  run just one variant\n"
            "  --timeline      after each variant, draw when each of its\n"
            "                  tasks ran and waited, one row per task\n"
            "  --original      print the tutorial's own lines in its own\n"
            "                  words (Korean, UTF-8) instead of the English\n"
            "                  ones, to hold beside the tutorial.");
    wrap(out, info->original);
    if (info->flags & DEMO_SEED)
        fprintf(out, "  --seed N        draw the random durations from seed N\n"
                     "                  (default: the tutorial's durations)\n");
    if (info->flags & DEMO_WORKERS)
        fprintf(out,
                "  --workers N     run blocking calls on N worker threads\n"
                "                  (default: coro's pool, CORO_WORKERS or\n"
                "                  asyncio's min(32, CPUs + 4))\n");
    if (info->flags & DEMO_HTTP)
        fprintf(out,
                "  --latency S     the local server answers after S seconds\n"
                "                  (default 0.3, multiplied by --scale)\n"
                "  --url URL       request URL instead of starting a local\n"
                "                  server (http:// or https://)\n");
    fprintf(out, "  --help          show this and exit\n\n"
                 "Each variant ends with a line\n"
                 "  variant <name>: <seconds> s (expected <seconds> s)\n");
}

static _Noreturn void bad_usage(const struct demo_info *info, const char *why,
                                const char *what)
{
    fprintf(stderr, "%s: %s%s%s\n\n", info->name, why, what ? ": " : "",
            what ? what : "");
    usage(stderr, info);
    exit(2);
}

static double parse_seconds(const struct demo_info *info, const char *flag,
                            const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0)
        bad_usage(info, "not a duration", flag);
    return v;
}

/* A plain decimal number from 1 to max, as coro reads CORO_WORKERS (less
 * its k/m/g suffixes, which no pool size needs). */
static int parse_count(const char *s, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9' && v <= max; p++)
        v = v * 10 + (unsigned long)(*p - '0');
    if (p == s || *p || v < 1 || v > max)
        return -1;
    *out = v;
    return 0;
}

static int is_variant(const struct demo_info *info, const char *name)
{
    for (const char *const *v = info->variants; *v; v++)
        if (strcmp(*v, name) == 0)
            return 1;
    return 0;
}

void demo_parse(int argc, char **argv, const struct demo_info *info,
                struct demo_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->scale = 1.0;
    opts->latency = 0.3;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            usage(stdout, info);
            exit(0);
        }
        if (strcmp(flag, "--timeline") == 0) {
            opts->timeline = 1;
            continue;
        }
        if (strcmp(flag, "--original") == 0) {
            opts->original = 1;
            continue;
        }
        int takes_value = strcmp(flag, "--scale") == 0 ||
                          strcmp(flag, "--only") == 0 ||
                          ((info->flags & DEMO_SEED) &&
                           strcmp(flag, "--seed") == 0) ||
                          ((info->flags & DEMO_WORKERS) &&
                           strcmp(flag, "--workers") == 0) ||
                          ((info->flags & DEMO_HTTP) &&
                           (strcmp(flag, "--latency") == 0 ||
                            strcmp(flag, "--url") == 0));
        if (!takes_value)
            bad_usage(info, "unknown option", flag);
        if (i + 1 >= argc)
            bad_usage(info, "missing value for", flag);
        const char *value = argv[++i];
        if (strcmp(flag, "--scale") == 0) {
            opts->scale = parse_seconds(info, flag, value);
        } else if (strcmp(flag, "--only") == 0) {
            if (!is_variant(info, value))
                bad_usage(info, "no such variant", value);
            opts->only = value;
        } else if (strcmp(flag, "--seed") == 0) {
            char *end;
            errno = 0;
            opts->seed = strtoul(value, &end, 10);
            if (errno || end == value || *end || value[0] == '-')
                bad_usage(info, "not a seed", value);
            opts->seeded = 1;
        } else if (strcmp(flag, "--workers") == 0) {
            unsigned long n;
            if (parse_count(value, WORKERS_MAX, &n) != 0)
                bad_usage(info, "not a number of workers (1 to 1024)", value);
            opts->workers = (unsigned)n;
        } else if (strcmp(flag, "--latency") == 0) {
            opts->latency = parse_seconds(info, flag, value);
        } else {
            if (strncmp(value, "http://", 7) && strncmp(value, "https://", 8))
                bad_usage(info, "not an http:// or https:// URL", value);
            opts->url = value;
        }
    }
    timeline_wanted = opts->timeline;
    demo_original = opts->original;
    /* Lines appear as they happen, also through a pipe. */
    setvbuf(stdout, NULL, _IOLBF, 0);
}

int demo_want(const struct demo_opts *opts, const char *variant)
{
    return !opts->only || strcmp(opts->only, variant) == 0;
}

double demo_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void demo_block_sleep(double seconds)
{
    double start = demo_now();
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    timeline_blocked(start, demo_now());
}

const char *demo_repr(double v, char *buf)
{
    if (!isfinite(v)) {
        snprintf(buf, 32, "%s", isnan(v) ? "nan" : v < 0 ? "-inf" : "inf");
        return buf;
    }
    /* The fewest significant digits that read back as v, found as repr
     * finds them; written in scientific form first to learn the exponent. */
    int digits = 1;
    for (;; digits++) {
        snprintf(buf, 32, "%.*e", digits - 1, v);
        if (digits == 17 || strtod(buf, NULL) == v)
            break;
    }
    /* Python writes plainly from 1e-4 up to 1e16, with at least ".0". */
    int exp = atoi(strchr(buf, 'e') + 1);
    if (exp >= -4 && exp < 16) {
        int decimals = digits - 1 - exp;
        snprintf(buf, 32, "%.*f", decimals > 0 ? decimals : 1, v);
    }
    return buf;
}

/* How many CPUs this process may run on, as coro counts them: only to
 * say why coro_workers() chose its number. */
static long cpus_usable(void)
{
    cpu_set_t set;
    long cpus = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        cpus = CPU_COUNT(&set);
    if (cpus <= 0)
        cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 0 ? cpus : 1;
}

unsigned demo_workers(const struct demo_opts *opts, int jobs,
                      const char *what)
{
    char why[64];
    unsigned long n = opts->workers ? opts->workers : coro_workers();
    const char *env = getenv("CORO_WORKERS");
    if (n == 0) {
        fprintf(stderr, "CORO_WORKERS=%s: not a number of workers from 1 "
                        "to 1024\n", env ? env : "");
        exit(2);
    }
    if (opts->workers) {
        snprintf(why, sizeof why, "--workers %lu", n);
    } else if (env && *env) {
        snprintf(why, sizeof why, "CORO_WORKERS=%s", env);
    } else {
        long cpus = cpus_usable();
        snprintf(why, sizeof why, "asyncio's default for %ld CPU%s", cpus,
                 cpus == 1 ? "" : "s");
    }
    unsigned long rounds = ((unsigned long)jobs + n - 1) / n;
    printf("%lu worker threads (%s): %d %s in %lu round%s\n", n, why, jobs,
           what, rounds, rounds == 1 ? "" : "s");
    return (unsigned)n;
}

double demo_makespan(const double *jobs, int n, unsigned workers)
{
    /* Workers beyond the n jobs would stay idle. */
    int busy = (int)workers < n ? (int)workers : n;
    double *free_at = calloc((size_t)(busy > 0 ? busy : 1), sizeof *free_at);
    if (!free_at)
        return 0;
    for (int i = 0; i < n; i++) {
        int first = 0;
        for (int k = 1; k < busy; k++)
            if (free_at[k] < free_at[first])
                first = k;
        free_at[first] += jobs[i];
    }
    double end = 0;
    for (int k = 0; k < busy; k++)
        end = free_at[k] > end ? free_at[k] : end;
    free(free_at);
    return end;
}

int demo_set_workers(const struct demo_opts *opts)
{
    return opts->workers ? coro_set_workers(opts->workers) : 0;
}

const char *demo_clock(char *buf)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(buf, 9, "%H:%M:%S", &tm);
    return buf;
}

void demo_heading(const char *variant, const char *what)
{
    printf("\n--- %s: %s\n", variant, what);
    if (timeline_wanted)
        timeline_start();
}

void demo_summary(const char *variant, double measured, double expected)
{
    printf("variant %s: %.3f s (expected %.3f s)\n", variant, measured,
           expected);
    timeline_finish(stdout, variant);
}
