/* group.c: task groups, asyncio.TaskGroup and trio's nursery.
 *
 * A group owns its members: nobody joins or detaches them one by one, and
 * await_group waits until every member has ended. The first member to
 * fail (an error of its own, or a cancellation by anyone but the group)
 * makes the group cancel the rest; a caller of await_group that is
 * cancelled does the same, and still waits for them all. Members stay
 * until coro_group_free, so each one's result and error can be read.
 *
 * The group's record of its members (struct coro__await, pending = members
 * not ended) is on the heap with the group: members end, and report to it,
 * whenever they do, whether or not anyone awaits the group yet.
 */
#include "internal.h"

#include <errno.h>
#include <stdint.h>

struct coro_group {
    struct coro__owned owned;       /* the loop frees it at its end */
    struct coro__loop *loop;
    struct coro__await aw;          /* n members, pending not ended */
    struct coro__list  members;     /* in spawn order */
    struct coro_task  *waiter;      /* the task in await_group, if any */
    uint64_t           id;          /* 1, 2, ... per loop, for dumps */
    int                error;       /* the first member failure */
    unsigned char      cancelling;  /* it cancelled its members */
    unsigned char      finished;    /* await_group returned: no new
                                       members */
};

static struct coro_task *member(struct coro__link *n)
{
    return CORO__ENTRY(n, struct coro__extra, group_link)->task;
}

coro_group *coro_group_new(void)
{
    struct coro__loop *l = coro__loop();
    if (!l) {
        errno = EINVAL;
        return NULL;
    }
    coro_group *g = coro__calloc(1, sizeof *g);
    if (!g) {
        errno = ENOMEM;
        return NULL;
    }
    g->loop = l;
    g->aw.when = CORO_ALL_COMPLETED;
    g->id = ++l->next_group;
    coro__owned_add(l, &g->owned, sizeof *g);
    return g;
}

/* Cancels every member still running, as the group. */
static void group_cancel(coro_group *g)
{
    g->cancelling = 1;
    for (struct coro__link *n = g->members.head; n; n = n->next) {
        struct coro_task *t = member(n);
        if (t->state == CORO__DONE)
            continue;
        if (!t->cancelled)
            t->extra->group_cancelled = 1;
        coro__cancel(t);
    }
}

void coro__group_add(coro_group *g, struct coro_task *t)
{
    t->extra->group = g;
    coro__list_append(&g->members, &t->extra->group_link);
    g->aw.n++;
    g->aw.pending++;
    if (g->cancelling) { /* born cancelled: it still runs to clean up */
        t->cancelled = 1;
        t->extra->group_cancelled = 1;
    }
}

void coro__group_ended(struct coro_task *t)
{
    coro_group *g = t->extra->group;
    int err = coro__task_error(t);
    g->aw.pending--;
    if (err && !(err == ECANCELED && t->extra->group_cancelled)) {
        if (!g->error)
            g->error = err;
        if (!g->cancelling)
            group_cancel(g);
    }
    if (g->aw.pending == 0 && g->waiter && g->waiter->waiting_on == &g->aw)
        coro__wake(g->waiter, 0);
}

/* Whether g may be used by the calling thread's loop. */
static int usable(const coro_group *g)
{
    return g && g->loop == coro__loop();
}

coro_task *coro__group_spawn_at(coro_group *g, const coro_attr *attr,
                                coro_fn fn, void *arg, const char *fn_name,
                                const char *site)
{
    if (!usable(g) || g->finished) {
        errno = EINVAL;
        return NULL;
    }
    int err;
    struct coro_task *t = coro__spawn(attr, fn, arg, fn_name, site, g,
                                      __builtin_return_address(0), &err);
    if (!t)
        errno = err;
    return t;
}

coro_task *(coro_group_spawn)(coro_group *g, const coro_attr *attr,
                              coro_fn fn, void *arg)
{
    return coro__group_spawn_at(g, attr, fn, arg, NULL, NULL);
}

/* Waits, uninterrupted, until every member has ended. */
static void drain(struct coro_task *self, coro_group *g)
{
    struct coro__park wait = {
        .kind = CORO__W_GROUP,
        .deadline = CORO__NEVER,
        .what = g,
        .record = &g->aw,
        .record_size = sizeof g->aw,
    };
    while (g->aw.pending > 0)
        coro__park_shielded(self, &wait);
}

int await_group(coro_group *g)
{
    struct coro_task *self;
    int64_t deadline;
    int status = coro__enter_unrecorded(-1, &self, &deadline);
    if (status == EPERM)
        return EPERM;
    if (!usable(g))
        return EINVAL;
    if (coro__task_group(self) == g)
        return EDEADLK; /* a member would wait for itself */
    if (g->waiter)
        return EINVAL;
    g->waiter = self;
    /* Again after each wake: another task may spawn a member between the
     * last one's end and this task running. */
    while (!status && g->aw.pending > 0)
        status = coro__park(self, &(struct coro__park){
            .kind = CORO__W_GROUP,
            .timeout_status = ETIMEDOUT,
            .deadline = deadline,
            .what = g,
            .record = &g->aw,
            .record_size = sizeof g->aw,
        });
    if (status) {
        group_cancel(g);
        drain(self, g);
    }
    g->waiter = NULL;
    g->finished = 1;
    return status ? status : g->error;
}

size_t coro_group_size(const coro_group *g)
{
    return usable(g) ? g->aw.n : 0;
}

int coro_group_result(const coro_group *g, size_t i, void **result)
{
    if (!usable(g) || i >= g->aw.n)
        return EINVAL;
    struct coro__link *n = g->members.head;
    while (i--)
        n = n->next;
    struct coro_task *t = member(n);
    if (t->state != CORO__DONE)
        return EAGAIN;
    if (result)
        *result = t->result;
    return coro__task_error(t);
}

unsigned long long coro__group_id(const coro_group *g)
{
    return g->id;
}

int coro_group_free(coro_group *g)
{
    if (!g)
        return 0;
    if (!usable(g))
        return EINVAL;
    if (g->aw.pending > 0 || g->waiter)
        return EBUSY;
    while (g->members.head) {
        struct coro_task *t = member(g->members.head);
        coro__list_remove(&g->members, &t->extra->group_link);
        t->joined = 1;
        coro__task_free(g->loop, t);
    }
    coro__owned_free(g->loop, &g->owned);
    return 0;
}
