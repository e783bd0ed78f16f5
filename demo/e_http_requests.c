/* Scenario E: twenty HTTP requests.
 *
 * get_response() sends one GET with a blocking client (libcurl, the C
 * counterpart of the tutorial's blocking HTTP library) and returns the
 * status and the seconds it took. One after another, twenty requests take
 * twenty latencies; sent to the worker threads with await_blocking, all at
 * once, they take about one; and so they do natively, as twenty tasks on
 * non-blocking sockets on the loop's reactor (demo/http.c's client; for
 * https, libcurl's multi interface driven by the reactor).
 *
 * By default a local server on 127.0.0.1 answers every request after
 * --latency seconds, so the demo needs no network; --url points it at any
 * other server (https too, wherever there is a network).
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "coro.h"
#include "curl_reactor.h"
#include "http.h"
#include "local_server.h"

#define REQUESTS 20

static const char *const variants[] = { "sync", "executor", "native", NULL };

static const struct demo_info info = {
    .name = "e_http_requests",
    .about = "Scenario E: twenty HTTP GET requests, each printing\n"
             "<status> : <seconds>, then total: <seconds>. sync sends them\n"
             "one after another with a blocking client (libcurl): twenty\n"
             "latencies. executor runs the same blocking client on the\n"
             "worker threads with await_blocking, twenty at once: about one\n"
             "latency. native runs twenty tasks on non-blocking sockets on\n"
             "the reactor (https: libcurl's multi interface on the reactor):\n"
             "about one latency, on one thread. A local server answers after\n"
             "--latency seconds unless --url names another.",
    .variants = variants,
    .flags = DEMO_HTTP,
};

static struct demo_opts opts;

/* The tutorial's keyword arguments, get_response(url, timeout=...), in the
 * only form a C function pointer can carry them: a struct. */
struct request {
    const char *url;
    double      timeout; /* seconds for the whole request */
};

struct response {
    long   status;       /* HTTP status, 0 if the request failed */
    double seconds;      /* how long it took */
    char   error[CURL_ERROR_SIZE];
};

struct call {
    struct request  request;
    struct response response;
    double          started; /* native https: when curl got it */
};

static size_t discard(char *data, size_t size, size_t n, void *user)
{
    (void)data;
    (void)user;
    return size * n;
}

/* A curl handle for the call, its options from the request. */
static CURL *easy_for(struct call *c)
{
    struct response *r = &c->response;
    r->status = 0;
    r->error[0] = '\0';
    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(r->error, sizeof r->error, "curl_easy_init failed");
        return NULL;
    }
    curl_easy_setopt(curl, CURLOPT_URL, c->request.url);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                     (long)(c->request.timeout * 1000));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L); /* we run on threads */
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(curl, CURLOPT_PRIVATE, c);
    return curl;
}

/* def get_response(url, timeout): a plain blocking function. */
static void *get_response(void *arg)
{
    struct call *c = arg;
    struct response *r = &c->response;
    double t0 = demo_now();
    CURL *curl = easy_for(c);
    if (!curl)
        return r;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(curl);
    r->seconds = demo_now() - t0;
    return r;
}

static void print_response(const struct response *r)
{
    if (r->status)
        printf("%ld : %.3f\n", r->status, r->seconds);
    else
        printf("error : %.3f (%s)\n", r->seconds, r->error);
}

/* The worker-thread variant: each request a task that hands the blocking
 * client to await_blocking (loop.run_in_executor). */
static void *request_task(void *arg)
{
    int err = await_blocking(get_response, arg, NULL);
    return err ? coro_fail(err) : NULL;
}

static void *executor_main(void *arg)
{
    struct call *calls = arg;
    coro_task *t[REQUESTS];
    /* As a ThreadPoolExecutor(max_workers=20): all twenty at once. */
    coro_set_workers(REQUESTS);
    for (int i = 0; i < REQUESTS; i++)
        t[i] = coro_spawn(request_task, &calls[i]);
    int err = await_gather(t, REQUESTS, NULL, NULL);
    return err ? coro_fail(err) : NULL;
}

/* The native variant for http: each request a task running demo/http.c's
 * client, on non-blocking sockets, all on this thread. */
static void *native_request(void *arg)
{
    struct call *c = arg;
    struct http_response r;
    double t0 = coro_now();
    int err = await_http_get(c->request.url, c->request.timeout, &r);
    c->response.seconds = coro_now() - t0;
    c->response.status = err ? 0 : r.status;
    if (err)
        snprintf(c->response.error, sizeof c->response.error, "%s",
                 strerror(err));
    return err ? coro_fail(err) : NULL;
}

static void curl_done(CURL *easy, CURLcode result, void *arg)
{
    struct call *c;
    (void)arg;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&c);
    c->response.seconds = demo_now() - c->started;
    if (result == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &c->response.status);
}

/* The native variant for https: libcurl's multi interface, its sockets and
 * timer awaited on the reactor by this one task. */
static int native_https(struct call *calls)
{
    CURLM *multi = curl_multi_init();
    CURL *easy[REQUESTS] = { NULL };
    int err = multi ? 0 : ENOMEM;
    for (int i = 0; i < REQUESTS && !err; i++) {
        easy[i] = easy_for(&calls[i]);
        calls[i].started = demo_now();
        if (!easy[i] || curl_multi_add_handle(multi, easy[i]) != CURLM_OK)
            err = ENOMEM;
    }
    if (!err)
        err = await_curl_multi(multi, curl_done, NULL);
    for (int i = 0; i < REQUESTS; i++) {
        if (easy[i]) {
            curl_multi_remove_handle(multi, easy[i]);
            curl_easy_cleanup(easy[i]);
        }
    }
    curl_multi_cleanup(multi);
    return err;
}

static void *native_main(void *arg)
{
    struct call *calls = arg;
    if (strncmp(calls[0].request.url, "https://", 8) == 0) {
        int err = native_https(calls);
        return err ? coro_fail(err) : NULL;
    }
    coro_task *t[REQUESTS];
    for (int i = 0; i < REQUESTS; i++)
        t[i] = coro_spawn(native_request, &calls[i]);
    int err = await_gather(t, REQUESTS, NULL, NULL);
    return err ? coro_fail(err) : NULL;
}

/* Expected: from the local server's latency, or, against another server,
 * from the requests' own times: their sum one after another, their longest
 * all at once. */
static double expected(const struct call *calls, int all_at_once)
{
    if (!opts.url)
        return (all_at_once ? 1 : REQUESTS) * opts.latency * opts.scale;
    double sum = 0, longest = 0;
    for (int i = 0; i < REQUESTS; i++) {
        sum += calls[i].response.seconds;
        if (calls[i].response.seconds > longest)
            longest = calls[i].response.seconds;
    }
    return all_at_once ? longest : sum;
}

/* Runs a variant that sends all twenty at once, then prints their
 * responses in order. */
static int run_concurrently(const char *name, const char *what, coro_fn fn,
                            struct call *calls)
{
    if (!demo_want(&opts, name))
        return 0;
    demo_heading(name, what);
    double t0 = demo_now();
    int err = coro_run(fn, calls, NULL);
    double took = demo_now() - t0;
    int failed = err != 0;
    for (int i = 0; i < REQUESTS; i++) {
        print_response(&calls[i].response);
        failed |= calls[i].response.status == 0;
    }
    printf("total: %.3f\n", took);
    demo_summary(name, took, expected(calls, 1));
    return failed;
}

static int run(const char *url)
{
    static struct call calls[REQUESTS];
    for (int i = 0; i < REQUESTS; i++)
        calls[i].request = (struct request){ url, 30.0 };
    int failed = 0;

    if (demo_want(&opts, "sync")) {
        demo_heading("sync", "twenty requests one after another");
        double t0 = demo_now();
        for (int i = 0; i < REQUESTS; i++) {
            double start = demo_now();
            timeline_row("request %d", i + 1);
            get_response(&calls[i]);
            timeline_blocked(start, demo_now());
            print_response(&calls[i].response);
            failed |= calls[i].response.status == 0;
        }
        double took = demo_now() - t0;
        printf("total: %.3f\n", took);
        demo_summary("sync", took, expected(calls, 0));
    }
    failed |= run_concurrently("executor",
                               "twenty requests on the worker threads",
                               executor_main, calls);
    failed |= run_concurrently("native",
                               "twenty requests on the reactor, one thread",
                               native_main, calls);
    return failed;
}

int main(int argc, char **argv)
{
    demo_parse(argc, argv, &info, &opts);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "%s: curl_global_init failed\n", info.name);
        return 1;
    }
    struct local_server *server = NULL;
    char url[64];
    if (!opts.url) {
        int port;
        server = local_server_start(opts.latency * opts.scale, &port);
        if (!server) {
            perror("e_http_requests: local server");
            return 1;
        }
        snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
        printf("local server on %s answering after %.3f s\n", url,
               opts.latency * opts.scale);
    }
    int failed = run(opts.url ? opts.url : url);
    if (server)
        local_server_stop(server);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
