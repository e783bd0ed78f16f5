/* uring.c: the loop's kernel wait and the sockets' reads, writes and
 * accepts on io_uring, beside poll.c's epoll (CORO_IO chooses; coro.h).
 *
 * Raw system calls with <linux/io_uring.h>, not liburing: liburing would
 * be a link dependency of every program that links libcoro, for what is a
 * few hundred lines here (set up, map, fill an SQE, reap a CQE), and
 * Debian's liburing-dev lags the kernel's header. Kernel 5.17 or later is
 * asked for (IORING_FEAT_CQE_SKIP stands for it): multishot poll, cancel
 * by user_data and the timeout argument of io_uring_enter are all there.
 *
 * Batching: an operation's SQE is only queued; the idle wait's
 * io_uring_enter submits every SQE of the loop's turn and waits for
 * completions in the one system call (the tick's look does the same
 * without waiting), and completions already in the CQ are reaped without
 * one. The ring is set up single-issuer with deferred task work where the
 * kernel has them (6.1), cooperative task work otherwise: the loop's
 * thread is the only one that submits or reaps.
 *
 * What each completion is for is in its user_data's low bits:
 *   0  an operation record (struct coro__ring_op, 8-byte aligned): a
 *      task's wait record;
 *   2  a pollable's multishot poll: its address | 2;
 *   3  the wakeup eventfd's multishot poll;
 *   4  a cancel or a removal, whose own completion says nothing.
 *
 * An operation's record is its task's wait record, and the task
 * does not return from the call before the operation's completion came
 * (a timeout or a cancellation cancels it in the ring and then waits,
 * shielded, for it): so no completion is ever written into memory that
 * was freed or reused, and no buffer handed to the kernel is given back
 * to its owner while the kernel may still write it. A task on the shared
 * stack never hands the kernel a buffer on that stack, which is copied
 * away while the task is parked: those reads and writes wait for
 * readiness (a POLL_ADD) and then make the system call themselves.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SQ_ENTRIES 256
#define CQ_ENTRIES 8192 /* a turn's completions for many connections */

enum {
    UD_OP = 0,
    UD_POLLABLE = 2,
    UD_WAKEUP = 3,
    UD_IGNORE = 4,
    UD_TAG = 7
};

struct coro__ring {
    int                  fd;
    unsigned            *sq_head, *sq_tail, sq_mask, sq_entries;
    struct io_uring_sqe *sqes;
    unsigned            *cq_head, *cq_tail, cq_mask;
    struct io_uring_cqe *cqes;
    unsigned             tail;      /* the SQ tail not yet published */
    unsigned             queued;    /* SQEs not yet submitted */
    void                *sq_map, *cq_map, *sqe_map;
    size_t               sq_len, cq_len, sqe_len;
};

static int sys_setup(unsigned entries, struct io_uring_params *p)
{
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned submit, unsigned min, unsigned flags,
                     const void *arg, size_t argsz)
{
    return (int)syscall(__NR_io_uring_enter, fd, submit, min, flags, arg,
                        argsz);
}

static void ring_unmap(struct coro__ring *r)
{
    if (r->sqe_map)
        munmap(r->sqe_map, r->sqe_len);
    if (r->cq_map && r->cq_map != r->sq_map)
        munmap(r->cq_map, r->cq_len);
    if (r->sq_map)
        munmap(r->sq_map, r->sq_len);
    if (r->fd >= 0)
        close(r->fd);
}

/* io_uring_setup with the best flags this kernel takes: each newer one
 * it does not know is EINVAL. */
static int ring_setup(struct io_uring_params *p)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int fd = -1;
    for (size_t i = 0; i < sizeof tries / sizeof *tries; i++) {
        memset(p, 0, sizeof *p);
        p->flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
        p->cq_entries = CQ_ENTRIES;
        fd = sys_setup(SQ_ENTRIES, p);
        if (fd >= 0 || errno != EINVAL)
            break;
    }
    return fd;
}

int coro__ring_init(struct coro__poller *p)
{
    int saved = errno;
    struct coro__ring *r = coro__calloc(1, sizeof *r);
    if (!r)
        return ENOMEM;
    struct io_uring_params par;
    r->fd = ring_setup(&par);
    int err = r->fd < 0 ? errno : 0;
    if (!err && !(par.features & IORING_FEAT_CQE_SKIP))
        err = ENOSYS; /* older than 5.17: epoll serves it better */
    if (!err) {
        r->sq_len = par.sq_off.array + par.sq_entries * sizeof(unsigned);
        r->cq_len = par.cq_off.cqes +
                    par.cq_entries * sizeof(struct io_uring_cqe);
        if (par.features & IORING_FEAT_SINGLE_MMAP)
            r->sq_len = r->cq_len = r->sq_len > r->cq_len ? r->sq_len
                                                          : r->cq_len;
        r->sqe_len = par.sq_entries * sizeof(struct io_uring_sqe);
        r->sq_map = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
        if (r->sq_map == MAP_FAILED)
            r->sq_map = NULL;
        r->cq_map = !r->sq_map || (par.features & IORING_FEAT_SINGLE_MMAP)
                        ? r->sq_map
                        : mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_POPULATE, r->fd,
                               IORING_OFF_CQ_RING);
        if (r->cq_map == MAP_FAILED)
            r->cq_map = NULL;
        r->sqe_map = mmap(NULL, r->sqe_len, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
        if (r->sqe_map == MAP_FAILED)
            r->sqe_map = NULL;
        if (!r->sq_map || !r->cq_map || !r->sqe_map)
            err = errno ? errno : ENOMEM;
    }
    if (err) {
        ring_unmap(r);
        coro__free(r, sizeof *r);
        errno = saved;
        return err;
    }
    char *sq = r->sq_map, *cq = r->cq_map;
    r->sq_head = (unsigned *)(sq + par.sq_off.head);
    r->sq_tail = (unsigned *)(sq + par.sq_off.tail);
    r->sq_mask = *(unsigned *)(sq + par.sq_off.ring_mask);
    r->sq_entries = par.sq_entries;
    unsigned *array = (unsigned *)(sq + par.sq_off.array);
    for (unsigned i = 0; i < par.sq_entries; i++)
        array[i] = i; /* slot i is always SQE i */
    r->sqes = r->sqe_map;
    r->cq_head = (unsigned *)(cq + par.cq_off.head);
    r->cq_tail = (unsigned *)(cq + par.cq_off.tail);
    r->cq_mask = *(unsigned *)(cq + par.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + par.cq_off.cqes);
    r->tail = *r->sq_tail;
    p->ring = r;
    errno = saved;
    return 0;
}

void coro__ring_term(struct coro__poller *p)
{
    if (!p->ring)
        return;
    ring_unmap(p->ring);
    coro__free(p->ring, sizeof *p->ring);
    p->ring = NULL;
}

/* Hands the queued SQEs to the kernel and, with GETEVENTS, waits for
 * min completions or the timeout (NULL: none). */
static int ring_enter(struct coro__ring *r, unsigned min, unsigned flags,
                      const struct timespec *ts)
{
    __atomic_store_n(r->sq_tail, r->tail, __ATOMIC_RELEASE);
    struct io_uring_getevents_arg arg;
    memset(&arg, 0, sizeof arg);
    arg.ts = (uint64_t)(uintptr_t)ts;
    int n = sys_enter(r->fd, r->queued, min, flags | IORING_ENTER_EXT_ARG,
                      &arg, sizeof arg);
    if (n >= 0) {
        r->queued -= (unsigned)n < r->queued ? (unsigned)n : r->queued;
        return 0;
    }
    return errno;
}

/* A zeroed SQE, queued; when the SQ is full, the queued ones are
 * submitted first. NULL only if the kernel takes none (EBUSY, ENOMEM). */
static struct io_uring_sqe *sqe_get(struct coro__ring *r)
{
    unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
    if (r->tail - head >= r->sq_entries) {
        int saved = errno;
        ring_enter(r, 0, 0, NULL);
        errno = saved;
        head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
        if (r->tail - head >= r->sq_entries)
            return NULL;
    }
    struct io_uring_sqe *s = &r->sqes[r->tail & r->sq_mask];
    memset(s, 0, sizeof *s);
    r->tail++;
    r->queued++;
    return s;
}

static int poll_multi(struct coro__ring *r, int fd, uint32_t events,
                      uint64_t ud)
{
    struct io_uring_sqe *s = sqe_get(r);
    if (!s)
        return EAGAIN;
    s->opcode = IORING_OP_POLL_ADD;
    s->fd = fd;
    s->len = IORING_POLL_ADD_MULTI;
    s->poll32_events = events;
    s->user_data = ud;
    return 0;
}

/* A removal or cancel of the operation whose user_data is ud. */
static void cancel_ud(struct coro__ring *r, int opcode, uint64_t ud)
{
    struct io_uring_sqe *s = sqe_get(r);
    if (!s)
        return; /* its completion comes all the same, later */
    s->opcode = (uint8_t)opcode;
    s->fd = -1;
    s->addr = ud;
    s->user_data = UD_IGNORE;
    s->flags = IOSQE_CQE_SKIP_SUCCESS;
}

/* ----------------------------------------------------------------------
 * Readiness the loop keeps: pollables, the wakeup eventfd
 * ---------------------------------------------------------------------- */

int coro__ring_add(struct coro__poller *p, int fd, uint32_t events,
                   struct coro__pollable *h)
{
    h->fd = fd;
    h->events = events;
    return poll_multi(p->ring, fd, events, (uint64_t)(uintptr_t)h | UD_POLLABLE);
}

void coro__ring_remove(struct coro__poller *p, struct coro__pollable *h)
{
    cancel_ud(p->ring, IORING_OP_POLL_REMOVE,
              (uint64_t)(uintptr_t)h | UD_POLLABLE);
}

int coro__ring_wakeup_watch(struct coro__poller *p, int fd)
{
    return poll_multi(p->ring, fd, POLLIN, UD_WAKEUP);
}

/* ----------------------------------------------------------------------
 * Completions
 * ---------------------------------------------------------------------- */

static void op_done(struct coro__ring_op *op, int32_t res)
{
    op->res = res;
    op->done = 1;
    if (op->task)
        coro__wake(op->task, 0);
}

static void dispatch(struct coro__poller *p, uint64_t ud, int32_t res,
                     uint32_t flags)
{
    int ended = !(flags & IORING_CQE_F_MORE);
    switch (ud & UD_TAG) {
    case UD_OP:
        op_done((struct coro__ring_op *)(uintptr_t)ud, res);
        break;
    case UD_POLLABLE: {
        struct coro__pollable *h =
            (struct coro__pollable *)(uintptr_t)(ud & ~(uint64_t)UD_TAG);
        if (res > 0)
            h->ready(h, (uint32_t)res);
        if (ended && res != -ECANCELED)
            poll_multi(p->ring, h->fd, h->events, ud);
        break;
    }
    case UD_WAKEUP:
        if (p->evfd >= 0) {
            uint64_t count;
            ssize_t n = read(p->evfd, &count, sizeof count);
            (void)n; /* only drained: the posts are the scheduler's */
            if (ended && res != -ECANCELED)
                poll_multi(p->ring, p->evfd, POLLIN, UD_WAKEUP);
        }
        break;
    default:
        break;
    }
}

/* Takes what the CQ holds, without a system call. */
static void reap(struct coro__poller *p)
{
    struct coro__ring *r = p->ring;
    unsigned head = *r->cq_head;
    for (;;) {
        unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
        if (head == tail)
            break;
        struct io_uring_cqe *c = &r->cqes[head & r->cq_mask];
        uint64_t ud = c->user_data;
        int32_t res = c->res;
        uint32_t flags = c->flags;
        head++;
        /* Free the slot before dispatching, which may submit. */
        __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
        dispatch(p, ud, res, flags);
    }
}

static int cq_ready(const struct coro__ring *r)
{
    return __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE) != *r->cq_head;
}

/* As poll.c's wait: "sleeping" is published before the posted bits are
 * read, so that a poster either is seen here or writes the eventfd. */
void coro__ring_wait(struct coro__poller *p, int64_t deadline)
{
    struct coro__ring *r = p->ring;
    int saved = errno;
    atomic_store(&p->sleeping, 1);
    if (atomic_load(&p->posted) || cq_ready(r))
        deadline = 0; /* news came: only look */
    struct timespec ts, *tsp = coro__timeout_ts(deadline, &ts);
    /* With min 0 the call submits and runs deferred completions only. */
    ring_enter(r, deadline == 0 ? 0 : 1, IORING_ENTER_GETEVENTS, tsp);
    atomic_store(&p->sleeping, 0);
    reap(p);
    errno = saved;
}

/* ----------------------------------------------------------------------
 * Operations run to their completion
 * ---------------------------------------------------------------------- */

int coro__ring_usable(struct coro_task *self, const void *buf, size_t len)
{
    if (!self->loop->poller.ring)
        return 0;
    if (!self->shared)
        return 1;
    /* In integers: buf + len may pass the address space (a cap larger
     * than what can be read), which as a pointer sum is undefined. */
    const struct coro__stack *s = coro__stack_of(self);
    uintptr_t b = (uintptr_t)buf, lo = (uintptr_t)s->lo;
    return (b < lo && len <= lo - b) || b >= lo + s->size;
}

/* Takes the parked task back from the fd's slot (a timeout, a
 * cancellation, coro_close, or the completion's own wake). */
static void op_detach(struct coro_task *t)
{
    struct coro__ring_op *op = t->waiting_on;
    struct coro__fdwait *w = &t->loop->io.fds[op->io.fd];
    if (op->io.writable ? w->writer == t : w->reader == t)
        *(op->io.writable ? &w->writer : &w->reader) = NULL;
    op->task = NULL;
}

static void op_unwait(struct coro_task *t)
{
    struct coro__ring_op *op = t->waiting_on;
    op->task = NULL;
}

/* Queues the SQE prepared in *tpl for fd (one reader and one writer per
 * fd, as io.c's waits) and parks until it completes: 0 with its result in
 * *res, the errno of a failed operation, or why it was given up. */
static int op_run(struct coro_task *self, const struct io_uring_sqe *tpl,
                  int writable, int64_t deadline, int32_t *res)
{
    struct coro__loop *l = self->loop;
    struct coro__io *io = &l->io;
    int fd = tpl->fd;
    if (fd < 0)
        return EBADF;
    if ((size_t)fd < io->nfds &&
        (writable ? io->fds[fd].writer : io->fds[fd].reader))
        return EBUSY;
    if ((size_t)fd >= io->nfds) {
        /* io.c's table, grown as its waits grow it: for an open fd only,
         * so that a wild number costs nothing. */
        int saved = errno;
        int bad = fcntl(fd, F_GETFD) < 0;
        errno = saved;
        if (bad)
            return EBADF;
        size_t n = io->nfds ? io->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct coro__fdwait *fds = coro__realloc(
            io->fds, io->nfds * sizeof *fds, n * sizeof *fds);
        if (!fds)
            return ENOMEM;
        memset(fds + io->nfds, 0, (n - io->nfds) * sizeof *fds);
        io->fds = fds;
        io->nfds = n;
    }
    struct io_uring_sqe *s = sqe_get(l->poller.ring);
    if (!s)
        return ENOMEM;
    struct coro__ring_op *op = &self->wait->ring;
    *op = (struct coro__ring_op){ { fd, writable }, self, 0, 0 };
    *s = *tpl;
    s->user_data = (uint64_t)(uintptr_t)op;
    *(writable ? &io->fds[fd].writer : &io->fds[fd].reader) = self;
    struct coro__park wait = {
        .kind = writable ? CORO__W_FD_WRITE : CORO__W_FD_READ,
        .wakers = CORO__BY_KERNEL,
        .timeout_status = ETIMEDOUT,
        .deadline = deadline,
        .detach = op_detach,
        .record = op,
        .record_size = sizeof *op,
    };
    int err = coro__park(self, &wait);
    if (!op->done) {
        /* Given up (err says why): the kernel may still write the buffer,
         * so the operation goes, and its completion is waited for. */
        cancel_ud(l->poller.ring, IORING_OP_ASYNC_CANCEL,
                  (uint64_t)(uintptr_t)op);
        op->task = self;
        wait.deadline = CORO__NEVER;
        wait.detach = op_unwait;
        coro__park_shielded(self, &wait);
    }
    /* Done before the cancellation took: a result that moved data (or a
     * connection) stands; a poll's says nothing that cannot be asked
     * again, and the wait's end is what was given up. */
    if (!err || (tpl->opcode != IORING_OP_POLL_ADD && op->res >= 0)) {
        if (op->res < 0)
            return -op->res;
        *res = op->res;
        return 0;
    }
    return err ? err : ECANCELED;
}

/* An SQE for opcode on fd; a data operation's buffer and length, at most
 * what one read(2) moves. */
static void sqe_prep(struct io_uring_sqe *s, uint8_t opcode, int fd,
                     const void *buf, size_t len)
{
    memset(s, 0, sizeof *s);
    s->opcode = opcode;
    s->fd = fd;
    s->addr = (uint64_t)(uintptr_t)buf;
    s->len = len > 0x7ffff000 ? 0x7ffff000 : (uint32_t)len;
}

int coro__ring_poll(struct coro_task *self, int fd, int writable,
                    int64_t deadline)
{
    struct io_uring_sqe s;
    sqe_prep(&s, IORING_OP_POLL_ADD, fd, NULL, 0);
    s.poll32_events = writable ? POLLOUT : POLLIN | POLLRDHUP;
    int32_t res = 0;
    int err = op_run(self, &s, writable, deadline, &res);
    return !err && (res & POLLNVAL) ? EBADF : err;
}

int coro__ring_recv(struct coro_task *self, int fd, void *buf, size_t cap,
                    int64_t deadline, size_t *got)
{
    struct io_uring_sqe s;
    sqe_prep(&s, IORING_OP_RECV, fd, buf, cap);
    int32_t res = 0;
    int err = op_run(self, &s, 0, deadline, &res);
    if (!err)
        *got = (size_t)res;
    return err;
}

int coro__ring_send(struct coro_task *self, int fd, const void *buf,
                    size_t n, int64_t deadline, size_t *sent)
{
    struct io_uring_sqe s;
    sqe_prep(&s, IORING_OP_SEND, fd, buf, n);
    s.msg_flags = MSG_NOSIGNAL;
    int32_t res = 0;
    int err = op_run(self, &s, 1, deadline, &res);
    if (!err)
        *sent = (size_t)res;
    return err;
}

int coro__ring_accept(struct coro_task *self, int fd, int64_t deadline,
                      int *out)
{
    struct io_uring_sqe s;
    sqe_prep(&s, IORING_OP_ACCEPT, fd, NULL, 0);
    s.accept_flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    int32_t res = 0;
    int err = op_run(self, &s, 0, deadline, &res);
    if (!err)
        *out = res;
    return err;
}
