//! Engine.IO protocol codecs (protocol v3 and v4), sans-IO: bytes in, values out.
//!
//! * [`packet`] — one packet over the WebSocket transport (one frame per packet).
//! * [`payload`] — several packets in one HTTP long-polling body.
//! * [`open`] — the JSON carried by the OPEN packet of the handshake.
//!
//! Nothing here touches a socket or the runtime; the Socket.IO layer ([`crate::socketio`])
//! is built on top of these values.

pub mod open;
pub mod packet;
pub mod payload;
pub mod server;

pub use open::OpenData;
pub use packet::{decode_binary, decode_text, encode_packet, Data, Frame, Packet, PacketType};
pub use payload::{
    decode_payload, encode_payload, encode_payload_v3, CONTENT_TYPE_BINARY, CONTENT_TYPE_TEXT,
};
pub use server::{
    Data as EngineData, DisconnectReason, Engine, EngineConfig, EngineCtx, EngineHandler, EngineIo,
    SessionKey,
};

/// Engine.IO protocol revision, as sent by the client in the `EIO` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `EIO=3`: engine.io 3.x servers, socket.io 2.x clients.
    V3,
    /// `EIO=4`: engine.io 4.x+ servers, socket.io 3.x/4.x clients.
    V4,
}

impl Version {
    /// Parses the value of the `EIO` query parameter (`"3"` or `"4"`).
    pub fn from_query(eio: &str) -> Option<Version> {
        match eio {
            "3" => Some(Version::V3),
            "4" => Some(Version::V4),
            _ => None,
        }
    }
}

/// Why some bytes are not a valid Engine.IO packet or payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The frame, payload or packet inside a payload was empty.
    #[error("empty packet")]
    Empty,
    /// The first character was not a packet type digit (`0`..`6`).
    #[error("unknown packet type {0:#04x}")]
    UnknownType(u8),
    /// Text that must be UTF-8 was not.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// A `b`-prefixed packet carried invalid base64.
    #[error("invalid base64")]
    InvalidBase64,
    /// The input is larger than the `max_payload` the caller allows.
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Length of the input (or the length a header claimed).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A v3 payload length header was malformed, or claimed more than the input holds.
    #[error("invalid payload length")]
    InvalidLength,
}
