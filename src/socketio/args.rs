//! Event arguments as handlers receive them ([`Args`]), what they may emit ([`IntoArgs`]) and
//! what they may return as the acknowledgement ([`IntoReply`]).

use serde_json::Value as Json;

use super::binary::Value;

macro_rules! value_from {
    ($($t:ty => $e:expr),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Value {
                let f: fn($t) -> Value = $e;
                f(v)
            }
        })*
    };
}

value_from! {
    &str => |s| Value::String(s.to_string()),
    String => Value::String,
    &String => |s| Value::String(s.clone()),
    bool => Value::Bool,
    i64 => |n| Value::Number(n.into()),
    i32 => |n| Value::Number(n.into()),
    u64 => |n| Value::Number(n.into()),
    u32 => |n| Value::Number(n.into()),
    usize => |n| Value::Number((n as u64).into()),
    Vec<u8> => Value::Binary,
    &[u8] => |b| Value::Binary(b.to_vec()),
    () => |_| Value::Null,
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, if this is a blob.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// Plain JSON (a blob becomes an array of its bytes' numbers, as `JSON.stringify` of a
    /// `Buffer` would not — use [`Value::as_bytes`] for blobs).
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(s.clone()),
            Value::Binary(b) => Json::Array(b.iter().map(|&x| Json::from(x)).collect()),
            Value::Array(a) => Json::Array(a.iter().map(Value::to_json).collect()),
            Value::Object(o) => {
                Json::Object(o.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// The text a string-minded handler wants: a string as it is, a blob as UTF-8 (as
    /// `'…' + buffer` gives in Node), anything else as JSON.
    pub fn to_text(&self) -> String {
        match self {
            Value::String(s) => s.clone(),
            Value::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            other => other.to_json().to_string(),
        }
    }
}

/// The arguments of an event (after its name) or of an acknowledgement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args(pub Vec<Value>);

impl Args {
    /// Argument `i`.
    pub fn get(&self, i: usize) -> Option<&Value> {
        self.0.get(i)
    }

    /// Argument `i` as text ([`Value::to_text`]); empty if missing.
    pub fn text(&self, i: usize) -> String {
        self.0.get(i).map(Value::to_text).unwrap_or_default()
    }

    /// Argument `i` as JSON; a string holding JSON is parsed (seed 002's `say` sends JSON
    /// text). `Null` if missing or not JSON.
    pub fn json(&self, i: usize) -> Json {
        match self.0.get(i) {
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Json::Null),
            Some(v) => v.to_json(),
            None => Json::Null,
        }
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No arguments.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What `emit` sends after the event name: one value, a tuple of values, or a list.
pub trait IntoArgs {
    /// The arguments.
    fn into_args(self) -> Vec<Value>;
}

impl IntoArgs for Args {
    fn into_args(self) -> Vec<Value> {
        self.0
    }
}
impl IntoArgs for Vec<Value> {
    fn into_args(self) -> Vec<Value> {
        self
    }
}
impl IntoArgs for () {
    fn into_args(self) -> Vec<Value> {
        Vec::new()
    }
}
impl IntoArgs for Value {
    fn into_args(self) -> Vec<Value> {
        vec![self]
    }
}
impl IntoArgs for Json {
    fn into_args(self) -> Vec<Value> {
        vec![Value::from(self)]
    }
}
impl IntoArgs for &str {
    fn into_args(self) -> Vec<Value> {
        vec![self.into()]
    }
}
impl IntoArgs for String {
    fn into_args(self) -> Vec<Value> {
        vec![self.into()]
    }
}
impl IntoArgs for Vec<u8> {
    fn into_args(self) -> Vec<Value> {
        vec![Value::Binary(self)]
    }
}

macro_rules! tuple_args {
    ($($n:ident),+) => {
        impl<$($n: Into<Value>),+> IntoArgs for ($($n,)+) {
            #[allow(non_snake_case)]
            fn into_args(self) -> Vec<Value> {
                let ($($n,)+) = self;
                vec![$($n.into()),+]
            }
        }
    };
}
tuple_args!(A);
tuple_args!(A, B);
tuple_args!(A, B, C);
tuple_args!(A, B, C, D);
tuple_args!(A, B, C, D, F);

/// What an event handler returns: the acknowledgement's arguments when the client asked for
/// one (seed 002: `return 'Event Received: ' . $data`). `()` acknowledges with `[null]`, as
/// Hyperf does for a handler that returns nothing; [`Reply::args`] sends several arguments.
pub trait IntoReply {
    /// The acknowledgement's arguments; `None`: no acknowledgement at all.
    fn into_reply(self) -> Option<Vec<Value>>;
}

/// Several acknowledgement arguments, or none at all.
pub struct Reply(pub Option<Vec<Value>>);

impl Reply {
    /// An acknowledgement with these arguments (`[]` for none).
    pub fn args(args: impl IntoArgs) -> Reply {
        Reply(Some(args.into_args()))
    }

    /// No acknowledgement, even if the client asked for one (its callback never runs, as
    /// with a Node handler that does not call it).
    pub fn none() -> Reply {
        Reply(None)
    }
}

impl IntoReply for Reply {
    fn into_reply(self) -> Option<Vec<Value>> {
        self.0
    }
}

impl<T: Into<Value>> IntoReply for T {
    fn into_reply(self) -> Option<Vec<Value>> {
        Some(vec![self.into()])
    }
}

/// The acknowledgement of one client event, to send later (Node's callback argument).
/// Sending it when the client asked for none does nothing.
#[derive(Debug, Clone)]
pub struct AckSender {
    pub(crate) dest: super::state::Dest,
    pub(crate) nsp: std::rc::Rc<str>,
    pub(crate) id: Option<u64>,
}

impl AckSender {
    /// Whether the client asked for an acknowledgement.
    pub fn wanted(&self) -> bool {
        self.id.is_some()
    }

    /// Sends the acknowledgement (`false` if the client is gone or asked for none).
    pub fn send(self, io: &super::Io<'_>, reply: impl IntoReply) -> bool {
        let (Some(id), Some(args)) = (self.id, reply.into_reply()) else {
            return false;
        };
        let packet = super::deliver::encode_ack(&self.nsp, id, args);
        super::deliver::send_to(io, self.dest, &packet, true)
    }
}

impl From<Json> for Args {
    fn from(j: Json) -> Args {
        match j {
            Json::Array(a) => Args(a.into_iter().map(Value::from).collect()),
            other => Args(vec![Value::from(other)]),
        }
    }
}

impl From<Option<Value>> for Value {
    fn from(v: Option<Value>) -> Value {
        v.unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_returns_become_ack_arguments() {
        assert_eq!("x".into_reply(), Some(vec![Value::String("x".into())]));
        assert_eq!(().into_reply(), Some(vec![Value::Null]));
        assert_eq!(Reply::args(("a", 1)).into_reply().map(|v| v.len()), Some(2));
        assert_eq!(Reply::args(()).into_reply(), Some(Vec::new()));
        assert_eq!(Reply::none().into_reply(), None);
    }

    #[test]
    fn json_text_arguments_are_parsed() {
        let a = Args(vec![Value::String(r#"{"room":"r","message":"m"}"#.into())]);
        assert_eq!(a.json(0)["room"], "r");
        assert_eq!(a.text(0), r#"{"room":"r","message":"m"}"#);
        assert_eq!(Args::default().json(0), Json::Null);
    }
}
