//! Rolling reload (SIGUSR1): one worker id at a time, the replacement accepting before the
//! old worker stops; the configuration file is re-read first.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};

use super::{Master, ReloadStep};
use crate::runtime::handler::Handler;
use crate::runtime::settings::Settings;
use crate::runtime::StartError as Error;

impl<H: Handler> Master<H> {
    /// Drives the rolling reload: one worker id at a time, the replacement must be ready
    /// (accepting on the same SO_REUSEPORT socket) before the old one is told to stop.
    pub(super) fn step_reload(&mut self) -> Result<(), Error> {
        if self.reload.is_some() {
            self.finish_step();
            return Ok(());
        }
        let Some((id, hung_pid)) = self.reload_queue.front().copied() else {
            return Ok(());
        };
        let (old_pid, old_region) = match self.workers[id].pid {
            Some(p) if hung_pid.is_none_or(|h| h == p) => (p, self.workers[id].region),
            _ => {
                // Being restarted anyway, or the hung process is already gone.
                self.reload_queue.pop_front();
                return Ok(());
            }
        };
        let hung = hung_pid.is_some();
        let n = self.workers.len();
        let new_region = if old_region < n {
            old_region + n
        } else {
            old_region - n
        };
        // The other region may still belong to a previous generation that is draining.
        if self.table.region(new_region).pid.load(Ordering::Relaxed) != 0 {
            return Ok(());
        }
        self.reload_queue.pop_front();
        let new_pid = match self.spawn(id, new_region) {
            Ok(p) => p,
            Err(e) if hung => {
                // A hung worker cannot be kept: kill it; it is restarted as a crash.
                log::error!(
                    "master: cannot fork a replacement for hung Worker#{id}: {e}; killing it"
                );
                let _ = nix::sys::signal::kill(old_pid, Signal::SIGKILL);
                return Ok(());
            }
            Err(e) => {
                log::error!(
                    "master: cannot fork a replacement for Worker#{id}: {e}; its reload is skipped"
                );
                return Ok(());
            }
        };
        self.reload = Some(ReloadStep {
            id,
            old_pid,
            old_region,
            new_pid,
            new_region,
            deadline: Instant::now() + Duration::from_secs(5),
            hung,
        });
        Ok(())
    }

    /// Completes the step in progress once the replacement accepts (or its start-up time is
    /// over): the old worker is told to drain (SIGTERM) or, if hung, killed.
    fn finish_step(&mut self) {
        let Some(step) = &self.reload else {
            return;
        };
        let ready = self
            .table
            .region(step.new_region)
            .ready
            .load(Ordering::Acquire)
            != 0;
        if !ready && Instant::now() < step.deadline {
            return;
        }
        let Some(step) = self.reload.take() else {
            return;
        };
        if !ready {
            log::warn!(
                "master: Worker#{} replacement not ready in time; retiring the old one anyway",
                step.id
            );
        }
        let deadline = if step.hung {
            // A hung worker cannot drain: its connections are lost.
            log::warn!(
                "master: killing hung Worker#{} (pid {}); its connections are lost",
                step.id,
                step.old_pid
            );
            let _ = kill(step.old_pid, Signal::SIGKILL);
            Instant::now() + Duration::from_secs(3600) // already killed; reaped soon
        } else {
            if ready && self.settings.reload_keeps_connections {
                // The replacement is up: the old worker hands its connections to it.
                self.table
                    .region(step.old_region)
                    .handoff_to
                    .store(step.new_region as u32 + 1, Ordering::Release);
            }
            let _ = kill(step.old_pid, Signal::SIGTERM);
            // It gets max_wait_time to drain, then a grace second, then SIGKILL.
            self.drain_deadline()
        };
        self.retiring
            .push((step.old_pid, step.old_region, deadline));
        let w = &mut self.workers[step.id];
        w.pid = Some(step.new_pid);
        w.region = step.new_region;
        w.started = Instant::now();
        w.crashes = 0;
    }

    /// Re-reads the configuration file, if the server was started from one. A file that does
    /// not parse keeps the running settings (and says why).
    pub(super) fn reread_config(&mut self) {
        let Some(path) = self.config_file.clone() else {
            return;
        };
        match Settings::from_file(&self.settings, &path) {
            Ok(mut s) => {
                let kept = s.keep_fixed(&self.settings);
                if !kept.is_empty() {
                    log::warn!(
                        "master: {} cannot change on reload; restart the server to change them",
                        kept.join(", ")
                    );
                }
                self.settings = s;
                log::info!("master: configuration re-read from {}", path.display());
            }
            Err(e) => log::error!("master: keeping the running settings: {e}"),
        }
    }
}
