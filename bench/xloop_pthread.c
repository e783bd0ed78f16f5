/* xloop_pthread: the peer of bench/xloop.c in plain C: two threads pass an
 * int back and forth through two one-slot queues, each a mutex and a
 * condition variable, as a C programmer writes it without a runtime. */
#include <pthread.h>

#include "bench.h"

static const char usage[] =
    "usage: xloop_pthread [ROUND_TRIPS]\n"
    "Two threads exchange ROUND_TRIPS (default 200000) round trips through\n"
    "two mutex-and-condition-variable queues; prints ns per round trip.\n";

struct slot {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    int             full;
    long            value;
};

static struct slot to = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                          0, 0 };
static struct slot back = { PTHREAD_MUTEX_INITIALIZER,
                            PTHREAD_COND_INITIALIZER, 0, 0 };
static long trips;

static void put(struct slot *s, long v)
{
    pthread_mutex_lock(&s->lock);
    while (s->full)
        pthread_cond_wait(&s->cond, &s->lock);
    s->value = v;
    s->full = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static long take(struct slot *s)
{
    pthread_mutex_lock(&s->lock);
    while (!s->full)
        pthread_cond_wait(&s->cond, &s->lock);
    long v = s->value;
    s->full = 0;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return v;
}

static void *echo(void *arg)
{
    (void)arg;
    for (long i = 0; i < trips; i++)
        put(&back, take(&to));
    return NULL;
}

int main(int argc, char **argv)
{
    trips = bench_args(argc, argv, 200000, usage);
    pthread_t th;
    pthread_create(&th, NULL, echo, NULL);
    double t0 = bench_now();
    for (long i = 0; i < trips; i++) {
        put(&to, i);
        if (take(&back) != i)
            return 1;
    }
    double ns = (bench_now() - t0) / (double)trips * 1e9;
    pthread_join(th, NULL);
    printf("C      cross-thread round trip, mutex + condvar: %.0f ns\n", ns);
    return 0;
}
