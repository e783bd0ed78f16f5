/* http_server: demo/http.c's server as a standalone program, for wrk.
 * Serves until SIGINT or SIGTERM, which it awaits on a signalfd like any
 * other fd. */
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
    "usage: http_server [--port N] [--latency S]\n"
    "Serves HTTP/1.1 on 127.0.0.1:N (default 8080), answering every request\n"
    "with a fixed 3-byte body after S seconds (default 0), until SIGINT or\n"
    "SIGTERM.\n";

struct opts {
    int    port;
    double latency;
    int    sigfd;
    int    lfd;
};

static void *serve(void *arg)
{
    struct opts *o = arg;
    int err = http_serve(o->lfd, o->latency);
    return err == ECANCELED ? NULL : coro_fail(err);
}

static void *server_main(void *arg)
{
    struct opts *o = arg;
    int err = coro_listen("127.0.0.1", o->port, 4096, &o->lfd);
    if (err) {
        fprintf(stderr, "http_server: listen on %d: %s\n", o->port,
                strerror(err));
        return coro_fail(err);
    }
    printf("serving on http://127.0.0.1:%d/\n", o->port);
    fflush(stdout);
    coro_task *t = coro_spawn(serve, o);
    await_readable(o->sigfd, -1); /* until SIGINT or SIGTERM */
    coro_cancel(t);
    await_task(t, NULL);
    close(o->lfd);
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = { 8080, 0, -1, -1 };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            printf("%s", usage);
            return 0;
        } else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            o.port = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--latency") && i + 1 < argc) {
            o.latency = atof(argv[++i]);
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
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    o.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    int err = coro_run(server_main, &o, NULL);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    if (http_requests_served)
        fprintf(stderr, "served %lu requests, %.2f us CPU each\n",
                http_requests_served, cpu / (double)http_requests_served * 1e6);
    return err ? 1 : 0;
}
