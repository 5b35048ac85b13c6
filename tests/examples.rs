//! The examples behave as their seeds and the README say (real processes, 2 workers).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::*;
use tungstenite::Message;

fn ex(name: &str) -> ServerProc {
    start(name, &["--workers", "2"])
}

fn http_get(port: u16, path: &str) -> String {
    raw_http(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn echo_returns_text_and_binary_unchanged() {
    let srv = ex("echo");
    let mut ws = ws_connect(srv.port(), "/");
    ws.send(Message::text("héllo")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("héllo"));
    ws.send(Message::binary(vec![0u8, 255, 7])).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(vec![0u8, 255, 7]));
}

#[test]
fn broadcast_example_pushes_an_http_message_to_every_client_of_every_worker() {
    let srv = ex("broadcast");
    let mut clients: Vec<Ws> = (0..8).map(|_| ws_connect(srv.port(), "/")).collect();
    // Prove the clients are established (they answer), then trigger.
    for c in clients.iter_mut() {
        assert_eq!(call(c, "hi"), "this is server");
    }
    let r = http_get(srv.port(), "/?message=hello%20all");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    for c in clients.iter_mut() {
        assert_eq!(recv_text(c), "hello all");
    }
    // The seed's loop form reports how many it reached.
    let r = http_get(srv.port(), "/?message=again&mode=loop");
    assert!(r.contains("pushed to 8"), "{r}");
    for c in clients.iter_mut() {
        assert_eq!(recv_text(c), "again");
    }
    assert!(srv
        .lines()
        .iter()
        .any(|l| l.starts_with("server: handshake success with fd")));
}

#[test]
fn custom_handshake_refuses_without_token_and_welcomes_after_101() {
    let srv = ex("custom_handshake");
    let r = raw_http(
        srv.port(),
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    let r = raw_http(
        srv.port(),
        b"GET /?token=t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: bad\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let (mut ws, resp) = ws_connect_with(
        srv.port(),
        "/?token=abc",
        &[("Sec-WebSocket-Protocol", "chat")],
    )
    .unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "chat"
    );
    assert_eq!(recv_text(&mut ws), "hello, welcome\n");
    assert_eq!(call(&mut ws, "echo me"), "echo me");
    let (_ws, resp) = ws_connect_with(srv.port(), "/?token=abc", &[]).unwrap();
    assert!(resp.headers().get("sec-websocket-protocol").is_none());
    assert!(srv
        .wait_line(Duration::from_secs(5), |l| l == "Client connected")
        .is_some());
}

#[test]
fn ping_pong_example_answers_pings_by_hand() {
    let srv = ex("ping_pong");
    let mut ws = ws_connect(srv.port(), "/");
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .unwrap();
    match ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(&p[..], b"are you there"),
        m => panic!("unexpected {m:?}"),
    }
    assert!(srv
        .wait_line(Duration::from_secs(5), |l| l
            == "Ping frame received: Code 9")
        .is_some());
}

#[test]
fn close_frame_example_sees_code_and_reason() {
    let srv = ex("close_frame");
    let mut ws = ws_connect(srv.port(), "/");
    ws.close(Some(tungstenite::protocol::CloseFrame {
        code: close_code(4000),
        reason: "done here".into(),
    }))
    .unwrap();
    assert_eq!(
        recv_close(&mut ws).map(|c| c.0),
        Some(4000),
        "the server echoes the code"
    );
    let line = srv.wait_line(Duration::from_secs(5), |l| {
        l.starts_with("Close frame received")
    });
    assert_eq!(
        line.as_deref(),
        Some("Close frame received: Code 4000 Reason done here")
    );
}

/// Raw upgrade offering permessage-deflate; returns the stream and the response head.
fn raw_upgrade(port: u16, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

fn masked_text(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x81, 0x80 | payload.len() as u8, 1, 2, 3, 4];
    f.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]),
    );
    f
}

fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).unwrap();
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).unwrap();
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).unwrap();
    (h[0], p)
}

#[test]
fn compression_example_pushes_compressed_only_when_negotiated() {
    let srv = ex("compression");
    let (mut s, head) = raw_upgrade(
        srv.port(),
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-extensions: permessage-deflate"),
        "{head}"
    );
    s.write_all(&masked_text(b"hi")).unwrap();
    let (b0, payload) = read_frame(&mut s);
    assert_eq!(b0 & 0x40, 0x40, "RSV1 set: the push is compressed");
    let text = prefork_ws::protocol::deflate::inflate_once(&payload, 1 << 20).unwrap();
    assert_eq!(text, b"Hello Swoole");
    // Without the offer the same push goes out plain.
    let (mut s, head) = raw_upgrade(srv.port(), "");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions"),
        "{head}"
    );
    s.write_all(&masked_text(b"hi")).unwrap();
    let (b0, payload) = read_frame(&mut s);
    assert_eq!((b0, payload.as_slice()), (0x81, &b"Hello Swoole"[..]));
}

#[test]
fn heartbeat_example_pings_and_closes_clients_that_stay_silent() {
    let srv = start(
        "heartbeat",
        &[
            "--workers",
            "2",
            "--check",
            "1",
            "--idle",
            "2",
            "--ping-ms",
            "300",
        ],
    );
    // A raw client that never answers pings: the server's pings do not count as activity.
    let (mut s, head) = raw_upgrade(srv.port(), "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(&masked_text(b"hello")).unwrap();
    let mut pings = 0;
    let close_code = loop {
        let (b0, payload) = read_frame(&mut s);
        match b0 & 0x0f {
            0x9 => pings += 1,
            0x8 => break u16::from_be_bytes([payload[0], payload[1]]),
            op => panic!("unexpected opcode {op}"),
        }
    };
    assert!(
        pings >= 2,
        "the seed's ping plus periodic pings, got {pings}"
    );
    assert_eq!(close_code, 1000, "idle client closed with a close frame");
    // A client that answers pings (tungstenite does) stays connected past the idle time.
    let mut ws = ws_connect(srv.port(), "/");
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(3500) {
        match ws.read() {
            Ok(Message::Ping(_)) => {}
            other => panic!("live client was disturbed: {other:?}"),
        }
    }
}

#[test]
fn class_server_example_works_as_a_struct() {
    let srv = ex("class_server");
    let mut a = ws_connect(srv.port(), "/");
    let mut b = ws_connect(srv.port(), "/");
    assert_eq!(call(&mut a, "x"), "this is server");
    assert_eq!(call(&mut b, "y"), "this is server");
    assert!(http_get(srv.port(), "/?message=to%20all").contains("ok"));
    assert_eq!(recv_text(&mut a), "to all");
    assert_eq!(recv_text(&mut b), "to all");
}

#[test]
fn multi_port_example_serves_http_on_one_port_and_websocket_on_the_other() {
    let srv = start_path(
        example_path("multi_port"),
        &["--workers", "2", "--http-port", "0"],
        2,
    );
    let (ws_port, http_port) = (srv.ports[0], srv.ports[1]);
    assert!(srv
        .lines()
        .iter()
        .any(|l| l.starts_with("HTTP Server listening at")));
    let mut ws = ws_connect(ws_port, "/");
    let hello = recv_text(&mut ws);
    let fd: u64 = hello.trim_start_matches("fd:").parse().unwrap();
    let r = http_get(http_port, &format!("/push?fd={fd}&message=from%20http"));
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(recv_text(&mut ws), "from http");
    assert!(http_get(http_port, "/push?fd=999999&message=x").starts_with("HTTP/1.1 404"));
    assert!(http_get(http_port, "/").contains(&format!("Hello Hyperf. port {http_port}")));
    // The HTTP port does not upgrade.
    let r = raw_http(
        http_port,
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(http_get(http_port, &format!("/disconnect?fd={fd}")).starts_with("HTTP/1.1 200"));
    assert_eq!(recv_close(&mut ws), Some((1000, "bye".into())));
}

#[test]
fn context_example_reads_back_the_cookie_username() {
    let srv = ex("context");
    let (mut ws, _) =
        ws_connect_with(srv.port(), "/", &[("Cookie", "theme=dark; username=alice")]).unwrap();
    assert_eq!(call(&mut ws, "who am i"), "Username: alice");
    let mut anon = ws_connect(srv.port(), "/");
    assert_eq!(call(&mut anon, "?"), "Username: guest");
}

#[test]
fn example_command_lines_reject_bad_flags_and_explain_themselves() {
    let run = |args: &[&str]| {
        std::process::Command::new(example_path("echo"))
            .args(args)
            .output()
            .expect("run echo")
    };
    let help = run(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert_eq!(help.status.code(), Some(0));
    assert!(
        text.contains("--host") && text.contains("--port") && text.contains("--workers"),
        "{text}"
    );
    for bad in [
        &["--workers", "0"][..],
        &["--port", "x"],
        &["--no-such-flag", "1"],
    ] {
        let out = run(bad);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let missing = std::process::Command::new(example_path("hyperf_app"))
        .args(["--port", "0", "--http-port", "0"])
        .output()
        .expect("run hyperf_app");
    assert_eq!(missing.status.code(), Some(2), "--jwt-secret is required");
}
