// The edge's live path (issue: foundation): real nats-server, two edges,
// npm `ws` clients and raw SSE readers.  Messages here are ephemeral: the
// durable path (offsets, history) has its own tests with chat-history.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import { startStack, httpGet } from './lib/stack.js';
import { connectWs, sseRaw, request } from './lib/clients.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function subscribed(url, channel, opts) {
  const c = await connectWs(`${url}/ws${opts?.query ?? ''}`, opts);
  const welcome = await c.next('welcome');
  await c.request({ type: 'subscribe', channel }, { type: 'subscribed', channel });
  c.welcome = welcome;
  return c;
}

describe('edge', { timeout: 120000 }, () => {
  let stack;
  before(async () => {
    stack = await startStack({ edges: 2, envFor: { edge: { RT_EDGE_THREADS: '2', RT_HEARTBEAT: '1s', RT_RATE_LIMIT: '1000000' } } });
  });
  after(() => stack?.stop());

  test('health, readiness and metrics', async () => {
    for (const e of stack.edges) {
      assert.equal((await httpGet(`${e.http}/healthz`)).status, 200);
      assert.equal((await httpGet(`${e.http}/readyz`)).status, 200);
    }
    const m = await httpGet(`${stack.edges[0].http}/metrics`);
    assert.equal(m.status, 200);
    for (const name of ['rtsync_edge_connections', 'rtsync_edge_messages_in_total', 'rtsync_edge_messages_out_total',
      'rtsync_edge_drops_total', 'rtsync_edge_delivery_latency_seconds_bucket', 'rtsync_edge_nats_connected{edge="edge-1"} 1']) {
      assert.ok(m.body.includes(name), `metrics lack ${name}`);
    }
  });

  test('welcome frame and subprotocol negotiation', async () => {
    const c = await connectWs(`${stack.edges[0].ws}/ws?user=alice`, { protocols: ['rt.v1'] });
    assert.equal(c.protocol, 'rt.v1');
    const w = await c.next('welcome');
    assert.equal(w.user, 'alice');
    assert.equal(w.edge, 'edge-1');
    assert.match(w.conn, /^edge-1-\d+-\d+$/);
    const anon = await connectWs(`${stack.edges[1].ws}/ws`);
    assert.match((await anon.next('welcome')).user, /^anon-/);
    await c.close();
    await anon.close();
  });

  test('cross-edge delivery in order, to clients on every thread of both edges', async () => {
    const subs = [];
    for (let i = 0; i < 12; i++) subs.push(await subscribed(stack.edges[i % 2].ws, 'order.test'));
    const threads = new Set(subs.map((s) => s.welcome.conn.replace(/-\d+$/, '')));
    assert.ok(threads.size >= 3, `clients spread over edge threads: ${[...threads]}`);
    // the publisher is a subscriber too: its thread delivers to it, and to its
    // other clients, without NATS (whose echo is off), and exactly once
    const pub = await subscribed(stack.edges[0].ws, 'order.test', { query: '?user=pub' });
    const N = 300;
    for (let i = 0; i < N; i++) pub.send({ type: 'publish', channel: 'order.test', data: { i }, ephemeral: true });
    for (const s of [pub, ...subs]) {
      for (let i = 0; i < N; i++) {
        const m = await s.next('message');
        assert.deepEqual(m.data, { i });
        assert.equal(m.from, 'pub');
        assert.equal(m.channel, 'order.test');
        assert.equal(m.event, 'message');
        assert.equal(typeof m.ts, 'number');
        assert.equal(m.offset, undefined); // ephemeral: no offset
      }
    }
    await sleep(200);
    for (const s of [pub, ...subs]) assert.deepEqual(s.queue.filter((f) => f.type === 'message'), [], 'no duplicates');
    await Promise.all([...subs, pub].map((c) => c.close()));
  });

  test('HTTP publish reaches WebSocket subscribers of the other edge', async () => {
    const s = await subscribed(stack.edges[1].ws, 'http.pub');
    const r = await request('POST', `${stack.edges[0].http}/v1/channels/http.pub/publish?user=worker`, {
      body: { event: 'token', data: 'hi', ephemeral: true },
    });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), {});
    const m = await s.next('message');
    assert.equal(m.event, 'token');
    assert.equal(m.data, 'hi');
    assert.equal(m.from, 'worker');
    await s.close();
  });

  test('HTTP publish errors', async () => {
    const url = (ch) => `${stack.edges[0].http}/v1/channels/${ch}/publish`;
    let r = await request('POST', url('bad$chan'), { body: { data: 1, ephemeral: true } });
    assert.equal(r.status, 400);
    assert.equal(r.json().error.code, 'bad_channel');
    r = await request('POST', url('c'), { body: '{"data": ' });
    assert.equal(r.status, 400);
    assert.equal(r.json().error.code, 'bad_request');
    r = await request('POST', url('c'), { body: { ephemeral: true } });
    assert.equal(r.status, 400);
    r = await request('POST', url('c'), { body: { data: 'x'.repeat(70000), ephemeral: true } });
    assert.equal(r.status, 413);
    assert.equal(r.json().error.code, 'too_large');
    r = await request('GET', url('c'));
    assert.equal(r.status, 405);
    // durable publish with no chat-history running: never a false acknowledgement
    r = await request('POST', url('c'), { body: { data: 1 } });
    assert.equal(r.status, 503);
    assert.equal(r.json().error.code, 'unavailable');
    r = await request('GET', `${stack.edges[0].http}/nope`);
    assert.equal(r.status, 404);
  });

  test('SSE format byte by byte, heartbeats', async () => {
    const sse = await sseRaw(`${stack.edges[0].http}/sse/sse.fmt`);
    assert.equal(sse.status, 200);
    assert.equal(sse.headers['content-type'], 'text/event-stream');
    assert.equal(sse.headers['cache-control'], 'no-cache');
    await sse.waitFor('retry: 3000\n\n');
    const pub = (body) => request('POST', `${stack.edges[1].http}/v1/channels/sse.fmt/publish`, { body: { ephemeral: true, ...body } });
    assert.equal((await pub({ data: 'plain' })).status, 200);
    await pub({ event: 'token', data: 'two\nlines' });
    await pub({ event: 'done', data: { a: [1, 2], s: 'x' } });
    const want =
      'data: plain\n\n' +
      'event: token\ndata: two\ndata: lines\n\n' +
      'event: done\ndata: {"a":[1,2],"s":"x"}\n\n';
    const text = await sse.waitFor((t) => t.replace(/: hb\n\n/g, '').includes(want), 5000);
    assert.ok(text.startsWith('retry: 3000\n\n'), JSON.stringify(text.slice(0, 40)));
    assert.equal(text.replace(/: hb\n\n/g, ''), 'retry: 3000\n\n' + want);
    await sse.waitFor(': hb\n\n', 3000); // RT_HEARTBEAT=1s
    sse.close();
  });

  test('SSE refuses a bad channel name', async () => {
    const r = await request('GET', `${stack.edges[0].http}/sse/a%20b`);
    assert.equal(r.status, 400);
    assert.equal(r.json().error.code, 'bad_channel');
  });

  test('error frames for malformed input; the connection survives', async () => {
    const c = await connectWs(`${stack.edges[0].ws}/ws`);
    await c.next('welcome');
    const cases = [
      ['{not json', 'bad_request'],
      [JSON.stringify([1, 2]), 'bad_request'],
      [JSON.stringify({ type: 5 }), 'bad_request'],
      [JSON.stringify({ type: 'teleport' }), 'bad_request'],
      [JSON.stringify({ type: 'subscribe', channel: 'no spaces' }), 'bad_channel'],
      [JSON.stringify({ type: 'subscribe', channel: 'x'.repeat(129) }), 'bad_channel'],
      [JSON.stringify({ type: 'subscribe', channel: 42 }), 'bad_channel'],
      [JSON.stringify({ type: 'publish', channel: 'c', ephemeral: 'yes', data: 1 }), 'bad_request'],
      [JSON.stringify({ type: 'publish', channel: 'c' }), 'bad_request'],
      [Buffer.from([0, 1, 2, 3]), 'bad_request'],
    ];
    for (const [frame, code] of cases) {
      c.send(frame);
      const e = await c.next('error');
      assert.equal(e.code, code, `for ${frame}`);
      assert.equal(typeof e.message, 'string');
    }
    c.send({ type: 'publish', channel: 'c', id: 'req-7', data: 1 }); // durable, no chat-history
    const e = await c.next('error');
    assert.equal(e.code, 'unavailable');
    assert.equal(e.ref, 'req-7');
    assert.deepEqual(await c.request({ type: 'ping' }, 'pong'), { type: 'pong' });
    await c.close();
  });

  test('a frame over RT_MAX_FRAME closes with 1009', async () => {
    const c = await connectWs(`${stack.edges[1].ws}/ws`);
    await c.next('welcome');
    c.send(JSON.stringify({ type: 'publish', channel: 'c', data: 'x'.repeat(70000) }));
    const info = await c.closed;
    assert.equal(info.code, 1009);
  });

  test('the edge holds a NATS subscription only while a local client is subscribed', async () => {
    const subjects = async () => {
      const r = await httpGet(`${stack.nats.monitorUrl}/connz?subs=1`);
      return JSON.parse(r.body).connections.flatMap((c) => c.subscriptions_list || []);
    };
    assert.ok(!(await subjects()).includes('rt.ch.only~while'));
    const c = await subscribed(stack.edges[0].ws, 'only.while');
    assert.equal((await subjects()).filter((s) => s === 'rt.ch.only~while').length, 1);
    await c.request({ type: 'unsubscribe', channel: 'only.while' }, 'unsubscribed');
    await sleep(100);
    assert.ok(!(await subjects()).includes('rt.ch.only~while'));
    await c.close();
  });

  test('pings are spread over the heartbeat interval, not written together', async () => {
    const conns = await Promise.all(Array.from({ length: 50 }, () => connectWs(`${stack.edges[0].ws}/ws`)));
    const times = await Promise.all(conns.map((c) => new Promise((r) => c.ws.once('ping', () => r(performance.now())))));
    times.sort((a, b) => a - b);
    let bursts = 1;
    for (let i = 1; i < times.length; i++) if (times[i] - times[i - 1] > 15) bursts++;
    // every connection pinged within one interval (1 s), in the slots of the interval's ticks
    assert.ok(times.at(-1) - times[0] < 1300, `first pings spread over ${times.at(-1) - times[0]} ms`);
    assert.ok(bursts >= 8, `50 connections were pinged in ${bursts} bursts`);
    await Promise.all(conns.map((c) => c.close()));
  });

  test('server pings; a silent client is dropped after two heartbeats', async () => {
    const c = await connectWs(`${stack.edges[0].ws}/ws`);
    const pinged = new Promise((r) => c.ws.once('ping', r));
    await pinged;
    await c.close();
    // a raw client that completes the handshake and then never answers
    const sock = net.connect(stack.edges[0].port, '127.0.0.1');
    const key = crypto.randomBytes(16).toString('base64');
    sock.write(`GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    const t0 = Date.now();
    await new Promise((resolve) => sock.on('close', resolve).on('error', () => {}).resume());
    const ms = Date.now() - t0;
    assert.ok(ms >= 1500 && ms < 6000, `dropped after ${ms} ms`);
  });
});

// Both ways of writing sockets: batches of io_uring sends (the default) and one
// writev per socket through h2o (RT_EDGE_IO_URING=0, or a kernel without io_uring).
// A slow consumer makes sends come back partial or refused, which h2o finishes.
for (const uring of ['1', '0']) {
  describe(`edge: slow consumers (RT_EDGE_IO_URING=${uring})`, () => {
    let stack;
    before(async () => {
      stack = await startStack({
        edges: 1,
        envFor: { edge: { RT_SEND_QUEUE: '256KiB', RT_EDGE_THREADS: '1', RT_RATE_LIMIT: '1000000', RT_EDGE_IO_URING: uring } },
      });
    });
    after(() => stack?.stop());

    test('a client over its send queue is closed with 4008; others keep receiving', { timeout: 60000 }, async (t) => {
      const slow = await subscribed(stack.edges[0].ws, 'flood');
      const fast = await subscribed(stack.edges[0].ws, 'flood');
      slow.ws._socket.pause(); // stop reading: the edge's queue for it grows
      const pub = await connectWs(`${stack.edges[0].ws}/ws`);
      await pub.next('welcome');
      // enough to fill the kernel's socket buffers (several MB on loopback) and then the queue
      const N = 4000;
      const pad = 'p'.repeat(5000);
      for (let i = 0; i < N; i += 50) {
        for (let j = i; j < i + 50; j++) pub.send({ type: 'publish', channel: 'flood', data: { i: j, pad }, ephemeral: true });
        for (let j = i; j < i + 50; j++) assert.equal((await fast.next('message', 10000)).data.i, j);
      }
      slow.ws._socket.resume();
      const info = await slow.closed;
      assert.equal(info.code, 4008);
      const got = slow.all.filter((f) => f.type === 'message').length;
      assert.ok(got < N, `slow consumer got ${got} of ${N} before its close`);
      const m = await httpGet(`${stack.edges[0].http}/metrics`);
      assert.match(m.body, /rtsync_edge_drops_total\{edge="edge-1"\} [1-9]/);
      assert.match(m.body, /rtsync_edge_socket_writes_total\{edge="edge-1"\} [1-9]/);
      const batches = Number(/rtsync_edge_socket_write_batches_total\{edge="edge-1"\} (\d+)/.exec(m.body)[1]);
      if (uring === '0') assert.equal(batches, 0);
      else if (/io_uring_unavailable/.test(stack.logs('edge-1'))) t.diagnostic('this kernel refuses io_uring: the edge wrote through h2o');
      else assert.ok(batches > 0, 'the writes went out in io_uring batches');
      await fast.close();
      await pub.close();
    });
  });
}

describe('edge: drain and NATS loss', { timeout: 60000 }, () => {
  let stack;
  before(async () => {
    stack = await startStack({ edges: 2 });
  });
  after(() => stack?.stop({ allowExits: true }));

  test('readyz follows the NATS connection', async () => {
    await stack.kill('nats', 'SIGKILL');
    const deadline = Date.now() + 5000;
    let status;
    while (Date.now() < deadline && (status = (await httpGet(`${stack.edges[1].http}/readyz`)).status) === 200) await sleep(50);
    assert.equal(status, 503);
    await stack.start('nats');
    for (const e of stack.edges) await stack.waitReady(`${e.http}/readyz`, 10000);
    // and channels work again afterwards
    const s = await subscribed(stack.edges[1].ws, 'after.nats');
    const r = await request('POST', `${stack.edges[1].http}/v1/channels/after.nats/publish`, { body: { data: 1, ephemeral: true } });
    assert.equal(r.status, 200);
    assert.equal((await s.next('message')).data, 1);
    await s.close();
  });

  test('SIGTERM drains: WebSockets close with 1001, SSE streams end, the process exits', async () => {
    const clients = [];
    for (let i = 0; i < 5; i++) clients.push(await subscribed(stack.edges[0].ws, 'drain'));
    const sse = await sseRaw(`${stack.edges[0].http}/sse/drain`);
    await sse.waitFor('retry: 3000');
    const t0 = Date.now();
    const exit = await stack.kill('edge-1', 'SIGTERM');
    assert.ok(Date.now() - t0 < 10000);
    assert.equal(exit.code, 0);
    for (const c of clients) assert.equal((await c.closed).code, 1001);
    await sse.ended;
  });
});
