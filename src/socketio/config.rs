//! Socket.IO server options, with Node's / Hyperf's names and Node's defaults.

/// Options of a [`SocketIo`](super::SocketIo) server.
#[derive(Debug, Clone)]
pub struct SioConfig {
    /// Path of the Engine.IO endpoint (`/socket.io/`).
    pub path: String,
    /// Milliseconds between heartbeats (`pingInterval`, 25 000 as in Node; Hyperf's
    /// 10 000 works too).
    pub ping_interval: u64,
    /// Milliseconds to answer a heartbeat (`pingTimeout`, 20 000 as in Node: Hyperf's 100 ms
    /// drops busy clients, as seed 002 warns).
    pub ping_timeout: u64,
    /// Default acknowledgement timeout of server emits and node-wide queries
    /// (`clientCallbackTimeout`, 10 000 ms as in Hyperf).
    pub client_callback_timeout: u64,
    /// Largest message in bytes (`maxHttpBufferSize`, 1 000 000).
    pub max_payload: usize,
    /// A client that joined no namespace within this many ms is closed (`connectTimeout`,
    /// 45 000 as in Node).
    pub connect_timeout: u64,
    /// Connection state recovery (off by default, as in Node).
    pub recovery: Option<RecoveryConfig>,
    /// Also serve a raw Engine.IO echo endpoint at this path (the protocol suites' server).
    pub engine_echo_path: Option<String>,
    /// HTTP long-polling beside WebSocket (on: clients with default options start on it).
    pub polling: bool,
    /// CORS for polling requests from other origins (socket.io's `cors`).
    pub cors: Option<crate::engineio::server::Cors>,
    /// A cookie with the sid, set on the polling handshake (socket.io's `cookie`).
    pub cookie: Option<String>,
}

/// Connection state recovery (Node's `connectionStateRecovery`).
#[derive(Debug, Clone)]
pub struct RecoveryConfig {
    /// How long a session is kept after its client vanished
    /// (`maxDisconnectionDuration`, 2 minutes).
    pub max_disconnection_duration: u64,
    /// Recovered sockets skip the namespace middleware (`skipMiddlewares`, true).
    pub skip_middlewares: bool,
    /// Most packets kept per worker for recovery (beyond the time limit).
    pub max_packets: usize,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            max_disconnection_duration: 120_000,
            skip_middlewares: true,
            max_packets: 100_000,
        }
    }
}

impl Default for SioConfig {
    fn default() -> Self {
        SioConfig {
            path: "/socket.io/".into(),
            ping_interval: 25_000,
            ping_timeout: 20_000,
            client_callback_timeout: 10_000,
            max_payload: 1_000_000,
            connect_timeout: 45_000,
            recovery: None,
            engine_echo_path: None,
            polling: true,
            cors: None,
            cookie: None,
        }
    }
}
