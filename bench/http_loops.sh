#!/bin/bash
# The HTTP server with one loop against two (bench/http_server --threads),
# under wrk on loopback: 1000 connections for 10 s, rounds alternating
# between the two so that load from elsewhere falls on both alike. Nothing
# is pinned: two loops need both cores, and wrk shares them. Prints
# requests/s, p99 latency and the server's CPU time per request.
# Needs wrk (apt-get install wrk).
set -u
build=${BUILD:-build/bench}
conns=${CONNS:-1000}
secs=${SECS:-10}
rounds=${ROUNDS:-3}
wrk_threads=${WRK_THREADS:-2}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk"; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

measure() { # loops port
    loops=$1 port=$2
    "$build/http_server" --port "$port" --threads "$loops" >/dev/null \
        2>"$build/http_loops.err" &
    pid=$!
    wait_port "$port" || { echo "server did not start"; kill $pid; return; }
    out=$(wrk -t"$wrk_threads" -c"$conns" -d"${secs}s" --latency \
          "http://127.0.0.1:$port/")
    kill -TERM $pid
    wait $pid 2>/dev/null
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    errs=$(echo "$out" | awk '/Socket errors|Non-2xx/ {print}' | tr '\n' ' ')
    cpu=$(awk '/served/ {print $4}' "$build/http_loops.err")
    printf "%d loop%s %9s req/s   p99 %8s   %6s us CPU/request   %s\n" \
        "$loops" "$([ "$loops" = 1 ] && echo " " || echo s)" "$rps" "$p99" \
        "$cpu" "$errs"
}

echo "wrk -t$wrk_threads -c$conns -d${secs}s, nothing pinned, $(nproc) CPUs:"
for r in $(seq "$rounds"); do
    measure 1 18090
    measure 2 18091
done
exit 0
