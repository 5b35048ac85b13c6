"""Autobahn 3.x (reserved bits) and 4.x (reserved opcodes): the server must fail the
connection with 1002 and must not answer anything sent after the bad frame."""

import pytest

from wsclient import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, encode_frame


def test_3_1_text_with_rsv1(ws):
    # no extension negotiated, so RSV1 is illegal
    ws.send_frame(OP_TEXT, b"Hello, world!", rsv=1 << 2)
    ws.expect_close(1002)


def test_3_2_rsv2_after_valid_text_then_ping(ws):
    ws.send_text(b"Hello, world!")
    ws.send_frame(OP_TEXT, b"Hello, world!", rsv=2)
    ws.send_frame(OP_PING, b"")
    assert ws.recv_message() == (OP_TEXT, b"Hello, world!")
    ws.expect_close(1002)  # and no pong before it


def test_3_3_rsv3_frame_by_frame(ws):
    ws.send_text(b"Hello, world!")
    assert ws.recv_message() == (OP_TEXT, b"Hello, world!")
    ws.send_frame(OP_TEXT, b"Hello, world!", rsv=3)
    ws.send_frame(OP_PING, b"")
    ws.expect_close(1002)


def test_3_4_rsv4_in_octet_chops(ws):
    data = (encode_frame(OP_TEXT, b"Hello, world!")
            + encode_frame(OP_TEXT, b"Hello, world!", rsv=4)
            + encode_frame(OP_PING, b""))
    try:
        ws.send_raw(data, chop=1, delay=0.001)
    except OSError:
        pass  # the server may already have closed
    assert ws.recv_message() == (OP_TEXT, b"Hello, world!")
    ws.expect_close(1002)


def test_3_5_binary_with_rsv5(ws):
    ws.send_frame(OP_BINARY, bytes(range(256)) * 4, rsv=5)
    ws.expect_close(1002)


def test_3_6_ping_with_rsv6(ws):
    ws.send_frame(OP_PING, b"Hello, world!", rsv=6)
    ws.expect_close(1002)


def test_3_7_close_with_rsv7(ws):
    ws.send_frame(OP_CLOSE, b"", rsv=7)
    ws.expect_close(1002)


NON_CONTROL = [3, 4, 5, 6, 7]
CONTROL = [0xB, 0xC, 0xD, 0xE, 0xF]


@pytest.mark.parametrize("op", NON_CONTROL, ids=["4.1.1-op%d" % o for o in NON_CONTROL])
def test_4_1_1_reserved_non_control_opcode(ws, op):
    ws.send_frame(op, b"")
    ws.expect_close(1002)


@pytest.mark.parametrize("op", NON_CONTROL)
def test_4_1_x_reserved_non_control_opcode_with_payload_after_text(ws, op):
    # 4.1.2-4.1.5: valid text, reserved-opcode frame (with payload), ping
    ws.send_text(b"Hello, world!")
    ws.send_frame(op, b"reserved opcode payload")
    ws.send_frame(OP_PING, b"")
    assert ws.recv_message() == (OP_TEXT, b"Hello, world!")
    ws.expect_close(1002)


@pytest.mark.parametrize("op", CONTROL, ids=["4.2.1-op%#x" % o for o in CONTROL])
def test_4_2_1_reserved_control_opcode(ws, op):
    ws.send_frame(op, b"")
    ws.expect_close(1002)


@pytest.mark.parametrize("op", CONTROL)
def test_4_2_x_reserved_control_opcode_after_text_in_chops(ws, op):
    data = (encode_frame(OP_TEXT, b"Hello, world!") + encode_frame(op, b"reserved")
            + encode_frame(OP_PING, b""))
    try:
        ws.send_raw(data, chop=1, delay=0.001)
    except OSError:
        pass
    assert ws.recv_message() == (OP_TEXT, b"Hello, world!")
    ws.expect_close(1002)
