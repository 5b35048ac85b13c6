'use strict';
// Rolling reloads keep Socket.IO clients over WebSocket (issue 13): socket.io-client 4.8 and
// 2.3.0 stay connected with the same socket id, their rooms still count them, and acks and
// room emits work — no disconnect, no reconnect (the clients run with reconnection off).

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { startServer, Pool, uniq } = require('./harness');

let server;
let pool;

after(async () => {
  if (pool) pool.closeAll();
  if (server) await server.stop('SIGKILL');
});

/** The master's worker pids (its children). */
function workers(pid) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch { /* gone meanwhile */ }
  }
  return out.sort();
}

async function reload(pid, n) {
  const before = workers(pid);
  process.kill(pid, 'SIGUSR1');
  const deadline = Date.now() + 15000;
  for (;;) {
    const now = workers(pid);
    if (now.length === n && !now.some((p) => before.includes(p))) return;
    if (Date.now() > deadline) throw new Error(`workers not replaced: ${before} -> ${now}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// The reference Node server has no rolling reload: this test is about ours.
const skip = process.env.SIO_SERVER === 'node' ? 'the Node reference server has no rolling reload' : false;

test('reloads keep v4 and v2 clients connected, in their rooms, with the same ids', { timeout: 60000, skip }, async (t) => {
  server = await startServer({ workers: 2 });
  pool = new Pool(server);
  const clients = [];
  for (const V of ['v4', 'v2', 'v4', 'v2', 'v4', 'v2']) clients.push(await pool.connect(V));
  const ids = clients.map((c) => c.socket.id);
  const room = uniq('kept');
  for (const c of clients) await c.emitAck('join-room', room);
  await clients[0].waitEvent(`There are ${clients.length} players in ${room}`);
  for (let i = 0; i < 3; i++) await reload(server.child.pid, 2);
  for (const [i, c] of clients.entries()) {
    assert.deepEqual(c.disconnects, [], `${c.version} client ${i} saw a disconnect`);
    assert.equal(c.socket.connected, true);
    assert.equal(c.socket.id, ids[i], 'the same socket id');
  }
  // The room still holds all of them (counted across both workers), and emits reach them.
  const late = await pool.connect('v4');
  await late.emitAck('join-room', room);
  for (const c of clients) await c.waitEvent(`There are ${clients.length + 1} players in ${room}`);
  t.diagnostic(`${clients.length} clients kept across 3 reloads`);
});
