/* coro: a stackful coroutine runtime for C, modelled on Python's asyncio.
 * SPDX-License-Identifier: MIT
 *
 * Conventions (read these once; every call below follows them):
 *
 * - A call that may suspend the calling coroutine is named await_*; every
 *   other call is coro_*. Reading a function shows every point where other
 *   tasks may run.
 * - int calls return 0 on success or a positive errno value (as pthreads do);
 *   calls that return a pointer return NULL and set errno. Besides those,
 *   only await_blocking writes errno (to the errno its function left, part
 *   of a blocking call's result). errno is kept per task across switches,
 *   so one task never sees another's.
 * - Durations and timeouts are double seconds. A negative timeout means no
 *   timeout; NaN is EINVAL.
 * - Calling an await_* outside a coroutine is EPERM.
 * - Cancellation is sticky: once a task is cancelled (coro_cancel), the
 *   await_* it is parked in and every later one return ECANCELED without
 *   doing their operation, unless the task holds a shield (coro_shield). An
 *   operation that completed before the cancellation arrived returns its
 *   result; the cancellation is then seen at the next await_*.
 * - A task's result is a void * that must not point into the task's own
 *   stack: the stack is reused once the task ends.
 * - Everything a loop owns belongs to the thread that runs it. Each thread
 *   may run its own loop; tasks never move between threads. What crosses
 *   between loops is work and messages ("Loops across threads").
 */
#ifndef CORO_H
#define CORO_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CORO_VERSION_MAJOR 0
#define CORO_VERSION_MINOR 1
#define CORO_VERSION_PATCH 0

#if defined(__GNUC__)
#define CORO_API __attribute__((visibility("default")))
#else
#define CORO_API
#endif

/* A task: one coroutine with its own stack. Opaque; the loop owns it. */
typedef struct coro_task coro_task;

/* A coroutine is a plain function: it takes one pointer and returns one. */
typedef void *(*coro_fn)(void *arg);

/* ======================================================================
 * Loop: asyncio.run(main())
 *
 * A loop runs on the thread that calls coro_run and lasts until coro_run
 * returns. It resumes ready tasks in FIFO order (round-robin), wakes sleepers
 * from a heap of deadlines, and when nothing is ready puts the thread to
 * sleep in the kernel until the next deadline, so idle tasks cost no CPU.
 * ====================================================================== */

/* Runs main(arg) as the first task on this thread, until it returns; then
 * cancels every task still alive, waits for them to end, and frees
 * everything the loop allocated.
 *
 * main runs on a 256 KiB stack, or on the default stack size if that is
 * larger. coro_self() inside main is a task like any other: it can be joined,
 * cancelled and named. A task joining main gets main's result: main ended
 * before the loop cancelled the rest, so the join completed first (the
 * general rule of the conventions above; asyncio would raise
 * CancelledError there), and the cancellation is seen at the next await_*.
 *
 * When nothing is ready and nothing can ever wake a task (no timer, no I/O
 * interest, no blocking call in flight), the program is deadlocked: every
 * task is cancelled so its clean-up runs, and coro_run returns EDEADLK once
 * all have ended. If shielded clean-up deadlocks again, the remaining tasks
 * are freed without running further (their stacks are not unwound).
 *
 * fork(): a child forked where no loop runs on the forking thread (before
 * or after coro_run, or on one thread while loops run on others) may call
 * coro_run and gets a fresh loop: nothing of its parent's epoll set,
 * timers or worker threads. A child forked from inside a task is still in
 * its parent's loop, on a copy whose epoll set it shares with the parent
 * and whose worker threads are gone: there coro_run returns EBUSY, and the
 * child must not await anything; it should exec or _exit, as POSIX asks of
 * any child of a threaded process. A child never writes to its parent's
 * CORO_TRACE file nor prints its parent's SIGQUIT dumps.
 *
 * While it runs, the thread's timer slack is set to 1 ns (prctl
 * PR_SET_TIMERSLACK) so that sleeps wake within tens of microseconds of their
 * deadline; the previous slack is restored on return.
 *
 * result: if not NULL, receives main's return value once main has ended
 *         (NULL if it never ended).
 * Returns: 0; main's coro_fail error; ECANCELED if main was cancelled;
 *          EDEADLK; EINVAL (main is NULL, or CORO_STACK_SIZE or CORO_IO is
 *          malformed); ENOMEM; EBUSY (a loop already runs on this thread,
 *          e.g. coro_run called from inside a task); with CORO_IO=io_uring,
 *          the kernel's refusal of the ring (EPERM, ENOSYS: coro_io_backend).
 * Cost: one epoll instance (or io_uring ring) for the loop's lifetime;
 *       stacks are pooled per loop and unmapped when coro_run returns. */
CORO_API int coro_run(coro_fn main, void *arg, void **result);

/* ======================================================================
 * Tasks: asyncio.create_task, Task.cancel, asyncio.shield
 *
 * Stacks. Each task runs on its own stack, 64 KiB by default (including a
 * control block of about 1.2 KiB at its top). The default can be changed for
 * the process with the environment variable CORO_STACK_SIZE (bytes, or with a
 * K or M suffix: "128K"), read by each coro_run, and per task with
 * coro_attr.stack_size. Sizes are rounded up to whole pages; below 16 KiB or
 * above 1 GiB is EINVAL. Pages are committed only when touched: a task that
 * parks with a shallow stack costs one 4 KiB page.
 *
 * Stacks sit above a guard page, so an overflow faults instead of corrupting
 * memory, and coro names the task on stderr before it aborts:
 *   coro: task #7 "parse" (app.c:42) overflowed its 64 KiB stack; give it
 *   more with coro_attr.stack_size or CORO_STACK_SIZE (...)
 * For that, coro_run gives its thread an alternate signal stack (unless it
 * has one) and installs a SIGSEGV and SIGBUS handler once per process; a
 * fault that is not an overflow goes on to the handler installed before it,
 * or to the default action. A handler installed after coro's replaces it.
 * On Linux 6.13 and later every stack is guarded: its guard is a
 * MADV_GUARD_INSTALL marker, which costs no mapping. On older kernels a
 * guard page costs two mappings, and Linux allows vm.max_map_count (65530
 * by default) per process. coro spends at most a quarter of that limit on
 * guarded stacks (8,191 stacks at the default); stacks beyond it are carved
 * from large unguarded slabs and carry a canary that is checked at every
 * switch, so an overflow there is still reported, after the fact. Raising
 * the limit (sysctl vm.max_map_count=1048576) keeps more stacks guarded.
 *
 * Spawning in bulk. A new stack costs the kernel about 3 µs here: its
 * guard, and the fault that commits its first page. A loop that has filled
 * two slabs of stacks (about 480 tasks at the default size) gets help from
 * one housekeeping thread per process, started then: it prepares the next
 * slab (guards and first pages) while the loop carves the present one, and
 * unmaps slabs whose stacks have all come back. It runs no user code,
 * blocks every signal, and everything it holds of a loop's is finished
 * before that loop's coro_run returns. There is none with one CPU, or
 * under valgrind. A forked child has none: what it had in hand at the fork,
 * the child finishes in fork itself.
 * ====================================================================== */

/* Options for coro_spawn_attr. All-zero means all defaults. */
typedef struct coro_attr {
    size_t      stack_size; /* bytes; 0: the default (see above) */
    const char *name;       /* copied (at most 31 bytes kept); NULL: the
                               function's name, from coro_spawn's macro */
    unsigned    flags;      /* 0, or CORO_SHARED_STACK and CORO_EAGER */
} coro_attr;

/* Runs the task on its loop's shared stack instead of a stack of its own,
 * for huge numbers of mostly idle tasks: while the task is parked and
 * another shared-stack task runs, the part of the stack it used is copied
 * out to the heap, so a parked task costs its control block (272 bytes of
 * heap with the fast switch, 704 with swapcontext's context) plus the bytes
 * its frames use (80 for a task in await_sleep), not a page (README:
 * "What a parked shared-stack task costs"). A switch between two
 * shared-stack tasks copies those bytes out and in.
 *
 * The catch: while the task is parked its stack is not where it was.
 * Pointers into a parked task's stack are invalid, so nothing another task,
 * thread or the kernel may use while it waits can live on its stack: not a
 * buffer handed to await_chan_recv, await_queue_get or await_read (they
 * are written while it waits, by whoever completes them), nor an arg
 * handed to await_blocking or coro_spawn. Use the heap or static memory
 * for those. The runtime's own records of a wait live on the heap, never
 * on a task's stack: a shared-stack task's first wait that needs one (any
 * wait but a sleep, a yield, a select, a future's, a group's and
 * as_completed's) makes it, 80 bytes of heap kept until the task ends, so
 * that a task that only sleeps does not pay for it. If that memory cannot
 * be had, the wait returns ENOMEM at once and changes nothing (an
 * own-stack task's record is beside its control block: never ENOMEM).
 *
 * The copy grows as a task's frames do. If the memory for it cannot be
 * had when a switch needs it, there is no error to return to anyone: coro
 * prints "coro: out of memory saving the N-byte stack of ..." and aborts.
 *
 * The shared stack is as large as the default stack size or 256 KiB,
 * whichever is larger; stack_size may be 0 or up to that. Offered on
 * x86-64 and AArch64 (ENOTSUP elsewhere). */
#define CORO_SHARED_STACK 1u

/* Starts the task eagerly (asyncio's eager_task_factory): it runs at once,
 * inside coro_spawn_attr, until its first suspension or its end; then the
 * caller resumes, before any other task runs. A task that finishes without
 * ever suspending so costs no trip through the ready queue, and its result
 * is there when coro_spawn_attr returns. The caller does not suspend in
 * the await_* sense: only the new task runs meanwhile, and the caller's
 * cancellation is not looked at. From outside a task (no caller to step
 * aside) the flag does nothing. Combines with CORO_SHARED_STACK.
 * Cost: one switch more than a plain spawn, not fewer: where asyncio saves
 * an event-loop round per task, coro's ready queue costs next to nothing,
 * and the switch back to the caller is the price. Measured here
 * (build/bench/eager 1000, a gather of 1,000 tasks, 9 in 10 never
 * suspending): fast switch 169 ns a task plain, 220 ns eager; swapcontext
 * 382 and 660 ns. Use it for the semantics, not for speed. */
#define CORO_EAGER 2u

/* Creates a task that runs fn(arg) on its own stack.
 *
 * The new task joins the back of the ready queue; it first runs when the
 * caller suspends (at its next await_*), or at once with CORO_EAGER. arg
 * stays the caller's: it must outlive the task.
 *
 * Ownership: the loop owns the task. The pointer stays valid until the task
 * is awaited (await_task, await_task_timeout, await_gather), or, for a
 * detached task, until it ends. A task nobody joins is freed by coro_run.
 * Returns: the task, or NULL with errno EINVAL (no loop runs on this thread,
 *          fn is NULL, a bad stack size, unknown attr->flags), ENOTSUP
 *          (CORO_SHARED_STACK on an architecture without it) or ENOMEM.
 * Cost: with a pooled stack, a few hundred nanoseconds (getcontext's signal
 *       mask system call dominates); a fresh guarded stack costs an mmap and
 *       an mprotect (about 9 µs), a fresh slab stack only its page faults. */
CORO_API coro_task *coro_spawn(coro_fn fn, void *arg);
CORO_API coro_task *coro_spawn_attr(const coro_attr *attr, coro_fn fn,
                                    void *arg);

/* Waits for t to end, stores what it returned in *result (if result is not
 * NULL) and frees t. asyncio: `result = await task`. An ECANCELED is the
 * caller's own when coro_task_cancelling(coro_self()) is 1 and it holds no
 * shield, else t's (see await_gather).
 *
 * If the caller is cancelled while waiting (or already was), t is cancelled
 * too, awaited and freed: nothing the caller waits on is left running
 * unowned.
 * Returns: ECANCELED if the caller was cancelled, before or while waiting
 *          (its own cancellation comes first, as in asyncio; t was then
 *          cancelled, awaited and freed); else t's coro_fail error if it set
 *          one; else ECANCELED if coro_cancel(t) was called before t ended
 *          (even if t then returned normally); else 0. EINVAL: t is NULL,
 *          belongs to another thread's loop, is detached, or another task
 *          already awaits it (t is then untouched). EDEADLK: t is the
 *          caller. EPERM: outside a coroutine.
 * Ownership: t is invalid once this returns anything but EINVAL, EDEADLK or
 *            EPERM; *result is stored whenever t was freed. */
CORO_API int await_task(coro_task *t, void **result);

/* As await_task, but waits at most timeout seconds (asyncio.wait_for). On
 * timeout, cancels t, waits for it to end, frees it and returns ETIMEDOUT,
 * or t's own coro_fail error (other than ECANCELED) if it failed with one
 * as it ended: await_task puts that before a cancellation, and asyncio's
 * wait_for raises what the task raised while it was cancelled. A task
 * that returns normally after the cancellation still counts as cancelled
 * (cancellation is sticky): ETIMEDOUT, with *result what it returned,
 * where asyncio's wait_for returns that value. The same holds when a
 * timeout scope's deadline ends the wait; a scope already past when the
 * call is made is ETIMEDOUT at once, as for every await_* (t is still
 * cancelled, awaited and freed).
 * A timeout of 0 checks once; a negative one waits forever (asyncio's
 * wait_for takes it for 0); NaN is EINVAL. */
CORO_API int await_task_timeout(coro_task *t, double timeout, void **result);

/* No one will join t: it is freed as soon as it ends (at once if it already
 * has). Does nothing if t is NULL or belongs to another loop. If another
 * task awaits t, that task decides: await_task and await_gather free it as
 * always; await_wait frees it when the wait returns if it has ended by then
 * (its entry in tasks[] must not be used), else it is freed when it ends. A
 * detached task cannot be awaited. coro_run still cancels detached tasks
 * when main returns. */
CORO_API void coro_detach(coro_task *t);

/* Cancels t: the await_* it is parked in returns ECANCELED promptly, and so
 * does every later one (sticky), unless t holds a shield; t should clean up
 * and return. A task cancelled before it first runs still runs: its first
 * await_* returns ECANCELED, so fn always gets to release what arg owns.
 * Idempotent; cancelling a task that has ended does nothing.
 * Returns: 0, or EINVAL (t is NULL or a task of another thread's loop).
 * Cost: O(1), plus O(log n) to take a parked task off the timer heap. */
CORO_API int coro_cancel(coro_task *t);

/* While the shield is on, the calling task's cancellation is held back: its
 * await_* calls behave as if it were not cancelled, so clean-up that must
 * itself wait (flush a socket, take a lock) can. Timeouts still apply. When
 * the shield goes off, the next await_* returns ECANCELED. Not a counter:
 * save the previous setting and restore it.
 * Returns: the previous setting (0 or 1); 0 outside a coroutine, where it
 *          does nothing. */
CORO_API int coro_shield(int on);

/* The calling task, or NULL outside a coroutine. */
CORO_API coro_task *coro_self(void);

/* t's name: the last coro_task_set_name's or coro_attr.name if one was
 * given, else the name of the function passed to coro_spawn /
 * coro_spawn_attr (through their macros below), else "task" ("main" for
 * coro_run's task). NULL if t is NULL or not a task of this thread's
 * loop (another thread may rename or free it meanwhile).
 * Ownership: the string lives as long as t (a rename may change it). */
CORO_API const char *coro_name(const coro_task *t);

/* Marks the calling task failed with err (a positive errno value) and returns
 * NULL, so a coroutine can end with `return coro_fail(EIO);`. Whoever awaits
 * the task gets err. err 0 clears an earlier failure; a negative err (say
 * -EIO, the kernel's style) is no errno value and fails the task with
 * EINVAL. Outside a coroutine it does nothing. */
CORO_API void *coro_fail(int err);

/* coro_spawn and coro_spawn_attr are also macros that record the function's
 * name and the spawn site for coro_name and diagnostics. Each argument is
 * evaluated once. Write (coro_spawn)(fn, arg) to call the plain function, or
 * define CORO_NO_SPAWN_SITE before including coro.h to drop the macros. */
CORO_API coro_task *coro__spawn_at(const coro_attr *attr, coro_fn fn,
                                   void *arg, const char *fn_name,
                                   const char *site);
#ifndef CORO_NO_SPAWN_SITE
#define CORO__STR2(x) #x
#define CORO__STR(x) CORO__STR2(x)
#define coro_spawn(fn, arg) \
    coro__spawn_at(NULL, (fn), (arg), #fn, __FILE__ ":" CORO__STR(__LINE__))
#define coro_spawn_attr(attr, fn, arg) \
    coro__spawn_at((attr), (fn), (arg), #fn, __FILE__ ":" CORO__STR(__LINE__))
#endif

/* Looking at a task without joining it: asyncio's Task.done(),
 * cancelled(), cancelling(), result(), exception() and set_name(). Each
 * takes a task of this thread's loop, still valid (see coro_spawn for how
 * long a pointer lives); coro_task_info, under "Seeing inside", tells the
 * rest. */

/* Whether t has ended: its function returned (asyncio's Task.done()). An
 * ended task stays, with its result, until it is joined (a detached one is
 * freed as it ends).
 * Returns: 1 or 0; 0 also when t is NULL or not a task of this thread's
 *          loop (another thread's, or no loop runs here).
 * Cost: O(1), as the four calls that follow. */
CORO_API int coro_task_done(const coro_task *t);

/* Whether t ended by cancellation (asyncio's Task.cancelled()): it has
 * ended, and await_task would return ECANCELED for it. That is, coro_cancel
 * reached it before it ended and it failed with no error of its own, or it
 * failed with ECANCELED (coro_fail), as a Python task that raises
 * CancelledError counts as cancelled.
 * Returns: 1 or 0 (0 for a bad t, as coro_task_done). */
CORO_API int coro_task_cancelled(const coro_task *t);

/* Whether t's cancellation was asked for (asyncio's Task.cancelling()):
 * coro_cancel(t) was called, or t was spawned while coro_run was
 * cancelling every task, whether t has ended since or not. Cancellation
 * is sticky and cannot be taken back (no uncancel()), so this is 1 where
 * asyncio counts the requests.
 * Returns: 1 or 0 (0 for a bad t, as coro_task_done). */
CORO_API int coro_task_cancelling(const coro_task *t);

/* How t ended, without joining or freeing it: asyncio's Task.result() and
 * Task.exception() in one call.
 * result: if not NULL, receives what t's function returned.
 * error:  if not NULL, receives what await_task will return for t: 0,
 *         its coro_fail error, or ECANCELED (see coro_task_cancelled).
 * Returns: 0 with those stored; EAGAIN if t has not ended yet (asyncio
 *          raises InvalidStateError; nothing is stored); EINVAL (t NULL or
 *          not a task of this thread's loop).
 * Ownership: t is still to be joined: await_task frees it and returns the
 *            same result and error. */
CORO_API int coro_task_result(const coro_task *t, void **result, int *error);

/* Renames t (asyncio's Task.set_name), ended or not: copies name, keeping
 * at most 31 bytes, as coro_attr.name does. NULL or "" gives t back its
 * default name (the function's: see coro_name). coro_name, coro_dump and
 * the task hook's events use the new name from now on; a CORO_TRACE file
 * names each task once, when it is spawned.
 * Returns: 0, or EINVAL (t NULL or not a task of this thread's loop), or
 *          ENOMEM: a name is kept beside the task, in a block made when
 *          it is first named (so an unnamed task costs 32 bytes less).
 * Ownership: name is copied; it may be a string coro_name returned for
 *            t (or a tail of one). A string coro_name returned for t
 *            earlier may now read the new name. */
CORO_API int coro_task_set_name(coro_task *t, const char *name);

/* ======================================================================
 * Time: asyncio.sleep, loop.time()
 *
 * Deadlines live in a 4-ary min-heap: O(log n) to add or remove one, equal
 * deadlines wake in the order they were set. The loop's kernel wait has
 * nanosecond resolution (epoll_pwait2, or a timerfd on older kernels), so a
 * sleep oversleeps by tens of microseconds, not by a rounded millisecond.
 * ====================================================================== */

/* Monotonic time in seconds (CLOCK_MONOTONIC). Callable anywhere. */
CORO_API double coro_now(void);

/* Suspends the calling task for `seconds` while other tasks run.
 * seconds <= 0 acts as await_yield; +infinity sleeps until cancelled (and
 * counts as "can never wake" for deadlock detection).
 * Returns: 0; ECANCELED; EINVAL (NaN); EPERM.
 * Cost: O(log n) in the number of sleepers. */
CORO_API int await_sleep(double seconds);

/* Moves the calling task to the back of the ready queue and runs the tasks
 * ahead of it (asyncio.sleep(0)). Returns at once if no other task is ready.
 * Returns: 0; ECANCELED (the task is, or was while it waited, cancelled);
 *          EPERM. */
CORO_API int await_yield(void);

/* ======================================================================
 * Timeout scopes: asyncio.timeout, asyncio.timeout_at (trio's
 * move_on_after and fail_after)
 *
 * A scope gives a deadline to every await_* the calling task makes until it
 * closes the scope: each waits at most until the nearest deadline among its
 * own timeout and the open scopes' (an inner scope never extends an outer
 * one). An await_* that the scope's deadline ends, or that starts after it,
 * returns ETIMEDOUT, a sleep included, and the scope is then expired;
 * joins, gathers and groups ended this way cancel and await what they wait
 * for, as on their own timeout. Per-call timeouts work as before, inside a
 * scope or not.
 *
 * Shields: while a task holds a shield (coro_shield), the scopes it had
 * open when the shield went on are held back, so clean-up can wait past
 * them, as a shielded trio cancel scope does; scopes opened inside the
 * shield, and every call's own timeout, still apply. asyncio's timeout
 * works through cancellation, which a shield also holds back.
 *
 * A scope belongs to the task that opened it: other tasks get EINVAL from
 * its calls. Scopes close innermost first. One left open when its task
 * ends is freed with the task.
 * ====================================================================== */

typedef struct coro_timeout coro_timeout;

/* Opens a scope whose deadline is `seconds` from now (negative: none yet,
 * asyncio.timeout(None), as every negative timeout here means none; for
 * asyncio.timeout(-11), a deadline already past, pass 0 or use
 * coro_timeout_open_at), innermost of the caller's. Does not suspend.
 * +infinity, or any deadline past what int64 nanoseconds count (about 292
 * years), never comes: it is none as well (coro_timeout_when says -1,
 * where asyncio's says inf).
 * Returns: 0 with *scope; EINVAL (scope NULL, NaN); EPERM (outside a
 *          coroutine); ENOMEM.
 * Cost: one small allocation; each await_* inside reads the clock once. */
CORO_API int coro_timeout_open(double seconds, coro_timeout **scope);

/* As coro_timeout_open, with an absolute deadline in coro_now()'s seconds
 * (asyncio.timeout_at); negative: none. */
CORO_API int coro_timeout_open_at(double when, coro_timeout **scope);

/* Moves the scope's deadline to `when` (coro_now() seconds; negative:
 * none), earlier or later, while it is open (asyncio's
 * Timeout.reschedule). It applies from the next await_*.
 * Returns: 0; EINVAL (not the caller's scope, NaN, or already expired:
 *          asyncio refuses to reschedule an expiring timeout). */
CORO_API int coro_timeout_reschedule(coro_timeout *scope, double when);

/* The scope's deadline in coro_now() seconds, or -1 for none or a scope
 * not the caller's (asyncio's Timeout.when). */
CORO_API double coro_timeout_when(const coro_timeout *scope);

/* Whether an await_* inside the scope was ended by its deadline
 * (asyncio's Timeout.expired). 0 for a scope not the caller's. */
CORO_API int coro_timeout_expired(const coro_timeout *scope);

/* Closes the caller's innermost scope and frees it (leaving asyncio's
 * `async with timeout()`).
 * Returns: 0; ETIMEDOUT if the scope expired (where asyncio raises
 *          TimeoutError); EINVAL (NULL, not the caller's, or not its
 *          innermost open scope: nothing is closed). */
CORO_API int coro_timeout_close(coro_timeout *scope);

/* ======================================================================
 * Many tasks: asyncio.gather, asyncio.wait
 * ====================================================================== */

/* Waits for all n tasks and frees them.
 *
 * results[i] and errors[i] follow argument order, whatever the finishing
 * order (either array may be NULL); errors[i] is what await_task would have
 * returned for tasks[i]. Unlike asyncio.gather, a failing task does not make
 * gather return early: every task is awaited, so none is left unowned.
 * If the caller is cancelled: cancels all n, waits for them, frees them,
 * returns ECANCELED (results and errors are still filled).
 * Returns: 0 if all succeeded, else the error of the first task to fail in
 *          time (a cancelled task counts as failed with ECANCELED);
 *          ECANCELED; n == 0 returns 0 at once (ECANCELED to a caller
 *          already cancelled: cancellation is sticky). Two kinds of
 *          ECANCELED, told apart without another await: it is the caller's
 *          own when coro_task_cancelling(coro_self()) is 1 and the caller
 *          holds no shield; else a gathered task was cancelled (errors[]
 *          says which). EINVAL (tasks NULL with
 *          n > 0, or any task as await_task would reject it, including a task
 *          listed twice, whose result asyncio.gather repeats) and EDEADLK
 *          (the caller is listed) leave every task untouched. EPERM.
 * Cost: O(n), one wake-up of the caller. */
CORO_API int await_gather(coro_task **tasks, size_t n, void **results,
                          int *errors);

/* When await_wait returns, as asyncio.wait's return_when. */
enum coro_when {
    CORO_FIRST_COMPLETED, /* any task has ended */
    CORO_FIRST_EXCEPTION, /* any task has failed (with an error other than
                             ECANCELED), or all have ended */
    CORO_ALL_COMPLETED    /* all tasks have ended */
};

/* Waits until `when` holds or the timeout passes (negative: no timeout).
 *
 * Reorders tasks[] so the ended ones come first, in the order they ended;
 * the others follow in unspecified order. *ndone (if ndone is not NULL)
 * counts the ended ones. Frees nothing and cancels nothing: join each task
 * afterwards. Cancelling the caller does not cancel the tasks (as
 * asyncio.wait).
 * Returns: 0 when `when` holds or the timeout passed; ECANCELED (tasks[] is
 *          left as it was, *ndone = 0); n == 0 returns at once (ECANCELED to a
 *          caller already cancelled, else 0) with
 *          *ndone = 0, where asyncio.wait raises ValueError. EINVAL: NaN
 *          timeout, a bad `when`, tasks NULL with n > 0, or any task as
 *          await_task would reject it, including a task listed twice
 *          (asyncio.wait takes it once): nothing is then claimed. EDEADLK:
 *          the caller is listed. EPERM.
 * Cost: O(n) plus sorting the ended ones. */
CORO_API int await_wait(coro_task **tasks, size_t n, enum coro_when when,
                        double timeout, size_t *ndone);

/* The tasks of a set, one at a time, in the order they end
 * (asyncio.as_completed): an iterator made by coro_as_completed, read by
 * await_as_completed, ended by coro_completions_free. */
typedef struct coro_completions coro_completions;

/* Makes an iterator over tasks[0..n), which the calling task then awaits
 * (as await_wait would claim them: no other task may join them until they
 * are handed out or the iterator is freed). timeout covers the whole
 * iteration, counted from now. Does not suspend. Tasks detached while
 * claimed are freed when they end and never handed out.
 * Returns: 0 with *out; EINVAL (out NULL, tasks NULL with n > 0, NaN, or a
 *          task as await_task would reject it, including one listed twice,
 *          which asyncio.as_completed takes once: nothing is then
 *          claimed); EDEADLK (the caller is listed); EPERM
 *          (outside a coroutine); ENOMEM.
 * Ownership: the iterator belongs to the caller's loop: free it with
 *            coro_completions_free, or coro_run frees it when it ends (do
 *            not free it after that).
 * Cost: one allocation of n pointers. */
CORO_API int coro_as_completed(coro_task **tasks, size_t n, double timeout,
                               coro_completions **out);

/* Hands out the next task to end, waiting until one has: *done has ended
 * and is the caller's again, to join with await_task (which then returns at
 * once). Tasks that have ended come first, in the order they ended, even
 * past the timeout; only when none has ended does the timeout count.
 * Returns: 0 with *done; EPIPE once every task has been handed out;
 *          ETIMEDOUT (the iterator's timeout passed; the rest stay claimed
 *          until it is freed); ECANCELED (the tasks are neither cancelled
 *          nor handed out, as asyncio.as_completed leaves them); EINVAL (c
 *          or done NULL, or an iterator of another task); EPERM.
 * Cost: O(tasks left) per call. */
CORO_API int await_as_completed(coro_completions *c, coro_task **done);

/* Frees the iterator; the tasks not handed out are the caller's again, to
 * join. NULL does nothing.
 * Returns: 0; EBUSY (its owner waits in await_as_completed on it: another
 *          task frees it, as coro_group_free refuses an awaited group);
 *          EINVAL (an iterator of another thread's loop). */
CORO_API int coro_completions_free(coro_completions *c);

/* ======================================================================
 * Task groups: asyncio.TaskGroup, trio's nursery
 *
 * A group owns the tasks spawned into it and waits for them all: nothing
 * started in a group outlives await_group. The first member to fail (with
 * coro_fail, or cancelled by anyone but the group) makes the group cancel
 * every other member; await_group then returns that first error, and every
 * member's own result and error can be read afterwards. Groups nest: a
 * member may own a group of its own, and cancelling it cancels what its
 * group holds, as it cancels what it joins.
 *
 * Unlike asyncio.TaskGroup, a member's failure does not cancel the task
 * that made the group (cancellation is sticky here, and could not be taken
 * back): it goes on until it awaits the group.
 *
 * Nor is there an exception to end the group early, as one raised in the
 * body of asyncio's `async with TaskGroup()` does (it cancels the
 * members): the task that made the group awaits it inside a timeout scope
 * of 0 seconds (coro_timeout_open(0, &s)), which cancels and awaits the
 * members; await_group then returns ETIMEDOUT, as coro_timeout_close.
 * ====================================================================== */

typedef struct coro_group coro_group;

/* Makes an empty group in this thread's loop. Does not suspend.
 * Returns: the group, or NULL with errno EINVAL (no loop runs on this
 *          thread) or ENOMEM.
 * Ownership: the loop's: free it with coro_group_free once awaited, or
 *            coro_run frees it when it ends (do not free it after that). */
CORO_API coro_group *coro_group_new(void);

/* Spawns a task into g, as coro_spawn_attr does (attr may be NULL); it
 * belongs to the group: await_task, await_gather and the rest refuse it
 * (EINVAL) and coro_detach ignores it. A task spawned into a group that is
 * cancelling is cancelled at once: it still runs, and its first await_*
 * returns ECANCELED, so it can release what arg owns (TaskGroup refuses a
 * task once the group is shutting down).
 * Returns: the task, or NULL with errno EINVAL (g NULL, of another loop,
 *          or already awaited to its end) or the errors of coro_spawn_attr.
 * asyncio: TaskGroup.create_task. */
CORO_API coro_task *coro_group_spawn(coro_group *g, const coro_attr *attr,
                                     coro_fn fn, void *arg);

/* Waits until every member of g has ended (asyncio: leaving the TaskGroup's
 * `async with`). Members may spawn more members meanwhile; they are waited
 * for too. If the caller is cancelled, the members are cancelled and still
 * awaited, and ECANCELED returned; a timeout scope (see below) that expires
 * does the same with ETIMEDOUT. Once it has returned, g takes no new
 * members, and awaiting it again returns the same at once (asyncio
 * refuses to enter a TaskGroup twice).
 * Returns: 0 if no member failed; else the first failure in time (a
 *          member's coro_fail error, or ECANCELED for a member cancelled by
 *          anyone but the group); ECANCELED or ETIMEDOUT as above, also
 *          when members fail as they are cancelled, where asyncio's
 *          TaskGroup raises their errors over the CancelledError or the
 *          timeout: coro_group_result tells each (tell the caller's own
 *          cancellation from a member's with
 *          coro_task_cancelling(coro_self())); EINVAL (g NULL, of another
 *          loop, or another task awaits it); EDEADLK (the caller is a
 *          member of g); EPERM.
 * Cost: one wake-up of the caller; cancelling is O(members). */
CORO_API int await_group(coro_group *g);

/* How many tasks were spawned into g (0 for NULL or another loop's). */
CORO_API size_t coro_group_size(const coro_group *g);

/* The i-th member of g in spawn order, once it has ended: stores its
 * return value in *result (if result is not NULL) and returns what
 * await_task would have returned for it (its coro_fail error, ECANCELED if
 * it was cancelled, else 0).
 * Returns: as said; EAGAIN (it has not ended yet); EINVAL (g NULL, of
 *          another loop, or i out of range). Cost: O(i). */
CORO_API int coro_group_result(const coro_group *g, size_t i, void **result);

/* Frees g and its members (their task pointers become invalid). NULL does
 * nothing.
 * Returns: 0; EBUSY (a member has not ended, or a task awaits g); EINVAL
 *          (a group of another thread's loop). */
CORO_API int coro_group_free(coro_group *g);

/* coro_group_spawn also records the function's name and spawn site, as
 * coro_spawn's macro does. */
CORO_API coro_task *coro__group_spawn_at(coro_group *g, const coro_attr *attr,
                                         coro_fn fn, void *arg,
                                         const char *fn_name,
                                         const char *site);
#ifndef CORO_NO_SPAWN_SITE
#define coro_group_spawn(g, attr, fn, arg)                                 \
    coro__group_spawn_at((g), (attr), (fn), (arg), #fn,                    \
                         __FILE__ ":" CORO__STR(__LINE__))
#endif

/* ======================================================================
 * Blocking calls: loop.run_in_executor(None, fn, arg)
 *
 * A plain blocking function (a blocking sleep, a blocking HTTP client,
 * getaddrinfo, a file read) runs on one of the loop's worker threads while
 * the calling task is parked and the loop runs other tasks. The pool
 * belongs to the loop: started on first use, one thread at a time as jobs
 * need them, and stopped and joined when coro_run returns. At most
 * `workers` jobs run at once (asyncio's default, min(32, CPUs + 4), or the
 * environment variable CORO_WORKERS, 1 to 1024, read by each coro_run, or
 * coro_set_workers); jobs beyond that wait in FIFO order. Worker threads
 * have every signal blocked.
 * ====================================================================== */

/* Runs fn(arg) on a worker thread and parks the caller until it returns.
 *
 * fn runs on another thread: it must not call coro's API (an await_* there
 * returns EPERM) nor touch the caller's loop objects, and what it shares with
 * other tasks needs the usual locking.
 *
 * Cancellation: a job still waiting for a worker is dropped (fn never runs)
 * and ECANCELED returned at once. A job already running cannot be stopped:
 * the caller stays parked until fn returns (arg, and anything on the
 * caller's stack that fn uses, stays valid), then gets ECANCELED, with
 * *result and errno still set from fn so whatever fn allocated can be
 * released. coro_run's final clean-up likewise waits for running jobs. A
 * caller already cancelled gets ECANCELED at once and fn does not run. A
 * job that returned before the cancellation came returns its result (0),
 * as every operation that completed first does; the cancellation is seen
 * at the next await_*.
 *
 * result: if not NULL, receives fn's return value, whenever fn ran.
 * errno:  set to the errno fn left in its thread (fn starts with errno 0),
 *         whenever fn ran: a blocking call's errno is part of its result.
 * Returns: 0; ECANCELED; EINVAL (fn is NULL); EPERM; EAGAIN or ENOMEM (no
 *          worker thread could be started).
 * Cost: a job travels through one mutex-protected queue each way; the
 *       caller is woken without a system call when the loop is busy, with
 *       one eventfd write when the loop sleeps. */
CORO_API int await_blocking(void *(*fn)(void *), void *arg, void **result);

/* Sets how many blocking jobs this thread's loop runs at once (1 to 1024).
 * Lowering it lets running jobs finish; raising it starts queued ones.
 * Returns: 0, or EINVAL (n out of range, or called outside a coroutine). */
CORO_API int coro_set_workers(unsigned n);

/* How many blocking jobs a loop runs at once. In a coroutine: its loop's
 * present limit (coro_set_workers's, else what coro_run chose). Outside
 * one: what a coro_run started now would choose: CORO_WORKERS, else
 * asyncio's default, min(32, CPUs + 4) (ThreadPoolExecutor's max_workers,
 * counting the CPUs this process may run on). asyncio has no such query;
 * its executor's _max_workers is private.
 * Returns: 1 to 1024; 0 outside a coroutine when CORO_WORKERS is set but is
 *          not a number from 1 to 1024 (coro_run would return EINVAL). */
CORO_API unsigned coro_workers(void);

/* ======================================================================
 * Blocking calls in the coroutine itself: libcoro_hook (opt-in)
 *
 * A library of its own, with no calls to declare here: linked in
 * (-lcoro_hook -lcoro) or LD_PRELOADed into a program that links coro as a
 * shared library, it defines read, readv, write, writev, recv, recvfrom,
 * recvmsg, send, sendto, sendmsg, connect, accept, accept4, poll, ppoll,
 * select, nanosleep, clock_nanosleep, usleep, sleep and getaddrinfo (and
 * glibc's fortified __read_chk, __recv_chk, __recvfrom_chk, __poll_chk,
 * __ppoll_chk) in front of libc's. Outside a coroutine each is libc's
 * call. In a coroutine, a call that would block on a socket, pipe, tty or
 * other pollable fd parks the task on the reactor (await_readable,
 * await_writable) and returns what the blocking call would have returned;
 * sleeps are await_sleep; getaddrinfo of a name runs on the worker threads.
 * Regular files, and fds the caller made non-blocking, behave as libc's
 * calls do; no fd flag the caller did not set is left set (a terminal is
 * written through a non-blocking description of the hook's own).
 *
 * Where a blocking call would return early: SO_RCVTIMEO and SO_SNDTIMEO
 * give EAGAIN (a connect EINPROGRESS), as the kernel's; the task's timeout
 * scope gives -1 with ETIMEDOUT, and its cancellation -1 with ECANCELED
 * (sleep returns the seconds left, clock_nanosleep the error number,
 * getaddrinfo EAI_SYSTEM), poll included, never EINTR or poll's 0, which
 * libraries retry: a cancelled task would spin. A write that sent some
 * bytes first returns their count. A signal does not end a parked call.
 * Not hooked: static binaries, raw syscall(2), glibc's own calls (stdio),
 * calls from signal handlers, and every call not listed. README "Hooks"
 * says what each call does and why the hooks are opt-in (a library that
 * holds a pthread mutex across a blocking call can deadlock the loop).
 * ====================================================================== */

/* ======================================================================
 * Loops across threads: loop.call_soon_threadsafe,
 * asyncio.run_coroutine_threadsafe, a channel between threads, a loop on
 * every core
 *
 * Each thread runs its own loop, and a task never leaves the loop that
 * made it (errno, thread-locals and every object a task uses stay its
 * thread's). What crosses between threads is work and messages: a
 * function posted into a loop, a coroutine submitted to a loop with a
 * future to wait on, elements sent through a cross-thread channel. Each
 * wakes the loop it goes to at once: a busy loop sees it within a few
 * switches, without a system call; a loop asleep in the kernel is woken
 * by one eventfd write. A loop whose tasks wait on other threads spins
 * for up to 20 microseconds before it sleeps, once spinning has paid off
 * (an answer came that soon): two loops passing messages then never
 * sleep, and a loop whose tasks wait long soon stops spinning.
 *
 * A loop is named by its handle, which any thread may use while the loop
 * runs, and, once retained, after it has ended: calls on the handle of a
 * loop that has ended return ESHUTDOWN ("cannot send after shutdown"),
 * never touch freed memory, and are told apart from EPIPE, which a closed
 * channel says.
 *
 * Deadlock detection and other threads: a task waiting on a future of
 * another loop's task or on a cross-thread channel waits on another
 * thread, which may wake it at any time, so its loop is never reported
 * deadlocked meanwhile (a future of its own loop's task is a wait on its
 * own tasks, and can deadlock with them); nor is a loop
 * whose handle someone holds with coro_loop_retain, since a call the
 * holder posts may be what its tasks wait for, nor, for that reason, a
 * loop of a coro_run_loops with more than one loop.
 * ====================================================================== */

/* A loop's handle. Opaque. */
typedef struct coro_loop coro_loop;

/* The handle of the calling thread's loop (asyncio.get_running_loop()),
 * from a task or from a call posted to the loop.
 * Returns: the handle, or NULL with errno EINVAL (no loop runs on this
 *          thread), ENOMEM, or EMFILE and the like (the first call makes
 *          the eventfd that wakes the loop).
 * Ownership: borrowed: valid on any thread until the loop ends (until its
 *            coro_run returns). To use it from a thread that may outlive
 *            the loop, take a reference with coro_loop_retain before
 *            handing it over.
 * Cost: the first call in a loop, an allocation and an eventfd; then
 *       O(1). */
CORO_API coro_loop *coro_loop_current(void);

/* Takes a reference to loop: the handle stays valid until the matching
 * coro_loop_release, also after its loop has ended (every call on it then
 * returns ESHUTDOWN). While anyone holds a reference, the loop is not
 * reported deadlocked: a call the holder posts may be what its tasks wait
 * for. Callable on any thread, with a handle known to be valid: the
 * borrowed one while the loop runs, or one already retained.
 * Returns: loop (NULL for NULL). */
CORO_API coro_loop *coro_loop_retain(coro_loop *loop);

/* Lets go of a reference taken with coro_loop_retain; the last one frees
 * the handle of a loop that has ended. NULL does nothing, and so does a
 * release without its retain (of the borrowed handle, or once more than
 * retained) while the handle is still valid. Any thread. */
CORO_API void coro_loop_release(coro_loop *loop);

/* Whether loop still takes new work: 1 from its start until its main
 * returns, then 0 for good (posts and submits then say ESHUTDOWN). 0 for
 * NULL. Any thread. */
CORO_API int coro_loop_alive(const coro_loop *loop);

/* Posts fn(arg) to loop from any thread, the loop's own included
 * (loop.call_soon_threadsafe). fn runs once, on the loop's thread, soon:
 * at once if the loop sleeps, as soon as no task is ready, and in a loop
 * kept busy after at most 64 switches between its tasks (when it also
 * looks at I/O), so that posts and tasks cannot starve each other. A
 * task that posts to its own loop and then yields (asyncio's call_soon,
 * then sleep(0)) may so run on before fn does, where asyncio runs the
 * callback first: wait for what fn does (an event it sets), not for a
 * yield. It runs in the loop's own context, outside any task, as an
 * asyncio callback does: it may spawn and cancel tasks, set events, send
 * without waiting and post again, but not wait (an await_* there is EPERM;
 * coro_self() is NULL), and it should not block the thread, as every task
 * of the loop waits while it runs. The calls one thread posts run in the
 * order it posted them.
 *
 * Nothing is lost or run twice: a call accepted (0 returned) runs exactly
 * once. Posts are taken until the loop's main returns; coro_run then runs
 * the calls accepted so far while it cancels the other tasks and waits
 * for them, lets the tasks the calls spawn run to their end (born
 * cancelled, as every task spawned while a loop winds down), and returns.
 * From the moment main returns, posts say ESHUTDOWN and fn never runs.
 * Returns: 0; ESHUTDOWN (the loop has ended or is ending); EINVAL (loop
 *          or fn NULL); ENOMEM.
 * Cost: an allocation of 32 bytes and a mutex held for a few
 *       instructions; an eventfd write when the loop sleeps. */
CORO_API int coro_loop_post(coro_loop *loop, void (*fn)(void *arg),
                            void *arg);

/* What a coroutine submitted to a loop comes to (asyncio's
 * concurrent.futures.Future, from run_coroutine_threadsafe). Opaque. */
typedef struct coro_future coro_future;

/* Runs fn(arg) as a task of loop, from any thread, the loop's own
 * included (asyncio.run_coroutine_threadsafe). The task is spawned on the
 * loop's thread by a call posted to it (see coro_loop_post: it starts
 * soon) and belongs to that loop like any other: it never moves, and the
 * loop cancels it if the loop ends first. *out tells how it ends: wait
 * for it with await_future from a task of any loop, or coro_future_wait
 * from a plain thread; or let go of it with coro_future_free.
 * Returns: 0 with *out; ESHUTDOWN (the loop has ended or is ending: fn
 *          will never run); EINVAL (loop, fn or out NULL); ENOMEM.
 * Ownership: arg stays the caller's and must outlive the task. The
 *            future is the caller's until one of the three calls above
 *            frees it.
 * Cost: an allocation of about 250 bytes and a post; the task's spawn on
 *       its loop. */
CORO_API int coro_loop_submit(coro_loop *loop, coro_fn fn, void *arg,
                              coro_future **out);

/* Waits, parked, until f's task has ended (await asyncio.wrap_future(f)),
 * stores what it returned in *result (if result is not NULL), and frees f.
 * The caller's loop runs its other tasks meanwhile; f's task may be of any
 * loop, the caller's own included. Of its own loop, the wait is one on
 * that loop's tasks: if none of them can run again, coro_run reports the
 * deadlock and returns EDEADLK (asyncio would hang).
 *
 * If the caller is cancelled while it waits (or already was), or the
 * timeout passes, f's task is cancelled (a call posted to its loop) and
 * the caller waits on for it to end, shielded, as await_task does: what it
 * waited for is never left running unowned, and *result is still stored,
 * so whatever the task allocated can be freed. A task that ended before
 * the caller's cancellation or timeout took effect counts as ended.
 * Returns: what await_task would return for the task: 0, its coro_fail
 *          error, or ECANCELED (coro_future_cancel, or its loop cancelled
 *          it, ending); ENOMEM if its loop could not spawn it. Else the
 *          caller's own ECANCELED (coro_task_cancelling tells it apart, as
 *          for await_task) or ETIMEDOUT; as for await_task_timeout, a task
 *          that fails with an error of its own as it is cancelled for the
 *          timeout gives that error instead. EINVAL (f NULL, NaN, or another
 *          waiter has claimed f: it is then untouched); EPERM.
 * Ownership: f is freed once this returns anything but EINVAL or EPERM.
 * Cost: one post to the caller's loop when the task ends. */
CORO_API int await_future(coro_future *f, double timeout, void **result);

/* As await_future, for a plain thread, which it blocks
 * (concurrent.futures.Future.result(timeout)); on timeout, likewise
 * cancels the task and waits for its end before returning ETIMEDOUT.
 * Returns: as await_future; EPERM on a thread that runs a loop, where it
 *          would block every task of that loop (use await_future). */
CORO_API int coro_future_wait(coro_future *f, double timeout,
                              void **result);

/* Cancels f's task, as coro_cancel would on its loop, from any thread
 * (Future.cancel()). Does not wait: the future says when the task has
 * ended, and with what. Idempotent; nothing once the task has ended.
 * Returns: 0, or EINVAL (f NULL). */
CORO_API int coro_future_cancel(coro_future *f);

/* Whether f's task has ended (Future.done()): 1 or 0 (0 for NULL). Any
 * thread. */
CORO_API int coro_future_done(const coro_future *f);

/* Lets go of f without waiting: its task runs on, as a task of its loop,
 * and what it returns is dropped (free nothing it returns that way).
 * Returns: 0; EBUSY (a waiter has claimed f: nothing is done). NULL does
 *          nothing. */
CORO_API int coro_future_free(coro_future *f);

/* coro_loop_submit is also a macro that names the task after fn, with
 * the submitting site, as coro_spawn's does. */
CORO_API int coro__loop_submit_at(coro_loop *loop, coro_fn fn, void *arg,
                                  coro_future **out, const char *fn_name,
                                  const char *site);
#ifndef CORO_NO_SPAWN_SITE
#define coro_loop_submit(loop, fn, arg, out)                               \
    coro__loop_submit_at((loop), (fn), (arg), (out), #fn,                  \
                         __FILE__ ":" CORO__STR(__LINE__))
#endif

/* A channel between threads (Go's chan between goroutines on any
 * thread; queue.Queue between threads, which asyncio lacks): as coro_chan
 * (fixed-size elements copied in and out, capacity 0 a rendezvous, FIFO
 * waiters with direct hand-off, close), but any thread may use it at any
 * time, and many at once. Tasks of any loops use the await_ calls, which
 * park them while their loops run on; plain threads use the blocking
 * calls; either may use the try calls. A hand-off to a waiting task costs
 * its loop one post (no system call if it is busy, one eventfd write if
 * it sleeps); to a waiting thread, a condition variable's signal.
 *
 * A waiting task's element is copied in or out by the thread that
 * completes its operation: elem must not be on the stack of a task
 * spawned with CORO_SHARED_STACK. As everywhere, an operation that
 * completed before the waiter's timeout or cancellation took effect
 * returns 0 (a received element is never lost), and a task waiting on
 * one counts as waiting on another thread, so its loop is never reported
 * deadlocked meanwhile.
 *
 * Every call below returns EINVAL for a NULL channel or element, besides
 * the codes listed. */
typedef struct coro_xchan coro_xchan;

/* Makes a channel of capacity elements of elem_size bytes; callable
 * anywhere. EINVAL as coro_chan_new.
 * Returns: the channel, or NULL with errno EINVAL or ENOMEM.
 * Ownership: the caller's; free it with coro_xchan_free once nobody
 *            uses it. */
CORO_API coro_xchan *coro_xchan_new(size_t elem_size, size_t capacity);

/* From a task: as await_chan_send and await_chan_recv (0, ETIMEDOUT,
 * ECANCELED, EPIPE; EPERM outside a coroutine).
 * Cost: a mutex; a post to the loop of a task handed to. */
CORO_API int await_xchan_send(coro_xchan *c, const void *elem,
                              double timeout);
CORO_API int await_xchan_recv(coro_xchan *c, void *elem, double timeout);

/* From a plain thread, which they block up to timeout seconds (negative:
 * no limit; 0 only tries): 0, ETIMEDOUT, EPIPE as the await_ calls; EPERM
 * on a thread that runs a loop, which they would block (use the await_
 * calls). */
CORO_API int coro_xchan_send(coro_xchan *c, const void *elem,
                             double timeout);
CORO_API int coro_xchan_recv(coro_xchan *c, void *elem, double timeout);

/* Never wait, from any thread, a loop's included: 0, EAGAIN (full or
 * empty), EPIPE. */
CORO_API int coro_xchan_try_send(coro_xchan *c, const void *elem);
CORO_API int coro_xchan_try_recv(coro_xchan *c, void *elem);

/* Closes c, from any thread: waiting senders, tasks and threads, get
 * EPIPE and their elements are not delivered; receivers drain what is
 * buffered, then get EPIPE. Returns: 0, or EPIPE if it was closed
 * already. */
CORO_API int coro_xchan_close(coro_xchan *c);

/* Elements buffered now (0 for NULL). Any thread. */
CORO_API size_t coro_xchan_size(const coro_xchan *c);

/* Frees c and what it still buffers. Returns: 0; EBUSY while a task or a
 * thread waits on it. NULL does nothing. */
CORO_API int coro_xchan_free(coro_xchan *c);

/* Runs n loops at once, each on a thread of its own, with one main
 * (a Go program's GOMAXPROCS threads; asyncio has one loop per thread and
 * leaves the rest to the program). main runs as the main task of the
 * first loop, on the calling thread, as coro_run runs it; the other n - 1
 * loops run on threads started for them and run what main and its tasks
 * hand them: coroutines submitted (coro_loop_submit), calls posted
 * (coro_loop_post), and, for a server, each its own listening socket on a
 * shared port (coro_listen_flags with CORO_LISTEN_REUSEPORT, submitted to
 * every loop). coro_loops lists them. Tasks never move between loops, and
 * loops share nothing but what is handed between them: to use more than
 * one machine, run one such process per machine behind a balancer.
 *
 * When main's loop has ended (main returned, and its other tasks were
 * cancelled and waited for, as coro_run does), the other loops end in
 * turn: their tasks are cancelled and waited for, and their threads
 * joined, before coro_run_loops returns. Until then they keep running, so
 * a task of main's loop that waits on a future of another loop gets its
 * answer. With more than one loop, none is reported deadlocked: each may
 * post to any other at any time (every loop holds the others, as
 * coro_loop_retain does), so a task waiting for what a call from another
 * loop will do is not stuck; with one, main's loop is, as with coro_run.
 * The threads
 * started inherit the caller's signal mask: block SIGINT and the like
 * before the call to keep them on the caller's thread.
 *
 * n: how many loops, 1 to 1024; 0 for one per CPU this process may run on.
 * Returns: what coro_run returns for main; EINVAL (main NULL, n too
 *          large); EBUSY (a loop already runs on this thread); ENOMEM,
 *          EAGAIN (a loop or its thread could not start: main never
 *          runs). */
CORO_API int coro_run_loops(unsigned n, coro_fn main, void *arg,
                            void **result);

/* The loops of the coro_run_loops the calling thread's loop belongs to,
 * in order, the first main's: stores up to cap handles in out and returns
 * how many loops there are (so a first call with cap 0 sizes the array;
 * out NULL stores nothing, whatever cap says).
 * In a loop started by coro_run, that one loop.
 * Returns: the count; 0 where no loop runs (or, for a lone loop, when its
 *          handle cannot be made: see coro_loop_current).
 * Ownership: borrowed, valid until coro_run_loops returns (coro_run, for
 *            a lone loop); coro_loop_retain one to keep it longer. */
CORO_API size_t coro_loops(coro_loop **out, size_t cap);

/* ======================================================================
 * I/O readiness: what asyncio's transports sit on (loop.add_reader)
 *
 * A task waits for an fd to become readable or writable on the loop's epoll
 * instance while other tasks run. At most one task may wait to read and one
 * to write on an fd at a time. The fd must be non-blocking for the calls
 * that follow a wait not to block the loop (every fd the socket helpers
 * below return is).
 *
 * Readiness is a hint, as with poll(2): the next read may still say EAGAIN
 * (another reader got there first, or a TCP segment was dropped); wait
 * again. Regular files cannot be polled and are always ready.
 *
 * Closing an fd that a task waits on with close(2) leaves that task waiting
 * until its timeout; close it with coro_close to wake the task with EBADF.
 * ====================================================================== */

/* Parks the calling task until fd is readable (or at end of file, or in
 * error), or the timeout passes. A timeout of 0 only looks. An fd that is
 * ready when the timeout ends the wait is ready: 0, however short the
 * timeout (asyncio.wait_for gives a result that is there when its timeout
 * fires); a timeout scope's deadline (asyncio.timeout) still gives
 * ETIMEDOUT.
 * Returns: 0; ETIMEDOUT; ECANCELED; EBADF (fd is not open, or was closed
 *          with coro_close while waiting); EBUSY (another task already
 *          waits to read fd); EINVAL (NaN timeout); ENOMEM; EPERM.
 * Cost: one epoll_ctl to arm a one-shot watch (which also tells a closed
 *       fd, before anything is spent on it), none on an fd coro_fd_keep
 *       registered; no system call to wake. On io_uring (coro_io_backend)
 *       a POLL_ADD that the loop's next wait submits: no system call of
 *       its own. The loop keeps 24 bytes for every fd number up to the highest one
 *       waited on. */
CORO_API int await_readable(int fd, double timeout);

/* As await_readable, for writability (or an error or hang-up). */
CORO_API int await_writable(int fd, double timeout);

/* Closes fd, first waking any task waiting on it in this thread's loop
 * with EBADF, and dropping its registration if coro_fd_keep kept it.
 * Callable anywhere (outside a loop it is close(2)).
 * Returns: 0, or close's errno (EBADF, EIO). */
CORO_API int coro_close(int fd);

/* Registers fd with this thread's loop for good, as asyncio's add_reader
 * does: from now on a wait on it (await_readable, await_writable, and the
 * socket helpers' waits) costs no system call, where each would otherwise
 * arm a one-shot watch with an epoll_ctl. For a connection that waits once
 * per request, that is one system call in three. The loop remembers what
 * the kernel last reported, until a read or write says EAGAIN or a read of
 * a stream socket comes back short: await_readable may therefore return 0
 * for data a plain read(2) took since, and the next read says EAGAIN (the
 * socket helpers then wait by themselves). A regular file (always ready)
 * is accepted and not registered. On io_uring (coro_io_backend) nothing is
 * registered: the waits are POLL_ADDs in the ring anyway, and await_read
 * on a kept stream socket goes to the ring at once (see there).
 * The promise it asks: close fd with coro_close, in this loop's thread.
 * Closed with close(2), its number stays registered here, and an fd opened
 * later under that number could wait until its timeout.
 * Returns: 0; EBADF (fd is not open); ENOMEM; ENOSPC (epoll's limit of
 *          watches); EPERM (not in a loop's thread). */
CORO_API int coro_fd_keep(int fd);

/* The kernel interface a loop waits and does its I/O with, chosen by each
 * loop as it starts from the environment variable CORO_IO:
 *   epoll     (the default; also unset or empty) epoll, as described above;
 *   io_uring  an io_uring ring (Linux 5.17 or later): the idle wait is one
 *             io_uring_enter that also submits every operation the loop's
 *             turn queued; fd waits are one-shot POLL_ADDs, which cost no
 *             system call of their own; the socket helpers' reads, writes
 *             and accepts that would wait are RECV, SEND and ACCEPT in
 *             the ring, and await_read on a stream socket coro_fd_keep
 *             kept is a RECV at once, without a recv(2) that would say
 *             EAGAIN. A kernel that refuses io_uring (the io_uring_disabled
 *             sysctl, seccomp, ENOSYS, EPERM) makes coro_run fail with
 *             that errno, said once on stderr;
 *   auto      io_uring where the kernel allows it, epoll elsewhere, and
 *             epoll under valgrind (which cannot see the kernel's writes
 *             through the ring).
 * Any other value is told once on stderr and coro_run returns EINVAL.
 * An operation in the ring that a timeout, a cancellation or coro_close
 * gives up is cancelled in the ring and its completion awaited before the
 * call returns, so the kernel never writes a buffer after its call; one
 * that completed first returns its result. A buffer on the shared stack
 * (CORO_SHARED_STACK) is never handed to the kernel: that call waits for
 * readiness and reads or writes itself, as on epoll.
 * Returns: "epoll" or "io_uring" for the calling thread's loop, NULL
 *          outside a loop. Python: asyncio's selector vs. proactor loops
 *          (asyncio.SelectorEventLoop). */
CORO_API const char *coro_io_backend(void);

/* ======================================================================
 * Sockets: what asyncio's streams give (open_connection, start_server,
 * StreamReader.read / readuntil / readexactly, StreamWriter.write + drain)
 *
 * Each call that may wait takes a timeout covering the whole call and
 * returns ECANCELED when the task is cancelled, without doing its
 * operation if it was cancelled before. A timeout of 0 only tries: what
 * the fd allows now is done (on a blocking pipe or listener too, which is
 * asked with poll(2)); if that was not all, the other ready tasks run
 * once and ETIMEDOUT is returned. Every fd they return is non-blocking
 * and close-on-exec, and TCP ones have TCP_NODELAY (as in asyncio).
 * Errors from the system calls come back as they are (ECONNRESET,
 * ECONNREFUSED, EHOSTUNREACH, EMFILE...).
 *
 * The read and write helpers also take fds coro did not make: sockets,
 * pipes, FIFOs, ttys. They never block the thread, whatever the fd's
 * O_NONBLOCK says, and never change its flags (asyncio sets the fds it is
 * given non-blocking; coro does not need to): a socket is read and written
 * with MSG_DONTWAIT; a blocking pipe or tty only as far as the reactor
 * says it is ready (a read takes what is there, a write at most PIPE_BUF
 * bytes at a time). A blocking fd shared with another process that drains
 * it between the reactor's word and the call could still block; don't share
 * blocking fds. A peer or reader that went away is EPIPE, never a SIGPIPE:
 * sockets are written with MSG_NOSIGNAL, other fds with SIGPIPE held back
 * for the call (a few system calls more per write). An fd that is not
 * open, or not open the way a call uses it (a read of a pipe's write end,
 * a write to its read end), is EBADF at once, as read(2) and write(2)
 * say.
 * ====================================================================== */

/* Opens a TCP listening socket on a numeric address ("127.0.0.1", "::",
 * "0.0.0.0") and port (0 picks a free one; see coro_sock_port). backlog <= 0
 * means SOMAXCONN. SO_REUSEADDR is set. Does not suspend.
 * Returns: 0 with *fd; EINVAL (not a numeric address, port out of range,
 *          NULL); EADDRINUSE, EACCES and the like from bind/listen. */
CORO_API int coro_listen(const char *addr, int port, int backlog, int *fd);

/* For coro_listen_flags: SO_REUSEPORT, so that several sockets, each with
 * the flag, listen on one port at once and the kernel spreads the
 * connections among them: one per loop of coro_run_loops, each accepting
 * its share. The sockets must be made by the same user. */
#define CORO_LISTEN_REUSEPORT 1u

/* As coro_listen, with flags: 0 or CORO_LISTEN_REUSEPORT. asyncio:
 * start_server(..., reuse_port=True).
 * Returns: as coro_listen; EINVAL also for unknown flags. */
CORO_API int coro_listen_flags(const char *addr, int port, int backlog,
                               unsigned flags, int *fd);

/* The local port a socket is bound to, e.g. after coro_listen(..., 0, ...).
 * Returns: 0 with *port (0 for an IP socket not bound yet); EBADF,
 *          ENOTSOCK; EAFNOSUPPORT (not an IPv4 or IPv6 socket: a Unix
 *          socket has no port); EINVAL (port NULL). */
CORO_API int coro_sock_port(int fd, int *port);

/* Accepts a connection on a listening socket.
 * Returns: 0 with *fd; ETIMEDOUT; ECANCELED; EMFILE and the like from
 *          accept; EINVAL (fd NULL, NaN); EPERM. listen_fd that is no
 *          listening socket gets accept(2)'s answer at once, blocking or
 *          not: EBADF, ENOTSOCK, EINVAL (not listening), EOPNOTSUPP (a
 *          datagram socket). */
CORO_API int await_accept(int listen_fd, double timeout, int *fd);

/* Connects to host:port over TCP. A numeric host is used as it is; a name
 * is resolved with getaddrinfo on the worker threads (see await_blocking),
 * so a slow DNS server never stalls the loop; then each address is tried in
 * turn. The timeout covers the connection attempts; a resolution that has
 * started runs to its end (getaddrinfo cannot be interrupted), also when
 * the task is cancelled meanwhile.
 * Returns: 0 with *fd; ETIMEDOUT; ECANCELED; ECONNREFUSED, ENETUNREACH and
 *          the like (from the last address tried); ENXIO (no such host);
 *          EAGAIN (the name server failed for now); EINVAL (host or fd NULL,
 *          port not in 1..65535, NaN); EPERM. */
CORO_API int await_dial(const char *host, int port, double timeout, int *fd);

/* Reads what is there, up to cap bytes, waiting until something is.
 * cap 0 returns 0 with *got == 0 at once, without touching fd, as
 * asyncio's read(0) returns b"" (await_read_full and await_write_all of 0
 * bytes likewise return 0 at once).
 * Returns: 0 with *got > 0; 0 with *got == 0 at end of stream; ETIMEDOUT;
 *          ECANCELED; ECONNRESET and the like; EINVAL (got NULL, buf NULL
 *          with cap > 0, NaN); EPERM. */
CORO_API int await_read(int fd, void *buf, size_t cap, double timeout,
                        size_t *got);

/* Reads exactly n bytes (asyncio's readexactly).
 * Returns: 0 with *got == n; EPIPE if the stream ended first, with the
 *          bytes that came in *got; ETIMEDOUT and ECANCELED, also with
 *          *got set (those bytes are consumed); the errors of await_read. */
CORO_API int await_read_full(int fd, void *buf, size_t n, double timeout,
                             size_t *got);

/* Reads up to and including the first occurrence of delim (a non-empty
 * string), and not one byte further: what follows stays in the socket for
 * the next read. On a stream socket it peeks (MSG_PEEK) and then takes
 * exactly what it needs, two system calls per chunk; on a pipe it reads a
 * byte at a time. A datagram or seqpacket socket is refused (EPROTOTYPE),
 * untouched: a peek there would lose what its message holds past the
 * delimiter. buf is not NUL-terminated.
 * Returns: 0 with *got bytes, ending with delim; ENOBUFS if cap bytes came
 *          without delim (*got == cap, consumed); EPIPE if the stream ended
 *          first (*got says what came); ETIMEDOUT, ECANCELED (*got set);
 *          EPROTOTYPE (not a stream); the errors of await_read; EINVAL
 *          (empty delim).
 * Cost: one getsockopt per call, to learn the socket's type. */
CORO_API int await_read_until(int fd, void *buf, size_t cap,
                              const char *delim, double timeout,
                              size_t *got);

/* Writes all n bytes, waiting whenever the socket buffer is full (write +
 * drain). On ETIMEDOUT or ECANCELED some of the bytes may have been sent.
 * Returns: 0; EPIPE, ECONNRESET (the peer went away); ETIMEDOUT;
 *          ECANCELED; EINVAL (buf NULL with n > 0, NaN); EPERM. */
CORO_API int await_write_all(int fd, const void *buf, size_t n,
                             double timeout);

/* ======================================================================
 * Coordination: Go's channels; asyncio.Queue, LifoQueue, PriorityQueue,
 * Lock, Semaphore, BoundedSemaphore, Event, Condition, Barrier
 *
 * Objects are opaque, made with _new (callable anywhere, before or outside
 * a loop) and ended with _free. They coordinate the tasks of one thread and
 * are not thread-safe. An object belongs to the thread of the first loop
 * whose task uses it, for good (as asyncio binds its objects to the first
 * loop that uses them): the tasks of that thread's later loops may use it
 * too, and any call from another thread, with or without a loop, is EINVAL
 * (coro_event_set and coro_event_clear then do nothing, and the queries,
 * coro_queue_size, coro_event_is_set, coro_mutex_locked, coro_sem_value
 * and the like, return 0). That is decided without touching the object's
 * state, so a careless call from another thread is refused, not a data
 * race. Before any loop has used it, any thread may (to fill a channel
 * before coro_run, say). Any thread may free an object that no loop is
 * using any more.
 *
 * Waiters are served in FIFO order with direct hand-off: a released lock,
 * a permit, an element goes to the first waiter, which cannot be overtaken
 * by a task that arrives later. A waiter that times out or is cancelled
 * leaves the object at once, and what it would have received stays for the
 * next one: a cancelled receiver never loses a message. An operation that
 * completed before the cancellation arrived returns 0; the cancellation is
 * seen at the next await_*.
 *
 * Every await_* below returns 0, ETIMEDOUT, ECANCELED, EINVAL (NULL object
 * or element, NaN timeout), EPERM (outside a coroutine), ENOMEM (only a
 * shared-stack task's first wait: see CORO_SHARED_STACK) besides the codes
 * listed. A timeout of 0 only tries: if the operation cannot complete at
 * once, the other ready tasks run once and ETIMEDOUT is returned. Freeing
 * an object that tasks wait on, or a mutex that a live task holds, is
 * EBUSY; _free(NULL) does nothing. Once no task waits on it, an object
 * may be freed at once, before the tasks it woke have run (a condition
 * right after its notify_all, as pthread_cond_destroy allows after a
 * broadcast): a woken task never touches it again. A task blocked
 * forever on one of them, with nothing else that could wake anyone, is a
 * deadlock: coro_run returns EDEADLK. _new returns NULL with errno ENOMEM
 * (or EINVAL where stated).
 * ====================================================================== */

/* Channels: Go's chan of fixed-size elements, copied in and out. capacity
 * 0 is a rendezvous (a send waits for a receiver), else up to capacity
 * elements wait in a buffer. EINVAL: elem_size 0 or above 1 MiB (send a
 * pointer instead), or a buffer (elem_size x capacity) above 1 GiB: such
 * sizes are refused, never tried. */
typedef struct coro_chan coro_chan;
CORO_API coro_chan *coro_chan_new(size_t elem_size, size_t capacity);

/* Sends a copy of *elem: straight to a waiting receiver, else into the
 * buffer, else waits for either.
 * Returns: EPIPE if the channel is or gets closed (the element is not
 *          delivered). Cost: O(1) and one memcpy. */
CORO_API int await_chan_send(coro_chan *c, const void *elem, double timeout);

/* Receives into *elem, waiting until something is sent.
 * Returns: EPIPE once the channel is closed and its buffer drained. */
CORO_API int await_chan_recv(coro_chan *c, void *elem, double timeout);

/* As send and receive, but never suspend: EAGAIN instead of waiting.
 * Callable outside a coroutine. */
CORO_API int coro_chan_try_send(coro_chan *c, const void *elem);
CORO_API int coro_chan_try_recv(coro_chan *c, void *elem);

/* Closes c: senders waiting get EPIPE (their elements are not delivered);
 * receivers drain what is buffered, then get EPIPE.
 * Returns: 0, or EPIPE if it was closed already. */
CORO_API int coro_chan_close(coro_chan *c);

/* Frees c (and whatever is still buffered). EBUSY while tasks wait. */
CORO_API int coro_chan_free(coro_chan *c);

/* One operation of a select. */
typedef struct coro_chan_op {
    coro_chan *chan;
    int        send; /* non-zero: send *elem; 0: receive into *elem */
    void      *elem;
} coro_chan_op;

/* Completes exactly one ready operation among ops and stores its index in
 * *chosen, waiting until one is ready. When several are, the first in
 * array order wins: order is priority, deterministic (as libdill's choose;
 * Go picks at random). A channel may appear in several ops.
 * Returns: 0; EPIPE for a chosen op on a closed channel; ETIMEDOUT and
 *          ECANCELED with *chosen unset; EINVAL for n == 0 or chosen NULL;
 *          ENOMEM (a select that must wait keeps its records, 56 bytes
 *          an op, on the heap: they are written while it is parked).
 * Cost: O(n) to look, and one allocation of 56 bytes an op when it must
 *       wait. */
CORO_API int await_select(coro_chan_op *ops, size_t n, double timeout,
                          size_t *chosen);

/* Queue: asyncio.Queue of pointers. maxsize 0 is unbounded (asyncio's
 * meaning; a channel's capacity 0 is Go's rendezvous). */
typedef struct coro_queue coro_queue;
CORO_API coro_queue *coro_queue_new(size_t maxsize);

/* A LIFO queue (asyncio.LifoQueue): as coro_queue_new, but a get takes
 * the item put last. Every queue call below works on it.
 * Returns: the queue, or NULL with errno ENOMEM.
 * Ownership: the caller's; free it with coro_queue_free. */
CORO_API coro_queue *coro_queue_new_lifo(size_t maxsize);

/* A priority queue (asyncio.PriorityQueue): a get takes the smallest item
 * as cmp orders them, and of equal items the one put first (asyncio
 * leaves their order to its heap). cmp is handed two items, the pointers
 * that were put (not pointers to them, as qsort would hand), and returns
 * a negative int, 0 or a positive int, as strcmp does. It runs in the
 * task that puts or gets, inside the call: it must not suspend nor use
 * the queue. Every queue call below works on it.
 * Returns: the queue, or NULL with errno EINVAL (cmp NULL) or ENOMEM.
 * Ownership: the caller's; free it with coro_queue_free.
 * Cost: a binary heap: O(log n) calls of cmp per put and per get, and
 *       16 bytes per queued item (8 in the other queues). */
CORO_API coro_queue *coro_queue_new_priority(size_t maxsize,
                                             int (*cmp)(const void *a,
                                                        const void *b));

/* Puts item, waiting while the queue is full.
 * Returns: EPIPE after coro_queue_shutdown; ENOMEM (an unbounded queue
 *          could not grow). */
CORO_API int await_queue_put(coro_queue *q, void *item, double timeout);

/* Gets the next item (the oldest; from a LIFO queue the newest, from a
 * priority queue the smallest), waiting while the queue is empty.
 * Returns: EPIPE once the queue is shut down and drained. */
CORO_API int await_queue_get(coro_queue *q, void **item, double timeout);

/* Never suspend: EAGAIN when full / empty; EPIPE as above. */
CORO_API int coro_queue_try_put(coro_queue *q, void *item);
CORO_API int coro_queue_try_get(coro_queue *q, void **item);

/* Items queued (not counting putters still waiting); 0 for NULL or another
 * thread's queue. */
CORO_API size_t coro_queue_size(const coro_queue *q);

/* Marks one item put earlier as processed (asyncio's task_done).
 * Returns: 0, or EINVAL if called more times than items were put. */
CORO_API int coro_queue_task_done(coro_queue *q);

/* Waits until every item put so far has been marked done. */
CORO_API int await_queue_join(coro_queue *q, double timeout);

/* asyncio 3.13's shutdown: puts get EPIPE at once (waiting putters too);
 * gets drain what is queued, then get EPIPE. Joiners keep waiting for
 * task_done. */
CORO_API int coro_queue_shutdown(coro_queue *q);

/* asyncio 3.13's shutdown(immediate=True): shuts q down as
 * coro_queue_shutdown does, but drops what is queued instead of leaving
 * it to the gets, so every get, waiting or later, returns EPIPE at once,
 * as puts do. Each dropped item counts as done for join, as asyncio calls
 * task_done for it: joiners return 0 once the items taken before are
 * done too. Waiting putters get EPIPE and keep their items, which were
 * never queued. Never suspends; on a queue already shut down, it drops
 * what the gets had yet to drain.
 *
 * The items are the caller's pointers, and the queue frees none of them.
 * If drop is not NULL it is called once for each, drop(item, arg), in no
 * particular order, to free or count them; it must not suspend nor free
 * q. Without drop they are forgotten: to keep them, take them with
 * coro_queue_try_get first (nothing else runs in between).
 * Returns: 0, or EINVAL (NULL, another thread's).
 * Cost: O(n) for n queued items, plus a wake per waiting task. */
CORO_API int coro_queue_shutdown_now(coro_queue *q,
                                     void (*drop)(void *item, void *arg),
                                     void *arg);

/* Frees q, dropping queued items. EBUSY while tasks wait. */
CORO_API int coro_queue_free(coro_queue *q);

/* Mutex: asyncio.Lock. Held by one task of one run: the holder is named by
 * its task id and its coro_run (not by addresses, which the pool and the
 * allocator reuse), so no other task, of this run or a later one, can
 * unlock or inherit it. A task that ends holding it leaves it held: nobody
 * can unlock it again, but it can be freed. An asyncio.Lock has no owner:
 * any task or callback may release it, and a Condition may be waited on
 * by a task whose lock another task took; here only the holder unlocks,
 * and only the holder waits on a condition with it (EPERM otherwise).
 *
 * An unlock with tasks waiting hands m to the first of them before it
 * runs: m stays held (coro_mutex_locked reads 1) and a task that asks
 * meanwhile waits behind. asyncio's release marks the lock free, wakes
 * the first waiter and lets it take the lock when it runs: its locked()
 * reads False until then, though nobody else can take it either. */
typedef struct coro_mutex coro_mutex;
CORO_API coro_mutex *coro_mutex_new(void);

/* Takes m, waiting while another task holds it.
 * Returns: EDEADLK if the caller already holds it. */
CORO_API int await_mutex_lock(coro_mutex *m, double timeout);

/* Releases m, to the first waiter if any. EPERM if the caller does not
 * hold it. */
CORO_API int coro_mutex_unlock(coro_mutex *m);
/* Whether m is held: 1 or 0 (asyncio's Lock.locked()). A mutex whose
 * holder ended holding it stays held. Never suspends; callable anywhere.
 * Returns: 0 also for NULL or another thread's mutex. Cost: O(1). */
CORO_API int coro_mutex_locked(const coro_mutex *m);
/* EBUSY while tasks wait on m, a live task holds it, or a task waits on
 * a condition with m (it takes m back as it wakes). Cost: O(tasks). */
CORO_API int coro_mutex_free(coro_mutex *m);

/* Semaphore: asyncio.Semaphore, a counter of permits. */
typedef struct coro_sem coro_sem;
CORO_API coro_sem *coro_sem_new(unsigned value);
/* Takes a permit, waiting while there is none (or others wait first).
 *
 * A release with tasks waiting hands its permit to the first of them at
 * once: that task waits no more, even before it runs. So a permit free
 * after that goes to whoever asks, without waiting for the woken tasks
 * to run, and they lose nothing: each has its own permit. asyncio's
 * acquire waits while a woken waiter has not yet run (its locked() is
 * True until then), so a task that releases and asks again at once
 * queues behind it there, and takes the free permit at once here:
 * CPython's test_acquire_fifo_order_2 sees 1 2 3 4, coro 1 2 4 3. */
CORO_API int await_sem_acquire(coro_sem *s, double timeout);
/* A bounded semaphore (asyncio.BoundedSemaphore): as coro_sem_new, but
 * it never holds more than value permits, its initial count. A release
 * that would pass it is refused with EINVAL (asyncio's ValueError): a
 * release without its acquire is a bug, caught where it happens instead of
 * widening the limit for good. Free it with coro_sem_free.
 * Returns: the semaphore, or NULL with errno ENOMEM. */
CORO_API coro_sem *coro_sem_new_bounded(unsigned value);
/* Gives a permit back, to the first waiter if any. Never suspends.
 * Returns: 0; EINVAL (NULL, another thread's, or a bounded semaphore that
 *          holds its initial count already); EOVERFLOW past UINT_MAX. */
CORO_API int coro_sem_release(coro_sem *s);

/* The permits s holds now (what asyncio keeps in Semaphore._value). While
 * tasks wait it is 0: a release goes straight to the first of them.
 * Never suspends; callable anywhere.
 * Returns: 0 also for NULL or another thread's semaphore. Cost: O(1). */
CORO_API unsigned coro_sem_value(const coro_sem *s);

/* Whether an acquire would wait now: 1 when s has no permit or tasks wait
 * for one already, else 0 (asyncio's Semaphore.locked(), which also
 * counts a waiter that a release has woken and that has not yet run:
 * here it waits no more, see await_sem_acquire). Never suspends;
 * callable anywhere.
 * Returns: 0 also for NULL or another thread's semaphore. Cost: O(1). */
CORO_API int coro_sem_locked(const coro_sem *s);
CORO_API int coro_sem_free(coro_sem *s);

/* Event: asyncio.Event, a flag tasks can wait for. */
typedef struct coro_event coro_event;
CORO_API coro_event *coro_event_new(void);
/* Returns at once if the event is set, else waits until it is. */
CORO_API int await_event(coro_event *e, double timeout);
/* Sets it and wakes every waiter; a waiter woken returns 0 even if the
 * event is cleared again before it runs. */
CORO_API void coro_event_set(coro_event *e);
CORO_API void coro_event_clear(coro_event *e);
CORO_API int coro_event_is_set(const coro_event *e);
CORO_API int coro_event_free(coro_event *e);

/* Condition: asyncio.Condition, over a coro_mutex. */
typedef struct coro_cond coro_cond;
CORO_API coro_cond *coro_cond_new(void);

/* Releases m (which the caller must hold: EPERM otherwise), waits for a
 * notify, and takes m again before returning, also on ETIMEDOUT and
 * ECANCELED: taking it back is shielded from cancellation and not bounded
 * by the timeout, which covers only the wait for a notify. No spurious
 * wake-ups. EINVAL if other tasks wait on c with another mutex. */
CORO_API int await_cond_wait(coro_cond *c, coro_mutex *m, double timeout);

/* Waits on c until pred(arg) returns non-zero (asyncio's
 * Condition.wait_for). pred is called with m held: once before any wait,
 * then after each notify that wakes the caller, once m is taken back.
 * The timeout covers the whole wait, however many notifies find the
 * predicate false. As with await_cond_wait, m is released while the
 * caller waits and held again on every return but EINVAL and EPERM. pred
 * runs in the caller and must not suspend.
 * Returns: 0 once pred holds (at once, without waiting, if it holds at
 *          the start); ETIMEDOUT and ECANCELED without asking pred again
 *          (m is held: look at the state itself); EPERM if the caller does
 *          not hold m, even if pred would hold (asyncio lets a true
 *          predicate through unlocked); EINVAL for pred NULL, or other
 *          tasks waiting on c with another mutex (checked at each wait).
 * Cost: one call of pred per wake-up, and the mutex handed back and forth
 *       once per wait, as await_cond_wait. */
CORO_API int await_cond_wait_for(coro_cond *c, coro_mutex *m,
                                 int (*pred)(void *arg), void *arg,
                                 double timeout);
/* Wakes the first n waiters. The caller need not hold the mutex, where
 * asyncio's notify raises RuntimeError without the lock. */
CORO_API int coro_cond_notify(coro_cond *c, size_t n);
CORO_API int coro_cond_notify_all(coro_cond *c);
CORO_API int coro_cond_free(coro_cond *c);

/* Barrier: asyncio.Barrier. A fixed number of tasks, its parties, meet:
 * each waits at the barrier until all of them are there, and then all go
 * on together, leaving it empty for the next round.
 *
 * Two things differ from asyncio, both because the barrier hands off
 * directly, as every object here does:
 * - There is no draining phase. The last to arrive hands every waiter its
 *   index and wakes it, so the round is over before any of them runs:
 *   the barrier takes the next round's tasks at once, and a reset or an
 *   abort after the trip reaches only those. asyncio holds new arrivals
 *   back until the released tasks have left, and a reset meanwhile fails
 *   those of them that had not yet run. So a reset by the last task to
 *   leave a round fails the others' next wait here, where asyncio's lets
 *   it through (CPython's test_reset_barrier_while_tasks_draining, which
 *   then waits for them, deadlocks here).
 * - Indices are given at the trip, so a waiter that left leaves no gap
 *   (asyncio counts at arrival, and may give one index twice then).
 * A waiter that times out or is cancelled leaves the round, which waits
 * for one more: that does not break the barrier, as in asyncio (where
 * the timeout is a cancellation) and unlike threading.Barrier, whose
 * timeout breaks it: call coro_barrier_abort on ETIMEDOUT for that.
 *
 * Returns: the barrier, or NULL with errno EINVAL (parties 0) or ENOMEM.
 * Ownership: the caller's; free it with coro_barrier_free. */
typedef struct coro_barrier coro_barrier;
CORO_API coro_barrier *coro_barrier_new(unsigned parties);

/* Waits until parties tasks wait at b, then returns 0 in all of them,
 * with *index (when index is not NULL) the caller's place in the round:
 * 0 for the first to arrive, up to parties - 1 for the last, which does
 * not suspend (asyncio's wait() returns it). The caller writes *index
 * itself once it runs again, so index may point into its own stack, even
 * a shared one.
 * Returns: EPIPE if b is broken (coro_barrier_abort) or gets broken or
 *          reset while the caller waits (asyncio's BrokenBarrierError);
 *          ETIMEDOUT and ECANCELED: the caller left the round, which goes
 *          on without it.
 * Cost: O(1) to wait; the last arrival wakes the others, O(parties). */
CORO_API int await_barrier_wait(coro_barrier *b, double timeout,
                                unsigned *index);

/* Fails every task waiting at b with EPIPE and makes b whole and empty
 * again, broken or not (asyncio's reset()). Never suspends: asyncio's is
 * a coroutine only to take the lock of its condition.
 * Returns: 0, or EINVAL (NULL, another thread's barrier). */
CORO_API int coro_barrier_reset(coro_barrier *b);

/* Breaks b (asyncio's abort()): every task waiting at it, and every later
 * await_barrier_wait until coro_barrier_reset, gets EPIPE. For a party
 * that failed and will never arrive. Never suspends.
 * Returns: 0, or EINVAL (NULL, another thread's barrier). */
CORO_API int coro_barrier_abort(coro_barrier *b);

/* asyncio's parties, n_waiting and broken: the tasks b waits for, the
 * tasks waiting at it now (0 in a broken barrier, as nobody waits there),
 * and whether it is broken (1) or not (0). Never suspend; callable
 * anywhere. 0 for NULL or another thread's barrier. */
CORO_API unsigned coro_barrier_parties(const coro_barrier *b);
CORO_API unsigned coro_barrier_waiting(const coro_barrier *b);
CORO_API int coro_barrier_broken(const coro_barrier *b);

/* Frees b. EBUSY while tasks wait at it. */
CORO_API int coro_barrier_free(coro_barrier *b);

/* ======================================================================
 * Task-local values: contextvars (ContextVar, get, set)
 *
 * A key names one value per task, as a ContextVar does, or a pthread key
 * one per thread. A task starts with the values its spawner held when it
 * spawned it, as create_task runs the new task in a copy of the current
 * context; from then on each task's sets are its own, seen by the tasks it
 * spawns afterwards and by no other. Values are void *: a key never set,
 * or set to NULL, reads NULL (a ContextVar's default).
 *
 * Keys are process-wide, as pthread keys are: make one once (before any
 * loop, or from any thread at any time) and use it in every loop. At most
 * CORO_KEYS_MAX keys live at once.
 *
 * Outside a coroutine (coro_run's caller, a worker thread in a blocking
 * call) there is no task and so no value: coro_local_get returns NULL and
 * coro_local_set is EPERM. coro_run's main starts with no values, where
 * asyncio.run's main task copies its caller's context: pass what main
 * needs in arg.
 *
 * Destructors. For a key with a destructor, a value handed to
 * coro_local_set is coro's from then on, and its destructor runs once,
 * when no task holds the value any more: when the task that set it and
 * every task that inherited it have each replaced it (another
 * coro_local_set) or ended, in whatever order. So no task ever reads a
 * value destroyed under it. Do not free such a value yourself, and do not
 * hand one pointer to coro_local_set in two tasks (that makes two owners,
 * and two destructor calls); setting the value the task already holds
 * does nothing.
 *
 * When they run, and where. A value let go by coro_local_set is destroyed
 * before that call returns. At a task's end, the values it lets go are
 * destroyed in the task itself, on its stack, after its function returned
 * and before it counts as ended: before its joiner wakes, before the
 * CORO_TASK_END event, before coro_run returns. coro_self() is then the
 * ending task (not necessarily the one that set the value, if that one
 * ended first). No key reads the value being destroyed any more: at a
 * task's end its key reads NULL, and the task's other values read as
 * before until their turn. A destructor may call any
 * coro_* call; it should not wait (an await_* there does wait, and holds
 * the task's end back). A value set by a destructor is destroyed in turn,
 * for up to four rounds in all (pthread's PTHREAD_DESTRUCTOR_ITERATIONS);
 * what is set during the fourth is let go without its destructor. A task
 * that coro_run abandons without letting it end (shielded clean-up that
 * deadlocked) has its values destroyed as coro_run frees it, on the
 * caller's stack, outside any task. Once a key is deleted, no destructor
 * runs for its values.
 *
 * Memory: a task that never sets a value costs nothing; one that inherits
 * values shares its spawner's until either sets one. Everything is freed
 * with the tasks.
 * ====================================================================== */

/* A key: one value per task. 0 is never a key, so a zeroed coro_key reads
 * NULL and sets nothing (EINVAL) until coro_key_new fills it in. */
typedef unsigned long long coro_key;

/* How many keys may live at once in a process (pthread's is 1024). */
#define CORO_KEYS_MAX 128

/* Makes a key (contextvars.ContextVar(name); pthread_key_create). Every
 * task's value for it starts NULL.
 * destructor: NULL, or what to call on each non-NULL value once no task
 *             holds it (see above).
 * Returns: 0 with *key set; EINVAL (key NULL); EAGAIN (CORO_KEYS_MAX keys
 *          live already).
 * Callable anywhere, from any thread, as coro_key_delete.
 * Cost: lock-free; O(CORO_KEYS_MAX) at worst. */
CORO_API int coro_key_new(void (*destructor)(void *), coro_key *key);

/* Deletes key (pthread_key_delete; a ContextVar is never deleted, it goes
 * with its last reference). From then on, in every task, coro_local_get
 * reads NULL for it and coro_local_set is EINVAL, and its slot may go to a
 * new key, which never sees the old values. The values set under it are
 * not destroyed, now or when their tasks end: free them yourself if they
 * need it. A destructor of key already running on another thread's loop
 * is not waited for.
 * Returns: 0, or EINVAL (not a live key: deleted already, or never made).
 * Ownership: the memory coro kept for the values is freed with their
 *            tasks. */
CORO_API int coro_key_delete(coro_key key);

/* The calling task's value for key (ContextVar.get(None);
 * pthread_getspecific).
 * Returns: the value, or NULL: none set, key not live, or outside a
 *          coroutine. Never sets errno.
 * Cost: O(1): two loads and a compare. */
CORO_API void *coro_local_get(coro_key key);

/* Sets the calling task's value for key (ContextVar.set): the tasks it
 * spawns from now on start with it; tasks spawned before keep theirs, as
 * the spawner keeps its own when they set theirs. NULL clears the value.
 * The value replaced, if its key has a destructor and no other task holds
 * it, is destroyed before this returns. There is no Token and reset(): for
 * a key without a destructor, keep what coro_local_get returned and set it
 * back.
 * Returns: 0; EINVAL (key not live); EPERM (outside a coroutine); ENOMEM
 *          (nothing changed).
 * Ownership: with a destructor, value is coro's from now on (see above).
 * Cost: O(1) and one allocation of 32 bytes; the first set after a spawn,
 *       in the spawner or the spawned, also copies the values the two
 *       shared: 8 bytes a key, up to the highest key set. */
CORO_API int coro_local_set(coro_key key, void *value);

/* ======================================================================
 * Seeing inside: asyncio's all_tasks() and debug mode, Go's SIGQUIT dump
 *
 * Environment variables, read by each coro_run:
 *   CORO_TRACE=file.json  writes a Chrome trace-event file of every loop of
 *       the process (open it in Perfetto or chrome://tracing): one track per
 *       task with its running, ready and parked intervals, each parked one
 *       named for what it waited on. Each loop is a process in the trace.
 *       Whenever no loop runs, the file is a whole JSON array; a later
 *       coro_run in the same process goes on writing it, and a new path
 *       starts a new file.
 *   CORO_DEBUG=1  warns on stderr, naming the task and its spawn site, when
 *       a task runs more than 100 ms without suspending (it starves the
 *       others), when a task that failed is freed without anyone having
 *       joined it, when a task ends holding a coro_mutex, and when tasks
 *       are still alive as main returns.
 *   CORO_ACCOUNTING=1  keeps each task's accounts: time spent running,
 *       times run, longest run (coro_set_accounting).
 *   CORO_WATCHDOG=0.1  reports a task that runs longer than that many
 *       seconds without suspending, while it runs (coro_set_watchdog).
 * None costs anything when unset but one test per task event.
 *
 * In a debugger: gdb/coro-gdb.py (make install puts it where gdb loads it
 * for libcoro.so; else `source` it) adds `info coro`, which lists the
 * tasks of every loop of the process, and `coro bt ID`, the backtrace of
 * a parked task, in a live process or a core file. The README shows them.
 * ====================================================================== */

/* Lists the tasks of this thread's loop (asyncio.all_tasks()): stores up
 * to cap of them in out, in spawn order, and returns how many there are,
 * so that a first call with cap 0 sizes the array (out NULL stores
 * nothing, whatever cap says).
 *
 * Which tasks: every task the loop still holds, as coro_dump lists them:
 * ready, running (the caller), parked, and ended but not joined yet, main
 * included. asyncio.all_tasks leaves the done ones out, but an ended task
 * here still has a result to collect and a pointer to free: filter with
 * coro_task_done for asyncio's set.
 * Returns: the number of tasks, which may be more than cap; 0 where no loop
 *          runs.
 * Ownership: the pointers stay valid until the caller suspends (any
 *            await_*: other tasks may end and be freed meanwhile) or frees
 *            a task itself (a join, or coro_detach of an ended task).
 * Cost: O(min(cap, tasks)). */
CORO_API size_t coro_tasks(coro_task **out, size_t cap);

/* A task's state, in coro_task_info. */
enum coro_task_state {
    CORO_STATE_READY,   /* in the ready queue: spawned, woken or yielded */
    CORO_STATE_RUNNING, /* running: the caller */
    CORO_STATE_PARKED,  /* waiting; wait says for what */
    CORO_STATE_ENDED    /* its function returned; not joined yet */
};

/* What coro_task_info fills in: a snapshot that stays readable after the
 * task is gone (its strings are copied or static). */
struct coro_task_info {
    unsigned long long   id;            /* 1, 2, ... in spawn order per
                                           loop (coro_task_event.task) */
    char                 name[32];      /* coro_name(t), copied */
    enum coro_task_state state;
    const char          *wait;          /* parked: what for, as
                                           coro_task_event.reason names it
                                           ("sleep", "join", "read fd",
                                           "channel receive", "mutex"...);
                                           else NULL */
    const void          *wait_object;   /* parked on a channel, queue,
                                           mutex, semaphore, event,
                                           condition, future or thread
                                           channel: that object; "join":
                                           the task joined; else NULL */
    unsigned long long   wait_task;     /* the id of the task it waits for:
                                           the task joined, or the holder
                                           of the mutex (0: held by no task
                                           of this loop); else 0 */
    size_t               wait_tasks;    /* "join", "gather", "wait": how
                                           many tasks it awaits; else 0 */
    size_t               wait_pending;  /* of those, how many have not
                                           ended */
    int                  wait_fd;       /* "read fd", "write fd": the fd;
                                           else -1 */
    double               wait_deadline; /* when its wait times out, in
                                           coro_now() seconds; -1: never,
                                           or not parked */
    double               since;         /* when it last parked, was woken,
                                           spawned or ended, in coro_now()
                                           seconds, good to a few ms (a
                                           yield does not count): how long
                                           it has been in its state, as
                                           coro_dump tells. Kept as ms
                                           modulo 2^32: a state older than
                                           49.7 days reads that much
                                           younger */
    int                  error;         /* ended: what await_task will
                                           return (coro_task_result); 0
                                           while it has not ended */
    int                  cancelling;    /* coro_task_cancelling(t) */
    int                  cancelled;     /* coro_task_cancelled(t) */
    int                  shielded;      /* it holds a shield (coro_shield) */
    unsigned long long   awaited_by;    /* the id of the task joining,
                                           gathering or waiting for it;
                                           0: none */
    const char          *site;          /* "file.c:42" of the coro_spawn
                                           macro that made it; NULL when
                                           the plain function did */
    const void          *spawn_pc;      /* where the plain function was
                                           called from (a return address,
                                           for addr2line); NULL when site
                                           says where */
    size_t               stack_size;    /* bytes of its stack; for a
                                           shared-stack task, the shared
                                           stack's */
    size_t               stack_used;    /* coro_stack_high_water(t) */
    int                  shared_stack;  /* spawned with CORO_SHARED_STACK */
    /* Its accounts, kept while the loop observes its tasks (see
     * coro_set_accounting); 0 for what happened while nobody did: */
    double               run_time;      /* seconds it spent running, its
                                           present run included */
    unsigned long long   runs;          /* times it was given the thread:
                                           its start and every resume */
    double               longest_run;   /* its longest single run, in
                                           seconds */
};

/* Fills *info with t's state and what it waits on, as data: coro_dump's
 * line for t is written from it, so the two always agree. Named as stat(2)
 * and struct stat are: the call and the struct share the name. asyncio
 * has no one twin: a Task's repr, done() and its _fut_waiter tell as much.
 * Returns: 0, or EINVAL (t NULL or not a task of this thread's loop; info
 *          NULL).
 * Cost: O(1), plus coro_stack_high_water's scan of t's stack. */
CORO_API int coro_task_info(const coro_task *t, struct coro_task_info *info);

/* Writes one line per task of this thread's loop to out: its id, name,
 * state (ready, running, sleeping and for how long yet, joining task N,
 * waiting to read fd F, in a blocking call, on a channel, on a mutex held
 * by task N, ended but not joined ...), for how long it has been in that
 * state, its spawn site (file:line, from the coro_spawn macro, else the
 * caller's address), its stack size and high-water mark. The time in a
 * state is good to a few milliseconds: so that parking reads no clock,
 * the loop reads one as it sleeps, fires timers, or every 64 switches, so
 * a task that ran long without suspending can add its run to the figure.
 * Does nothing outside a loop, or with out NULL. coro_run prints it to stderr by itself when
 * it finds a deadlock, before cancelling the tasks. Each line is
 * coro_task_info's snapshot of a task, in words.
 * Cost: O(tasks), plus a scan of each own stack for its high-water mark. */
CORO_API void coro_dump(FILE *out);

/* The most bytes of stack t has used: for a task on a stack of its own,
 * the deepest any task using that stack went since it was mapped (stacks
 * are pooled: size them for the deepest of their kind); for a shared-stack
 * task, the most bytes of frames it parked with. 0 if t is NULL or not a
 * task of this thread's loop (another thread's stack is not read).
 * Cost: a scan of the stack's resident pages. */
CORO_API size_t coro_stack_high_water(const coro_task *t);

/* Per-task accounting: Go's proposal of per-goroutine CPU time
 * (golang/go#41554), which asyncio lacks. With on, this thread's loop (if
 * one runs) and the loops this thread starts from now on keep, for each
 * task, the time it spent running, how many times it was given the thread
 * and its longest single run: coro_task_info's run_time, runs and
 * longest_run, coro_dump's "ran" column, and the args of the running
 * intervals in a CORO_TRACE file. A task's running time is the thread's
 * wall-clock time while the task held it (CLOCK_MONOTONIC), so time the
 * kernel took the CPU away, or a blocking system call the task made,
 * counts; its blocking calls on the worker threads (await_blocking) do
 * not, since it is parked meanwhile.
 * The accounts are kept while anything observes the loop's tasks: this
 * setting (or CORO_ACCOUNTING=1 for loops before any call), CORO_TRACE,
 * CORO_DEBUG, a task hook or the watchdog. Turned on while tasks run, it
 * counts from then on, the calling task's run included.
 * Returns: the previous setting, of the running loop, else of this thread.
 * Cost: off, nothing but one untaken branch per switch; on, one read of
 *       the clock per switch (the run that ends and the one that starts
 *       share it) and two calls: about 27 ns a switch on the development
 *       machine, most of it the clock (the README has the figures). The
 *       call itself, turning accounting on while tasks run: O(tasks). */
CORO_API int coro_set_accounting(int on);

/* The stall watchdog: reports a task that runs longer than seconds without
 * suspending, at that moment, on stderr:
 *   coro: stall: task #3 "parse" (app.c:42) has run 100 ms without
 *   suspending; the other tasks of its loop wait. It is at:
 * followed by the backtrace of where the task runs now, one frame a line
 * as object(+offset)[address] (addr2line -f -e object offset names the
 * function and its file:line), and again as it suspends:
 *   coro: stall over: task #3 "parse" (app.c:42) suspended after running
 *   1204 ms
 * A loop that waits in the kernel, or whose tasks are all parked, is
 * never reported. asyncio's debug mode (slow_callback_duration) reports
 * only after the fact, as CORO_DEBUG does.
 * Applies to this thread's loop (if one runs) and the loops this thread
 * starts from now on; CORO_WATCHDOG=seconds does it for loops started
 * before any call. Turns accounting on while it is on.
 * How: one thread of coro's, for the whole process, wakes when a run could
 * pass the limit and sends SIGURG to the loop's thread, whose handler
 * writes the report (with write(2), on the thread's alternate signal
 * stack). Like any signal, it cuts short a system call the task is
 * blocked in if SA_RESTART cannot restart it (nanosleep, poll: EINTR),
 * once per stall. A program that handles SIGURG itself must install its
 * handler before the watchdog starts: the watchdog passes on every SIGURG
 * that is not its own. A thread that blocks SIGURG gets no report.
 * seconds: the limit; 0 or less turns the watchdog off.
 * Returns: 0; EINVAL (NaN, or below 0.001 s); EAGAIN (no thread for the
 *          watchdog).
 * Cost: off, nothing; on, accounting's cost per switch and three stores,
 *       and at most one wake-up of the watchdog's thread per limit and
 *       loop while nothing stalls. */
CORO_API int coro_set_watchdog(double seconds);

/* With on, a SIGQUIT makes this thread's loop print coro_dump to stderr at
 * its next turn, as Go does for its goroutines (the signal itself only
 * writes a byte to a pipe). Installs a SIGQUIT handler for the process,
 * which, when no loop wants the dump, does what SIGQUIT would have done.
 * Stays on until coro_run returns or it is called with 0.
 * Returns: 0; EPERM outside a coroutine; EMFILE and the like (no pipe). */
CORO_API int coro_dump_on_sigquit(int on);

/* What happened to a task, for coro_set_task_hook. */
enum coro_task_event_kind {
    CORO_TASK_SPAWN, /* created: it waits in the ready queue */
    CORO_TASK_RUN,   /* starts or resumes running */
    CORO_TASK_PARK,  /* stops to wait; reason says for what */
    CORO_TASK_READY, /* woken, or it yielded: back in the ready queue */
    CORO_TASK_END    /* its function returned */
};

typedef struct coro_task_event {
    enum coro_task_event_kind kind;
    double               time;   /* coro_now() when it happened */
    unsigned long long   task;   /* the task's id: 1, 2, ... per loop */
    const char          *name;   /* coro_name of the task */
    const char          *reason; /* for PARK: "sleep", "join", "gather",
                                    "wait", "read fd", "write fd",
                                    "blocking call", "channel send",
                                    "channel receive", "select",
                                    "queue put", "queue get", "queue join",
                                    "mutex", "semaphore", "event",
                                    "condition", "as completed",
                                    "task group", "barrier", "future",
                                    "thread channel send",
                                    "thread channel receive"; else NULL */
} coro_task_event;

typedef void (*coro_task_hook_fn)(const coro_task_event *ev, void *arg);

/* Has fn(ev, arg) called at every task event of the loops this thread
 * starts from now on (NULL: none), on the loop's thread, as it happens:
 * the material for timelines and custom tools. fn must not call await_*,
 * spawn, cancel or anything else that changes tasks. The strings live only
 * for the call. */
CORO_API void coro_set_task_hook(coro_task_hook_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* CORO_H */
