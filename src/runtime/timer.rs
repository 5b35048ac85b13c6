//! Per-worker timers (`tick`, `after`, `clear_timer`), driven by the reactor's poll timeout.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Identifies a timer (Swoole's timer id).
pub type TimerId = u64;

struct Entry<F> {
    interval_ms: Option<u64>,
    cb: Option<F>,
}

/// Timers of one worker: a min-heap of deadlines (monotonic milliseconds) plus the callbacks
/// (of type `F`) by id. A callback is taken out while it runs, so it may add or clear timers.
pub(crate) struct Timers<F> {
    next_id: TimerId,
    heap: BinaryHeap<Reverse<(u64, TimerId)>>,
    entries: HashMap<TimerId, Entry<F>>,
}

impl<F> Timers<F> {
    pub fn new() -> Self {
        Timers {
            next_id: 1,
            heap: BinaryHeap::new(),
            entries: HashMap::new(),
        }
    }

    pub fn add(&mut self, now_ms: u64, delay_ms: u64, repeat: bool, cb: F) -> TimerId {
        let id = self.next_id;
        self.next_id += 1;
        let delay = delay_ms.max(1);
        self.entries.insert(
            id,
            Entry {
                interval_ms: repeat.then_some(delay),
                cb: Some(cb),
            },
        );
        self.heap.push(Reverse((now_ms + delay, id)));
        id
    }

    /// Removes a timer; returns its callback (if it is not running) for the caller to drop
    /// outside any borrow of the timer set (the callback's captures may use timers when they
    /// drop). `None` if there was no such timer.
    pub fn clear(&mut self, id: TimerId) -> Option<Option<F>> {
        self.entries.remove(&id).map(|e| e.cb)
    }

    pub fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((d, _))| *d)
    }

    /// Takes out the callback of the next due timer, if any.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<(TimerId, F)> {
        while let Some(Reverse((d, id))) = self.heap.peek().copied() {
            if d > now_ms {
                return None;
            }
            self.heap.pop();
            if let Some(e) = self.entries.get_mut(&id) {
                match e.cb.take() {
                    Some(cb) => return Some((id, cb)),
                    None => continue,
                }
            }
        }
        None
    }

    /// Gives back a callback after it ran: a tick is rescheduled; a one-shot, or a timer
    /// cleared while it ran, is handed back for the caller to drop outside the borrow.
    pub fn restore(&mut self, now_ms: u64, id: TimerId, cb: F) -> Option<F> {
        let Some(e) = self.entries.get_mut(&id) else {
            return Some(cb); // cleared while running
        };
        match e.interval_ms {
            Some(iv) => {
                e.cb = Some(cb);
                self.heap.push(Reverse((now_ms + iv, id)));
                None
            }
            None => {
                self.entries.remove(&id);
                Some(cb)
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn after_fires_once_and_tick_repeats_until_cleared() {
        type Cb = Box<dyn FnMut(&Cell<u32>, TimerId)>;
        let mut t: Timers<Cb> = Timers::new();
        let counter = Cell::new(0);
        let once = t.add(
            0,
            10,
            false,
            Box::new(|c: &Cell<u32>, _| c.set(c.get() + 100)),
        );
        let tick = t.add(0, 5, true, Box::new(|c: &Cell<u32>, _| c.set(c.get() + 1)));
        assert_eq!(t.next_deadline(), Some(5));
        let mut now = 0;
        while now <= 20 {
            while let Some((id, mut cb)) = t.pop_due(now) {
                cb(&counter, id);
                drop(t.restore(now, id, cb));
            }
            now += 1;
        }
        assert_eq!(counter.get(), 100 + 4);
        assert!(t.clear(once).is_none(), "a fired one-shot is gone");
        assert!(t.clear(tick).is_some());
        assert_eq!(t.len(), 0);
        assert!(t.pop_due(1000).is_none());
    }
}
