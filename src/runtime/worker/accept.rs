//! Accepting connections: our own listening sockets, and those of worker ids that are down
//! (so that connections hashed to their SO_REUSEPORT queue are not stranded).

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;

use mio::Interest;

use super::Core;
use crate::runtime::conn::Conn;
use crate::runtime::table::NewConn;

/// How long accepting pauses when the process or system is out of descriptors or memory.
const ACCEPT_BACKOFF_MS: u64 = 100;

/// What to do after an `accept(2)` error.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AcceptError {
    /// The queue is empty.
    Drained,
    /// Only this connection failed (it was reset, or a network error hit it): take the next.
    Skip,
    /// Out of descriptors, buffers or memory: the connection stays queued; retry later.
    BackOff,
}

/// accept(2)'s errors as its man page groups them: per-connection errors (ECONNABORTED,
/// EPROTO and the pending network errors Linux passes on: ENETDOWN, ENOPROTOOPT, EHOSTDOWN,
/// ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH, EPERM from a firewall) are retried at once;
/// resource exhaustion (EMFILE, ENFILE, ENOBUFS, ENOMEM) backs off.
pub(super) fn classify_accept_error(e: &io::Error) -> AcceptError {
    if e.kind() == io::ErrorKind::WouldBlock {
        return AcceptError::Drained;
    }
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => AcceptError::BackOff,
        Some(_) => AcceptError::Skip,
        None if e.kind() == io::ErrorKind::Interrupted => AcceptError::Skip,
        None => AcceptError::BackOff,
    }
}

impl Core {
    /// Accepts everything queued on listening socket `li`.
    pub(super) fn accept_all(&mut self, li: usize) {
        let limit = self.settings.max_conn as u64;
        let mut skipped = 0u32;
        loop {
            if self.stopping.is_some() {
                return;
            }
            let (mut stream, addr) = match self.listeners[li].sock.accept() {
                Ok(ok) => ok,
                Err(e) => match classify_accept_error(&e) {
                    AcceptError::Drained => return,
                    // Bounded, so a listener in a persistent error state cannot spin us.
                    AcceptError::Skip if skipped < 64 => {
                        skipped += 1;
                        log::debug!("accept: {e}; next connection");
                        continue;
                    }
                    _ => {
                        log::error!("accept failed: {e}; retrying in {ACCEPT_BACKOFF_MS} ms");
                        self.accept_retry_at = Some(self.now + ACCEPT_BACKOFF_MS);
                        return;
                    }
                },
            };
            let global = &self.table.global().connections;
            if global.load(Ordering::Relaxed) >= limit || self.conns.len() >= self.slots {
                log::warn!("max_conn ({limit}) reached: refusing {addr}");
                continue;
            }
            let port_idx = self.listeners[li].port_idx;
            let Ok(tls) = self.tls_session(port_idx, addr) else {
                continue;
            };
            global.fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            let key = self.conns.vacant_key();
            let l = &self.listeners[li];
            let nc = NewConn {
                remote: addr,
                server_port: self.ports[port_idx as usize].port,
                server_fd: l.server_fd,
                socket_fd: stream.as_raw_fd(),
                now_ms: self.wall,
            };
            let token = mio::Token(key);
            if let Err(e) = self
                .registry
                .register(&mut stream, token, Interest::READABLE)
            {
                log::warn!("register {addr}: {e}");
                global.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            let fd = self.table.open(self.region, key, &nc);
            let mut conn = Conn::new(stream, fd, port_idx, self.now);
            conn.tls = tls;
            self.conns.insert(conn);
            self.accepted += 1;
            self.publish_conn_count();
            let deadline = self.now + self.settings.handshake_timeout.as_millis() as u64;
            self.push_deadline(deadline, key, fd);
        }
    }

    /// Registers the listening sockets of worker ids that have no running worker (so their
    /// queued connections are served while the master restarts it) and gives them back once
    /// their worker runs again.
    pub(super) fn adopt_orphans(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        let mut newly = Vec::new();
        for i in 0..self.listeners.len() {
            let owner = self.listeners[i].owner;
            if owner == self.worker_id {
                continue;
            }
            let orphan = self.region_for_worker(owner).is_none();
            let token = self.tokens.listener(i);
            let l = &mut self.listeners[i];
            if orphan && !l.registered {
                if self
                    .registry
                    .register(&mut l.sock, token, Interest::READABLE)
                    .is_ok()
                {
                    l.registered = true;
                    log::info!(
                        "Worker#{} serves the queue of Worker#{owner} while it is down",
                        self.worker_id
                    );
                    newly.push(i);
                }
            } else if !orphan && l.registered {
                let _ = self.registry.deregister(&mut l.sock);
                l.registered = false;
            }
        }
        for i in newly {
            self.accept_all(i);
        }
    }

    /// Registers this worker's own listening sockets (a reload's replacement, once the worker
    /// it replaces has handed its connections over) and accepts what queued meanwhile.
    pub(super) fn release_own_listeners(&mut self) {
        for i in 0..self.listeners.len() {
            let token = self.tokens.listener(i);
            let l = &mut self.listeners[i];
            if l.owner != self.worker_id || l.registered {
                continue;
            }
            match self
                .registry
                .register(&mut l.sock, token, Interest::READABLE)
            {
                Ok(()) => l.registered = true,
                Err(e) => log::error!("Worker#{}: cannot accept: {e}", self.worker_id),
            }
        }
        for i in 0..self.listeners.len() {
            if self.listeners[i].registered {
                self.accept_all(i);
            }
        }
    }

    /// After a back-off, accepts again on the listeners that are ours to serve.
    pub(super) fn retry_accept(&mut self) {
        match self.accept_retry_at {
            Some(at) if self.now >= at => self.accept_retry_at = None,
            _ => return,
        }
        for i in 0..self.listeners.len() {
            if self.listeners[i].registered {
                self.accept_all(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_retry_per_connection_and_back_off_on_exhaustion() {
        let os = io::Error::from_raw_os_error;
        for e in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(classify_accept_error(&os(e)), AcceptError::BackOff, "{e}");
        }
        for e in [
            libc::ECONNABORTED,
            libc::EPROTO,
            libc::ENETDOWN,
            libc::ENOPROTOOPT,
            libc::EHOSTDOWN,
            libc::ENONET,
            libc::EHOSTUNREACH,
            libc::EOPNOTSUPP,
            libc::ENETUNREACH,
            libc::EPERM,
            libc::EINTR,
        ] {
            assert_eq!(classify_accept_error(&os(e)), AcceptError::Skip, "{e}");
        }
        let would_block = io::Error::from(io::ErrorKind::WouldBlock);
        assert_eq!(classify_accept_error(&would_block), AcceptError::Drained);
    }
}
