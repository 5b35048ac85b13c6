//! Seed 003: `websocket_compression` and a compressed push
//! (`FLAG_FIN | FLAG_COMPRESS`), sent only compressed when the client negotiated
//! permessage-deflate.
//!
//! `cargo run --release --example compression -- --port 9501`

use prefork_ws::cli::ExampleArgs;
use prefork_ws::{OpCode, Settings, FLAG_COMPRESS, FLAG_FIN};

fn main() {
    ExampleArgs::init_logging();
    let args = ExampleArgs::parse(9501);
    let mut server = args.server(Settings {
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
