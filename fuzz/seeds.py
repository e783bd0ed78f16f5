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

# A SPAWN's mode byte: stack, how the task ends, which errno, a name.
OWN, SMALL, SHARED, BAD = 0, 1, 2, 3
RET, NULL_RET, FAILS, FAILS_WITH_RESULT = (0 << 2, 1 << 2, 2 << 2, 3 << 2)
EIO, EPIPE, ENOENT, ECANCELED = (0 << 4, 1 << 4, 2 << 4, 3 << 4)
NAMED = 0x40
INJECT = 0xc0  # header: allocation failures, one in 5/9/17/33 (low bits)

# SLEEP's operand: 0 -> -1 s (a yield), 1 -> 0, 2 -> 0.1 ms, 3 -> 0.5 ms,
# 4 -> 1 ms, 5 -> 2 ms. Timeouts: 0 -> none, 1 -> 0, 2 -> 0.2 ms,
# 3 -> 1 ms, 4 -> 2 ms.
MS1, MS2 = 4, 5
T0, T02, T1, T2 = 1, 2, 3, 4


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
