//! Binding the listening ports (a SO_REUSEPORT socket per worker id, all owned by the master)
//! and sizing the server to the descriptor limit.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};

use crate::runtime::worker::MAX_SLOTS;
use crate::runtime::StartError as Error;

pub(super) fn bind_port(
    host: &str,
    port: u16,
    workers: usize,
    backlog: i32,
) -> Result<(SocketAddr, Vec<Socket>), Error> {
    let err = |source: io::Error| Error::Bind {
        addr: format!("{host}:{port}"),
        source,
    };
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(err)?
        .next()
        .ok_or_else(|| err(io::Error::other("host did not resolve")))?;
    let make = |a: SocketAddr, reuseport: bool| -> io::Result<Socket> {
        let s = Socket::new(Domain::for_address(a), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        if reuseport {
            s.set_reuse_port(true)?;
        }
        s.set_nonblocking(true)?;
        s.set_cloexec(false)?;
        s.bind(&a.into())?;
        Ok(s)
    };
    // SO_REUSEPORT would let a second server bind the same port and steal half the
    // connections: first prove the port is free with a plain bind.
    let addr = if port != 0 {
        drop(make(addr, false).map_err(err)?);
        addr
    } else {
        addr
    };
    let mut socks: Vec<Socket> = Vec::with_capacity(workers);
    let first = make(addr, true).map_err(err)?;
    let actual = first
        .local_addr()
        .map_err(err)?
        .as_socket()
        .ok_or_else(|| err(io::Error::other("not an inet socket")))?;
    socks.push(first);
    for _ in 1..workers {
        socks.push(make(actual, true).map_err(err)?);
    }
    for s in &socks {
        s.listen(backlog).map_err(err)?;
    }
    Ok((actual, socks))
}

/// Raises the soft fd limit to the hard one and returns the number of connections it allows.
pub(super) fn raise_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

/// How many connections the server holds in all and per worker (table slots), given the
/// descriptor limit: an explicit `max_conn` beyond it is reported loudly, never capped
/// silently.
pub(super) fn capacity(max_conn: usize, worker_num: usize) -> (u64, usize) {
    let nofile = raise_nofile();
    // Each worker needs descriptors for its listeners, channels and housekeeping.
    let reserve = 32 + 4 * worker_num as u64;
    let per_worker_cap = nofile.saturating_sub(reserve).max(1);
    let capacity = per_worker_cap * worker_num as u64;
    let mut total = if max_conn == 0 {
        capacity
    } else {
        max_conn as u64
    };
    if total > capacity {
        log::warn!(
            "max_conn={max_conn} cannot be honoured: RLIMIT_NOFILE is {nofile} per process ({worker_num} workers); \
             the server will hold at most about {capacity} connections. Raise `ulimit -n` (hard limit) to allow more."
        );
        total = capacity;
    }
    let mut slots = (total.min(per_worker_cap) as usize).max(1);
    if slots > MAX_SLOTS {
        log::warn!("{slots} connections per worker asked for; a worker holds at most {MAX_SLOTS}");
        slots = MAX_SLOTS;
    }
    (total, slots)
}
