//! `echo`: C connections, each keeping P messages of S bytes in flight and waiting for their
//! echoes; every echo is checked byte for byte against what was sent. The hot path allocates
//! nothing: payloads are slices of one pre-masked pattern, buffers are sized up front.

use crate::net::{self, Conn, ConnectOpts, Progress, ReadOutcome};
use crate::procstat::{self, ServerProbe};
use crate::ws::{self, Ev, Rng};
use hdrhistogram::Histogram;
use mio::{Events, Poll};
use std::time::{Duration, Instant};

pub struct EchoOpts {
    pub url: String,
    pub conns: usize,
    pub size: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub pipeline: usize,
    pub text: bool,
    pub raw: bool,
    pub concurrency: usize,
    pub quiet: bool,
}

/// Distinct payload offsets (multiples of 4, so the pre-masked pattern lines up with the mask).
const OFFSETS: u64 = 1021;

/// The bytes of every message: `pattern[off..off+size]`, and the same masked with ws::MASK.
struct Payload {
    pattern: Vec<u8>,
    masked: Vec<u8>,
    size: usize,
}

impl Payload {
    fn new(size: usize) -> Payload {
        let mut rng = Rng::new();
        let len = OFFSETS as usize * 4 + size;
        // Printable ASCII, so any slice is valid UTF-8 for --text.
        let pattern: Vec<u8> = (0..len)
            .map(|_| b'!' + (rng.next_u64() % 94) as u8)
            .collect();
        let masked = pattern
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ ws::MASK[i & 3])
            .collect();
        Payload {
            pattern,
            masked,
            size,
        }
    }
    #[inline]
    fn offset(conn: u32, seq: u64) -> usize {
        let h = seq
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add((conn as u64).wrapping_mul(40503));
        4 * (h % OFFSETS) as usize
    }
    #[inline]
    fn expected(&self, conn: u32, seq: u64) -> &[u8] {
        let o = Self::offset(conn, seq);
        &self.pattern[o..o + self.size]
    }
}

/// Per-connection echo bookkeeping.
struct EchoConn {
    id: u32,
    sent: u64,
    recv: u64,
    /// Bytes of the oldest in-flight message verified so far.
    pos: usize,
    /// Send time of message `seq`, at `ring[seq % pipeline]`.
    ring: Box<[Instant]>,
    dead: bool,
}

struct Ctx<'a> {
    payload: &'a Payload,
    opcode: u8,
    raw: bool,
    pipeline: usize,
    sending: bool,
    measuring: bool,
    now: Instant,
    hist: &'a mut Histogram<u64>,
    done: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Ctx<'_> {
    fn error(&mut self, e: impl Into<String>) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.into());
        }
    }

    #[inline]
    fn send(&self, w: &mut Vec<u8>, ec: &mut EchoConn) {
        let o = Payload::offset(ec.id, ec.sent);
        if self.raw {
            w.extend_from_slice(&self.payload.pattern[o..o + self.payload.size]);
        } else {
            ws::write_header(w, self.opcode, true, self.payload.size);
            w.extend_from_slice(&self.payload.masked[o..o + self.payload.size]);
        }
        ec.ring[(ec.sent % self.pipeline as u64) as usize] = self.now;
        ec.sent += 1;
    }

    /// Checks a piece of echoed payload; completes the message when `end`.
    #[inline]
    fn data(&mut self, w: &mut Vec<u8>, ec: &mut EchoConn, chunk: &[u8], end: bool) -> bool {
        if ec.recv >= ec.sent {
            self.error(format!("conn {}: echo with nothing in flight", ec.id));
            return false;
        }
        let size = self.payload.size;
        if ec.pos + chunk.len() > size {
            self.error(format!("conn {}: echo longer than {size} bytes", ec.id));
            return false;
        }
        let exp = &self.payload.expected(ec.id, ec.recv)[ec.pos..ec.pos + chunk.len()];
        if exp != chunk {
            self.error(format!(
                "conn {}: echo of message {} differs from what was sent",
                ec.id, ec.recv
            ));
            return false;
        }
        ec.pos += chunk.len();
        if end {
            if ec.pos != size {
                self.error(format!(
                    "conn {}: echo of {} bytes, sent {size}",
                    ec.id, ec.pos
                ));
                return false;
            }
            let t = ec.ring[(ec.recv % self.pipeline as u64) as usize];
            ec.recv += 1;
            ec.pos = 0;
            if self.measuring {
                self.hist
                    .saturating_record(self.now.duration_since(t).as_nanos().max(1) as u64);
                self.done += 1;
            }
            if self.sending {
                self.send(w, ec);
            }
        }
        true
    }

    /// Processes `buf`; returns bytes consumed, or None on a verification/protocol failure.
    fn process(&mut self, c: &mut Conn, ec: &mut EchoConn) -> Option<usize> {
        let Conn {
            rbuf,
            rlen,
            wbuf,
            parser,
            ..
        } = c;
        let buf = &rbuf[..*rlen];
        if self.raw {
            let mut rest = buf;
            while !rest.is_empty() {
                let take = rest.len().min(self.payload.size - ec.pos);
                let end = ec.pos + take == self.payload.size;
                if !self.data(wbuf, ec, &rest[..take], end) {
                    return None;
                }
                rest = &rest[take..];
            }
            return Some(buf.len());
        }
        let mut ok = true;
        let used = parser.feed(buf, |ev| {
            ok = match ev {
                Ev::Data { opcode, chunk, end } => {
                    if opcode != self.opcode {
                        self.error(format!(
                            "conn {}: echo opcode {opcode}, sent {}",
                            ec.id, self.opcode
                        ));
                        false
                    } else {
                        self.data(wbuf, ec, chunk, end)
                    }
                }
                Ev::Ping(p) => {
                    ws::write_frame(wbuf, ws::OP_PONG, p);
                    true
                }
                Ev::Pong => true,
                Ev::Close(code) => {
                    self.error(format!("conn {}: server closed ({code})", ec.id));
                    false
                }
                Ev::Error(e) => {
                    self.error(format!("conn {}: {e}", ec.id));
                    false
                }
            };
            ok
        });
        ok.then_some(used)
    }
}

/// Reads, verifies and answers on one connection until it would block. False = dead.
fn service(c: &mut Conn, ec: &mut EchoConn, cx: &mut Ctx) -> bool {
    loop {
        match c.read_once() {
            Ok(ReadOutcome::Data { short, .. }) => {
                cx.now = Instant::now();
                let Some(used) = cx.process(c, ec) else {
                    return false;
                };
                c.consume(used);
                if !short {
                    continue;
                }
                break;
            }
            Ok(ReadOutcome::WouldBlock) => break,
            Ok(ReadOutcome::Eof) => {
                cx.error(format!("conn {}: closed by the server", ec.id));
                return false;
            }
            Err(e) => {
                cx.error(format!("conn {}: {e}", ec.id));
                return false;
            }
        }
    }
    if let Err(e) = c.flush() {
        cx.error(format!("conn {}: write: {e}", ec.id));
        return false;
    }
    true
}

pub fn run(o: &EchoOpts, probe: Option<&ServerProbe>) -> i32 {
    let target = match ws::parse_url(&o.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadtool: {e}");
            return 2;
        }
    };
    let pipeline = o.pipeline.max(1);
    let frame = o.size + 14;
    let copts = ConnectOpts {
        concurrency: o.concurrency,
        raw: o.raw,
        rbuf: (frame + 64).clamp(4096, 64 * 1024),
        wbuf: pipeline * frame + 256,
        timeout: Duration::from_secs(10),
    };
    let mut poll = Poll::new().expect("epoll");
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Conn> = Vec::with_capacity(o.conns);
    let mut progress = Progress::new(o.quiet);
    let est = net::establish(
        &mut poll,
        &mut events,
        &mut conns,
        &target,
        o.conns,
        &copts,
        &mut progress,
        "echo",
    );
    progress.finish();
    if let Some(e) = &est.first_error {
        eprintln!(
            "echo: {} of {} connections failed, first: {e}",
            est.failed, o.conns
        );
    }

    let payload = Payload::new(o.size);
    let mut hist = net::new_hist();
    let mut ecs: Vec<EchoConn> = (0..conns.len())
        .map(|i| EchoConn {
            id: i as u32,
            sent: 0,
            recv: 0,
            pos: 0,
            ring: vec![Instant::now(); pipeline].into_boxed_slice(),
            dead: !conns[i].is_open(),
        })
        .collect();
    let mut cx = Ctx {
        payload: &payload,
        opcode: if o.text { ws::OP_TEXT } else { ws::OP_BINARY },
        raw: o.raw,
        pipeline,
        sending: true,
        measuring: false,
        now: Instant::now(),
        hist: &mut hist,
        done: 0,
        errors: est.failed as u64,
        first_error: None,
    };
    // Prime every connection with P messages.
    for (c, ec) in conns.iter_mut().zip(ecs.iter_mut()) {
        if ec.dead {
            continue;
        }
        cx.now = Instant::now();
        for _ in 0..pipeline {
            cx.send(&mut c.wbuf, ec);
        }
        if !service(c, ec, &mut cx) {
            ec.dead = true;
            c.close(&poll);
        }
    }
    let start = Instant::now();
    let measure_at = start + o.warmup;
    let end_at = measure_at + o.duration;
    let mut window = None;
    progress.restart();
    let mut last_done = 0u64;
    let mut last_t = Instant::now();
    loop {
        let now = Instant::now();
        if !cx.measuring && window.is_none() && now >= measure_at {
            cx.measuring = true;
            window = Some(procstat::window_start(probe));
        }
        if now >= end_at {
            break;
        }
        let next = if cx.measuring { end_at } else { measure_at };
        let wait = next
            .saturating_duration_since(now)
            .min(Duration::from_millis(200));
        if let Err(e) = poll.poll(&mut events, Some(wait)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                eprintln!("echo: poll: {e}");
                break;
            }
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let (c, ec) = (&mut conns[i], &mut ecs[i]);
            if ec.dead {
                continue;
            }
            if !service(c, ec, &mut cx) {
                ec.dead = true;
                c.close(&poll);
            }
        }
        progress.tick(Instant::now(), |t| {
            let now = Instant::now();
            let rate = (cx.done - last_done) as f64 / now.duration_since(last_t).as_secs_f64();
            last_done = cx.done;
            last_t = now;
            let open = ecs.iter().filter(|e| !e.dead).count();
            format!(
                "[echo {t:.0}s] msgs={} rate={rate:.0}/s open={open} errors={}",
                cx.done, cx.errors
            )
        });
    }
    let w = window.map(|ws| procstat::window_end(probe, &ws));
    progress.finish();
    let done = cx.done;
    let errors = cx.errors;
    if let Some(e) = cx.first_error.take() {
        eprintln!("echo: first error: {e}");
    }
    let secs = w
        .as_ref()
        .map_or(o.duration.as_secs_f64(), |w| w.wall_ns as f64 / 1e9);
    let q = |p: f64| hist.value_at_quantile(p) as f64 / 1000.0;
    // Latency summary in µs, shared by the human and the machine-readable lines.
    let (p50, p99, p999, max) = (q(0.5), q(0.99), q(0.999), hist.max() as f64 / 1000.0);
    let open = ecs.iter().filter(|e| !e.dead).count();
    let (cpu_per, rss, spct, cpct) = match &w {
        Some(w) => {
            w.warn_client("echo");
            (
                w.us_per(done),
                w.rss_kb(),
                w.server_pct().map_or("na".into(), |p| format!("{p:.1}")),
                format!("{:.1}", w.client_pct()),
            )
        }
        None => ("na".into(), "na".into(), "na".into(), "na".into()),
    };
    let mode = if o.raw {
        "raw"
    } else if o.text {
        "text"
    } else {
        "binary"
    };
    println!(
        "echo {} conns ({} open), {} B {mode} messages, pipeline {pipeline}: {:.0} msgs/s over {secs:.2} s, \
         latency p50 {:.1} µs p99 {:.1} µs p99.9 {:.1} µs max {:.1} µs, {errors} errors",
        o.conns,
        open,
        o.size,
        done as f64 / secs,
        p50,
        p99,
        p999,
        max
    );
    if probe.is_some() {
        println!("server: {cpu_per} CPU µs/msg ({spct}% of a core), RSS {rss} KiB; client {cpct}% of a core");
    }
    println!(
        "echo: conns={} size={} pipeline={pipeline} mode={mode} msgs={done} duration_s={secs:.3} msgs_per_s={:.1} \
         p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} errors={errors} server_cpu_us_per_msg={cpu_per} \
         server_cpu_pct={spct} server_rss_kb={rss} client_cpu_pct={cpct}",
        o.conns,
        o.size,
        done as f64 / secs,
        p50,
        p99,
        p999,
        max
    );
    i32::from(errors > 0 || done == 0)
}
