//! The master process: binds the listeners (they belong to it for the life of the server),
//! creates the shared table and the IPC channels, forks and supervises the workers, and turns
//! signals into shutdown and rolling reloads.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use socket2::{Domain, Protocol, Socket, Type};

use crate::runtime::ipc::Channel;
use crate::runtime::signals::SignalPipe;
use crate::runtime::table::SharedTable;
use crate::runtime::worker::{now_ms, WorkerBoot, WorkerListener};
use crate::server::{Error, Server};

/// One listening port: a SO_REUSEPORT socket per worker id, all owned by the master.
struct BoundPort {
    addr: SocketAddr,
    websocket: bool,
    per_worker: Vec<Socket>,
}

/// A worker id's current process.
struct WorkerSlot {
    pid: Option<Pid>,
    region: usize,
    started: Instant,
    /// Consecutive quick crashes, for back-off.
    crashes: u32,
    restart_at: Option<Instant>,
}

/// A reload step in progress: worker `id` has a replacement starting in `new_region`.
struct ReloadStep {
    id: usize,
    old_pid: Pid,
    old_region: usize,
    new_pid: Pid,
    new_region: usize,
    deadline: Instant,
}

fn bind_port(
    host: &str,
    port: u16,
    workers: usize,
    backlog: i32,
) -> Result<(SocketAddr, Vec<Socket>), Error> {
    let err = |source: io::Error| Error::Bind {
        addr: format!("{host}:{port}"),
        source,
    };
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(err)?
        .next()
        .ok_or_else(|| err(io::Error::other("host did not resolve")))?;
    let make = |a: SocketAddr, reuseport: bool| -> io::Result<Socket> {
        let s = Socket::new(Domain::for_address(a), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        if reuseport {
            s.set_reuse_port(true)?;
        }
        s.set_nonblocking(true)?;
        s.set_cloexec(false)?;
        s.bind(&a.into())?;
        Ok(s)
    };
    // SO_REUSEPORT would let a second server bind the same port and steal half the
    // connections: first prove the port is free with a plain bind.
    let addr = if port != 0 {
        drop(make(addr, false).map_err(err)?);
        addr
    } else {
        addr
    };
    let mut socks: Vec<Socket> = Vec::with_capacity(workers);
    let first = make(addr, true).map_err(err)?;
    let actual = first
        .local_addr()
        .map_err(err)?
        .as_socket()
        .ok_or_else(|| err(io::Error::other("not an inet socket")))?;
    socks.push(first);
    for _ in 1..workers {
        socks.push(make(actual, true).map_err(err)?);
    }
    for s in &socks {
        s.listen(backlog).map_err(err)?;
    }
    Ok((actual, socks))
}

/// Raises the soft fd limit to the hard one and returns the number of connections it allows.
fn raise_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

pub(crate) fn run(mut server: Server) -> Result<(), Error> {
    let st = server.settings.clone();
    if st.worker_num == 0 {
        return Err(Error::Config("worker_num must be at least 1".into()));
    }
    let nofile = raise_nofile();
    // Each worker needs descriptors for its listeners, channels and housekeeping.
    let reserve = 32 + 4 * st.worker_num as u64;
    let per_worker_cap = nofile.saturating_sub(reserve).max(1);
    let capacity = per_worker_cap * st.worker_num as u64;
    let mut max_conn = if st.max_conn == 0 {
        capacity
    } else {
        st.max_conn as u64
    };
    if max_conn > capacity {
        log::warn!(
            "max_conn={} cannot be honoured: RLIMIT_NOFILE is {} per process ({} workers); \
             the server will hold at most about {} connections. Raise `ulimit -n` (hard limit) to allow more.",
            st.max_conn,
            nofile,
            st.worker_num,
            capacity
        );
        max_conn = capacity;
    }
    server.settings.max_conn = max_conn as usize;
    let slots = (max_conn.min(per_worker_cap) as usize).max(1);

    let mut ports = Vec::new();
    for l in &server.listeners {
        let (addr, per_worker) = bind_port(&l.host, l.port, st.worker_num, st.backlog)?;
        ports.push(BoundPort {
            addr,
            websocket: l.websocket,
            per_worker,
        });
    }
    let regions = st.worker_num * 2;
    let table = SharedTable::create(regions, slots)?;
    let g = table.global();
    g.master_pid.store(std::process::id(), Ordering::Relaxed);
    g.worker_num.store(st.worker_num as u32, Ordering::Relaxed);
    g.started_ms.store(now_ms(), Ordering::Relaxed);
    server.table = Some(table);
    let channels: Vec<Channel> = (0..regions)
        .map(|_| Channel::new(4 << 20))
        .collect::<io::Result<_>>()?;
    if let Some(p) = &st.pid_file {
        std::fs::write(p, format!("{}\n", std::process::id()))?;
    }
    let sig = SignalPipe::install(&[
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGCHLD,
    ])?;
    for (p, l) in ports.iter().zip(&server.listeners) {
        let kind = if p.websocket { "WebSocket" } else { "HTTP" };
        println!("{kind} Server listening at {}:{}", l.host, p.addr.port());
    }
    let _ = io::stdout().flush();
    log::info!(
        "master pid {} starting {} workers",
        std::process::id(),
        st.worker_num
    );

    let mut m = Master {
        server,
        ports,
        channels,
        table,
        workers: Vec::new(),
        reload_queue: VecDeque::new(),
        reload: None,
        retiring: Vec::new(),
    };
    for id in 0..st.worker_num {
        let pid = m.spawn(id, id)?;
        m.workers.push(WorkerSlot {
            pid: Some(pid),
            region: id,
            started: Instant::now(),
            crashes: 0,
            restart_at: None,
        });
    }
    let res = m.supervise(&sig);
    if let Some(p) = &st.pid_file {
        let _ = std::fs::remove_file(p);
    }
    res
}

struct Master {
    server: Server,
    ports: Vec<BoundPort>,
    channels: Vec<Channel>,
    table: SharedTable,
    workers: Vec<WorkerSlot>,
    reload_queue: VecDeque<usize>,
    reload: Option<ReloadStep>,
    /// Old workers told to stop by a reload: (pid, region, kill deadline).
    retiring: Vec<(Pid, usize, Instant)>,
}

impl Master {
    fn spawn(&mut self, id: usize, region: usize) -> io::Result<Pid> {
        let _ = io::stdout().flush();
        let master_pid = nix::unistd::getpid().as_raw();
        self.table.region(region).ready.store(0, Ordering::Relaxed);
        // SAFETY: the master is single-threaded; the child only runs the worker and exits.
        match unsafe { fork() }.map_err(io::Error::from)? {
            ForkResult::Parent { child } => {
                self.table
                    .region(region)
                    .pid
                    .store(child.as_raw() as u32, Ordering::Relaxed);
                Ok(child)
            }
            ForkResult::Child => {
                crate::runtime::signals::detach_from_parent();
                let boot = WorkerBoot {
                    worker_id: id,
                    region,
                    listeners: self
                        .ports
                        .iter()
                        .map(|p| WorkerListener {
                            per_worker: p.per_worker.iter().map(|s| s.as_raw_fd()).collect(),
                            port: p.addr.port(),
                            websocket: p.websocket,
                        })
                        .collect(),
                    ipc_rx: self.channels[region].rx.as_raw_fd(),
                    ipc_tx: self.channels.iter().map(|c| c.tx.as_raw_fd()).collect(),
                    master_pid,
                };
                // The child owns nothing of the master's bookkeeping; take the server out.
                let server = std::mem::replace(&mut self.server, Server::new("", 0));
                server.run_worker(boot)
            }
        }
    }

    fn supervise(&mut self, sig: &SignalPipe) -> Result<(), Error> {
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
                        self.table.global().reloads.fetch_add(1, Ordering::Relaxed);
                        for id in 0..self.workers.len() {
                            if !self.reload_queue.contains(&id) {
                                self.reload_queue.push_back(id);
                            }
                        }
                    }
                    Signal::SIGUSR2 => log::info!("master: SIGUSR2 received (reserved, ignored)"),
                    _ => {}
                }
            }
            self.reap()?;
            self.step_reload()?;
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
        loop {
            let st = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return Ok(()),
                Ok(s) => s,
            };
            let Some(pid) = st.pid() else { continue };
            if let Some(i) = self.retiring.iter().position(|(p, _, _)| *p == pid) {
                let (_, region, _) = self.retiring.swap_remove(i);
                self.table.region(region).pid.store(0, Ordering::Relaxed);
                log::info!("master: old worker {pid} exited after reload");
                continue;
            }
            if self.reload.as_ref().is_some_and(|s| s.old_pid == pid) {
                // The worker being replaced died during its reload step: its replacement
                // takes over now instead of a restart.
                let step = self.reload.take().expect("checked above");
                log::warn!("master: Worker#{} (pid {pid}) died during its reload ({st:?}); the replacement takes over", step.id);
                self.table
                    .region(step.old_region)
                    .pid
                    .store(0, Ordering::Relaxed);
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
                    log::error!("master: replacement worker {pid} died during reload ({st:?}); keeping the old one");
                    self.table
                        .region(step.new_region)
                        .pid
                        .store(0, Ordering::Relaxed);
                    self.reload = None;
                    continue;
                }
            }
            let Some(id) = self.workers.iter().position(|w| w.pid == Some(pid)) else {
                continue;
            };
            let w = &mut self.workers[id];
            self.table.region(w.region).pid.store(0, Ordering::Relaxed);
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

    /// Tells every running worker to re-check which listening queues need adopting.
    fn notify_workers(&self) {
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

    /// Drives the rolling reload: one worker id at a time, the replacement must be ready
    /// (accepting on the same SO_REUSEPORT socket) before the old one is told to stop.
    fn step_reload(&mut self) -> Result<(), Error> {
        if let Some(step) = &self.reload {
            let ready = self
                .table
                .region(step.new_region)
                .ready
                .load(Ordering::Acquire)
                == 1;
            if ready || Instant::now() >= step.deadline {
                let step = self.reload.take().expect("checked above");
                if !ready {
                    log::warn!("master: Worker#{} replacement not ready in time; retiring the old one anyway", step.id);
                }
                let _ = kill(step.old_pid, Signal::SIGTERM);
                // It gets max_wait_time to drain, then a grace second, then SIGKILL.
                let deadline =
                    Instant::now() + self.server.settings.max_wait_time + Duration::from_secs(1);
                self.retiring
                    .push((step.old_pid, step.old_region, deadline));
                let w = &mut self.workers[step.id];
                w.pid = Some(step.new_pid);
                w.region = step.new_region;
                w.started = Instant::now();
                w.crashes = 0;
            }
            return Ok(());
        }
        let Some(id) = self.reload_queue.front().copied() else {
            return Ok(());
        };
        let (old_pid, old_region) = match self.workers[id].pid {
            Some(p) => (p, self.workers[id].region),
            None => {
                self.reload_queue.pop_front();
                return Ok(()); // being restarted anyway
            }
        };
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
        });
        Ok(())
    }

    /// Re-reads the configuration file, if the server was started from one. A file that does
    /// not parse keeps the running settings (and says why).
    fn reread_config(&mut self) {
        let Some(path) = self.server.config_file.clone() else {
            return;
        };
        match crate::server::Settings::from_file(&self.server.settings, &path) {
            Ok(mut s) => {
                let kept = s.keep_fixed(&self.server.settings);
                if !kept.is_empty() {
                    log::warn!(
                        "master: {} cannot change on reload; restart the server to change them",
                        kept.join(", ")
                    );
                }
                self.server.settings = s;
                log::info!("master: configuration re-read from {}", path.display());
            }
            Err(e) => log::error!("master: keeping the running settings: {e}"),
        }
    }

    fn all_pids(&self) -> Vec<Pid> {
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
        let deadline = Instant::now() + self.server.settings.max_wait_time + Duration::from_secs(1);
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
