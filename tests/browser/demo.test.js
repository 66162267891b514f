// The demo app (demo/, served by the edge at /) in headless Chromium against
// a real stack of two edges: chat with history, members and typing; the
// collaborative editor; the LLM-style stream resumed across a reload; the
// dashboard; a WebRTC data channel; an edge killed under connected pages.
// Screenshots go to build/screenshots/ (RT_SCREENSHOTS_DIR=docs/screenshots
// refreshes the README's) and are checked to be non-blank.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startStack, httpGet, ROOT } from '../integration/lib/stack.js';
import { CHROMIUM, launch, pngIsBlank } from './lib/browser.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const DEMO = path.join(ROOT, 'build/demo');
const SHOTS = path.resolve(ROOT, process.env.RT_SCREENSHOTS_DIR || 'build/screenshots');
const BIN = process.env.TEST_BIN_DIR || path.join(ROOT, 'build/bin');
const WANTED = ['chat-history', 'presence', 'crdt-merge'];
const built = WANTED.filter((s) => fs.existsSync(path.join(BIN, s)));
const missing = WANTED.filter((s) => !built.includes(s));
if (missing.length) console.log(`# browser tests: not built (${missing.join(', ')}): their parts are skipped`);
const noDemo = !fs.existsSync(path.join(DEMO, 'index.html'))
  ? 'build/demo is not built (make)'
  : !fs.existsSync(CHROMIUM)
    ? `${CHROMIUM} is not installed (scripts/deps.sh installs Debian's chromium)`
    : false;
if (noDemo) console.log(`# browser tests skipped: ${noDemo}`);

let stack, browser, worker;
let e1, e2; // host:port of the edges

async function until(cond, ms = 10000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!(await Promise.resolve().then(cond).catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await sleep(50);
  }
}

before(async () => {
  if (noDemo) return;
  const ttl = { RT_PRESENCE_TTL: '3s' };
  const edge = { ...ttl, RT_RATE_LIMIT: '100000' };
  stack = await startStack({ edges: 2, services: built, env: { RT_STATIC_DIR: DEMO }, envFor: { edge, presence: ttl } });
  [e1, e2] = stack.edges.map((e) => e.http.replace(/^http:\/\//, ''));
  browser = await launch();
});

after(async () => {
  await browser?.close();
  worker?.kill('SIGKILL');
  await stack?.stop({ allowExits: true });
});

/** false when the demo and these services are built, else why the test is skipped. */
const need = (...services) => {
  if (noDemo) return noDemo;
  const absent = services.filter((s) => !built.includes(s));
  return absent.length ? `not built in ${BIN}: ${absent.join(', ')}` : false;
};

/** Opens the demo on an edge; edges = the client's list (its own first). */
async function open(query, { edge = e1, edges = [edge, edge === e1 ? e2 : e1] } = {}) {
  const page = await browser.context.newPage();
  page.on('pageerror', (e) => console.log(`# page error (${query}): ${e.message}`));
  await page.goto(`http://${edge}/?${query}&edges=${edges.join(',')}`);
  await page.waitForFunction(() => window.__demo?.client?.status === 'online', null, { timeout: 10000 });
  return page;
}

async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  const buf = await page.screenshot({ path: file });
  const r = pngIsBlank(buf);
  assert.ok(!r.blank, `${name}.png is blank (${r.colors} colors)`);
  return file;
}

const chatLog = (page) =>
  page.$$eval('#chat-log li[data-offset]', (lis) => lis.map((li) => ({ offset: Number(li.dataset.offset), text: li.textContent })));

async function say(page, text) {
  await page.fill('#chat-input', text);
  await page.press('#chat-input', 'Enter');
}

test('the edge serves the demo: index, assets, no traversal', { skip: need() }, async () => {
  const index = await httpGet(`http://${e1}/`);
  assert.equal(index.status, 200);
  assert.match(index.body, /rtsync demo/);
  assert.equal((await httpGet(`http://${e1}/assets/app.js`)).status, 200);
  assert.equal((await httpGet(`http://${e1}/assets/nope.js`)).status, 404);
  assert.equal((await httpGet(`http://${e1}/assets/%2e%2e/%2e%2e/Makefile`)).status, 404);
});

test('chat: two pages talk, a third sees the history and both members, typing shows', { skip: need('chat-history', 'presence') }, async () => {
  const room = `room-${Date.now()}`;
  const a = await open(`panel=chat&user=alice&room=${room}`, { edge: e1 });
  const b = await open(`panel=chat&user=bob&room=${room}`, { edge: e2 });
  await say(a, 'hello bob');
  await until(async () => (await chatLog(b)).some((m) => m.text.includes('hello bob')), 10000, 'bob sees alice');
  await say(b, 'hi alice');
  await until(async () => (await chatLog(a)).some((m) => m.text.includes('hi alice')), 10000, 'alice sees bob');
  const c = await open(`panel=chat&user=carol&room=${room}`, { edge: e1 });
  await until(async () => (await chatLog(c)).length === 2, 10000, 'carol sees the history');
  const log = await chatLog(c);
  assert.match(log[0].text, /alice: hello bob/);
  assert.match(log[1].text, /bob: hi alice/);
  const members = () => c.$$eval('#chat-members li', (lis) => lis.map((li) => li.textContent).join(','));
  await until(async () => (await members()) === 'alice,bob,carol', 10000, 'members').catch(async (e) => {
    throw new Error(`${e.message}: ${await members()}`);
  });
  await a.type('#chat-input', 'typing…', { delay: 20 });
  await until(async () => /alice typing/.test(await c.textContent('#chat-typing')), 10000, 'typing indicator');
  await shot(c, 'chat');
  await Promise.all([a.close(), b.close(), c.close()]);
});

test('chat scrollback: older messages page in through GET /v1/channels/{ch}/messages?before=N', { skip: need('chat-history') }, async () => {
  const room = `scroll-${Date.now()}`;
  for (let i = 1; i <= 45; i++) {
    const r = await fetch(`http://${e2}/v1/channels/${room}/publish?user=bot`, {
      method: 'POST',
      body: JSON.stringify({ data: { text: `old ${i}` } }),
    });
    assert.equal(r.status, 200);
  }
  const page = await open(`panel=chat&user=dora&room=${room}`, { edge: e1 });
  await until(async () => (await chatLog(page)).length === 30, 10000, 'the latest 30');
  assert.equal((await chatLog(page))[0].offset, 16);
  await page.click('#chat-older');
  await until(async () => (await chatLog(page)).length === 45, 10000, 'all 45 after a scrollback');
  const log = await chatLog(page);
  assert.deepEqual(log.map((m) => m.offset), Array.from({ length: 45 }, (_, i) => i + 1));
  assert.equal(await page.isDisabled('#chat-older'), true);
  await page.close();
});

test('editor: two pages edit one document concurrently, converge, see each other\'s cursor', { skip: need('crdt-merge') }, async (t) => {
  const probe = await httpGet(`http://${e1}/v1/docs/x`);
  if (probe.status === 404 && /no such route/.test(probe.body)) return t.skip('/v1/docs and /yjs are not routed by the edge yet');
  const doc = `doc-${Date.now()}`;
  const a = await open(`panel=editor&user=alice&doc=${doc}`, { edge: e1 });
  const b = await open(`panel=editor&user=bob&doc=${doc}`, { edge: e2 });
  for (const p of [a, b]) await p.waitForFunction(() => window.__demo.editor?.provider.synced, null, { timeout: 10000 });
  await a.click('.cm-content');
  await b.click('.cm-content');
  await Promise.all([a.keyboard.type('alice writes here. ', { delay: 15 }), b.keyboard.type('bob writes there. ', { delay: 15 })]);
  const text = (p) => p.evaluate(() => window.__demo.editor.ytext.toString());
  await until(async () => (await text(a)) === (await text(b)) && (await text(a)).length === 37, 10000, 'convergence').catch(async (e) => {
    throw new Error(`${e.message}: ${JSON.stringify(await text(a))} vs ${JSON.stringify(await text(b))}`);
  });
  const final = await text(a);
  assert.ok(final.includes('alice writes here. ') && final.includes('bob writes there. '), final);
  assert.equal(await a.evaluate(() => window.__demo.editor.view.state.doc.toString()), final);
  assert.equal(await b.evaluate(() => window.__demo.editor.view.state.doc.toString()), final);
  await until(async () => (await a.textContent('.cm-ySelectionInfo').catch(() => '')) === 'bob', 10000, 'bob\'s cursor at alice');
  await until(async () => (await b.textContent('.cm-ySelectionInfo').catch(() => '')) === 'alice', 10000, 'alice\'s cursor at bob');
  await shot(a, 'editor');
  await Promise.all([a.close(), b.close()]);
});

// The demo worker; resolves once it listens for prompts.
async function startWorker() {
  if (worker) return;
  const logFile = path.join(stack.logDir, 'demo-worker.log');
  const log = fs.openSync(logFile, 'a');
  worker = spawn(process.execPath, [path.join(ROOT, 'demo/worker/worker.mjs')], {
    env: { ...process.env, RT_EDGES: `${e1},${e2}`, RT_TOKEN_MS: '80', RT_STATS_MS: '500' },
    stdio: ['ignore', log, log],
  });
  await until(() => /listening on llm-requests/.test(fs.readFileSync(logFile, 'utf8')), 10000, 'the demo worker');
}

test('stream: tokens arrive progressively; a reload mid-stream resumes with no lost or repeated token', { skip: need('chat-history') }, async () => {
  await startWorker();
  const page = await open('panel=stream&user=reader', { edge: e1 });
  await page.click('#stream-form button');
  const lengths = new Set();
  await until(async () => {
    lengths.add((await page.textContent('#stream-out')).length);
    return (await page.evaluate(() => window.__demo.stream.tokens)) >= 12;
  }, 15000, '12 tokens');
  assert.ok(lengths.size >= 3, `the answer grew progressively (${[...lengths]})`);
  const { channel } = await page.evaluate(() => window.__demo.stream.state);
  await page.reload();
  await page.waitForFunction(() => window.__demo?.stream, null, { timeout: 10000 });
  assert.ok((await page.evaluate(() => window.__demo.stream.state.done)) === false, 'the reload was mid-stream');
  await page.waitForFunction(() => window.__demo.stream.state.done, null, { timeout: 20000 });
  const shown = await page.textContent('#stream-out');
  const r = await httpGet(`http://${e1}/v1/channels/${channel}/messages?after=0&limit=1000`);
  const tokens = JSON.parse(r.body).messages.filter((m) => m.event === 'token');
  assert.equal(shown, tokens.map((m) => m.data).join(''), 'every token once, in order');
  assert.ok(tokens.length > 20);
  await shot(page, 'stream');
  await page.close();
});

test('dashboard: cluster stats pushed over SSE and drawn', { skip: need() }, async () => {
  await startWorker();
  const page = await open('panel=dashboard&user=ops', { edge: e2 });
  await page.waitForFunction(() => window.__demo.dashboard.samples >= 4, null, { timeout: 15000 });
  const rows = await page.$$eval('#dash-table tbody tr', (trs) => trs.map((tr) => tr.textContent));
  assert.equal(rows.length, 2);
  assert.ok(rows.every((r) => /edge-\dyes/.test(r)), rows.join(' | '));
  await shot(page, 'dashboard');
  await page.close();
});

test('WebRTC: two pages open a data channel signaled through `signal` frames', { skip: need('presence') }, async () => {
  const room = `rtc-${Date.now()}`;
  const a = await open(`panel=rtc&user=ann&room=${room}`, { edge: e1 });
  const b = await open(`panel=rtc&user=ben&room=${room}`, { edge: e2 });
  await Promise.all([a, b].map((p) => p.waitForFunction(() => window.__demo.rtc.open, null, { timeout: 20000 })));
  await a.fill('#rtc-input', 'hello over WebRTC');
  await a.press('#rtc-input', 'Enter');
  await b.waitForFunction(() => window.__demo.rtc.received.includes('hello over WebRTC'), null, { timeout: 5000 });
  await shot(b, 'rtc');
  await Promise.all([a.close(), b.close()]);
});

test('overview screenshot: every panel on one page', { skip: need() }, async () => {
  await startWorker();
  const page = await open('user=visitor&room=welcome', { edge: e1 });
  await say(page, 'Hello from the demo!');
  await page.click('#stream-form button');
  await page.waitForFunction(() => window.__demo.stream.tokens >= 15, null, { timeout: 10000 });
  await page.waitForFunction(() => window.__demo.dashboard.samples >= 3, null, { timeout: 10000 });
  await page.setViewportSize({ width: 1280, height: 900 });
  await shot(page, 'overview');
  await page.close();
});

test('an edge is killed under connected pages: they move to the other edge, no chat message lost or repeated; offline messages delivered once', { skip: need('chat-history') }, async () => {
  const room = `fail-${Date.now()}`;
  const a = await open(`panel=chat&user=alice&room=${room}`, { edge: e1, edges: [e1, e2] });
  const b = await open(`panel=chat&user=bob&room=${room}`, { edge: e2, edges: [e2, e1] });
  // bob keeps talking through the failover
  await b.evaluate(() => {
    let n = 0;
    window.__talk = setInterval(() => window.__demo.chat.sub.publish({ text: `bob ${n++}` }), 100);
  });
  // alice types two messages the moment she is offline
  await a.evaluate(() => {
    const c = window.__demo.client;
    window.__typedOffline = 0;
    c.on('status', (s) => {
      if (s !== 'offline' || window.__typedOffline) return;
      for (const text of ['offline one', 'offline two']) {
        document.getElementById('chat-input').value = text;
        document.getElementById('chat-form').requestSubmit();
        window.__typedOffline++;
      }
    });
  });
  await until(async () => (await chatLog(a)).length >= 10, 10000, 'traffic before the kill');
  await stack.kill('edge-1', 'SIGKILL');
  await a.waitForFunction(() => window.__typedOffline === 2, null, { timeout: 5000 });
  await a.waitForFunction(() => window.__demo.client.status === 'online', null, { timeout: 15000 });
  assert.equal(await a.evaluate(() => window.__demo.client.welcome.edge), 'edge-2');
  await sleep(1000);
  await b.evaluate(() => clearInterval(window.__talk));
  const last = await b.evaluate(() => window.__demo.chat.sub.publish({ text: 'the end' }).then((ack) => ack.offset));
  for (const p of [a, b]) {
    await until(async () => (await chatLog(p)).some((m) => m.offset === last), 10000, 'the last message');
    const log = (await chatLog(p)).filter((m) => m.offset >= 1);
    for (let i = 1; i < log.length; i++) assert.equal(log[i].offset, log[i - 1].offset + 1, `no gap or duplicate at ${log[i].offset}`);
    assert.equal(log.filter((m) => /offline one/.test(m.text)).length, 1);
    assert.equal(log.filter((m) => /offline two/.test(m.text)).length, 1);
  }
  assert.equal(await a.evaluate(() => window.__demo.client.queued().then((q) => q.length)), 0);
  await Promise.all([a.close(), b.close()]);
});
