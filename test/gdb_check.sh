#!/bin/sh
# gdb_check.sh: gdb/coro-gdb.py against test/gdb_target, a program whose
# tasks are parked in many kinds of wait on two loops: attached to the live
# process, then on a core file made of it (coro gcore). Checks that
# `info coro` names each task and its wait, and that `coro bt` shows each
# parked task's own function among its frames.
#
# usage: test/gdb_check.sh TARGET [AUTOLOAD_DIR]
#   TARGET        a gdb_target program
#   AUTOLOAD_DIR  TARGET is linked with an installed libcoro.so, whose
#                 script gdb must load by itself from this auto-load
#                 directory (make install's GDB_AUTOLOAD); without it, the
#                 script is sourced.
set -eu

target=$1
autoload=${2:-}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pid=
cleanup() {
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "gdb-check: $target: $*" >&2
    exit 1
}

if [ -n "$autoload" ]; then
    load="-iex 'set auto-load scripts-directory $autoload'"
    load="$load -iex 'set auto-load safe-path $autoload'"
else
    load="-ex 'source $here/gdb/coro-gdb.py'"
fi
# gdb in batch mode, with nothing of the user's, the script loaded.
run_gdb() {
    out=$1
    shift
    eval gdb -batch -nx -iex "'set debuginfod enabled off'" "$@" "$load" \
        -ex "'info coro'" -ex "'coro bt all'" $more > "$out" 2>&1 ||
        fail "gdb failed: $(tail -5 "$out")"
}

"$target" --seconds 60 > "$work/stdout" &
pid=$!
tries=0
until grep -q ready "$work/stdout" 2>/dev/null; do
    tries=$((tries + 1))
    [ $tries -lt 200 ] || fail "never said ready"
    kill -0 "$pid" 2>/dev/null || fail "ended before it was ready"
    sleep 0.05
done

# gdb attaches as a sibling: with Yama's ptrace_scope above 0 that needs
# root (CI runs as root).
scope=$(cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null || echo 0)
if [ "$scope" != 0 ] && [ "$(id -u)" != 0 ]; then
    echo "gdb-check: skipped: kernel.yama.ptrace_scope=$scope and not root"
    exit 0
fi

more="-ex 'coro gcore $work/core'"
run_gdb "$work/live" -p "$pid"
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=
[ -s "$work/core" ] || fail "coro gcore made no core: $(tail -5 "$work/live")"
more=
run_gdb "$work/core.txt" "$target" "$work/core"

# What every listing must hold: a task's name, state, and its wait.
check_list() {
    out=$1
    while IFS='|' read -r what pattern; do
        grep -Eq "$pattern" "$out" || fail "$(basename "$out"): no $what:
$(cat "$out")"
    done <<'EOF'
main's gather|#1 +main +parked +gather 12 tasks, 12 not ended
a sleep|#2 +sleeping_task +parked +sleep, [0-9.]+ s to go
a channel receive|#3 +chan_receiver +parked +channel receive 0x
a select|#4 +select_waiter +parked +select
a mutex and its holder|#6 +mutex_waiter +parked +mutex 0x[0-9a-f]+, held by #5
a named task's event|#7 +the-event-waiter +parked +event 0x[0-9a-f]+, times out in
a queue get|#8 +queue_getter +parked +queue get 0x
a pipe read|#9 +pipe_reader +parked +read fd [0-9]+
a blocking call|#10 +blocking_caller +parked +blocking call blocks_on_a_pipe\(\) on a worker
a join|#11 +joiner +parked +join #14 \(sleeping_task\)
the shared stack|#12 +shared_sleeper +parked +sleep, .*K shared
the second loop|loop [0-9]+: 2 tasks
the second loop's join|#1 +main +parked +join #2 \(other_loop_sleeper\)
EOF
    if grep -q "Python Exception\|Error occurred in Python" "$out"; then
        fail "$(basename "$out"): the script failed:
$(cat "$out")"
    fi
}

# Every task's backtrace holds its own function (the name in parentheses
# in the header line `loop L, task #N "name" (function), ...`).
check_backtraces() {
    out=$1
    awk '
        /^loop [0-9]+, task #/ {
            if (fn != "" && !found) { print "no frame of " fn " under " hdr; bad = 1 }
            hdr = $0; found = 0
            fn = $0; sub(/^[^(]*\(/, "", fn); sub(/\).*/, "", fn)
            tasks++
            next
        }
        fn != "" && $0 ~ ("^  #[0-9]+ +(0x[0-9a-f]+ in )?" fn "[ (]") { found = 1 }
        END {
            if (fn != "" && !found) { print "no frame of " fn " under " hdr; bad = 1 }
            if (tasks != 16) { print tasks " backtraces, not 16"; bad = 1 }
            exit bad
        }' "$out" || fail "$(basename "$out"): backtraces:
$(cat "$out")"
}

for out in "$work/live" "$work/core.txt"; do
    check_list "$out"
    check_backtraces "$out"
done
# The frames between the task's function and its wait are there too.
grep -Eq "in read_request \(" "$work/live" || fail "no read_request frame"
grep -Eq "in nest \(depth=(depth@entry=)?3\)" "$work/live" ||
    fail "no nest frames of a shared-stack task, live"
grep -Eq "in nest at .*\(a guess" "$work/core.txt" ||
    fail "no guessed nest frames of a shared-stack task in the core"
echo "gdb-check: $target: ok (live and core${autoload:+, auto-loaded})"
