// presence over NATS, without a real edge: a private nats-server, two presence
// replicas (RT_PRESENCE_TTL=3s), and fake edges, queries, signals and channel
// watchers played by build/bin/pres-probe (which speaks the protobuf contract of
// proto/rtsync/v1/presence.proto and prints JSON lines).  Covers a 2000-member
// channel, signals, a lost batch (resync), an edge that dies (exactly one leave
// per member within the TTL, with two replicas), an edge that restarts (new
// epoch), a replica killed and restarted (same answer after its resync), a reply
// over the NATS payload limit, a NATS restart, and garbage on every subject.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startStack, ROOT } from './lib/stack.js';

const BIN = process.env.TEST_BIN_DIR || path.join(ROOT, 'build/bin');
const PROBE = path.join(BIN, 'pres-probe');
const TTL_MS = 3000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let stack;
const running = new Set();

before(async () => {
  stack = await startStack({
    services: [{ name: 'presence', replicas: 2 }],
    edges: 0,
    pg: false,
    env: { RT_PRESENCE_TTL: `${TTL_MS}ms` },
    serviceReady: /event=ready/,
  });
});

after(async () => {
  for (const p of running) p.child.kill('SIGKILL');
  await stack?.stop();
});

// A long-running probe (fake edge, watcher): its JSON lines as they come.
function startProbe(args) {
  const child = spawn(PROBE, args, { env: { ...process.env, RT_NATS_URL: stack.natsUrl } });
  const p = { child, lines: [], exited: null, buf: '' };
  child.stdout.on('data', (d) => {
    p.buf += d;
    let i;
    while ((i = p.buf.indexOf('\n')) >= 0) {
      const line = p.buf.slice(0, i);
      p.buf = p.buf.slice(i + 1);
      if (line) p.lines.push({ at: Date.now(), ...JSON.parse(line) });
    }
  });
  child.stderr.on('data', (d) => process.stderr.write(`[pres-probe] ${d}`));
  p.done = new Promise((resolve) => child.on('close', (code) => resolve((p.exited = code))));
  running.add(p);
  p.done.then(() => running.delete(p));
  return p;
}

async function waitLine(p, pred, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const l = p.lines.find(pred);
    if (l) return l;
    if (p.exited !== null || Date.now() > deadline) throw new Error(`no such line; got ${JSON.stringify(p.lines).slice(0, 500)}`);
    await sleep(20);
  }
}

// A short probe: its JSON lines once it exits.
async function probe(args) {
  const p = startProbe(args);
  await p.done;
  return p.lines;
}

async function fakeEdge(edge, channel, members, extra = []) {
  const p = startProbe(['edge', '--edge', edge, '--channel', channel, '--members', `${members}`, '--hb-ms', `${TTL_MS / 6}`, ...extra]);
  await waitLine(p, (l) => l.ready === 1);
  return p;
}

async function query(channel, expect, { wait = 8000, full = false } = {}) {
  const args = ['query', '--channel', channel, '--wait', `${wait}`];
  if (expect !== undefined) args.push('--expect', `${expect}`);
  if (full) args.push('--full');
  const [r] = await probe(args);
  return r;
}

test('a 2000-member channel: complete, ordered by join time, the same from both replicas', async () => {
  await fakeEdge('edge-a', 'big', 2000);
  const r = await query('big', 2000, { full: true });
  assert.equal(r.code, 0);
  assert.equal(r.count, 2000);
  assert.equal(r.total, 2000);
  assert.equal(r.truncated, false);
  assert.equal(r.first, 'edge-a-c0');
  assert.equal(r.last, 'edge-a-c1999');
  for (let i = 1; i < r.members.length; i++) assert.ok(r.members[i - 1].since <= r.members[i].since);
  assert.deepEqual(r.members[7], { conn: 'edge-a-c7', user: 'u7', edge: 'edge-a', since: r.members[7].since, state: '{"n":7}' });
  // the queue group spreads queries over both replicas: every answer is the same
  const digests = new Set();
  for (let i = 0; i < 8; i++) digests.add((await query('big', 2000)).digest);
  assert.equal(digests.size, 1);
  assert.equal([...digests][0], r.digest);
});

test('signals reach the member (on its channel subject); an absent target is not_found', async () => {
  await fakeEdge('edge-s', 'call', 3);
  await query('call', 3);
  const w = startProbe(['watch', '--channel', 'call', '--timeout', '1500']);
  await waitLine(w, (l) => l.ready === 1);
  const [ok] = await probe(['signal', '--channel', 'call', '--to', 'edge-s-c1', '--from-user', 'alice', '--from-conn', 'x1', '--data', '{"sdp":"offer"}']);
  assert.equal(ok.code, 0);
  const [missing] = await probe(['signal', '--channel', 'call', '--to', 'nobody']);
  assert.equal(missing.code, 2); // CODE_NOT_FOUND
  const [wrongChannel] = await probe(['signal', '--channel', 'big', '--to', 'edge-s-c1']);
  assert.equal(wrongChannel.code, 2);
  await w.done;
  const signals = w.lines.filter((l) => l.signal === 1);
  assert.equal(signals.length, 1);
  assert.deepEqual(
    { to: signals[0].to, from_user: signals[0].from_user, from_conn: signals[0].from_conn, event: signals[0].event, data: signals[0].data },
    { to: 'edge-s-c1', from_user: 'alice', from_conn: 'x1', event: 'signal', data: '{"sdp":"offer"}' },
  );
});

test('a lost batch is noticed and repaired by a snapshot (resync)', async () => {
  const e = await fakeEdge('edge-l', 'lossy', 5, ['--lose-one']);
  await waitLine(e, (l) => l.lost === 1);
  await waitLine(e, (l) => l.resync === 1 && l.members === 7, 5000);
  const r = await query('lossy', 7, { full: true });
  assert.equal(r.count, 7);
  assert.ok(r.members.some((m) => m.conn === 'edge-l-lost'), 'the join that never arrived is there');
  assert.ok(r.members.some((m) => m.conn === 'edge-l-after'));
});

test('an edge that stops heartbeating: its members leave within the TTL, one leave each with two replicas', async () => {
  const N = 300;
  const e = await fakeEdge('edge-d', 'doomed', N);
  await query('doomed', N);
  const w = startProbe(['watch', '--channel', 'doomed', '--timeout', `${TTL_MS + 3000}`]);
  await waitLine(w, (l) => l.ready === 1);
  const killedAt = Date.now();
  e.child.kill('SIGKILL');
  await w.done;
  const leaves = w.lines.filter((l) => l.kind === 'leave');
  const summary = w.lines.find((l) => l.summary === 1);
  assert.equal(summary.leaves, N, 'exactly one leave per member');
  assert.equal(summary.distinct_leaves, N);
  const last = Math.max(...leaves.map((l) => l.at));
  assert.ok(last - killedAt <= TTL_MS + 700, `leaves ${last - killedAt} ms after the edge died`);
  assert.ok(leaves.every((l) => l.edge === 'edge-d' && l.origin.startsWith('presence-')));
  assert.equal(new Set(leaves.map((l) => l.origin)).size, 1, 'one replica announces');
  assert.equal((await query('doomed', 0)).count, 0);
});

test('an edge that restarts (new epoch): the old members leave at once, once each', async () => {
  const e1 = await fakeEdge('edge-r', 'reborn', 10, ['--epoch', '1']);
  await query('reborn', 10);
  e1.child.kill('SIGKILL');
  await e1.done;
  const w = startProbe(['watch', '--channel', 'reborn', '--timeout', '1500']);
  await waitLine(w, (l) => l.ready === 1);
  await fakeEdge('edge-r', 'reborn', 3, ['--epoch', '2']);
  await w.done;
  const summary = w.lines.find((l) => l.summary === 1);
  assert.equal(summary.leaves, 10); // well before the TTL
  assert.equal(summary.distinct_leaves, 10);
  assert.equal((await query('reborn', 3)).count, 3);
});

test('a replica killed and restarted answers as before once ready (its view rebuilt by resync)', async () => {
  const before = { big: await query('big', 2000), lossy: await query('lossy', 7), call: await query('call', 3) };
  // an edge that dies while presence-1 is down: only presence-2 knows its members, so
  // presence-2 announces their leaves although presence-1 (a smaller id) is back and ready
  const g = await fakeEdge('edge-g', 'ghosts', 5);
  await query('ghosts', 5);
  const w = startProbe(['watch', '--channel', 'ghosts', '--timeout', `${2 * TTL_MS + 1000}`]);
  await waitLine(w, (l) => l.ready === 1);
  await stack.kill('presence-1', 'SIGKILL');
  g.child.kill('SIGKILL');
  await stack.start('presence-1'); // waits for event=ready
  await w.done;
  const leaves = w.lines.filter((l) => l.kind === 'leave');
  assert.equal(leaves.length, 5, JSON.stringify(w.lines));
  assert.deepEqual([...new Set(leaves.map((l) => l.origin))], ['presence-2']);
  await stack.kill('presence-2'); // SIGTERM: now only the restarted replica answers
  try {
    for (const ch of Object.keys(before)) {
      const r = await query(ch, before[ch].count, { wait: 2000 });
      assert.equal(r.count, before[ch].count, ch);
      assert.equal(r.digest, before[ch].digest, ch);
    }
    assert.equal((await query('ghosts')).count, 0);
  } finally {
    await stack.start('presence-2');
  }
  assert.equal((await query('big', 2000)).digest, before.big.digest);
});

test('a channel too large for one reply is truncated under the NATS payload limit; a snapshot in parts', async () => {
  // 2002 members with 600-byte states: 1.3 MB, over NATS's 1 MiB; the lost batch makes
  // presence ask for a snapshot, which the fake edge sends in parts of 500
  const e = await fakeEdge('edge-h', 'huge', 2000, ['--state-pad', '600', '--part', '500', '--lose-one']);
  await waitLine(e, (l) => l.resync === 1 && l.members === 2002, 5000);
  let r;
  for (let i = 0; i < 50; i++) {
    r = await query('huge');
    if (r.total === 2002) break;
    await sleep(100);
  }
  assert.equal(r.code, 0);
  assert.equal(r.total, 2002);
  assert.equal(r.truncated, true);
  assert.ok(r.count > 1000 && r.count < 2002, `${r.count} members in the reply`);
  assert.equal(r.first, 'edge-h-c0');
});

test('NATS restarts longer than the TTL: nobody is expired for it, the view is the same after', async () => {
  const before = await query('big', 2000);
  const w = startProbe(['watch', '--channel', 'big', '--timeout', `${TTL_MS + 4000}`]);
  await waitLine(w, (l) => l.ready === 1);
  await stack.kill('nats');
  await sleep(TTL_MS + 500);
  await stack.start('nats');
  await w.done;
  assert.equal(w.lines.find((l) => l.summary === 1).leaves, 0);
  const after = await query('big', 2000);
  assert.equal(after.digest, before.digest);
});

test('garbage and truncated protobuf on every subject: counted, dropped, still serving', async () => {
  const [g] = await probe(['garbage', '--n', '600']);
  assert.equal(g.timeout, 0);
  assert.ok(g.replies > 0 && g.bad_request > 0, JSON.stringify(g));
  assert.ok(stack.isRunning('presence-1') && stack.isRunning('presence-2'));
  const r = await query('big', 2000);
  assert.equal(r.count, 2000);
});
