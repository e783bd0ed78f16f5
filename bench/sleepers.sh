#!/bin/sh
# Runs the sleepers benchmark in C (coro), Go and Python asyncio, for each
# N given (default: 100000 1000000), one after another on the same machine.
# Go and Python are skipped, with a note, where they are not installed.
set -u
here=$(dirname "$0")
build=${BUILD:-build/bench}
counts=${*:-100000 1000000}

if command -v go >/dev/null 2>&1; then
    GOCACHE=${GOCACHE:-$PWD/build/go-cache} GO111MODULE=off \
        go build -o "$build/sleepers_go" "$here/sleepers.go" || exit 1
    have_go=1
else
    echo "(go not installed: apt-get install golang-go to compare)"
    have_go=0
fi
command -v python3 >/dev/null 2>&1 && have_py=1 || have_py=0

for n in $counts; do
    "$build/sleepers" "$n" || exit 1
    [ "$have_go" = 1 ] && "$build/sleepers_go" "$n"
    [ "$have_py" = 1 ] && python3 "$here/sleepers.py" "$n"
done
exit 0
