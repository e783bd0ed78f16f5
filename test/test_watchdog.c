/* watchdog.c: the stall watchdog reports a task that runs past its limit
 * while it runs, with where it is, and again when it suspends; it says
 * nothing of parked tasks and idle loops. */
#include <errno.h>
#include <float.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

/* What the process has written to stderr so far, read while stderr is
 * captured (stderr_capture sends it to a file). */
static int report_seen(void)
{
    char buf[8192];
    int fd = open("/proc/self/fd/2", O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return strstr(buf, "coro: stall: ") != NULL;
}

/* Spins until the watchdog's report is on stderr (or for `most` seconds),
 * then 10 ms more: 1 if the report came while it ran. */
static __attribute__((noinline)) int spin_until_reported(double most)
{
    double end = coro_now() + most;
    int seen = 0;
    while (!seen && coro_now() < end)
        seen = report_seen();
    for (end = coro_now() + 0.01; coro_now() < end;)
        ;
    return seen;
}

static void *spinner(void *arg)
{
    *(int *)arg = spin_until_reported(2 * test_slow());
    return NULL;
}

static void *spinner_main(void *arg)
{
    int err = await_task(coro_spawn(spinner, arg), NULL);
    return err ? coro_fail(err) : NULL;
}

static size_t count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Whether a frame of the backtrace after "It is at:" lies in fn's first
 * `len` bytes: backtrace_symbols_fd ends each line with [0xaddress]. */
static int frame_in(const char *text, void *fn, size_t len)
{
    const char *p = strstr(text, "It is at:");
    uintptr_t lo = (uintptr_t)fn;
    while (p && (p = strstr(p, "[0x")) != NULL) {
        uintptr_t pc = (uintptr_t)strtoull(p + 1, NULL, 16);
        if (pc >= lo && pc < lo + len)
            return 1;
        p += 3;
    }
    return 0;
}

/* site: how the report names where the task was spawned. */
static void expect_stall_report(const char *text, const char *task,
                                const char *site)
{
    ck_assert_uint_eq(count(text, "coro: stall: "), 1);
    expect_report_line(text, "coro: stall: ", task, site, ") has run ",
                       " ms without suspending; ", "It is at:", NULL);
    expect_report_line(text, "coro: stall over: ", task, site,
                       ") suspended after running ", " ms", NULL);
}

START_TEST(watchdog_reports_a_stall_as_it_happens)
{
    int seen = 0;
    ck_assert_int_eq(coro_set_watchdog(0.05), 0);
    char *text = run_reporting(spinner_main, &seen, 0);
    ck_assert_int_eq(coro_set_watchdog(0), 0);
    ck_assert_msg(seen, "no report while the task ran:\n%s", text);
    expect_stall_report(text, "task #2 \"spinner\"",
                        " (test/test_watchdog.c:");
    /* Where it runs now: the spinning function, by its address. */
    ck_assert_msg(frame_in(text, (void *)spin_until_reported, 512),
                  "spin_until_reported (%p) is not in the backtrace:\n%s",
                  (void *)spin_until_reported, text);
    /* The total covers the whole run: past the limit. */
    const char *over = strstr(text, "suspended after running ");
    double total = atof(over + strlen("suspended after running "));
    ck_assert_msg(total >= 50, "%s", text);
    free(text);
}
END_TEST

/* Tasks parked in sleeps, a blocking call and a join, one that yields
 * often (every run short), and the loop idle in between. */
static void *napper(void *arg)
{
    (void)arg;
    int err = await_sleep(0.15);
    return err ? coro_fail(err) : NULL;
}

static void *sleep_blocking(void *arg)
{
    usleep(100000);
    return arg;
}

static void *blocker(void *arg)
{
    (void)arg;
    int err = await_blocking(sleep_blocking, NULL, NULL);
    return err ? coro_fail(err) : NULL;
}

static void *yielder(void *arg)
{
    (void)arg;
    double end = coro_now() + 0.1;
    int err = 0;
    while (!err && coro_now() < end)
        err = await_yield();
    return err ? coro_fail(err) : NULL;
}

static void *quiet_main(void *arg)
{
    (void)arg;
    coro_task *t[] = { coro_spawn(napper, NULL), coro_spawn(napper, NULL),
                       coro_spawn(blocker, NULL), coro_spawn(yielder, NULL) };
    int err = await_gather(t, 4, NULL, NULL);
    if (!err)
        err = await_sleep(0.1); /* alone, and idle */
    return err ? coro_fail(err) : NULL;
}

START_TEST(watchdog_is_quiet_while_tasks_park_and_the_loop_idles)
{
    ck_assert_int_eq(coro_set_watchdog(0.02 * test_slow()), 0);
    char *text = run_reporting(quiet_main, NULL, 0);
    ck_assert_int_eq(coro_set_watchdog(0), 0);
    ck_assert_msg(*text == '\0', "reported:\n%s", text);
    free(text);
}
END_TEST

/* Set from inside a task, it watches the caller's run from then on; off
 * again, it says nothing more. */
static void *sets_its_own_watchdog(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_set_watchdog(0.05), 0);
    ck_assert_int_eq(spin_until_reported(2 * test_slow()), 1);
    int err = await_yield();
    ck_assert_int_eq(coro_set_watchdog(0), 0);
    double end = coro_now() + 0.1 * test_slow();
    while (coro_now() < end)
        ;
    return err ? coro_fail(err) : NULL;
}

START_TEST(watchdog_set_in_a_task_watches_that_run)
{
    char *text = run_reporting(sets_its_own_watchdog, NULL, 0);
    expect_stall_report(text, "task #1 \"main\"", " (0x");
    free(text);
}
END_TEST

START_TEST(watchdog_refuses_a_limit_that_is_no_limit)
{
    ck_assert_int_eq(coro_set_watchdog(NAN), EINVAL);
    ck_assert_int_eq(coro_set_watchdog(0.0005), EINVAL);
    ck_assert_int_eq(coro_set_watchdog(-1), 0); /* off */
    ck_assert_int_eq(coro_set_watchdog(0), 0);
}
END_TEST

/* Limits at the ends of the doubles, in a running loop: an infinite or
 * huge one is a watchdog that never fires (its wake-up sum does not
 * overflow), a negative one of any size is off, subnormals are EINVAL. */
static void *extreme_limits_main(void *arg)
{
    (void)arg;
    const double never[] = { 1e9, 9.3e9, 1e300, DBL_MAX, INFINITY };
    for (size_t i = 0; i < sizeof never / sizeof *never; i++) {
        ck_assert_int_eq(coro_set_watchdog(never[i]), 0);
        double end = coro_now() + 0.02;
        while (coro_now() < end)
            ; /* a short stall, which so long a limit lets pass */
        ck_assert_int_eq(await_sleep(0.001), 0);
    }
    const double bad[] = { NAN, -NAN, 5e-324, 1e-300, 0.000999 };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_int_eq(coro_set_watchdog(bad[i]), EINVAL);
    const double off[] = { -INFINITY, -DBL_MAX, -5e-324, -0.0, 0 };
    for (size_t i = 0; i < sizeof off / sizeof *off; i++)
        ck_assert_int_eq(coro_set_watchdog(off[i]), 0);
    return NULL;
}

START_TEST(watchdog_limits_at_the_ends_of_the_doubles)
{
    char *text = run_reporting(extreme_limits_main, NULL, 0);
    ck_assert_msg(*text == '\0', "reported:\n%s", text);
    free(text);
}
END_TEST

/* In a thread of its own, which no call has set: CORO_WATCHDOG applies.
 * The capture of stderr (process-wide, fd 2) is this thread's doing: its
 * helpers call ck_assert, which the other thread must not (in Check's
 * no-fork mode, valgrind's, a failure there would jump into this one). */
struct env_run {
    int   seen;
    int   err;
};

static void *run_with_env(void *arg)
{
    struct env_run *r = arg;
    r->err = coro_run(spinner_main, &r->seen, NULL);
    return NULL;
}

static char *env_run(const char *value, int *seen)
{
    static struct env_run r; /* static: the join is bounded */
    r = (struct env_run){ .seen = 0, .err = -1 };
    setenv("CORO_WATCHDOG", value, 1);
    pthread_t th;
    stderr_capture();
    int made = pthread_create(&th, NULL, run_with_env, &r);
    int joined = made ? 0 : test_join(th, NULL, 10);
    char *text = stderr_captured();
    unsetenv("CORO_WATCHDOG");
    ck_assert_int_eq(made, 0);
    ck_assert_int_eq(joined, 0);
    ck_assert_msg(r.err == 0, "coro_run: %d; it wrote:\n%s", r.err, text);
    *seen = r.seen;
    return text;
}

START_TEST(watchdog_from_the_environment)
{
    int seen;
    char *text = env_run("0.05", &seen);
    ck_assert_msg(seen, "%s", text);
    expect_stall_report(text, "task #2 \"spinner\"",
                        " (test/test_watchdog.c:");
    free(text);

    text = env_run("soon", &seen);
    ck_assert_msg(!seen && strstr(text, "coro: CORO_WATCHDOG=soon is not a "
                                        "limit in seconds") &&
                      !strstr(text, "coro: stall"),
                  "%s", text);
    free(text);
}
END_TEST

/* A SIGURG of someone else's reaches the handler installed before. */
static volatile sig_atomic_t theirs;

static void their_handler(int signo)
{
    (void)signo;
    theirs++;
}

static void *raises_sigurg(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_set_watchdog(1), 0);
    raise(SIGURG);
    ck_assert_int_eq(pthread_sigqueue(pthread_self(), SIGURG,
                                      (union sigval){ .sival_int = 7 }),
                     0);
    ck_assert_int_eq(coro_set_watchdog(0), 0);
    return NULL;
}

START_TEST(watchdog_passes_on_a_sigurg_not_its_own)
{
    if (!test_forking())
        return; /* the handler goes in once per process */
    signal(SIGURG, their_handler);
    run_expect(raises_sigurg, NULL, 0);
    ck_assert_int_eq(theirs, 2);
}
END_TEST

Suite *watchdog_suite(void)
{
    Suite *s = suite_create("watchdog");
    TCase *tc = test_case("watchdog", 20);
    tcase_add_test(tc, watchdog_reports_a_stall_as_it_happens);
    tcase_add_test(tc, watchdog_is_quiet_while_tasks_park_and_the_loop_idles);
    tcase_add_test(tc, watchdog_set_in_a_task_watches_that_run);
    tcase_add_test(tc, watchdog_refuses_a_limit_that_is_no_limit);
    tcase_add_test(tc, watchdog_limits_at_the_ends_of_the_doubles);
    tcase_add_test(tc, watchdog_from_the_environment);
    tcase_add_test(tc, watchdog_passes_on_a_sigurg_not_its_own);
    suite_add_tcase(s, tc);
    return s;
}
