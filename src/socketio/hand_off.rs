//! A Socket.IO client moving with its WebSocket to another worker (a rolling reload or a
//! binary upgrade): its sockets with their sids, namespaces, rooms, auth payloads and private
//! recovery ids go along and are indexed again there; no `disconnect` runs here and no
//! `connect` there. Not carried: acknowledgements this worker waits for (their callbacks are
//! closures here: they get `AckError::Disconnected`; the client's late answer reaches the new
//! worker, which ignores an ack it does not know), a binary packet half received, and a
//! CONNECT still deciding (those clients are closed with 1001 and reconnect).

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::acks::AckError;
use super::deliver::room;
use super::io::Io;
use super::server::SocketIo;
use super::state::{AckWait, Client, SocketState};
use super::Version;
use crate::engineio::{Engine, SessionKey};
use crate::runtime::table::Fd;
use crate::runtime::StoredRequest;

#[derive(Serialize, Deserialize)]
struct MovedClient {
    v5: bool,
    origin_fd: Fd,
    max_payload: usize,
    request: StoredRequest,
    sockets: Vec<MovedSocket>,
}

#[derive(Serialize, Deserialize)]
struct MovedSocket {
    nsp: String,
    sid: String,
    rooms: Vec<String>,
    auth: Json,
    pid: Option<String>,
    recovered: bool,
    connected_at: u64,
}

impl SocketIo {
    /// The client of `session`, encoded, and forgotten here; `None` when it cannot move now.
    pub(crate) fn hand_off_client(
        &self,
        engine: Engine<'_, Self>,
        session: SessionKey,
    ) -> Option<Vec<u8>> {
        let moved = self.snapshot_client(session)?;
        let bytes = rmp_serde::to_vec(&moved).ok()?;
        let client = self.state.borrow_mut().clients.remove(&session)?;
        let io = Io::new(engine);
        for (_, key) in client.sockets {
            let Some(s) = self.drop_socket(key) else {
                continue;
            };
            for wait in s.acks.into_iter().flat_map(|m| m.into_values()) {
                if let AckWait::Local(done) = wait {
                    done(&io, Err(AckError::Disconnected));
                }
            }
        }
        Some(bytes)
    }

    fn snapshot_client(&self, session: SessionKey) -> Option<MovedClient> {
        let state = self.state.borrow();
        let c = state.clients.get(&session)?;
        if c.pending.is_some() || c.pending_connects > 0 {
            return None;
        }
        let mut sockets = Vec::new();
        for &(_, key) in &c.sockets {
            let s = state.sockets.get(key as usize)?;
            if !s.connected {
                return None; // its middleware is still deciding
            }
            sockets.push(MovedSocket {
                nsp: state.nsps.get(s.nsp as usize)?.name.to_string(),
                sid: s.sid.to_string(),
                rooms: s.rooms.iter().map(|r| r.to_string()).collect(),
                auth: s.auth.clone(),
                pid: s.pid.as_deref().map(String::from),
                recovered: s.recovered,
                connected_at: s.connected_at,
            });
        }
        Some(MovedClient {
            v5: c.version == Version::V5,
            origin_fd: c.origin_fd,
            max_payload: c.max_payload,
            request: c.request.clone(),
            sockets,
        })
    }

    /// A client handed over by the worker this one replaces: indexed as it was there.
    pub(crate) fn adopt_client(&self, engine: Engine<'_, Self>, session: SessionKey, bytes: &[u8]) {
        let Ok(m) = rmp_serde::from_slice::<MovedClient>(bytes) else {
            log::warn!("socket.io: a handed-over client does not decode; closing it");
            engine.close(session, crate::engineio::DisconnectReason::ParseError);
            return;
        };
        let client = Client {
            version: if m.v5 { Version::V5 } else { Version::V4 },
            origin_fd: m.origin_fd,
            fd: engine.conn(session).map(|c| c.fd),
            pending: None,
            max_payload: m.max_payload,
            sockets: Vec::new(),
            request: m.request,
            pending_connects: 0,
        };
        self.state.borrow_mut().clients.insert(session, client);
        for s in m.sockets {
            if !self.restore_socket(session, s) {
                log::warn!("socket.io: a handed-over socket's namespace is unknown here; dropped");
            }
        }
    }

    fn restore_socket(&self, session: SessionKey, m: MovedSocket) -> bool {
        let Some(def) = self.registry.find(&m.nsp) else {
            return false;
        };
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        let Some((fd, version)) = state.clients.get(&session).map(|c| (c.fd, c.version)) else {
            return false;
        };
        let Some(nsp) = state.nsp_or_insert(&m.nsp, || Some(def)) else {
            return false;
        };
        let sid: Rc<str> = Rc::from(m.sid);
        let rooms: Vec<Rc<str>> = m.rooms.iter().map(|r| room(r)).collect();
        let key = state.sockets.insert(SocketState {
            sid: sid.clone(),
            nsp,
            client: session,
            fd,
            version,
            rooms: rooms.clone(),
            acks: None,
            auth: m.auth,
            pid: m.pid.map(Rc::from),
            connected: true,
            recovered: m.recovered,
            connected_at: m.connected_at,
        }) as u32;
        let ns = &mut state.nsps[nsp as usize];
        ns.sids.insert(sid, key);
        for r in &rooms {
            ns.join(key, r);
        }
        if let Some(c) = state.clients.get_mut(&session) {
            c.sockets.push((nsp, key));
        }
        true
    }
}
