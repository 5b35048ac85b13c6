//! Reading a server's CPU time and memory from /proc: the process given by `--server-pid` and
//! all its descendants (prefork master + workers), and the load tool's own CPU.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

/// One reading of the server's process tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// utime+stime of every process in the tree, in nanoseconds (clock-tick resolution, or
    /// nanosecond resolution when the per-thread schedstat files are readable).
    pub cpu_ns: u64,
    /// Sum of VmRSS over the tree, KiB.
    pub rss_kb: u64,
    /// Sum of Pss over the tree (from smaps_rollup), KiB; 0 when unreadable.
    pub pss_kb: u64,
    /// Number of processes in the tree.
    pub procs: usize,
}

/// The server process tree rooted at a pid.
pub struct ServerProbe {
    pub pid: u32,
    /// /proc/PID/task/TID/children exists on this kernel (CONFIG_PROC_CHILDREN); otherwise the
    /// tree is found by scanning every /proc/N/stat for its parent pid.
    children_files: bool,
    tick_ns: u64,
    /// Whether CPU comes from schedstat (ns) rather than stat (ticks).
    pub schedstat: bool,
}

impl ServerProbe {
    pub fn new(pid: u32) -> Result<ServerProbe, String> {
        if !Path::new(&format!("/proc/{pid}/stat")).exists() {
            return Err(format!("no process {pid}"));
        }
        let children_files = Path::new(&format!("/proc/{pid}/task/{pid}/children")).exists();
        // SAFETY: sysconf has no memory-safety preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let tick_ns = if hz > 0 {
            1_000_000_000 / hz as u64
        } else {
            10_000_000
        };
        let schedstat = fs::read_to_string(format!("/proc/{pid}/task/{pid}/schedstat")).is_ok();
        Ok(ServerProbe {
            pid,
            children_files,
            tick_ns,
            schedstat,
        })
    }

    /// The pid and all its descendants.
    pub fn tree(&self) -> Vec<u32> {
        let mut out = vec![self.pid];
        if self.children_files {
            let mut i = 0;
            while i < out.len() {
                let p = out[i];
                if let Ok(rd) = fs::read_dir(format!("/proc/{p}/task")) {
                    for t in rd.flatten() {
                        if let Ok(s) = fs::read_to_string(t.path().join("children")) {
                            out.extend(s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
                        }
                    }
                }
                i += 1;
            }
        } else {
            let mut kids: HashMap<u32, Vec<u32>> = HashMap::new();
            if let Ok(rd) = fs::read_dir("/proc") {
                for e in rd.flatten() {
                    let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                    else {
                        continue;
                    };
                    if let Some(f) = read_stat_fields(pid) {
                        if let Some(pp) = f.get(1).and_then(|x| x.parse::<u32>().ok()) {
                            kids.entry(pp).or_default().push(pid);
                        }
                    }
                }
            }
            let mut i = 0;
            while i < out.len() {
                if let Some(k) = kids.get(&out[i]) {
                    out.extend(k.iter().copied());
                }
                i += 1;
            }
        }
        out
    }

    pub fn sample(&self) -> Sample {
        let mut s = Sample::default();
        for pid in self.tree() {
            let mut cpu = None;
            if self.schedstat {
                cpu = schedstat_ns(pid);
            }
            if cpu.is_none() {
                if let Some(f) = read_stat_fields(pid) {
                    // Fields after "(comm)": state=0 ppid=1 ... utime=11 stime=12.
                    let ut: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0);
                    let st: u64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
                    cpu = Some((ut + st) * self.tick_ns);
                }
            }
            let Some(cpu) = cpu else { continue };
            s.cpu_ns += cpu;
            s.rss_kb += status_kb(pid, "VmRSS:").unwrap_or(0);
            s.pss_kb += rollup_kb(pid, "Pss:").unwrap_or(0);
            s.procs += 1;
        }
        s
    }
}

/// The whitespace-separated fields of /proc/PID/stat after the `(comm)` field.
fn read_stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Sum over the process's threads of the on-CPU time in /proc/PID/task/TID/schedstat.
fn schedstat_ns(pid: u32) -> Option<u64> {
    let rd = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    let mut any = false;
    for t in rd.flatten() {
        if let Ok(s) = fs::read_to_string(t.path().join("schedstat")) {
            if let Some(v) = s
                .split_whitespace()
                .next()
                .and_then(|x| x.parse::<u64>().ok())
            {
                total += v;
                any = true;
            }
        }
    }
    any.then_some(total)
}

fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l[key.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    kb_field(
        &fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        key,
    )
}

fn rollup_kb(pid: u32, key: &str) -> Option<u64> {
    kb_field(
        &fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?,
        key,
    )
}

/// The load tool's own CPU time (user+system), nanoseconds.
pub fn self_cpu_ns() -> u64 {
    // SAFETY: getrusage fills a local struct.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        (us(ru.ru_utime) + us(ru.ru_stime)) * 1000
    }
}

/// The CPUs a process may run on (`Cpus_allowed_list` of /proc/PID/status, e.g. "0" or "0-1,3").
fn allowed_cpus(pid: u32) -> Option<Vec<usize>> {
    let st = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let list = st
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    let mut out = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                out.extend(a.trim().parse::<usize>().ok()?..=b.trim().parse::<usize>().ok()?)
            }
            None => out.push(part.trim().parse().ok()?),
        }
    }
    Some(out)
}

/// Busy time (everything but idle and iowait) of the given CPUs from /proc/stat, ns.
fn cpus_busy_ns(cpus: &[usize], tick_ns: u64) -> Option<u64> {
    let st = fs::read_to_string("/proc/stat").ok()?;
    let mut total = 0u64;
    let mut found = 0usize;
    for l in st.lines() {
        let Some(rest) = l.strip_prefix("cpu") else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let Some(n) = f.next().and_then(|x| x.parse::<usize>().ok()) else {
            continue;
        };
        if !cpus.contains(&n) {
            continue;
        }
        let v: Vec<u64> = f.map(|x| x.parse().unwrap_or(0)).collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let busy: u64 = v
            .iter()
            .take(8)
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4)
            .map(|(_, x)| x)
            .sum();
        total += busy;
        found += 1;
    }
    (found == cpus.len()).then_some(total * tick_ns)
}

/// The CPUs the server is pinned to, when that is fewer than all of them: what else ran there
/// during a window tells whether the reading was disturbed.
fn pinned_cpus(pid: u32) -> Option<Vec<usize>> {
    let cpus = allowed_cpus(pid)?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    (online > 0 && cpus.len() < online as usize).then_some(cpus)
}

/// Server and client readings over one measured window.
pub struct Window {
    pub server: Option<(Sample, Sample)>,
    pub client_cpu_ns: u64,
    pub wall_ns: u64,
    /// Busy time of the server's (pinned) CPUs over the window, ns.
    pub cores_busy_ns: Option<u64>,
    /// Busy time of the load tool's own (pinned) CPUs over the window, ns.
    pub client_cores_busy_ns: Option<u64>,
}

pub struct WindowStart {
    server: Option<Sample>,
    client: u64,
    t: std::time::Instant,
    cores: Option<(Vec<usize>, u64, u64)>,
    client_cores: Option<(Vec<usize>, u64, u64)>,
}

fn tick_ns() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        1_000_000_000 / hz as u64
    } else {
        10_000_000
    }
}

pub fn window_start(probe: Option<&ServerProbe>) -> WindowStart {
    let cores = probe.and_then(|p| {
        let cpus = pinned_cpus(p.pid)?;
        let busy = cpus_busy_ns(&cpus, p.tick_ns)?;
        Some((cpus, busy, p.tick_ns))
    });
    let client_cores = probe.and_then(|_| {
        let cpus = pinned_cpus(std::process::id())?;
        let tick = tick_ns();
        let busy = cpus_busy_ns(&cpus, tick)?;
        Some((cpus, busy, tick))
    });
    WindowStart {
        server: probe.map(|p| p.sample()),
        client: self_cpu_ns(),
        t: std::time::Instant::now(),
        cores,
        client_cores,
    }
}

pub fn window_end(probe: Option<&ServerProbe>, ws: &WindowStart) -> Window {
    let wall_ns = ws.t.elapsed().as_nanos() as u64;
    let client_cpu_ns = self_cpu_ns().saturating_sub(ws.client);
    let server = match (probe, ws.server) {
        (Some(p), Some(a)) => Some((a, p.sample())),
        _ => None,
    };
    let cores_busy_ns = ws.cores.as_ref().and_then(|(cpus, before, tick)| {
        cpus_busy_ns(cpus, *tick).map(|after| after.saturating_sub(*before))
    });
    let client_cores_busy_ns = ws.client_cores.as_ref().and_then(|(cpus, before, tick)| {
        cpus_busy_ns(cpus, *tick).map(|after| after.saturating_sub(*before))
    });
    Window {
        server,
        client_cpu_ns,
        wall_ns,
        cores_busy_ns,
        client_cores_busy_ns,
    }
}

impl Window {
    pub fn client_pct(&self) -> f64 {
        100.0 * self.client_cpu_ns as f64 / self.wall_ns.max(1) as f64
    }
    pub fn server_cpu_ns(&self) -> Option<u64> {
        self.server.map(|(a, b)| b.cpu_ns.saturating_sub(a.cpu_ns))
    }
    pub fn server_pct(&self) -> Option<f64> {
        self.server_cpu_ns()
            .map(|c| 100.0 * c as f64 / self.wall_ns.max(1) as f64)
    }
    /// Server CPU µs per unit of work (message, handshake, delivery), "na" without a probe.
    pub fn us_per(&self, units: u64) -> String {
        match self.server_cpu_ns() {
            Some(c) if units > 0 => format!("{:.3}", c as f64 / 1000.0 / units as f64),
            _ => "na".into(),
        }
    }
    /// Share of a core that other processes took on the server's pinned CPUs over the window
    /// (their busy time minus the server's CPU time; tick resolution), "na" when the server is
    /// not pinned. Much above 0 means the machine was not quiet: readings are disturbed.
    pub fn other_pct(&self) -> String {
        match (self.cores_busy_ns, self.server_cpu_ns()) {
            (Some(busy), Some(cpu)) => format!(
                "{:.1}",
                100.0 * busy.saturating_sub(cpu) as f64 / self.wall_ns.max(1) as f64
            ),
            _ => "na".into(),
        }
    }
    pub fn rss_kb(&self) -> String {
        self.server
            .map_or("na".into(), |(_, b)| b.rss_kb.to_string())
    }
    /// The same on the load tool's own pinned CPUs (busy time minus the load tool's CPU
    /// time): a busy client core slows the load down (rates, and so batching, change).
    pub fn client_other_pct(&self) -> String {
        match self.client_cores_busy_ns {
            Some(busy) => format!(
                "{:.1}",
                100.0 * busy.saturating_sub(self.client_cpu_ns) as f64 / self.wall_ns.max(1) as f64
            ),
            None => "na".into(),
        }
    }
    /// Warns on stderr when other processes took more than 10% of a core on the server's or
    /// the load tool's CPUs.
    pub fn warn_other(&self, what: &str) {
        for (pct, whose) in [
            (self.other_pct(), "the server's"),
            (self.client_other_pct(), "the load tool's"),
        ] {
            if let Ok(p) = pct.parse::<f64>() {
                if p > 10.0 {
                    eprintln!(
                        "warning: {what}: other processes used {p:.0}% of a core on {whose} CPUs over the \
                         window; the readings are disturbed"
                    );
                }
            }
        }
    }
    /// Warns on stderr when the load tool itself was nearly saturated.
    pub fn warn_client(&self, what: &str) {
        let pct = self.client_pct();
        if pct > 90.0 {
            eprintln!(
                "warning: {what}: the load tool itself used {pct:.0}% of a CPU over the window; \
                 results may be client-bound"
            );
        }
    }
}

/// VmRSS and Pss (smaps_rollup) of one process, KiB (0 when unreadable).
pub fn mem_kb(pid: u32) -> (u64, u64) {
    (
        status_kb(pid, "VmRSS:").unwrap_or(0),
        rollup_kb(pid, "Pss:").unwrap_or(0),
    )
}

/// Busy time (all but idle and iowait) of every CPU of the machine so far, ns.
pub fn machine_busy_ns() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    cpus_busy_ns(&(0..n).collect::<Vec<_>>(), tick_ns()).unwrap_or(0)
}

/// CPU time of one process so far (all threads), ns; None when it is gone.
pub fn pid_cpu_ns(pid: u32) -> Option<u64> {
    if let Some(ns) = schedstat_ns(pid) {
        return Some(ns);
    }
    let f = read_stat_fields(pid)?;
    let ut: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0);
    let st: u64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
    Some((ut + st) * tick_ns())
}

/// CPU time of the reaped children of a process (cutime + cstime), ns (tick resolution).
pub fn children_cpu_ns(pid: u32) -> u64 {
    let Some(f) = read_stat_fields(pid) else {
        return 0;
    };
    let cut: u64 = f.get(13).and_then(|x| x.parse().ok()).unwrap_or(0);
    let cst: u64 = f.get(14).and_then(|x| x.parse().ok()).unwrap_or(0);
    (cut + cst) * tick_ns()
}

/// RssAnon, RssFile and RssShmem of one process (/proc/PID/status), KiB.
pub fn rss_parts_kb(pid: u32) -> (u64, u64, u64) {
    let Ok(t) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (0, 0, 0);
    };
    (
        kb_field(&t, "RssAnon:").unwrap_or(0),
        kb_field(&t, "RssFile:").unwrap_or(0),
        kb_field(&t, "RssShmem:").unwrap_or(0),
    )
}

/// A field of /proc/meminfo, KiB.
pub fn meminfo_kb(key: &str) -> Option<u64> {
    kb_field(&fs::read_to_string("/proc/meminfo").ok()?, key)
}

/// The machine's TCP counters from /proc/net/snmp (`Tcp:`) and /proc/net/netstat (`TcpExt:`),
/// as "Tcp.Name" / "TcpExt.Name".
pub fn tcp_counters() -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for f in ["/proc/net/snmp", "/proc/net/netstat"] {
        let Ok(t) = fs::read_to_string(f) else {
            continue;
        };
        let lines: Vec<&str> = t.lines().collect();
        for pair in lines.windows(2) {
            let (Some((p1, names)), Some((p2, vals))) =
                (pair[0].split_once(':'), pair[1].split_once(':'))
            else {
                continue;
            };
            if p1 != p2
                || !(p1 == "Tcp" || p1 == "TcpExt")
                || names
                    .trim_start()
                    .starts_with(|c: char| c.is_ascii_digit() || c == '-')
            {
                continue;
            }
            for (n, v) in names.split_whitespace().zip(vals.split_whitespace()) {
                if let Ok(v) = v.parse::<i64>() {
                    out.insert(format!("{p1}.{n}"), v);
                }
            }
        }
    }
    out
}

/// Open descriptors of one process (entries of /proc/PID/fd).
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// One-letter state of a process (R, S, Z, ...), None when it is gone.
pub fn proc_state(pid: u32) -> Option<char> {
    read_stat_fields(pid)?.first()?.chars().next()
}
