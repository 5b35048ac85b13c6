//! `broadcast`: C subscriber connections; K broadcasts are triggered one after another (an HTTP
//! GET to --trigger URL, or a text message on one extra WebSocket connection with --trigger-ws),
//! each carrying its sequence number as a `-SEQ` suffix. Every subscriber must receive every
//! broadcast; reports per-delivery latency, the time until the last subscriber has it
//! (fan-out), deliveries/s and missing deliveries.

use crate::net::{self, Conn, ConnectOpts, Progress, ReadOutcome};
use crate::procstat::{self, ServerProbe};
use crate::ws::{self, Ev, Target};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

pub struct BroadcastOpts {
    pub url: String,
    pub conns: usize,
    pub trigger: Option<String>,
    pub trigger_ws: Option<String>,
    pub count: usize,
    pub timeout: Duration,
    pub concurrency: usize,
    pub quiet: bool,
}

const HTTP: Token = Token(usize::MAX - 1);
const TAIL: usize = 24;

struct Sub {
    next: u64,
    tail: [u8; TAIL],
    tlen: usize,
    dead: bool,
}

/// One HTTP trigger request in flight.
struct HttpReq {
    sock: TcpStream,
    req: Vec<u8>,
    wpos: usize,
    resp: Vec<u8>,
    seq: usize,
    started: Instant,
}

/// The trigger text with its `-SEQ` suffix (subscribers parse the digits after the last '-').
fn with_seq(template: &str, seq: usize) -> String {
    format!("{template}-{seq}")
}

fn parse_seq(tail: &[u8]) -> Option<usize> {
    let i = tail.iter().rposition(|&b| b == b'-')?;
    let digits = &tail[i + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

struct Tally {
    sent: Vec<Option<Instant>>,
    got: Vec<u32>,
    last: Vec<Instant>,
    delivered: u64,
    errors: u64,
    first_error: Option<String>,
    lat: hdrhistogram::Histogram<u64>,
    last_delivery: Option<Instant>,
}

impl Tally {
    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }
}

/// Reads a subscriber; false when it is gone.
fn service_sub(c: &mut Conn, s: &mut Sub, t: &mut Tally, id: usize) -> bool {
    loop {
        match c.read_once() {
            Ok(ReadOutcome::Data { short, .. }) => {
                let now = Instant::now();
                let Conn {
                    rbuf,
                    rlen,
                    wbuf,
                    parser,
                    ..
                } = c;
                let mut ok = true;
                let used = parser.feed(&rbuf[..*rlen], |ev| {
                    match ev {
                        Ev::Data { chunk, end, .. } => {
                            if chunk.len() >= TAIL {
                                s.tail.copy_from_slice(&chunk[chunk.len() - TAIL..]);
                                s.tlen = TAIL;
                            } else {
                                let keep = (TAIL - chunk.len()).min(s.tlen);
                                s.tail.copy_within(s.tlen - keep..s.tlen, 0);
                                s.tail[keep..keep + chunk.len()].copy_from_slice(chunk);
                                s.tlen = keep + chunk.len();
                            }
                            if end {
                                match parse_seq(&s.tail[..s.tlen]) {
                                    Some(seq) if seq < t.sent.len() && seq as u64 >= s.next => {
                                        s.next = seq as u64 + 1;
                                        t.got[seq] += 1;
                                        t.last[seq] = now;
                                        t.delivered += 1;
                                        t.last_delivery = Some(now);
                                        if let Some(at) = t.sent[seq] {
                                            t.lat.saturating_record(
                                                now.duration_since(at).as_nanos().max(1) as u64,
                                            );
                                        }
                                    }
                                    Some(seq) if seq < t.sent.len() => t.error(format!(
                                        "subscriber {id}: broadcast {seq} again or out of order"
                                    )),
                                    _ => t.error(format!(
                                        "subscriber {id}: unexpected message ending {:?}",
                                        String::from_utf8_lossy(&s.tail[..s.tlen])
                                    )),
                                }
                                s.tlen = 0;
                            }
                        }
                        Ev::Ping(p) => ws::write_frame(wbuf, ws::OP_PONG, p),
                        Ev::Pong => {}
                        Ev::Close(code) => {
                            t.error(format!("subscriber {id}: server closed ({code})"));
                            ok = false;
                        }
                        Ev::Error(e) => {
                            t.error(format!("subscriber {id}: {e}"));
                            ok = false;
                        }
                    }
                    ok
                });
                c.consume(used);
                if !ok {
                    return false;
                }
                if short {
                    break;
                }
            }
            Ok(ReadOutcome::WouldBlock) => break,
            Ok(ReadOutcome::Eof) => {
                t.error(format!("subscriber {id}: closed by the server"));
                return false;
            }
            Err(e) => {
                t.error(format!("subscriber {id}: {e}"));
                return false;
            }
        }
    }
    c.flush().is_ok()
}

/// Drives the HTTP trigger; Some(ok) once the response is complete (or failed).
fn service_http(h: &mut HttpReq, t: &mut Tally) -> Option<bool> {
    while h.wpos < h.req.len() {
        if h.wpos == 0 && t.sent[h.seq].is_none() {
            match h.sock.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotConnected => return None,
                Err(e) => {
                    t.error(format!("trigger connect: {e}"));
                    return Some(false);
                }
            }
            t.sent[h.seq] = Some(Instant::now());
        }
        match h.sock.write(&h.req[h.wpos..]) {
            Ok(n) => h.wpos += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
            Err(e) => {
                t.error(format!("trigger write: {e}"));
                return Some(false);
            }
        }
    }
    let mut buf = [0u8; 4096];
    loop {
        match h.sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if h.resp.len() < 4096 {
                    h.resp.extend_from_slice(&buf[..n]);
                }
                // Complete once the head and Content-Length bytes of body are in.
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut r = httparse::Response::new(&mut headers);
                if let Ok(httparse::Status::Complete(head)) = r.parse(&h.resp) {
                    let cl = r
                        .headers
                        .iter()
                        .find(|x| x.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|x| {
                            std::str::from_utf8(x.value)
                                .ok()?
                                .trim()
                                .parse::<usize>()
                                .ok()
                        });
                    if cl.is_some_and(|cl| h.resp.len() >= head + cl) {
                        break;
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !h.resp.is_empty() => break,
            Err(e) => {
                t.error(format!("trigger read: {e}"));
                return Some(false);
            }
        }
    }
    let ok = h.resp.starts_with(b"HTTP/1.") && h.resp.get(9) == Some(&b'2');
    if !ok {
        let line = h.resp.split(|&b| b == b'\r').next().unwrap_or(b"");
        t.error(format!(
            "trigger answered {:?}",
            String::from_utf8_lossy(line)
        ));
    }
    Some(ok)
}

pub fn run(o: &BroadcastOpts, probe: Option<&ServerProbe>) -> i32 {
    let target = match ws::parse_url(&o.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadtool: {e}");
            return 2;
        }
    };
    let http: Option<Target> = match &o.trigger {
        Some(u) => match ws::parse_url(u) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("loadtool: {e}");
                return 2;
            }
        },
        None => None,
    };
    if http.is_none() && o.trigger_ws.is_none() {
        eprintln!("loadtool: broadcast needs --trigger URL or --trigger-ws TEXT");
        return 2;
    }
    let copts = ConnectOpts {
        concurrency: o.concurrency,
        raw: false,
        rbuf: 4096,
        wbuf: 512,
        timeout: Duration::from_secs(10),
    };
    let mut poll = Poll::new().expect("epoll");
    let mut events = Events::with_capacity(1024);
    let total = o.conns + usize::from(http.is_none());
    let mut conns: Vec<Conn> = Vec::with_capacity(total);
    let mut progress = Progress::new(o.quiet);
    let est = net::establish(
        &mut poll,
        &mut events,
        &mut conns,
        &target,
        total,
        &copts,
        &mut progress,
        "broadcast",
    );
    progress.finish();
    if let Some(e) = &est.first_error {
        eprintln!(
            "broadcast: {} of {total} connections failed, first: {e}",
            est.failed
        );
    }
    // The trigger connection, if any, is the last one established.
    let trig_ws = if http.is_none() {
        conns.iter().rposition(|c| c.is_open())
    } else {
        None
    };
    if http.is_none() && trig_ws.is_none() {
        eprintln!("broadcast: no connection to send the trigger on");
        return 1;
    }
    let mut subs: Vec<Sub> = conns
        .iter()
        .enumerate()
        .map(|(i, c)| Sub {
            next: 0,
            tail: [0; TAIL],
            tlen: 0,
            dead: !c.is_open() || Some(i) == trig_ws,
        })
        .collect();
    let nsubs = subs.iter().filter(|s| !s.dead).count();
    let k = o.count;
    let now = Instant::now();
    let mut t = Tally {
        sent: vec![None; k],
        got: vec![0; k],
        last: vec![now; k],
        delivered: 0,
        errors: est.failed as u64,
        first_error: None,
        lat: net::new_hist(),
        last_delivery: None,
    };
    let mut fanout = net::new_hist();
    // Let the server finish registering the last connections before the first broadcast.
    std::thread::sleep(Duration::from_millis(100));
    let w0 = procstat::window_start(probe);
    let first_trigger = Instant::now();
    let mut seq = 0usize;
    let mut fired_at: Option<Instant> = None;
    let mut http_req: Option<HttpReq> = None;
    let mut http_done = true;
    progress.restart();
    loop {
        let now = Instant::now();
        // The current broadcast is finished when every subscriber has it (and the HTTP answer
        // is in), or on timeout.
        if let Some(at) = fired_at {
            let cur = seq - 1;
            let all = t.got[cur] as usize >= nsubs;
            if (all && http_done) || now.duration_since(at) > o.timeout {
                if all {
                    if let Some(s) = t.sent[cur] {
                        fanout.saturating_record(
                            t.last[cur].duration_since(s).as_nanos().max(1) as u64
                        );
                    }
                }
                if let Some(mut h) = http_req.take() {
                    t.error(format!(
                        "trigger request {} unanswered after {:?}",
                        h.seq,
                        h.started.elapsed()
                    ));
                    let _ = poll.registry().deregister(&mut h.sock);
                }
                http_done = true;
                fired_at = None;
            }
        }
        if fired_at.is_none() {
            if seq == k {
                break;
            }
            // Fire broadcast `seq`.
            if let Some(ht) = &http {
                let mut path_t = ht.clone();
                path_t.path = with_seq(&ht.path, seq);
                let mut req = Vec::with_capacity(256);
                let _ = write!(
                    req,
                    "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    path_t.path, ht.host_header
                );
                match TcpStream::connect(ht.addr) {
                    Ok(mut s) => {
                        let _ = s.set_nodelay(true);
                        let _ = poll.registry().register(
                            &mut s,
                            HTTP,
                            Interest::READABLE | Interest::WRITABLE,
                        );
                        http_req = Some(HttpReq {
                            sock: s,
                            req,
                            wpos: 0,
                            resp: Vec::new(),
                            seq,
                            started: Instant::now(),
                        });
                        http_done = false;
                    }
                    Err(e) => t.error(format!("trigger connect: {e}")),
                }
            } else if let Some(ti) = trig_ws {
                let text = with_seq(o.trigger_ws.as_deref().unwrap_or(""), seq);
                let c = &mut conns[ti];
                ws::write_frame(&mut c.wbuf, ws::OP_TEXT, text.as_bytes());
                t.sent[seq] = Some(Instant::now());
                if let Err(e) = c.flush() {
                    t.error(format!("trigger connection: {e}"));
                }
            }
            fired_at = Some(Instant::now());
            seq += 1;
        }
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(50))) {
            if e.kind() != ErrorKind::Interrupted {
                eprintln!("broadcast: poll: {e}");
                break;
            }
        }
        for ev in events.iter() {
            if ev.token() == HTTP {
                if let Some(h) = http_req.as_mut() {
                    if let Some(_ok) = service_http(h, &mut t) {
                        let _ = poll.registry().deregister(&mut h.sock);
                        http_req = None;
                        http_done = true;
                    }
                }
                continue;
            }
            let i = ev.token().0;
            if Some(i) == trig_ws {
                let c = &mut conns[i];
                if c.is_open() && !net::drain_idle(c) {
                    t.error("trigger connection closed".into());
                    c.close(&poll);
                }
                continue;
            }
            let (c, s) = (&mut conns[i], &mut subs[i]);
            if s.dead {
                continue;
            }
            if !service_sub(c, s, &mut t, i) {
                s.dead = true;
                c.close(&poll);
            }
        }
        progress.tick(Instant::now(), |secs| {
            format!(
                "[broadcast {secs:.0}s] sent={seq}/{k} delivered={} errors={}",
                t.delivered, t.errors
            )
        });
    }
    let w = procstat::window_end(probe, &w0);
    progress.finish();
    if let Some(e) = &t.first_error {
        eprintln!("broadcast: first error: {e}");
    }
    w.warn_client("broadcast");
    let expected = (nsubs * k) as u64;
    let missing = expected.saturating_sub(t.delivered);
    let span = t
        .last_delivery
        .map_or(0.0, |l| l.duration_since(first_trigger).as_secs_f64());
    let rate = if span > 0.0 {
        t.delivered as f64 / span
    } else {
        0.0
    };
    let q = |h: &hdrhistogram::Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    // Summary in µs, shared by the human and the machine-readable lines.
    let (p50, p99, p999, max) = (
        q(&t.lat, 0.5),
        q(&t.lat, 0.99),
        q(&t.lat, 0.999),
        t.lat.max() as f64 / 1000.0,
    );
    let (fan50, fanmax) = (q(&fanout, 0.5), fanout.max() as f64 / 1000.0);
    let cpu_per = w.us_per(t.delivered);
    let rss = w.rss_kb();
    println!(
        "broadcast to {nsubs} subscribers x {k}: {} of {expected} delivered ({missing} missing) = {rate:.0} \
         deliveries/s; delivery latency p50 {:.1} µs p99 {:.1} µs p99.9 {:.1} µs max {:.1} µs; \
         fan-out complete p50 {:.1} µs max {:.1} µs; {} errors",
        t.delivered,
        p50,
        p99,
        p999,
        max,
        fan50,
        fanmax,
        t.errors
    );
    if probe.is_some() {
        println!("server: {cpu_per} CPU µs/delivery, RSS {rss} KiB");
    }
    println!(
        "broadcast: conns={} subscribers={nsubs} count={k} delivered={} missing={missing} deliveries_per_s={rate:.1} \
         p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} fanout_p50_us={:.1} fanout_max_us={:.1} errors={} \
         server_cpu_us_per_delivery={cpu_per} server_rss_kb={rss} client_cpu_pct={:.1}",
        o.conns,
        t.delivered,
        p50,
        p99,
        p999,
        max,
        fan50,
        fanmax,
        t.errors,
        w.client_pct()
    );
    i32::from(missing > 0 || t.errors > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_suffix() {
        assert_eq!(with_seq("/?message=hi", 7), "/?message=hi-7");
        assert_eq!(parse_seq(b"hi-7"), Some(7));
        assert_eq!(parse_seq(b"a-b-123"), Some(123));
        assert_eq!(parse_seq(b"hi"), None);
        assert_eq!(parse_seq(b"x-"), None);
    }
}
