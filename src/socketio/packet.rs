//! The text form of a Socket.IO packet: `<type>[<attachments>-][<nsp>,][<id>][<json>]`.
//!
//! The namespace is omitted when it is `/`; the attachment count is present only for the
//! binary types. Encoding is the same in v4 and v5; what differs is the payload a packet
//! carries (see the constructors) and how strictly [`Packet::decode`] checks it.

use super::{Error, Version};
use serde_json::{json, Value as Json};

/// Socket.IO packet types, with their wire digit as discriminant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketKind {
    /// Connect to a namespace (client), or the server's acceptance.
    Connect = 0,
    /// Leave a namespace.
    Disconnect = 1,
    /// An event: `["name", args…]`.
    Event = 2,
    /// Acknowledgement of an event that carried an id: `[args…]`.
    Ack = 3,
    /// Connection to a namespace refused (called ERROR in v4).
    ConnectError = 4,
    /// An event with binary attachments.
    BinaryEvent = 5,
    /// An acknowledgement with binary attachments.
    BinaryAck = 6,
}

impl PacketKind {
    /// The kind for an ASCII digit (`b'0'`..=`b'6'`).
    pub fn from_ascii(c: u8) -> Result<PacketKind, Error> {
        Ok(match c {
            b'0' => PacketKind::Connect,
            b'1' => PacketKind::Disconnect,
            b'2' => PacketKind::Event,
            b'3' => PacketKind::Ack,
            b'4' => PacketKind::ConnectError,
            b'5' => PacketKind::BinaryEvent,
            b'6' => PacketKind::BinaryAck,
            _ => return Err(Error::UnknownType(c)),
        })
    }

    /// Whether this kind carries an attachment count.
    pub fn is_binary(self) -> bool {
        matches!(self, PacketKind::BinaryEvent | PacketKind::BinaryAck)
    }
}

/// Event names a v5 peer may not send (they mean something to the libraries themselves).
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// One Socket.IO packet in its text form.
///
/// `nsp` must start with `/` and contain no `,` (a v4 CONNECT may append `?query`).
/// Binary data appears in `data` as placeholders; see [`super::binary`].
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The packet type.
    pub kind: PacketKind,
    /// The namespace, `/` by default.
    pub nsp: String,
    /// Acknowledgement id.
    pub id: Option<u64>,
    /// The JSON payload.
    pub data: Option<Json>,
    /// Number of binary attachments that follow (binary kinds only; 0 otherwise).
    pub attachments: usize,
}

impl Packet {
    /// A packet of `kind` in `nsp` with no id, data or attachments.
    pub fn new(kind: PacketKind, nsp: impl Into<String>) -> Packet {
        Packet {
            kind,
            nsp: nsp.into(),
            id: None,
            data: None,
            attachments: 0,
        }
    }

    /// The server's acceptance of a CONNECT: `0{"sid":…}` in v5, `0` (no payload) in v4.
    pub fn connect_ack(version: Version, nsp: &str, sid: &str) -> Packet {
        let mut p = Packet::new(PacketKind::Connect, nsp);
        if version == Version::V5 {
            p.data = Some(json!({ "sid": sid }));
        }
        p
    }

    /// A v5 client CONNECT with an optional auth object.
    pub fn connect_v5(nsp: &str, auth: Option<Json>) -> Packet {
        Packet {
            data: auth,
            ..Packet::new(PacketKind::Connect, nsp)
        }
    }

    /// A refusal: `4"message"` in v4, `4{"message":"…"}` in v5.
    pub fn connect_error(version: Version, nsp: &str, message: &str) -> Packet {
        let data = match version {
            Version::V4 => Json::String(message.to_string()),
            Version::V5 => json!({ "message": message }),
        };
        Packet {
            data: Some(data),
            ..Packet::new(PacketKind::ConnectError, nsp)
        }
    }

    /// An EVENT `["name", args…]`, with an ack id if the sender wants an answer.
    pub fn event(nsp: &str, name: &str, args: Vec<Json>, id: Option<u64>) -> Packet {
        let mut items = Vec::with_capacity(1 + args.len());
        items.push(Json::String(name.to_string()));
        items.extend(args);
        Packet {
            id,
            data: Some(Json::Array(items)),
            ..Packet::new(PacketKind::Event, nsp)
        }
    }

    /// An ACK `[args…]` answering the event with `id`.
    pub fn ack(nsp: &str, id: u64, args: Vec<Json>) -> Packet {
        Packet {
            id: Some(id),
            data: Some(Json::Array(args)),
            ..Packet::new(PacketKind::Ack, nsp)
        }
    }

    /// The namespace without a v4 `?query` part.
    pub fn nsp_path(&self) -> &str {
        self.nsp.split_once('?').map_or(&self.nsp, |(p, _)| p)
    }

    /// The v4 query string carried in the namespace of a CONNECT (`/admin?token=x`).
    pub fn nsp_query(&self) -> Option<&str> {
        self.nsp.split_once('?').map(|(_, q)| q)
    }

    /// The message of a CONNECT_ERROR in either version's form.
    pub fn error_message(&self) -> Option<&str> {
        match self.data.as_ref()? {
            Json::String(s) => Some(s),
            Json::Object(o) => o.get("message")?.as_str(),
            _ => None,
        }
    }

    /// The event name of an EVENT / BINARY_EVENT.
    pub fn event_name(&self) -> Option<&str> {
        self.data.as_ref()?.as_array()?.first()?.as_str()
    }

    /// The text form.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        s.push((b'0' + self.kind as u8) as char);
        if self.kind.is_binary() {
            s.push_str(&self.attachments.to_string());
            s.push('-');
        }
        if !self.nsp.is_empty() && self.nsp != "/" {
            s.push_str(&self.nsp);
            s.push(',');
        }
        if let Some(id) = self.id {
            s.push_str(&id.to_string());
        }
        if let Some(data) = &self.data {
            s.push_str(&data.to_string());
        }
        s
    }

    /// Parses the text form. Text longer than `max_payload` bytes is refused unparsed.
    ///
    /// v5 checks the payload as socket.io-parser 4.x does (CONNECT an object, DISCONNECT
    /// nothing, CONNECT_ERROR a string or object, EVENT an array starting with a
    /// non-reserved name or a number, ACK an array); v4 accepts any JSON, like 3.x.
    pub fn decode(version: Version, s: &str, max_payload: usize) -> Result<Packet, Error> {
        if s.len() > max_payload {
            return Err(Error::TooLarge {
                len: s.len(),
                max: max_payload,
            });
        }
        let kind = PacketKind::from_ascii(*s.as_bytes().first().ok_or(Error::Empty)?)?;
        let mut rest = &s[1..];
        let mut attachments = 0;
        if kind.is_binary() {
            let (n, r) = rest.split_once('-').ok_or(Error::IllegalAttachments)?;
            attachments = parse_digits(n).ok_or(Error::IllegalAttachments)?;
            rest = r;
        }
        let mut nsp = "/";
        if rest.starts_with('/') {
            let (n, r) = rest.split_once(',').unwrap_or((rest, ""));
            nsp = n;
            rest = r;
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let id = match digits {
            0 => None,
            _ => Some(parse_digits(&rest[..digits]).ok_or(Error::InvalidId)?),
        };
        rest = &rest[digits..];
        let data = match rest {
            "" => None,
            _ => Some(serde_json::from_str::<Json>(rest).map_err(|_| Error::InvalidJson)?),
        };
        if version == Version::V5 && !valid_v5(kind, data.as_ref()) {
            return Err(Error::InvalidPayload(kind));
        }
        let nsp = nsp.to_string();
        Ok(Packet {
            kind,
            nsp,
            id,
            data,
            attachments,
        })
    }
}

/// A non-empty run of ASCII digits that fits the target type.
fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn valid_v5(kind: PacketKind, data: Option<&Json>) -> bool {
    let Some(data) = data else { return true };
    match kind {
        PacketKind::Connect => data.is_object(),
        PacketKind::Disconnect => false,
        PacketKind::ConnectError => data.is_string() || data.is_object(),
        PacketKind::Event | PacketKind::BinaryEvent => {
            match data.as_array().and_then(|a| a.first()) {
                Some(Json::String(name)) => !RESERVED_EVENTS.contains(&name.as_str()),
                Some(Json::Number(_)) => true,
                _ => false,
            }
        }
        PacketKind::Ack | PacketKind::BinaryAck => data.is_array(),
    }
}

#[cfg(test)]
#[path = "packet_tests.rs"]
pub(crate) mod tests;
