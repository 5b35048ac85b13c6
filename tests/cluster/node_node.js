// A Node.js socket.io 4.8 node with @socket.io/redis-adapter 8.3.0: the other side of the
// interoperability tests (tests/cluster.rs). The events mirror the sio_testbed's that the
// tests use, answered through acknowledgements.
//
// node node_node.js --port 0 --redis redis://127.0.0.1:6379
// prints "Node node listening at 127.0.0.1:<port>" once subscribed.

const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

async function main() {
  const url = arg("redis", "redis://127.0.0.1:6379");
  const pub = createClient({ url });
  const sub = pub.duplicate();
  pub.on("error", (e) => console.error("pub", e.message));
  sub.on("error", (e) => console.error("sub", e.message));
  await Promise.all([pub.connect(), sub.connect()]);
  const server = http.createServer();
  const io = new Server(server, { adapter: createAdapter(pub, sub, { requestsTimeout: 2000 }) });
  io.on("connection", (socket) => {
    socket.on("whoami", (cb) => cb("node"));
    socket.on("join", (room, cb) => { socket.join(room); cb(null); });
    socket.on("to", (room, msg, cb) => { socket.to(room).emit("msg", msg); cb?.(null); });
    socket.on("to_bin", (room, text, cb) => {
      socket.to(room).emit("bin", Buffer.from(text));
      cb?.(null);
    });
    socket.on("fetch", async (room, cb) => {
      try {
        const sockets = await io.in(room).fetchSockets();
        cb(sockets.map((s) => s.id).sort());
      } catch (e) {
        cb({ error: e.message });
      }
    });
    socket.on("bcast_ack", (room, ms, cb) => {
      io.in(room).timeout(ms).emit("q", "ping?", (err, answers) => {
        cb({ complete: !err, answers: (answers || []).map(String).sort() });
      });
    });
    socket.on("sockets_join", (room, extra, cb) => { io.in(room).socketsJoin(extra); cb?.(null); });
    socket.on("kick", (room, cb) => { io.in(room).disconnectSockets(false); cb?.(null); });
    socket.on("count", async (room, cb) => {
      try {
        cb({ Ok: (await io.in(room).fetchSockets()).length });
      } catch (e) {
        cb({ Err: e.message });
      }
    });
    socket.on("sse", (msg, cb) => { io.serverSideEmit("hello", msg); cb(1); });
  });
  io.on("hello", (msg) => io.local.emit("sse", msg));
  server.listen(Number(arg("port", "0")), arg("host", "127.0.0.1"), () => {
    const { address, port } = server.address();
    console.log(`Node node listening at ${address}:${port}`);
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
