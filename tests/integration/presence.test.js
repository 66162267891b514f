// Presence end to end (issue: presence): two edges, the presence service,
// npm `ws` clients.  RT_PRESENCE_TTL is 3 s here so that expiry is quick.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, httpGet } from './lib/stack.js';
import { connectWs } from './lib/clients.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TTL = { RT_PRESENCE_TTL: '3s' };
const EDGE = { ...TTL, RT_RATE_LIMIT: '100000' };

async function member(url, user, channel, extra = {}) {
  const c = await connectWs(`${url}/ws?user=${user}`);
  c.id = (await c.next('welcome')).conn;
  await c.request({ type: 'subscribe', channel, ...extra }, { type: 'subscribed', channel }, 10000);
  return c;
}

const byConn = (members) => members.map((m) => `${m.user}/${m.conn}`).sort();

async function snapshot(edge, channel) {
  const r = await httpGet(`${edge.http}/v1/channels/${channel}/presence`);
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body);
}

async function until(fn, ms = 10000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('presence', { timeout: 180000 }, () => {
  let stack;
  before(async () => {
    stack = await startStack({ edges: 3, services: ['presence'], pg: false, envFor: { edge: EDGE, presence: TTL } });
    // the presence service answers once its view is complete (after a resync)
    await until(async () => (await httpGet(`${stack.edges[0].http}/v1/channels/none/presence`)).status === 200, 15000, 'presence ready');
  });
  after(() => stack?.stop({ allowExits: true }));

  test('join and leave reach members on both edges; the snapshot on subscribe and over HTTP agree', async () => {
    const a = await member(stack.edges[0].ws, 'ann', 'room');
    const b = await member(stack.edges[1].ws, 'bob', 'room');
    assert.deepEqual(await a.next('join'), { type: 'join', channel: 'room', user: 'bob', conn: b.id });
    const c = await member(stack.edges[1].ws, 'cid', 'room', { presence: true });
    const snap = await c.next('presence');
    await a.next({ type: 'join', conn: c.id });
    await b.next({ type: 'join', conn: c.id });
    const http = await until(async () => {
      const s = await snapshot(stack.edges[0], 'room');
      return s.members.length === 3 ? s : null;
    }, 5000, 'three members');
    assert.deepEqual(byConn(http.members), [`ann/${a.id}`, `bob/${b.id}`, `cid/${c.id}`].sort());
    for (const m of http.members) {
      assert.ok(['edge-1', 'edge-2'].includes(m.edge));
      assert.equal(typeof m.since, 'number');
    }
    assert.ok(byConn(snap.members).every((x) => byConn(http.members).includes(x)));
    await b.close();
    assert.deepEqual(await a.next('leave'), { type: 'leave', channel: 'room', user: 'bob', conn: b.id });
    await c.next({ type: 'leave', conn: b.id });
    await until(async () => (await snapshot(stack.edges[1], 'room')).members.length === 2, 5000, 'bob gone');
    await a.close();
    await c.close();
  });

  test('state: delivered to the others, kept as the latest, bursts coalesced toward the presence service', async () => {
    const a = await member(stack.edges[0].ws, 'ann', 'cursor');
    const b = await member(stack.edges[1].ws, 'bob', 'cursor');
    const metric = async () => {
      const body = (await httpGet(`${stack.edges[0].http}/metrics`)).body;
      return Number(body.match(/rtsync_edge_presence_updates_total\{[^}]*\} (\d+)/)[1]);
    };
    await sleep(300);
    const before = await metric();
    for (let i = 0; i < 100; i++) {
      a.send({ type: 'state', channel: 'cursor', state: { x: i } });
      await sleep(10); // a cursor at 100 moves a second
    }
    let last;
    for (let i = 0; i < 100; i++) last = await b.next('state');
    assert.deepEqual(last, { type: 'state', channel: 'cursor', user: 'ann', conn: a.id, state: { x: 99 } });
    await sleep(300);
    const writes = (await metric()) - before;
    assert.ok(writes <= 20, `${writes} presence writes for 100 state changes`);
    const s = await until(async () => {
      const snap = await snapshot(stack.edges[2], 'cursor');
      const m = snap.members.find((x) => x.conn === a.id);
      return m && m.state && m.state.x === 99 ? m : null;
    }, 5000, 'latest state in the snapshot');
    assert.deepEqual(s.state, { x: 99 });
    const e = await a.request({ type: 'state', channel: 'elsewhere', state: { x: 1 } }, 'error');
    assert.equal(e.code, 'not_found');
    await a.close();
    await b.close();
  });

  test('signal: delivered across edges only to its target; not_found for an absent one', async () => {
    const a = await member(stack.edges[0].ws, 'ann', 'rtc');
    const b = await member(stack.edges[1].ws, 'bob', 'rtc');
    const c = await member(stack.edges[1].ws, 'cid', 'rtc');
    await until(async () => (await snapshot(stack.edges[0], 'rtc')).members.length === 3, 5000, 'members');
    a.send({ type: 'signal', channel: 'rtc', to: b.id, data: { sdp: 'offer' } });
    assert.deepEqual(await b.next('signal'), { type: 'signal', channel: 'rtc', from: 'ann', from_conn: a.id, data: { sdp: 'offer' } });
    await c.expectNone('signal', 500);
    const e = await a.request({ type: 'signal', channel: 'rtc', to: 'nobody-0-1', data: {}, id: 's1' }, 'error');
    assert.equal(e.code, 'not_found');
    assert.equal(e.ref, 's1');
    await Promise.all([a, b, c].map((x) => x.close()));
  });

  test('2000 members in one channel: snapshot complete, one join event per join', { timeout: 120000 }, async () => {
    const watcher = await member(stack.edges[0].ws, 'watch', 'big');
    const joins = new Map();
    watcher.ws.on('message', (d) => {
      const f = JSON.parse(d.toString());
      if (f.type === 'join') joins.set(f.conn, (joins.get(f.conn) || 0) + 1);
    });
    const clients = [];
    for (let i = 0; i < 2000; i += 100) {
      clients.push(...(await Promise.all(Array.from({ length: 100 }, (_, k) => member(stack.edges[(i + k) % 3].ws, `u${i + k}`, 'big')))));
    }
    await until(() => joins.size === 2000, 30000, '2000 join events');
    await sleep(500);
    assert.ok([...joins.values()].every((n) => n === 1), 'a join event came twice');
    const snap = await until(async () => {
      const s = await snapshot(stack.edges[1], 'big');
      return s.members.length === 2001 ? s : null;
    }, 10000, '2001 members');
    assert.equal(new Set(snap.members.map((m) => m.conn)).size, 2001);
    await Promise.all(clients.map((c) => c.terminate()));
    await until(async () => (await snapshot(stack.edges[1], 'big')).members.length === 1, 20000, 'all gone');
    await watcher.close();
  });

  test('presence restarted: the snapshot afterwards equals the one before', async () => {
    const a = await member(stack.edges[0].ws, 'ann', 'persist');
    const b = await member(stack.edges[1].ws, 'bob', 'persist');
    await a.request({ type: 'state', channel: 'persist', state: { status: 'away' } }, () => true, 100).catch(() => {});
    const before = await until(async () => {
      const s = await snapshot(stack.edges[0], 'persist');
      return s.members.length === 2 && s.members.some((m) => m.state) ? s : null;
    }, 5000, 'two members with a state');
    await stack.restart('presence-1', { signal: 'SIGKILL' });
    const after = await until(async () => {
      const r = await httpGet(`${stack.edges[1].http}/v1/channels/persist/presence`);
      return r.status === 200 ? JSON.parse(r.body) : null;
    }, 15000, 'presence answering again');
    const key = (s) => s.members.map((m) => JSON.stringify([m.user, m.conn, m.edge, m.state, m.since])).sort();
    assert.deepEqual(key(after), key(before));
    await a.close();
    await b.close();
  });

  test('a resync too big for one NATS message comes in parts, and nothing is lost', async () => {
    const big = 'x'.repeat(60000); // 20 members with a 60 KB state: a 1.2 MB snapshot, over NATS's 1 MiB
    const clients = [];
    for (let i = 0; i < 20; i++) {
      const c = await member(stack.edges[1].ws, `big${i}`, 'fat');
      c.send({ type: 'state', channel: 'fat', state: { big, i } });
      clients.push(c);
    }
    const all = async () => {
      const r = await httpGet(`${stack.edges[0].http}/v1/channels/fat/presence`);
      if (r.status !== 200) return null;
      const s = JSON.parse(r.body);
      return s.total === 20 && s.members.every((m) => m.state && m.state.big === big) ? s : null;
    };
    await until(all, 5000, 'twenty members with their states');
    await stack.restart('presence-1', { signal: 'SIGKILL' });
    const after = await until(all, 15000, 'the same twenty members after a resync in parts');
    assert.equal(after.truncated, true); // the reply itself is cut below the NATS limit
    assert.ok(after.members.length >= 10 && after.members.length < 20);
    await Promise.all(clients.map((c) => c.close()));
  });

  test('an edge killed: its members leave within the TTL, seen on the other edge; no ghosts', async () => {
    const a = await member(stack.edges[0].ws, 'ann', 'crash');
    const doomed = await member(stack.edges[2].ws, 'ghost', 'crash');
    await a.next({ type: 'join', conn: doomed.id });
    const t0 = Date.now();
    await stack.kill('edge-3', 'SIGKILL');
    const leave = await a.next({ type: 'leave', conn: doomed.id }, 10000);
    assert.equal(leave.user, 'ghost');
    assert.ok(Date.now() - t0 < 3000 + 3000, `leave after ${Date.now() - t0} ms`);
    await a.expectNone({ type: 'leave', conn: doomed.id }, 1500); // one leave, not one per presence replica
    const s = await snapshot(stack.edges[0], 'crash');
    assert.deepEqual(byConn(s.members), [`ann/${a.id}`]);
    await a.close();
  });
});
