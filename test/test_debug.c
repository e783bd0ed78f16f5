/* debug.c: coro_dump's line for each state, stack high-water marks, the
 * deadlock report, the dump on SIGQUIT, and CORO_DEBUG's warnings. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* ---- coro_dump: one line per task, each state in words ---- */

static int wake_pipe[2];  /* the reader waits on its read end */
static int block_pipe[2]; /* the blocking call reads its read end */
static coro_chan *chan;
static coro_mutex *mutex;

static void *sleeper(void *arg)
{
    (void)arg;
    int err = await_sleep(30);
    return err ? coro_fail(err) : NULL;
}

static void *joiner(void *arg)
{
    int err = await_task(arg, NULL);
    return err ? coro_fail(err) : NULL;
}

static void *gatherer(void *arg)
{
    coro_task *t = arg;
    int err = await_gather(&t, 1, NULL, NULL);
    return err ? coro_fail(err) : NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    int err = await_readable(wake_pipe[0], -1);
    return err ? coro_fail(err) : NULL;
}

static void *read_a_byte(void *arg)
{
    (void)arg;
    char c;
    ssize_t n = read(block_pipe[0], &c, 1);
    return (void *)(intptr_t)n;
}

static void *blocker(void *arg)
{
    (void)arg;
    int err = await_blocking(read_a_byte, NULL, NULL);
    return err ? coro_fail(err) : NULL;
}

static void *receiver(void *arg)
{
    (void)arg;
    int x;
    int err = await_chan_recv(chan, &x, -1);
    return err ? coro_fail(err) : NULL;
}

static void *locker(void *arg)
{
    (void)arg;
    int err = await_mutex_lock(mutex, -1);
    if (!err)
        coro_mutex_unlock(mutex);
    return err ? coro_fail(err) : NULL;
}

static coro_event *event;

static void *event_waiter(void *arg)
{
    (void)arg;
    int err = await_event(event, -1);
    return err ? coro_fail(err) : NULL;
}

static void *quitter(void *arg)
{
    (void)arg;
    return NULL;
}

static void *failer(void *arg)
{
    (void)arg;
    return coro_fail(EIO);
}

/* The line of the task named name, as a string of its own. */
static const char *line_of(const char *dump, const char *name, char *buf,
                           size_t cap)
{
    char key[40];
    snprintf(key, sizeof key, " %-18s ", name);
    const char *at = strstr(dump, key);
    ck_assert_msg(at != NULL, "no line for %s in:\n%s", name, dump);
    const char *start = at;
    while (start > dump && start[-1] != '\n')
        start--;
    const char *end = strchr(at, '\n');
    size_t len = end ? (size_t)(end - start) : strlen(start);
    ck_assert_uint_lt(len, cap);
    memcpy(buf, start, len);
    buf[len] = '\0';
    return buf;
}

static void expect_line(const char *dump, const char *name, const char *want)
{
    char line[512];
    line_of(dump, name, line, sizeof line);
    ck_assert_msg(strstr(line, want) != NULL, "\"%s\" not in: %s", want,
                  line);
}

static void *dump_main(void *arg)
{
    char **out = arg;
    ck_assert_int_eq(await_mutex_lock(mutex, -1), 0);
    coro_task *sleepy = coro_spawn(sleeper, NULL);
    coro_task *napper = coro_spawn(sleeper, NULL);
    coro_task *t[] = {
        sleepy,
        napper,
        coro_spawn(joiner, sleepy),
        coro_spawn(gatherer, napper),
        coro_spawn(reader, NULL),
        coro_spawn(blocker, NULL),
        coro_spawn(receiver, NULL),
        coro_spawn(locker, NULL),
        coro_spawn(quitter, NULL),
        coro_spawn(failer, NULL),
        NULL,
    };
    coro_task *ew = coro_spawn(event_waiter, NULL);
    ck_assert_int_eq(await_sleep(0.02), 0); /* all of them get going */
    t[10] = coro_spawn(quitter, NULL);      /* and one that has not */
    for (size_t i = 0; i < 11; i++)
        ck_assert_ptr_nonnull(t[i]);

    size_t len;
    FILE *f = open_memstream(out, &len);
    ck_assert_ptr_nonnull(f);
    coro_dump(f);
    fclose(f);

    /* Undo it all. */
    ck_assert_int_eq(coro_mutex_unlock(mutex), 0);
    ck_assert_int_eq(write(wake_pipe[1], "x", 1), 1);
    ck_assert_int_eq(write(block_pipe[1], "x", 1), 1);
    ck_assert_int_eq(coro_chan_close(chan), 0);
    coro_cancel(sleepy);
    coro_cancel(napper);
    await_gather(t, 11, NULL, NULL);
    coro_event_set(event);
    ck_assert_int_eq(await_task(ew, NULL), 0);
    return NULL;
}

START_TEST(dump_names_each_state)
{
    ck_assert_int_eq(pipe(wake_pipe), 0);
    ck_assert_int_eq(pipe(block_pipe), 0);
    chan = coro_chan_new(sizeof(int), 0);
    mutex = coro_mutex_new();
    event = coro_event_new();
    ck_assert_ptr_nonnull(chan);
    ck_assert_ptr_nonnull(mutex);
    ck_assert_ptr_nonnull(event);
    char *dump = NULL;
    run_expect(dump_main, &dump, 0);
    ck_assert_ptr_nonnull(dump);

    ck_assert_msg(strncmp(dump, "coro: 13 tasks in this thread's loop:\n",
                          38) == 0, "%s", dump);
    char want[64];
    expect_line(dump, "main", "running");
    expect_line(dump, "main", "#1 ");
    expect_line(dump, "sleeper", "sleeping, 29."); /* of 30 s */
    expect_line(dump, "sleeper", "s to go, for 0.0");
    expect_line(dump, "joiner", "joining task #2 (sleeper)");
    expect_line(dump, "gatherer", "gathering 1 task, 1 not ended");
    snprintf(want, sizeof want, "waiting to read fd %d", wake_pipe[0]);
    expect_line(dump, "reader", want);
    expect_line(dump, "blocker", "in a blocking call on a worker thread");
    expect_line(dump, "receiver", "on a channel receive");
    expect_line(dump, "event_waiter", "on an event (");
    expect_line(dump, "locker", "held by task #1");
    expect_line(dump, "quitter", "ended, not yet joined, for");
    expect_line(dump, "failer", "ended, not yet joined: Input/output error");
    expect_line(dump, "joiner", "from test/test_debug.c:");
    expect_line(dump, "joiner", "stack 64K, used ");
    /* In spawn order: the last one spawned has not run yet. */
    const char *last = strrchr(dump, '#');
    ck_assert_ptr_nonnull(last);
    ck_assert_msg(strncmp(last, "#13 ", 4) == 0 && strstr(last, " ready"),
                  "%s", dump);

    free(dump);
    ck_assert_int_eq(coro_chan_free(chan), 0);
    ck_assert_int_eq(coro_mutex_free(mutex), 0);
    ck_assert_int_eq(coro_event_free(event), 0);
    for (int i = 0; i < 2; i++) {
        close(wake_pipe[i]);
        close(block_pipe[i]);
    }
}
END_TEST

START_TEST(dump_outside_a_loop_writes_nothing)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    coro_dump(f);
    coro_dump(NULL);
    fclose(f);
    ck_assert_uint_eq(len, 0);
    free(text);
}
END_TEST

static void *dump_null_main(void *arg)
{
    (void)arg;
    coro_dump(NULL);
    return NULL;
}

/* In a loop, a NULL stream writes nowhere, not to stderr. */
START_TEST(dump_to_no_stream_in_a_loop_writes_nothing)
{
    char *text = run_reporting(dump_null_main, NULL, 0);
    ck_assert_str_eq(text, "");
    free(text);
}
END_TEST

/* ---- stack high-water marks ---- */

/* Parks with about 24 KiB of its stack in use. */
static __attribute__((noinline)) int deep_park(void)
{
    char frame[24 << 10];
    frame_fill(frame, 1, sizeof frame);
    int err = await_sleep(30);
    return err + frame[100];
}

static void *deep(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)deep_park();
}

static void *high_water_main(void *arg)
{
    (void)arg;
    ck_assert_uint_eq(coro_stack_high_water(NULL), 0);
    coro_attr shared = { .flags = CORO_SHARED_STACK };
    coro_task *own = coro_spawn(deep, NULL);
    coro_task *flat = coro_spawn_attr(&shared, deep, NULL);
    ck_assert_int_eq(await_sleep(0.01), 0);
    size_t own_hw = coro_stack_high_water(own);
    size_t flat_hw = coro_stack_high_water(flat);
    ck_assert_uint_ge(own_hw, 24 << 10);
    ck_assert_uint_le(own_hw, 64 << 10);
    ck_assert_uint_ge(flat_hw, 24 << 10);
    ck_assert_uint_le(flat_hw, 256 << 10);
    size_t mine = coro_stack_high_water(coro_self());
    ck_assert_uint_gt(mine, 0);
    coro_cancel(own);
    coro_cancel(flat);
    coro_task *both[] = { own, flat };
    await_gather(both, 2, NULL, NULL);
    return NULL;
}

START_TEST(high_water_covers_the_deepest_frames)
{
    run_expect(high_water_main, NULL, 0);
}
END_TEST

/* A task of another thread's loop: its stack is that thread's, scanned
 * while it runs there (and unmapped if the task ends meanwhile). */
static void *foreign_high_water_main(void *arg)
{
    (void)arg;
    struct side_loop s;
    coro_future *f;
    coro_task *t = foreign_task_start(&s, &f);
    ck_assert_uint_eq(coro_stack_high_water(t), 0);
    foreign_task_stop(&s, f);
    return NULL;
}

START_TEST(high_water_of_another_loops_task_is_zero)
{
    run_expect(foreign_high_water_main, NULL, 0);
    struct side_loop s;
    coro_future *f;
    coro_task *t = foreign_task_start(&s, &f);
    ck_assert_uint_eq(coro_stack_high_water(t), 0); /* no loop here */
    foreign_task_stop(&s, f);
}
END_TEST

/* ---- the deadlock report ---- */

static void *deadlock_main(void *arg)
{
    (void)arg;
    int err = await_task(coro_spawn(receiver, NULL), NULL);
    return err ? coro_fail(err) : NULL;
}

START_TEST(deadlock_report_names_who_waits_on_whom)
{
    chan = coro_chan_new(sizeof(int), 0);
    ck_assert_ptr_nonnull(chan);
    stderr_capture();
    int err = coro_run(deadlock_main, NULL, NULL);
    char *text = stderr_captured();
    ck_assert_int_eq(err, EDEADLK);
    expect_deadlock_report(text, 2);
    expect_report_line(text, "#1 ", " main ", "joining task #2 (receiver)",
                       NULL);
    expect_report_line(text, "#2 ", " receiver ", "on a channel receive",
                       "from test/test_debug.c:", NULL);
    free(text);
    ck_assert_int_eq(coro_chan_free(chan), 0);
}
END_TEST

/* ---- the dump on SIGQUIT ---- */

static void *sigquit_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_dump_on_sigquit(1), 0);
    ck_assert_int_eq(coro_dump_on_sigquit(1), 0); /* twice is once */
    coro_task *t = coro_spawn(sleeper, NULL);
    ck_assert_int_eq(await_yield(), 0);
    ck_assert_int_eq(raise(SIGQUIT), 0);
    ck_assert_int_eq(await_sleep(0.05), 0); /* the loop reads the pipe */
    coro_cancel(t);
    await_task(t, NULL);
    return NULL;
}

START_TEST(sigquit_prints_the_dump_when_asked)
{
    ck_assert_int_eq(coro_dump_on_sigquit(1), EPERM); /* outside a loop */
    stderr_capture();
    int err = coro_run(sigquit_main, NULL, NULL);
    char *text = stderr_captured();
    ck_assert_int_eq(err, 0);
    ck_assert_msg(strstr(text, "coro: SIGQUIT\ncoro: 2 tasks") != NULL, "%s",
                  text);
    ck_assert_msg(strstr(text, " sleeper            sleeping, ") != NULL,
                  "%s", text);
    free(text);
}
END_TEST

/* The child's program: warnings_main with CORO_DEBUG set or not. The
 * programs here leave a mutex locked on purpose, hence the child. */
static coro_fn debug_fn;

static int debug_run(void *debug)
{
    if (debug)
        setenv("CORO_DEBUG", "1", 1);
    else
        unsetenv("CORO_DEBUG");
    return coro_run(debug_fn, NULL, NULL);
}

static char *run_debug_child(coro_fn fn, int debug, int *status)
{
    debug_fn = fn;
    return run_in_child(debug_run, debug ? "on" : NULL, status);
}

static void *holder(void *arg)
{
    (void)arg;
    ck_assert_int_eq(await_mutex_lock(mutex, -1), 0);
    return NULL; /* and never unlocks */
}

static void *hog(void *arg)
{
    (void)arg;
    double until = coro_now() + 0.25;
    while (coro_now() < until)
        ;
    return NULL;
}

static void *warnings_main(void *arg)
{
    (void)arg;
    mutex = coro_mutex_new();
    ck_assert_ptr_nonnull(mutex);
    coro_spawn(failer, NULL);  /* fails, and nobody joins it */
    coro_spawn(sleeper, NULL); /* still alive when main returns */
    coro_task *t[] = { coro_spawn(hog, NULL), coro_spawn(holder, NULL) };
    await_gather(t, 2, NULL, NULL);
    return NULL;
}

START_TEST(debug_mode_warns_naming_task_and_site)
{
    int status;
    char *text = run_debug_child(warnings_main, 1, &status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", text);
    const char *want[] = {
        "task #4 \"hog\" (test/test_debug.c:",
        "without suspending; the others waited",
        "task #5 \"holder\" (test/test_debug.c:",
        "ended holding 1 mutex; nobody can unlock them",
        "main returned with 1 task still alive; cancelling",
        "task #3 \"sleeper\" (test/test_debug.c:",
        "task #2 \"failer\" (test/test_debug.c:",
        "failed (Input/output error) and nobody joined it",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        ck_assert_msg(strstr(text, want[i]) != NULL, "\"%s\" not in:\n%s",
                      want[i], text);
    free(text);
}
END_TEST

START_TEST(debug_mode_is_off_by_default)
{
    int status;
    char *text = run_debug_child(warnings_main, 0, &status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", text);
    ck_assert_msg(strstr(text, "warning") == NULL, "%s", text);
    free(text);
}
END_TEST

/* With no loop asking for it, SIGQUIT does what it always did. */
START_TEST(sigquit_unwatched_kills_as_before)
{
    stderr_capture();
    coro_run(sigquit_main, NULL, NULL); /* installs the handler, then off */
    char *text = stderr_captured();
    static const char dump[] = "coro: SIGQUIT\ncoro: 2 tasks";
    ck_assert_msg(strncmp(text, dump, sizeof dump - 1) == 0, "%s", text);
    free(text);
    raise(SIGQUIT);
}
END_TEST

Suite *debug_suite(void)
{
    Suite *s = suite_create("debug");
    TCase *tc = test_case("debug", 10);
    tcase_add_test(tc, dump_names_each_state);
    tcase_add_test(tc, dump_outside_a_loop_writes_nothing);
    tcase_add_test(tc, dump_to_no_stream_in_a_loop_writes_nothing);
    tcase_add_test(tc, high_water_covers_the_deepest_frames);
    tcase_add_test(tc, high_water_of_another_loops_task_is_zero);
    tcase_add_test(tc, deadlock_report_names_who_waits_on_whom);
    tcase_add_test(tc, sigquit_prints_the_dump_when_asked);
    tcase_add_test(tc, debug_mode_warns_naming_task_and_site);
    tcase_add_test(tc, debug_mode_is_off_by_default);
    suite_add_tcase(s, tc);
    if (test_forking()) {
        TCase *sig = tcase_create("sigquit");
        tcase_add_test_raise_signal(sig, sigquit_unwatched_kills_as_before,
                                    SIGQUIT);
        suite_add_tcase(s, sig);
    }
    return s;
}
