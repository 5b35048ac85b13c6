'use strict';
// The server behind nginx configured as seed 002 shows: an `io_nodes` upstream with no ip_hash
// (no sticky sessions) and `location ^~/socket.io/` proxying with HTTP/1.1, Host, Upgrade,
// `Connection "upgrade"` and X-Forwarded-For. nginx opens a new upstream connection for every
// request, so the polling requests and the upgrade of one session land on either worker and the
// server hands them to the session's owner. socket.io-client 4.8 and 2.3.0 go through nginx with
// their default transports (polling, then the upgrade) and with polling only.
//
// nginx (the Debian package) runs as a child of this test, master + 2 workers, with its config,
// pid, logs and temp files in a temporary folder; it is installed with apt-get if missing, and
// the tests are skipped only if that fails. NGINX_BIN overrides the binary.
//   node --test tests/socketio/nginx.test.js                  # our server
//   SIO_SERVER=node node --test tests/socketio/nginx.test.js  # the Node reference server

const { test, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const {
  USE_NODE, WAIT_MS, SETTLE_MS, VERSIONS, sleep, withTimeout, startServer, Pool, errText, uniq,
  countMsg, sayMsg, joinAndCheck, killGroup, trackGroup, untrackGroup,
} = require('./harness');

const T = { timeout: 30000 };
const DEFAULTS = { defaultTransports: true };
const POLLING = { transports: ['polling'] };
const HANDOFF_LOG = 'info,prefork_ws::runtime::worker::handoff=debug';

// --- finding (or installing) nginx, before the tests are declared so that they can be skipped

function findNginx() {
  const candidates = [process.env.NGINX_BIN, ...(process.env.PATH || '').split(':').map((d) => d && path.join(d, 'nginx')),
    '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'].filter(Boolean);
  return candidates.find((p) => {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return fs.statSync(p).isFile();
    } catch (e) {
      return false;
    }
  });
}

function installNginx() {
  const apt = ['/usr/bin/apt-get', '/bin/apt-get'].find((p) => fs.existsSync(p));
  if (!apt) return 'no apt-get on this machine';
  const asRoot = process.getuid && process.getuid() === 0;
  const run = (args) => {
    const cmd = asRoot ? apt : 'sudo';
    const argv = asRoot ? args : ['-n', apt, ...args];
    return spawnSync(cmd, argv, { encoding: 'utf8', timeout: 300000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  };
  let r = run(['install', '-y', '-qq', 'nginx']);
  if (r.status !== 0) {
    run(['update', '-qq']);
    r = run(['install', '-y', '-qq', 'nginx']);
  }
  return r.status === 0 ? null : `apt-get install nginx failed (${r.error ? r.error.message : `exit ${r.status}`}): ${(r.stderr || '').trim().slice(-400)}`;
}

let NGINX = findNginx();
let skipReason = false;
if (!NGINX) {
  const why = installNginx();
  NGINX = findNginx();
  if (!NGINX) skipReason = `nginx is not installed and could not be installed: ${why || 'not found after apt-get install'}`;
  else process.stderr.write(`# nginx was missing: installed ${NGINX} with apt-get\n`);
}

// --- nginx as a child process

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// The seed's configuration (002: `location ^~/socket.io/`, 001: the `io_nodes` upstream), every
// file nginx writes inside `dir`.
function nginxConf(dir, listenPort, upstreamPort) {
  const f = (name) => path.join(dir, name);
  return `daemon off;
master_process on;
worker_processes 2;
pid ${f('nginx.pid')};
error_log ${f('error.log')} warn;
events { worker_connections 1024; }
http {
    access_log ${f('access.log')};
    client_body_temp_path ${f('client_body_temp')};
    proxy_temp_path ${f('proxy_temp')};
    fastcgi_temp_path ${f('fastcgi_temp')};
    uwsgi_temp_path ${f('uwsgi_temp')};
    scgi_temp_path ${f('scgi_temp')};

    upstream io_nodes {
        server 127.0.0.1:${upstreamPort};
    }
    server {
        listen 127.0.0.1:${listenPort};
        location ^~/socket.io/ {
            proxy_pass http://io_nodes;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
    }
}
`;
}

async function startNginx(upstreamPort) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prefork-ws-nginx-'));
  fs.chmodSync(dir, 0o755); // nginx's workers (user nobody when run as root) use the temp paths
  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    fs.writeFileSync(path.join(dir, 'nginx.conf'), nginxConf(dir, port, upstreamPort));
    const conf = path.join(dir, 'nginx.conf');
    const child = spawn(NGINX, ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')],
      { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    trackGroup(child.pid);
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const nginx = {
      child, dir, port, exited, url: `http://127.0.0.1:${port}`,
      output: () => out,
      errorLog: () => { try { return fs.readFileSync(path.join(dir, 'error.log'), 'utf8'); } catch (e) { return ''; } },
      accessLog: () => { try { return fs.readFileSync(path.join(dir, 'access.log'), 'utf8'); } catch (e) { return ''; } },
      async stop() {
        if (child.exitCode === null && child.signalCode === null) {
          process.kill(child.pid, 'SIGTERM'); // nginx's fast shutdown: the master stops its workers
          const done = await withTimeout(exited, 5000, 'nginx exit').then(() => true, () => false);
          if (!done) killGroup(child.pid, 'SIGKILL');
        }
        killGroup(child.pid, 'SIGKILL'); // a worker left behind, if any
        untrackGroup(child.pid);
      },
    };
    // Up once it proxies an Engine.IO handshake to the server.
    const deadline = Date.now() + WAIT_MS;
    let up = false;
    while (Date.now() < deadline && child.exitCode === null) {
      try {
        const r = await fetch(`${nginx.url}/socket.io/?EIO=4&transport=polling`, { signal: AbortSignal.timeout(2000) });
        const body = await r.text();
        if (r.status === 200 && body.startsWith('0{')) { up = true; break; }
      } catch (e) { /* not listening yet */ }
      await sleep(100);
    }
    if (up) return nginx;
    await nginx.stop();
    lastError = `${out}\n${nginx.errorLog()}`;
    if (!/Address already in use/.test(lastError)) break; // only a port race is worth a retry
  }
  throw new Error(`nginx did not come up:\n${lastError}`);
}

// --- the tests

let server;
let nginx;
let pool; // clients through nginx
let direct; // clients straight to the server
let handoffs;
const everyone = [];

before(async () => {
  if (skipReason) return;
  server = await startServer({ workers: 2, env: { RUST_LOG: HANDOFF_LOG } });
  handoffs = server.watch(/: handed to worker \d+/);
  nginx = await startNginx(server.port);
  pool = new Pool({ url: nginx.url });
  direct = new Pool(server);
});

afterEach(() => {
  for (const p of [pool, direct]) {
    if (!p) continue;
    for (const c of p.clients) c.viaNginx = p === pool;
    everyone.push(...p.clients);
    p.closeAll();
  }
});

after(async () => {
  for (const p of [pool, direct]) if (p) p.closeAll();
  if (nginx) await nginx.stop();
  if (server) await server.stop();
  if (nginx) fs.rmSync(nginx.dir, { recursive: true, force: true });
});

const opts = { ...T, skip: skipReason };

function problems(c) {
  const out = [];
  if (c.errors.length) out.push(`errors ${JSON.stringify(c.errors.map(errText))}`);
  if (c.upgradeErrors.length) out.push(`upgradeErrors ${JSON.stringify(c.upgradeErrors)}`);
  if (c.disconnects.some((r) => r !== 'io client disconnect')) out.push(`disconnects ${JSON.stringify(c.disconnects)}`);
  return out.length ? `${c.version}${c.nsp} ${c.id}: ${out.join(', ')}` : null;
}
const assertClean = (clients) => assert.deepEqual(clients.map(problems).filter(Boolean), [],
  'no connect_error, upgradeError or unexpected disconnect');

test('nginx proxies the Engine.IO handshake with the seed\'s configuration', opts, async (t) => {
  t.diagnostic(`${NGINX} on ${nginx.url} → ${server.kind} server on ${server.url}, config in ${nginx.dir}`);
  const r = await fetch(`${nginx.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('server') || '', /^nginx/, 'answered through nginx');
  const open = JSON.parse((await r.text()).slice(1));
  assert.deepEqual(open.upgrades, ['websocket']);
  const bad = await fetch(`${nginx.url}/socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA`);
  assert.equal(bad.status, 400);
  assert.deepEqual(await bad.json(), { code: 1, message: 'Session ID unknown' });
});

for (const V of VERSIONS) {
  test(`${V} default options through nginx: opens on polling, upgrades to websocket, acks for events emitted before and after the upgrade, rooms, say`, opts, async () => {
    const clients = [0, 1, 2].map(() => pool.make(V, '/', DEFAULTS));
    const early = clients.map((c, i) => c.emitAck('event', `early ${i}`)); // sent once connected
    await Promise.all(clients.map((c) => c.connected()));
    assert.ok(clients.every((c) => c.openTransport === 'polling'), 'every engine opened on polling');
    assert.deepEqual(await Promise.all(early), ['Event Received: early 0', 'Event Received: early 1', 'Event Received: early 2']);
    await Promise.all(clients.map((c) => c.upgraded()));
    for (const c of clients) {
      assert.deepEqual(c.upgrades, ['websocket']);
      assert.equal(c.transport, 'websocket');
      assert.equal(await c.emitAck('event', 'after upgrade'), 'Event Received: after upgrade');
    }
    const chat = await pool.multiplex(clients[0], '/chat');
    assert.equal(await chat.emitAck('event', 'via nginx'), 'chat Received: via nginx');
    const room = uniq('ngx');
    await joinAndCheck(clients, room);
    clients[0].emit('say', JSON.stringify({ room, message: 'through the proxy' }));
    await Promise.all(clients.slice(1).map((c) => c.waitEvent(sayMsg(clients[0].id, 'through the proxy'))));
    clients[2].socket.disconnect();
    await clients[2].waitFor((c) => c.disconnects.length > 0, 'disconnect');
    assert.deepEqual(clients[2].disconnects, ['io client disconnect']);
    assertClean([...clients, chat]);
  });

  test(`${V} polling only through nginx: events, acks, rooms, say, a prompt emit to an idle client`, opts, async (t) => {
    const clients = await Promise.all([0, 1, 2].map(() => pool.connect(V, '/', POLLING)));
    const [a, b, c] = clients;
    for (const data of ['x', 'héllo ✓ 漢字 🎉', 'y'.repeat(20000)]) {
      assert.equal(await a.emitAck('event', data), `Event Received: ${data}`);
    }
    const chat = await pool.multiplex(b, '/chat');
    assert.equal(await chat.emitAck('event', 'p'), 'chat Received: p');
    const room = uniq('ngxp');
    await joinAndCheck(clients, room);
    await sleep(600); // all idle: their GETs wait in the server, through nginx
    const t0 = Date.now();
    a.emit('say', JSON.stringify({ room, message: 'wake up' }));
    await Promise.all([b, c].map((x) => x.waitEvent(sayMsg(a.id, 'wake up'))));
    t.diagnostic(`say → idle polling clients through nginx: ${Date.now() - t0} ms`);
    assert.ok(Date.now() - t0 < 2000);
    await sleep(SETTLE_MS);
    assert.ok(!a.events.includes(sayMsg(a.id, 'wake up')), 'the sender does not get its own say');
    assert.ok(clients.every((x) => x.transport === 'polling' && x.upgrades.length === 0));
    assertClean([...clients, chat]);
  });
}

test('clients through nginx and straight to the server share a room', opts, async () => {
  const clients = await Promise.all([
    pool.connect('v4', '/', DEFAULTS), pool.connect('v2', '/', POLLING), direct.connect('v4', '/', POLLING), direct.connect('v2'),
  ]);
  const room = uniq('ngxmix');
  await joinAndCheck(clients, room);
  for (const from of clients) from.emit('say', JSON.stringify({ room, message: `hi from ${from.version}` }));
  await Promise.all(clients.flatMap((to) => clients.filter((f) => f !== to).map((f) => to.waitEvent(sayMsg(f.id, `hi from ${f.version}`)))));
  assertClean(clients);
});

test('30 concurrent default-option sessions through nginx (v4 and v2): connect, ack, join-room, upgrade, ack', opts, async (t) => {
  const N = 30;
  const room = uniq('ngxload');
  const t0 = Date.now();
  const clients = Array.from({ length: N }, (_, i) => pool.make(i % 3 === 2 ? 'v2' : 'v4', '/', DEFAULTS));
  await withTimeout(Promise.all(clients.map(async (c, i) => {
    await c.connected();
    assert.equal(await c.emitAck('event', `n${i}`), `Event Received: n${i}`);
    assert.equal(await c.emitAck('join-room', room), null);
    await c.upgraded();
    assert.equal(await c.emitAck('event', `u${i}`), `Event Received: u${i}`);
    await c.waitEvent(countMsg(N, room));
  })), 20000, `${N} sessions through nginx`);
  t.diagnostic(`${N} sessions through nginx in ${Date.now() - t0} ms`);
  assertClean(clients);
});

test('nginx carried polling and WebSocket upgrades, the server handed requests between its workers, no client noticed', opts, async (t) => {
  for (const p of [pool, direct]) {
    for (const c of p.clients) c.viaNginx = p === pool;
    everyone.push(...p.clients);
    p.closeAll();
  }
  assertClean(everyone);
  // every client that upgraded through nginx did it with a GET nginx answered 101
  const upgradedViaNginx = everyone.filter((c) => c.viaNginx && c.upgrades.length > 0).length;
  // nginx logs a request when it ends: a WebSocket when it closes (the clients closed by now)
  let log;
  let polls;
  let upgrades;
  const deadline = Date.now() + WAIT_MS;
  do {
    log = nginx.accessLog().split('\n').filter(Boolean);
    polls = log.filter((l) => /"(GET|POST) \/socket\.io\/\?[^"]*transport=polling[^"]*" 200 /.test(l)).length;
    upgrades = log.filter((l) => /"GET \/socket\.io\/\?[^"]*transport=websocket[^"]*" 101 /.test(l)).length;
    if (polls > 0 && upgrades >= upgradedViaNginx) break;
    await sleep(100);
  } while (Date.now() < deadline);
  t.diagnostic(`nginx access log: ${log.length} requests, ${polls} polling requests answered 200, ${upgrades} WebSocket upgrades (101); `
    + `${upgradedViaNginx} clients upgraded through nginx`);
  assert.ok(polls > 0, 'polling requests went through nginx');
  assert.ok(upgradedViaNginx > 0);
  assert.ok(upgrades >= upgradedViaNginx, `a 101 in nginx's log for each of the ${upgradedViaNginx} clients that upgraded through it`);
  const errors = nginx.errorLog().split('\n').filter((l) => /\[(error|crit|alert|emerg)\]/.test(l));
  assert.deepEqual(errors, [], 'nothing in nginx\'s error log at level error or above');
  if (USE_NODE) {
    t.diagnostic('the Node reference server is one process: no hand-offs to count');
    return;
  }
  t.diagnostic(`${handoffs.count} 'handed to worker' lines`);
  assert.ok(handoffs.count > 0, 'requests/upgrades through nginx landed on the other worker and were handed over');
});
