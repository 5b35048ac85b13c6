//! `Frame`: a message as Swoole's `onMessage` receives it.

use crate::protocol::frame::OpCode;
use crate::runtime::table::Fd;

/// A message received from a client (Swoole's `Swoole\WebSocket\Frame`). Fragmented messages
/// arrive reassembled; text is valid UTF-8.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Connection id of the sender.
    pub fd: Fd,
    /// Payload (inflated if it was compressed).
    pub data: &'a [u8],
    /// `Text` or `Binary`; `Ping`, `Pong` and `Close` only with the `open_websocket_*_frame`
    /// settings.
    pub opcode: OpCode,
    /// `FLAG_FIN`, plus `FLAG_COMPRESS` if the message came compressed.
    pub flags: u8,
    /// Always `true`: messages are reassembled before the callback.
    pub finish: bool,
    /// Close frames: the peer's code (0 when it sent none).
    pub code: u16,
    /// Close frames: the peer's reason.
    pub reason: &'a str,
}

impl<'a> Frame<'a> {
    /// The payload as text, when it is a text message.
    pub fn text(&self) -> Option<&'a str> {
        match self.opcode {
            OpCode::Text => std::str::from_utf8(self.data).ok(),
            _ => None,
        }
    }
}
