//! HTTP routes of an `http` server: by method and path (with `{name}` parameters), each with
//! optional middleware of its own.

use std::rc::Rc;

use super::exception::Error;
use super::middleware::Middleware;
use super::request::HttpCtx;
use super::route::Table;
use super::ws::RouteRef;
use crate::runtime::Response;

/// A route's handler.
pub(crate) type HttpFn = dyn Fn(&mut HttpCtx<'_>) -> Result<Response, Error>;

pub(crate) struct HttpRoute {
    pub handler: Rc<HttpFn>,
    pub middleware: Vec<Rc<dyn Middleware>>,
}

/// The routes of one HTTP server. An unknown path answers `404`, a known path with another
/// method `405` with `Allow`.
#[derive(Default)]
pub struct HttpRoutes {
    pub(crate) table: Table<HttpRoute>,
}

impl HttpRoutes {
    /// A route for `method` (`*`: any method).
    pub fn add(
        &mut self,
        method: &str,
        path: &str,
        handler: impl Fn(&mut HttpCtx<'_>) -> Result<Response, Error> + 'static,
    ) -> RouteRef<'_> {
        let route = HttpRoute {
            handler: Rc::new(handler),
            middleware: Vec::new(),
        };
        let i = self.table.add(method, path, route);
        match self.table.target_mut(i) {
            Some(r) => RouteRef::new(&mut r.middleware),
            None => unreachable!("added just above"),
        }
    }

    /// `Router::get`.
    pub fn get(
        &mut self,
        path: &str,
        handler: impl Fn(&mut HttpCtx<'_>) -> Result<Response, Error> + 'static,
    ) -> RouteRef<'_> {
        self.add("GET", path, handler)
    }

    /// `Router::post`.
    pub fn post(
        &mut self,
        path: &str,
        handler: impl Fn(&mut HttpCtx<'_>) -> Result<Response, Error> + 'static,
    ) -> RouteRef<'_> {
        self.add("POST", path, handler)
    }

    /// `Router::put`.
    pub fn put(
        &mut self,
        path: &str,
        handler: impl Fn(&mut HttpCtx<'_>) -> Result<Response, Error> + 'static,
    ) -> RouteRef<'_> {
        self.add("PUT", path, handler)
    }

    /// `Router::delete`.
    pub fn delete(
        &mut self,
        path: &str,
        handler: impl Fn(&mut HttpCtx<'_>) -> Result<Response, Error> + 'static,
    ) -> RouteRef<'_> {
        self.add("DELETE", path, handler)
    }
}

/// A `200` text response.
pub fn text(body: impl AsRef<[u8]>) -> Response {
    let mut r = Response::default();
    r.header("Content-Type", "text/plain; charset=utf-8")
        .write(body);
    r
}

/// A `200` JSON response of `value`.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Response {
    let mut r = Response::default();
    r.header("Content-Type", "application/json");
    match serde_json::to_vec(value) {
        Ok(body) => {
            r.write(body);
        }
        Err(e) => {
            log::error!("JSON response: {e}");
            r.status(500);
        }
    }
    r
}

/// An empty response with `status`.
pub fn status(code: u16) -> Response {
    let mut r = Response::default();
    r.status(code);
    r
}
