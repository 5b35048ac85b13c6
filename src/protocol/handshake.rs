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
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
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
                Some(i) => (
                    percent_decode(&p[..i], true),
                    percent_decode(&p[i + 1..], true),
                ),
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
        self.header_all("upgrade")
            .any(|v| has_token(v, "websocket"))
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
        return Err(HandshakeError::BadRequest(
            "websocket upgrade requires HTTP/1.1",
        ));
    }
    if req.header("host").is_none() {
        return Err(HandshakeError::BadRequest("missing Host"));
    }
    if !req.is_websocket_upgrade() {
        return Err(HandshakeError::BadRequest("missing Upgrade: websocket"));
    }
    if !req
        .header_all("connection")
        .any(|v| has_token(v, "upgrade"))
    {
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
    let extensions = if ext.is_empty() {
        None
    } else {
        Some(ext.join(", "))
    };
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
        418 => "I'm a teapot",
        422 => "Unprocessable Content",
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = "GET /chat?room=a%20b&x=1+2&flag HTTP/1.1\r\nHost: example.com\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nSec-WebSocket-Extensions: x-foo\r\nCookie: a=1; b=\"two\"\r\nCookie: c=%41\r\n\r\n";

    fn req(s: &str) -> HttpRequest {
        parse_request(s.as_bytes(), 8192).unwrap().unwrap().0
    }

    fn with_header_replaced(name: &str, line: Option<&str>) -> String {
        let mut out = String::new();
        for l in GOOD.split_inclusive("\r\n") {
            if l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            {
                if let Some(r) = line {
                    out.push_str(r);
                    out.push_str("\r\n");
                }
            } else {
                out.push_str(l);
            }
        }
        out
    }

    #[test]
    fn parses_a_valid_upgrade_request() {
        let (r, n) = parse_request(GOOD.as_bytes(), 8192).unwrap().unwrap();
        assert_eq!(n, GOOD.len());
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/chat");
        assert_eq!(r.query_string, "room=a%20b&x=1+2&flag");
        assert_eq!(r.version, 1);
        assert_eq!(r.header("host"), Some("example.com"));
        assert!(r.is_websocket_upgrade());
        assert!(r.keep_alive());
        let u = validate_upgrade(&r).unwrap();
        assert_eq!(u.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(u.protocols, vec!["chat", "superchat"]);
        assert_eq!(
            u.extensions.as_deref(),
            Some("permessage-deflate; client_max_window_bits, x-foo")
        );
    }

    #[test]
    fn query_pairs_are_percent_decoded() {
        assert_eq!(
            req(GOOD).query_pairs(),
            vec![
                ("room".into(), "a b".into()),
                ("x".into(), "1 2".into()),
                ("flag".into(), String::new())
            ]
        );
    }

    #[test]
    fn cookies_from_all_headers() {
        assert_eq!(
            req(GOOD).cookies(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "two".into()),
                ("c".into(), "A".into())
            ]
        );
    }

    #[test]
    fn accept_key_matches_rfc6455_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn incomplete_request_is_none() {
        for i in 0..GOOD.len() {
            assert!(
                parse_request(&GOOD.as_bytes()[..i], 8192)
                    .unwrap()
                    .is_none(),
                "{i}"
            );
        }
    }

    #[test]
    fn body_is_not_included() {
        let s = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        let (r, n) = parse_request(s.as_bytes(), 8192).unwrap().unwrap();
        assert_eq!(r.content_length, 5);
        assert_eq!(&s[n..], "hello");
    }

    #[test]
    fn oversize_header_block_is_431() {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        while s.len() < 9000 {
            s.push_str("X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        // incomplete and already too large
        let e = parse_request(s.as_bytes(), 8192).unwrap_err();
        assert_eq!(e, HandshakeError::HeadersTooLarge);
        assert_eq!(e.status(), 431);
        assert!(e
            .response()
            .starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        // complete but too large
        let small = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: aaaaaaaaaaaaaaaaaaa\r\n\r\n";
        assert_eq!(
            parse_request(small.as_bytes(), 20).unwrap_err(),
            HandshakeError::HeadersTooLarge
        );
    }

    #[test]
    fn too_many_header_lines_is_431() {
        let mut s = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        s.push_str("\r\n");
        assert_eq!(
            parse_request(s.as_bytes(), 1 << 20).unwrap_err().status(),
            431
        );
    }

    #[test]
    fn malformed_request_is_400() {
        for s in [
            "GARBAGE\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "\x00\x01\r\n\r\n",
        ] {
            assert_eq!(
                parse_request(s.as_bytes(), 8192).unwrap_err().status(),
                400,
                "{s:?}"
            );
        }
    }

    #[test]
    fn chunked_transfer_encoding_is_400() {
        let s = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            parse_request(s.as_bytes(), 8192).unwrap_err(),
            HandshakeError::BadRequest("chunked not supported")
        );
    }

    #[test]
    fn bad_content_length_is_400() {
        for v in ["abc", "-1", "1, 2", "99999999999999999999999"] {
            let s = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {v}\r\n\r\n");
            assert_eq!(
                parse_request(s.as_bytes(), 8192).unwrap_err().status(),
                400,
                "{v}"
            );
        }
        let s = "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(parse_request(s.as_bytes(), 8192).unwrap_err().status(), 400);
    }

    #[test]
    fn handshake_missing_key_is_400() {
        let e =
            validate_upgrade(&req(&with_header_replaced("Sec-WebSocket-Key", None))).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.response().starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    }

    #[test]
    fn handshake_key_not_16_bytes_is_400() {
        for k in [
            "Sec-WebSocket-Key: aGVsbG8=",
            "Sec-WebSocket-Key: !!!notbase64!!!",
            "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            let e = validate_upgrade(&req(&with_header_replaced("Sec-WebSocket-Key", Some(k))))
                .unwrap_err();
            assert_eq!(e.status(), 400, "{k}");
        }
    }

    #[test]
    fn version_8_is_426_with_version_header() {
        let e = validate_upgrade(&req(&with_header_replaced(
            "Sec-WebSocket-Version",
            Some("Sec-WebSocket-Version: 8"),
        )))
        .unwrap_err();
        assert_eq!(e, HandshakeError::UnsupportedVersion);
        assert_eq!(e.status(), 426);
        let resp = String::from_utf8(e.response()).unwrap();
        assert!(resp.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(resp.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(resp.contains("\r\nConnection: close\r\n"));
        assert!(resp.contains("\r\nContent-Length: "));
    }

    #[test]
    fn missing_version_is_426() {
        let e = validate_upgrade(&req(&with_header_replaced("Sec-WebSocket-Version", None)))
            .unwrap_err();
        assert_eq!(e.status(), 426);
    }

    #[test]
    fn non_get_upgrade_is_400() {
        let s = GOOD.replacen("GET", "POST", 1);
        assert_eq!(validate_upgrade(&req(&s)).unwrap_err().status(), 400);
    }

    #[test]
    fn http_1_0_upgrade_is_400() {
        let s = GOOD.replacen("HTTP/1.1", "HTTP/1.0", 1);
        assert_eq!(validate_upgrade(&req(&s)).unwrap_err().status(), 400);
    }

    #[test]
    fn missing_host_is_400() {
        assert_eq!(
            validate_upgrade(&req(&with_header_replaced("Host", None)))
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn missing_upgrade_or_connection_token_is_400() {
        let r = req(&with_header_replaced("Upgrade", Some("Upgrade: h2c")));
        assert!(!r.is_websocket_upgrade());
        assert_eq!(validate_upgrade(&r).unwrap_err().status(), 400);
        let r = req(&with_header_replaced(
            "Connection",
            Some("Connection: keep-alive"),
        ));
        assert_eq!(validate_upgrade(&r).unwrap_err().status(), 400);
        // tokens are case-insensitive and may be in a list
        let r = req(&with_header_replaced(
            "Connection",
            Some("Connection: UPGRADE"),
        ));
        assert!(validate_upgrade(&r).is_ok());
        let r = req(&with_header_replaced(
            "Upgrade",
            Some("Upgrade: foo, WEBSOCKET"),
        ));
        assert!(validate_upgrade(&r).is_ok());
    }

    #[test]
    fn keep_alive_rules() {
        let r = req("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(!r.keep_alive());
        let r = req("GET / HTTP/1.0\r\n\r\n");
        assert!(!r.keep_alive());
        let r = req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(r.keep_alive());
    }

    #[test]
    fn subprotocol_selection_uses_server_preference() {
        let offered = vec!["chat".to_string(), "superchat".to_string()];
        let supported = vec!["superchat".to_string(), "chat".to_string()];
        assert_eq!(select_subprotocol(&offered, &supported), Some("superchat"));
        assert_eq!(select_subprotocol(&offered, &["mqtt".to_string()]), None);
        assert_eq!(select_subprotocol(&[], &supported), None);
    }

    #[test]
    fn build_101_has_required_headers() {
        let r = build_101(
            "abc=",
            Some("chat"),
            Some("permessage-deflate"),
            &[("X-A".into(), "b\r\nInjected: 1".into())],
        );
        let s = String::from_utf8(r).unwrap();
        assert_eq!(
            s,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc=\r\nSec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate\r\nX-A: b  Injected: 1\r\n\r\n"
        );
        let s = String::from_utf8(build_101("k", None, None, &[])).unwrap();
        assert!(!s.contains("Sec-WebSocket-Protocol") && !s.contains("Extensions"));
    }

    #[test]
    fn build_response_adds_content_length() {
        let r = build_response(
            404,
            &[("Content-Type".into(), "text/plain".into())],
            b"nope",
        );
        assert_eq!(
            r,
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nnope"
                .to_vec()
        );
        let r = build_response(200, &[("content-length".into(), "2".into())], b"ok");
        assert_eq!(
            r,
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()
        );
        assert_eq!(reason_phrase(599), "Unknown");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300), max in 0usize..400) {
            match parse_request(&b, max) {
                Ok(Some((r, n))) => {
                    prop_assert!(n <= b.len());
                    if let Ok(u) = validate_upgrade(&r) { let _ = accept_key(&u.key); }
                    let _ = (r.query_pairs(), r.cookies(), r.keep_alive());
                }
                Ok(None) => prop_assert!(b.len() <= max),
                Err(e) => prop_assert!([400u16, 431].contains(&e.status())),
            }
        }

        #[test]
        fn random_header_values_never_panic(v in "[ -~\\x80-\\xff]{0,60}") {
            let s = format!("GET /?{v} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {v}\r\nCookie: {v}\r\nSec-WebSocket-Extensions: {v}\r\n\r\n");
            if let Ok(Some((r, _))) = parse_request(s.as_bytes(), 8192) {
                let _ = validate_upgrade(&r);
                let _ = (r.query_pairs(), r.cookies());
                if let Some(e) = r.header("sec-websocket-extensions") { let _ = crate::protocol::deflate::negotiate(e); }
            }
        }
    }
}
