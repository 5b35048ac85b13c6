"""Autobahn 5.x: fragmentation, control frames interleaved, bad continuation sequences."""

import time

import pytest

from wsclient import (OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, encode_frame)


def test_5_1_fragmented_ping(ws):
    ws.send_frame(OP_PING, b"fragment1", fin=False)
    ws.send_frame(OP_CONT, b"fragment2", fin=True)
    ws.expect_close(1002)


def test_5_2_fragmented_pong(ws):
    ws.send_frame(OP_PONG, b"fragment1", fin=False)
    ws.send_frame(OP_CONT, b"fragment2", fin=True)
    ws.expect_close(1002)


@pytest.mark.parametrize("mode", ["one-write", "chops", "frame-by-frame"])
def test_5_3_to_5_5_text_in_two_fragments(ws, mode):
    data = encode_frame(OP_TEXT, b"fragment1", fin=False) + encode_frame(OP_CONT, b"fragment2")
    if mode == "one-write":
        ws.send_raw(data)
    elif mode == "chops":
        ws.send_raw(data, chop=1, delay=0.001)
    else:
        ws.send_frame(OP_TEXT, b"fragment1", fin=False)
        time.sleep(0.1)
        ws.send_frame(OP_CONT, b"fragment2")
    assert ws.recv_message() == (OP_TEXT, b"fragment1fragment2")
    ws.close_normally()


@pytest.mark.parametrize("mode", ["one-write", "chops", "frame-by-frame"])
def test_5_6_to_5_8_text_fragments_with_ping_between(ws, mode):
    frames = [encode_frame(OP_TEXT, b"fragment1", fin=False),
              encode_frame(OP_PING, b"pongme!"),
              encode_frame(OP_CONT, b"fragment2")]
    if mode == "one-write":
        ws.send_raw(b"".join(frames))
    elif mode == "chops":
        ws.send_raw(b"".join(frames), chop=1, delay=0.001)
    else:
        for f in frames:
            ws.send_raw(f)
            time.sleep(0.1)
    assert ws.recv_message() == (OP_PONG, b"pongme!")
    assert ws.recv_message() == (OP_TEXT, b"fragment1fragment2")
    ws.close_normally()


@pytest.mark.parametrize("mode", ["one-write", "chops", "frame-by-frame"])
def test_5_9_to_5_11_continuation_with_nothing_to_continue_fin(ws, mode):
    frames = [encode_frame(OP_CONT, b"non-continuation payload"),
              encode_frame(OP_TEXT, b"Hello, world!")]
    try:
        if mode == "one-write":
            ws.send_raw(b"".join(frames))
        elif mode == "chops":
            ws.send_raw(b"".join(frames), chop=1, delay=0.001)
        else:
            for f in frames:
                ws.send_raw(f)
                time.sleep(0.1)
    except OSError:
        pass
    ws.expect_close(1002)  # and no echo of "Hello, world!"


@pytest.mark.parametrize("mode", ["one-write", "chops", "frame-by-frame"])
def test_5_12_to_5_14_continuation_with_nothing_to_continue_nofin(ws, mode):
    frames = [encode_frame(OP_CONT, b"non-continuation payload", fin=False),
              encode_frame(OP_TEXT, b"Hello, world!")]
    try:
        if mode == "one-write":
            ws.send_raw(b"".join(frames))
        elif mode == "chops":
            ws.send_raw(b"".join(frames), chop=1, delay=0.001)
        else:
            for f in frames:
                ws.send_raw(f)
                time.sleep(0.1)
    except OSError:
        pass
    ws.expect_close(1002)


def test_5_15_continuation_after_finished_message(ws):
    frames = [encode_frame(OP_TEXT, b"fragment1", fin=False),
              encode_frame(OP_CONT, b"fragment2", fin=True),
              encode_frame(OP_CONT, b"fragment3", fin=False),
              encode_frame(OP_TEXT, b"fragment4", fin=True)]
    ws.send_raw(b"".join(frames))
    assert ws.recv_message() == (OP_TEXT, b"fragment1fragment2")
    ws.expect_close(1002)


@pytest.mark.parametrize("mode", ["one-write", "chops", "frame-by-frame"])
def test_5_16_to_5_17_repeated_bad_continuations(ws, mode):
    frames = []
    for _ in range(2):
        frames += [encode_frame(OP_CONT, b"fragment1", fin=False),
                   encode_frame(OP_TEXT, b"fragment2", fin=False),
                   encode_frame(OP_CONT, b"fragment3", fin=True)]
    try:
        if mode == "one-write":
            ws.send_raw(b"".join(frames))
        elif mode == "chops":
            ws.send_raw(b"".join(frames), chop=1, delay=0.001)
        else:
            for f in frames:
                ws.send_raw(f)
                time.sleep(0.05)
    except OSError:
        pass
    ws.expect_close(1002)


def test_5_18_new_text_message_inside_fragmented_message(ws):
    ws.send_frame(OP_TEXT, b"fragment1", fin=False)
    ws.send_frame(OP_TEXT, b"fragment2", fin=True)
    ws.expect_close(1002)


def test_5_18b_binary_start_inside_fragmented_text(ws):
    ws.send_frame(OP_TEXT, b"fragment1", fin=False)
    ws.send_frame(OP_BINARY, b"fragment2", fin=True)
    ws.expect_close(1002)


@pytest.mark.parametrize("chops", [False, True], ids=["5.19", "5.20"])
def test_5_19_5_20_fragments_with_pings_and_delays(ws, chops):
    def send(f):
        ws.send_raw(f, chop=1 if chops else None, delay=0.0005 if chops else 0)

    send(encode_frame(OP_TEXT, b"fragment1", fin=False))
    send(encode_frame(OP_CONT, b"fragment2", fin=False))
    send(encode_frame(OP_PING, b"pongme 1!"))
    assert ws.recv_message() == (OP_PONG, b"pongme 1!")
    time.sleep(1.0)
    send(encode_frame(OP_CONT, b"fragment3", fin=False))
    send(encode_frame(OP_PING, b"pongme 2!"))
    send(encode_frame(OP_CONT, b"fragment4", fin=False))
    assert ws.recv_message() == (OP_PONG, b"pongme 2!")
    time.sleep(1.0)
    send(encode_frame(OP_CONT, b"fragment5", fin=True))
    assert ws.recv_message() == (OP_TEXT, b"fragment1fragment2fragment3fragment4fragment5")
    ws.close_normally()


def test_5_x_binary_many_fragments_and_empty_fragments(ws):
    data = bytes(range(256)) * 40
    frames = [encode_frame(OP_BINARY, b"", fin=False)]
    for i in range(0, len(data), 1000):
        frames.append(encode_frame(OP_CONT, data[i:i + 1000], fin=False))
        frames.append(encode_frame(OP_CONT, b"", fin=False))
    frames.append(encode_frame(OP_CONT, b"", fin=True))
    ws.send_raw(b"".join(frames))
    assert ws.recv_message() == (OP_BINARY, data)
    ws.close_normally()


def test_5_x_close_inside_fragmented_message(ws):
    # 7.1.5-like: a close frame may be interleaved; the partial message is dropped
    ws.send_frame(OP_TEXT, b"fragment1", fin=False)
    ws.send_close(1000)
    f = ws.recv_frame()
    assert f.opcode == 0x8 and f.close_code == 1000, f
    try:
        ws.send_frame(OP_CONT, b"fragment2", fin=True)
    except OSError:
        pass
    ws.expect_tcp_close()
