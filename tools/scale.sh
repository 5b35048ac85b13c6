#!/usr/bin/env bash
# 100,000 WebSocket connections on this box, against the `broadcast` example (loopback only).
#
#   tools/scale.sh [--conns N] [--clients C] [--workers W] [--broadcasts K] [--no-reload]
#                  [--server-bin PATH] [--no-build]
#
# Defaults: 100000 connections from 8 client processes (12,500 each, under the ~20,000
# descriptors a process may open here), each from its own source address 127.0.0.2 … 127.0.0.9
# (bind before connect: the ~28k ephemeral ports are per source address → server address
# pair), to `broadcast --workers 6` (about 16,700 connections per worker, also under the
# per-process limit). `loadtool scale` (tools/loadtool/src/scale.rs) drives the clients and
# measures:
#   1. the idle connections: failed first connects (never retried), server RSS and PSS summed
#      over master + workers minus the reading before the first connect, per connection;
#   2. K broadcasts, each one `GET /?message=scale-SEQ`: deliveries counted exactly, time from
#      the trigger to the last delivery (CLOCK_REALTIME stamps of the client processes, max),
#      server CPU per delivery;
#   3. a rolling reload (`kill -USR1 <master>`) while they are held: time until every worker is
#      replaced, close codes the clients see, clients closed more than once, reconnects
#      attempted / succeeded / failed, then one more broadcast to check every slot is back.
# Builds only the tools workspace (`cargo build --release -j1 -p loadtool`); the server binary
# is used as it is (target/release/examples/broadcast of the main crate, or --server-bin).
# Writes tools/scale-results.md; raw outputs are kept under tools/target/scale/<timestamp>/.
set -euo pipefail

TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAIN=$(dirname "$TOOLS")
ARGS="$*"
CONNS=100000
CLIENTS=8
WORKERS=6
BROADCASTS=3
RELOAD=--reload
BUILD=1
SERVER_BIN="${CARGO_TARGET_DIR:-$MAIN/target}/release/examples/broadcast"
while [ $# -gt 0 ]; do
    case "$1" in
        --conns) CONNS=$2; shift ;;
        --clients) CLIENTS=$2; shift ;;
        --workers) WORKERS=$2; shift ;;
        --broadcasts) BROADCASTS=$2; shift ;;
        --no-reload) RELOAD= ;;
        --server-bin) SERVER_BIN=$(realpath "$2"); shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "scale.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

# --- the box's limits, checked before anything starts ---------------------------------------
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
ulimit -n "$hard" # inherited by the server and every client process (each raises it too)
read -r port_lo port_hi < <(sysctl -n net.ipv4.ip_local_port_range)
ports=$((port_hi - port_lo + 1))
per_client=$(( (CONNS + CLIENTS - 1) / CLIENTS ))
per_worker=$(( (CONNS + WORKERS - 1) / WORKERS ))
problems=()
# A client process: its connections + epoll, pipes, stdio.
[ $((per_client + 64)) -le "$hard" ] || problems+=("$per_client connections per client process exceed the fd limit $hard: use more --clients")
# One source address per client process; its connections all go to one server address.
[ "$per_client" -le $((ports - 1000)) ] || problems+=("$per_client connections per source address exceed the $ports ephemeral ports: use more --clients")
# A worker: its connections + listeners, channels, housekeeping (the server reserves 32 + 4/worker),
# with ~2% headroom for SO_REUSEPORT's uneven hashing.
[ $((per_worker * 102 / 100 + 32 + 4 * WORKERS)) -le "$hard" ] || problems+=("about $per_worker connections per worker approach the fd limit $hard: use more --workers")
[ "$CLIENTS" -le 250 ] || problems+=("at most 250 client processes (source addresses 127.0.0.2 … 127.0.0.251)")
if [ ${#problems[@]} -gt 0 ]; then
    printf 'scale.sh: %s\n' "${problems[@]}" >&2
    exit 2
fi
[ -x "$SERVER_BIN" ] || { echo "scale.sh: missing $SERVER_BIN (build the main crate's broadcast example)" >&2; exit 1; }

STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$TOOLS/target/scale/$STAMP"
mkdir -p "$OUT"

if [ "$BUILD" = 1 ]; then
    echo "== building loadtool (release, -j1)"
    (cd "$TOOLS" && nice -n 10 cargo build --release -j1 -p loadtool)
fi
LOADTOOL="$TOOLS/target/release/loadtool"
[ -x "$LOADTOOL" ] || { echo "scale.sh: missing $LOADTOOL" >&2; exit 1; }

facts() {
    echo "- date: $(date -u +%FT%TZ)"
    echo "- kernel: $(uname -r); CPUs: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
    echo "- memory: $(free -m | awk '/^Mem:/ {printf "%d MiB total, %d MiB available", $2, $7}')"
    echo "- fd limit per process (\`ulimit -Hn\`, soft raised to it): $hard"
    echo "- \`net.ipv4.ip_local_port_range\`: $port_lo–$port_hi ($ports ports per source → destination address pair)"
    echo "- \`net.core.somaxconn\` $(sysctl -n net.core.somaxconn), \`net.ipv4.tcp_max_syn_backlog\` $(sysctl -n net.ipv4.tcp_max_syn_backlog), \`net.ipv4.tcp_mem\` $(sysctl -n net.ipv4.tcp_mem | tr '\t' ' '), \`fs.file-max\` $(sysctl -n fs.file-max)"
    echo "- server binary: \`$SERVER_BIN\` ($(stat -c '%y' "$SERVER_BIN" | cut -d. -f1)); main crate at $(cd "$MAIN" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "- rustc: $(rustc --version 2>/dev/null || echo '?')"
}
FACTS=$(facts)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "$FACTS"

# --- the server -------------------------------------------------------------------------------
SERVER_PID=
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
trap 'stop_server' EXIT
trap 'exit 130' INT TERM

SERVER_CMD="$SERVER_BIN --host 127.0.0.1 --port 0 --workers $WORKERS"
echo "== server: $SERVER_CMD"
# Own session (setsid) so that it can be stopped as a group; stdout (a line per handshake and
# per close) goes to a file.
RUST_LOG=info setsid $SERVER_CMD > "$OUT/server.out" 2> "$OUT/server.log" < /dev/null &
SERVER_PID=$!
PORT=
for _ in $(seq 100); do
    PORT=$(grep -m1 -o 'listening at [0-9.]*:[0-9]*' "$OUT/server.out" 2>/dev/null | sed 's/.*://' || true)
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$PORT" ]; then
    echo "scale.sh: the server did not start:" >&2
    cat "$OUT/server.log" >&2
    exit 1
fi
sleep 0.5 # let every worker come up before the baseline reading

SCALE_CMD="loadtool --server-pid $SERVER_PID scale --url ws://127.0.0.1:$PORT/ --trigger http://127.0.0.1:$PORT/?message=scale --conns $CONNS --clients $CLIENTS --bind-from 127.0.0.2 --broadcasts $BROADCASTS $RELOAD"
echo "== $SCALE_CMD"
T0=$(date +%s)
rc=0
# shellcheck disable=SC2086
timeout 600 "$LOADTOOL" --quiet --server-pid "$SERVER_PID" scale --url "ws://127.0.0.1:$PORT/" \
    --trigger "http://127.0.0.1:$PORT/?message=scale" --conns "$CONNS" --clients "$CLIENTS" \
    --bind-from 127.0.0.2 --broadcasts "$BROADCASTS" $RELOAD \
    > "$OUT/scale.md" 2> >(tee "$OUT/scale.err" >&2) || rc=$?
T1=$(date +%s)
sleep 0.5
stop_server
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
cat "$OUT/scale.md"
SUMMARY=$(grep '^scale: ' "$OUT/scale.md" | tail -1 || true)

# --- tools/scale-results.md -------------------------------------------------------------------
opens=$(grep -c 'handshake success' "$OUT/server.out" || true)
closes=$(grep -c '^client [0-9]* closed' "$OUT/server.out" || true)
{
    echo "## 100,000 connections on this box: results"
    echo
    echo "Command: \`tools/scale.sh${ARGS:+ $ARGS}\` (exit status of the measurement: $rc; it ran $((T1 - T0)) s). It ran:"
    echo
    echo '```'
    echo "ulimit -n $hard"
    echo "RUST_LOG=info setsid ${SERVER_CMD/#$MAIN\//} > server.out 2> server.log &"
    echo "$SCALE_CMD"
    echo '```'
    echo
    echo "Machine (client processes and server share both cores: nothing is pinned):"
    echo
    echo "$FACTS"
    echo "- load average at start $LOAD_START, at end $LOAD_END"
    echo
    echo "Layout: $CLIENTS client processes × $per_client connections (each from its own source address, 127.0.0.2 upwards, bound before connect with IP_BIND_ADDRESS_NO_PORT), server \`--workers $WORKERS\` (about $per_worker connections per worker; SO_REUSEPORT spreads them, see the fds column). The server's stdout counted $opens handshakes (\`on_open\`) and $closes closes (\`on_close\`) over the whole run."
    echo
    sed '/^scale: /d' "$OUT/scale.md"
    echo "Machine-readable summary:"
    echo
    echo '```'
    echo "$SUMMARY"
    echo '```'
    if [ -n "$RELOAD" ]; then
        echo
        echo "The master's log during the reload:"
        echo
        echo '```'
        grep -E 'SIGUSR1|Worker#[0-9]+ (started|stopping|stopped)|old worker|replacement|reload' "$OUT/server.log" \
            | sed -n '/SIGUSR1/,/shutting down/p' | grep -v 'shutting down' | sed 's/prefork_ws::runtime:://' | head -40 || true
        echo '```'
    fi
    if [ -s "$OUT/scale.err" ] && grep -qv '^scale: ' "$OUT/scale.err"; then
        echo
        echo "Messages of the load tool:"
        echo
        echo '```'
        grep -v '^scale: ' "$OUT/scale.err" | head -20
        echo '```'
    fi
    echo
    echo "Raw outputs: \`tools/target/scale/$STAMP/\`."
} > "$TOOLS/scale-results.md"
echo "== wrote $TOOLS/scale-results.md (raw outputs in $OUT)"
exit "$rc"
