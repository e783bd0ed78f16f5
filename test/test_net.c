/* Socket helpers: listen, accept, dial, read, read_full, read_until,
 * write_all; echo round trips, many connections, timeouts, cancellation in
 * each helper, peer reset, partial reads, no SIGPIPE. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

/* A listener on 127.0.0.1 and an ephemeral port. */
static int listener(int *port)
{
    int fd;
    ck_assert_int_eq(coro_listen("127.0.0.1", 0, 128, &fd), 0);
    ck_assert_int_eq(coro_sock_port(fd, port), 0);
    ck_assert_int_gt(*port, 0);
    return fd;
}

static int dial(int port)
{
    int fd = -1;
    ck_assert_int_eq(await_dial("127.0.0.1", port, 5, &fd), 0);
    return fd;
}

/* Echoes lines until the peer closes. */
static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[256];
    size_t got;
    int err;
    while ((err = await_read_until(fd, buf, sizeof buf, "\n", 5, &got)) == 0)
        if ((err = await_write_all(fd, buf, got, 5)) != 0)
            break;
    close(fd);
    return err == EPIPE ? NULL : coro_fail(err);
}

/* Accepts n connections, echoing each in its own task. */
struct echo_server {
    int lfd;
    int n;
};

static void *echo_server(void *arg)
{
    struct echo_server *s = arg;
    coro_task **conns = calloc((size_t)s->n, sizeof *conns);
    int err = 0;
    for (int i = 0; i < s->n && !err; i++) {
        int fd;
        err = await_accept(s->lfd, 5, &fd);
        if (!err)
            conns[i] = coro_spawn(echo_conn, (void *)(intptr_t)fd);
    }
    int n = 0;
    while (n < s->n && conns[n])
        n++;
    int gathered = await_gather(conns, (size_t)n, NULL, NULL);
    free(conns);
    return err || gathered ? coro_fail(err ? err : gathered) : NULL;
}

static void *echo_client(void *arg)
{
    int port = (int)(intptr_t)arg;
    int fd = dial(port);
    for (int i = 0; i < 5; i++) {
        char line[64], back[64];
        int len = snprintf(line, sizeof line, "line %d of %d\n", i, port);
        size_t got;
        ck_assert_int_eq(await_write_all(fd, line, (size_t)len, 5), 0);
        ck_assert_int_eq(await_read_until(fd, back, sizeof back, "\n", 5,
                                          &got),
                         0);
        ck_assert_uint_eq(got, (size_t)len);
        ck_assert(memcmp(line, back, got) == 0);
    }
    close(fd);
    return NULL;
}

static void *echo_main(void *arg)
{
    int n = *(int *)arg;
    int port;
    struct echo_server s = { listener(&port), n };
    coro_task *server = coro_spawn(echo_server, &s);
    coro_task **clients = calloc((size_t)n, sizeof *clients);
    for (int i = 0; i < n; i++)
        clients[i] = coro_spawn(echo_client, (void *)(intptr_t)port);
    ck_assert_int_eq(await_gather(clients, (size_t)n, NULL, NULL), 0);
    ck_assert_int_eq(await_task(server, NULL), 0);
    free(clients);
    close(s.lfd);
    return NULL;
}

START_TEST(echo_round_trips)
{
    int n = 1;
    run_expect(echo_main, &n, 0);
}
END_TEST

/* Many connections at once, each with its own server task: two fds each,
 * within what the process may open. */
START_TEST(many_connections_at_once)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    int n = rl.rlim_cur > 1100 ? 500 : (int)(rl.rlim_cur - 100) / 2;
    run_expect(echo_main, &n, 0);
}
END_TEST

static void *dial_name_main(void *arg)
{
    (void)arg;
    int port;
    int lfd = listener(&port);
    int fd = -1, conn = -1;
    /* A name: resolved on the worker threads. */
    ck_assert_int_eq(await_dial("localhost", port, 5, &fd), 0);
    ck_assert_int_eq(await_accept(lfd, 5, &conn), 0);
    close(fd);
    close(conn);
    /* Nobody listens any more. */
    close(lfd);
    ck_assert_int_eq(await_dial("127.0.0.1", port, 5, &fd), ECONNREFUSED);
    int err = await_dial("no-such-host.invalid", 80, 5, &fd);
    ck_assert_msg(err == ENXIO || err == EAGAIN, "unknown host: %d", err);
    ck_assert_int_eq(await_dial(NULL, 80, 5, &fd), EINVAL);
    ck_assert_int_eq(await_dial("127.0.0.1", 0, 5, &fd), EINVAL);
    ck_assert_int_eq(await_dial("127.0.0.1", 70000, 5, &fd), EINVAL);
    ck_assert_int_eq(await_dial("127.0.0.1", 80, NAN, &fd), EINVAL);
    return NULL;
}

START_TEST(dial_resolves_names_and_reports_failures)
{
    run_expect(dial_name_main, NULL, 0);
    int fd;
    ck_assert_int_eq(await_dial("127.0.0.1", 80, 1, &fd), EPERM);
}
END_TEST

static void *listen_errors_main(void *arg)
{
    (void)arg;
    int fd, port;
    ck_assert_int_eq(coro_listen("not-an-address", 0, 8, &fd), EINVAL);
    ck_assert_int_eq(coro_listen("127.0.0.1", 65536, 8, &fd), EINVAL);
    ck_assert_int_eq(coro_listen("127.0.0.1", -1, 8, &fd), EINVAL);
    ck_assert_int_eq(coro_listen(NULL, 0, 8, &fd), EINVAL);
    int lfd = listener(&port);
    ck_assert_int_eq(coro_listen("127.0.0.1", port, 8, &fd), EADDRINUSE);
    ck_assert_int_eq(coro_listen("::1", 0, 0, &fd), 0); /* IPv6, SOMAXCONN */
    ck_assert_int_eq(coro_sock_port(fd, &port), 0);
    close(fd);
    ck_assert_int_eq(coro_sock_port(-1, &port), EBADF);
    ck_assert_int_eq(coro_sock_port(lfd, NULL), EINVAL);
    close(lfd);
    return NULL;
}

START_TEST(listen_rejects_bad_input)
{
    run_expect(listen_errors_main, NULL, 0);
}
END_TEST

/* Addresses, ports, flags and pointers coro_listen refuses; ports and fds
 * coro_sock_port cannot tell. */
START_TEST(listen_and_sock_port_sweep_bad_input)
{
    static char longest[5000];
    memset(longest, '1', sizeof longest - 1);
    const char *const addrs[] = { "", "localhost", "127.0.0.1 ", " ::1",
                                  "127.0.0.1:80", "::1%nosuchif0", longest };
    int fd = -7, port;
    for (size_t i = 0; i < sizeof addrs / sizeof *addrs; i++)
        ck_assert_int_eq(coro_listen(addrs[i], 0, 8, &fd), EINVAL);
    const int ports[] = { -1, INT_MIN, 65536, 70000, INT_MAX };
    for (size_t i = 0; i < sizeof ports / sizeof *ports; i++)
        ck_assert_int_eq(coro_listen("127.0.0.1", ports[i], 8, &fd), EINVAL);
    ck_assert_int_eq(coro_listen("127.0.0.1", 0, 8, NULL), EINVAL);
    const unsigned flags[] = { 2, 4, 0x80000000u, ~0u };
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        ck_assert_int_eq(coro_listen_flags("127.0.0.1", 0, 8, flags[i], &fd),
                         EINVAL);
    ck_assert_int_eq(fd, -7); /* never stored on a refusal */
    /* Any backlog: <= 0 is SOMAXCONN, and the kernel caps a large one. */
    const int backlogs[] = { INT_MIN, -1, 0, INT_MAX };
    for (size_t i = 0; i < sizeof backlogs / sizeof *backlogs; i++) {
        ck_assert_int_eq(coro_listen("127.0.0.1", 0, backlogs[i], &fd), 0);
        close(fd);
    }
    /* coro_sock_port: no fd, no socket, no IP socket, no port yet. */
    ck_assert_int_eq(coro_sock_port(1 << 30, &port), EBADF);
    ck_assert_int_eq(coro_sock_port(INT_MIN, &port), EBADF);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(coro_sock_port(p[0], &port), ENOTSOCK);
    close(p[0]);
    close(p[1]);
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(coro_sock_port(u, &port), EAFNOSUPPORT);
    close(u);
    int unbound = socket(AF_INET6, SOCK_DGRAM, 0);
    port = -1;
    ck_assert_int_eq(coro_sock_port(unbound, &port), 0);
    ck_assert_int_eq(port, 0);
    close(unbound);
}
END_TEST

/* Every helper given an fd that is not open (never was, or closed): EBADF
 * at once, and the loop's table of fds does not grow for it. */
static void *helpers_bad_fds_main(void *arg)
{
    (void)arg;
    int closed = dup(0);
    ck_assert_int_ge(closed, 0);
    close(closed);
    const int fds[] = { -1, INT_MIN, 1 << 30, INT_MAX, closed };
    char buf[8];
    double t0 = coro_now();
    long blocks = atomic_load(&coro__alloc_stats.blocks);
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++) {
        int f = fds[i], fd = -7;
        size_t got = 99;
        ck_assert_int_eq(await_accept(f, 1, &fd), EBADF);
        ck_assert_int_eq(fd, -7);
        ck_assert_int_eq(await_read(f, buf, sizeof buf, 1, &got), EBADF);
        ck_assert_uint_eq(got, 0);
        ck_assert_int_eq(await_read_full(f, buf, sizeof buf, 1, &got),
                         EBADF);
        ck_assert_int_eq(await_read_until(f, buf, sizeof buf, "\n", 1, &got),
                         EBADF);
        ck_assert_int_eq(await_write_all(f, "x", 1, 1), EBADF);
    }
    ck_assert_double_lt(coro_now() - t0, 0.5);
    ck_assert_int_eq(atomic_load(&coro__alloc_stats.blocks), blocks);
    /* Pointers and timeouts, checked before the fd is looked at. */
    size_t got;
    int fd;
    ck_assert_int_eq(await_accept(0, 1, NULL), EINVAL);
    ck_assert_int_eq(await_accept(0, NAN, &fd), EINVAL);
    ck_assert_int_eq(await_read(0, buf, 1, 1, NULL), EINVAL);
    ck_assert_int_eq(await_read(0, NULL, 1, 1, &got), EINVAL);
    ck_assert_int_eq(await_read(0, buf, 1, NAN, &got), EINVAL);
    ck_assert_int_eq(await_read_full(0, buf, 1, 1, NULL), EINVAL);
    ck_assert_int_eq(await_read_full(0, NULL, 1, 1, &got), EINVAL);
    ck_assert_int_eq(await_read_full(0, buf, 1, -NAN, &got), EINVAL);
    ck_assert_int_eq(await_read_until(0, buf, 1, NULL, 1, &got), EINVAL);
    ck_assert_int_eq(await_read_until(0, buf, 1, "", 1, &got), EINVAL);
    ck_assert_int_eq(await_read_until(0, NULL, 1, "\n", 1, &got), EINVAL);
    ck_assert_int_eq(await_read_until(0, buf, 1, "\n", 1, NULL), EINVAL);
    ck_assert_int_eq(await_read_until(0, buf, 1, "\n", NAN, &got), EINVAL);
    ck_assert_int_eq(await_write_all(1, NULL, 1, 1), EINVAL);
    ck_assert_int_eq(await_write_all(1, "x", 1, NAN), EINVAL);
    const int ports[] = { 0, -1, INT_MIN, 65536, INT_MAX };
    for (size_t i = 0; i < sizeof ports / sizeof *ports; i++)
        ck_assert_int_eq(await_dial("127.0.0.1", ports[i], 1, &fd), EINVAL);
    ck_assert_int_eq(await_dial(NULL, 80, 1, &fd), EINVAL);
    ck_assert_int_eq(await_dial("127.0.0.1", 80, 1, NULL), EINVAL);
    ck_assert_int_eq(await_dial("127.0.0.1", 80, NAN, &fd), EINVAL);
    return NULL;
}

START_TEST(helpers_sweep_bad_fds_and_arguments)
{
    run_expect(helpers_bad_fds_main, NULL, 0);
}
END_TEST

/* SO_REUSEPORT: two sockets on one port, each with the flag; a third
 * without it is refused. Unknown flags are EINVAL. */
START_TEST(listen_flags_share_a_port)
{
    int a, b, c, port;
    ck_assert_int_eq(coro_listen_flags("127.0.0.1", 0, 8, 2, &a), EINVAL);
    ck_assert_int_eq(coro_listen_flags("127.0.0.1", 0, 8,
                                       CORO_LISTEN_REUSEPORT, &a), 0);
    ck_assert_int_eq(coro_sock_port(a, &port), 0);
    ck_assert_int_eq(coro_listen_flags("127.0.0.1", port, 8,
                                       CORO_LISTEN_REUSEPORT, &b), 0);
    ck_assert_int_eq(coro_listen_flags("127.0.0.1", port, 8, 0, &c),
                     EADDRINUSE);
    close(a);
    close(b);
}
END_TEST

/* A connected pair over TCP loopback: [0] the client, [1] the server's. */
static void tcp_pair(int fds[2])
{
    int port;
    int lfd = listener(&port);
    fds[0] = dial(port);
    ck_assert_int_eq(await_accept(lfd, 5, &fds[1]), 0);
    close(lfd);
}

static void *timeouts_main(void *arg)
{
    (void)arg;
    int port, fd, c[2];
    char buf[16];
    size_t got = 99;
    int lfd = listener(&port);
    double t0 = coro_now();
    ck_assert_int_eq(await_accept(lfd, 0.02, &fd), ETIMEDOUT);
    ck_assert_double_ge(coro_now() - t0, 0.02);
    close(lfd);
    tcp_pair(c);
    t0 = coro_now();
    ck_assert_int_eq(await_read(c[0], buf, sizeof buf, 0.02, &got),
                     ETIMEDOUT);
    ck_assert_uint_eq(got, 0);
    ck_assert_double_ge(coro_now() - t0, 0.02);
    ck_assert_int_eq(write(c[1], "ab", 2), 2);
    ck_assert_int_eq(await_read_until(c[0], buf, sizeof buf, "\n", 0.02,
                                      &got),
                     ETIMEDOUT);
    ck_assert_uint_eq(got, 2); /* consumed; a line protocol is broken now */
    ck_assert_int_eq(await_read_full(c[0], buf, 4, 0.02, &got), ETIMEDOUT);
    ck_assert_int_eq(await_read(c[0], buf, sizeof buf, NAN, &got), EINVAL);
    ck_assert_int_eq(await_read(c[0], buf, sizeof buf, 1, NULL), EINVAL);
    close(c[0]);
    close(c[1]);
    return NULL;
}

START_TEST(helpers_time_out)
{
    run_expect(timeouts_main, NULL, 0);
}
END_TEST

/* Peer's writes arrive a few bytes at a time; the reader's message
 * boundaries hold and nothing past a delimiter is consumed. */
static void *dribble(void *arg)
{
    int fd = (int)(intptr_t)arg;
    const char *msg = "GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY1234line2\nrest";
    for (const char *p = msg; *p; p += 3) {
        size_t n = strlen(p) < 3 ? strlen(p) : 3;
        ck_assert_int_eq(await_write_all(fd, p, n, 5), 0);
        await_sleep(0.001);
    }
    close(fd);
    return NULL;
}

static void *partial_main(void *arg)
{
    (void)arg;
    int c[2];
    tcp_pair(c);
    coro_task *writer = coro_spawn(dribble, (void *)(intptr_t)c[1]);
    char buf[128];
    size_t got;
    ck_assert_int_eq(await_read_until(c[0], buf, sizeof buf, "\r\n\r\n", 5,
                                      &got),
                     0);
    ck_assert_uint_eq(got, 27);
    ck_assert(memcmp(buf, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27) == 0);
    ck_assert_int_eq(await_read_full(c[0], buf, 8, 5, &got), 0);
    ck_assert(memcmp(buf, "BODY1234", 8) == 0);
    ck_assert_int_eq(await_read_until(c[0], buf, sizeof buf, "\n", 5, &got),
                     0);
    ck_assert_uint_eq(got, 6);
    /* The stream ends before another delimiter, or before 10 bytes. */
    ck_assert_int_eq(await_read_until(c[0], buf, sizeof buf, "\n", 5, &got),
                     EPIPE);
    ck_assert_uint_eq(got, 4);
    ck_assert(memcmp(buf, "rest", 4) == 0);
    ck_assert_int_eq(await_read(c[0], buf, sizeof buf, 5, &got), 0);
    ck_assert_uint_eq(got, 0); /* end of stream */
    ck_assert_int_eq(await_task(writer, NULL), 0);
    close(c[0]);
    return NULL;
}

START_TEST(partial_reads_across_many_small_writes)
{
    run_expect(partial_main, NULL, 0);
}
END_TEST

static void *limits_main(void *arg)
{
    (void)arg;
    int c[2];
    tcp_pair(c);
    char buf[8];
    size_t got;
    ck_assert_int_eq(await_write_all(c[1], "0123456789\n", 11, 5), 0);
    ck_assert_int_eq(await_read_until(c[0], buf, sizeof buf, "\n", 5, &got),
                     ENOBUFS);
    ck_assert_uint_eq(got, sizeof buf);
    ck_assert_int_eq(await_read_until(c[0], buf, sizeof buf, "", 5, &got),
                     EINVAL);
    ck_assert_int_eq(await_read_until(c[0], buf, sizeof buf, NULL, 5, &got),
                     EINVAL);
    close(c[1]);
    ck_assert_int_eq(await_read_full(c[0], buf, 8, 5, &got), EPIPE);
    ck_assert_uint_eq(got, 3);
    close(c[0]);
    /* Pipes cannot peek: read_until takes a byte at a time. */
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    ck_assert_int_eq(write(p[1], "ab\ncd\n", 6), 6);
    ck_assert_int_eq(await_read_until(p[0], buf, sizeof buf, "\n", 5, &got),
                     0);
    ck_assert_uint_eq(got, 3);
    ck_assert_int_eq(await_read_until(p[0], buf, sizeof buf, "\n", 5, &got),
                     0);
    ck_assert(memcmp(buf, "cd\n", 3) == 0);
    close(p[0]);
    close(p[1]);
    return NULL;
}

START_TEST(read_until_limits_and_pipes)
{
    run_expect(limits_main, NULL, 0);
}
END_TEST

static void *reset_main(void *arg)
{
    (void)arg;
    int c[2];
    tcp_pair(c);
    /* Close with an RST: SO_LINGER of zero. */
    struct linger lg = { 1, 0 };
    ck_assert_int_eq(setsockopt(c[1], SOL_SOCKET, SO_LINGER, &lg, sizeof lg),
                     0);
    close(c[1]);
    char buf[16];
    size_t got;
    ck_assert_int_eq(await_read(c[0], buf, sizeof buf, 5, &got), ECONNRESET);
    close(c[0]);

    /* Writing to a peer that is gone: an error code, never SIGPIPE. */
    tcp_pair(c);
    close(c[1]);
    static char big[1 << 20];
    int err = 0;
    for (int i = 0; i < 10 && !err; i++) {
        err = await_write_all(c[0], big, sizeof big, 5);
        await_sleep(0.005);
    }
    ck_assert_msg(err == EPIPE || err == ECONNRESET, "write: %d", err);
    close(c[0]);
    ck_assert_int_eq(await_read(c[0], buf, sizeof buf, 5, &got), EBADF);
    ck_assert_int_eq(await_write_all(c[0], "x", 1, 5), EBADF);
    return NULL;
}

/* A peer that disconnects mid-message gives an error code, not a crash. */
START_TEST(peer_reset_and_gone_peer_are_errors)
{
    run_expect(reset_main, NULL, 0);
}
END_TEST

/* Each helper, blocked, is cancelled promptly with ECANCELED. */
enum { IN_ACCEPT, IN_READ, IN_READ_UNTIL, IN_READ_FULL, IN_WRITE_ALL };

struct blocked {
    int which;
    int fd;
    int err;
};

static void *block_in_helper(void *arg)
{
    struct blocked *b = arg;
    static char big[4 << 20];
    char buf[64];
    size_t got;
    int fd;
    switch (b->which) {
    case IN_ACCEPT:
        b->err = await_accept(b->fd, 30, &fd);
        break;
    case IN_READ:
        b->err = await_read(b->fd, buf, sizeof buf, 30, &got);
        break;
    case IN_READ_UNTIL:
        b->err = await_read_until(b->fd, buf, sizeof buf, "\n", 30, &got);
        break;
    case IN_READ_FULL:
        b->err = await_read_full(b->fd, buf, sizeof buf, 30, &got);
        break;
    default:
        b->err = await_write_all(b->fd, big, sizeof big, 30);
        break;
    }
    return NULL;
}

static void *cancel_helpers_main(void *arg)
{
    (void)arg;
    for (int which = IN_ACCEPT; which <= IN_WRITE_ALL; which++) {
        int port, c[2];
        int lfd = listener(&port);
        tcp_pair(c);
        /* Small buffers, so that 4 MiB cannot fit them: loopback TCP
         * autotunes its buffers to megabytes (the write completed within
         * the sleep once, under make tsan). */
        int small = 4096;
        ck_assert_int_eq(setsockopt(c[0], SOL_SOCKET, SO_SNDBUF, &small,
                                    sizeof small), 0);
        ck_assert_int_eq(setsockopt(c[1], SOL_SOCKET, SO_RCVBUF, &small,
                                    sizeof small), 0);
        struct blocked b = { which, which == IN_ACCEPT ? lfd : c[0], -1 };
        coro_task *t = coro_spawn(block_in_helper, &b);
        await_sleep(0.02);
        ck_assert_int_eq(b.err, -1); /* blocked */
        double t0 = coro_now();
        coro_cancel(t);
        ck_assert_int_eq(await_task(t, NULL), ECANCELED);
        ck_assert_msg(b.err == ECANCELED, "helper %d: %d", which, b.err);
        ck_assert_double_lt(coro_now() - t0, 0.05 * test_slow());
        close(lfd);
        close(c[0]);
        close(c[1]);
    }
    /* Cancelled before: nothing is done. */
    coro_cancel(coro_self());
    int fd;
    char buf[4];
    size_t got;
    ck_assert_int_eq(await_dial("127.0.0.1", 80, 1, &fd), ECANCELED);
    ck_assert_int_eq(await_read(0, buf, 4, 1, &got), ECANCELED);
    ck_assert_int_eq(await_write_all(1, "x", 1, 1), ECANCELED);
    return NULL;
}

struct dial_probe {
    int port;
    int err;
};

static void *dial_blocked(void *arg)
{
    struct dial_probe *d = arg;
    int fd = -1;
    d->err = await_dial("127.0.0.1", d->port, 30, &fd);
    if (fd >= 0 && d->err == 0)
        close(fd);
    return NULL;
}

static void *cancel_dial_main(void *arg)
{
    int *blocked = arg;
    int lfd, port;
    ck_assert_int_eq(coro_listen("127.0.0.1", 0, 1, &lfd), 0);
    ck_assert_int_eq(coro_sock_port(lfd, &port), 0);
    /* Never accepted: once the accept queue is full, the kernel drops
     * further SYNs and a connect stays pending. */
    int held[8], nheld = 0;
    for (int i = 0; i < 8; i++) {
        if (await_dial("127.0.0.1", port, 0.05, &held[nheld]) != 0)
            break;
        nheld++;
    }
    struct dial_probe d = { port, -1 };
    coro_task *t = coro_spawn(dial_blocked, &d);
    await_sleep(0.05);
    *blocked = d.err == -1;
    double t0 = coro_now();
    coro_cancel(t);
    ck_assert_int_eq(await_task(t, NULL), ECANCELED);
    if (*blocked) {
        ck_assert_int_eq(d.err, ECANCELED);
        ck_assert_double_lt(coro_now() - t0, 0.05 * test_slow());
    }
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    close(lfd);
    return NULL;
}

/* A dial blocked in connect is cancelled promptly. */
START_TEST(cancellation_in_dial)
{
    int blocked = 0;
    run_expect(cancel_dial_main, &blocked, 0);
    ck_assert_msg(blocked, "could not make a connect block");
}
END_TEST

START_TEST(cancellation_in_each_helper)
{
    ck_assert_int_eq(coro_run(cancel_helpers_main, NULL, NULL), ECANCELED);
}
END_TEST

static void *slow_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static char buf[8192];
    size_t total = 0, got;
    while (await_read(fd, buf, sizeof buf, 5, &got) == 0 && got > 0) {
        total += got;
        await_yield();
    }
    close(fd);
    return (void *)total;
}

static void *write_big_main(void *arg)
{
    (void)arg;
    int c[2];
    tcp_pair(c);
    size_t n = 8 << 20;
    char *big = malloc(n);
    memset(big, 'z', n);
    coro_task *reader = coro_spawn(slow_reader, (void *)(intptr_t)c[1]);
    ck_assert_int_eq(await_write_all(c[0], big, n, 10), 0);
    close(c[0]);
    void *total;
    ck_assert_int_eq(await_task(reader, &total), 0);
    ck_assert_uint_eq((size_t)total, n);
    free(big);
    return NULL;
}

/* 8 MiB through a socket whose buffer fills again and again. */
START_TEST(write_all_waits_for_room)
{
    run_expect(write_big_main, NULL, 0);
}
END_TEST

START_TEST(helpers_outside_a_coroutine_are_eperm)
{
    char buf[4];
    size_t got;
    int fd;
    ck_assert_int_eq(await_accept(0, 1, &fd), EPERM);
    ck_assert_int_eq(await_read(0, buf, 4, 1, &got), EPERM);
    ck_assert_int_eq(await_read_full(0, buf, 4, 1, &got), EPERM);
    ck_assert_int_eq(await_read_until(0, buf, 4, "\n", 1, &got), EPERM);
    ck_assert_int_eq(await_write_all(1, "x", 1, 1), EPERM);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* Fds the caller made: blocking ones never block the loop                */
/* ---------------------------------------------------------------------- */

struct pipe_io {
    int         fd;
    char       *buf;
    size_t      n;
    double      delay;
    int         err;
    size_t      got;
};

static void *write_later(void *arg)
{
    struct pipe_io *w = arg;
    await_sleep(w->delay);
    w->err = await_write_all(w->fd, w->buf, w->n, 5);
    return NULL;
}

static void *read_all_of(void *arg)
{
    struct pipe_io *r = arg;
    r->err = await_read_full(r->fd, r->buf, r->n, 5, &r->got);
    return NULL;
}

static int ticks;

static void *ticker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++) {
        await_sleep(0.005);
        ticks++;
    }
    return NULL;
}

static void *blocking_pipe_main(void *arg)
{
    (void)arg;
    int p[2];
    ck_assert_int_eq(pipe(p), 0); /* both ends blocking */
    /* A read waits on the reactor, and the other tasks run meanwhile. */
    static char msg[] = "hello";
    struct pipe_io w = { p[1], msg, 5, 0.05, -1, 0 };
    coro_task *wt = coro_spawn(write_later, &w);
    coro_task *tt = coro_spawn(ticker, NULL);
    char buf[16];
    size_t got = 0;
    ck_assert_int_eq(await_read(p[0], buf, sizeof buf, 1, &got), 0);
    ck_assert_uint_eq(got, 5);
    ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
    ck_assert_int_eq(ticks, 5);
    ck_assert_int_eq(await_task(wt, NULL), 0);
    ck_assert_int_eq(w.err, 0);
    ck_assert_int_eq(await_task(tt, NULL), 0);
    /* Its own timeout fires: nothing is written. */
    ck_assert_int_eq(await_read(p[0], buf, sizeof buf, 0.02, &got),
                     ETIMEDOUT);
    /* More than the pipe holds, through both blocking ends at once. */
    enum { BIG = 300 << 10 };
    static char out[BIG], in[BIG];
    for (size_t i = 0; i < BIG; i++)
        out[i] = (char)(i * 7);
    struct pipe_io r = { p[0], in, BIG, 0, -1, 0 };
    coro_task *rt = coro_spawn(read_all_of, &r);
    ck_assert_int_eq(await_write_all(p[1], out, BIG, 5), 0);
    ck_assert_int_eq(await_task(rt, NULL), 0);
    ck_assert_int_eq(r.err, 0);
    ck_assert_uint_eq(r.got, BIG);
    ck_assert_int_eq(memcmp(in, out, BIG), 0);
    /* Lines from a blocking pipe, and what follows stays. */
    ck_assert_int_eq(write(p[1], "ab\ncd", 5), 5);
    ck_assert_int_eq(await_read_until(p[0], buf, sizeof buf, "\n", 1, &got),
                     0);
    ck_assert_uint_eq(got, 3);
    ck_assert_int_eq(await_read(p[0], buf, sizeof buf, 1, &got), 0);
    ck_assert_uint_eq(got, 2);
    /* The flags are the caller's: still blocking. */
    ck_assert_int_eq(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    ck_assert_int_eq(fcntl(p[1], F_GETFL) & O_NONBLOCK, 0);
    close(p[0]);
    close(p[1]);
    return NULL;
}

static void *count_a_tick(void *arg)
{
    (void)arg;
    ticks++;
    return NULL;
}

static void *zero_timeout_main(void *arg)
{
    (void)arg;
    int p[2];
    ck_assert_int_eq(pipe(p), 0); /* blocking both ends */
    char buf[8];
    size_t got = 0;
    /* Ready: each completes at once. */
    ck_assert_int_eq(await_write_all(p[1], "ab\ncd", 5, 0), 0);
    ck_assert_int_eq(await_read(p[0], buf, 1, 0, &got), 0);
    ck_assert_uint_eq(got, 1);
    ck_assert_int_eq(await_read_until(p[0], buf, sizeof buf, "\n", 0, &got),
                     0);
    ck_assert_uint_eq(got, 2);
    ck_assert_int_eq(await_read_full(p[0], buf, 2, 0, &got), 0);
    ck_assert_uint_eq(got, 2);
    /* Not ready: ETIMEDOUT at once, with what came, once the other
     * ready tasks ran, as any wait with timeout 0. */
    double t0 = coro_now();
    ticks = 0;
    coro_task *tick = coro_spawn(count_a_tick, NULL);
    ck_assert_int_eq(await_read(p[0], buf, 1, 0, &got), ETIMEDOUT);
    ck_assert_int_eq(ticks, 1);
    ck_assert_int_eq(await_task(tick, NULL), 0);
    ck_assert_int_eq(await_write_all(p[1], "x", 1, 0), 0);
    ck_assert_int_eq(await_read_full(p[0], buf, 2, 0, &got), ETIMEDOUT);
    ck_assert_uint_eq(got, 1);
    ck_assert_double_lt(coro_now() - t0, 0.5);
    /* The end of the stream is seen, not timed out. */
    close(p[1]);
    ck_assert_int_eq(await_read(p[0], buf, 1, 0, &got), 0);
    ck_assert_uint_eq(got, 0);
    close(p[0]);
    /* A blocking listener with a connection waiting. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(lfd, 8), 0);
    int port, fd = -1;
    ck_assert_int_eq(coro_sock_port(lfd, &port), 0);
    ck_assert_int_eq(await_accept(lfd, 0, &fd), ETIMEDOUT);
    int c = dial(port);
    ck_assert_int_eq(await_accept(lfd, 0, &fd), 0);
    ck_assert_int_ge(fd, 0);
    close(fd);
    close(c);
    close(lfd);
    return NULL;
}

/* A timeout of 0 only tries, on a blocking fd too: an operation that can
 * complete does (it waited for the reactor's word with a deadline that
 * had passed, and timed out on a ready pipe). */
START_TEST(a_zero_timeout_on_a_ready_blocking_fd_completes)
{
    run_expect(zero_timeout_main, NULL, 0);
}
END_TEST

START_TEST(blocking_pipes_never_block_the_loop)
{
    ticks = 0;
    run_expect(blocking_pipe_main, NULL, 0);
}
END_TEST

static void *wrong_end_main(void *arg)
{
    (void)arg;
    char buf[8];
    size_t got = 99;
    for (int nonblocking = 0; nonblocking < 2; nonblocking++) {
        int p[2];
        ck_assert_int_eq(pipe2(p, nonblocking ? O_NONBLOCK : 0), 0);
        double t0 = coro_now();
        ck_assert_int_eq(await_write_all(p[0], "x", 1, 1), EBADF);
        ck_assert_int_eq(await_read(p[1], buf, sizeof buf, 1, &got), EBADF);
        ck_assert_uint_eq(got, 0);
        ck_assert_int_eq(await_read_full(p[1], buf, sizeof buf, 1, &got),
                         EBADF);
        ck_assert_int_eq(
            await_read_until(p[1], buf, sizeof buf, "\n", 1, &got), EBADF);
        ck_assert_double_lt(coro_now() - t0, 0.5);
        close(p[0]);
        close(p[1]);
    }
    return NULL;
}

static void *zero_length_main(void *arg)
{
    (void)arg;
    int p[2], sv[2];
    ck_assert_int_eq(pipe(p), 0); /* blocking, and nothing to read */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(write(sv[1], "data", 4), 4);
    const int fds[] = { p[0], sv[0], -1, 1 << 30 };
    char buf[8];
    double t0 = coro_now();
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++) {
        size_t got = 99;
        ck_assert_int_eq(await_read(fds[i], buf, 0, 1, &got), 0);
        ck_assert_uint_eq(got, 0);
        ck_assert_int_eq(await_read(fds[i], NULL, 0, -1, &got), 0);
        got = 99;
        ck_assert_int_eq(await_read_full(fds[i], NULL, 0, -1, &got), 0);
        ck_assert_uint_eq(got, 0);
        ck_assert_int_eq(await_write_all(fds[i], NULL, 0, -1), 0);
    }
    ck_assert_double_lt(coro_now() - t0, 0.5);
    /* Nothing was taken. */
    ck_assert_int_eq(read(sv[0], buf, sizeof buf), 4);
    /* The entry checks still hold. */
    size_t got;
    ck_assert_int_eq(await_read(p[0], buf, 0, 0.0 / 0.0, &got), EINVAL);
    coro_cancel(coro_self());
    ck_assert_int_eq(await_read(p[0], buf, 0, 1, &got), ECANCELED);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

/* Zero bytes to read or write return 0 at once without touching the fd,
 * as asyncio's read(0), readexactly(0) and write(b"") do; a read of 0
 * bytes waited for the fd to become readable (forever on an empty pipe
 * without a timeout), where the other two returned at once. */
START_TEST(zero_bytes_to_read_or_write_return_at_once)
{
    run_expect(zero_length_main, NULL, ECANCELED);
}
END_TEST

/* The end of a pipe that cannot go the way asked is EBADF at once, as
 * read(2) and write(2) say; a blocking one waited for a readiness that
 * never comes (until the timeout, or forever without one). */
START_TEST(the_wrong_end_of_a_pipe_is_ebadf_at_once)
{
    run_expect(wrong_end_main, NULL, 0);
}
END_TEST

static void *dial_later(void *arg)
{
    int port = (int)(intptr_t)arg;
    await_sleep(0.02);
    int fd = dial(port);
    close(fd);
    return NULL;
}

static void *blocking_listener_main(void *arg)
{
    (void)arg;
    int lfd = socket(AF_INET, SOCK_STREAM, 0); /* blocking */
    ck_assert_int_ge(lfd, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(lfd, 8), 0);
    int port;
    ck_assert_int_eq(coro_sock_port(lfd, &port), 0);
    coro_task *d = coro_spawn(dial_later, (void *)(intptr_t)port);
    coro_task *tt = coro_spawn(ticker, NULL);
    int fd = -1;
    ck_assert_int_eq(await_accept(lfd, 5, &fd), 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(ticks, 2); /* the ticker ran while accept waited */
    close(fd);
    ck_assert_int_eq(await_accept(lfd, 0.02, &fd), ETIMEDOUT);
    ck_assert_int_eq(await_task(d, NULL), 0);
    ck_assert_int_eq(await_task(tt, NULL), 0);
    close(lfd);
    return NULL;
}

static void *accept_non_listener_main(void *arg)
{
    (void)arg;
    int p[2];
    ck_assert_int_eq(pipe(p), 0); /* blocking, and nothing to read */
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    int unix_dgram = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(udp, 0);
    ck_assert_int_ge(tcp, 0);
    ck_assert_int_ge(unix_dgram, 0);
    const struct {
        int fd;
        int err;
    } cases[] = { { p[0], ENOTSOCK },      { p[1], ENOTSOCK },
                  { udp, EOPNOTSUPP },     { tcp, EINVAL },
                  { unix_dgram, EOPNOTSUPP } };
    double t0 = coro_now();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int fd = -7;
        ck_assert_int_eq(await_accept(cases[i].fd, 1, &fd), cases[i].err);
        ck_assert_int_eq(fd, -7);
    }
    ck_assert_double_lt(coro_now() - t0, 0.5);
    close(p[0]);
    close(p[1]);
    close(udp);
    close(tcp);
    close(unix_dgram);
    return NULL;
}

/* A blocking fd that is no listening socket gets accept's own answer at
 * once: it waited for a connection that could never come (a pipe, a
 * datagram socket), until the timeout or forever. */
START_TEST(accept_on_a_blocking_non_listener_fails_at_once)
{
    run_expect(accept_non_listener_main, NULL, 0);
}
END_TEST

START_TEST(a_blocking_listener_never_blocks_the_loop)
{
    ticks = 0;
    run_expect(blocking_listener_main, NULL, 0);
}
END_TEST

static void *gone_reader_main(void *arg)
{
    (void)arg;
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK), 0);
    close(p[0]);
    ck_assert_int_eq(await_write_all(p[1], "x", 1, 1), EPIPE);
    close(p[1]);
    ck_assert_int_eq(pipe(p), 0);
    close(p[0]);
    ck_assert_int_eq(await_write_all(p[1], "x", 1, 1), EPIPE);
    close(p[1]);
    return NULL;
}

START_TEST(write_all_to_a_pipe_without_reader_is_epipe_not_sigpipe)
{
    /* SIGPIPE's default action would end this process. */
    run_expect(gone_reader_main, NULL, 0);
    sigset_t pending;
    sigpending(&pending);
    ck_assert(!sigismember(&pending, SIGPIPE));
}
END_TEST

static void *datagram_until_main(void *arg)
{
    (void)arg;
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv),
                     0);
    ck_assert_int_eq(send(sv[0], "one\ntwo", 7, 0), 7);
    char buf[16];
    size_t got = 99;
    ck_assert_int_eq(await_read_until(sv[1], buf, sizeof buf, "\n", 1, &got),
                     EPROTOTYPE);
    ck_assert_uint_eq(got, 0);
    /* Nothing was taken: the whole datagram is still there. */
    ck_assert_int_eq(recv(sv[1], buf, sizeof buf, 0), 7);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

START_TEST(read_until_refuses_datagram_sockets)
{
    run_expect(datagram_until_main, NULL, 0);
}
END_TEST

Suite *net_suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc = test_case("sockets", 30);
    tcase_add_test(tc, echo_round_trips);
    tcase_add_test(tc, many_connections_at_once);
    tcase_add_test(tc, dial_resolves_names_and_reports_failures);
    tcase_add_test(tc, listen_rejects_bad_input);
    tcase_add_test(tc, listen_and_sock_port_sweep_bad_input);
    tcase_add_test(tc, helpers_sweep_bad_fds_and_arguments);
    tcase_add_test(tc, listen_flags_share_a_port);
    tcase_add_test(tc, helpers_time_out);
    tcase_add_test(tc, partial_reads_across_many_small_writes);
    tcase_add_test(tc, read_until_limits_and_pipes);
    tcase_add_test(tc, peer_reset_and_gone_peer_are_errors);
    tcase_add_test(tc, cancellation_in_each_helper);
    tcase_add_test(tc, cancellation_in_dial);
    tcase_add_test(tc, write_all_waits_for_room);
    tcase_add_test(tc, helpers_outside_a_coroutine_are_eperm);
    tcase_add_test(tc, blocking_pipes_never_block_the_loop);
    tcase_add_test(tc, a_zero_timeout_on_a_ready_blocking_fd_completes);
    tcase_add_test(tc, the_wrong_end_of_a_pipe_is_ebadf_at_once);
    tcase_add_test(tc, zero_bytes_to_read_or_write_return_at_once);
    tcase_add_test(tc, a_blocking_listener_never_blocks_the_loop);
    tcase_add_test(tc, accept_on_a_blocking_non_listener_fails_at_once);
    tcase_add_test(tc, write_all_to_a_pipe_without_reader_is_epipe_not_sigpipe);
    tcase_add_test(tc, read_until_refuses_datagram_sockets);
    suite_add_tcase(s, tc);
    return s;
}
