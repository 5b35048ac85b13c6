//! Signal-driven lifecycle with real processes, real signals and real clients: graceful
//! shutdown, rolling reload under load, crash recovery, no orphans, the control tool.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

fn pid_file(tag: &str) -> String {
    format!(
        "{}/prefork-ws-test-{tag}-{}.pid",
        std::env::temp_dir().display(),
        std::process::id()
    )
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
}

#[test]
fn sigterm_closes_every_client_with_1001_and_exits_0() {
    let pf = pid_file("term");
    let mut srv = start(
        "testbed",
        &["--workers", "2", "--pid-file", &pf, "--max-wait-ms", "3000"],
    );
    assert!(
        std::path::Path::new(&pf).exists(),
        "pid file written at start"
    );
    let mut clients: Vec<Ws> = (0..200)
        .map(|_| {
            let mut ws = ws_connect(srv.port(), "/");
            recv_text(&mut ws);
            ws
        })
        .collect();
    let workers: std::collections::HashSet<usize> =
        clients.iter_mut().take(20).map(|c| whoami(c).1).collect();
    assert_eq!(workers.len(), 2);
    let start = Instant::now();
    srv.signal(libc::SIGTERM);
    for c in clients.iter_mut() {
        assert_eq!(recv_close(c).map(|x| x.0), Some(1001));
    }
    let code = srv.wait_exit(Duration::from_secs(5));
    assert_eq!(code, Some(0));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        !std::path::Path::new(&pf).exists(),
        "pid file removed at exit"
    );
    let lines = srv.lines();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("close ")).count(),
        200,
        "on_close for every client"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("worker stop"))
            .count(),
        2
    );
}

#[test]
fn rolling_reload_under_load_loses_no_connection_attempt() {
    let srv = start("testbed", &["--workers", "2", "--max-wait-ms", "1000"]);
    let port = srv.port();
    let old_pids = srv.worker_pids();
    let mut veteran = ws_connect(port, "/");
    recv_text(&mut veteran);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let (s2, ok2, f2) = (stop.clone(), ok.clone(), failed.clone());
    // Several hundred connections per second, as a busy service sees. (Far faster churn from one
    // client address exhausts ephemeral ports into TIME_WAIT collisions, which is not a server
    // property.)
    let churn = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            match ws_connect_with(port, "/", &[]) {
                Ok((mut ws, _)) => {
                    ok2.fetch_add(1, Ordering::Relaxed);
                    let _ = ws.close(None);
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => {
                    eprintln!(
                        "connection attempt failed at {:?}: {e}",
                        std::time::SystemTime::now()
                    );
                    f2.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        // Wait for both workers to be replaced before the next reload.
        let before = srv.worker_pids();
        srv.signal(libc::SIGUSR1);
        srv.wait_workers_replaced(&before, 2);
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed attempts ({} succeeded)",
        ok.load(Ordering::Relaxed)
    );
    assert!(ok.load(Ordering::Relaxed) > 100, "the churn loop ran");
    // Established connections are handed to the new workers (issue 13), not closed.
    assert_eq!(
        call(&mut veteran, "kept"),
        "kept",
        "the veteran survived 5 reloads"
    );
    let new_pids = srv.worker_pids();
    assert_eq!(new_pids.len(), 2);
    assert!(
        new_pids.iter().all(|p| !old_pids.contains(p)),
        "{old_pids:?} -> {new_pids:?}"
    );
    let mut ws = ws_connect(port, "/");
    recv_text(&mut ws);
    assert_eq!(call(&mut ws, "still echoing"), "still echoing");
}

#[test]
fn a_killed_worker_is_replaced_and_other_clients_do_not_notice() {
    let srv = start("testbed", &["--workers", "2"]);
    let ((_a, _), (mut b, _)) = clients_on_two_workers(srv.port());
    let victim = {
        // worker 0's pid: the child whose region says worker 0 — find it by elimination:
        let pids = srv.worker_pids();
        assert_eq!(pids.len(), 2);
        let stats = prefork_ws::runtime::inspect::stats_of(srv.pid() as u32).unwrap();
        stats.workers.iter().find(|w| w.worker_id == 0).unwrap().pid as i32
    };
    // SAFETY: SIGKILL to a worker we started.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    for i in 0..200 {
        assert_eq!(call(&mut b, &format!("msg {i}")), format!("msg {i}"));
    }
    let t = Instant::now();
    loop {
        let pids = srv.worker_pids();
        if pids.len() == 2 && !pids.contains(&victim) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "worker not replaced: {pids:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The replacement accepts again: some new client lands on worker 0.
    let ((mut a2, _), _) = clients_on_two_workers(srv.port());
    assert_eq!(call(&mut a2, "hi"), "hi");
    assert_eq!(call(&mut b, "still here"), "still here");
}

#[test]
fn killing_the_master_takes_the_workers_with_it() {
    let srv = start("testbed", &["--workers", "2"]);
    let workers = srv.worker_pids();
    assert_eq!(workers.len(), 2);
    // SAFETY: SIGKILL to the master we started.
    unsafe { libc::kill(srv.pid(), libc::SIGKILL) };
    let t = Instant::now();
    while workers.iter().any(|&p| alive(p)) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "orphaned workers survive: {workers:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_server_on_a_port_in_use_fails_naming_the_port() {
    let srv = start("testbed", &["--workers", "1"]);
    let out = std::process::Command::new(example_path("testbed"))
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &srv.port().to_string(),
            "--workers",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{}", srv.port())), "{err}");
    // and the first one is untouched
    let mut ws = ws_connect(srv.port(), "/");
    recv_text(&mut ws);
}

#[test]
fn control_tool_reports_status_reloads_and_stops() {
    let pf = pid_file("ctl");
    let mut srv = start(
        "testbed",
        &["--workers", "2", "--pid-file", &pf, "--max-wait-ms", "500"],
    );
    let mut ws = ws_connect(srv.port(), "/");
    recv_text(&mut ws);
    let ctl = bin_path("prefork-ctl");
    let run = |cmd: &str| {
        let o = std::process::Command::new(&ctl)
            .args([cmd, "--pid-file", &pf])
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (ok, status) = run("status");
    assert!(ok, "{status}");
    assert!(
        status.contains(&format!("master pid={}", srv.pid())),
        "{status}"
    );
    assert!(status.contains("connections=1"), "{status}");
    let worker_lines: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("worker id="))
        .collect();
    assert_eq!(worker_lines.len(), 2, "{status}");
    for p in srv.worker_pids() {
        assert!(status.contains(&format!("pid={p}")), "{status}");
    }
    let before = srv.worker_pids();
    assert!(run("reload").0);
    srv.wait_workers_replaced(&before, 2);
    let (ok, out) = run("stop");
    assert!(ok, "{out}");
    assert_eq!(srv.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(!std::path::Path::new(&pf).exists());
    assert!(!run("status").0, "status of a stopped server fails");
}

#[test]
fn reload_rereads_the_configuration_file() {
    let cfg = format!(
        "{}/prefork-ws-test-cfg-{}.conf",
        std::env::temp_dir().display(),
        std::process::id()
    );
    std::fs::write(&cfg, "# test config\nwebsocket_subprotocol = \"chat\"\n").unwrap();
    let srv = start(
        "testbed",
        &["--workers", "2", "--config", &cfg, "--max-wait-ms", "200"],
    );
    let offer = [("Sec-WebSocket-Protocol", "chat, superchat")];
    let (_ws, resp) = ws_connect_with(srv.port(), "/", &offer).unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "chat"
    );
    std::fs::write(
        &cfg,
        "websocket_subprotocol = \"superchat\"\nworker_num = 5\n",
    )
    .unwrap();
    let before = srv.worker_pids();
    srv.signal(libc::SIGUSR1);
    srv.wait_workers_replaced(&before, 2);
    let (_ws, resp) = ws_connect_with(srv.port(), "/", &offer).unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "superchat"
    );
    assert_eq!(
        srv.worker_pids().len(),
        2,
        "worker_num cannot change on reload"
    );
    let _ = std::fs::remove_file(&cfg);
}

#[test]
fn a_worker_crashing_at_start_is_restarted_with_back_off() {
    let marker = format!(
        "{}/prefork-ws-test-crash-{}",
        std::env::temp_dir().display(),
        std::process::id()
    );
    std::fs::write(&marker, "crash").unwrap();
    let mut cmd_args = vec!["--workers", "2", "--crash-file", marker.as_str()];
    cmd_args.extend_from_slice(&[]);
    let srv = start_logged("testbed", &cmd_args);
    // Worker 0 serves while worker 1 crash-loops.
    let mut ws = ws_connect(srv.port(), "/");
    recv_text(&mut ws);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(call(&mut ws, "serving"), "serving");
    let log = srv.stderr_text();
    let delays: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("Worker#1") && l.contains("exited unexpectedly"))
        .filter_map(|l| {
            l.split("restarting in ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(delays.len() >= 2, "crash loop not logged: {log}");
    assert!(
        delays.windows(2).all(|w| w[1] >= w[0]) && delays.last() > delays.first(),
        "no back-off: {delays:?}"
    );
    // Once the cause is gone, worker 1 comes back.
    std::fs::remove_file(&marker).unwrap();
    let t = Instant::now();
    while !srv
        .stderr_text()
        .lines()
        .any(|l| l.contains("Worker#1 started") && !log.contains(l))
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "worker 1 did not come back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ((_a, _), (mut b, _)) = clients_on_two_workers(srv.port());
    assert!(call(&mut b, "whoami").contains("worker=1"));
}

#[test]
fn a_slow_on_worker_start_is_not_taken_for_a_hang() {
    // 6.5 s in on_worker_start, past the watchdog's default 5 s.
    let srv = start("testbed", &["--workers", "2", "--slow-start-ms", "6500"]);
    let pids = srv.worker_pids();
    assert!(srv
        .wait_line(Duration::from_secs(15), |l| l == "worker start 1")
        .is_some());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(srv.worker_pids(), pids, "no worker was replaced");
    let mut ws = ws_connect(srv.port(), "/");
    assert!(recv_text(&mut ws).starts_with("welcome "));
}
