//! The Swoole-style server object: settings, callbacks, and (inside a worker) the API that
//! callbacks use — `push`, `disconnect`, `exist`, `connection_info`, ...

mod api;
mod context;
mod frame;
pub(crate) mod handle;
pub(crate) mod handler;
pub(crate) mod portable;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

pub use crate::runtime::{BroadcastReport, CloseReason, Request, Response, Settings};
pub use frame::Frame;
pub use handle::ServerHandle;

use crate::runtime::{ConnMap, Ctx, ListenSpec, ServeSpec, StartError};
use context::ContextMap;

type OpenFn = Box<dyn Fn(&Server, &Request)>;
type MessageFn = Box<dyn Fn(&Server, &Frame)>;
type FdFn = Box<dyn Fn(&Server, Fd)>;
type HttpFn = Box<dyn Fn(&Server, &Request, &mut Response)>;
type WorkerFn = Box<dyn Fn(&Server, usize)>;
type PipeFn = Box<dyn Fn(&Server, usize, &[u8])>;

/// The peer-channel id of `send_message` / `on_pipe_message` (other layers use their own).
pub const PIPE_CHANNEL: u16 = 0;

#[derive(Default)]
pub(crate) struct Callbacks {
    pub on_open: Option<OpenFn>,
    pub on_message: Option<MessageFn>,
    pub on_close: Option<FdFn>,
    pub on_disconnect: Option<FdFn>,
    pub on_handshake: Option<HttpFn>,
    pub on_request: Option<HttpFn>,
    pub on_worker_start: Option<WorkerFn>,
    pub on_worker_stop: Option<WorkerFn>,
    pub on_pipe_message: Option<PipeFn>,
    pub on_adopt: Option<FdFn>,
}

use crate::runtime::table::Fd;

/// Errors of [`Server::start`]: the Swoole layer's own, or the runtime's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `start()` without `on_message`.
    #[error("on_message callback is required (Swoole refuses to start without onMessage)")]
    NoOnMessage,
    /// The runtime could not start: a port cannot be bound (the error names the address), a
    /// setting or configuration file is invalid, or the OS refused something at start-up.
    #[error(transparent)]
    Start(#[from] StartError),
}

/// A WebSocket server in the model of Swoole's `WebSocket\Server`.
///
/// Build it in `main`, register callbacks, then [`start`](Server::start): the calling process
/// becomes the master, which forks `worker_num` workers; callbacks run in the workers and get
/// `&Server` to push to any connection of the whole server.
///
/// ```no_run
/// use prefork_ws::{Server, Settings, OpCode, FLAG_FIN};
///
/// let mut server = Server::new("0.0.0.0", 9502);
/// server.set(Settings { worker_num: 2, ..Settings::default() });
/// server.on_open(|_srv, req| println!("server: handshake success with fd{}", req.fd));
/// server.on_message(|srv, frame| {
///     srv.push(frame.fd, frame.data, frame.opcode, FLAG_FIN);
/// });
/// server.on_close(|_srv, fd| println!("client {fd} closed"));
/// server.start().expect("server failed");
/// ```
pub struct Server {
    pub(crate) listeners: Vec<ListenSpec>,
    pub(crate) settings: Settings,
    pub(crate) cb: Callbacks,
    /// Configuration file re-read on every reload (`SIGUSR1`).
    pub(crate) config_file: Option<std::path::PathBuf>,
    /// Extra shared values users attach (e.g. a router), kept alive for the server's life.
    pub(crate) extensions: RefCell<Vec<Rc<dyn std::any::Any>>>,
    /// The worker's context; `None` in the master.
    pub(crate) cx: RefCell<Option<Ctx<Server>>>,
    /// Per-connection user values (`set_context` / `get_context`).
    pub(crate) contexts: RefCell<ConnMap<Box<ContextMap>>>,
    /// Why the connection being closed closed, while `on_close` / `on_disconnect` runs.
    pub(crate) close_reason: Cell<Option<CloseReason>>,
    /// Context keys whose values travel with a connection a reload hands over.
    pub(crate) portable: portable::PortableKeys,
}

impl Server {
    /// A server listening on `host:port` (port 0 picks a free port, printed at start).
    pub fn new(host: &str, port: u16) -> Server {
        Server {
            listeners: vec![ListenSpec {
                host: host.to_string(),
                port,
                websocket: true,
                ..ListenSpec::default()
            }],
            settings: Settings::default(),
            cb: Callbacks::default(),
            config_file: None,
            extensions: RefCell::new(Vec::new()),
            cx: RefCell::new(None),
            contexts: RefCell::new(ConnMap::new()),
            close_reason: Cell::new(None),
            portable: portable::PortableKeys::default(),
        }
    }

    /// Declares that context values of type `T` stored under `key` (with
    /// [`set_context`](Server::set_context)) travel with their connection when a rolling
    /// reload or a binary upgrade hands it to a new worker. Other values are dropped there;
    /// [`on_adopt`](Server::on_adopt) can rebuild them.
    ///
    /// ```
    /// let mut server = prefork_ws::Server::new("127.0.0.1", 0);
    /// server.portable_context::<String>("user");
    /// ```
    pub fn portable_context<T>(&mut self, key: &str) -> &mut Self
    where
        T: serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        self.portable.declare::<T>(key);
        self
    }

    /// Called in the new worker for each connection a reload or an upgrade handed over (its
    /// fd, `connection_info` and portable context values are those it had; `on_open` is not
    /// called again).
    pub fn on_adopt(&mut self, f: impl Fn(&Server, Fd) + 'static) -> &mut Self {
        self.cb.on_adopt = Some(Box::new(f));
        self
    }

    /// Replaces the settings (`$server->set([...])`).
    pub fn set(&mut self, settings: Settings) -> &mut Self {
        self.settings = settings;
        self
    }

    /// Loads settings from a `key = value` file (see [`Settings::apply_config`]) on top of the
    /// current ones, and re-reads it on every rolling reload (`SIGUSR1`): workers started by the
    /// reload get the new settings (`worker_num`, `max_conn`, `backlog` and `pid_file` stay as
    /// they were at start).
    pub fn config_file(&mut self, path: impl Into<std::path::PathBuf>) -> Result<&mut Self, Error> {
        let path = path.into();
        self.settings = Settings::from_file(&self.settings, &path)
            .map_err(|e| Error::Start(StartError::Config(e)))?;
        self.config_file = Some(path);
        Ok(self)
    }

    /// The settings: inside a worker, the ones it runs with (a reload may have re-read the
    /// configuration file); in the master, the ones given.
    pub fn settings(&self) -> Settings {
        match self.cx.borrow().as_ref() {
            Some(cx) => cx.settings().clone(),
            None => self.settings.clone(),
        }
    }

    /// Listens on one more port with the same callbacks (`$server->addListener`).
    pub fn add_listener(&mut self, host: &str, port: u16) -> &mut Self {
        self.listeners.push(ListenSpec {
            host: host.to_string(),
            port,
            websocket: true,
            ..ListenSpec::default()
        });
        self
    }

    /// Listens on one more port for plain HTTP only: every request there, upgrade or not, goes
    /// to `on_request` (the HTTP server of a Hyperf-style HTTP + WebSocket pair).
    pub fn add_http_listener(&mut self, host: &str, port: u16) -> &mut Self {
        self.listeners.push(ListenSpec {
            host: host.to_string(),
            port,
            websocket: false,
            ..ListenSpec::default()
        });
        self
    }

    /// After a successful handshake (`onOpen`).
    pub fn on_open(&mut self, f: impl Fn(&Server, &Request) + 'static) -> &mut Self {
        self.cb.on_open = Some(Box::new(f));
        self
    }

    /// A whole message from a client (`onMessage`, required).
    pub fn on_message(&mut self, f: impl Fn(&Server, &Frame) + 'static) -> &mut Self {
        self.cb.on_message = Some(Box::new(f));
        self
    }

    /// A WebSocket connection closed, whoever closed it (`onClose`).
    pub fn on_close(&mut self, f: impl Fn(&Server, Fd) + 'static) -> &mut Self {
        self.cb.on_close = Some(Box::new(f));
        self
    }

    /// A connection that never became a WebSocket closed (`onDisconnect`).
    pub fn on_disconnect(&mut self, f: impl Fn(&Server, Fd) + 'static) -> &mut Self {
        self.cb.on_disconnect = Some(Box::new(f));
        self
    }

    /// Custom handshake (`onHandShake`): set status 101 to accept (see
    /// [`Response::accept_websocket`]), anything else refuses. `on_open` is then not called;
    /// use [`defer`](Server::defer) to run open logic after the 101 is written.
    pub fn on_handshake(
        &mut self,
        f: impl Fn(&Server, &Request, &mut Response) + 'static,
    ) -> &mut Self {
        self.cb.on_handshake = Some(Box::new(f));
        self
    }

    /// Plain HTTP on the same port (`onRequest`); without it such requests get `400`.
    pub fn on_request(
        &mut self,
        f: impl Fn(&Server, &Request, &mut Response) + 'static,
    ) -> &mut Self {
        self.cb.on_request = Some(Box::new(f));
        self
    }

    /// A worker started (`onWorkerStart`), with its worker id.
    pub fn on_worker_start(&mut self, f: impl Fn(&Server, usize) + 'static) -> &mut Self {
        self.cb.on_worker_start = Some(Box::new(f));
        self
    }

    /// A worker is stopping (`onWorkerStop`), before its clients are closed.
    pub fn on_worker_stop(&mut self, f: impl Fn(&Server, usize) + 'static) -> &mut Self {
        self.cb.on_worker_stop = Some(Box::new(f));
        self
    }

    /// A message from another worker's [`send_message`](Server::send_message)
    /// (`onPipeMessage`): `(server, source worker id, data)`.
    pub fn on_pipe_message(&mut self, f: impl Fn(&Server, usize, &[u8]) + 'static) -> &mut Self {
        self.cb.on_pipe_message = Some(Box::new(f));
        self
    }

    /// Keeps a value alive for the life of the server (useful for layers built on callbacks).
    pub fn attach(&self, value: Rc<dyn std::any::Any>) {
        self.extensions.borrow_mut().push(value);
    }

    /// Listening addresses as configured.
    pub fn listen_addrs(&self) -> Vec<(String, u16)> {
        self.listeners
            .iter()
            .map(|l| (l.host.clone(), l.port))
            .collect()
    }

    /// Runs the server: binds, forks the workers, supervises them and returns after a graceful
    /// shutdown (SIGTERM/SIGINT). Never returns in the workers.
    pub fn start(self) -> Result<(), Error> {
        if self.cb.on_message.is_none() {
            return Err(Error::NoOnMessage);
        }
        let spec = ServeSpec {
            listeners: self.listeners.clone(),
            settings: self.settings.clone(),
            config_file: self.config_file.clone(),
            ..ServeSpec::default()
        };
        Ok(crate::runtime::serve(spec, self)?)
    }
}
