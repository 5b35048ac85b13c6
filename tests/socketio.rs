//! The Socket.IO layer end to end over raw Engine.IO frames, against the real server (a
//! master and 2 workers): rooms, counts, acknowledgements both ways and node-wide operations across
//! workers, the global API from HTTP, middleware, heartbeats of both protocol versions,
//! recovery on another worker, and every bad-input rule.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::sio::{engine, on_two_workers, Sio};
use support::*;

fn testbed(args: &[&str]) -> ServerProc {
    let mut all = vec!["--workers", "2"];
    all.extend_from_slice(args);
    start_path(example_path("sio_testbed"), &all, 1)
}

#[test]
fn rooms_reach_the_right_sockets_on_both_workers() {
    let srv = testbed(&[]);
    let (mut a, mut b) = on_two_workers(srv.port());
    let mut c = Sio::connect(srv.port(), None);
    a.call("join", json!(["r"]));
    b.call("join", json!(["r"]));
    assert_eq!(
        a.call("count", json!(["r"]))[0],
        json!({"Ok": 2}),
        "counted on both workers"
    );
    a.call("to", json!(["r", "hello"]));
    assert_eq!(b.event("msg"), json!(["hello"]));
    assert!(
        !a.gets_event_within("msg", 300),
        "to() leaves the sender out"
    );
    assert!(!c.gets_event_within("msg", 100), "c is not in r");
    b.call("in", json!(["r", "all"]));
    assert_eq!(a.event("msg"), json!(["all"]));
    assert_eq!(b.event("msg"), json!(["all"]), "in() includes the sender");
    // Union of rooms, minus a room: c in s, b excluded through its sid room.
    c.call("join", json!(["s"]));
    let bsid = b.sid();
    c.call("union", json!(["r", "s", bsid, "u"]));
    assert_eq!(a.event("msg"), json!(["u"]));
    assert_eq!(c.event("msg"), json!(["u"]));
    assert!(!b.gets_event_within("msg", 300), "except(sid) leaves b out");
    // A left socket no longer receives; the count follows.
    b.call("leave", json!(["r"]));
    assert_eq!(a.call("count", json!(["r"]))[0], json!({"Ok": 1}));
    assert_eq!(a.call("rooms", json!([]))[0], json!([a.sid(), "r"]));
}

#[test]
fn broadcasts_to_everyone_and_the_sid_room() {
    let srv = testbed(&[]);
    let (mut a, mut b) = on_two_workers(srv.port());
    a.call("broadcast", json!(["x"]));
    assert_eq!(b.event("msg"), json!(["x"]));
    assert!(
        !a.gets_event_within("msg", 200),
        "broadcast() leaves the sender out"
    );
    // A private message: a's sid is a room on whichever worker holds it.
    let asid = a.sid();
    b.call("to", json!([asid, "private"]));
    assert_eq!(a.event("msg"), json!(["private"]));
    // local stays on the sender's worker.
    b.call("local", json!(["here"]));
    assert_eq!(b.event("msg"), json!(["here"]));
    assert!(
        !a.gets_event_within("msg", 300),
        "local() does not cross workers"
    );
}

#[test]
fn acknowledgements_both_ways_and_of_broadcasts_across_workers() {
    let srv = testbed(&[]);
    let (mut a, mut b) = on_two_workers(srv.port());
    let mut c = Sio::connect(srv.port(), None);
    for s in [&mut a, &mut b, &mut c] {
        s.call("join", json!(["acks"]));
    }
    // The server asks a client, which answers.
    let id_frame = {
        a.send("420[\"ask\",2000]");
        a.wait(|f| f.starts_with("42") && f.contains("\"question\""))
    };
    let ack_id: String = id_frame[2..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    a.send(&format!("43{ack_id}[\"because\"]"));
    assert_eq!(a.wait(|f| f.starts_with("430")), "430[\"because\"]");
    // Unanswered: a timeout error.
    a.send("421[\"ask\",200]");
    a.wait(|f| f.contains("\"question\""));
    assert_eq!(
        a.wait(|f| f.starts_with("431")),
        "431[\"operation has timed out\"]"
    );
    // A broadcast with an ack: one answer per client on both workers.
    a.send("422[\"bcast_ack\",\"acks\",3000]");
    for (s, name) in [(&mut a, "a"), (&mut b, "b"), (&mut c, "c")] {
        let q = s.wait(|f| f.contains("\"q\""));
        let id: String = q[2..].chars().take_while(char::is_ascii_digit).collect();
        s.send(&format!("43{id}[\"{name}\"]"));
    }
    let r = a.wait(|f| f.starts_with("432"));
    let v: Value = serde_json::from_str(&r[3..]).unwrap();
    assert_eq!(v[0], json!({"complete": true, "answers": ["a", "b", "c"]}));
    // One client silent: the others' answers after the timeout.
    b.send("423[\"bcast_ack\",\"acks\",400]");
    for (s, name) in [(&mut a, "a"), (&mut b, "b")] {
        let q = s.wait(|f| f.contains("\"q\""));
        let id: String = q[2..].chars().take_while(char::is_ascii_digit).collect();
        s.send(&format!("43{id}[\"{name}\"]"));
    }
    c.wait(|f| f.contains("\"q\""));
    let r = b.wait(|f| f.starts_with("433"));
    let v: Value = serde_json::from_str(&r[3..]).unwrap();
    assert_eq!(v[0], json!({"complete": false, "answers": ["a", "b"]}));
}

#[test]
fn node_wide_operations_cross_workers() {
    let srv = testbed(&[]);
    let (mut a, mut b) = on_two_workers(srv.port());
    a.call("join", json!(["f"]));
    b.call("join", json!(["f"]));
    let mut want = vec![a.sid(), b.sid()];
    want.sort();
    assert_eq!(a.call("fetch", json!(["f"]))[0], json!(want));
    // sockets_join from a: b (other worker) joins g too.
    a.call("sockets_join", json!(["f", "g"]));
    assert_eq!(b.call("rooms", json!([]))[0], json!([b.sid(), "f", "g"]));
    a.call("sockets_leave", json!(["f", "g"]));
    assert_eq!(b.call("rooms", json!([]))[0], json!([b.sid(), "f"]));
    // server_side_emit reaches the other worker's handler, which emits locally.
    a.call("sse", json!(["hi"]));
    assert_eq!(b.event("sse"), json!(["hi"]));
    assert!(
        !a.gets_event_within("sse", 300),
        "not the emitting worker's own handler"
    );
    // disconnect_sockets from a kicks b off /.
    b.call("join", json!(["kick"]));
    a.call("kick", json!(["kick"]));
    assert_eq!(b.wait(|f| f.starts_with("41")), "41");
}

#[test]
fn the_global_api_works_from_an_http_handler() {
    let srv = testbed(&[]);
    let (mut a, mut b) = on_two_workers(srv.port());
    a.call("join", json!(["news"]));
    b.call("join", json!(["news"]));
    let resp = raw_http(
        srv.port(),
        b"GET /emit?room=news&msg=extra HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(a.event("news"), json!(["extra"]));
    assert_eq!(b.event("news"), json!(["extra"]));
}

#[test]
fn disconnect_reasons_reach_the_handler() {
    let srv = testbed(&[]);
    let mut w = Sio::connect(srv.port(), None);
    w.call("join", json!(["watchers"]));
    let mut x = Sio::connect(srv.port(), None);
    let xsid = x.sid();
    x.send("41");
    assert_eq!(
        w.event("gone"),
        json!([xsid, "client namespace disconnect"])
    );
    let mut y = Sio::connect(srv.port(), None);
    let ysid = y.sid();
    y.send("42[\"bye\"]");
    assert_eq!(y.wait(|f| f.starts_with("41")), "41");
    assert_eq!(
        w.event("gone"),
        json!([ysid, "server namespace disconnect"])
    );
    let z = Sio::connect(srv.port(), None);
    let zsid = z.sid();
    drop(z);
    assert_eq!(w.event("gone"), json!([zsid, "transport close"]));
}

#[test]
fn namespaces_static_dynamic_guarded_and_unknown() {
    let srv = testbed(&[]);
    let mut s = Sio::open(srv.port(), 4);
    s.send("40/nope,");
    assert_eq!(s.frame(), "44/nope,{\"message\":\"Invalid namespace\"}");
    s.send("40/guarded,{\"token\":\"bad\"}");
    assert_eq!(
        s.frame(),
        "44/guarded,{\"data\":{\"code\":401},\"message\":\"not authorized\"}"
    );
    s.send("40/guarded,{\"token\":\"ok\"}");
    assert!(s.frame().starts_with("40/guarded,{\"sid\":"));
    s.send("42/guarded,1[\"event\",\"x\"]");
    assert_eq!(s.frame(), "43/guarded,1[\"guarded: x\"]");
    s.send("40/dyn-7,");
    assert!(s.frame().starts_with("40/dyn-7,{\"sid\":"));
    s.send("42/dyn-7,2[\"event\"]");
    assert_eq!(s.frame(), "43/dyn-7,2[\"/dyn-7\"]");
    // socket.io 2.x clients get the same object (as from Node 4 with allowEIO3).
    let mut v3 = Sio::open(srv.port(), 3);
    v3.send("40/nope");
    assert_eq!(v3.frame(), "44/nope,{\"message\":\"Invalid namespace\"}");
}

#[test]
fn handshakes_are_refused_as_engine_io_refuses_them() {
    let srv = testbed(&[]);
    let get = |q: &str| {
        raw_http(
            srv.port(),
            format!("GET /socket.io/?{q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
    };
    let r = get("EIO=4&transport=bogus");
    assert!(
        r.starts_with("HTTP/1.1 400")
            && r.ends_with("{\"code\":0,\"message\":\"Transport unknown\"}"),
        "{r}"
    );
    let r = get("EIO=5&transport=websocket");
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("\"code\":3"),
        "a plain GET is no WebSocket: {r}"
    );
    let e = engine(srv.port(), "EIO=5&transport=websocket").unwrap_err();
    assert!(e.contains("400"), "{e}");
    let e = engine(srv.port(), "transport=websocket").unwrap_err();
    assert!(e.contains("400"), "{e}");
    let e = engine(srv.port(), "EIO=4&transport=bogus").unwrap_err();
    assert!(e.contains("400"), "{e}");
    let e = engine(srv.port(), "EIO=4&transport=websocket&deny=1").unwrap_err();
    assert!(e.contains("403"), "the handshake middleware's answer: {e}");
    // The server still serves.
    let mut ok = Sio::connect(srv.port(), None);
    assert_eq!(ok.call("echo", json!(["still"])), json!(["still"]));
}

#[test]
fn open_packets_are_what_the_official_server_sends() {
    let srv = testbed(&[]);
    let v4 = Sio::open(srv.port(), 4);
    let keys: Vec<&String> = v4.open.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 5, "{:?}", v4.open);
    assert_eq!(v4.open["upgrades"], json!([]));
    assert_eq!(v4.open["pingInterval"], json!(25000));
    assert_eq!(v4.open["pingTimeout"], json!(20000));
    assert_eq!(v4.open["maxPayload"], json!(1000000));
    let v3 = Sio::open(srv.port(), 3);
    assert_eq!(
        v3.open["maxPayload"],
        json!(1000000),
        "Node sends it to v3 clients too"
    );
    assert!(
        v3.open["sid"].as_str().unwrap().contains('#'),
        "a 2.x client's socket id is the engine sid"
    );
}

#[test]
fn heartbeats_follow_each_protocol_version() {
    let srv = testbed(&["--ping-interval", "200", "--ping-timeout", "150"]);
    // v4: the server pings; a pong keeps the session.
    let mut s = engine(srv.port(), "EIO=4&transport=websocket").unwrap();
    let t0 = Instant::now();
    assert!(s.read().unwrap().to_string().starts_with('0'));
    assert_eq!(s.read().unwrap().to_string(), "2");
    let first = t0.elapsed();
    assert!(
        first >= Duration::from_millis(150),
        "ping after pingInterval, got {first:?}"
    );
    s.send(tungstenite::Message::text("3")).unwrap();
    assert_eq!(
        s.read().unwrap().to_string(),
        "2",
        "pinged again after the pong"
    );
    // No pong: closed after pingTimeout.
    let t1 = Instant::now();
    loop {
        match s.read() {
            Ok(tungstenite::Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
        assert!(
            t1.elapsed() < Duration::from_secs(3),
            "not closed after a missed pong"
        );
    }
    // v3: the client pings and gets pong with the same data; silence closes the session.
    let mut o = engine(srv.port(), "EIO=3&transport=websocket").unwrap();
    assert!(o.read().unwrap().to_string().starts_with('0'));
    assert_eq!(o.read().unwrap().to_string(), "40");
    o.send(tungstenite::Message::text("2probe")).unwrap();
    assert_eq!(o.read().unwrap().to_string(), "3probe");
    let t2 = Instant::now();
    match o.read() {
        Ok(tungstenite::Message::Close(_)) | Err(_) => {}
        Ok(m) => panic!("v3 server must not ping: {m:?}"),
    }
    assert!(
        t2.elapsed() >= Duration::from_millis(300),
        "closed after pingInterval + pingTimeout"
    );
}

#[test]
fn a_client_that_joins_no_namespace_is_closed_after_connect_timeout() {
    let srv = testbed(&["--connect-timeout", "300"]);
    let mut s = Sio::open(srv.port(), 4);
    let t = Instant::now();
    s.closed();
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
}

/// Each bad input closes only the connection that sent it; a bystander keeps working.
#[test]
fn bad_input_gets_the_official_answer_and_hurts_nobody_else() {
    let srv = testbed(&["--max-payload", "1000"]);
    let mut bystander = Sio::connect(srv.port(), None);
    type Case<'a> = (&'a str, &'a [&'a str], Option<&'a [u8]>);
    let cases: &[Case] = &[
        ("malformed JSON", &["42[\"echo\",{"], None),
        ("unknown Socket.IO type", &["49[]"], None),
        ("unknown Engine.IO type", &["9"], None),
        ("reserved event name (v5)", &["42[\"connect\"]"], None),
        ("binary frame nobody announced", &[], Some(b"\x01\x02")),
        (
            "text while attachments are due",
            &[
                "451-[\"echo\",{\"_placeholder\":true,\"num\":0}]",
                "42[\"echo\"]",
            ],
            None,
        ),
        (
            "wrong attachment count",
            &["452-[\"echo\",{\"_placeholder\":true,\"num\":0}]"],
            Some(b"a"),
        ),
        (
            "event in a namespace not joined",
            &["42/chat,[\"echo\",1]"],
            None,
        ),
        ("ping from a v4 client", &["2"], None),
    ];
    for (what, texts, binary) in cases {
        let mut s = Sio::connect(srv.port(), None);
        for t in *texts {
            s.send(t);
        }
        if let Some(b) = binary {
            s.send_binary(b);
            if what.starts_with("wrong") {
                s.send_binary(b); // the second of two announced; placeholders use one
            }
        }
        let t = Instant::now();
        s.closed();
        assert!(t.elapsed() < Duration::from_secs(5), "{what}: not closed");
        assert_eq!(
            bystander.call("echo", json!([what])),
            json!([what]),
            "after {what}"
        );
    }
    // Oversize: closed with 1009, as engine.io's ws does.
    let mut big = Sio::connect(srv.port(), None);
    big.send(&format!("42[\"echo\",\"{}\"]", "x".repeat(2000)));
    assert_eq!(big.closed(), Some(1009));
    // An ack for an unknown id is ignored, the connection stays.
    let mut s = Sio::connect(srv.port(), None);
    s.send("43999[\"nobody asked\"]");
    assert_eq!(s.call("echo", json!(["fine"])), json!(["fine"]));
}

#[test]
fn binary_attachments_round_trip_in_both_framings() {
    let srv = testbed(&[]);
    let mut v5 = Sio::connect(srv.port(), None);
    v5.send("451-1[\"echo\",{\"_placeholder\":true,\"num\":0}]");
    v5.send_binary(b"\x00\xffab");
    assert_eq!(v5.frame(), "461-1[{\"_placeholder\":true,\"num\":0}]");
    assert_eq!(v5.frame(), "<bin:00ff6162>");
    let mut v3 = Sio::open(srv.port(), 3);
    v3.send("451-1[\"echo\",{\"_placeholder\":true,\"num\":0}]");
    v3.send_binary(b"\x04\x00\xffab");
    assert_eq!(v3.frame(), "461-1[{\"_placeholder\":true,\"num\":0}]");
    assert_eq!(
        v3.frame(),
        "<bin:0400ff6162>",
        "v3 binary messages carry the type byte"
    );
}

#[test]
fn recovery_brings_back_sid_rooms_and_missed_packets_on_any_worker() {
    let srv = testbed(&["--recovery"]);
    let mut sender = Sio::connect(srv.port(), None);
    let mut crossed = false;
    for round in 0..12 {
        let mut a = Sio::connect(srv.port(), None);
        let pid = a.connect["pid"]
            .as_str()
            .expect("pid when recovery is on")
            .to_string();
        let sid = a.sid();
        let room = format!("rec{round}");
        a.call("join", json!([room]));
        sender.call("in", json!([room, "seen"]));
        let seen = a.event("msg");
        let offset = seen[1]
            .as_str()
            .expect("an offset as the last argument")
            .to_string();
        let w_before = a.worker();
        drop(a); // vanishes: "transport close" is recoverable
        std::thread::sleep(Duration::from_millis(100));
        sender.call("in", json!([room, "missed"]));
        let mut b = Sio::open(srv.port(), 4);
        b.send(&format!("40{}", json!({"pid": pid, "offset": offset})));
        let c = b.wait(|f| f.starts_with("40"));
        let v: Value = serde_json::from_str(&c[2..]).unwrap();
        assert_eq!(v["sid"], json!(sid), "round {round}: the same sid");
        assert_eq!(v["pid"], json!(pid));
        let missed = b.event("msg");
        assert_eq!(missed[0], json!("missed"), "round {round}");
        assert_eq!(b.call("rooms", json!([]))[0], json!([sid, room]));
        b.connect = v;
        crossed |= b.worker() != w_before;
        if crossed && round >= 2 {
            break;
        }
    }
    assert!(crossed, "no reconnect landed on the other worker");
    // An unknown pid connects afresh.
    let mut c = Sio::open(srv.port(), 4);
    c.send("40{\"pid\":\"0-nothing\",\"offset\":\"0-1\"}");
    let f = c.wait(|f| f.starts_with("40"));
    assert!(f.contains("\"sid\""), "{f}");
}
