'use strict';
// Echo-server checks with the Node `ws` client: `node --test` in tests/node.
// Starts target/release/examples/echo (ECHO_BIN overrides) on a free port.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const WebSocket = require('ws');

const REPO = path.resolve(__dirname, '..', '..');
const ECHO_BIN = process.env.ECHO_BIN || path.join(REPO, 'target', 'release', 'examples', 'echo');

let server;
let url;

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

before(async () => {
  if (!fs.existsSync(ECHO_BIN)) {
    execFileSync('cargo', ['build', '--release', '--example', 'echo'], { cwd: REPO, stdio: 'inherit' });
  }
  server = spawn(ECHO_BIN, ['--host', '127.0.0.1', '--port', '0', '--workers', '2'], {
    detached: true, // own process group, killed as a whole in after()
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const port = await withTimeout(new Promise((resolve, reject) => {
    let buf = '';
    server.stdout.on('data', (d) => {
      buf += d.toString();
      const m = buf.match(/WebSocket Server listening at [0-9.]+:(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    server.on('exit', (code) => reject(new Error(`echo exited with ${code}`)));
  }), 30000, 'echo listening line');
  url = `ws://127.0.0.1:${port}/`;
  // wait until a worker accepts
  for (let i = 0; i < 100; i++) {
    try {
      const c = await open({});
      c.terminate();
      return;
    } catch (e) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error('echo server not accepting');
});

after(() => {
  if (server && server.exitCode === null) {
    try { process.kill(-server.pid, 'SIGTERM'); } catch (e) { /* gone */ }
    setTimeout(() => {
      try { process.kill(-server.pid, 'SIGKILL'); } catch (e) { /* gone */ }
    }, 3000).unref();
  }
});

function open(opts) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...opts });
    ws.once('upgrade', (res) => { ws.responseExtensions = res.headers['sec-websocket-extensions'] || ''; });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  }), 5000, 'open');
}

function nextMessage(ws) {
  return withTimeout(new Promise((resolve, reject) => {
    ws.once('message', (data, isBinary) => resolve({ data, isBinary }));
    ws.once('close', (code) => reject(new Error(`closed with ${code} while waiting for a message`)));
  }), 10000, 'message');
}

function closed(ws) {
  return withTimeout(new Promise((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  }), 5000, 'close');
}

test('text echo', async () => {
  const ws = await open({});
  ws.send('Hello, wörld ✓');
  const m = await nextMessage(ws);
  assert.equal(m.isBinary, false);
  assert.equal(m.data.toString('utf8'), 'Hello, wörld ✓');
  const c = closed(ws);
  ws.close(1000);
  assert.equal((await c).code, 1000);
});

test('binary echo of 1 MiB', async () => {
  const ws = await open({});
  const payload = crypto.randomBytes(1 << 20);
  ws.send(payload);
  const m = await nextMessage(ws);
  assert.equal(m.isBinary, true);
  assert.ok(Buffer.compare(m.data, payload) === 0);
  ws.close();
  await closed(ws);
});

test('messages come back in order', async () => {
  const ws = await open({});
  const got = [];
  const done = new Promise((resolve) => {
    ws.on('message', (d) => { got.push(d.toString()); if (got.length === 200) resolve(); });
  });
  for (let i = 0; i < 200; i++) ws.send(`msg ${i}`);
  await withTimeout(done, 10000, '200 echoes');
  assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => `msg ${i}`));
  ws.close();
  await closed(ws);
});

test('permessage-deflate is negotiated and compressed messages echo', async () => {
  const ws = await open({ perMessageDeflate: { threshold: 0 } });
  assert.match(ws.extensions, /permessage-deflate/);
  const text = JSON.stringify(Array.from({ length: 2000 }, (_, i) => ({ id: i, name: `item ${i}` })));
  ws.send(text);
  let m = await nextMessage(ws);
  assert.equal(m.isBinary, false);
  assert.equal(m.data.toString(), text);
  const bin = Buffer.alloc(300000, 7);
  ws.send(bin, { compress: true });
  m = await nextMessage(ws);
  assert.ok(Buffer.compare(m.data, bin) === 0);
  // context takeover across messages
  for (let i = 0; i < 5; i++) {
    ws.send(text);
    m = await nextMessage(ws);
    assert.equal(m.data.toString(), text);
  }
  ws.close();
  await closed(ws);
});

test('permessage-deflate with no context takeover and small windows', async () => {
  const ws = await open({
    perMessageDeflate: {
      threshold: 0,
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 10,
      clientMaxWindowBits: 10,
    },
  });
  assert.match(ws.responseExtensions, /^permessage-deflate/);
  assert.match(ws.responseExtensions, /server_no_context_takeover/);
  assert.match(ws.responseExtensions, /client_no_context_takeover/);
  assert.match(ws.responseExtensions, /server_max_window_bits=(9|10)\b/);
  const text = 'abcdefghij'.repeat(5000) + crypto.randomBytes(3000).toString('hex');
  for (let i = 0; i < 3; i++) {
    ws.send(text);
    const m = await nextMessage(ws);
    assert.equal(m.data.toString(), text);
  }
  ws.close();
  await closed(ws);
});

test('ping is answered with pong carrying the same payload', async () => {
  const ws = await open({});
  const pong = withTimeout(new Promise((resolve) => ws.once('pong', resolve)), 5000, 'pong');
  ws.ping(Buffer.from('are you there?'));
  assert.equal((await pong).toString(), 'are you there?');
  ws.close();
  await closed(ws);
});

test('client close code 4001 with reason is answered', async () => {
  const ws = await open({});
  const c = closed(ws);
  ws.close(4001, 'bye');
  const { code } = await c;
  assert.ok(code === 4001 || code === 1000, `close code ${code}`);
});

test('client close 1000 is answered with 1000', async () => {
  const ws = await open({});
  const c = closed(ws);
  ws.close(1000, 'done');
  assert.equal((await c).code, 1000);
});

test('invalid UTF-8 in a text message closes with 1007', async () => {
  const ws = await open({});
  const c = closed(ws);
  ws.send(Buffer.from([0x48, 0x69, 0xff, 0xfe]), { binary: false });
  assert.equal((await c).code, 1007);
});

test('invalid UTF-8 in a compressed text message closes with 1007', async () => {
  const ws = await open({ perMessageDeflate: { threshold: 0 } });
  assert.match(ws.extensions, /permessage-deflate/);
  const c = closed(ws);
  ws.send(Buffer.from([0xce, 0xba, 0xed, 0xa0, 0x80]), { binary: false, compress: true });
  assert.equal((await c).code, 1007);
});

test('fragmented message sent with fin:false parts echoes whole', async () => {
  const ws = await open({});
  ws.send('part one, ', { fin: false });
  ws.send('part two, ', { fin: false });
  ws.send('end', { fin: true });
  const m = await nextMessage(ws);
  assert.equal(m.data.toString(), 'part one, part two, end');
  ws.close();
  await closed(ws);
});
