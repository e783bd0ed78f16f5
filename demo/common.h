/* What the demos share: flags, clocks, the summary line. Each demo file
 * holds only its scenario's story. Demos use coro.h only, as any program
 * would. */
#ifndef CORO_DEMO_COMMON_H
#define CORO_DEMO_COMMON_H

#include <stddef.h>

#include "timeline.h"

/* Which optional flags a demo takes besides --scale, --only, --timeline,
 * --original and --help. */
enum {
    DEMO_SEED = 1,   /* --seed N: it draws random numbers */
    DEMO_HTTP = 2,   /* --latency S and --url URL */
    DEMO_WORKERS = 4 /* --workers N: it runs blocking calls on the pool */
};

struct demo_info {
    const char        *name;       /* program name, for usage */
    const char        *about;      /* what it shows, for --help */
    const char        *original;   /* what --original changes, for --help */
    const char *const *variants;   /* NULL-terminated; the first is the
                                      baseline the others are compared to */
    unsigned           flags;      /* DEMO_SEED, DEMO_HTTP, DEMO_WORKERS */
};

struct demo_opts {
    double        scale;    /* multiplies every wait (default 1) */
    const char   *only;     /* run just this variant, or NULL */
    int           seeded;   /* --seed was given */
    unsigned long seed;
    double        latency;  /* --latency: the local server's delay */
    const char   *url;      /* --url: another server, or NULL */
    int           timeline; /* --timeline: draw each variant's tasks */
    int           original; /* --original: the tutorial's own words */
    unsigned      workers;  /* --workers: the pool's size, or 0 for
                               coro's default */
};

/* Set by --original: print the tutorial's lines in its own words. */
extern int demo_original;

/* A line in the tutorial's own words (Korean, UTF-8) with --original, in
 * English without. A macro rather than a function, so that printf still
 * checks both formats against its arguments. */
#define SAY(english, original) (demo_original ? (original) : (english))

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

/* v as Python's repr() and print() write a float: the fewest digits that
 * read back as v ("7.015817165374756", "5.0"), so that a demo's timings
 * look like the tutorial's. buf needs 32 bytes. */
const char *demo_repr(double v, char *buf);

/* The worker pool a loop started now runs blocking calls on: --workers if
 * given, else coro_workers() (CORO_WORKERS if set, else asyncio's
 * min(32, CPUs + 4)). Call it outside a coroutine. Prints a line such as
 *   6 worker threads (asyncio's default for 2 CPUs): 20 requests in 4 rounds
 * and returns the pool's size. Exits 2 if CORO_WORKERS is not
 * a number from 1 to 1024 (coro_run would refuse it). */
unsigned demo_workers(const struct demo_opts *opts, int jobs,
                      const char *what);

/* How long n jobs of these durations take on `workers` threads when each
 * job, in order, goes to the first worker free (a FIFO queue, as coro's
 * pool and asyncio.Queue's workers take them). */
double demo_makespan(const double *jobs, int n, unsigned workers);

/* Called first in a variant's main task: gives the loop the pool --workers
 * asked for (coro_set_workers), or leaves coro's default. Returns
 * coro_set_workers's error. */
int demo_set_workers(const struct demo_opts *opts);

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
