/* demo/http.c and demo/curl_reactor.c: the HTTP server and client against
 * each other and against curl(1); libcurl's multi interface on the reactor,
 * over http and over TLS (openssl s_server). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "curl_reactor.h"
#include "helpers.h"
#include "http.h"

struct server {
    int        lfd;
    int        port;
    double     latency;
    coro_task *task;
};

static void *serve(void *arg)
{
    struct server *s = arg;
    int err = http_serve(s->lfd, s->latency);
    return err == ECANCELED ? NULL : coro_fail(err);
}

static void server_start(struct server *s, double latency)
{
    s->latency = latency;
    ck_assert_int_eq(coro_listen("127.0.0.1", 0, 1024, &s->lfd), 0);
    ck_assert_int_eq(coro_sock_port(s->lfd, &s->port), 0);
    s->task = coro_spawn(serve, s);
}

static void server_stop(struct server *s)
{
    coro_cancel(s->task);
    ck_assert_int_eq(await_task(s->task, NULL), ECANCELED);
    close(s->lfd);
}

static void url_for(char *url, size_t cap, const struct server *s,
                    const char *path)
{
    snprintf(url, cap, "http://127.0.0.1:%d%s", s->port, path);
}

static void *each_other_main(void *arg)
{
    (void)arg;
    struct server s;
    server_start(&s, 0);
    char url[128];
    struct http_response r;
    url_for(url, sizeof url, &s, "/");
    ck_assert_int_eq(await_http_get(url, 5, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 3);
    ck_assert_str_eq(r.body, "ok\n");
    url_for(url, sizeof url, &s, "/chunked");
    ck_assert_int_eq(await_http_get(url, 5, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 9);
    ck_assert_str_eq(r.body, "ok\nchunks");
    server_stop(&s);
    return NULL;
}

/* Content-Length and chunked bodies. */
START_TEST(client_and_server_against_each_other)
{
    run_expect(each_other_main, NULL, 0);
}
END_TEST

static void *keepalive_main(void *arg)
{
    (void)arg;
    struct server s;
    server_start(&s, 0);
    int fd;
    ck_assert_int_eq(await_dial("127.0.0.1", s.port, 5, &fd), 0);
    /* Two requests on one connection, the second pipelined behind the
     * first, then HTTP/1.0, which closes. */
    static const char reqs[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                               "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
                               "GET /c HTTP/1.0\r\n\r\n";
    ck_assert_int_eq(await_write_all(fd, reqs, sizeof reqs - 1, 5), 0);
    char buf[2048];
    size_t total = 0, got;
    while (await_read(fd, buf + total, sizeof buf - 1 - total, 5, &got) ==
               0 &&
           got > 0)
        total += got;
    buf[total] = '\0';
    int replies = 0;
    for (const char *p = buf; (p = strstr(p, "HTTP/1.1 200 OK")); p++)
        replies++;
    ck_assert_int_eq(replies, 3);
    ck_assert_ptr_nonnull(strstr(buf, "Connection: close"));
    close(fd);
    /* A request the server does not speak: 400, and the end. */
    ck_assert_int_eq(await_dial("127.0.0.1", s.port, 5, &fd), 0);
    ck_assert_int_eq(await_write_all(fd, "BREW / HTCPCP/1.0\r\n\r\n", 21, 5),
                     0);
    ck_assert_int_eq(await_read(fd, buf, sizeof buf - 1, 5, &got), 0);
    buf[got] = '\0';
    ck_assert_ptr_nonnull(strstr(buf, "400 Bad Request"));
    close(fd);
    server_stop(&s);
    return NULL;
}

START_TEST(server_keeps_connections_alive)
{
    run_expect(keepalive_main, NULL, 0);
}
END_TEST

struct timed_get {
    const char *url;
    int         status;
};

static void *one_get(void *arg)
{
    struct timed_get *g = arg;
    struct http_response r;
    int err = await_http_get(g->url, 5, &r);
    g->status = err ? -err : r.status;
    return NULL;
}

static void *latency_main(void *arg)
{
    (void)arg;
    struct server s;
    server_start(&s, 0.05);
    char url[128];
    url_for(url, sizeof url, &s, "/");
    enum { N = 20 };
    struct timed_get g[N];
    coro_task *t[N];
    double t0 = coro_now();
    for (int i = 0; i < N; i++) {
        g[i] = (struct timed_get){ url, 0 };
        t[i] = coro_spawn(one_get, &g[i]);
    }
    ck_assert_int_eq(await_gather(t, N, NULL, NULL), 0);
    double took = coro_now() - t0;
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(g[i].status, 200);
    ck_assert_double_ge(took, 0.05);
    ck_assert_msg(took < 0.05 + 0.1 * test_slow(), "took %.3f s", took);
    server_stop(&s);
    return NULL;
}

/* Twenty concurrent requests to a server that waits 50 ms per request take
 * about 50 ms in all. */
START_TEST(concurrent_requests_wait_concurrently)
{
    run_expect(latency_main, NULL, 0);
}
END_TEST

/* Runs a shell command on a worker thread, capturing its output. */
struct command {
    const char *line;
    char        out[4096];
    int         status;
};

static void *run_command(void *arg)
{
    struct command *c = arg;
    FILE *p = popen(c->line, "r");
    if (!p) {
        c->status = -1;
        return NULL;
    }
    size_t n = fread(c->out, 1, sizeof c->out - 1, p);
    c->out[n] = '\0';
    int st = pclose(p);
    c->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return NULL;
}

static void *curl_cli_main(void *arg)
{
    (void)arg;
    struct server s;
    server_start(&s, 0);
    char line[512];
    struct command c;
    /* Three URLs in one curl: one kept-alive connection. */
    snprintf(line, sizeof line,
             "curl -sS --max-time 5 http://127.0.0.1:%d/ "
             "http://127.0.0.1:%d/chunked http://127.0.0.1:%d/x 2>&1",
             s.port, s.port, s.port);
    c.line = line;
    ck_assert_int_eq(await_blocking(run_command, &c, NULL), 0);
    ck_assert_msg(c.status == 0, "curl: %s", c.out);
    ck_assert_str_eq(c.out, "ok\nok\nchunksok\n");
    snprintf(line, sizeof line,
             "curl -sS --http1.0 -o /dev/null -w '%%{http_code}' "
             "--max-time 5 http://127.0.0.1:%d/ 2>&1",
             s.port);
    ck_assert_int_eq(await_blocking(run_command, &c, NULL), 0);
    ck_assert_str_eq(c.out, "200");
    server_stop(&s);
    return NULL;
}

/* The server answers curl(1): keep-alive, chunked, HTTP/1.0. */
START_TEST(server_against_curl_cli)
{
    run_expect(curl_cli_main, NULL, 0);
}
END_TEST

static void *garbage_server(void *arg)
{
    int lfd = *(int *)arg, fd;
    if (await_accept(lfd, 5, &fd) == 0) {
        char buf[512];
        size_t got;
        await_read_until(fd, buf, sizeof buf, "\r\n\r\n", 5, &got);
        await_write_all(fd, "SPDY/9 nonsense\r\n\r\n", 19, 5);
        close(fd);
    }
    return NULL;
}

static void *client_errors_main(void *arg)
{
    (void)arg;
    struct http_response r;
    ck_assert_int_eq(await_http_get("ftp://x/", 1, &r), EPROTONOSUPPORT);
    ck_assert_int_eq(await_http_get("https://x/", 1, &r), EPROTONOSUPPORT);
    ck_assert_int_eq(await_http_get("nonsense", 1, &r), EINVAL);
    ck_assert_int_eq(await_http_get("http://:80/", 1, &r), EINVAL);
    ck_assert_int_eq(await_http_get("http://x:99999/", 1, &r), EINVAL);
    /* Slower than the client's timeout. */
    struct server s;
    server_start(&s, 1.0);
    char url[128];
    url_for(url, sizeof url, &s, "/");
    double t0 = coro_now();
    ck_assert_int_eq(await_http_get(url, 0.05, &r), ETIMEDOUT);
    ck_assert_double_lt(coro_now() - t0, 0.5);
    server_stop(&s);
    ck_assert_int_eq(await_http_get(url, 1, &r), ECONNREFUSED);
    /* A response that is not HTTP. */
    int lfd, port;
    ck_assert_int_eq(coro_listen("127.0.0.1", 0, 8, &lfd), 0);
    ck_assert_int_eq(coro_sock_port(lfd, &port), 0);
    coro_task *g = coro_spawn(garbage_server, &lfd);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    ck_assert_int_eq(await_http_get(url, 5, &r), EPROTO);
    ck_assert_int_eq(await_task(g, NULL), 0);
    close(lfd);
    return NULL;
}

START_TEST(client_reports_errors)
{
    run_expect(client_errors_main, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* libcurl's multi interface on the reactor                               */
/* ---------------------------------------------------------------------- */

struct transfers {
    int  done;
    long status[16];
};

static void count_done(CURL *easy, CURLcode result, void *arg)
{
    struct transfers *t = arg;
    long i = 0, code = 0;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&i);
    if (result == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    t->status[i] = result == CURLE_OK ? code : -(long)result;
    t->done++;
}

static size_t discard(char *data, size_t size, size_t n, void *user)
{
    (void)data;
    (void)user;
    return size * n;
}

/* Runs n GETs of url through the multi interface on the reactor. */
static int curl_gets(const char *url, int n, const char *cainfo,
                     struct transfers *t)
{
    CURLM *multi = curl_multi_init();
    CURL *easy[16];
    for (int i = 0; i < n; i++) {
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_PRIVATE, (char *)(intptr_t)i);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(easy[i], CURLOPT_TIMEOUT_MS, 10000L);
        if (cainfo)
            curl_easy_setopt(easy[i], CURLOPT_CAINFO, cainfo);
        curl_multi_add_handle(multi, easy[i]);
    }
    int err = await_curl_multi(multi, count_done, t);
    for (int i = 0; i < n; i++) {
        curl_multi_remove_handle(multi, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    curl_multi_cleanup(multi);
    return err;
}

static void *curl_multi_main(void *arg)
{
    (void)arg;
    struct server s;
    server_start(&s, 0.05);
    char url[128];
    url_for(url, sizeof url, &s, "/");
    struct transfers t = { 0, { 0 } };
    double t0 = coro_now();
    ck_assert_int_eq(curl_gets(url, 10, NULL, &t), 0);
    double took = coro_now() - t0;
    ck_assert_int_eq(t.done, 10);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(t.status[i], 200);
    /* Concurrent, on one thread: about one latency. */
    ck_assert_msg(took < 0.05 + 0.2 * test_slow(), "took %.3f s", took);
    server_stop(&s);
    return NULL;
}

START_TEST(curl_multi_runs_on_the_reactor)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    run_expect(curl_multi_main, NULL, 0);
    curl_global_cleanup();
}
END_TEST

struct tls_server {
    char  dir[64];
    char  cert[96];
    pid_t pid;
    int   port;
};

/* A self-signed certificate for 127.0.0.1 and `openssl s_server -www` on
 * a free port; 0, or -1 if openssl is missing or fails. */
static int tls_server_start(struct tls_server *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/coro-tls-XXXXXX");
    if (!mkdtemp(t->dir))
        return -1;
    snprintf(t->cert, sizeof t->cert, "%s/cert.pem", t->dir);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
             "-keyout %s/key.pem -out %s >/dev/null 2>&1",
             t->dir, t->cert);
    if (system(cmd) != 0)
        return -1;
    int lfd; /* a free port: bound, read, released */
    if (coro_listen("127.0.0.1", 0, 1, &lfd) || coro_sock_port(lfd, &t->port))
        return -1;
    close(lfd);
    char port[16], key[96];
    snprintf(port, sizeof port, "%d", t->port);
    snprintf(key, sizeof key, "%s/key.pem", t->dir);
    t->pid = fork();
    if (t->pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        execlp("openssl", "openssl", "s_server", "-quiet", "-accept", port,
               "-cert", t->cert, "-key", key, "-www", (char *)NULL);
        _exit(127);
    }
    return t->pid > 0 ? 0 : -1;
}

static void tls_server_stop(struct tls_server *t)
{
    kill(t->pid, SIGTERM);
    waitpid(t->pid, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", t->dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void *tls_main(void *arg)
{
    struct tls_server *tls = arg;
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", tls->port);
    /* Until s_server listens. */
    for (int i = 0; i < 200; i++) {
        int fd;
        if (await_dial("127.0.0.1", tls->port, 1, &fd) == 0) {
            close(fd);
            break;
        }
        await_sleep(0.02);
    }
    struct transfers t = { 0, { 0 } };
    ck_assert_int_eq(curl_gets(url, 4, tls->cert, &t), 0);
    ck_assert_int_eq(t.done, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(t.status[i] == 200, "transfer %d: %ld", i,
                      t.status[i]);
    return NULL;
}

/* https through libcurl's multi interface on the reactor, against a local
 * TLS server: the path scenario E's native variant takes for https. */
START_TEST(curl_multi_speaks_tls_on_the_reactor)
{
    struct tls_server tls;
    ck_assert_msg(tls_server_start(&tls) == 0, "openssl s_server");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    run_expect(tls_main, &tls, 0);
    curl_global_cleanup();
    tls_server_stop(&tls);
}
END_TEST

Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = test_case("http", 30);
    tcase_add_test(tc, client_and_server_against_each_other);
    tcase_add_test(tc, server_keeps_connections_alive);
    tcase_add_test(tc, concurrent_requests_wait_concurrently);
    tcase_add_test(tc, server_against_curl_cli);
    tcase_add_test(tc, client_reports_errors);
    tcase_add_test(tc, curl_multi_runs_on_the_reactor);
    tcase_add_test(tc, curl_multi_speaks_tls_on_the_reactor);
    suite_add_tcase(s, tc);
    return s;
}
