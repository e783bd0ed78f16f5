/* internal.h: what coro's .c files share. Never installed.
 *
 * This header is the map of the runtime. A task (struct coro_task) is a
 * control block at the top of its own stack mapping, or on the heap for a
 * task on the loop's shared stack. The per-thread loop (struct coro__loop)
 * is the modules' states side by side, reached through one thread-local
 * pointer in sched.c.
 *
 * The files in layers, each calling only those below it (and the lower
 * three nothing above them but park, wake and the current task):
 *
 *   coro.c timer.c poll.c env.c       the machine, the heap of deadlines,
 *                                     the kernel wait, the environment
 *   sched.c                           the loop, park and wake, tasks
 *   io.c executor.c sync.c            wake sources: fds, worker threads,
 *                                     the coordination objects
 *   loop.c                            a loop's handle and the calls other
 *                                     threads post to it (on poll.c's
 *                                     post)
 *   future.c xchan.c run_loops.c      across threads, on loop.c: tasks
 *                                     submitted to another loop, a
 *                                     channel between threads, several
 *                                     loops at once
 *   net.c                             the socket helpers, on io.c
 *   local.c                           task-local values: sched.c hands
 *                                     them on at spawn and lets them go
 *                                     at a task's end
 *   debug.c trace.c overflow.c        seeing inside; trace.c also keeps
 *   inspect.c watchdog.c              the tasks' accounts, and loops.c
 *   loops.c                           lists the running loops for gdb
 *                                     (gdb/coro-gdb.py) and watchdog.c
 *
 * The context switch itself is in switch.h, which only the two files that
 * switch (coro.c, sched.c) include.
 */
#ifndef CORO_INTERNAL_H
#define CORO_INTERNAL_H

#include "coro.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <ucontext.h>

/* ----------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

#define CORO__CONTAINER_OF(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define CORO__LIKELY(x) __builtin_expect(!!(x), 1)
#define CORO__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* A broken invariant is a bug, not an error: report it and abort. Stays on
 * with NDEBUG (plain assert() is for tests only). */
#define CORO__ASSERT(cond)                                                 \
    ((cond) ? (void)0                                                      \
            : coro__assert_fail(#cond, __FILE__, __LINE__))
_Noreturn void coro__assert_fail(const char *cond, const char *file,
                                 int line);

#if defined(__SANITIZE_ADDRESS__)
#define CORO__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORO__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CORO__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORO__TSAN 1
#endif
#endif

/* Checks that cost a few instructions on hot paths and catch whole classes
 * of bug: on unless NDEBUG, and always under the sanitizers. */
#if !defined(NDEBUG) || defined(CORO__ASAN) || defined(CORO__TSAN)
#define CORO__CHECKED 1
#endif

/* ----------------------------------------------------------------------
 * The intrusive list: a doubly linked FIFO whose links live in the
 * elements (tasks, waiters, jobs, slabs), so nothing is allocated to
 * queue anything. Every operation is O(1). The ready queue is not one of
 * these: it is singly linked, the hottest path of all, and only ever
 * pushed at the back and popped at the front.
 * ---------------------------------------------------------------------- */

struct coro__link {
    struct coro__link *prev;
    struct coro__link *next;
};

struct coro__list {
    struct coro__link *head;
    struct coro__link *tail;
};

#define CORO__ENTRY(link, type, member) CORO__CONTAINER_OF(link, type, member)

static inline void coro__list_append(struct coro__list *l,
                                     struct coro__link *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

static inline void coro__list_remove(struct coro__list *l,
                                     struct coro__link *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

/* ----------------------------------------------------------------------
 * Park and wake (sched.c): the one way a task waits.
 *
 * Every await_* reads the same way:
 *
 *   1. coro__enter: may the caller wait at all? EPERM outside a coroutine,
 *      EINVAL for a NaN timeout, ECANCELED for a cancelled task that holds
 *      no shield. Nothing else in an await_* looks at cancellation.
 *   2. Try the operation; if it completes, return.
 *   3. Register with the wake source: put a record of the wait where the
 *      source finds it (a waiter on an object's list, an fd's slot, a job
 *      on the executor's queue).
 *   4. coro__park, handing it the record, how to take it back (detach),
 *      the deadline and what kind of source may wake the task.
 *   5. Return what the wake said: 0, the source's own code, ETIMEDOUT
 *      (the deadline; park arms the timer) or ECANCELED (coro_cancel).
 *
 * The rules park enforces, so that no await_* has to:
 *
 * - A record that a source or another task writes while the task is parked
 *   never lives on the task's stack: a shared-stack task's frames are
 *   copied away while it is parked, and an own stack may be freed with a
 *   deadlocked task. Records are the task's wait record (union
 *   coro__wait: beside an own stack's control block, on the heap for a
 *   shared-stack task) or on the heap; in checked builds park aborts on a
 *   record within the parking task's stack.
 * - A deadline is park's: it arms a timer, and one that has already passed
 *   fires at the first switch, before any other task runs or any I/O is
 *   looked at: the wait is given up (detached) and timeout_status returned,
 *   after a yield.
 * - A cancelled task (unshielded) never parks: detach runs, ECANCELED is
 *   returned at once.
 * - Deadlock detection counts, at park, the parked tasks that something
 *   outside the loop's tasks can wake: a timer, the kernel (an fd) or a
 *   worker thread. When nothing is ready and that count is zero, nothing
 *   ever will be.
 * - A wake detaches the task from its source (detach runs, and always
 *   succeeds), stops its timer, and queues it with the status.
 * ---------------------------------------------------------------------- */

struct coro_task;
struct coro__loop;
struct coro__loop_set;
struct coro_group;

/* What a parked task waits for, for coro_dump, the trace and the event
 * hook (debug.c and trace.c name them). */
enum coro__wait_kind {
    CORO__W_NONE,
    CORO__W_SLEEP,
    CORO__W_JOIN,       /* what: the task joined */
    CORO__W_GATHER,
    CORO__W_WAIT,
    CORO__W_FD_READ,    /* the fd is in wait->io */
    CORO__W_FD_WRITE,
    CORO__W_BLOCKING,
    CORO__W_CHAN_SEND,  /* what: the channel */
    CORO__W_CHAN_RECV,
    CORO__W_SELECT,
    CORO__W_QUEUE_PUT,  /* what: the queue */
    CORO__W_QUEUE_GET,
    CORO__W_QUEUE_JOIN,
    CORO__W_MUTEX,      /* what: the mutex */
    CORO__W_SEM,
    CORO__W_EVENT,
    CORO__W_COND,
    CORO__W_AS_COMPLETED, /* what: the iterator */
    CORO__W_GROUP,      /* what: the group */
    CORO__W_BARRIER,    /* what: the barrier */
    CORO__W_FUTURE,     /* what: the future (future.c) */
    CORO__W_XCHAN_SEND, /* what: the cross-thread channel (xchan.c) */
    CORO__W_XCHAN_RECV
};

/* Who besides the loop's own tasks may wake a parked task (a timer counts
 * too: park adds CORO__BY_TIMER for a deadline). */
enum {
    CORO__BY_TIMER = 1,             /* its deadline */
    CORO__BY_KERNEL = 2,            /* an fd event: the reactor must look */
    CORO__BY_WORKER = 4,            /* a worker thread's completion */
    CORO__BY_THREAD = 8             /* another thread: a future's task, a
                                       cross-thread channel's other side,
                                       through a post (loop.c) */
};

/* Takes a parked task's record back from its source, when something other
 * than the source wakes it (a timeout, a cancellation, coro_close). Runs
 * on the loop's thread, before the task is queued. */
typedef void (*coro__detach_fn)(struct coro_task *t);

/* A wait, as the await_* describes it to park. Read before park switches
 * away: it may live on the caller's stack. */
struct coro__park {
    unsigned char   kind;           /* enum coro__wait_kind */
    unsigned char   wakers;         /* CORO__BY_KERNEL, CORO__BY_WORKER */
    int             timeout_status; /* what the deadline delivers:
                                       ETIMEDOUT, or 0 for a sleep */
    int64_t         deadline;       /* CORO__NEVER, or when to give up */
    const void     *what;           /* the object waited on, for dumps */
    coro__detach_fn detach;         /* NULL: nothing to take back */
    void           *record;         /* what the source writes, for detach
                                       (t->waiting_on) and the stack check */
    size_t          record_size;
};

/* The entry check of every await_*: 0 with *self and *deadline set (when
 * deadline is not NULL), or EPERM, EINVAL (NaN timeout), ECANCELED,
 * ETIMEDOUT (an expired timeout scope), or ENOMEM: a shared-stack task's
 * first wait that needs a record could not make it. Inline (below, after
 * the task): it runs on every await. */
static inline int coro__enter(double timeout, struct coro_task **self,
                              int64_t *deadline);
/* As coro__enter, for a wait whose record is not self->wait (a sleep, a
 * yield, a select, a future, a group, as_completed): never ENOMEM. */
static inline int coro__enter_unrecorded(double timeout,
                                         struct coro_task **self,
                                         int64_t *deadline);
/* Makes t's wait record (a shared-stack task's first wait needs one):
 * 0 or ENOMEM. */
int  coro__wait_alloc(struct coro_task *t);
/* Parks self as p describes until a wake; returns the wake status (see
 * above). */
int  coro__park(struct coro_task *self, const struct coro__park *p);
/* As coro__park, with the deadline apart (p->deadline is not read): a
 * caller whose description is static tail-calls it, and its frame is not
 * kept while the task is parked. */
int  coro__park_until(struct coro_task *self, const struct coro__park *p,
                      int64_t deadline);
/* As coro__park, with cancellation held back for the wait: for waits that
 * must end only with their source (clean-up that drains, a job running
 * on a worker). */
int  coro__park_shielded(struct coro_task *self, const struct coro__park *p);
/* Wakes a parked task with status: detaches it from its source, stops its
 * timer, appends it to the ready queue. Does nothing to a task not parked. */
void coro__wake(struct coro_task *t, int status);
/* The running task of this thread's loop, or NULL. */
struct coro_task *coro__current(void);
/* This thread's loop, or NULL. */
struct coro__loop *coro__loop(void);
/* What await_task reports for an ended task. */
int  coro__task_error(const struct coro_task *t);
/* What awaiting a task returns, once it ended with error: the wait's own
 * status first (a timeout, a cancellation), but a task that failed with an
 * error of its own as it was cancelled for a timeout that came while the
 * caller waited (waited: not one already past at the entry) gives that
 * error, as asyncio's wait_for raises what the task raised. */
static inline int coro__await_outcome(int status, int error, int waited)
{
    if (waited && status == ETIMEDOUT && error && error != ECANCELED)
        return error;
    return status ? status : error;
}
/* t's name, as coro_name says, for any task (coro_name refuses another
 * thread's): for the library's own reports, which may run where the
 * loop is not this thread's current one (a signal handler, the end). */
const char *coro__name(const struct coro_task *t);
/* Cancels t (sticky), waking it if it is parked and unshielded. */
void coro__cancel(struct coro_task *t);
/* Frees an ended (or abandoned) task and its stack. */
void coro__task_free(struct coro__loop *l, struct coro_task *t);
/* t has ended: tells its awaiter or its group (join.c). 1 if someone owns
 * it, 0 if nobody awaits it. */
int  coro__task_ended(struct coro_task *t);

/* ----------------------------------------------------------------------
 * Allocation (coro.c). Every heap allocation and every stack mapping goes
 * through here, so tests can count what is live and inject failures.
 * ---------------------------------------------------------------------- */

void *coro__alloc(size_t size);          /* NULL on failure; never sets errno */
void *coro__calloc(size_t n, size_t size);
void *coro__realloc(void *p, size_t old_size, size_t new_size);
void  coro__free(void *p, size_t size);

struct coro__alloc_stats {
    atomic_long blocks;       /* heap blocks live */
    atomic_long stacks;       /* stack mappings (guarded stacks, slabs) live */
    atomic_uint fail_every;   /* test hook: fail one allocation in N (0: off) */
    atomic_uint counter;      /* allocations seen, for fail_every */
};
extern struct coro__alloc_stats coro__alloc_stats;
int coro__alloc_should_fail(void);
/* Whether the process runs under valgrind, which refuses the system calls
 * it does not know (epoll_pwait2 and process_madvise, in 3.19) with a
 * warning: those are then not tried. */
int coro__under_valgrind(void);

/* ----------------------------------------------------------------------
 * The environment (env.c)
 * ---------------------------------------------------------------------- */

/* Reads the environment variable name as a count or a size: digits with
 * an optional K, M or G suffix (powers of 1024), within [min, max].
 * 0 with *out; ENOENT if it is unset or empty; EINVAL if malformed or out
 * of range. */
int coro__env_size(const char *name, size_t min, size_t max, size_t *out);
/* The CPUs this process may run on (its affinity mask), at least 1. */
unsigned coro__cpus(void);

/* ----------------------------------------------------------------------
 * Contexts and stacks (coro.c). The switch is in switch.h.
 * ---------------------------------------------------------------------- */

/* One execution context: a task's, or the loop's own (the thread stack of
 * the coro_run caller).
 *
 * Two ways to switch, chosen at build time. By default swapcontext, which
 * also saves and restores the signal mask: a system call per switch. With
 * CORO_SWITCH_FAST (make SWITCH=fast), a task enters its stack the first
 * time by a jump to its top (setcontext where switch.h has no jump for the
 * machine), and every later switch is coro's own register swap on x86-64
 * (_setjmp/_longjmp elsewhere): no system call, and the signal mask is the
 * thread's, shared by its tasks. */
#if defined(CORO_SWITCH_FAST) && (defined(__x86_64__) || defined(__aarch64__))
/* A fresh stack is entered without setcontext (switch.h). */
#define CORO__STACK_ENTER 1
#endif
#if defined(CORO_SWITCH_FAST) && defined(__x86_64__) && \
    !defined(CORO__ASAN) && !defined(CORO__TSAN)
/* On x86-64 the fast switch is coro's own (coro.c): the sanitizers
 * intercept _setjmp/_longjmp to follow stacks, so their builds keep those. */
#define CORO__REGS_SWITCH 1
#define CORO__REGS_SP 6 /* slots of struct coro__ctx's regs */
#define CORO__REGS_PC 7
#endif

#ifdef CORO_SWITCH_FAST
#if defined(__x86_64__) && defined(__GLIBC__)
/* The part of glibc's jmp_buf that _setjmp and _longjmp touch: the eight
 * saved registers, the "mask was saved" flag (always 0 for _setjmp), and
 * where a CET-enabled glibc keeps the shadow stack pointer (offset 88).
 * The rest of the 200-byte jmp_buf is a 128-byte signal mask that only
 * sigsetjmp(env, 1) writes: 104 bytes of every task that nothing reads. */
struct coro__jb {
    long     jmpbuf[8];
    int      mask_was_saved;
    unsigned long shadow[3];
};
/* The jmp_buf pointer _setjmp and _longjmp are given, hidden from the
 * compiler's object-size tracking (it would warn that they take 200 bytes):
 * no instruction. */
static inline struct __jmp_buf_tag *coro__jb_arg(struct coro__jb *jb)
{
    void *p = jb;
    __asm__("" : "+r"(p));
    return p;
}
#define CORO__JB_ARG(jb) coro__jb_arg(&(jb))
#else
struct coro__jb {
    jmp_buf jb;
};
#define CORO__JB_ARG(jb) ((jb).jb)
#endif
#endif

struct coro__ctx {
#ifndef CORO__STACK_ENTER
    ucontext_t *uc;           /* registers saved by swapcontext; with the
                                 fast switch, only the first entry. Own
                                 stacks keep it just below their control
                                 block; fast shared-stack tasks share the
                                 loop's entry context */
#endif
#ifdef CORO_SWITCH_FAST
#ifdef CORO__REGS_SWITCH
    void       *regs[8];      /* rbx rbp r12 r13 r14 r15, and the stack
                                 pointer and address to resume at: saved by
                                 coro__regs_swap (coro.c); a fresh
                                 context's are its entry (coro.c) */
#else
    struct coro__jb jb;       /* registers saved by _setjmp */
#endif
#endif
#ifndef CORO__REGS_SWITCH
    /* For ASan, TSan and a first entry by a jump; coro's own switch needs
     * neither: a fresh context's regs hold its entry (coro.c). */
    const void *stack_lo;     /* lowest address of this context's stack */
    size_t      stack_len;    /* its size; 0 while unknown (the thread's) */
#ifdef CORO_SWITCH_FAST
    unsigned char started;    /* jb valid: entered at least once (a first
                                 entry starts at coro__task_entry) */
#endif
    unsigned char made;       /* see coro__ctx_made */
#endif
#ifdef CORO__ASAN
    void       *asan_fake;    /* ASan's fake stack, saved while switched out */
#endif
#ifdef CORO__TSAN
    void       *tsan_fiber;   /* TSan's fiber for this context */
#endif
};

/* Whether a trampoline context lives on c's stack: made (by makecontext,
 * or with coro's own switch by putting its entry in regs), or parked at the
 * end of the task before, ready for the next. Coro's own switch keeps no
 * flag: a context it may resume has somewhere to resume at. */
static inline int coro__ctx_made(const struct coro__ctx *c)
{
#ifdef CORO__REGS_SWITCH
    return c->regs[CORO__REGS_PC] != NULL;
#else
    return c->made;
#endif
}

/* Fills tpl with the calling thread's context: what every task context of
 * a loop is made from. 0 or ENOMEM. */
int  coro__ctx_template(ucontext_t *tpl);
/* Forgets c's context: it must never be resumed (its task was abandoned
 * mid-wait, or its stack is going away). */
void coro__ctx_discard(struct coro__ctx *c);
/* Records the calling thread's context as c (the loop's context). */
void coro__ctx_thread(struct coro__ctx *c);

struct coro__slab;

/* Where a stack lives: the record of an own stack, at its top beside the
 * control block (coro__stack_of). Survives the task: pooled with its
 * memory. A shared-stack task has none of its own: its loop's host
 * stack's is its. */
struct coro__stack {
    char              *lo;          /* lowest usable byte (holds the canary) */
    size_t             size;        /* mapping size without the guard page:
                                       usable stack + control block */
    struct coro__slab *slab;        /* owning slab, or NULL: own mapping */
    unsigned           vg_id;       /* valgrind's id for the stack */
    unsigned char      guard;       /* how the page below lo is guarded:
                                       none (0: the canary is checked),
                                       mprotect, or MADV_GUARD_INSTALL */
};

/* A size class of stacks: a hot pool of free stacks and the slabs they are
 * carved from. */
struct coro__stack_class {
    size_t             size;        /* stack size of this class (0: unused) */
    struct coro_task  *pool;        /* free stacks, LIFO via ready_next */
    size_t             npool;       /* how many are in pool */
    struct coro__list  partial;     /* slabs with stacks to hand out */
    size_t             nslabs;      /* slabs alive, partial or full */
    struct coro__slab *next;        /* the next slab, being prepared by the
                                       housekeeping thread (chores.c) */
    int                unmaps;      /* slabs handed to that thread to unmap */
};

#define CORO__STACK_CLASSES 4       /* distinct pooled sizes per loop */
#define CORO__POOL_MAX 1024         /* free stacks kept hot per class */

struct coro__stacks {
    struct coro__stack_class classes[CORO__STACK_CLASSES];
};

/* The smallest and largest stack sizes accepted, and the default. */
#define CORO__STACK_MIN ((size_t)16 << 10)
#define CORO__STACK_MAX ((size_t)1 << 30)
#define CORO__STACK_DEFAULT ((size_t)64 << 10)
#define CORO__MAIN_STACK ((size_t)256 << 10)

/* The housekeeping thread (chores.c): work a loop hands off and need not
 * wait for. A chore lives in its owner's memory until done. */
struct coro__chore {
    struct coro__chore *next;
    void              (*run)(struct coro__chore *);
    void              (*release)(struct coro__chore *); /* or NULL */
    atomic_int          done;       /* set, with release, when run returned */
};

/* 1 if there is a thread to post chores to; start: start it if need be. */
int coro__chores_ready(int start);
/* Queues c to run on the thread; ENOSYS (nothing queued) if there is none.
 * run must be harmless to repeat (a fork may make the child run it again).
 * With a release, nobody waits for c: release frees it after run, and the
 * thread touches it no more; without one, done is set and c stays the
 * poster's. */
int coro__chore_post(struct coro__chore *c, void (*run)(struct coro__chore *),
                     void (*release)(struct coro__chore *));
/* Blocks the calling thread until c has run. */
void coro__chore_wait(struct coro__chore *c);
static inline int coro__chore_done(struct coro__chore *c)
{
    return atomic_load_explicit(&c->done, memory_order_acquire);
}

/* Returns a task control block at the top of a stack of `size` bytes (a
 * page multiple), or NULL (out of memory). Only t->stack is set. */
struct coro_task *coro__stack_get(struct coro__stacks *s, size_t size);
/* Returns t's stack to the pool (or unmaps it). */
void coro__stack_put(struct coro__stacks *s, struct coro_task *t);
void coro__stacks_term(struct coro__stacks *s);
/* Rounds and checks a requested size: 0 or EINVAL. */
int  coro__stack_size(size_t requested, size_t dflt, size_t *out);
/* For an unguarded stack, whether its bottom (the canary) is untouched. */
int  coro__stack_canary_intact(const struct coro__stack *s);
/* The stack t's frames may use: its lowest byte, and *len bytes from
 * there (a shared-stack task's: the host's). */
const char *coro__stack_usable(const struct coro_task *t, size_t *len);
/* t's stack size as reports give it: an own stack's (the size asked for,
 * in pages), or the shared stack's usable bytes. */
size_t coro__stack_size_of(const struct coro_task *t);
/* Every task context's first frame (sched.c's trampoline): where a fresh
 * stack is entered, the same for all, so that no context keeps it. */
extern void (*const coro__task_entry)(void);

/* Prepares t (fresh from coro__stack_get) to run entry on its stack. 0, or
 * ENOMEM if TSan cannot create a fiber. */
int  coro__task_ctx_make(struct coro_task *t, const ucontext_t *tpl,
                         void (*entry)(void));

/* Shared stacks. A shared-stack task's context starts as a copy of (with
 * the fast switch: is) the host stack's entry context; own receives the
 * copy when not NULL. 0 or ENOMEM (TSan). */
int  coro__ctx_share(struct coro__ctx *c, const struct coro__ctx *entry,
                     ucontext_t *own);
/* The bytes a shared-stack task's own ucontext needs (the receiver of
 * coro__ctx_share's copy): fewer than sizeof(ucontext_t) where swapcontext
 * is known to use fewer (x86-64 glibc without a shadow stack: coro.c). */
size_t coro__shared_uc_size(void);
/* The current stack pointer (x86-64 and AArch64; NULL elsewhere, where
 * shared stacks are not offered). */
char *coro__stack_pointer(void);
/* Puts next's frames on the host stack, first copying out those of owner
 * (parked, or NULL if the stack holds nothing to keep). Runs on the loop's
 * own stack. Aborts if the copy cannot be allocated (coro.h says so). */
void coro__shared_install(struct coro_task *host, struct coro_task *owner,
                          struct coro_task *next);

/* Test hooks. guard_budget: mprotect-guarded stacks the process may still
 * create (-1: not yet read from vm.max_map_count). guard_install: whether
 * MADV_GUARD_INSTALL is used (-1: not yet probed; tests set 0 to take the
 * fallback paths). */
extern atomic_long coro__guard_budget;
extern atomic_int coro__guard_install;

/* The deepest byte ever written in the stack memory [lo, hi). */
const char *coro__stack_deepest(const char *lo, const char *hi);

/* ----------------------------------------------------------------------
 * Timers (timer.c): the clock and a 4-ary min-heap of deadlines. Knows
 * deadlines, not tasks: a node is all it is given.
 * ---------------------------------------------------------------------- */

#define CORO__NEVER INT64_MAX       /* a deadline that never comes */
#define CORO__TIMER_IDLE UINT32_MAX /* id of a node not in the heap */

/* The deadline itself is only in the node's heap slot (coro__timer_when):
 * kept in the node too, it cost every task 8 bytes. */
struct coro__timer {
    uint32_t id;                    /* its entry in the loop's tables while
                                       armed, or CORO__TIMER_IDLE */
};

/* A heap slot holds all that sifting reads and writes: the deadline, the
 * low bits of the insertion number (ties fire FIFO), and the id through
 * which the slot's position is kept in `where`, a dense array. The nodes,
 * one per task control block and so a page apart at a million sleepers,
 * are touched only when their timer starts, stops or fires. */
struct coro__heap_slot {
    int64_t             when;
    uint32_t            seq;
    uint32_t            id;
};

struct coro__timers {
    struct coro__heap_slot *heap;   /* 4-ary min-heap on (when, seq) */
    uint32_t               *where;  /* id -> heap index while armed; the
                                       next free id while not */
    struct coro__timer    **owner;  /* id -> its node, while armed */
    uint32_t                free;   /* first free id, or CORO__TIMER_IDLE */
    size_t                  n;      /* nodes in the heap */
    size_t                  cap;    /* ids and slots allocated */
    uint32_t                seq;    /* next insertion number, mod 2^32 */
};

int64_t coro__clock_ns(void);
/* A monotonic clock good to a few milliseconds, for a few nanoseconds. */
int64_t coro__coarse_ns(void);
/* Converts a timeout in seconds to an absolute deadline: 0 or EINVAL (NaN).
 * Negative and unrepresentably far timeouts give CORO__NEVER. */
int  coro__deadline(double timeout, int64_t *deadline);
void coro__timers_term(struct coro__timers *tm);
/* Makes room for n nodes, so that starting a timer never fails: 0/ENOMEM. */
int  coro__timers_reserve(struct coro__timers *tm, size_t n);
/* O(log n). The node must be idle. */
void coro__timer_start(struct coro__timers *tm, struct coro__timer *node,
                       int64_t when);
/* O(log n). Does nothing to an idle node. */
void coro__timer_stop(struct coro__timers *tm, struct coro__timer *node);
/* A started node's deadline (ns of CLOCK_MONOTONIC). O(1). */
static inline int64_t coro__timer_when(const struct coro__timers *tm,
                                       const struct coro__timer *node)
{
    return tm->heap[tm->where[node->id]].when;
}
/* Earliest deadline, or CORO__NEVER. O(1). */
int64_t coro__timer_next(const struct coro__timers *tm);
/* Removes and returns the earliest node if its deadline is <= now. */
struct coro__timer *coro__timer_expired(struct coro__timers *tm, int64_t now);

/* ----------------------------------------------------------------------
 * The kernel wait (poll.c): one epoll instance per loop, waited on with a
 * nanosecond timeout, and the way other threads wake the loop.
 * ---------------------------------------------------------------------- */

/* What other threads post to a loop: each kind is a bit, with a hook the
 * loop runs for it on its own thread. */
enum {
    CORO__POST_JOBS,                /* blocking calls finished (executor.c) */
    CORO__POST_CALLS,               /* calls posted to the loop (loop.c) */
    CORO__POST_KINDS
};

struct coro__poller;

/* Something with an fd in the epoll set; ready() runs on the loop's thread
 * when the fd has events. */
struct coro__pollable {
    void (*ready)(struct coro__pollable *self, uint32_t events);
    int      fd;                    /* set by coro__poller_add: the ring */
    uint32_t events;                /* re-arms an ended multishot poll */
};

struct coro__ring;

struct coro__poller {
    int epfd;                       /* the loop's epoll instance */
    int tfd;                        /* timerfd, if epoll_pwait2 is missing */
    int evfd;                       /* eventfd other threads wake the loop
                                       with, or -1 until one is needed */
    atomic_uint posted;             /* CORO__POST_* bits not yet run */
    atomic_int  sleeping;           /* the loop is in (or about to enter)
                                       the kernel wait */
    struct coro__ring *ring;        /* the io_uring backend (uring.c), or
                                       NULL: epoll */
    /* An event on a watched fd (set by io.c). */
    void (*fd_event)(struct coro__poller *p, int fd, uint32_t events);
    /* What to run for each kind of post (set by its module). */
    void (*on_post[CORO__POST_KINDS])(struct coro__poller *p);
};

int  coro__poller_init(struct coro__poller *p);   /* 0, or an errno value */
void coro__poller_term(struct coro__poller *p);
/* Adds fd to the epoll set for events, reported to h: 0 or an errno. */
int  coro__poller_add(struct coro__poller *p, int fd, uint32_t events,
                      struct coro__pollable *h);
/* Arms a one-shot watch of fd for events (EPOLLIN, EPOLLOUT...), reported
 * to p->fd_event: 0, EBADF, EPERM (fd cannot be polled: a regular file),
 * ENOMEM or ENOSPC. */
int  coro__poller_watch(struct coro__poller *p, int fd, uint32_t events);
/* Registers fd for good, edge-triggered, for both directions: 0 or
 * epoll_ctl's errno. epoll only: a ring keeps nothing (io.c). */
int  coro__poller_keep(struct coro__poller *p, int fd);
/* Drops a kept registration (coro_close). */
void coro__poller_unkeep(struct coro__poller *p, int fd);
/* Drops a pollable added by coro__poller_add. */
void coro__poller_remove(struct coro__poller *p, struct coro__pollable *h);
/* Blocks until the deadline (CORO__NEVER: until an event; a deadline past
 * already: only looks), an event or a post, and dispatches the events. */
void coro__poller_wait(struct coro__poller *p, int64_t deadline);
/* Makes the eventfd posts need when the loop sleeps (once; loop thread).
 * 0 or an errno value. */
int  coro__poller_wakeup_open(struct coro__poller *p);
/* From any thread: leaves a post of this kind, waking the loop if it
 * sleeps in the kernel. */
void coro__poller_post(struct coro__poller *p, unsigned kind);
/* Spins up to ns nanoseconds (not past deadline), watching for a post,
 * without sleeping: 1 if one came. */
int  coro__poller_spin(struct coro__poller *p, int64_t ns, int64_t deadline);
/* How long a loop whose tasks wait on other threads spins before it
 * sleeps, and how many spins that found nothing it makes before it stops
 * (sched.c). */
#define CORO__SPIN_NS 20000
#define CORO__SPIN_CREDIT 4
/* A sleep that a post ends within this long grants spins. */
#define CORO__SPIN_GRANT_NS 100000
/* Runs the hooks of the kinds posted (loop thread). */
void coro__poller_collect(struct coro__poller *p);
/* Whether anything was posted: one relaxed load, for every switch. */
static inline int coro__poller_posted(struct coro__poller *p)
{
    return atomic_load_explicit(&p->posted, memory_order_relaxed) != 0;
}
/* 1 while epoll_pwait2 works; tests clear it to take the timerfd path. */
extern atomic_int coro__have_pwait2;
/* epoll_wait's timeout for a deadline: whole milliseconds rounded up,
 * 0 if it has passed, -1 for CORO__NEVER, at most INT_MAX. */
int  coro__ms_timeout(int64_t deadline);
/* The time left until deadline (0 if past) in *ts, for the kernel's
 * nanosecond waits (epoll_pwait2, io_uring_enter): ts, or NULL (no
 * timeout) for CORO__NEVER. */
struct timespec *coro__timeout_ts(int64_t deadline, struct timespec *ts);

/* ----------------------------------------------------------------------
 * Readiness of fds (io.c)
 * ---------------------------------------------------------------------- */

/* Who waits on one fd. */
struct coro__fdwait {
    struct coro_task *reader;       /* parked in await_readable */
    struct coro_task *writer;       /* parked in await_writable */
    unsigned char     kept;         /* registered for good (coro_fd_keep) */
    unsigned char     stream;       /* kept, a stream socket: a short read
                                       empties it */
    unsigned char     ready;        /* kept: ready as far as we know, from
                                       the edges since the last EAGAIN
                                       (CORO__READY_IN | CORO__READY_OUT) */
};

enum { CORO__READY_IN = 1, CORO__READY_OUT = 2 };

struct coro__io {
    struct coro__fdwait *fds;       /* indexed by fd */
    size_t               nfds;      /* entries allocated */
};

/* A parked task's record of its fd wait (its wait record). */
struct coro__fd_record {
    int fd;
    int writable;
};

/* ----------------------------------------------------------------------
 * The io_uring backend (uring.c)
 * ---------------------------------------------------------------------- */

/* One operation in the ring, its task's wait record (union
 * coro__wait): the completion writes here, found by the SQE's user_data.
 * io comes first, so that what reads wait->io (dumps, io.c) sees the fd. */
struct coro__ring_op {
    struct coro__fd_record io;
    struct coro_task      *task;    /* woken by the completion, or NULL */
    int32_t                res;     /* the CQE's result */
    unsigned char          done;    /* the completion came */
};

/* The backend CORO_IO asks for (env.c): CORO__IO_EPOLL, CORO__IO_URING,
 * CORO__IO_AUTO, or EINVAL for a value it does not know. */
enum { CORO__IO_EPOLL, CORO__IO_URING, CORO__IO_AUTO };
int  coro__env_io(void);

int  coro__ring_init(struct coro__poller *p);  /* 0, or why not */
void coro__ring_term(struct coro__poller *p);
int  coro__ring_add(struct coro__poller *p, int fd, uint32_t events,
                    struct coro__pollable *h);
void coro__ring_remove(struct coro__poller *p, struct coro__pollable *h);
/* The loop's wake-up eventfd, watched by a multishot POLL_ADD. */
int  coro__ring_wakeup_watch(struct coro__poller *p, int fd);
void coro__ring_wait(struct coro__poller *p, int64_t deadline);
/* Whether the calling task may hand buf to the kernel: not while it runs
 * on the shared stack with buf on it, and not with no ring. */
int  coro__ring_usable(struct coro_task *self, const void *buf, size_t len);
/* The ring's operations, each run to its completion: on a timeout, a
 * cancellation or coro_close the operation is cancelled in the ring and
 * its completion awaited before the call returns. A result that came
 * before the cancellation took is returned as the result. Each returns 0
 * with *res (>= 0) or an errno value. */
int  coro__ring_poll(struct coro_task *self, int fd, int writable,
                     int64_t deadline);
int  coro__ring_recv(struct coro_task *self, int fd, void *buf, size_t cap,
                     int64_t deadline, size_t *got);
int  coro__ring_send(struct coro_task *self, int fd, const void *buf,
                     size_t n, int64_t deadline, size_t *sent);
int  coro__ring_accept(struct coro_task *self, int fd, int64_t deadline,
                       int *out);

void coro__io_init(struct coro__loop *l);
void coro__io_term(struct coro__io *io);
/* Parks self until fd is readable (or, with writable, writable) or the
 * deadline passes: 0, ETIMEDOUT, ECANCELED, EBADF, EBUSY, ENOMEM. The fd is
 * checked before any memory is spent on it. A regular file is ready at
 * once (0). `tried`: the caller's own system call on fd said EAGAIN just
 * now, so a kept fd is known not to be ready (see io.c). */
int  coro__wait_fd(struct coro_task *self, int fd, int writable,
                   int64_t deadline, int tried);
/* Whether fd is ready now, without waiting (poll(2) with no timeout), for
 * a call whose timeout is 0: 0, ETIMEDOUT, or EBADF. */
int  coro__fd_look(int fd, int writable);
/* A read of fd came back short just now: a kept stream socket is empty. */
void coro__fd_drained(int fd);
/* fd is a kept stream socket on a ring loop: a read goes to the ring at
 * once rather than try and, as it mostly would, say EAGAIN. */
int  coro__fd_ring_first(int fd);

/* ----------------------------------------------------------------------
 * Worker threads for blocking calls (executor.c). Workers never touch loop
 * state: only the fields below marked (lock), under the mutex, and the
 * loop's poller post.
 * ---------------------------------------------------------------------- */

/* One blocking call; in the `wait` of the task that made it. */
struct coro__job {
    void             *(*fn)(void *);
    void              *arg;
    void              *result;      /* fn's return value (lock) */
    int                err;         /* errno as fn left it (lock) */
    unsigned char      state;       /* queued, running, done (lock) */
    unsigned char      dropped;     /* loop only: taken off the queue by a
                                       cancellation; fn never ran */
    unsigned char      collected;   /* loop only: its completion was
                                       collected; result and err are set */
    struct coro_task  *task;        /* the parked caller */
    struct coro__link  link;        /* queue or done list (lock) */
};

struct coro__executor {
    pthread_mutex_t       lock;
    pthread_cond_t        work;     /* a job was queued, or stop */
    struct coro__list     queue;    /* jobs to run, FIFO (lock) */
    struct coro__list     done;     /* jobs finished, to collect (lock) */
    size_t                nqueued;  /* jobs in the queue (lock) */
    pthread_t            *threads;  /* workers started (lock) */
    size_t                nthreads;
    size_t                cap;
    unsigned              max;      /* jobs allowed to run at once (lock) */
    unsigned              idle;     /* workers waiting for a job (lock) */
    unsigned              running;  /* jobs running now (lock) */
    int                   stop;     /* workers must exit (lock) */
    int                   initialized; /* lock and cond exist */
    struct coro__poller  *poller;   /* where completions are posted */
    size_t                inflight; /* loop only: submitted, not collected */
};

int  coro__executor_init(struct coro__executor *x, struct coro__poller *p);
void coro__executor_term(struct coro__executor *x);  /* joins the workers */

/* ----------------------------------------------------------------------
 * Calls posted to a loop from any thread (loop.c): how other threads hand
 * a loop work (coro_loop_post, a submitted task) and wake its tasks (a
 * future's end, a cross-thread channel's hand-off). They ride on the
 * poller's post (CORO__POST_CALLS): no second way to wake a loop.
 *
 * A loop's handle, struct coro_loop, is a refcounted heap object that
 * outlives its loop: once the loop has ended, posts to it say ESHUTDOWN
 * instead of touching freed memory.
 * ---------------------------------------------------------------------- */

/* One call: runs once, on the loop's thread, in the loop's own context
 * (outside any task: coro_self() is NULL, await_* is EPERM), in the order
 * posted. Intrusive, so that a post that must not fail (a wake) embeds
 * its call in the record it wakes for and allocates nothing. */
struct coro__call {
    struct coro__call *next;        /* in the handle's queue (its lock) */
    void (*run)(struct coro__call *c); /* may free c */
};

/* Sets the loop's post hook (loop_new). */
void coro__loop_init(struct coro__loop *l);
/* The handle of loop l, made on first use (on l's thread): NULL with an
 * errno value (ENOMEM; EMFILE for the eventfd posts wake the loop with). */
struct coro_loop *coro__loop_handle(struct coro__loop *l);
/* Posts c to h's loop: 0, or ESHUTDOWN (c will never run). New work
 * (wake 0) is refused once the loop has begun to end; a wake (wake 1),
 * which a task of the loop waits for, is taken while the loop exists:
 * the loop cannot end before that task does. */
int  coro__loop_post(struct coro_loop *h, struct coro__call *c, int wake);
void coro__loop_ref(struct coro_loop *h);
void coro__loop_unref(struct coro_loop *h);
/* Runs the calls posted so far, in the loop's context: 1 if any ran. */
int  coro__loop_calls(struct coro__loop *l);
/* Whether another thread may still post to l: someone holds a reference
 * from coro_loop_retain, or a post is on its way. Deadlock detection asks
 * before it gives up on a loop whose tasks all wait on each other. */
int  coro__loop_reachable(struct coro__loop *l);
/* The end of coro_run: close refuses new work from then on; term detaches
 * the handle from the loop, which is about to be freed. */
void coro__loop_close(struct coro__loop *l);
void coro__loop_term(struct coro__loop *l);

/* A task's or a thread's place in a cross-thread channel's wait list
 * (xchan.c): a task's is its wait record (union coro__wait), a thread's
 * on its stack.
 * Fields marked (lock) are under the channel's mutex. */
struct coro__xwaiter {
    struct coro__link  link;        /* in senders or receivers (lock) */
    void              *elem;        /* what it sends, or where it receives */
    struct coro_xchan *chan;        /* the channel */
    struct coro_loop  *loop;        /* the task's loop, where its wake is
                                       posted; NULL: a thread waits */
    struct coro_task  *task;        /* the task, or NULL: a thread */
    struct coro__call  call;        /* that wake */
    int                status;      /* the outcome, 0 or EPIPE (lock) */
    unsigned char      send;        /* a sender (else a receiver) */
    unsigned char      listed;      /* on a wait list (lock) */
    unsigned char      done;        /* the other side completed it (lock) */
    unsigned char      delivered;   /* a task's wake has run (its loop's
                                       thread only) */
};

/* ----------------------------------------------------------------------
 * Tasks and the loop (sched.c)
 * ---------------------------------------------------------------------- */

enum coro__state {
    CORO__READY,                    /* in the ready queue */
    CORO__RUNNING,                  /* the loop's current task */
    CORO__PARKED,                   /* waiting for a wake source */
    CORO__DONE                      /* returned; waits to be joined/freed */
};

/* What a task awaiting other tasks (await_task, gather, wait) waits for;
 * in the awaiting task's `wait`. Written by the awaited tasks' exits. */
struct coro__await {
    size_t         n;               /* tasks awaited */
    size_t         pending;         /* of those, not ended yet */
    enum coro_when when;            /* what wakes the awaiter */
    int            failed;          /* one ended with an error other than
                                       ECANCELED (FIRST_EXCEPTION) */
};

#define CORO__NAME_MAX 32

/* The record of what a parked task waits for (its `wait`). Never on its
 * stack (see park): an own-stack task's sits beside its control block, at
 * the top of its mapping; a shared-stack task's is made on the heap by its
 * first wait that needs one (coro__enter), so that a task that only sleeps
 * does not pay for it. A task waits for one thing at a time; a select,
 * which waits on several lists, keeps its records on the heap. */
union coro__wait {
    struct coro__await     await;   /* join, gather, wait (sched.c) */
    struct coro__job       job;     /* a blocking call (executor.c) */
    struct coro__fd_record io;      /* an fd (io.c) */
    struct coro__ring_op   ring;    /* an operation in the ring (uring.c) */
    struct coro__xwaiter   xwait;   /* a cross-thread channel (xchan.c) */
    void                  *sync[8]; /* a waiter on an object (sync.c) */
};

/* The part of a task that few tasks use, kept apart from the control
 * block and made on first use (coro__extra_get): a name, membership of a
 * group, a select's record. A parked shared-stack task costs its control
 * block, its frames and a heap slot, so every field moved here is a field
 * ten million sleepers do not pay for. Freed with the task. */
/* A task's times (trace.c), kept while the loop observes its tasks (the
 * hook, CORO_TRACE, CORO_DEBUG, accounting or the watchdog). */
struct coro__acct {
    int64_t             note_at;    /* when last observed */
    int64_t             ran_ns;     /* time spent running */
    uint64_t            runs;       /* times it was given the thread */
    int64_t             longest_ns; /* its longest single run */
};

struct coro__extra {
    struct coro_task   *task;       /* whose it is */
    struct coro__acct   acct;       /* made at its first note: an observed
                                       task pays for the whole block */
    char                name[CORO__NAME_MAX]; /* coro_attr.name or
                                       coro_task_set_name's, copied */
    struct coro_group  *group;      /* the group it belongs to, or NULL */
    struct coro__link   group_link; /* in the group's members (group.c) */
    unsigned char       group_cancelled; /* its group cancelled it: not a
                                       failure of its own */
    /* A task with a scope open has its extra block (scope.c): */
    coro_timeout       *scope;      /* its innermost open scope */
    coro_timeout       *scope_bound;/* the scope whose deadline the last
                                       coro__enter handed the wait */
    coro_timeout       *shield_scope; /* the innermost scope open when
                                       the shield went on: it and those
                                       outside it are held back while the
                                       shield is on */
    void               *wait_block; /* a record on the heap (a select's),
                                       freed with the task if it is
                                       abandoned in the wait (a deadlock) */
    size_t              wait_block_size;
};

/* A task's control block: sits at the top of the task's stack mapping, so a
 * parked task with a shallow stack costs a single page. The fields up to
 * wait survive the stack's trip through the pool; the rest is reset by each
 * spawn. gdb/coro-gdb.py reads many of them, and the loop's, by name:
 * make gdb-check fails on a rename it was not told of. */
struct coro_task {
    struct coro__ctx    ctx;        /* saved registers (coro.c) */
    union coro__wait   *wait;       /* this wait's record: an own stack's
                                       beside the control block (coro.c);
                                       a shared-stack task's on the heap,
                                       NULL until a wait needs it */
    /* ---- reset at spawn from here on ---- */
    struct coro__loop  *loop;       /* owning loop */
    struct coro_task   *ready_next; /* ready queue / stack pool link */
    struct coro__link   all_link;   /* loop's list of all tasks */
    uint64_t            id;         /* 1, 2, ... in spawn order per loop */
    union {
        const void     *wait_what;  /* while parked: the object it waits
                                       on, for dumps */
        uint64_t        end_seq;    /* once ended: the order in which tasks
                                       ended */
    };
    coro_fn             fn;
    union {
        void           *arg;        /* fn's argument, until it runs */
        void           *result;     /* fn's return value, once it ended */
    };
    int                 error;      /* set by coro_fail */
    int                 wake_status;/* status passed by the last wake */
    int                 saved_errno;/* errno while it is switched out */
    unsigned char       state;      /* enum coro__state */
    unsigned char       cancelled;  /* coro_cancel was called (sticky) */
    unsigned char       shield;     /* coro_shield is on */
    unsigned char       detached;   /* coro_detach: free when it ends */
    unsigned char       exited;     /* fn returned: the context is parked
                                       at the trampoline, reusable */
    unsigned char       joined;     /* freed by a join or gather */
    unsigned char       wait_kind;  /* enum coro__wait_kind while parked */
    unsigned char       wakers;     /* CORO__BY_* of the present wait, as
                                       counted in the loop (sched.c) */
    unsigned char       note_state; /* what trace.c last saw it do */
    unsigned char       awaiting;   /* it awaits other tasks: wait->await
                                       is its record (join.c) */
    unsigned char       timeout_status; /* what a timer wake delivers: 0
                                       (a sleep) or ETIMEDOUT */
    unsigned char       scoped;     /* a timeout scope is open: the
                                       innermost is extra->scope */
    unsigned char       shared;     /* runs on the loop's shared stack: the
                                       control block is on the heap */
    unsigned char       site_known; /* spawned by a macro: site, not
                                       spawn_pc */
    uint32_t            since_ms;   /* when it last parked or woke: the
                                       coarse clock in ms, modulo 2^32
                                       (coro__since) */
    unsigned            mutexes;    /* coro_mutex it holds (sync.c) */
    struct coro__timer  timer;      /* deadline while parked (timer.c) */
    coro__detach_fn     detach;     /* unhooks from the wake source */
    void               *waiting_on; /* the source's record of this wait,
                                       usually *wait */
    struct coro_task   *waiter;     /* the task awaiting this one, if any */
    struct coro__await *report;     /* the record it tells of its end: in
                                       the waiter's `wait`, or on the heap
                                       (join.c) */
    const char         *fn_name;    /* from the spawn macro, or NULL */
    union {
        const char     *site;       /* "file.c:42" from the spawn macro */
        void           *spawn_pc;   /* or the spawn call's return address */
    };
    struct coro__extra *extra;      /* what few tasks use, or NULL */
    struct coro__locals *locals;    /* its task-local values, shared with
                                       its spawner and the tasks it
                                       spawned until one of them sets a
                                       value (local.c); NULL: none */
    /* CORO_SHARED_STACK only (coro.c and sched.c): */
    char               *saved_sp;   /* stack pointer when it last parked */
    char               *saved;      /* its frames [saved_sp, top) while
                                       another task's are on the stack */
    /* Sizes within the shared stack, which is at most CORO__STACK_MAX: */
    uint32_t            saved_len;  /* bytes in saved (0: frames in place,
                                       or never run) */
    uint32_t            shared_hw;  /* most bytes of frames it parked
                                       with: what saved holds at most */
};

/* An own stack's record, at the top of its mapping after its control block
 * and wait record (coro.c). */
static inline struct coro__stack *coro__own_stack(const struct coro_task *t)
{
    return (struct coro__stack *)(void *)((char *)(uintptr_t)t + sizeof *t +
                                          sizeof(union coro__wait));
}

/* What the stall watchdog (watchdog.c) knows of a loop's present run.
 * The loop's thread writes it as each run starts and ends, while the
 * watchdog is on; the watchdog's thread reads it (a sequence lock: seq is
 * odd while a task runs, and a reader that sees it change retries), and
 * so does the signal handler, on the loop's thread. */
struct coro__watch {
    atomic_llong        limit_ns;   /* the longest run allowed; 0: off */
    atomic_ullong       seq;        /* bumped as each run starts and ends */
    atomic_llong        start_ns;   /* when the present run started */
    _Atomic(struct coro_task *) task; /* who runs it */
    atomic_ullong       flagged;    /* the run the watchdog signalled */
    atomic_ullong       reported;   /* the run the handler reported */
};

/* Every this many switches the loop reads the coarse clock (so parking
 * reads none) and, while tasks wait on fds and others keep the ready queue
 * busy, looks at I/O (so they cannot starve it). */
#define CORO__TICK_EVERY 64

/* A loop: one per thread that runs coro_run. */
struct coro__loop {
    struct coro__ctx    ctx;        /* the coro_run caller's context */
    ucontext_t          ctx_uc;     /* where ctx saves its registers */
    ucontext_t          ctx_template; /* task contexts are copies of it */
    struct coro_task   *shared_host;  /* the stack shared-stack tasks run
                                         on (a pooled stack), once needed */
    struct coro_task   *shared_owner; /* whose frames are on it now */
    struct coro_task   *handoff;    /* a shared-stack task a task asked the
                                       loop's context to run: its frames
                                       must be put in place first */
    struct coro_task   *current;    /* the running task, NULL in ctx */
    struct coro_task   *ready_head; /* FIFO of ready tasks */
    struct coro_task   *ready_tail;
    struct coro__list   all;        /* every task not yet freed, in spawn
                                       order */
    struct coro__list   owned;      /* struct coro__owned objects alive */
    uint64_t            next_group; /* groups made, for their numbers */
    struct coro_task   *graveyard;  /* detached task that just ended: its
                                       stack is freed after the switch */
    struct coro_task   *main;       /* coro_run's task, until freed */
    size_t              ntasks;     /* tasks allocated (all list) */
    size_t              nlive;      /* tasks not DONE */
    size_t              waits_outside; /* parked tasks a timer, the kernel
                                       or a worker may wake */
    size_t              waits_kernel;  /* of those, the kernel (fds) */
    size_t              waits_thread;  /* of those, other threads */
    unsigned            spin_credit;   /* spins the loop may still make
                                       before it sleeps (sched.c) */
    uint64_t            run_id;     /* this coro_run's number in the
                                       process: never reused */
    uint64_t            next_id;
    uint64_t            end_seq;
    size_t              default_stack; /* CORO_STACK_SIZE or the default */
    int                *errno_at;   /* the loop thread's errno */
    void               *main_result;
    int                 main_error;
    unsigned char       main_done;
    unsigned char       closing;    /* every task was cancelled: main ended
                                       or the loop deadlocked */
    unsigned char       deadlocked; /* coro_run returns EDEADLK */
    unsigned char       poll_due;   /* the loop's context should look at
                                       I/O now */
    unsigned char       noting;     /* someone observes tasks: the event
                                       hook, CORO_TRACE, CORO_DEBUG,
                                       accounting or the watchdog */
    unsigned char       accounting; /* coro_set_accounting's or
                                       CORO_ACCOUNTING's (trace.c) */
    unsigned char       watching;   /* the watchdog is on (watchdog.c) */
    unsigned char       now_fresh;  /* now_ns is when the run that just
                                       ended ended: the next run starts
                                       then, without a clock read */
    int64_t             now_ns;
    unsigned char       debug;      /* CORO_DEBUG: warn (debug.c) */
    unsigned char       tracing;    /* CORO_TRACE: write events (trace.c) */
    unsigned            ticks;      /* switches since the last tick */
    coro_task_hook_fn   hook;       /* coro_set_task_hook's, or NULL */
    void               *hook_arg;
    unsigned            trace_pid;  /* this loop's number in the trace */
    int                 sigquit_fd; /* read end of the SIGQUIT pipe, or -1 */
    int                 sigquit_wfd;/* its write end, which the handler
                                       writes */
    struct coro__pollable sigquit;  /* its entry in the epoll set */
    int64_t             seen_ms;    /* a recent time (ms of the coarse
                                       clock), for t->since_ms: read
                                       when the loop sleeps, fires timers
                                       or ticks, so parking reads no clock;
                                       never steps back (sched.c) */
    struct coro__link   loops_link; /* in coro__loops (loops.c) */
    unsigned char       listed;     /* it is in coro__loops */
    pid_t               tid;        /* its thread, as the kernel and gdb
                                       number it */
    pthread_t           thread;     /* its thread, for the watchdog */
    struct coro__watch  watch;      /* the stall watchdog's (watchdog.c) */
    void               *alt_stack;  /* the signal stack coro gave the
                                       thread, or NULL (overflow.c) */
    struct coro_loop   *handle;     /* what other threads post to, made on
                                       first use, or NULL (loop.c) */
    unsigned char       calls_due;  /* calls were posted: the loop's
                                       context runs them next (loop.c) */
    struct coro__loop_set *group; /* the coro_run_loops this loop is
                                       one of, or NULL (run_loops.c) */
    struct coro__timers timers;
    struct coro__stacks stacks;
    struct coro__poller poller;
    struct coro__executor executor;
    struct coro__io     io;
};

/* The record of the stack t runs on: its own, or for a shared-stack task
 * its loop's host stack's. */
static inline struct coro__stack *coro__stack_of(const struct coro_task *t)
{
    return coro__own_stack(t->shared ? t->loop->shared_host : t);
}

/* Where t was spawned: the spawn macro's "file.c:42", or NULL. */
static inline const char *coro__spawn_site(const struct coro_task *t)
{
    return t->site_known ? t->site : NULL;
}

/* The spawn call's return address, where no site says where; else NULL. */
static inline void *coro__spawn_pc(const struct coro_task *t)
{
    return t->site_known ? NULL : t->spawn_pc;
}

/* When t last parked or woke, in ns: the latest time not after the loop's
 * clock (which never steps back) whose ms are since_ms modulo 2^32: exact
 * to the ms unless that was more than 49.7 days ago. */
static inline int64_t coro__since(const struct coro_task *t)
{
    int64_t now_ms = t->loop->seen_ms;
    return (now_ms - (uint32_t)((uint32_t)now_ms - t->since_ms)) * 1000000;
}

#define CORO__TASK_OF(link) CORO__ENTRY(link, struct coro_task, all_link)

/* t's extra block, made (zeroed) on first use: NULL if memory is short. */
struct coro__extra *coro__extra_get(struct coro_task *t);
/* The group t belongs to, or NULL. */
static inline struct coro_group *coro__task_group(const struct coro_task *t)
{
    return CORO__UNLIKELY(t->extra != NULL) ? t->extra->group : NULL;
}

/* A heap object the loop frees at its end if its owner did not (an
 * as_completed iterator, a task group): first in the object. */
struct coro__owned {
    struct coro__link link;         /* in the loop's `owned` */
    size_t            size;         /* bytes to free */
};
void coro__owned_add(struct coro__loop *l, struct coro__owned *o,
                     size_t size);
void coro__owned_free(struct coro__loop *l, struct coro__owned *o);

/* Creates a task of this thread's loop as coro_spawn_attr does, with its
 * name, site and spawning call's address, in group g (or none); NULL and
 * an errno value in *err. */
struct coro_task *coro__spawn(const coro_attr *attr, coro_fn fn, void *arg,
                              const char *fn_name, const char *site,
                              struct coro_group *g, void *pc, int *err);
/* Puts t, just created, in group g (group.c). */
void coro__group_add(struct coro_group *g, struct coro_task *t);
/* t, a member of a group, has ended (group.c). */
void coro__group_ended(struct coro_task *t);
/* A group's number in its loop (1, 2, ...), for dumps. */
unsigned long long coro__group_id(const struct coro_group *g);

/* Timeout scopes (scope.c). coro__scope_enter is coro__enter's part for a
 * task with scopes open: ETIMEDOUT if the nearest one has passed, else 0,
 * with *deadline (if not NULL) lowered to it and t->scope_bound set. */
int  coro__scope_enter(struct coro_task *t, int64_t *deadline);
/* Whether a wait with this deadline ends by t's scope: it then returns
 * ETIMEDOUT, and the scope is marked expired. */
int  coro__scope_limits(const struct coro_task *t, int64_t deadline);
void coro__scope_expired(struct coro_task *t);
/* Frees t's open scopes at its end. */
void coro__scopes_free(struct coro_task *t);

/* This thread's loop (sched.c); coro__loop() outside the hot paths. */
extern __thread struct coro__loop *coro__tls_loop;

static inline int coro__enter_unrecorded(double timeout,
                                         struct coro_task **self,
                                         int64_t *deadline)
{
    struct coro__loop *l = coro__tls_loop;
    struct coro_task *t = l ? l->current : NULL;
    if (CORO__UNLIKELY(!t))
        return EPERM;
    *self = t;
    if (deadline) {
        if (timeout < 0)
            *deadline = CORO__NEVER;
        else if (coro__deadline(timeout, deadline) != 0)
            return EINVAL;
    }
    if (CORO__UNLIKELY(t->cancelled) && !t->shield)
        return ECANCELED;
    return CORO__UNLIKELY(t->scoped) ? coro__scope_enter(t, deadline) : 0;
}

static inline int coro__enter(double timeout, struct coro_task **self,
                              int64_t *deadline)
{
    /* Before the other checks: a wait that goes on to cancel and drain
     * what it awaits (await_task on a cancelled task) needs it too. */
    struct coro__loop *l = coro__tls_loop;
    struct coro_task *t = l ? l->current : NULL;
    if (CORO__UNLIKELY(t && !t->wait) && coro__wait_alloc(t) != 0)
        return ENOMEM;
    return coro__enter_unrecorded(timeout, self, deadline);
}

/* ----------------------------------------------------------------------
 * Seeing inside (trace.c, debug.c, overflow.c)
 * ---------------------------------------------------------------------- */

/* What happens to a task, as the observers see it. */
enum coro__note {
    CORO__NOTE_SPAWN,   /* created, ready */
    CORO__NOTE_RUN,     /* starts running */
    CORO__NOTE_PARK,    /* parks (wait_kind says on what) */
    CORO__NOTE_READY,   /* woken, or yielded: back in the ready queue */
    CORO__NOTE_END      /* its function returned */
};

/* Called at each of those while l->noting, only then: no cost when off. */
void coro__note(struct coro__loop *l, struct coro_task *t, int note);
/* Sets up the hook, CORO_TRACE and CORO_DEBUG for a new loop. */
void coro__observe_init(struct coro__loop *l);
void coro__observe_term(struct coro__loop *l);

/* Formatting without stdio or allocation, for signal handlers (defined
 * in overflow.c, used by watchdog.c too): text goes into a fixed buffer,
 * cut short if it does not fit, then out with write(2). */
struct coro__line {
    char *p;                        /* where the next byte goes */
    char *end;                      /* the end of the buffer */
};
void coro__put(struct coro__line *l, const char *s);
void coro__put_u(struct coro__line *l, unsigned long long v);
void coro__put_hex(struct coro__line *l, uintptr_t v);
/* task #7 "name" (site.c:42), or the spawning call's address for a site */
void coro__put_task(struct coro__line *l, const struct coro_task *t);
/* Writes [buf, l->p) to fd. */
void coro__line_write(int fd, const char *buf, const struct coro__line *l);

/* write(2) as a system call of its own, for signal handlers: the hooks
 * library (hook.c) defines `write`, and a hooked write may park the task
 * a handler interrupted. */
ssize_t coro__write_raw(int fd, const void *p, size_t n);

/* The alternate signal stack of the loop's thread and the handler that
 * names a task overflowing its stack (overflow.c): 0 or an errno value. */
int  coro__overflow_init(struct coro__loop *l);
void coro__overflow_term(struct coro__loop *l);
/* An unguarded stack's canary was found overwritten: reports t and
 * aborts. */
_Noreturn void coro__overflow_canary(const struct coro_task *t);
/* Checks t's canary if its stack has no guard page. */
static inline void coro__stack_check(const struct coro_task *t)
{
    const struct coro__stack *s = coro__stack_of(t);
    if (!s->guard && !coro__stack_canary_intact(s))
        coro__overflow_canary(t);
}

/* The id of the task of loop l holding m, or 0 (free, or held in another
 * run): for coro_dump (sync.c). */
unsigned long long coro__mutex_holder(const coro_mutex *m,
                                      const struct coro__loop *l);
/* What a wait kind is called in dumps and traces ("sleep", "join"...),
 * from coro__wait_names (debug.c), which gdb/coro-gdb.py reads too. */
const char *coro__wait_name(int kind);
extern const char *const coro__wait_names[];
/* CORO_DEBUG's warnings, and the deadlock report (debug.c). */
void coro__debug_slow(struct coro_task *t, int64_t ran_ns);
void coro__debug_end(struct coro__loop *l, struct coro_task *t);
void coro__debug_unjoined(struct coro_task *t);
void coro__deadlock_report(struct coro__loop *l);
/* Stops the SIGQUIT dump for a loop that ends. */
void coro__debug_term(struct coro__loop *l);
/* Recomputes l->noting after an observer came or went. One that comes
 * mid-run starts every task's record afresh, the running task's run from
 * now. */
void coro__observe_update(struct coro__loop *l);

/* t's accounts: time spent running and its longest run, the run going on
 * now included, and its runs. */
void coro__accounts(const struct coro_task *t, int64_t *ran,
                    int64_t *longest);
uint64_t coro__runs(const struct coro_task *t);

/* The process's running loops (loops.c), for gdb and the watchdog: a loop
 * is added as coro_run starts it (which records its thread) and removed
 * as it ends, under coro__loops_lock. */
extern struct coro__list coro__loops;
extern pthread_mutex_t coro__loops_lock;
void coro__loops_add(struct coro__loop *l);
void coro__loops_remove(struct coro__loop *l);

/* The stall watchdog (watchdog.c). init reads coro_set_watchdog's setting
 * or CORO_WATCHDOG for a new loop (listed already); term stops watching
 * it. run and stop are told, on the loop's thread, as each of its runs
 * starts and ends, while l->watching. */
void coro__watchdog_init(struct coro__loop *l);
void coro__watchdog_term(struct coro__loop *l);
void coro__watchdog_run(struct coro__loop *l, struct coro_task *t,
                        int64_t now);
void coro__watchdog_stop(struct coro__loop *l, struct coro_task *t,
                         int64_t now);
/* In a child of fork(): no watchdog thread runs there. */
void coro__watchdog_after_fork(void);

/* ----------------------------------------------------------------------
 * Task-local values (local.c). Three calls in sched.c: at spawn, at a
 * task's end, and as a task that never ended is freed; each is one
 * untaken branch for a task that holds no values.
 * ---------------------------------------------------------------------- */

void coro__local_share(struct coro_task *t, struct coro_task *spawner);
void coro__local_release(struct coro_task *t);

/* At spawn: t starts with its spawner's values (NULL: none). Nothing is
 * copied: the two share them until either sets one. Cannot fail. */
static inline void coro__local_inherit(struct coro_task *t,
                                       struct coro_task *spawner)
{
    if (CORO__UNLIKELY(spawner && spawner->locals))
        coro__local_share(t, spawner);
}

/* At the end of t, in t, before anything sees it ended; and when a task
 * that never ended (abandoned by coro_run) is freed. Lets go of t's values
 * and runs the destructors of those no other task holds. */
static inline void coro__local_end(struct coro_task *t)
{
    if (CORO__UNLIKELY(t->locals != NULL))
        coro__local_release(t);
}

#endif /* CORO_INTERNAL_H */
