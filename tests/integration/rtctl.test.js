// rtctl (issue 11) against the real local stack: every subcommand, --help,
// errors from the server, exit codes, a WebSocket and an SSE subscription
// that survive their edge being SIGKILLed and restarted without loss or
// duplicates, and tokens minted by `rtctl token` (when the edge has auth).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import path from 'node:path';
import { startStack, httpGet, ROOT } from './lib/stack.js';
import { request } from './lib/clients.js';

const BIN_DIR = process.env.TEST_BIN_DIR || path.join(ROOT, 'build/bin');
const RTCTL = path.join(BIN_DIR, 'rtctl');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// rtctl's environment: the caller's, without RT_* (a stray RT_TOKEN would change the results)
function cleanEnv(extra = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RT_')));
  return { ...env, ...extra };
}

/** Runs rtctl to completion → {code, stdout, stderr, lines (stdout JSON lines parsed)}. */
function rtctl(args, { input, env, timeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(RTCTL, args, { env: cleanEnv(env), stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => err.push(c));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out);
      const text = stdout.toString();
      let lines = null;
      try {
        lines = text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      } catch {
        /* not JSON lines (help text, a token, binary) */
      }
      resolve({ code, signal, stdout: text, raw: stdout, stderr: Buffer.concat(err).toString(), lines });
    });
    if (input !== undefined) {
      child.stdin.on('error', () => {}); // rtctl may exit before reading it all
      child.stdin.end(input);
    }
  });
}

/** A long-running rtctl (sub): parsed stdout lines as they come, stderr text, and its exit. */
function rtctlStream(args, { env } = {}) {
  const child = spawn(RTCTL, args, { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const s = { child, lines: [], stderr: '', exit: null };
  let partial = '';
  child.stdout.on('data', (c) => {
    partial += c.toString();
    const parts = partial.split('\n');
    partial = parts.pop();
    for (const l of parts) if (l) s.lines.push(JSON.parse(l));
  });
  child.stderr.on('data', (c) => (s.stderr += c.toString()));
  s.exited = new Promise((resolve) => child.on('close', (code, signal) => resolve((s.exit = { code, signal }))));
  s.messages = () => s.lines.filter((l) => l.type === 'message');
  s.waitFor = async (pred, timeoutMs = 20000, what = 'lines') => {
    const deadline = Date.now() + timeoutMs;
    while (!pred(s)) {
      if (s.exit) throw new Error(`rtctl exited (${JSON.stringify(s.exit)}) waiting for ${what}; stderr: ${s.stderr}`);
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}; got ${JSON.stringify(s.lines.slice(-5))}; stderr: ${s.stderr}`);
      await sleep(20);
    }
  };
  s.stop = async () => {
    if (!s.exit) child.kill('SIGINT');
    return s.exited;
  };
  return s;
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('rtctl', { timeout: 180000 }, () => {
  let stack;
  let e1;
  let e2;
  before(async () => {
    stack = await startStack({ edges: 2, services: ['chat-history', 'presence'] });
    e1 = stack.edges[0].http;
    e2 = stack.edges[1].http;
    // presence answers once it has heard from every edge (a few heartbeats after it starts)
    const deadline = Date.now() + 30000;
    while ((await httpGet(`${e1}/v1/channels/probe/presence`)).status !== 200) {
      if (Date.now() > deadline) throw new Error('presence not available after 30 s');
      await sleep(200);
    }
  });
  after(() => stack?.stop({ allowExits: true }));

  test('--help explains rtctl and every subcommand; bad usage exits 2', async () => {
    const top = await rtctl(['--help']);
    assert.equal(top.code, 0);
    for (const cmd of ['health', 'sub', 'pub', 'history', 'token', 'doc']) {
      assert.match(top.stdout, new RegExp(`\\n  ${cmd} `), `${cmd} listed`);
      const h = await rtctl([cmd, '--help']);
      assert.equal(h.code, 0, `${cmd} --help`);
      assert.match(h.stdout, new RegExp(`^Usage: rtctl ${cmd} `));
    }
    assert.match((await rtctl(['sub', '--help'])).stdout, /--token JWT/);
    assert.equal((await rtctl([])).code, 2);
    assert.equal((await rtctl(['frobnicate'])).code, 2);
    assert.equal((await rtctl(['pub', e1])).code, 2);
    assert.equal((await rtctl(['history', e1, 'c', '--after', '1', '--before', '5'])).code, 2);
    const bad = await rtctl(['sub', e1, 'c', '--since', 'x']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--since/);
  });

  test('health: one line per edge; exit 1 when one is not ready', async () => {
    const ok = await rtctl(['health', e1, e2]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.lines.length, 2);
    for (const [i, l] of ok.lines.entries()) {
      assert.equal(l.url, [e1, e2][i]);
      assert.equal(l.healthz, 200);
      assert.equal(l.readyz, 200);
      assert.equal(l.ready, true);
      assert.equal(l.nats_connected, 1);
      for (const k of ['connections', 'sse_streams', 'messages_in', 'messages_out', 'drops']) assert.equal(typeof l[k], 'number', k);
    }
    const down = await rtctl(['health', e1, 'http://127.0.0.1:1']);
    assert.equal(down.code, 1);
    assert.equal(down.lines[0].ready, true);
    assert.match(down.lines[1].error, /refused/);
  });

  test('pub: argument, JSON, event, idempotency key, ephemeral, stdin lines; history pages', async () => {
    let r = await rtctl(['pub', e1, 'ph', 'hello', '--user', 'ann']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.lines, [{ offset: 1 }]);
    r = await rtctl(['pub', e2, 'ph', '{"n":2}', '--event', 'token', '--id', 'k2']);
    assert.deepEqual(r.lines, [{ offset: 2 }]);
    r = await rtctl(['pub', e1, 'ph', '{"n":2}', '--event', 'token', '--id', 'k2']);
    assert.deepEqual(r.lines, [{ offset: 2 }], 'a repeated id returns the first offset');
    r = await rtctl(['pub', e1, 'ph', 'typing', '--ephemeral']);
    assert.deepEqual(r.lines, [{}]);
    r = await rtctl(['pub', e1, 'ph', '42', '--string']);
    assert.deepEqual(r.lines, [{ offset: 3 }]);
    r = await rtctl(['pub', e2, 'ph', '--id', 'batch'], { input: 'one\n[1,2]\n"three"\r\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.lines, [{ offset: 4 }, { offset: 5 }, { offset: 6 }]);
    r = await rtctl(['pub', e2, 'ph', '-', '--id', 'batch'], { input: 'one\n' });
    assert.deepEqual(r.lines, [{ offset: 4 }], 'stdin ids are ID-n, so a resent batch is not stored twice');

    const h = await rtctl(['history', e1, 'ph']);
    assert.equal(h.code, 0, h.stderr);
    assert.deepEqual(h.lines.map((m) => m.offset), range(1, 6));
    assert.deepEqual(h.lines.map((m) => m.data), ['hello', { n: 2 }, '42', 'one', [1, 2], 'three']);
    assert.equal(h.lines[0].from, 'ann');
    assert.equal(h.lines[1].event, 'token');
    assert.equal(h.lines[1].id, 'k2');
    assert.equal(h.lines[3].id, 'batch-1');
    assert.deepEqual((await rtctl(['history', e2, 'ph', '--after', '2', '--limit', '2'])).lines.map((m) => m.offset), [3, 4]);
    assert.deepEqual((await rtctl(['history', e2, 'ph', '--before', '5', '--limit', '3'])).lines.map((m) => m.offset), [2, 3, 4]);
    assert.deepEqual((await rtctl(['history', e2, 'empty-channel'])).lines, []);
  });

  test('errors from the server are printed as they are, with a non-zero exit', async () => {
    let r = await rtctl(['pub', e1, 'bad channel!', 'x']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /HTTP 400 bad_channel: /);
    r = await rtctl(['history', e1, 'ph', '--limit', '5000']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /HTTP 400 bad_request: /);
    r = await rtctl(['sub', e1, 'bad channel!']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /server error bad_channel: /);
    assert.equal(r.lines.at(-1).type, 'error');
    r = await rtctl(['sub', e1, 'bad channel!', '--sse']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /HTTP 400 bad_channel: /);
    r = await rtctl(['pub', 'http://127.0.0.1:1', 'c', 'x', '--timeout', '300ms']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refused/);
  });

  test('sub over /ws: welcome, subscribed, since, presence snapshot, join, messages in order', async () => {
    for (let i = 1; i <= 3; i++) await rtctl(['pub', e1, 'ws1', `m${i}`]);
    const s = rtctlStream(['sub', e2, 'ws1', '--since', '1', '--presence', '--user', 'watcher']);
    await s.waitFor((x) => x.messages().length >= 2, 20000, 'the replay');
    assert.equal(s.lines[0].type, 'welcome');
    assert.equal(s.lines[0].user, 'watcher');
    assert.deepEqual(s.lines.find((l) => l.type === 'subscribed'), { type: 'subscribed', channel: 'ws1', offset: 3 });
    await s.waitFor((x) => x.lines.some((l) => l.type === 'presence'), 10000, 'the presence snapshot');
    const other = rtctlStream(['sub', e1, 'ws1', '--presence', '--user', 'other']);
    await s.waitFor((x) => x.lines.some((l) => l.type === 'join' && l.user === 'other'), 10000, 'a join');
    await rtctl(['pub', e1, 'ws1', '{"live":true}']);
    await s.waitFor((x) => x.messages().length >= 3, 10000, 'the live message');
    assert.deepEqual(s.messages().map((m) => [m.offset, m.data]), [[2, 'm2'], [3, 'm3'], [4, { live: true }]]);
    await other.stop();
    assert.deepEqual(await s.stop(), { code: 0, signal: null }, 'SIGINT ends a subscription with 0');
    const counted = await rtctl(['sub', e1, 'ws1', '--since', '0', '--count', '4']);
    assert.equal(counted.code, 0, counted.stderr);
    assert.deepEqual(counted.lines.filter((l) => l.type === 'message').map((m) => m.offset), [1, 2, 3, 4]);
  });

  // Publishes `from..to` on `edge` with rtctl, checking each ack.
  async function publishRange(edge, channel, from, to) {
    for (let i = from; i <= to; i++) {
      const r = await rtctl(['pub', edge, channel, `t${i}`, '--event', 'token', '--id', `t${i}`]);
      assert.deepEqual(r.lines, [{ offset: i }], r.stderr);
    }
  }

  for (const sse of [false, true]) {
    const mode = sse ? 'SSE (Last-Event-ID)' : 'WebSocket (since)';
    test(`sub over ${mode}: the edge SIGKILLed and restarted on its port, then drained and restarted: resumes without loss or duplicates`, async () => {
      const ch = sse ? 'drop-sse' : 'drop-ws';
      const s = rtctlStream(['sub', e1, ch, ...(sse ? ['--sse'] : [])]);
      if (!sse) await s.waitFor((x) => x.lines.some((l) => l.type === 'subscribed'), 10000, 'subscribed');
      else await sleep(300); // the stream is open once the edge answered 200; nothing to see before a message
      await publishRange(e2, ch, 1, 5);
      await s.waitFor((x) => x.messages().length >= 5, 10000, 'messages 1..5');
      await stack.kill('edge-1', 'SIGKILL');
      await publishRange(e2, ch, 6, 12); // while rtctl's edge is down
      await sleep(300);
      await stack.start('edge-1'); // same port
      await publishRange(e2, ch, 13, 15);
      await s.waitFor((x) => x.messages().length >= 15, 30000, 'messages 1..15');
      await sleep(300); // nothing more may come
      const got = s.messages();
      assert.deepEqual(got.map((m) => m.offset), range(1, 15));
      assert.deepEqual(got.map((m) => m.data), range(1, 15).map((i) => `t${i}`));
      assert.ok(got.every((m) => m.event === 'token' && m.channel === ch));
      assert.match(s.stderr, /reconnecting in \d+ ms/);
      assert.match(s.stderr, sse ? /Last-Event-ID: 5\n/ : /, since 5\n/);
      // a graceful restart (drain: close 1001, or the end of the SSE stream) resumes the same way
      await stack.restart('edge-1');
      await publishRange(e2, ch, 16, 18);
      await s.waitFor((x) => x.messages().length >= 18, 30000, 'messages 16..18');
      await sleep(300);
      assert.deepEqual(s.messages().map((m) => m.offset), range(1, 18));
      if (!sse) assert.match(s.stderr, /closed by the edge: 1001 /);
      assert.equal((await s.stop()).code, 0);
    });
  }

  test('sub --sse prints events (ephemeral ones without offset) and --since replays', async () => {
    await rtctl(['pub', e1, 'sse1', 'a']);
    await rtctl(['pub', e1, 'sse1', '{"b":[1]}', '--event', 'done']);
    const s = rtctlStream(['sub', e2, 'sse1', '--sse', '--since', '0']);
    await s.waitFor((x) => x.lines.length >= 2, 10000, 'the replay');
    await rtctl(['pub', e1, 'sse1', 'line1\nline2', '--ephemeral']);
    await s.waitFor((x) => x.lines.length >= 3, 10000, 'the ephemeral message');
    assert.deepEqual(s.lines, [
      { type: 'message', channel: 'sse1', offset: 1, event: 'message', data: 'a' },
      { type: 'message', channel: 'sse1', offset: 2, event: 'done', data: '{"b":[1]}' },
      { type: 'message', channel: 'sse1', event: 'message', data: 'line1\nline2' },
    ]);
    assert.equal((await s.stop()).code, 0);
  });
});

// --- documents: only when the edge answers /v1/docs --------------------------------

describe('rtctl doc with documents', { timeout: 120000 }, () => {
  let stack;
  let edge;
  before(async () => {
    stack = await startStack({ edges: 1, services: ['crdt-merge'] });
    edge = stack.edges[0];
  });
  after(() => stack?.stop({ allowExits: true }));

  test('doc: a document that never existed is a 404 and exit 1', async () => {
    const r = await rtctl(['doc', edge.http, 'never-existed-doc']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /HTTP 404/);
    assert.equal(r.stdout, '');
    const j = await rtctl(['doc', edge.http, 'never-existed-doc', '--json']);
    assert.equal(j.code, 1);
    assert.match(j.stderr, /HTTP 404/);
  });

  test('binary state and JSON are what the edge serves', async (t) => {
    const probe = await httpGet(`${edge.http}/v1/docs/probe`);
    if (probe.status === 404 && /no such route/.test(probe.body)) {
      t.skip('the edge does not route /v1/docs yet');
      return;
    }
    const Y = await import('yjs');
    const { WebsocketProvider } = await import('y-websocket');
    const { default: WebSocket } = await import('ws');
    const ydoc = new Y.Doc();
    const provider = new WebsocketProvider(`${edge.ws}/yjs`, 'rtctl-doc', ydoc, { WebSocketPolyfill: WebSocket });
    try {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('y-websocket did not sync')), 15000);
        provider.once('sync', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      ydoc.getMap('m').set('k', 'v');
      ydoc.getText('t').insert(0, 'hello');
      await sleep(1500); // durable within one second
    } finally {
      provider.destroy();
      ydoc.destroy(); // stops the awareness timer, which would keep node running
    }
    const direct = await fetch(`${edge.http}/v1/docs/rtctl-doc`);
    if (direct.status !== 200) {
      t.skip(`the edge does not serve GET /v1/docs yet (HTTP ${direct.status})`);
      return;
    }
    const expected = Buffer.from(await direct.arrayBuffer());
    const r = await rtctl(['doc', edge.http, 'rtctl-doc']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.raw.equals(expected), 'rtctl writes the update byte for byte');
    const copy = new Y.Doc();
    Y.applyUpdate(copy, new Uint8Array(r.raw));
    assert.equal(copy.getMap('m').get('k'), 'v');
    assert.equal(copy.getText('t').toString(), 'hello');

    const json = await fetch(`${edge.http}/v1/docs/rtctl-doc?format=json`);
    if (json.status !== 200) {
      t.diagnostic(`?format=json answered HTTP ${json.status}: JSON path not checked`);
      return;
    }
    const j = await rtctl(['doc', edge.http, 'rtctl-doc', '--json']);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual(j.lines, [await json.json()]);
  });
});

// --- tokens: only when the edge supports RT_JWT_SECRET ------------------------------

const edgeHelp = spawnSync(path.join(BIN_DIR, 'edge'), ['--help'], { encoding: 'utf8' });
const hasAuth = /RT_JWT_SECRET/.test(edgeHelp.stdout || '');

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString());
}

describe('rtctl token', { timeout: 120000 }, () => {
  const SECRET = 'rtctl-test-secret';

  test('mints an HS256 token with sub, iat, exp, channels and admin', async () => {
    const r = await rtctl(['token', '--secret', SECRET, '--sub', 'alice', '--channels', 'team-*, doc:42,', '--ttl', '15m']);
    assert.equal(r.code, 0, r.stderr);
    const token = r.stdout.trim();
    const [h, p, sig] = token.split('.');
    assert.deepEqual(b64urlJson(h), { alg: 'HS256', typ: 'JWT' });
    const claims = b64urlJson(p);
    assert.equal(claims.sub, 'alice');
    assert.deepEqual(claims.channels, ['team-*', ' doc:42']);
    assert.equal(claims.exp - claims.iat, 900);
    assert.ok(Math.abs(claims.iat - Date.now() / 1000) < 60);
    assert.equal(claims.admin, undefined);
    assert.equal(createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url'), sig);
    const admin = await rtctl(['token', '--sub', 'root', '--admin'], { env: { RT_JWT_SECRET: SECRET } });
    const ac = b64urlJson(admin.stdout.trim().split('.')[1]);
    assert.equal(ac.admin, true);
    assert.equal(ac.exp - ac.iat, 3600);
    assert.equal((await rtctl(['token', '--sub', 'x'])).code, 2, 'no secret');
    assert.equal((await rtctl(['token', '--secret', 's'])).code, 2, 'no sub');
    assert.equal((await rtctl(['token', '--secret', 's', '--sub', 'x', '--ttl', 'soon'])).code, 2);
  });

  describe('against an edge with RT_JWT_SECRET', { skip: hasAuth ? false : 'build/bin/edge --help does not list RT_JWT_SECRET: the edge has no auth yet' }, () => {
    let stack;
    let url;
    before(async () => {
      stack = await startStack({ edges: 1, services: ['chat-history'], envFor: { edge: { RT_JWT_SECRET: SECRET } } });
      url = stack.edges[0].http;
    });
    after(() => stack?.stop({ allowExits: true }));

    test('a token from rtctl token works for pub, history and sub; none, a bad one or another channel is refused', async () => {
      const token = (await rtctl(['token', '--secret', SECRET, '--sub', 'carol', '--channels', 'team-*'])).stdout.trim();
      let r = await rtctl(['pub', url, 'team-a', 'hi', '--token', token]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.lines, [{ offset: 1 }]);
      r = await rtctl(['history', url, 'team-a'], { env: { RT_TOKEN: token } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.lines[0].from, 'carol');
      const ws = await rtctl(['sub', url, 'team-a', '--since', '0', '--count', '1'], { env: { RT_TOKEN: token } });
      assert.equal(ws.code, 0, ws.stderr);
      assert.equal(ws.lines[0].user, 'carol');
      const sse = await rtctl(['sub', url, 'team-a', '--sse', '--since', '0', '--count', '1', '--token', token]);
      assert.equal(sse.code, 0, sse.stderr);
      assert.equal(sse.lines[0].data, 'hi');

      r = await rtctl(['pub', url, 'team-a', 'x']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /HTTP 401 /);
      r = await rtctl(['pub', url, 'team-a', 'x', '--token', `${token}x`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /HTTP 401 /);
      r = await rtctl(['pub', url, 'other', 'x', '--token', token]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /HTTP 403 /);
      r = await rtctl(['sub', url, 'team-a']);
      assert.equal(r.code, 1, 'a refused upgrade ends the subscription');
      assert.match(r.stderr, /HTTP 401 /);
      r = await rtctl(['sub', url, 'other', '--token', token]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /server error forbidden: /);
      const wrong = (await rtctl(['token', '--secret', 'not-the-secret', '--sub', 'mallory', '--admin'])).stdout.trim();
      r = await rtctl(['sub', url, 'team-a', '--sse', '--token', wrong]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /HTTP 401 /);
      assert.equal((await rtctl(['health', url])).code, 0, '/healthz, /readyz and /metrics need no token');
    });

    test('a token expiring on an open subscription: close 4001 is printed and rtctl exits 1', async () => {
      const token = (await rtctl(['token', '--secret', SECRET, '--sub', 'dave', '--admin', '--ttl', '2s'])).stdout.trim();
      const s = rtctlStream(['sub', url, 'expiring'], { env: { RT_TOKEN: token } });
      await s.waitFor((x) => x.lines.some((l) => l.type === 'subscribed'), 10000, 'subscribed');
      const deadline = Date.now() + 20000;
      while (!s.exit && Date.now() < deadline) await sleep(50);
      assert.deepEqual(s.exit, { code: 1, signal: null }, s.stderr);
      assert.match(s.stderr, /closed by the edge: 4001 token expired/);
    });
  });
});
