//! What a node needs to join the others: the Redis URL, its own name, the key prefix shared
//! with Node's `@socket.io/redis-adapter`, and the presence and request timings.

use std::time::Duration;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The URL is not a Redis URL (`redis://HOST:PORT[/DB]`).
    #[error("invalid Redis URL {url:?}: {source}")]
    Url {
        /// The URL as given.
        url: String,
        /// What redis-rs said.
        #[source]
        source: ::redis::RedisError,
    },
    /// A node id must be 1–64 characters of `[A-Za-z0-9_.-]` (it appears in keys, channel
    /// names, request ids and connection ids).
    #[error("invalid node id {0:?}: use 1-64 characters of A-Z a-z 0-9 _ . -")]
    NodeId(String),
    /// The key prefix must be non-empty and hold no `#`, `*` or whitespace.
    #[error("invalid key prefix {0:?}")]
    Key(String),
    /// The presence TTL must be at least 1 s (heartbeats are sent every third of it).
    #[error("presence TTL must be at least 1000 ms, got {0} ms")]
    Ttl(u64),
}

/// How messages travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sink {
    /// PUBLISH to the channel.
    PubSub,
    /// XADD `{c: channel, p: payload}` to one stream.
    Stream { key: String, maxlen: usize },
}

/// The Redis side of a node.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://HOST:PORT[/DB]`.
    pub url: String,
    /// This node's name: in its presence key, its request ids and the ids of its
    /// connections ([`NodeFd`](super::NodeFd)). Random (12 hex digits) unless set.
    pub node_id: String,
    /// The prefix of channel names and keys, `socket.io` as in Node's adapter (its `key`
    /// option): nodes that share rooms must use the same.
    pub key: String,
    /// How long a node's presence key lives without a heartbeat (default 10 s; heartbeats
    /// come every third of it, at least once a second); a node that crashed leaves nothing
    /// behind after it.
    pub presence_ttl_ms: u64,
    /// How long a node waits for its own workers when it answers another node's request
    /// (default 1 s; the asking side has its own timeout).
    pub relay_timeout_ms: u64,
    /// Messages a worker may queue for Redis while the connection is down (default 10 000);
    /// beyond that they are dropped, with a log line per episode.
    pub publish_queue: usize,
    /// Streams mode: every message goes through one Redis stream (`<key>-stream`, XADD /
    /// XREAD) instead of pub/sub, and a node's reader goes on from the last entry it read
    /// after a lost connection, so what was published while it was away is not lost. Off
    /// by default; not understood by Node's adapters.
    pub streams: bool,
    /// The stream's length bound in Streams mode (`XADD … MAXLEN ~`, default 100 000).
    pub stream_maxlen: usize,
}

impl RedisConfig {
    /// A configuration for `url` with a random node id and the defaults.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        let mut raw = [0u8; 6];
        crate::engineio::server::session::fill_random(&mut raw);
        RedisConfig {
            url: url.into(),
            node_id: raw.iter().map(|b| format!("{b:02x}")).collect(),
            key: "socket.io".into(),
            presence_ttl_ms: 10_000,
            relay_timeout_ms: 1_000,
            publish_queue: 10_000,
            streams: false,
            stream_maxlen: 100_000,
        }
    }

    /// Sets the node id.
    pub fn node_id(mut self, id: impl Into<String>) -> RedisConfig {
        self.node_id = id.into();
        self
    }

    /// Streams mode on or off (see [`streams`](RedisConfig::streams)).
    pub fn streams(mut self, on: bool) -> RedisConfig {
        self.streams = on;
        self
    }

    /// Sets the presence TTL.
    pub fn presence_ttl(mut self, ms: u64) -> RedisConfig {
        self.presence_ttl_ms = ms;
        self
    }

    /// Checks every field; opens no connection.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ::redis::Client::open(self.url.as_str()).map_err(|source| ConfigError::Url {
            url: self.url.clone(),
            source,
        })?;
        let id_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        let id = &self.node_id;
        if id.is_empty() || id.len() > 64 || !id.chars().all(id_ok) {
            return Err(ConfigError::NodeId(id.clone()));
        }
        let key_bad = |c: char| c == '#' || c == '*' || c.is_whitespace();
        if self.key.is_empty() || self.key.chars().any(key_bad) {
            return Err(ConfigError::Key(self.key.clone()));
        }
        if self.presence_ttl_ms < 1000 {
            return Err(ConfigError::Ttl(self.presence_ttl_ms));
        }
        Ok(())
    }

    /// How often a heartbeat refreshes the presence key and the live-node count: a third
    /// of the TTL, at least once a second (a node that joins is counted by the others
    /// within a second).
    pub(crate) fn heartbeat(&self) -> Duration {
        Duration::from_millis((self.presence_ttl_ms / 3).min(1000))
    }

    /// Where PUBLISHes go: channels, or the stream.
    pub(crate) fn sink(&self) -> Sink {
        match self.streams {
            true => Sink::Stream {
                key: self.stream_key(),
                maxlen: self.stream_maxlen,
            },
            false => Sink::PubSub,
        }
    }

    /// The stream of Streams mode.
    pub(crate) fn stream_key(&self) -> String {
        format!("{}-stream", self.key)
    }

    /// The presence key of node `id`.
    pub(crate) fn presence_key(&self, id: &str) -> String {
        format!("{}-node#{id}", self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused() {
        let ok = RedisConfig::new("redis://127.0.0.1:6379").node_id("a-1.b_2");
        assert!(ok.validate().is_ok());
        assert!(matches!(
            RedisConfig::new("http://x").validate(),
            Err(ConfigError::Url { .. })
        ));
        for id in ["", "a#b", "a b", "a:b"] {
            let c = ok.clone().node_id(id);
            assert!(
                matches!(c.validate(), Err(ConfigError::NodeId(_))),
                "{id:?}"
            );
        }
        assert!(ok.clone().presence_ttl(999).validate().is_err());
        let c = RedisConfig {
            key: "a#".into(),
            ..ok
        };
        assert!(matches!(c.validate(), Err(ConfigError::Key(_))));
    }
}
