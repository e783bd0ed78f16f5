/* Acceptance tests: run every demo at a small --scale and check the lines
 * and orders SCENARIOS.md fixes, and that each asynchronous variant takes
 * about the longest wait while the synchronous one takes their sum. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "timeline.h"

#define SCALE "0.02"
static const double scale = 0.02;

struct output {
    char text[65536];
    int  status; /* exit status, or -1 if it did not exit normally */
};

/* Where the Makefile built the demos with this compiler. */
#ifndef CORO_TEST_DEMO_DIR
#define CORO_TEST_DEMO_DIR "build/demo"
#endif

/* Runs CORO_TEST_DEMO_DIR/<name> (or $CORO_DEMO_DIR/<name>) with args,
 * capturing stdout and stderr. */
static void run_demo(const char *name, const char *args, struct output *out)
{
    const char *dir = getenv("CORO_DEMO_DIR");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/%s %s 2>&1", dir ? dir : CORO_TEST_DEMO_DIR,
             name, args);
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "popen %s", cmd);
    size_t n = fread(out->text, 1, sizeof out->text - 1, p);
    out->text[n] = '\0';
    int st = pclose(p);
    out->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The measured and expected seconds of a variant's summary line. */
static void variant_times(const struct output *out, const char *variant,
                          double *measured, double *expected)
{
    char key[64];
    snprintf(key, sizeof key, "variant %s: ", variant);
    const char *line = strstr(out->text, key);
    ck_assert_msg(line != NULL, "no summary line for %s in:\n%s", variant,
                  out->text);
    ck_assert_int_eq(sscanf(line + strlen(key), "%lf s (expected %lf s)",
                            measured, expected),
                     2);
}

/* Measured close to expected: never below it (the waits are real), and not
 * above it by more than a noisy machine explains. */
static double check_variant(const struct output *out, const char *variant,
                            double want)
{
    double measured, expected;
    variant_times(out, variant, &measured, &expected);
    ck_assert_msg(expected > want * 0.999 && expected < want * 1.001,
                  "%s: expected %.3f, want %.3f", variant, expected, want);
    ck_assert_msg(measured >= expected * 0.98,
                  "%s: %.3f s, less than its waits (%.3f s)", variant,
                  measured, expected);
    ck_assert_msg(measured < expected * 1.3 + 0.05 * test_slow(),
                  "%s: %.3f s, expected %.3f s", variant, measured, expected);
    return measured;
}

/* One variant and the seconds its waits add up to, in units of --scale
 * (0: drawn at random, whatever the demo says). */
struct timed {
    const char *variant;
    double      units;
};

/* Whether a run's times look as they should: each variant close to what
 * it expects (check_variant's bounds, without asserting), and each after
 * the first (the one-at-a-time variant) faster than the first. */
static int times_fit(const struct output *out, const struct timed *want)
{
    double first = 0;
    for (const struct timed *w = want; w->variant; w++) {
        char key[64];
        snprintf(key, sizeof key, "variant %s: ", w->variant);
        const char *line = strstr(out->text, key);
        double measured, expected;
        if (!line || sscanf(line + strlen(key), "%lf s (expected %lf s)",
                            &measured, &expected) != 2)
            return 0;
        if ((w->units > 0 && (expected < w->units * scale * 0.999 ||
                              expected > w->units * scale * 1.001)) ||
            measured < expected * 0.98 ||
            measured >= expected * 1.3 + 0.05 * test_slow())
            return 0;
        if (w == want)
            first = measured;
        else if (measured >= first)
            return 0;
    }
    return 1;
}

/* run_demo for a test that compares the variants' times: a run that a
 * busy machine slowed (a stall of a few tens of milliseconds is enough at
 * this scale) is tried again, three runs at most. A demo whose variants
 * really do not overlap fails every run. */
static void run_demo_timed(const char *name, const char *args,
                           const struct timed *want, struct output *out)
{
    for (int run = 0; run < 3; run++) {
        run_demo(name, args, out);
        if (out->status != 0 || times_fit(out, want))
            return;
    }
}

/* Checks that the lines appear in this order (other lines may come in
 * between), starting from the given text. Returns where the last ended. */
static const char *expect_in_order(const char *text, const char *const *lines)
{
    for (; *lines; lines++) {
        const char *at = strstr(text, *lines);
        ck_assert_msg(at != NULL, "missing or out of order: \"%s\" in:\n%s",
                      *lines, text);
        text = at + strlen(*lines);
    }
    return text;
}

static const char *section(const struct output *out, const char *variant)
{
    char key[64];
    snprintf(key, sizeof key, "--- %s:", variant);
    const char *at = strstr(out->text, key);
    ck_assert_msg(at != NULL, "no section %s", variant);
    return at;
}

/* The number after prefix, found from text on, is written as Python
 * writes a float (the tutorials' timings): all its digits, not a rounded
 * few. A measured time has about sixteen; six rules out %.3f. */
static double full_precision(const char *text, const char *prefix)
{
    const char *at = strstr(text, prefix);
    ck_assert_msg(at != NULL, "no \"%s\" in:\n%s", prefix, text);
    at += strlen(prefix);
    char *end;
    double v = strtod(at, &end);
    const char *point = memchr(at, '.', (size_t)(end - at));
    ck_assert_msg(end > at && *end == '\n' && point && end - point > 6,
                  "not a full-precision number after \"%s\": %.40s", prefix,
                  at);
    return v;
}

/* The pool size a demo printed in its "N worker threads (...)" line, from
 * text on; with CORO_WORKERS unset, asyncio's min(32, CPUs + 4), counting
 * the CPUs this process may run on as coro does. */
static unsigned pool_size(const char *text)
{
    const char *at = strstr(text, " worker threads (");
    ck_assert_msg(at != NULL, "no pool line in:\n%s", text);
    while (at > text && at[-1] >= '0' && at[-1] <= '9')
        at--;
    unsigned n = (unsigned)atoi(at);
    if (!getenv("CORO_WORKERS")) {
        cpu_set_t set;
        ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
        unsigned cpus = (unsigned)CPU_COUNT(&set);
        ck_assert_uint_eq(n, cpus + 4 < 32 ? cpus + 4 : 32);
        ck_assert_ptr_nonnull(strstr(at, "(asyncio's default for "));
    }
    return n;
}

/* Without --original every line is the English one: no byte of UTF-8
 * beyond ASCII, so no Korean, anywhere in the output. */
static void expect_ascii(const char *text)
{
    for (const char *p = text; *p; p++)
        ck_assert_msg((unsigned char)*p < 0x80, "not ASCII at \"%.40s\"", p);
}

START_TEST(demo_a_three_tasks)
{
    struct output out;
    static const struct timed want[] = { { "sync", 7 }, { "async", 4 },
                                         { NULL, 0 } };
    run_demo_timed("a_three_tasks", "--scale " SCALE, want, &out);
    ck_assert_int_eq(out.status, 0);
    static const char *const sync[] = {
        "Done | proceed time of task_1 is 2",
        "Done | proceed time of task_2 is 4",
        "Done | proceed time of task_3 is 1",
        "All process is Done | proceed time is", NULL };
    expect_in_order(section(&out, "sync"), sync);
    /* Together, they finish in order of their durations. */
    static const char *const async[] = {
        "Done | proceed time of task_3 is 1",
        "Done | proceed time of task_1 is 2",
        "Done | proceed time of task_2 is 4",
        "All process is Done | proceed time is", NULL };
    expect_in_order(section(&out, "async"), async);
    const char *total = "All process is Done | proceed time is ";
    full_precision(section(&out, "sync"), total);
    full_precision(section(&out, "async"), total);
    double s = check_variant(&out, "sync", 7 * scale);
    double a = check_variant(&out, "async", 4 * scale);
    ck_assert_double_lt(a, s);
}
END_TEST

START_TEST(demo_a_seed_draws_durations)
{
    struct output out;
    run_demo("a_three_tasks", "--seed 42 --only async --scale " SCALE, &out);
    ck_assert_int_eq(out.status, 0);
    ck_assert_ptr_null(strstr(out.text, "--- sync"));
    /* Whatever was drawn, the async finishing order is by duration. */
    int t[3], n[3];
    const char *p = out.text;
    for (int i = 0; i < 3; i++) {
        p = strstr(p, "Done | proceed time of task_");
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(sscanf(p, "Done | proceed time of task_%d is %d",
                                &n[i], &t[i]),
                         2);
        ck_assert(t[i] >= 1 && t[i] <= 5);
        p++;
    }
    ck_assert(t[0] <= t[1] && t[1] <= t[2]);
    int longest = t[2];
    check_variant(&out, "async", longest * scale);
}
END_TEST

START_TEST(demo_b_five_jobs)
{
    struct output out;
    static const struct timed want[] = { { "sync", 5 }, { "async", 1 },
                                         { NULL, 0 } };
    run_demo_timed("b_five_jobs", "--scale " SCALE, want, &out);
    ck_assert_int_eq(out.status, 0);
    expect_ascii(out.text);
    ck_assert_msg(strncmp(out.text, "Hello\nWorld\n", 12) == 0, "%s",
                  out.text);
    static const char *const sync[] = {
        "Starting job 0", "Finishing job 0", "Starting job 1",
        "Finishing job 1", "Starting job 2", "Finishing job 2",
        "Starting job 3", "Finishing job 3", "Starting job 4",
        "Finishing job 4", "\ntotal time :  ", "\nvariant sync: ", NULL };
    expect_in_order(section(&out, "sync"), sync);
    /* Every Starting line before any Finishing line. */
    static const char *const async[] = {
        "Starting job 0", "Starting job 1", "Starting job 2",
        "Starting job 3", "Starting job 4", "Finishing job 0",
        "Finishing job 4", "\ntotal time :  ", "\nvariant async: ", NULL };
    expect_in_order(section(&out, "async"), async);
    double s = check_variant(&out, "sync", 5 * scale);
    double a = check_variant(&out, "async", 1 * scale);
    ck_assert_double_lt(a, s);
    /* The total the line prints is the one the summary measured. */
    double total = full_precision(section(&out, "sync"), "total time :  ");
    ck_assert_double_eq_tol(total, s, 0.0006);
    total = full_precision(section(&out, "async"), "total time :  ");
    ck_assert_double_eq_tol(total, a, 0.0006);
}
END_TEST

/* --original: the tutorial's own words, print("전체 소요시간 : ", ...). */
START_TEST(demo_b_original)
{
    struct output out;
    run_demo("b_five_jobs", "--original --scale " SCALE, &out);
    ck_assert_int_eq(out.status, 0);
    ck_assert_ptr_null(strstr(out.text, "total time"));
    static const char *const lines[] = {
        "Hello\nWorld\n", "Finishing job 4\n전체 소요시간 :  ",
        "Finishing job 4\n전체 소요시간 :  ", NULL };
    expect_in_order(out.text, lines);
    full_precision(section(&out, "async"), "전체 소요시간 :  ");
}
END_TEST

/* The notebook cells C opens with, as its output shows them: plain calls,
 * a coroutine alone, through another, two gathered, then a hundred threes
 * and a hundred fives. */
static void expect_c_lessons(const char *text)
{
    static char want[512];
    size_t n = (size_t)snprintf(want, sizeof want, "%s",
                                "55555555557777777777\n5555555555\n"
                                "5555555555\n55555555557777777777\n");
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(want + n, sizeof want - n, "%d\n",
                              i < 100 ? 3 : 5);
    ck_assert_msg(strncmp(text, want, n) == 0, "lessons differ:\n%s", text);
    ck_assert_msg(strncmp(text + n, "hello\nworld\nstart : ", 19) == 0,
                  "no hello, world, start after the lessons:\n%s", text + n);
}

START_TEST(demo_c_user_lookups)
{
    struct output out;
    static const struct timed want[] = { { "sync", 6 }, { "wait", 3 },
                                         { "gather", 3 }, { NULL, 0 } };
    run_demo_timed("c_user_lookups", "--scale " SCALE, want, &out);
    ck_assert_int_eq(out.status, 0);
    expect_ascii(out.text);
    expect_c_lessons(out.text);
    static const char *const nights[] = { "\nstart : ",
                                          "\nGood night!\nGood night!\n"
                                          "end : ",
                                          NULL };
    expect_in_order(out.text, nights);
    static const char *const sync[] = {
        "user 1 of 3", "user 2 of 3", "user 3 of 3", "> all 3 users",
        "user 1 of 2", "user 2 of 2", "> all 2 users", "user 1 of 1",
        "> all 1 users", "\n>>> total time, synchronous: ", NULL };
    expect_in_order(section(&out, "sync"), sync);
    /* Round by round, in argument order. */
    static const char *const gather[] = {
        "user 1 of 3", "user 1 of 2", "user 1 of 1",
        "user 2 of 3", "user 2 of 2", "> all 1 users",
        "user 3 of 3", "> all 2 users", "> all 3 users",
        "\n>>> total time, asynchronous: ", NULL };
    expect_in_order(section(&out, "gather"), gather);
    full_precision(section(&out, "sync"), ">>> total time, synchronous: ");
    full_precision(section(&out, "wait"), ">>> total time, asynchronous: ");
    full_precision(section(&out, "gather"), ">>> total time, asynchronous: ");
    double s = check_variant(&out, "sync", 6 * scale);
    double w = check_variant(&out, "wait", 3 * scale);
    double g = check_variant(&out, "gather", 3 * scale);
    ck_assert_double_lt(w, s);
    ck_assert_double_lt(g, s);
}
END_TEST

/* --original: the tutorial's Korean lines, and gather's in the very order
 * the tutorial printed them (In [88]). */
START_TEST(demo_c_original)
{
    struct output out;
    run_demo("c_user_lookups", "--original --scale " SCALE, &out);
    ck_assert_int_eq(out.status, 0);
    expect_c_lessons(out.text);
    ck_assert_ptr_null(strstr(out.text, "looking up"));
    ck_assert_ptr_null(strstr(out.text, "Good night"));
    static const char *const nights[] = { "\nstart : ",
                                          "\n잘자요\n잘자요\nend : ", NULL };
    expect_in_order(out.text, nights);
    /* Each line whole: each ends where the next begins. */
    static const char *const sync[] = {
        "\n3명 중 1번 째 사용자 조회 중 ...\n",
        "> 총 3 명 사용자 동기 조회 완료!\n",
        "1명 중 1번 째 사용자 조회 중 ...\n",
        "> 총 1 명 사용자 동기 조회 완료!\n",
        ">>> 동기 처리 총 소요 시간: ", NULL };
    expect_in_order(section(&out, "sync"), sync);
    static const char *const gather =
        "3명 중 1번 째 사용자 조회 중 ...\n"
        "2명 중 1번 째 사용자 조회 중 ...\n"
        "1명 중 1번 째 사용자 조회 중 ...\n"
        "3명 중 2번 째 사용자 조회 중 ...\n"
        "2명 중 2번 째 사용자 조회 중 ...\n"
        "> 총 1 명 사용자 비동기 조회 완료!\n"
        "3명 중 3번 째 사용자 조회 중 ...\n"
        "> 총 2 명 사용자 비동기 조회 완료!\n"
        "> 총 3 명 사용자 비동기 조회 완료!\n"
        ">>> 비동기 처리 총 소요 시간: ";
    const char *g = section(&out, "gather");
    ck_assert_msg(strstr(g, gather) != NULL, "not the tutorial's order:\n%s",
                  g);
    full_precision(g, ">>> 비동기 처리 총 소요 시간: ");
}
END_TEST

START_TEST(demo_d_tasks_gather_blocking)
{
    struct output out;
    static const struct timed want[] = {
        { "sequential", 4 }, { "tasks", 2 }, { "gather", 2 },
        { "gather-results", 2 }, { "executor", 2 }, { NULL, 0 } };
    run_demo_timed("d_tasks_gather_blocking", "--scale " SCALE, want, &out);
    ck_assert_int_eq(out.status, 0);
    double seq = check_variant(&out, "sequential", 4 * scale);
    ck_assert_double_lt(check_variant(&out, "tasks", 2 * scale), seq);
    ck_assert_double_lt(check_variant(&out, "gather", 2 * scale), seq);
    ck_assert_double_lt(check_variant(&out, "gather-results", 2 * scale),
                        seq);
    /* The default pool takes all five sleeps at once: min(32, CPUs + 4)
     * is at least five. */
    ck_assert_uint_ge(pool_size(section(&out, "executor")), 5);
    ck_assert_double_lt(check_variant(&out, "executor", 2 * scale), seq);
    /* gather-results: five "HH:MM:SS async_sleep" lines between start
     * and end. The executor's results come back in order 0..4. */
    const char *p = section(&out, "gather-results");
    for (int i = 0; i < 5; i++) {
        p = strstr(p, " async_sleep\n");
        ck_assert_ptr_nonnull(p);
        ck_assert(p[-3] == ':' && p[-6] == ':');
        p++;
    }
    p = section(&out, "executor");
    for (int i = 0; i < 5; i++) {
        char result[8];
        snprintf(result, sizeof result, " %d\n", i);
        p = strstr(p, result);
        ck_assert_msg(p != NULL, "executor result %d missing or out of order",
                      i);
        ck_assert(p[-3] == ':' && p[-6] == ':');
    }
}
END_TEST

/* --workers 2: the five sleeps take three rounds, results still in order. */
START_TEST(demo_d_workers)
{
    struct output out;
    static const struct timed want[] = { { "executor", 3 * 2 },
                                         { NULL, 0 } };
    run_demo_timed("d_tasks_gather_blocking",
                   "--only executor --workers 2 --scale " SCALE, want, &out);
    ck_assert_int_eq(out.status, 0);
    ck_assert_ptr_nonnull(
        strstr(out.text, "\n2 worker threads (--workers 2): 5 sleeps in "
                         "3 rounds\n"));
    static const char *const order[] = { " start\n", " 0\n", " 1\n", " 2\n",
                                         " 3\n", " 4\n", " end\n", NULL };
    expect_in_order(out.text, order);
    check_variant(&out, "executor", 3 * 2 * scale);
}
END_TEST

/* The twenty status lines of a section, as print(status_code, ': ',
 * taken_time) writes them; returns the longest time and leaves *after
 * past the last. If quick is not NULL, counts there the requests that took
 * less than quick_below seconds. */
static double twenty_responses(const char *p, const char *variant,
                               const char **after, double quick_below,
                               int *quick)
{
    double longest = 0;
    int n = 0;
    for (int i = 0; i < 20; i++) {
        p = strstr(p, "\n200 :  ");
        ck_assert_msg(p != NULL, "%s: response %d missing", variant, i);
        double t = full_precision(p, "\n200 :  ");
        longest = t > longest ? t : longest;
        n += t < quick_below;
        p++;
    }
    *after = p;
    if (quick)
        *quick = n;
    return longest;
}

/* A variant's line "threads: N (this one, the local server's and W
 * coro-workers)", the most threads E saw while its requests ran: N, and W
 * in *workers (0 if the line names none). */
static int threads_line(const struct output *out, const char *variant,
                        int *workers)
{
    const char *p = strstr(section(out, variant), "\nthreads: ");
    ck_assert_msg(p != NULL, "%s: no threads line in:\n%s", variant,
                  out->text);
    int n = atoi(p + strlen("\nthreads: "));
    const char *end = strchr(p + 1, '\n');
    const char *w = strstr(p, " coro-worker");
    *workers = 0;
    if (w && (!end || w < end)) {
        while (w > p && w[-1] >= '0' && w[-1] <= '9')
            w--;
        *workers = atoi(w);
    }
    return n;
}

START_TEST(demo_e_http_requests)
{
    struct output out;
    /* The executor and wrapper variants expect a latency a round of the
     * default pool, whose size this machine sets: checked below. */
    static const struct timed want[] = {
        { "sync", 6 }, { "executor", 0 }, { "wrapper", 0 },
        { "native", 0.3 }, { "hooked", 0.3 }, { NULL, 0 } };
    run_demo_timed("e_http_requests", "--scale " SCALE, want, &out);
    ck_assert_int_eq(out.status, 0);
    static const char *const variants[] = { "sync", "executor", "wrapper",
                                            "native", "hooked" };
    for (int v = 0; v < 5; v++) {
        const char *p;
        twenty_responses(section(&out, variants[v]), variants[v], &p, 0,
                         NULL);
        full_precision(p, "\ntotal: ");
    }
    double latency = 0.3 * scale;
    /* On the default pool: a latency for each round of it. */
    unsigned workers = pool_size(section(&out, "executor"));
    ck_assert_uint_eq(pool_size(section(&out, "wrapper")), workers);
    double rounds = (20 + workers - 1) / workers;
    double s = check_variant(&out, "sync", 20 * latency);
    double e = check_variant(&out, "executor", rounds * latency);
    double w = check_variant(&out, "wrapper", rounds * latency);
    double n = check_variant(&out, "native", latency);
    /* The sync variant's blocking client in twenty tasks, hooked: one
     * latency as well. */
    double h = check_variant(&out, "hooked", latency);
    ck_assert_double_lt(e, s);
    ck_assert_double_lt(w, s);
    ck_assert_double_lt(n, s);
    ck_assert_double_lt(h, s);
    /* And no thread but the loop's and the local server's: curl's waits
     * parked its tasks, and the hooks sent native's numeric lookups to no
     * worker. The executor's requests ran on workers, one thread each. */
    static const char two[] = "\nthreads: 2 (this one and the local "
                              "server's)\n";
    ck_assert_msg(strstr(section(&out, "hooked"), two) != NULL,
                  "hooked: no \"%s\" in:\n%s", two + 1, out.text);
    ck_assert_msg(strstr(section(&out, "native"), two) != NULL,
                  "native: no \"%s\" in:\n%s", two + 1, out.text);
    int busy;
    int threads = threads_line(&out, "executor", &busy);
    ck_assert_msg(busy >= 1 && busy <= (int)workers && threads == 2 + busy,
                  "executor: %d threads, %d of them workers (pool of %u)",
                  threads, busy, workers);
    ck_assert_int_eq(threads_line(&out, "hooked", &busy), 2);
    ck_assert_int_eq(busy, 0);
}
END_TEST

/* E's expected time follows the pool: --workers, or CORO_WORKERS when coro
 * reads it. Each request's time starts before it waits for a worker, as
 * the tutorial's does, so the last round's show the rounds before. At a
 * latency of 75 ms, twelve times the other tests': a second-round request
 * whose clock started late (a loaded machine's loop turn) must not pass for
 * a first-round one, and CI once saw a 16 ms late start at 30 ms. */
START_TEST(demo_e_workers_set_the_rounds)
{
    static const struct {
        const char *run;
        unsigned    workers, rounds;
    } runs[] = {
        { "--only executor --workers 4", 4, 5 },
        { "--only wrapper --workers 20", 20, 1 },
        { "--only executor --workers 16", 16, 2 }, /* the tutorial's */
    };
    const double e_scale = 0.25, latency = 0.3 * e_scale;
    struct output out;
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        char args[128];
        snprintf(args, sizeof args, "%s --scale %g", runs[i].run, e_scale);
        const char *variant = strstr(runs[i].run, "wrapper") ? "wrapper"
                                                              : "executor";
        const struct timed want[] = { { variant, 0 }, { NULL, 0 } };
        run_demo_timed("e_http_requests", args, want, &out);
        ck_assert_int_eq(out.status, 0);
        char line[80];
        snprintf(line, sizeof line,
                 "\n%u worker threads (--workers %u): 20 requests in %u "
                 "round%s\n",
                 runs[i].workers, runs[i].workers, runs[i].rounds,
                 runs[i].rounds == 1 ? "" : "s");
        ck_assert_msg(strstr(out.text, line) != NULL, "no \"%s\" in:\n%s",
                      line + 1, out.text);
        /* The last request's clock starts once the loop has handed the
         * ones before it to the workers, a little after the first began:
         * hence half a latency to spare, not the whole. No more requests
         * than workers can be answered in the first round; a slow machine
         * only makes fewer. */
        const char *p;
        int first_round;
        double longest = twenty_responses(out.text, variant, &p,
                                          1.5 * latency, &first_round);
        ck_assert_msg(longest >= (runs[i].rounds - 0.5) * latency,
                      "%s: the longest request took %.4f s, not %u rounds",
                      runs[i].run, longest, runs[i].rounds);
        ck_assert_msg(first_round <= (int)runs[i].workers,
                      "%s: %d requests in the first round:\n%s",
                      runs[i].run, first_round, out.text);
        check_variant(&out, variant, runs[i].rounds * latency);
    }
    /* CORO_WORKERS as the demo's environment, the caller's put back. */
    const char *had = getenv("CORO_WORKERS");
    char *saved = had ? strdup(had) : NULL;
    setenv("CORO_WORKERS", "3", 1);
    static const struct timed want[] = { { "executor", 0 }, { NULL, 0 } };
    char args[64];
    snprintf(args, sizeof args, "--only executor --scale %g", e_scale);
    run_demo_timed("e_http_requests", args, want, &out);
    if (saved)
        setenv("CORO_WORKERS", saved, 1);
    else
        unsetenv("CORO_WORKERS");
    free(saved);
    ck_assert_int_eq(out.status, 0);
    ck_assert_ptr_nonnull(strstr(
        out.text, "\n3 worker threads (CORO_WORKERS=3): 20 requests in 7 "
                  "rounds\n"));
    check_variant(&out, "executor", 7 * latency);
}
END_TEST

START_TEST(demo_f_queue_workers)
{
    struct output out;
    static const struct timed want[] = { { "sync", 0 }, { "async", 0 },
                                         { NULL, 0 } };
    run_demo_timed("f_queue_workers", "--scale " SCALE, want, &out);
    ck_assert_int_eq(out.status, 0);
    static const char *const variants[] = { "sync", "async" };
    for (int v = 0; v < 2; v++) {
        const char *p = section(&out, variants[v]);
        for (int i = 0; i < 20; i++) {
            p = strstr(p, " has slept for ");
            ck_assert_msg(p != NULL, "%s: job %d missing", variants[v], i);
            p++;
        }
    }
    ck_assert_ptr_nonnull(strstr(section(&out, "async"), "worker-2 has"));
    /* Expected values come from the drawn durations: the sum for one
     * worker, the FIFO schedule's end for three. */
    double ms, es, ma, ea;
    variant_times(&out, "sync", &ms, &es);
    variant_times(&out, "async", &ma, &ea);
    check_variant(&out, "sync", es);
    check_variant(&out, "async", ea);
    ck_assert_double_lt(ea, es / 2);
    ck_assert_double_lt(ma, ms);
}
END_TEST

/* --original where the tutorial's lines are English already (A, D, E; F
 * is asyncio's documentation): the demo runs, prints the same lines, and
 * nothing in Korean. */
START_TEST(demos_original_keeps_english_lines_as_they_are)
{
    static const struct {
        const char *demo, *args, *line;
    } runs[] = {
        { "a_three_tasks", "--only async",
          "\nDone | proceed time of task_3 is 1\n" },
        { "d_tasks_gather_blocking", "--only executor", " 4\n" },
        { "e_http_requests", "--only native", "\n200 :  " },
        { "f_queue_workers", "--only async", " has slept for " },
    };
    struct output out;
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        char args[128];
        snprintf(args, sizeof args, "--original %s --scale %s", runs[i].args,
                 SCALE);
        run_demo(runs[i].demo, args, &out);
        ck_assert_msg(out.status == 0, "%s %s: exit %d", runs[i].demo, args,
                      out.status);
        ck_assert_msg(strstr(out.text, runs[i].line) != NULL,
                      "%s: no \"%s\" in:\n%s", runs[i].demo, runs[i].line,
                      out.text);
        expect_ascii(out.text);
    }
    run_demo("a_three_tasks", "--original --only sync --scale " SCALE, &out);
    full_precision(out.text, "All process is Done | proceed time is ");
}
END_TEST

/* ---- --timeline ---- */

/* The cells of the row labelled label (60 characters between the bars),
 * searched from text on. */
static const char *row_cells(const char *text, const char *label)
{
    char key[32];
    snprintf(key, sizeof key, "\n%-18s|", label);
    const char *at = strstr(text, key);
    ck_assert_msg(at != NULL, "no row %s in:\n%s", label, text);
    const char *cells = at + strlen(key);
    const char *end = strchr(cells, '\n');
    ck_assert_msg(end && end - cells == 61 && end[-1] == '|',
                  "row %s is not 80 columns:\n%s", label, text);
    return cells;
}

/* The first and last cell of a row that are not blank. */
static void row_extent(const char *cells, int *first, int *last)
{
    *first = -1;
    *last = -1;
    for (int c = 0; c < 60; c++)
        if (cells[c] != ' ') {
            if (*first < 0)
                *first = c;
            *last = c;
        }
}

/* The first cell of a row where its task ran ('#'), or 60. */
static int first_run(const char *cells)
{
    const char *ran = memchr(cells, '#', 60);
    return ran ? (int)(ran - cells) : 60;
}

static void *nap(void *arg)
{
    int err = await_sleep(*(double *)arg);
    return err ? coro_fail(err) : NULL;
}

static void *two_naps_main(void *arg)
{
    double *naps = arg;
    const coro_attr a = { .name = "short_nap" }, b = { .name = "long_nap" };
    coro_task *t[] = { coro_spawn_attr(&a, nap, &naps[0]),
                       coro_spawn_attr(&b, nap, &naps[1]) };
    int err = await_gather(t, 2, NULL, NULL);
    return err ? coro_fail(err) : NULL;
}

START_TEST(timeline_draws_a_two_task_program)
{
    double naps[2] = { 0.05 * test_slow(), 0.1 * test_slow() };
    timeline_start();
    run_expect(two_naps_main, naps, 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    timeline_finish(f, "two naps");
    timeline_finish(f, "again"); /* nothing recorded: draws nothing */
    fclose(f);

    ck_assert_msg(strncmp(text, "\ntimeline of two naps, ", 23) == 0, "%s",
                  text);
    ck_assert_ptr_null(strstr(text, "again"));
    /* Each task first runs within the first few cells: on a loaded
     * machine the loop's start-up alone can fill a cell (1/60 of the run),
     * and a task may wait ready for one ('.') before it runs ('#'). */
    int first, last;
    const char *main_row = row_cells(text, "#1 main");
    row_extent(main_row, &first, &last);
    /* main ends the run: its last cell, or the one before where the
     * run's end rounds into the next cell. */
    ck_assert_msg(first >= 0 && first_run(main_row) <= 3 && last >= 58, "%s",
                  text);
    ck_assert_msg(main_row[last] == '#', "%s", text);
    ck_assert_ptr_nonnull(memchr(main_row, '~', 60));

    const char *short_row = row_cells(text, "#2 short_nap");
    row_extent(short_row, &first, &last);
    int ran = first_run(short_row);
    /* It runs, then waits: on a loaded machine its first run may spill
     * into the next cells. */
    ck_assert_msg(ran <= 3 && memchr(short_row + ran + 1, '~', 4) != NULL,
                  "%s", text);
    /* Half of the run, with room for a noisy machine. */
    ck_assert_msg(last >= 18 && last <= 45, "short nap ends at %d:\n%s",
                  last, text);
    const char *long_row = row_cells(text, "#3 long_nap");
    row_extent(long_row, &first, &last);
    ck_assert_msg(first_run(long_row) <= 3 && last >= 55, "%s", text);
    ck_assert_ptr_null(memchr(long_row, '=', 60)); /* nothing blocked */
    ck_assert_ptr_nonnull(strstr(text, "\n                   0.0"));
    free(text);
}
END_TEST

START_TEST(demos_draw_the_staircase_and_the_overlap)
{
    struct output out;
    run_demo("a_three_tasks", "--timeline --scale " SCALE, &out);
    ck_assert_int_eq(out.status, 0);
    const char *sync = strstr(out.text, "timeline of sync, ");
    ck_assert_msg(sync != NULL, "%s", out.text);
    /* One after another: each starts where the one before ended. */
    int first[3], last[3];
    for (int i = 0; i < 3; i++) {
        char label[16];
        snprintf(label, sizeof label, "task_%d", i + 1);
        const char *cells = row_cells(sync, label);
        row_extent(cells, &first[i], &last[i]);
        ck_assert_msg(cells[first[i]] == '=', "%s", out.text);
    }
    /* Start-up may fill the first cells on a slow run (valgrind), and
     * printing the total and the summary the last few. */
    ck_assert_msg(first[0] <= 8 && last[2] >= 55 &&
                      first[1] >= last[0] - 1 && first[1] <= last[0] + 1 &&
                      first[2] >= last[1] - 1 && first[2] <= last[1] + 1,
                  "not a staircase:\n%s", sync);
    /* Together: all three start at once, and the longest ends last. */
    const char *async = strstr(out.text, "timeline of async, ");
    ck_assert_msg(async != NULL, "%s", out.text);
    for (int i = 0; i < 3; i++) {
        char label[32];
        snprintf(label, sizeof label, "#%d example_task", i + 2);
        const char *cells = row_cells(async, label);
        row_extent(cells, &first[i], &last[i]);
        int ran = first_run(cells);
        ck_assert_msg(ran <= 8 && memchr(cells + ran, '~', 3) != NULL, "%s",
                      async);
    }
    ck_assert_msg(abs(first[0] - first[1]) <= 1 &&
                      abs(first[0] - first[2]) <= 1 && last[1] >= 55 &&
                      last[2] < last[0] && last[0] < last[1],
                  "%s", async);
}
END_TEST

/* Every demo: --help describes it (exit 0); a bad flag gets the usage and
 * exit status 2. */
START_TEST(demos_answer_help_and_reject_bad_flags)
{
    static const char *const demos[] = { "a_three_tasks", "b_five_jobs",
                                         "c_user_lookups",
                                         "d_tasks_gather_blocking",
                                         "e_http_requests",
                                         "f_queue_workers" };
    static const char *const bad[] = { "--bogus", "--scale", "--scale abc",
                                       "--scale -1", "--only nosuch",
                                       "stray" };
    struct output out;
    for (size_t d = 0; d < sizeof demos / sizeof *demos; d++) {
        run_demo(demos[d], "--help", &out);
        ck_assert_int_eq(out.status, 0);
        ck_assert_ptr_nonnull(strstr(out.text, "usage: "));
        ck_assert_ptr_nonnull(strstr(out.text, "--scale"));
        ck_assert_ptr_nonnull(strstr(out.text, "--timeline"));
        ck_assert_ptr_nonnull(strstr(out.text, "--original"));
        for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
            run_demo(demos[d], bad[b], &out);
            ck_assert_msg(out.status == 2, "%s %s: exit %d", demos[d], bad[b],
                          out.status);
            ck_assert_ptr_nonnull(strstr(out.text, "usage: "));
        }
    }
    run_demo("a_three_tasks", "--seed x", &out);
    ck_assert_int_eq(out.status, 2);
    run_demo("b_five_jobs", "--seed 1", &out); /* B draws nothing */
    ck_assert_int_eq(out.status, 2);
    run_demo("e_http_requests", "--url ftp://x", &out);
    ck_assert_int_eq(out.status, 2);
    /* --workers: the pool's size, 1 to 1024, for the demos that use it. */
    static const char *const workers[] = {
        "--workers 0",  "--workers 1025", "--workers 2x",
        "--workers -1", "--workers ''",   "--workers 99999999999999999999",
        "--workers 1.5", "--workers" };
    for (size_t w = 0; w < sizeof workers / sizeof *workers; w++) {
        run_demo("d_tasks_gather_blocking", workers[w], &out);
        ck_assert_msg(out.status == 2, "D %s: exit %d", workers[w],
                      out.status);
        ck_assert_ptr_nonnull(strstr(out.text, "usage: "));
        run_demo("e_http_requests", workers[w], &out);
        ck_assert_msg(out.status == 2, "E %s: exit %d", workers[w],
                      out.status);
    }
    run_demo("a_three_tasks", "--workers 2", &out); /* A has no pool */
    ck_assert_int_eq(out.status, 2);
    run_demo("e_http_requests", "--help", &out);
    ck_assert_ptr_nonnull(strstr(out.text, "--workers N"));
    ck_assert_ptr_nonnull(strstr(out.text, "hooked"));
}
END_TEST

Suite *demos_suite(void)
{
    Suite *s = suite_create("demos");
    TCase *tc = test_case("scenarios", 30);
    tcase_add_test(tc, demo_a_three_tasks);
    tcase_add_test(tc, demo_a_seed_draws_durations);
    tcase_add_test(tc, demo_b_five_jobs);
    tcase_add_test(tc, demo_b_original);
    tcase_add_test(tc, demo_c_user_lookups);
    tcase_add_test(tc, demo_c_original);
    tcase_add_test(tc, demo_d_tasks_gather_blocking);
    tcase_add_test(tc, demo_d_workers);
    tcase_add_test(tc, demo_e_http_requests);
    tcase_add_test(tc, demo_e_workers_set_the_rounds);
    tcase_add_test(tc, demo_f_queue_workers);
    tcase_add_test(tc, demos_original_keeps_english_lines_as_they_are);
    tcase_add_test(tc, demos_answer_help_and_reject_bad_flags);
    tcase_add_test(tc, timeline_draws_a_two_task_program);
    tcase_add_test(tc, demos_draw_the_staircase_and_the_overlap);
    suite_add_tcase(s, tc);
    return s;
}
