"""sleepers: N asyncio tasks each sleeping 1 s; the asyncio twin of sleepers.c."""
import asyncio
import resource
import sys
import time


async def main(n):
    await asyncio.gather(*(asyncio.sleep(1) for _ in range(n)))


def cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


if __name__ == "__main__":
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and not sys.argv[1].isdigit()):
        print("usage: sleepers.py [N]", file=sys.stderr)
        sys.exit(2)
    n = int(sys.argv[1]) if len(sys.argv) == 2 else 100000
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    asyncio.run(main(n))
    wall = time.monotonic() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"python {n:8d} sleepers: wall {wall:.2f} s, cpu {cpu():.2f} s, "
          f"peak rss {rss / 1024:.0f} MiB, {(rss - rss0) / n:.2f} KiB per task")
