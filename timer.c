/* timer.c: the clock and a 4-ary min-heap of deadlines. It knows deadlines,
 * not tasks: await_sleep, like every wait, is park's (sched.c).
 *
 * Why 4-ary: at a million sleepers a sift touches a cache line per level;
 * a 4-ary heap has half the levels of a binary one, and its four children
 * sit side by side. Measured here, it woke the last of a million sleepers
 * about twice as soon after its deadline as a binary heap.
 *
 * Ties: every node gets an insertion number, and (when, seq) is the key, so
 * equal deadlines fire in the order they were set (asyncio's behaviour,
 * which programs that sleep "the same time" in a loop rely on).
 *
 * Each slot keeps its deadline beside the node pointer, so comparisons read
 * the heap array only; the node is written just once per move (its index),
 * which is what makes removal O(log n) instead of a scan.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <time.h>

int64_t coro__clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t coro__coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double coro_now(void)
{
    return (double)coro__clock_ns() / 1e9;
}

int coro__deadline(double timeout, int64_t *deadline)
{
    if (isnan(timeout))
        return EINVAL;
    if (timeout < 0) {
        *deadline = CORO__NEVER;
        return 0;
    }
    int64_t now = coro__clock_ns();
    /* Beyond about 292 years from boot, int64 nanoseconds overflow: such a
     * deadline never comes. */
    if (timeout >= (double)(CORO__NEVER - now) / 1e9) {
        *deadline = CORO__NEVER;
        return 0;
    }
    *deadline = now + (int64_t)(timeout * 1e9);
    return 0;
}

void coro__timers_term(struct coro__timers *tm)
{
    coro__free(tm->heap, tm->cap * sizeof *tm->heap);
    tm->heap = NULL;
    tm->n = tm->cap = 0;
}

int coro__timers_reserve(struct coro__timers *tm, size_t n)
{
    if (n <= tm->cap)
        return 0;
    size_t cap = tm->cap ? tm->cap * 2 : 64;
    while (cap < n)
        cap *= 2;
    struct coro__heap_slot *heap =
        coro__realloc(tm->heap, tm->cap * sizeof *heap, cap * sizeof *heap);
    if (!heap)
        return ENOMEM;
    tm->heap = heap;
    tm->cap = cap;
    return 0;
}

static int slot_before(const struct coro__heap_slot *a,
                       const struct coro__heap_slot *b)
{
    if (a->when != b->when)
        return a->when < b->when;
    return a->node->seq < b->node->seq;
}

static void slot_set(struct coro__timers *tm, size_t i,
                     struct coro__heap_slot s)
{
    tm->heap[i] = s;
    s.node->index = i;
}

/* Moves the slot at i up to its place. */
static void sift_up(struct coro__timers *tm, size_t i)
{
    struct coro__heap_slot s = tm->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        if (!slot_before(&s, &tm->heap[parent]))
            break;
        slot_set(tm, i, tm->heap[parent]);
        i = parent;
    }
    slot_set(tm, i, s);
}

/* Moves the slot at i down to its place. */
static void sift_down(struct coro__timers *tm, size_t i)
{
    struct coro__heap_slot s = tm->heap[i];
    for (;;) {
        size_t first = 4 * i + 1;
        if (first >= tm->n)
            break;
        size_t last = first + 4 < tm->n ? first + 4 : tm->n;
        size_t best = first;
        for (size_t c = first + 1; c < last; c++)
            if (slot_before(&tm->heap[c], &tm->heap[best]))
                best = c;
        if (!slot_before(&tm->heap[best], &s))
            break;
        slot_set(tm, i, tm->heap[best]);
        i = best;
    }
    slot_set(tm, i, s);
}

void coro__timer_start(struct coro__timers *tm, struct coro__timer *node,
                       int64_t when)
{
    CORO__ASSERT(node->index == CORO__TIMER_IDLE && tm->n < tm->cap);
    node->seq = tm->seq++;
    size_t i = tm->n++;
    tm->heap[i] = (struct coro__heap_slot){ when, node };
    sift_up(tm, i);
}

void coro__timer_stop(struct coro__timers *tm, struct coro__timer *node)
{
    size_t i = node->index;
    if (i == CORO__TIMER_IDLE)
        return;
    node->index = CORO__TIMER_IDLE;
    struct coro__heap_slot last = tm->heap[--tm->n];
    if (i == tm->n)
        return;
    tm->heap[i] = last;
    last.node->index = i;
    /* The moved slot may belong above or below the hole. */
    if (i > 0 && slot_before(&last, &tm->heap[(i - 1) / 4]))
        sift_up(tm, i);
    else
        sift_down(tm, i);
}

int64_t coro__timer_next(const struct coro__timers *tm)
{
    return tm->n ? tm->heap[0].when : CORO__NEVER;
}

struct coro__timer *coro__timer_expired(struct coro__timers *tm, int64_t now)
{
    if (tm->n == 0 || tm->heap[0].when > now)
        return NULL;
    struct coro__timer *node = tm->heap[0].node;
    coro__timer_stop(tm, node);
    return node;
}
