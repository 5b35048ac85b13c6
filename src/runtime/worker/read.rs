//! Reading from connections into the worker's one buffer, with a per-event budget.

use std::io::{self, Read};

use super::Worker;
use crate::runtime::conn::Phase;
use crate::runtime::handler::{CloseReason, Handler};

/// Full buffers read per readiness event before the other connections are served.
const READ_BUDGET: usize = 16;

impl<H: Handler> Worker<H> {
    /// Reads what a connection sent. `hup`: the event also reported the peer's shutdown, so a
    /// short read does not mean drained (the EOF behind the data must still be read).
    pub(super) fn on_readable(&self, key: usize, hup: bool) {
        // Fairness: at most this many full buffers per event; the rest is picked up after
        // the current batch (edge-triggered epoll will not report it again).
        for _ in 0..READ_BUDGET {
            let mut guard = self.cx.core();
            let core = &mut *guard;
            let Some(c) = core.conns.get_mut(key) else {
                return;
            };
            let phase = c.phase;
            if phase == Phase::Dead {
                return;
            }
            let fd = c.fd;
            let mut buf = std::mem::take(&mut core.rbuf);
            let res = (&c.stream).read(&mut buf);
            let n = match res {
                Ok(0) => {
                    core.rbuf = buf;
                    core.kill(key, CloseReason::ConnectionLost);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    core.rbuf = buf;
                    continue;
                }
                Err(e) => {
                    core.rbuf = buf;
                    if e.kind() != io::ErrorKind::WouldBlock {
                        core.kill(key, CloseReason::Io);
                    }
                    return;
                }
            };
            let full = n == buf.len();
            core.counters.bytes_in += n as u64;
            c.last_recv_ms = core.now as u32;
            core.table.touch_recv(core.region, key, core.wall);
            if matches!(phase, Phase::Draining | Phase::Lingering) {
                // Closing: input is read (so the peer's FIN is seen) and dropped.
                core.rbuf = buf;
            } else {
                let tls = c.tls.is_some();
                drop(guard);
                match phase {
                    _ if tls => self.on_tls_input(key, fd, phase, &mut buf[..n]),
                    Phase::Http => self.on_http_input(key, fd, &buf[..n]),
                    _ => self.on_ws_input(key, fd, &mut buf[..n]),
                }
                self.cx.core().rbuf = buf;
            }
            if !full && !hup {
                return;
            }
        }
        self.cx.core().more_input.push(key);
    }
}
