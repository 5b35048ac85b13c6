//! WebSocket connections: decoding input into handler events, pushing messages, and the
//! closing handshake.

use thin_vec::ThinVec;

use super::{guarded, Core, Worker, DIRECT_WRITE_MIN, POOL_KEEP};
use crate::protocol::close::close_payload;
use crate::protocol::decoder::Event;
use crate::protocol::frame::{
    encode_frame, encode_header, OpCode, FLAG_COMPRESS, FLAG_FIN, WEBSOCKET_STATUS_CLOSING,
};
use crate::runtime::conn::{append, Phase};
use crate::runtime::handler::{CloseReason, ConnId, Handler, Message};
use crate::runtime::table::Fd;

impl Core {
    /// Starts the closing handshake from our side with `code` (always queued: a close frame
    /// is not subject to `buffer_output_size`). `reason` is recorded unless a cause is known.
    pub(super) fn send_close(&mut self, key: usize, code: u16, text: &str, reason: CloseReason) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.phase != Phase::Ws {
            return;
        }
        if c.close.on_send_close() {
            c.set_reason(reason);
            let payload = close_payload(code, text).unwrap_or_else(|_| code.to_be_bytes().to_vec());
            let frame = close_frame(&payload);
            self.table
                .set_status(self.region, key, WEBSOCKET_STATUS_CLOSING);
            self.queue(key, &frame, usize::MAX);
        }
    }

    /// Fails a connection: close frame with `code`, then closed once it is written.
    pub(super) fn close_with(&mut self, key: usize, code: u16, text: &str, reason: CloseReason) {
        self.send_close(key, code, text, reason);
        self.kill_after_flush(key, reason);
    }

    /// `disconnect` of a local connection: close frame, then wait `max_wait_time` for the
    /// peer's answer.
    pub(super) fn disconnect_local(&mut self, key: usize, code: u16, text: &str) -> bool {
        let Some(c) = self.conns.get(key) else {
            return false;
        };
        if !c.can_send() {
            return false;
        }
        let fd = c.fd;
        self.send_close(key, code, text, CloseReason::ServerClosed(code));
        let wait = self.settings.max_wait_time.as_millis() as u64;
        self.push_deadline(self.now + wait, key, fd);
        true
    }

    /// `close` of a local connection: no close frame, after what is queued.
    pub(super) fn close_local(&mut self, key: usize) {
        self.kill_after_flush(key, CloseReason::ServerDropped);
    }

    /// Encodes and queues a message for a local connection (`push`).
    pub(super) fn push_local(&mut self, key: usize, data: &[u8], opcode: u8, flags: u8) -> bool {
        let limit = self.settings.buffer_output_size;
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        if !c.can_send() {
            return false;
        }
        let fin = flags & FLAG_FIN != 0;
        let mut zbuf = Vec::new();
        // Only whole data messages are compressed (RSV1 belongs to a message's first frame).
        let compress = flags & FLAG_COMPRESS != 0
            && fin
            && matches!(OpCode::from_u8(opcode), Some(OpCode::Text | OpCode::Binary));
        let (payload, rsv1): (&[u8], bool) = match (&mut c.deflater, compress) {
            (Some(d), true) => {
                zbuf = std::mem::take(&mut self.zbuf);
                match d.deflater().compress(data, &mut zbuf) {
                    Ok(()) => (&zbuf[..], true),
                    Err(e) => {
                        log::warn!("fd {}: compression failed: {e}", c.fd);
                        return false;
                    }
                }
            }
            _ => (data, false),
        };
        let mut hdr = [0u8; 14];
        let n = encode_header(&mut hdr, fin, rsv1, opcode, payload.len(), None);
        // Large messages skip the copy into the output buffer when nothing is queued.
        let direct = payload.len() >= DIRECT_WRITE_MIN;
        let sent = self.send_frame(key, &hdr[..n], payload, limit, direct);
        if sent {
            self.messages_out += 1;
        }
        if rsv1 && zbuf.capacity() <= POOL_KEEP {
            zbuf.clear();
            self.zbuf = zbuf;
        }
        sent
    }

    /// The peer's close frame: echo its code (if we did not close first), then close.
    fn on_peer_close(&mut self, key: usize, fd: Fd, code: Option<u16>) {
        let Some(c) = self.conn(key, fd) else {
            return;
        };
        c.set_reason(CloseReason::PeerClosed(code));
        if let Some(echo) = c.close.on_recv_close(code) {
            let payload = if code.is_some() {
                echo.to_be_bytes().to_vec()
            } else {
                Vec::new()
            };
            self.queue(key, &close_frame(&payload), usize::MAX);
        }
        self.kill_after_flush(key, CloseReason::PeerClosed(code));
    }

    /// Keeps what the decoder did not consume (and the decoder) with the connection.
    fn keep_ws_input(&mut self, key: usize, fd: Fd, input: Input, pos: usize) -> bool {
        let (table, region) = (self.table, self.region);
        let Some(c) = self.conn(key, fd) else {
            return false;
        };
        match input {
            Input::Held(mut held) => {
                held.drain(..pos);
                c.inbuf = held;
            }
            Input::Fresh(rest) => append(&mut c.inbuf, &rest[pos.min(rest.len())..]),
        }
        if c.inbuf.is_empty() && c.inbuf.capacity() > 0 {
            c.inbuf = ThinVec::new();
        }
        let recv_pending = c.inbuf.len();
        if recv_pending > 0 || c.queue_reported {
            let out = c.pending_out();
            table.set_queued(region, key, recv_pending, out);
            c.queue_reported = recv_pending > 0 || out > 0;
        }
        true
    }
}

/// Input of one decode pass: bytes held from earlier reads plus the fresh ones, or only fresh.
enum Input<'a> {
    Held(ThinVec<u8>),
    Fresh(&'a [u8]),
}

impl<H: Handler> Worker<H> {
    /// Decodes WebSocket input and delivers each event. The connection's decoder is taken out
    /// while events are delivered (messages borrow from it) and put back afterwards.
    pub(super) fn on_ws_input(&self, key: usize, fd: Fd, fresh: &mut [u8]) {
        let (mut dec, mut held) = {
            let mut core = self.cx.core();
            let Some(c) = core.conn(key, fd) else { return };
            let Some(dec) = c.decoder.take() else { return };
            (dec, std::mem::take(&mut c.inbuf))
        };
        let use_held = !held.is_empty();
        if use_held {
            append(&mut held, fresh);
        }
        let input: &mut [u8] = if use_held { &mut held } else { fresh };
        let conn = ConnId {
            fd,
            slot: key as u32,
        };
        let mut pos = 0;
        let mut failure = None;
        loop {
            match dec.decode(&mut input[pos..]) {
                Ok((0, None)) => break,
                Ok((used, ev)) => {
                    pos += used;
                    if let Some(ev) = ev {
                        if !self.dispatch(key, conn, ev) {
                            break;
                        }
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let rest = if use_held {
            Input::Held(held)
        } else {
            Input::Fresh(&input[..])
        };
        let mut core = self.cx.core();
        dec.shrink();
        if let Some(c) = core.conn(key, fd) {
            c.decoder = Some(dec);
        }
        if !core.keep_ws_input(key, fd, rest, pos) {
            return;
        }
        if let Some(e) = failure {
            let code = e.close_code();
            log::info!("fd {fd}: protocol error, closing with {code}: {e}");
            core.close_with(key, code, "", CloseReason::ProtocolError(code));
        }
    }

    /// Handles one decoded event. Returns false when input processing must stop.
    fn dispatch(&self, key: usize, conn: ConnId, ev: Event<'_>) -> bool {
        let st = self.cx.settings();
        match ev {
            Event::Message {
                opcode,
                data,
                compressed,
            } => {
                self.cx.core().messages_in += 1;
                self.deliver(
                    key,
                    conn,
                    Message::Data {
                        opcode,
                        data,
                        compressed,
                    },
                );
            }
            Event::Ping(p) if st.open_websocket_ping_frame => {
                self.deliver(key, conn, Message::Ping(p))
            }
            Event::Ping(p) => {
                self.cx
                    .core()
                    .push_local(key, p, OpCode::Pong.as_u8(), FLAG_FIN);
            }
            Event::Pong(p) if st.open_websocket_pong_frame => {
                self.deliver(key, conn, Message::Pong(p))
            }
            Event::Pong(_) => {}
            Event::Close { code, reason } => {
                if st.open_websocket_close_frame {
                    self.deliver(key, conn, Message::Close { code, reason });
                }
                self.cx.core().on_peer_close(key, conn.fd, code);
                return false;
            }
        }
        let mut core = self.cx.core();
        matches!(core.conn(key, conn.fd), Some(c) if c.phase == Phase::Ws)
    }

    /// Calls `on_message`, closing the connection with 1011 if it panics.
    fn deliver(&self, key: usize, conn: ConnId, msg: Message<'_>) {
        if guarded("on_message", || {
            self.handler.on_message(&self.cx, conn, msg)
        })
        .is_none()
        {
            let r = CloseReason::ServerClosed(1011);
            self.cx.core().close_with(key, 1011, "internal error", r);
        }
    }
}

/// An unmasked close frame with `payload` (code + reason, or empty).
pub(super) fn close_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 2);
    encode_frame(
        &mut frame,
        true,
        false,
        OpCode::Close.as_u8(),
        payload,
        None,
    );
    frame
}
