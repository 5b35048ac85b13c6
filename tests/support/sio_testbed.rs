//! The Socket.IO server the integration tests drive (`tests/socketio.rs`): one event per
//! API under test, answering through acknowledgements so a raw client can check every
//! effect, on any worker.

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::engineio::server::Cors;
use prefork_ws::runtime::{ListenSpec, Response, ServeSpec};
use prefork_ws::socketio::{Args, ConnectError, RecoveryConfig, Reply, SioConfig, SocketIo};
use prefork_ws::Settings;
use serde_json::json;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    common: ExampleArgs,
    #[arg(long, default_value_t = 25_000)]
    ping_interval: u64,
    #[arg(long, default_value_t = 20_000)]
    ping_timeout: u64,
    #[arg(long, default_value_t = 45_000)]
    connect_timeout: u64,
    #[arg(long, default_value_t = 1_000_000)]
    max_payload: usize,
    #[arg(long)]
    recovery: bool,
    /// CORS origin for polling (`*` or one origin).
    #[arg(long)]
    cors_origin: Option<String>,
    #[arg(long)]
    cors_credentials: bool,
    /// Name of the sid cookie set on the polling handshake.
    #[arg(long)]
    cookie: Option<String>,
    #[cfg(feature = "redis")]
    #[command(flatten)]
    redis: cli::RedisArgs,
}

fn main() {
    ExampleArgs::init_logging();
    let a: Cli = cli::parse(0);
    let mut io = SocketIo::new(SioConfig {
        ping_interval: a.ping_interval,
        ping_timeout: a.ping_timeout,
        connect_timeout: a.connect_timeout,
        max_payload: a.max_payload,
        recovery: a.recovery.then(RecoveryConfig::default),
        cors: a.cors_origin.clone().map(|origin| Cors {
            origin,
            credentials: a.cors_credentials,
        }),
        cookie: a.cookie.clone(),
        ..SioConfig::default()
    });
    root(&mut io);
    io.of("/guarded")
        .use_middleware(|s| match s.auth()["token"].as_str() {
            Some("ok") => Ok(()),
            _ => Err(ConnectError::new("not authorized").with_data(json!({ "code": 401 }))),
        });
    io.of("/guarded")
        .on("event", |_s, args| format!("guarded: {}", args.text(0)));
    io.of_dynamic(|n| n.starts_with("/dyn-"))
        .on("event", |s, _args| s.nsp().to_string());
    io.use_handshake(|req| match req.get("deny").as_deref() {
        Some("1") => {
            let mut r = Response::default();
            r.status(403).write("Forbidden");
            Err(r)
        }
        _ => Ok(()),
    });
    io.on_http(|io, req| {
        if req.path() == "/stats" {
            let mut r = Response::default();
            let s = io.sio().stats();
            let body = json!({ "worker": io.cx().worker_id(), "engine": io.engine_sessions(), "clients": s.clients, "sockets": s.sockets, "rooms": s.rooms });
            r.header("Content-Type", "application/json").write(body.to_string());
            return r;
        }
        let room = req.get("room").unwrap_or_default();
        let n = io
            .to(&room)
            .emit("news", req.get("msg").unwrap_or_default());
        let mut r = Response::default();
        r.write(format!("ok {n}"));
        r
    });
    #[cfg(feature = "redis")]
    if let Some(config) = a.redis.config() {
        println!("node {} joins {}", config.node_id, config.url);
        match prefork_ws::cluster::redis::RedisAdapter::new(config) {
            Ok(adapter) => {
                io.adapter(adapter);
            }
            Err(e) => {
                eprintln!("sio_testbed: {e}");
                std::process::exit(2);
            }
        }
    }
    let spec = ServeSpec {
        listeners: vec![ListenSpec {
            host: a.common.host.clone(),
            port: a.common.port,
            websocket: true,
            ..ListenSpec::default()
        }],
        settings: a.common.settings(Settings::default()),
        announce_kind: Some("Socket.IO".into()),
        ..ServeSpec::default()
    };
    if let Err(e) = io.serve(spec) {
        eprintln!("sio_testbed: {e}");
        std::process::exit(1);
    }
}

fn root(io: &mut SocketIo) {
    let ns = io.of("/");
    ns.on("whoami", |s, _| s.io().cx().worker_id())
        .on("echo", |_s, args: Args| Reply::args(args))
        .on("join", |s, args| s.join(&args.text(0)))
        .on("leave", |s, args| s.leave(&args.text(0)))
        .on("rooms", |s, _| json!(s.rooms()))
        .on("to", |s, args| {
            s.to(&args.text(0)).emit("msg", args.text(1));
        })
        .on("this_node", |s, args| {
            let op = s.io().of("/").to(&args.text(0)).this_node();
            op.emit("msg", args.text(1));
        })
        .on("to_bin", |s, args| {
            s.to(&args.text(0)).emit("bin", args.text(1).into_bytes());
        })
        .on("in", |s, args| {
            s.in_(&args.text(0)).emit("msg", args.text(1));
        })
        .on("union", |s, args| {
            let op = s.io().of("/").to(&args.text(0)).to(&args.text(1));
            op.except(&args.text(2)).emit("msg", args.text(3));
        })
        .on("broadcast", |s, args| {
            s.broadcast().emit("msg", args.text(0));
        })
        .on("local", |s, args| {
            s.io().local().emit("msg", args.text(0));
        })
        .on("bye", |s, _| s.disconnect(false))
        .on("sse", |s, args| {
            s.io().of("/").server_side_emit("hello", args.text(0))
        })
        .on_server_event("hello", |io, args| {
            io.local().emit("sse", args.text(0));
        });
    node_wide(ns);
    ns.on_disconnect(|s, reason| {
        s.io().to("watchers").emit("gone", (s.sid(), reason));
    });
}

/// Events whose answers need the other workers.
fn node_wide(ns: &mut prefork_ws::socketio::Namespace) {
    ns.on_with_ack("count", |s, args, ack| {
        s.in_(&args.text(0)).count(move |io, n| {
            ack.send(io, json!(n));
        });
    })
    .on_with_ack("fetch", |s, args, ack| {
        s.in_(&args.text(0)).fetch_sockets(move |io, r| {
            let mut sids: Vec<String> = r
                .unwrap_or_else(|p| p.received)
                .into_iter()
                .map(|i| i.sid)
                .collect();
            sids.sort();
            ack.send(io, json!(sids));
        });
    })
    .on_with_ack("fetch_detail", |s, args, ack| {
        let ms = args
            .get(1)
            .and_then(|v| v.to_json().as_u64())
            .unwrap_or(1000);
        s.in_(&args.text(0))
            .timeout(ms)
            .fetch_sockets(move |io, r| {
                let (complete, missing, nodes, got) = match r {
                    Ok(v) => (true, 0, Vec::new(), v),
                    Err(p) => (false, p.missing_parties, p.missing_nodes, p.received),
                };
                let mut sids: Vec<String> = got.into_iter().map(|i| i.sid).collect();
                sids.sort();
                ack.send(
                    io,
                    json!({ "complete": complete, "missing": missing, "nodes": nodes, "sids": sids }),
                );
            });
    })
    .on_with_ack("bcast_ack", |s, args, ack| {
        let ms = args
            .get(1)
            .and_then(|v| v.to_json().as_u64())
            .unwrap_or(1000);
        s.in_(&args.text(0))
            .timeout(ms)
            .emit_with_ack("q", "ping?", move |io, r| {
                let (complete, answers) = match r {
                    Ok(v) => (true, v),
                    Err(p) => (false, p.received),
                };
                let mut texts: Vec<String> = answers.iter().map(|a| a.text(0)).collect();
                texts.sort();
                ack.send(io, json!({ "complete": complete, "answers": texts }));
            });
    })
    .on_with_ack("ask", |s, args, ack| {
        let ms = args.get(0).and_then(|v| v.to_json().as_u64());
        s.emit_with_ack("question", "why?", ms, move |io, r| {
            ack.send(io, r.map(|a| a.text(0)).unwrap_or_else(|e| e.to_string()));
        });
    })
    .on("sockets_join", |s, args| {
        s.io().in_(&args.text(0)).sockets_join(&[&args.text(1)])
    })
    .on("sockets_leave", |s, args| {
        s.io().in_(&args.text(0)).sockets_leave(&[&args.text(1)])
    })
    .on("kick", |s, args| {
        s.io().in_(&args.text(0)).disconnect_sockets(false)
    });
}
