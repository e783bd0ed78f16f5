#!/bin/sh
# A message's round trip between two threads: coro's two loops
# (bench/xloop.c), two goroutines with GOMAXPROCS=2 (bench/xloop.go) and
# two plain threads with a mutex and a condition variable each way
# (bench/xloop_pthread.c). On a 2-core machine each side may have a core,
# or share one with whatever else runs.
set -u
build=${BUILD:-build/bench}
here=$(dirname "$0")
n=${1:-200000}
"$build/xloop" "$n" || exit 1
"$build/xloop_pthread" "$n" || exit 1
if command -v go >/dev/null 2>&1; then
    GOCACHE=${GOCACHE:-$PWD/build/go-cache} GO111MODULE=off \
        go build -o "$build/xloop_go" "$here/xloop.go" &&
        GOMAXPROCS=2 "$build/xloop_go" "$n"
else
    echo "(go not installed: apt-get install golang-go to compare)"
fi
exit 0
