"""Starts the `hyperf_app` example once per test session and hands its two ports to the tests.

The server: `hyperf_app --host 127.0.0.1 --port 0 --http-port 0 --workers 2 --jwt-secret S`
(WebSocket on the first port, HTTP on the second, both picked by the kernel and parsed from the
`[INFO] … Server listening at host:port` lines it prints on stdout). It is started in its own
session and killed by process group at the end; its stdout and stderr are kept and printed with
every failing test. `HYPERF_APP_BIN=/path` tests another binary (no build then).
"""

import http.client
import inspect
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest
from websockets.sync.client import connect as _ws_connect

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_BIN = os.path.join(REPO, "target", "release", "examples", "hyperf_app")
APP_BIN = os.environ.get("HYPERF_APP_BIN", DEFAULT_BIN)
# 32+ bytes: PyJWT warns about shorter HS256 keys
JWT_SECRET = "test-secret-for-the-hyperf-app-e2e-suite"

WS_LISTEN_RE = re.compile(r"WebSocket Server listening at ([0-9.]+):(\d+)")
HTTP_LISTEN_RE = re.compile(r"HTTP Server listening at ([0-9.]+):(\d+)")
WORKER_STARTED_RE = re.compile(r"Worker#(\d+) started\.")

# Every network wait in the suite is bounded by one of these.
OPEN_TIMEOUT = 5.0
CLOSE_TIMEOUT = 3.0
RECV_TIMEOUT = 5.0
HTTP_TIMEOUT = 5.0

LOG_TAIL_CHARS = 8000

# websockets >= 15 honours the *_proxy environment variables unless told proxy=None;
# websockets >= 17 warns unless connect() is a context manager or legacy=True is passed (the
# ws_connect fixture closes every client itself).
_WS_PARAMS = inspect.signature(_ws_connect).parameters
_WS_EXTRA = {k: v for k, v in (("proxy", None), ("legacy", True)) if k in _WS_PARAMS}

_current_server = None  # for the failure hook below


def _build():
    subprocess.run(["cargo", "build", "--release", "--example", "hyperf_app"], cwd=REPO,
                   check=True)


class HyperfServer:
    def __init__(self, proc, host, ws_port, http_port, stdout_lines, stderr_path):
        self.proc = proc
        self.host = host
        self.ws_port = ws_port
        self.http_port = http_port
        self.stdout_lines = stdout_lines  # decoded lines, appended to by the reader thread
        self.stderr_path = stderr_path
        self.secret = JWT_SECRET

    # -- logs -------------------------------------------------------------------------------
    def stdout(self):
        return "".join(list(self.stdout_lines))

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log(self):
        return "--- stdout ---\n%s\n--- stderr ---\n%s" % (self.stdout(), self.stderr())

    def log_tail(self, n=LOG_TAIL_CHARS):
        out, err = self.stdout(), self.stderr()
        return "--- stdout (tail) ---\n%s\n--- stderr (tail) ---\n%s" % (out[-n // 2:],
                                                                        err[-n:])

    def alive(self):
        return self.proc.poll() is None

    # -- WebSocket --------------------------------------------------------------------------
    def ws_url(self, path="/"):
        return "ws://%s:%d%s" % (self.host, self.ws_port, path)

    def ws_connect(self, path="/", headers=None, **kw):
        """A `websockets` sync client (no extensions); the caller closes it."""
        opts = dict(open_timeout=OPEN_TIMEOUT, close_timeout=CLOSE_TIMEOUT, compression=None)
        opts.update(_WS_EXTRA)
        opts.update(kw)
        if headers:
            opts["additional_headers"] = headers
        return _ws_connect(self.ws_url(path), **opts)

    # -- HTTP -------------------------------------------------------------------------------
    def http(self, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT, port=None):
        """One request on a fresh connection: (status, headers, body bytes)."""
        conn = http.client.HTTPConnection(self.host, port or self.http_port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.headers, data
        finally:
            conn.close()

    def connections(self):
        """`GET /server/connections`, parsed: [{"fd": N, "worker_id": W}, …]."""
        status, _, body = self.http("GET", "/server/connections")
        assert status == 200, "GET /server/connections -> %d %r" % (status, body)
        try:
            data = json.loads(body)
        except ValueError:
            raise AssertionError("GET /server/connections: not JSON: %r" % body[:500])
        assert isinstance(data, list), "GET /server/connections: not an array: %r" % (data,)
        return data

    def fds(self):
        return {c["fd"] for c in self.connections()}


def _start():
    if not os.path.exists(APP_BIN):
        if "HYPERF_APP_BIN" in os.environ:
            raise RuntimeError("HYPERF_APP_BIN=%s does not exist" % APP_BIN)
        _build()
    err = tempfile.NamedTemporaryFile(prefix="hyperf-app-", suffix=".stderr.log", delete=False)
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    proc = subprocess.Popen(
        [APP_BIN, "--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--workers", "2",
         "--jwt-secret", JWT_SECRET],
        stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
        start_new_session=True, env=env, cwd=REPO)
    err.close()
    lines = []
    found = {}

    def reader():
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            lines.append(line)
            m = WS_LISTEN_RE.search(line)
            if m and "ws" not in found:
                found["ws"] = (m.group(1), int(m.group(2)))
            m = HTTP_LISTEN_RE.search(line)
            if m and "http" not in found:
                found["http"] = (m.group(1), int(m.group(2)))
            m = WORKER_STARTED_RE.search(line)
            if m:
                found.setdefault("workers", set()).add(int(m.group(1)))

    threading.Thread(target=reader, daemon=True).start()
    server = HyperfServer(proc, "127.0.0.1", None, None, lines, err.name)
    return server, found


def _stop(proc):
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
    try:  # any straggling worker in the group
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait_accepting(port, deadline):
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="session")
def hyperf_server():
    global _current_server
    server, found = _start()
    proc = server.proc
    _current_server = server
    try:
        deadline = time.monotonic() + 30
        while "ws" not in found or "http" not in found:
            if proc.poll() is not None:
                time.sleep(0.2)  # let the reader drain
                raise RuntimeError("hyperf_app exited with %s before listening\n%s" % (
                    proc.returncode, server.log_tail()))
            if time.monotonic() > deadline:
                raise RuntimeError("hyperf_app did not print both listening lines in 30 s\n%s"
                                   % server.log_tail())
            time.sleep(0.02)
        server.ws_port = found["ws"][1]
        server.http_port = found["http"][1]
        assert server.ws_port != 0 and server.http_port != 0, server.log_tail()
        # both workers up (their start lines), then both ports accepting
        deadline = time.monotonic() + 10
        while found.get("workers", set()) < {0, 1} and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("hyperf_app exited with %s\n%s" % (proc.returncode,
                                                                      server.log_tail()))
            time.sleep(0.02)
        deadline = time.monotonic() + 10
        _wait_accepting(server.ws_port, deadline)
        _wait_accepting(server.http_port, deadline)
        yield server
    finally:
        _stop(proc)
        _current_server = None


def _panics(text):
    return text.count("panicked")


@pytest.fixture
def app(hyperf_server):
    """The running server: checked alive before and after each test; after the test, waits
    (bounded) until every WebSocket connection the test left behind is gone from
    /server/connections, so that tests do not see each other's connections."""
    s = hyperf_server
    assert s.alive(), "hyperf_app died:\n" + s.log_tail()
    panics_before = _panics(s.stderr()) + _panics(s.stdout())
    try:
        baseline = s.fds()
    except Exception:  # the endpoint under test may be broken; do not fail every test on it
        baseline = None
    yield s
    if not s.alive():
        pytest.fail("hyperf_app died during the test:\n" + s.log_tail(), pytrace=False)
    panics_after = _panics(s.stderr()) + _panics(s.stdout())
    if panics_after > panics_before:
        pytest.fail("hyperf_app logged a panic during the test:\n" + s.log_tail(),
                    pytrace=False)
    if baseline is not None:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                if s.fds() <= baseline:
                    break
            except Exception:
                break
            time.sleep(0.05)


@pytest.fixture
def ws_connect(app):
    """Factory: `ws_connect(path="/", headers=None, **kw)` opens a client that is closed after
    the test (before `app` waits for the server to forget it)."""
    opened = []

    def factory(path="/", headers=None, **kw):
        c = app.ws_connect(path, headers=headers, **kw)
        opened.append(c)
        return c

    yield factory
    for c in opened:
        try:
            c.close()
        except Exception:
            pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _current_server is not None:
        rep.sections.append(("hyperf_app log", _current_server.log_tail()))
