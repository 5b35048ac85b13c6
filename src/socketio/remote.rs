//! What other workers (or nodes) send: applied to this worker's sockets, answered to the
//! origin when it asked.

use super::acks::Gathered;
use super::cluster::ClusterMsg;
use super::deliver::deliver_local;
use super::dispatch::decode_ack_args;
use super::io::Io;
use super::server::SocketIo;

impl SocketIo {
    /// Applies a cluster message from another worker or node (what an adapter calls with
    /// what it received).
    pub fn receive_cluster_bytes(&self, io: &Io<'_>, bytes: &[u8]) {
        if let Some(msg) = ClusterMsg::decode(bytes) {
            self.receive_cluster(io, msg);
        }
    }

    pub(crate) fn receive_cluster(&self, io: &Io<'_>, msg: ClusterMsg) {
        match msg {
            ClusterMsg::Broadcast {
                target,
                packet,
                ack,
                ack_timeout,
                offset,
            } => {
                if let Some(offset) = &offset {
                    self.remember(io, &target, &packet, offset);
                }
                let waits = ack.as_ref().map(|(o, req)| (o, *req, *req));
                let n = deliver_local(io, &target, &packet, waits);
                if let Some((origin, req)) = ack {
                    let reply = ClusterMsg::AckCount {
                        req,
                        count: n as u32,
                        node: String::new(),
                    };
                    self.adapter.reply(io.cx(), &origin, &reply.encode());
                    io.after(ack_timeout, move |io| io.sio().forget_broadcast_waits(req));
                }
            }
            ClusterMsg::AckCount { req, count, node } => {
                let g = match node.is_empty() {
                    true => Gathered::Count(count),
                    false => Gathered::NodeCount(count, node),
                };
                self.gather(io, req, g)
            }
            ClusterMsg::AckReply { req, args } => {
                if let Some(args) = decode_ack_args(&args) {
                    self.gather_ack(io, req, args);
                }
            }
            ClusterMsg::Fetch {
                origin,
                req,
                target,
            } => {
                let sockets = self.local_sockets(io, &target);
                let reply = ClusterMsg::FetchReply {
                    req,
                    sockets,
                    node: String::new(),
                };
                self.adapter.reply(io.cx(), &origin, &reply.encode());
            }
            ClusterMsg::FetchReply { req, sockets, node } => {
                self.gather_sockets(io, req, sockets, node)
            }
            ClusterMsg::Join { target, rooms } => self.join_local(io, &target, &rooms),
            ClusterMsg::Leave { target, rooms } => self.leave_local(io, &target, &rooms),
            ClusterMsg::Disconnect { target, close } => self.disconnect_local(io, &target, close),
            ClusterMsg::ServerEvent { nsp, event, args } => {
                self.server_event(io, &nsp, &event, &args)
            }
            ClusterMsg::Restore {
                origin,
                req,
                pid,
                offset,
            } => {
                let session = self.take_session(io, &pid, offset.as_deref());
                let reply = ClusterMsg::Restored { req, session };
                self.adapter.reply(io.cx(), &origin, &reply.encode());
            }
            ClusterMsg::Restored { req, session } => self.restored(io, req, session),
        }
    }

    fn server_event(&self, io: &Io<'_>, nsp: &str, event: &str, args: &super::cluster::Encoded) {
        let Some(def) = self.registry.find(nsp) else {
            return;
        };
        let Some(f) = def.server_events.get(event) else {
            return;
        };
        let Some(mut args) = decode_ack_args(args) else {
            return;
        };
        if !args.0.is_empty() {
            args.0.remove(0); // the event name
        }
        f(io, args);
    }
}
