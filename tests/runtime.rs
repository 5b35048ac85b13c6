//! The prefork runtime and the Swoole API, end to end: a real master with 2 workers on an
//! ephemeral port, real sockets, Rust clients (tungstenite and raw TCP).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;
use tungstenite::Message;

fn testbed(extra: &[&str]) -> ServerProc {
    let mut args = vec!["--workers", "2"];
    args.extend_from_slice(extra);
    start("testbed", &args)
}

/// Raw client: handshake by hand, then arbitrary bytes.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn open(port: u16) -> Raw {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        let mut r = Raw { s, buf: Vec::new() };
        let head = r.read_until(b"\r\n\r\n");
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        r
    }

    fn read_until(&mut self, pat: &[u8]) -> Vec<u8> {
        let mut tmp = [0u8; 4096];
        loop {
            if let Some(i) = self.buf.windows(pat.len()).position(|w| w == pat) {
                let out = self.buf[..i + pat.len()].to_vec();
                self.buf.drain(..i + pat.len());
                return out;
            }
            let n = self.s.read(&mut tmp).unwrap();
            assert!(n > 0, "eof before {:?}", String::from_utf8_lossy(pat));
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    /// Sends a masked frame (or unmasked if `mask` is None).
    fn frame(&mut self, b0: u8, payload: &[u8], mask: Option<[u8; 4]>) {
        let mut f = vec![b0];
        let m = if mask.is_some() { 0x80 } else { 0 };
        if payload.len() < 126 {
            f.push(m | payload.len() as u8);
        } else if payload.len() < 65536 {
            f.push(m | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        } else {
            f.push(m | 127);
            f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
        match mask {
            Some(k) => {
                f.extend_from_slice(&k);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => f.extend_from_slice(payload),
        }
        self.s.write_all(&f).unwrap();
    }

    /// Reads frames until a close frame; returns its code (1005 if empty), then expects EOF.
    fn expect_close(&mut self) -> u16 {
        let mut tmp = [0u8; 65536];
        loop {
            if let Some(f) = prefork_ws::unpack(&self.buf) {
                let used = frame_len(&self.buf);
                self.buf.drain(..used);
                if f.opcode == 8 {
                    let code = if f.data.len() >= 2 {
                        u16::from_be_bytes([f.data[0], f.data[1]])
                    } else {
                        1005
                    };
                    // The server closes the TCP connection after its close frame.
                    let start = Instant::now();
                    loop {
                        match self.s.read(&mut tmp) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(e) => {
                                assert!(
                                    e.kind() == std::io::ErrorKind::ConnectionReset,
                                    "no EOF after close: {e}"
                                );
                                break;
                            }
                        }
                        assert!(start.elapsed() < Duration::from_secs(5));
                    }
                    return code;
                }
                continue;
            }
            let n = self.s.read(&mut tmp).expect("server answered nothing");
            assert!(n > 0, "EOF without a close frame");
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }
}

fn frame_len(b: &[u8]) -> usize {
    let len7 = (b[1] & 0x7f) as usize;
    let masked = b[1] & 0x80 != 0;
    let (hl, len) = match len7 {
        126 => (4, u16::from_be_bytes([b[2], b[3]]) as usize),
        127 => (
            10,
            u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
        ),
        n => (2, n),
    };
    hl + if masked { 4 } else { 0 } + len
}

const MASK: Option<[u8; 4]> = Some([1, 2, 3, 4]);

#[test]
fn cross_worker_push_reaches_a_client_of_the_other_worker() {
    let srv = testbed(&[]);
    let ((mut a, fd_a), (mut b, fd_b)) = clients_on_two_workers(srv.port());
    let info_b = call(&mut a, &format!("info {fd_b}"));
    assert!(
        info_b.contains("worker=1") && info_b.contains("status=3"),
        "{info_b}"
    );
    let info_a = call(&mut b, &format!("info {fd_a}"));
    assert!(info_a.contains("worker=0"), "{info_a}");
    assert!(
        info_a.contains(&format!("server_port={}", srv.port())),
        "{info_a}"
    );
    assert_eq!(
        call(&mut a, &format!("push {fd_b} hello from worker 0")),
        "push:true"
    );
    assert_eq!(recv_text(&mut b), "hello from worker 0");
    assert_eq!(call(&mut b, &format!("push {fd_a} and back")), "push:true");
    assert_eq!(recv_text(&mut a), "and back");
}

#[test]
fn connections_lists_clients_of_every_worker() {
    let srv = testbed(&[]);
    let ((mut a, fd_a), (_b, fd_b)) = clients_on_two_workers(srv.port());
    let r = call(&mut a, "connections");
    assert!(
        r.contains(&fd_a.to_string()) && r.contains(&fd_b.to_string()),
        "{r}"
    );
    assert_eq!(call(&mut a, &format!("exist {fd_b}")), "exist:true");
    assert_eq!(
        call(&mut a, &format!("established {fd_b}")),
        "established:true"
    );
    assert_eq!(
        call(&mut a, "stats"),
        format!("connections={} workers=2", r.matches(',').count() + 1)
    );
}

#[test]
fn broadcast_reaches_every_client_exactly_once() {
    let srv = testbed(&[]);
    let mut clients: Vec<Ws> = (0..12)
        .map(|_| {
            let mut ws = ws_connect(srv.port(), "/");
            recv_text(&mut ws);
            ws
        })
        .collect();
    let workers: std::collections::HashSet<usize> =
        clients.iter_mut().map(|c| whoami(c).1).collect();
    assert_eq!(workers.len(), 2, "clients should land on both workers");
    send_text(&mut clients[0], "broadcast news");
    for c in clients.iter_mut() {
        assert_eq!(recv_text(c), "news");
    }
    // Exactly once: the next thing each client reads is the reply to its own command.
    for c in clients.iter_mut() {
        assert!(call(c, "whoami").starts_with("fd="));
    }
}

#[test]
fn stale_and_unknown_fds_return_false() {
    let srv = testbed(&[]);
    let ((mut a, _), (mut b, fd_b)) = clients_on_two_workers(srv.port());
    b.close(None).unwrap();
    let closed = recv_close(&mut b);
    eprintln!("b={fd_b} closed={closed:?}");
    let start = Instant::now();
    while call(&mut a, &format!("exist {fd_b}")) != "exist:false" {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "closed fd still exists"
        );
    }
    assert_eq!(call(&mut a, &format!("push {fd_b} x")), "push:false");
    assert_eq!(
        call(&mut a, &format!("established {fd_b}")),
        "established:false"
    );
    assert_eq!(call(&mut a, &format!("info {fd_b}")), "none");
    assert_eq!(call(&mut a, "push 0 x"), "push:false");
    assert_eq!(call(&mut a, "push 987654321 x"), "push:false");
    // A new connection never gets the old fd back.
    let mut c = ws_connect(srv.port(), "/");
    recv_text(&mut c);
    assert_ne!(whoami(&mut c).0, fd_b);
}

#[test]
fn disconnect_validates_code_and_reason_then_closes_with_them() {
    let srv = testbed(&[]);
    let ((mut a, _), (mut b, fd_b)) = clients_on_two_workers(srv.port());
    assert_eq!(
        call(&mut a, &format!("disconnect {fd_b} 1001 x")),
        "disconnect:false"
    );
    assert_eq!(
        call(&mut a, &format!("disconnect {fd_b} 3999 x")),
        "disconnect:false"
    );
    assert_eq!(
        call(&mut a, &format!("disconnect {fd_b} 5000 x")),
        "disconnect:false"
    );
    let long = "r".repeat(124);
    assert_eq!(
        call(&mut a, &format!("disconnect {fd_b} 4000 {long}")),
        "disconnect:false"
    );
    // b was not touched by the refused calls.
    assert!(call(&mut b, "whoami").starts_with("fd="));
    assert_eq!(
        call(&mut a, &format!("disconnect {fd_b} 4000 bye now")),
        "disconnect:true"
    );
    assert_eq!(recv_close(&mut b), Some((4000, "bye now".into())));
    assert_eq!(
        call(&mut a, &format!("disconnect {fd_b} 1000 again")),
        "disconnect:false"
    );
}

#[test]
fn close_drops_a_connection_of_any_worker_without_a_close_frame() {
    let srv = testbed(&[]);
    let ((mut a, fd_a), (mut b, fd_b)) = clients_on_two_workers(srv.port());
    assert_eq!(call(&mut a, &format!("close {fd_b}")), "close:true");
    assert_eq!(recv_close(&mut b), None, "TCP closed, no close frame");
    assert_eq!(
        call(&mut a, &format!("established {fd_b}")),
        "established:false"
    );
    let start = Instant::now();
    while call(&mut a, &format!("exist {fd_b}")) != "exist:false" {
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    assert_eq!(call(&mut a, &format!("close {fd_b}")), "close:false");
    // and a local one
    let mut c = ws_connect(srv.port(), "/");
    recv_text(&mut c);
    let (fd_c, _) = whoami(&mut c);
    // Closing itself: the reply pushed after `close` is refused, nothing else arrives.
    send_text(&mut c, &format!("close {fd_c}"));
    assert_eq!(recv_close(&mut c), None);
    assert!(call(&mut a, &format!("exist {fd_a}")) == "exist:true");
}

#[test]
fn plain_http_without_on_request_gets_400() {
    let srv = testbed(&[]);
    let r = raw_http(srv.port(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
}

#[test]
fn on_request_answers_plain_http_with_keep_alive() {
    let srv = testbed(&["--with-request", "1"]);
    let r = raw_http(
        srv.port(),
        b"GET /a?x=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        r.contains("path=/a query=x=1") && r.contains("path=/b"),
        "{r}"
    );
}

#[test]
fn subprotocol_is_echoed_only_when_offered() {
    let srv = testbed(&["--subprotocol", "superchat,chat"]);
    let (_ws, resp) = ws_connect_with(
        srv.port(),
        "/",
        &[("Sec-WebSocket-Protocol", "chat, superchat")],
    )
    .unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "superchat"
    );
    let (_ws, resp) = ws_connect_with(srv.port(), "/", &[]).unwrap();
    assert!(resp.headers().get("sec-websocket-protocol").is_none());
    let r = raw_http(
        srv.port(),
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: mqtt\r\n\r\n",
    );
    assert!(
        r.starts_with("HTTP/1.1 101") && !r.to_ascii_lowercase().contains("sec-websocket-protocol"),
        "{r}"
    );
}

#[test]
fn heartbeat_closes_idle_connections() {
    let srv = testbed(&["--heartbeat-check", "1", "--heartbeat-idle", "1"]);
    let mut idle = ws_connect(srv.port(), "/");
    recv_text(&mut idle);
    let start = Instant::now();
    let closed = recv_close(&mut idle);
    assert!(closed.is_some(), "idle client was not closed");
    assert!(start.elapsed() < Duration::from_secs(8));
}

#[test]
fn a_client_that_never_reads_is_closed_at_buffer_output_size_and_memory_stays_bounded() {
    let srv = testbed(&["--buffer-output-size", "1048576"]);
    let ((mut slow, _), (mut other, _)) = clients_on_two_workers(srv.port());
    // 4 GiB requested; the server must stop at ~1 MiB queued plus what the kernel holds.
    send_text(&mut slow, "flood 65536 65536");
    let line = srv
        .wait_line(Duration::from_secs(10), |l| l.starts_with("flood sent"))
        .expect("flood finished");
    let sent: usize = line["flood sent ".len()..].parse().unwrap();
    assert!(sent < 65536, "flood was never cut off: {line}");
    for pid in srv.worker_pids() {
        assert!(
            rss_kb(pid) < 200 * 1024,
            "worker {pid} RSS {} KiB",
            rss_kb(pid)
        );
    }
    // The slow client's connection is gone; others are fine.
    let mut buf = Vec::new();
    let mut s = slow.get_mut().try_clone().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.len() < 64 * 1024 * 1024, "read {} bytes", buf.len());
    assert!(call(&mut other, "whoami").starts_with("fd="));
}

#[test]
fn a_panic_in_a_callback_closes_only_that_connection() {
    let srv = testbed(&[]);
    let mut victim = ws_connect(srv.port(), "/");
    recv_text(&mut victim);
    let (_, worker) = whoami(&mut victim);
    let mut same_worker = loop {
        let mut ws = ws_connect(srv.port(), "/");
        recv_text(&mut ws);
        if whoami(&mut ws).1 == worker {
            break ws;
        }
    };
    let pids = srv.worker_pids();
    send_text(&mut victim, "panic");
    assert_eq!(recv_close(&mut victim).map(|c| c.0), Some(1011));
    assert_eq!(call(&mut same_worker, "still there?"), "still there?");
    assert_eq!(srv.worker_pids(), pids, "no worker restarted");
    // A panic in on_open as well.
    let mut p = ws_connect(srv.port(), "/panic-open");
    assert_eq!(recv_close(&mut p).map(|c| c.0), Some(1011));
    assert_eq!(call(&mut same_worker, "ok"), "ok");
}

#[test]
fn timers_pipe_messages_and_context_work() {
    let srv = testbed(&[]);
    let ((mut a, _), (mut b, _)) = clients_on_two_workers(srv.port());
    send_text(&mut a, "after 50 timer fired");
    assert_eq!(recv_text(&mut a), "timer fired");
    send_text(&mut a, "sendmsg 1 over the pipe");
    assert_eq!(recv_text(&mut a), "pipe from 0 at 1: over the pipe");
    send_text(&mut b, "sendmsg 0 back");
    assert_eq!(recv_text(&mut b), "pipe from 1 at 0: back");
    assert_eq!(call(&mut a, "sendmsg 7 nowhere"), "sendmsg:false");
    assert_eq!(call(&mut a, "ctx-get"), "unset");
    assert_eq!(call(&mut a, "ctx-set alice"), "ok");
    assert_eq!(call(&mut a, "ctx-get"), "alice");
    assert_eq!(call(&mut b, "ctx-get"), "unset");
}

#[test]
fn threads_push_through_the_server_handle_to_any_worker() {
    let srv = testbed(&[]);
    let ((mut a, fd_a), (mut b, fd_b)) = clients_on_two_workers(srv.port());
    send_text(&mut a, &format!("thread-push {fd_a} to myself"));
    assert_eq!(recv_text(&mut a), "to myself");
    send_text(&mut a, &format!("thread-push {fd_b} across workers"));
    assert_eq!(recv_text(&mut b), "across workers");
}

#[test]
fn large_messages_cross_workers_whole() {
    let srv = testbed(&[]);
    let ((mut a, _), (mut b, fd_b)) = clients_on_two_workers(srv.port());
    let big = "y".repeat(1_500_000);
    assert_eq!(call(&mut a, &format!("push {fd_b} {big}")), "push:true");
    assert_eq!(recv_text(&mut b), big);
    // and a binary echo of 1 MiB
    let data: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
    b.send(Message::binary(data.clone())).unwrap();
    match b.read().unwrap() {
        Message::Binary(d) => assert_eq!(&d[..], &data[..]),
        m => panic!("{m:?}"),
    }
}

// ---- SPEC §8: bad input gets a defined answer ----

#[test]
fn unmasked_client_frame_is_closed_with_1002() {
    let srv = testbed(&[]);
    let mut r = Raw::open(srv.port());
    r.frame(0x81, b"hi", None);
    assert_eq!(r.expect_close(), 1002);
}

#[test]
fn invalid_utf8_text_is_closed_with_1007() {
    let srv = testbed(&[]);
    let mut r = Raw::open(srv.port());
    r.frame(
        0x81,
        &[
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            0x65,
        ],
        MASK,
    );
    assert_eq!(r.expect_close(), 1007);
}

#[test]
fn too_large_message_is_closed_with_1009() {
    let srv = testbed(&["--package-max-length", "1024"]);
    let mut r = Raw::open(srv.port());
    r.frame(0x82, &[0u8; 2048], MASK);
    assert_eq!(r.expect_close(), 1009);
    // fragmented: each fragment small, total too large
    let mut r = Raw::open(srv.port());
    for i in 0..3 {
        r.frame(if i == 0 { 0x02 } else { 0x00 }, &[1u8; 600], MASK);
    }
    assert_eq!(r.expect_close(), 1009);
}

#[test]
fn reserved_opcode_and_rsv_bits_are_closed_with_1002() {
    let srv = testbed(&[]);
    let mut r = Raw::open(srv.port());
    r.frame(0x83, b"", MASK);
    assert_eq!(r.expect_close(), 1002);
    let mut r = Raw::open(srv.port());
    r.frame(0x81 | 0x40, b"x", MASK);
    assert_eq!(r.expect_close(), 1002);
}

#[test]
fn bad_http_is_400_and_oversize_headers_431_and_wrong_version_426() {
    let srv = testbed(&[]);
    let r = raw_http(srv.port(), b"GARBAGE\x01\x02 / HTTP/1.1\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let r = raw_http(srv.port(), big.as_bytes());
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    let r = raw_http(
        srv.port(),
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 426"), "{r}");
    assert!(r.contains("Sec-WebSocket-Version: 13"), "{r}");
    let r = raw_http(
        srv.port(),
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
}

#[test]
fn slowloris_is_closed_at_the_handshake_timeout() {
    let srv = testbed(&["--handshake-timeout-ms", "500"]);
    let mut s = TcpStream::connect(("127.0.0.1", srv.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected the server to close");
    assert!(start.elapsed() < Duration::from_secs(4));
    // others are unaffected
    let mut ws = ws_connect(srv.port(), "/");
    assert!(recv_text(&mut ws).starts_with("welcome"));
}

#[test]
fn nothing_a_client_sends_reaches_another_client() {
    let srv = testbed(&[]);
    let mut good = ws_connect(srv.port(), "/");
    recv_text(&mut good);
    for garbage in [
        &b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"[..],
        b"\x81\xfe\xff\xff",
    ] {
        let mut r = Raw::open(srv.port());
        r.s.write_all(garbage).unwrap();
        let _ = r.s.shutdown(std::net::Shutdown::Write);
    }
    assert_eq!(call(&mut good, "clean"), "clean");
}

#[test]
fn max_conn_refuses_connections_beyond_the_limit() {
    let srv = start("testbed", &["--workers", "2", "--max-conn", "3"]);
    let mut first = ws_connect(srv.port(), "/");
    recv_text(&mut first);
    // The harness's readiness probe (a bare TCP connect) counts until its worker reads the
    // EOF; on a loaded machine that can be after this line.
    let t = Instant::now();
    while call(&mut first, "connections").matches(',').count() > 0 {
        assert!(t.elapsed() < Duration::from_secs(5), "the probe never went");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut open: Vec<Ws> = std::iter::once(first)
        .chain((0..2).map(|_| {
            let mut ws = ws_connect(srv.port(), "/");
            recv_text(&mut ws);
            ws
        }))
        .collect();
    assert!(
        ws_connect_with(srv.port(), "/", &[]).is_err(),
        "a 4th connection must be refused"
    );
    let mut first = open.remove(0);
    first.close(None).unwrap();
    let _ = recv_close(&mut first);
    drop(first);
    let t = Instant::now();
    loop {
        if let Ok((mut ws, _)) = ws_connect_with(srv.port(), "/", &[]) {
            assert!(recv_text(&mut ws).starts_with("welcome"));
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "a freed slot is never reused"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pipelined_http_from_a_client_that_never_reads_is_bounded() {
    let srv = testbed(&["--with-request", "1", "--buffer-output-size", "65536"]);
    let mut s = TcpStream::connect(("127.0.0.1", srv.port())).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let one = b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n";
    let burst: Vec<u8> = one.iter().copied().cycle().take(one.len() * 4000).collect();
    // Keep sending without reading: the server must cut us off, not buffer without limit.
    let mut cut_off = false;
    for _ in 0..200 {
        if s.write_all(&burst).is_err() {
            cut_off = true;
            break;
        }
    }
    assert!(
        cut_off,
        "the server kept accepting pipelined requests from a client that never reads"
    );
    for pid in srv.worker_pids() {
        assert!(
            rss_kb(pid) < 100 * 1024,
            "worker {pid} RSS {} KiB",
            rss_kb(pid)
        );
    }
    let mut ws = ws_connect(srv.port(), "/");
    assert!(recv_text(&mut ws).starts_with("welcome"));
}

#[test]
fn data_and_fin_in_one_burst_are_both_handled() {
    let srv = testbed(&[]);
    let mut r = Raw::open(srv.port());
    let welcome = r.read_until(b"welcome");
    assert!(welcome.ends_with(b"welcome"));
    r.frame(0x81, b"last words", MASK);
    r.s.shutdown(std::net::Shutdown::Write).unwrap();
    // The echo arrives, then the server closes promptly (it saw the FIN behind the data).
    let start = Instant::now();
    let mut all = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        match r.s.read(&mut tmp) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&tmp[..n]),
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "close took {:?}",
        start.elapsed()
    );
    assert!(all.windows(10).any(|w| w == b"last words"), "echo missing");
    assert!(
        srv.wait_line(Duration::from_secs(3), |l| l.starts_with("close "))
            .is_some(),
        "on_close did not run"
    );
}

#[test]
fn on_close_can_still_read_the_connection_context() {
    let srv = testbed(&[]);
    let mut ws = ws_connect(srv.port(), "/");
    recv_text(&mut ws);
    let (fd, _) = whoami(&mut ws);
    assert_eq!(call(&mut ws, "ctx-set alice"), "ok");
    ws.close(None).unwrap();
    let _ = recv_close(&mut ws);
    drop(ws);
    let line = srv.wait_line(Duration::from_secs(5), |l| {
        l.starts_with(&format!("close {fd}"))
    });
    assert_eq!(line, Some(format!("close {fd} ctx=alice")));
}

#[test]
fn a_pushed_close_frame_runs_the_closing_handshake() {
    let srv = testbed(&[]);
    let ((mut a, _), (mut b, fd_b)) = clients_on_two_workers(srv.port());
    assert_eq!(
        call(&mut a, &format!("push-close {fd_b}")),
        "push-close:true"
    );
    assert_eq!(recv_close(&mut b).map(|c| c.0), Some(4000));
    assert_eq!(
        call(&mut a, &format!("push {fd_b} after close")),
        "push:false"
    );
}

#[test]
fn request_body_over_package_max_length_is_413() {
    let srv = testbed(&["--with-request", "1", "--package-max-length", "1024"]);
    let r = raw_http(
        srv.port(),
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    // A body within the limit is served.
    let r = raw_http(
        srv.port(),
        b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("path=/upload"),
        "{r}"
    );
}

#[test]
fn a_custom_handshake_cannot_split_the_101_and_still_negotiates_compression() {
    let srv = testbed(&["--custom-handshake", "--compression"]);
    let r = raw_http(
        srv.port(),
        b"GET /?v=a%0D%0AX-Injected:%20yes HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    );
    let head = r.split("\r\n\r\n").next().unwrap_or("");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        !head
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("x-injected")),
        "{head}"
    );
    assert!(head.contains("X-Value: a  X-Injected: yes"), "{head}");
    assert!(
        head.lines()
            .any(|l| l.starts_with("Sec-WebSocket-Extensions: permessage-deflate")),
        "{head}"
    );
    // Exactly one Sec-WebSocket-Accept, written by the runtime.
    assert_eq!(head.matches("Sec-WebSocket-Accept").count(), 1, "{head}");
    // The deferred open logic still runs after the 101.
    let (mut ws, _) = ws_connect_with(srv.port(), "/?v=x", &[]).unwrap();
    assert!(recv_text(&mut ws).starts_with("welcome "));
}

#[test]
fn broadcast_reports_recipients_and_workers() {
    let srv = testbed(&["--with-request", "1"]);
    let ((mut a, _), (mut b, _)) = clients_on_two_workers(srv.port());
    let r = raw_http(
        srv.port(),
        b"GET /broadcast-report?message=hey HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    // The HTTP connection itself is on one of the two workers: one local recipient there,
    // the other worker reached once.
    assert!(r.contains("local=1 workers=1 unreachable=0"), "{r}");
    assert_eq!(recv_text(&mut a), "hey");
    assert_eq!(recv_text(&mut b), "hey");
}
