'use strict';
// End-to-end checks of the socketio_server example with socket.io-client 4.8 (EIO4 / Socket.IO v5)
// and socket.io-client 2.3.0 (EIO3 / Socket.IO v4), WebSocket transport only.
//   node --test tests/socketio/                 # against target/release/examples/socketio_server
//   SIO_SERVER=node node --test tests/socketio/ # against the Node reference server

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  USE_NODE, SETTLE_MS, VERSIONS, sleep, startServer, Pool, errText, uniq,
  countMsg, joinedMsg, sayMsg, countsIn, sorted, joinAndCheck,
} = require('./harness');

const SID_RE = /^[^#]+#\d+$/; // ServerID#FD (our server only; Node's ids are random)
const T = { timeout: 30000 };

let server;
let pool;

before(async () => {
  server = await startServer({ workers: 2 });
  pool = new Pool(server);
});

afterEach(() => pool && pool.closeAll());

after(async () => {
  if (pool) pool.closeAll();
  if (server) await server.stop();
});

for (const V of VERSIONS) {
  test(`${V}: connects over websocket with a sid`, T, async (t) => {
    const c = await pool.connect(V);
    assert.equal(c.socket.io.engine.transport.name, 'websocket');
    assert.equal(typeof c.id, 'string');
    assert.ok(c.id.length > 0, 'non-empty sid');
    if (USE_NODE) {
      t.diagnostic(`sid ${c.id} (format not checked against the Node reference)`);
    } else {
      assert.match(c.id, SID_RE);
    }
  });

  test(`${V}: 'event' is acknowledged with 'Event Received: <data>'`, T, async () => {
    const c = await pool.connect(V);
    for (const data of ['x', 'hello world', 'héllo ✓ 漢字 🎉', 'quote " backslash \\ newline \n tab \t end']) {
      assert.equal(await c.emitAck('event', data), `Event Received: ${data}`);
    }
  });

  test(`${V}: /chat 'event' is acknowledged with 'chat Received: <data>'`, T, async () => {
    const c = await pool.connect(V, '/chat');
    assert.equal(await c.emitAck('event', 'y'), 'chat Received: y');
    assert.equal(await c.emitAck('event', 'ünï'), 'chat Received: ünï');
  });

  test(`${V}: '/' and '/chat' multiplexed over one connection keep their own handlers`, T, async () => {
    const root = await pool.connect(V);
    const chat = await pool.multiplex(root, '/chat');
    assert.equal(chat.socket.io, root.socket.io, 'same Manager');
    const [a, b] = await Promise.all([root.emitAck('event', 'r'), chat.emitAck('event', 'c')]);
    assert.equal(a, 'Event Received: r');
    assert.equal(b, 'chat Received: c');
    // leaving /chat (a DISCONNECT for /chat only) keeps / on the same connection
    chat.socket.disconnect();
    await sleep(SETTLE_MS);
    assert.equal(await root.emitAck('event', 'still here'), 'Event Received: still here');
    assert.deepEqual(root.disconnects, []);
  });

  test(`${V}: an unknown namespace is refused with 'Invalid namespace'`, T, async (t) => {
    const c = pool.make(V, '/nope');
    await c.waitFor((x) => x.errors.length > 0, 'connect error for /nope');
    const e = c.errors[0];
    t.diagnostic(`${V} got '${e.event}' with ${JSON.stringify(e.data instanceof Error ? { message: e.data.message, data: e.data.data } : e.data)}`);
    // socket.io-client 4 emits connect_error(Error); 2.3.0 emits error(packet data) for a CONNECT_ERROR packet
    assert.equal(e.event, V === 'v2' ? 'error' : 'connect_error');
    assert.equal(errText(e), 'Invalid namespace');
    assert.equal(c.socket.connected, false);
  });

  test(`${V}: join-room with 6 clients: counts across workers and 'has joined' to the others only`, T, async (t) => {
    const clients = [];
    for (let i = 0; i < 6; i++) clients.push(await pool.connect(V));
    if (!USE_NODE) t.diagnostic(`server ids: ${[...new Set(clients.map((c) => c.id.split('#')[0]))].join(', ')}`);
    await joinAndCheck(clients, uniq('room'));
  });

  test(`${V}: say reaches the others in the room, not the sender nor other rooms`, T, async () => {
    const room = uniq('say');
    const [a, b, c, d, e] = await Promise.all([0, 1, 2, 3, 4].map(() => pool.connect(V)));
    await a.emitAck('join-room', room);
    await b.emitAck('join-room', room);
    await c.emitAck('join-room', room);
    await d.emitAck('join-room', uniq('other')); // d is in another room, e in none
    a.emit('say', JSON.stringify({ room, message: 'hi from a' }));
    b.emit('say', { room, message: 'object from b' }); // an object payload is accepted too
    await Promise.all([
      b.waitEvent(sayMsg(a.id, 'hi from a')),
      c.waitEvent(sayMsg(a.id, 'hi from a')),
      a.waitEvent(sayMsg(b.id, 'object from b')),
      c.waitEvent(sayMsg(b.id, 'object from b')),
    ]);
    await sleep(SETTLE_MS);
    const says = (x) => x.events.filter((m) => typeof m === 'string' && m.includes(' say: '));
    assert.deepEqual(says(a), [sayMsg(b.id, 'object from b')], 'a: only b\'s message, not its own');
    assert.deepEqual(says(b), [sayMsg(a.id, 'hi from a')], 'b: only a\'s message, not its own');
    assert.deepEqual(sorted(says(c)), sorted([sayMsg(a.id, 'hi from a'), sayMsg(b.id, 'object from b')]));
    assert.deepEqual(says(d), [], 'd (other room) got nothing');
    assert.deepEqual(e.events, [], 'e (no room) got nothing at all');
  });

  test(`${V}: say to a room the sender has not joined still reaches its members`, T, async () => {
    const room = uniq('target');
    const [member, outsider] = await Promise.all([pool.connect(V), pool.connect(V)]);
    await member.emitAck('join-room', room);
    outsider.emit('say', JSON.stringify({ room, message: 'knock knock' }));
    await member.waitEvent(sayMsg(outsider.id, 'knock knock'));
    await sleep(SETTLE_MS);
    assert.deepEqual(outsider.events, []);
  });

  test(`${V}: binary 'event' payload does not break the connection`, T, async (t) => {
    const c = await pool.connect(V);
    const other = await pool.connect(V);
    const ack = await c.emitAck('event', Buffer.from('bin'));
    t.diagnostic(`ack for Buffer('bin'): ${JSON.stringify(ack)}`);
    assert.equal(typeof ack, 'string');
    assert.ok(ack.startsWith('Event Received: '), `ack ${JSON.stringify(ack)}`);
    assert.equal(await c.emitAck('event', 'after binary'), 'Event Received: after binary');
    assert.equal(await other.emitAck('event', 'still up'), 'Event Received: still up');
    assert.equal(c.disconnects.length, 0);
  });

  test(`${V}: disconnect: reasons, and a gone client leaves its rooms`, T, async () => {
    const room = uniq('leave');
    const clients = [];
    for (let i = 0; i < 4; i++) clients.push(await pool.connect(V));
    const [a, b, c, d] = clients;
    for (const x of clients) await x.emitAck('join-room', room);
    await a.waitEvent(countMsg(4, room));

    c.socket.disconnect(); // Socket.IO DISCONNECT packet, then the connection closes
    await c.waitFor((x) => x.disconnects.length > 0, 'disconnect event');
    assert.deepEqual(c.disconnects, ['io client disconnect']);
    d.socket.io.engine.close(); // only the connection goes (no DISCONNECT packet)
    await d.waitFor((x) => x.disconnects.length > 0, 'disconnect event');
    await sleep(SETTLE_MS);

    const e = await pool.connect(V);
    assert.equal(await e.emitAck('join-room', room), null);
    await e.waitFor((x) => countsIn(x, room).length > 0, 'its own count');
    assert.deepEqual(countsIn(e, room), [3], 'a, b and e are left in the room');
    await a.waitFor((x) => countsIn(x, room).length >= 5, 'count after e joined');
    assert.deepEqual(countsIn(a, room), [1, 2, 3, 4, 3]);
    await b.waitEvent(joinedMsg(e.id, room));
    assert.deepEqual(a.disconnects, []);
    assert.deepEqual(b.disconnects, []);
    assert.ok(a.socket.connected && b.socket.connected);
  });
}

test('v4: an auth payload is accepted on / and /chat', T, async () => {
  const c = await pool.connect('v4', '/', { auth: { token: 'secret-token' } });
  assert.equal(await c.emitAck('event', 'authed'), 'Event Received: authed');
  const chat = await pool.connect('v4', '/chat', { auth: { token: 'secret-token', user: 'u' } });
  assert.equal(await chat.emitAck('event', 'authed'), 'chat Received: authed');
});

test('mixed v2 and v4 clients share a room: counts, joins and say both ways', T, async () => {
  const room = uniq('mixed');
  const clients = [];
  for (const V of ['v2', 'v4', 'v2', 'v4']) clients.push(await pool.connect(V));
  await joinAndCheck(clients, room);
  const [v2a, v4a, v2b, v4b] = clients;
  v2a.emit('say', JSON.stringify({ room, message: 'from v2' }));
  v4a.emit('say', JSON.stringify({ room, message: 'from v4' }));
  await Promise.all([
    v4a.waitEvent(sayMsg(v2a.id, 'from v2')),
    v4b.waitEvent(sayMsg(v2a.id, 'from v2')),
    v2b.waitEvent(sayMsg(v2a.id, 'from v2')),
    v2a.waitEvent(sayMsg(v4a.id, 'from v4')),
    v2b.waitEvent(sayMsg(v4a.id, 'from v4')),
    v4b.waitEvent(sayMsg(v4a.id, 'from v4')),
  ]);
  await sleep(SETTLE_MS);
  assert.ok(!v2a.events.includes(sayMsg(v2a.id, 'from v2')), 'v2 sender does not get its own say');
  assert.ok(!v4a.events.includes(sayMsg(v4a.id, 'from v4')), 'v4 sender does not get its own say');
});
