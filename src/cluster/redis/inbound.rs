//! What the node's subscriber receives, read on its thread into an [`Action`] (Node's wire
//! format in, our cluster messages out, encoded there once), and what worker 0 then does
//! with it: apply it on every worker, hand an answer to the worker that asked, or run a
//! request of another node and publish the node's one answer.

use std::rc::Rc;

use rmpv::Value as Mp;

use super::mpack;
use super::subscriber::Received;
use super::wire::{self, Selection};
use crate::socketio::binary::{Message, Value};
use crate::socketio::cluster::{ClusterMsg, Encoded, SocketInfo, Target};
use crate::socketio::packet::PacketKind;
use crate::socketio::relay::encoded;

/// What worker 0 does with a message from another node.
#[derive(Debug)]
pub(crate) enum Action {
    /// Cluster-message bytes for every worker of the node.
    Apply(Vec<u8>),
    /// An answer for worker `.0`'s request.
    Answer(usize, Vec<u8>),
    /// A broadcast with acknowledgements to run for another node.
    BroadcastAck {
        request_id: String,
        nsp: String,
        sel: Selection,
        message: Message,
    },
    /// A recovery session another node asks of worker `worker` here.
    Restore {
        request_id: String,
        worker: usize,
        pid: String,
        offset: Option<String>,
    },
    /// Sockets to list for another node (`sids`: the legacy `SOCKETS` answer).
    Fetch {
        request_id: String,
        nsp: String,
        sel: Selection,
        sids: bool,
    },
}

/// Reads one message; `None` for our own publications, other nodes' answers, the plain
/// subscriptions (kept for Node's server count only) and what cannot be read.
pub(crate) fn interpret(key: &str, uid: &str, r: &Received<'_>) -> Option<Action> {
    if !r.pattern {
        return None;
    }
    let request = format!("{key}-request#");
    let response = format!("{key}-response#");
    if let Some(nsp) = wire::channel_nsp(r.channel, &request) {
        return interpret_request(uid, nsp, &mpack::decode(r.payload)?);
    }
    if let Some(nsp) = wire::channel_nsp(r.channel, &response) {
        return interpret_response(uid, nsp, &mpack::decode(r.payload)?);
    }
    if r.channel.starts_with(&format!("{key}#")) {
        return interpret_broadcast(uid, &mpack::decode(r.payload)?);
    }
    None
}

/// The target of a selection in `nsp`.
pub(crate) fn target(nsp: &str, sel: &Selection) -> Target {
    Target {
        nsp: Rc::from(nsp),
        rooms: sel.rooms.iter().map(|r| Rc::from(r.as_str())).collect(),
        except: sel.except.iter().map(|r| Rc::from(r.as_str())).collect(),
        flags: sel.flags,
    }
}

fn interpret_broadcast(uid: &str, v: &Mp) -> Option<Action> {
    let parts = v.as_array()?;
    if parts.first()?.as_str()? == uid {
        return None;
    }
    let message = wire::packet_from_mp(parts.get(1)?)?;
    let sel = wire::opts_from_mp(parts.get(2));
    let msg = ClusterMsg::Broadcast {
        target: target(&message.nsp, &sel),
        packet: encoded(message),
        ack: None,
        ack_timeout: 0,
        offset: sel.offset,
    };
    Some(Action::Apply(msg.encode()))
}

/// A selection given the legacy way: one socket by sid.
fn by_sid(v: &Mp) -> Option<Selection> {
    Some(Selection {
        rooms: vec![mpack::get_str(v, "sid")?.to_string()],
        ..Selection::default()
    })
}

fn interpret_request(uid: &str, nsp: &str, v: &Mp) -> Option<Action> {
    if mpack::get_str(v, "uid") == Some(uid) {
        return None;
    }
    let kind = mpack::get_u64(v, "type")?;
    let request_id = || mpack::get_str(v, "requestId").map(str::to_string);
    let sel = || match mpack::get(v, "opts") {
        Some(o) => Some(wire::opts_from_mp(Some(o))),
        None => by_sid(v),
    };
    let apply = |m: ClusterMsg| Some(Action::Apply(m.encode()));
    match kind {
        wire::REMOTE_JOIN | wire::REMOTE_LEAVE => {
            let target = target(nsp, &sel()?);
            let mut rooms = mpack::rooms(mpack::get(v, "rooms"));
            rooms.extend(mpack::get_str(v, "room").map(str::to_string));
            let rooms = rooms.iter().map(|r| Rc::from(r.as_str())).collect();
            apply(match kind {
                wire::REMOTE_JOIN => ClusterMsg::Join { target, rooms },
                _ => ClusterMsg::Leave { target, rooms },
            })
        }
        wire::REMOTE_DISCONNECT => apply(ClusterMsg::Disconnect {
            target: target(nsp, &sel()?),
            close: mpack::get(v, "close").and_then(Mp::as_bool) == Some(true),
        }),
        wire::SERVER_SIDE_EMIT => server_event(nsp, v).map(|m| Action::Apply(m.encode())),
        wire::BROADCAST => Some(Action::BroadcastAck {
            request_id: request_id()?,
            nsp: nsp.to_string(),
            sel: wire::opts_from_mp(mpack::get(v, "opts")),
            message: wire::packet_from_mp(mpack::get(v, "packet")?)?,
        }),
        wire::REMOTE_FETCH | wire::SOCKETS => {
            let sel = match kind {
                wire::SOCKETS => Selection {
                    rooms: mpack::rooms(mpack::get(v, "rooms")),
                    ..Selection::default()
                },
                _ => wire::opts_from_mp(mpack::get(v, "opts")),
            };
            Some(Action::Fetch {
                request_id: request_id()?,
                nsp: nsp.to_string(),
                sel,
                sids: kind == wire::SOCKETS,
            })
        }
        wire::RESTORE if mpack::get_str(v, "node") == Some(uid) => Some(Action::Restore {
            request_id: request_id()?,
            worker: mpack::get_u64(v, "worker")? as usize,
            pid: mpack::get_str(v, "pid")?.to_string(),
            offset: mpack::get_str(v, "offset").map(str::to_string),
        }),
        wire::RESTORE => None,
        wire::ALL_ROOMS => {
            log::debug!("redis: allRooms requests are not served");
            None
        }
        other => {
            log::debug!("redis: unknown request type {other}");
            None
        }
    }
}

/// `serverSideEmit`: `data` is the event name and its arguments.
fn server_event(nsp: &str, v: &Mp) -> Option<ClusterMsg> {
    let data = mpack::from_mp(mpack::get(v, "data")?);
    let Value::Array(items) = &data else {
        return None;
    };
    let event = items.first()?.as_str()?.to_string();
    let args = encoded(Message {
        kind: PacketKind::Event,
        nsp: nsp.to_string(),
        id: None,
        data: Some(data),
    });
    Some(ClusterMsg::ServerEvent {
        nsp: Rc::from(nsp),
        event,
        args,
    })
}

fn interpret_response(uid: &str, nsp: &str, v: &Mp) -> Option<Action> {
    let (worker, req) = wire::parse_request_id(mpack::get_str(v, "requestId")?, uid)?;
    // Our nodes name themselves in answers (`uid`); Node's do not.
    let node = mpack::get_str(v, "uid").unwrap_or("?").to_string();
    let msg = match mpack::get_u64(v, "type") {
        Some(wire::BROADCAST_CLIENT_COUNT) => ClusterMsg::AckCount {
            req,
            count: u32::try_from(mpack::get_u64(v, "clientCount")?).ok()?,
            node,
        },
        Some(wire::RESTORED) => ClusterMsg::Restored {
            req,
            session: match mpack::get(v, "session") {
                Some(Mp::Binary(b)) => rmp_serde::from_slice(b).ok()?,
                _ => None,
            },
        },
        Some(wire::BROADCAST_ACK) => ClusterMsg::AckReply {
            req,
            args: ack_args(nsp, mpack::get(v, "packet").unwrap_or(&Mp::Nil)),
        },
        _ => ClusterMsg::FetchReply {
            req,
            sockets: sockets(nsp, mpack::get(v, "sockets")?.as_array()?),
            node,
        },
    };
    Some(Action::Answer(worker as usize, msg.encode()))
}

/// One client's answer (Node relays its first argument) as our ACK packet.
fn ack_args(nsp: &str, first: &Mp) -> Encoded {
    encoded(Message {
        kind: PacketKind::Ack,
        nsp: nsp.to_string(),
        id: Some(0),
        data: Some(Value::Array(vec![mpack::from_mp(first)])),
    })
}

/// The sockets of a `fetchSockets` answer (`{id, rooms, …}` each).
fn sockets(nsp: &str, items: &[Mp]) -> Vec<SocketInfo> {
    items
        .iter()
        .filter_map(|s| {
            Some(SocketInfo {
                sid: mpack::get_str(s, "id")?.to_string(),
                nsp: nsp.to_string(),
                rooms: mpack::rooms(mpack::get(s, "rooms")),
                worker: mpack::get_u64(s, "worker").unwrap_or(0) as u32,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::redis::mpack::map;

    fn received<'a>(channel: &'a str, payload: &'a [u8]) -> Received<'a> {
        Received {
            channel,
            pattern: true,
            payload,
        }
    }

    /// What a Node node publishes for `socket.to("r").emit("ev", 1)`.
    fn node_broadcast(uid: &str) -> Vec<u8> {
        let packet = map(vec![
            ("type", Mp::from(2)),
            ("data", Mp::Array(vec![Mp::from("ev"), Mp::from(1)])),
            ("nsp", Mp::from("/")),
        ]);
        let opts = map(vec![
            ("rooms", mpack::strings(&["r"])),
            ("except", mpack::strings(&["sid1"])),
            ("flags", map(vec![])),
        ]);
        mpack::encode(&Mp::Array(vec![Mp::from(uid), packet, opts]))
    }

    #[test]
    fn another_nodes_broadcast_is_applied_and_our_own_is_not() {
        let bytes = node_broadcast("Xy12ab");
        let a = interpret("socket.io", "me", &received("socket.io#/#r#", &bytes));
        let Some(Action::Apply(b)) = a else {
            panic!("not applied: {a:?}");
        };
        let Some(ClusterMsg::Broadcast { target, packet, .. }) = ClusterMsg::decode(&b) else {
            panic!("not a broadcast");
        };
        assert_eq!(target.rooms, vec![Rc::from("r")]);
        assert_eq!(target.except, vec![Rc::from("sid1")]);
        assert_eq!(packet.text, "2[\"ev\",1]");
        let own = node_broadcast("me");
        assert!(interpret("socket.io", "me", &received("socket.io#/#r#", &own)).is_none());
        let plain = Received {
            pattern: false,
            ..received("socket.io#/#r#", &bytes)
        };
        assert!(interpret("socket.io", "me", &plain).is_none());
    }

    #[test]
    fn answers_reach_the_worker_that_asked() {
        let count = mpack::encode(&map(vec![
            ("type", Mp::from(wire::BROADCAST_CLIENT_COUNT)),
            ("requestId", Mp::from("me.1.7")),
            ("clientCount", Mp::from(3)),
        ]));
        let a = interpret(
            "socket.io",
            "me",
            &received("socket.io-response#/#", &count),
        );
        let Some(Action::Answer(1, b)) = a else {
            panic!("not an answer for worker 1: {a:?}");
        };
        let m = ClusterMsg::decode(&b);
        assert!(matches!(
            m,
            Some(ClusterMsg::AckCount {
                req: 7,
                count: 3,
                ..
            })
        ));
        // Node's JSON form of a fetchSockets answer, for another node: ignored.
        let other = br#"{"requestId":"Ab12cd","sockets":[]}"#;
        assert!(interpret("socket.io", "me", &received("socket.io-response#/#", other)).is_none());
        let ours = br#"{"requestId":"me.0.2","sockets":[{"id":"s","rooms":["s","r"]}]}"#;
        let a = interpret("socket.io", "me", &received("socket.io-response#/#", ours));
        assert!(matches!(a, Some(Action::Answer(0, _))));
    }
}
