//! Seed 003: `open_websocket_close_frame` — close frames reach `on_message` with their code and
//! reason (the server still answers the closing handshake).
//!
//! `cargo run --release --example close_frame -- --port 9502`

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::{OpCode, Settings, FLAG_FIN};

/// Close frames reach on_message with their code and reason.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
}

fn main() {
    ExampleArgs::init_logging();
    let args: Args = cli::parse(9502);
    let mut server = args.common.server(Settings {
        open_websocket_close_frame: true,
        ..Settings::default()
    });
    server.on_message(|server, frame| {
        if frame.opcode == OpCode::Close {
            println!(
                "Close frame received: Code {} Reason {}",
                frame.code, frame.reason
            );
        } else {
            println!("Message received: {}", String::from_utf8_lossy(frame.data));
            server.push(frame.fd, frame.data, frame.opcode, FLAG_FIN);
        }
    });
    server.on_close(|_server, fd| println!("client {fd} closed"));
    ExampleArgs::run(server, "close_frame");
}
