#!/usr/bin/env bash
# Benchmark of prefork-ws against single-threaded peers, on loopback only.
#
#   tools/bench.sh [--quick] [--reps N] [--duration SECS] [--baseline ECHO_BIN]
#
# --baseline: also runs another build of the `echo` example (an earlier commit, built
# elsewhere) as "prefork-ws baseline", for a before/after comparison in one session.
#
# Builds (release) the main crate's `echo` example and the tools workspace (loadtool + peers),
# then for each repetition runs every server in turn (the order rotates per repetition):
# prefork-ws echo --workers 1, fastwebsockets, tokio-tungstenite, and the raw TCP floor. Each
# server is pinned to CPU 0 (taskset -c 0, own session via setsid), the load tool to CPU 1.
# Cases per server (on a freshly started server, idle memory first so earlier runs' freed
# memory cannot hide the per-connection cost):
#   idle10k  connect --conns 10000 --hold H          -> server RSS per idle connection
#   hs5k     connect --conns 5000                    -> server CPU µs per handshake
#   e32x100  echo --conns 100  --size 32    (D s)    -> server CPU µs per message
#   e32x1k   echo --conns 1000 --size 32    (D s)
#   e16kx100 echo --conns 100  --size 16384 (D s)
# The raw TCP floor talks plain TCP (loadtool --raw): its "handshake" is a TCP connect plus a
# 1-byte round trip.
# Prints and writes tools/bench-results.md (medians) and tools/bench-cpu.png; raw outputs are
# kept under tools/target/bench/<timestamp>/.
# --quick: 1 repetition, 2 s cases. Needs ~20000 open files (ulimit -n is raised to the hard
# limit) and python3 (matplotlib is pip-installed if missing; gnuplot from apt as a fallback).
set -euo pipefail

TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAIN=$(dirname "$TOOLS")
ARGS="$*"
BASELINE_BIN=
REPS=3
DUR=5
WARMUP=1
HOLD=2
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) REPS=1; DUR=2; WARMUP=0.5; HOLD=1 ;;
        --reps) REPS=$2; shift ;;
        --duration) DUR=$2; shift ;;
        --baseline) BASELINE_BIN=$(realpath "$2"); shift ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

IDLE_CONNS=10000
HS_CONNS=5000
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((IDLE_CONNS + 200)) ]; then
    IDLE_CONNS=$((hard - 200))
    echo "bench.sh: fd hard limit $hard: idle case reduced to $IDLE_CONNS connections" >&2
fi
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi

STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$TOOLS/target/bench/$STAMP"
mkdir -p "$OUT"
RESULTS="$OUT/results.txt"
: > "$RESULTS"

echo "== building (release)"
(cd "$MAIN" && nice -n 15 cargo build --release --example echo)
(cd "$TOOLS" && nice -n 15 cargo build --release -p loadtool -p peers)
MAIN_TARGET=${CARGO_TARGET_DIR:-$MAIN/target}
PREFORK_BIN="$MAIN_TARGET/release/examples/echo"
TT="$TOOLS/target/release"
LOADTOOL="$TT/loadtool"
for b in "$PREFORK_BIN" "$LOADTOOL" "$TT/fastwebsockets_echo" "$TT/tokio_tungstenite_echo" "$TT/raw_tcp_echo"; do
    [ -x "$b" ] || { echo "bench.sh: missing $b" >&2; exit 1; }
done

SERVERS=(prefork-ws fastwebsockets tokio-tungstenite raw-tcp)
if [ -n "$BASELINE_BIN" ]; then
    [ -x "$BASELINE_BIN" ] || { echo "bench.sh: missing baseline $BASELINE_BIN" >&2; exit 1; }
    SERVERS+=(baseline)
fi
server_cmd() {
    case "$1" in
        prefork-ws) echo "$PREFORK_BIN --host 127.0.0.1 --port 0 --workers 1" ;;
        baseline) echo "$BASELINE_BIN --host 127.0.0.1 --port 0 --workers 1" ;;
        fastwebsockets) echo "$TT/fastwebsockets_echo --host 127.0.0.1 --port 0" ;;
        tokio-tungstenite) echo "$TT/tokio_tungstenite_echo --host 127.0.0.1 --port 0" ;;
        raw-tcp) echo "$TT/raw_tcp_echo --host 127.0.0.1 --port 0" ;;
    esac
}

SERVER_PID=
SERVER_PORT=
start_server() { # name rep
    local log="$OUT/server-$1-rep$2.log"
    # shellcheck disable=SC2046
    RUST_LOG=warn setsid taskset -c 0 $(server_cmd "$1") > "$log" 2>&1 < /dev/null &
    SERVER_PID=$!
    SERVER_PORT=
    for _ in $(seq 100); do
        SERVER_PORT=$(grep -m1 -o 'listening at [0-9.]*:[0-9]*' "$log" 2>/dev/null | sed 's/.*://' || true)
        [ -n "$SERVER_PORT" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$SERVER_PORT" ]; then
        echo "bench.sh: $1 did not start; log:" >&2
        cat "$log" >&2
        stop_server
        return 1
    fi
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
trap 'stop_server' EXIT
trap 'exit 130' INT TERM

run_case() { # server rep case loadtool-args...
    local server=$1 rep=$2 case=$3
    shift 3
    local log="$OUT/$server-$case-rep$rep.log"
    local url="ws://127.0.0.1:$SERVER_PORT/"
    local raw=()
    if [ "$server" = raw-tcp ]; then url="tcp://127.0.0.1:$SERVER_PORT"; raw=(--raw); fi
    sleep 1 # let the server finish closing the previous case's connections
    local rc=0
    timeout 300 taskset -c 1 "$LOADTOOL" --server-pid "$SERVER_PID" "$@" --url "$url" "${raw[@]}" \
        > "$log" 2> "$log.err" || rc=$?
    local line
    line=$(grep -E '^(echo|connect|broadcast): ' "$log" | tail -1 || true)
    printf '  %-18s %-9s %s\n' "$server" "$case" "${line:-FAILED rc=$rc (see $log.err)}"
    grep -h '^warning' "$log.err" | sed 's/^/    /' || true
    if [ -n "$line" ]; then
        echo "rep=$rep server=$server case=$case rc=$rc $line" >> "$RESULTS"
    fi
}

{
    echo "date=$(date -u +%FT%TZ)"
    echo "kernel=$(uname -r)"
    echo "cpus=$(nproc)"
    echo "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
    echo "rustc=$(rustc --version)"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "reps=$REPS duration_s=$DUR warmup_s=$WARMUP hold_s=$HOLD idle_conns=$IDLE_CONNS hs_conns=$HS_CONNS"
} > "$OUT/meta.txt"
cat "$OUT/meta.txt"

n=${#SERVERS[@]}
for rep in $(seq 1 "$REPS"); do
    echo "== repetition $rep/$REPS"
    for k in $(seq 0 $((n - 1))); do
        server=${SERVERS[$(((k + rep - 1) % n))]}
        start_server "$server" "$rep" || continue
        run_case "$server" "$rep" idle10k -q connect --conns "$IDLE_CONNS" --hold "$HOLD"
        run_case "$server" "$rep" hs5k -q connect --conns "$HS_CONNS"
        run_case "$server" "$rep" e32x100 -q echo --conns 100 --size 32 --duration "$DUR" --warmup "$WARMUP"
        run_case "$server" "$rep" e32x1k -q echo --conns 1000 --size 32 --duration "$DUR" --warmup "$WARMUP"
        run_case "$server" "$rep" e16kx100 -q echo --conns 100 --size 16384 --duration "$DUR" --warmup "$WARMUP"
        stop_server
    done
done
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/meta.txt"

# The plot needs matplotlib (pip) or gnuplot (apt); the table only python3.
PLOTTER=none
if python3 -c 'import matplotlib' 2>/dev/null; then
    PLOTTER=matplotlib
elif python3 -m pip install --quiet --disable-pip-version-check matplotlib >/dev/null 2>&1 \
        && python3 -c 'import matplotlib' 2>/dev/null; then
    PLOTTER=matplotlib
elif command -v gnuplot >/dev/null 2>&1 \
        || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox) >/dev/null 2>&1 \
             && command -v gnuplot >/dev/null 2>&1; }; then
    PLOTTER=gnuplot
fi
echo "== results (medians over $REPS repetition(s); plot via $PLOTTER)"
python3 "$TOOLS/bench_report.py" --results "$RESULTS" --meta "$OUT/meta.txt" \
    --md "$TOOLS/bench-results.md" --png "$TOOLS/bench-cpu.png" --plotter "$PLOTTER" \
    --command "tools/bench.sh${ARGS:+ $ARGS}" --quick "$([ "$REPS" = 1 ] && [ "$DUR" = 2 ] && echo 1 || echo 0)"
cp "$TOOLS/bench-results.md" "$OUT/" 2>/dev/null || true
echo "raw outputs: $OUT"
