//! The node's one subscription: a thread (started by worker 0) that holds a SUBSCRIBE
//! connection, hands every message to a callback, and after a lost connection reconnects
//! with back-off and subscribes again to everything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::Sink;
use super::link::{Link, IO_TIMEOUT};
use super::stream::StreamReader;

/// How often a blocked read wakes to look at the stop flag.
const POLL: Duration = Duration::from_millis(250);
/// After this long without a message the connection is checked with a PING (a Redis that
/// went away without closing the TCP connection is noticed).
const QUIET: Duration = Duration::from_secs(5);

/// What to subscribe to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Topics {
    /// Plain channels (SUBSCRIBE).
    pub channels: Vec<String>,
    /// Patterns (PSUBSCRIBE), each `prefix*`.
    pub patterns: Vec<String>,
}

impl Topics {
    /// How a message on `channel` would arrive: `Some(true)` through a pattern,
    /// `Some(false)` through a plain subscription, `None` not at all (as Redis would
    /// deliver it once per subscription, a pattern is preferred).
    pub fn matches(&self, channel: &str) -> Option<bool> {
        let by_pattern = self
            .patterns
            .iter()
            .any(|p| channel.starts_with(p.trim_end_matches('*')));
        if by_pattern {
            return Some(true);
        }
        self.channels.iter().any(|c| c == channel).then_some(false)
    }
}

/// One message as received.
pub(crate) struct Received<'a> {
    /// The channel it was published on.
    pub channel: &'a str,
    /// Whether it came through a pattern subscription.
    pub pattern: bool,
    /// The payload.
    pub payload: &'a [u8],
}

/// What the subscriber thread tells: each (re)subscription, each message, and each quiet
/// poll interval.
pub(crate) trait Listener: Send + 'static {
    /// Subscribed (again) to every topic.
    fn subscribed(&mut self);
    /// A message.
    fn message(&mut self, r: Received<'_>);
    /// Nothing arrived for a poll interval.
    fn tick(&mut self) {}
}

/// How long [`spawn`] waits for the first subscription (a worker 0 that replaces another
/// in a reload is subscribed before it counts as ready, so nothing falls between the two;
/// a Redis that is down delays a worker's start by this much at most).
const FIRST_SUBSCRIPTION: Duration = Duration::from_secs(1);

/// Starts the subscriber thread and waits (up to [`FIRST_SUBSCRIPTION`]) until it has
/// subscribed; it runs until `stop` is set (or the process ends). `listener` runs on that
/// thread.
pub(crate) fn spawn(
    mut link: Link,
    topics: Topics,
    sink: Sink,
    stop: Arc<AtomicBool>,
    mut on_message: impl Listener,
) -> std::io::Result<JoinHandle<()>> {
    let (ready, subscribed) = crossbeam_channel::bounded(1);
    let h = std::thread::Builder::new()
        .name("redis-sub".into())
        .spawn(move || {
            let mut reader = match sink {
                Sink::Stream { key, .. } => Some(StreamReader::new(key)),
                Sink::PubSub => None,
            };
            while !stop.load(Ordering::Relaxed) {
                let r = match reader.as_mut() {
                    Some(s) => s.session(&mut link, &topics, &stop, &ready, &mut on_message),
                    None => session(&mut link, &topics, &stop, &ready, &mut on_message),
                };
                if let Err(e) = r {
                    link.failed(&e);
                    link.pause(&stop);
                }
            }
        })?;
    if subscribed.recv_timeout(FIRST_SUBSCRIPTION).is_err() {
        log::warn!("redis subscriber: not subscribed yet; starting anyway");
    }
    Ok(h)
}

/// One connection's life: subscribe, then read until it fails or `stop` is set.
fn session(
    link: &mut Link,
    topics: &Topics,
    stop: &AtomicBool,
    ready: &crossbeam_channel::Sender<()>,
    listener: &mut impl Listener,
) -> ::redis::RedisResult<()> {
    let mut conn = link.connect()?;
    let mut pubsub = conn.as_pubsub();
    for c in &topics.channels {
        pubsub.subscribe(c)?;
    }
    for p in &topics.patterns {
        pubsub.psubscribe(p)?;
    }
    log::info!(
        "redis subscriber: subscribed to {} channel(s) and {} pattern(s)",
        topics.channels.len(),
        topics.patterns.len()
    );
    pubsub.set_read_timeout(Some(POLL))?;
    listener.subscribed();
    let _ = ready.try_send(());
    let mut heard = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match pubsub.get_message() {
            Ok(msg) => {
                heard = Instant::now();
                listener.message(Received {
                    channel: msg.get_channel_name(),
                    pattern: msg.from_pattern(),
                    payload: msg.get_payload_bytes(),
                })
            }
            Err(e) if e.is_timeout() => {
                listener.tick();
                if heard.elapsed() >= QUIET {
                    pubsub.set_read_timeout(Some(IO_TIMEOUT))?;
                    pubsub.ping::<::redis::Value>()?;
                    pubsub.set_read_timeout(Some(POLL))?;
                    heard = Instant::now();
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
