//! The upgrade of a polling session to WebSocket: the WebSocket (handed to the session's
//! worker if it landed elsewhere) is probed (`2probe` → `3probe`), a waiting GET is released
//! with a noop, and on `5` the session switches over: the packets still queued for polling
//! go out on the WebSocket, in order, and the heartbeat goes on.

use super::session::{sid_fd, Transport};
use super::verify::HandshakeError;
use super::{EngineCtx, EngineHandler, EngineIo, SessionKey};
use crate::engineio::{Packet, PacketType};
use crate::runtime::{ConnId, UpgradeReply};

impl<E: EngineHandler> EngineIo<E> {
    /// An upgrade request of polling session `sid`.
    pub(super) fn upgrade_request(&self, cx: &EngineCtx<E>, sid: &str) -> UpgradeReply {
        let owner = sid_fd(sid).and_then(|fd| cx.worker_of(fd));
        if let Some(w) = owner.filter(|&w| w != cx.worker_id()) {
            return UpgradeReply::HandOff(w);
        }
        let mut sessions = self.sessions.borrow_mut();
        let Some(key) = sessions.of_sid(sid) else {
            return UpgradeReply::Refuse(HandshakeError::UnknownSid.upgrade_response());
        };
        match sessions
            .get_mut(key)
            .map(|s| s.polling().map(|p| p.probe.is_some()))
        {
            Some(Some(false)) => UpgradeReply::Accept,
            // Already upgraded: engine.io accepts the WebSocket and closes it at once
            // (`attach_probe` does).
            Some(None) => UpgradeReply::Accept,
            // Another upgrade is under way.
            _ => UpgradeReply::Refuse(HandshakeError::BadRequest.upgrade_response()),
        }
    }

    /// The upgrade's WebSocket is open: it becomes the session's probe.
    pub(super) fn attach_probe(&self, cx: &EngineCtx<E>, conn: ConnId, sid: &str) {
        let mut sessions = self.sessions.borrow_mut();
        let key = sessions.of_sid(sid);
        let attached = key.and_then(|k| {
            let p = sessions.get_mut(k)?.polling()?;
            if p.probe.is_some() {
                return None;
            }
            p.probe = Some(conn);
            Some(k)
        });
        match attached {
            Some(k) => sessions.map_conn(conn, k),
            None => {
                drop(sessions);
                cx.close_with(conn.fd, 1000, "");
            }
        }
    }

    /// A packet on the probing WebSocket.
    pub(super) fn on_probe_packet(
        &self,
        cx: &EngineCtx<E>,
        key: SessionKey,
        conn: ConnId,
        packet: Packet,
    ) {
        let version = match self.with_session(key, |s| s.version) {
            Some(v) => v,
            None => return,
        };
        match packet.kind {
            PacketType::Ping if packet.data == crate::engineio::Data::Text("probe".into()) => {
                self.send_packet(
                    cx,
                    conn.fd,
                    version,
                    &Packet::text(PacketType::Pong, "probe"),
                );
                if let Some(p) = self
                    .sessions
                    .borrow_mut()
                    .get_mut(key)
                    .and_then(|s| s.polling())
                {
                    p.probed = true;
                    if p.get.is_some() && p.queue.is_empty() {
                        p.queue.push(Packet::text(PacketType::Noop, ""));
                    }
                }
                self.flush_poll(cx, key);
            }
            PacketType::Upgrade => self.complete_upgrade(cx, key, conn),
            _ => {
                log::debug!(
                    "engine.io session {}: {:?} on the probe; closing it",
                    key.0,
                    packet.kind
                );
                cx.close_with(conn.fd, 1000, "");
            }
        }
    }

    fn complete_upgrade(&self, cx: &EngineCtx<E>, key: SessionKey, conn: ConnId) {
        let (queued, get, version) = {
            let mut sessions = self.sessions.borrow_mut();
            let Some(s) = sessions.get_mut(key) else {
                return;
            };
            let version = s.version;
            let Some(p) = s.polling() else {
                return;
            };
            if !p.probed || p.probe != Some(conn) {
                return;
            }
            let queued = std::mem::take(&mut p.queue);
            let get = p.get.take();
            if let Some(g) = get {
                sessions.unmap_conn(g);
            }
            sessions.upgraded(key, conn);
            (queued, get, version)
        };
        if let Some(g) = get {
            let (body, kind) =
                crate::engineio::encode_payload(version, &[Packet::text(PacketType::Noop, "")]);
            cx.respond(g, super::polling::ok_response(body, kind));
        }
        for p in &queued {
            self.send_packet(cx, conn.fd, version, p);
        }
        log::debug!(
            "engine.io session {} upgraded ({} queued packet(s) moved)",
            key.0,
            queued.len()
        );
        self.handler.on_upgrade(self.engine(cx), key, conn);
    }

    /// The probing WebSocket closed before the upgrade completed: polling goes on.
    pub(super) fn probe_gone(&self, key: SessionKey, conn: ConnId) -> bool {
        let mut sessions = self.sessions.borrow_mut();
        let Some(s) = sessions.get_mut(key) else {
            return false;
        };
        let Transport::Polling(p) = &mut s.transport else {
            return false;
        };
        if p.probe != Some(conn) {
            return false;
        }
        p.probe = None;
        p.probed = false;
        sessions.unmap_conn(conn);
        true
    }
}
