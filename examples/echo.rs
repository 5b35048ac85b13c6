//! Seed 003's first server, pushing back every message with its own opcode (and compressed if
//! it came compressed): the testee of the conformance suite.
//!
//! `cargo run --release --example echo -- --host 0.0.0.0 --port 9502 --workers 2`

use std::path::PathBuf;

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::{Settings, FLAG_COMPRESS, FLAG_FIN};

/// Pushes back every message with its own opcode (compressed if it came compressed).
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
    /// Write the master's pid to FILE (for prefork-ctl).
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
}

fn main() {
    ExampleArgs::init_logging();
    let args: Args = cli::parse(9502);
    let mut server = args.common.server(Settings {
        websocket_compression: true,
        // The conformance suite sends messages of up to 16 MiB.
        package_max_length: 64 * 1024 * 1024,
        buffer_output_size: 64 * 1024 * 1024,
        pid_file: args.pid_file,
        ..Settings::default()
    });
    server.on_open(|_server, request| {
        log::debug!("server: handshake success with fd{}", request.fd);
    });
    server.on_message(|server, frame| {
        let flags = FLAG_FIN | (frame.flags & FLAG_COMPRESS);
        server.push(frame.fd, frame.data, frame.opcode, flags);
    });
    server.on_close(|_server, fd| {
        log::debug!("client {fd} closed");
    });
    ExampleArgs::run(server, "echo");
}
