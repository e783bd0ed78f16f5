/* io.c: readiness of fds. await_readable / await_writable park a task until
 * the loop's epoll instance reports the fd ready (or the timeout passes),
 * and coro_close closes an fd, waking whoever waits on it.
 *
 * Each fd has at most one reader and one writer waiting (a second is
 * EBUSY), found in a table indexed by fd. Watches are one-shot: armed when a
 * task starts waiting, disarmed by the kernel when they fire. That costs an
 * epoll_ctl per wait, and buys correctness with fds coro does not own: the
 * user may close an fd and open another under the same number at any time
 * (see coro__poller_watch). The socket helpers in net.c try their system
 * call first and wait only on EAGAIN, so a busy connection rarely waits.
 *
 * An fd the user hands over with coro_fd_keep is registered once instead,
 * edge-triggered, until coro_close: its waits cost no system call, which
 * is what a server of short requests spends most in (one epoll_ctl per
 * request besides one read and one write). Nothing can tell a kept number
 * that was closed with close(2) and reopened from the same file, so only
 * the user's promise to close it with coro_close makes that safe.
 *
 * Edges say only that something changed, and a level (await_readable
 * returns while data is there) must not be lost between them: `ready`
 * holds each direction's state as far as the loop knows. Every edge sets
 * it; it is cleared only by what proves the fd not ready: a system call
 * that said EAGAIN (the socket helpers wait with `tried`), or a short read
 * of a stream socket (coro__fd_drained). Both happen in the task's own
 * run, with no epoll_wait between the proof and the clearing, so an edge
 * after them is never lost: the kernel queues a new one for every arrival.
 * A level kept too long only makes await_readable return early, and the
 * next read says EAGAIN.
 *
 * On io_uring (uring.c) every wait is a one-shot POLL_ADD in the ring,
 * which the loop's next io_uring_enter submits with everything else: no
 * system call per wait, so nothing is kept there. coro_fd_keep then only
 * marks a stream socket whose reads go to the ring at once (net.c). A
 * multishot poll per kept fd was tried: it posts a completion for every
 * edge, and bench/http_server made 45k and 35k requests/s with it against
 * 57k and 44k without, in alternating 4 s runs (a busy machine).
 *
 * The watch is armed before the table grows, so an fd that is not open
 * costs nothing (EBADF from epoll_ctl); the table then holds 24 bytes for
 * every fd number up to the highest one waited on.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static struct coro__loop *io_loop(struct coro__poller *p)
{
    return CORO__CONTAINER_OF(p, struct coro__loop, poller);
}

static int table_fit(struct coro__io *io, int fd)
{
    if ((size_t)fd < io->nfds)
        return 0;
    size_t n = io->nfds ? io->nfds : 64;
    while (n <= (size_t)fd)
        n *= 2;
    struct coro__fdwait *fds =
        coro__realloc(io->fds, io->nfds * sizeof *fds, n * sizeof *fds);
    if (!fds)
        return ENOMEM;
    for (size_t i = io->nfds; i < n; i++)
        fds[i] = (struct coro__fdwait){ NULL, NULL, 0, 0, 0 };
    io->fds = fds;
    io->nfds = n;
    return 0;
}

void coro__io_term(struct coro__io *io)
{
    coro__free(io->fds, io->nfds * sizeof *io->fds);
    io->fds = NULL;
    io->nfds = 0;
}

/* The events the waiters on fd want, with those of a new waiter. */
static uint32_t wanted(const struct coro__io *io, int fd, int writable)
{
    uint32_t events = writable ? EPOLLOUT : EPOLLIN | EPOLLRDHUP;
    if ((size_t)fd < io->nfds) {
        if (io->fds[fd].reader)
            events |= EPOLLIN | EPOLLRDHUP;
        if (io->fds[fd].writer)
            events |= EPOLLOUT;
    }
    return events;
}

static void io_event(struct coro__poller *p, int fd, uint32_t events)
{
    struct coro__loop *l = io_loop(p);
    if ((size_t)fd >= l->io.nfds)
        return;
    struct coro__fdwait *w = &l->io.fds[fd];
    /* Errors and hang-ups wake both sides: their next call reports it. */
    uint32_t any = EPOLLERR | EPOLLHUP;
    int in = (events & (EPOLLIN | EPOLLRDHUP | any)) != 0;
    int out = (events & (EPOLLOUT | any)) != 0;
    if (w->kept) /* no watch to re-arm; the level is remembered */
        w->ready |= (unsigned char)((in ? CORO__READY_IN : 0) |
                                    (out ? CORO__READY_OUT : 0));
    if (w->reader && in)
        coro__wake(w->reader, 0);
    if (w->writer && out)
        coro__wake(w->writer, 0);
    if (w->kept)
        return;
    /* The one-shot watch is spent; whoever still waits needs it again. */
    if (w->reader || w->writer) {
        uint32_t again = (w->reader ? EPOLLIN | EPOLLRDHUP : 0) |
                         (w->writer ? EPOLLOUT : 0);
        coro__poller_watch(p, fd, again);
    }
}

void coro__io_init(struct coro__loop *l)
{
    l->poller.fd_event = io_event;
}

static void io_detach(struct coro_task *t)
{
    struct coro__fd_record *r = t->waiting_on;
    struct coro__fdwait *w = &t->loop->io.fds[r->fd];
    if (r->writable)
        w->writer = NULL;
    else
        w->reader = NULL;
}

static int wait_fd_parked(struct coro_task *self, int fd, int writable,
                          int64_t deadline, int tried)
{
    struct coro__io *io = &self->loop->io;
    if (fd < 0)
        return EBADF;
    if ((size_t)fd < io->nfds &&
        (writable ? io->fds[fd].writer : io->fds[fd].reader))
        return EBUSY;
    if (self->loop->poller.ring) {
        /* A POLL_ADD run to its completion, the record in self; kept or
         * not, it costs no system call of its own. */
        return coro__ring_poll(self, fd, writable, deadline);
    } else if ((size_t)fd < io->nfds && io->fds[fd].kept) {
        /* Registered for good: ready as far as the edges tell, unless
         * the caller's EAGAIN just said otherwise. */
        unsigned char bit = writable ? CORO__READY_OUT : CORO__READY_IN;
        if (tried)
            io->fds[fd].ready &= (unsigned char)~bit;
        else if (io->fds[fd].ready & bit)
            return 0;
    } else {
        int err = coro__poller_watch(&self->loop->poller, fd,
                                     wanted(io, fd, writable));
        if (err) /* epoll cannot watch regular files: always ready */
            return err == EPERM ? 0 : err;
        if (table_fit(io, fd) != 0)
            return ENOMEM; /* the watch fires for nobody: harmless */
    }
    struct coro__fdwait *w = &io->fds[fd];
    *(writable ? &w->writer : &w->reader) = self;
    struct coro__fd_record *r = &self->wait->io;
    *r = (struct coro__fd_record){ fd, writable };
    return coro__park(self, &(struct coro__park){
        .kind = writable ? CORO__W_FD_WRITE : CORO__W_FD_READ,
        .wakers = CORO__BY_KERNEL,
        .timeout_status = ETIMEDOUT,
        .deadline = deadline,
        .detach = io_detach,
        .record = r,
        .record_size = sizeof *r,
    });
}

/* A timeout of 0 only looks: poll(2) answers at once, where a parked wait
 * would be given up by its deadline before epoll was asked. */
int coro__fd_look(int fd, int writable)
{
    struct pollfd pfd = { fd, writable ? POLLOUT : POLLIN, 0 };
    int saved = errno;
    int n = poll(&pfd, 1, 0);
    errno = saved;
    if (n > 0 && (pfd.revents & POLLNVAL))
        return EBADF;
    return n > 0 ? 0 : ETIMEDOUT;
}

/* asyncio.wait_for gives the awaited result if it is there when the
 * timeout fires: so an fd ready when the call's own deadline ended its
 * wait is ready, not late. A timer due in the same pass of the loop is
 * fired before the kernel is asked, so without this look a tiny timeout
 * would time out on a ready fd. A scope's deadline (asyncio.timeout)
 * cancels instead: its ETIMEDOUT stands. Not after an EAGAIN of the
 * caller's (tried): a poll that disagrees with it must not send the
 * caller round again. */
int coro__wait_fd(struct coro_task *self, int fd, int writable,
                  int64_t deadline, int tried)
{
    int status = wait_fd_parked(self, fd, writable, deadline, tried);
    if (status == ETIMEDOUT && !tried &&
        !coro__scope_limits(self, deadline) &&
        coro__fd_look(fd, writable) == 0)
        return 0;
    return status;
}

static int await_fd(int fd, int writable, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter(timeout, &self, &deadline);
    if (err)
        return err;
    if (fd < 0)
        return EBADF;
    if (timeout == 0)
        return coro__fd_look(fd, writable);
    return coro__wait_fd(self, fd, writable, deadline, 0);
}

void coro__fd_drained(int fd)
{
    struct coro__loop *l = coro__tls_loop;
    if (l && (size_t)fd < l->io.nfds && l->io.fds[fd].stream)
        l->io.fds[fd].ready &= (unsigned char)~CORO__READY_IN;
}

int coro__fd_ring_first(int fd)
{
    struct coro__loop *l = coro__tls_loop;
    return l && l->poller.ring && (size_t)fd < l->io.nfds &&
           l->io.fds[fd].stream;
}

int await_readable(int fd, double timeout)
{
    return await_fd(fd, 0, timeout);
}

int await_writable(int fd, double timeout)
{
    return await_fd(fd, 1, timeout);
}

int coro_fd_keep(int fd)
{
    struct coro__loop *l = coro__loop();
    if (!l)
        return EPERM;
    if (fd < 0)
        return EBADF;
    if ((size_t)fd < l->io.nfds && l->io.fds[fd].kept)
        return 0;
    int err = 0;
    if (l->poller.ring) {
        /* Nothing to register: what the ring keeps is the fd's reads
         * going to it at once. Ask the fd what epoll_ctl would say: a
         * regular file or a directory is always ready (EPERM there). */
        struct stat st;
        int saved = errno;
        err = fstat(fd, &st) ? errno : 0;
        errno = saved;
        if (err)
            return err;
        if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
            return 0;
    } else {
        err = coro__poller_keep(&l->poller, fd);
    }
    if (err) /* EPERM: a regular file, always ready; nothing to keep */
        return err == EPERM ? 0 : err;
    if (table_fit(&l->io, fd) != 0) {
        if (!l->poller.ring)
            coro__poller_unkeep(&l->poller, fd);
        return ENOMEM;
    }
    struct coro__fdwait *w = &l->io.fds[fd];
    int type = 0;
    socklen_t len = sizeof type;
    int saved = errno;
    w->stream = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
                type == SOCK_STREAM;
    errno = saved;
    w->kept = 1;
    /* The registration reports the fd's state at once if it is ready, to
     * a task that already waits too. */
    w->ready = 0;
    return 0;
}

int coro_close(int fd)
{
    if (fd < 0)
        return EBADF;
    struct coro__loop *l = coro__loop();
    int saved = errno;
    if (l && (size_t)fd < l->io.nfds) {
        struct coro__fdwait *w = &l->io.fds[fd];
        if (w->reader)
            coro__wake(w->reader, EBADF);
        if (w->writer)
            coro__wake(w->writer, EBADF);
        /* A dup of fd would keep the registration, and its edges, alive
         * under this number after the close: drop it first. */
        if (w->kept && !l->poller.ring)
            coro__poller_unkeep(&l->poller, fd);
        w->kept = w->stream = w->ready = 0;
    }
    int err = close(fd) == 0 ? 0 : errno;
    errno = saved;
    return err == EINTR ? 0 : err; /* Linux frees the fd even then */
}
