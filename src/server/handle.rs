//! A thread-safe handle: threads started by user code push through it; the worker executes
//! the commands on its reactor thread (crossbeam channel + mio `Waker`).

use std::sync::Arc;

use crossbeam_channel::Sender;
use mio::Waker;

use crate::protocol::frame::OpCode;
use crate::runtime::table::Fd;
use crate::server::Server;

pub(crate) enum Command {
    Push {
        fd: Fd,
        data: Vec<u8>,
        opcode: OpCode,
        flags: u8,
    },
    Disconnect {
        fd: Fd,
        code: u16,
        reason: String,
    },
    Broadcast {
        data: Vec<u8>,
        opcode: OpCode,
    },
    SendMessage {
        data: Vec<u8>,
        worker_id: usize,
    },
}

impl Command {
    pub(crate) fn apply(self, s: &Server) {
        match self {
            Command::Push {
                fd,
                data,
                opcode,
                flags,
            } => {
                s.push(fd, data, opcode, flags);
            }
            Command::Disconnect { fd, code, reason } => {
                s.disconnect(fd, code, &reason);
            }
            Command::Broadcast { data, opcode } => {
                s.broadcast(data, opcode);
            }
            Command::SendMessage { data, worker_id } => {
                s.send_message(data, worker_id);
            }
        }
    }
}

/// `Send + Sync + Clone` access to a worker's server from other threads of that worker.
/// Each call queues a command and wakes the reactor; it returns `false` only if the worker is
/// gone.
#[derive(Clone)]
pub struct ServerHandle {
    tx: Sender<Command>,
    waker: Arc<Waker>,
}

impl ServerHandle {
    pub(crate) fn new(tx: Sender<Command>, waker: Arc<Waker>) -> Self {
        ServerHandle { tx, waker }
    }

    fn send(&self, c: Command) -> bool {
        self.tx.send(c).is_ok() && self.waker.wake().is_ok()
    }

    /// Queues a `push`.
    pub fn push(&self, fd: Fd, data: impl Into<Vec<u8>>, opcode: OpCode, flags: u8) -> bool {
        self.send(Command::Push {
            fd,
            data: data.into(),
            opcode,
            flags,
        })
    }

    /// Queues a `disconnect`.
    pub fn disconnect(&self, fd: Fd, code: u16, reason: &str) -> bool {
        self.send(Command::Disconnect {
            fd,
            code,
            reason: reason.to_string(),
        })
    }

    /// Queues a `broadcast`.
    pub fn broadcast(&self, data: impl Into<Vec<u8>>, opcode: OpCode) -> bool {
        self.send(Command::Broadcast {
            data: data.into(),
            opcode,
        })
    }

    /// Queues a `send_message`.
    pub fn send_message(&self, data: impl Into<Vec<u8>>, worker_id: usize) -> bool {
        self.send(Command::SendMessage {
            data: data.into(),
            worker_id,
        })
    }
}
