//! The Socket.IO server: namespaces defined up front, then one [`SocketIo`] per worker
//! running as the [`EngineHandler`] of an Engine.IO server.

use std::cell::RefCell;
use std::rc::Rc;

use super::acks::Collectors;
use super::adapter::{Adapter, NodeAdapter, SOCKETIO_CHANNEL};
use super::cluster::ClusterMsg;
use super::config::SioConfig;
use super::io::Io;
use super::namespace::{Namespace, Registry};
use super::recovery::Recovery;
use super::state::{Client, State};
use super::Version;
use crate::engineio::{
    DisconnectReason, Engine, EngineConfig, EngineData, EngineHandler, EngineIo, SessionKey,
};
use crate::runtime::table::Fd;
use crate::runtime::{serve, ConnId, HttpReply, Request, Response, ServeSpec};

type HandshakeFn = Rc<dyn Fn(&Request) -> Result<(), Response>>;
type HttpFn = Rc<dyn Fn(&Io<'_>, &Request) -> Response>;
type SidFn = Rc<dyn Fn(&str, Fd) -> String>;

/// What one worker's Socket.IO server holds (see [`SocketIo::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SioStats {
    /// Engine.IO sessions speaking Socket.IO.
    pub clients: usize,
    /// Sockets (a client in a namespace).
    pub sockets: usize,
    /// Namespaces that exist in this worker.
    pub namespaces: usize,
    /// Rooms with members (sid rooms not counted).
    pub rooms: usize,
}

/// A Socket.IO server (Hyperf's `SocketIO`, Node's `Server`).
///
/// ```no_run
/// use prefork_ws::socketio::{SioConfig, SocketIo};
/// let mut io = SocketIo::new(SioConfig::default());
/// io.of("/").on("event", |_socket, args| format!("Event Received: {}", args.text(0)));
/// io.of("/chat").on("event", |_socket, args| format!("chat Received: {}", args.text(0)));
/// # let spec = prefork_ws::runtime::ServeSpec::default();
/// io.serve(spec).unwrap();
/// ```
pub struct SocketIo {
    pub(crate) config: SioConfig,
    pub(crate) registry: Registry,
    pub(crate) adapter: Box<dyn Adapter>,
    pub(crate) state: RefCell<State>,
    pub(crate) collectors: RefCell<Collectors>,
    pub(crate) recovery: RefCell<Recovery>,
    server_id: String,
    sid_fn: SidFn,
    handshake: Vec<HandshakeFn>,
    http: Option<HttpFn>,
}

impl SocketIo {
    /// A server with `config`, the [`NodeAdapter`] and no namespaces yet (a client's CONNECT
    /// to a namespace nobody defined gets `Invalid namespace`).
    pub fn new(config: SioConfig) -> Self {
        let mut raw = [0u8; 6];
        crate::engineio::server::session::fill_random(&mut raw);
        let server_id = raw.iter().map(|b| format!("{b:02x}")).collect();
        SocketIo {
            config,
            registry: Registry::default(),
            adapter: Box::new(NodeAdapter),
            state: RefCell::new(State::default()),
            collectors: RefCell::new(Collectors::default()),
            recovery: RefCell::new(Recovery::default()),
            server_id,
            sid_fn: Rc::new(|server, fd| format!("{server}#{fd}")),
            handshake: Vec::new(),
            http: None,
        }
    }

    /// The namespace `name`'s definition, created empty on first use.
    pub fn of(&mut self, name: &str) -> &mut Namespace {
        let i = match self.registry.fixed.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.registry.fixed.push((name.to_string(), Rc::default()));
                self.registry.fixed.len() - 1
            }
        };
        Rc::make_mut(&mut self.registry.fixed[i].1)
    }

    /// Every namespace whose name `matches` (Node's `io.of(/regex/)`): each such namespace
    /// comes into being on its first CONNECT, with these handlers.
    pub fn of_dynamic(&mut self, matches: impl Fn(&str) -> bool + 'static) -> &mut Namespace {
        self.registry
            .dynamic
            .push((Rc::new(matches), Rc::default()));
        let last = self.registry.dynamic.len() - 1;
        Rc::make_mut(&mut self.registry.dynamic[last].1)
    }

    /// Replaces the adapter (see [`super::adapter`]).
    pub fn adapter(&mut self, adapter: impl Adapter) -> &mut Self {
        self.adapter = Box::new(adapter);
        self
    }

    /// A handshake middleware: runs on the HTTP upgrade request; `Err(response)` refuses it
    /// with that response (seed 002's `Forbidden`).
    pub fn use_handshake(
        &mut self,
        f: impl Fn(&Request) -> Result<(), Response> + 'static,
    ) -> &mut Self {
        self.handshake.push(Rc::new(f));
        self
    }

    /// Answers plain HTTP requests outside the Socket.IO path (a page, an API that emits).
    pub fn on_http(&mut self, f: impl Fn(&Io<'_>, &Request) -> Response + 'static) -> &mut Self {
        self.http = Some(Rc::new(f));
        self
    }

    /// Replaces the sid format (`ServerID#FD` by default, seed 002); gets the server id
    /// and the connection's fd, and must give a different sid for every fd.
    pub fn sid_provider(&mut self, f: impl Fn(&str, Fd) -> String + 'static) -> &mut Self {
        self.sid_fn = Rc::new(f);
        self
    }

    /// The node's server id (the `ServerID` of `ServerID#FD`).
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// What this worker holds: Engine.IO clients, sockets, namespaces, rooms.
    pub fn stats(&self) -> SioStats {
        let state = self.state.borrow();
        SioStats {
            clients: state.clients.len(),
            sockets: state.sockets.len(),
            namespaces: state.nsps.len(),
            rooms: state.nsps.iter().map(|n| n.rooms.len()).sum(),
        }
    }

    /// The options.
    pub fn config(&self) -> &SioConfig {
        &self.config
    }

    /// The Engine.IO server that runs this Socket.IO server.
    pub fn into_engine(self) -> EngineIo<SocketIo> {
        let c = &self.config;
        let engine = EngineConfig {
            path: c.path.clone(),
            ping_interval: c.ping_interval,
            ping_timeout: c.ping_timeout,
            max_payload: c.max_payload,
            allow_eio3: true,
            echo_path: c.engine_echo_path.clone(),
            polling: c.polling,
            cors: c.cors.clone(),
            cookie: c.cookie.clone(),
        };
        EngineIo::new(engine, self)
    }

    /// Runs the server (see [`serve`]); `package_max_length` is raised to `max_payload`
    /// when it is smaller, so that large messages get Engine.IO's answer.
    pub fn serve(self, mut spec: ServeSpec) -> Result<(), crate::runtime::StartError> {
        let need = self.config.max_payload + 16;
        if spec.settings.package_max_length < need {
            spec.settings.package_max_length = need;
        }
        serve(spec, self.into_engine())
    }

    pub(crate) fn sid_for(&self, fd: Fd) -> Rc<str> {
        Rc::from((self.sid_fn)(&self.server_id, fd))
    }

    /// A fresh id for acknowledgements and requests, unique within the node.
    pub(crate) fn new_id(&self, io: &Io<'_>) -> u64 {
        let cx = io.cx();
        self.state
            .borrow_mut()
            .next_id(cx.worker_id(), cx.worker_num())
    }
}

impl EngineHandler for SocketIo {
    fn on_request(&self, engine: Engine<'_, Self>, _conn: ConnId, request: Request) -> HttpReply {
        let io = Io::new(engine);
        HttpReply::Respond(match &self.http {
            Some(f) => f(&io, &request),
            None => {
                let mut r = Response::default();
                r.status(404).write("Not Found");
                r
            }
        })
    }

    fn on_handshake(&self, _engine: Engine<'_, Self>, request: &Request) -> Result<(), Response> {
        self.handshake.iter().try_for_each(|f| f(request))
    }

    fn session_id(
        &self,
        fd: Fd,
        version: crate::engineio::Version,
        polling: bool,
    ) -> Option<String> {
        // A polling sid travels in URLs, where `#` would need escaping.
        (version == crate::engineio::Version::V3 && !polling).then(|| self.sid_for(fd).to_string())
    }

    fn on_open(&self, engine: Engine<'_, Self>, session: SessionKey, request: &Request) {
        let Some(ev) = engine.version(session) else {
            return;
        };
        let version = Version::for_engineio(ev);
        let client = Client {
            version,
            origin_fd: request.fd,
            fd: engine.conn(session).map(|c| c.fd),
            pending: None,
            max_payload: self.config.max_payload,
            sockets: Vec::new(),
            request: crate::runtime::StoredRequest::new(request),
            pending_connects: 0,
        };
        self.state.borrow_mut().clients.insert(session, client);
        let io = Io::new(engine);
        match version {
            // socket.io 2.x clients are in `/` from the start (they send no CONNECT for it).
            Version::V4 => self.connect(&io, session, "/", serde_json::json!({})),
            Version::V5 => self.arm_connect_timeout(&io, session, request.fd),
        }
    }

    fn on_message(&self, engine: Engine<'_, Self>, session: SessionKey, data: EngineData<'_>) {
        let decoded = {
            let mut state = self.state.borrow_mut();
            let Some(client) = state.clients.get_mut(&session) else {
                return;
            };
            match data {
                EngineData::Text(t) => client.push_text(t),
                EngineData::Binary(b) => client.push_binary(b),
            }
        };
        match decoded {
            Ok(Some(message)) => self.dispatch(&Io::new(engine), session, message),
            Ok(None) => {}
            Err(e) => {
                log::info!("socket.io: session {}: {e}; closing", session.0);
                engine.close(session, DisconnectReason::ParseError);
            }
        }
    }

    fn on_upgrade(&self, _engine: Engine<'_, Self>, session: SessionKey, conn: ConnId) {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        let Some(c) = state.clients.get_mut(&session) else {
            return;
        };
        c.fd = Some(conn.fd);
        for &(_, k) in &c.sockets {
            if let Some(s) = state.sockets.get_mut(k as usize) {
                s.fd = Some(conn.fd);
            }
        }
    }

    fn on_close(&self, engine: Engine<'_, Self>, session: SessionKey, reason: DisconnectReason) {
        let Some(client) = self.state.borrow_mut().clients.remove(&session) else {
            return;
        };
        let io = Io::new(engine);
        for (_, key) in client.sockets {
            self.remove_socket(&io, key, reason.as_str());
        }
    }

    fn on_hand_off(&self, engine: Engine<'_, Self>, session: SessionKey) -> Option<Vec<u8>> {
        self.hand_off_client(engine, session)
    }

    fn on_adopt(&self, engine: Engine<'_, Self>, session: SessionKey, state: &[u8]) {
        self.adopt_client(engine, session, state);
    }

    fn on_worker_start(&self, engine: Engine<'_, Self>) {
        self.adapter.start(&Io::new(engine));
    }

    fn on_worker_stop(&self, engine: Engine<'_, Self>) {
        self.adapter.stop(&Io::new(engine));
    }

    fn on_peer_message(&self, engine: Engine<'_, Self>, _from: usize, channel: u16, data: &[u8]) {
        if channel == SOCKETIO_CHANNEL {
            if let Some(msg) = ClusterMsg::decode(data) {
                self.receive_cluster(&Io::new(engine), msg);
            }
        }
    }
}

impl SocketIo {
    /// Closes a client that joined no namespace within `connect_timeout`.
    fn arm_connect_timeout(&self, io: &Io<'_>, session: SessionKey, fd: Fd) {
        io.after(self.config.connect_timeout, move |io| {
            let idle = io
                .sio()
                .state
                .borrow()
                .clients
                .get(&session)
                .is_some_and(|c| {
                    c.origin_fd == fd && c.sockets.is_empty() && c.pending_connects == 0
                });
            if idle {
                log::debug!(
                    "socket.io: session {} joined no namespace in time",
                    session.0
                );
                io.engine.close(session, DisconnectReason::ForcedClose);
            }
        });
    }
}
