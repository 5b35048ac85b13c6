//! Seeds 003/004: a custom handshake. The callback validates the key the way the seed does,
//! echoes an offered subprotocol, refuses requests without a `token` query parameter with 401,
//! and uses `defer` to push `hello, welcome` once the 101 is on its way.
//!
//! `cargo run --release --example custom_handshake -- --port 9502`
//! then connect to `ws://127.0.0.1:9502/?token=abc`.

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::{OpCode, Settings, FLAG_FIN};

/// A custom handshake: checks the key, echoes a subprotocol, 401 without ?token=.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
}

fn key_is_valid(key: &str) -> bool {
    // The seed's pattern `^[+/0-9A-Za-z]{21}[AQgw]==$` plus: decodes to 16 bytes.
    let b = key.as_bytes();
    b.len() == 24
        && b[..21]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        && matches!(b[21], b'A' | b'Q' | b'g' | b'w')
        && &b[22..] == b"=="
}

fn main() {
    ExampleArgs::init_logging();
    let args: Args = cli::parse(9502);
    let mut server = args.common.server(Settings {
        ..Settings::default()
    });
    server.on_handshake(|server, request, response| {
        if request.get("token").is_none_or(|t| t.is_empty()) {
            response.status(401).end("token required\n");
            return;
        }
        let key = request.header("sec-websocket-key").unwrap_or("");
        if !key_is_valid(key) || !response.accept_websocket(request) {
            response.status(400).end("bad Sec-WebSocket-Key\n");
            return;
        }
        response.header("Sec-WebSocket-Version", "13");
        if let Some(p) = request.header("sec-websocket-protocol") {
            // Only when the client offered one: browsers fail the handshake otherwise.
            let first = p.split(',').next().unwrap_or("").trim().to_string();
            response.header("Sec-WebSocket-Protocol", &first);
        }
        response.status(101);
        response.end("");
        let fd = request.fd;
        server.defer(move |server| {
            println!("Client connected");
            server.push(fd, "hello, welcome\n", OpCode::Text, FLAG_FIN);
        });
    });
    server.on_message(|server, frame| {
        server.push(frame.fd, frame.data, frame.opcode, FLAG_FIN);
    });
    ExampleArgs::run(server, "custom_handshake");
}
