//! One Engine.IO packet over the WebSocket transport.
//!
//! Text frames are `<type digit><data>` in both versions. Binary frames differ: in v4 a
//! binary frame *is* a message (no type byte); in v3 it is the type byte (`\x04` for a
//! message) followed by the bytes.

use super::{Error, Version};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// Engine.IO packet types, with their wire digit as discriminant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// Handshake from the server, data is the [`OpenData`](super::OpenData) JSON.
    Open = 0,
    /// Request to close the transport.
    Close = 1,
    /// Heartbeat (sent by the server in v4, by the client in v3), or `2probe` on upgrade.
    Ping = 2,
    /// Heartbeat answer, or `3probe` on upgrade.
    Pong = 3,
    /// Application data (a Socket.IO packet).
    Message = 4,
    /// Upgrade from polling to WebSocket completed.
    Upgrade = 5,
    /// Filler sent on the old polling transport during an upgrade.
    Noop = 6,
}

impl PacketType {
    /// The packet type for a wire digit value (`0`..=`6`, not the ASCII character).
    pub fn from_u8(n: u8) -> Option<PacketType> {
        Some(match n {
            0 => PacketType::Open,
            1 => PacketType::Close,
            2 => PacketType::Ping,
            3 => PacketType::Pong,
            4 => PacketType::Message,
            5 => PacketType::Upgrade,
            6 => PacketType::Noop,
            _ => return None,
        })
    }

    /// The packet type for an ASCII digit (`b'0'`..=`b'6'`).
    pub fn from_ascii(c: u8) -> Result<PacketType, Error> {
        c.checked_sub(b'0')
            .and_then(PacketType::from_u8)
            .ok_or(Error::UnknownType(c))
    }

    /// The ASCII digit for this type.
    pub fn as_ascii(self) -> u8 {
        b'0' + self as u8
    }
}

/// The data of a packet: text, or binary bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Data {
    /// UTF-8 text (possibly empty).
    Text(String),
    /// Raw bytes.
    Binary(Vec<u8>),
}

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Packet {
    /// The packet type.
    pub kind: PacketType,
    /// The data after the type.
    pub data: Data,
}

impl Packet {
    /// A packet with text data.
    pub fn text(kind: PacketType, data: impl Into<String>) -> Packet {
        Packet {
            kind,
            data: Data::Text(data.into()),
        }
    }

    /// A message packet with binary data.
    pub fn binary(data: impl Into<Vec<u8>>) -> Packet {
        Packet {
            kind: PacketType::Message,
            data: Data::Binary(data.into()),
        }
    }

    /// The text form `<type digit><data>` (binary data base64-encoded, as in payloads:
    /// `b<base64>` in v4 and `b<type><base64>` in v3).
    pub(crate) fn to_text(&self, version: Version) -> String {
        match &self.data {
            Data::Text(t) => {
                let mut s = String::with_capacity(1 + t.len());
                s.push(self.kind.as_ascii() as char);
                s.push_str(t);
                s
            }
            Data::Binary(b) => {
                let mut s = String::from("b");
                if version == Version::V3 {
                    s.push(self.kind.as_ascii() as char);
                }
                BASE64.encode_string(b, &mut s);
                s
            }
        }
    }

    /// Parses the text form, including the `b`-prefixed base64 form of binary packets.
    pub(crate) fn from_text(version: Version, s: &str) -> Result<Packet, Error> {
        let bytes = s.as_bytes();
        let first = *bytes.first().ok_or(Error::Empty)?;
        if first != b'b' {
            let kind = PacketType::from_ascii(first)?;
            return Ok(Packet::text(kind, &s[1..]));
        }
        let (kind, b64) = match version {
            Version::V4 => (PacketType::Message, &s[1..]),
            Version::V3 => {
                let c = *bytes.get(1).ok_or(Error::Empty)?;
                (PacketType::from_ascii(c)?, &s[2..])
            }
        };
        let data = BASE64.decode(b64).map_err(|_| Error::InvalidBase64)?;
        Ok(Packet {
            kind,
            data: Data::Binary(data),
        })
    }
}

/// A WebSocket frame carrying one Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// Encodes one packet as a WebSocket frame.
///
/// Text data gives a text frame `<type><data>`. Binary data gives a binary frame: in v3
/// the type byte then the bytes; in v4 just the bytes — v4 has no way to send binary data
/// for any type but `Message`, so the type of such a packet is not transmitted.
pub fn encode_packet(version: Version, packet: &Packet) -> Frame {
    match (&packet.data, version) {
        (Data::Text(_), _) => Frame::Text(packet.to_text(version)),
        (Data::Binary(b), Version::V4) => Frame::Binary(b.clone()),
        (Data::Binary(b), Version::V3) => {
            let mut out = Vec::with_capacity(1 + b.len());
            out.push(packet.kind as u8);
            out.extend_from_slice(b);
            Frame::Binary(out)
        }
    }
}

fn check_size(len: usize, max_payload: usize) -> Result<(), Error> {
    if len > max_payload {
        return Err(Error::TooLarge {
            len,
            max: max_payload,
        });
    }
    Ok(())
}

/// Decodes the content of a WebSocket text frame (bytes still to be checked as UTF-8).
pub fn decode_text(version: Version, frame: &[u8], max_payload: usize) -> Result<Packet, Error> {
    check_size(frame.len(), max_payload)?;
    let s = std::str::from_utf8(frame).map_err(|_| Error::InvalidUtf8)?;
    Packet::from_text(version, s)
}

/// Decodes the content of a WebSocket binary frame.
///
/// v4: the whole frame is a binary message (an empty frame is an empty message).
/// v3: the first byte is the packet type (`0x04` for a message), the rest is the data.
pub fn decode_binary(version: Version, frame: &[u8], max_payload: usize) -> Result<Packet, Error> {
    check_size(frame.len(), max_payload)?;
    match version {
        Version::V4 => Ok(Packet::binary(frame)),
        Version::V3 => {
            let (&t, rest) = frame.split_first().ok_or(Error::Empty)?;
            let kind = PacketType::from_u8(t).ok_or(Error::UnknownType(t))?;
            Ok(Packet {
                kind,
                data: Data::Binary(rest.to_vec()),
            })
        }
    }
}

#[cfg(test)]
#[path = "packet_tests.rs"]
pub(crate) mod tests;
