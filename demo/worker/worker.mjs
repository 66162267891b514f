// The demo's back end, in Node: plays an LLM (answers prompts published on
// channel `llm-requests` token by token through the HTTP publish API, events
// "token" then "done") and scrapes every edge's /metrics into ephemeral
// "stats" events on channel `cluster-stats` for the dashboard.
//
// Environment: RT_EDGES (comma-separated http origins, default
// http://127.0.0.1:8080,http://127.0.0.1:8081), RT_TOKEN_MS (pause between
// tokens, default 60), RT_STATS_MS (scrape period, default 1000).
import WebSocket from 'ws';
import { RtClient } from '../../clients/js/index.js';

const EDGES = (process.env.RT_EDGES || 'http://127.0.0.1:8080,http://127.0.0.1:8081')
  .split(',')
  .map((s) => s.trim().replace(/\/$/, ''))
  .filter(Boolean)
  .map((s) => (/^https?:/.test(s) ? s : `http://${s}`));
const TOKEN_MS = Number(process.env.RT_TOKEN_MS || 60);
const STATS_MS = Number(process.env.RT_STATS_MS || 1000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log(new Date().toISOString(), 'demo-worker', ...a);

// POST to the first edge that answers.
async function publish(channel, body) {
  let last;
  for (let i = 0; i < EDGES.length * 3; i++) {
    const edge = EDGES[i % EDGES.length];
    try {
      const r = await fetch(`${edge}/v1/channels/${encodeURIComponent(channel)}/publish?user=demo-worker`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (r.ok) return r.json();
      last = new Error(`HTTP ${r.status}`);
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw last;
}

/** The deterministic "model": an answer of ~40 tokens that quotes the prompt. */
export function answer(prompt) {
  const words = String(prompt).trim().split(/\s+/).filter(Boolean).slice(0, 8);
  const text =
    `You asked about "${words.join(' ')}". rtsync streams this answer one token at a time ` +
    `through POST /v1/channels/{ch}/publish; your browser reads it with EventSource from /sse/{ch}, ` +
    `and a reload resumes from the last event id without losing or repeating a token.`;
  return text.match(/\S+\s*/g);
}

async function stream(req) {
  const { prompt, channel, id } = req;
  if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(channel || '')) return;
  log('answering', channel);
  const tokens = answer(prompt);
  for (let i = 0; i < tokens.length; i++) {
    // the same id on a retry: the server keeps each token once
    await publish(channel, { event: 'token', data: tokens[i], id: `${id || channel}-${i}` });
    await sleep(TOKEN_MS);
  }
  await publish(channel, { event: 'done', data: { tokens: tokens.length }, id: `${id || channel}-done` });
}

function listen() {
  const client = new RtClient({ urls: EDGES, WebSocket, user: 'demo-worker', backoff: { base: 200, max: 3000 } });
  client.on('status', (s) => log('status', s));
  const sub = client.subscribe('llm-requests');
  sub.on('subscribed', () => log('listening on llm-requests'));
  sub.on('message', (m) => {
    if (m.event === 'prompt' && m.data && typeof m.data === 'object') stream(m.data).catch((e) => log('stream', e.message));
  });
  client.connect();
}

// ---- dashboard stats -------------------------------------------------------------

function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^(rtsync_edge_[a-z_]+)\{edge="([^"]*)"\} ([0-9.e+-]+)$/.exec(line);
    if (m) out[m[1]] = Number(m[3]);
    if (m) out.edge = m[2];
  }
  return out;
}

async function scrapeLoop() {
  const prev = new Map();
  for (;;) {
    const t0 = Date.now();
    const edges = [];
    await Promise.all(
      EDGES.map(async (url) => {
        try {
          const r = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(800) });
          const m = parseMetrics(await r.text());
          const p = prev.get(url);
          const dt = p ? (t0 - p.t) / 1000 : 0;
          const rate = (k) => (p && dt > 0 ? Math.max(0, (m[k] - p.m[k]) / dt) : 0);
          prev.set(url, { t: t0, m });
          edges.push({
            url,
            edge: m.edge,
            up: true,
            connections: m.rtsync_edge_connections || 0,
            sse: m.rtsync_edge_sse_streams || 0,
            in_per_s: Math.round(rate('rtsync_edge_messages_in_total') * 10) / 10,
            out_per_s: Math.round(rate('rtsync_edge_messages_out_total') * 10) / 10,
          });
        } catch {
          prev.delete(url);
          edges.push({ url, up: false, connections: 0, sse: 0, in_per_s: 0, out_per_s: 0 });
        }
      }),
    );
    edges.sort((a, b) => a.url.localeCompare(b.url));
    await publish('cluster-stats', { event: 'stats', data: { ts: t0, edges }, ephemeral: true }).catch(() => {});
    await sleep(Math.max(50, STATS_MS - (Date.now() - t0)));
  }
}

listen();
scrapeLoop();
log('edges', EDGES.join(' '));
