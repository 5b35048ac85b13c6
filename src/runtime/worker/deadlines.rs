//! Per-connection deadlines (handshake, closing handshake, linger) in one min-heap of packed
//! 8-byte entries: the monotonic deadline in the high 40 bits (35 years of milliseconds), the
//! connection's slot in the low 24. A connection keeps only its latest deadline
//! (`Conn::deadline_ms`); older entries are skipped when they come up. The heap gives memory
//! back once it has drained, so a burst of handshakes does not leave its entries resident.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

const KEY_BITS: u32 = 24;
/// Most slots a worker may have for keys to fit.
pub(crate) const MAX_SLOTS: usize = 1 << KEY_BITS;
const KEEP: usize = 1024;

#[derive(Default)]
pub(super) struct Deadlines {
    heap: BinaryHeap<Reverse<u64>>,
}

impl Deadlines {
    pub fn push(&mut self, at_ms: u64, key: usize) {
        debug_assert!(key < MAX_SLOTS);
        let at = at_ms.min((1 << (64 - KEY_BITS)) - 1);
        self.heap.push(Reverse(at << KEY_BITS | key as u64));
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(e)| e >> KEY_BITS)
    }

    /// The next entry due at `now_ms`: (deadline, key).
    pub fn pop_due(&mut self, now_ms: u64) -> Option<(u64, usize)> {
        let Some(&Reverse(e)) = self.heap.peek() else {
            self.shrink();
            return None;
        };
        let at = e >> KEY_BITS;
        if at > now_ms {
            self.shrink();
            return None;
        }
        self.heap.pop();
        Some((at, (e & ((1 << KEY_BITS) - 1)) as usize))
    }

    fn shrink(&mut self) {
        let cap = self.heap.capacity();
        if cap > KEEP && self.heap.len() < cap / 4 {
            self.heap.shrink_to((self.heap.len() * 2).max(KEEP));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_out_in_deadline_order_with_their_keys() {
        let mut d = Deadlines::default();
        d.push(500, 7);
        d.push(100, MAX_SLOTS - 1);
        d.push(300, 0);
        assert_eq!(d.next(), Some(100));
        assert_eq!(d.pop_due(99), None);
        assert_eq!(d.pop_due(1000), Some((100, MAX_SLOTS - 1)));
        assert_eq!(d.pop_due(1000), Some((300, 0)));
        assert_eq!(d.pop_due(1000), Some((500, 7)));
        assert_eq!(d.pop_due(1000), None);
    }

    #[test]
    fn a_drained_heap_gives_its_memory_back() {
        let mut d = Deadlines::default();
        for k in 0..100_000 {
            d.push(10, k);
        }
        while d.pop_due(10).is_some() {}
        assert_eq!(d.pop_due(10), None);
        assert!(d.heap.capacity() <= KEEP, "{}", d.heap.capacity());
    }
}
