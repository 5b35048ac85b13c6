//! Engine.IO long-polling end to end over raw HTTP against the real server: the handshake
//! and payload formats of both versions, events and acks over polling, the upgrade probe,
//! requests served by the session's worker whichever worker they land on (2 workers, no
//! sticky sessions), the bad-input answers, and abandoned sessions reclaimed.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;
use tungstenite::Message;

/// One HTTP exchange on a fresh connection: (status, body).
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let resp = raw_http(port, &req);
    let status = resp.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn handshake(port: u16, eio: u8) -> (String, Value) {
    let (status, body) = http(
        port,
        "GET",
        &format!("/socket.io/?EIO={eio}&transport=polling"),
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let open = match eio {
        4 => body.strip_prefix('0').expect("OPEN packet").to_string(),
        _ => body
            .split_once(":0")
            .expect("v3 length-prefixed OPEN")
            .1
            .to_string(),
    };
    let v: Value = serde_json::from_str(&open).expect("OPEN json");
    (v["sid"].as_str().unwrap().to_string(), v)
}

fn url(eio: u8, sid: &str) -> String {
    format!("/socket.io/?EIO={eio}&transport=polling&sid={sid}")
}

#[test]
fn polling_sessions_work_whatever_worker_each_request_lands_on() {
    let srv = start_logged_level(
        "sio_testbed",
        &["--workers", "2"],
        1,
        "prefork_ws::runtime::worker::handoff=debug",
    );
    let port = srv.port();
    for _ in 0..6 {
        let (sid, open) = handshake(port, 4);
        assert_eq!(open["upgrades"], json!(["websocket"]));
        assert_eq!(open.as_object().unwrap().len(), 5);
        assert_eq!(http(port, "POST", &url(4, &sid), b"40"), (200, "ok".into()));
        let (_, c) = http(port, "GET", &url(4, &sid), b"");
        assert!(c.starts_with("40{\"sid\":"), "{c}");
        // An event with an ack and a plain one, in one payload.
        assert_eq!(
            http(
                port,
                "POST",
                &url(4, &sid),
                b"421[\"echo\",\"a\"]\x1e42[\"join\",\"r\"]"
            ),
            (200, "ok".into())
        );
        let (_, acks) = http(port, "GET", &url(4, &sid), b"");
        assert_eq!(acks, "431[\"a\"]");
        assert_eq!(http(port, "POST", &url(4, &sid), b"41"), (200, "ok".into()));
    }
    let handed = srv.stderr_text().matches("handed to worker").count();
    assert!(
        handed > 0,
        "every request of 6 sessions landed on its owner: no cross-worker case seen"
    );
}

#[test]
fn v3_payloads_are_length_prefixed_and_socket_io_2_is_in_slash_at_once() {
    let srv = testbed();
    let port = srv.port();
    let (sid, _) = handshake(port, 3);
    let (_, first) = http(port, "GET", &url(3, &sid), b"");
    assert_eq!(first, "2:40");
    assert_eq!(
        http(
            port,
            "POST",
            &url(3, &sid),
            b"15:421[\"echo\",\"\xc3\xa9\"]"
        ),
        (200, "ok".into())
    );
    let (_, ack) = http(port, "GET", &url(3, &sid), b"");
    assert_eq!(
        ack, "8:431[\"\u{e9}\"]",
        "lengths count UTF-16 units (é is one)"
    );
    // v3 heartbeat: the client pings over POST, the pong comes with the next GET.
    assert_eq!(
        http(port, "POST", &url(3, &sid), b"1:2"),
        (200, "ok".into())
    );
    assert_eq!(http(port, "GET", &url(3, &sid), b""), (200, "1:3".into()));
}

fn testbed() -> ServerProc {
    start_path(example_path("sio_testbed"), &["--workers", "2"], 1)
}

#[test]
fn the_upgrade_moves_queued_packets_and_later_polls_are_refused() {
    let srv = start_path(example_path("sio_testbed"), &["--workers", "1"], 1);
    let port = srv.port();
    let (sid, _) = handshake(port, 4);
    http(port, "POST", &url(4, &sid), b"40");
    http(port, "GET", &url(4, &sid), b"");
    // A packet queued for polling before the switch must arrive on the WebSocket.
    http(port, "POST", &url(4, &sid), b"421[\"echo\",\"queued\"]");
    let (mut ws, _) = ws_connect_with(
        port,
        &format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"),
        &[],
    )
    .unwrap();
    ws.send(Message::text("2probe")).unwrap();
    assert_eq!(ws.read().unwrap().to_string(), "3probe");
    ws.send(Message::text("5")).unwrap();
    assert_eq!(
        ws.read().unwrap().to_string(),
        "431[\"queued\"]",
        "not lost, not duplicated"
    );
    ws.send(Message::text("422[\"echo\",\"ws\"]")).unwrap();
    assert_eq!(ws.read().unwrap().to_string(), "432[\"ws\"]");
    let (status, body) = http(port, "GET", &url(4, &sid), b"");
    assert_eq!(
        (status, body.as_str()),
        (400, "{\"code\":3,\"message\":\"Bad request\"}")
    );
}

#[test]
fn bad_polling_input_gets_engine_io_s_answers() {
    let srv = start_path(
        example_path("sio_testbed"),
        &["--workers", "1", "--max-payload", "1000"],
        1,
    );
    let port = srv.port();
    let unknown = http(port, "GET", &url(4, "AAAAAAAAAAAAAAAAAAAA"), b"");
    assert_eq!(
        unknown,
        (
            400,
            "{\"code\":1,\"message\":\"Session ID unknown\"}".into()
        )
    );
    assert_eq!(
        http(port, "GET", "/socket.io/?EIO=9&transport=polling", b"").0,
        400
    );
    assert_eq!(
        http(
            port,
            "GET",
            "/socket.io/?EIO=4&transport=carrier-pigeon",
            b""
        )
        .1,
        "{\"code\":0,\"message\":\"Transport unknown\"}"
    );
    assert_eq!(
        http(port, "POST", "/socket.io/?EIO=4&transport=polling", b"").1,
        "{\"code\":2,\"message\":\"Bad handshake method\"}"
    );
    // Too large: 413, the session ends.
    let (sid, _) = handshake(port, 4);
    assert_eq!(http(port, "POST", &url(4, &sid), &vec![b'4'; 2000]).0, 413);
    assert_eq!(http(port, "GET", &url(4, &sid), b"").0, 400);
    // Malformed: 400, the session ends.
    let (sid, _) = handshake(port, 4);
    assert_eq!(http(port, "POST", &url(4, &sid), b"\x1e\x1e").0, 400);
    assert_eq!(http(port, "GET", &url(4, &sid), b"").0, 400);
    // A GET racing a GET: the second is refused, the first gets the close packet.
    let (sid, _) = handshake(port, 4);
    let path = url(4, &sid);
    let first = std::thread::spawn(move || http(port, "GET", &path, b""));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(http(port, "GET", &url(4, &sid), b"").0, 400);
    assert_eq!(first.join().unwrap(), (200, "1".into()));
    assert_eq!(
        http(port, "GET", &url(4, &sid), b"").0,
        400,
        "the session is closed"
    );
}

fn stats(port: u16) -> Value {
    let (_, body) = http(port, "GET", "/stats", b"");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// Sessions whose clients vanish mid-polling or mid-upgrade go after pingInterval +
/// pingTimeout, and a second wave costs no more memory than the first.
#[test]
fn a_thousand_abandoned_sessions_are_reclaimed() {
    let srv = start_path(
        example_path("sio_testbed"),
        &[
            "--workers",
            "1",
            "--ping-interval",
            "300",
            "--ping-timeout",
            "200",
        ],
        1,
    );
    let port = srv.port();
    let worker = srv.worker_pids()[0];
    let wave = |n: usize| {
        for i in 0..n {
            let (sid, _) = handshake(port, 4);
            http(port, "POST", &url(4, &sid), b"40");
            if i % 2 == 0 {
                // Mid-upgrade: the probe is answered, then the client vanishes.
                let (mut ws, _) = ws_connect_with(
                    port,
                    &format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"),
                    &[],
                )
                .unwrap();
                ws.send(Message::text("2probe")).unwrap();
                assert_eq!(ws.read().unwrap().to_string(), "3probe");
            }
        }
    };
    let wait_empty = || {
        let t = Instant::now();
        loop {
            let s = stats(port);
            if s["engine"] == json!(0) && s["clients"] == json!(0) && s["sockets"] == json!(0) {
                return t.elapsed();
            }
            assert!(t.elapsed() < Duration::from_secs(10), "not reclaimed: {s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let before = rss_kb(worker);
    wave(1000);
    let peak = rss_kb(worker);
    assert!(
        stats(port)["engine"].as_u64().unwrap() > 0,
        "sessions alive before the timeout"
    );
    let took = wait_empty();
    wave(1000);
    wait_empty();
    let after = rss_kb(worker);
    eprintln!("RSS KiB: before {before}, 1000 sessions {peak}, after two waves reclaimed {after}; reclaimed in {took:?}");
    assert!(
        after <= peak + peak / 10,
        "a second wave grew memory: {peak} -> {after} KiB"
    );
}

#[test]
fn cors_and_the_sid_cookie_when_configured() {
    let srv = start_path(
        example_path("sio_testbed"),
        &[
            "--workers",
            "1",
            "--cors-origin",
            "https://app.example",
            "--cors-credentials",
            "--cookie",
            "io",
        ],
        1,
    );
    let port = srv.port();
    let get = |origin: &str| {
        raw_http(
            port,
            format!("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .to_ascii_lowercase()
    };
    let ok = get("https://app.example");
    assert!(
        ok.contains("access-control-allow-origin: https://app.example"),
        "{ok}"
    );
    assert!(
        ok.contains("access-control-allow-credentials: true"),
        "{ok}"
    );
    assert!(ok.contains("set-cookie: io="), "{ok}");
    let other = get("https://evil.example");
    assert!(
        !other.contains("access-control-allow-origin"),
        "another origin gets no CORS: {other}"
    );
    let pre = raw_http(
        port,
        b"OPTIONS /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAccess-Control-Request-Headers: content-type\r\nConnection: close\r\n\r\n",
    )
    .to_ascii_lowercase();
    assert!(pre.starts_with("http/1.1 204"), "{pre}");
    assert!(pre.contains("access-control-allow-methods:"), "{pre}");
    assert!(
        pre.contains("access-control-allow-headers: content-type"),
        "{pre}"
    );
}
