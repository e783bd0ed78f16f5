/* chan: a message through an unbuffered (rendezvous) channel between two
 * tasks, ns per message. bench/chan.go and bench/chan.py are the Go
 * (unbuffered chan) and asyncio (Queue(maxsize=1)) twins; bench/chan.sh
 * runs all three. */
#include "bench.h"
#include "coro.h"

static const char usage[] =
    "usage: chan [MESSAGES]\n"
    "One task sends MESSAGES ints (default 2000000) through a capacity-0\n"
    "channel to another; prints ns per message.\n";

static long messages;

static void *produce(void *arg)
{
    for (long i = 0; i < messages; i++)
        if (await_chan_send(arg, &i, -1) != 0)
            return coro_fail(5);
    return NULL;
}

static void *consume(void *arg)
{
    long v, sum = 0;
    for (long i = 0; i < messages; i++) {
        if (await_chan_recv(arg, &v, -1) != 0)
            return coro_fail(5);
        sum += v;
    }
    return sum == messages * (messages - 1) / 2 ? NULL : coro_fail(5);
}

static void *chan_main(void *arg)
{
    coro_chan *c = coro_chan_new(sizeof(long), 0);
    coro_task *t[2] = { coro_spawn(consume, c), coro_spawn(produce, c) };
    double t0 = bench_now();
    int err = await_gather(t, 2, NULL, NULL);
    *(double *)arg = (bench_now() - t0) / (double)messages * 1e9;
    coro_chan_free(c);
    return err ? coro_fail(err) : NULL;
}

int main(int argc, char **argv)
{
    messages = bench_args(argc, argv, 2000000, usage);
    double ns = 0;
    if (coro_run(chan_main, &ns, NULL) != 0)
        return 1;
    printf("coro   unbuffered channel: %.0f ns per message\n", ns);
    return 0;
}
