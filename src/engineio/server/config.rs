//! Engine.IO server options, with engine.io's names and defaults.

/// Options of an [`EngineIo`](super::EngineIo) server.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Path the clients connect to (`path` in engine.io; socket.io's default `/socket.io/`).
    pub path: String,
    /// Milliseconds between heartbeats (`pingInterval`, 25 000 as in Node).
    pub ping_interval: u64,
    /// Milliseconds the peer has to answer a heartbeat (`pingTimeout`, 20 000 as in Node;
    /// Hyperf's 100 ms drops busy clients).
    pub ping_timeout: u64,
    /// Largest message in bytes (`maxHttpBufferSize` / `maxPayload`, 1 000 000). A larger
    /// WebSocket message closes the connection with 1009.
    pub max_payload: usize,
    /// Accept Engine.IO v3 clients (socket.io-client 2.x) beside v4 (`allowEIO3`; on here,
    /// so 2.x, 3.x and 4.x clients all connect).
    pub allow_eio3: bool,
    /// Also serve a raw Engine.IO echo endpoint at this path (the engine.io-protocol test
    /// suite's server): every message is sent back as it came.
    pub echo_path: Option<String>,
    /// Serve HTTP long-polling (and the upgrade from it) beside WebSocket; on by default, so
    /// clients with their default options work.
    pub polling: bool,
    /// CORS for polling requests from pages of other origins (`cors` in socket.io).
    pub cors: Option<Cors>,
    /// Name of a cookie holding the sid, set on the polling handshake (`cookie`, off).
    pub cookie: Option<String>,
}

/// CORS answers for polling requests (socket.io's `cors` option).
#[derive(Debug, Clone)]
pub struct Cors {
    /// The allowed origin: `*` (any: the request's origin is echoed) or one origin.
    pub origin: String,
    /// `Access-Control-Allow-Credentials: true` (cookies on cross-origin requests).
    pub credentials: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            path: "/socket.io/".into(),
            ping_interval: 25_000,
            ping_timeout: 20_000,
            max_payload: 1_000_000,
            allow_eio3: true,
            echo_path: None,
            polling: true,
            cors: None,
            cookie: None,
        }
    }
}

impl EngineConfig {
    /// Whether `path` is this server's path (with or without the trailing `/`).
    pub(crate) fn route(&self, path: &str) -> Option<Endpoint> {
        if same_path(path, &self.path) {
            Some(Endpoint::Handler)
        } else if self
            .echo_path
            .as_deref()
            .is_some_and(|p| same_path(path, p))
        {
            Some(Endpoint::Echo)
        } else {
            None
        }
    }
}

/// Which endpoint a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// The application's handler.
    Handler,
    /// The built-in raw echo.
    Echo,
}

fn same_path(path: &str, configured: &str) -> bool {
    path.trim_end_matches('/') == configured.trim_end_matches('/')
}
