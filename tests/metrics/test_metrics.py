"""`--metrics-port`: the echo example (2 workers) serves GET /metrics, parsed here by the
official Prometheus client's OpenMetrics parser; the figures follow what clients did.

The server is started in its own session and killed by process group at the end.
`ECHO_BIN=/path` tests another binary.
"""

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from websockets.sync.client import connect

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ECHO_BIN = os.environ.get("ECHO_BIN", os.path.join(REPO, "target", "release", "examples", "echo"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    mport = free_port()
    proc = subprocess.Popen(
        [ECHO_BIN, "--host", "127.0.0.1", "--port", "0", "--workers", "2", "--metrics-port", str(mport)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        port = None
        deadline = time.time() + 20
        while port is None and time.time() < deadline:
            line = proc.stdout.readline()
            m = re.search(r"WebSocket Server listening at [0-9.]+:(\d+)", line)
            if m:
                port = int(m.group(1))
        assert port, "the echo server did not start"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", mport), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port, mport
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def scrape(mport):
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        text = r.read().decode()
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def total(samples, name, **labels):
    return sum(v for l, v in samples.get(name, []) if all(l.get(k) == x for k, x in labels.items()))


def wait_for(mport, check, timeout=5.0):
    """Counters reach the shared table within a second; poll until `check` holds."""
    deadline = time.time() + timeout
    while True:
        s = scrape(mport)
        if check(s) or time.time() > deadline:
            return s
        time.sleep(0.2)


def test_figures_follow_what_clients_do(server):
    port, mport = server
    before = scrape(mport)
    open_clients = [connect(f"ws://127.0.0.1:{port}/", proxy=None) for _ in range(4)]
    for c in open_clients:
        c.send("hello")
        assert c.recv(timeout=5) == "hello"
    # A protocol error (an unmasked client frame) and a refused handshake.
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        raw.recv(4096)
        raw.sendall(b"\x81\x02hi")
        raw.settimeout(5)
        while raw.recv(4096):
            pass
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        assert raw.recv(4096).startswith(b"HTTP/1.1 426")

    def ok(s):
        return (total(s, "prefork_connections", state="active") >= 4
                and total(s, "prefork_messages_in_total") >= total(before, "prefork_messages_in_total") + 4
                and total(s, "prefork_closed_total", reason="protocol_error") >= 1
                and total(s, "prefork_refused_total", status="426") >= 1)

    s = wait_for(mport, ok)
    assert total(s, "prefork_connections", state="active") >= 4
    assert total(s, "prefork_accepted_total") >= 6
    assert total(s, "prefork_messages_in_total") >= total(before, "prefork_messages_in_total") + 4
    assert total(s, "prefork_messages_out_total") >= 4
    assert total(s, "prefork_bytes_in_total") > 0 and total(s, "prefork_bytes_out_total") > 0
    assert total(s, "prefork_closed_total", reason="protocol_error") >= 1
    assert total(s, "prefork_refused_total", status="426") >= 1
    assert total(s, "prefork_workers") == 2
    assert {l["worker"] for l, _ in s["prefork_accepted_total"]} == {"0", "1"}, "per-worker labels"
    for c in open_clients:
        c.close()
    s = wait_for(mport, lambda s: total(s, "prefork_closed_total", reason="normal") >= 4)
    assert total(s, "prefork_closed_total", reason="normal") >= 4


def test_other_paths_on_the_metrics_port_are_404(server):
    _, mport = server
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{mport}/", timeout=5)
    assert e.value.code == 404
