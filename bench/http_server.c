/* http_server: demo/http.c's server as a standalone program, for wrk.
 * Serves until SIGINT or SIGTERM, which it awaits on a signalfd like any
 * other fd. With --threads N it runs N loops (coro_run_loops), each
 * accepting on its own socket of one port shared with SO_REUSEPORT. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "coro.h"
#include "http.h"

static const char usage[] =
    "usage: http_server [--port N] [--latency S] [--threads N]\n"
    "Serves HTTP/1.1 on 127.0.0.1:N (default 8080), answering every request\n"
    "with a fixed 3-byte body after S seconds (default 0), until SIGINT or\n"
    "SIGTERM. --threads N runs N loops on N threads (default 1; 0: one per\n"
    "CPU), each accepting its share of the connections (SO_REUSEPORT).\n";

#define LOOPS_MAX 1024

struct opts {
    int      port;
    double   latency;
    int      sigfd;
    unsigned threads;
};

struct server {
    int    lfd;
    double latency;
};

/* One loop's share: runs on that loop until cancelled. */
static void *serve(void *arg)
{
    struct server *s = arg;
    int err = http_serve(s->lfd, s->latency);
    return err == ECANCELED ? NULL : coro_fail(err);
}

static void *server_main(void *arg)
{
    struct opts *o = arg;
    static coro_loop *loops[LOOPS_MAX];
    static struct server servers[LOOPS_MAX];
    static coro_future *futures[LOOPS_MAX];
    size_t n = coro_loops(loops, LOOPS_MAX);
    unsigned flags = n > 1 ? CORO_LISTEN_REUSEPORT : 0;
    int err = 0;
    size_t i;
    for (i = 0; i < n && !err; i++) {
        servers[i].latency = o->latency;
        err = coro_listen_flags("127.0.0.1", o->port, 4096, flags,
                                &servers[i].lfd);
        if (err) {
            fprintf(stderr, "http_server: listen on %d: %s\n", o->port,
                    strerror(err));
            break;
        }
        err = coro_loop_submit(loops[i], serve, &servers[i], &futures[i]);
        if (err)
            close(servers[i].lfd);
    }
    size_t started = i;
    if (!err) {
        printf("serving on http://127.0.0.1:%d/ with %zu loop%s\n", o->port,
               n, n == 1 ? "" : "s");
        fflush(stdout);
        await_readable(o->sigfd, -1); /* until SIGINT or SIGTERM */
    }
    for (i = 0; i < started; i++)
        coro_future_cancel(futures[i]);
    for (i = 0; i < started; i++) {
        int e = await_future(futures[i], -1, NULL);
        if (e && e != ECANCELED && !err)
            err = e;
        close(servers[i].lfd);
    }
    return err ? coro_fail(err) : NULL;
}

int main(int argc, char **argv)
{
    struct opts o = { 8080, 0, -1, 1 };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            printf("%s", usage);
            return 0;
        } else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            o.port = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--latency") && i + 1 < argc) {
            o.latency = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 0 || v > LOOPS_MAX) {
                fprintf(stderr, "%s", usage);
                return 2;
            }
            o.threads = (unsigned)v;
        } else {
            fprintf(stderr, "%s", usage);
            return 2;
        }
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Blocked before the loops' threads start, which inherit the mask:
     * the signals are the signalfd's, on main's loop. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    o.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    int err = coro_run_loops(o.threads, server_main, &o, NULL);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    unsigned long served = atomic_load(&http_requests_served);
    if (served)
        fprintf(stderr, "served %lu requests, %.2f us CPU each\n", served,
                cpu / (double)served * 1e6);
    return err ? 1 : 0;
}
