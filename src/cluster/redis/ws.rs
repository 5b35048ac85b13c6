//! [`WsCluster`]: the plain WebSocket layer across nodes — a broadcast to every client of
//! every node, and a push or disconnect to a connection of any node by its [`NodeFd`].
//!
//! Channels (under the same key prefix as the Socket.IO adapter): `<key>-ws#all#` for
//! broadcasts, `<key>-ws#node#<id>#` for what is addressed to node `<id>`; the payloads are
//! [`WsEvent`]s (see `ws_event.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::{ConfigError, RedisConfig};
use super::handover::Handover;
use super::link::Link;
use super::node_fd::NodeFd;
use super::presence::Presence;
use super::publisher::Publisher;
use super::subscriber::{self, Listener, Received, Topics};
use super::ws_event::{self, WsEvent};
use crate::protocol::frame::{OpCode, FLAG_FIN};
use crate::runtime::table::Fd;
use crate::server::Server;

/// The plain WebSocket layer's link to the other nodes. `Clone + Send + Sync`: build it in
/// `main`, start it in `on_worker_start` ([`start_server`](WsCluster::start_server)), use
/// it from callbacks and threads.
///
/// ```no_run
/// use prefork_ws::cluster::redis::{RedisConfig, WsCluster};
/// use prefork_ws::{OpCode, Server};
/// let cluster = WsCluster::new(RedisConfig::new("redis://127.0.0.1:6379")).expect("config");
/// let mut server = Server::new("0.0.0.0", 9502);
/// let c = cluster.clone();
/// server.on_worker_start(move |srv, _| c.start_server(srv));
/// let c = cluster.clone();
/// server.on_open(move |srv, req| {
///     srv.push_text(req.fd, &format!("you are {}", c.id_of(req.fd)));
/// });
/// server.on_message(move |srv, frame| {
///     cluster.broadcast(srv, frame.data, OpCode::Text);
/// });
/// server.start().expect("server");
/// ```
#[derive(Clone)]
pub struct WsCluster {
    shared: Arc<Shared>,
}

struct Shared {
    cfg: RedisConfig,
    client: ::redis::Client,
    /// This worker process's publisher (set in `on_worker_start`).
    publisher: OnceLock<Publisher>,
    publisher_thread: Mutex<Option<JoinHandle<()>>>,
    stop: Arc<AtomicBool>,
}

impl WsCluster {
    /// A cluster link for `cfg` (checked; connections start with the workers).
    pub fn new(cfg: RedisConfig) -> Result<WsCluster, ConfigError> {
        cfg.validate()?;
        let client =
            ::redis::Client::open(cfg.url.as_str()).map_err(|source| ConfigError::Url {
                url: cfg.url.clone(),
                source,
            })?;
        Ok(WsCluster {
            shared: Arc::new(Shared {
                cfg,
                client,
                publisher: OnceLock::new(),
                publisher_thread: Mutex::new(None),
                stop: Arc::new(AtomicBool::new(false)),
            }),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.shared.cfg.node_id
    }

    /// The cluster-wide id of this node's connection `fd`.
    pub fn id_of(&self, fd: Fd) -> NodeFd {
        NodeFd {
            node: self.node_id().to_string(),
            fd,
        }
    }

    fn all_channel(&self) -> String {
        format!("{}-ws#all#", self.shared.cfg.key)
    }

    fn node_channel(&self, node: &str) -> String {
        format!("{}-ws#node#{node}#", self.shared.cfg.key)
    }

    fn link(&self, role: String) -> Link {
        let s = &self.shared;
        Link::new(s.client.clone(), role, &s.cfg.url)
    }

    /// Starts worker `worker`'s connections (once per worker process); on worker 0 also the
    /// node's subscription, whose events `deliver` carries out on the subscriber's thread.
    pub fn start_worker(&self, worker: usize, deliver: impl Fn(WsEvent) + Send + 'static) {
        let s = &self.shared;
        let presence = Arc::new(Presence::new(&s.cfg, worker));
        let role = format!("publisher (worker {worker})");
        match Publisher::spawn(self.link(role), presence, s.cfg.publish_queue, s.cfg.sink()) {
            Ok((p, thread)) => {
                let _ = s.publisher.set(p);
                if let Ok(mut t) = s.publisher_thread.lock() {
                    *t = Some(thread);
                }
            }
            Err(e) => log::error!("redis: cannot start the publisher thread: {e}"),
        }
        if worker != 0 {
            return;
        }
        let Some(publisher) = s.publisher.get().cloned() else {
            return;
        };
        let handover = Handover::new(&s.cfg.key, self.node_id(), publisher);
        let topics = Topics {
            channels: vec![
                self.all_channel(),
                self.node_channel(self.node_id()),
                handover.channel().to_string(),
            ],
            patterns: Vec::new(),
        };
        let listener = WsListener {
            handover,
            uid: self.node_id().to_string(),
            deliver,
        };
        let link = self.link("subscriber".into());
        let r = subscriber::spawn(link, topics, s.cfg.sink(), s.stop.clone(), listener);
        if let Err(e) = r {
            log::error!("redis: cannot start the subscriber thread: {e}");
        }
    }

    /// [`start_worker`](WsCluster::start_worker) for a Swoole-style server: other nodes'
    /// broadcasts, pushes and disconnects are carried out through its [`ServerHandle`](crate::ServerHandle).
    pub fn start_server(&self, server: &Server) {
        let (Some(worker), Some(handle)) = (server.worker_id(), server.handle()) else {
            return;
        };
        self.start_worker(worker, move |ev| {
            let ok = match ev {
                WsEvent::Broadcast { data, opcode } => handle.broadcast(data, opcode),
                WsEvent::Push { fd, data, opcode } => handle.push(fd, data, opcode, FLAG_FIN),
                WsEvent::Disconnect { fd, code, reason } => handle.disconnect(fd, code, &reason),
            };
            if !ok {
                log::warn!("redis subscriber: worker 0's queue is full; an event was dropped");
            }
        });
    }

    /// [`start_worker`](WsCluster::start_worker) for the Hyperf-style layer (call it from
    /// [`App::on_worker_start`](crate::hyperf::App::on_worker_start)): other nodes' pushes
    /// and disconnects go through the worker's [`Sender`](crate::hyperf::Sender);
    /// broadcasts go to every connection of the node.
    #[cfg(feature = "hyperf")]
    pub fn start_sender(&self, sender: crate::hyperf::Sender, worker: usize) {
        self.start_worker(worker, move |ev| match ev {
            WsEvent::Push { fd, data, opcode } => {
                match opcode {
                    OpCode::Binary => sender.push_binary(fd, data),
                    _ => sender.push(fd, data),
                };
            }
            WsEvent::Disconnect { fd, code, reason } => {
                sender.disconnect(fd, code, &reason);
            }
            WsEvent::Broadcast { data, opcode } => {
                sender.broadcast(data, opcode);
            }
        });
    }

    /// A Hyperf [`Sender`](crate::hyperf::Sender) push to a connection of any node: this
    /// node's through `sender` (its answer), another's through Redis (queued).
    #[cfg(feature = "hyperf")]
    pub fn sender_push(&self, sender: &crate::hyperf::Sender, to: &NodeFd, data: &[u8]) -> bool {
        if to.node == self.node_id() {
            return sender.push(to.fd, data);
        }
        self.push_remote(to, data, OpCode::Text)
    }

    /// A Hyperf [`Sender`](crate::hyperf::Sender) disconnect of a connection of any node.
    #[cfg(feature = "hyperf")]
    pub fn sender_disconnect(
        &self,
        sender: &crate::hyperf::Sender,
        to: &NodeFd,
        code: u16,
        reason: &str,
    ) -> bool {
        if to.node == self.node_id() {
            return sender.disconnect(to.fd, code, reason);
        }
        self.disconnect_remote(to, code, reason)
    }

    /// Stops this worker's subscription (call it in `on_worker_stop`); on worker 0 the
    /// node's presence key is removed (waited for up to 500 ms).
    pub fn stop_worker(&self) {
        let s = &self.shared;
        s.stop.store(true, Ordering::Relaxed);
        if let Some(p) = s.publisher.get() {
            p.stop();
        }
        let thread = s.publisher_thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let deadline = Instant::now() + Duration::from_millis(500);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    fn publish(&self, channel: String, ev: &WsEvent) -> bool {
        match self.shared.publisher.get() {
            Some(p) => p.publish(channel, ws_event::encode(self.node_id(), ev)),
            None => false,
        }
    }

    /// Sends `data` to every client of every other node (`false`: not queued — the
    /// worker's link is not started or its queue is full).
    pub fn broadcast_remote(&self, data: &[u8], opcode: OpCode) -> bool {
        let ev = WsEvent::Broadcast {
            data: data.to_vec(),
            opcode,
        };
        self.publish(self.all_channel(), &ev)
    }

    /// Sends `data` to every client of every node: this node's through `server`, the
    /// others' through Redis. Returns whether the other nodes' part was queued.
    pub fn broadcast(&self, server: &Server, data: impl AsRef<[u8]>, opcode: OpCode) -> bool {
        server.broadcast(data.as_ref(), opcode);
        self.broadcast_remote(data.as_ref(), opcode)
    }

    /// Pushes to a connection of another node (`false` for this node's own: use the local
    /// push, or [`push`](WsCluster::push)). `true` means queued for that node.
    pub fn push_remote(&self, to: &NodeFd, data: &[u8], opcode: OpCode) -> bool {
        if to.node == self.node_id() {
            return false;
        }
        let ev = WsEvent::Push {
            fd: to.fd,
            data: data.to_vec(),
            opcode,
        };
        self.publish(self.node_channel(&to.node), &ev)
    }

    /// Pushes to a connection of any node: this node's at once through `server` (the
    /// answer is the truth), another's through Redis (queued).
    pub fn push(
        &self,
        server: &Server,
        to: &NodeFd,
        data: impl AsRef<[u8]>,
        opcode: OpCode,
    ) -> bool {
        if to.node == self.node_id() {
            return server.push(to.fd, data.as_ref(), opcode, FLAG_FIN);
        }
        self.push_remote(to, data.as_ref(), opcode)
    }

    /// Closes a connection of another node with a close frame (`false` for this node's own).
    pub fn disconnect_remote(&self, to: &NodeFd, code: u16, reason: &str) -> bool {
        if to.node == self.node_id() {
            return false;
        }
        let ev = WsEvent::Disconnect {
            fd: to.fd,
            code,
            reason: reason.to_string(),
        };
        self.publish(self.node_channel(&to.node), &ev)
    }

    /// Closes a connection of any node (this node's through `server`).
    pub fn disconnect(&self, server: &Server, to: &NodeFd, code: u16, reason: &str) -> bool {
        if to.node == self.node_id() {
            return server.disconnect(to.fd, code, reason);
        }
        self.disconnect_remote(to, code, reason)
    }
}

/// Worker 0's subscriber for the plain WebSocket layer.
struct WsListener<F> {
    handover: Handover,
    uid: String,
    deliver: F,
}

impl<F: Fn(WsEvent) + Send + 'static> Listener for WsListener<F> {
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
        if let Some(ev) = ws_event::decode(&self.uid, r.payload) {
            (self.deliver)(ev);
        }
    }
}
