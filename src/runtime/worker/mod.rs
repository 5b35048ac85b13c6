//! A worker process: one mio reactor, its connections in a slab, the event loop.
//!
//! mio is edge-triggered on Linux. Reads go into one buffer per worker; a read that returns
//! less than the buffer size has drained the socket, so the loop does not issue the extra
//! `read` that would only return `EAGAIN`. Output for a connection is appended to its pending
//! buffer and written once per event batch (one `write` per connection per burst, not per
//! frame). Closing is always deferred to the end of the batch, so a handler can never see its
//! connection's slot freed or reused under it.
//!
//! The state is split in two: [`Core`] is the reactor's data (connections, buffers, listeners,
//! channels, deadlines) and knows nothing of handlers; [`Worker`] owns the [`Handler`] and the
//! [`Ctx`] and is where handler methods are called — never while `Core` is borrowed.
//!
//! Files, one job each: `boot` (start a worker), `event_loop`, `accept`, `read`, `output`,
//! `http`, `upgrade`, `websocket`, `peers` (other workers), `housekeeping` (deadlines,
//! heartbeat, pings, stats), `lifecycle` (batch end, reaping, stopping), `mailbox` (other
//! threads), `context` (the public `Ctx`), `tokens`, `tls` (TLS connections' input and
//! output).

mod accept;
mod boot;
mod conn_slab;
mod context;
mod deadlines;
mod event_loop;
mod handoff;
mod housekeeping;
mod http;
mod lifecycle;
mod mailbox;
mod migrate;
mod output;
mod peers;
mod read;
mod tls;
mod tokens;
mod upgrade;
mod websocket;

use std::os::fd::RawFd;

use mio::net::TcpListener;
use mio::Registry;
use thin_vec::ThinVec;

pub use context::{BroadcastReport, Ctx};
pub use mailbox::WorkerHandle;

pub(crate) use boot::{run_worker, WorkerBoot, WorkerListener};
pub(crate) use deadlines::MAX_SLOTS;

use crate::runtime::conn::Conn;
use crate::runtime::handler::Handler;
use crate::runtime::ipc::Outbox;
use crate::runtime::settings::Settings;
use crate::runtime::table::{Fd, SharedTable};
use tokens::Tokens;

/// Per-worker read buffer.
const READ_BUF: usize = 64 * 1024;
/// Pooled output buffers larger than this are freed instead of kept.
const POOL_KEEP: usize = 64 * 1024;
const POOL_MAX: usize = 256;
/// Pushes at least this large are written directly when nothing is queued (saves a copy; a
/// syscall per message is cheap next to copying this much).
const DIRECT_WRITE_MIN: usize = 8 * 1024;
/// After our last bytes, how long a lingering close waits for the peer's FIN.
const LINGER_MS: u64 = 2000;

/// One listening socket: our own (always registered) or another worker id's, registered only
/// while that worker is down so that connections hashed to its queue are not stranded.
struct ListenerRt {
    sock: TcpListener,
    /// Index of the port in `Core::ports`.
    port_idx: u16,
    /// Worker id the socket belongs to.
    owner: usize,
    server_fd: RawFd,
    registered: bool,
}

/// A listening port: number, whether WebSocket upgrades are served there, and its TLS
/// configuration (`None`: plain TCP).
#[derive(Debug, Clone)]
struct PortRt {
    port: u16,
    websocket: bool,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Serves `GET /metrics` (answered by the runtime).
    metrics: bool,
}

/// Counters published to the shared table with the others (see `housekeeping::sync_stats`).
#[derive(Default)]
pub(crate) struct Counters {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub closes: [u64; crate::runtime::metrics::CLOSE_REASONS.len()],
    pub refused: [u64; crate::runtime::metrics::REFUSED_STATUSES.len() + 1],
}

/// The reactor's state. Borrowed only for short, callback-free stretches (see [`Ctx`]).
pub(crate) struct Core {
    worker_id: usize,
    region: usize,
    worker_num: usize,
    table: SharedTable,
    registry: Registry,
    tokens: Tokens,
    conns: conn_slab::ConnSlab<Conn>,
    listeners: Vec<ListenerRt>,
    ports: Vec<PortRt>,
    rbuf: Vec<u8>,
    /// What TLS connections' input decrypts to (empty until a TLS connection reads).
    tls_plain: Vec<u8>,
    /// Where TLS connections' output is encrypted before it is written (empty until one
    /// writes).
    tls_scratch: Vec<u8>,
    dirty: Vec<usize>,
    dead: Vec<usize>,
    /// Connections whose input was not drained within their read budget.
    more_input: Vec<usize>,
    /// Connections whose held request was answered (pipelined input may wait).
    resume: Vec<usize>,
    /// Output buffers (thin: 8 bytes in an idle connection) kept for reuse.
    pool: Vec<ThinVec<u8>>,
    /// The compressor's output buffer, taken while a push is compressed.
    zbuf: Vec<u8>,
    outbox: Outbox,
    ipc_tx: Vec<RawFd>,
    ipc_tx_registered: Vec<bool>,
    ipc_rx: RawFd,
    /// Handshake, closing and linger deadlines.
    deadlines: deadlines::Deadlines,
    /// Monotonic milliseconds at the start of the current batch.
    now: u64,
    /// Wall-clock milliseconds at the start of the batch (for the table only).
    wall: u64,
    stopping: Option<u64>,
    accept_retry_at: Option<u64>,
    next_heartbeat: u64,
    next_ping: u64,
    next_sync: u64,
    subprotocols: Vec<String>,
    settings: std::rc::Rc<Settings>,
    messages_in: u64,
    messages_out: u64,
    counters: Counters,
    accepted: u64,
    closed: u64,
    slots: usize,
    /// Retiring in a reload: the region connections are handed to (see `migrate`).
    migrate_to: Option<usize>,
    /// Slots handed over whose state still waits in the IPC queue (marked moved once sent).
    unmarked: Vec<usize>,
    migrate_done_sent: bool,
    moved_out: u64,
    /// Monotonic ms when this worker began handing its connections over.
    migrate_started: u64,
    /// Connections the handler chose to close rather than move (a handful at most).
    declined: Vec<Fd>,
    /// A replacement waiting for the worker it replaces (region) to hand its connections
    /// over, until a monotonic deadline: its own listener is not registered meanwhile.
    accept_hold: Option<(usize, u64, u64)>,
}

impl Core {
    /// The connection in `key` if it is still `fd` (a slot may be reused by then).
    fn conn(&mut self, key: usize, fd: Fd) -> Option<&mut Conn> {
        self.conns.get_mut(key).filter(|c| c.fd == fd)
    }

    /// Publishes how many connections this worker holds (the table's region header).
    fn publish_conn_count(&self) {
        self.table.region(self.region).connections.store(
            self.conns.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// A running worker: the handler, and the context its methods get.
pub(crate) struct Worker<H: Handler> {
    handler: H,
    cx: Ctx<H>,
}

/// The message of a caught panic (`panic!("…")`'s text, or "unknown panic").
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Catches a panic from user code; logs it and returns `None`.
pub(crate) fn guarded<R>(what: &str, f: impl FnOnce() -> R) -> Option<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(p) => {
            log::error!("panic in {what}: {}", panic_message(&*p));
            None
        }
    }
}

impl Core {
    /// A new turn of the event loop: the batch's clocks, and the watchdog's heartbeat.
    fn turn(&mut self, mono: u64, wall: u64) {
        self.now = mono;
        self.wall = wall;
        self.heartbeat();
    }

    /// Tells the master's watchdog this worker makes progress.
    fn heartbeat(&self) {
        self.table
            .region(self.region)
            .loop_turns
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn has_resumable(&self) -> bool {
        !self.more_input.is_empty() || !self.resume.is_empty()
    }

    /// Connections with input left by the read budget, and (key, fd) of connections whose
    /// held request was answered.
    fn take_resumable(&mut self) -> (Vec<usize>, Vec<(usize, Fd)>) {
        let more = std::mem::take(&mut self.more_input);
        let resume = std::mem::take(&mut self.resume)
            .into_iter()
            .filter_map(|k| Some((k, self.conns.get(k)?.fd)))
            .collect();
        (more, resume)
    }
}
