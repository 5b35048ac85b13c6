#!/usr/bin/env bash
# TLS benchmark of prefork-ws against a tokio-tungstenite + tokio-rustls peer, on loopback only.
#
#   tools/bench-tls.sh [--quick] [--reps N] [--duration SECS]
#
# Builds (release) the main crate's `echo` and `test_certs` examples and the tools workspace
# (loadtool + peers), generates a test CA and server certificate (test_certs, into the run's
# output directory), then for each repetition runs in turn (the order rotates per repetition):
#   prefork-ws-tls     echo --workers 1 --ssl-cert-file … --ssl-key-file …   (wss://)
#   tokio-tungstenite-tls  tokio_tungstenite_tls_echo (tokio current_thread + tokio-rustls)
#   prefork-ws         echo --workers 1 without TLS (ws://): what TLS adds
# Each server is pinned to CPU 0 (taskset -c 0, own session via setsid), the load tool to CPU 1.
# Cases per server (idle memory first on a fresh server):
#   idle10k  connect --conns 10000 --hold H   -> server RSS per idle connection
#   hs2k     connect --conns 2000             -> server CPU µs per (TLS +) WebSocket handshake
#   e32x100  echo --conns 100  --size 32      (D s) -> server CPU µs per message
#   e32x1k   echo --conns 1000 --size 32      (D s)
#   e16kx100 echo --conns 100  --size 16384   (D s)
# Both TLS servers use the same certificate (ECDSA P-256) and rustls's defaults with the ring
# provider, against the same client (loadtool: rustls, ring), so they negotiate the same
# TLS 1.3 suite. Writes tools/bench-tls-results.md (medians); raw outputs stay under
# tools/target/bench-tls/<timestamp>/. --quick: 1 repetition, 2 s cases.
set -euo pipefail

TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAIN=$(dirname "$TOOLS")
ARGS="$*"
REPS=3
DUR=5
WARMUP=1
HOLD=2
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) REPS=1; DUR=2; WARMUP=0.5; HOLD=1 ;;
        --reps) REPS=$2; shift ;;
        --duration) DUR=$2; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "bench-tls.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

IDLE_CONNS=10000
HS_CONNS=2000
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((IDLE_CONNS + 200)) ]; then
    IDLE_CONNS=$((hard - 200))
    echo "bench-tls.sh: fd hard limit $hard: idle case reduced to $IDLE_CONNS connections" >&2
fi
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi

STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$TOOLS/target/bench-tls/$STAMP"
mkdir -p "$OUT"
RESULTS="$OUT/results.txt"
: > "$RESULTS"

echo "== building (release)"
(cd "$MAIN" && nice -n 15 cargo build --release --example echo --example test_certs)
(cd "$TOOLS" && nice -n 15 cargo build --release -p loadtool -p peers)
MAIN_TARGET=${CARGO_TARGET_DIR:-$MAIN/target}
ECHO="$MAIN_TARGET/release/examples/echo"
TT="$TOOLS/target/release"
LOADTOOL="$TT/loadtool"
PEER="$TT/tokio_tungstenite_tls_echo"
for b in "$ECHO" "$MAIN_TARGET/release/examples/test_certs" "$LOADTOOL" "$PEER"; do
    [ -x "$b" ] || { echo "bench-tls.sh: missing $b" >&2; exit 1; }
done
"$MAIN_TARGET/release/examples/test_certs" "$OUT/pki" > /dev/null
CA="$OUT/pki/ca.pem" CERT="$OUT/pki/cert.pem" KEY="$OUT/pki/key.pem"

SERVERS=(prefork-ws-tls tokio-tungstenite-tls prefork-ws)
server_cmd() {
    case "$1" in
        prefork-ws-tls) echo "$ECHO --host 127.0.0.1 --port 0 --workers 1 --ssl-cert-file $CERT --ssl-key-file $KEY" ;;
        tokio-tungstenite-tls) echo "$PEER --host 127.0.0.1 --port 0 --cert $CERT --key $KEY" ;;
        prefork-ws) echo "$ECHO --host 127.0.0.1 --port 0 --workers 1" ;;
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
        echo "bench-tls.sh: $1 did not start; log:" >&2
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
    local url="wss://127.0.0.1:$SERVER_PORT/"
    [ "$server" = prefork-ws ] && url="ws://127.0.0.1:$SERVER_PORT/"
    sleep 1 # let the server finish closing the previous case's connections
    local rc=0
    timeout 300 taskset -c 1 "$LOADTOOL" --ca "$CA" --server-pid "$SERVER_PID" "$@" --url "$url" \
        > "$log" 2> "$log.err" || rc=$?
    local line
    line=$(grep -E '^(echo|connect): ' "$log" | tail -1 || true)
    printf '  %-22s %-9s %s\n' "$server" "$case" "${line:-FAILED rc=$rc (see $log.err)}"
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
        run_case "$server" "$rep" hs2k -q connect --conns "$HS_CONNS"
        run_case "$server" "$rep" e32x100 -q echo --conns 100 --size 32 --duration "$DUR" --warmup "$WARMUP"
        run_case "$server" "$rep" e32x1k -q echo --conns 1000 --size 32 --duration "$DUR" --warmup "$WARMUP"
        run_case "$server" "$rep" e16kx100 -q echo --conns 100 --size 16384 --duration "$DUR" --warmup "$WARMUP"
        stop_server
    done
done
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/meta.txt"

echo "== results (medians over $REPS repetition(s))"
python3 "$TOOLS/bench_tls_report.py" --results "$RESULTS" --meta "$OUT/meta.txt" \
    --md "$TOOLS/bench-tls-results.md" --command "tools/bench-tls.sh${ARGS:+ $ARGS}"
cp "$TOOLS/bench-tls-results.md" "$OUT/" 2>/dev/null || true
echo "raw outputs: $OUT"
