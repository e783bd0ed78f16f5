/* coro.c: everything that touches the machine. A task's stack (mmap, guard
 * page, pool, slabs), its context (makecontext), the frames of shared-stack
 * tasks copied out and in, and the hooks that tell valgrind, ASan and TSan
 * about stacks and switches (the switch itself is inline, in switch.h).
 *
 * Tasks never migrate between threads. If that ever changes, the switch must
 * become noinline and every thread-local must be re-read after it: the
 * compiler may otherwise cache a TLS address across swapcontext (QEMU hit
 * exactly this).
 */
#include "switch.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>) && !defined(CORO_NO_VALGRIND)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define CORO__VALGRIND 1
#endif
#endif
#ifdef CORO__ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CORO__TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* ----------------------------------------------------------------------
 * Allocation accounting
 * ---------------------------------------------------------------------- */

struct coro__alloc_stats coro__alloc_stats;

/* Fails one call in fail_every, spread pseudo-randomly but reproducibly
 * (a hash of the call count), so a test walks many different failure
 * points through the same program. */
int coro__alloc_should_fail(void)
{
    unsigned every = atomic_load_explicit(&coro__alloc_stats.fail_every,
                                          memory_order_relaxed);
    if (CORO__LIKELY(every == 0))
        return 0;
    uint32_t x = atomic_fetch_add(&coro__alloc_stats.counter, 1) + 1;
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x % every == 0;
}

void *coro__alloc(size_t size)
{
    if (coro__alloc_should_fail())
        return NULL;
    void *p = malloc(size);
    if (p)
        atomic_fetch_add(&coro__alloc_stats.blocks, 1);
    return p;
}

void *coro__calloc(size_t n, size_t size)
{
    if (coro__alloc_should_fail())
        return NULL;
    void *p = calloc(n, size);
    if (p)
        atomic_fetch_add(&coro__alloc_stats.blocks, 1);
    return p;
}

void *coro__realloc(void *p, size_t old_size, size_t new_size)
{
    (void)old_size;
    if (coro__alloc_should_fail())
        return NULL;
    void *q = realloc(p, new_size);
    if (q && !p)
        atomic_fetch_add(&coro__alloc_stats.blocks, 1);
    return q;
}

void coro__free(void *p, size_t size)
{
    (void)size;
    if (!p)
        return;
    free(p);
    atomic_fetch_sub(&coro__alloc_stats.blocks, 1);
}

int coro__under_valgrind(void)
{
#ifdef CORO__VALGRIND
    return RUNNING_ON_VALGRIND != 0;
#else
    return 0;
#endif
}

void coro__assert_fail(const char *cond, const char *file, int line)
{
    const struct coro_task *t = coro__current();
    if (t)
        fprintf(stderr, "coro: assertion failed: %s (%s:%d) in task #%llu\n",
                cond, file, line, (unsigned long long)t->id);
    else
        fprintf(stderr, "coro: assertion failed: %s (%s:%d)\n", cond, file,
                line);
    abort();
}

/* ----------------------------------------------------------------------
 * Context switching
 *
 * swapcontext saves and restores the signal mask: one rt_sigprocmask system
 * call per switch, most of its cost (about 170 ns of a 190 ns handoff
 * here). It is kept as the default because it is the portable, documented
 * primitive, and it keeps a signal mask per task.
 *
 * The fast switch (CORO_SWITCH_FAST) neither saves nor restores the
 * signal mask. On x86-64 every switch is coro__regs_swap (below), the
 * first into a fresh context too: ctx_make puts its entry in its saved
 * registers. Elsewhere and under the sanitizers, a new task's stack is
 * entered the first time by a jump to its top (switch.h; makecontext and
 * setcontext on machines other than x86-64 and AArch64), and from then on
 * a switch is _setjmp into the leaving context and _longjmp to the other
 * (QEMU's way). The sanitizer hooks are the same for all: they describe
 * stacks, not how we jump between them.
 * ---------------------------------------------------------------------- */

#ifdef CORO__ASAN
__thread struct coro__ctx *coro__asan_switching_from;
#endif

int coro__ctx_template(ucontext_t *tpl)
{
    return getcontext(tpl) == 0 ? 0 : ENOMEM;
}

/* makecontext needs a context that getcontext filled in. Copying one taken
 * once per loop saves getcontext's signal-mask system call on every spawn.
 * On x86-64 glibc the copy's pointer to its floating-point state still
 * points into the template; aim it at the copy's own area. */
#ifndef CORO__STACK_ENTER
static void ctx_copy_n(ucontext_t *dst, const ucontext_t *tpl, size_t n)
{
    memcpy(dst, tpl, n);
#if defined(__x86_64__) && defined(__GLIBC__)
    dst->uc_mcontext.fpregs = &dst->__fpregs_mem;
#endif
}
#endif

/* A ucontext_t is 968 bytes on x86-64, and swapcontext touches the first
 * 452 of them: the general registers, the pointer to the floating-point
 * state, the kernel's 8-byte signal mask, and of that state only the x87
 * environment (28 bytes) with MXCSR inside it; the 512-byte FXSAVE area
 * past those is never written nor read. The exception is glibc's shadow
 * stack support, which keeps the shadow stack pointer at the very end, and
 * only when the kernel runs the process with a shadow stack: then the whole
 * struct is kept. A shared-stack task's ucontext is its own, on the heap,
 * so the other 512 bytes would be a quarter of all a parked sleeper costs
 * in this build. */
#if !defined(CORO_SWITCH_FAST) && defined(__x86_64__) && defined(__GLIBC__)
#define UC_USED (offsetof(ucontext_t, __fpregs_mem) + 32)
static size_t shared_uc_size = 0;
static pthread_once_t shared_uc_once = PTHREAD_ONCE_INIT;

static void shared_uc_init(void)
{
    unsigned long features = 0;
    int saved = errno; /* a spawn that succeeds leaves errno alone */
    /* ARCH_SHSTK_STATUS (Linux 6.6): bit 0 is ARCH_SHSTK_SHSTK. Older
     * kernels know no shadow stack and say EINVAL; valgrind knows none. */
    int shstk = !coro__under_valgrind() &&
                syscall(SYS_arch_prctl, 0x5005, &features) == 0 &&
                (features & 1);
    errno = saved;
    shared_uc_size = shstk ? sizeof(ucontext_t) : UC_USED;
}

size_t coro__shared_uc_size(void)
{
    pthread_once(&shared_uc_once, shared_uc_init);
    return shared_uc_size;
}
#else
size_t coro__shared_uc_size(void)
{
    return sizeof(ucontext_t);
}
#endif

/* Prepares c, from tpl, to start entry() on the stack [lo, lo + len).
 * ENOMEM if TSan cannot create a fiber; 0 otherwise. */
static int ctx_make(struct coro__ctx *c, const ucontext_t *tpl, void *lo,
                    size_t len, void (*entry)(void))
{
#ifdef CORO__STACK_ENTER
    (void)tpl; /* entered by a jump to entry (switch.h) */
#else
    ctx_copy_n(c->uc, tpl, sizeof *c->uc);
    c->uc->uc_stack.ss_sp = lo;
    c->uc->uc_stack.ss_size = len;
    c->uc->uc_link = NULL;
    makecontext(c->uc, entry, 0);
#endif
#ifdef CORO__REGS_SWITCH
    /* The first switch to c resumes it at entry, at the top of its stack,
     * as though entry had been called there: a zero return address and
     * frame pointer, so that unwinders (gdb, backtrace) stop at entry. */
    void **top = (void **)(((uintptr_t)lo + len) & ~(uintptr_t)15);
    top[-1] = NULL;
    memset(c->regs, 0, sizeof c->regs);
    c->regs[CORO__REGS_SP] = &top[-1];
    c->regs[CORO__REGS_PC] = (void *)entry;
#else
    c->stack_lo = lo;
    c->stack_len = len;
#ifdef CORO_SWITCH_FAST
    c->started = 0;
#endif
    c->made = 1;
#endif
#ifdef CORO__STACK_ENTER
    CORO__ASSERT(entry == coro__task_entry); /* where the jump goes */
#endif
#ifdef CORO__ASAN
    c->asan_fake = NULL;
#endif
#ifdef CORO__TSAN
    c->tsan_fiber = __tsan_create_fiber(0);
    if (!c->tsan_fiber)
        return ENOMEM;
#endif
    return 0;
}

#if defined(CORO_SWITCH_FAST) && defined(__x86_64__) && defined(__GLIBC__)
_Static_assert(offsetof(struct __jmp_buf_tag, __mask_was_saved) ==
                   offsetof(struct coro__jb, mask_was_saved) &&
               sizeof(((struct __jmp_buf_tag *)0)->__jmpbuf) ==
                   sizeof(((struct coro__jb *)0)->jmpbuf),
               "struct coro__jb is the head of glibc's jmp_buf");
#endif

void coro__ctx_thread(struct coro__ctx *c)
{
#ifndef CORO__REGS_SWITCH
    c->stack_lo = NULL;
    c->stack_len = 0;
#ifdef CORO_SWITCH_FAST
    c->started = 1; /* it is running: its first switch away saves it */
#endif
#endif
    (void)c;
#ifdef CORO__ASAN
    c->asan_fake = NULL;
#endif
#ifdef CORO__TSAN
    c->tsan_fiber = __tsan_get_current_fiber();
#endif
}

void coro__ctx_discard(struct coro__ctx *c)
{
#ifdef CORO__TSAN
    if (coro__ctx_made(c) && c->tsan_fiber)
        __tsan_destroy_fiber(c->tsan_fiber);
    c->tsan_fiber = NULL;
#endif
#ifdef CORO__REGS_SWITCH
    c->regs[CORO__REGS_PC] = NULL;
#else
    c->made = 0;
#endif
}

/* ----------------------------------------------------------------------
 * Stacks
 *
 * Layout of one stack, low addresses first:
 *
 *   [guard page] [stack, growing down ........... | control block]
 *                ^ lo                              ^ the task
 *
 * The control block (struct coro_task) sits at the very top, so the page a
 * parking task touches last is the one that holds its control block: a task
 * that parks with a shallow stack costs one page in all.
 *
 * Guard pages, three ways, best first:
 *
 * 1. MADV_GUARD_INSTALL (Linux 6.13): the guard is a marker in the page
 *    table, not a mapping of its own. Every stack is guarded, stacks are
 *    carved from slabs of many stacks (one mapping per slab), and a guard
 *    costs one madvise call (about 0.6 µs here) and no memory.
 * 2. mprotect: the guard splits the mapping in two, and Linux caps mappings
 *    per process at vm.max_map_count (65530 by default), which one guard per
 *    stack exhausts near 32,000 tasks. So these draw on a budget of a
 *    quarter of that limit (shared by the process's loops).
 * 3. None, past that budget: slab stacks whose lowest 16 bytes must stay
 *    zero (the canary). Checking it only reads the page, which maps the
 *    kernel's shared zero page: no memory. An overflow is then reported at
 *    the task's next switch, after the fact.
 *
 * Free stacks go to a hot pool per size class (LIFO, so the pages most
 * recently touched are reused first); past CORO__POOL_MAX they are unmapped,
 * or returned to their slab, which is unmapped once all its stacks are back.
 * ---------------------------------------------------------------------- */

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef PIDFD_SELF
#define PIDFD_SELF (-10000) /* Linux 6.14: process_madvise on oneself */
#endif
#define GUARD_BATCH 64      /* guards installed per process_madvise call */

#define CANARY_SIZE 16                /* zero bytes at the bottom (way 3) */
#define SLAB_BYTES ((size_t)16 << 20) /* aim for slabs of about 16 MiB */
#define SLAB_MIN_STACKS 16

enum { GUARD_NONE, GUARD_MPROTECT, GUARD_MADVISE, GUARD_INSTALLED };

struct coro__slab {
    struct coro__link         link; /* in the class's list of partial slabs */
    struct coro__stack_class *cls;  /* the class it serves */
    char                     *map;  /* the mapping */
    size_t                    stride;  /* guard page + stack size */
    size_t                    nstacks; /* stacks it holds */
    size_t                    carved;  /* stacks handed out at least once */
    size_t                    used;    /* stacks handed out now */
    size_t                    guarded; /* stacks whose guard was installed
                                          in a batch when the slab was made */
    struct coro_task         *free;    /* returned stacks, via ready_next */
    int                       partial; /* on cls->partial */
    int                       guard;   /* the class's guard way when made */
    struct coro__chore        chore;   /* prepared or unmapped by the
                                          housekeeping thread (chores.c) */
};

atomic_long coro__guard_budget = -1;
atomic_int coro__guard_install = -1;
static int have_guard_batch; /* process_madvise takes MADV_GUARD_INSTALL */

static size_t page_size;
static pthread_once_t stacks_once = PTHREAD_ONCE_INIT;

static long read_max_map_count(void)
{
    long v = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1 || v <= 0)
            v = 65530;
        fclose(f);
    }
    return v;
}

static int probe_guard_install(void)
{
    char *p = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    int ok = madvise(p, page_size, MADV_GUARD_INSTALL) == 0;
    struct iovec iov = { p + page_size, page_size };
    /* valgrind 3.19 does not know process_madvise: it would refuse it,
     * with a warning on stderr, so it is not asked. */
    have_guard_batch = ok && !coro__under_valgrind() &&
                       syscall(SYS_process_madvise, PIDFD_SELF, &iov, 1,
                               MADV_GUARD_INSTALL, 0) == (long)page_size;
    munmap(p, 2 * page_size);
    return ok;
}

static void stacks_init_once(void)
{
    int saved = errno;
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    /* Tests may have set these hooks already; keep their values. */
    long budget = -1;
    atomic_compare_exchange_strong(&coro__guard_budget, &budget,
                                   read_max_map_count() / 8);
    int install = -1;
    atomic_compare_exchange_strong(&coro__guard_install, &install,
                                   probe_guard_install());
    errno = saved;
}

/* An own stack's control block and, after it, its wait record and its
 * stack record (coro__own_stack). */
static size_t tcb_size(void)
{
    return (sizeof(struct coro_task) + sizeof(union coro__wait) +
            sizeof(struct coro__stack) + 63) & ~(size_t)63;
}

/* The ucontext of an own stack sits just below its control block. */
static size_t uc_size(void)
{
    return (sizeof(ucontext_t) + 63) & ~(size_t)63;
}

/* Usable stack of t: above the canary, below its ucontext. */
static char *usable_lo(const struct coro_task *t)
{
    return coro__own_stack(t)->lo + CANARY_SIZE;
}

/* Where its ucontext is, or would be (a fast build entered by a jump
 * keeps none, and the space is stack slack). */
static char *uc_at(const struct coro_task *t)
{
    return (char *)t - uc_size();
}

static size_t usable_len(const struct coro_task *t)
{
    return (size_t)(uc_at(t) - usable_lo(t));
}

size_t coro__stack_size_of(const struct coro_task *t)
{
    return t->shared ? usable_len(t->loop->shared_host)
                     : coro__own_stack(t)->size;
}

const char *coro__stack_usable(const struct coro_task *t, size_t *len)
{
    if (t->shared)
        t = t->loop->shared_host;
    *len = usable_len(t);
    return usable_lo(t);
}

int coro__stack_size(size_t requested, size_t dflt, size_t *out)
{
    pthread_once(&stacks_once, stacks_init_once);
    if (requested == 0)
        requested = dflt;
    if (requested < CORO__STACK_MIN || requested > CORO__STACK_MAX)
        return EINVAL;
    *out = (requested + page_size - 1) & ~(page_size - 1);
    return 0;
}

static void *map_pages(size_t len)
{
    if (coro__alloc_should_fail())
        return NULL;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                   -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    atomic_fetch_add(&coro__alloc_stats.stacks, 1);
    return p;
}

static void unmap_pages(void *p, size_t len)
{
    munmap(p, len);
    atomic_fetch_sub(&coro__alloc_stats.stacks, 1);
}

/* Makes [base, base + page + size) a stack: guard page (installed with
 * madvise if the kernel can) below, control block on top. NULL if the guard
 * cannot be installed. */
static struct coro_task *stack_carve(char *base, size_t size,
                                     struct coro__slab *slab, int guard)
{
    if (guard == GUARD_MADVISE &&
        madvise(base, page_size, MADV_GUARD_INSTALL) != 0)
        return NULL;
    if (guard == GUARD_INSTALLED)
        guard = GUARD_MADVISE;
    char *lo = base + page_size;
    struct coro_task *t = (struct coro_task *)(void *)(lo + size - tcb_size());
    struct coro__stack *s = coro__own_stack(t);
    s->lo = lo;
    s->size = size;
    s->slab = slab;
    s->guard = (unsigned char)guard;
    t->shared = 0;
    t->wait = (union coro__wait *)(void *)(t + 1);
#ifndef CORO__STACK_ENTER
    t->ctx.uc = (ucontext_t *)(void *)uc_at(t);
#endif
    coro__ctx_discard(&t->ctx); /* fresh memory: no context yet */
#ifdef CORO__VALGRIND
    s->vg_id = VALGRIND_STACK_REGISTER(usable_lo(t), uc_at(t));
#else
    s->vg_id = 0;
#endif
    return t;
}

/* The stack is going away: so is any context parked on it. */
static void stack_forget(struct coro_task *t)
{
    coro__ctx_discard(&t->ctx);
#ifdef CORO__VALGRIND
    VALGRIND_STACK_DEREGISTER(coro__own_stack(t)->vg_id);
#endif
}

/* A mapping of its own, with an mprotect'ed guard page, if the budget
 * allows. */
static struct coro_task *mprotect_get(size_t size)
{
    if (atomic_fetch_sub(&coro__guard_budget, 1) <= 0) {
        atomic_fetch_add(&coro__guard_budget, 1);
        return NULL;
    }
    char *map = map_pages(page_size + size);
    if (!map)
        goto out_budget;
    if (mprotect(map, page_size, PROT_NONE) != 0)
        goto out_unmap;
    return stack_carve(map, size, NULL, GUARD_MPROTECT);

out_unmap:
    unmap_pages(map, page_size + size);
out_budget:
    atomic_fetch_add(&coro__guard_budget, 1);
    return NULL;
}

/* A mapping of its own for a size no pool class holds: guarded by madvise
 * where possible, else unguarded with the canary. */
static struct coro_task *solo_get(size_t size, int guard)
{
    char *map = map_pages(page_size + size);
    if (!map)
        return NULL;
    struct coro_task *t = stack_carve(map, size, NULL, guard);
    if (!t)
        unmap_pages(map, page_size + size);
    return t;
}

static void partial_add(struct coro__slab *s)
{
    coro__list_append(&s->cls->partial, &s->link);
    s->partial = 1;
}

static void partial_remove(struct coro__slab *s)
{
    coro__list_remove(&s->cls->partial, &s->link);
    s->partial = 0;
}

/* Installs the guards of all of s's stacks, GUARD_BATCH per system call:
 * about 0.45 µs a stack instead of 0.6 µs for a madvise each. Stops at the
 * first failure; carving installs whatever is left one by one. */
static void slab_guard_batch(struct coro__slab *s)
{
    struct iovec iov[GUARD_BATCH];
    while (s->guarded < s->nstacks) {
        size_t k = s->nstacks - s->guarded;
        if (k > GUARD_BATCH)
            k = GUARD_BATCH;
        for (size_t i = 0; i < k; i++) {
            iov[i].iov_base = s->map + (s->guarded + i) * s->stride;
            iov[i].iov_len = page_size;
        }
        long done = syscall(SYS_process_madvise, PIDFD_SELF, iov, k,
                            MADV_GUARD_INSTALL, 0);
        if (done > 0)
            s->guarded += (size_t)done / page_size;
        if (done != (long)(k * page_size))
            return;
    }
}

/* A slab's mapping, without guards yet: on the loop's thread, so that an
 * allocation failure injected by a test stays where the test expects it. */
static struct coro__slab *slab_alloc(struct coro__stack_class *c, int guard)
{
    struct coro__slab *s = coro__calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cls = c;
    s->guard = guard;
    s->stride = page_size + c->size;
    s->nstacks = SLAB_BYTES / s->stride;
    if (s->nstacks < SLAB_MIN_STACKS)
        s->nstacks = SLAB_MIN_STACKS;
    s->map = map_pages(s->nstacks * s->stride);
    if (!s->map) {
        coro__free(s, sizeof *s);
        return NULL;
    }
    /* A transparent huge page would commit 2 MiB for the first touch of a
     * stack that needs 4 KiB. */
    madvise(s->map, s->nstacks * s->stride, MADV_NOHUGEPAGE);
    return s;
}

static void slab_unmap(struct coro__slab *s)
{
    unmap_pages(s->map, s->nstacks * s->stride);
    coro__free(s, sizeof *s);
}

/* On the housekeeping thread: the guards, and the page each stack's control
 * block will sit on, so that carving the slab's stacks faults nothing. */
static void slab_prepare(struct coro__chore *ch)
{
    struct coro__slab *s = CORO__CONTAINER_OF(ch, struct coro__slab, chore);
    if (s->guard == GUARD_MADVISE && have_guard_batch)
        slab_guard_batch(s);
    for (size_t i = 0; i < s->nstacks; i++)
        *(volatile char *)(s->map + (i + 1) * s->stride - 1) = 0;
}

/* munmap is harmless to repeat: the child of a fork may. */
static void slab_unmap_chore(struct coro__chore *ch)
{
    struct coro__slab *s = CORO__CONTAINER_OF(ch, struct coro__slab, chore);
    munmap(s->map, s->nstacks * s->stride);
}

static void slab_release(struct coro__chore *ch)
{
    atomic_fetch_sub(&coro__alloc_stats.stacks, 1);
    coro__free(CORO__CONTAINER_OF(ch, struct coro__slab, chore),
               sizeof(struct coro__slab));
}

/* A loop that has filled a slab is spawning in bulk: the next slab is made
 * ready beside it, at once, while this one is carved. */
static void slab_prepare_next(struct coro__stack_class *c, int guard)
{
    if (c->next || c->nslabs < 2 || !coro__chores_ready(1))
        return;
    struct coro__slab *s = slab_alloc(c, guard);
    if (s) {
        coro__chore_post(&s->chore, slab_prepare, NULL);
        c->next = s;
    }
}

static struct coro__slab *slab_new(struct coro__stack_class *c, int guard)
{
    struct coro__slab *s = c->next;
    if (s && coro__chore_done(&s->chore) && s->guard == guard) {
        c->next = NULL;
    } else {
        /* Not ready yet: making one here beats waiting for it. */
        s = slab_alloc(c, guard);
        if (!s)
            return NULL;
        if (guard == GUARD_MADVISE && have_guard_batch)
            slab_guard_batch(s);
    }
    c->nslabs++;
    partial_add(s);
    slab_prepare_next(c, guard);
    return s;
}

static void slab_free(struct coro__slab *s)
{
    for (size_t i = 0; i < s->carved; i++)
        stack_forget((struct coro_task *)(void *)(s->map + (i + 1) * s->stride -
                                                  tcb_size()));
    partial_remove(s);
    struct coro__stack_class *c = s->cls;
    c->nslabs--;
    /* Unmapping 16 MiB of touched stacks costs about a millisecond: the
     * housekeeping thread's, if bulk spawning has started one. */
    if (coro__chores_ready(0) &&
        coro__chore_post(&s->chore, slab_unmap_chore, slab_release) == 0)
        c->unmaps++;
    else
        slab_unmap(s);
}

static struct coro_task *slab_get(struct coro__stack_class *c, int guard)
{
    struct coro__slab *s =
        c->partial.head ? CORO__ENTRY(c->partial.head, struct coro__slab, link)
                        : slab_new(c, guard);
    if (!s)
        return NULL;
    struct coro_task *t = s->free;
    if (t) {
        s->free = t->ready_next;
    } else {
        /* A guard installed in the batch needs no madvise of its own. */
        int carve_guard = guard == GUARD_MADVISE && s->carved < s->guarded
                              ? GUARD_INSTALLED
                              : guard;
        t = stack_carve(s->map + s->carved * s->stride, c->size, s,
                        carve_guard);
        if (!t) {
            if (s->used == 0)
                slab_free(s);
            return NULL;
        }
        s->carved++;
    }
    s->used++;
    if (!s->free && s->carved == s->nstacks)
        partial_remove(s);
    return t;
}

static void slab_put(struct coro_task *t)
{
    struct coro__slab *s = coro__own_stack(t)->slab;
    t->ready_next = s->free;
    s->free = t;
    s->used--;
    if (!s->partial)
        partial_add(s);
    if (s->used == 0)
        slab_free(s);
}

/* The pooled class for size, claiming a free slot if none matches yet;
 * NULL when every class is taken by other sizes. */
static struct coro__stack_class *class_for(struct coro__stacks *st,
                                           size_t size, int claim)
{
    for (int i = 0; i < CORO__STACK_CLASSES; i++) {
        struct coro__stack_class *c = &st->classes[i];
        if (c->size == size)
            return c;
        if (c->size == 0) {
            if (!claim)
                return NULL;
            c->size = size;
            return c;
        }
    }
    return NULL;
}

struct coro_task *coro__stack_get(struct coro__stacks *st, size_t size)
{
    pthread_once(&stacks_once, stacks_init_once);
    struct coro__stack_class *c = class_for(st, size, 1);
    struct coro_task *t;
    if (c && c->pool) {
        t = c->pool;
        c->pool = t->ready_next;
        c->npool--;
        return t;
    }
    int guard = GUARD_NONE;
    if (atomic_load_explicit(&coro__guard_install, memory_order_relaxed) > 0)
        guard = GUARD_MADVISE;
    else if ((t = mprotect_get(size)) != NULL)
        return t;
    /* A slab holds at least SLAB_MIN_STACKS stacks: fine for kilobytes,
     * but sixteen 1 GiB stacks would reserve 16 GiB of address space (and
     * commit it, under strict overcommit) for one task. */
    int fits_slab = page_size + size <= SLAB_BYTES / SLAB_MIN_STACKS;
    return c && fits_slab ? slab_get(c, guard) : solo_get(size, guard);
}

static void stack_release(struct coro_task *t)
{
    const struct coro__stack *s = coro__own_stack(t);
    if (s->slab) {
        slab_put(t);
        return;
    }
    /* s lives in the mapping: read what is needed before unmapping it. */
    int guard = s->guard;
    char *map = s->lo - page_size;
    size_t len = page_size + s->size;
    stack_forget(t);
    unmap_pages(map, len);
    if (guard == GUARD_MPROTECT)
        atomic_fetch_add(&coro__guard_budget, 1);
}

void coro__stack_put(struct coro__stacks *st, struct coro_task *t)
{
#ifdef CORO__ASAN
    /* Frames that ended without unwinding (a task freed while parked) leave
     * poisoned redzones behind; the next task must start clean. */
    ASAN_UNPOISON_MEMORY_REGION(usable_lo(t), usable_len(t));
#endif
    struct coro__stack_class *c = class_for(st, coro__own_stack(t)->size, 0);
    if (c && c->npool < CORO__POOL_MAX) {
        t->ready_next = c->pool;
        c->pool = t;
        c->npool++;
        return;
    }
    stack_release(t);
}

static void chore_nothing(struct coro__chore *c)
{
    (void)c;
}

/* No stack outlives its loop: what the housekeeping thread holds of this
 * loop's is waited for (a chore queued last runs after all the others). */
void coro__stacks_term(struct coro__stacks *st)
{
    int unmaps = 0;
    for (int i = 0; i < CORO__STACK_CLASSES; i++) {
        struct coro__stack_class *c = &st->classes[i];
        while (c->pool) {
            struct coro_task *t = c->pool;
            c->pool = t->ready_next;
            stack_release(t);
        }
        c->npool = 0;
        CORO__ASSERT(c->partial.head == NULL);
        if (c->next) {
            coro__chore_wait(&c->next->chore);
            slab_unmap(c->next);
            c->next = NULL;
        }
        unmaps += c->unmaps;
        c->unmaps = 0;
    }
    if (unmaps) {
        struct coro__chore last;
        if (coro__chore_post(&last, chore_nothing, NULL) == 0)
            coro__chore_wait(&last);
    }
}

int coro__stack_canary_intact(const struct coro__stack *s)
{
    static const char zero[CANARY_SIZE];
    return memcmp(s->lo, zero, CANARY_SIZE) == 0;
}

int coro__ctx_share(struct coro__ctx *c, const struct coro__ctx *entry,
                    ucontext_t *own)
{
#ifdef CORO__STACK_ENTER
    (void)own; /* none with the fast switch */
#else
    if (own) /* swapcontext will save into it */
        ctx_copy_n(own, entry->uc, coro__shared_uc_size());
    c->uc = own ? own : entry->uc;
#endif
#ifdef CORO__REGS_SWITCH
    memcpy(c->regs, entry->regs, sizeof c->regs); /* never resumed itself */
#else
    c->stack_lo = entry->stack_lo;
    c->stack_len = entry->stack_len;
#ifdef CORO_SWITCH_FAST
    c->started = 0;
#endif
    c->made = 1;
#endif
#ifdef CORO__ASAN
    c->asan_fake = NULL;
#endif
#ifdef CORO__TSAN
    c->tsan_fiber = __tsan_create_fiber(0);
    if (!c->tsan_fiber)
        return ENOMEM;
#endif
    return 0;
}

#ifdef CORO__REGS_SWITCH
/* save[] and resume[]: rbx rbp r12 r13 r14 r15 rsp rip. The stack pointer
 * saved is the caller's, after the return; the return address is the
 * place to resume at, reached by a jump (no return to mispredict). */
_Static_assert(CORO__REGS_SP == 6 && CORO__REGS_PC == 7,
               "the slots below are internal.h's");
__asm__(".text\n"
        ".p2align 4\n"
        ".globl coro__regs_swap\n"
        ".hidden coro__regs_swap\n"
        ".type coro__regs_swap, @function\n"
        "coro__regs_swap:\n"
        "    movq (%rsp), %rax\n"
        "    leaq 8(%rsp), %rcx\n"
        "    movq %rbx, 0(%rdi)\n"
        "    movq %rbp, 8(%rdi)\n"
        "    movq %r12, 16(%rdi)\n"
        "    movq %r13, 24(%rdi)\n"
        "    movq %r14, 32(%rdi)\n"
        "    movq %r15, 40(%rdi)\n"
        "    movq %rcx, 48(%rdi)\n"
        "    movq %rax, 56(%rdi)\n"
        "    movq 0(%rsi), %rbx\n"
        "    movq 8(%rsi), %rbp\n"
        "    movq 16(%rsi), %r12\n"
        "    movq 24(%rsi), %r13\n"
        "    movq 32(%rsi), %r14\n"
        "    movq 40(%rsi), %r15\n"
        "    movq 48(%rsi), %rsp\n"
        "    jmpq *56(%rsi)\n"
        ".size coro__regs_swap, .-coro__regs_swap\n");
#endif

char *coro__stack_pointer(void)
{
    char *sp;
#if defined(__x86_64__)
    __asm__ volatile("mov %%rsp, %0" : "=r"(sp));
#elif defined(__aarch64__)
    __asm__ volatile("mov %0, sp" : "=r"(sp));
#else
    sp = NULL;
#endif
    return sp;
}

/* Under ASan the bytes copied are live frames with redzones among them (or
 * the bytes they replace): an uninstrumented loop, volatile so that it is
 * not turned into a memcpy, which ASan intercepts. */
#ifdef CORO__ASAN
__attribute__((no_sanitize_address)) static void
frames_copy(char *to, const char *from, size_t len)
{
    volatile char *t = to;
    const volatile char *f = from;
    for (size_t i = 0; i < len; i++)
        t[i] = f[i];
}
#else
static void frames_copy(char *to, const char *from, size_t len)
{
    memcpy(to, from, len);
}
#endif

/* Copies a parked task's frames [sp, sp + len) back onto the shared
 * stack, whatever the sanitizers think of the bytes there. */
static void frames_restore(char *sp, const char *from, size_t len,
                           const struct coro_task *host)
{
#ifdef CORO__ASAN
    /* The redzones in the shadow are the last owner's: drop them all. */
    ASAN_UNPOISON_MEMORY_REGION(usable_lo(host), usable_len(host));
#else
    (void)host;
#endif
#ifdef CORO__VALGRIND
    /* Below the last owner's stack pointer memcheck sees dead stack. */
    VALGRIND_MAKE_MEM_UNDEFINED(sp, len);
#endif
    frames_copy(sp, from, len);
}

/* Copies owner's frames, from its saved stack pointer to the top of the
 * shared stack, out to the heap. Memory for them is all a parked
 * shared-stack task costs beyond its control block; if it cannot be had,
 * nothing sensible is left to do. */
_Static_assert(CORO__STACK_MAX <= UINT32_MAX,
               "a shared stack's frames fit the uint32_t sizes of a task");

static void frames_save(const struct coro_task *host, struct coro_task *owner)
{
    char *top = usable_lo(host) + usable_len(host);
    if (owner->saved_sp < usable_lo(host)) /* the slack */
        owner->saved_sp = usable_lo(host);
    size_t len = (size_t)(top - owner->saved_sp);
    if (len > owner->shared_hw) {
        char *buf = coro__realloc(owner->saved, owner->shared_hw, len);
        if (!buf) {
            fprintf(stderr, "coro: out of memory saving the %zu-byte stack "
                            "of shared-stack task #%llu\n",
                    len, (unsigned long long)owner->id);
            abort();
        }
        owner->saved = buf;
        owner->shared_hw = (uint32_t)len;
    }
    frames_copy(owner->saved, owner->saved_sp, len);
    owner->saved_len = (uint32_t)len;
}

void coro__shared_install(struct coro_task *host, struct coro_task *owner,
                          struct coro_task *next)
{
    if (owner)
        frames_save(host, owner);
    frames_restore(next->saved_sp, next->saved, next->saved_len, host);
    next->saved_len = 0;
}

int coro__task_ctx_make(struct coro_task *t, const ucontext_t *tpl,
                        void (*entry)(void))
{
    return ctx_make(&t->ctx, tpl, usable_lo(t), usable_len(t), entry);
}

/* The lowest byte that is not zero in [lo, hi): fresh stack memory is
 * zero, so that is as deep as any task went. Pages never touched are not
 * resident (mincore says so) and are skipped unread. The bytes read lie
 * below some task's stack pointer or in its live frames' redzones, which
 * ASan and valgrind would rightly flag for any other reader. */
__attribute__((no_sanitize_address)) const char *
coro__stack_deepest(const char *lo, const char *hi)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const char *p = lo, *found = hi;
#ifdef CORO__VALGRIND
    VALGRIND_DISABLE_ERROR_REPORTING;
#endif
    while (p < hi && found == hi) {
        const char *page_start =
            (const char *)((uintptr_t)p & ~(uintptr_t)(page - 1));
        unsigned char resident = 1;
        if (mincore((void *)page_start, page, &resident) == 0 &&
            !(resident & 1)) {
            p = page_start + page;
            continue;
        }
        const char *end = page_start + page < hi ? page_start + page : hi;
        for (; p < end; p++)
            if (*p) {
                found = p;
                break;
            }
    }
#ifdef CORO__VALGRIND
    VALGRIND_ENABLE_ERROR_REPORTING;
#endif
    return found;
}
