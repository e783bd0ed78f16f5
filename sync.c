/* sync.c: coordination between tasks of one loop. Channels (with select),
 * a queue of pointers, mutex, semaphore, event, condition.
 *
 * Every object is a wake source like any other: a task that must wait puts
 * a waiter (on its own stack) on the object's FIFO list and parks; whoever
 * makes progress possible completes the first waiter directly, handing it
 * the element, the lock or the permit, and wakes it. Nobody barges in: a
 * released lock belongs to the first waiter before it even runs. A waiter
 * woken by a timeout or a cancellation leaves the list in its detach hook,
 * so what it would have received stays for the next one.
 *
 * A select puts one waiter per operation on as many lists; the first to be
 * completed takes the task, and its detach hook takes the others off.
 *
 * Objects are not thread-safe: while tasks wait on one, it belongs to their
 * loop, and calls from another thread's loop are EINVAL.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------------
 * Waiters and wait lists
 * ---------------------------------------------------------------------- */

struct list {
    struct waiter *head;
    struct waiter *tail;
};

struct select_group;

/* One task waiting on one list; lives on the waiting task's stack. */
struct waiter {
    struct waiter       *prev;
    struct waiter       *next;
    struct list         *list;   /* the list it is on, NULL once off */
    struct coro_task    *task;
    void                *elem;   /* what it sends, or where it receives */
    struct select_group *group;  /* its select, or NULL */
    size_t               index;  /* its op in the select */
};

/* A select's waiters: the task waits on all of them at once. On the heap:
 * other tasks complete them while the selecting task is parked, when a
 * shared-stack task's stack is not in place. */
struct select_group {
    size_t        n;
    size_t        chosen;        /* the op that completed */
    struct waiter waiters[];
};

static void list_append(struct list *l, struct waiter *w)
{
    w->list = l;
    w->next = NULL;
    w->prev = l->tail;
    if (l->tail)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
}

static void list_remove(struct waiter *w)
{
    struct list *l = w->list;
    if (!l)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        l->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->tail = w->prev;
    w->list = NULL;
}

/* Takes w off its list and, for a select, its siblings off theirs. */
static void waiter_unlink(struct waiter *w)
{
    if (!w->group) {
        list_remove(w);
        return;
    }
    for (size_t i = 0; i < w->group->n; i++)
        list_remove(&w->group->waiters[i]);
}

static int waiter_detach(struct coro_task *t)
{
    struct waiter *w = t->waiting_on;
    waiter_unlink(w);
    return 0;
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

static void complete_all(struct list *l, int status)
{
    while (l->head)
        complete(l->head, status);
}

/* The checks every await_* here starts with. */
static int enter(double timeout, int64_t *deadline, struct coro_task **self)
{
    *self = coro__current();
    if (!*self)
        return EPERM;
    if (coro__deadline(timeout, deadline) != 0)
        return EINVAL;
    if ((*self)->cancelled && !(*self)->shield)
        return ECANCELED;
    return 0;
}

/* Objects belong to a loop while tasks wait on them. */
/* A zeroed object of size bytes, or NULL with errno ENOMEM: what every
 * _new returns. */
static void *object_new(size_t size)
{
    void *obj = coro__calloc(1, size);
    if (!obj)
        errno = ENOMEM;
    return obj;
}

/* Frees an object of size bytes unless busy (tasks wait on it, or it is
 * held): 0 or EBUSY. _free(NULL) does nothing. */
static int object_free(void *obj, size_t size, int busy)
{
    if (!obj)
        return 0;
    if (busy)
        return EBUSY;
    coro__free(obj, size);
    return 0;
}

static int same_loop(struct coro__loop *owner, int waited_on)
{
    struct coro_task *self = coro__current();
    return !waited_on || (self && self->loop == owner);
}

/* A task's waiter lives in its control block (see union coro__wait). */
static struct waiter *task_waiter(struct coro_task *t)
{
    _Static_assert(sizeof(struct waiter) <= sizeof t->wait.sync,
                   "union coro__wait must hold a waiter");
    return (struct waiter *)(void *)t->wait.sync;
}

/* Parks self on list l until completed or woken otherwise. A deadline
 * already past (a timeout of 0) only looked: ETIMEDOUT. */
static int wait_on(struct coro_task *self, int kind, const void *what,
                   struct list *l, void *elem, int64_t deadline)
{
    if (deadline != CORO__NEVER && deadline <= coro__clock_ns())
        return ETIMEDOUT;
    struct waiter *w = task_waiter(self);
    *w = (struct waiter){ .task = self, .elem = elem };
    list_append(l, w);
    self->waiting_on = w;
    int status = coro__park(self, kind, what, deadline, ETIMEDOUT,
                            waiter_detach);
    self->waiting_on = NULL;
    return status;
}

/* ----------------------------------------------------------------------
 * Channels
 * ---------------------------------------------------------------------- */

struct coro_chan {
    size_t             elem_size;
    size_t             cap;      /* buffered elements it holds at most */
    size_t             head;     /* oldest buffered element */
    size_t             count;    /* buffered elements */
    int                closed;
    struct list        senders;  /* waiting with an element to send */
    struct list        receivers;/* waiting for an element */
    struct coro__loop *loop;     /* the waiters' loop, while any wait */
    char              *buf;      /* cap * elem_size bytes */
};

coro_chan *coro_chan_new(size_t elem_size, size_t capacity)
{
    if (elem_size == 0 || (capacity && elem_size > SIZE_MAX / capacity)) {
        errno = EINVAL;
        return NULL;
    }
    coro_chan *c = coro__calloc(1, sizeof *c);
    if (c && capacity && !(c->buf = coro__alloc(capacity * elem_size))) {
        coro__free(c, sizeof *c);
        c = NULL;
    }
    if (!c) {
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
    if (c->receivers.head) { /* the buffer is empty: hand it over */
        struct waiter *r = c->receivers.head;
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
    struct waiter *s = c->senders.head;
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

static void chan_claim(coro_chan *c, struct coro_task *self)
{
    c->loop = self->loop;
}

int coro_chan_try_send(coro_chan *c, const void *elem)
{
    if (!c || !elem || !same_loop(c->loop, chan_waited_on(c)))
        return EINVAL;
    return chan_send_now(c, elem);
}

int coro_chan_try_recv(coro_chan *c, void *elem)
{
    if (!c || !elem || !same_loop(c->loop, chan_waited_on(c)))
        return EINVAL;
    return chan_recv_now(c, elem);
}

int await_chan_send(coro_chan *c, const void *elem, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = enter(timeout, &deadline, &self);
    if (err)
        return err;
    if (!c || !elem || !same_loop(c->loop, chan_waited_on(c)))
        return EINVAL;
    err = chan_send_now(c, elem);
    if (err != EAGAIN)
        return err;
    chan_claim(c, self);
    return wait_on(self, CORO__W_CHAN_SEND, c, &c->senders, (void *)elem, deadline);
}

int await_chan_recv(coro_chan *c, void *elem, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = enter(timeout, &deadline, &self);
    if (err)
        return err;
    if (!c || !elem || !same_loop(c->loop, chan_waited_on(c)))
        return EINVAL;
    err = chan_recv_now(c, elem);
    if (err != EAGAIN)
        return err;
    chan_claim(c, self);
    return wait_on(self, CORO__W_CHAN_RECV, c, &c->receivers, elem, deadline);
}

int coro_chan_close(coro_chan *c)
{
    if (!c || !same_loop(c->loop, chan_waited_on(c)))
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
    if (!c)
        return 0;
    if (chan_waited_on(c))
        return EBUSY;
    coro__free(c->buf, c->cap * c->elem_size);
    coro__free(c, sizeof *c);
    return 0;
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

int await_select(coro_chan_op *ops, size_t n, double timeout, size_t *chosen)
{
    struct coro_task *self;
    int64_t deadline;
    int err = enter(timeout, &deadline, &self);
    if (err)
        return err;
    if (!ops || n == 0 || !chosen)
        return EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!ops[i].chan || !ops[i].elem ||
            !same_loop(ops[i].chan->loop, chan_waited_on(ops[i].chan)))
            return EINVAL;
    err = select_now(ops, n, chosen);
    if (err != EAGAIN)
        return err;
    if (deadline != CORO__NEVER && deadline <= coro__clock_ns())
        return ETIMEDOUT;
    size_t size = sizeof(struct select_group) + n * sizeof(struct waiter);
    struct select_group *g = n <= SIZE_MAX / 2 / sizeof(struct waiter)
                                 ? coro__alloc(size)
                                 : NULL;
    if (!g)
        return ENOMEM;
    g->n = n;
    g->chosen = 0;
    for (size_t i = 0; i < n; i++) {
        coro_chan *c = ops[i].chan;
        g->waiters[i] = (struct waiter){ .task = self, .elem = ops[i].elem,
                                         .group = g, .index = i };
        list_append(ops[i].send ? &c->senders : &c->receivers,
                    &g->waiters[i]);
        chan_claim(c, self);
    }
    self->waiting_on = &g->waiters[0]; /* its group leads to the rest */
    int status = coro__park(self, CORO__W_SELECT, NULL, deadline, ETIMEDOUT,
                            waiter_detach);
    self->waiting_on = NULL;
    if (status == 0 || status == EPIPE)
        *chosen = g->chosen;
    coro__free(g, size);
    return status;
}

/* ----------------------------------------------------------------------
 * Queue
 * ---------------------------------------------------------------------- */

struct coro_queue {
    size_t             maxsize;    /* 0: unbounded */
    void             **items;      /* ring of cap items */
    size_t             cap;
    size_t             head;
    size_t             count;
    size_t             unfinished; /* put and not yet task_done */
    int                shutdown;
    struct list        getters;    /* waiting for an item */
    struct list        putters;    /* waiting for room, with their item */
    struct list        joiners;    /* waiting for unfinished to reach 0 */
    struct coro__loop *loop;
};

coro_queue *coro_queue_new(size_t maxsize)
{
    coro_queue *q = object_new(sizeof *q);
    if (q)
        q->maxsize = maxsize;
    return q;
}

static int queue_waited_on(const coro_queue *q)
{
    return q->getters.head || q->putters.head || q->joiners.head;
}

static int queue_grow(coro_queue *q)
{
    size_t cap = q->cap ? 2 * q->cap : 16;
    void **items = coro__alloc(cap * sizeof *items);
    if (!items)
        return ENOMEM;
    for (size_t i = 0; i < q->count; i++)
        items[i] = q->items[(q->head + i) % q->cap];
    coro__free(q->items, q->cap * sizeof *items);
    q->items = items;
    q->cap = cap;
    q->head = 0;
    return 0;
}

static int queue_push(coro_queue *q, void *item)
{
    if (q->count == q->cap && queue_grow(q) != 0)
        return ENOMEM;
    q->items[(q->head + q->count) % q->cap] = item;
    q->count++;
    return 0;
}

static int queue_put_now(coro_queue *q, void *item)
{
    if (q->shutdown)
        return EPIPE;
    if (q->getters.head) { /* empty: hand it over */
        q->unfinished++;
        *(void **)q->getters.head->elem = item;
        complete(q->getters.head, 0);
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
    *item = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    struct waiter *p = q->putters.head;
    if (p) { /* room for the first putter's item */
        queue_push(q, p->elem); /* cannot fail: a slot was just freed */
        q->unfinished++;
        complete(p, 0);
    }
    return 0;
}

int coro_queue_try_put(coro_queue *q, void *item)
{
    if (!q || !same_loop(q->loop, queue_waited_on(q)))
        return EINVAL;
    return queue_put_now(q, item);
}

int coro_queue_try_get(coro_queue *q, void **item)
{
    if (!q || !item || !same_loop(q->loop, queue_waited_on(q)))
        return EINVAL;
    return queue_get_now(q, item);
}

int await_queue_put(coro_queue *q, void *item, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = enter(timeout, &deadline, &self);
    if (err)
        return err;
    if (!q || !same_loop(q->loop, queue_waited_on(q)))
        return EINVAL;
    err = queue_put_now(q, item);
    if (err != EAGAIN)
        return err;
    q->loop = self->loop;
    return wait_on(self, CORO__W_QUEUE_PUT, q, &q->putters, item, deadline);
}

int await_queue_get(coro_queue *q, void **item, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = enter(timeout, &deadline, &self);
    if (err)
        return err;
    if (!q || !item || !same_loop(q->loop, queue_waited_on(q)))
        return EINVAL;
    err = queue_get_now(q, item);
    if (err != EAGAIN)
        return err;
    q->loop = self->loop;
    return wait_on(self, CORO__W_QUEUE_GET, q, &q->getters, item, deadline);
}

size_t coro_queue_size(const coro_queue *q)
{
    return q ? q->count : 0;
}

int coro_queue_task_done(coro_queue *q)
{
    if (!q || q->unfinished == 0 || !same_loop(q->loop, queue_waited_on(q)))
        return EINVAL;
    if (--q->unfinished == 0)
        complete_all(&q->joiners, 0);
    return 0;
}

int await_queue_join(coro_queue *q, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = enter(timeout, &deadline, &self);
    if (err)
        return err;
    if (!q || !same_loop(q->loop, queue_waited_on(q)))
        return EINVAL;
    if (q->unfinished == 0)
        return 0;
    q->loop = self->loop;
    return wait_on(self, CORO__W_QUEUE_JOIN, q, &q->joiners, NULL, deadline);
}

int coro_queue_shutdown(coro_queue *q)
{
    if (!q || !same_loop(q->loop, queue_waited_on(q)))
        return EINVAL;
    q->shutdown = 1;
    complete_all(&q->putters, EPIPE);
    complete_all(&q->getters, EPIPE); /* they wait only when empty */
    return 0;
}

int coro_queue_free(coro_queue *q)
{
    if (!q)
        return 0;
    if (queue_waited_on(q))
        return EBUSY;
    coro__free(q->items, q->cap * sizeof *q->items);
    coro__free(q, sizeof *q);
    return 0;
}

/* ----------------------------------------------------------------------
 * Mutex
 * ---------------------------------------------------------------------- */

struct coro_mutex {
    struct coro__loop *owner_loop; /* the holder's loop */
    uint64_t           owner;      /* the holder's task id; 0: free */
    struct list        waiters;
    struct coro__loop *loop;
};

unsigned long long coro__mutex_holder(const coro_mutex *m,
                                      const struct coro__loop *l)
{
    return m->owner_loop == l ? (unsigned long long)m->owner : 0;
}

coro_mutex *coro_mutex_new(void)
{
    return object_new(sizeof(coro_mutex));
}

static int holds(const coro_mutex *m, const struct coro_task *t)
{
    return t && m->owner == t->id && m->owner_loop == t->loop;
}

int await_mutex_lock(coro_mutex *m, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = enter(timeout, &deadline, &self);
    if (err)
        return err;
    if (!m || !same_loop(m->loop, m->waiters.head != NULL))
        return EINVAL;
    if (holds(m, self))
        return EDEADLK;
    if (m->owner == 0) {
        m->owner = self->id;
        m->owner_loop = self->loop;
        self->mutexes++;
        return 0;
    }
    m->loop = self->loop;
    /* unlock makes the first waiter the holder before waking it */
    return wait_on(self, CORO__W_MUTEX, m, &m->waiters, NULL, deadline);
}

int coro_mutex_unlock(coro_mutex *m)
{
    struct coro_task *self = coro__current();
    if (!m)
        return EINVAL;
    if (!holds(m, self))
        return EPERM;
    self->mutexes--;
    struct waiter *w = m->waiters.head;
    if (w) {
        m->owner = w->task->id;
        w->task->mutexes++;
        complete(w, 0);
    } else {
        m->owner = 0;
        m->owner_loop = NULL;
    }
    return 0;
}

int coro_mutex_free(coro_mutex *m)
{
    return object_free(m, sizeof *m, m && (m->owner || m->waiters.head));
}

/* ----------------------------------------------------------------------
 * Semaphore
 * ---------------------------------------------------------------------- */

struct coro_sem {
    unsigned           value;
    struct list        waiters;
    struct coro__loop *loop;
};

coro_sem *coro_sem_new(unsigned value)
{
    coro_sem *s = object_new(sizeof *s);
    if (s)
        s->value = value;
    return s;
}

int await_sem_acquire(coro_sem *s, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = enter(timeout, &deadline, &self);
    if (err)
        return err;
    if (!s || !same_loop(s->loop, s->waiters.head != NULL))
        return EINVAL;
    if (s->value > 0 && !s->waiters.head) {
        s->value--;
        return 0;
    }
    s->loop = self->loop;
    return wait_on(self, CORO__W_SEM, s, &s->waiters, NULL, deadline);
}

int coro_sem_release(coro_sem *s)
{
    if (!s || !same_loop(s->loop, s->waiters.head != NULL))
        return EINVAL;
    if (s->waiters.head) { /* the permit goes straight to the first */
        complete(s->waiters.head, 0);
        return 0;
    }
    if (s->value == UINT_MAX)
        return EOVERFLOW;
    s->value++;
    return 0;
}

int coro_sem_free(coro_sem *s)
{
    return object_free(s, sizeof *s, s && s->waiters.head);
}

/* ----------------------------------------------------------------------
 * Event
 * ---------------------------------------------------------------------- */

struct coro_event {
    int                set;
    struct list        waiters;
    struct coro__loop *loop;
};

coro_event *coro_event_new(void)
{
    return object_new(sizeof(coro_event));
}

int await_event(coro_event *e, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = enter(timeout, &deadline, &self);
    if (err)
        return err;
    if (!e || !same_loop(e->loop, e->waiters.head != NULL))
        return EINVAL;
    if (e->set)
        return 0;
    e->loop = self->loop;
    return wait_on(self, CORO__W_EVENT, e, &e->waiters, NULL, deadline);
}

void coro_event_set(coro_event *e)
{
    if (!e || !same_loop(e->loop, e->waiters.head != NULL))
        return;
    e->set = 1;
    complete_all(&e->waiters, 0);
}

void coro_event_clear(coro_event *e)
{
    if (e)
        e->set = 0;
}

int coro_event_is_set(const coro_event *e)
{
    return e && e->set;
}

int coro_event_free(coro_event *e)
{
    return object_free(e, sizeof *e, e && e->waiters.head);
}

/* ----------------------------------------------------------------------
 * Condition
 * ---------------------------------------------------------------------- */

struct coro_cond {
    coro_mutex        *mutex;   /* the waiters' mutex, while any wait */
    struct list        waiters;
    struct coro__loop *loop;
};

coro_cond *coro_cond_new(void)
{
    return object_new(sizeof(coro_cond));
}

int await_cond_wait(coro_cond *c, coro_mutex *m, double timeout)
{
    struct coro_task *self;
    int64_t deadline;
    int err = enter(timeout, &deadline, &self);
    if (err)
        return err;
    if (!c || !m || !same_loop(c->loop, c->waiters.head != NULL) ||
        (c->waiters.head && c->mutex != m))
        return EINVAL;
    if (!holds(m, self))
        return EPERM;
    c->mutex = m;
    c->loop = self->loop;
    coro_mutex_unlock(m);
    int status = wait_on(self, CORO__W_COND, c, &c->waiters, NULL, deadline);
    if (!c->waiters.head)
        c->mutex = NULL;
    /* Held again on every return: shielded and without a timeout, which
     * covers only the wait for a notify. */
    int shield = self->shield;
    self->shield = 1;
    int relocked = await_mutex_lock(m, -1);
    self->shield = (unsigned char)shield;
    CORO__ASSERT(relocked == 0); /* we let go of it: not EDEADLK */
    return status;
}

int coro_cond_notify(coro_cond *c, size_t n)
{
    if (!c || !same_loop(c->loop, c->waiters.head != NULL))
        return EINVAL;
    while (n-- > 0 && c->waiters.head)
        complete(c->waiters.head, 0);
    return 0;
}

int coro_cond_notify_all(coro_cond *c)
{
    return coro_cond_notify(c, SIZE_MAX);
}

int coro_cond_free(coro_cond *c)
{
    return object_free(c, sizeof *c, c && c->waiters.head);
}
