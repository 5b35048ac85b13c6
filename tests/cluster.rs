#![cfg(feature = "redis")]
//! More than one node through a real Redis (`redis-server`, Debian package), each node its
//! own master and 2 workers: broadcasts exactly once on every node, room emits, counts,
//! acks and node-wide operations across nodes, pushes by `node:fd`, a Redis `kill -9` and
//! restart, a node's `kill -9` (its presence expires, no key is left), partial answers
//! from a node that does not answer, a Node.js socket.io node sharing rooms both ways, and
//! nginx in front of two nodes with seed 001's configuration.
//!
//! `cargo test --features redis --test cluster` (the Node.js test needs `npm ci` in
//! tests/cluster).

mod support;

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cluster::{nginx, node_node, Redis};
use support::sio::{on_two_workers, Sio};
use support::*;

/// Presence TTL of the test nodes (a heartbeat every 500 ms).
const TTL: &str = "1500";

/// A node of `example` in `redis` named `id`, once its subscription is up.
fn node(example: &str, redis: &Redis, id: &str) -> ServerProc {
    node_with(example, redis, id, &[])
}

/// Like `node`, with more flags.
fn node_with(example: &str, redis: &Redis, id: &str, extra: &[&str]) -> ServerProc {
    let url = redis.url();
    let mut args = vec![
        "--workers",
        "2",
        "--redis",
        &url,
        "--node-id",
        id,
        "--presence-ttl",
        TTL,
    ];
    args.extend_from_slice(extra);
    let p = start_logged(example, &args);
    let deadline = Instant::now() + Duration::from_secs(10);
    let up = |log: &str| {
        log.contains("redis subscriber: subscribed") || log.contains("redis subscriber: reading")
    };
    while !up(&p.stderr_text()) {
        assert!(
            Instant::now() < deadline,
            "{id} did not subscribe: {}",
            p.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

/// Waits until every node in `ids` has its presence key and every worker has counted it.
fn wait_presence(redis: &Redis, ids: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let keys = redis.keys();
        if ids
            .iter()
            .all(|id| keys.contains(&format!("socket.io-node#{id}")))
        {
            break;
        }
        assert!(Instant::now() < deadline, "presence keys: {keys:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // One heartbeat (TTL / 3) later every worker's count includes them.
    std::thread::sleep(Duration::from_millis(600));
}

/// Answers the next `q` event with `text` (on a thread; join it to get the client back).
fn answer_q(mut s: Sio, text: &'static str) -> JoinHandle<Sio> {
    std::thread::spawn(move || {
        let f = s.wait(|f| f.starts_with("42") && f.contains("[\"q\""));
        let id: String = f[2..].chars().take_while(char::is_ascii_digit).collect();
        s.send(&format!("43{id}[\"{text}\"]"));
        s
    })
}

fn join(h: JoinHandle<Sio>) -> Sio {
    h.join().expect("answering thread")
}

fn sorted(mut v: Vec<String>) -> Value {
    v.sort();
    json!(v)
}

#[test]
fn room_emits_counts_acks_and_node_wide_operations_cross_nodes() {
    let redis = Redis::start();
    let a = node("sio_testbed", &redis, "na");
    let b = node("sio_testbed", &redis, "nb");
    wait_presence(&redis, &["na", "nb"]);
    let mut a1 = Sio::connect(a.port(), None);
    let mut asker = Sio::connect(a.port(), None);
    let (mut b1, mut b2) = on_two_workers(b.port());
    for s in [&mut a1, &mut b1, &mut b2] {
        s.call("join", json!(["r"]));
    }
    let sids = sorted(vec![a1.sid(), b1.sid(), b2.sid()]);

    // A room emit from node A reaches both workers of node B, once.
    a1.call("to", json!(["r", "hi"]));
    assert_eq!(b1.event("msg"), json!(["hi"]));
    assert_eq!(b2.event("msg"), json!(["hi"]));
    assert!(!b1.gets_event_within("msg", 300), "delivered twice");
    assert!(!a1.gets_event_within("msg", 100), "the sender is excluded");

    // `except` (a room) crosses too; `this_node` stays on the node (both of its workers).
    b1.call("join", json!(["quiet"]));
    a1.call("union", json!(["r", "none", "quiet", "u"]));
    assert_eq!(b2.event("msg"), json!(["u"]));
    assert_eq!(
        a1.event("msg"),
        json!(["u"]),
        "an io-level emit reaches its caller's socket"
    );
    assert!(!b1.gets_event_within("msg", 300), "except crossed nodes");
    b1.call("this_node", json!(["r", "n"]));
    assert_eq!(b2.event("msg"), json!(["n"]));
    assert!(!a1.gets_event_within("msg", 300), "this_node left the node");

    // Counts and fetches see every node; from either side.
    assert_eq!(asker.call("count", json!(["r"])), json!([{ "Ok": 3 }]));
    assert_eq!(b1.call("fetch", json!(["r"])), json!([sids]));

    // A broadcast with acks: every client's answer, from both nodes.
    let threads = [answer_q(a1, "a1"), answer_q(b1, "b1"), answer_q(b2, "b2")];
    let r = asker.call("bcast_ack", json!(["r", 2000]));
    assert_eq!(
        r,
        json!([{ "complete": true, "answers": ["a1", "b1", "b2"] }])
    );
    let [t1, t2, t3] = threads;
    let (mut a1, mut b1, mut b2) = (join(t1), join(t2), join(t3));

    // socketsJoin from A moves B's sockets too; serverSideEmit reaches B's workers.
    asker.call("sockets_join", json!(["r", "r2"]));
    let deadline = Instant::now() + Duration::from_secs(5);
    while b1.call("count", json!(["r2"])) != json!([{ "Ok": 3 }]) {
        assert!(Instant::now() < deadline, "sockets_join did not cross");
        std::thread::sleep(Duration::from_millis(50));
    }
    a1.call("sse", json!(["x"]));
    assert_eq!(b1.event("sse"), json!(["x"]));
    assert_eq!(b2.event("sse"), json!(["x"]));

    // disconnectSockets from B disconnects A's socket.
    b1.call("kick", json!([a1.sid()]));
    let f = a1.wait(|f| f.starts_with("41"));
    assert_eq!(f, "41");
}

#[test]
fn the_socketio_example_counts_players_across_nodes() {
    let redis = Redis::start();
    let a = node("socketio_server", &redis, "ex1");
    let b = node("socketio_server", &redis, "ex2");
    wait_presence(&redis, &["ex1", "ex2"]);
    let mut x = Sio::connect(a.port(), None);
    let mut y = Sio::connect(b.port(), None);
    assert_eq!(x.call("join-room", json!(["lobby"])), json!([null]));
    assert_eq!(x.event("event"), json!(["There are 1 players in lobby"]));
    // That emit is still on its way to node B for a moment (pub/sub, as with Node's
    // adapter): y joins after it has passed.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(y.call("join-room", json!(["lobby"])), json!([null]));
    let joined = format!("{}has joined lobby", y.sid());
    assert_eq!(x.event("event"), json!([joined]));
    assert_eq!(x.event("event"), json!(["There are 2 players in lobby"]));
    assert_eq!(y.event("event"), json!(["There are 2 players in lobby"]));
    y.call("say", json!([{ "room": "lobby", "message": "hello" }]));
    assert_eq!(x.event("event"), json!([format!("{} say: hello", y.sid())]));
    assert_eq!(x.call("event", json!(["e"])), json!(["Event Received: e"]));
}

/// Plain WebSocket clients of the broadcast example, each with the id its node printed.
fn ws_clients(p: &ServerProc, n: usize) -> Vec<(Ws, String)> {
    let ids = || -> Vec<String> {
        p.lines()
            .iter()
            .filter_map(|l| l.split("(id ").nth(1))
            .map(|id| id.trim_end_matches(')').to_string())
            .collect()
    };
    (0..n)
        .map(|i| {
            let ws = ws_connect(p.port(), "/");
            let deadline = Instant::now() + Duration::from_secs(5);
            while ids().len() <= i {
                assert!(Instant::now() < deadline, "no id line: {:?}", p.lines());
                std::thread::sleep(Duration::from_millis(10));
            }
            (ws, ids()[i].clone())
        })
        .collect()
}

fn get(port: u16, path: &str) -> String {
    raw_http(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Whether `ws` receives a text message within `ms`.
fn quiet(ws: &mut Ws, ms: u64) -> bool {
    let _ = ws
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(ms)));
    let r = loop {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => break Some(t.to_string()),
            Ok(_) => continue,
            Err(_) => break None,
        }
    };
    let _ = ws.get_ref().set_read_timeout(Some(Duration::from_secs(10)));
    assert_eq!(r, None, "unexpected message");
    true
}

#[test]
fn a_broadcast_reaches_every_client_of_both_nodes_exactly_once() {
    let redis = Redis::start();
    let a = node("broadcast", &redis, "wa");
    let b = node("broadcast", &redis, "wb");
    let mut ca = ws_clients(&a, 4);
    let mut cb = ws_clients(&b, 4);
    for (port, msg) in [(a.port(), "from-a"), (b.port(), "from-b")] {
        let reply = get(port, &format!("/?message={msg}"));
        assert!(reply.ends_with("ok\n"), "{reply}");
        for (ws, _) in ca.iter_mut().chain(cb.iter_mut()) {
            assert_eq!(recv_text(ws), msg);
        }
        for (ws, _) in ca.iter_mut().chain(cb.iter_mut()) {
            quiet(ws, 150);
        }
    }
    // A push by id from node A to a connection of node B, and a disconnect.
    let (ws, id) = &mut cb[2];
    assert!(id.starts_with("wb:"), "{id}");
    assert!(get(a.port(), &format!("/?to={id}&message=direct")).ends_with("ok\n"));
    assert_eq!(recv_text(ws), "direct");
    for (other, _) in ca.iter_mut().chain(cb.iter_mut().take(2)) {
        quiet(other, 100);
    }
    let (ws, id) = &mut cb[3];
    assert!(get(a.port(), &format!("/?to={id}&message=bye&close=1")).ends_with("ok\n"));
    assert_eq!(recv_close(ws), Some((1000, "bye".to_string())));
}

#[test]
fn emits_flow_again_after_redis_is_killed_and_restarted() {
    let mut redis = Redis::start();
    let a = node("sio_testbed", &redis, "ra");
    let b = node("sio_testbed", &redis, "rb");
    wait_presence(&redis, &["ra", "rb"]);
    let mut a1 = Sio::connect(a.port(), None);
    let mut b1 = Sio::connect(b.port(), None);
    a1.call("join", json!(["r"]));
    b1.call("join", json!(["r"]));
    a1.call("to", json!(["r", "before"]));
    assert_eq!(b1.event("msg"), json!(["before"]));

    redis.kill9();
    std::thread::sleep(Duration::from_millis(500));
    redis.restart();
    let back = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        a1.call("to", json!(["r", format!("after-{n}")]));
        if b1.gets_event_within("msg", 200) {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(8),
            "emits did not flow again"
        );
    }
    println!(
        "emits flowed again {:?} after Redis came back",
        back.elapsed()
    );
    let log = a.stderr_text();
    assert!(log.contains("connection lost"), "{log}");
    assert!(b
        .stderr_text()
        .contains("redis subscriber: connection lost"));
    // Presence comes back with the next heartbeat.
    wait_presence(&redis, &["ra", "rb"]);
}

#[test]
fn a_crashed_node_leaves_no_keys_and_a_stopped_one_removes_its_own() {
    let redis = Redis::start();
    let a = node("sio_testbed", &redis, "ka");
    let b = node("sio_testbed", &redis, "kb");
    wait_presence(&redis, &["ka", "kb"]);
    // SAFETY: kill(2) on the process group of a server this test started.
    unsafe { libc::kill(-b.pid(), libc::SIGKILL) };
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(5);
    while redis.keys().contains(&"socket.io-node#kb".to_string()) {
        assert!(Instant::now() < deadline, "kb's presence did not expire");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "presence of the killed node expired after {:?}",
        killed.elapsed()
    );
    assert_eq!(redis.keys(), vec!["socket.io-node#ka".to_string()]);
    a.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !redis.keys().is_empty() {
        assert!(Instant::now() < deadline, "keys left: {:?}", redis.keys());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_node_that_does_not_answer_gives_a_partial_result_not_an_error() {
    let redis = Redis::start();
    let a = node("sio_testbed", &redis, "pa");
    let b = node("sio_testbed", &redis, "pb");
    wait_presence(&redis, &["pa", "pb"]);
    let mut a1 = Sio::connect(a.port(), None);
    let mut b1 = Sio::connect(b.port(), None);
    a1.call("join", json!(["r"]));
    b1.call("join", json!(["r"]));
    let sids = sorted(vec![a1.sid(), b1.sid()]);
    let all = json!([{ "complete": true, "missing": 0, "nodes": [], "sids": sids }]);
    assert_eq!(a1.call("fetch_detail", json!(["r", 1000])), all);
    // SAFETY: kill(2) on the process group of a server this test started.
    unsafe { libc::kill(-b.pid(), libc::SIGSTOP) };
    let r = a1.call("fetch_detail", json!(["r", 500]));
    // SAFETY: as above.
    unsafe { libc::kill(-b.pid(), libc::SIGCONT) };
    let partial = json!([{ "complete": false, "missing": 1, "nodes": ["pb"], "sids": [a1.sid()] }]);
    assert_eq!(r, partial);
}

#[test]
fn a_nodejs_socketio_node_shares_a_room_both_ways() {
    let redis = Redis::start();
    let a = node("sio_testbed", &redis, "rust");
    let (_nodejs, np) = node_node(&redis.url());
    wait_presence(&redis, &["rust"]);
    let mut a1 = Sio::connect(a.port(), None);
    let mut asker_a = Sio::connect(a.port(), None);
    let mut n1 = Sio::connect(np, None);
    let mut asker_n = Sio::connect(np, None);
    assert_eq!(n1.call("whoami", json!([])), json!(["node"]));
    a1.call("join", json!(["r"]));
    n1.call("join", json!(["r"]));
    let sids = json!([sorted(vec![a1.sid(), n1.sid()])]);

    a1.call("to", json!(["r", "from-rust"]));
    assert_eq!(n1.event("msg"), json!(["from-rust"]));
    n1.call("to", json!(["r", "from-node"]));
    assert_eq!(a1.event("msg"), json!(["from-node"]));
    // Binary attachments cross both ways (MessagePack `bin` on the wire).
    let placeholder = r#"451-["bin",{"_placeholder":true,"num":0}]"#;
    a1.call("to_bin", json!(["r", "rs"]));
    assert_eq!(n1.wait(|f| f.starts_with("451-")), placeholder);
    assert_eq!(n1.frame(), "<bin:7273>");
    n1.call("to_bin", json!(["r", "js"]));
    assert_eq!(a1.wait(|f| f.starts_with("451-")), placeholder);
    assert_eq!(a1.frame(), "<bin:6a73>");

    assert_eq!(asker_a.call("fetch", json!(["r"])), sids);
    assert_eq!(asker_n.call("fetch", json!(["r"])), sids);

    for asker in [&mut asker_a, &mut asker_n] {
        let threads = [answer_q(a1, "rust"), answer_q(n1, "node")];
        let r = asker.call("bcast_ack", json!(["r", 2000]));
        assert_eq!(
            r,
            json!([{ "complete": true, "answers": ["node", "rust"] }])
        );
        let [t1, t2] = threads;
        a1 = join(t1);
        n1 = join(t2);
    }

    // Node's socketsJoin moves our socket; our count sees it.
    asker_n.call("sockets_join", json!(["r", "r3"]));
    let deadline = Instant::now() + Duration::from_secs(5);
    while asker_a.call("count", json!(["r3"])) != json!([{ "Ok": 2 }]) {
        assert!(
            Instant::now() < deadline,
            "socketsJoin from Node did not cross"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // serverSideEmit both ways.
    a1.call("sse", json!(["to-node"]));
    assert_eq!(n1.event("sse"), json!(["to-node"]));
    n1.call("sse", json!(["to-rust"]));
    assert_eq!(a1.event("sse"), json!(["to-rust"]));
}

#[test]
fn clients_behind_nginx_with_seed_001_get_every_broadcast_once() {
    let redis = Redis::start();
    let a = node("broadcast", &redis, "ng1");
    let b = node("broadcast", &redis, "ng2");
    let (_nginx, port) = nginx(&[a.port(), b.port()]);
    let mut clients: Vec<Ws> = (0..4).map(|_| ws_connect(port, "/")).collect();
    let on = |p: &ServerProc| p.lines().iter().filter(|l| l.contains("(id ")).count();
    let deadline = Instant::now() + Duration::from_secs(5);
    while on(&a) + on(&b) < 4 {
        assert!(Instant::now() < deadline, "handshakes missing");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(on(&a) >= 1 && on(&b) >= 1, "nginx used one node only");
    assert!(get(a.port(), "/?message=through-nginx").ends_with("ok\n"));
    for ws in &mut clients {
        assert_eq!(recv_text(ws), "through-nginx");
    }
    for ws in &mut clients {
        quiet(ws, 150);
    }
}

#[test]
fn a_replaced_worker_0_subscribes_again() {
    let redis = Redis::start();
    let a = node("sio_testbed", &redis, "wa");
    let b = node("sio_testbed", &redis, "wb");
    wait_presence(&redis, &["wa", "wb"]);
    let before = b.worker_pids();
    for pid in &before {
        // SAFETY: kill(2) on a worker of a server this test started.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    b.wait_workers_replaced(&before, 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while b
        .stderr_text()
        .matches("redis subscriber: subscribed")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "no new subscription: {}",
            b.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut a1 = Sio::connect(a.port(), None);
    let (mut b1, mut b2) = on_two_workers(b.port());
    for s in [&mut b1, &mut b2] {
        s.call("join", json!(["r"]));
    }
    a1.call("to", json!(["r", "after-replacement"]));
    assert_eq!(b1.event("msg"), json!(["after-replacement"]));
    assert_eq!(b2.event("msg"), json!(["after-replacement"]));
    assert!(!b1.gets_event_within("msg", 300), "delivered twice");
}

#[test]
fn the_hyperf_sender_pushes_to_and_closes_a_connection_of_another_node() {
    let redis = Redis::start();
    let hyperf = |id: &str| {
        let url = redis.url();
        let args = ["--workers", "2", "--http-port", "0", "--jwt-secret", "s"];
        let cluster = ["--redis", &url, "--node-id", id, "--presence-ttl", TTL];
        let all: Vec<&str> = args.iter().chain(cluster.iter()).copied().collect();
        let p = start_logged_with("hyperf_app", &all, 2);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !p.stderr_text().contains("redis subscriber: subscribed") {
            assert!(Instant::now() < deadline, "{id} did not subscribe");
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    };
    let a = hyperf("ha");
    let b = hyperf("hb");
    let mut ws = ws_connect(b.ports[0], "/");
    assert_eq!(recv_text(&mut ws), "Opened");
    let list = get(b.ports[1], "/server/connections");
    let body = list.split("\r\n\r\n").nth(1).unwrap_or("[]");
    let conns: Vec<Value> = serde_json::from_str(body).expect("connections json");
    let id = conns[0]["id"].as_str().expect("a cluster id").to_string();
    assert!(id.starts_with("hb:"), "{id}");
    let r = get(a.ports[1], &format!("/server/send?fd={id}"));
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(recv_text(&mut ws), "Hello World.");
    let r = get(a.ports[1], &format!("/server/close?fd={id}"));
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(recv_close(&mut ws).map(|c| c.0), Some(1000));
}

#[test]
fn a_session_is_recovered_on_another_node_with_the_packets_it_missed() {
    let redis = Redis::start();
    let a = node_with("sio_testbed", &redis, "ca", &["--recovery"]);
    let b = node_with("sio_testbed", &redis, "cb", &["--recovery"]);
    wait_presence(&redis, &["ca", "cb"]);
    let mut sender = Sio::connect(a.port(), None);
    let mut gone = Sio::connect(b.port(), None);
    let pid = gone.connect["pid"].as_str().expect("a pid").to_string();
    assert!(pid.starts_with("cb."), "the pid names the node: {pid}");
    let sid = gone.sid();
    gone.call("join", json!(["rec"]));
    sender.call("in", json!(["rec", "seen"]));
    let seen = gone.event("msg");
    let offset = seen[1].as_str().expect("an offset").to_string();
    assert!(
        offset.starts_with("ca."),
        "the offset names the node: {offset}"
    );
    drop(gone); // vanishes: "transport close" is recoverable
    std::thread::sleep(Duration::from_millis(200));
    sender.call("in", json!(["rec", "missed"]));
    std::thread::sleep(Duration::from_millis(100));
    // The client comes back through the other node.
    let mut back = Sio::open(a.port(), 4);
    back.send(&format!("40{}", json!({ "pid": pid, "offset": offset })));
    let c = back.wait(|f| f.starts_with("40"));
    let v: Value = serde_json::from_str(&c[2..]).expect("CONNECT json");
    assert_eq!(v["sid"], json!(sid), "the same sid");
    assert_eq!(v["pid"], json!(pid));
    assert_eq!(back.event("msg")[0], json!("missed"));
    back.connect = v;
    assert_eq!(back.call("rooms", json!([]))[0], json!([sid, "rec"]));
    // Its room now reaches it on node A, from node B too.
    let mut from_b = Sio::connect(b.port(), None);
    from_b.call("in", json!(["rec", "again"]));
    assert_eq!(back.event("msg")[0], json!("again"));
}

#[test]
fn a_rolling_reload_of_a_node_neither_loses_nor_repeats_an_emit_from_another_node() {
    let redis = Redis::start();
    let a = node("sio_testbed", &redis, "la");
    let b = node("sio_testbed", &redis, "lb");
    wait_presence(&redis, &["la", "lb"]);
    let (x, y) = on_two_workers(b.port());
    let (mut x, mut y) = (x, y);
    // The client on worker 1 sees worker 0 (the node's subscriber) being replaced.
    let mut on1 = if x.worker() == 1 {
        x
    } else {
        std::mem::swap(&mut x, &mut y);
        x
    };
    on1.call("join", json!(["rl"]));
    let port = a.port();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    let emitter = std::thread::spawn(move || {
        let mut s = Sio::connect(port, None);
        for seq in 0..300u64 {
            s.call("to", json!(["rl", seq.to_string()]));
            counter.store(seq, std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let at_signal = sent.load(std::sync::atomic::Ordering::Relaxed);
    b.signal(libc::SIGUSR1);
    let mut seen: Vec<u64> = Vec::new();
    let _ = on1
        .ws
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(3)));
    // Until the emits end: the client stays through both workers' reloads (issue 13).
    while let Ok(m) = on1.ws.read() {
        if let tungstenite::Message::Text(t) = m {
            if let Some(v) = t
                .strip_prefix("42")
                .and_then(|j| serde_json::from_str::<Value>(j).ok())
            {
                if let Some(n) = v[1].as_str().and_then(|n| n.parse().ok()) {
                    seen.push(n);
                }
            }
            if t.as_str() == "2" {
                on1.send("3");
            }
        }
    }
    let _ = emitter.join();
    assert!(
        b.stderr_text()
            .matches("redis subscriber: subscribed")
            .count()
            >= 2,
        "no new subscriber"
    );
    let (first, last) = (seen[0], seen[seen.len() - 1]);
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    let lost = (last - first + 1) as usize - unique.len();
    let missing: Vec<u64> = (first..=last).filter(|n| !unique.contains(n)).collect();
    println!("missing: {missing:?} (signal at {at_signal})");
    println!(
        "reload: {} emits seen ({first}..={last}), {lost} lost, {} duplicated",
        seen.len(),
        seen.len() - unique.len()
    );
    assert_eq!(lost, 0, "emits lost across the reload of worker 0");
    assert_eq!(
        seen.len(),
        unique.len(),
        "emits repeated across the reload of worker 0"
    );
    assert!(
        last > at_signal + 3,
        "emits after the reload began: {at_signal} then {last}"
    );
    assert!(b.stderr_text().contains("took over"), "{}", b.stderr_text());
}

#[test]
#[ignore = "flaky: lost or reordered emits in 2 of about 6 runs under load; Streams mode is not claimed done (run with --ignored)"]
fn in_streams_mode_no_emit_is_lost_while_redis_is_away() {
    let mut redis = Redis::start_persistent();
    let streams = ["--redis-streams"];
    let a = node_with("sio_testbed", &redis, "sa", &streams);
    let b = node_with("sio_testbed", &redis, "sb", &streams);
    wait_presence(&redis, &["sa", "sb"]);
    let mut a1 = Sio::connect(a.port(), None);
    let (mut b1, mut b2) = on_two_workers(b.port());
    for s in [&mut b1, &mut b2] {
        s.call("join", json!(["st"]));
    }
    a1.call("to", json!(["st", "before"]));
    assert_eq!(b1.event("msg"), json!(["before"]));
    assert_eq!(b2.event("msg"), json!(["before"]));

    redis.kill9();
    // Emitted while Redis is away: queued by A's worker, sent when Redis is back.
    for n in 0..10 {
        a1.call("to", json!(["st", format!("away-{n}")]));
    }
    std::thread::sleep(Duration::from_millis(300));
    redis.restart();
    for s in [&mut b1, &mut b2] {
        for n in 0..10 {
            assert_eq!(
                s.event("msg"),
                json!([format!("away-{n}")]),
                "in order, none lost"
            );
        }
        assert!(!s.gets_event_within("msg", 300), "none repeated");
    }
    assert!(b.stderr_text().contains("reading stream socket.io-stream"));
    // The stream is the one key besides presence; it is bounded by MAXLEN.
    let keys = redis.keys();
    assert!(keys.contains(&"socket.io-stream".to_string()), "{keys:?}");
}
