/* libcurl's multi interface driven by coro's reactor, for https in
 * scenario E's native variant: curl's sockets and timer become one task's
 * waits, so transfers run concurrently on the loop's thread. */
#ifndef CORO_DEMO_CURL_REACTOR_H
#define CORO_DEMO_CURL_REACTOR_H

#include <curl/curl.h>

/* Called as each transfer finishes. */
typedef void (*curl_done_fn)(CURL *easy, CURLcode result, void *arg);

/* Runs every transfer added to multi until all have finished, calling done
 * for each. Returns 0, ECANCELED if the task was cancelled (transfers left
 * unfinished), or ENOMEM/EMFILE if the private epoll instance could not be
 * made. */
int await_curl_multi(CURLM *multi, curl_done_fn done, void *arg);

#endif
