//! Seeds 000 and 001 ported: a Hyperf application with a WebSocket server `ws` on `--port`
//! and an HTTP server `http` on `--http-port`.
//!
//! `cargo run --release --example hyperf_app -- --host 0.0.0.0 --port 9502 --http-port 9501 --workers 2 --jwt-secret S`
//!
//! - WS `/wss/demo` (seed 000): JWT (HS256, secret S) from `Authorization: Bearer …`, checked
//!   at the handshake (401 + JSON otherwise); `nihao` disconnects with the account's name.
//! - WS `/` and `/ctx` (seed 001): `Opened` / `Recv: …`; the `username` cookie in the context.
//! - HTTP `/server/send?fd=`, `/server/close?fd=`, `/server/connections` (seed 001's
//!   `ServerController` with the `Sender`), `/`.
//!
//! With the `redis` feature, `--redis redis://HOST:PORT [--node-id ID]` makes this one node of
//! several: `/server/connections` lists each connection's cluster id (`"id": "node:fd"`), and
//! `/server/send?fd=` and `/server/close?fd=` take such an id and reach the connection on
//! whatever node holds it.

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::hyperf::{
    json, status, text, App, Error, HttpCtx, HttpException, JwtAuth, ServerConfig, ServerType,
    Socket, WsController,
};
use prefork_ws::{CloseReason, Frame, Request, Settings};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
    /// Port of the HTTP server `http`.
    #[arg(long, default_value_t = 9501)]
    http_port: u16,
    /// Secret of the HS256 tokens `/wss/demo` accepts.
    #[arg(long)]
    jwt_secret: String,
    #[cfg(feature = "redis")]
    #[command(flatten)]
    redis: cli::RedisArgs,
}

/// The seed's `Users` table.
fn account(uid: u64) -> Option<&'static str> {
    match uid {
        1 => Some("jerry"),
        2 => Some("tom"),
        _ => None,
    }
}

/// Seed 000's `WebSocketController` behind the JWT middleware.
struct Demo;

impl WsController for Demo {
    fn on_open(&self, s: &Socket<'_>, _request: &Request) -> Result<(), Error> {
        s.push("Authorization Success");
        Ok(())
    }

    fn on_message(&self, s: &Socket<'_>, frame: &Frame<'_>) -> Result<(), Error> {
        let claims = s
            .context()
            .get::<serde_json::Value>("jwt")
            .cloned()
            .unwrap_or_default();
        let text = frame.text().unwrap_or("");
        if text == "nihao" {
            let uid = claims["data"]["uid"].as_u64().unwrap_or(0);
            let name = account(uid).unwrap_or("unknown");
            s.disconnect(1000, &format!("{name} 已由服务端断开连接"));
            return Ok(());
        }
        s.push(format!("Recv: {text}"));
        s.push(claims.to_string());
        Ok(())
    }
}

/// Seed 001's `WebSocketController`.
struct Index;

impl WsController for Index {
    fn on_open(&self, s: &Socket<'_>, _request: &Request) -> Result<(), Error> {
        s.push("Opened");
        Ok(())
    }

    fn on_message(&self, s: &Socket<'_>, frame: &Frame<'_>) -> Result<(), Error> {
        s.push(format!("Recv: {}", String::from_utf8_lossy(frame.data)));
        Ok(())
    }

    fn on_close(&self, _s: &Socket<'_>, _reason: CloseReason) -> Result<(), Error> {
        println!("closed");
        Ok(())
    }
}

/// Seed 001's connection context.
struct WithContext;

impl WsController for WithContext {
    fn on_open(&self, s: &Socket<'_>, request: &Request) -> Result<(), Error> {
        let name = request.cookie("username").unwrap_or_default();
        s.context_mut().set("username", name);
        Ok(())
    }

    fn on_message(&self, s: &Socket<'_>, _frame: &Frame<'_>) -> Result<(), Error> {
        let name = s.context().get::<String>("username").cloned();
        s.push(format!("Username: {}", name.unwrap_or_default()));
        Ok(())
    }
}

fn fd_param(req: &HttpCtx<'_>) -> Result<u64, Error> {
    req.query("fd")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| HttpException::new(400, "fd must be a number").into())
}

/// The cluster link of `--redis` (feature `redis`): the Sender reaches other nodes' fds.
#[cfg(feature = "redis")]
mod cluster {
    use prefork_ws::cluster::redis::{NodeFd, WsCluster};
    use prefork_ws::hyperf::{App, HttpCtx, Sender};

    thread_local! {
        static LINK: std::cell::RefCell<Option<WsCluster>> = const { std::cell::RefCell::new(None) };
    }

    /// Joins the cluster of `args`, if any.
    pub fn join(app: &mut App, args: &prefork_ws::cli::RedisArgs) {
        let Some(config) = args.config() else {
            return;
        };
        println!("node {} joins {}", config.node_id, config.url);
        let link = match WsCluster::new(config) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("hyperf_app: {e}");
                std::process::exit(2);
            }
        };
        LINK.with(|l| *l.borrow_mut() = Some(link.clone()));
        app.on_worker_start(move |sender, worker| link.start_sender(sender, worker));
    }

    fn target(req: &HttpCtx<'_>) -> Option<(WsCluster, NodeFd)> {
        let id: NodeFd = req.query("fd")?.parse().ok()?;
        Some((LINK.with(|l| l.borrow().clone())?, id))
    }

    /// `Some(pushed)` when `?fd=` is a `node:fd` id of a cluster.
    pub fn push(req: &HttpCtx<'_>, sender: &Sender, data: &str) -> Option<bool> {
        let (link, id) = target(req)?;
        Some(link.sender_push(sender, &id, data.as_bytes()))
    }

    /// `Some(closed)` when `?fd=` is a `node:fd` id of a cluster.
    pub fn close(req: &HttpCtx<'_>, sender: &Sender) -> Option<bool> {
        let (link, id) = target(req)?;
        Some(link.sender_disconnect(sender, &id, 1000, ""))
    }

    /// The cluster id of this node's `fd`.
    pub fn id_of(fd: u64) -> Option<String> {
        LINK.with(|l| l.borrow().as_ref().map(|c| c.id_of(fd).to_string()))
    }
}

#[cfg(not(feature = "redis"))]
mod cluster {
    use prefork_ws::hyperf::{HttpCtx, Sender};

    pub fn push(_req: &HttpCtx<'_>, _sender: &Sender, _data: &str) -> Option<bool> {
        None
    }

    pub fn close(_req: &HttpCtx<'_>, _sender: &Sender) -> Option<bool> {
        None
    }

    pub fn id_of(_fd: u64) -> Option<String> {
        None
    }
}

fn main() {
    ExampleArgs::init_logging();
    let args: Args = cli::parse(9502);
    let host = args.common.host.clone();
    let mut app = App::new(args.common.settings(Settings::default()));
    let secret = args.jwt_secret.into_bytes();
    app.server(ServerConfig::new(
        "ws",
        ServerType::WebSocket,
        &host,
        args.common.port,
    ))
    .server(ServerConfig::new(
        "http",
        ServerType::Http,
        &host,
        args.http_port,
    ))
    .add_server("ws", |r| {
        r.get("/wss/demo", Demo)
            .middleware(JwtAuth::hs256(&secret).whitelist(&["/wss/demo"]));
        r.get("/", Index);
        r.get("/ctx", WithContext);
    })
    .add_http_server("http", |r| {
        r.get("/", |_| Ok(text("Hello Hyperf.")));
        r.get("/server/send", |req| {
            if let Some(ok) = cluster::push(req, &req.sender(), "Hello World.") {
                return Ok(status(if ok { 200 } else { 404 }));
            }
            let fd = fd_param(req)?;
            let ok = req.sender().push(fd, "Hello World.");
            Ok(status(if ok { 200 } else { 404 }))
        });
        r.get("/server/close", |req| {
            if let Some(ok) = cluster::close(req, &req.sender()) {
                return Ok(status(if ok { 200 } else { 404 }));
            }
            let fd = fd_param(req)?;
            let sender = req.sender();
            req.after(1000, move || {
                sender.disconnect(fd, 1000, "");
            });
            Ok(status(200))
        });
        r.get("/server/connections", |req| {
            let list: Vec<_> = req
                .connections()
                .into_iter()
                .map(|c| {
                    let mut v = serde_json::json!({ "fd": c.fd, "worker_id": c.worker_id });
                    if let Some(id) = cluster::id_of(c.fd) {
                        v["id"] = serde_json::Value::String(id);
                    }
                    v
                })
                .collect();
            Ok(json(&list))
        });
    });
    #[cfg(feature = "redis")]
    cluster::join(&mut app, &args.redis);
    if let Err(e) = app.start() {
        eprintln!("hyperf_app: {e}");
        std::process::exit(1);
    }
}
