//! Seed 003: `open_websocket_ping_frame` — pings reach `on_message` and are answered by hand
//! with a pong (with the same payload, as RFC 6455 asks).
//!
//! `cargo run --release --example ping_pong -- --port 9502`

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::{OpCode, Settings, FLAG_FIN};

/// Pings reach on_message and are answered by hand with a pong.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
}

fn main() {
    ExampleArgs::init_logging();
    let args: Args = cli::parse(9502);
    let mut server = args.common.server(Settings {
        open_websocket_ping_frame: true,
        ..Settings::default()
    });
    server.on_message(|server, frame| {
        if frame.opcode == OpCode::Ping {
            println!("Ping frame received: Code {}", frame.opcode.as_u8());
            server.push(frame.fd, frame.data, OpCode::Pong, FLAG_FIN);
        } else {
            println!("Message received: {}", String::from_utf8_lossy(frame.data));
            server.push(frame.fd, frame.data, frame.opcode, FLAG_FIN);
        }
    });
    ExampleArgs::run(server, "ping_pong");
}
