use super::*;
use proptest::prelude::*;

const MAX: usize = 1 << 20;

fn dec(v: Version, s: &str) -> Result<Packet, Error> {
    Packet::decode(v, s, MAX)
}

#[test]
fn spec_v5_examples() {
    let c = dec(Version::V5, "0").unwrap();
    assert_eq!(
        (c.kind, c.nsp.as_str(), &c.data),
        (PacketKind::Connect, "/", &None)
    );
    let c = dec(Version::V5, r#"0/admin,{"token":"123"}"#).unwrap();
    assert_eq!(
        c,
        Packet::connect_v5("/admin", Some(json!({"token": "123"})))
    );
    let ack = Packet::connect_ack(Version::V5, "/", "oSO0OpakMV_3jnilAAAA");
    assert_eq!(ack.encode(), r#"0{"sid":"oSO0OpakMV_3jnilAAAA"}"#);
    let err = Packet::connect_error(Version::V5, "/", "Not authorized");
    assert_eq!(err.encode(), r#"4{"message":"Not authorized"}"#);
    assert_eq!(
        Packet::new(PacketKind::Disconnect, "/admin").encode(),
        "1/admin,"
    );
    assert_eq!(
        Packet::event("/", "foo", vec![], None).encode(),
        r#"2["foo"]"#
    );
    assert_eq!(
        Packet::event("/admin", "bar", vec![], None).encode(),
        r#"2/admin,["bar"]"#
    );
    let e = Packet::event("/admin", "project:delete", vec![json!(123)], Some(456));
    assert_eq!(e.encode(), r#"2/admin,456["project:delete",123]"#);
    assert_eq!(dec(Version::V5, &e.encode()), Ok(e.clone()));
    assert_eq!(e.event_name(), Some("project:delete"));
    assert_eq!(Packet::ack("/admin", 456, vec![]).encode(), "3/admin,456[]");
    let b = dec(Version::V5, r#"51-["baz",{"_placeholder":true,"num":0}]"#).unwrap();
    assert_eq!((b.kind, b.attachments), (PacketKind::BinaryEvent, 1));
    let b = dec(
        Version::V5,
        r#"61-/admin,456[{"_placeholder":true,"num":0}]"#,
    )
    .unwrap();
    assert_eq!(
        (b.kind, b.nsp.as_str(), b.id, b.attachments),
        (PacketKind::BinaryAck, "/admin", Some(456), 1)
    );
}

#[test]
fn spec_v4_examples() {
    assert_eq!(Packet::connect_ack(Version::V4, "/", "x").encode(), "0");
    assert_eq!(
        Packet::connect_ack(Version::V4, "/admin", "x").encode(),
        "0/admin,"
    );
    let c = dec(Version::V4, "0/admin?token=1234,").unwrap();
    assert_eq!(
        (c.nsp_path(), c.nsp_query()),
        ("/admin", Some("token=1234"))
    );
    let err = Packet::connect_error(Version::V4, "/admin", "Not authorized");
    assert_eq!(err.encode(), r#"4/admin,"Not authorized""#);
    assert_eq!(
        dec(Version::V4, &err.encode()).unwrap().error_message(),
        Some("Not authorized")
    );
    assert_eq!(
        Packet::connect_error(Version::V5, "/", "no").error_message(),
        Some("no")
    );
}

#[test]
fn nsp_without_trailing_comma() {
    assert_eq!(
        dec(Version::V5, "1/admin"),
        Ok(Packet::new(PacketKind::Disconnect, "/admin"))
    );
}

#[test]
fn errors() {
    assert_eq!(dec(Version::V5, ""), Err(Error::Empty));
    assert_eq!(dec(Version::V5, "9"), Err(Error::UnknownType(b'9')));
    assert_eq!(dec(Version::V5, "5[\"a\"]"), Err(Error::IllegalAttachments));
    assert_eq!(
        dec(Version::V5, "5x-[\"a\"]"),
        Err(Error::IllegalAttachments)
    );
    assert_eq!(
        dec(Version::V5, "2999999999999999999999[\"a\"]"),
        Err(Error::InvalidId)
    );
    assert_eq!(dec(Version::V5, "2[\"a\""), Err(Error::InvalidJson));
    assert_eq!(
        dec(Version::V5, "0[]"),
        Err(Error::InvalidPayload(PacketKind::Connect))
    );
    assert_eq!(
        dec(Version::V5, "1{}"),
        Err(Error::InvalidPayload(PacketKind::Disconnect))
    );
    assert_eq!(
        dec(Version::V5, "2[]"),
        Err(Error::InvalidPayload(PacketKind::Event))
    );
    assert_eq!(
        dec(Version::V5, "2[\"connect\"]"),
        Err(Error::InvalidPayload(PacketKind::Event))
    );
    assert_eq!(
        dec(Version::V5, "3{}"),
        Err(Error::InvalidPayload(PacketKind::Ack))
    );
    assert_eq!(
        dec(Version::V5, "4[1]"),
        Err(Error::InvalidPayload(PacketKind::ConnectError))
    );
    assert!(
        dec(Version::V4, "0[]").is_ok(),
        "v4 does not check payload shapes"
    );
    assert_eq!(
        Packet::decode(Version::V5, "2[\"a\"]", 3),
        Err(Error::TooLarge { len: 6, max: 3 })
    );
}

/// Small JSON values (no placeholders).
pub(crate) fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z€ \"\\\\]{0,8}".prop_map(Json::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            proptest::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

pub(crate) fn arb_nsp() -> impl Strategy<Value = String> {
    prop_oneof![Just("/".to_string()), "/[a-z0-9-]{1,8}"]
}

/// Packets valid in both versions (v5 shapes; v4 accepts them too).
pub(crate) fn arb_packet() -> impl Strategy<Value = Packet> {
    let args = || proptest::collection::vec(arb_json(), 0..3);
    let obj = proptest::collection::btree_map("[a-z]{1,6}", arb_json(), 0..3)
        .prop_map(|m| Json::Object(m.into_iter().collect()));
    let data = prop_oneof![
        (Just(PacketKind::Connect), proptest::option::of(obj)),
        Just((PacketKind::Disconnect, None)),
        ("[a-z:]{1,8}", args()).prop_map(|(name, mut a)| {
            a.insert(0, Json::String(name));
            (PacketKind::Event, Some(Json::Array(a)))
        }),
        args().prop_map(|a| (PacketKind::Ack, Some(Json::Array(a)))),
        "[a-z ]{0,8}".prop_map(|m| (PacketKind::ConnectError, Some(json!({ "message": m })))),
    ];
    (
        data,
        arb_nsp(),
        proptest::option::of(any::<u64>()),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|((kind, data), nsp, id, n, binary)| {
            let kind = match (kind, binary) {
                (PacketKind::Event, true) => PacketKind::BinaryEvent,
                (PacketKind::Ack, true) => PacketKind::BinaryAck,
                (k, _) => k,
            };
            let attachments = if kind.is_binary() { n } else { 0 };
            Packet {
                kind,
                nsp,
                id,
                data,
                attachments,
            }
        })
}

proptest! {
    #[test]
    fn round_trip(p in arb_packet()) {
        for v in [Version::V4, Version::V5] {
            prop_assert_eq!(dec(v, &p.encode()), Ok(p.clone()));
        }
    }

    #[test]
    fn decode_never_panics(s in "[0-9/,a-z\\-\\[\\]{}\":]{0,24}") {
        let _ = dec(Version::V4, &s);
        let _ = dec(Version::V5, &s);
    }

    #[test]
    fn decode_never_panics_any(s in any::<String>()) {
        let _ = dec(Version::V5, &s);
    }
}
