/* scope.c: timeout scopes, asyncio.timeout and timeout_at (trio's
 * move_on_after and fail_after).
 *
 * A scope is a deadline that every await_* made inside it inherits. Each
 * task keeps its open scopes innermost first (t->extra->scope, and
 * t->scoped says there is one), and coro__enter,
 * which every await_* calls, hands the nearest deadline to the wait: the
 * earliest of the call's own timeout and the scopes' deadlines, so an
 * inner scope never extends an outer one. A scope whose deadline has
 * passed makes every await_* inside it return ETIMEDOUT at once; a wait
 * that its deadline ends returns ETIMEDOUT too, even a sleep. Either way
 * the scope is marked expired, and closing it says so.
 *
 * A shield holds back the scopes that were open when it went on: clean-up
 * under a shield may wait past them (trio's shielded cancel scope), but a
 * scope opened inside the shield, and every call's own timeout, still
 * apply. Scopes are on the heap, freed by coro_timeout_close, or with the
 * task if it ends with them open.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>

struct coro_timeout {
    struct coro_timeout *outer;     /* the task's next scope out, or NULL */
    struct coro_task    *task;      /* the task that opened it */
    int64_t              when;      /* deadline, or CORO__NEVER */
    unsigned char        expired;   /* an await_* inside ended by it */
};

/* An absolute deadline from coro_now() seconds: 0 or EINVAL (NaN).
 * Negative or infinite: none. */
static int absolute(double when, int64_t *out)
{
    if (isnan(when))
        return EINVAL;
    if (when < 0 || when >= (double)CORO__NEVER / 1e9)
        *out = CORO__NEVER;
    else
        *out = (int64_t)(when * 1e9);
    return 0;
}

static int open_at(struct coro_task *self, int64_t when,
                   coro_timeout **scope)
{
    /* The extra block keeps the scope the wait is bound by and the
     * shield's: made now, so that no later step can fail. */
    if (!coro__extra_get(self))
        return ENOMEM;
    coro_timeout *s = coro__alloc(sizeof *s);
    if (!s)
        return ENOMEM;
    *s = (coro_timeout){ .outer = self->extra->scope, .task = self,
                         .when = when };
    self->extra->scope = s;
    self->scoped = 1;
    *scope = s;
    return 0;
}

int coro_timeout_open(double seconds, coro_timeout **scope)
{
    struct coro_task *self = coro__current();
    int64_t when;
    if (!self)
        return EPERM;
    if (!scope || coro__deadline(seconds, &when) != 0)
        return EINVAL;
    return open_at(self, when, scope);
}

int coro_timeout_open_at(double when, coro_timeout **scope)
{
    struct coro_task *self = coro__current();
    int64_t at;
    if (!self)
        return EPERM;
    if (!scope || absolute(when, &at) != 0)
        return EINVAL;
    return open_at(self, at, scope);
}

/* Whether the calling task may touch s: only the task that opened it. */
static int mine(const coro_timeout *s)
{
    return s && s->task == coro__current();
}

int coro_timeout_reschedule(coro_timeout *s, double when)
{
    int64_t at;
    if (!mine(s) || absolute(when, &at) != 0 || s->expired)
        return EINVAL;
    s->when = at;
    return 0;
}

double coro_timeout_when(const coro_timeout *s)
{
    if (!mine(s) || s->when == CORO__NEVER)
        return -1;
    return (double)s->when / 1e9;
}

int coro_timeout_expired(const coro_timeout *s)
{
    return mine(s) && s->expired;
}

int coro_timeout_close(coro_timeout *s)
{
    if (!mine(s) || s->task->extra->scope != s)
        return EINVAL; /* not the calling task's innermost */
    struct coro_task *t = s->task;
    int expired = s->expired;
    if (t->extra->shield_scope == s) /* closed inside the shield */
        t->extra->shield_scope = s->outer;
    t->extra->scope = s->outer;
    t->scoped = s->outer != NULL;
    t->extra->scope_bound = NULL;
    coro__free(s, sizeof *s);
    return expired ? ETIMEDOUT : 0;
}

int coro__scope_enter(struct coro_task *t, int64_t *deadline)
{
    struct coro__extra *x = t->extra; /* a scope is open: it has one */
    coro_timeout *bound = NULL;
    for (coro_timeout *s = x->scope; s; s = s->outer) {
        if (t->shield && s == x->shield_scope)
            break; /* it and those outside it: open before the shield */
        if (!bound || s->when < bound->when)
            bound = s;
    }
    x->scope_bound = NULL;
    if (!bound || bound->when == CORO__NEVER)
        return 0;
    if (bound->when <= coro__clock_ns()) {
        bound->expired = 1;
        return ETIMEDOUT;
    }
    if (deadline && bound->when < *deadline) {
        *deadline = bound->when;
        x->scope_bound = bound;
    }
    return 0;
}

int coro__scope_limits(const struct coro_task *t, int64_t deadline)
{
    return t->scoped && t->extra->scope_bound &&
           deadline == t->extra->scope_bound->when;
}

void coro__scope_expired(struct coro_task *t)
{
    t->extra->scope_bound->expired = 1;
}

void coro__scopes_free(struct coro_task *t)
{
    struct coro__extra *x = t->extra; /* a scope is open: it has one */
    while (x->scope) {
        coro_timeout *s = x->scope;
        x->scope = s->outer;
        coro__free(s, sizeof *s);
    }
    t->scoped = 0;
    x->scope_bound = NULL;
    x->shield_scope = NULL;
}
