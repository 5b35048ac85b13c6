//! Connection state recovery (Node's socket.io 4.6+ `connectionStateRecovery`): a client that
//! reconnects within `max_disconnection_duration` gets back its sid, its rooms and the
//! packets it missed, whichever worker it lands on.
//!
//! - Every non-volatile emit without an acknowledgement carries an offset as its last
//!   argument (`"<worker>-<n>"`); the client sends the last one it saw back in its CONNECT
//!   (`{pid, offset}`).
//! - Every worker keeps the packets it saw (its own and other workers' broadcasts) for the
//!   duration, and the sessions of its sockets that vanished for a recoverable reason.
//! - The private session id `pid` names the worker that keeps the session, so a CONNECT on
//!   another worker asks that one worker (one peer message), never all of them. With a
//!   cluster adapter the pid and the offsets name the node as well (`<node>.<worker>-…`):
//!   every node keeps the packets of every node, and a CONNECT on another node asks the
//!   node that keeps the session through the adapter.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::binary::Value;
use super::cluster::{ClusterMsg, Encoded, Target, VOLATILE};
use super::deliver::send_to;
use super::io::Io;
use super::server::SocketIo;
use super::state::SocketState;
use crate::engineio::SessionKey;
use crate::runtime::timer::TimerId;

/// Node's `RECOVERABLE_DISCONNECT_REASONS`.
const RECOVERABLE: &[&str] = &[
    "transport error",
    "transport close",
    "forced close",
    "ping timeout",
    "server shutting down",
    "forced server close",
];

/// A session handed from the worker that kept it to the one the client came back to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The sid the socket gets back.
    pub sid: String,
    /// The private session id.
    pub pid: String,
    /// The namespace.
    pub nsp: String,
    /// The rooms it was in (not its sid room).
    pub rooms: Vec<String>,
    /// The packets it missed, in order.
    pub missed: Vec<Encoded>,
}

struct Kept {
    sid: Rc<str>,
    nsp: Rc<str>,
    rooms: Vec<Rc<str>>,
    connected_at: u64,
    gone_at: u64,
}

struct Logged {
    offset: Rc<str>,
    at: u64,
    target: Target,
    packet: Encoded,
}

struct Pending {
    session: SessionKey,
    nsp: String,
    auth: Json,
    timer: TimerId,
}

/// One worker's recovery state.
#[derive(Default)]
pub(crate) struct Recovery {
    sessions: HashMap<String, Kept>,
    order: VecDeque<(u64, String)>,
    log: VecDeque<Logged>,
    next_offset: u64,
    pending: HashMap<u64, Pending>,
    /// Sessions asked of another worker on behalf of another node, by request id.
    pub(crate) relays: HashMap<u64, RestoreRelay>,
}

/// Gets the session a relayed `Restore` brought (`None`: unknown, expired, or no answer).
pub(crate) type RestoreRelay = Box<dyn FnOnce(Option<Session>)>;

/// Who keeps a session, from its pid: a worker of this node, or of another node.
enum Owner<'a> {
    Worker(usize),
    Node(&'a str, usize),
}

/// `(node, worker)` of a pid `<worker>-<hex>` or `<node>.<worker>-<hex>`.
fn owner_of(pid: &str) -> Option<(Option<&str>, usize)> {
    let (prefix, _) = pid.rsplit_once('-')?;
    match prefix.rsplit_once('.') {
        Some((node, w)) => Some((Some(node), w.parse().ok()?)),
        None => Some((None, prefix.parse().ok()?)),
    }
}

impl SocketIo {
    fn recovery_on(&self) -> bool {
        self.config.recovery.is_some()
    }

    /// Appends the next offset to the arguments of an emit that recovery keeps.
    pub(crate) fn recovery_offset(
        &self,
        io: &Io<'_>,
        target: &Target,
        args: &mut Vec<Value>,
    ) -> Option<String> {
        if !self.recovery_on() || target.flags & VOLATILE != 0 {
            return None;
        }
        let mut r = self.recovery.borrow_mut();
        r.next_offset += 1;
        let offset = format!("{}-{}", self.party_name(io), r.next_offset);
        args.push(Value::String(offset.clone()));
        Some(offset)
    }

    /// Keeps a packet for the sessions that may miss it.
    pub(crate) fn remember(&self, io: &Io<'_>, target: &Target, packet: &Encoded, offset: &str) {
        let Some(cfg) = &self.config.recovery else {
            return;
        };
        let now = io.cx().now_ms();
        let mut r = self.recovery.borrow_mut();
        r.log.push_back(Logged {
            offset: Rc::from(offset),
            at: now,
            target: target.clone(),
            packet: packet.clone(),
        });
        let horizon = now.saturating_sub(cfg.max_disconnection_duration);
        while r.log.front().is_some_and(|l| l.at < horizon) || r.log.len() > cfg.max_packets {
            r.log.pop_front();
        }
    }

    /// A private session id naming this worker.
    pub(crate) fn new_pid(&self, io: &Io<'_>) -> Option<Rc<str>> {
        if !self.recovery_on() {
            return None;
        }
        let mut raw = [0u8; 12];
        crate::engineio::server::session::fill_random(&mut raw);
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        Some(Rc::from(format!("{}-{hex}", self.party_name(io))))
    }

    /// This worker in pids and offsets: `<worker>`, or `<node>.<worker>` with a cluster
    /// adapter.
    fn party_name(&self, io: &Io<'_>) -> String {
        match self.adapter.node() {
            "" => io.cx().worker_id().to_string(),
            node => format!("{node}.{}", io.cx().worker_id()),
        }
    }

    /// Keeps the session of a socket that ended for a recoverable reason.
    pub(crate) fn persist(&self, io: &Io<'_>, s: &SocketState, nsp: &Rc<str>, reason: &str) {
        let Some(cfg) = &self.config.recovery else {
            return;
        };
        let mut r = self.recovery.borrow_mut();
        let (Some(pid), true) = (&s.pid, RECOVERABLE.contains(&reason)) else {
            return;
        };
        let now = io.cx().now_ms();
        let horizon = now.saturating_sub(cfg.max_disconnection_duration);
        while let Some((at, old)) = r.order.front().cloned() {
            if at >= horizon {
                break;
            }
            r.order.pop_front();
            r.sessions.remove(&old);
        }
        r.order.push_back((now, pid.to_string()));
        r.sessions.insert(
            pid.to_string(),
            Kept {
                sid: s.sid.clone(),
                nsp: nsp.clone(),
                rooms: s.rooms.clone(),
                connected_at: s.connected_at,
                gone_at: now,
            },
        );
    }
}

impl SocketIo {
    /// The kept session `pid` with the packets it missed after `offset` (or, when the client
    /// saw no packet, since it connected); `None` if unknown, expired or the offset is no
    /// longer in the log.
    pub(crate) fn take_session(
        &self,
        io: &Io<'_>,
        pid: &str,
        offset: Option<&str>,
    ) -> Option<Session> {
        let cfg = self.config.recovery.as_ref()?;
        let mut r = self.recovery.borrow_mut();
        let kept = r.sessions.remove(pid)?;
        let now = io.cx().now_ms();
        if kept.gone_at + cfg.max_disconnection_duration < now {
            return None;
        }
        let start = match offset {
            Some(o) => r.log.iter().position(|l| &*l.offset == o)? + 1,
            None => r
                .log
                .iter()
                .position(|l| l.at >= kept.connected_at)
                .unwrap_or(r.log.len()),
        };
        let missed = r
            .log
            .iter()
            .skip(start)
            .filter(|l| kept.receives(&l.target))
            .map(|l| l.packet.clone())
            .collect();
        Some(Session {
            sid: kept.sid.to_string(),
            pid: pid.to_string(),
            nsp: kept.nsp.to_string(),
            rooms: kept.rooms.iter().map(|r| r.to_string()).collect(),
            missed,
        })
    }

    /// A v5 CONNECT carrying `{pid, offset}`: restores the session here, or asks the worker
    /// the pid names. `false` when there is nothing to restore (connect afresh).
    pub(crate) fn try_restore(
        &self,
        io: &Io<'_>,
        session: SessionKey,
        nsp: &str,
        auth: &Json,
    ) -> bool {
        if !self.recovery_on() {
            return false;
        }
        let Some(pid) = auth.get("pid").and_then(Json::as_str) else {
            return false;
        };
        let offset = auth.get("offset").and_then(Json::as_str);
        let me = io.cx().worker_id();
        let here = self.adapter.node();
        let owner = match owner_of(pid) {
            Some((Some(node), w)) if node != here => Owner::Node(node, w),
            Some((_, w)) if w == me => {
                return match self.take_session(io, pid, offset) {
                    Some(s) => self.restore(io, session, s, auth.clone()),
                    None => false,
                }
            }
            Some((_, w)) if w < io.cx().worker_num() => Owner::Worker(w),
            _ => return false,
        };
        self.ask_owner(io, session, nsp, auth, owner, pid, offset)
    }

    #[allow(clippy::too_many_arguments)]
    fn ask_owner(
        &self,
        io: &Io<'_>,
        session: SessionKey,
        nsp: &str,
        auth: &Json,
        owner: Owner<'_>,
        pid: &str,
        offset: Option<&str>,
    ) -> bool {
        let req = self.new_id(io);
        let msg = ClusterMsg::Restore {
            origin: io.origin(),
            req,
            pid: pid.to_string(),
            offset: offset.map(str::to_string),
        };
        let sent = match owner {
            Owner::Worker(w) => self.adapter.send_to_worker(io.cx(), w, &msg.encode()),
            Owner::Node(node, w) => self.adapter.send_to_node(io.cx(), node, w, &msg.encode()),
        };
        if !sent {
            return false;
        }
        let timer = io.after(1000, move |io| io.sio().restored(io, req, None));
        if let Some(c) = self.state.borrow_mut().clients.get_mut(&session) {
            c.pending_connects += 1;
        }
        let pending = Pending {
            session,
            nsp: nsp.to_string(),
            auth: auth.clone(),
            timer,
        };
        self.recovery.borrow_mut().pending.insert(req, pending);
        true
    }

    /// The owner's answer (or the timeout, `None`): restore, or connect afresh.
    pub(crate) fn restored(&self, io: &Io<'_>, req: u64, session: Option<Session>) {
        let relay = self.recovery.borrow_mut().relays.remove(&req);
        if let Some(f) = relay {
            f(session);
            return;
        }
        let Some(p) = self.recovery.borrow_mut().pending.remove(&req) else {
            return;
        };
        io.cx().clear_timer(p.timer);
        if let Some(c) = self.state.borrow_mut().clients.get_mut(&p.session) {
            c.pending_connects = c.pending_connects.saturating_sub(1);
        }
        let restored = session.is_some_and(|s| self.restore(io, p.session, s, p.auth.clone()));
        if !restored {
            let mut auth = p.auth;
            if let Json::Object(o) = &mut auth {
                o.remove("pid"); // connect afresh, without asking again
            }
            self.connect(io, p.session, &p.nsp, auth);
        }
    }

    /// Brings a session back on `client`: same sid and rooms, `recovered`, the missed packets
    /// after the CONNECT answer.
    fn restore(&self, io: &Io<'_>, client: SessionKey, s: Session, auth: Json) -> bool {
        let Some(def) = self.registry.find(&s.nsp) else {
            return false;
        };
        let sid: Rc<str> = Rc::from(s.sid.as_str());
        let Some(key) = self.add_socket(client, &s.nsp, def.clone(), sid.clone(), auth) else {
            return false;
        };
        if let Some(st) = self.state.borrow_mut().sockets.get_mut(key as usize) {
            st.recovered = true;
        }
        let skip = self
            .config
            .recovery
            .as_ref()
            .is_some_and(|c| c.skip_middlewares);
        let socket = self.socket(io, key, &sid, &s.nsp);
        if !skip && def.middleware.iter().try_for_each(|m| m(&socket)).is_err() {
            self.remove_socket(io, key, "server namespace disconnect");
            return false;
        }
        for r in &s.rooms {
            self.join_socket(key, &sid, r);
        }
        let dest = self
            .state
            .borrow()
            .sockets
            .get(key as usize)
            .map(|st| st.dest());
        self.finish_connect(io, key, Some(Rc::from(s.pid.as_str())));
        if let Some(dest) = dest {
            for p in &s.missed {
                send_to(io, dest, p, true);
            }
        }
        log::debug!(
            "socket.io: recovered {} with {} missed packet(s)",
            s.sid,
            s.missed.len()
        );
        true
    }
}

impl Kept {
    /// Whether a packet for `target` would have reached this socket.
    fn receives(&self, t: &Target) -> bool {
        if *t.nsp != *self.nsp {
            return false;
        }
        let is_in = |room: &Rc<str>| *room == self.sid || self.rooms.contains(room);
        (t.rooms.is_empty() || t.rooms.iter().any(is_in)) && !t.except.iter().any(is_in)
    }
}
