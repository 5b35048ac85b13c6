//! `TlsSession` against rustls's own client, in memory: handshake, data both ways however
//! the bytes are cut, key updates, close_notify, and each kind of bad input.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::*;
use crate::runtime::tls::config;
use crate::runtime::tls::test_pki::TestPki;

struct Pair {
    server: TlsSession,
    client: ClientConnection,
    /// Plaintext the server decrypted so far.
    got: Vec<u8>,
    /// Plaintext the client decrypted so far.
    client_got: Vec<u8>,
    _pki: TestPki,
}

fn client_config(
    pki: &TestPki,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(pki.ca_der.clone())).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

fn pair_with(versions: &[&'static rustls::SupportedProtocolVersion]) -> Pair {
    let pki = TestPki::new("session");
    let server = TlsSession::new(config::load(&pki.cert, &pki.key).unwrap()).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut client = ClientConnection::new(client_config(&pki, versions), name).unwrap();
    client.set_buffer_limit(None);
    Pair {
        server,
        client,
        got: Vec::new(),
        client_got: Vec::new(),
        _pki: pki,
    }
}

fn pair() -> Pair {
    pair_with(rustls::DEFAULT_VERSIONS)
}

impl Pair {
    /// What the client wants to send.
    fn client_bytes(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        while self.client.wants_write() {
            self.client.write_tls(&mut v).unwrap();
        }
        v
    }

    /// Feeds the server `bytes` in pieces of `step`.
    fn feed_server(&mut self, bytes: &[u8], step: usize) -> Result<ReadState, TlsError> {
        let mut state = ReadState::Open;
        for piece in bytes.chunks(step.max(1)) {
            let mut piece = piece.to_vec();
            state = self.server.read(&mut piece, &mut self.got)?;
        }
        Ok(state)
    }

    /// Moves the server's pending output to the client.
    fn feed_client(&mut self) {
        let bytes = self.server.unsent().to_vec();
        self.server.sent(bytes.len());
        self.client_takes(&bytes);
    }

    fn client_takes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            self.client.read_tls(&mut bytes).unwrap();
            let state = self.client.process_new_packets().unwrap();
            let mut buf = vec![0; state.plaintext_bytes_to_read()];
            self.client.reader().read_exact(&mut buf).unwrap();
            self.client_got.extend_from_slice(&buf);
        }
    }

    /// Runs the handshake, the client's bytes cut in pieces of `step`.
    fn handshake(&mut self, step: usize) {
        for _ in 0..10 {
            let c2s = self.client_bytes();
            self.feed_server(&c2s, step).unwrap();
            self.feed_client();
            if !self.client.is_handshaking() && !self.server.is_handshaking() {
                // The server's tickets, and anything else still pending.
                let c2s = self.client_bytes();
                self.feed_server(&c2s, step).unwrap();
                self.feed_client();
                return;
            }
        }
        panic!("handshake did not finish");
    }

    fn client_sends(&mut self, data: &[u8], step: usize) {
        self.client.writer().write_all(data).unwrap();
        let c2s = self.client_bytes();
        assert_eq!(self.feed_server(&c2s, step).unwrap(), ReadState::Open);
    }

    fn server_sends(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.server.encrypt(data, &mut out).unwrap();
        self.client_takes(&out);
        std::mem::take(&mut self.client_got)
    }
}

#[test]
fn handshake_then_data_both_ways_with_alpn_http_1_1() {
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let mut p = pair_with(versions);
        p.handshake(usize::MAX);
        assert_eq!(p.client.alpn_protocol(), Some(&b"http/1.1"[..]));
        p.client_sends(b"GET / HTTP/1.1\r\n\r\n", usize::MAX);
        assert_eq!(p.got, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(
            p.server_sends(b"HTTP/1.1 200 OK\r\n\r\n"),
            b"HTTP/1.1 200 OK\r\n\r\n"
        );
    }
}

#[test]
fn bytes_cut_anywhere_still_make_the_same_stream() {
    for step in [1, 3, 7, 100, 4096] {
        let mut p = pair();
        p.handshake(step);
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        p.client_sends(&data, step);
        assert_eq!(p.got, data, "step {step}");
    }
}

#[test]
fn large_messages_cross_in_records_of_16_kib() {
    let mut p = pair();
    p.handshake(usize::MAX);
    let big: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 253) as u8).collect();
    assert_eq!(p.server_sends(&big), big);
    p.client_sends(&big, 65536);
    assert_eq!(p.got, big);
}

#[test]
fn an_idle_session_keeps_no_buffers() {
    let mut p = pair();
    p.handshake(usize::MAX);
    p.client_sends(b"ping", usize::MAX);
    p.server_sends(b"pong");
    assert_eq!(p.server.pending_in.capacity(), 0);
    assert_eq!(p.server.out.capacity(), 0);
    assert!(p.server.unsent().is_empty());
}

#[test]
fn a_key_update_the_peer_asks_for_goes_out_before_new_data() {
    let mut p = pair();
    p.handshake(usize::MAX);
    p.client.refresh_traffic_keys().unwrap();
    p.client_sends(b"after the update", usize::MAX);
    assert_eq!(p.got, b"after the update");
    // Our answer to the update precedes data encrypted with the new keys.
    assert_eq!(p.server_sends(b"reply"), b"reply");
    assert_eq!(p.server_sends(b"again"), b"again");
}

#[test]
fn close_notify_both_ways() {
    let mut p = pair();
    p.handshake(usize::MAX);
    p.server.close_notify();
    p.feed_client();
    let mut buf = Vec::new();
    assert_eq!(
        p.client.reader().read_to_end(&mut buf).unwrap(),
        0,
        "clean EOF"
    );
    assert!(p.client_got.is_empty());
    assert!(p.server.encrypt(b"late", &mut Vec::new()).is_err());

    let mut q = pair();
    q.handshake(usize::MAX);
    q.client.send_close_notify();
    let c2s = q.client_bytes();
    assert_eq!(
        q.feed_server(&c2s, usize::MAX).unwrap(),
        ReadState::PeerClosed
    );
}

#[test]
fn plain_http_is_recognised_at_once() {
    let mut p = pair();
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    assert!(matches!(
        p.server.read(&mut req, &mut p.got),
        Err(TlsError::PlainHttp)
    ));
    assert!(p.got.is_empty() && p.server.unsent().is_empty());
}

#[test]
fn garbage_is_refused_with_an_alert() {
    let mut p = pair();
    // A record of no known content type.
    let mut junk = vec![0x99, 0x03, 0x03, 0x00, 0x01, 0x00];
    let e = p.server.read(&mut junk, &mut p.got).unwrap_err();
    assert!(matches!(e, TlsError::Protocol(_)), "{e}");
    assert_eq!(p.server.unsent().first(), Some(&0x15), "an alert record");
    let mut more = vec![0x17; 10];
    assert!(
        p.server.read(&mut more, &mut p.got).is_err(),
        "a failed session stays failed"
    );

    for junk in [
        vec![0u8; 64],
        vec![0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00],
    ] {
        let mut q = pair();
        let mut junk = junk;
        assert!(q.server.read(&mut junk, &mut q.got).is_err(), "{junk:?}");
    }
}

#[test]
fn a_truncated_client_hello_waits_then_fails_on_anything_else() {
    let mut p = pair();
    let hello = p.client_bytes();
    // Half of the record: rustls waits for the rest.
    assert_eq!(
        p.feed_server(&hello[..hello.len() / 2], usize::MAX)
            .unwrap(),
        ReadState::Open
    );
    assert!(p.server.is_handshaking() && p.server.unsent().is_empty());
    assert!(!p.server.pending_in.is_empty());

    // A complete record holding half a ClientHello, then a record of another type.
    let mut q = pair();
    let hello = q.client_bytes();
    let body = (hello.len() - 5) / 2;
    let mut cut = hello[..5 + body].to_vec();
    cut[3..5].copy_from_slice(&(body as u16).to_be_bytes());
    assert_eq!(q.feed_server(&cut, usize::MAX).unwrap(), ReadState::Open);
    let mut alert = vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00];
    assert!(q.server.read(&mut alert, &mut q.got).is_err());
}

#[test]
fn an_endless_handshake_message_is_refused_before_it_grows_large() {
    let mut p = pair();
    // A ClientHello announcing 16 MiB, sent as a stream of handshake records.
    let mut first = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xff, 0xff, 0xff];
    first.resize(5 + 0x4000, 0);
    let mut res = p.server.read(&mut first, &mut p.got);
    for _ in 0..64 {
        if res.is_err() {
            break;
        }
        let mut rec = vec![0x16, 0x03, 0x01, 0x40, 0x00];
        rec.resize(5 + 0x4000, 0);
        res = p.server.read(&mut rec, &mut p.got);
    }
    assert!(res.is_err(), "accepted an endless handshake message");
    assert!(p.server.pending_in.len() <= MAX_PENDING_IN + 0x4005);
}

/// The heap an idle session holds, from glibc's allocator statistics (process-wide, hence
/// ignored by default: `cargo test --lib idle_session_heap -- --ignored --test-threads=1`).
#[test]
#[ignore]
fn idle_session_heap() {
    fn used() -> usize {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        unsafe { libc::mallinfo2().uordblks }
    }
    const N: usize = 200;
    let mut sessions = Vec::new();
    for _ in 0..N {
        let mut p = pair();
        p.handshake(usize::MAX);
        p.client_sends(b"ping", usize::MAX);
        p.server_sends(b"pong");
        sessions.push(Box::new(p.server));
    }
    let before = used();
    drop(sessions);
    let per = (before - used()) / N;
    eprintln!(
        "idle TLS session: {per} bytes of heap ({} of them the session itself)",
        std::mem::size_of::<TlsSession>()
    );
    assert!(per < 6 * 1024, "{per} bytes per idle session");
}
