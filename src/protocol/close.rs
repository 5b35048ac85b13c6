//! Close codes (RFC 6455 §7.4), close payloads and the closing handshake.

use super::error::ProtocolError;

/// Largest close reason: 125-byte control payload minus the 2-byte code.
pub const MAX_CLOSE_REASON: usize = 123;

/// Whether `code` may appear in a close frame received from the wire:
/// 1000-1003, 1007-1014, 3000-4999.
pub fn is_valid_wire_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Codes an application may pass to Swoole's `disconnect()`: 1000 or 4000..=4999.
pub fn is_valid_app_close_code(code: u16) -> bool {
    code == 1000 || (4000..=4999).contains(&code)
}

/// Close payload: code big-endian + reason. Err if reason > 123 bytes.
pub fn close_payload(code: u16, reason: &str) -> Result<Vec<u8>, ProtocolError> {
    if reason.len() > MAX_CLOSE_REASON {
        return Err(ProtocolError::CloseReasonTooLong(reason.len()));
    }
    let mut v = Vec::with_capacity(2 + reason.len());
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(reason.as_bytes());
    Ok(v)
}

/// Parses and validates a received close payload: `(None, "")` for an empty
/// payload; 1 byte -> 1002; invalid code -> 1002; reason not UTF-8 -> 1007.
pub fn parse_close_payload(payload: &[u8]) -> Result<(Option<u16>, &str), ProtocolError> {
    match payload.len() {
        0 => Ok((None, "")),
        1 => Err(ProtocolError::InvalidClosePayload),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !is_valid_wire_close_code(code) {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            let reason =
                std::str::from_utf8(&payload[2..]).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok((Some(code), reason))
        }
    }
}

/// Closing handshake state machine for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum CloseState {
    /// Normal operation.
    #[default]
    Open,
    /// We sent close, waiting for the peer's.
    SentClose,
    /// Peer sent close first; we must echo and then close TCP.
    ReceivedClose,
    /// Both sides sent close.
    Closed,
}

impl CloseState {
    /// We want to send a close: returns true if a close frame must be written
    /// now (Open -> SentClose; ReceivedClose -> Closed). False if one was
    /// already sent.
    pub fn on_send_close(&mut self) -> bool {
        match *self {
            CloseState::Open => {
                *self = CloseState::SentClose;
                true
            }
            CloseState::ReceivedClose => {
                *self = CloseState::Closed;
                true
            }
            CloseState::SentClose | CloseState::Closed => false,
        }
    }

    /// Peer's close arrived: returns `Some(code_to_echo)` if we must answer
    /// (we had not sent one yet): the peer's code, 1000 if it sent none.
    /// `None` if we had already sent close (now Closed) or it is a duplicate.
    pub fn on_recv_close(&mut self, peer_code: Option<u16>) -> Option<u16> {
        match *self {
            CloseState::Open => {
                *self = CloseState::ReceivedClose;
                Some(peer_code.unwrap_or(1000))
            }
            CloseState::SentClose => {
                *self = CloseState::Closed;
                None
            }
            CloseState::ReceivedClose | CloseState::Closed => None,
        }
    }

    /// Data frames may be sent only while Open.
    pub fn can_send_data(&self) -> bool {
        *self == CloseState::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_close_codes_follow_rfc6455() {
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            assert!(is_valid_wire_close_code(c), "{c}");
        }
        for c in [
            0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!is_valid_wire_close_code(c), "{c}");
        }
    }

    #[test]
    fn app_close_codes_are_1000_or_4xxx() {
        assert!(is_valid_app_close_code(1000));
        assert!(is_valid_app_close_code(4000));
        assert!(is_valid_app_close_code(4999));
        assert!(!is_valid_app_close_code(1001));
        assert!(!is_valid_app_close_code(3000));
        assert!(!is_valid_app_close_code(5000));
    }

    #[test]
    fn close_payload_builds_code_and_reason() {
        assert_eq!(
            close_payload(1000, "ok").unwrap(),
            vec![0x03, 0xe8, b'o', b'k']
        );
        assert!(close_payload(1000, &"x".repeat(123)).is_ok());
    }

    #[test]
    fn close_reason_over_123_bytes_is_rejected() {
        assert_eq!(
            close_payload(1000, &"x".repeat(124)),
            Err(ProtocolError::CloseReasonTooLong(124))
        );
    }

    #[test]
    fn close_payload_of_one_byte_is_1002() {
        let e = parse_close_payload(&[3]).unwrap_err();
        assert_eq!(e.close_code(), 1002);
    }

    #[test]
    fn close_code_1005_on_wire_is_1002() {
        let e = parse_close_payload(&1005u16.to_be_bytes()).unwrap_err();
        assert_eq!(e, ProtocolError::InvalidCloseCode(1005));
        assert_eq!(e.close_code(), 1002);
    }

    #[test]
    fn close_reason_invalid_utf8_is_1007() {
        let e = parse_close_payload(&[0x03, 0xe8, 0xff]).unwrap_err();
        assert_eq!(e.close_code(), 1007);
    }

    #[test]
    fn empty_close_payload_has_no_code() {
        assert_eq!(parse_close_payload(&[]).unwrap(), (None, ""));
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, b'h']).unwrap(),
            (Some(1000), "h")
        );
    }

    #[test]
    fn server_initiated_close_handshake() {
        let mut s = CloseState::default();
        assert!(s.can_send_data());
        assert!(s.on_send_close());
        assert_eq!(s, CloseState::SentClose);
        assert!(!s.can_send_data());
        assert!(!s.on_send_close());
        assert_eq!(s.on_recv_close(Some(1000)), None);
        assert_eq!(s, CloseState::Closed);
    }

    #[test]
    fn peer_initiated_close_is_echoed() {
        let mut s = CloseState::Open;
        assert_eq!(s.on_recv_close(Some(4001)), Some(4001));
        assert_eq!(s, CloseState::ReceivedClose);
        assert!(!s.can_send_data());
        assert!(s.on_send_close());
        assert_eq!(s, CloseState::Closed);
        assert!(!s.on_send_close());
    }

    #[test]
    fn peer_close_without_code_is_echoed_as_1000() {
        let mut s = CloseState::Open;
        assert_eq!(s.on_recv_close(None), Some(1000));
        assert_eq!(s.on_recv_close(None), None);
    }
}
