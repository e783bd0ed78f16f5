/* trace.c: coro_set_task_hook's events and CORO_TRACE's trace file. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

/* ---- the task hook ---- */

struct seen {
    char   log[4096]; /* "2:spawn 2:run 2:park(sleep) ..." */
    size_t len;
    double last;      /* the time of the event before */
    int    backwards; /* an event's time came before the one before it */
};

static void record(const coro_task_event *ev, void *arg)
{
    struct seen *s = arg;
    static const char *const kinds[] = { "spawn", "run", "park", "ready",
                                         "end" };
    if (ev->time < s->last)
        s->backwards = 1;
    s->last = ev->time;
    int n = snprintf(s->log + s->len, sizeof s->log - s->len, "%s%llu:%s%s%s%s",
                     s->len ? " " : "", ev->task, kinds[ev->kind],
                     ev->reason ? "(" : "", ev->reason ? ev->reason : "",
                     ev->reason ? ")" : "");
    if (n > 0 && (size_t)n < sizeof s->log - s->len)
        s->len += (size_t)n;
    if (ev->kind == CORO_TASK_SPAWN && ev->task == 2)
        ck_assert_str_eq(ev->name, "napper");
}

static void *napper(void *arg)
{
    (void)arg;
    int err = await_sleep(0.01);
    return err ? coro_fail(err) : NULL;
}

static void *two_tasks_main(void *arg)
{
    (void)arg;
    int err = await_task(coro_spawn(napper, NULL), NULL);
    return err ? coro_fail(err) : NULL;
}

START_TEST(hook_sees_every_task_event)
{
    struct seen s = { .len = 0 };
    coro_set_task_hook(record, &s);
    run_expect(two_tasks_main, NULL, 0);
    coro_set_task_hook(NULL, NULL);
    ck_assert_str_eq(s.log, "1:spawn 1:run 2:spawn 1:park(join) 2:run "
                            "2:park(sleep) 2:ready 2:run 2:end 1:ready "
                            "1:run 1:end");
    ck_assert(!s.backwards);

    /* Unhooked, the next loop is not seen. */
    size_t len = s.len;
    run_expect(two_tasks_main, NULL, 0);
    ck_assert_uint_eq(s.len, len);
}
END_TEST

/* ---- the trace file ---- */

/* A JSON checker: returns the end of the value at p, or NULL. */
static const char *json_value(const char *p);

static const char *json_space(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    return p;
}

static const char *json_string_end(const char *p)
{
    if (*p++ != '"')
        return NULL;
    for (; *p != '"'; p++) {
        if (!*p || (unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i]))
                        return NULL;
                p += 4;
            } else if (!strchr("\"\\/bfnrt", *p) || !*p) {
                return NULL;
            }
        }
    }
    return p + 1;
}

static const char *json_number_end(const char *p)
{
    const char *start = p;
    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return NULL;
    while (isdigit((unsigned char)*p) || *p == '.' || *p == 'e' ||
           *p == 'E' || *p == '+' || *p == '-')
        p++;
    char *end;
    strtod(start, &end);
    return end == p ? p : NULL;
}

static const char *json_list(const char *p, char close, int keyed)
{
    p = json_space(p + 1);
    if (*p == close)
        return p + 1;
    for (;;) {
        if (keyed) {
            p = json_string_end(json_space(p));
            if (!p || *(p = json_space(p)) != ':')
                return NULL;
            p++;
        }
        p = json_value(p);
        if (!p)
            return NULL;
        p = json_space(p);
        if (*p == close)
            return p + 1;
        if (*p++ != ',')
            return NULL;
    }
}

static const char *json_value(const char *p)
{
    p = json_space(p);
    switch (*p) {
    case '{':
        return json_list(p, '}', 1);
    case '[':
        return json_list(p, ']', 0);
    case '"':
        return json_string_end(p);
    case 't':
        return strncmp(p, "true", 4) ? NULL : p + 4;
    case 'f':
        return strncmp(p, "false", 5) ? NULL : p + 5;
    case 'n':
        return strncmp(p, "null", 4) ? NULL : p + 4;
    default:
        return json_number_end(p);
    }
}

static int json_valid(const char *text)
{
    const char *end = json_value(text);
    return end && *json_space(end) == '\0';
}

START_TEST(json_checker_rejects_broken_json)
{
    ck_assert(json_valid("[{\"a\":1.5,\"b\":[true,null,\"x\\u0041\"]}]\n"));
    ck_assert(!json_valid("[{\"a\":1,}]"));
    ck_assert(!json_valid("[{\"a\":1}"));
    ck_assert(!json_valid("[1] 2"));
    ck_assert(!json_valid("[\"\n\"]"));
}
END_TEST

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static size_t count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static coro_chan *chan;

static void *sender(void *arg)
{
    (void)arg;
    int x = 7;
    int err = await_sleep(0.01);
    if (!err)
        err = await_chan_send(chan, &x, -1);
    if (!err) /* so that main, done receiving, parks to join */
        err = await_sleep(0.001);
    return err ? coro_fail(err) : NULL;
}

static void *traced_main(void *arg)
{
    (void)arg;
    coro_task *t = coro_spawn(sender, NULL);
    int x = 0;
    int err = await_chan_recv(chan, &x, -1);
    ck_assert_int_eq(x, 7);
    int joined = await_task(t, NULL);
    return err || joined ? coro_fail(err ? err : joined) : NULL;
}

/* FNV-1a of text: enough to tell a file changed. */
static unsigned long long text_hash(const char *text)
{
    unsigned long long h = 1469598103934665603ull;
    for (; *text; text++)
        h = (h ^ (unsigned char)*text) * 1099511628211ull;
    return h;
}

/* Makes path (a mkstemp template) a new file, and CORO_TRACE name it. */
static void trace_to_a_new_file(char *path)
{
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    chan = coro_chan_new(sizeof(int), 0);
    ck_assert_ptr_nonnull(chan);
    setenv("CORO_TRACE", path, 1);
}

START_TEST(trace_file_holds_each_task_interval)
{
    char path[] = "/tmp/coro-trace-XXXXXX";
    trace_to_a_new_file(path);
    run_expect(traced_main, NULL, 0);

    const char *text = slurp(path);
    ck_assert_msg(json_valid(text), "not JSON:\n%s", text);
    ck_assert_uint_eq(count(text, "\"name\":\"process_name\""), 1);
    ck_assert_msg(strstr(text, "\"args\":{\"name\":\"#2 sender "
                               "test/test_trace.c:") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "\"args\":{\"name\":\"#1 main\"}") != NULL,
                  "%s", text);
    /* Each task ran, sat ready, and parked for what it waited on. */
    const char *want[] = {
        "\"tid\":1,", "\"tid\":2,", "\"cat\":\"running\",\"name\":\"running\"",
        "\"cat\":\"ready\",\"name\":\"ready\"",
        "\"cat\":\"parked\",\"name\":\"sleep\"",
        "\"cat\":\"parked\",\"name\":\"channel receive\"",
        "\"cat\":\"parked\",\"name\":\"join\"",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        ck_assert_msg(strstr(text, want[i]) != NULL, "no %s in:\n%s", want[i],
                      text);
    /* Running intervals carry the task's accounts so far. */
    ck_assert_msg(strstr(text, "\"args\":{\"runs\":1,\"ran_ms\":") &&
                      strstr(text, "\"args\":{\"runs\":2,\"ran_ms\":"),
                  "no accounts in:\n%s", text);
    /* The sleep lasted about its 10 ms: intervals carry real durations. */
    const char *sleep = strstr(text, "\"name\":\"sleep\"");
    while (sleep > text && strncmp(sleep, "\"dur\":", 6) != 0)
        sleep--;
    double dur = atof(sleep + 6);
    ck_assert_msg(dur >= 9000 && dur < 10000 + 200000 * test_slow(),
                  "sleep lasted %.0f us", dur);
    size_t events = count(text, "\"ph\":\"X\"");

    /* A second run goes on in the same file, as a second process. */
    run_expect(traced_main, NULL, 0);
    text = slurp(path);
    ck_assert_msg(json_valid(text), "not JSON after a second run:\n%s", text);
    ck_assert_uint_eq(count(text, "\"name\":\"process_name\""), 2);
    ck_assert_uint_eq(count(text, "\"ph\":\"X\""), 2 * events);
    ck_assert_ptr_nonnull(strstr(text, "\"pid\":2,"));

    unsetenv("CORO_TRACE");
    ck_assert_int_eq(coro_chan_free(chan), 0);
    unlink(path);
}
END_TEST

START_TEST(forked_child_leaves_the_parents_trace_alone)
{
    char path[] = "/tmp/coro-trace-XXXXXX";
    trace_to_a_new_file(path);
    run_expect(traced_main, NULL, 0);
    /* Nothing on the heap across the fork: under valgrind the child's own
     * leak check would count it. */
    unsigned long long before = text_hash(slurp(path));

    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(coro_run(traced_main, NULL, NULL));
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_uint_eq(text_hash(slurp(path)), before);

    run_expect(traced_main, NULL, 0); /* the parent goes on with it */
    const char *text = slurp(path);
    ck_assert_msg(json_valid(text), "%s", text);
    ck_assert_uint_eq(count(text, "\"name\":\"process_name\""), 2);
    unsetenv("CORO_TRACE");
    ck_assert_int_eq(coro_chan_free(chan), 0);
    unlink(path);
}
END_TEST

START_TEST(trace_to_an_unwritable_path_warns_and_runs)
{
    chan = coro_chan_new(sizeof(int), 0);
    ck_assert_ptr_nonnull(chan);
    setenv("CORO_TRACE", "/nonexistent-dir/trace.json", 1);
    stderr_capture();
    int err = coro_run(traced_main, NULL, NULL);
    char *text = stderr_captured();
    unsetenv("CORO_TRACE");
    ck_assert_int_eq(err, 0);
    ck_assert_msg(strstr(text, "CORO_TRACE: cannot write "
                               "/nonexistent-dir/trace.json") != NULL,
                  "%s", text);
    free(text);
    ck_assert_int_eq(coro_chan_free(chan), 0);
}
END_TEST

/* ---- accounting ---- */

static void spin(double seconds)
{
    double end = coro_now() + seconds;
    while (coro_now() < end)
        ;
}

/* Runs three times: started, then resumed twice; the second run spins
 * 20 ms, the others return at once. */
static void *three_runs(void *arg)
{
    (void)arg;
    int err = await_yield();
    if (!err) {
        spin(0.02);
        err = await_yield();
    }
    return err ? coro_fail(err) : NULL;
}

struct accounts {
    struct coro_task_info in;   /* of three_runs, once it ended */
    double                wall; /* how long it took, start to end */
    char                  dump[4096];
};

static void *accounts_main(void *arg)
{
    struct accounts *a = arg;
    coro_task *t = coro_spawn(three_runs, NULL);
    double t0 = coro_now();
    size_t done;
    int err = await_wait(&t, 1, CORO_ALL_COMPLETED, -1, &done);
    a->wall = coro_now() - t0;
    if (!err)
        err = coro_task_info(t, &a->in);
    FILE *f = fmemopen(a->dump, sizeof a->dump, "w");
    coro_dump(f);
    fclose(f);
    int joined = await_task(t, NULL);
    return err || joined ? coro_fail(err ? err : joined) : NULL;
}

START_TEST(accounting_counts_runs_time_and_the_longest)
{
    struct accounts a = { .wall = 0 };
    ck_assert_int_eq(coro_set_accounting(1), 0);
    run_expect(accounts_main, &a, 0);
    ck_assert_int_eq(coro_set_accounting(0), 1);
    ck_assert_uint_eq(a.in.runs, 3);
    ck_assert_msg(a.in.longest_run >= 0.02 &&
                      a.in.run_time >= a.in.longest_run &&
                      a.in.run_time <= a.wall,
                  "ran %.6f s, longest %.6f s, in %.6f s", a.in.run_time,
                  a.in.longest_run, a.wall);
    /* The two other runs are short. */
    ck_assert_msg(a.in.run_time < 1.5 * a.in.longest_run, "%.6f, %.6f",
                  a.in.run_time, a.in.longest_run);
    /* coro_dump shows them, from the same snapshot. */
    const char *line = strstr(a.dump, "three_runs");
    ck_assert_msg(line != NULL, "%s", a.dump);
    expect_report_line(line, "ended", "; ran ", " ms in 3 runs, longest ",
                       " ms", NULL);
}
END_TEST

START_TEST(accounting_is_off_unless_asked)
{
    struct accounts a = { .wall = 0 };
    run_expect(accounts_main, &a, 0);
    ck_assert_uint_eq(a.in.runs, 0);
    ck_assert(a.in.run_time == 0 && a.in.longest_run == 0);
    ck_assert_msg(strstr(a.dump, " ran ") == NULL, "%s", a.dump);
}
END_TEST

/* Turned on mid-run, accounting counts the caller's run from then on. */
static void *turns_accounting_on(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_set_accounting(1), 0);
    spin(0.01);
    struct coro_task_info in;
    ck_assert_int_eq(coro_task_info(coro_self(), &in), 0);
    ck_assert_uint_eq(in.runs, 1);
    ck_assert_msg(in.run_time >= 0.01 && in.longest_run >= 0.01,
                  "%.6f %.6f", in.run_time, in.longest_run);
    int err = await_yield();
    ck_assert_int_eq(coro_task_info(coro_self(), &in), 0);
    ck_assert_uint_eq(in.runs, 2);
    ck_assert_int_eq(coro_set_accounting(0), 1);
    return err ? coro_fail(err) : NULL;
}

START_TEST(accounting_turned_on_counts_from_then)
{
    run_expect(turns_accounting_on, NULL, 0);
    ck_assert_int_eq(coro_set_accounting(0), 0);
}
END_TEST

/* A task's times live in a block made at its first note: where that
 * memory cannot be had, the task's runs go uncounted (it is seen doing
 * nothing) and nothing else changes; once memory is back they count. */
static void *unobserved_for_a_while(void *arg)
{
    (void)arg; /* unnamed, in no group: it has no block yet */
    atomic_store(&coro__alloc_stats.fail_every, 1);
    ck_assert_int_eq(coro_set_accounting(1), 0);
    int err = await_yield(); /* runs again: the block cannot be made */
    atomic_store(&coro__alloc_stats.fail_every, 0);
    ck_assert_int_eq(err, 0);
    struct coro_task_info in;
    ck_assert_int_eq(coro_task_info(coro_self(), &in), 0);
    ck_assert_uint_eq(in.runs, 0);
    ck_assert(in.run_time == 0 && in.longest_run == 0);
    ck_assert_int_eq(await_yield(), 0);
    ck_assert_int_eq(coro_task_info(coro_self(), &in), 0);
    ck_assert_uint_eq(in.runs, 1);
    ck_assert_int_eq(coro_set_accounting(0), 1);
    return NULL;
}

static void *accounting_without_memory(void *arg)
{
    (void)arg;
    int err = await_task(coro_spawn(unobserved_for_a_while, NULL), NULL);
    return err ? coro_fail(err) : NULL;
}

START_TEST(accounting_without_memory_leaves_runs_uncounted)
{
    run_expect(accounting_without_memory, NULL, 0);
}
END_TEST

/* In a thread of its own: the setting a call made on this one (which
 * outranks the environment) stays this thread's. */
static void *run_in_fresh_thread(void *arg)
{
    return (void *)(intptr_t)coro_run(accounts_main, arg, NULL);
}

START_TEST(accounting_from_the_environment)
{
    struct accounts a = { .wall = 0 };
    setenv("CORO_ACCOUNTING", "1", 1);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, run_in_fresh_thread, &a), 0);
    void *err;
    ck_assert_int_eq(pthread_join(th, &err), 0);
    unsetenv("CORO_ACCOUNTING");
    ck_assert_int_eq((int)(intptr_t)err, 0);
    ck_assert_uint_eq(a.in.runs, 3);
    ck_assert(a.in.longest_run >= 0.02);
}
END_TEST

Suite *trace_suite(void)
{
    Suite *s = suite_create("trace");
    TCase *tc = test_case("trace", 10);
    tcase_add_test(tc, hook_sees_every_task_event);
    tcase_add_test(tc, json_checker_rejects_broken_json);
    tcase_add_test(tc, trace_file_holds_each_task_interval);
    tcase_add_test(tc, trace_to_an_unwritable_path_warns_and_runs);
    tcase_add_test(tc, forked_child_leaves_the_parents_trace_alone);
    suite_add_tcase(s, tc);
    tc = test_case("accounting", 10);
    tcase_add_test(tc, accounting_counts_runs_time_and_the_longest);
    tcase_add_test(tc, accounting_is_off_unless_asked);
    tcase_add_test(tc, accounting_turned_on_counts_from_then);
    tcase_add_test(tc, accounting_without_memory_leaves_runs_uncounted);
    tcase_add_test(tc, accounting_from_the_environment);
    suite_add_tcase(s, tc);
    return s;
}
