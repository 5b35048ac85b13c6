'use strict';
// The server going away: SIGTERM to the server's process group must end every client's session
// promptly (a `disconnect` event, not a silent hang until the ping timeout), and the server exits.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { WAIT_MS, startServer, Pool, withTimeout, uniq } = require('./harness');

let server;
let pool;

after(async () => {
  if (pool) pool.closeAll();
  if (server) await server.stop('SIGKILL');
});

test('SIGTERM: every v4 and v2 client gets a disconnect, the server exits', { timeout: 30000 }, async (t) => {
  server = await startServer({ workers: 2 });
  pool = new Pool(server);
  const clients = [];
  for (const V of ['v4', 'v2', 'v4', 'v2', 'v4', 'v2']) clients.push(await pool.connect(V));
  const room = uniq('bye');
  for (const c of clients) await c.emitAck('join-room', room);
  await clients[0].waitEvent(`There are ${clients.length} players in ${room}`);

  process.kill(-server.child.pid, 'SIGTERM');
  await Promise.all(clients.map((c) => c.waitFor((x) => x.disconnects.length > 0, 'disconnect after SIGTERM')));
  const reasons = clients.map((c) => `${c.version}:${c.disconnects[0]}`);
  t.diagnostic(`disconnect reasons: ${reasons.join(', ')}`);
  for (const c of clients) {
    // 'transport close': the connection was closed; 'io server disconnect': the server sent a
    // Socket.IO DISCONNECT first. 'ping timeout' would mean the connection was left open.
    assert.ok(['transport close', 'io server disconnect'].includes(c.disconnects[0]),
      `${c.version} client: reason ${c.disconnects[0]}`);
    assert.equal(c.socket.connected, false);
  }
  const exit = await withTimeout(server.exited, WAIT_MS, 'server exit after SIGTERM');
  t.diagnostic(`server exit: ${JSON.stringify(exit)}`);
});
