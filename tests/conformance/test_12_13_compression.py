"""Autobahn 12.x / 13.x: permessage-deflate (RFC 7692) negotiation and compressed echo.

Autobahn 13.x offers (client side), each with `client_no_context_takeover;
client_max_window_bits` (Autobahn's default offer flags) plus:
  13.1 nothing more              13.2 server_no_context_takeover
  13.3 server_max_window_bits=8  13.4 server_max_window_bits=15
  13.5 server_no_context_takeover; server_max_window_bits=8
  13.6 server_no_context_takeover; server_max_window_bits=15
  13.7 three offers: (13.5), (13.2), (13.1)
If the server does not accept an offer, Autobahn scores the case UNIMPLEMENTED, not OK.
"""

import json
import os
import random
import struct
import zlib

import pytest

from wsclient import (OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RSV1, Deflate, WSClient,
                      encode_frame, mask_bytes)

BASE = "permessage-deflate; client_no_context_takeover; client_max_window_bits"


def parse_extensions(value):
    out = []
    if not value:
        return out
    for offer in value.split(","):
        parts = [p.strip() for p in offer.split(";")]
        params = {}
        for p in parts[1:]:
            k, eq, v = p.partition("=")
            params[k.strip().lower()] = v.strip().strip('"') if eq else True
        out.append((parts[0].lower(), params))
    return out


def check_response(offers, response):
    """Validates a permessage-deflate response against the offers (RFC 7692 §7.1) and returns
    the client-side Deflate for it."""
    exts = parse_extensions(response)
    assert len(exts) == 1, "expected exactly one extension in %r" % response
    name, params = exts[0]
    assert name == "permessage-deflate"
    allowed = {"server_no_context_takeover", "client_no_context_takeover",
               "server_max_window_bits", "client_max_window_bits"}
    assert set(params) <= allowed, params
    # the response must fit at least one of the offers
    fits = []
    for offer in offers:
        _, op = parse_extensions(offer)[0]
        ok = True
        if "server_no_context_takeover" in op and "server_no_context_takeover" not in params:
            ok = False
        if "server_max_window_bits" in op:
            if "server_max_window_bits" not in params or int(params["server_max_window_bits"]) > int(op["server_max_window_bits"]):
                ok = False
        if "client_max_window_bits" in params:
            if "client_max_window_bits" not in op:
                ok = False  # the client did not say it supports the parameter
            elif params["client_max_window_bits"] is True:
                ok = False  # a value is required in a response
            elif op["client_max_window_bits"] is not True and int(params["client_max_window_bits"]) > int(op["client_max_window_bits"]):
                ok = False
        fits.append(ok)
    assert any(fits), "response %r fits none of the offers %r" % (response, offers)
    for k in ("server_max_window_bits", "client_max_window_bits"):
        if k in params:
            assert 8 <= int(params[k]) <= 15
    return Deflate(
        client_max_window_bits=max(9, int(params.get("client_max_window_bits", 15))),
        server_max_window_bits=int(params.get("server_max_window_bits", 15)),
        client_no_context_takeover="client_no_context_takeover" in params,
        server_no_context_takeover="server_no_context_takeover" in params,
    )


def connect_deflate(server, offers):
    c = server.connect(extensions=", ".join(offers))
    resp = c.negotiated_extensions
    assert resp is not None, "server declined permessage-deflate offers %r" % offers
    c.deflate = check_response(offers, resp)
    return c


def make_json(n_bytes, seed=1):
    rnd = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
             "lambda", "mu", "Grüße", "naïve", "日本語", "€uro"]
    items = []
    size = 0
    while size < n_bytes + 1024:
        d = {"id": rnd.randrange(10 ** 6), "name": " ".join(rnd.choice(words) for _ in range(4)),
             "score": rnd.random(), "tags": [rnd.choice(words) for _ in range(3)],
             "active": rnd.random() < 0.5}
        s = json.dumps(d, ensure_ascii=False)
        items.append(s)
        size += len(s.encode()) + 2
    return ("[" + ",\n".join(items) + "]").encode()


def make_binary(n_bytes, seed=2):
    rnd = random.Random(seed)
    # bitmap-like: runs of bytes with noise, compressible but not trivially
    out = bytearray()
    while len(out) < n_bytes:
        out += bytes([rnd.randrange(256)]) * rnd.randrange(1, 40)
        out += rnd.randbytes(rnd.randrange(0, 8))
    return bytes(out[:n_bytes])


JSON_DATA = make_json(300 * 1024)
BIN_DATA = make_binary(300 * 1024)


def utf8_slices(data, length, count):
    """`count` consecutive valid-UTF-8 slices of about `length` bytes each."""
    out = []
    pos = 0
    for _ in range(count):
        if pos + length > len(data):
            pos = 0
        end = pos + length
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end += 1
        out.append(data[pos:end])
        pos = end
    return out


def run_echo(c, opcode, messages, frag=None, window_check=False):
    for m in messages:
        c.send_compressed(opcode, m, frag_size=frag)
        op, data = c.recv_message(timeout=20, window_check=window_check and len(m) <= 8192)
        assert op == opcode
        assert data == m, "echo differs (len %d vs %d)" % (len(data), len(m))
    c.close_normally()


OFFERS_13 = {
    "13.1": [BASE],
    "13.2": [BASE + "; server_no_context_takeover"],
    "13.3": [BASE + "; server_max_window_bits=8"],
    "13.4": [BASE + "; server_max_window_bits=15"],
    "13.5": [BASE + "; server_no_context_takeover; server_max_window_bits=8"],
    "13.6": [BASE + "; server_no_context_takeover; server_max_window_bits=15"],
    "13.7": [BASE + "; server_no_context_takeover; server_max_window_bits=8",
             BASE + "; server_no_context_takeover", BASE],
}
SIZES = [16, 64, 256, 1024, 4096, 16384, 65536, 131072]
AUTOFRAG = [(8192, 256), (131072, 1024), (131072, 32768)]


@pytest.mark.parametrize("size", SIZES)
def test_12_1_text_default_offer(server, size):
    c = connect_deflate(server, [BASE])
    try:
        run_echo(c, OP_TEXT, utf8_slices(JSON_DATA, size, 20))
    finally:
        c.close()


@pytest.mark.parametrize("size", SIZES)
def test_12_2_binary_default_offer(server, size):
    c = connect_deflate(server, [BASE])
    try:
        msgs = [BIN_DATA[(i * size) % len(BIN_DATA):][:size] for i in range(20)]
        msgs = [m.ljust(size, b"\x00") for m in msgs]
        run_echo(c, OP_BINARY, msgs)
    finally:
        c.close()


@pytest.mark.parametrize("size,frag", AUTOFRAG, ids=["%d-frag%d" % a for a in AUTOFRAG])
def test_12_x_autofragmented(server, size, frag):
    c = connect_deflate(server, [BASE])
    try:
        run_echo(c, OP_TEXT, utf8_slices(JSON_DATA, size, 10), frag=frag)
    finally:
        c.close()


@pytest.mark.parametrize("case", sorted(OFFERS_13))
@pytest.mark.parametrize("size", [16, 256, 4096, 65536, 131072])
def test_13_offers(server, case, size):
    offers = OFFERS_13[case]
    c = connect_deflate(server, offers)
    try:
        run_echo(c, OP_TEXT, utf8_slices(JSON_DATA, size, 15),
                 window_check=c.deflate.sbits < 15)
    finally:
        c.close()


@pytest.mark.parametrize("case", sorted(OFFERS_13))
def test_13_offers_autofragmented(server, case):
    c = connect_deflate(server, OFFERS_13[case])
    try:
        run_echo(c, OP_TEXT, utf8_slices(JSON_DATA, 32768, 8), frag=256)
    finally:
        c.close()


# ----------------------------------------------------------------------- negotiation details

def test_negotiation_plain_offer_gets_plain_response(server):
    c = server.connect(extensions="permessage-deflate")
    try:
        exts = parse_extensions(c.negotiated_extensions)
        assert exts and exts[0][0] == "permessage-deflate"
        assert "client_max_window_bits" not in exts[0][1]  # not offered: must not appear
    finally:
        c.close()


def test_negotiation_no_offer_no_extension(server):
    c = server.connect()
    try:
        assert c.negotiated_extensions is None
    finally:
        c.close()


@pytest.mark.parametrize("offer", [
    "permessage-deflate; foo=1",
    "permessage-deflate; client_max_window_bits=7",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "x-webkit-deflate-frame",
])
def test_negotiation_unacceptable_offer_is_declined_not_failed(server, offer):
    c = server.connect(extensions=offer)
    try:
        assert c.negotiated_extensions is None
        c.send_text(b"still works")
        assert c.recv_message() == (OP_TEXT, b"still works")
    finally:
        c.close()


def test_negotiation_falls_back_to_second_offer(server):
    offers = ["permessage-deflate; foo", "permessage-deflate; server_no_context_takeover"]
    c = connect_deflate(server, offers)
    try:
        assert c.deflate.snct
        run_echo(c, OP_TEXT, [b"hello hello hello"] * 3)
    finally:
        c.close()


@pytest.mark.parametrize("bits", [9, 10, 12, 15])
def test_server_max_window_bits_is_honoured(server, bits):
    c = connect_deflate(server, ["permessage-deflate; server_max_window_bits=%d" % bits])
    try:
        assert c.deflate.sbits <= bits
        # a random 3000-byte block repeated: with a large window the repeat becomes one
        # back-reference of distance 3000, which is illegal for windows below 2^12
        block = os.urandom(1500).hex().encode()
        msg = block + block
        c.send_compressed(OP_TEXT, msg)
        assert c.recv_message(window_check=True) == (OP_TEXT, msg)
        c.close_normally()
    finally:
        c.close()


def test_server_no_context_takeover_each_message_standalone(server):
    c = connect_deflate(server, ["permessage-deflate; server_no_context_takeover"])
    try:
        assert c.deflate.snct
        msg = b"The quick brown fox jumps over the lazy dog. " * 20
        for _ in range(5):
            c.send_compressed(OP_TEXT, msg)
            # Deflate(snct) inflates each message with a fresh decompressor: this fails if the
            # server referenced the previous message
            assert c.recv_message() == (OP_TEXT, msg)
        c.close_normally()
    finally:
        c.close()


def test_server_context_takeover_shrinks_repeated_messages(server):
    c = connect_deflate(server, ["permessage-deflate"])
    try:
        msg = os.urandom(2000).hex().encode()
        sizes = []
        for _ in range(3):
            c.send_compressed(OP_TEXT, msg)
            f = c.recv_frame()
            assert f.rsv & 4, "echo of a compressed message was not compressed"
            sizes.append(len(f.payload))
            assert c.deflate.decompress(f.payload) == msg
        # the 2nd and 3rd messages reuse the 1st as dictionary
        assert sizes[1] < sizes[0] // 4, sizes
        c.close_normally()
    finally:
        c.close()


def test_client_context_takeover_is_supported(server):
    # the client keeps its compression context: message 2 is a back-reference into message 1
    c = connect_deflate(server, ["permessage-deflate"])
    try:
        assert not c.deflate.cnct
        msg = os.urandom(3000).hex().encode()
        for _ in range(3):
            c.send_compressed(OP_TEXT, msg)
            assert c.recv_message() == (OP_TEXT, msg)
        c.close_normally()
    finally:
        c.close()


def test_client_no_context_takeover_accepted(server):
    c = connect_deflate(server, ["permessage-deflate; client_no_context_takeover"])
    try:
        c.deflate.cnct = True
        msg = b"abcabcabc" * 100
        for _ in range(3):
            c.send_compressed(OP_BINARY, msg)
            assert c.recv_message() == (OP_BINARY, msg)
        c.close_normally()
    finally:
        c.close()


@pytest.mark.parametrize("bits", [9, 11, 15])
def test_client_max_window_bits_value(server, bits):
    offer = "permessage-deflate; client_max_window_bits=%d" % bits
    c = connect_deflate(server, [offer])
    try:
        params = parse_extensions(c.negotiated_extensions)[0][1]
        if "client_max_window_bits" in params:
            assert int(params["client_max_window_bits"]) <= bits
        c.deflate.cbits = min(bits, c.deflate.cbits)
        msg = os.urandom(5000).hex().encode()
        for _ in range(3):
            c.send_compressed(OP_TEXT, msg)
            assert c.recv_message() == (OP_TEXT, msg)
        c.close_normally()
    finally:
        c.close()


def test_client_max_window_bits_without_value(server):
    c = connect_deflate(server, ["permessage-deflate; client_max_window_bits"])
    try:
        params = parse_extensions(c.negotiated_extensions)[0][1]
        if "client_max_window_bits" in params:
            c.deflate.cbits = max(9, int(params["client_max_window_bits"]))
        msg = os.urandom(3000).hex().encode()
        for _ in range(2):
            c.send_compressed(OP_TEXT, msg)
            assert c.recv_message() == (OP_TEXT, msg)
        c.close_normally()
    finally:
        c.close()


# --------------------------------------------------------------------- frames on deflate conns

@pytest.fixture
def dws(server):
    c = connect_deflate(server, ["permessage-deflate"])
    yield c
    c.close()


def test_uncompressed_message_on_deflate_connection(dws):
    dws.send_text(b"plain text")
    assert dws.recv_message() == (OP_TEXT, b"plain text")
    assert not dws.last_compressed
    dws.close_normally()


def test_compressed_echo_is_compressed(dws):
    dws.send_compressed(OP_TEXT, b"compress me " * 10)
    assert dws.recv_message() == (OP_TEXT, b"compress me " * 10)
    assert dws.last_compressed
    dws.close_normally()


def test_empty_compressed_messages(dws):
    # b"\x00" is an empty stored block (RFC 7692 §7.2.3.6). (A zero-length RSV1 payload is not
    # used: with the 00 00 ff ff trailer it is an incomplete stored-block header.)
    dws.send_frame(OP_TEXT, b"\x00", rsv=RSV1)
    assert dws.recv_message() == (OP_TEXT, b"")
    dws.send_frame(OP_BINARY, b"\x00", rsv=RSV1)
    assert dws.recv_message() == (OP_BINARY, b"")
    dws.send_compressed(OP_TEXT, b"")
    assert dws.recv_message() == (OP_TEXT, b"")
    dws.send_compressed(OP_TEXT, b"after empties")
    assert dws.recv_message() == (OP_TEXT, b"after empties")
    dws.close_normally()


def test_compressed_fragments_with_ping_between(dws):
    comp = dws.deflate.compress(b"fragmented and compressed " * 50)
    half = len(comp) // 2
    dws.send_frame(OP_TEXT, comp[:half], fin=False, rsv=RSV1)
    dws.send_frame(OP_PING, b"in between")
    dws.send_frame(OP_CONT, comp[half:], fin=True)
    assert dws.recv_message() == (OP_PONG, b"in between")
    assert dws.recv_message() == (OP_TEXT, b"fragmented and compressed " * 50)
    dws.close_normally()


def test_rsv1_on_continuation_frame_is_protocol_error(dws):
    comp = dws.deflate.compress(b"hello world, hello world")
    dws.send_frame(OP_TEXT, comp[:5], fin=False, rsv=RSV1)
    dws.send_frame(OP_CONT, comp[5:], fin=True, rsv=RSV1)
    dws.expect_close(1002)


def test_rsv1_on_control_frame_is_protocol_error(dws):
    dws.send_frame(OP_PING, b"x", rsv=RSV1)
    dws.expect_close(1002)


def test_rsv2_on_deflate_connection_is_protocol_error(dws):
    dws.send_frame(OP_TEXT, b"x", rsv=2)
    dws.expect_close(1002)


def test_compressed_invalid_utf8_is_1007(dws):
    dws.send_compressed(OP_TEXT, "κόσμε".encode() + b"\xed\xa0\x80edited")
    dws.expect_close(1007)


def test_corrupt_deflate_stream_fails_connection(dws):
    dws.send_frame(OP_BINARY, b"\xff\xff\xff\xff\xff\xff", rsv=RSV1)
    dws.expect_close([1002, 1007])


def test_deflate_bomb_is_1009(dws):
    # 80 MiB of zeros compress to ~80 KiB; echo's package_max_length is 64 MiB
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    z = bytes(1 << 20)
    out = b"".join(comp.compress(z) for _ in range(80)) + comp.flush(zlib.Z_SYNC_FLUSH)
    dws.send_frame(OP_BINARY, out[:-4], rsv=RSV1)
    dws.expect_close(1009, timeout=15)


def test_rsv1_without_negotiation_is_protocol_error(ws):
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = comp.compress(b"hello") + comp.flush(zlib.Z_SYNC_FLUSH)
    ws.send_frame(OP_TEXT, data[:-4], rsv=RSV1)
    ws.expect_close(1002)
