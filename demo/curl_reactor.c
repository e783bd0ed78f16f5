/* Each socket curl wants watched goes into a private epoll instance; an
 * epoll fd is itself pollable, so the task awaits that one fd on the loop's
 * reactor, with curl's requested timeout as the await's timeout. When it
 * turns readable, the task collects the private events and hands them to
 * curl_multi_socket_action. One task, no task per socket to manage. */
#include "curl_reactor.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "coro.h"

struct driver {
    int  epfd;
    long timeout_ms; /* curl's timer: -1 none, 0 now */
};

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp,
                     void *socketp)
{
    struct driver *d = userp;
    (void)easy;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(d->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev = { .data.fd = s };
    if (what & CURL_POLL_IN)
        ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        ev.events |= EPOLLOUT;
    if (epoll_ctl(d->epfd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT)
        epoll_ctl(d->epfd, EPOLL_CTL_ADD, s, &ev);
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    ((struct driver *)userp)->timeout_ms = timeout_ms;
    return 0;
}

static void report(CURLM *multi, curl_done_fn done, void *arg)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE)
            done(msg->easy_handle, msg->data.result, arg);
}

int await_curl_multi(CURLM *multi, curl_done_fn done, void *arg)
{
    struct driver d = { epoll_create1(EPOLL_CLOEXEC), -1 };
    if (d.epfd < 0)
        return errno;
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, &d);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, &d);
    int running = 0, err = 0;
    curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    report(multi, done, arg);
    while (running && !err) {
        double timeout = d.timeout_ms < 0 ? -1 : d.timeout_ms / 1000.0;
        err = await_readable(d.epfd, timeout);
        if (err == ETIMEDOUT) {
            err = 0;
            curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0,
                                     &running);
        } else if (!err) {
            struct epoll_event ev[32];
            int n = epoll_wait(d.epfd, ev, 32, 0);
            for (int i = 0; i < n; i++) {
                int mask = (ev[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                           (ev[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                           (ev[i].events & (EPOLLERR | EPOLLHUP)
                                ? CURL_CSELECT_ERR
                                : 0);
                curl_multi_socket_action(multi, ev[i].data.fd, mask,
                                         &running);
            }
        }
        report(multi, done, arg);
    }
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, NULL);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, NULL);
    close(d.epfd);
    return err;
}
