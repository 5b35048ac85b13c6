"""A fresh test CA and server certificate (target/release/examples/test_certs, generated per
session, never committed) and the `echo` example serving wss:// and https:// with them on a
free port (--workers 2; ECHO_BIN overrides). The server runs in its own session and is killed
as a whole at the end."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RELEASE = os.path.join(REPO, "target", "release", "examples")
ECHO_BIN = os.environ.get("ECHO_BIN", os.path.join(RELEASE, "echo"))
CERTS_BIN = os.environ.get("TEST_CERTS_BIN", os.path.join(RELEASE, "test_certs"))
LISTEN_RE = re.compile(rb"Server listening at ([0-9.]+):(\d+)")


def _ensure(binary, example):
    if not os.path.exists(binary):
        subprocess.run(["cargo", "build", "--release", "--example", example], cwd=REPO, check=True)


class Certs:
    def __init__(self, d):
        self.dir = d
        self.ca = os.path.join(d, "ca.pem")
        self.cert = os.path.join(d, "cert.pem")
        self.key = os.path.join(d, "key.pem")

    def context(self, **kw):
        """A client context trusting the test CA only."""
        ctx = ssl.create_default_context(cafile=self.ca)
        for k, v in kw.items():
            setattr(ctx, k, v)
        return ctx


class TlsServer:
    def __init__(self, proc, port, certs, log_path):
        self.proc = proc
        self.port = port
        self.certs = certs
        self.log_path = log_path

    @property
    def url(self):
        return "wss://localhost:%d/" % self.port

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


@pytest.fixture(scope="session")
def certs():
    _ensure(CERTS_BIN, "test_certs")
    d = tempfile.mkdtemp(prefix="prefork-ws-tls-py-")
    subprocess.run([CERTS_BIN, d], check=True, stdout=subprocess.DEVNULL)
    yield Certs(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def tls_server(certs):
    _ensure(ECHO_BIN, "echo")
    log = tempfile.NamedTemporaryFile(prefix="echo-tls-", suffix=".log", delete=False)
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    proc = subprocess.Popen(
        [ECHO_BIN, "--host", "127.0.0.1", "--port", "0", "--workers", "2",
         "--ssl-cert-file", certs.cert, "--ssl-key-file", certs.key],
        stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
        start_new_session=True, env=env, cwd=REPO)
    found = {}

    def reader():
        for line in proc.stdout:
            m = LISTEN_RE.search(line)
            if m and "port" not in found:
                found["port"] = int(m.group(2))

    threading.Thread(target=reader, daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while "port" not in found:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("echo did not start: %s" % open(log.name).read())
            time.sleep(0.02)
        port = found["port"]
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield TlsServer(proc, port, certs, log.name)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.unlink(log.name)
