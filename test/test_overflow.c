/* overflow.c: a task that runs off its stack is named before the process
 * aborts; any other fault goes where it went before. Each case runs in a
 * child process of its own. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* Recurses until the stack runs out (the limit is never reached). */
static volatile int dive_limit = 1 << 30;

static __attribute__((noinline)) int dive(int depth)
{
    char frame[512];
    frame_fill(frame, depth, sizeof frame);
    if (depth >= dive_limit)
        return 0;
    return dive(depth + 1) + frame[0];
}

static void *diver(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)dive(0);
}

/* Touches memory far below its stack at once, past the guard page: only
 * the frame's lowest byte, or the call's return address below it. */
static __attribute__((noinline)) int leap(void)
{
    char frame[48 << 10];
    frame_fill(frame, 1, 1);
    return frame[0];
}

static void *leaper(void *arg)
{
    (void)arg;
    char fill[30 << 10]; /* most of a 32 KiB stack */
    frame_fill(fill, 1, sizeof fill);
    return (void *)(intptr_t)(leap() + fill[0]);
}

/* Writes to a page nobody may touch: a fault that is no overflow. */
static void *stray_writer(void *arg)
{
    (void)arg;
    volatile int *nowhere = mmap(NULL, 4096, PROT_NONE,
                                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (nowhere != MAP_FAILED)
        *nowhere = 1;
    return NULL;
}

static int shared_flag;
static coro_fn child_fn;
static const char *child_name;

static void *child_main(void *arg)
{
    (void)arg;
    coro_attr attr = { .stack_size = 32 << 10, .name = child_name,
                       .flags = shared_flag ? CORO_SHARED_STACK : 0 };
    coro_task *t = coro_spawn_attr(&attr, child_fn, NULL);
    if (!t)
        return coro_fail(errno);
    int err = await_task(t, NULL);
    return err ? coro_fail(err) : NULL;
}

static void users_handler(int signo)
{
    (void)signo;
    static const char msg[] = "the user's own handler\n";
    ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)n;
    _exit(42);
}

static void (*child_handler)(int);

static int crash_run(void *arg)
{
    (void)arg;
    if (child_handler)
        signal(SIGSEGV, child_handler);
    signal(SIGABRT, SIG_DFL);
    return coro_run(child_main, NULL, NULL) == 0 ? 0 : 3;
}

/* Runs fn as a task (named name; on the shared stack if shared) under
 * coro_run in a child; returns its stderr (malloc'd) and wait status. */
static char *crash_in_child(coro_fn fn, const char *name, int shared,
                            void (*handler)(int), int *status)
{
    child_fn = fn;
    child_name = name;
    shared_flag = shared;
    child_handler = handler;
    return run_in_child(crash_run, NULL, status);
}

static void expect_named_abort(const char *text, int status, const char *what)
{
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "status %#x:\n%s", status, text);
    ck_assert_msg(strstr(text, what) != NULL, "\"%s\" not in:\n%s", what,
                  text);
    ck_assert_msg(strstr(text, "CORO_STACK_SIZE") != NULL, "%s", text);
}

START_TEST(overflow_names_the_task_and_aborts)
{
    int status;
    char *text = crash_in_child(diver, "deep diver", 0, NULL, &status);
    expect_named_abort(text, status, "coro: task #2 \"deep diver\" ("
                                     "test/test_overflow.c:");
    ck_assert_msg(strstr(text, ") overflowed its 32 KiB stack;") != NULL,
                  "%s", text);
    free(text);
}
END_TEST

START_TEST(overflow_past_the_guard_page_is_named_too)
{
    int status;
    char *text = crash_in_child(leaper, "leaper", 0, NULL, &status);
    expect_named_abort(text, status, "\"leaper\"");
    free(text);
}
END_TEST

START_TEST(overflow_of_the_shared_stack_is_named)
{
    int status;
    char *text = crash_in_child(diver, "shared diver", 1, NULL, &status);
    expect_named_abort(text, status, "\"shared diver\"");
    ck_assert_msg(strstr(text, "KiB shared stack;") != NULL, "%s", text);
    free(text);
}
END_TEST

START_TEST(other_faults_get_the_default_action)
{
    int status;
    char *text = crash_in_child(stray_writer, "stray", 0, NULL, &status);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* The sanitizer's handler was there first: it gets the fault. */
    ck_assert_msg(strstr(text, "SEGV on unknown address") != NULL, "%s", text);
#else
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
                  "status %#x:\n%s", status, text);
#endif
    ck_assert_msg(strstr(text, "overflowed") == NULL, "%s", text);
    free(text);
}
END_TEST

START_TEST(other_faults_reach_the_users_handler)
{
    int status;
    char *text = crash_in_child(stray_writer, "stray", 0, users_handler,
                                &status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 42,
                  "status %#x:\n%s", status, text);
    ck_assert_msg(strstr(text, "the user's own handler") != NULL, "%s", text);
    free(text);
}
END_TEST

Suite *overflow_suite(void)
{
    Suite *s = suite_create("overflow");
    TCase *tc = test_case("overflow", 20);
    /* Under valgrind (CK_FORK=no) a stack overflow is valgrind's to
     * report; the children here would only repeat it. */
    if (test_forking()) {
        tcase_add_test(tc, overflow_names_the_task_and_aborts);
        tcase_add_test(tc, overflow_past_the_guard_page_is_named_too);
        tcase_add_test(tc, overflow_of_the_shared_stack_is_named);
        tcase_add_test(tc, other_faults_get_the_default_action);
        tcase_add_test(tc, other_faults_reach_the_users_handler);
    }
    suite_add_tcase(s, tc);
    return s;
}
