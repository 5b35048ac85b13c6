//! Binary upgrade: new code on the same listeners, keeping every connection.
//!
//! `SIGURG` (or `prefork-ctl upgrade`) to the master: it forks and executes its executable
//! again (the file now at the path it was started from, with the same arguments), passing
//! the listening sockets, the shared table and the IPC channels by inheritance (their numbers
//! in `PREFORK_WS_UPGRADE`). The new master maps the same table, so fds stay unique and
//! `connection_info` answers the same; it forks its workers into the regions the old workers
//! do not use, and once all of them run, takes over: it tells every old worker to hand its
//! connections to the new worker of its id (exactly as a rolling reload does), writes the pid
//! file and names itself master in the table. The old master then only waits for its
//! workers and exits.
//!
//! Rollback: until the takeover, nothing has moved. A new binary that fails to start (bad
//! file, other table layout, other `worker_num`, a worker that does not come up within
//! `UPGRADE_START_TIMEOUT`) exits; the old master sees its child exit, marks the upgrade
//! failed in the table (what `prefork-ctl upgrade` reports) and goes on serving.
//!
//! `SIGURG` is ignored by default (an older build that does not know it is not harmed), is
//! sent by no terminal, and means nothing to Swoole.

use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::Master;
use crate::runtime::handler::Handler;
use crate::runtime::ipc::Channel;
use crate::runtime::table::SharedTable;

/// Environment variable naming the inherited descriptors.
pub(crate) const UPGRADE_ENV: &str = "PREFORK_WS_UPGRADE";
/// `GlobalHeader::upgrade` states.
pub(crate) const UPGRADE_RUNNING: u32 = 1;
pub(crate) const UPGRADE_FAILED: u32 = 2;
pub(crate) const UPGRADE_DONE: u32 = 3;
/// How long the new master's workers may take to start before it gives up (rollback).
const UPGRADE_START_TIMEOUT: Duration = Duration::from_secs(10);

/// What a new master inherits from the one it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inherited {
    pub old_master: i32,
    pub table: RawFd,
    /// (rx, tx) of every region's channel.
    pub channels: Vec<(RawFd, RawFd)>,
    /// Per port, the SO_REUSEPORT socket of every worker id.
    pub ports: Vec<Vec<RawFd>>,
}

impl Inherited {
    /// `old=P;table=F;ch=R:T,R:T;ports=A.B|C.D`
    pub fn encode(&self) -> String {
        let ch: Vec<String> = self
            .channels
            .iter()
            .map(|(r, t)| format!("{r}:{t}"))
            .collect();
        let ports: Vec<String> = self
            .ports
            .iter()
            .map(|p| {
                p.iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
                    .join(".")
            })
            .collect();
        format!(
            "old={};table={};ch={};ports={}",
            self.old_master,
            self.table,
            ch.join(","),
            ports.join("|")
        )
    }

    pub fn decode(s: &str) -> Option<Inherited> {
        let mut it = Inherited {
            old_master: 0,
            table: -1,
            channels: Vec::new(),
            ports: Vec::new(),
        };
        for part in s.split(';') {
            let (k, v) = part.split_once('=')?;
            match k {
                "old" => it.old_master = v.parse().ok()?,
                "table" => it.table = v.parse().ok()?,
                "ch" => {
                    for c in v.split(',').filter(|c| !c.is_empty()) {
                        let (r, t) = c.split_once(':')?;
                        it.channels.push((r.parse().ok()?, t.parse().ok()?));
                    }
                }
                "ports" => {
                    for p in v.split('|').filter(|p| !p.is_empty()) {
                        let fds = p.split('.').map(|f| f.parse().ok());
                        it.ports.push(fds.collect::<Option<Vec<RawFd>>>()?);
                    }
                }
                _ => return None,
            }
        }
        (it.old_master > 0 && it.table >= 0).then_some(it)
    }

    /// The descriptors this process was started with, if it is a new master of an upgrade.
    pub fn from_env() -> Option<Inherited> {
        let v = std::env::var(UPGRADE_ENV).ok()?;
        std::env::remove_var(UPGRADE_ENV);
        let it = Inherited::decode(&v);
        if it.is_none() {
            log::error!("{UPGRADE_ENV} is malformed; starting as a fresh server");
        }
        it
    }

    /// The channels, owned again (CLOEXEC restored).
    pub fn take_channels(&self) -> Vec<Channel> {
        self.channels
            .iter()
            .map(|&(r, t)| {
                set_cloexec(r, true);
                set_cloexec(t, true);
                // SAFETY: inherited descriptors nobody else in this process owns.
                unsafe {
                    Channel {
                        rx: std::os::fd::OwnedFd::from_raw_fd(r),
                        tx: std::os::fd::OwnedFd::from_raw_fd(t),
                    }
                }
            })
            .collect()
    }

    /// The table, mapped again.
    pub fn take_table(&self) -> std::io::Result<SharedTable> {
        set_cloexec(self.table, true);
        SharedTable::inherit(self.table)
    }
}

pub(crate) fn set_cloexec(fd: RawFd, on: bool) {
    // SAFETY: F_GETFD/F_SETFD on a descriptor of this process.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            let f = if on {
                flags | libc::FD_CLOEXEC
            } else {
                flags & !libc::FD_CLOEXEC
            };
            libc::fcntl(fd, libc::F_SETFD, f);
        }
    }
}

/// An upgrade this (old) master started: the new master's pid.
pub(super) struct UpgradeChild {
    pub pid: Pid,
}

/// A new master's takeover, pending until its workers run.
pub(super) struct Takeover {
    pub old_master: i32,
    pub deadline: Instant,
}

impl<H: Handler> Master<H> {
    fn inheritable(&self) -> Inherited {
        Inherited {
            old_master: std::process::id() as i32,
            table: self.table.memfd(),
            channels: self
                .channels
                .iter()
                .map(|c| (c.rx.as_raw_fd(), c.tx.as_raw_fd()))
                .collect(),
            ports: self
                .ports
                .iter()
                .map(|p| p.per_worker.iter().map(|s| s.as_raw_fd()).collect())
                .collect(),
        }
    }

    /// SIGURG: starts the new executable as a new master (see the module documentation).
    pub(super) fn start_upgrade(&mut self) {
        if self.upgrade.is_some() || self.taken_over {
            log::warn!("master: an upgrade is already in progress; SIGURG ignored");
            return;
        }
        if self.reload.is_some() || !self.reload_queue.is_empty() || !self.retiring.is_empty() {
            // Regions must be settled (old workers reaped) before another master uses them.
            log::info!("master: upgrade deferred until the reload in progress ends");
            self.upgrade_deferred = true;
            return;
        }
        self.upgrade_deferred = false;
        let Some(exe) = self.exe.clone() else {
            log::error!("master: the executable's path is unknown; cannot upgrade");
            return;
        };
        let inherit = self.inheritable();
        let env = inherit.encode();
        let mut fds = vec![inherit.table];
        fds.extend(inherit.channels.iter().flat_map(|&(r, t)| [r, t]));
        fds.extend(inherit.ports.iter().flatten());
        let args = self.args.clone();
        let _ = std::io::Write::flush(&mut std::io::stdout());
        // SAFETY: the master is single-threaded; the child only clears CLOEXEC and execs.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                for &fd in &fds {
                    set_cloexec(fd, false);
                }
                let err = exec(&exe, &args, &env);
                eprintln!(
                    "prefork-ws upgrade: cannot execute {}: {err}",
                    exe.display()
                );
                // SAFETY: leaving the forked child without running the master's destructors.
                unsafe { libc::_exit(127) };
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                log::info!(
                    "master: upgrade: started {} as the new master (pid {child})",
                    exe.display()
                );
                let g = self.table.global();
                g.upgrade_pid
                    .store(child.as_raw() as u32, Ordering::Relaxed);
                g.upgrade.store(UPGRADE_RUNNING, Ordering::Release);
                self.upgrade = Some(UpgradeChild { pid: child });
            }
            Err(e) => log::error!("master: upgrade: cannot fork: {e}"),
        }
    }

    /// The new master exited (old master's side): before the takeover this is a rollback.
    /// `true` if `pid` was it.
    pub(super) fn upgrade_child_exited(&mut self, pid: Pid, status: &str) -> bool {
        if self.upgrade.as_ref().is_none_or(|u| u.pid != pid) {
            return false;
        }
        self.upgrade = None;
        if self.taken_over {
            log::error!("master: the new master (pid {pid}) exited after taking over ({status})");
            return true;
        }
        log::error!(
            "master: upgrade failed: the new master (pid {pid}) exited ({status}) before taking \
             over; this master keeps serving"
        );
        self.table
            .global()
            .upgrade
            .store(UPGRADE_FAILED, Ordering::Release);
        true
    }

    /// Old master's side: whether the new master has taken over (it named itself in the
    /// table); from then on this master restarts nothing and exits with its last worker.
    pub(super) fn check_taken_over(&mut self) {
        if self.taken_over || self.upgrade.is_none() {
            return;
        }
        let me = std::process::id();
        if self.table.global().master_pid.load(Ordering::Acquire) != me {
            self.taken_over = true;
            self.reload_queue.clear();
            self.reload = None;
            log::info!("master: the new master took over; waiting for the old workers to finish");
        }
    }

    /// Old master's side after the takeover: done when none of its workers is left.
    pub(super) fn old_workers_gone(&self) -> bool {
        self.taken_over
            && self.workers.iter().all(|w| w.pid.is_none())
            && self.retiring.is_empty()
            && self.reload.is_none()
    }

    /// New master's side: once every worker of ours runs, the old workers are told to hand
    /// their connections over and stop; we become the master of record. A worker that does
    /// not come up in time aborts the upgrade (this process exits; the old one serves on).
    pub(super) fn step_takeover(&mut self) -> Result<(), crate::runtime::StartError> {
        let Some(t) = &self.takeover else {
            return Ok(());
        };
        let ready = self.workers.iter().all(|w| {
            w.pid.is_some() && self.table.region(w.region).ready.load(Ordering::Acquire) != 0
        });
        if !ready {
            if Instant::now() >= t.deadline {
                return Err(self.abort_upgrade("its workers did not start in time"));
            }
            return Ok(());
        }
        let old_master = t.old_master;
        self.takeover = None;
        // Master of record first: the old master must know it was taken over before its
        // workers (which hand over and exit within milliseconds) are reaped there.
        let g = self.table.global();
        g.master_pid.store(std::process::id(), Ordering::Release);
        g.upgrade.store(UPGRADE_DONE, Ordering::Release);
        let n = self.workers.len();
        for id in 0..n {
            let new_region = self.workers[id].region;
            let old_region = (new_region + n) % (2 * n);
            let h = self.table.region(old_region);
            let old_pid = h.pid.load(Ordering::Relaxed) as i32;
            if old_pid == 0 {
                continue;
            }
            h.handoff_to.store(new_region as u32 + 1, Ordering::Release);
            let _ = kill(Pid::from_raw(old_pid), Signal::SIGTERM);
            let deadline = self.drain_deadline();
            self.foreign
                .push((Pid::from_raw(old_pid), old_region, deadline));
        }
        if let Some(p) = &self.settings.pid_file {
            if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
                log::error!("master: cannot write the pid file {}: {e}", p.display());
            }
        }
        log::info!(
            "master: upgrade: took over from master {old_master}; {} old workers hand their \
             connections over",
            self.foreign.len()
        );
        Ok(())
    }

    /// The upgrade cannot complete: our workers are stopped (they hold no connection yet).
    pub(super) fn abort_upgrade(&mut self, why: &str) -> crate::runtime::StartError {
        log::error!("master: upgrade aborted: {why}; the running master keeps serving");
        for w in &self.workers {
            if let Some(p) = w.pid {
                let _ = kill(p, Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(p, None);
                self.table.reset_region(w.region);
                self.table.region(w.region).pid.store(0, Ordering::Relaxed);
            }
        }
        crate::runtime::StartError::Config(format!("upgrade aborted: {why}"))
    }

    /// New master's side: old workers (the old master's children, so not ours to reap)
    /// that have finished; their regions are freed for our later reloads.
    pub(super) fn reap_foreign(&mut self) {
        let now = Instant::now();
        let table = self.table;
        self.foreign.retain_mut(|(pid, region, deadline)| {
            let gone = table.region(*region).pid.load(Ordering::Relaxed) as i32 != pid.as_raw()
                || !process_alive(*pid);
            if gone {
                table.reset_region(*region);
                table.region(*region).pid.store(0, Ordering::Relaxed);
                return false;
            }
            if now >= *deadline {
                log::warn!("master: old worker {pid} did not finish in time, killing it");
                let _ = kill(*pid, Signal::SIGKILL);
                *deadline = now + Duration::from_secs(3600);
            }
            true
        });
    }

    /// New master's regions: for each worker id, the one its old worker does not use.
    pub(super) fn free_regions(table: &SharedTable, n: usize) -> Vec<usize> {
        (0..n)
            .map(|id| {
                if table.region(id).pid.load(Ordering::Relaxed) != 0 {
                    id + n
                } else {
                    id
                }
            })
            .collect()
    }

    /// Starts the takeover clock (new master, after its workers were forked).
    pub(super) fn expect_takeover(&mut self, old_master: i32) {
        self.takeover = Some(Takeover {
            old_master,
            deadline: Instant::now() + UPGRADE_START_TIMEOUT,
        });
    }
}

fn process_alive(pid: Pid) -> bool {
    crate::runtime::inspect::process_running(pid.as_raw())
}

fn exec(exe: &std::path::Path, args: &[std::ffi::OsString], env: &str) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(exe)
        .args(args.iter().skip(1))
        .env(UPGRADE_ENV, env)
        .exec()
}

#[cfg(test)]
mod tests {
    use super::Inherited;

    #[test]
    fn inherited_descriptors_round_trip() {
        let it = Inherited {
            old_master: 4242,
            table: 5,
            channels: vec![(6, 7), (8, 9)],
            ports: vec![vec![10, 11], vec![12, 13]],
        };
        assert_eq!(Inherited::decode(&it.encode()), Some(it));
        assert_eq!(Inherited::decode("old=1;table=x"), None);
        assert_eq!(Inherited::decode("old=0;table=3"), None);
        assert_eq!(Inherited::decode("bogus=1"), None);
    }
}
