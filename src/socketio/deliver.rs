//! Turning events into frames and frames into deliveries: one encoding per packet, one
//! `broadcast_to` per frame for all local recipients, the blobs framed per Engine.IO version.

use std::rc::Rc;

use super::args::IntoArgs;
use super::binary::{Message, Value};
use super::cluster::{Encoded, Target};
use super::io::Io;
use super::packet::PacketKind;
use super::state::{AckWait, Dest};
use super::Version;
use crate::protocol::frame::{OpCode, FLAG_COMPRESS, FLAG_FIN};

/// An EVENT (or ACK when `ack_of` is set) in `nsp`, encoded once.
pub(crate) fn encode_event(
    nsp: &str,
    event: &str,
    args: impl IntoArgs,
    id: Option<u64>,
) -> Encoded {
    let mut items = Vec::with_capacity(4);
    items.push(Value::String(event.to_string()));
    items.extend(args.into_args());
    encode(PacketKind::Event, nsp, Value::Array(items), id)
}

/// An ACK with `args` for packet `id`.
pub(crate) fn encode_ack(nsp: &str, id: u64, args: Vec<Value>) -> Encoded {
    encode(PacketKind::Ack, nsp, Value::Array(args), Some(id))
}

fn encode(kind: PacketKind, nsp: &str, data: Value, id: Option<u64>) -> Encoded {
    let (packet, blobs) = Message {
        kind,
        nsp: nsp.to_string(),
        id,
        data: Some(data),
    }
    .encode();
    Encoded {
        text: packet.encode(),
        blobs: blobs.into_iter().map(serde_bytes::ByteBuf::from).collect(),
    }
}

/// The Engine.IO message frame of a Socket.IO packet text: `4` + text.
pub(crate) fn frame(text: &str) -> Vec<u8> {
    let mut f = Vec::with_capacity(1 + text.len());
    f.push(b'4');
    f.extend_from_slice(text.as_bytes());
    f
}

/// A blob as an Engine.IO binary message of `version` (v3 prefixes the message type).
fn blob_frame(version: Version, blob: &[u8]) -> Vec<u8> {
    match version {
        Version::V5 => blob.to_vec(),
        Version::V4 => {
            let mut f = Vec::with_capacity(1 + blob.len());
            f.push(4);
            f.extend_from_slice(blob);
            f
        }
    }
}

/// Sends an encoded packet to one connection.
pub(crate) fn send_to(io: &Io<'_>, dest: Dest, packet: &Encoded, compress: bool) -> bool {
    let Some(fd) = dest.fd else {
        let mut ok = io.engine.send_text(dest.session, &packet.text);
        for b in &packet.blobs {
            ok &= io.engine.send_binary(dest.session, b);
        }
        return ok;
    };
    let flags = FLAG_FIN | if compress { FLAG_COMPRESS } else { 0 };
    let cx = io.cx();
    let mut ok = cx.push(fd, &frame(&packet.text), OpCode::Text, flags);
    for b in &packet.blobs {
        ok &= cx.push(fd, &blob_frame(dest.version, b), OpCode::Binary, flags);
    }
    ok
}

/// Delivers `packet` to the local sockets `target` selects (connected ones only); with
/// `ack`, each recipient waits for an acknowledgement for that collector. Returns how many
/// sockets it went to.
pub(crate) fn deliver_local(
    io: &Io<'_>,
    target: &Target,
    packet: &Encoded,
    ack: Option<(&super::Origin, u64, u64)>,
) -> usize {
    let sio = io.sio();
    let volatile = target.flags & super::cluster::VOLATILE != 0;
    let (fds, v4_fds, v5_fds, polling) = {
        let mut state = sio.state.borrow_mut();
        let Some(ni) = state.nsp(&target.nsp) else {
            return 0;
        };
        let members = state.nsps[ni as usize].select(&target.rooms, &target.except);
        let mut fds = Vec::with_capacity(members.len());
        let mut v4_fds = Vec::new();
        let mut v5_fds = Vec::new();
        let mut polling = Vec::new();
        for m in members {
            let Some(s) = state.sockets.get_mut(m as usize) else {
                continue;
            };
            if !s.connected {
                continue;
            }
            if let Some((origin, req, id)) = ack {
                let wait = AckWait::Broadcast {
                    origin: origin.clone(),
                    req,
                };
                s.acks.get_or_insert_with(Default::default).insert(id, wait);
            }
            let Some(fd) = s.fd else {
                polling.push(s.dest());
                continue;
            };
            if volatile && backed_up(io, fd) {
                continue; // volatile: dropped for a client that is not keeping up (as Node)
            }
            fds.push(fd);
            if !packet.blobs.is_empty() {
                match s.version {
                    Version::V4 => v4_fds.push(fd),
                    Version::V5 => v5_fds.push(fd),
                }
            }
        }
        (fds, v4_fds, v5_fds, polling)
    };
    for dest in &polling {
        send_to(io, *dest, packet, false);
    }
    if fds.is_empty() {
        return polling.len();
    }
    let cx = io.cx();
    cx.broadcast_to(&fds, &frame(&packet.text), OpCode::Text);
    if !packet.blobs.is_empty() {
        for b in &packet.blobs {
            if !v5_fds.is_empty() {
                cx.broadcast_to(&v5_fds, &blob_frame(Version::V5, b), OpCode::Binary);
            }
            if !v4_fds.is_empty() {
                cx.broadcast_to(&v4_fds, &blob_frame(Version::V4, b), OpCode::Binary);
            }
        }
    }
    fds.len() + polling.len()
}

/// Whether a connection already has output waiting (a volatile packet is not queued behind it).
pub(crate) fn backed_up(io: &Io<'_>, fd: crate::runtime::table::Fd) -> bool {
    io.cx()
        .connection_info(fd)
        .is_some_and(|i| i.send_queued_bytes > 0)
}

/// A room name as the state keeps it.
pub(crate) fn room(r: &str) -> Rc<str> {
    Rc::from(r)
}
