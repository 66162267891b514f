// Scaling and rolling updates (issue 8): a stack of 4 edges and 2 replicas of
// each back-end service passes the cross-edge channel, resume and document
// tests; an edge drained with SIGTERM while messages are being published sends
// its clients elsewhere (close 1001), they resume with `since` = the last
// offset they saw, and every subscriber sees offsets 1..N exactly once, in
// order, each message once.
//
// presence and crdt-merge run only when built (build/bin); the parts that need
// them are skipped otherwise, and say so.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startStack, httpGet, ROOT } from './lib/stack.js';
import { connectWs, sseRaw } from './lib/clients.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const BIN = process.env.TEST_BIN_DIR || path.join(ROOT, 'build/bin');
const built = (s) => fs.existsSync(path.join(BIN, s));
const BACKENDS = ['chat-history', 'presence', 'crdt-merge'].filter(built);
const EDGES = 4;

async function client(edge, user) {
  const c = await connectWs(`${edge.ws}/ws?user=${user}`);
  await c.next('welcome');
  return c;
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * A subscriber that follows a channel across edges: when its connection
 * closes it connects to another live edge and subscribes again with `since`
 * = the last offset it saw.
 */
class Follower {
  constructor(stack, channel, user, edge) {
    Object.assign(this, { stack, channel, user, edge });
    this.offsets = [];
    this.ids = [];
    this.closes = []; // {edge, code}
    this.stopping = false;
  }

  get last() {
    return this.offsets.at(-1) ?? 0;
  }

  async connect() {
    const c = await client(this.stack.edges[this.edge], this.user);
    // every message of the channel, whenever it arrives (history or live)
    const push = c.push.bind(c);
    c.push = (f) => {
      if (f && f.type === 'message' && f.channel === this.channel) {
        this.offsets.push(f.offset);
        this.ids.push(f.id);
      } else push(f);
    };
    this.conn = c;
    c.closed.then((info) => this.onClose(c, info));
    await c.request({ type: 'subscribe', channel: this.channel, since: this.last }, { type: 'subscribed', channel: this.channel }, 10000);
  }

  onClose(c, info) {
    if (this.stopping || c !== this.conn) return;
    this.closes.push({ edge: this.stack.edges[this.edge].name, code: info.code });
    this.reconnecting = this.reconnect();
  }

  // the next edge that is not the one that closed us and still runs
  async reconnect() {
    const from = this.edge;
    for (let attempt = 0; attempt < 50 && !this.stopping; attempt++) {
      for (let k = 1; k < EDGES; k++) {
        const i = (from + k + attempt) % EDGES;
        if (i === from || !this.stack.isRunning(this.stack.edges[i].name)) continue;
        this.edge = i;
        try {
          await this.connect();
          return;
        } catch {
          /* that edge is going too: try the next */
        }
      }
      await sleep(100);
    }
    if (!this.stopping) this.failed = `${this.user}: no edge to reconnect to`;
  }

  async waitFor(n, timeoutMs = 30000) {
    const deadline = Date.now() + timeoutMs;
    while (this.last < n && Date.now() < deadline && !this.failed) await sleep(25);
    await this.reconnecting;
    assert.ok(!this.failed, this.failed);
  }

  close() {
    this.stopping = true;
    return this.conn?.close();
  }

  terminate() {
    this.stopping = true;
    return this.conn?.terminate();
  }
}

/**
 * Publishes `count` durable messages with ids `${prefix}-${i}`, one at a time;
 * when its edge goes away it reconnects elsewhere and sends the unacked id
 * again (the same id returns the first offset and is not delivered twice).
 */
async function publishAll(stack, { channel, user, edge, prefix, count, gapMs, onAck, abort }) {
  const acks = new Map();
  const answers = []; // what came instead of an ack
  let c = null;
  let at = edge;
  const connect = async () => {
    for (let attempt = 0; attempt < 100 && !abort.aborted; attempt++) {
      const i = (at + attempt) % EDGES;
      if (stack.isRunning(stack.edges[i].name)) {
        try {
          c = await client(stack.edges[i], user);
          at = i;
          return;
        } catch {
          /* that edge is going: the next one */
        }
      }
      await sleep(50);
    }
    throw new Error(`${user}: no edge to connect to`);
  };
  await connect();
  for (let i = 0; i < count; i++) {
    const id = `${prefix}-${i}`;
    const since = Date.now();
    for (let errors = 0; ; ) {
      if (abort.aborted) {
        c.terminate();
        return acks;
      }
      assert.ok(Date.now() - since < 30000, `${id}: no ack within 30 s (last answers: ${JSON.stringify(answers.slice(-3))})`);
      let f = null;
      if (!c.closeInfo) {
        f = await c.request({ type: 'publish', channel, id, data: { prefix, i } },
          (x) => (x.type === 'ack' && x.id === id) || (x.type === 'error' && x.ref === id), 10000).catch(() => null);
      }
      if (f?.type === 'ack') {
        acks.set(id, f.offset);
        onAck?.(acks.size);
        break;
      }
      answers.push(f ?? c.closeInfo ?? 'timeout');
      if (f) errors++;
      if (c.closeInfo || !f || errors >= 3) {
        // closed, silent, or refusing (a draining edge): the publish may or may
        // not have been stored; the same id again on another edge
        if (!c.closeInfo) await c.terminate();
        at = (at + 1) % EDGES;
        errors = 0;
        await connect();
      } else {
        await sleep(100); // unavailable for a moment: the same id again
      }
    }
    if (gapMs) await sleep(gapMs);
  }
  await c.close();
  return acks;
}

describe(`a stack of ${EDGES} edges and 2 replicas of ${BACKENDS.join(', ')}`, { timeout: 300000 }, () => {
  let stack;
  before(async () => {
    stack = await startStack({
      edges: EDGES,
      services: BACKENDS.map((name) => ({ name, replicas: 2 })),
      // two publishers send 300 messages each within seconds: above the per-user default
      envFor: { edge: { RT_RATE_LIMIT: '100000' } },
    });
  });
  after(() => stack?.stop());

  test('which back-end services run', (t) => {
    for (const s of ['presence', 'crdt-merge']) {
      if (!built(s)) t.diagnostic(`${s} not built (build/bin/${s}): not part of this stack, its tests skipped`);
    }
    for (const s of BACKENDS) for (const n of [1, 2]) assert.ok(stack.isRunning(`${s}-${n}`));
  });

  test('cross-edge channel: a publisher on every edge, a subscriber on every edge, all see 1..100 in order', async () => {
    const subs = [];
    for (let i = 0; i < EDGES; i++) {
      const c = await client(stack.edges[i], `xsub${i}`);
      await c.request({ type: 'subscribe', channel: 'cross' }, { type: 'subscribed', channel: 'cross' }, 10000);
      subs.push(c);
    }
    const pubs = await Promise.all(stack.edges.map((e, i) => client(e, `xpub${i}`)));
    await Promise.all(pubs.map(async (p, i) => {
      for (let j = 0; j < 25; j++) await p.request({ type: 'publish', channel: 'cross', id: `x${i}-${j}`, data: j }, 'ack', 10000);
    }));
    for (const s of subs) {
      const got = [];
      for (let k = 0; k < 100; k++) got.push((await s.next((f) => f.type === 'message' && f.channel === 'cross', 10000)).offset);
      assert.deepEqual(got, range(1, 100));
    }
    // ephemeral messages cross edges too
    pubs[3].send({ type: 'publish', channel: 'cross', data: 'typing', ephemeral: true });
    for (const s of subs) assert.equal((await s.next((f) => f.type === 'message' && f.data === 'typing', 5000)).offset, undefined);
    await Promise.all([...subs, ...pubs].map((c) => c.close()));
  });

  test('resume on another edge: WebSocket since, SSE Last-Event-ID, history', async () => {
    const p = await client(stack.edges[0], 'rpub');
    for (let i = 1; i <= 50; i++) await p.request({ type: 'publish', channel: 'resume4', id: `r${i}`, data: i }, 'ack', 10000);
    const c = await client(stack.edges[3], 'rsub');
    const s = await c.request({ type: 'subscribe', channel: 'resume4', since: 20 }, { type: 'subscribed', channel: 'resume4' }, 10000);
    assert.equal(s.offset, 50);
    const got = [];
    for (let k = 0; k < 30; k++) got.push((await c.next('message', 10000)).offset);
    assert.deepEqual(got, range(21, 50));
    const sse = await sseRaw(`${stack.edges[2].http}/sse/resume4`, { headers: { 'last-event-id': '45' } });
    await sse.waitFor('id: 50\n', 10000);
    assert.deepEqual(sse.events().map((e) => Number(e.id)).filter((n) => n), range(46, 50));
    sse.close();
    const h = JSON.parse((await httpGet(`${stack.edges[1].http}/v1/channels/resume4/messages?after=40&limit=5`)).body);
    assert.deepEqual(h.messages.map((m) => m.offset), [41, 42, 43, 44, 45]);
    await p.close();
    await c.close();
  });

  test('presence across edges', { skip: !built('presence') && 'presence not built' }, async () => {
    const a = await client(stack.edges[0], 'ann');
    const b = await client(stack.edges[3], 'ben');
    await a.request({ type: 'subscribe', channel: 'lobby', presence: true }, { type: 'subscribed', channel: 'lobby' }, 10000);
    await b.request({ type: 'subscribe', channel: 'lobby', presence: true }, { type: 'subscribed', channel: 'lobby' }, 10000);
    const deadline = Date.now() + 15000;
    let users = [];
    while (Date.now() < deadline) {
      const r = await httpGet(`${stack.edges[1].http}/v1/channels/lobby/presence`);
      if (r.status === 200) users = JSON.parse(r.body).members.map((m) => m.user).sort();
      if (users.length === 2) break;
      await sleep(100);
    }
    assert.deepEqual(users, ['ann', 'ben'], 'edge-2 lists the members of edge-1 and edge-4');
    await a.close();
    await b.close();
  });

  test('a document edited on two edges converges, and a third edge serves it', { skip: !built('crdt-merge') && 'crdt-merge not built' }, async (t) => {
    // the edge may not serve /yjs yet while documents are being written
    const probe = await connectWs(`${stack.edges[0].ws}/yjs/probe`).catch((e) => e);
    if (probe.status) {
      t.skip(`the edge does not serve /yjs yet (HTTP ${probe.status})`);
      return;
    }
    await probe.close();
    const Y = await import('yjs');
    const { WebsocketProvider } = await import('y-websocket');
    const { default: WebSocket } = await import('ws');
    const open = async (edge) => {
      const doc = new Y.Doc();
      const provider = new WebsocketProvider(`${edge.ws}/yjs`, 'scale-doc', doc, { WebSocketPolyfill: WebSocket, disableBc: true });
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no sync on ${edge.name}`)), 15000);
        provider.once('sync', () => (clearTimeout(timer), resolve()));
      });
      return { doc, provider };
    };
    const a = await open(stack.edges[0]);
    const b = await open(stack.edges[3]);
    try {
      a.doc.getText('t').insert(0, 'hello ');
      b.doc.getMap('m').set('from', 'edge-4');
      b.doc.getText('t').insert(0, 'world ');
      const deadline = Date.now() + 15000;
      const same = () => a.doc.getText('t').toString() === b.doc.getText('t').toString() && a.doc.getMap('m').get('from') === 'edge-4';
      while (!same() && Date.now() < deadline) await sleep(50);
      assert.ok(same(), `converged: "${a.doc.getText('t')}" vs "${b.doc.getText('t')}"`);
      assert.equal(a.doc.getText('t').length, 12);
      const c = await open(stack.edges[2]);
      try {
        while (c.doc.getText('t').toString() !== a.doc.getText('t').toString() && Date.now() < deadline) await sleep(50);
        assert.equal(c.doc.getText('t').toString(), a.doc.getText('t').toString());
      } finally {
        c.provider.destroy();
        c.doc.destroy();
      }
    } finally {
      for (const x of [a, b]) {
        x.provider.destroy();
        x.doc.destroy(); // and with it the awareness and its timer
      }
    }
  });

  // last: it stops edge-3
  test('edge-3 drained with SIGTERM while publishing: its clients resume elsewhere, nothing lost or twice', async () => {
    const followers = [];
    const abort = { aborted: false };
    try {
      await drainTest(followers, abort);
    } finally {
      // a failure must not leave clients reconnecting (the test process would not end)
      abort.aborted = true;
      await Promise.all(followers.map((f) => f.terminate()));
    }
  });

  async function drainTest(followers, abort) {
    const channel = 'drain';
    for (let i = 0; i < 2 * EDGES; i++) {
      const f = new Follower(stack, channel, `fol${i}`, i % EDGES);
      await f.connect();
      followers.push(f);
    }
    const PER = 300;
    let acked = 0;
    let drained;
    const onAck = () => {
      acked++;
      // a third of the way through: drain edge-3 (SIGTERM), do not wait here
      if (acked === Math.floor((2 * PER) / 3) && !drained) drained = stack.kill('edge-3', 'SIGTERM');
    };
    const [steady, moved] = await Promise.all([
      publishAll(stack, { channel, user: 'pub-steady', edge: 0, prefix: 's', count: PER, gapMs: 3, onAck, abort }),
      publishAll(stack, { channel, user: 'pub-moved', edge: 2, prefix: 'm', count: PER, gapMs: 3, onAck, abort }),
    ]);
    assert.ok(drained, 'edge-3 was drained during the publishing');
    const exit = await drained;
    assert.equal(exit.code, 0, `edge-3 exits cleanly after SIGTERM (${JSON.stringify(exit)})`);
    assert.ok(exit.ms < 10000, `edge-3 drained in ${exit.ms} ms`);

    const N = 2 * PER;
    const offsets = [...steady.values(), ...moved.values()].sort((x, y) => x - y);
    assert.deepEqual(offsets, range(1, N), 'every publish acked with its own offset');

    await Promise.all(followers.map((f) => f.waitFor(N)));
    for (const f of followers) {
      assert.deepEqual(f.offsets, range(1, N), `${f.user}: offsets 1..${N} once, in order (closes ${JSON.stringify(f.closes)})`);
      assert.equal(new Set(f.ids).size, N, `${f.user}: each message once`);
    }
    // the clients of edge-3 were told it was going away, and moved
    const moved3 = followers.filter((f) => f.closes.length);
    assert.equal(moved3.length, 2, 'the two followers of edge-3 reconnected');
    for (const f of moved3) {
      assert.deepEqual(f.closes.map((c) => [c.edge, c.code]), [['edge-3', 1001]]);
      assert.notEqual(stack.edges[f.edge].name, 'edge-3');
    }
    for (const f of followers.filter((x) => !x.closes.length)) assert.notEqual(stack.edges[f.edge].name, 'edge-3');
    await Promise.all(followers.map((f) => f.close()));
  }
});
