'use strict';
// Engine.IO HTTP long-polling and the upgrade to WebSocket, end to end, across 2 workers with no
// sticky sessions: socket.io-client 4.8 and 2.3.0 with their default transports (polling first,
// then the upgrade) and with polling only; 100 concurrent sessions; engine.io's answers to bad
// HTTP input. A polling request or upgrade that lands on a worker other than the session's owner
// is handed to the owner with its socket: the server runs with the hand-off log on, and the
// `fd N: handed to worker W` lines prove that requests were served across workers.
//   node --test tests/socketio/polling.test.js                  # our server (SIO_BIN overrides)
//   SIO_SERVER=node node --test tests/socketio/polling.test.js  # the Node reference server

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  USE_NODE, WAIT_MS, SETTLE_MS, VERSIONS, sleep, withTimeout, startServer, Pool, errText, uniq,
  countMsg, joinedMsg, sayMsg, countsIn, joinAndCheck,
} = require('./harness');

const T = { timeout: 30000 };
const DEFAULTS = { defaultTransports: true }; // the client's own transports: polling, then the upgrade
const POLLING = { transports: ['polling'] };
const MAX_PAYLOAD = 1000000; // engine.io's default maxHttpBufferSize, the open packet's maxPayload
const HANDOFF_LOG = 'info,prefork_ws::runtime::worker::handoff=debug';

let server;
let pool;
let handoffs; // `fd N: handed to worker W` lines since the server started
let handoffFailures; // the hand-off's warnings (a failed or refused hand-off drops the connection)
const everyone = []; // every client of this file, checked at the end

before(async () => {
  server = await startServer({ workers: 2, env: { RUST_LOG: HANDOFF_LOG } });
  handoffs = server.watch(/: handed to worker \d+/);
  handoffFailures = server.watch(/hand-off to worker .* failed|hand-off from another worker refused|register a handed-over connection/);
  pool = new Pool(server);
});

afterEach(() => {
  if (!pool) return;
  everyone.push(...pool.clients);
  pool.closeAll();
});

after(async () => {
  if (pool) pool.closeAll();
  if (server) await server.stop();
});

// What a client must not have seen: a connect_error / error, an upgradeError, or a disconnect
// other than its own `socket.disconnect()` (unless the test closed it otherwise on purpose).
function problems(c) {
  const out = [];
  if (c.errors.length) out.push(`errors ${JSON.stringify(c.errors.map(errText))}`);
  if (c.upgradeErrors.length) out.push(`upgradeErrors ${JSON.stringify(c.upgradeErrors)}`);
  const bad = c.disconnects.filter((r) => r !== 'io client disconnect');
  if (bad.length && !c.closedOnPurpose) out.push(`disconnects ${JSON.stringify(c.disconnects)}`);
  return out.length ? `${c.version}${c.nsp} ${c.id}: ${out.join(', ')}` : null;
}

function assertClean(clients) {
  const found = clients.map(problems).filter(Boolean);
  assert.deepEqual(found, [], 'no connect_error, upgradeError or unexpected disconnect');
}

// Counts the hand-offs during `fn` and reports them.
async function counting(t, fn) {
  if (USE_NODE) return fn();
  const before = handoffs.count;
  const r = await fn();
  t.diagnostic(`${handoffs.count - before} requests/upgrades handed to the other worker during this test`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Default options: polling first, then the upgrade to WebSocket.

for (const V of VERSIONS) {
  test(`${V} default options: opens on polling, upgrades to websocket, acks for events emitted before and after the upgrade, /chat, clean disconnect`, T, (t) => counting(t, async () => {
    const c = pool.make(V, '/', DEFAULTS);
    const seen = {};
    c.socket.once('connect', () => { seen.connect = { on: c.transport, upgraded: c.upgrades.length > 0 }; });
    // Emitted before the connection is up: buffered by the client and sent once connected.
    // Whether its ack arrives before or after the upgrade is up to timing (the client stops
    // writing on polling as soon as the probe succeeds), so that is reported, not asserted.
    const early = withTimeout(new Promise((resolve) => c.socket.emit('event', 'before upgrade',
      (ack) => resolve({ ack, on: c.transport, upgraded: c.upgrades.length > 0 }))), WAIT_MS, 'early ack');
    await c.connected();
    assert.equal(c.openTransport, 'polling', 'the engine opened on HTTP long-polling');
    const first = await early;
    assert.equal(first.ack, 'Event Received: before upgrade');
    await c.upgraded();
    assert.deepEqual(c.upgrades, ['websocket']);
    assert.equal(c.transport, 'websocket', 'socket.io.engine.transport.name after the upgrade event');
    t.diagnostic(`${V}: the CONNECT answer arrived ${seen.connect.upgraded ? 'after' : 'before'} the upgrade, `
      + `the early ack ${first.upgraded ? 'after' : 'before'} it (on ${first.on})`);
    for (const data of ['after upgrade', 'héllo ✓ 漢字 🎉']) {
      assert.equal(await c.emitAck('event', data), `Event Received: ${data}`);
    }
    assert.equal(c.transport, 'websocket');
    const chat = await pool.multiplex(c, '/chat'); // a second namespace on the upgraded connection
    assert.equal(await chat.emitAck('event', 'y'), 'chat Received: y');
    c.socket.disconnect();
    chat.socket.disconnect();
    await c.waitFor((x) => x.disconnects.length > 0, 'disconnect');
    assert.deepEqual(c.disconnects, ['io client disconnect']);
    assert.equal(c.socket.connected, false);
    await sleep(SETTLE_MS);
    assertClean([c, chat]);
  }));

  test(`${V} default options: join-room counts across 5 upgraded clients, say, and leavers leave the room`, T, (t) => counting(t, async () => {
    const clients = [];
    for (let i = 0; i < 5; i++) clients.push(pool.make(V, '/', DEFAULTS));
    await Promise.all(clients.map((c) => c.connected()));
    await Promise.all(clients.map((c) => c.upgraded()));
    assert.ok(clients.every((c) => c.openTransport === 'polling' && c.transport === 'websocket'));
    const room = uniq('droom');
    await joinAndCheck(clients, room);
    const [a, b, c, d, e] = clients;
    a.emit('say', JSON.stringify({ room, message: 'after the upgrade' }));
    await Promise.all([b, c, d, e].map((x) => x.waitEvent(sayMsg(a.id, 'after the upgrade'))));
    d.socket.disconnect();
    e.closedOnPurpose = true;
    e.socket.io.engine.close(); // the connection goes, no DISCONNECT packet
    await d.waitFor((x) => x.disconnects.length > 0, 'disconnect');
    await e.waitFor((x) => x.disconnects.length > 0, 'disconnect');
    await sleep(SETTLE_MS);
    const f = pool.make(V, '/', DEFAULTS);
    await f.connected();
    assert.equal(await f.emitAck('join-room', room), null);
    await a.waitFor((x) => countsIn(x, room).length >= 6, 'the count after f joined');
    assert.equal(countsIn(a, room)[5], 4, 'a, b, c and f are in the room');
    await b.waitEvent(joinedMsg(f.id, room));
    assertClean([a, b, c, d, e, f]);
  }));
}

test('mixed v2 and v4 default-option clients share a room after upgrading', T, (t) => counting(t, async () => {
  const clients = ['v4', 'v2', 'v4', 'v2'].map((V) => pool.make(V, '/', DEFAULTS));
  await Promise.all(clients.map((c) => c.connected()));
  await Promise.all(clients.map((c) => c.upgraded()));
  const room = uniq('dmixed');
  await joinAndCheck(clients, room);
  const [v4a, v2a, v4b, v2b] = clients;
  v2a.emit('say', JSON.stringify({ room, message: 'from v2' }));
  v4a.emit('say', { room, message: 'from v4' });
  await Promise.all([
    v4a.waitEvent(sayMsg(v2a.id, 'from v2')), v4b.waitEvent(sayMsg(v2a.id, 'from v2')), v2b.waitEvent(sayMsg(v2a.id, 'from v2')),
    v2a.waitEvent(sayMsg(v4a.id, 'from v4')), v4b.waitEvent(sayMsg(v4a.id, 'from v4')), v2b.waitEvent(sayMsg(v4a.id, 'from v4')),
  ]);
  assertClean(clients);
}));

// ---------------------------------------------------------------------------------------------
// Polling only: every packet both ways over HTTP requests.

for (const V of VERSIONS) {
  test(`${V} polling only: events and acks, /chat multiplexed, never upgrades`, T, (t) => counting(t, async () => {
    const c = await pool.connect(V, '/', POLLING);
    assert.equal(c.transport, 'polling');
    for (const data of ['x', 'hello world', 'héllo ✓ 漢字 🎉', 'quote " backslash \\ newline \n tab \t end', 'x'.repeat(20000)]) {
      assert.equal(await c.emitAck('event', data), `Event Received: ${data}`);
    }
    // several in flight at once: the client batches them into one POST payload
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => c.emitAck('event', `n${i}`)));
    assert.deepEqual(many, Array.from({ length: 20 }, (_, i) => `Event Received: n${i}`));
    const chat = await pool.multiplex(c, '/chat');
    const [a, b] = await Promise.all([c.emitAck('event', 'r'), chat.emitAck('event', 'ünï')]);
    assert.equal(a, 'Event Received: r');
    assert.equal(b, 'chat Received: ünï');
    await sleep(SETTLE_MS);
    assert.equal(c.transport, 'polling');
    assert.deepEqual(c.upgrades, []);
    assertClean([c, chat]);
  }));

  test(`${V} polling only: join-room counts with 4 clients, say to the others only`, T, (t) => counting(t, async () => {
    const clients = await Promise.all([0, 1, 2, 3].map(() => pool.connect(V, '/', POLLING)));
    const room = uniq('proom');
    await joinAndCheck(clients, room);
    const [a, b, c, d] = clients;
    const outsider = await pool.connect(V, '/', POLLING);
    a.emit('say', JSON.stringify({ room, message: 'hi from a' }));
    b.emit('say', { room, message: 'object from b' });
    outsider.emit('say', JSON.stringify({ room, message: 'knock knock' }));
    await Promise.all([
      b.waitEvent(sayMsg(a.id, 'hi from a')), c.waitEvent(sayMsg(a.id, 'hi from a')), d.waitEvent(sayMsg(a.id, 'hi from a')),
      a.waitEvent(sayMsg(b.id, 'object from b')), c.waitEvent(sayMsg(b.id, 'object from b')), d.waitEvent(sayMsg(b.id, 'object from b')),
      ...clients.map((x) => x.waitEvent(sayMsg(outsider.id, 'knock knock'))),
    ]);
    await sleep(SETTLE_MS);
    const says = (x) => x.events.filter((m) => typeof m === 'string' && m.includes(' say: '));
    assert.ok(!says(a).includes(sayMsg(a.id, 'hi from a')), 'a does not get its own say');
    assert.ok(!says(b).includes(sayMsg(b.id, 'object from b')), 'b does not get its own say');
    assert.deepEqual(outsider.events, [], 'the outsider got nothing');
    assert.ok(clients.every((x) => x.transport === 'polling'));
    assertClean([...clients, outsider]);
  }));

  test(`${V} polling only: a server emit reaches an idle polling client promptly (its held GET answers)`, T, (t) => counting(t, async () => {
    const room = uniq('idle');
    const idle = await pool.connect(V, '/', POLLING);
    const talker = await pool.connect(V, '/', DEFAULTS);
    assert.equal(await idle.emitAck('join-room', room), null);
    await idle.waitEvent(countMsg(1, room));
    await talker.upgraded();
    const delays = [];
    for (let i = 0; i < 3; i++) {
      await sleep(600); // idle: nothing to send either way, the client's GET waits on the server
      const msg = `wake up ${i}`;
      const t0 = Date.now();
      talker.emit('say', JSON.stringify({ room, message: msg }));
      await idle.waitEvent(sayMsg(talker.id, msg));
      delays.push(Date.now() - t0);
    }
    t.diagnostic(`say → idle polling client: ${delays.join(', ')} ms`);
    assert.ok(delays.every((ms) => ms < 2000), `every emit arrived within 2 s (a pingInterval is 25 s): ${delays}`);
    assert.equal(idle.transport, 'polling');
    assertClean([idle, talker]);
  }));
}

test('polling-only and websocket-only clients of both versions share a room', T, (t) => counting(t, async () => {
  const clients = await Promise.all([
    pool.connect('v4', '/', POLLING), pool.connect('v2', '/', POLLING), pool.connect('v4'), pool.connect('v2'),
  ]);
  const room = uniq('pmixed');
  await joinAndCheck(clients, room);
  for (const from of clients) from.emit('say', JSON.stringify({ room, message: `from ${from.version}/${from.transport}` }));
  await Promise.all(clients.flatMap((to) => clients.filter((f) => f !== to)
    .map((f) => to.waitEvent(sayMsg(f.id, `from ${f.version}/${f.transport}`)))));
  assertClean(clients);
}));

// ---------------------------------------------------------------------------------------------
// Load: 100 sessions at once through the whole cycle.

test('100 concurrent sessions (80 v4 + 20 v2, default options): connect, ack, join-room, upgrade, ack, disconnect', { timeout: 40000 }, (t) => counting(t, async () => {
  const N = 100;
  const handed = handoffs.count;
  const ROOMS = 10;
  const t0 = Date.now();
  const rooms = Array.from({ length: ROOMS }, () => uniq('load'));
  const clients = Array.from({ length: N }, (_, i) => pool.make(i % 5 === 4 ? 'v2' : 'v4', '/', DEFAULTS));
  const steps = clients.map(async (c, i) => {
    await c.connected();
    assert.equal(c.openTransport, 'polling');
    assert.equal(await c.emitAck('event', `hello ${i}`), `Event Received: hello ${i}`);
    const room = rooms[i % ROOMS];
    assert.equal(await c.emitAck('join-room', room), null);
    await c.upgraded();
    assert.equal(c.transport, 'websocket');
    assert.equal(await c.emitAck('event', `upgraded ${i}`), `Event Received: upgraded ${i}`);
    // every member sees the room full at some point (the last joiner's count reaches all)
    await c.waitEvent(countMsg(N / ROOMS, room));
  });
  await withTimeout(Promise.all(steps), 20000, `${N} sessions through connect → ack → join-room → upgrade → ack`);
  const upTime = Date.now() - t0;
  for (const c of clients) c.socket.disconnect();
  await Promise.all(clients.map((c) => c.waitFor((x) => x.disconnects.length > 0, 'disconnect')));
  assert.ok(clients.every((c) => c.disconnects[0] === 'io client disconnect' && !c.socket.connected));
  // the server saw them go: a newcomer joining one of the rooms is alone in it
  const probe = await pool.connect('v4');
  assert.equal(await probe.emitAck('join-room', rooms[0]), null);
  await probe.waitFor((x) => countsIn(x, rooms[0]).length > 0, 'count');
  await sleep(SETTLE_MS);
  assert.deepEqual(countsIn(probe, rooms[0]), [1], 'the 10 earlier members are gone');
  t.diagnostic(`${N} sessions up, acked, joined and upgraded in ${upTime} ms; all done in ${Date.now() - t0} ms`);
  assertClean([...clients, probe]);
  if (!USE_NODE) assert.ok(handoffs.count > handed, 'some of their requests/upgrades were served across workers');
}));

// ---------------------------------------------------------------------------------------------
// Raw HTTP (fetch): a long-poll held open, the payload limit, engine.io's answers to bad input.

const base = () => `${server.url}/socket.io/`;
const pollUrl = (sid, eio = 4) => `${base()}?EIO=${eio}&transport=polling&sid=${encodeURIComponent(sid)}`;

async function request(url, init = {}) {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(WAIT_MS) });
  return { status: res.status, body: await res.text(), headers: res.headers };
}

async function handshake() {
  const r = await request(`${base()}?EIO=4&transport=polling`);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.body[0], '0', `open packet: ${r.body}`);
  const open = JSON.parse(r.body.slice(1));
  assert.deepEqual(open.upgrades, ['websocket']);
  return open;
}

const post = (sid, body) => request(pollUrl(sid), { method: 'POST', body, headers: { 'content-type': 'text/plain;charset=UTF-8' } });
const packets = (body) => body.split('\x1e');
const SESSION_UNKNOWN = { code: 1, message: 'Session ID unknown' };

// A raw EIO4 polling session connected to `/`: { sid (engine), id (Socket.IO) }.
async function rawSession() {
  const open = await handshake();
  const c = await post(open.sid, '40');
  assert.deepEqual([c.status, c.body], [200, 'ok'], 'POST 40');
  const g = await request(pollUrl(open.sid));
  assert.equal(g.status, 200);
  const connect = packets(g.body).find((p) => p.startsWith('40{'));
  assert.ok(connect, `CONNECT answer in ${JSON.stringify(g.body)}`);
  return { sid: open.sid, id: JSON.parse(connect.slice(2)).sid };
}

// GETs until the received packets satisfy `done(list)`; returns them all.
async function pollUntil(sid, done, what) {
  const got = [];
  const deadline = Date.now() + WAIT_MS;
  while (!done(got)) {
    if (Date.now() > deadline) throw new Error(`timeout: ${what}; got ${JSON.stringify(got)}`);
    const g = await request(pollUrl(sid));
    assert.equal(g.status, 200, g.body);
    got.push(...packets(g.body));
  }
  return got;
}

test('raw: the open packet over polling names the websocket upgrade and the limits', T, async (t) => {
  const open = await handshake();
  t.diagnostic(`open packet ${JSON.stringify(open)}`);
  assert.deepEqual(Object.keys(open).sort(), ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades']);
  assert.equal(open.maxPayload, MAX_PAYLOAD);
  assert.equal(open.pingInterval, 25000);
  assert.equal(open.pingTimeout, 20000);
});

test('raw: a held GET stays open while idle and answers as soon as a websocket client says something to its room', T, async (t) => {
  const room = uniq('held');
  const s = await rawSession();
  const j = await post(s.sid, `421["join-room",${JSON.stringify(room)}]`);
  assert.deepEqual([j.status, j.body], [200, 'ok']);
  const got = await pollUntil(s.sid, (l) => l.includes('431[null]') && l.includes(`42["event",${JSON.stringify(countMsg(1, room))}]`), 'join ack and count');
  assert.deepEqual(got.sort(), ['431[null]', `42["event",${JSON.stringify(countMsg(1, room))}]`].sort());
  const talker = await pool.connect('v4'); // WebSocket
  let answered = null;
  const held = request(pollUrl(s.sid)).then((r) => { answered = { ...r, at: Date.now() }; return r; });
  await sleep(800);
  assert.equal(answered, null, 'the GET is held while there is nothing to send');
  const t0 = Date.now();
  talker.emit('say', JSON.stringify({ room, message: 'are you there?' }));
  const r = await held;
  t.diagnostic(`the held GET answered ${answered.at - t0} ms after the say`);
  assert.equal(r.status, 200);
  assert.deepEqual(packets(r.body), [`42["event",${JSON.stringify(sayMsg(talker.id, 'are you there?'))}]`]);
  assert.ok(answered.at - t0 < 2000, `answered within 2 s, not at the next ping (${answered.at - t0} ms)`);
  // still a live session
  const after = await post(s.sid, '422["event","still"]');
  assert.deepEqual([after.status, after.body], [200, 'ok']);
  assert.deepEqual(await pollUntil(s.sid, (l) => l.length > 0, 'ack 2'), ['432["Event Received: still"]']);
  assertClean([talker]);
});

test('raw: unknown sid → 400 {"code":1,"message":"Session ID unknown"}', T, async () => {
  for (const sid of ['AAAAAAAAAAAAAAAAAAAA', 'nope']) {
    const r = await request(pollUrl(sid));
    assert.equal(r.status, 400);
    assert.deepEqual(JSON.parse(r.body), SESSION_UNKNOWN, `GET sid=${sid}`);
    const p = await post(sid, '42["event","x"]');
    assert.equal(p.status, 400);
    assert.deepEqual(JSON.parse(p.body), SESSION_UNKNOWN, `POST sid=${sid}`);
  }
});

test('raw: unknown transport → 400 {"code":0,"message":"Transport unknown"}', T, async () => {
  const r = await request(`${base()}?EIO=4&transport=carrier-pigeon`);
  assert.equal(r.status, 400);
  assert.deepEqual(JSON.parse(r.body), { code: 0, message: 'Transport unknown' });
});

test('raw: POST without a sid → 400 {"code":2,"message":"Bad handshake method"}', T, async () => {
  const r = await request(`${base()}?EIO=4&transport=polling`, { method: 'POST', body: '40' });
  assert.equal(r.status, 400);
  assert.deepEqual(JSON.parse(r.body), { code: 2, message: 'Bad handshake method' });
});

test('raw: EIO=9', T, async (t) => {
  const r = await request(`${base()}?EIO=9&transport=polling`);
  t.diagnostic(`${server.kind}: EIO=9 → ${r.status} ${r.body}`);
  if (USE_NODE) {
    // engine.io takes any EIO other than "4" for 3 when allowEIO3 is on: a v3 handshake.
    assert.equal(r.status, 200);
    assert.match(r.body, /^\d+:0\{/, 'an EIO3 (length-prefixed) open packet');
  } else {
    assert.equal(r.status, 400);
    assert.deepEqual(JSON.parse(r.body), { code: 5, message: 'Unsupported protocol version' });
  }
});

test(`raw: a POST of exactly maxPayload (${MAX_PAYLOAD} bytes) is served; one over it (1,100,000) → 413 and the session ends`, T, async () => {
  const s = await rawSession();
  const prefix = '421["event","';
  const suffix = '"]';
  const data = 'x'.repeat(MAX_PAYLOAD - prefix.length - suffix.length);
  const full = prefix + data + suffix;
  assert.equal(Buffer.byteLength(full), MAX_PAYLOAD);
  const ok = await post(s.sid, full);
  assert.deepEqual([ok.status, ok.body], [200, 'ok'], 'exactly maxPayload');
  const ack = await pollUntil(s.sid, (l) => l.some((p) => p.startsWith('431[')), 'the ack of the big event');
  assert.deepEqual(ack, [`431[${JSON.stringify(`Event Received: ${data}`)}]`]);

  const big = await request(pollUrl(s.sid), { method: 'POST', body: Buffer.alloc(1100000, 'x'), headers: { 'content-type': 'text/plain;charset=UTF-8' } });
  assert.equal(big.status, 413, `POST of 1,100,000 bytes: ${big.status} ${big.body.slice(0, 100)}`);
  const next = await request(pollUrl(s.sid));
  assert.equal(next.status, 400, 'the session is closed');
  assert.deepEqual(JSON.parse(next.body), SESSION_UNKNOWN);
});

for (const [what, body] of [['empty packets', '\x1e\x1e'], ['an unknown packet type', 'zzz']]) {
  test(`raw: a malformed payload POST (${what}) closes the session`, T, async (t) => {
    const s = await rawSession();
    const r = await post(s.sid, body);
    t.diagnostic(`${server.kind}: POST ${JSON.stringify(body)} → ${r.status} ${r.body}`);
    if (USE_NODE) {
      // engine.io answers the POST before it parses it (and then closes the session)
      assert.deepEqual([r.status, r.body], [200, 'ok']);
    } else {
      assert.equal(r.status, 400);
      assert.deepEqual(JSON.parse(r.body), { code: 3, message: 'Bad request' });
    }
    const next = await request(pollUrl(s.sid));
    assert.equal(next.status, 400, 'the session is closed');
    assert.deepEqual(JSON.parse(next.body), SESSION_UNKNOWN);
  });
}

test('raw: a second GET while one is held → the second gets 400, the first gets the close packet, the session ends', T, async (t) => {
  const s = await rawSession();
  let firstDone = false;
  const first = request(pollUrl(s.sid)).then((r) => { firstDone = true; return r; });
  await sleep(300);
  assert.equal(firstDone, false, 'the first GET is held');
  const second = await request(pollUrl(s.sid));
  const r1 = await first;
  t.diagnostic(`${server.kind}: second GET → ${second.status} ${JSON.stringify(second.body)}; first → ${r1.status} ${JSON.stringify(r1.body)}`);
  assert.equal(second.status, 400);
  assert.deepEqual([r1.status, r1.body], [200, '1'], 'the first GET gets the close packet');
  const next = await request(pollUrl(s.sid));
  assert.equal(next.status, 400);
  assert.deepEqual(JSON.parse(next.body), SESSION_UNKNOWN);
});

// ---------------------------------------------------------------------------------------------
// Last: across the whole file, requests were handed between the workers and no client noticed.

test('2 workers: requests and upgrades were handed to the session owner, and no client saw an error or an unexpected disconnect', T, (t) => {
  everyone.push(...pool.clients);
  t.diagnostic(`${everyone.length} clients in this file`);
  assertClean(everyone);
  if (USE_NODE) {
    t.diagnostic('the Node reference server is one process: no hand-offs to count');
    return;
  }
  t.diagnostic(`${handoffs.count} 'handed to worker' lines, ${handoffFailures.count} hand-off warnings`);
  assert.ok(handoffs.count > 0, 'some requests/upgrades landed on the other worker and were handed over');
  assert.equal(handoffFailures.count, 0, `no hand-off failed:\n${server.output().split('\n').filter((l) => handoffFailures.re.test(l)).join('\n')}`);
});
