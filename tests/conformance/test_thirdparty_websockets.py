"""Echo checks with a real third-party client: the `websockets` package (sync client)."""

import os

import pytest

websockets = pytest.importorskip("websockets")
from websockets.sync.client import connect  # noqa: E402
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402


def url(server):
    return "ws://%s:%d/" % server.addr


def test_text_and_binary_echo_uncompressed(server):
    with connect(url(server), compression=None, open_timeout=5, close_timeout=5) as c:
        assert c.response.headers.get("Sec-WebSocket-Extensions") is None
        c.send("héllo ✓")
        assert c.recv(timeout=5) == "héllo ✓"
        data = os.urandom(200_000)
        c.send(data)
        assert c.recv(timeout=10) == data
        c.send(["frag-", "mented ", "text"])  # a fragmented message
        assert c.recv(timeout=5) == "frag-mented text"


def test_compressed_echo_default_offer(server):
    with connect(url(server), open_timeout=5, close_timeout=5) as c:  # default: deflate offered
        ext = c.response.headers.get("Sec-WebSocket-Extensions")
        assert ext is not None and ext.startswith("permessage-deflate"), ext
        text = "The quick brown fox jumps over the lazy dog. " * 2000
        for _ in range(5):
            c.send(text)
            assert c.recv(timeout=5) == text
        blob = bytes(range(256)) * 4000
        c.send(blob)
        assert c.recv(timeout=10) == blob
        c.send(b"")
        assert c.recv(timeout=5) == b""


@pytest.mark.parametrize("params", [
    dict(server_no_context_takeover=True, client_no_context_takeover=True),
    dict(server_max_window_bits=10, client_max_window_bits=10),
    dict(server_max_window_bits=9, client_max_window_bits=9, server_no_context_takeover=True),
])
def test_compressed_echo_with_parameters(server, params):
    factory = ClientPerMessageDeflateFactory(**params)
    with connect(url(server), extensions=[factory], compression=None, open_timeout=5,
                 close_timeout=5) as c:
        ext = c.response.headers.get("Sec-WebSocket-Extensions")
        assert ext and ext.startswith("permessage-deflate"), ext
        text = ("ab" * 3000) + os.urandom(4000).hex()
        for _ in range(3):
            c.send(text)
            assert c.recv(timeout=5) == text


def test_ping_pong(server):
    with connect(url(server), open_timeout=5, close_timeout=5) as c:
        waiter = c.ping(b"ping-data")
        assert waiter.wait(5)


def test_close_code_is_answered(server):
    with connect(url(server), open_timeout=5, close_timeout=5) as c:
        c.close(code=4002, reason="bye")
        assert c.protocol.close_rcvd is not None, "server did not answer the close"
        assert c.protocol.close_rcvd.code in (4002, 1000)


def test_server_closes_on_invalid_utf8_with_1007(server):
    with connect(url(server), compression=None, open_timeout=5, close_timeout=5) as c:
        c.send(b"\xff\xfe", text=True)  # bytes sent as a text frame, not validated by the client
        with pytest.raises(ConnectionClosed) as e:
            c.recv(timeout=5)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1007
