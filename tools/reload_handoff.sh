#!/usr/bin/env bash
# Measures a rolling reload that keeps its connections (issue 13): the time one worker takes
# to hand N idle WebSocket connections to its replacement, and the extra memory meanwhile.
#
#   tools/reload_handoff.sh [N=10000]
#
# The release `echo` example runs with one worker (so one worker hands all N over); `loadtool
# connect` opens N idle connections from 127.0.0.2 and holds them, reporting how many are still
# open at the end (every connection must survive). The hand-off time is the old worker's own
# figure (`handed over N connections in X ms`: from its SIGTERM to the last state written to the
# channel) and the replacement's (`accepts ...` once all are adopted). Memory: the PSS of the
# master and its workers, sampled every 10 ms, before and at its peak during the reload.
# Server pinned to CPU 0, client to CPU 1. Nothing is asserted: figures go to stdout.
set -euo pipefail
N=${1:-10000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ECHO="$ROOT/target/release/examples/echo"
LOADTOOL="$ROOT/tools/target/release/loadtool"
[ -x "$ECHO" ] || (cd "$ROOT" && cargo build --release --example echo)
[ -x "$LOADTOOL" ] || (cd "$ROOT/tools" && cargo build --release -p loadtool)
PORT=$((20000 + RANDOM % 20000))
LOG=$(mktemp)
ulimit -n "$(ulimit -Hn)"
RUST_LOG=info taskset -c 0 "$ECHO" --host 127.0.0.1 --port "$PORT" --workers 1 2>"$LOG" >/dev/null &
MASTER=$!
trap 'kill -TERM $MASTER 2>/dev/null || true; wait $MASTER 2>/dev/null || true; rm -f "$LOG"' EXIT
sleep 0.5

pss_total() {
    local sum=0 p
    for p in $MASTER $(pgrep -P "$MASTER" || true); do
        v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

taskset -c 1 "$LOADTOOL" --quiet --bind-ip 127.0.0.2 connect --url "ws://127.0.0.1:$PORT/" \
    --conns "$N" --hold 12s > "$LOG.client" &
CLIENT=$!
# Wait until all are connected.
for _ in $(seq 1 300); do
    open=$(ls /proc/$(pgrep -P "$MASTER" | head -1)/fd 2>/dev/null | wc -l)
    [ "$open" -ge "$N" ] && break
    sleep 0.1
done
sleep 1
BEFORE=$(pss_total)
PEAK=$BEFORE
kill -USR1 "$MASTER"
for _ in $(seq 1 500); do
    cur=$(pss_total)
    [ "$cur" -gt "$PEAK" ] && PEAK=$cur
    grep -q "accepts (" "$LOG" && break
    sleep 0.01
done
sleep 0.5
AFTER=$(pss_total)
wait "$CLIENT"
echo "connections: $N idle, one worker"
grep -o "handed over [0-9]* connections in [0-9]* ms" "$LOG" || true
grep -o "accepts ([0-9]* connections handed over.*)" "$LOG" || true
echo "PSS of master + workers: before ${BEFORE} kB, peak during the hand-off ${PEAK} kB (+$((PEAK - BEFORE)) kB), after ${AFTER} kB"
grep -o "open_after_hold=[0-9]*" "$LOG.client" | sed 's/^/client: /'
grep -o "failures=[0-9]*" "$LOG.client" | sed 's/^/client: connect /'
rm -f "$LOG.client"
