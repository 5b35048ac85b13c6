//! The Engine.IO server as a runtime [`Handler`]: handshakes at its path, frames in, sessions
//! closed; everything else goes to the application.

use super::config::Endpoint;
use super::handler::{Data, DisconnectReason};
use super::verify::verify;
use super::{EngineCtx, EngineHandler, EngineIo};
use crate::engineio::{decode_binary, decode_text, Data as PacketData, PacketType};
use crate::protocol::frame::OpCode;
use crate::runtime::{CloseReason, ConnId, Handler, HttpReply, Message, Request, UpgradeReply};

impl<E: EngineHandler> Handler for EngineIo<E> {
    fn on_worker_start(&self, cx: &EngineCtx<E>) {
        self.handler.on_worker_start(self.engine(cx));
    }

    fn on_worker_stop(&self, cx: &EngineCtx<E>) {
        self.handler.on_worker_stop(self.engine(cx));
    }

    fn on_request(&self, cx: &EngineCtx<E>, conn: ConnId, request: Request) -> HttpReply {
        if self.config.route(request.path()).is_none() {
            return self.handler.on_request(self.engine(cx), conn, request);
        }
        let err = match verify(&request, false, self.config.allow_eio3) {
            Err(e) => e,
            Ok(_) => super::HandshakeError::BadRequest,
        };
        log::debug!("engine.io: {} refused: {}", request.fd, err.message());
        HttpReply::Respond(err.http_response())
    }

    fn on_upgrade(&self, cx: &EngineCtx<E>, _conn: ConnId, request: &Request) -> UpgradeReply {
        let Some(endpoint) = self.config.route(request.path()) else {
            log::debug!(
                "engine.io: upgrade to {} refused (not the engine's path)",
                request.path()
            );
            return UpgradeReply::Refuse(super::HandshakeError::BadRequest.upgrade_response());
        };
        if let Err(e) = verify(request, true, self.config.allow_eio3) {
            log::debug!(
                "engine.io: upgrade of {} refused: {}",
                request.fd,
                e.message()
            );
            return UpgradeReply::Refuse(e.upgrade_response());
        }
        if endpoint == Endpoint::Handler {
            if let Err(mut refusal) = self.handler.on_handshake(self.engine(cx), request) {
                if refusal.status_code() == 101 {
                    refusal.status(403);
                }
                refusal.close();
                return UpgradeReply::Refuse(refusal);
            }
        }
        UpgradeReply::Accept
    }

    fn on_open(&self, cx: &EngineCtx<E>, conn: ConnId, request: &Request) {
        let endpoint = self
            .config
            .route(request.path())
            .unwrap_or(Endpoint::Handler);
        match verify(request, true, self.config.allow_eio3) {
            Ok(h) => self.open(cx, conn, request, h.version, endpoint),
            // Checked in on_upgrade; a request cannot change in between.
            Err(e) => {
                log::warn!(
                    "engine.io: {} opened without a valid handshake ({})",
                    conn.fd,
                    e.message()
                );
                cx.close(conn.fd);
            }
        }
    }

    fn on_message(&self, cx: &EngineCtx<E>, conn: ConnId, message: Message<'_>) {
        let Message::Data { opcode, data, .. } = message else {
            return;
        };
        let Some((key, version, endpoint)) = self.sessions.borrow().of_conn(conn).and_then(|k| {
            self.sessions
                .borrow()
                .get(k)
                .map(|s| (k, s.version, s.endpoint))
        }) else {
            return;
        };
        let max = self.config.max_payload;
        if data.len() > max {
            log::info!(
                "engine.io session {}: message of {} bytes over max_payload {max}",
                key.0,
                data.len()
            );
            self.close_code(cx, key, DisconnectReason::TransportError, 1009);
            return;
        }
        let packet = match opcode {
            OpCode::Binary => decode_binary(version, data, max),
            _ => decode_text(version, data, max),
        };
        let packet = match packet {
            Ok(p) => p,
            Err(e) => {
                log::info!("engine.io session {}: {e}; closing", key.0);
                self.close(cx, key, DisconnectReason::ParseError);
                return;
            }
        };
        match (packet.kind, &packet.data) {
            (PacketType::Message, d) => {
                let data = match d {
                    PacketData::Text(t) => Data::Text(t),
                    PacketData::Binary(b) => Data::Binary(b),
                };
                match endpoint {
                    Endpoint::Handler => self.handler.on_message(self.engine(cx), key, data),
                    Endpoint::Echo => self.echo(cx, key, data),
                }
            }
            (PacketType::Ping, PacketData::Text(t)) => self.on_client_ping(cx, key, t),
            (PacketType::Pong, _) => self.on_client_pong(cx, key),
            (PacketType::Close, _) => {
                self.close(cx, key, DisconnectReason::TransportClose);
            }
            // upgrade / noop / open have no meaning on an established WebSocket session.
            _ => {}
        }
    }

    fn on_close(&self, cx: &EngineCtx<E>, conn: ConnId, reason: CloseReason) {
        let Some(key) = self.sessions.borrow().of_conn(conn) else {
            return;
        };
        let Some(session) = self.sessions.borrow_mut().remove(key) else {
            return;
        };
        let reason = session.closing.unwrap_or(match reason {
            CloseReason::PeerClosed(_) | CloseReason::ConnectionLost => {
                DisconnectReason::TransportClose
            }
            CloseReason::Shutdown => DisconnectReason::ServerShuttingDown,
            CloseReason::Idle | CloseReason::CloseTimeout => DisconnectReason::PingTimeout,
            CloseReason::ServerClosed(_) | CloseReason::ServerDropped => {
                DisconnectReason::ForcedClose
            }
            _ => DisconnectReason::TransportError,
        });
        if session.endpoint == Endpoint::Handler {
            self.handler.on_close(self.engine(cx), key, reason);
        }
    }

    fn on_peer_message(&self, cx: &EngineCtx<E>, from_worker: usize, channel: u16, data: &[u8]) {
        self.handler
            .on_peer_message(self.engine(cx), from_worker, channel, data);
    }
}

impl<E: EngineHandler> EngineIo<E> {
    /// The raw echo endpoint: every message back as it came.
    fn echo(&self, cx: &EngineCtx<E>, key: super::SessionKey, data: Data<'_>) {
        match data {
            Data::Text(t) => self.send_text(cx, key, t),
            Data::Binary(b) => self.send_binary(cx, key, b),
        };
    }
}
