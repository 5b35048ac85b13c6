//! Seed 003: an HTTP request `GET /?message=X` pushes X to every established WebSocket
//! connection of the whole server (all workers).
//!
//! `cargo run --release --example broadcast -- --port 9502 --workers 2`
//! then `curl 'http://127.0.0.1:9502/?message=hello'`.
//!
//! The seed loops over `$server->connections` and pushes to each; `broadcast` does the same in
//! one call, encoding the frame once and crossing to each worker once.

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::{OpCode, Settings, FLAG_FIN};

/// GET /?message=X pushes X to every established WebSocket client of every worker.
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
    server.on_open(|_server, request| {
        println!("server: handshake success with fd{}", request.fd);
    });
    server.on_message(|server, frame| {
        println!(
            "receive from {}:{},opcode:{},fin:{}",
            frame.fd,
            String::from_utf8_lossy(frame.data),
            frame.opcode.as_u8(),
            frame.finish
        );
        server.push(frame.fd, "this is server", OpCode::Text, FLAG_FIN);
    });
    server.on_close(|_server, fd| println!("client {fd} closed"));
    server.on_request(|server, request, response| {
        let Some(message) = request.get("message") else {
            response.status(400).end("missing ?message=");
            return;
        };
        if request.get("mode").as_deref() == Some("loop") {
            // The seed's form: every connection of the server, pushed one by one.
            let mut n = 0;
            for fd in server.connections() {
                if server.is_established(fd) && server.push(fd, &message, OpCode::Text, FLAG_FIN) {
                    n += 1;
                }
            }
            response.end(format!("pushed to {n}\n"));
        } else {
            server.broadcast(&message, OpCode::Text);
            response.end("ok\n");
        }
    });
    ExampleArgs::run(server, "broadcast");
}
