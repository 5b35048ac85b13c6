//! The prefork runtime: master process, worker reactors, shared connection table, IPC — and
//! the seam the layers above are built on: a [`Handler`] the workers call and the [`Ctx`]
//! its methods use. Nothing here knows of the layers (the Swoole-style server and the others depend
//! on this module, never the reverse).
//!
//! ```no_run
//! use prefork_ws::runtime::{serve, ConnId, Ctx, Handler, ListenSpec, Message, ServeSpec};
//! use prefork_ws::{Settings, FLAG_FIN};
//!
//! struct Echo;
//! impl Handler for Echo {
//!     fn on_message(&self, cx: &Ctx<Self>, conn: ConnId, msg: Message<'_>) {
//!         if let Message::Data { opcode, data, .. } = msg {
//!             cx.push(conn.fd, data, opcode, FLAG_FIN);
//!         }
//!     }
//! }
//!
//! let spec = ServeSpec {
//!     listeners: vec![ListenSpec { host: "0.0.0.0".into(), port: 9502, websocket: true, ..ListenSpec::default() }],
//!     settings: Settings { worker_num: 2, ..Settings::default() },
//!     ..ServeSpec::default()
//! };
//! serve(spec, Echo).expect("server");
//! ```

#[cfg(not(target_os = "linux"))]
compile_error!(
    "prefork-ws runs on Linux only: its reactor relies on edge-triggered epoll semantics \
     (a short read drained the socket), memfd, SO_REUSEPORT balancing and PR_SET_PDEATHSIG"
);

pub mod clock;
pub(crate) mod conn;
mod conn_map;
pub mod handler;
pub mod http;
pub mod inspect;
pub(crate) mod ipc;
mod master;
pub(crate) mod metrics;
pub mod settings;
pub(crate) mod signals;
pub mod table;
pub mod timer;
pub mod tls;
pub(crate) mod worker;

pub use conn_map::ConnMap;
pub use handler::{CloseReason, ConnId, HandOff, Handler, HttpReply, Message, UpgradeReply};
pub use http::{Request, Response, StoredRequest};
pub use master::{serve, ListenSpec, ServeSpec};
pub use settings::Settings;
pub use worker::{panic_message, BroadcastReport, Ctx, WorkerHandle};

/// Errors of starting a server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listening address could not be bound (in use, not resolvable, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// `host:port` as configured.
        addr: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A setting or configuration file is invalid.
    #[error("invalid setting: {0}")]
    Config(String),
    /// A listener's certificate or key cannot be loaded (the error names the file).
    #[error(transparent)]
    Tls(#[from] tls::TlsConfigError),
    /// Any other operating-system error at start-up.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
