//! TLS for `wss://` targets: a rustls (ring) client trusting the CA given with `--ca`,
//! offering ALPN `http/1.1`. The WebSocket request is written as plaintext at once; rustls
//! keeps it until its handshake is done, so the connect phase needs nothing TLS-specific.

use std::io::{self, ErrorKind, Read, Write};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use crate::net::ReadOutcome;

static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();

/// Trusts the certificates in `path` (PEM) for every `wss://` target of this run.
pub fn set_ca(path: &Path) -> Result<(), String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--ca {}: {e}", path.display()))?;
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("--ca {}: {e}", path.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    CONFIG
        .set(Arc::new(cfg))
        .map_err(|_| "--ca given twice".to_string())
}

/// A client session for `host` (the name the certificate must carry).
pub fn connect(host: &str) -> Result<Box<ClientConnection>, String> {
    let cfg = CONFIG
        .get()
        .ok_or("wss:// needs --ca FILE (the CA that signed the server's certificate)")?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))?;
    let mut c = ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())?;
    // The load tool bounds what it queues itself (messages in flight).
    c.set_buffer_limit(None);
    Ok(Box::new(c))
}

/// Hands `plain` to rustls and writes its records as far as the socket takes them.
pub fn flush(sock: &mut TcpStream, tls: &mut ClientConnection, plain: &[u8]) -> io::Result<()> {
    if !plain.is_empty() {
        tls.writer().write_all(plain)?;
    }
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Decrypted bytes into `buf` (`*len` grows): what rustls holds, else one socket read.
pub fn read_once(
    sock: &mut TcpStream,
    tls: &mut ClientConnection,
    buf: &mut [u8],
    len: &mut usize,
) -> io::Result<ReadOutcome> {
    loop {
        match tls.reader().read(&mut buf[*len..]) {
            Ok(0) => return Ok(ReadOutcome::Eof),
            // More may be buffered: the caller reads again until it would block.
            Ok(n) => {
                *len += n;
                return Ok(ReadOutcome::Data { short: false });
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(ReadOutcome::Eof),
            Err(e) => return Err(e),
        }
        match tls.read_tls(sock) {
            Ok(0) => return Ok(ReadOutcome::Eof),
            Ok(_) => {
                tls.process_new_packets().map_err(io::Error::other)?;
                // Handshake answers, key updates.
                flush(sock, tls, &[])?;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(ReadOutcome::WouldBlock),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
