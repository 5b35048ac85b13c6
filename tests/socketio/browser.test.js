'use strict';
// The browser chat page (examples/assets/chat.html) in headless Chromium via puppeteer-core:
// one page on socket.io-client 4.x (`/`), one on 2.3.0 (`/?v=2`), chatting with each other.
// Also the plain-HTTP assets the page needs. Chromium: env CHROMIUM, else /usr/bin/chromium
// (Debian package `chromium`).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const puppeteer = require('puppeteer-core');
const { REPO, WAIT_MS, SETTLE_MS, sleep, startServer, withTimeout } = require('./harness');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ASSETS = path.join(REPO, 'examples', 'assets');
const T = { timeout: 45000 };

let server;
let browser;

before(async () => {
  server = await startServer({ workers: 2 });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop();
});

async function get(pathname) {
  const res = await fetch(server.url + pathname, { signal: AbortSignal.timeout(WAIT_MS) });
  return { status: res.status, type: res.headers.get('content-type') || '', body: Buffer.from(await res.arrayBuffer()) };
}

test('HTTP: GET / and /?v=2 serve the chat page', T, async () => {
  const page = fs.readFileSync(path.join(ASSETS, 'chat.html'));
  for (const p of ['/', '/?v=2']) {
    const r = await get(p);
    assert.equal(r.status, 200, p);
    assert.match(r.type, /^text\/html/, p);
    assert.ok(r.body.equals(page), `${p} is examples/assets/chat.html`);
  }
});

test('HTTP: GET the socket.io-client bundles', T, async () => {
  for (const [p, file, banner] of [
    ['/socket.io.min.js', 'socket.io.min.js', /Socket\.IO v4\.8\./],
    ['/socket.io-2.3.0.js', 'socket.io-2.3.0.js', /Socket\.IO v2\.3\.0/],
  ]) {
    const r = await get(p);
    assert.equal(r.status, 200, p);
    assert.match(r.type, /javascript/, `${p} content-type`);
    assert.ok(r.body.equals(fs.readFileSync(path.join(ASSETS, file))), `${p} is examples/assets/${file}`);
    assert.match(r.body.subarray(0, 200).toString(), banner);
  }
});

test('browser: a v4 page and a v2 page chat with each other', T, async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium, or set CHROMIUM`);
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // --no-sandbox: the tests run as root (CI too), where Chromium's sandbox refuses to start
    args: ['--no-sandbox', '--disable-setuid-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
    timeout: 20000,
  });
  const log = (m) => process.env.SIO_DEBUG && console.error(`[browser] ${m}`);
  const open = async (query) => {
    const page = await browser.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(e.message));
    await withTimeout(page.goto(server.url + '/' + query, { waitUntil: 'load' }), WAIT_MS, `loading /${query}`);
    await page.waitForFunction(() => document.querySelector('#status').textContent === 'connected', { polling: 100 })
      .catch(async (e) => {
        const st = await page.$eval('#status', (el) => el.textContent).catch(() => '?');
        throw new Error(`page ${query || '/'}: #status is '${st}', not 'connected' (${e.message}); errors: ${page.errors}`);
      });
    return page;
  };
  const p4 = await open('');
  log('v4 page connected');
  const p2 = await open('?v=2');
  log('v2 page connected');
  const eio = (page) => page.evaluate(() => String(window.socket.io.engine.transport.query.EIO));
  const transport = (page) => page.evaluate(() => window.socket.io.engine.transport.name);
  assert.equal(await eio(p4), '4', '/ uses socket.io-client 4.x (Engine.IO v4)');
  assert.equal(await eio(p2), '3', '/?v=2 uses socket.io-client 2.3.0 (Engine.IO v3)');
  assert.equal(await transport(p4), 'websocket');
  assert.equal(await transport(p2), 'websocket');
  const sid4 = await p4.evaluate(() => window.socket.id);
  const sid2 = await p2.evaluate(() => window.socket.id);

  const items = (page) => page.$$eval('#messages li', (lis) => lis.map((li) => li.textContent));
  const waitItem = (page, text) => page.waitForFunction(
    (t) => [...document.querySelectorAll('#messages li')].some((li) => li.textContent === t), { polling: 100 }, text,
  ).catch(async (e) => {
    throw new Error(`#messages never showed ${JSON.stringify(text)} (${e.message}); it has ${JSON.stringify(await items(page))}`);
  });

  // both joined 'lobby': the first page sees the second one arrive
  log(`sids ${sid4} ${sid2}`);
  await waitItem(p4, `${sid2}has joined lobby`);
  log('joined');
  await waitItem(p4, 'There are 2 players in lobby');
  await waitItem(p2, 'There are 2 players in lobby');
  log('counted');

  // Input goes to the foreground tab: typing into a background one never completes.
  const send = (page, text) => withTimeout((async () => {
    await page.bringToFront();
    await page.type('#text', text);
    await page.click('#send');
    log(`sent ${text}`);
  })(), WAIT_MS, `typing and sending ${JSON.stringify(text)}`);
  await send(p4, 'hello from v4');
  await waitItem(p2, `${sid4} say: hello from v4`);
  await send(p2, 'hello from v2');
  await waitItem(p4, `${sid2} say: hello from v2`);
  await sleep(SETTLE_MS);
  const l4 = await items(p4);
  const l2 = await items(p2);
  assert.ok(!l4.some((x) => x.includes('say: hello from v4')), `the sender gets no echo of its own say: ${JSON.stringify(l4)}`);
  assert.ok(!l2.some((x) => x.includes('say: hello from v2')), `the sender gets no echo of its own say: ${JSON.stringify(l2)}`);
  assert.equal(await p4.$eval('#text', (el) => el.value), '', 'input cleared after send');
  assert.deepEqual([...p4.errors, ...p2.errors], [], 'no page errors');
});
