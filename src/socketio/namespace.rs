//! Namespace definitions, made before the server starts: the event handlers, the automatic
//! `connect` / `disconnect` events, middleware and server-side events of one namespace (or
//! of every namespace whose name matches a pattern).

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value as Json;

use super::args::{AckSender, Args, IntoReply};
use super::binary::Value;
use super::io::Io;
use super::socket::Socket;

pub(crate) type EventFn = Rc<dyn Fn(&Socket<'_>, Args, AckSender) -> Option<Vec<Value>>>;
pub(crate) type SocketFn = Rc<dyn Fn(&Socket<'_>)>;
pub(crate) type DisconnectFn = Rc<dyn Fn(&Socket<'_>, &str)>;
pub(crate) type MiddlewareFn = Rc<dyn Fn(&Socket<'_>) -> Result<(), ConnectError>>;
pub(crate) type ServerEventFn = Rc<dyn Fn(&Io<'_>, Args)>;

/// A namespace middleware's refusal: the client gets CONNECT_ERROR with this message (and
/// `data` in protocol v5), as Node's `next(new Error(message))` gives.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    /// The message (`err.message` on the client).
    pub message: String,
    /// Extra data (`err.data` on a v3/v4 client).
    pub data: Option<Json>,
}

impl ConnectError {
    /// A refusal with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectError {
            message: message.into(),
            data: None,
        }
    }

    /// Adds data for the client.
    pub fn with_data(mut self, data: Json) -> Self {
        self.data = Some(data);
        self
    }
}

/// The handlers of a namespace (Hyperf's `BaseNamespace`; Node's `io.of(name)`).
#[derive(Default, Clone)]
pub struct Namespace {
    pub(crate) events: HashMap<String, EventFn>,
    pub(crate) any: Option<EventFn>,
    pub(crate) connect: Vec<SocketFn>,
    pub(crate) disconnect: Vec<DisconnectFn>,
    pub(crate) middleware: Vec<MiddlewareFn>,
    pub(crate) server_events: HashMap<String, ServerEventFn>,
}

impl Namespace {
    /// Handles `event`. The handler's return value is the acknowledgement if the client asked
    /// for one (see [`IntoReply`]).
    pub fn on<R: IntoReply>(
        &mut self,
        event: &str,
        f: impl Fn(&Socket<'_>, Args) -> R + 'static,
    ) -> &mut Self {
        self.events.insert(
            event.to_string(),
            Rc::new(move |s, a, _| f(s, a).into_reply()),
        );
        self
    }

    /// Handles `event` and acknowledges it when the handler chooses, through the
    /// [`AckSender`] (Node's callback argument), e.g. after another worker answered.
    pub fn on_with_ack(
        &mut self,
        event: &str,
        f: impl Fn(&Socket<'_>, Args, AckSender) + 'static,
    ) -> &mut Self {
        self.events.insert(
            event.to_string(),
            Rc::new(move |s, a, ack| {
                f(s, a, ack);
                None
            }),
        );
        self
    }

    /// Handles every event no [`on`](Namespace::on) handler takes; gets the name as the first
    /// argument (Node's `onAny`).
    pub fn on_any<R: IntoReply>(
        &mut self,
        f: impl Fn(&Socket<'_>, Args) -> R + 'static,
    ) -> &mut Self {
        self.any = Some(Rc::new(move |s, a, _| f(s, a).into_reply()));
        self
    }

    /// The automatic `connect` event (Node's `connection`): the socket joined the namespace.
    pub fn on_connect(&mut self, f: impl Fn(&Socket<'_>) + 'static) -> &mut Self {
        self.connect.push(Rc::new(f));
        self
    }

    /// The automatic `disconnect` event, with Node's reason string (`client namespace
    /// disconnect`, `server namespace disconnect`, `transport close`, `ping timeout`, …).
    pub fn on_disconnect(&mut self, f: impl Fn(&Socket<'_>, &str) + 'static) -> &mut Self {
        self.disconnect.push(Rc::new(f));
        self
    }

    /// A namespace middleware (Node's `use`): runs in order before `connect`; an `Err`
    /// refuses the socket with CONNECT_ERROR. The socket's `auth()` and `request()` are
    /// readable; emits and joins are not delivered before it is accepted.
    pub fn use_middleware(
        &mut self,
        f: impl Fn(&Socket<'_>) -> Result<(), ConnectError> + 'static,
    ) -> &mut Self {
        self.middleware.push(Rc::new(f));
        self
    }

    /// An event another worker sent with [`Io::server_side_emit`] (Node's `serverSideEmit`).
    pub fn on_server_event(
        &mut self,
        event: &str,
        f: impl Fn(&Io<'_>, Args) + 'static,
    ) -> &mut Self {
        self.server_events.insert(event.to_string(), Rc::new(f));
        self
    }
}

pub(crate) type Matcher = Rc<dyn Fn(&str) -> bool>;

/// How namespace names map to definitions: exact names first, then the patterns in order.
#[derive(Default)]
pub(crate) struct Registry {
    pub fixed: Vec<(String, Rc<Namespace>)>,
    pub dynamic: Vec<(Matcher, Rc<Namespace>)>,
}

impl Registry {
    pub fn find(&self, name: &str) -> Option<Rc<Namespace>> {
        self.fixed
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .or_else(|| {
                self.dynamic
                    .iter()
                    .find(|(m, _)| m(name))
                    .map(|(_, d)| d.clone())
            })
    }
}
