/* switch.h: the context switch, for the two files that switch (coro.c,
 * sched.c). Include it first, before any system header.
 *
 * The switch is inline so that a handoff compiles to a few instructions
 * around the register swap (coro.c), _setjmp/_longjmp or swapcontext; the
 * sanitizer hooks describe stacks to ASan and TSan and compile to nothing
 * without them.
 */
#ifndef CORO_SWITCH_H
#define CORO_SWITCH_H

#ifdef CORO_SWITCH_FAST
/* glibc's fortified longjmp (__longjmp_chk) aborts on a jump to another
 * stack, which is what every switch is (QEMU does the same). It must be
 * undefined before the first system header of the file. */
#undef _FORTIFY_SOURCE
#endif

#include "internal.h"

#ifdef CORO__ASAN
#include <sanitizer/common_interface_defs.h>
/* The context switching away, so that the one resuming can learn the
 * thread stack's bounds, which only ASan knows (coro.c). */
extern __thread struct coro__ctx *coro__asan_switching_from;
#endif
#ifdef CORO__TSAN
#include <sanitizer/tsan_interface.h>
#endif

static inline void coro__sanitizer_leave(struct coro__ctx *from,
                                         struct coro__ctx *to)
{
#ifdef CORO__ASAN
    coro__asan_switching_from = from;
    __sanitizer_start_switch_fiber(&from->asan_fake, to->stack_lo,
                                   to->stack_len);
#endif
#ifdef CORO__TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    (void)from;
    (void)to;
}

/* First thing a context does once resumed or started. */
static inline void coro__ctx_entered(struct coro__ctx *c)
{
#ifdef CORO__ASAN
    const void *lo;
    size_t len;
    __sanitizer_finish_switch_fiber(c->asan_fake, &lo, &len);
    struct coro__ctx *from = coro__asan_switching_from;
    if (from && from->stack_len == 0) {
        from->stack_lo = lo;
        from->stack_len = len;
    }
#endif
    (void)c;
}

#if defined(CORO_SWITCH_FAST) && !defined(CORO__REGS_SWITCH)
/* A context's first entry, with the fast switch: onto the top of its fresh
 * stack, into its entry function, which never returns. On x86-64 and
 * AArch64 that is a stack-pointer load and a jump; setcontext, elsewhere,
 * also sets the signal mask, a system call per fresh stack (5% of a
 * million sleepers' spawns). The return address and frame pointer are zero
 * so that unwinders (gdb, ASan, backtrace) stop at the entry function. */
__attribute__((noreturn)) static inline void
coro__ctx_first_entry(const struct coro__ctx *c)
{
#ifdef CORO__STACK_ENTER
    uintptr_t top = ((uintptr_t)c->stack_lo + c->stack_len) & ~(uintptr_t)15;
#if defined(__x86_64__)
    __asm__ volatile("movq %0, %%rsp\n\t"
                     "xorl %%ebp, %%ebp\n\t"
                     "pushq $0\n\t"
                     "jmpq *%1"
                     :
                     : "r"(top), "r"(coro__task_entry)
                     : "memory");
#else
    __asm__ volatile("mov sp, %0\n\t"
                     "mov x29, xzr\n\t"
                     "mov x30, xzr\n\t"
                     "br %1"
                     :
                     : "r"(top), "r"(coro__task_entry)
                     : "memory");
#endif
#else
    setcontext(c->uc);
#endif
    __builtin_trap(); /* setcontext returns only on a bad context */
}
#endif

#ifdef CORO__REGS_SWITCH
/* coro's own switch (coro.c), x86-64: what _setjmp and _longjmp do for a
 * switch, without what they do besides. glibc's _longjmp walks the
 * thread's cancellation clean-up handlers and mangles three registers with
 * the pointer guard: half of a handoff's instructions. Saves the callee-
 * saved registers, the stack pointer and the return address in save[],
 * and resumes the context saved in resume[] (or a fresh one's entry, which
 * coro.c put there); returns when something resumes save. Like _setjmp, it
 * leaves the signal mask, MXCSR and the x87 control word alone (they are
 * the thread's, shared by its tasks). */
void coro__regs_swap(void **save, void *const *resume);
#endif

/* The jump of a switch: saves the current context in from and resumes to;
 * it "returns" when something jumps back to from. A macro because it must be
 * written out in the function that suspends: a function that calls _setjmp
 * is never inlined, and each frame between a task and its jump costs a
 * mispredicted return when the task resumes (the CPU's return predictor
 * then holds the other task's calls). */
#ifdef CORO__REGS_SWITCH
#define CORO__JUMP(from, to) coro__regs_swap((from)->regs, (to)->regs)
#elif defined(CORO_SWITCH_FAST)
#define CORO__JUMP(from, to)                                               \
    do {                                                                   \
        if (_setjmp(CORO__JB_ARG((from)->jb)) == 0) {                      \
            if (CORO__LIKELY((to)->started))                               \
                _longjmp(CORO__JB_ARG((to)->jb), 1);                       \
            (to)->started = 1;                                             \
            coro__ctx_first_entry(to);                                     \
        }                                                                  \
    } while (0)
#else
#define CORO__JUMP(from, to) swapcontext((from)->uc, (to)->uc)
#endif

/* Saves the current context in from and resumes to. Returns when something
 * switches back to from. */
static inline void coro__ctx_switch(struct coro__ctx *from,
                                    struct coro__ctx *to)
{
    coro__sanitizer_leave(from, to);
    CORO__JUMP(from, to);
    coro__ctx_entered(from);
}

/* A shared-stack task's frames run from where its stack pointer is when it
 * parks up to the top. Under ASan, swapcontext is an interceptor with a
 * frame of its own below that, which the task returns through when it
 * resumes: keep a margin below. */
#ifdef CORO__ASAN
#define CORO__FRAME_SLACK 2048
#else
#define CORO__FRAME_SLACK 0
#endif

/* Notes where a shared-stack task's frames start, as it stops running. */
static inline void coro__frames_mark(struct coro_task *t)
{
    if (t->shared)
        t->saved_sp = coro__stack_pointer() - CORO__FRAME_SLACK;
}

#endif /* CORO_SWITCH_H */
