//! A worker process: one mio reactor, its connections in a slab, the event loop.
//!
//! mio is edge-triggered on Linux. Reads go into one buffer per worker; a read that returns
//! less than the buffer size has drained the socket, so the loop does not issue the extra
//! `read` that would only return `EAGAIN`. Output for a connection is appended to its pending
//! buffer and written once per event batch (one `write` per connection per burst, not per
//! frame). Closing is always deferred to the end of the batch, so a callback can never see its
//! connection's slot freed or reused under it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use nix::sys::signal::Signal;
use slab::Slab;

use crate::protocol::close::close_payload;
use crate::protocol::decoder::{DecoderConfig, Event, MessageDecoder};
use crate::protocol::deflate::{self, Inflater};
use crate::protocol::frame::{
    encode_frame, OpCode, FLAG_COMPRESS, FLAG_FIN, WEBSOCKET_STATUS_ACTIVE,
    WEBSOCKET_STATUS_CLOSING, WEBSOCKET_STATUS_HANDSHAKE,
};
use crate::protocol::handshake;
use crate::runtime::conn::{Compression, Conn, Phase};
use crate::runtime::ipc::{Inbox, Msg, Outbox, SendState};
use crate::runtime::signals::{self, SignalPipe};
use crate::runtime::table::{Fd, NewConn, SharedTable};
use crate::runtime::timer::Timers;
use crate::server::handle::Command;
use crate::server::{Frame, Request, Response, Server};

const LISTENER_BASE: usize = usize::MAX - 8192;
const TOKEN_IPC_RX: Token = Token(usize::MAX - 1);
const TOKEN_WAKER: Token = Token(usize::MAX - 2);
const TOKEN_SIGNAL: Token = Token(usize::MAX - 3);
const IPC_TX_BASE: usize = usize::MAX - 4096;
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

/// A listening port as a worker sees it: the SO_REUSEPORT socket of every worker id.
pub(crate) struct WorkerListener {
    /// Indexed by worker id; the worker's own socket is `per_worker[worker_id]`.
    pub per_worker: Vec<RawFd>,
    pub port: u16,
    pub websocket: bool,
}

/// What the master hands a freshly forked worker.
pub(crate) struct WorkerBoot {
    pub worker_id: usize,
    pub region: usize,
    pub listeners: Vec<WorkerListener>,
    /// rx end of the own region's channel.
    pub ipc_rx: RawFd,
    /// tx end of every region's channel.
    pub ipc_tx: Vec<RawFd>,
    pub master_pid: i32,
}

/// One listening socket: our own (always registered) or another worker id's, registered only
/// while that worker is down so that connections hashed to its queue are not stranded.
struct ListenerRt {
    sock: TcpListener,
    /// Index of the port in `Runtime::ports`.
    port_idx: usize,
    /// Worker id the socket belongs to.
    owner: usize,
    server_fd: RawFd,
    registered: bool,
}

/// Why a connection is being closed (for logs).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Why {
    PeerClosed,
    Io,
    HandshakeTimeout,
    CloseTimeout,
    OutputLimit,
    Shutdown,
    Done,
}

pub(crate) struct Runtime {
    pub worker_id: usize,
    pub region: usize,
    pub worker_num: usize,
    pub table: SharedTable,
    registry: Registry,
    pub conns: Slab<Conn>,
    listeners: Vec<ListenerRt>,
    /// (port, websocket enabled) per listening port.
    ports: Vec<(u16, bool)>,
    rbuf: Vec<u8>,
    dirty: Vec<usize>,
    dead: Vec<(usize, Why)>,
    /// Connections whose input was not drained within their read budget.
    more_input: Vec<usize>,
    pool: Vec<Vec<u8>>,
    pub outbox: Outbox,
    pub ipc_tx: Vec<RawFd>,
    ipc_tx_registered: Vec<bool>,
    ipc_rx: RawFd,
    inbox: Option<Inbox>,
    pub timers: Option<Timers<Server>>,
    /// (deadline, key, fd): handshake, closing and linger deadlines.
    deadlines: BinaryHeap<Reverse<(u64, usize, Fd)>>,
    pub now_ms: u64,
    stopping: Option<u64>,
    accept_retry_at: Option<u64>,
    next_heartbeat: u64,
    next_ping: u64,
    next_sync: u64,
    subprotocols: Vec<String>,
    pub handle_tx: crossbeam_channel::Sender<Command>,
    handle_rx: Receiver<Command>,
    pub waker: Arc<Waker>,
    messages_in: u64,
    pub messages_out: u64,
    accepted: u64,
    closed: u64,
    slots: usize,
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Runtime {
    fn conn(&mut self, key: usize, fd: Fd) -> Option<&mut Conn> {
        self.conns.get_mut(key).filter(|c| c.fd == fd)
    }

    fn give_buf(&mut self, mut b: Vec<u8>) {
        if b.capacity() > 0 && b.capacity() <= POOL_KEEP && self.pool.len() < POOL_MAX {
            b.clear();
            self.pool.push(b);
        }
    }

    /// Queues bytes for a connection, written at the end of the batch.
    pub fn queue(&mut self, key: usize, bytes: &[u8], limit: usize) -> bool {
        self.send_frame(key, bytes, &[], limit, false)
    }

    /// Writes a frame to a connection now if nothing is pending (no copy), else queues it.
    pub fn write_or_queue(&mut self, key: usize, bytes: &[u8], limit: usize) -> bool {
        self.send_frame(key, bytes, &[], limit, true)
    }

    /// Sends one frame (`head`, then `body`) to a connection. With `direct` and nothing queued
    /// before it, the frame is written at once with one `writev` (no copy); otherwise — and
    /// for whatever did not fit — it is appended to the connection's output buffer, which is
    /// written once per event batch. A frame that would take the buffer past `limit`
    /// (`buffer_output_size`) closes the connection instead.
    fn send_frame(
        &mut self,
        key: usize,
        head: &[u8],
        body: &[u8],
        limit: usize,
        direct: bool,
    ) -> bool {
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        let total = head.len() + body.len();
        if c.pending_out() + total > limit {
            log::warn!(
                "fd {}: output buffer would exceed buffer_output_size ({} bytes queued + {}), closing the connection",
                c.fd,
                c.pending_out(),
                total
            );
            self.kill(key, Why::OutputLimit);
            return false;
        }
        let mut written = 0;
        if direct && c.pending_out() == 0 && !c.dirty {
            let iov = [io::IoSlice::new(head), io::IoSlice::new(body)];
            match (&c.stream).write_vectored(&iov) {
                Ok(w) => written = w,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.kill(key, Why::Io);
                    return false;
                }
            }
            if written == total {
                return true;
            }
        }
        if c.outbuf.capacity() == 0 {
            c.outbuf = self.pool.pop().unwrap_or_default();
        }
        if written < head.len() {
            c.outbuf.extend_from_slice(&head[written..]);
            c.outbuf.extend_from_slice(body);
        } else {
            c.outbuf.extend_from_slice(&body[written - head.len()..]);
        }
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(key);
        }
        true
    }

    /// Marks a connection for removal at the end of the batch.
    pub fn kill(&mut self, key: usize, why: Why) {
        if let Some(c) = self.conns.get_mut(key) {
            if c.phase != Phase::Dead {
                c.phase = Phase::Dead;
                self.dead.push((key, why));
            }
        }
    }

    /// Flushes pending output. Returns false if the connection died.
    fn flush(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.dirty = false;
        // A connection closing because its peer sent FIN still gets what was queued for it
        // (the peer may only have half-closed); it is closed at the end of the batch anyway.
        let dead = c.phase == Phase::Dead;
        while c.outpos < c.outbuf.len() {
            match (&c.stream).write(&c.outbuf[c.outpos..]) {
                Ok(0) => break,
                Ok(n) => c.outpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.kill(key, Why::Io);
                    return;
                }
            }
        }
        let pending = c.pending_out();
        if dead {
            return; // reaped at the end of the batch; no more bookkeeping
        }
        // Ask for writability only while something waits for it.
        if (pending > 0) != c.want_write {
            c.want_write = pending > 0;
            let interest = if c.want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .registry
                .reregister(&mut c.stream, Token(key), interest)
                .is_err()
            {
                self.kill(key, Why::Io);
                return;
            }
        }
        // Queue sizes in the shared table: written only while non-zero (and once when they
        // drop back to zero), not on every message.
        if pending > 0 || c.queue_reported {
            let recv = c.inbuf.len();
            self.table.set_queued(self.region, key, recv, pending);
            c.queue_reported = pending > 0 || recv > 0;
        }
        if pending == 0 {
            let b = std::mem::take(&mut c.outbuf);
            c.outpos = 0;
            let draining = c.phase == Phase::Draining;
            self.give_buf(b);
            if draining {
                self.linger(key);
            }
        } else {
            // Compact once at least half is written, so the buffer does not grow forever.
            if c.outpos > c.outbuf.len() / 2 {
                c.outbuf.drain(..c.outpos);
                c.outpos = 0;
            }
        }
        self.table.touch_send(self.region, key, self.now_ms);
    }

    /// After our last byte: send FIN and wait (briefly) for the peer's, so that the kernel does
    /// not answer unread input with a reset that could destroy our close frame in flight.
    fn linger(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.phase == Phase::Lingering {
            return;
        }
        c.phase = Phase::Lingering;
        if c.stream.shutdown(std::net::Shutdown::Write).is_err() {
            self.kill(key, Why::Done);
            return;
        }
        let fd = c.fd;
        self.push_deadline(self.now_ms + LINGER_MS, key, fd);
    }

    /// Starts the closing handshake from our side with `code` (always queued: a close frame
    /// is not subject to `buffer_output_size`).
    pub fn send_close(&mut self, key: usize, code: u16, reason: &str) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.phase != Phase::Ws {
            return;
        }
        if c.close.on_send_close() {
            let payload =
                close_payload(code, reason).unwrap_or_else(|_| code.to_be_bytes().to_vec());
            let frame = close_frame(&payload);
            self.table
                .set_status(self.region, key, WEBSOCKET_STATUS_CLOSING);
            self.queue(key, &frame, usize::MAX);
        }
    }

    /// Fails a connection: close frame with `code`, then closed once it is written.
    pub fn close_with(&mut self, key: usize, code: u16, reason: &str) {
        self.send_close(key, code, reason);
        self.kill_after_flush(key);
    }

    /// Encodes and queues a message for a local connection (`push`).
    pub fn push_local(
        &mut self,
        key: usize,
        data: &[u8],
        opcode: u8,
        flags: u8,
        limit: usize,
    ) -> bool {
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        if !c.can_send() {
            return false;
        }
        let fin = flags & FLAG_FIN != 0;
        let mut scratch;
        // Only whole data messages are compressed (RSV1 belongs to a message's first frame).
        let compress = flags & FLAG_COMPRESS != 0
            && fin
            && matches!(OpCode::from_u8(opcode), Some(OpCode::Text | OpCode::Binary));
        let (payload, rsv1): (&[u8], bool) = match (&mut c.deflater, compress) {
            (Some(d), true) => {
                scratch = self.pool.pop().unwrap_or_default();
                match d.deflater().compress(data, &mut scratch) {
                    Ok(()) => (&scratch[..], true),
                    Err(e) => {
                        log::warn!("fd {}: compression failed: {e}", c.fd);
                        return false;
                    }
                }
            }
            _ => {
                scratch = Vec::new();
                (data, false)
            }
        };
        let mut hdr = [0u8; 14];
        let n =
            crate::protocol::frame::encode_header(&mut hdr, fin, rsv1, opcode, payload.len(), None);
        // Large messages skip the copy into the output buffer when nothing is queued.
        let direct = payload.len() >= DIRECT_WRITE_MIN;
        let sent = self.send_frame(key, &hdr[..n], payload, limit, direct);
        if sent {
            self.messages_out += 1;
        }
        self.give_buf(scratch);
        sent
    }

    /// Sends an IPC message to `region`, queueing if its socket is full.
    pub fn send_ipc(&mut self, region: usize, body: Vec<u8>) -> bool {
        let tx = self.ipc_tx[region];
        match self.outbox.send(region, tx, body) {
            Ok(SendState::Done) => true,
            Ok(SendState::Queued) => {
                if !self.ipc_tx_registered[region] {
                    let token = Token(IPC_TX_BASE + region);
                    if self
                        .registry
                        .register(&mut SourceFd(&tx), token, Interest::WRITABLE)
                        .is_ok()
                    {
                        self.ipc_tx_registered[region] = true;
                    }
                }
                true
            }
            Err(e) => {
                log::error!("ipc to region {region} failed: {e}");
                false
            }
        }
    }

    /// The region currently serving `worker_id` (the newest ready one during a reload).
    pub fn region_for_worker(&self, worker_id: usize) -> Option<usize> {
        let cands = [worker_id, worker_id + self.worker_num];
        cands
            .into_iter()
            .filter(|&r| r < self.table.regions())
            .filter(|&r| {
                let h = self.table.region(r);
                h.pid.load(Ordering::Relaxed) != 0 && h.ready.load(Ordering::Relaxed) == 1
            })
            .max_by_key(|&r| self.table.region(r).started_ms.load(Ordering::Relaxed))
    }

    /// Regions with a running worker, other than ours.
    pub fn other_live_regions(&self) -> Vec<usize> {
        (0..self.table.regions())
            .filter(|&r| r != self.region && self.table.region(r).pid.load(Ordering::Relaxed) != 0)
            .collect()
    }

    fn sync_stats(&self) {
        let h = self.table.region(self.region);
        h.messages_in.store(self.messages_in, Ordering::Relaxed);
        h.messages_out.store(self.messages_out, Ordering::Relaxed);
        h.accepted.store(self.accepted, Ordering::Relaxed);
        h.closed.store(self.closed, Ordering::Relaxed);
        h.connections
            .store(self.conns.len() as u64, Ordering::Relaxed);
    }
}

/// Catches a panic from user code; logs it and returns `None`.
pub(crate) fn guarded<R>(what: &str, f: impl FnOnce() -> R) -> Option<R> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            log::error!("panic in {what}: {msg}");
            None
        }
    }
}

impl Server {
    /// The worker's runtime. Only called inside a worker.
    pub(crate) fn rt(&self) -> std::cell::RefMut<'_, Runtime> {
        std::cell::RefMut::map(self.rt.borrow_mut(), |o| {
            o.as_deref_mut()
                .expect("worker runtime is set before any event is processed")
        })
    }

    /// Entry point of a forked worker. Never returns.
    pub(crate) fn run_worker(mut self, boot: WorkerBoot) -> ! {
        let code = match self.worker_main(boot) {
            Ok(()) => 0,
            Err(e) => {
                log::error!("worker failed: {e}");
                1
            }
        };
        log::logger().flush();
        let _ = io::stdout().flush();
        std::process::exit(code)
    }

    fn worker_main(&mut self, boot: WorkerBoot) -> io::Result<()> {
        // Die with the master, even if it is killed with SIGKILL.
        // SAFETY: prctl with PR_SET_PDEATHSIG and a signal number.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        if nix::unistd::getppid().as_raw() != boot.master_pid {
            return Err(io::Error::other("master died before the worker started"));
        }
        // The inherited handlers are harmless (detached from the master's pipe); they are
        // replaced here without a window of default dispositions.
        signals::reset(&[Signal::SIGCHLD]);
        let sig = SignalPipe::install(&[Signal::SIGTERM, Signal::SIGINT, Signal::SIGUSR2])?;
        let ign = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::SigIgn,
            nix::sys::signal::SaFlags::empty(),
            nix::sys::signal::SigSet::empty(),
        );
        for s in [Signal::SIGUSR1, Signal::SIGHUP] {
            // SAFETY: ignoring these signals in the worker.
            let _ = unsafe { nix::sys::signal::sigaction(s, &ign) };
        }
        let table = self.table.ok_or_else(|| io::Error::other("no table"))?;
        let region = boot.region;
        table.reset_region(region);
        let mut poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let mut listeners = Vec::new();
        for (pi, l) in boot.listeners.iter().enumerate() {
            for (owner, &raw) in l.per_worker.iter().enumerate() {
                // SAFETY: the master passed listening sockets it keeps open for the life of
                // the server; this process owns its inherited copies of the descriptors.
                let std_l = unsafe { std::net::TcpListener::from_raw_fd(raw) };
                let mut sock = TcpListener::from_std(std_l);
                let mine = owner == boot.worker_id;
                if mine {
                    let token = Token(LISTENER_BASE + listeners.len());
                    registry.register(&mut sock, token, Interest::READABLE)?;
                }
                listeners.push(ListenerRt {
                    sock,
                    port_idx: pi,
                    owner,
                    server_fd: raw,
                    registered: mine,
                });
            }
        }
        let ports = boot
            .listeners
            .iter()
            .map(|l| (l.port, l.websocket))
            .collect();
        registry.register(
            &mut SourceFd(&boot.ipc_rx),
            TOKEN_IPC_RX,
            Interest::READABLE,
        )?;
        registry.register(&mut SourceFd(&sig.fd()), TOKEN_SIGNAL, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(&registry, TOKEN_WAKER)?);
        let (handle_tx, handle_rx) = crossbeam_channel::unbounded();
        let regions = table.regions();
        let slots = table.slots_per_region();
        let now = now_ms();
        let st = &self.settings;
        let rt = Runtime {
            worker_id: boot.worker_id,
            region,
            worker_num: regions / 2,
            table,
            registry,
            conns: Slab::with_capacity(slots.min(1 << 20)),
            listeners,
            ports,
            rbuf: vec![0; READ_BUF],
            dirty: Vec::new(),
            dead: Vec::new(),
            more_input: Vec::new(),
            pool: Vec::new(),
            outbox: Outbox::new(region, regions),
            ipc_tx: boot.ipc_tx.clone(),
            ipc_tx_registered: vec![false; regions],
            ipc_rx: boot.ipc_rx,
            inbox: Some(Inbox::new(regions)),
            timers: Some(Timers::new()),
            deadlines: BinaryHeap::new(),
            now_ms: now,
            stopping: None,
            accept_retry_at: None,
            next_heartbeat: now + st.heartbeat_check_interval.unwrap_or(0) * 1000,
            next_ping: now
                + st.websocket_ping_interval
                    .map_or(0, |d| d.as_millis() as u64),
            next_sync: now + 1000,
            subprotocols: st.subprotocols(),
            handle_tx,
            handle_rx,
            waker,
            messages_in: 0,
            messages_out: 0,
            accepted: 0,
            closed: 0,
            slots,
        };
        *self.rt.borrow_mut() = Some(Box::new(rt));
        let h = table.region(region);
        h.worker_id.store(boot.worker_id as u32, Ordering::Relaxed);
        h.pid.store(std::process::id(), Ordering::Relaxed);
        h.started_ms.store(now, Ordering::Relaxed);
        h.ready.store(1, Ordering::Release);
        log::info!(
            "Worker#{} started (pid {})",
            boot.worker_id,
            std::process::id()
        );
        if let Some(cb) = &self.cb.on_worker_start {
            guarded("on_worker_start", || cb(self, boot.worker_id));
        }
        self.after_batch();
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            self.rt().now_ms = now_ms();
            for ev in events.iter() {
                match ev.token() {
                    Token(k) if k < LISTENER_BASE => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.on_readable(k, ev.is_read_closed() || ev.is_error());
                        }
                        if ev.is_writable() {
                            self.rt().flush(k);
                        }
                    }
                    TOKEN_IPC_RX => self.on_ipc(),
                    TOKEN_WAKER => self.on_commands(),
                    TOKEN_SIGNAL => {
                        for s in sig.drain() {
                            match s {
                                Signal::SIGTERM | Signal::SIGINT => self.begin_stop(),
                                // From the master: a worker died or came back.
                                Signal::SIGUSR2 => self.adopt_orphans(),
                                _ => {}
                            }
                        }
                    }
                    Token(k) if k >= IPC_TX_BASE => {
                        let r = k - IPC_TX_BASE;
                        let mut rt = self.rt();
                        let tx = rt.ipc_tx[r];
                        let _ = rt.outbox.flush(r, tx);
                    }
                    Token(k) => self.accept_all(k - LISTENER_BASE),
                }
            }
            let more = std::mem::take(&mut self.rt().more_input);
            for k in more {
                self.on_readable(k, true);
            }
            self.on_timers();
            self.after_batch();
            let rt = self.rt();
            if let Some(deadline) = rt.stopping {
                if rt.conns.is_empty() || rt.now_ms >= deadline {
                    drop(rt);
                    break;
                }
            }
        }
        self.finish_stop();
        Ok(())
    }

    fn poll_timeout(&self) -> Option<Duration> {
        let rt = self.rt();
        if !self.deferred.borrow().is_empty() || !rt.more_input.is_empty() {
            return Some(Duration::ZERO);
        }
        let mut next = rt.next_sync;
        if let Some(d) = rt.timers.as_ref().and_then(|t| t.next_deadline()) {
            next = next.min(d);
        }
        if let Some(Reverse((d, _, _))) = rt.deadlines.peek() {
            next = next.min(*d);
        }
        for d in [rt.accept_retry_at, rt.stopping].into_iter().flatten() {
            next = next.min(d);
        }
        Some(Duration::from_millis(next.saturating_sub(rt.now_ms)))
    }

    /// Runs deferred work, flushes output and reaps closed connections until quiet.
    pub(crate) fn after_batch(&self) {
        for _ in 0..16 {
            let deferred = std::mem::take(&mut *self.deferred.borrow_mut());
            for f in deferred {
                guarded("defer", || f(self));
            }
            {
                let mut rt = self.rt();
                while let Some(k) = rt.dirty.pop() {
                    rt.flush(k);
                }
            }
            self.reap();
            let rt = self.rt();
            if rt.dirty.is_empty() && rt.dead.is_empty() && self.deferred.borrow().is_empty() {
                break;
            }
        }
    }

    fn accept_all(&self, li: usize) {
        let limit = self.settings.max_conn as u64;
        loop {
            let mut rt = self.rt();
            if rt.stopping.is_some() {
                return;
            }
            let res = rt.listeners[li].sock.accept();
            match res {
                Ok((mut stream, addr)) => {
                    let global = &rt.table.global().connections;
                    if global.load(Ordering::Relaxed) >= limit || rt.conns.len() >= rt.slots {
                        log::warn!("max_conn ({limit}) reached: refusing {addr}");
                        drop(stream);
                        continue;
                    }
                    global.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_nodelay(true);
                    let key = rt.conns.vacant_key();
                    let now = rt.now_ms;
                    let l = &rt.listeners[li];
                    let port_idx = l.port_idx;
                    use std::os::fd::AsRawFd;
                    let nc = NewConn {
                        remote: addr,
                        server_port: rt.ports[port_idx].0,
                        server_fd: l.server_fd,
                        socket_fd: stream.as_raw_fd(),
                        now_ms: now,
                    };
                    if let Err(e) =
                        rt.registry
                            .register(&mut stream, Token(key), Interest::READABLE)
                    {
                        log::warn!("register {addr}: {e}");
                        global.fetch_sub(1, Ordering::Relaxed);
                        continue;
                    }
                    let fd = rt.table.open(rt.region, key, &nc);
                    rt.conns.insert(Conn::new(stream, fd, port_idx as u8));
                    rt.accepted += 1;
                    let region = rt.region;
                    rt.table
                        .region(region)
                        .connections
                        .store(rt.conns.len() as u64, Ordering::Relaxed);
                    let deadline = now + self.settings.handshake_timeout.as_millis() as u64;
                    rt.push_deadline(deadline, key, fd);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: back off instead of spinning; the connection
                    // stays in the kernel queue.
                    log::error!("accept failed: {e}; retrying in 100 ms");
                    rt.accept_retry_at = Some(rt.now_ms + 100);
                    return;
                }
            }
        }
    }

    /// Reads what a connection sent. `hup`: the event also reported the peer's shutdown, so a
    /// short read does not mean drained (the EOF behind the data must still be read).
    fn on_readable(&self, key: usize, hup: bool) {
        // Fairness: at most this many full buffers per event; the rest is picked up after
        // the current batch (edge-triggered epoll will not report it again).
        let mut budget = 16;
        loop {
            if budget == 0 {
                self.rt().more_input.push(key);
                return;
            }
            budget -= 1;
            let mut guard = self.rt();
            let rt = &mut *guard;
            let Some(c) = rt.conns.get_mut(key) else {
                return;
            };
            let phase = c.phase;
            if phase == Phase::Dead {
                return;
            }
            let fd = c.fd;
            let mut buf = std::mem::take(&mut rt.rbuf);
            let res = (&c.stream).read(&mut buf);
            match res {
                Ok(0) => {
                    rt.rbuf = buf;
                    rt.kill(key, Why::PeerClosed);
                    return;
                }
                Ok(n) => {
                    let full = n == buf.len();
                    let now = rt.now_ms;
                    rt.table.touch_recv(rt.region, key, now);
                    if matches!(phase, Phase::Draining | Phase::Lingering) {
                        rt.rbuf = buf;
                        if !full && !hup {
                            return;
                        }
                        continue;
                    }
                    drop(guard);
                    match phase {
                        Phase::Http => self.on_http_input(key, fd, &buf[..n]),
                        _ => self.on_ws_input(key, fd, &mut buf[..n]),
                    }
                    self.rt().rbuf = buf;
                    if !full && !hup {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    rt.rbuf = buf;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    rt.rbuf = buf;
                }
                Err(_) => {
                    rt.rbuf = buf;
                    rt.kill(key, Why::Io);
                    return;
                }
            }
        }
    }

    fn on_ws_input(&self, key: usize, fd: Fd, fresh: &mut [u8]) {
        let (mut dec, mut held) = {
            let mut rt = self.rt();
            let Some(c) = rt.conn(key, fd) else { return };
            let Some(dec) = c.decoder.take() else { return };
            (dec, std::mem::take(&mut c.inbuf))
        };
        let use_held = !held.is_empty();
        if use_held {
            held.extend_from_slice(fresh);
        }
        let input: &mut [u8] = if use_held { &mut held } else { fresh };
        let mut pos = 0;
        let mut failure = None;
        loop {
            match dec.decode(&mut input[pos..]) {
                Ok((0, None)) => break,
                Ok((used, ev)) => {
                    pos += used;
                    if let Some(ev) = ev {
                        if !self.dispatch(key, fd, ev) {
                            break;
                        }
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let mut rt = self.rt();
        let rt = &mut *rt;
        let recv_pending;
        let (table, region) = (rt.table, rt.region);
        if let Some(c) = rt.conn(key, fd) {
            dec.shrink();
            c.decoder = Some(dec);
            if use_held {
                held.drain(..pos);
                c.inbuf = held;
            } else if pos < input.len() {
                c.inbuf.extend_from_slice(&input[pos..]);
            }
            if c.inbuf.is_empty() && c.inbuf.capacity() > 0 {
                c.inbuf = Vec::new();
            }
            recv_pending = c.inbuf.len();
            if recv_pending > 0 || c.queue_reported {
                let out = c.pending_out();
                table.set_queued(region, key, recv_pending, out);
                c.queue_reported = recv_pending > 0 || out > 0;
            }
        } else {
            return;
        }
        if let Some(e) = failure {
            log::info!(
                "fd {fd}: protocol error, closing with {}: {e}",
                e.close_code()
            );
            let code = e.close_code();
            rt.close_with(key, code, "");
        }
    }

    /// Handles one decoded event. Returns false when input processing must stop.
    fn dispatch(&self, key: usize, fd: Fd, ev: Event<'_>) -> bool {
        let st = &self.settings;
        match ev {
            Event::Message {
                opcode,
                data,
                compressed,
            } => {
                self.rt().messages_in += 1;
                let frame = Frame {
                    fd,
                    data,
                    opcode,
                    flags: FLAG_FIN | if compressed { FLAG_COMPRESS } else { 0 },
                    finish: true,
                    code: 0,
                    reason: "",
                };
                self.deliver(key, &frame);
            }
            Event::Ping(p) => {
                if st.open_websocket_ping_frame {
                    self.deliver(
                        key,
                        &Frame {
                            fd,
                            data: p,
                            opcode: OpCode::Ping,
                            flags: FLAG_FIN,
                            finish: true,
                            code: 0,
                            reason: "",
                        },
                    );
                } else {
                    let limit = st.buffer_output_size;
                    self.rt()
                        .push_local(key, p, OpCode::Pong.as_u8(), FLAG_FIN, limit);
                }
            }
            Event::Pong(p) => {
                if st.open_websocket_pong_frame {
                    self.deliver(
                        key,
                        &Frame {
                            fd,
                            data: p,
                            opcode: OpCode::Pong,
                            flags: FLAG_FIN,
                            finish: true,
                            code: 0,
                            reason: "",
                        },
                    );
                }
            }
            Event::Close { code, reason } => {
                if st.open_websocket_close_frame {
                    let mut payload = Vec::new();
                    if let Some(c) = code {
                        payload.extend_from_slice(&c.to_be_bytes());
                        payload.extend_from_slice(reason.as_bytes());
                    }
                    self.deliver(
                        key,
                        &Frame {
                            fd,
                            data: &payload,
                            opcode: OpCode::Close,
                            flags: FLAG_FIN,
                            finish: true,
                            code: code.unwrap_or(0),
                            reason,
                        },
                    );
                }
                let mut rt = self.rt();
                let Some(c) = rt.conn(key, fd) else {
                    return false;
                };
                if let Some(echo) = c.close.on_recv_close(code) {
                    // Peer closed first: echo its code, then close the TCP connection.
                    let payload = if code.is_some() {
                        echo.to_be_bytes().to_vec()
                    } else {
                        Vec::new()
                    };
                    let frame = close_frame(&payload);
                    rt.queue(key, &frame, usize::MAX);
                }
                rt.kill_after_flush(key);
                return false;
            }
        }
        let mut rt = self.rt();
        matches!(rt.conn(key, fd), Some(c) if c.phase == Phase::Ws)
    }

    /// Calls `on_message`, closing the connection with 1011 if it panics.
    fn deliver(&self, key: usize, frame: &Frame<'_>) {
        if let Some(cb) = &self.cb.on_message {
            if guarded("on_message", || cb(self, frame)).is_none() {
                let mut rt = self.rt();
                rt.close_with(key, 1011, "internal error");
            }
        }
    }

    fn on_http_input(&self, key: usize, fd: Fd, fresh: &[u8]) {
        {
            let mut rt = self.rt();
            let Some(c) = rt.conn(key, fd) else { return };
            c.inbuf.extend_from_slice(fresh);
        }
        // A keep-alive connection may have several pipelined requests: parse them at an
        // advancing offset and drop the consumed prefix once.
        let mut pos = 0;
        while self.handle_one_request(key, fd, &mut pos) {}
        let mut rt = self.rt();
        if let Some(c) = rt.conn(key, fd) {
            if c.phase == Phase::Http && pos > 0 {
                let n = pos.min(c.inbuf.len());
                c.inbuf.drain(..n);
            }
        }
    }

    /// Handles one complete request from the connection's input. Returns true if another may
    /// follow on the same connection.
    fn handle_one_request(&self, key: usize, fd: Fd, pos: &mut usize) -> bool {
        let st = &self.settings;
        let mut rt = self.rt();
        let Some(c) = rt.conn(key, fd) else {
            return false;
        };
        if c.phase != Phase::Http || c.inbuf.len() <= *pos {
            return false;
        }
        let listener = c.listener as usize;
        let parsed = handshake::parse_request(&c.inbuf[*pos..], st.max_header_size);
        let (http, head_len) = match parsed {
            Ok(Some(p)) => p,
            Ok(None) => return false,
            Err(e) => {
                log::info!("fd {fd}: bad request ({e}), answering {}", e.status());
                let resp = e.response();
                rt.respond_and_close(key, &resp);
                return false;
            }
        };
        let ws_port = rt.ports[listener].1;
        let upgrade = ws_port && http.is_websocket_upgrade();
        let body_len = if upgrade { 0 } else { http.content_length };
        if body_len > st.package_max_length {
            log::info!("fd {fd}: request body of {body_len} bytes is too large, answering 413");
            let resp = handshake::build_response(
                413,
                &[("Connection".into(), "close".into())],
                b"Payload Too Large",
            );
            rt.respond_and_close(key, &resp);
            return false;
        }
        let c = &mut rt.conns[key];
        let start = *pos;
        if c.inbuf.len() < start + head_len + body_len {
            return false;
        }
        let body = c.inbuf[start + head_len..start + head_len + body_len].to_vec();
        *pos = start + head_len + body_len;
        if upgrade {
            // What follows the upgrade request is WebSocket input.
            c.inbuf.drain(..*pos);
            *pos = 0;
        }
        let remote = c
            .stream
            .peer_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let port = rt.ports[listener].0;
        drop(rt);
        let mut request = Request::new(fd, remote, port, http);
        request.body = body;
        if upgrade {
            self.upgrade(key, fd, request);
            false
        } else {
            self.http_request(key, fd, request)
        }
    }

    fn http_request(&self, key: usize, fd: Fd, request: Request) -> bool {
        let Some(cb) = &self.cb.on_request else {
            let resp = handshake::build_response(
                400,
                &[
                    ("Connection".into(), "close".into()),
                    ("Content-Type".into(), "text/html".into()),
                ],
                b"<html><body><h2>400 Bad Request</h2></body></html>",
            );
            self.rt().respond_and_close(key, &resp);
            return false;
        };
        let mut resp = Response::default();
        if guarded("on_request", || cb(self, &request, &mut resp)).is_none() {
            resp = Response::default();
            resp.status(500).write("Internal Server Error");
        }
        let keep = request.http.keep_alive() && !resp.close && self.rt().stopping.is_none();
        let mut headers = resp.headers.clone();
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("connection"))
        {
            headers.push((
                "Connection".into(),
                if keep { "keep-alive" } else { "close" }.into(),
            ));
        }
        let bytes = handshake::build_response(resp.status, &headers, &resp.body);
        let mut rt = self.rt();
        if rt.conn(key, fd).is_none() {
            return false;
        }
        if keep {
            // Pipelined requests from a client that does not read are bounded like pushes.
            if !rt.queue(key, &bytes, self.settings.buffer_output_size) {
                return false;
            }
            let deadline = rt.now_ms + self.settings.handshake_timeout.as_millis() as u64;
            rt.push_deadline(deadline, key, fd);
            true
        } else {
            rt.respond_and_close(key, &bytes);
            false
        }
    }

    fn upgrade(&self, key: usize, fd: Fd, request: Request) {
        let st = &self.settings;
        {
            // websocket_status 2 while the handshake is decided (visible to on_handshake).
            let rt = self.rt();
            rt.table
                .set_status(rt.region, key, WEBSOCKET_STATUS_HANDSHAKE);
        }
        if let Some(cb) = &self.cb.on_handshake {
            let mut resp = Response::default();
            if guarded("on_handshake", || cb(self, &request, &mut resp)).is_none() {
                resp = Response::default();
                resp.status(500);
            }
            if resp.status != 101 {
                let bytes =
                    handshake::build_response(resp.status, &with_close(&resp.headers), &resp.body);
                log::info!(
                    "fd {fd}: handshake refused by on_handshake with {}",
                    resp.status
                );
                self.rt().respond_and_close(key, &bytes);
                return;
            }
            let mut head = String::from("HTTP/1.1 101 Switching Protocols\r\n");
            for (k, v) in &resp.headers {
                head.push_str(k);
                head.push_str(": ");
                head.push_str(v);
                head.push_str("\r\n");
            }
            head.push_str("\r\n");
            self.establish(key, fd, head.as_bytes(), None);
            self.pending_ws_input(key, fd);
            return;
        }
        let up = match handshake::validate_upgrade(&request.http) {
            Ok(up) => up,
            Err(e) => {
                log::info!(
                    "fd {fd}: handshake rejected ({e}), answering {}",
                    e.status()
                );
                self.rt().respond_and_close(key, &e.response());
                return;
            }
        };
        let rt = self.rt();
        let protocol =
            handshake::select_subprotocol(&up.protocols, &rt.subprotocols).map(str::to_string);
        drop(rt);
        let pmd = if st.websocket_compression {
            up.extensions.as_deref().and_then(deflate::negotiate)
        } else {
            None
        };
        let resp = handshake::build_101(
            &handshake::accept_key(&up.key),
            protocol.as_deref(),
            pmd.as_ref().map(|(_, s)| s.as_str()),
            &[],
        );
        self.establish(key, fd, &resp, pmd.map(|(cfg, _)| cfg));
        if let Some(cb) = &self.cb.on_open {
            if guarded("on_open", || cb(self, &request)).is_none() {
                let mut rt = self.rt();
                rt.close_with(key, 1011, "internal error");
                return;
            }
        }
        self.pending_ws_input(key, fd);
    }

    /// Frames the client sent right behind its upgrade request.
    fn pending_ws_input(&self, key: usize, fd: Fd) {
        let pending = {
            let mut rt = self.rt();
            match rt.conn(key, fd) {
                Some(c) if !c.inbuf.is_empty() && c.phase == Phase::Ws => {
                    std::mem::take(&mut c.inbuf)
                }
                _ => Vec::new(),
            }
        };
        if !pending.is_empty() {
            let mut p = pending;
            self.on_ws_input(key, fd, &mut p);
        }
    }

    /// Switches a connection to WebSocket after writing `response` (the 101).
    fn establish(&self, key: usize, fd: Fd, response: &[u8], pmd: Option<deflate::DeflateConfig>) {
        let st = &self.settings;
        let mut rt = self.rt();
        let rt = &mut *rt;
        let Some(c) = rt.conn(key, fd) else { return };
        if c.phase != Phase::Http {
            return; // closed by a callback meanwhile
        }
        c.phase = Phase::Ws;
        c.upgraded = true;
        let mut dec = MessageDecoder::new(DecoderConfig {
            max_message_size: st.package_max_length,
            require_mask: true,
        });
        if let Some(cfg) = &pmd {
            dec.set_inflater(Some(Inflater::new(cfg)));
            c.deflater = Some(Box::new(Compression::Negotiated(*cfg)));
        }
        c.decoder = Some(dec);
        rt.table.set_status(rt.region, key, WEBSOCKET_STATUS_ACTIVE);
        rt.queue(key, response, usize::MAX);
        if rt.stopping.is_some() {
            // Shutting down or reloading: the handshake succeeds, then the client is told to
            // reconnect (to the replacement worker).
            rt.send_close(key, 1001, "server shutdown");
        }
    }

    fn on_ipc(&self) {
        let (mut inbox, rx) = {
            let mut rt = self.rt();
            let Some(i) = rt.inbox.take() else { return };
            (i, rt.ipc_rx)
        };
        let res = inbox.drain(rx, |body| match Msg::decode(body) {
            Some(m) => self.apply_ipc(m),
            None => log::warn!("ipc: malformed message of {} bytes dropped", body.len()),
        });
        if let Err(e) = res {
            log::error!("ipc receive failed: {e}");
        }
        self.rt().inbox = Some(inbox);
    }

    fn apply_ipc(&self, m: Msg<'_>) {
        match m {
            Msg::Push {
                fd,
                opcode,
                flags,
                data,
            } => {
                if let Some(op) = OpCode::from_u8(opcode) {
                    self.push(fd, data, op, flags);
                }
            }
            Msg::Disconnect { fd, code: 0, .. } => {
                self.close(fd);
            }
            Msg::Disconnect { fd, code, reason } => {
                self.disconnect(fd, code, std::str::from_utf8(reason).unwrap_or(""));
            }
            Msg::Broadcast { frame, only } => self.broadcast_local(frame, only.as_deref()),
            Msg::User { from_worker, data } => {
                if let Some(cb) = &self.cb.on_pipe_message {
                    guarded("on_pipe_message", || cb(self, from_worker as usize, data));
                }
            }
        }
    }

    /// Writes an already encoded frame to every established local connection (or the listed).
    pub(crate) fn broadcast_local(&self, frame: &[u8], only: Option<&[Fd]>) {
        let limit = self.settings.buffer_output_size;
        let mut rt = self.rt();
        let keys: Vec<usize> = match only {
            Some(fds) => fds
                .iter()
                .filter_map(|&fd| {
                    let (r, s) = rt.table.live_slot(fd)?;
                    (r == rt.region).then_some(s)
                })
                .collect(),
            None => rt
                .conns
                .iter()
                .filter(|(_, c)| c.can_send())
                .map(|(k, _)| k)
                .collect(),
        };
        let n = keys.len() as u64;
        for k in keys {
            if rt.conns.get(k).is_some_and(|c| c.can_send()) {
                rt.write_or_queue(k, frame, limit);
            }
        }
        rt.messages_out += n;
    }

    fn on_commands(&self) {
        let cmds: Vec<Command> = {
            let rt = self.rt();
            rt.handle_rx.try_iter().collect()
        };
        for c in cmds {
            c.apply(self);
        }
    }

    fn on_timers(&self) {
        let now = self.rt().now_ms;
        loop {
            let due = {
                let mut rt = self.rt();
                rt.timers.as_mut().and_then(|t| t.pop_due(now))
            };
            let Some((id, mut cb)) = due else { break };
            guarded("timer", || cb(self, id));
            if let Some(t) = self.rt().timers.as_mut() {
                t.restore(now, id, cb);
            }
        }
        self.housekeeping(now);
    }

    /// Deadlines (handshake, closing, linger), heartbeat, server pings, stats.
    fn housekeeping(&self, now: u64) {
        let mut guard = self.rt();
        let rt = &mut *guard;
        while let Some(Reverse((d, key, fd))) = rt.deadlines.peek().copied() {
            if d > now {
                break;
            }
            rt.deadlines.pop();
            let Some(c) = rt.conn(key, fd) else { continue };
            if c.deadline_ms > now {
                continue; // superseded by a later deadline
            }
            match c.phase {
                Phase::Http => {
                    log::info!(
                        "fd {fd}: no complete request within the handshake timeout, closing"
                    );
                    rt.kill(key, Why::HandshakeTimeout);
                }
                Phase::Ws if !c.close.can_send_data() => {
                    log::info!("fd {fd}: peer did not answer our close frame in time, closing");
                    rt.kill(key, Why::CloseTimeout);
                }
                Phase::Draining | Phase::Lingering => rt.kill(key, Why::Done),
                _ => {}
            }
        }
        // After an EMFILE back-off, retry the listeners that are ours to accept from.
        let retry: Vec<usize> = match rt.accept_retry_at {
            Some(at) if now >= at => {
                rt.accept_retry_at = None;
                (0..rt.listeners.len())
                    .filter(|&i| rt.listeners[i].registered)
                    .collect()
            }
            _ => Vec::new(),
        };
        drop(guard);
        for i in retry {
            self.accept_all(i);
        }
        self.periodic(now);
    }

    /// Heartbeat, server pings, stats and listener adoption, each at its own interval.
    fn periodic(&self, now: u64) {
        let st = &self.settings;
        let mut guard = self.rt();
        let rt = &mut *guard;
        if let (Some(iv), Some(idle)) = (st.heartbeat_check_interval, st.idle_limit()) {
            if now >= rt.next_heartbeat {
                rt.next_heartbeat = now + iv.max(1) * 1000;
                let idle_ms = idle.as_millis() as u64;
                let stale: Vec<(usize, Fd)> = rt
                    .conns
                    .iter()
                    .filter(|(_, c)| matches!(c.phase, Phase::Ws | Phase::Http))
                    .filter(|(k, _)| {
                        now.saturating_sub(rt.table.last_recv_ms(rt.region, *k)) > idle_ms
                    })
                    .map(|(k, c)| (k, c.fd))
                    .collect();
                for (k, fd) in stale {
                    log::info!(
                        "fd {fd}: idle for more than {}s (heartbeat), closing",
                        idle.as_secs()
                    );
                    rt.close_with(k, 1000, "idle timeout");
                }
            }
        }
        if let Some(iv) = st.websocket_ping_interval {
            if now >= rt.next_ping {
                rt.next_ping = now + (iv.as_millis() as u64).max(1);
                let keys: Vec<usize> = rt
                    .conns
                    .iter()
                    .filter(|(_, c)| c.can_send())
                    .map(|(k, _)| k)
                    .collect();
                for k in keys {
                    rt.push_local(
                        k,
                        b"",
                        OpCode::Ping.as_u8(),
                        FLAG_FIN,
                        st.buffer_output_size,
                    );
                }
            }
        }
        if now >= rt.next_sync {
            rt.next_sync = now + 1000;
            rt.sync_stats();
            drop(guard);
            self.adopt_orphans();
        }
    }

    /// Registers the listening sockets of worker ids that have no running worker (so their
    /// queued connections are served while the master restarts it) and gives them back once
    /// their worker runs again.
    fn adopt_orphans(&self) {
        let mut guard = self.rt();
        let rt = &mut *guard;
        if rt.stopping.is_some() {
            return;
        }
        let mut newly = Vec::new();
        for i in 0..rt.listeners.len() {
            let owner = rt.listeners[i].owner;
            if owner == rt.worker_id {
                continue;
            }
            let orphan = rt.region_for_worker(owner).is_none();
            let l = &mut rt.listeners[i];
            if orphan && !l.registered {
                if rt
                    .registry
                    .register(&mut l.sock, Token(LISTENER_BASE + i), Interest::READABLE)
                    .is_ok()
                {
                    l.registered = true;
                    log::info!(
                        "Worker#{} serves the queue of Worker#{owner} while it is down",
                        rt.worker_id
                    );
                    newly.push(i);
                }
            } else if !orphan && l.registered {
                let _ = rt.registry.deregister(&mut l.sock);
                l.registered = false;
            }
        }
        drop(guard);
        for i in newly {
            self.accept_all(i);
        }
    }

    /// Removes dead connections and runs their close callbacks.
    fn reap(&self) {
        loop {
            let (key, fd, upgraded, why) = {
                let mut rt = self.rt();
                let Some((key, why)) = rt.dead.pop() else {
                    break;
                };
                let Some(c) = rt.conns.get(key) else {
                    continue;
                };
                (key, c.fd, c.upgraded, why)
            };
            log::debug!("fd {fd} closed ({why:?})");
            // The callback runs while the connection's context and table entry still exist
            // (Swoole/Hyperf clean-up code reads them in onClose); pushes to it fail.
            let cb = if upgraded {
                &self.cb.on_close
            } else {
                &self.cb.on_disconnect
            };
            if let Some(cb) = cb {
                guarded("on_close", || cb(self, fd));
            }
            let removed = {
                let mut rt = self.rt();
                let rt = &mut *rt;
                let Some(mut c) = rt.conns.try_remove(key) else {
                    continue;
                };
                let _ = rt.registry.deregister(&mut c.stream);
                rt.table.close(rt.region, key);
                rt.table
                    .global()
                    .connections
                    .fetch_sub(1, Ordering::Relaxed);
                rt.closed += 1;
                let region = rt.region;
                rt.table
                    .region(region)
                    .connections
                    .store(rt.conns.len() as u64, Ordering::Relaxed);
                let b = std::mem::take(&mut c.outbuf);
                rt.give_buf(b);
                c
            };
            // User values in the context are dropped outside the runtime borrow.
            drop(removed);
        }
    }

    /// SIGTERM: stop accepting, `on_worker_stop`, close 1001 to every client, then wait up to
    /// `max_wait_time` for the closing handshakes.
    fn begin_stop(&self) {
        {
            let mut rt = self.rt();
            if rt.stopping.is_some() {
                return;
            }
            let rt = &mut *rt;
            for l in rt.listeners.iter_mut().filter(|l| l.registered) {
                let _ = rt.registry.deregister(&mut l.sock);
                l.registered = false;
            }
            rt.table.region(rt.region).ready.store(0, Ordering::Relaxed);
            rt.stopping = Some(rt.now_ms + self.settings.max_wait_time.as_millis() as u64);
            log::info!("Worker#{} stopping", rt.worker_id);
        }
        if let Some(cb) = &self.cb.on_worker_stop {
            let id = self.rt().worker_id;
            guarded("on_worker_stop", || cb(self, id));
        }
        let mut rt = self.rt();
        let keys: Vec<(usize, Phase)> = rt.conns.iter().map(|(k, c)| (k, c.phase)).collect();
        // Connections still in their HTTP request are served (a handshake in flight must not
        // fail during a reload); `upgrade` then closes them with 1001 right away.
        for (k, phase) in keys {
            if phase == Phase::Ws {
                rt.send_close(k, 1001, "server shutdown");
            }
        }
    }

    fn finish_stop(&self) {
        {
            let mut rt = self.rt();
            let keys: Vec<usize> = rt.conns.iter().map(|(k, _)| k).collect();
            for k in keys {
                rt.flush(k);
                rt.kill(k, Why::Shutdown);
            }
        }
        self.reap();
        let mut rt = self.rt();
        // Best effort: messages for other workers still queued here.
        for r in 0..rt.ipc_tx.len() {
            let tx = rt.ipc_tx[r];
            let _ = rt.outbox.flush(r, tx);
        }
        rt.sync_stats();
        let h = rt.table.region(rt.region);
        h.pid.store(0, Ordering::Relaxed);
        h.ready.store(0, Ordering::Relaxed);
        log::info!("Worker#{} stopped", rt.worker_id);
    }
}

impl Runtime {
    /// Sends an HTTP response and closes after it is written.
    fn respond_and_close(&mut self, key: usize, bytes: &[u8]) {
        self.queue(key, bytes, usize::MAX);
        self.kill_after_flush(key);
    }

    /// Closes once pending output is written (with a lingering close).
    pub fn kill_after_flush(&mut self, key: usize) {
        let now = self.now_ms;
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if matches!(c.phase, Phase::Dead | Phase::Draining | Phase::Lingering) {
            return;
        }
        c.phase = Phase::Draining;
        let fd = c.fd;
        if c.upgraded {
            // No longer established: `is_established` is false from now on.
            self.table
                .set_status(self.region, key, WEBSOCKET_STATUS_CLOSING);
        }
        let c = &self.conns[key];
        if c.pending_out() == 0 && !c.dirty {
            self.linger(key);
        } else {
            // Bound the wait for a client that does not read.
            self.push_deadline(now + LINGER_MS, key, fd);
        }
    }
}

impl Runtime {
    /// Sets the connection's one deadline (handshake, closing handshake or linger), replacing
    /// any earlier one.
    pub(crate) fn push_deadline(&mut self, at: u64, key: usize, fd: Fd) {
        if let Some(c) = self.conn(key, fd) {
            c.deadline_ms = at;
            self.deadlines.push(Reverse((at, key, fd)));
        }
    }
}

/// An unmasked close frame with `payload` (code + reason, or empty).
fn close_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 2);
    encode_frame(
        &mut frame,
        true,
        false,
        OpCode::Close.as_u8(),
        payload,
        None,
    );
    frame
}

fn with_close(h: &[(String, String)]) -> Vec<(String, String)> {
    let mut v = h.to_vec();
    v.push(("Connection".into(), "close".into()));
    v
}
