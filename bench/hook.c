/* hook: what the hooks (hook.c, README "Hooks") cost. Built twice: as
 * bench/hook with hook.c linked in, and as bench/hook_plain without; each
 * prints ns per call for
 *   - read(2) of a byte from /dev/zero outside a coroutine (a hook passes
 *     it straight through), and inside one: on /dev/zero (a pollable
 *     character device), on a regular file, on a socket with data waiting;
 *   - a one-byte ping-pong between two tasks over a socket pair, with
 *     plain read and write (hooked: each read parks) beside coro's own
 *     await_read and await_write_all (bench/hook only: unhooked, a plain
 *     read would block the loop).
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "coro.h"

static const char usage[] =
    "usage: hook [CALLS]\n"
    "Times CALLS (default 200000) reads of one kind after another, and as\n"
    "many one-byte round trips between two tasks, and prints ns per call.\n"
    "bench/hook has the hooks linked in, bench/hook_plain has not.\n";

static long calls;
static int hooked; /* set by main: whether read is hook.c's */

static double per_call(double t0)
{
    return (bench_now() - t0) / (double)calls * 1e9;
}

static double reads(int fd, int rewind)
{
    char c;
    double t0 = bench_now();
    for (long i = 0; i < calls; i++) {
        if (read(fd, &c, 1) != 1) {
            perror("read");
            exit(1);
        }
        if (rewind)
            lseek(fd, 0, SEEK_SET);
    }
    return per_call(t0);
}

static int pair[2];

static void *pong(void *arg)
{
    int own = arg != NULL;
    char c;
    size_t got;
    for (long i = 0; i < calls; i++) {
        if (own) {
            if (await_read(pair[1], &c, 1, -1, &got) ||
                await_write_all(pair[1], &c, 1, -1))
                exit(1);
        } else if (read(pair[1], &c, 1) != 1 || write(pair[1], &c, 1) != 1) {
            exit(1);
        }
    }
    return NULL;
}

static double ping_pong(int own)
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0)
        exit(1);
    if (own) { /* coro's helpers take the fds as they are */
        fcntl(pair[0], F_SETFL, O_NONBLOCK);
        fcntl(pair[1], F_SETFL, O_NONBLOCK);
    }
    coro_task *t = coro_spawn(pong, own ? &own : NULL);
    char c = 'x';
    size_t got;
    double t0 = bench_now();
    for (long i = 0; i < calls; i++) {
        if (own) {
            if (await_write_all(pair[0], &c, 1, -1) ||
                await_read(pair[0], &c, 1, -1, &got))
                exit(1);
        } else if (write(pair[0], &c, 1) != 1 || read(pair[0], &c, 1) != 1) {
            exit(1);
        }
    }
    double ns = per_call(t0);
    await_task(t, NULL);
    close(pair[0]);
    close(pair[1]);
    return ns;
}

static void *bench_main(void *arg)
{
    (void)arg;
    int zero = open("/dev/zero", O_RDONLY);
    char path[] = "/tmp/coro-bench-hook-XXXXXX";
    int file = mkstemp(path);
    if (zero < 0 || file < 0 || write(file, "x", 1) != 1)
        exit(1);
    unlink(path);
    lseek(file, 0, SEEK_SET);
    int s[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0)
        exit(1);
    static char fill[1 << 16];
    /* the socket always has a byte to read: refilled as it drains */
    printf("  in a task, read of /dev/zero:          %7.0f ns\n",
           reads(zero, 0));
    printf("  in a task, read of a regular file:     %7.0f ns "
           "(with an lseek)\n", reads(file, 1));
    long left = calls;
    double t0 = bench_now(), spent = 0;
    while (left > 0) {
        long n = left < (long)sizeof fill ? left : (long)sizeof fill;
        if (write(s[1], fill, (size_t)n) != n)
            exit(1);
        long saved = calls;
        calls = n;
        t0 = bench_now();
        reads(s[0], 0);
        spent += bench_now() - t0;
        calls = saved;
        left -= n;
    }
    printf("  in a task, read of a socket with data: %7.0f ns\n",
           spent / (double)calls * 1e9);
    if (hooked)
        printf("  in a task, ping-pong with read/write:  %7.0f ns "
               "a round trip\n", ping_pong(0));
    printf("  in a task, ping-pong with await_*:     %7.0f ns "
           "a round trip\n", ping_pong(1));
    close(zero);
    close(file);
    close(s[0]);
    close(s[1]);
    return NULL;
}

/* The Makefile says which of the two builds this is. */
#ifndef HOOKED
#define HOOKED 0
#endif

int main(int argc, char **argv)
{
    calls = bench_args(argc, argv, 200000, usage);
    hooked = HOOKED;
    printf("hook: %s, %ld calls each\n",
           hooked ? "hooks linked in" : "no hooks", calls);
    int zero = open("/dev/zero", O_RDONLY);
    printf("  outside a task, read of /dev/zero:     %7.0f ns\n",
           reads(zero, 0));
    close(zero);
    return coro_run(bench_main, NULL, NULL) ? 1 : 0;
}
