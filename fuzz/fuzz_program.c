/* fuzz_program.c: a libFuzzer target that runs random programs of
 * operations on coro (tasks, task groups, timeout scopes, channels and
 * selects, queues, mutexes, a semaphore, an event, a condition, fds) and
 * checks, after every step, what coro.h promises.
 *
 * An input is a program. Its first byte is a header (how main ends, and
 * whether allocations fail); the rest are operations, one byte each
 * followed by their operand bytes, that coro_run's main task executes in
 * order. SPAWN, GSPAWN and NESTED take the bytes after their operands as a
 * program of their own: the new task's operations, or a whole program
 * (header first) that a blocking call runs with coro_run on a worker
 * thread. So programs nest as the bytes do, and a mutation changes one
 * task at a time.
 *
 *   byte % 40  operation     operands
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
 *   16         SEND          how (channel, timeout or a try)
 *   17         RECV          how (channel, timeout or a try)
 *   18         CLOSE         channel (coro_chan_close)
 *   19         SELECT        how (n, timeout), n x (channel, send or receive)
 *   20         PUT           how (queue, timeout or a try)
 *   21         GET           how (queue, timeout or a try)
 *   22         QUEUE         how (queue; task_done, join with a timeout,
 *                            shutdown or size)
 *   23         LOCK          how (mutex, timeout)
 *   24         UNLOCK        mutex
 *   25         SEM           how (release, or acquire with a timeout)
 *   26         EVENT         how (wait with a timeout, set or clear)
 *   27         COND          how (wait with a mutex and a timeout, notify 0
 *                            to 2, notify_all)
 *   28         WRITE         how (stream, size, timeout): await_write_all
 *   29         READ          how (stream, size, timeout): await_read or
 *                            await_read_full
 *   30         FD            how (stream; await_readable or await_writable
 *                            with a timeout, or coro_close of an end)
 *   31         SYNC_MISUSE   what: a call on an object or fd that must fail
 *   32, 38     GSPAWN        len, mode, group (bit 7: a new one); then len
 *                            bytes: the member's program (coro_group_spawn)
 *   33         AWAIT_GROUP   group
 *   34         GROUP         how (group; its results and size, free, or a
 *                            new group)
 *   35         AS_COMPLETED  how (timeout, reads, join), n, who x n: an
 *                            iterator read up to four times, then freed;
 *                            the tasks handed out joined
 *   36         TIMEOUT       how (deadline: none, now, 0.2 to 2 ms, past,
 *                            0; bit 7: coro_timeout_open_at): a scope
 *                            opened, the caller's innermost
 *   37         SCOPE         how (close the innermost; reschedule one to
 *                            none, past, 0.2 or 1 ms or now; read them
 *                            back; or misuse another task's)
 *   39         MISUSE13      what: a call on a group, an iterator or a
 *                            scope that must fail
 *
 * "who" picks, modulo their number, one of the run's tasks whose handle is
 * still valid: main and the caller included, ended ones included. A SPAWN's
 * (and GSPAWN's) mode says the stack (default, 16 KiB, shared, or a bad
 * attr), how the task ends (returning a token, NULL, coro_fail(e), or
 * coro_fail(e) and the token), which e, whether it is named, and whether
 * it starts eagerly (CORO_EAGER, with any stack); a header's middle bits
 * say the same for main, and its two top bits, in the input's own run,
 * turn on allocation failures. Missing operand bytes read as 0. Sleeps,
 * timeouts, scopes' deadlines and blocking durations come out of a budget
 * of 10 ms per run, so an input takes a few tens of ms at most; waits on
 * fds always have a timeout.
 *
 * Each run (the input's, and each nested one) makes its own objects before
 * coro_run: three channels (rendezvous; 1 buffered; 3 buffered, of 24-byte
 * elements), two queues (maxsize 2; unbounded), two mutexes, a semaphore
 * of one permit, an event, a condition; and two one-way byte streams, a
 * pipe and a socketpair, non-blocking, with small buffers, on fd numbers
 * reserved for the run. main first makes them its thread's, with calls
 * that change nothing (an object belongs to the thread of the first loop
 * whose task uses it). Everything handed to a call that may wait lives
 * in memory this file owns, never on the task's stack (a shared-stack
 * task's stack is not in place while it waits).
 *
 * The model. Each task's life is recorded in a struct rec, in memory this
 * file owns, never coro's: started, ended, freed, detached, shielded,
 * cancelled, its coro_fail error and result, what it is blocked in, its
 * timeout scopes. From the records every call's outcome is predicted, or
 * bounded where timing decides (a timeout against a task's end),
 * following coro.h. Whether a task is cancelled is NO, MAYBE or YES: a
 * join that can time out, or a joiner that is cancelled, cancels what it
 * waits on at a moment the model does not see, so those tasks are MAYBE
 * until they show it; so does an awaiter of a group, its members. A
 * scope's deadline is the same: a call made past it ends at its entry with
 * ETIMEDOUT, exactly; one made before it may end so, or time out at it,
 * or complete, so the model bounds it (and takes a call on an object
 * inside such a scope as W_MAYBE, below). A deadlock is
 * seen exactly: coro_run prints its report before cancelling every task,
 * and this file reads coro's stderr (see the filter below).
 *
 * The objects' model follows every call on them in progress (a struct
 * call: W_WAIT, certainly parked; W_DONE, completed with an outcome the
 * model knows; W_MAYBE, either) and what became of every element sent.
 * Waiters are FIFO and the ready queue too, so while no call on an object
 * is W_MAYBE (it is settled) each call's outcome, and which waiter an
 * operation completes, is predicted exactly. A waiter whose timeout may
 * have fired or whose task may have been cancelled unseen becomes W_MAYBE,
 * and so do the waiters an operation may or may not have completed; their
 * outcomes are bounded instead (the MAYBE idea again).
 *
 * Checked at every step of every task: it is not freed, it runs on its own
 * loop's thread as coro_self(), its errno is its own, tasks start in the
 * order they were spawned but for eager ones, which start inside their
 * spawn, and nothing but an eager task runs until its spawn returns (the
 * spawner goes on first when it suspends); every task the model holds a
 * handle to still has its name (and LOOK: coro_dump lists exactly those
 * tasks, members marked with their group). At every call's return: the
 * result or error the model allows; a joined task has ended and its
 * result is what its function returned. For task groups: await_group
 * returns once every member has ended (those spawned meanwhile too), with
 * the first failure in time (a member's coro_fail error, or ECANCELED for
 * one cancelled by anyone before its group), or ECANCELED for a caller
 * cancelled before or while it waits; a failure makes the group cancel
 * the other members, and one spawned into a cancelling group is born
 * cancelled; each member's result reads back as await_task would say it,
 * EAGAIN while it runs; EDEADLK for a member awaiting its own group,
 * EINVAL for a group another task awaits, for spawning into one awaited
 * to its end, and for joining, gathering or waiting on a member, which
 * coro_detach leaves alone; EBUSY for freeing one with a member running
 * or an awaiter, and its members go with it. For timeout scopes: an
 * await_* made past the deadline of a scope that applies (not one held
 * back by a shield that went on after it opened) returns ETIMEDOUT, a
 * sleep and a yield too, unless the caller is cancelled; one the deadline
 * ends returns it too, and a sleep or a wait whose scope's deadline comes
 * first cannot return 0; joins, gathers and groups so ended have cancelled
 * and awaited their tasks; only the scope that bounds a call may expire
 * for it, it must if only it could have timed the call out, and
 * coro_timeout_close says ETIMEDOUT exactly for an expired scope;
 * deadlines read back as set; rescheduling an expired scope, closing one
 * not innermost, and any call on another task's, are refused. For
 * as_completed: each task handed out is the one that ended first among
 * those still claimed, a detached one never (it is freed), EPIPE once
 * none is left, ETIMEDOUT only past the timeout and while none has ended,
 * ECANCELED leaves the tasks running; a task handed out joins at once.
 * For channels and queues: each element received was sent, by a send
 * that did not fail, once, whole, and later in its channel's order than
 * any received before the receive began (FIFO); a receive that failed
 * wrote nothing, a select completed one op, EPIPE comes after a close or
 * shutdown and once drained; task_done is EINVAL past the items put, join
 * waits for the last. For mutexes: one holder (a lock or condition wait
 * that returns 0 while another task holds it breaks it), EDEADLK for the
 * holder, EPERM for anyone else, a condition wait returns holding its
 * mutex, EINVAL beside waiters with another. The semaphore: never more
 * permits taken than given. The event: is_set, and waiters woken by a set.
 * Streams: each read returns the next bytes written, in order; a write
 * that returned 0 wrote them all; readable means something to read; a
 * coro_close wakes waiters, and later calls say EBADF. Misused calls fail
 * as coro.h says: freeing what is waited on, or a mutex a live task holds,
 * is EBUSY; a nested run's calls on its parent's objects (another
 * thread's) are EINVAL and change nothing; NULL, NaN and another task's
 * iterator are EINVAL, and outside a loop the calls of a task are EPERM.
 *
 * After coro_run: every spawned task started once and ended at most once,
 * and one that never ended was left blocked (a join, gather, wait or
 * await_group on a task that never ended either, or a shielded wait on an
 * object) when every task was cancelled: coro_run frees such tasks
 * without running them further; coro_run returned main's outcome, or
 * EDEADLK exactly when it reported a deadlock. The buffers and streams
 * are read out: what is left is exactly what was sent or written and not
 * received, in order, so that nothing was lost or doubled. Every object
 * is freed, a mutex left held too (its holder is gone); and (for the
 * input's own run) coro's allocation counters are back to zero, groups,
 * iterators and scopes left to coro_run included. Any violation aborts,
 * and libFuzzer reports the input.
 *
 * Run one input: build/fuzz/fuzz_program FILE. CORO_FUZZ_TRACE=1 prints
 * each task's operations and what they returned; CORO_FUZZ_VERBOSE=1 lets
 * the runtime's deadlock reports through to stderr. fuzz/repro/ holds
 * inputs that show library bugs found while fuzzing (see its README).
 */
#include "internal.h" /* coro.h, and coro__alloc_stats for the leak check */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TASKS 48        /* tasks per run; further spawns are skipped */
#define MAX_SET 4           /* tasks per gather or wait */
#define MAX_DEPTH 2         /* runs nested in blocking calls, deep */
#define MAX_NESTED 3        /* nested runs per input */
#define TIME_BUDGET 0.010   /* s of sleeps, timeouts, blocking per run */
#define NCHAN 3             /* channels per run: rendezvous, 1, 3 buffered */
#define NQUEUE 2            /* queues per run: maxsize 2, unbounded */
#define NBOX (NCHAN + NQUEUE)
#define NMUTEX 2
#define NGROUPS 6           /* task groups per run; more are not made */
#define NSTREAM 2           /* byte streams per run: a pipe, a socketpair */
#define MAX_ELEMS 384       /* elements and items per run; sends beyond are
                               skipped */
#define MAX_OPS 10          /* per select */
#define ELEM_MAX 24         /* bytes per channel element */
#define MAX_IO 20000        /* bytes per write or read */
#define PATTERN 65521       /* the period of the bytes the streams carry */
#define SEM_INIT 1          /* the semaphore's permits at first */
#define FD_BASE 600         /* fd numbers reserved for the streams: */
#define FD_SLOTS 8          /* four per run, for this many runs at once */
#define EPS 1e-6            /* s: slack for comparing clock readings */
#define MAX_SCOPES 4        /* timeout scopes open per task */

/* Whether a task is cancelled, as far as the model knows. */
enum tri { NO, MAYBE, YES };

/* A timeout scope a task has open. */
struct scope {
    coro_timeout  *s;
    double         when;       /* its deadline, as coro_timeout_when says
                                  it; -1: none */
    int            held;       /* open when the shield went on: held back
                                  while it is on */
    int            expired;    /* coro_timeout_expired, as last seen */
    int            may;        /* an await_* since then may have expired
                                  it */
};

/* What its open scopes do to an await_* a task makes: the scope that
 * bounds it (the earliest deadline of those that apply, the innermost of
 * equals), and whether the call ends at its entry with ETIMEDOUT: YES if
 * the deadline passed before the call, else MAYBE, as it may pass before
 * the call looks (coro_now() and coro_timeout_when() round nanoseconds
 * alike, so the comparison is exact); NO without a deadline. There are no
 * deadlines too far off to come: a run that deadlocks waits for them
 * instead. */
struct bound {
    int            at;         /* that scope, or -1 */
    double         when;       /* its deadline */
    enum tri       fail;
};

/* The call a task is inside, while other tasks run: a wait on a
 * coordination object (B_SYNC) or on an fd (B_FD) comes before the joins,
 * which B_JOIN and above stand for. */
enum blk {
    B_NONE, B_SLEEP, B_BLOCKING, B_SYNC, B_FD, B_JOIN, B_GATHER, B_WAIT,
    B_ASCOMP, B_GROUP
};

enum op {
    OP_SPAWN, OP_SLEEP, OP_YIELD, OP_CANCEL, OP_JOIN, OP_JOIN_TIMEOUT,
    OP_GATHER, OP_WAIT, OP_DETACH, OP_BLOCKING, OP_NESTED, OP_SHIELD,
    OP_FAIL, OP_MISUSE, OP_LOOK, OP_SPAWN2,
    OP_SEND, OP_RECV, OP_CLOSE, OP_SELECT, OP_PUT, OP_GET, OP_QUEUE,
    OP_LOCK, OP_UNLOCK, OP_SEM, OP_EVENT, OP_COND, OP_WRITE, OP_READ,
    OP_FD, OP_SYNC_MISUSE,
    OP_GSPAWN, OP_AWAIT_GROUP, OP_GROUP, OP_AS_COMPLETED, OP_TIMEOUT,
    OP_SCOPE, OP_GSPAWN2, OP_MISUSE13, NOPS
};

/* Bits of a SPAWN's mode byte, and of a program's header byte. */
#define MODE_STACK(m) ((m) & 3u)        /* spawn: default, 16K, shared, bad */
#define MODE_END(m) (((m) >> 2) & 3u)   /* return the token, NULL,
                                           coro_fail(e), coro_fail(e) and
                                           the token */
#define MODE_ERR(m) (((m) >> 4) & 3u)   /* e, from fail_errs */
#define MODE_NAMED 0x40u                /* spawn: coro_attr.name */
#define MODE_EAGER 0x80u                /* spawn: CORO_EAGER */
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
    struct run    *parent;     /* NESTED: the caller's run */
    atomic_int     ran;        /* times fn ran */
};

/* Where a call on a coordination object stands, as far as the model
 * knows: certainly still waiting, completed with a known outcome, or
 * either (a timeout may have fired, a cancellation may have come, or an
 * operation may have completed it). */
enum wst { W_WAIT, W_DONE, W_MAYBE };

/* The calls that may wait on an object: on a box (a channel or a queue:
 * send, receive, select, put, get), and the rest. */
enum ck { C_BOX, C_QJOIN, C_LOCK, C_SEM, C_EVENT, C_COND };

/* How a call on a box is made. */
enum boxcall { K_TRY, K_PLAIN, K_SELECT };

/* One operation of a box call. */
struct boxop {
    int            box;
    int            send;
    int            elem;       /* send: the element it offers */
    unsigned long  seen;       /* receive: the box's highest seq received
                                  before the call */
};

/* A task's call on a coordination object. */
struct call {
    enum ck        k;
    int            obj;        /* C_QJOIN: the box; C_LOCK, C_COND: the
                                  mutex */
    enum wst       st;
    int            outcome;    /* W_DONE: what the call returns */
    int            alt;        /* W_DONE, W_WAIT: another outcome allowed
                                  (an injected ENOMEM), or 0 */
    unsigned       chosen;     /* W_DONE, C_BOX: the ops it may report */
    int            got;        /* W_DONE receive: the element handed over */
    enum boxcall   how;        /* C_BOX */
    unsigned long  arrival;    /* order of calls: waiters are FIFO */
    double         t0, to;     /* when it was called; its timeout */
    struct bound   b;          /* what the caller's scopes do to it */
    int            emaybe;     /* W_DONE: it may also end at its entry
                                  (cancelled, or its scope passed) */
    unsigned long  mark;       /* event sets, cond notifies or queue
                                  emptyings before the call */
    int            ready;      /* C_EVENT: set at the call; C_QJOIN: maybe
                                  nothing unfinished at the call */
    int            nops;       /* C_BOX */
    struct boxop   ops[MAX_OPS];
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
    int            limbo;      /* detached and ended while an iterator
                                  claims it: freed when its reader next
                                  looks, a moment the model does not see,
                                  so not to be touched */
    int            detached;
    int            eager;      /* spawned with CORO_EAGER */
    int            grp;        /* the group it belongs to, or -1 */
    enum tri       gcx;        /* its group cancelled it before anyone
                                  else did: its ECANCELED is no failure */
    int            gwait;      /* B_GROUP: the group it awaits */
    coro_completions *iter;    /* B_ASCOMP: its iterator */
    int            shield;     /* coro_shield in effect */
    int            nscopes;    /* timeout scopes open, innermost last */
    struct scope   scopes[MAX_SCOPES];
    enum tri       cx;         /* cancelled */
    int            error;      /* the coro_fail error in effect */
    void          *ret;        /* what its function returned */
    unsigned long  end_seq;    /* 1, 2, ... in the order tasks ended */
    int            end_err[2]; /* what await_task may report for it: one
                                  value twice, or 0 and ECANCELED */
    enum blk       blk;        /* the call it is in */
    int            timed;      /* that call has a timeout */
    enum coro_when when;       /* B_WAIT: its condition */
    int            nt;         /* B_JOIN, B_GATHER, B_WAIT: the tasks;
                                  B_ASCOMP: those claimed */
    int            targets[MAX_SET];
    int            waiter;     /* the task inside a join, gather or wait
                                  on this one, or -1 */
    struct job     job;        /* its blocking call's argument */
    struct call    call;       /* B_SYNC: the call it is in */
    unsigned       fdmark;     /* B_FD: calls begun on its fd's end
                                  before it */
    struct bound   fdb;        /* B_FD: what its scopes do to the call */
    int            fdbusy;     /* B_FD: calls on that end as it began */
    /* What its calls hand to coro: memory this file owns, never the
     * task's stack, which a shared-stack task does not keep in place
     * while it waits. */
    coro_chan_op   cops[MAX_OPS];
    unsigned char  ebuf[MAX_OPS][ELEM_MAX];
    size_t         chosen;
    void          *item;
};

/* What happened to an element sent on a channel or an item put on a
 * queue. */
enum est {
    E_OFFERED,                 /* its send is in progress */
    E_FAILED,                  /* its send returned an error */
    E_BUF,                     /* certainly in the box's buffer */
    E_SENT,                    /* its send returned 0: in the buffer or
                                  handed over, the model is not sure */
    E_TAKEN,                   /* handed to a receiver still in its call */
    E_RECEIVED,                /* a receive returned it */
    E_DRAINED                  /* left in the buffer, read after the run */
};

struct elem {
    int            box;
    enum est       st;
    int            sender;
    int            taker;      /* E_TAKEN: the task it went to */
    unsigned long  seq;        /* its place in the box's order of offers */
};

/* A channel or a queue: a box of elements, first in, first out. */
struct box {
    coro_chan     *c;          /* a channel, or */
    coro_queue    *q;          /* a queue */
    size_t         size;       /* bytes per element */
    size_t         cap;        /* elements buffered at most; SIZE_MAX: no
                                  bound */
    int            closed;     /* closed or shut down */
    unsigned long  seqs;       /* elements offered so far */
    unsigned long  seen;       /* the highest seq received so far */
    int            done;       /* queue: task_done calls that returned 0 */
    unsigned long  zeros;      /* queue: task_done calls that may have
                                  left nothing unfinished */
};

/* A byte stream: a pipe or a socketpair, one way, on fd numbers reserved
 * for this run so that a closed one is never another thread's. Byte i
 * carries pattern[(i + salt) % PATTERN]. */
struct stream {
    int            fd[2];      /* its read end and its write end */
    int            open[2];
    int            sock;
    size_t         salt;
    unsigned long  w, r;       /* bytes written, bytes read */
    unsigned long  hi;         /* !wexact: bytes written at most */
    int            wexact;     /* w is known: a write that failed wrote
                                  some bytes, counted when no read is in
                                  progress */
    int            writer;     /* the task in await_write_all, or -1 */
    size_t         wlen;       /* how much it writes */
    int            reader;     /* the task in await_read(_full), or -1 */
    int            busy[2];    /* tasks in calls on each end */
    unsigned       calls[2];   /* calls begun on each end */
    int            lost;       /* its read end was closed: bytes are no
                                  longer counted */
    size_t         got;
    unsigned char  buf[MAX_IO];
};

/* A run's coordination objects and streams, and the model of them. */
struct objs {
    struct box     box[NBOX];  /* channels, then queues */
    coro_mutex    *mutex[NMUTEX];
    int            holder[NMUTEX]; /* the task known to hold it, or -1 */
    coro_sem      *sem;
    int            released;   /* coro_sem_release calls that returned 0 */
    int            acquired;   /* await_sem_acquire calls that did */
    coro_event    *event;
    int            set;
    unsigned long  sets;
    coro_cond     *cond;
    unsigned long  notifies;
    int            slot;       /* the fd numbers reserved, or -1 */
    struct stream  stream[NSTREAM];
    unsigned long  arrivals;
    int            nelems;
    struct elem    elems[MAX_ELEMS];
};

/* A task group, as the model sees it. Its first failure in time is
 * known exactly unless a member's cancellation may or may not have come
 * from the group first; errs[] then holds what it may be (0: none). */
struct grp {
    coro_group    *g;          /* NULL once freed */
    int            n;          /* members spawned, in order: */
    int            members[MAX_TASKS];
    int            waiter;     /* the task in await_group, or -1 */
    int            finished;   /* await_group returned: no new members */
    enum tri       cancelling; /* it cancelled its members */
    int            nerrs;
    int            errs[6];
};

/* One coro_run: the input's own, or one nested in a blocking call. */
struct run {
    const uint8_t *prog;       /* header, then main's program */
    size_t         len;
    int            depth;      /* 0: the input's run */
    int            fail;       /* allocation failures are being injected */
    coro_task     *outer;      /* nested: the task whose blocking call runs
                                  this one (another loop's) */
    struct run    *parent;     /* nested: that task's run, whose objects
                                  are another thread's */
    int            n;          /* records in use: the tasks spawned */
    struct rec     recs[MAX_TASKS];
    enum tri       closing;    /* main ended or deadlock: tasks spawned
                                  now are born cancelled */
    int            deadlocked; /* coro_run reported a deadlock */
    unsigned       reports;    /* tls_reports when last looked */
    unsigned long  end_seq;    /* tasks ended so far */
    unsigned long  steps;      /* steps taken by its tasks so far */
    int            eagers[MAX_TASKS]; /* the tasks inside their eager
                                  spawns, innermost last: only the last
                                  may run */
    int            neagers;
    double         budget;     /* seconds left for sleeps, timeouts and
                                  blocking calls */
    int            ngroups;    /* groups made */
    struct grp     groups[NGROUPS];
    struct objs    objs;
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

static void streams_init(void);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* A write to a pipe whose read end a program closed is EPIPE, not a
     * signal that ends the fuzzer. */
    signal(SIGPIPE, SIG_IGN);
    streams_init();
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
    int cand[MAX_TASKS];
    int n = 0;
    for (int i = 0; i < run->n; i++)
        if (!run->recs[i].freed && !run->recs[i].limbo)
            cand[n++] = i;
    return n ? cand[b % (unsigned)n] : -1;
}

static const char *expected_name(const struct rec *r)
{
    if (r->idx == 0)
        return "main";
    return r->mode & MODE_NAMED ? "fuzz-task" : "task_main";
}

/* Raises what the model knows of task i's cancellation, by its group
 * (by_group) or by anyone else. A task inside a join or gather,
 * unshielded, that is cancelled wakes and cancels what it waits on
 * (structured joins), and one in await_group its group's members: those
 * may end cancelled. An ended task is past cancelling. */
static void sync_cancel(struct rec *r, enum tri level);
static void group_cancel(struct run *run, int gi, enum tri level);

static void mark_cancel_by(struct run *run, int i, enum tri level,
                           int by_group)
{
    struct rec *r = &run->recs[i];
    if (r->ends)
        return;
    if (by_group && level > NO && r->cx < YES && r->gcx == NO)
        r->gcx = r->cx == NO ? level : MAYBE;
    if (r->cx >= level)
        return;
    r->cx = level;
    sync_cancel(r, level);
    if (r->shield)
        return;
    if (r->blk == B_JOIN || r->blk == B_GATHER)
        for (int k = 0; k < r->nt; k++)
            mark_cancel_by(run, r->targets[k], MAYBE, 0);
    if (r->blk == B_GROUP)
        group_cancel(run, r->gwait, MAYBE);
}

static void mark_cancel(struct run *run, int i, enum tri level)
{
    mark_cancel_by(run, i, level, 0);
}

/* Group gi cancels its members (YES), or may have (MAYBE): those not
 * cancelled yet are its. */
static void group_cancel(struct run *run, int gi, enum tri level)
{
    struct grp *g = &run->groups[gi];
    if (g->cancelling >= level)
        return;
    g->cancelling = level;
    for (int a = 0; a < g->n; a++)
        mark_cancel_by(run, g->members[a], level, 1);
}

/* coro_run cancels every task: main ended, or a deadlock. Then the tasks
 * in await_group that this wakes cancel their groups, after the loop did
 * the members. */
static void cancel_all(struct run *run)
{
    run->closing = YES;
    for (int i = 0; i < run->n; i++) {
        if (!run->recs[i].ends) {
            run->recs[i].cx = YES;
            sync_cancel(&run->recs[i], YES);
        }
    }
    for (int i = 0; i < run->n; i++) {
        const struct rec *r = &run->recs[i];
        if (!r->ends && r->blk == B_GROUP && !r->shield)
            group_cancel(run, r->gwait, MAYBE);
    }
}

/* Catches up with a deadlock report printed since the last look: coro_run
 * has cancelled every task, and new ones are born cancelled. */
static void sync_reports(struct run *run)
{
    if (tls_reports == run->reports)
        return;
    run->reports = tls_reports;
    run->deadlocked = 1;
    cancel_all(run);
}

/* Whether the model may use t's handle. */
static int usable(const struct rec *t)
{
    return !t->freed && !t->limbo;
}

static int ended_with(const struct rec *t, int err)
{
    return err == t->end_err[0] || err == t->end_err[1];
}

/* The model's own bookkeeping, and every valid handle still names its
 * task (a task freed early would be a use after free here, under ASan,
 * or a stranger's name once its memory is reused). */
static void scopes_check(struct rec *r);

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
        if (r->blk == B_GROUP)
            CHECK(run->groups[r->gwait].waiter == i, "task %d awaits group "
                  "%d, which task %d awaits", i, r->gwait,
                  run->groups[r->gwait].waiter);
        if (usable(r)) {
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
    CHECK(!run->neagers || r->idx == run->eagers[run->neagers - 1],
          "task %d ran inside task %d's eager spawn", r->idx,
          run->eagers[run->neagers - 1]);
    run->steps++;
    sync_reports(run);
    check_model(run);
    scopes_check(r);
}

/* A sleep, a yield or a blocking call as to cancellation: with the shield
 * on, never ECANCELED; cancelled before the call, always; never cancelled,
 * never. Cancelled while inside: a yield (and a sleep of 0, which is one)
 * reports it; a sleep whose timer fired first, or a blocking call whose
 * job returned first, returns 0. */
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
 * is also cancelled, or past a scope's deadline, the argument check or
 * ECANCELED or ETIMEDOUT, is not said: all are taken. */
static struct bound bound_at(const struct rec *r, double now);
static int entry_ok(const struct rec *r, const struct bound *b, int err,
                    double t1);

static int misuse_ok(struct rec *r, int err, int want)
{
    double now = coro_now();
    struct bound b = bound_at(r, now);
    if (err == ECANCELED && !r->shield && r->cx != NO) {
        r->cx = YES;
        return 1;
    }
    return err == want || (err == ETIMEDOUT && entry_ok(r, &b, err, now));
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
        if (t->detached || t->waiter >= 0 || t->grp >= 0)
            return EINVAL;
        for (int b = 0; b < a; b++)
            if (idx[b] == idx[a])
                return EINVAL;
    }
    return 0;
}

/* The caller becomes the awaiter of k tasks. A join or gather that can
 * time out (scope says how surely its scope ends it), or whose caller is
 * (maybe) cancelled and unshielded, cancels what it waits on. */
static void begin_wait(struct rec *r, enum blk kind, const int *idx, int k,
                       int timed, enum tri scope)
{
    struct run *run = r->run;
    r->blk = kind;
    r->timed = timed;
    r->nt = k;
    for (int a = 0; a < k; a++) {
        r->targets[a] = idx[a];
        run->recs[idx[a]].waiter = r->idx;
    }
    if (kind == B_WAIT || kind == B_ASCOMP)
        return; /* they cancel nothing */
    enum tri level = timed ? MAYBE : NO;
    if (scope > level)
        level = scope;
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
 * Timeout scopes
 *
 * Each task's open scopes are kept with their deadlines (read back with
 * coro_timeout_when) and their expired flags. Before each await_* the
 * model finds the scope that bounds it: past its deadline, the call must
 * end at its entry with ETIMEDOUT (unless the caller is cancelled, which
 * comes first), doing nothing; with a deadline yet to come, the call may
 * so end, or time out at the deadline, or complete: the MAYBE idea, so a
 * call on an object inside a scope that runs is not predicted exactly.
 * After the call, the bounding scope may have expired if its deadline had
 * come, and must have if the call timed out and only the scope could have
 * done it; every other scope stays as it was. Each step reads the flags
 * back, and coro_timeout_close must say ETIMEDOUT exactly for an expired
 * scope. A shield holds back the scopes open when it went on, as coro.h
 * says: scopes opened inside the shield apply.
 * ---------------------------------------------------------------------- */

static struct bound bound_at(const struct rec *r, double now)
{
    struct bound b = { -1, -1, NO };
    for (int k = r->nscopes - 1; k >= 0; k--) {
        const struct scope *sc = &r->scopes[k];
        if ((r->shield && sc->held) || sc->when < 0)
            continue;
        if (b.at < 0 || sc->when < b.when) {
            b.at = k;
            b.when = sc->when;
        }
    }
    if (b.at >= 0)
        b.fail = b.when < now ? YES : MAYBE;
    return b;
}

/* Whether the scope's deadline had come by t. */
static int timed_out(const struct bound *b, double t)
{
    return b->at >= 0 && b->when <= t;
}

/* Whether an await_* r makes under bound b ends at its entry, doing
 * nothing: with ECANCELED if r is cancelled and unshielded (that is
 * looked at first), else ETIMEDOUT if its scope has passed. YES with
 * *err, MAYBE or NO. With YES and ETIMEDOUT, a MAYBE cancelled r may
 * still say ECANCELED. */
static enum tri entry_fails(const struct rec *r, const struct bound *b,
                            int *err)
{
    enum tri cx = r->shield ? NO : r->cx;
    *err = cx == YES ? ECANCELED : ETIMEDOUT;
    if (cx == YES || b->fail == YES)
        return YES;
    return cx > b->fail ? cx : b->fail;
}

/* An outcome an await_* under bound b may have from its entry, or from a
 * cancellation or a deadline the model did not see: ECANCELED if r is
 * (maybe) cancelled and unshielded, ETIMEDOUT if its scope's deadline had
 * come by t1. */
static int entry_ok(const struct rec *r, const struct bound *b, int err,
                    double t1)
{
    if (err == ECANCELED)
        return !r->shield && r->cx != NO;
    return err == ETIMEDOUT && timed_out(b, t1);
}

/* After an await_* r made under bound b, which returned err at t1: the
 * bounding scope may have expired if its deadline had come and the call
 * timed out (or, loose, it ended otherwise after its entry looked at the
 * scope: a refused call); it must have if the call timed out and only the
 * scope could have done it (scoped), or at its entry. */
static void scope_after(struct rec *r, const struct bound *b, int err,
                        double t1, int loose, int scoped)
{
    if (b->at < 0)
        return;
    struct scope *sc = &r->scopes[b->at];
    if ((err == ETIMEDOUT || loose) && b->when <= t1)
        sc->may = 1;
    if (err != ETIMEDOUT || (!scoped && b->fail != YES))
        return;
    CHECK(b->when <= t1 && coro_timeout_expired(sc->s), "task %d: a call "
          "timed out by scope %d (deadline %.9f) returned ETIMEDOUT at "
          "%.9f, and the scope is %sexpired", r->idx, b->at, b->when, t1,
          coro_timeout_expired(sc->s) ? "" : "not ");
    sc->expired = 1;
}

/* After calls that may have looked at r's scopes whatever they returned
 * (misuses): the bounding one may have expired if its deadline came. */
static void scope_loose(struct rec *r)
{
    double now = coro_now();
    struct bound b = bound_at(r, now);
    scope_after(r, &b, 0, now, 1, 0);
}

/* Each step: r's scopes' expired flags are as the model had them, but
 * for one an await_* may have expired. */
static void scopes_check(struct rec *r)
{
    for (int k = 0; k < r->nscopes; k++) {
        struct scope *sc = &r->scopes[k];
        int e = coro_timeout_expired(sc->s);
        CHECK(e == sc->expired || (e && sc->may), "task %d: scope %d "
              "(deadline %.9f) became %sexpired", r->idx, k, sc->when,
              e ? "" : "un");
        sc->expired = e;
        sc->may = 0;
    }
}

/* The deadlines TIMEOUT and SCOPE give: none, now, from the budget, or
 * past. None is the only deadline that never comes: a run that deadlocks
 * waits for any other. */
enum span { S_NONE, S_NOW, S_BUDGET, S_PAST, S_ZERO };

/* The deadline, in coro_now() seconds, that span asks for from t: -1 for
 * none; S_ZERO is the absolute 0. */
static double span_when(struct run *run, enum span sp, unsigned b, double t)
{
    static const double budget[] = { 2e-4, 1e-3, 2e-3 };
    switch (sp) {
    case S_NONE:
        return -1;
    case S_NOW:
        return t;
    case S_BUDGET:
        return t + charge(run, budget[b % 3]);
    case S_PAST:
        return t - 1e-3;
    default:
        return 0;
    }
}

/* TIMEOUT: how (a span; coro_timeout_open, or _open_at with bit 7). A
 * relative deadline is read back within the clock readings around the
 * call, an absolute one as given (to a nanosecond). */
static void op_timeout(struct rec *r, struct cursor *c)
{
    static const enum span spans[8] = { S_NONE, S_NOW, S_BUDGET, S_BUDGET,
                                        S_BUDGET, S_NONE, S_PAST, S_ZERO };
    unsigned how = next(c);
    enum span sp = spans[how & 7];
    int at = (how & 0x80) || (how & 7) >= 5; /* 5: open_at(-1), none */
    if (r->nscopes == MAX_SCOPES)
        return;
    double t0 = coro_now();
    double want = span_when(r->run, sp, (how & 7) + 1, t0);
    coro_timeout *s = NULL;
    int err = at ? coro_timeout_open_at(want, &s)
                 : coro_timeout_open(want < 0 ? -1 : want - t0, &s);
    double t1 = coro_now();
    note(r, "open scope %d (%s %.9f) -> %d", r->nscopes, at ? "at" : "in",
         want, err);
    CHECK(err == 0 || (r->run->fail && err == ENOMEM), "task %d: "
          "coro_timeout_open returned %d", r->idx, err);
    CHECK(err ? s == NULL : s != NULL, "task %d: coro_timeout_open "
          "returned %d and %p", r->idx, err, (void *)s);
    if (err)
        return;
    double when = coro_timeout_when(s);
    int ok = want < 0 ? when == -1
             : at     ? fabs(when - want) < 2e-9
                      : when >= want - EPS && when <= want + t1 - t0 + EPS;
    CHECK(ok && !coro_timeout_expired(s), "task %d: a scope opened for "
          "%.9f (%s, %.9f to %.9f) has deadline %.9f, expired %d", r->idx,
          want, at ? "at" : "in", t0, t1, when, coro_timeout_expired(s));
    r->scopes[r->nscopes++] = (struct scope){ s, when, 0, 0, 0 };
}

/* Closes r's innermost scope: ETIMEDOUT exactly if it expired. */
static void scope_close(struct rec *r)
{
    struct scope *sc = &r->scopes[r->nscopes - 1];
    int err = coro_timeout_close(sc->s);
    note(r, "close scope %d (expired %d) -> %d", r->nscopes - 1,
         sc->expired, err);
    CHECK(err == (sc->expired ? ETIMEDOUT : 0), "task %d: closing scope %d "
          "(expired %d) returned %d", r->idx, r->nscopes - 1, sc->expired,
          err);
    r->nscopes--;
}

/* Moves one of r's scopes: EINVAL once it expired (asyncio refuses to
 * reschedule a timeout that fired). */
static void scope_move(struct rec *r, unsigned how)
{
    static const enum span spans[4] = { S_NONE, S_PAST, S_BUDGET, S_NOW };
    int k = (int)((how >> 3) & 3) % r->nscopes;
    struct scope *sc = &r->scopes[k];
    double want = span_when(r->run, spans[(how >> 5) & 3], how >> 7,
                            coro_now());
    int err = coro_timeout_reschedule(sc->s, want);
    note(r, "reschedule scope %d to %.9f (expired %d) -> %d", k, want,
         sc->expired, err);
    CHECK(err == (sc->expired ? EINVAL : 0), "task %d: rescheduling scope "
          "%d (expired %d) returned %d", r->idx, k, sc->expired, err);
    if (err)
        return;
    sc->when = coro_timeout_when(sc->s);
    CHECK(want < 0 ? sc->when == -1 : fabs(sc->when - want) < 2e-9,
          "task %d: scope %d rescheduled to %.9f has deadline %.9f", r->idx,
          k, want, sc->when);
}

/* Each scope's deadline and flag read back as the model has them; and a
 * scope but the innermost does not close. */
static void scope_look(struct rec *r)
{
    note(r, "look at %d scopes", r->nscopes);
    for (int k = 0; k < r->nscopes; k++) {
        const struct scope *sc = &r->scopes[k];
        CHECK(coro_timeout_when(sc->s) == sc->when &&
                  coro_timeout_expired(sc->s) == sc->expired,
              "task %d: scope %d has deadline %.9f, expired %d; not %.9f, "
              "%d", r->idx, k, coro_timeout_when(sc->s),
              coro_timeout_expired(sc->s), sc->when, sc->expired);
        CHECK(k == r->nscopes - 1 || coro_timeout_close(sc->s) == EINVAL,
              "task %d: scope %d closed before scope %d", r->idx, k,
              r->nscopes - 1);
    }
}

/* Another task's scope refuses the caller: EINVAL, -1 and 0, and stays
 * as it was. */
static void scope_foreign(struct rec *r, unsigned b)
{
    const struct run *run = r->run;
    int cand[MAX_TASKS];
    int n = 0;
    for (int i = 0; i < run->n; i++)
        if (i != r->idx && usable(&run->recs[i]) && run->recs[i].nscopes)
            cand[n++] = i;
    if (!n)
        return;
    const struct rec *w = &run->recs[cand[b % (unsigned)n]];
    const struct scope *sc = &w->scopes[(b >> 4) % (unsigned)w->nscopes];
    note(r, "misuse a scope of task %d", w->idx);
    CHECK(coro_timeout_close(sc->s) == EINVAL &&
              coro_timeout_reschedule(sc->s, 1) == EINVAL &&
              coro_timeout_when(sc->s) == -1 &&
              coro_timeout_expired(sc->s) == 0,
          "task %d: a scope of task %d let it in", r->idx, w->idx);
}

/* SCOPE: how (close the innermost; reschedule one; look at them all; or
 * misuse another task's). */
static void op_scope(struct rec *r, struct cursor *c)
{
    unsigned how = next(c);
    if ((how & 7) == 7) {
        scope_foreign(r, how >> 3);
    } else if (!r->nscopes) {
        CHECK(coro_timeout_close(NULL) == EINVAL, "closing no scope");
    } else if ((how & 7) == 6) {
        scope_look(r);
    } else if ((how & 7) >= 4) {
        scope_move(r, how);
    } else {
        scope_close(r);
    }
}

/* ----------------------------------------------------------------------
 * Tasks
 * ---------------------------------------------------------------------- */

static void exec(struct rec *r);
static void objs_bind(struct rec *r);

/* Whether member m's end is a failure of its group: an error, but for
 * ECANCELED from the group's own cancellation; *e is that error. */
static enum tri member_failed(const struct rec *m, int *e)
{
    enum tri f[2];
    *e = 0;
    for (int k = 0; k < 2; k++) {
        int v = m->end_err[k];
        if (v)
            *e = v;
        if (v == 0)
            f[k] = NO;
        else if (v != ECANCELED)
            f[k] = YES;
        else
            f[k] = m->gcx == YES ? NO : m->gcx == NO ? YES : MAYBE;
    }
    return f[0] == f[1] ? f[0] : MAYBE;
}

/* Member m ended: a failure is the group's first if none came before,
 * and makes the group cancel the rest. */
static void group_ended(struct run *run, const struct rec *m)
{
    struct grp *g = &run->groups[m->grp];
    int e;
    enum tri f = member_failed(m, &e);
    if (f == NO)
        return;
    int none = -1;
    for (int k = 0; k < g->nerrs; k++)
        if (g->errs[k] == 0)
            none = k;
    if (none >= 0 && f == YES)
        g->errs[none] = g->errs[--g->nerrs];
    int known = 0;
    for (int k = 0; k < g->nerrs; k++)
        known |= g->errs[k] == e;
    if (none >= 0 && !known)
        g->errs[g->nerrs++] = e;
    group_cancel(run, m->grp, f);
}

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
    if (r->grp >= 0)
        group_ended(run, r);
    if (r->idx == 0)
        cancel_all(run); /* coro_run cancels every task as main ends */
    if (r->detached && r->waiter < 0)
        r->freed = 1;
    else if (r->detached && run->recs[r->waiter].blk == B_ASCOMP)
        r->limbo = 1;
    note(r, "ends: error %d, result %p, may be joined as %d/%d", r->error,
         ret, r->end_err[0], r->end_err[1]);
    check_model(run);
    return ret;
}

/* The ready queue is FIFO and a new task joins its back: tasks start in
 * the order they were spawned, but for eager ones, which start inside
 * their spawn, before any other task runs. */
static void check_start(const struct rec *r)
{
    const struct run *run = r->run;
    if (run->neagers) {
        CHECK(r->idx == run->eagers[run->neagers - 1], "task %d started "
              "inside task %d's eager spawn", r->idx,
              run->eagers[run->neagers - 1]);
        return;
    }
    int prev = r->idx - 1;
    while (prev > 0 && run->recs[prev].eager)
        prev--;
    CHECK(r->idx == 0 || run->recs[prev].starts, "task %d started before "
          "task %d", r->idx, prev);
}

static void *task_main(void *arg)
{
    struct rec *r = arg;
    CHECK(r->starts == 0, "task %d started again", r->idx);
    check_start(r);
    r->starts = 1;
    if (r->idx == 0 || r->eager)
        r->t = coro_self(); /* its spawn has not returned it yet */
    CHECK(r->t && coro_self() == r->t, "task %d is not coro_self()",
          r->idx);
    errno = r->errno_mark;
    note(r, "starts (cancelled %d)", r->cx);
    if (r->idx == 0)
        objs_bind(r);
    exec(r);
    return finish(r);
}

/* The attr a SPAWN's mode asks for; returns the error the spawn must
 * give: EINVAL for a bad attr, else 0. */
static int spawn_attr(const struct run *run, unsigned mode, coro_attr *attr)
{
    unsigned kind = MODE_STACK(mode);
    int want = 0;
    if (kind == 2 && run->fail)
        kind = 1; /* a shared-stack switch aborts when saving frames finds
                     no memory (sched.c, shared_install) */
    if (kind == 1) {
        attr->stack_size = 16 << 10;
    } else if (kind == 2) {
        attr->flags = CORO_SHARED_STACK;
    } else if (kind == 3) {
        want = EINVAL;
        switch (MODE_ERR(mode) % 3) {
        case 0:
            attr->stack_size = 4096; /* below 16 KiB */
            break;
        case 1:
            attr->flags = 0x80000000u; /* unknown, now and later */
            break;
        default:
            attr->flags = CORO_SHARED_STACK; /* deeper than the shared
                                                stack */
            attr->stack_size = (size_t)1 << 30;
            break;
        }
    }
    if (mode & MODE_NAMED)
        attr->name = "fuzz-task";
    if (mode & MODE_EAGER)
        attr->flags |= CORO_EAGER;
    return want;
}

/* Makes the coro_spawn or coro_group_spawn call for c; an eager task runs
 * inside it, so c is a record of the run, and a member of its group,
 * already. */
static coro_task *spawn_call(struct run *run, struct rec *c,
                             const coro_attr *attr)
{
    static const coro_attr plain;
    struct grp *g = c->grp >= 0 ? &run->groups[c->grp] : NULL;
    int dflt = memcmp(attr, &plain, sizeof plain) == 0;
    coro_task *t;
    run->n++;
    if (g)
        g->members[g->n++] = c->idx;
    if (c->eager)
        run->eagers[run->neagers++] = c->idx;
    errno = 0;
    if (g)
        t = coro_group_spawn(g->g, dflt ? NULL : attr, task_main, c);
    else if (dflt)
        t = coro_spawn(task_main, c);
    else
        t = coro_spawn_attr(attr, task_main, c);
    if (c->eager)
        run->neagers--;
    if (!t) {
        run->n--; /* nothing ran: no task took a record meanwhile */
        if (g)
            g->n--;
    }
    return t;
}

/* c joins group gi: born cancelled by it if it is cancelling. */
static int spawn_into(struct run *run, struct rec *c, int gi)
{
    const struct grp *g = &run->groups[gi];
    c->grp = gi;
    c->gcx = g->cancelling;
    if (c->cx < g->cancelling)
        c->cx = g->cancelling;
    return g->finished ? EINVAL : 0;
}

static void spawn(struct rec *r, const uint8_t *ops, size_t n, unsigned mode,
                  int gi)
{
    struct run *run = r->run;
    if (run->n == MAX_TASKS)
        return;
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
    c->grp = -1;
    c->eager = (mode & MODE_EAGER) != 0;
    coro_attr attr = { 0 };
    int want = spawn_attr(run, mode, &attr);
    if (gi >= 0 && spawn_into(run, c, gi))
        want = EINVAL; /* an awaited group takes no new members */
    coro_task *t = spawn_call(run, c, &attr);
    int e = errno;
    if (!t) {
        note(r, "spawn (mode %#x, group %d) failed: %d", mode, gi, e);
        CHECK(want ? e == want : run->fail && e == ENOMEM,
              "coro_spawn (mode %#x) failed with %d", mode, e);
        errno = r->errno_mark;
        return;
    }
    CHECK(!want, "coro_spawn took a bad attr (mode %#x)", mode);
    CHECK(e == 0, "coro_spawn wrote errno %d", e);
    CHECK(c->starts == c->eager, "task %d %s its spawn", c->idx,
          c->eager ? "did not start in" : "ran before its spawner left");
    CHECK(!c->eager || c->t == t, "eager task %d's coro_self() is not what "
          "its spawn returned", c->idx);
    errno = r->errno_mark;
    c->t = t;
    note(r, "spawn (mode %#x, %zu bytes, group %d) -> task %d", mode, n,
         gi, c->idx);
}

static void op_spawn(struct rec *r, struct cursor *c)
{
    size_t len = next(c) % 32;
    unsigned mode = next(c);
    if (len > c->n - c->pc)
        len = c->n - c->pc;
    const uint8_t *ops = c->b + c->pc;
    c->pc += len;
    spawn(r, ops, len, mode, -1);
}

static void op_sleep(struct rec *r, struct cursor *c, int yield)
{
    static const double sleeps[] = { -1, 0, 1e-4, 5e-4, 1e-3, 2e-3 };
    double d = yield ? 0 : charge(r->run, sleeps[next(c) % 6]);
    enum tri cx0 = r->cx;
    r->blk = B_SLEEP;
    double t0 = coro_now();
    struct bound b = bound_at(r, t0);
    int err = yield ? await_yield() : await_sleep(d);
    double t1 = coro_now(), took = t1 - t0;
    r->blk = B_NONE;
    sync_reports(r->run);
    note(r, "%s(%g) -> %d", yield ? "yield" : "sleep", d, err);
    /* The scope ends it: its deadline passed, or comes before the
     * sleep's own, which is t0 + d or later. */
    int scoped = b.fail == YES || (d > 0 && timed_out(&b, t0 + d - EPS));
    int ok = err == ETIMEDOUT ? timed_out(&b, t1) && (r->shield || cx0 != YES)
                              : cancel_ok(r, cx0, err, yield || d <= 0) &&
                                    !(scoped && err == 0);
    CHECK(ok, "task %d: %s(%g) returned %d (cancelled %d then %d, shield "
          "%d, scope's deadline %.9f from %.9f to %.9f)", r->idx,
          yield ? "await_yield" : "await_sleep", d, err, cx0, r->cx,
          r->shield, b.when, t0, t1);
    scope_after(r, &b, err, t1, 0, 1);
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
    if (!t->detached && t->grp < 0) { /* a member stays its group's */
        t->detached = 1;
        if (t->ends && t->waiter < 0)
            t->freed = 1;
        else if (t->ends && r->run->recs[t->waiter].blk == B_ASCOMP)
            t->limbo = 1;
    }
}

static void join_task(struct rec *r, int i, int timed, double to);

static void op_join(struct rec *r, struct cursor *c, int timed)
{
    static const double timeouts[] = { -1, 0, 2e-4, 1e-3, 2e-3 };
    struct run *run = r->run;
    int i = pick(run, next(c));
    double to = timed ? charge(run, timeouts[next(c) % 5]) : -1;
    join_task(r, i, timed, to);
}

/* Joins task i, with a timeout if timed. */
static void join_task(struct rec *r, int i, int timed, double to)
{
    struct run *run = r->run;
    struct rec *t = &run->recs[i];
    void *res = UNTOUCHED;
    int want = claim_error(r, &i, 1);
    double t0 = coro_now();
    struct bound b = bound_at(r, t0);
    if (want) {
        int err = timed ? await_task_timeout(t->t, to, &res)
                        : await_task(t->t, &res);
        note(r, "join task %d -> %d", i, err);
        CHECK(err == want && res == UNTOUCHED, "task %d: a join of task %d "
              "returned %d, not %d", r->idx, i, err, want);
        scope_after(r, &b, err, coro_now(), 1, 0);
        return;
    }
    enum tri cx0 = r->cx;
    int ended = t->ends;
    begin_wait(r, B_JOIN, &i, 1, to >= 0, b.fail);
    int err = timed ? await_task_timeout(t->t, to, &res)
                    : await_task(t->t, &res);
    double t1 = coro_now(), took = t1 - t0;
    sync_reports(run);
    note(r, "join task %d (timeout %g) -> %d, result %p", i, to, err, res);
    CHECK(t->ends == 1, "task %d: the join returned %d before task %d "
          "ended", r->idx, err, i);
    CHECK(res == t->ret, "task %d: the join of task %d gave result %p, not "
          "%p", r->idx, i, res, t->ret);
    int own = to >= 0 && took >= to - 1e-6;
    int ok = ended_with(t, err) || (err == ETIMEDOUT && own) ||
             entry_ok(r, &b, err, t1);
    if (ended && (r->shield || cx0 == NO) && b.fail == NO)
        ok = ended_with(t, err); /* nothing to wait for */
    if (!r->shield && cx0 == YES) {
        /* A caller cancelled before the join: coro.h's Returns line puts
         * t's coro_fail error first, sched.c (await_claimed) returns
         * ECANCELED whatever t did. Both are taken until that is
         * settled. */
        ok = err == ECANCELED || (t->error && err == t->error);
    } else if (b.fail == YES) {
        ok = err == ETIMEDOUT || entry_ok(r, &b, err, t1);
    }
    CHECK(ok, "task %d: %s of task %d returned %d (task's error %d/%d, "
          "timeout %g, cancelled %d then %d, shield %d)", r->idx,
          timed ? "await_task_timeout" : "await_task", i, err, t->end_err[0],
          t->end_err[1], to, cx0, r->cx, r->shield);
    if (err == ECANCELED && !ended_with(t, err))
        r->cx = YES;
    /* A join whose timeout the caller's cancellation overrode may have
     * looked at the scope once more, after waiting for t; and a scope's
     * deadline that came while it waited gives t's own error if t failed
     * with one as it was cancelled (coro.h, await_task_timeout), the scope
     * expired all the same. */
    int own_error = err && err != ECANCELED && err != ETIMEDOUT;
    scope_after(r, &b, err, t1, err == ECANCELED || own_error, !own);
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
    double t0 = coro_now();
    struct bound b = bound_at(r, t0);
    if (want) {
        int err = await_gather(ts, (size_t)k, res, errs);
        note(r, "gather of %d -> %d", k, err);
        CHECK(err == want, "task %d: a gather returned %d, not %d", r->idx,
              err, want);
        for (int a = 0; a < k; a++)
            CHECK(res[a] == UNTOUCHED && errs[a] == -1,
                  "a refused gather wrote its results");
        scope_after(r, &b, err, coro_now(), 1, 0);
        return;
    }
    enum tri cx0 = r->cx;
    begin_wait(r, B_GATHER, idx, k, 0, b.fail);
    int err = await_gather(ts, (size_t)k, res, errs);
    double t1 = coro_now();
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
    int ok = err == first_err || entry_ok(r, &b, err, t1);
    if (!r->shield && cx0 == YES)
        ok = err == ECANCELED;
    else if (b.fail == YES)
        ok = err == ETIMEDOUT || entry_ok(r, &b, err, t1);
    CHECK(ok, "task %d: await_gather returned %d (first failure %d, "
          "cancelled %d then %d, shield %d)", r->idx, err, first_err, cx0,
          r->cx, r->shield);
    if (err == ECANCELED && first_err != ECANCELED)
        r->cx = YES;
    scope_after(r, &b, err, t1, 0, 1);
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
    double t0 = coro_now();
    struct bound b = bound_at(r, t0);
    if (want) {
        int err = await_wait(ts, (size_t)k, when, to, &ndone);
        note(r, "wait on %d -> %d", k, err);
        CHECK(err == want && ndone == 12345 &&
                  memcmp(ts, orig, sizeof orig) == 0,
              "task %d: a wait returned %d, not %d", r->idx, err, want);
        scope_after(r, &b, err, coro_now(), 1, 0);
        return;
    }
    enum tri cx0 = r->cx;
    begin_wait(r, B_WAIT, idx, k, to >= 0, NO);
    r->when = when;
    int err = await_wait(ts, (size_t)k, when, to, &ndone);
    double t1 = coro_now(), took = t1 - t0;
    sync_reports(run);
    note(r, "wait (when %d, timeout %g) on %d (tasks %d %d %d %d) -> %d, "
         "%zu ended", (int)when, to, k, idx[0], k > 1 ? idx[1] : -1,
         k > 2 ? idx[2] : -1, k > 3 ? idx[3] : -1, err, ndone);
    if (err == ECANCELED || err == ETIMEDOUT) {
        /* Its own timeout ends it with 0; a scope's with ETIMEDOUT. */
        CHECK(entry_ok(r, &b, err, t1) &&
                  (err == ECANCELED || r->shield || cx0 != YES),
              "task %d: await_wait returned %d (cancelled %d then %d, "
              "shield %d, scope's deadline %.9f, %.9f)", r->idx, err, cx0,
              r->cx, r->shield, b.when, t1);
        CHECK(ndone == 0 && memcmp(ts, orig, sizeof orig) == 0,
              "task %d: an await_wait that returned %d reordered tasks or "
              "counted %zu", r->idx, err, ndone);
        if (err == ECANCELED)
            r->cx = YES;
    } else {
        CHECK(err == 0, "task %d: await_wait returned %d", r->idx, err);
        CHECK(r->shield || cx0 != YES, "task %d: await_wait of a cancelled "
              "task returned 0", r->idx);
        CHECK(b.fail != YES, "task %d: await_wait past its scope's deadline "
              "returned 0", r->idx);
        check_wait_order(r, idx, orig, ts, k, ndone);
        CHECK(wait_done(r) || (to >= 0 && took >= to - 1e-6),
              "task %d: await_wait (when %d) returned after %g s of %g "
              "with its condition false", r->idx, (int)when, took, to);
    }
    scope_after(r, &b, err, t1, 0, 1);
    end_wait(r, 0);
}

/* ----------------------------------------------------------------------
 * as_completed
 *
 * AS_COMPLETED makes an iterator over a set of tasks, reads it a few
 * times and frees it; then it joins the tasks handed out, which must
 * return at once. The model knows the order in which tasks ended, so
 * each task handed out is exactly the one that ended first among those
 * still claimed (a detached one is freed instead, never handed out), and
 * EPIPE comes exactly when none is left. A timeout counts only while none
 * of them has ended; ECANCELED leaves the tasks claimed and uncancelled.
 * ---------------------------------------------------------------------- */

/* Drops the a-th task from those r's iterator claims: handed out, or
 * freed as detached. */
static void unclaim(struct rec *r, int a, int freed)
{
    struct rec *t = &r->run->recs[r->targets[a]];
    t->waiter = -1;
    t->freed |= freed;
    t->limbo = 0;
    r->targets[a] = r->targets[--r->nt];
}

/* await_as_completed handed out done: it must be the claimed task that
 * ended first, but for detached ones, which are freed, those that ended
 * before it now. Returns its record. */
static int handed_out(struct rec *r, const coro_task *done)
{
    struct run *run = r->run;
    unsigned long first = ULONG_MAX;
    int at = -1;
    for (int a = 0; a < r->nt; a++) {
        const struct rec *t = &run->recs[r->targets[a]];
        if (t->t == done)
            at = a;
        if (t->ends && !t->detached && t->end_seq < first)
            first = t->end_seq;
    }
    CHECK(at >= 0, "task %d: await_as_completed handed out %p, a task it "
          "does not claim", r->idx, (const void *)done);
    int h = r->targets[at];
    const struct rec *t = &run->recs[h];
    CHECK(t->ends && !t->detached && t->end_seq == first, "task %d: "
          "await_as_completed handed out task %d (ended %d, detached %d), "
          "not the first to end", r->idx, h, t->ends, t->detached);
    for (int a = r->nt - 1; a >= 0; a--) {
        t = &run->recs[r->targets[a]];
        if (r->targets[a] == h)
            unclaim(r, a, 0);
        else if (t->detached && t->ends && t->end_seq < first)
            unclaim(r, a, 1);
    }
    return h;
}

/* EPIPE: nothing was left to hand out but detached tasks that ended,
 * which are freed. */
static void drained(struct rec *r)
{
    for (int a = r->nt - 1; a >= 0; a--) {
        const struct rec *t = &r->run->recs[r->targets[a]];
        CHECK(t->detached && t->ends, "task %d: await_as_completed said "
              "EPIPE with task %d claimed (detached %d, ended %d)", r->idx,
              t->idx, t->detached, t->ends);
        unclaim(r, a, 1);
    }
}

/* Whether a claimed task has ended that the iterator must hand out. */
static int any_ended(const struct rec *r)
{
    for (int a = 0; a < r->nt; a++) {
        const struct rec *t = &r->run->recs[r->targets[a]];
        if (t->ends && !t->detached)
            return 1;
    }
    return 0;
}

/* One await_as_completed on the iterator made at t0 with timeout to.
 * Returns its outcome, having put the task handed out in *h. */
static int next_completed(struct rec *r, double t0, double to, int *h)
{
    coro_task *done = NULL;
    enum tri cx0 = r->shield ? NO : r->cx;
    int ready = any_ended(r), e;
    struct bound b = bound_at(r, coro_now());
    enum tri ef = entry_fails(r, &b, &e);
    int err = await_as_completed(r->iter, &done);
    double t1 = coro_now();
    int own = to >= 0 && t1 >= t0 + to - EPS;
    sync_reports(r->run);
    note(r, "await_as_completed (%d claimed, one ended %d) -> %d, %p "
         "after %g s", r->nt, ready, err, (void *)done, t1 - t0);
    int ok;
    switch (err) {
    case 0:
        *h = handed_out(r, done);
        ok = ef != YES;
        break;
    case EPIPE:
        drained(r);
        ok = ef != YES;
        break;
    case ETIMEDOUT:
        ok = cx0 != YES && ((!ready && own) || timed_out(&b, t1));
        break;
    case ECANCELED:
        ok = !r->shield && r->cx != NO;
        r->cx = YES;
        break;
    default:
        ok = 0;
        break;
    }
    scope_after(r, &b, err, t1, 0, !own);
    CHECK(ok, "task %d: await_as_completed returned %d (a task ended %d, "
          "%g s of %g, cancelled %d then %d, shield %d)", r->idx, err,
          ready, t1 - t0, to, cx0, r->cx, r->shield);
    return err;
}

/* Joins the tasks the iterator handed out, still the caller's unless
 * another task joined them meanwhile: they have ended, so each join
 * returns without any other task running. */
static void join_handed(struct rec *r, const int *h, int n)
{
    struct run *run = r->run;
    for (int a = 0; a < n; a++) {
        if (!usable(&run->recs[h[a]]))
            continue;
        unsigned long steps = run->steps;
        join_task(r, h[a], 0, -1);
        CHECK(run->steps == steps, "task %d: the join of task %d, handed "
              "out ended, let other tasks run", r->idx, h[a]);
    }
}

/* AS_COMPLETED: how (timeout, reads, whether to join), n, who x n. */
static void op_as_completed(struct rec *r, struct cursor *c)
{
    static const double timeouts[] = { -1, 0, 2e-4, 1e-3, 2e-3 };
    struct run *run = r->run;
    unsigned how = next(c);
    double to = charge(run, timeouts[(how & 7) % 5]);
    int reads = 1 + (int)(how >> 3) % 4, handed[MAX_SET], nhanded = 0;
    int idx[MAX_SET];
    coro_task *ts[MAX_SET];
    int k = pick_set(r, c, idx, ts);
    int want = claim_error(r, idx, k);
    coro_completions *it = NULL;
    double t0 = coro_now();
    int err = coro_as_completed(ts, (size_t)k, to, &it);
    note(r, "as_completed of %d (timeout %g) -> %d", k, to, err);
    /* Its memory comes before the claims: ENOMEM may come first. */
    CHECK(err == want || (run->fail && err == ENOMEM),
          "task %d: coro_as_completed returned %d, not %d", r->idx, err,
          want);
    CHECK(err ? it == NULL : it != NULL, "coro_as_completed returned %d "
          "and %p", err, (void *)it);
    if (err)
        return;
    begin_wait(r, B_ASCOMP, idx, k, to >= 0, NO);
    r->iter = it;
    for (int a = 0; a < reads && !err; a++)
        err = next_completed(r, t0, to, &handed[nhanded++]);
    nhanded -= err != 0;
    CHECK(coro_completions_free(it) == 0, "coro_completions_free failed");
    r->iter = NULL;
    end_wait(r, 0);
    if (how & 0x80)
        join_handed(r, handed, nhanded);
}

/* ----------------------------------------------------------------------
 * Task groups
 *
 * Any task may make a group, spawn into one, await one (but a member its
 * own: EDEADLK; a group another task awaits: EINVAL), read its results
 * and free it. The model follows each group's members, whether it is
 * cancelling them, and its first failure in time: a member's coro_fail
 * error, or ECANCELED for one cancelled by anyone before the group. A
 * group cancels its members when one fails (the model sees that at the
 * member's end), or when its awaiter is cancelled: at once if it was
 * before the call, else at a moment the model does not see, when the
 * members become MAYBE cancelled (the MAYBE idea again).
 * ---------------------------------------------------------------------- */

/* One of the groups not freed, chosen by b; -1 if none. */
static int pick_group(const struct run *run, unsigned b)
{
    int cand[NGROUPS];
    int n = 0;
    for (int i = 0; i < run->ngroups; i++)
        if (run->groups[i].g)
            cand[n++] = i;
    return n ? cand[b % (unsigned)n] : -1;
}

/* A new group, or -1 if the run has had its fill or memory failed. */
static int group_new(struct rec *r)
{
    struct run *run = r->run;
    if (run->ngroups == NGROUPS)
        return -1;
    errno = 0;
    coro_group *g = coro_group_new();
    int e = errno;
    errno = r->errno_mark;
    note(r, "new group -> %d (%p)", g ? run->ngroups : -1, (void *)g);
    CHECK(g || (run->fail && e == ENOMEM), "coro_group_new failed: %d", e);
    CHECK(!g || e == 0, "coro_group_new wrote errno %d", e);
    if (!g)
        return -1;
    CHECK(coro_group_size(g) == 0, "a new group has members");
    struct grp *x = &run->groups[run->ngroups];
    memset(x, 0, sizeof *x);
    x->g = g;
    x->waiter = -1;
    x->nerrs = 1; /* no failure yet */
    return run->ngroups++;
}

/* GSPAWN: len, mode, group (bit 7: a new one); then len bytes, the
 * member's program. */
static void op_gspawn(struct rec *r, struct cursor *c)
{
    size_t len = next(c) % 32;
    unsigned mode = next(c);
    unsigned which = next(c);
    if (len > c->n - c->pc)
        len = c->n - c->pc;
    const uint8_t *ops = c->b + c->pc;
    c->pc += len;
    int gi = pick_group(r->run, which);
    if (gi < 0 || (which & 0x80))
        gi = group_new(r);
    if (gi >= 0)
        spawn(r, ops, len, mode, gi);
}

static int group_err_ok(const struct grp *g, int err)
{
    for (int k = 0; k < g->nerrs; k++)
        if (err == g->errs[k])
            return 1;
    return 0;
}

/* await_group by a task that may: it returns once every member has
 * ended, with the group's first failure, or ECANCELED if the caller was
 * cancelled (the members then cancelled and awaited). */
static void group_wait(struct rec *r, int gi, const struct bound *b)
{
    struct run *run = r->run;
    struct grp *g = &run->groups[gi];
    int e;
    enum tri cx0 = r->shield ? NO : r->cx;
    enum tri ef = entry_fails(r, b, &e);
    group_cancel(run, gi, ef); /* MAYBE: when the caller wakes */
    g->waiter = r->idx;
    r->blk = B_GROUP;
    r->gwait = gi;
    int err = await_group(g->g);
    double t1 = coro_now();
    sync_reports(run);
    r->blk = B_NONE;
    g->waiter = -1;
    g->finished = 1;
    note(r, "await group %d (%d members, first failure %d of %d) -> %d", gi,
         g->n, g->errs[0], g->nerrs, err);
    for (int a = 0; a < g->n; a++)
        CHECK(run->recs[g->members[a]].ends, "task %d: await_group returned "
              "before member %d ended", r->idx, g->members[a]);
    int mine = entry_ok(r, b, err, t1) && (err == ECANCELED || cx0 != YES);
    int ok = ef == YES ? err == e || (err == ECANCELED && mine)
                       : group_err_ok(g, err) || mine;
    CHECK(ok, "task %d: await_group returned %d (first failure %d of %d, "
          "cancelled %d then %d, shield %d, scope's deadline %.9f, %.9f)",
          r->idx, err, g->errs[0], g->nerrs, cx0, r->cx, r->shield, b->when,
          t1);
    if (err == ECANCELED && mine && !group_err_ok(g, err))
        r->cx = YES;
    scope_after(r, b, err, t1, 0, 1);
}

/* AWAIT_GROUP: a group. */
static void op_await_group(struct rec *r, struct cursor *c)
{
    struct run *run = r->run;
    int gi = pick_group(run, next(c));
    if (gi < 0)
        return;
    const struct grp *g = &run->groups[gi];
    int want = r->grp == gi ? EDEADLK : g->waiter >= 0 ? EINVAL : 0;
    struct bound b = bound_at(r, coro_now());
    if (!want) {
        group_wait(r, gi, &b);
        return;
    }
    int err = await_group(g->g);
    note(r, "await group %d -> %d", gi, err);
    CHECK(err == want, "task %d: await_group of group %d returned %d, not "
          "%d", r->idx, gi, err, want);
    scope_after(r, &b, err, coro_now(), 1, 0);
}

/* Each member's outcome, once it has ended, as await_task would have
 * said it; EAGAIN before. */
static void group_results(struct rec *r, int gi)
{
    const struct run *run = r->run;
    const struct grp *g = &run->groups[gi];
    void *res;
    note(r, "results of group %d (%d members)", gi, g->n);
    CHECK(coro_group_size(g->g) == (size_t)g->n, "group %d has size %zu, "
          "not %d", gi, coro_group_size(g->g), g->n);
    for (int a = 0; a < g->n; a++) {
        const struct rec *m = &run->recs[g->members[a]];
        res = UNTOUCHED;
        int err = coro_group_result(g->g, (size_t)a, &res);
        CHECK(m->ends ? ended_with(m, err) && res == m->ret
                      : err == EAGAIN && res == UNTOUCHED,
              "task %d: result %d of group %d is %d, %p (member %d ended "
              "%d as %d/%d, %p)", r->idx, a, gi, err, res, m->idx, m->ends,
              m->end_err[0], m->end_err[1], m->ret);
    }
    CHECK(coro_group_result(g->g, (size_t)g->n, &res) == EINVAL,
          "coro_group_result past the members");
}

/* Frees a group: EBUSY while a member runs or a task awaits it; else
 * its members go with it. */
static void group_free(struct rec *r, int gi)
{
    struct run *run = r->run;
    struct grp *g = &run->groups[gi];
    int busy = g->waiter >= 0;
    for (int a = 0; a < g->n; a++)
        busy |= !run->recs[g->members[a]].ends;
    int err = coro_group_free(g->g);
    note(r, "free group %d -> %d", gi, err);
    CHECK(err == (busy ? EBUSY : 0), "task %d: coro_group_free of group %d "
          "returned %d (busy %d)", r->idx, gi, err, busy);
    if (err)
        return;
    g->g = NULL;
    for (int a = 0; a < g->n; a++)
        run->recs[g->members[a]].freed = 1;
}

/* GROUP: how (results, free or a new group; which group). */
static void op_group(struct rec *r, struct cursor *c)
{
    unsigned how = next(c);
    int gi = pick_group(r->run, how >> 2);
    if ((how & 3) == 3 || gi < 0)
        group_new(r);
    else if ((how & 3) == 2)
        group_free(r, gi);
    else
        group_results(r, gi);
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

/* Outside any loop: the calls of groups, as_completed, scopes and eager
 * spawns. */
static void check_outside13(void)
{
    static const coro_attr eager = { .flags = CORO_EAGER };
    coro_timeout *scope = NULL;
    coro_completions *it = NULL;
    errno = 0;
    CHECK(coro_group_new() == NULL && errno == EINVAL,
          "coro_group_new outside a loop");
    errno = 0;
    CHECK((coro_spawn_attr)(&eager, never, NULL) == NULL && errno == EINVAL,
          "an eager coro_spawn_attr outside a loop");
    CHECK(await_group(NULL) == EPERM &&
              await_as_completed(NULL, NULL) == EPERM &&
              coro_as_completed(NULL, 0, -1, &it) == EPERM &&
              coro_timeout_open(1, &scope) == EPERM &&
              coro_timeout_open_at(1, &scope) == EPERM,
          "a call of a task's outside a loop");
    CHECK(!it && !scope && coro_timeout_close(NULL) == EINVAL &&
              coro_timeout_when(NULL) == -1 &&
              coro_timeout_expired(NULL) == 0 &&
              coro_group_size(NULL) == 0 && coro_group_free(NULL) == 0 &&
              coro_completions_free(NULL) == 0,
          "a call on NULL outside a loop");
}

/* Outside any loop: coro.h's EPERM and EINVAL cases. */
static void check_outside(void)
{
    int saved = errno;
    size_t got;
    CHECK(coro_self() == NULL, "a task outside a loop");
    CHECK(await_yield() == EPERM, "await_yield outside a loop");
    CHECK(await_sleep(0.001) == EPERM, "await_sleep outside a loop");
    CHECK(await_task(NULL, NULL) == EPERM, "await_task outside a loop");
    CHECK(coro_shield(1) == 0 && coro_shield(0) == 0,
          "coro_shield outside a loop");
    CHECK(coro_fail(EIO) == NULL, "coro_fail outside a loop");
    CHECK(coro_cancel(NULL) == EINVAL, "coro_cancel outside a loop");
    CHECK(coro_set_workers(2) == EINVAL, "coro_set_workers outside a loop");
    CHECK(await_chan_recv(NULL, NULL, 0) == EPERM &&
              await_select(NULL, 0, 0, NULL) == EPERM &&
              await_queue_join(NULL, 0) == EPERM &&
              await_mutex_lock(NULL, 0) == EPERM &&
              await_cond_wait(NULL, NULL, 0) == EPERM &&
              await_readable(0, 0) == EPERM &&
              await_read(0, NULL, 0, 0, &got) == EPERM,
          "an await_* on an object or fd outside a loop");
    errno = 0;
    CHECK((coro_spawn)(never, NULL) == NULL && errno == EINVAL,
          "coro_spawn outside a loop");
    check_outside13();
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
    sub->parent = j->parent;
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
    struct bound b = bound_at(r, coro_now());
    int err = await_blocking(fn, j, &res);
    int e = errno;
    double t1 = coro_now();
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
        int tmo = err == ETIMEDOUT && timed_out(&b, t1) &&
                  (r->shield || cx0 != YES);
        CHECK(tmo || (cancel_ok(r, cx0, err, 0) &&
                      !(b.fail == YES && err == 0)),
              "task %d: await_blocking returned %d (cancelled %d then %d, "
              "shield %d, scope's deadline %.9f, %.9f)", r->idx, err, cx0,
              r->cx, r->shield, b.when, t1);
        CHECK(err != 0 || ran == 1, "task %d: await_blocking returned 0 and "
              "fn did not run", r->idx);
        CHECK((r->shield || cx0 != YES) && b.fail != YES ? 1 : ran == 0,
              "task %d: a blocking call ran, its caller cancelled or past "
              "its scope's deadline", r->idx);
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
    scope_after(r, &b, err, t1, 0, 1);
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
    j->parent = run;
    run_job(r, nest_fn);
}

/* ----------------------------------------------------------------------
 * Calls on groups, iterators and scopes that coro.h says fail
 * ---------------------------------------------------------------------- */

static void misuse_groups(struct rec *r)
{
    void *res = UNTOUCHED;
    CHECK(misuse_ok(r, await_group(NULL), EINVAL), "await_group(NULL)");
    errno = 0;
    CHECK(coro_group_spawn(NULL, NULL, never, NULL) == NULL &&
              errno == EINVAL, "coro_group_spawn(NULL)");
    CHECK(coro_group_result(NULL, 0, &res) == EINVAL && res == UNTOUCHED,
          "coro_group_result(NULL)");
    CHECK(coro_group_size(NULL) == 0 && coro_group_free(NULL) == 0,
          "coro_group_size or coro_group_free of NULL");
    int gi = pick_group(r->run, 0);
    errno = 0;
    CHECK(gi < 0 || (coro_group_spawn(r->run->groups[gi].g, NULL, NULL,
                                      NULL) == NULL && errno == EINVAL),
          "coro_group_spawn of no function");
}

/* coro_as_completed refuses NULL and NaN, claiming nothing; an iterator
 * over no task is drained at once. */
static void misuse_iter(struct rec *r)
{
    coro_task *self = r->t, *done = NULL;
    coro_completions *it = NULL;
    CHECK(coro_as_completed(NULL, 1, -1, &it) == EINVAL &&
              coro_as_completed(&self, 1, NAN, &it) == EINVAL &&
              coro_as_completed(&self, 1, -1, NULL) == EINVAL && !it,
          "coro_as_completed with NULL or NaN");
    CHECK(misuse_ok(r, await_as_completed(NULL, &done), EINVAL) && !done,
          "await_as_completed(NULL)");
    CHECK(coro_completions_free(NULL) == 0, "coro_completions_free(NULL)");
    int err = coro_as_completed(&self, 0, -1, &it);
    CHECK(err == 0 || (r->run->fail && err == ENOMEM), "coro_as_completed "
          "of none returned %d", err);
    if (err)
        return;
    CHECK(misuse_ok(r, await_as_completed(it, &done), EPIPE) && !done,
          "await_as_completed of none");
    CHECK(misuse_ok(r, await_as_completed(it, NULL), EINVAL),
          "await_as_completed into NULL");
    CHECK(coro_completions_free(it) == 0, "coro_completions_free failed");
}

/* Another task's iterator, while it reads it, refuses the caller. */
static void misuse_foreign_iter(struct rec *r)
{
    coro_task *done = NULL;
    for (int i = 0; i < r->run->n; i++) {
        const struct rec *w = &r->run->recs[i];
        if (w == r || !w->iter)
            continue;
        note(r, "misuse task %d's iterator", i);
        CHECK(misuse_ok(r, await_as_completed(w->iter, &done), EINVAL) &&
                  !done, "await_as_completed of another task's iterator");
        return;
    }
}

static void misuse_scopes(struct rec *r)
{
    coro_timeout *s = NULL;
    CHECK(coro_timeout_open(NAN, &s) == EINVAL &&
              coro_timeout_open(1, NULL) == EINVAL &&
              coro_timeout_open_at(NAN, &s) == EINVAL &&
              coro_timeout_open_at(1, NULL) == EINVAL && !s,
          "coro_timeout_open with NaN or NULL");
    CHECK(coro_timeout_close(NULL) == EINVAL &&
              coro_timeout_reschedule(NULL, 1) == EINVAL &&
              coro_timeout_when(NULL) == -1 &&
              coro_timeout_expired(NULL) == 0,
          "a scope call on NULL");
    if (!r->nscopes)
        return;
    const struct scope *sc = &r->scopes[r->nscopes - 1];
    CHECK(coro_timeout_reschedule(sc->s, NAN) == EINVAL &&
              coro_timeout_when(sc->s) == sc->when,
          "coro_timeout_reschedule to NaN");
}

/* MISUSE13: what. */
static void op_misuse13(struct rec *r, struct cursor *c)
{
    unsigned what = next(c) % 4;
    note(r, "misuse %u of groups, iterators or scopes", what);
    switch (what) {
    case 0:
        misuse_groups(r);
        break;
    case 1:
        misuse_iter(r);
        break;
    case 2:
        misuse_foreign_iter(r);
        break;
    default:
        misuse_scopes(r);
        break;
    }
    scope_loose(r);
    errno = r->errno_mark;
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
    for (int k = 0; on && !old && k < r->nscopes; k++)
        r->scopes[k].held = 1; /* open as it goes on: held back */
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
    scope_loose(r);
    errno = r->errno_mark;
}

/* coro_dump lists the loop's tasks, one line each, oldest first, with ids
 * 1, 2, ... in spawn order: exactly the tasks the model has not seen
 * freed (so a task freed early, or never, shows), but for those in limbo,
 * marked cancelled and shielded as the model says. */
static void check_dump(struct rec *r)
{
    struct run *run = r->run;
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    CHECK(f != NULL, "out of memory");
    coro_dump(f);
    fclose(f);
    int live = 0, limbo = 0;
    for (int i = 0; i < run->n; i++) {
        live += usable(&run->recs[i]);
        limbo += run->recs[i].limbo && !run->recs[i].freed;
    }
    size_t n = 0;
    CHECK(sscanf(text, "coro: %zu task", &n) == 1 && n >= (size_t)live &&
              n <= (size_t)(live + limbo),
          "task %d: coro_dump counts %zu tasks, the model %d (and %d maybe "
          "freed)", r->idx, n, live, limbo);
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
        /* A join or gather draining its tasks shields itself, and so
         * do a cancelled blocking call waiting for its running job and a
         * condition wait taking its mutex back. */
        int self_shielded = t->blk == B_JOIN || t->blk == B_GATHER ||
                            t->blk == B_GROUP ||
                            t->blk == B_BLOCKING ||
                            (t->blk == B_SYNC && t->call.k == C_COND);
        CHECK(shielded == t->shield || (shielded && self_shielded),
              "task %d: coro_dump shows task %d %sshielded", r->idx, t->idx,
              shielded ? "" : "not ");
        char group[32] = " [group #";
        if (t->grp >= 0)
            snprintf(group, sizeof group, " [group #%d]", t->grp + 1);
        CHECK((strstr(line, group) != NULL) == (t->grp >= 0), "task %d: "
              "coro_dump shows task %d %s group %d", r->idx, t->idx,
              t->grp >= 0 ? "not in" : "in a", t->grp + 1);
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

/* ----------------------------------------------------------------------
 * Coordination objects: what the model of them shares
 *
 * A call on an object completes at once, or parks its task on one of the
 * object's FIFO lists of waiters until another task's operation completes
 * it, its timeout fires, or it is cancelled. The model keeps every call in
 * progress (struct call) and what happened to every element (struct
 * elem). From those it knows an object's state exactly whenever no call
 * on it is W_MAYBE: the object is "settled", and each call's outcome, and
 * which waiter an operation completes (the first), are predicted exactly.
 * A waiting call becomes W_MAYBE once its timeout may have fired, or when
 * its task may have been cancelled unseen (by a join's timeout); an
 * operation that may or may not complete a waiter makes that waiter
 * W_MAYBE. Such calls have their outcomes bounded instead, and what holds
 * whatever the timing is checked all the same: no element lost, doubled
 * or overtaken, one holder per mutex, no more permits taken than given.
 * ---------------------------------------------------------------------- */

static const double sync_timeouts[] = { -1, 0, 2e-4, 1e-3, 2e-3 };

/* A timeout for a call on an object: none, 0, or out of the budget. */
static double sync_timeout(struct run *run, unsigned b)
{
    return charge(run, sync_timeouts[b % 5]);
}

/* Whether a waiting call's timeout may have fired by now: its deadline is
 * t0 + to or later, and coro fires it only once the clock has passed it,
 * at a switch. */
static int expired(const struct call *k, double now)
{
    return k->to > 0 && now >= k->t0 + k->to - EPS;
}

/* Before an operation: waiting calls whose timeout may have fired, or
 * whose task may have been cancelled, may have left their lists. Until
 * the operation's task switches, no timer fires. */
static void refresh(struct run *run)
{
    double now = coro_now();
    for (int i = 0; i < run->n; i++) {
        struct rec *r = &run->recs[i];
        if (r->blk != B_SYNC || r->call.st != W_WAIT)
            continue;
        if (expired(&r->call, now) || (!r->shield && r->cx != NO))
            r->call.st = W_MAYBE;
    }
}

static void complete(struct call *k, int outcome, unsigned chosen)
{
    k->st = W_DONE;
    k->outcome = outcome;
    k->alt = 0;
    k->chosen = chosen;
}

/* r is cancelled (YES) or may be (MAYBE): the wait it is parked in ends
 * with ECANCELED, unless r is shielded or the wait already ended. */
static void sync_cancel(struct rec *r, enum tri level)
{
    struct call *k = &r->call;
    if (r->blk != B_SYNC || r->shield || k->st != W_WAIT)
        return;
    if (level == YES && !expired(k, coro_now()))
        complete(k, ECANCELED, 0);
    else
        k->st = W_MAYBE;
}

/* Completes r's call at its entry if it certainly ends there (cancelled,
 * or past its scope's deadline); returns entry_fails's verdict. */
static enum tri call_entry(struct rec *r)
{
    struct call *k = &r->call;
    int e;
    enum tri ef = entry_fails(r, &k->b, &e);
    if (ef == YES) {
        complete(k, e, 0);
        if (e == ETIMEDOUT && !r->shield && r->cx == MAYBE)
            k->alt = ECANCELED; /* looked at first */
    }
    return ef;
}

/* The lists a call may wait on. */
enum lst { L_SEND, L_RECV, L_QJOIN, L_LOCK, L_SEM, L_EVENT, L_COND };

/* Whether r's call is, or may be, on list l of object obj; *op is its
 * first op there (a select has one waiter per op, appended in op order,
 * and a channel may appear in several ops). */
static int listed(const struct rec *r, enum lst l, int obj, int *op)
{
    const struct call *k = &r->call;
    *op = 0;
    if (r->blk != B_SYNC || k->st == W_DONE)
        return 0;
    switch (l) {
    case L_SEND:
    case L_RECV:
        for (int i = 0; k->k == C_BOX && i < k->nops; i++) {
            if (k->ops[i].box == obj && k->ops[i].send == (l == L_SEND)) {
                *op = i;
                return 1;
            }
        }
        return 0;
    case L_QJOIN:
        return k->k == C_QJOIN && k->obj == obj;
    case L_LOCK:
        return k->k == C_LOCK && k->obj == obj;
    case L_SEM:
        return k->k == C_SEM;
    case L_EVENT:
        return k->k == C_EVENT;
    default:
        return k->k == C_COND;
    }
}

/* The tasks on list l of obj in the order they came, and their ops. */
static int list_of(const struct run *run, enum lst l, int obj, int *who,
                   int *ops)
{
    int n = 0;
    for (int i = 0; i < run->n; i++) {
        int op;
        if (!listed(&run->recs[i], l, obj, &op))
            continue;
        unsigned long at = run->recs[i].call.arrival;
        int a = n++;
        for (; a > 0 && run->recs[who[a - 1]].call.arrival > at; a--) {
            who[a] = who[a - 1];
            ops[a] = ops[a - 1];
        }
        who[a] = i;
        ops[a] = op;
    }
    return n;
}

/* Whether a call certainly waits on list l of obj. */
static int waited(const struct run *run, enum lst l, int obj)
{
    for (int i = 0; i < run->n; i++) {
        int op;
        if (listed(&run->recs[i], l, obj, &op) &&
            run->recs[i].call.st == W_WAIT)
            return 1;
    }
    return 0;
}

/* An operation completes up to n waiters of list l, first come first.
 * Those the model is sure of go to who[] and ops[], for the caller to
 * complete, and are counted in the result; those it may or may not
 * complete become W_MAYBE. The model is unsure from the start with unsure
 * set (the operation itself may not happen), else from the first W_MAYBE
 * waiter on, which may or may not be there to take its turn. */
static int serve(struct run *run, enum lst l, int obj, int n, int unsure,
                 int *who, int *ops)
{
    int all[MAX_TASKS], allops[MAX_TASKS];
    int m = list_of(run, l, obj, all, allops);
    int sure = 0;
    for (int a = 0; a < m && n > 0; a++) {
        struct call *k = &run->recs[all[a]].call;
        if (k->st == W_MAYBE) {
            unsure = 1;
            continue;
        }
        n--;
        if (unsure) {
            k->st = W_MAYBE;
            continue;
        }
        who[sure] = all[a];
        ops[sure] = allops[a];
        sure++;
    }
    return sure;
}

/* The one waiter an operation completes, if the model is sure which:
 * its task, or -1. */
static int first_waiter(struct run *run, enum lst l, int obj, int unsure,
                        int *op)
{
    int who;
    return serve(run, l, obj, 1, unsure, &who, op) ? who : -1;
}

/* An operation completes every waiter of list l: those certainly there
 * complete with outcome, the W_MAYBE ones may too. */
static void serve_all(struct run *run, enum lst l, int obj, int outcome)
{
    for (int i = 0; i < run->n; i++) {
        int op;
        struct call *k = &run->recs[i].call;
        if (listed(&run->recs[i], l, obj, &op) && k->st == W_WAIT)
            complete(k, outcome, 1u << op);
    }
}

/* An operation may or may not complete the waiters of list l. */
static void unsure_all(struct run *run, enum lst l, int obj)
{
    for (int i = 0; i < run->n; i++) {
        int op;
        if (listed(&run->recs[i], l, obj, &op))
            run->recs[i].call.st = W_MAYBE;
    }
}

/* Starts r's call: its place in the FIFO order, its start and timeout.
 * Its outcome is decided by the caller, and the call is only entered in
 * the lists (B_SYNC) once it is, so that it does not meet itself. */
static struct call *call_begin(struct rec *r, enum ck kind, int obj,
                               double to)
{
    struct call *k = &r->call;
    refresh(r->run);
    k->k = kind;
    k->obj = obj;
    k->st = W_MAYBE;
    k->outcome = k->alt = 0;
    k->chosen = 0;
    k->got = -1;
    k->how = K_PLAIN;
    k->arrival = ++r->run->objs.arrivals;
    k->t0 = coro_now();
    k->to = to;
    k->b = bound_at(r, k->t0);
    k->emaybe = 0;
    k->mark = 0;
    k->ready = 0;
    k->nops = 0;
    return k;
}

/* Outcomes any waiting call may have that the model did not see come:
 * its timeout (0 only looks) or its scope's, or a cancellation. */
static int unseen_ok(const struct rec *r, int err, double took)
{
    const struct call *k = &r->call;
    if (err == ETIMEDOUT && (k->to == 0 || (k->to > 0 && took >= k->to - EPS)))
        return 1;
    return entry_ok(r, &k->b, err, k->t0 + took);
}

/* A call's outcome, against the model: exactly the one predicted
 * (W_DONE), a timeout after its time (W_WAIT: nothing else could have
 * woken it unseen), or for W_MAYBE 0 if maybe0 says it is plausible,
 * extra, or what unseen_ok allows. */
static int call_ok(const struct rec *r, int err, double took, int maybe0,
                   int extra)
{
    const struct call *k = &r->call;
    if (k->alt && err == k->alt)
        return 1;
    if (k->emaybe && entry_ok(r, &k->b, err, k->t0 + took))
        return 1;
    switch (k->st) {
    case W_DONE:
        return err == k->outcome;
    case W_WAIT:
        return err == ETIMEDOUT && k->to > 0 && took >= k->to - EPS;
    default:
        return (err == 0 && maybe0) || (extra && err == extra) ||
               unseen_ok(r, err, took);
    }
}

/* The call returned: the task leaves the lists, and its scope may have
 * expired. */
static void call_end(struct rec *r, int err)
{
    const struct call *k = &r->call;
    double t1 = coro_now();
    r->blk = B_NONE;
    if (err == ECANCELED)
        r->cx = YES;
    if (k->k == C_BOX && k->how == K_TRY)
        return; /* no await_* */
    scope_after(r, &k->b, err, t1, 0,
                k->to < 0 || (k->to > 0 && t1 < k->t0 + k->to - EPS));
}

/* ----------------------------------------------------------------------
 * Channels and queues: boxes of elements
 *
 * Every element sent or put is new: its id says which (elems[]), and a
 * 24-byte channel's elements repeat it, so a torn copy shows. An element
 * is received at most once, only if its send did not fail, and in the
 * order of offers on its box (seq): a receive returns a later element
 * than any received before it began. After the run the buffers are read
 * out: each element whose send returned 0 was received or is found
 * there, exactly once, and in order. What a failed receive was handed
 * must be untouched.
 * ---------------------------------------------------------------------- */

#define ELEM_MAGIC 0xc0de5eedu
#define ELEM_MIX 0x9e3779b97f4a7c15u
#define FRESH 0xa5 /* the bytes of a receive buffer before the call */

static const struct { size_t size, cap; } chan_kinds[NCHAN] = {
    { 8, 0 }, { 8, 1 }, { ELEM_MAX, 3 }
};
static const size_t queue_sizes[NQUEUE] = { 2, 0 };

static uint64_t elem_id(int e)
{
    return (uint64_t)ELEM_MAGIC << 32 | (uint64_t)(e + 1);
}

/* A new element for box b from task sender, -1 when the run has had its
 * fill. Its seq is its place among the box's offers. */
static int elem_new(struct run *run, int b, int sender)
{
    struct objs *o = &run->objs;
    if (o->nelems == MAX_ELEMS)
        return -1;
    o->elems[o->nelems] = (struct elem){ b, E_OFFERED, sender, -1,
                                         ++o->box[b].seqs };
    return o->nelems++;
}

static void elem_write(unsigned char *buf, size_t size, int e)
{
    uint64_t id = elem_id(e);
    uint64_t w[3] = { id, ~id, id * ELEM_MIX };
    memcpy(buf, w, size);
}

/* The element with this id, which box b gave. */
static int elem_check(const struct run *run, uint64_t id, int b)
{
    int e = (int)(uint32_t)id - 1;
    CHECK(id >> 32 == ELEM_MAGIC && e >= 0 && e < run->objs.nelems &&
              run->objs.elems[e].box == b,
          "box %d gave %#llx, no element of its own", b,
          (unsigned long long)id);
    return e;
}

static int elem_read(const struct run *run, const unsigned char *buf, int b)
{
    size_t size = run->objs.box[b].size;
    uint64_t w[3] = { 0, 0, 0 };
    memcpy(w, buf, size);
    int e = elem_check(run, w[0], b);
    CHECK(size < sizeof w || (w[1] == ~w[0] && w[2] == w[0] * ELEM_MIX),
          "box %d gave element %d torn", b, e);
    return e;
}

static int fresh(const unsigned char *buf)
{
    for (size_t i = 0; i < ELEM_MAX; i++)
        if (buf[i] != FRESH)
            return 0;
    return 1;
}

/* The oldest element buffered in box b, or -1, and how many there are.
 * Exact when b is settled: then an element whose send returned 0 and
 * that no receive was handed is in the buffer. */
static int buffered(const struct run *run, int b, size_t *count)
{
    const struct objs *o = &run->objs;
    int head = -1;
    *count = 0;
    for (int e = 0; e < o->nelems; e++) {
        const struct elem *el = &o->elems[e];
        if (el->box != b || (el->st != E_BUF && el->st != E_SENT))
            continue;
        (*count)++;
        if (head < 0 || el->seq < o->elems[head].seq)
            head = e;
    }
    return head;
}

/* No call on box b is W_MAYBE: the model knows its buffer and waiters. */
static int box_settled(const struct run *run, int b)
{
    for (int i = 0; i < run->n; i++) {
        const struct rec *r = &run->recs[i];
        int op;
        if (r->blk == B_SYNC && r->call.st == W_MAYBE &&
            (listed(r, L_SEND, b, &op) || listed(r, L_RECV, b, &op)))
            return 0;
    }
    return 1;
}

/* Element e goes to receiver w, waiting in its op: w's call completes. */
static void hand(struct run *run, int w, int op, int e)
{
    struct call *k = &run->recs[w].call;
    complete(k, 0, 1u << op);
    k->got = e;
    run->objs.elems[e].st = E_TAKEN;
    run->objs.elems[e].taker = w;
}

/* Sender w, waiting in its op, completes: returns its element. */
static int take_from(struct run *run, int w, int op)
{
    struct call *k = &run->recs[w].call;
    complete(k, 0, 1u << op);
    return k->ops[op].elem;
}

/* Op i of r's call on a settled box sends now if it can (coro.h: to the
 * first waiting receiver, else into the buffer). Returns whether it did,
 * and then its outcome is r's. */
static int send_now(struct rec *r, int i)
{
    struct run *run = r->run;
    struct boxop *op = &r->call.ops[i];
    struct box *b = &run->objs.box[op->box];
    size_t n;
    int wop;
    buffered(run, op->box, &n);
    if (b->closed) {
        complete(&r->call, EPIPE, 1u << i);
        return 1;
    }
    int w = first_waiter(run, L_RECV, op->box, 0, &wop);
    if (w >= 0) {
        CHECK(n == 0, "box %d: receivers wait beside %zu elements", op->box,
              n);
        hand(run, w, wop, op->elem);
        complete(&r->call, 0, 1u << i);
        return 1;
    }
    if (n == b->cap)
        return 0;
    run->objs.elems[op->elem].st = E_BUF;
    complete(&r->call, 0, 1u << i);
    if (b->q && run->fail)
        r->call.alt = ENOMEM; /* the queue's ring may fail to grow */
    return 1;
}

/* Op i receives now if it can: the oldest buffered element, whose place
 * the first waiting sender's element takes; without a buffered one, that
 * sender's element directly. */
static int recv_now(struct rec *r, int i)
{
    struct run *run = r->run;
    struct boxop *op = &r->call.ops[i];
    struct box *b = &run->objs.box[op->box];
    size_t n;
    int wop;
    int e = buffered(run, op->box, &n);
    int w = first_waiter(run, L_SEND, op->box, 0, &wop);
    CHECK(w < 0 || n == b->cap, "box %d: senders wait beside room for "
          "%zu more", op->box, b->cap - n);
    if (e >= 0 && w >= 0)
        run->objs.elems[take_from(run, w, wop)].st = E_BUF;
    else if (w >= 0)
        e = take_from(run, w, wop);
    if (e < 0 && !b->closed)
        return 0;
    if (e < 0) {
        complete(&r->call, EPIPE, 1u << i);
        return 1;
    }
    complete(&r->call, 0, 1u << i);
    r->call.got = e;
    run->objs.elems[e].st = E_TAKEN;
    run->objs.elems[e].taker = r->idx;
    return 1;
}

/* A call on settled boxes: the first op, in array order, that can
 * complete does; else a try says EAGAIN, a timeout of 0 ETIMEDOUT, and
 * the rest wait. */
static void box_exact(struct rec *r)
{
    struct call *k = &r->call;
    for (int i = 0; i < k->nops; i++)
        if (k->ops[i].send ? send_now(r, i) : recv_now(r, i))
            return;
    if (k->how == K_TRY) {
        complete(k, EAGAIN, 0);
    } else if (k->to == 0) {
        complete(k, ETIMEDOUT, 0);
    } else {
        k->st = W_WAIT;
    }
    /* A select that waits, even for a timeout of 0, allocates its
     * records. */
    if (k->how == K_SELECT && r->run->fail)
        k->alt = ENOMEM;
}

/* A call the model cannot predict: each op may complete the first waiter
 * on the other side, or not. */
static void box_unsure(struct rec *r)
{
    struct call *k = &r->call;
    int op;
    for (int i = 0; i < k->nops; i++)
        first_waiter(r->run, k->ops[i].send ? L_RECV : L_SEND,
                     k->ops[i].box, 1, &op);
    k->st = W_MAYBE;
}

static void box_predict(struct rec *r)
{
    struct call *k = &r->call;
    int settled = 1;
    for (int i = 0; i < k->nops; i++) {
        k->ops[i].seen = r->run->objs.box[k->ops[i].box].seen;
        settled &= box_settled(r->run, k->ops[i].box);
    }
    enum tri ef = k->how == K_TRY ? NO : call_entry(r);
    if (ef == YES)
        return;
    if (settled && ef == NO)
        box_exact(r);
    else
        box_unsure(r);
}

/* Makes the call the model predicted. */
static int box_invoke(struct rec *r)
{
    struct call *k = &r->call;
    struct box *b = &r->run->objs.box[k->ops[0].box];
    int send = k->ops[0].send;
    void *item = (void *)(uintptr_t)elem_id(k->ops[0].elem);
    r->blk = B_SYNC;
    if (k->how == K_SELECT)
        return await_select(r->cops, (size_t)k->nops, k->to, &r->chosen);
    if (b->q && k->how == K_TRY)
        return send ? coro_queue_try_put(b->q, item)
                    : coro_queue_try_get(b->q, &r->item);
    if (b->q)
        return send ? await_queue_put(b->q, item, k->to)
                    : await_queue_get(b->q, &r->item, k->to);
    if (k->how == K_TRY)
        return send ? coro_chan_try_send(b->c, r->ebuf[0])
                    : coro_chan_try_recv(b->c, r->ebuf[0]);
    return send ? await_chan_send(b->c, r->ebuf[0], k->to)
                : await_chan_recv(b->c, r->ebuf[0], k->to);
}

/* Whether a box call's outcome is one the model allows. */
static int box_ok(const struct rec *r, int err, size_t chosen, double took)
{
    const struct call *k = &r->call;
    int picked = err == 0 || err == EPIPE;
    if (picked && chosen >= (size_t)k->nops)
        return 0;
    if (k->st != W_MAYBE)
        return call_ok(r, err, took, 0, 0) &&
               (!picked || (k->chosen >> chosen & 1));
    const struct box *b = &r->run->objs.box[k->ops[picked ? chosen : 0].box];
    switch (err) {
    case 0:
        return 1;
    case EPIPE:
        return b->closed;
    case EAGAIN:
        return k->how == K_TRY;
    case ENOMEM:
        return r->run->fail && (k->how == K_SELECT || (b->q && k->ops[0].send));
    default:
        return k->how != K_TRY && unseen_ok(r, err, took);
    }
}

/* After the call: a send's element was delivered, or must not be. */
static void box_sent(struct rec *r, int i, int err, int delivered)
{
    struct elem *e = &r->run->objs.elems[r->call.ops[i].elem];
    if (delivered) {
        if (e->st == E_OFFERED)
            e->st = E_SENT;
        return;
    }
    CHECK(e->st == E_OFFERED || (e->st == E_BUF && err == ENOMEM),
          "task %d: a send that returned %d delivered element %d (state "
          "%d)", r->idx, err, r->call.ops[i].elem, (int)e->st);
    e->st = E_FAILED;
}

/* After the call: op i received an element, which must be one whose send
 * has not failed, not received before, and later in its box's order than
 * any received before the call began. */
static void box_received(struct rec *r, int i)
{
    struct run *run = r->run;
    struct boxop *op = &r->call.ops[i];
    struct box *b = &run->objs.box[op->box];
    int e = b->q ? elem_check(run, (uintptr_t)r->item, op->box)
                 : elem_read(run, r->ebuf[i], op->box);
    struct elem *el = &run->objs.elems[e];
    CHECK(r->call.st != W_DONE || r->call.got == e, "task %d received "
          "element %d from box %d, which handed it element %d", r->idx, e,
          op->box, r->call.got);
    CHECK(el->st != E_RECEIVED && el->st != E_DRAINED &&
              el->st != E_FAILED &&
              (el->st != E_TAKEN || el->taker == r->idx),
          "task %d received element %d from box %d in state %d (taker %d)",
          r->idx, e, op->box, (int)el->st, el->taker);
    if (el->st == E_OFFERED) {
        const struct rec *s = &run->recs[el->sender];
        CHECK(s->blk == B_SYNC && s->call.st == W_MAYBE, "task %d received "
              "element %d, which task %d still waits to send", r->idx, e,
              el->sender);
    }
    CHECK(el->seq > op->seen, "box %d is not FIFO: task %d received its "
          "offer %lu after offer %lu", op->box, r->idx, el->seq, op->seen);
    el->st = E_RECEIVED;
    if (el->seq > b->seen)
        b->seen = el->seq;
}

static void box_end(struct rec *r, int err)
{
    struct run *run = r->run;
    struct call *k = &r->call;
    double took = coro_now() - k->t0;
    size_t chosen = k->how == K_SELECT ? r->chosen : 0;
    int picked = err == 0 || err == EPIPE;
    sync_reports(run);
    note(r, "box call (how %d, %d ops on %d..., timeout %g, state %d/%d) "
         "-> %d, op %zu", (int)k->how, k->nops, k->ops[0].box, k->to,
         (int)k->st, k->outcome, err, chosen);
    CHECK(box_ok(r, err, chosen, took), "task %d: a box call (how %d, "
          "state %d, predicted %d/%d, ops %#x) returned %d, op %zu, after "
          "%g s (timeout %g, cancelled %d, shield %d)", r->idx, (int)k->how,
          (int)k->st, k->outcome, k->alt, k->chosen, err, chosen, took,
          k->to, r->cx, r->shield);
    CHECK(picked || k->how != K_SELECT || r->chosen == SIZE_MAX,
          "task %d: await_select returned %d and set *chosen", r->idx, err);
    call_end(r, err);
    for (int i = 0; i < k->nops; i++) {
        int mine = err == 0 && (size_t)i == chosen;
        struct box *b = &run->objs.box[k->ops[i].box];
        if (k->ops[i].send)
            box_sent(r, i, err, mine);
        else if (mine)
            box_received(r, i);
        else
            CHECK(b->q ? r->item == UNTOUCHED : fresh(r->ebuf[i]),
                  "task %d: a receive that returned %d wrote its element",
                  r->idx, err);
    }
    size_t left;
    int b = k->ops[picked ? chosen : 0].box;
    buffered(run, b, &left);
    CHECK(err != EPIPE || k->ops[chosen].send || left == 0 ||
              !box_settled(run, b),
          "task %d: a receive returned EPIPE with %zu elements buffered",
          r->idx, left);
}

/* A call with one op on box b: mode 0 to 4 waits with a timeout, 5 to 7
 * only tries. */
static void box_one(struct rec *r, int b, int send, unsigned mode)
{
    struct run *run = r->run;
    struct box *x = &run->objs.box[b];
    int e = -1;
    if ((!x->c && !x->q) || (send && (e = elem_new(run, b, r->idx)) < 0))
        return;
    double to = mode >= 5 ? 0 : sync_timeout(run, mode);
    struct call *k = call_begin(r, C_BOX, b, to);
    k->how = mode >= 5 ? K_TRY : K_PLAIN;
    k->nops = 1;
    k->ops[0] = (struct boxop){ b, send, e, 0 };
    memset(r->ebuf[0], FRESH, ELEM_MAX);
    r->item = UNTOUCHED;
    if (send && x->c)
        elem_write(r->ebuf[0], x->size, e);
    box_predict(r);
    box_end(r, box_invoke(r));
}

/* SEND and RECV: a channel, and a timeout or a try. */
static void op_chan(struct rec *r, struct cursor *c, int send)
{
    unsigned how = next(c);
    box_one(r, (int)(how & 3) % NCHAN, send, (how >> 2) & 7);
}

/* PUT and GET: a queue, and a timeout or a try. */
static void op_queue_io(struct rec *r, struct cursor *c, int send)
{
    unsigned how = next(c);
    box_one(r, NCHAN + (int)(how & 1), send, (how >> 1) & 7);
}

/* SELECT: n ops on the channels, each a send or a receive. */
static void op_select(struct rec *r, struct cursor *c)
{
    struct run *run = r->run;
    struct objs *o = &run->objs;
    unsigned how = next(c);
    int n = 1 + (int)(how & 15) % MAX_OPS;
    unsigned char spec[MAX_OPS];
    int sends = 0;
    int have = 1;
    for (int i = 0; i < n; i++) {
        spec[i] = (unsigned char)next(c);
        sends += spec[i] >> 2 & 1;
        have &= o->box[(spec[i] & 3) % NCHAN].c != NULL;
    }
    if (!have || o->nelems + sends > MAX_ELEMS)
        return;
    struct call *k = call_begin(r, C_BOX, 0, sync_timeout(run, how >> 4));
    k->how = K_SELECT;
    k->nops = n;
    for (int i = 0; i < n; i++) {
        int b = (spec[i] & 3) % NCHAN;
        int send = spec[i] >> 2 & 1;
        int e = send ? elem_new(run, b, r->idx) : -1;
        k->ops[i] = (struct boxop){ b, send, e, 0 };
        r->cops[i] = (coro_chan_op){ o->box[b].c, send, r->ebuf[i] };
        memset(r->ebuf[i], FRESH, ELEM_MAX);
        if (send)
            elem_write(r->ebuf[i], o->box[b].size, e);
    }
    r->chosen = SIZE_MAX;
    box_predict(r);
    box_end(r, box_invoke(r));
}

/* Box b is closed or shut down: each call certainly waiting on it
 * completes with EPIPE, reporting any of its ops on b (which one coro.h
 * leaves open). */
static void box_shut(struct run *run, int b)
{
    for (int i = 0; i < run->n; i++) {
        struct rec *w = &run->recs[i];
        struct call *k = &w->call;
        unsigned mask = 0;
        if (w->blk != B_SYNC || k->k != C_BOX || k->st != W_WAIT)
            continue;
        for (int a = 0; a < k->nops; a++)
            mask |= (unsigned)(k->ops[a].box == b) << a;
        if (mask)
            complete(k, EPIPE, mask);
    }
}

/* CLOSE: a channel; a second close is EPIPE. */
static void op_close(struct rec *r, struct cursor *c)
{
    int b = (int)(next(c) & 3) % NCHAN;
    struct box *x = &r->run->objs.box[b];
    if (!x->c)
        return;
    refresh(r->run);
    int err = coro_chan_close(x->c);
    note(r, "close channel %d -> %d", b, err);
    CHECK(err == (x->closed ? EPIPE : 0), "task %d: coro_chan_close "
          "returned %d (closed %d)", r->idx, err, x->closed);
    if (!x->closed) {
        x->closed = 1;
        box_shut(r->run, b);
    }
}

/* Elements of queue b certainly put, which count as unfinished until a
 * task_done; *maybe: how many more may have been (their put is
 * W_MAYBE). */
static int queue_put(const struct run *run, int b, int *maybe)
{
    int sure = 0;
    *maybe = 0;
    for (int e = 0; e < run->objs.nelems; e++) {
        const struct elem *el = &run->objs.elems[e];
        if (el->box != b || el->st == E_FAILED)
            continue;
        if (el->st != E_OFFERED)
            sure++;
        else if (run->recs[el->sender].call.st == W_MAYBE)
            (*maybe)++;
    }
    return sure;
}

static void queue_task_done(struct rec *r, int b)
{
    struct run *run = r->run;
    struct box *x = &run->objs.box[b];
    int maybe;
    refresh(run);
    int put = queue_put(run, b, &maybe);
    int err = coro_queue_task_done(x->q);
    note(r, "task_done on queue %d (%d done of %d+%d) -> %d", b, x->done,
         put, maybe, err);
    CHECK(err == 0 ? x->done < put + maybe : err == EINVAL && x->done >= put,
          "task %d: coro_queue_task_done returned %d with %d done of %d "
          "(+%d) put", r->idx, err, x->done, put, maybe);
    if (err || ++x->done < put)
        return;
    x->zeros++;
    if (maybe == 0)
        serve_all(run, L_QJOIN, b, 0);
    else
        unsure_all(run, L_QJOIN, b);
}

static void queue_join(struct rec *r, int b, double to)
{
    struct run *run = r->run;
    struct box *x = &run->objs.box[b];
    int maybe;
    struct call *k = call_begin(r, C_QJOIN, b, to);
    int put = queue_put(run, b, &maybe);
    k->mark = x->zeros;
    k->ready = x->done >= put;
    enum tri ef = call_entry(r);
    if (ef == YES)
        ;
    else if (ef == MAYBE || maybe)
        k->st = W_MAYBE;
    else if (k->ready)
        complete(k, 0, 0);
    else if (to == 0)
        complete(k, ETIMEDOUT, 0);
    else
        k->st = W_WAIT;
    r->blk = B_SYNC;
    int err = await_queue_join(x->q, to);
    double took = coro_now() - k->t0;
    sync_reports(run);
    note(r, "join queue %d (timeout %g, state %d) -> %d", b, to, (int)k->st,
         err);
    CHECK(call_ok(r, err, took, k->ready || x->zeros > k->mark, 0),
          "task %d: await_queue_join returned %d (state %d/%d, %d done, "
          "%g s of %g)", r->idx, err, (int)k->st, k->outcome, x->done, took,
          to);
    call_end(r, err);
}

/* QUEUE: task_done, join, shutdown or size, on a queue. */
static void op_queue(struct rec *r, struct cursor *c)
{
    struct run *run = r->run;
    unsigned how = next(c);
    int b = NCHAN + (int)(how & 1);
    struct box *x = &run->objs.box[b];
    size_t n, left;
    if (!x->q)
        return;
    switch ((how >> 1) & 3) {
    case 0:
        queue_task_done(r, b);
        break;
    case 1:
        queue_join(r, b, sync_timeout(run, how >> 3));
        break;
    case 2:
        refresh(run);
        note(r, "shutdown queue %d", b);
        CHECK(coro_queue_shutdown(x->q) == 0, "coro_queue_shutdown failed");
        x->closed = 1;
        box_shut(run, b);
        break;
    default:
        refresh(run);
        n = coro_queue_size(x->q);
        buffered(run, b, &left);
        note(r, "size of queue %d -> %zu", b, n);
        CHECK(box_settled(run, b) ? n == left : n <= x->cap,
              "task %d: queue %d has size %zu, the model %zu", r->idx, b, n,
              left);
        break;
    }
}

/* ----------------------------------------------------------------------
 * Mutexes, the semaphore, the event, the condition
 *
 * A task knows whether it holds a mutex: it took it (a lock or a
 * condition wait returned) and has not unlocked it. So a relock is
 * EDEADLK and an unlock by anyone else EPERM, exactly, and a lock that
 * returns 0 while another task holds the mutex breaks mutual exclusion.
 * A released mutex, a released permit, a notify go to the first waiter.
 * A condition wait takes its mutex back at a moment the model does not
 * see: until it returns, its mutex is not settled.
 * ---------------------------------------------------------------------- */

/* Condition waits on mutex m past their wait for a notify (or that may
 * be), taking m back. */
static int relocking(const struct run *run, int m)
{
    for (int i = 0; i < run->n; i++) {
        const struct rec *r = &run->recs[i];
        if (r->blk == B_SYNC && r->call.k == C_COND && r->call.obj == m &&
            r->call.st != W_WAIT)
            return 1;
    }
    return 0;
}

static int mutex_settled(const struct run *run, int m)
{
    for (int i = 0; i < run->n; i++) {
        int op;
        if (listed(&run->recs[i], L_LOCK, m, &op) &&
            run->recs[i].call.st == W_MAYBE)
            return 0;
    }
    return !relocking(run, m);
}

/* Whether settled mutex m is held: by the task that took it, or handed
 * to a waiter that has not run yet. */
static int mutex_held(const struct run *run, int m)
{
    if (run->objs.holder[m] >= 0)
        return 1;
    for (int i = 0; i < run->n; i++) {
        const struct rec *r = &run->recs[i];
        if (r->blk == B_SYNC && r->call.k == C_LOCK && r->call.obj == m &&
            r->call.st == W_DONE && r->call.outcome == 0)
            return 1;
    }
    return 0;
}

/* m was released: it goes to its first waiter, if any. A relocking
 * condition waiter may be that first waiter. */
static void mutex_pass(struct run *run, int m, int unsure)
{
    int op;
    int w = first_waiter(run, L_LOCK, m, unsure || relocking(run, m), &op);
    if (w >= 0)
        complete(&run->recs[w].call, 0, 0);
}

/* r holds m now: nobody else may. */
static void mutex_take(struct rec *r, int m)
{
    int *holder = &r->run->objs.holder[m];
    CHECK(*holder < 0, "task %d took mutex %d, which task %d holds", r->idx,
          m, *holder);
    *holder = r->idx;
}

/* LOCK: a mutex, with a timeout. */
static void op_lock(struct rec *r, struct cursor *c)
{
    struct run *run = r->run;
    unsigned how = next(c);
    int m = (int)(how & 1);
    double to = sync_timeout(run, how >> 1);
    if (!run->objs.mutex[m])
        return;
    struct call *k = call_begin(r, C_LOCK, m, to);
    enum tri ef = call_entry(r);
    if (ef == YES) {
        ;
    } else if (run->objs.holder[m] == r->idx) {
        complete(k, EDEADLK, 0);
        k->emaybe = ef == MAYBE;
    } else if (ef == MAYBE || !mutex_settled(run, m)) {
        k->st = W_MAYBE;
    } else if (!mutex_held(run, m)) {
        CHECK(!waited(run, L_LOCK, m), "mutex %d is free with waiters", m);
        complete(k, 0, 0);
    } else if (to == 0) {
        complete(k, ETIMEDOUT, 0);
    } else {
        k->st = W_WAIT;
    }
    r->blk = B_SYNC;
    int err = await_mutex_lock(run->objs.mutex[m], to);
    double took = coro_now() - k->t0;
    sync_reports(run);
    note(r, "lock mutex %d (timeout %g, state %d/%d) -> %d", m, to,
         (int)k->st, k->outcome, err);
    CHECK(call_ok(r, err, took, 1, 0), "task %d: await_mutex_lock returned "
          "%d (state %d, predicted %d, %g s of %g, cancelled %d, shield %d)",
          r->idx, err, (int)k->st, k->outcome, took, to, r->cx, r->shield);
    call_end(r, err);
    if (err == 0)
        mutex_take(r, m);
}

/* UNLOCK: a mutex; EPERM unless the caller holds it. */
static void op_unlock(struct rec *r, struct cursor *c)
{
    struct run *run = r->run;
    int m = (int)(next(c) & 1);
    if (!run->objs.mutex[m])
        return;
    refresh(run);
    int mine = run->objs.holder[m] == r->idx;
    int err = coro_mutex_unlock(run->objs.mutex[m]);
    note(r, "unlock mutex %d (held by %d) -> %d", m, run->objs.holder[m],
         err);
    CHECK(err == (mine ? 0 : EPERM), "task %d: coro_mutex_unlock returned "
          "%d; task %d holds mutex %d", r->idx, err, run->objs.holder[m], m);
    if (!mine)
        return;
    run->objs.holder[m] = -1;
    mutex_pass(run, m, 0);
}

static int sem_settled(const struct run *run)
{
    for (int i = 0; i < run->n; i++) {
        int op;
        if (listed(&run->recs[i], L_SEM, 0, &op) &&
            run->recs[i].call.st == W_MAYBE)
            return 0;
    }
    return 1;
}

/* The settled semaphore's permits: every release gave one, to the value
 * or to a waiter; every acquire, returned or handed one, took one. */
static int sem_value(const struct run *run)
{
    int v = SEM_INIT + run->objs.released - run->objs.acquired;
    for (int i = 0; i < run->n; i++) {
        const struct rec *r = &run->recs[i];
        if (r->blk == B_SYNC && r->call.k == C_SEM && r->call.st == W_DONE &&
            r->call.outcome == 0)
            v--;
    }
    return v;
}

static void sem_acquire(struct rec *r, double to)
{
    struct run *run = r->run;
    struct objs *o = &run->objs;
    struct call *k = call_begin(r, C_SEM, 0, to);
    int v = sem_value(run);
    enum tri ef = call_entry(r);
    if (ef == YES) {
        ;
    } else if (ef == MAYBE || !sem_settled(run)) {
        k->st = W_MAYBE;
    } else {
        CHECK(v >= 0 && (v == 0 || !waited(run, L_SEM, 0)), "the semaphore "
              "has %d permits and waiters %d", v, waited(run, L_SEM, 0));
        if (v > 0)
            complete(k, 0, 0);
        else if (to == 0)
            complete(k, ETIMEDOUT, 0);
        else
            k->st = W_WAIT;
    }
    r->blk = B_SYNC;
    int err = await_sem_acquire(o->sem, to);
    double took = coro_now() - k->t0;
    sync_reports(run);
    note(r, "acquire (timeout %g, %d permits, state %d) -> %d", to, v,
         (int)k->st, err);
    CHECK(call_ok(r, err, took, 1, 0), "task %d: await_sem_acquire returned "
          "%d (state %d, predicted %d, %g s of %g)", r->idx, err, (int)k->st,
          k->outcome, took, to);
    call_end(r, err);
    if (err == 0)
        o->acquired++;
    CHECK(o->acquired <= SEM_INIT + o->released, "%d permits taken, %d "
          "given", o->acquired, SEM_INIT + o->released);
}

/* SEM: release, or acquire with a timeout. */
static void op_sem(struct rec *r, struct cursor *c)
{
    struct run *run = r->run;
    unsigned how = next(c);
    int op;
    if (!run->objs.sem)
        return;
    if (!(how & 1)) {
        sem_acquire(r, sync_timeout(run, how >> 1));
        return;
    }
    refresh(run);
    int err = coro_sem_release(run->objs.sem);
    note(r, "release -> %d", err);
    CHECK(err == 0, "task %d: coro_sem_release returned %d", r->idx, err);
    run->objs.released++;
    int w = first_waiter(run, L_SEM, 0, 0, &op);
    if (w >= 0)
        complete(&run->recs[w].call, 0, 0);
}

static void event_wait(struct rec *r, double to)
{
    struct run *run = r->run;
    struct objs *o = &run->objs;
    struct call *k = call_begin(r, C_EVENT, 0, to);
    k->mark = o->sets;
    k->ready = o->set;
    enum tri ef = call_entry(r);
    if (ef == YES)
        ;
    else if (ef == MAYBE)
        k->st = W_MAYBE;
    else if (o->set)
        complete(k, 0, 0);
    else if (to == 0)
        complete(k, ETIMEDOUT, 0);
    else
        k->st = W_WAIT;
    r->blk = B_SYNC;
    int err = await_event(o->event, to);
    double took = coro_now() - k->t0;
    sync_reports(run);
    note(r, "wait for the event (timeout %g, state %d) -> %d", to,
         (int)k->st, err);
    CHECK(call_ok(r, err, took, k->ready || o->sets > k->mark, 0),
          "task %d: await_event returned %d (state %d, predicted %d, set %d, "
          "%g s of %g)", r->idx, err, (int)k->st, k->outcome, o->set, took,
          to);
    call_end(r, err);
}

/* EVENT: wait with a timeout, set or clear. */
static void op_event(struct rec *r, struct cursor *c)
{
    struct run *run = r->run;
    struct objs *o = &run->objs;
    unsigned how = next(c);
    if (!o->event)
        return;
    switch (how & 3) {
    case 0:
    case 1:
        event_wait(r, sync_timeout(run, how >> 2));
        break;
    case 2:
        refresh(run);
        note(r, "set the event");
        coro_event_set(o->event);
        o->set = 1;
        o->sets++;
        serve_all(run, L_EVENT, 0, 0);
        break;
    default:
        note(r, "clear the event");
        coro_event_clear(o->event);
        o->set = 0;
        break;
    }
    CHECK(coro_event_is_set(o->event) == o->set, "coro_event_is_set says "
          "%d", !o->set);
}

/* Whether tasks wait on the condition with another mutex than m: 2 if
 * certainly, 1 if maybe, else 0. */
static int cond_others(const struct run *run, int m)
{
    int found = 0;
    for (int i = 0; i < run->n; i++) {
        const struct rec *r = &run->recs[i];
        int op;
        if (listed(r, L_COND, 0, &op) && r->call.obj != m)
            found = r->call.st == W_WAIT ? 2 : found ? found : 1;
    }
    return found;
}

/* Predicts a condition wait with mutex m. EINVAL if tasks wait with the
 * other mutex, EPERM unless the caller holds m; else m is released (to
 * its first waiter) and the caller waits for a notify. */
static void cond_predict(struct rec *r, int m, int others, int mine)
{
    struct call *k = &r->call;
    enum tri ef = call_entry(r);
    int sure = ef == NO && others != 1;
    if (ef == YES) {
        return;
    } else if (others == 2) {
        complete(k, EINVAL, 0);
        k->emaybe = ef == MAYBE;
    } else if (!mine) {
        if (sure)
            complete(k, EPERM, 0);
    } else {
        r->run->objs.holder[m] = -1;
        mutex_pass(r->run, m, !sure);
        if (!sure)
            k->st = W_MAYBE;
        else if (k->to == 0)
            complete(k, ETIMEDOUT, 0);
        else
            k->st = W_WAIT;
    }
}

static void cond_wait(struct rec *r, int m, double to)
{
    struct run *run = r->run;
    struct objs *o = &run->objs;
    if (!o->mutex[m])
        return;
    struct call *k = call_begin(r, C_COND, m, to);
    int others = cond_others(run, m);
    int mine = o->holder[m] == r->idx;
    k->mark = o->notifies;
    cond_predict(r, m, others, mine);
    r->blk = B_SYNC;
    int err = await_cond_wait(o->cond, o->mutex[m], to);
    double took = coro_now() - k->t0;
    sync_reports(run);
    note(r, "wait on the condition with mutex %d (timeout %g, held %d, "
         "state %d/%d) -> %d", m, to, mine, (int)k->st, k->outcome, err);
    int ok = call_ok(r, err, took, o->notifies > k->mark, others ? EINVAL : 0);
    if (k->st == W_MAYBE && !mine)
        ok = err == EPERM || (others && err == EINVAL) ||
             entry_ok(r, &k->b, err, k->t0 + took);
    CHECK(ok, "task %d: await_cond_wait returned %d (state %d, predicted %d, "
          "mutex %d held %d, others %d, %g s of %g)", r->idx, err,
          (int)k->st, k->outcome, m, mine, others, took, to);
    call_end(r, err);
    /* Held again on every return, or never let go (the model did not
     * let go of it when the call was sure to be refused). */
    if (mine && o->holder[m] != r->idx)
        mutex_take(r, m);
}

static void cond_notify(struct rec *r, size_t n)
{
    struct run *run = r->run;
    int who[2], ops[2];
    refresh(run);
    int err = n == SIZE_MAX ? coro_cond_notify_all(run->objs.cond)
                            : coro_cond_notify(run->objs.cond, n);
    note(r, "notify %zu -> %d", n, err);
    CHECK(err == 0, "task %d: coro_cond_notify returned %d", r->idx, err);
    if (n == 0)
        return;
    run->objs.notifies++;
    if (n == SIZE_MAX) {
        serve_all(run, L_COND, 0, 0);
        return;
    }
    int sure = serve(run, L_COND, 0, (int)n, 0, who, ops);
    for (int a = 0; a < sure; a++)
        complete(&run->recs[who[a]].call, 0, 0);
}

/* COND: wait with either mutex and a timeout, notify 0 to 2, or all. */
static void op_cond(struct rec *r, struct cursor *c)
{
    struct run *run = r->run;
    unsigned how = next(c);
    if (!run->objs.cond)
        return;
    switch (how & 3) {
    case 0:
    case 1:
        cond_wait(r, (int)(how >> 2) & 1, sync_timeout(run, how >> 3));
        break;
    case 2:
        cond_notify(r, (how >> 2) % 3);
        break;
    default:
        cond_notify(r, SIZE_MAX);
        break;
    }
}

/* ----------------------------------------------------------------------
 * Streams: fd waits, await_read and await_write_all
 *
 * Each run has a pipe and a socketpair, non-blocking, with small buffers
 * so that writes wait for readers. Their fds sit at numbers reserved for
 * the run (FD_BASE up), so one coro_close'd mid-run is never reused by
 * another thread while a task of this run still names it: calls on it
 * say EBADF. One await_write_all and one await_read at a time per stream
 * (a second task waits for readiness instead, and may see EBUSY), so the
 * bytes stay in order: byte i written is pattern byte i + salt, and what a
 * read returns must be exactly the next bytes written. A write that
 * returned 0 wrote all its bytes; one that failed some of them, which the
 * read end's FIONREAD counts once no read is in progress (await_read_full
 * reads in pieces); until then, writes wait for writability instead.
 * After the run the bytes left are read out: exactly those written and
 * not read.
 * ---------------------------------------------------------------------- */

static const size_t io_sizes[4] = { 1, 700, 5000, MAX_IO };
static const double io_timeouts[4] = { 0, 2e-4, 1e-3, 2e-3 };
static unsigned char pattern[PATTERN + MAX_IO];
static int fds_ok;              /* the reserved fd numbers are free */
static atomic_uint fd_slots;    /* bit s: a run uses slot s */

static void pattern_init(void)
{
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < PATTERN; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        pattern[i] = (unsigned char)x;
    }
    memcpy(pattern + PATTERN, pattern, MAX_IO);
}

/* Whether the reserved numbers are under the fd limit (raised if need
 * be) and not open. */
static int fds_free(void)
{
    struct rlimit rl;
    rlim_t need = FD_BASE + 4 * FD_SLOTS;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < need && rl.rlim_max >= need) {
        rl.rlim_cur = need;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need)
        return 0;
    for (int fd = FD_BASE; fd < (int)need; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            return 0;
    return 1;
}

static int slot_claim(void)
{
    unsigned v = atomic_load(&fd_slots);
    for (;;) {
        int s = 0;
        while (s < FD_SLOTS && (v >> s & 1))
            s++;
        if (s == FD_SLOTS)
            return -1;
        if (atomic_compare_exchange_weak(&fd_slots, &v, v | 1u << s))
            return s;
    }
}

/* Moves fd to number at, reserved for it. */
static int move_fd(int fd, int at)
{
    CHECK(dup3(fd, at, O_CLOEXEC) == at, "dup3 to %d: %s", at,
          strerror(errno));
    close(fd);
    return at;
}

static void stream_init(struct stream *s, int rfd, int wfd, int sock)
{
    s->fd[0] = rfd;
    s->fd[1] = wfd;
    s->open[0] = s->open[1] = 1;
    s->sock = sock;
    s->salt = sock ? 7919 : 0;
    s->w = s->r = s->hi = 0;
    s->wexact = 1;
    s->writer = s->reader = -1;
    s->lost = 0;
}

static void streams_open(struct run *run)
{
    struct objs *o = &run->objs;
    int p[2], sv[2], small = 4096;
    o->slot = fds_ok ? slot_claim() : -1;
    if (o->slot < 0)
        return;
    int at = FD_BASE + 4 * o->slot;
    CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0, "pipe2: %s",
          strerror(errno));
    fcntl(p[1], F_SETPIPE_SZ, small);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                     sv) == 0, "socketpair: %s", strerror(errno));
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    stream_init(&o->stream[0], move_fd(p[0], at), move_fd(p[1], at + 1), 0);
    stream_init(&o->stream[1], move_fd(sv[1], at + 2), move_fd(sv[0], at + 3),
                1);
}

static const unsigned char *stream_bytes(const struct stream *s,
                                         unsigned long at)
{
    return pattern + (at + s->salt) % PATTERN;
}

/* Bytes in the stream not read yet. */
static unsigned long unread(const struct stream *s)
{
    int n = 0;
    CHECK(ioctl(s->fd[0], FIONREAD, &n) == 0, "FIONREAD: %s",
          strerror(errno));
    return (unsigned long)n;
}

/* The most bytes that can have been written so far. */
static unsigned long written_most(const struct stream *s)
{
    return (s->wexact ? s->w : s->hi) + (s->writer >= 0 ? s->wlen : 0);
}

/* Whether no call that moves bytes is in progress and the count of bytes
 * written is known: then the stream holds exactly w - r. */
static int stream_quiet(const struct stream *s)
{
    return s->writer < 0 && s->reader < 0 && s->wexact && s->open[0] &&
           !s->lost;
}

/* n bytes were read into s->buf: the next ones written. */
static void stream_read(struct stream *s, size_t n)
{
    unsigned long most = written_most(s);
    CHECK(s->r + n <= most, "stream %d: %zu bytes read at %lu, beyond the "
          "%lu written", s->sock, n, s->r, most);
    CHECK(memcmp(s->buf, stream_bytes(s, s->r), n) == 0, "stream %d: bytes "
          "%lu to %lu are not those written", s->sock, s->r, s->r + n);
    s->r += n;
}

/* Once no call moves bytes: a failed write's bytes are counted, and the
 * stream must hold what was written and not read. */
static void stream_sync(struct stream *s)
{
    if (s->writer >= 0 || s->reader >= 0 || !s->open[0] || s->lost)
        return;
    unsigned long w = s->r + unread(s);
    CHECK(s->wexact ? w == s->w : w >= s->w && w <= s->hi, "stream %d "
          "holds %lu bytes past the %lu read; %lu to %lu were written",
          s->sock, w - s->r, s->r, s->w, s->wexact ? s->w : s->hi);
    s->w = s->hi = w;
    s->wexact = 1;
}

/* After a write of n bytes: all of them went in if it returned 0, else
 * some. */
static void stream_wrote(struct stream *s, size_t n, int err)
{
    s->hi = s->w + n;
    if (err == 0)
        s->w += n;
    else
        s->wexact = 0;
    stream_sync(s);
}

/* r starts a call on end e of s: a read end call (a read, a readable
 * wait) or a write end one. */
static void fd_begin(struct rec *r, struct stream *s, int e)
{
    r->fdb = bound_at(r, coro_now());
    r->blk = B_FD;
    r->fdmark = s->calls[e]++;
    r->fdbusy = s->busy[e]++;
}

/* The call ended: whether another on the same end overlapped it (only
 * then may it see EBUSY: one waiter per end). */
static int fd_end(struct rec *r, struct stream *s, int e)
{
    r->blk = B_NONE;
    s->busy[e]--;
    sync_reports(r->run);
    return r->fdbusy || s->calls[e] != r->fdmark + 1;
}

/* Errors any call on end e may return: its timeout after its time (0
 * only looks) or its scope's, ECANCELED if cancelled (at once if it was
 * before, and ETIMEDOUT at once past its scope's deadline), EBADF once e
 * is closed, EBUSY beside another waiter, ENOMEM when allocations fail. */
static int fd_err_ok(const struct rec *r, enum tri cx0, int err, double to,
                     double took, const struct stream *s, int e, int overlap)
{
    if (!r->shield && cx0 == YES)
        return err == ECANCELED;
    if (r->fdb.fail == YES)
        return err == ETIMEDOUT || entry_ok(r, &r->fdb, err, coro_now());
    switch (err) {
    case ETIMEDOUT:
        return to == 0 || took >= to - EPS ||
               timed_out(&r->fdb, coro_now());
    case ECANCELED:
        return !r->shield && r->cx != NO;
    case EBADF:
        return !s->open[e];
    case EBUSY:
        return overlap;
    case ENOMEM:
        return r->run->fail;
    default:
        return 0;
    }
}

/* Whether a call on an fd succeeded where it may: not past its scope's
 * deadline. Its scope may have expired. */
static int fd_ok(struct rec *r, int ok, int err, double to, double took)
{
    scope_after(r, &r->fdb, err, coro_now(), 0,
                !(to == 0 || took >= to - EPS));
    return ok && r->fdb.fail != YES;
}

/* A wait for end e of s to be ready: readable (e 0) or writable. A
 * readable stream has bytes past those read when the wait began, or its
 * write end closed; with a timeout of 0, when no write is in progress,
 * exactly then. */
static void fd_wait(struct rec *r, struct stream *s, int e, double to)
{
    enum tri cx0 = r->cx;
    unsigned long r0 = s->r;
    int quiet = stream_quiet(s);
    int ready = s->w > s->r || !s->open[1];
    double t0 = coro_now();
    fd_begin(r, s, e);
    int err = e ? await_writable(s->fd[1], to) : await_readable(s->fd[0], to);
    double took = coro_now() - t0;
    int overlap = fd_end(r, s, e);
    note(r, "wait for stream %d to be %s (timeout %g) -> %d", s->sock,
         e ? "writable" : "readable", to, err);
    int fine = fd_ok(r, err == 0, err, to, took);
    CHECK(fine || fd_err_ok(r, cx0, err, to, took, s, e, overlap),
          "task %d: await_%s on stream %d returned %d (%g s of %g)", r->idx,
          e ? "writable" : "readable", s->sock, err, took, to);
    unsigned long most = written_most(s);
    CHECK(e || err || most > r0 || !s->open[1] || s->lost, "task %d: "
          "stream %d readable with nothing past byte %lu", r->idx, s->sock,
          r0);
    CHECK(e || to != 0 || !quiet || (err && err != ETIMEDOUT) ||
              (err == 0) == ready || timed_out(&r->fdb, coro_now()),
          "task %d: await_readable(0) on stream %d returned %d, ready %d",
          r->idx, s->sock, err, ready);
    if (err == ECANCELED)
        r->cx = YES;
    stream_sync(s);
}

/* READ: a stream, a size, await_read or await_read_full, a timeout. */
static void op_read(struct rec *r, struct cursor *c)
{
    struct run *run = r->run;
    unsigned how = next(c);
    struct stream *s = &run->objs.stream[how & 1];
    size_t cap = io_sizes[(how >> 1) & 3];
    int full = (how >> 3) & 1;
    double to = charge(run, io_timeouts[(how >> 4) & 3]);
    if (run->objs.slot < 0)
        return;
    if (s->busy[0]) {
        fd_wait(r, s, 0, to);
        return;
    }
    enum tri cx0 = r->cx;
    double t0 = coro_now();
    s->got = SIZE_MAX;
    s->reader = r->idx;
    fd_begin(r, s, 0);
    int err = full ? await_read_full(s->fd[0], s->buf, cap, to, &s->got)
                   : await_read(s->fd[0], s->buf, cap, to, &s->got);
    double took = coro_now() - t0;
    int overlap = fd_end(r, s, 0);
    s->reader = -1;
    size_t got = s->got;
    int eof = !s->open[1];
    note(r, "read%s %zu from stream %d (timeout %g) -> %d, %zu bytes",
         full ? " all" : "", cap, s->sock, to, err, got);
    int ok = full ? got <= cap && ((err == 0 && got == cap) ||
                                   (err == EPIPE && got < cap && eof))
                  : err == 0 && got <= cap && (got > 0 || eof);
    ok = fd_ok(r, ok, err, to, took);
    CHECK(ok || ((!full ? got == 0 : got < cap) &&
                 fd_err_ok(r, cx0, err, to, took, s, 0, overlap)),
          "task %d: a read of %zu on stream %d returned %d with %zu bytes "
          "(%g s of %g)", r->idx, cap, s->sock, err, got, took, to);
    stream_read(s, got);
    CHECK(err || got || !stream_quiet(s) || s->r == s->w, "stream %d ended "
          "at byte %lu of %lu", s->sock, s->r, s->w);
    if (err == ECANCELED)
        r->cx = YES;
    stream_sync(s);
}

/* WRITE: a stream, a size, a timeout: await_write_all. */
static void op_write(struct rec *r, struct cursor *c)
{
    struct run *run = r->run;
    unsigned how = next(c);
    struct stream *s = &run->objs.stream[how & 1];
    size_t n = io_sizes[(how >> 1) & 3];
    double to = charge(run, io_timeouts[(how >> 3) & 3]);
    if (run->objs.slot < 0)
        return;
    if (s->busy[1] || !s->wexact) {
        fd_wait(r, s, 1, to);
        return;
    }
    enum tri cx0 = r->cx;
    double t0 = coro_now();
    s->writer = r->idx;
    s->wlen = n;
    fd_begin(r, s, 1);
    int err = await_write_all(s->fd[1], stream_bytes(s, s->w), n, to);
    double took = coro_now() - t0;
    int overlap = fd_end(r, s, 1);
    s->writer = -1;
    note(r, "write %zu to stream %d (timeout %g) -> %d", n, s->sock, to,
         err);
    int fine = fd_ok(r, err == 0 || (!s->open[0] && err == EPIPE), err, to,
                     took);
    CHECK(fine || fd_err_ok(r, cx0, err, to, took, s, 1, overlap),
          "task %d: a write of %zu on stream %d returned %d (%g s of %g)",
          r->idx, n, s->sock, err, took, to);
    stream_wrote(s, n, err);
    if (err == ECANCELED)
        r->cx = YES;
}

/* Closes end e of s with coro_close, which wakes whoever waits on it. */
static void fd_close(struct rec *r, struct stream *s, int e)
{
    int err = coro_close(s->fd[e]);
    note(r, "close end %d of stream %d -> %d", e, s->sock, err);
    CHECK(err == (s->open[e] ? 0 : EBADF), "task %d: coro_close returned %d "
          "(open %d)", r->idx, err, s->open[e]);
    s->open[e] = 0;
    if (e == 0)
        s->lost = 1;
    stream_sync(s);
}

/* FD: a stream; wait for it to be readable or writable with a timeout,
 * or close an end. */
static void op_fd(struct rec *r, struct cursor *c)
{
    struct run *run = r->run;
    unsigned how = next(c);
    struct stream *s = &run->objs.stream[how & 1];
    unsigned what = (how >> 1) & 15;
    if (run->objs.slot < 0)
        return;
    if (what >= 14)
        fd_close(r, s, what == 14);
    else
        fd_wait(r, s, what >= 7, charge(run, io_timeouts[(how >> 5) & 3]));
}

/* After the run: the bytes left are those written and not read. */
static void stream_drain(struct stream *s)
{
    int saved = errno;
    stream_sync(s);
    while (s->open[0] && !s->lost) {
        ssize_t n = read(s->fd[0], s->buf, MAX_IO);
        if (n <= 0) {
            CHECK(n == 0 ? !s->open[1] : errno == EAGAIN, "stream %d: read "
                  "after the run: %zd, %s", s->sock, n, strerror(errno));
            CHECK(s->r == s->w, "stream %d: %lu bytes written, %lu read",
                  s->sock, s->w, s->r);
            break;
        }
        stream_read(s, (size_t)n);
    }
    for (int e = 0; e < 2; e++)
        if (s->open[e])
            close(s->fd[e]);
    errno = saved;
}

static void streams_close(struct run *run)
{
    struct objs *o = &run->objs;
    if (o->slot < 0)
        return;
    for (int i = 0; i < NSTREAM; i++)
        stream_drain(&o->stream[i]);
    atomic_fetch_and(&fd_slots, ~(1u << o->slot));
}

static void streams_init(void)
{
    pattern_init();
    fds_ok = fds_free();
    if (!fds_ok)
        dprintf(STDERR_FILENO, "fuzz_program: fds %d to %d are taken or "
                "over the limit: no stream operations\n", FD_BASE,
                FD_BASE + 4 * FD_SLOTS - 1);
}

/* ----------------------------------------------------------------------
 * Calls on objects and fds that coro.h says fail
 * ---------------------------------------------------------------------- */

static void misuse_chan(struct rec *r)
{
    coro_chan *ch = r->run->objs.box[0].c;
    unsigned char *buf = r->ebuf[0];
    memset(buf, 0, ELEM_MAX);
    CHECK(misuse_ok(r, await_chan_send(NULL, buf, 0), EINVAL),
          "await_chan_send(NULL)");
    CHECK(misuse_ok(r, await_chan_recv(ch, NULL, 0), EINVAL),
          "await_chan_recv(c, NULL)");
    CHECK(coro_chan_try_send(NULL, buf) == EINVAL &&
              coro_chan_try_send(ch, NULL) == EINVAL &&
              coro_chan_try_recv(NULL, buf) == EINVAL &&
              coro_chan_try_recv(ch, NULL) == EINVAL,
          "coro_chan_try_* with NULL");
    CHECK(coro_chan_close(NULL) == EINVAL, "coro_chan_close(NULL)");
    CHECK(coro_chan_free(NULL) == 0 && coro_queue_free(NULL) == 0 &&
              coro_mutex_free(NULL) == 0 && coro_sem_free(NULL) == 0 &&
              coro_event_free(NULL) == 0 && coro_cond_free(NULL) == 0,
          "a _free(NULL)");
}

/* A NaN timeout is EINVAL, before anything is done. */
static void misuse_nan(struct rec *r)
{
    struct objs *o = &r->run->objs;
    int m = o->holder[0] == r->idx;
    CHECK(misuse_ok(r, await_chan_send(o->box[1].c, r->ebuf[0], NAN),
                    EINVAL) &&
              misuse_ok(r, await_chan_recv(o->box[1].c, r->ebuf[0], NAN),
                        EINVAL),
          "a channel call with a NaN timeout");
    CHECK(misuse_ok(r, await_queue_put(o->box[NCHAN].q, r, NAN), EINVAL) &&
              misuse_ok(r, await_queue_get(o->box[NCHAN].q, &r->item, NAN),
                        EINVAL) &&
              misuse_ok(r, await_queue_join(o->box[NCHAN].q, NAN), EINVAL),
          "a queue call with a NaN timeout");
    CHECK(misuse_ok(r, await_mutex_lock(o->mutex[0], NAN), EINVAL) &&
              misuse_ok(r, await_sem_acquire(o->sem, NAN), EINVAL) &&
              misuse_ok(r, await_event(o->event, NAN), EINVAL) &&
              misuse_ok(r, await_cond_wait(o->cond, o->mutex[0], NAN),
                        EINVAL),
          "a lock, acquire, event or condition wait with a NaN timeout");
    CHECK(m == (o->holder[0] == r->idx), "a refused call changed a holder");
}

static void misuse_select(struct rec *r)
{
    coro_chan_op *ops = r->cops;
    ops[0] = (coro_chan_op){ r->run->objs.box[0].c, 0, r->ebuf[0] };
    r->chosen = SIZE_MAX;
    CHECK(misuse_ok(r, await_select(ops, 0, 0, &r->chosen), EINVAL) &&
              misuse_ok(r, await_select(NULL, 1, 0, &r->chosen), EINVAL) &&
              misuse_ok(r, await_select(ops, 1, 0, NULL), EINVAL) &&
              misuse_ok(r, await_select(ops, 1, NAN, &r->chosen), EINVAL),
          "await_select with no ops, no chosen or a NaN timeout");
    ops[0].elem = NULL;
    CHECK(misuse_ok(r, await_select(ops, 1, 0, &r->chosen), EINVAL),
          "await_select with a NULL element");
    ops[0] = (coro_chan_op){ NULL, 1, r->ebuf[0] };
    CHECK(misuse_ok(r, await_select(ops, 1, 0, &r->chosen), EINVAL),
          "await_select on a NULL channel");
    CHECK(r->chosen == SIZE_MAX, "a refused await_select set *chosen");
}

static void misuse_new(struct rec *r)
{
    errno = 0;
    CHECK(coro_chan_new(0, 1) == NULL && errno == EINVAL,
          "coro_chan_new of 0-byte elements");
    errno = 0;
    CHECK(coro_chan_new(8, SIZE_MAX / 4) == NULL && errno == EINVAL,
          "coro_chan_new of more than SIZE_MAX bytes");
    errno = 0;
    CHECK(coro_chan_new(((size_t)1 << 20) + 1, 0) == NULL && errno == EINVAL,
          "coro_chan_new of elements above 1 MiB");
    errno = 0;
    CHECK(coro_chan_new(8, ((size_t)1 << 27) + 1) == NULL && errno == EINVAL,
          "coro_chan_new of a buffer above 1 GiB");
    errno = 0;
    coro_sem *s = coro_sem_new(UINT_MAX);
    CHECK(s || (r->run->fail && errno == ENOMEM), "coro_sem_new: %d",
          errno);
    if (!s)
        return;
    CHECK(coro_sem_release(s) == EOVERFLOW, "a release past UINT_MAX");
    CHECK(coro_sem_free(s) == 0, "coro_sem_free of an idle semaphore");
}

static void misuse_queue(struct rec *r)
{
    coro_queue *q = r->run->objs.box[NCHAN].q;
    CHECK(misuse_ok(r, await_queue_get(q, NULL, 0), EINVAL) &&
              misuse_ok(r, await_queue_put(NULL, r, 0), EINVAL) &&
              misuse_ok(r, await_queue_join(NULL, 0), EINVAL),
          "a queue call with NULL");
    CHECK(coro_queue_try_get(q, NULL) == EINVAL &&
              coro_queue_try_put(NULL, r) == EINVAL &&
              coro_queue_task_done(NULL) == EINVAL &&
              coro_queue_shutdown(NULL) == EINVAL &&
              coro_queue_size(NULL) == 0,
          "coro_queue_* with NULL");
}

static void misuse_locks(struct rec *r)
{
    CHECK(coro_mutex_unlock(NULL) == EINVAL &&
              misuse_ok(r, await_mutex_lock(NULL, 0), EINVAL),
          "a mutex call with NULL");
    CHECK(coro_sem_release(NULL) == EINVAL &&
              misuse_ok(r, await_sem_acquire(NULL, 0), EINVAL),
          "a semaphore call with NULL");
    CHECK(misuse_ok(r, await_event(NULL, 0), EINVAL) &&
              coro_event_is_set(NULL) == 0,
          "an event call with NULL");
    coro_event_set(NULL);
    coro_event_clear(NULL);
    struct objs *o = &r->run->objs;
    CHECK(misuse_ok(r, await_cond_wait(NULL, o->mutex[0], 0), EINVAL) &&
              misuse_ok(r, await_cond_wait(o->cond, NULL, 0), EINVAL) &&
              coro_cond_notify(NULL, 1) == EINVAL &&
              coro_cond_notify_all(NULL) == EINVAL,
          "a condition call with NULL");
}

/* Freeing an object that a task certainly waits on, or a mutex that a
 * live task holds, is EBUSY (and leaves it as it was). */
static void misuse_free(struct rec *r)
{
    struct run *run = r->run;
    struct objs *o = &run->objs;
    refresh(run);
    for (int b = 0; b < NBOX; b++) {
        struct box *x = &o->box[b];
        if (!waited(run, L_SEND, b) && !waited(run, L_RECV, b) &&
            !waited(run, L_QJOIN, b))
            continue;
        CHECK((x->q ? coro_queue_free(x->q) : coro_chan_free(x->c)) ==
                  EBUSY, "box %d was freed while waited on", b);
    }
    for (int m = 0; m < NMUTEX; m++) {
        int h = o->holder[m];
        if ((h >= 0 && !run->recs[h].ends) || waited(run, L_LOCK, m))
            CHECK(coro_mutex_free(o->mutex[m]) == EBUSY, "mutex %d was "
                  "freed while held or waited on", m);
    }
    if (waited(run, L_SEM, 0))
        CHECK(coro_sem_free(o->sem) == EBUSY, "the semaphore was freed");
    if (waited(run, L_EVENT, 0))
        CHECK(coro_event_free(o->event) == EBUSY, "the event was freed");
    if (waited(run, L_COND, 0))
        CHECK(coro_cond_free(o->cond) == EBUSY, "the condition was freed");
}

static void misuse_fd(struct rec *r)
{
    struct objs *o = &r->run->objs;
    struct stream *s = &o->stream[0];
    CHECK(misuse_ok(r, await_readable(-1, 0), EBADF) &&
              misuse_ok(r, await_writable(-1, 1e-3), EBADF) &&
              coro_close(-1) == EBADF,
          "fd calls with fd -1");
    if (o->slot < 0)
        return;
    CHECK(misuse_ok(r, await_read(s->fd[0], NULL, 5, 0, &r->chosen),
                    EINVAL) &&
              misuse_ok(r, await_read(s->fd[0], s->buf, 5, 0, NULL),
                        EINVAL) &&
              misuse_ok(r, await_read_full(s->fd[0], NULL, 5, 0,
                                           &r->chosen), EINVAL) &&
              misuse_ok(r, await_write_all(s->fd[1], NULL, 3, 0), EINVAL) &&
              misuse_ok(r, await_readable(s->fd[0], NAN), EINVAL),
          "an fd call with NULL or a NaN timeout");
}

/* A nested run's calls on its parent's objects, another thread's: every
 * one is EINVAL, changes nothing (the parent's model would see it), and
 * the reads say 0. */
static void misuse_thread(struct rec *r)
{
    const struct objs *o = r->run->parent ? &r->run->parent->objs : NULL;
    unsigned char *buf = r->ebuf[0];
    if (!o || !o->box[1].c || !o->box[NCHAN].q || !o->mutex[0] || !o->sem ||
        !o->event || !o->cond)
        return;
    memset(buf, 0, ELEM_MAX);
    CHECK(coro_chan_try_send(o->box[1].c, buf) == EINVAL &&
              coro_chan_try_recv(o->box[1].c, buf) == EINVAL &&
              coro_chan_close(o->box[1].c) == EINVAL &&
              misuse_ok(r, await_chan_recv(o->box[1].c, buf, 0), EINVAL),
          "a call on another thread's channel");
    CHECK(coro_queue_try_put(o->box[NCHAN].q, r) == EINVAL &&
              coro_queue_task_done(o->box[NCHAN].q) == EINVAL &&
              coro_queue_size(o->box[NCHAN].q) == 0 &&
              misuse_ok(r, await_queue_put(o->box[NCHAN].q, r, 0), EINVAL),
          "a call on another thread's queue");
    CHECK(coro_mutex_unlock(o->mutex[0]) == EINVAL &&
              misuse_ok(r, await_mutex_lock(o->mutex[0], 0), EINVAL) &&
              coro_sem_release(o->sem) == EINVAL &&
              misuse_ok(r, await_sem_acquire(o->sem, 0), EINVAL),
          "a call on another thread's mutex or semaphore");
    coro_event_set(o->event);
    coro_event_clear(o->event);
    CHECK(coro_event_is_set(o->event) == 0 &&
              misuse_ok(r, await_event(o->event, 0), EINVAL) &&
              coro_cond_notify_all(o->cond) == EINVAL &&
              misuse_ok(r, await_cond_wait(o->cond, o->mutex[0], 0), EINVAL),
          "a call on another thread's event or condition");
}

/* SYNC_MISUSE: what. */
static void op_sync_misuse(struct rec *r, struct cursor *c)
{
    unsigned what = next(c) % 9;
    note(r, "object misuse %u", what);
    switch (what) {
    case 0:
        misuse_chan(r);
        break;
    case 1:
        misuse_nan(r);
        break;
    case 2:
        misuse_select(r);
        break;
    case 3:
        misuse_new(r);
        break;
    case 4:
        misuse_queue(r);
        break;
    case 5:
        misuse_locks(r);
        break;
    case 6:
        misuse_free(r);
        break;
    case 7:
        misuse_fd(r);
        break;
    default:
        misuse_thread(r);
        break;
    }
    scope_loose(r);
    errno = r->errno_mark;
}

/* ----------------------------------------------------------------------
 * A run's objects: made before coro_run, read out and freed after it
 * ---------------------------------------------------------------------- */

static void *made(struct run *run, void *obj, const char *what)
{
    CHECK(obj || (run->fail && errno == ENOMEM), "%s failed: %d", what,
          errno);
    return obj;
}

static void objs_open(struct run *run)
{
    struct objs *o = &run->objs;
    int saved = errno;
    for (int b = 0; b < NBOX; b++) {
        struct box *x = &o->box[b];
        if (b < NCHAN) {
            x->size = chan_kinds[b].size;
            x->cap = chan_kinds[b].cap;
            x->c = made(run, coro_chan_new(x->size, x->cap), "coro_chan_new");
        } else {
            x->size = sizeof(void *);
            x->cap = queue_sizes[b - NCHAN] ? queue_sizes[b - NCHAN]
                                            : SIZE_MAX;
            x->q = made(run, coro_queue_new(queue_sizes[b - NCHAN]),
                        "coro_queue_new");
        }
    }
    for (int m = 0; m < NMUTEX; m++) {
        o->holder[m] = -1;
        o->mutex[m] = made(run, coro_mutex_new(), "coro_mutex_new");
    }
    o->sem = made(run, coro_sem_new(SEM_INIT), "coro_sem_new");
    o->event = made(run, coro_event_new(), "coro_event_new");
    o->cond = made(run, coro_cond_new(), "coro_cond_new");
    streams_open(run);
    errno = saved;
}

/* main, first thing: the run's objects become its thread's (coro.h: an
 * object belongs to the thread of the first loop whose task uses it), by
 * calls that change nothing; so that a nested run, on another thread,
 * finds them another thread's. */
static void objs_bind(struct rec *r)
{
    struct objs *o = &r->run->objs;
    void *item;
    for (int b = 0; b < NBOX; b++) {
        struct box *x = &o->box[b];
        CHECK(x->c ? coro_chan_try_recv(x->c, r->ebuf[0]) == EAGAIN
                   : !x->q || coro_queue_try_get(x->q, &item) == EAGAIN,
              "box %d is not empty at first", b);
    }
    for (int m = 0; m < NMUTEX; m++)
        CHECK(!o->mutex[m] || coro_mutex_unlock(o->mutex[m]) == EPERM,
              "mutex %d unlocked by main at first", m);
    CHECK(!o->sem || (await_sem_acquire(o->sem, 0) == 0 &&
                      coro_sem_release(o->sem) == 0),
          "the semaphore's permit at first");
    coro_event_clear(o->event);
    CHECK(!o->cond || coro_cond_notify(o->cond, 0) == 0,
          "coro_cond_notify(c, 0) at first");
}

/* After the run: box b's buffer holds exactly the elements whose send
 * returned 0 and that no receive returned, oldest first. */
static void box_drain(struct run *run, int b)
{
    struct box *x = &run->objs.box[b];
    unsigned char buf[ELEM_MAX];
    void *item;
    for (;;) {
        int err = x->q ? coro_queue_try_get(x->q, &item)
                       : coro_chan_try_recv(x->c, buf);
        if (err) {
            CHECK(err == (x->closed ? EPIPE : EAGAIN), "box %d: reading "
                  "out after the run: %d", b, err);
            return;
        }
        int e = x->q ? elem_check(run, (uintptr_t)item, b)
                     : elem_read(run, buf, b);
        struct elem *el = &run->objs.elems[e];
        CHECK(el->st == E_SENT || el->st == E_BUF, "box %d held element %d "
              "(state %d) after the run", b, e, (int)el->st);
        CHECK(el->seq > x->seen, "box %d is not FIFO: offer %lu left after "
              "offer %lu was received", b, el->seq, x->seen);
        x->seen = el->seq;
        el->st = E_DRAINED;
    }
}

/* Nothing lost: every element's send failed, or it was received or left
 * in its box, or its send never returned (a deadlock left it). */
static void elems_check(const struct run *run)
{
    for (int e = 0; e < run->objs.nelems; e++) {
        const struct elem *el = &run->objs.elems[e];
        CHECK(el->st == E_FAILED || el->st == E_RECEIVED ||
                  el->st == E_DRAINED ||
                  (el->st == E_OFFERED && !run->recs[el->sender].ends),
              "element %d of box %d was lost (state %d)", e, el->box,
              (int)el->st);
    }
}

static void objs_close(struct run *run)
{
    struct objs *o = &run->objs;
    for (int b = 0; b < NBOX; b++) {
        struct box *x = &o->box[b];
        if (!x->c && !x->q)
            continue;
        box_drain(run, b);
        CHECK((x->q ? coro_queue_free(x->q) : coro_chan_free(x->c)) == 0,
              "box %d could not be freed after the run", b);
    }
    elems_check(run);
    /* A mutex left held by a task that ended, or that the run left
     * blocked, has no live holder: it can be freed. */
    CHECK(coro_mutex_free(o->mutex[0]) == 0 &&
              coro_mutex_free(o->mutex[1]) == 0 && coro_sem_free(o->sem) == 0 &&
              coro_event_free(o->event) == 0 && coro_cond_free(o->cond) == 0,
          "a mutex, the semaphore, event or condition could not be freed");
    streams_close(run);
}

/* The operations on objects and streams. */
static void exec_sync(struct rec *r, struct cursor *c, unsigned op)
{
    switch (op) {
    case OP_SEND:
    case OP_RECV:
        op_chan(r, c, op == OP_SEND);
        break;
    case OP_CLOSE:
        op_close(r, c);
        break;
    case OP_SELECT:
        op_select(r, c);
        break;
    case OP_PUT:
    case OP_GET:
        op_queue_io(r, c, op == OP_PUT);
        break;
    case OP_QUEUE:
        op_queue(r, c);
        break;
    case OP_LOCK:
        op_lock(r, c);
        break;
    case OP_UNLOCK:
        op_unlock(r, c);
        break;
    case OP_SEM:
        op_sem(r, c);
        break;
    case OP_EVENT:
        op_event(r, c);
        break;
    case OP_COND:
        op_cond(r, c);
        break;
    case OP_WRITE:
        op_write(r, c);
        break;
    case OP_READ:
        op_read(r, c);
        break;
    case OP_FD:
        op_fd(r, c);
        break;
    default:
        op_sync_misuse(r, c);
        break;
    }
}

static void exec(struct rec *r)
{
    struct cursor c = { r->ops, r->nops, 0 };
    if (r->idx == 0)
        c.pc = 1; /* main's program starts after the header */
    while (c.pc < c.n) {
        step(r);
        unsigned op = c.b[c.pc++] % NOPS;
        switch (op) {
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
        case OP_LOOK:
            op_look(r, &c);
            break;
        case OP_GSPAWN:
        case OP_GSPAWN2:
            op_gspawn(r, &c);
            break;
        case OP_AWAIT_GROUP:
            op_await_group(r, &c);
            break;
        case OP_GROUP:
            op_group(r, &c);
            break;
        case OP_AS_COMPLETED:
            op_as_completed(r, &c);
            break;
        case OP_TIMEOUT:
            op_timeout(r, &c);
            break;
        case OP_SCOPE:
            op_scope(r, &c);
            break;
        case OP_MISUSE13:
            op_misuse13(r, &c);
            break;
        default:
            exec_sync(r, &c, op);
            break;
        }
    }
    step(r);
}

/* ----------------------------------------------------------------------
 * Runs
 * ---------------------------------------------------------------------- */

/* A task that never ended was left blocked in a deadlock: coro_run frees
 * such tasks without running them further. That is a join, gather or wait
 * on a task that never ended either; or a wait on an object, with no
 * timeout, that the cancellation of every task (main ended, or a deadlock)
 * could not end: a shielded one, or a condition wait taking its mutex back
 * (which coro shields). */
static void check_unended(const struct run *run, const struct rec *r)
{
    if (r->blk == B_SYNC) {
        const struct call *k = &r->call;
        int held = k->k == C_COND ||
                   (r->shield && k->to < 0 && k->st != W_DONE);
        CHECK(run->closing == YES && held, "task %d never left a wait on an "
              "object (call %d, state %d, shield %d, deadlock %d)", r->idx,
              (int)k->k, (int)k->st, r->shield, run->deadlocked);
        return;
    }
    int stuck = 0;
    for (int k = 0; k < r->nt; k++)
        stuck |= !run->recs[r->targets[k]].ends;
    const struct grp *g = &run->groups[r->gwait];
    for (int k = 0; r->blk == B_GROUP && k < g->n; k++)
        stuck |= !run->recs[g->members[k]].ends;
    CHECK(r->blk >= B_JOIN && stuck, "task %d never ended (inside call "
          "%d)", r->idx, (int)r->blk);
    CHECK(r->blk != B_WAIT || (!r->timed && !wait_done(r)),
          "task %d never left a wait that could end", r->idx);
    CHECK(r->blk != B_ASCOMP || !r->timed, "task %d never left an "
          "as_completed with a timeout", r->idx);
}

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
        if (!r->ends)
            check_unended(run, r);
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
    m->grp = -1;
    run->n = 1;
    run->budget = TIME_BUDGET;
    tls_run = run;
    run->reports = tls_reports;
    objs_open(run);
    void *res = UNTOUCHED;
    int err = coro_run(task_main, m, &res);
    sync_reports(run);
    note(m, "coro_run -> %d, result %p (deadlock reported %d)", err, res,
         run->deadlocked);
    check_run(run, err, res);
    objs_close(run);
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
