use super::*;
use proptest::prelude::*;

const MAX: usize = 1 << 20;

fn kind() -> impl Strategy<Value = PacketType> {
    (0u8..=6).prop_map(|n| PacketType::from_u8(n).unwrap())
}

/// Packets every version can carry over both transports (v4 binary only for messages).
pub(crate) fn arb_packet(version: Version) -> impl Strategy<Value = Packet> {
    let text = (kind(), "[^\u{1e}]{0,40}").prop_map(|(k, t)| Packet::text(k, t));
    let bin_kind = match version {
        Version::V3 => kind().boxed(),
        Version::V4 => Just(PacketType::Message).boxed(),
    };
    let bin =
        (bin_kind, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(kind, b)| Packet {
            kind,
            data: Data::Binary(b),
        });
    prop_oneof![text, bin]
}

fn decode(version: Version, f: &Frame) -> Result<Packet, Error> {
    match f {
        Frame::Text(t) => decode_text(version, t.as_bytes(), MAX),
        Frame::Binary(b) => decode_binary(version, b, MAX),
    }
}

#[test]
fn spec_text_frames() {
    for v in [Version::V3, Version::V4] {
        assert_eq!(
            encode_packet(v, &Packet::text(PacketType::Message, "hello")),
            Frame::Text("4hello".into())
        );
        assert_eq!(
            encode_packet(v, &Packet::text(PacketType::Ping, "probe")),
            Frame::Text("2probe".into())
        );
        assert_eq!(
            decode_text(v, b"3probe", MAX),
            Ok(Packet::text(PacketType::Pong, "probe"))
        );
        assert_eq!(
            decode_text(v, b"5", MAX),
            Ok(Packet::text(PacketType::Upgrade, ""))
        );
        assert_eq!(
            decode_text(v, "4€".as_bytes(), MAX),
            Ok(Packet::text(PacketType::Message, "€"))
        );
    }
}

#[test]
fn spec_binary_frames() {
    let p = Packet::binary(vec![1, 2, 3]);
    assert_eq!(encode_packet(Version::V4, &p), Frame::Binary(vec![1, 2, 3]));
    assert_eq!(
        encode_packet(Version::V3, &p),
        Frame::Binary(vec![4, 1, 2, 3])
    );
    assert_eq!(decode_binary(Version::V4, &[1, 2, 3], MAX), Ok(p.clone()));
    assert_eq!(decode_binary(Version::V3, &[4, 1, 2, 3], MAX), Ok(p));
}

#[test]
fn base64_text_form() {
    let p = Packet::binary(vec![1, 2, 3, 4]);
    assert_eq!(decode_text(Version::V3, b"b4AQIDBA==", MAX), Ok(p.clone()));
    assert_eq!(decode_text(Version::V4, b"bAQIDBA==", MAX), Ok(p));
    assert_eq!(
        decode_text(Version::V4, b"b!!", MAX),
        Err(Error::InvalidBase64)
    );
}

#[test]
fn errors() {
    assert_eq!(decode_text(Version::V4, b"", MAX), Err(Error::Empty));
    assert_eq!(
        decode_text(Version::V4, b"7x", MAX),
        Err(Error::UnknownType(b'7'))
    );
    assert_eq!(
        decode_text(Version::V4, b"4\xff", MAX),
        Err(Error::InvalidUtf8)
    );
    assert_eq!(decode_binary(Version::V3, b"", MAX), Err(Error::Empty));
    assert_eq!(
        decode_binary(Version::V3, &[9, 1], MAX),
        Err(Error::UnknownType(9))
    );
    assert_eq!(
        decode_text(Version::V4, b"4hello", 3),
        Err(Error::TooLarge { len: 6, max: 3 })
    );
    assert_eq!(
        decode_binary(Version::V4, &[0; 4], 3),
        Err(Error::TooLarge { len: 4, max: 3 })
    );
}

proptest! {
    #[test]
    fn ws_round_trip_v3(p in arb_packet(Version::V3)) {
        prop_assert_eq!(decode(Version::V3, &encode_packet(Version::V3, &p)), Ok(p));
    }

    #[test]
    fn ws_round_trip_v4(p in arb_packet(Version::V4)) {
        prop_assert_eq!(decode(Version::V4, &encode_packet(Version::V4, &p)), Ok(p));
    }

    #[test]
    fn ws_decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        for v in [Version::V3, Version::V4] {
            let _ = decode_text(v, &b, MAX);
            let _ = decode_binary(v, &b, MAX);
        }
    }
}
