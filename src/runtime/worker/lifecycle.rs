//! The end of every batch (deferred work, flushing, reaping closed connections with their
//! close events) and a worker's stop.

use std::sync::atomic::Ordering;

use super::{guarded, Core, Worker};
use crate::runtime::conn::{Conn, Phase};
use crate::runtime::handler::{CloseReason, ConnId, Handler};

/// Rounds of deferred work / flush / reap per batch before the loop polls again.
const BATCH_ROUNDS: usize = 16;

impl<H: Handler> Worker<H> {
    /// Runs deferred work, flushes output and reaps closed connections until quiet.
    pub(super) fn after_batch(&self) {
        for _ in 0..BATCH_ROUNDS {
            let deferred = std::mem::take(&mut *self.cx.inner().deferred.borrow_mut());
            for f in deferred {
                guarded("deferred work", || f(&self.handler, &self.cx));
            }
            self.cx.core().flush_dirty();
            self.reap();
            self.migrate_ready();
            let quiet = self.cx.core().is_quiet();
            if quiet && self.cx.inner().deferred.borrow().is_empty() {
                break;
            }
        }
    }

    /// Removes dead connections and delivers their close events.
    pub(super) fn reap(&self) {
        loop {
            let Some((conn, upgraded, reason)) = self.cx.core().next_dead() else {
                break;
            };
            log::debug!("fd {} closed ({reason:?})", conn.fd);
            // The handler runs while the connection's table entry still exists (clean-up code
            // reads it); pushes to it fail.
            let what = if upgraded {
                "on_close"
            } else {
                "on_disconnect"
            };
            guarded(what, || {
                if upgraded {
                    self.handler.on_close(&self.cx, conn, reason)
                } else {
                    self.handler.on_disconnect(&self.cx, conn, reason)
                }
            });
            let removed = self.cx.core().remove(conn.slot as usize);
            // Whatever the connection owned is dropped outside the borrow.
            drop(removed);
        }
    }

    /// SIGTERM: stop accepting, `on_worker_stop`, close 1001 to every client, then wait up to
    /// `max_wait_time` for the closing handshakes.
    pub(super) fn begin_stop(&self) {
        if !self.cx.core().stop_accepting() {
            return;
        }
        guarded("on_worker_stop", || self.handler.on_worker_stop(&self.cx));
        if self.cx.core().start_migration() {
            self.migrate_ready();
        } else {
            self.cx.core().close_all_websockets();
        }
    }

    pub(super) fn finish_stop(&self) {
        self.cx.core().kill_all();
        self.reap();
        if self.cx.core().migrate_to.is_some() {
            // Senders switch to the replacement once this region has no pid; what they sent
            // just before is still read here and forwarded.
            self.cx.core().unpublish();
            std::thread::sleep(std::time::Duration::from_millis(5));
            self.on_ipc();
        }
        self.cx.core().retire();
    }
}

impl Core {
    fn flush_dirty(&mut self) {
        while let Some(k) = self.dirty.pop() {
            self.flush(k);
        }
    }

    fn is_quiet(&self) -> bool {
        self.dirty.is_empty() && self.dead.is_empty()
    }

    /// The next dead connection that still exists: its id, whether it was a WebSocket, and
    /// why it closed.
    fn next_dead(&mut self) -> Option<(ConnId, bool, CloseReason)> {
        while let Some(key) = self.dead.pop() {
            if let Some(c) = self.conns.get(key) {
                let reason = c.reason.unwrap_or(CloseReason::ConnectionLost);
                let id = ConnId {
                    fd: c.fd,
                    slot: key as u32,
                };
                return Some((id, c.upgraded, reason));
            }
        }
        None
    }

    pub(super) fn remove(&mut self, key: usize) -> Option<Conn> {
        let mut c = self.conns.try_remove(key)?;
        if let Some(r) = c.reason {
            self.counters.closes[crate::runtime::metrics::close_bucket(r)] += 1;
        }
        let _ = self.registry.deregister(&mut c.stream);
        self.table.close(self.region, key);
        self.table
            .global()
            .connections
            .fetch_sub(1, Ordering::Relaxed);
        self.closed += 1;
        self.publish_conn_count();
        let b = std::mem::take(&mut c.outbuf);
        self.give_buf(b);
        Some(c)
    }

    /// Deregisters the listeners and marks the worker not ready. `false` if already stopping.
    fn stop_accepting(&mut self) -> bool {
        if self.stopping.is_some() {
            return false;
        }
        for l in self.listeners.iter_mut().filter(|l| l.registered) {
            let _ = self.registry.deregister(&mut l.sock);
            l.registered = false;
        }
        self.table
            .region(self.region)
            .ready
            .store(0, Ordering::Relaxed);
        self.stopping = Some(self.now + self.settings.max_wait_time.as_millis() as u64);
        log::info!("Worker#{} stopping", self.worker_id);
        true
    }

    /// 1001 to every WebSocket client. Connections still in their HTTP request are served (a
    /// handshake in flight must not fail during a reload); `establish` then closes them with
    /// 1001 right away.
    fn close_all_websockets(&mut self) {
        self.close_websockets_where(|_| true);
    }

    /// 1001 to the WebSocket clients `pick` chooses; how many.
    pub(super) fn close_websockets_where(&mut self, pick: impl Fn(&Conn) -> bool) -> usize {
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.phase == Phase::Ws && pick(c))
            .map(|(k, _)| k)
            .collect();
        for &k in &keys {
            self.send_close(k, 1001, "server shutdown", CloseReason::Shutdown);
        }
        keys.len()
    }

    fn kill_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        if self.migrate_to.is_some() && !keys.is_empty() {
            log::warn!(
                "Worker#{}: {} connections could not be handed over in time; closing them with 1001",
                self.worker_id,
                keys.len()
            );
        }
        for k in keys {
            self.send_close(k, 1001, "server shutdown", CloseReason::Shutdown);
            self.flush(k);
            self.kill(k, CloseReason::Shutdown);
        }
    }

    /// This region stops receiving: other workers send to the replacement from now on.
    fn unpublish(&mut self) {
        self.table
            .region(self.region)
            .pid
            .store(0, Ordering::Release);
    }

    /// Last words: queued IPC (best effort), final stats, the region marked free.
    fn retire(&mut self) {
        for r in 0..self.ipc_tx.len() {
            self.flush_ipc(r);
        }
        self.sync_stats();
        let h = self.table.region(self.region);
        h.pid.store(0, Ordering::Relaxed);
        h.ready.store(0, Ordering::Relaxed);
        log::info!("Worker#{} stopped", self.worker_id);
    }

    /// Whether the stop is complete (no connections left, or out of time).
    pub(super) fn stop_done(&self) -> bool {
        self.stopping.is_some_and(|deadline| {
            (self.conns.is_empty() && self.migration_flushed()) || self.now >= deadline
        })
    }
}
