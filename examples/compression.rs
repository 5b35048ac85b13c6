//! Seed 003: `websocket_compression` and a compressed push
//! (`FLAG_FIN | FLAG_COMPRESS`), sent only compressed when the client negotiated
//! permessage-deflate.
//!
//! `cargo run --release --example compression -- --port 9501`

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::{OpCode, Settings, FLAG_COMPRESS, FLAG_FIN};

/// permessage-deflate, and a compressed push when the client negotiated it.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
}

fn main() {
    ExampleArgs::init_logging();
    let args: Args = cli::parse(9501);
    let mut server = args.common.server(Settings {
        websocket_compression: true,
        ..Settings::default()
    });
    server.on_message(|server, frame| {
        server.push(
            frame.fd,
            "Hello Swoole",
            OpCode::Text,
            FLAG_FIN | FLAG_COMPRESS,
        );
    });
    ExampleArgs::run(server, "compression");
}
