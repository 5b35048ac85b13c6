//! HTTP on a connection before (or instead of) WebSocket: parsing pipelined requests,
//! handing them to the handler, and writing its answers — now or, for held requests, later.

use super::{guarded, Core, Worker};
use crate::protocol::handshake;
use crate::runtime::conn::{append, Phase};
use crate::runtime::handler::{CloseReason, ConnId, Handler, HttpReply};
use crate::runtime::http::{Request, Response};
use crate::runtime::table::Fd;

impl Core {
    /// Writes a handler's answer. Keep-alive unless the request or the response says close or
    /// the worker is stopping; then the handshake timeout runs again for the next request.
    /// Returns whether another request may follow on the connection.
    pub(super) fn answer_http(
        &mut self,
        key: usize,
        fd: Fd,
        keep_alive: bool,
        resp: &Response,
    ) -> bool {
        let keep = keep_alive && !resp.closes() && self.stopping.is_none();
        let mut headers = resp.headers().to_vec();
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("connection"))
        {
            let v = if keep { "keep-alive" } else { "close" };
            headers.push(("Connection".into(), v.into()));
        }
        let bytes = handshake::build_response(resp.status_code(), &headers, resp.body());
        if self.conn(key, fd).is_none() {
            return false;
        }
        if !keep {
            self.respond_and_close(key, &bytes);
            return false;
        }
        // Pipelined requests from a client that does not read are bounded like pushes.
        if !self.queue(key, &bytes, self.settings.buffer_output_size) {
            return false;
        }
        let deadline = self.now + self.settings.handshake_timeout.as_millis() as u64;
        self.push_deadline(deadline, key, fd);
        true
    }

    /// Answers a held request (`Ctx::respond`).
    pub(super) fn answer_held(&mut self, conn: ConnId, resp: Response) -> bool {
        let key = conn.slot as usize;
        let Some(c) = self.conn(key, conn.fd) else {
            return false;
        };
        let Some(keep_alive) = c.held.take() else {
            return false;
        };
        if self.answer_http(key, conn.fd, keep_alive, &resp) {
            // Requests the client pipelined meanwhile are parsed after this event.
            self.resume.push(key);
        }
        true
    }

    /// Refuses a request and closes: `status` with a short body.
    pub(super) fn refuse(&mut self, key: usize, status: u16, body: &[u8]) {
        self.count_refused(status);
        let headers = [("Connection".to_string(), "close".to_string())];
        let resp = handshake::build_response(status, &headers, body);
        self.respond_and_close(key, &resp);
    }
}

impl Core {
    /// On the metrics port, the runtime answers (`GET /metrics`, else 404).
    fn metrics_answer(&self, request: &Request) -> Option<Response> {
        if !self.ports.get(request.listener)?.metrics {
            return None;
        }
        let mut r = Response::default();
        if request.path() == "/metrics" && request.method() == "GET" {
            r.header("Content-Type", crate::runtime::metrics::CONTENT_TYPE)
                .write(crate::runtime::metrics::render(&self.table));
        } else {
            r.status(404).write("Not Found");
        }
        Some(r)
    }

    /// Counts a handshake or request refused with `status` (metrics).
    pub(super) fn count_refused(&mut self, status: u16) {
        self.counters.refused[crate::runtime::metrics::refused_bucket(status)] += 1;
    }
}

impl<H: Handler> Worker<H> {
    pub(super) fn on_http_input(&self, key: usize, fd: Fd, fresh: &[u8]) {
        {
            let mut core = self.cx.core();
            let limit = core.settings.max_header_size + core.settings.package_max_length;
            let Some(c) = core.conn(key, fd) else { return };
            append(&mut c.inbuf, fresh);
            if c.held.is_some() {
                // Pipelined behind a held request: bounded, parsed once it is answered.
                if c.inbuf.len() > limit {
                    log::info!("fd {fd}: too much input behind a held request, closing");
                    core.kill(key, CloseReason::ServerDropped);
                }
                return;
            }
        }
        // A keep-alive connection may have several pipelined requests: parse them at an
        // advancing offset and drop the consumed prefix once.
        let mut pos = 0;
        while self.handle_one_request(key, fd, &mut pos) {}
        let mut core = self.cx.core();
        if let Some(c) = core.conn(key, fd) {
            if c.phase == Phase::Http && pos > 0 {
                c.consume_input(pos);
            }
        }
    }

    /// Handles one complete request from the connection's input. Returns true if another may
    /// follow on the same connection.
    fn handle_one_request(&self, key: usize, fd: Fd, pos: &mut usize) -> bool {
        let start = *pos;
        let Some((request, upgrade)) = self.cx.core().take_request(key, fd, pos) else {
            return false;
        };
        if upgrade {
            self.upgrade(key, fd, request);
            false
        } else {
            self.http_request(key, fd, request, start)
        }
    }

    /// `start`: where the request begins in the connection's input (for a hand-off).
    fn http_request(&self, key: usize, fd: Fd, request: Request, start: usize) -> bool {
        let keep_alive = request.http.keep_alive();
        let metrics = self.cx.core().metrics_answer(&request);
        if let Some(resp) = metrics {
            return self.cx.core().answer_http(key, fd, keep_alive, &resp);
        }
        let conn = ConnId {
            fd,
            slot: key as u32,
        };
        let reply = guarded("on_request", || {
            self.handler.on_request(&self.cx, conn, request)
        })
        .unwrap_or_else(|| {
            let mut r = Response::default();
            r.status(500).write("Internal Server Error");
            HttpReply::Respond(r)
        });
        let mut core = self.cx.core();
        match reply {
            HttpReply::Respond(resp) => core.answer_http(key, fd, keep_alive, &resp),
            HttpReply::HandOff(worker) => {
                if !core.hand_off(key, fd, worker, &[], start) {
                    log::info!("fd {fd}: cannot hand the request to worker {worker}; 503");
                    core.refuse(key, 503, b"Service Unavailable");
                }
                false
            }
            HttpReply::Hold => {
                if let Some(c) = core.conn(key, fd).filter(|c| c.phase == Phase::Http) {
                    c.held = Some(keep_alive);
                    c.deadline_ms = 0; // the handler answers; no handshake timeout meanwhile
                }
                false
            }
        }
    }
}

impl Core {
    /// Parses the next complete request at `*pos` of the connection's input, answering bad
    /// input itself. Returns the request and whether it is a WebSocket upgrade.
    fn take_request(&mut self, key: usize, fd: Fd, pos: &mut usize) -> Option<(Request, bool)> {
        let max_header = self.settings.max_header_size;
        let max_body = self.settings.package_max_length;
        let c = self.conn(key, fd)?;
        if c.phase != Phase::Http || c.held.is_some() || c.inbuf.len() <= *pos {
            return None;
        }
        let listener = c.listener as usize;
        let (http, head_len) = match handshake::parse_request(&c.inbuf[*pos..], max_header) {
            Ok(Some(p)) => p,
            Ok(None) => return None,
            Err(e) => {
                log::info!("fd {fd}: bad request ({e}), answering {}", e.status());
                self.count_refused(e.status());
                self.respond_and_close(key, &e.response());
                return None;
            }
        };
        let (port, websocket) = (self.ports[listener].port, self.ports[listener].websocket);
        let upgrade = websocket && http.is_websocket_upgrade();
        let body_len = if upgrade { 0 } else { http.content_length };
        if body_len > max_body {
            log::info!("fd {fd}: request body of {body_len} bytes is too large, answering 413");
            self.refuse(key, 413, b"Payload Too Large");
            return None;
        }
        let c = self.conns.get_mut(key)?;
        let start = *pos;
        if c.inbuf.len() < start + head_len + body_len {
            return None;
        }
        let body = c.inbuf[start + head_len..start + head_len + body_len].to_vec();
        *pos = start + head_len + body_len;
        if upgrade {
            // What follows the upgrade request is WebSocket input.
            c.consume_input(*pos);
            *pos = 0;
        }
        let remote = c
            .stream
            .peer_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut request = Request::new(fd, remote, port, http);
        request.body = body;
        request.listener = listener;
        Some((request, upgrade))
    }
}
