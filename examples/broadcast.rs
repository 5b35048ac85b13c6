//! Seed 003: an HTTP request `GET /?message=X` pushes X to every established WebSocket
//! connection of the whole server (all workers).
//!
//! `cargo run --release --example broadcast -- --port 9502 --workers 2`
//! then `curl 'http://127.0.0.1:9502/?message=hello'`.
//!
//! The seed loops over `$server->connections` and pushes to each; `broadcast` does the same in
//! one call, encoding the frame once and crossing to each worker once.
//!
//! With the `redis` feature, `--redis redis://HOST:PORT [--node-id ID]` makes this one node of
//! several: `GET /?message=X` on any node reaches every client of every node once, each
//! connection's id (`node:fd`) is printed when it opens, and `GET /?to=ID&message=X` pushes
//! to that one connection on whatever node holds it (`&close=1` closes it instead).

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::{OpCode, Settings, FLAG_FIN};

/// GET /?message=X pushes X to every established WebSocket client of every worker.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
    #[cfg(feature = "redis")]
    #[command(flatten)]
    redis: cli::RedisArgs,
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
    #[cfg(feature = "redis")]
    if let Some(config) = args.redis.config() {
        clustered(&mut server, config);
    }
    ExampleArgs::run(server, "broadcast");
}

/// With `--redis`: the same server as one node of several.
#[cfg(feature = "redis")]
fn clustered(server: &mut prefork_ws::Server, config: prefork_ws::cluster::redis::RedisConfig) {
    use prefork_ws::cluster::redis::{NodeFd, WsCluster};
    println!("node {} joins {}", config.node_id, config.url);
    let cluster = match WsCluster::new(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("broadcast: {e}");
            std::process::exit(2);
        }
    };
    let c = cluster.clone();
    server.on_worker_start(move |server, _| c.start_server(server));
    let c = cluster.clone();
    server.on_worker_stop(move |_, _| c.stop_worker());
    let c = cluster.clone();
    server.on_open(move |_server, request| {
        println!(
            "server: handshake success with fd{} (id {})",
            request.fd,
            c.id_of(request.fd)
        );
    });
    server.on_request(move |server, request, response| {
        let Some(message) = request.get("message") else {
            response.status(400).end("missing ?message=");
            return;
        };
        let Some(to) = request.get("to") else {
            let queued = cluster.broadcast(server, &message, OpCode::Text);
            response.end(if queued {
                "ok\n"
            } else {
                "ok (this node only)\n"
            });
            return;
        };
        let Ok(id) = to.parse::<NodeFd>() else {
            response.status(400).end("?to= is not a node:fd id");
            return;
        };
        let ok = if request.get("close").is_some() {
            cluster.disconnect(server, &id, 1000, &message)
        } else {
            cluster.push(server, &id, &message, OpCode::Text)
        };
        response.end(if ok { "ok\n" } else { "not sent\n" });
    });
}
