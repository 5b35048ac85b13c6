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

struct Conn {
    sock: TcpStream,
    /// Bytes read but not yet written back: `buf[pos..len]`.
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
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
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    announce(listener.local_addr()?);
    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    let mut events = Events::with_capacity(1024);
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
                                entry.insert(Conn { sock, buf: vec![0; BUF].into_boxed_slice(), pos: 0, len: 0 });
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
            let Some(c) = conns.get_mut(key) else { continue };
            if !pump(c) {
                let mut c = conns.remove(key);
                let _ = poll.registry().deregister(&mut c.sock);
            }
        }
    }
}

/// Echoes as much as the socket allows; false when the connection is done.
fn pump(c: &mut Conn) -> bool {
    loop {
        // Flush what is pending first; read more only when the buffer is empty.
        while c.pos < c.len {
            match c.sock.write(&c.buf[c.pos..c.len]) {
                Ok(0) => return false,
                Ok(n) => c.pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        c.pos = 0;
        c.len = 0;
        match c.sock.read(&mut c.buf) {
            Ok(0) => return false,
            Ok(n) => c.len = n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}
