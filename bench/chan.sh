#!/bin/sh
# A message through an unbuffered channel between two tasks: coro, Go
# (GOMAXPROCS=1, one thread as coro's loop, and the default) and asyncio's
# Queue(maxsize=1), in one run.
set -u
build=${BUILD:-build/bench}
here=$(dirname "$0")
"$build/chan" || exit 1
if command -v go >/dev/null 2>&1; then
    GOCACHE=${GOCACHE:-$PWD/build/go-cache} GO111MODULE=off \
        go build -o "$build/chan_go" "$here/chan.go" &&
        GOMAXPROCS=1 "$build/chan_go" && "$build/chan_go"
else
    echo "(go not installed: apt-get install golang-go to compare)"
fi
command -v python3 >/dev/null 2>&1 && python3 "$here/chan.py"
exit 0
