use super::*;
use crate::protocol::deflate::{DeflateConfig, Deflater};
use crate::protocol::frame::encode_frame;
use proptest::prelude::*;

const MASK: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Msg(OpCode, Vec<u8>, bool),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

fn own(e: Event<'_>) -> Ev {
    match e {
        Event::Message {
            opcode,
            data,
            compressed,
        } => Ev::Msg(opcode, data.to_vec(), compressed),
        Event::Ping(p) => Ev::Ping(p.to_vec()),
        Event::Pong(p) => Ev::Pong(p.to_vec()),
        Event::Close { code, reason } => Ev::Close(code, reason.to_string()),
    }
}

fn frame(fin: bool, rsv1: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_frame(&mut v, fin, rsv1, op, payload, MASK);
    v
}

fn dec() -> MessageDecoder {
    MessageDecoder::new(DecoderConfig::default())
}

fn dec_max(max: usize) -> MessageDecoder {
    MessageDecoder::new(DecoderConfig {
        max_message_size: max,
        require_mask: true,
    })
}

/// Feeds `stream` cut at `cuts`, keeping the unconsumed tail like a runtime would.
fn run(d: &mut MessageDecoder, stream: &[u8], cuts: &[usize]) -> (Vec<Ev>, Option<ProtocolError>) {
    let mut evs = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut prev = 0;
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| c.min(&stream.len()).to_owned())
        .collect();
    points.sort_unstable();
    points.push(stream.len());
    for c in points {
        pending.extend_from_slice(&stream[prev..c]);
        prev = c;
        loop {
            let (n, ev) = match d.decode(&mut pending) {
                Ok((n, ev)) => (n, ev.map(own)),
                Err(e) => return (evs, Some(e)),
            };
            assert!(n <= pending.len());
            pending.drain(..n);
            let got = ev.is_some();
            if let Some(e) = ev {
                evs.push(e);
            }
            if n == 0 && !got {
                break;
            }
        }
    }
    (evs, None)
}

fn run_all(d: &mut MessageDecoder, stream: &[u8]) -> (Vec<Ev>, Option<ProtocolError>) {
    run(d, stream, &[])
}

fn one_byte_cuts(len: usize) -> Vec<usize> {
    (1..len).collect()
}

fn err_code(stream: &[u8]) -> u16 {
    let (_, e) = run_all(&mut dec(), stream);
    e.expect("expected an error").close_code()
}

#[test]
fn idle_decoder_is_small() {
    assert!(
        std::mem::size_of::<MessageDecoder>() < 100,
        "{}",
        std::mem::size_of::<MessageDecoder>()
    );
    let d = dec();
    assert!(!d.is_mid_message());
}

#[test]
fn single_text_frame() {
    let (e, err) = run_all(&mut dec(), &frame(true, false, 1, b"Hello"));
    assert_eq!(err, None);
    assert_eq!(e, vec![Ev::Msg(OpCode::Text, b"Hello".to_vec(), false)]);
}

#[test]
fn fast_path_is_zero_copy() {
    let mut d = dec();
    let mut f = frame(true, false, 2, b"abcdef");
    let range = f.as_ptr_range();
    let (n, ev) = d.decode(&mut f).unwrap();
    assert_eq!(n, 12);
    match ev {
        Some(Event::Message { data, .. }) => {
            assert_eq!(data, b"abcdef");
            assert!(range.contains(&data.as_ptr()));
        }
        other => panic!("{other:?}"),
    }
    assert!(!d.is_mid_message());
    assert!(d.partial.is_none());
}

#[test]
fn needs_more_bytes_returns_zero_none() {
    let mut d = dec();
    let f = frame(true, false, 9, b"ping");
    for i in 0..f.len() {
        let mut part = f[..i].to_vec();
        let (n, ev) = d.decode(&mut part).unwrap();
        assert_eq!((n, ev.is_none()), (0, true));
    }
}

#[test]
fn empty_messages() {
    let (e, err) = run_all(
        &mut dec(),
        &[frame(true, false, 1, b""), frame(true, false, 2, b"")].concat(),
    );
    assert_eq!(err, None);
    assert_eq!(
        e,
        vec![
            Ev::Msg(OpCode::Text, vec![], false),
            Ev::Msg(OpCode::Binary, vec![], false)
        ]
    );
}

#[test]
fn all_length_forms_decode() {
    for len in [0usize, 125, 126, 65535, 65536, 200_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let f = frame(true, false, 2, &payload);
        let (e, err) = run(&mut dec(), &f, &[1, 3, 7, 50, 70_000]);
        assert_eq!(err, None);
        assert_eq!(e, vec![Ev::Msg(OpCode::Binary, payload, false)]);
    }
}

#[test]
fn unmasked_client_frame_is_1002() {
    let mut f = Vec::new();
    encode_frame(&mut f, true, false, 1, b"hi", None);
    let (_, e) = run_all(&mut dec(), &f);
    assert_eq!(e, Some(ProtocolError::UnmaskedFrame));
    assert_eq!(e.map(|e| e.close_code()), Some(1002));
}

#[test]
fn unmasked_frame_accepted_when_mask_not_required() {
    let mut f = Vec::new();
    encode_frame(&mut f, true, false, 1, b"hi", None);
    let mut d = MessageDecoder::new(DecoderConfig {
        max_message_size: 100,
        require_mask: false,
    });
    let (e, err) = run_all(&mut d, &f);
    assert_eq!(err, None);
    assert_eq!(e, vec![Ev::Msg(OpCode::Text, b"hi".to_vec(), false)]);
}

#[test]
fn rsv2_or_rsv3_is_1002() {
    for bit in [0x20u8, 0x10] {
        let mut f = frame(true, false, 1, b"x");
        f[0] |= bit;
        assert_eq!(run_all(&mut dec(), &f).1, Some(ProtocolError::ReservedBits));
        assert_eq!(err_code(&f), 1002);
    }
}

#[test]
fn rsv1_without_inflater_is_1002() {
    assert_eq!(
        run_all(&mut dec(), &frame(true, true, 1, b"x")).1,
        Some(ProtocolError::ReservedBits)
    );
}

#[test]
fn rsv1_on_continuation_is_1002() {
    let mut d = dec();
    d.set_inflater(Some(Inflater::new(&DeflateConfig::default())));
    let s = [frame(false, false, 2, b"a"), frame(true, true, 0, b"b")].concat();
    assert_eq!(run_all(&mut d, &s).1, Some(ProtocolError::ReservedBits));
}

#[test]
fn rsv1_on_control_frame_is_1002() {
    let mut d = dec();
    d.set_inflater(Some(Inflater::new(&DeflateConfig::default())));
    assert_eq!(
        run_all(&mut d, &frame(true, true, 9, b"")).1,
        Some(ProtocolError::ReservedBits)
    );
}

#[test]
fn reserved_opcode_is_1002() {
    for op in (3..=7).chain(11..=15) {
        let (_, e) = run_all(&mut dec(), &frame(true, false, op, b""));
        assert_eq!(e, Some(ProtocolError::ReservedOpcode(op)));
        assert_eq!(e.map(|e| e.close_code()), Some(1002));
    }
}

#[test]
fn fragmented_control_frame_is_1002() {
    assert_eq!(
        run_all(&mut dec(), &frame(false, false, 9, b"x")).1,
        Some(ProtocolError::FragmentedControl)
    );
}

#[test]
fn control_payload_over_125_is_1002() {
    let (_, e) = run_all(&mut dec(), &frame(true, false, 9, &[0u8; 126]));
    assert_eq!(e, Some(ProtocolError::ControlTooLong(126)));
    // decided from the header alone
    let f = frame(true, false, 10, &[0u8; 126]);
    let (_, e) = run_all(&mut dec(), &f[..8]);
    assert_eq!(e, Some(ProtocolError::ControlTooLong(126)));
}

#[test]
fn control_payload_of_125_is_ok() {
    let (e, err) = run_all(&mut dec(), &frame(true, false, 9, &[7u8; 125]));
    assert_eq!(err, None);
    assert_eq!(e, vec![Ev::Ping(vec![7u8; 125])]);
}

#[test]
fn continuation_without_start_is_1002() {
    assert_eq!(
        run_all(&mut dec(), &frame(true, false, 0, b"x")).1,
        Some(ProtocolError::UnexpectedContinuation)
    );
}

#[test]
fn new_data_frame_mid_message_is_1002() {
    let s = [frame(false, false, 1, b"a"), frame(true, false, 1, b"b")].concat();
    assert_eq!(
        run_all(&mut dec(), &s).1,
        Some(ProtocolError::ExpectedContinuation)
    );
}

#[test]
fn length_with_msb_set_is_1002() {
    let f = [0x82u8, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4];
    assert_eq!(
        run_all(&mut dec(), &f).1,
        Some(ProtocolError::InvalidLength)
    );
    assert_eq!(err_code(&f), 1002);
}

#[test]
fn fragmented_message_is_reassembled() {
    let s = [
        frame(false, false, 1, b"Hel"),
        frame(false, false, 0, b""),
        frame(true, false, 0, b"lo"),
    ]
    .concat();
    for cuts in [vec![], one_byte_cuts(s.len())] {
        let mut d = dec();
        let (e, err) = run(&mut d, &s, &cuts);
        assert_eq!(err, None);
        assert_eq!(e, vec![Ev::Msg(OpCode::Text, b"Hello".to_vec(), false)]);
        assert!(!d.is_mid_message());
    }
}

#[test]
fn control_frames_interleaved_in_fragmented_message() {
    let s = [
        frame(false, false, 2, b"ab"),
        frame(true, false, 9, b"p1"),
        frame(false, false, 0, b"cd"),
        frame(true, false, 10, b"p2"),
        frame(true, false, 0, b"ef"),
    ]
    .concat();
    let (e, err) = run(&mut dec(), &s, &one_byte_cuts(s.len()));
    assert_eq!(err, None);
    assert_eq!(
        e,
        vec![
            Ev::Ping(b"p1".to_vec()),
            Ev::Pong(b"p2".to_vec()),
            Ev::Msg(OpCode::Binary, b"abcdef".to_vec(), false)
        ]
    );
}

#[test]
fn is_mid_message_and_shrink() {
    let mut d = dec();
    let mut f = frame(false, false, 2, b"abc");
    let (n, ev) = d.decode(&mut f).unwrap();
    assert_eq!((n, ev.is_none()), (9, true));
    assert!(d.is_mid_message());
    d.shrink();
    assert!(d.is_mid_message());
    let mut f = frame(true, false, 0, b"d");
    let (_, ev) = d.decode(&mut f).unwrap();
    assert_eq!(
        ev.map(own),
        Some(Ev::Msg(OpCode::Binary, b"abcd".to_vec(), false))
    );
    assert!(!d.is_mid_message());
    d.shrink();
    assert!(d.partial.is_none());
}

#[test]
fn partial_data_frame_is_consumed_incrementally() {
    let mut d = dec();
    let f = frame(true, false, 2, &[1u8; 1000]);
    let mut part = f[..500].to_vec();
    let (n, ev) = d.decode(&mut part).unwrap();
    assert_eq!(n, 500);
    assert!(ev.is_none());
    assert!(d.is_mid_message());
}

#[test]
fn close_with_code_and_reason() {
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend_from_slice("bye ✓".as_bytes());
    let (e, err) = run_all(&mut dec(), &frame(true, false, 8, &p));
    assert_eq!(err, None);
    assert_eq!(e, vec![Ev::Close(Some(1000), "bye ✓".into())]);
}

#[test]
fn empty_close_has_no_code() {
    let (e, _) = run_all(&mut dec(), &frame(true, false, 8, b""));
    assert_eq!(e, vec![Ev::Close(None, String::new())]);
}

#[test]
fn close_payload_of_one_byte_is_1002() {
    let (_, e) = run_all(&mut dec(), &frame(true, false, 8, &[3]));
    assert_eq!(e, Some(ProtocolError::InvalidClosePayload));
    assert_eq!(err_code(&frame(true, false, 8, &[3])), 1002);
}

#[test]
fn invalid_close_code_is_1002() {
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
    ] {
        let (_, e) = run_all(&mut dec(), &frame(true, false, 8, &code.to_be_bytes()));
        assert_eq!(e, Some(ProtocolError::InvalidCloseCode(code)));
    }
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4999,
    ] {
        let (e, err) = run_all(&mut dec(), &frame(true, false, 8, &code.to_be_bytes()));
        assert_eq!(err, None, "{code}");
        assert_eq!(e, vec![Ev::Close(Some(code), String::new())]);
    }
}

#[test]
fn close_reason_invalid_utf8_is_1007() {
    assert_eq!(
        err_code(&frame(
            true,
            false,
            8,
            &[0x03, 0xe8, 0xce, 0xba, 0xed, 0xa0, 0x80]
        )),
        1007
    );
}

#[test]
fn data_after_close_is_an_error() {
    let s = [
        frame(true, false, 8, &1000u16.to_be_bytes()),
        frame(true, false, 9, b""),
    ]
    .concat();
    let (e, err) = run_all(&mut dec(), &s);
    assert_eq!(e.len(), 1);
    assert_eq!(err, Some(ProtocolError::DataAfterClose));
    let mut d = dec();
    let mut f = frame(true, false, 8, b"");
    d.decode(&mut f).unwrap();
    assert!(d.is_closed());
    assert_eq!(d.decode(&mut []).unwrap().0, 0);
}

#[test]
fn decoder_is_poisoned_after_error() {
    let mut d = dec();
    let mut bad = frame(true, false, 3, b"");
    assert_eq!(
        d.decode(&mut bad).unwrap_err(),
        ProtocolError::ReservedOpcode(3)
    );
    let mut good = frame(true, false, 1, b"ok");
    assert_eq!(
        d.decode(&mut good).unwrap_err(),
        ProtocolError::ReservedOpcode(3)
    );
    assert_eq!(
        d.decode(&mut []).unwrap_err(),
        ProtocolError::ReservedOpcode(3)
    );
}

#[test]
fn invalid_text_is_1007() {
    assert_eq!(
        err_code(&frame(
            true,
            false,
            1,
            &[
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
                0x65, 0x64, 0x69, 0x74, 0x65, 0x64
            ]
        )),
        1007
    );
}

#[test]
fn invalid_binary_is_fine() {
    let (e, err) = run_all(&mut dec(), &frame(true, false, 2, &[0xff, 0xfe]));
    assert_eq!(err, None);
    assert_eq!(e.len(), 1);
}

#[test]
fn text_invalid_utf8_fails_fast_before_frame_complete() {
    // Autobahn 6.4.x: the frame is much longer; the bad bytes arrive first.
    let mut payload = "κόσμε".as_bytes().to_vec();
    payload.extend_from_slice(&[0xf4, 0x90, 0x80, 0x80]);
    payload.extend_from_slice(&[b'a'; 1000]);
    let f = frame(true, false, 1, &payload);
    // only the header + the valid part + the first bad bytes arrive
    let upto = 2 + 2 + 4 + "κόσμε".len() + 2;
    let mut d = dec();
    let mut part = f[..upto].to_vec();
    assert_eq!(d.decode(&mut part).unwrap_err(), ProtocolError::InvalidUtf8);
}

#[test]
fn overlong_utf8_fails_fast() {
    let f = frame(true, false, 1, &[b'a', 0xc0, 0xaf, b'b', b'c', b'd']);
    let mut d = dec();
    let mut part = f[..2 + 4 + 2].to_vec();
    assert_eq!(d.decode(&mut part).unwrap_err(), ProtocolError::InvalidUtf8);
}

#[test]
fn utf8_fails_fast_in_fragmented_message() {
    // first fragment valid, second fragment starts with a surrogate prefix ED A0
    let s = [
        frame(false, false, 1, b"ab\xed"),
        frame(false, false, 0, b"\xa0\x80cd"),
    ]
    .concat();
    let mut d = dec();
    // only header + first byte of the second fragment
    let upto = 2 + 4 + 3 + 2 + 4 + 1;
    let (e, err) = run(&mut d, &s[..upto], &[]);
    assert!(e.is_empty());
    assert_eq!(err, Some(ProtocolError::InvalidUtf8));
}

#[test]
fn text_split_one_byte_at_a_time() {
    let text = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞 \u{10FFFF}";
    let b = text.as_bytes();
    // one fragment per byte
    let mut s = Vec::new();
    for (i, byte) in b.iter().enumerate() {
        let op = if i == 0 { 1 } else { 0 };
        s.extend(frame(
            i + 1 == b.len(),
            false,
            op,
            std::slice::from_ref(byte),
        ));
    }
    let (e, err) = run(&mut dec(), &s, &one_byte_cuts(s.len()));
    assert_eq!(err, None);
    assert_eq!(e, vec![Ev::Msg(OpCode::Text, b.to_vec(), false)]);
}

#[test]
fn truncated_utf8_at_message_end_is_1007() {
    let s = [
        frame(false, false, 1, b"ab"),
        frame(true, false, 0, b"\xe2\x82"),
    ]
    .concat();
    assert_eq!(run_all(&mut dec(), &s).1, Some(ProtocolError::InvalidUtf8));
    assert_eq!(err_code(&frame(true, false, 1, b"\xf0\x9d\x84")), 1007);
}

#[test]
fn message_over_limit_is_1009_from_header() {
    let mut d = dec_max(100);
    let f = frame(true, false, 2, &[0u8; 101]);
    // only the header has arrived
    let mut part = f[..8].to_vec();
    let e = d.decode(&mut part).unwrap_err();
    assert_eq!(e, ProtocolError::MessageTooLarge { limit: 100 });
    assert_eq!(e.close_code(), 1009);
    let (e, err) = run_all(&mut dec_max(100), &frame(true, false, 2, &[0u8; 100]));
    assert_eq!((e.len(), err), (1, None));
}

#[test]
fn fragmented_message_over_limit_is_1009() {
    let s = [
        frame(false, false, 2, &[0u8; 60]),
        frame(true, false, 0, &[0u8; 41]),
    ]
    .concat();
    let (_, err) = run_all(&mut dec_max(100), &s);
    assert_eq!(err.map(|e| e.close_code()), Some(1009));
    let s = [
        frame(false, false, 2, &[0u8; 60]),
        frame(true, false, 0, &[0u8; 40]),
    ]
    .concat();
    assert_eq!(run_all(&mut dec_max(100), &s).1, None);
}

#[test]
fn huge_declared_length_is_1009() {
    let f = [
        0x82u8, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4,
    ];
    assert_eq!(err_code(&f), 1009);
}

fn client_cfg_deflater(cfg: &DeflateConfig) -> Deflater {
    // the client compresses with the client_* parameters
    Deflater::new(&DeflateConfig {
        server_no_context_takeover: cfg.client_no_context_takeover,
        client_no_context_takeover: cfg.server_no_context_takeover,
        server_max_window_bits: cfg.client_max_window_bits.max(9),
        client_max_window_bits: cfg.server_max_window_bits,
    })
}

fn compressed_dec(cfg: &DeflateConfig, max: usize) -> MessageDecoder {
    let mut d = dec_max(max);
    d.set_inflater(Some(Inflater::new(cfg)));
    d
}

#[test]
fn compressed_message_is_inflated() {
    let cfg = DeflateConfig::default();
    let mut z = Vec::new();
    client_cfg_deflater(&cfg)
        .compress(b"Hello Hello Hello", &mut z)
        .unwrap();
    let (e, err) = run(
        &mut compressed_dec(&cfg, 1000),
        &frame(true, true, 1, &z),
        &[3, 9],
    );
    assert_eq!(err, None);
    assert_eq!(
        e,
        vec![Ev::Msg(OpCode::Text, b"Hello Hello Hello".to_vec(), true)]
    );
}

#[test]
fn rfc7692_hello_frames() {
    // RFC 7692 §7.2.3.1 unfragmented, §7.2.3.2 fragmented
    let cfg = DeflateConfig::default();
    let z = [0xf2u8, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let s = [
        frame(true, true, 1, &z),
        frame(false, true, 1, &z[..3]),
        frame(true, false, 0, &z[3..]),
    ]
    .concat();
    let mut d = MessageDecoder::new(DecoderConfig::default());
    d.set_inflater(Some(Inflater::new(&DeflateConfig {
        client_no_context_takeover: true,
        ..cfg
    })));
    let (e, err) = run_all(&mut d, &s);
    assert_eq!(err, None);
    assert_eq!(
        e,
        vec![
            Ev::Msg(OpCode::Text, b"Hello".to_vec(), true),
            Ev::Msg(OpCode::Text, b"Hello".to_vec(), true)
        ]
    );
}

#[test]
fn uncompressed_message_allowed_with_inflater() {
    let cfg = DeflateConfig::default();
    let (e, err) = run_all(
        &mut compressed_dec(&cfg, 100),
        &frame(true, false, 2, b"raw"),
    );
    assert_eq!(err, None);
    assert_eq!(e, vec![Ev::Msg(OpCode::Binary, b"raw".to_vec(), false)]);
}

#[test]
fn decompression_bomb_is_1009() {
    let cfg = DeflateConfig::default();
    let mut z = Vec::new();
    client_cfg_deflater(&cfg)
        .compress(&vec![b'a'; 8 << 20], &mut z)
        .unwrap();
    assert!(z.len() < 64 * 1024);
    let mut d = compressed_dec(&cfg, 1 << 20);
    let (_, err) = run(&mut d, &frame(true, true, 2, &z), &[1000, 5000]);
    assert_eq!(err, Some(ProtocolError::MessageTooLarge { limit: 1 << 20 }));
}

#[test]
fn compressed_invalid_utf8_is_1007() {
    let cfg = DeflateConfig::default();
    let mut z = Vec::new();
    client_cfg_deflater(&cfg)
        .compress(b"abc\xed\xa0\x80def", &mut z)
        .unwrap();
    let (_, err) = run_all(&mut compressed_dec(&cfg, 100), &frame(true, true, 1, &z));
    assert_eq!(err, Some(ProtocolError::InvalidUtf8));
}

#[test]
fn corrupt_compressed_data_is_1002() {
    let cfg = DeflateConfig::default();
    let (_, err) = run_all(
        &mut compressed_dec(&cfg, 100),
        &frame(true, true, 2, &[0xff; 10]),
    );
    assert_eq!(err.map(|e| e.close_code()), Some(1002));
}

#[derive(Debug, Clone)]
struct Msg {
    text: bool,
    data: Vec<u8>,
    /// fragment sizes (the remainder goes into a last fragment)
    frags: Vec<usize>,
    /// pings inserted after fragment i
    pings: Vec<usize>,
}

fn msg_strategy() -> impl Strategy<Value = Msg> {
    (
        any::<bool>(),
        prop_oneof![
            3 => proptest::collection::vec(any::<u8>(), 0..300),
            1 => proptest::collection::vec(any::<u8>(), 0..70_000),
        ],
        ".{0,100}",
        proptest::collection::vec(0usize..200, 0..5),
        proptest::collection::vec(0usize..6, 0..3),
    )
        .prop_map(|(text, bin, s, frags, pings)| Msg {
            text,
            data: if text { s.into_bytes() } else { bin },
            frags,
            pings,
        })
}

/// Encodes the message; `payload` may be the compressed form.
fn encode_msg(m: &Msg, payload: &[u8], rsv1: bool, out: &mut Vec<u8>, ping_no: &mut u8) {
    let mut pos = 0;
    let mut first = true;
    let mut i = 0;
    loop {
        let size = m.frags.get(i).copied();
        let (end, fin) = match size {
            Some(sz) if pos + sz < payload.len() => (pos + sz, false),
            _ => (payload.len(), true),
        };
        let op = if first {
            if m.text {
                1
            } else {
                2
            }
        } else {
            0
        };
        encode_frame(
            out,
            fin,
            rsv1 && first,
            op,
            &payload[pos..end],
            Some([i as u8, 0x5a, 0xa5, *ping_no]),
        );
        first = false;
        pos = end;
        if fin {
            break;
        }
        for _ in m.pings.iter().filter(|&&p| p == i) {
            *ping_no = ping_no.wrapping_add(1);
            encode_frame(out, true, false, 9, &[*ping_no], Some([1, 2, 3, 4]));
        }
        i += 1;
    }
}

fn expected(msgs: &[Msg], compressed: bool) -> Vec<Ev> {
    msgs.iter()
        .map(|m| {
            Ev::Msg(
                if m.text { OpCode::Text } else { OpCode::Binary },
                m.data.clone(),
                compressed,
            )
        })
        .collect()
}

fn decode_stream(
    d: &mut MessageDecoder,
    s: &[u8],
    cuts: &[usize],
) -> (Vec<Ev>, Option<ProtocolError>) {
    let (evs, err) = run(d, s, cuts);
    (
        evs.into_iter()
            .filter(|e| !matches!(e, Ev::Ping(_)))
            .collect(),
        err,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_messages_roundtrip_under_any_split(msgs in proptest::collection::vec(msg_strategy(), 1..6), cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let mut s = Vec::new();
        let mut ping_no = 0u8;
        for m in &msgs {
            encode_msg(m, &m.data, false, &mut s, &mut ping_no);
        }
        let cuts: Vec<usize> = cuts.into_iter().map(|c| c % (s.len() + 1)).collect();
        let mut d = dec();
        let (evs, err) = run(&mut d, &s, &cuts);
        prop_assert_eq!(err, None);
        let pings = evs.iter().filter(|e| matches!(e, Ev::Ping(_))).count();
        prop_assert_eq!(pings, ping_no as usize);
        let (got, _) = decode_stream(&mut dec(), &s, &cuts);
        prop_assert_eq!(got, expected(&msgs, false));
        prop_assert!(!d.is_mid_message());
    }

    #[test]
    fn compressed_messages_roundtrip(
        msgs in proptest::collection::vec(msg_strategy(), 1..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        snct: bool, cnct: bool, bits in 9u8..=15, uncompressed_mask in any::<u8>(),
    ) {
        let cfg = DeflateConfig { server_no_context_takeover: snct, client_no_context_takeover: cnct, server_max_window_bits: 15, client_max_window_bits: bits };
        let mut client = client_cfg_deflater(&cfg);
        let mut s = Vec::new();
        let mut ping_no = 0u8;
        let mut exp = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let compress = uncompressed_mask & (1 << (i % 8)) == 0;
            if compress {
                let mut z = Vec::new();
                client.compress(&m.data, &mut z).unwrap();
                encode_msg(m, &z, true, &mut s, &mut ping_no);
            } else {
                encode_msg(m, &m.data, false, &mut s, &mut ping_no);
            }
            exp.push(Ev::Msg(if m.text { OpCode::Text } else { OpCode::Binary }, m.data.clone(), compress));
        }
        let cuts: Vec<usize> = cuts.into_iter().map(|c| c % (s.len() + 1)).collect();
        let mut d = compressed_dec(&cfg, 1 << 20);
        let (got, err) = decode_stream(&mut d, &s, &cuts);
        prop_assert_eq!(err, None);
        prop_assert_eq!(got, exp);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), cuts in proptest::collection::vec(any::<usize>(), 0..8), inflate: bool, mask: bool) {
        let mut d = MessageDecoder::new(DecoderConfig { max_message_size: 1000, require_mask: mask });
        if inflate {
            d.set_inflater(Some(Inflater::new(&DeflateConfig::default())));
        }
        let (_, err) = run(&mut d, &bytes, &cuts);
        if let Some(e) = err {
            prop_assert!([1002u16, 1007, 1009].contains(&e.close_code()));
        }
    }

    #[test]
    fn random_frames_never_panic(frames in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..200)), 0..8), cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        // well-formed headers with random first bytes: exercises the rule checks
        let mut s = Vec::new();
        for (b0, p) in &frames {
            let mut f = frame(true, false, 0, p);
            f[0] = *b0;
            s.extend(f);
        }
        let mut d = dec_max(300);
        d.set_inflater(Some(Inflater::new(&DeflateConfig::default())));
        let (_, err) = run(&mut d, &s, &cuts);
        if let Some(e) = err {
            prop_assert!([1002u16, 1007, 1009].contains(&e.close_code()));
        }
    }
}
