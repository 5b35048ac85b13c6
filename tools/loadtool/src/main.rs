//! `loadtool`: the load generator of prefork-ws's benchmarks. One thread, its own mio event
//! loop, no allocation per message. Modes: `echo`, `connect`, `broadcast`, and on raw
//! Socket.IO frames (sio.rs) `sio-ack`, `sio-broadcast`, `sio-idle`; each ends with one
//! machine-readable `MODE: key=value …` line. `scale` (scale.rs) drives several `scale-client`
//! processes, each from its own source address (`--bind-ip`), for 100,000 connections on one
//! box. With `--server-pid` it also reads the server's CPU time and RSS (the pid and all its
//! descendants) over the measured window.

mod broadcast;
mod connect;
mod echo;
mod net;
mod procstat;
mod scale;
mod scale_client;
mod sio;
mod sio_ack;
mod sio_broadcast;
mod sio_idle;
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
    /// Source address of every connection (bind before connect), e.g. 127.0.0.2: each source
    /// address has its own ~28k ephemeral ports towards one server address.
    #[arg(long, global = true)]
    bind_ip: Option<std::net::IpAddr>,
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
    /// Socket.IO: C connections each keep P `42<id>["event",DATA]` in flight and count the
    /// ACKs `43<id>["Event Received: DATA"]`.
    SioAck {
        /// Server URL; with no path, /socket.io/?EIO=4&transport=websocket is used.
        #[arg(long, default_value = "ws://127.0.0.1:3000/")]
        url: String,
        #[arg(long, default_value_t = 100)]
        conns: usize,
        /// The event's string argument.
        #[arg(long, default_value = "hello")]
        data: String,
        /// Measured window, e.g. 5s, 500ms.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        duration: Duration,
        /// Unmeasured run-in before the window.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        warmup: Duration,
        /// Events awaiting their ACK per connection.
        #[arg(long, default_value_t = 1)]
        pipeline: usize,
    },
    /// Socket.IO: C receivers join room "bench"; one more connection emits `bcast` K times;
    /// deliveries, missing ones, time to the last delivery.
    SioBroadcast {
        /// Server URL; with no path, /socket.io/?EIO=4&transport=websocket is used.
        #[arg(long, default_value = "ws://127.0.0.1:3000/")]
        url: String,
        /// Receivers (the sender is one connection more).
        #[arg(long, default_value_t = 1000)]
        conns: usize,
        /// The sender's event: `bcast` (io.to("bench").emit) or `say` ({room, message} →
        /// socket.to(room).emit "<sid> say: <message>").
        #[arg(long, value_enum, default_value = "bcast")]
        via: sio_broadcast::Via,
        /// Measured broadcasts.
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Unmeasured broadcasts before them.
        #[arg(long, default_value_t = 10)]
        warmup_count: usize,
        /// Broadcasts in flight at once (in flight until every receiver has it).
        #[arg(long, default_value_t = 4)]
        window: usize,
        /// Give up on a broadcast's missing deliveries after this long.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Socket.IO: opens C connections (connects/s), holds them idle answering Engine.IO pings,
    /// then reads the server's memory per connection.
    SioIdle {
        /// Server URL; with no path, /socket.io/?EIO=4&transport=websocket is used.
        #[arg(long, default_value = "ws://127.0.0.1:3000/")]
        url: String,
        #[arg(long, default_value_t = 1000)]
        conns: usize,
        /// Keep the connections idle this long before the memory reading, e.g. 3s.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        hold: Duration,
    },
    /// Many connections from several processes and source addresses: idle memory per
    /// connection, broadcasts to all of them, a rolling reload while they are held (scale.rs).
    Scale {
        #[arg(long, default_value = "ws://127.0.0.1:9502/")]
        url: String,
        /// HTTP GET to this URL + "-SEQ" triggers one broadcast, e.g.
        /// http://127.0.0.1:9502/?message=scale
        #[arg(long)]
        trigger: String,
        #[arg(long, default_value_t = 100_000)]
        conns: usize,
        /// Client processes (each opens conns/clients, under its descriptor limit).
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Source address of the first client process; the next ones count up from it.
        #[arg(long, default_value = "127.0.0.2")]
        bind_from: std::net::Ipv4Addr,
        #[arg(long, default_value_t = 3)]
        broadcasts: usize,
        /// Also send SIGUSR1 (rolling reload) to the master while the connections are held.
        #[arg(long)]
        reload: bool,
        /// How long to hold the connections idle before the memory reading.
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        settle: Duration,
        /// Reconnect attempts per close, in all (each failure is counted).
        #[arg(long, default_value_t = 5)]
        reconnect_attempts: u32,
        #[arg(long, default_value = "180s", value_parser = parse_duration)]
        connect_timeout: Duration,
        #[arg(long, default_value = "20s", value_parser = parse_duration)]
        broadcast_timeout: Duration,
        #[arg(long, default_value = "90s", value_parser = parse_duration)]
        reload_timeout: Duration,
    },
    /// One load process of `scale`, driven over stdin/stdout (see scale_client.rs).
    ScaleClient {
        #[arg(long, default_value = "ws://127.0.0.1:9502/")]
        url: String,
        #[arg(long, default_value_t = 1000)]
        conns: usize,
        #[arg(long, default_value_t = 0)]
        id: usize,
        /// Open a connection again after the server has closed it.
        #[arg(long)]
        reconnect: bool,
        #[arg(long, default_value_t = 5)]
        reconnect_attempts: u32,
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
    if let Some(ip) = cli.bind_ip {
        net::set_bind_ip(ip);
    }
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
        Mode::Echo { conns, .. }
        | Mode::Connect { conns, .. }
        | Mode::Broadcast { conns, .. }
        | Mode::SioAck { conns, .. }
        | Mode::SioBroadcast { conns, .. }
        | Mode::SioIdle { conns, .. }
        | Mode::ScaleClient { conns, .. } => *conns as u64 + 16,
        Mode::Scale { .. } => 64,
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
        Mode::SioAck {
            url,
            conns,
            data,
            duration,
            warmup,
            pipeline,
        } => sio_ack::run(
            &sio_ack::AckOpts {
                url,
                conns,
                data,
                duration,
                warmup,
                pipeline,
                concurrency,
                quiet: cli.quiet,
            },
            probe.as_ref(),
        ),
        Mode::SioBroadcast {
            url,
            conns,
            via,
            count,
            warmup_count,
            window,
            timeout,
        } => sio_broadcast::run(
            &sio_broadcast::SioBroadcastOpts {
                url,
                via,
                conns,
                count,
                warmup_count,
                window,
                timeout,
                concurrency,
                quiet: cli.quiet,
            },
            probe.as_ref(),
        ),
        Mode::SioIdle { url, conns, hold } => sio_idle::run(
            &sio_idle::SioIdleOpts {
                url,
                conns,
                hold,
                concurrency,
                quiet: cli.quiet,
            },
            probe.as_ref(),
        ),
        Mode::Scale {
            url,
            trigger,
            conns,
            clients,
            bind_from,
            broadcasts,
            reload,
            settle,
            reconnect_attempts,
            connect_timeout,
            broadcast_timeout,
            reload_timeout,
        } => scale::run(
            &scale::ScaleOpts {
                url,
                trigger,
                conns,
                clients,
                bind_from,
                broadcasts,
                reload,
                settle,
                reconnect_attempts: reconnect_attempts.max(1),
                concurrency,
                connect_timeout,
                broadcast_timeout,
                reload_timeout,
            },
            probe.as_ref(),
            cli.quiet,
        ),
        Mode::ScaleClient {
            url,
            conns,
            id,
            reconnect,
            reconnect_attempts,
        } => scale_client::run(scale_client::ClientOpts {
            url,
            conns,
            id,
            concurrency,
            reconnect,
            reconnect_attempts: reconnect_attempts.max(1),
        }),
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
