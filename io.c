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
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

enum { WAIT_READ, WAIT_WRITE };

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
        fds[i] = (struct coro__fdwait){ NULL, NULL };
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

/* Arms the watch for whatever fd's waiters want. */
static int arm(struct coro__loop *l, int fd)
{
    struct coro__fdwait *w = &l->io.fds[fd];
    uint32_t events = 0;
    if (w->reader)
        events |= EPOLLIN | EPOLLRDHUP;
    if (w->writer)
        events |= EPOLLOUT;
    return events ? coro__poller_watch(&l->poller, fd, events) : 0;
}

void coro__io_event(struct coro__poller *p, int fd, uint32_t events)
{
    struct coro__loop *l = io_loop(p);
    if ((size_t)fd >= l->io.nfds)
        return;
    struct coro__fdwait *w = &l->io.fds[fd];
    /* Errors and hang-ups wake both sides: their next call reports it. */
    uint32_t any = EPOLLERR | EPOLLHUP;
    if (w->reader && (events & (EPOLLIN | EPOLLRDHUP | any)))
        coro__wake(w->reader, 0);
    if (w->writer && (events & (EPOLLOUT | any)))
        coro__wake(w->writer, 0);
    /* The one-shot watch is spent; whoever still waits needs it again. */
    if (w->reader || w->writer)
        arm(l, fd);
}

static int io_detach(struct coro_task *t)
{
    struct coro__fdwait *w = &t->loop->io.fds[t->wait.io.fd];
    if (t->wait.io.dir == WAIT_READ)
        w->reader = NULL;
    else
        w->writer = NULL;
    t->loop->io.waiting--;
    return 0;
}

/* A deadline already past only looks: poll(2) answers without a round
 * through the loop, where the timer would fire before epoll could report. */
static int ready_now(int fd, int dir)
{
    struct pollfd pfd = { fd, dir == WAIT_READ ? POLLIN : POLLOUT, 0 };
    int saved = errno;
    int n = poll(&pfd, 1, 0);
    errno = saved;
    if (n > 0 && (pfd.revents & POLLNVAL))
        return EBADF;
    return n > 0 ? 0 : ETIMEDOUT;
}

int coro__wait_fd(int fd, int writable, int64_t deadline)
{
    struct coro_task *self = coro__current();
    int dir = writable ? WAIT_WRITE : WAIT_READ;
    if (fd < 0)
        return EBADF;
    if (self->cancelled && !self->shield)
        return ECANCELED;
    if (deadline != CORO__NEVER && deadline <= coro__clock_ns())
        return ready_now(fd, dir);
    struct coro__loop *l = self->loop;
    if (table_fit(&l->io, fd) != 0)
        return ENOMEM;
    struct coro__fdwait *w = &l->io.fds[fd];
    struct coro_task **slot = dir == WAIT_READ ? &w->reader : &w->writer;
    if (*slot)
        return EBUSY;
    *slot = self;
    int err = arm(l, fd);
    if (err) {
        *slot = NULL;
        /* epoll cannot watch regular files: they are always ready. */
        return err == EPERM ? 0 : err;
    }
    l->io.waiting++;
    self->wait.io.fd = fd;
    self->wait.io.dir = dir;
    return coro__park(self, dir == WAIT_READ ? CORO__W_FD_READ : CORO__W_FD_WRITE,
                      NULL, deadline, ETIMEDOUT, io_detach);
}

static int await_fd(int fd, int writable, double timeout)
{
    int64_t deadline;
    if (!coro__current())
        return EPERM;
    if (coro__deadline(timeout, &deadline) != 0)
        return EINVAL;
    return coro__wait_fd(fd, writable, deadline);
}

int await_readable(int fd, double timeout)
{
    return await_fd(fd, 0, timeout);
}

int await_writable(int fd, double timeout)
{
    return await_fd(fd, 1, timeout);
}

int coro_close(int fd)
{
    if (fd < 0)
        return EBADF;
    struct coro_task *self = coro__current();
    struct coro__loop *l = self ? self->loop : NULL;
    if (l && (size_t)fd < l->io.nfds) {
        struct coro__fdwait *w = &l->io.fds[fd];
        if (w->reader)
            coro__wake(w->reader, EBADF);
        if (w->writer)
            coro__wake(w->writer, EBADF);
    }
    int saved = errno;
    int err = close(fd) == 0 ? 0 : errno;
    errno = saved;
    return err == EINTR ? 0 : err; /* Linux frees the fd even then */
}
