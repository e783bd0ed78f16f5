/* bare_epoll: the floor for bench/http.sh. The same answer as
 * bench/http_server (demo/http.c's keep-alive reply to a GET), from a
 * bare edge-triggered epoll loop in C: no coroutines, no timers, each
 * connection registered once when accepted, and per request one read and
 * one write. It is what an epoll server cannot do with fewer system calls,
 * so coro's server is measured as a fraction of it.
 *
 * It answers every complete request head in what one read brought with one
 * write (pipelined requests too), keeps an incomplete head for the next
 * read, and closes a connection whose head outgrows the buffer, or whose
 * reply does not fit the socket buffer at once (an 83-byte reply to a
 * client that reads: it never happens in the benchmark, and handling it
 * would only add code the floor does not need). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static const char usage[] =
    "usage: bare_epoll [--port N]\n"
    "Serves HTTP/1.1 on 127.0.0.1:N (default 8080) from one edge-triggered\n"
    "epoll loop without coroutines, answering every request as\n"
    "bench/http_server does, until killed.\n";

static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 3\r\n\r\nok\n";

#define BUF 4096
#define PIPELINED 32 /* replies one write can carry */

struct conn {
    int    fd;
    size_t len;
    char   buf[BUF];
};

static char replies[PIPELINED * (sizeof reply - 1)];

static int listen_on(int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 4096)) {
        fprintf(stderr, "bare_epoll: listen on %d: %s\n", port,
                strerror(errno));
        exit(1);
    }
    return s;
}

static void drop(struct conn *c)
{
    close(c->fd); /* leaves the epoll set with its file */
    free(c);
}

/* c is readable: one read, and one write for every complete head. */
static void serve(struct conn *c)
{
    for (;;) {
        size_t room = BUF - c->len;
        ssize_t n = read(c->fd, c->buf + c->len, room);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0 && !(n < 0 && errno == EINTR)) {
            drop(c);
            return;
        }
        if (n < 0)
            continue;
        c->len += (size_t)n;
        size_t heads = 0, used = 0;
        char *end;
        while ((end = memmem(c->buf + used, c->len - used, "\r\n\r\n", 4))) {
            used = (size_t)(end - c->buf) + 4;
            heads++;
        }
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
        while (heads > 0) {
            size_t k = heads < PIPELINED ? heads : PIPELINED;
            size_t want = k * (sizeof reply - 1);
            if (send(c->fd, replies, want, MSG_NOSIGNAL) != (ssize_t)want) {
                drop(c);
                return;
            }
            heads -= k;
        }
        if (c->len == BUF) {
            drop(c);
            return;
        }
        /* A short read drained the socket: the next bytes are a new edge. */
        if ((size_t)n < room)
            return;
    }
}

int main(int argc, char **argv)
{
    int port = 8080;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            printf("%s", usage);
            return 0;
        } else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else {
            fprintf(stderr, "%s", usage);
            return 2;
        }
    }
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (size_t i = 0; i < PIPELINED; i++)
        memcpy(replies + i * (sizeof reply - 1), reply, sizeof reply - 1);
    int lfd = listen_on(port);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev)) {
        perror("bare_epoll: epoll");
        return 1;
    }
    printf("serving on http://127.0.0.1:%d/\n", port);
    fflush(stdout);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c) {
                serve(c);
                continue;
            }
            int fd;
            while ((fd = accept4(lfd, NULL, NULL,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c = malloc(sizeof *c);
                struct epoll_event cev = { .events = EPOLLIN | EPOLLRDHUP |
                                                     EPOLLET,
                                           .data.ptr = c };
                if (!c || (c->fd = fd, c->len = 0,
                           epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev))) {
                    free(c);
                    close(fd);
                }
            }
        }
    }
}
