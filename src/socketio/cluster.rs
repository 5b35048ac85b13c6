//! What Socket.IO sends between workers (and, through another adapter, between nodes):
//! broadcasts, acknowledgements of broadcasts, node-wide queries and operations. Each is
//! encoded once (MessagePack) and crosses to each other worker once; the receiving worker
//! resolves its own rooms.

use std::rc::Rc;

use serde::{Deserialize, Serialize};

/// Who asked: the worker (and node, for a cluster adapter) a reply goes back to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// The node, empty within one node.
    pub node: String,
    /// The worker id.
    pub worker: u32,
}

/// Which sockets an operation addresses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Target {
    pub nsp: Rc<str>,
    pub rooms: Vec<Rc<str>>,
    pub except: Vec<Rc<str>>,
    pub flags: u8,
}

/// `local`: this worker only.
pub(crate) const LOCAL: u8 = 1;
/// `volatile`: may be dropped (not kept for recovery).
pub(crate) const VOLATILE: u8 = 2;
/// `compress(false)`.
pub(crate) const NO_COMPRESS: u8 = 4;
/// This node only: the other workers, no other node (`Operator::this_node`).
pub(crate) const THIS_NODE: u8 = 8;

/// An encoded packet: the text packet (`2["name",…]` with placeholders) and its blobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoded {
    /// The text form.
    pub text: String,
    /// The attachments.
    pub blobs: Vec<serde_bytes::ByteBuf>,
}

/// A socket as a node-wide query returns it (Node's `RemoteSocket` data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocketInfo {
    /// Its sid.
    pub sid: String,
    /// Its namespace.
    pub nsp: String,
    /// Its rooms, its own sid room first.
    pub rooms: Vec<String>,
    /// The worker that holds it.
    pub worker: u32,
}

/// A message between workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum ClusterMsg {
    /// Deliver to the target's local sockets; with `ack`, register the answers for the
    /// origin's collector `req` (packet id `id`) and report the count.
    Broadcast {
        target: Target,
        packet: Encoded,
        ack: Option<(Origin, u64)>,
        ack_timeout: u64,
        /// The recovery offset the packet carries (kept by every worker for recovery).
        offset: Option<String>,
    },
    /// How many local sockets a broadcast with an acknowledgement reached (`node`: the
    /// node that reports, empty within the node).
    AckCount { req: u64, count: u32, node: String },
    /// One client's acknowledgement of a broadcast.
    AckReply { req: u64, args: Encoded },
    /// Node-wide queries: `fetch_sockets` / counting.
    Fetch {
        origin: Origin,
        req: u64,
        target: Target,
    },
    /// The answer to `Fetch` (`node` as in `AckCount`).
    FetchReply {
        req: u64,
        sockets: Vec<SocketInfo>,
        node: String,
    },
    /// `sockets_join`.
    Join { target: Target, rooms: Vec<Rc<str>> },
    /// `sockets_leave`.
    Leave { target: Target, rooms: Vec<Rc<str>> },
    /// `disconnect_sockets(close)`.
    Disconnect { target: Target, close: bool },
    /// `server_side_emit`: an event for the other workers' namespace handlers.
    ServerEvent {
        nsp: Rc<str>,
        event: String,
        args: Encoded,
    },
    /// Connection state recovery: the session `pid` (missed packets after `offset`).
    Restore {
        origin: Origin,
        req: u64,
        pid: String,
        offset: Option<String>,
    },
    /// The answer to `Restore`.
    Restored {
        req: u64,
        session: Option<super::recovery::Session>,
    },
}

impl ClusterMsg {
    /// MessagePack bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising these plain types into a Vec cannot fail.
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    /// Parses bytes from another worker; `None` (logged) if they are not a message.
    pub fn decode(bytes: &[u8]) -> Option<ClusterMsg> {
        match rmp_serde::from_slice(bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                log::warn!("socket.io: undecodable cluster message ({e})");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let m = ClusterMsg::Broadcast {
            target: Target {
                nsp: "/".into(),
                rooms: vec!["a".into(), "b".into()],
                except: vec!["sid#1".into()],
                flags: LOCAL,
            },
            packet: Encoded {
                text: "51-[\"x\",{\"_placeholder\":true,\"num\":0}]".into(),
                blobs: vec![serde_bytes::ByteBuf::from(vec![0, 1, 255])],
            },
            ack: Some((
                Origin {
                    node: String::new(),
                    worker: 1,
                },
                7,
            )),
            ack_timeout: 100,
            offset: None,
        };
        assert_eq!(ClusterMsg::decode(&m.encode()), Some(m));
        assert_eq!(ClusterMsg::decode(b"\xc1garbage"), None);
    }
}
