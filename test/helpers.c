#include "helpers.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static int stderr_saved = -1;
static FILE *stderr_file;

static char trace_buf[8192];
static size_t trace_len;

void trace(const char *fmt, ...)
{
    va_list ap;
    if (trace_len && trace_len < sizeof trace_buf - 1)
        trace_buf[trace_len++] = ' ';
    va_start(ap, fmt);
    int n = vsnprintf(trace_buf + trace_len, sizeof trace_buf - trace_len,
                      fmt, ap);
    va_end(ap);
    if (n > 0)
        trace_len += (size_t)n;
    if (trace_len >= sizeof trace_buf)
        trace_len = sizeof trace_buf - 1;
}

const char *trace_get(void)
{
    trace_buf[trace_len] = '\0';
    return trace_buf;
}

void trace_reset(void)
{
    trace_len = 0;
    trace_buf[0] = '\0';
}

double test_slow(void)
{
    const char *s = getenv("CORO_TEST_SLOW");
    double v = s ? atof(s) : 1.0;
    return v >= 1.0 ? v : 1.0;
}

int test_forking(void)
{
    const char *s = getenv("CK_FORK");
    return !(s && strcmp(s, "no") == 0);
}

void test_setup(void)
{
    trace_reset();
    atomic_store(&coro__alloc_stats.fail_every, 0);
    /* In Check's no-fork mode (valgrind) a check that failed inside a task
     * jumps out of its coro_run and leaves the loop behind as this
     * thread's: every later coro_run says EBUSY, and an await_* called
     * from outside a loop parks in the dead one for ever, which hangs
     * the whole run. Each later test fails here at once instead. */
    ck_assert_msg(coro__loop() == NULL,
                  "a loop an earlier test left (a check that failed in a "
                  "task) is still this thread's: this run is spoilt");
}

void test_no_leaks(void)
{
    /* Without a fork per test, a capture a failed assertion left behind
     * would swallow what every later test writes. */
    if (stderr_file) {
        char *text = stderr_captured();
        fputs(text, stderr);
        free(text);
    }
    atomic_store(&coro__alloc_stats.fail_every, 0);
    ck_assert_int_eq(atomic_load(&coro__alloc_stats.blocks), 0);
    ck_assert_int_eq(atomic_load(&coro__alloc_stats.stacks), 0);
}

#ifdef CORO__ASAN
static void *nothing(void *arg)
{
    return arg;
}

static void *spawn_one(void *arg)
{
    (void)arg;
    int err = await_task(coro_spawn(nothing, NULL), NULL);
    return err ? coro_fail(err) : NULL;
}

/* ASan warns, at a process's first swapcontext, that it does not fully
 * support it: with a process per test, in every test. Run in the runner's
 * own process before it forks for the first test, a switch has it warn
 * there once, into a capture. */
static void asan_warn_once(void)
{
    static const char warning[] =
        "ASan doesn't fully support makecontext/swapcontext";
    static int done;
    if (done++)
        return;
    char *text = run_reporting(spawn_one, NULL, 0);
    const char *nl = strchr(text, '\n');
    ck_assert_msg(!*text || (strstr(text, warning) && nl && !nl[1]),
                  "more than the warning:\n%s", text);
    free(text);
}
#endif

TCase *test_case(const char *name, double timeout)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, test_setup, test_no_leaks);
#ifdef CORO__ASAN
    tcase_add_unchecked_fixture(tc, asan_warn_once, NULL);
#endif
    tcase_set_timeout(tc, timeout * test_slow());
    return tc;
}

void run_expect(coro_fn fn, void *arg, int want)
{
    int err = coro_run(fn, arg, NULL);
    ck_assert_msg(err == want, "coro_run returned %d (%s), want %d (%s)",
                  err, strerror(err), want, strerror(want));
}

__attribute__((noinline)) void frame_fill(void *frame, int byte,
                                           size_t size)
{
    memset(frame, byte, size);
    /* As far as the compiler knows, this reads and writes all memory
     * through frame. */
    __asm__ volatile("" : : "r"(frame) : "memory");
}

double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

void stderr_capture(void)
{
    ck_assert_ptr_null(stderr_file);
    fflush(stderr);
    stderr_file = tmpfile();
    ck_assert_ptr_nonnull(stderr_file);
    stderr_saved = dup(STDERR_FILENO);
    ck_assert_int_ge(stderr_saved, 0);
    ck_assert_int_ge(dup2(fileno(stderr_file), STDERR_FILENO), 0);
}

char *stderr_captured(void)
{
    fflush(stderr);
    dup2(stderr_saved, STDERR_FILENO);
    close(stderr_saved);
    stderr_saved = -1;
    off_t n = lseek(fileno(stderr_file), 0, SEEK_END);
    ck_assert_int_ge(n, 0);
    char *text = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(text);
    ssize_t got = pread(fileno(stderr_file), text, (size_t)n, 0);
    text[got > 0 ? got : 0] = '\0';
    fclose(stderr_file);
    stderr_file = NULL;
    return text;
}

char *run_reporting(coro_fn fn, void *arg, int want)
{
    stderr_capture();
    int err = coro_run(fn, arg, NULL);
    char *text = stderr_captured();
    ck_assert_msg(err == want, "coro_run returned %d (%s), want %d (%s); "
                  "it wrote:\n%s", err, strerror(err), want, strerror(want),
                  text);
    return text;
}

/* Whether line (len bytes) holds each string of the list, in order. */
static int line_holds(const char *line, size_t len, va_list ap)
{
    char buf[1024];
    if (len >= sizeof buf)
        len = sizeof buf - 1;
    memcpy(buf, line, len);
    buf[len] = '\0';
    const char *at = buf;
    for (const char *want; (want = va_arg(ap, const char *)) != NULL;) {
        at = strstr(at, want);
        if (!at)
            return 0;
        at += strlen(want);
    }
    return 1;
}

void expect_report_line(const char *text, ...)
{
    va_list ap;
    va_start(ap, text);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        va_list each;
        va_copy(each, ap);
        int found = line_holds(line, len, each);
        va_end(each);
        if (found) {
            va_end(ap);
            return;
        }
        line += len + (end != NULL);
    }
    char wanted[512] = "";
    size_t n = 0;
    for (const char *want; (want = va_arg(ap, const char *)) != NULL;) {
        int k = snprintf(wanted + n, sizeof wanted - n, "\"%s\" ", want);
        if (k < 0 || (size_t)k >= sizeof wanted - n)
            break;
        n += (size_t)k;
    }
    va_end(ap);
    ck_abort_msg("no line holds %sin:\n%s", wanted, text);
}

void expect_deadlock_report(const char *text, int tasks)
{
    static const char said[] = "coro: deadlock: no task can ever wake";
    ck_assert_msg(strncmp(text, said, sizeof said - 1) == 0, "%s", text);
    char head[64];
    snprintf(head, sizeof head, "\ncoro: %d task%s in this thread's loop:\n",
             tasks, tasks == 1 ? "" : "s");
    ck_assert_msg(strstr(text, head) != NULL, "no \"%s\" in:\n%s", head + 1,
                  text);
    int lines = 0;
    for (const char *p = text; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    ck_assert_msg(lines == tasks + 2, "%d lines, want %d:\n%s", lines,
                  tasks + 2, text);
}

char *run_in_child(int (*body)(void *), void *arg, int *status)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        _exit(body(arg));
    }
    close(p[1]);
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    ssize_t n;
    while (len < cap - 1 && (n = read(p[0], text + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    text[len] = '\0';
    close(p[0]);
    ck_assert_int_eq(waitpid(pid, status, 0), pid);
    return text;
}

static atomic_int scribbling;

void *return_arg(void *arg)
{
    return arg;
}

void *record_sleep(void *arg)
{
    int err = await_sleep(60);
    trace("child %d", err);
    return arg;
}

void *test_nap(void *arg)
{
    struct test_nap *n = arg;
    int err = await_sleep(n->seconds);
    trace("%u", n->token);
    if (err)
        return coro_fail(err);
    if (n->error)
        return coro_fail(n->error);
    return (void *)(uintptr_t)n->token;
}

void test_scribbling_start(void)
{
    atomic_store(&scribbling, 1);
}

void test_scribbling_stop(void)
{
    atomic_store(&scribbling, 0);
}

void *test_scribbler(void *arg)
{
    (void)arg;
    while (atomic_load(&scribbling)) {
        volatile char junk[4096];
        for (size_t i = 0; i < sizeof junk; i++)
            junk[i] = (char)(i * 13 + 1);
        if (await_sleep(0.001) != 0)
            break;
    }
    return NULL;
}

/* A loop on a thread of its own: its main holds a reference to the loop
 * (so it waits for posts rather than deadlock) and waits for the stop. */
static void side_stop_call(void *arg)
{
    coro_event_set(((struct side_loop *)arg)->stop);
}

static void *side_main(void *arg)
{
    struct side_loop *s = arg;
    s->stop = coro_event_new();
    pthread_mutex_lock(&s->lock);
    s->loop = coro_loop_retain(coro_loop_current());
    s->thread = pthread_self();
    pthread_cond_signal(&s->up);
    pthread_mutex_unlock(&s->lock);
    int err = await_event(s->stop, -1);
    coro_event_free(s->stop);
    return err ? coro_fail(err) : NULL;
}

static void *side_thread(void *arg)
{
    struct side_loop *s = arg;
    int err = coro_run(side_main, s, NULL);
    pthread_mutex_lock(&s->lock);
    s->err = err;
    s->ended = 1; /* if main never ran, side_loop_start waits no more */
    pthread_cond_signal(&s->up);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

void side_loop_start(struct side_loop *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->up, NULL);
    ck_assert_int_eq(pthread_create(&s->th, NULL, side_thread, s), 0);
    pthread_mutex_lock(&s->lock);
    while (!s->loop && !s->ended)
        pthread_cond_wait(&s->up, &s->lock);
    int started = s->loop != NULL, err = s->err;
    pthread_mutex_unlock(&s->lock);
    if (!started)
        pthread_join(s->th, NULL);
    ck_assert_msg(started, "the side loop did not start: %s", strerror(err));
}

int side_loop_stop(struct side_loop *s)
{
    int err = coro_loop_post(s->loop, side_stop_call, s);
    if (!err)
        err = test_join(s->th, NULL, 30);
    if (err)
        return err;
    coro_loop_release(s->loop);
    pthread_cond_destroy(&s->up);
    pthread_mutex_destroy(&s->lock);
    return s->err;
}

static _Atomic(coro_task *) foreign;

static void *foreign_sleeper(void *arg)
{
    (void)arg;
    atomic_store(&foreign, coro_self());
    int err = await_sleep(INFINITY);
    return err == ECANCELED ? NULL : coro_fail(err);
}

coro_task *foreign_task_start(struct side_loop *s, coro_future **f)
{
    atomic_store(&foreign, NULL);
    side_loop_start(s);
    ck_assert_int_eq(coro_loop_submit(s->loop, foreign_sleeper, NULL, f), 0);
    coro_task *t;
    while (!(t = atomic_load(&foreign))) {
        if (coro_self())
            ck_assert_int_eq(await_sleep(0.001), 0);
        else
            sched_yield();
    }
    return t;
}

void foreign_task_stop(struct side_loop *s, coro_future *f)
{
    ck_assert_int_eq(coro_future_cancel(f), 0);
    int err = coro_self() ? await_future(f, 5, NULL)
                          : coro_future_wait(f, 5, NULL);
    ck_assert_int_eq(err, ECANCELED);
    ck_assert_int_eq(side_loop_stop(s), 0);
}

int test_join(pthread_t th, void **ret, double seconds)
{
    struct timespec at;
    clock_gettime(CLOCK_REALTIME, &at);
    double whole, part = modf(seconds * test_slow(), &whole);
    at.tv_sec += (time_t)whole;
    at.tv_nsec += (long)(part * 1e9);
    if (at.tv_nsec >= 1000000000L) {
        at.tv_sec++;
        at.tv_nsec -= 1000000000L;
    }
    return pthread_timedjoin_np(th, ret, &at);
}
