//! The Swoole-style `Server` as one implementation of the runtime's `Handler`: runtime events
//! become Swoole callbacks (`onOpen`, `onMessage`, `onClose`, `onHandShake`, ...).

use super::{Frame, Server, PIPE_CHANNEL};
use crate::protocol::frame::{OpCode, FLAG_COMPRESS, FLAG_FIN};
use crate::runtime::{
    CloseReason, ConnId, Ctx, HandOff, Handler, HttpReply, Message, Request, Response, UpgradeReply,
};

impl Handler for Server {
    fn on_worker_start(&self, cx: &Ctx<Self>) {
        *self.cx.borrow_mut() = Some(cx.clone());
        if let Some(cb) = &self.cb.on_worker_start {
            cb(self, cx.worker_id());
        }
    }

    fn on_worker_stop(&self, cx: &Ctx<Self>) {
        if let Some(cb) = &self.cb.on_worker_stop {
            cb(self, cx.worker_id());
        }
    }

    fn on_request(&self, _cx: &Ctx<Self>, _conn: ConnId, request: Request) -> HttpReply {
        let Some(cb) = &self.cb.on_request else {
            return HttpReply::Respond(Response::bad_request());
        };
        let mut resp = Response::default();
        cb(self, &request, &mut resp);
        HttpReply::Respond(resp)
    }

    /// `onHandShake`: status 101 accepts — through the runtime's one upgrade path, so the
    /// key is validated, compression and the subprotocol are negotiated and every header is
    /// sanitised; anything else refuses with that response.
    fn on_upgrade(&self, _cx: &Ctx<Self>, _conn: ConnId, request: &Request) -> UpgradeReply {
        let Some(cb) = &self.cb.on_handshake else {
            return UpgradeReply::Accept;
        };
        let mut resp = Response::default();
        cb(self, request, &mut resp);
        if resp.status_code() != 101 {
            return UpgradeReply::Refuse(resp);
        }
        let protocol = resp
            .headers()
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-protocol"))
            .map(|(_, v)| v.clone());
        UpgradeReply::AcceptWith {
            protocol,
            headers: resp.headers().to_vec(),
        }
    }

    /// Swoole does not call `onOpen` when `onHandShake` is set.
    fn on_open(&self, _cx: &Ctx<Self>, _conn: ConnId, request: &Request) {
        if self.cb.on_handshake.is_some() {
            return;
        }
        if let Some(cb) = &self.cb.on_open {
            cb(self, request);
        }
    }

    fn on_message(&self, _cx: &Ctx<Self>, conn: ConnId, message: Message<'_>) {
        let Some(cb) = &self.cb.on_message else {
            return;
        };
        let mut close_payload = Vec::new();
        let frame = swoole_frame(conn, message, &mut close_payload);
        cb(self, &frame);
    }

    fn on_close(&self, _cx: &Ctx<Self>, conn: ConnId, reason: CloseReason) {
        self.closing(conn, reason, self.cb.on_close.as_ref());
    }

    fn on_disconnect(&self, _cx: &Ctx<Self>, conn: ConnId, reason: CloseReason) {
        self.closing(conn, reason, self.cb.on_disconnect.as_ref());
    }

    /// A reload hands the connection over: its portable context values go along.
    fn on_hand_off(&self, _cx: &Ctx<Self>, conn: ConnId) -> HandOff {
        let removed = self.contexts.borrow_mut().remove(conn);
        let state = match &removed {
            Some(map) if !self.portable.is_empty() => Some(self.portable.export(map)),
            _ => None,
        };
        drop(removed);
        HandOff::Move(state)
    }

    fn on_adopt(&self, _cx: &Ctx<Self>, conn: ConnId, state: Option<&[u8]>) {
        if let Some(bytes) = state {
            let values = self.portable.import(bytes);
            if !values.is_empty() {
                self.contexts
                    .borrow_mut()
                    .insert(conn, Box::new(values.into_iter().collect()));
            }
        }
        if let Some(cb) = &self.cb.on_adopt {
            cb(self, conn.fd);
        }
    }

    fn on_peer_message(&self, _cx: &Ctx<Self>, from_worker: usize, channel: u16, data: &[u8]) {
        if channel != PIPE_CHANNEL {
            return;
        }
        if let Some(cb) = &self.cb.on_pipe_message {
            cb(self, from_worker, data);
        }
    }
}

impl Server {
    /// Runs the close callback (the context and the reason are readable in it), then drops
    /// the connection's context — also when the callback panics.
    fn closing(&self, conn: ConnId, reason: CloseReason, cb: Option<&super::FdFn>) {
        self.close_reason.set(Some(reason));
        let res = cb
            .map(|cb| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(self, conn.fd))));
        self.close_reason.set(None);
        let removed = self.contexts.borrow_mut().remove(conn);
        drop(removed);
        if let Some(Err(p)) = res {
            std::panic::resume_unwind(p);
        }
    }
}

/// A runtime message as Swoole's `Frame`; a close frame's payload (code + reason) is built
/// in `scratch`.
pub(crate) fn swoole_frame<'a>(
    conn: ConnId,
    message: Message<'a>,
    scratch: &'a mut Vec<u8>,
) -> Frame<'a> {
    let frame = |data, opcode, flags| Frame {
        fd: conn.fd,
        data,
        opcode,
        flags,
        finish: true,
        code: 0,
        reason: "",
    };
    match message {
        Message::Data {
            opcode,
            data,
            compressed,
        } => {
            let flags = FLAG_FIN | if compressed { FLAG_COMPRESS } else { 0 };
            frame(data, opcode, flags)
        }
        Message::Ping(p) => frame(p, OpCode::Ping, FLAG_FIN),
        Message::Pong(p) => frame(p, OpCode::Pong, FLAG_FIN),
        Message::Close { code, reason } => {
            if let Some(c) = code {
                scratch.extend_from_slice(&c.to_be_bytes());
                scratch.extend_from_slice(reason.as_bytes());
            }
            Frame {
                code: code.unwrap_or(0),
                reason,
                ..frame(&scratch[..], OpCode::Close, FLAG_FIN)
            }
        }
    }
}
