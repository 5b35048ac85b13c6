//! Keeping connections through a rolling reload or a binary upgrade: the retiring worker
//! hands each connection, alive, to its replacement (the worker of the same id in the sibling
//! region), socket and state together, and the replacement goes on with it under the same fd.
//!
//! What moves (`MovedConn`): the fd and slot (so `ConnId` and every id the layers keep stay
//! valid), the table fields (`connection_info` is unchanged), the input read but not yet
//! decoded and the decoder's message in progress, the closing-handshake state, the output not
//! yet written, the client's permessage-deflate window, the heartbeat's last-receive time and
//! whatever the handler returns from `on_hand_off`.
//!
//! Ordering: the state goes through the same IPC channel as everything else the old worker
//! forwards, so a push that reaches the old worker after the connection left is forwarded and
//! arrives behind it. The old slot is marked `MOVED` only once the state is in the new
//! worker's socket, so that other workers start sending there directly only then.
//!
//! The replacement holds its own listener back until the old worker says it is done (or is
//! gone, or out of time): connects wait in the listen queue for those milliseconds, and the
//! slots of the arriving connections are still free.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

use super::{guarded, Core, Worker};
use crate::protocol::close::CloseState;
use crate::protocol::decoder::{DecoderSnapshot, MessageDecoder};
use crate::runtime::conn::{Compression, Conn, Phase};
use crate::runtime::handler::{CloseReason, ConnId, HandOff, Handler};
use crate::runtime::ipc::Msg;
use crate::runtime::table::{Fd, SlotImage};

/// One connection's state on its way to the replacement worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MovedConn {
    fd: Fd,
    slot: u32,
    port_idx: u16,
    /// Established WebSocket (else: an idle HTTP keep-alive connection).
    websocket: bool,
    close: CloseState,
    image: SlotImage,
    last_recv_ms: u32,
    #[serde(with = "serde_bytes")]
    input: Vec<u8>,
    #[serde(with = "serde_bytes")]
    output: Vec<u8>,
    decoder: Option<DecoderSnapshot>,
    state: Option<serde_bytes::ByteBuf>,
}

impl Core {
    /// The region this (retiring) worker hands its connections to, if the master asked.
    fn handoff_target(&self) -> Option<usize> {
        let t = self
            .table
            .region(self.region)
            .handoff_to
            .load(Ordering::Acquire) as usize;
        (t > 0 && t <= self.table.regions() && t - 1 != self.region).then(|| t - 1)
    }

    /// At the stop: whether connections are to be handed over (and to where). TLS
    /// connections cannot move (their session state stays in this process): they get 1001.
    pub(super) fn start_migration(&mut self) -> bool {
        let Some(target) = self.handoff_target() else {
            return false;
        };
        self.migrate_to = Some(target);
        self.migrate_started = crate::runtime::clock::mono_ms();
        let tls = self.close_websockets_where(|c| c.tls.is_some());
        if tls > 0 {
            log::info!(
                "Worker#{}: {tls} TLS connections cannot move; closed them with 1001",
                self.worker_id
            );
        }
        log::info!(
            "Worker#{} hands its {} connections to region {target}",
            self.worker_id,
            self.conns.len()
        );
        true
    }

    /// Connections that can move now, plain TCP ones: established (not in the middle of a
    /// compressed message) or idle HTTP keep-alive ones.
    fn movable(&self) -> Vec<(usize, Fd)> {
        self.conns
            .iter()
            .filter(|(_, c)| c.tls.is_none() && c.held.is_none())
            .filter(|(_, c)| !self.declined.contains(&c.fd))
            .filter(|(_, c)| match c.phase {
                Phase::Ws => c.decoder.as_ref().is_some_and(|d| d.can_snapshot()),
                Phase::Http => !c.upgraded && c.inbuf.is_empty() && c.pending_out() == 0,
                Phase::Draining | Phase::Lingering | Phase::Dead => false,
            })
            .map(|(k, c)| (k, c.fd))
            .collect()
    }

    /// Sends connection `key` with `state` to `target`. `false` when the channel is too full
    /// now (the connection stays, untouched).
    fn migrate(&mut self, key: usize, fd: Fd, target: usize, state: Option<Vec<u8>>) -> bool {
        let image = self.table.image(self.region, key);
        let Some(c) = self.conn(key, fd) else {
            return true;
        };
        let moved = MovedConn {
            fd,
            slot: key as u32,
            port_idx: c.listener,
            websocket: c.phase == Phase::Ws,
            close: c.close,
            image,
            last_recv_ms: c.last_recv_ms,
            input: c.inbuf.to_vec(),
            output: c
                .outbuf
                .get(c.outpos as usize..)
                .unwrap_or_default()
                .to_vec(),
            decoder: c.decoder.as_ref().and_then(|d| d.snapshot()),
            state: state.map(serde_bytes::ByteBuf::from),
        };
        let encoded = match rmp_serde::to_vec(&moved) {
            Ok(b) => b,
            Err(e) => {
                log::error!("fd {fd}: cannot encode its state ({e}); closing it with 1001");
                self.send_close(key, 1001, "server shutdown", CloseReason::Shutdown);
                return true;
            }
        };
        let body = Msg::Migrate { state: &encoded }.encode();
        if self.outbox.would_refuse(target, body.len()) {
            return false;
        }
        let Some(conn) = self.detach(key) else {
            return true;
        };
        match self.send_socket(target, &body, conn.stream.into()) {
            Some(false) => self.table.mark_moved(self.region, key),
            Some(true) => self.unmarked.push(key),
            None => {
                log::warn!("fd {fd}: hand-off to region {target} failed; connection lost");
                self.table.close(self.region, key);
                self.table
                    .global()
                    .connections
                    .fetch_sub(1, Ordering::Relaxed);
                return true;
            }
        }
        self.moved_out += 1;
        true
    }

    /// Takes a connection out of this worker without closing it: the table slot stays (it
    /// names the fd until the connection is marked moved), counters say it is still open.
    fn detach(&mut self, key: usize) -> Option<Conn> {
        let mut c = self.conns.try_remove(key)?;
        let _ = self.registry.deregister(&mut c.stream);
        self.publish_conn_count();
        Some(c)
    }

    /// Marks moved the slots whose state was queued and has now reached the new worker's
    /// socket; says the migration is complete once nothing is left to move.
    fn settle_migration(&mut self, target: usize) {
        if self.outbox.queued(target) == 0 {
            for key in std::mem::take(&mut self.unmarked) {
                self.table.mark_moved(self.region, key);
            }
        }
        if self.conns.is_empty() && !self.migrate_done_sent {
            self.migrate_done_sent = true;
            let body = Msg::MigrateDone {
                from_region: self.region as u32,
            }
            .encode();
            self.send_ipc(target, &body);
            log::info!(
                "Worker#{} handed over {} connections in {} ms ({} closed with 1001 at the layer's request)",
                self.worker_id,
                self.moved_out,
                crate::runtime::clock::mono_ms().saturating_sub(self.migrate_started),
                self.declined.len()
            );
        }
    }

    /// During a migration: whether everything handed over has been written to the channel.
    pub(super) fn migration_flushed(&self) -> bool {
        match self.migrate_to {
            Some(t) => self.migrate_done_sent && self.outbox.queued(t) == 0,
            None => true,
        }
    }

    /// While handing over: a broadcast applied here goes on to the replacement too, for the
    /// connections already there (every one of them, or those of `only` that left).
    pub(super) fn forward_broadcast(&mut self, frame: &[u8], only: Option<&[Fd]>) {
        let Some(target) = self.migrate_to else {
            return;
        };
        let only = match only {
            None => None,
            Some(fds) => {
                let moved: Vec<Fd> = fds
                    .iter()
                    .copied()
                    .filter(|&fd| self.moved_away(fd).is_some())
                    .collect();
                if moved.is_empty() {
                    return;
                }
                Some(moved)
            }
        };
        let body = Msg::Broadcast { frame, only }.encode();
        self.send_ipc(target, &body);
    }

    /// While handing over: a layer's peer message handled here goes on to the replacement,
    /// behind the connections already sent (the layer's state for them moved there).
    pub(super) fn forward_peer(&mut self, channel: u16, from_worker: u32, data: &[u8]) {
        let Some(target) = self.migrate_to else {
            return;
        };
        let body = Msg::Peer {
            channel,
            from_worker,
            data,
        }
        .encode();
        self.send_ipc(target, &body);
    }

    /// Whether `fd` was handed from here to the replacement (its slot here still names it).
    pub(super) fn moved_away(&self, fd: Fd) -> Option<usize> {
        let target = self.migrate_to?;
        let (region, slot) = self.table.live_slot(fd)?;
        (region == self.region && !self.conns.contains(slot)).then_some(target)
    }

    /// Takes a connection a retiring worker handed over; returns its id (its own fd and
    /// slot when that slot is free here, which it is unless something else took it first).
    fn adopt_moved(&mut self, socket: OwnedFd, m: &MovedConn) -> Option<ConnId> {
        let socket = keep_descriptor_number(socket, m.image.socket_fd as i32);
        let slot = m.slot as usize;
        let keep = slot < self.slots
            && !self.conns.contains(slot)
            && self.table.slot_is_free(self.region, slot);
        let key = if keep { slot } else { self.conns.vacant_key() };
        if key >= self.slots {
            log::warn!("fd {}: no free slot for a handed-over connection", m.fd);
            return None;
        }
        let stream = self.register_handed_socket(socket, key)?;
        let mut image = m.image;
        image.socket_fd = stream.as_raw_fd() as u32;
        let fd = if keep {
            self.table.adopt(self.region, key, m.fd, &image);
            m.fd
        } else {
            log::warn!(
                "fd {}: its slot is taken here; it continues under a new fd",
                m.fd
            );
            self.table.adopt_fresh(self.region, key, &image)
        };
        let conn = self.rebuild(stream, fd, m)?;
        if let Err(conn) = self.conns.insert_at(key, conn) {
            drop(conn);
            return None;
        }
        self.publish_conn_count();
        self.after_adopt(key, fd);
        Some(ConnId {
            fd,
            slot: key as u32,
        })
    }

    /// The connection as it was in the old worker.
    fn rebuild(&mut self, stream: mio::net::TcpStream, fd: Fd, m: &MovedConn) -> Option<Conn> {
        let mut c = Conn::new(stream, fd, m.port_idx, self.now);
        c.last_recv_ms = m.last_recv_ms;
        c.close = m.close;
        if m.websocket {
            let snapshot = m.decoder.clone()?;
            let decoder = match MessageDecoder::restore(snapshot) {
                Ok(d) => d,
                Err(e) => {
                    log::warn!("fd {fd}: its decoder state does not restore ({e})");
                    return None;
                }
            };
            if let Some(cfg) = decoder.deflate_config() {
                c.deflater = Some(Box::new(Compression::Negotiated(cfg)));
            }
            c.decoder = Some(decoder);
            c.phase = Phase::Ws;
            c.upgraded = true;
        }
        if !m.input.is_empty() {
            c.inbuf = ThinVec::from(&m.input[..]);
        }
        if !m.output.is_empty() {
            c.outbuf = self.pool.pop().unwrap_or_default();
            crate::runtime::conn::append(&mut c.outbuf, &m.output);
        }
        Some(c)
    }

    /// Deadlines and pending output of an adopted connection.
    fn after_adopt(&mut self, key: usize, fd: Fd) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let (phase, closing, pending) = (c.phase, !c.close.can_send_data(), c.pending_out());
        if pending > 0 && !c.dirty {
            c.dirty = true;
            self.dirty.push(key);
        }
        if phase == Phase::Http {
            let at = self.now + self.settings.handshake_timeout.as_millis() as u64;
            self.push_deadline(at, key, fd);
        } else if closing {
            let at = self.now + self.settings.max_wait_time.as_millis() as u64;
            self.push_deadline(at, key, fd);
        }
    }

    /// A replacement holding its listener whose predecessor has exited (or was killed).
    pub(super) fn hold_predecessor_gone(&self) -> bool {
        self.accept_hold
            .is_some_and(|(from, _, _)| self.table.region(from).pid.load(Ordering::Acquire) == 0)
    }

    /// Whether this (new) worker still holds its listener back for a migration, and releases
    /// it when the old worker said it is done, is gone (`gone`: and what it sent was read
    /// first, see `on_timers`: a hung worker that was killed never hands anything over), or
    /// the wait is over.
    pub(super) fn check_accept_hold(&mut self, done_from: Option<usize>, gone: bool) {
        let Some((from, deadline, since)) = self.accept_hold else {
            return;
        };
        let done = done_from == Some(from) || gone;
        if !done && self.now < deadline {
            return;
        }
        if !done {
            log::warn!(
                "Worker#{}: the worker it replaces did not finish its hand-off in time; accepting",
                self.worker_id
            );
        }
        log::info!(
            "Worker#{} accepts ({} connections handed over from region {from}; held {} ms since it started)",
            self.worker_id,
            self.conns.len(),
            crate::runtime::clock::mono_ms().saturating_sub(since)
        );
        self.accept_hold = None;
        self.table
            .region(self.region)
            .ready
            .store(crate::runtime::table::READY, Ordering::Release);
        self.release_own_listeners();
    }
}

/// Keeps the socket's descriptor number of the old worker when it is free here (so
/// `connection_info`'s `socket_fd` does not change); otherwise the number it arrived with.
fn keep_descriptor_number(socket: OwnedFd, want: i32) -> OwnedFd {
    let got = socket.as_raw_fd();
    if want <= 2 || want == got {
        return socket;
    }
    // SAFETY: F_GETFD only queries; EBADF means the number is unused in this process.
    let free = unsafe { libc::fcntl(want, libc::F_GETFD) } == -1
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
    if !free {
        return socket;
    }
    // SAFETY: `want` is unused (checked just above; this thread opens nothing in between),
    // so dup3 creates it without closing anything; the new descriptor is owned below.
    let r = unsafe { libc::dup3(got, want, libc::O_CLOEXEC) };
    if r != want {
        return socket;
    }
    drop(socket);
    // SAFETY: `want` was just created by dup3 and is owned by nothing else.
    unsafe { OwnedFd::from_raw_fd(want) }
}

impl<H: Handler> Worker<H> {
    /// During a reload's stop: hands over every connection that can move now (called at the
    /// start and after every batch, as connections finish their requests or messages).
    pub(super) fn migrate_ready(&self) {
        let Some(target) = self.cx.core().migrate_to else {
            return;
        };
        let movable = self.cx.core().movable();
        for (key, fd) in movable {
            let conn = ConnId {
                fd,
                slot: key as u32,
            };
            let len_hint = 256;
            if self.cx.core().outbox.would_refuse(target, len_hint) {
                break; // the channel is full: the rest goes when it drains
            }
            let reply = guarded("on_hand_off", || self.handler.on_hand_off(&self.cx, conn));
            let state = match reply {
                Some(HandOff::Move(state)) => state,
                Some(HandOff::Close) | None => {
                    let mut core = self.cx.core();
                    core.send_close(key, 1001, "server shutdown", CloseReason::Shutdown);
                    core.declined.push(fd);
                    continue;
                }
            };
            if !self.cx.core().migrate(key, fd, target, state) {
                break;
            }
        }
        self.cx.core().settle_migration(target);
    }

    /// A connection handed over by the worker this one replaces.
    pub(super) fn on_migrate(&self, socket: OwnedFd, state: &[u8]) {
        let m: MovedConn = match rmp_serde::from_slice(state) {
            Ok(m) => m,
            Err(e) => {
                log::error!("a handed-over connection's state does not decode ({e}); dropped");
                return;
            }
        };
        let Some(conn) = self.cx.core().adopt_moved(socket, &m) else {
            log::warn!("fd {}: a handed-over connection could not be adopted", m.fd);
            return;
        };
        // Input it carried is an incomplete frame: it waits in the connection's buffer for
        // the rest (registration reports whatever the socket already holds).
        let state = m.state.as_deref().map(|b| &b[..]);
        guarded("on_adopt", || self.handler.on_adopt(&self.cx, conn, state));
    }
}
