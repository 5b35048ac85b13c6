//! A server that exposes the whole API through text commands, so integration tests can drive
//! every method from a client. Not an example for users: see `examples/`.
//!
//! Commands (one per text message; the reply goes to the sender):
//! `whoami` → `fd=<fd> worker=<id>`; `info <fd>`; `push <fd> <text>`; `exist <fd>`;
//! `established <fd>`; `connections`; `disconnect <fd> <code> [reason]`; `panic`;
//! `flood <count> <size>`; `broadcast <text>`; `sendmsg <worker> <text>`;
//! `after <ms> <text>`; `stats`; `ctx-set <v>` / `ctx-get`; anything else is echoed.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::{OpCode, Server, Settings, FLAG_FIN};

/// Test server driving the whole API through text commands (for the integration tests).
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
    /// websocket_subprotocol (comma-separated list).
    #[arg(long, value_name = "LIST")]
    subprotocol: Option<String>,
    /// heartbeat_check_interval.
    #[arg(long, value_name = "SECS")]
    heartbeat_check: Option<u64>,
    /// heartbeat_idle_time.
    #[arg(long, value_name = "SECS")]
    heartbeat_idle: Option<u64>,
    /// websocket_compression; alone, or with a boolean (1/0, true/false, on/off, yes/no).
    #[arg(
        long,
        value_name = "BOOL",
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        hide_possible_values = true,
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    compression: bool,
    /// pid_file.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// buffer_output_size.
    #[arg(long, value_name = "BYTES")]
    buffer_output_size: Option<usize>,
    /// package_max_length.
    #[arg(long, value_name = "BYTES")]
    package_max_length: Option<usize>,
    /// handshake_timeout.
    #[arg(long, value_name = "MS")]
    handshake_timeout_ms: Option<u64>,
    /// max_wait_time.
    #[arg(long, value_name = "MS")]
    max_wait_ms: Option<u64>,
    /// max_conn.
    #[arg(long, value_name = "N")]
    max_conn: Option<usize>,
    /// Settings file (TOML), re-read on reload.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve HTTP requests too; alone, or with a boolean (1/0, true/false, on/off, yes/no).
    #[arg(
        long,
        value_name = "BOOL",
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        hide_possible_values = true,
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    with_request: bool,
    /// A custom `on_handshake` that accepts with `accept_websocket` and echoes `?v=` in an
    /// `X-Value` header (header sanitising and negotiation through the shared upgrade path).
    #[arg(long)]
    custom_handshake: bool,
    /// Every worker's `on_worker_start` takes this long (a slow start is not a hang).
    #[arg(long, value_name = "MS")]
    slow_start_ms: Option<u64>,
    /// Worker 1 aborts right after start while FILE exists (a crash loop).
    #[arg(long, value_name = "FILE")]
    crash_file: Option<PathBuf>,
}

fn main() {
    ExampleArgs::init_logging();
    let args: Args = cli::parse(9502);
    let mut server = Server::new(&args.common.host, args.common.port);
    let mut settings = args.common.settings(Settings {
        websocket_subprotocol: args.subprotocol,
        heartbeat_check_interval: args.heartbeat_check,
        heartbeat_idle_time: args.heartbeat_idle,
        websocket_compression: args.compression,
        pid_file: args.pid_file,
        ..Settings::default()
    });
    if let Some(v) = args.buffer_output_size {
        settings.buffer_output_size = v;
    }
    if let Some(v) = args.package_max_length {
        settings.package_max_length = v;
    }
    if let Some(v) = args.handshake_timeout_ms {
        settings.handshake_timeout = Duration::from_millis(v);
    }
    if let Some(v) = args.max_wait_ms {
        settings.max_wait_time = Duration::from_millis(v);
    }
    if let Some(v) = args.max_conn {
        settings.max_conn = v;
    }
    server.set(settings);
    if let Some(path) = args.config {
        if let Err(e) = server.config_file(path) {
            eprintln!("testbed: {e}");
            std::process::exit(2);
        }
    }
    if args.with_request {
        server.on_request(|server, req, resp| {
            if req.path() == "/broadcast" {
                server.broadcast(req.get("message").unwrap_or_default(), OpCode::Text);
            }
            if req.path() == "/broadcast-report" {
                let r = server.broadcast(req.get("message").unwrap_or_default(), OpCode::Text);
                let report = format!(
                    "local={} workers={} unreachable={}",
                    r.local, r.workers, r.unreachable
                );
                resp.end(report);
                return;
            }
            resp.header("Content-Type", "text/plain");
            resp.end(format!("path={} query={}", req.path(), req.query_string()));
        });
    }
    if args.custom_handshake {
        server.on_handshake(|server, req, resp| {
            if !resp.accept_websocket(req) {
                resp.end("bad upgrade");
                return;
            }
            resp.header("X-Value", &req.get("v").unwrap_or_default());
            let fd = req.fd;
            server.defer(move |server| {
                server.push(fd, format!("welcome {fd}"), OpCode::Text, FLAG_FIN);
            });
        });
    }
    server.on_open(|server, req| {
        if req.path() == "/panic-open" {
            panic!("panic in on_open on purpose");
        }
        server.push(
            req.fd,
            format!("welcome {}", req.fd),
            OpCode::Text,
            FLAG_FIN,
        );
    });
    server.on_pipe_message(|server, from, data| {
        let text = String::from_utf8_lossy(data);
        if let Some((fd, msg)) = text.split_once(' ') {
            let fd: u64 = fd.parse().unwrap_or(0);
            let worker = server.worker_id().unwrap_or(99);
            server.push(
                fd,
                format!("pipe from {from} at {worker}: {msg}"),
                OpCode::Text,
                FLAG_FIN,
            );
        }
    });
    // `--crash-file F`: worker 1 aborts right after start while F exists (a crash loop).
    let crash_file = args.crash_file;
    let slow_start = args.slow_start_ms.map(Duration::from_millis);
    server.on_worker_start(move |_server, id| {
        if let Some(d) = slow_start {
            std::thread::sleep(d);
        }
        println!("worker start {id}");
        if id == 1 && crash_file.as_ref().is_some_and(|f| f.exists()) {
            std::process::abort();
        }
    });
    server.on_worker_stop(|_server, id| println!("worker stop {id}"));
    // Context "v" travels with a connection a reload hands over; the adopt callback says so.
    server.portable_context::<String>("v");
    server.on_adopt(|server, fd| {
        println!("adopt {fd} at {}", server.worker_id().unwrap_or(99));
    });
    server.on_close(|server, fd| {
        // The context is still readable in on_close (Hyperf-style clean-up).
        match server.get_context::<String>(fd, "v") {
            Some(v) => println!("close {fd} ctx={v}"),
            None => println!("close {fd}"),
        }
    });
    server.on_message(|server, frame| {
        let fd = frame.fd;
        let reply = |s: String| {
            server.push(fd, s, OpCode::Text, FLAG_FIN);
        };
        let Some(text) = frame.text() else {
            server.push(fd, frame.data, frame.opcode, FLAG_FIN);
            return;
        };
        let mut parts = text.splitn(3, ' ');
        let cmd = parts.next().unwrap_or("");
        let a = parts.next().unwrap_or("");
        let b = parts.next().unwrap_or("");
        let fd_arg = || a.parse::<u64>().unwrap_or(0);
        match cmd {
            "whoami" => reply(format!(
                "fd={fd} worker={}",
                server.worker_id().unwrap_or(99)
            )),
            "info" => reply(match server.connection_info(fd_arg()) {
                Some(i) => format!(
                    "status={} worker={} remote={}:{} server_port={} connect_time={} last_time={} server_fd={} socket_fd={}",
                    i.websocket_status,
                    i.worker_id,
                    i.remote_ip,
                    i.remote_port,
                    i.server_port,
                    i.connect_time,
                    i.last_time,
                    i.server_fd,
                    i.socket_fd
                ),
                None => "none".into(),
            }),
            "push" => {
                let ok = server.push(fd_arg(), b, OpCode::Text, FLAG_FIN);
                reply(format!("push:{ok}"));
            }
            "exist" => reply(format!("exist:{}", server.exist(fd_arg()))),
            "established" => reply(format!("established:{}", server.is_established(fd_arg()))),
            "connections" => {
                let mut v = server.connections();
                v.sort();
                reply(format!("connections:{v:?}"));
            }
            "disconnect" => {
                let (code, reason) = b.split_once(' ').unwrap_or((b, ""));
                let ok = server.disconnect(fd_arg(), code.parse().unwrap_or(0), reason);
                reply(format!("disconnect:{ok}"));
            }
            "close" => reply(format!("close:{}", server.close(fd_arg()))),
            "push-close" => {
                // A close frame pushed like a message goes through the closing handshake.
                let ok = server.push(fd_arg(), 4000u16.to_be_bytes(), OpCode::Close, FLAG_FIN);
                reply(format!("push-close:{ok}"));
            }
            "panic" => panic!("panic in on_message on purpose"),
            "flood" => {
                let size: usize = b.parse().unwrap_or(1024);
                let chunk = vec![b'x'; size];
                let mut sent = 0;
                for _ in 0..a.parse::<usize>().unwrap_or(1) {
                    if !server.push(fd, &chunk, OpCode::Binary, FLAG_FIN) {
                        break;
                    }
                    sent += 1;
                }
                println!("flood sent {sent}");
            }
            "broadcast" => {
                server.broadcast(format!("{a} {b}").trim(), OpCode::Text);
            }
            "sendmsg" => {
                let ok = server.send_message(format!("{fd} {b}"), a.parse().unwrap_or(999));
                if !ok {
                    reply("sendmsg:false".into());
                }
            }
            "after" => {
                let msg = b.to_string();
                server.after(a.parse().unwrap_or(10), move |s| {
                    s.push(fd, msg, OpCode::Text, FLAG_FIN);
                });
            }
            "stats" => {
                let s = server.stats();
                reply(match s {
                    Some(s) => format!(
                        "connections={} workers={}",
                        s.connection_num,
                        s.workers.len()
                    ),
                    None => "none".into(),
                });
            }
            "thread-push" => {
                // A thread of this worker pushes through the thread-safe handle.
                let handle = server.handle().expect("inside a worker");
                let target = fd_arg();
                let text = b.to_string();
                std::thread::spawn(move || {
                    handle.push(target, text, OpCode::Text, FLAG_FIN);
                });
            }
            "ctx-set" => {
                server.set_context(fd, "v", a.to_string());
                reply("ok".into());
            }
            // Under a key not declared portable: stays behind in a reload.
            "ctx-set-local" => {
                server.set_context(fd, "w", a.to_string());
                reply("ok".into());
            }
            "ctx-get-local" => reply(
                server
                    .get_context::<String>(fd, "w")
                    .unwrap_or_else(|| "unset".into()),
            ),
            "ctx-get" => reply(
                server
                    .get_context::<String>(fd, "v")
                    .unwrap_or_else(|| "unset".into()),
            ),
            _ => {
                server.push(fd, frame.data, frame.opcode, FLAG_FIN);
            }
        }
    });
    ExampleArgs::run(server, "testbed");
}
