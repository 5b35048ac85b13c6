//! What a worker's cluster message becomes on Redis: the channel and the payload in Node's
//! wire format (see [`super::wire`]). Answers and recovery requests never leave the node
//! this way (answers to other nodes are published by the relays of [`super::inbound`]).

use std::rc::Rc;

use rmpv::Value as Mp;

use super::mpack::{self, map};
use super::wire::{self, opts_to_mp};
use crate::socketio::cluster::{ClusterMsg, Encoded, Target, LOCAL, THIS_NODE};

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

/// A request from node `uid` on the request channel of `nsp`.
fn request(key: &str, uid: &str, nsp: &str, fields: Vec<(&str, Mp)>, answered: bool) -> Outbound {
    let mut all = vec![("uid", Mp::from(uid))];
    all.extend(fields);
    Outbound {
        channel: wire::request_channel(key, nsp),
        payload: mpack::encode(&map(all)),
        answered,
    }
}

/// Whether a target stays on this node.
fn node_only(t: &Target) -> bool {
    t.flags & (LOCAL | THIS_NODE) != 0
}

/// The publication of `msg` from node `uid` under key prefix `key`; `None` for what stays
/// on the node.
pub(crate) fn outbound(key: &str, uid: &str, msg: &ClusterMsg) -> Option<Outbound> {
    match msg {
        ClusterMsg::Broadcast { target, .. } | ClusterMsg::Fetch { target, .. }
            if node_only(target) =>
        {
            None
        }
        ClusterMsg::Broadcast {
            target,
            packet,
            ack: None,
            offset,
            ..
        } => broadcast(key, uid, target, packet, offset.as_deref()),
        ClusterMsg::Broadcast {
            target,
            packet,
            ack: Some((origin, req)),
            ack_timeout,
            ..
        } => {
            let id = wire::request_id(uid, origin.worker, *req);
            broadcast_with_acks(key, uid, target, packet, id, *ack_timeout)
        }
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
            Some(request(key, uid, &target.nsp, fields, true))
        }
        ClusterMsg::Join { target, rooms } => {
            membership(key, uid, wire::REMOTE_JOIN, target, rooms)
        }
        ClusterMsg::Leave { target, rooms } => {
            membership(key, uid, wire::REMOTE_LEAVE, target, rooms)
        }
        ClusterMsg::Disconnect { target, close } if !node_only(target) => {
            let fields = vec![
                ("type", Mp::from(wire::REMOTE_DISCONNECT)),
                ("opts", selection(target)),
                ("close", Mp::Boolean(*close)),
            ];
            Some(request(key, uid, &target.nsp, fields, false))
        }
        ClusterMsg::ServerEvent { nsp, args, .. } => {
            let data = wire::decode_encoded(args)?.data?;
            let fields = vec![
                ("type", Mp::from(wire::SERVER_SIDE_EMIT)),
                ("data", mpack::to_mp(&data)),
            ];
            // Not waited for; counted so that `server_side_emit` tells how many receive it.
            Some(request(key, uid, nsp, fields, true))
        }
        ClusterMsg::Disconnect { .. }
        | ClusterMsg::AckCount { .. }
        | ClusterMsg::AckReply { .. }
        | ClusterMsg::FetchReply { .. }
        | ClusterMsg::Restore { .. }
        | ClusterMsg::Restored { .. } => None,
    }
}

/// `[uid, packet, opts]` on the namespace's channel (the room's, for exactly one room);
/// a recovery offset rides in `opts.offset`.
fn broadcast(
    key: &str,
    uid: &str,
    target: &Target,
    packet: &Encoded,
    offset: Option<&str>,
) -> Option<Outbound> {
    let room = (target.rooms.len() == 1).then(|| &*target.rooms[0]);
    let mut opts = selection(target);
    if let (Some(o), Mp::Map(m)) = (offset, &mut opts) {
        m.push((Mp::from("offset"), Mp::from(o)));
    }
    let body = Mp::Array(vec![Mp::from(uid), wire::packet_to_mp(packet)?, opts]);
    Some(Outbound {
        channel: wire::broadcast_channel(key, &target.nsp, room),
        payload: mpack::encode(&body),
        answered: false,
    })
}

/// A `BROADCAST` request: every node answers with its client count, then each ack.
fn broadcast_with_acks(
    key: &str,
    uid: &str,
    target: &Target,
    packet: &Encoded,
    request_id: String,
    timeout: u64,
) -> Option<Outbound> {
    let opts = opts_to_mp(
        &names(&target.rooms),
        &names(&target.except),
        target.flags,
        Some(timeout),
    );
    let fields = vec![
        ("requestId", Mp::from(request_id)),
        ("type", Mp::from(wire::BROADCAST)),
        ("packet", wire::packet_to_mp(packet)?),
        ("opts", opts),
    ];
    Some(request(key, uid, &target.nsp, fields, true))
}

/// A `RESTORE` request for worker `worker` of node `node` (only that node answers).
pub(crate) fn restore(
    key: &str,
    uid: &str,
    node: &str,
    worker: usize,
    msg: &ClusterMsg,
) -> Option<Outbound> {
    let ClusterMsg::Restore {
        origin,
        req,
        pid,
        offset,
    } = msg
    else {
        return None;
    };
    let mut fields = vec![
        ("type", Mp::from(wire::RESTORE)),
        (
            "requestId",
            Mp::from(wire::request_id(uid, origin.worker, *req)),
        ),
        ("node", Mp::from(node)),
        ("worker", Mp::from(worker as u64)),
        ("pid", Mp::from(pid.as_str())),
    ];
    if let Some(o) = offset {
        fields.push(("offset", Mp::from(o.as_str())));
    }
    Some(request(key, uid, "/", fields, true))
}

/// `socketsJoin` / `socketsLeave`.
fn membership(
    key: &str,
    uid: &str,
    kind: u64,
    target: &Target,
    rooms: &[Rc<str>],
) -> Option<Outbound> {
    if node_only(target) {
        return None;
    }
    let fields = vec![
        ("type", Mp::from(kind)),
        ("opts", selection(target)),
        ("rooms", mpack::strings(&names(rooms))),
    ];
    Some(request(key, uid, &target.nsp, fields, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socketio::binary::{Message, Value};
    use crate::socketio::cluster::Origin;
    use crate::socketio::packet::PacketKind;
    use crate::socketio::relay::encoded;

    fn event(nsp: &str) -> Encoded {
        encoded(Message {
            kind: PacketKind::Event,
            nsp: nsp.into(),
            id: None,
            data: Some(Value::Array(vec![
                Value::String("ev".into()),
                Value::String("x".into()),
            ])),
        })
    }

    fn target(rooms: &[&str], flags: u8) -> Target {
        Target {
            nsp: "/".into(),
            rooms: rooms.iter().map(|r| Rc::from(*r)).collect(),
            except: vec!["s1".into()],
            flags,
        }
    }

    fn broadcast_msg(t: Target, ack: Option<(Origin, u64)>) -> ClusterMsg {
        ClusterMsg::Broadcast {
            target: t,
            packet: event("/"),
            ack,
            ack_timeout: 700,
            offset: None,
        }
    }

    #[test]
    fn a_one_room_broadcast_is_nodes_array_on_the_room_channel() {
        let out = outbound("socket.io", "n1", &broadcast_msg(target(&["r"], 0), None));
        let out = out.expect("published");
        assert_eq!(out.channel, "socket.io#/#r#");
        assert!(!out.answered);
        let v = mpack::decode(&out.payload).unwrap_or(Mp::Nil);
        let parts = v.as_array().cloned().unwrap_or_default();
        assert_eq!(parts[0].as_str(), Some("n1"));
        assert_eq!(mpack::get_u64(&parts[1], "type"), Some(2));
        assert_eq!(mpack::get_str(&parts[1], "nsp"), Some("/"));
        assert_eq!(mpack::rooms(mpack::get(&parts[2], "rooms")), vec!["r"]);
        assert_eq!(mpack::rooms(mpack::get(&parts[2], "except")), vec!["s1"]);
        let two = outbound(
            "socket.io",
            "n1",
            &broadcast_msg(target(&["a", "b"], 0), None),
        );
        assert_eq!(two.map(|o| o.channel).as_deref(), Some("socket.io#/#"));
    }

    #[test]
    fn what_stays_on_the_node_is_not_published() {
        for flags in [LOCAL, THIS_NODE] {
            assert_eq!(
                outbound("k", "n", &broadcast_msg(target(&[], flags), None)),
                None
            );
        }
        let reply = ClusterMsg::AckCount {
            req: 1,
            count: 2,
            node: String::new(),
        };
        assert_eq!(outbound("k", "n", &reply), None);
    }

    #[test]
    fn a_broadcast_with_acks_is_a_request_naming_the_worker() {
        let origin = Origin {
            node: String::new(),
            worker: 1,
        };
        let m = broadcast_msg(target(&["r"], 0), Some((origin, 9)));
        let out = outbound("socket.io", "n1", &m).expect("published");
        assert_eq!(out.channel, "socket.io-request#/#");
        assert!(out.answered);
        let v = mpack::decode(&out.payload).unwrap_or(Mp::Nil);
        assert_eq!(mpack::get_u64(&v, "type"), Some(wire::BROADCAST));
        assert_eq!(mpack::get_str(&v, "requestId"), Some("n1.1.9"));
        let opts = wire::opts_from_mp(mpack::get(&v, "opts"));
        assert_eq!(opts.timeout, Some(700));
    }
}
