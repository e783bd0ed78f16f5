"""blocking: the asyncio twin of blocking.c: 200 blocking 10 ms calls through
run_in_executor on a ThreadPoolExecutor of 8, then empty-job round trips."""
import asyncio
import concurrent.futures
import sys
import time


def sleep_10ms():
    time.sleep(0.01)


def empty():
    return None


async def main(roundtrips):
    loop = asyncio.get_running_loop()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
    await asyncio.gather(*(loop.run_in_executor(pool, sleep_10ms)
                           for _ in range(8)))
    t0 = time.monotonic()
    await asyncio.gather(*(loop.run_in_executor(pool, sleep_10ms)
                           for _ in range(200)))
    wall = time.monotonic() - t0
    for _ in range(100):
        await loop.run_in_executor(pool, empty)
    t0 = time.monotonic()
    for _ in range(roundtrips):
        await loop.run_in_executor(pool, empty)
    rt = (time.monotonic() - t0) / roundtrips * 1e6
    pool.shutdown()
    print(f"python blocking: 200 x 10 ms on 8 workers: wall {wall * 1e3:.1f} ms, "
          f"overhead {(wall - 0.25) * 1e3:.1f} ms ({(wall - 0.25) / 0.25 * 100:.1f}% "
          f"of ideal 250 ms); empty job round trip {rt:.1f} us")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 20000
    asyncio.run(main(n))
