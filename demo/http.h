/* A small HTTP/1.1 server and client on coro's socket helpers, for scenario
 * E, its tests and the HTTP benchmark. Enough HTTP for that: GET, keep-alive,
 * Content-Length and chunked bodies. */
#ifndef CORO_DEMO_HTTP_H
#define CORO_DEMO_HTTP_H

#include <stdatomic.h>
#include <stddef.h>

/* Serves HTTP on listen_fd until the calling task is cancelled: each
 * connection in its own task, each request answered "ok\n" after latency
 * seconds (GET /chunked answers with a chunked body). Returns the error that
 * stopped it (ECANCELED when cancelled). Connection tasks are detached: they
 * end with their connection, or when the loop ends. */
int http_serve(int listen_fd, double latency);

/* Requests answered by http_serve in this process, by every loop that
 * serves (the benchmark reads it at the end). */
extern atomic_ulong http_requests_served;

struct http_response {
    int    status;      /* e.g. 200 */
    size_t body_len;    /* bytes of body received */
    char   body[256];   /* its first bytes, NUL-terminated */
};

/* GET url ("http://host[:port]/path") with one connection, within timeout
 * seconds in all. Returns 0 with *r filled; EPROTONOSUPPORT for a scheme
 * other than http; EINVAL for a malformed URL; EPROTO for a malformed
 * response; the errors of await_dial, await_read_until, await_read_full. */
int await_http_get(const char *url, double timeout, struct http_response *r);

#endif
