//! Messages between workers over Unix datagram socket pairs.
//!
//! Every table region (see `table.rs`) has one socket pair created by the master before fork:
//! the owner of the region reads the `rx` end; every other worker writes to the shared `tx`
//! end. Datagrams keep message boundaries even with many writers, and a pair's ends are peers
//! of each other, so the kernel's `max_dgram_qlen` does not apply — only the send buffer, which
//! the master enlarges. A message longer than one chunk is cut into chunks tagged with the
//! sender's region and a sequence number; chunks from one sender arrive in order, so the
//! receiver reassembles per sender and drops a message whose beginning it never saw (a worker
//! that died mid-send).
//!
//! A full socket never blocks a reactor: the sender keeps the rest in a per-target queue and
//! waits for writability.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::runtime::table::Fd;

/// Payload bytes per datagram.
pub(crate) const CHUNK: usize = 32 * 1024;
const HEADER: usize = 16;
const MAGIC: u16 = 0x5057;

/// One message between workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Msg<'a> {
    /// Push a message to one of the receiver's connections (encoded by the receiver, which
    /// owns the connection's compression context).
    Push {
        fd: Fd,
        opcode: u8,
        flags: u8,
        data: &'a [u8],
    },
    /// Close one of the receiver's connections with a close frame.
    Disconnect { fd: Fd, code: u16, reason: &'a [u8] },
    /// An encoded frame to write to every established connection of the receiver
    /// (or to the listed ones only).
    Broadcast {
        frame: &'a [u8],
        only: Option<Vec<Fd>>,
    },
    /// A layer's own message on `channel` (the runtime does not interpret it), for the
    /// receiver's `Handler::on_peer_message`.
    Peer {
        channel: u16,
        from_worker: u32,
        data: &'a [u8],
    },
    /// A connection handed over (its socket travels beside the message, `SCM_RIGHTS`): the
    /// listener it came from, the peer's address, and the input to handle as if just read.
    Adopt {
        port_idx: u16,
        remote: std::net::SocketAddr,
        input: &'a [u8],
    },
    /// An established connection handed over in a reload, with its whole state (an encoded
    /// `MovedConn`; the socket travels beside it).
    Migrate { state: &'a [u8] },
    /// The sender (a retiring worker, by region) has handed over every connection it will.
    MigrateDone { from_region: u32 },
}

const K_PUSH: u8 = 1;
const K_DISCONNECT: u8 = 2;
const K_BROADCAST: u8 = 3;
const K_PEER: u8 = 4;
const K_ADOPT: u8 = 5;
const K_MIGRATE: u8 = 6;
const K_MIGRATE_DONE: u8 = 7;

impl Msg<'_> {
    /// Serialises the message body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.payload_len());
        match self {
            Msg::Push {
                fd,
                opcode,
                flags,
                data,
            } => {
                out.push(K_PUSH);
                out.extend_from_slice(&fd.to_le_bytes());
                out.push(*opcode);
                out.push(*flags);
                out.extend_from_slice(data);
            }
            Msg::Disconnect { fd, code, reason } => {
                out.push(K_DISCONNECT);
                out.extend_from_slice(&fd.to_le_bytes());
                out.extend_from_slice(&code.to_le_bytes());
                out.extend_from_slice(reason);
            }
            Msg::Broadcast { frame, only } => {
                out.push(K_BROADCAST);
                let fds = only.as_deref().unwrap_or(&[]);
                let n = if only.is_some() {
                    fds.len() as u32
                } else {
                    u32::MAX
                };
                out.extend_from_slice(&n.to_le_bytes());
                for fd in fds {
                    out.extend_from_slice(&fd.to_le_bytes());
                }
                out.extend_from_slice(frame);
            }
            Msg::Peer {
                channel,
                from_worker,
                data,
            } => {
                out.push(K_PEER);
                out.extend_from_slice(&channel.to_le_bytes());
                out.extend_from_slice(&from_worker.to_le_bytes());
                out.extend_from_slice(data);
            }
            Msg::Adopt {
                port_idx,
                remote,
                input,
            } => {
                out.push(K_ADOPT);
                out.extend_from_slice(&port_idx.to_le_bytes());
                let addr = remote.to_string();
                out.push(addr.len() as u8);
                out.extend_from_slice(addr.as_bytes());
                out.extend_from_slice(input);
            }
            Msg::Migrate { state } => {
                out.push(K_MIGRATE);
                out.extend_from_slice(state);
            }
            Msg::MigrateDone { from_region } => {
                out.push(K_MIGRATE_DONE);
                out.extend_from_slice(&from_region.to_le_bytes());
            }
        }
        out
    }

    fn payload_len(&self) -> usize {
        match self {
            Msg::Push { data, .. } | Msg::Peer { data, .. } => data.len(),
            Msg::Adopt { input, .. } => input.len() + 48,
            Msg::Migrate { state } => state.len(),
            Msg::MigrateDone { .. } => 4,
            Msg::Disconnect { reason, .. } => reason.len(),
            Msg::Broadcast { frame, only } => {
                frame.len() + only.as_ref().map_or(0, |v| v.len() * 8)
            }
        }
    }

    /// Parses a message body; `None` for anything malformed (never panics).
    pub fn decode(b: &[u8]) -> Option<Msg<'_>> {
        let (&kind, rest) = b.split_first()?;
        let u64_at = |s: &[u8], i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(s.get(i..i + 8)?.try_into().ok()?))
        };
        match kind {
            K_PUSH => Some(Msg::Push {
                fd: u64_at(rest, 0)?,
                opcode: *rest.get(8)?,
                flags: *rest.get(9)?,
                data: rest.get(10..)?,
            }),
            K_DISCONNECT => Some(Msg::Disconnect {
                fd: u64_at(rest, 0)?,
                code: u16::from_le_bytes(rest.get(8..10)?.try_into().ok()?),
                reason: rest.get(10..)?,
            }),
            K_BROADCAST => {
                let n = u32::from_le_bytes(rest.get(0..4)?.try_into().ok()?);
                if n == u32::MAX {
                    return Some(Msg::Broadcast {
                        frame: rest.get(4..)?,
                        only: None,
                    });
                }
                let n = n as usize;
                let mut fds = Vec::with_capacity(n.min(rest.len() / 8));
                for i in 0..n {
                    fds.push(u64_at(rest, 4 + i * 8)?);
                }
                Some(Msg::Broadcast {
                    frame: rest.get(4 + n * 8..)?,
                    only: Some(fds),
                })
            }
            K_PEER => Some(Msg::Peer {
                channel: u16::from_le_bytes(rest.get(0..2)?.try_into().ok()?),
                from_worker: u32::from_le_bytes(rest.get(2..6)?.try_into().ok()?),
                data: rest.get(6..)?,
            }),
            K_ADOPT => {
                let n = *rest.get(2)? as usize;
                let addr = std::str::from_utf8(rest.get(3..3 + n)?).ok()?;
                Some(Msg::Adopt {
                    port_idx: u16::from_le_bytes(rest.get(0..2)?.try_into().ok()?),
                    remote: addr.parse().ok()?,
                    input: rest.get(3 + n..)?,
                })
            }
            K_MIGRATE => Some(Msg::Migrate { state: rest }),
            K_MIGRATE_DONE => Some(Msg::MigrateDone {
                from_region: u32::from_le_bytes(rest.get(0..4)?.try_into().ok()?),
            }),
            _ => None,
        }
    }
}

/// The socket pair of one region.
pub(crate) struct Channel {
    pub rx: OwnedFd,
    pub tx: OwnedFd,
}

impl Channel {
    pub fn new(bufsize: usize) -> io::Result<Channel> {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (rx, tx) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        for fd in [&rx, &tx] {
            set_buf(
                fd.as_raw_fd(),
                libc::SO_SNDBUFFORCE,
                libc::SO_SNDBUF,
                bufsize,
            );
            set_buf(
                fd.as_raw_fd(),
                libc::SO_RCVBUFFORCE,
                libc::SO_RCVBUF,
                bufsize,
            );
        }
        Ok(Channel { rx, tx })
    }
}

fn set_buf(fd: RawFd, forced: libc::c_int, plain: libc::c_int, size: usize) {
    let v = size.min(i32::MAX as usize) as libc::c_int;
    let p = (&v as *const libc::c_int).cast();
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: plain setsockopt with an int option.
    unsafe {
        if libc::setsockopt(fd, libc::SOL_SOCKET, forced, p, len) != 0 {
            libc::setsockopt(fd, libc::SOL_SOCKET, plain, p, len);
        }
    }
}

/// A message waiting for the target socket to become writable.
struct Pending {
    body: Vec<u8>,
    offset: usize,
    seq: u32,
    /// A descriptor that travels with the first chunk (then it is closed here).
    fd: Option<OwnedFd>,
}

/// Outgoing side: one queue per target region, each bounded in bytes.
pub(crate) struct Outbox {
    from_region: u16,
    seq: u32,
    queues: Vec<VecDeque<Pending>>,
    /// Bytes not yet written, per target.
    queued: Vec<usize>,
    /// Per target: a refusal was already reported in the current full episode.
    refusing: Vec<bool>,
    /// Most bytes queued per target (`pipe_buffer_size`).
    cap: usize,
}

/// Result of an attempt to send.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SendState {
    /// Everything went out.
    Done,
    /// Part is queued; wait for the target's tx socket to be writable, then call `flush`.
    Queued,
    /// Not sent: the target's queue is at its cap (`first`: the first refusal of this full
    /// episode, to log once).
    Refused { first: bool },
}

impl Outbox {
    pub fn new(from_region: usize, regions: usize, cap: usize) -> Outbox {
        Outbox {
            from_region: from_region as u16,
            seq: 0,
            queues: (0..regions).map(|_| VecDeque::new()).collect(),
            queued: vec![0; regions],
            refusing: vec![false; regions],
            cap,
        }
    }

    /// Bytes waiting for every target.
    pub fn total_queued(&self) -> usize {
        self.queued.iter().sum()
    }

    /// Bytes waiting for `target`.
    pub fn queued(&self, target: usize) -> usize {
        self.queued[target]
    }

    #[cfg(test)]
    pub fn has_pending(&self, target: usize) -> bool {
        !self.queues[target].is_empty()
    }

    /// Sends `body` to `target` through its tx socket, or queues what does not fit. The body
    /// is copied only when it has to wait (a full socket, or messages queued before it), so one
    /// encoded message can go to several targets without a copy each.
    /// A message is refused when others already wait for `target` and it would take the queue
    /// past the cap (so one message, whatever its size, can always be sent to an idle peer).
    pub fn send(&mut self, target: usize, tx: RawFd, body: &[u8]) -> io::Result<SendState> {
        self.send_fd(target, tx, body, None)
    }

    /// Whether a message of `len` bytes to `target` would be refused now.
    pub fn would_refuse(&self, target: usize, len: usize) -> bool {
        let waiting = self.queued[target];
        waiting > 0 && waiting + len > self.cap
    }

    /// Like [`send`](Outbox::send), with a descriptor passed along (`SCM_RIGHTS`) with the
    /// message's first chunk; our copy is closed once that chunk is written.
    pub fn send_fd(
        &mut self,
        target: usize,
        tx: RawFd,
        body: &[u8],
        fd: Option<OwnedFd>,
    ) -> io::Result<SendState> {
        let waiting = self.queued[target];
        if waiting > 0 && waiting + body.len() > self.cap {
            let first = !std::mem::replace(&mut self.refusing[target], true);
            return Ok(SendState::Refused { first });
        }
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut offset = 0;
        let mut fd = fd;
        if self.queues[target].is_empty() {
            let raw = fd.as_ref().map(|f| f.as_raw_fd());
            let res = write_chunks(tx, self.from_region, seq, body, &mut offset, raw);
            if offset > 0 {
                fd = None; // the first chunk, and the descriptor with it, went out
            }
            match res {
                Ok(true) => return Ok(SendState::Done),
                Ok(false) => {}
                Err(e) => return Err(io::Error::from(e)),
            }
        }
        self.queued[target] += body.len() - offset;
        self.queues[target].push_back(Pending {
            body: body.to_vec(),
            offset,
            seq,
            fd,
        });
        // If earlier messages wait, this writes them first (in order); a queue can never
        // stall waiting for an edge that already passed.
        self.flush(target, tx)
    }

    /// Writes queued chunks for `target` until done or the socket is full.
    pub fn flush(&mut self, target: usize, tx: RawFd) -> io::Result<SendState> {
        let from = self.from_region;
        while let Some(p) = self.queues[target].front_mut() {
            let before = p.offset;
            let raw = p.fd.as_ref().map(|f| f.as_raw_fd());
            let res = write_chunks(tx, from, p.seq, &p.body, &mut p.offset, raw);
            if p.offset > 0 {
                p.fd = None;
            }
            let (written, left) = (p.offset - before, p.body.len() - p.offset);
            self.queued[target] -= written;
            match res {
                Ok(true) => {}
                Ok(false) => return Ok(SendState::Queued),
                Err(e) => {
                    // The target is gone for good (should not happen: the master keeps both
                    // ends open). Drop the message rather than spin.
                    self.queued[target] -= left;
                    self.queues[target].pop_front();
                    return Err(io::Error::from(e));
                }
            }
            self.queues[target].pop_front();
        }
        // Drained: the next refusal starts a new episode.
        self.refusing[target] = false;
        Ok(SendState::Done)
    }
}

/// Writes `body` from `*offset` as chunks (header + up to `CHUNK` bytes each). `Ok(true)`
/// when all of it is written, `Ok(false)` when the socket is full (`*offset` says how far it
/// got).
fn write_chunks(
    tx: RawFd,
    from: u16,
    seq: u32,
    body: &[u8],
    offset: &mut usize,
    fd: Option<RawFd>,
) -> Result<bool, nix::errno::Errno> {
    loop {
        let end = (*offset + CHUNK).min(body.len());
        let mut h = [0u8; HEADER];
        h[0..2].copy_from_slice(&MAGIC.to_le_bytes());
        h[2..4].copy_from_slice(&from.to_le_bytes());
        h[4..8].copy_from_slice(&seq.to_le_bytes());
        h[8..12].copy_from_slice(&(body.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(*offset as u32).to_le_bytes());
        let iov = [io::IoSlice::new(&h), io::IoSlice::new(&body[*offset..end])];
        let flags =
            nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_NOSIGNAL;
        let fds: [RawFd; 1] = [fd.unwrap_or(-1)];
        let rights = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        let cmsgs: &[nix::sys::socket::ControlMessage] = match (fd, *offset) {
            (Some(_), 0) => &rights,
            _ => &[],
        };
        match nix::sys::socket::sendmsg::<()>(tx, &iov, cmsgs, flags, None) {
            Ok(_) => {
                *offset = end;
                if *offset >= body.len() {
                    return Ok(true);
                }
            }
            Err(nix::errno::Errno::EAGAIN) => return Ok(false),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A message being reassembled: its sequence number, the bytes so far, the descriptor its
/// first chunk carried.
type Partial = (u32, Vec<u8>, Option<OwnedFd>);

/// Incoming side: reassembles chunked messages per sender.
pub(crate) struct Inbox {
    buf: Vec<u8>,
    partial: Vec<Option<Partial>>,
}

impl Inbox {
    pub fn new(regions: usize) -> Inbox {
        Inbox {
            buf: vec![0; CHUNK + HEADER],
            partial: (0..regions).map(|_| None).collect(),
        }
    }

    /// Reads every datagram available on `rx` and hands each complete message body to `f`.
    /// Returns when the socket would block.
    #[cfg(test)]
    pub fn drain(&mut self, rx: RawFd, mut f: impl FnMut(&[u8])) -> io::Result<()> {
        self.drain_with_fds(rx, |b, _| f(b))
    }

    /// Like `drain`, with the descriptor a message carried (see `Outbox::send_fd`).
    pub fn drain_with_fds(
        &mut self,
        rx: RawFd,
        mut f: impl FnMut(&[u8], Option<OwnedFd>),
    ) -> io::Result<()> {
        loop {
            let (n, fd) = match recv_with_fd(rx, &mut self.buf) {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            };
            if n < HEADER || self.buf[0..2] != MAGIC.to_le_bytes() {
                log::warn!("ipc: dropped a malformed datagram of {n} bytes");
                continue;
            }
            let rd = |i: usize| {
                u32::from_le_bytes([
                    self.buf[i],
                    self.buf[i + 1],
                    self.buf[i + 2],
                    self.buf[i + 3],
                ])
            };
            let from = u16::from_le_bytes([self.buf[2], self.buf[3]]) as usize;
            let (seq, total, offset) = (rd(4), rd(8) as usize, rd(12) as usize);
            let chunk = &self.buf[HEADER..n];
            if offset == 0 && chunk.len() == total {
                f(chunk, fd);
                continue;
            }
            let Some(slot) = self.partial.get_mut(from) else {
                continue;
            };
            if offset == 0 {
                let mut v = Vec::with_capacity(total);
                v.extend_from_slice(chunk);
                *slot = Some((seq, v, fd));
            } else {
                match slot {
                    Some((s, v, _)) if *s == seq && v.len() == offset => v.extend_from_slice(chunk),
                    _ => {
                        // The beginning was lost (its writer or our predecessor died).
                        *slot = None;
                        continue;
                    }
                }
            }
            if let Some((_, v, _)) = slot {
                if v.len() >= total {
                    if let Some((_, body, fd)) = slot.take() {
                        f(&body, fd);
                    }
                }
            }
        }
    }
}

/// One datagram into `buf`, with the descriptor it carried. `Ok(None)`: would block.
fn recv_with_fd(rx: RawFd, buf: &mut [u8]) -> io::Result<Option<(usize, Option<OwnedFd>)>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    loop {
        let mut iov = [io::IoSliceMut::new(buf)];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
        match recvmsg::<()>(rx, &mut iov, Some(&mut cmsg), flags) {
            Ok(msg) => {
                let mut fd = None;
                for c in msg.cmsgs().into_iter().flatten() {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for raw in fds {
                            // SAFETY: the kernel just installed this descriptor for us; we
                            // own it (extra ones are closed by being dropped).
                            let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                            fd.get_or_insert(owned);
                        }
                    }
                }
                return Ok(Some((msg.bytes, fd)));
            }
            Err(nix::errno::Errno::EAGAIN) => return Ok(None),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_encoding() {
        let msgs = [
            Msg::Push {
                fd: 77,
                opcode: 1,
                flags: 1,
                data: b"hello",
            },
            Msg::Disconnect {
                fd: 9,
                code: 4000,
                reason: b"bye",
            },
            Msg::Broadcast {
                frame: b"\x81\x02hi",
                only: None,
            },
            Msg::Broadcast {
                frame: b"\x81\x02hi",
                only: Some(vec![1, 2, 3]),
            },
            Msg::Peer {
                channel: 7,
                from_worker: 3,
                data: b"",
            },
            Msg::Migrate {
                state: b"\x93\x01\x02\x03",
            },
            Msg::MigrateDone { from_region: 5 },
            Msg::Peer {
                channel: u16::MAX,
                from_worker: 1,
                data: b"layer bytes",
            },
        ];
        for m in msgs {
            let b = m.encode();
            assert_eq!(Msg::decode(&b), Some(m));
        }
    }

    #[test]
    fn malformed_bodies_decode_to_none() {
        assert_eq!(Msg::decode(&[]), None);
        assert_eq!(Msg::decode(&[K_PUSH, 1, 2]), None);
        assert_eq!(Msg::decode(&[99]), None);
        assert_eq!(Msg::decode(&[K_BROADCAST, 5, 0, 0, 0, 1]), None);
    }

    #[test]
    fn large_messages_arrive_whole_across_chunks() {
        let ch = Channel::new(1 << 20).unwrap();
        let mut out = Outbox::new(1, 2, usize::MAX);
        let mut inbox = Inbox::new(2);
        let big: Vec<u8> = (0..(3 * CHUNK + 17)).map(|i| (i % 251) as u8).collect();
        let mut got = Vec::new();
        let mut st = out.send(0, ch.tx.as_raw_fd(), &big).unwrap();
        if st == SendState::Queued {
            inbox
                .drain(ch.rx.as_raw_fd(), |b| got.push(b.to_vec()))
                .unwrap();
            st = out.flush(0, ch.tx.as_raw_fd()).unwrap();
        }
        assert!(matches!(st, SendState::Done));
        inbox
            .drain(ch.rx.as_raw_fd(), |b| got.push(b.to_vec()))
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0], big);
    }

    #[test]
    fn a_queue_toward_a_worker_that_does_not_read_is_bounded() {
        let ch = Channel::new(4096).unwrap();
        let cap = 64 * 1024;
        let mut out = Outbox::new(0, 2, cap);
        let tx = ch.tx.as_raw_fd();
        let msg = vec![7u8; 1000];
        let mut states = Vec::new();
        for _ in 0..200 {
            states.push(out.send(1, tx, &msg).unwrap());
        }
        assert!(out.queued(1) <= cap, "{} bytes queued", out.queued(1));
        let refused: Vec<_> = states
            .iter()
            .filter_map(|s| match s {
                SendState::Refused { first } => Some(*first),
                _ => None,
            })
            .collect();
        assert!(!refused.is_empty(), "the cap was reached");
        assert_eq!(
            refused.iter().filter(|f| **f).count(),
            1,
            "reported once per episode"
        );
        // Other targets are not affected.
        let other = Channel::new(1 << 20).unwrap();
        assert_eq!(
            out.send(0, other.tx.as_raw_fd(), &msg).unwrap(),
            SendState::Done
        );
        // The reader catches up: the queue drains and a new episode may be reported again.
        let mut inbox = Inbox::new(2);
        let mut n = 0;
        while out.queued(1) > 0 {
            inbox.drain(ch.rx.as_raw_fd(), |_| n += 1).unwrap();
            out.flush(1, tx).unwrap();
        }
        inbox.drain(ch.rx.as_raw_fd(), |_| n += 1).unwrap();
        assert_eq!(n, 200 - refused.len(), "everything accepted arrived");
        assert_eq!(out.send(1, tx, &msg).unwrap(), SendState::Done);
    }

    #[test]
    fn a_full_socket_queues_instead_of_blocking() {
        let ch = Channel::new(4096).unwrap();
        let mut out = Outbox::new(0, 1, usize::MAX);
        let mut queued = false;
        for _ in 0..10_000 {
            if let SendState::Queued = out.send(0, ch.tx.as_raw_fd(), &[7; 1000]).unwrap() {
                queued = true;
                break;
            }
        }
        assert!(queued, "send must report Queued when the socket is full");
        let mut inbox = Inbox::new(1);
        let mut n = 0;
        loop {
            inbox
                .drain(ch.rx.as_raw_fd(), |b| {
                    assert_eq!(b, &[7; 1000][..]);
                    n += 1;
                })
                .unwrap();
            if let SendState::Done = out.flush(0, ch.tx.as_raw_fd()).unwrap() {
                inbox.drain(ch.rx.as_raw_fd(), |_| n += 1).unwrap();
                break;
            }
        }
        assert!(n > 1);
        assert!(!out.has_pending(0));
    }

    #[test]
    fn chunks_without_a_beginning_are_dropped() {
        let ch = Channel::new(1 << 20).unwrap();
        // forge a middle chunk
        let mut d = vec![0u8; HEADER + 4];
        d[0..2].copy_from_slice(&MAGIC.to_le_bytes());
        d[8..12].copy_from_slice(&100u32.to_le_bytes());
        d[12..16].copy_from_slice(&50u32.to_le_bytes());
        nix::unistd::write(&ch.tx, &d).unwrap();
        nix::unistd::write(&ch.tx, b"junk").unwrap();
        let mut inbox = Inbox::new(1);
        let mut n = 0;
        inbox.drain(ch.rx.as_raw_fd(), |_| n += 1).unwrap();
        assert_eq!(n, 0);
    }
}
