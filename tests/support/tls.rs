//! TLS clients for the integration tests: rustls (ring) trusting a test CA, raw or under
//! tungstenite.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tungstenite::WebSocket;

use super::pki::TestPki;
use super::ServerProc;

/// A TLS stream to the server.
pub type Tls = StreamOwned<ClientConnection, TcpStream>;
/// A WebSocket over TLS.
pub type Wss = WebSocket<Tls>;

/// A client configuration trusting `ca_der` only, offering ALPN `alpn`.
pub fn client_config(ca_der: &[u8], alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .expect("test CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// Connects and completes the handshake (`Err` with rustls's or the socket's reason).
pub fn tls_connect_with(port: u16, cfg: Arc<ClientConfig>) -> Result<Tls, String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let conn = ClientConnection::new(cfg, name.to_owned()).map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| e.to_string())?;
    }
    Ok(tls)
}

/// Connects trusting `pki`'s CA, ALPN `http/1.1`.
pub fn tls_connect(port: u16, pki: &TestPki) -> Tls {
    tls_connect_with(port, client_config(&pki.ca_der, &[b"http/1.1"])).expect("TLS handshake")
}

/// Opens `wss://127.0.0.1:port{path}`.
pub fn wss_connect(port: u16, pki: &TestPki, path: &str) -> Wss {
    let tls = tls_connect(port, pki);
    let url = format!("wss://localhost:{port}{path}");
    tungstenite::client(url, tls)
        .map(|(ws, _)| ws)
        .expect("WebSocket handshake over TLS")
}

/// One HTTP/1.1 exchange over TLS: sends `req`, returns everything until the server closes.
pub fn https(port: u16, pki: &TestPki, req: &[u8]) -> String {
    let mut tls = tls_connect(port, pki);
    tls.write_all(req).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Starts example `name` on a TLS port with `pki`'s files.
pub fn start_tls(name: &str, pki: &TestPki, args: &[&str]) -> ServerProc {
    let cert = pki.cert.to_string_lossy().into_owned();
    let key = pki.key.to_string_lossy().into_owned();
    let mut all = vec!["--ssl-cert-file", &cert, "--ssl-key-file", &key];
    all.extend_from_slice(args);
    super::start(name, &all)
}

/// Like [`start_tls`], with the server's log captured.
pub fn start_tls_logged(name: &str, pki: &TestPki, args: &[&str]) -> ServerProc {
    let cert = pki.cert.to_string_lossy().into_owned();
    let key = pki.key.to_string_lossy().into_owned();
    let mut all = vec!["--ssl-cert-file", &cert, "--ssl-key-file", &key];
    all.extend_from_slice(args);
    super::start_logged(name, &all)
}
