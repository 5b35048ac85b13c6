//! An Engine.IO session over WebSocket moving with its connection in a reload or a binary
//! upgrade: the sid, version and endpoint travel, the heartbeat starts again in the new
//! worker (a ping a little later than it would have come, nothing the client notices), and
//! the application's state (`EngineHandler::on_hand_off` / `on_adopt`) goes along. Polling
//! sessions do not move (their requests are held or come and go on other connections).

use serde::{Deserialize, Serialize};

use super::config::Endpoint;
use super::session::Transport;
use super::{EngineCtx, EngineHandler, EngineIo};
use crate::engineio::Version;
use crate::runtime::{ConnId, HandOff};

#[derive(Serialize, Deserialize)]
struct MovedSession {
    sid: String,
    v4: bool,
    echo: bool,
    app: Option<serde_bytes::ByteBuf>,
}

impl<E: EngineHandler> EngineIo<E> {
    pub(super) fn hand_off_session(&self, cx: &EngineCtx<E>, conn: ConnId) -> HandOff {
        let Some(key) = self.sessions.borrow().of_conn(conn) else {
            return HandOff::Move(None);
        };
        let Some((sid, version, endpoint)) = self
            .with_session(key, |s| {
                let movable = s.ws() == Some(conn) && s.closing.is_none();
                movable.then(|| (s.sid.to_string(), s.version, s.endpoint))
            })
            .flatten()
        else {
            return HandOff::Close;
        };
        let app = match endpoint {
            Endpoint::Handler => match self.handler.on_hand_off(self.engine(cx), key) {
                Some(state) => Some(serde_bytes::ByteBuf::from(state)),
                None => return HandOff::Close,
            },
            Endpoint::Echo => None,
        };
        // Gone from here without a close (its deadline entries die with its generation).
        drop(self.sessions.borrow_mut().remove(key));
        let moved = MovedSession {
            sid,
            v4: version == Version::V4,
            echo: endpoint == Endpoint::Echo,
            app,
        };
        match rmp_serde::to_vec(&moved) {
            Ok(b) => HandOff::Move(Some(b)),
            Err(_) => HandOff::Close,
        }
    }

    pub(super) fn adopt_session(&self, cx: &EngineCtx<E>, conn: ConnId, state: Option<&[u8]>) {
        let Some(bytes) = state else { return };
        let Ok(m) = rmp_serde::from_slice::<MovedSession>(bytes) else {
            log::warn!(
                "engine.io: fd {}: a handed-over session does not decode; closing",
                conn.fd
            );
            cx.close(conn.fd);
            return;
        };
        let version = if m.v4 { Version::V4 } else { Version::V3 };
        let endpoint = if m.echo {
            Endpoint::Echo
        } else {
            Endpoint::Handler
        };
        let key = self.new_session(
            cx,
            m.sid.into_boxed_str(),
            Transport::WebSocket(conn),
            version,
            endpoint,
        );
        self.arm(cx);
        if let (Endpoint::Handler, Some(app)) = (endpoint, &m.app) {
            self.handler.on_adopt(self.engine(cx), key, app);
        }
    }
}
