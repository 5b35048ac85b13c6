//! The Hyperf-style layer (seeds 000 and 001), built on the runtime's `Handler` seam: several
//! servers from code or a TOML `servers` list; WebSocket routes with controllers and a `404`
//! for unknown paths at the handshake; HTTP routes; PSR-15-shaped middleware (handshake and
//! HTTP); a typed connection context; the [`Sender`]; exception-handler chains; JWT
//! middleware. See the README's Hyperf → prefork-ws table.

mod app;
mod context;
mod exception;
mod handler;
mod http;
mod jwt;
mod middleware;
mod request;
mod route;
mod sender;
mod ws;

pub use app::{App, ServerConfig, ServerType};
pub use context::Context;
pub use exception::{
    Error, ExceptionHandler, HttpException, Propagation, Stage, WebSocketExceptionHandler,
};
pub use http::{json, status, text, HttpRoutes};
pub use jwt::{JwtAuth, DO_JWT_FAIL, JWT_EMPTY_ERR, JWT_EXPIRED};
pub use middleware::{Middleware, Next};
pub use request::HttpCtx;
pub use route::Params;
pub use sender::Sender;
pub use ws::{RouteRef, Socket, WsController, WsRoutes};
