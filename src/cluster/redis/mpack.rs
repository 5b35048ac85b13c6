//! MessagePack values as Node's adapter writes them (notepack.io: maps with string keys,
//! smallest integers, float64, `bin` for Buffers, an ext for `undefined`), and the
//! conversions to and from the Socket.IO layer's [`Value`] (JSON plus blobs).

use rmpv::Value as Mp;

use crate::socketio::binary::Value;

/// A map with string keys, in the order given.
pub(crate) fn map(entries: Vec<(&str, Mp)>) -> Mp {
    Mp::Map(entries.into_iter().map(|(k, v)| (Mp::from(k), v)).collect())
}

/// An array of strings.
pub(crate) fn strings<S: AsRef<str>>(items: &[S]) -> Mp {
    Mp::Array(items.iter().map(|s| Mp::from(s.as_ref())).collect())
}

/// The value at `key` of a map.
pub(crate) fn get<'a>(v: &'a Mp, key: &str) -> Option<&'a Mp> {
    v.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// A string field.
pub(crate) fn get_str<'a>(v: &'a Mp, key: &str) -> Option<&'a str> {
    get(v, key)?.as_str()
}

/// An unsigned integer field.
pub(crate) fn get_u64(v: &Mp, key: &str) -> Option<u64> {
    let f = get(v, key)?;
    f.as_u64()
        .or_else(|| f.as_f64().filter(|x| *x >= 0.0).map(|x| x as u64))
}

/// A list of room names (numbers, which Node allows as rooms, become their text).
pub(crate) fn rooms(v: Option<&Mp>) -> Vec<String> {
    let Some(items) = v.and_then(Mp::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|r| match r {
            Mp::String(s) => s.as_str().map(str::to_string),
            Mp::Integer(i) => Some(i.to_string()),
            Mp::F64(f) => Some(f.to_string()),
            _ => None,
        })
        .collect()
}

/// MessagePack bytes.
pub(crate) fn encode(v: &Mp) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, v);
    out
}

/// A message: MessagePack, or JSON when it starts with `{` (Node's adapter sends both).
pub(crate) fn decode(bytes: &[u8]) -> Option<Mp> {
    if bytes.first() == Some(&b'{') {
        let j: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        return Some(to_mp(&Value::from(j)));
    }
    let mut r = bytes;
    rmpv::decode::read_value(&mut r).ok()
}

/// The MessagePack form of a value (blobs as `bin`).
pub(crate) fn to_mp(v: &Value) -> Mp {
    match v {
        Value::Null => Mp::Nil,
        Value::Bool(b) => Mp::Boolean(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Mp::from(u),
            (None, Some(i)) => Mp::from(i),
            _ => Mp::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Mp::from(s.as_str()),
        Value::Binary(b) => Mp::Binary(b.clone()),
        Value::Array(a) => Mp::Array(a.iter().map(to_mp).collect()),
        Value::Object(o) => Mp::Map(
            o.iter()
                .map(|(k, v)| (Mp::from(k.as_str()), to_mp(v)))
                .collect(),
        ),
    }
}

/// A value from MessagePack (`undefined` and other exts become `null`, non-string keys
/// their text).
pub(crate) fn from_mp(v: &Mp) -> Value {
    match v {
        Mp::Nil | Mp::Ext(..) => Value::Null,
        Mp::Boolean(b) => Value::Bool(*b),
        Mp::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Value::Number(u.into()),
            (None, Some(n)) => Value::Number(n.into()),
            _ => Value::Null,
        },
        Mp::F32(f) => float(f64::from(*f)),
        Mp::F64(f) => float(*f),
        Mp::String(s) => Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Mp::Binary(b) => Value::Binary(b.clone()),
        Mp::Array(a) => Value::Array(a.iter().map(from_mp).collect()),
        Mp::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k.as_str() {
                        Some(s) => s.to_string(),
                        None => k.to_string(),
                    };
                    (key, from_mp(v))
                })
                .collect(),
        ),
    }
}

/// A float as JSON has it: integral values stay integers (notepack writes `1.0` as an
/// integer too), NaN and infinities become `null` (as `JSON.stringify` does).
fn float(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        return Value::Number((f as i64).into());
    }
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_with_blobs_and_numbers() {
        let v = Value::Array(vec![
            Value::String("ev".into()),
            Value::Number((-3).into()),
            Value::Number(serde_json::Number::from_f64(1.5).unwrap_or(0.into())),
            Value::Binary(vec![0, 1, 255]),
            Value::Object([("k".to_string(), Value::Bool(true))].into()),
            Value::Null,
        ]);
        let back = decode(&encode(&to_mp(&v))).map(|m| from_mp(&m));
        assert_eq!(back, Some(v));
    }

    #[test]
    fn json_messages_are_read_too() {
        let m = decode(br#"{"requestId":"x","sockets":[]}"#).unwrap_or(Mp::Nil);
        assert_eq!(get_str(&m, "requestId"), Some("x"));
        assert_eq!(rooms(get(&m, "sockets")), Vec::<String>::new());
        // notepack's `undefined`
        assert_eq!(
            decode(&[0xd4, 0, 0]).map(|m| from_mp(&m)),
            Some(Value::Null)
        );
    }
}
