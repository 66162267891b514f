// Checks the integration-test harness itself: private NATS and PostgreSQL on
// free ports, process control, no leaked processes, and the client helpers.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { startStack, ROOT, httpGet } from './lib/stack.js';
import { connectWs, sseRaw, parseSse, request } from './lib/clients.js';

const alive = (pid) => fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));

async function waitGone(pids, ms = 5000) {
  const deadline = Date.now() + ms;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return pids.filter(alive);
}

function natsInfo(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString());
    });
    s.once('error', reject);
  });
}

const edgeBin = path.join(process.env.TEST_BIN_DIR || path.join(ROOT, 'build/bin'), 'edge');

test('NATS and PostgreSQL start on free ports and can be controlled', async () => {
  const stack = await startStack({ pg: true, edges: 0 });
  after(() => stack.stop());

  assert.match(await natsInfo(stack.nats.port), /^INFO /);
  assert.equal(await stack.psql('select current_user, current_database()'), 'rtsync|rtsync');
  assert.equal(await stack.psql('show fsync'), 'on');
  assert.equal(stack.databaseUrl, `postgresql://rtsync@127.0.0.1:${stack.pg.port}/rtsync`);

  // data survives a PostgreSQL restart in the same data dir
  await stack.psql('create table t (x int); insert into t values (42)');
  const r = await stack.stopPg();
  assert.equal(r.code, 0);
  await assert.rejects(stack.psql('select 1'));
  await stack.startPg();
  assert.equal(await stack.psql('select x from t'), '42');

  // NATS comes back on the same port
  const port = stack.nats.port;
  await stack.restart('nats', { signal: 'SIGKILL' });
  assert.equal(stack.nats.port, port);
  assert.match(await natsInfo(port), /^INFO /);

  const pids = stack.names.map((n) => stack.pid(n));
  await stack.stop();
  assert.deepEqual(await waitGone(pids), []);
  assert.ok(fs.readFileSync(path.join(stack.logDir, 'postgres.log'), 'utf8').includes('ready to accept connections'));
});

test('two stacks coexist', async () => {
  const [a, b] = await Promise.all([startStack({ name: 'harness-a', edges: 0 }), startStack({ name: 'harness-b', edges: 0 })]);
  after(() => Promise.all([a.stop(), b.stop()]));
  assert.notEqual(a.nats.port, b.nats.port);
  assert.match(await natsInfo(a.nats.port), /^INFO /);
  assert.match(await natsInfo(b.nats.port), /^INFO /);
});

test('children die with a test process killed by SIGKILL', async () => {
  const script = `
    import { startStack } from ${JSON.stringify(path.join(ROOT, 'tests/integration/lib/stack.js'))};
    const s = await startStack({ name: 'harness-orphan', pg: true, edges: 0 });
    console.log(JSON.stringify(s.names.map((n) => s.pid(n))));
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pids = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(JSON.parse(out));
    });
    child.on('exit', (code) => reject(new Error(`stack script exited ${code}`)));
  });
  assert.equal(pids.length, 2);
  assert.ok(pids.every(alive));
  child.kill('SIGKILL');
  assert.deepEqual(await waitGone(pids, 10000), []);
});

test('edges start, report ready, drain on SIGTERM and restart on their port', { skip: !fs.existsSync(edgeBin) && `${edgeBin} not built` }, async () => {
  const stack = await startStack({ edges: 2, env: { RT_LOG_LEVEL: 'debug' } });
  after(() => stack.stop());
  assert.equal(stack.edges.length, 2);
  for (const e of stack.edges) assert.equal((await httpGet(`${e.http}/readyz`)).status, 200);
  const r = await stack.kill('edge-2', 'SIGTERM');
  assert.ok(r.ms < 10000, `edge took ${r.ms} ms to stop`);
  await stack.start('edge-2');
  assert.equal((await httpGet(`${stack.edges[1].http}/healthz`)).status, 200);
});

const builtServices = ['presence', 'chat-history', 'crdt-merge'].filter((s) =>
  fs.existsSync(path.join(process.env.TEST_BIN_DIR || path.join(ROOT, 'build/bin'), s)),
);

test('back-end services start, connect to NATS and stop on SIGTERM', { skip: !builtServices.length && 'no service built' }, async () => {
  const stack = await startStack({ services: builtServices.map((name) => ({ name, replicas: 2 })), edges: 0 });
  after(() => stack.stop());
  const names = (await stack.natsConnections()).map((c) => c.name);
  for (const s of builtServices) assert.equal(stack.isRunning(`${s}-2`), true);
  assert.ok(names.length >= builtServices.length * 2, `NATS connections: ${names}`);
  await stack.restart(`${builtServices[0]}-1`);
  assert.equal(stack.isRunning(`${builtServices[0]}-1`), true);
  // a graceful PostgreSQL restart does not wait for the services' connections
  const r = await stack.kill('postgres');
  assert.ok(r.ms < 5000, `postgres took ${r.ms} ms`);
  await stack.startPg();
});

test('client helpers: ws queue, raw SSE, HTTP', async () => {
  const server = http.createServer((req, res) => {
    if (req.url === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('retry: 3000\n\n');
      res.write('id: 1\nevent: token\ndata: a\ndata: b\n\n');
      setTimeout(() => res.end(': hb\n\nid: 2\ndata: {"x":1}\n\n'), 50);
      return;
    }
    res.writeHead(201, { 'content-type': 'application/json' });
    req.pipe(res);
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => {
    ws.send(JSON.stringify({ type: 'welcome', conn: 'c1' }));
    ws.on('message', (m) => {
      const msg = JSON.parse(m);
      ws.send(JSON.stringify({ type: 'pong' }));
      ws.send(JSON.stringify({ type: 'ack', id: msg.id }));
      ws.send(Buffer.from([0, 1, 2]));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  after(() => server.close());
  const base = `127.0.0.1:${server.address().port}`;

  const c = await connectWs(`ws://${base}/ws`);
  assert.equal((await c.next('welcome')).conn, 'c1');
  c.send({ type: 'ping', id: 'x' });
  assert.deepEqual(await c.next({ type: 'ack', id: 'x' }), { type: 'ack', id: 'x' }); // skips the pong
  assert.deepEqual(await c.next((f) => Buffer.isBuffer(f)), Buffer.from([0, 1, 2]));
  assert.equal((await c.next()).type, 'pong');
  await c.expectNone('ack', 100);
  await assert.rejects(c.next('nothing', 100), /no frame matching/);
  assert.equal((await c.close()).code, 1000);

  const s = await sseRaw(`http://${base}/sse`);
  assert.equal(s.status, 200);
  await s.waitFor('id: 2\n');
  await s.ended;
  assert.equal(s.text(), 'retry: 3000\n\nid: 1\nevent: token\ndata: a\ndata: b\n\n: hb\n\nid: 2\ndata: {"x":1}\n\n');
  assert.deepEqual(parseSse(s.text()).slice(1), [
    { comments: [], id: '1', event: 'token', data: 'a\nb' },
    { comments: ['hb'] },
    { comments: [], id: '2', data: '{"x":1}' },
  ]);

  const r = await request('POST', `http://${base}/echo`, { body: { a: 1 } });
  assert.equal(r.status, 201);
  assert.deepEqual(r.json(), { a: 1 });
});
