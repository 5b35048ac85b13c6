//! `prefork-ctl reload|stop|status --pid-file F`: drives a running prefork-ws server with
//! signals and reads its shared table for status.

use std::process::ExitCode;
use std::time::{Duration, Instant};

fn usage() -> ExitCode {
    eprintln!("usage: prefork-ctl reload|stop|status --pid-file FILE [--timeout SECS]");
    ExitCode::from(2)
}

fn read_pid(path: &str) -> Result<i32, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read pid file {path}: {e} (is the server running?)"))?;
    text.trim()
        .parse()
        .map_err(|_| format!("pid file {path} does not hold a pid"))
}

fn alive(pid: i32) -> bool {
    // A zombie (exited, not yet reaped by its parent) is not running.
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    // SAFETY: signal 0 only checks for existence.
    !zombie && unsafe { libc::kill(pid, 0) == 0 }
}

fn signal(pid: i32, sig: libc::c_int) -> Result<(), String> {
    // SAFETY: plain kill(2).
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(format!(
            "cannot signal {pid}: {}",
            std::io::Error::last_os_error()
        ))
    }
}

fn fmt_uptime(ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let s = now.saturating_sub(ms) / 1000;
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}

fn run(cmd: &str, pid_file: &str, timeout: Duration) -> Result<(), String> {
    let pid = read_pid(pid_file)?;
    if !alive(pid) {
        return Err(format!("server (pid {pid}) is not running"));
    }
    match cmd {
        "reload" => {
            signal(pid, libc::SIGUSR1)?;
            println!("reload requested (SIGUSR1 to {pid})");
        }
        "stop" => {
            signal(pid, libc::SIGTERM)?;
            let start = Instant::now();
            while alive(pid) && start.elapsed() < timeout {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(pid) {
                return Err(format!("server {pid} still running after {timeout:?}"));
            }
            println!("stopped (pid {pid})");
        }
        "status" => {
            let s =
                prefork_ws::runtime::inspect::stats_of(pid as u32).map_err(|e| e.to_string())?;
            println!(
                "master pid={} uptime={} connections={} accepted={} closed={} reloads={} worker_restarts={}",
                s.master_pid,
                fmt_uptime(s.start_time_ms),
                s.connection_num,
                s.accept_count,
                s.close_count,
                s.reload_count,
                s.worker_restarts
            );
            for w in &s.workers {
                println!(
                    "worker id={} pid={} uptime={} connections={} accepted={} closed={} messages_in={} messages_out={}",
                    w.worker_id,
                    w.pid,
                    fmt_uptime(w.started_ms),
                    w.connections,
                    w.accepted,
                    w.closed,
                    w.messages_in,
                    w.messages_out
                );
            }
        }
        _ => return Err(format!("unknown command {cmd}")),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        return usage();
    };
    let mut pid_file = None;
    let mut timeout = Duration::from_secs(10);
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--pid-file" => pid_file = it.next().cloned(),
            "--timeout" => {
                timeout = it
                    .next()
                    .and_then(|t| t.parse().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(timeout)
            }
            _ => return usage(),
        }
    }
    let Some(pid_file) = pid_file else {
        return usage();
    };
    match run(cmd, &pid_file, timeout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prefork-ctl: {e}");
            ExitCode::FAILURE
        }
    }
}
