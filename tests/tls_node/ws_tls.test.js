'use strict';
// wss:// with the Node `ws` client (and https:// with Node's https) against echo, trusting the
// test CA only.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');
const tls = require('node:tls');
const WebSocket = require('ws');
const { WAIT_MS, withTimeout, makeCerts, startEcho } = require('./harness');

let certs;
let server;

before(async () => {
  certs = makeCerts();
  server = await startEcho(certs);
});

after(async () => {
  if (server) await server.stop();
  if (certs) fs.rmSync(certs.dir, { recursive: true, force: true });
});

function open(opts = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://localhost:${server.port}/`, { ca: certs.ca, perMessageDeflate: false, ...opts });
    ws.once('upgrade', (res) => { ws.extensionsHeader = res.headers['sec-websocket-extensions'] || ''; });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  }), WAIT_MS, 'open');
}

function nextMessage(ws) {
  return withTimeout(new Promise((resolve, reject) => {
    const onClose = (code) => reject(new Error(`closed with ${code}`));
    ws.once('message', (data, isBinary) => {
      ws.off('close', onClose);
      resolve({ data, isBinary });
    });
    ws.once('close', onClose);
  }), WAIT_MS, 'message');
}

function closed(ws) {
  return withTimeout(new Promise((resolve) => {
    ws.once('close', (code) => resolve(code));
  }), WAIT_MS, 'close');
}

test('text and binary echo over wss, ALPN http/1.1', async () => {
  const ws = await open({ ALPNProtocols: ['http/1.1'] });
  assert.equal(ws._socket.alpnProtocol, 'http/1.1');
  ws.send('Hello, wörld ✓');
  let m = await nextMessage(ws);
  assert.equal(m.isBinary, false);
  assert.equal(m.data.toString('utf8'), 'Hello, wörld ✓');
  const payload = crypto.randomBytes(2 << 20);
  ws.send(payload);
  m = await nextMessage(ws);
  assert.equal(m.isBinary, true);
  assert.ok(Buffer.compare(m.data, payload) === 0, '2 MiB echoed whole');
  const c = closed(ws);
  ws.close(1000);
  assert.equal(await c, 1000);
});

test('permessage-deflate over wss', async () => {
  const ws = await open({ perMessageDeflate: true });
  assert.match(ws.extensionsHeader, /permessage-deflate/);
  const text = 'compressible '.repeat(10000);
  ws.send(text);
  const m = await nextMessage(ws);
  assert.equal(m.data.toString(), text);
  ws.close(1000);
});

test('many clients at once, many messages each', async () => {
  const clients = await Promise.all(Array.from({ length: 40 }, () => open()));
  await Promise.all(clients.map(async (ws, i) => {
    for (let k = 0; k < 50; k++) {
      ws.send(`${i}:${k}`);
      const m = await nextMessage(ws);
      assert.equal(m.data.toString(), `${i}:${k}`);
    }
    ws.close(1000);
  }));
});

test('the certificate is checked: without the test CA the client refuses', async () => {
  await assert.rejects(open({ ca: undefined }), /self[- ]signed|unable to (get|verify)|certificate/i);
});

test('https on the same port (echo answers plain HTTP with 400)', async () => {
  const res = await withTimeout(new Promise((resolve, reject) => {
    const req = https.get({ host: 'localhost', port: server.port, path: '/', ca: certs.ca }, resolve);
    req.on('error', reject);
  }), WAIT_MS, 'https GET');
  assert.equal(res.statusCode, 400);
  assert.equal(res.socket.alpnProtocol, false, 'https.get offers no ALPN');
  res.resume();
});

test('a TLS 1.2 client works too', async () => {
  const ws = await open({ maxVersion: 'TLSv1.2', minVersion: 'TLSv1.2' });
  assert.equal(ws._socket.getProtocol(), 'TLSv1.2');
  ws.send('twelve');
  assert.equal((await nextMessage(ws)).data.toString(), 'twelve');
  ws.close(1000);
});

test('an HTTP request over TLS gets its answer (400: echo has no on_request) and the close, others unaffected', async () => {
  const ws = await open();
  const sock = tls.connect({ host: 'localhost', port: server.port, ca: certs.ca, ALPNProtocols: ['http/1.1'] });
  await withTimeout(new Promise((resolve, reject) => { sock.once('secureConnect', resolve); sock.once('error', reject); }), WAIT_MS, 'tls');
  sock.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const answer = await withTimeout(new Promise((resolve) => {
    let buf = '';
    sock.on('data', (d) => { buf += d; });
    sock.on('close', () => resolve(buf));
  }), WAIT_MS, 'answer and close');
  assert.match(answer, /^HTTP\/1\.1 400/);
  ws.send('still');
  assert.equal((await nextMessage(ws)).data.toString(), 'still');
  ws.close(1000);
});
