//! Waiting for answers: a client's acknowledgement of one emit, the acknowledgements of a
//! broadcast from every recipient on every worker, and node-wide queries — each finished
//! when every answer is in, or by its timeout with what arrived.

use std::collections::HashMap;

use super::args::Args;
use super::cluster::SocketInfo;
use super::io::Io;
use crate::runtime::timer::TimerId;

/// Why an acknowledgement did not come.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// Not within the timeout.
    #[error("operation has timed out")]
    Timeout,
    /// The socket disconnected first.
    #[error("socket has been disconnected")]
    Disconnected,
}

/// A broadcast's or a node-wide query's answers when not all came within the timeout: the
/// ones that did, and how many parties (workers or nodes) did not answer at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial<T> {
    /// What arrived.
    pub received: Vec<T>,
    /// Parties that did not report.
    pub missing_parties: usize,
    /// Answers still expected from the parties that did report.
    pub missing_answers: usize,
    /// The other nodes (by id) that did not answer in time, where a cluster adapter knows
    /// them (Rust nodes keep presence keys; a Node.js node that did not answer counts in
    /// `missing_parties` only). Empty within one node.
    pub missing_nodes: Vec<String>,
}

/// The result of a broadcast with an acknowledgement: one `Args` per client.
pub type BroadcastAcks = Result<Vec<Args>, Partial<Args>>;

/// The result of `fetch_sockets`.
pub type FetchResult = Result<Vec<SocketInfo>, Partial<SocketInfo>>;

/// An answer a collector gathers.
pub(crate) enum Gathered<T> {
    /// A party reports how many answers it will send.
    Count(u32),
    /// Another node reports how many answers it will send.
    NodeCount(u32, String),
    /// One answer (a party's whole list counts as its `Count` of 1).
    Item(T),
}

/// What gets a collector's result.
pub(crate) type Done<T> = Box<dyn FnOnce(&Io<'_>, Result<Vec<T>, Partial<T>>)>;

/// What a relay (an operation run on behalf of another node) hears as answers come in.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum Step<'a, T> {
    /// Every party has reported: this many answers are due in all.
    Counted(usize),
    /// One answer.
    Item(&'a T),
}

/// Hears a collector's progress. It runs while the collectors are borrowed: it must not
/// touch them (a cluster adapter only publishes from it).
pub(crate) type Relay<T> = Box<dyn FnMut(Step<'_, T>)>;

/// Answers of one request.
pub(crate) struct Collector<T> {
    parties_left: usize,
    /// Answers announced minus answers received: an answer may come before its party's
    /// count (a relaying node streams each one as it comes), so this may dip below zero.
    answers_left: i64,
    received: Vec<T>,
    done: Option<Done<T>>,
    pub timer: Option<TimerId>,
    /// Told of every count and answer as it arrives (see [`Step`]).
    pub relay: Option<Relay<T>>,
    /// The other nodes that have answered.
    answered: Vec<String>,
    /// The other nodes that had not answered at the timeout.
    missing_nodes: Vec<String>,
}

impl<T> Collector<T> {
    pub fn new(parties: usize, local_answers: usize, done: Done<T>) -> Self {
        Collector {
            parties_left: parties,
            answers_left: local_answers as i64,
            received: Vec::new(),
            done: Some(done),
            timer: None,
            relay: None,
            answered: Vec::new(),
            missing_nodes: Vec::new(),
        }
    }

    /// The timeout passed: of `others` (the live nodes besides this one), those that have
    /// not answered are missing.
    pub fn timed_out(&mut self, others: Vec<String>) {
        self.missing_nodes = others
            .into_iter()
            .filter(|n| !self.answered.contains(n))
            .collect();
    }

    /// Answers due in all (those received and those still expected).
    pub fn expected(&self) -> usize {
        (self.received.len() as i64 + self.answers_left).max(0) as usize
    }

    pub fn add(&mut self, g: Gathered<T>) {
        match g {
            Gathered::NodeCount(n, node) => {
                self.answered.push(node);
                self.add(Gathered::Count(n));
            }
            Gathered::Count(n) => {
                let was = self.parties_left;
                self.parties_left = self.parties_left.saturating_sub(1);
                self.answers_left += i64::from(n);
                if was == 1 {
                    let total = self.expected();
                    if let Some(r) = self.relay.as_mut() {
                        r(Step::Counted(total));
                    }
                }
            }
            Gathered::Item(t) => {
                if let Some(r) = self.relay.as_mut() {
                    r(Step::Item(&t));
                }
                self.received.push(t);
                self.answers_left -= 1;
            }
        }
    }

    pub fn complete(&self) -> bool {
        self.parties_left == 0 && self.answers_left == 0
    }

    /// The callback with its result (complete or partial).
    pub fn finish(mut self) -> Option<impl FnOnce(&Io<'_>)> {
        let done = self.done.take()?;
        let result = if self.complete() {
            Ok(std::mem::take(&mut self.received))
        } else {
            Err(Partial {
                received: std::mem::take(&mut self.received),
                missing_parties: self.parties_left,
                missing_answers: self.answers_left.max(0) as usize,
                missing_nodes: std::mem::take(&mut self.missing_nodes),
            })
        };
        Some(move |io: &Io<'_>| done(io, result))
    }
}

/// The collectors of one worker, by request id.
#[derive(Default)]
pub(crate) struct Collectors {
    pub acks: HashMap<u64, Collector<Args>>,
    pub fetches: HashMap<u64, Collector<SocketInfo>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop<T>() -> Done<T> {
        Box::new(|_, _| {})
    }

    #[test]
    fn a_collector_completes_when_every_party_and_answer_is_in() {
        let mut c: Collector<u32> = Collector::new(2, 1, noop());
        c.add(Gathered::Item(1));
        c.add(Gathered::Count(1));
        assert!(!c.complete());
        c.add(Gathered::Item(2));
        c.add(Gathered::Count(0));
        assert!(c.complete());
        assert_eq!(c.received, vec![1, 2]);
    }

    #[test]
    fn a_timed_out_collector_reports_what_is_missing() {
        let mut c: Collector<u32> = Collector::new(2, 0, noop());
        c.add(Gathered::Count(3));
        c.add(Gathered::Item(7));
        assert!(!c.complete());
        assert_eq!((c.parties_left, c.answers_left), (1, 2));
    }

    #[test]
    fn an_answer_may_come_before_its_partys_count() {
        let mut c: Collector<u32> = Collector::new(1, 0, noop());
        c.add(Gathered::Item(1));
        assert!(!c.complete());
        c.add(Gathered::Count(2));
        assert!(!c.complete());
        c.add(Gathered::Item(2));
        assert!(c.complete());
    }
}
