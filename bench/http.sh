#!/bin/bash
# HTTP server benchmark: coro's server (bench/http_server) on epoll and on
# io_uring (CORO_IO), the floor an
# epoll server reaches (bench/bare_epoll: no coroutines, one read and one
# write per request), Go's netpoller (bench/http_server.go, a goroutine per
# connection, GOMAXPROCS=1; where go is installed) and the asyncio twin
# (bench/http_server.py), each
# under wrk on loopback, 1000 connections for 10 s, the server on CPU 0 and
# wrk on CPU 1; then RSS per idle connection with 10,000 connections held
# open (IDLE=0 skips it). ROUNDS=N runs the servers N times in turn, so
# that a drift in the machine touches all of them. Prints requests/s and
# p99. Needs wrk (apt-get install wrk).
set -u
build=${BUILD:-build/bench}
here=$(dirname "$0")
conns=${CONNS:-1000}
secs=${SECS:-10}
idle=${IDLE:-10000}
rounds=${ROUNDS:-1}
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk"; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null

# Pins to a CPU where taskset exists (util-linux); runs as is elsewhere.
if command -v taskset >/dev/null; then
    cpu0="taskset -c 0" cpu1="taskset -c 1"
else
    cpu0="" cpu1=""
fi

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

measure() { # name port command...
    name=$1 port=$2
    shift 2
    $cpu0 "$@" >/dev/null &
    pid=$! # taskset execs the server: this is the server's pid
    wait_port "$port" || { echo "$name: server did not start"; kill $pid; return; }
    out=$($cpu1 wrk -t1 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$port/")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    errs=$(echo "$out" | awk '/Socket errors|Non-2xx/ {print}' | tr '\n' ' ')
    printf "%-10s %8s req/s   p99 %8s   %s\n" "$name" "$rps" "$p99" "$errs"
    if [ "$idle" -gt 0 ] && command -v python3 >/dev/null; then
        printf "%-10s " "$name"
        python3 "$here/idle_clients.py" "$idle" "$port" "$pid"
    fi
    kill $pid
    wait $pid 2>/dev/null
}

have_go=0
if command -v go >/dev/null 2>&1; then
    mkdir -p build/go-cache
    GOCACHE=$PWD/build/go-cache GO111MODULE=off \
        go build -o build/http_server_go "$here/http_server.go" && have_go=1
fi

echo "wrk -t1 -c$conns -d${secs}s, server on CPU 0, wrk on CPU 1:"
for _ in $(seq "$rounds"); do
    measure coro/epoll 18080 env CORO_IO=epoll "$build/http_server" --port 18080
    measure coro/uring 18083 env CORO_IO=io_uring "$build/http_server" --port 18083
    measure bare 18082 "$build/bare_epoll" --port 18082
    [ $have_go = 1 ] && measure go 18084 build/http_server_go --port 18084
    command -v python3 >/dev/null &&
        measure python 18081 python3 "$here/http_server.py" 18081
done
exit 0
