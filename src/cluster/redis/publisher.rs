//! A worker's way out to Redis: a thread with its own connection that publishes what the
//! worker queues (the reactor never waits on Redis, up or down) and keeps the node's
//! presence — worker 0 refreshes the node's key, every worker refreshes its count of live
//! nodes — once per heartbeat.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use super::config::Sink;
use super::link::Link;
use super::presence::Presence;

enum Job {
    Publish { channel: String, payload: Vec<u8> },
    Stop,
}

/// The queue to a worker's publisher thread (`Send + Sync + Clone`).
#[derive(Clone)]
pub(crate) struct Publisher {
    tx: Sender<Job>,
    dropped: Arc<AtomicUsize>,
}

impl Publisher {
    /// Starts the thread for worker `worker` of the node.
    pub fn spawn(
        link: Link,
        presence: Arc<Presence>,
        queue: usize,
        sink: Sink,
    ) -> std::io::Result<(Publisher, JoinHandle<()>)> {
        let (tx, rx) = crossbeam_channel::bounded(queue.max(1));
        let dropped = Arc::new(AtomicUsize::new(0));
        let p = Publisher {
            tx,
            dropped: dropped.clone(),
        };
        let name = format!("redis-pub-{}", presence.worker());
        let h = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(link, rx, &presence, &dropped, &sink))?;
        Ok((p, h))
    }

    /// Queues a PUBLISH; `false` (counted, logged once per episode) when the queue is full.
    pub fn publish(&self, channel: String, payload: Vec<u8>) -> bool {
        match self.tx.try_send(Job::Publish { channel, payload }) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    log::warn!("redis publisher: queue full (Redis down or slow); dropping");
                }
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Asks the thread to end (worker 0 removes the node's presence key first).
    pub fn stop(&self) {
        let _ = self.tx.try_send(Job::Stop);
    }
}

fn run(mut link: Link, rx: Receiver<Job>, presence: &Presence, dropped: &AtomicUsize, sink: &Sink) {
    let never = AtomicBool::new(false);
    let mut pending: Option<(String, Vec<u8>)> = None;
    loop {
        let mut conn = match link.connect() {
            Ok(c) => c,
            Err(_) => {
                link.pause(&never);
                continue;
            }
        };
        match serve(&mut conn, &rx, presence, dropped, &mut pending, sink) {
            Ok(()) => return,
            Err(e) => {
                link.failed(&e);
                link.pause(&never);
            }
        }
    }
}

/// Publishes until the connection fails (`Err`, with the message that failed kept in
/// `pending` for the next connection) or the worker stops (`Ok`).
fn serve(
    conn: &mut ::redis::Connection,
    rx: &Receiver<Job>,
    presence: &Presence,
    dropped: &AtomicUsize,
    pending: &mut Option<(String, Vec<u8>)>,
    sink: &Sink,
) -> ::redis::RedisResult<()> {
    presence.beat(conn)?;
    let mut next_beat = Instant::now() + presence.interval();
    if let Some((channel, payload)) = pending.take() {
        publish(conn, sink, &channel, &payload, pending)?;
    }
    loop {
        if Instant::now() >= next_beat {
            presence.beat(conn)?;
            next_beat = Instant::now() + presence.interval();
        }
        let wait = next_beat.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Job::Publish { channel, payload }) => {
                publish(conn, sink, &channel, &payload, pending)?;
                let n = dropped.swap(0, Ordering::Relaxed);
                if n > 0 {
                    log::warn!("redis publisher: {n} message(s) dropped while the queue was full");
                }
            }
            Ok(Job::Stop) | Err(RecvTimeoutError::Disconnected) => {
                presence.leave(conn);
                return Ok(());
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

fn publish(
    conn: &mut ::redis::Connection,
    sink: &Sink,
    channel: &str,
    payload: &[u8],
    pending: &mut Option<(String, Vec<u8>)>,
) -> ::redis::RedisResult<()> {
    let r: ::redis::RedisResult<::redis::Value> = match sink {
        Sink::PubSub => ::redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query(conn),
        Sink::Stream { key, maxlen } => ::redis::cmd("XADD")
            .arg(key)
            .arg("MAXLEN")
            .arg("~")
            .arg(*maxlen)
            .arg("*")
            .arg("c")
            .arg(channel)
            .arg("p")
            .arg(payload)
            .query(conn),
    };
    if let Err(e) = r {
        *pending = Some((channel.to_string(), payload.to_vec()));
        return Err(e);
    }
    Ok(())
}
