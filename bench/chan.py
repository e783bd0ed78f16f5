"""chan: the asyncio twin of chan.c: messages through asyncio.Queue(maxsize=1)."""
import asyncio
import sys
import time


async def produce(q, n):
    for i in range(n):
        await q.put(i)


async def consume(q, n):
    total = 0
    for _ in range(n):
        total += await q.get()
    return total


async def main(n):
    q = asyncio.Queue(maxsize=1)
    t0 = time.monotonic()
    await asyncio.gather(consume(q, n), produce(q, n))
    ns = (time.monotonic() - t0) / n * 1e9
    print(f"python asyncio.Queue(maxsize=1): {ns:.0f} ns per message")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200000))
