/* sched.c: the loop. Thread-local state, the FIFO ready queue, park and
 * wake, coro_run, spawn, yield, sleep, cancel, shield, detach, and
 * deadlock detection. Awaiting tasks (join, gather, wait) is join.c's.
 *
 * Switching. A task that stops running (parks, yields, ends) switches
 * straight to the next ready task rather than back to the loop's context and
 * out again: a handoff is then one swapcontext, not two. Only when nothing
 * is ready does it switch to the loop's context (the coro_run caller's
 * stack), which waits in the kernel. Due timers are fired on every such
 * switch (one clock read, when any timer is armed), so a pair of tasks
 * yielding to each other forever cannot starve the sleepers.
 *
 * Park. Every wait in the runtime goes through coro__park, which owns the
 * rules that make a wait safe (see internal.h): the cancellation check, the
 * deadline, where the wait's record may live, and the count of parked
 * tasks that something outside the tasks can wake, which is all deadlock
 * detection needs.
 */
#include "switch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

__thread struct coro__loop *coro__tls_loop;

struct coro_task *coro__current(void)
{
    return coro__tls_loop ? coro__tls_loop->current : NULL;
}

struct coro__loop *coro__loop(void)
{
    return coro__tls_loop;
}

/* ----------------------------------------------------------------------
 * The ready queue
 * ---------------------------------------------------------------------- */

static void ready_push(struct coro__loop *l, struct coro_task *t)
{
    t->state = CORO__READY;
    t->ready_next = NULL;
    if (l->ready_tail)
        l->ready_tail->ready_next = t;
    else
        l->ready_head = t;
    l->ready_tail = t;
}

static struct coro_task *ready_pop(struct coro__loop *l)
{
    struct coro_task *t = l->ready_head;
    if (t) {
        l->ready_head = t->ready_next;
        if (!l->ready_head)
            l->ready_tail = NULL;
    }
    return t;
}

/* ----------------------------------------------------------------------
 * Park, wake, switch
 * ---------------------------------------------------------------------- */

static int task_cancelled(const struct coro_task *t)
{
    return t->cancelled && !t->shield;
}

/* What await_task reports for an ended task. */
static int task_error(const struct coro_task *t)
{
    if (t->error)
        return t->error;
    return t->cancelled ? ECANCELED : 0;
}

int coro__task_error(const struct coro_task *t)
{
    return task_error(t);
}

/* The wake sources outside the tasks that a parked task counts on, in the
 * loop's tallies: deadlock detection and I/O fairness read only these. */
static void wakers_count(struct coro__loop *l, struct coro_task *t,
                         unsigned wakers)
{
    t->wakers = (unsigned char)wakers;
    if (wakers) {
        l->waits_outside++;
        if (wakers & CORO__BY_KERNEL)
            l->waits_kernel++;
        if (wakers & CORO__BY_THREAD)
            l->waits_thread++;
    }
}

static void wakers_forget(struct coro__loop *l, struct coro_task *t)
{
    if (t->wakers) {
        l->waits_outside--;
        if (t->wakers & CORO__BY_KERNEL)
            l->waits_kernel--;
        if (t->wakers & CORO__BY_THREAD)
            l->waits_thread--;
        t->wakers = 0;
    }
}

/* Takes a parked task off its source and its timer. */
static void unpark(struct coro__loop *l, struct coro_task *t)
{
    if (t->detach) {
        t->detach(t);
        t->detach = NULL;
    }
    if (t->wakers & CORO__BY_TIMER)
        coro__timer_stop(&l->timers, &t->timer);
    wakers_forget(l, t);
}

void coro__wake(struct coro_task *t, int status)
{
    if (t->state != CORO__PARKED)
        return;
    struct coro__loop *l = t->loop;
    unpark(l, t);
    t->wake_status = status;
    t->wait_kind = CORO__W_NONE;
    t->since_ms = (uint32_t)l->seen_ms;
    ready_push(l, t);
    if (CORO__UNLIKELY(l->noting))
        coro__note(l, t, CORO__NOTE_READY);
}

/* The loop's clock for t->since_ms: it never steps back, though the coarse
 * clock that ticks and sleeps read lags the one timers read by up to a
 * kernel tick, so that no task's since_ms is ahead of it. */
static void seen_at(struct coro__loop *l, int64_t ns)
{
    int64_t ms = ns / 1000000;
    if (ms > l->seen_ms)
        l->seen_ms = ms;
}

static void fire_timers(struct coro__loop *l)
{
    int64_t now = coro__clock_ns();
    seen_at(l, now);
    struct coro__timer *node;
    while ((node = coro__timer_expired(&l->timers, now)) != NULL) {
        struct coro_task *t = CORO__CONTAINER_OF(node, struct coro_task,
                                                 timer);
        coro__wake(t, t->timeout_status);
    }
}

/* Every CORO__TICK_EVERY switches: a clock for t->since_ms, and, while tasks
 * keep the ready queue busy, a look at I/O (when tasks wait on fds) and
 * the calls other threads posted (loop.c), which the loop's context runs
 * on its own stack. 1 if the loop's context has either to do. Posts and
 * I/O so wait at most that many switches, and a flood of either cannot
 * starve the tasks. */
static int tick(struct coro__loop *l)
{
    l->ticks = 0;
    seen_at(l, coro__coarse_ns());
    if (l->waits_kernel && l->ready_head) {
        l->poll_due = 1;
        return 1;
    }
    return l->calls_due;
}

/* The task to run next, after firing due timers and collecting what other
 * threads posted; NULL if none is ready, or if I/O is due a look. */
static inline __attribute__((always_inline)) struct coro_task *
next_ready(struct coro__loop *l)
{
    if (l->timers.n)
        fire_timers(l);
    if (CORO__UNLIKELY(coro__poller_posted(&l->poller)))
        coro__poller_collect(&l->poller);
    if (CORO__UNLIKELY(++l->ticks >= CORO__TICK_EVERY) && tick(l)) {
        l->current = NULL;
        return NULL;
    }
    struct coro_task *t = ready_pop(l);
    if (t) {
        t->state = CORO__RUNNING;
        if (CORO__UNLIKELY(l->noting))
            coro__note(l, t, CORO__NOTE_RUN);
    }
    l->current = t;
    return t;
}

void coro__task_free(struct coro__loop *l, struct coro_task *t)
{
    coro__local_end(t); /* a task abandoned before it ended */
    if (CORO__UNLIKELY(t->scoped)) /* ended with scopes open */
        coro__scopes_free(t);
    if (CORO__UNLIKELY(t->extra != NULL)) {
        if (t->extra->wait_block) /* abandoned in a select */
            coro__free(t->extra->wait_block, t->extra->wait_block_size);
        coro__free(t->extra, sizeof *t->extra);
        t->extra = NULL; /* an own stack's block is pooled */
    }
    coro__list_remove(&l->all, &t->all_link);
    l->ntasks--;
    if (t == l->main)
        l->main = NULL;
    if (CORO__UNLIKELY(l->debug) && !t->joined && t->exited)
        coro__debug_unjoined(t);
    if (t->shared) {
        if (l->shared_owner == t)
            l->shared_owner = NULL;
        coro__ctx_discard(&t->ctx);
        coro__free(t->saved, t->shared_hw);
        coro__free(t->wait, sizeof *t->wait);
        coro__free(t, sizeof *t);
        return;
    }
    coro__stack_check(t);
    /* A task abandoned mid-wait (a deadlock) left its context deep in a
     * park: the next task on this stack must start afresh. */
    if (!t->exited)
        coro__ctx_discard(&t->ctx);
    coro__stack_put(&l->stacks, t);
}

/* Frees the detached task that ended just before this switch: it could not
 * free the stack it was running on. */
static __attribute__((noinline)) void reap_now(struct coro__loop *l)
{
    struct coro_task *t = l->graveyard;
    l->graveyard = NULL;
    coro__task_free(l, t);
}

static inline void reap(struct coro__loop *l)
{
    if (CORO__UNLIKELY(l->graveyard != NULL))
        reap_now(l);
}

/* Where a task that stops running jumps: the next task, or the loop's
 * context when none is ready, or when the next runs on the shared stack
 * and its frames are not in place: the loop's context, on the thread's
 * own stack, puts them in place (they may go where the current task's
 * frames are). */
static struct coro__ctx *target(struct coro__loop *l, struct coro_task *next)
{
    if (!next)
        return &l->ctx;
    if (CORO__UNLIKELY(next->shared) && l->shared_owner != next) {
        l->handoff = next;
        return &l->ctx;
    }
    return &next->ctx;
}

/* The loop's context runs next, and whoever the tasks hand it next. */
static void run(struct coro__loop *l, struct coro_task *next)
{
    while (next) {
        if (next->shared && l->shared_owner != next) {
            coro__shared_install(l->shared_host, l->shared_owner, next);
            l->shared_owner = next;
        }
        l->current = next;
        coro__ctx_switch(&l->ctx, &next->ctx);
        l->current = NULL;
        reap(l);
        next = l->handoff;
        l->handoff = NULL;
    }
}

/* self stops running (it parked or yielded): run the next ready task, or
 * the loop's context if none is ready. Returns when self is resumed: for a
 * yield, 0 or ECANCELED; for a park, its wake status. errno is kept per
 * task, so a task never sees another's.
 *
 * The two callers tail-call it, and the jump is written out here: after a
 * switch, the CPU's return predictor holds the other task's calls, so
 * every return on the way back to the task mispredicts. This leaves one,
 * as few as a bare _setjmp/_longjmp ping-pong has (about 5 ns each here). */
/* Leaves self for the context to, and carries on once something resumes
 * self: its frames marked and its stack checked before, the task that
 * ended meanwhile reaped and self's errno back after. A macro for the
 * reason CORO__JUMP is one (switch.h): written out in the function that
 * suspends. */
/* Only self is live across the jump (errno waits in it, the loop is
 * reached through it): every value live across _setjmp is spilled to the
 * frame, and a shared-stack task keeps that frame while it is parked. */
#define SWITCH_AWAY(l, self, to)                                           \
    do {                                                                   \
        (self)->saved_errno = *(l)->errno_at;                              \
        struct coro__ctx *to_ = (to);                                      \
        coro__frames_mark(self);                                           \
        coro__stack_check(self);                                           \
        coro__sanitizer_leave(&(self)->ctx, to_);                          \
        CORO__JUMP(&(self)->ctx, to_);                                     \
        coro__ctx_entered(&(self)->ctx);                                   \
        reap((self)->loop);                                                \
        *(self)->loop->errno_at = (self)->saved_errno;                     \
    } while (0)

/* Two copies, for a park and for a yield, so that which it was is not one
 * more value spilled across the jump into the frame a parked shared-stack
 * task keeps. */
#define SUSPEND_AWAY(l, self)                                              \
    do {                                                                   \
        struct coro_task *next_ = next_ready(l);                           \
        if (next_ != (self))                                               \
            SWITCH_AWAY(l, self, target(l, next_));                        \
    } while (0)

static int suspend_park(struct coro__loop *l, struct coro_task *self)
{
    SUSPEND_AWAY(l, self);
    return self->wake_status;
}

static int suspend_yield(struct coro__loop *l, struct coro_task *self)
{
    SUSPEND_AWAY(l, self);
    return task_cancelled(self) ? ECANCELED : 0;
}

#ifdef CORO__CHECKED
/* A record that wakers write while self is parked must not lie within
 * self's stack (see internal.h): a shared-stack task's frames are not in
 * place while it is parked. Checked for every task, since an own-stack
 * task that would pass is the same code run another way. */
static void check_record(const struct coro_task *self, const void *record,
                         size_t size)
{
    size_t len;
    const char *lo = coro__stack_usable(self, &len), *hi = lo + len;
    const char *r = record;
    CORO__ASSERT(!record || r + size <= lo || r >= hi);
}
#else
#define check_record(self, record, size) ((void)0)
#endif

int coro__park(struct coro_task *self, const struct coro__park *p)
{
    return coro__park_until(self, p, p->deadline);
}

int coro__park_until(struct coro_task *self, const struct coro__park *p,
                     int64_t deadline)
{
    check_record(self, p->record, p->record_size);
    self->waiting_on = p->record;
    self->detach = p->detach;
    if (task_cancelled(self)) {
        unpark(self->loop, self);
        return ECANCELED;
    }
    struct coro__loop *l = self->loop;
    unsigned wakers = p->wakers;
    int scoped = 0;
    self->timeout_status = (unsigned char)p->timeout_status;
    if (deadline != CORO__NEVER) {
        coro__timer_start(&l->timers, &self->timer, deadline);
        wakers |= CORO__BY_TIMER;
        if (CORO__UNLIKELY(self->scoped) &&
            coro__scope_limits(self, deadline)) {
            scoped = 1; /* even a sleep ends in ETIMEDOUT */
            self->timeout_status = ETIMEDOUT;
        }
    }
    wakers_count(l, self, wakers);
    self->state = CORO__PARKED;
    self->wait_kind = p->kind;
    self->wait_what = p->what;
    self->since_ms = (uint32_t)l->seen_ms;
    if (CORO__UNLIKELY(l->noting))
        coro__note(l, self, CORO__NOTE_PARK);
    if (CORO__LIKELY(!scoped))
        return suspend_park(l, self);
    int status = suspend_park(l, self);
    if (status == ETIMEDOUT)
        coro__scope_expired(self);
    return status;
}

int coro__park_shielded(struct coro_task *self, const struct coro__park *p)
{
    unsigned char shield = self->shield;
    self->shield = 1;
    int status = coro__park(self, p);
    self->shield = shield;
    return status;
}

/* ----------------------------------------------------------------------
 * Task life
 * ---------------------------------------------------------------------- */

void coro__cancel(struct coro_task *t)
{
    if (t->state == CORO__DONE)
        return;
    t->cancelled = 1;
    if (t->state == CORO__PARKED && !t->shield)
        coro__wake(t, ECANCELED);
}

/* Cancels every task: main has ended, or nothing can ever wake. Tasks
 * spawned from now on are born cancelled, so clean-up cannot start work
 * that outlives the loop. */
static void close_loop(struct coro__loop *l)
{
    l->closing = 1;
    for (struct coro__link *n = l->all.head; n; n = n->next)
        coro__cancel(CORO__TASK_OF(n));
}

/* t's function returned. Switches away, and returns only when a new task
 * is given this stack (see trampoline). Reached through task_end, out of
 * line, as is everything else the trampoline calls: the trampoline then
 * keeps no register across the task's function, so it saves none, and a
 * parked shared-stack task's frames are 32 bytes fewer (x86-64). */
static void task_exit(struct coro__loop *l, struct coro_task *t,
                      void *result)
{
    coro__local_end(t); /* in t, before anyone sees it ended */
    t->result = result;
    t->exited = 1;
    t->state = CORO__DONE;
    t->end_seq = ++l->end_seq;
    t->since_ms = (uint32_t)l->seen_ms;
    l->nlive--;
    if (CORO__UNLIKELY(l->noting)) {
        coro__note(l, t, CORO__NOTE_END);
        if (l->debug)
            coro__debug_end(l, t);
    }
    /* A task joining main is told before the others are cancelled: its
     * join completed before the cancellation came. */
    if (!coro__task_ended(t) && t->detached)
        l->graveyard = t;
    if (t == l->main) {
        l->main_done = 1;
        l->main_result = result;
        l->main_error = task_error(t);
        coro__loop_close(l); /* no new work from other threads */
        close_loop(l);
    }
    coro__stack_check(t);
    if (t->shared)
        l->shared_owner = NULL; /* its frames are dead: nothing to save */
    struct coro_task *next = next_ready(l);
    coro__ctx_switch(&t->ctx, target(l, next));
}

/* The trampoline's steps before and after the task's function, out of
 * line (see task_exit): each finds the task as the loop's current. */
static __attribute__((noinline)) struct coro_task *task_begin(void)
{
    struct coro__loop *l = coro__tls_loop;
    reap(l);
    return l->current;
}

static __attribute__((noinline)) void task_end(void *result)
{
    struct coro_task *t = coro__tls_loop->current;
    task_exit(t->loop, t, result);
}

/* Every task's first frame. It outlives its task: a task that ends parks
 * here, and when its pooled stack is given to a new task (t is the same
 * control block, at the top of the same stack), the loop goes round again.
 * A reused stack so costs no makecontext, nor a first entry (QEMU pools
 * its coroutines this way). */
static void trampoline(void)
{
    coro__ctx_entered(&coro__tls_loop->current->ctx);
    for (;;) {
        struct coro_task *t = task_begin();
        task_end(t->fn(t->arg));
    }
}

void (*const coro__task_entry)(void) = trampoline;

/* A task on a stack of its own: its control block at the stack's top. */
static struct coro_task *own_stack_task(struct coro__loop *l, size_t size)
{
    struct coro_task *t = coro__stack_get(&l->stacks, size);
    if (!t)
        return NULL;
    memset(&t->loop, 0,
           sizeof *t - offsetof(struct coro_task, loop));
    memset(t->wait, 0, sizeof *t->wait);
    if (!coro__ctx_made(&t->ctx) &&
        coro__task_ctx_make(t, &l->ctx_template, trampoline) != 0) {
        coro__stack_put(&l->stacks, t);
        return NULL;
    }
    return t;
}

/* The stack shared-stack tasks run on: a pooled stack of the shared size,
 * with the trampoline made on it, once per loop. */
static struct coro_task *shared_host(struct coro__loop *l)
{
    if (l->shared_host)
        return l->shared_host;
    size_t size = l->default_stack > CORO__MAIN_STACK ? l->default_stack
                                                      : CORO__MAIN_STACK;
    struct coro_task *host = coro__stack_get(&l->stacks, size);
    if (!host)
        return NULL;
    coro__ctx_discard(&host->ctx); /* a pooled context is no entry */
    if (coro__task_ctx_make(host, &l->ctx_template, trampoline) != 0) {
        coro__stack_put(&l->stacks, host);
        return NULL;
    }
    return l->shared_host = host;
}

/* A task on the shared stack: its control block on the heap (with, for
 * swapcontext, a ucontext of its own after it), its first entry the
 * host's. */
static struct coro_task *shared_stack_task(struct coro__loop *l)
{
    struct coro_task *host = shared_host(l);
    if (!host)
        return NULL;
#ifdef CORO_SWITCH_FAST
    size_t size = sizeof(struct coro_task); /* not rounded: malloc does */
#else
    size_t tcb = (sizeof(struct coro_task) + 15) & ~(size_t)15;
    size_t size = tcb + coro__shared_uc_size();
#endif
    struct coro_task *t = coro__calloc(1, size);
    if (!t)
        return NULL;
#ifdef CORO_SWITCH_FAST
    ucontext_t *own = NULL;
#else
    ucontext_t *own = (ucontext_t *)(void *)((char *)t + tcb);
#endif
    t->shared = 1;
    if (coro__ctx_share(&t->ctx, &host->ctx, own) != 0) {
        coro__free(t, size);
        return NULL;
    }
    return t;
}

int coro__wait_alloc(struct coro_task *t)
{
    t->wait = coro__calloc(1, sizeof *t->wait);
    return t->wait ? 0 : ENOMEM;
}

static int spawn(struct coro__loop *l, size_t size, int shared, coro_fn fn,
                 void *arg, struct coro_task **out)
{
    /* Each task arms at most one timer: reserving a heap slot per task here
     * means parking never fails for lack of memory. */
    if (coro__timers_reserve(&l->timers, l->ntasks + 1) != 0)
        return ENOMEM;
    struct coro_task *t = shared ? shared_stack_task(l)
                                 : own_stack_task(l, size);
    if (!t)
        return ENOMEM;
    t->loop = l;
    t->id = ++l->next_id;
    t->fn = fn;
    t->arg = arg;
    t->timer.id = CORO__TIMER_IDLE;
    t->cancelled = l->closing;
    t->since_ms = (uint32_t)l->seen_ms;
    coro__local_inherit(t, l->current);
    coro__list_append(&l->all, &t->all_link);
    l->ntasks++;
    l->nlive++;
    t->state = CORO__READY;
    *out = t; /* the caller names it, notes CORO__NOTE_SPAWN, starts it */
    return 0;
}

/* Eager start: self steps aside for t, just spawned, which runs at once;
 * self goes first in line, so it resumes as soon as t suspends or ends,
 * before any other task. The jump is written out, as in suspend. */
static void run_eagerly(struct coro__loop *l, struct coro_task *self,
                        struct coro_task *t)
{
    self->state = CORO__READY;
    self->ready_next = l->ready_head;
    l->ready_head = self;
    if (!l->ready_tail)
        l->ready_tail = self;
    t->state = CORO__RUNNING;
    l->current = t;
    if (CORO__UNLIKELY(l->noting)) {
        coro__note(l, self, CORO__NOTE_READY);
        coro__note(l, t, CORO__NOTE_RUN);
    }
    SWITCH_AWAY(l, self, target(l, t));
}

struct coro_task *coro__spawn(const coro_attr *attr, coro_fn fn, void *arg,
                              const char *fn_name, const char *site,
                              struct coro_group *g, void *pc, int *err)
{
    struct coro__loop *l = coro__tls_loop;
    size_t size;
    unsigned flags = attr ? attr->flags : 0;
    int shared = (flags & CORO_SHARED_STACK) != 0;
    *err = EINVAL;
    if (!l || !fn || (flags & ~(CORO_SHARED_STACK | CORO_EAGER)))
        return NULL;
    *err = coro__stack_size(attr ? attr->stack_size : 0, l->default_stack,
                            &size);
    if (!*err && shared &&
        size > (l->default_stack > CORO__MAIN_STACK ? l->default_stack
                                                    : CORO__MAIN_STACK))
        *err = EINVAL; /* deeper than the shared stack */
    if (!*err && shared && !coro__stack_pointer())
        *err = ENOTSUP;
    /* A name or a group needs the extra block: made first, so that a
     * task is never half made. */
    int named = attr && attr->name && attr->name[0];
    struct coro__extra *x = NULL;
    if (!*err && (named || g) && !(x = coro__calloc(1, sizeof *x)))
        *err = ENOMEM;
    struct coro_task *t = NULL;
    if (!*err)
        *err = spawn(l, size, shared, fn, arg, &t);
    if (*err) {
        coro__free(x, sizeof *x);
        return NULL;
    }
    t->fn_name = fn_name;
    t->site_known = site != NULL;
    if (site)
        t->site = site;
    else
        t->spawn_pc = pc;
    if (x) {
        x->task = t;
        t->extra = x;
        if (named) {
            strncpy(x->name, attr->name, sizeof x->name - 1);
            x->name[sizeof x->name - 1] = '\0';
        }
        if (g)
            coro__group_add(g, t);
    }
    if (CORO__UNLIKELY(l->noting))
        coro__note(l, t, CORO__NOTE_SPAWN);
    struct coro_task *self = l->current;
    if ((flags & CORO_EAGER) && self)
        run_eagerly(l, self, t); /* t may have ended: it stays till joined */
    else
        ready_push(l, t);
    return t;
}

coro_task *coro__spawn_at(const coro_attr *attr, coro_fn fn, void *arg,
                          const char *fn_name, const char *site)
{
    int err;
    struct coro_task *t = coro__spawn(attr, fn, arg, fn_name, site, NULL,
                                      __builtin_return_address(0), &err);
    if (!t)
        errno = err;
    return t;
}

coro_task *(coro_spawn)(coro_fn fn, void *arg)
{
    return coro__spawn_at(NULL, fn, arg, NULL, NULL);
}

coro_task *(coro_spawn_attr)(const coro_attr *attr, coro_fn fn, void *arg)
{
    return coro__spawn_at(attr, fn, arg, NULL, NULL);
}

coro_task *coro_self(void)
{
    return coro__current();
}

struct coro__extra *coro__extra_get(struct coro_task *t)
{
    if (!t->extra) {
        t->extra = coro__calloc(1, sizeof *t->extra);
        if (t->extra)
            t->extra->task = t;
    }
    return t->extra;
}

const char *coro__name(const struct coro_task *t)
{
    if (t->extra && t->extra->name[0])
        return t->extra->name;
    return t->fn_name ? t->fn_name : "task";
}

const char *coro_name(const coro_task *t)
{
    /* Another thread's task may be renamed or freed there meanwhile. */
    if (!t || t->loop != coro__tls_loop)
        return NULL;
    return coro__name(t);
}

void *coro_fail(int err)
{
    struct coro_task *self = coro__current();
    if (self) /* a negative err (-EIO, kernel style) is no errno value:
                 EINVAL, not a success */
        self->error = err < 0 ? EINVAL : err;
    return NULL;
}

int coro_shield(int on)
{
    struct coro_task *self = coro__current();
    if (!self)
        return 0;
    int old = self->shield;
    if (on && !old && self->extra) /* the scopes open now are held back
                                        (none, and no block: NULL) */
        self->extra->shield_scope = self->extra->scope;
    self->shield = on != 0;
    return old;
}

int coro_cancel(coro_task *t)
{
    struct coro__loop *l = coro__tls_loop;
    if (!t || !l || t->loop != l)
        return EINVAL;
    coro__cancel(t);
    return 0;
}

void coro_detach(coro_task *t)
{
    struct coro__loop *l = coro__tls_loop;
    if (!t || !l || t->loop != l || t->detached || coro__task_group(t))
        return;
    t->detached = 1;
    /* An awaiter decides: await_task and await_gather free t anyway,
     * await_wait frees it on return if it has ended by then. */
    if (t->state == CORO__DONE && !t->waiter)
        coro__task_free(l, t);
}

int await_yield(void)
{
    struct coro_task *self;
    int err = coro__enter_unrecorded(-1, &self, NULL);
    if (err)
        return err;
    struct coro__loop *l = self->loop;
    ready_push(l, self);
    if (CORO__UNLIKELY(l->noting))
        coro__note(l, self, CORO__NOTE_READY);
    return suspend_yield(l, self);
}

/* A sleep is a wait with nothing but a deadline, whose wake is its
 * success. */
/* await_sleep's entry check, apart and returning its deadline rather than
 * storing it: nothing in await_sleep's frame then has its address taken,
 * so its park is a tail call, and its frame is not among those a parked
 * shared-stack task keeps (96 of its 232 bytes on x86-64). */
struct sleep_entry {
    int64_t deadline;
    int     err;
};

static __attribute__((noinline)) struct sleep_entry sleep_enter(double seconds)
{
    struct coro_task *self;
    struct sleep_entry e;
    e.err = coro__enter_unrecorded(seconds, &self, &e.deadline);
    return e;
}

int await_sleep(double seconds)
{
    static const struct coro__park sleep = { .kind = CORO__W_SLEEP };
    struct sleep_entry e = sleep_enter(seconds);
    if (e.err)
        return e.err;
    if (seconds <= 0)
        return await_yield();
    return coro__park_until(coro__tls_loop->current, &sleep, e.deadline);
}

/* ----------------------------------------------------------------------
 * The loop
 * ---------------------------------------------------------------------- */

/* Blocks in the kernel until the next deadline, an fd event or a post.
 *
 * While tasks wait on other threads (a future, a cross-thread channel),
 * the loop first spins a little, watching for a post: waking a thread
 * asleep in the kernel costs tens of microseconds here, a round trip
 * between two loops two of them, and the answer to a message often comes
 * sooner than that. Spinning burns a core, so it is earned: a spin that
 * saw a post, or a sleep that a post cut short (within five spins'
 * length: the sleeper's own wake-up is part of it), grants the next
 * spins; spins that came to nothing use them up. A loop
 * whose tasks wait for an answer that takes long (a server's main waiting
 * on its loops) soon stops spinning; two loops passing messages back and
 * forth keep it up and never sleep. */
static void idle_wait(struct coro__loop *l)
{
    int64_t next = coro__timer_next(&l->timers);
    int64_t t0 = 0;
    if (l->waits_thread) {
        if (l->spin_credit) {
            if (coro__poller_spin(&l->poller, CORO__SPIN_NS, next)) {
                l->spin_credit = CORO__SPIN_CREDIT;
                l->now_fresh = 0;
                return;
            }
            l->spin_credit--;
        }
        t0 = coro__clock_ns();
    }
    coro__poller_wait(&l->poller, next);
    seen_at(l, coro__coarse_ns());
    l->now_fresh = 0; /* the next run does not start when the last ended */
    if (t0 && coro__poller_posted(&l->poller) &&
        coro__clock_ns() - t0 < CORO__SPIN_GRANT_NS)
        l->spin_credit = CORO__SPIN_CREDIT;
}

/* The loop deadlocked with every task already cancelled: free what is left
 * without running it further. Its stacks are not unwound. */
static void abandon(struct coro__loop *l)
{
    for (struct coro__link *n = l->all.head; n; n = n->next) {
        struct coro_task *t = CORO__TASK_OF(n);
        if (t->state == CORO__PARKED)
            unpark(l, t);
        if (t->state != CORO__DONE) {
            t->state = CORO__DONE;
            t->result = NULL; /* no longer its arg (they share a word) */
            t->end_seq = ++l->end_seq; /* nor the object it waited on */
            l->nlive--;
        }
    }
}

static void loop_run(struct coro__loop *l)
{
    for (;;) {
        if (l->poll_due) {
            l->poll_due = 0;
            coro__poller_wait(&l->poller, 0); /* only look */
            seen_at(l, coro__coarse_ns());
            l->now_fresh = 0;
        }
        if (l->calls_due)
            coro__loop_calls(l);
        struct coro_task *next = next_ready(l);
        if (!next && (l->poll_due || l->calls_due))
            continue;
        if (next) {
            run(l, next);
            continue;
        }
        if (l->nlive == 0)
            return;
        /* Nothing is ready; only a source outside the tasks (a timer, an
         * fd, a worker, another thread) could make something ready
         * again. */
        if (l->waits_outside == 0 && !coro__loop_reachable(l)) {
            if (l->closing) {
                abandon(l);
                return;
            }
            l->deadlocked = 1;
            coro__deadlock_report(l);
            close_loop(l);
            continue;
        }
        idle_wait(l);
    }
}

/* CORO_STACK_SIZE: bytes, or a number with a K, M or G suffix. */
static int env_stack_size(size_t *out)
{
    size_t v;
    int err = coro__env_size("CORO_STACK_SIZE", 1, CORO__STACK_MAX, &v);
    if (err == ENOENT)
        return coro__stack_size(0, CORO__STACK_DEFAULT, out);
    return err ? err : coro__stack_size(v, 0, out);
}

void coro__owned_add(struct coro__loop *l, struct coro__owned *o,
                     size_t size)
{
    o->size = size;
    coro__list_append(&l->owned, &o->link);
}

void coro__owned_free(struct coro__loop *l, struct coro__owned *o)
{
    coro__list_remove(&l->owned, &o->link);
    coro__free(o, o->size);
}

/* coro_runs started in this process: each loop's run_id. */
static atomic_ullong runs;

static void loop_free(struct coro__loop *l)
{
    /* Out of the watchdog's and gdb's sight before anything is freed. */
    coro__watchdog_term(l);
    coro__loops_remove(l);
    reap(l);
    while (l->all.head)
        coro__task_free(l, CORO__TASK_OF(l->all.head));
    /* Their tasks are gone: only the memory is left to free. */
    while (l->owned.head)
        coro__owned_free(l, CORO__ENTRY(l->owned.head, struct coro__owned,
                                        link));
    if (l->shared_host) {
        coro__ctx_discard(&l->shared_host->ctx);
        coro__stack_put(&l->stacks, l->shared_host);
    }
    coro__observe_term(l);
    coro__overflow_term(l);
    coro__executor_term(&l->executor);
    coro__io_term(&l->io);
    coro__stacks_term(&l->stacks);
    coro__timers_term(&l->timers);
    coro__poller_term(&l->poller);
    coro__free(l, sizeof *l);
}

static int loop_new(struct coro__loop **out)
{
    size_t stack;
    int err = env_stack_size(&stack);
    if (err)
        return err;
    struct coro__loop *l = coro__calloc(1, sizeof *l);
    if (!l)
        return ENOMEM;
    l->default_stack = stack;
    l->run_id = atomic_fetch_add(&runs, 1) + 1;
    l->poller.epfd = l->poller.tfd = l->poller.evfd = -1;
    l->sigquit_fd = l->sigquit_wfd = -1;
    seen_at(l, coro__coarse_ns());
    coro__io_init(l);
    err = coro__ctx_template(&l->ctx_template);
    if (!err)
        err = coro__poller_init(&l->poller);
    if (!err)
        err = coro__executor_init(&l->executor, &l->poller);
    if (!err)
        coro__loop_init(l);
    if (!err)
        err = coro__overflow_init(l);
    if (!err) {
        coro__loops_add(l);
        coro__observe_init(l);
    }
    if (err) {
        loop_free(l);
        return err;
    }
    *out = l;
    return 0;
}

int coro_run(coro_fn main, void *arg, void **result)
{
    if (result)
        *result = NULL;
    if (!main)
        return EINVAL;
    if (coro__tls_loop)
        return EBUSY;
    struct coro__loop *l;
    int err = loop_new(&l);
    if (err)
        return err;
    size_t size = l->default_stack > CORO__MAIN_STACK ? l->default_stack
                                                      : CORO__MAIN_STACK;
    struct coro_task *t;
    err = spawn(l, size, 0, main, arg, &t);
    if (err) {
        loop_free(l);
        return err;
    }
    t->fn_name = "main";
    t->spawn_pc = __builtin_return_address(0);
    ready_push(l, t);
    l->main = t;
    if (l->noting)
        coro__note(l, t, CORO__NOTE_SPAWN);
    coro__tls_loop = l;
    l->errno_at = &errno; /* this thread's, for good: no call per switch */
#ifndef CORO__STACK_ENTER
    l->ctx.uc = &l->ctx_uc;
#endif
    coro__ctx_thread(&l->ctx);
    /* Timer slack (50 µs by default) delays every wake-up by up to that
     * much; with 1 ns, sleeps land within tens of microseconds. */
    int slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    loop_run(l);
    /* Every task has ended. Calls taken before main ended (or before
     * now, if it never did) still run, and the tasks they spawn, born
     * cancelled, still end; other threads are refused new work (loop.c). */
    coro__loop_close(l);
    while (coro__loop_calls(l))
        loop_run(l);
    coro__loop_term(l);
    if (slack > 0)
        prctl(PR_SET_TIMERSLACK, (unsigned long)slack, 0, 0, 0);
    err = l->deadlocked ? EDEADLK : l->main_error;
    if (result)
        *result = l->main_done ? l->main_result : NULL;
    coro__tls_loop = NULL;
    loop_free(l);
    return err;
}
