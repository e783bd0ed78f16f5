/* Tests for hook.c, the opt-in hooks (README "Hooks"): every hooked call
 * outside a coroutine and inside one; fds the caller made non-blocking;
 * the end of a stream, errors and signals; writes that must send all;
 * cancellation, socket timeouts and timeout scopes while parked; libcurl's
 * easy interface in coroutines; and a program built without the hooks run
 * with LD_PRELOAD. This runner (test/hook_main.c) links hook.c in: a call
 * that the hooks failed to park blocks the loop, and the test hangs until
 * Check's timeout says so. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"
#include "local_server.h"

#ifndef CORO_TEST_HOOK_DIR
#define CORO_TEST_HOOK_DIR "build/hook"
#endif

/* ---- fixtures ---- */

static int p[2]; /* a blocking pipe */
static int s[2]; /* a blocking stream socket pair */

static void fds_open(void)
{
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
}

static void fds_close(void)
{
    close(p[0]);
    close(p[1]);
    close(s[0]);
    close(s[1]);
}

/* Runs fn as coro_run's main with the pipe and socket pair open. */
static void run_with_fds(coro_fn fn)
{
    fds_open();
    run_expect(fn, NULL, 0);
    fds_close();
}

static int nonblocking(int fd)
{
    return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

/* A task that counts while the task under test is parked: a count of 0
 * after a call that had to wait means the call blocked the loop. */
static volatile int ticks;
static volatile int ticking;

static void *ticker(void *arg)
{
    (void)arg;
    while (ticking) {
        ticks++;
        await_sleep(0.002);
    }
    return NULL;
}

static coro_task *ticker_start(void)
{
    ticks = 0;
    ticking = 1;
    return coro_spawn(ticker, NULL);
}

static void ticker_stop(coro_task *t)
{
    ticking = 0;
    ck_assert_int_eq(await_task(t, NULL), 0);
}

/* Writes `what` to fd after `delay` seconds. */
struct later {
    int         fd;
    double      delay;
    const char *what;
};

static void *write_later(void *arg)
{
    struct later *l = arg;
    await_sleep(l->delay);
    ssize_t n = write(l->fd, l->what, strlen(l->what));
    ck_assert_int_eq(n, (ssize_t)strlen(l->what));
    return NULL;
}

static int listener(int flags, int *port);
static int connect_to(int port, int flags, int *err);

/* ---- outside a coroutine: libc's calls as they are ---- */

static void *blocking_read_job(void *arg)
{
    char *buf = arg;
    ssize_t n = read(p[0], buf, 15); /* a worker thread: passes through */
    buf[n > 0 ? n : 0] = '\0';
    return (void *)n;
}

static void *read_on_a_worker(void *arg)
{
    (void)arg;
    static struct later l;
    l = (struct later){ p[1], 0.02, "worker" };
    coro_task *w = coro_spawn(write_later, &l);
    static char buf[16];
    void *res = NULL;
    ck_assert_int_eq(await_blocking(blocking_read_job, buf, &res), 0);
    ck_assert_int_eq((ssize_t)res, 6);
    ck_assert_str_eq(buf, "worker");
    ck_assert_int_eq(await_task(w, NULL), 0);
    return NULL;
}

START_TEST(outside_a_coroutine_every_call_passes_through)
{
    fds_open();
    char buf[16];
    ck_assert_int_eq(write(p[1], "ab", 2), 2);
    ck_assert_int_eq(read(p[0], buf, sizeof buf), 2);
    struct iovec iov = { "cd", 2 };
    ck_assert_int_eq(writev(s[0], &iov, 1), 2);
    iov = (struct iovec){ buf, sizeof buf };
    ck_assert_int_eq(readv(s[1], &iov, 1), 2);
    ck_assert_int_eq(send(s[0], "e", 1, 0), 1);
    ck_assert_int_eq(recv(s[1], buf, sizeof buf, 0), 1);
    ck_assert_int_eq(sendto(s[0], "f", 1, 0, NULL, 0), 1);
    ck_assert_int_eq(recvfrom(s[1], buf, sizeof buf, 0, NULL, NULL), 1);
    struct msghdr m = { .msg_iov = &(struct iovec){ "g", 1 },
                        .msg_iovlen = 1 };
    ck_assert_int_eq(sendmsg(s[0], &m, 0), 1);
    m.msg_iov = &iov;
    ck_assert_int_eq(recvmsg(s[1], &m, 0), 1);
    struct pollfd pf = { p[0], POLLIN, 0 };
    ck_assert_int_eq(poll(&pf, 1, 10), 0); /* a real 10 ms wait */
    ck_assert_int_eq(ppoll(&pf, 1, &(struct timespec){ 0, 1000000 }, NULL),
                     0);
    fd_set r;
    FD_ZERO(&r);
    FD_SET(s[1], &r);
    ck_assert_int_eq(write(s[0], "h", 1), 1);
    ck_assert_int_eq(select(s[1] + 1, &r, NULL, NULL, NULL), 1);
    ck_assert(FD_ISSET(s[1], &r));
    ck_assert_int_eq(nanosleep(&(struct timespec){ 0, 1000000 }, NULL), 0);
    ck_assert_int_eq(clock_nanosleep(CLOCK_MONOTONIC, 0,
                                     &(struct timespec){ 0, 1000000 }, NULL),
                     0);
    ck_assert_int_eq(usleep(1000), 0);
    ck_assert_uint_eq(sleep(0), 0);
    struct addrinfo hints = { .ai_flags = AI_NUMERICHOST,
                              .ai_socktype = SOCK_STREAM }, *res = NULL;
    ck_assert_int_eq(getaddrinfo("127.0.0.1", "80", &hints, &res), 0);
    ck_assert_ptr_nonnull(res);
    freeaddrinfo(res);
    /* a connection the kernel completes before accept is asked */
    int port, err;
    int l = listener(0, &port);
    int c = connect_to(port, 0, &err);
    ck_assert_int_eq(err, 0);
    int a = accept(l, NULL, NULL);
    ck_assert_int_ge(a, 0);
    close(a);
    close(c);
    c = connect_to(port, 0, &err);
    ck_assert_int_eq(err, 0);
    a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(a, 0);
    close(a);
    close(c);
    close(l);
    /* And on a loop's worker thread: not a coroutine either. */
    run_expect(read_on_a_worker, NULL, 0);
    fds_close();
}
END_TEST

/* ---- reads ---- */

static void *read_pipe(void *arg)
{
    (void)arg;
    static struct later l;
    l = (struct later){ p[1], 0.02, "pipe" };
    coro_task *t = ticker_start(), *w = coro_spawn(write_later, &l);
    char buf[16];
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    ck_assert_int_eq(n, 4);
    ck_assert(memcmp(buf, "pipe", 4) == 0);
    ck_assert_int_gt(ticks, 0);
    ck_assert_int_eq(await_task(w, NULL), 0);
    /* readv the same way */
    l.what = "vector";
    w = coro_spawn(write_later, &l);
    char a[3], b[8];
    struct iovec iov[2] = { { a, sizeof a }, { b, sizeof b } };
    ck_assert_int_eq(readv(p[0], iov, 2), 6);
    ck_assert(memcmp(a, "vec", 3) == 0 && memcmp(b, "tor", 3) == 0);
    ck_assert_int_eq(await_task(w, NULL), 0);
    ticker_stop(t);
    ck_assert(!nonblocking(p[0]));
    return NULL;
}

START_TEST(read_and_readv_on_a_pipe_park_until_a_task_writes)
{
    run_with_fds(read_pipe);
}
END_TEST

static void *read_socket(void *arg)
{
    (void)arg;
    static struct later l;
    l = (struct later){ s[1], 0.01, "one" };
    coro_task *t = ticker_start(), *w = coro_spawn(write_later, &l);
    char buf[32];
    ck_assert_int_eq(read(s[0], buf, sizeof buf), 3);
    ck_assert_int_eq(await_task(w, NULL), 0);
    l.what = "two";
    w = coro_spawn(write_later, &l);
    ck_assert_int_eq(recv(s[0], buf, sizeof buf, 0), 3);
    ck_assert_int_eq(await_task(w, NULL), 0);
    l.what = "three";
    w = coro_spawn(write_later, &l);
    ck_assert_int_eq(recvfrom(s[0], buf, sizeof buf, 0, NULL, NULL), 5);
    ck_assert_int_eq(await_task(w, NULL), 0);
    l.what = "four";
    w = coro_spawn(write_later, &l);
    struct iovec iov = { buf, sizeof buf };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    ck_assert_int_eq(recvmsg(s[0], &m, 0), 4);
    ck_assert_int_eq(await_task(w, NULL), 0);
    /* MSG_WAITALL waits for all it asked, across two writes */
    l.what = "wait";
    w = coro_spawn(write_later, &l);
    ck_assert_int_eq(write(s[1], "all", 3), 3);
    ck_assert_int_eq(recv(s[0], buf, 7, MSG_WAITALL), 7);
    ck_assert(memcmp(buf, "allwait", 7) == 0);
    ck_assert_int_eq(await_task(w, NULL), 0);
    ticker_stop(t);
    ck_assert_int_gt(ticks, 0);
    ck_assert(!nonblocking(s[0]));
    return NULL;
}

START_TEST(socket_reads_park_until_data_comes)
{
    run_with_fds(read_socket);
}
END_TEST

/* A pseudo-terminal takes no RWF_NOWAIT: read once poll says ready. */
static int pty_m, pty_s;

static void *read_tty(void *arg)
{
    (void)arg;
    static struct later l;
    l = (struct later){ pty_m, 0.02, "tty\n" };
    coro_task *t = ticker_start(), *w = coro_spawn(write_later, &l);
    char buf[16];
    ck_assert_int_eq(read(pty_s, buf, sizeof buf), 4);
    ck_assert(memcmp(buf, "tty\n", 4) == 0);
    ck_assert_int_gt(ticks, 0);
    ck_assert_int_eq(await_task(w, NULL), 0);
    ck_assert_int_eq(write(pty_s, "out", 3), 3);
    ck_assert_int_eq(read(pty_m, buf, sizeof buf), 3);
    ticker_stop(t);
    ck_assert(!nonblocking(pty_s));
    return NULL;
}

/* Opens a pseudo-terminal pair into pty_m and pty_s, its slave in raw
 * mode or without echo only; 0 where the machine has none (said on
 * stderr: the test then checks nothing). */
static int pty_open(int raw)
{
    pty_m = posix_openpt(O_RDWR | O_NOCTTY);
    if (pty_m < 0 && (errno == ENOENT || errno == ENODEV)) {
        fprintf(stderr, "no pseudo-terminals here (/dev/ptmx): tty case "
                        "not run\n");
        return 0;
    }
    ck_assert_int_ge(pty_m, 0);
    ck_assert_int_eq(grantpt(pty_m), 0);
    ck_assert_int_eq(unlockpt(pty_m), 0);
    pty_s = open(ptsname(pty_m), O_RDWR | O_NOCTTY);
    ck_assert_int_ge(pty_s, 0);
    struct termios tio; /* the master reads only what is sent */
    ck_assert_int_eq(tcgetattr(pty_s, &tio), 0);
    if (raw)
        cfmakeraw(&tio);
    else
        tio.c_lflag &= ~(tcflag_t)ECHO;
    ck_assert_int_eq(tcsetattr(pty_s, TCSANOW, &tio), 0);
    return 1;
}

START_TEST(a_tty_is_read_once_poll_says_ready)
{
    if (!pty_open(0))
        return;
    run_expect(read_tty, NULL, 0);
    close(pty_s);
    close(pty_m);
}
END_TEST

/* A write of a MiB to a terminal whose reader is a task of the same loop
 * (the pty's master): the writer parks while the terminal is full, through
 * a description of its own, and the caller's flags stay as they were. */
static void *pty_reader(void *arg)
{
    size_t want = *(size_t *)arg, got = 0;
    static char buf[4096];
    await_sleep(0.02);
    while (got < want) {
        ssize_t n = read(pty_m, buf, sizeof buf);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    return (void *)got;
}

static void *write_tty(void *arg)
{
    (void)arg;
    static size_t want = 1 << 20;
    char *data = malloc(want);
    ck_assert_ptr_nonnull(data);
    memset(data, 'x', want);
    coro_task *r = coro_spawn(pty_reader, &want);
    ck_assert_int_eq(write(pty_s, data, want), (ssize_t)want);
    void *got;
    ck_assert_int_eq(await_task(r, &got), 0);
    ck_assert_int_eq((size_t)got, want);
    ck_assert(!nonblocking(pty_s));
    free(data);
    return NULL;
}

START_TEST(a_tty_write_parks_while_the_terminal_is_full)
{
    if (!pty_open(1))
        return;
    run_expect(write_tty, NULL, 0);
    close(pty_s);
    close(pty_m);
}
END_TEST

/* Two tasks read one pipe: the second waits beside the first (coro lets
 * one task wait to read an fd; the hook then waits on an epoll of its
 * own), and each gets a byte. */
static void *read_one_byte(void *arg)
{
    char *got = arg;
    ck_assert_int_eq(read(p[0], got, 1), 1);
    return NULL;
}

static void *two_readers(void *arg)
{
    (void)arg;
    static char got[2];
    coro_task *r[2] = { coro_spawn(read_one_byte, &got[0]),
                        coro_spawn(read_one_byte, &got[1]) };
    await_sleep(0.01);
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    await_sleep(0.01);
    ck_assert_int_eq(write(p[1], "y", 1), 1);
    ck_assert_int_eq(await_gather(r, 2, NULL, NULL), 0);
    ck_assert((got[0] == 'x' && got[1] == 'y') ||
              (got[0] == 'y' && got[1] == 'x'));
    return NULL;
}

START_TEST(two_tasks_reading_one_fd_both_park)
{
    run_with_fds(two_readers);
}
END_TEST

/* ---- writes: a blocking write returns when all is sent ---- */

#define BIG (1 << 20)

static void *drain(void *arg)
{
    int fd = *(int *)arg;
    static char buf[65536];
    size_t total = 0;
    for (;;) {
        await_sleep(0.001);
        ssize_t n = read(fd, buf, sizeof buf);
        ck_assert_int_ge(n, 0);
        if (n == 0)
            break;
        total += (size_t)n;
    }
    return (void *)total;
}

static void *write_big(void *arg)
{
    (void)arg;
    char *data = calloc(1, BIG);
    ck_assert_ptr_nonnull(data);
    /* write, writev, send, sendto, sendmsg on a socket pair; write on a
     * pipe (64 KiB of room); each to a fresh pair, drained by a task */
    for (int how = 0; how < 6; how++) {
        static int fds[2];
        if (how == 5)
            ck_assert_int_eq(pipe(fds), 0);
        else
            ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
        int w = fds[1];
        coro_task *d = coro_spawn(drain, &fds[0]);
        struct iovec iov[2] = { { data, BIG / 2 },
                                { data + BIG / 2, BIG / 2 } };
        struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };
        ssize_t n = how == 1 ? writev(w, iov, 2)
                  : how == 2 ? send(w, data, BIG, 0)
                  : how == 3 ? sendto(w, data, BIG, 0, NULL, 0)
                  : how == 4 ? sendmsg(w, &m, 0)
                             : write(w, data, BIG);
        ck_assert_msg(n == BIG, "way %d: %zd", how, n);
        ck_assert(!nonblocking(w));
        close(w); /* the drain sees the end */
        void *got;
        ck_assert_int_eq(await_task(d, &got), 0);
        ck_assert_int_eq((size_t)got, BIG);
        close(fds[0]);
    }
    free(data);
    return NULL;
}

START_TEST(writes_park_until_all_is_sent)
{
    run_expect(write_big, NULL, 0);
}
END_TEST

/* An fd coro_fd_keep registered: coro remembers the kernel's last word
 * until its own calls see EAGAIN, and a hooked read's EAGAIN must not
 * leave the task spinning on a stale "readable". */
static void *read_kept(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_fd_keep(s[0]), 0);
    ck_assert_int_eq(coro_fd_keep(s[1]), 0);
    static struct later l;
    l = (struct later){ s[1], 0.02, "kept" };
    coro_task *t = ticker_start();
    char buf[8];
    for (int round = 0; round < 3; round++) {
        coro_task *w = coro_spawn(write_later, &l);
        ck_assert_int_eq(read(s[0], buf, sizeof buf), 4);
        ck_assert_int_eq(await_task(w, NULL), 0);
        w = coro_spawn(write_later, &l);
        struct pollfd pf = { s[0], POLLIN, 0 };
        ck_assert_int_eq(poll(&pf, 1, -1), 1);
        ck_assert_int_eq(read(s[0], buf, sizeof buf), 4);
        ck_assert_int_eq(await_task(w, NULL), 0);
    }
    ck_assert_int_gt(ticks, 0);
    /* and a write that fills the socket, drained by a task later */
    static int fds[1];
    fds[0] = s[1];
    char *big = calloc(1, BIG);
    coro_task *d = coro_spawn(drain, &fds[0]);
    ck_assert_int_eq(write(s[0], big, BIG), BIG);
    shutdown(s[0], SHUT_WR);
    void *got;
    ck_assert_int_eq(await_task(d, &got), 0);
    ck_assert_int_eq((size_t)got, BIG);
    free(big);
    ticker_stop(t);
    coro_close(s[0]);
    coro_close(s[1]);
    s[0] = s[1] = -1;
    return NULL;
}

START_TEST(an_fd_coro_keeps_waits_without_spinning)
{
    run_with_fds(read_kept);
}
END_TEST

/* ---- connections ---- */

static int listener(int flags, int *port)
{
    int l = socket(AF_INET, SOCK_STREAM | flags, 0);
    ck_assert_int_ge(l, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(l, 16), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return l;
}

static int connect_to(int port, int flags, int *err)
{
    int c = socket(AF_INET, SOCK_STREAM | flags, 0);
    ck_assert_int_ge(c, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    *err = connect(c, (struct sockaddr *)&a, sizeof a) ? errno : 0;
    return c;
}

static void *dial_later(void *arg)
{
    int port = *(int *)arg, err;
    await_sleep(0.01);
    int c = connect_to(port, 0, &err);
    ck_assert_int_eq(err, 0);
    ck_assert(!nonblocking(c));
    ck_assert_int_eq(write(c, "hi", 2), 2);
    close(c);
    return NULL;
}

static void *connect_accept(void *arg)
{
    (void)arg;
    static int port;
    int l = listener(0, &port);
    coro_task *t = ticker_start(), *d = coro_spawn(dial_later, &port);
    int c = accept(l, NULL, NULL);
    ck_assert_int_ge(c, 0);
    char buf[4];
    ck_assert_int_eq(read(c, buf, sizeof buf), 2);
    close(c);
    ck_assert_int_eq(await_task(d, NULL), 0);
    d = coro_spawn(dial_later, &port);
    c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(c, 0);
    ck_assert(fcntl(c, F_GETFD) & FD_CLOEXEC);
    close(c);
    ck_assert_int_eq(await_task(d, NULL), 0);
    ticker_stop(t);
    ck_assert_int_gt(ticks, 0);
    ck_assert(!nonblocking(l));
    close(l);
    /* refused: the port is closed now */
    int err;
    c = connect_to(port, 0, &err);
    ck_assert_int_eq(err, ECONNREFUSED);
    ck_assert(!nonblocking(c));
    close(c);
    return NULL;
}

START_TEST(connect_and_accept_park_and_leave_the_flags_alone)
{
    run_expect(connect_accept, NULL, 0);
}
END_TEST

/* ---- poll, ppoll, select ---- */

static void *polls(void *arg)
{
    (void)arg;
    static struct later l;
    l = (struct later){ p[1], 0.01, "a" };
    coro_task *t = ticker_start();
    char c;
    /* one fd */
    coro_task *w = coro_spawn(write_later, &l);
    struct pollfd pf[2] = { { p[0], POLLIN, 0 }, { s[0], POLLIN, 0 } };
    ck_assert_int_eq(poll(pf, 1, 5000), 1);
    ck_assert(pf[0].revents & POLLIN);
    ck_assert_int_eq(read(p[0], &c, 1), 1);
    ck_assert_int_eq(await_task(w, NULL), 0);
    /* two fds, the second becomes ready */
    l.fd = s[1];
    w = coro_spawn(write_later, &l);
    ck_assert_int_eq(poll(pf, 2, -1), 1);
    ck_assert(!(pf[0].revents & POLLIN) && (pf[1].revents & POLLIN));
    ck_assert_int_eq(read(s[0], &c, 1), 1);
    ck_assert_int_eq(await_task(w, NULL), 0);
    /* ppoll */
    l.fd = p[1];
    w = coro_spawn(write_later, &l);
    struct timespec ts = { 5, 0 };
    ck_assert_int_eq(ppoll(pf, 2, &ts, NULL), 1);
    ck_assert_int_eq(read(p[0], &c, 1), 1);
    ck_assert_int_eq(await_task(w, NULL), 0);
    /* select, which says how much of its timeout is left */
    w = coro_spawn(write_later, &l);
    fd_set r;
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    FD_SET(s[0], &r);
    struct timeval tv = { 5, 0 };
    int max = p[0] > s[0] ? p[0] : s[0];
    ck_assert_int_eq(select(max + 1, &r, NULL, NULL, &tv), 1);
    ck_assert(FD_ISSET(p[0], &r) && !FD_ISSET(s[0], &r));
    ck_assert(tv.tv_sec < 5 && tv.tv_sec >= 4);
    ck_assert_int_eq(read(p[0], &c, 1), 1);
    ck_assert_int_eq(await_task(w, NULL), 0);
    /* their own timeouts: 0 ready, and the ticker ran meanwhile */
    int before = ticks;
    ck_assert_int_eq(poll(pf, 2, 20), 0);
    ck_assert_int_eq(ppoll(pf, 1, &(struct timespec){ 0, 20000000 }, NULL),
                     0);
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    tv = (struct timeval){ 0, 20000 };
    ck_assert_int_eq(select(p[0] + 1, &r, NULL, NULL, &tv), 0);
    ck_assert(!FD_ISSET(p[0], &r));
    ck_assert_int_eq(poll(NULL, 0, 20), 0); /* poll as a sleep */
    ck_assert_int_gt(ticks, before);
    ticker_stop(t);
    return NULL;
}

START_TEST(poll_ppoll_and_select_park)
{
    run_with_fds(polls);
}
END_TEST

/* ---- sleeps ---- */

static void *sleep_each(void *arg)
{
    int how = (int)(intptr_t)arg;
    struct timespec ts = { 0, 50000000 }, abs;
    switch (how) {
    case 0:
        ck_assert_int_eq(nanosleep(&ts, NULL), 0);
        break;
    case 1:
        ck_assert_int_eq(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL), 0);
        break;
    case 2:
        clock_gettime(CLOCK_REALTIME, &abs);
        abs.tv_nsec += 50000000;
        if (abs.tv_nsec >= 1000000000) {
            abs.tv_sec++;
            abs.tv_nsec -= 1000000000;
        }
        ck_assert_int_eq(
            clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &abs, NULL), 0);
        break;
    case 3:
        ck_assert_int_eq(usleep(50000), 0);
        break;
    default:
        ck_assert_uint_eq(sleep(1), 0);
    }
    return NULL;
}

static void *sleeps(void *arg)
{
    (void)arg;
    /* four kinds of 50 ms sleep, five of each at once */
    coro_task *t[20];
    double t0 = coro_now();
    for (int i = 0; i < 20; i++)
        t[i] = coro_spawn(sleep_each, (void *)(intptr_t)(i % 4));
    ck_assert_int_eq(await_gather(t, 20, NULL, NULL), 0);
    double took = coro_now() - t0;
    ck_assert_msg(took < 20 * 0.05 / 4, "20 sleeps of 50 ms took %.3f s",
                  took);
    ck_assert_double_ge(took, 0.05);
    /* sleep(1) in three tasks: one second, not three */
    t0 = coro_now();
    for (int i = 0; i < 3; i++)
        t[i] = coro_spawn(sleep_each, (void *)(intptr_t)4);
    ck_assert_int_eq(await_gather(t, 3, NULL, NULL), 0);
    took = coro_now() - t0;
    ck_assert_msg(took < 2.0, "three sleep(1) took %.3f s", took);
    return NULL;
}

START_TEST(sleeps_park_side_by_side)
{
    run_expect(sleeps, NULL, 0);
}
END_TEST

/* ---- name resolution ---- */

static void *resolve(void *arg)
{
    (void)arg;
    struct addrinfo hints = { .ai_family = AF_INET,
                              .ai_socktype = SOCK_STREAM }, *res = NULL;
    ck_assert_int_eq(getaddrinfo("localhost", "80", &hints, &res), 0);
    ck_assert_ptr_nonnull(res);
    ck_assert_int_eq(res->ai_family, AF_INET);
    ck_assert_int_eq(
        ntohs(((struct sockaddr_in *)(void *)res->ai_addr)->sin_port), 80);
    freeaddrinfo(res);
    /* no hints, a service only */
    res = NULL;
    ck_assert_int_eq(getaddrinfo(NULL, "80", NULL, &res), 0);
    ck_assert_ptr_nonnull(res);
    freeaddrinfo(res);
    /* what the resolver says stays what it says */
    hints.ai_flags = AI_NUMERICHOST;
    res = NULL;
    ck_assert_int_eq(getaddrinfo("not a number", NULL, &hints, &res),
                     EAI_NONAME);
    ck_assert_ptr_null(res);
    return NULL;
}

START_TEST(getaddrinfo_resolves_on_a_worker)
{
    run_expect(resolve, NULL, 0);
}
END_TEST

/* ---- fds the caller made non-blocking: its EAGAIN, at once ---- */

static void *nonblocking_calls(void *arg)
{
    (void)arg;
    int fl = fcntl(p[0], F_GETFL);
    fcntl(p[0], F_SETFL, fl | O_NONBLOCK);
    fcntl(s[0], F_SETFL, fcntl(s[0], F_GETFL) | O_NONBLOCK);
    char buf[8];
    errno = 0;
    ck_assert_int_eq(read(p[0], buf, sizeof buf), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(recv(s[0], buf, sizeof buf, 0), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(read(s[0], buf, sizeof buf), -1);
    ck_assert_int_eq(errno, EAGAIN);
    /* a full pipe: a partial write, then EAGAIN */
    fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_NONBLOCK);
    static char big[1 << 17];
    ssize_t n = write(p[1], big, sizeof big);
    ck_assert_int_gt(n, 0);
    ck_assert_int_lt(n, (ssize_t)sizeof big);
    ck_assert_int_eq(write(p[1], big, sizeof big), -1);
    ck_assert_int_eq(errno, EAGAIN);
    struct pollfd pf = { s[0], POLLIN, 0 };
    ck_assert_int_eq(poll(&pf, 1, 0), 0);
    int port, err;
    int l = listener(SOCK_NONBLOCK, &port);
    ck_assert_int_eq(accept(l, NULL, NULL), -1);
    ck_assert_int_eq(errno, EAGAIN);
    int c = connect_to(port, SOCK_NONBLOCK, &err);
    ck_assert(err == EINPROGRESS || err == 0);
    ck_assert(nonblocking(c) && nonblocking(l) && nonblocking(p[0]));
    close(c);
    close(l);
    return NULL;
}

START_TEST(fds_made_non_blocking_pass_through)
{
    run_with_fds(nonblocking_calls);
}
END_TEST

/* ---- the end of a stream, errors, signals ---- */

static void *ends_and_errors(void *arg)
{
    (void)arg;
    char buf[8];
    close(p[1]);
    ck_assert_int_eq(read(p[0], buf, sizeof buf), 0);
    p[1] = -1;
    close(s[1]);
    ck_assert_int_eq(recv(s[0], buf, sizeof buf, 0), 0);
    ck_assert_int_eq(read(s[0], buf, sizeof buf), 0);
    s[1] = -1;
    errno = 0;
    ck_assert_int_eq(read(-1, buf, 1), -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_int_eq(recv(p[0], buf, 1, 0), -1);
    ck_assert_int_eq(errno, ENOTSOCK);
    /* a reader gone: EPIPE (SIGPIPE ignored here) */
    int q[2];
    ck_assert_int_eq(pipe(q), 0);
    close(q[0]);
    void (*was)(int) = signal(SIGPIPE, SIG_IGN);
    ck_assert_int_eq(write(q[1], "x", 1), -1);
    ck_assert_int_eq(errno, EPIPE);
    signal(SIGPIPE, was);
    close(q[1]);
    /* bad arguments say what libc says */
    ck_assert_int_eq(nanosleep(&(struct timespec){ 0, 1000000000 }, NULL),
                     -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(clock_nanosleep(CLOCK_MONOTONIC, 0,
                                     &(struct timespec){ -1, 0 }, NULL),
                     EINVAL);
    ck_assert_int_eq(select(-1, NULL, NULL, NULL, NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    volatile int negative = -1, one = 1; /* out of the compiler's sight */
    ck_assert_int_eq(writev(s[0], NULL, negative), -1);
    ck_assert_int_eq(errno, EINVAL);
    if (!coro__under_valgrind()) { /* which would report the NULLs */
        ck_assert_int_eq(writev(s[0], NULL, one), -1);
        ck_assert_int_eq(errno, EFAULT);
        struct msghdr m = { .msg_iov = NULL, .msg_iovlen = (size_t)one };
        ck_assert_int_eq(sendmsg(s[0], &m, 0), -1);
        ck_assert_int_eq(errno, EFAULT);
        ck_assert_int_eq(readv(s[0], NULL, one), -1);
        ck_assert_int_eq(errno, EFAULT);
    }
    if (!coro__under_valgrind()) { /* which would report the NULL */
        struct pollfd *volatile none = NULL;
        ck_assert_int_eq(poll(none, 1, 10), -1);
        ck_assert_int_eq(errno, EFAULT);
    }
    struct pollfd bad = { 1000000, POLLIN, 0 };
    ck_assert_int_eq(poll(&bad, 1, 1000), 1);
    ck_assert(bad.revents & POLLNVAL);
    return NULL;
}

START_TEST(ends_of_stream_and_errors_are_libcs)
{
    run_with_fds(ends_and_errors);
}
END_TEST

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

static void *signalled_read(void *arg)
{
    (void)arg;
    static struct later l;
    l = (struct later){ p[1], 0.06, "late" };
    coro_task *w = coro_spawn(write_later, &l);
    setitimer(ITIMER_REAL, &(struct itimerval){ { 0, 0 }, { 0, 10000 } },
              NULL);
    char buf[8];
    ck_assert_int_eq(read(p[0], buf, sizeof buf), 4);
    ck_assert_int_eq(alarms, 1);
    ck_assert_int_eq(await_task(w, NULL), 0);
    return NULL;
}

/* A signal ends a blocking call with EINTR where the handler has no
 * SA_RESTART; a parked hooked call is not in the kernel, so it goes on
 * (README "Hooks"). Outside a coroutine, EINTR is libc's as ever. */
START_TEST(a_signal_ends_a_blocking_call_not_a_parked_one)
{
    fds_open();
    struct sigaction sa = { .sa_handler = on_alarm }, old;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGALRM, &sa, &old), 0);
    alarms = 0;
    run_expect(signalled_read, NULL, 0);
    setitimer(ITIMER_REAL, &(struct itimerval){ { 0, 0 }, { 0, 10000 } },
              NULL);
    char buf[8];
    errno = 0;
    ck_assert_int_eq(read(p[0], buf, sizeof buf), -1);
    ck_assert_int_eq(errno, EINTR);
    ck_assert_int_eq(alarms, 2);
    sigaction(SIGALRM, &old, NULL);
    fds_close();
}
END_TEST

/* ---- deadlines: the socket's, a scope's ---- */

static void *socket_timeouts(void *arg)
{
    (void)arg;
    struct timeval tv = { 0, 30000 };
    ck_assert_int_eq(setsockopt(s[0], SOL_SOCKET, SO_RCVTIMEO, &tv,
                                sizeof tv), 0);
    ck_assert_int_eq(setsockopt(s[0], SOL_SOCKET, SO_SNDTIMEO, &tv,
                                sizeof tv), 0);
    coro_task *t = ticker_start();
    char buf[8];
    double t0 = coro_now();
    errno = 0;
    ck_assert_int_eq(recv(s[0], buf, sizeof buf, 0), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_double_ge(coro_now() - t0, 0.029);
    ck_assert_int_gt(ticks, 0);
    /* a write that fills the socket: what was sent, then the deadline */
    char *big = calloc(1, BIG);
    ssize_t n = write(s[0], big, BIG);
    ck_assert_int_gt(n, 0);
    ck_assert_int_lt(n, BIG);
    /* full now: nothing sent, EAGAIN */
    ck_assert_int_eq(send(s[0], big, BIG, 0), -1);
    ck_assert_int_eq(errno, EAGAIN);
    free(big);
    ticker_stop(t);
    return NULL;
}

START_TEST(socket_timeouts_end_hooked_calls)
{
    run_with_fds(socket_timeouts);
}
END_TEST

static void *in_a_scope(void *arg)
{
    (void)arg;
    char buf[8];
    struct pollfd pf = { p[0], POLLIN, 0 };
    struct timespec ts = { 10, 0 };
    for (int how = 0; how < 4; how++) {
        coro_timeout *sc;
        ck_assert_int_eq(coro_timeout_open(0.02, &sc), 0);
        errno = 0;
        int r = how == 0 ? (int)read(p[0], buf, sizeof buf)
              : how == 1 ? (int)recv(s[0], buf, sizeof buf, 0)
              : how == 2 ? poll(&pf, 1, -1)
                         : nanosleep(&ts, NULL);
        /* -1, not poll's 0: a caller that polls again would spin */
        ck_assert_msg(r == -1 && errno == ETIMEDOUT, "way %d: %d errno %d",
                      how, r, errno);
        ck_assert_int_eq(coro_timeout_close(sc), ETIMEDOUT);
    }
    return NULL;
}

START_TEST(a_timeout_scope_ends_hooked_waits)
{
    run_with_fds(in_a_scope);
}
END_TEST

/* ---- cancellation at every kind of hooked wait ---- */

static int lst, lst_port;

struct outcome {
    long r;
    int  err;
};

static void *parked_call(void *arg)
{
    int how = (int)(intptr_t)arg;
    char buf[8];
    struct pollfd pf = { p[0], POLLIN, 0 };
    fd_set r;
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    struct timespec ts = { 10, 0 }, left = { 0, 0 };
    struct addrinfo *res = NULL;
    static char big[1 << 20];
    struct outcome *o = malloc(sizeof *o);
    errno = 0;
    switch (how) {
    case 0: o->r = read(p[0], buf, sizeof buf); break;
    case 1: o->r = recv(s[0], buf, sizeof buf, 0); break;
    case 2: o->r = write(s[0], big, sizeof big); break;
    case 3: o->r = accept(lst, NULL, NULL); break;
    case 4: o->r = poll(&pf, 1, -1); break;
    case 5: o->r = select(p[0] + 1, &r, NULL, NULL, NULL); break;
    case 6:
        o->r = nanosleep(&ts, &left);
        ck_assert(left.tv_sec >= 9);
        break;
    case 7: o->r = usleep(10000000); break;
    case 8: o->r = sleep(10); break;
    case 9:
        o->r = -1;
        errno = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
        break;
    default:
        /* a resolution that has started runs to its end (README) */
        o->r = getaddrinfo("localhost", NULL, NULL, &res);
        ck_assert_ptr_null(res);
    }
    o->err = errno;
    return o;
}

static void *cancel_each(void *arg)
{
    (void)arg;
    lst = listener(0, &lst_port);
    for (int how = 0; how < 11; how++) {
        coro_task *t = coro_spawn(parked_call, (void *)(intptr_t)how);
        if (how == 10)
            coro_cancel(t); /* before it runs: fails before resolving */
        else
            await_sleep(0.01);
        ck_assert_int_eq(coro_cancel(t), 0);
        void *res = NULL;
        ck_assert_int_eq(await_task(t, &res), ECANCELED); /* it was */
        struct outcome *o = res;
        if (how == 2) /* a write: what it sent before the cancellation */
            ck_assert_int_gt(o->r, 0);
        else if (how == 8) /* sleep: the seconds left */
            ck_assert_int_ge(o->r, 9);
        else if (how == 10)
            ck_assert_int_eq(o->r, EAI_SYSTEM);
        else
            ck_assert_msg(o->r == -1, "way %d returned %ld", how, o->r);
        if (how != 2)
            ck_assert_msg(o->err == ECANCELED, "way %d: errno %d", how,
                          o->err);
        free(o);
    }
    close(lst);
    return NULL;
}

START_TEST(cancellation_ends_every_kind_of_hooked_wait)
{
    run_with_fds(cancel_each);
}
END_TEST

/* ---- a shared-stack task's buffer on its stack ---- */

static void *shared_reader(void *arg)
{
    (void)arg;
    char buf[64];
    frame_fill(buf, 0, sizeof buf);
    ssize_t n = read(p[0], buf, sizeof buf);
    ck_assert_int_eq(n, 6);
    ck_assert(memcmp(buf, "intact", 6) == 0);
    return NULL;
}

static void *shared(void *arg)
{
    (void)arg;
    coro_attr a = { .flags = CORO_SHARED_STACK };
    test_scribbling_start();
    coro_task *sc = coro_spawn_attr(&a, test_scribbler, NULL);
    coro_task *r = coro_spawn_attr(&a, shared_reader, NULL);
    await_sleep(0.02);
    ck_assert_int_eq(write(p[1], "intact", 6), 6);
    ck_assert_int_eq(await_task(r, NULL), 0);
    test_scribbling_stop();
    ck_assert_int_eq(await_task(sc, NULL), 0);
    return NULL;
}

START_TEST(a_shared_stack_task_reads_into_its_own_stack)
{
    run_with_fds(shared);
}
END_TEST

/* ---- libcurl's easy interface, unchanged, in coroutines ---- */

static int threads_now(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[128];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

static char req_url[64];
static int most_threads;

static size_t discard(char *p_, size_t size, size_t n, void *arg)
{
    (void)p_;
    (void)arg;
    int t = threads_now();
    most_threads = t > most_threads ? t : most_threads;
    return size * n;
}

static void *curl_get(void *arg)
{
    (void)arg;
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    curl_easy_setopt(c, CURLOPT_URL, req_url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    ck_assert_msg(rc == CURLE_OK, "curl: %s", curl_easy_strerror(rc));
    ck_assert_int_eq(status, 200);
    return NULL;
}

#define LATENCY 0.2

static void *curl_ten(void *arg)
{
    (void)arg;
    coro_attr a = { .stack_size = 256 * 1024 };
    coro_task *t[10];
    double t0 = coro_now();
    for (int i = 0; i < 10; i++)
        t[i] = coro_spawn_attr(&a, curl_get, NULL);
    ck_assert_int_eq(await_gather(t, 10, NULL, NULL), 0);
    double took = coro_now() - t0;
    ck_assert_msg(took < 10 * LATENCY / 3, "ten requests took %.3f s", took);
    return NULL;
}

START_TEST(libcurl_easy_in_ten_coroutines_takes_about_one_latency)
{
    ck_assert_int_eq(curl_global_init(CURL_GLOBAL_DEFAULT), 0);
    int port;
    struct local_server *srv = local_server_start(LATENCY, &port);
    ck_assert_ptr_nonnull(srv);
    /* this one, the server's, and a sanitizer's own */
    int before = threads_now();
    snprintf(req_url, sizeof req_url, "http://127.0.0.1:%d/", port);
    most_threads = 0;
    run_expect(curl_ten, NULL, 0);
    /* no worker, no resolver thread: none more */
    ck_assert_int_eq(most_threads, before);
    local_server_stop(srv);
    curl_global_cleanup();
}
END_TEST

/* ---- review: calls the blocking versions answer at once, and waits
 * that must not spin ---- */

/* CPU time of the loop's thread: a hooked call parked for a while uses
 * next to none; one that parks and wakes without progress uses it all. */
static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* MSG_PEEK looks without taking: with MSG_WAITALL a Unix stream socket
 * returns what it holds, and never the same bytes twice. */
static void *peek_waitall(void *arg)
{
    (void)arg;
    ck_assert_int_eq(write(s[1], "abc", 3), 3);
    char buf[8];
    memset(buf, 0, sizeof buf);
    ck_assert_int_eq(recv(s[0], buf, 7, MSG_PEEK | MSG_WAITALL), 3);
    ck_assert_str_eq(buf, "abc");
    memset(buf, 0, sizeof buf);
    ck_assert_int_eq(recv(s[0], buf, 7, 0), 3);
    ck_assert_str_eq(buf, "abc");
    return NULL;
}

START_TEST(recv_peek_waitall_does_not_repeat_bytes)
{
    run_with_fds(peek_waitall);
}
END_TEST

/* An empty error queue is EAGAIN at once, blocking socket or not: the
 * kernel never waits for MSG_ERRQUEUE. */
static void *errqueue(void *arg)
{
    (void)arg;
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(u, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_int_eq(bind(u, (struct sockaddr *)&a, sizeof a), 0);
    char buf[8], ctl[64];
    struct iovec iov = { buf, sizeof buf };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = ctl, .msg_controllen = sizeof ctl };
    coro_timeout *sc; /* a call that waits ends here, not in a hang */
    ck_assert_int_eq(coro_timeout_open(2 * test_slow(), &sc), 0);
    errno = 0;
    ck_assert_int_eq(recvmsg(u, &m, MSG_ERRQUEUE), -1);
    ck_assert_int_eq(errno, EAGAIN);
    errno = 0;
    ck_assert_int_eq(recv(u, buf, sizeof buf, MSG_ERRQUEUE), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(coro_timeout_close(sc), 0);
    close(u);
    return NULL;
}

START_TEST(an_empty_error_queue_is_eagain_at_once)
{
    run_expect(errqueue, NULL, 0);
}
END_TEST

/* poll for POLLRDBAND on a socket that holds ordinary data: nothing is
 * ready, and the wait for its timeout is a wait, not a spin on EPOLLIN. */
static void *poll_rdband(void *arg)
{
    (void)arg;
    ck_assert_int_eq(write(s[1], "x", 1), 1);
    struct pollfd pf = { s[0], POLLRDBAND, 0 };
    double wall = coro_now(), cpu = thread_cpu();
    ck_assert_int_eq(poll(&pf, 1, (int)(100 * test_slow())), 0);
    wall = coro_now() - wall;
    cpu = thread_cpu() - cpu;
    ck_assert_msg(cpu < wall / 2, "%.3f s of CPU in %.3f s", cpu, wall);
    return NULL;
}

START_TEST(poll_for_a_band_does_not_spin_on_data)
{
    run_with_fds(poll_rdband);
}
END_TEST

/* select's exceptfds are POLLPRI only: a pipe whose writer has gone is
 * not exceptional, and select waits out its timeout (and says none is
 * left, as Linux's does). */
static void *select_except(void *arg)
{
    (void)arg;
    close(p[1]);
    p[1] = -1;
    fd_set ex;
    FD_ZERO(&ex);
    FD_SET(p[0], &ex);
    struct timeval tv = { 0, 30000 };
    ck_assert_int_eq(select(p[0] + 1, NULL, NULL, &ex, &tv), 0);
    ck_assert(!FD_ISSET(p[0], &ex));
    ck_assert_msg(tv.tv_sec == 0 && tv.tv_usec == 0, "%ld.%06ld s left",
                  (long)tv.tv_sec, (long)tv.tv_usec);
    return NULL;
}

START_TEST(select_waits_out_a_hang_up_it_was_not_asked_about)
{
    run_with_fds(select_except);
}
END_TEST

/* connect to a Unix listener whose backlog is full waits (blocking) for
 * room: parked, not spinning, and connected once there is room. */
static int unix_listener(struct sockaddr_un *a)
{
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_ge(l, 0);
    *a = (struct sockaddr_un){ .sun_family = AF_UNIX };
    snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "coro-hook-%d",
             (int)getpid()); /* abstract: nothing to unlink */
    ck_assert_int_eq(bind(l, (struct sockaddr *)a, sizeof *a), 0);
    ck_assert_int_eq(listen(l, 0), 0);
    return l;
}

static void *accept_later(void *arg)
{
    int l = *(int *)arg;
    await_sleep(0.05);
    int c = accept(l, NULL, NULL);
    ck_assert_int_ge(c, 0);
    return (void *)(intptr_t)c;
}

static void *connect_full_backlog(void *arg)
{
    (void)arg;
    struct sockaddr_un a;
    static int l;
    l = unix_listener(&a);
    int fill[8], nfill = 0;
    for (;;) { /* fill the backlog */
        ck_assert_int_lt(nfill, 8);
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (connect(c, (struct sockaddr *)&a, sizeof a) != 0) {
            ck_assert_int_eq(errno, EAGAIN);
            close(c);
            break;
        }
        fill[nfill++] = c;
    }
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    coro_timeout *sc;
    ck_assert_int_eq(coro_timeout_open(0.1 * test_slow(), &sc), 0);
    double wall = coro_now(), cpu = thread_cpu();
    errno = 0;
    ck_assert_int_eq(connect(c, (struct sockaddr *)&a, sizeof a), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    wall = coro_now() - wall;
    cpu = thread_cpu() - cpu;
    ck_assert_int_eq(coro_timeout_close(sc), ETIMEDOUT);
    ck_assert_msg(cpu < wall / 2, "%.3f s of CPU in %.3f s", cpu, wall);
    /* SO_SNDTIMEO ends it as the kernel's: EAGAIN */
    struct timeval tv = { 0, 20000 };
    ck_assert_int_eq(setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv),
                     0);
    errno = 0;
    ck_assert_int_eq(connect(c, (struct sockaddr *)&a, sizeof a), -1);
    ck_assert_int_eq(errno, EAGAIN);
    tv = (struct timeval){ 0, 0 };
    ck_assert_int_eq(setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv),
                     0);
    /* room made by an accept: the connect completes */
    coro_task *t = coro_spawn(accept_later, &l);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert(!nonblocking(c));
    void *got;
    ck_assert_int_eq(await_task(t, &got), 0);
    close((int)(intptr_t)got);
    close(c);
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(l);
    return NULL;
}

START_TEST(connect_to_a_full_backlog_parks_without_spinning)
{
    run_expect(connect_full_backlog, NULL, 0);
}
END_TEST

/* sendto from an unconnected Unix datagram socket to a receiver whose
 * queue is full waits (blocking) for room: nothing polls ready when there
 * is, so the hook pauses between tries, and does not spin. */
static void *dgram_full(void *arg)
{
    (void)arg;
    int r = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(r, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "coro-hook-dg-%d",
             (int)getpid());
    ck_assert_int_eq(bind(r, (struct sockaddr *)&a, sizeof a), 0);
    int w = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(w, 0);
    int sent = 0;
    for (;;) { /* fill the receiver's queue */
        ck_assert_int_lt(sent, 100000);
        if (sendto(w, "d", 1, MSG_DONTWAIT, (struct sockaddr *)&a,
                   sizeof a) != 1) {
            ck_assert_int_eq(errno, EAGAIN);
            break;
        }
        sent++;
    }
    coro_timeout *sc;
    ck_assert_int_eq(coro_timeout_open(0.1 * test_slow(), &sc), 0);
    double wall = coro_now(), cpu = thread_cpu();
    errno = 0;
    ck_assert_int_eq(sendto(w, "e", 1, 0, (struct sockaddr *)&a, sizeof a),
                     -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    wall = coro_now() - wall;
    cpu = thread_cpu() - cpu;
    ck_assert_int_eq(coro_timeout_close(sc), ETIMEDOUT);
    ck_assert_msg(cpu < wall / 2, "%.3f s of CPU in %.3f s", cpu, wall);
    /* room made by a read: the send completes */
    char c;
    ck_assert_int_eq(read(r, &c, 1), 1);
    ck_assert_int_eq(sendto(w, "e", 1, 0, (struct sockaddr *)&a, sizeof a),
                     1);
    close(w);
    close(r);
    return NULL;
}

START_TEST(sendto_a_full_datagram_receiver_parks_without_spinning)
{
    run_expect(dgram_full, NULL, 0);
}
END_TEST

/* A regular file is written as libc writes it: one write(2) for a
 * blocking write, whatever RWF_NOWAIT says (O_APPEND writes stay whole). */
static long syscalls_written(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    ck_assert_ptr_nonnull(f);
    char line[128];
    long n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "syscw: %ld", &n) == 1)
            break;
    fclose(f);
    ck_assert_int_ge(n, 0);
    return n;
}

static void *write_file(void *arg)
{
    (void)arg;
    char path[] = "/tmp/coro-hook-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    char *data = calloc(1, BIG);
    ck_assert_ptr_nonnull(data);
    long before = syscalls_written();
    ck_assert_int_eq(write(fd, data, BIG), BIG);
    long calls = syscalls_written() - before;
    /* PIPE_BUF at a time is 256; Check writes a record per assertion */
    ck_assert_msg(calls < 16, "1 MiB to a file in %ld writes", calls);
    ck_assert_int_eq(lseek(fd, 0, SEEK_END), BIG);
    free(data);
    close(fd);
    return NULL;
}

START_TEST(a_regular_file_is_written_in_one_call)
{
    run_expect(write_file, NULL, 0);
}
END_TEST

/* recv(MSG_WAITALL)'s SO_RCVTIMEO is for the whole call, as the
 * kernel's: bytes that come more often than the timeout do not stretch
 * it for ever. */
static void *drip(void *arg)
{
    double every = *(double *)arg;
    for (int i = 0; i < 7; i++) {
        if (i > 0) /* the first at once: a loaded machine's late first
                      byte would pass for the timeout (CI under TSan) */
            await_sleep(every);
        if (write(s[1], "d", 1) != 1)
            break;
    }
    return NULL;
}

static void *waitall_deadline(void *arg)
{
    (void)arg;
    static double every;
    double timeout = 0.05 * test_slow();
    every = 0.6 * timeout;
    struct timeval tv = { (time_t)timeout,
                          (suseconds_t)(fmod(timeout, 1) * 1e6) };
    ck_assert_int_eq(setsockopt(s[0], SOL_SOCKET, SO_RCVTIMEO, &tv,
                                sizeof tv), 0);
    coro_task *t = coro_spawn(drip, &every);
    char buf[8];
    ssize_t n = recv(s[0], buf, 7, MSG_WAITALL);
    /* what came within the timeout, not all 7 (3.6 timeouts' worth) */
    ck_assert_msg(n >= 1 && n < 7, "%zd bytes", n);
    ck_assert_int_eq(await_task(t, NULL), 0);
    return NULL;
}

START_TEST(waitall_has_one_socket_timeout_for_the_whole_call)
{
    run_with_fds(waitall_deadline);
}
END_TEST

/* A write to a file that stops short (RLIMIT_FSIZE) returns the count,
 * as libc's does: it is not tried again, which would raise SIGXFSZ. */
static volatile sig_atomic_t xfsz;

static void on_xfsz(int sig)
{
    (void)sig;
    xfsz++;
}

static void *write_past_limit(void *arg)
{
    (void)arg;
    char path[] = "/tmp/coro-hook-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    char *data = calloc(1, BIG);
    ck_assert_ptr_nonnull(data);
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = BIG / 2;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ssize_t n = write(fd, data, BIG);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    ck_assert_int_eq(n, BIG / 2);
    ck_assert_int_eq(xfsz, 0);
    free(data);
    close(fd);
    return NULL;
}

START_TEST(a_file_write_cut_short_is_returned_not_retried)
{
    struct sigaction sa = { .sa_handler = on_xfsz }, old;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGXFSZ, &sa, &old), 0);
    xfsz = 0;
    run_expect(write_past_limit, NULL, 0);
    sigaction(SIGXFSZ, &old, NULL);
}
END_TEST

/* A poll that succeeds leaves errno alone, even one that asks about an
 * fd twice (allowed) and so has to wait on a set of its own. */
static void *poll_keeps_errno(void *arg)
{
    (void)arg;
    static struct later l;
    l = (struct later){ p[1], 0.01, "a" };
    coro_task *w = coro_spawn(write_later, &l);
    struct pollfd pf[3] = { { p[0], POLLIN, 0 }, { p[0], POLLIN, 0 },
                            { s[0], POLLIN, 0 } };
    errno = 0;
    ck_assert_int_eq(poll(pf, 3, -1), 2);
    ck_assert_int_eq(errno, 0);
    ck_assert_int_eq(await_task(w, NULL), 0);
    return NULL;
}

START_TEST(a_poll_that_succeeds_leaves_errno_alone)
{
    run_with_fds(poll_keeps_errno);
}
END_TEST

/* accept on what is not a listening socket, or with flags accept4
 * refuses, fails at once, as the kernel's does: it has nothing to wait
 * for. */
static void *accept_errors(void *arg)
{
    (void)arg;
    coro_timeout *sc; /* a call that waits ends here, not in a hang */
    ck_assert_int_eq(coro_timeout_open(2 * test_slow(), &sc), 0);
    errno = 0;
    ck_assert_int_eq(accept(p[0], NULL, NULL), -1); /* a pipe */
    ck_assert_int_eq(errno, ENOTSOCK);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(u, 0);
    errno = 0;
    ck_assert_int_eq(accept(u, NULL, NULL), -1);
    ck_assert_int_eq(errno, EOPNOTSUPP);
    close(u);
    int port;
    int l = listener(0, &port);
    errno = 0;
    ck_assert_int_eq(accept4(l, NULL, NULL, 0x40000000), -1);
    ck_assert_int_eq(errno, EINVAL);
    close(l);
    ck_assert_int_eq(coro_timeout_close(sc), 0);
    return NULL;
}

START_TEST(accept_on_what_cannot_accept_fails_at_once)
{
    run_with_fds(accept_errors);
}
END_TEST

/* ---- LD_PRELOAD into a program built without the hooks ---- */

static double preload_run(const char *mode, int preload, char *out,
                          size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s%s/preload_target %s 2>&1",
             preload ? "LD_PRELOAD=" CORO_TEST_HOOK_DIR "/libcoro_hook.so "
                     : "",
             CORO_TEST_HOOK_DIR, mode);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    ck_assert_int_eq(pclose(f), 0);
    const char *sec = strstr(out, "seconds ");
    ck_assert_msg(sec != NULL, "%s said:\n%s", cmd, out);
    return atof(sec + 8);
}

START_TEST(ld_preload_hooks_a_program_built_without_them)
{
    char out[256];
    double hooked = preload_run("sleep", 1, out, sizeof out);
    ck_assert_ptr_nonnull(strstr(out, "threads 1\n"));
    double plain = preload_run("sleep", 0, out, sizeof out);
    /* ten usleep(100 ms): side by side, or one after another */
    ck_assert_msg(hooked < plain / 3, "hooked %.3f s, plain %.3f s", hooked,
                  plain);
    preload_run("pipe", 1, out, sizeof out);
    ck_assert_ptr_nonnull(strstr(out, "read hooked\n"));
}
END_TEST

Suite *hook_suite(void)
{
    Suite *su = suite_create("hook");
    TCase *tc = test_case("calls", 10);
    tcase_add_test(tc, outside_a_coroutine_every_call_passes_through);
    tcase_add_test(tc, read_and_readv_on_a_pipe_park_until_a_task_writes);
    tcase_add_test(tc, socket_reads_park_until_data_comes);
    tcase_add_test(tc, a_tty_is_read_once_poll_says_ready);
    tcase_add_test(tc, a_tty_write_parks_while_the_terminal_is_full);
    tcase_add_test(tc, two_tasks_reading_one_fd_both_park);
    tcase_add_test(tc, an_fd_coro_keeps_waits_without_spinning);
    tcase_add_test(tc, writes_park_until_all_is_sent);
    tcase_add_test(tc, connect_and_accept_park_and_leave_the_flags_alone);
    tcase_add_test(tc, poll_ppoll_and_select_park);
    tcase_add_test(tc, sleeps_park_side_by_side);
    tcase_add_test(tc, getaddrinfo_resolves_on_a_worker);
    tcase_add_test(tc, fds_made_non_blocking_pass_through);
    suite_add_tcase(su, tc);
    tc = test_case("ends", 10);
    tcase_add_test(tc, ends_of_stream_and_errors_are_libcs);
    tcase_add_test(tc, a_signal_ends_a_blocking_call_not_a_parked_one);
    tcase_add_test(tc, socket_timeouts_end_hooked_calls);
    tcase_add_test(tc, a_timeout_scope_ends_hooked_waits);
    tcase_add_test(tc, cancellation_ends_every_kind_of_hooked_wait);
    tcase_add_test(tc, a_shared_stack_task_reads_into_its_own_stack);
    suite_add_tcase(su, tc);
    tc = test_case("review", 10);
    tcase_add_test(tc, recv_peek_waitall_does_not_repeat_bytes);
    tcase_add_test(tc, an_empty_error_queue_is_eagain_at_once);
    tcase_add_test(tc, poll_for_a_band_does_not_spin_on_data);
    tcase_add_test(tc, select_waits_out_a_hang_up_it_was_not_asked_about);
    tcase_add_test(tc, connect_to_a_full_backlog_parks_without_spinning);
    tcase_add_test(tc, a_regular_file_is_written_in_one_call);
    tcase_add_test(tc, sendto_a_full_datagram_receiver_parks_without_spinning);
    tcase_add_test(tc, waitall_has_one_socket_timeout_for_the_whole_call);
    tcase_add_test(tc, a_file_write_cut_short_is_returned_not_retried);
    tcase_add_test(tc, a_poll_that_succeeds_leaves_errno_alone);
    tcase_add_test(tc, accept_on_what_cannot_accept_fails_at_once);
    suite_add_tcase(su, tc);
    tc = test_case("programs", 20);
    tcase_add_test(tc, libcurl_easy_in_ten_coroutines_takes_about_one_latency);
    tcase_add_test(tc, ld_preload_hooks_a_program_built_without_them);
    suite_add_tcase(su, tc);
    return su;
}
