"""Autobahn 9.x (large messages, fragmented and chopped) and 10.x (auto-fragmentation)."""

import os
import struct
import time

import pytest

from wsclient import OP_BINARY, OP_CONT, OP_TEXT, encode_frame, mask_bytes

KIB = 1024
MIB = 1024 * 1024
BIG_TIMEOUT = 60


def _text(n):
    return (b"BAsd7&jh23" * (n // 10 + 1))[:n]


@pytest.mark.parametrize("n", [64 * KIB, 1 * MIB, 16 * MIB],
                         ids=["9.1.1-64K", "9.1.3-1M", "9.1.6-16M"])
def test_9_1_text_message(ws, n):
    p = _text(n)
    ws.send_text(p)
    assert ws.recv_message(timeout=BIG_TIMEOUT) == (OP_TEXT, p)
    ws.close_normally()


@pytest.mark.parametrize("n", [256 * KIB, 16 * MIB], ids=["9.2.2-256K", "9.2.6-16M"])
def test_9_2_binary_message(ws, n):
    p = bytes([0xFE]) * (n - 1024) + os.urandom(1024)
    ws.send_binary(p)
    assert ws.recv_message(timeout=BIG_TIMEOUT) == (OP_BINARY, p)
    ws.close_normally()


@pytest.mark.parametrize("frag", [64, 4 * KIB, 4 * MIB], ids=["9.3.1-64", "9.3.5-4K", "9.3.9-4M"])
def test_9_3_fragmented_text_4M(ws, frag):
    p = _text(4 * MIB)
    ws.send_fragmented(OP_TEXT, p, frag)
    assert ws.recv_message(timeout=BIG_TIMEOUT) == (OP_TEXT, p)
    ws.close_normally()


@pytest.mark.parametrize("frag", [256, 1 * MIB], ids=["9.4.2-256", "9.4.7-1M"])
def test_9_4_fragmented_binary_4M(ws, frag):
    p = os.urandom(4 * MIB)
    ws.send_fragmented(OP_BINARY, p, frag)
    assert ws.recv_message(timeout=BIG_TIMEOUT) == (OP_BINARY, p)
    ws.close_normally()


@pytest.mark.parametrize("chop", [64, 4 * KIB], ids=["9.5.1-64", "9.5.5-4K"])
def test_9_5_text_1M_in_chops(ws, chop):
    p = _text(1 * MIB)
    ws.send_frame(OP_TEXT, p, chop=chop)
    assert ws.recv_message(timeout=BIG_TIMEOUT) == (OP_TEXT, p)
    ws.close_normally()


def test_9_6_binary_1M_in_chops_of_128(ws):
    p = os.urandom(1 * MIB)
    ws.send_frame(OP_BINARY, p, chop=128)
    assert ws.recv_message(timeout=BIG_TIMEOUT) == (OP_BINARY, p)
    ws.close_normally()


@pytest.mark.parametrize("n", [0, 4096], ids=["9.7.1-0", "9.7.6-4096"])
def test_9_7_1000_text_round_trips(ws, n):
    p = _text(n)
    t0 = time.monotonic()
    for _ in range(1000):
        ws.send_text(p)
        assert ws.recv_message() == (OP_TEXT, p)
    assert time.monotonic() - t0 < 30
    ws.close_normally()


def test_9_8_1000_binary_pipelined(ws):
    msgs = [os.urandom(1024) for _ in range(1000)]
    ws.send_raw(b"".join(encode_frame(OP_BINARY, m) for m in msgs))
    for m in msgs:
        assert ws.recv_message(timeout=BIG_TIMEOUT) == (OP_BINARY, m)
    ws.close_normally()


def test_10_1_1_auto_fragmented_65536_in_1300_frames(ws):
    p = _text(65536)
    ws.send_fragmented(OP_TEXT, p, 1300)
    assert ws.recv_message() == (OP_TEXT, p)
    ws.close_normally()


def test_too_big_frame_header_is_1009_without_waiting_for_payload(ws):
    # echo sets package_max_length = 64 MiB: a frame announcing more must be refused at once
    n = 64 * MIB + 1
    key = os.urandom(4)
    hdr = struct.pack("!BBQ", 0x82, 0x80 | 127, n) + key
    ws.send_raw(hdr + mask_bytes(key, b"x" * 100))
    ws.expect_close(1009, timeout=3, reply=False)


def test_too_big_fragmented_message_is_1009(ws):
    # two 40 MiB fragments announced: the sum exceeds 64 MiB, refused at the 2nd header
    key = os.urandom(4)
    first = 40 * MIB
    ws.send_raw(struct.pack("!BBQ", 0x02, 0x80 | 127, first) + key)
    chunk = mask_bytes(key, b"\x00" * (4 * MIB))  # mask of zeros; key period 4 divides 4 MiB
    for _ in range(first // (4 * MIB)):
        ws.send_raw(chunk)
    ws.send_raw(struct.pack("!BBQ", 0x80, 0x80 | 127, 40 * MIB) + key)
    ws.expect_close(1009, timeout=10, reply=False)


def test_64bit_length_with_high_bit_set_is_protocol_error(ws):
    key = os.urandom(4)
    ws.send_raw(struct.pack("!BBQ", 0x82, 0x80 | 127, 1 << 63) + key)
    ws.expect_close([1002, 1009], reply=False)
