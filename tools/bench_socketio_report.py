#!/usr/bin/env python3
"""Turns bench_socketio.sh's results.txt (one `rep=… server=… case=… <loadtool sio-* line>` per
run) into a markdown table of medians with ratios against socketioxide, and a PNG plot (server
CPU per ack/delivery, memory per idle connection). Shares parsing and formatting with
bench_report.py."""

import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_report import fmt, median, num, parse, ratio  # noqa: E402

SERVERS = ["prefork-ws", "socketioxide", "node"]
LABELS = {
    "prefork-ws": "prefork-ws",
    "socketioxide": "socketioxide",
    "node": "Node socket.io",
}
# case id, label, key of the main metric, unit
ROWS = [
    ("ack100", "ack echo × 100 conns", "server_cpu_us_per_ack", "CPU µs/ack"),
    ("ack1k", "ack echo × 1000 conns", "server_cpu_us_per_ack", "CPU µs/ack"),
    ("bcast1k", "room broadcast (`bcast`) → 1000 sockets", "server_cpu_us_per_delivery", "CPU µs/delivery"),
    ("say1k", "room broadcast (`say`) → 1000 sockets", "server_cpu_us_per_delivery", "CPU µs/delivery"),
    ("idle10k", "idle × N conns", "rss_per_conn_b", "RSS B/conn"),
    ("idle10k", "idle × N conns", "pss_per_conn_b", "PSS B/conn"),
    ("idle10k", "connect (WS + Socket.IO) × N", "server_cpu_us_per_connect", "CPU µs/connect"),
]
CPU_ROWS = ROWS[:4]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--meta")
    ap.add_argument("--md", required=True)
    ap.add_argument("--png", required=True)
    ap.add_argument("--plotter", default="matplotlib")
    ap.add_argument("--command", default="tools/bench_socketio.sh")
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
    ran = set(meta.get("servers", " ".join(SERVERS)).split())
    idle_n = f"{int(meta.get('idle_conns', '10000')):,}"

    out = []
    out.append("## prefork-ws Socket.IO benchmark results\n")
    out.append(f"Command: `{a.command}`" + (" (1 repetition, 2 s cases)" if a.quick == "1" else "") + "  ")
    out.append(
        f"Machine: {meta.get('cpus', '?')} cores ({meta.get('cpu_model', '?').strip()}), kernel {meta.get('kernel', '?')}, "
        f"{meta.get('rustc', '?')}, Node {meta.get('node', '?')}; socketioxide {meta.get('socketioxide', '?')}, "
        f"socket.io {meta.get('socketio_js', '?')}; server pinned to CPU 0, load tool to CPU 1, 127.0.0.1 only.  "
    )
    out.append(
        f"Date: {meta.get('date', '?')}; repetitions: {len(reps)}; load average at start {meta.get('loadavg_start', '?')}, "
        f"at end {meta.get('loadavg_end', '?')}.\n"
    )
    missing = [LABELS[s] for s in SERVERS if s not in ran]
    if missing:
        out.append(f"Not run: {', '.join(missing)} (its column shows –).\n")
    out.append(
        "Medians over repetitions. prefork-ws runs `--workers 1` for the ack and idle cases, `--workers 2` for "
        "the broadcasts; socketioxide (tokio current_thread, hyper 1) and Node socket.io are single-threaded "
        "servers; all with the same handler (namespace `/`: `event` → ack `\"Event Received: \" + data`, "
        "`join-room` → join, `bcast` → `io.to(\"bench\").emit(\"event\", data)`, `say` {room, message} → "
        "`socket.to(room).emit(\"event\", \"<sid> say: <message>\")`), WebSocket transport only; prefork-ws's "
        "example also announces each join to the room (not measured: the broadcasts start once the receivers "
        "have been quiet for 300 ms). "
        "Server CPU = utime+stime of the server's processes over the measured window. Memory per idle "
        f"connection = (sum over the server's processes with {idle_n} connections − before the first connect) / "
        "connections.\n"
    )
    hdr = "| case | metric | " + " | ".join(LABELS[s] for s in SERVERS) + \
        " | prefork-ws / socketioxide | Node / socketioxide |"
    out.append(hdr)
    out.append("|" + "---|" * (hdr.count("|") - 1))
    for cid, label, key, unit in ROWS:
        label = label.replace("× N", f"× {idle_n}")
        vals = {s: median(runs, s, cid, key) for s in SERVERS}
        digits = 0 if key.endswith("_b") else 2
        out.append(
            f"| {label} | {unit} | "
            + " | ".join(fmt(vals[s], digits) for s in SERVERS)
            + f" | {ratio(vals['prefork-ws'], vals['socketioxide'])} | {ratio(vals['node'], vals['socketioxide'])} |"
        )
    out.append("")
    out.append("Context (medians): throughput, latency, CPU use of server and load tool, errors summed over runs.\n")
    out.append("| case | server | rate | p50 µs | p99 µs | server CPU % | client CPU % | others on server / client "
               "core % | server RSS KiB | errors |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    warn = []
    seen = []
    for cid, label, _, _ in ROWS:
        if cid in seen:
            continue
        seen.append(cid)
        if cid == "idle10k":
            label = f"idle/connect × {idle_n}"
        for s in SERVERS:
            rs = [r for r in runs if r["server"] == s and r["case"] == cid]
            if not rs:
                out.append(f"| {label} | {LABELS[s]} | {'not run' if s not in ran else 'no result'} | | | | | | | |")
                continue
            if cid.startswith("ack"):
                rate = f"{fmt(median(runs, s, cid, 'acks_per_s'))} acks/s"
                p50, p99 = median(runs, s, cid, "p50_us"), median(runs, s, cid, "p99_us")
            elif cid.startswith(("bcast", "say")):
                if all((num(r.get("delivered")) or 0) == 0 for r in rs):
                    rate = f"nothing delivered (no `{'bcast' if cid.startswith('bcast') else 'say'}` handler?)"
                else:
                    rate = (f"{fmt(median(runs, s, cid, 'deliveries_per_s'))} deliveries/s, last after "
                            f"{fmt(median(runs, s, cid, 'time_to_last_s'), 3)} s")
                p50, p99 = median(runs, s, cid, "p50_us"), median(runs, s, cid, "p99_us")
            else:
                rate = f"{fmt(median(runs, s, cid, 'connects_per_s'))} connects/s"
                p50, p99 = median(runs, s, cid, "hs_p50_us"), median(runs, s, cid, "hs_p99_us")
            errs = sum(int(num(r.get("errors")) or 0) for r in rs)
            errs += sum(int(num(r.get("missing")) or 0) for r in rs)
            cpct = median(runs, s, cid, "client_cpu_pct")
            if cpct is not None and cpct > 90:
                warn.append(f"{label} / {LABELS[s]}: load tool at {cpct:.0f}% CPU (client-bound: rates understate the server)")
            other = median(runs, s, cid, "server_core_other_pct")
            cother = median(runs, s, cid, "client_core_other_pct")
            for key, whose in (("server_core_other_pct", "server's"), ("client_core_other_pct", "load tool's")):
                busy = [num(r.get(key)) for r in rs]
                busy = [b for b in busy if b is not None and b > 10]
                if busy:
                    warn.append(f"{label} / {LABELS[s]}: other processes took up to {max(busy):.0f}% of the {whose} "
                                f"core in {len(busy)} of {len(rs)} run(s) (disturbed readings)")
            out.append(
                f"| {label} | {LABELS[s]} | {rate} | {fmt(p50, 1)} | {fmt(p99, 1)} | "
                f"{fmt(median(runs, s, cid, 'server_cpu_pct'), 1)} | {fmt(cpct, 1)} | {fmt(other, 1)} / {fmt(cother, 1)} | "
                f"{fmt(median(runs, s, cid, 'server_rss_kb'))} | {errs} |"
            )
    out.append("")
    out.append(
        "Latency: ack = emit to ACK; broadcast = emit of `bcast`/`say` to each delivery, with "
        f"{meta.get('bcast_window', '?')} "
        "broadcasts in flight; connect = TCP connect to the WebSocket 101 (128 in flight). Errors include missing "
        "deliveries. \"Others on server / client core\" = busy time (/proc/stat) of the server's CPU 0 minus the "
        "server's own CPU time, and of the load tool's CPU 1 minus the load tool's, over the window: what else ran "
        "there (the machine may be shared; much above 0 means a disturbed reading; a CPU case above "
        f"{meta.get('retries', '').split('other_max_pct=')[-1] or '10'}% is re-run up to "
        f"{meta.get('retries', '2').split()[0]} times and the least disturbed attempt kept). A load tool above 90% CPU means the rates are client-bound: the server's CPU per message is "
        "still measured, but at a lower load than it could take."
    )
    if warn:
        out.append("")
        out.append("Warnings:")
        out.extend(f"- {w}" for w in warn)
    md = "\n".join(out) + "\n"
    with open(a.md, "w") as f:
        f.write(md)
    print(md)
    plot(runs, a.png, a.plotter, len(reps), idle_n)


def plot(runs, png, plotter, nreps, idle_n):
    cpu = {s: [median(runs, s, c[0], c[2]) for c in CPU_ROWS] for s in SERVERS}
    cpu_labels = ["ack × 100\n(µs/ack)", "ack × 1000\n(µs/ack)", "bcast → 1000\n(µs/delivery)",
                  "say → 1000\n(µs/delivery)"]
    mem_keys = [("rss_per_conn_b", "RSS"), ("pss_per_conn_b", "PSS")]
    mem = {s: [median(runs, s, "idle10k", k) for k, _ in mem_keys] for s in SERVERS}
    title = f"Socket.IO: server CPU per message and memory per idle connection — median of {nreps} run(s), server on 1 core"
    if plotter == "matplotlib":
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import ScalarFormatter

        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5.5), gridspec_kw={"width_ratios": [3, 2]})
        w = 0.8 / len(SERVERS)

        def bars(axis, data, n, labels, decimals):
            for i, s in enumerate(SERVERS):
                xs = [j + (i - (len(SERVERS) - 1) / 2) * w for j in range(n)]
                ys = [v if v is not None else 0 for v in data[s]]
                ran = any(v is not None for v in data[s])
                bs = axis.bar(xs, ys, w, label=LABELS[s] + ("" if ran else " (not run)"))
                for b, v in zip(bs, data[s]):
                    if v is not None:
                        txt = f"{v:.{decimals}f}" if v < 100 else f"{v:,.0f}"
                        axis.annotate(txt, (b.get_x() + b.get_width() / 2, b.get_height()),
                                      ha="center", va="bottom", fontsize=7)
            axis.set_xticks(range(n))
            axis.set_xticklabels(labels)
            axis.grid(axis="y", alpha=0.3, which="both")

        bars(ax, cpu, len(CPU_ROWS), cpu_labels, 2)
        ax.set_ylabel("server CPU µs / ack or delivery (lower is better)")
        ax.set_yscale("log")
        vals = [v for s in SERVERS for v in cpu[s] if v]
        if vals:
            ax.set_ylim(min(vals) / 1.6, max(vals) * 1.4)
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.legend()
        bars(ax2, mem, len(mem_keys), [f"{lab} / idle conn\n(× {idle_n})" for _, lab in mem_keys], 0)
        ax2.set_ylabel("server bytes per idle Socket.IO connection (lower is better)")
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(png, dpi=110)
        print(f"plot: {png}")
    elif plotter == "gnuplot":
        with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as f:
            f.write("case " + " ".join(f'"{LABELS[s]}"' for s in SERVERS) + "\n")
            for j, c in enumerate(CPU_ROWS):
                f.write(f'"{c[1]}" ' + " ".join(str(cpu[s][j] or 0) for s in SERVERS) + "\n")
            dat = f.name
        script = (
            f"set terminal pngcairo size 1100,550; set output '{png}'; set style data histograms;"
            "set style histogram cluster gap 1; set style fill solid; set logscale y; set key top left;"
            f"set ylabel 'server CPU us / ack or delivery'; set title \"{title}\";"
            f"plot for [i=2:{len(SERVERS) + 1}] '{dat}' using i:xtic(1) title columnhead"
        )
        subprocess.run(["gnuplot", "-e", script], check=False)
        print(f"plot: {png} (CPU only)")
    else:
        print("plot: skipped (neither matplotlib nor gnuplot could be installed)", file=sys.stderr)


if __name__ == "__main__":
    main()
