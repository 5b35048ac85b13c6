//! HTTP/1.1 request parsing (incremental, httparse), WebSocket upgrade
//! validation (RFC 6455 §4.2) and response building.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use super::error::HandshakeError;

/// RFC 6455 GUID appended to the key.
pub const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Most header lines accepted in one request (more -> 431).
pub const MAX_HEADERS: usize = 100;

/// A parsed HTTP/1.x request head.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    /// Method, e.g. "GET".
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Raw query string, without '?'.
    pub query_string: String,
    /// Minor version: 0 or 1 for HTTP/1.x.
    pub version: u8,
    /// Headers, names lower-cased, order kept.
    pub headers: Vec<(String, String)>,
    /// From Content-Length (0 if absent).
    pub content_length: usize,
}

fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` ('+' as space when `plus` is set), lossy UTF-8.
fn percent_decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl HttpRequest {
    /// First value of the header (name given lower-case).
    pub fn header(&self, name_lowercase: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name_lowercase)
            .map(|(_, v)| v.as_str())
    }

    /// All values of the header, in order.
    pub fn header_all<'a>(&'a self, name_lowercase: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name_lowercase)
            .map(|(_, v)| v.as_str())
    }

    /// Query parameters, percent-decoded, '+' as space.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query_string
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.find('=') {
                Some(i) => (percent_decode(&p[..i], true), percent_decode(&p[i + 1..], true)),
                None => (percent_decode(p, true), String::new()),
            })
            .collect()
    }

    /// Cookies from all Cookie headers.
    pub fn cookies(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        for h in self.header_all("cookie") {
            for c in h.split(';') {
                let c = c.trim();
                if c.is_empty() {
                    continue;
                }
                match c.find('=') {
                    Some(i) => {
                        let val = c[i + 1..].trim();
                        let val = val
                            .strip_prefix('"')
                            .and_then(|x| x.strip_suffix('"'))
                            .unwrap_or(val);
                        v.push((c[..i].trim().to_string(), percent_decode(val, false)));
                    }
                    None => v.push((c.to_string(), String::new())),
                }
            }
        }
        v
    }

    /// The client asks for a WebSocket upgrade (Upgrade contains "websocket").
    pub fn is_websocket_upgrade(&self) -> bool {
        self.header_all("upgrade").any(|v| has_token(v, "websocket"))
    }

    /// HTTP/1.1: true unless `Connection: close`; HTTP/1.0: only with keep-alive.
    pub fn keep_alive(&self) -> bool {
        let conn = |t: &str| self.header_all("connection").any(|v| has_token(v, t));
        if self.version >= 1 {
            !conn("close")
        } else {
            conn("keep-alive")
        }
    }
}

/// Incremental request-head parser. `Ok(None)` = incomplete (keep the bytes);
/// `Ok(Some((req, header_len)))`, body not included. `HeadersTooLarge` once
/// the head exceeds `max_header_bytes` (or has too many lines); malformed ->
/// `BadRequest`.
pub fn parse_request(
    buf: &[u8],
    max_header_bytes: usize,
) -> Result<Option<(HttpRequest, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::HeadersTooLarge),
        Err(httparse::Error::Version) => {
            return Err(HandshakeError::BadRequest("unsupported HTTP version"))
        }
        Err(_) => return Err(HandshakeError::BadRequest("malformed request")),
    };
    let header_len = match status {
        httparse::Status::Partial => {
            if buf.len() > max_header_bytes {
                return Err(HandshakeError::HeadersTooLarge);
            }
            return Ok(None);
        }
        httparse::Status::Complete(n) => n,
    };
    if header_len > max_header_bytes {
        return Err(HandshakeError::HeadersTooLarge);
    }
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default();
    let (path, query_string) = match target.find('?') {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, ""),
    };
    let mut out = HttpRequest {
        method,
        path: path.to_string(),
        query_string: query_string.to_string(),
        version: req.version.unwrap_or(1),
        headers: Vec::with_capacity(req.headers.len()),
        content_length: 0,
    };
    let mut content_length: Option<usize> = None;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(h.value).trim().to_string();
        if name == "content-length" {
            let v: usize = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                value
                    .parse()
                    .map_err(|_| HandshakeError::BadRequest("invalid Content-Length"))?
            } else {
                return Err(HandshakeError::BadRequest("invalid Content-Length"));
            };
            if content_length.is_some_and(|c| c != v) {
                return Err(HandshakeError::BadRequest("conflicting Content-Length"));
            }
            content_length = Some(v);
        } else if name == "transfer-encoding" && !value.eq_ignore_ascii_case("identity") {
            return Err(HandshakeError::BadRequest("chunked not supported"));
        }
        out.headers.push((name, value));
    }
    out.content_length = content_length.unwrap_or(0);
    Ok(Some((out, header_len)))
}

/// What a valid upgrade request asks for.
#[derive(Debug, Clone)]
pub struct UpgradeRequest {
    /// Sec-WebSocket-Key as sent.
    pub key: String,
    /// Offered subprotocols in order.
    pub protocols: Vec<String>,
    /// Raw Sec-WebSocket-Extensions, all header lines joined with ", ".
    pub extensions: Option<String>,
}

/// Validates a WebSocket upgrade request (RFC 6455 §4.2.1).
pub fn validate_upgrade(req: &HttpRequest) -> Result<UpgradeRequest, HandshakeError> {
    if req.method != "GET" {
        return Err(HandshakeError::BadRequest("websocket upgrade requires GET"));
    }
    if req.version < 1 {
        return Err(HandshakeError::BadRequest("websocket upgrade requires HTTP/1.1"));
    }
    if req.header("host").is_none() {
        return Err(HandshakeError::BadRequest("missing Host"));
    }
    if !req.is_websocket_upgrade() {
        return Err(HandshakeError::BadRequest("missing Upgrade: websocket"));
    }
    if !req.header_all("connection").any(|v| has_token(v, "upgrade")) {
        return Err(HandshakeError::BadRequest("missing Connection: Upgrade"));
    }
    let mut versions = req.header_all("sec-websocket-version");
    match (versions.next(), versions.next()) {
        (Some(v), None) if v.trim() == "13" => {}
        _ => return Err(HandshakeError::UnsupportedVersion),
    }
    let mut keys = req.header_all("sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => k.trim(),
        (None, _) => return Err(HandshakeError::BadRequest("missing Sec-WebSocket-Key")),
        _ => return Err(HandshakeError::BadRequest("duplicate Sec-WebSocket-Key")),
    };
    match BASE64.decode(key) {
        Ok(k) if k.len() == 16 => {}
        _ => return Err(HandshakeError::BadRequest("invalid Sec-WebSocket-Key")),
    }
    let protocols = req
        .header_all("sec-websocket-protocol")
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let ext: Vec<&str> = req
        .header_all("sec-websocket-extensions")
        .filter(|v| !v.trim().is_empty())
        .collect();
    let extensions = if ext.is_empty() { None } else { Some(ext.join(", ")) };
    Ok(UpgradeRequest {
        key: key.to_string(),
        protocols,
        extensions,
    })
}

/// `base64(sha1(key + GUID))`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(WS_GUID.as_bytes());
    BASE64.encode(h.finalize())
}

/// First of `supported` (server preference order) that the client offered.
pub fn select_subprotocol<'a>(offered: &[String], supported: &'a [String]) -> Option<&'a str> {
    supported
        .iter()
        .find(|s| offered.iter().any(|o| o == *s))
        .map(|s| s.as_str())
}

/// Removes CR/LF so a header value can never split the response.
fn sanitize(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\r', '\n']) {
        std::borrow::Cow::Owned(s.replace(['\r', '\n'], " "))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(sanitize(name).as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(sanitize(value).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The `101 Switching Protocols` response.
pub fn build_101(
    accept: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
    extra_headers: &[(String, String)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    push_header(&mut out, "Sec-WebSocket-Accept", accept);
    if let Some(p) = protocol {
        push_header(&mut out, "Sec-WebSocket-Protocol", p);
    }
    if let Some(e) = extensions {
        push_header(&mut out, "Sec-WebSocket-Extensions", e);
    }
    for (n, v) in extra_headers {
        push_header(&mut out, n, v);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Any response: status line with the standard reason phrase, headers as
/// given, Content-Length added if absent (not for 1xx/204/304), body.
pub fn build_response(status: u16, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + body.len() + headers.len() * 32);
    out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", status, reason_phrase(status)).as_bytes());
    let mut has_len = false;
    for (n, v) in headers {
        if n.eq_ignore_ascii_case("content-length") {
            has_len = true;
        }
        push_header(&mut out, n, v);
    }
    let bodyless = (100..200).contains(&status) || status == 204 || status == 304;
    if !has_len && !bodyless {
        push_header(&mut out, "Content-Length", &body.len().to_string());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Standard reason phrase ("Unknown" for unknown codes).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}
