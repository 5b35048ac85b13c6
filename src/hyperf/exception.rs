//! Errors of controllers and middleware, and the exception-handler chain that turns them into
//! responses (Hyperf's `ExceptionHandler` with `isValid` / `handle` / `stopPropagation`).

use std::fmt;

use crate::runtime::Response;

/// An error with an HTTP status (Hyperf's `HttpException`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpException {
    /// Status of the response it becomes.
    pub status: u16,
    /// Its message (the response body with the default handler).
    pub message: String,
}

impl HttpException {
    /// An error answered with `status` and `message`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        HttpException {
            status,
            message: message.into(),
        }
    }
}

/// What controllers, HTTP handlers and middleware return on failure.
#[derive(Debug)]
pub enum Error {
    /// An error with a status.
    Http(HttpException),
    /// A panic, caught by the layer (the message of the panic).
    Panic(String),
    /// Anything else (status 500 with the default handler).
    Other(Box<dyn std::error::Error>),
}

impl Error {
    /// The status this error answers with by default: the `HttpException`'s, else 500.
    pub fn status(&self) -> u16 {
        match self {
            Error::Http(e) => e.status,
            _ => 500,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Http(e) => write!(f, "{} {}", e.status, e.message),
            Error::Panic(m) => write!(f, "panic: {m}"),
            Error::Other(e) => write!(f, "{e}"),
        }
    }
}

impl From<HttpException> for Error {
    fn from(e: HttpException) -> Self {
        Error::Http(e)
    }
}

/// Where an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Middleware or routing of a WebSocket handshake (the response refuses the upgrade).
    Handshake,
    /// An HTTP route or its middleware.
    Http,
    /// A controller's `on_open` or `on_message`: the chain's response decides the connection's
    /// fate — a status of 500 or more closes it with 1011, anything lower keeps it.
    Message,
    /// A controller's `on_close` (logged; the connection is already gone).
    Close,
}

/// Whether later handlers of the chain still run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Later handlers run too.
    Continue,
    /// This handler's response is final (Hyperf's `stopPropagation()`).
    Stop,
}

/// One link of a server's exception-handler chain.
pub trait ExceptionHandler: 'static {
    /// Whether this handler deals with `error` (Hyperf's `isValid`).
    fn is_valid(&self, _error: &Error, _stage: Stage) -> bool {
        true
    }

    /// Shapes `response` for `error`; it starts as the error's status with an empty body.
    fn handle(&self, error: &Error, stage: Stage, response: &mut Response) -> Propagation;
}

/// Seed 000's `WebsocketExceptionHandler`: the status of an `HttpException` (500 for anything
/// else, a panic included) and its message as the body. The default chain of every server.
pub struct WebSocketExceptionHandler;

impl ExceptionHandler for WebSocketExceptionHandler {
    fn handle(&self, error: &Error, _stage: Stage, response: &mut Response) -> Propagation {
        response.status(error.status());
        match error {
            Error::Http(e) => response.write(&e.message),
            _ => response.write("Internal Server Error"),
        };
        Propagation::Stop
    }
}

/// Runs `chain` for `error` and returns the response; when no handler stops the propagation,
/// [`WebSocketExceptionHandler`] ends it.
pub(crate) fn respond(
    chain: &[std::rc::Rc<dyn ExceptionHandler>],
    error: &Error,
    stage: Stage,
) -> Response {
    log::warn!("{stage:?} error: {error}");
    let mut response = Response::default();
    response.status(error.status());
    for h in chain {
        if h.is_valid(error, stage) && h.handle(error, stage, &mut response) == Propagation::Stop {
            return response;
        }
    }
    // Nobody stopped the propagation: the default handler has the last word.
    WebSocketExceptionHandler.handle(error, stage, &mut response);
    response
}

/// Runs `f`, turning a panic into `Error::Panic`.
pub(crate) fn catch<R>(f: impl FnOnce() -> Result<R, Error>) -> Result<R, Error> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(Error::Panic(crate::runtime::panic_message(&*p))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    struct Teapot;
    impl ExceptionHandler for Teapot {
        fn is_valid(&self, e: &Error, _: Stage) -> bool {
            matches!(e, Error::Http(h) if h.status == 418)
        }
        fn handle(&self, _: &Error, _: Stage, r: &mut Response) -> Propagation {
            r.header("X-Teapot", "1");
            Propagation::Continue
        }
    }

    #[test]
    fn the_chain_runs_valid_handlers_until_one_stops() {
        let chain: Vec<Rc<dyn ExceptionHandler>> = vec![Rc::new(Teapot)];
        let r = respond(
            &chain,
            &HttpException::new(418, "short and stout").into(),
            Stage::Http,
        );
        assert_eq!(r.status_code(), 418);
        assert_eq!(r.body(), b"short and stout");
        assert_eq!(r.headers().len(), 1);
        let r = respond(&chain, &Error::Panic("boom".into()), Stage::Handshake);
        assert_eq!(
            (r.status_code(), r.body()),
            (500, &b"Internal Server Error"[..])
        );
        assert!(r.headers().is_empty(), "Teapot is not valid for a panic");
        assert!(
            matches!(catch(|| -> Result<(), Error> { panic!("x") }), Err(Error::Panic(m)) if m == "x")
        );
    }
}
