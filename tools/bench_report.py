#!/usr/bin/env python3
"""Turns bench.sh's results.txt (one `rep=… server=… case=… <loadtool machine line>` per run)
into a markdown table of medians and a PNG plot of server CPU µs per message by case."""

import argparse
import statistics
import subprocess
import sys
import tempfile

SERVERS = ["prefork-ws", "fastwebsockets", "tokio-tungstenite", "raw-tcp"]
LABELS = {
    "prefork-ws": "prefork-ws (1 worker)",
    "fastwebsockets": "fastwebsockets",
    "tokio-tungstenite": "tokio-tungstenite",
    "raw-tcp": "raw TCP floor",
    "baseline": "prefork-ws baseline",
}
# case id, label, key of the main metric, unit, key of the rate, rate unit
CASES = [
    ("e32x100", "echo 32 B × 100 conns", "server_cpu_us_per_msg", "CPU µs/msg", "msgs_per_s", "msgs/s"),
    ("e32x1k", "echo 32 B × 1000 conns", "server_cpu_us_per_msg", "CPU µs/msg", "msgs_per_s", "msgs/s"),
    ("e16kx100", "echo 16 KiB × 100 conns", "server_cpu_us_per_msg", "CPU µs/msg", "msgs_per_s", "msgs/s"),
    ("hs5k", "handshakes × 5000 conns", "server_cpu_us_per_handshake", "CPU µs/handshake", "handshakes_per_s", "handshakes/s"),
    ("idle10k", "idle × 10,000 conns", "rss_per_conn_b", "RSS B/idle conn", "handshakes_per_s", "handshakes/s"),
]
ECHO_CASES = [c for c in CASES if c[0].startswith("e")]


def parse(path):
    runs = []
    with open(path) as f:
        for line in f:
            kv = {}
            for tok in line.split():
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    kv[k] = v
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
    ap.add_argument("--png", required=True)
    ap.add_argument("--plotter", default="matplotlib")
    ap.add_argument("--command", default="tools/bench.sh")
    ap.add_argument("--quick", default="0")
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
    # `bench.sh --baseline BIN`: an earlier prefork-ws build run side by side.
    if any(r["server"] == "baseline" for r in runs) and "baseline" not in SERVERS:
        SERVERS.append("baseline")
    base = "baseline" in SERVERS

    out = []
    out.append("## prefork-ws benchmark results\n")
    out.append(f"Command: `{a.command}`" + (" (1 repetition, 2 s cases)" if a.quick == "1" else "") + "  ")
    out.append(
        f"Machine: {meta.get('cpus', '?')} cores ({meta.get('cpu_model', '?').strip()}), kernel {meta.get('kernel', '?')}, "
        f"{meta.get('rustc', '?')}; server pinned to CPU 0, load tool to CPU 1, 127.0.0.1 only.  "
    )
    out.append(
        f"Date: {meta.get('date', '?')}; repetitions: {len(reps)}; load average at start {meta.get('loadavg_start', '?')}, "
        f"at end {meta.get('loadavg_end', '?')}.\n"
    )
    out.append("Medians over repetitions. Server CPU = utime+stime of the server and all its descendants over the "
               "measured window; RSS = sum of VmRSS (master + workers), per idle connection = (RSS with the "
               "connections − RSS before) / connections.\n")
    hdr = "| case | metric | " + " | ".join(LABELS[s] for s in SERVERS) + " | prefork-ws / fastwebsockets | prefork-ws / floor |"
    if base:
        hdr += " prefork-ws / baseline |"
    out.append(hdr)
    out.append("|" + "---|" * (hdr.count("|") - 1))
    for cid, label, key, unit, _, _ in CASES:
        vals = {s: median(runs, s, cid, key) for s in SERVERS}
        out.append(
            f"| {label} | {unit} | "
            + " | ".join(fmt(vals[s], 0 if key == "rss_per_conn_b" else 2) for s in SERVERS)
            + f" | {ratio(vals['prefork-ws'], vals['fastwebsockets'])} | {ratio(vals['prefork-ws'], vals['raw-tcp'])} |"
            + (f" {ratio(vals['prefork-ws'], vals['baseline'])} |" if base else "")
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
    out.append("")
    out.append("The raw TCP floor speaks no WebSocket: its echo is plain bytes and its \"handshake\" a TCP connect "
               "plus a 1-byte round trip. The peers run with their libraries' default settings "
               "(tokio-tungstenite's default WebSocketConfig gives each connection 128 KiB read and write buffers, "
               "most of its per-connection memory). A load tool above 90% CPU means the rates are client-bound: "
               "the server's CPU per message is still measured, but at a lower load than it could take.")
    if warn:
        out.append("")
        out.append("Warnings:")
        out.extend(f"- {w}" for w in warn)
    md = "\n".join(out) + "\n"
    with open(a.md, "w") as f:
        f.write(md)
    print(md)
    plot(runs, a.png, a.plotter, len(reps))


def plot(runs, png, plotter, nreps):
    cases = ECHO_CASES + [c for c in CASES if c[0] == "hs5k"]
    data = {s: [median(runs, s, c[0], c[2]) for c in cases] for s in SERVERS}
    labels = [c[1].replace(" conns", "") + ("\n(µs/handshake)" if c[0] == "hs5k" else "") for c in cases]
    title = f"Server CPU per message (per handshake, right) — median of {nreps} run(s), server on 1 core"
    if plotter == "matplotlib":
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(11, 5.5))
        w = 0.8 / len(SERVERS)
        for i, s in enumerate(SERVERS):
            xs = [j + (i - (len(SERVERS) - 1) / 2) * w for j in range(len(cases))]
            ys = [v if v is not None else 0 for v in data[s]]
            bars = ax.bar(xs, ys, w, label=LABELS[s])
            for b, v in zip(bars, data[s]):
                if v is not None:
                    ax.annotate(f"{v:.2f}" if v < 100 else f"{v:.0f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                                ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(cases)))
        ax.set_xticklabels(labels)
        ax.set_ylabel("server CPU µs / message (lower is better)")
        ax.set_yscale("log")
        from matplotlib.ticker import ScalarFormatter

        for axis in (ax.yaxis,):
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_formatter(ScalarFormatter())
        ax.set_title(title, fontsize=10)
        ax.legend()
        ax.grid(axis="y", alpha=0.3, which="both")
        fig.tight_layout()
        fig.savefig(png, dpi=110)
        print(f"plot: {png}")
    elif plotter == "gnuplot":
        with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as f:
            f.write("case " + " ".join(f'"{LABELS[s]}"' for s in SERVERS) + "\n")
            for j, c in enumerate(cases):
                f.write(f'"{c[1]}" ' + " ".join(str(data[s][j] or 0) for s in SERVERS) + "\n")
            dat = f.name
        script = (
            f"set terminal pngcairo size 1100,550; set output '{png}'; set style data histograms;"
            "set style histogram cluster gap 1; set style fill solid; set logscale y; set key top left;"
            f"set ylabel 'server CPU us / message'; set title \"{title}\";"
            f"plot for [i=2:{len(SERVERS) + 1}] '{dat}' using i:xtic(1) title columnhead"
        )
        subprocess.run(["gnuplot", "-e", script], check=False)
        print(f"plot: {png}")
    else:
        print("plot: skipped (neither matplotlib nor gnuplot could be installed)", file=sys.stderr)


if __name__ == "__main__":
    main()
