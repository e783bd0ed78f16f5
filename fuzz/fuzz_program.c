/* fuzz_program.c: a libFuzzer target that runs random programs of task
 * operations on coro and checks, after every step, what coro.h promises.
 *
 * An input is a program. Its first byte is a header (how main ends, and
 * whether allocations fail); the rest are operations, one byte each
 * followed by their operand bytes, that coro_run's main task executes in
 * order. SPAWN and NESTED take the bytes after their operands as a program
 * of their own: the new task's operations, or a whole program (header
 * first) that a blocking call runs with coro_run on a worker thread. So
 * programs nest as the bytes do, and a mutation changes one task at a time.
 *
 *   byte % 16  operation     operands
 *   0, 15      SPAWN         len, mode; then len bytes: the task's program
 *   1          SLEEP         d: a yield, or 0.1 to 2 ms
 *   2          YIELD
 *   3          CANCEL        who
 *   4          JOIN          who (await_task)
 *   5          JOIN_TIMEOUT  who, timeout (await_task_timeout)
 *   6          GATHER        n, who x n
 *   7          WAIT          how (when, timeout), n, who x n
 *   8          DETACH        who
 *   9          BLOCKING      how (duration, errno): await_blocking
 *   10         NESTED        len; then len bytes: a program that a blocking
 *                            call runs with coro_run on its worker thread
 *   11         SHIELD        on
 *   12         FAIL          e: coro_fail in the middle of the task
 *   13         MISUSE        what: a call coro.h says must fail
 *   14         LOOK          who: coro_name, coro_stack_high_water, coro_dump
 *
 * "who" picks, modulo their number, one of the run's tasks whose handle is
 * still valid: main and the caller included, ended ones included. A SPAWN's
 * mode says the stack (default, 16 KiB, shared, or a bad attr), how the
 * task ends (returning a token, NULL, coro_fail(e), or coro_fail(e) and
 * the token), which e, and whether it is named; a header's middle bits say
 * the same for main, and its two top bits, in the input's own run, turn on
 * allocation failures. Missing operand bytes read as 0. Sleeps, timeouts
 * and blocking durations come out of a budget of 10 ms per run, so an input
 * takes a few tens of ms at most.
 *
 * The model. Each task's life is recorded in a struct rec, in memory this
 * file owns, never coro's: started, ended, freed, detached, shielded,
 * cancelled, its coro_fail error and result, what it is blocked in. From
 * the records every call's outcome is predicted, or bounded where timing
 * decides (a timeout against a task's end), following coro.h. Whether a
 * task is cancelled is NO, MAYBE or YES: a join that can time out, or a
 * joiner that is cancelled, cancels what it waits on at a moment the model
 * does not see, so those tasks are MAYBE until they show it. A deadlock is
 * seen exactly: coro_run prints its report before cancelling every task,
 * and this file reads coro's stderr (see the filter below).
 *
 * Checked at every step of every task: it is not freed, it runs on its own
 * loop's thread as coro_self(), its errno is its own; every task the model
 * holds a handle to still has its name (and LOOK: coro_dump lists exactly
 * those tasks). At every call's return: the result or error the model
 * allows; a joined task has ended and its result is what its function
 * returned. After coro_run: every spawned task started once and ended at
 * most once, and one that never ended was left blocked, in a join, gather
 * or wait, on a task that never ended either (a deadlock: coro_run frees
 * such tasks without running them further); coro_run returned main's
 * outcome, or EDEADLK exactly when it reported a deadlock; and (for the
 * input's own run) coro's allocation counters are back to zero. Any
 * violation aborts, and libFuzzer reports the input.
 *
 * Run one input: build/fuzz/fuzz_program FILE. CORO_FUZZ_TRACE=1 prints
 * each task's operations and what they returned; CORO_FUZZ_VERBOSE=1 lets
 * the runtime's deadlock reports through to stderr.
 */
#include "internal.h" /* coro.h, and coro__alloc_stats for the leak check */

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TASKS 48        /* tasks per run; further spawns are skipped */
#define MAX_SET 4           /* tasks per gather or wait */
#define MAX_DEPTH 2         /* runs nested in blocking calls, deep */
#define MAX_NESTED 3        /* nested runs per input */
#define TIME_BUDGET 0.010   /* s of sleeps, timeouts, blocking per run */

/* Whether a task is cancelled, as far as the model knows. */
enum tri { NO, MAYBE, YES };

/* The call a task is inside, while other tasks run. */
enum blk { B_NONE, B_SLEEP, B_BLOCKING, B_JOIN, B_GATHER, B_WAIT };

enum op {
    OP_SPAWN, OP_SLEEP, OP_YIELD, OP_CANCEL, OP_JOIN, OP_JOIN_TIMEOUT,
    OP_GATHER, OP_WAIT, OP_DETACH, OP_BLOCKING, OP_NESTED, OP_SHIELD,
    OP_FAIL, OP_MISUSE, OP_LOOK, OP_SPAWN2, NOPS
};

/* Bits of a SPAWN's mode byte, and of a program's header byte. */
#define MODE_STACK(m) ((m) & 3u)        /* spawn: default, 16K, shared, bad */
#define MODE_END(m) (((m) >> 2) & 3u)   /* return the token, NULL,
                                           coro_fail(e), coro_fail(e) and
                                           the token */
#define MODE_ERR(m) (((m) >> 4) & 3u)   /* e, from fail_errs */
#define MODE_NAMED 0x40u                /* spawn: coro_attr.name */
#define HEAD_FAIL 0xc0u                 /* header: both bits inject
                                           allocation failures */

static const int fail_errs[] = { EIO, EPIPE, ENOENT, ECANCELED };

/* A blocking call's argument: never on a task's stack, which a
 * shared-stack task does not keep in place while it waits. */
struct job {
    unsigned       usec;       /* how long fn blocks */
    int            err;        /* the errno fn leaves */
    const uint8_t *prog;       /* NESTED: the program to coro_run */
    size_t         len;
    int            depth;      /* NESTED: the nested run's depth */
    int            fail;       /* NESTED: failures are injected */
    coro_task     *outer;      /* NESTED: the caller, of another loop */
    atomic_int     ran;        /* times fn ran */
};

/* One task, as the model sees it. */
struct rec {
    struct run    *run;
    coro_task     *t;          /* its handle; valid until freed */
    int            idx;        /* in run->recs; main is 0 */
    const uint8_t *ops;        /* its program */
    size_t         nops;
    uint8_t        mode;       /* how it was spawned and how it ends */
    int            errno_mark; /* the errno it keeps between its steps */
    int            starts;     /* times its function started */
    int            ends;       /* times its function returned */
    int            freed;      /* joined, or detached and ended */
    int            detached;
    int            shield;     /* coro_shield in effect */
    enum tri       cx;         /* cancelled */
    int            error;      /* the coro_fail error in effect */
    void          *ret;        /* what its function returned */
    unsigned long  end_seq;    /* 1, 2, ... in the order tasks ended */
    int            end_err[2]; /* what await_task may report for it: one
                                  value twice, or 0 and ECANCELED */
    enum blk       blk;        /* the call it is in */
    int            timed;      /* that call has a timeout */
    enum coro_when when;       /* B_WAIT: its condition */
    int            nt;         /* B_JOIN, B_GATHER, B_WAIT: the tasks */
    int            targets[MAX_SET];
    int            waiter;     /* the task inside a join, gather or wait
                                  on this one, or -1 */
    struct job     job;        /* its blocking call's argument */
};

/* One coro_run: the input's own, or one nested in a blocking call. */
struct run {
    const uint8_t *prog;       /* header, then main's program */
    size_t         len;
    int            depth;      /* 0: the input's run */
    int            fail;       /* allocation failures are being injected */
    coro_task     *outer;      /* nested: the task whose blocking call runs
                                  this one (another loop's) */
    int            n;          /* records in use: the tasks spawned */
    struct rec     recs[MAX_TASKS];
    enum tri       closing;    /* main ended or deadlock: tasks spawned
                                  now are born cancelled */
    int            deadlocked; /* coro_run reported a deadlock */
    unsigned       reports;    /* tls_reports when last looked */
    unsigned long  end_seq;    /* tasks ended so far */
    double         budget;     /* seconds left for sleeps, timeouts and
                                  blocking calls */
};

/* A cursor over a task's program. */
struct cursor {
    const uint8_t *b;
    size_t         n;
    size_t         pc;
};

static char untouched_byte;
#define UNTOUCHED ((void *)&untouched_byte)

static int verbose;                      /* CORO_FUZZ_VERBOSE */
static int tracing;                      /* CORO_FUZZ_TRACE */
static atomic_int nested_left;           /* nested runs this input may
                                            still start */
static __thread struct run *tls_run;      /* the run on this thread */
static __thread unsigned tls_reports;     /* deadlock reports printed on
                                            this thread */

/* ----------------------------------------------------------------------
 * Reporting a violation
 * ---------------------------------------------------------------------- */

static _Noreturn void violation(int line, const char *cond, const char *fmt,
                                ...) __attribute__((format(printf, 3, 4)));

static _Noreturn void violation(int line, const char *cond, const char *fmt,
                                ...)
{
    va_list ap;
    dprintf(STDERR_FILENO, "fuzz_program.c:%d: broken: %s: ", line, cond);
    va_start(ap, fmt);
    vdprintf(STDERR_FILENO, fmt, ap);
    va_end(ap);
    dprintf(STDERR_FILENO, "\n");
    abort();
}

#define CHECK(cond, ...) \
    ((cond) ? (void)0 : violation(__LINE__, #cond, __VA_ARGS__))

struct rec;
static void note(const struct rec *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ----------------------------------------------------------------------
 * coro's stderr. The runtime prints a report when it finds a deadlock,
 * before it cancels every task (coro.h, coro_run): the one event the
 * model cannot infer. stdio's stderr is pointed at this filter, which
 * counts the reports per thread and drops them and the task dump after
 * them (routine while fuzzing); every other line goes to fd 2 as before.
 * libFuzzer and the sanitizers write to fd 2 themselves.
 * ---------------------------------------------------------------------- */

static __thread char tls_line[512];
static __thread size_t tls_line_len;

static int starts_with(const char *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && memcmp(s, prefix, k) == 0;
}

static void line_done(void)
{
    const char *s = tls_line;
    size_t n = tls_line_len;
    int report = 0;
    tls_line_len = 0;
    if (starts_with(s, n, "coro: deadlock:")) {
        tls_reports++;
        report = 1;
    } else if (starts_with(s, n, "coro: ") && n > 30 &&
               memmem(s, n, " in this thread's loop:", 23)) {
        report = 1;
    } else if (starts_with(s, n, "  #")) {
        report = 1;
    }
    if (!report || verbose) {
        ssize_t w = write(STDERR_FILENO, s, n);
        (void)w;
    }
}

static ssize_t stderr_write(void *cookie, const char *buf, size_t n)
{
    (void)cookie;
    for (size_t i = 0; i < n; i++) {
        tls_line[tls_line_len++] = buf[i];
        if (buf[i] == '\n' || tls_line_len == sizeof tls_line)
            line_done();
    }
    return (ssize_t)n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *v = getenv("CORO_FUZZ_VERBOSE");
    verbose = v && *v && strcmp(v, "0") != 0;
    v = getenv("CORO_FUZZ_TRACE");
    tracing = v && *v && strcmp(v, "0") != 0;
    cookie_io_functions_t io = { .write = stderr_write };
    FILE *filter = fopencookie(NULL, "w", io);
    if (!filter) {
        perror("fuzz_program: setting up stderr");
        exit(1);
    }
    setvbuf(filter, NULL, _IONBF, 0);
    stderr = filter; /* glibc's stderr is a variable; fd 2 stays as is */
    return 0;
}

/* ----------------------------------------------------------------------
 * The model
 * ---------------------------------------------------------------------- */

/* CORO_FUZZ_TRACE: one line per operation of a task. */
static void note(const struct rec *r, const char *fmt, ...)
{
    if (!tracing)
        return;
    va_list ap;
    dprintf(STDERR_FILENO, "fuzz: run %d (%p) task %d: ", r->run->depth,
            (void *)r->run, r->idx);
    va_start(ap, fmt);
    vdprintf(STDERR_FILENO, fmt, ap);
    va_end(ap);
    dprintf(STDERR_FILENO, "\n");
}

static unsigned next(struct cursor *c)
{
    return c->pc < c->n ? c->b[c->pc++] : 0;
}

/* Takes s seconds out of the run's time budget; what it cannot pay
 * becomes 0 (a yield, or a timeout that only checks). */
static double charge(struct run *run, double s)
{
    if (s <= 0)
        return s;
    if (run->budget < s)
        return 0;
    run->budget -= s;
    return s;
}

/* One of the tasks whose handle is valid, chosen by b; -1 if none. */
static int pick(const struct run *run, unsigned b)
{
    int usable[MAX_TASKS];
    int n = 0;
    for (int i = 0; i < run->n; i++)
        if (!run->recs[i].freed)
            usable[n++] = i;
    return n ? usable[b % (unsigned)n] : -1;
}

static const char *expected_name(const struct rec *r)
{
    if (r->idx == 0)
        return "main";
    return r->mode & MODE_NAMED ? "fuzz-task" : "task_main";
}

/* Raises what the model knows of task i's cancellation. A task inside a
 * join or gather, unshielded, that is cancelled wakes and cancels what it
 * waits on (structured joins): those may end cancelled. An ended task is
 * past cancelling. */
static void mark_cancel(struct run *run, int i, enum tri level)
{
    struct rec *r = &run->recs[i];
    if (r->ends || r->cx >= level)
        return;
    r->cx = level;
    if ((r->blk == B_JOIN || r->blk == B_GATHER) && !r->shield)
        for (int k = 0; k < r->nt; k++)
            mark_cancel(run, r->targets[k], MAYBE);
}

/* Catches up with a deadlock report printed since the last look: coro_run
 * has cancelled every task, and new ones are born cancelled. */
static void sync_reports(struct run *run)
{
    if (tls_reports == run->reports)
        return;
    run->reports = tls_reports;
    run->deadlocked = 1;
    run->closing = YES;
    for (int i = 0; i < run->n; i++)
        if (!run->recs[i].ends)
            run->recs[i].cx = YES;
}

static int ended_with(const struct rec *t, int err)
{
    return err == t->end_err[0] || err == t->end_err[1];
}

/* The model's own bookkeeping, and every valid handle still names its
 * task (a task freed early would be a use after free here, under ASan,
 * or a stranger's name once its memory is reused). */
static void check_model(const struct run *run)
{
    for (int i = 0; i < run->n; i++) {
        const struct rec *r = &run->recs[i];
        CHECK(r->starts <= 1 && r->ends <= r->starts,
              "task %d started %d times and ended %d times", i, r->starts,
              r->ends);
        CHECK(!r->freed || r->ends, "task %d freed before it ended", i);
        CHECK(r->blk == B_NONE || !r->ends, "task %d ended inside a call",
              i);
        CHECK(r->freed || r->waiter >= 0 || !r->detached || !r->ends,
              "task %d detached and ended but not freed", i);
        if (r->waiter >= 0) {
            const struct rec *w = &run->recs[r->waiter];
            int found = 0;
            for (int k = 0; k < w->nt; k++)
                found |= w->targets[k] == i;
            CHECK(w->blk >= B_JOIN && found, "task %d's waiter %d is not "
                  "waiting on it", i, r->waiter);
        }
        if (!r->freed) {
            const char *name = coro_name(r->t);
            CHECK(name && strcmp(name, expected_name(r)) == 0,
                  "task %d is named \"%s\", not \"%s\"", i,
                  name ? name : "(null)", expected_name(r));
        }
    }
}

/* Before each of a task's operations. */
static void step(struct rec *r)
{
    struct run *run = r->run;
    CHECK(tls_run == run, "task %d runs on another thread's loop", r->idx);
    CHECK(!r->freed, "task %d runs after it was freed", r->idx);
    CHECK(r->starts == 1 && r->ends == 0, "task %d runs outside its life",
          r->idx);
    CHECK(coro_self() == r->t, "task %d is not coro_self()", r->idx);
    CHECK(errno == r->errno_mark, "task %d's errno became %d, not %d",
          r->idx, errno, r->errno_mark);
    sync_reports(run);
    check_model(run);
}

/* A sleep, a yield or a blocking call as to cancellation: with the shield
 * on, never ECANCELED; cancelled before the call, always; never cancelled,
 * never. Cancelled while inside: a yield (and a sleep of 0, which is one)
 * reports it, as does a blocking call (sched.c and executor.c look at the
 * flag as they return); a sleep whose timer fired first returns 0. */
static int cancel_ok(const struct rec *r, enum tri cx0, int err, int exact)
{
    if (r->shield)
        return err == 0;
    if (cx0 == YES || (exact && r->cx == YES))
        return err == ECANCELED;
    if (r->cx == NO)
        return err == 0;
    return err == 0 || err == ECANCELED;
}

/* A call coro.h says fails with want. Which comes first when the caller
 * is also cancelled, the argument check or ECANCELED, is not said: both
 * are taken. */
static int misuse_ok(struct rec *r, int err, int want)
{
    if (err == ECANCELED && !r->shield && r->cx != NO) {
        r->cx = YES;
        return 1;
    }
    return err == want;
}

/* What a join, gather or wait will refuse: the caller listed (EDEADLK),
 * a task detached or already awaited, or listed twice (EINVAL); first
 * such task first, as coro_task claims them in order. */
static int claim_error(const struct rec *r, const int *idx, int k)
{
    for (int a = 0; a < k; a++) {
        const struct rec *t = &r->run->recs[idx[a]];
        if (t == r)
            return EDEADLK;
        if (t->detached || t->waiter >= 0)
            return EINVAL;
        for (int b = 0; b < a; b++)
            if (idx[b] == idx[a])
                return EINVAL;
    }
    return 0;
}

/* The caller becomes the awaiter of k tasks. A join or gather that can
 * time out, or whose caller is (maybe) cancelled and unshielded, cancels
 * what it waits on. */
static void begin_wait(struct rec *r, enum blk kind, const int *idx, int k,
                       int timed)
{
    struct run *run = r->run;
    r->blk = kind;
    r->timed = timed;
    r->nt = k;
    for (int a = 0; a < k; a++) {
        r->targets[a] = idx[a];
        run->recs[idx[a]].waiter = r->idx;
    }
    if (kind == B_WAIT)
        return;
    enum tri level = timed ? MAYBE : NO;
    if (!r->shield && r->cx > level)
        level = r->cx;
    for (int a = 0; a < k; a++)
        mark_cancel(run, idx[a], level);
}

/* The wait is over; a join or gather has freed its tasks, a wait has
 * freed those detached and ended. */
static void end_wait(struct rec *r, int joined)
{
    struct run *run = r->run;
    for (int a = 0; a < r->nt; a++) {
        struct rec *t = &run->recs[r->targets[a]];
        t->waiter = -1;
        if (joined || (t->detached && t->ends))
            t->freed = 1;
    }
    r->blk = B_NONE;
    r->nt = 0;
}

static int failed(const struct rec *t)
{
    return t->error && t->error != ECANCELED;
}

/* Whether an await_wait on r's targets may return: its condition holds. */
static int wait_done(const struct rec *r)
{
    const struct run *run = r->run;
    int ended = 0;
    int any_failed = 0;
    for (int a = 0; a < r->nt; a++) {
        const struct rec *t = &run->recs[r->targets[a]];
        ended += t->ends;
        any_failed |= t->ends && failed(t);
    }
    switch (r->when) {
    case CORO_FIRST_COMPLETED:
        return ended > 0;
    case CORO_FIRST_EXCEPTION:
        return any_failed || ended == r->nt;
    default:
        return ended == r->nt;
    }
}

/* ----------------------------------------------------------------------
 * Tasks
 * ---------------------------------------------------------------------- */

static void exec(struct rec *r);

/* The task's function returns: its last step. */
static void *finish(struct rec *r)
{
    struct run *run = r->run;
    unsigned end = MODE_END(r->mode);
    void *ret = end == 1 ? NULL : (void *)r;
    if (end >= 2) {
        int e = fail_errs[MODE_ERR(r->mode)];
        CHECK(coro_fail(e) == NULL, "coro_fail did not return NULL");
        r->error = e;
        if (end == 2)
            ret = NULL;
    }
    r->ends++;
    r->ret = ret;
    r->end_seq = ++run->end_seq;
    if (r->error) {
        r->end_err[0] = r->end_err[1] = r->error;
    } else {
        r->end_err[0] = r->cx == YES ? ECANCELED : 0;
        r->end_err[1] = r->cx == NO ? 0 : ECANCELED;
    }
    if (r->idx == 0) {
        /* coro_run cancels every task as main ends. */
        run->closing = YES;
        for (int i = 1; i < run->n; i++)
            mark_cancel(run, i, YES);
    }
    if (r->detached && r->waiter < 0)
        r->freed = 1;
    note(r, "ends: error %d, result %p, may be joined as %d/%d", r->error,
         ret, r->end_err[0], r->end_err[1]);
    check_model(run);
    return ret;
}

static void *task_main(void *arg)
{
    struct rec *r = arg;
    CHECK(r->starts == 0, "task %d started again", r->idx);
    /* The ready queue is FIFO and a new task joins its back: tasks start
     * in the order they were spawned. */
    CHECK(r->idx == 0 || r->run->recs[r->idx - 1].starts, "task %d started "
          "before task %d", r->idx, r->idx - 1);
    r->starts = 1;
    if (r->idx == 0)
        r->t = coro_self();
    CHECK(r->t && coro_self() == r->t, "task %d is not coro_self()",
          r->idx);
    errno = r->errno_mark;
    note(r, "starts (cancelled %d)", r->cx);
    exec(r);
    return finish(r);
}

static void spawn(struct rec *r, const uint8_t *ops, size_t n, unsigned mode)
{
    struct run *run = r->run;
    if (run->n == MAX_TASKS)
        return;
    unsigned kind = MODE_STACK(mode);
    if (kind == 2 && run->fail)
        kind = 1; /* a shared-stack switch aborts when saving frames finds
                     no memory (sched.c, shared_install) */
    struct rec *c = &run->recs[run->n];
    memset(c, 0, sizeof *c);
    c->run = run;
    c->idx = run->n;
    c->ops = ops;
    c->nops = n;
    c->mode = (uint8_t)mode;
    c->errno_mark = 1000 + c->idx;
    c->cx = run->closing;
    c->waiter = -1;

    coro_attr attr = { 0 };
    int want = 0;
    if (kind == 1) {
        attr.stack_size = 16 << 10;
    } else if (kind == 2) {
        attr.flags = CORO_SHARED_STACK;
    } else if (kind == 3) {
        want = EINVAL;
        switch (MODE_ERR(mode) % 3) {
        case 0:
            attr.stack_size = 4096; /* below 16 KiB */
            break;
        case 1:
            attr.flags = 2; /* unknown flag */
            break;
        default:
            attr.flags = CORO_SHARED_STACK; /* deeper than the shared stack */
            attr.stack_size = (size_t)1 << 30;
            break;
        }
    }
    if (mode & MODE_NAMED)
        attr.name = "fuzz-task";
    errno = 0;
    coro_task *t = kind == 0 && !(mode & MODE_NAMED)
                       ? coro_spawn(task_main, c)
                       : coro_spawn_attr(&attr, task_main, c);
    int e = errno;
    if (!t) {
        note(r, "spawn (mode %#x) failed: %d", mode, e);
        CHECK(want ? e == want : run->fail && e == ENOMEM,
              "coro_spawn (kind %u) failed with %d", kind, e);
        errno = r->errno_mark;
        return;
    }
    CHECK(!want, "coro_spawn took a bad attr (kind %u, variant %u)", kind,
          MODE_ERR(mode) % 3);
    CHECK(e == 0, "coro_spawn wrote errno %d", e);
    CHECK(c->starts == 0, "task %d ran before its spawner suspended",
          c->idx);
    errno = r->errno_mark;
    c->t = t;
    run->n++;
    note(r, "spawn (mode %#x, %zu bytes) -> task %d", mode, n, c->idx);
}

static void op_spawn(struct rec *r, struct cursor *c)
{
    size_t len = next(c) % 32;
    unsigned mode = next(c);
    if (len > c->n - c->pc)
        len = c->n - c->pc;
    const uint8_t *ops = c->b + c->pc;
    c->pc += len;
    spawn(r, ops, len, mode);
}

static void op_sleep(struct rec *r, struct cursor *c, int yield)
{
    static const double sleeps[] = { -1, 0, 1e-4, 5e-4, 1e-3, 2e-3 };
    double d = yield ? 0 : charge(r->run, sleeps[next(c) % 6]);
    enum tri cx0 = r->cx;
    r->blk = B_SLEEP;
    double t0 = coro_now();
    int err = yield ? await_yield() : await_sleep(d);
    double took = coro_now() - t0;
    r->blk = B_NONE;
    sync_reports(r->run);
    note(r, "%s(%g) -> %d", yield ? "yield" : "sleep", d, err);
    CHECK(cancel_ok(r, cx0, err, yield || d <= 0), "task %d: %s(%g) "
          "returned %d (cancelled %d then %d, shield %d)", r->idx,
          yield ? "await_yield" : "await_sleep", d, err, cx0, r->cx,
          r->shield);
    CHECK(err != 0 || took >= d - 1e-6, "task %d: await_sleep(%g) returned "
          "after %g s", r->idx, d, took);
    if (err == ECANCELED)
        r->cx = YES;
}

static void op_cancel(struct rec *r, struct cursor *c)
{
    int i = pick(r->run, next(c));
    note(r, "cancel task %d", i);
    CHECK(coro_cancel(r->run->recs[i].t) == 0, "coro_cancel failed");
    mark_cancel(r->run, i, YES);
}

static void op_detach(struct rec *r, struct cursor *c)
{
    struct rec *t = &r->run->recs[pick(r->run, next(c))];
    note(r, "detach task %d", t->idx);
    coro_detach(t->t);
    if (!t->detached) {
        t->detached = 1;
        if (t->ends && t->waiter < 0)
            t->freed = 1;
    }
}

static void op_join(struct rec *r, struct cursor *c, int timed)
{
    static const double timeouts[] = { -1, 0, 2e-4, 1e-3, 2e-3 };
    struct run *run = r->run;
    int i = pick(run, next(c));
    double to = timed ? charge(run, timeouts[next(c) % 5]) : -1;
    struct rec *t = &run->recs[i];
    void *res = UNTOUCHED;
    int want = claim_error(r, &i, 1);
    if (want) {
        int err = timed ? await_task_timeout(t->t, to, &res)
                        : await_task(t->t, &res);
        note(r, "join task %d -> %d", i, err);
        CHECK(err == want && res == UNTOUCHED, "task %d: a join of task %d "
              "returned %d, not %d", r->idx, i, err, want);
        return;
    }
    enum tri cx0 = r->cx;
    int ended = t->ends;
    begin_wait(r, B_JOIN, &i, 1, to >= 0);
    double t0 = coro_now();
    int err = timed ? await_task_timeout(t->t, to, &res)
                    : await_task(t->t, &res);
    double took = coro_now() - t0;
    sync_reports(run);
    note(r, "join task %d (timeout %g) -> %d, result %p", i, to, err, res);
    CHECK(t->ends == 1, "task %d: the join returned %d before task %d "
          "ended", r->idx, err, i);
    CHECK(res == t->ret, "task %d: the join of task %d gave result %p, not "
          "%p", r->idx, i, res, t->ret);
    int ok = ended_with(t, err) ||
             (to >= 0 && err == ETIMEDOUT && took >= to - 1e-6) ||
             (err == ECANCELED && !r->shield && r->cx != NO);
    if (ended && (r->shield || cx0 == NO))
        ok = ended_with(t, err); /* nothing to wait for */
    if (!r->shield && cx0 == YES) {
        /* A caller cancelled before the join: coro.h's Returns line puts
         * t's coro_fail error first, sched.c (await_claimed) returns
         * ECANCELED whatever t did. Both are taken until that is
         * settled. */
        ok = err == ECANCELED || (t->error && err == t->error);
    }
    CHECK(ok, "task %d: %s of task %d returned %d (task's error %d/%d, "
          "timeout %g, cancelled %d then %d, shield %d)", r->idx,
          timed ? "await_task_timeout" : "await_task", i, err, t->end_err[0],
          t->end_err[1], to, cx0, r->cx, r->shield);
    if (err == ECANCELED && !ended_with(t, err))
        r->cx = YES;
    end_wait(r, 1);
}

/* 1 to MAX_SET tasks for a gather or wait, a task possibly twice. */
static int pick_set(struct rec *r, struct cursor *c, int *idx,
                    coro_task **ts)
{
    int k = 1 + (int)(next(c) % MAX_SET);
    for (int a = 0; a < k; a++) {
        idx[a] = pick(r->run, next(c));
        ts[a] = r->run->recs[idx[a]].t;
    }
    return k;
}

static void op_gather(struct rec *r, struct cursor *c)
{
    struct run *run = r->run;
    int idx[MAX_SET];
    coro_task *ts[MAX_SET];
    void *res[MAX_SET];
    int errs[MAX_SET];
    int k = pick_set(r, c, idx, ts);
    for (int a = 0; a < k; a++) {
        res[a] = UNTOUCHED;
        errs[a] = -1;
    }
    int want = claim_error(r, idx, k);
    if (want) {
        int err = await_gather(ts, (size_t)k, res, errs);
        note(r, "gather of %d -> %d", k, err);
        CHECK(err == want, "task %d: a gather returned %d, not %d", r->idx,
              err, want);
        for (int a = 0; a < k; a++)
            CHECK(res[a] == UNTOUCHED && errs[a] == -1,
                  "a refused gather wrote its results");
        return;
    }
    enum tri cx0 = r->cx;
    begin_wait(r, B_GATHER, idx, k, 0);
    int err = await_gather(ts, (size_t)k, res, errs);
    sync_reports(run);
    note(r, "gather of %d (tasks %d %d %d %d) -> %d (errors %d %d %d %d)",
         k, idx[0], k > 1 ? idx[1] : -1, k > 2 ? idx[2] : -1,
         k > 3 ? idx[3] : -1, err, errs[0], k > 1 ? errs[1] : 0,
         k > 2 ? errs[2] : 0, k > 3 ? errs[3] : 0);
    unsigned long first_end = 0;
    int first_err = 0;
    for (int a = 0; a < k; a++) {
        struct rec *t = &run->recs[idx[a]];
        CHECK(t->ends == 1, "task %d: the gather returned before task %d "
              "ended", r->idx, idx[a]);
        CHECK(res[a] == t->ret, "task %d: gather result %d of task %d is "
              "%p, not %p", r->idx, a, idx[a], res[a], t->ret);
        CHECK(ended_with(t, errs[a]), "task %d: gather error %d of task %d "
              "is %d, not %d/%d", r->idx, a, idx[a], errs[a],
              t->end_err[0], t->end_err[1]);
        if (errs[a] && (!first_end || t->end_seq < first_end)) {
            first_end = t->end_seq;
            first_err = errs[a];
        }
    }
    int ok = err == first_err ||
             (err == ECANCELED && !r->shield && r->cx != NO);
    if (!r->shield && cx0 == YES)
        ok = err == ECANCELED;
    CHECK(ok, "task %d: await_gather returned %d (first failure %d, "
          "cancelled %d then %d, shield %d)", r->idx, err, first_err, cx0,
          r->cx, r->shield);
    if (err == ECANCELED && first_err != ECANCELED)
        r->cx = YES;
    end_wait(r, 1);
}

static void check_wait_order(struct rec *r, const int *idx,
                             coro_task *const *orig, coro_task *const *ts,
                             int k, size_t ndone)
{
    const struct run *run = r->run;
    int used[MAX_SET] = { 0 };
    int ended = 0;
    unsigned long last = 0;
    for (int a = 0; a < k; a++) {
        int found = -1;
        for (int b = 0; b < k && found < 0; b++)
            if (ts[a] == orig[b] && !used[b])
                found = b;
        CHECK(found >= 0, "task %d: await_wait's tasks[] is no permutation",
              r->idx);
        used[found] = 1;
        const struct rec *t = &run->recs[idx[found]];
        ended += t->ends;
        if ((size_t)a < ndone) {
            CHECK(t->ends && t->end_seq > last, "task %d: await_wait's "
                  "ended tasks are not first, in the order they ended",
                  r->idx);
            last = t->end_seq;
        } else {
            CHECK(!t->ends, "task %d: await_wait left ended task %d after "
                  "the running ones", r->idx, idx[found]);
        }
    }
    CHECK((size_t)ended == ndone, "task %d: await_wait's ndone %zu, but %d "
          "ended", r->idx, ndone, ended);
}

static void op_wait(struct rec *r, struct cursor *c)
{
    static const double timeouts[] = { -1, 0, 2e-4, 1e-3, 2e-3 };
    struct run *run = r->run;
    unsigned how = next(c);
    int bad = how % 16 == 15;
    enum coro_when when = bad ? (enum coro_when)7 : (enum coro_when)(how % 3);
    double to = charge(run, timeouts[(how >> 2) % 5]);
    int idx[MAX_SET];
    coro_task *ts[MAX_SET];
    coro_task *orig[MAX_SET];
    int k = pick_set(r, c, idx, ts);
    memcpy(orig, ts, sizeof orig);
    size_t ndone = 12345;
    int want = bad ? EINVAL : claim_error(r, idx, k);
    if (want) {
        int err = await_wait(ts, (size_t)k, when, to, &ndone);
        note(r, "wait on %d -> %d", k, err);
        CHECK(err == want && ndone == 12345 &&
                  memcmp(ts, orig, sizeof orig) == 0,
              "task %d: a wait returned %d, not %d", r->idx, err, want);
        return;
    }
    enum tri cx0 = r->cx;
    begin_wait(r, B_WAIT, idx, k, to >= 0);
    r->when = when;
    double t0 = coro_now();
    int err = await_wait(ts, (size_t)k, when, to, &ndone);
    double took = coro_now() - t0;
    sync_reports(run);
    note(r, "wait (when %d, timeout %g) on %d (tasks %d %d %d %d) -> %d, "
         "%zu ended", (int)when, to, k, idx[0], k > 1 ? idx[1] : -1,
         k > 2 ? idx[2] : -1, k > 3 ? idx[3] : -1, err, ndone);
    if (err == ECANCELED) {
        CHECK(!r->shield && r->cx != NO, "task %d: await_wait returned "
              "ECANCELED uncancelled", r->idx);
        CHECK(ndone == 0 && memcmp(ts, orig, sizeof orig) == 0,
              "task %d: a cancelled await_wait reordered tasks or counted "
              "%zu", r->idx, ndone);
        r->cx = YES;
    } else {
        CHECK(err == 0, "task %d: await_wait returned %d", r->idx, err);
        CHECK(r->shield || cx0 != YES, "task %d: await_wait of a cancelled "
              "task returned 0", r->idx);
        check_wait_order(r, idx, orig, ts, k, ndone);
        CHECK(wait_done(r) || (to >= 0 && took >= to - 1e-6),
              "task %d: await_wait (when %d) returned after %g s of %g "
              "with its condition false", r->idx, (int)when, took, to);
    }
    end_wait(r, 0);
}

/* ----------------------------------------------------------------------
 * Blocking calls, and programs nested in them
 * ---------------------------------------------------------------------- */

static void run_program(struct run *run);

/* A function coro is given but must not run. */
static void *never(void *arg)
{
    (void)arg;
    CHECK(0, "coro ran a function it must not run");
    return NULL;
}

/* Outside any loop: coro.h's EPERM and EINVAL cases. */
static void check_outside(void)
{
    int saved = errno;
    CHECK(coro_self() == NULL, "a task outside a loop");
    CHECK(await_yield() == EPERM, "await_yield outside a loop");
    CHECK(await_sleep(0.001) == EPERM, "await_sleep outside a loop");
    CHECK(await_task(NULL, NULL) == EPERM, "await_task outside a loop");
    CHECK(coro_shield(1) == 0 && coro_shield(0) == 0,
          "coro_shield outside a loop");
    CHECK(coro_fail(EIO) == NULL, "coro_fail outside a loop");
    CHECK(coro_cancel(NULL) == EINVAL, "coro_cancel outside a loop");
    CHECK(coro_set_workers(2) == EINVAL, "coro_set_workers outside a loop");
    errno = 0;
    CHECK((coro_spawn)(never, NULL) == NULL && errno == EINVAL,
          "coro_spawn outside a loop");
    errno = saved;
}

static void *block_fn(void *arg)
{
    struct job *j = arg;
    CHECK(coro_self() == NULL, "a blocking call runs inside a loop");
    if (j->usec)
        usleep(j->usec);
    atomic_fetch_add(&j->ran, 1);
    errno = j->err;
    return j;
}

static void *nest_fn(void *arg)
{
    struct job *j = arg;
    check_outside();
    struct run *sub = calloc(1, sizeof *sub);
    CHECK(sub != NULL, "out of memory");
    sub->prog = j->prog;
    sub->len = j->len;
    sub->depth = j->depth;
    sub->fail = j->fail;
    sub->outer = j->outer;
    struct run *saved = tls_run;
    run_program(sub);
    tls_run = saved;
    free(sub);
    atomic_fetch_add(&j->ran, 1);
    errno = j->err;
    return j;
}

static void run_job(struct rec *r, void *(*fn)(void *))
{
    struct run *run = r->run;
    struct job *j = &r->job;
    enum tri cx0 = r->cx;
    void *res = UNTOUCHED;
    r->blk = B_BLOCKING;
    int err = await_blocking(fn, j, &res);
    int e = errno;
    r->blk = B_NONE;
    sync_reports(run);
    int ran = atomic_load(&j->ran);
    note(r, "%s -> %d (ran %d, errno %d)", fn == nest_fn ? "nested run" :
         "blocking call", err, ran, e);
    CHECK(ran <= 1, "task %d: its blocking call ran %d times", r->idx, ran);
    if (err == EAGAIN || (err == ENOMEM && run->fail)) {
        CHECK(ran == 0 && res == UNTOUCHED, "task %d: await_blocking failed "
              "with %d after running", r->idx, err);
    } else {
        CHECK(cancel_ok(r, cx0, err, 1), "task %d: await_blocking returned %d "
              "(cancelled %d then %d, shield %d)", r->idx, err, cx0, r->cx,
              r->shield);
        CHECK(err != 0 || ran == 1, "task %d: await_blocking returned 0 and "
              "fn did not run", r->idx);
        CHECK(r->shield || cx0 != YES || ran == 0, "task %d: a cancelled "
              "caller's blocking call ran", r->idx);
        if (ran) {
            CHECK(res == j && e == j->err, "task %d: await_blocking gave "
                  "result %p errno %d, not %p %d", r->idx, res, e, (void *)j,
                  j->err);
        } else {
            CHECK(res == UNTOUCHED && e == r->errno_mark, "task %d: a "
                  "blocking call that never ran set result or errno",
                  r->idx);
        }
        if (err == ECANCELED)
            r->cx = YES;
    }
    errno = r->errno_mark;
}

static void op_blocking(struct rec *r, struct cursor *c)
{
    static const unsigned usecs[] = { 0, 50, 200, 1000 };
    static const int errs[] = { 0, ENOENT, EAGAIN, EINTR };
    unsigned how = next(c);
    struct job *j = &r->job;
    memset(j, 0, sizeof *j);
    j->usec = (unsigned)(charge(r->run, usecs[how % 4] / 1e6) * 1e6 + 0.5);
    j->err = errs[(how >> 2) % 4];
    run_job(r, block_fn);
}

static void op_nested(struct rec *r, struct cursor *c)
{
    struct run *run = r->run;
    size_t len = next(c) % 48;
    if (len > c->n - c->pc)
        len = c->n - c->pc;
    const uint8_t *prog = c->b + c->pc;
    c->pc += len;
    if (run->depth >= MAX_DEPTH || atomic_fetch_sub(&nested_left, 1) <= 0)
        return;
    struct job *j = &r->job;
    memset(j, 0, sizeof *j);
    j->prog = prog;
    j->len = len;
    j->depth = run->depth + 1;
    j->fail = run->fail;
    j->outer = r->t;
    run_job(r, nest_fn);
}

/* ----------------------------------------------------------------------
 * The rest of the operations
 * ---------------------------------------------------------------------- */

static void op_shield(struct rec *r, struct cursor *c)
{
    int on = (int)(next(c) & 1);
    int old = coro_shield(on);
    note(r, "shield %d", on);
    CHECK(old == r->shield, "task %d: coro_shield returned %d, not %d",
          r->idx, old, r->shield);
    r->shield = on;
}

static void op_fail(struct rec *r, struct cursor *c)
{
    static const int errs[] = { 0, EIO, EPIPE, ENOENT, ECANCELED };
    int e = errs[next(c) % 5];
    note(r, "fail %d", e);
    CHECK(coro_fail(e) == NULL, "coro_fail did not return NULL");
    r->error = e;
}

/* Calls coro.h says fail. */
static void op_misuse(struct rec *r, struct cursor *c)
{
    struct run *run = r->run;
    unsigned what = next(c);
    coro_task *self = r->t;
    coro_task *outer = run->outer;
    size_t nd = 7;
    void *res = UNTOUCHED;
    int err;
    note(r, "misuse %u", what % 10);
    switch (what % 10) {
    case 0:
        CHECK(misuse_ok(r, await_task(NULL, &res), EINVAL) &&
                  res == UNTOUCHED, "await_task(NULL)");
        CHECK(misuse_ok(r, await_task_timeout(self, NAN, NULL), EINVAL),
              "await_task_timeout(NaN)");
        break;
    case 1:
        CHECK(misuse_ok(r, await_gather(NULL, 2, NULL, NULL), EINVAL),
              "await_gather(NULL, 2)");
        CHECK(misuse_ok(r, await_gather(&self, 0, NULL, NULL), 0),
              "await_gather of none");
        break;
    case 2:
        CHECK(misuse_ok(r, await_wait(NULL, 1, CORO_ALL_COMPLETED, -1, &nd),
                        EINVAL), "await_wait(NULL, 1)");
        CHECK(misuse_ok(r, await_wait(&self, 1, CORO_ALL_COMPLETED, NAN,
                                      &nd), EINVAL), "await_wait(NaN)");
        nd = 7;
        err = await_wait(&self, 0, CORO_FIRST_COMPLETED, -1, &nd);
        CHECK(misuse_ok(r, err, 0) && (err || nd == 0), "await_wait of none");
        break;
    case 3:
        CHECK(misuse_ok(r, await_sleep(NAN), EINVAL), "await_sleep(NaN)");
        break;
    case 4:
        CHECK(misuse_ok(r, await_blocking(NULL, NULL, &res), EINVAL) &&
                  res == UNTOUCHED, "await_blocking(NULL)");
        break;
    case 5:
        CHECK(coro_run(NULL, NULL, NULL) == EINVAL, "coro_run(NULL)");
        CHECK(coro_run(never, NULL, &res) == EBUSY, "coro_run in a task");
        CHECK(res == NULL, "a refused coro_run left its result unset");
        break;
    case 6:
        CHECK(coro_cancel(NULL) == EINVAL, "coro_cancel(NULL)");
        coro_detach(NULL);
        CHECK(coro_name(NULL) == NULL, "coro_name(NULL)");
        CHECK(coro_stack_high_water(NULL) == 0, "coro_stack_high_water(NULL)");
        break;
    case 7:
        CHECK(coro_set_workers(0) == EINVAL, "coro_set_workers(0)");
        CHECK(coro_set_workers(1025) == EINVAL, "coro_set_workers(1025)");
        CHECK(coro_set_workers(1 + (what >> 4) % 4) == 0, "coro_set_workers");
        break;
    case 8:
        if (!outer)
            break;
        /* The task whose blocking call runs this loop: another loop's. */
        CHECK(coro_cancel(outer) == EINVAL, "coro_cancel of another loop's");
        coro_detach(outer);
        CHECK(misuse_ok(r, await_task(outer, &res), EINVAL) &&
                  res == UNTOUCHED, "await_task of another loop's");
        CHECK(misuse_ok(r, await_gather(&outer, 1, NULL, NULL), EINVAL),
              "await_gather of another loop's");
        CHECK(misuse_ok(r, await_wait(&outer, 1, CORO_ALL_COMPLETED, 0,
                                      &nd), EINVAL),
              "await_wait of another loop's");
        break;
    default:
        errno = 0;
        CHECK((coro_spawn)(NULL, NULL) == NULL && errno == EINVAL,
              "coro_spawn(NULL)");
        break;
    }
    errno = r->errno_mark;
}

/* coro_dump lists the loop's tasks, one line each, oldest first, with ids
 * 1, 2, ... in spawn order: exactly the tasks the model has not seen
 * freed (so a task freed early, or never, shows), marked cancelled and
 * shielded as the model says. */
static void check_dump(struct rec *r)
{
    struct run *run = r->run;
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    CHECK(f != NULL, "out of memory");
    coro_dump(f);
    fclose(f);
    int live = 0;
    for (int i = 0; i < run->n; i++)
        live += !run->recs[i].freed;
    size_t n = 0;
    CHECK(sscanf(text, "coro: %zu task", &n) == 1 && n == (size_t)live,
          "task %d: coro_dump counts %zu tasks, the model %d", r->idx, n,
          live);
    int next_idx = 0;
    for (char *line = strchr(text, '\n'); line && line[1]; ) {
        line++;
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        unsigned long long id = 0;
        CHECK(sscanf(line, "  #%llu", &id) == 1 && id >= 1 &&
                  id <= (unsigned long long)run->n,
              "task %d: coro_dump line \"%s\"", r->idx, line);
        const struct rec *t = &run->recs[id - 1];
        CHECK((int)id - 1 >= next_idx && !t->freed, "task %d: coro_dump "
              "lists task %d out of order or freed", r->idx, t->idx);
        next_idx = (int)id;
        int cancelled = strstr(line, " [cancelled]") != NULL;
        int shielded = strstr(line, " [shielded]") != NULL;
        CHECK(t->cx == MAYBE || cancelled == (t->cx == YES),
              "task %d: coro_dump shows task %d %scancelled", r->idx,
              t->idx, cancelled ? "" : "not ");
        /* A join or gather draining its tasks shields itself. */
        CHECK(shielded == t->shield ||
                  (shielded && (t->blk == B_JOIN || t->blk == B_GATHER)),
              "task %d: coro_dump shows task %d %sshielded", r->idx, t->idx,
              shielded ? "" : "not ");
        line = end;
    }
    free(text);
}

static void op_look(struct rec *r, struct cursor *c)
{
    unsigned how = next(c);
    const struct rec *t = &r->run->recs[pick(r->run, how)];
    note(r, "look at task %d", t->idx);
    CHECK(coro_stack_high_water(t->t) <= (size_t)1 << 30,
          "coro_stack_high_water out of range");
    if (how & 0x80)
        check_dump(r);
}

static void exec(struct rec *r)
{
    struct cursor c = { r->ops, r->nops, 0 };
    if (r->idx == 0)
        c.pc = 1; /* main's program starts after the header */
    while (c.pc < c.n) {
        step(r);
        switch (c.b[c.pc++] % NOPS) {
        case OP_SPAWN:
        case OP_SPAWN2:
            op_spawn(r, &c);
            break;
        case OP_SLEEP:
            op_sleep(r, &c, 0);
            break;
        case OP_YIELD:
            op_sleep(r, &c, 1);
            break;
        case OP_CANCEL:
            op_cancel(r, &c);
            break;
        case OP_JOIN:
            op_join(r, &c, 0);
            break;
        case OP_JOIN_TIMEOUT:
            op_join(r, &c, 1);
            break;
        case OP_GATHER:
            op_gather(r, &c);
            break;
        case OP_WAIT:
            op_wait(r, &c);
            break;
        case OP_DETACH:
            op_detach(r, &c);
            break;
        case OP_BLOCKING:
            op_blocking(r, &c);
            break;
        case OP_NESTED:
            op_nested(r, &c);
            break;
        case OP_SHIELD:
            op_shield(r, &c);
            break;
        case OP_FAIL:
            op_fail(r, &c);
            break;
        case OP_MISUSE:
            op_misuse(r, &c);
            break;
        default:
            op_look(r, &c);
            break;
        }
    }
    step(r);
}

/* ----------------------------------------------------------------------
 * Runs
 * ---------------------------------------------------------------------- */

/* After coro_run: every task's life, and coro_run's own outcome. */
static void check_run(struct run *run, int err, void *res)
{
    struct rec *m = &run->recs[0];
    if (!m->starts) {
        CHECK(run->fail && err == ENOMEM, "coro_run returned %d without "
              "running main", err);
        CHECK(res == NULL, "coro_run without main gave "
              "a result");
        return;
    }
    for (int i = 0; i < run->n; i++) {
        const struct rec *r = &run->recs[i];
        CHECK(r->starts == 1, "task %d never ran", i);
        if (r->ends)
            continue;
        /* Left blocked in a deadlock: coro_run frees such tasks without
         * running them further. Only a join, gather or wait on a task
         * that never ended can be that. */
        int stuck = 0;
        for (int k = 0; k < r->nt; k++)
            stuck |= !run->recs[r->targets[k]].ends;
        CHECK(r->blk >= B_JOIN && stuck, "task %d never ended (inside call "
              "%d)", i, (int)r->blk);
        CHECK(r->blk != B_WAIT || (!r->timed && !wait_done(r)),
              "task %d never left a wait that could end", i);
    }
    if (!m->ends) {
        CHECK(err == EDEADLK && run->deadlocked, "main never ended but "
              "coro_run returned %d (deadlock reported: %d)", err,
              run->deadlocked);
        CHECK(res == NULL, "coro_run gave a result of a main that never "
              "ended");
        return;
    }
    if (run->deadlocked)
        CHECK(err == EDEADLK, "coro_run returned %d after reporting a "
              "deadlock", err);
    else
        CHECK(err != EDEADLK && ended_with(m, err), "coro_run returned %d, "
              "main ended with %d/%d", err, m->end_err[0], m->end_err[1]);
    CHECK(res == m->ret, "coro_run's result is %p, main returned %p", res,
          m->ret);
}

static void run_program(struct run *run)
{
    struct rec *m = &run->recs[0];
    memset(m, 0, sizeof *m);
    m->run = run;
    m->ops = run->prog;
    m->nops = run->len;
    m->mode = run->len ? (uint8_t)(run->prog[0] & 0x3c) : 0;
    m->errno_mark = 900 + run->depth;
    m->waiter = -1;
    run->n = 1;
    run->budget = TIME_BUDGET;
    tls_run = run;
    run->reports = tls_reports;
    void *res = UNTOUCHED;
    int err = coro_run(task_main, m, &res);
    sync_reports(run);
    note(m, "coro_run -> %d, result %p (deadlock reported %d)", err, res,
         run->deadlocked);
    check_run(run, err, res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    static const unsigned every[] = { 5, 9, 17, 33 };
    struct run *run = calloc(1, sizeof *run);
    CHECK(run != NULL, "out of memory");
    run->prog = data;
    run->len = size;
    run->fail = (data[0] & HEAD_FAIL) == HEAD_FAIL;
    atomic_store(&nested_left, MAX_NESTED);
    check_outside();
    atomic_store(&coro__alloc_stats.counter, 0);
    atomic_store(&coro__alloc_stats.fail_every,
                 run->fail ? every[data[0] & 3] : 0);
    run_program(run);
    atomic_store(&coro__alloc_stats.fail_every, 0);
    tls_run = NULL;
    long blocks = atomic_load(&coro__alloc_stats.blocks);
    long stacks = atomic_load(&coro__alloc_stats.stacks);
    CHECK(blocks == 0 && stacks == 0, "coro leaked %ld blocks and %ld "
          "stacks", blocks, stacks);
    free(run);
    return 0;
}
