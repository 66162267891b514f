// Durable channels end to end (issue: durable channels): edges + chat-history +
// PostgreSQL, with the npm `ws` and `eventsource` clients.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventSource } from 'eventsource';
import { startStack, httpGet, ROOT } from './lib/stack.js';
import { connectWs, request, sseRaw } from './lib/clients.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function client(url, user) {
  const c = await connectWs(`${url}/ws?user=${user}`);
  await c.next('welcome');
  return c;
}

async function subscribe(c, channel, extra = {}) {
  return c.request({ type: 'subscribe', channel, ...extra }, { type: 'subscribed', channel }, 10000);
}

// Collects `count` messages of `channel` from c and checks offsets from..from+count-1 in order.
async function expectOffsets(c, channel, from, count, timeoutMs = 30000) {
  const seen = [];
  for (let i = 0; i < count; i++) {
    const m = await c.next((f) => f.type === 'message' && f.channel === channel, timeoutMs);
    seen.push(m.offset);
    assert.equal(m.offset, from + i, `expected offset ${from + i}, got ${m.offset} after ${seen.slice(-5)}`);
  }
  return seen;
}

describe('durable channels', { timeout: 240000 }, () => {
  let stack;
  before(async () => {
    stack = await startStack({
      edges: 2,
      services: [{ name: 'chat-history', replicas: 2 }],
      envFor: { 'chat-history': { RT_HISTORY_RETAIN: '20000' }, edge: { RT_RATE_LIMIT: '1000000' } },
    });
  });
  after(() => stack?.stop({ allowExits: true }));

  test('20 publishers over both edges, 500 messages each: every subscriber gets 1..10000 once, in order', async () => {
    const subs = [];
    for (let i = 0; i < 4; i++) {
      const c = await client(stack.edges[i % 2].ws, `sub${i}`);
      const s = await subscribe(c, 'load');
      assert.equal(s.offset, 0);
      subs.push(c);
    }
    const pubs = [];
    for (let i = 0; i < 20; i++) pubs.push(await client(stack.edges[i % 2].ws, `pub${i}`));
    const acked = new Set();
    await Promise.all(pubs.map(async (p, i) => {
      for (let k = 0; k < 500; k += 50) {
        for (let j = k; j < k + 50; j++) p.send({ type: 'publish', channel: 'load', id: `p${i}-${j}`, data: { i, j } });
        for (let j = k; j < k + 50; j++) {
          const ack = await p.next('ack', 20000);
          assert.ok(!acked.has(ack.offset), `offset ${ack.offset} acked twice`);
          acked.add(ack.offset);
        }
      }
    }));
    assert.equal(acked.size, 10000);
    await Promise.all(subs.map((s) => expectOffsets(s, 'load', 1, 10000)));
    const rows = await stack.psql("SELECT count(*), min(msg_offset), max(msg_offset), count(DISTINCT msg_offset) FROM hist_messages WHERE channel = 'load'");
    assert.equal(rows.trim(), '10000|1|10000|10000');
    await Promise.all([...subs, ...pubs].map((c) => c.close()));
  });

  test('the publishes of one loop turn go to chat-history in one request, in order across replicas, in far fewer NATS messages', async () => {
    const inMsgs = async () => (await (await fetch(`${stack.nats.monitorUrl}/varz`)).json()).in_msgs;
    const c = await client(stack.edges[0].ws, 'burst');
    const before = await inMsgs();
    c.ws._socket.cork(); // 600 frames in one write: read in one or a few turns, over 3+ requests of <= 256
    for (let i = 1; i <= 600; i++) c.send({ type: 'publish', channel: 'burst', id: `b${i}`, data: i });
    c.ws._socket.uncork();
    // the two chat-history replicas share the requests: only one in flight per edge thread keeps the order
    for (let i = 1; i <= 600; i++) {
      const ack = await c.next('ack', 10000);
      assert.equal(ack.id, `b${i}`);
      assert.equal(ack.offset, i);
    }
    // one publish = request + reply + fan-out when sent one by one (1,800); batched, the
    // fan-out (600) and a few requests and replies
    const used = (await inMsgs()) - before;
    assert.ok(used < 900, `${used} NATS messages for 600 publishes`);
    await c.close();
  });

  test('WebSocket resume with since, idempotent resend, history pages both ways', async () => {
    const a = await client(stack.edges[0].ws, 'alice');
    await subscribe(a, 'resume');
    for (let i = 1; i <= 30; i++) assert.equal((await a.request({ type: 'publish', channel: 'resume', id: `m${i}`, data: i }, 'ack')).offset, i);
    // the same id again: the first offset, and no second delivery
    const again = await a.request({ type: 'publish', channel: 'resume', id: 'm7', data: 7 }, 'ack');
    assert.equal(again.offset, 7);
    await expectOffsets(a, 'resume', 1, 30);
    await a.expectNone('message', 300);

    const b = await client(stack.edges[1].ws, 'bob');
    const s = await subscribe(b, 'resume', { since: 25 });
    assert.equal(s.offset, 30);
    await expectOffsets(b, 'resume', 26, 5);
    a.send({ type: 'publish', channel: 'resume', data: 'live' });
    const live = await b.next('message');
    assert.equal(live.offset, 31);
    assert.equal(live.data, 'live');

    const page = async (q) => JSON.parse((await httpGet(`${stack.edges[1].http}/v1/channels/resume/messages?${q}`)).body);
    let r = await page('after=10&limit=5');
    assert.deepEqual(r.messages.map((m) => m.offset), [11, 12, 13, 14, 15]);
    assert.equal(r.channel, 'resume');
    assert.deepEqual(Object.keys(r.messages[0]).sort(), ['data', 'event', 'from', 'id', 'offset', 'ts']);
    r = await page('before=11&limit=4');
    assert.deepEqual(r.messages.map((m) => m.offset), [7, 8, 9, 10]);
    r = await page('');
    assert.equal(r.messages.length, 31);
    assert.equal((await httpGet(`${stack.edges[1].http}/v1/channels/resume/messages?after=1&before=5`)).status, 400);
    assert.equal((await httpGet(`${stack.edges[1].http}/v1/channels/resume/messages?limit=1001`)).status, 400);
    assert.equal((await httpGet(`${stack.edges[1].http}/v1/channels/resume/messages?after=x`)).status, 400);
    await a.close();
    await b.close();
  });

  test('HTTP publish returns the offset; SSE resumes with ?since', async () => {
    const r = await request('POST', `${stack.edges[0].http}/v1/channels/httpdur/publish?user=w`, { body: { event: 'token', data: 'a' } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { offset: 1 });
    await request('POST', `${stack.edges[0].http}/v1/channels/httpdur/publish`, { body: { event: 'done', data: { n: 2 } } });
    const sse = await sseRaw(`${stack.edges[1].http}/sse/httpdur?since=0`);
    const text = await sse.waitFor('id: 2\n', 5000);
    assert.equal(text, 'retry: 3000\n\nid: 1\nevent: token\ndata: a\n\nid: 2\nevent: done\ndata: {"n":2}\n\n');
    sse.close();
  });

  test('SSE resume across edges: an eventsource client whose edge is killed misses nothing', async () => {
    let edge = stack.edges[0];
    const got = [];
    const es = new EventSource(`http://sse-edge/sse/llm`, {
      // the app would use a load balancer; here the client is pointed at a live edge
      fetch: (url, init) => fetch(url.toString().replace('http://sse-edge', edge.http), init),
    });
    const opened = new Promise((r) => es.addEventListener('open', r, { once: true }));
    es.addEventListener('token', (e) => got.push({ id: e.lastEventId, data: e.data }));
    await opened;
    const publish = (i) => request('POST', `${stack.edges[1].http}/v1/channels/llm/publish`, { body: { event: 'token', data: `t${i}` } });
    for (let i = 1; i <= 5; i++) await publish(i);
    while (got.length < 5) await sleep(20);
    await stack.kill('edge-1', 'SIGKILL');
    for (let i = 6; i <= 12; i++) await publish(i);
    edge = stack.edges[1];
    const deadline = Date.now() + 20000;
    while (got.length < 12 && Date.now() < deadline) await sleep(50);
    es.close();
    assert.deepEqual(got.map((g) => g.data), Array.from({ length: 12 }, (_, i) => `t${i + 1}`));
    assert.deepEqual(got.map((g) => g.id), Array.from({ length: 12 }, (_, i) => `${i + 1}`));
    await stack.start('edge-1');
  });

  test('chat-history SIGKILLed and restarted during a publish loop: acked offsets all there, none twice', async () => {
    const p = await client(stack.edges[1].ws, 'looper');
    const acked = new Map();
    let stop = false;
    const loop = (async () => {
      for (let i = 0; !stop; i++) {
        p.send({ type: 'publish', channel: 'crash', id: `c${i}`, data: i });
        const f = await p.next((x) => x.type === 'ack' || x.type === 'error', 10000);
        if (f.type === 'ack') acked.set(f.id, f.offset);
        else await sleep(20);
      }
    })();
    await sleep(500);
    await stack.kill('chat-history-1', 'SIGKILL');
    await sleep(500);
    await stack.start('chat-history-1');
    await sleep(500);
    stop = true;
    await loop;
    const rows = (await stack.psql("SELECT msg_id, msg_offset FROM hist_messages WHERE channel = 'crash' ORDER BY msg_offset"))
      .trim().split('\n').map((l) => l.split('|'));
    const stored = new Map(rows.map(([id, off]) => [id, Number(off)]));
    assert.equal(stored.size, rows.length, 'an id stored twice');
    for (const [id, off] of acked) assert.equal(stored.get(id), off, `acked ${id}@${off} missing`);
    const offsets = rows.map(([, off]) => Number(off));
    assert.deepEqual(offsets, Array.from({ length: offsets.length }, (_, i) => i + 1), 'offsets dense');
    await p.close();
  });

  test('PostgreSQL stopped: unavailable, never a false ack; started again: works without restarts', async () => {
    const c = await client(stack.edges[0].ws, 'pgdown');
    await subscribe(c, 'pg');
    await stack.stopPg('fast');
    const e = await c.request({ type: 'publish', channel: 'pg', id: 'x1', data: 1 }, (f) => f.type === 'ack' || f.type === 'error', 15000);
    assert.equal(e.type, 'error');
    assert.equal(e.code, 'unavailable');
    assert.equal(e.ref, 'x1');
    const h = await request('POST', `${stack.edges[1].http}/v1/channels/pg/publish`, { body: { data: 2 } });
    assert.equal(h.status, 503);
    // ephemeral traffic keeps flowing
    c.send({ type: 'publish', channel: 'pg', data: 'typing', ephemeral: true });
    assert.equal((await c.next('message')).data, 'typing');
    await stack.startPg();
    const deadline = Date.now() + 30000;
    let ack;
    while (Date.now() < deadline) {
      const f = await c.request({ type: 'publish', channel: 'pg', id: 'x1', data: 1 }, (x) => x.type === 'ack' || x.type === 'error', 15000);
      if (f.type === 'ack') { ack = f; break; }
      await sleep(250);
    }
    assert.ok(ack, 'publishing works again');
    assert.equal(ack.offset, 1);
    await c.close();
  });
});

describe('retention', { timeout: 60000 }, () => {
  let stack;
  before(async () => {
    stack = await startStack({ edges: 1, services: ['chat-history'], envFor: { 'chat-history': { RT_HISTORY_RETAIN: '10' } } });
  });
  after(() => stack?.stop());

  test('keeps the newest RT_HISTORY_RETAIN messages; an older resume starts at the oldest retained', async () => {
    const c = await client(stack.edges[0].ws, 'ret');
    for (let i = 1; i <= 30; i++) await c.request({ type: 'publish', channel: 'ret', data: i }, 'ack');
    let kept;
    const deadline = Date.now() + 20000;
    do {
      await sleep(200);
      kept = JSON.parse((await httpGet(`${stack.edges[0].http}/v1/channels/ret/messages?after=0&limit=100`)).body).messages;
    } while (kept.length > 10 && Date.now() < deadline);
    assert.deepEqual(kept.map((m) => m.offset), Array.from({ length: 10 }, (_, i) => 21 + i));
    const r = await client(stack.edges[0].ws, 'late');
    await subscribe(r, 'ret', { since: 0 });
    await expectOffsets(r, 'ret', 21, 10);
    await c.close();
    await r.close();
  });
});

describe('an edge cut off from NATS', { timeout: 60000 }, () => {
  let stack;
  before(async () => {
    const conf = path.join(os.tmpdir(), `rtsync-nats-${process.pid}.conf`);
    // the project's settings, and a client silent for ~2 s is dropped
    fs.writeFileSync(conf, `${fs.readFileSync(path.join(ROOT, 'scripts/nats.conf'), 'utf8')}\nping_interval: "1s"\nping_max: 1\n`);
    stack = await startStack({ edges: 2, services: ['chat-history'], natsArgs: ['-c', conf] });
  });
  after(() => stack?.stop({ allowExits: true }));

  test('after it reconnects, it fetches what was published meanwhile', async () => {
    const s = await client(stack.edges[1].ws, 'cutoff');
    await subscribe(s, 'probe');
    stack.signal('edge-2', 'SIGSTOP'); // NATS drops it, and the messages queued for it
    for (let i = 1; i <= 5; i++) {
      const r = await request('POST', `${stack.edges[0].http}/v1/channels/probe/publish`, { body: { data: i } });
      assert.equal(r.status, 200);
    }
    await sleep(4000);
    stack.signal('edge-2', 'SIGCONT');
    await expectOffsets(s, 'probe', 1, 5, 15000);
    await s.close();
  });
});
