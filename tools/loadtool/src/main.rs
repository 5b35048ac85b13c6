//! `loadtool`: the load generator of prefork-ws's benchmarks. One thread, its own mio event
//! loop, no allocation per message. Modes: `echo`, `connect`, `broadcast`; each ends with one
//! machine-readable `MODE: key=value …` line. With `--server-pid` it also reads the server's
//! CPU time and RSS (the pid and all its descendants) over the measured window.

mod broadcast;
mod connect;
mod echo;
mod net;
mod procstat;
mod tls;
mod ws;

use clap::{Parser, Subcommand};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "loadtool",
    version,
    about = "Single-threaded WebSocket load generator (mio)"
)]
struct Cli {
    /// Pid of the server (prefork master): its CPU time and RSS, with all descendants, are
    /// read over the measured window.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// No progress line on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// At most this many connects/handshakes in flight at once.
    #[arg(long, global = true, default_value_t = 128)]
    concurrency: usize,
    /// CA certificate(s) (PEM) to trust for `wss://` URLs.
    #[arg(long, global = true, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// C connections each send an S-byte message and wait for its echo (P in flight).
    Echo {
        #[arg(long, default_value = "ws://127.0.0.1:9502/")]
        url: String,
        #[arg(long, default_value_t = 100)]
        conns: usize,
        /// Message size in bytes.
        #[arg(long, default_value_t = 32)]
        size: usize,
        /// Measured window, e.g. 5s, 500ms.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        duration: Duration,
        /// Unmeasured run-in before the window.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        warmup: Duration,
        /// Messages in flight per connection.
        #[arg(long, default_value_t = 1)]
        pipeline: usize,
        /// Text frames instead of binary.
        #[arg(long)]
        text: bool,
        /// Plain TCP, no WebSocket handshake or framing: send S bytes, read S bytes back.
        #[arg(long)]
        raw: bool,
    },
    /// Opens C connections: handshakes/s and failures; then holds them idle.
    Connect {
        #[arg(long, default_value = "ws://127.0.0.1:9502/")]
        url: String,
        #[arg(long, default_value_t = 1000)]
        conns: usize,
        /// Keep the connections idle this long before the memory reading, e.g. 3s.
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        hold: Duration,
        /// Plain TCP connects, no WebSocket handshake.
        #[arg(long)]
        raw: bool,
    },
    /// K broadcasts to C subscribers: fan-out latency, deliveries/s, missing deliveries.
    Broadcast {
        #[arg(long, default_value = "ws://127.0.0.1:9502/")]
        url: String,
        #[arg(long, default_value_t = 100)]
        conns: usize,
        /// HTTP GET to this URL triggers one broadcast; "-SEQ" is appended to it, e.g.
        /// http://127.0.0.1:9502/?message=hello
        #[arg(
            long,
            conflicts_with = "trigger_ws",
            required_unless_present = "trigger_ws"
        )]
        trigger: Option<String>,
        /// Send TEXT-SEQ on one extra WebSocket connection; every subscriber should receive it.
        #[arg(long)]
        trigger_ws: Option<String>,
        /// Number of broadcasts (sent one after another).
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// Give up on a broadcast's missing deliveries after this long.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        timeout: Duration,
    },
}

/// `5`, `5s`, `1.5s`, `500ms`, `2m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?}"))?;
    if !(v >= 0.0 && v.is_finite()) {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(v * mul))
}

fn main() {
    let cli = Cli::parse();
    if let Some(ca) = &cli.ca {
        if let Err(e) = tls::set_ca(ca) {
            eprintln!("loadtool: {e}");
            std::process::exit(2);
        }
    }
    let limit = net::raise_nofile();
    let probe = match cli.server_pid {
        Some(pid) => match procstat::ServerProbe::new(pid) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("loadtool: --server-pid: {e}");
                std::process::exit(2);
            }
        },
        None => None,
    };
    let need = match &cli.mode {
        Mode::Echo { conns, .. } | Mode::Connect { conns, .. } | Mode::Broadcast { conns, .. } => {
            *conns as u64 + 16
        }
    };
    if limit < need {
        eprintln!("loadtool: warning: open-file limit {limit} is below the {need} descriptors this run needs");
    }
    let concurrency = cli.concurrency.max(1);
    let code = match cli.mode {
        Mode::Echo {
            url,
            conns,
            size,
            duration,
            warmup,
            pipeline,
            text,
            raw,
        } => echo::run(
            &echo::EchoOpts {
                url,
                conns,
                size,
                duration,
                warmup,
                pipeline,
                text,
                raw,
                concurrency,
                quiet: cli.quiet,
            },
            probe.as_ref(),
        ),
        Mode::Connect {
            url,
            conns,
            hold,
            raw,
        } => connect::run(
            &connect::ConnectArgs {
                url,
                conns,
                hold,
                raw,
                concurrency,
                quiet: cli.quiet,
            },
            probe.as_ref(),
        ),
        Mode::Broadcast {
            url,
            conns,
            trigger,
            trigger_ws,
            count,
            timeout,
        } => broadcast::run(
            &broadcast::BroadcastOpts {
                url,
                conns,
                trigger,
                trigger_ws,
                count,
                timeout,
                concurrency,
                quiet: cli.quiet,
            },
            probe.as_ref(),
        ),
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn cli_parses() {
        Cli::command_check();
    }

    impl Cli {
        fn command_check() {
            use clap::CommandFactory;
            Cli::command().debug_assert();
        }
    }
}
