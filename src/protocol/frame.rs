//! Frame header parsing/encoding (RFC 6455 §5.2), opcodes, Swoole flags and
//! the standalone `pack` / `unpack` helpers.

use super::error::ProtocolError;
use super::mask::apply_mask;

/// Frame opcode.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum OpCode {
    /// Continuation of a fragmented message.
    Continuation = 0,
    /// Text data (UTF-8).
    Text = 1,
    /// Binary data.
    Binary = 2,
    /// Connection close.
    Close = 8,
    /// Ping.
    Ping = 9,
    /// Pong.
    Pong = 10,
}

impl OpCode {
    /// The opcode for a raw 4-bit value, `None` for reserved values.
    pub fn from_u8(v: u8) -> Option<OpCode> {
        match v {
            0 => Some(OpCode::Continuation),
            1 => Some(OpCode::Text),
            2 => Some(OpCode::Binary),
            8 => Some(OpCode::Close),
            9 => Some(OpCode::Ping),
            10 => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// Close, Ping and Pong.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }

    /// Raw value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// Swoole `WEBSOCKET_OPCODE_CONTINUATION`.
pub const WEBSOCKET_OPCODE_CONTINUATION: u8 = 0;
/// Swoole `WEBSOCKET_OPCODE_TEXT`.
pub const WEBSOCKET_OPCODE_TEXT: u8 = 1;
/// Swoole `WEBSOCKET_OPCODE_BINARY`.
pub const WEBSOCKET_OPCODE_BINARY: u8 = 2;
/// Swoole `WEBSOCKET_OPCODE_CLOSE`.
pub const WEBSOCKET_OPCODE_CLOSE: u8 = 8;
/// Swoole `WEBSOCKET_OPCODE_PING`.
pub const WEBSOCKET_OPCODE_PING: u8 = 9;
/// Swoole `WEBSOCKET_OPCODE_PONG`.
pub const WEBSOCKET_OPCODE_PONG: u8 = 10;

/// Swoole flag bits (same values as `SWOOLE_WEBSOCKET_FLAG_*`).
pub const FLAG_FIN: u8 = 1;
/// Compress the payload (permessage-deflate) / the payload was compressed.
pub const FLAG_COMPRESS: u8 = 2;
/// RSV1 bit.
pub const FLAG_RSV1: u8 = 4;
/// RSV2 bit.
pub const FLAG_RSV2: u8 = 8;
/// RSV3 bit.
pub const FLAG_RSV3: u8 = 16;
/// MASK bit.
pub const FLAG_MASK: u8 = 32;

/// Swoole `websocket_status`: TCP connection, no handshake yet.
pub const WEBSOCKET_STATUS_CONNECTION: u8 = 1;
/// Swoole `websocket_status`: handshake in progress.
pub const WEBSOCKET_STATUS_HANDSHAKE: u8 = 2;
/// Swoole `websocket_status`: WebSocket established.
pub const WEBSOCKET_STATUS_ACTIVE: u8 = 3;
/// Swoole `websocket_status`: closing handshake in progress.
pub const WEBSOCKET_STATUS_CLOSING: u8 = 4;

/// Largest possible frame header (2 + 8 + 4).
pub const MAX_HEADER_LEN: usize = 14;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN bit.
    pub fin: bool,
    /// RSV1 bit (permessage-deflate "compressed").
    pub rsv1: bool,
    /// RSV2 bit.
    pub rsv2: bool,
    /// RSV3 bit.
    pub rsv3: bool,
    /// Raw 4-bit opcode.
    pub opcode: u8,
    /// Masking key if the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub payload_len: u64,
    /// Length of the header in bytes (2..=14).
    pub header_len: usize,
}

/// Parses a frame header from the start of `buf`.
///
/// `Ok(None)` = need more bytes. Errors only for things decidable from the
/// header alone (non-minimal length encoding is allowed; a 64-bit length with
/// the MSB set is an error).
pub fn parse_header(buf: &[u8]) -> Result<Option<FrameHeader>, ProtocolError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let b0 = buf[0];
    let b1 = buf[1];
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7f;
    let (payload_len, mut pos) = match len7 {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let l = u64::from_be_bytes(b);
            if l & (1 << 63) != 0 {
                return Err(ProtocolError::InvalidLength);
            }
            (l, 10)
        }
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        if buf.len() < pos + 4 {
            return Ok(None);
        }
        let m = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
        pos += 4;
        Some(m)
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        rsv2: b0 & 0x20 != 0,
        rsv3: b0 & 0x10 != 0,
        opcode: b0 & 0x0f,
        mask,
        payload_len,
        header_len: pos,
    }))
}

fn encode_header_bits(
    out: &mut [u8; 14],
    b0: u8,
    payload_len: usize,
    mask: Option<[u8; 4]>,
) -> usize {
    out[0] = b0;
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    let mut pos;
    if payload_len < 126 {
        out[1] = mbit | payload_len as u8;
        pos = 2;
    } else if payload_len <= 0xffff {
        out[1] = mbit | 126;
        out[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        pos = 4;
    } else {
        out[1] = mbit | 127;
        out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        pos = 10;
    }
    if let Some(m) = mask {
        out[pos..pos + 4].copy_from_slice(&m);
        pos += 4;
    }
    pos
}

/// Writes a header (minimal length encoding) into `out` and returns its length.
pub fn encode_header(
    out: &mut [u8; 14],
    fin: bool,
    rsv1: bool,
    opcode: u8,
    payload_len: usize,
    mask: Option<[u8; 4]>,
) -> usize {
    let b0 = (if fin { 0x80 } else { 0 }) | (if rsv1 { 0x40 } else { 0 }) | (opcode & 0x0f);
    encode_header_bits(out, b0, payload_len, mask)
}

/// Appends a whole frame (header + payload, masked if `mask` is `Some`) to `out`.
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    rsv1: bool,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let mut h = [0u8; 14];
    let n = encode_header(&mut h, fin, rsv1, opcode, payload.len(), mask);
    out.reserve(n + payload.len());
    out.extend_from_slice(&h[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(m) = mask {
        apply_mask(&mut out[start..], m, 0);
    }
}

/// Owned frame, Swoole's `Frame` for pack/unpack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    /// Raw opcode.
    pub opcode: u8,
    /// `FLAG_*` bits: FIN, RSV1.., MASK, COMPRESS (payload was inflated).
    pub flags: u8,
    /// FIN.
    pub finish: bool,
    /// Payload (unmasked; inflated if it was compressed).
    pub data: Vec<u8>,
    /// Close frames: the code (0 if none), else 0.
    pub code: u16,
    /// Close frames: the reason, else empty.
    pub reason: String,
}

/// Limit for inflating a compressed frame in [`unpack`].
pub const UNPACK_MAX_INFLATED: usize = 16 * 1024 * 1024;

fn pseudo_random_mask() -> [u8; 4] {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let v = h.finish();
    (v as u32).to_ne_bytes()
}

/// Swoole `WebSocket\Server::pack`: an unmasked server frame (masked if
/// `FLAG_MASK` is given). `FLAG_FIN` sets FIN; `FLAG_COMPRESS` compresses the
/// payload with a fresh (no context) raw deflate and sets RSV1;
/// `FLAG_RSV1..3` set the corresponding bits.
pub fn pack(data: &[u8], opcode: u8, flags: u8) -> Vec<u8> {
    let mut b0 = opcode & 0x0f;
    if flags & FLAG_FIN != 0 {
        b0 |= 0x80;
    }
    if flags & FLAG_RSV1 != 0 {
        b0 |= 0x40;
    }
    if flags & FLAG_RSV2 != 0 {
        b0 |= 0x20;
    }
    if flags & FLAG_RSV3 != 0 {
        b0 |= 0x10;
    }
    let compressed;
    let mut payload = data;
    let is_control = opcode & 0x08 != 0;
    if flags & FLAG_COMPRESS != 0 && !is_control {
        if let Ok(c) = super::deflate::compress_once(data) {
            compressed = c;
            payload = &compressed;
            b0 |= 0x40;
        }
    }
    let mask = if flags & FLAG_MASK != 0 {
        Some(pseudo_random_mask())
    } else {
        None
    };
    let mut h = [0u8; 14];
    let n = encode_header_bits(&mut h, b0, payload.len(), mask);
    let mut out = Vec::with_capacity(n + payload.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(payload);
    if let Some(m) = mask {
        apply_mask(&mut out[n..], m, 0);
    }
    out
}

/// Swoole `WebSocket\Server::unpack`: parses exactly one frame (masked or not)
/// from the start of `bytes`; `None` if incomplete or invalid. Unmasks. A
/// frame with RSV1 is inflated (fresh context) and gets `FLAG_COMPRESS`;
/// close frames get `code` / `reason`.
pub fn unpack(bytes: &[u8]) -> Option<OwnedFrame> {
    let h = parse_header(bytes).ok()??;
    let len = usize::try_from(h.payload_len).ok()?;
    let end = h.header_len.checked_add(len)?;
    if bytes.len() < end {
        return None;
    }
    let mut data = bytes[h.header_len..end].to_vec();
    let mut flags = 0u8;
    if h.fin {
        flags |= FLAG_FIN;
    }
    if h.rsv1 {
        flags |= FLAG_RSV1;
    }
    if h.rsv2 {
        flags |= FLAG_RSV2;
    }
    if h.rsv3 {
        flags |= FLAG_RSV3;
    }
    if let Some(m) = h.mask {
        flags |= FLAG_MASK;
        apply_mask(&mut data, m, 0);
    }
    if h.rsv1 && h.opcode & 0x08 == 0 {
        data = super::deflate::inflate_once(&data, UNPACK_MAX_INFLATED).ok()?;
        flags |= FLAG_COMPRESS;
    }
    let (mut code, mut reason) = (0u16, String::new());
    if h.opcode == WEBSOCKET_OPCODE_CLOSE && data.len() >= 2 {
        code = u16::from_be_bytes([data[0], data[1]]);
        reason = String::from_utf8_lossy(&data[2..]).into_owned();
    }
    Some(OwnedFrame {
        opcode: h.opcode,
        flags,
        finish: h.fin,
        data,
        code,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn opcode_roundtrip_and_reserved() {
        for v in 0..16u8 {
            match OpCode::from_u8(v) {
                Some(o) => {
                    assert_eq!(o.as_u8(), v);
                    assert_eq!(o.is_control(), v >= 8);
                }
                None => assert!(matches!(v, 3..=7 | 11..=15)),
            }
        }
    }

    #[test]
    fn header_needs_more_bytes() {
        assert_eq!(parse_header(&[]), Ok(None));
        assert_eq!(parse_header(&[0x81]), Ok(None));
        assert_eq!(parse_header(&[0x81, 0xfe, 0x01]), Ok(None));
        assert_eq!(parse_header(&[0x81, 0x7f, 0, 0, 0, 0, 0, 0, 1]), Ok(None));
        assert_eq!(parse_header(&[0x81, 0x85, 1, 2, 3]), Ok(None));
    }

    #[test]
    fn length_forms_roundtrip() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 1 << 20] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let mut h = [0u8; 14];
                let n = encode_header(&mut h, true, false, 2, len, mask);
                let p = parse_header(&h[..n]).unwrap().unwrap();
                assert_eq!(p.payload_len, len as u64);
                assert_eq!(p.header_len, n);
                assert_eq!(p.mask, mask);
                assert!(p.fin && !p.rsv1 && p.opcode == 2);
                let expect =
                    2 + if len < 126 {
                        0
                    } else if len < 65536 {
                        2
                    } else {
                        8
                    } + if mask.is_some() { 4 } else { 0 };
                assert_eq!(n, expect);
            }
        }
    }

    #[test]
    fn non_minimal_length_is_allowed() {
        let h = parse_header(&[0x82, 126, 0, 5]).unwrap().unwrap();
        assert_eq!(h.payload_len, 5);
        let h = parse_header(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0, 5])
            .unwrap()
            .unwrap();
        assert_eq!(h.payload_len, 5);
    }

    #[test]
    fn length_with_msb_set_is_invalid() {
        assert_eq!(
            parse_header(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1]),
            Err(ProtocolError::InvalidLength)
        );
    }

    #[test]
    fn rsv_bits_are_parsed() {
        let h = parse_header(&[0xf1, 0]).unwrap().unwrap();
        assert!(h.rsv1 && h.rsv2 && h.rsv3 && h.fin);
    }

    #[test]
    fn pack_unpack_roundtrip() {
        let f = pack(b"hello", WEBSOCKET_OPCODE_TEXT, FLAG_FIN);
        assert_eq!(f, vec![0x81, 5, b'h', b'e', b'l', b'l', b'o']);
        let u = unpack(&f).unwrap();
        assert_eq!(u.opcode, 1);
        assert!(u.finish);
        assert_eq!(u.flags, FLAG_FIN);
        assert_eq!(u.data, b"hello");
    }

    #[test]
    fn pack_not_fin() {
        let f = pack(b"x", WEBSOCKET_OPCODE_BINARY, 0);
        assert_eq!(f[0], 0x02);
    }

    #[test]
    fn pack_compress_sets_rsv1_and_unpack_inflates() {
        let data = b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".repeat(10);
        let f = pack(&data, WEBSOCKET_OPCODE_TEXT, FLAG_FIN | FLAG_COMPRESS);
        assert_eq!(f[0] & 0x40, 0x40);
        assert!(f.len() < data.len());
        let u = unpack(&f).unwrap();
        assert_eq!(u.data, data);
        assert_ne!(u.flags & FLAG_COMPRESS, 0);
    }

    #[test]
    fn pack_masked_unpack_unmasks() {
        let f = pack(b"secret", WEBSOCKET_OPCODE_BINARY, FLAG_FIN | FLAG_MASK);
        assert_eq!(f[1] & 0x80, 0x80);
        let u = unpack(&f).unwrap();
        assert_eq!(u.data, b"secret");
        assert_ne!(u.flags & FLAG_MASK, 0);
    }

    #[test]
    fn unpack_close_frame_fills_code_and_reason() {
        let mut p = 1001u16.to_be_bytes().to_vec();
        p.extend_from_slice(b"bye");
        let f = pack(&p, WEBSOCKET_OPCODE_CLOSE, FLAG_FIN);
        let u = unpack(&f).unwrap();
        assert_eq!(u.code, 1001);
        assert_eq!(u.reason, "bye");
    }

    #[test]
    fn unpack_incomplete_is_none() {
        let f = pack(b"hello", WEBSOCKET_OPCODE_TEXT, FLAG_FIN);
        for i in 0..f.len() {
            assert!(unpack(&f[..i]).is_none());
        }
        assert!(unpack(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1]).is_none());
    }

    proptest! {
        #[test]
        fn parse_header_never_panics(b in proptest::collection::vec(any::<u8>(), 0..20)) {
            let _ = parse_header(&b);
            let _ = unpack(&b);
        }

        #[test]
        fn encode_frame_then_parse(payload in proptest::collection::vec(any::<u8>(), 0..300), fin: bool, rsv1: bool, op in 0u8..16, m: Option<[u8;4]>) {
            let mut out = Vec::new();
            encode_frame(&mut out, fin, rsv1, op, &payload, m);
            let h = parse_header(&out).unwrap().unwrap();
            prop_assert_eq!((h.fin, h.rsv1, h.opcode, h.mask, h.payload_len), (fin, rsv1, op, m, payload.len() as u64));
            let mut body = out[h.header_len..].to_vec();
            if let Some(k) = m { apply_mask(&mut body, k, 0); }
            prop_assert_eq!(body, payload);
        }
    }
}
