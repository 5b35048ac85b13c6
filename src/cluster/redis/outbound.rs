//! What a worker's cluster message becomes on Redis: the channel and the payload in Node's
//! wire format (see [`super::wire`]). Answers and recovery requests never leave the node
//! this way (answers to other nodes are published by the relays of [`super::inbound`]).

use std::rc::Rc;

use rmpv::Value as Mp;

use super::mpack::{self, map};
use super::wire::{self, opts_to_mp};
use crate::socketio::cluster::{ClusterMsg, Target, LOCAL, THIS_NODE};

/// A PUBLISH to make.
#[derive(Debug, PartialEq)]
pub(crate) struct Outbound {
    pub channel: String,
    pub payload: Vec<u8>,
    /// Whether every other node answers it (the asker waits for them).
    pub answered: bool,
}

fn names(v: &[Rc<str>]) -> Vec<&str> {
    v.iter().map(|r| &**r).collect()
}

fn selection(t: &Target) -> Mp {
    opts_to_mp(&names(&t.rooms), &names(&t.except), t.flags, None)
}

/// The publication of `msg` from node `uid` under key prefix `key`; `None` for what stays
/// on the node.
pub(crate) fn outbound(key: &str, uid: &str, msg: &ClusterMsg) -> Option<Outbound> {
    let request = |nsp: &str, fields: Vec<(&str, Mp)>, answered: bool| {
        let mut all = vec![("uid", Mp::from(uid))];
        all.extend(fields);
        Some(Outbound {
            channel: wire::request_channel(key, nsp),
            payload: mpack::encode(&map(all)),
            answered,
        })
    };
    let node_only = |t: &Target| t.flags & (LOCAL | THIS_NODE) != 0;
    match msg {
        ClusterMsg::Broadcast { target, .. } if node_only(target) => None,
        ClusterMsg::Broadcast {
            target,
            packet,
            ack: None,
            ..
        } => {
            let room = (target.rooms.len() == 1).then(|| &*target.rooms[0]);
            let body = Mp::Array(vec![
                Mp::from(uid),
                wire::packet_to_mp(packet)?,
                selection(target),
            ]);
            Some(Outbound {
                channel: wire::broadcast_channel(key, &target.nsp, room),
                payload: mpack::encode(&body),
                answered: false,
            })
        }
        ClusterMsg::Broadcast {
            target,
            packet,
            ack: Some((origin, req)),
            ack_timeout,
            ..
        } => {
            let opts = opts_to_mp(
                &names(&target.rooms),
                &names(&target.except),
                target.flags,
                Some(*ack_timeout),
            );
            let fields = vec![
                (
                    "requestId",
                    Mp::from(wire::request_id(uid, origin.worker, *req)),
                ),
                ("type", Mp::from(wire::BROADCAST)),
                ("packet", wire::packet_to_mp(packet)?),
                ("opts", opts),
            ];
            request(&target.nsp, fields, true)
        }
        ClusterMsg::Fetch { target, .. } if node_only(target) => None,
        ClusterMsg::Fetch {
            origin,
            req,
            target,
        } => {
            let fields = vec![
                (
                    "requestId",
                    Mp::from(wire::request_id(uid, origin.worker, *req)),
                ),
                ("type", Mp::from(wire::REMOTE_FETCH)),
                ("opts", selection(target)),
            ];
            request(&target.nsp, fields, true)
        }
        ClusterMsg::Join { target, rooms } | ClusterMsg::Leave { target, rooms } => {
            if node_only(target) {
                return None;
            }
            let kind = match msg {
                ClusterMsg::Join { .. } => wire::REMOTE_JOIN,
                _ => wire::REMOTE_LEAVE,
            };
            let fields = vec![
                ("type", Mp::from(kind)),
                ("opts", selection(target)),
                ("rooms", mpack::strings(&names(rooms))),
            ];
            request(&target.nsp, fields, false)
        }
        ClusterMsg::Disconnect { target, close } => {
            if node_only(target) {
                return None;
            }
            let fields = vec![
                ("type", Mp::from(wire::REMOTE_DISCONNECT)),
                ("opts", selection(target)),
                ("close", Mp::Boolean(*close)),
            ];
            request(&target.nsp, fields, false)
        }
        ClusterMsg::ServerEvent { nsp, args, .. } => {
            let data = wire::decode_encoded(args)?.data?;
            let fields = vec![
                ("type", Mp::from(wire::SERVER_SIDE_EMIT)),
                ("data", mpack::to_mp(&data)),
            ];
            request(nsp, fields, false)
        }
        ClusterMsg::AckCount { .. }
        | ClusterMsg::AckReply { .. }
        | ClusterMsg::FetchReply { .. }
        | ClusterMsg::Restore { .. }
        | ClusterMsg::Restored { .. } => None,
    }
}
