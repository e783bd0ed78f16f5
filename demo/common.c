#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int timeline_wanted; /* --timeline */

static void usage(FILE *out, const struct demo_info *info)
{
    fprintf(out,
            "usage: %s [--scale F] [--only VARIANT] [--timeline]%s%s "
            "[--help]\n\n%s\n",
            info->name, info->flags & DEMO_SEED ? " [--seed N]" : "",
            info->flags & DEMO_HTTP ? " [--latency S] [--url URL]" : "",
            info->about);
    fprintf(out, "\nVariants:");
    for (const char *const *v = info->variants; *v; v++)
        fprintf(out, " %s", *v);
    fprintf(out,
            "\n\nOptions:\n"
            "  --scale F       multiply every wait by F (default 1; 0.01 runs\n"
            "                  the demo in well under a second)\n"
            "  --only VARIANT  run just one variant\n"
            "  --timeline      after each variant, draw when each of its tasks\n"
            "                  ran and waited, one row per task\n");
    if (info->flags & DEMO_SEED)
        fprintf(out, "  --seed N        draw the random durations from seed N\n"
                     "                  (default: the tutorial's durations)\n");
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
        int takes_value = strcmp(flag, "--scale") == 0 ||
                          strcmp(flag, "--only") == 0 ||
                          ((info->flags & DEMO_SEED) &&
                           strcmp(flag, "--seed") == 0) ||
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
        } else if (strcmp(flag, "--latency") == 0) {
            opts->latency = parse_seconds(info, flag, value);
        } else {
            if (strncmp(value, "http://", 7) && strncmp(value, "https://", 8))
                bad_usage(info, "not an http:// or https:// URL", value);
            opts->url = value;
        }
    }
    timeline_wanted = opts->timeline;
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
