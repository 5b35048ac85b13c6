//! Socket.IO protocol codecs (protocol v4 for socket.io 2.x clients over Engine.IO v3, and
//! v5 for socket.io 3.x/4.x clients over Engine.IO v4), sans-IO: strings and bytes in,
//! values out.
//!
//! * [`packet`] — the text form of one packet, `<type>[<attachments>-][<nsp>,][<id>][<json>]`.
//! * [`server`], [`namespace`], [`socket`], [`io`] — the server on top of [`crate::engineio`]:
//!   namespaces, sockets, rooms, acknowledgements both ways, the global API.
//! * [`adapter`], [`cluster`] — how operations reach the other workers (encoded once).
//! * [`recovery`] — connection state recovery.
//! * [`binary`] — binary attachments: placeholders in the JSON, the blobs in separate
//!   Engine.IO binary messages, and a [`Reassembler`] that puts them back together.

pub mod acks;
pub mod adapter;
pub mod args;
pub mod binary;
pub mod cluster;
pub mod config;
mod connect;
mod deliver;
mod dispatch;
mod hand_off;
pub mod io;
mod local_ops;
pub mod namespace;
pub mod packet;
pub mod recovery;
#[cfg(feature = "redis")]
pub(crate) mod relay;
mod remote;
pub mod server;
pub mod socket;
mod state;

pub use acks::{AckError, BroadcastAcks, FetchResult, Partial};
pub use adapter::{Adapter, MemoryAdapter, NodeAdapter, NullAdapter, SOCKETIO_CHANNEL};
pub use args::{AckSender, Args, IntoArgs, IntoReply, Reply};
pub use binary::{deconstruct, reconstruct, Message, Reassembler, Value};
pub use cluster::{Origin, SocketInfo};
pub use config::{RecoveryConfig, SioConfig};
pub use io::{Io, IoHandle, Operator, SioCtx};
pub use namespace::{ConnectError, Namespace};
pub use packet::{Packet, PacketKind};
pub use server::{SioStats, SocketIo};
pub use socket::Socket;

/// Socket.IO protocol revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// Protocol 4: socket.io 2.x, over Engine.IO v3.
    V4,
    /// Protocol 5: socket.io 3.x and 4.x, over Engine.IO v4.
    V5,
}

impl Version {
    /// The Socket.IO protocol spoken over a given Engine.IO protocol.
    pub fn for_engineio(v: crate::engineio::Version) -> Version {
        match v {
            crate::engineio::Version::V3 => Version::V4,
            crate::engineio::Version::V4 => Version::V5,
        }
    }
}

/// Why a Socket.IO packet could not be decoded or reassembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The packet text was empty.
    #[error("empty packet")]
    Empty,
    /// The first character was not a packet type digit (`0`..`6`).
    #[error("unknown packet type {0:#04x}")]
    UnknownType(u8),
    /// A binary packet's `<n>-` attachment count was missing or malformed.
    #[error("illegal attachments")]
    IllegalAttachments,
    /// The acknowledgement id does not fit in a `u64`.
    #[error("invalid ack id")]
    InvalidId,
    /// The payload after the header is not JSON.
    #[error("invalid JSON payload")]
    InvalidJson,
    /// The payload is JSON but not what this packet type carries (v5 rules).
    #[error("invalid payload for packet type {0:?}")]
    InvalidPayload(PacketKind),
    /// The input (or text plus attachments) is larger than `max_payload`.
    #[error("packet of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The size reached.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A binary frame arrived while no packet was waiting for attachments.
    #[error("binary frame without an announcing packet")]
    UnexpectedBinary,
    /// A text packet arrived while a binary packet still waited for attachments.
    #[error("text packet while waiting for {0} more attachment(s)")]
    UnexpectedText(usize),
    /// The placeholders in the JSON do not use exactly the announced attachments.
    #[error("packet announced {announced} attachment(s) but its placeholders use {used}")]
    AttachmentCount {
        /// The count in the `<n>-` header.
        announced: usize,
        /// Distinct attachments the placeholders refer to.
        used: usize,
    },
    /// A placeholder refers to an attachment that does not exist.
    #[error("placeholder {0} out of range")]
    PlaceholderOutOfRange(u64),
}
