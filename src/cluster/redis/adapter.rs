//! [`RedisAdapter`]: the Socket.IO adapter for more than one node.

use std::cell::{OnceCell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::answer::{self, Answerer};
use super::config::{ConfigError, RedisConfig};
use super::handover::Handover;
use super::inbound;
use super::link::Link;
use super::outbound::outbound;
use super::presence::Presence;
use super::publisher::Publisher;
use super::subscriber::{self, Listener, Received, Topics};
use super::wire;
use crate::socketio::adapter::{Adapter, SOCKETIO_CHANNEL};
use crate::socketio::cluster::{ClusterMsg, Origin};
use crate::socketio::{Io, IoHandle, SioCtx};

/// Socket.IO rooms, broadcasts, acks and node-wide operations across nodes through Redis,
/// in the wire format of Node's `@socket.io/redis-adapter` 8.3 (see [`super::wire`]), so
/// Rust and Node.js nodes can share rooms.
///
/// Within the node the workers still talk through the peer channel; Redis carries what
/// goes to other nodes. Worker 0 holds the node's one subscription and fans what it
/// receives out to the other workers (encoded once); every worker publishes on its own
/// connection, from a thread, so the reactor never waits on Redis.
///
/// ```no_run
/// use prefork_ws::cluster::redis::{RedisAdapter, RedisConfig};
/// use prefork_ws::socketio::{SioConfig, SocketIo};
/// let mut io = SocketIo::new(SioConfig::default());
/// let config = RedisConfig::new("redis://127.0.0.1:6379").node_id("ws1");
/// io.adapter(RedisAdapter::new(config).expect("valid Redis settings"));
/// ```
pub struct RedisAdapter {
    cfg: RedisConfig,
    client: ::redis::Client,
    side: OnceCell<WorkerSide>,
}

/// What a running worker holds.
struct WorkerSide {
    publisher: Publisher,
    presence: Arc<Presence>,
    stop: Arc<AtomicBool>,
    publisher_thread: RefCell<Option<JoinHandle<()>>>,
}

impl RedisAdapter {
    /// An adapter for `cfg` (checked; no connection is made before the workers start).
    pub fn new(cfg: RedisConfig) -> Result<RedisAdapter, ConfigError> {
        cfg.validate()?;
        let client =
            ::redis::Client::open(cfg.url.as_str()).map_err(|source| ConfigError::Url {
                url: cfg.url.clone(),
                source,
            })?;
        Ok(RedisAdapter {
            cfg,
            client,
            side: OnceCell::new(),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.cfg.node_id
    }

    fn link(&self, role: String) -> Link {
        Link::new(self.client.clone(), role, &self.cfg.url)
    }

    fn start_side(&self, io: &Io<'_>) -> std::io::Result<WorkerSide> {
        let worker = io.cx().worker_id();
        let presence = Arc::new(Presence::new(&self.cfg, worker));
        let role = format!("publisher (worker {worker})");
        let (publisher, thread) = Publisher::spawn(
            self.link(role),
            presence.clone(),
            self.cfg.publish_queue,
            self.cfg.sink(),
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        if worker == 0 {
            self.start_subscriber(io, publisher.clone(), stop.clone())?;
        }
        Ok(WorkerSide {
            publisher,
            presence,
            stop,
            publisher_thread: RefCell::new(Some(thread)),
        })
    }

    /// Worker 0's subscription for the node (a new worker 0 subscribes anew).
    fn start_subscriber(
        &self,
        io: &Io<'_>,
        publisher: Publisher,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<()> {
        let key = &self.cfg.key;
        let mut topics = Topics {
            // Plain subscriptions to the request channels make Node's `serverCount`
            // (PUBSUB NUMSUB) count this node; messages come through the patterns.
            channels: io
                .sio()
                .namespace_names()
                .iter()
                .map(|n| wire::request_channel(key, n))
                .collect(),
            patterns: vec![
                format!("{key}#*"),
                format!("{key}-request#*"),
                format!("{key}-response#*"),
            ],
        };
        let ans = Answerer {
            publisher: publisher.clone(),
            key: key.clone(),
            uid: self.cfg.node_id.clone(),
            relay_timeout: self.cfg.relay_timeout_ms,
        };
        let handover = Handover::new(key, &self.cfg.node_id, publisher);
        topics.channels.push(handover.channel().to_string());
        let listener = NodeListener {
            handover,
            key: key.clone(),
            ans,
            handle: io.handle(),
            stopped: stop.clone(),
            refused: 0,
        };
        let link = self.link("subscriber".into());
        subscriber::spawn(link, topics, self.cfg.sink(), stop, listener)?;
        Ok(())
    }
}

impl Adapter for RedisAdapter {
    fn publish(&self, cx: &SioCtx, msg: &[u8]) -> usize {
        let peers = cx.send_to_all_workers(SOCKETIO_CHANNEL, msg);
        let Some(side) = self.side.get() else {
            return peers;
        };
        let Some(m) = ClusterMsg::decode(msg) else {
            return peers;
        };
        let Some(out) = outbound(&self.cfg.key, &self.cfg.node_id, &m) else {
            return peers;
        };
        let answered = out.answered;
        if side.publisher.publish(out.channel, out.payload) && answered {
            peers + side.presence.others()
        } else {
            peers
        }
    }

    fn node(&self) -> &str {
        &self.cfg.node_id
    }

    fn send_to_node(&self, _cx: &SioCtx, node: &str, worker: usize, msg: &[u8]) -> bool {
        let Some(side) = self.side.get() else {
            return false;
        };
        let restore = ClusterMsg::decode(msg).and_then(|m| {
            super::outbound::restore(&self.cfg.key, &self.cfg.node_id, node, worker, &m)
        });
        match restore {
            Some(out) => side.publisher.publish(out.channel, out.payload),
            None => false,
        }
    }

    fn other_nodes(&self) -> Vec<String> {
        self.side
            .get()
            .map(|s| s.presence.other_ids())
            .unwrap_or_default()
    }

    fn reply(&self, cx: &SioCtx, to: &Origin, msg: &[u8]) -> bool {
        // Answers to other nodes are published by the relays; origins are local.
        cx.send_to_worker(to.worker as usize, SOCKETIO_CHANNEL, msg)
    }

    fn start(&self, io: &Io<'_>) {
        match self.start_side(io) {
            Ok(side) => {
                let _ = self.side.set(side);
            }
            Err(e) => log::error!("redis: cannot start the adapter's threads: {e}"),
        }
    }

    fn stop(&self, _io: &Io<'_>) {
        let Some(side) = self.side.get() else {
            return;
        };
        side.stop.store(true, Ordering::Relaxed);
        side.publisher.stop();
        // Give worker 0's publisher a moment to remove the presence key.
        if let Some(t) = side.publisher_thread.borrow_mut().take() {
            let deadline = Instant::now() + Duration::from_millis(500);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Worker 0's subscriber for Socket.IO: what it admits (see [`Handover`]) is read on its
/// thread and carried out on worker 0's reactor.
struct NodeListener {
    handover: Handover,
    key: String,
    ans: Answerer,
    handle: IoHandle,
    /// Set when worker 0 stops: what is still on its way is not applied there.
    stopped: Arc<AtomicBool>,
    refused: usize,
}

impl Listener for NodeListener {
    fn subscribed(&mut self) {
        self.handover.subscribed();
    }

    fn tick(&mut self) {
        self.handover.tick();
    }

    fn message(&mut self, r: Received<'_>) {
        if !self.handover.admit(&r) {
            return;
        }
        let Some(action) = inbound::interpret(&self.key, &self.ans.uid, &r) else {
            return;
        };
        let ans = self.ans.clone();
        let stopped = self.stopped.clone();
        let apply = move |io: &Io<'_>| {
            if !stopped.load(Ordering::Relaxed) {
                answer::execute(io, action, &ans)
            }
        };
        if !self.handle.run(apply) {
            if self.refused % 1000 == 0 {
                log::warn!("redis subscriber: worker 0's queue is full; messages dropped");
            }
            self.refused += 1;
        }
    }
}

/// The handle type is `Send`: the subscriber thread runs actions on worker 0 with it.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<IoHandle>();
};
