#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/corpus: one small program per feature,
in the format fuzz_program.c decodes (see the table at its top).

    python3 fuzz/seeds.py          # rewrites fuzz/corpus/seed-*

The corpus's found-* files come from fuzzing runs instead: the few inputs
that added the most coverage to the seeds.
"""
import os

SPAWN, SLEEP, YIELD, CANCEL, JOIN, JOIN_TIMEOUT, GATHER, WAIT, DETACH, \
    BLOCKING, NESTED, SHIELD, FAIL, MISUSE, LOOK = range(15)
SEND, RECV, CLOSE, SELECT, PUT, GET, QUEUE, LOCK, UNLOCK, SEM, EVENT, \
    COND, WRITE, READ, FD, SYNC_MISUSE = range(16, 32)
GSPAWN, AWAIT_GROUP, GROUP, AS_COMPLETED, TIMEOUT, SCOPE, GSPAWN2, \
    MISUSE13 = range(32, 40)

# A SPAWN's mode byte: stack, how the task ends, which errno, a name.
OWN, SMALL, SHARED, BAD = 0, 1, 2, 3
RET, NULL_RET, FAILS, FAILS_WITH_RESULT = (0 << 2, 1 << 2, 2 << 2, 3 << 2)
EIO, EPIPE, ENOENT, ECANCELED = (0 << 4, 1 << 4, 2 << 4, 3 << 4)
NAMED = 0x40
EAGER = 0x80
INJECT = 0xc0  # header: allocation failures, one in 5/9/17/33 (low bits)

# SLEEP's operand: 0 -> -1 s (a yield), 1 -> 0, 2 -> 0.1 ms, 3 -> 0.5 ms,
# 4 -> 1 ms, 5 -> 2 ms. Timeouts: 0 -> none, 1 -> 0, 2 -> 0.2 ms,
# 3 -> 1 ms, 4 -> 2 ms.
MS1, MS2 = 4, 5
T0, T02, T1, T2 = 1, 2, 3, 4
NONE, TRY = 0, 5  # waits on objects: no timeout, or a try_* call

# Objects: channels 0 (rendezvous), 1 (1 buffered), 2 (3 buffered, 24-byte
# elements); queues 0 (maxsize 2) and 1 (unbounded); mutexes 0 and 1; one
# semaphore (1 permit), one event, one condition. Streams: 0, a pipe; 1, a
# socketpair. Their sizes: 1, 700, 5000, 20000 bytes; their timeouts: 0,
# 0.2 ms, 1 ms, 2 ms.
TASK_DONE, QJOIN, SHUTDOWN, QSIZE = range(4)
B1, B700, B5000, B20000 = range(4)
IO0, IO02, IO1, IO2 = range(4)
READABLE, WRITABLE, CLOSE_W, CLOSE_R = 0, 7, 14, 15

# Groups: GSPAWN's group operand picks among those not freed, or (NEW_GROUP)
# makes one; GROUP reads results, frees, or makes a group.
NEW_GROUP = 0x80
RESULTS, FREE, MAKE = 0, 2, 3

# Timeout scopes: TIMEOUT's deadlines (AT: coro_timeout_open_at; SC_NONE_AT
# is open_at(-1), PAST and ZERO are always absolute), and what SCOPE does:
# close the innermost, reschedule scope k, read them back, or misuse
# another task's.
SC_NONE, SC_NOW, SC_02, SC_1, SC_2, SC_NONE_AT, SC_PAST, SC_ZERO = range(8)
AT = 0x80
TO_NONE, TO_PAST, TO_BUDGET, TO_NOW = range(4)


def spawn(body, mode=0):
    assert len(body) < 32
    return [SPAWN, len(body), mode] + body


def nested(prog):
    assert len(prog) < 48
    return [NESTED, len(prog)] + prog


def wait(when, timeout, who):
    return [WAIT, when | (timeout << 2), len(who) - 1] + who


def gather(who):
    return [GATHER, len(who) - 1] + who


def send(ch, t=NONE):
    return [SEND, ch | t << 2]


def recv(ch, t=NONE):
    return [RECV, ch | t << 2]


def select(ops, t=NONE):
    """ops: (channel, 1 to send or 0 to receive) pairs."""
    return [SELECT, len(ops) - 1 | t << 4] + [ch | snd << 2 for ch, snd in ops]


def put(q, t=NONE):
    return [PUT, q | t << 1]


def get(q, t=NONE):
    return [GET, q | t << 1]


def queue(q, what, t=NONE):
    return [QUEUE, q | what << 1 | t << 3]


def lock(m, t=NONE):
    return [LOCK, m | t << 1]


def acquire(t=NONE):
    return [SEM, t << 1]


def event_wait(t=NONE):
    return [EVENT, t << 2]


def cond_wait(m, t=NONE):
    return [COND, m << 2 | t << 3]


def notify(n):
    return [COND, 2 | n << 2]


def write(stream, size, t=IO2):
    return [WRITE, stream | size << 1 | t << 3]


def read(stream, size, t=IO2, full=0):
    return [READ, stream | size << 1 | full << 3 | t << 4]


def fd(stream, what, t=IO1):
    return [FD, stream | what << 1 | t << 5]


def gspawn(body, mode=0, group=0):
    assert len(body) < 32
    return [GSPAWN, len(body), mode, group] + body


def await_group(g=0):
    return [AWAIT_GROUP, g]


def group(what, g=0):
    return [GROUP, what | g << 2]


def as_completed(who, t=NONE, reads=4, join=True):
    """Reads the iterator up to `reads` times; joins what it handed out."""
    return [AS_COMPLETED, t | (reads - 1) << 3 | join << 7, len(who) - 1] \
        + who


def timeout(span, at=0):
    return [TIMEOUT, span | at]


def close():
    return [SCOPE, 0]


def move(k, to):
    return [SCOPE, 4 | k << 3 | to << 5]


LOOK_SCOPES, FOREIGN_SCOPE = [SCOPE, 6], [SCOPE, 7]


SEEDS = {
    # main spawns a sleeper and joins it.
    "join": [0] + spawn([SLEEP, MS1]) + [JOIN, 1],
    # Stacks of every kind, a bad attr, a name; gathered.
    "stacks": [0] + spawn([YIELD], OWN) + spawn([SLEEP, 2], SMALL | NAMED)
    + spawn([SLEEP, 3], SHARED) + spawn([], BAD | EPIPE)
    + gather([1, 2, 3]),
    # Results and errors follow argument order; the first failure in time.
    "gather-errors": [0] + spawn([SLEEP, MS1], FAILS | EIO)
    + spawn([SLEEP, 2], FAILS | EPIPE) + spawn([], NULL_RET)
    + spawn([FAIL, 2], FAILS_WITH_RESULT | ENOENT) + gather([1, 2, 3, 4]),
    # await_wait, each condition, with and without a timeout.
    "wait": [0] + spawn([SLEEP, MS1]) + spawn([SLEEP, 2], FAILS | EIO)
    + spawn([SLEEP, MS2]) + wait(0, 0, [1, 2, 3]) + wait(1, T1, [1, 2, 3])
    + wait(2, 0, [1, 2, 3]) + gather([1, 2, 3]),
    # Cancel a sleeping child, then join it: ECANCELED.
    "cancel-sleeper": [0] + spawn([SLEEP, MS2, SLEEP, MS2]) + [YIELD]
    + [CANCEL, 1, JOIN, 1],
    # A join that times out cancels and frees the child.
    "join-timeout": [0] + spawn([SLEEP, MS2, SLEEP, MS2])
    + [JOIN_TIMEOUT, 1, T02],
    # Cancelling a joiner cancels what it joins (structured).
    "cancel-joiner": [0] + spawn(spawn([SLEEP, MS2]) + [JOIN, 2])
    + [SLEEP, 2, CANCEL, 1, JOIN, 1],
    # Detached tasks are freed when they end; one detaches itself.
    "detach": [0] + spawn([SLEEP, 2]) + [DETACH, 1]
    + spawn([DETACH, 2, SLEEP, 2]) + [SLEEP, 4],
    # Blocking calls with errno, one cancelled while it runs.
    "blocking": [0] + spawn([BLOCKING, 0b0111]) + [BLOCKING, 0b0101]
    + [YIELD, CANCEL, 1, JOIN, 1],
    # A program run by coro_run on a worker thread, inside a blocking call.
    "nested": [0] + nested([0] + spawn([SLEEP, 2, BLOCKING, 1]) + [JOIN, 1])
    + [SLEEP, 2],
    # Two levels of nesting, and another loop's task is refused.
    "nested-deep": [0] + nested([0, MISUSE, 8] + nested([0, YIELD, MISUSE, 8])),
    # A shield holds cancellation back for clean-up that waits.
    "shield": [0] + spawn([SHIELD, 1, SLEEP, 3, SHIELD, 0, SLEEP, 3])
    + [YIELD, CANCEL, 1, JOIN, 1],
    # main and a child join each other: a deadlock, EDEADLK.
    "deadlock-joins": [0] + spawn([JOIN, 0]) + [JOIN, 1],
    # Two waits on each other: a deadlock that cancellation resolves.
    "deadlock-waits": [0] + spawn(wait(2, 0, [0])) + wait(2, 0, [1])
    + [JOIN, 1],
    # A shielded task left in a deadlock is freed without running further.
    "deadlock-shielded": [0] + spawn([SHIELD, 1, JOIN, 0]) + [YIELD, JOIN, 1],
    # Every misuse coro.h lists.
    "misuse": [0] + sum(([MISUSE, k] for k in range(10)), []),
    # Names, stack high water, the task dump.
    "look": [0] + spawn([SLEEP, 2], SHARED | NAMED) + [YIELD, LOOK, 0x80,
                                                      LOOK, 0x81],
    # Allocation failures: spawns and blocking calls fail with ENOMEM.
    "inject": [INJECT | 2] + spawn([YIELD]) + spawn([BLOCKING, 0])
    + spawn([SLEEP, 2]) + gather([1, 2, 3]),
    # main fails, and is cancelled by a child: coro_run's own outcome.
    "main-fails": [FAILS | EPIPE] + spawn([CANCEL, 0]) + [SLEEP, 2],
    # Tasks left behind when main returns are cancelled and freed.
    "leave-behind": [NULL_RET] + spawn([SLEEP, MS2, SLEEP, MS2])
    + spawn([BLOCKING, 3]) + [YIELD],
    # Spawning after main ended: born cancelled.
    "after-main": [0] + spawn([SHIELD, 1, SLEEP, 3, SHIELD, 0]
                              + spawn([SLEEP, 2]) + [JOIN, 2]) + [YIELD],
    # Few workers: a queued blocking call dropped by a cancel.
    "workers": [0, MISUSE, 7] + spawn([BLOCKING, 3]) + spawn([BLOCKING, 3])
    + [YIELD, CANCEL, 2, GATHER, 1, 1, 2],
    # A rendezvous: a receiver waits, main sends; then the other way round.
    "chan-rendezvous": [0] + spawn(recv(0) + [YIELD] + send(0)) + send(0)
    + recv(0) + recv(0, TRY) + [JOIN, 1],
    # A buffered channel fills (the fourth try says EAGAIN), a sender waits
    # for room, a receiver drains it in order; elements left are read out.
    "chan-buffered": [0] + send(2, TRY) * 4 + spawn(send(2) + send(2, T02))
    + [YIELD] + spawn(recv(2) * 3 + recv(1, TRY)) + [JOIN, 2, YIELD] + send(1),
    # Closing wakes senders and receivers with EPIPE; a second close is
    # EPIPE too.
    "chan-close": [0] + spawn(send(0)) + spawn(recv(1)) + [YIELD, CLOSE, 0,
                                                          CLOSE, 1, CLOSE, 0]
    + send(1, TRY) + recv(1) + [GATHER, 1, 1, 2],
    # Timeouts race the sends: the model bounds what it cannot order.
    "chan-timeouts": [0] + spawn(recv(0, T02) + recv(0, T1)) + spawn(
        [SLEEP, 2] + send(0, T1) + send(0, T2)) + [SLEEP, 3] + send(0, T02)
    + [GATHER, 1, 1, 2],
    # Selects: the first ready op wins; one waits on two receives, one on
    # a send and a receive, each completed by main.
    "select": [0] + send(1) + select([(0, 1), (2, 0), (1, 0)], T0)
    + spawn(select([(0, 0), (2, 0)]) + send(1, TRY) + select([(1, 1), (0, 0)]))
    + [YIELD] + send(0) + [YIELD] + recv(1) + recv(1) + [JOIN, 1],
    # A select of ten ops: coro allocates its waiters.
    "select-many": [0] + spawn(select([(0, 0), (1, 0), (2, 0)] * 3 + [(0, 1)]))
    + [YIELD] + recv(0) + [JOIN, 1],
    # Two shared-stack tasks, one parked in a select while the other runs.
    "select-shared": [0] + spawn(select([(0, 0), (1, 0)]), SHARED)
    + spawn(recv(2, T02) + [YIELD], SHARED) + [YIELD, SLEEP, 2] + send(1)
    + [JOIN, 1, JOIN, 2],
    # The bounded queue: a putter waits for room, getters in order,
    # task_done and join, size, shutdown.
    "queue": [0] + put(0) * 2 + put(0, T0) + spawn(put(0) + queue(0, QJOIN))
    + [YIELD] + queue(0, QSIZE) + get(0) * 3 + queue(0, TASK_DONE) * 4
    + queue(0, QSIZE) + [JOIN, 1] + queue(0, TASK_DONE),
    # Shutdown: waiting getters get EPIPE, puts too; the unbounded queue.
    "queue-shutdown": [0] + put(1) * 3 + spawn(get(0)) + [YIELD]
    + queue(0, SHUTDOWN) + put(0, TRY) + get(1) + queue(1, SHUTDOWN) + get(1)
    + get(1, TRY) + get(1) + [JOIN, 1],
    # Mutexes: contention hands the lock over in order; EDEADLK, EPERM; a
    # task ends holding one.
    "mutex": [0] + lock(0) + lock(0) + spawn(lock(0) + [UNLOCK, 0]) + spawn(
        lock(0, T02) + [UNLOCK, 0]) + spawn([UNLOCK, 0] + lock(1)) + [YIELD,
                                                                   SLEEP, 2]
    + [UNLOCK, 0, GATHER, 2, 1, 2, 3] + lock(1, T0),
    # The semaphore's one permit, taken, waited for, given back.
    "sem": [0] + acquire() + spawn(acquire() + [SEM, 1]) + spawn(acquire(T1))
    + [YIELD, SEM, 1, SEM, 1] + acquire(T0) + [GATHER, 1, 1, 2] + acquire(T0),
    # The event wakes every waiter; cleared, a wait times out.
    "event": [0] + spawn(event_wait()) + spawn(event_wait(T1)) + [YIELD,
                                                                   EVENT, 2]
    + event_wait() + [EVENT, 3] + event_wait(T02) + [GATHER, 1, 1, 2],
    # The condition: waits release the mutex and take it back; notify one,
    # then all; a wait without the mutex is EPERM, with the other EINVAL.
    "cond": [0] + spawn(lock(0) + cond_wait(0) + [UNLOCK, 0]) * 2
    + spawn(lock(1) + cond_wait(1, T1) + [UNLOCK, 1]) + [YIELD] + cond_wait(0)
    + notify(1) + [YIELD] + [COND, 3] + [GATHER, 2, 1, 2, 3],
    # A pipe: a write that waits for the reader, reads in pieces.
    "pipe": [0] + spawn(write(0, B5000)) + [YIELD] + read(0, B700)
    + read(0, B20000) + read(0, B20000) + [JOIN, 1] + read(0, B1, IO0),
    # A socketpair: readexactly, and a wait for readability.
    "socket": [0] + spawn(fd(1, READABLE) + read(1, B5000, IO2, 1))
    + [YIELD] + write(1, B20000) + [JOIN, 1] + write(1, B700) + fd(1, WRITABLE)
    + read(1, B5000, IO1, 1),
    # coro_close wakes a waiting writer with EBADF; the reader sees the end.
    "fd-close": [0] + spawn(write(0, B20000)) + [YIELD] + fd(0, CLOSE_W)
    + [JOIN, 1] + read(0, B20000) + read(0, B20000) + fd(0, CLOSE_W)
    + fd(1, CLOSE_R) + write(1, B700),
    # Every misuse of objects and fds coro.h lists.
    "sync-misuse": [0] + spawn(recv(0)) + [YIELD] + sum(([SYNC_MISUSE, k]
                                                        for k in range(8)), [])
    + send(0) + [JOIN, 1],
    # A nested run, on a worker thread, uses its own objects; its parent's
    # are another thread's: EINVAL, and the parent's element stays put.
    "nested-objects": [0] + send(1, TRY) + nested([0, SYNC_MISUSE, 8]
                                                   + send(1, TRY) + recv(1))
    + recv(1, TRY),
    # Receivers nobody sends to: a deadlock; one shielded is abandoned.
    "deadlock-chan": [0] + spawn(recv(0)) + spawn([SHIELD, 1] + recv(1))
    + lock(0) + spawn(lock(0)) + [JOIN, 1],
    # Eager tasks run inside their spawn, the spawner goes on first: one
    # ends there, one spawns an eager shared-stack task, one fails.
    "eager": [0] + spawn([YIELD]) + spawn([SLEEP, 2] + spawn([YIELD],
                                                           EAGER | SHARED),
                                          EAGER) + spawn([], EAGER | FAILS)
    + gather([1, 2, 3, 4]),
    # An eager task detaches itself and ends in its spawn; another cancels
    # its spawner and joins it.
    "eager-self": [0] + spawn([DETACH, 1], EAGER) + spawn([CANCEL, 0, JOIN, 0],
                                                         EAGER | SMALL)
    + [YIELD, LOOK, 0x80],
    # A group of members on every stack, one eager: awaited, results
    # read, freed (with coro_dump before).
    "group": [0] + gspawn([SLEEP, 2]) + gspawn([YIELD], SHARED | NAMED)
    + gspawn([], EAGER | SMALL) + group(RESULTS) + await_group()
    + group(RESULTS) + [LOOK, 0x80] + group(FREE),
    # A failing member cancels the others and is await_group's result; a
    # member spawned after is born cancelled; a second group's member is
    # cancelled by main, a failure.
    "group-fail": [0] + gspawn([SLEEP, MS1, SLEEP, MS1])
    + gspawn([YIELD], FAILS | EIO) + [YIELD, YIELD] + gspawn([YIELD])
    + await_group() + group(RESULTS) + gspawn([SLEEP, MS1], 0, NEW_GROUP)
    + [YIELD, CANCEL, 4] + await_group(1),
    # The awaiter is cancelled: the members are cancelled and awaited.
    "group-cancel": [0] + gspawn([SLEEP, MS2, SLEEP, MS2])
    + spawn(await_group()) + [YIELD, CANCEL, 2, GROUP, FREE, JOIN, 2]
    + group(RESULTS) + group(FREE),
    # A member owns a group of its own, and awaits it.
    "group-nested": [0] + gspawn(gspawn([SLEEP, 3], 0, NEW_GROUP)
                                 + await_group(1)) + await_group()
    + group(RESULTS) + group(RESULTS, 1) + group(FREE, 1),
    # A member awaits its own group (EDEADLK), main joins it (EINVAL),
    # frees the group while it runs (EBUSY), and spawns into it once
    # awaited (EINVAL); another task awaits it meanwhile (EINVAL).
    "group-misuse": [0] + gspawn(await_group() + [SLEEP, 2])
    + spawn([YIELD] + await_group()) + [JOIN, 1, DETACH, 1] + group(FREE)
    + await_group() + gspawn([]) + [MISUSE13, 0, JOIN, 2],
    # Tasks handed out in the order they end, then joined; EPIPE.
    "as-completed": [0] + spawn([SLEEP, 3]) + spawn([SLEEP, 2])
    + spawn([SLEEP, MS1]) + as_completed([1, 2, 3]),
    # The iterator's timeout; a reader cancelled leaves its tasks running;
    # a claimed task detached is never handed out.
    "as-completed-timeout": [0] + spawn([SLEEP, MS2]) + spawn([SLEEP, MS1])
    + as_completed([1, 2], T02, 2) + spawn(as_completed([1, 2], NONE, 1))
    + spawn([DETACH, 1]) + [YIELD, MISUSE13, 2, CANCEL, 3, JOIN, 3, JOIN, 2]
    + as_completed([1]) + [MISUSE13, 1],
    # Scopes: a sleep past the deadline is ETIMEDOUT, and so is closing;
    # an inner scope ends before the outer; one from the budget ends a
    # longer sleep.
    "scope": [0] + timeout(SC_NONE_AT) + timeout(SC_NOW) + [SLEEP, 2] + close()
    + [SLEEP, 2] + LOOK_SCOPES + close() + timeout(SC_02) + [SLEEP, MS2]
    + close(),
    # A join, a gather and a group ended by a scope cancel and await their
    # tasks; await_wait says ETIMEDOUT for a scope and 0 for its timeout.
    "scope-join": [0] + spawn([SLEEP, MS2]) + timeout(SC_02) + [JOIN, 1]
    + close() + spawn([SLEEP, MS2]) + spawn([YIELD]) + timeout(SC_PAST)
    + gather([1, 2]) + close() + gspawn([SLEEP, MS1]) + timeout(SC_02, AT)
    + await_group() + close() + spawn([SLEEP, MS1]) + timeout(SC_02)
    + wait(0, T1, [2]) + close() + [JOIN, 2],
    # A shield holds back the scopes open when it went on; one opened
    # inside applies; with the shield off the outer applies again.
    "scope-shield": [0] + timeout(SC_NOW) + [SHIELD, 1, SLEEP, 2]
    + timeout(SC_NONE) + timeout(SC_NOW) + [SLEEP, 2] + close() + close()
    + [SHIELD, 0, SLEEP, 2] + close(),
    # Objects and fds inside scopes, past and running.
    "scope-objects": [0] + timeout(SC_ZERO, AT) + recv(0) + lock(0)
    + acquire() + event_wait() + read(0, B700) + close()
    + spawn(timeout(SC_1) + recv(1) + close()) + [YIELD] + send(1) + [JOIN, 1]
    + timeout(SC_02) + lock(0) + cond_wait(0) + close() + [UNLOCK, 0],
    # Rescheduling, an expired scope refused, one not innermost refused,
    # another task's scope refused; the misuses.
    "scope-misuse": [0] + timeout(SC_NONE_AT) + timeout(SC_NONE)
    + move(1, TO_PAST) + [YIELD] + move(1, TO_NOW) + LOOK_SCOPES + close()
    + move(0, TO_BUDGET)
    + spawn(FOREIGN_SCOPE) + [JOIN, 1, MISUSE13, 3] + close(),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "corpus")
    os.makedirs(out, exist_ok=True)
    for name, prog in SEEDS.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(bytes(prog))
    print(f"{len(SEEDS)} seeds in {out}")


if __name__ == "__main__":
    main()
