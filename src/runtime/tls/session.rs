//! The TLS record layer of one connection, sans-IO on rustls's unbuffered API.
//!
//! Input is decrypted from where it was read (the worker's read buffer); only the bytes of an
//! incomplete record are copied, into `pending_in`, until the rest arrives. Output is
//! encrypted into a buffer the caller passes (the worker's scratch buffer, written to the
//! socket at once); only what a short write left, and the records the handshake produces,
//! wait in `out`. Both are freed when empty, so an idle session holds rustls's state only.
//!
//! rustls asks that every call gets the bytes it has not yet discarded at the front of its
//! input: `pending_in` is exactly those bytes between reads, and every call here passes it.

use std::sync::Arc;

use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, ReadTraffic, UnbufferedStatus,
};
use rustls::ServerConfig;

/// Plaintext bytes of one TLS record at most.
pub(crate) const RECORD_PLAINTEXT: usize = 16 * 1024;
/// More than a record ever adds to its plaintext: header (5), TLS 1.2's explicit nonce (8),
/// tag (16), TLS 1.3's inner content type (1).
const RECORD_OVERHEAD: usize = 32;
/// Most bytes of incomplete records kept: a handshake message rustls joins from fragments
/// (at most 64 KiB) and one more record.
const MAX_PENDING_IN: usize = 0xffff + RECORD_PLAINTEXT + 2048;
/// Room for one encoded handshake record on the first try.
const ENCODE_GUESS: usize = 4096;

/// Why a TLS session cannot go on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// The first bytes look like an HTTP request: plain HTTP sent to a TLS port.
    #[error("plain HTTP sent to a TLS port")]
    PlainHttp,
    /// rustls refused the peer's input (the alert it sends is in the pending output).
    #[error("{0}")]
    Protocol(#[from] rustls::Error),
    /// The peer sent more incomplete records than any handshake needs.
    #[error("more than {MAX_PENDING_IN} bytes of incomplete TLS records")]
    TooLarge,
    /// Application data cannot be sent (the handshake is not complete, or the session has
    /// closed or failed).
    #[error("the TLS session cannot send application data now")]
    NotWritable,
    /// rustls could not encrypt (keys exhausted, or an output estimate was wrong).
    #[error("encryption failed: {0}")]
    Encrypt(String),
}

/// What a read left the session in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadState {
    /// Handshaking or established; more input is welcome.
    Open,
    /// The peer sent `close_notify`: no more input will come.
    PeerClosed,
}

/// The TLS state of one connection.
pub(crate) struct TlsSession {
    conn: UnbufferedServerConnection,
    /// Received bytes rustls has not discarded yet (an incomplete record); freed when empty.
    pending_in: Vec<u8>,
    /// Encrypted bytes waiting for the socket; freed when written.
    out: Vec<u8>,
    out_pos: usize,
    /// Any input was seen (the plain-HTTP check looks at the first bytes only).
    seen_input: bool,
    /// rustls failed: nothing more is encrypted or decrypted.
    failed: bool,
    /// Our close_notify is queued.
    closing: bool,
}

impl TlsSession {
    /// A server session with `config` (certificate, ALPN).
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsSession, rustls::Error> {
        Ok(TlsSession {
            conn: UnbufferedServerConnection::new(config)?,
            pending_in: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            seen_input: false,
            failed: false,
            closing: false,
        })
    }

    /// Whether the handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Encrypted bytes waiting for the socket.
    pub fn unsent(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// `n` bytes of [`unsent`](Self::unsent) were written; the buffer is freed once empty.
    pub fn sent(&mut self, n: usize) {
        self.out_pos = (self.out_pos + n).min(self.out.len());
        if self.out_pos == self.out.len() {
            self.out = Vec::new();
            self.out_pos = 0;
        }
    }

    /// Keeps the tail of a short write, to go out before anything else.
    pub fn keep_unsent(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Takes bytes read from the socket: the plaintext they complete is appended to `plain`,
    /// records to send (handshake, alerts, key updates) to the pending output. On an error
    /// the session is dead; an alert for the peer may be pending.
    pub fn read(&mut self, input: &mut [u8], plain: &mut Vec<u8>) -> Result<ReadState, TlsError> {
        if self.failed {
            return Err(TlsError::NotWritable);
        }
        if !self.seen_input && !input.is_empty() {
            self.seen_input = true;
            // Every TLS record starts with a content type (20..=24); HTTP with a method name.
            if input[0].is_ascii_uppercase() {
                self.failed = true;
                return Err(TlsError::PlainHttp);
            }
        }
        let res = if self.pending_in.is_empty() {
            let (used, res) = self.process(input, plain);
            self.pending_in
                .extend_from_slice(&input[used.min(input.len())..]);
            res
        } else {
            let mut buf = std::mem::take(&mut self.pending_in);
            buf.extend_from_slice(input);
            let (used, res) = self.process(&mut buf, plain);
            buf.drain(..used.min(buf.len()));
            self.pending_in = buf;
            res
        };
        if self.pending_in.is_empty() && self.pending_in.capacity() > 0 {
            self.pending_in = Vec::new();
        }
        if res.is_ok() && self.pending_in.len() > MAX_PENDING_IN {
            self.failed = true;
            return Err(TlsError::TooLarge);
        }
        if res.is_err() {
            self.failed = true;
        }
        res
    }

    /// Runs rustls over `buf` until it needs more input; returns how many bytes of `buf` it
    /// discarded, and the outcome.
    fn process(
        &mut self,
        buf: &mut [u8],
        plain: &mut Vec<u8>,
    ) -> (usize, Result<ReadState, TlsError>) {
        let mut used = 0;
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut buf[used..]);
            let step = match state {
                Err(e) => Err(TlsError::Protocol(e)),
                Ok(ConnectionState::ReadTraffic(r)) => take_records(r, plain).map(|()| None),
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    encode(&mut e, &mut self.out).map(|()| None)
                }
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    // The records are in `out`, ahead of anything encrypted later.
                    t.done();
                    Ok(None)
                }
                Ok(ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_)) => {
                    Ok(Some(ReadState::Open))
                }
                Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => {
                    Ok(Some(ReadState::PeerClosed))
                }
                // Early data is not enabled; nothing else exists today.
                Ok(_) => Err(TlsError::NotWritable),
            };
            used += discard;
            match step {
                Ok(None) => continue,
                Ok(Some(state)) => return (used, Ok(state)),
                Err(e) => {
                    let from = used.min(buf.len());
                    self.queue_alert(&mut buf[from..]);
                    return (used, Err(e));
                }
            }
        }
    }

    /// After an error: the alert rustls prepared goes to the pending output. Each call takes
    /// one prepared record before rustls would look at the input again (which, after an
    /// error, it must not).
    fn queue_alert(&mut self, rest: &mut [u8]) {
        for _ in 0..4 {
            if !self.conn.wants_write() {
                return;
            }
            let UnbufferedStatus { state, .. } = self.conn.process_tls_records(rest);
            match state {
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    if encode(&mut e, &mut self.out).is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    /// Encrypts `plain` (records of up to 16 KiB) and appends the records to `out`, after any
    /// record rustls must send first.
    pub fn encrypt(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
        if self.failed || self.closing {
            return Err(TlsError::NotWritable);
        }
        let mut kept = std::mem::take(&mut self.pending_in);
        let res = self.write_with(&mut kept, out, |w, buf| w.encrypt(plain, buf), plain.len());
        self.pending_in = kept;
        if res.is_err() {
            self.failed = true;
        }
        res
    }

    /// Queues our `close_notify` in the pending output (once; nothing if the session cannot
    /// send).
    pub fn close_notify(&mut self) {
        if self.failed || self.closing || self.conn.is_handshaking() {
            return;
        }
        self.closing = true;
        let mut kept = std::mem::take(&mut self.pending_in);
        let mut out = std::mem::take(&mut self.out);
        if self
            .write_with(&mut kept, &mut out, |w, buf| w.queue_close_notify(buf), 0)
            .is_err()
        {
            self.failed = true;
        }
        self.out = out;
        self.pending_in = kept;
    }

    /// Gets rustls to the point where it may send application data, then has `write`
    /// produce records into `out` (room for `len` bytes of plaintext). rustls puts records
    /// it holds (a key update the peer asked for) ahead of them.
    fn write_with(
        &mut self,
        kept: &mut Vec<u8>,
        out: &mut Vec<u8>,
        mut write: impl FnMut(
            &mut rustls::unbuffered::WriteTraffic<'_, ServerConnectionData>,
            &mut [u8],
        ) -> Result<usize, EncryptError>,
        len: usize,
    ) -> Result<(), TlsError> {
        // Each round either finishes or takes one pending record out of rustls.
        for _ in 0..16 {
            let UnbufferedStatus { discard, state } = self.conn.process_tls_records(kept);
            let done = match state? {
                ConnectionState::WriteTraffic(mut w) => {
                    let room = len + (len / RECORD_PLAINTEXT + 1) * RECORD_OVERHEAD;
                    append_with(out, room, |buf| write(&mut w, buf))?;
                    true
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    encode(&mut e, out)?;
                    false
                }
                ConnectionState::TransmitTlsData(t) => {
                    t.done();
                    false
                }
                _ => return Err(TlsError::NotWritable),
            };
            kept.drain(..discard.min(kept.len()));
            if done {
                return Ok(());
            }
        }
        Err(TlsError::NotWritable)
    }
}

/// Appends what `write` produces to `out`, with `room` bytes at first and, if rustls needs
/// more (records it holds go first), as many as it asks for (`out` is untouched by a
/// refusal).
fn append_with(
    out: &mut Vec<u8>,
    room: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<(), TlsError> {
    let start = out.len();
    let mut room = room;
    for _ in 0..2 {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(EncryptError::InsufficientSize(s)) => room = s.required_size,
            Err(e) => {
                out.truncate(start);
                return Err(TlsError::Encrypt(e.to_string()));
            }
        }
    }
    out.truncate(start);
    Err(TlsError::Encrypt("rustls asked for more room twice".into()))
}

/// Copies the plaintext of every decrypted record to `plain`.
fn take_records(
    mut r: ReadTraffic<'_, '_, ServerConnectionData>,
    plain: &mut Vec<u8>,
) -> Result<(), TlsError> {
    while let Some(record) = r.next_record() {
        plain.extend_from_slice(record?.payload);
    }
    Ok(())
}

/// Appends one handshake (or alert) record rustls prepared to `out`.
fn encode(
    e: &mut EncodeTlsData<'_, ServerConnectionData>,
    out: &mut Vec<u8>,
) -> Result<(), TlsError> {
    let start = out.len();
    let mut room = ENCODE_GUESS;
    for _ in 0..2 {
        out.resize(start + room, 0);
        match e.encode(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(s)) => room = s.required_size,
            Err(EncodeError::AlreadyEncoded) => break,
        }
    }
    out.truncate(start);
    Ok(())
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
