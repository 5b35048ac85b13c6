//! Seed 003's `WebSocketTest` class, as a Rust struct: the server is a member, callbacks are
//! methods, and an HTTP request pushes `?message=` to every established connection.
//!
//! `cargo run --release --example class_server -- --port 9501`

use std::rc::Rc;

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::{Frame, OpCode, Request, Response, Server, Settings, FLAG_FIN};

/// Seed 003's WebSocketTest class as a Rust struct.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
}

struct WebSocketTest {
    greeting: String,
}

impl WebSocketTest {
    fn on_open(&self, _server: &Server, request: &Request) {
        println!("server: handshake success with fd{}", request.fd);
    }

    fn on_message(&self, server: &Server, frame: &Frame) {
        println!(
            "receive from {}:{}",
            frame.fd,
            String::from_utf8_lossy(frame.data)
        );
        server.push(frame.fd, &self.greeting, OpCode::Text, FLAG_FIN);
    }

    fn on_close(&self, _server: &Server, fd: u64) {
        println!("client {fd} closed");
    }

    fn on_request(&self, server: &Server, request: &Request, response: &mut Response) {
        let message = request.get("message").unwrap_or_default();
        for fd in server.connections() {
            if server.is_established(fd) {
                server.push(fd, &message, OpCode::Text, FLAG_FIN);
            }
        }
        response.end("ok\n");
    }

    fn run(self, args: &ExampleArgs) -> Result<(), prefork_ws::Error> {
        let this = Rc::new(self);
        let mut server = Server::new(&args.host, args.port);
        server.set(args.settings(Settings::default()));
        let t = this.clone();
        server.on_open(move |s, r| t.on_open(s, r));
        let t = this.clone();
        server.on_message(move |s, f| t.on_message(s, f));
        let t = this.clone();
        server.on_close(move |s, fd| t.on_close(s, fd));
        let t = this;
        server.on_request(move |s, r, resp| t.on_request(s, r, resp));
        server.start()
    }
}

fn main() {
    ExampleArgs::init_logging();
    let args: Args = cli::parse(9501);
    let app = WebSocketTest {
        greeting: "this is server".into(),
    };
    if let Err(e) = app.run(&args.common) {
        eprintln!("class_server: {e}");
        std::process::exit(1);
    }
}
