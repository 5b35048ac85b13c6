//! Nodes sharing one Redis (feature `redis`).
//!
//! - [`RedisAdapter`]: the Socket.IO adapter. Rooms, broadcasts (`except`, `volatile`,
//!   `compress`; `local` and [`this_node`](crate::socketio::Operator::this_node) stay on
//!   the node), broadcasts with acknowledgements, `fetch_sockets`, `sockets_join`,
//!   `sockets_leave`, `disconnect_sockets` and `server_side_emit` cross nodes, in the wire
//!   format of Node's `@socket.io/redis-adapter` **8.3.0** ([`wire`]): Node.js socket.io
//!   nodes in the same Redis share the rooms.
//! - [`WsCluster`]: the plain WebSocket layer — a broadcast to every node, and pushes and
//!   disconnects to a connection of any node by its [`NodeFd`].
//!
//! **One subscription per node.** Worker 0 runs the subscriber thread and hands what it
//! receives to its own reactor, which applies it and forwards it to the other workers
//! through the peer channel, encoded once. A replaced worker 0 subscribes anew; during a
//! rolling reload the old and the new one hand over at a marker (see `handover.rs`), so
//! nothing is applied twice or lost. Every
//! worker publishes from its own thread and connection (the reactor never waits on Redis).
//!
//! **Streams mode** ([`RedisConfig::streams`]): the same payloads go through one stream
//! (`<key>-stream`, XADD / XREAD) and a node's reader goes on from its last entry after a
//! lost connection: nothing published while it was away is lost.
//!
//! **Failures.** Each connection reconnects with back-off (100 ms doubling to 1.6 s) and
//! the subscriber subscribes again to everything; each change of state is one log line
//! (`redis subscriber: connection lost …`, `redis subscriber: connected …`). Pub/sub keeps
//! nothing while Redis is away: what is published then is queued by the publishing worker
//! (up to [`RedisConfig::publish_queue`]) and sent when Redis is back, but messages sent
//! to the node while its subscription is down are lost.
//!
//! **Presence.** Worker 0 keeps a key `<key>-node#<node_id>` with a TTL
//! ([`RedisConfig::presence_ttl_ms`]), refreshed every third of it (at least once a second)
//! and removed when the node stops; a crashed node's key expires. Every worker recounts the live nodes on the same
//! beat (SCAN of the presence keys, and Node's own server count, `PUBSUB NUMSUB` of the
//! request channel, for Node.js nodes), and a request (`fetch_sockets`, a broadcast with
//! acks) waits for that many nodes; when one does not answer in time the caller gets the
//! answers that came ([`Partial`](crate::socketio::Partial)), not an error.

mod adapter;
mod answer;
mod config;
mod handover;
mod inbound;
mod link;
mod mpack;
mod node_fd;
mod outbound;
mod presence;
mod publisher;
mod stream;
mod subscriber;
pub mod wire;
mod ws;
mod ws_event;

pub use adapter::RedisAdapter;
pub use config::{ConfigError, RedisConfig};
pub use node_fd::{BadNodeFd, NodeFd};
pub use ws::WsCluster;
pub use ws_event::WsEvent;
