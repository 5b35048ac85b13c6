//! [`Sender`] (Hyperf's `Hyperf\WebSocketServer\Sender`): push to and disconnect any
//! connection from any HTTP handler, timer or thread of any worker.

use std::cell::RefCell;

use super::App;
use crate::protocol::close::is_valid_app_close_code;
use crate::protocol::frame::{OpCode, FLAG_FIN};
use crate::runtime::table::Fd;
use crate::runtime::{Ctx, WorkerHandle};

thread_local! {
    /// The worker's context on its reactor thread (unset on other threads).
    static REACTOR: RefCell<Option<Ctx<App>>> = const { RefCell::new(None) };
}

pub(crate) fn set_reactor(cx: &Ctx<App>) {
    REACTOR.with(|r| *r.borrow_mut() = Some(cx.clone()));
}

/// `Send + Sync + Clone`. A push goes straight to the worker that owns the fd (the fd names it
/// in O(1): one crossing, not a message to every worker as in Hyperf), and the result is the
/// truth: `true` only when the fd is an established WebSocket connection.
///
/// On the worker's own thread the push happens at once. From another thread it is handed to
/// the worker's reactor; `true` then means "established when the push was queued".
#[derive(Clone)]
pub struct Sender {
    handle: WorkerHandle<App>,
    /// `package_max_length`: a larger push is refused here, so the answer is true.
    max: usize,
}

impl Sender {
    pub(crate) fn new(cx: &Ctx<App>) -> Sender {
        Sender {
            handle: cx.handle(),
            max: cx.settings().package_max_length,
        }
    }

    fn on_reactor<R>(f: impl FnOnce(&Ctx<App>) -> R) -> Option<R> {
        let cx = REACTOR.with(|r| r.borrow().clone())?;
        Some(f(&cx))
    }

    fn send(&self, fd: Fd, data: &[u8], opcode: OpCode) -> bool {
        if let Some(ok) = Self::on_reactor(|cx| cx.push(fd, data, opcode, FLAG_FIN)) {
            return ok;
        }
        if data.len() > self.max || !self.handle.is_established(fd) {
            return false;
        }
        let data = data.to_vec();
        self.handle.run(move |_, cx| {
            cx.push(fd, &data, opcode, FLAG_FIN);
        })
    }

    /// Pushes a text message to `fd`.
    pub fn push(&self, fd: Fd, data: impl AsRef<[u8]>) -> bool {
        self.send(fd, data.as_ref(), OpCode::Text)
    }

    /// Pushes a binary message to `fd`.
    pub fn push_binary(&self, fd: Fd, data: impl AsRef<[u8]>) -> bool {
        self.send(fd, data.as_ref(), OpCode::Binary)
    }

    /// Closes `fd` with a close frame (`code` 1000 or 4000–4999, `reason` ≤ 123 bytes).
    pub fn disconnect(&self, fd: Fd, code: u16, reason: &str) -> bool {
        if let Some(ok) = Self::on_reactor(|cx| cx.disconnect(fd, code, reason)) {
            return ok;
        }
        // The same rule `Ctx::disconnect` applies, checked here so that the answer is true.
        if !is_valid_app_close_code(code) || reason.len() > 123 || !self.handle.is_established(fd) {
            return false;
        }
        let reason = reason.to_string();
        self.handle.run(move |_, cx| {
            cx.disconnect(fd, code, &reason);
        })
    }

    /// Sends to every established WebSocket connection of every worker (encoded once);
    /// `false` if it could not be queued from this thread.
    pub fn broadcast(&self, data: impl AsRef<[u8]>, opcode: OpCode) -> bool {
        let data = data.as_ref();
        if Self::on_reactor(|cx| cx.broadcast(data, opcode)).is_some() {
            return true;
        }
        let data = data.to_vec();
        self.handle.run(move |_, cx| {
            cx.broadcast(&data, opcode);
        })
    }

    /// Whether `fd` is an established WebSocket connection on any worker.
    pub fn is_established(&self, fd: Fd) -> bool {
        self.handle.is_established(fd)
    }
}
