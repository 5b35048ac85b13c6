"""Autobahn 6.x: UTF-8 handling of text messages, including fail-fast (6.4.x)."""

import time

import pytest

from wsclient import OP_CONT, OP_TEXT, encode_frame, mask_bytes

import struct
import os


def is_valid(b):
    try:
        b.decode("utf-8", "strict")
        return True
    except UnicodeDecodeError:
        return False


KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"  # "κόσμε" with U+1F79
assert len(KOSME) == 11

# (case family, bytes) — the UTF-8 decoder stress test (Markus Kuhn) as used by Autobahn 6.5-6.23
SEQUENCES = [("6.5", KOSME)]
SEQUENCES += [("6.6", KOSME[:i]) for i in range(1, len(KOSME) + 1)]
SEQUENCES += [("6.7", b) for b in [b"\x00", b"\xc2\x80", b"\xe0\xa0\x80", b"\xf0\x90\x80\x80"]]
SEQUENCES += [("6.8", b) for b in [b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80"]]
SEQUENCES += [("6.9", b) for b in [b"\x7f", b"\xdf\xbf", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf"]]
SEQUENCES += [("6.10", b) for b in [b"\xf7\xbf\xbf\xbf", b"\xfb\xbf\xbf\xbf\xbf",
                                    b"\xfd\xbf\xbf\xbf\xbf\xbf"]]
SEQUENCES += [("6.11", b) for b in [b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xef\xbf\xbd",
                                    b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80"]]
SEQUENCES += [("6.12", b) for b in [b"\x80", b"\xbf", b"\x80\xbf", b"\x80\xbf\x80",
                                    b"\x80\xbf\x80\xbf", b"\x80\xbf\x80\xbf\x80",
                                    b"\x80\xbf\x80\xbf\x80\xbf", bytes(range(0x80, 0xc0))]]
SEQUENCES += [("6.13", bytes(sum(([c, 0x20] for c in range(a, b)), [])))
              for a, b in [(0xc0, 0xe0), (0xe0, 0xf0), (0xf0, 0xf8), (0xf8, 0xfc), (0xfc, 0xfe)]]
TRUNC = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80", b"\xfc\x80\x80\x80\x80",
         b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
SEQUENCES += [("6.14", b) for b in TRUNC]
SEQUENCES += [("6.15", b"".join(TRUNC))]
SEQUENCES += [("6.16", b) for b in [b"\xfe", b"\xff", b"\xfe\xfe\xff\xff"]]
SEQUENCES += [("6.17", b) for b in [b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",
                                    b"\xf8\x80\x80\x80\xaf", b"\xfc\x80\x80\x80\x80\xaf"]]
SEQUENCES += [("6.18", b) for b in [b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf",
                                    b"\xf8\x87\xbf\xbf\xbf", b"\xfc\x83\xbf\xbf\xbf\xbf"]]
SEQUENCES += [("6.19", b) for b in [b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80",
                                    b"\xf8\x80\x80\x80\x80", b"\xfc\x80\x80\x80\x80\x80"]]
SEQUENCES += [("6.20", b) for b in [b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80",
                                    b"\xed\xaf\xbf", b"\xed\xb0\x80", b"\xed\xbe\x80",
                                    b"\xed\xbf\xbf"]]
SEQUENCES += [("6.21", b) for b in [b"\xed\xa0\x80\xed\xb0\x80", b"\xed\xa0\x80\xed\xbf\xbf",
                                    b"\xed\xad\xbf\xed\xb0\x80", b"\xed\xad\xbf\xed\xbf\xbf",
                                    b"\xed\xae\x80\xed\xb0\x80", b"\xed\xae\x80\xed\xbf\xbf",
                                    b"\xed\xaf\xbf\xed\xb0\x80", b"\xed\xaf\xbf\xed\xbf\xbf"]]
SEQUENCES += [("6.22", b) for b in [b"\xef\xbf\xbe", b"\xef\xbf\xbf", b"\xf0\x9f\xbf\xbe",
                                    b"\xf0\x9f\xbf\xbf", b"\xf4\x8f\xbf\xbe", b"\xf4\x8f\xbf\xbf",
                                    b"\xef\xb7\x90", b"\xef\xb7\xaf"]]
SEQUENCES += [("6.23", b) for b in [b"\xef\xbf\xbd", b"\x65\x64\x69\x74\x65\x64",
                                    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"]]

IDS = ["%s-%s" % (fam, b.hex()[:24]) for fam, b in SEQUENCES]


def _send_ignoring_reset(ws, data, **kw):
    try:
        ws.send_raw(data, **kw)
    except OSError:
        pass


@pytest.mark.parametrize("fam,payload", SEQUENCES, ids=IDS)
def test_6_x_utf8_single_frame(ws, fam, payload):
    ws.send_frame(OP_TEXT, payload)
    if is_valid(payload):
        assert ws.recv_message() == (OP_TEXT, payload)
        ws.close_normally()
    else:
        ws.expect_close(1007)


@pytest.mark.parametrize("fam,payload", SEQUENCES, ids=IDS)
def test_6_x_utf8_one_octet_per_frame(ws, fam, payload):
    frames = [encode_frame(OP_TEXT if i == 0 else OP_CONT, payload[i:i + 1],
                           fin=(i == len(payload) - 1)) for i in range(len(payload))]
    _send_ignoring_reset(ws, b"".join(frames))
    if is_valid(payload):
        assert ws.recv_message() == (OP_TEXT, payload)
        ws.close_normally()
    else:
        ws.expect_close(1007)


def test_6_1_1_empty_text(ws):
    ws.send_frame(OP_TEXT, b"")
    assert ws.recv_message() == (OP_TEXT, b"")
    ws.close_normally()


def test_6_1_2_fragmented_empty_text(ws):
    ws.send_raw(encode_frame(OP_TEXT, b"", fin=False) + encode_frame(OP_CONT, b"", fin=False)
                + encode_frame(OP_CONT, b"", fin=True))
    assert ws.recv_message() == (OP_TEXT, b"")
    ws.close_normally()


def test_6_1_3_empty_fragments_around_content(ws):
    ws.send_raw(encode_frame(OP_TEXT, b"", fin=False) + encode_frame(OP_CONT, b"middle frame payload", fin=False)
                + encode_frame(OP_CONT, b"", fin=True))
    assert ws.recv_message() == (OP_TEXT, b"middle frame payload")
    ws.close_normally()


HELLO = "Hello-µ@ßöäüàá-UTF-8!!".encode()


def test_6_2_1_valid_utf8_one_frame(ws):
    ws.send_frame(OP_TEXT, HELLO)
    assert ws.recv_message() == (OP_TEXT, HELLO)
    ws.close_normally()


def test_6_2_2_valid_utf8_two_fragments_at_code_point_boundary(ws):
    ws.send_raw(encode_frame(OP_TEXT, HELLO[:12], fin=False) + encode_frame(OP_CONT, HELLO[12:]))
    assert ws.recv_message() == (OP_TEXT, HELLO)
    ws.close_normally()


def test_6_2_3_valid_utf8_one_octet_per_frame(ws):
    frames = [encode_frame(OP_TEXT if i == 0 else OP_CONT, HELLO[i:i + 1], fin=(i == len(HELLO) - 1))
              for i in range(len(HELLO))]
    ws.send_raw(b"".join(frames))
    assert ws.recv_message() == (OP_TEXT, HELLO)
    ws.close_normally()


def test_6_2_4_valid_utf8_fragmented_inside_code_points(ws):
    p = KOSME
    frames = [encode_frame(OP_TEXT if i == 0 else OP_CONT, p[i:i + 1], fin=(i == len(p) - 1))
              for i in range(len(p))]
    ws.send_raw(b"".join(frames))
    assert ws.recv_message() == (OP_TEXT, p)
    ws.close_normally()


def test_6_3_1_invalid_utf8_one_frame(ws):
    p = KOSME + b"\xed\xa0\x80" + b"edited"
    ws.send_frame(OP_TEXT, p)
    ws.expect_close(1007)


def test_6_3_2_invalid_utf8_one_octet_per_frame(ws):
    p = KOSME + b"\xed\xa0\x80" + b"edited"
    frames = [encode_frame(OP_TEXT if i == 0 else OP_CONT, p[i:i + 1], fin=(i == len(p) - 1))
              for i in range(len(p))]
    _send_ignoring_reset(ws, b"".join(frames))
    ws.expect_close(1007)


# ---------------------------------------------------------------------------- fail fast (6.4.x)
# Autobahn: "The first frame/chop is accepted, we expect to timeout on the first wait. The 2nd
# frame/chop should be rejected immediately (fail fast on UTF-8)." Strict OK only when the
# server fails the connection before the 3rd part is sent (1 s after the 2nd).

P1 = KOSME
P2 = b"\xf4\x90\x80\x80"  # U+110000: invalid at its 2nd byte (0x90)
P3 = b"edited"
PAYLOAD = P1 + P2 + P3
WAIT = 1.0
FAIL_FAST = 0.9


def test_6_4_1_fail_fast_in_second_frame(ws):
    ws.send_frame(OP_TEXT, P1, fin=False)
    ws.expect_nothing(WAIT)
    ws.send_frame(OP_CONT, P2, fin=False)
    ws.expect_close(1007, timeout=FAIL_FAST, reply=False)


def test_6_4_2_fail_fast_on_single_byte_frame(ws):
    ws.send_frame(OP_TEXT, PAYLOAD[:12], fin=False)  # ends with 0xf4, a valid prefix
    ws.expect_nothing(WAIT)
    ws.send_frame(OP_CONT, PAYLOAD[12:13], fin=False)  # 0x90 makes it invalid
    ws.expect_close(1007, timeout=FAIL_FAST, reply=False)


def _frame_header(n):
    # masked text frame header with FIN for an n-byte payload, plus its key
    key = os.urandom(4)
    if n < 126:
        hdr = struct.pack("!BB", 0x81, 0x80 | n)
    else:
        hdr = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    return hdr + key, key


def test_6_4_3_fail_fast_in_second_chop_of_one_frame(ws):
    hdr, key = _frame_header(len(PAYLOAD))
    masked = mask_bytes(key, PAYLOAD)
    ws.send_raw(hdr + masked[:len(P1)])
    ws.expect_nothing(WAIT)
    ws.send_raw(masked[len(P1):len(P1) + len(P2)])
    ws.expect_close(1007, timeout=FAIL_FAST, reply=False)


def test_6_4_4_fail_fast_on_single_byte_chop_of_one_frame(ws):
    hdr, key = _frame_header(len(PAYLOAD))
    masked = mask_bytes(key, PAYLOAD)
    ws.send_raw(hdr + masked[:12])
    ws.expect_nothing(WAIT)
    ws.send_raw(masked[12:13])
    ws.expect_close(1007, timeout=FAIL_FAST, reply=False)


def test_6_4_x_fail_fast_large_frame_invalid_early(ws):
    # a 1 MiB frame whose 10th byte is invalid: the server must not wait for the whole frame
    payload = b"a" * 9 + b"\xff" + b"a" * (1 << 20)
    key = os.urandom(4)
    hdr = struct.pack("!BBQ", 0x81, 0x80 | 127, len(payload)) + key
    ws.send_raw(hdr + mask_bytes(key, payload[:100]))
    ws.expect_close(1007, timeout=FAIL_FAST, reply=False)


def test_6_x_invalid_utf8_after_valid_messages(ws):
    for i in range(3):
        ws.send_text("ok %d ✓" % i)
        assert ws.recv_message() == (OP_TEXT, ("ok %d ✓" % i).encode())
    ws.send_frame(OP_TEXT, b"\xc3\x28")
    ws.expect_close(1007)
