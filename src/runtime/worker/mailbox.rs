//! Work sent to a worker from other threads of its process (a user's thread pool, a Redis
//! subscriber): closures queued on a channel, run on the reactor thread after a `Waker` wakes
//! it.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};
use mio::Waker;

use super::{guarded, Ctx, Worker};
use crate::protocol::frame::WEBSOCKET_STATUS_ACTIVE;
use crate::runtime::handler::Handler;
use crate::runtime::table::{ConnectionInfo, Fd, SharedTable};

/// A closure to run on the worker, with its handler and context.
pub(crate) type Job<H> = Box<dyn FnOnce(&H, &Ctx<H>) + Send>;

/// `Send + Sync + Clone` access to one worker from other threads of its process: each
/// [`run`](WorkerHandle::run) queues a closure and wakes the reactor, which runs it between
/// events (with no runtime borrow held, like any handler method).
///
/// ```no_run
/// # use prefork_ws::runtime::{Ctx, Handler, ConnId, Message};
/// # struct App;
/// # impl Handler for App { fn on_message(&self, _: &Ctx<Self>, _: ConnId, _: Message<'_>) {} }
/// fn start_pusher(cx: &Ctx<App>, fd: u64) {
///     let handle = cx.handle();
///     std::thread::spawn(move || {
///         handle.run(move |_app, cx| {
///             cx.push(fd, b"from a thread", prefork_ws::OpCode::Text, prefork_ws::FLAG_FIN);
///         });
///     });
/// }
/// ```
pub struct WorkerHandle<H> {
    tx: Sender<Job<H>>,
    waker: Arc<Waker>,
    table: SharedTable,
    /// Set while the queue is full (a refusal is logged once per episode).
    full: Arc<AtomicBool>,
    _h: PhantomData<fn(&H)>,
}

impl<H> Clone for WorkerHandle<H> {
    fn clone(&self) -> Self {
        WorkerHandle {
            tx: self.tx.clone(),
            waker: self.waker.clone(),
            table: self.table,
            full: self.full.clone(),
            _h: PhantomData,
        }
    }
}

impl<H: Handler> WorkerHandle<H> {
    pub(crate) fn new(tx: Sender<Job<H>>, waker: Arc<Waker>, table: SharedTable) -> Self {
        WorkerHandle {
            tx,
            waker,
            table,
            full: Arc::new(AtomicBool::new(false)),
            _h: PhantomData,
        }
    }

    /// Whether `fd` is an established WebSocket on any worker (read from the shared table,
    /// from any thread).
    pub fn is_established(&self, fd: Fd) -> bool {
        self.table.status(fd) == WEBSOCKET_STATUS_ACTIVE
    }

    /// Connection details of `fd` on any worker, from any thread.
    pub fn connection_info(&self, fd: Fd) -> Option<ConnectionInfo> {
        self.table.info(fd)
    }

    /// Runs `f` on the worker's thread. `false` if the worker is gone or
    /// `handle_queue_size` jobs are already waiting (the worker is not keeping up).
    pub fn run(&self, f: impl FnOnce(&H, &Ctx<H>) + Send + 'static) -> bool {
        match self.tx.try_send(Box::new(f)) {
            Ok(()) => {
                self.full.store(false, Ordering::Relaxed);
                self.waker.wake().is_ok()
            }
            Err(TrySendError::Full(_)) => {
                if !self.full.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "worker handle: {} jobs wait (handle_queue_size); refusing until the worker catches up",
                        self.tx.len()
                    );
                }
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Hands `data` to worker `worker_id`'s `on_peer_message` on `channel`, through this
    /// worker (closures cannot cross processes; bytes on a channel can). The send itself
    /// happens on this worker's thread; `false` only if this worker is gone.
    pub fn send_to_worker(&self, worker_id: usize, channel: u16, data: Vec<u8>) -> bool {
        self.run(move |_, cx| {
            if !cx.send_to_worker(worker_id, channel, &data) {
                log::warn!("worker handle: worker {worker_id} cannot be reached");
            }
        })
    }
}

impl<H: Handler> Worker<H> {
    /// Runs the jobs queued by other threads.
    pub(super) fn on_jobs(&self) {
        let jobs: Vec<Job<H>> = self.cx.inner().jobs_rx.try_iter().collect();
        for job in jobs {
            guarded("worker handle job", || job(&self.handler, &self.cx));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::handler::{ConnId, Message};

    struct Nop;
    impl Handler for Nop {
        fn on_message(&self, _: &Ctx<Self>, _: ConnId, _: Message<'_>) {}
    }

    #[test]
    fn jobs_from_other_threads_are_bounded() {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let table = SharedTable::create(2, 4).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(2);
        let h: WorkerHandle<Nop> = WorkerHandle::new(tx, waker, table);
        let other = h.clone();
        assert!(h.run(|_, _| {}));
        assert!(other.run(|_, _| {}));
        assert!(
            !h.run(|_, _| {}),
            "the third job waits beyond handle_queue_size"
        );
        assert!(!other.run(|_, _| {}));
        drop(rx.try_recv());
        assert!(h.run(|_, _| {}), "room again once the worker took one");
        drop(rx);
        assert!(!h.run(|_, _| {}), "the worker is gone");
    }
}
