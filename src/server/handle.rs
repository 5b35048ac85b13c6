//! A thread-safe handle: threads started by user code push through it; the worker runs each
//! call on its reactor thread (through the runtime's `WorkerHandle`).

use crate::protocol::frame::OpCode;
use crate::runtime::table::Fd;
use crate::runtime::WorkerHandle;
use crate::server::Server;

/// `Send + Sync + Clone` access to a worker's server from other threads of that worker.
/// Each call queues a command and wakes the reactor; it returns `false` if the worker is gone
/// or `handle_queue_size` commands already wait (retry later, or slow down).
#[derive(Clone)]
pub struct ServerHandle {
    worker: WorkerHandle<Server>,
}

impl ServerHandle {
    pub(crate) fn new(worker: WorkerHandle<Server>) -> Self {
        ServerHandle { worker }
    }

    /// Queues a `push`.
    pub fn push(&self, fd: Fd, data: impl Into<Vec<u8>>, opcode: OpCode, flags: u8) -> bool {
        let data = data.into();
        self.worker.run(move |s, _| {
            s.push(fd, &data, opcode, flags);
        })
    }

    /// Queues a `disconnect`.
    pub fn disconnect(&self, fd: Fd, code: u16, reason: &str) -> bool {
        let reason = reason.to_string();
        self.worker.run(move |s, _| {
            s.disconnect(fd, code, &reason);
        })
    }

    /// Queues a `broadcast`.
    pub fn broadcast(&self, data: impl Into<Vec<u8>>, opcode: OpCode) -> bool {
        let data = data.into();
        self.worker.run(move |s, _| {
            s.broadcast(&data, opcode);
        })
    }

    /// Queues a `send_message`.
    pub fn send_message(&self, data: impl Into<Vec<u8>>, worker_id: usize) -> bool {
        let data = data.into();
        self.worker.run(move |s, _| {
            s.send_message(&data, worker_id);
        })
    }
}
