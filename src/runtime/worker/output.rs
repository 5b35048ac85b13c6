//! Writing to connections: the one send path (direct `writev` or the connection's queue,
//! bounded by `buffer_output_size`), flushing at the end of a batch, lingering closes, and
//! marking connections for removal.

use std::io::{self, Write};

use mio::net::TcpStream;
use mio::{Interest, Token};

use thin_vec::ThinVec;

use super::{Core, LINGER_MS, POOL_KEEP, POOL_MAX};
use crate::protocol::frame::WEBSOCKET_STATUS_CLOSING;
use crate::runtime::conn::{append, Phase, OUT_MAX};
use crate::runtime::handler::CloseReason;
use crate::runtime::table::Fd;

impl Core {
    pub(super) fn give_buf(&mut self, mut b: ThinVec<u8>) {
        if b.capacity() > 0 && b.capacity() <= POOL_KEEP && self.pool.len() < POOL_MAX {
            b.clear();
            self.pool.push(b);
        }
    }

    /// Queues bytes for a connection, written at the end of the batch.
    pub(super) fn queue(&mut self, key: usize, bytes: &[u8], limit: usize) -> bool {
        self.send_frame(key, bytes, &[], limit, false)
    }

    /// Writes a frame to a connection now if nothing is pending (no copy), else queues it.
    pub(super) fn write_or_queue(&mut self, key: usize, bytes: &[u8], limit: usize) -> bool {
        self.send_frame(key, bytes, &[], limit, true)
    }

    /// Sends one frame (`head`, then `body`) to a connection. With `direct` and nothing queued
    /// before it, the frame is written at once with one `writev` (no copy); otherwise — and
    /// for whatever did not fit — it is appended to the connection's output buffer, which is
    /// written once per event batch. A frame that would take the buffer past `limit`
    /// (`buffer_output_size`) closes the connection instead. `true` if the frame was written
    /// or queued.
    pub(super) fn send_frame(
        &mut self,
        key: usize,
        head: &[u8],
        body: &[u8],
        limit: usize,
        direct: bool,
    ) -> bool {
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        let total = head.len() + body.len();
        self.counters.bytes_out += total as u64;
        if c.pending_out() + total > limit.min(OUT_MAX) {
            log::warn!(
                "fd {}: output buffer would exceed buffer_output_size ({} bytes queued + {}), closing the connection",
                c.fd,
                c.pending_out(),
                total
            );
            self.kill(key, CloseReason::OutputLimit);
            return false;
        }
        let mut written = 0;
        // TLS output is encrypted when the queue is written (records of several frames).
        if direct && c.pending_out() == 0 && !c.dirty && c.tls.is_none() {
            let iov = [io::IoSlice::new(head), io::IoSlice::new(body)];
            match (&c.stream).write_vectored(&iov) {
                Ok(w) => written = w,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.kill(key, CloseReason::Io);
                    return false;
                }
            }
            if written == total {
                return true;
            }
        }
        if c.outbuf.capacity() == 0 {
            c.outbuf = self.pool.pop().unwrap_or_default();
        }
        if c.outbuf.len() + total - written > OUT_MAX {
            // Keep the write offset within 32 bits: drop what is already written first.
            c.outbuf.drain(..c.outpos as usize);
            c.outpos = 0;
        }
        if written < head.len() {
            append(&mut c.outbuf, &head[written..]);
            append(&mut c.outbuf, body);
        } else {
            append(&mut c.outbuf, &body[written - head.len()..]);
        }
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(key);
        }
        true
    }

    /// Marks a connection for removal at the end of the batch; `reason` is recorded unless an
    /// earlier cause is known.
    pub(super) fn kill(&mut self, key: usize, reason: CloseReason) {
        if let Some(c) = self.conns.get_mut(key) {
            if c.phase != Phase::Dead {
                c.set_reason(reason);
                c.phase = Phase::Dead;
                self.dead.push(key);
            }
        }
    }

    /// Writes pending output (as much as the socket takes); a write error marks the
    /// connection dead.
    pub(super) fn flush(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.dirty = false;
        // A connection closing because its peer sent FIN still gets what was queued for it
        // (the peer may only have half-closed); it is closed at the end of the batch anyway.
        let dead = c.phase == Phase::Dead;
        let written = match c.tls.as_deref_mut() {
            None => write_queue(&c.stream, &c.outbuf, &mut c.outpos),
            Some(t) => {
                let closing = c.phase == Phase::Draining;
                let scratch = &mut self.tls_scratch;
                super::tls::flush_tls(&c.stream, t, &c.outbuf, &mut c.outpos, scratch, closing)
            }
        };
        if written.is_err() {
            self.kill(key, CloseReason::Io);
            return;
        }
        if dead {
            return; // reaped at the end of the batch; no more bookkeeping
        }
        let pending = c.pending_out();
        // Ask for writability only while something waits for it.
        if (pending > 0) != c.want_write {
            c.want_write = pending > 0;
            let interest = if c.want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .registry
                .reregister(&mut c.stream, Token(key), interest)
                .is_err()
            {
                self.kill(key, CloseReason::Io);
                return;
            }
        }
        // Queue sizes in the shared table: written only while non-zero (and once when they
        // drop back to zero), not on every message.
        if pending > 0 || c.queue_reported {
            let recv = c.inbuf.len();
            self.table.set_queued(self.region, key, recv, pending);
            c.queue_reported = pending > 0 || recv > 0;
        }
        if pending == 0 {
            let b = std::mem::take(&mut c.outbuf);
            c.outpos = 0;
            let draining = c.phase == Phase::Draining;
            self.give_buf(b);
            if draining {
                self.linger(key);
            }
        } else if c.outpos as usize > c.outbuf.len() / 2 {
            // Compact once at least half is written, so the buffer does not grow forever.
            c.outbuf.drain(..c.outpos as usize);
            c.outpos = 0;
        }
        self.table.touch_send(self.region, key, self.wall);
    }

    /// After our last byte: send FIN and wait (briefly) for the peer's, so that the kernel does
    /// not answer unread input with a reset that could destroy our close frame in flight.
    fn linger(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.phase == Phase::Lingering {
            return;
        }
        c.phase = Phase::Lingering;
        if c.stream.shutdown(std::net::Shutdown::Write).is_err() {
            self.kill(key, CloseReason::ConnectionLost);
            return;
        }
        let fd = c.fd;
        self.push_deadline(self.now + LINGER_MS, key, fd);
    }

    /// Sends an HTTP response and closes after it is written.
    pub(super) fn respond_and_close(&mut self, key: usize, bytes: &[u8]) {
        self.queue(key, bytes, usize::MAX);
        self.kill_after_flush(key, CloseReason::ServerDropped);
    }

    /// Closes once pending output is written (with a lingering close).
    pub(super) fn kill_after_flush(&mut self, key: usize, reason: CloseReason) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if matches!(c.phase, Phase::Dead | Phase::Draining | Phase::Lingering) {
            return;
        }
        c.set_reason(reason);
        c.phase = Phase::Draining;
        let fd = c.fd;
        if c.upgraded {
            // No longer established: `is_established` is false from now on.
            self.table
                .set_status(self.region, key, WEBSOCKET_STATUS_CLOSING);
        }
        if c.pending_out() == 0 && !c.dirty && c.tls.is_none() {
            self.linger(key);
        } else {
            if c.tls.is_some() && !c.dirty {
                // The flush sends our close_notify after what is queued.
                c.dirty = true;
                self.dirty.push(key);
            }
            // Bound the wait for a client that does not read.
            self.push_deadline(now + LINGER_MS, key, fd);
        }
    }

    /// Sets the connection's one deadline (handshake, closing handshake or linger), replacing
    /// any earlier one.
    pub(super) fn push_deadline(&mut self, at: u64, key: usize, fd: Fd) {
        if let Some(c) = self.conn(key, fd) {
            c.deadline_ms = at as u32;
            self.deadlines.push(at, key);
        }
    }
}

/// Writes a plain connection's queue from `outpos` as far as the socket takes it.
fn write_queue(mut stream: &TcpStream, outbuf: &[u8], outpos: &mut u32) -> io::Result<()> {
    while (*outpos as usize) < outbuf.len() {
        match stream.write(&outbuf[*outpos as usize..]) {
            Ok(0) => break,
            Ok(n) => *outpos += n as u32,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
