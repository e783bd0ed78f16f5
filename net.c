/* net.c: socket helpers on the reactor, what asyncio's streams give.
 *
 * Each helper tries its system call first and waits for readiness only on
 * EAGAIN, with one deadline for the whole call. Every fd they create is
 * non-blocking and close-on-exec; TCP sockets get TCP_NODELAY (as asyncio
 * sets it); sends use MSG_NOSIGNAL, so a peer that went away is EPIPE, not a
 * SIGPIPE that kills the process.
 *
 * There is no buffer object between the socket and the caller, so nothing
 * may be read past what a call returns: await_read_until peeks (MSG_PEEK),
 * finds the delimiter, and then consumes exactly through it.
 *
 * The helpers never block the thread, whatever fd they are given: see
 * struct stream below. Pipes are written with SIGPIPE held back, so a
 * reader that went away is EPIPE for them too.
 *
 * On a loop that runs on io_uring (uring.c), a socket's EAGAIN hands the
 * read, write or accept to the ring (RECV, SEND, ACCEPT), which completes
 * it when the socket is ready, submitted with the loop's next kernel wait.
 * What the ring cannot be given waits for readiness as on epoll: a buffer
 * on the shared stack, a pipe or another non-socket, await_read_until's
 * peeks, a blocking listening socket.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The entry check every suspending helper starts with. */
static int enter(double timeout, int64_t *deadline)
{
    struct coro_task *self;
    return coro__enter(timeout, &self, deadline);
}

/* Parks the calling task until fd is ready in the direction wanted;
 * tried: a system call on fd said EAGAIN just now (see io.c). With look
 * (the call's timeout is 0, which only tries), an fd not tried yet (a
 * blocking one, tried only once the reactor says it is ready) is first
 * looked at with poll(2): the parked wait's deadline has passed, and
 * would end it before the reactor was asked, ready or not. Not ready, it
 * parks all the same, so that the other ready tasks run once before the
 * ETIMEDOUT, as for any other wait. */
static int wait_fd(int fd, int writable, int64_t deadline, int tried,
                   int look)
{
    if (look && !tried) {
        int err = coro__fd_look(fd, writable);
        if (err != ETIMEDOUT)
            return err;
    }
    return coro__wait_fd(coro__current(), fd, writable, deadline, tried);
}

/* The loop runs on io_uring (uring.c). */
static int ring(void)
{
    struct coro__loop *l = coro__tls_loop;
    return l && l->poller.ring;
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* not TCP:
                                                                    ignored */
}

int coro_listen(const char *addr, int port, int backlog, int *fd)
{
    return coro_listen_flags(addr, port, backlog, 0, fd);
}

int coro_listen_flags(const char *addr, int port, int backlog,
                      unsigned flags, int *fd)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (!addr || !fd || port < 0 || port > 65535 ||
        (flags & ~CORO_LISTEN_REUSEPORT))
        return EINVAL;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        len = sizeof *v6;
    } else {
        return EINVAL;
    }
    int saved = errno;
    int s = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   0);
    int err = s < 0 ? errno : 0;
    int one = 1;
    if (!err && (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
                 ((flags & CORO_LISTEN_REUSEPORT) &&
                  setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one,
                             sizeof one)) ||
                 bind(s, (struct sockaddr *)&ss, len) ||
                 listen(s, backlog > 0 ? backlog : SOMAXCONN)))
        err = errno;
    if (err && s >= 0)
        close(s);
    else if (!err)
        *fd = s;
    errno = saved;
    return err;
}

int coro_sock_port(int fd, int *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (!port)
        return EINVAL;
    int saved = errno;
    int err = getsockname(fd, (struct sockaddr *)&ss, &len) ? errno : 0;
    errno = saved;
    if (err)
        return err;
    if (ss.ss_family == AF_INET)
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
        *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    else
        return EAFNOSUPPORT;
    return 0;
}

int await_accept(int listen_fd, double timeout, int *fd)
{
    int64_t deadline;
    int err = fd ? enter(timeout, &deadline) : EINVAL;
    int saved = errno;
    /* A blocking listening socket is accepted from only once the reactor
     * says a connection waits (there is no MSG_DONTWAIT for accept). A
     * blocking fd that is no listening socket would never say so: accept
     * gives its answer at once (EINVAL, EOPNOTSUPP), or getsockopt's
     * (ENOTSOCK). */
    int flags = err ? 0 : fcntl(listen_fd, F_GETFL);
    if (flags < 0)
        err = errno;
    int ready = flags & O_NONBLOCK;
    if (!err && !ready) {
        int listening = 0;
        socklen_t len = sizeof listening;
        if (getsockopt(listen_fd, SOL_SOCKET, SO_ACCEPTCONN, &listening,
                       &len) != 0)
            err = errno;
        ready = !listening;
    }
    int tried = ready;
    int s;
    while (!err) {
        s = ready ? accept4(listen_fd, NULL, NULL,
                                SOCK_NONBLOCK | SOCK_CLOEXEC)
                      : (errno = EAGAIN, -1);
        if (s >= 0) {
            set_nodelay(s);
            *fd = s;
            break;
        }
        err = errno;
        ready = flags & O_NONBLOCK;
        if (err == EINTR || err == ECONNABORTED) {
            err = 0;
        } else if ((err == EAGAIN || err == EWOULDBLOCK) &&
                   (flags & O_NONBLOCK) && ring()) {
            /* The ring accepts when the connection comes. */
            err = coro__ring_accept(coro__current(), listen_fd, deadline, &s);
            if (!err) {
                set_nodelay(s);
                *fd = s;
                break;
            }
            if (err == EINTR || err == ECONNABORTED)
                err = 0;
        } else if (err == EAGAIN || err == EWOULDBLOCK) {
            err = wait_fd(listen_fd, 0, deadline, tried, timeout == 0);
            ready = tried = 1;
        }
    }
    errno = saved;
    return err;
}

/* getaddrinfo's failures as errno values. */
static int gai_errno(int rc, int sys_errno)
{
    switch (rc) {
    case EAI_AGAIN:
        return EAGAIN;
    case EAI_MEMORY:
        return ENOMEM;
    case EAI_SYSTEM:
        return sys_errno ? sys_errno : EIO;
    default:
        return ENXIO; /* no such host */
    }
}

/* A name to resolve on a worker. On the heap: the worker writes it while
 * the task is parked, when a shared-stack task's stack is not in place. */
struct resolve {
    const char      *host;
    char             service[8];
    struct addrinfo *result;
    int              rc;
    int              sys_errno;
};

/* Runs on a worker thread: getaddrinfo may block on DNS for seconds. */
static void *resolve_job(void *arg)
{
    struct resolve *r = arg;
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV };
    r->rc = getaddrinfo(r->host, r->service, &hints, &r->result);
    r->sys_errno = errno;
    return NULL;
}

/* Numeric addresses resolve at once; names on the worker threads. */
static int resolve(struct resolve *r)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
    r->result = NULL;
    r->rc = getaddrinfo(r->host, r->service, &hints, &r->result);
    if (r->rc == EAI_NONAME) {
        int err = await_blocking(resolve_job, r, NULL);
        if (err) {
            if (r->result)
                freeaddrinfo(r->result); /* it ran before the cancel */
            r->result = NULL;
            return err;
        }
    }
    return r->rc ? gai_errno(r->rc, r->sys_errno) : 0;
}

/* Connects one address: non-blocking connect, wait until writable, then
 * the outcome from SO_ERROR. */
static int connect_one(const struct addrinfo *ai, int64_t deadline,
                       int look, int *fd)
{
    int s = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
                                      SOCK_CLOEXEC,
                   ai->ai_protocol);
    if (s < 0)
        return errno;
    int err = connect(s, ai->ai_addr, ai->ai_addrlen) ? errno : 0;
    if (err == EINPROGRESS) {
        err = wait_fd(s, 1, deadline, 0, look);
        socklen_t len = sizeof err;
        if (!err && getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
    }
    if (err) {
        close(s);
        return err;
    }
    set_nodelay(s);
    *fd = s;
    return 0;
}

int await_dial(const char *host, int port, double timeout, int *fd)
{
    int64_t deadline;
    if (!host || !fd || port <= 0 || port > 65535)
        return coro__current() ? EINVAL : EPERM;
    int err = enter(timeout, &deadline);
    if (err)
        return err;
    struct resolve *r = coro__calloc(1, sizeof *r);
    if (!r)
        return ENOMEM;
    r->host = host;
    snprintf(r->service, sizeof r->service, "%d", port);
    int saved = errno;
    err = resolve(r);
    if (!err && !r->result)
        err = ENXIO;
    /* Every address in turn, as asyncio does without happy eyeballs; the
     * last failure is the one reported. A timeout or a cancellation ends
     * the whole dial. */
    for (struct addrinfo *ai = err ? NULL : r->result; ai; ai = ai->ai_next) {
        err = connect_one(ai, deadline, timeout == 0, fd);
        if (!err || err == ETIMEDOUT || err == ECANCELED)
            break;
    }
    if (r->result)
        freeaddrinfo(r->result);
    coro__free(r, sizeof *r);
    errno = saved;
    return err;
}

/* ----------------------------------------------------------------------
 * Reads and writes that never block the thread, whatever fd they are given
 * ---------------------------------------------------------------------- */

/* What a helper knows of the fd it reads or writes. A socket takes
 * MSG_DONTWAIT on each call, whatever its O_NONBLOCK says. Any other fd
 * (a pipe, a FIFO, a tty) that is non-blocking is read and written as it
 * is; a blocking one only as far as the reactor said it is ready, so that
 * no call can sleep in the kernel: a read takes what FIONREAD says is
 * there, a write at most PIPE_BUF bytes, which a pipe that is writable
 * always has room for. The fd's flags are never changed. */
enum { FD_UNKNOWN, FD_SOCKET, FD_NONBLOCKING, FD_BLOCKING };

struct stream {
    int fd;
    int kind;
    int ready;      /* FD_BLOCKING: the reactor said it is ready */
    int look;       /* the call's timeout is 0: look, never park */
};

/* Learns what a non-socket fd is: 0, or fcntl's errno (EBADF). An fd not
 * open for the way it is used is EBADF, as read(2) and write(2) say: a
 * blocking one would wait for a readiness that never comes (the read end
 * of a pipe is never writable). */
static int stream_probe(struct stream *s, int writing)
{
    int flags = fcntl(s->fd, F_GETFL);
    if (flags < 0)
        return errno;
    if ((flags & O_ACCMODE) == (writing ? O_RDONLY : O_WRONLY))
        return EBADF;
    s->kind = flags & O_NONBLOCK ? FD_NONBLOCKING : FD_BLOCKING;
    return 0;
}

/* The bytes a blocking fd holds now, or -1 with errno EAGAIN when it must
 * be waited for. */
static ssize_t blocking_avail(struct stream *s, size_t cap)
{
    int avail = 0;
    if (ioctl(s->fd, FIONREAD, &avail) != 0)
        avail = -1; /* it cannot tell: only readiness can */
    if (avail == 0 && !s->ready) {
        errno = EAGAIN;
        return -1;
    }
    s->ready = 0;
    if (avail > 0 && (size_t)avail < cap)
        return avail;
    return (ssize_t)cap; /* after readiness: data, or the end of file */
}

/* One read of at most cap bytes (peek: leave them in a socket): what
 * read(2) returns, with EAGAIN meaning "wait until readable". */
static ssize_t stream_read(struct stream *s, void *buf, size_t cap, int peek)
{
    if (s->kind == FD_UNKNOWN || s->kind == FD_SOCKET) {
        ssize_t n = recv(s->fd, buf, cap, MSG_DONTWAIT | (peek ? MSG_PEEK : 0));
        if (n >= 0 || errno != ENOTSOCK) {
            s->kind = FD_SOCKET;
            return n;
        }
        int err = stream_probe(s, 0);
        if (err) {
            errno = err;
            return -1;
        }
    }
    if (s->kind == FD_BLOCKING) {
        ssize_t k = blocking_avail(s, cap);
        if (k < 0)
            return -1;
        cap = (size_t)k;
    }
    return read(s->fd, buf, cap);
}

/* write(2) on a pipe whose reader has gone raises SIGPIPE, which
 * MSG_NOSIGNAL prevents for sockets only: block it for the call and, if
 * this write raised it (EPIPE, and it was not pending before), take it
 * back before unblocking. */
static ssize_t write_nosignal(int fd, const void *p, size_t n)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t k = write(fd, p, n);
    int err = errno;
    if (k < 0 && err == EPIPE && !was_pending) {
        const struct timespec now = { 0, 0 };
        while (sigtimedwait(&pipe_set, NULL, &now) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return k;
}

/* One write of at most n bytes: what write(2) returns, with EAGAIN meaning
 * "wait until writable". */
static ssize_t stream_write(struct stream *s, const void *p, size_t n)
{
    if (s->kind == FD_UNKNOWN || s->kind == FD_SOCKET) {
        ssize_t k = send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k >= 0 || errno != ENOTSOCK) {
            s->kind = FD_SOCKET;
            return k;
        }
        int err = stream_probe(s, 1);
        if (err) {
            errno = err;
            return -1;
        }
    }
    if (s->kind == FD_BLOCKING) {
        if (!s->ready) {
            errno = EAGAIN;
            return -1;
        }
        s->ready = 0;
        if (n > PIPE_BUF)
            n = PIPE_BUF;
    }
    return write_nosignal(s->fd, p, n);
}

/* After EAGAIN: waits until fd is ready in the direction wanted. */
static int stream_wait(struct stream *s, int writable, int64_t deadline)
{
    /* A blocking fd's EAGAIN may be ours, before any call (see above). */
    int err = wait_fd(s->fd, writable, deadline, s->kind != FD_BLOCKING,
                      s->look);
    if (!err)
        s->ready = 1;
    return err;
}

/* What to do after a failed call: 0 to try again (EINTR, or EAGAIN once
 * the fd is ready), or the error to return. */
static int stream_retry(struct stream *s, int err, int writable,
                        int64_t deadline)
{
    if (err == EINTR)
        return 0;
    if (err == EAGAIN || err == EWOULDBLOCK)
        return stream_wait(s, writable, deadline);
    return err;
}

/* ----------------------------------------------------------------------
 * The helpers
 * ---------------------------------------------------------------------- */

int await_read(int fd, void *buf, size_t cap, double timeout, size_t *got)
{
    int64_t deadline;
    int err = !got || (!buf && cap) ? EINVAL : enter(timeout, &deadline);
    int saved = errno;
    struct stream s = { fd, FD_UNKNOWN, 0, timeout == 0 };
    if (got)
        *got = 0;
    /* A kept stream socket (io.c) on the ring: the RECV at once. Nothing
     * to read is done at once, as asyncio's read(0). */
    int first = !err && cap > 0 && coro__fd_ring_first(fd);
    if (first)
        s.kind = FD_SOCKET;
    while (!err && cap > 0) {
        ssize_t n = first ? (errno = EAGAIN, -1) : stream_read(&s, buf, cap, 0);
        first = 0;
        if (n >= 0) {
            *got = (size_t)n;
            if (n > 0 && (size_t)n < cap)
                coro__fd_drained(fd);
            break;
        }
        err = errno;
        if (err == EAGAIN && s.kind == FD_SOCKET &&
            coro__ring_usable(coro__current(), buf, cap)) {
            /* The RECV lands when the data does. */
            err = coro__ring_recv(coro__current(), fd, buf, cap, deadline,
                                  got);
            if (!err && *got > 0 && *got < cap)
                coro__fd_drained(fd);
            if (err != EINTR)
                break;
        }
        err = stream_retry(&s, err, 0, deadline);
    }
    errno = saved;
    return err;
}

int await_read_full(int fd, void *buf, size_t n, double timeout, size_t *got)
{
    int64_t deadline;
    int err = !got || (!buf && n) ? EINVAL : enter(timeout, &deadline);
    int saved = errno;
    struct stream s = { fd, FD_UNKNOWN, 0, timeout == 0 };
    size_t have = 0;
    while (!err && have < n) {
        ssize_t k = stream_read(&s, (char *)buf + have, n - have, 0);
        if (k > 0) {
            have += (size_t)k;
            continue;
        }
        err = k == 0 ? EPIPE : errno;
        if (err == EAGAIN && s.kind == FD_SOCKET &&
            coro__ring_usable(coro__current(), (char *)buf + have,
                              n - have)) {
            size_t got_now = 0;
            err = coro__ring_recv(coro__current(), fd, (char *)buf + have,
                                  n - have, deadline, &got_now);
            if (!err && got_now == 0)
                err = EPIPE;
            have += got_now;
            if (err == EINTR)
                err = 0;
        } else if (err != EPIPE) {
            err = stream_retry(&s, err, 0, deadline);
        }
    }
    if (got)
        *got = have;
    errno = saved;
    return err;
}

/* Where the delimiter ends in buf[0..len), searching from `from`; 0 if it
 * is not there. */
static size_t find_delim(const char *buf, size_t len, size_t from,
                         const char *delim, size_t dlen)
{
    for (size_t i = from; i + dlen <= len; i++)
        if (buf[i] == delim[0] && memcmp(buf + i, delim, dlen) == 0)
            return i + dlen;
    return 0;
}

/* Takes k bytes that a peek showed are there. */
static int consume(int fd, char *to, size_t k)
{
    while (k > 0) {
        ssize_t n = recv(fd, to, k, MSG_DONTWAIT);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            return n == 0 ? EPIPE : errno;
        }
        to += n;
        k -= (size_t)n;
    }
    return 0;
}

/* Whether await_read_until can serve fd: a stream socket (peeked), or a
 * non-socket (read a byte at a time). A datagram or seqpacket socket
 * would lose what a peeked message holds past the delimiter: refused with
 * EPROTOTYPE. 0 with *peek set, or an errno value. */
static int until_kind(int fd, int *peek)
{
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
        *peek = 0;
        return errno == ENOTSOCK ? 0 : errno;
    }
    *peek = 1;
    return type == SOCK_STREAM ? 0 : EPROTOTYPE;
}

int await_read_until(int fd, void *buf, size_t cap, const char *delim,
                     double timeout, size_t *got)
{
    int64_t deadline;
    size_t dlen = delim ? strlen(delim) : 0;
    int err = !got || !buf || dlen == 0 ? EINVAL : enter(timeout, &deadline);
    int saved = errno;
    char *b = buf;
    size_t have = 0;
    int peek = 0;
    struct stream s = { fd, FD_UNKNOWN, 0, timeout == 0 };
    if (!err)
        err = until_kind(fd, &peek);
    while (!err) {
        if (have == cap) {
            err = ENOBUFS;
            break;
        }
        ssize_t k = stream_read(&s, b + have, peek ? cap - have : 1, peek);
        if (k == 0) {
            err = EPIPE; /* the stream ended before the delimiter */
            break;
        }
        if (k < 0) {
            err = stream_retry(&s, errno, 0, deadline);
            continue;
        }
        size_t from = have >= dlen - 1 ? have - (dlen - 1) : 0;
        size_t end = find_delim(b, have + (size_t)k, from, delim, dlen);
        size_t take = end ? end - have : (size_t)k;
        if (peek)
            err = consume(fd, b + have, take);
        have += take;
        if (!err && end)
            break;
    }
    if (got)
        *got = have;
    errno = saved;
    return err;
}

int await_write_all(int fd, const void *buf, size_t n, double timeout)
{
    int64_t deadline;
    int err = !buf && n ? EINVAL : enter(timeout, &deadline);
    int saved = errno;
    struct stream s = { fd, FD_UNKNOWN, 0, timeout == 0 };
    size_t done = 0;
    while (!err && done < n) {
        ssize_t k = stream_write(&s, (const char *)buf + done, n - done);
        if (k >= 0) {
            done += (size_t)k;
            continue;
        }
        err = errno;
        if (err == EAGAIN && s.kind == FD_SOCKET &&
            coro__ring_usable(coro__current(), (const char *)buf + done,
                              n - done)) {
            /* The SEND goes when the socket has room. */
            size_t sent = 0;
            err = coro__ring_send(coro__current(), fd,
                                  (const char *)buf + done, n - done,
                                  deadline, &sent);
            done += sent;
            if (err == EINTR)
                err = 0;
        } else {
            err = stream_retry(&s, err, 1, deadline);
        }
    }
    errno = saved;
    return err;
}
