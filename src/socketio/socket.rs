//! A socket as event handlers see it (Hyperf's `Socket`, Node's `Socket`): emit to it, make
//! it join and leave rooms, speak in rooms as it, read its handshake, disconnect it.

use std::rc::Rc;

use serde_json::Value as Json;

use super::acks::AckError;
use super::args::{Args, IntoArgs};
use super::cluster::{LOCAL, NO_COMPRESS, VOLATILE};
use super::deliver::{encode_event, send_to};
use super::io::{Io, Operator};
use super::state::AckWait;
use crate::engineio::DisconnectReason;
use crate::runtime::Request;

/// One client in one namespace.
#[derive(Clone)]
pub struct Socket<'a> {
    pub(crate) io: Io<'a>,
    pub(crate) key: u32,
    pub(crate) sid: Rc<str>,
    pub(crate) nsp: Rc<str>,
    pub(crate) flags: u8,
}

impl<'a> Socket<'a> {
    /// The socket id (`ServerID#FD` by default); also the name of a room it is always in.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The namespace.
    pub fn nsp(&self) -> &str {
        &self.nsp
    }

    /// The global API.
    pub fn io(&self) -> Io<'a> {
        self.io
    }

    fn with<T>(&self, f: impl FnOnce(&super::state::SocketState) -> T) -> Option<T> {
        let state = self.io.sio().state.borrow();
        state
            .sockets
            .get(self.key as usize)
            .filter(|s| s.sid == self.sid)
            .map(f)
    }

    /// The Socket.IO protocol the client speaks (`V4`: socket.io-client 2.x).
    pub fn protocol(&self) -> Option<super::Version> {
        self.with(|s| s.version)
    }

    /// Whether the socket is still connected.
    pub fn connected(&self) -> bool {
        self.with(|s| s.connected).unwrap_or(false)
    }

    /// The original handshake request: headers, cookies, query, remote address (seed 002's
    /// "original request object").
    pub fn request(&self) -> Option<Request> {
        let session = self.with(|s| s.client)?;
        let state = self.io.sio().state.borrow();
        state.clients.get(&session)?.request.request()
    }

    /// The CONNECT's auth payload (`auth` option of socket.io-client 3+; `Null` for 2.x).
    pub fn auth(&self) -> Json {
        self.with(|s| s.auth.clone()).unwrap_or(Json::Null)
    }

    /// Whether connection state recovery restored this socket (Node's `socket.recovered`).
    pub fn recovered(&self) -> bool {
        self.with(|s| s.recovered).unwrap_or(false)
    }

    /// The rooms the socket is in, its own sid room first.
    pub fn rooms(&self) -> Vec<String> {
        let mut v = vec![self.sid.to_string()];
        v.extend(
            self.with(|s| s.rooms.iter().map(|r| r.to_string()).collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        v
    }

    /// Sends `event` to this client; `false` if it is gone.
    pub fn emit(&self, event: &str, args: impl IntoArgs) -> bool {
        let Some(dest) = self.with(|s| s.dest()) else {
            return false;
        };
        let volatile = self.flags & VOLATILE != 0;
        if volatile
            && dest
                .fd
                .is_some_and(|fd| super::deliver::backed_up(&self.io, fd))
        {
            return false; // volatile: dropped for a client that is not keeping up (as Node)
        }
        let sio = self.io.sio();
        let mut args = args.into_args();
        let target = self.own_target();
        let offset = if self.flags & VOLATILE == 0 {
            sio.recovery_offset(&self.io, &target, &mut args)
        } else {
            None
        };
        let packet = encode_event(&self.nsp, event, args, None);
        if let Some(offset) = &offset {
            sio.remember(&self.io, &target, &packet, offset);
        }
        send_to(&self.io, dest, &packet, self.flags & NO_COMPRESS == 0)
    }

    fn own_target(&self) -> super::cluster::Target {
        super::cluster::Target {
            nsp: self.nsp.clone(),
            rooms: vec![self.sid.clone()],
            except: Vec::new(),
            flags: self.flags,
        }
    }

    /// Sends `event` asking for an acknowledgement; `done` gets the client's answer, or
    /// [`AckError::Timeout`] after `timeout_ms` (default `client_callback_timeout`), or
    /// [`AckError::Disconnected`].
    pub fn emit_with_ack(
        &self,
        event: &str,
        args: impl IntoArgs,
        timeout_ms: Option<u64>,
        done: impl FnOnce(&Io<'_>, Result<Args, AckError>) + 'static,
    ) {
        let sio = self.io.sio();
        let id = sio.new_id(&self.io);
        let registered = {
            let mut state = sio.state.borrow_mut();
            match state
                .sockets
                .get_mut(self.key as usize)
                .filter(|s| s.sid == self.sid)
            {
                Some(s) => {
                    s.acks
                        .get_or_insert_with(Default::default)
                        .insert(id, AckWait::Local(Box::new(done)));
                    Some(s.dest())
                }
                None => None,
            }
        };
        let Some(dest) = registered else {
            return;
        };
        let packet = encode_event(&self.nsp, event, args, Some(id));
        send_to(&self.io, dest, &packet, self.flags & NO_COMPRESS == 0);
        let wait = timeout_ms.unwrap_or(sio.config.client_callback_timeout);
        let (key, sid) = (self.key, self.sid.clone());
        self.io.after(wait, move |io| {
            io.sio().fail_ack(io, key, &sid, id, AckError::Timeout)
        });
    }

    /// Joins `room`.
    pub fn join(&self, room: &str) {
        self.io.sio().join_socket(self.key, &self.sid, room);
    }

    /// Leaves `room`.
    pub fn leave(&self, room: &str) {
        self.io.sio().leave_socket(self.key, &self.sid, room);
    }

    /// Everyone in `room` but this socket (Hyperf's and Node's `to`).
    pub fn to(&self, room: &str) -> Operator<'a> {
        self.broadcast().to(room)
    }

    /// Everyone in `room`, this socket included (Hyperf's global `in`; in Node `socket.in`
    /// is `to`).
    pub fn in_(&self, room: &str) -> Operator<'a> {
        self.io.of(&self.nsp).to(room)
    }

    /// Everyone in the namespace but this socket.
    pub fn broadcast(&self) -> Operator<'a> {
        let mut op = self.io.of(&self.nsp).except(&self.sid);
        op.target.flags |= self.flags & (LOCAL | VOLATILE | NO_COMPRESS);
        op
    }

    /// Everyone in the namespace but this socket and those in `room`.
    pub fn except(&self, room: &str) -> Operator<'a> {
        self.broadcast().except(room)
    }

    /// This worker only, for the broadcasts made from here.
    pub fn local(mut self) -> Self {
        self.flags |= LOCAL;
        self
    }

    /// The next emits may be lost (not kept for recovery).
    pub fn volatile(mut self) -> Self {
        self.flags |= VOLATILE;
        self
    }

    /// `compress(false)`: send uncompressed.
    pub fn compress(mut self, on: bool) -> Self {
        if on {
            self.flags &= !NO_COMPRESS;
        } else {
            self.flags |= NO_COMPRESS;
        }
        self
    }

    /// Disconnects the socket from its namespace (`DISCONNECT` packet, reason `server
    /// namespace disconnect`); with `close`, closes the whole connection too.
    pub fn disconnect(&self, close: bool) {
        let sio = self.io.sio();
        let Some(session) = self.with(|s| s.client) else {
            return;
        };
        sio.server_disconnect(&self.io, self.key, &self.sid);
        if close {
            let others: Vec<u32> = sio
                .state
                .borrow()
                .clients
                .get(&session)
                .map(|c| c.sockets.iter().map(|&(_, k)| k).collect())
                .unwrap_or_default();
            for k in others {
                let sid = sio
                    .state
                    .borrow()
                    .sockets
                    .get(k as usize)
                    .map(|s| s.sid.clone());
                if let Some(sid) = sid {
                    sio.server_disconnect(&self.io, k, &sid);
                }
            }
            self.io.engine.close(session, DisconnectReason::ForcedClose);
        }
    }
}
