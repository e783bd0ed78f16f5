/* join.c: awaiting tasks. await_task (join, and wait_for), await_gather,
 * await_wait, and the as_completed iterator.
 *
 * A task has at most one awaiter: t->waiter, and t->report, the record it
 * tells of its end. For a join, gather or wait the record is the
 * awaiter's wait record (its `wait`); an as_completed iterator or a
 * group keeps it on the heap, since tasks end between its waits. An ending
 * task updates the record, and wakes its awaiter only if the awaiter is
 * parked on that very record and the record's condition now holds. Join,
 * gather and wait are the same code with different conditions.
 */
#include "internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

static int await_satisfied(const struct coro__await *aw)
{
    switch (aw->when) {
    case CORO_FIRST_COMPLETED:
        return aw->pending < aw->n;
    case CORO_FIRST_EXCEPTION:
        return aw->failed || aw->pending == 0;
    default:
        return aw->pending == 0;
    }
}

int coro__task_ended(struct coro_task *t)
{
    if (coro__task_group(t)) {
        coro__group_ended(t);
        return 1;
    }
    if (!t->waiter)
        return 0;
    struct coro__await *aw = t->report;
    struct coro_task *w = t->waiter;
    aw->pending--;
    int err = coro__task_error(t);
    if (err && err != ECANCELED)
        aw->failed = 1;
    if (w->waiting_on == aw && await_satisfied(aw))
        coro__wake(w, 0);
    return 1;
}

/* Lets go of a claimed task that stays the caller's to join: a task
 * detached meanwhile is freed if it has ended, or will be when it ends. */
static void release(struct coro__loop *l, struct coro_task *t)
{
    t->waiter = NULL;
    t->report = NULL;
    if (t->detached && t->state == CORO__DONE)
        coro__task_free(l, t);
}

static int claim_one(struct coro__loop *l, struct coro_task *self,
                     struct coro_task *t)
{
    if (!t || t->loop != l)
        return EINVAL;
    if (t == self)
        return EDEADLK;
    if (t->detached || t->waiter || coro__task_group(t))
        return EINVAL;
    return 0;
}

/* Makes self the awaiter of tasks[0..n), reporting to aw, which is
 * cleared first; on error nothing is claimed. A task listed twice is
 * found claimed the second time. */
static int claim_into(struct coro__loop *l, struct coro_task *self,
                      coro_task **tasks, size_t n, enum coro_when when,
                      struct coro__await *aw)
{
    size_t i;
    int err = 0;
    *aw = (struct coro__await){ .when = when };
    for (i = 0; i < n; i++) {
        err = claim_one(l, self, tasks[i]);
        if (err)
            break;
        tasks[i]->waiter = self;
        tasks[i]->report = aw;
        int e = coro__task_error(tasks[i]);
        if (tasks[i]->state != CORO__DONE)
            aw->pending++;
        else if (e && e != ECANCELED)
            aw->failed = 1;
    }
    if (err) {
        while (i--)
            tasks[i]->waiter = NULL;
        return err;
    }
    aw->n = n;
    return 0;
}

/* As claim_into, for one wait of self's: the record is in its control
 * block. */
static int claim(struct coro__loop *l, struct coro_task *self,
                 coro_task **tasks, size_t n, enum coro_when when)
{
    int err = claim_into(l, self, tasks, n, when, &self->wait->await);
    if (!err)
        self->awaiting = 1;
    return err;
}

/* Ends a wait that frees nothing: a task detached meanwhile is freed if it
 * has ended, or will be when it ends. */
static void unclaim(struct coro__loop *l, struct coro_task *self,
                    coro_task **tasks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        release(l, tasks[i]);
    self->awaiting = 0;
}

/* Parks self until its await condition holds: 0, ETIMEDOUT or ECANCELED.
 * entry is coro__enter's verdict: a cancelled caller gets ECANCELED even
 * if the condition already holds (cancellation is sticky). */
static int await_claimed(struct coro_task *self, int entry, int kind,
                         const void *what, int64_t deadline)
{
    if (entry)
        return entry;
    if (await_satisfied(&self->wait->await))
        return 0;
    return coro__park(self, &(struct coro__park){
        .kind = (unsigned char)kind,
        .timeout_status = ETIMEDOUT,
        .deadline = deadline,
        .what = what,
        .record = &self->wait->await,
        .record_size = sizeof self->wait->await,
    });
}

/* The structured ending of a join or gather that timed out or was
 * cancelled: cancel what is still running and wait, shielded, until every
 * claimed task has ended. */
static void cancel_and_drain(struct coro_task *self, coro_task **tasks,
                             size_t n, int kind)
{
    struct coro__await *aw = &self->wait->await;
    for (size_t i = 0; i < n; i++)
        coro__cancel(tasks[i]);
    aw->when = CORO_ALL_COMPLETED;
    struct coro__park drain = {
        .kind = (unsigned char)kind,
        .deadline = CORO__NEVER,
        .what = n == 1 ? tasks[0] : NULL,
        .record = aw,
        .record_size = sizeof *aw,
    };
    while (aw->pending > 0)
        coro__park_shielded(self, &drain);
}

int await_task_timeout(coro_task *t, double timeout, void **result)
{
    struct coro_task *self;
    int64_t deadline;
    int entry = coro__enter(timeout, &self, &deadline);
    if (entry == EPERM || entry == EINVAL || entry == ENOMEM)
        return entry; /* ECANCELED, ETIMEDOUT (a scope): cancel, await */
    struct coro__loop *l = self->loop;
    int err = claim(l, self, &t, 1, CORO_ALL_COMPLETED);
    if (err)
        return err;
    int status = await_claimed(self, entry, CORO__W_JOIN, t, deadline);
    if (status) {
        cancel_and_drain(self, &t, 1, CORO__W_JOIN);
        /* asyncio.wait_for: the caller's own cancellation comes first,
         * also one that came while t was cleaning up after the timeout. */
        if (status == ETIMEDOUT &&
            coro__enter_unrecorded(-1, &self, NULL) == ECANCELED)
            status = ECANCELED;
    }
    self->awaiting = 0;
    if (result)
        *result = t->result;
    /* The timeout may be a scope's: one already past at the entry is
     * ETIMEDOUT at once, as for every await_*. */
    err = coro__await_outcome(status, coro__task_error(t), entry == 0);
    t->joined = 1;
    coro__task_free(l, t);
    return err;
}

int await_task(coro_task *t, void **result)
{
    return await_task_timeout(t, -1, result);
}

int await_gather(coro_task **tasks, size_t n, void **results, int *errors)
{
    struct coro_task *self;
    int64_t deadline;
    int entry = coro__enter(-1, &self, &deadline);
    if (entry == EPERM || entry == ENOMEM || n == 0)
        return entry;
    if (!tasks)
        return EINVAL;
    struct coro__loop *l = self->loop;
    int err = claim(l, self, tasks, n, CORO_ALL_COMPLETED);
    if (err)
        return err;
    int status = await_claimed(self, entry, CORO__W_GATHER, NULL, deadline);
    if (status)
        cancel_and_drain(self, tasks, n, CORO__W_GATHER);
    self->awaiting = 0;
    /* The first failure in time, not in argument order. */
    uint64_t first_end = UINT64_MAX;
    int first_err = 0;
    for (size_t i = 0; i < n; i++) {
        struct coro_task *t = tasks[i];
        int e = coro__task_error(t);
        if (e && t->end_seq < first_end) {
            first_end = t->end_seq;
            first_err = e;
        }
        if (results)
            results[i] = t->result;
        if (errors)
            errors[i] = e;
        t->joined = 1;
        coro__task_free(l, t);
    }
    return status ? status : first_err;
}

static int by_end_seq(const void *a, const void *b)
{
    const struct coro_task *x = *(coro_task *const *)a;
    const struct coro_task *y = *(coro_task *const *)b;
    return (x->end_seq > y->end_seq) - (x->end_seq < y->end_seq);
}

/* Moves the ended tasks to the front, in the order they ended. */
static size_t order_done_first(coro_task **tasks, size_t n)
{
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        if (tasks[i]->state == CORO__DONE) {
            coro_task *t = tasks[i];
            tasks[i] = tasks[done];
            tasks[done++] = t;
        }
    }
    qsort(tasks, done, sizeof *tasks, by_end_seq);
    return done;
}

int await_wait(coro_task **tasks, size_t n, enum coro_when when,
               double timeout, size_t *ndone)
{
    struct coro_task *self;
    int64_t deadline;
    size_t done = 0;
    int err = coro__enter(timeout, &self, &deadline);
    if (err == EPERM || err == EINVAL || err == ENOMEM)
        return err;
    if ((when != CORO_FIRST_COMPLETED && when != CORO_FIRST_EXCEPTION &&
         when != CORO_ALL_COMPLETED) ||
        (!tasks && n > 0))
        return EINVAL;
    if (n > 0) {
        struct coro__loop *l = self->loop;
        int claimed = claim(l, self, tasks, n, when);
        if (claimed)
            return claimed;
        /* Its own timeout is an ordinary end; a scope's is ETIMEDOUT. */
        int scoped = err == ETIMEDOUT || coro__scope_limits(self, deadline);
        err = await_claimed(self, err, CORO__W_WAIT, NULL, deadline);
        if (err == ETIMEDOUT && !scoped)
            err = 0;
        if (!err)
            done = order_done_first(tasks, n);
        unclaim(l, self, tasks, n);
    }
    if (ndone)
        *ndone = done;
    return err;
}

/* ----------------------------------------------------------------------
 * as_completed: the tasks one at a time, in the order they end
 * ---------------------------------------------------------------------- */

struct coro_completions {
    struct coro__owned owned;       /* the loop frees it at its end */
    struct coro__await aw;          /* n: not handed out; pending: of
                                       those, not ended */
    struct coro__loop *loop;
    struct coro_task  *owner;       /* the awaiter of the tasks */
    int64_t            deadline;    /* for the whole iteration */
    int                waited_in;   /* the owner is parked in
                                       await_as_completed on it */
    coro_task         *tasks[];     /* the first aw.n are not handed out */
};

int coro_as_completed(coro_task **tasks, size_t n, double timeout,
                      coro_completions **out)
{
    struct coro_task *self = coro__current();
    int64_t deadline;
    if (!self)
        return EPERM;
    if (!out || (!tasks && n > 0) || coro__deadline(timeout, &deadline) ||
        n > (SIZE_MAX - sizeof(coro_completions)) / sizeof *tasks)
        return EINVAL;
    size_t size = sizeof(coro_completions) + n * sizeof *tasks;
    coro_completions *c = coro__alloc(size);
    if (!c)
        return ENOMEM;
    for (size_t i = 0; i < n; i++)
        c->tasks[i] = tasks[i];
    int err = claim_into(self->loop, self, c->tasks, n, CORO_FIRST_COMPLETED,
                         &c->aw);
    if (err) {
        coro__free(c, size);
        return err;
    }
    c->loop = self->loop;
    c->owner = self;
    c->deadline = deadline;
    c->waited_in = 0;
    coro__owned_add(self->loop, &c->owned, size);
    *out = c;
    return 0;
}

/* Hands out the ended task that ended first, if any: removed from the
 * list and released, so that the caller can join it. A task detached
 * meanwhile is freed instead (nobody may join it). */
static struct coro_task *take_first_ended(coro_completions *c)
{
    for (;;) {
        size_t best = c->aw.n;
        for (size_t i = 0; i < c->aw.n; i++)
            if (c->tasks[i]->state == CORO__DONE &&
                (best == c->aw.n ||
                 c->tasks[i]->end_seq < c->tasks[best]->end_seq))
                best = i;
        if (best == c->aw.n)
            return NULL;
        struct coro_task *t = c->tasks[best];
        c->tasks[best] = c->tasks[--c->aw.n];
        int detached = t->detached;
        release(c->loop, t);
        if (!detached)
            return t;
    }
}

int await_as_completed(coro_completions *c, coro_task **done)
{
    struct coro_task *self;
    int64_t deadline;
    int err = coro__enter_unrecorded(-1, &self, &deadline);
    if (err)
        return err;
    if (!c || !done || c->owner != self)
        return EINVAL;
    if (c->deadline < deadline)
        deadline = c->deadline;
    struct coro_task *t;
    while (!(t = take_first_ended(c))) {
        if (c->aw.n == 0)
            return EPIPE;
        c->waited_in = 1;
        err = coro__park(self, &(struct coro__park){
            .kind = CORO__W_AS_COMPLETED,
            .timeout_status = ETIMEDOUT,
            .deadline = deadline,
            .what = c,
            .record = &c->aw,
            .record_size = sizeof c->aw,
        });
        c->waited_in = 0;
        if (err)
            return err;
    }
    *done = t;
    return 0;
}

int coro_completions_free(coro_completions *c)
{
    if (!c)
        return 0;
    struct coro__loop *l = c->loop;
    if (l != coro__loop())
        return EINVAL;
    if (c->waited_in)
        return EBUSY;
    for (size_t i = 0; i < c->aw.n; i++)
        release(l, c->tasks[i]);
    coro__owned_free(l, &c->owned);
    return 0;
}
