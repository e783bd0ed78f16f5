/* The wait matrix: every await_* of coro.h, called from a task on its own
 * stack and from a task on the shared stack, and woken each way the call
 * allows: by its event, by its timeout and by cancellation. While the
 * waiter is parked, a scribbler (another shared-stack task) fills the
 * shared stack with junk between its yields, so a wait that keeps anything
 * on the parked task's stack, or a switch that restores the wrong bytes,
 * shows as a wrong result, a damaged frame or a crash.
 *
 * Each row of the table below is one call: setup makes what it waits on,
 * wait makes the call in the waiter, prod makes the event happen (or
 * accompanies the timeout or the cancellation), check looks at what came
 * out. Every (row, stack, wake) combination is a test of its own, one
 * coro_run each, in a TCase named after the call, so a failure names all
 * three. Everything a parked waiter's call uses is static, as coro.h asks
 * of shared-stack tasks.
 *
 * Not every call has every wake: await_task, await_gather, await_group,
 * await_blocking and await_yield take no timeout (await_task_timeout
 * covers a join's, and test_scope.c a timeout scope's over them all),
 * await_sleep has no event but its end, and await_yield's event is only
 * that the tasks ahead of it ran. await_task_timeout has a fourth: its
 * caller cancelled while the task it timed out on still cleans up.
 *
 * Last, a task cancelled before it runs calls each await_* with the
 * operation ready to complete: each must return ECANCELED and do
 * nothing. And the bad input every wait shares: called where no task
 * runs (EPERM), a NaN timeout (EINVAL), timeouts at the ends of the
 * doubles (taken, never overflowing). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

#define TOKEN(i) ((void *)(uintptr_t)(i))

enum wake {
    WAKE_EVENT,         /* what it waits for happens */
    WAKE_TIMEOUT,       /* its timeout passes */
    WAKE_CANCEL,        /* coro_cancel from another task while it waits */
    WAKE_CANCEL_LATE,   /* await_task_timeout only: cancelled after its
                           timeout, while the timed-out task cleans up */
    NWAKES
};

#define BIT(w) (1u << (w))
#define ALL_THREE (BIT(WAKE_EVENT) | BIT(WAKE_TIMEOUT) | BIT(WAKE_CANCEL))

static const char *const wake_names[NWAKES] = {
    "woken by its event", "woken by its timeout", "woken by cancellation",
    "cancelled while the timed-out task cleans up"
};

/* Row flags. */
enum {
    ROW_PROMPT = 1,        /* the wait ends as soon as the others have run
                              (await_yield): act at once, do not settle */
    ROW_TIMEOUT_IS_0 = 2,  /* the timeout is a normal end, returning 0 */
    ROW_EVENT_BY_ITSELF = 4 /* the event comes without a prod (dial) */
};

struct wait_row {
    const char *name;
    unsigned    wakes;
    unsigned    flags;
    void (*setup)(enum wake w);   /* in the driver, before the waiter */
    int  (*wait)(double timeout); /* in the waiter: the call itself */
    int  (*parked)(void);         /* optional: far enough in to prod */
    void (*prod)(enum wake w);    /* in the driver, the waiter parked */
    void (*check)(enum wake w);   /* in the driver, the waiter joined */
};

/* One run's bookkeeping, shared by the driver, waiter and scribbler. */
static struct {
    const struct wait_row *row;
    int        shared;
    enum wake  wake;
    unsigned   combo;
    double     timeout;
    coro_task *waiter;
    int        entered, waiting, stop;
    int        err;
    double     t0, t1;
    size_t     frame_bad, waiter_hw;
    unsigned   scribbles, scribbled_while_waiting;
} run;

/* What the calls wait on and write into: static, never on a stack. */
static struct {
    coro_chan   *chan, *chan2;
    coro_queue  *queue;
    coro_mutex  *mutex;
    coro_sem    *sem;
    coro_event  *event;
    coro_cond   *cond;
    coro_group  *group;
    coro_completions *completions;
    coro_barrier *barrier;
    coro_xchan  *xchan;
    coro_future *future;
    unsigned     index;
    int          pred;
    coro_task   *done;
    coro_event  *go[2];
    coro_task   *kids[2], *spawned[2];
    void        *results[2];
    int          errors[2];
    int          kid_err[2], kid_cleaned[2];
    void        *result;
    int          fd[2], pair[2], listener, port, peer, accepted, dialed;
    int          probes[16];
    int          nprobes;
    char         buf[64];
    size_t       got, ndone, chosen;
    int          elem_in, elem_out;
    coro_chan_op ops[2];
    void        *item;
    int          unlock_err;
    int          job_errno;
    atomic_int   job_started, job_release;
    size_t       filled, drained;
} fx;

static unsigned char out_bytes[4096];
static char where[160];

#define EXPECT(cond) ck_assert_msg((cond), "%s: expected %s", where, #cond)

#define EXPECT_EQ(got, want)                                                \
    do {                                                                    \
        long long got_ = (long long)(got), want_ = (long long)(want);       \
        ck_assert_msg(got_ == want_, "%s: %s is %lld, want %lld", where,    \
                      #got, got_, want_);                                   \
    } while (0)

#define EXPECT_ERR(call, want)                                              \
    do {                                                                    \
        int err_ = (call), want_ = (want);                                  \
        ck_assert_msg(err_ == want_, "%s: %s returned %d (%s), want %d (%s)",\
                      where, #call, err_, strerror(err_), want_,            \
                      strerror(want_));                                     \
    } while (0)

/* Timeouts: a short one that is meant to pass, a long one that is not. */
static double t_short(void)
{
    return 0.03 * test_slow();
}

static double t_long(void)
{
    return 5 * test_slow();
}

/* How long a cancelled child takes to clean up (shielded). */
static double t_cleanup(void)
{
    return 3 * t_short();
}

static void sleep_until(double when)
{
    double left = when - coro_now();
    if (left > 0)
        EXPECT_ERR(await_sleep(left), 0);
}

/* ---------------------------------------------------------------------- */
/* The scribbler and the waiter                                           */
/* ---------------------------------------------------------------------- */

enum { SCRIBBLE_WORDS = 4096, FRAME_BYTES = 512 };

static uint64_t scribble_word(uint64_t pass, size_t i)
{
    return 0x9e3779b97f4a7c15u * (pass * 65536u + i + 1);
}

/* Fills 32 KiB of its frame on the shared stack with a new pattern at each
 * pass, then yields: whatever shared-stack task runs next has to get its
 * own bytes back over this junk. The array is live across the yield, so
 * the scribbler's own frame is saved and restored too, and checked. */
static void *scribbler(void *arg)
{
    (void)arg;
    volatile uint64_t junk[SCRIBBLE_WORDS];
    for (uint64_t pass = 1; !run.stop; pass++) {
        for (size_t i = 0; i < SCRIBBLE_WORDS; i++)
            junk[i] = scribble_word(pass, i);
        run.scribbles++;
        /* The waiter is not running now: if it is inside its call, it is
         * parked there while this pass overwrote the shared stack. */
        if (run.waiting)
            run.scribbled_while_waiting++;
        /* A few passes over a parked waiter prove the point; after them,
         * pass by less often, which spares valgrind's CPU time. */
        int err = run.scribbled_while_waiting >= 3 ? await_sleep(0.001)
                                                   : await_yield();
        if (err != 0)
            return coro_fail(ECANCELED);
        for (size_t i = 0; i < SCRIBBLE_WORDS; i++)
            if (junk[i] != scribble_word(pass, i))
                return coro_fail(EIO);
    }
    return NULL;
}

static unsigned char frame_byte(size_t i)
{
    return (unsigned char)(i * 29u + run.combo * 7u + 3u);
}

/* Makes the row's call with a frame of its own that must come back
 * intact. */
static __attribute__((noinline)) void *waiter(void *arg)
{
    const struct wait_row *row = arg;
    volatile unsigned char mine[FRAME_BYTES];
    for (size_t i = 0; i < FRAME_BYTES; i++)
        mine[i] = frame_byte(i);
    run.t0 = coro_now();
    run.entered = run.waiting = 1;
    int err = row->wait(run.timeout);
    run.waiting = 0;
    run.t1 = coro_now();
    run.err = err;
    for (size_t i = 0; i < FRAME_BYTES; i++)
        run.frame_bad += mine[i] != frame_byte(i);
    run.waiter_hw = coro_stack_high_water(coro_self());
    return NULL;
}

/* Helper tasks (the ones joined) run on the same kind of stack as the
 * waiter. */
static coro_task *spawn_helper(coro_fn fn, void *arg)
{
    coro_attr attr = { .flags = run.shared ? CORO_SHARED_STACK : 0 };
    coro_task *t = coro_spawn_attr(&attr, fn, arg);
    EXPECT(t != NULL);
    return t;
}

/* ---------------------------------------------------------------------- */
/* Tasks: await_task, await_task_timeout, await_gather, await_wait        */
/* ---------------------------------------------------------------------- */

/* A child that waits for its go event; cancelled, it cleans up for a
 * while under a shield before it returns. */
static void *kid(void *arg)
{
    int i = (int)(uintptr_t)arg;
    int err = await_event(fx.go[i], t_long());
    fx.kid_err[i] = err;
    if (err == ECANCELED) {
        int was = coro_shield(1);
        int slept = await_sleep(t_cleanup());
        coro_shield(was);
        fx.kid_cleaned[i] = slept == 0;
    }
    return TOKEN(100 + i);
}

static void kids_setup(int n)
{
    for (int i = 0; i < n; i++) {
        fx.go[i] = coro_event_new();
        EXPECT(fx.go[i] != NULL);
        fx.kid_err[i] = -1;
        fx.kids[i] = fx.spawned[i] = spawn_helper(kid, TOKEN(i));
    }
}

static void kids_go(int n)
{
    for (int i = 0; i < n; i++)
        coro_event_set(fx.go[i]);
}

/* What a joined child went through, by how the waiter was woken. */
static void kid_check(int i, enum wake w)
{
    if (w == WAKE_EVENT) {
        EXPECT_EQ(fx.kid_err[i], 0);
    } else {
        EXPECT_EQ(fx.kid_err[i], ECANCELED);
        EXPECT(fx.kid_cleaned[i]);
    }
}

static void task_setup(enum wake w)
{
    (void)w;
    kids_setup(1);
}

/* await_task has no timeout: await_task_timeout covers a join's. */
static int task_wait(double timeout)
{
    (void)timeout;
    return await_task(fx.kids[0], &fx.result);
}

static int task_timeout_wait(double timeout)
{
    return await_task_timeout(fx.kids[0], timeout, &fx.result);
}

static void task_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        kids_go(1);
    if (w == WAKE_CANCEL_LATE) {
        /* Halfway through the child's clean-up, which the timeout began. */
        sleep_until(run.t0 + run.timeout + t_cleanup() / 2);
        EXPECT(run.waiting);
        EXPECT_EQ(fx.kid_err[0], ECANCELED);
        EXPECT(!fx.kid_cleaned[0]);
        EXPECT_ERR(coro_cancel(run.waiter), 0);
    }
}

static void task_check(enum wake w)
{
    /* The child was freed in every case, so its result was stored. */
    EXPECT(fx.result == TOKEN(100));
    kid_check(0, w);
}

static void gather_setup(enum wake w)
{
    (void)w;
    kids_setup(2);
}

/* await_gather has no timeout. */
static int gather_wait(double timeout)
{
    (void)timeout;
    return await_gather(fx.kids, 2, fx.results, fx.errors);
}

static void gather_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        kids_go(2);
}

static void gather_check(enum wake w)
{
    for (int i = 0; i < 2; i++) {
        EXPECT(fx.results[i] == TOKEN(100 + i));
        EXPECT_EQ(fx.errors[i], w == WAKE_EVENT ? 0 : ECANCELED);
        kid_check(i, w);
    }
}

static void wait_setup(enum wake w)
{
    (void)w;
    kids_setup(2);
    fx.ndone = 99;
}

static int wait_wait(double timeout)
{
    return await_wait(fx.kids, 2, CORO_FIRST_COMPLETED, timeout, &fx.ndone);
}

static void wait_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        coro_event_set(fx.go[1]);
}

static void wait_check(enum wake w)
{
    if (w == WAKE_EVENT) {
        /* The one that ended comes first. */
        EXPECT_EQ(fx.ndone, 1);
        EXPECT(fx.kids[0] == fx.spawned[1]);
        EXPECT(fx.kids[1] == fx.spawned[0]);
    } else if (w == WAKE_TIMEOUT) {
        /* The timeout passing is a normal end: 0 with nothing done. */
        EXPECT_EQ(fx.ndone, 0);
        EXPECT((fx.kids[0] == fx.spawned[0] && fx.kids[1] == fx.spawned[1]) ||
               (fx.kids[0] == fx.spawned[1] && fx.kids[1] == fx.spawned[0]));
    } else {
        EXPECT_EQ(fx.ndone, 0);
        EXPECT(fx.kids[0] == fx.spawned[0] && fx.kids[1] == fx.spawned[1]);
    }
    /* await_wait cancels nothing and frees nothing: the children still
     * run, uncancelled, and are joined here. */
    int which[2];
    for (int i = 0; i < 2; i++)
        which[i] = fx.kids[i] == fx.spawned[0] ? 0 : 1;
    kids_go(2);
    EXPECT_ERR(await_gather(fx.kids, 2, fx.results, fx.errors), 0);
    for (int i = 0; i < 2; i++) {
        int k = which[i];
        EXPECT_EQ(fx.kid_err[k], 0);
        EXPECT(fx.results[i] == TOKEN(100 + k));
    }
}

/* ---------------------------------------------------------------------- */
/* Time and the executor: await_sleep, await_yield, await_blocking        */
/* ---------------------------------------------------------------------- */

/* await_sleep has no event: its timeout is its normal end. */
static int sleep_wait(double timeout)
{
    return await_sleep(timeout);
}

/* await_yield has neither event nor timeout: it ends once the tasks ahead
 * of it have run, and a cancellation meanwhile makes it ECANCELED. */
static int yield_wait(double timeout)
{
    (void)timeout;
    return await_yield();
}

/* Runs on a worker thread until the driver lets it go. */
static void *job(void *arg)
{
    atomic_store(&fx.job_started, 1);
    while (!atomic_load(&fx.job_release))
        usleep(1000);
    errno = EILSEQ;
    return arg;
}

/* await_blocking has no timeout. */
static int blocking_wait(double timeout)
{
    (void)timeout;
    int err = await_blocking(job, &fx, &fx.result);
    fx.job_errno = errno;
    return err;
}

/* Cancelling a job that runs must not end the wait before the job does. */
static int blocking_parked(void)
{
    return atomic_load(&fx.job_started);
}

static void blocking_prod(enum wake w)
{
    if (w == WAKE_CANCEL) {
        EXPECT_ERR(await_sleep(t_short()), 0);
        EXPECT(run.waiting);
    }
    atomic_store(&fx.job_release, 1);
}

static void blocking_check(enum wake w)
{
    (void)w;
    /* fn ran in both cases: its result and errno come back. */
    EXPECT(fx.result == &fx);
    EXPECT_EQ(fx.job_errno, EILSEQ);
}

/* ---------------------------------------------------------------------- */
/* File descriptors                                                       */
/* ---------------------------------------------------------------------- */

static void pipe_setup(void)
{
    EXPECT_EQ(pipe2(fx.fd, O_NONBLOCK | O_CLOEXEC), 0);
}

static void socketpair_setup(void)
{
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                         0, fx.fd),
              0);
}

static void put_bytes(int fd, const char *s)
{
    EXPECT_EQ(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* What is left to read on fd, as a string ("" if nothing). */
static const char *leftover(int fd)
{
    static char rest[64];
    ssize_t k = read(fd, rest, sizeof rest - 1);
    EXPECT(k >= 0 || errno == EAGAIN);
    rest[k > 0 ? k : 0] = '\0';
    return rest;
}

/* Nothing to read on fd, and nobody left waiting on it (that would be
 * EBUSY). */
static void expect_quiet(int fd)
{
    EXPECT_ERR(await_readable(fd, 0), ETIMEDOUT);
}

static void readable_setup(enum wake w)
{
    (void)w;
    pipe_setup();
}

/* The same waits on an fd registered for good (coro_fd_keep). */
static void readable_kept_setup(enum wake w)
{
    (void)w;
    pipe_setup();
    EXPECT_ERR(coro_fd_keep(fx.fd[0]), 0);
}

static int readable_wait(double timeout)
{
    return await_readable(fx.fd[0], timeout);
}

static void readable_prod(enum wake w)
{
    /* After a cancellation the byte must not change the outcome. */
    if (w != WAKE_TIMEOUT)
        put_bytes(fx.fd[1], "x");
}

static void readable_check(enum wake w)
{
    if (w == WAKE_TIMEOUT)
        expect_quiet(fx.fd[0]);
    else
        EXPECT(strcmp(leftover(fx.fd[0]), "x") == 0);
}

/* Fills fd's socket buffer until it takes no more. */
static void fill(int fd)
{
    char chunk[4096];
    memset(chunk, 'f', sizeof chunk);
    ssize_t k;
    while ((k = write(fd, chunk, sizeof chunk)) > 0)
        fx.filled += (size_t)k;
    EXPECT(k < 0 && errno == EAGAIN);
}

/* Reads all there is on fd: the filler, then the waiter's bytes. */
static void drain(int fd)
{
    unsigned char chunk[4096];
    size_t wrong = 0;
    ssize_t k;
    while ((k = read(fd, chunk, sizeof chunk)) > 0) {
        for (ssize_t i = 0; i < k; i++, fx.drained++) {
            size_t at = fx.drained;
            if (at < fx.filled)
                wrong += chunk[i] != 'f';
            else if (at - fx.filled < sizeof out_bytes)
                wrong += chunk[i] != out_bytes[at - fx.filled];
            else
                wrong++;
        }
    }
    EXPECT(k < 0 && errno == EAGAIN);
    EXPECT_EQ(wrong, 0);
}

static void writable_setup(enum wake w)
{
    (void)w;
    socketpair_setup();
    fill(fx.fd[0]);
}

/* Kept once full: no edge says writable until the peer reads. */
static void writable_kept_setup(enum wake w)
{
    writable_setup(w);
    EXPECT_ERR(coro_fd_keep(fx.fd[0]), 0);
}

static int writable_wait(double timeout)
{
    return await_writable(fx.fd[0], timeout);
}

static void writable_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        drain(fx.fd[1]);
}

static void writable_check(enum wake w)
{
    EXPECT_ERR(await_writable(fx.fd[0], 0), w == WAKE_EVENT ? 0 : ETIMEDOUT);
}

static void listen_setup(int backlog)
{
    EXPECT_ERR(coro_listen("127.0.0.1", 0, backlog, &fx.listener), 0);
    EXPECT_ERR(coro_sock_port(fx.listener, &fx.port), 0);
}

/* One byte from a to b: the two ends are one connection. */
static void expect_connected(int a, int b)
{
    put_bytes(a, "k");
    EXPECT_ERR(await_read(b, fx.buf, sizeof fx.buf, t_long(), &fx.got), 0);
    EXPECT_EQ(fx.got, 1);
    EXPECT_EQ(fx.buf[0], 'k');
}

static void accept_setup(enum wake w)
{
    (void)w;
    listen_setup(0);
}

static int accept_wait(double timeout)
{
    return await_accept(fx.listener, timeout, &fx.accepted);
}

static void accept_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        EXPECT_ERR(await_dial("127.0.0.1", fx.port, t_long(), &fx.peer), 0);
}

static void accept_check(enum wake w)
{
    if (w == WAKE_EVENT)
        expect_connected(fx.accepted, fx.peer);
    else
        expect_quiet(fx.listener);
}

/* For a dial that hangs: a listener whose accept queue is full, so that
 * the kernel drops the next SYN and the connection waits for a resend a
 * second later. Probe connections fill the queue until one hangs: on
 * loopback a connection that is not up within 100 ms never will be. */
static void dial_setup(enum wake w)
{
    if (w == WAKE_EVENT) {
        listen_setup(0);
        return;
    }
    listen_setup(1);
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)fx.port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int hung = 0;
    while (!hung && fx.nprobes < (int)(sizeof fx.probes / sizeof *fx.probes)) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        EXPECT(s >= 0);
        fx.probes[fx.nprobes++] = s;
        int r = connect(s, (struct sockaddr *)&sa, sizeof sa);
        EXPECT(r == 0 || errno == EINPROGRESS);
        hung = await_writable(s, 0.1 * test_slow()) == ETIMEDOUT;
    }
    EXPECT(hung);
}

static int dial_wait(double timeout)
{
    return await_dial("127.0.0.1", fx.port, timeout, &fx.dialed);
}

static void dial_check(enum wake w)
{
    if (w == WAKE_EVENT) {
        EXPECT_ERR(await_accept(fx.listener, t_long(), &fx.accepted), 0);
        expect_connected(fx.dialed, fx.accepted);
    }
}

static void read_setup(enum wake w)
{
    (void)w;
    pipe_setup();
}

static int read_wait(double timeout)
{
    return await_read(fx.fd[0], fx.buf, sizeof fx.buf, timeout, &fx.got);
}

static void read_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        put_bytes(fx.fd[1], "hello");
    if (w == WAKE_CANCEL)
        put_bytes(fx.fd[1], "late"); /* not for the cancelled reader */
}

static void read_check(enum wake w)
{
    if (w == WAKE_EVENT) {
        EXPECT_EQ(fx.got, 5);
        EXPECT(memcmp(fx.buf, "hello", 5) == 0);
    } else if (w == WAKE_CANCEL) {
        EXPECT(strcmp(leftover(fx.fd[0]), "late") == 0);
    }
    expect_quiet(fx.fd[0]);
}

/* await_read_full starts with part of what it wants. */
static void read_full_setup(enum wake w)
{
    (void)w;
    pipe_setup();
    put_bytes(fx.fd[1], "abc");
}

static int read_full_wait(double timeout)
{
    return await_read_full(fx.fd[0], fx.buf, 8, timeout, &fx.got);
}

static void read_full_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        put_bytes(fx.fd[1], "defgh");
}

static void read_full_check(enum wake w)
{
    /* Cut short, the bytes that came are counted and consumed. */
    size_t want = w == WAKE_EVENT ? 8 : 3;
    EXPECT_EQ(fx.got, want);
    EXPECT(memcmp(fx.buf, "abcdefgh", want) == 0);
    expect_quiet(fx.fd[0]);
}

/* await_read_until, first on a socket (it peeks), then on a pipe (a byte
 * at a time); part of the line is there before the wait. */
static void read_until_socket_setup(enum wake w)
{
    (void)w;
    socketpair_setup();
    put_bytes(fx.fd[1], "abc");
}

static void read_until_pipe_setup(enum wake w)
{
    (void)w;
    pipe_setup();
    put_bytes(fx.fd[1], "abc");
}

static int read_until_wait(double timeout)
{
    return await_read_until(fx.fd[0], fx.buf, sizeof fx.buf, "\r\n",
                            timeout, &fx.got);
}

static void read_until_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        put_bytes(fx.fd[1], "de\r\nrest");
}

static void read_until_check(enum wake w)
{
    if (w == WAKE_EVENT) {
        EXPECT_EQ(fx.got, 7);
        EXPECT(memcmp(fx.buf, "abcde\r\n", 7) == 0);
        EXPECT(strcmp(leftover(fx.fd[0]), "rest") == 0);
    } else {
        /* *got says what was consumed; the rest is still there. */
        EXPECT(fx.got <= 3);
        EXPECT(memcmp(fx.buf, "abc", fx.got) == 0);
        EXPECT(strcmp(leftover(fx.fd[0]), &"abc"[fx.got]) == 0);
    }
}

static void write_all_setup(enum wake w)
{
    (void)w;
    for (size_t i = 0; i < sizeof out_bytes; i++)
        out_bytes[i] = (unsigned char)('A' + i % 26);
    socketpair_setup();
    fill(fx.fd[0]);
}

static int write_all_wait(double timeout)
{
    return await_write_all(fx.fd[0], out_bytes, sizeof out_bytes, timeout);
}

static void write_all_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        drain(fx.fd[1]);
}

static void write_all_check(enum wake w)
{
    /* Cut short, a prefix of the bytes may have gone: drain checks that
     * whatever came is the filler and then that prefix. */
    drain(fx.fd[1]);
    if (w == WAKE_EVENT)
        EXPECT_EQ(fx.drained, fx.filled + sizeof out_bytes);
    else
        EXPECT(fx.drained >= fx.filled);
}

/* ---------------------------------------------------------------------- */
/* Channels and select                                                    */
/* ---------------------------------------------------------------------- */

static coro_chan *chan_new(size_t capacity)
{
    coro_chan *c = coro_chan_new(sizeof(int), capacity);
    EXPECT(c != NULL);
    return c;
}

/* The channel is empty, as far as a receiver can tell. */
static void expect_empty(coro_chan *c)
{
    int v;
    EXPECT_ERR(coro_chan_try_recv(c, &v), EAGAIN);
}

static void expect_holds(coro_chan *c, int want)
{
    int v = -1;
    EXPECT_ERR(coro_chan_try_recv(c, &v), 0);
    EXPECT_EQ(v, want);
}

/* A rendezvous: the sender waits for a receiver. */
static void chan_send_setup(enum wake w)
{
    (void)w;
    fx.chan = chan_new(0);
    fx.elem_out = 7;
}

static int chan_send_wait(double timeout)
{
    return await_chan_send(fx.chan, &fx.elem_out, timeout);
}

static void chan_send_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        expect_holds(fx.chan, 7);
    else if (w == WAKE_CANCEL)
        expect_empty(fx.chan); /* the cancelled sender has left */
}

static void chan_send_check(enum wake w)
{
    (void)w;
    expect_empty(fx.chan);
}

/* Room for one, so that an element sent after the receiver was cancelled
 * has somewhere to wait for the next receiver. */
static void chan_recv_setup(enum wake w)
{
    (void)w;
    fx.chan = chan_new(1);
    fx.elem_in = -1;
}

static int chan_recv_wait(double timeout)
{
    return await_chan_recv(fx.chan, &fx.elem_in, timeout);
}

static void chan_recv_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        EXPECT_ERR(coro_chan_try_send(fx.chan, &(int){ 42 }), 0);
    else if (w == WAKE_CANCEL)
        EXPECT_ERR(coro_chan_try_send(fx.chan, &(int){ 43 }), 0);
}

static void chan_recv_check(enum wake w)
{
    EXPECT_EQ(fx.elem_in, w == WAKE_EVENT ? 42 : -1);
    if (w == WAKE_CANCEL)
        expect_holds(fx.chan, 43); /* the cancelled receiver lost nothing */
    expect_empty(fx.chan);
}

/* The channel between threads, used here by one loop's tasks: the prods
 * are its try calls, whose hand-off to the parked waiter still goes
 * through a post to the loop, as from another thread. */
static void xchan_send_setup(enum wake w)
{
    (void)w;
    fx.xchan = coro_xchan_new(sizeof(int), 0);
    EXPECT(fx.xchan != NULL);
    fx.elem_out = 7;
}

static int xchan_send_wait(double timeout)
{
    return await_xchan_send(fx.xchan, &fx.elem_out, timeout);
}

static void xchan_send_prod(enum wake w)
{
    int v = -1;
    if (w == WAKE_EVENT) {
        EXPECT_ERR(coro_xchan_try_recv(fx.xchan, &v), 0);
        EXPECT_EQ(v, 7);
    } else if (w == WAKE_CANCEL) { /* the cancelled sender has left */
        EXPECT_ERR(coro_xchan_try_recv(fx.xchan, &v), EAGAIN);
    }
}

static void xchan_send_check(enum wake w)
{
    (void)w;
    int v;
    EXPECT_ERR(coro_xchan_try_recv(fx.xchan, &v), EAGAIN);
}

static void xchan_recv_setup(enum wake w)
{
    (void)w;
    fx.xchan = coro_xchan_new(sizeof(int), 1);
    EXPECT(fx.xchan != NULL);
    fx.elem_in = -1;
}

static int xchan_recv_wait(double timeout)
{
    return await_xchan_recv(fx.xchan, &fx.elem_in, timeout);
}

static void xchan_recv_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        EXPECT_ERR(coro_xchan_try_send(fx.xchan, &(int){ 42 }), 0);
    else if (w == WAKE_CANCEL)
        EXPECT_ERR(coro_xchan_try_send(fx.xchan, &(int){ 43 }), 0);
}

static void xchan_recv_check(enum wake w)
{
    int v = -1;
    EXPECT_EQ(fx.elem_in, w == WAKE_EVENT ? 42 : -1);
    if (w == WAKE_CANCEL) { /* the cancelled receiver lost nothing */
        EXPECT_ERR(coro_xchan_try_recv(fx.xchan, &v), 0);
        EXPECT_EQ(v, 43);
    }
    EXPECT_ERR(coro_xchan_try_recv(fx.xchan, &v), EAGAIN);
}

/* A future of a task submitted to the waiter's own loop, which waits for
 * fx.go[0]; cancelling or timing out the waiter cancels it. */
static void *submitted(void *arg)
{
    (void)arg;
    int err = await_event(fx.go[0], t_long());
    fx.kid_err[0] = err;
    return err ? coro_fail(err) : TOKEN(11);
}

static void future_setup(enum wake w)
{
    (void)w;
    fx.go[0] = coro_event_new();
    fx.kid_err[0] = -1;
    EXPECT_ERR(coro_loop_submit(coro_loop_current(), submitted, NULL,
                                &fx.future),
               0);
}

static int future_wait(double timeout)
{
    return await_future(fx.future, timeout, &fx.result);
}

static void future_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        coro_event_set(fx.go[0]);
}

static void future_check(enum wake w)
{
    /* The wait returned only once the task had ended: its end is known. */
    EXPECT_EQ(fx.kid_err[0], w == WAKE_EVENT ? 0 : ECANCELED);
    EXPECT(fx.result == (w == WAKE_EVENT ? TOKEN(11) : NULL));
}

/* Select over a receive on a buffered channel and a send on a
 * rendezvous: ops, elements and *chosen are static. */
static void select_setup(enum wake w)
{
    (void)w;
    fx.chan = chan_new(1);
    fx.chan2 = chan_new(0);
    fx.elem_in = -1;
    fx.elem_out = 9;
    fx.chosen = 99;
    fx.ops[0] = (coro_chan_op){ .chan = fx.chan, .send = 0,
                                .elem = &fx.elem_in };
    fx.ops[1] = (coro_chan_op){ .chan = fx.chan2, .send = 1,
                                .elem = &fx.elem_out };
}

static int select_wait(double timeout)
{
    return await_select(fx.ops, 2, timeout, &fx.chosen);
}

static void select_recv_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        EXPECT_ERR(coro_chan_try_send(fx.chan, &(int){ 42 }), 0);
    else if (w == WAKE_CANCEL)
        EXPECT_ERR(coro_chan_try_send(fx.chan, &(int){ 43 }), 0);
}

static void select_recv_check(enum wake w)
{
    EXPECT_EQ(fx.chosen, w == WAKE_EVENT ? 0 : 99);
    EXPECT_EQ(fx.elem_in, w == WAKE_EVENT ? 42 : -1);
    if (w == WAKE_CANCEL)
        expect_holds(fx.chan, 43);
    expect_empty(fx.chan);
    expect_empty(fx.chan2); /* the send was not done */
}

/* The send op completes: timeout and cancellation are the receive row's. */
static void select_send_prod(enum wake w)
{
    (void)w;
    expect_holds(fx.chan2, 9);
}

static void select_send_check(enum wake w)
{
    (void)w;
    EXPECT_EQ(fx.chosen, 1);
    EXPECT_EQ(fx.elem_in, -1);
    expect_empty(fx.chan);
}

/* ---------------------------------------------------------------------- */
/* Queue                                                                  */
/* ---------------------------------------------------------------------- */

static void expect_queued(void *want)
{
    void *item = NULL;
    EXPECT_ERR(coro_queue_try_get(fx.queue, &item), 0);
    EXPECT(item == want);
}

/* A full queue of one: the put waits for room. */
static void queue_put_setup(enum wake w)
{
    (void)w;
    fx.queue = coro_queue_new(1);
    EXPECT(fx.queue != NULL);
    EXPECT_ERR(coro_queue_try_put(fx.queue, TOKEN(1)), 0);
}

static int queue_put_wait(double timeout)
{
    return await_queue_put(fx.queue, TOKEN(2), timeout);
}

static void queue_put_prod(enum wake w)
{
    if (w == WAKE_EVENT || w == WAKE_CANCEL)
        expect_queued(TOKEN(1));
    if (w == WAKE_CANCEL)
        EXPECT_EQ(coro_queue_size(fx.queue), 0); /* the putter has left */
}

static void queue_put_check(enum wake w)
{
    if (w == WAKE_EVENT)
        expect_queued(TOKEN(2));
    if (w == WAKE_TIMEOUT)
        expect_queued(TOKEN(1));
    EXPECT_EQ(coro_queue_size(fx.queue), 0);
}

static void queue_get_setup(enum wake w)
{
    (void)w;
    fx.queue = coro_queue_new(0);
    EXPECT(fx.queue != NULL);
    fx.item = TOKEN(99);
}

static int queue_get_wait(double timeout)
{
    return await_queue_get(fx.queue, &fx.item, timeout);
}

static void queue_get_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        EXPECT_ERR(coro_queue_try_put(fx.queue, TOKEN(5)), 0);
    else if (w == WAKE_CANCEL)
        EXPECT_ERR(coro_queue_try_put(fx.queue, TOKEN(6)), 0);
}

static void queue_get_check(enum wake w)
{
    EXPECT(fx.item == (w == WAKE_EVENT ? TOKEN(5) : TOKEN(99)));
    if (w == WAKE_CANCEL)
        expect_queued(TOKEN(6)); /* the cancelled getter lost nothing */
    EXPECT_EQ(coro_queue_size(fx.queue), 0);
}

/* One item put and taken, not yet marked done: the join waits. */
static void queue_join_setup(enum wake w)
{
    (void)w;
    fx.queue = coro_queue_new(0);
    EXPECT(fx.queue != NULL);
    EXPECT_ERR(coro_queue_try_put(fx.queue, TOKEN(1)), 0);
    expect_queued(TOKEN(1));
}

static int queue_join_wait(double timeout)
{
    return await_queue_join(fx.queue, timeout);
}

static void queue_join_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        EXPECT_ERR(coro_queue_task_done(fx.queue), 0);
}

static void queue_join_check(enum wake w)
{
    if (w != WAKE_EVENT) {
        EXPECT_ERR(await_queue_join(fx.queue, 0), ETIMEDOUT);
        EXPECT_ERR(coro_queue_task_done(fx.queue), 0);
    }
    EXPECT_ERR(await_queue_join(fx.queue, 0), 0);
}

/* ---------------------------------------------------------------------- */
/* Mutex, semaphore, event, condition                                     */
/* ---------------------------------------------------------------------- */

/* The driver holds the mutex; the waiter, once it has it, unlocks it: 0
 * from the unlock shows it held it. */
static void mutex_setup(enum wake w)
{
    (void)w;
    fx.mutex = coro_mutex_new();
    EXPECT(fx.mutex != NULL);
    EXPECT_ERR(await_mutex_lock(fx.mutex, 0), 0);
    fx.unlock_err = -1;
}

static int mutex_wait(double timeout)
{
    int err = await_mutex_lock(fx.mutex, timeout);
    if (err == 0)
        fx.unlock_err = coro_mutex_unlock(fx.mutex);
    return err;
}

static void mutex_prod(enum wake w)
{
    if (w == WAKE_EVENT || w == WAKE_CANCEL)
        EXPECT_ERR(coro_mutex_unlock(fx.mutex), 0);
    if (w == WAKE_CANCEL) /* not handed to the cancelled waiter */
        EXPECT_ERR(await_mutex_lock(fx.mutex, 0), 0);
}

static void mutex_check(enum wake w)
{
    if (w == WAKE_EVENT) {
        EXPECT_EQ(fx.unlock_err, 0);
        EXPECT_ERR(await_mutex_lock(fx.mutex, 0), 0);
    }
    EXPECT_ERR(coro_mutex_unlock(fx.mutex), 0);
}

static void sem_setup(enum wake w)
{
    (void)w;
    fx.sem = coro_sem_new(0);
    EXPECT(fx.sem != NULL);
}

static int sem_wait(double timeout)
{
    return await_sem_acquire(fx.sem, timeout);
}

static void sem_prod(enum wake w)
{
    if (w == WAKE_EVENT || w == WAKE_CANCEL)
        EXPECT_ERR(coro_sem_release(fx.sem), 0);
}

static void sem_check(enum wake w)
{
    /* The permit went to the waiter, or stayed after a cancellation. */
    EXPECT_ERR(await_sem_acquire(fx.sem, 0), w == WAKE_CANCEL ? 0 : ETIMEDOUT);
}

static void event_setup(enum wake w)
{
    (void)w;
    fx.event = coro_event_new();
    EXPECT(fx.event != NULL);
}

static int event_wait(double timeout)
{
    return await_event(fx.event, timeout);
}

static void event_prod(enum wake w)
{
    /* Set after a cancellation, it must not undo it. */
    if (w == WAKE_EVENT || w == WAKE_CANCEL)
        coro_event_set(fx.event);
}

static void cond_setup(enum wake w)
{
    (void)w;
    fx.mutex = coro_mutex_new();
    fx.cond = coro_cond_new();
    EXPECT(fx.mutex != NULL && fx.cond != NULL);
    fx.unlock_err = -1;
}

/* The waiter takes the mutex, waits, and must hold it again whatever
 * ended the wait: the unlock after it says so. */
static int cond_wait(double timeout)
{
    EXPECT_ERR(await_mutex_lock(fx.mutex, 0), 0);
    int err = await_cond_wait(fx.cond, fx.mutex, timeout);
    fx.unlock_err = coro_mutex_unlock(fx.mutex);
    return err;
}

/* The driver holds the mutex as the wait ends, each way: the waiter must
 * stay parked to retake it, past its timeout and despite its
 * cancellation. */
static void cond_prod(enum wake w)
{
    EXPECT_ERR(await_mutex_lock(fx.mutex, 0), 0);
    if (w == WAKE_EVENT)
        EXPECT_ERR(coro_cond_notify(fx.cond, 1), 0);
    if (w == WAKE_TIMEOUT)
        sleep_until(run.t0 + 2 * run.timeout);
    else
        EXPECT_ERR(await_sleep(t_short()), 0);
    EXPECT(run.waiting);
    EXPECT_ERR(coro_mutex_unlock(fx.mutex), 0);
}

static void cond_check(enum wake w)
{
    (void)w;
    EXPECT_EQ(fx.unlock_err, 0);
    EXPECT_ERR(await_mutex_lock(fx.mutex, 0), 0);
    EXPECT_ERR(coro_mutex_unlock(fx.mutex), 0);
}

/* ---------------------------------------------------------------------- */
/* Issue 13's waits: groups, as_completed, wait_for, barriers              */
/* ---------------------------------------------------------------------- */

static void group_setup(enum wake w)
{
    (void)w;
    fx.group = coro_group_new();
    EXPECT(fx.group != NULL);
    coro_attr attr = { .flags = run.shared ? CORO_SHARED_STACK : 0 };
    for (int i = 0; i < 2; i++) {
        fx.go[i] = coro_event_new();
        fx.kid_err[i] = -1;
        fx.spawned[i] = coro_group_spawn(fx.group, &attr, kid, TOKEN(i));
        EXPECT(fx.go[i] != NULL && fx.spawned[i] != NULL);
    }
}

/* await_group has no timeout of its own (a timeout scope gives one). */
static int group_wait(double timeout)
{
    (void)timeout;
    return await_group(fx.group);
}

static void group_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        kids_go(2);
}

static void group_check(enum wake w)
{
    for (int i = 0; i < 2; i++) {
        void *r = NULL;
        EXPECT_ERR(coro_group_result(fx.group, (size_t)i, &r),
                   w == WAKE_EVENT ? 0 : ECANCELED);
        EXPECT(r == TOKEN(100 + i));
        kid_check(i, w);
    }
    EXPECT_ERR(coro_group_free(fx.group), 0);
    fx.group = NULL;
}

static void as_completed_setup(enum wake w)
{
    (void)w;
    kids_setup(2);
    fx.done = NULL;
}

/* The waiter makes the iterator (it is its own) and takes the first. */
static int as_completed_wait(double timeout)
{
    EXPECT_ERR(coro_as_completed(fx.kids, 2, timeout, &fx.completions), 0);
    return await_as_completed(fx.completions, &fx.done);
}

static void as_completed_prod(enum wake w)
{
    if (w == WAKE_EVENT)
        coro_event_set(fx.go[1]);
}

static void as_completed_check(enum wake w)
{
    int first = 0;
    if (w == WAKE_EVENT) {
        EXPECT(fx.done == fx.spawned[1]);
        EXPECT_ERR(await_task(fx.done, NULL), 0);
        EXPECT_EQ(fx.kid_err[1], 0);
        first = 1;
    } else {
        EXPECT(fx.done == NULL); /* nothing handed out, nothing cancelled */
    }
    EXPECT_ERR(coro_completions_free(fx.completions), 0);
    kids_go(2);
    for (int i = 0; i < 2; i++) {
        if (first && i == 1)
            continue; /* handed out and joined above */
        EXPECT_ERR(await_task(fx.spawned[i], NULL), 0);
        EXPECT_EQ(fx.kid_err[i], 0);
    }
}

static int predicate(void *arg)
{
    (void)arg;
    return fx.pred;
}

static void cond_for_setup(enum wake w)
{
    cond_setup(w);
    fx.pred = 0;
}

static int cond_for_wait(double timeout)
{
    EXPECT_ERR(await_mutex_lock(fx.mutex, 0), 0);
    int err = await_cond_wait_for(fx.cond, fx.mutex, predicate, NULL,
                                  timeout);
    fx.unlock_err = coro_mutex_unlock(fx.mutex);
    return err;
}

/* As cond_prod, the predicate made true before the notify; a notify
 * without it must not end the wait. */
static void cond_for_prod(enum wake w)
{
    if (w == WAKE_EVENT) {
        EXPECT_ERR(await_mutex_lock(fx.mutex, 0), 0);
        EXPECT_ERR(coro_cond_notify(fx.cond, 1), 0); /* not yet true */
        EXPECT_ERR(coro_mutex_unlock(fx.mutex), 0);
        EXPECT_ERR(await_sleep(t_short()), 0);
        EXPECT(run.waiting);
        fx.pred = 1;
    }
    cond_prod(w);
}

static void barrier_setup(enum wake w)
{
    (void)w;
    fx.barrier = coro_barrier_new(2);
    EXPECT(fx.barrier != NULL);
    fx.index = 99;
}

static int barrier_wait(double timeout)
{
    return await_barrier_wait(fx.barrier, timeout, &fx.index);
}

/* The driver is the second party. */
static void barrier_prod(enum wake w)
{
    if (w == WAKE_EVENT) {
        unsigned mine = 99;
        EXPECT_ERR(await_barrier_wait(fx.barrier, t_long(), &mine), 0);
        EXPECT_EQ(mine, 1);
    }
}

static void barrier_check(enum wake w)
{
    EXPECT_EQ(fx.index, w == WAKE_EVENT ? 0 : 99);
    /* A waiter that left does not break it (asyncio's Barrier). */
    EXPECT_EQ(coro_barrier_waiting(fx.barrier), 0);
    EXPECT(!coro_barrier_broken(fx.barrier));
    EXPECT_ERR(coro_barrier_free(fx.barrier), 0);
    fx.barrier = NULL;
}

/* ---------------------------------------------------------------------- */
/* The table and the driver                                               */
/* ---------------------------------------------------------------------- */

static const struct wait_row rows[] = {
    { "await_task", BIT(WAKE_EVENT) | BIT(WAKE_CANCEL), 0, task_setup,
      task_wait, NULL, task_prod, task_check },
    { "await_task_timeout", ALL_THREE | BIT(WAKE_CANCEL_LATE), 0, task_setup,
      task_timeout_wait, NULL, task_prod, task_check },
    { "await_gather", BIT(WAKE_EVENT) | BIT(WAKE_CANCEL), 0, gather_setup,
      gather_wait, NULL, gather_prod, gather_check },
    { "await_wait", ALL_THREE, ROW_TIMEOUT_IS_0, wait_setup, wait_wait, NULL,
      wait_prod, wait_check },
    { "await_sleep", BIT(WAKE_TIMEOUT) | BIT(WAKE_CANCEL), ROW_TIMEOUT_IS_0,
      NULL, sleep_wait, NULL, NULL, NULL },
    { "await_yield", BIT(WAKE_EVENT) | BIT(WAKE_CANCEL), ROW_PROMPT, NULL,
      yield_wait, NULL, NULL, NULL },
    { "await_blocking", BIT(WAKE_EVENT) | BIT(WAKE_CANCEL), 0, NULL,
      blocking_wait, blocking_parked, blocking_prod, blocking_check },
    { "await_readable", ALL_THREE, 0, readable_setup, readable_wait, NULL,
      readable_prod, readable_check },
    { "await_readable_kept", ALL_THREE, 0, readable_kept_setup,
      readable_wait, NULL, readable_prod, readable_check },
    { "await_writable", ALL_THREE, 0, writable_setup, writable_wait, NULL,
      writable_prod, writable_check },
    { "await_writable_kept", ALL_THREE, 0, writable_kept_setup,
      writable_wait, NULL, writable_prod, writable_check },
    { "await_accept", ALL_THREE, 0, accept_setup, accept_wait, NULL,
      accept_prod, accept_check },
    { "await_dial", ALL_THREE, ROW_EVENT_BY_ITSELF, dial_setup, dial_wait,
      NULL, NULL, dial_check },
    { "await_read", ALL_THREE, 0, read_setup, read_wait, NULL, read_prod,
      read_check },
    { "await_read_kept", ALL_THREE, 0, readable_kept_setup, read_wait, NULL,
      read_prod, read_check },
    { "await_read_full", ALL_THREE, 0, read_full_setup, read_full_wait, NULL,
      read_full_prod, read_full_check },
    { "await_read_until_socket", ALL_THREE, 0, read_until_socket_setup,
      read_until_wait, NULL, read_until_prod, read_until_check },
    { "await_read_until_pipe", ALL_THREE, 0, read_until_pipe_setup,
      read_until_wait, NULL, read_until_prod, read_until_check },
    { "await_write_all", ALL_THREE, 0, write_all_setup, write_all_wait, NULL,
      write_all_prod, write_all_check },
    { "await_chan_send", ALL_THREE, 0, chan_send_setup, chan_send_wait, NULL,
      chan_send_prod, chan_send_check },
    { "await_chan_recv", ALL_THREE, 0, chan_recv_setup, chan_recv_wait, NULL,
      chan_recv_prod, chan_recv_check },
    { "await_xchan_send", ALL_THREE, 0, xchan_send_setup, xchan_send_wait,
      NULL, xchan_send_prod, xchan_send_check },
    { "await_xchan_recv", ALL_THREE, 0, xchan_recv_setup, xchan_recv_wait,
      NULL, xchan_recv_prod, xchan_recv_check },
    { "await_future", ALL_THREE, 0, future_setup, future_wait, NULL,
      future_prod, future_check },
    { "await_select_recv", ALL_THREE, 0, select_setup, select_wait, NULL,
      select_recv_prod, select_recv_check },
    { "await_select_send", BIT(WAKE_EVENT), 0, select_setup, select_wait,
      NULL, select_send_prod, select_send_check },
    { "await_queue_put", ALL_THREE, 0, queue_put_setup, queue_put_wait, NULL,
      queue_put_prod, queue_put_check },
    { "await_queue_get", ALL_THREE, 0, queue_get_setup, queue_get_wait, NULL,
      queue_get_prod, queue_get_check },
    { "await_queue_join", ALL_THREE, 0, queue_join_setup, queue_join_wait,
      NULL, queue_join_prod, queue_join_check },
    { "await_mutex_lock", ALL_THREE, 0, mutex_setup, mutex_wait, NULL,
      mutex_prod, mutex_check },
    { "await_sem_acquire", ALL_THREE, 0, sem_setup, sem_wait, NULL, sem_prod,
      sem_check },
    { "await_event", ALL_THREE, 0, event_setup, event_wait, NULL, event_prod,
      NULL },
    { "await_cond_wait", ALL_THREE, 0, cond_setup, cond_wait, NULL, cond_prod,
      cond_check },
    { "await_cond_wait_for", ALL_THREE, 0, cond_for_setup, cond_for_wait,
      NULL, cond_for_prod, cond_check },
    { "await_barrier_wait", ALL_THREE, 0, barrier_setup, barrier_wait, NULL,
      barrier_prod, barrier_check },
    { "await_group", BIT(WAKE_EVENT) | BIT(WAKE_CANCEL), 0, group_setup,
      group_wait, NULL, group_prod, group_check },
    { "await_as_completed", ALL_THREE, 0, as_completed_setup,
      as_completed_wait, NULL, as_completed_prod, as_completed_check },
};

enum { NROWS = sizeof rows / sizeof *rows };

static void fx_reset(void)
{
    memset(&fx, 0, sizeof fx);
    fx.fd[0] = fx.fd[1] = fx.pair[0] = fx.pair[1] = -1;
    fx.listener = fx.peer = -1;
    fx.accepted = fx.dialed = -1;
    atomic_store(&fx.job_started, 0);
    atomic_store(&fx.job_release, 0);
}

/* Closes and frees what the row made; no one may be waiting on it. */
static void fx_release(void)
{
    int fds[] = { fx.fd[0], fx.fd[1], fx.pair[0], fx.pair[1], fx.listener,
                  fx.peer, fx.accepted, fx.dialed };
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
        if (fds[i] >= 0) /* coro_close: the promise coro_fd_keep asks */
            EXPECT_EQ(coro_close(fds[i]), 0);
    for (int i = 0; i < fx.nprobes; i++)
        EXPECT_EQ(close(fx.probes[i]), 0);
    EXPECT_ERR(coro_chan_free(fx.chan), 0);
    EXPECT_ERR(coro_chan_free(fx.chan2), 0);
    EXPECT_ERR(coro_xchan_free(fx.xchan), 0);
    EXPECT_ERR(coro_queue_free(fx.queue), 0);
    EXPECT_ERR(coro_mutex_free(fx.mutex), 0);
    EXPECT_ERR(coro_sem_free(fx.sem), 0);
    EXPECT_ERR(coro_event_free(fx.event), 0);
    EXPECT_ERR(coro_cond_free(fx.cond), 0);
    for (int i = 0; i < 2; i++)
        EXPECT_ERR(coro_event_free(fx.go[i]), 0);
}

static int expected_err(const struct wait_row *row, enum wake w)
{
    switch (w) {
    case WAKE_EVENT:
        return 0;
    case WAKE_TIMEOUT:
        return row->flags & ROW_TIMEOUT_IS_0 ? 0 : ETIMEDOUT;
    default:
        return ECANCELED;
    }
}

/* coro_run's main: sets the row up, starts the scribbler and the waiter,
 * lets the waiter park and the scribbler pass over it, wakes it the way
 * the run asks, and checks everything. */
static void *drive(void *arg)
{
    (void)arg;
    const struct wait_row *row = run.row;
    enum wake w = run.wake;
    if (row->setup)
        row->setup(w);
    coro_attr shared = { .flags = CORO_SHARED_STACK };
    coro_attr own = { .flags = 0 };
    coro_task *scrib = coro_spawn_attr(&shared, scribbler, NULL);
    EXPECT(scrib != NULL);
    run.waiter = coro_spawn_attr(run.shared ? &shared : &own, waiter,
                                 (void *)row);
    EXPECT(run.waiter != NULL);

    while (!run.entered)
        EXPECT_ERR(await_yield(), 0);
    if (!(row->flags & ROW_PROMPT)) {
        unsigned from = run.scribbles;
        while (run.waiting &&
               (run.scribbles - from < 3 || (row->parked && !row->parked())))
            EXPECT_ERR(await_yield(), 0);
    }
    int by_itself = w == WAKE_EVENT && (row->flags & ROW_EVENT_BY_ITSELF);
    if (!by_itself)
        ck_assert_msg(run.waiting, "%s: the wait ended before it was woken, "
                      "with %d (%s)", where, run.err, strerror(run.err));
    if (w == WAKE_CANCEL)
        EXPECT_ERR(coro_cancel(run.waiter), 0);
    if (row->prod)
        row->prod(w);

    int cancelled = w == WAKE_CANCEL || w == WAKE_CANCEL_LATE;
    EXPECT_ERR(await_task(run.waiter, NULL), cancelled ? ECANCELED : 0);
    int want = expected_err(row, w);
    ck_assert_msg(run.err == want, "%s: the wait returned %d (%s), want %d "
                  "(%s)", where, run.err, strerror(run.err), want,
                  strerror(want));
    if (w == WAKE_TIMEOUT)
        ck_assert_msg(run.t1 - run.t0 >= 0.9 * run.timeout,
                      "%s: timed out after %.1f ms of %.1f", where,
                      (run.t1 - run.t0) * 1e3, run.timeout * 1e3);
    ck_assert_msg(run.frame_bad == 0, "%s: %zu bytes of the waiter's frame "
                  "came back changed", where, run.frame_bad);
    /* Also for the dial that connects by itself: a non-blocking connect
     * is in progress when it returns, so the dial parks. */
    ck_assert_msg(run.scribbled_while_waiting > 0, "%s: the scribbler never "
                  "ran while the waiter waited", where);
    /* The most a shared-stack waiter parked with lies inside what the
     * scribbler overwrites: no byte of its frames escaped the junk. */
    if (run.shared)
        ck_assert_msg(run.waiter_hw > 0 &&
                          run.waiter_hw < coro_stack_high_water(scrib),
                      "%s: the waiter parked with %zu bytes of frames, the "
                      "scribbler covers %zu", where, run.waiter_hw,
                      coro_stack_high_water(scrib));
    if (row->check)
        row->check(w);

    run.stop = 1;
    EXPECT_ERR(await_task(scrib, NULL), 0);
    fx_release();
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Already cancelled: every call returns ECANCELED and does nothing       */
/* ---------------------------------------------------------------------- */

#define EXPECT_CANCELED(call) EXPECT_ERR(call, ECANCELED)

static void *ended(void *arg)
{
    (void)arg;
    return TOKEN(7);
}

static void *must_not_run(void *arg)
{
    atomic_store(&fx.job_started, 1);
    return arg;
}

/* Runs cancelled before its first instruction, with every operation ready
 * to complete at once: each await_* must return ECANCELED without doing
 * it, which the non-suspending calls after each one look at. */
static void *cancelled_caller(void *arg)
{
    (void)arg;
    EXPECT_CANCELED(await_yield());
    EXPECT_CANCELED(await_sleep(0));
    EXPECT_CANCELED(await_sleep(t_short()));

    /* A joined task is cancelled, awaited and freed all the same. */
    fx.kids[0] = spawn_helper(ended, NULL);
    EXPECT_CANCELED(await_task(fx.kids[0], &fx.result));
    EXPECT(fx.result == TOKEN(7));
    fx.kids[0] = spawn_helper(ended, NULL);
    EXPECT_CANCELED(await_task_timeout(fx.kids[0], t_long(), &fx.result));
    fx.kids[0] = spawn_helper(ended, NULL);
    EXPECT_CANCELED(await_gather(fx.kids, 1, fx.results, fx.errors));
    EXPECT_CANCELED(await_blocking(must_not_run, &fx, &fx.result));
    EXPECT(!atomic_load(&fx.job_started));

    /* A pipe with a byte in it; a socket pair with room and a line. */
    EXPECT_CANCELED(await_readable(fx.fd[0], t_long()));
    EXPECT_CANCELED(await_read(fx.fd[0], fx.buf, 1, t_long(), &fx.got));
    EXPECT_CANCELED(await_read_full(fx.fd[0], fx.buf, 1, t_long(),
                                    &fx.got));
    EXPECT_CANCELED(await_read_until(fx.fd[0], fx.buf, sizeof fx.buf, "x",
                                     t_long(), &fx.got));
    EXPECT(strcmp(leftover(fx.fd[0]), "x") == 0);
    EXPECT_CANCELED(await_writable(fx.pair[0], t_long()));
    EXPECT_CANCELED(await_write_all(fx.pair[0], "y", 1, t_long()));
    EXPECT_CANCELED(await_read_until(fx.pair[1], fx.buf, sizeof fx.buf, "\n",
                                     t_long(), &fx.got));
    EXPECT(strcmp(leftover(fx.pair[1]), "line\n") == 0); /* and no "y" */

    /* A listener with a connection waiting, which stays there; a dial
     * that adds none. */
    EXPECT_CANCELED(await_accept(fx.listener, t_long(), &fx.accepted));
    EXPECT_CANCELED(await_dial("127.0.0.1", fx.port, t_long(), &fx.dialed));
    fx.accepted = accept(fx.listener, NULL, NULL);
    EXPECT(fx.accepted >= 0);
    EXPECT(accept(fx.listener, NULL, NULL) < 0 && errno == EAGAIN);

    /* A channel with room and one element; a select ready both ways. */
    fx.elem_in = -1;
    EXPECT_CANCELED(await_chan_recv(fx.chan, &fx.elem_in, t_long()));
    EXPECT_CANCELED(await_chan_send(fx.chan2, &fx.elem_out, t_long()));
    fx.chosen = 99;
    EXPECT_CANCELED(await_select(fx.ops, 2, t_long(), &fx.chosen));
    EXPECT_EQ(fx.chosen, 99);
    EXPECT_EQ(fx.elem_in, -1);
    expect_holds(fx.chan, 5);
    expect_empty(fx.chan2);

    /* A channel between threads with an element and room for another;
     * a future whose task has ended: the task is awaited all the same,
     * its result stored, the future freed. */
    fx.elem_in = -1;
    EXPECT_CANCELED(await_xchan_recv(fx.xchan, &fx.elem_in, t_long()));
    EXPECT_CANCELED(await_xchan_send(fx.xchan, &fx.elem_out, t_long()));
    EXPECT_EQ(fx.elem_in, -1);
    EXPECT_EQ(coro_xchan_size(fx.xchan), 1);
    fx.result = NULL;
    EXPECT_CANCELED(await_future(fx.future, t_long(), &fx.result));
    EXPECT(fx.result == TOKEN(7));

    /* A queue with an item and room for one more, nothing unfinished
     * once the item is marked done. */
    fx.item = TOKEN(99);
    EXPECT_CANCELED(await_queue_get(fx.queue, &fx.item, t_long()));
    EXPECT_CANCELED(await_queue_put(fx.queue, TOKEN(2), t_long()));
    EXPECT(fx.item == TOKEN(99));
    EXPECT_EQ(coro_queue_size(fx.queue), 1);
    expect_queued(TOKEN(1));
    EXPECT_ERR(coro_queue_task_done(fx.queue), 0);
    EXPECT_CANCELED(await_queue_join(fx.queue, t_long()));

    /* A free mutex, a permit, a set event. */
    EXPECT_CANCELED(await_mutex_lock(fx.mutex, t_long()));
    EXPECT_ERR(coro_mutex_unlock(fx.mutex), EPERM); /* not taken */
    EXPECT_CANCELED(await_sem_acquire(fx.sem, t_long()));
    EXPECT_CANCELED(await_event(fx.event, t_long()));

    /* Holding the mutex, taken under a shield: the condition wait returns
     * with it held. */
    int was = coro_shield(1);
    EXPECT_ERR(await_mutex_lock(fx.mutex, 0), 0);
    coro_shield(was);
    EXPECT_CANCELED(await_cond_wait(fx.cond, fx.mutex, t_long()));
    fx.pred = 1; /* already true: still not looked at */
    EXPECT_CANCELED(await_cond_wait_for(fx.cond, fx.mutex, predicate, NULL,
                                        t_long()));
    EXPECT_ERR(coro_mutex_unlock(fx.mutex), 0);

    /* A barrier one party short; a group and an iterator whose tasks have
     * all ended. */
    fx.index = 99;
    EXPECT_CANCELED(await_barrier_wait(fx.barrier, t_long(), &fx.index));
    EXPECT_EQ(fx.index, 99);
    EXPECT_EQ(coro_barrier_waiting(fx.barrier), 1);
    EXPECT_CANCELED(await_group(fx.group));
    EXPECT_ERR(coro_group_result(fx.group, 0, &fx.result), 0);
    fx.kids[1] = spawn_helper(ended, NULL);
    EXPECT_ERR(coro_as_completed(&fx.kids[1], 1, t_long(), &fx.completions),
               0);
    fx.done = NULL;
    EXPECT_CANCELED(await_as_completed(fx.completions, &fx.done));
    EXPECT(fx.done == NULL);
    EXPECT_ERR(coro_completions_free(fx.completions), 0);
    EXPECT_CANCELED(await_task(fx.kids[1], NULL)); /* ended, now freed */

    /* With nothing to wait for, still ECANCELED (last: a fix in flight). */
    EXPECT_CANCELED(await_gather(fx.kids, 0, NULL, NULL));
    fx.ndone = 99;
    EXPECT_CANCELED(await_wait(fx.kids, 0, CORO_ALL_COMPLETED, -1,
                               &fx.ndone));
    EXPECT_EQ(fx.ndone, 0);
    return NULL;
}

/* A party that waits at fx.barrier. */
static void *barrier_party(void *arg)
{
    (void)arg;
    unsigned index;
    return TOKEN(await_barrier_wait(fx.barrier, t_long(), &index));
}

/* Makes every operation ready, then runs cancelled_caller cancelled. */
static void *drive_cancelled(void *arg)
{
    (void)arg;
    pipe_setup();
    put_bytes(fx.fd[1], "x");
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                         0, fx.pair),
              0);
    put_bytes(fx.pair[0], "line\n");
    listen_setup(0);
    EXPECT_ERR(await_dial("127.0.0.1", fx.port, t_long(), &fx.peer), 0);
    select_setup(WAKE_EVENT);
    EXPECT_ERR(coro_chan_try_send(fx.chan, &(int){ 5 }), 0);
    fx.xchan = coro_xchan_new(sizeof(int), 2);
    EXPECT(fx.xchan != NULL);
    EXPECT_ERR(coro_xchan_try_send(fx.xchan, &(int){ 6 }), 0);
    EXPECT_ERR(coro_loop_submit(coro_loop_current(), ended, NULL,
                                &fx.future),
               0);
    EXPECT_ERR(await_sleep(0.001), 0); /* the submitted task ends */
    EXPECT(coro_future_done(fx.future));
    fx.queue = coro_queue_new(2);
    EXPECT(fx.queue != NULL);
    EXPECT_ERR(coro_queue_try_put(fx.queue, TOKEN(1)), 0);
    fx.mutex = coro_mutex_new();
    fx.sem = coro_sem_new(1);
    fx.event = coro_event_new();
    fx.cond = coro_cond_new();
    EXPECT(fx.mutex && fx.sem && fx.event && fx.cond);
    coro_event_set(fx.event);

    fx.barrier = coro_barrier_new(2);
    fx.group = coro_group_new();
    EXPECT(fx.barrier && fx.group);
    coro_task *party = spawn_helper(barrier_party, NULL);
    EXPECT(coro_group_spawn(fx.group, NULL, ended, NULL) != NULL);
    EXPECT_ERR(await_sleep(0), 0); /* the party waits; the member ends */

    coro_task *t = spawn_helper(cancelled_caller, NULL);
    EXPECT_ERR(coro_cancel(t), 0);
    EXPECT_ERR(await_task(t, NULL), ECANCELED);
    /* The other party is still there: this one completes the round. */
    unsigned mine = 99;
    EXPECT_ERR(await_barrier_wait(fx.barrier, t_long(), &mine), 0);
    EXPECT_ERR(await_task(party, NULL), 0);
    EXPECT_ERR(coro_barrier_free(fx.barrier), 0);
    EXPECT_ERR(coro_group_free(fx.group), 0);
    EXPECT_ERR(await_sem_acquire(fx.sem, 0), 0); /* the permit stayed */
    EXPECT_ERR(await_mutex_lock(fx.mutex, 0), 0);
    EXPECT_ERR(coro_mutex_unlock(fx.mutex), 0);
    fx_release();
    return NULL;
}

/* _i: 0 for a caller on its own stack, 1 for one on the shared stack. */
START_TEST(already_cancelled)
{
    memset(&run, 0, sizeof run);
    run.shared = _i;
    snprintf(where, sizeof where, "already cancelled, %s stack",
             run.shared ? "shared" : "own");
    fx_reset();
    int err = coro_run(drive_cancelled, NULL, NULL);
    ck_assert_msg(err == 0, "%s: coro_run returned %d (%s)", where, err,
                  strerror(err));
}
END_TEST

/* _i numbers the combination: (row * 2 + shared) * NWAKES + wake. */
START_TEST(one_combination)
{
    memset(&run, 0, sizeof run);
    run.combo = (unsigned)_i;
    run.row = &rows[_i / (2 * NWAKES)];
    run.shared = _i / NWAKES % 2;
    run.wake = (enum wake)(_i % NWAKES);
    run.timeout = run.wake == WAKE_TIMEOUT || run.wake == WAKE_CANCEL_LATE
                      ? t_short()
                      : t_long();
    snprintf(where, sizeof where, "%s, %s stack, %s", run.row->name,
             run.shared ? "shared" : "own", wake_names[run.wake]);
    fx_reset();
    int err = coro_run(drive, NULL, NULL);
    ck_assert_msg(err == 0, "%s: coro_run returned %d (%s)", where, err,
                  strerror(err));
}
END_TEST

/* ---------------------------------------------------------------------
 * Bad input common to every wait: called where nothing may wait, a NaN
 * timeout, and timeouts at the ends of the doubles.
 * --------------------------------------------------------------------- */

/* Objects for the calls below, made where no loop runs yet. */
static struct {
    coro_chan    *chan;
    coro_queue   *queue;
    coro_mutex   *mutex;
    coro_sem     *sem;
    coro_event   *event;
    coro_cond    *cond;
    coro_barrier *barrier;
    coro_xchan   *xchan;
    int           pipe[2];
} bx;

static void bx_make(void)
{
    bx.chan = coro_chan_new(sizeof(int), 1);
    bx.queue = coro_queue_new(1);
    bx.mutex = coro_mutex_new();
    bx.sem = coro_sem_new(1);
    bx.event = coro_event_new();
    bx.cond = coro_cond_new();
    bx.barrier = coro_barrier_new(1);
    bx.xchan = coro_xchan_new(sizeof(int), 1);
    ck_assert(bx.chan && bx.queue && bx.mutex && bx.sem && bx.event &&
              bx.cond && bx.barrier && bx.xchan);
    ck_assert_int_eq(pipe2(bx.pipe, O_NONBLOCK), 0);
}

static void bx_free(void)
{
    ck_assert_int_eq(coro_chan_free(bx.chan), 0);
    ck_assert_int_eq(coro_queue_free(bx.queue), 0);
    ck_assert_int_eq(coro_mutex_free(bx.mutex), 0);
    ck_assert_int_eq(coro_sem_free(bx.sem), 0);
    ck_assert_int_eq(coro_event_free(bx.event), 0);
    ck_assert_int_eq(coro_cond_free(bx.cond), 0);
    ck_assert_int_eq(coro_barrier_free(bx.barrier), 0);
    ck_assert_int_eq(coro_xchan_free(bx.xchan), 0);
    close(bx.pipe[0]);
    close(bx.pipe[1]);
}

static void *never_runs(void *arg)
{
    (void)arg;
    ck_abort_msg("a refused call ran its function");
    return NULL;
}

static int always(void *arg)
{
    (void)arg;
    return 1;
}

/* Every await_* of coro.h, and the coro_* calls that need a task, with
 * otherwise good arguments: how many returned something else than EPERM
 * (each one is named on stderr). */
static int eperm_misses;
#define EXPECT_EPERM(call)                                                  \
    do {                                                                    \
        int e_ = (call);                                                    \
        if (e_ != EPERM) {                                                  \
            fprintf(stderr, "%s: %s returned %d\n", where, #call, e_);      \
            eperm_misses++;                                                 \
        }                                                                   \
    } while (0)

static void every_wait_is_eperm(void)
{
    int v = 1;
    void *r;
    size_t n;
    unsigned index;
    char buf[4];
    coro_task *t = NULL;
    coro_completions *c = NULL;
    coro_timeout *scope;
    coro_chan_op op = { bx.chan, 0, &v };
    eperm_misses = 0;
    EXPECT_EPERM(await_task(t, &r));
    EXPECT_EPERM(await_task_timeout(t, 1, &r));
    EXPECT_EPERM(await_sleep(0.001));
    EXPECT_EPERM(await_sleep(NAN));
    EXPECT_EPERM(await_yield());
    EXPECT_EPERM(await_gather(&t, 0, NULL, NULL));
    EXPECT_EPERM(await_wait(&t, 0, CORO_ALL_COMPLETED, 1, &n));
    EXPECT_EPERM(coro_as_completed(&t, 0, 1, &c));
    EXPECT_EPERM(await_as_completed(c, &t));
    EXPECT_EPERM(await_group(NULL));
    EXPECT_EPERM(await_blocking(never_runs, NULL, &r));
    EXPECT_EPERM(await_future(NULL, 1, &r));
    EXPECT_EPERM(coro_timeout_open(1, &scope));
    EXPECT_EPERM(coro_timeout_open_at(1, &scope));
    EXPECT_EPERM(await_readable(bx.pipe[0], 1));
    EXPECT_EPERM(await_writable(bx.pipe[1], 1));
    EXPECT_EPERM(await_accept(bx.pipe[0], 1, &v));
    EXPECT_EPERM(await_dial("127.0.0.1", 1, 1, &v));
    EXPECT_EPERM(await_read(bx.pipe[0], buf, sizeof buf, 1, &n));
    EXPECT_EPERM(await_read_full(bx.pipe[0], buf, sizeof buf, 1, &n));
    EXPECT_EPERM(await_read_until(bx.pipe[0], buf, sizeof buf, "\n", 1, &n));
    EXPECT_EPERM(await_write_all(bx.pipe[1], "x", 1, 1));
    EXPECT_EPERM(await_chan_send(bx.chan, &v, 1));
    EXPECT_EPERM(await_chan_recv(bx.chan, &v, 1));
    EXPECT_EPERM(await_select(&op, 1, 1, &n));
    EXPECT_EPERM(await_queue_put(bx.queue, &v, 1));
    EXPECT_EPERM(await_queue_get(bx.queue, &r, 1));
    EXPECT_EPERM(await_queue_join(bx.queue, 1));
    EXPECT_EPERM(await_mutex_lock(bx.mutex, 1));
    EXPECT_EPERM(await_sem_acquire(bx.sem, 1));
    EXPECT_EPERM(await_event(bx.event, 1));
    EXPECT_EPERM(await_cond_wait(bx.cond, bx.mutex, 1));
    EXPECT_EPERM(await_cond_wait_for(bx.cond, bx.mutex, always, NULL, 1));
    EXPECT_EPERM(await_barrier_wait(bx.barrier, 1, &index));
    EXPECT_EPERM(await_xchan_send(bx.xchan, &v, 1));
    EXPECT_EPERM(await_xchan_recv(bx.xchan, &v, 1));
    EXPECT_EPERM(coro_dump_on_sigquit(1));
    /* Nothing was done: the permit, the empty channel and queue stay. */
    if (coro_sem_value(bx.sem) != 1 || coro_queue_size(bx.queue) != 0 ||
        coro_xchan_size(bx.xchan) != 0 || coro_mutex_locked(bx.mutex)) {
        fprintf(stderr, "%s: a refused call changed an object\n", where);
        eperm_misses++;
    }
}

static void eperm_in_a_post(void *arg)
{
    (void)arg;
    snprintf(where, sizeof where, "in a call posted to a loop");
    every_wait_is_eperm();
}

static void *eperm_on_a_worker(void *arg)
{
    (void)arg;
    every_wait_is_eperm();
    return NULL;
}

static void *eperm_main(void *arg)
{
    int *misses = arg;
    ck_assert_int_eq(coro_loop_post(coro_loop_current(), eperm_in_a_post,
                                    NULL),
                     0);
    ck_assert_int_eq(await_sleep(0.001), 0); /* the call runs */
    misses[1] = eperm_misses;
    snprintf(where, sizeof where, "on a worker thread");
    eperm_misses = -1;
    ck_assert_int_eq(await_blocking(eperm_on_a_worker, NULL, NULL), 0);
    misses[2] = eperm_misses;
    return NULL;
}

/* Outside a coroutine every await_* is EPERM, and does nothing: on a
 * thread without a loop, in a call posted to a loop (its thread runs the
 * loop, but no task), and on a worker thread in a blocking call. */
START_TEST(every_wait_outside_a_coroutine_is_eperm)
{
    bx_make();
    int misses[3] = { -1, -1, -1 };
    snprintf(where, sizeof where, "on a thread without a loop");
    every_wait_is_eperm();
    misses[0] = eperm_misses;
    run_expect(eperm_main, misses, 0);
    bx_free();
    ck_assert_int_eq(misses[0], 0);
    ck_assert_int_eq(misses[1], 0);
    ck_assert_int_eq(misses[2], 0);
}
END_TEST

/* Each timed await_* with the given timeout, its operation ready to
 * complete (an element, an item, a permit, a set event, a free mutex, a
 * readable pipe...): the results, in the order called, into errs. */
enum { TIMED_CALLS = 20 };
static int readiness_at; /* where await_readable is in the list */

static void ready_calls(double timeout, int *errs)
{
    int v = 5, k = 0;
    void *item;
    unsigned index;
    size_t n, chosen;
    char buf[4];
    coro_chan_op op = { bx.chan, 0, &v };
    coro_task *t;
    ck_assert_int_eq(coro_chan_try_send(bx.chan, &v), 0);
    errs[k++] = await_chan_recv(bx.chan, &v, timeout);
    errs[k++] = await_chan_send(bx.chan, &v, timeout);
    errs[k++] = await_select(&op, 1, timeout, &chosen);
    errs[k++] = await_queue_put(bx.queue, &v, timeout);
    errs[k++] = await_queue_get(bx.queue, &item, timeout);
    coro_queue_task_done(bx.queue);
    errs[k++] = await_queue_join(bx.queue, timeout);
    errs[k++] = await_mutex_lock(bx.mutex, timeout);
    errs[k++] = await_cond_wait_for(bx.cond, bx.mutex, always, NULL, timeout);
    coro_mutex_unlock(bx.mutex);
    errs[k++] = await_sem_acquire(bx.sem, timeout);
    coro_sem_release(bx.sem);
    coro_event_set(bx.event);
    errs[k++] = await_event(bx.event, timeout);
    coro_event_clear(bx.event);
    errs[k++] = await_barrier_wait(bx.barrier, timeout, &index);
    ck_assert_int_eq(coro_xchan_try_send(bx.xchan, &v), 0);
    errs[k++] = await_xchan_recv(bx.xchan, &v, timeout);
    errs[k++] = await_xchan_send(bx.xchan, &v, timeout);
    ck_assert_int_eq(coro_xchan_try_recv(bx.xchan, &v), 0);
    ck_assert_int_eq(write(bx.pipe[1], "ab\n", 3), 3);
    readiness_at = k;
    errs[k++] = await_readable(bx.pipe[0], timeout);
    errs[k++] = await_writable(bx.pipe[1], timeout);
    errs[k++] = await_read(bx.pipe[0], buf, 1, timeout, &n);
    errs[k++] = await_read_until(bx.pipe[0], buf, sizeof buf, "\n", timeout,
                                 &n);
    errs[k++] = await_write_all(bx.pipe[1], "x", 1, timeout);
    errs[k++] = await_read_full(bx.pipe[0], buf, 1, timeout, &n);
    t = coro_spawn(return_arg, NULL);
    await_yield(); /* t has ended */
    errs[k++] = await_task_timeout(t, timeout, NULL);
    ck_assert_int_eq(k, TIMED_CALLS);
}

static void *timeouts_main(void *arg)
{
    (void)arg;
    int errs[TIMED_CALLS];
    /* NaN: EINVAL before anything is done; the task passed to
     * await_task_timeout is left to join. */
    const double nans[] = { NAN, -NAN };
    for (size_t i = 0; i < 2; i++) {
        int v = 5;
        ck_assert_int_eq(coro_chan_try_send(bx.chan, &v), 0);
        ck_assert_int_eq(await_chan_recv(bx.chan, &v, nans[i]), EINVAL);
        ck_assert_int_eq(coro_chan_try_recv(bx.chan, &v), 0); /* still there */
        ck_assert_int_eq(await_mutex_lock(bx.mutex, nans[i]), EINVAL);
        ck_assert_int_eq(coro_mutex_locked(bx.mutex), 0);
        ck_assert_int_eq(await_sem_acquire(bx.sem, nans[i]), EINVAL);
        ck_assert_uint_eq(coro_sem_value(bx.sem), 1);
        ck_assert_int_eq(await_queue_put(bx.queue, &v, nans[i]), EINVAL);
        ck_assert_uint_eq(coro_queue_size(bx.queue), 0);
        ck_assert_int_eq(await_xchan_send(bx.xchan, &v, nans[i]), EINVAL);
        ck_assert_uint_eq(coro_xchan_size(bx.xchan), 0);
        ck_assert_int_eq(await_sleep(nans[i]), EINVAL);
        coro_task *t = coro_spawn(return_arg, NULL);
        ck_assert_int_eq(await_task_timeout(t, nans[i], NULL), EINVAL);
        ck_assert_int_eq(await_task(t, NULL), 0);
    }
    /* Any other timeout, however large or small, lets a ready operation
     * complete: no conversion overflows, nothing waits forever. */
    const double timeouts[] = { -INFINITY, -DBL_MAX, -1, -0.0, 0, 5e-324,
                                1e-300, 1e-9, 9.3e9, 1.9e10, 9.3e18,
                                1e300, DBL_MAX, INFINITY };
    for (size_t i = 0; i < sizeof timeouts / sizeof *timeouts; i++) {
        ready_calls(timeouts[i], errs);
        for (int k = 0; k < TIMED_CALLS; k++) {
            /* await_readable and await_writable ask the reactor,
             * parked: a deadline a few nanoseconds away may pass first
             * (0 itself only looks). */
            int racy = (k == readiness_at || k == readiness_at + 1) &&
                       timeouts[i] > 0 &&
                       timeouts[i] < 1e-3 && errs[k] == ETIMEDOUT;
            ck_assert_msg(errs[k] == 0 || racy,
                          "timeout %g: call %d returned %d", timeouts[i], k,
                          errs[k]);
        }
    }
    /* The smallest positive timeout on an operation that cannot complete
     * times out at once; so does await_sleep's largest finish when
     * cancelled. */
    int v;
    double t0 = coro_now();
    ck_assert_int_eq(await_chan_recv(bx.chan, &v, 5e-324), ETIMEDOUT);
    ck_assert_int_eq(await_readable(bx.pipe[0], 5e-324), ETIMEDOUT);
    ck_assert_int_eq(await_event(bx.event, 1e-300), ETIMEDOUT);
    ck_assert_double_lt(coro_now() - t0, 0.5 * test_slow());
    return NULL;
}

START_TEST(timeouts_nan_is_einval_and_any_other_is_taken)
{
    bx_make();
    run_expect(timeouts_main, NULL, 0);
    bx_free();
}
END_TEST

Suite *waits_suite(void)
{
    Suite *s = suite_create("waits");
    for (int r = 0; r < NROWS; r++) {
        TCase *tc = test_case(rows[r].name, 30);
        for (int shared = 0; shared < 2; shared++)
            for (int w = 0; w < NWAKES; w++)
                if (rows[r].wakes & BIT(w)) {
                    int i = (r * 2 + shared) * NWAKES + w;
                    tcase_add_loop_test(tc, one_combination, i, i + 1);
                }
        suite_add_tcase(s, tc);
    }
    TCase *tc = test_case("already_cancelled", 30);
    tcase_add_loop_test(tc, already_cancelled, 0, 2);
    suite_add_tcase(s, tc);
    tc = test_case("bad input", 30);
    tcase_add_test(tc, every_wait_outside_a_coroutine_is_eperm);
    tcase_add_test(tc, timeouts_nan_is_einval_and_any_other_is_taken);
    suite_add_tcase(s, tc);
    return s;
}
