//! Connection-context values that travel with their connection when a reload hands it to a
//! new worker. A key is declared portable once, with its type (`Serialize +
//! DeserializeOwned`); values stored under it are encoded (MessagePack) at the hand-off and
//! decoded in the new worker. Other values stay behind and are dropped; the layer's adopt
//! callback lets the application rebuild them.

use std::any::Any;
use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

type Encode = fn(&dyn Any) -> Option<Vec<u8>>;
type Decode = fn(&[u8]) -> Option<Box<dyn Any>>;

/// The declared portable keys.
#[derive(Default)]
pub(crate) struct PortableKeys {
    keys: HashMap<String, (Encode, Decode)>,
}

fn encode<T: Serialize + 'static>(v: &dyn Any) -> Option<Vec<u8>> {
    rmp_serde::to_vec(v.downcast_ref::<T>()?).ok()
}

fn decode<T: DeserializeOwned + 'static>(b: &[u8]) -> Option<Box<dyn Any>> {
    let v: T = rmp_serde::from_slice(b).ok()?;
    Some(Box::new(v))
}

impl PortableKeys {
    /// Declares that values of type `T` under `key` travel along.
    pub fn declare<T: Serialize + DeserializeOwned + 'static>(&mut self, key: &str) {
        self.keys
            .insert(key.to_string(), (encode::<T>, decode::<T>));
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The portable values of `values` (those of the declared type), encoded together.
    pub fn export(&self, values: &HashMap<String, Box<dyn Any>>) -> Vec<u8> {
        let mut out: Vec<(&str, serde_bytes::ByteBuf)> = Vec::new();
        for (k, v) in values {
            if let Some(bytes) = self.keys.get(k).and_then(|(enc, _)| enc(&**v)) {
                out.push((k, serde_bytes::ByteBuf::from(bytes)));
            }
        }
        rmp_serde::to_vec(&out).unwrap_or_default()
    }

    /// Values encoded by `export`, decoded with the declared types (unknown keys and values
    /// that do not decode are dropped, with a log line).
    pub fn import(&self, bytes: &[u8]) -> HashMap<String, Box<dyn Any>> {
        let mut map = HashMap::new();
        let Ok(entries) = rmp_serde::from_slice::<Vec<(String, serde_bytes::ByteBuf)>>(bytes)
        else {
            log::warn!("a handed-over connection context does not decode; dropped");
            return map;
        };
        for (k, b) in entries {
            match self.keys.get(&k).and_then(|(_, dec)| dec(&b)) {
                Some(v) => {
                    map.insert(k, v);
                }
                None => log::warn!("context value {k:?} of a handed-over connection dropped"),
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_values_travel_and_others_stay() {
        let mut keys = PortableKeys::default();
        keys.declare::<String>("user");
        keys.declare::<Vec<u32>>("rooms");
        let mut values: HashMap<String, Box<dyn Any>> = HashMap::new();
        values.insert("user".into(), Box::new("ann".to_string()));
        values.insert("rooms".into(), Box::new(vec![1u32, 2]));
        values.insert("socket".into(), Box::new(std::rc::Rc::new(5)));
        let moved = keys.import(&keys.export(&values));
        assert_eq!(moved.len(), 2);
        assert_eq!(
            moved["user"].downcast_ref::<String>().map(String::as_str),
            Some("ann")
        );
        assert_eq!(moved["rooms"].downcast_ref::<Vec<u32>>(), Some(&vec![1, 2]));
        assert!(keys.import(b"\xc1").is_empty(), "garbage is dropped");
    }
}
