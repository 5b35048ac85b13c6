//! A Hyperf-layer server for the integration tests (not an example for users): its servers
//! come from a TOML file (`--config`, with `PORT_WS` / `PORT_HTTP` replaced by 0), and it has
//! the routes the layer's rules need.
//!
//! WS server `ws`: global middleware `a` then `b` (each appends to `X-Order` of the 101 and to
//! the context's `order`); `/room/{id}` (the parameter in every callback, the context in
//! `on_message`); `/mw-refuse` (route middleware answers 403 itself); `/mw-panic` (route
//! middleware panics: 500 through the exception chain); `/mw-error` (route middleware
//! returns a 418 `HttpException`); `/ctl` (`panic` panics in `on_message`, `soft` returns a
//! 409 error that keeps the connection, `fd` answers the fd, anything else is echoed). Exception chain: a handler
//! that adds `X-Handled: 1`, then the default. HTTP server `http`: `POST /json` echoes a JSON
//! body's `name` (400 for bad JSON), `GET /item/{id}`, `GET /thread-send?fd=` (the Sender
//! used from a thread).

use std::path::PathBuf;

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::hyperf::{
    json, App, Error, ExceptionHandler, HttpCtx, HttpException, Next, Propagation, Socket, Stage,
    WsController,
};
use prefork_ws::{CloseReason, Frame, Request, Response, Settings};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
    /// The servers (TOML, Hyperf's `servers` list).
    #[arg(long)]
    config: PathBuf,
}

fn order(tag: &'static str) -> impl Fn(&mut HttpCtx<'_>, Next<'_>) -> Result<Response, Error> {
    move |req, next| {
        let seen = req
            .context()
            .get::<String>("order")
            .cloned()
            .unwrap_or_default();
        req.context_mut().set("order", format!("{seen}{tag}"));
        let mut resp = next.handle(req)?;
        resp.header("X-Order", tag);
        Ok(resp)
    }
}

struct Room;

impl WsController for Room {
    fn on_open(&self, s: &Socket<'_>, _r: &Request) -> Result<(), Error> {
        s.push(format!("open room {}", s.param("id").unwrap_or("?")));
        Ok(())
    }

    fn on_message(&self, s: &Socket<'_>, f: &Frame<'_>) -> Result<(), Error> {
        let order = s
            .context()
            .get::<String>("order")
            .cloned()
            .unwrap_or_default();
        let id = s.param("id").unwrap_or("?");
        s.push(format!(
            "room {id} order {order}: {}",
            f.text().unwrap_or("")
        ));
        Ok(())
    }

    fn on_close(&self, s: &Socket<'_>, reason: CloseReason) -> Result<(), Error> {
        println!("room {} closed {reason:?}", s.param("id").unwrap_or("?"));
        Ok(())
    }

    fn on_adopt(&self, s: &Socket<'_>) -> Result<(), Error> {
        println!(
            "room {} adopted by worker {}",
            s.param("id").unwrap_or("?"),
            s.worker_id()
        );
        Ok(())
    }
}

struct Ctl;

impl WsController for Ctl {
    fn on_message(&self, s: &Socket<'_>, f: &Frame<'_>) -> Result<(), Error> {
        match f.text().unwrap_or("") {
            "panic" => panic!("controller panic on purpose"),
            "soft" => Err(HttpException::new(409, "soft failure").into()),
            "fd" => {
                s.push(s.fd().to_string());
                Ok(())
            }
            t => {
                s.push(format!("echo {t}"));
                Ok(())
            }
        }
    }
}

struct Marker;

impl ExceptionHandler for Marker {
    fn handle(&self, _e: &Error, _stage: Stage, r: &mut Response) -> Propagation {
        r.header("X-Handled", "1");
        Propagation::Continue
    }
}

fn main() {
    ExampleArgs::init_logging();
    let args: Args = cli::parse(0);
    let base = args.common.settings(Settings::default());
    let mut app = match App::from_config_file(base, &args.config) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("hyperf_testbed: {e}");
            std::process::exit(2);
        }
    };
    // The handshake middleware's "order" travels with a connection a reload hands over.
    app.portable_context::<String>("order");
    app.middleware("ws", order("a"))
        .middleware("ws", order("b"))
        .exception_handler("ws", Marker)
        .add_server("ws", |r| {
            r.get("/room/{id}", Room);
            r.get("/ctl", Ctl);
            r.get("/mw-refuse", Ctl)
                .middleware(|_req: &mut HttpCtx<'_>, _next: Next<'_>| {
                    let mut resp = Response::default();
                    resp.status(403).write("refused by middleware");
                    Ok(resp)
                });
            r.get("/mw-panic", Ctl).middleware(
                |_req: &mut HttpCtx<'_>, _next: Next<'_>| -> Result<Response, Error> {
                    panic!("middleware panic on purpose")
                },
            );
            r.get("/mw-error", Ctl).middleware(
                |_req: &mut HttpCtx<'_>, _next: Next<'_>| -> Result<Response, Error> {
                    Err(HttpException::new(418, "I'm a teapot").into())
                },
            );
        })
        .add_http_server("http", |r| {
            r.post("/json", |req| {
                let v: serde_json::Value = req.json()?;
                Ok(json(&serde_json::json!({ "hello": v["name"] })))
            });
            r.get("/thread-send", |req| {
                // The Sender is Send + Sync: a thread pushes, the owner worker delivers.
                let fd: u64 = req.query("fd").and_then(|v| v.parse().ok()).unwrap_or(0);
                let sender = req.sender();
                let sent = std::thread::spawn(move || sender.push(fd, "from a thread"))
                    .join()
                    .unwrap_or(false);
                Ok(json(&serde_json::json!({ "sent": sent })))
            });
            r.get("/item/{id}", |req| {
                Ok(json(&serde_json::json!({ "id": req.param("id") })))
            });
        });
    if let Err(e) = app.start() {
        eprintln!("hyperf_testbed: {e}");
        std::process::exit(1);
    }
}
