//! HTTP long-polling payloads: several packets in one request or response body.
//!
//! * v4: the text forms of the packets joined by the record separator `\x1e`; binary
//!   packets as `b<base64>`. Always `text/plain; charset=UTF-8`.
//! * v3 text (string) payload: each packet as `<length>:<text form>`, where the length
//!   counts UTF-16 code units (JavaScript `String.length`, as engine.io-parser 2.x does);
//!   binary packets as `b<type><base64>`. `text/plain; charset=UTF-8`.
//! * v3 binary payload (XHR2): each packet as a flag byte (`0x00` text, `0x01` binary), the
//!   decimal digits of the length as byte values 0..=9, `0xff`, then the packet: text as
//!   UTF-8 (`<type><data>`, length in bytes), binary as the type byte then the data (length
//!   includes the type byte). `application/octet-stream`.

use super::packet::{Data, Packet, PacketType};
use super::{Error, Version};

/// Content-Type of v4 payloads and v3 text payloads.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; charset=UTF-8";
/// Content-Type of v3 binary payloads.
pub const CONTENT_TYPE_BINARY: &str = "application/octet-stream";

const SEPARATOR: char = '\x1e';
/// More length digits than any real payload needs; also keeps the arithmetic in range.
const MAX_LEN_DIGITS: usize = 19;

/// Encodes packets into one polling body; returns the body and its Content-Type.
///
/// For v3 this is what a server answering a client that supports binary does: a binary
/// payload when any packet carries binary data, a text payload otherwise. Use
/// [`encode_payload_v3`] for clients that asked for base64 (`b64=1`).
///
/// In v4 a text packet must not contain `\x1e` (the protocol forbids it in data); such a
/// packet would decode as two.
pub fn encode_payload(version: Version, packets: &[Packet]) -> (Vec<u8>, &'static str) {
    match version {
        Version::V4 => (encode_v4(packets).into_bytes(), CONTENT_TYPE_TEXT),
        Version::V3 => {
            let any_binary = packets.iter().any(|p| matches!(p.data, Data::Binary(_)));
            encode_payload_v3(packets, any_binary)
        }
    }
}

/// Encodes a v3 payload: the binary format if `binary` is true, else the text format
/// (binary packets base64-encoded as `b<type><base64>`).
pub fn encode_payload_v3(packets: &[Packet], binary: bool) -> (Vec<u8>, &'static str) {
    if binary {
        (encode_v3_binary(packets), CONTENT_TYPE_BINARY)
    } else {
        (encode_v3_text(packets).into_bytes(), CONTENT_TYPE_TEXT)
    }
}

fn encode_v4(packets: &[Packet]) -> String {
    let mut out = String::new();
    for (i, p) in packets.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        out.push_str(&p.to_text(Version::V4));
    }
    out
}

fn encode_v3_text(packets: &[Packet]) -> String {
    if packets.is_empty() {
        return "0:".to_string();
    }
    let mut out = String::new();
    for p in packets {
        let s = p.to_text(Version::V3);
        out.push_str(&s.encode_utf16().count().to_string());
        out.push(':');
        out.push_str(&s);
    }
    out
}

fn push_length_header(out: &mut Vec<u8>, flag: u8, len: usize) {
    out.push(flag);
    out.extend(len.to_string().bytes().map(|d| d - b'0'));
    out.push(0xff);
}

fn encode_v3_binary(packets: &[Packet]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in packets {
        match &p.data {
            Data::Text(t) => {
                push_length_header(&mut out, 0, 1 + t.len());
                out.push(p.kind.as_ascii());
                out.extend_from_slice(t.as_bytes());
            }
            Data::Binary(b) => {
                push_length_header(&mut out, 1, 1 + b.len());
                out.push(p.kind as u8);
                out.extend_from_slice(b);
            }
        }
    }
    out
}

/// Decodes a polling body into its packets.
///
/// v3 bodies starting with `0x00` or `0x01` are read as binary payloads, anything else as
/// text payloads. Input longer than `max_payload` is refused before it is parsed; a length
/// header that claims more than the input holds is [`Error::InvalidLength`].
pub fn decode_payload(
    version: Version,
    body: &[u8],
    max_payload: usize,
) -> Result<Vec<Packet>, Error> {
    if body.len() > max_payload {
        return Err(Error::TooLarge {
            len: body.len(),
            max: max_payload,
        });
    }
    if body.is_empty() {
        return Err(Error::Empty);
    }
    match version {
        Version::V4 => {
            let s = std::str::from_utf8(body).map_err(|_| Error::InvalidUtf8)?;
            s.split(SEPARATOR)
                .map(|p| Packet::from_text(Version::V4, p))
                .collect()
        }
        Version::V3 if body[0] <= 1 => decode_v3_binary(body),
        Version::V3 => {
            let s = std::str::from_utf8(body).map_err(|_| Error::InvalidUtf8)?;
            decode_v3_text(s)
        }
    }
}

/// Splits `<n>:` off the front of `s`; returns `n` and the rest.
fn text_length(s: &str) -> Result<(usize, &str), Error> {
    let colon = s.find(':').ok_or(Error::InvalidLength)?;
    let digits = &s[..colon];
    if digits.is_empty()
        || digits.len() > MAX_LEN_DIGITS
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Error::InvalidLength);
    }
    let n = digits.parse().map_err(|_| Error::InvalidLength)?;
    Ok((n, &s[colon + 1..]))
}

/// Byte offset in `s` after `units` UTF-16 code units.
fn utf16_offset(s: &str, units: usize) -> Result<usize, Error> {
    let mut seen = 0;
    for (i, c) in s.char_indices() {
        if seen == units {
            return Ok(i);
        }
        seen += c.len_utf16();
        if seen > units {
            return Err(Error::InvalidLength); // would split a surrogate pair
        }
    }
    if seen == units {
        Ok(s.len())
    } else {
        Err(Error::InvalidLength)
    }
}

fn decode_v3_text(mut s: &str) -> Result<Vec<Packet>, Error> {
    let mut packets = Vec::new();
    while !s.is_empty() {
        let (n, rest) = text_length(s)?;
        let end = utf16_offset(rest, n)?;
        if end > 0 {
            packets.push(Packet::from_text(Version::V3, &rest[..end])?);
        }
        s = &rest[end..];
    }
    Ok(packets)
}

/// Splits the `<flag><digits>\xff` header off the front; returns (is_binary, length, rest).
fn binary_length(b: &[u8]) -> Result<(bool, usize, &[u8]), Error> {
    let (&flag, rest) = b.split_first().ok_or(Error::Empty)?;
    if flag > 1 {
        return Err(Error::InvalidLength);
    }
    let end = rest
        .iter()
        .position(|&d| d == 0xff)
        .ok_or(Error::InvalidLength)?;
    let digits = &rest[..end];
    if digits.is_empty() || digits.len() > MAX_LEN_DIGITS {
        return Err(Error::InvalidLength);
    }
    let mut n: usize = 0;
    for &d in digits {
        if d > 9 {
            return Err(Error::InvalidLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(d as usize))
            .ok_or(Error::InvalidLength)?;
    }
    Ok((flag == 1, n, &rest[end + 1..]))
}

fn decode_v3_binary(mut b: &[u8]) -> Result<Vec<Packet>, Error> {
    let mut packets = Vec::new();
    while !b.is_empty() {
        let (is_binary, n, rest) = binary_length(b)?;
        if n > rest.len() {
            return Err(Error::InvalidLength);
        }
        let (body, rest) = rest.split_at(n);
        let packet = if is_binary {
            let (&t, data) = body.split_first().ok_or(Error::Empty)?;
            let kind = PacketType::from_u8(t).ok_or(Error::UnknownType(t))?;
            Packet {
                kind,
                data: Data::Binary(data.to_vec()),
            }
        } else {
            let s = std::str::from_utf8(body).map_err(|_| Error::InvalidUtf8)?;
            Packet::from_text(Version::V3, s)?
        };
        packets.push(packet);
        b = rest;
    }
    Ok(packets)
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
