//! The Prometheus (OpenMetrics text) endpoint: every worker's counters from the shared
//! table, with totals and per-worker labels, answered by whichever worker gets the request.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::runtime::handler::CloseReason;
use crate::runtime::table::SharedTable;

/// Close reasons as the metrics name them.
pub(crate) const CLOSE_REASONS: [&str; 10] = [
    "normal",
    "protocol_error",
    "message_too_big",
    "heartbeat",
    "handshake_timeout",
    "output_limit",
    "shutdown",
    "lost",
    "server",
    "tls",
];

/// Statuses counted one by one; any other goes to "other".
pub(crate) const REFUSED_STATUSES: [u16; 10] = [400, 401, 403, 404, 405, 413, 426, 431, 500, 503];

/// The bucket of a close reason.
pub(crate) fn close_bucket(r: CloseReason) -> usize {
    match r {
        CloseReason::PeerClosed(_) => 0,
        CloseReason::ServerClosed(1000) => 0,
        CloseReason::ProtocolError(1009) => 2,
        CloseReason::ProtocolError(_) => 1,
        CloseReason::Idle | CloseReason::CloseTimeout => 3,
        CloseReason::HandshakeTimeout => 4,
        CloseReason::OutputLimit => 5,
        CloseReason::Shutdown => 6,
        CloseReason::ConnectionLost | CloseReason::Io => 7,
        CloseReason::ServerClosed(_) | CloseReason::ServerDropped => 8,
        CloseReason::Tls => 9,
    }
}

/// The bucket of a refusal status.
pub(crate) fn refused_bucket(status: u16) -> usize {
    REFUSED_STATUSES
        .iter()
        .position(|&s| s == status)
        .unwrap_or(REFUSED_STATUSES.len())
}

type Labels = Vec<(String, String)>;

fn counter(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    reg.register(name, help, f.clone());
    f
}

fn gauge(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    reg.register(name, help, f.clone());
    f
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The exposition text of every running worker's figures and the server's totals.
pub(crate) fn render(table: &SharedTable) -> String {
    let mut reg = Registry::with_prefix("prefork");
    let conns = gauge(&mut reg, "connections", "Open connections by state");
    let accepted = counter(&mut reg, "accepted", "Connections accepted");
    let closed = counter(&mut reg, "closed", "Connections closed, by reason");
    let msg_in = counter(&mut reg, "messages_in", "WebSocket messages received");
    let msg_out = counter(&mut reg, "messages_out", "WebSocket messages sent");
    let bytes_in = counter(&mut reg, "bytes_in", "Bytes read from clients");
    let bytes_out = counter(
        &mut reg,
        "bytes_out",
        "Bytes handed to clients' connections",
    );
    let ipc_q = gauge(
        &mut reg,
        "ipc_queued_bytes",
        "Bytes waiting toward other workers",
    );
    let ipc_skip = counter(
        &mut reg,
        "ipc_skipped",
        "Messages to a worker at pipe_buffer_size, refused",
    );
    let refused = counter(
        &mut reg,
        "refused",
        "Handshakes and requests refused, by status",
    );
    let g = table.global();
    let workers = Gauge::<i64>::default();
    reg.register("workers", "Worker processes running", workers.clone());
    let restarts = Counter::<u64>::default();
    reg.register(
        "worker_restarts",
        "Workers restarted after dying",
        restarts.clone(),
    );
    let reloads = Counter::<u64>::default();
    reg.register("reloads", "Rolling reloads requested", reloads.clone());
    let states = ["", "http", "handshake", "active", "closing"];
    let mut running = 0;
    for r in 0..table.regions() {
        let h = table.region(r);
        if h.pid.load(Ordering::Relaxed) == 0 {
            continue;
        }
        running += 1;
        let w = h.worker_id.load(Ordering::Relaxed).to_string();
        let wl = labels(&[("worker", &w)]);
        let by_state = table.count_by_status(r);
        for (i, st) in states.iter().enumerate().skip(1) {
            conns
                .get_or_create(&labels(&[("worker", &w), ("state", st)]))
                .set(by_state[i] as i64);
        }
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        accepted.get_or_create(&wl).inc_by(ld(&h.accepted));
        msg_in.get_or_create(&wl).inc_by(ld(&h.messages_in));
        msg_out.get_or_create(&wl).inc_by(ld(&h.messages_out));
        bytes_in.get_or_create(&wl).inc_by(ld(&h.bytes_in));
        bytes_out.get_or_create(&wl).inc_by(ld(&h.bytes_out));
        ipc_q.get_or_create(&wl).set(ld(&h.ipc_queued) as i64);
        ipc_skip.get_or_create(&wl).inc_by(ld(&h.ipc_skipped));
        for (i, reason) in CLOSE_REASONS.iter().enumerate() {
            closed
                .get_or_create(&labels(&[("worker", &w), ("reason", reason)]))
                .inc_by(ld(&h.closes[i]));
        }
        for (i, c) in h.refused.iter().enumerate() {
            let status = REFUSED_STATUSES
                .get(i)
                .map_or("other".to_string(), |s| s.to_string());
            refused
                .get_or_create(&labels(&[("worker", &w), ("status", &status)]))
                .inc_by(ld(c));
        }
    }
    workers.set(running);
    restarts.inc_by(g.worker_restarts.load(Ordering::Relaxed));
    reloads.inc_by(g.reloads.load(Ordering::Relaxed));
    let mut out = String::new();
    if encode(&mut out, &reg).is_err() {
        log::error!("metrics: encoding failed");
    }
    out
}

/// The content type of [`render`]'s text.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_statuses_fall_in_their_buckets() {
        assert_eq!(
            CLOSE_REASONS[close_bucket(CloseReason::ProtocolError(1009))],
            "message_too_big"
        );
        assert_eq!(
            CLOSE_REASONS[close_bucket(CloseReason::ProtocolError(1002))],
            "protocol_error"
        );
        assert_eq!(CLOSE_REASONS[close_bucket(CloseReason::Idle)], "heartbeat");
        assert_eq!(
            CLOSE_REASONS[close_bucket(CloseReason::Shutdown)],
            "shutdown"
        );
        assert_eq!(refused_bucket(431), 7);
        assert_eq!(refused_bucket(418), REFUSED_STATUSES.len());
    }

    #[test]
    fn a_fresh_table_renders_parsable_text() {
        let t = SharedTable::create(2, 4).expect("table");
        t.region(0).pid.store(42, Ordering::Relaxed);
        t.region(0).closes[2].store(3, Ordering::Relaxed);
        let text = render(&t);
        assert!(
            text.contains("prefork_closed_total{worker=\"0\",reason=\"message_too_big\"} 3"),
            "{text}"
        );
        assert!(text.contains("prefork_workers 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
