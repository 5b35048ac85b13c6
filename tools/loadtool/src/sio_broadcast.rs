//! `sio-broadcast`: C receivers join room "bench" (`42["join-room","bench"]`, then a
//! `42<id>["event","joined"]` whose ACK proves the join was handled, since a connection's
//! packets are handled in order); one more connection, the sender (not in the room), emits
//! `42["bcast","b-SEQ"]` (or with `--via say` `42["say",{"room":"bench","message":"b-SEQ"}]`,
//! delivered as `42["event","<sid> say: b-SEQ"]`) K times, at most W broadcasts in flight (a broadcast is in flight
//! until every receiver has it or --timeout passed). Every receiver must get each
//! `42["event","b-SEQ"]` exactly once. Other `event`s (a server may announce joins to the
//! room) are counted, not errors; after the join barrier the run waits until the receivers
//! have been quiet for 300 ms. A few unmeasured warm-up broadcasts come first; if one reaches
//! nobody within --timeout, the run stops (the server probably has no `bcast` handler).
//! Reports deliveries, missing ones, the time from the first measured emit to the last
//! delivery, deliveries/s, fan-out time, and (--server-pid) server CPU µs per delivery.

use crate::net::{self, Conn, ConnectOpts, Progress};
use crate::procstat::{self, ServerProbe};
use crate::sio::{self, Handler, SioConn};
use crate::ws;
use hdrhistogram::Histogram;
use mio::{Events, Poll};
use std::time::{Duration, Instant};

pub struct SioBroadcastOpts {
    pub url: String,
    pub via: Via,
    pub conns: usize,
    pub count: usize,
    pub warmup_count: usize,
    pub window: usize,
    pub timeout: Duration,
    pub concurrency: usize,
    pub quiet: bool,
}

/// A delivery: `2["event","b-SEQ"]` (`bcast`) or `2["event","<sid> say: b-SEQ"]` (`say`).
const EVENT: &[u8] = b"2[\"event\",\"";

/// How the sender makes the server broadcast to room "bench".
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// `42["bcast","b-SEQ"]` → `io.to("bench").emit("event", "b-SEQ")`.
    Bcast,
    /// `42["say",{"room":"bench","message":"b-SEQ"}]` →
    /// `socket.to("bench").emit("event", "<sid> say: b-SEQ")`.
    Say,
}

/// The sequence number of a delivery of the run for `via`, None for any other packet.
fn delivery_seq(pkt: &[u8], via: Via) -> Option<usize> {
    let text = pkt.strip_prefix(EVENT)?.strip_suffix(b"\"]")?;
    let i = text.windows(2).rposition(|w| w == b"b-")?;
    let (head, digits) = (&text[..i], &text[i + 2..]);
    let ok_head = match via {
        Via::Bcast => head.is_empty(),
        Via::Say => head.ends_with(b" say: "),
    };
    if !ok_head || digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

struct Tally {
    via: Via,
    nsubs: usize,
    sender: usize,
    /// Per broadcast: emit time, deliveries, time of the last delivery, finished.
    sent: Vec<Option<Instant>>,
    got: Vec<u32>,
    last: Vec<Option<Instant>>,
    finished: Vec<bool>,
    /// Per receiver, one bit per broadcast.
    seen: Vec<Vec<u64>>,
    /// Receivers whose join ACK came.
    joined: Vec<bool>,
    njoined: usize,
    /// Deliveries of measured broadcasts (seq >= measured_from).
    measured_from: usize,
    delivered: u64,
    lat: Histogram<u64>,
    last_delivery: Option<Instant>,
    /// `event`s that are not broadcasts of the run (e.g. join announcements), and when the
    /// last packet of any kind came to a receiver.
    other_events: u64,
    other_measured: u64,
    last_packet: Option<Instant>,
    /// A broadcast reached nobody: stop.
    dead_end: bool,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }
}

impl Tally {
    /// Whether a measured broadcast has been sent.
    fn measuring(&self) -> bool {
        self.sent
            .get(self.measured_from)
            .is_some_and(Option::is_some)
    }
}

impl Handler for Tally {
    fn packet(
        &mut self,
        idx: usize,
        _w: &mut Vec<u8>,
        pkt: &[u8],
        now: Instant,
    ) -> Result<(), String> {
        if idx == self.sender {
            return Err(format!(
                "the sender (not in the room) got {:?}",
                String::from_utf8_lossy(&pkt[..pkt.len().min(80)])
            ));
        }
        self.last_packet = Some(now);
        if let Some((_, body)) = sio::parse_ack(pkt) {
            if body != b"[\"Event Received: joined\"]" {
                return Err(format!("join ACK is {:?}", String::from_utf8_lossy(body)));
            }
            if !self.joined[idx] {
                self.joined[idx] = true;
                self.njoined += 1;
            }
            return Ok(());
        }
        let seq = delivery_seq(pkt, self.via);
        let Some(seq) = seq.filter(|&s| s < self.sent.len()) else {
            if pkt.starts_with(EVENT) && seq.is_none() {
                self.other_events += 1;
                if self.measuring() {
                    self.other_measured += 1;
                }
                return Ok(());
            }
            return Err(format!(
                "expected 42[\"event\",\"…b-SEQ\"], got 4{:?}",
                String::from_utf8_lossy(&pkt[..pkt.len().min(80)])
            ));
        };
        let bits = &mut self.seen[idx];
        let (word, bit) = (seq / 64, 1u64 << (seq % 64));
        if bits[word] & bit != 0 {
            self.error(format!("receiver {idx}: broadcast {seq} twice"));
            return Ok(());
        }
        bits[word] |= bit;
        self.got[seq] += 1;
        self.last[seq] = Some(now);
        if seq >= self.measured_from {
            self.delivered += 1;
            self.last_delivery = Some(now);
            if let Some(at) = self.sent[seq] {
                self.lat
                    .saturating_record(now.duration_since(at).as_nanos().max(1) as u64);
            }
        }
        Ok(())
    }
}

struct Run<'a> {
    poll: &'a mut Poll,
    events: &'a mut Events,
    conns: &'a mut [Conn],
    sios: &'a mut [SioConn],
    t: Tally,
    progress: Progress,
}

impl Run<'_> {
    /// Polls once and services every connection with an event.
    fn turn(&mut self, wait: Duration) {
        if let Err(e) = self.poll.poll(self.events, Some(wait)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                self.t.error(format!("poll: {e}"));
            }
        }
        for ev in self.events.iter() {
            let i = ev.token().0;
            if i >= self.conns.len() || !self.sios[i].is_ready() {
                continue;
            }
            if let Err(e) = sio::service(&mut self.conns[i], &mut self.sios[i], &mut self.t, i) {
                self.t.error(format!("conn {i}: {e}"));
                sio::kill(&mut self.conns[i], &mut self.sios[i], self.poll);
            }
        }
    }

    /// Broadcasts `from..to`, at most `window` in flight. Fan-out times of those that reached
    /// every receiver go to `fanout`.
    fn round(
        &mut self,
        from: usize,
        to: usize,
        window: usize,
        timeout: Duration,
        fanout: &mut Histogram<u64>,
        label: &str,
    ) {
        let mut next = from;
        let mut done = from;
        let mut inflight = 0usize;
        let mut scratch = Vec::with_capacity(64);
        let s = self.t.sender;
        let mut stop = false;
        loop {
            if self.t.dead_end {
                stop = true;
            }
            if !stop && next < to && !self.sios[s].is_ready() {
                // Nothing more can be sent: the rest counts as missing.
                self.t.error("the sender connection is gone".into());
                stop = true;
            }
            while !stop && inflight < window && next < to {
                scratch.clear();
                match self.t.via {
                    Via::Bcast => {
                        let arg = format!("\"b-{next}\"");
                        sio::event_packet(&mut scratch, None, "bcast", arg.as_bytes());
                    }
                    Via::Say => {
                        let arg = format!("{{\"room\":\"bench\",\"message\":\"b-{next}\"}}");
                        sio::event_packet(&mut scratch, None, "say", arg.as_bytes());
                    }
                }
                sio::send(&mut self.conns[s].wbuf, &scratch);
                self.t.sent[next] = Some(Instant::now());
                next += 1;
                inflight += 1;
                if let Err(e) = self.conns[s].flush() {
                    self.t.error(format!("sender: write: {e}"));
                    sio::kill(&mut self.conns[s], &mut self.sios[s], self.poll);
                    stop = true;
                }
            }
            if inflight == 0 && (next >= to || stop) {
                break;
            }
            self.turn(Duration::from_millis(20));
            let now = Instant::now();
            // Receivers lost on the way are not waited for.
            let nsubs = (0..self.sios.len())
                .filter(|&i| i != s && self.sios[i].is_ready())
                .count()
                .min(self.t.nsubs) as u32;
            for q in done..next {
                if self.t.finished[q] {
                    continue;
                }
                let all = self.t.got[q] >= nsubs;
                let late = self.t.sent[q].is_some_and(|at| now.duration_since(at) > timeout);
                if all || late {
                    self.t.finished[q] = true;
                    inflight -= 1;
                    if late && self.t.got[q] == 0 {
                        self.t.error(format!(
                            "broadcast {q} reached no receiver within {timeout:?}: does the server \
                             handle `{}`? Stopping",
                            match self.t.via {
                                Via::Bcast => "bcast",
                                Via::Say => "say",
                            }
                        ));
                        self.t.dead_end = true;
                    }
                    if all {
                        if let (Some(a), Some(b)) = (self.t.sent[q], self.t.last[q]) {
                            fanout.saturating_record(b.duration_since(a).as_nanos().max(1) as u64);
                        }
                    }
                }
            }
            while done < next && self.t.finished[done] {
                done += 1;
            }
            let t = &self.t;
            self.progress.tick(now, |secs| {
                format!(
                    "[sio-broadcast {label} {secs:.0}s] sent={}/{} finished={} delivered={} errors={}",
                    next - from,
                    to - from,
                    done - from,
                    t.delivered,
                    t.errors
                )
            });
        }
    }
}

pub fn run(o: &SioBroadcastOpts, probe: Option<&ServerProbe>) -> i32 {
    let url = sio::endpoint_url(&o.url);
    let target = match ws::parse_url(&url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadtool: {e}");
            return 2;
        }
    };
    let window = o.window.max(1);
    let copts = ConnectOpts {
        concurrency: o.concurrency,
        raw: false,
        rbuf: 4096,
        wbuf: 256 + 64 * window,
        timeout: Duration::from_secs(10),
    };
    let mut poll = Poll::new().expect("epoll");
    let mut events = Events::with_capacity(1024);
    let total = o.conns + 1;
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
        "sio-broadcast",
    );
    if let Some(e) = &est.first_error {
        eprintln!(
            "sio-broadcast: {} of {total} WebSocket connections failed, first: {e}",
            est.failed
        );
    }
    let (mut sios, sest) = sio::connect_all(
        &mut poll,
        &mut events,
        &mut conns,
        Duration::from_secs(10),
        &mut progress,
        "sio-broadcast",
    );
    progress.finish();
    if let Some(e) = &sest.first_error {
        eprintln!(
            "sio-broadcast: {} Socket.IO connects failed, first: {e}",
            sest.failed
        );
    }
    // The sender is the last ready connection; every other ready one is a receiver.
    let Some(sender) = sios.iter().rposition(|s| s.is_ready()) else {
        eprintln!("sio-broadcast: no Socket.IO connection is ready");
        return 1;
    };
    let receivers: Vec<usize> = (0..conns.len())
        .filter(|&i| i != sender && sios[i].is_ready())
        .collect();
    let nsubs = receivers.len();
    let k = o.warmup_count + o.count;
    let t = Tally {
        via: o.via,
        nsubs,
        sender,
        sent: vec![None; k],
        got: vec![0; k],
        last: vec![None; k],
        finished: vec![false; k],
        seen: (0..conns.len())
            .map(|_| vec![0u64; k.div_ceil(64)])
            .collect(),
        joined: vec![false; conns.len()],
        njoined: 0,
        measured_from: o.warmup_count,
        delivered: 0,
        lat: net::new_hist(),
        last_delivery: None,
        other_events: 0,
        other_measured: 0,
        last_packet: None,
        dead_end: false,
        errors: (est.failed + sest.failed) as u64,
        first_error: None,
    };
    let mut run = Run {
        poll: &mut poll,
        events: &mut events,
        conns: &mut conns,
        sios: &mut sios,
        t,
        progress,
    };

    // Join, with an ACKed event after it as the barrier.
    let mut scratch = Vec::with_capacity(64);
    for &i in &receivers {
        let w = &mut run.conns[i].wbuf;
        sio::event_packet(&mut scratch, None, "join-room", b"\"bench\"");
        sio::send(w, &scratch);
        sio::event_packet(&mut scratch, Some(0), "event", b"\"joined\"");
        sio::send(w, &scratch);
        if let Err(e) = run.conns[i].flush() {
            run.t.error(format!("receiver {i}: write: {e}"));
            sio::kill(&mut run.conns[i], &mut run.sios[i], run.poll);
        }
    }
    let join_start = Instant::now();
    let join_deadline = join_start + Duration::from_secs(10);
    loop {
        let alive = receivers
            .iter()
            .filter(|&&i| run.sios[i].is_ready())
            .count();
        let joined = receivers
            .iter()
            .filter(|&&i| run.sios[i].is_ready() && run.t.joined[i])
            .count();
        if joined >= alive || Instant::now() >= join_deadline {
            if joined < alive {
                run.t.error(format!(
                    "{} receivers not joined after 10 s",
                    alive - joined
                ));
            }
            break;
        }
        run.turn(Duration::from_millis(50));
    }
    // Whatever the joins made the server send (announcements to the room) must be over
    // before the measured window: wait for 300 ms without a packet to any receiver.
    let quiet_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = Instant::now();
        let last = run.t.last_packet.unwrap_or(join_start);
        if now.duration_since(last) >= Duration::from_millis(300) {
            break;
        }
        if now >= quiet_deadline {
            run.t
                .error("receivers still getting packets 30 s after joining".into());
            break;
        }
        run.turn(Duration::from_millis(50));
    }
    let join_secs = join_start.elapsed().as_secs_f64();
    let join_events = run.t.other_events;
    // Receivers that dropped out are not expected to receive anything.
    run.t.nsubs = receivers
        .iter()
        .filter(|&&i| run.sios[i].is_ready())
        .count();
    let nsubs_joined = run.t.nsubs;

    let mut warm_fanout = net::new_hist();
    run.progress.restart();
    run.round(
        0,
        o.warmup_count,
        window,
        o.timeout,
        &mut warm_fanout,
        "warm-up",
    );
    let mut fanout = net::new_hist();
    let w0 = procstat::window_start(probe);
    let first_emit = Instant::now();
    if !run.t.dead_end {
        run.round(o.warmup_count, k, window, o.timeout, &mut fanout, "measure");
    }
    let w = procstat::window_end(probe, &w0);
    run.progress.finish();
    let t = run.t;
    if let Some(e) = &t.first_error {
        eprintln!("sio-broadcast: first error: {e}");
    }
    // Without a measured round the window is empty: no CPU readings.
    let measured = !t.dead_end;
    if measured {
        w.warn_client("sio-broadcast");
        w.warn_other("sio-broadcast");
    }
    let expected = (nsubs_joined * o.count) as u64;
    let missing = expected.saturating_sub(t.delivered);
    let span = t
        .last_delivery
        .map_or(0.0, |l| l.duration_since(first_emit).as_secs_f64());
    let rate = if span > 0.0 {
        t.delivered as f64 / span
    } else {
        0.0
    };
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    let (p50, p99, max) = (q(&t.lat, 0.5), q(&t.lat, 0.99), t.lat.max() as f64 / 1000.0);
    let (fan50, fan99, fanmax) = (
        q(&fanout, 0.5),
        q(&fanout, 0.99),
        fanout.max() as f64 / 1000.0,
    );
    let na = || "na".to_string();
    let cpu_per = if measured {
        w.us_per(t.delivered)
    } else {
        na()
    };
    let spct = match w.server_pct() {
        Some(p) if measured => format!("{p:.1}"),
        _ => na(),
    };
    let cpct = if measured {
        format!("{:.1}", w.client_pct())
    } else {
        na()
    };
    let other = if measured { w.other_pct() } else { na() };
    let cother = if measured { w.client_other_pct() } else { na() };
    let rss = w.rss_kb();
    println!(
        "sio-broadcast to {nsubs_joined} receivers (joined and quiet after {join_secs:.3} s, {join_events} other \
         events meanwhile) x {} (+{} warm-up), window {window}: \
         {} of {expected} delivered ({missing} missing), last delivery {:.3} s after the first emit = {rate:.0} \
         deliveries/s; delivery latency p50 {p50:.1} µs p99 {p99:.1} µs max {max:.1} µs; fan-out complete p50 \
         {fan50:.1} µs p99 {fan99:.1} µs max {fanmax:.1} µs; {} errors",
        o.count, o.warmup_count, t.delivered, span, t.errors
    );
    if probe.is_some() {
        println!("server: {cpu_per} CPU µs/delivery ({spct}% of a core), RSS {rss} KiB");
    }
    println!(
        "sio-broadcast: via={} conns={} receivers={nsubs_joined} count={} warmup_count={} window={window} delivered={} \
         missing={missing} time_to_last_s={span:.4} deliveries_per_s={rate:.1} p50_us={p50:.1} p99_us={p99:.1} \
         max_us={max:.1} fanout_p50_us={fan50:.1} fanout_p99_us={fan99:.1} fanout_max_us={fanmax:.1} errors={} \
         server_cpu_us_per_delivery={cpu_per} server_cpu_pct={spct} server_rss_kb={rss} client_cpu_pct={cpct} \
         server_core_other_pct={other} client_core_other_pct={cother} join_s={join_secs:.3} join_other_events={join_events} other_events_measured={}",
        match o.via {
            Via::Bcast => "bcast",
            Via::Say => "say",
        },
        o.conns,
        o.count,
        o.warmup_count,
        t.delivered,
        t.errors,
        t.other_measured
    );
    i32::from(missing > 0 || t.errors > 0 || t.delivered == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries() {
        assert_eq!(delivery_seq(b"2[\"event\",\"b-17\"]", Via::Bcast), Some(17));
        assert_eq!(delivery_seq(b"2[\"event\",\"b-17\"]", Via::Say), None);
        assert_eq!(
            delivery_seq(b"2[\"event\",\"Ab12#3 say: b-4\"]", Via::Say),
            Some(4)
        );
        assert_eq!(
            delivery_seq(b"2[\"event\",\"x#1has joined bench\"]", Via::Say),
            None
        );
        assert_eq!(
            delivery_seq(b"2[\"event\",\"There are 3 players in bench\"]", Via::Bcast),
            None
        );
        assert_eq!(delivery_seq(b"2[\"other\",\"b-1\"]", Via::Bcast), None);
    }
}
