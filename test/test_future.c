/* Coroutines submitted to another loop and their futures (future.c):
 * where the task runs, results and coro_fail errors crossing back, a task
 * of another loop waiting without blocking its thread, a plain thread
 * blocking, cancellation from the waiting side (cancel, timeout) and from
 * the task's own loop (a cancel there, the loop ending), bad input, and a
 * churn of many threads.
 *
 * What a side loop's thread touches is static, not on a test's stack: in
 * Check's no-fork mode (valgrind) a failed assertion leaves the test at
 * once while that thread runs on, and its writes into a dead frame would
 * end the run with "stack smashing detected", the failure unsaid. For the
 * same mode, other threads and loops call no ck_assert (a failure there
 * would jump into the test's thread; even a passing check writes to a
 * stream the test's end closes): they record what they saw, and the test
 * asserts it after the join, a join bounded as every wait is that such a
 * thread answers (no-fork mode has no timeout). */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"
#include "internal.h"

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* What a submitted task saw and did. */
struct job {
    pthread_t   thread;     /* where it ran */
    coro_loop  *loop;       /* coro_loop_current() there */
    double      sleep;      /* how long it sleeps (< 0: until cancelled) */
    int         fail;       /* coro_fail this, if non-zero */
    int         sleep_err;  /* what its sleep returned */
    double      cleanup;    /* shielded clean-up after a cancellation */
    atomic_int  ended;
};

static void *job_fn(void *arg)
{
    struct job *j = arg;
    j->thread = pthread_self();
    j->loop = coro_loop_current();
    j->sleep_err = await_sleep(j->sleep < 0 ? 1e9 : j->sleep);
    if (j->sleep_err == ECANCELED && j->cleanup > 0) {
        int old = coro_shield(1);
        await_sleep(j->cleanup);
        coro_shield(old);
    }
    atomic_store(&j->ended, 1);
    if (j->fail)
        return coro_fail(j->fail);
    return j;
}

/* ---------------------------------------------------------------------
 * Results crossing back
 * --------------------------------------------------------------------- */

struct across {
    struct side_loop side;
    struct job       job;
    int              err;
    void            *result;
    int              ticks;     /* the waiting loop's other task ran */
    int              stop_ticking;
};

static void *ticker(void *arg)
{
    struct across *a = arg;
    while (!a->stop_ticking) {
        a->ticks++;
        await_sleep(0.001);
    }
    return NULL;
}

static void *await_main(void *arg)
{
    struct across *a = arg;
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(a->side.loop, job_fn, &a->job, &f), 0);
    coro_task *t = coro_spawn(ticker, a);
    a->err = await_future(f, -1, &a->result);
    a->stop_ticking = 1;
    ck_assert_int_eq(await_task(t, NULL), 0);
    return NULL;
}

START_TEST(a_submitted_task_runs_on_its_loop_and_its_result_comes_back)
{
    static struct across a; /* static: its thread never outlives it */
    /* long enough for the waiting loop's ticker, whatever the slowdown */
    a = (struct across){ .job.sleep = 0.05 * test_slow() };
    side_loop_start(&a.side);
    run_expect(await_main, &a, 0);
    ck_assert_int_eq(side_loop_stop(&a.side), 0);
    ck_assert_int_eq(a.err, 0);
    ck_assert_ptr_eq(a.result, &a.job);
    ck_assert(pthread_equal(a.job.thread, a.side.thread));
    ck_assert_ptr_eq(a.job.loop, a.side.loop);
    /* The waiting loop ran its other task all along: its thread was not
     * blocked. 50 ms of 1 ms sleeps: at least a few. */
    ck_assert_int_ge(a.ticks, 5);
}
END_TEST

START_TEST(a_coro_fail_error_comes_back)
{
    static struct across a;
    a = (struct across){ .job.sleep = 0, .job.fail = EIO };
    a.result = &a;
    side_loop_start(&a.side);
    run_expect(await_main, &a, 0);
    ck_assert_int_eq(side_loop_stop(&a.side), 0);
    ck_assert_int_eq(a.err, EIO);
    ck_assert_ptr_null(a.result);
}
END_TEST

/* A plain thread submits, a task of another loop waits: three threads. */
struct third {
    struct side_loop side;
    struct job       job;
    coro_future     *f;
    int              err;
    void            *result;
};

static void *third_main(void *arg)
{
    struct third *t = arg;
    t->err = await_future(t->f, -1, &t->result);
    return NULL;
}

START_TEST(a_task_of_a_third_loop_awaits_a_plain_threads_submission)
{
    static struct third t;
    t = (struct third){ .job.sleep = 0.01 };
    side_loop_start(&t.side);
    ck_assert_int_eq(coro_loop_submit(t.side.loop, job_fn, &t.job, &t.f), 0);
    run_expect(third_main, &t, 0);
    ck_assert_int_eq(side_loop_stop(&t.side), 0);
    ck_assert_int_eq(t.err, 0);
    ck_assert_ptr_eq(t.result, &t.job);
}
END_TEST

START_TEST(a_plain_thread_blocks_on_a_result)
{
    static struct side_loop side;
    static struct job job;
    job = (struct job){ .sleep = 0.02 };
    side_loop_start(&side);
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(side.loop, job_fn, &job, &f), 0);
    void *result = NULL;
    ck_assert_int_eq(coro_future_wait(f, -1, &result), 0);
    ck_assert_ptr_eq(result, &job);
    ck_assert_int_eq(atomic_load(&job.ended), 1);

    static struct job failing;
    failing = (struct job){ .fail = ENOENT };
    ck_assert_int_eq(coro_loop_submit(side.loop, job_fn, &failing, &f), 0);
    ck_assert_int_eq(coro_future_wait(f, 10 * test_slow(), &result), ENOENT);
    ck_assert_int_eq(side_loop_stop(&side), 0);
}
END_TEST

/* Submitted to the submitter's own loop: it runs there, and the wait
 * parks as for any other. */
static void *own_main(void *arg)
{
    struct job *j = arg;
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(coro_loop_current(), job_fn, j, &f),
                     0);
    void *result;
    ck_assert_int_eq(await_future(f, -1, &result), 0);
    ck_assert_ptr_eq(result, j);
    ck_assert(pthread_equal(j->thread, pthread_self()));
    return NULL;
}

START_TEST(a_task_submitted_to_its_own_loop)
{
    struct job j = { .sleep = 0.001 };
    run_expect(own_main, &j, 0);
}
END_TEST

/* Submitted to its own loop, a task that waits for what never comes,
 * awaited by main: only this loop's tasks could end it, and none can, so
 * the loop is deadlocked (as two tasks joining each other are), not
 * asleep for ever on a future. */
static void *waits_for_ever(void *arg)
{
    coro_event *ev = arg;
    int err = await_event(ev, -1);
    return err ? coro_fail(err) : NULL;
}

static void *own_deadlock_main(void *arg)
{
    coro_event *ev = arg;
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(coro_loop_current(), waits_for_ever,
                                      ev, &f), 0);
    int err = await_future(f, -1, NULL);
    return err ? coro_fail(err) : NULL;
}

START_TEST(a_future_of_its_own_loop_can_deadlock)
{
    coro_event *ev = coro_event_new();
    ck_assert_ptr_nonnull(ev);
    char *report = run_reporting(own_deadlock_main, ev, EDEADLK);
    expect_deadlock_report(report, 2);
    free(report);
    ck_assert_int_eq(coro_event_free(ev), 0);
}
END_TEST

/* A shared-stack waiter: the wait's record is the future, on the heap,
 * while a scribbler writes over the shared stack. */
static void *shared_waiter(void *arg)
{
    struct across *a = arg;
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(a->side.loop, job_fn, &a->job, &f), 0);
    void *result = NULL;
    int err = await_future(f, -1, &result);
    return err ? coro_fail(err) : result;
}

static void *shared_main(void *arg)
{
    coro_attr attr = { .flags = CORO_SHARED_STACK };
    test_scribbling_start();
    coro_task *s = coro_spawn_attr(&attr, test_scribbler, NULL);
    coro_task *w = coro_spawn_attr(&attr, shared_waiter, arg);
    void *result = NULL;
    int err = await_task(w, &result);
    test_scribbling_stop();
    ck_assert_int_eq(await_task(s, NULL), 0);
    ck_assert_int_eq(err, 0);
    ck_assert_ptr_eq(result, &((struct across *)arg)->job);
    return NULL;
}

START_TEST(a_shared_stack_task_awaits_a_future)
{
    static struct across a;
    a = (struct across){ .job.sleep = 0.02 };
    side_loop_start(&a.side);
    run_expect(shared_main, &a, 0);
    ck_assert_int_eq(side_loop_stop(&a.side), 0);
}
END_TEST

/* ---------------------------------------------------------------------
 * Cancellation from the waiting side
 * --------------------------------------------------------------------- */

struct cancel_run {
    struct side_loop side;
    struct job       job;
    int              err;
    void            *result;
    double           took;
};

static void *waiting(void *arg)
{
    struct cancel_run *c = arg;
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(c->side.loop, job_fn, &c->job, &f), 0);
    c->err = await_future(f, -1, &c->result);
    /* Structured: the task has ended by the time the wait returns. */
    ck_assert_int_eq(atomic_load(&c->job.ended), 1);
    return NULL;
}

static void *cancel_waiter_main(void *arg)
{
    struct cancel_run *c = arg;
    coro_task *w = coro_spawn(waiting, c);
    await_sleep(0.02);
    double t0 = coro_now();
    coro_cancel(w);
    ck_assert_int_eq(await_task(w, NULL), ECANCELED);
    c->took = coro_now() - t0;
    return NULL;
}

START_TEST(cancelling_the_waiter_cancels_the_submitted_task)
{
    static struct cancel_run c;
    c = (struct cancel_run){ .job.sleep = -1, .job.cleanup = 0.02 };
    side_loop_start(&c.side);
    run_expect(cancel_waiter_main, &c, 0);
    ck_assert_int_eq(side_loop_stop(&c.side), 0);
    ck_assert_int_eq(c.err, ECANCELED);
    ck_assert_int_eq(c.job.sleep_err, ECANCELED);
    /* The result of a task that ended cancelled is still handed over. */
    ck_assert_ptr_eq(c.result, &c.job);
    /* The wait lasted through the task's shielded clean-up. */
    ck_assert(c.took >= 0.015);
}
END_TEST

static void *timeout_main(void *arg)
{
    struct cancel_run *c = arg;
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(c->side.loop, job_fn, &c->job, &f), 0);
    double t0 = coro_now();
    c->err = await_future(f, 0.02, &c->result);
    c->took = coro_now() - t0;
    ck_assert_int_eq(atomic_load(&c->job.ended), 1);
    return NULL;
}

START_TEST(a_timeout_cancels_the_submitted_task_and_waits_for_its_end)
{
    static struct cancel_run c;
    c = (struct cancel_run){ .job.sleep = -1, .job.cleanup = 0.02 };
    side_loop_start(&c.side);
    run_expect(timeout_main, &c, 0);
    ck_assert_int_eq(side_loop_stop(&c.side), 0);
    ck_assert_int_eq(c.err, ETIMEDOUT);
    ck_assert_int_eq(c.job.sleep_err, ECANCELED);
    ck_assert(c.took >= 0.035);
}
END_TEST

/* A task that fails with an error of its own as it is cancelled for the
 * timeout: that error, not ETIMEDOUT, as await_task_timeout gives (CPython's
 * test_wait_for_reraises_exception_during_cancellation); for a waiting
 * task and for a plain thread. */
static void *own_error_main(void *arg)
{
    struct cancel_run *c = arg;
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(c->side.loop, job_fn, &c->job, &f), 0);
    c->err = await_future(f, 0.01, &c->result);
    ck_assert_int_eq(atomic_load(&c->job.ended), 1);
    return NULL;
}

START_TEST(a_task_failing_as_it_is_cancelled_for_the_timeout_gives_its_error)
{
    static struct cancel_run c;
    c = (struct cancel_run){ .job.sleep = -1, .job.cleanup = 0.005,
                             .job.fail = EIO };
    side_loop_start(&c.side);
    run_expect(own_error_main, &c, 0);
    ck_assert_int_eq(c.err, EIO);
    ck_assert_int_eq(c.job.sleep_err, ECANCELED);

    static struct job job;
    job = (struct job){ .sleep = -1, .fail = EIO };
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(c.side.loop, job_fn, &job, &f), 0);
    ck_assert_int_eq(coro_future_wait(f, 0.01, NULL), EIO);
    ck_assert_int_eq(job.sleep_err, ECANCELED);
    ck_assert_int_eq(side_loop_stop(&c.side), 0);
}
END_TEST

/* A thread's timeout does the same. */
START_TEST(a_plain_threads_timeout_cancels_the_task)
{
    static struct side_loop side;
    static struct job job;
    job = (struct job){ .sleep = -1 };
    side_loop_start(&side);
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(side.loop, job_fn, &job, &f), 0);
    void *result = NULL;
    ck_assert_int_eq(coro_future_wait(f, 0.01, &result), ETIMEDOUT);
    ck_assert_int_eq(atomic_load(&job.ended), 1);
    ck_assert_int_eq(job.sleep_err, ECANCELED);
    ck_assert_ptr_eq(result, &job);
    ck_assert_int_eq(side_loop_stop(&side), 0);
}
END_TEST

/* A waiter cancelled before it waits cancels the task too. */
static void *already_cancelled_main(void *arg)
{
    struct cancel_run *c = arg;
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(c->side.loop, job_fn, &c->job, &f), 0);
    coro_cancel(coro_self());
    c->err = await_future(f, -1, &c->result);
    ck_assert_int_eq(atomic_load(&c->job.ended), 1);
    return NULL;
}

START_TEST(a_waiter_cancelled_before_it_waits_cancels_the_task)
{
    static struct cancel_run c;
    c = (struct cancel_run){ .job.sleep = -1 };
    side_loop_start(&c.side);
    run_expect(already_cancelled_main, &c, ECANCELED);
    ck_assert_int_eq(side_loop_stop(&c.side), 0);
    ck_assert_int_eq(c.err, ECANCELED);
}
END_TEST

/* coro_future_cancel from the submitter, then the wait: the task's own
 * ECANCELED, not the caller's. */
static void *future_cancel_main(void *arg)
{
    struct cancel_run *c = arg;
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(c->side.loop, job_fn, &c->job, &f), 0);
    await_sleep(0.005);
    ck_assert_int_eq(coro_future_cancel(f), 0);
    ck_assert_int_eq(coro_future_cancel(f), 0); /* idempotent */
    c->err = await_future(f, -1, &c->result);
    ck_assert_int_eq(coro_task_cancelling(coro_self()), 0);
    return NULL;
}

START_TEST(coro_future_cancel_cancels_the_task)
{
    static struct cancel_run c;
    c = (struct cancel_run){ .job.sleep = -1 };
    side_loop_start(&c.side);
    run_expect(future_cancel_main, &c, 0);
    ck_assert_int_eq(side_loop_stop(&c.side), 0);
    ck_assert_int_eq(c.err, ECANCELED);
    ck_assert_int_eq(c.job.sleep_err, ECANCELED);
}
END_TEST

/* ---------------------------------------------------------------------
 * Cancellation from the task's own loop
 * --------------------------------------------------------------------- */

/* A call on the task's loop finds it by name and cancels it there: it
 * records how many it found and the first refusal, for the test. */
static atomic_int cancel_found, cancel_refused;

static void cancel_by_name(void *arg)
{
    (void)arg;
    coro_task *tasks[16];
    size_t n = coro_tasks(tasks, 16);
    for (size_t i = 0; i < n && i < 16; i++)
        if (strcmp(coro_name(tasks[i]), "job_fn") == 0) {
            int err = coro_cancel(tasks[i]);
            if (err && !atomic_load(&cancel_refused))
                atomic_store(&cancel_refused, err);
            atomic_fetch_add(&cancel_found, 1);
        }
}

static void *own_loop_cancel_main(void *arg)
{
    struct cancel_run *c = arg;
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(c->side.loop, job_fn, &c->job, &f), 0);
    await_sleep(0.01);
    ck_assert_int_eq(coro_loop_post(c->side.loop, cancel_by_name, NULL), 0);
    /* Bounded: the job sleeps until cancelled, should the call miss it. */
    c->err = await_future(f, 10 * test_slow(), &c->result);
    ck_assert_int_eq(coro_task_cancelling(coro_self()), 0);
    return NULL;
}

START_TEST(a_task_cancelled_on_its_own_loop_tells_its_waiter)
{
    static struct cancel_run c;
    c = (struct cancel_run){ .job.sleep = -1 };
    atomic_store(&cancel_found, 0);
    atomic_store(&cancel_refused, 0);
    side_loop_start(&c.side);
    run_expect(own_loop_cancel_main, &c, 0);
    ck_assert_int_eq(side_loop_stop(&c.side), 0);
    int found = atomic_load(&cancel_found);
    int refused = atomic_load(&cancel_refused);
    ck_assert_int_eq(found, 1);
    ck_assert_int_eq(refused, 0);
    ck_assert_int_eq(c.err, ECANCELED);
    ck_assert_int_eq(c.job.sleep_err, ECANCELED);
}
END_TEST

/* Its loop ends while a task of another loop waits: the task is
 * cancelled with the rest of its loop, and the waiter told. */
static atomic_int stop_err; /* what stop_side_later's stop returned */

static void *stop_side_later(void *arg)
{
    sleep_ms(20);
    atomic_store(&stop_err, side_loop_stop(arg));
    return NULL;
}

static void *loop_ends_main(void *arg)
{
    struct cancel_run *c = arg;
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(c->side.loop, job_fn, &c->job, &f), 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, stop_side_later, &c->side),
                     0);
    /* Bounded: the job sleeps until cancelled, should the stop fail. */
    c->err = await_future(f, 10 * test_slow(), &c->result);
    int joined = test_join(th, NULL, 40);
    return joined ? coro_fail(joined) : NULL;
}

START_TEST(a_waiting_task_is_told_when_the_tasks_loop_ends)
{
    static struct cancel_run c;
    c = (struct cancel_run){ .job.sleep = -1 };
    atomic_store(&stop_err, -1);
    side_loop_start(&c.side);
    run_expect(loop_ends_main, &c, 0);
    int stopped = atomic_load(&stop_err);
    ck_assert_int_eq(stopped, 0);
    ck_assert_int_eq(c.err, ECANCELED);
    ck_assert_int_eq(c.job.sleep_err, ECANCELED);
}
END_TEST

START_TEST(a_plain_thread_blocked_on_a_result_when_the_loop_ends)
{
    static struct side_loop side;
    static struct job job;
    job = (struct job){ .sleep = -1, .cleanup = 0.01 };
    atomic_store(&stop_err, -1);
    side_loop_start(&side);
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(side.loop, job_fn, &job, &f), 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, stop_side_later, &side), 0);
    void *result = NULL;
    int err = coro_future_wait(f, 10 * test_slow(), &result);
    ck_assert_int_eq(test_join(th, NULL, 40), 0);
    int stopped = atomic_load(&stop_err);
    ck_assert_int_eq(stopped, 0);
    ck_assert_int_eq(err, ECANCELED);
    ck_assert_ptr_eq(result, &job);
    ck_assert_int_eq(atomic_load(&job.ended), 1);
}
END_TEST

/* ---------------------------------------------------------------------
 * Errors, letting go
 * --------------------------------------------------------------------- */

static void *keep_handle(void *arg)
{
    *(coro_loop **)arg = coro_loop_retain(coro_loop_current());
    return NULL;
}

START_TEST(submitting_to_a_loop_that_ended_is_eshutdown)
{
    coro_loop *l = NULL;
    run_expect(keep_handle, &l, 0);
    coro_future *f = NULL;
    struct job j = { 0 };
    ck_assert_int_eq(coro_loop_submit(l, job_fn, &j, &f), ESHUTDOWN);
    ck_assert_ptr_null(f);
    coro_loop_release(l);
}
END_TEST

static void *bad_input_main(void *arg)
{
    struct side_loop *side = arg;
    coro_future *f;
    /* static: a submit wrongly accepted would run on the side loop after
     * this task has ended */
    static struct job j;
    j = (struct job){ .sleep = 0.02 };
    ck_assert_int_eq(coro_loop_submit(NULL, job_fn, &j, &f), EINVAL);
    ck_assert_int_eq(coro_loop_submit(side->loop, NULL, &j, &f), EINVAL);
    ck_assert_int_eq(coro_loop_submit(side->loop, job_fn, &j, NULL), EINVAL);
    ck_assert_int_eq(await_future(NULL, -1, NULL), EINVAL);
    ck_assert_int_eq(coro_future_cancel(NULL), EINVAL);
    ck_assert_int_eq(coro_future_done(NULL), 0);
    ck_assert_int_eq(coro_future_free(NULL), 0);
    ck_assert_int_eq(coro_loop_submit(side->loop, job_fn, &j, &f), 0);
    ck_assert_int_eq(await_future(f, NAN, NULL), EINVAL);
    /* A loop's thread must not block on a future. */
    ck_assert_int_eq(coro_future_wait(f, -1, NULL), EPERM);
    ck_assert_int_eq(coro_future_done(f), 0);
    ck_assert_int_eq(await_future(f, -1, NULL), 0);
    atomic_store(&coro__alloc_stats.fail_every, 1);
    int err = coro_loop_submit(side->loop, job_fn, &j, &f);
    atomic_store(&coro__alloc_stats.fail_every, 0);
    ck_assert_int_eq(err, ENOMEM);
    return NULL;
}

START_TEST(future_bad_input)
{
    static struct side_loop side;
    side_loop_start(&side);
    run_expect(bad_input_main, &side, 0);
    ck_assert_int_eq(side_loop_stop(&side), 0);
    ck_assert_int_eq(await_future(NULL, -1, NULL), EPERM);
}
END_TEST

/* Waits for a future with timeouts at the ends of the doubles, from a
 * task and from a plain thread: the task's end is waited for whatever
 * the timeout, the smallest time out (and cancel the task), NaN is
 * EINVAL and leaves the future to wait for. */
static const double forever[] = { -INFINITY, -DBL_MAX, -1, 9.3e9, 9.3e18,
                                  1e300, DBL_MAX, INFINITY };

static void wait_any_timeout(coro_loop *l)
{
    int in_task = coro_self() != NULL;
    for (size_t i = 0; i < sizeof forever / sizeof *forever; i++) {
        static struct job j;
        memset(&j, 0, sizeof j);
        j.sleep = 0.01;
        coro_future *f;
        ck_assert_int_eq(coro_loop_submit(l, job_fn, &j, &f), 0);
        int err = in_task ? await_future(f, forever[i], NULL)
                          : coro_future_wait(f, forever[i], NULL);
        ck_assert_int_eq(err, 0);
        ck_assert_int_eq(atomic_load(&j.ended), 1);
    }
    const double tiny[] = { 0, -0.0, 5e-324, 1e-300 };
    for (size_t i = 0; i < sizeof tiny / sizeof *tiny; i++) {
        static struct job j;
        memset(&j, 0, sizeof j);
        j.sleep = -1;
        coro_future *f;
        ck_assert_int_eq(coro_loop_submit(l, job_fn, &j, &f), 0);
        int err = in_task ? await_future(f, NAN, NULL)
                          : coro_future_wait(f, -NAN, NULL);
        ck_assert_int_eq(err, EINVAL);
        err = in_task ? await_future(f, tiny[i], NULL)
                      : coro_future_wait(f, tiny[i], NULL);
        ck_assert_int_eq(err, ETIMEDOUT);
        ck_assert_int_eq(j.sleep_err, ECANCELED); /* ended, cancelled */
    }
}

static void *any_timeout_main(void *arg)
{
    wait_any_timeout(arg);
    return NULL;
}

START_TEST(future_waits_take_any_timeout_but_nan)
{
    static struct side_loop side;
    side_loop_start(&side);
    run_expect(any_timeout_main, side.loop, 0);
    wait_any_timeout(side.loop);
    ck_assert_int_eq(side_loop_stop(&side), 0);
}
END_TEST

/* One waiter per future: a second is EINVAL and leaves it to the first. */
struct two_waiters {
    struct side_loop side;
    struct job       job;
    coro_future     *f;
    int              thread_err;
};

static void *thread_waits(void *arg)
{
    struct two_waiters *w = arg;
    w->thread_err = coro_future_wait(w->f, -1, NULL);
    return NULL;
}

static void *join_thread(void *arg)
{
    return (void *)(intptr_t)test_join(*(pthread_t *)arg, NULL, 10);
}

static void *second_waiter_main(void *arg)
{
    struct two_waiters *w = arg;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, thread_waits, w), 0);
    /* Time for the thread to claim the future; the job outlasts it. */
    await_sleep(0.01 * test_slow());
    ck_assert_int_eq(await_future(w->f, -1, NULL), EINVAL);
    ck_assert_int_eq(coro_future_free(w->f), EBUSY);
    void *joined = NULL;
    ck_assert_int_eq(await_blocking(join_thread, &th, &joined), 0);
    ck_assert_int_eq((int)(intptr_t)joined, 0);
    return NULL;
}

START_TEST(a_second_waiter_is_einval)
{
    static struct two_waiters w;
    w = (struct two_waiters){ .job.sleep = 0.05 * test_slow() };
    side_loop_start(&w.side);
    ck_assert_int_eq(coro_loop_submit(w.side.loop, job_fn, &w.job, &w.f), 0);
    run_expect(second_waiter_main, &w, 0);
    ck_assert_int_eq(side_loop_stop(&w.side), 0);
    ck_assert_int_eq(w.thread_err, 0);
}
END_TEST

/* Let go of: the task runs on to its end; nothing leaks. */
START_TEST(a_future_let_go_of_leaves_the_task_running)
{
    static struct side_loop side;
    static struct job job;
    job = (struct job){ .sleep = 0.01 };
    side_loop_start(&side);
    coro_future *f;
    ck_assert_int_eq(coro_loop_submit(side.loop, job_fn, &job, &f), 0);
    ck_assert_int_eq(coro_future_free(f), 0);
    for (int i = 0; i < 2000 * test_slow() && !atomic_load(&job.ended); i++)
        sleep_ms(1);
    ck_assert_int_eq(atomic_load(&job.ended), 1);
    ck_assert_int_eq(side_loop_stop(&side), 0);
}
END_TEST

/* ---------------------------------------------------------------------
 * Churn: ten threads submit to two loops and wait, some from tasks of a
 * third loop, some cancelling; every future gives its own task's answer.
 * --------------------------------------------------------------------- */

enum { CHURN_THREADS = 10, CHURN_EACH = 40 };

static void *echo(void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    if (v % 7 == 0 && await_yield() != 0)
        return coro_fail(ECANCELED);
    return (void *)(v * 2);
}

struct churn {
    struct side_loop sides[2];
    atomic_long      bad;
    atomic_long      done;
};

static struct churn churn;

static void *churn_thread(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    for (uintptr_t i = 0; i < CHURN_EACH; i++) {
        uintptr_t v = id * 1000 + i + 1;
        coro_future *f;
        coro_loop *l = churn.sides[(id + i) % 2].loop;
        if (coro_loop_submit(l, echo, (void *)v, &f) != 0) {
            atomic_fetch_add(&churn.bad, 1);
            continue;
        }
        void *result = NULL;
        int err;
        /* Bounded, as the joins of these threads are. */
        double most = 10 * test_slow();
        if (i % 5 == 4) {
            coro_future_cancel(f);
            err = coro_future_wait(f, most, &result);
            if (err != 0 && err != ECANCELED)
                atomic_fetch_add(&churn.bad, 1);
            if (err == 0 && result != (void *)(v * 2))
                atomic_fetch_add(&churn.bad, 1);
        } else {
            err = coro_future_wait(f, most, &result);
            if (err || result != (void *)(v * 2))
                atomic_fetch_add(&churn.bad, 1);
        }
        atomic_fetch_add(&churn.done, 1);
    }
    return NULL;
}

START_TEST(ten_threads_churn_futures)
{
    memset(&churn, 0, sizeof churn);
    side_loop_start(&churn.sides[0]);
    side_loop_start(&churn.sides[1]);
    pthread_t th[CHURN_THREADS];
    for (uintptr_t i = 0; i < CHURN_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, churn_thread,
                                        (void *)i), 0);
    for (int i = 0; i < CHURN_THREADS; i++)
        ck_assert_int_eq(test_join(th[i], NULL, 60), 0);
    ck_assert_int_eq(side_loop_stop(&churn.sides[0]), 0);
    ck_assert_int_eq(side_loop_stop(&churn.sides[1]), 0);
    ck_assert_int_eq(atomic_load(&churn.bad), 0);
    ck_assert_int_eq(atomic_load(&churn.done), CHURN_THREADS * CHURN_EACH);
}
END_TEST

Suite *future_suite(void)
{
    Suite *s = suite_create("future");
    TCase *tc = test_case("results", 20);
    tcase_add_test(tc, a_submitted_task_runs_on_its_loop_and_its_result_comes_back);
    tcase_add_test(tc, a_coro_fail_error_comes_back);
    tcase_add_test(tc, a_task_of_a_third_loop_awaits_a_plain_threads_submission);
    tcase_add_test(tc, a_plain_thread_blocks_on_a_result);
    tcase_add_test(tc, a_task_submitted_to_its_own_loop);
    tcase_add_test(tc, a_future_of_its_own_loop_can_deadlock);
    tcase_add_test(tc, a_shared_stack_task_awaits_a_future);
    suite_add_tcase(s, tc);

    tc = test_case("waiter cancels", 20);
    tcase_add_test(tc, cancelling_the_waiter_cancels_the_submitted_task);
    tcase_add_test(tc, a_timeout_cancels_the_submitted_task_and_waits_for_its_end);
    tcase_add_test(tc, a_plain_threads_timeout_cancels_the_task);
    tcase_add_test(tc,
        a_task_failing_as_it_is_cancelled_for_the_timeout_gives_its_error);
    tcase_add_test(tc, a_waiter_cancelled_before_it_waits_cancels_the_task);
    tcase_add_test(tc, coro_future_cancel_cancels_the_task);
    suite_add_tcase(s, tc);

    tc = test_case("own loop cancels", 20);
    tcase_add_test(tc, a_task_cancelled_on_its_own_loop_tells_its_waiter);
    tcase_add_test(tc, a_waiting_task_is_told_when_the_tasks_loop_ends);
    tcase_add_test(tc, a_plain_thread_blocked_on_a_result_when_the_loop_ends);
    suite_add_tcase(s, tc);

    tc = test_case("errors", 20);
    tcase_add_test(tc, submitting_to_a_loop_that_ended_is_eshutdown);
    tcase_add_test(tc, future_bad_input);
    tcase_add_test(tc, future_waits_take_any_timeout_but_nan);
    tcase_add_test(tc, a_second_waiter_is_einval);
    tcase_add_test(tc, a_future_let_go_of_leaves_the_task_running);
    suite_add_tcase(s, tc);

    tc = test_case("churn", 60);
    tcase_add_test(tc, ten_threads_churn_futures);
    suite_add_tcase(s, tc);
    return s;
}
