//! Streams mode's reader: the node's subscriber reads the one stream (`XREAD BLOCK`) from
//! the last entry it has read, so after a lost connection it goes on where it stopped and
//! nothing published meanwhile (by workers that queued it, or before Redis went away) is
//! lost while the stream keeps it. Entries are `{c: channel, p: payload}`; what the node's
//! topics would receive is handed on as if it had come through pub/sub.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::redis::{Connection, RedisResult, Value};

use super::link::{Link, IO_TIMEOUT};
use super::subscriber::{Listener, Received, Topics};

/// How long one XREAD waits for entries.
const BLOCK_MS: u64 = 250;
/// Entries read at once.
const BATCH: usize = 512;

/// The reader's place in the stream.
pub(crate) struct StreamReader {
    key: String,
    /// The id of the last entry read; empty before the first connection.
    last: String,
}

impl StreamReader {
    pub fn new(key: String) -> StreamReader {
        StreamReader {
            key,
            last: String::new(),
        }
    }

    /// One connection's life: read from the last entry until it fails or `stop` is set.
    pub fn session(
        &mut self,
        link: &mut Link,
        topics: &Topics,
        stop: &AtomicBool,
        ready: &crossbeam_channel::Sender<()>,
        listener: &mut impl Listener,
    ) -> RedisResult<()> {
        let mut conn = link.connect()?;
        conn.set_read_timeout(Some(Duration::from_millis(BLOCK_MS) + IO_TIMEOUT))?;
        if self.last.is_empty() {
            self.last = last_id(&mut conn, &self.key)?;
        }
        log::info!(
            "redis subscriber: reading stream {} after {}",
            self.key,
            self.last
        );
        listener.subscribed();
        let _ = ready.try_send(());
        while !stop.load(Ordering::Relaxed) {
            let reply: Value = ::redis::cmd("XREAD")
                .arg("COUNT")
                .arg(BATCH)
                .arg("BLOCK")
                .arg(BLOCK_MS)
                .arg("STREAMS")
                .arg(&self.key)
                .arg(&self.last)
                .query(&mut conn)?;
            let entries = entries(reply);
            if entries.is_empty() {
                listener.tick();
            }
            for (id, body) in entries {
                self.last = id;
                let Some((channel, payload)) = body else {
                    continue;
                };
                if let Some(pattern) = topics.matches(&channel) {
                    listener.message(Received {
                        channel: &channel,
                        pattern,
                        payload: &payload,
                    });
                }
            }
        }
        Ok(())
    }
}

/// The id of the stream's last entry (`0-0` when it is empty or absent).
fn last_id(conn: &mut Connection, key: &str) -> RedisResult<String> {
    let reply: Value = ::redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(conn)?;
    let id = match reply {
        Value::Array(items) => items.into_iter().next().and_then(|e| entry(e).map(|t| t.0)),
        _ => None,
    };
    Ok(id.unwrap_or_else(|| "0-0".to_string()))
}

/// An entry's id and, when it has them, its channel and payload.
type Entry = (String, Option<(String, Vec<u8>)>);

/// Every entry of an XREAD reply (nil when nothing came).
fn entries(reply: Value) -> Vec<Entry> {
    let Value::Array(streams) = reply else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in streams {
        let Value::Array(mut parts) = s else { continue };
        let Some(Value::Array(items)) = parts.pop() else {
            continue;
        };
        out.extend(items.into_iter().filter_map(entry));
    }
    out
}

/// One entry `[id, [field, value, …]]` (its body `None` without the `c` and `p` fields:
/// skipped, but read past).
fn entry(e: Value) -> Option<Entry> {
    let Value::Array(mut parts) = e else {
        return None;
    };
    let fields = parts.pop()?;
    let id = bytes(parts.pop()?)?;
    let Value::Array(fields) = fields else {
        return Some((id, None));
    };
    let (mut channel, mut payload) = (None, None);
    let mut it = fields.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        match bytes(k).as_deref() {
            Some("c") => channel = bytes(v),
            Some("p") => payload = bytes_raw(v),
            _ => {}
        }
    }
    Some((id, channel.zip(payload)))
}

fn bytes_raw(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

fn bytes(v: Value) -> Option<String> {
    String::from_utf8(bytes_raw(v)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn xread_replies_are_read_into_entries() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(b"socket.io-stream"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk(b"1-0"),
                    Value::Array(vec![bulk(b"c"), bulk(b"ch"), bulk(b"p"), bulk(b"\x00\xff")]),
                ]),
                Value::Array(vec![
                    bulk(b"2-0"),
                    Value::Array(vec![bulk(b"x"), bulk(b"y")]),
                ]),
            ]),
        ])]);
        let e = entries(reply);
        let ch = Some(("ch".to_string(), vec![0, 255]));
        assert_eq!(e, vec![("1-0".to_string(), ch), ("2-0".to_string(), None)]);
        assert!(entries(Value::Nil).is_empty());
    }

    #[test]
    fn topics_match_as_redis_would_deliver() {
        let t = Topics {
            channels: vec!["k-request#/#".into(), "k-sub#n#".into()],
            patterns: vec!["k#*".into(), "k-request#*".into()],
        };
        assert_eq!(t.matches("k#/#room#"), Some(true));
        assert_eq!(t.matches("k-request#/#"), Some(true));
        assert_eq!(t.matches("k-sub#n#"), Some(false));
        assert_eq!(t.matches("k-ws#all#"), None);
    }
}
