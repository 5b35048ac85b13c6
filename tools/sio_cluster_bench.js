// Room-emit benchmark client (tools/sio_cluster_bench.sh runs it): CONNS socket.io clients
// spread round-robin over the given node URLs all join room `bench`; then EMITS room emits
// are triggered one after another with `GET <trigger>?room=bench&msg=<seq>` (the
// sio_testbed's HTTP emit: `io.to(room).emit("news", msg)` on the node that gets the GET).
// For each emit: the time from sending the GET to the last client's delivery, and each
// delivery's latency. The server CPU (user+system of every process under the given pids)
// is read from /proc around the measured emits.
//
// node sio_cluster_bench.js --urls http://127.0.0.1:P1,http://127.0.0.1:P2 \
//   --trigger http://127.0.0.1:P1/ --conns 1000 --emits 200 --pids 123,456
// prints one line: `sio_cluster_bench: key=value ...`.

const fs = require("fs");
const http = require("http");
const { io } = require("socket.io-client");

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const urls = arg("urls", "http://127.0.0.1:9502").split(",");
const trigger = arg("trigger", urls[0] + "/");
const conns = Number(arg("conns", "1000"));
const emits = Number(arg("emits", "200"));
const pids = arg("pids", "").split(",").filter(Boolean).map(Number);
const TICK = 100; // clock ticks per second (USER_HZ on Linux)

/// user+system CPU seconds of `pid` and all its descendants.
function cpu(pid) {
  let total = 0;
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = f.slice(f.lastIndexOf(")") + 2).split(" ");
    total += (Number(fields[11]) + Number(fields[12])) / TICK;
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      const kids = fs.readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim();
      for (const k of kids.split(" ").filter(Boolean)) total += cpu(Number(k));
    }
  } catch (_) {}
  return total;
}
const serverCpu = () => pids.reduce((a, p) => a + cpu(p), 0);

function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => { res.resume(); res.on("end", resolve); }).on("error", reject);
  });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];

async function main() {
  const clients = [];
  let waiting = null; // { seq, left, t0, resolve }
  const deliveries = [];
  for (let i = 0; i < conns; i++) {
    const c = io(urls[i % urls.length], { transports: ["websocket"], forceNew: true });
    c.on("news", (msg) => {
      const w = waiting;
      if (!w || Number(msg) !== w.seq) return;
      deliveries.push(Number(process.hrtime.bigint() - w.t0) / 1e6);
      if (--w.left === 0) w.resolve(Number(process.hrtime.bigint() - w.t0) / 1e6);
    });
    clients.push(c);
    await new Promise((r) => c.on("connect", r));
    await c.emitWithAck("join", "bench");
  }
  const lasts = [];
  const run = async (seq) => {
    const done = new Promise((resolve) => {
      waiting = { seq, left: conns, t0: process.hrtime.bigint(), resolve };
    });
    await get(`${trigger}?room=bench&msg=${seq}`);
    const timeout = new Promise((r) => setTimeout(() => r(null), 5000));
    return Promise.race([done, timeout]);
  };
  for (let s = 0; s < 20; s++) await run(-1 - s); // warm-up, not measured
  deliveries.length = 0;
  const cpu0 = serverCpu();
  let lost = 0;
  for (let s = 0; s < emits; s++) {
    const last = await run(s);
    if (last === null) lost++;
    else lasts.push(last);
  }
  const cpu1 = serverCpu();
  lasts.sort((a, b) => a - b);
  deliveries.sort((a, b) => a - b);
  const n = deliveries.length;
  const usPerDelivery = n ? ((cpu1 - cpu0) * 1e6) / n : 0;
  console.log(
    `sio_cluster_bench: nodes=${urls.length} conns=${conns} emits=${emits} timed_out=${lost} ` +
      `deliveries=${n} cpu_us_per_delivery=${usPerDelivery.toFixed(2)} ` +
      `last_p50_ms=${pct(lasts, 50).toFixed(2)} last_p99_ms=${pct(lasts, 99).toFixed(2)} ` +
      `delivery_p50_ms=${pct(deliveries, 50).toFixed(2)} delivery_p99_ms=${pct(deliveries, 99).toFixed(2)}`
  );
  clients.forEach((c) => c.close());
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
