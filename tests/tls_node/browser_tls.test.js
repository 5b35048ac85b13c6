'use strict';
// Headless Chromium (puppeteer-core driving the system Chromium) on wss:// against echo, the
// server certificate trusted by its key (--ignore-certificate-errors-spki-list: the test CA is
// generated per run, so it is not in Chromium's store). Chromium: env CHROMIUM, else
// /usr/bin/chromium (Debian package `chromium`).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const puppeteer = require('puppeteer-core');
const { WAIT_MS, withTimeout, makeCerts, startEcho } = require('./harness');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const T = { timeout: 60000 };

let certs;
let server;
let browser;

before(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium, or set CHROMIUM`);
  certs = makeCerts();
  server = await startEcho(certs);
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
    args: ['--no-sandbox', '--disable-setuid-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
      `--ignore-certificate-errors-spki-list=${certs.spkiHash}`],
    timeout: 20000,
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop();
  if (certs) fs.rmSync(certs.dir, { recursive: true, force: true });
});

test('browser: wss:// echo of text, binary and a 1 MiB message from an https:// page', T, async () => {
  const page = await browser.newPage();
  page.setDefaultTimeout(WAIT_MS);
  // The page itself comes over https:// from the same port (echo answers it with 400, which
  // is still a page of that origin), so the WebSocket is same-origin and not mixed content.
  const resp = await withTimeout(page.goto(`https://localhost:${server.port}/`), WAIT_MS, 'https page');
  assert.equal(resp.status(), 400);
  assert.equal(resp.securityDetails().protocol(), 'TLS 1.3');
  const result = await page.evaluate(async (port) => {
    const ws = new WebSocket(`wss://localhost:${port}/`);
    ws.binaryType = 'arraybuffer';
    const next = () => new Promise((resolve, reject) => {
      ws.onmessage = (e) => resolve(e.data);
      ws.onclose = (e) => reject(new Error(`closed ${e.code}`));
    });
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('wss failed')); });
    const out = { protocol: ws.protocol, extensions: ws.extensions };
    ws.send('hello from Chromium');
    out.text = await next();
    ws.send(new Uint8Array([0, 1, 2, 255]));
    out.binary = Array.from(new Uint8Array(await next()));
    const big = new Uint8Array(1 << 20).map((_, i) => i % 251);
    ws.send(big);
    const back = new Uint8Array(await next());
    out.bigOk = back.length === big.length && back.every((b, i) => b === big[i]);
    const closed = new Promise((resolve) => { ws.onclose = (e) => resolve(e.code); });
    ws.close(1000);
    out.closeCode = await closed;
    return out;
  }, server.port);
  assert.equal(result.text, 'hello from Chromium');
  assert.deepEqual(result.binary, [0, 1, 2, 255]);
  assert.ok(result.bigOk, '1 MiB echoed whole');
  assert.match(result.extensions, /permessage-deflate/, 'Chromium negotiates compression over TLS');
  assert.equal(result.closeCode, 1000);
  await page.close();
});
