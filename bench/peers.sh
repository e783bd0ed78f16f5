#!/bin/bash
# make bench-peers: coro's two switch builds (swapcontext, and
# SWITCH=fast), with own and shared stacks, beside Go and Python asyncio,
# measured one after another on this machine; one table of figures and the
# ratios the targets are stated in. Nothing is downloaded: the peers are
# bench/peers.go, bench/sleepers.go, bench/peers.py and bench/sleepers.py.
# N=100000 makes the sleepers run smaller (default 1000000).
set -u
here=$(dirname "$0")
slow=${SLOW:-build/bench}
fast=${FAST:-build/fast/bench}
n=${N:-1000000}

num() { sed -n "s/.*$1 \([0-9.]*\).*/\1/p" | head -1; }

have_go=0
if command -v go >/dev/null 2>&1; then
    mkdir -p build/go-cache
    GOCACHE=$PWD/build/go-cache GO111MODULE=off \
        go build -o build/peers_go "$here/peers.go" &&
    GOCACHE=$PWD/build/go-cache GO111MODULE=off \
        go build -o build/sleepers_go "$here/sleepers.go" && have_go=1
fi
have_py=0
command -v python3 >/dev/null 2>&1 && have_py=1

echo "measuring: handoff, spawn, timers, then 100k and $n sleepers..." >&2
h_slow=$($slow/handoff | num "coro")
h_fast=$($fast/handoff | num "coro")
h_jmp=$($fast/handoff | num "_setjmp\/_longjmp")
s_slow=$($slow/spawn | num "spawn:")
s_fast=$($fast/spawn | num "spawn:")
t_slow=$($slow/timers | sed -n 's/.*mean \([0-9.]*\) us, p99 \([0-9.]*\).*/\1 \2/p')
t_fast=$($fast/timers | sed -n 's/.*mean \([0-9.]*\) us, p99 \([0-9.]*\).*/\1 \2/p')
c_slow=$($slow/timers --churn 10000 | sed -n 's/.*mean \([0-9.]*\) us, p99 \([0-9.]*\).*/\1 \2/p')
c_fast=$($fast/timers --churn 10000 | sed -n 's/.*mean \([0-9.]*\) us, p99 \([0-9.]*\).*/\1 \2/p')
if [ $have_go = 1 ]; then
    h_go=$(GOMAXPROCS=1 build/peers_go handoff | num handoff)
    s_go=$(GOMAXPROCS=1 build/peers_go spawn | num spawn)
    t_go=$(build/peers_go timers | sed -n 's/timers //p')
fi
if [ $have_py = 1 ]; then
    h_py=$(python3 "$here/peers.py" handoff | num handoff)
    s_py=$(python3 "$here/peers.py" spawn | num spawn)
    t_py=$(python3 "$here/peers.py" timers | sed -n 's/timers //p')
fi

# wall s, cpu s, KiB per task
sleepers() { "$@" | sed -n 's/.*wall \([0-9.]*\) s, cpu \([0-9.]*\) s.*MiB, \([0-9.]*\) KiB.*/\1 \2 \3/p'; }
k_slow=$(sleepers $slow/sleepers 100000)
k_fast=$(sleepers $fast/sleepers 100000)
[ $have_go = 1 ] && k_go=$(sleepers build/sleepers_go 100000)
z_slow=$(sleepers $slow/sleepers "$n")
z_slow_sh=$(sleepers $slow/sleepers --shared "$n")
z_fast=$(sleepers $fast/sleepers "$n")
z_fast_sh=$(sleepers $fast/sleepers --shared "$n")
[ $have_go = 1 ] && z_go=$(sleepers build/sleepers_go "$n")
[ $have_py = 1 ] && z_py=$(sleepers python3 "$here/sleepers.py" "$n")

f() { echo "$1" | awk -v i="$2" '{print $i}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }

printf '\n%s, %s, %s\n' "$(date +%F)" "$(uname -r)" \
    "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1) x $(nproc)"
printf '%-34s %12s %12s %12s %12s\n' "" "coro" "coro fast" "Go" "asyncio"
printf '%-34s %12s %12s %12s %12s\n' "handoff, ns" "$h_slow" "$h_fast" "${h_go:--}" "${h_py:--}"
printf '%-34s %12s %12s %12s %12s\n' "spawn + run + join, ns" "$s_slow" "$s_fast" "${s_go:--}" "${s_py:--}"
printf '%-34s %12s %12s %12s\n' "100000 sleepers, own stacks: wall s" "$(f "$k_slow" 1)" "$(f "$k_fast" 1)" "$(f "${k_go:-}" 1)"
printf '%-34s %12s %12s %12s %12s\n' "$n sleepers, own stacks: wall s" "$(f "$z_slow" 1)" "$(f "$z_fast" 1)" "$(f "${z_go:-}" 1)" "$(f "${z_py:-}" 1)"
printf '%-34s %12s %12s %12s %12s\n' "  CPU s" "$(f "$z_slow" 2)" "$(f "$z_fast" 2)" "$(f "${z_go:-}" 2)" "$(f "${z_py:-}" 2)"
printf '%-34s %12s %12s %12s %12s\n' "  KiB per task" "$(f "$z_slow" 3)" "$(f "$z_fast" 3)" "$(f "${z_go:-}" 3)" "$(f "${z_py:-}" 3)"
printf '%-34s %12s %12s\n' "$n sleepers, shared stack: wall s" "$(f "$z_slow_sh" 1)" "$(f "$z_fast_sh" 1)"
printf '%-34s %12s %12s\n' "  CPU s" "$(f "$z_slow_sh" 2)" "$(f "$z_fast_sh" 2)"
printf '%-34s %12s %12s\n' "  KiB per task" "$(f "$z_slow_sh" 3)" "$(f "$z_fast_sh" 3)"
printf '%-34s %12s %12s %12s %12s\n' "timer 1 ms: mean oversleep, us" "$(f "$t_slow" 1)" "$(f "$t_fast" 1)" "$(f "${t_go:-}" 1)" "$(f "${t_py:-}" 1)"
printf '%-34s %12s %12s %12s %12s\n' "  p99 oversleep, us" "$(f "$t_slow" 2)" "$(f "$t_fast" 2)" "$(f "${t_go:-}" 2)" "$(f "${t_py:-}" 2)"
printf '%-34s %12s %12s\n' "  p99, 10,000 others churning, us" "$(f "$c_slow" 2)" "$(f "$c_fast" 2)"

echo
echo "targets (fast build):"
printf '  handoff / Go                  %8s  (at most 0.50x)\n' "$(ratio "$h_fast" "${h_go:-0}")"
printf '  handoff / bare _setjmp/_longjmp %6s  (at most 1.50x; bare %s ns)\n' "$(ratio "$h_fast" "$h_jmp")" "$h_jmp"
printf '  spawn + join / Go             %8s  (at most 0.90x)\n' "$(ratio "$s_fast" "${s_go:-0}")"
printf '  %s sleepers own stacks, wall / Go %7s  (at most 1.20x)\n' "$n" "$(ratio "$(f "$z_fast" 1)" "$(f "${z_go:-0}" 1)")"
printf '  100000 sleepers own stacks, wall / Go %7s  (at most 1.00x)\n' "$(ratio "$(f "$k_fast" 1)" "$(f "${k_go:-0}" 1)")"
printf '  sleepers shared, wall / Go    %8s  (below 1.00x), %s KiB per task (at most 1)\n' "$(ratio "$(f "$z_fast_sh" 1)" "$(f "${z_go:-0}" 1)")" "$(f "$z_fast_sh" 3)"
printf '  timer p99 oversleep           %8s us (under 100)\n' "$(f "$t_fast" 2)"
printf '  timer p99, 10,000 churning    %8s us (under 100)\n' "$(f "$c_fast" 2)"
echo "targets (default build):"
printf '  %s sleepers own stacks, wall / Go %7s  (at most 1.50x)\n' "$n" "$(ratio "$(f "$z_slow" 1)" "$(f "${z_go:-0}" 1)")"
printf '  100000 sleepers own stacks, wall / Go %7s  (at most 1.00x)\n' "$(ratio "$(f "$k_slow" 1)" "$(f "${k_go:-0}" 1)")"
exit 0
