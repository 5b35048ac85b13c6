//! HTTP `Request` and `Response` as handlers see them (Swoole's `Swoole\Http\Request` and
//! `Swoole\Http\Response`).

use std::net::SocketAddr;

use crate::protocol::handshake::HttpRequest;
use crate::runtime::table::Fd;

/// An HTTP request: the WebSocket upgrade request in `on_open` / `on_handshake`, or a plain
/// request in `on_request` (Swoole's `Swoole\Http\Request`).
#[derive(Debug, Clone)]
pub struct Request {
    /// Connection id.
    pub fd: Fd,
    /// Peer address.
    pub remote_addr: SocketAddr,
    /// Port of the listener that accepted the connection.
    pub server_port: u16,
    /// Index of that listener in `ServeSpec::listeners` (several servers in one process set
    /// tell their requests apart by it, also when their ports were chosen by the OS).
    pub listener: usize,
    /// Request body (plain HTTP requests with `Content-Length`).
    pub body: Vec<u8>,
    pub(crate) http: HttpRequest,
}

impl Request {
    pub(crate) fn new(
        fd: Fd,
        remote_addr: SocketAddr,
        server_port: u16,
        http: HttpRequest,
    ) -> Self {
        Request {
            fd,
            remote_addr,
            server_port,
            listener: 0,
            body: Vec::new(),
            http,
        }
    }

    /// `GET`, `POST`, ...
    pub fn method(&self) -> &str {
        &self.http.method
    }

    /// Path without the query string.
    pub fn path(&self) -> &str {
        &self.http.path
    }

    /// Raw query string, without `?`.
    pub fn query_string(&self) -> &str {
        &self.http.query_string
    }

    /// A query parameter (`$request->get['name']`), percent-decoded.
    pub fn get(&self, name: &str) -> Option<String> {
        self.http
            .query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Every query parameter, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        self.http.query_pairs()
    }

    /// A header by name, case-insensitively (`$request->header['name']`).
    pub fn header(&self, name: &str) -> Option<&str> {
        let lower = name.to_ascii_lowercase();
        self.http.header(&lower)
    }

    /// All headers, names lower-cased.
    pub fn headers(&self) -> &[(String, String)] {
        &self.http.headers
    }

    /// A cookie by name (`$request->cookie['name']`).
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.http
            .cookies()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The parsed request as the protocol layer sees it.
    pub fn http(&self) -> &HttpRequest {
        &self.http
    }
}

/// The bytes of a request as a client would have sent them (names lower-cased).
pub(crate) fn request_bytes(http: &HttpRequest, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(http.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(http.path.as_bytes());
    if !http.query_string.is_empty() {
        out.push(b'?');
        out.extend_from_slice(http.query_string.as_bytes());
    }
    out.extend_from_slice(format!(" HTTP/1.{}\r\n", http.version).as_bytes());
    for (k, v) in &http.headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A request kept for later in one allocation (its head as sent; no body), for layers that
/// hold the handshake request of many long-lived connections. [`StoredRequest::request`]
/// parses it back.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredRequest {
    #[serde(with = "serde_bytes")]
    head: Box<[u8]>,
    fd: Fd,
    remote_addr: SocketAddr,
    server_port: u16,
    listener: u16,
}

impl StoredRequest {
    /// Keeps `request`'s head, without the WebSocket handshake's own negotiation headers
    /// (`sec-websocket-key`, `-version`, `-extensions`), which nobody needs afterwards.
    pub fn new(request: &Request) -> StoredRequest {
        let mut http = request.http.clone();
        http.headers.retain(|(k, _)| {
            !matches!(
                k.as_str(),
                "sec-websocket-key" | "sec-websocket-version" | "sec-websocket-extensions"
            )
        });
        StoredRequest {
            head: request_bytes(&http, &[]).into_boxed_slice(),
            fd: request.fd,
            remote_addr: request.remote_addr,
            server_port: request.server_port,
            listener: request.listener as u16,
        }
    }

    /// The request again (headers, cookies, query, remote address; no body).
    pub fn request(&self) -> Option<Request> {
        let (http, _) =
            crate::protocol::handshake::parse_request(&self.head, usize::MAX).ok()??;
        let mut r = Request::new(self.fd, self.remote_addr, self.server_port, http);
        r.listener = self.listener as usize;
        Some(r)
    }
}

/// An HTTP response under construction (Swoole's `Swoole\Http\Response`).
///
/// In `on_handshake`, set status 101 (see [`Response::accept_websocket`]) to accept; any other
/// status refuses the upgrade with that status, headers and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) ended: bool,
    pub(crate) close: bool,
}

impl Default for Response {
    fn default() -> Self {
        Response {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
            ended: false,
            close: false,
        }
    }
}

impl Response {
    /// `400 Bad Request` with `Connection: close` (what a plain request gets where nothing
    /// serves it).
    pub fn bad_request() -> Response {
        let mut r = Response::default();
        r.status(400)
            .header("Content-Type", "text/html")
            .write("<html><body><h2>400 Bad Request</h2></body></html>")
            .close();
        r
    }

    /// Sets the status code.
    pub fn status(&mut self, code: u16) -> &mut Self {
        self.status = code;
        self
    }

    /// The status code set so far.
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// The headers set so far, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body written so far.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Whether the connection closes after this response ([`close`](Response::close)).
    pub fn closes(&self) -> bool {
        self.close
    }

    /// Adds a header.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Appends to the body.
    pub fn write(&mut self, body: impl AsRef<[u8]>) -> &mut Self {
        self.body.extend_from_slice(body.as_ref());
        self
    }

    /// Appends to the body and finishes the response.
    pub fn end(&mut self, body: impl AsRef<[u8]>) {
        self.write(body);
        self.ended = true;
    }

    /// Closes the connection after this response (`$response->close()`); `on_disconnect` runs.
    pub fn close(&mut self) {
        self.close = true;
        self.ended = true;
    }

    /// Fills in a standard RFC 6455 acceptance for `request` (status 101, `Upgrade`,
    /// `Connection`, `Sec-WebSocket-Accept`). Returns `false` and sets 400 when the request is
    /// not a valid upgrade (bad key, wrong version, ...). Custom handshakes call this and then
    /// add their own headers, e.g. `Sec-WebSocket-Protocol`.
    pub fn accept_websocket(&mut self, request: &Request) -> bool {
        match crate::protocol::handshake::validate_upgrade(&request.http) {
            Ok(up) => {
                self.status = 101;
                self.headers.push(("Upgrade".into(), "websocket".into()));
                self.headers.push(("Connection".into(), "Upgrade".into()));
                self.headers.push((
                    "Sec-WebSocket-Accept".into(),
                    crate::protocol::handshake::accept_key(&up.key),
                ));
                true
            }
            Err(e) => {
                self.status = e.status();
                false
            }
        }
    }
}
