/* handoff: two tasks ping-pong with await_yield; ns per handoff, beside, in
 * the same run, the floors of the two switches: a bare swapcontext
 * ping-pong and a bare _setjmp/_longjmp one. Targets: the default build at
 * most 1.2x bare swapcontext; the fast build (make SWITCH=fast) at most
 * 1.5x bare _setjmp/_longjmp. */
#undef _FORTIFY_SOURCE /* longjmp between stacks, as coro.c */
#include <setjmp.h>
#include <ucontext.h>

#include "bench.h"
#include "coro.h"

static const char usage[] =
    "usage: handoff [ROUNDS]\n"
    "Two tasks hand off to each other ROUNDS times each (default 2000000)\n"
    "with await_yield; prints ns per handoff beside a bare swapcontext\n"
    "ping-pong between two contexts.\n";

static long rounds;

static void *ping(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds; i++)
        await_yield();
    return NULL;
}

static void *handoff_main(void *arg)
{
    coro_task *t[2] = { coro_spawn(ping, NULL), coro_spawn(ping, NULL) };
    double t0 = bench_now();
    await_gather(t, 2, NULL, NULL);
    *(double *)arg = (bench_now() - t0) / (2.0 * (double)rounds) * 1e9;
    return NULL;
}

static ucontext_t bare_main, bare_task;

static void bare_loop(void)
{
    for (;;)
        swapcontext(&bare_task, &bare_main);
}

static jmp_buf jb_main, jb_task;

static void jmp_loop(void)
{
    for (;;)
        if (_setjmp(jb_task) == 0)
            _longjmp(jb_main, 1);
}

/* One round trip: out to the task and back. A function of its own, so no
 * local of the caller lives across the jumps. */
static __attribute__((noinline)) void jmp_round_trip(void)
{
    if (_setjmp(jb_main) == 0)
        _longjmp(jb_task, 1);
}

/* The fast switch's floor: entered once with swapcontext, then only
 * _setjmp/_longjmp. */
static double bare_jmp_ns(void)
{
    static char stack[64 << 10];
    static ucontext_t here, task;
    getcontext(&task);
    task.uc_stack.ss_sp = stack;
    task.uc_stack.ss_size = sizeof stack;
    makecontext(&task, jmp_loop, 0);
    if (_setjmp(jb_main) == 0)
        swapcontext(&here, &task);
    double t0 = bench_now();
    for (long i = 0; i < rounds; i++)
        jmp_round_trip();
    return (bench_now() - t0) / (2.0 * (double)rounds) * 1e9;
}

/* One round trip is two switches, as one coro handoff pair is. */
static double bare_switch_ns(void)
{
    static char stack[64 << 10];
    getcontext(&bare_task);
    bare_task.uc_stack.ss_sp = stack;
    bare_task.uc_stack.ss_size = sizeof stack;
    makecontext(&bare_task, bare_loop, 0);
    double t0 = bench_now();
    for (long i = 0; i < rounds; i++)
        swapcontext(&bare_main, &bare_task);
    return (bench_now() - t0) / (2.0 * (double)rounds) * 1e9;
}

int main(int argc, char **argv)
{
    rounds = bench_args(argc, argv, 2000000, usage);
    double coro_ns = 0;
    double bare_ns = bare_switch_ns();
    double jmp_ns = bare_jmp_ns();
    if (coro_run(handoff_main, &coro_ns, NULL) != 0)
        return 1;
#ifdef CORO_SWITCH_FAST
    printf("handoff (fast switch): coro %.1f ns per handoff; bare "
           "_setjmp/_longjmp %.1f ns per switch: %.2fx (target <= 1.50x); "
           "bare swapcontext %.1f ns\n",
           coro_ns, jmp_ns, coro_ns / jmp_ns, bare_ns);
#else
    printf("handoff (swapcontext): coro %.1f ns per handoff; bare "
           "swapcontext %.1f ns per switch: %.2fx (target <= 1.20x); bare "
           "_setjmp/_longjmp %.1f ns\n",
           coro_ns, bare_ns, coro_ns / bare_ns, jmp_ns);
#endif
    return 0;
}
