/* overflow.c: a task that runs off its stack is named, not just killed.
 *
 * A task's stack sits above a guard page (coro.c), so an overflow faults.
 * The fault arrives as SIGSEGV (or SIGBUS) on a stack that has no room
 * left, so each loop's thread gets an alternate signal stack for the
 * handler to run on. The handler checks whether the fault lies in the guard
 * page of the task running on this thread; if so it prints one line naming
 * the task and aborts, and otherwise passes the signal on to whatever
 * handled it before: the user's handler, or the default action.
 *
 * The handler is async-signal-safe: no stdio, no allocation. A stack
 * without a guard page (past the guard budget, see coro.c) is checked by
 * its canary at every switch instead, and reported here too.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define ALT_STACK_SIZE (64 << 10)
/* How far below a stack a fault still counts as running off it: a frame
 * larger than the guard page jumps over it. */
#define BIG_FRAME (64 << 10)

static struct sigaction old_segv, old_bus;
static atomic_int installed;
static size_t page;

/* ---- formatting without stdio (watchdog.c uses it too) ---- */

void coro__put(struct coro__line *l, const char *s)
{
    while (*s && l->p < l->end)
        *l->p++ = *s++;
}

void coro__put_u(struct coro__line *l, unsigned long long v)
{
    char digits[24];
    int n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < (int)sizeof digits);
    while (n > 0 && l->p < l->end)
        *l->p++ = digits[--n];
}

void coro__put_hex(struct coro__line *l, uintptr_t v)
{
    coro__put(l, "0x");
    int shift = (int)(sizeof v * 8) - 4;
    while (shift > 0 && !((v >> shift) & 0xf))
        shift -= 4;
    for (; shift >= 0 && l->p < l->end; shift -= 4)
        *l->p++ = "0123456789abcdef"[(v >> shift) & 0xf];
}

void coro__put_task(struct coro__line *l, const struct coro_task *t)
{
    coro__put(l, "task #");
    coro__put_u(l, t->id);
    coro__put(l, " \"");
    coro__put(l, coro__name(t));
    coro__put(l, "\" (");
    const char *site = coro__spawn_site(t);
    if (site)
        coro__put(l, site);
    else
        coro__put_hex(l, (uintptr_t)coro__spawn_pc(t));
    coro__put(l, ")");
}

ssize_t coro__write_raw(int fd, const void *p, size_t n)
{
    return syscall(SYS_write, fd, p, n);
}

void coro__line_write(int fd, const char *buf, const struct coro__line *l)
{
    for (const char *p = buf; p < l->p;) {
        ssize_t n = coro__write_raw(fd, p, (size_t)(l->p - p));
        if (n <= 0)
            break;
        p += n;
    }
}

static void report(const struct coro_task *t)
{
    char buf[512];
    struct coro__line l = { buf, buf + sizeof buf };
    size_t size = coro__stack_size_of(t);
    coro__put(&l, "coro: ");
    coro__put_task(&l, t);
    coro__put(&l, " overflowed its ");
    coro__put_u(&l, size >> 10);
    coro__put(&l, t->shared ? " KiB shared stack" : " KiB stack");
    coro__put(&l, "; give it more with coro_attr.stack_size or "
                  "CORO_STACK_SIZE (coro_stack_high_water tells what it "
                  "uses)\n");
    coro__line_write(STDERR_FILENO, buf, &l);
}

/* The canary of a stack without a guard page (coro.c), found overwritten
 * at a switch: not in a signal handler, so stdio is fine. */
void coro__overflow_canary(const struct coro_task *t)
{
    fprintf(stderr,
            "coro: stack overflow in task \"%s\" (id %llu, %zu-byte stack): "
            "the bottom of its stack was overwritten. Give it a larger stack "
            "(coro_attr.stack_size or CORO_STACK_SIZE).\n",
            coro__name(t), (unsigned long long)t->id,
            coro__stack_of(t)->size);
    abort();
}

/* ---- the handler ---- */

static uintptr_t stack_pointer(const void *ucontext)
{
    const ucontext_t *uc = ucontext;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.sp;
#else
    (void)uc;
    return 0;
#endif
}

/* The task of this thread that ran off its stack, or NULL. */
static const struct coro_task *overflowed(const siginfo_t *si,
                                          const void *ucontext)
{
    struct coro__loop *l = coro__loop();
    const struct coro_task *t = l ? l->current : NULL;
    const struct coro__stack *s = t ? coro__stack_of(t) : NULL;
    if (!s || !s->guard)
        return NULL;
    uintptr_t lo = (uintptr_t)s->lo;
    uintptr_t addr = (uintptr_t)si->si_addr;
    if (addr < lo && addr >= lo - page)
        return t; /* in the guard page */
    /* A big frame may have skipped the guard: then the stack pointer is
     * below the stack too. */
    uintptr_t sp = stack_pointer(ucontext);
    if (addr < lo && addr >= lo - BIG_FRAME && sp && sp < lo + page &&
        sp >= lo - BIG_FRAME)
        return t;
    return NULL;
}

static void pass_on(int signo, siginfo_t *si, void *ucontext)
{
    const struct sigaction *old = signo == SIGBUS ? &old_bus : &old_segv;
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(signo, si, ucontext);
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN &&
               !(old->sa_flags & SA_SIGINFO)) {
        old->sa_handler(signo);
    } else {
        /* The default: put it back; the faulting instruction runs again
         * and the kernel does what it would have done. A fault cannot be
         * ignored, so SIG_IGN means the default too. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(signo, &dfl, NULL);
    }
}

static void on_fault(int signo, siginfo_t *si, void *ucontext)
{
    int saved = errno;
    const struct coro_task *t = overflowed(si, ucontext);
    if (t) {
        report(t);
        abort();
    }
    pass_on(signo, si, ucontext);
    errno = saved;
}

static void install(void)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
}

/* ---- per loop: the alternate stack ---- */

int coro__overflow_init(struct coro__loop *l)
{
    l->alt_stack = NULL;
    stack_t cur;
    /* A thread that has an alternate stack (its own, or a sanitizer's)
     * keeps it. */
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        goto handler;
    void *mem = mmap(NULL, ALT_STACK_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return ENOMEM;
    stack_t alt = { .ss_sp = mem, .ss_size = ALT_STACK_SIZE, .ss_flags = 0 };
    if (sigaltstack(&alt, NULL) != 0) {
        int err = errno;
        munmap(mem, ALT_STACK_SIZE);
        return err;
    }
    l->alt_stack = mem;
handler:
    if (!atomic_exchange(&installed, 1))
        install();
    return 0;
}

void coro__overflow_term(struct coro__loop *l)
{
    if (!l->alt_stack)
        return;
    stack_t off = { .ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE };
    sigaltstack(&off, NULL);
    munmap(l->alt_stack, ALT_STACK_SIZE);
    l->alt_stack = NULL;
}
