//! The heartbeat of each protocol version (as Node's engine.io runs it):
//! - v4: the server pings `pingInterval` after the session opened or the last pong, and
//!   closes the session when the pong is not back within `pingTimeout`;
//! - v3: the client pings, the server answers pong, and closes the session when no ping came
//!   for `pingInterval + pingTimeout`.

use super::deadlines::{DeadlineQueue, Due};
use super::handler::DisconnectReason;
use super::session::Beat;
use super::{Beats, EngineCtx, EngineHandler, EngineIo, SessionKey};
use crate::engineio::{Packet, PacketType, Version};

impl Beats {
    pub(super) fn queue(&mut self, i: usize) -> &mut DeadlineQueue {
        match i {
            0 => &mut self.ping,
            1 => &mut self.pong,
            _ => &mut self.client_ping,
        }
    }

    fn next_at(&self) -> Option<u64> {
        [&self.ping, &self.pong, &self.client_ping]
            .iter()
            .filter_map(|q| q.next_at())
            .min()
    }
}

/// What a due entry asks for.
enum Action {
    Ping(SessionKey),
    TimedOut(SessionKey),
}

impl<E: EngineHandler> EngineIo<E> {
    /// Makes sure the heartbeat timer fires by the earliest deadline.
    pub(super) fn arm(&self, cx: &EngineCtx<E>) {
        let Some(next) = self.beats.borrow().next_at() else {
            return;
        };
        if let Some((at, id)) = self.armed.get() {
            if at <= next {
                return;
            }
            cx.clear_timer(id);
        }
        let delay = next.saturating_sub(cx.now_ms());
        let id = cx.after(delay, |io, cx| {
            io.armed.set(None);
            io.run_beats(cx);
        });
        self.armed.set(Some((next, id)));
    }

    /// Applies every deadline that is due, then re-arms.
    fn run_beats(&self, cx: &EngineCtx<E>) {
        let now = cx.now_ms();
        let mut actions = Vec::new();
        {
            let mut beats = self.beats.borrow_mut();
            let mut sessions = self.sessions.borrow_mut();
            for q in 0..3 {
                while let Some(Due { at, key, gen }) = beats.queue(q).pop_due(now) {
                    let Some(s) = sessions.live_mut(key, gen) else {
                        continue;
                    };
                    if s.beat_at != at || s.closing.is_some() {
                        continue; // the session's heartbeat moved on since
                    }
                    match (q, s.beat) {
                        (0, Beat::PingAt) => {
                            s.beat = Beat::PongBy;
                            s.beat_at = beats.pong.push(now, key, gen);
                            actions.push(Action::Ping(SessionKey(key)));
                        }
                        (1, Beat::PongBy) | (2, Beat::ClientPingBy) => {
                            actions.push(Action::TimedOut(SessionKey(key)))
                        }
                        _ => {}
                    }
                }
            }
        }
        for a in actions {
            match a {
                Action::Ping(key) => {
                    self.deliver(cx, key, Packet::text(PacketType::Ping, ""));
                }
                Action::TimedOut(key) => {
                    log::debug!("engine.io session {} missed its heartbeat", key.0);
                    self.close(cx, key, DisconnectReason::PingTimeout);
                }
            }
        }
        self.arm(cx);
    }

    /// A ping from the client: v3 answers pong (with the same data, e.g. `probe`) and moves
    /// the deadline; v4 clients never ping (an error, as in engine.io).
    pub(super) fn on_client_ping(&self, cx: &EngineCtx<E>, key: SessionKey, data: &str) {
        let now = cx.now_ms();
        let found = {
            let mut sessions = self.sessions.borrow_mut();
            let mut beats = self.beats.borrow_mut();
            sessions.get_mut(key).map(|s| {
                if s.version == Version::V3 {
                    s.beat_at = beats.client_ping.push(now, key.0, s.gen);
                }
                s.version
            })
        };
        match found {
            Some(Version::V3) => {
                self.deliver(cx, key, Packet::text(PacketType::Pong, data));
                self.arm(cx);
            }
            Some(Version::V4) => {
                log::debug!("engine.io v4 session {}: ping from the client", key.0);
                self.close(cx, key, DisconnectReason::TransportError);
            }
            None => {}
        }
    }

    /// A pong from the client: v4 schedules the next ping `pingInterval` from now; v3 clients
    /// never pong (an error, as in engine.io).
    pub(super) fn on_client_pong(&self, cx: &EngineCtx<E>, key: SessionKey) {
        let now = cx.now_ms();
        let version = {
            let mut sessions = self.sessions.borrow_mut();
            let mut beats = self.beats.borrow_mut();
            sessions.get_mut(key).map(|s| {
                if s.version == Version::V4 && s.beat == Beat::PongBy {
                    s.beat = Beat::PingAt;
                    s.beat_at = beats.ping.push(now, key.0, s.gen);
                }
                s.version
            })
        };
        match version {
            Some(Version::V4) => self.arm(cx),
            Some(Version::V3) => {
                log::debug!("engine.io v3 session {}: pong from the client", key.0);
                self.close(cx, key, DisconnectReason::TransportError);
            }
            None => {}
        }
    }
}
