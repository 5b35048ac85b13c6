"""HTTP upgrade handshake (RFC 6455 §4.2) and the server's answers to bad requests."""

import base64
import os
import socket
import time

import pytest

from wsclient import OP_TEXT, WSClient, accept_key

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def request(server, raw, timeout=5.0, chop=None):
    s = WSClient.raw_connect(server.host, server.port, timeout)
    try:
        if chop:
            for i in range(0, len(raw), chop):
                s.sendall(raw[i:i + chop])
        else:
            s.sendall(raw)
    except OSError:
        pass
    status, headers, body, rest, head = WSClient.read_http_response(s, timeout)
    return s, status, headers, body


def assert_closed(s, timeout=3.0):
    """The server closes the connection after an error response."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "server kept the connection open after the error response"
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            raise AssertionError("server kept the connection open after the error response")
        except ConnectionResetError:
            return
        if not chunk:
            return


def upgrade(key=KEY, version="13", extra="", omit=()):
    hdrs = [("Host", "localhost"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", version)]
    lines = "".join("%s: %s\r\n" % (k, v) for k, v in hdrs if k not in omit and v is not None)
    return ("GET /chat HTTP/1.1\r\n" + lines + extra + "\r\n").encode()


def test_valid_handshake_101(server):
    s, status, h, _ = request(server, upgrade())
    try:
        assert status == 101
        assert h["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert h["upgrade"].lower() == "websocket"
        assert "upgrade" in h["connection"].lower()
        assert "sec-websocket-protocol" not in h  # no subprotocol offered or configured
        assert "sec-websocket-extensions" not in h
    finally:
        s.close()


def test_handshake_tokens_case_insensitive_and_lists(server):
    raw = (b"GET / HTTP/1.1\r\nhost: x\r\nUPGRADE: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n"
           b"sec-websocket-key: " + KEY.encode() + b"\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n")
    s, status, h, _ = request(server, raw)
    s.close()
    assert status == 101
    assert h["sec-websocket-accept"] == accept_key(KEY)


def test_handshake_sent_byte_by_byte(server):
    s, status, h, _ = request(server, upgrade(), chop=1)
    s.close()
    assert status == 101


def test_subprotocol_not_echoed_when_not_configured(server):
    s, status, h, _ = request(server, upgrade(extra="Sec-WebSocket-Protocol: chat, superchat\r\n"))
    s.close()
    assert status == 101
    assert "sec-websocket-protocol" not in h


def test_frame_sent_together_with_handshake(server):
    # a client may pipeline its first frame right behind the request
    from wsclient import encode_frame
    s = WSClient.raw_connect(server.host, server.port)
    s.sendall(upgrade() + encode_frame(OP_TEXT, b"early bird"))
    status, headers, body, rest, head = WSClient.read_http_response(s)
    assert status == 101
    c = WSClient(s, rest)
    try:
        assert c.recv_message() == (OP_TEXT, b"early bird")
    finally:
        c.close()


def test_missing_key_is_400(server):
    s, status, h, _ = request(server, upgrade(omit=("Sec-WebSocket-Key",)))
    try:
        assert status == 400
        assert_closed(s)
    finally:
        s.close()


def test_version_8_is_426_with_version_header(server):
    s, status, h, _ = request(server, upgrade(version="8"))
    try:
        assert status == 426
        assert h.get("sec-websocket-version") == "13"
        assert_closed(s)
    finally:
        s.close()


def test_missing_version_is_426(server):
    s, status, h, _ = request(server, upgrade(omit=("Sec-WebSocket-Version",)))
    try:
        assert status == 426
        assert h.get("sec-websocket-version") == "13"
    finally:
        s.close()


@pytest.mark.parametrize("key", [
    base64.b64encode(b"x" * 15).decode(),
    base64.b64encode(b"x" * 17).decode(),
    "not base64 at all!!!!!!!",
    "",
], ids=["15-bytes", "17-bytes", "not-base64", "empty"])
def test_bad_key_is_400(server, key):
    s, status, h, _ = request(server, upgrade(key=key))
    try:
        assert status == 400
        assert_closed(s)
    finally:
        s.close()


def test_missing_upgrade_header_is_400(server):
    s, status, h, _ = request(server, upgrade(omit=("Upgrade",)))
    s.close()
    # without Upgrade it is a plain HTTP request; echo has no on_request -> 400
    assert status == 400


def test_post_upgrade_is_400(server):
    raw = upgrade().replace(b"GET ", b"POST ", 1)
    s, status, h, _ = request(server, raw)
    s.close()
    assert status == 400


def test_plain_get_without_on_request_is_400(server):
    s, status, h, body = request(server, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    try:
        assert status == 400
        assert_closed(s)
    finally:
        s.close()


def test_garbage_request_is_400(server):
    s, status, h, _ = request(server, b"\x16\x03\x01\x02\x00garbage not http\r\n\r\n")
    try:
        assert status == 400
        assert_closed(s)
    finally:
        s.close()


def test_oversize_header_block_is_431(server):
    raw = upgrade(extra="X-Big: %s\r\n" % ("a" * 16384))
    s, status, h, _ = request(server, raw)
    try:
        assert status == 431
        assert_closed(s)
    finally:
        s.close()


def test_too_many_header_lines_is_431(server):
    extra = "".join("X-H%d: v\r\n" % i for i in range(150))
    s, status, h, _ = request(server, upgrade(extra=extra))
    try:
        assert status == 431
    finally:
        s.close()


def test_server_still_serves_after_bad_requests(server):
    for _ in range(5):
        s, status, _, _ = request(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()
        assert status == 400
    c = server.connect()
    try:
        c.send_text(b"alive")
        assert c.recv_message() == (OP_TEXT, b"alive")
    finally:
        c.close()


@pytest.mark.skipif(not os.environ.get("CONFORMANCE_SLOW"), reason="handshake timeout is 10 s; set CONFORMANCE_SLOW=1")
def test_slowloris_partial_request_is_closed_by_handshake_timeout(server):
    s = WSClient.raw_connect(server.host, server.port, 20)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        s.settimeout(20)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        assert time.monotonic() - t0 < 15
    finally:
        s.close()
