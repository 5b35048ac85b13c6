//! A worker that hangs cannot hurt the others: queues toward it are bounded (pushes to its fds
//! fail, broadcasts skip it), the other worker keeps serving with bounded memory, and the
//! watchdog replaces it. Driven as the issue says: `multi_port --debug-routes`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

/// A keep-alive HTTP connection served by a known worker.
struct Http {
    s: TcpStream,
    worker: usize,
}

impl Http {
    /// One request; (status, headers, body).
    fn get(&mut self, path: &str) -> Option<(u16, String, String)> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        self.s.write_all(req.as_bytes()).ok()?;
        let mut r = BufReader::new(&self.s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        r.read_exact(&mut body).ok()?;
        Some((status, head, String::from_utf8_lossy(&body).into_owned()))
    }

    /// An HTTP connection that the given worker serves (others are dropped).
    fn on_worker(port: u16, worker: usize) -> Http {
        for _ in 0..200 {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut h = Http { s, worker: 99 };
            if let Some((200, head, _)) = h.get("/debug/workers") {
                let w = head
                    .lines()
                    .find_map(|l| l.strip_prefix("X-Worker-Id: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(99);
                if w == worker {
                    h.worker = w;
                    return h;
                }
            }
        }
        panic!("no HTTP connection on worker {worker}");
    }
}

fn pid_of(http: &mut Http, worker: usize) -> Option<u64> {
    let (_, _, body) = http.get("/debug/workers")?;
    let v: Vec<serde_json::Value> = serde_json::from_str(&body).ok()?;
    v.iter()
        .find(|w| w["worker_id"].as_u64() == Some(worker as u64))
        .and_then(|w| w["pid"].as_u64())
}

/// A WebSocket client and the worker holding it (from its fd: `(fd - 1) % regions` is the
/// region, the worker id at start).
fn ws_on_worker(port: u16, worker: u64) -> (Ws, u64) {
    for _ in 0..200 {
        let mut ws = ws_connect(port, "/");
        let hello = recv_text(&mut ws);
        let fd: u64 = hello.trim_start_matches("fd:").parse().unwrap();
        if (fd - 1) % 4 == worker {
            return (ws, fd);
        }
    }
    panic!("no client on worker {worker}");
}

#[test]
fn a_hung_worker_is_bounded_skipped_and_replaced_while_the_other_serves() {
    let srv = start_path(
        example_path("multi_port"),
        &["--workers", "2", "--http-port", "0", "--debug-routes"],
        2,
    );
    let (ws_port, http_port) = (srv.ports[0], srv.ports[1]);
    let mut http0 = Http::on_worker(http_port, 0);
    assert_eq!(http0.worker, 0);
    let (mut client0, _fd0) = ws_on_worker(ws_port, 0);
    let (_client1, fd1) = ws_on_worker(ws_port, 1);
    let pids = srv.worker_pids();
    let hung_pid = pid_of(&mut http0, 1).expect("worker 1's pid");
    let w0_pid = pid_of(&mut http0, 0).expect("worker 0's pid") as i32;
    let rss_before = rss_kb(w0_pid);

    let (st, _, _) = http0.get("/debug/hang?worker=1").unwrap();
    assert_eq!(st, 200);
    // Push 6 KB messages toward the hung worker's client until the cap refuses them.
    let msg = "x".repeat(6 * 1024);
    let mut refused_after = None;
    for i in 0..20_000 {
        let (st, _, _) = http0.get(&format!("/push?fd={fd1}&message={msg}")).unwrap();
        if st == 404 {
            refused_after = Some(i);
            break;
        }
    }
    let pushed = refused_after.expect("pushes toward the hung worker fail once the cap is reached");
    // 8 MiB of 6 KB messages, plus what the kernel socket took (4 MiB buffer).
    assert!(pushed > 500, "refused too early, after {pushed}");
    let rss_after = rss_kb(w0_pid);
    eprintln!("worker 0 RSS {rss_before} -> {rss_after} KiB after {pushed} pushes of 6 KiB toward the hung worker");
    // The other worker's memory stays bounded: the cap (8 MiB) plus a margin.
    assert!(
        rss_after < rss_before + 8 * 1024 + 6 * 1024,
        "worker 0 RSS grew from {rss_before} to {rss_after} KiB"
    );
    // A broadcast (as large as the pushes) from worker 0 skips the hung worker and says so.
    let (_, _, report) = http0
        .get(&format!("/debug/broadcast?message={msg}"))
        .unwrap();
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(r["unreachable"], 1, "{report}");
    assert_eq!(r["local"], 1, "{report}");
    assert_eq!(recv_text(&mut client0), msg);
    // Worker 0's own clients are still served.
    let t = Instant::now();
    assert_eq!(call(&mut client0, "still here"), "still here");
    eprintln!(
        "worker 0 echo round trip during the hang: {:?}",
        t.elapsed()
    );
    // New connections made during the hang succeed: those hashed to the hung worker's accept
    // queue wait until the watchdog hands that queue to worker 0.
    let during: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let t = Instant::now();
                let mut ws = ws_connect(ws_port, "/");
                let hello = recv_text(&mut ws);
                (hello.starts_with("fd:"), t.elapsed())
            })
        })
        .collect();

    // The watchdog replaces worker 1 (5 s without progress, then the replacement starts and the
    // hung process is killed).
    let t = Instant::now();
    let replaced = loop {
        if let Some(p) = pid_of(&mut http0, 1) {
            if p != hung_pid {
                break true;
            }
        }
        if t.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(replaced, "worker 1 was not replaced: {:?}", srv.lines());
    for h in during {
        let (ok, took) = h.join().expect("a connection made during the hang");
        assert!(ok);
        eprintln!("a connection made during the hang was answered after {took:?}");
    }
    eprintln!(
        "hung worker replaced {:.1} s after the pushes",
        t.elapsed().as_secs_f64()
    );
    assert!(
        !srv.worker_pids().contains(&(hung_pid as i32)) || {
            std::thread::sleep(Duration::from_secs(1));
            !srv.worker_pids().contains(&(hung_pid as i32))
        },
        "the hung process is gone"
    );
    assert!(
        srv.worker_pids().contains(&w0_pid),
        "worker 0 was never replaced: {pids:?}"
    );
    // The killed worker's connections are gone from the table (not ghosts that pushes queue for).
    let (st, _, _) = http0.get(&format!("/push?fd={fd1}&message=x")).unwrap();
    assert_eq!(st, 404, "fd {fd1} of the killed worker no longer exists");
    // New connections succeed, on whichever worker they land.
    for _ in 0..8 {
        let mut ws = ws_connect(ws_port, "/");
        assert!(recv_text(&mut ws).starts_with("fd:"));
    }
    assert_eq!(call(&mut client0, "after"), "after");
}

#[test]
fn a_stopped_worker_is_reported_not_replaced() {
    let srv = start_logged_with(
        "multi_port",
        &["--workers", "2", "--http-port", "0", "--debug-routes"],
        2,
    );
    let mut http0 = Http::on_worker(srv.ports[1], 0);
    // Worker 1 may still be starting (a loaded machine): wait until the table lists it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let stopped = loop {
        if let Some(p) = pid_of(&mut http0, 1) {
            break p as i32;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "worker 1 never listed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: signalling a worker of the server this test started.
    unsafe { libc::kill(stopped, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_secs(8));
    let still = pid_of(&mut http0, 1);
    // SAFETY: as above.
    unsafe { libc::kill(stopped, libc::SIGCONT) };
    assert_eq!(
        still,
        Some(stopped as u64),
        "a stopped worker is left alone"
    );
    assert!(
        srv.stderr_text()
            .contains("is stopped (SIGSTOP or a debugger)"),
        "{}",
        srv.stderr_text()
    );
}
