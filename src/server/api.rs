//! The methods callbacks call on `&Server` (Swoole's `$server->push(...)` and friends). Each
//! is the worker context's method of the same job; outside a worker (in the master, before
//! `start`) they answer `false` / `None`.

use super::{Server, ServerHandle, PIPE_CHANNEL};
use crate::protocol::frame::{OpCode, FLAG_FIN};
use crate::runtime::table::{ConnectionInfo, Fd, Stats};
use crate::runtime::timer::TimerId;
use crate::runtime::{BroadcastReport, CloseReason, Ctx};

impl Server {
    /// The worker context, while in a worker. The borrow of the cell is released before
    /// `f`'s result is returned, and `Ctx` methods never hold the runtime across callbacks,
    /// so callbacks may call any method re-entrantly.
    fn with_cx<R>(&self, f: impl FnOnce(&Ctx<Server>) -> R) -> Option<R> {
        let cx = self.cx.borrow().clone()?;
        Some(f(&cx))
    }

    /// Sends a message to a WebSocket client of any worker (`$server->push`).
    ///
    /// `flags` is `FLAG_FIN` for a whole message; add `FLAG_COMPRESS` to compress it when the
    /// client negotiated permessage-deflate. Returns `false` for an unknown, not yet
    /// established or closing fd, for a message larger than `package_max_length`, and outside
    /// a worker.
    pub fn push(&self, fd: Fd, data: impl AsRef<[u8]>, opcode: OpCode, flags: u8) -> bool {
        self.with_cx(|cx| cx.push(fd, data.as_ref(), opcode, flags))
            .unwrap_or(false)
    }

    /// Pushes a text message (`push(fd, text, Text, FLAG_FIN)`).
    pub fn push_text(&self, fd: Fd, text: &str) -> bool {
        self.push(fd, text, OpCode::Text, FLAG_FIN)
    }

    /// Closes a WebSocket client of any worker with a close frame (`$server->disconnect`).
    ///
    /// `code` must be 1000 or 4000–4999 and `reason` at most 123 bytes; otherwise nothing is
    /// sent and `false` is returned. The connection closes when the client answers (or after
    /// `max_wait_time`).
    pub fn disconnect(&self, fd: Fd, code: u16, reason: &str) -> bool {
        self.with_cx(|cx| cx.disconnect(fd, code, reason))
            .unwrap_or(false)
    }

    /// Closes a connection of any worker without a close frame, after what is already queued
    /// for it is written (`$server->close`). Returns `false` for an unknown fd.
    pub fn close(&self, fd: Fd) -> bool {
        self.with_cx(|cx| cx.close(fd)).unwrap_or(false)
    }

    /// Whether the connection exists (any worker, any state) (`$server->exist`).
    pub fn exist(&self, fd: Fd) -> bool {
        self.with_cx(|cx| cx.exist(fd)).unwrap_or(false)
    }

    /// Whether the connection is an established WebSocket (`$server->isEstablished`).
    pub fn is_established(&self, fd: Fd) -> bool {
        self.with_cx(|cx| cx.is_established(fd)).unwrap_or(false)
    }

    /// Connection details from the shared table, for an fd of any worker
    /// (`$server->connection_info` / `getClientInfo`).
    pub fn connection_info(&self, fd: Fd) -> Option<ConnectionInfo> {
        self.with_cx(|cx| cx.connection_info(fd)).flatten()
    }

    /// Every connection of the whole server (`$server->connections`).
    pub fn connections(&self) -> Vec<Fd> {
        self.with_cx(|cx| cx.connections()).unwrap_or_default()
    }

    /// Inside `on_close` / `on_disconnect`: why the connection closed (the peer's close code,
    /// a timeout, a protocol error, ...). `None` elsewhere.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason.get()
    }

    /// Sends one message to every established WebSocket client of the server. The frame is
    /// encoded once and crosses to each other worker once. The report counts the local
    /// recipients it was written or queued to, the workers it was sent to, and those that
    /// could not be reached (all zero outside a worker, for a control opcode, or for data
    /// over `package_max_length`).
    pub fn broadcast(&self, data: impl AsRef<[u8]>, opcode: OpCode) -> BroadcastReport {
        self.with_cx(|cx| cx.broadcast(data.as_ref(), opcode))
            .unwrap_or_default()
    }

    /// Like [`broadcast`](Server::broadcast) but only to `fds` (grouped per worker, one
    /// crossing per worker that has any of them).
    pub fn broadcast_to(
        &self,
        fds: &[Fd],
        data: impl AsRef<[u8]>,
        opcode: OpCode,
    ) -> BroadcastReport {
        self.with_cx(|cx| cx.broadcast_to(fds, data.as_ref(), opcode))
            .unwrap_or_default()
    }

    /// Sends `data` to another worker's `on_pipe_message` (`$server->sendMessage`).
    /// Returns `false` for an unknown worker id or outside a worker.
    pub fn send_message(&self, data: impl AsRef<[u8]>, worker_id: usize) -> bool {
        self.with_cx(|cx| cx.send_to_worker(worker_id, PIPE_CHANNEL, data.as_ref()))
            .unwrap_or(false)
    }

    /// Runs `f` after the current event is handled (`$server->defer`), e.g. open logic after a
    /// custom handshake's 101 has been queued. Ignored outside a worker.
    pub fn defer(&self, f: impl FnOnce(&Server) + 'static) {
        self.with_cx(|cx| cx.defer(move |s, _| f(s)));
    }

    /// Calls `f` every `ms` milliseconds in this worker (`Swoole\Timer::tick`).
    pub fn tick(&self, ms: u64, mut f: impl FnMut(&Server, TimerId) + 'static) -> Option<TimerId> {
        self.with_cx(|cx| cx.tick(ms, move |s, _, id| f(s, id)))
    }

    /// Calls `f` once after `ms` milliseconds (`Swoole\Timer::after`).
    pub fn after(&self, ms: u64, f: impl FnOnce(&Server) + 'static) -> Option<TimerId> {
        self.with_cx(|cx| cx.after(ms, move |s, _| f(s)))
    }

    /// Cancels a timer (`Swoole\Timer::clear`).
    pub fn clear_timer(&self, id: TimerId) -> bool {
        self.with_cx(|cx| cx.clear_timer(id)).unwrap_or(false)
    }

    /// This worker's id (0-based); `None` in the master.
    pub fn worker_id(&self) -> Option<usize> {
        self.with_cx(|cx| cx.worker_id())
    }

    /// Server-wide counters (connections, accepted/closed totals, per worker).
    pub fn stats(&self) -> Option<Stats> {
        self.with_cx(|cx| cx.stats())
    }

    /// A handle other threads of this worker can use to push (`Send + Sync`).
    pub fn handle(&self) -> Option<ServerHandle> {
        self.with_cx(|cx| ServerHandle::new(cx.handle()))
    }

    /// The worker context, for code that drives the runtime directly (`None` in the master).
    pub fn context(&self) -> Option<Ctx<Server>> {
        self.cx.borrow().clone()
    }
}
