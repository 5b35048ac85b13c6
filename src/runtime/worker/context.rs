//! [`Ctx`]: what handler methods, deferred work, timers and mailbox jobs use to act on the
//! worker and on the whole server.

use std::cell::{RefCell, RefMut};
use std::rc::Rc;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use mio::Waker;

use super::mailbox::{Job, WorkerHandle};
use super::Core;
use crate::protocol::close::{is_valid_app_close_code, is_valid_wire_close_code};
use crate::protocol::frame::{encode_frame, OpCode, FLAG_FIN, WEBSOCKET_STATUS_ACTIVE};
use crate::runtime::handler::{ConnId, Handler};
use crate::runtime::http::Response;
use crate::runtime::ipc::{Inbox, Msg};
use crate::runtime::settings::Settings;
use crate::runtime::table::{ConnectionInfo, Fd, SharedTable, Stats};
use crate::runtime::timer::{TimerId, Timers};

pub(crate) type DeferFn<H> = Box<dyn FnOnce(&H, &Ctx<H>)>;
pub(crate) type TimerFn<H> = Box<dyn FnMut(&H, &Ctx<H>, TimerId)>;

pub(crate) struct Inner<H> {
    pub core: RefCell<Core>,
    /// Drained while peer messages are delivered, so it is not part of `core`.
    pub inbox: RefCell<Inbox>,
    pub deferred: RefCell<Vec<DeferFn<H>>>,
    pub timers: RefCell<Timers<TimerFn<H>>>,
    pub jobs_tx: Sender<Job<H>>,
    pub jobs_rx: Receiver<Job<H>>,
    pub waker: Arc<Waker>,
    pub settings: Rc<Settings>,
    pub table: SharedTable,
    pub worker_id: usize,
    pub worker_num: usize,
    pub slots: usize,
}

/// The worker context: a cheap handle (`Clone`) to one worker's reactor, valid for the life
/// of the worker. Handlers get it in every method; keep a clone to use it from timers or
/// deferred work.
///
/// **Borrow rule.** Every method borrows the reactor's state only for its own duration and
/// never calls back into the handler while it does. The runtime, in turn, never holds that
/// borrow while a handler method, a deferred closure, a timer or a mailbox job runs. So any
/// method may be called from anywhere on the worker's thread, re-entrantly — from `on_message`,
/// from `on_close`, from a timer. The only per-connection state the runtime takes out while a
/// handler runs is the message decoder of the connection being delivered (the message borrows
/// from it), which no `Ctx` method touches.
pub struct Ctx<H>(Rc<Inner<H>>);

impl<H> Clone for Ctx<H> {
    fn clone(&self) -> Self {
        Ctx(self.0.clone())
    }
}

/// What a broadcast reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastReport {
    /// Recipients of this worker the frame was written or queued to.
    pub local: usize,
    /// Other workers the frame was sent to (each delivers it to its own recipients).
    pub workers: usize,
    /// Other workers that should have got it but could not be reached.
    pub unreachable: usize,
}

impl BroadcastReport {
    /// Every worker that had recipients was reached.
    pub fn complete(&self) -> bool {
        self.unreachable == 0
    }
}

/// Where an fd lives, seen from this worker.
pub(crate) enum Owner {
    Local(usize),
    Remote(usize),
}

impl<H: Handler> Ctx<H> {
    pub(crate) fn new(inner: Inner<H>) -> Self {
        Ctx(Rc::new(inner))
    }

    pub(crate) fn inner(&self) -> &Inner<H> {
        &self.0
    }

    /// The reactor state, for one callback-free stretch.
    pub(crate) fn core(&self) -> RefMut<'_, Core> {
        self.0.core.borrow_mut()
    }

    /// This worker's id (0-based).
    pub fn worker_id(&self) -> usize {
        self.0.worker_id
    }

    /// Number of worker ids of the server.
    pub fn worker_num(&self) -> usize {
        self.0.worker_num
    }

    /// The settings this worker runs with.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// Slots per worker: every [`ConnId::slot`] is below this.
    pub fn slots(&self) -> usize {
        self.0.slots
    }

    /// Monotonic milliseconds at the start of the current event batch.
    pub fn now_ms(&self) -> u64 {
        self.core().now
    }

    /// The worker id whose process holds (or held) connection `fd`: an fd names its worker
    /// whether or not it is still open. `None` for a value that is no fd of this server.
    pub fn worker_of(&self, fd: Fd) -> Option<usize> {
        let r = self.0.table.region_of(fd)?;
        Some(r % self.0.worker_num.max(1))
    }

    /// The local connection `fd`, if it belongs to this worker and is open.
    pub fn local(&self, fd: Fd) -> Option<ConnId> {
        match self.core().owner(fd)? {
            Owner::Local(slot) => Some(ConnId {
                fd,
                slot: slot as u32,
            }),
            Owner::Remote(_) => None,
        }
    }

    /// Sends a message to a WebSocket client of any worker (Swoole's `push`).
    ///
    /// `flags` is `FLAG_FIN` for a whole message; add `FLAG_COMPRESS` to compress it when the
    /// client negotiated permessage-deflate. A `Close` opcode runs the closing handshake
    /// (see [`disconnect`](Ctx::disconnect)). Returns `false` for an unknown, not established
    /// or closing fd, for a message larger than `package_max_length`, for a control frame over
    /// 125 bytes or without FIN, and for a continuation (messages are pushed whole).
    pub fn push(&self, fd: Fd, data: &[u8], opcode: OpCode, flags: u8) -> bool {
        let max = self.0.settings.package_max_length;
        if data.len() > max {
            log::warn!(
                "push to fd {fd}: {} bytes exceed package_max_length ({max})",
                data.len()
            );
            return false;
        }
        match opcode {
            OpCode::Close => {
                let code = match data {
                    [] => 1000,
                    [a, b, ..] => u16::from_be_bytes([*a, *b]),
                    [_] => return false,
                };
                let reason = data.get(2..).and_then(|r| std::str::from_utf8(r).ok());
                return reason.is_some_and(|r| self.disconnect(fd, code, r));
            }
            OpCode::Continuation => return false,
            _ => {}
        }
        if opcode.is_control() && (data.len() > 125 || flags & FLAG_FIN == 0) {
            return false;
        }
        let op = opcode.as_u8();
        self.route(
            fd,
            true,
            |core, key| core.push_local(key, data, op, flags),
            || {
                Msg::Push {
                    fd,
                    opcode: op,
                    flags,
                    data,
                }
                .encode()
            },
        )
    }

    /// Closes a WebSocket client of any worker with a close frame (Swoole's `disconnect`).
    /// `code` must be 1000 or 4000–4999 and `reason` at most 123 bytes, else `false` and
    /// nothing is sent. The connection closes when the client answers, or after
    /// `max_wait_time`.
    pub fn disconnect(&self, fd: Fd, code: u16, reason: &str) -> bool {
        is_valid_app_close_code(code) && self.close_with(fd, code, reason)
    }

    /// Like [`disconnect`](Ctx::disconnect) with any code a server may send (e.g. 1011 for a
    /// failure of the application, 1008 for a policy violation): what layers use to fail a
    /// connection. `false` for a code not valid on the wire or a reason over 123 bytes.
    pub fn close_with(&self, fd: Fd, code: u16, reason: &str) -> bool {
        if !is_valid_wire_close_code(code) || reason.len() > 123 {
            return false;
        }
        self.route(
            fd,
            true,
            |core, key| core.disconnect_local(key, code, reason),
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

    /// Closes a connection of any worker without a close frame once what is queued for it is
    /// written (Swoole's `close`). `false` for an unknown fd.
    pub fn close(&self, fd: Fd) -> bool {
        self.route(
            fd,
            false,
            |core, key| {
                core.close_local(key);
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

    /// Runs `local` on this worker's slot for `fd`, or sends what `encode` builds to the
    /// worker that owns it — for a remote fd only while it is an established WebSocket when
    /// `need_active`. `false` for an unknown fd.
    fn route(
        &self,
        fd: Fd,
        need_active: bool,
        local: impl FnOnce(&mut Core, usize) -> bool,
        encode: impl FnOnce() -> Vec<u8>,
    ) -> bool {
        let mut core = self.core();
        match core.owner(fd) {
            Some(Owner::Local(key)) => local(&mut core, key),
            Some(Owner::Remote(region)) => {
                if need_active && core.table.status(fd) != WEBSOCKET_STATUS_ACTIVE {
                    return false;
                }
                core.send_ipc(region, &encode())
            }
            None => false,
        }
    }

    /// Sends one message to every established WebSocket client of the server: encoded once,
    /// one crossing per other worker.
    pub fn broadcast(&self, data: &[u8], opcode: OpCode) -> BroadcastReport {
        self.broadcast_inner(data, opcode, None)
    }

    /// Like [`broadcast`](Ctx::broadcast), to `fds` only (grouped by owner: one crossing per
    /// worker that has any of them, none to the others).
    pub fn broadcast_to(&self, fds: &[Fd], data: &[u8], opcode: OpCode) -> BroadcastReport {
        self.broadcast_inner(data, opcode, Some(fds))
    }

    fn broadcast_inner(&self, data: &[u8], opcode: OpCode, only: Option<&[Fd]>) -> BroadcastReport {
        let mut report = BroadcastReport::default();
        if data.len() > self.0.settings.package_max_length || opcode.is_control() {
            return report;
        }
        let mut frame = Vec::with_capacity(data.len() + 10);
        encode_frame(&mut frame, true, false, opcode.as_u8(), data, None);
        let mut core = self.core();
        let (targets, local) = core.broadcast_targets(only);
        // To everyone: one body for every worker (encoded once, copied only if it must wait).
        let to_all = only.is_none().then(|| {
            Msg::Broadcast {
                frame: &frame,
                only: None,
            }
            .encode()
        });
        for (region, fds) in targets {
            let sent = match (&to_all, fds) {
                (Some(body), _) => core.send_ipc(region, body),
                (None, fds) => {
                    let body = Msg::Broadcast {
                        frame: &frame,
                        only: fds,
                    }
                    .encode();
                    core.send_ipc(region, &body)
                }
            };
            if sent {
                report.workers += 1;
            } else {
                report.unreachable += 1;
            }
        }
        report.local = core.broadcast_local(&frame, local.as_deref());
        report
    }

    /// Sends `data` on `channel` to worker `worker_id`'s [`Handler::on_peer_message`] (to this
    /// worker itself: after the current event). Encoded once; `false` for an unknown worker
    /// id, one that cannot be reached (its queue is at `pipe_buffer_size`), and data larger
    /// than `pipe_buffer_size`.
    pub fn send_to_worker(&self, worker_id: usize, channel: u16, data: &[u8]) -> bool {
        if worker_id >= self.0.worker_num || data.len() > self.0.settings.pipe_buffer_size {
            return false;
        }
        let from = self.0.worker_id;
        if worker_id == from {
            let owned = data.to_vec();
            self.defer(move |h, cx| h.on_peer_message(cx, from, channel, &owned));
            return true;
        }
        let mut core = self.core();
        let Some(region) = core.region_for_worker(worker_id) else {
            return false;
        };
        let body = Msg::Peer {
            channel,
            from_worker: from as u32,
            data,
        }
        .encode();
        core.send_ipc(region, &body)
    }

    /// Sends `data` on `channel` to every other running worker (encoded once). Returns how
    /// many it was sent to.
    pub fn send_to_all_workers(&self, channel: u16, data: &[u8]) -> usize {
        if data.len() > self.0.settings.pipe_buffer_size {
            return 0;
        }
        let from = self.0.worker_id as u32;
        let body = Msg::Peer {
            channel,
            from_worker: from,
            data,
        }
        .encode();
        let mut core = self.core();
        let regions: Vec<usize> = (0..self.0.worker_num)
            .filter(|&w| w != self.0.worker_id)
            .filter_map(|w| core.region_for_worker(w))
            .collect();
        regions
            .into_iter()
            .filter(|&r| core.send_ipc(r, &body))
            .count()
    }

    /// Answers a request the handler held ([`HttpReply::Hold`](crate::runtime::HttpReply)).
    /// `false` if the connection is gone or has no held request.
    pub fn respond(&self, conn: ConnId, response: Response) -> bool {
        self.core().answer_held(conn, response)
    }

    /// Whether the connection exists (any worker, any state).
    pub fn exist(&self, fd: Fd) -> bool {
        self.0.table.info(fd).is_some()
    }

    /// Whether the connection is an established WebSocket (any worker).
    pub fn is_established(&self, fd: Fd) -> bool {
        self.0.table.status(fd) == WEBSOCKET_STATUS_ACTIVE
    }

    /// Connection details from the shared table, for an fd of any worker.
    pub fn connection_info(&self, fd: Fd) -> Option<ConnectionInfo> {
        self.0.table.info(fd)
    }

    /// Every connection of the whole server.
    pub fn connections(&self) -> Vec<Fd> {
        self.0.table.live_fds()
    }

    /// Server-wide counters.
    pub fn stats(&self) -> Stats {
        self.0.table.stats()
    }

    /// Runs `f` after the current event is handled, outside any handler method.
    pub fn defer(&self, f: impl FnOnce(&H, &Ctx<H>) + 'static) {
        self.0.deferred.borrow_mut().push(Box::new(f));
    }

    /// Calls `f` every `ms` milliseconds (monotonic) until cleared.
    pub fn tick(&self, ms: u64, f: impl FnMut(&H, &Ctx<H>, TimerId) + 'static) -> TimerId {
        let now = self.now_ms();
        self.0.timers.borrow_mut().add(now, ms, true, Box::new(f))
    }

    /// Calls `f` once after `ms` milliseconds.
    pub fn after(&self, ms: u64, f: impl FnOnce(&H, &Ctx<H>) + 'static) -> TimerId {
        let mut f = Some(f);
        let now = self.now_ms();
        let cb: TimerFn<H> = Box::new(move |h, cx, _| {
            if let Some(f) = f.take() {
                f(h, cx)
            }
        });
        self.0.timers.borrow_mut().add(now, ms, false, cb)
    }

    /// Cancels a timer; `false` if it already fired (one-shot) or does not exist.
    pub fn clear_timer(&self, id: TimerId) -> bool {
        let removed = self.0.timers.borrow_mut().clear(id);
        // Dropped outside the borrow: its captures may use timers as they drop.
        removed.is_some()
    }

    /// A `Send + Sync` handle through which other threads of this process run closures on
    /// this worker's reactor.
    pub fn handle(&self) -> WorkerHandle<H> {
        WorkerHandle::new(self.0.jobs_tx.clone(), self.0.waker.clone(), self.0.table)
    }
}
