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
        let socket: OwnedFd = conn.stream.into();
        let tx = self.ipc_tx[region];
        match self.outbox.send_fd(region, tx, &body, Some(socket)) {
            Ok(SendState::Done | SendState::Queued) => {
                self.register_ipc_tx_if_queued(region);
                log::debug!("fd {fd}: handed to worker {worker}");
                true
            }
            // The connection is gone either way (its socket was dropped with the message).
            Ok(SendState::Refused { .. }) | Err(_) => {
                log::warn!("fd {fd}: hand-off to worker {worker} failed; connection dropped");
                true
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
        let std_stream = std::net::TcpStream::from(socket);
        let _ = std_stream.set_nonblocking(true);
        let mut stream = mio::net::TcpStream::from_std(std_stream);
        let key = self.conns.vacant_key();
        if let Err(e) = self
            .registry
            .register(&mut stream, mio::Token(key), Interest::READABLE)
        {
            log::warn!("register a handed-over connection: {e}");
            return None;
        }
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
        self.table
            .region(self.region)
            .connections
            .store(self.conns.len() as u64, Ordering::Relaxed);
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
