//! What the cluster tests run besides our servers: a real `redis-server` on an ephemeral
//! port, a real nginx, a Node.js socket.io node — each killed by pid (its process group)
//! when the guard drops, pass or fail.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn own_group(cmd: &mut Command) {
    cmd.process_group(0);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

fn kill_group(child: &mut Child) {
    // SAFETY: kill(2) on the process group of a child we started in its own group.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}

/// A redis-server; dropping it kills it.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    /// The data directory when the server persists (append-only file, fsync always).
    dir: Option<PathBuf>,
}

impl Redis {
    /// On a fresh port.
    pub fn start() -> Redis {
        Redis::start_on(free_port())
    }

    /// On `port` (a restart after `kill9`).
    pub fn start_on(port: u16) -> Redis {
        let mut r = Redis {
            port,
            child: None,
            dir: None,
        };
        r.spawn();
        r
    }

    /// On a fresh port, keeping its data in an append-only file across restarts.
    pub fn start_persistent() -> Redis {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("prefork-ws-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut r = Redis {
            port,
            child: None,
            dir: Some(dir),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"]);
        match &self.dir {
            Some(d) => cmd.arg("--dir").arg(d).args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ]),
            None => cmd.args(["--save", "", "--appendonly", "no"]),
        };
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        own_group(&mut cmd);
        let child = cmd
            .spawn()
            .expect("redis-server (Debian package redis-server) must be installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cli(&["PING"]) != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `kill -9` of the server.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(&mut c);
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// A redis-cli command's output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    /// Every key.
    pub fn keys(&self) -> Vec<String> {
        let out = self.cli(&["--scan"]);
        out.lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Another process of a test (nginx, the Node.js node); dropping it kills its group.
pub struct Proc {
    child: Child,
    pub out: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for a stdout line containing `text`.
    pub fn wait_line(&self, text: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let found = self
                .out
                .lock()
                .ok()?
                .iter()
                .find(|l| l.contains(text))
                .cloned();
            if found.is_some() {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

fn spawn(mut cmd: Command) -> Proc {
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    own_group(&mut cmd);
    let mut child = cmd.spawn().expect("spawn");
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
    Proc { child, out }
}

pub fn cluster_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster")
}

/// The Node.js socket.io node (`tests/cluster/node_node.js`) on a fresh port.
pub fn node_node(redis_url: &str) -> (Proc, u16) {
    let dir = cluster_dir();
    assert!(
        dir.join("node_modules/@socket.io/redis-adapter").is_dir(),
        "run `npm ci` in tests/cluster first (socket.io 4.8, @socket.io/redis-adapter 8.3.0)"
    );
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .arg("node_node.js")
        .args(["--port", "0", "--redis", redis_url]);
    let p = spawn(cmd);
    let line = p
        .wait_line("listening at", Duration::from_secs(20))
        .expect("the Node.js node did not start");
    let port = line
        .rsplit(':')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .expect("port");
    (p, port)
}

/// nginx in front of `upstreams` with seed 001's configuration (ports adjusted), on a
/// fresh port.
pub fn nginx(upstreams: &[u16]) -> (Proc, u16) {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("prefork-ws-nginx-{}-{port}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs")).expect("nginx dir");
    let servers: String = upstreams
        .iter()
        .map(|p| format!("        server 127.0.0.1:{p};\n"))
        .collect();
    let seed = std::fs::read_to_string(cluster_dir().join("nginx_seed001.conf")).expect("conf");
    let conf = seed
        .replace(
            "        server ws1:9502;\n        server ws2:9502;\n",
            &servers,
        )
        .replace("listen 9502;", &format!("listen 127.0.0.1:{port};"));
    let full = format!(
        "worker_processes 1;\nerror_log {}/logs/error.log warn;\npid {}/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n{conf}\n}}\n",
        dir.display(),
        dir.display(),
        d = dir.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, full).expect("write nginx.conf");
    let mut cmd = Command::new("nginx");
    cmd.arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&path)
        .args(["-g", "daemon off;"]);
    let p = spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (p, port)
}
