//! Time-driven work: user timers, per-connection deadlines (handshake, closing handshake,
//! linger), the heartbeat's idle check, server pings, and publishing stats.

use std::sync::atomic::Ordering;

use super::{guarded, Core, Worker};
use crate::protocol::frame::{OpCode, FLAG_FIN};
use crate::runtime::conn::Phase;
use crate::runtime::handler::{CloseReason, Handler};
use crate::runtime::table::Fd;

/// How often counters are published to the shared table (and orphaned queues re-checked).
const SYNC_MS: u64 = 1000;

impl<H: Handler> Worker<H> {
    /// Runs due timers (each taken out of the timer set while it runs), then housekeeping.
    pub(super) fn on_timers(&self) {
        let now = self.cx.core().now;
        loop {
            let due = self.cx.inner().timers.borrow_mut().pop_due(now);
            let Some((id, mut cb)) = due else { break };
            guarded("timer", || cb(&self.handler, &self.cx, id));
            let done = self.cx.inner().timers.borrow_mut().restore(now, id, cb);
            drop(done); // outside the borrow: its captures may use timers as they drop
        }
        // A predecessor that is gone wrote everything it will ever send before it went: read
        // that first, so its last hand-offs are adopted before new accepts take their slots.
        let predecessor_gone = self.cx.core().hold_predecessor_gone();
        if predecessor_gone {
            self.on_ipc();
        }
        let mut core = self.cx.core();
        core.expire_deadlines();
        core.check_accept_hold(None, predecessor_gone);
        core.retry_accept();
        core.periodic();
    }
}

impl Core {
    /// Closes connections whose deadline passed.
    fn expire_deadlines(&mut self) {
        let now = self.now;
        while let Some((d, key)) = self.deadlines.pop_due(now) {
            let Some(c) = self.conns.get_mut(key) else {
                continue;
            };
            let fd = c.fd;
            if c.deadline_ms != d as u32 {
                continue; // superseded by a later deadline
            }
            match c.phase {
                Phase::Http if c.held.is_none() => {
                    let what = match &c.tls {
                        Some(t) if t.is_handshaking() => "TLS handshake",
                        _ => "request",
                    };
                    log::info!("fd {fd}: no complete {what} within the handshake timeout, closing");
                    self.kill(key, CloseReason::HandshakeTimeout);
                }
                Phase::Ws if !c.close.can_send_data() => {
                    log::info!("fd {fd}: peer did not answer our close frame in time, closing");
                    self.kill(key, CloseReason::CloseTimeout);
                }
                Phase::Draining | Phase::Lingering => self.kill(key, CloseReason::ServerDropped),
                _ => {}
            }
        }
    }

    /// Heartbeat, server pings, stats and listener adoption, each at its own interval.
    fn periodic(&mut self) {
        let now = self.now;
        if let (Some(iv), Some(idle)) = (
            self.settings.heartbeat_check_interval,
            self.settings.idle_limit(),
        ) {
            if now >= self.next_heartbeat {
                self.next_heartbeat = now + iv.max(1) * 1000;
                self.close_idle(idle.as_millis() as u64);
            }
        }
        if let Some(iv) = self.settings.websocket_ping_interval {
            if now >= self.next_ping {
                self.next_ping = now + (iv.as_millis() as u64).max(1);
                self.ping_all();
            }
        }
        if now >= self.next_sync {
            self.next_sync = now + SYNC_MS;
            self.sync_stats();
            self.adopt_orphans();
        }
    }

    /// The heartbeat: closes (1000) connections that sent nothing for `idle_ms`.
    fn close_idle(&mut self, idle_ms: u64) {
        let now = self.now;
        let stale: Vec<(usize, Fd)> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Ws | Phase::Http) && c.held.is_none())
            .filter(|(_, c)| u64::from((now as u32).wrapping_sub(c.last_recv_ms)) > idle_ms)
            .map(|(k, c)| (k, c.fd))
            .collect();
        for (k, fd) in stale {
            log::info!(
                "fd {fd}: idle for more than {}s (heartbeat), closing",
                idle_ms / 1000
            );
            self.close_with(k, 1000, "idle timeout", CloseReason::Idle);
        }
    }

    fn ping_all(&mut self) {
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.can_send())
            .map(|(k, _)| k)
            .collect();
        for k in keys {
            self.push_local(k, b"", OpCode::Ping.as_u8(), FLAG_FIN);
        }
    }

    pub(super) fn sync_stats(&self) {
        let h = self.table.region(self.region);
        h.messages_in.store(self.messages_in, Ordering::Relaxed);
        h.messages_out.store(self.messages_out, Ordering::Relaxed);
        let c = &self.counters;
        h.bytes_in.store(c.bytes_in, Ordering::Relaxed);
        h.bytes_out.store(c.bytes_out, Ordering::Relaxed);
        for (a, v) in h.closes.iter().zip(c.closes) {
            a.store(v, Ordering::Relaxed);
        }
        for (a, v) in h.refused.iter().zip(c.refused) {
            a.store(v, Ordering::Relaxed);
        }
        h.ipc_queued
            .store(self.outbox.total_queued() as u64, Ordering::Relaxed);
        h.accepted.store(self.accepted, Ordering::Relaxed);
        h.closed.store(self.closed, Ordering::Relaxed);
        h.connections
            .store(self.conns.len() as u64, Ordering::Relaxed);
    }

    /// Milliseconds until the next deadline, timer or periodic job (`timer` from the timer
    /// set).
    pub(super) fn next_wakeup(&self, timer: Option<u64>) -> u64 {
        let mut next = self.next_sync;
        let hold = self.accept_hold.map(|(_, at, _)| at);
        for d in [timer, self.accept_retry_at, self.stopping, hold]
            .into_iter()
            .flatten()
        {
            next = next.min(d);
        }
        if let Some(d) = self.deadlines.next() {
            next = next.min(d);
        }
        next.saturating_sub(self.now)
    }
}
