//! The node's one subscription: a thread (started by worker 0) that holds a SUBSCRIBE
//! connection, hands every message to a callback, and after a lost connection reconnects
//! with back-off and subscribes again to everything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::link::{Link, IO_TIMEOUT};

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
    /// Patterns (PSUBSCRIBE).
    pub patterns: Vec<String>,
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

/// Starts the subscriber thread; it runs until `stop` is set (or the process ends).
/// `on_message` runs on that thread for every message.
pub(crate) fn spawn(
    mut link: Link,
    topics: Topics,
    stop: Arc<AtomicBool>,
    mut on_message: impl FnMut(Received<'_>) + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("redis-sub".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = session(&mut link, &topics, &stop, &mut on_message) {
                    link.failed(&e);
                    link.pause(&stop);
                }
            }
        })
}

/// One connection's life: subscribe, then read until it fails or `stop` is set.
fn session(
    link: &mut Link,
    topics: &Topics,
    stop: &AtomicBool,
    on_message: &mut impl FnMut(Received<'_>),
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
    let mut heard = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match pubsub.get_message() {
            Ok(msg) => {
                heard = Instant::now();
                on_message(Received {
                    channel: msg.get_channel_name(),
                    pattern: msg.from_pattern(),
                    payload: msg.get_payload_bytes(),
                })
            }
            Err(e) if e.is_timeout() => {
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
