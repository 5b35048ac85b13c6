'use strict';
// Reference implementation of the `socketio_server` example with Node's socket.io 4.8: the tests
// in this folder run against it with SIO_SERVER=node, so Node's behaviour is the spec the Rust
// example is checked against.
//
//   node tests/socketio/reference_server.js --host 127.0.0.1 --port 0
//
// Prints `Socket.IO Server listening at HOST:PORT` once listening. HTTP long-polling and WebSocket
// (with the upgrade from one to the other, socket.io's defaults), Engine.IO v3 (allowEIO3,
// socket.io-client 2.x) and v4. Also serves the browser chat page and
// the client bundles from examples/assets over plain HTTP on the same port.

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const { Server } = require('socket.io');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const host = arg('host', '127.0.0.1');
const port = Number(arg('port', '9502'));
// --workers is accepted for command-line compatibility with the Rust example; Node runs one process.
arg('workers', '1');

const ASSETS = path.resolve(__dirname, '..', '..', 'examples', 'assets');
const ROUTES = {
  '/': ['chat.html', 'text/html; charset=utf-8'],
  '/socket.io.min.js': ['socket.io.min.js', 'application/javascript; charset=utf-8'],
  '/socket.io-2.3.0.js': ['socket.io-2.3.0.js', 'application/javascript; charset=utf-8'],
};

const httpServer = http.createServer((req, res) => {
  // engine.io answers /socket.io/ itself (it is attached below and runs first).
  const pathname = new URL(req.url, 'http://x').pathname;
  const route = req.method === 'GET' || req.method === 'HEAD' ? ROUTES[pathname] : undefined;
  if (!route) {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('Not Found\n');
    return;
  }
  fs.readFile(path.join(ASSETS, route[0]), (err, body) => {
    if (err) {
      res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(`${err.message}\n`);
      return;
    }
    res.writeHead(200, { 'Content-Type': route[1], 'Content-Length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
});

const io = new Server(httpServer, {
  path: '/socket.io/',
  transports: ['polling', 'websocket'], // socket.io's default, spelled out: the Rust example serves both
  allowEIO3: true,
  serveClient: false,
});

function roomSize(room) {
  const members = io.of('/').adapter.rooms.get(room);
  return members ? members.size : 0;
}

io.of('/').on('connection', (socket) => {
  socket.on('event', (data, ack) => {
    if (typeof ack === 'function') ack(`Event Received: ${data}`);
  });

  socket.on('join-room', (room, ack) => {
    socket.join(room);
    socket.to(room).emit('event', `${socket.id}has joined ${room}`);
    io.to(room).emit('event', `There are ${roomSize(room)} players in ${room}`);
    if (typeof ack === 'function') ack(null);
  });

  socket.on('say', (payload) => {
    let msg = payload;
    if (typeof payload === 'string') {
      try {
        msg = JSON.parse(payload);
      } catch (e) {
        return;
      }
    }
    if (!msg || typeof msg !== 'object' || msg.room === undefined) return;
    socket.to(String(msg.room)).emit('event', `${socket.id} say: ${msg.message}`);
  });
});

io.of('/chat').on('connection', (socket) => {
  socket.on('event', (data, ack) => {
    if (typeof ack === 'function') ack(`chat Received: ${data}`);
  });
});
// Every other namespace: socket.io answers CONNECT_ERROR {"message":"Invalid namespace"}.

httpServer.listen(port, host, () => {
  const addr = httpServer.address();
  console.log(`Socket.IO Server listening at ${host}:${addr.port}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
