//! A raw Socket.IO client for the integration tests: Engine.IO frames over tungstenite, so
//! every byte the server sends can be checked.

use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::Message;

use super::{ws_connect_with, Ws};

pub struct Sio {
    pub ws: Ws,
    /// The Engine.IO version (3 or 4).
    pub eio: u8,
    /// The OPEN packet's JSON.
    pub open: Value,
    /// The CONNECT answer's JSON for `/` (v5), or `Null`.
    pub connect: Value,
    /// Text frames read while waiting for something else.
    pub backlog: Vec<String>,
    next_id: u64,
}

/// A WebSocket to the engine with `query` (e.g. `EIO=4&transport=websocket`).
pub fn engine(port: u16, query: &str) -> Result<Ws, String> {
    ws_connect_with(port, &format!("/socket.io/?{query}"), &[]).map(|(ws, _)| ws)
}

impl Sio {
    /// Opens the engine session (no namespace yet for v4; v3 is in `/` at once).
    pub fn open(port: u16, eio: u8) -> Sio {
        let ws = engine(port, &format!("EIO={eio}&transport=websocket")).expect("engine handshake");
        let mut s = Sio {
            ws,
            eio,
            open: Value::Null,
            connect: Value::Null,
            backlog: Vec::new(),
            next_id: 1,
        };
        let open = s.frame();
        assert!(open.starts_with('0'), "OPEN packet expected, got {open:?}");
        s.open = serde_json::from_str(&open[1..]).expect("OPEN json");
        if eio == 3 {
            let c = s.frame();
            assert_eq!(c, "40", "socket.io 2.x is connected to / at once");
        }
        s
    }

    /// A v5 client connected to `/` (`auth` in its CONNECT).
    pub fn connect(port: u16, auth: Option<Value>) -> Sio {
        let mut s = Sio::open(port, 4);
        let p = match auth {
            Some(a) => format!("40{a}"),
            None => "40".into(),
        };
        s.send(&p);
        let c = s.wait(|f| f.starts_with("40") || f.starts_with("44"));
        assert!(c.starts_with("40{"), "CONNECT answer expected, got {c:?}");
        s.connect = serde_json::from_str(&c[2..]).expect("CONNECT json");
        s
    }

    pub fn sid(&self) -> String {
        self.connect["sid"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| self.open["sid"].as_str().unwrap_or_default().to_string())
    }

    pub fn send(&mut self, t: &str) {
        self.ws.send(Message::text(t)).expect("send");
    }

    pub fn send_binary(&mut self, b: &[u8]) {
        self.ws.send(Message::binary(b.to_vec())).expect("send");
    }

    /// The next frame (text, or binary as `<bin:hex>`), answering v4 pings.
    pub fn frame(&mut self) -> String {
        loop {
            match self.ws.read().expect("read") {
                Message::Text(t) if self.eio == 4 && t.as_str() == "2" => self.send("3"),
                Message::Text(t) => return t.to_string(),
                Message::Binary(b) => return format!("<bin:{}>", hex(&b)),
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    }

    /// The first frame (from the backlog, then the wire) that matches; others go to the
    /// backlog.
    pub fn wait(&mut self, pred: impl Fn(&str) -> bool) -> String {
        if let Some(i) = self.backlog.iter().position(|f| pred(f)) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(
                Instant::now() < deadline,
                "no matching frame; backlog {:?}",
                self.backlog
            );
            let f = self.frame();
            if pred(&f) {
                return f;
            }
            self.backlog.push(f);
        }
    }

    /// Emits `event` with JSON `args` on `/` asking for an ack; returns the ack's arguments.
    pub fn call(&mut self, event: &str, args: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut items = vec![Value::String(event.into())];
        items.extend(args.as_array().cloned().unwrap_or_default());
        self.send(&format!("42{id}{}", Value::Array(items)));
        let prefix = format!("43{id}[");
        let f = self.wait(|f| f.starts_with(&prefix));
        serde_json::from_str(&f[prefix.len() - 1..]).expect("ack json")
    }

    /// The next EVENT `event` on `/`: its arguments.
    pub fn event(&mut self, event: &str) -> Value {
        let head = format!("42[\"{event}\"");
        let f = self.wait(|f| f.starts_with(&head));
        let v: Value = serde_json::from_str(&f[2..]).expect("event json");
        Value::Array(v.as_array().map(|a| a[1..].to_vec()).unwrap_or_default())
    }

    /// Whether an EVENT `event` arrives within `ms` (anything else goes to the backlog).
    pub fn gets_event_within(&mut self, event: &str, ms: u64) -> bool {
        let head = format!("42[\"{event}\"");
        if self.backlog.iter().any(|f| f.starts_with(&head)) {
            return true;
        }
        let _ = self
            .ws
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(ms)));
        let got = loop {
            match self.ws.read() {
                Ok(Message::Text(t)) if t.as_str() == "2" => self.send("3"),
                Ok(Message::Text(t)) if t.starts_with(&head) => break true,
                Ok(Message::Text(t)) => self.backlog.push(t.to_string()),
                Ok(_) => {}
                Err(_) => break false,
            }
        };
        let _ = self
            .ws
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)));
        got
    }

    /// Reads until the connection ends; returns the close code if a close frame came.
    pub fn closed(&mut self) -> Option<u16> {
        loop {
            match self.ws.read() {
                Ok(Message::Close(c)) => return c.map(|c| c.code.into()),
                Ok(Message::Text(t)) if self.eio == 4 && t.as_str() == "2" => {}
                Ok(m) => self.backlog.push(format!("{m}")),
                Err(_) => return None,
            }
        }
    }

    pub fn worker(&mut self) -> u64 {
        self.call("whoami", serde_json::json!([]))[0]
            .as_u64()
            .expect("worker id")
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// v5 clients until two of them are on different workers: (client, worker) pairs.
pub fn on_two_workers(port: u16) -> (Sio, Sio) {
    let mut first = Sio::connect(port, None);
    let w0 = first.worker();
    for _ in 0..64 {
        let mut c = Sio::connect(port, None);
        if c.worker() != w0 {
            return (first, c);
        }
    }
    panic!("64 connections all landed on worker {w0}");
}
