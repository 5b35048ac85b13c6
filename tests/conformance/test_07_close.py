"""Autobahn 7.x: closing handshake, close codes and reasons, data after close."""

import pytest

from wsclient import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, encode_frame, close_payload


def test_7_1_1_echo_then_close(ws):
    ws.send_text(b"Hello World!")
    assert ws.recv_message() == (OP_TEXT, b"Hello World!")
    ws.close_normally()


def test_7_1_2_close_twice(ws):
    ws.send_close(1000)
    ws.send_close(1000)
    f = ws.recv_frame()
    assert f.opcode == OP_CLOSE and f.close_code == 1000
    ws.expect_tcp_close()  # exactly one close frame, then TCP close


def test_7_1_3_ping_after_close_is_not_answered(ws):
    ws.send_close(1000)
    ws.send_frame(OP_PING, b"Hello World!")
    f = ws.recv_frame()
    assert f.opcode == OP_CLOSE and f.close_code == 1000
    ws.expect_tcp_close()  # no pong


def test_7_1_4_text_after_close_is_not_echoed(ws):
    ws.send_close(1000)
    ws.send_text(b"Hello World!")
    f = ws.recv_frame()
    assert f.opcode == OP_CLOSE and f.close_code == 1000
    ws.expect_tcp_close()


def test_7_1_5_fragment_close_fragment(ws):
    ws.send_frame(OP_TEXT, b"fragment1", fin=False)
    ws.send_close(1000)
    ws.send_frame(OP_CONT, b"fragment2", fin=True)
    f = ws.recv_frame()
    assert f.opcode == OP_CLOSE and f.close_code == 1000
    ws.expect_tcp_close()


def test_7_1_6_large_message_then_close_then_ping(ws):
    big = b"BAsd7&jh23" * 26214  # 256 KiB
    ws.send_text(big)
    ws.send_close(1000)
    ws.send_frame(OP_PING, b"Hello World!")
    # the echo may or may not be sent before the close; no pong after it
    f = ws.recv_frame(10)
    if f.opcode == OP_TEXT:
        while not f.fin:
            f = ws.recv_frame(10)
            assert f.opcode == OP_CONT
        f = ws.recv_frame(10)
    assert f.opcode == OP_CLOSE and f.close_code == 1000, f
    ws.expect_tcp_close()


def test_7_3_1_close_empty_payload(ws):
    ws.send_frame(OP_CLOSE, b"")
    f = ws.recv_frame()
    assert f.opcode == OP_CLOSE
    assert f.close_code in (None, 1000), f
    ws.expect_tcp_close()


def test_7_3_2_close_one_byte_payload(ws):
    ws.send_frame(OP_CLOSE, b"\x03")
    ws.expect_close(1002, reply=False)


def test_7_3_3_close_1000(ws):
    ws.send_close(1000)
    f = ws.recv_frame()
    assert f.opcode == OP_CLOSE and f.close_code == 1000
    ws.expect_tcp_close()


def test_7_3_4_close_1000_with_reason(ws):
    ws.send_close(1000, b"Hello World!")
    f = ws.recv_frame()
    assert f.opcode == OP_CLOSE and f.close_code == 1000
    ws.expect_tcp_close()


def test_7_3_5_close_1000_with_123_byte_reason(ws):
    ws.send_close(1000, b"*" * 123)
    f = ws.recv_frame()
    assert f.opcode == OP_CLOSE and f.close_code == 1000
    assert len(f.payload) <= 125
    ws.expect_tcp_close()


def test_7_3_6_close_with_124_byte_reason_is_protocol_error(ws):
    ws.send_close(1000, b"*" * 124)  # payload 126 bytes: control frame too long
    ws.expect_close(1002, reply=False)


def test_7_5_1_close_reason_invalid_utf8(ws):
    ws.send_frame(OP_CLOSE, close_payload(1000) + b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64")
    ws.expect_close(1007, reply=False)


VALID = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]


@pytest.mark.parametrize("code", VALID, ids=["7.7.%d-%d" % (i + 1, c) for i, c in enumerate(VALID)])
def test_7_7_valid_close_codes(ws, code):
    ws.send_close(code)
    f = ws.recv_frame()
    assert f.opcode == OP_CLOSE, f
    assert f.close_code in (1000, code), f
    ws.expect_tcp_close()


@pytest.mark.parametrize("code", [1012, 1013, 1014])
def test_7_7_x_iana_registered_close_codes(ws, code):
    # registered after RFC 6455 (service restart, try again later, bad gateway); newer Autobahn
    # versions accept them as valid.
    ws.send_close(code)
    f = ws.recv_frame()
    assert f.opcode == OP_CLOSE, f
    assert f.close_code in (1000, code), f
    ws.expect_tcp_close()


INVALID = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]


@pytest.mark.parametrize("code", INVALID, ids=["7.9.%d-%d" % (i + 1, c) for i, c in enumerate(INVALID)])
def test_7_9_invalid_close_codes(ws, code):
    ws.send_close(code)
    ws.expect_close(1002, reply=False)


@pytest.mark.parametrize("code", [5000, 65535], ids=["7.13.1-5000", "7.13.2-65535"])
def test_7_13_out_of_range_close_codes(ws, code):
    ws.send_close(code)
    ws.expect_close(1002, reply=False)


def test_7_x_server_does_not_echo_data_sent_together_with_close(ws):
    ws.send_raw(encode_frame(OP_CLOSE, close_payload(1001)) + encode_frame(OP_BINARY, b"late"))
    f = ws.recv_frame()
    assert f.opcode == OP_CLOSE and f.close_code in (1000, 1001)
    ws.expect_tcp_close()
