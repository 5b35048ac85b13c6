"""End-to-end tests of the `hyperf_app` example (seeds 000/001: Hyperf WebSocket + HTTP server).

Every test opens its own connections and closes them (the `ws_connect` fixture closes what it
opened; the `app` fixture then waits until the server has forgotten them), so the tests do not
depend on each other's order. Every network wait is bounded.
"""

import base64
import json
import socket
import time

import jwt
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

RECV_TIMEOUT = 5.0  # seconds, every recv
ACCOUNTS = {1: "jerry", 2: "tom"}  # the users table
MAX_TRIES_FOR_BOTH_WORKERS = 40


# ---------------------------------------------------------------------------------------------
# helpers


def make_token(uid, secret, exp_offset=3600, **extra):
    payload = {"data": {"uid": uid}, "exp": int(time.time()) + exp_offset}
    payload.update(extra)
    tok = jwt.encode(payload, secret, algorithm="HS256")
    return tok.decode() if isinstance(tok, bytes) else tok


def bearer(token):
    return {"Authorization": "Bearer " + token}


def unsigned_token(uid):
    """An `alg: none` token (no signature) carrying valid-looking claims."""
    def b64(obj):
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return "%s.%s." % (b64({"alg": "none", "typ": "JWT"}),
                       b64({"data": {"uid": uid}, "exp": int(time.time()) + 3600}))


def refusal(app, path, headers=None):
    """Attempts a WebSocket handshake that must be refused; returns the refusal response."""
    try:
        c = app.ws_connect(path, headers=headers)
    except InvalidStatus as e:
        return e.response
    try:
        first = None
        try:
            first = c.recv(timeout=0.5)
        except Exception:
            pass
        raise AssertionError("handshake to %s with headers %r was upgraded (101); first "
                             "message: %r" % (path, headers, first))
    finally:
        c.close()


def assert_json_error_body(resp):
    body = resp.body
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        raise AssertionError("refusal body is not JSON: %r (headers %r)" % (body, resp.headers))
    assert isinstance(data, dict), data
    assert "code" in data and "msg" in data, data
    assert isinstance(data["code"], int) and not isinstance(data["code"], bool), data
    assert isinstance(data["msg"], str), data
    return data


def expect_close(c, timeout=RECV_TIMEOUT):
    """Waits for the server to close `c`; returns (Close frame received or None, seconds)."""
    t0 = time.monotonic()
    try:
        msg = c.recv(timeout=timeout)
    except ConnectionClosed as e:
        return e.rcvd, time.monotonic() - t0
    except TimeoutError:
        raise AssertionError("the server did not close the connection within %.1f s" % timeout)
    raise AssertionError("expected the server to close the connection, got a message %r" % msg)


def assert_nothing_received(c, timeout):
    try:
        msg = c.recv(timeout=timeout)
    except TimeoutError:
        return
    raise AssertionError("unexpected message %r" % (msg,))


def wait_new_connection(app, before, timeout=3.0):
    """The single /server/connections entry whose fd was not in `before` (polled)."""
    deadline = time.monotonic() + timeout
    while True:
        conns = app.connections()
        new = [c for c in conns if c["fd"] not in before]
        if len(new) == 1:
            entry = new[0]
            assert isinstance(entry.get("fd"), int), entry
            assert entry.get("worker_id") in (0, 1), entry
            return entry
        if len(new) > 1:
            raise AssertionError("one connection opened but several new fds listed: %r "
                                 "(before: %r)" % (new, sorted(before)))
        if time.monotonic() > deadline:
            raise AssertionError("a newly opened connection did not appear in "
                                 "/server/connections within %.1f s: %r (before: %r)"
                                 % (timeout, conns, sorted(before)))
        time.sleep(0.05)


def wait_gone(app, fd, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        conns = app.connections()
        if fd not in {c["fd"] for c in conns}:
            return
        if time.monotonic() > deadline:
            raise AssertionError("fd %d still listed by /server/connections %.1f s after its "
                                 "close: %r" % (fd, timeout, conns))
        time.sleep(0.05)


class Tracked:
    def __init__(self, ws, fd, worker_id):
        self.ws, self.fd, self.worker_id = ws, fd, worker_id

    def __repr__(self):
        return "<fd %d on worker %d>" % (self.fd, self.worker_id)


def open_tracked(app, ws_connect, path="/", headers=None, first="Opened"):
    """Opens one connection and finds its fd: the one /server/connections lists now and did
    not list before. `first` is the message on_open pushes (awaited, so that the connection is
    established), or None when the route pushes nothing on open."""
    before = app.fds()
    c = ws_connect(path, headers=headers)
    if first is not None:
        assert c.recv(timeout=RECV_TIMEOUT) == first
    entry = wait_new_connection(app, before)
    return Tracked(c, entry["fd"], entry["worker_id"])


def clients_on_both_workers(app, ws_connect):
    """Opens `/` connections one at a time until the server reports one on worker 0 and one on
    worker 1. Returns ({worker_id: Tracked}, all Tracked opened)."""
    by_worker, opened = {}, []
    for _ in range(MAX_TRIES_FOR_BOTH_WORKERS):
        t = open_tracked(app, ws_connect)
        opened.append(t)
        by_worker.setdefault(t.worker_id, t)
        if set(by_worker) == {0, 1}:
            return by_worker, opened
    raise AssertionError("after %d connections /server/connections still shows only "
                         "worker(s) %r: %r" % (len(opened), sorted(by_worker), opened))


def raw_upgrade(app, method, path="/", timeout=5.0):
    """Sends a hand-written upgrade request; returns (status code, raw response head)."""
    req = ("%s %s HTTP/1.1\r\n"
           "Host: 127.0.0.1:%d\r\n"
           "Upgrade: websocket\r\n"
           "Connection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n"
           "Content-Length: 0\r\n"
           "\r\n" % (method, path, app.ws_port)).encode()
    s = socket.create_connection((app.host, app.ws_port), timeout=timeout)
    try:
        s.sendall(req)
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in data:
            if time.monotonic() > deadline:
                break
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    parts = head.split(" ", 2)
    assert len(parts) >= 2 and parts[0].startswith("HTTP/1."), \
        "no HTTP status line in response to %s %s: %r" % (method, path, data[:500])
    return int(parts[1]), head


# ---------------------------------------------------------------------------------------------
# start-up


def test_startup_lines_announce_ports_and_workers(app):
    out = app.stdout()
    assert "[INFO] WebSocket Server listening at 127.0.0.1:%d" % app.ws_port in out, out
    assert "[INFO] HTTP Server listening at 127.0.0.1:%d" % app.http_port in out, out
    assert app.ws_port != app.http_port
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        out = app.stdout()
        if "[INFO] Worker#0 started." in out and "[INFO] Worker#1 started." in out:
            break
        time.sleep(0.05)
    assert "[INFO] Worker#0 started." in out, out
    assert "[INFO] Worker#1 started." in out, out


# ---------------------------------------------------------------------------------------------
# WS /wss/demo (seed 000): JWT middleware


def test_demo_missing_token_is_401_json(app):
    resp = refusal(app, "/wss/demo")
    assert resp.status_code == 401, (resp.status_code, resp.headers, resp.body)
    assert_json_error_body(resp)


@pytest.mark.parametrize("value", [
    "Bearer not-a-jwt",
    "Bearer a.b.c",
    "Bearer eyJhbGciOiJIUzI1NiJ9.eyJkYXRhIjp7InVpZCI6MX19",  # two segments, no signature
    "Bearer",
], ids=["garbage", "junk-segments", "no-signature", "scheme-only"])
def test_demo_malformed_token_is_401_json(app, value):
    resp = refusal(app, "/wss/demo", headers={"Authorization": value})
    assert resp.status_code == 401, (value, resp.status_code, resp.headers, resp.body)
    assert_json_error_body(resp)


def test_demo_wrongly_signed_token_is_401_json(app):
    resp = refusal(app, "/wss/demo", headers=bearer(make_token(1, "not-" + app.secret)))
    assert resp.status_code == 401, (resp.status_code, resp.headers, resp.body)
    assert_json_error_body(resp)


def test_demo_unsigned_alg_none_token_is_401_json(app):
    resp = refusal(app, "/wss/demo", headers=bearer(unsigned_token(1)))
    assert resp.status_code == 401, (resp.status_code, resp.headers, resp.body)
    assert_json_error_body(resp)


def test_demo_expired_token_is_401_json(app):
    # an hour in the past: beyond any clock-skew leeway a JWT library allows by default
    resp = refusal(app, "/wss/demo", headers=bearer(make_token(1, app.secret, exp_offset=-3600)))
    assert resp.status_code == 401, (resp.status_code, resp.headers, resp.body)
    assert_json_error_body(resp)


def test_demo_refused_handshake_is_not_listed(app):
    before = app.fds()
    refusal(app, "/wss/demo")
    refusal(app, "/wss/demo", headers=bearer(make_token(1, "not-" + app.secret)))
    time.sleep(0.2)
    assert app.fds() <= before


@pytest.mark.parametrize("uid", [1, 2])
def test_demo_valid_token_open_and_messages(ws_connect, app, uid):
    c = ws_connect("/wss/demo", headers=bearer(make_token(uid, app.secret)))
    assert c.recv(timeout=RECV_TIMEOUT) == "Authorization Success"
    for text in ["hello", "second message", "你好 ✓"]:
        c.send(text)
        assert c.recv(timeout=RECV_TIMEOUT) == "Recv: " + text
        claims_text = c.recv(timeout=RECV_TIMEOUT)
        try:
            claims = json.loads(claims_text)
        except ValueError:
            raise AssertionError("second reply is not JSON: %r" % (claims_text,))
        assert claims["data"]["uid"] == uid, claims


@pytest.mark.parametrize("uid", [1, 2])
def test_demo_nihao_server_disconnects_with_account(ws_connect, app, uid):
    c = ws_connect("/wss/demo", headers=bearer(make_token(uid, app.secret)))
    assert c.recv(timeout=RECV_TIMEOUT) == "Authorization Success"
    c.send("nihao")
    rcvd, _ = expect_close(c)
    assert rcvd is not None, "closed without a close frame"
    assert rcvd.code == 1000, rcvd
    assert rcvd.reason == "%s 已由服务端断开连接" % ACCOUNTS[uid], rcvd


def test_demo_connection_is_listed(app, ws_connect):
    t = open_tracked(app, ws_connect, "/wss/demo", headers=bearer(make_token(1, app.secret)),
                     first="Authorization Success")
    t.ws.close()
    wait_gone(app, t.fd)


# ---------------------------------------------------------------------------------------------
# WS / (seed 001)


def test_root_opened_then_recv_echo(ws_connect):
    c = ws_connect("/")
    assert c.recv(timeout=RECV_TIMEOUT) == "Opened"
    for text in ["hello", "", "nihao", "héllo ✓ 你好", "x" * 10000]:
        c.send(text)
        assert c.recv(timeout=RECV_TIMEOUT) == "Recv: " + text


def test_root_needs_no_token(ws_connect):
    c = ws_connect("/", headers={"Cookie": "username=alice"})
    assert c.recv(timeout=RECV_TIMEOUT) == "Opened"


# ---------------------------------------------------------------------------------------------
# WS /ctx (seed 001's connection context)


def test_ctx_username_from_cookie(ws_connect):
    c = ws_connect("/ctx", headers={"Cookie": "username=alice"})
    c.send("hi")
    assert c.recv(timeout=RECV_TIMEOUT) == "Username: alice"
    c.send("again")
    assert c.recv(timeout=RECV_TIMEOUT) == "Username: alice"


def test_ctx_is_per_connection(ws_connect):
    a = ws_connect("/ctx", headers={"Cookie": "username=alice"})
    b = ws_connect("/ctx", headers={"Cookie": "theme=dark; username=bob"})
    b.send("1")
    a.send("1")
    assert a.recv(timeout=RECV_TIMEOUT) == "Username: alice"
    assert b.recv(timeout=RECV_TIMEOUT) == "Username: bob"


def test_ctx_connection_is_listed(app, ws_connect):
    t = open_tracked(app, ws_connect, "/ctx", headers={"Cookie": "username=alice"}, first=None)
    t.ws.send("x")
    assert t.ws.recv(timeout=RECV_TIMEOUT) == "Username: alice"


# ---------------------------------------------------------------------------------------------
# WS: unknown path, wrong method


@pytest.mark.parametrize("path", ["/nope", "/wss", "/wss/demo/x", "/ctxx", "/server/connections"])
def test_unknown_ws_path_is_404_route_error(app, path):
    resp = refusal(app, path)
    assert resp.status_code == 404, (path, resp.status_code, resp.headers, resp.body)
    assert resp.headers.get("Content-Type") == "application/json", resp.headers
    assert resp.headers.get("Description") == "Route Error", resp.headers


def test_unknown_ws_path_with_valid_token_is_still_404(app):
    resp = refusal(app, "/nope", headers=bearer(make_token(1, app.secret)))
    assert resp.status_code == 404, (resp.status_code, resp.headers, resp.body)
    assert resp.headers.get("Description") == "Route Error", resp.headers


def test_raw_get_upgrade_control_is_101(app):
    status, head = raw_upgrade(app, "GET", "/")
    assert status == 101, head


def test_post_upgrade_is_405(app):
    status, head = raw_upgrade(app, "POST", "/")
    assert status == 405, head


# ---------------------------------------------------------------------------------------------
# HTTP: GET /, unknown paths, wrong methods


def test_http_root_hello_hyperf(app):
    status, _, body = app.http("GET", "/")
    assert status == 200, (status, body)
    assert body == b"Hello Hyperf.", body


@pytest.mark.parametrize("path", ["/nope", "/server", "/server/sendx?fd=1", "/wss/demo"])
def test_http_unknown_path_is_404(app, path):
    status, _, body = app.http("GET", path)
    assert status == 404, (path, status, body)


@pytest.mark.parametrize("method,path", [
    ("POST", "/server/connections"),
    ("POST", "/server/send?fd=999999"),
    ("PUT", "/server/close?fd=999999"),
    ("DELETE", "/server/connections"),
])
def test_http_wrong_method_is_405(app, method, path):
    status, _, body = app.http(method, path, body=b"" if method in ("POST", "PUT") else None)
    assert status == 405, (method, path, status, body)


# ---------------------------------------------------------------------------------------------
# HTTP /server/connections


def test_connections_is_json_array_of_fd_and_worker(app, ws_connect):
    t = open_tracked(app, ws_connect)
    conns = app.connections()
    for entry in conns:
        assert isinstance(entry, dict), conns
        assert isinstance(entry.get("fd"), int) and not isinstance(entry["fd"], bool), conns
        assert entry.get("worker_id") in (0, 1), conns
    assert {"fd": t.fd, "worker_id": t.worker_id} in conns
    fds = [e["fd"] for e in conns]
    assert len(fds) == len(set(fds)), "an fd listed twice: %r" % conns


def test_connections_lists_no_http_connections(app, ws_connect):
    # each call is a new HTTP connection; none of them may show up as a WebSocket connection
    t = open_tracked(app, ws_connect)
    seen = [app.fds() for _ in range(5)]
    assert all(s == seen[0] for s in seen), seen
    assert t.fd in seen[0]


def test_connections_lists_every_open_connection_and_forgets_closed_ones(app, ws_connect):
    ts = [open_tracked(app, ws_connect) for _ in range(4)]
    ts.append(open_tracked(app, ws_connect, "/ctx", headers={"Cookie": "username=a"},
                           first=None))
    listed = app.fds()
    for t in ts:
        assert t.fd in listed, (t, listed)
    assert len({t.fd for t in ts}) == len(ts), ts
    ts[0].ws.close()
    wait_gone(app, ts[0].fd)
    listed = app.fds()
    for t in ts[1:]:
        assert t.fd in listed, (t, listed)


def test_connections_forgets_server_closed_connection(app, ws_connect):
    t = open_tracked(app, ws_connect, "/wss/demo", headers=bearer(make_token(2, app.secret)),
                     first="Authorization Success")
    t.ws.send("nihao")
    expect_close(t.ws)
    wait_gone(app, t.fd)


# ---------------------------------------------------------------------------------------------
# HTTP /server/send


def test_send_pushes_hello_world_to_fd(app, ws_connect):
    t = open_tracked(app, ws_connect)
    status, _, body = app.http("GET", "/server/send?fd=%d" % t.fd)
    assert (status, body) == (200, b""), (status, body)
    assert t.ws.recv(timeout=RECV_TIMEOUT) == "Hello World."
    # the connection is still usable afterwards
    t.ws.send("after")
    assert t.ws.recv(timeout=RECV_TIMEOUT) == "Recv: after"


def test_send_to_unknown_fd_is_404(app):
    status, _, body = app.http("GET", "/server/send?fd=999999")
    assert status == 404, (status, body)


def test_send_to_closed_fd_is_404(app, ws_connect):
    t = open_tracked(app, ws_connect)
    t.ws.close()
    wait_gone(app, t.fd)
    status, _, body = app.http("GET", "/server/send?fd=%d" % t.fd)
    assert status == 404, (status, body)


def test_sender_reaches_fds_on_both_workers(app, ws_connect):
    by_worker, opened = clients_on_both_workers(app, ws_connect)
    assert by_worker[0].worker_id != by_worker[1].worker_id
    for w in (0, 1):
        target, other = by_worker[w], by_worker[1 - w]
        status, _, body = app.http("GET", "/server/send?fd=%d" % target.fd)
        assert (status, body) == (200, b""), (target, status, body)
        assert target.ws.recv(timeout=RECV_TIMEOUT) == "Hello World.", target
        # only that client got it
        assert_nothing_received(other.ws, 0.5)
        for t in opened:
            if t is not target and t is not other:
                assert_nothing_received(t.ws, 0.01)


# ---------------------------------------------------------------------------------------------
# HTTP /server/close


def _close_via_http(app, t):
    t0 = time.monotonic()
    status, _, body = app.http("GET", "/server/close?fd=%d" % t.fd)
    answered = time.monotonic() - t0
    assert status == 200, (t, status, body)
    assert answered < 0.5, "GET /server/close took %.2f s to answer (should be at once)" % answered
    rcvd, waited = expect_close(t.ws, timeout=4.0)
    elapsed = time.monotonic() - t0
    assert rcvd is not None, "fd %d: closed without a close frame" % t.fd
    assert rcvd.code == 1000, (t, rcvd)
    assert 0.5 <= elapsed <= 3.0, "fd %d closed %.2f s after the request" % (t.fd, elapsed)


def test_close_disconnects_fd_about_a_second_later(app, ws_connect):
    t = open_tracked(app, ws_connect)
    _close_via_http(app, t)
    wait_gone(app, t.fd)


def test_close_reaches_fds_on_both_workers(app, ws_connect):
    by_worker, opened = clients_on_both_workers(app, ws_connect)
    for w in (0, 1):
        _close_via_http(app, by_worker[w])
    # the others are untouched
    for t in opened:
        if t not in by_worker.values():
            t.ws.send("still")
            assert t.ws.recv(timeout=RECV_TIMEOUT) == "Recv: still", t


# ---------------------------------------------------------------------------------------------
# isolation: one client's refusal or close does not disturb another


def test_other_client_unaffected_by_refusals_and_closes(app, ws_connect):
    keep = ws_connect("/")
    assert keep.recv(timeout=RECV_TIMEOUT) == "Opened"

    assert refusal(app, "/wss/demo").status_code == 401
    keep.send("after 401")
    assert keep.recv(timeout=RECV_TIMEOUT) == "Recv: after 401"

    assert refusal(app, "/nope").status_code == 404
    keep.send("after 404")
    assert keep.recv(timeout=RECV_TIMEOUT) == "Recv: after 404"

    assert raw_upgrade(app, "POST", "/")[0] == 405
    keep.send("after 405")
    assert keep.recv(timeout=RECV_TIMEOUT) == "Recv: after 405"

    demo = ws_connect("/wss/demo", headers=bearer(make_token(1, app.secret)))
    assert demo.recv(timeout=RECV_TIMEOUT) == "Authorization Success"
    demo.send("nihao")
    expect_close(demo)
    keep.send("after nihao")
    assert keep.recv(timeout=RECV_TIMEOUT) == "Recv: after nihao"

    victim = open_tracked(app, ws_connect)
    status, _, _ = app.http("GET", "/server/close?fd=%d" % victim.fd)
    assert status == 200
    expect_close(victim.ws, timeout=4.0)
    keep.send("after server close")
    assert keep.recv(timeout=RECV_TIMEOUT) == "Recv: after server close"

    # a client that vanishes without a closing handshake
    s = socket.create_connection((app.host, app.ws_port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    s.recv(4096)
    s.close()
    keep.send("after abrupt close")
    assert keep.recv(timeout=RECV_TIMEOUT) == "Recv: after abrupt close"
