//! The global API (Hyperf's `SocketIO` singleton, Node's `io`): `io.of("/ns").to("room")
//! .emit(…)` from any handler, HTTP request, timer — or, through an [`IoHandle`], any thread
//! of the worker's process.

use std::rc::Rc;

use super::acks::{BroadcastAcks, Collector, FetchResult, Gathered};
use super::args::IntoArgs;
use super::cluster::{ClusterMsg, Origin, Target, LOCAL, NO_COMPRESS, THIS_NODE, VOLATILE};
use super::deliver::{deliver_local, encode_event};
use super::server::SocketIo;
use crate::engineio::{Engine, EngineCtx, EngineIo};
use crate::runtime::timer::TimerId;
use crate::runtime::WorkerHandle;

/// The worker context of a Socket.IO server.
pub type SioCtx = EngineCtx<SocketIo>;

/// The server as handlers see it, on the worker's thread.
#[derive(Clone, Copy)]
pub struct Io<'a> {
    pub(crate) engine: Engine<'a, SocketIo>,
}

impl<'a> Io<'a> {
    pub(crate) fn new(engine: Engine<'a, SocketIo>) -> Self {
        Io { engine }
    }

    /// From the arguments of a timer or `WorkerHandle::run` callback.
    pub fn from_parts(io: &'a EngineIo<SocketIo>, cx: &'a SioCtx) -> Self {
        Io::new(Engine { io, cx })
    }

    /// The Socket.IO server.
    pub fn sio(&self) -> &'a SocketIo {
        self.engine.handler()
    }

    /// The worker context (timers, plain pushes, the runtime's API).
    pub fn cx(&self) -> &'a SioCtx {
        self.engine.cx
    }

    pub(crate) fn origin(&self) -> Origin {
        Origin {
            node: self.sio().adapter.node().to_string(),
            worker: self.cx().worker_id() as u32,
        }
    }

    /// Engine.IO sessions of this worker (Socket.IO clients and any other endpoint's).
    pub fn engine_sessions(&self) -> usize {
        self.engine.io.session_count()
    }

    /// Operations on namespace `nsp` (Node's `io.of(nsp)`).
    pub fn of(&self, nsp: &str) -> Operator<'a> {
        Operator::new(*self, nsp)
    }

    /// Sockets of `room` in `/` (everyone in it: there is no sender).
    pub fn to(&self, room: &str) -> Operator<'a> {
        self.of("/").to(room)
    }

    /// Same as [`to`](Io::to).
    pub fn in_(&self, room: &str) -> Operator<'a> {
        self.to(room)
    }

    /// This worker's sockets of `/` only (Node's `io.local`).
    pub fn local(&self) -> Operator<'a> {
        self.of("/").local()
    }

    /// Emits to every socket of `/`.
    pub fn emit(&self, event: &str, args: impl IntoArgs) -> usize {
        self.of("/").emit(event, args)
    }

    /// Runs `f` after `ms` milliseconds on this worker.
    pub fn after(&self, ms: u64, f: impl FnOnce(&Io<'_>) + 'static) -> TimerId {
        self.cx().after(ms, move |h, cx| f(&Io::from_parts(h, cx)))
    }

    /// Runs `f` every `ms` milliseconds on this worker.
    pub fn tick(&self, ms: u64, mut f: impl FnMut(&Io<'_>) + 'static) -> TimerId {
        self.cx()
            .tick(ms, move |h, cx, _| f(&Io::from_parts(h, cx)))
    }

    /// A `Send + Sync` handle for other threads.
    pub fn handle(&self) -> IoHandle {
        IoHandle(self.cx().handle())
    }
}

/// Runs Socket.IO operations on a worker from any thread of its process.
#[derive(Clone)]
pub struct IoHandle(WorkerHandle<EngineIo<SocketIo>>);

impl IoHandle {
    /// Runs `f` on the worker's thread; `false` if its queue is full (`handle_queue_size`).
    pub fn run(&self, f: impl FnOnce(&Io<'_>) + Send + 'static) -> bool {
        self.0.run(move |h, cx| f(&Io::from_parts(h, cx)))
    }
}

/// A selection of sockets and flags (Node's `BroadcastOperator`): rooms (a union), rooms
/// excluded, `local`, `volatile`, `compress`, an acknowledgement timeout.
#[derive(Clone)]
pub struct Operator<'a> {
    pub(crate) io: Io<'a>,
    pub(crate) target: Target,
    pub(crate) timeout: Option<u64>,
}

impl<'a> Operator<'a> {
    pub(crate) fn new(io: Io<'a>, nsp: &str) -> Self {
        Operator {
            io,
            target: Target {
                nsp: Rc::from(nsp),
                ..Target::default()
            },
            timeout: None,
        }
    }

    /// Adds a room (several rooms: their union).
    pub fn to(mut self, room: &str) -> Self {
        self.target.rooms.push(Rc::from(room));
        self
    }

    /// Same as [`to`](Operator::to).
    pub fn in_(self, room: &str) -> Self {
        self.to(room)
    }

    /// Leaves out the sockets of `room` (a sid leaves out that socket).
    pub fn except(mut self, room: &str) -> Self {
        self.target.except.push(Rc::from(room));
        self
    }

    /// This worker only (narrower than Node's `local`: see [`this_node`](Operator::this_node)).
    pub fn local(mut self) -> Self {
        self.target.flags |= LOCAL;
        self
    }

    /// Every worker of this node, no other node (Node's `local`, where a node is one
    /// process; with the node adapter, the same as no flag).
    pub fn this_node(mut self) -> Self {
        self.target.flags |= THIS_NODE;
        self
    }

    /// May be lost: skipped for clients whose output is backed up, and not kept for
    /// connection state recovery (Node's `volatile`).
    pub fn volatile(mut self) -> Self {
        self.target.flags |= VOLATILE;
        self
    }

    /// `compress(false)` sends uncompressed even to clients that negotiated
    /// permessage-deflate (broadcast frames are always sent uncompressed).
    pub fn compress(mut self, on: bool) -> Self {
        if on {
            self.target.flags &= !NO_COMPRESS;
        } else {
            self.target.flags |= NO_COMPRESS;
        }
        self
    }

    /// The acknowledgement timeout of [`emit_with_ack`](Operator::emit_with_ack) and of
    /// node-wide queries (default: `client_callback_timeout`).
    pub fn timeout(mut self, ms: u64) -> Self {
        self.timeout = Some(ms);
        self
    }

    fn wait_ms(&self) -> u64 {
        self.timeout
            .unwrap_or(self.io.sio().config.client_callback_timeout)
    }

    fn remote(&self) -> bool {
        self.target.flags & LOCAL == 0
    }

    /// Emits to the selected sockets of every worker; returns how many of this worker's
    /// sockets it went to.
    pub fn emit(self, event: &str, args: impl IntoArgs) -> usize {
        let sio = self.io.sio();
        let mut args = args.into_args();
        let offset = sio.recovery_offset(&self.io, &self.target, &mut args);
        let packet = encode_event(&self.target.nsp, event, args, None);
        if let Some(offset) = &offset {
            sio.remember(&self.io, &self.target, &packet, offset);
        }
        let n = deliver_local(&self.io, &self.target, &packet, None);
        if self.remote() {
            let msg = ClusterMsg::Broadcast {
                target: self.target,
                packet,
                ack: None,
                ack_timeout: 0,
                offset,
            };
            sio.adapter.publish(self.io.cx(), &msg.encode());
        }
        n
    }

    /// Emits with an acknowledgement request; `done` gets one `Args` per client that
    /// answered, or — when the timeout passes first — the answers that came
    /// ([`Partial`](super::Partial)).
    pub fn emit_with_ack(
        self,
        event: &str,
        args: impl IntoArgs,
        done: impl FnOnce(&Io<'_>, BroadcastAcks) + 'static,
    ) {
        let io = self.io;
        let sio = io.sio();
        let req = sio.new_id(&io);
        let origin = io.origin();
        let wait = self.wait_ms();
        let packet = encode_event(&self.target.nsp, event, args, Some(req));
        let local = deliver_local(&io, &self.target, &packet, Some((&origin, req, req)));
        let parties = if self.remote() {
            let msg = ClusterMsg::Broadcast {
                target: self.target,
                packet,
                ack: Some((origin, req)),
                ack_timeout: wait,
                offset: None,
            };
            sio.adapter.publish(io.cx(), &msg.encode())
        } else {
            0
        };
        let collector = Collector::new(parties, local, Box::new(done));
        sio.start_ack_collector(&io, req, collector, wait);
    }

    /// The sockets selected on every worker (Node's `fetchSockets`).
    pub fn fetch_sockets(self, done: impl FnOnce(&Io<'_>, FetchResult) + 'static) {
        let io = self.io;
        let sio = io.sio();
        let req = sio.new_id(&io);
        let wait = self.wait_ms();
        let local = sio.local_sockets(&io, &self.target);
        let parties = if self.remote() {
            let msg = ClusterMsg::Fetch {
                origin: io.origin(),
                req,
                target: self.target,
            };
            sio.adapter.publish(io.cx(), &msg.encode())
        } else {
            0
        };
        let mut collector = Collector::new(parties, local.len(), Box::new(done));
        for s in local {
            collector.add(Gathered::Item(s));
        }
        sio.start_fetch_collector(&io, req, collector, wait);
    }

    /// How many sockets are selected on every worker (`fetch_sockets` without the list).
    pub fn count(self, done: impl FnOnce(&Io<'_>, Result<usize, usize>) + 'static) {
        self.fetch_sockets(move |io, r| {
            done(
                io,
                match r {
                    Ok(v) => Ok(v.len()),
                    Err(p) => Err(p.received.len()),
                },
            )
        })
    }

    /// Makes the selected sockets of every worker join `rooms` (Node's `socketsJoin`).
    pub fn sockets_join(self, rooms: &[&str]) {
        let rooms: Vec<Rc<str>> = rooms.iter().map(|r| Rc::from(*r)).collect();
        self.io.sio().join_local(&self.io, &self.target, &rooms);
        self.publish_if_remote(|target| ClusterMsg::Join { target, rooms });
    }

    /// Makes the selected sockets of every worker leave `rooms` (Node's `socketsLeave`).
    pub fn sockets_leave(self, rooms: &[&str]) {
        let rooms: Vec<Rc<str>> = rooms.iter().map(|r| Rc::from(*r)).collect();
        self.io.sio().leave_local(&self.io, &self.target, &rooms);
        self.publish_if_remote(|target| ClusterMsg::Leave { target, rooms });
    }

    /// Disconnects the selected sockets of every worker (Node's `disconnectSockets`);
    /// `close` also closes their connections.
    pub fn disconnect_sockets(self, close: bool) {
        self.io
            .sio()
            .disconnect_local(&self.io, &self.target, close);
        self.publish_if_remote(|target| ClusterMsg::Disconnect { target, close });
    }

    fn publish_if_remote(self, msg: impl FnOnce(Target) -> ClusterMsg) {
        if self.remote() {
            let io = self.io;
            io.sio()
                .adapter
                .publish(io.cx(), &msg(self.target).encode());
        }
    }

    /// Sends an event to the namespace's [`on_server_event`](super::Namespace::on_server_event)
    /// handlers of every other worker (Node's `serverSideEmit`).
    pub fn server_side_emit(self, event: &str, args: impl IntoArgs) -> usize {
        let io = self.io;
        let packet = encode_event(&self.target.nsp, event, args, None);
        let msg = ClusterMsg::ServerEvent {
            nsp: self.target.nsp.clone(),
            event: event.to_string(),
            args: packet,
        };
        io.sio().adapter.publish(io.cx(), &msg.encode())
    }
}
