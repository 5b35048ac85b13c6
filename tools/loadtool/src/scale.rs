//! `scale`: many connections on one box. Starts `--clients` `scale-client` processes (this
//! binary again), each opening its share of `--conns` from its own source address
//! (`--bind-from`, then the next addresses: 127.0.0.2, 127.0.0.3, …) so that neither the
//! per-process descriptor limit nor the ~28k ephemeral ports per address pair is reached, and
//! talks to them over their stdin/stdout. Then, against the server given by `--server-pid`:
//!
//! 1. idle: server RSS and PSS summed over master + workers, minus the reading before the first
//!    connect, per held connection; failed first connects (never retried);
//! 2. `--broadcasts` broadcasts, each triggered by one `GET --trigger-SEQ`: each client process
//!    stamps the first and last delivery of each broadcast with CLOCK_REALTIME, the time to the
//!    last delivery is the max over processes minus the trigger time; deliveries counted
//!    exactly; server CPU (all its processes) per delivery;
//! 3. `--reload`: SIGUSR1 to the master while the connections are held: when every worker has
//!    been replaced, what the clients saw (close codes, connections closed more than once) and
//!    how their reconnects went; then one more broadcast to check that every slot is back.
//!
//! Prints a Markdown report and a last `scale: key=value …` line. Exit status 1 when any first
//! connect failed or a broadcast missed a delivery.

use crate::procstat::{self, ServerProbe};
use crate::scale_client::realtime_ns;
use crate::ws::{self, Target};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub struct ScaleOpts {
    pub url: String,
    pub trigger: String,
    pub conns: usize,
    pub clients: usize,
    pub bind_from: Ipv4Addr,
    pub broadcasts: usize,
    pub reload: bool,
    pub settle: Duration,
    pub reconnect_attempts: u32,
    pub concurrency: usize,
    pub connect_timeout: Duration,
    pub broadcast_timeout: Duration,
    pub reload_timeout: Duration,
}

/// The sum of every client's `stats` line.
#[derive(Default, Debug)]
struct Agg {
    sums: BTreeMap<String, u64>,
    first_close_ns: u64,
    last_close_ns: u64,
    last_reconnect_ns: u64,
    codes: BTreeMap<u16, u64>,
    slot_closes: [u64; 4],
    max_reconnect_ms: u64,
    lat_initial: [u64; 6],
    lat_reconnect: [u64; 6],
    lat_reconnect_tcp: [u64; 6],
    lat_reconnect_hs: [u64; 6],
    /// seq → (deliveries, earliest first delivery, latest last delivery), CLOCK_REALTIME ns.
    seqs: BTreeMap<usize, (u64, u64, u64)>,
    errors: Vec<String>,
}

impl Agg {
    fn get(&self, k: &str) -> u64 {
        self.sums.get(k).copied().unwrap_or(0)
    }
    fn add_line(&mut self, line: &str) {
        let line = line.strip_prefix("stats ").unwrap_or(line);
        let (main, err) = match line.find(" first_error=") {
            Some(i) => (&line[..i], Some(&line[i + " first_error=".len()..])),
            None => (line, None),
        };
        if let Some(e) = err {
            self.errors.push(e.to_string());
        }
        for tok in main.split_whitespace() {
            let Some((k, v)) = tok.split_once('=') else {
                continue;
            };
            match k {
                "req" | "id" => {}
                "first_close_ns" => {
                    let v: u64 = v.parse().unwrap_or(0);
                    if v > 0 && (self.first_close_ns == 0 || v < self.first_close_ns) {
                        self.first_close_ns = v;
                    }
                }
                "last_close_ns" => {
                    self.last_close_ns = self.last_close_ns.max(v.parse().unwrap_or(0))
                }
                "last_reconnect_ns" => {
                    self.last_reconnect_ns = self.last_reconnect_ns.max(v.parse().unwrap_or(0))
                }
                "codes" => {
                    for p in v.split(',').filter(|p| !p.is_empty() && *p != "-") {
                        if let Some((c, n)) = p.split_once(':') {
                            *self.codes.entry(c.parse().unwrap_or(0)).or_insert(0) +=
                                n.parse::<u64>().unwrap_or(0);
                        }
                    }
                }
                "max_reconnect_ms" => {
                    self.max_reconnect_ms = self.max_reconnect_ms.max(v.parse().unwrap_or(0))
                }
                "lat_initial" | "lat_reconnect" | "lat_reconnect_tcp" | "lat_reconnect_hs" => {
                    let dst = match k {
                        "lat_initial" => &mut self.lat_initial,
                        "lat_reconnect" => &mut self.lat_reconnect,
                        "lat_reconnect_tcp" => &mut self.lat_reconnect_tcp,
                        _ => &mut self.lat_reconnect_hs,
                    };
                    for (i, n) in v.split(',').take(6).enumerate() {
                        dst[i] += n.parse::<u64>().unwrap_or(0);
                    }
                }
                "slot_closes" => {
                    for (i, n) in v.split(',').take(4).enumerate() {
                        self.slot_closes[i] += n.parse::<u64>().unwrap_or(0);
                    }
                }
                "seqs" => {
                    for p in v.split(',').filter(|p| !p.is_empty() && *p != "-") {
                        let f: Vec<u64> = p.split(':').filter_map(|x| x.parse().ok()).collect();
                        if f.len() == 4 {
                            let e = self.seqs.entry(f[0] as usize).or_insert((0, u64::MAX, 0));
                            e.0 += f[1];
                            e.1 = e.1.min(f[2]);
                            e.2 = e.2.max(f[3]);
                        }
                    }
                }
                _ => {
                    if let Ok(n) = v.parse::<u64>() {
                        *self.sums.entry(k.to_string()).or_insert(0) += n;
                    }
                }
            }
        }
    }
    fn closes(&self) -> u64 {
        self.codes.values().sum::<u64>() + self.get("eof_no_close") + self.get("errors")
    }
}

struct Fleet {
    kids: Vec<Child>,
    stdins: Vec<ChildStdin>,
    rx: Receiver<(usize, Option<String>)>,
    req: u64,
    /// `connected …` lines, per client.
    connected: Vec<Option<String>>,
}

impl Fleet {
    fn spawn(o: &ScaleOpts, quiet: bool) -> Result<Fleet, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let (tx, rx) = mpsc::channel();
        let mut kids = Vec::new();
        let mut stdins = Vec::new();
        let base = u32::from(o.bind_from);
        for i in 0..o.clients {
            let n = o.conns / o.clients + usize::from(i < o.conns % o.clients);
            let ip = Ipv4Addr::from(base + i as u32);
            let mut cmd = Command::new(&exe);
            cmd.arg("--concurrency")
                .arg(o.concurrency.to_string())
                .arg("--bind-ip")
                .arg(ip.to_string());
            if quiet {
                cmd.arg("--quiet");
            }
            cmd.arg("scale-client")
                .arg("--url")
                .arg(&o.url)
                .arg("--conns")
                .arg(n.to_string())
                .arg("--id")
                .arg(i.to_string())
                .arg("--reconnect-attempts")
                .arg(o.reconnect_attempts.to_string())
                .arg("--reconnect")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            let mut child = cmd
                .spawn()
                .map_err(|e| format!("spawn scale-client {i}: {e}"))?;
            let out = child.stdout.take().expect("piped stdout");
            stdins.push(child.stdin.take().expect("piped stdin"));
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    match line {
                        Ok(l) => {
                            if tx.send((i, Some(l))).is_err() {
                                return;
                            }
                        }
                        Err(_) => break,
                    }
                }
                let _ = tx.send((i, None));
            });
            kids.push(child);
        }
        Ok(Fleet {
            connected: vec![None; kids.len()],
            kids,
            stdins,
            rx,
            req: 0,
        })
    }

    fn pids(&self) -> Vec<u32> {
        self.kids.iter().map(Child::id).collect()
    }

    fn handle(&mut self, i: usize, line: Option<String>) -> Result<Option<String>, String> {
        match line {
            None => Err(format!("scale-client {i} exited")),
            Some(l) if l.starts_with("connected ") => {
                self.connected[i] = Some(l);
                Ok(None)
            }
            Some(l) => Ok(Some(l)),
        }
    }

    fn wait_connected(&mut self, timeout: Duration) -> Result<(), String> {
        let end = Instant::now() + timeout;
        while self.connected.iter().any(Option::is_none) {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((i, l)) => {
                    self.handle(i, l)?;
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{} of {} client processes not done connecting after {timeout:?}",
                        self.connected.iter().filter(|c| c.is_none()).count(),
                        self.kids.len()
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => return Err("clients gone".into()),
            }
        }
        Ok(())
    }

    fn stats(&mut self) -> Result<Agg, String> {
        self.req += 1;
        let req = self.req;
        for (i, s) in self.stdins.iter_mut().enumerate() {
            writeln!(s, "stats {req}").map_err(|e| format!("scale-client {i}: {e}"))?;
            let _ = s.flush();
        }
        let want = format!("stats req={req} ");
        let mut got = vec![false; self.kids.len()];
        let mut agg = Agg::default();
        let end = Instant::now() + Duration::from_secs(20);
        while got.iter().any(|g| !g) {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((i, l)) => {
                    if let Some(l) = self.handle(i, l)? {
                        if l.starts_with(&want) {
                            got[i] = true;
                            agg.add_line(&l);
                        }
                    }
                }
                Err(_) => return Err("a client did not answer `stats` in 20 s".into()),
            }
        }
        Ok(agg)
    }

    fn quit(&mut self) {
        for s in self.stdins.iter_mut() {
            let _ = writeln!(s, "quit");
            let _ = s.flush();
        }
        self.stdins.clear();
        for k in self.kids.iter_mut() {
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                match k.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() < end => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Ok(None) => {
                        let _ = k.kill();
                        let _ = k.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if !self.stdins.is_empty() {
            self.quit();
        }
    }
}

struct ProcMem {
    pid: u32,
    master: bool,
    rss_kb: u64,
    pss_kb: u64,
    anon_kb: u64,
    shmem_kb: u64,
    fds: usize,
}

struct Mem {
    rss_kb: u64,
    pss_kb: u64,
    procs: Vec<ProcMem>,
    /// `TCP:` line of /proc/net/sockstat (the whole machine, both ends of loopback).
    sockstat: String,
    /// Slab of /proc/meminfo (the whole machine), KiB.
    slab_kb: u64,
}

fn mem(probe: &ServerProbe) -> Mem {
    let mut m = Mem {
        rss_kb: 0,
        pss_kb: 0,
        procs: Vec::new(),
        sockstat: String::new(),
        slab_kb: procstat::meminfo_kb("Slab:").unwrap_or(0),
    };
    for pid in probe.tree() {
        if procstat::proc_state(pid).is_none_or(|s| s == 'Z') {
            continue;
        }
        let (rss, pss) = procstat::mem_kb(pid);
        let (anon, _file, shmem) = procstat::rss_parts_kb(pid);
        m.rss_kb += rss;
        m.pss_kb += pss;
        m.procs.push(ProcMem {
            pid,
            master: pid == probe.pid,
            rss_kb: rss,
            pss_kb: pss,
            anon_kb: anon,
            shmem_kb: shmem,
            fds: procstat::fd_count(pid).unwrap_or(0),
        });
    }
    if let Ok(s) = std::fs::read_to_string("/proc/net/sockstat") {
        if let Some(l) = s.lines().find(|l| l.starts_with("TCP:")) {
            m.sockstat = l.to_string();
        }
    }
    m
}

/// Live workers (children of the master that are not zombies).
fn workers(probe: &ServerProbe) -> Vec<u32> {
    probe
        .tree()
        .into_iter()
        .filter(|&p| p != probe.pid && procstat::proc_state(p).is_some_and(|s| s != 'Z'))
        .collect()
}

/// The accept-queue length (Recv-Q of `ss -ltn`) of every listening socket on `port`.
fn accept_queues(port: u16) -> String {
    let out = Command::new("ss")
        .args(["-ltnH", "sport", "=", &format!(":{port}")])
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .collect::<Vec<_>>()
            .join(" "),
        _ => "na".into(),
    }
}

/// A field of the `TCP:` line of /proc/net/sockstat (e.g. `tw`: TIME-WAIT sockets).
fn sockstat_field(key: &str) -> String {
    std::fs::read_to_string("/proc/net/sockstat")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("TCP:"))?.to_string();
            let f: Vec<&str> = l.split_whitespace().collect();
            let i = f.iter().position(|x| *x == key)?;
            f.get(i + 1).map(|x| x.to_string())
        })
        .unwrap_or_else(|| "na".into())
}

/// Sockets in TCP state `state` whose `dir` (sport/dport) is `port`, as `ss` counts them.
fn count_state(state: &str, dir: &str, port: u16) -> String {
    let out = Command::new("ss")
        .args(["-tnH", "state", state, dir, "=", &format!(":{port}")])
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .count()
            .to_string(),
        _ => "na".into(),
    }
}

/// One blocking `GET`; Ok(status line).
fn http_get(t: &Target, path: &str) -> Result<String, String> {
    let mut s = std::net::TcpStream::connect_timeout(&t.addr, Duration::from_secs(5))
        .map_err(|e| format!("trigger connect: {e}"))?;
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        t.host_header
    )
    .map_err(|e| format!("trigger write: {e}"))?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                resp.extend_from_slice(&buf[..n]);
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut r = httparse::Response::new(&mut headers);
                if let Ok(httparse::Status::Complete(head)) = r.parse(&resp) {
                    let cl = r
                        .headers
                        .iter()
                        .find(|x| x.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|x| {
                            std::str::from_utf8(x.value)
                                .ok()?
                                .trim()
                                .parse::<usize>()
                                .ok()
                        });
                    if cl.is_some_and(|cl| resp.len() >= head + cl) {
                        break;
                    }
                }
            }
            Err(e) if !resp.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(format!("trigger read: {e}")),
        }
    }
    let line = resp
        .split(|&b| b == b'\r')
        .next()
        .map(|l| String::from_utf8_lossy(l).to_string())
        .unwrap_or_default();
    if line.starts_with("HTTP/1.") && line.as_bytes().get(9) == Some(&b'2') {
        Ok(line)
    } else {
        Err(format!("trigger answered {line:?}"))
    }
}

/// The TCP counters that tell dropped SYNs and retransmissions, as a change between readings.
fn tcp_delta(
    a: &std::collections::HashMap<String, i64>,
    b: &std::collections::HashMap<String, i64>,
) -> String {
    const KEYS: [&str; 9] = [
        "Tcp.ActiveOpens",
        "Tcp.AttemptFails",
        "Tcp.EstabResets",
        "Tcp.RetransSegs",
        "TcpExt.ListenOverflows",
        "TcpExt.ListenDrops",
        "TcpExt.TCPReqQFullDrop",
        "TcpExt.SyncookiesSent",
        "TcpExt.TCPTimeouts",
    ];
    KEYS.iter()
        .map(|k| {
            let d = b.get(*k).copied().unwrap_or(0) - a.get(*k).copied().unwrap_or(0);
            format!("{} +{d}", k.split('.').nth(1).unwrap_or(k))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn lat_line(b: &[u64; 6]) -> String {
    let labels = ["< 10 ms", "10–100 ms", "0.1–1 s", "1–3 s", "3–7 s", "≥ 7 s"];
    labels
        .iter()
        .zip(b)
        .map(|(l, n)| format!("{l}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ms(ns: i128) -> f64 {
    ns as f64 / 1e6
}

fn kib(b: f64) -> String {
    format!("{:.0} B ({:.2} KiB)", b, b / 1024.0)
}

struct BroadcastResult {
    seq: usize,
    expected: u64,
    delivered: u64,
    http_ms: f64,
    first_ms: f64,
    last_ms: f64,
    cpu_us_per: f64,
    cpu_ms: f64,
    client_cpu_ms: f64,
    /// Busy share of the whole machine over the window, % of one core.
    box_pct: f64,
    /// The machine's busy time over the window minus the server's and the clients' CPU.
    other_cpu_ms: f64,
    error: Option<String>,
}

fn broadcast(
    fleet: &mut Fleet,
    probe: &ServerProbe,
    trig: &Target,
    seq: usize,
    expected: u64,
    timeout: Duration,
) -> Result<BroadcastResult, String> {
    fleet.stats()?; // every client answers before the quiet pause
    std::thread::sleep(Duration::from_millis(500));
    let kids = fleet.pids();
    let kids_cpu = |k: &[u32]| {
        k.iter()
            .filter_map(|&p| procstat::pid_cpu_ns(p))
            .sum::<u64>()
    };
    let s0 = probe.sample();
    let c0 = kids_cpu(&kids);
    let m0 = procstat::machine_busy_ns();
    let t0 = realtime_ns();
    let i0 = Instant::now();
    let path = format!("{}-{seq}", trig.path);
    let http = http_get(trig, &path);
    let http_ms = i0.elapsed().as_secs_f64() * 1000.0;
    let mut error = http.err();
    let mut agg;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        agg = fleet.stats()?;
        let got = agg.seqs.get(&seq).map_or(0, |s| s.0);
        if got >= expected {
            break;
        }
        if i0.elapsed() > timeout {
            error.get_or_insert(format!("{got} of {expected} deliveries after {timeout:?}"));
            break;
        }
    }
    let s1 = probe.sample();
    let c1 = kids_cpu(&kids);
    let busy = procstat::machine_busy_ns().saturating_sub(m0);
    let box_pct = 100.0 * busy as f64 / (i0.elapsed().as_nanos() as f64).max(1.0);
    // A moment more, then the final count (a duplicate would show here).
    std::thread::sleep(Duration::from_millis(300));
    let agg2 = fleet.stats()?;
    let (delivered, first, last) = agg2.seqs.get(&seq).copied().unwrap_or((0, t0, t0));

    let cpu_ns = s1.cpu_ns.saturating_sub(s0.cpu_ns);
    let client_ns = c1.saturating_sub(c0);
    Ok(BroadcastResult {
        seq,
        expected,
        delivered,
        http_ms,
        first_ms: ms(first as i128 - t0 as i128),
        last_ms: ms(last as i128 - t0 as i128),
        cpu_us_per: cpu_ns as f64 / 1000.0 / delivered.max(1) as f64,
        cpu_ms: cpu_ns as f64 / 1e6,
        client_cpu_ms: client_ns as f64 / 1e6,
        other_cpu_ms: busy.saturating_sub(cpu_ns + client_ns) as f64 / 1e6,
        box_pct,
        error,
    })
}

fn mem_table(md: &mut String, m: &Mem, base: Option<&Mem>) {
    let _ = writeln!(md, "| process | pid | fds | RSS KiB | PSS KiB | of RSS: anon / shmem KiB | RSS KiB before | PSS KiB before |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for p in &m.procs {
        let b = base.and_then(|b| b.procs.iter().find(|x| x.pid == p.pid));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} / {} | {} | {} |",
            if p.master { "master" } else { "worker" },
            p.pid,
            p.fds,
            p.rss_kb,
            p.pss_kb,
            p.anon_kb,
            p.shmem_kb,
            b.map_or("–".into(), |b| b.rss_kb.to_string()),
            b.map_or("–".into(), |b| b.pss_kb.to_string()),
        );
    }
    let _ = writeln!(
        md,
        "| **sum** | | {} | {} | {} | {} / {} | {} | {} |",
        m.procs.iter().map(|p| p.fds).sum::<usize>(),
        m.rss_kb,
        m.pss_kb,
        m.procs.iter().map(|p| p.anon_kb).sum::<u64>(),
        m.procs.iter().map(|p| p.shmem_kb).sum::<u64>(),
        base.map_or("–".into(), |b| b.rss_kb.to_string()),
        base.map_or("–".into(), |b| b.pss_kb.to_string()),
    );
}

/// One row of the reload timeline; CPU figures are cumulative since the SIGUSR1, ns.
struct Row {
    t: f64,
    old_alive: usize,
    new_n: usize,
    open: u64,
    closing: u64,
    queued: u64,
    in_flight: u64,
    hs_pending: u64,
    syn_recv: String,
    syn_sent: String,
    time_wait: String,
    closes: u64,
    reconnect_ok: u64,
    reconnect_failed: u64,
    old_cpu: u64,
    new_cpu: u64,
    client_cpu: u64,
    master_cpu: u64,
    machine_busy: u64,
    accept_queues: String,
}

fn broadcast_table(md: &mut String, rs: &[BroadcastResult]) {
    let _ = writeln!(
        md,
        "| broadcast | expected | delivered | GET answered ms | first delivery ms | last delivery ms | server CPU ms | server CPU µs/delivery | clients' CPU ms | other processes' CPU ms | whole box busy | error |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.3} | {:.0} | {:.0} | {:.0}% | {} |",
            r.seq,
            r.expected,
            r.delivered,
            r.http_ms,
            r.first_ms,
            r.last_ms,
            r.cpu_ms,
            r.cpu_us_per,
            r.client_cpu_ms,
            r.other_cpu_ms,
            r.box_pct,
            r.error.as_deref().unwrap_or("–")
        );
    }
}

pub fn run(o: &ScaleOpts, probe: Option<&ServerProbe>, quiet: bool) -> i32 {
    match run_inner(o, probe, quiet) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("scale: {e}");
            1
        }
    }
}

fn run_inner(o: &ScaleOpts, probe: Option<&ServerProbe>, quiet: bool) -> Result<i32, String> {
    let probe = probe.ok_or("scale needs --server-pid (the master)")?;
    let trig = ws::parse_url(&o.trigger)?;
    ws::parse_url(&o.url)?;
    if o.clients == 0 || o.conns == 0 {
        return Err("--clients and --conns must be at least 1".into());
    }
    let mut md = String::new();
    let mut fail = false;
    let nworkers = workers(probe).len();

    // 1. Connect and hold.
    let base = mem(probe);
    let k0 = procstat::tcp_counters();
    let s0 = probe.sample();
    let t_conn = Instant::now();
    eprintln!(
        "scale: {} connections from {} processes ({} … {}), server {} workers",
        o.conns,
        o.clients,
        o.bind_from,
        Ipv4Addr::from(u32::from(o.bind_from) + o.clients as u32 - 1),
        nworkers
    );
    let mut fleet = Fleet::spawn(o, quiet)?;
    fleet.wait_connected(o.connect_timeout)?;
    let connect_s = t_conn.elapsed().as_secs_f64();
    let s1 = probe.sample();
    let k1 = procstat::tcp_counters();
    let a = fleet.stats()?;
    let (ok, failed) = (a.get("initial_ok"), a.get("initial_failed"));
    eprintln!(
        "scale: connected {ok}, failed {failed} in {connect_s:.1} s; holding {:?}",
        o.settle
    );
    std::thread::sleep(o.settle);
    let held = mem(probe);
    let a = fleet.stats()?;
    let open = a.get("open");
    let slots = a.get("slots");
    fail |= failed > 0 || open < o.conns as u64;
    let _ = writeln!(md, "### 1. {} idle connections\n", o.conns);
    let _ = writeln!(
        md,
        "{} client processes (pids {:?}), source addresses {} to {}, {} connections each; {} in flight per process.\n",
        o.clients,
        fleet.pids(),
        o.bind_from,
        Ipv4Addr::from(u32::from(o.bind_from) + o.clients as u32 - 1),
        o.conns / o.clients,
        o.concurrency
    );
    let _ = writeln!(
        md,
        "- first connects: **{ok} succeeded, {failed} failed** (no retries) in {connect_s:.1} s = {:.0} handshakes/s; server CPU {:.1} µs per handshake",
        ok as f64 / connect_s,
        (s1.cpu_ns.saturating_sub(s0.cpu_ns)) as f64 / 1000.0 / ok.max(1) as f64
    );
    for e in &a.errors {
        let _ = writeln!(md, "  - first error of a client: {e}");
    }
    let _ = writeln!(
        md,
        "- after holding {:.0} s: **{open} open** (dropped by the server meanwhile: {} by close frame, {} by EOF, {} errors)",
        o.settle.as_secs_f64(),
        a.codes.values().sum::<u64>(),
        a.get("eof_no_close"),
        a.get("errors")
    );
    let n = open.max(1) as f64;
    let rss_per = (held.rss_kb as f64 - base.rss_kb as f64) * 1024.0 / n;
    let pss_per = (held.pss_kb as f64 - base.pss_kb as f64) * 1024.0 / n;
    let _ = writeln!(
        md,
        "- server memory per connection (master + {} workers, minus the reading before the first connect, / {open}): **RSS {}**, **PSS {}**",
        nworkers,
        kib(rss_per),
        kib(pss_per)
    );
    let kmem = (held.slab_kb as f64 - base.slab_kb as f64) * 1024.0 / n;
    let _ = writeln!(
        md,
        "- kernel, for context (whole machine, so both ends of every loopback connection and anything else running): `{}` before → `{}` held; slab memory +{:.0} MiB = {} per connection pair",
        base.sockstat.trim(),
        held.sockstat.trim(),
        (held.slab_kb as f64 - base.slab_kb as f64) / 1024.0,
        kib(kmem)
    );
    let _ = writeln!(
        md,
        "- connect-to-open time of the first connects: {}",
        lat_line(&a.lat_initial)
    );
    let _ = writeln!(
        md,
        "- TCP counters over the connect phase (whole machine, other sessions included): {}\n",
        tcp_delta(&k0, &k1)
    );
    mem_table(&mut md, &held, Some(&base));
    let _ = writeln!(md);

    // 2. Broadcasts.
    let mut results = Vec::new();
    for seq in 0..o.broadcasts {
        let expected = fleet.stats()?.get("open");
        let r = broadcast(&mut fleet, probe, &trig, seq, expected, o.broadcast_timeout)?;
        eprintln!(
            "scale: broadcast {seq}: {} of {} delivered, last after {:.1} ms, {:.3} µs CPU/delivery",
            r.delivered, r.expected, r.last_ms, r.cpu_us_per
        );
        fail |= r.delivered != r.expected || r.error.is_some() || r.expected != o.conns as u64;
        results.push(r);
    }
    let _ = writeln!(md, "### 2. Broadcast to all of them\n");
    let _ = writeln!(
        md,
        "Each broadcast is one `GET {}-SEQ`; times are from just before that request's connect to the first and to the last delivery (CLOCK_REALTIME stamped by each client process when it read the frame, max over processes). Server CPU = all its processes, from before the request until every delivery was counted; \"whole box busy\" is the machine's busy time over that window (200% = both cores), other sessions' work included.\n",
        o.trigger
    );
    broadcast_table(&mut md, &results);
    let a = fleet.stats()?;
    let _ = writeln!(
        md,
        "\nUnexpected or duplicate messages: {}; connections lost: {}.\n",
        a.get("unexpected"),
        a.closes()
    );
    fail |= a.get("unexpected") > 0;

    // 3. Rolling reload.
    let mut summary_reload = String::from("reload=skipped");
    if o.reload {
        let old = workers(probe);
        let pre = fleet.stats()?;
        let kr0 = procstat::tcp_counters();
        // A watcher thread notes, every 10 ms, when each new worker appears and each old one
        // is gone (reaped), independent of the slower client polling below.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let i0 = Instant::now();
        let watcher = {
            let stop = stop.clone();
            let old = old.clone();
            let master = probe.pid;
            std::thread::spawn(move || {
                let probe = match ServerProbe::new(master) {
                    Ok(p) => p,
                    Err(_) => return (Vec::new(), Vec::new()),
                };
                let mut seen: Vec<(u32, f64)> = Vec::new();
                let mut gone: Vec<(u32, f64)> = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let el = i0.elapsed().as_secs_f64();
                    let tree = probe.tree();
                    for p in workers(&probe) {
                        if !old.contains(&p) && !seen.iter().any(|(q, _)| *q == p) {
                            seen.push((p, el));
                        }
                    }
                    for p in &old {
                        if !tree.contains(p) && !gone.iter().any(|(q, _)| q == p) {
                            gone.push((*p, el));
                        }
                    }
                    if gone.len() == old.len() && seen.len() >= old.len() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                (seen, gone)
            })
        };
        let t0 = realtime_ns();
        eprintln!("scale: SIGUSR1 to master {} (workers {:?})", probe.pid, old);
        // SAFETY: kill(2) on the server master's pid, given by the caller.
        if unsafe { libc::kill(probe.pid as i32, libc::SIGUSR1) } != 0 {
            return Err(format!(
                "kill -USR1 {}: {}",
                probe.pid,
                std::io::Error::last_os_error()
            ));
        }
        let mut t_new_all: Option<f64> = None;
        let mut t_old_gone: Option<f64> = None;
        let mut last_stats = i0;
        let mut last_row_at = -1.0f64;
        let mut last_old_alive = old.len();
        let mut settled_twice = 0;
        let mut timeline: Vec<Row> = Vec::new();
        let mut timed_out = false;
        let client_pids = fleet.pids();
        let cpu_of = |pids: &[u32]| {
            pids.iter()
                .filter_map(|&p| procstat::pid_cpu_ns(p))
                .sum::<u64>()
        };
        // The old workers' CPU since the SIGUSR1: (now − then) while they live; once the
        // master has reaped one, its whole lifetime's CPU is in the master's cutime+cstime.
        let old_start: BTreeMap<u32, u64> = old
            .iter()
            .map(|&p| (p, procstat::pid_cpu_ns(p).unwrap_or(0)))
            .collect();
        let reaped0 = procstat::children_cpu_ns(probe.pid);
        let old_cpu_now = || {
            let mut sum = procstat::children_cpu_ns(probe.pid).saturating_sub(reaped0) as i64;
            for (p, start) in &old_start {
                match procstat::pid_cpu_ns(*p) {
                    Some(c) => sum += c as i64 - *start as i64,
                    None => sum -= *start as i64,
                }
            }
            sum.max(0) as u64
        };
        let mut new_cpu: BTreeMap<u32, u64> = BTreeMap::new();
        let client_cpu0 = cpu_of(&client_pids);
        let master_cpu0 = procstat::pid_cpu_ns(probe.pid).unwrap_or(0);
        let machine0 = procstat::machine_busy_ns();
        let server_port = ws::parse_url(&o.url)?.addr.port();
        let mut post;
        loop {
            let el = i0.elapsed().as_secs_f64();
            let tree = probe.tree();
            let old_alive = old.iter().filter(|p| tree.contains(p)).count();
            let live = workers(probe);
            let new_n = live.iter().filter(|p| !old.contains(p)).count();
            if t_new_all.is_none() && new_n >= old.len() {
                t_new_all = Some(el);
            }
            if t_old_gone.is_none() && old_alive == 0 {
                t_old_gone = Some(el);
            }
            if last_stats.elapsed() >= Duration::from_millis(250) || old_alive != last_old_alive {
                last_stats = Instant::now();
                post = fleet.stats()?;
                let busy = post.get("waiting") + post.get("connecting") + post.get("closing");
                if el - last_row_at >= 0.5 || busy == 0 {
                    last_row_at = el;
                    let aq = accept_queues(server_port);
                    let sr = count_state("syn-recv", "sport", server_port);
                    let ss_ = count_state("syn-sent", "dport", server_port);
                    let tw = sockstat_field("tw");
                    for p in live.iter().filter(|p| !old.contains(p)) {
                        if let Some(c) = procstat::pid_cpu_ns(*p) {
                            new_cpu.insert(*p, c);
                        }
                    }
                    timeline.push(Row {
                        // When the CPU figures below are read.
                        t: i0.elapsed().as_secs_f64(),
                        accept_queues: aq,
                        old_alive,
                        new_n,
                        open: post.get("open"),
                        closing: post.get("closing"),
                        queued: post.get("waiting"),
                        in_flight: post.get("connecting"),
                        hs_pending: post.get("hs_pending"),
                        syn_recv: sr,
                        syn_sent: ss_,
                        time_wait: tw,
                        closes: post.closes() - pre.closes(),
                        reconnect_ok: post.get("reconnect_ok"),
                        reconnect_failed: post.get("reconnect_failed"),
                        old_cpu: old_cpu_now(),
                        new_cpu: new_cpu.values().sum(),
                        client_cpu: cpu_of(&client_pids) - client_cpu0,
                        master_cpu: procstat::pid_cpu_ns(probe.pid).unwrap_or(0) - master_cpu0,
                        machine_busy: procstat::machine_busy_ns().saturating_sub(machine0),
                    });
                }
                last_old_alive = old_alive;
                if t_old_gone.is_some() && busy == 0 {
                    settled_twice += 1;
                    if settled_twice >= 2 {
                        break;
                    }
                } else {
                    settled_twice = 0;
                }
            }
            if i0.elapsed() > o.reload_timeout {
                timed_out = true;
                post = fleet.stats()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let kr1 = procstat::tcp_counters();
        let after_reload = mem(probe);
        let new_workers = workers(probe);
        let rel = |ns: u64| {
            if ns == 0 {
                "–".to_string()
            } else {
                format!("{:.0} ms", ms(ns as i128 - t0 as i128))
            }
        };
        let closes = post.closes() - pre.closes();
        let codes: Vec<String> = post
            .codes
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        let back_open = post.get("open");
        let _ = writeln!(md, "### 3. Rolling reload with the connections held\n");
        let _ = writeln!(
            md,
            "`kill -USR1 {}` (the master) at t = 0; the clients reconnect once the server has closed the TCP connection (a failed reconnect is retried after 100 ms × attempts, at most {} attempts per close, every failure counted).\n",
            probe.pid, o.reconnect_attempts
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (seen, gone) = watcher.join().unwrap_or_default();
        let t_new_all =
            (seen.len() >= old.len()).then(|| seen.iter().map(|x| x.1).fold(0.0, f64::max));
        let t_old_gone =
            (gone.len() == old.len()).then(|| gone.iter().map(|x| x.1).fold(0.0, f64::max));
        let f = |t: Option<f64>| {
            t.map_or("not within the timeout".into(), |t| {
                format!("{:.0} ms", t * 1000.0)
            })
        };
        let list = |v: &[(u32, f64)]| {
            v.iter()
                .map(|(p, t)| format!("{p} at {:.0} ms", t * 1000.0))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            md,
            "- all {} workers replaced (every new worker process up): **{}**; all old workers exited (reaped): **{}** (each polled every 10 ms)",
            old.len(),
            f(t_new_all),
            f(t_old_gone)
        );
        let _ = writeln!(md, "  - new workers seen: {}", list(&seen));
        let _ = writeln!(md, "  - old workers gone: {}", list(&gone));
        let _ = writeln!(
            md,
            "- old workers {:?} → new workers {:?}",
            old, new_workers
        );
        let _ = writeln!(
            md,
            "- what the clients saw: **{closes} connections closed by the server** — close codes {}; closed without a close frame (EOF): {}; errors: {}. After answering the close frame: the server closed the TCP connection cleanly {} times, reset it {} times (the worker was killed before reading the answer), did not close it within 5 s {} times",
            if codes.is_empty() { "none".to_string() } else { codes.join(", ") },
            post.get("eof_no_close") - pre.get("eof_no_close"),
            post.get("errors") - pre.get("errors"),
            post.codes.values().sum::<u64>().saturating_sub(post.get("close_resets") + post.get("close_timeouts")),
            post.get("close_resets"),
            post.get("close_timeouts")
        );
        let _ = writeln!(
            md,
            "- client slots closed 0 / 1 / 2 / 3+ times: {} / {} / {} / {} (a reconnect can land on a worker not replaced yet and be closed again)",
            post.slot_closes[0], post.slot_closes[1], post.slot_closes[2], post.slot_closes[3]
        );
        let _ = writeln!(
            md,
            "- first close seen at {}, last at {}",
            rel(post.first_close_ns),
            rel(post.last_close_ns)
        );
        let _ = writeln!(
            md,
            "- reconnects: **{} attempted, {} succeeded, {} failed** (slots that gave up: {}); last reconnect done at {}; **{back_open} of {slots} open** at the end{}",
            post.get("reconnect_attempts"),
            post.get("reconnect_ok"),
            post.get("reconnect_failed"),
            post.get("gave_up"),
            rel(post.last_reconnect_ns),
            if timed_out { format!(" (stopped waiting after {:?})", o.reload_timeout) } else { String::new() }
        );
        let _ = writeln!(
            md,
            "- connect-to-open time of the reconnects: {} (max {} ms); a connect whose SYN the kernel dropped waits ≥ 1 s for the first retransmission",
            lat_line(&post.lat_reconnect),
            post.max_reconnect_ms
        );
        let _ = writeln!(
            md,
            "  - of which the TCP connect (SYN to established, done by the kernel): {}",
            lat_line(&post.lat_reconnect_tcp)
        );
        let _ = writeln!(
            md,
            "  - and the WebSocket handshake (request sent to 101 read: a worker must accept and answer): {}",
            lat_line(&post.lat_reconnect_hs)
        );
        let _ = writeln!(
            md,
            "- TCP counters over the reload (whole machine, other sessions included): {}",
            tcp_delta(&kr0, &kr1)
        );
        if let Some(last) = timeline.last() {
            let _ = writeln!(
                md,
                "- CPU from the SIGUSR1 until every client was back ({:.1} s): old workers {:.2} s, new workers {:.2} s, master {:.2} s, client processes {:.2} s; the whole box was busy {:.0}% of the time (200% = both cores; other sessions' work on this shared machine included)",
                last.t,
                last.old_cpu as f64 / 1e9,
                last.new_cpu as f64 / 1e9,
                last.master_cpu as f64 / 1e9,
                last.client_cpu as f64 / 1e9,
                100.0 * last.machine_busy as f64 / (last.t * 1e9).max(1.0)
            );
        }
        for e in post.errors.iter().filter(|e| !a.errors.contains(e)) {
            let _ = writeln!(md, "  - first error of a client: {e}");
        }
        let _ = writeln!(
            md,
            "- server memory after the reload with {back_open} connections: RSS {} KiB, PSS {} KiB (per connection over the first baseline: RSS {}, PSS {})\n",
            after_reload.rss_kb,
            after_reload.pss_kb,
            kib((after_reload.rss_kb as f64 - base.rss_kb as f64) * 1024.0 / back_open.max(1) as f64),
            kib((after_reload.pss_kb as f64 - base.pss_kb as f64) * 1024.0 / back_open.max(1) as f64),
        );
        let _ = writeln!(md, "Timeline (about every 0.5 s; closing = clients that answered the server's close frame and wait for its TCP close; reconnects queued = waiting in the client processes for one of their 128 in-flight places, in flight = connect or handshake under way; CPU = share of one core over the interval since the row before, per group of processes (2 cores: 200% is the whole box); server SYN-RECV = half-open connections to the server port, clients SYN-SENT = client connects whose SYN is not answered yet, TIME-WAIT = the machine's TIME-WAIT sockets (/proc/net/sockstat); accept queues = connections waiting in each listening socket's accept queue (`ss -ltn` Recv-Q), one per worker id):\n");
        let _ = writeln!(md, "| t s | old workers alive | new workers | clients open | closing | reconnects queued | reconnects in flight | of those, request sent and no 101 yet | closes | reconnects ok | reconnects failed | CPU old workers | CPU new workers | CPU master | CPU clients | server SYN-RECV | clients SYN-SENT | TIME-WAIT (box) | accept queues |");
        let _ = writeln!(
            md,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        let keep = 60;
        let step = timeline.len().div_ceil(keep).max(1);
        let mut prev: Option<&Row> = None;
        for (k, r) in timeline.iter().enumerate() {
            if !(k % step == 0 || k + 1 == timeline.len()) {
                continue;
            }
            let (pt, po, pn, pm, pc) = prev.map_or((0.0, 0, 0, 0, 0), |p| {
                (p.t, p.old_cpu, p.new_cpu, p.master_cpu, p.client_cpu)
            });
            let dt = ((r.t - pt) * 1e9).max(1.0);
            let pct = |a: u64, b: u64| format!("{:.0}%", 100.0 * a.saturating_sub(b) as f64 / dt);
            let _ = writeln!(
                md,
                "| {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.t,
                r.old_alive,
                r.new_n,
                r.open,
                r.closing,
                r.queued,
                r.in_flight,
                r.hs_pending,
                r.closes,
                r.reconnect_ok,
                r.reconnect_failed,
                pct(r.old_cpu, po),
                pct(r.new_cpu, pn),
                pct(r.master_cpu, pm),
                pct(r.client_cpu, pc),
                r.syn_recv,
                r.syn_sent,
                r.time_wait,
                r.accept_queues
            );
            prev = Some(r);
        }
        let _ = writeln!(md);
        mem_table(&mut md, &after_reload, None);
        let _ = writeln!(md);
        let expected = back_open;
        let r = broadcast(
            &mut fleet,
            probe,
            &trig,
            o.broadcasts,
            expected,
            o.broadcast_timeout,
        )?;
        let _ = writeln!(
            md,
            "A broadcast after the reload, to check that every reconnected client is served:\n"
        );
        broadcast_table(&mut md, std::slice::from_ref(&r));
        let _ = writeln!(md);
        fail |= r.delivered != r.expected || timed_out;
        summary_reload = format!(
            "reload_replaced_ms={} reload_old_gone_ms={} reload_closes={closes} reload_codes={} reload_reconnects_ok={} reload_reconnects_failed={} reload_back_open={back_open} post_reload_delivered={}",
            t_new_all.map_or("na".into(), |t| format!("{:.0}", t * 1000.0)),
            t_old_gone.map_or("na".into(), |t| format!("{:.0}", t * 1000.0)),
            post.codes.iter().map(|(c, n)| format!("{c}:{n}")).collect::<Vec<_>>().join(","),
            post.get("reconnect_ok"),
            post.get("reconnect_failed"),
            r.delivered
        );
    }
    fleet.quit();
    print!("{md}");
    let bc: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{}/{}@{:.1}ms/{:.3}us",
                r.delivered, r.expected, r.last_ms, r.cpu_us_per
            )
        })
        .collect();
    println!(
        "scale: conns={} clients={} workers={nworkers} ok={ok} failed={failed} open={open} rss_per_conn_b={rss_per:.0} pss_per_conn_b={pss_per:.0} broadcasts={} {summary_reload}",
        o.conns,
        o.clients,
        bc.join(",")
    );
    Ok(i32::from(fail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_lines_add_up() {
        let mut a = Agg::default();
        a.add_line("stats req=3 id=0 open=10 initial_ok=10 first_close_ns=50 last_close_ns=70 last_reconnect_ns=0 max_reconnect_ms=12 lat_initial=1,2,3,4,0,0 slot_closes=5,4,1,0 codes=1001:4,1000:1 seqs=0:10:100:200,1:9:300:400 first_error=first connect: refused here");
        a.add_line("stats req=3 id=1 open=5 initial_ok=5 first_close_ns=40 last_close_ns=60 last_reconnect_ns=90 max_reconnect_ms=30 lat_initial=0,0,1,0,0,0 slot_closes=5,0,0,0 codes=- seqs=0:5:90:210");
        assert_eq!(a.get("open"), 15);
        assert_eq!(a.get("initial_ok"), 15);
        assert_eq!(
            (a.first_close_ns, a.last_close_ns, a.last_reconnect_ns),
            (40, 70, 90)
        );
        assert_eq!(a.max_reconnect_ms, 30);
        assert_eq!(a.lat_initial, [1, 2, 4, 4, 0, 0]);
        assert_eq!(a.slot_closes, [10, 4, 1, 0]);
        assert_eq!(a.codes.get(&1001), Some(&4));
        assert_eq!(a.seqs.get(&0), Some(&(15, 90, 210)));
        assert_eq!(a.seqs.get(&1), Some(&(9, 300, 400)));
        assert_eq!(a.errors, vec!["first connect: refused here".to_string()]);
        assert_eq!(a.closes(), 5);
    }
}
