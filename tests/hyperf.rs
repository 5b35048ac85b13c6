#![cfg(feature = "hyperf")]
//! The Hyperf-style layer end to end: servers from a TOML file, routes with parameters,
//! middleware order, refusal and context, exception chains for middleware and controllers,
//! HTTP routes with JSON; and the ported seed app's Sender across workers.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::*;
use tungstenite::Message;

const CONFIG: &str = r#"
[settings]
max_wait_time_ms = 500

[[servers]]
name = "ws"
type = "websocket"
host = "127.0.0.1"
port = 0

[[servers]]
name = "http"
type = "http"
host = "127.0.0.1"
port = 0
settings = { package_max_length = 65536 }
"#;

fn testbed() -> (ServerProc, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!(
        "prefork-ws-hyperf-{}-{:?}.toml",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, CONFIG).unwrap();
    let cfg = path.to_string_lossy().to_string();
    let srv = start_path(
        example_path("hyperf_testbed"),
        &["--workers", "2", "--config", &cfg],
        2,
    );
    (srv, path)
}

fn upgrade(port: u16, path: &str) -> String {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n") && !out.starts_with(b"HTTP/1.1 101") {
            // A refusal: read its body too (Connection: close).
            continue;
        }
        if out.starts_with(b"HTTP/1.1 101") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn servers_come_from_the_toml_servers_list_with_hyperf_start_lines() {
    let (srv, _cfg) = testbed();
    assert_eq!(srv.ports.len(), 2);
    let lines = srv.lines();
    assert!(lines
        .iter()
        .any(|l| l.starts_with("[INFO] WebSocket Server listening at 127.0.0.1:")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("[INFO] HTTP Server listening at 127.0.0.1:")));
    assert!(srv
        .wait_line(Duration::from_secs(5), |l| l == "[INFO] Worker#1 started.")
        .is_some());
}

#[test]
fn global_middleware_runs_in_order_and_fills_the_context_read_in_on_message() {
    let (srv, _cfg) = testbed();
    let r = upgrade(srv.ports[0], "/room/42");
    assert!(r.starts_with("HTTP/1.1 101"), "{r}");
    // The response passes back through b, then a.
    let order: Vec<&str> = r
        .lines()
        .filter_map(|l| l.strip_prefix("X-Order: "))
        .collect();
    assert_eq!(order, ["b", "a"], "{r}");
    let mut ws = ws_connect(srv.ports[0], "/room/42");
    assert_eq!(recv_text(&mut ws), "open room 42");
    assert_eq!(call(&mut ws, "hi"), "room 42 order ab: hi");
}

#[test]
fn middleware_refuses_and_nothing_is_opened() {
    let (srv, _cfg) = testbed();
    let r = upgrade(srv.ports[0], "/mw-refuse");
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("refused by middleware"), "{r}");
}

#[test]
fn middleware_errors_and_panics_go_through_the_exception_chain_and_the_worker_lives() {
    let (srv, _cfg) = testbed();
    let r = upgrade(srv.ports[0], "/mw-error");
    assert!(r.starts_with("HTTP/1.1 418"), "{r}");
    assert!(
        r.contains("X-Handled: 1") && r.contains("I'm a teapot"),
        "{r}"
    );
    for _ in 0..4 {
        let r = upgrade(srv.ports[0], "/mw-panic");
        assert!(r.starts_with("HTTP/1.1 500"), "{r}");
        assert!(r.contains("X-Handled: 1"), "{r}");
    }
    // Both workers still serve.
    let pids = srv.worker_pids();
    assert_eq!(pids.len(), 2);
    let mut ws = ws_connect(srv.ports[0], "/ctl");
    assert_eq!(call(&mut ws, "x"), "echo x");
    assert_eq!(srv.worker_pids(), pids, "no worker was replaced");
}

#[test]
fn unknown_paths_get_404_route_error_and_other_methods_405() {
    let (srv, _cfg) = testbed();
    let r = upgrade(srv.ports[0], "/nowhere");
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    assert!(r.contains("Content-Type: application/json"), "{r}");
    assert!(r.contains("Description: Route Error"), "{r}");
    let post = raw_http(
        srv.ports[0],
        b"POST /ctl HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
}

#[test]
fn a_controller_panic_closes_that_connection_with_1011_and_a_soft_error_keeps_it() {
    let (srv, _cfg) = testbed();
    let mut other = ws_connect(srv.ports[0], "/ctl");
    let mut ws = ws_connect(srv.ports[0], "/ctl");
    send_text(&mut ws, "soft");
    assert_eq!(
        call(&mut ws, "still"),
        "echo still",
        "a 409 error keeps the connection"
    );
    send_text(&mut ws, "panic");
    let close = recv_close(&mut ws);
    assert_eq!(close.map(|c| c.0), Some(1011));
    assert_eq!(call(&mut other, "fine"), "echo fine");
}

#[test]
fn close_callbacks_see_the_route_parameter_and_the_reason() {
    let (srv, _cfg) = testbed();
    let mut ws = ws_connect(srv.ports[0], "/room/7");
    let _ = recv_text(&mut ws);
    ws.close(None).unwrap();
    while !matches!(ws.read(), Err(_) | Ok(Message::Close(_))) {}
    let line = srv.wait_line(Duration::from_secs(5), |l| l.starts_with("room 7 closed"));
    assert_eq!(line.as_deref(), Some("room 7 closed PeerClosed(None)"));
}

#[test]
fn http_routes_take_json_bodies_and_parameters_and_answer_404_405_and_400() {
    let (srv, _cfg) = testbed();
    let http = srv.ports[1];
    let body = r#"{"name":"ann"}"#;
    let req = format!(
        "POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = raw_http(http, req.as_bytes());
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with(r#"{"hello":"ann"}"#),
        "{r}"
    );
    let bad = raw_http(
        http,
        b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{x}",
    );
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let item = raw_http(
        http,
        b"GET /item/99 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(item.ends_with(r#"{"id":"99"}"#), "{item}");
    let nf = raw_http(
        http,
        b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(nf.starts_with("HTTP/1.1 404"), "{nf}");
    let na = raw_http(
        http,
        b"GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        na.starts_with("HTTP/1.1 405") && na.contains("Allow: POST"),
        "{na}"
    );
}

#[test]
fn the_sender_works_from_a_thread_and_tells_the_truth() {
    let (srv, _cfg) = testbed();
    let mut ws = ws_connect(srv.ports[0], "/ctl");
    let fd = call(&mut ws, "fd");
    let send = |fd: &str| {
        let req =
            format!("GET /thread-send?fd={fd} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        raw_http(srv.ports[1], req.as_bytes())
    };
    assert!(send("999999").ends_with(r#"{"sent":false}"#));
    assert!(send(&fd).ends_with(r#"{"sent":true}"#));
    assert_eq!(recv_text(&mut ws), "from a thread");
}

#[test]
fn a_bad_config_file_fails_at_start_naming_the_file_and_key() {
    let path =
        std::env::temp_dir().join(format!("prefork-ws-hyperf-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "[[servers]]\nname = \"ws\"\ntype = \"websocket\"\nhost = \"127.0.0.1\"\nport = 0\nbogus = 1\n").unwrap();
    let out = std::process::Command::new(example_path("hyperf_testbed"))
        .args(["--config", &path.to_string_lossy()])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bogus") && err.contains(&*path.to_string_lossy()),
        "{err}"
    );
}

/// The seed app: the Sender reaches a client of each worker (worker ids from
/// connection_info, through /server/connections).
#[test]
fn hyperf_app_sender_reaches_clients_on_both_workers() {
    let srv = start_path(
        example_path("hyperf_app"),
        &["--workers", "2", "--http-port", "0", "--jwt-secret", "s"],
        2,
    );
    let (ws_port, http_port) = (srv.ports[0], srv.ports[1]);
    let fds_of = |worker: u64| -> Vec<u64> {
        let r = raw_http(
            http_port,
            b"GET /server/connections HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let body = r.split("\r\n\r\n").nth(1).unwrap_or("[]").to_string();
        let v: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        v.iter()
            .filter(|c| c["worker_id"].as_u64() == Some(worker))
            .filter_map(|c| c["fd"].as_u64())
            .collect()
    };
    let mut clients = Vec::new();
    for _ in 0..60 {
        let mut ws = ws_connect(ws_port, "/");
        assert_eq!(recv_text(&mut ws), "Opened");
        clients.push(ws);
        if !fds_of(0).is_empty() && !fds_of(1).is_empty() {
            break;
        }
    }
    let (on0, on1) = (fds_of(0), fds_of(1));
    assert!(
        !on0.is_empty() && !on1.is_empty(),
        "clients on both workers"
    );
    for fd in [on0[0], on1[0]] {
        let req =
            format!("GET /server/send?fd={fd} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let r = raw_http(http_port, req.as_bytes());
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    let mut got = 0;
    for ws in clients.iter_mut() {
        ws.get_mut()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        if let Ok(Message::Text(t)) = ws.read() {
            assert_eq!(t.as_str(), "Hello World.");
            got += 1;
        }
    }
    assert_eq!(got, 2, "exactly the two addressed clients got the push");
    let r = raw_http(
        http_port,
        b"GET /server/send?fd=999999 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
}

#[test]
fn a_reload_keeps_the_route_its_parameters_and_the_portable_context() {
    let (srv, _cfg) = testbed();
    let mut ws = ws_connect(srv.ports[0], "/room/42");
    assert_eq!(recv_text(&mut ws), "open room 42");
    assert_eq!(call(&mut ws, "before"), "room 42 order ab: before");
    let before = srv.worker_pids();
    srv.signal(libc::SIGUSR1);
    srv.wait_workers_replaced(&before, 2);
    assert_eq!(call(&mut ws, "after"), "room 42 order ab: after");
    assert!(
        srv.wait_line(Duration::from_secs(5), |l| l
            .starts_with("room 42 adopted by worker"))
            .is_some(),
        "{:?}",
        srv.lines()
    );
    assert!(!srv.lines().iter().any(|l| l.starts_with("room 42 closed")));
}
