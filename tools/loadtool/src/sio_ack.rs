//! `sio-ack`: C Socket.IO connections, each keeping P `42<id>["event","DATA"]` outstanding and
//! waiting for the ACKs `43<id>["Event Received: DATA"]` (checked byte for byte; acks may come
//! in any order within a connection's window). Reports acks/s, ack latency and, with
//! --server-pid, the server's CPU µs per ack over the measured window.

use crate::net::{self, Conn, ConnectOpts, Progress};
use crate::procstat::{self, ServerProbe};
use crate::sio::{self, Handler, SioConn};
use crate::ws;
use hdrhistogram::Histogram;
use mio::{Events, Poll};
use std::time::{Duration, Instant};

pub struct AckOpts {
    pub url: String,
    pub conns: usize,
    pub data: String,
    pub duration: Duration,
    pub warmup: Duration,
    pub pipeline: usize,
    pub concurrency: usize,
    pub quiet: bool,
}

struct AckConn {
    next_id: u64,
    /// (ack id, send time) of the events in flight; at most `pipeline` long.
    outstanding: Vec<(u64, Instant)>,
}

struct Ctx {
    /// `["DATA"]`-less JSON argument of the event: `"DATA"`.
    arg: Vec<u8>,
    /// The exact ACK body: `["Event Received: DATA"]`.
    expect: Vec<u8>,
    scratch: Vec<u8>,
    acks: Vec<AckConn>,
    sending: bool,
    measuring: bool,
    hist: Histogram<u64>,
    done: u64,
    total: u64,
}

impl Ctx {
    #[inline]
    fn send(&mut self, idx: usize, w: &mut Vec<u8>, now: Instant) {
        let a = &mut self.acks[idx];
        let id = a.next_id;
        a.next_id += 1;
        a.outstanding.push((id, now));
        sio::event_packet(&mut self.scratch, Some(id), "event", &self.arg);
        sio::send(w, &self.scratch);
    }
}

impl Handler for Ctx {
    fn packet(
        &mut self,
        idx: usize,
        w: &mut Vec<u8>,
        pkt: &[u8],
        now: Instant,
    ) -> Result<(), String> {
        let Some((id, body)) = sio::parse_ack(pkt) else {
            return Err(format!(
                "expected an ACK 3<id>[…], got {:?}",
                String::from_utf8_lossy(&pkt[..pkt.len().min(80)])
            ));
        };
        if body != self.expect.as_slice() {
            return Err(format!(
                "ACK {id} is {:?}, expected {:?}",
                String::from_utf8_lossy(&body[..body.len().min(80)]),
                String::from_utf8_lossy(&self.expect)
            ));
        }
        let a = &mut self.acks[idx];
        let Some(k) = a.outstanding.iter().position(|&(i, _)| i == id) else {
            return Err(format!("ACK {id} for no event in flight"));
        };
        let (_, t) = a.outstanding.swap_remove(k);
        self.total += 1;
        if self.measuring {
            self.hist
                .saturating_record(now.duration_since(t).as_nanos().max(1) as u64);
            self.done += 1;
        }
        if self.sending {
            self.send(idx, w, now);
        }
        Ok(())
    }
}

pub fn run(o: &AckOpts, probe: Option<&ServerProbe>) -> i32 {
    let url = sio::endpoint_url(&o.url);
    let target = match ws::parse_url(&url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadtool: {e}");
            return 2;
        }
    };
    if !sio::plain_json_text(&o.data) {
        eprintln!("loadtool: --data must be printable ASCII without '\"' or '\\'");
        return 2;
    }
    let pipeline = o.pipeline.max(1);
    let copts = ConnectOpts {
        concurrency: o.concurrency,
        raw: false,
        rbuf: 4096,
        wbuf: pipeline * (o.data.len() + 64) + 256,
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
        "sio-ack",
    );
    if let Some(e) = &est.first_error {
        eprintln!(
            "sio-ack: {} of {} WebSocket connections failed, first: {e}",
            est.failed, o.conns
        );
    }
    let (mut sios, sest) = sio::connect_all(
        &mut poll,
        &mut events,
        &mut conns,
        Duration::from_secs(10),
        &mut progress,
        "sio-ack",
    );
    progress.finish();
    if let Some(e) = &sest.first_error {
        eprintln!(
            "sio-ack: {} Socket.IO connects failed, first: {e}",
            sest.failed
        );
    }
    let mut errors = (est.failed + sest.failed) as u64;
    let mut first_error: Option<String> = None;

    let mut cx = Ctx {
        arg: format!("\"{}\"", o.data).into_bytes(),
        expect: format!("[\"Event Received: {}\"]", o.data).into_bytes(),
        scratch: Vec::with_capacity(o.data.len() + 64),
        acks: (0..conns.len())
            .map(|_| AckConn {
                next_id: 0,
                outstanding: Vec::with_capacity(pipeline),
            })
            .collect(),
        sending: true,
        measuring: false,
        hist: net::new_hist(),
        done: 0,
        total: 0,
    };
    let fail = |c: &mut Conn,
                s: &mut SioConn,
                poll: &Poll,
                e: String,
                i: usize,
                errors: &mut u64,
                first: &mut Option<String>| {
        *errors += 1;
        first.get_or_insert(format!("conn {i}: {e}"));
        sio::kill(c, s, poll);
    };
    // Prime every ready connection with P events.
    for i in 0..conns.len() {
        if !sios[i].is_ready() {
            continue;
        }
        let now = Instant::now();
        for _ in 0..pipeline {
            cx.send(i, &mut conns[i].wbuf, now);
        }
        if let Err(e) = sio::service(&mut conns[i], &mut sios[i], &mut cx, i) {
            fail(
                &mut conns[i],
                &mut sios[i],
                &poll,
                e,
                i,
                &mut errors,
                &mut first_error,
            );
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
                eprintln!("sio-ack: poll: {e}");
                break;
            }
        }
        for ev in events.iter() {
            let i = ev.token().0;
            if i >= conns.len() || !sios[i].is_ready() {
                continue;
            }
            if let Err(e) = sio::service(&mut conns[i], &mut sios[i], &mut cx, i) {
                fail(
                    &mut conns[i],
                    &mut sios[i],
                    &poll,
                    e,
                    i,
                    &mut errors,
                    &mut first_error,
                );
            }
        }
        progress.tick(Instant::now(), |t| {
            let now = Instant::now();
            let rate = (cx.done - last_done) as f64 / now.duration_since(last_t).as_secs_f64();
            last_done = cx.done;
            last_t = now;
            let open = sios.iter().filter(|s| s.is_ready()).count();
            format!(
                "[sio-ack {t:.0}s] acks={} rate={rate:.0}/s open={open} errors={errors}",
                cx.done
            )
        });
    }
    let w = window.map(|ws| procstat::window_end(probe, &ws));
    progress.finish();
    if let Some(e) = &first_error {
        eprintln!("sio-ack: first error: {e}");
    }
    let done = cx.done;
    let secs = w
        .as_ref()
        .map_or(o.duration.as_secs_f64(), |w| w.wall_ns as f64 / 1e9);
    let hist = &cx.hist;
    let q = |p: f64| hist.value_at_quantile(p) as f64 / 1000.0;
    let (p50, p99, p999, max) = (q(0.5), q(0.99), q(0.999), hist.max() as f64 / 1000.0);
    let open = sios.iter().filter(|s| s.is_ready()).count();
    let pings: u64 = sios.iter().map(|s| s.pings).sum();
    let (cpu_per, rss, spct, cpct, other, cother) = match &w {
        Some(w) => {
            w.warn_client("sio-ack");
            w.warn_other("sio-ack");
            (
                w.us_per(done),
                w.rss_kb(),
                w.server_pct().map_or("na".into(), |p| format!("{p:.1}")),
                format!("{:.1}", w.client_pct()),
                w.other_pct(),
                w.client_other_pct(),
            )
        }
        None => {
            let na = || "na".to_string();
            (na(), na(), na(), na(), na(), na())
        }
    };
    println!(
        "sio-ack {} conns ({} ready, {open} open at the end), pipeline {pipeline}, data {:?}: {:.0} acks/s over \
         {secs:.2} s ({done} acks; {} with the warm-up), latency p50 {p50:.1} µs p99 {p99:.1} µs p99.9 {p999:.1} µs \
         max {max:.1} µs, {pings} Engine.IO pings answered, {errors} errors",
        o.conns,
        sest.ok,
        o.data,
        done as f64 / secs,
        cx.total,
    );
    if probe.is_some() {
        println!("server: {cpu_per} CPU µs/ack ({spct}% of a core), RSS {rss} KiB; client {cpct}% of a core");
    }
    println!(
        "sio-ack: conns={} ready={} pipeline={pipeline} acks={done} acks_total={} duration_s={secs:.3} \
         acks_per_s={:.1} p50_us={p50:.1} p99_us={p99:.1} p999_us={p999:.1} max_us={max:.1} errors={errors} \
         server_cpu_us_per_ack={cpu_per} server_cpu_pct={spct} server_rss_kb={rss} client_cpu_pct={cpct} \
         server_core_other_pct={other} client_core_other_pct={cother}",
        o.conns,
        sest.ok,
        cx.total,
        done as f64 / secs,
    );
    i32::from(errors > 0 || done == 0)
}
