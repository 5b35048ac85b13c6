//! `scale-client`: one load process of `scale` (scale.rs). Opens C WebSocket connections (from
//! `--bind-ip` if given), says `connected …` on stdout once every first attempt has succeeded or
//! failed (first attempts are never retried: a failure is a failure), then holds them and
//! answers lines on stdin:
//!
//! - `stats REQ` → one `stats req=REQ …` line of counters (see [`Client::stats_line`]);
//! - `quit` (or stdin closed) → exit.
//!
//! While holding, every text message ending in `-SEQ` counts as a delivery of broadcast SEQ,
//! with the CLOCK_REALTIME time of its first and last delivery in this process (the coordinator
//! takes the max over processes). A close frame from the server is counted by code, answered
//! with the same code, and (with `--reconnect`) the connection is opened again once the server
//! has closed the TCP connection; reconnect attempts, successes and failures are counted
//! separately from the first connects, and a failed reconnect is retried at most
//! `--reconnect-attempts` times in all (each failure counted).

use crate::net::{self, Conn, ReadOutcome, State};
use crate::ws::{self, Ev, FrameParser, Rng, Target};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::collections::{BTreeMap, VecDeque};
use std::io::ErrorKind;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub struct ClientOpts {
    pub url: String,
    pub conns: usize,
    pub id: usize,
    pub concurrency: usize,
    pub reconnect: bool,
    pub reconnect_attempts: u32,
}

const STDIN: Token = Token(usize::MAX - 1);
const TAIL: usize = 16;
/// Highest broadcast sequence number counted (a guard against nonsense allocating).
const MAX_SEQ: u64 = 100_000;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection that answered the server's close frame waits for the TCP close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// CLOCK_REALTIME in ns: the clock all processes of a scale run share.
pub fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Queued for a (re)connect.
    Waiting,
    /// Connect or handshake in flight.
    Connecting,
    Open,
    /// Answered the server's close frame; waiting for the TCP close.
    Closing,
    /// First connect failed, or reconnects gave up, or no reconnecting.
    Done,
}

struct Slot {
    phase: Phase,
    /// The attempt in flight is the first one of this slot.
    initial: bool,
    /// Failed reconnect attempts since the last close.
    failed_attempts: u32,
    closing_since: Instant,
    /// When the TCP connect of the attempt in flight completed.
    tcp_at: Instant,
    /// Last broadcast sequence number received on this slot (any of its connections).
    last_seq: i64,
    /// Times the server closed (or dropped) this slot's connection.
    closes: u32,
    tail: [u8; TAIL],
    tlen: usize,
}

#[derive(Default, Clone, Copy)]
struct SeqStat {
    count: u64,
    first_ns: u64,
    last_ns: u64,
}

#[derive(Default)]
struct Counters {
    initial_ok: u64,
    initial_failed: u64,
    reconnect_attempts: u64,
    reconnect_ok: u64,
    reconnect_failed: u64,
    gave_up: u64,
    eof_no_close: u64,
    errors: u64,
    close_timeouts: u64,
    /// Connections reset (not closed) by the server after we answered its close frame.
    close_resets: u64,
    unexpected: u64,
    codes: BTreeMap<u16, u64>,
    first_close_ns: u64,
    last_close_ns: u64,
    last_reconnect_ns: u64,
    first_error: Option<String>,
    /// Connect-to-open times of first connects and of reconnects, in buckets
    /// (see [`LAT_BOUNDS_MS`]).
    lat_initial: [u64; 6],
    lat_reconnect: [u64; 6],
    /// The two parts of a reconnect: TCP connect (SYN to established, in the kernel) and
    /// WebSocket handshake (request to 101, needs the worker to accept and answer).
    lat_reconnect_tcp: [u64; 6],
    lat_reconnect_hs: [u64; 6],
    max_reconnect_ms: u64,
}

/// Upper bounds (ms) of the latency buckets; the last bucket is everything above. A connect
/// whose SYN was dropped takes at least 1 s (the first SYN retransmission).
pub const LAT_BOUNDS_MS: [u64; 5] = [10, 100, 1000, 3000, 7000];

fn bucket(ms: u64) -> usize {
    LAT_BOUNDS_MS
        .iter()
        .position(|&b| ms < b)
        .unwrap_or(LAT_BOUNDS_MS.len())
}

struct Client {
    target: Target,
    poll: Poll,
    conns: Vec<Conn>,
    slots: Vec<Slot>,
    queue: VecDeque<usize>,
    retry: Vec<(Instant, usize)>,
    inflight: usize,
    initial_pending: usize,
    seqs: Vec<SeqStat>,
    c: Counters,
    rng: Rng,
    o: ClientOpts,
}

impl Client {
    fn note_error(&mut self, e: String) {
        if self.c.first_error.is_none() {
            self.c.first_error = Some(e);
        }
    }

    fn start(&mut self, i: usize) {
        let initial = self.slots[i].initial;
        if !initial {
            self.c.reconnect_attempts += 1;
        }
        match net::connect_to(self.target.addr) {
            Ok(mut s) => {
                let _ = s.set_nodelay(true);
                if let Err(e) = self.poll.registry().register(
                    &mut s,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    self.failed(i, format!("register: {e}"));
                    return;
                }
                let c = &mut self.conns[i];
                c.sock = Some(s);
                c.state = State::Connecting;
                c.rlen = 0;
                c.wbuf.clear();
                c.wpos = 0;
                c.parser = FrameParser::default();
                c.started = Instant::now();
                self.slots[i].phase = Phase::Connecting;
                self.inflight += 1;
            }
            Err(e) => self.failed(i, format!("connect: {e}")),
        }
    }

    /// An attempt failed (the caller has closed the socket and fixed `inflight`).
    fn failed(&mut self, i: usize, e: String) {
        let s = &mut self.slots[i];
        if s.initial {
            s.phase = Phase::Done;
            self.c.initial_failed += 1;
            self.initial_pending -= 1;
            self.note_error(format!("first connect: {e}"));
            return;
        }
        self.c.reconnect_failed += 1;
        s.failed_attempts += 1;
        if s.failed_attempts >= self.o.reconnect_attempts {
            s.phase = Phase::Done;
            self.c.gave_up += 1;
        } else {
            s.phase = Phase::Waiting;
            let back = Duration::from_millis(100 * u64::from(s.failed_attempts));
            self.retry.push((Instant::now() + back, i));
        }
        self.note_error(format!("reconnect: {e}"));
    }

    fn opened(&mut self, i: usize) {
        self.inflight -= 1;
        let s = &mut self.slots[i];
        s.phase = Phase::Open;
        s.failed_attempts = 0;
        let took = self.conns[i].started.elapsed().as_millis() as u64;
        if s.initial {
            self.c.lat_initial[bucket(took)] += 1;
        } else {
            let tcp = s.tcp_at.duration_since(self.conns[i].started).as_millis() as u64;
            self.c.lat_reconnect_tcp[bucket(tcp)] += 1;
            self.c.lat_reconnect_hs[bucket(s.tcp_at.elapsed().as_millis() as u64)] += 1;
            self.c.lat_reconnect[bucket(took)] += 1;
            self.c.max_reconnect_ms = self.c.max_reconnect_ms.max(took);
        }
        if s.initial {
            s.initial = false;
            self.c.initial_ok += 1;
            self.initial_pending -= 1;
        } else {
            self.c.reconnect_ok += 1;
            self.c.last_reconnect_ns = realtime_ns();
        }
        // The handshake read may have brought frames along.
        self.service_open(i);
    }

    /// The server ended this slot's connection (close frame, EOF or error).
    fn server_closed(&mut self, i: usize) {
        let now = realtime_ns();
        if self.c.first_close_ns == 0 {
            self.c.first_close_ns = now;
        }
        self.c.last_close_ns = now;
        self.slots[i].closes += 1;
    }

    /// The TCP connection is gone: release it and queue a reconnect.
    fn finish_close(&mut self, i: usize) {
        self.conns[i].close(&self.poll);
        let s = &mut self.slots[i];
        s.initial = false;
        if self.o.reconnect {
            s.phase = Phase::Waiting;
            self.queue.push_back(i);
        } else {
            s.phase = Phase::Done;
        }
    }

    fn service_open(&mut self, i: usize) {
        let mut close_code: Option<u16> = None;
        let mut proto_err: Option<&'static str> = None;
        let mut eof = false;
        let mut io_err: Option<String> = None;
        let mut drained = false;
        loop {
            {
                let c = &mut self.conns[i];
                let s = &mut self.slots[i];
                let Conn {
                    rbuf,
                    rlen,
                    wbuf,
                    parser,
                    ..
                } = c;
                let seqs = &mut self.seqs;
                let cnt = &mut self.c;
                let used = parser.feed(&rbuf[..*rlen], |ev| match ev {
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
                                Some(seq) if seq <= MAX_SEQ && seq as i64 > s.last_seq => {
                                    s.last_seq = seq as i64;
                                    let seq = seq as usize;
                                    if seqs.len() <= seq {
                                        seqs.resize(seq + 1, SeqStat::default());
                                    }
                                    let now = realtime_ns();
                                    let st = &mut seqs[seq];
                                    if st.count == 0 {
                                        st.first_ns = now;
                                    }
                                    st.count += 1;
                                    st.last_ns = now;
                                }
                                _ => cnt.unexpected += 1,
                            }
                            s.tlen = 0;
                        }
                        true
                    }
                    Ev::Ping(p) => {
                        ws::write_frame(wbuf, ws::OP_PONG, p);
                        true
                    }
                    Ev::Pong => true,
                    Ev::Close(code) => {
                        close_code = Some(code);
                        false
                    }
                    Ev::Error(e) => {
                        proto_err = Some(e);
                        false
                    }
                });
                c.consume(used);
            }
            if close_code.is_some() || proto_err.is_some() || drained {
                break;
            }
            match self.conns[i].read_once() {
                Ok(ReadOutcome::Data { short }) => drained = short,
                Ok(ReadOutcome::WouldBlock) => break,
                Ok(ReadOutcome::Eof) => {
                    eof = true;
                    break;
                }
                Err(e) => {
                    io_err = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(code) = close_code {
            self.server_closed(i);
            *self.c.codes.entry(code).or_insert(0) += 1;
            let c = &mut self.conns[i];
            // Answer with the same code (RFC 6455 §5.5.1); the server then closes the TCP
            // connection. A write error here means it already has.
            c.wbuf.clear();
            c.wpos = 0;
            let payload = if code == 1005 {
                Vec::new()
            } else {
                code.to_be_bytes().to_vec()
            };
            ws::write_frame(&mut c.wbuf, ws::OP_CLOSE, &payload);
            let _ = c.flush();
            self.slots[i].phase = Phase::Closing;
            self.slots[i].closing_since = Instant::now();
            self.service_closing(i);
            return;
        }
        if let Some(e) = proto_err {
            self.server_closed(i);
            self.c.errors += 1;
            self.note_error(format!("protocol: {e}"));
            self.finish_close(i);
            return;
        }
        if eof {
            self.server_closed(i);
            self.c.eof_no_close += 1;
            self.finish_close(i);
            return;
        }
        if let Some(e) = io_err {
            self.server_closed(i);
            self.c.errors += 1;
            self.note_error(format!("read: {e}"));
            self.finish_close(i);
            return;
        }
        if self.conns[i].flush().is_err() {
            self.server_closed(i);
            self.c.errors += 1;
            self.note_error("write failed".into());
            self.finish_close(i);
        }
    }

    /// Reads and discards until the server's TCP close.
    fn service_closing(&mut self, i: usize) {
        let c = &mut self.conns[i];
        loop {
            c.rlen = 0;
            match c.read_once() {
                Ok(ReadOutcome::Data { .. }) => {}
                Ok(ReadOutcome::WouldBlock) => return,
                Ok(ReadOutcome::Eof) => break,
                Err(_) => {
                    self.c.close_resets += 1;
                    break;
                }
            }
        }
        self.finish_close(i);
    }

    fn event(&mut self, i: usize) {
        match self.slots[i].phase {
            Phase::Connecting => {
                let c = &mut self.conns[i];
                let was_connecting = c.state == State::Connecting;
                let r = net::step(c, &self.target, false, &mut self.rng);
                if was_connecting && c.state != State::Connecting {
                    self.slots[i].tcp_at = Instant::now();
                }
                match r {
                    Ok(false) => {}
                    Ok(true) => self.opened(i),
                    Err(e) => {
                        self.inflight -= 1;
                        self.conns[i].close(&self.poll);
                        self.failed(i, e);
                    }
                }
            }
            Phase::Open => self.service_open(i),
            Phase::Closing => self.service_closing(i),
            Phase::Waiting | Phase::Done => {}
        }
    }

    fn scan(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            match self.slots[i].phase {
                Phase::Connecting
                    if now.duration_since(self.conns[i].started) > HANDSHAKE_TIMEOUT =>
                {
                    self.inflight -= 1;
                    self.conns[i].close(&self.poll);
                    self.failed(i, "handshake timed out".into());
                }
                Phase::Closing if now.duration_since(self.slots[i].closing_since) > CLOSE_WAIT => {
                    self.c.close_timeouts += 1;
                    self.finish_close(i);
                }
                _ => {}
            }
        }
        let mut k = 0;
        while k < self.retry.len() {
            if self.retry[k].0 <= now {
                let (_, i) = self.retry.swap_remove(k);
                self.queue.push_back(i);
            } else {
                k += 1;
            }
        }
    }

    fn stats_line(&self, req: &str) -> String {
        use std::fmt::Write;
        let mut n = [0usize; 5];
        let mut hist = [0u64; 4];
        let mut hs_pending = 0usize;
        for (s, c) in self.slots.iter().zip(&self.conns) {
            n[s.phase as usize] += 1;
            hist[(s.closes as usize).min(3)] += 1;
            if s.phase == Phase::Connecting && c.state == State::Handshaking {
                hs_pending += 1;
            }
        }
        let c = &self.c;
        let mut out = String::with_capacity(512);
        let _ = write!(
            out,
            "stats req={req} id={} slots={} waiting={} connecting={} hs_pending={} open={} closing={} done={} \
             initial_ok={} initial_failed={} reconnect_attempts={} reconnect_ok={} reconnect_failed={} \
             gave_up={} eof_no_close={} errors={} close_timeouts={} close_resets={} unexpected={} first_close_ns={} \
             last_close_ns={} last_reconnect_ns={} client_cpu_ns={} max_reconnect_ms={} lat_initial={} lat_reconnect={} lat_reconnect_tcp={} lat_reconnect_hs={} \
             slot_closes={},{},{},{} codes=",
            self.o.id,
            self.slots.len(),
            n[Phase::Waiting as usize],
            n[Phase::Connecting as usize],
            hs_pending,
            n[Phase::Open as usize],
            n[Phase::Closing as usize],
            n[Phase::Done as usize],
            c.initial_ok,
            c.initial_failed,
            c.reconnect_attempts,
            c.reconnect_ok,
            c.reconnect_failed,
            c.gave_up,
            c.eof_no_close,
            c.errors,
            c.close_timeouts,
            c.close_resets,
            c.unexpected,
            c.first_close_ns,
            c.last_close_ns,
            c.last_reconnect_ns,
            crate::procstat::self_cpu_ns(),
            c.max_reconnect_ms,
            join(&c.lat_initial),
            join(&c.lat_reconnect),
            join(&c.lat_reconnect_tcp),
            join(&c.lat_reconnect_hs),
            hist[0],
            hist[1],
            hist[2],
            hist[3],
        );
        let codes: Vec<String> = c.codes.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        out.push_str(if codes.is_empty() { "-" } else { "" });
        out.push_str(&codes.join(","));
        out.push_str(" seqs=");
        let seqs: Vec<String> = self
            .seqs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.count > 0)
            .map(|(i, s)| format!("{i}:{}:{}:{}", s.count, s.first_ns, s.last_ns))
            .collect();
        out.push_str(if seqs.is_empty() { "-" } else { "" });
        out.push_str(&seqs.join(","));
        if let Some(e) = &c.first_error {
            let _ = write!(out, " first_error={e}");
        }
        out
    }
}

fn join(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// The digits after the last '-' of a message.
fn parse_seq(tail: &[u8]) -> Option<u64> {
    let i = tail.iter().rposition(|&b| b == b'-')?;
    let digits = &tail[i + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

pub fn run(o: ClientOpts) -> i32 {
    let target = match ws::parse_url(&o.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadtool: {e}");
            return 2;
        }
    };
    // SAFETY: fcntl on the standard input descriptor.
    unsafe {
        let fl = libc::fcntl(0, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(0, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
    let poll = Poll::new().expect("epoll");
    poll.registry()
        .register(&mut SourceFd(&0), STDIN, Interest::READABLE)
        .expect("register stdin");
    let n = o.conns;
    let now = Instant::now();
    let conns = (0..n)
        .map(|_| Conn {
            sock: None,
            tls: None,
            state: State::Closed,
            rbuf: vec![0; 512].into_boxed_slice(),
            rlen: 0,
            wbuf: Vec::with_capacity(256),
            wpos: 0,
            accept: [0; 28],
            parser: FrameParser::default(),
            started: now,
        })
        .collect();
    let slots = (0..n)
        .map(|_| Slot {
            phase: Phase::Waiting,
            initial: true,
            failed_attempts: 0,
            closing_since: now,
            tcp_at: now,
            last_seq: -1,
            closes: 0,
            tail: [0; TAIL],
            tlen: 0,
        })
        .collect();
    let mut cl = Client {
        target,
        poll,
        conns,
        slots,
        queue: (0..n).collect(),
        retry: Vec::new(),
        inflight: 0,
        initial_pending: n,
        seqs: Vec::new(),
        c: Counters::default(),
        rng: Rng::new(),
        o,
    };
    let t0 = Instant::now();
    let mut announced = false;
    let mut events = Events::with_capacity(1024);
    let mut last_scan = Instant::now();
    let mut line = Vec::<u8>::new();
    let mut quit = false;
    while !quit {
        while cl.inflight < cl.o.concurrency {
            let Some(i) = cl.queue.pop_front() else { break };
            cl.start(i);
        }
        if !announced && cl.initial_pending == 0 {
            announced = true;
            println!(
                "connected id={} ok={} failed={} elapsed_ms={:.1}{}",
                cl.o.id,
                cl.c.initial_ok,
                cl.c.initial_failed,
                t0.elapsed().as_secs_f64() * 1000.0,
                cl.c.first_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" first_error={e}"))
            );
        }
        if let Err(e) = cl.poll.poll(&mut events, Some(Duration::from_millis(50))) {
            if e.kind() != ErrorKind::Interrupted {
                eprintln!("scale-client {}: poll: {e}", cl.o.id);
                return 1;
            }
        }
        for ev in events.iter() {
            if ev.token() == STDIN {
                let mut buf = [0u8; 1024];
                loop {
                    // SAFETY: read(2) into a local buffer.
                    let r = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                    if r == 0 {
                        quit = true;
                        break;
                    }
                    if r < 0 {
                        let e = std::io::Error::last_os_error();
                        if e.kind() == ErrorKind::Interrupted {
                            continue;
                        }
                        if e.kind() != ErrorKind::WouldBlock {
                            quit = true;
                        }
                        break;
                    }
                    line.extend_from_slice(&buf[..r as usize]);
                }
                while let Some(p) = line.iter().position(|&b| b == b'\n') {
                    let cmd = String::from_utf8_lossy(&line[..p]).trim().to_string();
                    line.drain(..=p);
                    let mut w = cmd.split_whitespace();
                    match w.next() {
                        Some("stats") => println!("{}", cl.stats_line(w.next().unwrap_or("0"))),
                        Some("quit") => quit = true,
                        _ => {}
                    }
                }
                continue;
            }
            let i = ev.token().0;
            if i < cl.slots.len() {
                cl.event(i);
            }
        }
        let now = Instant::now();
        if now.duration_since(last_scan) >= Duration::from_millis(100) {
            last_scan = now;
            cl.scan(now);
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_and_buckets() {
        assert_eq!(parse_seq(b"scale-12"), Some(12));
        assert_eq!(parse_seq(b"scale-"), None);
        assert_eq!(parse_seq(b"this is server"), None);
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(10), 1);
        assert_eq!(bucket(999), 2);
        assert_eq!(bucket(1000), 3);
        assert_eq!(bucket(60_000), 5);
    }
}
