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
 * A slot's place is kept in `where`, indexed by the id an armed node
 * holds, which is what makes removal O(log n) instead of a scan. The heap
 * and `where` are dense arrays: a sift touches no node. When the nodes'
 * index lived in them (a page apart, in the tasks' control blocks), each
 * pop of a million sleepers' heap wrote ten of them, a TLB miss each, and
 * the pops took 6 to 8% of the run's time.
 *
 * The insertion number is kept mod 2^32 and compared by its difference:
 * ties stay FIFO unless two equal deadlines are 2^31 insertions apart.
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
    coro__free(tm->where, tm->cap * sizeof *tm->where);
    coro__free(tm->owner, tm->cap * sizeof *tm->owner);
    tm->heap = NULL;
    tm->where = NULL;
    tm->owner = NULL;
    tm->n = tm->cap = 0;
}

static void *grow(void *p, size_t old_n, size_t n, size_t size)
{
    return coro__realloc(p, old_n * size, n * size);
}

int coro__timers_reserve(struct coro__timers *tm, size_t n)
{
    if (n <= tm->cap)
        return 0;
    size_t cap = tm->cap ? tm->cap * 2 : 64;
    while (cap < n)
        cap *= 2;
    if (cap >= CORO__TIMER_IDLE)
        return ENOMEM;
    /* Each array is kept as soon as it has grown: a later failure leaves
     * them larger than cap, which is harmless. */
    struct coro__heap_slot *heap = grow(tm->heap, tm->cap, cap, sizeof *heap);
    if (!heap)
        return ENOMEM;
    tm->heap = heap;
    uint32_t *where = grow(tm->where, tm->cap, cap, sizeof *where);
    if (!where)
        return ENOMEM;
    tm->where = where;
    struct coro__timer **owner = grow(tm->owner, tm->cap, cap, sizeof *owner);
    if (!owner)
        return ENOMEM;
    tm->owner = owner;
    if (tm->cap == 0)
        tm->free = CORO__TIMER_IDLE;
    for (size_t id = cap; id-- > tm->cap;) {
        tm->where[id] = tm->free;
        tm->free = (uint32_t)id;
    }
    tm->cap = cap;
    return 0;
}

static int slot_before(const struct coro__heap_slot *a,
                       const struct coro__heap_slot *b)
{
    if (a->when != b->when)
        return a->when < b->when;
    return (int32_t)(a->seq - b->seq) < 0;
}

static void slot_set(struct coro__timers *tm, size_t i,
                     struct coro__heap_slot s)
{
    tm->heap[i] = s;
    tm->where[s.id] = (uint32_t)i;
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
    CORO__ASSERT(node->id == CORO__TIMER_IDLE && tm->n < tm->cap &&
                 tm->free != CORO__TIMER_IDLE);
    uint32_t id = tm->free;
    tm->free = tm->where[id];
    tm->owner[id] = node;
    node->id = id;
    size_t i = tm->n++;
    tm->heap[i] = (struct coro__heap_slot){ when, tm->seq++, id };
    sift_up(tm, i);
}

void coro__timer_stop(struct coro__timers *tm, struct coro__timer *node)
{
    uint32_t id = node->id;
    if (id == CORO__TIMER_IDLE)
        return;
    node->id = CORO__TIMER_IDLE;
    size_t i = tm->where[id];
    tm->where[id] = tm->free;
    tm->free = id;
    struct coro__heap_slot last = tm->heap[--tm->n];
    if (i == tm->n)
        return;
    tm->heap[i] = last;
    tm->where[last.id] = (uint32_t)i;
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
    struct coro__timer *node = tm->owner[tm->heap[0].id];
    coro__timer_stop(tm, node);
    return node;
}
