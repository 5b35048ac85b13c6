//! One client connection inside a worker. Kept small: an idle WebSocket connection holds no
//! heap buffers (input is read into the worker's shared buffer; output buffers come from a
//! pool only while bytes are pending).

use mio::net::TcpStream;
use thin_vec::ThinVec;

use crate::protocol::close::CloseState;
use crate::protocol::decoder::MessageDecoder;
use crate::protocol::deflate::{DeflateConfig, Deflater};
use crate::runtime::handler::CloseReason;
use crate::runtime::table::Fd;
use crate::runtime::tls::session::TlsSession;

/// Most bytes queued for one connection, whatever the limit asked for (so that the write
/// offset fits in 32 bits).
pub(crate) const OUT_MAX: usize = u32::MAX as usize;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading an HTTP request (upgrade or plain).
    Http,
    /// WebSocket established.
    Ws,
    /// Finished: pending output is being flushed. Input is ignored.
    Draining,
    /// Everything is written and our FIN is sent; waiting (briefly) for the peer's FIN.
    Lingering,
    /// Queued for removal at the end of the event batch.
    Dead,
}

/// Outgoing compression of a connection. The compressor (hundreds of KiB of zlib state) is
/// only created by the first compressed push, so clients that negotiate permessage-deflate but
/// are never sent a compressed message cost nothing.
pub(crate) enum Compression {
    Negotiated(DeflateConfig),
    Active(Deflater),
}

impl Compression {
    pub fn deflater(&mut self) -> &mut Deflater {
        if let Compression::Negotiated(cfg) = self {
            *self = Compression::Active(Deflater::new(cfg));
        }
        match self {
            Compression::Active(d) => d,
            Compression::Negotiated(_) => unreachable!("replaced just above"),
        }
    }
}

pub(crate) struct Conn {
    pub stream: TcpStream,
    pub fd: Fd,
    /// Index of the listening port (checked at start to fit).
    pub listener: u16,
    pub phase: Phase,
    /// An HTTP request of this connection is held by the handler (long-polling): whether
    /// the connection stays open after its answer.
    pub held: Option<bool>,
    /// The first cause of closing, once known.
    pub reason: Option<CloseReason>,
    /// The WebSocket handshake completed (so `on_close`, not `on_disconnect`, runs).
    pub upgraded: bool,
    /// Registered in the worker's dirty list.
    pub dirty: bool,
    /// Registered for writability: only while output is pending after a short write, so the
    /// reactor is not woken by every ACK.
    pub want_write: bool,
    /// Non-zero queue sizes were written to the shared table (so zeros must follow).
    pub queue_reported: bool,
    pub close: CloseState,
    /// Unconsumed input: a partial HTTP head or a partial frame header.
    pub inbuf: ThinVec<u8>,
    /// Pending output and how much of it is written (the queue never exceeds `OUT_MAX`).
    pub outbuf: ThinVec<u8>,
    pub outpos: u32,
    /// Low 32 bits of the monotonic ms of the connection's current deadline (see
    /// `Core::push_deadline`): an entry of the deadline heap that does not match was
    /// superseded.
    pub deadline_ms: u32,
    /// Low 32 bits of the monotonic ms of the last read (the heartbeat's idle check, which
    /// subtracts with wrap-around: exact for idle times under 49 days).
    pub last_recv_ms: u32,
    pub decoder: Option<MessageDecoder>,
    /// permessage-deflate for outgoing messages, when negotiated.
    pub deflater: Option<Box<Compression>>,
    /// The TLS session of a connection to a TLS port; `None` (plain TCP) costs nothing but
    /// this pointer. With TLS, `inbuf` and `outbuf` hold plaintext as for a plain connection;
    /// the session holds what is encrypted but not yet written.
    pub tls: Option<Box<TlsSession>>,
}

/// Appends `bytes` to `v` with one copy. (ThinVec's `extend_from_slice` pushes element by
/// element, updating the length in the heap header each time: byte-at-a-time for a 16 KiB
/// frame.)
pub(crate) fn append(v: &mut ThinVec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    v.reserve(bytes.len());
    let len = v.len();
    // SAFETY: `reserve` made room for `bytes.len()` more bytes after `len` (so `v` is a real
    // allocation, not the empty singleton); they are initialised by the copy before `set_len`
    // exposes them, and the source cannot overlap the buffer `v` owns.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().add(len), bytes.len());
        v.set_len(len + bytes.len());
    }
}

impl Conn {
    pub fn new(stream: TcpStream, fd: Fd, listener: u16, now_ms: u64) -> Conn {
        Conn {
            stream,
            fd,
            listener,
            phase: Phase::Http,
            held: None,
            reason: None,
            upgraded: false,
            dirty: false,
            want_write: false,
            queue_reported: false,
            close: CloseState::default(),
            inbuf: ThinVec::new(),
            outbuf: ThinVec::new(),
            outpos: 0,
            deadline_ms: 0,
            last_recv_ms: now_ms as u32,
            decoder: None,
            deflater: None,
            tls: None,
        }
    }

    /// Bytes queued and not yet written: plaintext in `outbuf`, and for TLS the records
    /// written to the session but not yet to the socket (what `buffer_output_size` bounds).
    pub fn pending_out(&self) -> usize {
        let queued = self.outbuf.len() - self.outpos as usize;
        match &self.tls {
            None => queued,
            Some(t) => queued + t.unsent().len(),
        }
    }

    /// Drops the first `n` bytes of unconsumed input; an empty input buffer is freed, so an
    /// idle connection keeps no allocation from its handshake.
    pub fn consume_input(&mut self, n: usize) {
        if n >= self.inbuf.len() {
            self.inbuf = ThinVec::new();
        } else {
            self.inbuf.drain(..n);
        }
    }

    /// Records the first cause of closing (later causes are consequences of it).
    pub fn set_reason(&mut self, reason: CloseReason) {
        self.reason.get_or_insert(reason);
    }

    /// Whether data frames may still be sent.
    pub fn can_send(&self) -> bool {
        self.phase == Phase::Ws && self.close.can_send_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_copies_bytes_after_what_is_there() {
        let mut v = ThinVec::new();
        append(&mut v, b"");
        assert_eq!(v.capacity(), 0, "nothing appended, nothing allocated");
        append(&mut v, b"head");
        let big: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        append(&mut v, &big);
        append(&mut v, b"");
        assert_eq!(&v[..4], b"head");
        assert_eq!(&v[4..], &big[..]);
    }

    #[test]
    fn an_idle_connection_stays_small() {
        // Slab entry + this struct is what an idle connection costs in the worker besides the
        // kernel socket and its table slot. Keep it well under the 256-byte budget.
        // mio's TcpStream carries a selector id in debug builds only (16 bytes, not 4): the
        // budget is for release builds.
        let debug_only =
            std::mem::size_of::<TcpStream>() - std::mem::size_of::<std::net::TcpStream>();
        let size = std::mem::size_of::<Conn>() - debug_only;
        eprintln!(
            "Conn {size} decoder {} slot {}",
            std::mem::size_of::<MessageDecoder>(),
            std::mem::size_of::<crate::runtime::table::Slot>()
        );
        assert!(size <= 128, "Conn is {size} bytes");
        assert!(
            std::mem::size_of::<MessageDecoder>() <= 128,
            "decoder {}",
            std::mem::size_of::<MessageDecoder>()
        );
    }
}
