//! Other workers: where an fd lives, sending over the IPC channels, and applying what other
//! workers sent (pushes, closes, broadcasts, layers' peer messages).

use std::sync::atomic::Ordering;

use mio::unix::SourceFd;
use mio::Interest;

use super::context::Owner;
use super::{guarded, Core, Worker};
use crate::protocol::frame::OpCode;
use crate::runtime::handler::Handler;
use crate::runtime::ipc::{Msg, SendState};
use crate::runtime::table::Fd;

/// Per other region: the fds to reach there (`None`: every established connection).
pub(super) type Targets = Vec<(usize, Option<Vec<Fd>>)>;

impl Core {
    /// Where `fd` lives: a local slot (checked against the slab, defence in depth for slot
    /// reuse) or another region. `None` for an fd that is not open.
    pub(super) fn owner(&self, fd: Fd) -> Option<Owner> {
        // Ours first: a connection handed to this worker keeps its slot, and until the old
        // worker marks its own slot moved the table names both.
        if let Some((_, slot, _)) = self.table.decode(fd) {
            if self.conns.get(slot).is_some_and(|c| c.fd == fd) {
                return Some(Owner::Local(slot));
            }
        }
        let (region, slot) = self.table.live_slot(fd)?;
        if region != self.region {
            return Some(Owner::Remote(region));
        }
        match self.conns.get(slot).filter(|c| c.fd == fd) {
            Some(_) => Some(Owner::Local(slot)),
            // Handed to the replacement; its slot here is not marked yet.
            None => self.moved_away(fd).map(Owner::Remote),
        }
    }

    /// Sends an IPC message to `region`, queueing if its socket is full.
    pub(super) fn send_ipc(&mut self, region: usize, body: &[u8]) -> bool {
        let tx = self.ipc_tx[region];
        match self.outbox.send(region, tx, body) {
            Ok(SendState::Done) => true,
            Ok(SendState::Queued) => {
                if !self.ipc_tx_registered[region] {
                    let token = self.tokens.ipc_tx(region);
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
            Ok(SendState::Refused { first }) => {
                if first {
                    log::warn!(
                        "worker in region {region} is not reading: {} bytes queued toward it \
                         (pipe_buffer_size {}); pushes to its connections fail and broadcasts \
                         skip it until it reads again",
                        self.outbox.queued(region),
                        self.settings.pipe_buffer_size
                    );
                }
                self.table
                    .region(self.region)
                    .ipc_skipped
                    .fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(e) => {
                log::error!("ipc to region {region} failed: {e}");
                false
            }
        }
    }

    /// A full channel became writable again.
    pub(super) fn flush_ipc(&mut self, region: usize) {
        let tx = self.ipc_tx[region];
        let before = self.outbox.queued(region);
        if let Ok(SendState::Done) = self.outbox.flush(region, tx) {
            if before > 0 {
                log::info!("region {region} reads again: its queue of {before} bytes is written");
            }
        }
    }

    /// The region currently serving `worker_id`: the newest ready one during a reload, but
    /// the old one while it hands its connections over (it forwards what it receives behind
    /// them, so nothing for a moving connection is lost or delivered twice).
    pub(super) fn region_for_worker(&self, worker_id: usize) -> Option<usize> {
        let both = [worker_id, worker_id + self.worker_num];
        let regions = both.into_iter().filter(|&r| r < self.table.regions());
        if let Some(r) = regions.clone().find(|&r| self.handing_over(r)) {
            return Some(r);
        }
        regions
            .filter(|&r| {
                let h = self.table.region(r);
                h.pid.load(Ordering::Relaxed) != 0
                    && h.ready.load(Ordering::Relaxed) == crate::runtime::table::READY
            })
            .max_by_key(|&r| self.table.region(r).started_ms.load(Ordering::Relaxed))
    }

    /// Region `r` runs a worker that is handing its connections to its replacement.
    fn handing_over(&self, r: usize) -> bool {
        let h = self.table.region(r);
        h.pid.load(Ordering::Relaxed) != 0 && h.handoff_to.load(Ordering::Acquire) != 0
    }

    /// The replacement of a region that is handing over (it gets its messages through it).
    fn receives_through_old(&self, r: usize) -> bool {
        let n = self.worker_num;
        let sibling = if r < n { r + n } else { r - n };
        sibling < self.table.regions()
            && self.handing_over(sibling)
            && self
                .table
                .region(sibling)
                .handoff_to
                .load(Ordering::Relaxed) as usize
                == r + 1
    }

    /// Who gets a broadcast: the other regions (with their fds when `only` lists fds) and the
    /// local fds (`None`: every established local connection).
    pub(super) fn broadcast_targets(&self, only: Option<&[Fd]>) -> (Targets, Option<Vec<Fd>>) {
        let Some(fds) = only else {
            let others = (0..self.table.regions())
                .filter(|&r| r != self.region)
                .filter(|&r| self.table.region(r).pid.load(Ordering::Relaxed) != 0)
                .filter(|&r| !self.receives_through_old(r))
                .map(|r| (r, None))
                .collect();
            return (others, None);
        };
        let mut per: Vec<Vec<Fd>> = vec![Vec::new(); self.table.regions()];
        for &fd in fds {
            if let Some(r) = self.table.region_of(fd) {
                per[r].push(fd);
            }
        }
        let local = std::mem::take(&mut per[self.region]);
        let others = per
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(r, v)| (r, Some(v)))
            .collect();
        (others, Some(local))
    }

    /// Writes an already encoded frame to every established local connection (or the listed
    /// ones). Returns how many it was written or queued to.
    pub(super) fn broadcast_local(&mut self, frame: &[u8], only: Option<&[Fd]>) -> usize {
        let limit = self.settings.buffer_output_size;
        let keys: Vec<usize> = match only {
            Some(fds) => fds
                .iter()
                .filter_map(|&fd| match self.owner(fd)? {
                    Owner::Local(k) => Some(k),
                    Owner::Remote(_) => None,
                })
                .collect(),
            None => self
                .conns
                .iter()
                .filter(|(_, c)| c.can_send())
                .map(|(k, _)| k)
                .collect(),
        };
        let mut sent = 0;
        for k in keys {
            if self.conns.get(k).is_some_and(|c| c.can_send())
                && self.write_or_queue(k, frame, limit)
            {
                sent += 1;
            }
        }
        self.messages_out += sent as u64;
        sent
    }
}

impl<H: Handler> Worker<H> {
    /// Delivers what other workers sent. The inbox is its own cell, so handlers may send to
    /// other workers while it drains.
    pub(super) fn on_ipc(&self) {
        let rx = self.cx.core().ipc_rx;
        let mut inbox = self.cx.inner().inbox.borrow_mut();
        let res = inbox.drain_with_fds(rx, |body, fd| match (Msg::decode(body), fd) {
            (
                Some(Msg::Adopt {
                    port_idx,
                    remote,
                    input,
                }),
                Some(socket),
            ) => self.on_adopt(socket, port_idx, remote, input),
            (Some(Msg::Migrate { state }), Some(socket)) => self.on_migrate(socket, state),
            (Some(Msg::Adopt { .. } | Msg::Migrate { .. }), None) => {
                log::warn!("ipc: a hand-off without its socket")
            }
            (Some(m), _) => self.apply_ipc(m),
            (None, _) => log::warn!("ipc: malformed message of {} bytes dropped", body.len()),
        });
        if let Err(e) = res {
            log::error!("ipc receive failed: {e}");
        }
    }

    fn apply_ipc(&self, m: Msg<'_>) {
        // Draining a busy channel is progress too (the watchdog must not see a hang).
        self.cx.core().heartbeat();
        match m {
            Msg::Push {
                fd,
                opcode,
                flags,
                data,
            } => {
                if let Some(op) = OpCode::from_u8(opcode) {
                    self.cx.push(fd, data, op, flags);
                }
            }
            Msg::Disconnect { fd, code: 0, .. } => {
                self.cx.close(fd);
            }
            Msg::Disconnect { fd, code, reason } => {
                self.cx
                    .close_with(fd, code, std::str::from_utf8(reason).unwrap_or(""));
            }
            Msg::Broadcast { frame, only } => {
                let mut core = self.cx.core();
                core.broadcast_local(frame, only.as_deref());
                core.forward_broadcast(frame, only.as_deref());
            }
            Msg::Peer {
                channel,
                from_worker,
                data,
            } => {
                guarded("on_peer_message", || {
                    self.handler
                        .on_peer_message(&self.cx, from_worker as usize, channel, data)
                });
                self.cx.core().forward_peer(channel, from_worker, data);
            }
            Msg::MigrateDone { from_region } => {
                self.cx
                    .core()
                    .check_accept_hold(Some(from_region as usize), false);
            }
            // Handled with their sockets in on_ipc.
            Msg::Adopt { .. } | Msg::Migrate { .. } => {}
        }
    }
}
