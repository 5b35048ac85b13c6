#!/usr/bin/env python3
"""Turns bench-tls.sh's results.txt (one `rep=… server=… case=… <loadtool machine line>` per
run) into a markdown table of medians."""

import argparse
import statistics

SERVERS = ["prefork-ws-tls", "tokio-tungstenite-tls", "prefork-ws"]
LABELS = {
    "prefork-ws-tls": "prefork-ws TLS (1 worker)",
    "tokio-tungstenite-tls": "tokio-tungstenite + rustls",
    "prefork-ws": "prefork-ws plain (1 worker)",
}
# case id, label, key of the main metric, unit, key of the rate, rate unit
CASES = [
    ("e32x100", "echo 32 B × 100 conns", "server_cpu_us_per_msg", "CPU µs/msg", "msgs_per_s", "msgs/s"),
    ("e32x1k", "echo 32 B × 1000 conns", "server_cpu_us_per_msg", "CPU µs/msg", "msgs_per_s", "msgs/s"),
    ("e16kx100", "echo 16 KiB × 100 conns", "server_cpu_us_per_msg", "CPU µs/msg", "msgs_per_s", "msgs/s"),
    ("hs2k", "handshakes × 2000 conns", "server_cpu_us_per_handshake", "CPU µs/handshake", "handshakes_per_s", "handshakes/s"),
    ("idle10k", "idle × 10,000 conns", "rss_per_conn_b", "RSS B/idle conn", "handshakes_per_s", "handshakes/s"),
]


def parse(path):
    runs = []
    with open(path) as f:
        for line in f:
            kv = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
            if "server" in kv and "case" in kv:
                runs.append(kv)
    return runs


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def median(runs, server, case, key):
    vals = [num(r.get(key)) for r in runs if r["server"] == server and r["case"] == case]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=2):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--meta")
    ap.add_argument("--md", required=True)
    ap.add_argument("--command", default="tools/bench-tls.sh")
    a = ap.parse_args()
    runs = parse(a.results)
    meta = {}
    if a.meta:
        with open(a.meta) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    reps = sorted({r["rep"] for r in runs})
    out = ["## prefork-ws TLS benchmark results\n"]
    out.append(f"Command: `{a.command}`  ")
    out.append(
        f"Machine: {meta.get('cpus', '?')} cores ({meta.get('cpu_model', '?').strip()}), kernel {meta.get('kernel', '?')}, "
        f"{meta.get('rustc', '?')}; server pinned to CPU 0, load tool (rustls client, ring) to CPU 1, 127.0.0.1 only.  "
    )
    out.append(
        f"Date: {meta.get('date', '?')}; repetitions: {len(reps)}; load average at start {meta.get('loadavg_start', '?')}, "
        f"at end {meta.get('loadavg_end', '?')}.\n"
    )
    out.append("Medians over repetitions. Server CPU = utime+stime of the server and all its descendants over the "
               "measured window; RSS per idle connection = (RSS with the connections − RSS before) / connections. "
               "Both TLS servers: rustls with ring, the same ECDSA P-256 certificate, TLS 1.3.\n")
    hdr = ("| case | metric | " + " | ".join(LABELS[s] for s in SERVERS)
           + " | prefork-ws TLS / tokio-tungstenite + rustls | prefork-ws TLS / plain |")
    out.append(hdr)
    out.append("|" + "---|" * (hdr.count("|") - 1))
    for cid, label, key, unit, _, _ in CASES:
        vals = {s: median(runs, s, cid, key) for s in SERVERS}
        out.append(
            f"| {label} | {unit} | "
            + " | ".join(fmt(vals[s], 0 if key == "rss_per_conn_b" else 2) for s in SERVERS)
            + f" | {ratio(vals['prefork-ws-tls'], vals['tokio-tungstenite-tls'])}"
            + f" | {ratio(vals['prefork-ws-tls'], vals['prefork-ws'])} |"
        )
    out.append("")
    out.append("Context (medians): throughput, latency, CPU use of server and load tool, errors summed over runs.\n")
    out.append("| case | server | rate | p50 µs | p99 µs | server CPU % | client CPU % | server RSS KiB | errors |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    warn = []
    for cid, label, key, unit, rkey, runit in CASES:
        for s in SERVERS:
            rs = [r for r in runs if r["server"] == s and r["case"] == cid]
            if not rs:
                out.append(f"| {label} | {LABELS[s]} | no result | | | | | | |")
                continue
            p50 = "p50_us" if cid.startswith("e") else "hs_p50_us"
            p99 = "p99_us" if cid.startswith("e") else "hs_p99_us"
            errs = sum(int(num(r.get("errors")) or 0) for r in rs)
            cpct = median(runs, s, cid, "client_cpu_pct")
            if cpct is not None and cpct > 90:
                warn.append(f"{label} / {LABELS[s]}: load tool at {cpct:.0f}% CPU (client-bound: rates understate the server)")
            out.append(
                f"| {label} | {LABELS[s]} | {fmt(median(runs, s, cid, rkey))} {runit} | {fmt(median(runs, s, cid, p50), 1)} | "
                f"{fmt(median(runs, s, cid, p99), 1)} | {fmt(median(runs, s, cid, 'server_cpu_pct'), 1)} | {fmt(cpct, 1)} | "
                f"{fmt(median(runs, s, cid, 'server_rss_kb'))} | {errs} |"
            )
    if warn:
        out.append("")
        out.append("Warnings:")
        out.extend(f"- {w}" for w in warn)
    md = "\n".join(out) + "\n"
    with open(a.md, "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
