//! What an Engine.IO server calls: the [`EngineHandler`] trait, the [`Engine`] view a handler
//! acts through, and why a session ended.

use super::{EngineIo, SessionKey};
use crate::engineio::Version;
use crate::runtime::{ConnId, Ctx, HttpReply, Request, Response};

/// The worker context of an Engine.IO server over handler `E`.
pub type EngineCtx<E> = Ctx<EngineIo<E>>;

/// Why a session ended, with the reason strings of Node's engine.io / socket.io.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client closed the connection (or it was lost): `transport close`.
    TransportClose,
    /// A read or write failed, or the peer broke the protocol: `transport error`.
    TransportError,
    /// The peer missed its heartbeat: `ping timeout`.
    PingTimeout,
    /// The peer sent something that is not Engine.IO: `parse error`.
    ParseError,
    /// The server closed the session (`forced close`).
    ForcedClose,
    /// The worker is stopping: `server shutting down`.
    ServerShuttingDown,
}

impl DisconnectReason {
    /// Node's string for the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ForcedClose => "forced close",
            DisconnectReason::ServerShuttingDown => "server shutting down",
        }
    }
}

/// A message of a session.
#[derive(Debug, Clone, Copy)]
pub enum Data<'a> {
    /// A text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

/// The application of an Engine.IO server (the Socket.IO layer is one). Every method gets
/// an [`Engine`], through which it sends to sessions, closes them and reaches the worker.
#[allow(unused_variables)]
pub trait EngineHandler: Sized + 'static {
    /// The worker started.
    fn on_worker_start(&self, engine: Engine<'_, Self>) {}

    /// The worker is stopping.
    fn on_worker_stop(&self, engine: Engine<'_, Self>) {}

    /// A plain HTTP request outside the engine's path. The default answers 404.
    fn on_request(&self, engine: Engine<'_, Self>, conn: ConnId, request: Request) -> HttpReply {
        let mut r = Response::default();
        r.status(404).write("Not Found");
        HttpReply::Respond(r)
    }

    /// A valid handshake, before the session opens: `Err(response)` refuses it (the
    /// handshake middleware, e.g. seed 002's `Forbidden`).
    fn on_handshake(&self, engine: Engine<'_, Self>, request: &Request) -> Result<(), Response> {
        Ok(())
    }

    /// The session id for a new session opened on connection `fd` (`None`: a random one,
    /// URL-safe, that names `fd`). `polling`: the session starts on long-polling, so its id
    /// travels in URLs. A chosen id must end in `#<fd>` (that is how its worker is found).
    /// The Socket.IO layer names v3 WebSocket sessions `ServerID#FD`, as Hyperf does, since
    /// socket.io 2.x clients take the engine's sid as their socket id.
    fn session_id(
        &self,
        fd: crate::runtime::table::Fd,
        version: Version,
        polling: bool,
    ) -> Option<String> {
        None
    }

    /// A session opened (its OPEN packet is queued). `request` is the handshake request.
    fn on_open(&self, engine: Engine<'_, Self>, session: SessionKey, request: &Request);

    /// A message of a session.
    fn on_message(&self, engine: Engine<'_, Self>, session: SessionKey, data: Data<'_>);

    /// A polling session now goes over WebSocket `conn` (the upgrade completed).
    fn on_upgrade(&self, engine: Engine<'_, Self>, session: SessionKey, conn: ConnId) {}

    /// The session moves, with its WebSocket, to another worker (a rolling reload or a
    /// binary upgrade). Return what `on_adopt` needs there and forget the session here (no
    /// `on_close` follows); `None` keeps it from moving: its connection closes with 1001.
    fn on_hand_off(&self, engine: Engine<'_, Self>, session: SessionKey) -> Option<Vec<u8>> {
        None
    }

    /// A session handed over by the worker this one replaces, with what `on_hand_off`
    /// returned there (`on_open` is not called again).
    fn on_adopt(&self, engine: Engine<'_, Self>, session: SessionKey, state: &[u8]) {}

    /// A session ended. Sends to it fail from here on.
    fn on_close(&self, engine: Engine<'_, Self>, session: SessionKey, reason: DisconnectReason) {}

    /// Bytes another worker sent on `channel` (see `Ctx::send_to_worker`).
    fn on_peer_message(
        &self,
        engine: Engine<'_, Self>,
        from_worker: usize,
        channel: u16,
        data: &[u8],
    ) {
    }
}

/// The engine as a handler sees it: the server and the worker context.
pub struct Engine<'a, E> {
    /// The server.
    pub io: &'a EngineIo<E>,
    /// The worker context.
    pub cx: &'a EngineCtx<E>,
}

impl<E> Clone for Engine<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E> Copy for Engine<'_, E> {}

impl<'a, E: EngineHandler> Engine<'a, E> {
    /// The application handler.
    pub fn handler(&self) -> &'a E {
        self.io.handler()
    }

    /// Sends a text message (`4<text>`). `false` if the session is gone.
    pub fn send_text(&self, session: SessionKey, text: &str) -> bool {
        self.io.send_text(self.cx, session, text)
    }

    /// Sends a binary message. `false` if the session is gone.
    pub fn send_binary(&self, session: SessionKey, data: &[u8]) -> bool {
        self.io.send_binary(self.cx, session, data)
    }

    /// Closes a session; its `on_close` runs with `reason` when the connection is gone.
    pub fn close(&self, session: SessionKey, reason: DisconnectReason) -> bool {
        self.io.close(self.cx, session, reason)
    }

    /// The session's protocol version.
    pub fn version(&self, session: SessionKey) -> Option<Version> {
        self.io.with_session(session, |s| s.version)
    }

    /// The session's id (the `sid` of its OPEN packet).
    pub fn sid(&self, session: SessionKey) -> Option<String> {
        self.io.with_session(session, |s| s.sid.to_string())
    }

    /// The WebSocket carrying the session (`None` while it is on long-polling).
    pub fn conn(&self, session: SessionKey) -> Option<ConnId> {
        self.io.with_session(session, |s| s.ws()).flatten()
    }

    /// Whether the session exists.
    pub fn exists(&self, session: SessionKey) -> bool {
        self.io.with_session(session, |_| ()).is_some()
    }
}
