// Client helpers for integration tests: a WebSocket client that queues the
// frames it receives so a test can `await next(predicate)`, a raw SSE reader
// for byte-exact format checks, and a plain HTTP request helper.

import http from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import WebSocket from 'ws';

// predicate: a function, a frame type ('ack'), or an object whose keys must
// all match the frame's (nested objects compared whole)
function matcher(pred) {
  if (pred === undefined) return () => true;
  if (typeof pred === 'function') return pred;
  if (typeof pred === 'string') return (f) => f && f.type === pred;
  return (f) => f !== null && typeof f === 'object' && Object.entries(pred).every(([k, v]) => isDeepStrictEqual(f[k], v));
}

const show = (f) => (Buffer.isBuffer(f) ? `<binary ${f.length} bytes>` : JSON.stringify(f));

/**
 * Opens a WebSocket. Resolves when open; rejects with err.status / err.headers /
 * err.body when the server refuses the upgrade (e.g. 401).
 * Text frames are parsed as JSON (unparsable ones become {type: '__text', text});
 * binary frames are Buffers. Options: protocols, headers, timeoutMs, and any
 * option of the `ws` package (maxPayload ...).
 */
export function connectWs(url, { protocols, headers, timeoutMs = 5000, ...wsOpts } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers, handshakeTimeout: timeoutMs, ...wsOpts });
    const client = new WsClient(ws);
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (req, res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const err = new Error(`WebSocket upgrade refused: HTTP ${res.statusCode}`);
        Object.assign(err, { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() });
        reject(err);
        req.destroy();
      });
    });
    ws.once('error', reject);
  });
}

export class WsClient {
  constructor(ws) {
    this.ws = ws;
    this.queue = []; // received, not yet consumed by next()
    this.all = []; // every frame received
    this.waiters = [];
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const w of this.waiters.splice(0)) w.fail(new Error(`connection closed (${code} ${reason})`));
        resolve(this.closeInfo);
      });
    });
    ws.on('error', () => {}); // surfaced through `closed`
    ws.on('message', (data, isBinary) => this.push(isBinary ? Buffer.from(data) : parseText(data.toString())));
  }

  push(frame) {
    this.all.push(frame);
    const i = this.waiters.findIndex((w) => w.match(frame));
    if (i >= 0) this.waiters.splice(i, 1)[0].done(frame);
    else this.queue.push(frame);
  }

  get protocol() {
    return this.ws.protocol;
  }

  /** Sends an object as JSON; strings and Buffers are sent as they are. */
  send(msg) {
    this.ws.send(typeof msg === 'string' || Buffer.isBuffer(msg) || msg instanceof Uint8Array ? msg : JSON.stringify(msg));
  }

  /** Removes and returns the first queued or future frame matching `pred`. */
  next(pred, timeoutMs = 5000) {
    const match = matcher(pred);
    const i = this.queue.findIndex(match);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    if (this.closeInfo) return Promise.reject(new Error(`connection closed (${this.closeInfo.code}) before a matching frame`));
    return new Promise((resolve, reject) => {
      const w = {
        match,
        done: (f) => {
          clearTimeout(w.timer);
          resolve(f);
        },
        fail: (e) => {
          clearTimeout(w.timer);
          reject(e);
        },
      };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        const recent = this.queue.slice(-5).map(show).join('\n  ');
        reject(new Error(`no frame matching ${typeof pred === 'function' ? pred.toString() : show(pred)} within ${timeoutMs} ms; unconsumed:\n  ${recent}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Sends `msg` and waits for the first frame matching `pred`. */
  request(msg, pred, timeoutMs) {
    this.send(msg);
    return this.next(pred, timeoutMs);
  }

  /** Resolves if no frame matching `pred` arrives within `ms`; rejects otherwise. */
  async expectNone(pred, ms = 500) {
    const got = await this.next(pred, ms).catch(() => null);
    if (got !== null) throw new Error(`unexpected frame ${show(got)}`);
  }

  /** Closes (code 1000 by default) and waits for the close to finish. */
  close(code = 1000, reason = '') {
    if (!this.closeInfo) this.ws.close(code, reason);
    return this.closed;
  }

  /** Drops the TCP connection without a close frame. */
  terminate() {
    this.ws.terminate();
    return this.closed;
  }
}

function parseText(text) {
  try {
    return JSON.parse(text);
  } catch {
    return { type: '__text', text };
  }
}

/**
 * Opens a Server-Sent Events stream with a plain GET and keeps the raw bytes.
 * Resolves on the response headers with {status, headers, raw(), text(),
 * waitFor(pred, timeoutMs), events(), close(), ended}. `pred` for waitFor is a
 * substring, a RegExp, or a function of the text received so far.
 */
export function sseRaw(url, { headers = {}, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      clearTimeout(timer);
      const chunks = [];
      const waiters = [];
      let ended = false;
      const text = () => Buffer.concat(chunks).toString('utf8');
      const check = () => {
        for (const w of [...waiters]) {
          if (w.test(text())) {
            waiters.splice(waiters.indexOf(w), 1);
            w.done();
          } else if (ended) {
            waiters.splice(waiters.indexOf(w), 1);
            w.fail(new Error(`SSE stream ended before ${w.desc}; got:\n${text()}`));
          }
        }
      };
      res.on('data', (c) => {
        chunks.push(c);
        check();
      });
      const endP = new Promise((r) => res.on('close', () => ((ended = true), check(), r())));
      resolve({
        status: res.statusCode,
        headers: res.headers,
        raw: () => Buffer.concat(chunks),
        text,
        events: () => parseSse(text()),
        ended: endP,
        waitFor(pred, ms = 5000) {
          const test = typeof pred === 'string' ? (t) => t.includes(pred) : pred instanceof RegExp ? (t) => pred.test(t) : pred;
          return new Promise((ok, fail) => {
            const w = { test, desc: String(pred) };
            const t = setTimeout(() => {
              waiters.splice(waiters.indexOf(w), 1);
              fail(new Error(`SSE: no ${w.desc} within ${ms} ms; got:\n${text()}`));
            }, ms);
            w.done = () => (clearTimeout(t), ok(text()));
            w.fail = (e) => (clearTimeout(t), fail(e));
            waiters.push(w);
            check();
          });
        },
        close() {
          req.destroy();
          return endP;
        },
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`SSE ${url}: no response within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * Parses an event stream into [{id, event, data, retry, comments}] (only the
 * complete events, i.e. those ended by a blank line). Fields absent from an
 * event stay undefined; data lines are joined with '\n'.
 */
export function parseSse(text) {
  const events = [];
  const blocks = text.split(/\r\n|\r|\n/);
  let cur = null;
  for (const line of blocks.slice(0, -1)) {
    if (line === '') {
      if (cur) events.push(cur);
      cur = null;
      continue;
    }
    cur = cur || { comments: [] };
    if (line.startsWith(':')) {
      cur.comments.push(line.slice(1).trimStart());
      continue;
    }
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') cur.data = cur.data === undefined ? value : `${cur.data}\n${value}`;
    else cur[field] = value;
  }
  return events;
}

/**
 * One HTTP request (no keep-alive) → {status, headers, body (Buffer), text, json()}.
 * `body` may be an object (sent as JSON), a string or a Buffer.
 */
export function request(method, url, { body, headers = {}, timeoutMs = 10000 } = {}) {
  let payload = body;
  const h = { ...headers };
  if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
    payload = JSON.stringify(body);
    h['content-type'] = h['content-type'] || 'application/json';
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: h, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: buf,
          text: buf.toString('utf8'),
          json: () => JSON.parse(buf.toString('utf8')),
        });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timeout`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}
