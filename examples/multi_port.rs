//! Seed 000's server configuration: HTTP on one port and WebSocket on another, one process
//! set. The HTTP side pushes to a WebSocket client of any worker by fd (Hyperf's `Sender`).
//!
//! `cargo run --release --example multi_port -- --port 9502 --http-port 9501`
//! then `curl 'http://127.0.0.1:9501/push?fd=1&message=hi'`.
//!
//! `--debug-routes` adds, for the watchdog and the bounded queues:
//! `GET /debug/hang?worker=W` (worker W blocks forever in `on_pipe_message`),
//! `GET /debug/workers` (JSON `[{"worker_id":W,"pid":PID}, …]`) and
//! `GET /debug/broadcast?message=M` (a broadcast; JSON of its report). Every debug answer has an
//! `X-Worker-Id` header naming the worker that served it.

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
    /// Routes to hang a worker and to list the workers (testing the watchdog).
    #[arg(long)]
    debug_routes: bool,
}

fn main() {
    ExampleArgs::init_logging();
    let Args {
        common: args,
        http_port,
        debug_routes,
    } = cli::parse(9502);
    let mut server = Server::new(&args.host, args.port);
    server.add_http_listener(&args.host, http_port);
    server.set(args.settings(Settings::default()));
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
    if debug_routes {
        server.on_pipe_message(|_server, _from, data| {
            if data == b"hang" {
                log::warn!("hanging on purpose (/debug/hang)");
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
        });
    }
    server.on_request(move |server, request, response| match request.path() {
        p if debug_routes && p.starts_with("/debug/") => debug_route(server, request, response),
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

/// The `--debug-routes` routes.
fn debug_route(
    server: &Server,
    request: &prefork_ws::Request,
    response: &mut prefork_ws::Response,
) {
    let me = server.worker_id().unwrap_or(usize::MAX);
    response.header("X-Worker-Id", &me.to_string());
    match request.path() {
        "/debug/hang" => {
            let w = request
                .get("worker")
                .and_then(|v| v.parse().ok())
                .unwrap_or(usize::MAX);
            let ok = server.send_message("hang", w);
            response.status(if ok { 200 } else { 404 }).end("");
        }
        "/debug/workers" => {
            let list: Vec<String> = server
                .stats()
                .map(|s| s.workers)
                .unwrap_or_default()
                .into_iter()
                .filter(|w| w.pid != 0)
                .map(|w| format!(r#"{{"worker_id":{},"pid":{}}}"#, w.worker_id, w.pid))
                .collect();
            response.header("Content-Type", "application/json");
            response.end(format!("[{}]", list.join(",")));
        }
        "/debug/broadcast" => {
            let r = server.broadcast(request.get("message").unwrap_or_default(), OpCode::Text);
            response.header("Content-Type", "application/json");
            response.end(format!(
                r#"{{"local":{},"workers":{},"unreachable":{}}}"#,
                r.local, r.workers, r.unreachable
            ));
        }
        _ => {
            response.status(404).end("");
        }
    }
}
