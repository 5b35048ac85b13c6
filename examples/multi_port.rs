//! Seed 000's server configuration: HTTP on one port and WebSocket on another, one process
//! set. The HTTP side pushes to a WebSocket client of any worker by fd (Hyperf's `Sender`).
//!
//! `cargo run --release --example multi_port -- --port 9502 --http-port 9501`
//! then `curl 'http://127.0.0.1:9501/push?fd=1&message=hi'`.

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::{OpCode, Server, Settings, FLAG_FIN};

/// HTTP on --http-port, WebSocket on --port; HTTP /push?fd=&message= reaches any worker's client.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
    /// Port of the HTTP listener (0 picks a free port, printed at start).
    #[arg(long, value_name = "PORT", default_value_t = 9501)]
    http_port: u16,
}

fn main() {
    ExampleArgs::init_logging();
    let Args {
        common: args,
        http_port,
    } = cli::parse(9502);
    let mut server = Server::new(&args.host, args.port);
    server.add_http_listener(&args.host, http_port);
    server.set(Settings {
        worker_num: args.workers,
        ..Settings::default()
    });
    server.on_open(|server, request| {
        server.push(
            request.fd,
            format!("fd:{}", request.fd),
            OpCode::Text,
            FLAG_FIN,
        );
    });
    server.on_message(|server, frame| {
        server.push(frame.fd, frame.data, frame.opcode, FLAG_FIN);
    });
    server.on_request(|server, request, response| match request.path() {
        "/push" => {
            let fd = request.get("fd").and_then(|f| f.parse().ok()).unwrap_or(0);
            let msg = request.get("message").unwrap_or_default();
            let ok = server.push(fd, msg, OpCode::Text, FLAG_FIN);
            response.status(if ok { 200 } else { 404 }).end(if ok {
                "pushed\n"
            } else {
                "no such fd\n"
            });
        }
        "/disconnect" => {
            let fd = request.get("fd").and_then(|f| f.parse().ok()).unwrap_or(0);
            let ok = server.disconnect(fd, 1000, "bye");
            response.status(if ok { 200 } else { 404 }).end(if ok {
                "closed\n"
            } else {
                "no such fd\n"
            });
        }
        _ => {
            response.header("Content-Type", "text/plain");
            response.end(format!("Hello Hyperf. port {}\n", request.server_port));
        }
    });
    ExampleArgs::run(server, "multi_port");
}
