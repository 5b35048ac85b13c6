//! Typed per-connection state for handlers, indexed by the connection's slot.

use crate::runtime::handler::ConnId;

/// A handler's typed state for the connections of its worker: one entry per slot, checked
/// against the fd, so a value of a closed connection is never seen by the next connection of
/// the same slot. Reads and writes are a bounds check and a compare — no hashing, no cloning,
/// no `dyn Any`. Space grows in chunks as slots are used (the slot numbers of a worker are
/// dense), so idle workers cost nothing.
///
/// ```
/// use prefork_ws::runtime::{ConnId, ConnMap};
/// let mut m: ConnMap<String> = ConnMap::new();
/// let a = ConnId { fd: 1, slot: 0 };
/// m.insert(a, "alice".into());
/// assert_eq!(m.get(a).map(String::as_str), Some("alice"));
/// // The same slot, a later connection (new fd): the old value is not visible.
/// assert!(m.get(ConnId { fd: 9, slot: 0 }).is_none());
/// assert_eq!(m.remove(a).as_deref(), Some("alice"));
/// ```
pub struct ConnMap<T> {
    entries: Vec<Option<(u64, T)>>,
    len: usize,
}

const CHUNK: usize = 1024;

impl<T> Default for ConnMap<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> ConnMap<T> {
    /// An empty map.
    pub fn new() -> Self {
        ConnMap {
            entries: Vec::new(),
            len: 0,
        }
    }

    /// Sets the value of `conn`, returning the previous one of the same connection.
    pub fn insert(&mut self, conn: ConnId, value: T) -> Option<T> {
        let i = conn.slot as usize;
        if i >= self.entries.len() {
            let want = (i / CHUNK + 1) * CHUNK;
            self.entries.reserve_exact(want - self.entries.len());
            self.entries.resize_with(want, || None);
        }
        let old = self.entries[i].replace((conn.fd, value));
        match old {
            Some((fd, v)) if fd == conn.fd => Some(v),
            Some(_) => None, // a stale value of an earlier connection is dropped
            None => {
                self.len += 1;
                None
            }
        }
    }

    /// The value of `conn`.
    pub fn get(&self, conn: ConnId) -> Option<&T> {
        match self.entries.get(conn.slot as usize)? {
            Some((fd, v)) if *fd == conn.fd => Some(v),
            _ => None,
        }
    }

    /// The value of `conn`, mutably.
    pub fn get_mut(&mut self, conn: ConnId) -> Option<&mut T> {
        match self.entries.get_mut(conn.slot as usize)? {
            Some((fd, v)) if *fd == conn.fd => Some(v),
            _ => None,
        }
    }

    /// The value of `conn`, inserting `f()` first if there is none.
    pub fn get_or_insert_with(&mut self, conn: ConnId, f: impl FnOnce() -> T) -> &mut T {
        if self.get(conn).is_none() {
            self.insert(conn, f());
        }
        match self.get_mut(conn) {
            Some(v) => v,
            None => unreachable!("inserted just above"),
        }
    }

    /// Removes and returns the value of `conn`.
    pub fn remove(&mut self, conn: ConnId) -> Option<T> {
        let e = self.entries.get_mut(conn.slot as usize)?;
        if e.as_ref().is_some_and(|(fd, _)| *fd == conn.fd) {
            self.len -= 1;
            e.take().map(|(_, v)| v)
        } else {
            None
        }
    }

    /// Number of connections with a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no connection has a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_in_chunks_and_counts() {
        let mut m = ConnMap::new();
        for s in [0u32, 5, 3000] {
            assert!(m
                .insert(
                    ConnId {
                        fd: s as u64 + 1,
                        slot: s
                    },
                    s
                )
                .is_none());
        }
        assert_eq!(m.len(), 3);
        assert_eq!(m.entries.len(), 3 * CHUNK);
        assert_eq!(m.insert(ConnId { fd: 6, slot: 5 }, 50), Some(5));
        // A new connection in slot 5 replaces the stale value without counting it twice.
        assert_eq!(m.insert(ConnId { fd: 77, slot: 5 }, 7), None);
        assert_eq!(m.len(), 3);
        assert!(m.remove(ConnId { fd: 6, slot: 5 }).is_none());
        assert_eq!(m.remove(ConnId { fd: 77, slot: 5 }), Some(7));
        assert_eq!(m.len(), 2);
        assert!(m
            .get(ConnId {
                fd: 1,
                slot: 99_999
            })
            .is_none());
    }
}
