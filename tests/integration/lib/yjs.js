// Helpers for the Yjs document tests: real y-websocket providers in Node, and
// raw y-websocket connections for protocol-level checks.

import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import WebSocket from 'ws';
import http from 'node:http';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every provider and raw connection made here, until destroyed: a test that
// fails half-way leaves none behind reconnecting (which would keep the test
// process alive until the runner's timeout) once closeAll runs after it.
const live = new Set();

/** Destroys every provider and closes every raw connection still open; for afterEach. */
export function closeAll() {
  for (const c of live) {
    if (c instanceof WebsocketProvider) destroy(c);
    else {
      c.opened.catch(() => {}); // terminated before it opened: not a failure of its own
      c.ws.terminate();
    }
  }
  live.clear();
}

export async function waitFor(cond, timeoutMs = 15000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A provider on `edge` for `room`, with a fresh Y.Doc unless one is given; resolves once synced. */
export async function provider(edge, room, { doc = new Y.Doc(), connect = true, awareness } = {}) {
  const p = new WebsocketProvider(`${edge.ws}/yjs`, room, doc, {
    WebSocketPolyfill: WebSocket,
    connect,
    disableBc: true,
    ...(awareness ? { awareness } : {}),
  });
  live.add(p);
  if (connect) await synced(p);
  return p;
}

export function synced(p, timeoutMs = 15000) {
  if (p.synced) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('provider did not sync')), timeoutMs);
    const on = (s) => {
      if (!s) return;
      clearTimeout(timer);
      p.off('sync', on);
      resolve();
    };
    p.on('sync', on);
  });
}

export function destroy(...ps) {
  for (const p of ps) {
    live.delete(p);
    const doc = p.doc;
    p.destroy();
    doc.destroy();
  }
}

/** GET url → {status, headers, body: Buffer}. */
export function getBytes(url, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
  });
}

/** GET /v1/docs/{doc} as a Y.Doc (null on 404). */
export async function fetchDoc(edge, room) {
  const r = await getBytes(`${edge.http}/v1/docs/${room}`);
  if (r.status === 404) return null;
  if (r.status !== 200) throw new Error(`GET /v1/docs/${room}: ${r.status} ${r.body}`);
  const d = new Y.Doc();
  Y.applyUpdate(d, new Uint8Array(r.body));
  return d;
}

/** A raw WebSocket on /yjs/{room}: collects binary messages; .closed resolves {code, reason}. */
export function rawConnect(edge, room) {
  const ws = new WebSocket(`${edge.ws}/yjs/${room}`);
  ws.binaryType = 'nodebuffer';
  const c = { ws, messages: [], waiters: [] };
  live.add(c);
  c.closed = new Promise((resolve) =>
    ws.on('close', (code, reason) => {
      live.delete(c);
      resolve({ code, reason: reason.toString() });
    }),
  );
  ws.on('message', (data) => {
    c.messages.push(new Uint8Array(data));
    for (const w of c.waiters.splice(0)) w();
  });
  c.opened = new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('error', reject);
  });
  c.next = async (pred, timeoutMs = 10000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = c.messages.findIndex(pred);
      if (i >= 0) return c.messages.splice(i, 1)[0];
      if (Date.now() > deadline) throw new Error('no matching message');
      await new Promise((r) => {
        c.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  };
  return c;
}
