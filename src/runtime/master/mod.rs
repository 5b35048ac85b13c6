//! The master process: binds the listeners (they belong to it for the life of the server),
//! creates the shared table and the IPC channels, forks and supervises the workers, and turns
//! signals into shutdown and rolling reloads.
//!
//! Files: `bind` (sockets and capacity), `supervise` (signals, crashes, restarts, shutdown),
//! `reload` (SIGUSR1); this one starts everything and forks.

mod bind;
mod reload;
mod supervise;
mod tls;
mod upgrade;
mod watchdog;

pub(crate) use upgrade::{UPGRADE_DONE, UPGRADE_FAILED, UPGRADE_RUNNING};

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::{fork, ForkResult, Pid};
use rustls::ServerConfig;
use socket2::Socket;

use crate::runtime::clock;
use crate::runtime::handler::Handler;
use crate::runtime::ipc::Channel;
use crate::runtime::settings::Settings;
use crate::runtime::signals::SignalPipe;
use crate::runtime::table::SharedTable;
use crate::runtime::worker::{run_worker, WorkerBoot, WorkerListener};
use crate::runtime::StartError as Error;

/// One port to listen on.
///
/// TLS: a listener with its own `ssl_cert_file` and `ssl_key_file` speaks TLS with them; a
/// WebSocket listener without them uses [`Settings::ssl_cert_file`] and
/// [`Settings::ssl_key_file`] when those are set (as Swoole's `$server->set()` applies to the
/// server's own port). Either way `wss://` and `https://` share the port.
#[derive(Debug, Clone, Default)]
pub struct ListenSpec {
    /// Host or address to bind.
    pub host: String,
    /// Port (0 picks a free port, printed at start).
    pub port: u16,
    /// `false` for a plain-HTTP port: upgrade requests there are plain requests.
    pub websocket: bool,
    /// This listener's certificate chain (PEM), overriding the settings'.
    pub ssl_cert_file: Option<PathBuf>,
    /// This listener's private key (PEM), overriding the settings'.
    pub ssl_key_file: Option<PathBuf>,
}

/// What [`serve`] runs: the ports, the settings, and a configuration file re-read on reload.
#[derive(Debug, Clone, Default)]
pub struct ServeSpec {
    /// Ports to listen on, in order.
    pub listeners: Vec<ListenSpec>,
    /// Settings at start.
    pub settings: Settings,
    /// Re-read on every rolling reload (`SIGUSR1`); workers started by the reload get the new
    /// settings.
    pub config_file: Option<PathBuf>,
    /// Printed before each `… Server listening at host:port` start-up line (Hyperf prints
    /// `[INFO] `); empty by default.
    pub announce_prefix: String,
    /// Replaces `WebSocket` / `HTTP` in the start-up lines (a layer's name, e.g. `Socket.IO`).
    pub announce_kind: Option<String>,
}

/// One listening port: a SO_REUSEPORT socket per worker id, all owned by the master.
struct BoundPort {
    addr: SocketAddr,
    websocket: bool,
    /// The metrics port (`Settings::metrics_port`).
    metrics: bool,
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
    /// What the watchdog last saw of this worker's event loop.
    watch: Option<watchdog::Watch>,
}

/// A reload step in progress: worker `id` has a replacement starting in `new_region`.
struct ReloadStep {
    id: usize,
    old_pid: Pid,
    old_region: usize,
    new_pid: Pid,
    new_region: usize,
    deadline: Instant,
    /// Replacing a hung worker: it is killed (it cannot drain) once the replacement runs.
    hung: bool,
}

struct Master<H> {
    /// Moved into each forked child (the master's copy stays for later forks).
    handler: Option<H>,
    settings: Settings,
    config_file: Option<PathBuf>,
    /// The listeners as given (their TLS files are re-read on reload).
    specs: Vec<ListenSpec>,
    ports: Vec<BoundPort>,
    /// Each port's TLS configuration (`None`: plain), handed to every worker forked.
    tls: Vec<Option<Arc<ServerConfig>>>,
    channels: Vec<Channel>,
    table: SharedTable,
    workers: Vec<WorkerSlot>,
    /// Worker ids to replace, one at a time, with the pid of a hung process to kill (a hung
    /// entry is dropped when that pid is no longer the id's worker).
    reload_queue: VecDeque<(usize, Option<Pid>)>,
    reload: Option<ReloadStep>,
    /// Old workers told to stop by a reload: (pid, region, kill deadline).
    retiring: Vec<(Pid, usize, Instant)>,
    /// The executable and arguments this master was started with (a binary upgrade runs
    /// them again).
    exe: Option<PathBuf>,
    args: Vec<std::ffi::OsString>,
    /// An upgrade this master started (its new master).
    upgrade: Option<upgrade::UpgradeChild>,
    /// A new master has taken over from this one.
    taken_over: bool,
    /// SIGURG arrived during a reload: the upgrade starts once it ends.
    upgrade_deferred: bool,
    /// This is a new master waiting for its workers before it takes over.
    takeover: Option<upgrade::Takeover>,
    /// The old master's workers, stopping after a takeover: (pid, region, kill deadline).
    foreign: Vec<(Pid, usize, Instant)>,
}

/// Runs a server: makes the calling process the master, which binds `spec`'s ports, forks
/// `worker_num` workers running `handler`, supervises them and returns after a graceful
/// shutdown (SIGTERM/SIGINT). Never returns in the workers.
pub fn serve<H: Handler>(spec: ServeSpec, handler: H) -> Result<(), Error> {
    let mut st = spec.settings.clone();
    if st.worker_num == 0 {
        return Err(Error::Config("worker_num must be at least 1".into()));
    }
    if spec.listeners.len() > usize::from(u16::MAX) {
        return Err(Error::Config(format!(
            "{} ports: at most {} are supported",
            spec.listeners.len(),
            u16::MAX
        )));
    }
    clock::mono_ms(); // the epoch, shared by the workers forked below
                      // Certificates first: a bad file stops the start before anything is bound.
    let tls = tls::load_all(&spec.listeners, &st)?;
    let (max_conn, slots) = bind::capacity(st.max_conn, st.worker_num);
    st.max_conn = max_conn as usize;
    let inherited = upgrade::Inherited::from_env();
    let (ports, table, channels) = match &inherited {
        Some(inh) => inherit_all(inh, &spec, &st, slots)?,
        None => bind_all(&spec, &st, slots)?,
    };
    let g = table.global();
    g.worker_num.store(st.worker_num as u32, Ordering::Relaxed);
    if inherited.is_none() {
        g.master_pid.store(std::process::id(), Ordering::Relaxed);
        g.started_ms.store(clock::wall_ms(), Ordering::Relaxed);
    }
    if let (Some(p), None) = (&st.pid_file, &inherited) {
        std::fs::write(p, format!("{}\n", std::process::id()))?;
    }
    let sig = SignalPipe::install(&[
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGCHLD,
        Signal::SIGURG,
    ])?;
    announce(&spec, &ports, st.worker_num);
    let pid_file = st.pid_file.clone();
    let mut m = Master {
        handler: Some(handler),
        settings: st,
        config_file: spec.config_file,
        specs: spec.listeners,
        ports,
        tls,
        channels,
        table,
        workers: Vec::new(),
        reload_queue: VecDeque::new(),
        reload: None,
        retiring: Vec::new(),
        exe: std::env::current_exe().ok(),
        args: std::env::args_os().collect(),
        upgrade: None,
        taken_over: false,
        upgrade_deferred: false,
        takeover: None,
        foreign: Vec::new(),
    };
    let res = match &inherited {
        Some(inh) => m.start_workers_beside_old(inh.old_master),
        None => m.start_workers(),
    };
    let res = res.and_then(|()| m.supervise(&sig));
    if let Some(p) = &pid_file {
        // After an upgrade the file names the new master: it is not ours to remove.
        let ours =
            std::fs::read_to_string(p).is_ok_and(|t| t.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(p);
        }
    }
    res
}

type Bound = (Vec<BoundPort>, SharedTable, Vec<Channel>);

/// A fresh server: its ports bound, its table and channels created.
fn bind_all(spec: &ServeSpec, st: &Settings, slots: usize) -> Result<Bound, Error> {
    let mut ports = Vec::new();
    for l in &spec.listeners {
        let (addr, per_worker) = bind::bind_port(&l.host, l.port, st.worker_num, st.backlog)?;
        ports.push(BoundPort {
            addr,
            websocket: l.websocket,
            metrics: false,
            per_worker,
        });
    }
    if let Some(port) = st.metrics_port {
        let host = spec
            .listeners
            .first()
            .map_or("0.0.0.0", |l| l.host.as_str());
        let (addr, per_worker) = bind::bind_port(host, port, st.worker_num, st.backlog)?;
        ports.push(BoundPort {
            addr,
            websocket: false,
            metrics: true,
            per_worker,
        });
    }
    let regions = st.worker_num * 2;
    let table = SharedTable::create(regions, slots)?;
    let channels: Vec<Channel> = (0..regions)
        .map(|_| Channel::new(4 << 20))
        .collect::<io::Result<_>>()?;
    Ok((ports, table, channels))
}

/// A binary upgrade's new master: the old master's ports, table and channels. Anything that
/// does not fit this build's configuration fails the start (the old master serves on).
fn inherit_all(
    inh: &upgrade::Inherited,
    spec: &ServeSpec,
    st: &Settings,
    slots: usize,
) -> Result<Bound, Error> {
    let table = inh.take_table()?;
    let channels = inh.take_channels();
    let wanted = spec.listeners.len() + usize::from(st.metrics_port.is_some());
    let regions = st.worker_num * 2;
    if table.regions() != regions || table.slots_per_region() != slots {
        return Err(Error::Config(format!(
            "upgrade: the running server has {} workers and {} slots each; this one is              configured for {} and {slots}",
            table.regions() / 2,
            table.slots_per_region(),
            st.worker_num
        )));
    }
    if inh.ports.len() != wanted || channels.len() != regions {
        return Err(Error::Config(format!(
            "upgrade: the running server listens on {} ports; this one is configured for {wanted}",
            inh.ports.len()
        )));
    }
    let mut ports = Vec::new();
    for (i, fds) in inh.ports.iter().enumerate() {
        let per_worker: Vec<Socket> = fds
            .iter()
            .map(|&fd| {
                upgrade::set_cloexec(fd, true);
                // SAFETY: an inherited listening socket nobody else in this process owns.
                unsafe { <Socket as std::os::fd::FromRawFd>::from_raw_fd(fd) }
            })
            .collect();
        let addr = per_worker
            .first()
            .and_then(|s| s.local_addr().ok())
            .and_then(|a| a.as_socket())
            .ok_or_else(|| Error::Config("upgrade: an inherited port has no address".into()))?;
        let metrics = i >= spec.listeners.len();
        ports.push(BoundPort {
            addr,
            websocket: !metrics && spec.listeners[i].websocket,
            metrics,
            per_worker,
        });
    }
    Ok((ports, table, channels))
}

/// The start-up lines (Swoole/Hyperf print the same).
fn announce(spec: &ServeSpec, ports: &[BoundPort], workers: usize) {
    for (p, l) in ports.iter().zip(&spec.listeners) {
        let kind = match &spec.announce_kind {
            Some(k) => k.as_str(),
            None if p.websocket => "WebSocket",
            None => "HTTP",
        };
        let prefix = &spec.announce_prefix;
        println!(
            "{prefix}{kind} Server listening at {}:{}",
            l.host,
            p.addr.port()
        );
    }
    for p in ports.iter().filter(|p| p.metrics) {
        println!(
            "{}Metrics Server listening at {}",
            spec.announce_prefix, p.addr
        );
    }
    let _ = io::stdout().flush();
    log::info!(
        "master pid {} starting {workers} workers",
        std::process::id()
    );
}

impl<H: Handler> Master<H> {
    fn start_workers(&mut self) -> Result<(), Error> {
        for id in 0..self.settings.worker_num {
            let pid = self.spawn(id, id)?;
            self.workers.push(WorkerSlot {
                pid: Some(pid),
                region: id,
                started: Instant::now(),
                crashes: 0,
                restart_at: None,
                watch: None,
            });
        }
        Ok(())
    }

    /// A new master of an upgrade: its workers go to the regions the old ones do not use;
    /// it takes over once they all run (see `upgrade`).
    fn start_workers_beside_old(&mut self, old_master: i32) -> Result<(), Error> {
        let regions = Self::free_regions(&self.table, self.settings.worker_num);
        for (id, region) in regions.into_iter().enumerate() {
            let pid = self.spawn(id, region)?;
            self.workers.push(WorkerSlot {
                pid: Some(pid),
                region,
                started: Instant::now(),
                crashes: 0,
                restart_at: None,
                watch: None,
            });
        }
        self.expect_takeover(old_master);
        Ok(())
    }

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
                let boot = self.boot(id, region, master_pid);
                match self.handler.take() {
                    Some(h) => run_worker(h, boot),
                    None => std::process::exit(1),
                }
            }
        }
    }

    fn boot(&self, id: usize, region: usize, master_pid: i32) -> WorkerBoot {
        WorkerBoot {
            worker_id: id,
            region,
            listeners: self
                .ports
                .iter()
                .enumerate()
                // The metrics port comes after the listeners and has no TLS entry.
                .map(|(i, p)| WorkerListener {
                    per_worker: p.per_worker.iter().map(|s| s.as_raw_fd()).collect(),
                    port: p.addr.port(),
                    websocket: p.websocket,
                    metrics: p.metrics,
                    tls: self.tls.get(i).cloned().flatten(),
                })
                .collect(),
            ipc_rx: self.channels[region].rx.as_raw_fd(),
            ipc_tx: self.channels.iter().map(|c| c.tx.as_raw_fd()).collect(),
            master_pid,
            table: self.table,
            settings: self.settings.clone(),
        }
    }

    /// How long a retiring worker may take: its drain time plus a grace second.
    fn drain_deadline(&self) -> Instant {
        Instant::now() + self.settings.max_wait_time + Duration::from_secs(1)
    }
}
