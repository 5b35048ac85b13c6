//! Seed 003's heartbeat: the server pings a client when it hears from it (the seed's
//! `$server->push($fd, $pingFrame)`), pings every client periodically (beyond Swoole, so
//! proxies keep idle clients), and closes connections idle longer than `heartbeat_idle_time`.
//!
//! `cargo run --release --example heartbeat -- --port 9501 --check 5 --idle 10 --ping-ms 2000`

use std::time::Duration;

use prefork_ws::cli::ExampleArgs;
use prefork_ws::{OpCode, Settings, FLAG_FIN};

fn main() {
    ExampleArgs::init_logging();
    let args = ExampleArgs::parse(9501);
    let num = |k: &str, d: u64| args.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let mut server = args.server(Settings {
        heartbeat_check_interval: Some(num("check", 5)),
        heartbeat_idle_time: Some(num("idle", 10)),
        websocket_ping_interval: match num("ping-ms", 0) {
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
