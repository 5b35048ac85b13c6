//! Seed 001's connection context: `on_open` stores the username from a cookie, `on_message`
//! reads it back (`Context::set('username', $request->cookie['username'])`).
//!
//! `cargo run --release --example context -- --port 9502`

use prefork_ws::cli::ExampleArgs;
use prefork_ws::{OpCode, Server, Settings, FLAG_FIN};

fn main() {
    ExampleArgs::init_logging();
    let args = ExampleArgs::parse(9502);
    let mut server = Server::new(&args.host, args.port);
    server.set(Settings {
        worker_num: args.workers,
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
    if let Err(e) = server.start() {
        eprintln!("context: {e}");
        std::process::exit(1);
    }
}
