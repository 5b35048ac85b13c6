//! [`App`]: several servers in one process set (Hyperf's `servers` list), from code or from a
//! TOML file, each with its own routes, middleware and exception handlers.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::Deserialize;

use super::exception::ExceptionHandler;
use super::http::HttpRoutes;
use super::middleware::Middleware;
use super::ws::{WsConn, WsRoutes};
use crate::runtime::{serve, ConnMap, ListenSpec, ServeSpec, Settings, StartError};

/// `type` of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerType {
    /// Plain HTTP routes (Hyperf's `Server::SERVER_HTTP`).
    Http,
    /// WebSocket routes and controllers (`Server::SERVER_WEBSOCKET`).
    WebSocket,
}

/// One entry of the `servers` list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The name routes, middleware and exception handlers are registered under.
    pub name: String,
    /// `http` or `websocket`.
    #[serde(rename = "type")]
    pub kind: ServerType,
    /// Host to bind.
    pub host: String,
    /// Port (0: chosen by the OS, printed at start).
    pub port: u16,
    /// Settings of this server (Swoole's names, as in the settings file). The runtime applies
    /// settings to the whole process set, so they are merged into the process-wide settings;
    /// `ssl_cert_file` and `ssl_key_file` are the exception: they make this server's port speak
    /// TLS, and no other.
    #[serde(default)]
    pub settings: Option<toml::Table>,
}

impl ServerConfig {
    /// A server of `kind` named `name` on `host:port`.
    pub fn new(name: &str, kind: ServerType, host: &str, port: u16) -> Self {
        ServerConfig {
            name: name.into(),
            kind,
            host: host.into(),
            port,
            settings: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    settings: Option<toml::Table>,
    servers: Vec<ServerConfig>,
}

pub(crate) struct ServerDef {
    pub config: ServerConfig,
    pub ws: WsRoutes,
    pub http: HttpRoutes,
    pub middleware: Vec<Rc<dyn Middleware>>,
    pub exceptions: Vec<Rc<dyn ExceptionHandler>>,
}

impl ServerDef {
    /// The server's global middleware, then a route's own.
    pub fn chain(&self, route: &[Rc<dyn Middleware>]) -> Vec<Rc<dyn Middleware>> {
        self.middleware.iter().chain(route).cloned().collect()
    }
}

/// A Hyperf-style application: servers, routes, middleware, exception handlers.
///
/// ```no_run
/// use prefork_ws::hyperf::{text, App, ServerConfig, ServerType, Socket, WsController, Error};
/// use prefork_ws::{Frame, Settings};
///
/// struct Echo;
/// impl WsController for Echo {
///     fn on_message(&self, s: &Socket<'_>, frame: &Frame<'_>) -> Result<(), Error> {
///         s.push(format!("Recv: {}", frame.text().unwrap_or("")));
///         Ok(())
///     }
/// }
///
/// let mut app = App::new(Settings { worker_num: 2, ..Settings::default() });
/// app.server(ServerConfig::new("ws", ServerType::WebSocket, "0.0.0.0", 9502))
///    .server(ServerConfig::new("http", ServerType::Http, "0.0.0.0", 9501))
///    .add_server("ws", |r| { r.get("/", Echo); })
///    .add_http_server("http", |r| { r.get("/", |_req| Ok(text("Hello Hyperf."))); });
/// app.start().expect("server");
/// ```
pub struct App {
    pub(crate) servers: Vec<ServerDef>,
    pub(crate) settings: Settings,
    pub(crate) conns: RefCell<ConnMap<Rc<WsConn>>>,
    errors: Vec<String>,
    /// Runs in every worker after it started (a cluster link starts here).
    pub(crate) worker_start: Option<WorkerStartFn>,
    /// Context keys whose values travel with a connection a reload hands over.
    pub(crate) portable: crate::server::portable::PortableKeys,
}

/// What [`App::on_worker_start`] runs: the worker's [`Sender`](super::Sender) and its id.
pub(crate) type WorkerStartFn = Rc<dyn Fn(super::Sender, usize)>;

impl App {
    /// An application with no servers yet.
    pub fn new(settings: Settings) -> App {
        App {
            servers: Vec::new(),
            settings,
            conns: RefCell::new(ConnMap::new()),
            errors: Vec::new(),
            worker_start: None,
            portable: Default::default(),
        }
    }

    /// Declares that connection-context values of type `T` under `key` travel with their
    /// connection when a rolling reload or a binary upgrade hands it to a new worker (the
    /// route, its parameters and these values go along; the controller's
    /// [`on_adopt`](super::WsController::on_adopt) runs there instead of `on_open`).
    pub fn portable_context<T>(&mut self, key: &str) -> &mut Self
    where
        T: serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        self.portable.declare::<T>(key);
        self
    }

    /// Runs `f` in every worker once it has started, with the worker's [`Sender`](super::Sender)
    /// and id (Hyperf's `onWorkerStart` listeners): where a cluster link such as
    /// `WsCluster::start_sender` (feature `redis`) starts.
    pub fn on_worker_start(&mut self, f: impl Fn(super::Sender, usize) + 'static) -> &mut Self {
        self.worker_start = Some(Rc::new(f));
        self
    }

    /// An application whose servers (and settings) come from a TOML file shaped like
    /// Hyperf's `config/autoload/server.php`:
    ///
    /// ```toml
    /// [settings]          # process-wide (Swoole's names)
    /// worker_num = 2
    ///
    /// [[servers]]
    /// name = "http"
    /// type = "http"
    /// host = "0.0.0.0"
    /// port = 9501
    ///
    /// [[servers]]
    /// name = "ws"
    /// type = "websocket"
    /// host = "0.0.0.0"
    /// port = 9502
    /// settings = { heartbeat_check_interval = 5 }
    /// ```
    pub fn from_config_file(base: Settings, path: &Path) -> Result<App, StartError> {
        let err = |m: String| StartError::Config(format!("{}: {m}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let file: FileConfig = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let mut app = App::new(base);
        if let Some(t) = &file.settings {
            app.apply_settings(t).map_err(err)?;
        }
        for s in file.servers {
            app.server(s);
        }
        if let Some(e) = app.errors.first() {
            return Err(err(e.clone()));
        }
        Ok(app)
    }

    fn apply_settings(&mut self, t: &toml::Table) -> Result<(), String> {
        self.settings.apply_config(&t.to_string())
    }

    /// Adds a server (its per-server settings are merged into the process-wide ones).
    pub fn server(&mut self, config: ServerConfig) -> &mut Self {
        if self.servers.iter().any(|s| s.config.name == config.name) {
            self.errors
                .push(format!("server {:?} is defined twice", config.name));
            return self;
        }
        if let Some(t) = &config.settings {
            let mut shared = t.clone();
            shared.remove("ssl_cert_file");
            shared.remove("ssl_key_file");
            let res = self
                .apply_settings(&shared)
                .and_then(|()| own_tls(t).map(drop));
            if let Err(e) = res {
                self.errors.push(format!("server {:?}: {e}", config.name));
            }
        }
        self.servers.push(ServerDef {
            config,
            ws: WsRoutes::default(),
            http: HttpRoutes::default(),
            middleware: Vec::new(),
            exceptions: Vec::new(),
        });
        self
    }

    fn def(&mut self, name: &str, kind: Option<ServerType>) -> Option<&mut ServerDef> {
        let found = self.servers.iter().position(|s| s.config.name == name);
        match found {
            Some(i) if kind.is_none_or(|k| self.servers[i].config.kind == k) => {
                Some(&mut self.servers[i])
            }
            Some(_) => {
                self.errors
                    .push(format!("server {name:?} is not of type {kind:?}"));
                None
            }
            None => {
                self.errors.push(format!("no server named {name:?}"));
                None
            }
        }
    }

    /// `Router::addServer(name, …)` for a WebSocket server.
    pub fn add_server(&mut self, name: &str, f: impl FnOnce(&mut WsRoutes)) -> &mut Self {
        if let Some(d) = self.def(name, Some(ServerType::WebSocket)) {
            f(&mut d.ws);
        }
        self
    }

    /// The routes of an HTTP server.
    pub fn add_http_server(&mut self, name: &str, f: impl FnOnce(&mut HttpRoutes)) -> &mut Self {
        if let Some(d) = self.def(name, Some(ServerType::Http)) {
            f(&mut d.http);
        }
        self
    }

    /// A global middleware of server `name` (Hyperf's `config/autoload/middlewares.php`),
    /// run in registration order before the route's own.
    pub fn middleware(&mut self, name: &str, m: impl Middleware) -> &mut Self {
        if let Some(d) = self.def(name, None) {
            d.middleware.push(Rc::new(m));
        }
        self
    }

    /// An exception handler of server `name` (`config/autoload/exceptions.php`), run in
    /// registration order; [`WebSocketExceptionHandler`](super::WebSocketExceptionHandler) ends
    /// the chain when no handler stops it.
    pub fn exception_handler(&mut self, name: &str, h: impl ExceptionHandler) -> &mut Self {
        if let Some(d) = self.def(name, None) {
            d.exceptions.push(Rc::new(h));
        }
        self
    }

    /// The process-wide settings.
    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    /// Starts every server; returns after a graceful shutdown (see `runtime::serve`).
    pub fn start(self) -> Result<(), StartError> {
        if let Some(e) = self.errors.first() {
            return Err(StartError::Config(e.clone()));
        }
        if self.servers.is_empty() {
            return Err(StartError::Config("no servers configured".into()));
        }
        let spec = ServeSpec {
            listeners: self
                .servers
                .iter()
                .map(|s| {
                    // (Checked when the server was added.)
                    let (cert, key) = s
                        .config
                        .settings
                        .as_ref()
                        .and_then(|t| own_tls(t).ok())
                        .unwrap_or_default();
                    ListenSpec {
                        host: s.config.host.clone(),
                        port: s.config.port,
                        websocket: s.config.kind == ServerType::WebSocket,
                        ssl_cert_file: cert,
                        ssl_key_file: key,
                    }
                })
                .collect(),
            settings: self.settings.clone(),
            announce_prefix: "[INFO] ".into(),
            ..ServeSpec::default()
        };
        serve(spec, self)
    }
}

/// A server's own TLS files from its settings table (`ssl_cert_file`, `ssl_key_file`).
fn own_tls(t: &toml::Table) -> Result<(Option<PathBuf>, Option<PathBuf>), String> {
    let path = |key: &str| match t.get(key) {
        None => Ok(None),
        Some(toml::Value::String(p)) => Ok(Some(PathBuf::from(p))),
        Some(_) => Err(format!("{key}: a path (string) is expected")),
    };
    Ok((path("ssl_cert_file")?, path("ssl_key_file")?))
}
