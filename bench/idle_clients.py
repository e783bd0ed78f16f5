"""idle_clients.py N PORT PID: opens N idle TCP connections to 127.0.0.1:PORT,
waits until the server (process PID) has settled, and prints the server's
resident memory growth per connection."""
import resource
import socket
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    n, port, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    time.sleep(0.3)
    before = rss_kib(pid)
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        socks.append(s)
    # Let the server accept and park every connection.
    last = -1
    for _ in range(50):
        time.sleep(0.2)
        now = rss_kib(pid)
        if now == last:
            break
        last = now
    after = rss_kib(pid)
    print(f"{(after - before) / n:.2f} KiB per idle connection "
          f"({n} connections: {before} -> {after} KiB)")
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
