//! Worker 0 carrying out an [`Action`] for the node, and the answers it publishes to the
//! node that asked: one client count per node, then each acknowledgement as it comes, or
//! the node's whole list of sockets.

use rmpv::Value as Mp;

use super::inbound::{self, Action};
use super::mpack::{self, map};
use super::publisher::Publisher;
use super::wire;
use crate::socketio::acks::Step;
use crate::socketio::adapter::SOCKETIO_CHANNEL;
use crate::socketio::cluster::SocketInfo;
use crate::socketio::Io;

/// How long an acknowledgement is waited for when the asking node named no timeout.
const DEFAULT_ACK_WAIT: u64 = 5_000;

/// What worker 0 needs to answer (`Send + Sync`: it travels with each action).
#[derive(Clone)]
pub(crate) struct Answerer {
    pub publisher: Publisher,
    pub key: String,
    pub uid: String,
    pub relay_timeout: u64,
}

impl Answerer {
    fn publish(&self, nsp: &str, body: Mp) {
        let channel = wire::response_channel(&self.key, nsp);
        self.publisher.publish(channel, mpack::encode(&body));
    }
}

/// Carries out `action` on worker 0.
pub(crate) fn execute(io: &Io<'_>, action: Action, ans: &Answerer) {
    let sio = io.sio();
    match action {
        Action::Apply(bytes) => sio.apply_on_node(io, &bytes),
        Action::Answer(worker, bytes) => {
            if worker == io.cx().worker_id() {
                sio.receive_cluster_bytes(io, &bytes);
            } else {
                io.cx().send_to_worker(worker, SOCKETIO_CHANNEL, &bytes);
            }
        }
        Action::BroadcastAck {
            request_id,
            nsp,
            sel,
            message,
        } => {
            let target = inbound::target(&nsp, &sel);
            let wait = sel.timeout.unwrap_or(DEFAULT_ACK_WAIT);
            let ans = ans.clone();
            sio.relay_broadcast_ack(io, target, message, wait, move |step| {
                let body = match step {
                    Step::Counted(n) => count_body(&request_id, &ans.uid, n),
                    Step::Item(args) => {
                        let first = args.0.first().map_or(Mp::Nil, mpack::to_mp);
                        ack_body(&request_id, first)
                    }
                };
                ans.publish(&nsp, body);
            });
        }
        Action::Restore {
            request_id,
            worker,
            pid,
            offset,
        } => {
            let ans = ans.clone();
            sio.relay_restore(io, worker, pid, offset, move |session| {
                let session = rmp_serde::to_vec(&session).unwrap_or_default();
                let body = map(vec![
                    ("type", Mp::from(wire::RESTORED)),
                    ("requestId", Mp::from(request_id.as_str())),
                    ("uid", Mp::from(ans.uid.as_str())),
                    ("session", Mp::Binary(session)),
                ]);
                ans.publish("/", body);
            });
        }
        Action::Fetch {
            request_id,
            nsp,
            sel,
            sids,
        } => {
            let target = inbound::target(&nsp, &sel);
            let ans = ans.clone();
            sio.relay_fetch(io, target, ans.relay_timeout, move |_, sockets| {
                ans.publish(&nsp, fetch_body(&request_id, &ans.uid, &sockets, sids));
            });
        }
    }
}

fn count_body(request_id: &str, uid: &str, n: usize) -> Mp {
    map(vec![
        ("type", Mp::from(wire::BROADCAST_CLIENT_COUNT)),
        ("requestId", Mp::from(request_id)),
        ("clientCount", Mp::from(n as u64)),
        ("uid", Mp::from(uid)),
    ])
}

fn ack_body(request_id: &str, packet: Mp) -> Mp {
    map(vec![
        ("type", Mp::from(wire::BROADCAST_ACK)),
        ("requestId", Mp::from(request_id)),
        ("packet", packet),
    ])
}

/// A `fetchSockets` answer: Node's `RemoteSocket` fields (the handshake is not kept by
/// this layer, so it is an empty one of the right shape), and the worker.
fn fetch_body(request_id: &str, uid: &str, sockets: &[SocketInfo], sids: bool) -> Mp {
    let items = sockets
        .iter()
        .map(|s| {
            if sids {
                return Mp::from(s.sid.as_str());
            }
            map(vec![
                ("id", Mp::from(s.sid.as_str())),
                ("handshake", empty_handshake()),
                ("rooms", mpack::strings(&s.rooms)),
                ("data", map(vec![])),
                ("worker", Mp::from(s.worker)),
            ])
        })
        .collect();
    map(vec![
        ("requestId", Mp::from(request_id)),
        ("uid", Mp::from(uid)),
        ("sockets", Mp::Array(items)),
    ])
}

fn empty_handshake() -> Mp {
    map(vec![
        ("headers", map(vec![])),
        ("time", Mp::from("")),
        ("address", Mp::from("")),
        ("xdomain", Mp::Boolean(false)),
        ("secure", Mp::Boolean(false)),
        ("issued", Mp::from(0)),
        ("url", Mp::from("")),
        ("query", map(vec![])),
        ("auth", map(vec![])),
    ])
}
