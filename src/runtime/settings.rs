//! Server settings, named after Swoole's `$server->set([...])` keys.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of a [`Server`](crate::Server). Start from `Settings::default()` and change the
/// fields you need, as with Swoole's `$server->set([...])`.
///
/// ```
/// use prefork_ws::Settings;
/// let s = Settings { worker_num: 2, websocket_compression: true, ..Settings::default() };
/// assert_eq!(s.package_max_length, 2 * 1024 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct Settings {
    /// Number of worker processes (default: CPU count).
    pub worker_num: usize,
    /// Most connections open on the whole server; 0 (the default) means as many as the file
    /// descriptor limit allows, like Swoole's default of `ulimit -n`. The soft `RLIMIT_NOFILE`
    /// is raised to the hard limit at start; if that still cannot hold an explicit `max_conn`,
    /// start-up says so loudly in the log and states the real capacity.
    pub max_conn: usize,
    /// `listen(2)` backlog.
    pub backlog: i32,
    /// Largest message accepted (after reassembly and inflation) and largest push; larger
    /// incoming messages close the connection with 1009.
    pub package_max_length: usize,
    /// Most bytes queued for one client; a client that does not read is closed when a write
    /// would exceed it.
    pub buffer_output_size: usize,
    /// Subprotocols the server speaks (`websocket_subprotocol`, comma-separated in Swoole); the
    /// first one the client offered is echoed in `Sec-WebSocket-Protocol`.
    pub websocket_subprotocol: Option<String>,
    /// Deliver close frames to `on_message` (code and reason in the frame).
    pub open_websocket_close_frame: bool,
    /// Deliver ping frames to `on_message` instead of answering them automatically.
    pub open_websocket_ping_frame: bool,
    /// Deliver pong frames to `on_message`.
    pub open_websocket_pong_frame: bool,
    /// Negotiate permessage-deflate (RFC 7692).
    pub websocket_compression: bool,
    /// Seconds between idle checks (`heartbeat_check_interval`); `None` disables them.
    pub heartbeat_check_interval: Option<u64>,
    /// Seconds without receiving after which a connection is closed (`heartbeat_idle_time`,
    /// default twice the check interval).
    pub heartbeat_idle_time: Option<u64>,
    /// Beyond Swoole: send a ping to every WebSocket client at this interval, so that proxies
    /// keep idle clients and dead peers are found.
    pub websocket_ping_interval: Option<Duration>,
    /// A connection that has not completed its HTTP request/handshake by then is closed
    /// (slowloris protection).
    pub handshake_timeout: Duration,
    /// Largest HTTP request header block; larger gets `431`.
    pub max_header_size: usize,
    /// How long shutdown and reload wait for clients to finish their closing handshakes.
    pub max_wait_time: Duration,
    /// Written with the master's pid at start, removed at exit.
    pub pid_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            worker_num: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_conn: 0,
            backlog: 1024,
            package_max_length: 2 * 1024 * 1024,
            buffer_output_size: 2 * 1024 * 1024,
            websocket_subprotocol: None,
            open_websocket_close_frame: false,
            open_websocket_ping_frame: false,
            open_websocket_pong_frame: false,
            websocket_compression: false,
            heartbeat_check_interval: None,
            heartbeat_idle_time: None,
            websocket_ping_interval: None,
            handshake_timeout: Duration::from_secs(10),
            max_header_size: 8 * 1024,
            max_wait_time: Duration::from_secs(3),
            pid_file: None,
        }
    }
}

impl Settings {
    /// The subprotocol list as given in `websocket_subprotocol`.
    pub(crate) fn subprotocols(&self) -> Vec<String> {
        self.websocket_subprotocol
            .as_deref()
            .map(|s| {
                s.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Idle time after which the heartbeat check closes a connection.
    pub(crate) fn idle_limit(&self) -> Option<Duration> {
        let check = self.heartbeat_check_interval?;
        Some(Duration::from_secs(
            self.heartbeat_idle_time.unwrap_or(check * 2),
        ))
    }
}

impl Settings {
    /// Applies `key = value` lines (Swoole's setting names; `#` starts a comment) on top of
    /// these settings. Durations take `_ms` keys: `websocket_ping_interval_ms`,
    /// `handshake_timeout_ms`, `max_wait_time_ms`.
    ///
    /// ```
    /// let mut s = prefork_ws::Settings::default();
    /// s.apply_config("worker_num = 3\nwebsocket_compression = true # on").unwrap();
    /// assert_eq!((s.worker_num, s.websocket_compression), (3, true));
    /// assert!(s.apply_config("no_such_key = 1").is_err());
    /// ```
    pub fn apply_config(&mut self, text: &str) -> Result<(), String> {
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
                .ok_or_else(|| format!("line {}: expected key = value", n + 1))?;
            let bad = |what: &str| format!("line {}: {k}: expected {what}, got {v:?}", n + 1);
            let int = || v.parse::<u64>().map_err(|_| bad("a number"));
            let flag = || match v {
                "true" | "1" | "on" | "yes" => Ok(true),
                "false" | "0" | "off" | "no" => Ok(false),
                _ => Err(bad("true or false")),
            };
            match k {
                "worker_num" => self.worker_num = int()? as usize,
                "max_conn" => self.max_conn = int()? as usize,
                "backlog" => self.backlog = int()?.min(i32::MAX as u64) as i32,
                "package_max_length" => self.package_max_length = int()? as usize,
                "buffer_output_size" => self.buffer_output_size = int()? as usize,
                "websocket_subprotocol" => {
                    self.websocket_subprotocol = (!v.is_empty()).then(|| v.to_string())
                }
                "open_websocket_close_frame" => self.open_websocket_close_frame = flag()?,
                "open_websocket_ping_frame" => self.open_websocket_ping_frame = flag()?,
                "open_websocket_pong_frame" => self.open_websocket_pong_frame = flag()?,
                "websocket_compression" => self.websocket_compression = flag()?,
                "heartbeat_check_interval" => self.heartbeat_check_interval = Some(int()?),
                "heartbeat_idle_time" => self.heartbeat_idle_time = Some(int()?),
                "websocket_ping_interval_ms" => {
                    self.websocket_ping_interval = Some(Duration::from_millis(int()?))
                }
                "handshake_timeout_ms" => self.handshake_timeout = Duration::from_millis(int()?),
                "max_header_size" => self.max_header_size = int()? as usize,
                "max_wait_time_ms" => self.max_wait_time = Duration::from_millis(int()?),
                "pid_file" => self.pid_file = Some(PathBuf::from(v)),
                _ => return Err(format!("line {}: unknown setting {k}", n + 1)),
            }
        }
        Ok(())
    }

    /// Reads a configuration file (see [`apply_config`](Settings::apply_config)) on top of
    /// `base`.
    pub fn from_file(base: &Settings, path: &std::path::Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut s = base.clone();
        s.apply_config(&text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(s)
    }

    /// Settings that cannot change while the server runs are taken from `running`.
    pub(crate) fn keep_fixed(&mut self, running: &Settings) -> Vec<&'static str> {
        let mut kept = Vec::new();
        if self.worker_num != running.worker_num {
            kept.push("worker_num");
            self.worker_num = running.worker_num;
        }
        if self.max_conn != running.max_conn {
            kept.push("max_conn");
            self.max_conn = running.max_conn;
        }
        if self.backlog != running.backlog {
            kept.push("backlog");
            self.backlog = running.backlog;
        }
        if self.pid_file != running.pid_file {
            kept.push("pid_file");
            self.pid_file.clone_from(&running.pid_file);
        }
        kept
    }
}
