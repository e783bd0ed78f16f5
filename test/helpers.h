/* Test helpers shared by the Check suites. */
#ifndef CORO_TEST_HELPERS_H
#define CORO_TEST_HELPERS_H

#include <check.h>
#include <pthread.h>
#include <stddef.h>

#include "coro.h"

/* Suites, one per source file. */
Suite *coro_suite(void);
Suite *sched_suite(void);
Suite *timer_suite(void);
Suite *poll_suite(void);
Suite *executor_suite(void);
Suite *io_suite(void);
Suite *net_suite(void);
Suite *http_suite(void);
Suite *sync_suite(void);
Suite *demos_suite(void);
Suite *debug_suite(void);
Suite *trace_suite(void);
Suite *overflow_suite(void);
Suite *waits_suite(void);
Suite *join_suite(void);
Suite *group_suite(void);
Suite *scope_suite(void);
Suite *inspect_suite(void);
Suite *local_suite(void);
Suite *loops_suite(void);
Suite *watchdog_suite(void);
Suite *loop_suite(void);
Suite *future_suite(void);
Suite *xchan_suite(void);
Suite *run_loops_suite(void);
Suite *chores_suite(void);
Suite *uring_suite(void);
Suite *hook_suite(void); /* its own runner: test/hook_main.c */

/* How much slower than native this run is (CORO_TEST_SLOW, default 1):
 * valgrind and the sanitizers widen every timing margin by it. */
double test_slow(void);

/* Whether Check runs each test in a child process; tests that expect a
 * signal are skipped without one. */
int test_forking(void);

/* An order trace: tasks append short tokens, tests compare the string. */
void        trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *trace_get(void);
void        trace_reset(void);

/* Every test ends with nothing allocated by coro: no heap block, no stack
 * mapping. Added as a checked fixture to every TCase. */
void test_setup(void);
void test_no_leaks(void);
TCase *test_case(const char *name, double timeout);

/* Runs fn under coro_run and asserts it returned want. */
void run_expect(coro_fn fn, void *arg, int want);

/* Sends what the process writes to stderr (fd 2) to a temporary file
 * until stderr_captured, which restores it and returns what was written
 * (malloc'd: free it). Assert on the text after stderr_captured; if an
 * assertion fails in between, the test's teardown (test_case) restores
 * stderr and shows what was captured. */
void  stderr_capture(void);
char *stderr_captured(void);

/* Runs fn under coro_run with stderr captured, asserts it returned want,
 * and returns what it wrote to stderr (malloc'd: free it): for programs
 * that report on purpose, such as a deadlock. */
char *run_reporting(coro_fn fn, void *arg, int want);

/* Asserts that a line of text holds each string of the NULL-terminated
 * list, in that order. */
void expect_report_line(const char *text, ...) __attribute__((sentinel));

/* Asserts that text is coro_run's deadlock report and nothing else: the
 * line saying so, then a dump of tasks lines, one per task (check those
 * with expect_report_line). */
void expect_deadlock_report(const char *text, int tasks);

/* Runs body(arg) in a child process with its stderr sent to a pipe; the
 * child exits with what body returns. Returns what the child wrote to
 * stderr (malloc'd: free it) and its wait status in *status. For programs
 * that crash or leave things behind on purpose. */
char *run_in_child(int (*body)(void *), void *arg, int *status);

/* Writes byte over the first size bytes of frame, out of the compiler's
 * sight: an array whose address is handed here exists in full on the stack
 * and holds what was written, whatever the optimiser would drop otherwise.
 * For tests that need deep frames. */
void frame_fill(void *frame, int byte, size_t size);

/* A task (spawn it with CORO_SHARED_STACK) that writes junk over the
 * shared stack, then sleeps a millisecond, over and over, from
 * test_scribbling_start until test_scribbling_stop: a wait whose parked
 * task kept anything on that stack shows as a wrong result or a crash. */
void *test_scribbler(void *arg);
void  test_scribbling_start(void);
void  test_scribbling_stop(void);

/* Small task bodies that test_sched.c and test_join.c both spawn (the
 * scheduler's tests and join.c's need the same children).
 * return_arg returns its argument; record_sleep sleeps a minute, traces
 * "child <error>" and returns its argument; test_nap sleeps
 * n->seconds, traces n->token, and returns the sleep's error, else
 * n->error, else the token as a pointer. */
struct test_nap {
    double   seconds;
    int      error;  /* coro_fail with this after the nap, if not 0 */
    unsigned token;
};
void *return_arg(void *arg);
void *record_sleep(void *arg);
void *test_nap(void *arg); /* arg: a struct test_nap */

/* Joins th as pthread_join does, but waits at most seconds times
 * test_slow(): 0, or ETIMEDOUT with the thread left running (so what it
 * touches must outlive the test: make it static). Calls no ck_assert.
 * For every join a failing test could hang on: in Check's no-fork mode
 * (valgrind) no timeout ends a test. */
int test_join(pthread_t th, void **ret, double seconds);

/* CPU time (user + system) of this process, in seconds. */
double cpu_seconds(void);

/* A loop running on a thread of its own until side_loop_stop, for tests
 * that cross threads. Its main holds a reference to the loop (loop,
 * valid until side_loop_stop) and waits for the stop; thread is the
 * loop's thread. side_loop_stop returns what its coro_run did, or why it
 * could not stop it: the post's error, or ETIMEDOUT when the loop has not
 * ended within 30 s (times test_slow()), the thread left running. It
 * calls no ck_assert, so any thread may call it. The struct must be
 * static: a test that fails leaves the loop's thread running on it. */
struct side_loop {
    pthread_t       th;
    pthread_t       thread;
    coro_loop      *loop;
    coro_event     *stop;
    pthread_mutex_t lock;
    pthread_cond_t  up;
    int             ended;  /* coro_run returned (lock) */
    int             err;
};
void side_loop_start(struct side_loop *s);
int  side_loop_stop(struct side_loop *s);

/* A task of another thread's loop, for the calls that must refuse it: a
 * side loop started, and on it a task that sleeps until cancelled (its
 * future in *f). foreign_task_stop cancels it, waits for its end (from a
 * task of any loop, or a plain thread) and stops the side loop. */
coro_task *foreign_task_start(struct side_loop *s, coro_future **f);
void       foreign_task_stop(struct side_loop *s, coro_future *f);

#endif
