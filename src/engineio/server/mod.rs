//! An Engine.IO server on the runtime seam: WebSocket sessions (`EIO=4` and `EIO=3`,
//! negotiated per connection), HTTP long-polling sessions and the upgrade from polling to
//! WebSocket, each protocol version's heartbeat, engine.io's refusals — and an
//! [`EngineHandler`] above (the Socket.IO layer, or any application of raw Engine.IO).
//!
//! - **Heartbeats** cost one timer per worker, not one per session: every deadline of one
//!   kind is `now + a fixed delay`, so a FIFO per kind is already in time order
//!   ([`deadlines`]).
//! - **Across workers without sticky sessions**: a session id names the connection that
//!   opened it, and so its worker (as an fd does). A polling request or an upgrade that lands
//!   on another worker is handed to the owner with its socket (the runtime's
//!   `HttpReply::HandOff`), which then serves it as if it had arrived there.

pub mod config;
pub mod deadlines;
mod hand_off;
pub mod handler;
mod heartbeat;
mod polling;
mod runtime_handler;
pub mod session;
mod upgrade;
pub mod verify;

use std::cell::{Cell, RefCell};

pub use config::{Cors, EngineConfig};
pub use handler::{Data, DisconnectReason, Engine, EngineCtx, EngineHandler};
pub use session::SessionKey;
pub use verify::HandshakeError;

use config::Endpoint;
use deadlines::DeadlineQueue;
use session::{Beat, Session, Sessions, Transport};

use crate::engineio::{encode_packet, Frame, OpenData, Packet, PacketType, Version};
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
        match self.with_session(key, |s| s.ws()) {
            Some(Some(ws)) => {
                let mut frame = String::with_capacity(1 + text.len());
                frame.push('4');
                frame.push_str(text);
                cx.push(ws.fd, frame.as_bytes(), OpCode::Text, FLAG_FIN)
            }
            Some(None) => self.deliver(cx, key, Packet::text(PacketType::Message, text)),
            None => false,
        }
    }

    /// Sends a binary message to a session, in its version's framing.
    pub(crate) fn send_binary(&self, cx: &EngineCtx<E>, key: SessionKey, data: &[u8]) -> bool {
        self.deliver(cx, key, Packet::binary(data))
    }

    /// Sends a packet over the session's transport: a frame on its WebSocket, or into the
    /// polling queue (answering a waiting GET).
    pub(crate) fn deliver(&self, cx: &EngineCtx<E>, key: SessionKey, packet: Packet) -> bool {
        let ws = {
            let mut sessions = self.sessions.borrow_mut();
            let Some(s) = sessions.get_mut(key) else {
                return false;
            };
            let version = s.version;
            match &mut s.transport {
                Transport::WebSocket(c) => Some((c.fd, version)),
                Transport::Polling(p) => {
                    p.queue.push(packet.clone());
                    None
                }
            }
        };
        match ws {
            Some((fd, version)) => self.send_packet(cx, fd, version, &packet),
            None => {
                self.flush_poll(cx, key);
                true
            }
        }
    }

    fn send_packet(&self, cx: &EngineCtx<E>, fd: u64, version: Version, packet: &Packet) -> bool {
        match encode_packet(version, packet) {
            Frame::Text(t) => cx.push(fd, t.as_bytes(), OpCode::Text, FLAG_FIN),
            Frame::Binary(b) => cx.push(fd, &b, OpCode::Binary, FLAG_FIN),
        }
    }

    /// Ends a session: a close frame (WebSocket) or a close packet to the waiting GET
    /// (polling), and `on_close` with `reason`.
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
        let ws = {
            let mut sessions = self.sessions.borrow_mut();
            let Some(s) = sessions.get_mut(key) else {
                return false;
            };
            if s.closing.is_some() {
                return true;
            }
            s.closing = Some(reason);
            s.ws()
        };
        match ws {
            // on_close follows when the connection is gone.
            Some(c) => cx.close_with(c.fd, code, ""),
            None => {
                self.deliver(cx, key, Packet::text(PacketType::Close, ""));
                self.finish(cx, key, reason);
                true
            }
        }
    }

    /// The client sent a close packet: a held GET is released with a noop (as engine.io
    /// does) and the session ends.
    fn client_close(&self, cx: &EngineCtx<E>, key: SessionKey) {
        let ws = self.with_session(key, |s| s.ws());
        match ws {
            Some(Some(_)) => {
                self.close(cx, key, DisconnectReason::TransportClose);
            }
            Some(None) => {
                if let Some(s) = self.sessions.borrow_mut().get_mut(key) {
                    s.closing = Some(DisconnectReason::TransportClose);
                }
                self.deliver(cx, key, Packet::text(PacketType::Noop, ""));
                self.finish(cx, key, DisconnectReason::TransportClose);
            }
            None => {}
        }
    }

    /// The session is over: removed, any probing WebSocket closed, the handler told.
    fn finish(&self, cx: &EngineCtx<E>, key: SessionKey, reason: DisconnectReason) {
        let Some(mut s) = self.sessions.borrow_mut().remove(key) else {
            return;
        };
        if let Some(p) = s.polling() {
            if let Some(probe) = p.probe.take() {
                cx.close_with(probe.fd, 1000, "");
            }
            if let Some(get) = p.get.take() {
                // A GET still held (the session ended another way): a close packet.
                let (body, kind) = crate::engineio::encode_payload(
                    s.version,
                    &[Packet::text(PacketType::Close, "")],
                );
                cx.respond(get, polling::ok_response(body, kind));
            }
        }
        if s.endpoint == Endpoint::Handler {
            self.handler.on_close(self.engine(cx), key, reason);
        }
    }

    /// The OPEN packet of a new session.
    fn open_packet(&self, sid: &str, upgrades: bool) -> Packet {
        OpenData {
            sid: sid.to_string(),
            upgrades: if upgrades {
                vec!["websocket".into()]
            } else {
                Vec::new()
            },
            ping_interval: self.config.ping_interval,
            ping_timeout: self.config.ping_timeout,
            max_payload: Some(self.config.max_payload as u64),
        }
        .to_packet()
    }

    /// A new session (its first heartbeat deadline set); the caller sends the OPEN packet.
    fn new_session(
        &self,
        cx: &EngineCtx<E>,
        sid: Box<str>,
        transport: Transport,
        version: Version,
        endpoint: Endpoint,
    ) -> SessionKey {
        let now = cx.now_ms();
        let (beat, queue) = match version {
            Version::V4 => (Beat::PingAt, 0),
            Version::V3 => (Beat::ClientPingBy, 2),
        };
        let mut sessions = self.sessions.borrow_mut();
        let key = sessions.insert(|gen| Session {
            sid,
            transport,
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
    }

    /// The session id for a session opened on `conn`.
    fn sid_for(
        &self,
        conn: ConnId,
        version: Version,
        endpoint: Endpoint,
        polling: bool,
    ) -> Box<str> {
        match endpoint {
            Endpoint::Handler => self
                .handler
                .session_id(conn.fd, version, polling)
                .map(String::into_boxed_str),
            Endpoint::Echo => None,
        }
        .unwrap_or_else(|| session::new_sid(conn.fd))
    }

    /// A WebSocket session opens on `conn`: the OPEN packet, then the handler's `on_open`.
    fn open_ws(
        &self,
        cx: &EngineCtx<E>,
        conn: ConnId,
        request: &Request,
        version: Version,
        endpoint: Endpoint,
    ) {
        let sid = self.sid_for(conn, version, endpoint, false);
        let open = self.open_packet(&sid, false);
        let key = self.new_session(cx, sid, Transport::WebSocket(conn), version, endpoint);
        self.send_packet(cx, conn.fd, version, &open);
        self.arm(cx);
        if endpoint == Endpoint::Handler {
            self.handler.on_open(self.engine(cx), key, request);
        }
    }
}
