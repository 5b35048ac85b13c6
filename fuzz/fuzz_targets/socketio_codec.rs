//! Arbitrary bytes through the Engine.IO packet and payload decoders (v3 and v4) and the
//! Socket.IO packet decoder and reassembler (v4 and v5); whatever decodes must re-encode
//! to something that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prefork_ws::engineio::{self, Version as Eio};
use prefork_ws::socketio::{self, Packet, Reassembler, Version as Sio};

const MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    for v in [Eio::V3, Eio::V4] {
        let _ = engineio::decode_text(v, data, MAX);
        let _ = engineio::decode_binary(v, data, MAX);
        if let Ok(packets) = engineio::decode_payload(v, data, MAX) {
            if v == Eio::V3 && !packets.is_empty() {
                let (body, _) = engineio::encode_payload(v, &packets);
                assert_eq!(engineio::decode_payload(v, &body, MAX).ok(), Some(packets));
            }
        }
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    for v in [Sio::V4, Sio::V5] {
        if let Ok(p) = Packet::decode(v, text, MAX) {
            let _ = (p.encode(), p.nsp_path(), p.error_message(), p.event_name());
        }
        // Split the input into a text packet and binary frames at each `\n`.
        let mut r = Reassembler::new(v, MAX);
        for (i, part) in text.split('\n').enumerate() {
            let _ = if i == 0 { r.push_text(part) } else { r.push_binary(part.as_bytes()) };
        }
        let _ = socketio::Value::from(serde_json::Value::Null);
    }
});
