//! The watchdog: each worker counts the turns of its event loop in the shared table; a worker
//! whose count does not move for `worker_hang_timeout` is hung (a callback that blocks, a
//! deadlock, an endless loop) and is replaced — its replacement is started and accepting
//! first, then the hung process is killed. A worker that is *stopped* (SIGSTOP, a debugger) is
//! reported once and left alone: someone is looking at it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::Master;
use crate::runtime::handler::Handler;

/// An idle worker still turns its loop at least once a second (its stats tick), so shorter
/// timeouts would see idleness as a hang.
pub(super) const MIN_TIMEOUT: Duration = Duration::from_millis(2000);

/// The last loop count seen of one worker process and since when it has not moved.
pub(super) struct Watch {
    pid: Pid,
    turns: u64,
    since: Instant,
    reported: bool,
}

/// Whether the process is stopped by a signal or a tracer (`T` / `t` in `/proc/PID/stat`).
fn is_stopped(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let (_, rest) = s.rsplit_once(')')?;
            rest.trim_start().chars().next()
        })
        .is_some_and(|state| matches!(state, 'T' | 't'))
}

impl<H: Handler> Master<H> {
    /// One look at every running worker (called from the supervision loop).
    pub(super) fn check_hangs(&mut self) {
        let timeout = self.settings.worker_hang_timeout;
        if timeout.is_zero() {
            return;
        }
        let timeout = timeout.max(MIN_TIMEOUT);
        let now = Instant::now();
        for id in 0..self.workers.len() {
            let w = &mut self.workers[id];
            let Some(pid) = w.pid else {
                w.watch = None;
                continue;
            };
            let h = self.table.region(w.region);
            if h.ready.load(Ordering::Acquire) == 0 {
                w.watch = None;
                continue;
            }
            let turns = h.loop_turns.load(Ordering::Relaxed);
            let stuck_for = match &mut w.watch {
                Some(wd) if wd.pid == pid && wd.turns == turns => {
                    if wd.reported || now - wd.since < timeout {
                        continue;
                    }
                    wd.reported = true;
                    now - wd.since
                }
                _ => {
                    w.watch = Some(Watch {
                        pid,
                        turns,
                        since: now,
                        reported: false,
                    });
                    continue;
                }
            };
            if is_stopped(pid) {
                log::warn!(
                    "master: Worker#{id} (pid {pid}) is stopped (SIGSTOP or a debugger) for {:.1} s; not replacing it",
                    stuck_for.as_secs_f64()
                );
                continue;
            }
            log::error!(
                "master: Worker#{id} (pid {pid}) has made no progress for {:.1} s (worker_hang_timeout); replacing it",
                stuck_for.as_secs_f64()
            );
            // Its accept queue goes to the other workers until the replacement runs.
            h.ready.store(0, Ordering::Relaxed);
            match &mut self.reload {
                // Already being replaced by a reload: kill it instead of waiting for a drain.
                Some(step) if step.old_pid == pid => step.hung = true,
                _ => {
                    self.reload_queue.retain(|(i, _)| *i != id);
                    self.reload_queue.push_front((id, Some(pid)));
                }
            }
            self.notify_workers();
        }
    }
}
