//! The runtime's seam, driven by a server written against `Handler` directly
//! (`tests/support/seam.rs`): held requests, handler-decided upgrades with sanitised headers,
//! typed per-connection state, peer messages on a layer's own channel, worker handles,
//! truthful broadcast reports and public close reasons.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::*;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

fn seam(workers: &str) -> ServerProc {
    start("seam", &["--workers", workers])
}

fn http_stream(port: u16, req: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    s.write_all(req).unwrap();
    s
}

/// Reads what arrives until the stream is quiet for its read timeout (or closes).
fn read_quiet(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The fd of the request the server printed as held, then the reason of its `on_disconnect`
/// once `act` has run.
fn held_disconnect_reason(srv: &ServerProc, act: impl FnOnce()) -> String {
    let held = srv
        .wait_line(Duration::from_secs(5), |l| l.starts_with("held "))
        .expect("a held request");
    let fd = held.trim_start_matches("held ").to_string();
    act();
    let prefix = format!("disconnected {fd} ");
    srv.wait_line(Duration::from_secs(5), |l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no disconnect of fd {fd}: {:?}", srv.lines()))
        .trim_start_matches(&prefix)
        .to_string()
}

fn whoami_seam(ws: &mut Ws) -> (u64, usize) {
    let r = call(ws, "whoami");
    let field = |k: &str| {
        r.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {k} in {r}"))
    };
    (field("fd="), field("worker=") as usize)
}

fn on_both_workers(port: u16) -> ((Ws, u64), (Ws, u64)) {
    clients_on_two_workers_with(port, whoami_seam)
}

#[test]
fn a_held_request_is_answered_later_and_pipelined_requests_wait_for_it() {
    let srv = seam("1");
    let mut held = http_stream(
        srv.port(),
        b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(read_quiet(&mut held), "", "nothing is answered while held");
    let r = raw_http(
        srv.port(),
        b"GET /release?msg=hi HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.contains("answered 1"), "{r}");
    let got = read_quiet(&mut held);
    let first = got.find("released hi").expect(&got);
    let second = got.find("not here").expect(&got);
    assert!(first < second, "answers in request order: {got}");
}

#[test]
fn a_held_client_that_leaves_gets_on_disconnect_and_is_not_answered() {
    let srv = seam("1");
    let mut held = http_stream(srv.port(), b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(read_quiet(&mut held), "");
    let reason = held_disconnect_reason(&srv, || drop(held));
    assert_eq!(reason, "ConnectionLost");
    let r = raw_http(
        srv.port(),
        b"GET /release HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.contains("answered 0"), "{r}");
}

#[test]
fn input_piling_up_behind_a_held_request_is_bounded() {
    let srv = seam("1");
    let mut held = http_stream(srv.port(), b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(read_quiet(&mut held), "");
    // More than max_header_size + package_max_length (8 KiB + 2 MiB) behind the held request.
    let reason = held_disconnect_reason(&srv, || {
        let junk = vec![b'x'; 64 * 1024];
        for _ in 0..48 {
            if held.write_all(&junk).is_err() {
                break; // already closed by the server
            }
        }
    });
    assert_eq!(reason, "ServerDropped");
}

#[test]
fn the_handler_refuses_upgrades_with_its_own_response() {
    let srv = seam("1");
    let r = raw_http(
        srv.port(),
        b"GET /refuse HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("refused by the handler"), "{r}");
}

#[test]
fn handler_headers_in_the_101_cannot_split_the_response() {
    let srv = seam("1");
    let r = raw_http(
        srv.port(),
        b"GET /?v=a%0D%0AX-Injected:%20yes%0D%0A%0D%0Aboom HTTP/1.1\r\nHost: x\r\n\
          Upgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 101"), "{r}");
    let head = r.split("\r\n\r\n").next().unwrap_or("");
    assert!(
        !head
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("x-injected")),
        "{head}"
    );
    assert!(
        head.contains("X-Value: a  X-Injected: yes    boom"),
        "{head}"
    );
}

#[test]
fn upgrades_accepted_by_a_handler_still_negotiate_compression() {
    let srv = start("seam", &["--workers", "1", "--compression"]);
    let (_ws, resp) = ws_connect_with(
        srv.port(),
        "/",
        &[("Sec-WebSocket-Extensions", "permessage-deflate")],
    )
    .unwrap();
    let ext = resp
        .headers()
        .get("sec-websocket-extensions")
        .map(|v| v.to_str().unwrap_or("").to_string());
    assert!(
        ext.as_deref()
            .is_some_and(|e| e.starts_with("permessage-deflate")),
        "{ext:?}"
    );
}

#[test]
fn typed_connection_state_lives_with_the_connection() {
    let srv = seam("1");
    let mut alice = ws_connect(srv.port(), "/?name=alice");
    let mut other = ws_connect(srv.port(), "/");
    assert_eq!(call(&mut alice, "name"), "name=alice");
    assert_eq!(call(&mut other, "name"), "name=anonymous");
}

#[test]
fn layers_talk_between_workers_on_their_own_channel() {
    let srv = seam("2");
    let ((mut a, _), (mut b, _)) = on_both_workers(srv.port());
    assert_eq!(call(&mut a, "peer 1 hello"), "hello via 1 from 0");
    assert_eq!(call(&mut b, "peer 0 back"), "back via 0 from 1");
    assert_eq!(call(&mut a, "peer 0 self"), "self via 0 from 0");
    assert_eq!(call(&mut a, "peer 9 nowhere"), "peer failed");
    // From a thread of worker 0, through its handle, to worker 1.
    assert_eq!(call(&mut a, "thread-peer 1 hi"), "hi via 1 from 0");
}

#[test]
fn a_thread_runs_work_on_the_worker_through_its_handle() {
    let srv = seam("1");
    let mut ws = ws_connect(srv.port(), "/");
    assert_eq!(call(&mut ws, "thread ping"), "thread ping");
}

#[test]
fn a_broadcast_reports_what_it_reached() {
    let srv = seam("2");
    let ((mut a, _), (mut b, _)) = on_both_workers(srv.port());
    send_text(&mut a, "bcast news");
    // The sender gets the broadcast itself and then the report, in that order.
    assert_eq!(recv_text(&mut a), "news");
    assert_eq!(recv_text(&mut a), "local=1 workers=1 unreachable=0");
    assert_eq!(recv_text(&mut b), "news");
}

#[test]
fn close_reasons_reach_the_handler() {
    let srv = seam("1");
    let reason_of = |fd: u64| {
        srv.wait_line(Duration::from_secs(5), |l| {
            l.starts_with(&format!("closed {fd} "))
        })
        .unwrap_or_else(|| panic!("no close line for fd {fd}: {:?}", srv.lines()))
    };
    let mut ws = ws_connect(srv.port(), "/");
    let (fd, _) = whoami_seam(&mut ws);
    ws.close(Some(CloseFrame {
        code: CloseCode::from(4001),
        reason: "".into(),
    }))
    .unwrap();
    let _ = ws.read();
    assert!(reason_of(fd).ends_with("PeerClosed(Some(4001))"));

    let mut ws = ws_connect(srv.port(), "/");
    let (fd, _) = whoami_seam(&mut ws);
    send_text(&mut ws, "bye 4002");
    while !matches!(ws.read(), Ok(Message::Close(_)) | Err(_)) {}
    assert!(reason_of(fd).ends_with("ServerClosed(4002)"));

    let mut ws = ws_connect(srv.port(), "/");
    let (fd, _) = whoami_seam(&mut ws);
    drop(ws);
    assert!(reason_of(fd).ends_with("ConnectionLost"));

    let mut ws = ws_connect(srv.port(), "/");
    let (fd, _) = whoami_seam(&mut ws);
    let s = ws.get_mut();
    s.write_all(&[0x81, 0x02, b'h', b'i']).unwrap(); // unmasked: a protocol error
    assert!(reason_of(fd).ends_with("ProtocolError(1002)"));
}
