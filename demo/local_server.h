/* Scenario E's local HTTP server: demo/http.c's server on 127.0.0.1 and an
 * ephemeral port, answering every request after a fixed latency. It runs
 * its own coro loop on a thread of its own, so it serves while the demo's
 * main thread blocks in a synchronous client. */
#ifndef CORO_DEMO_LOCAL_SERVER_H
#define CORO_DEMO_LOCAL_SERVER_H

struct local_server;

/* Starts serving; *port receives the port. NULL on failure, with errno. */
struct local_server *local_server_start(double latency, int *port);
/* Stops the server's loop, joins its thread, frees everything. */
void local_server_stop(struct local_server *s);

#endif
