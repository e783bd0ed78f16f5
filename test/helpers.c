#include "helpers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

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
}

void test_no_leaks(void)
{
    atomic_store(&coro__alloc_stats.fail_every, 0);
    ck_assert_int_eq(atomic_load(&coro__alloc_stats.blocks), 0);
    ck_assert_int_eq(atomic_load(&coro__alloc_stats.stacks), 0);
}

TCase *test_case(const char *name, double timeout)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, test_setup, test_no_leaks);
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

static int stderr_saved = -1;
static FILE *stderr_file;

void stderr_capture(void)
{
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
