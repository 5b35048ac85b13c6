//! TLS connections in the worker. Input is decrypted into the worker's plaintext buffer and
//! then handled exactly as a plain connection's input; output is queued as plaintext like a
//! plain connection's (so `buffer_output_size` bounds it the same way) and encrypted when it
//! is written, four records at a time, into the worker's scratch buffer. Only what the
//! socket did not take stays with the connection. Bad input gets its answer here: plain HTTP
//! a `400`, anything rustls refuses its alert, then the connection is closed.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;

use mio::net::TcpStream;
use thin_vec::ThinVec;

use super::{panic_message, Core, Worker};
use crate::runtime::conn::Phase;
use crate::runtime::handler::{CloseReason, Handler};
use crate::runtime::table::Fd;
use crate::runtime::tls::session::{ReadState, TlsError, TlsSession, RECORD_PLAINTEXT};

/// Plaintext encrypted per round of a flush: four full records.
const CHUNK: usize = 4 * RECORD_PLAINTEXT;
/// A plaintext buffer larger than this is not kept for the next read.
const PLAIN_KEEP: usize = 256 * 1024;
/// The answer to plain HTTP on a TLS port.
const PLAIN_HTTP_BODY: &[u8] = b"This port speaks TLS: use https:// or wss://\n";

impl<H: Handler> Worker<H> {
    /// Bytes read from a TLS connection: decrypted, then handled as a plain connection's.
    pub(super) fn on_tls_input(&self, key: usize, fd: Fd, phase: Phase, input: &mut [u8]) {
        let mut plain = std::mem::take(&mut self.cx.core().tls_plain);
        plain.clear();
        let state = self.cx.core().tls_read(key, fd, input, &mut plain);
        if state.is_some() && !plain.is_empty() {
            match phase {
                Phase::Http => self.on_http_input(key, fd, &plain),
                _ => self.on_ws_input(key, fd, &mut plain),
            }
        }
        let mut core = self.cx.core();
        if state == Some(ReadState::PeerClosed) && core.conn(key, fd).is_some() {
            // close_notify: the TLS equivalent of the peer's FIN.
            core.kill(key, CloseReason::ConnectionLost);
        }
        if plain.capacity() <= PLAIN_KEEP {
            core.tls_plain = plain;
        }
    }
}

impl Core {
    /// A TLS session for a connection accepted on port `port_idx`: `Ok(None)` for a plain
    /// port, `Err` (logged) if rustls cannot start one.
    pub(super) fn tls_session(
        &self,
        port_idx: u16,
        addr: SocketAddr,
    ) -> Result<Option<Box<TlsSession>>, ()> {
        let Some(cfg) = self
            .ports
            .get(port_idx as usize)
            .and_then(|p| p.tls.as_ref())
        else {
            return Ok(None);
        };
        match TlsSession::new(cfg.clone()) {
            Ok(s) => Ok(Some(Box::new(s))),
            Err(e) => {
                log::warn!("{addr}: cannot start a TLS session ({e}); connection dropped");
                Err(())
            }
        }
    }

    /// Decrypts `input` of connection `key` into `plain`. `None` when the connection is gone
    /// or its TLS failed (it is then answered and closing; `plain` is emptied).
    fn tls_read(
        &mut self,
        key: usize,
        fd: Fd,
        input: &mut [u8],
        plain: &mut Vec<u8>,
    ) -> Option<ReadState> {
        let c = self.conns.get_mut(key).filter(|c| c.fd == fd)?;
        let tls = c.tls.as_deref_mut()?;
        let handshaking = tls.is_handshaking();
        // rustls does not panic on input; if it ever did, only this connection would suffer.
        let res = std::panic::catch_unwind(AssertUnwindSafe(|| tls.read(input, plain)));
        if !tls.unsent().is_empty() && !c.dirty {
            // Handshake records or an alert to write.
            c.dirty = true;
            self.dirty.push(key);
        }
        let what = if handshaking { "handshake" } else { "record" };
        let e = match res {
            Ok(Ok(state)) => return Some(state),
            Ok(Err(e)) => e,
            Err(p) => {
                log::error!("fd {fd}: panic in TLS ({}), closing", panic_message(&*p));
                c.tls = None;
                plain.clear();
                self.kill(key, CloseReason::Tls);
                return None;
            }
        };
        plain.clear();
        if let TlsError::PlainHttp = e {
            log::info!("fd {fd}: plain HTTP sent to a TLS port, answering 400");
            c.tls = None;
            self.refuse(key, 400, PLAIN_HTTP_BODY);
        } else {
            log::info!("fd {fd}: TLS {what} refused ({e}), closing");
            self.kill_after_flush(key, CloseReason::Tls);
        }
        None
    }
}

/// Writes a TLS connection's output: records a short write left first, then the queued
/// plaintext (`outbuf` from `outpos`), encrypted `CHUNK` bytes at a time into `scratch` and
/// written from there; with `closing`, our close_notify after the last of it. An error means
/// the connection is dead.
pub(super) fn flush_tls(
    stream: &TcpStream,
    tls: &mut TlsSession,
    outbuf: &ThinVec<u8>,
    outpos: &mut u32,
    scratch: &mut Vec<u8>,
    closing: bool,
) -> io::Result<()> {
    loop {
        if !write_unsent(stream, tls)? {
            return Ok(()); // the socket is full
        }
        let pos = *outpos as usize;
        if pos >= outbuf.len() {
            if closing {
                tls.close_notify(); // once; nothing if the session cannot send
                if !tls.unsent().is_empty() {
                    continue;
                }
            }
            return Ok(());
        }
        let take = (outbuf.len() - pos).min(CHUNK);
        scratch.clear();
        tls.encrypt(&outbuf[pos..pos + take], scratch)
            .map_err(io::Error::other)?;
        *outpos += take as u32;
        let n = write_some(stream, scratch)?;
        if n < scratch.len() {
            tls.keep_unsent(&scratch[n..]);
            return Ok(());
        }
    }
}

/// Writes the session's unsent records; `false` if the socket took not all of them.
fn write_unsent(mut stream: &TcpStream, tls: &mut TlsSession) -> io::Result<bool> {
    while !tls.unsent().is_empty() {
        match stream.write(tls.unsent()) {
            Ok(0) => return Ok(false),
            Ok(n) => tls.sent(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Writes as much of `bytes` as the socket takes.
fn write_some(mut stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < bytes.len() {
        match stream.write(&bytes[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
