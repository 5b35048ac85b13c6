//! Arbitrary bytes through `MessageDecoder`, fed in arbitrary splits the way
//! the runtime does (unconsumed tail kept and prepended to the next read).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prefork_ws::protocol::{DecoderConfig, DeflateConfig, Event, Inflater, MessageDecoder};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let flags = data[0];
    let mut seed = u32::from(data[1]) | (u32::from(data[2]) << 8) | 1;
    let stream = &data[3..];
    let config = DecoderConfig {
        max_message_size: if flags & 1 != 0 { 256 } else { 64 * 1024 },
        require_mask: flags & 2 != 0,
    };
    let mut dec = MessageDecoder::new(config);
    if flags & 4 != 0 {
        let cfg = DeflateConfig {
            client_no_context_takeover: flags & 8 != 0,
            client_max_window_bits: 8 + (flags >> 5),
            ..DeflateConfig::default()
        };
        dec.set_inflater(Some(Inflater::new(&cfg)));
    }
    let mut pending: Vec<u8> = Vec::new();
    let mut pos = 0;
    while pos < stream.len() {
        // xorshift split sizes 1..=64
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed as usize % 64 + 1).min(stream.len() - pos);
        pending.extend_from_slice(&stream[pos..pos + n]);
        pos += n;
        loop {
            let len = pending.len();
            match dec.decode(&mut pending) {
                Ok((consumed, ev)) => {
                    assert!(consumed <= len);
                    let got = ev.is_some();
                    if let Some(Event::Message { opcode, data, .. }) = ev {
                        assert!(data.len() <= dec_limit(flags));
                        if opcode == prefork_ws::protocol::OpCode::Text {
                            assert!(std::str::from_utf8(data).is_ok());
                        }
                    }
                    pending.drain(..consumed);
                    if consumed == 0 && !got {
                        break;
                    }
                }
                Err(e) => {
                    assert!([1002, 1007, 1009].contains(&e.close_code()));
                    // poisoned: same error again
                    assert_eq!(dec.decode(&mut pending).err(), Some(e));
                    return;
                }
            }
        }
    }
    let _ = dec.is_mid_message();
    dec.shrink();
});

fn dec_limit(flags: u8) -> usize {
    if flags & 1 != 0 {
        256
    } else {
        64 * 1024
    }
}
