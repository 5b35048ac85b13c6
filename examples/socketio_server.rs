//! Seed 002's Socket.IO server: Engine.IO v3 and v4 over WebSocket on one port, so
//! socket.io-client 2.x, 3.x and 4.x all connect; rooms and counts across all workers.
//!
//! `cargo run --release --example socketio_server -- --host 0.0.0.0 --port 9502 --workers 2`
//!
//! | namespace, event | behaviour |
//! |---|---|
//! | `/` `event` (data) | ack `Event Received: <data>` |
//! | `/` `join-room` (room) | join; `to(room)` `<sid>has joined <room>`; the whole room gets `There are <N> players in <room>` (N over all workers); ack `null` |
//! | `/` `say` (JSON `{room, message}`) | `to(room)` `<sid> say: <message>` |
//! | `/chat` `event` (data) | ack `chat Received: <data>` |
//!
//! With the `redis` feature, `--redis redis://HOST:PORT [--node-id ID]` makes this one node
//! of several: rooms, counts and acknowledgements then span every node of that Redis
//! (Node.js socket.io nodes with `@socket.io/redis-adapter` included).
//!
//! `GET /` serves a chat page (socket.io-client 4.x; `/?v=2` uses 2.3.0), both clients
//! served from here. `--suite` runs instead the server the socket.io-protocol and
//! engine.io-protocol test suites describe.

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::runtime::{ListenSpec, Request, Response, ServeSpec};
use prefork_ws::socketio::{Args, RecoveryConfig, Reply, SioConfig, SocketIo, Version};
use prefork_ws::Settings;

/// Seed 002's Socket.IO server (or, with `--suite`, the protocol test suites' server).
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    common: ExampleArgs,
    /// Run the server of the socket.io-protocol / engine.io-protocol test suites (pingInterval
    /// 300, pingTimeout 200, namespaces `/` and `/custom`, a raw Engine.IO echo at /engine.io/).
    #[arg(long)]
    suite: bool,
    /// Turn on connection state recovery (Node's `connectionStateRecovery`, 2 minutes).
    #[arg(long)]
    recovery: bool,
    #[cfg(feature = "redis")]
    #[command(flatten)]
    redis: cli::RedisArgs,
}

const CHAT_HTML: &[u8] = include_bytes!("assets/chat.html");
const CLIENT_V4: &[u8] = include_bytes!("assets/socket.io.min.js");
const CLIENT_V2: &[u8] = include_bytes!("assets/socket.io-2.3.0.js");

fn main() {
    ExampleArgs::init_logging();
    let args: Cli = cli::parse(9502);
    let mut config = SioConfig::default();
    if args.recovery {
        config.recovery = Some(RecoveryConfig::default());
    }
    let io = if args.suite {
        suite_server(config)
    } else {
        seed_server(config)
    };
    let io = clustered(io, &args);
    let spec = ServeSpec {
        listeners: vec![ListenSpec {
            host: args.common.host.clone(),
            port: args.common.port,
            websocket: true,
            ..ListenSpec::default()
        }],
        settings: args.common.settings(Settings::default()),
        announce_kind: Some("Socket.IO".into()),
        ..ServeSpec::default()
    };
    if let Err(e) = io.serve(spec) {
        eprintln!("socketio_server: {e}");
        std::process::exit(1);
    }
}

/// With `--redis`, the Redis adapter.
#[cfg(feature = "redis")]
fn clustered(mut io: SocketIo, args: &Cli) -> SocketIo {
    use prefork_ws::cluster::redis::RedisAdapter;
    let Some(config) = args.redis.config() else {
        return io;
    };
    println!("node {} joins {}", config.node_id, config.url);
    match RedisAdapter::new(config) {
        Ok(a) => {
            io.adapter(a);
        }
        Err(e) => {
            eprintln!("socketio_server: {e}");
            std::process::exit(2);
        }
    }
    io
}

#[cfg(not(feature = "redis"))]
fn clustered(io: SocketIo, _args: &Cli) -> SocketIo {
    io
}

/// The seed's handlers and the chat page.
fn seed_server(config: SioConfig) -> SocketIo {
    let mut io = SocketIo::new(config);
    io.of("/")
        .on("event", |_s, args| {
            format!("Event Received: {}", args.text(0))
        })
        .on_with_ack("join-room", |socket, args, ack| {
            let room = args.text(0);
            socket.join(&room);
            let joined = format!("{}has joined {room}", socket.sid());
            socket.to(&room).emit("event", joined);
            // The count needs every worker's answer; the ack (null) follows the count, so a
            // client that joins after this ack is not counted twice.
            socket.in_(&room).count(move |io, n| {
                // With a worker that did not answer in time, the count of those that did.
                let n = n.unwrap_or_else(|partial| partial);
                io.to(&room)
                    .emit("event", format!("There are {n} players in {room}"));
                ack.send(io, ());
            });
        })
        .on("say", |socket, args| {
            let data = args.json(0);
            let room = data["room"].as_str().unwrap_or_default();
            let message = match &data["message"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            socket
                .to(room)
                .emit("event", format!("{} say: {message}", socket.sid()));
        });
    io.of("/chat").on("event", |_s, args| {
        format!("chat Received: {}", args.text(0))
    });
    io.on_http(|_io, request| serve_page(request));
    io
}

fn serve_page(request: &Request) -> Response {
    let (body, kind) = match request.path() {
        "/" | "/index.html" => (CHAT_HTML, "text/html; charset=utf-8"),
        "/socket.io.min.js" => (CLIENT_V4, "application/javascript"),
        "/socket.io-2.3.0.js" => (CLIENT_V2, "application/javascript"),
        _ => {
            let mut r = Response::default();
            r.status(404).write("Not Found");
            return r;
        }
    };
    let mut r = Response::default();
    r.header("Content-Type", kind).write(body);
    r
}

/// The server of the socket.io-protocol test suite's README (and the engine.io-protocol
/// suite's echo at /engine.io/).
fn suite_server(config: SioConfig) -> SocketIo {
    let mut io = SocketIo::new(SioConfig {
        ping_interval: 300,
        ping_timeout: 200,
        max_payload: 1_000_000,
        connect_timeout: 1000,
        engine_echo_path: Some("/engine.io/".into()),
        ..config
    });
    for nsp in ["/", "/custom"] {
        io.of(nsp).on_connect(|socket| {
            if socket.protocol() == Some(Version::V4) {
                // The EIO3 suite reads frames through a queue: no race, no delay.
                socket.emit("auth", socket.auth());
                return;
            }
            // The suite's client attaches a listener for the next frame only after it has
            // handled the CONNECT answer, and its `ws` client emits every frame of one TCP
            // read in the same tick: a frame in the same read as the answer is lost to it.
            // So `auth` follows 15 ms later (the Node reference server loses it the same way
            // when both leave in one write).
            let (sid, nsp, auth) = (
                socket.sid().to_string(),
                socket.nsp().to_string(),
                socket.auth(),
            );
            socket.io().after(15, move |io| {
                io.of(&nsp).to(&sid).local().emit("auth", auth);
            });
        });
    }
    io.of("/")
        .on("message", |socket, args: Args| {
            socket.emit("message-back", args);
            Reply::none()
        })
        .on("message-with-ack", |_s, args: Args| Reply::args(args));
    io
}
