//! An Engine.IO server on the runtime seam: it takes the WebSocket handshakes at its path
//! (`/socket.io/?EIO=4&transport=websocket`, and `EIO=3`, negotiated per connection), sends
//! the OPEN packet, runs the heartbeat of each protocol version, decodes the packets and
//! hands the messages to an [`EngineHandler`] — the Socket.IO layer, or any application
//! that speaks raw Engine.IO.
//!
//! Heartbeats cost one timer per worker, not one per session: every deadline of one kind is
//! `now + a fixed delay`, so a FIFO per kind is already in time order ([`deadlines`]).

pub mod config;
pub mod deadlines;
pub mod handler;
mod heartbeat;
mod runtime_handler;
pub mod session;
pub mod verify;

use std::cell::{Cell, RefCell};

pub use config::EngineConfig;
pub use handler::{Data, DisconnectReason, Engine, EngineCtx, EngineHandler};
pub use session::SessionKey;
pub use verify::HandshakeError;

use config::Endpoint;
use deadlines::DeadlineQueue;
use session::{Beat, Session, Sessions};

use crate::engineio::{encode_packet, Frame, OpenData, Packet, Version};
use crate::protocol::frame::{OpCode, FLAG_FIN};
use crate::runtime::timer::TimerId;
use crate::runtime::{ConnId, Request};

/// An Engine.IO server over the application `E`; give it to
/// [`serve`](crate::runtime::serve).
pub struct EngineIo<E> {
    config: EngineConfig,
    handler: E,
    sessions: RefCell<Sessions>,
    beats: RefCell<Beats>,
    /// The heartbeat timer: (deadline, id).
    armed: Cell<Option<(u64, TimerId)>>,
}

/// The three heartbeat queues.
struct Beats {
    /// v4: when to send the next ping (`pingInterval` after the last pong).
    ping: DeadlineQueue,
    /// v4: when an unanswered ping times out (`pingTimeout`).
    pong: DeadlineQueue,
    /// v3: when a client that stopped pinging times out (`pingInterval + pingTimeout`).
    client_ping: DeadlineQueue,
}

impl<E: EngineHandler> EngineIo<E> {
    /// A server with `config` over `handler`.
    pub fn new(config: EngineConfig, handler: E) -> Self {
        let beats = Beats {
            ping: DeadlineQueue::new(config.ping_interval),
            pong: DeadlineQueue::new(config.ping_timeout),
            client_ping: DeadlineQueue::new(config.ping_interval + config.ping_timeout),
        };
        EngineIo {
            config,
            handler,
            sessions: RefCell::new(Sessions::default()),
            beats: RefCell::new(beats),
            armed: Cell::new(None),
        }
    }

    /// The options.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The application handler.
    pub fn handler(&self) -> &E {
        &self.handler
    }

    /// Open sessions of this worker.
    pub fn session_count(&self) -> usize {
        self.sessions.borrow().slab.len()
    }

    pub(crate) fn with_session<T>(
        &self,
        key: SessionKey,
        f: impl FnOnce(&Session) -> T,
    ) -> Option<T> {
        self.sessions.borrow().get(key).map(f)
    }

    fn engine<'a>(&'a self, cx: &'a EngineCtx<E>) -> Engine<'a, E> {
        Engine { io: self, cx }
    }

    /// Sends `4<text>` to a session.
    pub(crate) fn send_text(&self, cx: &EngineCtx<E>, key: SessionKey, text: &str) -> bool {
        let Some(fd) = self.with_session(key, |s| s.conn.fd) else {
            return false;
        };
        let mut frame = String::with_capacity(1 + text.len());
        frame.push('4');
        frame.push_str(text);
        cx.push(fd, frame.as_bytes(), OpCode::Text, FLAG_FIN)
    }

    /// Sends a binary message to a session, in its version's framing.
    pub(crate) fn send_binary(&self, cx: &EngineCtx<E>, key: SessionKey, data: &[u8]) -> bool {
        let Some((fd, version)) = self.with_session(key, |s| (s.conn.fd, s.version)) else {
            return false;
        };
        self.send_packet(cx, fd, version, &Packet::binary(data))
    }

    fn send_packet(&self, cx: &EngineCtx<E>, fd: u64, version: Version, packet: &Packet) -> bool {
        match encode_packet(version, packet) {
            Frame::Text(t) => cx.push(fd, t.as_bytes(), OpCode::Text, FLAG_FIN),
            Frame::Binary(b) => cx.push(fd, &b, OpCode::Binary, FLAG_FIN),
        }
    }

    /// Ends a session: a close frame now, `on_close` with `reason` once the connection is
    /// gone.
    pub(crate) fn close(
        &self,
        cx: &EngineCtx<E>,
        key: SessionKey,
        reason: DisconnectReason,
    ) -> bool {
        self.close_code(cx, key, reason, 1000)
    }

    fn close_code(
        &self,
        cx: &EngineCtx<E>,
        key: SessionKey,
        reason: DisconnectReason,
        code: u16,
    ) -> bool {
        let fd = {
            let mut sessions = self.sessions.borrow_mut();
            let Some(s) = sessions.get_mut(key) else {
                return false;
            };
            s.closing.get_or_insert(reason);
            s.conn.fd
        };
        cx.close_with(fd, code, "")
    }

    /// A WebSocket session opens on `conn`: the OPEN packet, the first heartbeat deadline,
    /// then the application's `on_open`.
    fn open(
        &self,
        cx: &EngineCtx<E>,
        conn: ConnId,
        request: &Request,
        version: Version,
        endpoint: Endpoint,
    ) {
        let now = cx.now_ms();
        let sid = match endpoint {
            Endpoint::Handler => self
                .handler
                .session_id(conn.fd, version)
                .map(String::into_boxed_str),
            Endpoint::Echo => None,
        }
        .unwrap_or_else(|| session::new_sid(conn.fd));
        let open = OpenData {
            sid: sid.to_string(),
            upgrades: Vec::new(),
            ping_interval: self.config.ping_interval,
            ping_timeout: self.config.ping_timeout,
            max_payload: (version == Version::V4).then_some(self.config.max_payload as u64),
        };
        let (beat, queue) = match version {
            Version::V4 => (Beat::PingAt, 0),
            Version::V3 => (Beat::ClientPingBy, 2),
        };
        let key = {
            let mut sessions = self.sessions.borrow_mut();
            let key = sessions.insert(|gen| Session {
                sid,
                conn,
                version,
                endpoint,
                gen,
                beat,
                beat_at: 0,
                closing: None,
            });
            if let Some(s) = sessions.get_mut(key) {
                s.beat_at = self.beats.borrow_mut().queue(queue).push(now, key.0, s.gen);
            }
            key
        };
        self.send_packet(cx, conn.fd, version, &open.to_packet());
        self.arm(cx);
        if endpoint == Endpoint::Handler {
            self.handler.on_open(self.engine(cx), key, request);
        }
    }
}
