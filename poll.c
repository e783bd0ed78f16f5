/* poll.c: the loop's kernel wait. One epoll instance per loop; the thread
 * blocks in it until the earliest deadline when no task is ready. Events on
 * watched fds go to the fd_event callback (io.c sets it), others to their
 * pollable's ready().
 *
 * epoll_wait takes its timeout in whole milliseconds and rounds up, so a
 * 1.5 ms sleep would oversleep by about 600 µs. epoll_pwait2 (Linux 5.11)
 * takes a timespec; where it is missing (ENOSYS: an older kernel, or a
 * seccomp filter), an absolute-time timerfd in the epoll set carries the
 * deadline instead and epoll_wait blocks without a timeout.
 *
 * Posts: other threads (the executor's workers) hand the loop news by
 * setting a bit in `posted`. The loop looks at it on every switch (one
 * load) and runs each kind's hook there; only when the loop is asleep in
 * the kernel does a poster write the eventfd that wakes it. The two sides
 * publish "I am about to sleep" and "there is news" with sequentially
 * consistent atomics and then read the other's flag, so at least one of
 * them sees the other: the loop never sleeps through a post, and a busy
 * loop costs posters no system call.
 *
 * CORO_IO=io_uring (or auto, where the kernel allows it) puts a ring in
 * place of the epoll instance: each coro__poller_* call below then hands
 * over to uring.c, and the loop has no epoll fd at all.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* Cleared, for the whole process, the first time epoll_pwait2 says ENOSYS. */
atomic_int coro__have_pwait2 = 1;

/* An event's data says whose it is: a watched fd, tagged (fd << 1 | 1); the
 * timerfd (0) or the wakeup eventfd (2); or a pollable's address (even). */
enum { DATA_TIMERFD = 0, DATA_WAKEUP = 2 };

/* CORO_IO=io_uring that the kernel refuses is an error, told once: a
 * program that asked for the ring should not run on epoll unawares. */
static void refused(int err)
{
    static atomic_int told;
    if (!atomic_exchange(&told, 1))
        fprintf(stderr, "coro: CORO_IO=io_uring: the kernel refuses "
                        "io_uring (%s); CORO_IO=auto falls back to epoll\n",
                strerror(err));
}

int coro__poller_init(struct coro__poller *p)
{
    if (coro__under_valgrind())
        atomic_store(&coro__have_pwait2, 0);
    p->tfd = p->evfd = p->epfd = -1;
    p->ring = NULL;
    atomic_init(&p->posted, 0);
    atomic_init(&p->sleeping, 0);
    int mode = coro__env_io();
    if (mode == EINVAL)
        return EINVAL;
    /* valgrind cannot see what the kernel writes through the ring. */
    if (mode == CORO__IO_URING ||
        (mode == CORO__IO_AUTO && !coro__under_valgrind())) {
        int err = coro__ring_init(p);
        if (!err)
            return 0;
        if (mode == CORO__IO_URING) {
            refused(err);
            return err;
        }
    }
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    return p->epfd < 0 ? errno : 0;
}

const char *coro_io_backend(void)
{
    struct coro__loop *l = coro__loop();
    if (!l)
        return NULL;
    return l->poller.ring ? "io_uring" : "epoll";
}

void coro__poller_term(struct coro__poller *p)
{
    coro__ring_term(p);
    if (p->tfd >= 0)
        close(p->tfd);
    if (p->evfd >= 0)
        close(p->evfd);
    if (p->epfd >= 0)
        close(p->epfd);
    p->tfd = p->evfd = p->epfd = -1;
}

int coro__poller_wakeup_open(struct coro__poller *p)
{
    if (p->evfd >= 0)
        return 0;
    int saved = errno;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = DATA_WAKEUP };
    int err = fd < 0 ? errno
              : p->ring ? coro__ring_wakeup_watch(p, fd)
              : epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 ? errno
                                                               : 0;
    if (err && fd >= 0)
        close(fd);
    else if (!err)
        p->evfd = fd;
    errno = saved;
    return err;
}

void coro__poller_post(struct coro__poller *p, unsigned kind)
{
    atomic_fetch_or(&p->posted, 1u << kind);
    if (atomic_load(&p->sleeping)) {
        int saved = errno;
        uint64_t one = 1;
        ssize_t r = write(p->evfd, &one, sizeof one);
        (void)r; /* EAGAIN: the counter is already non-zero */
        errno = saved;
    }
}

void coro__poller_collect(struct coro__poller *p)
{
    unsigned kinds = atomic_exchange(&p->posted, 0);
    for (unsigned k = 0; k < CORO__POST_KINDS; k++)
        if (kinds & (1u << k))
            p->on_post[k](p);
}
#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

/* Under valgrind, which runs one thread at a time, a spin only holds the
 * poster back: never spin there. */
int coro__poller_spin(struct coro__poller *p, int64_t ns, int64_t deadline)
{
    if (coro__under_valgrind())
        return 0;
    int64_t until = coro__clock_ns() + ns;
    if (deadline < until)
        until = deadline;
    do {
        for (int i = 0; i < 64; i++) {
            if (coro__poller_posted(p))
                return 1;
            CPU_RELAX();
        }
    } while (coro__clock_ns() < until);
    return 0;
}

int coro__poller_add(struct coro__poller *p, int fd, uint32_t events,
                     struct coro__pollable *h)
{
    h->fd = fd;
    h->events = events;
    if (p->ring)
        return coro__ring_add(p, fd, events, h);
    struct epoll_event ev = { .events = events, .data.ptr = h };
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
}

void coro__poller_remove(struct coro__poller *p, struct coro__pollable *h)
{
    int saved = errno;
    if (p->ring)
        coro__ring_remove(p, h);
    else
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, h->fd, NULL);
    errno = saved;
}

/* epoll keys a registration by the fd's open file, not its number: an fd
 * closed and reopened under the same number is a new file, for which MOD
 * says ENOENT, so it is added afresh; the old registration went away with
 * the old file. Nothing here needs to know when users close fds. */
int coro__poller_watch(struct coro__poller *p, int fd, uint32_t events)
{
    struct epoll_event ev = { .events = events | EPOLLONESHOT,
                              .data.u64 = (uint64_t)fd << 1 | 1 };
    int saved = errno;
    int err = 0;
    if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev) != 0) {
        err = errno;
        if (err == ENOENT)
            err = epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
    }
    errno = saved;
    return err;
}

/* A kept registration (coro_fd_keep) outlives the waits: never one-shot,
 * and edge-triggered, so that an fd that stays readable is not reported
 * on every epoll_wait while its task is busy. An fd that already has a
 * one-shot watch is switched over by MOD. */
int coro__poller_keep(struct coro__poller *p, int fd)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLOUT |
                                        EPOLLET,
                              .data.u64 = (uint64_t)fd << 1 | 1 };
    int saved = errno;
    int err = 0;
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        err = errno;
        if (err == EEXIST)
            err = epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev) == 0 ? 0 : errno;
    }
    errno = saved;
    return err;
}

void coro__poller_unkeep(struct coro__poller *p, int fd)
{
    int saved = errno;
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
    errno = saved;
}

struct timespec *coro__timeout_ts(int64_t deadline, struct timespec *ts)
{
    if (deadline == CORO__NEVER)
        return NULL;
    int64_t left = deadline - coro__clock_ns();
    if (left < 0)
        left = 0;
    ts->tv_sec = left / 1000000000;
    ts->tv_nsec = left % 1000000000;
    return ts;
}

int coro__ms_timeout(int64_t deadline)
{
    if (deadline == CORO__NEVER)
        return -1;
    int64_t left = deadline - coro__clock_ns();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000; /* never wake early */
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Arms (or, for CORO__NEVER, disarms) the fallback timerfd. */
static int timerfd_arm(struct coro__poller *p, int64_t deadline)
{
    if (p->tfd < 0) {
        p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (p->tfd < 0)
            return errno;
        struct epoll_event ev = { .events = EPOLLIN,
                                  .data.u64 = DATA_TIMERFD };
        if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->tfd, &ev) != 0) {
            int err = errno;
            close(p->tfd); /* not watched: never arm it */
            p->tfd = -1;
            return err;
        }
    }
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (deadline != CORO__NEVER) {
        /* A zero it_value would disarm the timer: deadlines are > 0. */
        its.it_value.tv_sec = deadline / 1000000000;
        its.it_value.tv_nsec = deadline % 1000000000;
        if (deadline <= 0)
            its.it_value.tv_nsec = 1;
    }
    return timerfd_settime(p->tfd, TFD_TIMER_ABSTIME, &its, NULL) ? errno : 0;
}

void coro__poller_wait(struct coro__poller *p, int64_t deadline)
{
    if (p->ring) {
        coro__ring_wait(p, deadline);
        return;
    }
    struct epoll_event events[256];
    int n = -1;
    int saved = errno;
    atomic_store(&p->sleeping, 1);
    if (atomic_load(&p->posted))
        deadline = 0; /* news came: only look */
    if (atomic_load_explicit(&coro__have_pwait2, memory_order_relaxed)) {
        struct timespec ts;
        n = epoll_pwait2(p->epfd, events, 256, coro__timeout_ts(deadline, &ts),
                         NULL);
        /* ENOSYS: an older kernel; EPERM: a seccomp profile that does not
         * know the call. Either way, never again. */
        if (n < 0 && errno != EINTR)
            atomic_store(&coro__have_pwait2, 0);
    }
    if (!atomic_load_explicit(&coro__have_pwait2, memory_order_relaxed)) {
        if (timerfd_arm(p, deadline) == 0)
            n = epoll_wait(p->epfd, events, 256, -1);
        else /* no precise way left: whole milliseconds beat spinning */
            n = epoll_wait(p->epfd, events, 256, coro__ms_timeout(deadline));
    }
    atomic_store(&p->sleeping, 0);
    for (int i = 0; i < n; i++) {
        uint64_t data = events[i].data.u64;
        if (data & 1) {
            p->fd_event(p, (int)(data >> 1), events[i].events);
        } else if (data == DATA_TIMERFD || data == DATA_WAKEUP) {
            /* Only drained: the deadline's timers and the posts are the
             * scheduler's to look at. */
            uint64_t count;
            int fd = data == DATA_WAKEUP ? p->evfd : p->tfd;
            ssize_t r = fd >= 0 ? read(fd, &count, sizeof count) : 0;
            (void)r;
        } else {
            struct coro__pollable *h = events[i].data.ptr;
            h->ready(h, events[i].events);
        }
    }
    errno = saved;
}
