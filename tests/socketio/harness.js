'use strict';
// Shared harness for the Socket.IO end-to-end tests (node --test tests/socketio/).
//
// SIO_SERVER=node  runs tests/socketio/reference_server.js (Node socket.io 4.8, the spec);
// otherwise        runs target/release/examples/socketio_server --workers 2 (SIO_BIN overrides).
// The server runs in its own process group, which stop() (and process exit) kill as a whole.

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
async function startServer({ workers = 2 } = {}) {
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
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child.pid);

  let out = '';
  const keep = (d) => {
    out += d.toString();
    if (out.length > 64 * 1024) out = out.slice(-32 * 1024); // keep draining, keep the tail
  };
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  const server = {
    child,
    kind: USE_NODE ? 'node' : 'rust',
    output: () => out,
    exited,
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
    this._waiters = new Set();
    const common = { transports: ['websocket'], forceNew: true, reconnection: false, timeout: WAIT_MS };
    this.socket = socket || (version === 'v2'
      ? ioV2(url + nsp, { ...common, ...opts })
      : ioV4(url + nsp, { ...common, ...opts }));
    this.socket.on('connect', () => this._wake());
    this.socket.on('event', (data) => { this.events.push(data); this._wake(); });
    this.socket.on('disconnect', (reason) => { this.disconnects.push(reason); this._wake(); });
    this.socket.on('connect_error', (err) => { this.errors.push({ event: 'connect_error', data: err }); this._wake(); });
    // socket.io-client 2.x reports a CONNECT_ERROR packet (type 4) as the `error` event.
    if (version === 'v2') this.socket.on('error', (err) => { this.errors.push({ event: 'error', data: err }); this._wake(); });
  }

  get id() { return this.socket.id; }

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

const uniq = (prefix) => `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

module.exports = {
  REPO, USE_NODE, WAIT_MS, SETTLE_MS, VERSIONS, sleep, withTimeout, startServer, Pool, Client, errText, uniq,
};
