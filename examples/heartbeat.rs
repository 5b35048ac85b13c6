//! Seed 003's heartbeat: the server pings a client when it hears from it (the seed's
//! `$server->push($fd, $pingFrame)`), pings every client periodically (beyond Swoole, so
//! proxies keep idle clients), and closes connections idle longer than `heartbeat_idle_time`.
//!
//! `cargo run --release --example heartbeat -- --port 9501 --check 5 --idle 10 --ping-ms 2000`

use std::time::Duration;

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::{OpCode, Settings, FLAG_FIN};

/// Pings clients, and closes connections that stay silent longer than --idle.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
    /// Seconds between idle checks (heartbeat_check_interval).
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    check: u64,
    /// Seconds without receiving after which a connection is closed (heartbeat_idle_time).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    idle: u64,
    /// Ping every client at this interval (websocket_ping_interval); 0: no periodic pings.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    ping_ms: u64,
}

fn main() {
    ExampleArgs::init_logging();
    let args: Args = cli::parse(9501);
    let mut server = args.common.server(Settings {
        heartbeat_check_interval: Some(args.check),
        heartbeat_idle_time: Some(args.idle),
        websocket_ping_interval: match args.ping_ms {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        },
        ..Settings::default()
    });
    server.on_message(|server, frame| {
        server.push(frame.fd, b"", OpCode::Ping, FLAG_FIN);
    });
    server.on_close(|_server, fd| println!("client {fd} closed"));
    ExampleArgs::run(server, "heartbeat");
}
