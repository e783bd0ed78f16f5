#include "http.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "coro.h"

#define HEAD_MAX 8192        /* a response head the client accepts */
#define REQUEST_MAX 4096     /* a request head the server accepts */
#define IDLE_TIMEOUT 60.0    /* a keep-alive connection with no request */

/* The value of header `name` in an HTTP head, or NULL. */
static const char *header(const char *head, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line && line[2] != '\r';
         line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, name, n) == 0 && line[2 + n] == ':') {
            const char *v = line + 3 + n;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
    }
    return NULL;
}

static int value_is(const char *value, const char *word)
{
    return value && strncasecmp(value, word, strlen(word)) == 0;
}

/* ---------------------------------------------------------------------- */
/* Server                                                                 */
/* ---------------------------------------------------------------------- */

atomic_ulong http_requests_served;

/* A connection. An idle keep-alive connection waits for its next request
 * in a shallow frame with no buffer at all, so it costs one stack page;
 * only a connection with data to parse has a read buffer, on the stack of
 * serve_ready. The rare request head cut across reads waits in `spill`. */
struct conn {
    int    fd;
    double latency;
    char  *spill;   /* an incomplete request head, or NULL */
    size_t spilled; /* its length */
};

#define REPLY_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"

/* The replies, built once: [chunked][connection header]. */
static const char *const replies[2][3] = {
    { REPLY_HEAD "Content-Length: 3\r\n\r\nok\n",
      REPLY_HEAD "Content-Length: 3\r\nConnection: close\r\n\r\nok\n",
      REPLY_HEAD "Content-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n" },
    { REPLY_HEAD "Transfer-Encoding: chunked\r\n\r\n"
                 "3\r\nok\n\r\n6\r\nchunks\r\n0\r\n\r\n",
      REPLY_HEAD "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                 "3\r\nok\n\r\n6\r\nchunks\r\n0\r\n\r\n",
      REPLY_HEAD "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
                 "3\r\nok\n\r\n6\r\nchunks\r\n0\r\n\r\n" },
};

static const char bad_request[] =
    "HTTP/1.1 400 Bad Request\r\n"
    "Content-Length: 0\r\n"
    "Connection: close\r\n"
    "\r\n";

/* Requests parsed out of buf[0..*len), consumed as they are answered. */
struct reqbuf {
    char   data[REQUEST_MAX + 1];
    size_t len;
};

/* Drops n bytes of request body: what the buffer holds, then the socket. */
static int skip_body(int fd, struct reqbuf *b, size_t head_len,
                     unsigned long n)
{
    size_t buffered = b->len - head_len;
    size_t from_buf = n < buffered ? n : buffered;
    memmove(b->data + head_len, b->data + head_len + from_buf,
            buffered - from_buf);
    b->len -= from_buf;
    n -= from_buf;
    while (n > 0) {
        char scratch[512];
        size_t got, want = n < sizeof scratch ? n : sizeof scratch;
        int err = await_read_full(fd, scratch, want, IDLE_TIMEOUT, &got);
        if (err)
            return err;
        n -= got;
    }
    return 0;
}

/* Answers the request whose head is b->data[0..head_len) and takes it out
 * of the buffer: 0 to keep the connection, or why to close it. */
static int answer(struct conn *c, struct reqbuf *b, size_t head_len)
{
    char *head = b->data;
    char saved = head[head_len];
    head[head_len] = '\0';
    if (strncmp(head, "GET ", 4) != 0 && strncmp(head, "POST ", 5) != 0 &&
        strncmp(head, "HEAD ", 5) != 0) {
        await_write_all(c->fd, bad_request, sizeof bad_request - 1, 5);
        return EPROTO;
    }
    const char *length = header(head, "Content-Length");
    /* HTTP/1.0 closes unless asked not to; HTTP/1.1 keeps unless asked. */
    const char *connection = header(head, "Connection");
    int http10 = strstr(head, " HTTP/1.0\r\n") != NULL;
    int close_after = value_is(connection, "close") ||
                      (http10 && !value_is(connection, "keep-alive"));
    int chunked = strncmp(head, "GET /chunked ", 13) == 0;
    unsigned long body = length ? strtoul(length, NULL, 10) : 0;
    head[head_len] = saved;
    int err = skip_body(c->fd, b, head_len, body);
    if (err)
        return err;
    memmove(b->data, b->data + head_len, b->len - head_len);
    b->len -= head_len;
    if (c->latency > 0 && (err = await_sleep(c->latency)) != 0)
        return err;
    const char *reply = replies[chunked][close_after ? 1 : http10 ? 2 : 0];
    err = await_write_all(c->fd, reply, strlen(reply), 30);
    atomic_fetch_add_explicit(&http_requests_served, 1, memory_order_relaxed);
    return err ? err : close_after ? EPIPE : 0;
}

/* The end of the first request head in the buffer, or 0. */
static size_t head_end(const struct reqbuf *b)
{
    const char *end = memmem(b->data, b->len, "\r\n\r\n", 4);
    return end ? (size_t)(end - b->data) + 4 : 0;
}

/* c has data: reads it and answers every complete request; an incomplete
 * head goes to c->spill. 0 to keep the connection, or why to close it. */
static int serve_ready(struct conn *c)
{
    struct reqbuf b;
    if (c->spilled)
        memcpy(b.data, c->spill, c->spilled);
    b.len = c->spilled;
    free(c->spill);
    c->spill = NULL;
    c->spilled = 0;
    size_t got;
    int err = await_read(c->fd, b.data + b.len, REQUEST_MAX - b.len,
                         IDLE_TIMEOUT, &got);
    if (err || got == 0)
        return err ? err : EPIPE; /* EPIPE: the client closed */
    b.len += got;
    size_t end;
    while ((end = head_end(&b)) != 0)
        if ((err = answer(c, &b, end)) != 0)
            return err;
    if (b.len == REQUEST_MAX) {
        await_write_all(c->fd, bad_request, sizeof bad_request - 1, 5);
        return EPROTO;
    }
    if (b.len > 0) {
        if (!(c->spill = malloc(b.len)))
            return ENOMEM;
        memcpy(c->spill, b.data, b.len);
        c->spilled = b.len;
    }
    return 0;
}

static void *serve_conn(void *arg)
{
    struct conn *c = arg;
    int err = 0;
    /* On io_uring the read itself waits, in the ring, at no system call:
     * waiting for readiness first would only add a wake-up. */
    const char *io = coro_io_backend();
    int ring = io && strcmp(io, "io_uring") == 0;
    while (!err) {
        /* Nothing pending: wait here, in a shallow frame, rather than try
         * a read that would only say EAGAIN. */
        if (!c->spill && !ring)
            err = await_readable(c->fd, IDLE_TIMEOUT);
        if (!err)
            err = serve_ready(c);
    }
    free(c->spill);
    coro_close(c->fd); /* the promise coro_fd_keep asked */
    free(c);
    return NULL;
}

int http_serve(int listen_fd, double latency)
{
    for (;;) {
        int fd;
        int err = await_accept(listen_fd, -1, &fd);
        if (err == EMFILE || err == ENFILE) {
            await_sleep(0.01); /* out of fds: let connections end */
            continue;
        }
        if (err)
            return err;
        struct conn *c = malloc(sizeof *c);
        coro_task *t = c ? coro_spawn(serve_conn, c) : NULL;
        if (!t) {
            free(c);
            close(fd);
            continue;
        }
        *c = (struct conn){ fd, latency, NULL, 0 };
        /* One registration for the connection's life rather than an
         * epoll_ctl per request; failing, the waits arm their own. */
        (void)coro_fd_keep(fd);
        coro_detach(t);
    }
}

/* ---------------------------------------------------------------------- */
/* Client                                                                 */
/* ---------------------------------------------------------------------- */

struct url {
    char host[256];
    int  port;
    char path[1024];
};

static int parse_url(const char *s, struct url *u)
{
    if (strncmp(s, "https://", 8) == 0)
        return EPROTONOSUPPORT;
    if (strncmp(s, "http://", 7) != 0)
        return strstr(s, "://") ? EPROTONOSUPPORT : EINVAL;
    s += 7;
    size_t hlen = strcspn(s, ":/");
    if (hlen == 0 || hlen >= sizeof u->host)
        return EINVAL;
    memcpy(u->host, s, hlen);
    u->host[hlen] = '\0';
    s += hlen;
    u->port = 80;
    if (*s == ':') {
        char *end;
        long port = strtol(s + 1, &end, 10);
        if (end == s + 1 || port <= 0 || port > 65535)
            return EINVAL;
        u->port = (int)port;
        s = end;
    }
    if (*s && *s != '/')
        return EINVAL;
    if (strlen(*s ? s : "/") >= sizeof u->path)
        return EINVAL;
    strcpy(u->path, *s ? s : "/");
    return 0;
}

/* Seconds left until deadline, or ETIMEDOUT's cue: a negative number. */
static double left(double deadline)
{
    return deadline < 0 ? -1 : deadline - coro_now() > 0
                                   ? deadline - coro_now()
                                   : 0;
}

/* Keeps the first bytes of the body, counts all of them. */
static void keep(struct http_response *r, const char *data, size_t n)
{
    size_t cap = sizeof r->body - 1;
    if (r->body_len < cap) {
        size_t take = n < cap - r->body_len ? n : cap - r->body_len;
        memcpy(r->body + r->body_len, data, take);
        r->body[r->body_len + take] = '\0';
    }
    r->body_len += n;
}

static int read_exactly(int fd, size_t n, double deadline,
                        struct http_response *r)
{
    char buf[4096];
    while (n > 0) {
        size_t got, want = n < sizeof buf ? n : sizeof buf;
        int err = await_read_full(fd, buf, want, left(deadline), &got);
        if (err)
            return err;
        keep(r, buf, got);
        n -= got;
    }
    return 0;
}

static int read_chunked(int fd, double deadline, struct http_response *r)
{
    for (;;) {
        char line[64];
        size_t got;
        int err = await_read_until(fd, line, sizeof line - 1, "\r\n",
                                   left(deadline), &got);
        if (err)
            return err == ENOBUFS ? EPROTO : err;
        line[got] = '\0';
        char *end;
        unsigned long size = strtoul(line, &end, 16);
        if (end == line)
            return EPROTO;
        if (size == 0) /* trailers, then the blank line */
            for (;;) {
                err = await_read_until(fd, line, sizeof line, "\r\n",
                                       left(deadline), &got);
                if (err || got == 2)
                    return err;
            }
        if ((err = read_exactly(fd, size, deadline, r)) != 0 ||
            (err = await_read_full(fd, line, 2, left(deadline), &got)) != 0)
            return err;
    }
}

static int read_to_end(int fd, double deadline, struct http_response *r)
{
    char buf[4096];
    size_t got;
    int err;
    while ((err = await_read(fd, buf, sizeof buf, left(deadline), &got)) ==
               0 &&
           got > 0)
        keep(r, buf, got);
    return err;
}

static int get(int fd, const struct url *u, double deadline,
               struct http_response *r)
{
    char head[HEAD_MAX + 1];
    int n = snprintf(head, sizeof head,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: coro-demo\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n",
                     u->path, u->host);
    size_t got;
    int err = await_write_all(fd, head, (size_t)n, left(deadline));
    if (!err)
        err = await_read_until(fd, head, HEAD_MAX, "\r\n\r\n", left(deadline),
                               &got);
    if (err)
        return err == ENOBUFS ? EPROTO : err;
    head[got] = '\0';
    if (sscanf(head, "HTTP/1.%*d %d", &r->status) != 1)
        return EPROTO;
    const char *length = header(head, "Content-Length");
    if (value_is(header(head, "Transfer-Encoding"), "chunked"))
        return read_chunked(fd, deadline, r);
    if (length)
        return read_exactly(fd, (size_t)strtoull(length, NULL, 10), deadline,
                            r);
    return read_to_end(fd, deadline, r);
}

int await_http_get(const char *url, double timeout, struct http_response *r)
{
    struct url u;
    memset(r, 0, sizeof *r);
    int err = parse_url(url, &u);
    if (err)
        return err;
    double deadline = timeout < 0 ? -1 : coro_now() + timeout;
    int fd;
    err = await_dial(u.host, u.port, left(deadline), &fd);
    if (err)
        return err;
    err = get(fd, &u, deadline, r);
    close(fd);
    return err;
}
