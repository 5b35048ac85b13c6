//! HTTP long-polling: the handshake GET, GETs held until packets are due (a ping at the
//! latest), POSTs carrying packets, CORS and the sid cookie — for the session's owner. A
//! request that names a session of another worker is handed to that worker.

use super::config::Endpoint;
use super::handler::DisconnectReason;
use super::session::{sid_fd, Transport};
use super::verify::{HandshakeError, TransportKind, Verified};
use super::{EngineCtx, EngineHandler, EngineIo, SessionKey};
use crate::engineio::{decode_payload, encode_payload, Packet, PacketType, Version};
use crate::runtime::{ConnId, HttpReply, Request, Response};

/// A 200 with a payload.
pub(super) fn ok_response(body: Vec<u8>, kind: &str) -> Response {
    let mut r = Response::default();
    r.header("Content-Type", kind)
        .header("Cache-Control", "no-store")
        .write(body);
    r
}

impl<E: EngineHandler> EngineIo<E> {
    /// A request to the engine's path that is not an upgrade.
    pub(super) fn on_engine_request(
        &self,
        cx: &EngineCtx<E>,
        conn: ConnId,
        request: &Request,
        endpoint: Endpoint,
    ) -> HttpReply {
        if request.method() == "OPTIONS" {
            return HttpReply::Respond(self.cors(request, preflight()));
        }
        let c = &self.config;
        let answer = match super::verify::verify(request, false, c.allow_eio3, c.polling) {
            Err(e) => Err(e),
            Ok(Verified::Handshake {
                version,
                transport: TransportKind::Polling,
            }) => Ok(self.handshake(cx, conn, request, version, endpoint)),
            Ok(Verified::Handshake { .. }) => Err(HandshakeError::BadRequest),
            Ok(Verified::Session { sid, .. }) => {
                return self.session_request(cx, conn, request, &sid)
            }
        };
        let response = answer.unwrap_or_else(|e| {
            log::debug!("engine.io: {} refused: {}", request.fd, e.message());
            e.http_response()
        });
        HttpReply::Respond(self.cors(request, response))
    }

    /// A new polling session: answered with its OPEN packet (upgrades: websocket).
    fn handshake(
        &self,
        cx: &EngineCtx<E>,
        conn: ConnId,
        request: &Request,
        version: Version,
        endpoint: Endpoint,
    ) -> Response {
        if endpoint == Endpoint::Handler {
            if let Err(refusal) = self.handler.on_handshake(self.engine(cx), request) {
                return refusal;
            }
        }
        let sid = self.sid_for(conn, version, endpoint, true);
        let open = self.open_packet(&sid, true);
        let cookie = self
            .config
            .cookie
            .as_ref()
            .map(|name| format!("{name}={sid}; Path=/; HttpOnly; SameSite=Lax"));
        let key = self.new_session(
            cx,
            sid,
            Transport::Polling(Box::default()),
            version,
            endpoint,
        );
        self.arm(cx);
        let (body, kind) = encode_payload(version, &[open]);
        let mut r = ok_response(body, kind);
        if let Some(c) = cookie {
            r.header("Set-Cookie", &c);
        }
        if endpoint == Endpoint::Handler {
            self.handler.on_open(self.engine(cx), key, request);
        }
        r
    }

    /// A GET or POST of session `sid`: served here if it is ours, else handed to its worker.
    fn session_request(
        &self,
        cx: &EngineCtx<E>,
        conn: ConnId,
        request: &Request,
        sid: &str,
    ) -> HttpReply {
        let owner = sid_fd(sid).and_then(|fd| cx.worker_of(fd));
        if let Some(w) = owner.filter(|&w| w != cx.worker_id()) {
            return HttpReply::HandOff(w);
        }
        let key = self.sessions.borrow().of_sid(sid);
        let Some(key) = key else {
            let e = HandshakeError::UnknownSid;
            return HttpReply::Respond(self.cors(request, e.http_response()));
        };
        let reply = match request.method() {
            "GET" => self.poll(cx, conn, key),
            "POST" => HttpReply::Respond(self.post(cx, key, &request.body)),
            _ => HttpReply::Respond(HandshakeError::BadRequest.http_response()),
        };
        match reply {
            HttpReply::Respond(r) => HttpReply::Respond(self.cors(request, r)),
            other => other,
        }
    }

    /// A GET: the packets waiting, a noop while an upgrade is probed, or held until packets
    /// are due. A second GET while one is held ends the session, as engine.io does.
    fn poll(&self, cx: &EngineCtx<E>, conn: ConnId, key: SessionKey) -> HttpReply {
        enum Next {
            Overlap,
            Now(Vec<Packet>, Version),
            Hold,
        }
        let next = {
            let mut sessions = self.sessions.borrow_mut();
            let Some(s) = sessions.get_mut(key) else {
                return HttpReply::Respond(HandshakeError::UnknownSid.http_response());
            };
            let version = s.version;
            match s.polling() {
                // Upgraded: the session's polling requests are stale.
                None => return HttpReply::Respond(HandshakeError::BadRequest.http_response()),
                Some(p) if p.get.is_some() => Next::Overlap,
                Some(p) if p.probed && p.queue.is_empty() => {
                    Next::Now(vec![Packet::text(PacketType::Noop, "")], version)
                }
                Some(p) if !p.queue.is_empty() => Next::Now(std::mem::take(&mut p.queue), version),
                Some(p) => {
                    p.get = Some(conn);
                    sessions.map_conn(conn, key);
                    Next::Hold
                }
            }
        };
        match next {
            Next::Overlap => {
                log::info!(
                    "engine.io session {}: a second GET while one is held; closing",
                    key.0
                );
                self.close(cx, key, DisconnectReason::TransportError);
                HttpReply::Respond(HandshakeError::BadRequest.http_response())
            }
            Next::Now(packets, version) => {
                let (body, kind) = encode_payload(version, &packets);
                HttpReply::Respond(ok_response(body, kind))
            }
            Next::Hold => HttpReply::Hold,
        }
    }

    /// Answers the held GET with every waiting packet, if there are both.
    pub(super) fn flush_poll(&self, cx: &EngineCtx<E>, key: SessionKey) {
        let ready = {
            let mut sessions = self.sessions.borrow_mut();
            let Some(s) = sessions.get_mut(key) else {
                return;
            };
            let version = s.version;
            let Some(p) = s.polling() else {
                return;
            };
            if p.get.is_none() || p.queue.is_empty() {
                return;
            }
            let get = p.get.take();
            let packets = std::mem::take(&mut p.queue);
            if let Some(g) = get {
                sessions.unmap_conn(g);
            }
            get.map(|g| (g, packets, version))
        };
        if let Some((get, packets, version)) = ready {
            let (body, kind) = encode_payload(version, &packets);
            let response = ok_response(body, kind);
            if !cx.respond(get, response) {
                log::debug!(
                    "engine.io session {}: its GET went away; {} packet(s) lost",
                    key.0,
                    packets.len()
                );
            }
        }
    }

    /// A POST: its packets, in order. Too large: 413; malformed: 400 — both end the session.
    fn post(&self, cx: &EngineCtx<E>, key: SessionKey, body: &[u8]) -> Response {
        let Some(version) = self.with_session(key, |s| s.version) else {
            return HandshakeError::UnknownSid.http_response();
        };
        let max = self.config.max_payload;
        if body.len() > max {
            log::info!(
                "engine.io session {}: POST of {} bytes over max_payload {max}",
                key.0,
                body.len()
            );
            self.close(cx, key, DisconnectReason::TransportError);
            let mut r = Response::default();
            r.status(413).write("Payload Too Large");
            return r;
        }
        match decode_payload(version, body, max) {
            Ok(packets) => {
                for p in packets {
                    self.on_packet(cx, key, p);
                }
                let mut r = Response::default();
                r.header("Content-Type", "text/html")
                    .header("Cache-Control", "no-store")
                    .write("ok");
                r
            }
            Err(e) => {
                log::info!("engine.io session {}: bad payload ({e}); closing", key.0);
                self.close(cx, key, DisconnectReason::ParseError);
                HandshakeError::BadRequest.http_response()
            }
        }
    }

    /// A held GET whose client went away: the session ends (engine.io does the same).
    pub(super) fn on_get_gone(&self, cx: &EngineCtx<E>, conn: ConnId) {
        let key = {
            let mut sessions = self.sessions.borrow_mut();
            let Some(key) = sessions.of_conn(conn) else {
                return;
            };
            let held = sessions
                .get_mut(key)
                .and_then(|s| s.polling())
                .is_some_and(|p| p.get == Some(conn));
            if !held {
                return;
            }
            if let Some(p) = sessions.get_mut(key).and_then(|s| s.polling()) {
                p.get = None;
            }
            sessions.unmap_conn(conn);
            key
        };
        log::debug!(
            "engine.io session {}: its held GET was cancelled; closing",
            key.0
        );
        self.close(cx, key, DisconnectReason::TransportClose);
    }

    /// CORS headers when configured and the request has an `Origin`.
    fn cors(&self, request: &Request, mut r: Response) -> Response {
        let (Some(cors), Some(origin)) = (&self.config.cors, request.header("origin")) else {
            return r;
        };
        let allow = if cors.origin == "*" && !cors.credentials {
            "*"
        } else if cors.origin == "*" || cors.origin == origin {
            origin
        } else {
            return r;
        };
        r.header("Access-Control-Allow-Origin", allow)
            .header("Vary", "Origin");
        if cors.credentials {
            r.header("Access-Control-Allow-Credentials", "true");
        }
        if r.status_code() == 204 {
            let headers = request
                .header("access-control-request-headers")
                .unwrap_or("content-type")
                .to_string();
            r.header(
                "Access-Control-Allow-Methods",
                "GET,HEAD,PUT,PATCH,POST,DELETE",
            )
            .header("Access-Control-Allow-Headers", &headers);
        }
        r
    }
}

fn preflight() -> Response {
    let mut r = Response::default();
    r.status(204);
    r
}
