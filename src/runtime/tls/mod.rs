//! TLS for `wss://` and `https://` with rustls (ring provider): loading a listener's
//! certificate and key ([`config`]), and the per-connection record layer, run sans-IO on the
//! worker's reactor ([`session`]).
//!
//! A TLS connection costs what a plain one does plus one boxed rustls state: rustls's
//! *unbuffered* API decrypts from the worker's read buffer and encrypts into the worker's
//! scratch buffer, so no per-connection TLS buffers exist while a connection is idle (only the
//! unwritten tail of a short write, and the bytes of an incomplete record, are kept). A plain
//! connection has no TLS state at all: its `Conn::tls` is `None`.

pub(crate) mod config;
pub(crate) mod session;

pub use config::TlsConfigError;

#[cfg(test)]
#[path = "../../../tests/support/pki.rs"]
pub(crate) mod test_pki;
