//! WebSocket routes and controllers (Hyperf's `Router::addServer('ws', …)` with controllers
//! implementing `OnOpenInterface`, `OnMessageInterface`, `OnCloseInterface`), and the
//! [`Socket`] a controller gets in every callback.

use std::cell::{Ref, RefCell, RefMut};
use std::rc::Rc;

use super::context::Context;
use super::exception::Error;
use super::middleware::Middleware;
use super::route::{Params, Table};
use super::sender::Sender;
use super::App;
use crate::protocol::frame::{OpCode, FLAG_FIN};
use crate::runtime::table::{ConnectionInfo, Fd};
use crate::runtime::{CloseReason, ConnId, Ctx, Request};
use crate::server::Frame;

/// A WebSocket controller: Hyperf's three interfaces as one trait whose methods default to
/// doing nothing, so a controller implements the ones it needs. An `Err` (or a panic) goes
/// through the server's exception handlers (see [`Stage::Message`](super::Stage)).
#[allow(unused_variables)]
pub trait WsController: 'static {
    /// `OnOpenInterface::onOpen`: the handshake succeeded.
    fn on_open(&self, socket: &Socket<'_>, request: &Request) -> Result<(), Error> {
        Ok(())
    }

    /// `OnMessageInterface::onMessage`: a message from the client.
    fn on_message(&self, socket: &Socket<'_>, frame: &Frame<'_>) -> Result<(), Error> {
        Ok(())
    }

    /// The connection was handed to this worker by a rolling reload or a binary upgrade
    /// (`on_open` ran in the worker before; portable context values are back, see
    /// [`App::portable_context`](super::App::portable_context)).
    fn on_adopt(&self, socket: &Socket<'_>) -> Result<(), Error> {
        Ok(())
    }

    /// `OnCloseInterface::onClose`: the connection closed (the context is still readable).
    fn on_close(&self, socket: &Socket<'_>, reason: CloseReason) -> Result<(), Error> {
        Ok(())
    }
}

pub(crate) struct WsRoute {
    pub controller: Rc<dyn WsController>,
    pub middleware: Vec<Rc<dyn Middleware>>,
}

/// The routes of one WebSocket server. Only `GET` upgrades exist; another method on a known
/// path is refused with `405`, an unknown path with `404`.
#[derive(Default)]
pub struct WsRoutes {
    pub(crate) table: Table<WsRoute>,
}

/// A route just added, to give it its own middleware.
pub struct RouteRef<'a> {
    middleware: &'a mut Vec<Rc<dyn Middleware>>,
}

impl<'a> RouteRef<'a> {
    pub(crate) fn new(middleware: &'a mut Vec<Rc<dyn Middleware>>) -> Self {
        RouteRef { middleware }
    }

    /// Adds a middleware for this route only (after the server's global ones).
    pub fn middleware(self, m: impl Middleware) -> Self {
        self.middleware.push(Rc::new(m));
        self
    }
}

impl WsRoutes {
    /// `Router::get(path, Controller)`; `path` may have `{name}` parameters.
    pub fn get(&mut self, path: &str, controller: impl WsController) -> RouteRef<'_> {
        let route = WsRoute {
            controller: Rc::new(controller),
            middleware: Vec::new(),
        };
        let i = self.table.add("GET", path, route);
        match self.table.target_mut(i) {
            Some(r) => RouteRef::new(&mut r.middleware),
            None => unreachable!("added just above"),
        }
    }
}

/// What the layer keeps for an open WebSocket connection.
pub(crate) struct WsConn {
    pub server: usize,
    /// The request path (the route is found again from it in a new worker).
    pub path: String,
    pub controller: Rc<dyn WsController>,
    pub params: Params,
    pub context: RefCell<Context>,
}

/// The connection a controller callback is about.
pub struct Socket<'a> {
    pub(crate) cx: &'a Ctx<App>,
    pub(crate) conn: ConnId,
    pub(crate) state: &'a WsConn,
}

impl Socket<'_> {
    /// The connection's fd (server-wide).
    pub fn fd(&self) -> Fd {
        self.conn.fd
    }

    /// The worker holding the connection.
    pub fn worker_id(&self) -> usize {
        self.cx.worker_id()
    }

    /// `{name}` of the route the connection was opened on.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.state.params.get(name)
    }

    /// The connection's context (what handshake middleware and earlier callbacks stored).
    pub fn context(&self) -> Ref<'_, Context> {
        self.state.context.borrow()
    }

    /// The connection's context, to write.
    pub fn context_mut(&self) -> RefMut<'_, Context> {
        self.state.context.borrow_mut()
    }

    /// Pushes a text message to this connection.
    pub fn push(&self, text: impl AsRef<[u8]>) -> bool {
        self.cx
            .push(self.conn.fd, text.as_ref(), OpCode::Text, FLAG_FIN)
    }

    /// Pushes a binary message to this connection.
    pub fn push_binary(&self, data: impl AsRef<[u8]>) -> bool {
        self.cx
            .push(self.conn.fd, data.as_ref(), OpCode::Binary, FLAG_FIN)
    }

    /// Closes this connection with a close frame (`code` 1000 or 4000–4999).
    pub fn disconnect(&self, code: u16, reason: &str) -> bool {
        self.cx.disconnect(self.conn.fd, code, reason)
    }

    /// The `Sender`, to reach any other connection.
    pub fn sender(&self) -> Sender {
        Sender::new(self.cx)
    }

    /// This connection's details from the shared table.
    pub fn connection_info(&self) -> Option<ConnectionInfo> {
        self.cx.connection_info(self.conn.fd)
    }
}
