//! Sockets coming and going: CONNECT to a namespace (middleware, the answer per protocol
//! version, the automatic `connect` event), joining and leaving rooms, and the end of a
//! socket (its rooms, its pending acknowledgements, the automatic `disconnect` event).

use std::rc::Rc;

use serde_json::Value as Json;

use super::acks::AckError;
use super::deliver::{room, send_to};
use super::io::Io;
use super::namespace::{ConnectError, Namespace};
use super::packet::{Packet, PacketKind};
use super::server::SocketIo;
use super::socket::Socket;
use super::state::{AckWait, Dest, SocketState};
use super::Version;
use crate::engineio::SessionKey;

impl SocketIo {
    /// A client's CONNECT to `nsp` (a v4 client may append `?query`).
    pub(crate) fn connect(&self, io: &Io<'_>, session: SessionKey, nsp: &str, auth: Json) {
        let path = nsp.split_once('?').map_or(nsp, |(p, _)| p);
        let Some((dest, origin_fd, joined)) = self.state.borrow().clients.get(&session).map(|c| {
            let joined = c
                .sockets
                .iter()
                .any(|&(n, _)| self.state_nsp_name(n).as_deref() == Some(path));
            let dest = Dest {
                session,
                fd: c.fd,
                version: c.version,
            };
            (dest, c.origin_fd, joined)
        }) else {
            return;
        };
        if joined {
            // As Node: a second CONNECT to a namespace ends the connection.
            log::info!(
                "socket.io: session {}: second CONNECT to {path}; closing",
                session.0
            );
            io.engine
                .close(session, crate::engineio::DisconnectReason::ForcedClose);
            return;
        }
        let Some(def) = self.registry.find(path) else {
            log::debug!(
                "socket.io: session {}: CONNECT to unknown namespace {path}",
                session.0
            );
            // Node 4 sends v2 clients the v5 object too (socket.io-client 2.x reads either).
            let refusal = Packet::connect_error(Version::V5, path, "Invalid namespace");
            self.send_packet(io, dest, &refusal);
            return;
        };
        if self.try_restore(io, session, path, &auth) {
            return;
        }
        // socket.io 2.x takes the engine's sid as the socket id of `/`, and names a socket
        // of namespace /x `/x#<engine sid>`.
        let sid = match (dest.version, io.engine.sid(session)) {
            (Version::V4, Some(engine_sid)) if path == "/" => Rc::from(engine_sid),
            (Version::V4, Some(engine_sid)) => Rc::from(format!("{path}#{engine_sid}")),
            _ => self.sid_for(origin_fd),
        };
        let Some(key) = self.add_socket(session, path, def.clone(), sid.clone(), auth) else {
            return;
        };
        let socket = self.socket(io, key, &sid, path);
        if let Err(e) = def.middleware.iter().try_for_each(|m| m(&socket)) {
            self.refuse(io, key, dest, path, e);
            return;
        }
        let pid = if dest.version == Version::V5 {
            self.new_pid(io)
        } else {
            None
        };
        self.finish_connect(io, key, pid);
    }

    fn state_nsp_name(&self, n: u16) -> Option<Rc<str>> {
        self.state
            .borrow()
            .nsps
            .get(n as usize)
            .map(|ns| ns.name.clone())
    }

    /// A socket of `session` in `path`, not yet connected (middleware still to run).
    pub(crate) fn add_socket(
        &self,
        session: SessionKey,
        path: &str,
        def: Rc<Namespace>,
        sid: Rc<str>,
        auth: Json,
    ) -> Option<u32> {
        let mut state = self.state.borrow_mut();
        let (fd, version) = state.clients.get(&session).map(|c| (c.fd, c.version))?;
        let nsp = state.nsp_or_insert(path, || Some(def))?;
        let key = state.sockets.insert(SocketState {
            sid,
            nsp,
            client: session,
            fd,
            version,
            rooms: Vec::new(),
            acks: None,
            auth,
            pid: None,
            connected: false,
            recovered: false,
            connected_at: 0,
        }) as u32;
        if let Some(c) = state.clients.get_mut(&session) {
            c.sockets.push((nsp, key));
        }
        Some(key)
    }

    fn refuse(&self, io: &Io<'_>, key: u32, dest: Dest, path: &str, e: ConnectError) {
        log::debug!(
            "socket.io: {path} middleware refused session {}: {}",
            dest.session.0,
            e.message
        );
        let mut p = Packet::connect_error(Version::V5, path, &e.message);
        if let (Some(data), Some(Json::Object(o))) = (e.data, p.data.as_mut()) {
            o.insert("data".into(), data);
        }
        self.send_packet(io, dest, &p);
        self.drop_socket(key);
    }

    /// The socket is accepted: in its namespace's sid map, answered, and announced.
    pub(crate) fn finish_connect(&self, io: &Io<'_>, key: u32, pid: Option<Rc<str>>) {
        let now = io.cx().now_ms();
        let Some((dest, sid, nsp_name, def)) = ({
            let mut state = self.state.borrow_mut();
            let state = &mut *state;
            state.sockets.get_mut(key as usize).map(|s| {
                s.connected = true;
                s.connected_at = now;
                s.pid = pid.clone();
                let ns = &mut state.nsps[s.nsp as usize];
                ns.sids.insert(s.sid.clone(), key);
                (s.dest(), s.sid.clone(), ns.name.clone(), ns.def.clone())
            })
        }) else {
            return;
        };
        let mut ack = Packet::connect_ack(dest.version, &nsp_name, &sid);
        if let (Some(pid), Some(Json::Object(o))) = (&pid, ack.data.as_mut()) {
            o.insert("pid".into(), Json::String(pid.to_string()));
        }
        self.send_packet(io, dest, &ack);
        let socket = self.socket(io, key, &sid, &nsp_name);
        for f in &def.connect {
            f(&socket);
        }
    }

    pub(crate) fn socket<'a>(&self, io: &Io<'a>, key: u32, sid: &Rc<str>, nsp: &str) -> Socket<'a> {
        Socket {
            io: *io,
            key,
            sid: sid.clone(),
            nsp: Rc::from(nsp),
            flags: 0,
        }
    }

    /// Sends one packet (no attachments) to a client.
    pub(crate) fn send_packet(&self, io: &Io<'_>, dest: Dest, p: &Packet) -> bool {
        let packet = super::cluster::Encoded {
            text: p.encode(),
            blobs: Vec::new(),
        };
        send_to(io, dest, &packet, true)
    }

    /// Removes a socket from every index; returns it.
    pub(crate) fn drop_socket(&self, key: u32) -> Option<SocketState> {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        let s = state.sockets.try_remove(key as usize)?;
        if let Some(ns) = state.nsps.get_mut(s.nsp as usize) {
            if ns.sids.get(&s.sid) == Some(&key) {
                ns.sids.remove(&s.sid);
            }
            for r in &s.rooms {
                ns.leave(key, r);
            }
        }
        if let Some(c) = state.clients.get_mut(&s.client) {
            c.sockets.retain(|&(_, k)| k != key);
        }
        Some(s)
    }

    /// A socket ends with `reason` (Node's strings): its waits fail, the `disconnect`
    /// handlers run, and a recoverable session is kept.
    pub(crate) fn remove_socket(&self, io: &Io<'_>, key: u32, reason: &str) {
        let Some(s) = self.drop_socket(key) else {
            return;
        };
        let (nsp_name, def) = {
            let state = self.state.borrow();
            let ns = &state.nsps[s.nsp as usize];
            (ns.name.clone(), ns.def.clone())
        };
        if s.connected {
            self.persist(io, &s, &nsp_name, reason);
        }
        for wait in s.acks.into_iter().flat_map(|m| m.into_values()) {
            if let AckWait::Local(done) = wait {
                done(io, Err(AckError::Disconnected));
            }
        }
        if s.connected {
            let socket = self.socket(io, key, &s.sid, &nsp_name);
            for f in &def.disconnect {
                f(&socket, reason);
            }
        }
    }

    /// `socket.disconnect()`: a DISCONNECT packet, then the socket ends.
    pub(crate) fn server_disconnect(&self, io: &Io<'_>, key: u32, sid: &str) {
        let Some((dest, nsp)) = self.live(key, sid) else {
            return;
        };
        self.send_packet(io, dest, &Packet::new(PacketKind::Disconnect, &*nsp));
        self.remove_socket(io, key, "server namespace disconnect");
    }

    /// The fd and namespace name of socket `key` if it still has `sid`.
    fn live(&self, key: u32, sid: &str) -> Option<(Dest, Rc<str>)> {
        let state = self.state.borrow();
        let s = state.sockets.get(key as usize).filter(|s| &*s.sid == sid)?;
        Some((s.dest(), state.nsps[s.nsp as usize].name.clone()))
    }

    pub(crate) fn join_socket(&self, key: u32, sid: &str, r: &str) {
        if !self.adapter.keeps_rooms() {
            return;
        }
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        let Some(s) = state
            .sockets
            .get_mut(key as usize)
            .filter(|s| &*s.sid == sid)
        else {
            return;
        };
        let r = room(r);
        if state.nsps[s.nsp as usize].join(key, &r) {
            s.rooms.push(r);
        }
    }

    pub(crate) fn leave_socket(&self, key: u32, sid: &str, r: &str) {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        let Some(s) = state
            .sockets
            .get_mut(key as usize)
            .filter(|s| &*s.sid == sid)
        else {
            return;
        };
        if state.nsps[s.nsp as usize].leave(key, r) {
            s.rooms.retain(|x| &**x != r);
        }
    }

    /// A wait of socket `key` ends without an answer.
    pub(crate) fn fail_ack(&self, io: &Io<'_>, key: u32, sid: &str, id: u64, e: AckError) {
        let wait = {
            let mut state = self.state.borrow_mut();
            state
                .sockets
                .get_mut(key as usize)
                .filter(|s| &*s.sid == sid)
                .and_then(|s| s.acks.as_mut()?.remove(&id))
        };
        if let Some(AckWait::Local(done)) = wait {
            done(io, Err(e));
        }
    }
}
