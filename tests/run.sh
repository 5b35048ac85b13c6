#!/usr/bin/env bash
# The project's test command (README): installs the third-party test clients it needs, then runs
# the Rust unit/integration tests, the conformance suite against the echo example, and the
# Python/Node client tests. Every server a test starts is killed by the test itself.
set -euo pipefail
cd "$(dirname "$0")/.."

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Python clients (pytest, websockets) in a private virtualenv.
VENV=target/test-venv
# (Re-)installed when missing or when tests/requirements.txt changed since the last install.
if [ ! -x "$VENV/bin/pytest" ] || ! cmp -s tests/requirements.txt "$VENV/requirements.installed"; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$VENV/requirements.installed"
fi

# Node client (ws).
if [ -f tests/node/package.json ] && [ ! -d tests/node/node_modules ]; then
  (cd tests/node && npm install --no-audit --no-fund --silent)
fi

# Rust: unit tests, property tests, integration tests (examples and tools are built too).
cargo build --release --example echo --example hyperf_app
cargo test

# End to end against the real echo example (master + 2 workers) and the Hyperf seed app.
"$VENV/bin/pytest" -q tests/conformance
"$VENV/bin/pytest" -q tests/hyperf

if [ -f tests/node/package.json ]; then
  node --test tests/node/
fi
