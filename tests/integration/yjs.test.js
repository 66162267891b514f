// Collaborative documents end to end (issue 6): two edges, crdt-merge and
// PostgreSQL, with the npm yjs and y-websocket clients.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as Y from 'yjs';
import { startStack } from './lib/stack.js';
import { provider, synced, destroy, closeAll, fetchDoc, getBytes, rawConnect, waitFor, sleep } from './lib/yjs.js';
import { ensureTraceCache } from '../yjs/lib/trace.mjs';

// mulberry32: a seeded generator, so a failure can be replayed
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomEdit(doc, rand, tag) {
  const text = doc.getText('text');
  const r = rand();
  if (r < 0.6 || text.length < 10) {
    text.insert(Math.floor(rand() * (text.length + 1)), `${tag}${Math.floor(rand() * 1000)} `);
  } else if (r < 0.85) {
    const at = Math.floor(rand() * text.length);
    text.delete(at, Math.min(1 + Math.floor(rand() * 5), text.length - at));
  } else {
    doc.getMap('map').set(`k${Math.floor(rand() * 20)}`, `${tag}-${Math.floor(rand() * 1e6)}`);
  }
}

// map keys sorted: toJSON lists them in local insertion order
function content(doc) {
  const map = doc.getMap('map').toJSON();
  const sorted = Object.fromEntries(Object.keys(map).sort().map((k) => [k, map[k]]));
  return JSON.stringify({ text: doc.getText('text').toString(), map: sorted });
}

const frame = (...parts) => Buffer.from(parts.flat());
const varuint = (n) => { const out = []; while (n > 0x7f) { out.push(0x80 | (n & 0x7f)); n >>>= 7; } out.push(n); return out; };
// Sends each update as its own sync-update message (a raw client's stream).
const sendUpdates = (c, updates) => { for (const u of updates) c.ws.send(frame([0, 2], varuint(u.length), [...u])); };

// A document typed one character at a time, and its updates, one per keystroke.
function typedUpdates(n) {
  const src = new Y.Doc();
  const updates = [];
  src.on('update', (u) => updates.push(u));
  for (let i = 0; i < n; i++) src.getText('text').insert(i, String.fromCharCode(97 + (i % 26)));
  return { src, updates };
}

describe('Yjs documents', { timeout: 300000 }, () => {
  let stack;
  before(async () => {
    // small compaction and idle thresholds, so that every test also goes through them;
    // one thread per edge, so that clients of one edge share its thread (and the
    // relay without NATS's echo); the replicas' tests below run two
    stack = await startStack({
      edges: 2,
      services: ['crdt-merge'],
      envFor: {
        'crdt-merge': { RT_DOC_COMPACT_UPDATES: '50', RT_DOC_IDLE: '2s', RT_LOG_LEVEL: 'debug' },
        edge: { RT_EDGE_THREADS: '1' },
      },
    });
  });
  afterEach(closeAll);
  after(() => stack?.stop());
  const logged = (fn) => stack.withLogs(fn)();

  test('two providers on different edges converge under random concurrent edits, and GET agrees', async () => {
    await logged(async () => {
      const [e1, e2] = stack.edges;
      const a = await provider(e1, 'conv');
      const b = await provider(e2, 'conv');
      const ra = rng(1), rb = rng(2);
      for (let i = 0; i < 3000; i++) {
        randomEdit(a.doc, ra, 'a');
        randomEdit(b.doc, rb, 'b');
        if (i % 100 === 0) await sleep(5);
      }
      await waitFor(() => content(a.doc) === content(b.doc), 30000, 'convergence');
      await sleep(200);
      const server = await fetchDoc(e1, 'conv');
      assert.equal(content(server), content(a.doc));
      const json = await getBytes(`${e2.http}/v1/docs/conv?format=json`);
      assert.equal(json.status, 200);
      assert.equal(JSON.parse(json.body.toString()).text, a.doc.getText('text').toString());
      destroy(a, b);
    });
  });

  test('room names: invalid ones are refused with 400, unknown documents are 404', async () => {
    const [e1] = stack.edges;
    assert.equal((await getBytes(`${e1.http}/v1/docs/never-written`)).status, 404);
    assert.equal((await getBytes(`${e1.http}/v1/docs/bad%20name`)).status, 400);
    const c = rawConnect(e1, 'a/b');
    await assert.rejects(c.opened);
  });

  test('offline edits on both sides merge without loss when they reconnect', async () => {
    await logged(async () => {
      const [e1, e2] = stack.edges;
      const a = await provider(e1, 'offline');
      const b = await provider(e2, 'offline');
      a.doc.getText('text').insert(0, 'base ');
      await waitFor(() => b.doc.getText('text').toString() === 'base ', 10000, 'base');
      a.disconnect();
      b.disconnect();
      for (let i = 0; i < 50; i++) {
        a.doc.getText('text').insert(0, `A${i} `);
        b.doc.getText('text').insert(b.doc.getText('text').length, `B${i} `);
      }
      a.doc.getMap('map').set('a', 1);
      b.doc.getMap('map').set('b', 2);
      await sleep(300);
      a.connect();
      await synced(a);
      b.connect();
      await synced(b);
      await waitFor(() => content(a.doc) === content(b.doc), 15000, 'convergence');
      const text = a.doc.getText('text').toString();
      for (let i = 0; i < 50; i++) {
        assert.ok(text.includes(`A${i} `) && text.includes(`B${i} `), `lost edit ${i}`);
      }
      assert.deepEqual(a.doc.getMap('map').toJSON(), { a: 1, b: 2 });
      destroy(a, b);
    });
  });

  test('awareness: seen across edges, answered to queries, removed when a connection closes', async () => {
    await logged(async () => {
      const [e1, e2] = stack.edges;
      const a = await provider(e1, 'aw');
      const b = await provider(e2, 'aw');
      const near = await provider(e1, 'aw'); // a's edge: relayed there without NATS's echo
      a.awareness.setLocalStateField('user', { name: 'A' });
      await waitFor(() => b.awareness.getStates().get(a.doc.clientID)?.user?.name === 'A', 10000, 'state on b');
      await waitFor(() => near.awareness.getStates().get(a.doc.clientID)?.user?.name === 'A', 10000, 'state on near');
      // a newcomer gets the current states on connect
      const c = await provider(e2, 'aw');
      await waitFor(() => c.awareness.getStates().get(a.doc.clientID)?.user?.name === 'A', 10000, 'state on c');
      // query-awareness is answered with the states
      const raw = rawConnect(e1, 'aw');
      await raw.opened;
      raw.ws.send(frame([3]));
      const m = await raw.next((x) => x[0] === 1 && x.length > 3);
      assert.ok(Buffer.from(m).toString().includes('"name":"A"'));
      raw.ws.close();
      // a closes without removing its own state: the server removes it
      const id = a.doc.clientID;
      a.ws.terminate?.() ?? a.ws.close();
      a.shouldConnect = false;
      await waitFor(() => !b.awareness.getStates().has(id) && !c.awareness.getStates().has(id), 10000, 'removal');
      destroy(a, b, c, near);
    });
  });

  test('awareness: a reconnecting client keeps its id and still owns its state (y-websocket#122)', async () => {
    await logged(async () => {
      const [e1, e2] = stack.edges;
      const a = await provider(e1, 'aw122');
      const b = await provider(e2, 'aw122');
      a.awareness.setLocalStateField('user', 'A');
      await waitFor(() => b.awareness.getStates().get(a.doc.clientID)?.user === 'A', 10000, 'state on b');
      a.disconnect(); // the server removes the state; the client keeps id and clock
      await waitFor(() => !b.awareness.getStates().has(a.doc.clientID), 10000, 'removal');
      a.connect();
      await synced(a);
      a.awareness.setLocalStateField('user', 'A2');
      await waitFor(() => b.awareness.getStates().get(a.doc.clientID)?.user === 'A2', 10000, 'state again');
      // the new connection owns it: closing it removes the state at once
      a.ws.close();
      a.shouldConnect = false;
      await waitFor(() => !b.awareness.getStates().has(a.doc.clientID), 5000, 'removal after reconnect');
      destroy(a, b);
    });
  });

  test('malformed sync and awareness messages: 1008 for the sender, others unaffected, nothing stored', async () => {
    await logged(async () => {
      const [e1, e2] = stack.edges;
      const good = await provider(e2, 'bad');
      good.doc.getText('text').insert(0, 'ok');
      await sleep(300);
      const cases = [
        frame([0, 2, 5, 1, 2, 3, 4, 5]), // an update that is not one
        frame([0, 2, 3, 1, 0xff, 0xff]), // structs of an impossible client
        frame([0, 9, 1, 0]), // unknown sync type
        frame([0, 0, 3, 5, 1]), // truncated state vector
        frame([1, 4, 1, 7, 1, 9]), // awareness: truncated
        frame([1, 9, 1, 7, 1, 5], [...Buffer.from('{bad}')]), // awareness: not JSON
        frame([7]), // unknown message type
      ];
      for (const bytes of cases) {
        const c = rawConnect(e1, 'bad');
        await c.opened;
        c.ws.send(bytes);
        const { code } = await c.closed;
        assert.equal(code, 1008, `message ${bytes.toString('hex')}`);
      }
      const t = rawConnect(e1, 'bad');
      await t.opened;
      t.ws.send('text');
      assert.equal((await t.closed).code, 1003);
      good.doc.getText('text').insert(2, '!');
      const other = await provider(e1, 'bad');
      await waitFor(() => other.doc.getText('text').toString() === 'ok!', 10000, 'others unaffected');
      const stored = await fetchDoc(e1, 'bad');
      assert.equal(content(stored), content(good.doc));
      // nothing but the good client's two edits was logged
      const rows = await stack.psql("SELECT count(*) FROM doc_updates WHERE doc = 'bad'");
      assert.ok(Number(String(rows).trim()) <= 2, `rows: ${rows}`);
      destroy(good, other);
    });
  });

  test('a stream of updates sent at once and the connection closed: all stored, in a few batched requests', async () => {
    await logged(async () => {
      const [e1, e2] = stack.edges;
      const { src, updates } = typedUpdates(2000);
      const varz = async () => (await (await fetch(`${stack.nats.monitorUrl}/varz`)).json()).in_msgs;
      const c = rawConnect(e1, 'stream');
      await c.opened;
      const before = await varz();
      sendUpdates(c, updates);
      c.ws.close(); // at once: the edge closes with a request in flight and more batched, which must go all the same
      await c.closed;
      const reader = await provider(e2, 'stream');
      await waitFor(() => reader.doc.getText('text').length === 2000, 15000, 'every update');
      assert.equal(reader.doc.getText('text').toString(), src.getText('text').toString());
      // one request in flight per connection: 2000 updates cross NATS in far fewer messages
      const msgs = (await varz()) - before;
      assert.ok(msgs < 400, `NATS messages in: ${msgs}`);
      destroy(reader);
    });
  });

  test('a request of duplicates only is answered like one that changes something: the stream goes on', async () => {
    await logged(async () => {
      const [e1, e2] = stack.edges;
      const { updates } = typedUpdates(60);
      const c = rawConnect(e1, 'dups');
      await c.opened;
      const reader = await provider(e2, 'dups');
      try {
        sendUpdates(c, updates.slice(0, 50));
        await waitFor(() => reader.doc.getText('text').length === 50, 10000, 'the first 50');
        // the changed ones are answered by their broadcast; these change nothing, so
        // none comes: crdt-merge must reply, or the next request never leaves
        sendUpdates(c, updates.slice(0, 50));
        await sleep(50);
        sendUpdates(c, updates.slice(50));
        await waitFor(() => reader.doc.getText('text').length === 60, 5000, 'the last 10 after the duplicates');
        assert.equal(c.ws.readyState, 1, 'still open');
      } finally {
        c.ws.terminate();
        destroy(reader);
      }
    });
  });

  test('the log is compacted into a snapshot, and an idle document is unloaded and reloaded from them', async () => {
    await logged(async () => {
      const [e1, e2] = stack.edges;
      const a = await provider(e1, 'compact');
      for (let i = 0; i < 300; i++) {
        a.doc.getText('text').insert(0, `c${i} `);
        await sleep(2); // one turn, one log row each
      }
      const expected = content(a.doc);
      await waitFor(async () => content(await fetchDoc(e2, 'compact')) === expected, 10000, 'stored');
      const snap = await stack.psql("SELECT count(*) FROM doc_snapshots WHERE doc = 'compact'");
      assert.equal(String(snap).trim(), '1');
      const rows = Number(String(await stack.psql("SELECT count(*) FROM doc_updates WHERE doc = 'compact'")).trim());
      assert.ok(rows < 100, `log rows after compaction: ${rows}`);
      destroy(a);
      await waitFor(() => /doc_unloaded doc=compact/.test(stack.logs('crdt-merge-1')), 10000, 'unload');
      const b = await provider(e2, 'compact');
      assert.equal(content(b.doc), expected);
      destroy(b);
    });
  });

  test('log rows of a few KiB stay inline and uncompressed; larger values are compressed with lz4', async () => {
    await logged(async () => {
      const a = await provider(stack.edges[0], 'storage');
      const sizes = [5000, 40000]
      for (const n of sizes) {
        a.doc.getText('text').insert(0, 'y'.repeat(n));
        await sleep(200); // its own turn and log row
      }
      const sql = "SELECT pg_column_size(data) > 4000, coalesce(pg_column_compression(data), 'none') FROM doc_updates WHERE doc = 'storage' AND length(data) > 4000 ORDER BY length(data)";
      await waitFor(async () => String(await stack.psql(sql)).trim().split('\n').length === 2, 10000, 'stored');
      // pglz (PostgreSQL's default) would have compressed both
      assert.deepEqual(String(await stack.psql(sql)).trim().split('\n'), ['t|none', 'f|lz4']);
      destroy(a);
    });
  });

  test('the empty awareness update keeps an idle connection open (keepalive)', { skip: !process.env.RT_TEST_SLOW }, async () => {
    const c = rawConnect(stack.edges[0], 'idle');
    await c.opened;
    await c.next((m) => m.length === 3 && m[0] === 1 && m[1] === 1 && m[2] === 0, 25000);
    c.ws.close();
  });

  test('a large document (the automerge-paper trace) loads and syncs, also cold', async () => {
    await logged(async () => {
      const files = ensureTraceCache();
      const state = fs.readFileSync(files.state);
      const meta = JSON.parse(fs.readFileSync(files.meta));
      const [e1, e2] = stack.edges;
      const src = new Y.Doc();
      Y.applyUpdate(src, state);
      const a = await provider(e1, 'trace', { doc: src });
      const expected = src.getText('text').toString();
      if (meta.finalText) assert.equal(expected, meta.finalText);
      await waitFor(async () => (await fetchDoc(e2, 'trace'))?.getText('text').toString() === expected, 20000, 'stored');
      const b = await provider(e2, 'trace');
      assert.equal(b.doc.getText('text').toString(), expected);
      destroy(a, b);
      await stack.restart('crdt-merge-1');
      const t0 = Date.now();
      const c = await provider(e1, 'trace');
      assert.equal(c.doc.getText('text').toString(), expected);
      console.log(`cold load and sync of the trace: ${Date.now() - t0} ms`);
      destroy(c);
    });
  });

  test('crdt-merge killed with SIGKILL during edits: nothing sent a second before the kill is lost', async () => {
    await logged(async () => {
      const [e1] = stack.edges;
      const a = await provider(e1, 'kill');
      const sent = [];
      let stop = false;
      const writer = (async () => {
        for (let i = 0; !stop; i++) {
          a.doc.getText('text').insert(a.doc.getText('text').length, `<${i}>`);
          sent.push({ i, at: Date.now() });
          await sleep(5);
        }
      })();
      await sleep(2000);
      const killedAt = Date.now();
      await stack.kill('crdt-merge-1', 'SIGKILL');
      stop = true;
      await writer;
      destroy(a); // no client resync: what counts is what was stored
      await stack.start('crdt-merge-1');
      const stored = (await fetchDoc(e1, 'kill')).getText('text').toString();
      const due = sent.filter((s) => s.at < killedAt - 1000);
      assert.ok(due.length > 50);
      for (const s of due) assert.ok(stored.includes(`<${s.i}>`), `update ${s.i} lost`);
    });
  });

  test('awareness states of a killed edge are removed within seconds', async () => {
    await logged(async () => {
      const [e1, e2] = stack.edges;
      const a = await provider(e1, 'awedge');
      const b = await provider(e2, 'awedge');
      a.awareness.setLocalStateField('user', 'A');
      await waitFor(() => b.awareness.getStates().get(a.doc.clientID)?.user === 'A', 10000, 'state on b');
      a.shouldConnect = false;
      await stack.kill('edge-1', 'SIGKILL');
      const t0 = Date.now();
      await waitFor(() => !b.awareness.getStates().has(a.doc.clientID), 15000, 'removal');
      console.log(`awareness of a killed edge removed after ${Date.now() - t0} ms`);
      destroy(a, b);
      await stack.start('edge-1');
    });
  });

  test('the whole stack restarted: a fresh client receives the full document', async () => {
    await logged(async () => {
      const [e1, e2] = stack.edges;
      const a = await provider(e1, 'restart');
      for (let i = 0; i < 200; i++) a.doc.getText('text').insert(0, `r${i} `);
      const expected = a.doc.getText('text').toString();
      await waitFor(async () => (await fetchDoc(e2, 'restart'))?.getText('text').toString() === expected, 10000, 'stored');
      destroy(a);
      for (const name of ['edge-1', 'edge-2', 'crdt-merge-1', 'nats']) await stack.kill(name);
      await stack.stopPg();
      await stack.startPg();
      await stack.start('nats');
      await stack.start('crdt-merge-1');
      await stack.start('edge-1');
      await stack.start('edge-2');
      const b = await provider(e2, 'restart');
      assert.equal(b.doc.getText('text').toString(), expected);
      destroy(b);
    });
  });
});

describe('Yjs documents with two crdt-merge replicas', { timeout: 180000 }, () => {
  let stack;
  before(async () => {
    stack = await startStack({ edges: 2, services: [{ name: 'crdt-merge', replicas: 2 }] });
  });
  afterEach(closeAll);
  after(() => stack?.stop({ allowExits: true }));
  const logged = (fn) => stack.withLogs(fn)();

  test('documents are served consistently whichever replica gets the request, and survive a replica', async () => {
    await logged(async () => {
      const [e1, e2] = stack.edges;
      const rooms = Array.from({ length: 8 }, (_, i) => `rep-${i}`);
      const pairs = [];
      for (const room of rooms) pairs.push([await provider(e1, room), await provider(e2, room)]);
      const rand = rng(7);
      const edit = async (n) => {
        for (let i = 0; i < n; i++) {
          for (const [a, b] of pairs) {
            randomEdit(a.doc, rand, 'a');
            randomEdit(b.doc, rand, 'b');
          }
          if (i % 20 === 0) await sleep(5);
        }
      };
      const converged = async () => {
        for (const [a, b] of pairs) await waitFor(() => content(a.doc) === content(b.doc), 30000, 'convergence');
      };
      await edit(100);
      await converged();
      // a replica dies: its documents move to the survivor, which loads them from PostgreSQL
      await stack.kill('crdt-merge-2', 'SIGKILL');
      await edit(100);
      await converged();
      await sleep(500);
      for (let i = 0; i < rooms.length; i++) {
        const stored = await fetchDoc(e1, rooms[i]);
        assert.equal(content(stored), content(pairs[i][0].doc), rooms[i]);
      }
      // and comes back: documents move back to it
      await stack.start('crdt-merge-2');
      await edit(100);
      await converged();
      await sleep(500);
      for (let i = 0; i < rooms.length; i++) {
        assert.equal(content(await fetchDoc(e2, rooms[i])), content(pairs[i][1].doc), rooms[i]);
      }
      for (const [a, b] of pairs) destroy(a, b);
    });
  });
});
