/* libcoro_hook: opt-in hooks for the blocking system calls (README "Hooks").
 *
 * This file defines read, write, recv, poll, nanosleep, getaddrinfo and the
 * rest of the list below under libc's own names. Linked into a program (or
 * LD_PRELOADed), its definitions come before libc's in the dynamic linker's
 * search order, so the program and every library it loads call them. Each
 * one passes straight through to the next definition (libc's, found with
 * dlsym(RTLD_NEXT)) unless it is called from a coroutine: then it makes
 * the call so that it cannot block (RWF_NOWAIT with preadv2 and pwritev2,
 * MSG_DONTWAIT for the socket calls, or once poll(2) says ready where an
 * fd takes neither) and, where the call would have blocked on an fd that
 * can wait (not a regular file, not one the caller made non-blocking),
 * parks the task on the loop's reactor with await_readable or
 * await_writable and tries again. Sleeps become await_sleep, name
 * resolution a job on the worker threads.
 *
 * Never here: an fd flag changed while the task is parked (connect sets
 * O_NONBLOCK for the one connect(2) and puts the flags back), a buffer the
 * kernel holds while the task is parked (shared stacks move), or a
 * cancellation or deadline check of our own: every wait is an await_* and
 * goes through park. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "coro.h"

/* The hooks are the library's interface: export them whatever
 * -fvisibility says. */
#define HOOK __attribute__((visibility("default")))

/* ---- the next definition of each hooked call ---- */

/* Each slot holds the next definition once it is looked up. The lookup is
 * lazy, as a hook can run before this library's constructors (another
 * preloaded library's constructor calling read); racing threads find the
 * same address. */
static _Atomic(void *) next_slot[32];
static const char *const next_name[] = {
#define NEXT_NAMES                                                         \
    X(read) X(write) X(readv) X(writev) X(recv) X(send) X(recvfrom)        \
    X(sendto) X(recvmsg) X(sendmsg) X(connect) X(accept) X(accept4)        \
    X(poll) X(ppoll) X(select) X(nanosleep) X(clock_nanosleep) X(usleep)   \
    X(sleep) X(getaddrinfo) X(__read_chk) X(__recv_chk)                    \
    X(__recvfrom_chk) X(__poll_chk) X(__ppoll_chk)
#define X(name) #name,
    NEXT_NAMES
#undef X
};
enum {
#define X(name) NEXT_##name,
    NEXT_NAMES
#undef X
    NEXT_COUNT
};
_Static_assert(NEXT_COUNT <= sizeof next_slot / sizeof *next_slot,
               "next_slot too small");

static void *next_find(int i)
{
    void *p = atomic_load_explicit(&next_slot[i], memory_order_acquire);
    if (!p && (p = dlsym(RTLD_NEXT, next_name[i])))
        atomic_store_explicit(&next_slot[i], p, memory_order_release);
    return p;
}

static void *next_lookup(int i)
{
    void *p = next_find(i);
    if (!p) { /* nothing to fall back on: the call cannot be made */
        fprintf(stderr, "libcoro_hook: no %s after this library\n",
                next_name[i]);
        abort();
    }
    return p;
}

/* NEXT(read)(fd, buf, n): the call as libc makes it. */
#define NEXT(name) ((__typeof__(name) *)next_lookup(NEXT_##name))

/* The __*_chk names are glibc's fortified entries (_FORTIFY_SOURCE);
 * declared here as glibc defines them. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen,
                       int flags, __SOCKADDR_ARG addr, socklen_t *addrlen);
int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *tmo,
                const sigset_t *ss, size_t fdslen);

__attribute__((constructor)) static void hook_init(void)
{
    for (int i = 0; i < NEXT_COUNT; i++)
        next_find(i);
}

/* ---- what a call is made on ---- */

/* What a call that would block is made on, asked once it would. */
enum fd_kind {
    FD_PASS,     /* a regular file, a directory, a block device, or not an
                    fd: libc's call, which waits where it waits */
    FD_SOCKET,   /* its SO_RCVTIMEO and SO_SNDTIMEO apply */
    FD_POLLABLE, /* a pipe, FIFO, tty or other character device, eventfd,
                    timerfd...: the reactor can wait for it */
};

static enum fd_kind fd_kind(int fd)
{
    struct stat st;
    int saved = errno;
    if (fstat(fd, &st) != 0) {
        errno = saved;
        return FD_PASS;
    }
    if (S_ISSOCK(st.st_mode))
        return FD_SOCKET;
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode))
        return FD_PASS;
    return FD_POLLABLE;
}

/* Whether the caller made fd non-blocking: then it asked for EAGAIN. */
static int caller_nonblocking(int fd)
{
    int saved = errno;
    int fl = fcntl(fd, F_GETFL);
    errno = saved;
    return fl >= 0 && (fl & O_NONBLOCK);
}

/* Whether fd is ready for events now (a look, never a wait). */
static int ready_now(int fd, short events)
{
    struct pollfd p = { fd, events, 0 };
    int saved = errno;
    int n = NEXT(poll)(&p, 1, 0);
    errno = saved;
    return n != 0; /* an error (POLLNVAL, EFAULT...): let the call say */
}

/* ---- parking ---- */

/* The state of one hooked call that may wait: its own deadline, from the
 * socket's SO_RCVTIMEO or SO_SNDTIMEO, or the call's timeout, in
 * coro_now() seconds (negative: none), looked up the first time the call
 * would block. */
struct blocking {
    int    fd;
    int    timeo;      /* SO_RCVTIMEO, SO_SNDTIMEO, or 0: no socket option */
    int    started;    /* the deadline is known */
    double until;
};

static void deadline_from_socket(struct blocking *b)
{
    b->started = 1;
    b->until = -1;
    if (!b->timeo)
        return;
    struct timeval tv;
    socklen_t len = sizeof tv;
    int saved = errno;
    if (getsockopt(b->fd, SOL_SOCKET, b->timeo, &tv, &len) == 0 &&
        (tv.tv_sec > 0 || tv.tv_usec > 0))
        b->until = coro_now() + (double)tv.tv_sec + tv.tv_usec / 1e6;
    errno = saved;
}

_Static_assert(POLLIN == EPOLLIN && POLLPRI == EPOLLPRI &&
               POLLOUT == EPOLLOUT && POLLRDNORM == EPOLLRDNORM &&
               POLLRDBAND == EPOLLRDBAND && POLLWRNORM == EPOLLWRNORM &&
               POLLWRBAND == EPOLLWRBAND && POLLMSG == EPOLLMSG &&
               POLLRDHUP == EPOLLRDHUP, "poll's bits are epoll's");

/* Several fds, or events await_readable and await_writable do not wait
 * for (POLLPRI), or an fd another task already waits on: an epoll
 * instance of the call's own, itself readable when one of them is ready,
 * is what the task waits on. Returns 0 (look again), or an await_* error. */
static int wait_set(const struct pollfd *fds, nfds_t n, double timeout)
{
    int saved = errno; /* the epoll_ctl errors passed over are no one's */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return errno;
    int err = 0;
    for (nfds_t i = 0; i < n && !err; i++) {
        if (fds[i].fd < 0)
            continue;
        short asked = 0;
        /* poll may ask about one fd twice: one watch for all it asks */
        for (nfds_t j = 0; j < n; j++)
            if (fds[j].fd == fds[i].fd)
                asked |= fds[j].events;
        /* epoll's bits are poll's (the fd's one poll mask, filtered):
         * asked as poll asked, a wait for POLLRDBAND is not woken by
         * ordinary data, which poll would not count, for ever */
        uint32_t events = (uint16_t)asked &
                          (POLLIN | POLLPRI | POLLOUT | POLLRDNORM |
                           POLLRDBAND | POLLWRNORM | POLLWRBAND | POLLMSG |
                           POLLRDHUP);
        struct epoll_event ev = { .events = events, .data.fd = fds[i].fd };
        /* EEXIST: watched already; EPERM: a regular file, which poll
         * said ready (or nothing was asked of it); EBADF: closed since,
         * which the next look tells */
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i].fd, &ev) != 0 &&
            errno != EEXIST && errno != EPERM && errno != EBADF)
            err = errno;
    }
    if (!err)
        err = await_readable(ep, timeout);
    close(ep);
    errno = saved;
    return err;
}

/* Parks the task until fds may be ready, or until b's deadline: on the
 * loop's reactor, or, with own_set, on an epoll of the call's own. Returns
 * 0 to look again; EAGAIN when the call's own deadline passed; ETIMEDOUT
 * (a timeout scope of the task's), ECANCELED, ENOMEM. */
static int park_on(struct blocking *b, const struct pollfd *fds, nfds_t n,
                   int own_set)
{
    if (!b->started)
        deadline_from_socket(b);
    double timeout = -1;
    if (b->until >= 0) {
        timeout = b->until - coro_now();
        if (timeout <= 0)
            return EAGAIN;
    }
    int err;
    if (n == 0) { /* poll(NULL, 0, t): a sleep */
        err = await_sleep(timeout < 0 ? INFINITY : timeout);
        if (err == 0)
            return EAGAIN;
    } else if (!own_set && n == 1 && fds->fd >= 0 &&
               (fds->events == POLLIN || fds->events == POLLOUT)) {
        err = fds->events == POLLIN ? await_readable(fds->fd, timeout)
                                    : await_writable(fds->fd, timeout);
        if (err == EBUSY) /* another task waits on it: wait beside it */
            err = wait_set(fds, 1, timeout);
    } else {
        err = wait_set(fds, n, timeout);
    }
    switch (err) {
    case 0:
    case EBADF: /* closed with coro_close: the call will say */
        return 0;
    case ETIMEDOUT:
        /* Our own deadline, or a scope's that came first. */
        return b->until >= 0 && coro_now() >= b->until ? EAGAIN : ETIMEDOUT;
    default:
        return err;
    }
}

/* Parks for *pause seconds (or to b's deadline, if that comes first)
 * and doubles *pause up to 10 ms: for a wait whose end no fd's readiness
 * tells, a Unix listener's full backlog or a Unix datagram receiver's full
 * queue (the sender polls writable at once, and a wait on it would spin).
 * Returns as park_on. */
static int park_pause(struct blocking *b, double *pause)
{
    if (!b->started)
        deadline_from_socket(b);
    double s = *pause;
    if (b->until >= 0) {
        double left = b->until - coro_now();
        if (left <= 0)
            return EAGAIN;
        if (s > left)
            s = left;
    }
    if (*pause < 0.01)
        *pause *= 2;
    return await_sleep(s);
}

/* Asked the first time a call would block: what b's fd is. FD_PASS: a
 * file, whose call is libc's; -1: the caller made it non-blocking, and
 * the call's EAGAIN is its answer; else the task parks, a socket under
 * its timeout option timeo (SO_RCVTIMEO or SO_SNDTIMEO). */
static int first_block(struct blocking *b, int timeo)
{
    enum fd_kind kind = fd_kind(b->fd);
    if (kind == FD_PASS)
        return FD_PASS;
    if (caller_nonblocking(b->fd))
        return -1;
    if (kind == FD_SOCKET)
        b->timeo = timeo;
    return (int)kind;
}

/* park_on for b's fd, a read's or a write's. The first time, on the
 * reactor. Woken before, and the call still refused: if poll says ready,
 * readiness tells nothing here (an unconnected Unix datagram socket
 * sending to a full receiver polls writable), and the task pauses; if not,
 * the reactor's word may be stale (an fd coro_fd_keep keeps is taken as
 * ready until coro's own calls see EAGAIN, which a hooked call's does not
 * tell it), and the task waits on an epoll of its own. Either way, no
 * spin. */
static int park_fd(struct blocking *b, short events, int *woken,
                   double *pause)
{
    struct pollfd p = { b->fd, events, 0 };
    int again = *woken;
    *woken = 1;
    if (again && ready_now(b->fd, events))
        return park_pause(b, pause);
    return park_on(b, &p, 1, again);
}

/* ---- reading ---- */

/* Moves msg's iovecs past k bytes read or written. */
static void iov_advance(struct msghdr *m, size_t k)
{
    while (m->msg_iovlen && k >= m->msg_iov->iov_len) {
        k -= m->msg_iov->iov_len;
        m->msg_iov++;
        m->msg_iovlen--;
    }
    if (m->msg_iovlen) {
        m->msg_iov->iov_base = (char *)m->msg_iov->iov_base + k;
        m->msg_iov->iov_len -= k;
    }
}

static size_t iov_total(const struct iovec *iov, size_t n)
{
    size_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += iov[i].iov_len;
    return t;
}

/* What one reading call asks. read and readv try with preadv2's
 * RWF_NOWAIT, which sockets, pipes, FIFOs and regular files take (a file
 * says EAGAIN only where its data is not in memory); an fd that refuses it
 * (EOPNOTSUPP: a tty, some devices) is read once poll says it is ready.
 * The recv family tries with MSG_DONTWAIT. */
struct in_op {
    enum { IN_IOV, IN_RECVFROM, IN_RECVMSG } call;
    const struct iovec *iov;
    int                 iovcnt;
    int                 nowait;   /* IN_IOV: RWF_NOWAIT is taken */
    void               *buf;
    size_t              n;
    int                 flags;
    __SOCKADDR_ARG      addr;
    socklen_t          *addrlen;
    struct msghdr      *msg;
    struct blocking     wait;     /* one deadline for the call, across
                                     recv_from's MSG_WAITALL tries */
};

/* One try that cannot block: what the call returns, or -1 with EAGAIN
 * where it would block. */
static ssize_t in_try(int fd, struct in_op *op)
{
    switch (op->call) {
    case IN_RECVFROM:
        return NEXT(recvfrom)(fd, op->buf, op->n, op->flags | MSG_DONTWAIT,
                              op->addr, op->addrlen);
    case IN_RECVMSG:
        return NEXT(recvmsg)(fd, op->msg, op->flags | MSG_DONTWAIT);
    case IN_IOV:
        break;
    }
    if (op->nowait) {
        ssize_t r = preadv2(fd, op->iov, op->iovcnt, -1, RWF_NOWAIT);
        if (r >= 0 || errno != EOPNOTSUPP)
            return r;
        op->nowait = 0;
    }
    if (!ready_now(fd, POLLIN)) {
        errno = EAGAIN;
        return -1;
    }
    return NEXT(readv)(fd, op->iov, op->iovcnt);
}

/* RWF_NOWAIT reads of a regular file stop where its data in memory ends,
 * where libc's read goes on to the disk: a short read (got bytes, fewer
 * than iov asks) of a file is finished with libc's call, so a file reads
 * as it always did. */
static ssize_t finish_file_read(int fd, const struct iovec *iov, int cnt,
                                size_t got)
{
    if (fd_kind(fd) != FD_PASS) /* a socket's or a pipe's short read */
        return (ssize_t)got;
    struct iovec small[8], *copy = small;
    if (cnt > 8 && !(copy = malloc(sizeof *copy * (size_t)cnt)))
        return (ssize_t)got; /* a short read, which read(2) may return */
    memcpy(copy, iov, sizeof *copy * (size_t)cnt);
    struct msghdr m = { .msg_iov = copy, .msg_iovlen = (size_t)cnt };
    iov_advance(&m, got);
    int saved = errno;
    ssize_t r = NEXT(readv)(fd, m.msg_iov, (int)m.msg_iovlen);
    errno = saved;
    if (copy != small)
        free(copy);
    return (ssize_t)got + (r > 0 ? r : 0);
}

/* The loop every reading call shares: try; where the call would block
 * and the caller did not ask for EAGAIN, park and try again. What the fd
 * is, is asked only then (or after a short read with RWF_NOWAIT). */
static ssize_t do_input(int fd, struct in_op *op)
{
    int saved = errno;
    struct blocking *b = &op->wait;
    b->fd = fd;
    int known = 0, woken = 0;
    double pause = 0.001;
    for (;;) {
        ssize_t r = in_try(fd, op);
        if (r > 0 && op->call == IN_IOV && op->nowait &&
            (size_t)r < iov_total(op->iov, (size_t)op->iovcnt))
            r = finish_file_read(fd, op->iov, op->iovcnt, (size_t)r);
        if (r >= 0) {
            errno = saved;
            return r;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (!known++) {
            int kind = first_block(b, SO_RCVTIMEO);
            /* A regular file waiting for the disk: libc's call, which
             * waits as it always did (files are not hooked). */
            if (kind == FD_PASS && op->call == IN_IOV)
                return NEXT(readv)(fd, op->iov, op->iovcnt);
            if (kind < 0) {
                errno = EAGAIN;
                return -1;
            }
        }
        int err = park_fd(b, POLLIN, &woken, &pause);
        if (err) {
            errno = err;
            return -1;
        }
    }
}

/* recv's MSG_WAITALL on a stream socket waits for all n bytes (or the end,
 * an error, a deadline); MSG_DONTWAIT makes it take what is there. */
static int stream_socket(int fd)
{
    int type = 0;
    socklen_t len = sizeof type;
    int saved = errno;
    int ok = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
    errno = saved;
    return ok && type == SOCK_STREAM;
}

static ssize_t recv_from(int fd, void *buf, size_t n, int flags,
                         __SOCKADDR_ARG addr, socklen_t *addrlen)
{
    struct in_op op = { .call = IN_RECVFROM, .buf = buf, .n = n,
                        .flags = flags, .addr = addr, .addrlen = addrlen };
    /* MSG_PEEK takes nothing: a second look would see the same bytes
     * again, so a peek returns what is there (as a Unix socket's does) */
    if (!(flags & MSG_WAITALL) || (flags & MSG_PEEK))
        return do_input(fd, &op);
    size_t got = 0;
    int stream = -1;
    for (;;) {
        op.buf = (char *)buf + got;
        op.n = n - got;
        ssize_t k = do_input(fd, &op);
        if (k < 0)
            return got ? (ssize_t)got : -1;
        got += (size_t)k;
        if (k == 0 || got == n)
            return (ssize_t)got;
        if (stream < 0)
            stream = stream_socket(fd);
        if (!stream)
            return (ssize_t)got;
    }
}

/* read and write take at most MAX_RW_COUNT bytes at a time (a page short
 * of 2 GiB); an iovec longer than SSIZE_MAX is EINVAL to preadv2: a
 * count as read(2) would cut it. */
static size_t rw_count(size_t n)
{
    const size_t max = (size_t)INT_MAX & ~(size_t)4095;
    return n < max ? n : max;
}

HOOK ssize_t read(int fd, void *buf, size_t n)
{
    if (!coro_self())
        return NEXT(read)(fd, buf, n);
    struct iovec one = { buf, rw_count(n) };
    struct in_op op = { .call = IN_IOV, .iov = &one, .iovcnt = 1,
                        .nowait = 1 };
    return do_input(fd, &op);
}

HOOK ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
    if (!coro_self())
        return NEXT(readv)(fd, iov, iovcnt);
    struct in_op op = { .call = IN_IOV, .iov = iov, .iovcnt = iovcnt,
                        .nowait = 1 };
    return do_input(fd, &op);
}

/* MSG_ERRQUEUE never waits, on a blocking socket either: an empty queue
 * is EAGAIN at once. */
#define NEVER_WAITS (MSG_DONTWAIT | MSG_ERRQUEUE)

HOOK ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    if (!coro_self() || (flags & NEVER_WAITS))
        return NEXT(recv)(fd, buf, n, flags);
    return recv_from(fd, buf, n, flags, (struct sockaddr *)NULL, NULL);
}

HOOK ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
                      __SOCKADDR_ARG addr, socklen_t *addrlen)
{
    if (!coro_self() || (flags & NEVER_WAITS))
        return NEXT(recvfrom)(fd, buf, n, flags, addr, addrlen);
    return recv_from(fd, buf, n, flags, addr, addrlen);
}

/* MSG_WAITALL is left to the kernel here: with MSG_DONTWAIT it takes what
 * is there (README "Hooks"). */
HOOK ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (!coro_self() || (flags & NEVER_WAITS))
        return NEXT(recvmsg)(fd, msg, flags);
    struct in_op op = { .call = IN_RECVMSG, .msg = msg, .flags = flags };
    return do_input(fd, &op);
}

/* ---- writing ---- */

/* A blocking write to a stream socket or a pipe returns once every byte
 * is written; a deadline, a cancellation or an error after some were
 * returns how many. The message is walked with a copy of its iovec array.
 * write and writev try with pwritev2's RWF_NOWAIT (or, where the fd
 * refuses it, libc's call on a regular file, and on anything else once
 * poll says it is writable, at most PIPE_BUF bytes, which a pipe with
 * room takes whole); the send family with MSG_DONTWAIT. */
struct wr {
    struct msghdr msg;
    int           flags;
    int           send;    /* the send family: sendmsg */
    int           nowait;  /* else: RWF_NOWAIT is taken */
    int           file;    /* else: a file that refused it: libc's call */
    int           tty;     /* else: a terminal's own description
                              (tty_description), -1: none, -2: not asked */
};

/* The first PIPE_BUF bytes of m, as one writev. */
static ssize_t write_pipe_buf(int fd, struct msghdr *m)
{
    if (iov_total(m->msg_iov, m->msg_iovlen) <= PIPE_BUF)
        return NEXT(writev)(fd, m->msg_iov, (int)m->msg_iovlen);
    struct iovec part[64];
    size_t left = PIPE_BUF;
    int k = 0;
    for (size_t i = 0; i < m->msg_iovlen && left && k < 64; i++) {
        size_t take = m->msg_iov[i].iov_len < left ? m->msg_iov[i].iov_len
                                                   : left;
        part[k++] = (struct iovec){ m->msg_iov[i].iov_base, take };
        left -= take;
    }
    return NEXT(writev)(fd, part, k);
}

/* A terminal takes no RWF_NOWAIT and polls writable with a byte of room,
 * where a blocking write of more waits, the loop with it. Its writes go
 * through a file description of the call's own, opened anew on its device
 * with O_NONBLOCK, so the caller's flags stay as they are. -1 where there
 * is none: not a terminal, a pty master (opening /dev/ptmx makes a new
 * pty), a device the caller cannot open again. */
static int tty_description(int fd)
{
    char path[64];
    struct stat was, now;
    int saved = errno, t = -1;
    if (isatty(fd) && fstat(fd, &was) == 0 &&
        !(major(was.st_rdev) == 5 && minor(was.st_rdev) == 2) &&
        ttyname_r(fd, path, sizeof path) == 0) {
        t = open(path, O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (t >= 0 && (fstat(t, &now) != 0 || now.st_rdev != was.st_rdev)) {
            close(t);
            t = -1;
        }
    }
    errno = saved;
    return t;
}

static ssize_t out_try(int fd, struct wr *w)
{
    if (w->send)
        return NEXT(sendmsg)(fd, &w->msg, w->flags | MSG_DONTWAIT);
    if (w->nowait) {
        ssize_t r = pwritev2(fd, w->msg.msg_iov, (int)w->msg.msg_iovlen, -1,
                             RWF_NOWAIT);
        if (r >= 0 || errno != EOPNOTSUPP)
            return r;
        w->nowait = 0;
        /* ext4 takes no RWF_NOWAIT for a buffered write: a file is
         * written whole by libc's call, not PIPE_BUF at a time (which
         * would split an O_APPEND write among other writers') */
        w->file = fd_kind(fd) == FD_PASS;
    }
    if (w->file)
        return NEXT(writev)(fd, w->msg.msg_iov, (int)w->msg.msg_iovlen);
    if (w->tty == -2)
        w->tty = tty_description(fd);
    if (w->tty >= 0)
        return NEXT(writev)(w->tty, w->msg.msg_iov, (int)w->msg.msg_iovlen);
    if (!ready_now(fd, POLLOUT)) {
        errno = EAGAIN;
        return -1;
    }
    return write_pipe_buf(fd, &w->msg);
}

static ssize_t do_output(int fd, struct wr *w)
{
    int saved = errno;
    size_t total = iov_total(w->msg.msg_iov, w->msg.msg_iovlen), done = 0;
    struct blocking b = { fd, 0, 0, -1 };
    int known = 0, woken = 0;
    double pause = 0.001;
    for (;;) {
        ssize_t r = out_try(fd, w);
        if (r >= 0) {
            done += (size_t)r;
            /* a file's write is libc's: short (RLIMIT_FSIZE, a full
             * disk) is its answer, and a second call would raise SIGXFSZ
             * where the blocking one returned the count */
            if (done >= total || w->file) {
                errno = saved;
                return (ssize_t)done;
            }
            iov_advance(&w->msg, (size_t)r);
            woken = 0; /* progress: the next wait is the reactor's */
            /* Ancillary data goes with the first byte only. */
            w->msg.msg_control = NULL;
            w->msg.msg_controllen = 0;
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return done ? (ssize_t)done : -1;
        if (!known++) {
            int kind = first_block(&b, SO_SNDTIMEO);
            if (kind == FD_PASS && !w->send) { /* a file: libc's call */
                r = NEXT(writev)(fd, w->msg.msg_iov, (int)w->msg.msg_iovlen);
                return r < 0 ? (done ? (ssize_t)done : -1)
                             : (ssize_t)done + r;
            }
            if (kind < 0) {
                if (done)
                    return (ssize_t)done;
                errno = EAGAIN;
                return -1;
            }
        }
        int err = park_fd(&b, POLLOUT, &woken, &pause);
        if (err) {
            if (done)
                return (ssize_t)done;
            errno = err;
            return -1;
        }
    }
}

/* The iovec arrays a write walks: up to 8 on the task's stack (read only
 * by the task itself, so a shared stack may move them), more on the heap. */
#define IOV_SMALL 8

static ssize_t output_iov(int fd, const struct iovec *iov, int iovcnt,
                          int flags, const struct msghdr *msg, int send)
{
    struct iovec small[IOV_SMALL], *copy = small;
    if (iovcnt > IOV_SMALL &&
        !(copy = malloc(sizeof *copy * (size_t)iovcnt))) {
        errno = ENOMEM;
        return -1;
    }
    if (iovcnt)
        memcpy(copy, iov, sizeof *copy * (size_t)iovcnt);
    struct wr w = { .flags = flags, .send = send, .nowait = 1, .tty = -2 };
    if (msg)
        w.msg = *msg;
    w.msg.msg_iov = copy;
    w.msg.msg_iovlen = (size_t)iovcnt;
    ssize_t r = do_output(fd, &w);
    int saved = errno;
    if (w.tty >= 0)
        close(w.tty);
    if (copy != small)
        free(copy);
    errno = saved;
    return r;
}

static ssize_t send_to(int fd, const void *buf, size_t n, int flags,
                       __CONST_SOCKADDR_ARG addr, socklen_t addrlen)
{
    struct iovec one = { (void *)buf, n };
    struct msghdr m = { .msg_name = (void *)addr.__sockaddr__,
                        .msg_namelen = addrlen };
    return output_iov(fd, &one, 1, flags, &m, 1);
}

HOOK ssize_t write(int fd, const void *buf, size_t n)
{
    if (!coro_self())
        return NEXT(write)(fd, buf, n);
    struct iovec one = { (void *)buf, rw_count(n) };
    return output_iov(fd, &one, 1, 0, NULL, 0);
}

HOOK ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    if (!coro_self() || iovcnt < 0 || iovcnt > IOV_MAX || /* libc's error */
        (!iov && iovcnt))                                   /* EFAULT */
        return NEXT(writev)(fd, iov, iovcnt);
    return output_iov(fd, iov, iovcnt, 0, NULL, 0);
}

HOOK ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    if (!coro_self() || (flags & MSG_DONTWAIT))
        return NEXT(send)(fd, buf, n, flags);
    return send_to(fd, buf, n, flags, (const struct sockaddr *)NULL, 0);
}

HOOK ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                    __CONST_SOCKADDR_ARG addr, socklen_t addrlen)
{
    if (!coro_self() || (flags & MSG_DONTWAIT))
        return NEXT(sendto)(fd, buf, n, flags, addr, addrlen);
    return send_to(fd, buf, n, flags, addr, addrlen);
}

HOOK ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (!coro_self() || (flags & MSG_DONTWAIT) || !msg ||
        msg->msg_iovlen > IOV_MAX || (!msg->msg_iov && msg->msg_iovlen))
        /* libc's answer, EFAULT or EMSGSIZE */
        return NEXT(sendmsg)(fd, msg, flags);
    return output_iov(fd, msg->msg_iov, (int)msg->msg_iovlen, flags, msg, 1);
}

/* ---- connections ---- */

/* A blocking connect has no flag that makes it not block: O_NONBLOCK is
 * set for this one connect(2) and the caller's flags are back before the
 * task parks. Then the task waits to be writable and asks SO_ERROR, as a
 * non-blocking connect is finished. */
HOOK int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    if (!coro_self())
        return NEXT(connect)(fd, addr, len);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_NONBLOCK))
        return NEXT(connect)(fd, addr, len);
    int saved = errno;
    struct blocking b = { fd, SO_SNDTIMEO, 0, -1 };
    double pause = 0.001;
    for (;;) {
        if (fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
            return NEXT(connect)(fd, addr, len);
        int r = NEXT(connect)(fd, addr, len);
        int err = r == 0 ? 0 : errno;
        fcntl(fd, F_SETFL, fl);
        if (r == 0) {
            errno = saved;
            return 0;
        }
        /* A Unix socket whose listener's backlog is full says EAGAIN
         * where a blocking one waits, and then tries again; nothing
         * polls ready when there is room, so it tries after a pause. */
        int again = err == EAGAIN;
        if (err != EINPROGRESS && !again) {
            errno = err;
            return -1;
        }
        int woken = 0;
        err = again ? park_pause(&b, &pause)
                    : park_fd(&b, POLLOUT, &woken, &pause);
        if (err) {
            /* A deadline that ends a blocking connect says EINPROGRESS
             * on Linux: the attempt goes on. */
            errno = err == EAGAIN ? (again ? EAGAIN : EINPROGRESS) : err;
            return -1;
        }
        if (again)
            continue;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            return -1;
        if (soerr) {
            errno = soerr;
            return -1;
        }
        errno = saved;
        return 0;
    }
}

/* accept takes no flag that makes it not block either; here it is called
 * once poll says a connection waits. Another process or thread accepting
 * on the same blocking socket can take it first, and then accept blocks,
 * as with any blocking fd shared (README "Hooks"). */
static int accept_hooked(int fd, __SOCKADDR_ARG addr, socklen_t *len,
                         int flags)
{
    if (caller_nonblocking(fd))
        return NEXT(accept4)(fd, addr, len, flags);
    int saved = errno;
    struct blocking b = { fd, SO_RCVTIMEO, 0, -1 };
    int checked = 0, woken = 0;
    double pause = 0.001;
    for (;;) {
        if (ready_now(fd, POLLIN)) {
            int r = NEXT(accept4)(fd, addr, len, flags);
            if (r >= 0)
                errno = saved;
            return r;
        }
        /* Not a listening socket (a pipe, a datagram socket), or flags
         * it refuses: accept's error, at once, as it has nothing to
         * wait for. */
        if (!checked++) {
            int on = 0;
            socklen_t sl = sizeof on;
            if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &sl) != 0 ||
                !on || (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)))
                return NEXT(accept4)(fd, addr, len, flags);
        }
        int err = park_fd(&b, POLLIN, &woken, &pause);
        if (err) {
            errno = err;
            return -1;
        }
    }
}

HOOK int accept(int fd, __SOCKADDR_ARG addr, socklen_t *len)
{
    if (!coro_self())
        return NEXT(accept)(fd, addr, len);
    return accept_hooked(fd, addr, len, 0);
}

HOOK int accept4(int fd, __SOCKADDR_ARG addr, socklen_t *len, int flags)
{
    if (!coro_self())
        return NEXT(accept4)(fd, addr, len, flags);
    return accept_hooked(fd, addr, len, flags);
}

/* ---- poll, ppoll, select ---- */

/* poll(fds, n, timeout seconds; negative: none) in a coroutine: look; if
 * nothing is ready, park until something may be, and look again. A
 * deadline of the task's own (a timeout scope) or its cancellation is -1
 * with ETIMEDOUT or ECANCELED: a 0 would read as the call's own timeout,
 * and a caller that polls again would spin. */
static int poll_hooked(struct pollfd *fds, nfds_t n, double timeout)
{
    int saved = errno;
    int r = NEXT(poll)(fds, n, 0);
    if (r != 0 || timeout == 0)
        return r;
    struct blocking b = { -1, 0, 1, timeout < 0 ? -1 : coro_now() + timeout };
    /* woken and nothing ready: the reactor's word may be stale (park_fd) */
    for (int woken = 0;; woken = 1) {
        int err = park_on(&b, fds, n, woken);
        if (err == EAGAIN) {
            errno = saved;
            return 0;
        }
        if (err) {
            errno = err;
            return -1;
        }
        r = NEXT(poll)(fds, n, 0);
        if (r != 0)
            return r;
    }
}

HOOK int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (!coro_self() || timeout == 0)
        return NEXT(poll)(fds, n, timeout);
    return poll_hooked(fds, n, timeout < 0 ? -1 : timeout / 1e3);
}

static int bad_timespec(const struct timespec *ts)
{
    return ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L;
}

/* The signal mask ppoll would hold during its wait is not applied to a
 * parked task: the loop's thread keeps its own (README "Hooks"). */
HOOK int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo,
               const sigset_t *sigmask)
{
    if (!coro_self() || (tmo && (bad_timespec(tmo) ||
                                 (tmo->tv_sec == 0 && tmo->tv_nsec == 0))))
        return NEXT(ppoll)(fds, n, tmo, sigmask);
    return poll_hooked(fds, n,
                       tmo ? (double)tmo->tv_sec + tmo->tv_nsec / 1e9 : -1);
}

/* Whether what poll said of one fd makes it ready for select, as Linux's
 * select counts: a hang-up or an error is readable, an error writable,
 * and exceptional is POLLPRI alone. */
static int select_counts(const struct pollfd *q)
{
    short in = POLLIN | POLLHUP | POLLERR, out = POLLOUT | POLLERR;
    return ((q->events & POLLIN) && (q->revents & in)) ||
           ((q->events & POLLOUT) && (q->revents & out)) ||
           ((q->events & POLLPRI) && (q->revents & POLLPRI));
}

HOOK int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex,
                struct timeval *tv)
{
    if (!coro_self() || nfds < 0 || nfds > FD_SETSIZE ||
        (tv && (tv->tv_sec < 0 || tv->tv_usec < 0 ||
                tv->tv_usec >= 1000000 || (!tv->tv_sec && !tv->tv_usec))))
        return NEXT(select)(nfds, rd, wr, ex, tv);
    struct pollfd *p = malloc(sizeof *p * (size_t)(nfds ? nfds : 1));
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    nfds_t n = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = (short)((rd && FD_ISSET(fd, rd) ? POLLIN : 0) |
                           (wr && FD_ISSET(fd, wr) ? POLLOUT : 0) |
                           (ex && FD_ISSET(fd, ex) ? POLLPRI : 0));
        if (ev)
            p[n++] = (struct pollfd){ fd, ev, 0 };
    }
    double timeout = tv ? (double)tv->tv_sec + tv->tv_usec / 1e6 : -1;
    double start = coro_now();
    int r;
    for (;;) {
        double left = timeout - (coro_now() - start);
        r = poll_hooked(p, n, timeout < 0 ? -1 : left > 0 ? left : 0);
        if (r <= 0)
            break;
        int counts = 0;
        for (nfds_t i = 0; i < n; i++)
            if (p[i].revents & POLLNVAL) {
                r = -1;
                errno = EBADF;
            } else if (select_counts(&p[i])) {
                counts = 1;
            }
        if (r < 0 || counts)
            break;
        /* Only a hang-up or an error that select was not asked about (an
         * fd in exceptfds alone, which is POLLPRI): not ready for select,
         * and ready for poll from now on. Left out, the wait goes on. */
        for (nfds_t i = 0; i < n; i++)
            if (p[i].revents)
                p[i].fd = -1;
    }
    int ready = 0;
    if (r >= 0) {
        if (rd)
            FD_ZERO(rd);
        if (wr)
            FD_ZERO(wr);
        if (ex)
            FD_ZERO(ex);
        for (nfds_t i = 0; i < n; i++) {
            short re = p[i].revents;
            if (rd && (p[i].events & POLLIN) &&
                (re & (POLLIN | POLLHUP | POLLERR)))
                FD_SET(p[i].fd, rd), ready++;
            if (wr && (p[i].events & POLLOUT) && (re & (POLLOUT | POLLERR)))
                FD_SET(p[i].fd, wr), ready++;
            if (ex && (p[i].events & POLLPRI) && (re & POLLPRI))
                FD_SET(p[i].fd, ex), ready++;
        }
        r = ready;
    }
    if (tv) { /* Linux's select says how much of the timeout is left */
        double left = timeout - (coro_now() - start);
        if (left < 0)
            left = 0;
        tv->tv_sec = (time_t)left;
        tv->tv_usec = (suseconds_t)((left - (double)tv->tv_sec) * 1e6);
    }
    int saved = errno;
    free(p);
    errno = saved;
    return r;
}

/* ---- sleeping ---- */

/* Sleeps `seconds` on the loop. Returns 0, or the error that ended it
 * early (ECANCELED, ETIMEDOUT from a scope) with *left set. */
static int sleep_hooked(double seconds, double *left)
{
    double until = coro_now() + seconds;
    int err = await_sleep(seconds > 0 ? seconds : 0);
    if (err && left) {
        *left = until - coro_now();
        if (*left < 0)
            *left = 0;
    }
    return err;
}

static void to_timespec(double s, struct timespec *ts)
{
    ts->tv_sec = (time_t)s;
    ts->tv_nsec = (long)((s - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec >= 1000000000L)
        ts->tv_nsec = 999999999L;
}

HOOK int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (!coro_self() || !req || bad_timespec(req))
        return NEXT(nanosleep)(req, rem);
    double left = 0;
    int err = sleep_hooked((double)req->tv_sec + req->tv_nsec / 1e9, &left);
    if (!err)
        return 0;
    if (rem)
        to_timespec(left, rem);
    errno = err;
    return -1;
}

HOOK int clock_nanosleep(clockid_t clock, int flags,
                         const struct timespec *req, struct timespec *rem)
{
    if (!coro_self() || !req || bad_timespec(req) ||
        (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC &&
         clock != CLOCK_BOOTTIME && clock != CLOCK_TAI))
        return NEXT(clock_nanosleep)(clock, flags, req, rem);
    double s = (double)req->tv_sec + req->tv_nsec / 1e9;
    if (flags & TIMER_ABSTIME) {
        /* The deadline read once against that clock: a later step of the
         * wall clock does not move it (README "Hooks"). */
        struct timespec now;
        clock_gettime(clock, &now);
        s -= (double)now.tv_sec + now.tv_nsec / 1e9;
        rem = NULL;
    }
    int saved = errno;
    double left = 0;
    int err = sleep_hooked(s, &left);
    if (err && rem)
        to_timespec(left, rem);
    errno = saved;
    return err;
}

HOOK int usleep(useconds_t usec)
{
    if (!coro_self())
        return NEXT(usleep)(usec);
    int err = sleep_hooked(usec / 1e6, NULL);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

HOOK unsigned int sleep(unsigned int seconds)
{
    if (!coro_self())
        return NEXT(sleep)(seconds);
    double left = 0;
    int err = sleep_hooked(seconds, &left);
    if (!err)
        return 0;
    errno = err;
    return (unsigned int)ceil(left);
}

/* ---- name resolution ---- */

/* What a worker thread resolves: copies of the caller's strings and hints
 * (a shared-stack task's own are moved while it is parked). */
struct lookup {
    char           *node, *service;
    struct addrinfo hints;
    int             has_hints;
    int             rc;
    struct addrinfo *res;
};

static void *lookup_run(void *arg)
{
    struct lookup *l = arg;
    l->rc = NEXT(getaddrinfo)(l->node, l->service,
                              l->has_hints ? &l->hints : NULL, &l->res);
    return l;
}

static void lookup_free(struct lookup *l)
{
    free(l->node);
    free(l->service);
    free(l);
}

/* Whether getaddrinfo has nothing to look up: no host, or a numeric one
 * (AI_NUMERICHOST, or an IPv4 or IPv6 literal), and no service, or a
 * numeric one. libc answers that at once, without NSS or DNS: a worker
 * for it would cost a thread switch and start a thread that the caller
 * (coro's own await_dial of "127.0.0.1" among them) never needed. */
static int lookup_is_numeric(const char *node, const char *service,
                             const struct addrinfo *hints)
{
    int flags = hints ? hints->ai_flags : 0;
    unsigned char addr[sizeof(struct in6_addr)];
    int host = !node || (flags & AI_NUMERICHOST) ||
               inet_pton(AF_INET, node, addr) == 1 ||
               inet_pton(AF_INET6, node, addr) == 1;
    int port = !service || (flags & AI_NUMERICSERV) ||
               (service[0] && !service[strspn(service, "0123456789")]);
    return host && port;
}

HOOK int getaddrinfo(const char *node, const char *service,
                     const struct addrinfo *hints, struct addrinfo **res)
{
    if (!coro_self() || !res || lookup_is_numeric(node, service, hints))
        return NEXT(getaddrinfo)(node, service, hints, res);
    struct lookup *l = calloc(1, sizeof *l);
    if (!l || (node && !(l->node = strdup(node))) ||
        (service && !(l->service = strdup(service)))) {
        if (l)
            lookup_free(l);
        return EAI_MEMORY;
    }
    if (hints) {
        l->has_hints = 1;
        l->hints.ai_flags = hints->ai_flags;
        l->hints.ai_family = hints->ai_family;
        l->hints.ai_socktype = hints->ai_socktype;
        l->hints.ai_protocol = hints->ai_protocol;
    }
    l->rc = EAI_SYSTEM;
    int err = await_blocking(lookup_run, l, NULL);
    int ran_errno = errno;
    int rc;
    if (err == EPERM) { /* no worker to ask: resolve here, as libc does */
        rc = NEXT(getaddrinfo)(node, service, hints, res);
    } else if (err) {
        if (l->rc == 0) /* it ran, but the task was cancelled meanwhile */
            freeaddrinfo(l->res);
        rc = err == ENOMEM ? EAI_MEMORY
           : err == EAGAIN ? EAI_AGAIN : EAI_SYSTEM;
        ran_errno = err;
    } else {
        rc = l->rc;
        if (rc == 0)
            *res = l->res;
    }
    lookup_free(l);
    errno = ran_errno;
    return rc;
}

/* ---- glibc's fortified entries (_FORTIFY_SOURCE) ---- */

HOOK ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen) /* glibc's reports the overflow and aborts */
        return NEXT(__read_chk)(fd, buf, n, buflen);
    return read(fd, buf, n);
}

HOOK ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    if (n > buflen)
        return NEXT(__recv_chk)(fd, buf, n, buflen, flags);
    return recv(fd, buf, n, flags);
}

HOOK ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen,
                            int flags, __SOCKADDR_ARG addr,
                            socklen_t *addrlen)
{
    if (n > buflen)
        return NEXT(__recvfrom_chk)(fd, buf, n, buflen, flags, addr,
                                    addrlen);
    return recvfrom(fd, buf, n, flags, addr, addrlen);
}

HOOK int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout,
                    size_t fdslen)
{
    if (fdslen / sizeof *fds < nfds)
        return NEXT(__poll_chk)(fds, nfds, timeout, fdslen);
    return poll(fds, nfds, timeout);
}

HOOK int __ppoll_chk(struct pollfd *fds, nfds_t nfds,
                     const struct timespec *tmo, const sigset_t *ss,
                     size_t fdslen)
{
    if (fdslen / sizeof *fds < nfds)
        return NEXT(__ppoll_chk)(fds, nfds, tmo, ss, fdslen);
    return ppoll(fds, nfds, tmo, ss);
}
