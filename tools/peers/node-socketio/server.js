// Peer: Node socket.io 4.8 with the handler of prefork-ws's socketio_server example, for
// tools/bench_socketio.sh:
//
//   namespace "/";
//   "event" (data)     -> ack "Event Received: " + data;
//   "join-room" (room) -> the socket joins the room;
//   "bcast" (data)     -> io.to("bench").emit("event", data);
//   "say" ({room, message}) -> socket.to(room).emit("event", `${socket.id} say: ${message}`)
//                        (the example's client-triggered room broadcast, the sender excluded).
//
// WebSocket transport only, socket.io's defaults otherwise (perMessageDeflate is off by default).
//
//   node server.js --host 127.0.0.1 --port 0
"use strict";

const http = require("http");
const { Server } = require("socket.io");

function parseArgs(argv) {
  const out = { host: "127.0.0.1", port: 9504 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf("=");
    const key = eq >= 0 ? a.slice(0, eq) : a;
    const val = () => (eq >= 0 ? a.slice(eq + 1) : argv[++i]);
    if (key === "--host") out.host = val();
    else if (key === "--port") out.port = Number(val());
    else if (key === "-h" || key === "--help") {
      console.log("usage: node server.js [--host HOST] [--port PORT]");
      process.exit(0);
    } else {
      console.error(`server.js: unknown argument ${a}`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(out.port) || out.port < 0 || out.port > 65535) {
    console.error("server.js: bad --port");
    process.exit(2);
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const httpServer = http.createServer();
const io = new Server(httpServer, { transports: ["websocket"], serveClient: false });

io.on("connection", (socket) => {
  socket.on("event", (data, ack) => {
    if (typeof ack === "function") ack("Event Received: " + data);
  });
  socket.on("join-room", (room) => {
    socket.join(room);
  });
  socket.on("bcast", (data) => {
    io.to("bench").emit("event", data);
  });
  socket.on("say", (data) => {
    const room = data && typeof data.room === "string" ? data.room : "";
    const m = data ? data.message : undefined;
    const message = typeof m === "string" ? m : JSON.stringify(m);
    socket.to(room).emit("event", `${socket.id} say: ${message}`);
  });
});

httpServer.on("error", (e) => {
  console.error(`server.js: ${e.message}`);
  process.exit(1);
});
httpServer.listen(args.port, args.host, () => {
  const a = httpServer.address();
  console.log(`Socket.IO Server listening at ${a.address}:${a.port}`);
});

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => process.exit(0));
}
