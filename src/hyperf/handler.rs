//! The `App` as a runtime `Handler`: requests and upgrades routed to the server their
//! listener belongs to, middleware, controllers, the exception chain.

use std::cell::RefCell;
use std::rc::Rc;

use super::exception::{self, catch, Error, Stage};
use super::middleware;
use super::request::HttpCtx;
use super::route::Lookup;
use super::sender::{self, Sender};
use super::ws::{Socket, WsConn};
use super::App;
use crate::runtime::{
    CloseReason, ConnId, Ctx, HandOff, Handler, HttpReply, Message, Request, Response, UpgradeReply,
};
use crate::server::handler::swoole_frame;

/// Seed 000's `handleNotFound`: 404, JSON content type, `Description: Route Error`, no body.
fn route_not_found() -> Response {
    let mut r = Response::default();
    r.status(404)
        .header("Content-Type", "application/json")
        .header("Description", "Route Error");
    r
}

fn method_not_allowed(allowed: &[String]) -> Response {
    let mut r = Response::default();
    r.status(405)
        .header("Allow", &allowed.join(", "))
        .write("Method Not Allowed");
    r
}

/// The acceptance a handshake's middleware chain ends in.
fn accepted(_: &mut HttpCtx<'_>) -> Result<Response, Error> {
    let mut r = Response::default();
    r.status(101);
    Ok(r)
}

impl Handler for App {
    fn on_worker_start(&self, cx: &Ctx<Self>) {
        sender::set_reactor(cx);
        println!("[INFO] Worker#{} started.", cx.worker_id());
        if let Some(f) = &self.worker_start {
            f(Sender::new(cx), cx.worker_id());
        }
    }

    fn on_request(&self, cx: &Ctx<Self>, _conn: ConnId, request: Request) -> HttpReply {
        let Some(server) = self.servers.get(request.listener) else {
            return HttpReply::Respond(Response::bad_request());
        };
        let (route, params) = match server.http.table.lookup(request.method(), request.path()) {
            Lookup::Found(r, p) => (r, p),
            Lookup::MethodNotAllowed(m) => return HttpReply::Respond(method_not_allowed(&m)),
            Lookup::NotFound => {
                let mut r = Response::default();
                r.status(404).write("Not Found");
                return HttpReply::Respond(r);
            }
        };
        let chain = server.chain(&route.middleware);
        let handler = route.handler.clone();
        let mut req = HttpCtx::new(&request, params, cx);
        let result = catch(|| middleware::run(&chain, &mut req, &|r| handler(r)));
        HttpReply::Respond(
            result.unwrap_or_else(|e| exception::respond(&server.exceptions, &e, Stage::Http)),
        )
    }

    fn on_upgrade(&self, cx: &Ctx<Self>, conn: ConnId, request: &Request) -> UpgradeReply {
        let Some(server) = self.servers.get(request.listener) else {
            return UpgradeReply::Refuse(route_not_found());
        };
        let (route, params) = match server.ws.table.lookup(request.method(), request.path()) {
            Lookup::Found(r, p) => (r, p),
            Lookup::MethodNotAllowed(m) => return UpgradeReply::Refuse(method_not_allowed(&m)),
            Lookup::NotFound => return UpgradeReply::Refuse(route_not_found()),
        };
        let chain = server.chain(&route.middleware);
        let mut req = HttpCtx::new(request, params, cx);
        let result = catch(|| middleware::run(&chain, &mut req, &accepted));
        let resp = match result {
            Ok(r) if r.status_code() == 101 => r,
            Ok(r) => return UpgradeReply::Refuse(r),
            Err(e) => {
                return UpgradeReply::Refuse(exception::respond(
                    &server.exceptions,
                    &e,
                    Stage::Handshake,
                ))
            }
        };
        let (params, context) = req.into_parts();
        let state = WsConn {
            server: request.listener,
            path: request.path().to_string(),
            controller: route.controller.clone(),
            params,
            context: RefCell::new(context),
        };
        self.conns.borrow_mut().insert(conn, Rc::new(state));
        UpgradeReply::AcceptWith {
            protocol: first_offered_protocol(request),
            headers: resp.headers().to_vec(),
        }
    }

    fn on_open(&self, cx: &Ctx<Self>, conn: ConnId, request: &Request) {
        self.with_socket(cx, conn, Stage::Message, |c, s| c.on_open(s, request));
    }

    fn on_message(&self, cx: &Ctx<Self>, conn: ConnId, message: Message<'_>) {
        let mut scratch = Vec::new();
        let frame = swoole_frame(conn, message, &mut scratch);
        self.with_socket(cx, conn, Stage::Message, |c, s| c.on_message(s, &frame));
    }

    fn on_close(&self, cx: &Ctx<Self>, conn: ConnId, reason: CloseReason) {
        self.with_socket(cx, conn, Stage::Close, |c, s| c.on_close(s, reason));
        // The context goes with the connection.
        let removed = self.conns.borrow_mut().remove(conn);
        drop(removed);
    }

    /// A reload hands the connection over: its route and portable context go along.
    fn on_hand_off(&self, _cx: &Ctx<Self>, conn: ConnId) -> HandOff {
        let Some(state) = self.conns.borrow_mut().remove(conn) else {
            return HandOff::Move(None);
        };
        let context = self.portable.export(state.context.borrow().values());
        let moved = (
            state.server,
            &state.path,
            serde_bytes::ByteBuf::from(context),
        );
        HandOff::Move(rmp_serde::to_vec(&moved).ok())
    }

    fn on_adopt(&self, cx: &Ctx<Self>, conn: ConnId, state: Option<&[u8]>) {
        let Some(bytes) = state else { return };
        let Ok((server_idx, path, context)) =
            rmp_serde::from_slice::<(usize, String, serde_bytes::ByteBuf)>(bytes)
        else {
            log::warn!(
                "fd {}: a handed-over connection's route does not decode",
                conn.fd
            );
            return;
        };
        let Some(server) = self.servers.get(server_idx) else {
            return;
        };
        let Lookup::Found(route, params) = server.ws.table.lookup("GET", &path) else {
            log::warn!("fd {}: route {path} no longer exists; closing", conn.fd);
            cx.close_with(conn.fd, 1001, "route gone");
            return;
        };
        let state = WsConn {
            server: server_idx,
            path,
            controller: route.controller.clone(),
            params,
            context: RefCell::new(super::context::Context::from_values(
                self.portable.import(&context),
            )),
        };
        self.conns.borrow_mut().insert(conn, Rc::new(state));
        self.with_socket(cx, conn, Stage::Message, |c, s| c.on_adopt(s));
    }

    fn on_disconnect(&self, _cx: &Ctx<Self>, conn: ConnId, _reason: CloseReason) {
        // An accepted handshake that failed afterwards (e.g. an invalid key).
        let removed = self.conns.borrow_mut().remove(conn);
        drop(removed);
    }
}

impl App {
    /// Runs a controller callback; an error or panic goes through the server's exception
    /// chain, whose response status decides whether the connection stays (< 500) or closes
    /// with 1011.
    fn with_socket(
        &self,
        cx: &Ctx<Self>,
        conn: ConnId,
        stage: Stage,
        f: impl FnOnce(&dyn super::WsController, &Socket<'_>) -> Result<(), Error>,
    ) {
        let Some(state) = self.conns.borrow().get(conn).cloned() else {
            return;
        };
        let socket = Socket {
            cx,
            conn,
            state: &state,
        };
        let Err(e) = catch(|| f(&*state.controller, &socket)) else {
            return;
        };
        let chain = self
            .servers
            .get(state.server)
            .map(|s| &s.exceptions[..])
            .unwrap_or(&[]);
        let resp = exception::respond(chain, &e, stage);
        if stage == Stage::Message && resp.status_code() >= 500 {
            cx.close_with(conn.fd, 1011, "internal error");
        }
    }
}

fn first_offered_protocol(request: &Request) -> Option<String> {
    let offered = request.header("sec-websocket-protocol")?;
    offered
        .split(',')
        .map(str::trim)
        .find(|p| !p.is_empty())
        .map(String::from)
}
