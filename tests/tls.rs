//! TLS end to end (real master + workers, rustls clients): `wss://` and `https://` on one
//! port, large and many messages, certificates re-read on reload, the output bound, memory
//! per idle connection, and every kind of bad input closed or answered cleanly while other
//! clients carry on.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::ClientConnection;
use support::pki::TestPki;
use support::tls::*;
use support::*;
use tungstenite::Message;

fn echo_round(ws: &mut Wss, text: &str) {
    ws.send(Message::text(text)).expect("send");
    loop {
        match ws.read().expect("read") {
            Message::Text(t) => {
                assert_eq!(t.as_str(), text);
                return;
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A testbed client answers after its welcome.
fn testbed_client(port: u16, pki: &TestPki) -> Wss {
    let mut ws = wss_connect(port, pki, "/");
    match ws.read().expect("welcome") {
        Message::Text(t) => assert!(t.starts_with("welcome"), "{t}"),
        other => panic!("unexpected {other:?}"),
    }
    ws
}

/// The first flight of a real client: its ClientHello.
fn client_hello(pki: &TestPki) -> Vec<u8> {
    let cfg = client_config(&pki.ca_der, &[b"http/1.1"]);
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = ClientConnection::new(cfg, name).unwrap();
    let mut v = Vec::new();
    c.write_tls(&mut v).unwrap();
    v
}

/// Reads until EOF (or a reset); returns what came and how long it took.
fn read_to_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    s.set_read_timeout(Some(limit)).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no close within {limit:?}: {e}"),
        }
    }
    (got, start.elapsed())
}

#[test]
fn wss_echo_of_text_binary_and_large_messages() {
    let pki = TestPki::new("wss-echo");
    let srv = start_tls("echo", &pki, &["--workers", "2"]);
    let mut ws = wss_connect(srv.port(), &pki, "/");
    echo_round(&mut ws, "héllo over TLS");
    for size in [
        0usize,
        1,
        125,
        16 * 1024 - 4,
        16 * 1024 + 1,
        1 << 20,
        3 << 20,
    ] {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        ws.send(Message::binary(data.clone())).unwrap();
        assert_eq!(ws.read().unwrap(), Message::binary(data), "{size} bytes");
    }
    // Many small messages in flight at once come back whole and in order.
    for i in 0..2000 {
        ws.write(Message::text(i.to_string())).unwrap();
    }
    ws.flush().unwrap();
    for i in 0..2000 {
        assert_eq!(ws.read().unwrap(), Message::text(i.to_string()));
    }
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(_)) | Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("unclean close: {e}"),
        }
    }
}

#[test]
fn https_and_wss_share_the_port_with_alpn_http_1_1() {
    let pki = TestPki::new("https");
    let srv = start_tls("testbed", &pki, &["--workers", "2", "--with-request"]);
    let mut tls = tls_connect(srv.port(), &pki);
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    // Two requests on one keep-alive TLS connection.
    for q in ["a=1", "b=2"] {
        write!(tls, "GET /x?{q} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains(&format!("query={q}")) {
            let n = tls.read(&mut buf).unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"));
    }
    let r = https(
        srv.port(),
        &pki,
        b"GET /y HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("path=/y query="),
        "{r}"
    );
    let mut ws = testbed_client(srv.port(), &pki);
    echo_round(&mut ws, "ws next to https");
    // A client that offers no protocol we speak is refused (no_application_protocol).
    let h2 = client_config(&pki.ca_der, &[b"h2"]);
    assert!(tls_connect_with(srv.port(), h2).is_err());
    echo_round(&mut ws, "still here");
}

#[test]
fn plain_http_to_a_tls_port_gets_400_and_others_carry_on() {
    let pki = TestPki::new("plain-http");
    let srv = start_tls("testbed", &pki, &["--workers", "2", "--with-request"]);
    let mut ws = testbed_client(srv.port(), &pki);
    let r = raw_http(srv.port(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(r.contains("This port speaks TLS"), "{r}");
    let r = raw_http(
        srv.port(),
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    echo_round(&mut ws, "unaffected");
}

#[test]
fn truncated_client_hellos_and_garbage_are_closed_cleanly() {
    let pki = TestPki::new("truncated");
    let srv = start_tls(
        "testbed",
        &pki,
        &["--workers", "2", "--handshake-timeout-ms", "600"],
    );
    let mut ws = testbed_client(srv.port(), &pki);
    let hello = client_hello(&pki);

    // Half a ClientHello, then the client hangs up: closed at once.
    let mut s = TcpStream::connect(("127.0.0.1", srv.port())).unwrap();
    s.write_all(&hello[..hello.len() / 2]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (got, took) = read_to_close(&mut s, Duration::from_secs(5));
    assert!(
        got.is_empty() && took < Duration::from_millis(500),
        "{got:?} {took:?}"
    );

    // Half a ClientHello, then nothing: closed at the handshake timeout.
    let mut s = TcpStream::connect(("127.0.0.1", srv.port())).unwrap();
    s.write_all(&hello[..hello.len() / 2]).unwrap();
    let (got, took) = read_to_close(&mut s, Duration::from_secs(5));
    assert!(got.is_empty(), "{got:?}");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // A record of no known type: an alert, then the close.
    let mut s = TcpStream::connect(("127.0.0.1", srv.port())).unwrap();
    s.write_all(&[0x99, 0x03, 0x03, 0x00, 0x02, 0x00, 0x00])
        .unwrap();
    let (got, took) = read_to_close(&mut s, Duration::from_secs(5));
    assert_eq!(got.first(), Some(&0x15), "an alert record: {got:?}");
    assert!(took < Duration::from_millis(500), "{took:?}");

    // A ClientHello whose handshake length lies.
    let mut bad = hello.clone();
    bad[6..9].copy_from_slice(&[0x00, 0x00, 0x01]);
    let mut s = TcpStream::connect(("127.0.0.1", srv.port())).unwrap();
    s.write_all(&bad).unwrap();
    let (_, took) = read_to_close(&mut s, Duration::from_secs(5));
    assert!(took < Duration::from_millis(500), "{took:?}");

    echo_round(&mut ws, "unaffected");
}

#[test]
fn a_client_that_stalls_mid_handshake_is_closed_at_the_handshake_timeout() {
    let pki = TestPki::new("stall");
    let srv = start_tls(
        "testbed",
        &pki,
        &["--workers", "2", "--handshake-timeout-ms", "600"],
    );
    let mut ws = testbed_client(srv.port(), &pki);
    // The whole ClientHello: the server answers with its flight, then waits for our
    // Finished, which never comes.
    let mut s = TcpStream::connect(("127.0.0.1", srv.port())).unwrap();
    s.write_all(&client_hello(&pki)).unwrap();
    let (got, took) = read_to_close(&mut s, Duration::from_secs(5));
    assert_eq!(got.first(), Some(&0x16), "the server's handshake flight");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // A handshake done, and then no HTTP request: the same timeout.
    let mut tls = tls_connect(srv.port(), &pki);
    let start = Instant::now();
    let mut buf = [0u8; 16];
    let n = tls.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(start.elapsed() < Duration::from_secs(3));
    echo_round(&mut ws, "unaffected");
}

#[test]
fn a_bad_certificate_or_key_stops_the_start_naming_the_file() {
    let pki = TestPki::new("badfiles");
    let other = TestPki::new("badfiles-other");
    let garbage = pki.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = pki.dir.join("missing.pem");
    let cases = [
        (
            &missing,
            &pki.key,
            format!("cannot load ssl_cert_file {}", missing.display()),
        ),
        (
            &garbage,
            &pki.key,
            format!("cannot load ssl_cert_file {}", garbage.display()),
        ),
        (
            &pki.cert,
            &garbage,
            format!("cannot load ssl_key_file {}", garbage.display()),
        ),
        (
            &pki.cert,
            &other.key,
            format!("ssl_key_file {}", other.key.display()),
        ),
    ];
    for (cert, key, want) in cases {
        let out = Command::new(example_path("echo"))
            .args(["--host", "127.0.0.1", "--port", "0", "--workers", "1"])
            .arg("--ssl-cert-file")
            .arg(cert)
            .arg("--ssl-key-file")
            .arg(key)
            .stdin(Stdio::null())
            .output()
            .expect("run echo");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&want), "{want:?} not in {err}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    }
}

#[test]
fn certificates_are_reread_on_reload_and_kept_when_the_new_files_are_bad() {
    let first = TestPki::new("reload-a");
    let second = TestPki::new("reload-b");
    let live = TestPki::new("reload-live");
    let copy = |from: &TestPki| {
        std::fs::copy(&from.cert, &live.cert).unwrap();
        std::fs::copy(&from.key, &live.key).unwrap();
    };
    copy(&first);
    let srv = start_tls_logged("testbed", &live, &["--workers", "2"]);
    let trusts = |pki: &TestPki| {
        tls_connect_with(srv.port(), client_config(&pki.ca_der, &[b"http/1.1"])).is_ok()
    };
    assert!(trusts(&first) && !trusts(&second));

    copy(&second);
    let before = srv.worker_pids();
    srv.signal(libc::SIGUSR1);
    srv.wait_workers_replaced(&before, 2);
    for _ in 0..10 {
        assert!(
            trusts(&second) && !trusts(&first),
            "the renewed certificate is served"
        );
    }

    std::fs::write(&live.cert, "broken\n").unwrap();
    let before = srv.worker_pids();
    srv.signal(libc::SIGUSR1);
    srv.wait_workers_replaced(&before, 2);
    assert!(trusts(&second), "the running certificate is kept");
    let log = srv.stderr_text();
    assert!(
        log.contains("keeping the running TLS certificates")
            && log.contains(&live.cert.display().to_string()),
        "{log}"
    );
}

#[test]
fn a_tls_client_that_never_reads_is_closed_at_buffer_output_size() {
    let pki = TestPki::new("slow-reader");
    let srv = start_tls(
        "testbed",
        &pki,
        &["--workers", "1", "--buffer-output-size", "1048576"],
    );
    let mut slow = testbed_client(srv.port(), &pki);
    let mut other = testbed_client(srv.port(), &pki);
    // 4 GiB asked for; the server stops at ~1 MiB queued plus what the kernel holds.
    slow.send(Message::text("flood 65536 65536")).unwrap();
    let line = srv
        .wait_line(Duration::from_secs(20), |l| l.starts_with("flood sent"))
        .expect("flood finished");
    let sent: usize = line["flood sent ".len()..].parse().unwrap();
    assert!(sent < 65536, "the flood was never cut off: {line}");
    for pid in srv.worker_pids() {
        assert!(
            rss_kb(pid) < 200 * 1024,
            "worker {pid} RSS {} KiB",
            rss_kb(pid)
        );
    }
    echo_round(&mut other, "unaffected");
}

#[test]
fn an_idle_tls_connection_costs_a_few_kib_in_the_worker() {
    let pki = TestPki::new("idle-memory");
    let srv = start_tls("echo", &pki, &["--workers", "1"]);
    let worker = srv.worker_pids()[0];
    let mut warm: Vec<Wss> = (0..50)
        .map(|_| wss_connect(srv.port(), &pki, "/"))
        .collect();
    echo_round(&mut warm[0], "warm");
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kb(worker);
    const N: u64 = 600;
    let mut clients = Vec::new();
    for i in 0..N {
        let mut ws = wss_connect(srv.port(), &pki, "/");
        if i % 100 == 0 {
            echo_round(&mut ws, "alive");
        }
        clients.push(ws);
    }
    std::thread::sleep(Duration::from_millis(300));
    let per_conn = (rss_kb(worker).saturating_sub(before)) * 1024 / N;
    eprintln!("worker RSS per idle TLS WebSocket connection: {per_conn} bytes");
    assert!(
        per_conn < 12 * 1024,
        "{per_conn} bytes per idle TLS connection"
    );
    echo_round(&mut clients[0], "still alive");
}

#[test]
fn a_tls_request_for_another_workers_session_gets_503_not_a_hand_off() {
    // Engine.IO long-polling hands a request to the worker holding its session, with its
    // socket; a TLS connection's state cannot go with the socket, so that is refused.
    let pki = TestPki::new("handoff");
    let cert = pki.cert.to_string_lossy().into_owned();
    let key = pki.key.to_string_lossy().into_owned();
    let srv = start_logged(
        "sio_testbed",
        &[
            "--workers",
            "2",
            "--ssl-cert-file",
            &cert,
            "--ssl-key-file",
            &key,
        ],
    );
    let exchange = |method: &str, path: &str, body: &str| {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let r = https(srv.port(), &pki, req.as_bytes());
        let status: u16 = r.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, r)
    };
    let (status, open) = exchange("GET", "/socket.io/?EIO=4&transport=polling", "");
    assert_eq!(status, 200, "{open}");
    let sid = open
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("sid")
        .to_string();
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        // A noop packet: answered `ok` by the session's worker, which changes nothing.
        let (status, r) = exchange("POST", &path, "6");
        assert!(matches!(status, 200 | 503), "{r}");
        seen.insert(status);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen.len(),
        2,
        "requests landed on one worker only: {seen:?}"
    );
    assert!(srv
        .stderr_text()
        .contains("a TLS connection cannot move to worker"));
}
