//! Supervision: signals, reaping and restarting workers (with back-off), and shutdown.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::Master;
use crate::runtime::handler::Handler;
use crate::runtime::signals::SignalPipe;
use crate::runtime::StartError as Error;

impl<H: Handler> Master<H> {
    pub(super) fn supervise(&mut self, sig: &SignalPipe) -> Result<(), Error> {
        loop {
            let mut fds = [nix::poll::PollFd::new(
                // SAFETY: the signal pipe outlives this call.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(sig.fd()) },
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
            for s in sig.drain() {
                match s {
                    Signal::SIGTERM | Signal::SIGINT => {
                        log::info!("master: {s:?} received, shutting down");
                        return self.shutdown();
                    }
                    Signal::SIGUSR1 => {
                        log::info!(
                            "master: SIGUSR1 received, rolling reload of {} workers",
                            self.workers.len()
                        );
                        self.reread_config();
                        self.reload_tls();
                        self.table.global().reloads.fetch_add(1, Ordering::Relaxed);
                        for id in 0..self.workers.len() {
                            if !self.reload_queue.iter().any(|(i, _)| *i == id) {
                                self.reload_queue.push_back((id, None));
                            }
                        }
                    }
                    Signal::SIGUSR2 => log::info!("master: SIGUSR2 received (reserved, ignored)"),
                    Signal::SIGURG => {
                        log::info!("master: SIGURG received, binary upgrade");
                        self.start_upgrade();
                    }
                    _ => {}
                }
            }
            self.reap()?;
            self.check_taken_over();
            if self.old_workers_gone() {
                log::info!("master: upgrade complete; the old master exits");
                return Ok(());
            }
            self.step_takeover()?;
            self.reap_foreign();
            if self.taken_over {
                continue; // the new master serves; this one only waits for its workers
            }
            self.check_hangs();
            if self.takeover.is_none() && self.upgrade.is_none() {
                self.step_reload()?;
            }
            if self.upgrade_deferred {
                self.start_upgrade();
            }
            self.restart_due()?;
            let now = Instant::now();
            for (pid, _, deadline) in self.retiring.iter_mut() {
                if now >= *deadline {
                    log::warn!("master: old worker {pid} did not drain in time, killing it");
                    let _ = kill(*pid, Signal::SIGKILL);
                    *deadline = now + Duration::from_secs(3600);
                }
            }
        }
    }

    /// Collects exited children; schedules restarts for workers that died on their own.
    fn reap(&mut self) -> Result<(), Error> {
        // Old workers exit as soon as a new master took over: know it before reaping them.
        self.check_taken_over();
        loop {
            let st = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return Ok(()),
                Ok(s) => s,
            };
            let Some(pid) = st.pid() else { continue };
            if self.upgrade_child_exited(pid, &format!("{st:?}")) {
                continue;
            }
            if self.taken_over {
                // The new master owns the table now and frees the regions itself.
                for w in self.workers.iter_mut().filter(|w| w.pid == Some(pid)) {
                    w.pid = None;
                }
                self.retiring.retain(|(p, _, _)| *p != pid);
                continue;
            }
            if let Some(i) = self.retiring.iter().position(|(p, _, _)| *p == pid) {
                let (_, region, _) = self.retiring.swap_remove(i);
                self.release_region(region, pid);
                log::info!("master: old worker {pid} exited after reload");
                continue;
            }
            if self.reload.as_ref().is_some_and(|s| s.old_pid == pid) {
                // The worker being replaced died during its reload step: its replacement
                // takes over now instead of a restart.
                let step = self.reload.take().expect("checked above");
                log::warn!("master: Worker#{} (pid {pid}) died during its reload ({st:?}); the replacement takes over", step.id);
                self.release_region(step.old_region, pid);
                let w = &mut self.workers[step.id];
                w.pid = Some(step.new_pid);
                w.region = step.new_region;
                w.started = Instant::now();
                w.restart_at = None;
                self.notify_workers();
                continue;
            }
            if let Some(step) = &self.reload {
                if step.new_pid == pid {
                    let (new_region, hung, old_pid) = (step.new_region, step.hung, step.old_pid);
                    self.release_region(new_region, pid);
                    self.reload = None;
                    if hung {
                        // A hung worker cannot be kept: kill it; it is restarted as a crash.
                        log::error!("master: replacement worker {pid} died ({st:?}); killing the hung worker {old_pid} instead");
                        let _ = kill(old_pid, Signal::SIGKILL);
                    } else {
                        log::error!("master: replacement worker {pid} died during reload ({st:?}); keeping the old one");
                    }
                    continue;
                }
            }
            let Some(id) = self.workers.iter().position(|w| w.pid == Some(pid)) else {
                continue;
            };
            let region = self.workers[id].region;
            self.release_region(region, pid);
            let w = &mut self.workers[id];
            self.table
                .global()
                .worker_restarts
                .fetch_add(1, Ordering::Relaxed);
            w.pid = None;
            let quick = w.started.elapsed() < Duration::from_secs(2);
            w.crashes = if quick { w.crashes + 1 } else { 0 };
            let backoff = if w.crashes == 0 {
                Duration::ZERO
            } else {
                Duration::from_millis((100u64 << w.crashes.min(6)).min(5000))
            };
            log::error!(
                "master: Worker#{id} (pid {pid}) exited unexpectedly: {st:?}; restarting in {} ms",
                backoff.as_millis()
            );
            w.restart_at = Some(Instant::now() + backoff);
            // The others take over its accept queue until it is back.
            self.notify_workers();
        }
    }

    /// A region whose process is gone: its slots are freed (their connections no longer
    /// exist, nor count against `max_conn`) and it is marked free.
    /// Only while the region is still `pid`'s (or free): a worker that retired cleared its
    /// pid itself, and a replacement may already run there by the time it is reaped (its
    /// slots, adopted connections among them, must stay).
    fn release_region(&self, region: usize, pid: Pid) {
        let owner = self.table.region(region).pid.load(Ordering::Relaxed);
        if owner != 0 && owner != pid.as_raw() as u32 {
            return;
        }
        self.table.reset_region(region);
        self.table.region(region).pid.store(0, Ordering::Relaxed);
    }

    /// Tells every running worker to re-check which listening queues need adopting.
    pub(super) fn notify_workers(&self) {
        for p in self.all_pids() {
            let _ = kill(p, Signal::SIGUSR2);
        }
    }

    fn restart_due(&mut self) -> Result<(), Error> {
        for id in 0..self.workers.len() {
            let due = matches!(self.workers[id].restart_at, Some(t) if Instant::now() >= t);
            if !due {
                continue;
            }
            let region = self.workers[id].region;
            if self.table.region(region).pid.load(Ordering::Relaxed) != 0 {
                continue; // never two live workers in one region
            }
            match self.spawn(id, region) {
                Ok(pid) => {
                    let w = &mut self.workers[id];
                    w.pid = Some(pid);
                    w.started = Instant::now();
                    w.restart_at = None;
                }
                Err(e) => {
                    log::error!("master: cannot fork Worker#{id}: {e}; retrying in 1 s");
                    self.workers[id].restart_at = Some(Instant::now() + Duration::from_secs(1));
                }
            }
        }
        Ok(())
    }

    pub(super) fn all_pids(&self) -> Vec<Pid> {
        let mut v: Vec<Pid> = self.workers.iter().filter_map(|w| w.pid).collect();
        v.extend(self.retiring.iter().map(|(p, _, _)| *p));
        if let Some(s) = &self.reload {
            v.push(s.new_pid);
        }
        v
    }

    fn shutdown(&mut self) -> Result<(), Error> {
        let pids = self.all_pids();
        for &p in &pids {
            let _ = kill(p, Signal::SIGTERM);
        }
        let deadline = self.drain_deadline();
        let mut alive: Vec<Pid> = pids;
        while !alive.is_empty() && Instant::now() < deadline {
            alive.retain(|&p| {
                matches!(
                    waitpid(p, Some(WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::StillAlive)
                )
            });
            std::thread::sleep(Duration::from_millis(10));
        }
        for &p in &alive {
            log::warn!("master: worker {p} did not stop in time, killing it");
            let _ = kill(p, Signal::SIGKILL);
            let _ = waitpid(p, None);
        }
        log::info!("master: shutdown complete");
        Ok(())
    }
}
