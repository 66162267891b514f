// chat-history over NATS, without an edge: a private nats-server and
// PostgreSQL, two replicas of the service, driven by build/bin/hist-probe
// (which speaks the protobuf contract of proto/rtsync/v1/channel.proto and
// prints JSON lines).  Covers dense offsets under concurrency and replicas,
// idempotent resends, pagination, retention, PostgreSQL outages, SIGKILL and
// SIGTERM mid-load, garbage input and `chat-history migrate`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { connect as natsConnect } from 'nats';
import { startStack, ROOT } from './lib/stack.js';

const BIN = process.env.TEST_BIN_DIR || path.join(ROOT, 'build/bin');
const PROBE = path.join(BIN, 'hist-probe');
const RETAIN = 10000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let stack;

before(async () => {
  stack = await startStack({
    services: [{ name: 'chat-history', replicas: 2 }],
    edges: 0,
    env: { RT_HISTORY_RETAIN: `${RETAIN}`, RT_HISTORY_TRIM_INTERVAL: '200ms' },
  });
});

after(() => stack && stack.stop());

// Runs hist-probe; resolves with its JSON lines (whatever its exit code).
function probe(args, { timeoutMs = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(PROBE, args, { env: { ...process.env, RT_NATS_URL: stack.natsUrl } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      try {
        resolve(out.split('\n').filter(Boolean).map((l) => JSON.parse(l)));
      } catch (e) {
        reject(new Error(`bad probe output: ${e.message}\n${out.slice(0, 500)}\n${err}`));
      }
    });
  });
}

const replies = (lines) => lines.filter((l) => l.summary === undefined);
const summary = (lines) => lines.find((l) => l.summary === 1);

async function publish(channel, n, opts = {}) {
  const args = ['publish', '--channel', channel, '--n', `${n}`, '--concurrency', `${opts.concurrency || 20}`, '--print'];
  if (opts.channels) args.push('--channels', `${opts.channels}`);
  if (opts.ids) args.push('--ids', '--id-prefix', opts.ids);
  if (opts.idMod) args.push('--id-mod', `${opts.idMod}`);
  if (opts.user) args.push('--user', opts.user);
  if (opts.timeout) args.push('--timeout', `${opts.timeout}`);
  if (opts.rate) args.push('--rate', `${opts.rate}`);
  if (opts.size) args.push('--size', `${opts.size}`);
  return probe(args);
}

async function history(channel, opts = {}) {
  const args = ['query', '--channel', channel, '--limit', `${opts.limit ?? 1000}`];
  if (opts.after !== undefined) args.push('--after', `${opts.after}`);
  if (opts.before !== undefined) args.push('--before', `${opts.before}`);
  if (opts.all) args.push('--all');
  const [reply] = await probe(args);
  return reply;
}

function assertDense(messages, from, to, what) {
  assert.equal(messages.length, to - from + 1, `${what}: ${messages.length} messages, want ${from}..${to}`);
  messages.forEach((m, k) => assert.equal(m.offset, from + k, `${what}: offset at position ${k}`));
}

// Every acknowledged publish is in the history with its offset, once.
function assertAckedStored(acks, messages, what) {
  const byId = new Map();
  for (const m of messages) {
    assert.ok(!byId.has(m.id), `${what}: id ${m.id} stored twice`);
    byId.set(m.id, m.offset);
  }
  for (const a of acks.filter((r) => r.code === 0)) {
    assert.equal(byId.get(a.id), a.offset, `${what}: acked ${a.id} at ${a.offset}, stored at ${byId.get(a.id)}`);
  }
}

test('concurrent publishers through two replicas get dense offsets 1..N per channel', async () => {
  const [a, b] = await Promise.all([
    publish('dense', 2000, { channels: 4, ids: 'a', user: 'u1', concurrency: 50 }),
    publish('dense', 2000, { channels: 4, ids: 'b', user: 'u2', concurrency: 50 }),
  ]);
  assert.equal(summary(a).ok, 2000);
  assert.equal(summary(b).ok, 2000);
  const acks = [...replies(a), ...replies(b)];
  for (let c = 0; c < 4; c++) {
    const channel = `dense-${c}`;
    const mine = acks.filter((r) => r.channel === channel);
    const offsets = mine.map((r) => r.offset).sort((x, y) => x - y);
    assertDense(offsets.map((offset) => ({ offset })), 1, 1000, `${channel} acks`);
    const h = await history(channel, { after: 0, all: true });
    assert.equal(h.latest, 1000);
    assertDense(h.messages, 1, 1000, `${channel} history`);
    assertAckedStored(mine, h.messages, channel); // ids a<i> and b<i> never collide
  }
  // both replicas took a share (each connects its sequencer on its first batch)
  for (const name of ['chat-history-1', 'chat-history-2']) {
    assert.match(stack.logs(name), /event=pg_connected worker=sequencer/, `${name} committed nothing`);
  }
});

test('a resent (user, channel, id) returns the first offset and is stored once', async () => {
  const first = await publish('idem', 300, { ids: 'k', concurrency: 30 });
  assert.equal(summary(first).ok, 300);
  const again = await publish('idem', 300, { ids: 'k', concurrency: 30 });
  assert.equal(summary(again).duplicate, 300);
  const offsetOf = new Map(replies(first).map((r) => [r.id, r.offset]));
  for (const r of replies(again)) {
    assert.equal(r.duplicate, true);
    assert.equal(r.offset, offsetOf.get(r.id), `resend of ${r.id}`);
  }
  // the same id from another user is another message
  const other = await publish('idem', 1, { ids: 'k', user: 'someone-else' });
  assert.equal(replies(other)[0].offset, 301);
  // repeats inside one batch: 400 publishes of 10 ids, all in flight together
  const burst = await publish('idem-burst', 400, { ids: 'x', idMod: 10, concurrency: 400 });
  assert.equal(summary(burst).ok, 10);
  assert.equal(summary(burst).duplicate, 390);
  const h = await history('idem-burst', { after: 0 });
  assertDense(h.messages, 1, 10, 'idem-burst');
  const burstOffset = new Map(h.messages.map((m) => [m.id, m.offset]));
  for (const r of replies(burst)) assert.equal(r.offset, burstOffset.get(r.id));
});

// A prepared statement's generic plan is made once, while the tables may still
// be small; a join there can become a hash of the whole table on every batch
// once they have grown (durable publishing slowed as history accumulated).
test('publishing finds idempotency keys and channel rows through indexes, never by scanning the tables', async () => {
  const scans = async () =>
    Object.fromEntries(
      (await stack.psql("SELECT relname, seq_scan, idx_scan FROM pg_stat_user_tables WHERE relname LIKE 'hist_%'"))
        .split('\n')
        .map((l) => l.split('|'))
        .map(([name, seq, idx]) => [name, { seq: Number(seq), idx: Number(idx) }]),
    );
  await sleep(2500); // backends report their counters at most once a second
  const before = await scans();
  const first = await publish('scan', 600, { channels: 20, ids: 's', concurrency: 60 });
  assert.equal(summary(first).ok, 600);
  const again = await publish('scan', 600, { channels: 20, ids: 's', concurrency: 60 }); // gives claimed offsets back
  assert.equal(summary(again).duplicate, 600);
  await sleep(2500);
  const after = await scans();
  for (const table of ['hist_messages', 'hist_channels']) {
    assert.equal(after[table].seq - before[table].seq, 0, `${table} scanned while publishing`);
    assert.ok(after[table].idx > before[table].idx, `${table}: no index used`);
  }
});

// Just enough protobuf for rtsync.v1 PublishBatchRequest / PublishBatchReply.
const pbVarint = (n) => {
  const out = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  out.push(n);
  return Buffer.from(out);
};
const pbField = (field, bytes) => Buffer.concat([pbVarint((field << 3) | 2), pbVarint(bytes.length), bytes]);
const pbMessage = (m) =>
  Buffer.concat([pbField(1, Buffer.from(m.channel)), pbField(4, Buffer.from(m.data)), pbField(5, Buffer.from(m.user)),
    pbField(6, Buffer.from(m.id))]);
function pbFields(buf) { // -> [[field, value]]: varints as numbers, length-delimited as Buffers
  const out = [];
  let i = 0;
  const varint = () => {
    let n = 0;
    for (let shift = 1; ; shift *= 128) {
      const b = buf[i++];
      n += (b & 0x7f) * shift;
      if (b < 0x80) return n;
    }
  };
  while (i < buf.length) {
    const key = varint();
    if ((key & 7) === 0) out.push([key >> 3, varint()]);
    else {
      const len = varint();
      out.push([key >> 3, buf.subarray(i, i + len)]);
      i += len;
    }
  }
  return out;
}
const pbReply = (bytes) => { // PublishReply -> {code, offset, duplicate}
  const r = { code: 0, offset: 0, duplicate: false };
  for (const [f, v] of pbFields(bytes)) {
    if (f === 1) r.code = pbFields(v).find(([g]) => g === 1)?.[1] ?? 0;
    if (f === 2) r.offset = v;
    if (f === 3) r.duplicate = v === 1;
  }
  return r;
};

test('rt.hist.publish_batch: one reply slot per message in order; an invalid message is refused alone', async () => {
  const nc = await natsConnect({ servers: stack.natsUrl });
  try {
    const m = (channel, id) => pbMessage({ channel, data: '{}', user: 'u', id });
    const req = Buffer.concat([m('mixed', 'a'), m('not a name!', 'b'), m('mixed', 'c'), m('mixed', 'a')].map((x) => pbField(1, x)));
    const reply = await nc.request('rt.hist.publish_batch', req, { timeout: 5000 });
    const slots = pbFields(reply.data).filter(([f]) => f === 1).map(([, v]) => pbReply(v));
    assert.deepEqual(slots, [
      { code: 0, offset: 1, duplicate: false },
      { code: 1, offset: 0, duplicate: false }, // CODE_BAD_REQUEST
      { code: 0, offset: 2, duplicate: false },
      { code: 0, offset: 1, duplicate: true }, // the same (user, channel, id) as the first
    ]);
    const h = await history('mixed', { after: 0 });
    assert.deepEqual(h.messages.map((x) => [x.offset, x.id]), [[1, 'a'], [2, 'c']]);
    // refused as a whole: garbage, no message, more than 256 messages
    const tooMany = Buffer.concat(Array.from({ length: 257 }, (_, i) => pbField(1, m('mixed', `t${i}`))));
    for (const bad of [Buffer.from([0x0a, 0xff]), Buffer.alloc(0), tooMany]) {
      const r = await nc.request('rt.hist.publish_batch', bad, { timeout: 5000 });
      const fields = pbFields(r.data);
      assert.equal(fields.filter(([f]) => f === 1).length, 0);
      assert.ok(fields.find(([f]) => f === 2), 'a status for the whole request');
    }
    assert.equal((await history('mixed', { after: 0 })).latest, 2);
  } finally {
    await nc.close();
  }
});

test('history pages forwards and backwards; limit 0 gives only the latest offset', async () => {
  const p = await publish('page', 120, { concurrency: 1 });
  assert.equal(summary(p).ok, 120);
  assertDense((await history('page', { after: 0, limit: 50 })).messages, 1, 50, 'after 0');
  assertDense((await history('page', { after: 50, limit: 50 })).messages, 51, 100, 'after 50');
  assertDense((await history('page', { after: 100, limit: 50 })).messages, 101, 120, 'after 100');
  assertDense((await history('page', { before: 0, limit: 50 })).messages, 71, 120, 'newest 50');
  assertDense((await history('page', { before: 71, limit: 50 })).messages, 21, 70, 'before 71');
  assertDense((await history('page', { before: 21, limit: 50 })).messages, 1, 20, 'before 21');
  const latest = await history('page', { after: 0, limit: 0 });
  assert.deepEqual([latest.code, latest.latest, latest.messages.length], [0, 120, 0]);
  const m = (await history('page', { after: 6, limit: 1 })).messages[0];
  assert.deepEqual([m.offset, m.event, m.from, JSON.parse(m.data).i], [7, 'message', 'probe', 6]);
  // a reply stays within NATS's payload limit: big messages come in shorter pages
  assert.equal(summary(await publish('big', 20, { size: 100000 })).ok, 20);
  const bigPage = await history('big', { after: 0, limit: 1000 });
  assert.ok(bigPage.messages.length > 0 && bigPage.messages.length < 20, `${bigPage.messages.length} big messages`);
  assertDense(bigPage.messages, 1, bigPage.messages.length, 'big page');
  assertDense((await history('big', { after: 0, all: true })).messages, 1, 20, 'big, all pages');
  const none = await history('never-used', { after: 0 });
  assert.deepEqual([none.code, none.latest, none.messages.length], [0, 0, 0]);
});

test(`retention keeps the newest ${RETAIN} messages per channel`, async () => {
  const n = RETAIN + 500;
  assert.equal(summary(await publish('retained', n, { concurrency: 100 })).ok, n);
  const deadline = Date.now() + 10000;
  let h;
  do {
    await sleep(200);
    h = await history('retained', { after: 0, limit: 1 });
  } while (h.messages[0].offset !== n - RETAIN + 1 && Date.now() < deadline);
  assert.equal(h.messages[0].offset, n - RETAIN + 1);
  assert.equal(h.latest, n);
  assert.equal(Number(await stack.psql("SELECT count(*) FROM hist_messages WHERE channel = 'retained'")), RETAIN);
});

test('garbage on the request subjects is counted and dropped; the service keeps serving', async () => {
  const [g] = await probe(['garbage', '--n', '200', '--timeout', '2000']);
  assert.ok(g.bad_request > 0, JSON.stringify(g));
  assert.equal(summary(await publish('after-garbage', 10)).ok, 10);
  assert.match(stack.logs('chat-history-1') + stack.logs('chat-history-2'), /event=bad_request .*total=/);
  assert.ok(stack.isRunning('chat-history-1') && stack.isRunning('chat-history-2'));
});

test('PostgreSQL down: publishes are refused as unavailable, and served again once it is back', async () => {
  const pids = [stack.pid('chat-history-1'), stack.pid('chat-history-2')];
  await stack.stopPg('fast');
  const down = await publish('outage', 20, { ids: 'o', timeout: 3000 });
  assert.equal(summary(down).ok, 0, 'no acknowledgement while PostgreSQL is down');
  assert.equal(summary(down).unavailable, 20);
  const q = await history('outage', { after: 0 });
  assert.equal(q.code, 5); // CODE_UNAVAILABLE
  await stack.startPg();
  const deadline = Date.now() + 15000;
  let up;
  do {
    await sleep(200);
    up = summary(await publish('outage', 20, { ids: 'o' }));
  } while (up.ok + up.duplicate < 20 && Date.now() < deadline);
  assert.equal(up.ok + up.duplicate, 20);
  assertDense((await history('outage', { after: 0 })).messages, 1, 20, 'outage');
  assert.deepEqual([stack.pid('chat-history-1'), stack.pid('chat-history-2')], pids, 'no restart needed');
});

test('SIGKILL of a replica mid-load loses no acknowledged message and stores none twice', async () => {
  const N = 8000;
  const load = publish('crash', N, { ids: 'c', concurrency: 200, rate: 8000, timeout: 2000 });
  await sleep(400);
  await stack.kill('chat-history-1', 'SIGKILL');
  const first = await load;
  const s1 = summary(first);
  assert.ok(s1.ok > 0 && s1.ok < N, `the kill came mid-load: ${JSON.stringify(s1)}`);
  await stack.start('chat-history-1');
  // the clients resend everything (an offline queue would resend what was not acked)
  const second = await publish('crash', N, { ids: 'c', concurrency: 100 });
  assert.equal(summary(second).ok + summary(second).duplicate, N);
  const h = await history('crash', { after: 0, all: true });
  assert.equal(h.latest, N);
  assertDense(h.messages, 1, N, 'crash history');
  const firstAck = new Map(replies(first).filter((r) => r.code === 0).map((r) => [r.id, r.offset]));
  for (const r of replies(second)) {
    if (firstAck.has(r.id)) {
      assert.equal(r.duplicate, true, `${r.id} was acked before the crash, resent as new`);
      assert.equal(r.offset, firstAck.get(r.id), `${r.id} moved`);
    }
  }
  const allOffsets = new Set(replies(second).map((r) => r.offset));
  assert.equal(allOffsets.size, N, 'every id has its own offset');
  assertAckedStored([...replies(first), ...replies(second)], h.messages, 'crash');
});

test('SIGTERM finishes in-flight publishes and exits 0', async () => {
  const load = publish('drain', 5000, { ids: 'd', concurrency: 100, timeout: 3000 });
  await sleep(300);
  const r = await stack.kill('chat-history-2', 'SIGTERM');
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}`);
  const acks = replies(await load);
  assert.ok(acks.filter((a) => a.code === 0).length > 0);
  await stack.start('chat-history-2');
  const h = await history('drain', { after: 0, all: true });
  assertDense(h.messages, 1, h.latest, 'drain');
  assertAckedStored(acks, h.messages, 'drain');
});

// Runs `chat-history migrate` from `cwd` → {code, stderr}.
function migrate(databaseUrl, { cwd = '/', env = {} } = {}) {
  return new Promise((resolve) => {
    execFile(
      path.join(BIN, 'chat-history'),
      ['migrate'],
      { env: { PATH: process.env.PATH, RT_DATABASE_URL: databaseUrl, ...env }, cwd },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stderr }),
    );
  });
}

test('`chat-history migrate` applies nothing twice and exits 0 (migrations found next to the binary)', async () => {
  // from '/', the migrations are found through <binary dir>/../../migrations (unless the
  // binaries were built elsewhere: TEST_BIN_DIR)
  const beside = path.resolve(BIN, '../../migrations') === path.join(ROOT, 'migrations');
  const out = await migrate(stack.databaseUrl, { cwd: beside ? '/' : ROOT });
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stderr, /event=migrated .*applied=0/);
  const versions = await stack.psql('SELECT version, name FROM rt_schema_migrations ORDER BY version');
  assert.match(versions, /^1\|0001_chat_history\.sql/);
  const missing = await migrate(stack.databaseUrl, { env: { RT_MIGRATIONS_DIR: '/nonexistent' } });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /migrations_not_found/);
});

test('replicas starting at once migrate a fresh database exactly once (advisory lock)', async () => {
  await stack.psql('CREATE DATABASE fresh');
  const url = stack.databaseUrl.replace(/\/rtsync$/, '/fresh');
  const runs = await Promise.all([1, 2, 3, 4].map(() => migrate(url, { cwd: ROOT })));
  for (const r of runs) assert.equal(r.code, 0, r.stderr);
  const files = fs.readdirSync(path.join(ROOT, 'migrations')).filter((f) => /^\d{4}_.*\.sql$/.test(f));
  const applied = runs.map((r) => Number(/applied=(\d+)/.exec(r.stderr)[1]));
  assert.deepEqual(applied.sort(), [0, 0, 0, files.length], 'one process applies everything, the others nothing');
  assert.equal(await stack.psql('SELECT count(*) FROM rt_schema_migrations', { db: 'fresh' }), `${files.length}`);
});
