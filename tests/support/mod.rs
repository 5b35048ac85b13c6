//! Shared helpers of the integration tests: start a real server process (master + workers)
//! on an ephemeral port and kill its whole process group when the test ends, pass or fail.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

#[cfg(feature = "redis")]
pub mod cluster;
pub mod pki;
pub mod sio;
pub mod tls;

pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    dir.join("examples").join(name)
}

pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join(name)
}

/// A running server; dropping it kills the process group.
pub struct ServerProc {
    pub child: Child,
    pub ports: Vec<u16>,
    pub out: Arc<Mutex<Vec<String>>>,
    log: Option<PathBuf>,
}

impl ServerProc {
    pub fn port(&self) -> u16 {
        self.ports[0]
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Lines the server printed on stdout so far.
    pub fn lines(&self) -> Vec<String> {
        self.out.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits until a stdout line satisfies `pred`.
    pub fn wait_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                return Some(l);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Worker pids (children of the master), from /proc.
    pub fn worker_pids(&self) -> Vec<i32> {
        children_of(self.pid())
    }

    /// Waits until every worker pid in `before` has been replaced (a reload finished).
    pub fn wait_workers_replaced(&self, before: &[i32], workers: usize) {
        let t = Instant::now();
        loop {
            let now = self.worker_pids();
            if now.len() == workers && now.iter().all(|p| !before.contains(p)) {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "workers {before:?} not replaced: {now:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on a pid we started.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for the master to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        // SAFETY: the server was started in its own process group (pgid = its pid).
        unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
        let _ = self.child.wait();
        if let Some(p) = &self.log {
            let _ = std::fs::remove_file(p);
        }
    }
}

pub fn children_of(pid: i32) -> Vec<i32> {
    let mut v = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                v.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
    }
    v
}

/// Starts `target/<profile>/examples/<name>` on 127.0.0.1, port 0, with `args`.
pub fn start(name: &str, args: &[&str]) -> ServerProc {
    start_path(example_path(name), args, 1)
}

/// Like `start`, with the server's log (stderr, level info) captured for `stderr_text`.
pub fn start_logged(name: &str, args: &[&str]) -> ServerProc {
    start_logged_with(name, args, 1)
}

/// Like `start_logged` for a server with `listeners` ports.
pub fn start_logged_with(name: &str, args: &[&str], listeners: usize) -> ServerProc {
    start_logged_level(name, args, listeners, "info")
}

/// Like `start_logged_with`, with `RUST_LOG` set to `level`.
pub fn start_logged_level(name: &str, args: &[&str], listeners: usize, level: &str) -> ServerProc {
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "prefork-ws-test-log-{}-{name}-{}-{seq}",
        std::process::id(),
        args.len()
    ));
    let file = std::fs::File::create(&path).expect("log file");
    let mut p = start_inner(example_path(name), args, listeners, Some(file), level);
    p.log = Some(path);
    p
}

impl ServerProc {
    /// The captured log (only with `start_logged`).
    pub fn stderr_text(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }
}

/// Like `start` for a server with `listeners` ports (one "listening at" line each).
pub fn start_path(path: PathBuf, args: &[&str], listeners: usize) -> ServerProc {
    start_inner(path, args, listeners, None, "warn")
}

fn start_inner(
    path: PathBuf,
    args: &[&str],
    listeners: usize,
    log: Option<std::fs::File>,
    level: &str,
) -> ServerProc {
    let mut cmd = Command::new(&path);
    cmd.args(["--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .process_group(0);
    // If the test process dies without running its drop guards (killed by a timeout), the
    // server goes with it.
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    match log {
        Some(f) => {
            cmd.stderr(f).env("RUST_LOG", level);
        }
        None => {
            cmd.stderr(Stdio::inherit());
            if std::env::var_os("RUST_LOG").is_none() {
                cmd.env("RUST_LOG", level);
            }
        }
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
    let stdout = child.stdout.take().expect("stdout");
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(mut v) = sink.lock() {
                v.push(line);
            }
        }
    });
    let mut p = ServerProc {
        child,
        ports: Vec::new(),
        out,
        log: None,
    };
    let start = Instant::now();
    while p.ports.len() < listeners {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server did not start: {:?}",
            p.lines()
        );
        if let Ok(Some(st)) = p.child.try_wait() {
            panic!("server exited at start with {st}: {:?}", p.lines());
        }
        p.ports = p
            .lines()
            .iter()
            .filter_map(|l| l.split("listening at ").nth(1))
            .filter_map(|a| a.rsplit(':').next()?.trim().parse().ok())
            .collect();
        std::thread::sleep(Duration::from_millis(10));
    }
    // Workers announce themselves once their reactors run.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if connect_ok(p.port()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

fn connect_ok(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

pub type Ws = WebSocket<TcpStream>;

/// Opens a WebSocket to `path` and returns it with the response.
pub fn ws_connect(port: u16, path: &str) -> Ws {
    ws_connect_with(port, path, &[])
        .expect("websocket handshake")
        .0
}

pub fn ws_connect_with(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws, tungstenite::handshake::client::Response), String> {
    use tungstenite::client::IntoClientRequest;
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut req = format!("ws://127.0.0.1:{port}{path}")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    for (k, v) in headers {
        req.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?,
            v.parse().map_err(|_| "bad header".to_string())?,
        );
    }
    tungstenite::client(req, stream).map_err(|e| e.to_string())
}

/// Next data message as text (skipping pings/pongs).
pub fn recv_text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("read message") {
            Message::Text(t) => return t.to_string(),
            Message::Binary(b) => return format!("<binary:{}>", String::from_utf8_lossy(&b)),
            Message::Close(c) => panic!("closed unexpectedly: {c:?}"),
            _ => continue,
        }
    }
}

pub fn send_text(ws: &mut Ws, t: &str) {
    ws.send(Message::text(t)).expect("send");
}

/// Sends a command and returns the reply.
pub fn call(ws: &mut Ws, t: &str) -> String {
    send_text(ws, t);
    recv_text(ws)
}

/// Reads until the server's close frame; returns its code and reason.
pub fn recv_close(ws: &mut Ws) -> Option<(u16, String)> {
    loop {
        match ws.read() {
            Ok(Message::Close(Some(CloseFrame { code, reason }))) => {
                return Some((u16::from(code), reason.to_string()))
            }
            Ok(Message::Close(None)) => return Some((1005, String::new())),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

pub fn close_code(code: u16) -> CloseCode {
    CloseCode::from(code)
}

/// Parses `fd=.. worker=..` from a `whoami` reply.
pub fn whoami(ws: &mut Ws) -> (u64, usize) {
    let r = call(ws, "whoami");
    let mut fd = 0;
    let mut worker = 0;
    for kv in r.split_whitespace() {
        if let Some(v) = kv.strip_prefix("fd=") {
            fd = v.parse().expect("fd");
        }
        if let Some(v) = kv.strip_prefix("worker=") {
            worker = v.parse().expect("worker");
        }
    }
    (fd, worker)
}

/// Connects clients until there is one on worker 0 and one on worker 1 (testbed: each client
/// is welcomed first).
pub fn clients_on_two_workers(port: u16) -> ((Ws, u64), (Ws, u64)) {
    clients_on_two_workers_with(port, |ws| {
        let _welcome = recv_text(ws);
        whoami(ws)
    })
}

/// Like `clients_on_two_workers`, with `whoami` answering (fd, worker id) for a new client.
pub fn clients_on_two_workers_with(
    port: u16,
    whoami: impl Fn(&mut Ws) -> (u64, usize),
) -> ((Ws, u64), (Ws, u64)) {
    let mut on0 = None;
    let mut on1 = None;
    for _ in 0..200 {
        let mut ws = ws_connect(port, "/");
        let (fd, w) = whoami(&mut ws);
        match w {
            0 if on0.is_none() => on0 = Some((ws, fd)),
            1 if on1.is_none() => on1 = Some((ws, fd)),
            _ => {}
        }
        if on0.is_some() && on1.is_some() {
            break;
        }
    }
    (
        on0.expect("a client on worker 0"),
        on1.expect("a client on worker 1"),
    )
}

/// Raw HTTP exchange: sends `req`, returns everything read until EOF or timeout.
pub fn raw_http(port: u16, req: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(req).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// VmRSS of a process in KiB.
pub fn rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
