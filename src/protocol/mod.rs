//! Sans-IO WebSocket protocol layer (RFC 6455 + RFC 7692 permessage-deflate).
//!
//! Nothing in here touches sockets: the runtime feeds bytes in and writes the
//! bytes produced here out. No function panics on any input.

pub mod close;
pub mod decoder;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
mod raw_inflate;
pub mod utf8;

pub use close::{close_payload, is_valid_app_close_code, is_valid_wire_close_code, CloseState};
pub use decoder::{DecoderConfig, Event, MessageDecoder};
pub use deflate::{negotiate, DeflateConfig, Deflater, Inflater};
pub use error::{HandshakeError, ProtocolError};
pub use frame::{
    encode_frame, encode_header, pack, parse_header, unpack, FrameHeader, OpCode, OwnedFrame,
};
pub use handshake::{
    accept_key, build_101, build_response, parse_request, reason_phrase, select_subprotocol,
    validate_upgrade, HttpRequest, UpgradeRequest,
};
pub use mask::apply_mask;
pub use utf8::Utf8Validator;
