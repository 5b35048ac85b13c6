use super::*;
use crate::engineio::packet::tests::arb_packet;
use proptest::prelude::*;

const MAX: usize = 1 << 20;

fn spec_packets() -> Vec<Packet> {
    vec![
        Packet::text(PacketType::Message, "hello"),
        Packet::text(PacketType::Message, "€"),
        Packet::binary(vec![1, 2, 3, 4]),
    ]
}

#[test]
fn spec_v4() {
    let (body, ct) = encode_payload(Version::V4, &spec_packets());
    assert_eq!(ct, "text/plain; charset=UTF-8");
    assert_eq!(body, "4hello\x1e4€\x1ebAQIDBA==".as_bytes());
    assert_eq!(decode_payload(Version::V4, &body, MAX), Ok(spec_packets()));
}

#[test]
fn spec_v3_text() {
    let (body, ct) = encode_payload_v3(&spec_packets(), false);
    assert_eq!(ct, CONTENT_TYPE_TEXT);
    assert_eq!(body, "6:4hello2:4€10:b4AQIDBA==".as_bytes());
    assert_eq!(decode_payload(Version::V3, &body, MAX), Ok(spec_packets()));
}

#[test]
fn v3_text_counts_utf16_units() {
    // U+1F600 is two UTF-16 code units (four UTF-8 bytes).
    let p = vec![Packet::text(PacketType::Message, "😀")];
    let (body, _) = encode_payload_v3(&p, false);
    assert_eq!(body, "3:4😀".as_bytes());
    assert_eq!(decode_payload(Version::V3, &body, MAX), Ok(p));
    // A length that splits the surrogate pair is refused.
    assert_eq!(
        decode_payload(Version::V3, "2:4😀".as_bytes(), MAX),
        Err(Error::InvalidLength)
    );
}

#[test]
fn spec_v3_binary() {
    let (body, ct) = encode_payload(Version::V3, &spec_packets());
    assert_eq!(ct, "application/octet-stream");
    let mut expect = vec![0x00, 0x06, 0xff];
    expect.extend_from_slice(b"4hello");
    expect.extend_from_slice(&[0x00, 0x04, 0xff]);
    expect.extend_from_slice("4€".as_bytes());
    expect.extend_from_slice(&[0x01, 0x05, 0xff, 0x04, 1, 2, 3, 4]);
    assert_eq!(body, expect);
    assert_eq!(decode_payload(Version::V3, &body, MAX), Ok(spec_packets()));
}

#[test]
fn v3_text_without_binary_stays_text() {
    let p = vec![Packet::text(PacketType::Ping, "")];
    assert_eq!(
        encode_payload(Version::V3, &p),
        (b"1:2".to_vec(), CONTENT_TYPE_TEXT)
    );
    assert_eq!(
        encode_payload(Version::V3, &[]),
        (b"0:".to_vec(), CONTENT_TYPE_TEXT)
    );
    assert_eq!(decode_payload(Version::V3, b"0:", MAX), Ok(vec![]));
}

#[test]
fn errors_and_limits() {
    assert_eq!(decode_payload(Version::V4, b"", MAX), Err(Error::Empty));
    assert_eq!(
        decode_payload(Version::V4, b"4a\x1e", MAX),
        Err(Error::Empty)
    );
    assert_eq!(
        decode_payload(Version::V4, b"4abc", 3),
        Err(Error::TooLarge { len: 4, max: 3 })
    );
    assert_eq!(
        decode_payload(Version::V3, b"99:4a", MAX),
        Err(Error::InvalidLength)
    );
    assert_eq!(
        decode_payload(Version::V3, b"x:4a", MAX),
        Err(Error::InvalidLength)
    );
    assert_eq!(
        decode_payload(Version::V3, b"99999999999999999999999:4", MAX),
        Err(Error::InvalidLength)
    );
    // A binary header claiming far more than the body holds: refused, nothing allocated.
    let huge = [0x01, 9, 9, 9, 9, 9, 9, 9, 9, 9, 0xff, 4, 1];
    assert_eq!(
        decode_payload(Version::V3, &huge, MAX),
        Err(Error::InvalidLength)
    );
    assert_eq!(
        decode_payload(Version::V3, &[0x00, 0x0a, 0xff], MAX),
        Err(Error::InvalidLength)
    );
    // Not a binary flag, so read as text: not UTF-8.
    assert_eq!(
        decode_payload(Version::V3, &[0x02, 1, 0xff, 4], MAX),
        Err(Error::InvalidUtf8)
    );
}

proptest! {
    #[test]
    fn round_trip_v4(ps in proptest::collection::vec(arb_packet(Version::V4), 1..6)) {
        let (body, _) = encode_payload(Version::V4, &ps);
        prop_assert_eq!(decode_payload(Version::V4, &body, MAX), Ok(ps));
    }

    #[test]
    fn round_trip_v3(ps in proptest::collection::vec(arb_packet(Version::V3), 1..6), binary: bool) {
        let (body, _) = encode_payload_v3(&ps, binary);
        prop_assert_eq!(decode_payload(Version::V3, &body, MAX), Ok(ps));
    }

    #[test]
    fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_payload(Version::V3, &b, MAX);
        let _ = decode_payload(Version::V4, &b, MAX);
    }

    #[test]
    fn decode_v3_text_never_panics(s in "[0-9:b4€😀a]{0,24}") {
        let _ = decode_payload(Version::V3, s.as_bytes(), MAX);
    }
}
