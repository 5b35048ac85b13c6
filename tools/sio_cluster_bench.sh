#!/usr/bin/env bash
# A Socket.IO room emit to CONNS sockets: one node (2 workers, no Redis) against two nodes
# (2 workers each, one Redis, sockets spread evenly), on loopback only.
#
#   tools/sio_cluster_bench.sh [--conns N] [--emits K]
#
# Builds the sio_testbed example (release, feature redis), starts redis-server on a free
# port, runs tools/sio_cluster_bench.js (socket.io-client 4.8 from tests/cluster/node_modules)
# against each set-up and prints its result lines: server CPU per delivery (every process of
# the nodes, and redis-server for the two-node case) and p50/p99 of the time from the emit's
# trigger to the last delivery. Every process it starts is killed by pid on exit.
set -euo pipefail

TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MAIN=$(dirname "$TOOLS")
CONNS=1000
EMITS=200
while [ $# -gt 0 ]; do
    case "$1" in
        --conns) CONNS=$2; shift ;;
        --emits) EMITS=$2; shift ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
    shift
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cd "$MAIN"
cargo build -j1 --release --features redis --example sio_testbed >&2
if [ ! -d tests/cluster/node_modules/socket.io-client ]; then
    (cd tests/cluster && npm ci --no-audit --no-fund --silent)
fi
BIN=target/release/examples/sio_testbed
export NODE_PATH="$MAIN/tests/cluster/node_modules"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "-$p" 2>/dev/null || kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_node PORT [REDIS_ARGS...]: a node in its own process group; echoes its pid.
start_node() {
    local port=$1; shift
    setsid "$BIN" --host 127.0.0.1 --port "$port" --workers 2 "$@" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
        sleep 0.05
    done
    echo "$pid"
}

RPORT=$(free_port)
setsid redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
RPID=$!
PIDS+=("$RPID")
sleep 0.3

P1=$(free_port)
N1=$(start_node "$P1")
PIDS+=("$N1")
sleep 0.5
echo "one node:" >&2
node "$TOOLS/sio_cluster_bench.js" --urls "http://127.0.0.1:$P1" --trigger "http://127.0.0.1:$P1/" \
    --conns "$CONNS" --emits "$EMITS" --pids "$N1"
kill -TERM "$N1"
sleep 1

P1=$(free_port)
P2=$(free_port)
URL="redis://127.0.0.1:$RPORT"
A=$(start_node "$P1" --redis "$URL" --node-id bench-a)
PIDS+=("$A")
B=$(start_node "$P2" --redis "$URL" --node-id bench-b)
PIDS+=("$B")
sleep 4 # one heartbeat: each node counts the other
echo "two nodes:" >&2
node "$TOOLS/sio_cluster_bench.js" --urls "http://127.0.0.1:$P1,http://127.0.0.1:$P2" \
    --trigger "http://127.0.0.1:$P1/" --conns "$CONNS" --emits "$EMITS" --pids "$A,$B,$RPID"
