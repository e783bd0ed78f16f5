/* gdb_target: a program whose tasks sit parked in many kinds of wait, in
 * two loops on two threads, for test/gdb_check.sh to look at with gdb and
 * gdb/coro-gdb.py (a live process, and a core file made of it).
 *
 * Once every task has parked it prints "ready" on stdout and waits to be
 * looked at; it ends by itself after --seconds (default 120), so a test
 * that fails cannot leave it behind for long.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coro.h"

static const char usage[] =
    "usage: gdb_target [--seconds N] [--stall S] [--dump] [--help]\n"
    "Parks tasks in a sleep, a join, a gather, a channel receive, a select,\n"
    "a mutex, an event, a queue get, a pipe read, a blocking call and on the\n"
    "shared stack, and a second loop on another thread; prints \"ready\"\n"
    "and waits N seconds (default 120) for gdb to look.\n"
    "  --stall S  first, a task computes for S seconds without suspending\n"
    "             (for CORO_WATCHDOG)\n"
    "  --dump     prints coro_dump once ready (CORO_ACCOUNTING=1 adds what\n"
    "             each task ran)\n";

static double stall;
static int dump;

static coro_chan *chan, *chan2;
static coro_mutex *mutex;
static coro_event *event;
static coro_queue *queue;
static int pipe_fds[2], blocking_fds[2];
static atomic_int second_loop_parked;

#define LONG_WAIT 3600.0

static void *sleeping_task(void *arg)
{
    int err = await_sleep(LONG_WAIT);
    return err ? coro_fail(err) : arg;
}

static void *chan_receiver(void *arg)
{
    int x;
    int err = await_chan_recv(chan, &x, -1);
    return err ? coro_fail(err) : arg;
}

static void *select_waiter(void *arg)
{
    int a, b;
    coro_chan_op ops[] = { { chan, 0, &a }, { chan2, 0, &b } };
    size_t chosen;
    int err = await_select(ops, 2, -1, &chosen);
    return err ? coro_fail(err) : arg;
}

static void *mutex_holder(void *arg)
{
    int err = await_mutex_lock(mutex, -1);
    if (!err)
        err = await_sleep(LONG_WAIT);
    coro_mutex_unlock(mutex);
    return err ? coro_fail(err) : arg;
}

static void *mutex_waiter(void *arg)
{
    int err = await_mutex_lock(mutex, -1);
    if (!err)
        coro_mutex_unlock(mutex);
    return err ? coro_fail(err) : arg;
}

static void *event_waiter(void *arg)
{
    int err = await_event(event, LONG_WAIT);
    return err ? coro_fail(err) : arg;
}

static void *queue_getter(void *arg)
{
    void *item;
    int err = await_queue_get(queue, &item, -1);
    return err ? coro_fail(err) : item ? item : arg;
}

/* A frame between the task's function and the wait. */
static __attribute__((noinline)) int read_request(char *buf, size_t cap)
{
    size_t got;
    int err = await_read(pipe_fds[0], buf, cap, -1, &got);
    return err ? err : (int)-(long)got;
}

static void *pipe_reader(void *arg)
{
    char buf[64];
    int err = read_request(buf, sizeof buf);
    return err > 0 ? coro_fail(err) : arg;
}

static void *blocks_on_a_pipe(void *arg)
{
    char c;
    ssize_t n = read(blocking_fds[0], &c, 1);
    return n == 1 ? arg : NULL;
}

static void *blocking_caller(void *arg)
{
    void *result;
    int err = await_blocking(blocks_on_a_pipe, arg, &result);
    return err ? coro_fail(err) : result;
}

static void *joiner(void *arg)
{
    coro_task *t = coro_spawn(sleeping_task, NULL);
    int err = t ? await_task(t, NULL) : errno;
    return err ? coro_fail(err) : arg;
}

/* Frames several calls deep on the shared stack. */
static __attribute__((noinline)) int nest(int depth)
{
    volatile char pad[200];
    pad[0] = (char)depth;
    int err = depth > 0 ? nest(depth - 1) : await_sleep(LONG_WAIT);
    return err + pad[0] - (char)depth;
}

static void *shared_sleeper(void *arg)
{
    int err = nest(3);
    return err ? coro_fail(err) : arg;
}

/* Computes for `seconds` without suspending: the stall the watchdog
 * reports. */
static __attribute__((noinline)) unsigned long parse_numbers(double seconds)
{
    unsigned long sum = 0;
    double end = coro_now() + seconds;
    while (coro_now() < end)
        for (unsigned i = 0; i < 1000; i++)
            sum += i * i % 7;
    return sum;
}

static void *busy_parser(void *arg)
{
    int err = parse_numbers(stall) ? await_sleep(LONG_WAIT) : 0;
    return err ? coro_fail(err) : arg;
}

static void *other_loop_sleeper(void *arg)
{
    int err = await_sleep(LONG_WAIT);
    return err ? coro_fail(err) : arg;
}

static void *other_loop_main(void *arg)
{
    coro_task *t = coro_spawn(other_loop_sleeper, arg);
    int err = t ? await_sleep(0.02) : errno;
    atomic_store(&second_loop_parked, 1);
    if (!err)
        err = await_task(t, NULL);
    return err ? coro_fail(err) : NULL;
}

static void *second_thread(void *arg)
{
    return (void *)(intptr_t)coro_run(other_loop_main, arg, NULL);
}

static void *main_task(void *arg)
{
    (void)arg;
    coro_attr named = { .name = "the-event-waiter" };
    coro_attr shared = { .flags = CORO_SHARED_STACK };
    coro_task *t[] = {
        coro_spawn(sleeping_task, NULL),
        coro_spawn(chan_receiver, NULL),
        coro_spawn(select_waiter, NULL),
        coro_spawn(mutex_holder, NULL),
        coro_spawn(mutex_waiter, NULL),
        coro_spawn_attr(&named, event_waiter, NULL),
        coro_spawn(queue_getter, NULL),
        coro_spawn(pipe_reader, NULL),
        coro_spawn(blocking_caller, NULL),
        coro_spawn(joiner, NULL),
        coro_spawn_attr(&shared, shared_sleeper, NULL),
        coro_spawn_attr(&shared, shared_sleeper, NULL),
    };
    size_t n = sizeof t / sizeof *t;
    for (size_t i = 0; i < n; i++)
        if (!t[i])
            return coro_fail(errno);
    if (stall > 0)
        coro_detach(coro_spawn(busy_parser, NULL));
    int err = 0;
    while (!err && !atomic_load(&second_loop_parked))
        err = await_sleep(0.01);
    if (!err) {
        printf("ready\n");
        if (dump)
            coro_dump(stdout);
        fflush(stdout);
        err = await_gather(t, n, NULL, NULL);
    }
    return err ? coro_fail(err) : NULL;
}

int main(int argc, char **argv)
{
    unsigned seconds = 120;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--stall") && i + 1 < argc) {
            stall = strtod(argv[++i], NULL);
        } else if (!strcmp(argv[i], "--dump")) {
            dump = 1;
        } else {
            fprintf(stderr, "gdb_target: unknown argument %s\n%s", argv[i],
                    usage);
            return 2;
        }
    }
    alarm(seconds); /* SIGALRM ends it */
    chan = coro_chan_new(sizeof(int), 0);
    chan2 = coro_chan_new(sizeof(int), 1);
    mutex = coro_mutex_new();
    event = coro_event_new();
    queue = coro_queue_new(0);
    if (!chan || !chan2 || !mutex || !event || !queue ||
        pipe(pipe_fds) != 0 || pipe(blocking_fds) != 0) {
        perror("gdb_target");
        return 1;
    }
    pthread_t th;
    if (pthread_create(&th, NULL, second_thread, NULL) != 0) {
        perror("gdb_target: pthread_create");
        return 1;
    }
    int err = coro_run(main_task, NULL, NULL);
    fprintf(stderr, "gdb_target: %s\n", strerror(err));
    return 1;
}
