//! `connect`: opens C connections (WebSocket handshakes, or plain TCP connects with --raw),
//! reports handshakes/s and failures, then holds them idle for a memory reading.

use crate::net::{self, Conn, ConnectOpts, Progress};
use crate::procstat::{self, ServerProbe};
use crate::ws;
use mio::{Events, Poll};
use std::time::{Duration, Instant};

pub struct ConnectArgs {
    pub url: String,
    pub conns: usize,
    pub hold: Duration,
    pub raw: bool,
    pub concurrency: usize,
    pub quiet: bool,
}

pub fn run(o: &ConnectArgs, probe: Option<&ServerProbe>) -> i32 {
    let target = match ws::parse_url(&o.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadtool: {e}");
            return 2;
        }
    };
    let copts = ConnectOpts {
        concurrency: o.concurrency,
        raw: o.raw,
        rbuf: 1024,
        wbuf: 256,
        timeout: Duration::from_secs(10),
    };
    let mut poll = Poll::new().expect("epoll");
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Conn> = Vec::with_capacity(o.conns);
    let mut progress = Progress::new(o.quiet);
    let base = probe.map(|p| p.sample());
    let w0 = procstat::window_start(probe);
    let est = net::establish(
        &mut poll,
        &mut events,
        &mut conns,
        &target,
        o.conns,
        &copts,
        &mut progress,
        "connect",
    );
    let w = procstat::window_end(probe, &w0);
    progress.finish();
    if let Some(e) = &est.first_error {
        eprintln!(
            "connect: {} of {} connections failed, first: {e}",
            est.failed, o.conns
        );
    }
    w.warn_client("connect");

    // Hold the connections idle (answering pings, noticing closes) for the memory reading.
    let mut dropped = 0usize;
    let hold_end = Instant::now() + o.hold;
    progress.restart();
    loop {
        let now = Instant::now();
        if now >= hold_end {
            break;
        }
        let wait = hold_end
            .saturating_duration_since(now)
            .min(Duration::from_millis(500));
        let _ = poll.poll(&mut events, Some(wait));
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if c.is_open() && !net::drain_idle(c) {
                c.close(&poll);
                dropped += 1;
            }
        }
        let open = est.ok - dropped;
        progress.tick(Instant::now(), |t| {
            format!("[connect hold {t:.0}s] open={open}")
        });
    }
    progress.finish();
    let after = probe.map(|p| p.sample());
    let open = conns.iter().filter(|c| c.is_open()).count();

    let secs = est.elapsed.as_secs_f64();
    let rate = est.ok as f64 / secs;
    let q = |p: f64| est.latency.value_at_quantile(p) as f64 / 1000.0;
    let kind = if o.raw { "TCP connects" } else { "handshakes" };
    println!(
        "connect {} conns: {} {kind} in {secs:.3} s = {rate:.0}/s, {} failures; connect-to-open p50 {:.0} µs \
         p99 {:.0} µs; {open} still open after holding {:.1} s",
        o.conns,
        est.ok,
        est.failed,
        q(0.5),
        q(0.99),
        o.hold.as_secs_f64()
    );
    let (cpu_per, rss, rss_base, per_conn, pss_per_conn) = match (base, after) {
        (Some(b), Some(a)) => {
            let n = open.max(1) as f64;
            let per = (a.rss_kb as f64 - b.rss_kb as f64) * 1024.0 / n;
            let pss = if a.pss_kb > 0 {
                format!("{:.0}", (a.pss_kb as f64 - b.pss_kb as f64) * 1024.0 / n)
            } else {
                "na".into()
            };
            println!(
                "server: {} CPU µs/handshake; RSS {} KiB before, {} KiB with {open} idle connections = {per:.0} B \
                 per connection (PSS {pss} B)",
                w.us_per(est.ok as u64),
                b.rss_kb,
                a.rss_kb
            );
            (
                w.us_per(est.ok as u64),
                a.rss_kb.to_string(),
                b.rss_kb.to_string(),
                format!("{per:.0}"),
                pss,
            )
        }
        _ => (
            "na".into(),
            "na".into(),
            "na".into(),
            "na".into(),
            "na".into(),
        ),
    };
    let spct = w.server_pct().map_or("na".into(), |p| format!("{p:.1}"));
    println!(
        "connect: conns={} mode={} ok={} failures={} open_after_hold={open} handshakes_per_s={rate:.1} \
         hs_p50_us={:.1} hs_p99_us={:.1} errors={} server_cpu_us_per_handshake={cpu_per} server_cpu_pct={spct} server_rss_kb={rss} \
         server_rss_base_kb={rss_base} rss_per_conn_b={per_conn} pss_per_conn_b={pss_per_conn} client_cpu_pct={:.1}",
        o.conns,
        match (o.raw, target.tls_name.is_some()) {
            (true, _) => "raw",
            (false, true) => "wss",
            (false, false) => "ws",
        },
        est.ok,
        est.failed,
        q(0.5),
        q(0.99),
        est.failed + dropped,
        w.client_pct()
    );
    i32::from(est.failed + dropped > 0 || est.ok == 0)
}
