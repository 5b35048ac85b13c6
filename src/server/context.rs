//! Per-connection user values (Hyperf's connection-level `Context`), kept by the `Server` in
//! a [`ConnMap`](crate::runtime::ConnMap) and dropped when the connection closes.

use std::any::Any;
use std::collections::HashMap;

use super::Server;
use crate::runtime::table::Fd;

/// String-keyed values of one connection.
pub(crate) type ContextMap = HashMap<String, Box<dyn Any>>;

impl Server {
    /// Stores a value in the connection's context (Hyperf's `Context::set` for a connection).
    /// Only for connections of this worker (the context lives with the connection); released
    /// when it closes, after `on_close`.
    pub fn set_context<T: Any>(&self, fd: Fd, key: &str, value: T) -> bool {
        let Some(conn) = self.cx.borrow().as_ref().and_then(|cx| cx.local(fd)) else {
            return false;
        };
        let old = self
            .contexts
            .borrow_mut()
            .get_or_insert_with(conn, Default::default)
            .insert(key.to_string(), Box::new(value));
        drop(old); // a replaced value is dropped outside the borrow
        true
    }

    /// Reads a value from the connection's context (a clone of it).
    pub fn get_context<T: Any + Clone>(&self, fd: Fd, key: &str) -> Option<T> {
        self.with_context(fd, key, T::clone)
    }

    /// Reads a value from the connection's context in place (no clone). `f` must not call
    /// `set_context` / `get_context` / `with_context` itself (the contexts are borrowed while
    /// it runs).
    pub fn with_context<T: Any, R>(&self, fd: Fd, key: &str, f: impl FnOnce(&T) -> R) -> Option<R> {
        let conn = self.cx.borrow().as_ref().and_then(|cx| cx.local(fd))?;
        let contexts = self.contexts.borrow();
        let value = contexts.get(conn)?.get(key)?.downcast_ref::<T>()?;
        Some(f(value))
    }
}
