//! How Socket.IO operations reach sockets beyond this worker (socketioxide's and Node's
//! "adapter"). Every worker keeps the rooms of its own sockets; an adapter only carries the
//! encoded [`ClusterMsg`](super::cluster::ClusterMsg)s to the other parties and the replies
//! back. Three come with the crate:
//!
//! - [`NodeAdapter`] (the default): every worker of this node, through the runtime's peer
//!   channel — one crossing per worker, encoded once.
//! - [`MemoryAdapter`]: this worker only (a one-worker server, or `local` everywhere).
//! - [`NullAdapter`]: no rooms at all; room emits reach nobody (Hyperf's `NullAdapter`, for
//!   apps that only answer their own sockets).
//!
//! A cluster adapter (the Redis one of `prefork_ws::cluster::redis`, feature `redis`) is one
//! more implementation: it publishes to the other nodes as well and feeds what it receives to
//! [`SocketIo::receive_cluster_bytes`](super::SocketIo::receive_cluster_bytes).

use super::cluster::Origin;
use super::io::{Io, SioCtx};

/// The peer channel the Socket.IO layer uses between workers.
pub const SOCKETIO_CHANNEL: u16 = 0x5105;

/// Carries encoded cluster messages to the other workers (and nodes).
pub trait Adapter: 'static {
    /// Whether sockets join rooms at all.
    fn keeps_rooms(&self) -> bool {
        true
    }

    /// Sends `msg` to every other party; returns how many will receive it (how many replies
    /// a request waits for).
    fn publish(&self, cx: &SioCtx, msg: &[u8]) -> usize;

    /// Sends a reply to the party that asked.
    fn reply(&self, cx: &SioCtx, to: &Origin, msg: &[u8]) -> bool;

    /// Sends `msg` to one worker of this node (e.g. the one that holds a session).
    fn send_to_worker(&self, cx: &SioCtx, worker: usize, msg: &[u8]) -> bool {
        cx.send_to_worker(worker, SOCKETIO_CHANNEL, msg)
    }

    /// This party's name in replies' `Origin::node` (empty within one node).
    fn node(&self) -> &str {
        ""
    }

    /// Sends `msg` (a recovery request) to worker `worker` of node `node`; `false` when the
    /// adapter reaches no other node.
    fn send_to_node(&self, cx: &SioCtx, node: &str, worker: usize, msg: &[u8]) -> bool {
        let _ = (cx, node, worker, msg);
        false
    }

    /// The other live nodes by id, as far as the adapter knows them (a timed-out request's
    /// [`Partial::missing_nodes`](super::Partial::missing_nodes) names those that did not
    /// answer).
    fn other_nodes(&self) -> Vec<String> {
        Vec::new()
    }

    /// The worker started (a cluster adapter starts its connections here: they live in the
    /// worker's process).
    fn start(&self, io: &Io<'_>) {
        let _ = io;
    }

    /// The worker is stopping.
    fn stop(&self, io: &Io<'_>) {
        let _ = io;
    }
}

/// Every worker of this node, through the peer channel (the default).
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeAdapter;

impl Adapter for NodeAdapter {
    fn publish(&self, cx: &SioCtx, msg: &[u8]) -> usize {
        cx.send_to_all_workers(SOCKETIO_CHANNEL, msg)
    }

    fn reply(&self, cx: &SioCtx, to: &Origin, msg: &[u8]) -> bool {
        cx.send_to_worker(to.worker as usize, SOCKETIO_CHANNEL, msg)
    }
}

/// This worker only.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryAdapter;

impl Adapter for MemoryAdapter {
    fn publish(&self, _cx: &SioCtx, _msg: &[u8]) -> usize {
        0
    }

    fn reply(&self, _cx: &SioCtx, _to: &Origin, _msg: &[u8]) -> bool {
        false
    }

    fn send_to_worker(&self, _cx: &SioCtx, _worker: usize, _msg: &[u8]) -> bool {
        false
    }
}

/// No rooms, nothing beyond the worker.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullAdapter;

impl Adapter for NullAdapter {
    fn keeps_rooms(&self) -> bool {
        false
    }

    fn publish(&self, _cx: &SioCtx, _msg: &[u8]) -> usize {
        0
    }

    fn reply(&self, _cx: &SioCtx, _to: &Origin, _msg: &[u8]) -> bool {
        false
    }

    fn send_to_worker(&self, _cx: &SioCtx, _worker: usize, _msg: &[u8]) -> bool {
        false
    }
}
