/* A program built without the hooks (linked with libcoro.so only) that
 * test_hook.c runs as it is and with LD_PRELOAD=libcoro_hook.so.
 *   hook_preload sleep   ten tasks each usleep(100 ms): prints the seconds
 *   hook_preload pipe    one task reads a blocking pipe that another task
 *                        writes to after a sleep: prints what was read
 * and then the number of threads the process has. Unhooked, "sleep" takes
 * ten times as long, and "pipe" would never end: it gives up after a
 * second (alarm) and says so. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coro.h"

static int pipefd[2];

static void *sleeper(void *arg)
{
    (void)arg;
    usleep(100000);
    return NULL;
}

static void *writer(void *arg)
{
    (void)arg;
    await_sleep(0.02);
    if (write(pipefd[1], "hooked", 6) != 6)
        return coro_fail(errno);
    return NULL;
}

static void *reader(void *arg)
{
    char *buf = arg;
    ssize_t n = read(pipefd[0], buf, 15);
    if (n < 0)
        return coro_fail(errno);
    buf[n] = '\0';
    return NULL;
}

static int threads(void)
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

static void *run(void *arg)
{
    const char *mode = arg;
    coro_task *t[10];
    int n = 0;
    static char got[16];
    if (strcmp(mode, "sleep") == 0) {
        for (n = 0; n < 10; n++)
            t[n] = coro_spawn(sleeper, NULL);
    } else {
        t[n++] = coro_spawn(reader, got);
        t[n++] = coro_spawn(writer, NULL);
    }
    int err = await_gather(t, (size_t)n, NULL, NULL);
    if (strcmp(mode, "pipe") == 0)
        printf("read %s\n", got);
    printf("threads %d\n", threads());
    return err ? coro_fail(err) : NULL;
}

static void gave_up(int sig)
{
    (void)sig;
    static const char msg[] = "blocked: gave up\n";
    (void)!write(1, msg, sizeof msg - 1);
    _exit(3);
}

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "sleep") && strcmp(argv[1], "pipe"))) {
        fprintf(stderr, "usage: %s sleep|pipe\n", argv[0]);
        return 2;
    }
    if (pipe(pipefd) != 0)
        return 1;
    signal(SIGALRM, gave_up);
    alarm(2);
    double t0 = coro_now();
    int err = coro_run(run, argv[1], NULL);
    printf("seconds %.3f\n", coro_now() - t0);
    return err ? 1 : 0;
}
