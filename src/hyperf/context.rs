//! The connection context (Hyperf's `Hyperf\WebSocketServer\Context`): typed values per
//! connection, written by handshake middleware or callbacks, readable in every callback of
//! that connection, released when it closes.

use std::any::Any;
use std::collections::HashMap;

/// Values of one connection (or of one HTTP request), by key, of any type.
///
/// ```
/// use prefork_ws::hyperf::Context;
/// let mut c = Context::default();
/// c.set("uid", 7u64);
/// c.set("name", String::from("jerry"));
/// assert_eq!(c.get::<u64>("uid"), Some(&7));
/// assert_eq!(c.get::<String>("name").map(String::as_str), Some("jerry"));
/// assert!(c.get::<u32>("uid").is_none(), "typed: the wrong type is not returned");
/// ```
#[derive(Default)]
pub struct Context {
    values: HashMap<String, Box<dyn Any>>,
}

impl Context {
    /// Stores `value` under `key` (replacing what was there).
    pub fn set<T: Any>(&mut self, key: &str, value: T) {
        self.values.insert(key.to_string(), Box::new(value));
    }

    /// The value under `key`, if it is a `T`.
    pub fn get<T: Any>(&self, key: &str) -> Option<&T> {
        self.values.get(key)?.downcast_ref()
    }

    /// The value under `key`, mutably, if it is a `T`.
    pub fn get_mut<T: Any>(&mut self, key: &str) -> Option<&mut T> {
        self.values.get_mut(key)?.downcast_mut()
    }

    pub(crate) fn values(&self) -> &HashMap<String, Box<dyn Any>> {
        &self.values
    }

    pub(crate) fn from_values(values: HashMap<String, Box<dyn Any>>) -> Context {
        Context { values }
    }

    /// Whether `key` is set (to any type).
    pub fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// Removes and returns the value under `key`, if it is a `T`.
    pub fn remove<T: Any>(&mut self, key: &str) -> Option<T> {
        let v = self.values.remove(key)?;
        v.downcast().ok().map(|b| *b)
    }
}
