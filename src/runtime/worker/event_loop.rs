//! The reactor loop: poll, dispatch readiness by token, then the batch's end.

use std::io;
use std::time::Duration;

use mio::{Events, Poll};
use nix::sys::signal::Signal;

use super::tokens::Source;
use super::Worker;
use crate::runtime::clock;
use crate::runtime::handler::Handler;
use crate::runtime::signals::SignalPipe;

impl<H: Handler> Worker<H> {
    /// Runs until the worker has stopped (SIGTERM/SIGINT and drained, or out of time).
    pub(super) fn run(&self, mut poll: Poll, sig: &SignalPipe) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            self.cx.core().turn(clock::mono_ms(), clock::wall_ms());
            let tokens = self.cx.core().tokens;
            for ev in events.iter() {
                match tokens.classify(ev.token()) {
                    Source::Conn(k) => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.on_readable(k, ev.is_read_closed() || ev.is_error());
                        }
                        if ev.is_writable() {
                            self.cx.core().flush(k);
                        }
                    }
                    Source::Listener(i) => self.cx.core().accept_all(i),
                    Source::IpcTx(r) => self.cx.core().flush_ipc(r),
                    Source::IpcRx => self.on_ipc(),
                    Source::Waker => self.on_jobs(),
                    Source::Signal => self.on_signals(sig),
                    Source::Unknown => {}
                }
            }
            self.resume_input();
            self.on_timers();
            self.after_batch();
            if self.cx.core().stop_done() {
                break;
            }
        }
        self.finish_stop();
        Ok(())
    }

    fn on_signals(&self, sig: &SignalPipe) {
        for s in sig.drain() {
            match s {
                Signal::SIGTERM | Signal::SIGINT => self.begin_stop(),
                // From the master: a worker died or came back.
                Signal::SIGUSR2 => self.cx.core().adopt_orphans(),
                _ => {}
            }
        }
    }

    /// Input left over by the read budget, and requests pipelined behind a held one that was
    /// answered.
    fn resume_input(&self) {
        let (more, resume) = self.cx.core().take_resumable();
        for k in more {
            self.on_readable(k, true);
        }
        for (k, fd) in resume {
            self.on_http_input(k, fd, &[]);
        }
    }

    fn poll_timeout(&self) -> Duration {
        if !self.cx.inner().deferred.borrow().is_empty() || self.cx.core().has_resumable() {
            return Duration::ZERO;
        }
        let timer = self.cx.inner().timers.borrow().next_deadline();
        Duration::from_millis(self.cx.core().next_wakeup(timer))
    }
}
