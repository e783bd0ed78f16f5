"""peers: the asyncio side of bench/peers.sh. Usage: peers.py handoff|spawn|timers"""
import asyncio
import sys
import time


async def handoff():
    n = 200000

    async def ping():
        for _ in range(n):
            await asyncio.sleep(0)

    t0 = time.monotonic()
    await asyncio.gather(ping(), ping())
    print(f"handoff {(time.monotonic() - t0) / (2 * n) * 1e9:.1f}")


async def spawn():
    n = 200000

    async def trivial():
        return None

    t0 = time.monotonic()
    for _ in range(n):
        await asyncio.create_task(trivial())
    print(f"spawn {(time.monotonic() - t0) / n * 1e9:.1f}")


async def timers():
    n = 1000
    over = []
    for _ in range(n):
        t0 = time.monotonic()
        await asyncio.sleep(0.001)
        over.append((time.monotonic() - t0 - 0.001) * 1e6)
    print(f"timers {sum(over) / n:.1f} {sorted(over)[n * 99 // 100]:.1f}")


if __name__ == "__main__":
    modes = {"handoff": handoff, "spawn": spawn, "timers": timers}
    if len(sys.argv) != 2 or sys.argv[1] not in modes:
        print("usage: peers.py handoff|spawn|timers", file=sys.stderr)
        sys.exit(2)
    asyncio.run(modes[sys.argv[1]]())
