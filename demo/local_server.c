#include "local_server.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "coro.h"
#include "http.h"

struct local_server {
    pthread_t thread;
    int       listen_fd;
    int       stop_fd;  /* readable once local_server_stop was called */
    double    latency;
};

static void *accept_task(void *arg)
{
    struct local_server *s = arg;
    int err = http_serve(s->listen_fd, s->latency);
    return err == ECANCELED ? NULL : coro_fail(err);
}

/* The server loop's main: serve until told to stop. Returning cancels the
 * connection tasks still open. */
static void *server_main(void *arg)
{
    struct local_server *s = arg;
    coro_task *t = coro_spawn(accept_task, s);
    if (!t)
        return coro_fail(errno);
    await_readable(s->stop_fd, -1);
    coro_cancel(t);
    await_task(t, NULL);
    return NULL;
}

static void *server_thread(void *arg)
{
    coro_run(server_main, arg, NULL);
    return NULL;
}

struct local_server *local_server_start(double latency, int *port)
{
    struct local_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->latency = latency;
    s->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int err = s->stop_fd < 0 ? errno : 0;
    if (!err)
        err = coro_listen("127.0.0.1", 0, 1024, &s->listen_fd);
    if (!err)
        err = coro_sock_port(s->listen_fd, port);
    if (!err)
        err = pthread_create(&s->thread, NULL, server_thread, s);
    if (err) {
        if (s->stop_fd >= 0)
            close(s->stop_fd);
        if (s->listen_fd > 0)
            close(s->listen_fd);
        free(s);
        errno = err;
        return NULL;
    }
    return s;
}

void local_server_stop(struct local_server *s)
{
    uint64_t one = 1;
    ssize_t n = write(s->stop_fd, &one, sizeof one);
    (void)n;
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    close(s->stop_fd);
    free(s);
}
