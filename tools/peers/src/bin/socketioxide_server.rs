//! Peer: socketioxide (Socket.IO on hyper 1, as socketioxide's hyper example serves it) with the
//! handler of prefork-ws's `socketio_server` example, for tools/bench_socketio.sh:
//!
//! - namespace `/`;
//! - `event` (data) → ack `"Event Received: " + data`;
//! - `join-room` (room) → the socket joins the room;
//! - `bcast` (data) → `io.to("bench").emit("event", data)` (every socket in room "bench",
//!   the sender included if it joined);
//! - `say` ({room, message}) → `socket.to(room).emit("event", "<sid> say: <message>")` (the
//!   example's client-triggered room broadcast, the sender excluded).
//!
//! socketioxide 0.18 handlers are async: each event runs as its own tokio task (the library's
//! design; on the current_thread runtime the tasks run in arrival order).
//!
//! WebSocket transport only (like the Node peer's `transports: ['websocket']`), default
//! socketioxide settings otherwise. The `v4` feature is on, so Engine.IO 3 clients are
//! accepted too; EIO=4 clients are served exactly as without it.
//!
//! Runtime: tokio `current_thread` by default — one thread, like the other peers and like one
//! prefork-ws worker; the bench pins the process to one core anyway, where a multi-thread
//! runtime only adds cross-thread wake-ups. `--threads N` (N > 1) runs a multi-thread runtime
//! with N workers instead, for comparison.
//!
//! `socketioxide_server --host 127.0.0.1 --port 0 [--threads N]`

use clap::Parser;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use peers::{raise_nofile, PeerArgs};
use serde_json::Value;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::{SocketIo, TransportType};
use std::io::Write;
use tokio::net::TcpListener;

#[derive(Parser, Debug)]
#[command(about = "socketioxide peer of prefork-ws's socketio_server example")]
struct Args {
    #[command(flatten)]
    peer: PeerArgs,
    /// Runtime threads: 1 = tokio current_thread (default), N > 1 = multi-thread with N workers.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// JavaScript's `"Event Received: " + data`: a string is appended as is, anything else as
/// its JSON text (close enough for the benchmark, which only sends strings).
fn received(data: &Value) -> String {
    match data {
        Value::String(s) => format!("Event Received: {s}"),
        other => format!("Event Received: {other}"),
    }
}

fn room_name(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn on_connect(socket: SocketRef) {
    socket.on("event", async |Data::<Value>(data), ack: AckSender| {
        let _ = ack.send(&received(&data));
    });
    socket.on("join-room", async |s: SocketRef, Data::<Value>(room)| {
        s.join(room_name(&room));
    });
    socket.on("bcast", async |io: SocketIo, Data::<Value>(data)| {
        let _ = io.to("bench").emit("event", &data).await;
    });
    socket.on("say", async |s: SocketRef, Data::<Value>(data)| {
        let room = data["room"].as_str().unwrap_or_default().to_string();
        let message = match &data["message"] {
            Value::String(m) => m.clone(),
            other => other.to_string(),
        };
        let text = format!("{} say: {message}", s.id);
        let _ = s.to(room).emit("event", &text).await;
    });
}

async fn serve(args: PeerArgs) -> std::io::Result<()> {
    let (svc, io) = SocketIo::builder()
        .transports([TransportType::Websocket])
        .build_svc();
    io.ns("/", on_connect);
    let listener = TcpListener::bind(args.addr()).await?;
    let addr = listener.local_addr()?;
    println!(
        "Socket.IO Server listening at {}:{}",
        addr.ip(),
        addr.port()
    );
    let _ = std::io::stdout().flush();
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let svc = svc.clone();
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    raise_nofile();
    let rt = if args.threads > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    rt.block_on(serve(args.peer))
}
