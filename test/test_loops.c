/* loops.c: every running loop is in the process's list, with its thread,
 * for gdb and the watchdog; an ended one is not. White-box: reads the
 * list. */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

static size_t loops_listed(void)
{
    size_t n = 0;
    pthread_mutex_lock(&coro__loops_lock);
    for (struct coro__link *k = coro__loops.head; k; k = k->next)
        n++;
    pthread_mutex_unlock(&coro__loops_lock);
    return n;
}

static int listed(const struct coro__loop *l)
{
    int found = 0;
    pthread_mutex_lock(&coro__loops_lock);
    for (struct coro__link *k = coro__loops.head; k; k = k->next)
        found |= CORO__ENTRY(k, struct coro__loop, loops_link) == l;
    pthread_mutex_unlock(&coro__loops_lock);
    return found;
}

/* The loop running this task is listed, with this thread: 0, or the
 * line of the check that failed. No ck_assert: it runs on a worker thread
 * too, where in Check's no-fork mode (valgrind's) a failure would jump
 * into the test's thread. */
static void *inner_main(void *arg)
{
    struct coro__loop *l = coro__loop();
    *(size_t *)arg = loops_listed();
    if (!listed(l))
        return (void *)(intptr_t)__LINE__;
    if (l->tid != gettid())
        return (void *)(intptr_t)__LINE__;
    if (!pthread_equal(l->thread, pthread_self()))
        return (void *)(intptr_t)__LINE__;
    return NULL;
}

/* A second loop, on a worker thread, while the first runs: coro_run's
 * error, else inner_main's line. */
static void *nested_run(void *arg)
{
    void *failed_at = NULL;
    int err = coro_run(inner_main, arg, &failed_at);
    return err ? (void *)(intptr_t)err : failed_at;
}

static void *outer_main(void *arg)
{
    size_t *seen = arg;
    ck_assert_ptr_null(inner_main(&seen[0]));
    void *err;
    int e = await_blocking(nested_run, &seen[1], &err);
    ck_assert_int_eq(e, 0);
    ck_assert_ptr_null(err);
    return NULL;
}

START_TEST(running_loops_are_listed_with_their_threads)
{
    size_t seen[2] = { 0, 0 };
    size_t before = loops_listed();
    run_expect(outer_main, seen, 0);
    ck_assert_uint_eq(seen[0], before + 1);
    ck_assert_uint_eq(seen[1], before + 2); /* both at once */
    ck_assert_uint_eq(loops_listed(), before);
}
END_TEST

/* A child forked in a task runs none of its parent's loops: its list is
 * empty, though the watchdog's thread ran in the parent as it forked. */
static void *forks(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_set_watchdog(10), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(loops_listed() == 0 ? 0 : 1);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_eq(coro_set_watchdog(0), 0);
    return NULL;
}

START_TEST(a_forked_child_lists_no_loop)
{
    run_expect(forks, NULL, 0);
}
END_TEST

Suite *loops_suite(void)
{
    Suite *s = suite_create("loops");
    TCase *tc = test_case("loops", 10);
    tcase_add_test(tc, running_loops_are_listed_with_their_threads);
    tcase_add_test(tc, a_forked_child_lists_no_loop);
    suite_add_tcase(s, tc);
    return s;
}
