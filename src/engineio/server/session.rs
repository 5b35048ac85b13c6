//! The sessions of one worker: who they are, which transport carries them, where their
//! heartbeat stands, and the ids that name them (and their worker).

use std::cell::Cell;
use std::collections::HashMap;

use slab::Slab;

use super::config::Endpoint;
use super::handler::DisconnectReason;
use crate::engineio::{Packet, Version};
use crate::runtime::table::Fd;
use crate::runtime::{ConnId, ConnMap};

/// A session of this worker: an index that stays valid while the session lives, whichever
/// connections carry it (long-polling requests come and go; an upgrade switches to a
/// WebSocket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(pub u32);

/// Where a session's heartbeat stands; `Session::beat_at` is the deadline that goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// v4: the server pings at the deadline.
    PingAt,
    /// v4: a ping is out; the pong is due by the deadline.
    PongBy,
    /// v3: the client's next ping is due by the deadline.
    ClientPingBy,
}

/// HTTP long-polling state: the GET held for the next packets, the packets waiting for it,
/// and a WebSocket being probed for the upgrade.
#[derive(Debug, Default)]
pub(crate) struct Polling {
    pub get: Option<ConnId>,
    pub queue: Vec<Packet>,
    pub probe: Option<ConnId>,
    pub probed: bool,
}

/// What carries a session.
#[derive(Debug)]
pub(crate) enum Transport {
    WebSocket(ConnId),
    /// Boxed: a WebSocket session (the common case) stays small.
    Polling(Box<Polling>),
}

/// One session.
#[derive(Debug)]
pub(crate) struct Session {
    pub sid: Box<str>,
    pub transport: Transport,
    pub version: Version,
    pub endpoint: Endpoint,
    pub gen: u32,
    pub beat: Beat,
    pub beat_at: u64,
    /// Set when the server decided to end the session, so `on_close` reports that reason.
    pub closing: Option<DisconnectReason>,
}

impl Session {
    /// The WebSocket connection, once the session has one.
    pub fn ws(&self) -> Option<ConnId> {
        match &self.transport {
            Transport::WebSocket(c) => Some(*c),
            Transport::Polling(_) => None,
        }
    }

    pub fn polling(&mut self) -> Option<&mut Polling> {
        match &mut self.transport {
            Transport::Polling(p) => Some(p),
            Transport::WebSocket(_) => None,
        }
    }
}

/// The sessions of one worker, with a generation per key (entries in the deadline queues
/// carry it, so an entry of a closed session is never applied to the key's next session).
#[derive(Default)]
pub(crate) struct Sessions {
    pub slab: Slab<Session>,
    gens: Vec<u32>,
    /// Connections (a WebSocket, a held GET, a probe) to their session.
    by_conn: ConnMap<u32>,
    /// Polling sessions by sid (their requests name them).
    by_sid: HashMap<Box<str>, u32>,
}

impl Sessions {
    pub fn insert(&mut self, make: impl FnOnce(u32) -> Session) -> SessionKey {
        let entry = self.slab.vacant_entry();
        let key = entry.key();
        if key >= self.gens.len() {
            self.gens.resize(key + 1, 0);
        }
        let session = make(self.gens[key]);
        let key32 = key as u32;
        match &session.transport {
            Transport::WebSocket(c) => {
                self.by_conn.insert(*c, key32);
            }
            Transport::Polling(_) => {
                self.by_sid.insert(session.sid.clone(), key32);
            }
        }
        entry.insert(session);
        SessionKey(key32)
    }

    pub fn get(&self, key: SessionKey) -> Option<&Session> {
        self.slab.get(key.0 as usize)
    }

    pub fn get_mut(&mut self, key: SessionKey) -> Option<&mut Session> {
        self.slab.get_mut(key.0 as usize)
    }

    /// The session `key` if it still has generation `gen`.
    pub fn live_mut(&mut self, key: u32, gen: u32) -> Option<&mut Session> {
        self.slab.get_mut(key as usize).filter(|s| s.gen == gen)
    }

    pub fn of_conn(&self, conn: ConnId) -> Option<SessionKey> {
        self.by_conn.get(conn).map(|&k| SessionKey(k))
    }

    pub fn of_sid(&self, sid: &str) -> Option<SessionKey> {
        self.by_sid.get(sid).map(|&k| SessionKey(k))
    }

    pub fn map_conn(&mut self, conn: ConnId, key: SessionKey) {
        self.by_conn.insert(conn, key.0);
    }

    pub fn unmap_conn(&mut self, conn: ConnId) {
        self.by_conn.remove(conn);
    }

    pub fn remove(&mut self, key: SessionKey) -> Option<Session> {
        let s = self.slab.try_remove(key.0 as usize)?;
        match &s.transport {
            Transport::WebSocket(c) => {
                self.by_conn.remove(*c);
            }
            Transport::Polling(p) => {
                for c in [p.get, p.probe].into_iter().flatten() {
                    self.by_conn.remove(c);
                }
            }
        }
        self.by_sid.remove(&s.sid);
        let g = &mut self.gens[key.0 as usize];
        *g = g.wrapping_add(1);
        Some(s)
    }

    /// A polling session now goes over its WebSocket `conn` (its sid stays known, so that
    /// stale polling requests get "Bad request").
    pub fn upgraded(&mut self, key: SessionKey, conn: ConnId) {
        if let Some(s) = self.slab.get_mut(key.0 as usize) {
            s.transport = Transport::WebSocket(conn);
            self.by_conn.insert(conn, key.0);
        }
    }
}

/// A fresh session id: the fd of the connection that opened it (an fd names its worker) and
/// 7 random bytes, base64url-encoded to 20 characters like Node's `base64id`.
pub(crate) fn new_sid(fd: Fd) -> Box<str> {
    use base64::Engine as _;
    let mut raw = [0u8; 15];
    raw[..8].copy_from_slice(&fd.to_be_bytes());
    fill_random(&mut raw[8..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(raw)
        .into_boxed_str()
}

/// The fd a session id names: the one in a [`new_sid`] id, or the number after the last
/// `#` of an id a handler chose (`ServerID#FD`).
pub(crate) fn sid_fd(sid: &str) -> Option<Fd> {
    use base64::Engine as _;
    if let Some((_, fd)) = sid.rsplit_once('#') {
        return fd.parse().ok();
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sid)
        .ok()?;
    Some(Fd::from_be_bytes(raw.get(..8)?.try_into().ok()?))
}

thread_local! {
    static FALLBACK: Cell<u64> = const { Cell::new(0x9E37_79B9_7F4A_7C15) };
}

/// Fills `buf` from the kernel's random source (getrandom(2)); if that fails, from a
/// per-thread xorshift seeded by the clock (ids stay unique, merely less unguessable).
pub fn fill_random(buf: &mut [u8]) {
    // SAFETY: the pointer and length describe `buf`, which getrandom only writes into.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == buf.len() as isize {
        return;
    }
    FALLBACK.with(|s| {
        let mut x = s.get() ^ crate::runtime::clock::wall_ms();
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        s.set(x);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sid_names_its_fd() {
        let sid = new_sid(0x0102_0304_0506_0708);
        assert_eq!(sid.len(), 20);
        assert_eq!(sid_fd(&sid), Some(0x0102_0304_0506_0708));
        assert_eq!(sid_fd("abc123#42"), Some(42));
        assert_eq!(sid_fd("!!"), None);
    }
}
