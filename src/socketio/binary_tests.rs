use super::*;
use crate::socketio::packet::tests::arb_json;
use proptest::prelude::*;
use serde_json::json;

const MAX: usize = 1 << 20;

fn spec_message() -> Message {
    let data = Value::Array(vec![
        Value::String("baz".into()),
        Value::Binary(vec![1, 2, 3]),
    ]);
    Message {
        kind: PacketKind::Event,
        nsp: "/".into(),
        id: None,
        data: Some(data),
    }
}

#[test]
fn spec_binary_event() {
    let (packet, blobs) = spec_message().encode();
    assert_eq!(
        packet.encode(),
        r#"51-["baz",{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(blobs, vec![vec![1, 2, 3]]);
    let mut r = Reassembler::new(Version::V5, MAX);
    assert_eq!(r.push_text(&packet.encode()), Ok(None));
    assert!(r.is_waiting());
    assert_eq!(r.push_binary(&[1, 2, 3]), Ok(Some(spec_message())));
    assert!(!r.is_waiting());
}

#[test]
fn spec_binary_ack_two_attachments() {
    let text =
        r#"62-/admin,456[{"_placeholder":true,"num":1},{"a":{"_placeholder":true,"num":0}}]"#;
    let mut r = Reassembler::new(Version::V5, MAX);
    assert_eq!(r.push_text(text), Ok(None));
    assert_eq!(r.push_binary(b"zero"), Ok(None));
    let m = r.push_binary(b"one").unwrap().unwrap();
    assert_eq!(
        (m.kind, m.nsp.as_str(), m.id),
        (PacketKind::Ack, "/admin", Some(456))
    );
    let a = BTreeMap::from([("a".to_string(), Value::Binary(b"zero".to_vec()))]);
    assert_eq!(
        m.data,
        Some(Value::Array(vec![
            Value::Binary(b"one".to_vec()),
            Value::Object(a)
        ]))
    );
}

#[test]
fn plain_text_passes_through() {
    let mut r = Reassembler::new(Version::V4, MAX);
    let m = r.push_text(r#"2["hi",1]"#).unwrap().unwrap();
    assert_eq!(m.data, Some(Value::from(json!(["hi", 1]))));
}

#[test]
fn errors() {
    let mut r = Reassembler::new(Version::V5, MAX);
    assert_eq!(r.push_binary(&[1]), Err(Error::UnexpectedBinary));
    // Announces two, placeholders use one.
    r.push_text(r#"52-["a",{"_placeholder":true,"num":0}]"#)
        .unwrap();
    r.push_binary(&[1]).unwrap();
    assert_eq!(
        r.push_binary(&[2]),
        Err(Error::AttachmentCount {
            announced: 2,
            used: 1
        })
    );
    // Placeholder beyond the attachments.
    r.push_text(r#"51-["a",{"_placeholder":true,"num":3}]"#)
        .unwrap();
    assert_eq!(r.push_binary(&[1]), Err(Error::PlaceholderOutOfRange(3)));
    // A text packet in the middle.
    r.push_text(r#"51-["a",{"_placeholder":true,"num":0}]"#)
        .unwrap();
    assert_eq!(r.push_text(r#"2["b"]"#), Err(Error::UnexpectedText(1)));
    assert!(!r.is_waiting());
    // No data at all but attachments announced.
    r.push_text("51-").unwrap();
    assert_eq!(
        r.push_binary(&[1]),
        Err(Error::AttachmentCount {
            announced: 1,
            used: 0
        })
    );
}

#[test]
fn limits() {
    let text = r#"52-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
    let mut r = Reassembler::new(Version::V5, text.len() + 4);
    r.push_text(text).unwrap();
    r.push_binary(&[0; 3]).unwrap();
    assert!(matches!(
        r.push_binary(&[0; 2]),
        Err(Error::TooLarge { .. })
    ));
    assert!(!r.is_waiting());
    // A huge announced count: nothing is reserved, and empty frames still count.
    let mut r = Reassembler::new(Version::V5, 64);
    r.push_text("518446744073709551615-[\"a\"]").unwrap();
    let mut n = 0;
    while r.push_binary(&[]).is_ok() {
        n += 1;
    }
    assert!(n < 64);
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        arb_json().prop_map(Value::from),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Binary),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,4}", inner, 0..4).prop_map(Value::Object),
        ]
    })
}

proptest! {
    #[test]
    fn deconstruct_reconstruct(v in arb_value()) {
        let (json, blobs) = deconstruct(v.clone());
        prop_assert_eq!(reconstruct(json, blobs), Ok(v));
    }

    #[test]
    fn message_round_trip(args in proptest::collection::vec(arb_value(), 0..3), id: Option<u64>, ack: bool) {
        let kind = if ack { PacketKind::Ack } else { PacketKind::Event };
        let mut items = args;
        if !ack {
            items.insert(0, Value::String("ev".into()));
        }
        let m = Message { kind, nsp: "/chat".into(), id, data: Some(Value::Array(items)) };
        let (packet, blobs) = m.clone().encode();
        for v in [Version::V4, Version::V5] {
            let mut r = Reassembler::new(v, MAX);
            let mut out = r.push_text(&packet.encode()).unwrap();
            for b in &blobs {
                prop_assert!(out.is_none());
                out = r.push_binary(b).unwrap();
            }
            prop_assert_eq!(out, Some(m.clone()));
        }
    }

    #[test]
    fn reassembler_never_panics(frames in proptest::collection::vec(
        prop_oneof![
            "[0-9/,a-z\\-\\[\\]{}\":_]{0,24}".prop_map(Ok),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Err),
        ], 0..8)) {
        let mut r = Reassembler::new(Version::V5, 256);
        for f in frames {
            let _ = match f {
                Ok(t) => r.push_text(&t),
                Err(b) => r.push_binary(&b),
            };
        }
    }
}
