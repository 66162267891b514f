// socketio-server.mjs: Socket.IO 4 as a benchmark peer, with the thin adapter
// the load generator needs: the JSON subset of tests/bench/node-ws/server.mjs
// carried as one Socket.IO event "rt" (client -> server: the request object;
// server -> client: the answer object).  A channel is a Socket.IO room;
// a publish is one io.to(room).emit(), which Socket.IO encodes once for the
// whole room.  WebSocket transport only (the generator speaks Engine.IO v4
// over WebSocket: GET /socket.io/?EIO=4&transport=websocket).
// One process: PORT (default 8093), HOST (default 127.0.0.1).
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.env.PORT || 8093);
const host = process.env.HOST || '127.0.0.1';
const http = createServer();
const io = new Server(http, { transports: ['websocket'], serveClient: false, perMessageDeflate: false });
let nextConn = 1;

io.on('connection', (socket) => {
  const conn = String(nextConn++);
  const user = `anon-${conn}`;
  socket.emit('rt', { type: 'welcome', conn, user, edge: 'socket.io' });
  socket.on('rt', (m) => {
    if (m === null || typeof m !== 'object') {
      socket.emit('rt', { type: 'error', code: 'bad_request', message: 'not an object' });
      return;
    }
    switch (m.type) {
      case 'subscribe':
        socket.join(m.channel);
        socket.emit('rt', { type: 'subscribed', channel: m.channel, offset: 0 });
        break;
      case 'publish':
        io.to(m.channel).emit('rt', {
          type: 'message', channel: m.channel, event: m.event ?? 'message', data: m.data, from: user, ts: Date.now(),
        });
        socket.emit('rt', { type: 'ack', channel: m.channel, id: m.id ?? null });
        break;
      case 'ping':
        socket.emit('rt', { type: 'pong' });
        break;
      default:
        socket.emit('rt', { type: 'error', code: 'bad_request', message: 'unknown type' });
    }
  });
});

http.listen({ host, port, backlog: 4096 }, () => console.log(`socket.io peer on ws://${host}:${port}/socket.io/ (pid ${process.pid})`));
process.on('SIGTERM', () => process.exit(0));
