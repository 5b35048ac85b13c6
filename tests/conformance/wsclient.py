"""A small raw-socket WebSocket client (RFC 6455 + RFC 7692) for conformance tests.

It deliberately does not use any WebSocket library: tests need to send malformed frames,
split frames across TCP writes with delays, and observe exactly what the server answers
(close code) and when it closes the TCP connection.
"""

import base64
import hashlib
import os
import socket
import struct
import time
import zlib

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

RSV1 = 0x4
RSV2 = 0x2
RSV3 = 0x1

DEFAULT_TIMEOUT = 5.0
# How soon the server must close TCP after the closing handshake (Autobahn's killAfter(1)).
TCP_CLOSE_TIMEOUT = 1.0


class ConnectionClosed(Exception):
    """The server closed the TCP connection (EOF or reset)."""


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "payload", "masked")

    def __init__(self, fin, rsv, opcode, payload, masked=False):
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.payload = payload
        self.masked = masked

    @property
    def close_code(self):
        assert self.opcode == OP_CLOSE
        if len(self.payload) >= 2:
            return struct.unpack("!H", self.payload[:2])[0]
        return None

    @property
    def close_reason(self):
        return self.payload[2:]

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return "Frame(fin=%s rsv=%d op=%#x len=%d payload=%r)" % (
            self.fin, self.rsv, self.opcode, len(self.payload), p)


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def mask_bytes(key, data):
    if not data:
        return b""
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, masking_key=None,
                 length_override=None):
    """Encodes one frame. `length_override` writes a different length in the header."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    n = len(payload) if length_override is None else length_override
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        key = masking_key if masking_key is not None else os.urandom(4)
        return hdr + key + mask_bytes(key, payload)
    return hdr + payload


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class Deflate:
    """Client side of permessage-deflate."""

    def __init__(self, client_max_window_bits=15, server_max_window_bits=15,
                 client_no_context_takeover=False, server_no_context_takeover=False):
        self.cbits = client_max_window_bits
        self.sbits = server_max_window_bits
        self.cnct = client_no_context_takeover
        self.snct = server_no_context_takeover
        self._c = None
        self._d = None

    def compress(self, data):
        if self._c is None or self.cnct:
            self._c = zlib.compressobj(6, zlib.DEFLATED, -self.cbits)
        out = self._c.compress(data) + self._c.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(b"\x00\x00\xff\xff")
        return out[:-4]

    def decompress(self, data, window_check=False):
        """Inflates one message. With window_check, output is produced one byte per call so
        that zlib rejects any back-reference farther than the negotiated server window."""
        if self._d is None or self.snct:
            self._d = zlib.decompressobj(-max(self.sbits, 8))
        d = self._d
        if not window_check:
            return d.decompress(data + b"\x00\x00\xff\xff")
        out = []
        buf = data + b"\x00\x00\xff\xff"
        while True:
            chunk = d.decompress(buf, 1)
            out.append(chunk)
            buf = d.unconsumed_tail
            if not buf and not chunk:
                break
        return b"".join(out)


class WSClient:
    def __init__(self, sock, leftover=b"", deflate=None, response=None):
        self.sock = sock
        self.buf = bytearray(leftover)
        self.deflate = deflate
        self.response = response  # (status, headers dict lowercased, raw)
        self.eof = False
        self.last_compressed = False

    # ---------------------------------------------------------------- connect
    @staticmethod
    def raw_connect(host, port, timeout=DEFAULT_TIMEOUT):
        s = socket.create_connection((host, port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    @staticmethod
    def read_http_response(sock, timeout=DEFAULT_TIMEOUT):
        """Reads an HTTP response head (+ body per Content-Length). Returns
        (status, headers, body, leftover, raw_head)."""
        deadline = time.monotonic() + timeout
        data = b""
        while b"\r\n\r\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no HTTP response head within %.1fs: %r" % (timeout, data))
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ConnectionClosed("connection closed before response head: %r" % data)
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            v = v.strip()
            headers[k] = headers[k] + ", " + v if k in headers else v
        clen = int(headers.get("content-length", "0") or 0)
        if status != 101:
            while len(rest) < clen:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            body, rest = rest[:clen], rest[clen:]
        else:
            body = b""
        return status, headers, body, rest, head

    @classmethod
    def connect(cls, host, port, path="/", extensions=None, extra_headers=None,
                timeout=DEFAULT_TIMEOUT, expect_status=101):
        sock = cls.raw_connect(host, port, timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, host, port, key))
        if extensions:
            req += "Sec-WebSocket-Extensions: %s\r\n" % extensions
        for k, v in (extra_headers or []):
            req += "%s: %s\r\n" % (k, v)
        req += "\r\n"
        sock.sendall(req.encode())
        status, headers, body, rest, head = cls.read_http_response(sock, timeout)
        if expect_status is not None:
            assert status == expect_status, "handshake status %d: %r" % (status, head)
        if status == 101:
            assert headers.get("sec-websocket-accept") == accept_key(key), head
        c = cls(sock, rest, None, (status, headers, head))
        return c

    @property
    def negotiated_extensions(self):
        return self.response[1].get("sec-websocket-extensions")

    # ------------------------------------------------------------------- send
    def send_raw(self, data, chop=None, delay=0.0):
        """Sends bytes, optionally in chops of `chop` bytes with `delay` seconds between."""
        if not chop:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), chop):
            self.sock.sendall(data[i:i + chop])
            if delay:
                time.sleep(delay)

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, mask=True, chop=None,
                   delay=0.0, length_override=None):
        self.send_raw(encode_frame(opcode, payload, fin, rsv, mask, None, length_override),
                      chop, delay)

    def send_text(self, text, **kw):
        self.send_frame(OP_TEXT, text if isinstance(text, bytes) else text.encode(), **kw)

    def send_binary(self, data, **kw):
        self.send_frame(OP_BINARY, data, **kw)

    def send_close(self, code=None, reason=b"", **kw):
        self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

    def send_fragmented(self, opcode, payload, frag_size, rsv_first=0, chop=None, delay=0.0):
        """Sends one message as frames of at most frag_size payload bytes."""
        pieces = [payload[i:i + frag_size] for i in range(0, len(payload), frag_size)] or [b""]
        out = bytearray()
        for i, p in enumerate(pieces):
            out += encode_frame(opcode if i == 0 else OP_CONT, p, fin=(i == len(pieces) - 1),
                                rsv=rsv_first if i == 0 else 0)
        self.send_raw(bytes(out), chop, delay)

    def send_compressed(self, opcode, data, frag_size=None):
        assert self.deflate is not None
        comp = self.deflate.compress(data)
        if frag_size:
            self.send_fragmented(opcode, comp, frag_size, rsv_first=RSV1)
        else:
            self.send_frame(opcode, comp, rsv=RSV1)

    # ---------------------------------------------------------------- receive
    def _fill(self, n, deadline):
        while len(self.buf) < n:
            if self.eof:
                raise ConnectionClosed("EOF with %d/%d bytes buffered" % (len(self.buf), n))
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out waiting for data (%d/%d bytes)" % (len(self.buf), n))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(max(65536, n - len(self.buf)))
            except socket.timeout:
                raise TimeoutError("timed out waiting for data (%d/%d bytes)" % (len(self.buf), n))
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.eof = True
                raise ConnectionClosed("EOF with %d/%d bytes buffered" % (len(self.buf), n))
            self.buf += chunk

    def recv_frame(self, timeout=DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._fill(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            self._fill(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        masked = bool(b1 & 0x80)
        key = None
        if masked:
            self._fill(pos + 4, deadline)
            key = bytes(self.buf[pos:pos + 4])
            pos += 4
        self._fill(pos + n, deadline)
        payload = bytes(self.buf[pos:pos + n])
        del self.buf[:pos + n]
        if masked:
            payload = mask_bytes(key, payload)
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload, masked)

    def recv_message(self, timeout=DEFAULT_TIMEOUT, window_check=False):
        """Returns (opcode, data) of the next data message, reassembling fragments and
        inflating compressed messages. Control frames are returned as (opcode, payload)."""
        deadline = time.monotonic() + timeout
        first = None
        parts = []
        while True:
            f = self.recv_frame(max(0.01, deadline - time.monotonic()))
            assert not f.masked, "server frames must not be masked: %r" % f
            if f.opcode >= 0x8:
                assert f.fin and f.rsv == 0, "bad control frame from server: %r" % f
                if first is None:
                    return f.opcode, f.payload
                raise AssertionError("control frame %r in the middle of a message" % f)
            if first is None:
                assert f.opcode in (OP_TEXT, OP_BINARY), "unexpected frame %r" % f
                first = f
            else:
                assert f.opcode == OP_CONT, "expected continuation, got %r" % f
                assert f.rsv == 0, "RSV on continuation frame: %r" % f
            parts.append(f.payload)
            if f.fin:
                break
        data = b"".join(parts)
        self.last_compressed = bool(first.rsv & RSV1)
        if first.rsv & RSV1:
            assert self.deflate is not None, "compressed frame without negotiation: %r" % first
            data = self.deflate.decompress(data, window_check=window_check)
        else:
            assert first.rsv == 0, "unexpected RSV bits: %r" % first
        if first.opcode == OP_TEXT:
            data.decode("utf-8")  # server text must be valid UTF-8
        return first.opcode, data

    def expect_nothing(self, wait=0.5):
        """Asserts that no frame arrives within `wait` seconds (EOF is not allowed either)."""
        try:
            f = self.recv_frame(wait)
        except TimeoutError:
            return
        raise AssertionError("expected nothing, got %r" % f)

    def expect_close(self, codes, timeout=DEFAULT_TIMEOUT, allow_empty=False, reply=True):
        """Reads frames until a close frame; asserts that no data frame precedes it, that its
        code is in `codes` (a code or a list), replies with a close, and asserts that the
        server then closes the TCP connection. Returns the close frame."""
        if isinstance(codes, int):
            codes = [codes]
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self.recv_frame(max(0.01, deadline - time.monotonic()))
            except ConnectionClosed:
                raise AssertionError("server dropped TCP without sending a close frame "
                                     "(expected close code %s)" % codes)
            if f.opcode == OP_CLOSE:
                break
            raise AssertionError("expected close %s, got %r" % (codes, f))
        assert not f.masked and f.fin and f.rsv == 0
        code = f.close_code
        if code is None:
            assert allow_empty, "server close frame has no code; expected %s" % codes
        else:
            assert code in codes, "close code %d, expected %s (reason %r)" % (
                code, codes, f.close_reason)
            f.close_reason.decode("utf-8")
        assert len(f.payload) != 1
        if reply:
            try:
                self.send_close(code if code not in (None, 1005, 1006, 1015) else None)
            except OSError:
                pass
        # Autobahn drops the TCP connection itself 1 s after the closing handshake and then
        # scores the case non-strict ("It is preferred that the server close the TCP connection")
        self.expect_tcp_close(TCP_CLOSE_TIMEOUT)
        return f

    def expect_tcp_close(self, timeout=None):
        """Asserts that the server closes the TCP connection within `timeout` seconds, with
        no further frames."""
        if timeout is None:
            timeout = TCP_CLOSE_TIMEOUT
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("server did not close the TCP connection within %.1fs" % timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError("server did not close the TCP connection within %.1fs" % timeout)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.eof = True
            else:
                self.buf += chunk
        assert not self.buf, "data after the close frame: %r" % bytes(self.buf[:60])

    def close_normally(self, timeout=DEFAULT_TIMEOUT):
        """Client-initiated clean close: send 1000, expect a close 1000 (or empty) back and
        the server to close the TCP connection."""
        self.send_close(1000)
        f = self.recv_frame(timeout)
        assert f.opcode == OP_CLOSE, "expected close reply, got %r" % f
        assert f.close_code in (1000, None), f
        self.expect_tcp_close(TCP_CLOSE_TIMEOUT)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
