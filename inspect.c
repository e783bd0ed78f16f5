/* inspect.c: looking at tasks without joining them. asyncio's Task.done(),
 * cancelled(), cancelling(), result() and exception(), set_name(),
 * asyncio.all_tasks(), and a task's state as data (coro_task_info), which
 * coro_dump (debug.c) turns into words.
 *
 * Every call reads the loop of the calling thread only, and accepts only
 * its tasks: a task of another thread's loop is refused on its t->loop,
 * written once at spawn, without touching anything that thread changes.
 */
#include "internal.h"

#include <string.h>

_Static_assert(sizeof((struct coro_task_info *)0)->name == CORO__NAME_MAX,
               "coro_task_info.name must hold a task's name");

/* Whether t is a task of this thread's loop. */
static int ours(const struct coro_task *t)
{
    struct coro__loop *l = coro__loop();
    return t && l && t->loop == l;
}

int coro_task_done(const coro_task *t)
{
    return ours(t) && t->state == CORO__DONE;
}

int coro_task_cancelled(const coro_task *t)
{
    return coro_task_done(t) && coro__task_error(t) == ECANCELED;
}

int coro_task_cancelling(const coro_task *t)
{
    return ours(t) && t->cancelled;
}

int coro_task_result(const coro_task *t, void **result, int *error)
{
    if (!ours(t))
        return EINVAL;
    if (t->state != CORO__DONE)
        return EAGAIN;
    if (result)
        *result = t->result;
    if (error)
        *error = coro__task_error(t);
    return 0;
}

/* Copies at most CORO__NAME_MAX - 1 bytes of name (NULL: none), which
 * may be (a tail of) dst itself: a task renamed after coro_name. */
static void name_copy(char *dst, const char *name)
{
    size_t n = name ? strnlen(name, CORO__NAME_MAX - 1) : 0;
    memmove(dst, name ? name : "", n);
    dst[n] = '\0';
}

int coro_task_set_name(coro_task *t, const char *name)
{
    if (!ours(t))
        return EINVAL;
    if (!t->extra && (!name || !name[0]))
        return 0; /* no name, and none to clear */
    struct coro__extra *x = coro__extra_get(t);
    if (!x)
        return ENOMEM;
    name_copy(x->name, name);
    return 0;
}

size_t coro_tasks(coro_task **out, size_t cap)
{
    struct coro__loop *l = coro__loop();
    if (!l)
        return 0;
    if (!out)
        cap = 0;
    size_t i = 0;
    for (struct coro__link *n = l->all.head; n && i < cap; n = n->next)
        out[i++] = CORO__TASK_OF(n);
    return l->ntasks;
}

static enum coro_task_state state_of(const struct coro_task *t)
{
    switch (t->state) {
    case CORO__READY:
        return CORO_STATE_READY;
    case CORO__RUNNING:
        return CORO_STATE_RUNNING;
    case CORO__PARKED:
        return CORO_STATE_PARKED;
    default:
        return CORO_STATE_ENDED;
    }
}

/* What a parked task waits on. A join's drain (after a timeout or a
 * cancellation) waits as a join still, on the same task. */
static void wait_of(const struct coro_task *t, struct coro_task_info *in)
{
    in->wait = coro__wait_name(t->wait_kind);
    if (t->timer.id != CORO__TIMER_IDLE)
        in->wait_deadline =
            (double)coro__timer_when(&t->loop->timers, &t->timer) / 1e9;
    switch (t->wait_kind) {
    case CORO__W_JOIN:
        in->wait_object = t->wait_what;
        in->wait_task = ((const struct coro_task *)t->wait_what)->id;
        /* fall through */
    case CORO__W_GATHER:
    case CORO__W_WAIT:
        if (t->awaiting) {
            in->wait_tasks = t->wait->await.n;
            in->wait_pending = t->wait->await.pending;
        }
        return;
    case CORO__W_FD_READ:
    case CORO__W_FD_WRITE:
        in->wait_fd = t->wait->io.fd;
        return;
    case CORO__W_MUTEX:
        in->wait_task = coro__mutex_holder(t->wait_what, t->loop);
        break;
    default:
        break;
    }
    in->wait_object = t->wait_what;
}

int coro_task_info(const coro_task *t, struct coro_task_info *info)
{
    if (!ours(t) || !info)
        return EINVAL;
    *info = (struct coro_task_info){
        .id = t->id,
        .state = state_of(t),
        .wait_fd = -1,
        .wait_deadline = -1,
        .since = (double)coro__since(t) / 1e9,
        .cancelling = t->cancelled,
        .shielded = t->shield,
        .awaited_by = t->waiter ? t->waiter->id : 0,
        .site = coro__spawn_site(t),
        .spawn_pc = coro__spawn_pc(t),
        .stack_size = coro__stack_size_of(t),
        .stack_used = coro_stack_high_water(t),
        .shared_stack = t->shared,
        .runs = coro__runs(t),
    };
    int64_t ran, longest;
    coro__accounts(t, &ran, &longest);
    info->run_time = (double)ran / 1e9;
    info->longest_run = (double)longest / 1e9;
    name_copy(info->name, coro__name(t));
    if (t->state == CORO__PARKED)
        wait_of(t, info);
    if (t->state == CORO__DONE) {
        info->error = coro__task_error(t);
        info->cancelled = info->error == ECANCELED;
    }
    return 0;
}
