//! # prefork-ws
//!
//! The programming model of PHP Swoole's `WebSocket\Server` — `on_open`, `on_message`,
//! `on_close`, `push(fd, ...)`, `disconnect`, `connection_info`, `is_established` — on a
//! multi-process prefork runtime: a master process owns the listening sockets and supervises
//! `worker_num` worker processes, each running one mio reactor; a shared-memory connection
//! table answers for any fd from any worker, and Unix datagram sockets carry pushes between
//! workers.
//!
//! The WebSocket protocol itself (RFC 6455 and RFC 7692) lives in the IO-free [`protocol`]
//! module.

#![warn(missing_docs)]

pub mod cli;
#[cfg(feature = "redis")]
pub mod cluster;
pub mod engineio;
#[cfg(feature = "hyperf")]
pub mod hyperf;
pub mod protocol;
pub mod runtime;
pub mod server;
pub mod socketio;

pub use protocol::frame::{
    pack, unpack, OpCode, OwnedFrame, FLAG_COMPRESS, FLAG_FIN, FLAG_RSV1, FLAG_RSV2, FLAG_RSV3,
    WEBSOCKET_STATUS_ACTIVE, WEBSOCKET_STATUS_CLOSING, WEBSOCKET_STATUS_CONNECTION,
    WEBSOCKET_STATUS_HANDSHAKE,
};
pub use runtime::table::{ConnectionInfo, Fd, Stats, WorkerStats};
pub use runtime::timer::TimerId;
pub use runtime::{BroadcastReport, CloseReason};
pub use server::{Error, Frame, Request, Response, Server, ServerHandle, Settings};

/// The README's Rust examples are compiled as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
