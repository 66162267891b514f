// server.mjs: the reference the edge is benchmarked against: a plain,
// idiomatic Node `ws` broadcast server speaking the subset of the /ws JSON
// protocol that the benchmarks use (welcome, subscribe -> subscribed,
// publish -> ack + message to every subscriber, ping -> pong).
// One process, one port: PORT (default 8090), HOST (default 127.0.0.1).
// Each publish is serialized once (JSON.stringify) and sent with ws.send to
// every subscriber of the channel.
import { WebSocketServer } from 'ws';

const port = Number(process.env.PORT || 8090);
const host = process.env.HOST || '127.0.0.1';
const channels = new Map(); // channel name -> Set of sockets
let nextConn = 1;

const wss = new WebSocketServer({ host, port, path: '/ws', backlog: 4096 });

function subscribe(ws, channel) {
  let subs = channels.get(channel);
  if (!subs) channels.set(channel, (subs = new Set()));
  subs.add(ws);
  ws.channels.add(channel);
}

function onMessage(ws, raw) {
  let m;
  try {
    m = JSON.parse(raw);
  } catch {
    ws.send('{"type":"error","code":"bad_request","message":"not JSON"}');
    return;
  }
  switch (m.type) {
    case 'subscribe':
      subscribe(ws, m.channel);
      ws.send(JSON.stringify({ type: 'subscribed', channel: m.channel, offset: 0 }));
      break;
    case 'publish': {
      const msg = JSON.stringify({
        type: 'message', channel: m.channel, event: m.event ?? 'message',
        data: m.data, from: ws.user, ts: Date.now(),
      });
      const subs = channels.get(m.channel);
      if (subs) for (const s of subs) s.send(msg);
      ws.send(JSON.stringify({ type: 'ack', channel: m.channel, id: m.id ?? null }));
      break;
    }
    case 'ping':
      ws.send('{"type":"pong"}');
      break;
    default:
      ws.send(JSON.stringify({ type: 'error', code: 'bad_request', message: 'unknown type' }));
  }
}

wss.on('connection', (ws) => {
  const conn = String(nextConn++);
  ws.user = `anon-${conn}`;
  ws.channels = new Set();
  ws.send(JSON.stringify({ type: 'welcome', conn, user: ws.user, edge: 'node-ws' }));
  ws.on('message', (raw) => onMessage(ws, raw));
  ws.on('close', () => {
    for (const c of ws.channels) channels.get(c)?.delete(ws);
  });
  ws.on('error', () => {});
});

wss.on('listening', () => console.log(`node-ws reference server on ws://${host}:${port}/ws (pid ${process.pid})`));
process.on('SIGTERM', () => process.exit(0));
