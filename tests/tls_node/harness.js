'use strict';
// Shared harness of the TLS end-to-end tests (node --test tests/tls_node/): a fresh test CA and
// server certificate (target/release/examples/test_certs, generated per run, never committed),
// and target/release/examples/echo --workers 2 serving wss:// and https:// with them (ECHO_BIN
// overrides). The server runs in its own process group, which stop() and process exit kill.

const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..');
const RELEASE = path.join(REPO, 'target', 'release', 'examples');
const ECHO_BIN = process.env.ECHO_BIN || path.join(RELEASE, 'echo');
const CERTS_BIN = process.env.TEST_CERTS_BIN || path.join(RELEASE, 'test_certs');
const WAIT_MS = 10000;

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

const live = new Set();
process.on('exit', () => {
  for (const pid of live) {
    try { process.kill(-pid, 'SIGKILL'); } catch (e) { /* gone */ }
  }
});

function build(bin, example) {
  if (!fs.existsSync(bin)) {
    execFileSync('cargo', ['build', '--release', '--example', example], { cwd: REPO, stdio: 'inherit' });
  }
}

// A test CA and a server certificate for localhost and 127.0.0.1, in a fresh directory.
function makeCerts() {
  build(CERTS_BIN, 'test_certs');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prefork-ws-tls-node-'));
  execFileSync(CERTS_BIN, [dir]);
  const certs = {
    dir,
    caFile: path.join(dir, 'ca.pem'),
    certFile: path.join(dir, 'cert.pem'),
    keyFile: path.join(dir, 'key.pem'),
  };
  certs.ca = fs.readFileSync(certs.caFile);
  // base64(SHA-256(SubjectPublicKeyInfo)) of the server certificate, for Chromium's
  // --ignore-certificate-errors-spki-list.
  const leaf = new crypto.X509Certificate(fs.readFileSync(certs.certFile));
  const spki = leaf.publicKey.export({ type: 'spki', format: 'der' });
  certs.spkiHash = crypto.createHash('sha256').update(spki).digest('base64');
  return certs;
}

// Starts echo on a TLS port; resolves with { port, stop() } once it accepts TCP.
async function startEcho(certs, { workers = 2 } = {}) {
  build(ECHO_BIN, 'echo');
  const child = spawn(ECHO_BIN, ['--host', '127.0.0.1', '--port', '0', '--workers', String(workers),
    '--ssl-cert-file', certs.certFile, '--ssl-key-file', certs.keyFile], {
    detached: true,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  live.add(child.pid);
  const port = await withTimeout(new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d.toString();
      const m = buf.match(/Server listening at [0-9.]+:(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`echo exited with ${code}`)));
  }), 30000, 'echo listening line');
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    try { process.kill(-child.pid, 'SIGTERM'); } catch (e) { /* gone */ }
    await withTimeout(exited, 5000, 'echo exit').catch(() => {
      try { process.kill(-child.pid, 'SIGKILL'); } catch (e) { /* gone */ }
    });
    live.delete(child.pid);
  };
  return { port, stop };
}

module.exports = { REPO, WAIT_MS, withTimeout, makeCerts, startEcho };
