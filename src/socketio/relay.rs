//! Node-wide operations run on behalf of another node (what a cluster adapter asks of the
//! worker that receives for the node): this worker serves its own sockets, asks the other
//! workers of the node through the peer channel only — never the cluster again — and hands
//! back one answer for the whole node, as Node's adapters expect one per server.

use super::acks::{Collector, Gathered, Step};
use super::adapter::SOCKETIO_CHANNEL;
use super::args::Args;
use super::binary::Message;
use super::cluster::{ClusterMsg, Encoded, SocketInfo, Target};
use super::deliver::deliver_local;
use super::io::Io;
use super::recovery::Session;
use super::server::SocketIo;

/// An encoded packet of a [`Message`].
pub(crate) fn encoded(message: Message) -> Encoded {
    let (packet, blobs) = message.encode();
    Encoded {
        text: packet.encode(),
        blobs: blobs.into_iter().map(serde_bytes::ByteBuf::from).collect(),
    }
}

impl SocketIo {
    /// The names of the namespaces defined up front (dynamic ones come and go).
    pub(crate) fn namespace_names(&self) -> Vec<String> {
        self.registry.fixed.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Applies an encoded cluster message on this worker and on every other worker of the
    /// node (the bytes cross to each once).
    pub(crate) fn apply_on_node(&self, io: &Io<'_>, bytes: &[u8]) {
        self.receive_cluster_bytes(io, bytes);
        io.cx().send_to_all_workers(SOCKETIO_CHANNEL, bytes);
    }

    /// Broadcasts `message` (an EVENT; its ack id is set here) with an acknowledgement
    /// request to the node's sockets `target` selects. `step` hears the node's client count
    /// once every worker has reported, then each client's answer as it comes, until `wait`
    /// ms have passed.
    pub(crate) fn relay_broadcast_ack(
        &self,
        io: &Io<'_>,
        target: Target,
        mut message: Message,
        wait: u64,
        mut step: impl FnMut(Step<'_, Args>) + 'static,
    ) {
        let req = self.new_id(io);
        message.id = Some(req);
        let packet = encoded(message);
        let origin = io.origin();
        let local = deliver_local(io, &target, &packet, Some((&origin, req, req)));
        let msg = ClusterMsg::Broadcast {
            target,
            packet,
            ack: Some((origin, req)),
            ack_timeout: wait,
            offset: None,
        };
        let peers = io.cx().send_to_all_workers(SOCKETIO_CHANNEL, &msg.encode());
        if peers == 0 {
            step(Step::Counted(local));
        }
        let mut c = Collector::new(peers, local, Box::new(|_, _| {}));
        c.relay = Some(Box::new(step));
        self.start_ack_collector(io, req, c, wait);
    }

    /// Takes the kept session `pid` from worker `worker` of this node for another node
    /// (`done` gets `None` when it is unknown, expired, or the worker does not answer).
    pub(crate) fn relay_restore(
        &self,
        io: &Io<'_>,
        worker: usize,
        pid: String,
        offset: Option<String>,
        done: impl FnOnce(Option<Session>) + 'static,
    ) {
        if worker == io.cx().worker_id() {
            done(self.take_session(io, &pid, offset.as_deref()));
            return;
        }
        let req = self.new_id(io);
        let msg = ClusterMsg::Restore {
            origin: io.origin(),
            req,
            pid,
            offset,
        };
        if !io
            .cx()
            .send_to_worker(worker, SOCKETIO_CHANNEL, &msg.encode())
        {
            done(None);
            return;
        }
        self.recovery
            .borrow_mut()
            .relays
            .insert(req, Box::new(done));
        io.after(1000, move |io| {
            let relay = io.sio().recovery.borrow_mut().relays.remove(&req);
            if let Some(f) = relay {
                f(None);
            }
        });
    }

    /// The node's sockets `target` selects (what answered within `wait` ms).
    pub(crate) fn relay_fetch(
        &self,
        io: &Io<'_>,
        target: Target,
        wait: u64,
        done: impl FnOnce(&Io<'_>, Vec<SocketInfo>) + 'static,
    ) {
        let req = self.new_id(io);
        let local = self.local_sockets(io, &target);
        let msg = ClusterMsg::Fetch {
            origin: io.origin(),
            req,
            target,
        };
        let peers = io.cx().send_to_all_workers(SOCKETIO_CHANNEL, &msg.encode());
        let done = move |io: &Io<'_>, r: Result<Vec<SocketInfo>, super::Partial<SocketInfo>>| {
            done(io, r.unwrap_or_else(|p| p.received))
        };
        let mut c = Collector::new(peers, local.len(), Box::new(done));
        for s in local {
            c.add(Gathered::Item(s));
        }
        self.start_fetch_collector(io, req, c, wait);
    }
}
