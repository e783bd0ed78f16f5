/* Scenario E: twenty HTTP requests.
 *
 * get_google_response() sends one GET with a blocking client (libcurl, the
 * C counterpart of the tutorial's requests library) and returns the status
 * and the seconds it took. One after another, twenty requests take twenty
 * latencies. Sent to the worker threads (run_in_executor(None, ...), coro's
 * await_blocking) all at once, they take one latency per round of the pool:
 * asyncio's default pool has min(32, CPUs + 4) threads, and so has coro's,
 * so on a 2-CPU machine six requests run at a time and twenty take four
 * rounds (--workers 16 gives the tutorial's 0.575 s, two rounds). The
 * tutorial's last program passes keyword arguments (timeout=0.5,
 * stream=True) to the blocking call through a wrapper function: the
 * wrapper variant does the same through a struct. Last, natively, as
 * twenty tasks on non-blocking sockets on the loop's reactor (demo/http.c's
 * client; for https, libcurl's multi interface driven by the reactor):
 * about one latency, on one thread. And hooked: the sync variant's
 * blocking client, unchanged, in twenty tasks, with the program linked to
 * coro's system-call hooks (hook.c, README "Hooks"): libcurl's poll parks
 * the calling task on the reactor instead of blocking the thread (its
 * sockets are non-blocking, so its connect, send and recv never wait), and
 * the twenty overlap on one thread too: about one latency, and no worker
 * threads. Every variant that runs on a loop says how many threads the
 * process had while its requests ran. (curl resolves 127.0.0.1 and
 * localhost itself; a host name in --url makes its threaded resolver start
 * a thread for each lookup, for a moment, in hooked and native https
 * alike: the hooks see its getaddrinfo on that thread, not in a
 * coroutine.) The hooks overlap waits, not work: over https each
 * curl_easy_perform loads the CA bundle afresh, about 40 ms of CPU here,
 * and hooked does twenty of those one after another on its one thread.
 *
 * By default a local server on 127.0.0.1 answers every request after
 * --latency seconds, so the demo needs no network; --url points it at any
 * other server (https too, wherever there is a network).
 */
#include <curl/curl.h>
#include <dirent.h>
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

static const char *const variants[] = { "sync", "executor", "wrapper",
                                        "native", "hooked", NULL };

static const struct demo_info info = {
    .name = "e_http_requests",
    .about = "Scenario E: twenty HTTP GET requests, each printing\n"
             "<status> :  <seconds>, then total: <seconds>. sync sends them\n"
             "one after another with a blocking client (libcurl): twenty\n"
             "latencies.\n"
             "executor runs the same blocking client on coro's worker\n"
             "threads with await_blocking, twenty at once: one latency per\n"
             "round of the pool (min(32, CPUs + 4) threads, as asyncio's\n"
             "default). wrapper does the same, passing timeout 0.5 and\n"
             "stream to the client through a wrapper, as the tutorial's\n"
             "keyword arguments (0.5 s whatever --scale says: a slower\n"
             "answer fails). native runs twenty tasks on non-blocking\n"
             "sockets on the reactor (https: libcurl's multi interface on\n"
             "the reactor): about one latency, on one thread. hooked runs\n"
             "sync's blocking client unchanged in twenty tasks, with coro's\n"
             "system-call hooks linked in (README \"Hooks\"): curl's waits\n"
             "park its task on the reactor, so about one latency again, and\n"
             "no worker threads. The variants on a loop print the most\n"
             "threads the process had while their requests ran. A local\n"
             "server answers after --latency seconds unless --url names\n"
             "another.",
    .original = "E's tutorial prints no Korean: the lines stay as they are.",
    .variants = variants,
    .flags = DEMO_HTTP | DEMO_WORKERS,
};

static struct demo_opts opts;

/* The URL every request asks for: the tutorial's 'https://www.google.com'. */
static const char *url;

/* requests.get's keyword arguments that the tutorial passes. */
struct get_options {
    double timeout; /* seconds for the whole request */
    int    stream;  /* stream=True: return once the headers are in and
                       leave the body unread */
};

/* What requests.get returns: here the status code, and why it is 0. */
struct response {
    long   status_code; /* 0 if the request failed */
    double seconds;     /* how long the client itself took */
    char   error[CURL_ERROR_SIZE];
};

/* One of the twenty requests: what get_google_response returns, and the
 * keyword arguments the wrapper variant sends it with. */
struct call {
    struct get_options kwargs;
    long               status_code;
    double             taken_time; /* as the coroutine measured it */
    double             service;    /* as the client measured it */
    char               error[CURL_ERROR_SIZE];
    double             started;    /* native https: when curl got it */
};

static struct call calls[REQUESTS];

/* Clears what the last variant left in calls, so that a request this one
 * never got to send says so instead of repeating the last one's line. */
static void forget_calls(void)
{
    memset(calls, 0, sizeof calls);
    for (int i = 0; i < REQUESTS; i++)
        snprintf(calls[i].error, sizeof calls[i].error, "not sent");
}

/* requests.get(url) without keyword arguments waits for ever; the demo
 * gives up after 30 s rather than hang on a dead server. */
static const struct get_options no_kwargs = { .timeout = 30.0 };

/* The body is not kept; with stream=True the first bytes of it stop the
 * transfer (a short count makes curl end it), as requests with stream=True
 * returns before reading the body. */
static size_t body(char *data, size_t size, size_t n, void *options)
{
    (void)data;
    return ((const struct get_options *)options)->stream ? 0 : size * n;
}

/* A curl handle for one GET of url with these options; curl's error
 * message goes to error. */
static CURL *easy_for(const struct get_options *o, char *error)
{
    error[0] = '\0';
    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(error, CURL_ERROR_SIZE, "curl_easy_init failed");
        return NULL;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(o->timeout * 1000));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L); /* we run on threads */
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, (void *)o);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    return curl;
}

/* The status of a finished transfer, 0 if it failed. A transfer that
 * stream=True stopped at its body succeeded. */
static long status_of(CURL *curl, CURLcode result,
                      const struct get_options *o, char *error)
{
    long status = 0;
    if (result == CURLE_OK || (result == CURLE_WRITE_ERROR && o->stream)) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        error[0] = '\0';
    }
    return status;
}

/* requests.get(url, **options): a plain blocking function. Returns a
 * response to free, or NULL if there was no memory for one. */
static struct response *http_get(const struct get_options *o)
{
    struct response *res = malloc(sizeof *res);
    if (!res)
        return NULL;
    double start = demo_now();
    res->status_code = 0;
    CURL *curl = easy_for(o, res->error);
    if (curl) {
        CURLcode result = curl_easy_perform(curl);
        res->status_code = status_of(curl, result, o, res->error);
        curl_easy_cleanup(curl);
    }
    res->seconds = demo_now() - start;
    return res;
}

/* requests.get, as run_in_executor(None, requests.get, url) calls it. The
 * URL is the same for every request, so it is not passed. */
static void *requests_get(void *arg)
{
    (void)arg;
    return http_get(&no_kwargs);
}

/* Keeps what get_google_response returns from a response, and frees it. */
static void keep(struct call *c, struct response *res)
{
    c->status_code = res ? res->status_code : 0;
    c->service = res ? res->seconds : 0;
    snprintf(c->error, sizeof c->error, "%s", res ? res->error : "no memory");
    free(res);
}

/* print(status_code, ': ', taken_time): print puts a space between its
 * arguments, hence the two spaces after the colon. */
static void print_call(const struct call *c)
{
    char t[32];
    demo_repr(c->taken_time, t);
    if (c->status_code)
        printf("%ld :  %s\n", c->status_code, t);
    else
        printf("error :  %s (%s)\n", t, c->error);
}

/* def get_google_response():
 *     start = time.time()
 *     res = requests.get(url)
 *     return res.status_code, time.time() - start */
static void get_google_response_sync(struct call *c)
{
    double start = demo_now();
    keep(c, requests_get(NULL));
    c->taken_time = demo_now() - start;
}

/* async def get_google_response(loop):
 *     start = time.time()
 *     res = await loop.run_in_executor(None, requests.get, url)
 *     return res.status_code, time.time() - start
 * The clock starts before the job waits for a free worker, as the
 * tutorial's does: a request of the second round takes two latencies. */
static void *get_google_response(void *arg)
{
    struct call *c = arg;
    double start = demo_now();
    void *res = NULL;
    int err = await_blocking(requests_get, NULL, &res);
    c->taken_time = demo_now() - start;
    keep(c, res); /* cancelled after requests_get ran: still ours */
    return err ? coro_fail(err) : NULL;
}

/* def requests_wrapper():
 *     return requests.get(url, timeout=timeout, stream=stream)
 * A Python closure sees get_google_response's timeout and stream; a C
 * function sees only its one argument, so they come in a struct. */
static void *requests_wrapper(void *kwargs)
{
    return http_get(kwargs);
}

/* async def get_google_response(loop, timeout, stream):
 *     start = time.time()
 *     res = await loop.run_in_executor(None, requests_wrapper)
 *     return res.status_code, time.time() - start */
static void *get_google_response_kw(void *arg)
{
    struct call *c = arg;
    double start = demo_now();
    void *res = NULL;
    int err = await_blocking(requests_wrapper, &c->kwargs, &res);
    c->taken_time = demo_now() - start;
    keep(c, res);
    return err ? coro_fail(err) : NULL;
}

/* tasks = [request(...) for _ in range(20)]
 * loop.run_until_complete(asyncio.wait(tasks)): gather waits for them all
 * as well, and collects them. */
static void *gather_requests(coro_fn request)
{
    int err = demo_set_workers(&opts); /* --workers, if given */
    if (err)
        return coro_fail(err);
    coro_task *t[REQUESTS];
    for (int i = 0; i < REQUESTS; i++)
        t[i] = coro_spawn(request, &calls[i]);
    err = await_gather(t, REQUESTS, NULL, NULL);
    return err ? coro_fail(err) : NULL;
}

/* [get_google_response(loop) for _ in range(20)] */
static void *executor_main(void *arg)
{
    (void)arg;
    return gather_requests(get_google_response);
}

/* [get_google_response(loop, timeout=0.5, stream=True) for ...] */
static void *wrapper_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < REQUESTS; i++)
        calls[i].kwargs = (struct get_options){ .timeout = 0.5, .stream = 1 };
    return gather_requests(get_google_response_kw);
}

/* The native variant for http: each request a task running demo/http.c's
 * client, on non-blocking sockets, all on this thread. */
static void *native_request(void *arg)
{
    struct call *c = arg;
    struct http_response r;
    double t0 = coro_now();
    int err = await_http_get(url, no_kwargs.timeout, &r);
    c->taken_time = c->service = coro_now() - t0;
    c->status_code = err ? 0 : r.status;
    snprintf(c->error, sizeof c->error, "%s", err ? strerror(err) : "");
    return err ? coro_fail(err) : NULL;
}

static void curl_done(CURL *easy, CURLcode result, void *arg)
{
    struct call *c;
    (void)arg;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&c);
    c->taken_time = c->service = demo_now() - c->started;
    c->status_code = status_of(easy, result, &no_kwargs, c->error);
}

/* The native variant for https: libcurl's multi interface, its sockets and
 * timer awaited on the reactor by this one task. */
static int native_https(void)
{
    CURLM *multi = curl_multi_init();
    CURL *easy[REQUESTS] = { NULL };
    int err = multi ? 0 : ENOMEM;
    for (int i = 0; i < REQUESTS && !err; i++) {
        calls[i].status_code = 0;
        easy[i] = easy_for(&no_kwargs, calls[i].error);
        calls[i].started = demo_now();
        if (easy[i])
            curl_easy_setopt(easy[i], CURLOPT_PRIVATE, &calls[i]);
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
    (void)arg;
    if (strncmp(url, "https://", 8) == 0) {
        int err = native_https();
        return err ? coro_fail(err) : NULL;
    }
    coro_task *t[REQUESTS];
    for (int i = 0; i < REQUESTS; i++)
        t[i] = coro_spawn(native_request, &calls[i]);
    int err = await_gather(t, REQUESTS, NULL, NULL);
    return err ? coro_fail(err) : NULL;
}

/* No Python twin: this is coro's answer to "just make requests.get not
 * block". The sync variant's get_google_response, unchanged, in a task:
 * with the hooks linked in, curl_easy_perform's poll parks the task on
 * the reactor. curl's deepest frames here took 7.6 KiB of stack over
 * http, 8.8 KiB over https (coro_stack_high_water): 256 KiB leaves room
 * for other libcurl builds and TLS libraries. */
static void *hooked_request(void *arg)
{
    get_google_response_sync(arg);
    return NULL;
}

static void *hooked_main(void *arg)
{
    (void)arg;
    static const coro_attr roomy = { .stack_size = 256 * 1024 };
    coro_task *t[REQUESTS];
    for (int i = 0; i < REQUESTS; i++)
        t[i] = coro_spawn_attr(&roomy, hooked_request, &calls[i]);
    int err = await_gather(t, REQUESTS, NULL, NULL);
    return err ? coro_fail(err) : NULL;
}

/* ---- how many threads did it take ---- */

/* The process's threads, as /proc/self/status's Threads: counts them, and
 * how many of them are coro's worker threads (named "coro-worker"). */
struct threads {
    int all;
    int workers;
};

static struct threads threads_now(void)
{
    struct threads n = { 0, 0 };
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return n;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        n.all++;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f))
                comm[0] = '\0';
            fclose(f);
        }
        n.workers += strcmp(comm, "coro-worker\n") == 0;
    }
    closedir(d);
    return n;
}

/* The most threads seen while a variant's requests ran. */
static struct threads threads_most;

/* A task beside the requests that looks every 2 ms until it is
 * cancelled: often enough to see a thread that lives as long as a
 * request. */
static void *count_threads(void *arg)
{
    (void)arg;
    do {
        struct threads n = threads_now();
        if (n.all > threads_most.all)
            threads_most = n;
    } while (await_sleep(0.002) == 0);
    return NULL;
}

/* A variant's main (arg points to it), with count_threads beside it. */
static void *counting_threads(void *arg)
{
    const coro_fn *main_fn = arg;
    threads_most = (struct threads){ 0, 0 };
    coro_task *counter = coro_spawn(count_threads, NULL);
    void *result = (*main_fn)(NULL);
    if (counter) {
        coro_cancel(counter);
        await_task(counter, NULL);
    }
    return result;
}

/* threads: 8 (this one, the local server's and 6 coro-workers) */
static void print_threads(int local_server)
{
    struct threads n = threads_most;
    const char *part[4];
    char workers[32], others[32];
    int k = 0;
    part[k++] = "this one";
    if (local_server)
        part[k++] = "the local server's";
    if (n.workers) {
        snprintf(workers, sizeof workers, "%d coro-worker%s", n.workers,
                 n.workers == 1 ? "" : "s");
        part[k++] = workers;
    }
    int rest = n.all - 1 - local_server - n.workers;
    if (rest > 0) {
        snprintf(others, sizeof others, "%d other%s", rest,
                 rest == 1 ? "" : "s");
        part[k++] = others;
    }
    printf("threads: %d (", n.all);
    for (int i = 0; i < k; i++)
        printf("%s%s", i == 0 ? "" : i == k - 1 ? " and " : ", ", part[i]);
    printf(")\n");
}

/* Expected seconds for twenty requests run `workers` at a time (1: one
 * after another; REQUESTS: all at once): from the local server's latency,
 * one per round; or, against another server, from the times the client
 * itself took, each request going to the first worker free. */
static double expected(unsigned workers)
{
    if (!opts.url) {
        int rounds = (REQUESTS + (int)workers - 1) / (int)workers;
        return rounds * opts.latency * opts.scale;
    }
    double service[REQUESTS];
    for (int i = 0; i < REQUESTS; i++)
        service[i] = calls[i].service;
    return demo_makespan(service, REQUESTS, workers);
}

/* Runs a variant that sends all twenty at once, then prints their
 * responses in the order they were sent (asyncio.wait's set of done tasks
 * has no order; the tutorial printed them as the set gave them), and the
 * most threads the process had meanwhile. */
static int run_concurrently(const char *name, const char *what, coro_fn fn,
                            int on_workers)
{
    if (!demo_want(&opts, name))
        return 0;
    demo_heading(name, what);
    unsigned workers = REQUESTS;
    if (on_workers)
        workers = demo_workers(&opts, REQUESTS, "requests");
    forget_calls();
    double start = demo_now();
    int err = coro_run(counting_threads, &fn, NULL);
    double took = demo_now() - start;
    int failed = err != 0;
    for (int i = 0; i < REQUESTS; i++) {
        print_call(&calls[i]);
        failed |= calls[i].status_code == 0;
    }
    char t[32];
    printf("total: %s\n", demo_repr(took, t)); /* 'total: {}'.format() */
    print_threads(opts.url == NULL);
    demo_summary(name, took, expected(workers));
    return failed;
}

/* def normal_code(): twenty get_google_response() in a loop. */
static int run_sync(void)
{
    if (!demo_want(&opts, "sync"))
        return 0;
    demo_heading("sync", "twenty requests one after another");
    int failed = 0;
    forget_calls();
    double start = demo_now();
    for (int i = 0; i < REQUESTS; i++) {
        double t0 = demo_now();
        timeline_row("request %d", i + 1);
        get_google_response_sync(&calls[i]);
        timeline_blocked(t0, demo_now());
        print_call(&calls[i]);
        failed |= calls[i].status_code == 0;
    }
    double took = demo_now() - start;
    char t[32];
    printf("total: %s\n", demo_repr(took, t));
    demo_summary("sync", took, expected(1));
    return failed;
}

static int run(void)
{
    int failed = run_sync();
    failed |= run_concurrently("executor",
                               "twenty requests on the worker threads",
                               executor_main, 1);
    failed |= run_concurrently("wrapper",
                               "the same, timeout 0.5 and stream through "
                               "a wrapper",
                               wrapper_main, 1);
    failed |= run_concurrently("native",
                               "twenty requests on the reactor, one thread",
                               native_main, 0);
    failed |= run_concurrently("hooked",
                               "sync's blocking client in twenty tasks, "
                               "hooked",
                               hooked_main, 0);
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
    char local[64];
    url = opts.url;
    if (!url) {
        int port;
        server = local_server_start(opts.latency * opts.scale, &port);
        if (!server) {
            perror("e_http_requests: local server");
            return 1;
        }
        snprintf(local, sizeof local, "http://127.0.0.1:%d/", port);
        printf("local server on %s answering after %.3f s\n", local,
               opts.latency * opts.scale);
        url = local;
    }
    int failed = run();
    if (server)
        local_server_stop(server);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
