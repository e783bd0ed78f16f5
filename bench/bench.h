/* Shared by the benchmarks: clocks and resource figures. Benchmarks print
 * what they measure and never fail on time. */
#ifndef CORO_BENCH_H
#define CORO_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double bench_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Peak resident set of this process, in KiB. */
static inline long bench_peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Parses a positive count, or exits with a usage message. */
static inline long bench_count(const char *s, const char *usage)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v <= 0) {
        fprintf(stderr, "%s", usage);
        exit(2);
    }
    return v;
}

/* Handles --help and at most one numeric argument (default dflt). */
static inline long bench_args(int argc, char **argv, long dflt,
                              const char *usage)
{
    if (argc > 2) {
        fprintf(stderr, "%s", usage);
        exit(2);
    }
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("%s", usage);
        exit(0);
    }
    return argc == 2 ? bench_count(argv[1], usage) : dflt;
}

#endif
