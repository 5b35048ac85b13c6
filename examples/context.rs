//! Seed 001's connection context: `on_open` stores the username from a cookie, `on_message`
//! reads it back (`Context::set('username', $request->cookie['username'])`).
//!
//! `cargo run --release --example context -- --port 9502`

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::{OpCode, Settings, FLAG_FIN};

/// Per-connection context: the username from a cookie, read back in on_message.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
}

fn main() {
    ExampleArgs::init_logging();
    let args: Args = cli::parse(9502);
    let mut server = args.common.server(Settings {
        ..Settings::default()
    });
    server.on_open(|server, request| {
        let name = request.cookie("username").unwrap_or_else(|| "guest".into());
        server.set_context(request.fd, "username", name);
    });
    server.on_message(|server, frame| {
        let name: String = server.get_context(frame.fd, "username").unwrap_or_default();
        server.push(
            frame.fd,
            format!("Username: {name}"),
            OpCode::Text,
            FLAG_FIN,
        );
    });
    ExampleArgs::run(server, "context");
}
