//! A FIFO of deadlines that all share one delay, so they come out in time order without a
//! heap: what heartbeats and connect timeouts need (one timer per worker, not one per
//! session).

use std::collections::VecDeque;

/// One entry: when, for which session key, and the session's generation (so an entry of a
/// closed session, or of one whose state moved on, is recognised as stale and skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Monotonic milliseconds.
    pub at: u64,
    /// The session (or socket) key.
    pub key: u32,
    /// The key's generation when the entry was made.
    pub gen: u32,
}

/// Deadlines `now + delay`, in the order they were pushed (which is their time order, since
/// `now` never decreases and the delay is fixed).
#[derive(Debug)]
pub struct DeadlineQueue {
    delay: u64,
    queue: VecDeque<Due>,
}

impl DeadlineQueue {
    /// A queue whose entries fall due `delay` ms after they are pushed.
    pub fn new(delay: u64) -> Self {
        DeadlineQueue {
            delay,
            queue: VecDeque::new(),
        }
    }

    /// Adds an entry due at `now + delay`; returns its deadline.
    pub fn push(&mut self, now: u64, key: u32, gen: u32) -> u64 {
        let at = now.saturating_add(self.delay);
        // `now` is monotonic, but clamp anyway so the order invariant can never break.
        let at = self.queue.back().map_or(at, |b| at.max(b.at));
        self.queue.push_back(Due { at, key, gen });
        at
    }

    /// The earliest deadline.
    pub fn next_at(&self) -> Option<u64> {
        self.queue.front().map(|d| d.at)
    }

    /// Removes and returns the next entry due at or before `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<Due> {
        if self.queue.front()?.at <= now {
            self.queue.pop_front()
        } else {
            None
        }
    }

    /// Entries waiting (stale ones included).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_out_in_order_when_due() {
        let mut q = DeadlineQueue::new(100);
        assert_eq!(q.push(0, 1, 0), 100);
        assert_eq!(q.push(10, 2, 0), 110);
        assert_eq!(q.next_at(), Some(100));
        assert_eq!(q.pop_due(99), None);
        assert_eq!(q.pop_due(105).map(|d| d.key), Some(1));
        assert_eq!(q.pop_due(105), None);
        assert_eq!(q.pop_due(110).map(|d| d.key), Some(2));
        assert!(q.is_empty());
    }

    #[test]
    fn a_clock_going_back_cannot_break_the_order() {
        let mut q = DeadlineQueue::new(10);
        q.push(50, 1, 0);
        assert_eq!(q.push(20, 2, 0), 60);
        assert_eq!(q.len(), 2);
    }
}
