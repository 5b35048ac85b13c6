//! The prefork runtime: master process, worker reactors, shared connection table, IPC.

pub(crate) mod conn;
pub mod inspect;
pub(crate) mod ipc;
pub(crate) mod master;
pub(crate) mod signals;
pub mod table;
pub mod timer;
pub(crate) mod worker;
