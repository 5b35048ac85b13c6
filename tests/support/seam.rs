//! A server written against the runtime's `Handler` seam directly (no Swoole `Server`), as
//! the next layers will be: held HTTP requests answered later, upgrades accepted or refused
//! by the handler, typed per-connection state in a `ConnMap`, peer messages on a layer's own
//! channel, a thread running work on the worker through a `WorkerHandle`, close reasons.
//!
//! HTTP: `GET /hold` is held (stdout: `held <fd>`) until `GET /release?msg=M` answers every held request of that
//! worker with `M`. Upgrades: `/refuse` gets 403; `?name=N` names the connection; `?v=V` is
//! echoed in an `X-Value` header of the 101. WebSocket text commands: `name`, `whoami`,
//! `peer <worker> <text>` (the other worker pushes `<text> via <worker>` back),
//! `thread <text>`, `thread-peer <worker> <text>` (the same, sent from a thread),
//! `bcast <text>` (answered with the broadcast's report), `bye <code>`.
//! Close events print `closed <fd> <reason>` on stdout.

use std::cell::RefCell;
use std::io::Write;

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::runtime::{
    serve, CloseReason, ConnId, ConnMap, Ctx, Handler, HttpReply, ListenSpec, Message, Request,
    Response, ServeSpec, UpgradeReply,
};
use prefork_ws::{OpCode, Settings, FLAG_FIN};

/// The peer channel this layer uses (the Swoole layer uses 0).
const CHANNEL: u16 = 7;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
    /// websocket_compression.
    #[arg(long)]
    compression: bool,
}

#[derive(Default)]
struct Seam {
    names: RefCell<ConnMap<String>>,
    held: RefCell<Vec<ConnId>>,
}

fn say(cx: &Ctx<Seam>, fd: u64, text: &str) {
    cx.push(fd, text.as_bytes(), OpCode::Text, FLAG_FIN);
}

impl Handler for Seam {
    fn on_request(&self, cx: &Ctx<Self>, conn: ConnId, request: Request) -> HttpReply {
        match request.path() {
            "/hold" => {
                self.held.borrow_mut().push(conn);
                println!("held {}", conn.fd);
                let _ = std::io::stdout().flush();
                HttpReply::Hold
            }
            "/release" => {
                let msg = request.get("msg").unwrap_or_default();
                let held = std::mem::take(&mut *self.held.borrow_mut());
                let mut answered = 0;
                for c in held {
                    let mut r = Response::default();
                    r.write(format!("released {msg}"));
                    answered += usize::from(cx.respond(c, r));
                }
                let mut r = Response::default();
                r.write(format!("answered {answered}"));
                HttpReply::Respond(r)
            }
            _ => {
                let mut r = Response::default();
                r.status(404).write("not here");
                HttpReply::Respond(r)
            }
        }
    }

    fn on_upgrade(&self, _cx: &Ctx<Self>, _conn: ConnId, request: &Request) -> UpgradeReply {
        if request.path() == "/refuse" {
            let mut r = Response::default();
            r.status(403).write("refused by the handler");
            return UpgradeReply::Refuse(r);
        }
        UpgradeReply::AcceptWith {
            protocol: None,
            headers: vec![("X-Value".into(), request.get("v").unwrap_or_default())],
        }
    }

    fn on_open(&self, _cx: &Ctx<Self>, conn: ConnId, request: &Request) {
        let name = request.get("name").unwrap_or_else(|| "anonymous".into());
        self.names.borrow_mut().insert(conn, name);
    }

    fn on_message(&self, cx: &Ctx<Self>, conn: ConnId, message: Message<'_>) {
        let Message::Data { data, .. } = message else {
            return;
        };
        let text = String::from_utf8_lossy(data).to_string();
        let (cmd, arg) = text.split_once(' ').unwrap_or((&text, ""));
        match cmd {
            "name" => {
                let name = self.names.borrow().get(conn).cloned().unwrap_or_default();
                say(cx, conn.fd, &format!("name={name}"));
            }
            "whoami" => say(
                cx,
                conn.fd,
                &format!("fd={} worker={}", conn.fd, cx.worker_id()),
            ),
            "peer" => {
                let (w, rest) = arg.split_once(' ').unwrap_or((arg, ""));
                let body = format!("{} {rest}", conn.fd);
                let ok =
                    cx.send_to_worker(w.parse().unwrap_or(usize::MAX), CHANNEL, body.as_bytes());
                if !ok {
                    say(cx, conn.fd, "peer failed");
                }
            }
            "thread" => {
                let handle = cx.handle();
                let (fd, arg) = (conn.fd, arg.to_string());
                std::thread::spawn(move || {
                    handle.run(move |_seam, cx| say(cx, fd, &format!("thread {arg}")));
                });
            }
            "thread-peer" => {
                let handle = cx.handle();
                let (w, rest) = arg.split_once(' ').unwrap_or((arg, ""));
                let worker = w.parse().unwrap_or(usize::MAX);
                let body = format!("{} {rest}", conn.fd).into_bytes();
                std::thread::spawn(move || handle.send_to_worker(worker, CHANNEL, body));
            }
            "bcast" => {
                let r = cx.broadcast(arg.as_bytes(), OpCode::Text);
                say(
                    cx,
                    conn.fd,
                    &format!(
                        "local={} workers={} unreachable={}",
                        r.local, r.workers, r.unreachable
                    ),
                );
            }
            "bye" => {
                cx.disconnect(conn.fd, arg.parse().unwrap_or(4000), "bye");
            }
            _ => say(cx, conn.fd, &text),
        }
    }

    fn on_close(&self, _cx: &Ctx<Self>, conn: ConnId, reason: CloseReason) {
        self.names.borrow_mut().remove(conn);
        println!("closed {} {reason:?}", conn.fd);
        let _ = std::io::stdout().flush();
    }

    fn on_disconnect(&self, _cx: &Ctx<Self>, conn: ConnId, reason: CloseReason) {
        self.held.borrow_mut().retain(|c| *c != conn);
        println!("disconnected {} {reason:?}", conn.fd);
        let _ = std::io::stdout().flush();
    }

    fn on_peer_message(&self, cx: &Ctx<Self>, from_worker: usize, channel: u16, data: &[u8]) {
        if channel != CHANNEL {
            return;
        }
        let text = String::from_utf8_lossy(data);
        if let Some((fd, rest)) = text.split_once(' ') {
            let fd = fd.parse().unwrap_or(0);
            say(
                cx,
                fd,
                &format!("{rest} via {} from {from_worker}", cx.worker_id()),
            );
        }
    }
}

fn main() {
    ExampleArgs::init_logging();
    let args: Args = cli::parse(9502);
    let spec = ServeSpec {
        listeners: vec![ListenSpec {
            host: args.common.host.clone(),
            port: args.common.port,
            websocket: true,
            ..ListenSpec::default()
        }],
        settings: args.common.settings(Settings {
            websocket_compression: args.compression,
            ..Settings::default()
        }),
        ..ServeSpec::default()
    };
    if let Err(e) = serve(spec, Seam::default()) {
        eprintln!("seam: {e}");
        std::process::exit(1);
    }
}
