"""Starts the `echo` example once per test session and hands its address to the tests."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from wsclient import WSClient  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ECHO_BIN = os.environ.get("ECHO_BIN", os.path.join(REPO, "target", "release", "examples", "echo"))
LISTEN_RE = re.compile(rb"WebSocket Server listening at ([0-9.]+):(\d+)")


def _build():
    subprocess.run(["cargo", "build", "--release", "--example", "echo"], cwd=REPO, check=True)


class EchoServer:
    def __init__(self, proc, host, port, log_path):
        self.proc = proc
        self.host = host
        self.port = port
        self.log_path = log_path

    @property
    def addr(self):
        return self.host, self.port

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def connect(self, **kw):
        return WSClient.connect(self.host, self.port, **kw)


@pytest.fixture(scope="session")
def echo_server():
    if not os.path.exists(ECHO_BIN):
        _build()
    log = tempfile.NamedTemporaryFile(prefix="echo-server-", suffix=".log", delete=False)
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    proc = subprocess.Popen(
        [ECHO_BIN, "--host", "127.0.0.1", "--port", "0", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
        start_new_session=True, env=env, cwd=REPO)
    try:
        port = None
        lines = []
        deadline = time.monotonic() + 30
        # read stdout lines until the listening line appears
        result = {}

        def reader():
            for line in proc.stdout:
                lines.append(line)
                m = LISTEN_RE.search(line)
                if m and "port" not in result:
                    result["host"] = m.group(1).decode()
                    result["port"] = int(m.group(2))
            # stdout closed: keep draining nothing

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        while "port" not in result:
            if proc.poll() is not None:
                raise RuntimeError("echo exited with %s before listening: %r\n%s" % (
                    proc.returncode, lines, open(log.name, "rb").read()[-4000:]))
            if time.monotonic() > deadline:
                raise RuntimeError("echo did not print its listening line: %r" % lines)
            time.sleep(0.02)
        port = result["port"]
        assert port != 0
        # wait until the workers accept connections
        import socket
        deadline = time.monotonic() + 10
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=1)
                s.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield EchoServer(proc, "127.0.0.1", port, log.name)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
        # any straggling worker in the group
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def server(echo_server):
    """The running echo server (checked alive before each test)."""
    assert echo_server.proc.poll() is None, "echo master died:\n" + echo_server.log()[-4000:]
    return echo_server


@pytest.fixture
def ws(server):
    """A connected client without extensions, closed after the test."""
    c = server.connect()
    yield c
    c.close()
