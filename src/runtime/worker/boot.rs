//! Starting a forked worker: signals, the reactor, listening sockets, channels, the context.

use std::cell::RefCell;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Interest, Poll, Registry, Waker};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};

use super::conn_slab::ConnSlab;
use super::context::{Ctx, Inner};
use super::tokens::Tokens;
use super::{guarded, Core, ListenerRt, PortRt, Worker, READ_BUF};
use crate::runtime::clock;
use crate::runtime::handler::Handler;
use crate::runtime::ipc::{Inbox, Outbox};
use crate::runtime::settings::Settings;
use crate::runtime::signals::{self, SignalPipe};
use crate::runtime::table::{SharedTable, READY, READY_ADOPTING};
use crate::runtime::timer::Timers;

/// A listening port as a worker sees it: the SO_REUSEPORT socket of every worker id.
pub(crate) struct WorkerListener {
    /// Indexed by worker id; the worker's own socket is `per_worker[worker_id]`.
    pub per_worker: Vec<RawFd>,
    pub port: u16,
    pub websocket: bool,
    pub metrics: bool,
    /// The port's TLS configuration; `None` for plain TCP.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

/// What the master hands a freshly forked worker.
pub(crate) struct WorkerBoot {
    pub worker_id: usize,
    pub region: usize,
    pub listeners: Vec<WorkerListener>,
    /// rx end of the own region's channel.
    pub ipc_rx: RawFd,
    /// tx end of every region's channel.
    pub ipc_tx: Vec<RawFd>,
    pub master_pid: i32,
    pub table: SharedTable,
    pub settings: Settings,
}

/// Entry point of a forked worker. Never returns.
pub(crate) fn run_worker<H: Handler>(handler: H, boot: WorkerBoot) -> ! {
    let code = match worker_main(handler, boot) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("worker failed: {e}");
            1
        }
    };
    log::logger().flush();
    let _ = io::stdout().flush();
    std::process::exit(code)
}

fn worker_main<H: Handler>(handler: H, boot: WorkerBoot) -> io::Result<()> {
    // Die with the master, even if it is killed with SIGKILL.
    // SAFETY: prctl with PR_SET_PDEATHSIG and a signal number.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if nix::unistd::getppid().as_raw() != boot.master_pid {
        return Err(io::Error::other("master died before the worker started"));
    }
    let sig = install_signals()?;
    let poll = Poll::new()?;
    let registry = poll.registry().try_clone()?;
    let (core, waker) = build_core(&boot, registry, &sig)?;
    let (jobs_tx, jobs_rx) = crossbeam_channel::bounded(core.settings.handle_queue_size.max(1));
    let settings = core.settings.clone();
    let (table, region) = (boot.table, boot.region);
    let cx = Ctx::new(Inner {
        worker_id: boot.worker_id,
        worker_num: core.worker_num,
        slots: core.slots,
        core: RefCell::new(core),
        inbox: RefCell::new(Inbox::new(table.regions())),
        deferred: RefCell::new(Vec::new()),
        timers: RefCell::new(Timers::new()),
        jobs_tx,
        jobs_rx,
        waker,
        settings,
        table,
    });
    let h = table.region(region);
    h.worker_id.store(boot.worker_id as u32, Ordering::Relaxed);
    h.pid.store(std::process::id(), Ordering::Relaxed);
    h.started_ms.store(clock::wall_ms(), Ordering::Relaxed);
    let worker = Worker { handler, cx };
    guarded("on_worker_start", || {
        worker.handler.on_worker_start(&worker.cx)
    });
    worker.after_batch();
    // Ready (for a reload to retire the old worker, for the watchdog, for peers) only once
    // the handler's start-up has run, however long it takes. A replacement waiting for its
    // predecessor's connections is ready to adopt them (2) but not yet where other workers
    // send (1): until it has them, the old worker is.
    let holding = worker.cx.core().accept_hold.is_some();
    h.ready.store(
        if holding { READY_ADOPTING } else { READY },
        Ordering::Release,
    );
    log::info!(
        "Worker#{} started (pid {})",
        boot.worker_id,
        std::process::id()
    );
    worker.run(poll, &sig)
}

/// SIGTERM/SIGINT (stop) and SIGUSR2 (re-check orphaned queues) through a pipe; the
/// master's SIGUSR1 and SIGHUP are ignored here.
fn install_signals() -> io::Result<SignalPipe> {
    // The inherited handlers are harmless (detached from the master's pipe); they are
    // replaced here without a window of default dispositions.
    signals::reset(&[Signal::SIGCHLD]);
    let sig = SignalPipe::install(&[Signal::SIGTERM, Signal::SIGINT, Signal::SIGUSR2])?;
    let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    for s in [Signal::SIGUSR1, Signal::SIGHUP] {
        // SAFETY: ignoring these signals in the worker.
        let _ = unsafe { nix::sys::signal::sigaction(s, &ign) };
    }
    Ok(sig)
}

fn build_core(
    boot: &WorkerBoot,
    registry: Registry,
    sig: &SignalPipe,
) -> io::Result<(Core, Arc<Waker>)> {
    let table = boot.table;
    let region = boot.region;
    table.reset_region(region);
    let regions = table.regions();
    let slots = table.slots_per_region();
    let n_listeners = boot.listeners.iter().map(|l| l.per_worker.len()).sum();
    if slots > super::deadlines::MAX_SLOTS {
        return Err(io::Error::other(
            "more slots per worker than deadlines can address",
        ));
    }
    let tokens = Tokens::new(slots, n_listeners, regions)
        .ok_or_else(|| io::Error::other("token layout overflows"))?;
    // A reload's replacement: the worker it replaces still runs (in the sibling region) and
    // will hand its connections over; their slots must stay free until then.
    let sibling = (region + regions / 2) % regions;
    let now = clock::mono_ms();
    let st = &boot.settings;
    let accept_hold = (st.reload_keeps_connections
        && sibling != region
        && table.region(sibling).pid.load(Ordering::Relaxed) != 0)
        .then(|| {
            let wait = st.max_wait_time.as_millis() as u64 + 1000;
            (sibling, now + wait, now)
        });
    let listeners = open_listeners(boot, &registry, &tokens, accept_hold.is_none())?;
    registry.register(
        &mut SourceFd(&boot.ipc_rx),
        tokens.ipc_rx(),
        Interest::READABLE,
    )?;
    registry.register(
        &mut SourceFd(&sig.fd()),
        tokens.signal(),
        Interest::READABLE,
    )?;
    let waker = Arc::new(Waker::new(&registry, tokens.waker())?);
    let core = Core {
        worker_id: boot.worker_id,
        region,
        worker_num: regions / 2,
        table,
        registry,
        tokens,
        conns: ConnSlab::with_capacity(slots),
        listeners,
        ports: boot
            .listeners
            .iter()
            .map(|l| PortRt {
                port: l.port,
                websocket: l.websocket,
                metrics: l.metrics,
                tls: l.tls.clone(),
            })
            .collect(),
        rbuf: vec![0; READ_BUF],
        tls_plain: Vec::new(),
        tls_scratch: Vec::new(),
        dirty: Vec::new(),
        dead: Vec::new(),
        more_input: Vec::new(),
        resume: Vec::new(),
        pool: Vec::new(),
        zbuf: Vec::new(),
        outbox: Outbox::new(region, regions, st.pipe_buffer_size),
        ipc_tx: boot.ipc_tx.clone(),
        ipc_tx_registered: vec![false; regions],
        ipc_rx: boot.ipc_rx,
        deadlines: Default::default(),
        now,
        wall: clock::wall_ms(),
        stopping: None,
        accept_retry_at: None,
        next_heartbeat: now + st.heartbeat_check_interval.unwrap_or(0) * 1000,
        next_ping: now
            + st.websocket_ping_interval
                .map_or(0, |d| d.as_millis() as u64),
        next_sync: now + 1000,
        subprotocols: st.subprotocols(),
        settings: Rc::new(st.clone()),
        messages_in: 0,
        messages_out: 0,
        counters: Default::default(),
        accepted: 0,
        closed: 0,
        slots,
        migrate_to: None,
        unmarked: Vec::new(),
        migrate_done_sent: false,
        moved_out: 0,
        migrate_started: 0,
        declined: Vec::new(),
        accept_hold,
    };
    Ok((core, waker))
}

/// Every worker id's socket of every port; only our own are registered now.
fn open_listeners(
    boot: &WorkerBoot,
    registry: &Registry,
    tokens: &Tokens,
    accept_now: bool,
) -> io::Result<Vec<ListenerRt>> {
    let mut listeners = Vec::new();
    for (pi, l) in boot.listeners.iter().enumerate() {
        let port_idx = u16::try_from(pi).map_err(|_| io::Error::other("too many ports"))?;
        for (owner, &raw) in l.per_worker.iter().enumerate() {
            // SAFETY: the master passed listening sockets it keeps open for the life of the
            // server; this process owns its inherited copies of the descriptors.
            let std_l = unsafe { std::net::TcpListener::from_raw_fd(raw) };
            let mut sock = TcpListener::from_std(std_l);
            let mine = owner == boot.worker_id && accept_now;
            if mine {
                let token = tokens.listener(listeners.len());
                registry.register(&mut sock, token, Interest::READABLE)?;
            }
            listeners.push(ListenerRt {
                sock,
                port_idx,
                owner,
                server_fd: raw,
                registered: mine,
            });
        }
    }
    Ok(listeners)
}
