'use strict';
// Shared harness for the Socket.IO end-to-end tests (node --test tests/socketio/).
//
// SIO_SERVER=node  runs tests/socketio/reference_server.js (Node socket.io 4.8, the spec);
// otherwise        runs target/release/examples/socketio_server --workers 2 (SIO_BIN overrides).
// The server runs in its own process group, which stop() (and process exit) kill as a whole.

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');
const { io: ioV4 } = require('socket.io-client');
const ioV2 = require('socket.io-client-v2');

const REPO = path.resolve(__dirname, '..', '..');
const USE_NODE = process.env.SIO_SERVER === 'node';
const SIO_BIN = process.env.SIO_BIN || path.join(REPO, 'target', 'release', 'examples', 'socketio_server');
const WAIT_MS = 10000; // every wait on the server gives up after this
const SETTLE_MS = 400; // quiet period before asserting that a message did NOT arrive
const VERSIONS = ['v4', 'v2'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

function killGroup(pid, sig) {
  try {
    process.kill(-pid, sig);
    return true;
  } catch (e) {
    return false; // already gone
  }
}

// Process groups of the servers still running: killed when this process exits or is interrupted,
// so that a crashed or cancelled test file leaves no server behind.
const live = new Set();
process.on('exit', () => { for (const pid of live) killGroup(pid, 'SIGKILL'); });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    for (const pid of live) killGroup(pid, 'SIGKILL');
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}

// Starts the server under test and resolves once it prints its listening line and accepts TCP.
// `env`: extra environment for the server (e.g. RUST_LOG); `server.watch(re)` counts the lines of
// its stdout + stderr that match `re` from then on (all of them, however long the output gets).
async function startServer({ workers = 2, env = {} } = {}) {
  let cmd;
  let args;
  if (USE_NODE) {
    cmd = process.execPath;
    args = [path.join(__dirname, 'reference_server.js'), '--host', '127.0.0.1', '--port', '0'];
  } else {
    if (!fs.existsSync(SIO_BIN)) {
      throw new Error(`${SIO_BIN} does not exist: build it with 'cargo build --release --example socketio_server', `
        + 'point SIO_BIN at it, or run with SIO_SERVER=node for the reference server');
    }
    cmd = SIO_BIN;
    args = ['--host', '127.0.0.1', '--port', '0', '--workers', String(workers)];
  }
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  live.add(child.pid);

  let out = '';
  const watchers = new Set();
  const partial = { stdout: '', stderr: '' };
  const lines = (stream, d) => {
    if (!watchers.size) {
      partial[stream] = '';
      return;
    }
    const parts = (partial[stream] + d.toString()).split('\n');
    partial[stream] = parts.pop();
    for (const line of parts) for (const w of watchers) if (w.re.test(line)) w.count += 1;
  };
  const keep = (d) => {
    out += d.toString();
    if (out.length > 64 * 1024) out = out.slice(-32 * 1024); // keep draining, keep the tail
  };
  child.stderr.on('data', (d) => { keep(d); lines('stderr', d); });
  child.stdout.on('data', (d) => lines('stdout', d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  const server = {
    child,
    kind: USE_NODE ? 'node' : 'rust',
    output: () => out,
    exited,
    // A live count of the output lines matching `re` from now on: `{ count }`; `stop()` ends it.
    watch(re) {
      const w = { re, count: 0, stop: () => watchers.delete(w) };
      watchers.add(w);
      return w;
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        killGroup(child.pid, signal);
        const done = await withTimeout(exited, 3000, 'exit').then(() => true, () => false);
        if (!done) killGroup(child.pid, 'SIGKILL');
      }
      killGroup(child.pid, 'SIGKILL'); // stragglers in the group (workers)
      live.delete(child.pid);
    },
  };

  try {
    server.port = await withTimeout(new Promise((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d) => {
        keep(d);
        buf += d.toString();
        const m = buf.match(/Socket\.IO Server listening at [0-9.]+:(\d+)/);
        if (m) resolve(Number(m[1]));
      });
      child.once('error', reject);
      exited.then(({ code, signal }) => reject(new Error(`${cmd} exited (${code ?? signal}) before listening:\n${out}`)));
    }), 30000, `'Socket.IO Server listening at' line from ${cmd}`);
    server.url = `http://127.0.0.1:${server.port}`;
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const ok = await new Promise((resolve) => {
        const s = net.connect(server.port, '127.0.0.1');
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
      });
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`port ${server.port} never accepted a TCP connection`);
      await sleep(50);
    }
  } catch (e) {
    await server.stop('SIGKILL');
    throw e;
  }
  return server;
}

// One Socket.IO client (socket.io-client 4.8 = 'v4', 2.3.0 = 'v2') that records every `event`.
class Client {
  // `socket` (optional): an existing socket of that version, e.g. another namespace of a Manager.
  constructor(version, url, nsp, opts, socket) {
    this.version = version;
    this.nsp = nsp;
    this.events = []; // payloads of the `event` events received
    this.disconnects = []; // reasons
    this.errors = []; // connect_error / error payloads
    this.upgrades = []; // names of the transports the engine upgraded to ('upgrade' events)
    this.upgradeErrors = []; // 'upgradeError' events
    this.openTransport = undefined; // the engine's transport when it opened (its handshake)
    this._waiters = new Set();
    // WebSocket only unless told otherwise; `defaultTransports: true` leaves the client's own
    // default (HTTP long-polling first, then the upgrade to WebSocket): no `transports` option.
    const common = { transports: ['websocket'], forceNew: true, reconnection: false, timeout: WAIT_MS };
    const { defaultTransports, ...rest } = opts;
    const options = { ...common, ...rest };
    if (defaultTransports) delete options.transports;
    this.socket = socket || (version === 'v2' ? ioV2(url + nsp, options) : ioV4(url + nsp, options));
    this._trackEngine();
    this.socket.on('connect', () => this._wake());
    this.socket.on('event', (data) => { this.events.push(data); this._wake(); });
    this.socket.on('disconnect', (reason) => { this.disconnects.push(reason); this._wake(); });
    this.socket.on('connect_error', (err) => { this.errors.push({ event: 'connect_error', data: err }); this._wake(); });
    // socket.io-client 2.x reports a CONNECT_ERROR packet (type 4) as the `error` event.
    if (version === 'v2') this.socket.on('error', (err) => { this.errors.push({ event: 'error', data: err }); this._wake(); });
  }

  get id() { return this.socket.id; }

  // The name of the transport the connection runs on now ('polling' or 'websocket').
  get transport() {
    const e = this.socket.io && this.socket.io.engine;
    return e && e.transport ? e.transport.name : undefined;
  }

  // Records the engine's transport at its open and its upgrades. The Manager creates the engine
  // when it opens, synchronously in io() with autoConnect; its 'open' event covers a later one.
  _trackEngine() {
    const mgr = this.socket.io;
    if (!mgr) return;
    const hook = () => {
      const e = mgr.engine;
      if (!e || e.__sioTracked) return;
      e.__sioTracked = true;
      const opened = () => { if (this.openTransport === undefined) this.openTransport = e.transport && e.transport.name; };
      if (e.readyState === 'open') opened();
      else e.once('open', opened);
      e.on('upgrade', (t) => { this.upgrades.push(t && t.name); this._wake(); });
      e.on('upgradeError', (err) => { this.upgradeErrors.push(err && err.message ? err.message : String(err)); this._wake(); });
    };
    hook();
    mgr.on('open', hook);
  }

  upgraded() {
    return this.waitFor((c) => {
      if (c.upgradeErrors.length) throw new Error(`upgrade failed: ${c.upgradeErrors[0]}`);
      return c.upgrades.length > 0;
    }, 'upgrade to websocket');
  }

  _wake() {
    for (const w of this._waiters) w();
  }

  // Resolves once pred(this) is true (checked on every event); rejects after WAIT_MS.
  waitFor(pred, what, ms = WAIT_MS) {
    try {
      if (pred(this)) return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
    let check;
    const p = new Promise((resolve, reject) => {
      check = () => {
        try {
          if (pred(this)) resolve();
        } catch (e) {
          reject(e);
        }
      };
      this._waiters.add(check);
    }).finally(() => this._waiters.delete(check));
    return withTimeout(p, ms, `${this.version}${this.nsp} client ${this.id}: ${what}; events so far: `
      + `${JSON.stringify(this.events)}, errors: ${JSON.stringify(this.errors.map(errText))}, `
      + `disconnects: ${JSON.stringify(this.disconnects)}`);
  }

  waitEvent(text) {
    return this.waitFor((c) => c.events.includes(text), `waiting for event ${JSON.stringify(text)}`);
  }

  connected() {
    return this.waitFor((c) => {
      if (c.errors.length) throw new Error(`connect failed: ${errText(c.errors[0])}`);
      return c.socket.connected;
    }, 'connect');
  }

  // Emits with an acknowledgement and resolves with the ack's first argument.
  emitAck(event, ...args) {
    const p = new Promise((resolve) => this.socket.emit(event, ...args, (res) => resolve(res)));
    return withTimeout(p, WAIT_MS, `${this.version}${this.nsp} ack for ${event}(${JSON.stringify(args)})`);
  }

  emit(event, ...args) { this.socket.emit(event, ...args); }

  close() {
    try { this.socket.disconnect(); } catch (e) { /* already closed */ }
    try {
      const mgr = this.socket.io;
      if (mgr && mgr.engine) mgr.engine.close();
    } catch (e) { /* already closed */ }
  }
}

function errText(e) {
  if (!e) return undefined;
  const d = e.data;
  if (typeof d === 'string') return d;
  return d && d.message !== undefined ? d.message : JSON.stringify(d);
}

// Tracks the clients a test file makes so that after() closes all of them.
class Pool {
  constructor(server) {
    this.server = server;
    this.clients = [];
  }

  make(version, nsp = '/', opts = {}) {
    const c = new Client(version, this.server.url, nsp, opts);
    this.clients.push(c);
    return c;
  }

  // Another namespace over the same connection (Manager) as `client`.
  async multiplex(client, nsp) {
    const c = new Client(client.version, this.server.url, nsp, {}, client.socket.io.socket(nsp));
    this.clients.push(c);
    await c.connected();
    return c;
  }

  async connect(version, nsp = '/', opts = {}) {
    const c = this.make(version, nsp, opts);
    await c.connected();
    return c;
  }

  closeAll() {
    for (const c of this.clients) c.close();
    this.clients = [];
  }
}

// The example's room messages, and the check of a sequence of joins (used by several files).
const countMsg = (n, room) => `There are ${n} players in ${room}`;
const joinedMsg = (sid, room) => `${sid}has joined ${room}`;
const sayMsg = (sid, message) => `${sid} say: ${message}`;
const countsIn = (c, room) => c.events
  .map((e) => (typeof e === 'string' ? e.match(/^There are (\d+) players in (.*)$/) : null))
  .filter((m) => m && m[2] === room)
  .map((m) => Number(m[1]));
const sorted = (a) => [...a].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

// Joins `clients` to `room` one after the other (each waits for its ack `null`), then checks what
// every client saw: the count of every join from its own on (`There are k players in room`,
// k = own position .. N), and the `<sid>has joined <room>` of every later joiner, never its own.
async function joinAndCheck(clients, room) {
  for (const c of clients) {
    const ack = await c.emitAck('join-room', room);
    assert.equal(ack, null, `join-room ack from ${c.version} client ${c.id}`);
  }
  const n = clients.length;
  await Promise.all(clients.map((c, i) => c.waitFor(
    (x) => countsIn(x, room).length >= n - i && clients.slice(i + 1).every((j) => x.events.includes(joinedMsg(j.id, room))),
    `${n - i} counts and ${n - i - 1} joins for ${room}`,
  )));
  await sleep(SETTLE_MS); // anything extra (duplicates, own join) arrives by now
  clients.forEach((c, i) => {
    assert.deepEqual(sorted(countsIn(c, room)), range(i + 1, n), `counts seen by client #${i + 1} (${c.version} ${c.id})`);
    assert.ok(c.events.includes(countMsg(n, room)), `client #${i + 1} saw the final count`);
    const joins = c.events.filter((e) => typeof e === 'string' && e.endsWith(`has joined ${room}`));
    assert.deepEqual(sorted(joins), sorted(clients.slice(i + 1).map((j) => joinedMsg(j.id, room))),
      `'has joined' seen by client #${i + 1} (${c.version} ${c.id}); its own must not be among them`);
  });
}

const uniq = (prefix) => `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

// Another process group a test starts (e.g. nginx, spawned with detached: true): killed with the
// servers when this process exits or is interrupted, unless untracked (after stopping it).
const trackGroup = (pid) => live.add(pid);
const untrackGroup = (pid) => live.delete(pid);

module.exports = {
  REPO, USE_NODE, WAIT_MS, SETTLE_MS, VERSIONS, sleep, withTimeout, startServer, Pool, Client, errText, uniq,
  killGroup, trackGroup, untrackGroup,
  countMsg, joinedMsg, sayMsg, countsIn, sorted, range, joinAndCheck,
};
