// The JavaScript client library (clients/js) against the real stack: chat
// across edges, presence, state and signal helpers, resume without gap or
// duplicate when an edge dies, the offline queue resent with the same ids
// (deduplicated by the server), and token refresh before `exp`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import WebSocket from 'ws';
import { startStack } from './lib/stack.js';
import { RtClient, MemoryStore, backoffDelay, tokenExpiry } from '../../clients/js/index.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(cond, ms = 10000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!(await Promise.resolve().then(cond).catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await sleep(20);
  }
}

let stack;
const clients = [];
before(async () => {
  // a short TTL: the presence service is ready (answers queries, routes signals) sooner
  const ttl = { RT_PRESENCE_TTL: '3s' };
  const edge = { ...ttl, RT_RATE_LIMIT: '100000' }; // the writer below sends ~100 a second
  stack = await startStack({ edges: 2, services: ['chat-history', 'presence'], envFor: { edge, presence: ttl } });
});
after(async () => {
  for (const c of clients) c.close();
  await stack?.stop();
});

function client(user, urls, opts = {}) {
  const c = new RtClient({ urls, user, WebSocket, backoff: { base: 50, max: 500 }, ...opts });
  clients.push(c);
  return c.connect();
}

function within(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms)));
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

const online = (c) => until(() => c.status === 'online', 10000, `${c.user} online`);

test('backoff: full jitter below min(max, base * 2^attempt)', () => {
  assert.equal(backoffDelay(3, 100, 10000, () => 0.999999), 799);
  assert.equal(backoffDelay(20, 100, 5000, () => 0.5), 2500);
  assert.equal(backoffDelay(0, 100, 5000, () => 0), 0);
  const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(4)));
  assert.ok(spread.size > 20, 'delays of many clients differ (no reconnect storm)');
});

test('chat across edges: messages, presence, typing state, signal', async () => {
  const edges = stack.edges.map((e) => e.ws);
  const a = client('alice', [edges[0]]);
  const b = client('bob', [edges[1]]);
  await online(a);
  await online(b);
  const sa = a.subscribe('room1', { presence: true });
  const sb = b.subscribe('room1', { presence: true });
  const got = [];
  sb.on('message', (m) => got.push(m));
  await until(() => sa.active && sb.active, 5000, 'subscribed');
  await until(() => sa.members.has('bob') && sb.members.has('alice'), 5000, 'both members');
  const ack = await sa.publish({ text: 'hi bob' });
  assert.equal(typeof ack.offset, 'number');
  await until(() => got.length === 1);
  assert.deepEqual(got[0].data, { text: 'hi bob' });
  assert.equal(got[0].from, 'alice');

  const states = [];
  sb.on('state', (s) => states.push(s));
  assert.ok(sa.setState({ typing: true }));
  await until(() => states.some((s) => s.user === 'alice' && s.state.typing === true), 5000, 'typing state');

  const signals = [];
  const errors = [];
  a.on('error', (e) => errors.push(e));
  b.on('signal', (s) => signals.push(s));
  // the presence service routes signals: wait until it knows both members
  await until(async () => (await a.presence('room1')).length === 2, 10000, 'presence service knows both');
  assert.ok(sa.signal(b.conn, { sdp: 'offer' }));
  await until(() => signals.length === 1, 5000, 'signal').catch((e) => {
    throw new Error(`${e.message}; errors: ${JSON.stringify(errors)}`);
  });
  assert.equal(signals[0].from_conn, a.conn);

  const hist = await a.history('room1', { before: ack.offset + 1, limit: 10 });
  assert.equal(hist.at(-1).offset, ack.offset);
  assert.equal(a.status, 'online');

  b.close();
  await until(() => !sa.members.has('bob'), 5000, 'bob leaves');
  a.close();
});

test('an edge dies: reconnect to the other, resume with no gap or duplicate; offline publishes delivered once', async () => {
  const edges = stack.edges.map((e) => e.ws);
  const reader = client('reader', edges); // starts on edge-1
  const writer = client('writer', [edges[1]]);
  await online(reader);
  await online(writer);
  assert.equal(reader.welcome.edge, 'edge-1');
  const seen = [];
  const sub = reader.subscribe('resume1');
  sub.on('message', (m) => seen.push(m));
  await until(() => sub.active);

  let n = 0;
  let stop = false;
  const pump = (async () => {
    while (!stop) {
      await within(writer.publish('resume1', `w${n++}`), 5000, `writer publish ${n}`);
      await sleep(10);
    }
  })();
  await until(() => seen.length >= 20, 10000, '20 messages');
  const statuses = [];
  const queued = [];
  reader.on('status', (s) => {
    statuses.push(s);
    // published while offline: queued, sent after the reconnect
    if (s === 'offline' && !queued.length) queued.push(reader.publish('resume1', 'offline-1'), reader.publish('resume1', 'offline-2'));
  });
  await stack.kill('edge-1', 'SIGKILL');
  await until(() => queued.length === 2, 5000, 'offline');
  await until(() => reader.status === 'online' && reader.welcome.edge === 'edge-2', 10000, 'online on edge-2');
  const acks = await within(Promise.all(queued), 5000, 'acks of the offline publishes');
  await sleep(300);
  stop = true;
  await within(pump, 6000, 'the writer');
  const last = (await writer.publish('resume1', 'last')).offset;
  await until(() => seen.length && seen.at(-1).offset === last, 10000, 'the last message');
  const offsets = seen.map((m) => m.offset);
  for (let i = 1; i < offsets.length; i++) assert.equal(offsets[i], offsets[i - 1] + 1, `no gap or duplicate at ${i}`);
  const texts = seen.map((m) => m.data);
  assert.equal(texts.filter((t) => t === 'offline-1').length, 1);
  assert.equal(texts.filter((t) => t === 'offline-2').length, 1);
  assert.ok(acks[0].offset < acks[1].offset, 'the queue keeps its order');
  assert.deepEqual(await reader.queued(), []);
  assert.deepEqual(statuses.slice(0, 2), ['offline', 'connecting']);
  await stack.start('edge-1');
  reader.close();
  writer.close();
});

test('offline queue: a resend with the same id is deduplicated by the server', async () => {
  const store = new MemoryStore();
  const edges = stack.edges.map((e) => e.ws);
  // a queue left by an earlier session (a reload before the ack): same id twice
  await store.put({ id: 'fixed-id-1', channel: 'dedup1', data: 'once', seq: 1 });
  const c = client('dedup', edges, { store });
  const sub = c.subscribe('dedup1', { since: 0 });
  const seen = [];
  sub.on('message', (m) => seen.push(m));
  await until(async () => (await store.getAll()).length === 0, 5000, 'queue drained');
  const again = await c.publish('dedup1', 'once', { id: 'fixed-id-1' });
  await sleep(300);
  assert.equal(seen.filter((m) => m.data === 'once').length, 1);
  assert.equal(seen[0].offset, again.offset);
  c.close();
});

test('token refresh before exp: getToken is called and the connection moves on without 4001', async () => {
  const secret = 'client-js-secret';
  const sign = (claims) => {
    const b = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const head = `${b({ alg: 'HS256', typ: 'JWT' })}.${b(claims)}`;
    return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
  };
  const authStack = await startStack({ name: 'client-js-auth', edges: 1, services: ['chat-history'], env: { RT_JWT_SECRET: secret } });
  try {
    let calls = 0;
    const getToken = () => {
      calls++;
      return sign({ sub: 'tok', exp: Math.floor(Date.now() / 1000) + 3, channels: ['tok-*'] });
    };
    assert.ok(tokenExpiry(getToken()) > Date.now());
    calls = 0;
    const c = client(undefined, [authStack.edges[0].ws], { getToken, refreshMargin: 1500 });
    const errors = [];
    c.on('error', (e) => errors.push(e));
    const sub = c.subscribe('tok-1');
    const seen = [];
    sub.on('message', (m) => seen.push(m.data));
    await online(c);
    await c.publish('tok-1', 'before');
    await sleep(4500); // past the first token's exp
    assert.ok(calls >= 2, `getToken called ${calls} times`);
    await c.publish('tok-1', 'after');
    await until(() => seen.includes('after'));
    assert.deepEqual(seen, ['before', 'after']);
    assert.equal(c.status, 'online');
    c.close();
  } finally {
    await authStack.stop();
  }
});
