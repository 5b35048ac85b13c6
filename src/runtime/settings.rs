//! Server settings, named after Swoole's `$server->set([...])` keys.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

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
    /// A rolling reload (SIGUSR1) and a binary upgrade hand established connections to the
    /// new workers instead of closing them with 1001 (default `true`; see the README's
    /// "Reload and upgrade without dropping anyone").
    pub reload_keeps_connections: bool,
    /// Written with the master's pid at start, removed at exit.
    pub pid_file: Option<PathBuf>,
    /// Most bytes a worker keeps queued toward one other worker whose channel is full (Swoole's
    /// `pipe_buffer_size`; beside `buffer_output_size`, which bounds one client). Past it,
    /// `push` / `disconnect` to that worker's fds return `false` and broadcasts skip that
    /// worker (counted as `unreachable` and in the worker's `ipc_skipped`); what is already
    /// queued for others is untouched. A worker's worst case is `(worker_num × 2 − 1) ×
    /// (pipe_buffer_size + package_max_length)` (every region a peer, one message over the
    /// cap each). Default 8 MiB: seconds of a busy peer's traffic, on top of the 4 MiB the
    /// kernel socket itself buffers.
    pub pipe_buffer_size: usize,
    /// Most jobs waiting from other threads of a worker (`ServerHandle`, `WorkerHandle`);
    /// past it, their calls return `false`. Each job holds what it carries (a push: its data).
    pub handle_queue_size: usize,
    /// A worker whose event loop makes no progress for this long is replaced (the master
    /// starts a new one, then kills the hung one); zero turns the watchdog off. A stopped
    /// worker (SIGSTOP, a debugger) is reported, not replaced.
    pub worker_hang_timeout: Duration,
    /// Also listen on this port (the first listener's host) for `GET /metrics`: every
    /// worker's counters in the Prometheus / OpenMetrics text format, answered by the
    /// runtime itself (no handler involved). Off by default.
    pub metrics_port: Option<u16>,
    /// PEM file with the certificate chain, server certificate first (`ssl_cert_file`). With
    /// `ssl_key_file`, the WebSocket listeners that have no files of their own (see
    /// [`ListenSpec`](crate::runtime::ListenSpec)) speak TLS: `wss://` and `https://` on the
    /// same port. Loaded at start (a bad file stops the start, naming the file) and again on
    /// every reload (`SIGUSR1`), so renewed certificates are picked up without a restart.
    pub ssl_cert_file: Option<PathBuf>,
    /// PEM file with the private key of `ssl_cert_file` (`ssl_key_file`): PKCS#8, PKCS#1
    /// (RSA) or SEC1 (EC).
    pub ssl_key_file: Option<PathBuf>,
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
            reload_keeps_connections: true,
            pid_file: None,
            pipe_buffer_size: 8 * 1024 * 1024,
            handle_queue_size: 65_536,
            worker_hang_timeout: Duration::from_secs(5),
            metrics_port: None,
            ssl_cert_file: None,
            ssl_key_file: None,
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
    /// Applies a TOML configuration (Swoole's setting names as top-level keys; `#` starts a
    /// comment; strings quoted, booleans `true`/`false`) on top of these settings. Durations
    /// take `_ms` keys: `websocket_ping_interval_ms`, `handshake_timeout_ms`,
    /// `max_wait_time_ms`. An unknown key or a bad value fails with the line and the key.
    ///
    /// ```
    /// let mut s = prefork_ws::Settings::default();
    /// s.apply_config("worker_num = 3\nwebsocket_compression = true # on\nwebsocket_subprotocol = \"chat\"")
    ///     .unwrap();
    /// assert_eq!((s.worker_num, s.websocket_compression), (3, true));
    /// assert_eq!(s.websocket_subprotocol.as_deref(), Some("chat"));
    /// let e = s.apply_config("worker_num = 2\nno_such_key = 1").unwrap_err();
    /// assert!(e.contains("line 2") && e.contains("no_such_key"), "{e}");
    /// ```
    pub fn apply_config(&mut self, text: &str) -> Result<(), String> {
        let c: ConfigFile = toml::from_str(text).map_err(|e| config_error(text, &e))?;
        let ms = Duration::from_millis;
        set(&mut self.worker_num, c.worker_num);
        set(&mut self.max_conn, c.max_conn);
        set(
            &mut self.backlog,
            c.backlog.map(|b| b.min(i32::MAX as u64) as i32),
        );
        set(&mut self.package_max_length, c.package_max_length);
        set(&mut self.buffer_output_size, c.buffer_output_size);
        // An empty list means none, as before.
        set(
            &mut self.websocket_subprotocol,
            c.websocket_subprotocol
                .map(|v| (!v.is_empty()).then_some(v)),
        );
        set(
            &mut self.open_websocket_close_frame,
            c.open_websocket_close_frame,
        );
        set(
            &mut self.open_websocket_ping_frame,
            c.open_websocket_ping_frame,
        );
        set(
            &mut self.open_websocket_pong_frame,
            c.open_websocket_pong_frame,
        );
        set(&mut self.websocket_compression, c.websocket_compression);
        set(
            &mut self.heartbeat_check_interval,
            c.heartbeat_check_interval.map(Some),
        );
        set(
            &mut self.heartbeat_idle_time,
            c.heartbeat_idle_time.map(Some),
        );
        set(
            &mut self.websocket_ping_interval,
            c.websocket_ping_interval_ms.map(|v| Some(ms(v))),
        );
        set(&mut self.handshake_timeout, c.handshake_timeout_ms.map(ms));
        set(&mut self.max_header_size, c.max_header_size);
        set(&mut self.max_wait_time, c.max_wait_time_ms.map(ms));
        set(
            &mut self.reload_keeps_connections,
            c.reload_keeps_connections,
        );
        set(&mut self.pid_file, c.pid_file.map(Some));
        set(&mut self.pipe_buffer_size, c.pipe_buffer_size);
        set(&mut self.handle_queue_size, c.handle_queue_size);
        set(&mut self.metrics_port, c.metrics_port.map(Some));
        set(
            &mut self.worker_hang_timeout,
            c.worker_hang_timeout_ms.map(ms),
        );
        set(&mut self.ssl_cert_file, c.ssl_cert_file.map(Some));
        set(&mut self.ssl_key_file, c.ssl_key_file.map(Some));
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
        if self.metrics_port != running.metrics_port {
            kept.push("metrics_port");
            self.metrics_port = running.metrics_port;
        }
        if self.pid_file != running.pid_file {
            kept.push("pid_file");
            self.pid_file.clone_from(&running.pid_file);
        }
        kept
    }
}

/// Overwrites `field` with `value` if there is one.
fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// The keys a configuration file may set: every field optional, applied on top of the base
/// settings; any other key is an error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    worker_num: Option<usize>,
    max_conn: Option<usize>,
    backlog: Option<u64>,
    package_max_length: Option<usize>,
    buffer_output_size: Option<usize>,
    websocket_subprotocol: Option<String>,
    open_websocket_close_frame: Option<bool>,
    open_websocket_ping_frame: Option<bool>,
    open_websocket_pong_frame: Option<bool>,
    websocket_compression: Option<bool>,
    heartbeat_check_interval: Option<u64>,
    heartbeat_idle_time: Option<u64>,
    websocket_ping_interval_ms: Option<u64>,
    handshake_timeout_ms: Option<u64>,
    max_header_size: Option<usize>,
    max_wait_time_ms: Option<u64>,
    reload_keeps_connections: Option<bool>,
    pid_file: Option<PathBuf>,
    pipe_buffer_size: Option<usize>,
    handle_queue_size: Option<usize>,
    worker_hang_timeout_ms: Option<u64>,
    metrics_port: Option<u16>,
    ssl_cert_file: Option<PathBuf>,
    ssl_key_file: Option<PathBuf>,
}

/// `line N: KEY: message` for a TOML error: toml points at the offending key or value; the
/// key is the text before `=` on that line.
fn config_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    match line.split_once('=').map(|(k, _)| k.trim()) {
        Some(key) if !key.is_empty() && !key.starts_with('#') => {
            format!("line {line_no}: {key}: {message}")
        }
        _ => format!("line {line_no}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str) -> Result<Settings, String> {
        let mut s = Settings::default();
        s.apply_config(text).map(|()| s)
    }

    #[test]
    fn every_key_is_applied_on_top_of_the_base() {
        let s = apply(
            r#"
# every key
worker_num = 3
max_conn = 100
backlog = 99999999999
package_max_length = 1024
buffer_output_size = 2048
websocket_subprotocol = "chat,superchat"
open_websocket_close_frame = true
open_websocket_ping_frame = true
open_websocket_pong_frame = true
websocket_compression = true # inline comment
heartbeat_check_interval = 5
heartbeat_idle_time = 7
websocket_ping_interval_ms = 250
handshake_timeout_ms = 500
max_header_size = 4096
max_wait_time_ms = 1500
pid_file = "/tmp/x.pid"
ssl_cert_file = "/etc/x/cert.pem"
ssl_key_file = "/etc/x/key.pem"
"#,
        )
        .unwrap();
        assert_eq!((s.worker_num, s.max_conn, s.backlog), (3, 100, i32::MAX));
        assert_eq!((s.package_max_length, s.buffer_output_size), (1024, 2048));
        assert_eq!(s.subprotocols(), ["chat", "superchat"]);
        assert!(s.open_websocket_close_frame && s.open_websocket_ping_frame);
        assert!(s.open_websocket_pong_frame && s.websocket_compression);
        assert_eq!(
            (s.heartbeat_check_interval, s.heartbeat_idle_time),
            (Some(5), Some(7))
        );
        assert_eq!(s.websocket_ping_interval, Some(Duration::from_millis(250)));
        assert_eq!(s.handshake_timeout, Duration::from_millis(500));
        assert_eq!(s.max_header_size, 4096);
        assert_eq!(s.max_wait_time, Duration::from_millis(1500));
        assert_eq!(s.pid_file, Some(PathBuf::from("/tmp/x.pid")));
        assert_eq!(s.ssl_cert_file, Some(PathBuf::from("/etc/x/cert.pem")));
        assert_eq!(s.ssl_key_file, Some(PathBuf::from("/etc/x/key.pem")));

        // Keys not in the file keep the base's values.
        let mut t = s.clone();
        t.apply_config("worker_num = 1").unwrap();
        assert_eq!((t.worker_num, t.max_conn), (1, 100));
        t.apply_config("websocket_subprotocol = \"\"").unwrap();
        assert_eq!(t.websocket_subprotocol, None);
    }

    #[test]
    fn an_unknown_key_names_the_key_and_the_line() {
        let e = apply("worker_num = 2\n\nno_such_key = 1\n").unwrap_err();
        assert!(e.starts_with("line 3: no_such_key: "), "{e}");
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn a_bad_value_names_the_key_and_the_line() {
        for (text, key, line) in [
            ("worker_num = \"two\"", "worker_num", 1),
            ("# c\nmax_conn = -1", "max_conn", 2),
            ("websocket_compression = 1", "websocket_compression", 1),
            (
                "backlog = 1\nwebsocket_compression = yes",
                "websocket_compression",
                2,
            ),
            ("websocket_subprotocol = chat", "websocket_subprotocol", 1),
            ("pid_file = 3", "pid_file", 1),
        ] {
            let e = apply(text).unwrap_err();
            assert!(
                e.starts_with(&format!("line {line}: {key}: ")),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn from_file_names_the_file() {
        let path = std::env::temp_dir().join(format!("prefork-ws-settings-{}", std::process::id()));
        std::fs::write(&path, "worker_num = 4\nbogus = true\n").unwrap();
        let e = Settings::from_file(&Settings::default(), &path).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(
            e.starts_with(&format!("{}: line 2: bogus: ", path.display())),
            "{e}"
        );
        assert!(
            Settings::from_file(&Settings::default(), &path).is_err(),
            "missing file"
        );
    }
}
