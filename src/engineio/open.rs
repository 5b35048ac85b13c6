//! The JSON data of the OPEN packet (`0{"sid":…}`) that starts every Engine.IO session.

use serde::{Deserialize, Serialize};

/// Handshake data, serialised in the field order the official server sends:
/// `sid`, `upgrades`, `pingInterval`, `pingTimeout`, `maxPayload`.
///
/// `maxPayload` is v4 only; leave it `None` for v3 clients and it is omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenData {
    /// Session id.
    pub sid: String,
    /// Transports the client may upgrade to (`["websocket"]` from polling, `[]` otherwise).
    pub upgrades: Vec<String>,
    /// Milliseconds between heartbeats.
    pub ping_interval: u64,
    /// Milliseconds to wait for a heartbeat answer.
    pub ping_timeout: u64,
    /// Largest payload in bytes the server accepts (v4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload: Option<u64>,
}

impl OpenData {
    /// The JSON text (infallible for this struct).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The complete OPEN packet.
    pub fn to_packet(&self) -> super::Packet {
        super::Packet::text(super::PacketType::Open, self.to_json())
    }

    /// Parses the JSON text (as a client would).
    pub fn from_json(s: &str) -> Result<OpenData, serde_json::Error> {
        serde_json::from_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_field_order() {
        let open = OpenData {
            sid: "lv_VI97HAXpY6yYWAAAC".into(),
            upgrades: vec!["websocket".into()],
            ping_interval: 25000,
            ping_timeout: 20000,
            max_payload: Some(1000000),
        };
        let expect = r#"{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        assert_eq!(open.to_json(), expect);
        assert_eq!(
            open.to_packet().to_text(crate::engineio::Version::V4),
            format!("0{expect}")
        );
        assert_eq!(OpenData::from_json(expect).ok(), Some(open));
    }

    #[test]
    fn v3_has_no_max_payload() {
        let open = OpenData {
            sid: "abc".into(),
            upgrades: vec![],
            ping_interval: 25000,
            ping_timeout: 5000,
            max_payload: None,
        };
        assert_eq!(
            open.to_json(),
            r#"{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":5000}"#
        );
    }
}
