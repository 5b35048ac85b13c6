//! The one path that turns an HTTP connection into a WebSocket: the handler's decision, RFC
//! 6455 validation, subprotocol and permessage-deflate negotiation, the sanitised 101, and
//! the switch of the connection's state.

use thin_vec::ThinVec;

use super::{guarded, Core, Worker};
use crate::protocol::decoder::{DecoderConfig, MessageDecoder};
use crate::protocol::deflate::{self, Inflater};
use crate::protocol::frame::{WEBSOCKET_STATUS_ACTIVE, WEBSOCKET_STATUS_HANDSHAKE};
use crate::protocol::handshake;
use crate::runtime::conn::{Compression, Phase};
use crate::runtime::handler::{CloseReason, ConnId, Handler, UpgradeReply};
use crate::runtime::http::{Request, Response};
use crate::runtime::table::Fd;

/// Headers of the 101 that the runtime writes itself; a handler's copies are dropped.
const OWN_HEADERS: [&str; 5] = [
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
];

impl Core {
    /// Accepts an upgrade: validates the request, picks the subprotocol (the handler's choice
    /// if the client offered it, else the configured list's), negotiates permessage-deflate
    /// when enabled, queues the 101 and switches the connection to WebSocket. A request that
    /// is not a valid upgrade gets its status (400, 426) and is closed: `false`.
    fn accept_upgrade(
        &mut self,
        key: usize,
        fd: Fd,
        request: &Request,
        protocol: Option<String>,
        extra: &[(String, String)],
    ) -> bool {
        let up = match handshake::validate_upgrade(&request.http) {
            Ok(up) => up,
            Err(e) => {
                log::info!(
                    "fd {fd}: handshake rejected ({e}), answering {}",
                    e.status()
                );
                self.count_refused(e.status());
                self.respond_and_close(key, &e.response());
                return false;
            }
        };
        let chosen = match protocol {
            Some(p) => up.protocols.iter().find(|o| o.as_str() == p).cloned(),
            None => {
                handshake::select_subprotocol(&up.protocols, &self.subprotocols).map(String::from)
            }
        };
        let pmd = if self.settings.websocket_compression {
            up.extensions.as_deref().and_then(deflate::negotiate)
        } else {
            None
        };
        let extra: Vec<(String, String)> = extra
            .iter()
            .filter(|(k, _)| !OWN_HEADERS.iter().any(|o| k.eq_ignore_ascii_case(o)))
            .cloned()
            .collect();
        let resp = handshake::build_101(
            &handshake::accept_key(&up.key),
            chosen.as_deref(),
            pmd.as_ref().map(|(_, s)| s.as_str()),
            &extra,
        );
        self.establish(key, fd, &resp, pmd.map(|(cfg, _)| cfg))
    }

    /// Switches a connection to WebSocket after queueing `response` (the 101).
    fn establish(
        &mut self,
        key: usize,
        fd: Fd,
        response: &[u8],
        pmd: Option<deflate::DeflateConfig>,
    ) -> bool {
        let max = self.settings.package_max_length;
        let (table, region) = (self.table, self.region);
        let Some(c) = self.conn(key, fd) else {
            return false;
        };
        if c.phase != Phase::Http {
            return false; // closed meanwhile
        }
        c.phase = Phase::Ws;
        c.upgraded = true;
        c.deadline_ms = 0;
        let mut dec = MessageDecoder::new(DecoderConfig {
            max_message_size: max,
            require_mask: true,
        });
        if let Some(cfg) = &pmd {
            dec.set_inflater(Some(Inflater::new(cfg)));
            c.deflater = Some(Box::new(Compression::Negotiated(*cfg)));
        }
        c.decoder = Some(dec);
        table.set_status(region, key, WEBSOCKET_STATUS_ACTIVE);
        self.queue(key, response, usize::MAX);
        if self.stopping.is_some() && self.migrate_to.is_none() {
            // Shutting down or reloading: the handshake succeeds, then the client is told to
            // reconnect (to the replacement worker).
            self.send_close(key, 1001, "server shutdown", CloseReason::Shutdown);
        }
        true
    }

    /// Frames the client sent right behind its upgrade request.
    fn take_early_frames(&mut self, key: usize, fd: Fd) -> ThinVec<u8> {
        match self.conn(key, fd) {
            Some(c) if !c.inbuf.is_empty() && c.phase == Phase::Ws => std::mem::take(&mut c.inbuf),
            _ => ThinVec::new(),
        }
    }
}

impl<H: Handler> Worker<H> {
    pub(super) fn upgrade(&self, key: usize, fd: Fd, request: Request) {
        {
            // websocket_status 2 while the handshake is decided (visible to the handler).
            let core = self.cx.core();
            core.table
                .set_status(core.region, key, WEBSOCKET_STATUS_HANDSHAKE);
        }
        let conn = ConnId {
            fd,
            slot: key as u32,
        };
        let reply = guarded("on_upgrade", || {
            self.handler.on_upgrade(&self.cx, conn, &request)
        })
        .unwrap_or_else(|| {
            let mut r = Response::default();
            r.status(500);
            UpgradeReply::Refuse(r)
        });
        let (protocol, headers) = match reply {
            UpgradeReply::Accept => (None, Vec::new()),
            UpgradeReply::AcceptWith { protocol, headers } => (protocol, headers),
            UpgradeReply::HandOff(worker) => {
                let bytes = crate::runtime::http::request_bytes(&request.http, &[]);
                let mut core = self.cx.core();
                if !core.hand_off(key, fd, worker, &bytes, 0) {
                    log::info!("fd {fd}: cannot hand the upgrade to worker {worker}; 503");
                    core.refuse(key, 503, b"Service Unavailable");
                }
                return;
            }
            UpgradeReply::Refuse(resp) => {
                let status = match resp.status_code() {
                    101 => 500, // "refused with 101" is a handler bug, not an acceptance
                    s => s,
                };
                log::info!("fd {fd}: handshake refused by the handler with {status}");
                self.cx.core().count_refused(status);
                let mut headers = resp.headers().to_vec();
                headers.push(("Connection".into(), "close".into()));
                let bytes = handshake::build_response(status, &headers, resp.body());
                self.cx.core().respond_and_close(key, &bytes);
                return;
            }
        };
        if !self
            .cx
            .core()
            .accept_upgrade(key, fd, &request, protocol, &headers)
        {
            return;
        }
        if guarded("on_open", || self.handler.on_open(&self.cx, conn, &request)).is_none() {
            let r = CloseReason::ServerClosed(1011);
            self.cx.core().close_with(key, 1011, "internal error", r);
            return;
        }
        let mut early = self.cx.core().take_early_frames(key, fd);
        if !early.is_empty() {
            self.on_ws_input(key, fd, &mut early[..]);
        }
    }
}
