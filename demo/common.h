/* What the demos share: flags, clocks, the summary line. Each demo file
 * holds only its scenario's story. Demos use coro.h only, as any program
 * would. */
#ifndef CORO_DEMO_COMMON_H
#define CORO_DEMO_COMMON_H

#include <stddef.h>

#include "timeline.h"

/* Which optional flags a demo takes besides --scale, --only and --help. */
enum {
    DEMO_SEED = 1, /* --seed N: it draws random numbers */
    DEMO_HTTP = 2  /* --latency S and --url URL */
};

struct demo_info {
    const char        *name;       /* program name, for usage */
    const char        *about;      /* what it shows, for --help */
    const char *const *variants;   /* NULL-terminated; the first is the
                                      baseline the others are compared to */
    unsigned           flags;      /* DEMO_SEED, DEMO_HTTP */
};

struct demo_opts {
    double        scale;    /* multiplies every wait (default 1) */
    const char   *only;     /* run just this variant, or NULL */
    int           seeded;   /* --seed was given */
    unsigned long seed;
    double        latency;  /* --latency: the local server's delay */
    const char   *url;      /* --url: another server, or NULL */
    int           timeline; /* --timeline: draw each variant's tasks */
};

/* Parses argv. --help prints the usage and exits 0; a bad flag or value
 * prints it to stderr and exits 2. */
void demo_parse(int argc, char **argv, const struct demo_info *info,
                struct demo_opts *opts);

/* Whether the variant should run (no --only, or --only names it). */
int demo_want(const struct demo_opts *opts, const char *variant);

/* Monotonic seconds. */
double demo_now(void);

/* Really blocks the thread for the given seconds (nanosleep): the
 * synchronous variants use it, as the tutorials' time.sleep. With
 * --timeline it is drawn on the row timeline_row last named. */
void demo_block_sleep(double seconds);

/* Wall-clock time of day as "HH:MM:SS" in buf (at least 9 bytes). */
const char *demo_clock(char *buf);

/* Prints a variant's heading before it runs; with --timeline, starts
 * recording it. */
void demo_heading(const char *variant, const char *what);

/* The summary line every variant ends with:
 *   variant <name>: <seconds> s (expected <seconds> s)
 * With --timeline, the variant's timeline follows it. */
void demo_summary(const char *variant, double measured, double expected);

#endif
