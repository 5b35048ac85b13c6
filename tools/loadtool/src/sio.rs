//! The Socket.IO layer of the `sio-*` modes, on raw frames over the WebSocket client of
//! net.rs/ws.rs: Engine.IO 4 (`EIO=4&transport=websocket`, no polling, no upgrade) and the
//! Socket.IO 5 protocol on the main namespace `/`.
//!
//! Per connection, after the WebSocket handshake:
//!   server → `0{"sid":…,"pingInterval":…,…}`   Engine.IO OPEN (text frame)
//!   client → `40`                               Socket.IO CONNECT to `/`
//!   server → `40{"sid":…}`                      CONNECT accepted (`44{…}` = refused)
//! then Socket.IO packets ride in Engine.IO MESSAGE packets (`4` + packet). Engine.IO pings
//! from the server (`2`, text) are answered with `3`; an Engine.IO CLOSE (`1`) or a Socket.IO
//! DISCONNECT (`41`) ends the connection. Every Engine.IO packet is one WebSocket text frame;
//! binary frames (Socket.IO attachments) are not expected and count as errors.

use crate::net::{Conn, Progress, ReadOutcome};
use crate::ws::{self, Ev};
use mio::{Events, Poll};
use std::io::ErrorKind;
use std::time::{Duration, Instant};

/// Path and query of the Engine.IO WebSocket endpoint.
pub const DEFAULT_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// Largest Engine.IO packet the client assembles (the benchmark's are tiny).
const MAX_MSG: usize = 64 * 1024;

/// A URL with no path (or just "/") gets the Socket.IO endpoint path.
pub fn endpoint_url(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.find(['/', '?']) {
        None => format!("{}{DEFAULT_PATH}", url.trim_end_matches('/')),
        Some(i) if &rest[i..] == "/" => format!("{}{DEFAULT_PATH}", url.trim_end_matches('/')),
        Some(_) => url.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the Engine.IO OPEN packet.
    WaitOpen,
    /// `40` sent, waiting for `40{"sid":…}`.
    WaitConnect,
    Ready,
    Dead,
}

/// Socket.IO state of one connection (index-aligned with the `Conn`s).
pub struct SioConn {
    pub phase: Phase,
    /// The text message being assembled from frame pieces.
    msg: Vec<u8>,
    msg_binary: bool,
    /// Engine.IO pings answered.
    pub pings: u64,
}

impl SioConn {
    pub fn new(open: bool) -> SioConn {
        SioConn {
            phase: if open { Phase::WaitOpen } else { Phase::Dead },
            msg: Vec::with_capacity(256),
            msg_binary: false,
            pings: 0,
        }
    }
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }
}

/// What a mode does with the Socket.IO packets of ready connections.
pub trait Handler {
    /// One Socket.IO packet (the Engine.IO MESSAGE payload, e.g. `3<id>[…]` for an ACK) on
    /// connection `idx`; output goes to `w`. Err = protocol/verification failure (the
    /// connection is dropped).
    fn packet(
        &mut self,
        idx: usize,
        w: &mut Vec<u8>,
        pkt: &[u8],
        now: Instant,
    ) -> Result<(), String>;
}

/// Ignores every packet (idle connections, the connect phase).
pub struct Ignore;
impl Handler for Ignore {
    fn packet(&mut self, _: usize, _: &mut Vec<u8>, _: &[u8], _: Instant) -> Result<(), String> {
        Ok(())
    }
}

/// Appends one Engine.IO packet as a masked text frame.
#[inline]
pub fn send(w: &mut Vec<u8>, packet: &[u8]) {
    ws::write_frame(w, ws::OP_TEXT, packet);
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(120)]).into_owned();
    if b.len() > 120 {
        s + "…"
    } else {
        s
    }
}

/// One complete Engine.IO packet.
fn engine_packet<H: Handler>(
    s: &mut SioConn,
    h: &mut H,
    idx: usize,
    w: &mut Vec<u8>,
    p: &[u8],
    now: Instant,
) -> Result<(), String> {
    let Some((&ty, rest)) = p.split_first() else {
        return Err("empty Engine.IO packet".into());
    };
    match ty {
        b'2' => {
            // Ping (with an optional "probe" payload, echoed back in the pong).
            let mut pong = [0u8; 16];
            let n = rest.len().min(15);
            pong[0] = b'3';
            pong[1..=n].copy_from_slice(&rest[..n]);
            send(w, &pong[..=n]);
            s.pings += 1;
            Ok(())
        }
        b'3' | b'6' => Ok(()),
        b'1' => Err("Engine.IO CLOSE from the server".into()),
        b'0' if s.phase == Phase::WaitOpen => {
            if !rest.starts_with(b"{") || !rest.windows(6).any(|x| x == b"\"sid\":") {
                return Err(format!("bad Engine.IO OPEN packet {:?}", show(p)));
            }
            send(w, b"40");
            s.phase = Phase::WaitConnect;
            Ok(())
        }
        b'4' => match s.phase {
            Phase::WaitConnect => {
                if rest.starts_with(b"0{") {
                    s.phase = Phase::Ready;
                    Ok(())
                } else if rest.starts_with(b"4") {
                    Err(format!("Socket.IO CONNECT refused: {:?}", show(p)))
                } else {
                    Err(format!("expected 40{{\"sid\":…}}, got {:?}", show(p)))
                }
            }
            Phase::Ready => {
                if rest.first() == Some(&b'1') {
                    return Err("Socket.IO DISCONNECT from the server".into());
                }
                h.packet(idx, w, rest, now)
            }
            _ => Err(format!("message before the Engine.IO OPEN: {:?}", show(p))),
        },
        _ => Err(format!(
            "unexpected Engine.IO packet {:?} in phase {:?}",
            show(p),
            s.phase
        )),
    }
}

/// Parses whatever is in `c.rbuf`, answering on `c.wbuf`.
fn process<H: Handler>(
    c: &mut Conn,
    s: &mut SioConn,
    h: &mut H,
    idx: usize,
    now: Instant,
) -> Result<(), String> {
    let Conn {
        rbuf,
        rlen,
        wbuf,
        parser,
        ..
    } = c;
    let mut err: Option<String> = None;
    let used = parser.feed(&rbuf[..*rlen], |ev| {
        let r = match ev {
            Ev::Data { opcode, chunk, end } => {
                if opcode != 0 {
                    s.msg_binary = opcode == ws::OP_BINARY;
                }
                if s.msg.len() + chunk.len() > MAX_MSG {
                    Err(format!("message over {MAX_MSG} bytes"))
                } else {
                    s.msg.extend_from_slice(chunk);
                    if end {
                        let r = if s.msg_binary {
                            Err("binary frame (attachments are not expected)".into())
                        } else {
                            let msg = std::mem::take(&mut s.msg);
                            let r = engine_packet(s, h, idx, wbuf, &msg, now);
                            s.msg = msg;
                            r
                        };
                        s.msg.clear();
                        r
                    } else {
                        Ok(())
                    }
                }
            }
            Ev::Ping(p) => {
                ws::write_frame(wbuf, ws::OP_PONG, p);
                Ok(())
            }
            Ev::Pong => Ok(()),
            Ev::Close(code) => Err(format!("server closed the WebSocket ({code})")),
            Ev::Error(e) => Err(e.to_string()),
        };
        match r {
            Ok(()) => true,
            Err(e) => {
                err = Some(e);
                false
            }
        }
    });
    c.consume(used);
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Processes buffered input, then reads until the socket would block, then flushes.
pub fn service<H: Handler>(
    c: &mut Conn,
    s: &mut SioConn,
    h: &mut H,
    idx: usize,
) -> Result<(), String> {
    if c.rlen > 0 {
        process(c, s, h, idx, Instant::now())?;
    }
    loop {
        match c.read_once() {
            Ok(ReadOutcome::Data { short }) => {
                process(c, s, h, idx, Instant::now())?;
                if short {
                    break;
                }
            }
            Ok(ReadOutcome::WouldBlock) => break,
            Ok(ReadOutcome::Eof) => return Err("closed by the server".into()),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    c.flush().map_err(|e| format!("write: {e}"))
}

/// Drops a connection after `service` failed.
pub fn kill(c: &mut Conn, s: &mut SioConn, poll: &Poll) {
    s.phase = Phase::Dead;
    c.close(poll);
}

pub struct SioEstablished {
    pub ok: usize,
    pub failed: usize,
    pub elapsed: Duration,
    pub first_error: Option<String>,
}

/// The Socket.IO connect of every open WebSocket in `conns` (OPEN → `40` → `40{sid}`).
pub fn connect_all(
    poll: &mut Poll,
    events: &mut Events,
    conns: &mut [Conn],
    timeout: Duration,
    progress: &mut Progress,
    label: &str,
) -> (Vec<SioConn>, SioEstablished) {
    let t0 = Instant::now();
    let mut sios: Vec<SioConn> = conns.iter().map(|c| SioConn::new(c.is_open())).collect();
    let mut res = SioEstablished {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        first_error: None,
    };
    let mut pending = sios.iter().filter(|s| s.phase != Phase::Dead).count();
    // The OPEN packet may have come with the 101 response (already in rbuf) or while other
    // handshakes were completing (its edge-triggered event is gone): look at every connection.
    for i in 0..conns.len() {
        if connect_step(i, conns, &mut sios, &mut res, poll) {
            pending -= 1;
        }
    }
    let mut last_scan = Instant::now();
    while pending > 0 {
        if let Err(e) = poll.poll(events, Some(Duration::from_millis(100))) {
            if e.kind() != ErrorKind::Interrupted {
                res.first_error.get_or_insert(format!("poll: {e}"));
                break;
            }
        }
        for ev in events.iter() {
            let i = ev.token().0;
            if i < conns.len() && connect_step(i, conns, &mut sios, &mut res, poll) {
                pending -= 1;
            }
        }
        let now = Instant::now();
        if now.duration_since(last_scan) >= Duration::from_millis(100) {
            last_scan = now;
            if now.duration_since(t0) > timeout {
                for (i, (c, s)) in conns.iter_mut().zip(sios.iter_mut()).enumerate() {
                    if matches!(s.phase, Phase::WaitOpen | Phase::WaitConnect) {
                        res.first_error.get_or_insert(format!(
                            "conn {i}: Socket.IO connect timed out in phase {:?}",
                            s.phase
                        ));
                        kill(c, s, poll);
                        res.failed += 1;
                        pending -= 1;
                    }
                }
            }
            progress.tick(now, |t| {
                format!(
                    "[{label} sio connect {t:.0}s] ready={} failed={} pending={pending}",
                    res.ok, res.failed
                )
            });
        }
    }
    res.elapsed = t0.elapsed();
    (sios, res)
}

/// Advances connection `i`'s Socket.IO connect; true when it has just finished (either way).
fn connect_step(
    i: usize,
    conns: &mut [Conn],
    sios: &mut [SioConn],
    res: &mut SioEstablished,
    poll: &Poll,
) -> bool {
    let (c, s) = (&mut conns[i], &mut sios[i]);
    if !matches!(s.phase, Phase::WaitOpen | Phase::WaitConnect) {
        return false;
    }
    match service(c, s, &mut Ignore, i) {
        Ok(()) if s.is_ready() => {
            res.ok += 1;
            true
        }
        Ok(()) => false,
        Err(e) => {
            kill(c, s, poll);
            res.failed += 1;
            res.first_error.get_or_insert(format!("conn {i}: {e}"));
            true
        }
    }
}

/// Parses an ACK packet `3<id>[…]` (namespace `/`): (id, the JSON array).
pub fn parse_ack(pkt: &[u8]) -> Option<(u64, &[u8])> {
    let rest = pkt.strip_prefix(b"3")?;
    let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || n > 19 {
        return None;
    }
    let mut id = 0u64;
    for &d in &rest[..n] {
        id = id.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some((id, &rest[n..]))
}

/// `42<id>["event",<data>]`-style packets without allocating: appends the Engine.IO packet
/// `4` + Socket.IO EVENT `2` + optional ack id + `["name",<json>]` to `scratch` (cleared first).
pub fn event_packet(scratch: &mut Vec<u8>, id: Option<u64>, name: &str, json_arg: &[u8]) {
    use std::io::Write;
    scratch.clear();
    scratch.extend_from_slice(b"42");
    if let Some(id) = id {
        let _ = write!(scratch, "{id}");
    }
    scratch.extend_from_slice(b"[\"");
    scratch.extend_from_slice(name.as_bytes());
    scratch.extend_from_slice(b"\",");
    scratch.extend_from_slice(json_arg);
    scratch.push(b']');
}

/// A string the client may put into a JSON string literal as is.
pub fn plain_json_text(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            endpoint_url("ws://127.0.0.1:3000"),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            endpoint_url("ws://127.0.0.1:3000/"),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(endpoint_url("ws://h:1/x/?EIO=4"), "ws://h:1/x/?EIO=4");
    }

    #[test]
    fn acks_and_events() {
        assert_eq!(parse_ack(b"312[\"x\"]"), Some((12, &b"[\"x\"]"[..])));
        assert_eq!(parse_ack(b"3[\"x\"]"), None);
        assert_eq!(parse_ack(b"2[\"x\"]"), None);
        let mut s = Vec::new();
        event_packet(&mut s, Some(7), "event", b"\"hello\"");
        assert_eq!(s, b"427[\"event\",\"hello\"]");
        event_packet(&mut s, None, "join-room", b"\"bench\"");
        assert_eq!(s, b"42[\"join-room\",\"bench\"]");
    }
}
