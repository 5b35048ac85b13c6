//! Moving a connection to another worker: its socket goes through the IPC channel
//! (`SCM_RIGHTS`) with the request it was on and the input behind it, and the receiving
//! worker handles that input as if it had just read it. A layer asks for this when a request
//! belongs to state another worker holds (an Engine.IO session named by its id), so no
//! sticky sessions and no per-request forwarding are needed.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use mio::Interest;

use super::{Core, Worker};
use crate::runtime::conn::{Conn, Phase};
use crate::runtime::handler::Handler;
use crate::runtime::ipc::{Msg, SendState};
use crate::runtime::table::{Fd, NewConn};

impl Core {
    /// Hands connection `key` to worker `worker`, with `prefix` and the connection's input
    /// from offset `from` (together: the request it was on, then whatever followed) to handle
    /// there. `false`, with the connection untouched, when that worker cannot take it now
    /// (not running, its channel full, output still pending here).
    pub(super) fn hand_off(
        &mut self,
        key: usize,
        fd: Fd,
        worker: usize,
        prefix: &[u8],
        from: usize,
    ) -> bool {
        let Some(region) = self.region_for_worker(worker).filter(|&r| r != self.region) else {
            return false;
        };
        let Some(c) = self.conn(key, fd) else {
            return false;
        };
        if c.tls.is_some() {
            // Its TLS state lives in this process and cannot go with the socket.
            log::info!("fd {fd}: a TLS connection cannot move to worker {worker}");
            return false;
        }
        let pending = (c.outpos as usize) < c.outbuf.len();
        if pending || c.phase != Phase::Http || c.held.is_some() {
            return false;
        }
        let remote = c
            .stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut all = prefix.to_vec();
        all.extend_from_slice(c.inbuf.get(from..).unwrap_or_default());
        let body = Msg::Adopt {
            port_idx: c.listener,
            remote,
            input: &all,
        }
        .encode();
        if self.outbox.would_refuse(region, body.len())
            || body.len() > self.settings.pipe_buffer_size
        {
            return false;
        }
        let Some(conn) = self.remove(key) else {
            return false;
        };
        match self.send_socket(region, &body, conn.stream.into()) {
            Some(_) => log::debug!("fd {fd}: handed to worker {worker}"),
            // The connection is gone either way (its socket was dropped with the message).
            None => log::warn!("fd {fd}: hand-off to worker {worker} failed; connection dropped"),
        }
        true
    }

    /// Sends `body` with `socket` (`SCM_RIGHTS`) to `region`'s channel: `Some(false)` written,
    /// `Some(true)` queued (the channel's writability is watched), `None` failed (the socket
    /// is closed with the message).
    pub(super) fn send_socket(
        &mut self,
        region: usize,
        body: &[u8],
        socket: OwnedFd,
    ) -> Option<bool> {
        let tx = self.ipc_tx[region];
        match self.outbox.send_fd(region, tx, body, Some(socket)) {
            Ok(SendState::Done) => Some(false),
            Ok(SendState::Queued) => {
                self.register_ipc_tx_if_queued(region);
                Some(true)
            }
            Ok(SendState::Refused { .. }) | Err(_) => None,
        }
    }

    /// A socket another worker handed over, non-blocking and registered for reading as
    /// connection `key`.
    pub(super) fn register_handed_socket(
        &mut self,
        socket: OwnedFd,
        key: usize,
    ) -> Option<mio::net::TcpStream> {
        let std_stream = std::net::TcpStream::from(socket);
        let _ = std_stream.set_nonblocking(true);
        let mut stream = mio::net::TcpStream::from_std(std_stream);
        match self
            .registry
            .register(&mut stream, mio::Token(key), Interest::READABLE)
        {
            Ok(()) => Some(stream),
            Err(e) => {
                log::warn!("register a handed-over connection: {e}");
                None
            }
        }
    }

    pub(super) fn register_ipc_tx_if_queued(&mut self, region: usize) {
        if self.outbox.queued(region) > 0 && !self.ipc_tx_registered[region] {
            let tx = self.ipc_tx[region];
            let token = self.tokens.ipc_tx(region);
            if self
                .registry
                .register(&mut mio::unix::SourceFd(&tx), token, Interest::WRITABLE)
                .is_ok()
            {
                self.ipc_tx_registered[region] = true;
            }
        }
    }

    /// Takes a connection another worker handed over; returns its slot and new fd.
    fn adopt(&mut self, socket: OwnedFd, port_idx: u16, remote: SocketAddr) -> Option<(usize, Fd)> {
        let listener = self.listeners.iter().find(|l| l.port_idx == port_idx)?;
        let server_fd = listener.server_fd;
        let port = self.ports.get(port_idx as usize)?;
        if port.tls.is_some() {
            log::warn!("hand-off from another worker refused: a TLS port's connection");
            return None;
        }
        let server_port = port.port;
        if self.conns.len() >= self.slots {
            log::warn!("hand-off from another worker refused: no free slot");
            return None;
        }
        let key = self.conns.vacant_key();
        let stream = self.register_handed_socket(socket, key)?;
        let nc = NewConn {
            remote,
            server_port,
            server_fd,
            socket_fd: stream.as_raw_fd(),
            now_ms: self.wall,
        };
        let fd = self.table.open(self.region, key, &nc);
        self.conns.insert(Conn::new(stream, fd, port_idx, self.now));
        self.table
            .global()
            .connections
            .fetch_add(1, Ordering::Relaxed);
        self.publish_conn_count();
        let deadline = self.now + self.settings.handshake_timeout.as_millis() as u64;
        self.push_deadline(deadline, key, fd);
        Some((key, fd))
    }
}

impl<H: Handler> Worker<H> {
    /// A connection handed over by another worker: adopted, and its input handled.
    pub(super) fn on_adopt(
        &self,
        socket: OwnedFd,
        port_idx: u16,
        remote: SocketAddr,
        input: &[u8],
    ) {
        let adopted = self.cx.core().adopt(socket, port_idx, remote);
        if let Some((key, fd)) = adopted {
            self.on_http_input(key, fd, input);
        }
    }
}
