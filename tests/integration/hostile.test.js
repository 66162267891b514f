// Hostile input (issue: security): a table of malicious or malformed inputs
// across /ws, /sse, the HTTP API, the token checks and the NATS subjects the
// services listen on.  Each case asserts the exact error or close code; after
// each, a normal client is still served and nothing stored has changed.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { connect as natsConnect } from 'nats';
import WebSocket from 'ws';
import fs from 'node:fs';
import path from 'node:path';
import { startStack, httpGet, ROOT } from './lib/stack.js';
import { connectWs, request, sseRaw } from './lib/clients.js';

const SECRET = 'hostile-test-secret';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

function token(claims, { secret = SECRET, header = { alg: 'HS256', typ: 'JWT' } } = {}) {
  const head = `${b64(header)}.${b64(claims)}`;
  return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);
// the subjects crdt-merge and the edges listen on for documents (proto/rtsync/v1/doc.proto)
function docSubjects() {
  const proto = fs.readFileSync(path.join(ROOT, 'proto/rtsync/v1/doc.proto'), 'utf8');
  return [...new Set([...proto.matchAll(/^\/\/\s+(rt\.doc\.[a-z.]+)/gm)].map((m) => m[1]))]
    .map((s) => (s.endsWith('.') ? `${s}ok-doc` : s));
}
const good = (sub = 'tester', extra = {}) => token({ sub, exp: now() + 3600, channels: ['ok-*', 'canary'], ...extra });

// A raw WebSocket client: handshake, then frames built by hand (masked or not).
async function rawWs(port, tok) {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  const key = crypto.randomBytes(16).toString('base64');
  sock.write(`GET /ws?token=${tok} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  let buf = Buffer.alloc(0);
  const closed = new Promise((resolve) => sock.on('close', resolve));
  sock.on('data', (d) => { buf = Buffer.concat([buf, d]); });
  sock.on('error', () => {});
  while (!buf.includes('\r\n\r\n')) await sleep(10);
  buf = buf.subarray(buf.indexOf('\r\n\r\n') + 4);
  const frame = (opcode, payload, { fin = true, mask = true, rsv = 0 } = {}) => {
    const p = Buffer.from(payload);
    const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode)];
    if (p.length < 126) head.push((mask ? 0x80 : 0) | p.length);
    else if (p.length < 65536) head.push((mask ? 0x80 : 0) | 126, p.length >> 8, p.length & 255);
    else head.push((mask ? 0x80 : 0) | 127, 0, 0, 0, 0, (p.length >>> 24) & 255, (p.length >> 16) & 255, (p.length >> 8) & 255, p.length & 255);
    const m = crypto.randomBytes(4);
    const body = mask ? Buffer.from(p.map((b, i) => b ^ m[i % 4])) : p;
    sock.write(Buffer.concat([Buffer.from(head), mask ? m : Buffer.alloc(0), body]));
  };
  // the code of the server's close frame (waits for it up to 5 s; null if none came)
  const findClose = () => {
    for (let i = 0; i + 1 < buf.length;) {
      const op = buf[i] & 15, len = buf[i + 1] & 127;
      const hdr = len === 126 ? 4 : 2;
      const n = len === 126 ? buf.readUInt16BE(i + 2) : len;
      if (i + hdr + n > buf.length) return undefined;
      if (op === 8) return buf.readUInt16BE(i + hdr);
      i += hdr + n;
    }
    return undefined;
  };
  const closeCode = async () => {
    let done = false;
    closed.then(() => (done = true));
    for (const t0 = Date.now(); Date.now() - t0 < 5000; await sleep(20)) {
      const code = findClose();
      if (code !== undefined) return code;
      if (done) break;
    }
    return findClose() ?? null;
  };
  return { sock, frame, closeCode, text: () => buf.toString('latin1') };
}

describe('hostile input', { timeout: 300000 }, () => {
  let stack, nc, edge, canaryLatest, storedRows;
  const latest = async () => JSON.parse((await httpGet(`${edge.http}/v1/channels/canary/messages?limit=1&token=${good()}`)).body).latest;
  const rows = async () => (await stack.psql('SELECT count(*) FROM hist_messages')).trim();

  before(async () => {
    stack = await startStack({
      edges: 2,
      services: ['chat-history', 'presence', 'crdt-merge'],
      env: { RT_JWT_SECRET: SECRET },
      envFor: {
        edge: { RT_RATE_LIMIT: '20', RT_RATE_WINDOW: '10s', RT_MAX_SUBSCRIPTIONS: '5', RT_HANDSHAKE_TIMEOUT: '2s',
          RT_ALLOWED_ORIGINS: 'https://app.example', RT_MAX_FRAME: '65536' },
      },
    });
    edge = stack.edges[0];
    nc = await natsConnect({ servers: stack.natsUrl });
    // the presence service answers once its view is complete (after a resync)
    for (let i = 0; i < 150; i++) {
      if ((await httpGet(`${stack.edges[0].http}/v1/channels/none/presence?token=${good()}`)).status === 200) break;
      await sleep(100);
    }
    const c = await connectWs(`${edge.ws}/ws`, { protocols: ['rt.v1', `bearer.${good('writer')}`] });
    await c.next('welcome');
    assert.equal((await c.request({ type: 'publish', channel: 'canary', data: 'before' }, 'ack')).offset, 1);
    await c.close();
    canaryLatest = await latest();
    storedRows = await rows();
  });
  after(async () => {
    await nc?.close();
    await stack?.stop({ allowExits: true });
  });

  // After every case: a normal client is served, and nothing stored has changed.
  async function stillServes() {
    for (const e of stack.edges) {
      const c = await connectWs(`${e.ws}/ws?token=${good('probe')}`);
      await c.next('welcome');
      assert.deepEqual(await c.request({ type: 'ping' }, 'pong'), { type: 'pong' });
      await c.close();
    }
    assert.equal(await latest(), canaryLatest, 'a stored message appeared');
    assert.equal(await rows(), storedRows, 'the database changed');
  }

  async function wsError(frame, code, user = 'tester') {
    const c = await connectWs(`${edge.ws}/ws?token=${good(user)}`);
    await c.next('welcome');
    c.send(frame);
    const e = await c.next('error');
    assert.equal(e.code, code, `${String(frame).slice(0, 80)} -> ${JSON.stringify(e)}`);
    await c.request({ type: 'ping' }, 'pong'); // the connection survives a bad frame
    await c.close();
  }

  const frames = [
    ['invalid JSON', '{"type": "publish", ', 'bad_request'],
    ['deeply nested JSON', '['.repeat(5000) + ']'.repeat(5000), 'bad_request'],
    ['a JSON array', '[1,2,3]', 'bad_request'],
    ['a JSON string', '"subscribe"', 'bad_request'],
    ['type of the wrong type', '{"type": ["publish"]}', 'bad_request'],
    ['unknown frame type', '{"type": "drop_table"}', 'bad_request'],
    ['missing channel', '{"type": "subscribe"}', 'bad_request'],
    ['channel with a space', '{"type": "subscribe", "channel": "a b"}', 'bad_channel'],
    ['channel with a slash', '{"type": "subscribe", "channel": "../etc"}', 'bad_channel'],
    ['channel of 129 characters', JSON.stringify({ type: 'subscribe', channel: 'x'.repeat(129) }), 'bad_channel'],
    ['channel as a number', '{"type": "subscribe", "channel": 7}', 'bad_channel'],
    ['a string with a NUL', '{"type": "subscribe", "channel": "ok-\\u0000"}', 'bad_request'],
    ['since negative', '{"type": "subscribe", "channel": "ok-a", "since": -1}', 'bad_request'],
    ['since as a string', '{"type": "subscribe", "channel": "ok-a", "since": "1"}', 'bad_request'],
    ['publish without data', '{"type": "publish", "channel": "ok-a"}', 'bad_request'],
    ['ephemeral not a boolean', '{"type": "publish", "channel": "ok-a", "data": 1, "ephemeral": 1}', 'bad_request'],
    ['event with a newline', '{"type": "publish", "channel": "ok-a", "data": 1, "event": "a\\nb"}', 'bad_request'],
    ['id of 200 characters', JSON.stringify({ type: 'publish', channel: 'ok-a', data: 1, id: 'i'.repeat(200) }), 'bad_request'],
    ['duplicate keys', '{"type": "ping", "type": "publish"}', 'bad_request'],
    ['state not an object', '{"type": "state", "channel": "ok-a", "state": "typing"}', 'bad_request'],
    ['signal without a target', '{"type": "signal", "channel": "ok-a", "data": {}}', 'bad_request'],
    ['subscribe to a forbidden channel', '{"type": "subscribe", "channel": "secret"}', 'forbidden'],
    ['publish to a forbidden channel', '{"type": "publish", "channel": "admin-only", "data": 1}', 'forbidden'],
    ['state in a channel not subscribed', '{"type": "state", "channel": "ok-a", "state": {}}', 'not_found'],
  ];
  for (const [name, frame, code] of frames) {
    test(`/ws: ${name} -> ${code}`, async () => {
      await wsError(frame, code);
      await stillServes();
    });
  }

  test('/ws: a binary frame -> bad_request', async () => {
    await wsError(Buffer.from([0x7b, 0x7d]), 'bad_request');
    await stillServes();
  });

  test('/ws: signal to a connection that is not there -> not_found', async () => {
    const c = await connectWs(`${edge.ws}/ws?token=${good('signaler')}`);
    await c.next('welcome');
    await c.request({ type: 'subscribe', channel: 'ok-rtc' }, 'subscribed');
    const e = await c.request({ type: 'signal', channel: 'ok-rtc', to: 'edge-9-9-9', data: {}, id: 'q' }, 'error');
    assert.deepEqual([e.code, e.ref], ['not_found', 'q']);
    await c.close();
    await stillServes();
  });

  test('/ws: more subscriptions than RT_MAX_SUBSCRIPTIONS -> too_large', async () => {
    const c = await connectWs(`${edge.ws}/ws?token=${good('hoarder')}`);
    await c.next('welcome');
    for (let i = 0; i < 5; i++) await c.request({ type: 'subscribe', channel: `ok-${i}` }, 'subscribed');
    assert.equal((await c.request({ type: 'subscribe', channel: 'ok-5' }, 'error')).code, 'too_large');
    await c.close();
    await stillServes();
  });

  const closes = [
    ['a frame over RT_MAX_FRAME', (w) => w.frame(1, 'x'.repeat(70000)), 1009],
    ['invalid UTF-8 in a text frame', (w) => w.frame(1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), 1007],
    ['an unmasked client frame', (w) => w.frame(1, '{"type":"ping"}', { mask: false }), 1002],
    ['reserved bits set', (w) => w.frame(1, '{"type":"ping"}', { rsv: 4 }), 1002],
    ['an unknown opcode', (w) => w.frame(3, 'x'), 1002],
    ['a control frame over 125 bytes', (w) => w.frame(9, 'p'.repeat(126)), 1002],
    ['a fragmented control frame', (w) => w.frame(9, 'p', { fin: false }), 1002],
    ['a continuation with no message', (w) => w.frame(0, 'x'), 1002],
    ['fragments adding up over RT_MAX_FRAME', (w) => { for (let i = 0; i < 3; i++) w.frame(i ? 0 : 1, 'y'.repeat(30000), { fin: false }); }, 1009],
  ];
  for (const [name, send, code] of closes) {
    test(`/ws: ${name} -> close ${code}`, async () => {
      const w = await rawWs(edge.port, good());
      send(w);
      assert.equal(await w.closeCode(), code);
      await stillServes();
    });
  }

  test('/ws: a message in fragments is reassembled', async () => {
    const w = await rawWs(edge.port, good());
    const text = '{"type":"ping"}';
    w.frame(1, text.slice(0, 5), { fin: false });
    w.frame(9, 'ping in between'); // a control frame inside a fragmented message is allowed
    w.frame(0, text.slice(5, 10), { fin: false });
    w.frame(0, text.slice(10));
    const deadline = Date.now() + 3000;
    while (!w.text().includes('"pong"') && Date.now() < deadline) await sleep(20);
    assert.ok(w.text().includes('{"type":"pong"}'));
    w.sock.destroy();
  });

  test('/ws: flooding past the rate limit -> rate_limited, then close 4008', async () => {
    const c = await connectWs(`${edge.ws}/ws?token=${good('flooder')}`);
    await c.next('welcome');
    for (let i = 0; i < 60; i++) c.send({ type: 'publish', channel: 'ok-flood', data: i, ephemeral: true });
    const limited = await c.next((f) => f.type === 'error' && f.code === 'rate_limited');
    assert.match(limited.message, /retry in \d+ ms/);
    assert.equal((await c.closed).code, 4008);
    await stillServes();
  });

  const tokens = [
    ['no token at all', null],
    ['garbage', 'not-a-token'],
    ['signed with the wrong key', token({ sub: 'x', exp: now() + 60 }, { secret: 'wrong' })],
    ['alg switched to none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'x', exp: now() + 60 })}.`],
    ['alg HS512', token({ sub: 'x', exp: now() + 60 }, { header: { alg: 'HS512' } })],
    ['alg RS256 with an HMAC signature', token({ sub: 'x', exp: now() + 60 }, { header: { alg: 'RS256' } })],
    ['expired', token({ sub: 'x', exp: now() - 10 })],
    ['without exp', token({ sub: 'x' })],
    ['without sub', token({ exp: now() + 60 })],
    ['sub not a string', token({ sub: 42, exp: now() + 60 })],
    ['a signature cut short', good().slice(0, -5)],
  ];
  for (const [name, tok] of tokens) {
    test(`token ${name}: 401 before any upgrade, on /ws, /sse and the HTTP API`, async () => {
      const q = tok === null ? '' : `?token=${encodeURIComponent(tok)}`;
      const ws = await connectWs(`${edge.ws}/ws${q}`).then(() => null, (e) => e);
      assert.equal(ws?.status, 401);
      assert.equal(JSON.parse(ws.body).error.code, 'unauthorized');
      const sse = await request('GET', `${edge.http}/sse/ok-a${q}`);
      assert.equal(sse.status, 401);
      const pub = await request('POST', `${edge.http}/v1/channels/ok-a/publish${q}`, { body: { data: 1 } });
      assert.equal(pub.status, 401);
      await stillServes();
    });
  }

  test('a token in the subprotocol list selects rt.v1; one in the rt_token cookie works too', async () => {
    const c = await connectWs(`${edge.ws}/ws`, { protocols: ['rt.v1', `bearer.${good('sp')}`] });
    assert.equal(c.protocol, 'rt.v1');
    assert.equal((await c.next('welcome')).user, 'sp');
    await c.close();
    const k = await connectWs(`${edge.ws}/ws`, { headers: { cookie: `theme=dark; rt_token=${good('cookie')}` } });
    assert.equal((await k.next('welcome')).user, 'cookie');
    await k.close();
  });

  test('a token that expires on an open connection closes it with 4001', async () => {
    const c = await connectWs(`${edge.ws}/ws?token=${token({ sub: 'brief', exp: now() + 2, channels: ['*'] })}`);
    await c.next('welcome');
    assert.equal((await c.closed).code, 4001);
  });

  test('a browser upgrade from an Origin not allowed -> 403', async () => {
    const e = await connectWs(`${edge.ws}/ws?token=${good()}`, { headers: { origin: 'https://evil.example' } }).then(() => null, (x) => x);
    assert.equal(e?.status, 403);
    const ok = await connectWs(`${edge.ws}/ws?token=${good()}`, { headers: { origin: 'https://app.example' } });
    await ok.close();
  });

  test('a slow-header client is dropped within RT_HANDSHAKE_TIMEOUT', async () => {
    const sock = net.connect(edge.port, '127.0.0.1');
    sock.on('error', () => {});
    const t0 = Date.now();
    const closed = new Promise((r) => sock.on('close', r));
    const drip = setInterval(() => sock.write('G'), 300);
    await closed;
    clearInterval(drip);
    assert.ok(Date.now() - t0 < 4000, `held ${Date.now() - t0} ms`);
    await stillServes();
  });

  const http = [
    ['SSE on a forbidden channel', () => request('GET', `${edge.http}/sse/secret?token=${good()}`), 403, 'forbidden'],
    ['SSE on a bad channel name', () => request('GET', `${edge.http}/sse/a%20b?token=${good()}`), 400, 'bad_channel'],
    ['SSE with a bad Last-Event-ID', () => request('GET', `${edge.http}/sse/ok-a?token=${good()}`, { headers: { 'last-event-id': '1; DROP' } }), 400, 'bad_request'],
    ['publish with a broken body', () => request('POST', `${edge.http}/v1/channels/ok-a/publish?token=${good()}`, { body: '{"data": [' }), 400, 'bad_request'],
    ['publish with a body of the wrong shape', () => request('POST', `${edge.http}/v1/channels/ok-a/publish?token=${good()}`, { body: '[1]' }), 400, 'bad_request'],
    ['publish with data missing', () => request('POST', `${edge.http}/v1/channels/ok-a/publish?token=${good()}`, { body: { event: 'x' } }), 400, 'bad_request'],
    ['publish over RT_MAX_FRAME', () => request('POST', `${edge.http}/v1/channels/ok-a/publish?token=${good()}`, { body: { data: 'z'.repeat(70000) } }), 413, 'too_large'],
    ['publish to a forbidden channel', () => request('POST', `${edge.http}/v1/channels/secret/publish?token=${good()}`, { body: { data: 1 } }), 403, 'forbidden'],
    ['publish to a bad channel name', () => request('POST', `${edge.http}/v1/channels/a$b/publish?token=${good()}`, { body: { data: 1 } }), 400, 'bad_channel'],
    ['history with after and before', () => request('GET', `${edge.http}/v1/channels/ok-a/messages?after=1&before=3&token=${good()}`), 400, 'bad_request'],
    ['history with limit 0', () => request('GET', `${edge.http}/v1/channels/ok-a/messages?limit=0&token=${good()}`), 400, 'bad_request'],
    ['history of a forbidden channel', () => request('GET', `${edge.http}/v1/channels/secret/messages?token=${good()}`), 403, 'forbidden'],
    ['presence of a forbidden channel', () => request('GET', `${edge.http}/v1/channels/secret/presence?token=${good()}`), 403, 'forbidden'],
    ['an unknown route', () => request('GET', `${edge.http}/v1/../../etc/passwd`), 404, 'not_found'],
  ];
  for (const [name, run, status, code] of http) {
    test(`HTTP: ${name} -> ${status} ${code}`, async () => {
      const r = await run();
      assert.equal(r.status, status, r.text);
      assert.equal(r.json().error.code, code);
      await stillServes();
    });
  }

  test('HTTP: publishing past the rate limit -> 429 with Retry-After', async () => {
    let r;
    for (let i = 0; i < 25; i++) {
      r = await request('POST', `${edge.http}/v1/channels/ok-http/publish?token=${good('httpflood')}`, { body: { data: i, ephemeral: true } });
      if (r.status === 429) break;
    }
    assert.equal(r.status, 429);
    assert.equal(r.json().error.code, 'rate_limited');
    assert.ok(Number(r.headers['retry-after']) >= 1);
  });

  // /yjs: y-websocket messages are binary, lib0-encoded; a malformed one closes only its sender.
  const varUint = (n) => { const out = []; while (n > 127) { out.push(128 | (n & 127)); n = Math.floor(n / 128); } out.push(n); return out; };
  const bytes = (...parts) => Buffer.from(parts.flat());
  const yjsCases = [
    ['a sync update that is not a Yjs update', bytes(0, 2, varUint(6), [1, 5, 200, 200, 200, 200]), 1008],
    ['sync step 2 with a truncated update', bytes(0, 1, varUint(40), [1, 1]), 1008],
    ['an unknown sync message type', bytes(0, 9, 0), 1008],
    ['awareness with broken JSON', bytes(1, varUint(7), [1, 5, 1, 3, 123, 34, 120]), 1008],
    ['an unknown outer message type', bytes(42, 0), 1008],
    ['an empty message', bytes(), 1008],
  ];
  for (const [name, msg, code] of yjsCases) {
    test(`/yjs: ${name} -> close ${code}, nothing stored`, async () => {
      const ws = new WebSocket(`${edge.ws}/yjs/ok-doc?token=${good()}`);
      const closed = new Promise((r) => ws.on('close', (c) => r(c)));
      ws.on('error', () => {});
      await new Promise((r) => ws.on('open', r));
      ws.send(msg);
      assert.equal(await closed, code);
      const doc = await request('GET', `${edge.http}/v1/docs/ok-doc?token=${good()}`);
      assert.equal(doc.status, 404, 'a document was stored');
      await stillServes();
    });
  }

  test('/yjs: a text frame -> close 1003', async () => {
    const ws = new WebSocket(`${edge.ws}/yjs/ok-doc?token=${good()}`);
    const closed = new Promise((r) => ws.on('close', (c) => r(c)));
    ws.on('error', () => {});
    await new Promise((r) => ws.on('open', r));
    ws.send('{"type":"ping"}');
    assert.equal(await closed, 1003);
  });

  const yjsHandshakes = [
    ['no token', `/yjs/ok-doc`, 401],
    ['a document outside the claims', `/yjs/secret-doc?token=${good()}`, 403],
    ['a document name that is not allowed', `/yjs/a%20b?token=${good()}`, 400],
  ];
  for (const [name, pathq, status] of yjsHandshakes) {
    test(`/yjs: ${name} -> ${status} before the upgrade`, async () => {
      const e = await connectWs(`${edge.ws}${pathq}`).then(() => null, (x) => x);
      assert.equal(e?.status, status);
      const doc = await request('GET', `${edge.http}${pathq.replace('/yjs/', '/v1/docs/')}`);
      assert.equal(doc.status, status);
    });
  }

  // Garbage and truncated protobuf on every subject a service listens to.
  const valid = Buffer.from('0a06636861742d31', 'hex'); // field 1 = "chat-1": valid start of many messages
  const garbage = [
    ['random bytes', crypto.randomBytes(64)],
    ['a truncated message', valid.subarray(0, 4)],
    ['a length beyond the buffer', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x41])],
    ['a wrong wire type', Buffer.from([0x0b, 0x01])],
  ];
  const subjects = ['rt.hist.publish', 'rt.hist.publish_batch', 'rt.hist.query', 'rt.pres.updates', 'rt.pres.heartbeat', 'rt.pres.query',
    'rt.pres.signal', 'rt.pres.resync', 'rt.pres.peer', 'rt.ch.canary', ...docSubjects()];
  for (const subject of subjects) {
    test(`NATS ${subject}: garbage and truncated protobuf are dropped, the service keeps serving`, async () => {
      for (const [, bytes] of garbage) {
        if (subject.startsWith('rt.hist') || subject === 'rt.pres.query' || subject === 'rt.pres.signal') {
          // requests: a refusal, or no answer, but never a crash
          await nc.request(subject, bytes, { timeout: 1000 }).catch(() => null);
        } else {
          nc.publish(subject, bytes);
        }
      }
      await nc.flush();
      await sleep(100);
      await stillServes();
      for (const s of stack.names) assert.ok(stack.isRunning(s), `${s} died`);
      const r = await request('GET', `${edge.http}/v1/channels/canary/presence?token=${good()}`);
      assert.equal(r.status, 200);
    });
  }
});
