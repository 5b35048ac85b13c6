#!/usr/bin/env bash
# The project's test command (README): installs the third-party test clients it needs, then runs
# the Rust unit/integration tests, the conformance suite against the echo example, and the
# Python/Node client tests. Every server a test starts is killed by the test itself.
set -euo pipefail
cd "$(dirname "$0")/.."

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# System packages the tests drive: headless Chromium (the browser tests), nginx (Socket.IO and two
# nodes behind a proxy, as seeds 001 and 002 show) and redis-server (the cluster adapter).
if { ! command -v chromium || ! command -v nginx || ! command -v redis-server; } >/dev/null 2>&1 \
  && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium nginx redis-server >/dev/null
fi

# Python clients (pytest, websockets, python-socketio) in a private virtualenv.
VENV=target/test-venv
# (Re-)installed when missing or when tests/requirements.txt changed since the last install.
if [ ! -x "$VENV/bin/pytest" ] || ! cmp -s tests/requirements.txt "$VENV/requirements.installed"; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$VENV/requirements.installed"
fi

# Node clients: ws; socket.io-client 4.8 and 2.3.0, socket.io (the reference server),
# puppeteer-core (drives the system Chromium).
if [ -f tests/node/package.json ] && [ ! -d tests/node/node_modules ]; then
  (cd tests/node && npm install --no-audit --no-fund --silent)
fi
if [ ! -d tests/cluster/node_modules ]; then
  (cd tests/cluster && npm ci --no-audit --no-fund --silent)
fi
if [ ! -d tests/socketio/node_modules ]; then
  (cd tests/socketio && npm ci --no-audit --no-fund --silent)
fi
# TLS clients: ws and puppeteer-core (drives the system Chromium).
if [ ! -d tests/tls_node/node_modules ]; then
  (cd tests/tls_node && npm ci --no-audit --no-fund --silent)
fi

# Rust: unit tests, property tests, integration tests (examples and tools are built too).
cargo build --release --example echo --example hyperf_app --example socketio_server --example test_certs
# One debug build with the `redis` feature serves every suite (the feature only adds
# `--redis`; without it the examples are the same), including the two-node tests through Redis
# (real redis-server, nginx and a Node.js socket.io node). The examples are built first: the
# integration tests start them.
cargo build --features redis --examples
cargo test --features redis

# End to end against the real echo example (master + 2 workers) and the Hyperf seed app.
"$VENV/bin/pytest" -q tests/conformance
"$VENV/bin/pytest" -q tests/hyperf
"$VENV/bin/pytest" -q tests/metrics
# Compressed connections (Python websockets, permessage-deflate with context takeover) across
# rolling reloads and a binary upgrade.
"$VENV/bin/pytest" -q tests/reload_py

if [ -f tests/node/package.json ]; then
  node --test tests/node/
fi

# TLS against echo (2 workers) with a test CA generated per run: Python websockets over ssl,
# Node ws, headless Chromium on wss://.
"$VENV/bin/pytest" -q tests/tls_py
node --test tests/tls_node/

# Socket.IO against socketio_server (2 workers): socket.io-client 4.8 and 2.3.0, raw frames,
# headless Chromium, python-socketio.
node --test tests/socketio/
"$VENV/bin/pytest" -q tests/socketio_py
