//! What one worker knows of its Socket.IO clients: the Engine.IO sessions (clients), the
//! sockets (one per namespace a client joined), and each namespace's rooms.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use serde_json::Value as Json;
use slab::Slab;

use super::namespace::Namespace;
use super::{Reassembler, Version};
use crate::engineio::SessionKey;
use crate::runtime::table::Fd;
use crate::runtime::StoredRequest;

/// An Engine.IO session speaking Socket.IO.
pub(crate) struct Client {
    pub version: Version,
    /// The connection that opened the session (names the sids of its sockets).
    pub origin_fd: Fd,
    /// The WebSocket carrying it (`None` while on long-polling).
    pub fd: Option<Fd>,
    /// A binary packet waiting for its attachments (boxed, and only while one waits).
    pub pending: Option<Box<Reassembler>>,
    pub max_payload: usize,
    /// (namespace index, socket key) of every namespace joined.
    pub sockets: Vec<(u16, u32)>,
    pub request: StoredRequest,
    /// A CONNECT is waiting for another worker's answer (session recovery).
    pub pending_connects: u8,
}

impl Client {
    /// A text packet: decoded at once, or kept while its attachments are due.
    pub fn push_text(&mut self, text: &str) -> Result<Option<super::Message>, super::Error> {
        let mut r = match self.pending.take() {
            Some(r) => r,
            None => Box::new(Reassembler::new(self.version, self.max_payload)),
        };
        let res = r.push_text(text);
        if r.is_waiting() {
            self.pending = Some(r);
        }
        res
    }

    /// A binary frame: an attachment of the waiting packet.
    pub fn push_binary(&mut self, frame: &[u8]) -> Result<Option<super::Message>, super::Error> {
        let Some(mut r) = self.pending.take() else {
            return Err(super::Error::UnexpectedBinary);
        };
        let res = r.push_binary(frame);
        if r.is_waiting() {
            self.pending = Some(r);
        }
        res
    }
}

/// Where a socket's packets go: its WebSocket, or through the engine's polling queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dest {
    pub session: SessionKey,
    pub fd: Option<Fd>,
    pub version: Version,
}

/// What gets a client's acknowledgement of an emit.
pub(crate) type AckFn = Box<dyn FnOnce(&super::Io<'_>, Result<super::Args, super::AckError>)>;

/// What a socket waits for an acknowledgement for.
pub(crate) enum AckWait {
    /// `emit_with_ack` on this socket.
    Local(AckFn),
    /// A broadcast with an acknowledgement, collected by `req` of worker `origin`.
    Broadcast { origin: super::Origin, req: u64 },
}

/// A socket: one client in one namespace.
pub(crate) struct SocketState {
    pub sid: Rc<str>,
    pub nsp: u16,
    pub client: SessionKey,
    pub fd: Option<Fd>,
    pub version: Version,
    /// Rooms joined, the socket's own sid room not included.
    pub rooms: Vec<Rc<str>>,
    /// Boxed: 8 bytes for the (usual) socket that waits for nothing, not an empty map's 48.
    #[allow(clippy::box_collection)]
    pub acks: Option<Box<HashMap<u64, AckWait>>>,
    /// The auth payload of the CONNECT (v5) or `Null`.
    pub auth: Json,
    /// Private session id for connection state recovery.
    pub pid: Option<Rc<str>>,
    /// Accepted by the middleware (before that, nothing is delivered to it).
    pub connected: bool,
    pub recovered: bool,
    /// When it was accepted (monotonic ms; recovery replays from here).
    pub connected_at: u64,
}

/// A namespace that exists in this worker: its sockets by sid and its rooms.
pub(crate) struct NsState {
    pub name: Rc<str>,
    pub def: Rc<Namespace>,
    pub sids: HashMap<Rc<str>, u32>,
    pub rooms: HashMap<Rc<str>, HashSet<u32>>,
}

impl SocketState {
    pub fn dest(&self) -> Dest {
        Dest {
            session: self.client,
            fd: self.fd,
            version: self.version,
        }
    }
}

impl NsState {
    pub fn new(name: &str, def: Rc<Namespace>) -> Self {
        NsState {
            name: name.into(),
            def,
            sids: HashMap::new(),
            rooms: HashMap::new(),
        }
    }

    /// Adds `socket` to `room`; `false` if it was in it already.
    pub fn join(&mut self, socket: u32, room: &Rc<str>) -> bool {
        self.rooms.entry(room.clone()).or_default().insert(socket)
    }

    /// Removes `socket` from `room` (the room goes when it is empty).
    pub fn leave(&mut self, socket: u32, room: &str) -> bool {
        let Some(members) = self.rooms.get_mut(room) else {
            return false;
        };
        let removed = members.remove(&socket);
        if members.is_empty() {
            self.rooms.remove(room);
        }
        removed
    }

    /// The sockets of `rooms` (a room name may also be a sid), or every socket when `rooms`
    /// is empty, minus those in `except` — each once, in no particular order.
    pub fn select(&self, rooms: &[Rc<str>], except: &[Rc<str>]) -> Vec<u32> {
        let excluded: HashSet<u32> = except.iter().flat_map(|r| self.members(r)).collect();
        let mut out: Vec<u32> = if rooms.is_empty() {
            self.sids.values().copied().collect()
        } else {
            let mut v: Vec<u32> = rooms.iter().flat_map(|r| self.members(r)).collect();
            if rooms.len() > 1 {
                v.sort_unstable();
                v.dedup();
            }
            v
        };
        if !excluded.is_empty() {
            out.retain(|s| !excluded.contains(s));
        }
        out
    }

    fn members<'a>(&'a self, room: &str) -> Box<dyn Iterator<Item = u32> + 'a> {
        match (self.rooms.get(room), self.sids.get(room)) {
            (Some(m), _) => Box::new(m.iter().copied()),
            (None, Some(&s)) => Box::new(std::iter::once(s)),
            (None, None) => Box::new(std::iter::empty()),
        }
    }
}

/// The clients by session key (keys are dense slab indices: a vector, no hashing).
#[derive(Default)]
pub(crate) struct Clients {
    slots: Vec<Option<Client>>,
    len: usize,
}

impl Clients {
    pub fn get(&self, k: &SessionKey) -> Option<&Client> {
        self.slots.get(k.0 as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, k: &SessionKey) -> Option<&mut Client> {
        self.slots.get_mut(k.0 as usize)?.as_mut()
    }

    pub fn insert(&mut self, k: SessionKey, c: Client) {
        let i = k.0 as usize;
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        if self.slots[i].replace(c).is_none() {
            self.len += 1;
        }
    }

    pub fn remove(&mut self, k: &SessionKey) -> Option<Client> {
        let c = self.slots.get_mut(k.0 as usize)?.take();
        if c.is_some() {
            self.len -= 1;
        }
        c
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

/// The worker's whole Socket.IO state.
#[derive(Default)]
pub(crate) struct State {
    pub clients: Clients,
    pub sockets: Slab<SocketState>,
    pub nsps: Vec<NsState>,
    pub nsp_index: HashMap<Rc<str>, u16>,
    /// Acknowledgement ids and cluster request ids: unique per worker.
    pub next_id: u64,
}

impl State {
    /// The namespace `name` of this worker, if it exists.
    pub fn nsp(&self, name: &str) -> Option<u16> {
        self.nsp_index.get(name).copied()
    }

    /// The namespace `name`, created from `def` if this worker has not seen it yet.
    pub fn nsp_or_insert(
        &mut self,
        name: &str,
        def: impl FnOnce() -> Option<Rc<Namespace>>,
    ) -> Option<u16> {
        if let Some(i) = self.nsp(name) {
            return Some(i);
        }
        let def = def()?;
        let i = u16::try_from(self.nsps.len()).ok()?;
        self.nsps.push(NsState::new(name, def));
        self.nsp_index.insert(name.into(), i);
        Some(i)
    }

    /// A new id, unique among this worker's (and, with the worker id folded in, the node's).
    pub fn next_id(&mut self, worker: usize, workers: usize) -> u64 {
        self.next_id += 1;
        self.next_id * workers.max(1) as u64 + worker as u64
    }
}
