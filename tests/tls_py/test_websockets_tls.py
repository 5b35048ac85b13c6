"""wss:// with the Python `websockets` client over `ssl` (and https:// with http.client)
against the echo example, trusting the test CA only.

The asyncio client is used: websockets' threaded (sync) client reads and writes one OpenSSL
connection from two threads, which with TLS 1.3 session tickets sometimes loses its handshake
request (reproduced against websockets' own TLS server too)."""

import asyncio
import http.client
import os
import socket
import ssl

import pytest
from websockets.asyncio.client import connect


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def ssl_object(ws):
    return ws.transport.get_extra_info("ssl_object")


def test_text_and_binary_echo_over_wss(tls_server, certs):
    async def go():
        async with connect(tls_server.url, ssl=certs.context(), max_size=None) as ws:
            await ws.send("héllo over TLS")
            assert await ws.recv() == "héllo over TLS"
            data = os.urandom(4 << 20)
            await ws.send(data)
            assert await ws.recv() == data
            assert ssl_object(ws).selected_alpn_protocol() is None  # websockets offers no ALPN
    run(go())


def test_alpn_http_1_1_is_negotiated_when_offered(tls_server, certs):
    async def go():
        ctx = certs.context()
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        async with connect(tls_server.url, ssl=ctx) as ws:
            assert ssl_object(ws).selected_alpn_protocol() == "http/1.1"
            await ws.send("alpn")
            assert await ws.recv() == "alpn"
    run(go())


def test_permessage_deflate_over_wss(tls_server, certs):
    # websockets offers permessage-deflate by default; echo accepts it.
    async def go():
        async with connect(tls_server.url, ssl=certs.context()) as ws:
            assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
            text = "compressible " * 50000
            await ws.send(text)
            assert await ws.recv() == text
    run(go())


def test_tls_1_2_and_1_3_clients(tls_server, certs):
    async def go(version, name):
        ctx = certs.context(minimum_version=version, maximum_version=version)
        async with connect(tls_server.url, ssl=ctx) as ws:
            assert ssl_object(ws).version() == name
            await ws.send(name)
            assert await ws.recv() == name
    run(go(ssl.TLSVersion.TLSv1_2, "TLSv1.2"))
    run(go(ssl.TLSVersion.TLSv1_3, "TLSv1.3"))


def test_many_clients_at_once_over_two_workers(tls_server, certs):
    async def client(i):
        async with connect(tls_server.url, ssl=certs.context()) as ws:
            for k in range(100):
                await ws.send("%d:%d" % (i, k))
                assert await ws.recv() == "%d:%d" % (i, k)

    async def go():
        for _ in range(5):
            await asyncio.gather(*(client(i) for i in range(40)))
    run(go())


def test_the_certificate_is_verified(tls_server, certs):
    async def go():
        # Without the test CA, Python's default trust store refuses the server.
        with pytest.raises(ssl.SSLCertVerificationError):
            async with connect(tls_server.url, ssl=ssl.create_default_context(), open_timeout=5):
                pass
        # The certificate is for localhost and 127.0.0.1.
        async with connect("wss://127.0.0.1:%d/" % tls_server.port, ssl=certs.context()) as ws:
            await ws.send("by address")
            assert await ws.recv() == "by address"
    run(go())


def test_https_on_the_same_port(tls_server, certs):
    conn = http.client.HTTPSConnection("localhost", tls_server.port, context=certs.context(), timeout=5)
    conn.request("GET", "/")
    r = conn.getresponse()
    assert r.status == 400  # echo has no on_request, like Swoole without onRequest
    r.read()
    conn.close()


def test_plain_http_to_the_tls_port_gets_400(tls_server, certs):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
    assert got.startswith(b"HTTP/1.1 400"), got
    assert b"speaks TLS" in got
    assert "plain HTTP sent to a TLS port" in tls_server.log()

    async def go():
        async with connect(tls_server.url, ssl=certs.context()) as ws:
            await ws.send("unaffected")
            assert await ws.recv() == "unaffected"
    run(go())


def test_clients_that_give_up_mid_handshake_hurt_nobody(tls_server, certs):
    async def go():
        async with connect(tls_server.url, ssl=certs.context()) as ws:
            for _ in range(20):
                raw = socket.create_connection(("127.0.0.1", tls_server.port), timeout=5)
                tls = certs.context().wrap_socket(raw, server_hostname="localhost",
                                                 do_handshake_on_connect=False)
                tls.setblocking(False)
                try:
                    tls.do_handshake()  # sends the ClientHello, cannot finish yet
                except ssl.SSLWantReadError:
                    pass
                tls.close()
            await ws.send("unaffected")
            assert await ws.recv() == "unaffected"
    run(go())
