//! Exactly one worker 0 applies what the node receives, also while a rolling reload runs
//! the old and the new worker 0 side by side.
//!
//! After each subscription the subscriber publishes a marker (`<started>:<pid>:<n>`, the
//! start time of its process in ms, its pid, the subscription's number) on the node's own
//! channel `<key>-sub#<node_id>#`, to which it is subscribed as well. Redis delivers to every
//! subscriber in publication order, so the marker cuts the stream in the same place for
//! both: the old worker 0 applies what came before the new one's marker and nothing after
//! it (it is superseded); the new one applies only what comes after its own marker. Nothing
//! is applied twice and nothing falls between them. Only a marker of a process that started
//! later supersedes (the old worker 0 resubscribing after a blip cannot silence the new
//! one), and a superseded subscriber publishes no marker. A marker that does not come back
//! within [`MARKER_WAIT`] (Redis went away again) is not waited for longer.

use std::time::{Duration, Instant};

use super::publisher::Publisher;
use super::subscriber::Received;

/// How long a new subscription waits for its own marker before applying anyway.
const MARKER_WAIT: Duration = Duration::from_secs(1);

/// One subscriber's place in the handover.
pub(crate) struct Handover {
    channel: String,
    publisher: Publisher,
    /// `(started ms, pid)`: the later one wins.
    me: (u64, u32),
    sessions: u64,
    marker: String,
    applying: bool,
    superseded: bool,
    since: Instant,
}

impl Handover {
    pub fn new(key: &str, node_id: &str, publisher: Publisher) -> Handover {
        Handover {
            channel: channel(key, node_id),
            publisher,
            me: (started_ms(), std::process::id()),
            sessions: 0,
            marker: String::new(),
            applying: false,
            superseded: false,
            since: Instant::now(),
        }
    }

    /// The node's handover channel (to subscribe to).
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// A new subscription: publish its marker, apply nothing until it comes back.
    pub fn subscribed(&mut self) {
        if self.superseded {
            return;
        }
        self.sessions += 1;
        self.marker = format!("{}:{}:{}", self.me.0, self.me.1, self.sessions);
        self.applying = false;
        self.since = Instant::now();
        self.publisher
            .publish(self.channel.clone(), self.marker.clone().into_bytes());
    }

    /// Whether `r` is to be applied (markers never are).
    pub fn admit(&mut self, r: &Received<'_>) -> bool {
        if r.channel != self.channel {
            self.tick();
            return self.applying && !self.superseded;
        }
        let marker = String::from_utf8_lossy(r.payload);
        if *marker == self.marker {
            self.applying = true;
        } else if parse(&marker).is_some_and(|other| other > self.me) {
            if !self.superseded {
                log::info!("redis subscriber: a newer worker 0 ({marker}) took over");
            }
            self.superseded = true;
        }
        false
    }

    /// Time passes: stop waiting for a marker that does not come.
    pub fn tick(&mut self) {
        if !self.applying && self.since.elapsed() >= MARKER_WAIT {
            log::warn!("redis subscriber: handover marker not seen; applying");
            self.applying = true;
        }
    }
}

/// `(started, pid)` of a marker.
fn parse(marker: &str) -> Option<(u64, u32)> {
    let mut parts = marker.split(':');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// This process's start, in ms since the epoch (when the handover was made).
fn started_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `<key>-sub#<node_id>#`.
pub(crate) fn channel(key: &str, node_id: &str) -> String {
    format!("{key}-sub#{node_id}#")
}
