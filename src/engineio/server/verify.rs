//! Checks of a request to the engine's path, answered as engine.io answers them: the error
//! codes and messages of `Server.errorMessages`, a JSON body for plain requests and
//! engine.io's `abortUpgrade` text for upgrade requests.

use crate::engineio::Version;
use crate::runtime::{Request, Response};

/// engine.io's handshake errors (`Server.errors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// `transport` missing or not one this server offers.
    UnknownTransport = 0,
    /// A `sid` that names no session.
    UnknownSid = 1,
    /// A handshake that is not a GET.
    BadHandshakeMethod = 2,
    /// Anything else malformed.
    BadRequest = 3,
    /// Refused by a middleware (`allowRequest`).
    Forbidden = 4,
    /// `EIO` missing, or a version this server does not speak.
    UnsupportedProtocolVersion = 5,
}

impl HandshakeError {
    /// engine.io's message for the code.
    pub fn message(self) -> &'static str {
        match self {
            HandshakeError::UnknownTransport => "Transport unknown",
            HandshakeError::UnknownSid => "Session ID unknown",
            HandshakeError::BadHandshakeMethod => "Bad handshake method",
            HandshakeError::BadRequest => "Bad request",
            HandshakeError::Forbidden => "Forbidden",
            HandshakeError::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    /// The answer to a plain HTTP request: 400 (403 for `Forbidden`) with
    /// `{"code":N,"message":"…"}`.
    pub fn http_response(self) -> Response {
        let mut r = Response::default();
        let status = if self == HandshakeError::Forbidden {
            403
        } else {
            400
        };
        let body = serde_json::json!({ "code": self as u8, "message": self.message() });
        r.status(status)
            .header("Content-Type", "application/json")
            .write(body.to_string());
        r
    }

    /// The answer to an upgrade request (engine.io's `abortUpgrade`): 400 with the message
    /// as `text/html`, then the connection closes.
    pub fn upgrade_response(self) -> Response {
        let mut r = Response::default();
        r.status(400)
            .header("Content-Type", "text/html")
            .write(self.message())
            .close();
        r
    }
}

/// The transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

/// What a valid request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// A new session (`EIO` checked).
    Handshake {
        /// The protocol version.
        version: Version,
        /// Its first transport.
        transport: TransportKind,
    },
    /// A request of an existing session (`sid`), whose owner is still to be found.
    Session {
        /// The session id.
        sid: String,
        /// The transport of this request.
        transport: TransportKind,
    },
}

/// Checks a request to the engine's path in engine.io's order (transport, sid, method,
/// upgrade, version). `websocket`: an upgrade request; `polling`: long-polling is served.
pub fn verify(
    request: &Request,
    websocket: bool,
    allow_eio3: bool,
    polling: bool,
) -> Result<Verified, HandshakeError> {
    let transport = match request.get("transport").as_deref() {
        Some("websocket") => TransportKind::WebSocket,
        Some("polling") if polling => TransportKind::Polling,
        _ => return Err(HandshakeError::UnknownTransport),
    };
    if let Some(sid) = request.get("sid") {
        // An upgrade request may carry `transport=websocket` only.
        if websocket != (transport == TransportKind::WebSocket) {
            return Err(HandshakeError::BadRequest);
        }
        return Ok(Verified::Session { sid, transport });
    }
    if request.method() != "GET" {
        return Err(HandshakeError::BadHandshakeMethod);
    }
    if websocket != (transport == TransportKind::WebSocket) {
        return Err(HandshakeError::BadRequest);
    }
    let version = request
        .get("EIO")
        .as_deref()
        .and_then(Version::from_query)
        .filter(|v| allow_eio3 || *v == Version::V4)
        .ok_or(HandshakeError::UnsupportedProtocolVersion)?;
    Ok(Verified::Handshake { version, transport })
}
