//! The connection table shared by every process of one server.
//!
//! The master maps it (`MAP_SHARED | MAP_ANONYMOUS`) before forking, so every worker sees the
//! same memory. The table is split into *regions*; a running worker owns one region and is the
//! only writer of its slots. There are `2 * worker_num` regions so that during a rolling reload
//! the replacement worker writes a fresh region while the old one drains its own.
//!
//! A connection id (`fd`) encodes `(generation, slot, region)`:
//! `fd = (gen * slots + slot) * regions + region + 1`, so the owner is found in O(1) and a slot
//! reused later gets another generation, hence another fd: a stale fd never names a newer
//! connection. Generations live in the table and survive worker restarts.
//!
//! Readers use the slot's `fd` word as a seqlock: the owner clears it, writes the other fields,
//! then publishes the fd with `Release`; a reader loads the fd (`Acquire`), the fields, then the
//! fd again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Name of the memfd that holds the table (visible in `/proc/<pid>/fd`).
pub const TABLE_NAME: &str = "prefork-ws-table";

/// Connection id, unique for the life of the server (Swoole's `$fd`).
pub type Fd = u64;

/// Status bit of a slot whose connection was handed to the worker in the sibling region
/// (`region ± worker_num`) during a reload: the slot still names the fd, so that messages for
/// it find their way, but the connection lives in the sibling slot of the same index.
const MOVED: u32 = 1 << 9;
const V6: u32 = 1 << 8;

/// A slot's connection fields, as handed from worker to worker with the connection (so that
/// `connection_info` does not change when a connection moves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SlotImage {
    pub connect_ms: u64,
    pub last_recv_ms: u64,
    pub last_send_ms: u64,
    pub ip_hi: u64,
    pub ip_lo: u64,
    pub status: u32,
    pub remote_port: u32,
    pub server_port: u32,
    pub socket_fd: u32,
    pub server_fd: u32,
}

/// One connection's shared state. Every field is an atomic so concurrent reads are defined.
#[repr(C)]
pub(crate) struct Slot {
    fd: AtomicU64,
    gen: AtomicU64,
    connect_ms: AtomicU64,
    last_recv_ms: AtomicU64,
    last_send_ms: AtomicU64,
    ip_hi: AtomicU64,
    ip_lo: AtomicU64,
    /// websocket_status (low byte) | ipv6 flag (bit 8) | moved flag (bit 9, see `MOVED`)
    status: AtomicU32,
    remote_port: AtomicU32,
    server_port: AtomicU32,
    socket_fd: AtomicU32,
    server_fd: AtomicU32,
    send_queued: AtomicU32,
    recv_queued: AtomicU32,
    _pad: AtomicU32,
}

/// Per-region (per running worker) header: who owns it and its counters.
#[repr(C)]
pub(crate) struct RegionHeader {
    pub pid: AtomicU32,
    /// 1 once the worker's reactor is running and accepting.
    pub ready: AtomicU32,
    pub worker_id: AtomicU32,
    /// Set by the master before it stops this region's worker in a reload or an upgrade: the
    /// region (+ 1) its connections are to be handed to; 0: close them (a plain stop).
    pub handoff_to: AtomicU32,
    pub started_ms: AtomicU64,
    pub connections: AtomicU64,
    pub accepted: AtomicU64,
    pub closed: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    /// Turns of the worker's event loop (the watchdog's heartbeat).
    pub loop_turns: AtomicU64,
    /// Messages to other workers refused because their queue was at `pipe_buffer_size`.
    pub ipc_skipped: AtomicU64,
    /// Bytes read from and handed out to clients.
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Bytes waiting in the IPC queues toward other workers.
    pub ipc_queued: AtomicU64,
    /// Closes by reason (see `metrics::CLOSE_REASONS`).
    pub closes: [AtomicU64; crate::runtime::metrics::CLOSE_REASONS.len()],
    /// Handshakes and requests refused, by status (see `metrics::REFUSED_STATUSES`).
    pub refused: [AtomicU64; crate::runtime::metrics::REFUSED_STATUSES.len() + 1],
}

/// Whole-server header.
#[repr(C)]
pub(crate) struct GlobalHeader {
    pub regions: AtomicU32,
    pub slots: AtomicU32,
    pub master_pid: AtomicU32,
    pub worker_num: AtomicU32,
    pub started_ms: AtomicU64,
    /// Connections currently open on the whole server (max_conn is enforced against it).
    pub connections: AtomicU64,
    pub reloads: AtomicU64,
    pub worker_restarts: AtomicU64,
    /// A binary upgrade: 0 none, then `UPGRADE_*` (see `master::upgrade`).
    pub upgrade: AtomicU32,
    /// The new master's pid during and after an upgrade.
    pub upgrade_pid: AtomicU32,
    /// `LAYOUT`: a new binary maps an inherited table only if it lays it out the same way.
    pub layout: AtomicU32,
    pub _pad: AtomicU32,
}

/// `RegionHeader::ready`: running and serving (what other workers route to).
pub(crate) const READY: u32 = 1;
/// `RegionHeader::ready`: running, waiting for its predecessor's connections (a reload or
/// an upgrade may hand them over; other workers still route to the predecessor).
pub(crate) const READY_ADOPTING: u32 = 2;

/// Version of the table's layout (bumped whenever a header or slot changes).
pub(crate) const LAYOUT: u32 = 0x5057_0002;

/// Snapshot of one connection, what `connection_info` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionInfo {
    /// Connection id.
    pub fd: Fd,
    /// 1 connection, 2 handshake, 3 active, 4 closing
    pub websocket_status: u8,
    /// Peer IP address.
    pub remote_ip: String,
    /// Peer port.
    pub remote_port: u16,
    /// Port of the listener that accepted the connection.
    pub server_port: u16,
    /// Kernel descriptor of the listening socket that accepted the connection.
    pub server_fd: i32,
    /// Kernel descriptor of the connection inside its worker.
    pub socket_fd: i32,
    /// Unix seconds.
    pub connect_time: u64,
    /// Unix seconds of the last receive (Swoole's `last_time`).
    pub last_time: u64,
    /// Unix seconds, with milliseconds.
    pub last_recv_time: f64,
    /// Unix seconds, with milliseconds, of the last write to the socket.
    pub last_send_time: f64,
    /// Received bytes waiting for the rest of their frame.
    pub recv_queued_bytes: u32,
    /// Bytes waiting to be written to the client.
    pub send_queued_bytes: u32,
    /// Worker that owns the connection.
    pub worker_id: usize,
}

/// Counters of one worker, part of [`Stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    /// Worker id (0-based).
    pub worker_id: usize,
    /// Process id of the worker.
    pub pid: u32,
    /// Unix milliseconds when the worker started.
    pub started_ms: u64,
    /// Connections open on this worker.
    pub connections: u64,
    /// Connections accepted since it started.
    pub accepted: u64,
    /// Connections closed since it started.
    pub closed: u64,
    /// Messages received (whole messages, after reassembly).
    pub messages_in: u64,
    /// Messages sent (pushes and broadcast deliveries).
    pub messages_out: u64,
    /// Messages to other workers refused at `pipe_buffer_size`.
    pub ipc_skipped: u64,
}

/// Whole-server statistics (`stats()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Process id of the master.
    pub master_pid: u32,
    /// Unix milliseconds when the server started.
    pub start_time_ms: u64,
    /// Connections open on the whole server.
    pub connection_num: u64,
    /// Connections accepted by the workers now running (and those before them in the region).
    pub accept_count: u64,
    /// Connections closed, counted the same way.
    pub close_count: u64,
    /// Rolling reloads requested (`SIGUSR1`).
    pub reload_count: u64,
    /// Workers restarted after dying.
    pub worker_restarts: u64,
    /// The running workers, by worker id.
    pub workers: Vec<WorkerStats>,
}

/// What the owner writes when a connection is accepted.
pub(crate) struct NewConn {
    pub remote: SocketAddr,
    pub server_port: u16,
    pub server_fd: i32,
    pub socket_fd: i32,
    pub now_ms: u64,
}

/// Handle to the shared table; cheap to copy, valid in every process forked after creation.
#[derive(Clone, Copy)]
pub(crate) struct SharedTable {
    base: NonNull<u8>,
    /// The memfd (-1 for a table mapped from a path by a tool).
    mfd: i32,
    regions: usize,
    slots: usize,
}

// SAFETY: the mapping lives until process exit and every field is atomic.
unsafe impl Send for SharedTable {}
unsafe impl Sync for SharedTable {}

const fn align64(n: usize) -> usize {
    (n + 63) & !63
}

impl SharedTable {
    /// Maps a table for `regions` regions of `slots` slots. Memory is touched lazily, so a large
    /// `slots` costs address space, not RSS.
    ///
    /// The memory is a `memfd` named [`TABLE_NAME`], so that a control tool can map the same
    /// table through `/proc/<master pid>/fd/`.
    pub fn create(regions: usize, slots: usize) -> std::io::Result<SharedTable> {
        let len = Self::byte_len(regions, slots);
        let name = std::ffi::CString::new(TABLE_NAME).map_err(std::io::Error::other)?;
        // SAFETY: memfd_create with a valid C string; the fd is checked.
        let mfd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
        if mfd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: mfd is a fresh descriptor we own; it is kept open for the life of the process.
        if unsafe { libc::ftruncate(mfd, len as libc::off_t) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let t = Self::map(mfd, len, regions, slots)?;
        t.global().regions.store(regions as u32, Ordering::Relaxed);
        t.global().slots.store(slots as u32, Ordering::Relaxed);
        t.global().layout.store(LAYOUT, Ordering::Relaxed);
        Ok(t)
    }

    /// The memfd behind the table (kept open for the life of the process that created or
    /// inherited it), to pass to a new master in a binary upgrade.
    pub fn memfd(&self) -> i32 {
        self.mfd
    }

    /// Maps the table of the master this process replaces (a binary upgrade), from the memfd
    /// it inherited; an error unless the table is laid out as this build lays it out.
    pub fn inherit(mfd: i32) -> std::io::Result<SharedTable> {
        let len = std::mem::size_of::<GlobalHeader>();
        let head = Self::map(mfd, len, 1, 1)?;
        let g = head.global();
        let (regions, slots, layout) = (
            g.regions.load(Ordering::Relaxed) as usize,
            g.slots.load(Ordering::Relaxed) as usize,
            g.layout.load(Ordering::Relaxed),
        );
        // SAFETY: unmapping the header-only mapping made just above.
        unsafe { libc::munmap(head.base.as_ptr().cast(), len) };
        if layout != LAYOUT || regions == 0 || slots == 0 {
            return Err(std::io::Error::other(
                "the running server's table has another layout (a different version)",
            ));
        }
        Self::map(mfd, Self::byte_len(regions, slots), regions, slots)
    }

    /// Maps the table of a running server from a path to its memfd (read-mostly use by tools).
    pub fn open_path(path: &std::path::Path) -> std::io::Result<SharedTable> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let len = f.metadata()?.len() as usize;
        if len < std::mem::size_of::<GlobalHeader>() {
            return Err(std::io::Error::other("not a prefork-ws table"));
        }
        use std::os::fd::AsRawFd;
        let head = Self::map(f.as_raw_fd(), std::mem::size_of::<GlobalHeader>(), 1, 1)?;
        let (regions, slots) = (
            head.global().regions.load(Ordering::Relaxed) as usize,
            head.global().slots.load(Ordering::Relaxed) as usize,
        );
        if regions == 0 || slots == 0 || Self::byte_len(regions, slots) > len {
            return Err(std::io::Error::other("not a prefork-ws table"));
        }
        let mut t = Self::map(
            f.as_raw_fd(),
            Self::byte_len(regions, slots),
            regions,
            slots,
        )?;
        t.mfd = -1; // the file is closed on return; the mapping stays
        Ok(t)
    }

    fn map(fd: i32, len: usize, regions: usize, slots: usize) -> std::io::Result<SharedTable> {
        // SAFETY: shared mapping of a descriptor we hold, checked for MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| std::io::Error::other("mmap"))?;
        Ok(SharedTable {
            base,
            mfd: fd,
            regions,
            slots,
        })
    }

    fn byte_len(regions: usize, slots: usize) -> usize {
        Self::slots_offset(regions) + regions * slots * std::mem::size_of::<Slot>()
    }

    fn slots_offset(regions: usize) -> usize {
        align64(std::mem::size_of::<GlobalHeader>())
            + align64(regions * std::mem::size_of::<RegionHeader>())
    }

    pub fn regions(&self) -> usize {
        self.regions
    }

    pub fn slots_per_region(&self) -> usize {
        self.slots
    }

    pub fn global(&self) -> &GlobalHeader {
        // SAFETY: offset 0 is inside the mapping; all-zero is a valid GlobalHeader.
        unsafe { &*self.base.as_ptr().cast::<GlobalHeader>() }
    }

    pub fn region(&self, r: usize) -> &RegionHeader {
        assert!(r < self.regions);
        let off = align64(std::mem::size_of::<GlobalHeader>());
        // SAFETY: r < regions, headers are laid out contiguously after the global header.
        unsafe { &*self.base.as_ptr().add(off).cast::<RegionHeader>().add(r) }
    }

    fn slot(&self, region: usize, slot: usize) -> &Slot {
        assert!(region < self.regions && slot < self.slots);
        let off = Self::slots_offset(self.regions);
        // SAFETY: bounds asserted above.
        unsafe {
            &*self
                .base
                .as_ptr()
                .add(off)
                .cast::<Slot>()
                .add(region * self.slots + slot)
        }
    }

    /// Decodes `(region, slot, gen)` from an fd; `None` when it cannot be one of ours.
    pub fn decode(&self, fd: Fd) -> Option<(usize, usize, u64)> {
        if fd == 0 {
            return None;
        }
        let v = fd - 1;
        let region = (v % self.regions as u64) as usize;
        let rest = v / self.regions as u64;
        let slot = (rest % self.slots as u64) as usize;
        let gen = rest / self.slots as u64;
        Some((region, slot, gen))
    }

    fn encode(&self, region: usize, slot: usize, gen: u64) -> Fd {
        (gen * self.slots as u64 + slot as u64) * self.regions as u64 + region as u64 + 1
    }

    /// The other region of the same worker id (where a reload's replacement runs).
    fn sibling(&self, region: usize) -> usize {
        let n = self.regions / 2;
        if n == 0 {
            region
        } else if region < n {
            region + n
        } else {
            region - n
        }
    }

    /// Where `fd` lives: the slot of its own region, or the same slot of the sibling region
    /// once it was handed over in a reload (the fd is kept). `moved` is whether only a
    /// `MOVED` slot names it (its hand-off message is on the way to the sibling).
    fn locate(&self, fd: Fd) -> Option<(usize, usize, bool)> {
        let (home, s, _) = self.decode(fd)?;
        let mut moved = None;
        for r in [home, self.sibling(home)] {
            let slot = self.slot(r, s);
            if slot.fd.load(Ordering::Acquire) != fd {
                continue;
            }
            if slot.status.load(Ordering::Acquire) & MOVED == 0 {
                return Some((r, s, false));
            }
            moved = Some(r);
        }
        moved.map(|r| (self.sibling(r), s, true))
    }

    /// The region to send messages for `fd` to: where it lives, or where it is being handed
    /// (no liveness check beyond that; `None` for a value that is no fd of ours).
    pub fn region_of(&self, fd: Fd) -> Option<usize> {
        match self.locate(fd) {
            Some((r, _, _)) => Some(r),
            None => self.decode(fd).map(|(r, _, _)| r),
        }
    }

    /// Region and slot of `fd` if it is live (or being handed to the sibling region, which is
    /// then named).
    pub fn live_slot(&self, fd: Fd) -> Option<(usize, usize)> {
        self.locate(fd).map(|(r, s, _)| (r, s))
    }

    /// The fields of a live slot, to hand over with its connection.
    pub fn image(&self, region: usize, slot: usize) -> SlotImage {
        let s = self.slot(region, slot);
        SlotImage {
            connect_ms: s.connect_ms.load(Ordering::Relaxed),
            last_recv_ms: s.last_recv_ms.load(Ordering::Relaxed),
            last_send_ms: s.last_send_ms.load(Ordering::Relaxed),
            ip_hi: s.ip_hi.load(Ordering::Relaxed),
            ip_lo: s.ip_lo.load(Ordering::Relaxed),
            status: s.status.load(Ordering::Relaxed) & !MOVED,
            remote_port: s.remote_port.load(Ordering::Relaxed),
            server_port: s.server_port.load(Ordering::Relaxed),
            socket_fd: s.socket_fd.load(Ordering::Relaxed),
            server_fd: s.server_fd.load(Ordering::Relaxed),
        }
    }

    /// Marks a slot whose connection was handed to the sibling region (see `MOVED`).
    pub fn mark_moved(&self, region: usize, slot: usize) {
        self.slot(region, slot)
            .status
            .fetch_or(MOVED, Ordering::Release);
    }

    /// Publishes a connection handed over from another worker under its own fd, with the
    /// fields it had there (`socket_fd` is this process's descriptor).
    pub fn adopt(&self, region: usize, slot: usize, fd: Fd, img: &SlotImage) {
        let s = self.slot(region, slot);
        s.fd.store(0, Ordering::Release);
        s.connect_ms.store(img.connect_ms, Ordering::Relaxed);
        s.last_recv_ms.store(img.last_recv_ms, Ordering::Relaxed);
        s.last_send_ms.store(img.last_send_ms, Ordering::Relaxed);
        s.ip_hi.store(img.ip_hi, Ordering::Relaxed);
        s.ip_lo.store(img.ip_lo, Ordering::Relaxed);
        s.status.store(img.status & !MOVED, Ordering::Relaxed);
        s.remote_port.store(img.remote_port, Ordering::Relaxed);
        s.server_port.store(img.server_port, Ordering::Relaxed);
        s.server_fd.store(img.server_fd, Ordering::Relaxed);
        s.socket_fd.store(img.socket_fd, Ordering::Relaxed);
        s.send_queued.store(0, Ordering::Relaxed);
        s.recv_queued.store(0, Ordering::Relaxed);
        s.fd.store(fd, Ordering::Release);
    }

    /// Whether slot (`region`, `slot`) holds no connection (a handed-over one can take it).
    pub fn slot_is_free(&self, region: usize, slot: usize) -> bool {
        slot < self.slots && self.slot(region, slot).fd.load(Ordering::Acquire) == 0
    }

    /// Claims `slot` of `region` for a new connection and returns its fresh fd.
    pub fn open(&self, region: usize, slot: usize, c: &NewConn) -> Fd {
        let s = self.slot(region, slot);
        let gen = s.gen.fetch_add(1, Ordering::Relaxed);
        let fd = self.encode(region, slot, gen);
        s.fd.store(0, Ordering::Release);
        let (hi, lo, v6) = match c.remote.ip() {
            IpAddr::V4(a) => (0, u32::from(a) as u64, 0),
            IpAddr::V6(a) => {
                let b = u128::from(a);
                ((b >> 64) as u64, b as u64, V6)
            }
        };
        s.ip_hi.store(hi, Ordering::Relaxed);
        s.ip_lo.store(lo, Ordering::Relaxed);
        s.status.store(
            v6 | crate::protocol::frame::WEBSOCKET_STATUS_CONNECTION as u32,
            Ordering::Relaxed,
        );
        s.remote_port
            .store(c.remote.port() as u32, Ordering::Relaxed);
        s.server_port.store(c.server_port as u32, Ordering::Relaxed);
        s.server_fd.store(c.server_fd as u32, Ordering::Relaxed);
        s.socket_fd.store(c.socket_fd as u32, Ordering::Relaxed);
        s.connect_ms.store(c.now_ms, Ordering::Relaxed);
        s.last_recv_ms.store(c.now_ms, Ordering::Relaxed);
        s.last_send_ms.store(0, Ordering::Relaxed);
        s.send_queued.store(0, Ordering::Relaxed);
        s.recv_queued.store(0, Ordering::Relaxed);
        s.fd.store(fd, Ordering::Release);
        fd
    }

    /// Like [`adopt`](SharedTable::adopt) when the connection cannot keep its fd: a fresh fd
    /// for slot (`region`, `slot`), the other fields as they were.
    pub fn adopt_fresh(&self, region: usize, slot: usize, img: &SlotImage) -> Fd {
        let gen = self.slot(region, slot).gen.fetch_add(1, Ordering::Relaxed);
        let fd = self.encode(region, slot, gen);
        self.adopt(region, slot, fd, img);
        fd
    }

    pub fn close(&self, region: usize, slot: usize) {
        let s = self.slot(region, slot);
        s.fd.store(0, Ordering::Release);
        s.status.store(0, Ordering::Relaxed);
    }

    /// Clears a region a dead worker left behind (its sockets died with it). Generations stay.
    pub fn reset_region(&self, region: usize) {
        for slot in 0..self.slots {
            let s = self.slot(region, slot);
            if s.fd.load(Ordering::Relaxed) != 0 {
                s.fd.store(0, Ordering::Release);
            }
        }
        let h = self.region(region);
        // Connections a dead worker held are no longer open: give them back to max_conn.
        let held = h.connections.swap(0, Ordering::Relaxed);
        let g = &self.global().connections;
        let _ = g.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n.saturating_sub(held))
        });
        h.ready.store(0, Ordering::Relaxed);
        h.handoff_to.store(0, Ordering::Relaxed);
    }

    pub fn set_status(&self, region: usize, slot: usize, status: u8) {
        let s = self.slot(region, slot);
        let flags = s.status.load(Ordering::Relaxed) & (V6 | MOVED);
        s.status.store(flags | status as u32, Ordering::Release);
    }

    pub fn touch_recv(&self, region: usize, slot: usize, now_ms: u64) {
        self.slot(region, slot)
            .last_recv_ms
            .store(now_ms, Ordering::Relaxed);
    }

    pub fn touch_send(&self, region: usize, slot: usize, now_ms: u64) {
        self.slot(region, slot)
            .last_send_ms
            .store(now_ms, Ordering::Relaxed);
    }

    pub fn set_queued(&self, region: usize, slot: usize, recv: usize, send: usize) {
        let s = self.slot(region, slot);
        s.recv_queued
            .store(recv.min(u32::MAX as usize) as u32, Ordering::Relaxed);
        s.send_queued
            .store(send.min(u32::MAX as usize) as u32, Ordering::Relaxed);
    }

    /// Live connections of region `r` by websocket_status (index 1 connection, 2 handshake,
    /// 3 active, 4 closing).
    pub fn count_by_status(&self, r: usize) -> [u64; 5] {
        let mut n = [0u64; 5];
        for s in 0..self.slots {
            let slot = self.slot(r, s);
            if slot.fd.load(Ordering::Acquire) == 0 {
                continue;
            }
            let status = slot.status.load(Ordering::Relaxed);
            if status & MOVED != 0 {
                continue;
            }
            let st = (status & 0xff) as usize;
            if let Some(c) = n.get_mut(st) {
                *c += 1;
            }
        }
        n
    }

    /// websocket_status of a live fd (0 when the fd is not live).
    pub fn status(&self, fd: Fd) -> u8 {
        match self.info(fd) {
            Some(i) => i.websocket_status,
            None => 0,
        }
    }

    /// Consistent snapshot of a live connection, from any process.
    pub fn info(&self, fd: Fd) -> Option<ConnectionInfo> {
        let (r, si, moved) = self.locate(fd)?;
        if moved {
            return None; // on its way to another worker: not live in any table slot now
        }
        let s = self.slot(r, si);
        for _ in 0..4 {
            if s.fd.load(Ordering::Acquire) != fd {
                return None;
            }
            let status = s.status.load(Ordering::Acquire);
            if status & MOVED != 0 {
                return None;
            }
            let (hi, lo) = (
                s.ip_hi.load(Ordering::Relaxed),
                s.ip_lo.load(Ordering::Relaxed),
            );
            let ip: IpAddr = if status & V6 != 0 {
                IpAddr::V6(Ipv6Addr::from(((hi as u128) << 64) | lo as u128))
            } else {
                IpAddr::V4(Ipv4Addr::from(lo as u32))
            };
            let connect_ms = s.connect_ms.load(Ordering::Relaxed);
            let recv_ms = s.last_recv_ms.load(Ordering::Relaxed);
            let send_ms = s.last_send_ms.load(Ordering::Relaxed);
            let info = ConnectionInfo {
                fd,
                websocket_status: (status & 0xff) as u8,
                remote_ip: ip.to_string(),
                remote_port: s.remote_port.load(Ordering::Relaxed) as u16,
                server_port: s.server_port.load(Ordering::Relaxed) as u16,
                server_fd: s.server_fd.load(Ordering::Relaxed) as i32,
                socket_fd: s.socket_fd.load(Ordering::Relaxed) as i32,
                connect_time: connect_ms / 1000,
                last_time: recv_ms / 1000,
                last_recv_time: recv_ms as f64 / 1000.0,
                last_send_time: send_ms as f64 / 1000.0,
                recv_queued_bytes: s.recv_queued.load(Ordering::Relaxed),
                send_queued_bytes: s.send_queued.load(Ordering::Relaxed),
                worker_id: self.region(r).worker_id.load(Ordering::Relaxed) as usize,
            };
            if s.fd.load(Ordering::Acquire) == fd {
                return Some(info);
            }
        }
        None
    }

    /// Every live fd of the server, region by region.
    pub fn live_fds(&self) -> Vec<Fd> {
        let mut out = Vec::new();
        for r in 0..self.regions {
            if self.region(r).connections.load(Ordering::Relaxed) == 0 {
                continue;
            }
            for s in 0..self.slots {
                let slot = self.slot(r, s);
                let fd = slot.fd.load(Ordering::Acquire);
                if fd != 0 && slot.status.load(Ordering::Relaxed) & MOVED == 0 {
                    out.push(fd);
                }
            }
        }
        out
    }

    pub fn stats(&self) -> Stats {
        let g = self.global();
        let mut workers = Vec::new();
        let (mut accepted, mut closed) = (0, 0);
        for r in 0..self.regions {
            let h = self.region(r);
            let pid = h.pid.load(Ordering::Relaxed);
            accepted += h.accepted.load(Ordering::Relaxed);
            closed += h.closed.load(Ordering::Relaxed);
            if pid == 0 {
                continue;
            }
            workers.push(WorkerStats {
                worker_id: h.worker_id.load(Ordering::Relaxed) as usize,
                pid,
                started_ms: h.started_ms.load(Ordering::Relaxed),
                connections: h.connections.load(Ordering::Relaxed),
                accepted: h.accepted.load(Ordering::Relaxed),
                closed: h.closed.load(Ordering::Relaxed),
                messages_in: h.messages_in.load(Ordering::Relaxed),
                messages_out: h.messages_out.load(Ordering::Relaxed),
                ipc_skipped: h.ipc_skipped.load(Ordering::Relaxed),
            });
        }
        workers.sort_by_key(|w| w.worker_id);
        Stats {
            master_pid: g.master_pid.load(Ordering::Relaxed),
            start_time_ms: g.started_ms.load(Ordering::Relaxed),
            connection_num: g.connections.load(Ordering::Relaxed),
            accept_count: accepted,
            close_count: closed,
            reload_count: g.reloads.load(Ordering::Relaxed),
            worker_restarts: g.worker_restarts.load(Ordering::Relaxed),
            workers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(port: u16) -> NewConn {
        NewConn {
            remote: SocketAddr::from(([127, 0, 0, 1], port)),
            server_port: 9502,
            server_fd: 3,
            socket_fd: 7,
            now_ms: 1_700_000_000_123,
        }
    }

    #[test]
    fn fd_encodes_owner_region_and_is_never_reused() {
        let t = SharedTable::create(4, 8).unwrap();
        let a = t.open(2, 5, &conn(1));
        assert_eq!(t.region_of(a), Some(2));
        assert_eq!(t.live_slot(a), Some((2, 5)));
        t.close(2, 5);
        assert_eq!(t.live_slot(a), None, "stale fd must not be live");
        let b = t.open(2, 5, &conn(2));
        assert_ne!(a, b, "a reused slot gets a new fd");
        assert_eq!(t.live_slot(a), None);
        assert_eq!(t.live_slot(b), Some((2, 5)));
    }

    #[test]
    fn first_fds_are_small_positive_integers() {
        let t = SharedTable::create(2, 1024).unwrap();
        assert_eq!(t.open(0, 0, &conn(1)), 1);
        assert_eq!(t.open(1, 0, &conn(1)), 2);
        assert_eq!(t.open(0, 1, &conn(1)), 3);
    }

    #[test]
    fn info_reports_what_was_written() {
        let t = SharedTable::create(2, 4).unwrap();
        t.region(1).worker_id.store(1, Ordering::Relaxed);
        let fd = t.open(1, 3, &conn(4242));
        t.set_status(1, 3, 3);
        let i = t.info(fd).unwrap();
        assert_eq!(i.websocket_status, 3);
        assert_eq!(i.remote_ip, "127.0.0.1");
        assert_eq!(i.remote_port, 4242);
        assert_eq!(i.server_port, 9502);
        assert_eq!(i.worker_id, 1);
        assert_eq!(i.connect_time, 1_700_000_000);
        assert_eq!(
            t.live_fds(),
            vec![] as Vec<Fd>,
            "region counter gates iteration"
        );
        t.region(1).connections.store(1, Ordering::Relaxed);
        assert_eq!(t.live_fds(), vec![fd]);
    }

    #[test]
    fn unknown_fds_decode_to_nothing_live() {
        let t = SharedTable::create(2, 4).unwrap();
        assert!(t.info(0).is_none());
        assert!(t.info(999_999).is_none());
        assert_eq!(t.status(12345), 0);
    }

    #[test]
    fn shared_table_is_shared_across_fork() {
        let t = SharedTable::create(2, 4).unwrap();
        // SAFETY: the child only touches the table and exits.
        match unsafe { libc::fork() } {
            0 => {
                t.open(1, 2, &conn(7));
                unsafe { libc::_exit(0) };
            }
            pid if pid > 0 => {
                let mut st = 0;
                unsafe { libc::waitpid(pid, &mut st, 0) };
                let fd = t.encode(1, 2, 0);
                assert_eq!(t.info(fd).map(|i| i.remote_port), Some(7));
            }
            _ => panic!("fork failed"),
        }
    }
}
