"""Compressed connections keep their permessage-deflate contexts across rolling reloads and a
binary upgrade (issue 13), with a client nobody here wrote: Python `websockets` negotiating
permessage-deflate with context takeover in both directions (its default), against the real
echo example (master + 2 workers, release build), which echoes compressed messages compressed.
The server runs in its own session and is killed as a whole at the end."""

import asyncio
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest
import websockets

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ECHO_BIN = os.environ.get("ECHO_BIN", os.path.join(REPO, "target", "release", "examples", "echo"))
CTL_BIN = os.path.join(REPO, "target", "debug", "prefork-ctl")
LISTEN_RE = re.compile(rb"Server listening at ([0-9.]+):(\d+)")


@pytest.fixture
def echo():
    if not os.path.exists(ECHO_BIN):
        subprocess.run(["cargo", "build", "--release", "--example", "echo"], cwd=REPO, check=True)
    if not os.path.exists(CTL_BIN):
        subprocess.run(["cargo", "build", "--bin", "prefork-ctl"], cwd=REPO, check=True)
    d = tempfile.mkdtemp(prefix="prefork-ws-reload-py-")
    pid_file = os.path.join(d, "echo.pid")
    log = open(os.path.join(d, "log"), "wb")
    proc = subprocess.Popen(
        [ECHO_BIN, "--host", "127.0.0.1", "--port", "0", "--workers", "2", "--pid-file", pid_file],
        stdout=subprocess.PIPE,
        stderr=log,
        start_new_session=True,
        env={**os.environ, "RUST_LOG": "info"},
    )
    line = proc.stdout.readline()
    m = LISTEN_RE.search(line)
    assert m, line
    try:
        yield int(m.group(2)), pid_file, proc, os.path.join(d, "log")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def worker_pids(master):
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return sorted(int(p) for p in out.split())


def wait_replaced(master, before, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        now = worker_pids(master)
        if len(now) == 2 and not set(now) & set(before):
            return
        time.sleep(0.05)
    raise AssertionError("workers not replaced: %s -> %s" % (before, worker_pids(master)))


async def client(port, i, stop, stats):
    async with websockets.connect("ws://127.0.0.1:%d/" % port, compression="deflate", max_size=None) as ws:
        assert ws.protocol.extensions, "permessage-deflate negotiated"
        n = 0
        # Repetitive text, so context takeover makes later messages refer to earlier ones.
        while not stop.is_set():
            msg = "client %d message %d: %s" % (i, n, "the same words again and again " * (1 + n % 7))
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got == msg, "client %d message %d came back as %r" % (i, n, got[:60])
            n += 1
            stats["echoed"] += 1
            await asyncio.sleep(0.01)
        return n


def test_compressed_clients_keep_their_contexts_across_reloads_and_an_upgrade(echo):
    port, pid_file, proc, log_path = echo

    async def run():
        stop = asyncio.Event()
        stats = {"echoed": 0}
        tasks = [asyncio.create_task(client(port, i, stop, stats)) for i in range(50)]
        await asyncio.sleep(0.5)
        for _ in range(3):
            before = worker_pids(proc.pid)
            os.kill(proc.pid, signal.SIGUSR1)
            await asyncio.to_thread(wait_replaced, proc.pid, before)
            await asyncio.sleep(0.3)
        r = await asyncio.to_thread(
            subprocess.run,
            [CTL_BIN, "upgrade", "--pid-file", pid_file, "--timeout", "30"],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        await asyncio.sleep(0.5)
        stop.set()
        counts = await asyncio.gather(*tasks)
        return stats, counts

    stats, counts = asyncio.run(run())
    assert all(c > 20 for c in counts), counts
    log = open(log_path, encoding="utf-8", errors="replace").read()
    assert "could not be handed over" not in log
    assert log.count("hands its") >= 8, "every worker handed its connections over"
