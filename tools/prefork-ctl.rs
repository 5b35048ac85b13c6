//! `prefork-ctl reload|upgrade|stop|status --pid-file FILE [--timeout SECS]`: drives a running
//! prefork-ws server with signals and reads its shared table for status.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

/// Drives a running prefork-ws server with signals and reads its shared table for status.
///
/// Exit status: 0 done, 1 failed (no such server, signal refused, stop timed out), 2 bad usage.
#[derive(Parser)]
#[command(name = "prefork-ctl")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rolling reload, one worker at a time (SIGUSR1 to the master).
    Reload(Target),
    /// Binary upgrade (SIGURG to the master): the executable is started again as a new master
    /// on the same listeners and takes every connection over; waits up to --timeout and
    /// reports the new master's pid, or the failure (the running master then serves on).
    Upgrade(Target),
    /// Graceful shutdown (SIGTERM to the master); waits up to --timeout for it to exit.
    Stop(Target),
    /// Prints the master's and every worker's pid, uptime, connections and counters.
    Status(Target),
}

/// Which server, and how long to wait for it.
#[derive(Args)]
struct Target {
    /// The server's pid file (its pid_file setting).
    #[arg(long, value_name = "FILE")]
    pid_file: PathBuf,
    /// How long stop waits for the server to exit.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout: u64,
}

fn read_pid(path: &Path) -> Result<i32, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read pid file {shown}: {e} (is the server running?)"))?;
    text.trim()
        .parse()
        .map_err(|_| format!("pid file {shown} does not hold a pid"))
}

fn alive(pid: i32) -> bool {
    prefork_ws::runtime::inspect::process_running(pid)
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

/// Signals the upgrade and follows it in the shared table until the new master has taken
/// over (and the pid file names it) or the upgrade failed.
fn upgrade(pid: i32, target: &Target) -> Result<(), String> {
    use prefork_ws::runtime::inspect::{TableWatch, UpgradeState};
    let watch = TableWatch::open(pid as u32).map_err(|e| e.to_string())?;
    if let UpgradeState::Running(p) = watch.upgrade() {
        return Err(format!("an upgrade is already running (new master {p})"));
    }
    let before = (watch.upgrade(), watch.upgrade_pid());
    signal(pid, libc::SIGURG)?;
    let timeout = Duration::from_secs(target.timeout);
    let start = Instant::now();
    while start.elapsed() < timeout {
        // The old master names the new one (upgrade_pid) when it starts it: a state with
        // another pid than before is this upgrade's.
        let now = (watch.upgrade(), watch.upgrade_pid());
        if now != before {
            match now.0 {
                UpgradeState::Failed => {
                    return Err(format!(
                        "upgrade failed: the new executable did not take over; master {pid} keeps serving (see its log)"
                    ));
                }
                UpgradeState::Done(new) if read_pid(&target.pid_file) == Ok(new as i32) => {
                    println!("upgraded: master {pid} -> {new} (connections handed over)");
                    return Ok(());
                }
                _ => {}
            }
        } else if !alive(pid) {
            return Err(format!("master {pid} exited"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("upgrade not complete after {timeout:?}"))
}

fn run(cmd: &Command) -> Result<(), String> {
    let (Command::Reload(target)
    | Command::Upgrade(target)
    | Command::Stop(target)
    | Command::Status(target)) = cmd;
    let pid = read_pid(&target.pid_file)?;
    if !alive(pid) {
        return Err(format!("server (pid {pid}) is not running"));
    }
    match cmd {
        Command::Reload(_) => {
            signal(pid, libc::SIGUSR1)?;
            println!("reload requested (SIGUSR1 to {pid})");
        }
        Command::Upgrade(_) => upgrade(pid, target)?,
        Command::Stop(_) => {
            let timeout = Duration::from_secs(target.timeout);
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
        Command::Status(_) => {
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
            // The same figures as GET /metrics (closes by reason, bytes, IPC queues, ...).
            let m =
                prefork_ws::runtime::inspect::metrics_of(pid as u32).map_err(|e| e.to_string())?;
            print!("{m}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prefork-ctl: {e}");
            ExitCode::FAILURE
        }
    }
}
