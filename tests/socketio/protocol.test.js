'use strict';
// Wire-level checks (raw WebSocket frames, no Socket.IO client library): the Engine.IO open packet,
// the implicit namespace connect of EIO3, packet encodings of acks and CONNECT_ERROR, EIO3 ping.
// They pin down what the client-library tests only show as a failure to connect.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { USE_NODE, WAIT_MS, startServer, withTimeout } = require('./harness');

const SID_RE = /^[^#]+#\d+$/;
const T = { timeout: 30000 };

let server;
const sockets = [];

before(async () => {
  server = await startServer({ workers: 2 });
});

after(async () => {
  for (const ws of sockets) ws.terminate();
  if (server) await server.stop();
});

// A raw Engine.IO WebSocket connection that queues every text frame it receives.
function open(eio) {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/socket.io/?EIO=${eio}&transport=websocket`);
  sockets.push(ws);
  const queue = [];
  let wake = null;
  ws.on('message', (d, isBinary) => {
    queue.push(isBinary ? d : d.toString());
    if (wake) wake();
  });
  ws.on('close', () => { if (wake) wake(); });
  ws.next = (what) => withTimeout((async () => {
    while (!queue.length) {
      if (ws.readyState >= WebSocket.CLOSING) throw new Error(`connection closed while waiting for ${what}`);
      await new Promise((r) => { wake = r; });
    }
    return queue.shift();
  })(), WAIT_MS, `EIO${eio} frame: ${what}`);
  ws.opened = withTimeout(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode} instead of 101`)));
  }), WAIT_MS, `EIO${eio} WebSocket upgrade`);
  return ws;
}

// Splits '<type><nsp,><id><json>' and checks it; `json` is compared as parsed JSON.
function expectPacket(frame, prefix, json) {
  assert.equal(typeof frame, 'string', 'a text frame');
  assert.ok(frame.startsWith(prefix), `frame ${JSON.stringify(frame)} starts with ${JSON.stringify(prefix)}`);
  const rest = frame.slice(prefix.length);
  if (json === undefined) assert.equal(rest, '', `frame ${JSON.stringify(frame)}`);
  else assert.deepEqual(JSON.parse(rest), json, `frame ${JSON.stringify(frame)}`);
}

function checkOpen(frame) {
  assert.equal(frame[0], '0', `open packet, got ${JSON.stringify(frame)}`);
  const h = JSON.parse(frame.slice(1));
  assert.equal(typeof h.sid, 'string');
  assert.ok(h.sid.length > 0);
  assert.deepEqual(h.upgrades, [], 'websocket only: no upgrades');
  assert.ok(Number.isInteger(h.pingInterval) && h.pingInterval > 0, 'pingInterval');
  assert.ok(Number.isInteger(h.pingTimeout) && h.pingTimeout > 0, 'pingTimeout');
  return h;
}

test('EIO4: open packet, CONNECT / with sid, ack, /chat, Invalid namespace', T, async (t) => {
  const ws = open(4);
  await ws.opened;
  const h = checkOpen(await ws.next('open packet'));
  t.diagnostic(`open packet ${JSON.stringify(h)}`);
  ws.send('40');
  const connect = await ws.next('CONNECT /');
  assert.match(connect, /^40\{/);
  const { sid } = JSON.parse(connect.slice(2));
  assert.equal(typeof sid, 'string');
  if (!USE_NODE) assert.match(sid, SID_RE);
  ws.send('421["event","x"]');
  expectPacket(await ws.next('ack 1'), '431', ['Event Received: x']);
  ws.send('40/chat,');
  const chat = await ws.next('CONNECT /chat');
  assert.match(chat, /^40\/chat,\{"sid":/);
  ws.send('42/chat,2["event","y"]');
  expectPacket(await ws.next('ack 2 on /chat'), '43/chat,2', ['chat Received: y']);
  ws.send('40/nope,');
  expectPacket(await ws.next('CONNECT_ERROR /nope'), '44/nope,', { message: 'Invalid namespace' });
  ws.send('423["join-room","raw4"]');
  const got = [await ws.next('join-room 1/2'), await ws.next('join-room 2/2')].sort();
  expectPacket(got[0], '42', ['event', 'There are 1 players in raw4']);
  expectPacket(got[1], '433', [null]);
  // still alive
  ws.send('424["event","z"]');
  expectPacket(await ws.next('ack 4'), '434', ['Event Received: z']);
});

test('EIO3: open packet, implicit CONNECT /, ack, /chat, Invalid namespace, ping/pong', T, async (t) => {
  const ws = open(3);
  await ws.opened;
  const h = checkOpen(await ws.next('open packet'));
  t.diagnostic(`open packet ${JSON.stringify(h)}`);
  // Socket.IO v4 protocol (EIO3): the server connects '/' by itself, with an empty CONNECT.
  expectPacket(await ws.next('implicit CONNECT /'), '40');
  ws.send('421["event","x"]');
  expectPacket(await ws.next('ack 1'), '431', ['Event Received: x']);
  ws.send('40/chat,');
  expectPacket(await ws.next('CONNECT /chat'), '40/chat,');
  ws.send('42/chat,2["event","y"]');
  expectPacket(await ws.next('ack 2 on /chat'), '43/chat,2', ['chat Received: y']);
  ws.send('40/nope,');
  // Node sends the same object to EIO3 clients as to EIO4 ones
  expectPacket(await ws.next('CONNECT_ERROR /nope'), '44/nope,', { message: 'Invalid namespace' });
  ws.send('2'); // EIO3: the client pings, the server answers
  expectPacket(await ws.next('pong'), '3');
  ws.send('423["event","z"]');
  expectPacket(await ws.next('ack 3'), '433', ['Event Received: z']);
});

test('EIO4: CONNECT with an auth payload', T, async () => {
  const ws = open(4);
  await ws.opened;
  checkOpen(await ws.next('open packet'));
  ws.send('40{"token":"abc"}');
  assert.match(await ws.next('CONNECT / with auth'), /^40\{"sid":"[^"]+"/);
  ws.send('421["event","a"]');
  expectPacket(await ws.next('ack'), '431', ['Event Received: a']);
});

test('EIO4: binary event (BINARY_EVENT + attachment) is acknowledged', T, async (t) => {
  const ws = open(4);
  await ws.opened;
  checkOpen(await ws.next('open packet'));
  ws.send('40');
  await ws.next('CONNECT /');
  ws.send('451-1["event",{"_placeholder":true,"num":0}]');
  ws.send(Buffer.from('bin'));
  const ack = await ws.next('ack for the binary event');
  t.diagnostic(`ack frame: ${JSON.stringify(ack)}`);
  assert.match(ack, /^431\["Event Received: /);
  ws.send('422["event","after"]');
  expectPacket(await ws.next('ack 2'), '432', ['Event Received: after']);
});
