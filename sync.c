/* sync.c: coordination between the tasks of a thread. Channels (with
 * select), queues of pointers (FIFO, LIFO, priority), mutex, semaphore,
 * event, condition, barrier.
 *
 * Every object is a wake source like any other: a task that must wait puts
 * a waiter (its wait record, t->wait) on the object's FIFO list and
 * parks; whoever makes progress possible completes the first waiter
 * directly, handing it the element, the lock or the permit, and wakes it.
 * Nobody barges in: a released lock belongs to the first waiter before it
 * even runs. A waiter woken by a timeout or a cancellation leaves the list
 * in its detach hook, so what it would have received stays for the next
 * one.
 *
 * A select puts one waiter per operation on as many lists, all in one heap
 * block; the first to be completed takes the task, and its detach hook
 * takes the others off.
 *
 * Objects are not thread-safe. Each belongs to the thread of the first
 * loop that uses it, for good: `owner` is set once, atomically, so another
 * thread can see that the object is not its own without reading anything
 * the owner's tasks write, and gets EINVAL.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------------
 * Ownership
 * ---------------------------------------------------------------------- */

/* What every object starts with. */
struct object {
    atomic_ullong owner;    /* the token of its thread; 0 until a loop's
                               task first uses it */
};

/* Threads that used an object, numbered from 1: never reused, unlike
 * thread ids and loop addresses. */
static atomic_ullong tokens;
static __thread unsigned long long tls_token;

static unsigned long long thread_token(void)
{
    if (!tls_token)
        tls_token = atomic_fetch_add(&tokens, 1) + 1;
    return tls_token;
}

/* The slow path of owned: o is nobody's yet, or another thread's. */
static int claim(struct object *o, unsigned long long owner)
{
    unsigned long long mine = thread_token();
    if (owner == mine)
        return 1;
    if (owner != 0)
        return 0;
    if (!coro__current())
        return 1;
    return atomic_compare_exchange_strong(&o->owner, &owner, mine) ||
           owner == mine;
}

/* Whether the calling thread may use o: it is the owner's, or nobody's
 * yet. A call from a loop's task makes it the thread's; a call from
 * outside any loop (filling a channel before coro_run) leaves it free.
 * The load need not be ordered: a thread that finds its own token wrote
 * it, and one that finds another's reads nothing else. */
static inline int owned(struct object *o)
{
    unsigned long long owner =
        atomic_load_explicit(&o->owner, memory_order_relaxed);
    if (CORO__LIKELY(owner != 0 && owner == tls_token))
        return 1;
    return claim(o, owner);
}

/* As owned, for calls that only read: they never take an object. */
static int visible(const struct object *o)
{
    unsigned long long owner =
        atomic_load_explicit(&o->owner, memory_order_relaxed);
    return owner == 0 || owner == thread_token();
}

/* A zeroed object of size bytes, or NULL with errno ENOMEM: what every
 * _new returns. */
static void *object_new(size_t size)
{
    void *obj = coro__calloc(1, size);
    if (!obj)
        errno = ENOMEM;
    return obj;
}

/* What every _free does: nothing for NULL; EBUSY if busy (tasks wait on
 * obj, or it is held); else frees what obj owns (extra, extra_size bytes)
 * and obj itself. */
static int object_free(void *obj, size_t size, int busy, void *extra,
                       size_t extra_size)
{
    if (!obj)
        return 0;
    if (busy)
        return EBUSY;
    coro__free(extra, extra_size);
    coro__free(obj, size);
    return 0;
}

/* ----------------------------------------------------------------------
 * Waiters and wait lists
 * ---------------------------------------------------------------------- */

struct select_group;

/* One task waiting on one list: the task's wait record, or in its
 * select's heap block. */
struct waiter {
    struct coro__link    link;
    struct coro__list   *list;   /* the list it is on, NULL once off */
    struct coro_task    *task;
    void                *elem;   /* what it sends, or where it receives */
    struct select_group *group;  /* its select, or NULL */
    size_t               index;  /* its op in the select */
};

/* A select's waiters: the task waits on all of them at once. */
struct select_group {
    size_t        n;
    size_t        chosen;        /* the op that completed */
    struct waiter waiters[];
};

static struct waiter *first(const struct coro__list *l)
{
    return l->head ? CORO__ENTRY(l->head, struct waiter, link) : NULL;
}

static void waiter_append(struct coro__list *l, struct waiter *w)
{
    w->list = l;
    coro__list_append(l, &w->link);
}

static void waiter_remove(struct waiter *w)
{
    if (w->list) {
        coro__list_remove(w->list, &w->link);
        w->list = NULL;
    }
}

/* Takes w off its list and, for a select, its siblings off theirs. */
static void waiter_unlink(struct waiter *w)
{
    if (!w->group) {
        waiter_remove(w);
        return;
    }
    for (size_t i = 0; i < w->group->n; i++)
        waiter_remove(&w->group->waiters[i]);
}

static void waiter_detach(struct coro_task *t)
{
    waiter_unlink(t->waiting_on);
}

/* w's operation is done (or refused with EPIPE): take it off every list
 * and wake its task with the outcome. */
static void complete(struct waiter *w, int status)
{
    waiter_unlink(w);
    if (w->group)
        w->group->chosen = w->index;
    coro__wake(w->task, status);
}

static void complete_all(struct coro__list *l, int status)
{
    while (l->head)
        complete(first(l), status);
}

/* A task's waiter is its wait record (see union coro__wait). */
static struct waiter *task_waiter(struct coro_task *t)
{
    _Static_assert(sizeof(struct waiter) <= sizeof t->wait->sync,
                   "union coro__wait must hold a waiter");
    return (struct waiter *)(void *)t->wait->sync;
}

/* Parks self on list l until completed or woken otherwise; detach takes
 * its waiter back on a timeout or a cancellation. */
static int park_on(struct coro_task *self, int kind, const void *what,
                   struct coro__list *l, void *elem, int64_t deadline,
                   coro__detach_fn detach)
{
    struct waiter *w = task_waiter(self);
    *w = (struct waiter){ .task = self, .elem = elem };
    waiter_append(l, w);
    return coro__park(self, &(struct coro__park){
        .kind = (unsigned char)kind,
        .timeout_status = ETIMEDOUT,
        .deadline = deadline,
        .what = what,
        .detach = detach,
        .record = w,
        .record_size = sizeof *w,
    });
}

static int wait_on(struct coro_task *self, int kind, const void *what,
                   struct coro__list *l, void *elem, int64_t deadline)
{
    return park_on(self, kind, what, l, elem, deadline, waiter_detach);
}

/* ----------------------------------------------------------------------
 * Channels
 * ---------------------------------------------------------------------- */

/* The largest element and buffer a channel takes: elements are copied in
 * and out, and anything larger is better sent as a pointer. The limits
 * also keep absurd sizes an EINVAL rather than an allocation attempt. */
#define CHAN_ELEM_MAX ((size_t)1 << 20)
#define CHAN_BUF_MAX ((size_t)1 << 30)

struct coro_chan {
    struct object      obj;
    size_t             elem_size;
    size_t             cap;      /* buffered elements it holds at most */
    size_t             head;     /* oldest buffered element */
    size_t             count;    /* buffered elements */
    int                closed;
    struct coro__list  senders;  /* waiting with an element to send */
    struct coro__list  receivers;/* waiting for an element */
    char              *buf;      /* cap * elem_size bytes */
};

coro_chan *coro_chan_new(size_t elem_size, size_t capacity)
{
    if (elem_size == 0 || elem_size > CHAN_ELEM_MAX ||
        capacity > CHAN_BUF_MAX / elem_size) {
        errno = EINVAL;
        return NULL;
    }
    coro_chan *c = object_new(sizeof *c);
    if (!c)
        return NULL;
    if (capacity && !(c->buf = coro__alloc(capacity * elem_size))) {
        object_free(c, sizeof *c, 0, NULL, 0);
        errno = ENOMEM;
        return NULL;
    }
    c->elem_size = elem_size;
    c->cap = capacity;
    return c;
}

static int chan_waited_on(const coro_chan *c)
{
    return c->senders.head || c->receivers.head;
}

static void *slot(const coro_chan *c, size_t i)
{
    return c->buf + ((c->head + i) % c->cap) * c->elem_size;
}

/* Sends without waiting if it can: 0, EPIPE, or EAGAIN. */
static int chan_send_now(coro_chan *c, const void *elem)
{
    if (c->closed)
        return EPIPE;
    struct waiter *r = first(&c->receivers);
    if (r) { /* the buffer is empty: hand it over */
        memcpy(r->elem, elem, c->elem_size);
        complete(r, 0);
        return 0;
    }
    if (c->count < c->cap) {
        memcpy(slot(c, c->count), elem, c->elem_size);
        c->count++;
        return 0;
    }
    return EAGAIN;
}

/* Receives without waiting if it can: 0, EPIPE (closed and drained), or
 * EAGAIN. A waiting sender refills the buffer, or, without one, hands its
 * element over directly. */
static int chan_recv_now(coro_chan *c, void *elem)
{
    struct waiter *s = first(&c->senders);
    if (c->count > 0) {
        memcpy(elem, slot(c, 0), c->elem_size);
        c->head = (c->head + 1) % c->cap;
        c->count--;
        if (s) {
            memcpy(slot(c, c->count), s->elem, c->elem_size);
            c->count++;
            complete(s, 0);
        }
        return 0;
    }
    if (s) {
        memcpy(elem, s->elem, c->elem_size);
        complete(s, 0);
        return 0;
    }
    return c->closed ? EPIPE : EAGAIN;
}

int coro_chan_try_send(coro_chan *c, const void *elem)
{
    if (!c || !elem || !owned(&c->obj))
        return EINVAL;
    return chan_send_now(c, elem);
}

int coro_chan_try_recv(coro_chan *c, void *elem)
{
    if (!c || !elem || !owned(&c->obj))
        return EINVAL;
    return chan_recv_now(c, elem);
}

int await_chan_send(coro_chan *c, const void *elem, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter(timeout, &self, &deadline);
    if (err)
        return err;
    if (!c || !elem || !owned(&c->obj))
        return EINVAL;
    err = chan_send_now(c, elem);
    if (err != EAGAIN)
        return err;
    return wait_on(self, CORO__W_CHAN_SEND, c, &c->senders, (void *)elem,
                   deadline);
}

int await_chan_recv(coro_chan *c, void *elem, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter(timeout, &self, &deadline);
    if (err)
        return err;
    if (!c || !elem || !owned(&c->obj))
        return EINVAL;
    err = chan_recv_now(c, elem);
    if (err != EAGAIN)
        return err;
    return wait_on(self, CORO__W_CHAN_RECV, c, &c->receivers, elem,
                   deadline);
}

int coro_chan_close(coro_chan *c)
{
    if (!c || !owned(&c->obj))
        return EINVAL;
    if (c->closed)
        return EPIPE;
    c->closed = 1;
    /* Parked senders' elements are not delivered; receivers wait only
     * when nothing is buffered, so they are done too. */
    complete_all(&c->senders, EPIPE);
    complete_all(&c->receivers, EPIPE);
    return 0;
}

int coro_chan_free(coro_chan *c)
{
    return object_free(c, sizeof *c, c && chan_waited_on(c), c ? c->buf : 0,
                       c ? c->cap * c->elem_size : 0);
}

/* The first op that can complete now, in array order (order is priority):
 * 0 or EPIPE with *chosen set, or EAGAIN. */
static int select_now(coro_chan_op *ops, size_t n, size_t *chosen)
{
    for (size_t i = 0; i < n; i++) {
        int err = ops[i].send ? chan_send_now(ops[i].chan, ops[i].elem)
                              : chan_recv_now(ops[i].chan, ops[i].elem);
        if (err != EAGAIN) {
            *chosen = i;
            return err;
        }
    }
    return EAGAIN;
}

/* Parks self on every op's list at once; the records go on the heap. */
static int select_wait(struct coro_task *self, coro_chan_op *ops, size_t n,
                       int64_t deadline, size_t *chosen)
{
    if (n > (SIZE_MAX - sizeof(struct select_group)) / sizeof(struct waiter))
        return ENOMEM;
    size_t size = sizeof(struct select_group) + n * sizeof(struct waiter);
    struct coro__extra *x = coro__extra_get(self); /* holds the record */
    if (!x)
        return ENOMEM;
    struct select_group *g = coro__alloc(size);
    if (!g)
        return ENOMEM;
    g->n = n;
    g->chosen = 0;
    for (size_t i = 0; i < n; i++) {
        coro_chan *c = ops[i].chan;
        g->waiters[i] = (struct waiter){ .task = self, .elem = ops[i].elem,
                                         .group = g, .index = i };
        waiter_append(ops[i].send ? &c->senders : &c->receivers,
                      &g->waiters[i]);
    }
    x->wait_block = g;
    x->wait_block_size = size;
    int status = coro__park(self, &(struct coro__park){
        .kind = CORO__W_SELECT,
        .timeout_status = ETIMEDOUT,
        .deadline = deadline,
        .detach = waiter_detach,
        .record = &g->waiters[0], /* its group leads to the rest */
        .record_size = size - sizeof *g,
    });
    if (status == 0 || status == EPIPE)
        *chosen = g->chosen;
    x->wait_block = NULL;
    coro__free(g, size);
    return status;
}

int await_select(coro_chan_op *ops, size_t n, double timeout, size_t *chosen)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter_unrecorded(timeout, &self, &deadline);
    if (err)
        return err;
    if (!ops || n == 0 || !chosen)
        return EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!ops[i].chan || !ops[i].elem || !owned(&ops[i].chan->obj))
            return EINVAL;
    err = select_now(ops, n, chosen);
    if (err != EAGAIN)
        return err;
    return select_wait(self, ops, n, deadline, chosen);
}

/* ----------------------------------------------------------------------
 * Queue
 *
 * One structure for asyncio's three queues. FIFO and LIFO keep their
 * items in a ring (LIFO takes from its back). The priority queue keeps a
 * binary min-heap of entries that carry the put's number with the item:
 * equal items then leave in the order they came, which a heap alone does
 * not keep.
 * ---------------------------------------------------------------------- */

enum queue_kind { QUEUE_FIFO, QUEUE_LIFO, QUEUE_PRIORITY };

/* An entry of a priority queue's heap. */
struct ranked {
    void    *item;
    uint64_t seq;               /* the put's number: breaks ties */
};

struct coro_queue {
    struct object      obj;
    size_t             maxsize;    /* 0: unbounded */
    int                kind;       /* enum queue_kind */
    int              (*cmp)(const void *a, const void *b); /* priority */
    union {
        void         **items;      /* FIFO, LIFO: a ring of cap items */
        struct ranked *heap;       /* priority: a heap of cap entries */
    };
    size_t             cap;
    size_t             head;       /* the ring's oldest item */
    size_t             count;
    uint64_t           seq;        /* entries the heap has taken */
    size_t             unfinished; /* put and not yet task_done */
    int                shutdown;
    struct coro__list  getters;    /* waiting for an item */
    struct coro__list  putters;    /* waiting for room, with their item */
    struct coro__list  joiners;    /* waiting for unfinished to reach 0 */
};

static coro_queue *queue_new(size_t maxsize, int kind,
                             int (*cmp)(const void *, const void *))
{
    coro_queue *q = object_new(sizeof *q);
    if (q) {
        q->maxsize = maxsize;
        q->kind = kind;
        q->cmp = cmp;
    }
    return q;
}

coro_queue *coro_queue_new(size_t maxsize)
{
    return queue_new(maxsize, QUEUE_FIFO, NULL);
}

coro_queue *coro_queue_new_lifo(size_t maxsize)
{
    return queue_new(maxsize, QUEUE_LIFO, NULL);
}

coro_queue *coro_queue_new_priority(size_t maxsize,
                                    int (*cmp)(const void *a,
                                               const void *b))
{
    if (!cmp) {
        errno = EINVAL;
        return NULL;
    }
    return queue_new(maxsize, QUEUE_PRIORITY, cmp);
}

static int queue_waited_on(const coro_queue *q)
{
    return q->getters.head || q->putters.head || q->joiners.head;
}

static size_t slot_size(const coro_queue *q)
{
    return q->kind == QUEUE_PRIORITY ? sizeof *q->heap : sizeof *q->items;
}

static int queue_grow(coro_queue *q)
{
    size_t size = slot_size(q);
    if (q->cap > SIZE_MAX / 2 / size)
        return ENOMEM;
    size_t cap = q->cap ? 2 * q->cap : 16;
    void *slots = coro__alloc(cap * size);
    if (!slots)
        return ENOMEM;
    if (q->kind == QUEUE_PRIORITY) {
        if (q->count)
            memcpy(slots, q->heap, q->count * size);
    } else {
        void **ring = slots;
        for (size_t i = 0; i < q->count; i++)
            ring[i] = q->items[(q->head + i) % q->cap];
    }
    coro__free(q->items, q->cap * size);
    q->items = slots;
    q->cap = cap;
    q->head = 0;
    return 0;
}

/* Whether a leaves a priority queue before b: the smaller item, or of
 * two equal ones the first put. */
static int ranks_before(const coro_queue *q, const struct ranked *a,
                        const struct ranked *b)
{
    int order = q->cmp(a->item, b->item);
    return order < 0 || (order == 0 && a->seq < b->seq);
}

/* Adds item at the heap's bottom and sifts it up: O(log n). */
static void heap_push(coro_queue *q, void *item)
{
    struct ranked e = { item, q->seq++ };
    size_t i = q->count;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ranks_before(q, &e, &q->heap[parent]))
            break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = e;
}

/* Takes the heap's root; its last entry, heap[count] now that count was
 * lowered, sifts down from the top: O(log n). */
static void *heap_pop(coro_queue *q)
{
    void *top = q->heap[0].item;
    struct ranked last = q->heap[q->count];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= q->count)
            break;
        if (child + 1 < q->count &&
            ranks_before(q, &q->heap[child + 1], &q->heap[child]))
            child++;
        if (!ranks_before(q, &q->heap[child], &last))
            break;
        q->heap[i] = q->heap[child];
        i = child;
    }
    q->heap[i] = last;
    return top;
}

static int queue_push(coro_queue *q, void *item)
{
    if (q->count == q->cap && queue_grow(q) != 0)
        return ENOMEM;
    if (q->kind == QUEUE_PRIORITY)
        heap_push(q, item);
    else
        q->items[(q->head + q->count) % q->cap] = item;
    q->count++;
    return 0;
}

/* Takes the item a get gets; the queue is not empty. */
static void *queue_pop(coro_queue *q)
{
    q->count--;
    if (q->kind == QUEUE_PRIORITY)
        return heap_pop(q);
    if (q->kind == QUEUE_LIFO)
        return q->items[(q->head + q->count) % q->cap];
    void *item = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    return item;
}

static int queue_put_now(coro_queue *q, void *item)
{
    if (q->shutdown)
        return EPIPE;
    struct waiter *g = first(&q->getters);
    if (g) { /* empty: hand it over */
        q->unfinished++;
        *(void **)g->elem = item;
        complete(g, 0);
        return 0;
    }
    if (q->maxsize && q->count >= q->maxsize)
        return EAGAIN;
    int err = queue_push(q, item);
    if (!err)
        q->unfinished++;
    return err;
}

static int queue_get_now(coro_queue *q, void **item)
{
    if (q->count == 0)
        return q->shutdown ? EPIPE : EAGAIN;
    *item = queue_pop(q);
    struct waiter *p = first(&q->putters);
    if (p) { /* room for the first putter's item */
        queue_push(q, p->elem); /* cannot fail: a slot was just freed */
        q->unfinished++;
        complete(p, 0);
    }
    return 0;
}

int coro_queue_try_put(coro_queue *q, void *item)
{
    if (!q || !owned(&q->obj))
        return EINVAL;
    return queue_put_now(q, item);
}

int coro_queue_try_get(coro_queue *q, void **item)
{
    if (!q || !item || !owned(&q->obj))
        return EINVAL;
    return queue_get_now(q, item);
}

int await_queue_put(coro_queue *q, void *item, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter(timeout, &self, &deadline);
    if (err)
        return err;
    if (!q || !owned(&q->obj))
        return EINVAL;
    err = queue_put_now(q, item);
    if (err != EAGAIN)
        return err;
    return wait_on(self, CORO__W_QUEUE_PUT, q, &q->putters, item, deadline);
}

int await_queue_get(coro_queue *q, void **item, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter(timeout, &self, &deadline);
    if (err)
        return err;
    if (!q || !item || !owned(&q->obj))
        return EINVAL;
    err = queue_get_now(q, item);
    if (err != EAGAIN)
        return err;
    return wait_on(self, CORO__W_QUEUE_GET, q, &q->getters, item, deadline);
}

size_t coro_queue_size(const coro_queue *q)
{
    return q && visible(&q->obj) ? q->count : 0;
}

int coro_queue_task_done(coro_queue *q)
{
    if (!q || !owned(&q->obj) || q->unfinished == 0)
        return EINVAL;
    if (--q->unfinished == 0)
        complete_all(&q->joiners, 0);
    return 0;
}

int await_queue_join(coro_queue *q, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter(timeout, &self, &deadline);
    if (err)
        return err;
    if (!q || !owned(&q->obj))
        return EINVAL;
    if (q->unfinished == 0)
        return 0;
    return wait_on(self, CORO__W_QUEUE_JOIN, q, &q->joiners, NULL, deadline);
}

int coro_queue_shutdown(coro_queue *q)
{
    if (!q || !owned(&q->obj))
        return EINVAL;
    q->shutdown = 1;
    complete_all(&q->putters, EPIPE);
    complete_all(&q->getters, EPIPE); /* they wait only when empty */
    return 0;
}

/* The i-th queued item in storage order, which for LIFO and priority
 * queues is not the order gets take them. */
static void *queued(const coro_queue *q, size_t i)
{
    if (q->kind == QUEUE_PRIORITY)
        return q->heap[i].item;
    return q->items[(q->head + i) % q->cap];
}

int coro_queue_shutdown_now(coro_queue *q, void (*drop)(void *item,
                                                        void *arg),
                            void *arg)
{
    if (!q || !owned(&q->obj))
        return EINVAL;
    size_t n = q->count;
    q->shutdown = 1;
    q->count = 0;
    /* Each dropped item counts as done, as asyncio calls task_done for
     * each; task_done may have been called for queued items already. */
    q->unfinished -= n < q->unfinished ? n : q->unfinished;
    /* Puts are refused and gets find nothing from here on, so drop may
     * call into q without changing the slots it is handed. */
    for (size_t i = 0; drop && i < n; i++)
        drop(queued(q, i), arg);
    q->head = 0;
    complete_all(&q->putters, EPIPE);
    complete_all(&q->getters, EPIPE); /* they wait only when empty */
    if (q->unfinished == 0)
        complete_all(&q->joiners, 0);
    return 0;
}

int coro_queue_free(coro_queue *q)
{
    return object_free(q, sizeof *q, q && queue_waited_on(q),
                       q ? q->items : NULL, q ? q->cap * slot_size(q) : 0);
}

/* ----------------------------------------------------------------------
 * Mutex
 * ---------------------------------------------------------------------- */

/* The holder is named by its loop's run (coro_run's number in the process,
 * never reused) and its task id: ids restart at 1 in every run, and a
 * later loop may sit at the same address, so neither alone would keep a
 * task of a later run from passing for the holder. */
struct coro_mutex {
    struct object      obj;
    uint64_t           holder_run; /* the holder's loop's run_id */
    uint64_t           holder;     /* the holder's task id; 0: free */
    struct coro__list  waiters;
};

unsigned long long coro__mutex_holder(const coro_mutex *m,
                                      const struct coro__loop *l)
{
    return m->holder_run == l->run_id ? (unsigned long long)m->holder : 0;
}

coro_mutex *coro_mutex_new(void)
{
    return object_new(sizeof(coro_mutex));
}

static int holds(const coro_mutex *m, const struct coro_task *t)
{
    return t && m->holder == t->id && m->holder_run == t->loop->run_id;
}

static void take(coro_mutex *m, struct coro_task *t)
{
    m->holder = t->id;
    m->holder_run = t->loop->run_id;
    t->mutexes++;
}

static const coro_mutex *cond_mutex(const coro_cond *c);

/* Whether a task of this thread's running loop still needs m: its holder
 * has not ended, or a condition's waiter will take it back (m is free
 * while it waits). A mutex whose holder ended can be freed. */
static int mutex_needed(const coro_mutex *m)
{
    const struct coro__loop *l = coro__loop();
    if (!l)
        return 0;
    for (const struct coro__link *n = l->all.head; n; n = n->next) {
        const struct coro_task *t = CORO__TASK_OF(n);
        if (m->holder && m->holder_run == l->run_id && t->id == m->holder &&
            t->state != CORO__DONE)
            return 1;
        if (t->state == CORO__PARKED && t->wait_kind == CORO__W_COND &&
            cond_mutex(t->wait_what) == m)
            return 1;
    }
    return 0;
}

int await_mutex_lock(coro_mutex *m, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter(timeout, &self, &deadline);
    if (err)
        return err;
    if (!m || !owned(&m->obj))
        return EINVAL;
    if (holds(m, self))
        return EDEADLK;
    if (m->holder == 0) {
        take(m, self);
        return 0;
    }
    /* unlock makes the first waiter the holder before waking it */
    return wait_on(self, CORO__W_MUTEX, m, &m->waiters, NULL, deadline);
}

int coro_mutex_unlock(coro_mutex *m)
{
    struct coro_task *self = coro__current();
    if (!m || !owned(&m->obj))
        return EINVAL;
    if (!holds(m, self))
        return EPERM;
    self->mutexes--;
    struct waiter *w = first(&m->waiters);
    if (w) {
        take(m, w->task);
        complete(w, 0);
    } else {
        m->holder = 0;
        m->holder_run = 0;
    }
    return 0;
}

int coro_mutex_locked(const coro_mutex *m)
{
    return m && visible(&m->obj) && m->holder != 0;
}

int coro_mutex_free(coro_mutex *m)
{
    return object_free(m, sizeof *m,
                       m && (m->waiters.head || mutex_needed(m)), NULL, 0);
}

/* ----------------------------------------------------------------------
 * Semaphore
 * ---------------------------------------------------------------------- */

struct coro_sem {
    struct object      obj;
    unsigned           value;
    unsigned           bound;   /* a bounded one's initial value */
    int                bounded; /* release past bound is EINVAL */
    struct coro__list  waiters;
};

coro_sem *coro_sem_new(unsigned value)
{
    coro_sem *s = object_new(sizeof *s);
    if (s)
        s->value = value;
    return s;
}

coro_sem *coro_sem_new_bounded(unsigned value)
{
    coro_sem *s = coro_sem_new(value);
    if (s) {
        s->bound = value;
        s->bounded = 1;
    }
    return s;
}

int await_sem_acquire(coro_sem *s, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter(timeout, &self, &deadline);
    if (err)
        return err;
    if (!s || !owned(&s->obj))
        return EINVAL;
    if (s->value > 0 && !s->waiters.head) {
        s->value--;
        return 0;
    }
    return wait_on(self, CORO__W_SEM, s, &s->waiters, NULL, deadline);
}

int coro_sem_release(coro_sem *s)
{
    if (!s || !owned(&s->obj) || (s->bounded && s->value >= s->bound))
        return EINVAL;
    if (s->waiters.head) { /* the permit goes straight to the first */
        complete(first(&s->waiters), 0);
        return 0;
    }
    if (s->value == UINT_MAX)
        return EOVERFLOW;
    s->value++;
    return 0;
}

unsigned coro_sem_value(const coro_sem *s)
{
    return s && visible(&s->obj) ? s->value : 0;
}

int coro_sem_locked(const coro_sem *s)
{
    return s && visible(&s->obj) && (s->value == 0 || s->waiters.head);
}

int coro_sem_free(coro_sem *s)
{
    return object_free(s, sizeof *s, s && s->waiters.head, NULL, 0);
}

/* ----------------------------------------------------------------------
 * Event
 * ---------------------------------------------------------------------- */

struct coro_event {
    struct object      obj;
    int                set;
    struct coro__list  waiters;
};

coro_event *coro_event_new(void)
{
    return object_new(sizeof(coro_event));
}

int await_event(coro_event *e, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter(timeout, &self, &deadline);
    if (err)
        return err;
    if (!e || !owned(&e->obj))
        return EINVAL;
    if (e->set)
        return 0;
    return wait_on(self, CORO__W_EVENT, e, &e->waiters, NULL, deadline);
}

void coro_event_set(coro_event *e)
{
    if (!e || !owned(&e->obj))
        return;
    e->set = 1;
    complete_all(&e->waiters, 0);
}

void coro_event_clear(coro_event *e)
{
    if (e && owned(&e->obj))
        e->set = 0;
}

int coro_event_is_set(const coro_event *e)
{
    return e && visible(&e->obj) && e->set;
}

int coro_event_free(coro_event *e)
{
    return object_free(e, sizeof *e, e && e->waiters.head, NULL, 0);
}

/* ----------------------------------------------------------------------
 * Condition
 * ---------------------------------------------------------------------- */

struct coro_cond {
    struct object      obj;
    coro_mutex        *mutex;   /* the waiters' mutex; stale once none
                                   waits (cond_mismatch reads it only
                                   while one does) */
    struct coro__list  waiters;
};

/* The mutex c's waiters wait with (c has waiters). */
static const coro_mutex *cond_mutex(const coro_cond *c)
{
    return c->mutex;
}

coro_cond *coro_cond_new(void)
{
    return object_new(sizeof(coro_cond));
}

/* Whether other tasks wait on c with a mutex other than m. */
static int cond_mismatch(const coro_cond *c, const coro_mutex *m)
{
    return c->waiters.head && c->mutex != m;
}

/* What both waits check after coro__enter: 0, EINVAL or EPERM. */
static int cond_check(coro_cond *c, coro_mutex *m,
                      const struct coro_task *self)
{
    if (!c || !m || !owned(&c->obj) || !owned(&m->obj) ||
        cond_mismatch(c, m))
        return EINVAL;
    return holds(m, self) ? 0 : EPERM;
}

/* Takes m back after a condition wait, on every return: shielded, and
 * bounded by no deadline, the call's or a timeout scope's, which cover
 * only the wait for a notify. Only an unlock, which hands m over, wakes
 * it. */
static void relock(struct coro_task *self, coro_mutex *m)
{
    if (m->holder == 0) {
        take(m, self);
        return;
    }
    struct waiter *w = task_waiter(self);
    *w = (struct waiter){ .task = self };
    waiter_append(&m->waiters, w);
    coro__park_shielded(self, &(struct coro__park){
        .kind = CORO__W_MUTEX,
        .deadline = CORO__NEVER,
        .what = m,
        .detach = waiter_detach,
        .record = w,
        .record_size = sizeof *w,
    });
    CORO__ASSERT(holds(m, self));
}

/* Releases m, which self holds, waits on c for a notify until deadline,
 * and takes m back whatever ended the wait. Once woken it never touches
 * c again: a notified condition may be freed before its waiters run, as
 * pthread_cond_destroy allows after a broadcast. */
static int cond_wait(struct coro_task *self, coro_cond *c, coro_mutex *m,
                     int64_t deadline)
{
    if (cond_mismatch(c, m))
        return EINVAL;
    c->mutex = m;
    coro_mutex_unlock(m);
    int status = wait_on(self, CORO__W_COND, c, &c->waiters, NULL, deadline);
    relock(self, m);
    return status;
}

int await_cond_wait(coro_cond *c, coro_mutex *m, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter(timeout, &self, &deadline);
    if (err)
        return err;
    err = cond_check(c, m, self);
    if (err)
        return err;
    return cond_wait(self, c, m, deadline);
}

int await_cond_wait_for(coro_cond *c, coro_mutex *m, int (*pred)(void *arg),
                        void *arg, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter(timeout, &self, &deadline);
    if (err)
        return err;
    err = pred ? cond_check(c, m, self) : EINVAL;
    /* One deadline for every wait: a notify that finds the predicate
     * false does not start the timeout again. */
    while (!err && !pred(arg))
        err = cond_wait(self, c, m, deadline);
    return err;
}

int coro_cond_notify(coro_cond *c, size_t n)
{
    if (!c || !owned(&c->obj))
        return EINVAL;
    while (n-- > 0 && c->waiters.head)
        complete(first(&c->waiters), 0);
    return 0;
}

int coro_cond_notify_all(coro_cond *c)
{
    return coro_cond_notify(c, SIZE_MAX);
}

int coro_cond_free(coro_cond *c)
{
    return object_free(c, sizeof *c, c && c->waiters.head, NULL, 0);
}

/* ----------------------------------------------------------------------
 * Barrier
 *
 * asyncio's drains a round through a condition: released tasks leave one
 * by one, and new arrivals wait until the last has gone. Here the last
 * arrival completes every waiter, handing it its index, as a released
 * lock is handed to its next holder: the round is over before anyone
 * runs, and the barrier is empty for the next one at once.
 * ---------------------------------------------------------------------- */

struct coro_barrier {
    struct object      obj;
    unsigned           parties;
    unsigned           waiting;   /* tasks on waiters */
    int                broken;    /* aborted, until reset */
    struct coro__list  waiters;   /* in arrival order */
};

coro_barrier *coro_barrier_new(unsigned parties)
{
    if (parties == 0) {
        errno = EINVAL;
        return NULL;
    }
    coro_barrier *b = object_new(sizeof *b);
    if (b)
        b->parties = parties;
    return b;
}

/* A waiter that times out or is cancelled leaves the round, which then
 * waits for one more: the barrier stays whole, as asyncio's does. */
static void barrier_detach(struct coro_task *t)
{
    struct waiter *w = t->waiting_on;
    if (w->list) {
        coro_barrier *b = w->elem;
        b->waiting--;
        waiter_remove(w);
    }
}

/* Completes every waiter with status, each told its place in arrival
 * order (what a trip returns). */
static void release_all(coro_barrier *b, int status)
{
    size_t index = 0;
    while (b->waiters.head) {
        struct waiter *w = first(&b->waiters);
        w->index = index++;
        complete(w, status);
    }
    b->waiting = 0;
}

int await_barrier_wait(coro_barrier *b, double timeout, unsigned *index)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter(timeout, &self, &deadline);
    if (err)
        return err;
    if (!b || !owned(&b->obj))
        return EINVAL;
    if (b->broken)
        return EPIPE;
    if (b->waiting == b->parties - 1) {
        release_all(b, 0);
        if (index)
            *index = b->parties - 1;
        return 0;
    }
    b->waiting++;
    err = park_on(self, CORO__W_BARRIER, b, &b->waiters, b, deadline,
                  barrier_detach);
    /* Read from the control block once the caller runs again, so that
     * index may point into its stack even when that is the shared one. */
    if (err == 0 && index)
        *index = (unsigned)task_waiter(self)->index;
    return err;
}

int coro_barrier_reset(coro_barrier *b)
{
    if (!b || !owned(&b->obj))
        return EINVAL;
    b->broken = 0;
    release_all(b, EPIPE);
    return 0;
}

int coro_barrier_abort(coro_barrier *b)
{
    if (!b || !owned(&b->obj))
        return EINVAL;
    b->broken = 1;
    release_all(b, EPIPE);
    return 0;
}

unsigned coro_barrier_parties(const coro_barrier *b)
{
    return b && visible(&b->obj) ? b->parties : 0;
}

unsigned coro_barrier_waiting(const coro_barrier *b)
{
    return b && visible(&b->obj) ? b->waiting : 0;
}

int coro_barrier_broken(const coro_barrier *b)
{
    return b && visible(&b->obj) && b->broken;
}

int coro_barrier_free(coro_barrier *b)
{
    return object_free(b, sizeof *b, b && b->waiters.head, NULL, 0);
}
