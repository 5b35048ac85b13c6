//! The wire format of Node's `@socket.io/redis-adapter` **8.3.0** (with socket.io 4.8 and
//! socket.io-adapter 2.5), the version this crate is tested against:
//!
//! - broadcasts: PUBLISH `<key>#<nsp>#` (or `<key>#<nsp>#<room>#` when exactly one room is
//!   addressed) of MessagePack `[uid, packet, {rooms, except, flags}]`, where `packet` is
//!   `{type, data, nsp}` (`type` 2 EVENT, `data` the event name and its arguments, Buffers
//!   as `bin`);
//! - requests: `<key>-request#<nsp>#`, a map `{uid, requestId?, type, …}` with `type` 0–9
//!   (below); responses: `<key>-response#<nsp>#`, `{requestId, …}` (Node sends some as
//!   JSON, some as MessagePack; both are read, MessagePack is sent);
//! - a node's uid ends the self-echo of its own publications.

use rmpv::Value as Mp;

use super::mpack::{self, map};
use crate::socketio::binary::{Message, Value};
use crate::socketio::cluster::{Encoded, NO_COMPRESS, VOLATILE};
use crate::socketio::packet::PacketKind;

/// `sockets()` (legacy): the sids of the selected sockets.
pub(crate) const SOCKETS: u64 = 0;
/// `allRooms()`.
pub(crate) const ALL_ROOMS: u64 = 1;
/// `socketsJoin`.
pub(crate) const REMOTE_JOIN: u64 = 2;
/// `socketsLeave`.
pub(crate) const REMOTE_LEAVE: u64 = 3;
/// `disconnectSockets`.
pub(crate) const REMOTE_DISCONNECT: u64 = 4;
/// `fetchSockets`.
pub(crate) const REMOTE_FETCH: u64 = 5;
/// `serverSideEmit`.
pub(crate) const SERVER_SIDE_EMIT: u64 = 6;
/// A broadcast that expects acknowledgements.
pub(crate) const BROADCAST: u64 = 7;
/// How many clients a node's part of a BROADCAST reached.
pub(crate) const BROADCAST_CLIENT_COUNT: u64 = 8;
/// One client's acknowledgement of a BROADCAST.
pub(crate) const BROADCAST_ACK: u64 = 9;
/// Ours (Node's adapter ignores unknown types): a recovery session asked of one node,
/// `{uid, type, requestId, node, worker, pid, offset?}`.
pub(crate) const RESTORE: u64 = 100;
/// Ours: the answer to `RESTORE`, `{type, requestId, uid, session}` (`session`: the
/// MessagePack of an optional [`Session`](crate::socketio::recovery::Session), as `bin`).
pub(crate) const RESTORED: u64 = 101;

/// `<key>#<nsp>#` or, for one room, `<key>#<nsp>#<room>#`.
pub(crate) fn broadcast_channel(key: &str, nsp: &str, room: Option<&str>) -> String {
    match room {
        Some(r) => format!("{key}#{nsp}#{r}#"),
        None => format!("{key}#{nsp}#"),
    }
}

/// `<key>-request#<nsp>#`.
pub(crate) fn request_channel(key: &str, nsp: &str) -> String {
    format!("{key}-request#{nsp}#")
}

/// `<key>-response#<nsp>#`.
pub(crate) fn response_channel(key: &str, nsp: &str) -> String {
    format!("{key}-response#{nsp}#")
}

/// The namespace in a channel name after `prefix` (`<prefix><nsp>#…`).
pub(crate) fn channel_nsp<'a>(channel: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = channel.strip_prefix(prefix)?;
    Some(rest.split('#').next().unwrap_or(rest))
}

/// Node's packet object `{type, data, nsp, id?}` of an encoded EVENT or ACK.
pub(crate) fn packet_to_mp(e: &Encoded) -> Option<Mp> {
    let m = decode_encoded(e)?;
    let kind = match m.kind {
        PacketKind::Ack | PacketKind::BinaryAck => 3,
        _ => 2,
    };
    let mut fields = vec![
        ("type", Mp::from(kind)),
        ("data", m.data.as_ref().map_or(Mp::Nil, mpack::to_mp)),
        ("nsp", Mp::from(m.nsp.as_str())),
    ];
    if let Some(id) = m.id {
        fields.push(("id", Mp::from(id)));
    }
    Some(map(fields))
}

/// The message of Node's packet object (binary kinds folded into EVENT / ACK).
pub(crate) fn packet_from_mp(v: &Mp) -> Option<Message> {
    let kind = match mpack::get_u64(v, "type")? {
        2 | 5 => PacketKind::Event,
        3 | 6 => PacketKind::Ack,
        _ => return None,
    };
    let data = mpack::get(v, "data").map(mpack::from_mp);
    if !matches!(data, Some(Value::Array(_))) {
        return None;
    }
    Some(Message {
        kind,
        nsp: mpack::get_str(v, "nsp").unwrap_or("/").to_string(),
        id: mpack::get_u64(v, "id"),
        data,
    })
}

/// The message of an encoded packet (its blobs in place).
pub(crate) fn decode_encoded(e: &Encoded) -> Option<Message> {
    let mut r = crate::socketio::Reassembler::new(crate::socketio::Version::V5, usize::MAX);
    let mut m = r.push_text(&e.text).ok()?;
    for b in &e.blobs {
        m = r.push_binary(b).ok()?;
    }
    m
}

/// `{rooms, except, flags}` of a selection; `timeout` for a broadcast with acks.
pub(crate) fn opts_to_mp(rooms: &[&str], except: &[&str], flags: u8, timeout: Option<u64>) -> Mp {
    let mut f = Vec::new();
    if flags & VOLATILE != 0 {
        f.push(("volatile", Mp::Boolean(true)));
    }
    if flags & NO_COMPRESS != 0 {
        f.push(("compress", Mp::Boolean(false)));
    }
    if let Some(t) = timeout {
        f.push(("timeout", Mp::from(t)));
    }
    map(vec![
        ("rooms", mpack::strings(rooms)),
        ("except", mpack::strings(except)),
        ("flags", map(f)),
    ])
}

/// A selection as another node sent it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Selection {
    pub rooms: Vec<String>,
    pub except: Vec<String>,
    /// Our flag bits (`VOLATILE`, `NO_COMPRESS`).
    pub flags: u8,
    /// `flags.timeout`, if any.
    pub timeout: Option<u64>,
    /// The recovery offset of a broadcast (ours, `opts.offset`; only with recovery on).
    pub offset: Option<String>,
}

/// Reads `{rooms, except, flags}`.
pub(crate) fn opts_from_mp(v: Option<&Mp>) -> Selection {
    let Some(v) = v else {
        return Selection::default();
    };
    let flags = mpack::get(v, "flags");
    let flag = |name: &str| {
        flags
            .and_then(|f| mpack::get(f, name))
            .and_then(Mp::as_bool)
    };
    let mut bits = 0;
    if flag("volatile") == Some(true) {
        bits |= VOLATILE;
    }
    if flag("compress") == Some(false) {
        bits |= NO_COMPRESS;
    }
    Selection {
        rooms: mpack::rooms(mpack::get(v, "rooms")),
        except: mpack::rooms(mpack::get(v, "except")),
        flags: bits,
        timeout: flags.and_then(|f| mpack::get_u64(f, "timeout")),
        offset: mpack::get_str(v, "offset").map(str::to_string),
    }
}

/// Our request ids: `<node>.<worker>.<req>` (Node's are 6 random characters, which never
/// hold two dots).
pub(crate) fn request_id(node: &str, worker: u32, req: u64) -> String {
    format!("{node}.{worker}.{req}")
}

/// `(worker, req)` of one of `node`'s request ids.
pub(crate) fn parse_request_id(id: &str, node: &str) -> Option<(u32, u64)> {
    let mut parts = id.rsplitn(3, '.');
    let req = parts.next()?.parse().ok()?;
    let worker = parts.next()?.parse().ok()?;
    (parts.next()? == node).then_some((worker, req))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_those_of_nodes_adapter() {
        assert_eq!(broadcast_channel("socket.io", "/", None), "socket.io#/#");
        assert_eq!(
            broadcast_channel("socket.io", "/chat", Some("r1")),
            "socket.io#/chat#r1#"
        );
        assert_eq!(request_channel("socket.io", "/"), "socket.io-request#/#");
        let resp = response_channel("socket.io", "/chat");
        assert_eq!(resp, "socket.io-response#/chat#");
        assert_eq!(channel_nsp(&resp, "socket.io-response#"), Some("/chat"));
        let specific = format!("{resp}abc123#");
        assert_eq!(channel_nsp(&specific, "socket.io-response#"), Some("/chat"));
    }

    #[test]
    fn request_ids_name_the_node_and_worker() {
        let id = request_id("node.a-1", 1, 42);
        assert_eq!(parse_request_id(&id, "node.a-1"), Some((1, 42)));
        assert_eq!(parse_request_id(&id, "node.a"), None);
        assert_eq!(parse_request_id("Xy12ab", "node.a-1"), None);
    }

    #[test]
    fn packets_translate_both_ways() {
        let e = crate::socketio::relay::encoded(Message {
            kind: PacketKind::Event,
            nsp: "/chat".into(),
            id: None,
            data: Some(Value::Array(vec![
                Value::String("ev".into()),
                Value::Binary(vec![1, 2]),
            ])),
        });
        assert!(e.text.starts_with("51-/chat,"), "{}", e.text);
        let mp = packet_to_mp(&e).unwrap_or(Mp::Nil);
        assert_eq!(mpack::get_u64(&mp, "type"), Some(2));
        assert_eq!(mpack::get(&mp, "id"), None);
        let m = packet_from_mp(&mp);
        assert_eq!(m.as_ref().map(|m| m.nsp.as_str()), Some("/chat"));
        assert_eq!(m.map(crate::socketio::relay::encoded), Some(e));
    }

    #[test]
    fn selections_keep_rooms_except_and_flags() {
        let mp = opts_to_mp(&["a"], &["b", "c"], VOLATILE | NO_COMPRESS, Some(500));
        let s = opts_from_mp(Some(&mp));
        assert_eq!(s.rooms, vec!["a"]);
        assert_eq!(s.except, vec!["b", "c"]);
        assert_eq!(s.flags, VOLATILE | NO_COMPRESS);
        assert_eq!(s.timeout, Some(500));
    }
}
