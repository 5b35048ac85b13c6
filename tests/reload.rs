//! Rolling reloads and binary upgrades keep every established connection (issue 13): real
//! master, real workers, real clients on 127.0.0.1.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

/// A minimal non-blocking WebSocket client, so one thread can drive a thousand of them.
struct Client {
    s: TcpStream,
    fd: u64,
    inbuf: Vec<u8>,
    sent: u64,
    next: u64,
}

fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// One server frame from the front of `buf`: (opcode, payload, bytes used).
fn parse_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let (op, len7) = (buf[0] & 0x0f, (buf[1] & 0x7f) as usize);
    let (len, head) = match len7 {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        126 => return None,
        127 => panic!("no test message is that long"),
        n => (n, 2),
    };
    (buf.len() >= head + len).then(|| (op, buf[head..head + len].to_vec(), head + len))
}

impl Client {
    fn connect(port: u16) -> std::io::Result<Client> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )?;
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        let mut c = loop {
            let n = s.read(&mut b)?;
            if n == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            got.extend_from_slice(&b[..n]);
            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                assert!(got.starts_with(b"HTTP/1.1 101"), "upgrade refused");
                let inbuf = got[i + 4..].to_vec();
                break Client {
                    s,
                    fd: 0,
                    inbuf,
                    sent: 0,
                    next: 0,
                };
            }
        };
        // testbed greets with "welcome <fd>".
        let welcome = c.read_frame_blocking()?;
        c.fd = String::from_utf8_lossy(&welcome)
            .strip_prefix("welcome ")
            .and_then(|f| f.parse().ok())
            .expect("welcome names the fd");
        c.s.set_nonblocking(true)?;
        Ok(c)
    }

    fn read_frame_blocking(&mut self) -> std::io::Result<Vec<u8>> {
        let mut b = [0u8; 4096];
        loop {
            if let Some((_, p, used)) = parse_frame(&self.inbuf) {
                self.inbuf.drain(..used);
                return Ok(p);
            }
            let n = self.s.read(&mut b)?;
            if n == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            self.inbuf.extend_from_slice(&b[..n]);
        }
    }

    /// A blocking request/answer (the client must be idle: no numbered message in flight).
    fn call(&mut self, text: &str) -> String {
        self.s.set_nonblocking(false).unwrap();
        self.s.write_all(&masked(1, true, text.as_bytes())).unwrap();
        let r = self.read_frame_blocking().expect("an answer");
        self.s.set_nonblocking(true).unwrap();
        String::from_utf8_lossy(&r).into_owned()
    }

    fn send_next(&mut self) -> std::io::Result<()> {
        let msg = format!("n {} {}", self.fd, self.sent);
        self.s.write_all(&masked(1, true, msg.as_bytes()))?;
        self.sent += 1;
        Ok(())
    }

    /// Reads what arrived; every echo must be the next number of this client. Err on a
    /// close, an EOF or an echo out of order.
    fn poll(&mut self) -> Result<(), String> {
        let mut b = [0u8; 16384];
        loop {
            match self.s.read(&mut b) {
                Ok(0) => return Err(format!("fd {}: connection closed", self.fd)),
                Ok(n) => self.inbuf.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("fd {}: {e}", self.fd)),
            }
        }
        while let Some((op, payload, used)) = parse_frame(&self.inbuf) {
            self.inbuf.drain(..used);
            if op == 8 {
                return Err(format!("fd {}: close frame {payload:?}", self.fd));
            }
            let want = format!("n {} {}", self.fd, self.next);
            if payload != want.as_bytes() {
                return Err(format!(
                    "fd {}: expected {want:?}, got {:?}",
                    self.fd,
                    String::from_utf8_lossy(&payload)
                ));
            }
            self.next += 1;
        }
        Ok(())
    }
}

/// `info` fields that must not change when a connection moves (all but worker and
/// last_time).
fn fixed_info(info: &str) -> String {
    info.split_whitespace()
        .filter(|kv| !kv.starts_with("worker=") && !kv.starts_with("last_time="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Connects continuously until stopped; returns (succeeded, failed).
fn churn(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let (mut ok, mut failed) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            match ws_connect_with(port, "/", &[]) {
                Ok((mut ws, _)) => {
                    ok += 1;
                    let _ = ws.close(None);
                }
                Err(e) => {
                    eprintln!("connect failed: {e}");
                    failed += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (ok, failed)
    })
}

/// Drives `clients` (one numbered message each per `period`) until `stop`; panics on the
/// first lost, repeated, reordered or closed message.
fn drive(clients: &mut [Client], period: Duration, stop: &AtomicBool, sent_total: &AtomicUsize) {
    let mut next_tick = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_tick {
            next_tick += period;
            for c in clients.iter_mut() {
                // Bounded in flight: a lagging (debug-built) server is not flooded.
                if c.sent - c.next < 20 {
                    c.send_next().expect("send");
                    sent_total.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        for c in clients.iter_mut() {
            if let Err(e) = c.poll() {
                panic!("{e}");
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // Everything sent is answered.
    let deadline = Instant::now() + Duration::from_secs(30);
    while clients.iter().any(|c| c.next < c.sent) {
        assert!(Instant::now() < deadline, "echoes missing at the end");
        for c in clients.iter_mut() {
            if let Err(e) = c.poll() {
                panic!("{e}");
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pid_file(tag: &str) -> String {
    std::env::temp_dir()
        .join(format!(
            "prefork-ws-reload-{tag}-{}.pid",
            std::process::id()
        ))
        .display()
        .to_string()
}

fn ctl(cmd: &str, pid_file: &str) -> (bool, String) {
    let out = std::process::Command::new(bin_path("prefork-ctl"))
        .args([cmd, "--pid-file", pid_file, "--timeout", "30"])
        .output()
        .expect("prefork-ctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn reloads_and_an_upgrade_under_load_keep_every_connection() {
    let n = env_or("RELOAD_TEST_CLIENTS", 1000) as usize;
    let period = Duration::from_millis(env_or("RELOAD_TEST_PERIOD_MS", 10));
    let pf = pid_file("load");
    let srv = start_logged(
        "testbed",
        &["--workers", "2", "--pid-file", &pf, "--max-wait-ms", "5000"],
    );
    let port = srv.port();
    let mut clients: Vec<Client> = (0..n)
        .map(|_| Client::connect(port).expect("connect"))
        .collect();
    let probes: Vec<usize> = (0..n).step_by((n / 10).max(1)).collect();
    let info_before: Vec<String> = probes
        .iter()
        .map(|&i| {
            let fd = clients[i].fd;
            clients[i].call(&format!("info {fd}"))
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let churner = churn(port, stop.clone());
    let (stop2, sent2) = (stop.clone(), sent.clone());
    let driver = std::thread::spawn(move || {
        drive(&mut clients, period, &stop2, &sent2);
        clients
    });
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        let before = srv.worker_pids();
        srv.signal(libc::SIGUSR1);
        srv.wait_workers_replaced(&before, 2);
        std::thread::sleep(Duration::from_millis(300));
    }
    let (ok, text) = ctl("upgrade", &pf);
    assert!(ok, "upgrade: {text}");
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    let mut clients = driver
        .join()
        .expect("no message lost, repeated, reordered or closed");
    let (connects, failed) = churner.join().expect("churn");
    eprintln!(
        "{} clients, {} numbered messages echoed in order across 5 reloads and an upgrade; \
         {connects} connects meanwhile, {failed} failed",
        clients.len(),
        sent.load(Ordering::Relaxed)
    );
    assert_eq!(failed, 0, "failed connects");
    assert!(connects > 50, "the churn ran ({connects})");
    assert!(sent.load(Ordering::Relaxed) > n * 10, "messages flowed");
    for (k, &i) in probes.iter().enumerate() {
        let fd = clients[i].fd;
        let after = clients[i].call(&format!("info {fd}"));
        if fixed_info(&after) != fixed_info(&info_before[k]) {
            let log = srv.stderr_text();
            let notable: Vec<&str> = log
                .lines()
                .filter(|l| {
                    l.contains("WARN")
                        || l.contains("ERROR")
                        || l.contains("took over")
                        || l.contains("accepts (")
                        || l.contains("hands its")
                })
                .collect();
            panic!(
                "connection_info of fd {fd} changed: {after:?} (was {:?})\n{}",
                info_before[k],
                notable.join("\n")
            );
        }
    }
    let log = srv.stderr_text();
    assert!(log.contains("upgrade: took over"), "{log}");
    assert!(!log.contains("could not be handed over"), "{log}");
    let _ = std::fs::remove_file(&pf);
}

#[test]
fn a_fragmented_message_and_a_split_frame_cross_the_hand_off() {
    let srv = start("testbed", &["--workers", "1"]);
    let mut c = Client::connect(srv.port()).expect("connect");
    c.s.set_nonblocking(false).unwrap();
    // The first fragment of a text message, and half of the next frame's header.
    c.s.write_all(&masked(1, false, b"hello, ")).unwrap();
    let rest = masked(0, true, "wörld — across a reload".as_bytes());
    c.s.write_all(&rest[..3]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = srv.worker_pids();
    srv.signal(libc::SIGUSR1);
    srv.wait_workers_replaced(&before, 1);
    c.s.write_all(&rest[3..]).unwrap();
    let echo = c.read_frame_blocking().expect("the whole message");
    assert_eq!(
        String::from_utf8(echo).unwrap(),
        "hello, wörld — across a reload"
    );
    let fd = c.fd;
    let who = c.call("whoami");
    assert!(who.starts_with(&format!("fd={fd} ")), "{who}");
}

#[test]
fn a_new_binary_that_exits_at_once_leaves_the_old_master_serving() {
    // The server runs from a copy, so the test can put a broken "new version" in its place.
    let dir = std::env::temp_dir().join(format!("prefork-ws-upgrade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("testbed");
    std::fs::copy(example_path("testbed"), &exe).unwrap();
    let pf = pid_file("rollback");
    let srv = start_path(exe.clone(), &["--workers", "2", "--pid-file", &pf], 1);
    let mut c = Client::connect(srv.port()).expect("connect");
    let master = srv.pid();
    std::fs::rename(&exe, dir.join("testbed.real")).unwrap();
    std::fs::write(&exe, "#!/bin/sh\nexit 3\n").unwrap();
    std::process::Command::new("chmod")
        .args(["755", &exe.display().to_string()])
        .status()
        .unwrap();
    let (ok, text) = ctl("upgrade", &pf);
    assert!(!ok, "a failing binary is reported: {text}");
    assert!(text.contains("upgrade failed"), "{text}");
    assert_eq!(
        std::fs::read_to_string(&pf).unwrap().trim(),
        master.to_string()
    );
    let fd = c.fd;
    assert!(c.call("whoami").starts_with(&format!("fd={fd} ")));
    let mut fresh = ws_connect(srv.port(), "/");
    recv_text(&mut fresh);
    // The real binary back: the upgrade goes through, the client stays.
    std::fs::rename(dir.join("testbed.real"), &exe).unwrap();
    let (ok, text) = ctl("upgrade", &pf);
    assert!(ok, "{text}");
    assert_ne!(
        std::fs::read_to_string(&pf).unwrap().trim(),
        master.to_string()
    );
    assert!(c.call("whoami").starts_with(&format!("fd={fd} ")));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&pf);
}

/// `kill -9` of the replacement while the old worker is handing its connections to it. What is
/// lost: the connections the killed process had already adopted (their sockets die with it;
/// their clients see the connection end). Nothing else: the connections still in the channel
/// and those not yet sent reach the restarted replacement, and they echo as before.
#[test]
fn killing_the_replacement_mid_hand_off_loses_only_what_it_had_adopted() {
    let srv = start_logged("testbed", &["--workers", "1", "--max-wait-ms", "5000"]);
    let port = srv.port();
    let mut clients: Vec<Client> = (0..1500)
        .map(|_| Client::connect(port).expect("connect"))
        .collect();
    let before = srv.worker_pids();
    srv.signal(libc::SIGUSR1);
    // As soon as the old worker starts handing over, kill the new one.
    let t = Instant::now();
    while !srv.stderr_text().contains("hands its") {
        assert!(t.elapsed() < Duration::from_secs(10), "no hand-off began");
        std::thread::sleep(Duration::from_millis(1));
    }
    let victim = srv
        .worker_pids()
        .into_iter()
        .find(|p| !before.contains(p))
        .expect("the replacement");
    // SAFETY: kill(2) of a process this test's server forked.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    // The restarted replacement takes the rest.
    let t = Instant::now();
    while !srv.stderr_text().contains("handed over") {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the hand-off never ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let (mut kept, mut lost) = (0, 0);
    for c in clients.iter_mut() {
        c.s.set_nonblocking(false).unwrap();
        c.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let fd = c.fd;
        let alive = c.s.write_all(&masked(1, true, b"whoami")).is_ok()
            && match c.read_frame_blocking() {
                Ok(r) => {
                    let r = String::from_utf8_lossy(&r).into_owned();
                    assert!(r.starts_with(&format!("fd={fd} ")), "fd {fd} answered {r}");
                    true
                }
                Err(e) => {
                    assert_ne!(e.kind(), ErrorKind::WouldBlock, "fd {fd} hangs unanswered");
                    false
                }
            };
        if alive {
            kept += 1;
        } else {
            lost += 1;
        }
    }
    eprintln!("killed the replacement mid hand-off: {kept} connections kept, {lost} lost");
    assert!(
        kept > 0,
        "connections not yet adopted by the killed worker survive"
    );
    let log = srv.stderr_text();
    assert!(log.contains("exited unexpectedly"), "{log}");
    // The server serves new clients.
    let mut fresh = Client::connect(port).expect("a new client after the fault");
    let fd = fresh.fd;
    assert!(fresh.call("whoami").starts_with(&format!("fd={fd} ")));
}

/// Socket.IO clients over WebSocket move with their connections: same sid, same rooms, acks
/// and room emits work across reloads, no disconnect and no reconnect.
#[test]
fn socketio_sessions_keep_their_sid_and_rooms_across_reloads() {
    use serde_json::json;
    use support::sio::Sio;
    let srv = start_path(example_path("sio_testbed"), &["--workers", "2"], 1);
    let port = srv.port();
    let mut clients: Vec<Sio> = (0..6).map(|_| Sio::connect(port, None)).collect();
    let sids: Vec<String> = clients.iter().map(|c| c.sid()).collect();
    let rooms: Vec<_> = clients
        .iter_mut()
        .map(|c| {
            c.call("join", json!(["kept"]));
            c.call("rooms", json!([]))
        })
        .collect();
    assert!(rooms[0].to_string().contains("kept"), "{}", rooms[0]);
    for _ in 0..2 {
        let before = srv.worker_pids();
        srv.signal(libc::SIGUSR1);
        srv.wait_workers_replaced(&before, 2);
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.sid(), sids[i]);
        assert_eq!(c.call("echo", json!(["still here"])), json!(["still here"]));
        assert_eq!(c.call("rooms", json!([])), rooms[i], "rooms of {}", sids[i]);
    }
    clients[0].call("to", json!(["kept", "after the reloads"]));
    for c in clients.iter_mut().skip(1) {
        assert_eq!(c.event("msg"), json!(["after the reloads"]));
    }
}

/// The Swoole layer: context values under a key declared portable travel with the
/// connection, others stay behind, and `on_adopt` runs instead of `on_open`.
#[test]
fn declared_context_values_travel_and_on_adopt_runs() {
    let srv = start("testbed", &["--workers", "1"]);
    let mut c = Client::connect(srv.port()).expect("connect");
    assert_eq!(c.call("ctx-set kept"), "ok");
    assert_eq!(c.call("ctx-set-local dropped"), "ok");
    let before = srv.worker_pids();
    srv.signal(libc::SIGUSR1);
    srv.wait_workers_replaced(&before, 1);
    assert_eq!(c.call("ctx-get"), "kept");
    assert_eq!(c.call("ctx-get-local"), "unset");
    let fd = c.fd;
    assert!(
        srv.wait_line(Duration::from_secs(5), |l| l
            .starts_with(&format!("adopt {fd} at ")))
            .is_some(),
        "{:?}",
        srv.lines()
    );
    assert!(
        !srv.lines()
            .iter()
            .any(|l| l.starts_with(&format!("close {fd}"))),
        "no on_close in the old worker"
    );
}
