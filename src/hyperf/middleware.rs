//! Middleware in PSR-15's shape: `process(request, next) -> response`. The same chain runs
//! before a WebSocket upgrade (refuse with any response, or pass and fill the connection's
//! context) and around HTTP routes.

use std::rc::Rc;

use super::exception::Error;
use super::request::HttpCtx;
use crate::runtime::Response;

/// One middleware. A closure `Fn(&mut HttpCtx, Next) -> Result<Response, Error>` is one too.
pub trait Middleware: 'static {
    /// Answers itself (a refusal), or calls `next.handle(request)` and returns (or changes)
    /// what the rest of the chain answered.
    fn process(&self, request: &mut HttpCtx<'_>, next: Next<'_>) -> Result<Response, Error>;
}

impl<F> Middleware for F
where
    F: Fn(&mut HttpCtx<'_>, Next<'_>) -> Result<Response, Error> + 'static,
{
    fn process(&self, request: &mut HttpCtx<'_>, next: Next<'_>) -> Result<Response, Error> {
        self(request, next)
    }
}

/// What handles the request after the current middleware: the rest of the chain, then the
/// route (for an upgrade: the acceptance, a `101` response).
pub struct Next<'a> {
    rest: &'a [Rc<dyn Middleware>],
    core: &'a dyn Fn(&mut HttpCtx<'_>) -> Result<Response, Error>,
}

impl Next<'_> {
    /// Runs the rest of the chain.
    pub fn handle(self, request: &mut HttpCtx<'_>) -> Result<Response, Error> {
        match self.rest.split_first() {
            Some((m, rest)) => m.process(
                request,
                Next {
                    rest,
                    core: self.core,
                },
            ),
            None => (self.core)(request),
        }
    }
}

/// Runs `chain` in order, then `core`.
pub(crate) fn run(
    chain: &[Rc<dyn Middleware>],
    request: &mut HttpCtx<'_>,
    core: &dyn Fn(&mut HttpCtx<'_>) -> Result<Response, Error>,
) -> Result<Response, Error> {
    Next { rest: chain, core }.handle(request)
}
