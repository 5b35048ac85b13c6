//! Client side of RFC 6455: URL parsing, the opening handshake with a real Sec-WebSocket-Key,
//! masked frame encoding and an incremental (zero-copy, zero-allocation) frame parser.

use base64::Engine;
use sha1::{Digest, Sha1};
use std::net::{SocketAddr, ToSocketAddrs};

/// The fixed random masking key of every frame the load tool sends (RFC 6455 §5.3 asks
/// clients to mask; a fixed key is what the benchmark allows, so payloads can be pre-masked).
pub const MASK: [u8; 4] = [0x5b, 0xc3, 0x1e, 0x97];
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Where to connect and what to put in the request line and Host header.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub host_header: String,
    /// Path and query, starting with '/'.
    pub path: String,
    /// `wss://`: the host name the server's certificate must carry.
    pub tls_name: Option<String>,
}

/// Parses `ws://host:port/path`, `wss://…` (TLS, see `--ca`), `http://…` or
/// `tcp://host:port`.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let (rest, default_port, tls) = if let Some(r) = url.strip_prefix("ws://") {
        (r, 80, false)
    } else if let Some(r) = url.strip_prefix("wss://") {
        (r, 443, true)
    } else if let Some(r) = url.strip_prefix("http://") {
        (r, 80, false)
    } else if let Some(r) = url.strip_prefix("tcp://") {
        (r, 0, false)
    } else if url.starts_with("https://") {
        return Err(format!("{url}: use wss:// for TLS"));
    } else {
        (url, 80, false)
    };
    let (hostport, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_string()
    } else {
        format!("{hostport}:{default_port}")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    let host = match hostport.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => hostport,
    };
    Ok(Target {
        addr,
        host_header: hostport.to_string(),
        path,
        tls_name: tls.then(|| host.trim_matches(['[', ']']).to_string()),
    })
}

/// splitmix64, seeded from /dev/urandom: handshake keys and payload patterns.
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Rng {
        use std::io::Read;
        let mut b = [0u8; 8];
        let seeded = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut b))
            .is_ok();
        let mut s = u64::from_le_bytes(b);
        if !seeded {
            s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                ^ (std::process::id() as u64) << 32;
        }
        Rng(s)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A fresh Sec-WebSocket-Key (base64 of 16 random bytes) and the Sec-WebSocket-Accept the
/// server must answer with.
pub fn new_key(rng: &mut Rng) -> (String, [u8; 28]) {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    raw[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    let key = base64::engine::general_purpose::STANDARD.encode(raw);
    let accept = accept_for(&key);
    (key, accept)
}

pub fn accept_for(key: &str) -> [u8; 28] {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    let digest = h.finalize();
    let mut out = [0u8; 28];
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(digest, &mut out)
        .expect("28 bytes hold a base64 SHA-1");
    debug_assert_eq!(n, 28);
    out
}

/// Appends the opening-handshake request to `out`.
pub fn write_request(out: &mut Vec<u8>, t: &Target, key: &str) {
    use std::io::Write;
    let _ = write!(
        out,
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        t.path, t.host_header, key
    );
}

/// Checks a complete handshake response head (up to and including the blank line).
pub fn check_response(head: &[u8], accept: &[u8; 28]) -> Result<(), String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete handshake response".into()),
        Err(e) => return Err(format!("bad handshake response: {e}")),
    }
    if resp.code != Some(101) {
        return Err(format!("handshake answered {}", resp.code.unwrap_or(0)));
    }
    let mut upgrade = false;
    let mut accepted = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade = h.value.eq_ignore_ascii_case(b"websocket");
        } else if h.name.eq_ignore_ascii_case("sec-websocket-accept") {
            accepted = h.value.trim_ascii() == accept.as_slice();
        }
    }
    if !upgrade {
        return Err("handshake response without Upgrade: websocket".into());
    }
    if !accepted {
        return Err("wrong Sec-WebSocket-Accept".into());
    }
    Ok(())
}

/// Appends a frame header with the MASK bit and masking key; the caller appends the payload
/// already masked with [`MASK`] (starting at mask index 0).
pub fn write_header(out: &mut Vec<u8>, opcode: u8, fin: bool, len: usize) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
}

/// Appends a whole masked frame (masks `payload` on the way).
pub fn write_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    write_header(out, opcode, true, payload.len());
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i & 3]));
}

/// What the parser hands to its caller.
pub enum Ev<'a> {
    /// A piece of a data message's payload; `end` when it completes the message.
    Data {
        opcode: u8,
        chunk: &'a [u8],
        end: bool,
    },
    Ping(&'a [u8]),
    Pong,
    Close(u16),
    Error(&'static str),
}

/// Incremental parser of server-to-client frames. Data payload is delivered in pieces as it
/// arrives (so the read buffer never needs to hold a whole message); control frames are
/// delivered whole.
#[derive(Default)]
pub struct FrameParser {
    in_payload: bool,
    remaining: u64,
    frame_fin: bool,
    /// Opcode of the data message in progress (0 between messages).
    msg_op: u8,
}

impl FrameParser {
    /// Parses `buf`, calling `f` for each event; `f` returns false to stop. Returns the number
    /// of bytes consumed (the rest is an incomplete header or control frame).
    pub fn feed(&mut self, buf: &[u8], mut f: impl FnMut(Ev) -> bool) -> usize {
        let mut pos = 0;
        loop {
            if self.in_payload {
                let avail = buf.len() - pos;
                if avail == 0 {
                    return pos;
                }
                let take = (self.remaining.min(avail as u64)) as usize;
                self.remaining -= take as u64;
                let done = self.remaining == 0;
                let end = done && self.frame_fin;
                let op = self.msg_op;
                if done {
                    self.in_payload = false;
                    if self.frame_fin {
                        self.msg_op = 0;
                    }
                }
                let go = f(Ev::Data {
                    opcode: op,
                    chunk: &buf[pos..pos + take],
                    end,
                });
                pos += take;
                if !go {
                    return pos;
                }
                continue;
            }
            let b = &buf[pos..];
            if b.len() < 2 {
                return pos;
            }
            let fin = b[0] & 0x80 != 0;
            let op = b[0] & 0x0F;
            if b[0] & 0x70 != 0 {
                f(Ev::Error("RSV bits set without a negotiated extension"));
                return pos;
            }
            if b[1] & 0x80 != 0 {
                f(Ev::Error("masked frame from the server"));
                return pos;
            }
            let (len, hl) = match b[1] & 0x7F {
                126 => {
                    if b.len() < 4 {
                        return pos;
                    }
                    (u16::from_be_bytes([b[2], b[3]]) as u64, 4)
                }
                127 => {
                    if b.len() < 10 {
                        return pos;
                    }
                    (u64::from_be_bytes(b[2..10].try_into().unwrap()), 10)
                }
                n => (n as u64, 2),
            };
            if op >= 8 {
                if len > 125 || !fin {
                    f(Ev::Error("bad control frame"));
                    return pos;
                }
                let total = hl + len as usize;
                if b.len() < total {
                    return pos;
                }
                let p = &b[hl..total];
                pos += total;
                let go = match op {
                    OP_PING => f(Ev::Ping(p)),
                    OP_PONG => f(Ev::Pong),
                    OP_CLOSE => f(Ev::Close(if p.len() >= 2 {
                        u16::from_be_bytes([p[0], p[1]])
                    } else {
                        1005
                    })),
                    _ => f(Ev::Error("unknown control opcode")),
                };
                if !go {
                    return pos;
                }
                continue;
            }
            match op {
                OP_CONT if self.msg_op == 0 => {
                    f(Ev::Error("continuation without a message"));
                    return pos;
                }
                OP_TEXT | OP_BINARY if self.msg_op != 0 => {
                    f(Ev::Error("new message inside a fragmented one"));
                    return pos;
                }
                OP_CONT => {}
                OP_TEXT | OP_BINARY => self.msg_op = op,
                _ => {
                    f(Ev::Error("unknown data opcode"));
                    return pos;
                }
            }
            pos += hl;
            self.frame_fin = fin;
            self.remaining = len;
            if len == 0 {
                let op = self.msg_op;
                if fin {
                    self.msg_op = 0;
                }
                if !f(Ev::Data {
                    opcode: op,
                    chunk: &[],
                    end: fin,
                }) {
                    return pos;
                }
            } else {
                self.in_payload = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_matches_rfc_example() {
        assert_eq!(
            &accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn parser_splits_and_reassembles() {
        // text "hello" as two fragments, a ping in between, then a 300-byte binary frame.
        let mut wire = vec![
            0x01, 3, b'h', b'e', b'l', 0x89, 1, b'x', 0x80, 2, b'l', b'o',
        ];
        wire.extend_from_slice(&[0x82, 126, 1, 44]);
        wire.extend(std::iter::repeat_n(7u8, 300));
        for step in 1..wire.len() {
            let mut p = FrameParser::default();
            let mut buf: Vec<u8> = Vec::new();
            let mut text = Vec::new();
            let mut bin = 0usize;
            let mut ends = 0;
            let mut pings = 0;
            for chunk in wire.chunks(step) {
                buf.extend_from_slice(chunk);
                let n = p.feed(&buf, |ev| {
                    match ev {
                        Ev::Data {
                            opcode: OP_TEXT,
                            chunk,
                            end,
                        } => {
                            text.extend_from_slice(chunk);
                            ends += end as usize;
                        }
                        Ev::Data {
                            opcode: OP_BINARY,
                            chunk,
                            end,
                        } => {
                            bin += chunk.len();
                            ends += end as usize;
                        }
                        Ev::Ping(b"x") => pings += 1,
                        _ => panic!("unexpected event"),
                    }
                    true
                });
                buf.drain(..n);
            }
            assert_eq!(text, b"hello");
            assert_eq!(bin, 300);
            assert_eq!((ends, pings), (2, 1));
        }
    }

    #[test]
    fn urls() {
        let t = parse_url("ws://127.0.0.1:9502/chat?x=1").unwrap();
        assert_eq!(t.addr.port(), 9502);
        assert_eq!(t.path, "/chat?x=1");
        assert_eq!(t.host_header, "127.0.0.1:9502");
        let t = parse_url("wss://127.0.0.1:9443/x").unwrap();
        assert_eq!(t.tls_name.as_deref(), Some("127.0.0.1"));
        assert_eq!((t.addr.port(), t.path.as_str()), (9443, "/x"));
        assert_eq!(
            parse_url("wss://localhost/").unwrap().tls_name.as_deref(),
            Some("localhost")
        );
        assert!(parse_url("ws://127.0.0.1:1/").unwrap().tls_name.is_none());
        let t = parse_url("127.0.0.1:7").unwrap();
        assert_eq!(t.path, "/");
    }
}
