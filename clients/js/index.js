// @rtsync/client: a small browser and Node client for rtsync's WebSocket
// protocol (PROTOCOL.md section 5). It does the hard parts for the app:
// reconnects over a list of edges with exponential backoff and full jitter,
// resubscribes from the last offset seen (no gap, no duplicate), keeps an
// offline publish queue (IndexedDB in browsers) resent with the same ids,
// refreshes tokens before `exp`, and has presence, state and signal helpers.

const CODES_RETRY = new Set(['unavailable', 'internal', 'rate_limited']);

/** A tiny event emitter: on(name, fn) returns a function that removes fn. */
class Emitter {
  constructor() {
    this._handlers = new Map();
  }
  on(name, fn) {
    if (!this._handlers.has(name)) this._handlers.set(name, new Set());
    this._handlers.get(name).add(fn);
    return () => this.off(name, fn);
  }
  off(name, fn) {
    this._handlers.get(name)?.delete(fn);
  }
  emit(name, ...args) {
    for (const fn of [...(this._handlers.get(name) || [])]) {
      try {
        fn(...args);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
}

/** The offline queue kept in memory (Node, tests). Same interface as IndexedDBStore. */
export class MemoryStore {
  constructor() {
    this.items = new Map();
  }
  async put(item) {
    this.items.set(item.id, item);
  }
  async delete(id) {
    this.items.delete(id);
  }
  async getAll() {
    return [...this.items.values()].sort((a, b) => a.seq - b.seq);
  }
}

/** The offline queue kept in IndexedDB (browsers): survives a reload. */
export class IndexedDBStore {
  constructor(name = 'rtsync-outbox') {
    this.name = name;
    this._db = null;
  }
  _open() {
    if (this._db) return this._db;
    this._db = new Promise((resolve, reject) => {
      const req = indexedDB.open(this.name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore('outbox', { keyPath: 'id' });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return this._db;
  }
  async _tx(mode, fn) {
    const db = await this._open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction('outbox', mode);
      const req = fn(tx.objectStore('outbox'));
      tx.oncomplete = () => resolve(req?.result);
      tx.onerror = () => reject(tx.error);
    });
  }
  put(item) {
    return this._tx('readwrite', (s) => s.put(item));
  }
  delete(id) {
    return this._tx('readwrite', (s) => s.delete(id));
  }
  async getAll() {
    const all = await this._tx('readonly', (s) => s.getAll());
    return all.sort((a, b) => a.seq - b.seq);
  }
}

/** Full-jitter exponential backoff: a random delay in [0, min(max, base * 2^attempt)). */
export function backoffDelay(attempt, base = 250, max = 10000, random = Math.random) {
  return Math.floor(random() * Math.min(max, base * 2 ** attempt));
}

/** The `exp` claim of a JWT in ms since the epoch, or null. */
export function tokenExpiry(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = typeof atob === 'function' ? atob(part) : Buffer.from(part, 'base64').toString();
    const exp = JSON.parse(json).exp;
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch {
    return null;
  }
}

function randomId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/**
 * One channel subscription. Events: 'message' (durable and ephemeral
 * messages, in offset order, once each), 'state', 'join', 'leave',
 * 'members' (the member map changed), 'signal', 'subscribed', 'error'.
 */
export class Subscription extends Emitter {
  constructor(client, channel, opts) {
    super();
    this.client = client;
    this.channel = channel;
    this.presence = !!opts.presence;
    this.lastOffset = opts.since ?? null; // the last offset delivered to the app
    this.latest = null; // the channel's latest offset when last subscribed
    this.active = false;
    /** user → Set of conn ids (presence); only with {presence: true}. */
    this.members = new Map();
    /** conn id → latest state of that connection */
    this.states = new Map();
  }

  _frame() {
    const f = { type: 'subscribe', channel: this.channel };
    if (this.lastOffset !== null) f.since = this.lastOffset;
    if (this.presence) f.presence = true;
    return f;
  }

  _addMember(user, conn) {
    if (!this.members.has(user)) this.members.set(user, new Set());
    this.members.get(user).add(conn);
  }

  _removeMember(user, conn) {
    const set = this.members.get(user);
    if (!set) return;
    set.delete(conn);
    if (!set.size) this.members.delete(user);
    this.states.delete(conn);
  }

  _on(frame) {
    switch (frame.type) {
      case 'subscribed':
        this.active = true;
        this.latest = frame.offset;
        if (this.lastOffset === null) this.lastOffset = frame.offset;
        this.emit('subscribed', frame);
        break;
      case 'message':
        if (typeof frame.offset === 'number') {
          if (this.lastOffset !== null && frame.offset <= this.lastOffset) return; // seen already
          this.lastOffset = frame.offset;
        }
        this.emit('message', frame);
        break;
      case 'presence':
        this.members = new Map();
        this.states = new Map();
        for (const m of frame.members || []) {
          this._addMember(m.user, m.conn);
          if (m.state) this.states.set(m.conn, { user: m.user, state: m.state });
        }
        // this connection is a member too, even if the snapshot was taken before its join
        if (this.client.welcome) this._addMember(this.client.welcome.user, this.client.welcome.conn);
        this.emit('members', this.members);
        break;
      case 'join':
        this._addMember(frame.user, frame.conn);
        this.emit('join', frame);
        this.emit('members', this.members);
        break;
      case 'leave':
        this._removeMember(frame.user, frame.conn);
        this.emit('leave', frame);
        this.emit('members', this.members);
        break;
      case 'state':
        this.states.set(frame.conn, { user: frame.user, state: frame.state });
        this.emit('state', frame);
        break;
      default:
        this.emit(frame.type, frame);
    }
  }

  /** Publishes on this channel (see RtClient.publish). */
  publish(data, opts) {
    return this.client.publish(this.channel, data, opts);
  }
  /** Sets this connection's state (typing, cursor ...) for the other members. */
  setState(state) {
    return this.client.setState(this.channel, state);
  }
  /** Sends a WebRTC signal to one connection of the channel. */
  signal(toConn, data) {
    return this.client.signal(this.channel, toConn, data);
  }
  unsubscribe() {
    this.client._unsubscribe(this);
  }
}

/**
 * The client. Options:
 *   urls: ['ws://host:8080/ws', ...] (tried in turn; a bare http(s)/ws(s) origin gets /ws)
 *   WebSocket: constructor (default globalThis.WebSocket; pass npm `ws` in Node)
 *   token: a JWT, or getToken: async () => fresh JWT (called at start, before `exp`, after 4001)
 *   user: the user name in open (development) mode (?user=)
 *   store: offline queue (default IndexedDBStore in browsers, MemoryStore elsewhere)
 *   backoff: {base: 250, max: 10000} ms; pingInterval: 15000 ms; refreshMargin: 30000 ms
 * Events: 'status' ('connecting' | 'online' | 'offline'), 'welcome', 'error', 'ack', 'signal'.
 */
export class RtClient extends Emitter {
  constructor(opts = {}) {
    super();
    const urls = opts.urls || (opts.url ? [opts.url] : []);
    if (!urls.length) throw new Error('RtClient: at least one edge url');
    this.urls = urls.map((u) => normalizeUrl(u));
    this.WebSocket = opts.WebSocket || globalThis.WebSocket;
    if (!this.WebSocket) throw new Error('RtClient: no WebSocket; pass the npm `ws` constructor in Node');
    this.token = opts.token || null;
    this.getToken = opts.getToken || null;
    this.user = opts.user || null;
    this.store =
      opts.store || (typeof indexedDB !== 'undefined' ? new IndexedDBStore(opts.storeName) : new MemoryStore());
    this.backoff = { base: 250, max: 10000, ...(opts.backoff || {}) };
    this.pingInterval = opts.pingInterval ?? 15000;
    this.refreshMargin = opts.refreshMargin ?? 30000;
    this.random = opts.random || Math.random;
    this.status = 'offline';
    this.subs = new Map(); // channel → Subscription
    this.pending = new Map(); // publish id → {resolve, reject}
    this.ws = null;
    this.welcome = null; // {conn, user, edge} of the current connection
    this.urlIndex = opts.startIndex ?? 0;
    this.attempt = 0;
    this.closed = true;
    this._seq = 0;
    this._timers = new Set();
    this._flushing = null;
    this._sentOn = new Map(); // publish id → conn it was last sent on
  }

  /** Starts connecting (idempotent). */
  connect() {
    if (!this.closed) return this;
    this.closed = false;
    this._open();
    return this;
  }

  /** Closes for good (the offline queue stays in the store). */
  close() {
    this.closed = true;
    for (const t of this._timers) clearTimeout(t);
    this._timers.clear();
    clearInterval(this._pinger);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try {
        ws.close(1000);
      } catch {
        /* not open yet */
      }
    }
    this._setStatus('offline');
  }

  /** The HTTP origin of the edge in use (or the first one). */
  get httpUrl() {
    return this.urls[this.urlIndex % this.urls.length].replace(/^ws/, 'http').replace(/\/ws$/, '');
  }

  get conn() {
    return this.welcome?.conn ?? null;
  }

  _later(fn, ms) {
    const t = setTimeout(() => {
      this._timers.delete(t);
      fn();
    }, ms);
    this._timers.add(t);
    return t;
  }

  _setStatus(s) {
    if (this.status === s) return;
    this.status = s;
    this.emit('status', s);
  }

  async _open() {
    if (this.closed) return;
    this._setStatus('connecting');
    if (this.getToken && (!this.token || this._expiresSoon())) {
      try {
        this.token = await this.getToken();
      } catch (e) {
        this.emit('error', { code: 'token', message: String(e) });
        return this._retry();
      }
      if (this.closed) return;
    }
    let url = this.urls[this.urlIndex % this.urls.length];
    if (this.user && !this.token) url += `${url.includes('?') ? '&' : '?'}user=${encodeURIComponent(this.user)}`;
    const protocols = this.token ? ['rt.v1', `bearer.${this.token}`] : ['rt.v1'];
    let ws;
    try {
      ws = new this.WebSocket(url, protocols);
    } catch (e) {
      this.emit('error', { code: 'connect', message: String(e) });
      return this._retry();
    }
    this.ws = ws;
    ws.onmessage = (ev) => this._onFrame(ws, ev.data);
    ws.onclose = (ev) => this._onClose(ws, ev.code);
    ws.onerror = () => {};
  }

  _expiresSoon() {
    const exp = this.token && tokenExpiry(this.token);
    return exp !== null && exp !== undefined && exp - Date.now() < this.refreshMargin;
  }

  _onClose(ws, code) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.welcome = null;
    clearInterval(this._pinger);
    clearTimeout(this._refreshTimer);
    for (const sub of this.subs.values()) sub.active = false;
    if (this.closed) return;
    this._setStatus('offline');
    if (code === 4001) this.token = null; // expired: getToken on the next attempt
    this._retry();
  }

  // Next edge in the list, after a full-jitter delay that grows with each failure.
  _retry() {
    if (this.closed) return;
    this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    const delay = backoffDelay(this.attempt, this.backoff.base, this.backoff.max, this.random);
    this.attempt = Math.min(this.attempt + 1, 30);
    this._later(() => this._open(), delay);
  }

  _send(frame) {
    if (!this.ws || !this.welcome) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  _onFrame(ws, raw) {
    if (ws !== this.ws) return;
    let f;
    try {
      f = JSON.parse(typeof raw === 'string' ? raw : raw.toString());
    } catch {
      return;
    }
    this._lastHeard = Date.now();
    if (f.type === 'welcome') return this._onWelcome(f);
    if (f.type === 'pong') return;
    if (f.type === 'ack') {
      if (f.id !== undefined) this._settle(f.id, null, f);
      this.emit('ack', f);
      return;
    }
    if (f.type === 'error') {
      if (f.ref !== undefined && this.pending.has(f.ref)) this._settle(f.ref, f);
      this.emit('error', f);
      const sub = f.channel && this.subs.get(f.channel);
      if (sub) sub.emit('error', f);
      return;
    }
    if (f.type === 'signal') this.emit('signal', f);
    const sub = f.channel !== undefined && this.subs.get(f.channel);
    if (sub) sub._on(f);
  }

  _onWelcome(f) {
    this.welcome = f;
    this.attempt = 0;
    this._setStatus('online');
    this.emit('welcome', f);
    for (const sub of this.subs.values()) this._send(sub._frame());
    this._flush();
    clearInterval(this._pinger);
    this._lastHeard = Date.now();
    if (this.pingInterval > 0) {
      this._pinger = setInterval(() => {
        // a connection silent for two intervals is dead (a half-open TCP)
        if (Date.now() - this._lastHeard > 2 * this.pingInterval) this.ws?.close();
        else this._send({ type: 'ping' });
      }, this.pingInterval);
    }
    this._scheduleRefresh();
  }

  // Before the token expires, get a fresh one and reconnect with it
  // (resubscribing from the last offsets: the app sees nothing).
  _scheduleRefresh() {
    clearTimeout(this._refreshTimer);
    const exp = this.token && tokenExpiry(this.token);
    if (!exp || !this.getToken) return;
    const ms = Math.max(0, exp - Date.now() - this.refreshMargin);
    this._refreshTimer = setTimeout(async () => {
      try {
        this.token = await this.getToken();
      } catch (e) {
        this.emit('error', { code: 'token', message: String(e) });
        return;
      }
      const ws = this.ws;
      if (!ws || this.closed) return;
      this.ws = null;
      this.welcome = null;
      clearInterval(this._pinger);
      ws.onclose = null;
      ws.close(1000);
      this._open();
    }, ms);
  }

  /** Subscribes (or returns the existing subscription). opts: {presence, since}. */
  subscribe(channel, opts = {}) {
    let sub = this.subs.get(channel);
    if (sub) return sub;
    sub = new Subscription(this, channel, opts);
    this.subs.set(channel, sub);
    this._send(sub._frame());
    return sub;
  }

  _unsubscribe(sub) {
    if (this.subs.get(sub.channel) !== sub) return;
    this.subs.delete(sub.channel);
    this._send({ type: 'unsubscribe', channel: sub.channel });
  }

  /**
   * Publishes a message. Durable publishes go through the offline queue: kept
   * in the store until acknowledged, resent with the same id after a
   * reconnect (the server deduplicates). Resolves with the ack {offset}.
   * Ephemeral ones are sent only when online and not queued.
   * opts: {event, id, ephemeral}
   */
  publish(channel, data, opts = {}) {
    const item = { id: opts.id || randomId(), channel, data, seq: Date.now() * 1000 + (this._seq++ % 1000) };
    if (opts.event) item.event = opts.event;
    if (opts.ephemeral) {
      const f = { type: 'publish', ...item, ephemeral: true };
      delete f.seq;
      return Promise.resolve(this._send(f));
    }
    const done = new Promise((resolve, reject) => this.pending.set(item.id, { resolve, reject }));
    this.store.put(item).then(() => this._flush());
    return done;
  }

  // Sends the queued publishes in order (after a reconnect, or a new publish).
  _flush() {
    if (this._flushing) {
      this._flushAgain = true;
      return this._flushing;
    }
    const run = async () => {
      do {
        this._flushAgain = false;
        if (!this.welcome) break;
        const items = await this.store.getAll();
        const conn = this.welcome?.conn;
        for (const it of items) {
          if (!conn || this.welcome?.conn !== conn) break;
          if (this._sentOn.get(it.id) === conn) continue; // already sent on this connection
          this._sentOn.set(it.id, conn);
          const f = { type: 'publish', channel: it.channel, data: it.data, id: it.id };
          if (it.event) f.event = it.event;
          this._send(f);
        }
      } while (this._flushAgain);
    };
    // set before run() starts: a run that ends at once (offline) must not leave it set
    this._flushing = Promise.resolve()
      .then(run)
      .finally(() => {
        this._flushing = null;
        if (this._flushAgain) this._flush();
      });
    return this._flushing;
  }

  async _settle(id, err, ack) {
    const p = this.pending.get(id);
    if (err && CODES_RETRY.has(err.code)) {
      // keep it queued; it goes again on the next connection or after a pause
      this._later(() => {
        this._sentOn.delete(id);
        this._flush();
      }, err.code === 'rate_limited' ? 5000 : 1000);
      return;
    }
    this._sentOn.delete(id);
    await this.store.delete(id);
    if (!p) return;
    this.pending.delete(id);
    if (err) p.reject(Object.assign(new Error(err.message || err.code), { code: err.code }));
    else p.resolve(ack);
  }

  /** The publishes not acknowledged yet (the offline queue). */
  queued() {
    return this.store.getAll();
  }

  /** Sets this connection's state in a channel (typing, cursor ...); false when offline. */
  setState(channel, state) {
    return this._send({ type: 'state', channel, state });
  }

  /** Sends a WebRTC signal (offer, answer, ICE) to one connection; false when offline. */
  signal(channel, to, data) {
    return this._send({ type: 'signal', channel, to, data });
  }

  _authHeaders() {
    return this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }

  _httpUrl(pathAndQuery) {
    let u = this.httpUrl + pathAndQuery;
    if (this.user && !this.token) u += `${u.includes('?') ? '&' : '?'}user=${encodeURIComponent(this.user)}`;
    return u;
  }

  /** History through the HTTP API: {before} pages backwards, {after} forwards; returns messages ascending. */
  async history(channel, { before, after, limit = 50 } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (before !== undefined) q.set('before', String(before));
    if (after !== undefined) q.set('after', String(after));
    const r = await fetch(this._httpUrl(`/v1/channels/${encodeURIComponent(channel)}/messages?${q}`), {
      headers: this._authHeaders(),
    });
    if (!r.ok) throw new Error(`history: HTTP ${r.status}`);
    return (await r.json()).messages;
  }

  /** The member list through the HTTP API. */
  async presence(channel) {
    const r = await fetch(this._httpUrl(`/v1/channels/${encodeURIComponent(channel)}/presence`), {
      headers: this._authHeaders(),
    });
    if (!r.ok) throw new Error(`presence: HTTP ${r.status}`);
    return (await r.json()).members;
  }
}

function normalizeUrl(u) {
  let s = String(u).replace(/^http/, 'ws');
  if (!/\/ws(\?|$)/.test(s)) s = s.replace(/\/$/, '') + '/ws';
  return s;
}

/** Shorthand: new RtClient(opts).connect(). */
export function connect(opts) {
  return new RtClient(opts).connect();
}
