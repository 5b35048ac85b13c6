//! Typed protocol and handshake errors.

use super::handshake::build_response;

/// A violation of RFC 6455 / RFC 7692 by the peer (or a limit it exceeded).
///
/// [`ProtocolError::close_code`] gives the close code to send before dropping
/// the connection.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A client frame without the MASK bit (server side).
    #[error("unmasked frame from client")]
    UnmaskedFrame,
    /// A masked frame where masking is forbidden (client side decoding).
    #[error("masked frame from server")]
    MaskedFrameFromServer,
    /// RSV1/RSV2/RSV3 set without a negotiated extension defining them.
    #[error("reserved bits set")]
    ReservedBits,
    /// Opcode 3-7 or 11-15.
    #[error("reserved opcode {0}")]
    ReservedOpcode(u8),
    /// Control frame with FIN = 0.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// Control frame payload longer than 125 bytes.
    #[error("control frame payload too long ({0} bytes)")]
    ControlTooLong(u64),
    /// Continuation frame with no message in progress.
    #[error("continuation frame without a started message")]
    UnexpectedContinuation,
    /// New text/binary frame while a fragmented message is in progress.
    #[error("expected a continuation frame")]
    ExpectedContinuation,
    /// Close code that must not appear on the wire.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// Close frame payload of exactly one byte.
    #[error("invalid close payload")]
    InvalidClosePayload,
    /// Close reason longer than 123 bytes (when building a close payload).
    #[error("close reason too long ({0} bytes, max 123)")]
    CloseReasonTooLong(usize),
    /// Text message or close reason that is not valid UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// Message (reassembled and/or inflated) larger than the configured limit.
    #[error("message too large (limit {limit} bytes)")]
    MessageTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// 64-bit payload length with the most significant bit set.
    #[error("invalid payload length")]
    InvalidLength,
    /// The compressed payload could not be inflated (or deflated).
    #[error("inflate error: {0}")]
    Inflate(String),
    /// Bytes received after the peer's close frame.
    #[error("data after close frame")]
    DataAfterClose,
}

impl ProtocolError {
    /// Close code to send: 1002 protocol errors, 1007 invalid UTF-8 (text and
    /// close reason), 1009 too large (incl. inflated size).
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolError::InvalidUtf8 => 1007,
            ProtocolError::MessageTooLarge { .. } => 1009,
            _ => 1002,
        }
    }
}

/// A rejected HTTP / upgrade request.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// Malformed request or failed upgrade validation: 400.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Header block larger than allowed: 431.
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// Sec-WebSocket-Version missing or not 13: 426 with `Sec-WebSocket-Version: 13`.
    #[error("unsupported websocket version")]
    UnsupportedVersion,
    /// Method not allowed: 405 (validate_upgrade reports non-GET as 400 instead).
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl HandshakeError {
    /// HTTP status code for this error.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::BadRequest(_) => 400,
            HandshakeError::HeadersTooLarge => 431,
            HandshakeError::UnsupportedVersion => 426,
            HandshakeError::MethodNotAllowed => 405,
        }
    }

    /// A complete HTTP/1.1 response (with `Connection: close` and
    /// `Content-Length`; for 426 also `Sec-WebSocket-Version: 13`).
    pub fn response(&self) -> Vec<u8> {
        let status = self.status();
        let mut headers: Vec<(String, String)> = vec![
            ("Content-Type".into(), "text/plain".into()),
            ("Connection".into(), "close".into()),
        ];
        match self {
            HandshakeError::UnsupportedVersion => {
                headers.push(("Sec-WebSocket-Version".into(), "13".into()));
                headers.push(("Upgrade".into(), "websocket".into()));
            }
            HandshakeError::MethodNotAllowed => {
                headers.push(("Allow".into(), "GET".into()));
            }
            _ => {}
        }
        let body = format!("{}\n", self);
        build_response(status, &headers, body.as_bytes())
    }
}
