//! Peer and floor: a single-threaded mio TCP echo server without WebSocket framing. Whatever a
//! connection sends comes back unchanged; the load tool talks to it with `echo --raw`.
//!
//! `raw_tcp_echo --host 127.0.0.1 --port 0`

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use peers::{announce, raise_nofile, PeerArgs};
use std::io::{ErrorKind, Read, Write};

const LISTENER: Token = Token(usize::MAX);
const BUF: usize = 64 * 1024;

/// A connection costs its socket plus, only while the peer is not reading, the bytes it has not
/// taken yet: reads go through one shared buffer (this is the memory floor as well as the CPU
/// floor).
struct Conn {
    sock: TcpStream,
    /// Bytes read but not yet written back: `pending[pos..]` (empty, unallocated, normally).
    pending: Vec<u8>,
    pos: usize,
}

fn main() -> std::io::Result<()> {
    let args = PeerArgs::parse_args();
    raise_nofile();
    let addr: std::net::SocketAddr = args
        .addr()
        .parse()
        .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, format!("{e}")))?;
    let mut listener = TcpListener::bind(addr)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    announce(listener.local_addr()?);
    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; BUF];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut sock, _)) => {
                            let _ = sock.set_nodelay(true);
                            let entry = conns.vacant_entry();
                            let tok = Token(entry.key());
                            if poll
                                .registry()
                                .register(&mut sock, tok, Interest::READABLE | Interest::WRITABLE)
                                .is_ok()
                            {
                                entry.insert(Conn {
                                    sock,
                                    pending: Vec::new(),
                                    pos: 0,
                                });
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            eprintln!("accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let key = ev.token().0;
            let Some(c) = conns.get_mut(key) else {
                continue;
            };
            if !pump(c, &mut buf) {
                let mut c = conns.remove(key);
                let _ = poll.registry().deregister(&mut c.sock);
            }
        }
    }
}

/// Echoes as much as the socket allows; false when the connection is done.
fn pump(c: &mut Conn, buf: &mut [u8]) -> bool {
    // Flush what is pending first; read more only once it is gone.
    while c.pos < c.pending.len() {
        match c.sock.write(&c.pending[c.pos..]) {
            Ok(0) => return false,
            Ok(n) => c.pos += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    if !c.pending.is_empty() {
        c.pending = Vec::new();
        c.pos = 0;
    }
    loop {
        let n = match c.sock.read(buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        let mut pos = 0;
        while pos < n {
            match c.sock.write(&buf[pos..n]) {
                Ok(0) => return false,
                Ok(w) => pos += w,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    // Keep the rest until the socket is writable again; stop reading meanwhile.
                    c.pending.extend_from_slice(&buf[pos..n]);
                    return true;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if n < buf.len() {
            return true;
        }
    }
}
