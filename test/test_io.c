/* Readiness of fds: await_readable, await_writable, coro_close. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

static void nonblocking_pipe(int p[2])
{
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void nonblocking_pair(int s[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s),
                     0);
}

struct fd_wait {
    int    fd;
    double timeout;
    int    err;
    double woke_at;
};

static void *wait_readable(void *arg)
{
    struct fd_wait *w = arg;
    w->err = await_readable(w->fd, w->timeout);
    w->woke_at = coro_now();
    return NULL;
}

static void *wait_writable(void *arg)
{
    struct fd_wait *w = arg;
    w->err = await_writable(w->fd, w->timeout);
    w->woke_at = coro_now();
    return NULL;
}

static void *readable_main(void *arg)
{
    (void)arg;
    int p[2];
    nonblocking_pipe(p);
    struct fd_wait w = { p[0], -1, -1, 0 };
    coro_task *t = coro_spawn(wait_readable, &w);
    await_sleep(0.02);
    ck_assert_int_eq(w.err, -1); /* still waiting */
    double wrote_at = coro_now();
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_int_eq(w.err, 0);
    ck_assert_double_lt(w.woke_at - wrote_at, 0.05 * test_slow());
    /* Already readable: returns at once, also with a timeout of 0. */
    ck_assert_int_eq(await_readable(p[0], 1), 0);
    ck_assert_int_eq(await_readable(p[0], 0), 0);
    ck_assert_int_eq(await_writable(p[1], 0), 0);
    close(p[0]);
    close(p[1]);
    return NULL;
}

START_TEST(readable_wakes_when_data_arrives)
{
    run_expect(readable_main, NULL, 0);
}
END_TEST

static void *timeout_main(void *arg)
{
    (void)arg;
    int p[2];
    nonblocking_pipe(p);
    double t0 = coro_now();
    ck_assert_int_eq(await_readable(p[0], 0.03), ETIMEDOUT);
    double took = coro_now() - t0;
    ck_assert_double_ge(took, 0.03);
    ck_assert_double_lt(took, 0.03 + 0.25 * test_slow());
    ck_assert_int_eq(await_readable(p[0], 0), ETIMEDOUT);
    ck_assert_int_eq(await_readable(p[0], NAN), EINVAL);
    /* The timed-out wait left nothing behind: the fd can be waited on. */
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    ck_assert_int_eq(await_readable(p[0], 1), 0);
    close(p[0]);
    close(p[1]);
    return NULL;
}

START_TEST(readable_times_out)
{
    run_expect(timeout_main, NULL, 0);
}
END_TEST

/* asyncio.wait_for gives the result that is there when its timeout fires:
 * a ready fd is ready however short the timeout, unless a timeout scope
 * (asyncio.timeout) is what ended the wait. */
static void *tiny_timeout_main(void *arg)
{
    (void)arg;
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK), 0);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(await_readable(p[0], 1e-9), ETIMEDOUT);
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(await_readable(p[0], 1e-9), 0);
        ck_assert_int_eq(await_readable(p[0], 1e-6), 0);
        ck_assert_int_eq(await_writable(p[1], 1e-9), 0);
    }
    coro_timeout *scope;
    ck_assert_int_eq(coro_timeout_open(1e-9, &scope), 0);
    ck_assert_int_eq(await_readable(p[0], -1), ETIMEDOUT);
    ck_assert_int_eq(coro_timeout_close(scope), ETIMEDOUT);
    close(p[0]);
    close(p[1]);
    return NULL;
}

START_TEST(a_ready_fd_is_ready_however_short_the_timeout)
{
    run_expect(tiny_timeout_main, NULL, 0);
}
END_TEST

/* Fills a non-blocking socket's send buffer. */
static void fill(int fd)
{
    static char junk[65536];
    while (write(fd, junk, sizeof junk) > 0)
        ;
    ck_assert_int_eq(errno, EAGAIN);
}

static void drain(int fd)
{
    char buf[65536];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

static void *both_ways_main(void *arg)
{
    (void)arg;
    int s[2];
    nonblocking_pair(s);
    fill(s[0]);
    struct fd_wait r = { s[0], 5, -1, 0 }, w = { s[0], 5, -1, 0 };
    coro_task *rt = coro_spawn(wait_readable, &r);
    coro_task *wt = coro_spawn(wait_writable, &w);
    await_sleep(0.01);
    ck_assert_int_eq(r.err, -1);
    ck_assert_int_eq(w.err, -1);
    /* A second reader or writer on the same fd is refused. */
    ck_assert_int_eq(await_readable(s[0], 1), EBUSY);
    ck_assert_int_eq(await_writable(s[0], 1), EBUSY);
    drain(s[1]); /* room to write: only the writer wakes */
    ck_assert_int_eq(await_task(wt, NULL), 0);
    ck_assert_int_eq(w.err, 0);
    ck_assert_int_eq(r.err, -1);
    ck_assert_int_eq(write(s[1], "x", 1), 1); /* now the reader */
    ck_assert_int_eq(await_task(rt, NULL), 0);
    ck_assert_int_eq(r.err, 0);
    close(s[0]);
    close(s[1]);
    return NULL;
}

/* One task reads and one writes on the same fd; each wakes for its own
 * direction. */
START_TEST(reader_and_writer_share_an_fd)
{
    run_expect(both_ways_main, NULL, 0);
}
END_TEST

static void *bad_fd_main(void *arg)
{
    (void)arg;
    int p[2];
    nonblocking_pipe(p);
    close(p[0]);
    close(p[1]);
    ck_assert_int_eq(await_readable(-1, 1), EBADF);
    ck_assert_int_eq(await_readable(p[0], 1), EBADF);
    ck_assert_int_eq(await_writable(p[1], 1), EBADF);
    ck_assert_int_eq(await_readable(p[0], 0), EBADF);
    ck_assert_int_eq(coro_close(-1), EBADF);
    /* Numbers far past any open fd are EBADF at once, and cost nothing:
     * the table of waiters does not grow for them. */
    long blocks = atomic_load(&coro__alloc_stats.blocks);
    double t0 = coro_now();
    ck_assert_int_eq(await_readable(INT_MAX, 0.5), EBADF);
    ck_assert_int_eq(await_writable(1 << 22, 0.5), EBADF);
    ck_assert_int_eq(await_readable(1 << 22, 0.5), EBADF);
    ck_assert_double_lt(coro_now() - t0, 0.25);
    ck_assert_int_eq(atomic_load(&coro__alloc_stats.blocks), blocks);
    /* A regular file cannot be polled: always ready. */
    int f = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(f, 0);
    ck_assert_int_eq(await_readable(f, 1), 0);
    close(f);
    return NULL;
}

/* A closed or invalid fd is EBADF, not a hang. */
START_TEST(bad_fds_are_ebadf)
{
    run_expect(bad_fd_main, NULL, 0);
    ck_assert_int_eq(await_readable(0, 1), EPERM);
    ck_assert_int_eq(await_writable(1, 1), EPERM);
}
END_TEST

static void *close_wakes_main(void *arg)
{
    (void)arg;
    int s[2];
    nonblocking_pair(s);
    fill(s[0]);
    struct fd_wait r = { s[0], -1, -1, 0 }, w = { s[0], -1, -1, 0 };
    coro_task *t[2] = { coro_spawn(wait_readable, &r),
                        coro_spawn(wait_writable, &w) };
    await_yield();
    ck_assert_int_eq(coro_close(s[0]), 0);
    ck_assert_int_eq(await_gather(t, 2, NULL, NULL), 0);
    ck_assert_int_eq(r.err, EBADF);
    ck_assert_int_eq(w.err, EBADF);
    close(s[1]);
    return NULL;
}

/* coro_close wakes whoever waits on the fd with EBADF. */
START_TEST(coro_close_wakes_the_waiters)
{
    run_expect(close_wakes_main, NULL, 0);
}
END_TEST

static void *cancel_main(void *arg)
{
    (void)arg;
    int p[2];
    nonblocking_pipe(p);
    struct fd_wait r = { p[0], -1, -1, 0 };
    coro_task *t = coro_spawn(wait_readable, &r);
    await_sleep(0.01);
    double t0 = coro_now();
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    ck_assert_int_eq(r.err, ECANCELED);
    ck_assert_double_lt(coro_now() - t0, 0.05 * test_slow());
    /* The slot is free again. */
    t = coro_spawn(wait_readable, &r);
    await_yield();
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_int_eq(r.err, 0);
    /* Cancelled before: ECANCELED without waiting. */
    coro_cancel(coro_self());
    ck_assert_int_eq(await_readable(p[0], 1), ECANCELED);
    ck_assert_int_eq(await_writable(p[1], 1), ECANCELED);
    close(p[0]);
    close(p[1]);
    return NULL;
}

/* A task waiting on an fd is cancelled promptly and leaves the fd free. */
START_TEST(cancelled_waiter_leaves_the_fd)
{
    ck_assert_int_eq(coro_run(cancel_main, NULL, NULL), ECANCELED);
}
END_TEST

static void *reuse_main(void *arg)
{
    (void)arg;
    int p[2], q[2];
    nonblocking_pipe(p);
    ck_assert_int_eq(await_readable(p[0], 0.01), ETIMEDOUT);
    close(p[0]);
    close(p[1]);
    nonblocking_pipe(q); /* very likely the same numbers */
    struct fd_wait r = { q[0], 5, -1, 0 };
    coro_task *t = coro_spawn(wait_readable, &r);
    await_yield();
    ck_assert_int_eq(write(q[1], "x", 1), 1);
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_int_eq(r.err, 0);
    close(q[0]);
    close(q[1]);
    return NULL;
}

/* An fd number closed and opened again behind coro's back works. */
START_TEST(reused_fd_numbers_are_watched_afresh)
{
    run_expect(reuse_main, NULL, 0);
}
END_TEST

static void *many_main(void *arg)
{
    (void)arg;
    enum { N = 300 };
    static int s[N][2];
    static struct fd_wait w[N];
    static coro_task *t[N];
    for (int i = 0; i < N; i++) {
        nonblocking_pair(s[i]);
        w[i] = (struct fd_wait){ s[i][0], 5, -1, 0 };
        t[i] = coro_spawn(wait_readable, &w[i]);
    }
    await_yield();
    for (int i = N - 1; i >= 0; i--)
        ck_assert_int_eq(write(s[i][1], "x", 1), 1);
    ck_assert_int_eq(await_gather(t, N, NULL, NULL), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(w[i].err, 0);
        close(s[i][0]);
        close(s[i][1]);
    }
    return NULL;
}

START_TEST(many_fds_at_once)
{
    run_expect(many_main, NULL, 0);
}
END_TEST

static void *spinner(void *arg)
{
    volatile int *stop = arg;
    while (!*stop)
        await_yield();
    return NULL;
}

static void *late_writer(void *arg)
{
    await_sleep(0.01);
    ck_assert_int_eq(write(*(int *)arg, "x", 1), 1);
    return NULL;
}

static void *starve_main(void *arg)
{
    (void)arg;
    static volatile int stop;
    int p[2];
    nonblocking_pipe(p);
    coro_task *spin[2] = { coro_spawn(spinner, (void *)&stop),
                           coro_spawn(spinner, (void *)&stop) };
    coro_task *writer = coro_spawn(late_writer, &p[1]);
    double t0 = coro_now();
    ck_assert_int_eq(await_readable(p[0], 5), 0);
    ck_assert_double_lt(coro_now() - t0, 0.01 + 0.05 * test_slow());
    stop = 1;
    ck_assert_int_eq(await_gather(spin, 2, NULL, NULL), 0);
    ck_assert_int_eq(await_task(writer, NULL), 0);
    close(p[0]);
    close(p[1]);
    return NULL;
}

/* Tasks that keep the ready queue busy do not starve I/O. */
START_TEST(busy_tasks_do_not_starve_io)
{
    run_expect(starve_main, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Kept registrations (coro_fd_keep)                                      */
/* ---------------------------------------------------------------------- */

static void *read_some(void *arg)
{
    struct fd_wait *w = arg;
    char buf[16];
    size_t got = 0;
    w->err = await_read(w->fd, buf, sizeof buf, w->timeout, &got);
    w->woke_at = (double)got;
    return NULL;
}

static void *write_more(void *arg)
{
    struct fd_wait *w = arg;
    static const char more[4096];
    w->err = await_write_all(w->fd, more, sizeof more, w->timeout);
    return NULL;
}

static void *kept_main(void *arg)
{
    (void)arg;
    int s[2];
    nonblocking_pair(s);
    ck_assert_int_eq(coro_fd_keep(s[0]), 0);
    ck_assert_int_eq(coro_fd_keep(s[0]), 0); /* twice is once */
    /* Round after round, as a server's requests: each wait is woken by
     * the bytes that come while it waits. */
    for (int round = 0; round < 5; round++) {
        struct fd_wait r = { s[0], 5, -1, 0 };
        coro_task *t = coro_spawn(round % 2 ? read_some : wait_readable, &r);
        await_sleep(0.005);
        ck_assert_int_eq(r.err, -1); /* still waiting: nothing came */
        ck_assert_int_eq(write(s[1], "abc", 3), 3);
        ck_assert_int_eq(await_task(t, NULL), 0);
        ck_assert_int_eq(r.err, 0);
        if (round % 2 == 0) {
            /* Nobody read: still readable, as often as it is asked. */
            ck_assert_int_eq(await_readable(s[0], 1), 0);
            ck_assert_int_eq(await_readable(s[0], 1), 0);
            char buf[8];
            ck_assert_int_eq(read(s[0], buf, sizeof buf), 3);
        } else {
            ck_assert_double_eq(r.woke_at, 3); /* bytes read */
        }
    }
    /* Bytes that came while nobody waited are found by the next wait. */
    ck_assert_int_eq(write(s[1], "x", 1), 1);
    await_sleep(0.005); /* the loop sees the edge, nobody waiting */
    ck_assert_int_eq(await_readable(s[0], 1), 0);
    char c;
    size_t got;
    ck_assert_int_eq(await_read(s[0], &c, 1, 1, &got), 0);
    ck_assert_int_eq(got, 1);
    /* Emptied by a short read: the next wait waits. */
    ck_assert_int_eq(write(s[1], "yz", 2), 2);
    await_sleep(0.005);
    char buf[8];
    ck_assert_int_eq(await_read(s[0], buf, sizeof buf, 1, &got), 0);
    ck_assert_int_eq(got, 2);
    ck_assert_int_eq(await_readable(s[0], 0.02), ETIMEDOUT);
    /* Writability too: a writer that finds the buffer full waits until
     * the peer reads. */
    fill(s[0]);
    struct fd_wait w = { s[0], 5, -1, 0 };
    coro_task *t = coro_spawn(write_more, &w);
    await_sleep(0.005);
    ck_assert_int_eq(w.err, -1);
    drain(s[1]);
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_int_eq(w.err, 0);
    ck_assert_int_eq(coro_close(s[0]), 0);
    close(s[1]);
    return NULL;
}

/* A kept fd's waits wake on what comes, and lose no level between edges. */
START_TEST(kept_fds_wake_and_keep_their_level)
{
    run_expect(kept_main, NULL, 0);
}
END_TEST

static void *kept_reuse_main(void *arg)
{
    (void)arg;
    int s[2], p[2];
    nonblocking_pair(s);
    ck_assert_int_eq(coro_fd_keep(s[0]), 0);
    ck_assert_int_eq(await_readable(s[0], 0.01), ETIMEDOUT);
    int number = s[0];
    /* A waiter is woken by coro_close, which drops the registration. */
    struct fd_wait r = { s[0], 5, -1, 0 };
    coro_task *t = coro_spawn(wait_readable, &r);
    await_yield();
    ck_assert_int_eq(coro_close(s[0]), 0);
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_int_eq(r.err, EBADF);
    close(s[1]);
    /* The number comes back as a pipe: watched afresh, one-shot. */
    nonblocking_pipe(p);
    ck_assert_int_eq(p[0] == number || p[1] == number, 1);
    int rd = p[0];
    struct fd_wait r2 = { rd, 5, -1, 0 };
    t = coro_spawn(wait_readable, &r2);
    await_yield();
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    ck_assert_int_eq(await_task(t, NULL), 0);
    ck_assert_int_eq(r2.err, 0);
    /* And kept again, from scratch: the byte already there is found. */
    ck_assert_int_eq(coro_fd_keep(rd), 0);
    ck_assert_int_eq(await_readable(rd, 1), 0);
    ck_assert_int_eq(coro_close(p[0]), 0);
    ck_assert_int_eq(coro_close(p[1]), 0);
    return NULL;
}

/* A kept fd closed with coro_close leaves its number to be used again. */
START_TEST(kept_fd_numbers_are_reused_after_coro_close)
{
    run_expect(kept_reuse_main, NULL, 0);
}
END_TEST

static void *kept_cancel_main(void *arg)
{
    (void)arg;
    int s[2];
    nonblocking_pair(s);
    ck_assert_int_eq(coro_fd_keep(s[0]), 0);
    /* A waiter on a kept fd is cancelled promptly, and leaves it free. */
    struct fd_wait r = { s[0], -1, -1, 0 };
    coro_task *t = coro_spawn(wait_readable, &r);
    await_sleep(0.01);
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    ck_assert_int_eq(r.err, ECANCELED);
    /* Ready at once, but cancelled before: ECANCELED, nothing read. */
    ck_assert_int_eq(write(s[1], "x", 1), 1);
    await_sleep(0.005); /* the edge is remembered: nobody waits */
    coro_cancel(coro_self());
    char c;
    size_t got = 9;
    ck_assert_int_eq(await_readable(s[0], 1), ECANCELED);
    ck_assert_int_eq(await_read(s[0], &c, 1, 1, &got), ECANCELED);
    ck_assert_int_eq(got, 0);
    ck_assert_int_eq(read(s[0], &c, 1), 1); /* the byte is still there */
    ck_assert_int_eq(coro_close(s[0]), 0);
    close(s[1]);
    return NULL;
}

/* Cancellation on a kept fd: prompt while waiting, and first before. */
START_TEST(kept_fds_honour_cancellation)
{
    ck_assert_int_eq(coro_run(kept_cancel_main, NULL, NULL), ECANCELED);
}
END_TEST

static void *kept_bad_main(void *arg)
{
    (void)arg;
    int p[2];
    nonblocking_pipe(p);
    close(p[1]);
    ck_assert_int_eq(coro_fd_keep(-1), EBADF);
    ck_assert_int_eq(coro_fd_keep(p[1]), EBADF); /* not open */
    ck_assert_int_eq(await_readable(p[1], 0.01), EBADF);
    /* A regular file is always ready: accepted, nothing registered. */
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(coro_fd_keep(fileno(f)), 0);
    ck_assert_int_eq(await_readable(fileno(f), 1), 0);
    fclose(f);
    close(p[0]);
    return NULL;
}

/* Bad fds are EBADF; outside a loop, EPERM. */
START_TEST(kept_bad_input)
{
    run_expect(kept_bad_main, NULL, 0);
    ck_assert_int_eq(coro_fd_keep(0), EPERM);
}
END_TEST

Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = test_case("readiness", 20);
    tcase_add_test(tc, readable_wakes_when_data_arrives);
    tcase_add_test(tc, readable_times_out);
    tcase_add_test(tc, a_ready_fd_is_ready_however_short_the_timeout);
    tcase_add_test(tc, reader_and_writer_share_an_fd);
    tcase_add_test(tc, bad_fds_are_ebadf);
    tcase_add_test(tc, coro_close_wakes_the_waiters);
    tcase_add_test(tc, cancelled_waiter_leaves_the_fd);
    tcase_add_test(tc, reused_fd_numbers_are_watched_afresh);
    tcase_add_test(tc, many_fds_at_once);
    tcase_add_test(tc, busy_tasks_do_not_starve_io);
    suite_add_tcase(s, tc);
    tc = test_case("kept", 20);
    tcase_add_test(tc, kept_fds_wake_and_keep_their_level);
    tcase_add_test(tc, kept_fd_numbers_are_reused_after_coro_close);
    tcase_add_test(tc, kept_fds_honour_cancellation);
    tcase_add_test(tc, kept_bad_input);
    suite_add_tcase(s, tc);
    return s;
}
