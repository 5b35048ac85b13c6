//! `sio-idle`: opens C Socket.IO connections (WebSocket handshake, Engine.IO OPEN, `40` →
//! `40{sid}`), reports connects/s and (--server-pid) server CPU µs per connect, then holds them
//! idle for --hold (answering Engine.IO pings) and reads the server's memory: RSS and PSS
//! summed over its processes, minus the reading before the first connect, per connection.

use crate::net::{self, Conn, ConnectOpts, Progress};
use crate::procstat::{self, ServerProbe};
use crate::sio;
use crate::ws;
use mio::{Events, Poll};
use std::time::{Duration, Instant};

pub struct SioIdleOpts {
    pub url: String,
    pub conns: usize,
    pub hold: Duration,
    pub concurrency: usize,
    pub quiet: bool,
}

pub fn run(o: &SioIdleOpts, probe: Option<&ServerProbe>) -> i32 {
    let url = sio::endpoint_url(&o.url);
    let target = match ws::parse_url(&url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadtool: {e}");
            return 2;
        }
    };
    let copts = ConnectOpts {
        concurrency: o.concurrency,
        raw: false,
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
        "sio-idle",
    );
    let (mut sios, sest) = sio::connect_all(
        &mut poll,
        &mut events,
        &mut conns,
        Duration::from_secs(20),
        &mut progress,
        "sio-idle",
    );
    let w = procstat::window_end(probe, &w0);
    progress.finish();
    if let Some(e) = &est.first_error {
        eprintln!(
            "sio-idle: {} of {} WebSocket connections failed, first: {e}",
            est.failed, o.conns
        );
    }
    if let Some(e) = &sest.first_error {
        eprintln!(
            "sio-idle: {} Socket.IO connects failed, first: {e}",
            sest.failed
        );
    }
    w.warn_client("sio-idle");
    w.warn_other("sio-idle");

    let mut dropped = 0usize;
    let mut first_drop: Option<String> = None;
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
            let i = ev.token().0;
            if i >= conns.len() || !sios[i].is_ready() {
                continue;
            }
            if let Err(e) = sio::service(&mut conns[i], &mut sios[i], &mut sio::Ignore, i) {
                first_drop.get_or_insert(format!("conn {i}: {e}"));
                sio::kill(&mut conns[i], &mut sios[i], &poll);
                dropped += 1;
            }
        }
        let open = sest.ok - dropped;
        progress.tick(Instant::now(), |t| {
            format!("[sio-idle hold {t:.0}s] open={open}")
        });
    }
    progress.finish();
    if let Some(e) = &first_drop {
        eprintln!("sio-idle: {dropped} connections lost while idle, first: {e}");
    }
    let after = probe.map(|p| p.sample());
    let open = sios.iter().filter(|s| s.is_ready()).count();
    let pings: u64 = sios.iter().map(|s| s.pings).sum();
    let elapsed = est.elapsed + sest.elapsed;
    let secs = elapsed.as_secs_f64();
    let rate = sest.ok as f64 / secs;
    let failures = est.failed + sest.failed;
    let q = |p: f64| est.latency.value_at_quantile(p) as f64 / 1000.0;
    println!(
        "sio-idle {} conns: {} WebSocket handshakes in {:.3} s, {} Socket.IO connects in {:.3} s more = {rate:.0} \
         connects/s, {failures} failures; WebSocket connect-to-101 p50 {:.0} µs p99 {:.0} µs; {open} still open \
         after holding {:.1} s ({pings} Engine.IO pings answered)",
        o.conns,
        est.ok,
        est.elapsed.as_secs_f64(),
        sest.ok,
        sest.elapsed.as_secs_f64(),
        q(0.5),
        q(0.99),
        o.hold.as_secs_f64()
    );
    let (cpu_per, rss, rss_base, per_conn, pss, pss_base, pss_per_conn) = match (base, after) {
        (Some(b), Some(a)) => {
            let n = open.max(1) as f64;
            let per = (a.rss_kb as f64 - b.rss_kb as f64) * 1024.0 / n;
            let pss_per = if a.pss_kb > 0 {
                format!("{:.0}", (a.pss_kb as f64 - b.pss_kb as f64) * 1024.0 / n)
            } else {
                "na".into()
            };
            println!(
                "server: {} CPU µs/connect; RSS {} KiB before, {} KiB with {open} idle connections = {per:.0} B \
                 per connection; PSS {} KiB before, {} KiB after = {pss_per} B per connection; {} processes",
                w.us_per(sest.ok as u64),
                b.rss_kb,
                a.rss_kb,
                b.pss_kb,
                a.pss_kb,
                a.procs
            );
            (
                w.us_per(sest.ok as u64),
                a.rss_kb.to_string(),
                b.rss_kb.to_string(),
                format!("{per:.0}"),
                a.pss_kb.to_string(),
                b.pss_kb.to_string(),
                pss_per,
            )
        }
        _ => {
            let na = || "na".to_string();
            (na(), na(), na(), na(), na(), na(), na())
        }
    };
    let spct = w.server_pct().map_or("na".into(), |p| format!("{p:.1}"));
    println!(
        "sio-idle: conns={} ws_ok={} ok={} failures={failures} open_after_hold={open} connects_per_s={rate:.1} \
         hs_p50_us={:.1} hs_p99_us={:.1} errors={} server_cpu_us_per_connect={cpu_per} server_cpu_pct={spct} \
         server_rss_kb={rss} server_rss_base_kb={rss_base} rss_per_conn_b={per_conn} server_pss_kb={pss} \
         server_pss_base_kb={pss_base} pss_per_conn_b={pss_per_conn} client_cpu_pct={:.1} \
         server_core_other_pct={} client_core_other_pct={}",
        o.conns,
        est.ok,
        sest.ok,
        q(0.5),
        q(0.99),
        failures + dropped,
        w.client_pct(),
        w.other_pct(),
        w.client_other_pct()
    );
    i32::from(failures + dropped > 0 || sest.ok == 0)
}
