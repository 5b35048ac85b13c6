//! The Engine.IO server as a runtime [`Handler`]: handshakes, polling requests and upgrades
//! at its path, frames in, sessions closed; everything else goes to the application.

use super::config::Endpoint;
use super::handler::{Data, DisconnectReason};
use super::session::Transport;
use super::verify::{verify, HandshakeError, TransportKind, Verified};
use super::{EngineCtx, EngineHandler, EngineIo, SessionKey};
use crate::engineio::{decode_binary, decode_text, Data as PacketData, Packet, PacketType};
use crate::protocol::frame::OpCode;
use crate::runtime::{
    CloseReason, ConnId, HandOff, Handler, HttpReply, Message, Request, UpgradeReply,
};

impl<E: EngineHandler> Handler for EngineIo<E> {
    fn on_worker_start(&self, cx: &EngineCtx<E>) {
        self.handler.on_worker_start(self.engine(cx));
    }

    fn on_worker_stop(&self, cx: &EngineCtx<E>) {
        self.handler.on_worker_stop(self.engine(cx));
    }

    fn on_request(&self, cx: &EngineCtx<E>, conn: ConnId, request: Request) -> HttpReply {
        match self.config.route(request.path()) {
            Some(endpoint) => self.on_engine_request(cx, conn, &request, endpoint),
            None => self.handler.on_request(self.engine(cx), conn, request),
        }
    }

    fn on_upgrade(&self, cx: &EngineCtx<E>, _conn: ConnId, request: &Request) -> UpgradeReply {
        let Some(endpoint) = self.config.route(request.path()) else {
            log::debug!(
                "engine.io: upgrade to {} refused (not the engine's path)",
                request.path()
            );
            return UpgradeReply::Refuse(HandshakeError::BadRequest.upgrade_response());
        };
        let c = &self.config;
        match verify(request, true, c.allow_eio3, c.polling) {
            Err(e) => {
                log::debug!(
                    "engine.io: upgrade of {} refused: {}",
                    request.fd,
                    e.message()
                );
                UpgradeReply::Refuse(e.upgrade_response())
            }
            Ok(Verified::Session { sid, .. }) => self.upgrade_request(cx, &sid),
            Ok(Verified::Handshake { .. }) if endpoint == Endpoint::Handler => {
                match self.handler.on_handshake(self.engine(cx), request) {
                    Ok(()) => UpgradeReply::Accept,
                    Err(mut refusal) => {
                        if refusal.status_code() == 101 {
                            refusal.status(403);
                        }
                        refusal.close();
                        UpgradeReply::Refuse(refusal)
                    }
                }
            }
            Ok(Verified::Handshake { .. }) => UpgradeReply::Accept,
        }
    }

    fn on_open(&self, cx: &EngineCtx<E>, conn: ConnId, request: &Request) {
        let endpoint = self
            .config
            .route(request.path())
            .unwrap_or(Endpoint::Handler);
        let c = &self.config;
        match verify(request, true, c.allow_eio3, c.polling) {
            Ok(Verified::Handshake {
                version,
                transport: TransportKind::WebSocket,
            }) => self.open_ws(cx, conn, request, version, endpoint),
            Ok(Verified::Session { sid, .. }) => self.attach_probe(cx, conn, &sid),
            // Checked in on_upgrade; a request cannot change in between.
            _ => {
                log::warn!("engine.io: {} opened without a valid handshake", conn.fd);
                cx.close(conn.fd);
            }
        }
    }

    fn on_message(&self, cx: &EngineCtx<E>, conn: ConnId, message: Message<'_>) {
        let Message::Data { opcode, data, .. } = message else {
            return;
        };
        let found = {
            let sessions = self.sessions.borrow();
            sessions.of_conn(conn).and_then(|k| {
                let s = sessions.get(k)?;
                let probe = matches!(&s.transport, Transport::Polling(p) if p.probe == Some(conn));
                Some((k, s.version, probe))
            })
        };
        let Some((key, version, probe)) = found else {
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
        // The common case, a text message on an established session, without a copy.
        if opcode == OpCode::Text && !probe && data.first() == Some(&b'4') {
            if let (Ok(text), Some(Endpoint::Handler)) = (
                std::str::from_utf8(&data[1..]),
                self.with_session(key, |s| s.endpoint),
            ) {
                self.handler
                    .on_message(self.engine(cx), key, Data::Text(text));
                return;
            }
        }
        let packet = match opcode {
            OpCode::Binary => decode_binary(version, data, max),
            _ => decode_text(version, data, max),
        };
        match packet {
            Ok(p) if probe => self.on_probe_packet(cx, key, conn, p),
            Ok(p) => self.on_packet(cx, key, p),
            Err(e) => {
                log::info!("engine.io session {}: {e}; closing", key.0);
                self.close(cx, key, DisconnectReason::ParseError);
            }
        }
    }

    /// A reload or an upgrade moves the connection: a WebSocket session goes with it (see
    /// `hand_off`); a polling session's connections close (1001) and its client reconnects.
    fn on_hand_off(&self, cx: &EngineCtx<E>, conn: ConnId) -> HandOff {
        self.hand_off_session(cx, conn)
    }

    fn on_adopt(&self, cx: &EngineCtx<E>, conn: ConnId, state: Option<&[u8]>) {
        self.adopt_session(cx, conn, state);
    }

    fn on_close(&self, cx: &EngineCtx<E>, conn: ConnId, reason: CloseReason) {
        let Some(key) = self.sessions.borrow().of_conn(conn) else {
            return;
        };
        if self.probe_gone(key, conn) {
            return;
        }
        let closing = self.with_session(key, |s| s.closing).flatten();
        let reason = closing.unwrap_or(match reason {
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
        self.finish(cx, key, reason);
    }

    fn on_disconnect(&self, cx: &EngineCtx<E>, conn: ConnId, _reason: CloseReason) {
        self.on_get_gone(cx, conn);
    }

    fn on_peer_message(&self, cx: &EngineCtx<E>, from_worker: usize, channel: u16, data: &[u8]) {
        self.handler
            .on_peer_message(self.engine(cx), from_worker, channel, data);
    }
}

impl<E: EngineHandler> EngineIo<E> {
    /// One packet of a session, from its WebSocket or a POST.
    pub(super) fn on_packet(&self, cx: &EngineCtx<E>, key: SessionKey, packet: Packet) {
        let Some(endpoint) = self.with_session(key, |s| s.endpoint) else {
            return;
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
            (PacketType::Close, _) => self.client_close(cx, key),
            // upgrade / noop / open have no meaning here.
            _ => {}
        }
    }

    /// The raw echo endpoint: every message back as it came.
    fn echo(&self, cx: &EngineCtx<E>, key: SessionKey, data: Data<'_>) {
        match data {
            Data::Text(t) => self.send_text(cx, key, t),
            Data::Binary(b) => self.send_binary(cx, key, b),
        };
    }
}
