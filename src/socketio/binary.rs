//! Binary attachments.
//!
//! A packet whose data holds binary blobs travels as a BINARY_EVENT / BINARY_ACK text packet
//! in which each blob is replaced by `{"_placeholder":true,"num":N}`, followed by one
//! Engine.IO binary message per blob, in order.
//!
//! **Representation.** Application data with blobs in it is a crate-local [`Value`] tree
//! (JSON plus a `Binary` variant), so a handler sees the blob where the sender put it.
//! On the wire side the text [`Packet`] keeps plain `serde_json` data with the placeholder
//! objects, and the blobs travel beside it as a `Vec<Vec<u8>>`. [`deconstruct`] and
//! [`reconstruct`] convert between the two. Objects are ordered maps (`BTreeMap`), as
//! `serde_json::Map` is without its `preserve_order` feature.

use super::packet::{Packet, PacketKind};
use super::{Error, Version};
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// JSON with binary blobs in it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A JSON number.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// A binary blob (an attachment on the wire).
    Binary(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// An object.
    Object(BTreeMap<String, Value>),
}

impl From<Json> for Value {
    /// Plain JSON (placeholders, if any, stay ordinary objects).
    fn from(j: Json) -> Value {
        match j {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::Number(n) => Value::Number(n),
            Json::String(s) => Value::String(s),
            Json::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            Json::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, v.into())).collect()),
        }
    }
}

/// Replaces every blob in `value` with a placeholder; returns the JSON and the blobs, the
/// blob for placeholder `N` at index `N` (depth-first order).
pub fn deconstruct(value: Value) -> (Json, Vec<Vec<u8>>) {
    let mut blobs = Vec::new();
    let json = deconstruct_into(value, &mut blobs);
    (json, blobs)
}

fn deconstruct_into(value: Value, blobs: &mut Vec<Vec<u8>>) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(b),
        Value::Number(n) => Json::Number(n),
        Value::String(s) => Json::String(s),
        Value::Binary(b) => {
            blobs.push(b);
            serde_json::json!({ "_placeholder": true, "num": blobs.len() - 1 })
        }
        Value::Array(a) => Json::Array(a.into_iter().map(|v| deconstruct_into(v, blobs)).collect()),
        Value::Object(o) => Json::Object(
            o.into_iter()
                .map(|(k, v)| (k, deconstruct_into(v, blobs)))
                .collect(),
        ),
    }
}

/// Puts the blobs back where the placeholders are.
///
/// Errors: a placeholder index beyond `blobs` ([`Error::PlaceholderOutOfRange`]), or blobs
/// that no placeholder uses ([`Error::AttachmentCount`]). A blob may be referred to twice.
pub fn reconstruct(json: Json, blobs: Vec<Vec<u8>>) -> Result<Value, Error> {
    let mut used = vec![false; blobs.len()];
    let value = reconstruct_from(json, &blobs, &mut used)?;
    let n = used.iter().filter(|u| **u).count();
    if n != blobs.len() {
        return Err(Error::AttachmentCount {
            announced: blobs.len(),
            used: n,
        });
    }
    Ok(value)
}

/// `Some(num)` if `o` is a placeholder object.
fn placeholder(o: &serde_json::Map<String, Json>) -> Option<Option<u64>> {
    if o.get("_placeholder") != Some(&Json::Bool(true)) {
        return None;
    }
    Some(o.get("num").and_then(Json::as_u64))
}

fn reconstruct_from(json: Json, blobs: &[Vec<u8>], used: &mut [bool]) -> Result<Value, Error> {
    Ok(match json {
        Json::Array(a) => Value::Array(
            a.into_iter()
                .map(|v| reconstruct_from(v, blobs, used))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(o) => match placeholder(&o) {
            Some(num) => {
                let n = num.ok_or(Error::PlaceholderOutOfRange(u64::MAX))?;
                let i = usize::try_from(n).ok().filter(|&i| i < blobs.len());
                let i = i.ok_or(Error::PlaceholderOutOfRange(n))?;
                used[i] = true;
                Value::Binary(blobs[i].clone())
            }
            None => Value::Object(
                o.into_iter()
                    .map(|(k, v)| Ok((k, reconstruct_from(v, blobs, used)?)))
                    .collect::<Result<_, Error>>()?,
            ),
        },
        other => Value::from(other),
    })
}

/// A complete packet with its blobs in place.
///
/// `kind` is the logical kind: `Event` or `Ack`, never `BinaryEvent` / `BinaryAck` —
/// whether the packet needs attachments follows from the data.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The packet type (binary kinds folded into `Event` / `Ack`).
    pub kind: PacketKind,
    /// The namespace.
    pub nsp: String,
    /// Acknowledgement id.
    pub id: Option<u64>,
    /// The data, blobs included.
    pub data: Option<Value>,
}

impl Message {
    /// The text packet (a binary kind with an attachment count if there are blobs) and the
    /// blobs to send after it as binary messages.
    pub fn encode(self) -> (Packet, Vec<Vec<u8>>) {
        let (data, blobs) = match self.data {
            Some(v) => {
                let (j, b) = deconstruct(v);
                (Some(j), b)
            }
            None => (None, Vec::new()),
        };
        let kind = match (self.kind, blobs.is_empty()) {
            (PacketKind::Event | PacketKind::BinaryEvent, false) => PacketKind::BinaryEvent,
            (PacketKind::Ack | PacketKind::BinaryAck, false) => PacketKind::BinaryAck,
            (k, _) => logical(k),
        };
        let packet = Packet {
            kind,
            nsp: self.nsp,
            id: self.id,
            data,
            attachments: blobs.len(),
        };
        (packet, blobs)
    }

    fn assemble(p: Packet, blobs: Vec<Vec<u8>>) -> Result<Message, Error> {
        let data = match p.data {
            Some(j) => Some(reconstruct(j, blobs)?),
            None if !blobs.is_empty() => {
                return Err(Error::AttachmentCount {
                    announced: blobs.len(),
                    used: 0,
                })
            }
            None => None,
        };
        Ok(Message {
            kind: logical(p.kind),
            nsp: p.nsp,
            id: p.id,
            data,
        })
    }
}

fn logical(k: PacketKind) -> PacketKind {
    match k {
        PacketKind::BinaryEvent => PacketKind::Event,
        PacketKind::BinaryAck => PacketKind::Ack,
        k => k,
    }
}

/// Turns a stream of text packets and binary frames (as they come off Engine.IO) into
/// complete [`Message`]s.
///
/// Text plus attachments of one packet may not exceed `max_payload` bytes; every binary
/// frame counts at least one byte, so a huge announced count cannot pile up empty frames.
/// After any error the reassembler is reset and ready for the next packet.
#[derive(Debug)]
pub struct Reassembler {
    version: Version,
    max_payload: usize,
    pending: Option<(Packet, Vec<Vec<u8>>)>,
    used: usize,
}

impl Reassembler {
    /// A reassembler for `version` with a per-packet size limit.
    pub fn new(version: Version, max_payload: usize) -> Reassembler {
        Reassembler {
            version,
            max_payload,
            pending: None,
            used: 0,
        }
    }

    /// Whether a binary packet is waiting for attachments.
    pub fn is_waiting(&self) -> bool {
        self.pending.is_some()
    }

    /// Drops a half-received packet.
    pub fn reset(&mut self) {
        self.pending = None;
        self.used = 0;
    }

    /// Feeds a text packet; returns the message if it needs no attachments.
    pub fn push_text(&mut self, text: &str) -> Result<Option<Message>, Error> {
        if let Some((p, got)) = &self.pending {
            let missing = p.attachments - got.len();
            self.reset();
            return Err(Error::UnexpectedText(missing));
        }
        let packet = Packet::decode(self.version, text, self.max_payload)?;
        if packet.attachments == 0 {
            return Message::assemble(packet, Vec::new()).map(Some);
        }
        self.used = text.len();
        self.pending = Some((packet, Vec::new()));
        Ok(None)
    }

    /// Feeds a binary frame; returns the message once its last attachment arrived.
    pub fn push_binary(&mut self, frame: &[u8]) -> Result<Option<Message>, Error> {
        if self.pending.is_none() {
            return Err(Error::UnexpectedBinary);
        }
        let used = self.used.saturating_add(frame.len().max(1));
        if used > self.max_payload {
            self.reset();
            return Err(Error::TooLarge {
                len: used,
                max: self.max_payload,
            });
        }
        self.used = used;
        let Some((packet, blobs)) = &mut self.pending else {
            return Err(Error::UnexpectedBinary);
        };
        blobs.push(frame.to_vec());
        if blobs.len() < packet.attachments {
            return Ok(None);
        }
        let (packet, blobs) = self.pending.take().ok_or(Error::UnexpectedBinary)?;
        self.used = 0;
        Message::assemble(packet, blobs).map(Some)
    }
}

#[cfg(test)]
#[path = "binary_tests.rs"]
mod tests;
