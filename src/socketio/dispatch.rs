//! A complete packet from a client: CONNECT, DISCONNECT, an event for its handler (whose
//! return value is the acknowledgement), or an acknowledgement of ours.

use super::args::{AckSender, Args};
use super::binary::{Message, Value};
use super::cluster::{ClusterMsg, Encoded};
use super::deliver::{encode_ack, send_to};
use super::io::Io;
use super::packet::PacketKind;
use super::server::SocketIo;
use super::state::AckWait;
use crate::engineio::{DisconnectReason, SessionKey};

impl SocketIo {
    pub(crate) fn dispatch(&self, io: &Io<'_>, session: SessionKey, m: Message) {
        match m.kind {
            PacketKind::Connect => {
                // Node's `socket.handshake.auth` is `{}` when the client sent none.
                let auth = m
                    .data
                    .map(|v| v.to_json())
                    .unwrap_or_else(|| serde_json::json!({}));
                self.connect(io, session, &m.nsp, auth)
            }
            PacketKind::Disconnect => {
                if let Some(key) = self.socket_of(session, &m.nsp) {
                    self.remove_socket(io, key, "client namespace disconnect");
                }
            }
            PacketKind::Event | PacketKind::Ack => {
                let Some(key) = self.socket_of(session, &m.nsp) else {
                    // Node's client closes a connection that talks in a namespace it did
                    // not join.
                    log::info!(
                        "socket.io: session {}: packet for {} which it did not join; closing",
                        session.0,
                        m.nsp
                    );
                    io.engine.close(session, DisconnectReason::ForcedClose);
                    return;
                };
                if m.kind == PacketKind::Event {
                    self.on_event(io, key, m);
                } else {
                    self.on_ack(io, key, m);
                }
            }
            _ => log::debug!(
                "socket.io: session {}: ignored {:?} from a client",
                session.0,
                m.kind
            ),
        }
    }

    /// The connected socket of `session` in `nsp`.
    fn socket_of(&self, session: SessionKey, nsp: &str) -> Option<u32> {
        let state = self.state.borrow();
        let client = state.clients.get(&session)?;
        client.sockets.iter().find_map(|&(n, k)| {
            let ok = &*state.nsps[n as usize].name == nsp
                && state.sockets.get(k as usize).is_some_and(|s| s.connected);
            ok.then_some(k)
        })
    }

    fn on_event(&self, io: &Io<'_>, key: u32, m: Message) {
        let mut items = match m.data {
            Some(Value::Array(a)) if !a.is_empty() => a,
            _ => return,
        };
        let name = items.remove(0).to_text();
        let (sid, nsp, def, dest) = {
            let state = self.state.borrow();
            let Some(s) = state.sockets.get(key as usize) else {
                return;
            };
            let ns = &state.nsps[s.nsp as usize];
            (s.sid.clone(), ns.name.clone(), ns.def.clone(), s.dest())
        };
        let socket = self.socket(io, key, &sid, &nsp);
        let ack = AckSender {
            dest,
            nsp: nsp.clone(),
            id: m.id,
        };
        let reply = match (def.events.get(&name), &def.any) {
            (Some(f), _) => Some(f(&socket, Args(items), ack)),
            (None, Some(f)) => {
                items.insert(0, Value::String(name));
                Some(f(&socket, Args(items), ack))
            }
            (None, None) => {
                log::debug!("socket.io: no handler for event {name:?} in {}", nsp);
                None
            }
        };
        if let (Some(id), Some(Some(args))) = (m.id, reply) {
            send_to(io, dest, &encode_ack(&nsp, id, args), true);
        }
    }

    fn on_ack(&self, io: &Io<'_>, key: u32, m: Message) {
        let Some(id) = m.id else {
            return;
        };
        let wait = {
            let mut state = self.state.borrow_mut();
            state
                .sockets
                .get_mut(key as usize)
                .and_then(|s| s.acks.as_mut()?.remove(&id))
        };
        let args = match m.data {
            Some(Value::Array(a)) => Args(a),
            Some(v) => Args(vec![v]),
            None => Args::default(),
        };
        match wait {
            Some(AckWait::Local(done)) => done(io, Ok(args)),
            Some(AckWait::Broadcast { origin, req }) => {
                if origin == io.origin() {
                    self.gather_ack(io, req, args);
                } else {
                    let packet = super::deliver::encode_ack("/", id, args.0);
                    let msg = ClusterMsg::AckReply { req, args: packet };
                    self.adapter.reply(io.cx(), &origin, &msg.encode());
                }
            }
            None => log::debug!("socket.io: acknowledgement {id} matches nothing; ignored"),
        }
    }
}

/// The arguments of an ACK packet that crossed between workers.
pub(crate) fn decode_ack_args(e: &Encoded) -> Option<Args> {
    let mut r = super::Reassembler::new(super::Version::V5, usize::MAX);
    let mut m = r.push_text(&e.text).ok()?;
    for b in &e.blobs {
        m = r.push_binary(b).ok()?;
    }
    match m?.data {
        Some(Value::Array(a)) => Some(Args(a)),
        _ => Some(Args::default()),
    }
}
