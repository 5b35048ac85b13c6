//! [`HttpCtx`]: an HTTP request (or a WebSocket handshake) as middleware and HTTP routes see
//! it, with its route parameters, its context and the server's tools.

use serde::de::DeserializeOwned;

use super::context::Context;
use super::exception::{Error, HttpException};
use super::route::Params;
use super::sender::Sender;
use super::App;
use crate::protocol::frame::WEBSOCKET_STATUS_ACTIVE;
use crate::runtime::table::{ConnectionInfo, Fd};
use crate::runtime::timer::TimerId;
use crate::runtime::{Ctx, Request};

/// A request being handled. For a WebSocket handshake, what middleware puts in
/// [`context_mut`](HttpCtx::context_mut) becomes the connection's context.
pub struct HttpCtx<'a> {
    request: &'a Request,
    params: Params,
    context: Context,
    cx: &'a Ctx<App>,
}

impl<'a> HttpCtx<'a> {
    pub(crate) fn new(request: &'a Request, params: Params, cx: &'a Ctx<App>) -> Self {
        HttpCtx {
            request,
            params,
            context: Context::default(),
            cx,
        }
    }

    pub(crate) fn into_parts(self) -> (Params, Context) {
        (self.params, self.context)
    }

    /// The request (method, path, query, headers, cookies, body).
    pub fn request(&self) -> &Request {
        self.request
    }

    /// The connection's fd.
    pub fn fd(&self) -> Fd {
        self.request.fd
    }

    /// `{name}` of the matched route.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    /// A query parameter, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        self.request.get(name)
    }

    /// A header, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.header(name)
    }

    /// A cookie.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.request.cookie(name)
    }

    /// The body parsed as JSON; a body that does not parse is a `400`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.request.body)
            .map_err(|e| HttpException::new(400, format!("invalid JSON body: {e}")).into())
    }

    /// The context (of the connection being opened, for a handshake).
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The context, to write.
    pub fn context_mut(&mut self) -> &mut Context {
        &mut self.context
    }

    /// This worker's id.
    pub fn worker_id(&self) -> usize {
        self.cx.worker_id()
    }

    /// The `Sender`, to push to or disconnect any connection of any worker.
    pub fn sender(&self) -> Sender {
        Sender::new(self.cx)
    }

    /// Runs `f` once after `ms` milliseconds on this worker.
    pub fn after(&self, ms: u64, f: impl FnOnce() + 'static) -> TimerId {
        self.cx.after(ms, move |_, _| f())
    }

    /// Every established WebSocket connection of every worker (Swoole's `connections` with
    /// `connection_info`).
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.cx
            .connections()
            .into_iter()
            .filter_map(|fd| self.cx.connection_info(fd))
            .filter(|i| i.websocket_status == WEBSOCKET_STATUS_ACTIVE)
            .collect()
    }
}
