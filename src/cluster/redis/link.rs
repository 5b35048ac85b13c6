//! One connection to Redis as a thread keeps it: connecting with a timeout, the back-off
//! between attempts, and one log line per change of state (never silently dead, never a
//! line per failed retry).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::redis::{Client, Connection, RedisResult};

/// The first pause after a failure; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest pause between attempts: Redis back is noticed within this.
const BACKOFF_MAX: Duration = Duration::from_millis(1600);
/// Connect and command timeout: a Redis that does not answer counts as down.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection's life as its thread sees it.
pub(crate) struct Link {
    client: Client,
    /// Who holds it, for the log (`subscriber`, `publisher 1`, ...).
    role: String,
    url: String,
    up: Option<bool>,
    pause: Duration,
}

impl Link {
    pub fn new(client: Client, role: String, url: &str) -> Link {
        Link {
            client,
            role,
            url: url.to_string(),
            up: None,
            pause: BACKOFF_MIN,
        }
    }

    /// Connects (with timeouts on connect, reads and writes); logs the state change.
    pub fn connect(&mut self) -> RedisResult<Connection> {
        let r = self.client.get_connection_with_timeout(IO_TIMEOUT);
        let r = r.and_then(|c| {
            c.set_read_timeout(Some(IO_TIMEOUT))?;
            c.set_write_timeout(Some(IO_TIMEOUT))?;
            Ok(c)
        });
        match &r {
            Ok(_) => self.connected(),
            Err(e) => self.failed(e),
        }
        r
    }

    /// The connection works (again).
    pub fn connected(&mut self) {
        if self.up != Some(true) {
            log::info!("redis {}: connected to {}", self.role, self.url);
        }
        self.up = Some(true);
        self.pause = BACKOFF_MIN;
    }

    /// The connection failed or was lost.
    pub fn failed(&mut self, e: &::redis::RedisError) {
        if self.up != Some(false) {
            log::warn!(
                "redis {}: {} ({e}); reconnecting with back-off",
                self.role,
                if self.up == Some(true) {
                    "connection lost"
                } else {
                    "cannot connect"
                }
            );
        }
        self.up = Some(false);
    }

    /// Sleeps the back-off (in steps, so that `stop` is noticed), then lengthens it.
    pub fn pause(&mut self, stop: &AtomicBool) {
        let step = Duration::from_millis(50);
        let mut slept = Duration::ZERO;
        while slept < self.pause && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(step);
            slept += step;
        }
        self.pause = (self.pause * 2).min(BACKOFF_MAX);
    }
}
