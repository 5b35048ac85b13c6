//! The seam between the runtime and the layers above it: the events a worker delivers
//! ([`Handler`]) and the values they carry.
//!
//! The runtime knows nothing of Swoole callbacks, routers or Socket.IO: it accepts, reads,
//! decodes, writes and closes, and calls a `Handler` for everything a layer decides. Every
//! method gets the worker's [`Ctx`](crate::runtime::Ctx), through which it pushes, closes,
//! broadcasts, answers held requests, talks to other workers, sets timers and defers work.
//! No runtime borrow is held while a handler method runs, so a handler may call any `Ctx`
//! method from anywhere (see `Ctx` for the rule).

use crate::protocol::frame::OpCode;
use crate::runtime::http::{Request, Response};
use crate::runtime::table::Fd;
use crate::runtime::worker::Ctx;

/// A connection of this worker as the runtime hands it to a handler: the server-wide `fd`
/// (any worker can address it) and the local slot, a dense index below
/// `Ctx::slots()` that a handler can use to keep typed per-connection state (see
/// [`ConnMap`](crate::runtime::ConnMap)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    /// The connection id, unique for the life of the server.
    pub fd: Fd,
    /// This worker's slot for the connection (reused after it closes, with a new `fd`).
    pub slot: u32,
}

/// A message or control frame from a WebSocket client. Fragmented messages arrive
/// reassembled and inflated; text is valid UTF-8.
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    /// A text or binary message.
    Data {
        /// `Text` or `Binary`.
        opcode: OpCode,
        /// The payload (inflated if it came compressed).
        data: &'a [u8],
        /// It came compressed (permessage-deflate).
        compressed: bool,
    },
    /// A ping (delivered only with `open_websocket_ping_frame`; otherwise the runtime answers
    /// it with a pong itself).
    Ping(&'a [u8]),
    /// A pong (delivered only with `open_websocket_pong_frame`).
    Pong(&'a [u8]),
    /// The peer's close frame (delivered only with `open_websocket_close_frame`); the runtime
    /// runs the closing handshake either way.
    Close {
        /// The peer's code; `None` when it sent an empty close frame.
        code: Option<u16>,
        /// The peer's reason.
        reason: &'a str,
    },
}

/// Why a connection closed: the first cause the runtime saw. Passed to
/// [`Handler::on_close`] and [`Handler::on_disconnect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer started the closing handshake with this code (`None`: empty close frame).
    PeerClosed(Option<u16>),
    /// The server started the closing handshake with this code (`disconnect`, a close frame
    /// pushed by the application, a panic in a handler: 1011).
    ServerClosed(u16),
    /// The peer broke a protocol rule; the server closed with this code (1002, 1007, 1009).
    ProtocolError(u16),
    /// The TCP connection ended without a closing handshake (FIN or reset from the peer).
    ConnectionLost,
    /// A read or write failed.
    Io,
    /// No complete HTTP request within `handshake_timeout`.
    HandshakeTimeout,
    /// The peer did not answer our close frame within the wait.
    CloseTimeout,
    /// Nothing received for `heartbeat_idle_time` (closed with 1000).
    Idle,
    /// The client did not read: its queue would have exceeded `buffer_output_size`.
    OutputLimit,
    /// The worker is stopping (shutdown or reload; clients were sent 1001).
    Shutdown,
    /// The server closed the connection without a close frame (`close(fd)`, an HTTP response
    /// with `Connection: close`, a refused handshake).
    ServerDropped,
    /// TLS failed: the handshake or a record was refused (the peer got an alert).
    Tls,
}

impl CloseReason {
    /// The WebSocket close code this reason carries, if any.
    pub fn code(&self) -> Option<u16> {
        match *self {
            CloseReason::PeerClosed(c) => c,
            CloseReason::ServerClosed(c) | CloseReason::ProtocolError(c) => Some(c),
            CloseReason::Idle => Some(1000),
            CloseReason::Shutdown => Some(1001),
            _ => None,
        }
    }

    /// Whether the peer ended the connection (close frame or TCP) rather than the server.
    pub fn by_peer(&self) -> bool {
        matches!(
            self,
            CloseReason::PeerClosed(_) | CloseReason::ConnectionLost
        )
    }
}

/// What a handler answers to a plain HTTP request.
#[derive(Debug)]
pub enum HttpReply {
    /// Write this response now (keep-alive unless it says `close` or the client did).
    Respond(Response),
    /// Answer later with [`Ctx::respond`](crate::runtime::Ctx::respond) (long-polling). While a
    /// request is held, further pipelined requests wait and the handshake timeout does not
    /// apply; if the client goes away first, `on_disconnect` runs.
    Hold,
    /// Move the connection to worker `n` (its socket travels through the IPC channel), where
    /// this request and whatever followed it are handled as if they had arrived there. For
    /// requests that belong to state another worker holds; no `on_disconnect` runs here. If
    /// that worker cannot take it (not running, its channel full), the client gets 503.
    HandOff(usize),
}

/// What a handler answers to a WebSocket upgrade request. Acceptance always goes through the
/// runtime's one upgrade path: the request is validated (RFC 6455), permessage-deflate is
/// negotiated when `websocket_compression` is on, the subprotocol is chosen, and every header
/// is sanitised.
#[derive(Debug, Default)]
pub enum UpgradeReply {
    /// Accept with the runtime's defaults.
    #[default]
    Accept,
    /// Accept with a subprotocol of the handler's choosing (it must be one the client
    /// offered, else none is sent) and extra response headers.
    AcceptWith {
        /// `Sec-WebSocket-Protocol` to answer; `None`: the runtime's choice from
        /// `websocket_subprotocol`.
        protocol: Option<String>,
        /// More headers for the 101 (CR/LF are neutralised).
        headers: Vec<(String, String)>,
    },
    /// Refuse with this response (its status must not be 101); the connection closes after it.
    Refuse(Response),
    /// Move the connection to worker `n`, which handles the upgrade request as if it had
    /// arrived there (see [`HttpReply::HandOff`]).
    HandOff(usize),
}

/// What a layer says of a connection a reload is about to hand to the new worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandOff {
    /// Move it, with this state for the new worker's `on_adopt`.
    Move(Option<Vec<u8>>),
    /// Do not move it: close it with 1001 (the client reconnects).
    Close,
}

/// What a worker calls. Implemented by the Swoole-style [`Server`](crate::Server) and by every
/// layer that drives the runtime directly.
///
/// Methods take `&self` (a worker is single-threaded; keep mutable state in `Cell`/`RefCell`)
/// and run on the worker's reactor thread. A panic in any of them is caught: the connection
/// concerned is closed (1011 for a WebSocket, 500 for an HTTP request) and the worker goes on.
#[allow(unused_variables)]
pub trait Handler: Sized + 'static {
    /// The worker started (before it accepts). Keep a clone of `cx` to use it later.
    fn on_worker_start(&self, cx: &Ctx<Self>) {}

    /// The worker is stopping (before its clients are told 1001).
    fn on_worker_stop(&self, cx: &Ctx<Self>) {}

    /// A plain HTTP request (not an upgrade, or any request on an HTTP-only listener).
    /// The default answers `400 Bad Request`.
    fn on_request(&self, cx: &Ctx<Self>, conn: ConnId, request: Request) -> HttpReply {
        HttpReply::Respond(Response::bad_request())
    }

    /// A WebSocket upgrade request on a WebSocket listener, before it is answered.
    fn on_upgrade(&self, cx: &Ctx<Self>, conn: ConnId, request: &Request) -> UpgradeReply {
        UpgradeReply::Accept
    }

    /// The 101 is queued; the connection is an established WebSocket.
    fn on_open(&self, cx: &Ctx<Self>, conn: ConnId, request: &Request) {}

    /// A message (or a control frame the settings ask to see).
    fn on_message(&self, cx: &Ctx<Self>, conn: ConnId, message: Message<'_>);

    /// An established WebSocket closed. Its table entry still exists while this runs; pushes
    /// to it fail.
    fn on_close(&self, cx: &Ctx<Self>, conn: ConnId, reason: CloseReason) {}

    /// A connection that never became a WebSocket closed (a held request's client included).
    fn on_disconnect(&self, cx: &Ctx<Self>, conn: ConnId, reason: CloseReason) {}

    /// Bytes another worker sent with [`Ctx::send_to_worker`](crate::runtime::Ctx::send_to_worker)
    /// on `channel` (a layer's own message kind; the runtime does not interpret it).
    fn on_peer_message(&self, cx: &Ctx<Self>, from_worker: usize, channel: u16, data: &[u8]) {}

    /// The connection is about to leave this worker, alive, for the replacement of a rolling
    /// reload or a binary upgrade. [`HandOff::Move`] carries what the layer needs to go on
    /// with it there (it reaches [`on_adopt`](Handler::on_adopt) in the new worker); the layer
    /// drops its own copy then: neither `on_close` nor `on_disconnect` is called for it here.
    /// [`HandOff::Close`] keeps it here, closed with 1001 as in a plain stop.
    fn on_hand_off(&self, cx: &Ctx<Self>, conn: ConnId) -> HandOff {
        HandOff::Move(None)
    }

    /// A connection handed over by the worker this one replaces, with what `on_hand_off`
    /// returned there. Its fd, slot and `connection_info` are those it had; `on_open` is not
    /// called again. Called before any of its input is handled here.
    fn on_adopt(&self, cx: &Ctx<Self>, conn: ConnId, state: Option<&[u8]>) {}
}
