//! What the plain WebSocket layer sends between nodes: a [`WsEvent`] as a MessagePack map
//! `{uid, t, …}` (`t`: `b` broadcast, `p` push, `d` disconnect); a node ignores its own.

use rmpv::Value as Mp;

use super::mpack::{self, map};
use crate::protocol::frame::OpCode;
use crate::runtime::table::Fd;

/// What another node asks this one to do.
#[derive(Debug, Clone, PartialEq)]
pub enum WsEvent {
    /// Send to every established WebSocket connection of the node.
    Broadcast {
        /// The payload.
        data: Vec<u8>,
        /// `Text` or `Binary`.
        opcode: OpCode,
    },
    /// Push to one connection of the node.
    Push {
        /// Its fd.
        fd: Fd,
        /// The payload.
        data: Vec<u8>,
        /// `Text` or `Binary`.
        opcode: OpCode,
    },
    /// Close one connection of the node with a close frame.
    Disconnect {
        /// Its fd.
        fd: Fd,
        /// The close code.
        code: u16,
        /// The reason.
        reason: String,
    },
}

/// The payload of `ev` from node `uid`.
pub(crate) fn encode(uid: &str, ev: &WsEvent) -> Vec<u8> {
    let mut fields = vec![("uid", Mp::from(uid))];
    match ev {
        WsEvent::Broadcast { data, opcode } => fields.extend([
            ("t", Mp::from("b")),
            ("op", Mp::from(opcode.as_u8())),
            ("data", Mp::Binary(data.clone())),
        ]),
        WsEvent::Push { fd, data, opcode } => fields.extend([
            ("t", Mp::from("p")),
            ("fd", Mp::from(*fd)),
            ("op", Mp::from(opcode.as_u8())),
            ("data", Mp::Binary(data.clone())),
        ]),
        WsEvent::Disconnect { fd, code, reason } => fields.extend([
            ("t", Mp::from("d")),
            ("fd", Mp::from(*fd)),
            ("code", Mp::from(*code)),
            ("reason", Mp::from(reason.as_str())),
        ]),
    }
    mpack::encode(&map(fields))
}

/// Reads another node's event (`None`: ours, or not one).
pub(crate) fn decode(uid: &str, payload: &[u8]) -> Option<WsEvent> {
    let v = mpack::decode(payload)?;
    if mpack::get_str(&v, "uid")? == uid {
        return None;
    }
    let data = || match mpack::get(&v, "data") {
        Some(Mp::Binary(b)) => Some(b.clone()),
        _ => None,
    };
    let opcode = || match mpack::get_u64(&v, "op")? {
        1 => Some(OpCode::Text),
        2 => Some(OpCode::Binary),
        _ => None,
    };
    Some(match mpack::get_str(&v, "t")? {
        "b" => WsEvent::Broadcast {
            data: data()?,
            opcode: opcode()?,
        },
        "p" => WsEvent::Push {
            fd: mpack::get_u64(&v, "fd")?,
            data: data()?,
            opcode: opcode()?,
        },
        "d" => WsEvent::Disconnect {
            fd: mpack::get_u64(&v, "fd")?,
            code: u16::try_from(mpack::get_u64(&v, "code")?).ok()?,
            reason: mpack::get_str(&v, "reason")?.to_string(),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_our_own_are_ignored() {
        let events = [
            WsEvent::Broadcast {
                data: b"hi".to_vec(),
                opcode: OpCode::Text,
            },
            WsEvent::Push {
                fd: 4294967298,
                data: vec![0, 255],
                opcode: OpCode::Binary,
            },
            WsEvent::Disconnect {
                fd: 7,
                code: 4000,
                reason: "bye".into(),
            },
        ];
        for ev in events {
            let bytes = encode("n1", &ev);
            assert_eq!(decode("n2", &bytes), Some(ev));
            assert_eq!(decode("n1", &bytes), None);
        }
        assert_eq!(decode("n2", b"\xc1"), None);
    }
}
