//! The methods callbacks call on `&Server` (Swoole's `$server->push(...)` and friends).

use std::any::Any;

use crate::protocol::close::is_valid_app_close_code;
use crate::protocol::frame::{encode_frame, OpCode, FLAG_FIN, WEBSOCKET_STATUS_ACTIVE};
use crate::runtime::ipc::Msg;
use crate::runtime::table::{ConnectionInfo, Fd, Stats};
use crate::runtime::timer::{TimerFn, TimerId};
use crate::runtime::worker::Runtime;
use crate::server::{Server, ServerHandle};

/// Where an fd lives, seen from this worker.
enum Owner {
    Local(usize),
    Remote(usize),
}

impl Server {
    fn owner(&self, rt: &Runtime, fd: Fd) -> Option<Owner> {
        let (region, slot) = rt.table.live_slot(fd)?;
        if region != rt.region {
            return Some(Owner::Remote(region));
        }
        // The slab entry must be this very connection (defence in depth for slot reuse).
        rt.conns
            .get(slot)
            .filter(|c| c.fd == fd)
            .map(|_| Owner::Local(slot))
    }

    /// Runs `local` on this worker's slot for `fd`, or sends the message `encode` builds to
    /// the worker that owns it — for a remote fd only while it is an established WebSocket when `need_active`.
    /// `false` for an unknown fd and outside a worker.
    fn route(
        &self,
        fd: Fd,
        need_active: bool,
        local: impl FnOnce(&mut Runtime, usize) -> bool,
        encode: impl FnOnce() -> Vec<u8>,
    ) -> bool {
        let mut guard = self.rt.borrow_mut();
        let Some(rt) = guard.as_deref_mut() else {
            return false;
        };
        match self.owner(rt, fd) {
            Some(Owner::Local(key)) => local(rt, key),
            Some(Owner::Remote(region)) => {
                if need_active && rt.table.status(fd) != WEBSOCKET_STATUS_ACTIVE {
                    return false;
                }
                rt.send_ipc(region, encode())
            }
            None => false,
        }
    }

    /// Sends a message to a WebSocket client of any worker (`$server->push`).
    ///
    /// `flags` is `FLAG_FIN` for a whole message; add `FLAG_COMPRESS` to compress it when the
    /// client negotiated permessage-deflate. Returns `false` for an unknown, not yet
    /// established or closing fd, for a message larger than `package_max_length`, and outside
    /// a worker.
    pub fn push(&self, fd: Fd, data: impl AsRef<[u8]>, opcode: OpCode, flags: u8) -> bool {
        let data = data.as_ref();
        if data.len() > self.settings.package_max_length {
            log::warn!(
                "push to fd {fd}: {} bytes exceed package_max_length ({})",
                data.len(),
                self.settings.package_max_length
            );
            return false;
        }
        match opcode {
            // A close frame goes through the closing handshake (code and reason validated).
            OpCode::Close => {
                let code = match data {
                    [] => 1000,
                    [a, b, ..] => u16::from_be_bytes([*a, *b]),
                    [_] => return false,
                };
                let reason = data.get(2..).and_then(|r| std::str::from_utf8(r).ok());
                return reason.is_some_and(|r| self.disconnect(fd, code, r));
            }
            // Fragmented sends are not supported through push: a message is pushed whole.
            OpCode::Continuation => return false,
            _ => {}
        }
        if opcode.is_control() && (data.len() > 125 || flags & FLAG_FIN == 0) {
            return false;
        }
        let limit = self.settings.buffer_output_size;
        self.route(
            fd,
            true,
            |rt, key| rt.push_local(key, data, opcode.as_u8(), flags, limit),
            || {
                Msg::Push {
                    fd,
                    opcode: opcode.as_u8(),
                    flags,
                    data,
                }
                .encode()
            },
        )
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
        if !is_valid_app_close_code(code) || reason.len() > 123 {
            return false;
        }
        let wait = self.settings.max_wait_time.as_millis() as u64;
        self.route(
            fd,
            true,
            |rt, key| {
                if !rt.conns.get(key).is_some_and(|c| c.can_send()) {
                    return false;
                }
                rt.send_close(key, code, reason);
                rt.close_deadline(key, fd, wait);
                true
            },
            || {
                Msg::Disconnect {
                    fd,
                    code,
                    reason: reason.as_bytes(),
                }
                .encode()
            },
        )
    }

    /// Closes a connection of any worker without a close frame, after what is already queued
    /// for it is written (`$server->close`). Returns `false` for an unknown fd.
    pub fn close(&self, fd: Fd) -> bool {
        self.route(
            fd,
            false,
            |rt, key| {
                rt.kill_after_flush(key);
                true
            },
            // Code 0 never passes `disconnect`'s validation: it means "close, no frame".
            || {
                Msg::Disconnect {
                    fd,
                    code: 0,
                    reason: b"",
                }
                .encode()
            },
        )
    }

    /// Whether the connection exists (any worker, any state) (`$server->exist`).
    pub fn exist(&self, fd: Fd) -> bool {
        self.table.is_some_and(|t| t.info(fd).is_some())
    }

    /// Whether the connection is an established WebSocket (`$server->isEstablished`).
    pub fn is_established(&self, fd: Fd) -> bool {
        self.table
            .is_some_and(|t| t.status(fd) == WEBSOCKET_STATUS_ACTIVE)
    }

    /// Connection details from the shared table, for an fd of any worker
    /// (`$server->connection_info` / `getClientInfo`).
    pub fn connection_info(&self, fd: Fd) -> Option<ConnectionInfo> {
        self.table.and_then(|t| t.info(fd))
    }

    /// Every connection of the whole server (`$server->connections`).
    pub fn connections(&self) -> Vec<Fd> {
        self.table.map(|t| t.live_fds()).unwrap_or_default()
    }

    /// Sends one message to every established WebSocket client of the server. The frame is
    /// encoded once and crosses to each other worker once. Returns the number of local
    /// recipients plus the workers it was sent to.
    pub fn broadcast(&self, data: impl AsRef<[u8]>, opcode: OpCode) -> bool {
        self.broadcast_inner(data.as_ref(), opcode, None)
    }

    /// Like [`broadcast`](Server::broadcast) but only to `fds` (grouped per worker, one
    /// crossing per worker).
    pub fn broadcast_to(&self, fds: &[Fd], data: impl AsRef<[u8]>, opcode: OpCode) -> bool {
        self.broadcast_inner(data.as_ref(), opcode, Some(fds))
    }

    fn broadcast_inner(&self, data: &[u8], opcode: OpCode, only: Option<&[Fd]>) -> bool {
        if data.len() > self.settings.package_max_length || opcode.is_control() {
            return false;
        }
        let mut frame = Vec::with_capacity(data.len() + 10);
        encode_frame(&mut frame, true, false, opcode.as_u8(), data, None);
        // (region, only these fds) per other worker, and the local fds (None = all).
        type Targets = Vec<(usize, Option<Vec<Fd>>)>;
        let (targets, local): (Targets, Option<Vec<Fd>>) = {
            let guard = self.rt.borrow();
            let Some(rt) = guard.as_deref() else {
                return false;
            };
            match only {
                None => (
                    rt.other_live_regions()
                        .into_iter()
                        .map(|r| (r, None))
                        .collect(),
                    None,
                ),
                Some(fds) => {
                    let mut per: Vec<Vec<Fd>> = vec![Vec::new(); rt.table.regions()];
                    for &fd in fds {
                        if let Some(r) = rt.table.region_of(fd) {
                            per[r].push(fd);
                        }
                    }
                    let local = std::mem::take(&mut per[rt.region]);
                    (
                        per.into_iter()
                            .enumerate()
                            .filter(|(_, v)| !v.is_empty())
                            .map(|(r, v)| (r, Some(v)))
                            .collect(),
                        Some(local),
                    )
                }
            }
        };
        for (region, fds) in targets {
            let body = Msg::Broadcast {
                frame: &frame,
                only: fds,
            }
            .encode();
            self.rt().send_ipc(region, body);
        }
        self.broadcast_local(&frame, local.as_deref());
        true
    }

    /// Sends `data` to another worker's `on_pipe_message` (`$server->sendMessage`).
    /// Returns `false` for an unknown worker id or outside a worker.
    pub fn send_message(&self, data: impl AsRef<[u8]>, worker_id: usize) -> bool {
        let data = data.as_ref();
        let mut guard = self.rt.borrow_mut();
        let Some(rt) = guard.as_deref_mut() else {
            return false;
        };
        if worker_id >= rt.worker_num {
            return false;
        }
        let from = rt.worker_id as u32;
        if worker_id == rt.worker_id {
            // Delivered to ourselves after the current event, like a message from the pipe.
            let owned = data.to_vec();
            drop(guard);
            self.defer(move |s| {
                if let Some(cb) = &s.cb.on_pipe_message {
                    cb(s, from as usize, &owned);
                }
            });
            return true;
        }
        let Some(region) = rt.region_for_worker(worker_id) else {
            return false;
        };
        let body = Msg::User {
            from_worker: from,
            data,
        }
        .encode();
        rt.send_ipc(region, body)
    }

    /// Runs `f` after the current event is handled (`$server->defer`), e.g. open logic after a
    /// custom handshake's 101 has been queued.
    pub fn defer(&self, f: impl FnOnce(&Server) + 'static) {
        self.deferred.borrow_mut().push(Box::new(f));
    }

    /// Calls `f` every `ms` milliseconds in this worker (`Swoole\Timer::tick`).
    pub fn tick(&self, ms: u64, f: impl FnMut(&Server, TimerId) + 'static) -> Option<TimerId> {
        self.add_timer(ms, true, Box::new(f))
    }

    /// Calls `f` once after `ms` milliseconds (`Swoole\Timer::after`).
    pub fn after(&self, ms: u64, f: impl FnOnce(&Server) + 'static) -> Option<TimerId> {
        let mut f = Some(f);
        self.add_timer(
            ms,
            false,
            Box::new(move |s, _| {
                if let Some(f) = f.take() {
                    f(s)
                }
            }),
        )
    }

    fn add_timer(&self, ms: u64, repeat: bool, f: TimerFn<Server>) -> Option<TimerId> {
        let mut guard = self.rt.borrow_mut();
        let rt = guard.as_deref_mut()?;
        let now = rt.now_ms;
        rt.timers.as_mut().map(|t| t.add(now, ms, repeat, f))
    }

    /// Cancels a timer (`Swoole\Timer::clear`).
    pub fn clear_timer(&self, id: TimerId) -> bool {
        let mut guard = self.rt.borrow_mut();
        guard
            .as_deref_mut()
            .and_then(|rt| rt.timers.as_mut())
            .is_some_and(|t| t.clear(id))
    }

    /// This worker's id (0-based); `None` in the master.
    pub fn worker_id(&self) -> Option<usize> {
        self.rt.borrow().as_deref().map(|rt| rt.worker_id)
    }

    /// Server-wide counters (connections, accepted/closed totals, per worker).
    pub fn stats(&self) -> Option<Stats> {
        self.table.map(|t| t.stats())
    }

    /// A handle other threads of this worker can use to push (`Send + Sync`).
    pub fn handle(&self) -> Option<ServerHandle> {
        let guard = self.rt.borrow();
        let rt = guard.as_deref()?;
        Some(ServerHandle::new(rt.handle_tx.clone(), rt.waker.clone()))
    }

    /// Stores a value in the connection's context (Hyperf's `Context::set` for a connection).
    /// Only for connections of this worker (the context lives with the connection); released
    /// when it closes.
    pub fn set_context<T: Any>(&self, fd: Fd, key: &str, value: T) -> bool {
        let mut guard = self.rt.borrow_mut();
        let Some(rt) = guard.as_deref_mut() else {
            return false;
        };
        let Some(Owner::Local(k)) = self.owner(rt, fd) else {
            return false;
        };
        let c = &mut rt.conns[k];
        c.ctx
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), Box::new(value));
        true
    }

    /// Reads a value from the connection's context (a clone of it).
    pub fn get_context<T: Any + Clone>(&self, fd: Fd, key: &str) -> Option<T> {
        let mut guard = self.rt.borrow_mut();
        let rt = guard.as_deref_mut()?;
        let Some(Owner::Local(k)) = self.owner(rt, fd) else {
            return None;
        };
        rt.conns[k]
            .ctx
            .as_ref()?
            .get(key)?
            .downcast_ref::<T>()
            .cloned()
    }
}

impl Runtime {
    /// Closes the connection if the peer has not answered our close frame within `wait_ms`.
    pub(crate) fn close_deadline(&mut self, key: usize, fd: Fd, wait_ms: u64) {
        self.push_deadline(self.now_ms + wait_ms, key, fd);
    }
}
