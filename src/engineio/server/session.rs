//! The sessions of one worker: who they are, where their heartbeat stands, and the ids that
//! name them.

use std::cell::Cell;

use slab::Slab;

use super::config::Endpoint;
use super::handler::DisconnectReason;
use crate::engineio::Version;
use crate::runtime::{ConnId, ConnMap};

/// A session of this worker: an index that stays valid while the session lives (it may
/// outlive one connection once long-polling exists).
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

/// One session.
#[derive(Debug)]
pub(crate) struct Session {
    pub sid: Box<str>,
    pub conn: ConnId,
    pub version: Version,
    pub endpoint: Endpoint,
    pub gen: u32,
    pub beat: Beat,
    pub beat_at: u64,
    /// Set when the server decided to end the session, so `on_close` reports that reason.
    pub closing: Option<DisconnectReason>,
}

/// The sessions of one worker, with a generation per key (entries in the deadline queues
/// carry it, so an entry of a closed session is never applied to the key's next session).
#[derive(Default)]
pub(crate) struct Sessions {
    pub slab: Slab<Session>,
    gens: Vec<u32>,
    pub by_conn: ConnMap<u32>,
}

impl Sessions {
    pub fn insert(&mut self, make: impl FnOnce(u32) -> Session) -> SessionKey {
        let entry = self.slab.vacant_entry();
        let key = entry.key();
        if key >= self.gens.len() {
            self.gens.resize(key + 1, 0);
        }
        let session = make(self.gens[key]);
        let conn = session.conn;
        entry.insert(session);
        let key = key as u32;
        self.by_conn.insert(conn, key);
        SessionKey(key)
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

    pub fn remove(&mut self, key: SessionKey) -> Option<Session> {
        let s = self.slab.try_remove(key.0 as usize)?;
        self.by_conn.remove(s.conn);
        let g = &mut self.gens[key.0 as usize];
        *g = g.wrapping_add(1);
        Some(s)
    }
}

/// A fresh session id: the fd (so the id names the connection's worker, as an fd does) and
/// 11 random bytes, base64url-encoded to 20 characters like Node's `base64id`.
pub(crate) fn new_sid(fd: u64) -> Box<str> {
    use base64::Engine as _;
    let mut raw = [0u8; 15];
    raw[..4].copy_from_slice(&(fd as u32).to_be_bytes());
    fill_random(&mut raw[4..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(raw)
        .into_boxed_str()
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
