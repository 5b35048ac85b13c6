//! Node presence: a key per node (`<key>-node#<id>`) with a TTL that worker 0 refreshes
//! every third of it, so a node that crashed leaves no key once the TTL has passed; and the
//! number of live nodes, which every worker refreshes on the same beat (never per
//! broadcast) and which requests use as the number of nodes to wait for.
//!
//! Node.js nodes keep no presence key; they are counted through the request channel's
//! subscriber count (`PUBSUB NUMSUB`, Node's own `serverCount`): the larger of the two
//! counts is the number of live nodes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ::redis::{Connection, RedisResult};

use super::config::RedisConfig;
use super::wire;

/// What one worker process knows of the cluster.
pub(crate) struct Presence {
    worker: usize,
    key: String,
    pattern: String,
    request_channel: String,
    value: String,
    ttl_ms: u64,
    interval: Duration,
    live: AtomicUsize,
    /// The other nodes with a presence key, by id.
    others: Mutex<Vec<String>>,
    /// The presence key of node `""`: the prefix of every node's key.
    prefix: String,
    own_id: String,
}

impl Presence {
    pub fn new(cfg: &RedisConfig, worker: usize) -> Presence {
        Presence {
            worker,
            key: cfg.presence_key(&cfg.node_id),
            pattern: cfg.presence_key("*"),
            request_channel: wire::request_channel(&cfg.key, "/"),
            value: format!("pid={}", std::process::id()),
            ttl_ms: cfg.presence_ttl_ms,
            interval: cfg.heartbeat(),
            live: AtomicUsize::new(1),
            others: Mutex::new(Vec::new()),
            prefix: cfg.presence_key(""),
            own_id: cfg.node_id.clone(),
        }
    }

    /// The worker this is.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// The heartbeat interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Live nodes other than this one, as of the last heartbeat.
    pub fn others(&self) -> usize {
        self.live.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// The other nodes with a presence key, as of the last heartbeat.
    pub fn other_ids(&self) -> Vec<String> {
        self.others.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// One heartbeat: worker 0 refreshes the key; every worker recounts.
    pub fn beat(&self, conn: &mut Connection) -> RedisResult<()> {
        if self.worker == 0 {
            ::redis::cmd("SET")
                .arg(&self.key)
                .arg(&self.value)
                .arg("PX")
                .arg(self.ttl_ms)
                .query::<()>(conn)?;
        }
        let keys = scan_keys(conn, &self.pattern)?;
        let ids: Vec<String> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(&self.prefix))
            .filter(|id| *id != self.own_id)
            .map(str::to_string)
            .collect();
        let keys = keys.len();
        if let Ok(mut v) = self.others.lock() {
            *v = ids;
        }
        let (_, subs): (String, usize) = ::redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&self.request_channel)
            .query(conn)?;
        self.live.store(keys.max(subs).max(1), Ordering::Relaxed);
        Ok(())
    }

    /// The node stops: worker 0 removes the key at once.
    pub fn leave(&self, conn: &mut Connection) {
        if self.worker == 0 {
            if let Err(e) = ::redis::cmd("DEL").arg(&self.key).query::<()>(conn) {
                log::warn!("redis: could not remove presence key {}: {e}", self.key);
            }
        }
    }
}

/// Keys matching `pattern` (SCAN, so Redis is never blocked).
fn scan_keys(conn: &mut Connection, pattern: &str) -> RedisResult<Vec<String>> {
    let mut cursor = 0u64;
    let mut all = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(conn)?;
        all.extend(keys);
        if next == 0 {
            return Ok(all);
        }
        cursor = next;
    }
}
