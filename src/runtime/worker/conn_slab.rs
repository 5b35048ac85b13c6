//! The worker's connections by slot: a slab whose keys are the table's slot indices, with one
//! thing `slab::Slab` cannot do: take a connection at a given slot. A connection handed over
//! in a reload keeps its slot (and so its fd and `ConnId`) in the new worker.

pub(crate) struct ConnSlab<T> {
    /// `None`: a free slot. `Option<T>` is no larger than `Conn` (the socket's niche).
    entries: Vec<Option<T>>,
    /// Free slots, most recently freed last. May hold slots taken since by `insert_at`
    /// (skipped when popped).
    free: Vec<u32>,
    len: usize,
}

impl<T> ConnSlab<T> {
    pub fn with_capacity(n: usize) -> ConnSlab<T> {
        ConnSlab {
            entries: Vec::with_capacity(n),
            free: Vec::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, key: usize) -> Option<&T> {
        self.entries.get(key)?.as_ref()
    }

    pub fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        self.entries.get_mut(key)?.as_mut()
    }

    pub fn contains(&self, key: usize) -> bool {
        self.get(key).is_some()
    }

    /// The key the next `insert` will use.
    pub fn vacant_key(&mut self) -> usize {
        while let Some(&k) = self.free.last() {
            if self.entries[k as usize].is_none() {
                return k as usize;
            }
            self.free.pop(); // taken by insert_at meanwhile
        }
        self.entries.len()
    }

    pub fn insert(&mut self, conn: T) -> usize {
        let key = self.vacant_key();
        if key == self.entries.len() {
            self.entries.push(Some(conn));
        } else {
            self.free.pop();
            self.entries[key] = Some(conn);
        }
        self.len += 1;
        key
    }

    /// Puts `conn` at `key`; gives it back if that slot is taken.
    pub fn insert_at(&mut self, key: usize, conn: T) -> Result<(), T> {
        if self.contains(key) {
            return Err(conn);
        }
        while self.entries.len() <= key {
            let k = self.entries.len();
            self.entries.push(None);
            if k != key {
                self.free.push(k as u32);
            }
        }
        self.entries[key] = Some(conn);
        self.len += 1;
        Ok(())
    }

    pub fn try_remove(&mut self, key: usize) -> Option<T> {
        let conn = self.entries.get_mut(key)?.take()?;
        self.free.push(key as u32);
        self.len -= 1;
        Some(conn)
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(k, c)| Some((k, c.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::ConnSlab;

    #[test]
    fn insert_at_keeps_keys_and_insert_skips_them() {
        let mut s = ConnSlab::with_capacity(4);
        assert_eq!(s.insert_at(3, "c"), Ok(()));
        assert_eq!(s.insert_at(3, "x"), Err("x"), "a taken slot is refused");
        assert_eq!(s.insert_at(1, "b"), Ok(()));
        let mut keys = vec![s.insert("n0"), s.insert("n1"), s.insert("n2")];
        keys.sort();
        assert_eq!(keys, vec![0, 2, 4], "new entries fill the gaps, then grow");
        assert_eq!(s.len(), 5);
        assert_eq!(s.try_remove(1), Some("b"));
        assert_eq!(s.try_remove(1), None);
        assert_eq!(s.insert("again"), 1, "a freed slot is reused");
        let all: Vec<_> = s.iter().map(|(k, v)| (k, *v)).collect();
        assert_eq!(all.len(), 5);
        assert_eq!(s.get(3), Some(&"c"));
    }
}
