//! Node-wide operations, this worker's part: selecting, joining, leaving and disconnecting
//! local sockets, and the collectors that gather the other workers' answers.

use std::rc::Rc;

use super::acks::{Collector, Gathered};
use super::args::Args;
use super::cluster::{SocketInfo, Target};
use super::io::Io;
use super::server::SocketIo;

impl SocketIo {
    /// The keys and sids of the connected local sockets `target` selects.
    pub(crate) fn select_local(&self, target: &Target) -> Vec<(u32, Rc<str>)> {
        let state = self.state.borrow();
        let Some(ni) = state.nsp(&target.nsp) else {
            return Vec::new();
        };
        state.nsps[ni as usize]
            .select(&target.rooms, &target.except)
            .into_iter()
            .filter_map(|k| {
                let s = state.sockets.get(k as usize)?;
                s.connected.then(|| (k, s.sid.clone()))
            })
            .collect()
    }

    pub(crate) fn local_sockets(&self, io: &Io<'_>, target: &Target) -> Vec<SocketInfo> {
        let worker = io.cx().worker_id() as u32;
        let state = self.state.borrow();
        self.select_local(target)
            .into_iter()
            .filter_map(|(k, sid)| {
                let s = state.sockets.get(k as usize)?;
                let mut rooms = vec![sid.to_string()];
                rooms.extend(s.rooms.iter().map(|r| r.to_string()));
                Some(SocketInfo {
                    sid: sid.to_string(),
                    nsp: target.nsp.to_string(),
                    rooms,
                    worker,
                })
            })
            .collect()
    }

    pub(crate) fn join_local(&self, _io: &Io<'_>, target: &Target, rooms: &[Rc<str>]) {
        for (k, sid) in self.select_local(target) {
            for r in rooms {
                self.join_socket(k, &sid, r);
            }
        }
    }

    pub(crate) fn leave_local(&self, _io: &Io<'_>, target: &Target, rooms: &[Rc<str>]) {
        for (k, sid) in self.select_local(target) {
            for r in rooms {
                self.leave_socket(k, &sid, r);
            }
        }
    }

    pub(crate) fn disconnect_local(&self, io: &Io<'_>, target: &Target, close: bool) {
        for (k, sid) in self.select_local(target) {
            self.socket(io, k, &sid, &target.nsp).disconnect(close);
        }
    }

    /// Starts gathering a broadcast's acknowledgements (finished now if nothing is due).
    pub(crate) fn start_ack_collector(
        &self,
        io: &Io<'_>,
        req: u64,
        mut c: Collector<Args>,
        wait: u64,
    ) {
        if c.complete() {
            if let Some(f) = c.finish() {
                io.cx().defer(move |h, cx| f(&Io::from_parts(h, cx)));
            }
            return;
        }
        c.timer = Some(io.after(wait, move |io| {
            let mut c = io.sio().collectors.borrow_mut().acks.remove(&req);
            if let Some(c) = c.as_mut() {
                c.timed_out(io.sio().adapter.other_nodes());
            }
            if let Some(f) = c.and_then(Collector::finish) {
                f(io);
            }
            io.sio().forget_broadcast_waits(req);
        }));
        self.collectors.borrow_mut().acks.insert(req, c);
    }

    /// Starts gathering a node-wide query's answers (finished now if nothing is due).
    pub(crate) fn start_fetch_collector(
        &self,
        io: &Io<'_>,
        req: u64,
        mut c: Collector<SocketInfo>,
        wait: u64,
    ) {
        if c.complete() {
            if let Some(f) = c.finish() {
                io.cx().defer(move |h, cx| f(&Io::from_parts(h, cx)));
            }
            return;
        }
        c.timer = Some(io.after(wait, move |io| {
            let mut c = io.sio().collectors.borrow_mut().fetches.remove(&req);
            if let Some(c) = c.as_mut() {
                c.timed_out(io.sio().adapter.other_nodes());
            }
            if let Some(f) = c.and_then(Collector::finish) {
                f(io);
            }
        }));
        self.collectors.borrow_mut().fetches.insert(req, c);
    }

    /// One acknowledgement (or a party's count) for this worker's collector `req`.
    pub(crate) fn gather(&self, io: &Io<'_>, req: u64, g: Gathered<Args>) {
        let done = {
            let mut cs = self.collectors.borrow_mut();
            let Some(c) = cs.acks.get_mut(&req) else {
                return;
            };
            c.add(g);
            if !c.complete() {
                return;
            }
            cs.acks.remove(&req)
        };
        if let Some(c) = done {
            if let Some(t) = c.timer {
                io.cx().clear_timer(t);
            }
            if let Some(f) = c.finish() {
                f(io);
            }
        }
    }

    pub(crate) fn gather_ack(&self, io: &Io<'_>, req: u64, args: Args) {
        self.gather(io, req, Gathered::Item(args));
    }

    /// One party's answer to this worker's query `req` (`node`: the answering node, empty
    /// for a worker of this node).
    pub(crate) fn gather_sockets(
        &self,
        io: &Io<'_>,
        req: u64,
        sockets: Vec<SocketInfo>,
        node: String,
    ) {
        let done = {
            let mut cs = self.collectors.borrow_mut();
            let Some(c) = cs.fetches.get_mut(&req) else {
                return;
            };
            let n = sockets.len() as u32;
            c.add(match node.is_empty() {
                true => Gathered::Count(n),
                false => Gathered::NodeCount(n, node),
            });
            for s in sockets {
                c.add(Gathered::Item(s));
            }
            if !c.complete() {
                return;
            }
            cs.fetches.remove(&req)
        };
        if let Some(c) = done {
            if let Some(t) = c.timer {
                io.cx().clear_timer(t);
            }
            if let Some(f) = c.finish() {
                f(io);
            }
        }
    }

    /// Drops the waits local sockets still hold for broadcast `req` (its timeout passed).
    pub(crate) fn forget_broadcast_waits(&self, req: u64) {
        let mut state = self.state.borrow_mut();
        for (_, s) in state.sockets.iter_mut() {
            if let Some(acks) = s.acks.as_mut() {
                acks.remove(&req);
            }
        }
    }
}
