"""End-to-end checks of the socketio_server example with the python-socketio client (EIO4 / Socket.IO v5),
WebSocket transport only.

    pytest -q tests/socketio_py                  # target/release/examples/socketio_server --workers 2 (SIO_BIN overrides)
    SIO_SERVER=node pytest -q tests/socketio_py  # the Node reference server, tests/socketio/reference_server.js
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import socketio

REPO = Path(__file__).resolve().parents[2]
USE_NODE = os.environ.get("SIO_SERVER") == "node"
SIO_BIN = os.environ.get("SIO_BIN", str(REPO / "target" / "release" / "examples" / "socketio_server"))
WAIT = 10.0  # seconds, every wait on the server
SETTLE = 0.4  # quiet period before asserting that a message did NOT arrive
SID_RE = re.compile(r"^[^#]+#\d+$")


def _server_command():
    if USE_NODE:
        script = REPO / "tests" / "socketio" / "reference_server.js"
        return ["node", str(script), "--host", "127.0.0.1", "--port", "0"]
    if not os.path.exists(SIO_BIN):
        pytest.fail(
            f"{SIO_BIN} does not exist: build it with 'cargo build --release --example socketio_server', "
            "point SIO_BIN at it, or run with SIO_SERVER=node for the reference server",
            pytrace=False,
        )
    return [SIO_BIN, "--host", "127.0.0.1", "--port", "0", "--workers", "2"]


@pytest.fixture(scope="module")
def server_url():
    proc = subprocess.Popen(
        _server_command(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group, killed as a whole below
        text=True,
    )
    port_box = {}
    seen = []
    found = threading.Event()

    def drain():  # keeps reading so a chatty server never blocks on a full pipe
        for line in proc.stdout:
            if len(seen) < 200:
                seen.append(line)
            m = re.search(r"Socket\.IO Server listening at [0-9.]+:(\d+)", line)
            if m and not found.is_set():
                port_box["port"] = int(m.group(1))
                found.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        if not found.wait(30):
            raise RuntimeError(f"no listening line from {proc.args}: {''.join(seen)}")
        port = port_box["port"]
        deadline = time.monotonic() + WAIT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"port {port} never accepted a connection")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=3)
                break
            except subprocess.TimeoutExpired:
                continue
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers (workers)
        except ProcessLookupError:
            pass


class Recorder:
    """A socketio.Client that records every `event` it receives (on /)."""

    def __init__(self):
        self.sio = socketio.Client(reconnection=False)
        self.events = []
        self.cond = threading.Condition()

        @self.sio.on("event")
        def _on_event(data):
            with self.cond:
                self.events.append(data)
                self.cond.notify_all()

    def wait_for(self, pred, what):
        with self.cond:
            if not self.cond.wait_for(lambda: pred(self.events), timeout=WAIT):
                raise AssertionError(f"timeout after {WAIT}s: {what}; events so far: {self.events!r}")


@pytest.fixture
def clients(server_url):
    made = []

    def make(namespaces=("/",), **kw):
        r = Recorder()
        r.sio.connect(server_url, transports=["websocket"], namespaces=list(namespaces), wait_timeout=WAIT, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.sio.disconnect()


def test_connect_websocket(clients):
    c = clients()
    assert c.sio.connected
    assert c.sio.transport() == "websocket"
    sid = c.sio.get_sid("/")
    assert isinstance(sid, str) and sid
    if not USE_NODE:
        assert SID_RE.match(sid), sid


def test_event_ack(clients):
    c = clients()
    assert c.sio.call("event", "x", timeout=WAIT) == "Event Received: x"
    assert c.sio.call("event", "héllo ✓", timeout=WAIT) == "Event Received: héllo ✓"


def test_chat_namespace(clients):
    c = clients(namespaces=["/chat"])
    assert c.sio.call("event", "y", namespace="/chat", timeout=WAIT) == "chat Received: y"


def test_both_namespaces_on_one_connection(clients):
    c = clients(namespaces=["/", "/chat"])
    assert c.sio.call("event", "r", timeout=WAIT) == "Event Received: r"
    assert c.sio.call("event", "c", namespace="/chat", timeout=WAIT) == "chat Received: c"


def test_auth_payload(clients):
    c = clients(auth={"token": "secret-token"})
    assert c.sio.call("event", "a", timeout=WAIT) == "Event Received: a"


def test_invalid_namespace_raises(server_url):
    sio = socketio.Client(reconnection=False)
    errors = []
    sio.on("connect_error", lambda data: errors.append(data), namespace="/nope")
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            sio.connect(server_url, transports=["websocket"], namespaces=["/nope"], wait_timeout=WAIT)
        assert errors, "connect_error handler called"
        data = errors[0]
        message = data.get("message") if isinstance(data, dict) else data
        assert message == "Invalid namespace", data
    finally:
        sio.disconnect()


def test_join_room_several_clients(clients):
    room = f"pyroom-{uuid.uuid4().hex[:8]}"
    n = 5
    cs = [clients() for _ in range(n)]
    sids = [c.sio.get_sid("/") for c in cs]
    for c in cs:
        assert c.sio.call("join-room", room, timeout=WAIT) is None  # ack null
    final = f"There are {n} players in {room}"
    for i, c in enumerate(cs):
        later = [f"{s}has joined {room}" for s in sids[i + 1:]]
        c.wait_for(lambda ev, later=later: final in ev and all(j in ev for j in later), f"final count and joins for #{i + 1}")
    time.sleep(SETTLE)
    for i, c in enumerate(cs):
        counts = sorted(int(m.group(1)) for e in c.events if (m := re.fullmatch(rf"There are (\d+) players in {room}", e)))
        assert counts == list(range(i + 1, n + 1)), (i, c.events)
        joins = sorted(e for e in c.events if e.endswith(f"has joined {room}"))
        assert joins == sorted(f"{s}has joined {room}" for s in sids[i + 1:]), (i, c.events)


def test_say_reaches_room_only(clients):
    room = f"pysay-{uuid.uuid4().hex[:8]}"
    a, b, outside = clients(), clients(), clients()
    a.sio.call("join-room", room, timeout=WAIT)
    b.sio.call("join-room", room, timeout=WAIT)
    outside.sio.call("join-room", f"{room}-other", timeout=WAIT)
    a.sio.emit("say", '{"room":"%s","message":"hi from python"}' % room)
    expected = f"{a.sio.get_sid('/')} say: hi from python"
    b.wait_for(lambda ev: expected in ev, "say from a")
    time.sleep(SETTLE)
    assert not any(" say: " in e for e in a.events), a.events
    assert not any(" say: " in e for e in outside.events), outside.events
