// The rtsync demo app: every pattern of the cluster on one page (or one
// panel with ?panel=NAME). Query parameters: user, room, doc, panel, edges
// (comma-separated host:port list; default the page's own origin).
import { RtClient } from '../../clients/js/index.js';
import { EditorView, basicSetup } from 'codemirror';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { yCollab } from 'y-codemirror.next';

const params = new URLSearchParams(location.search);
const user = params.get('user') || sessionStorage.getItem('rt-user') || `guest-${Math.random().toString(36).slice(2, 6)}`;
sessionStorage.setItem('rt-user', user);
const room = params.get('room') || 'lobby';
const only = params.get('panel');
const edges = (params.get('edges') || location.host).split(',').map((h) => h.trim()).filter(Boolean);
const wsScheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const $ = (id) => document.getElementById(id);
const el = (tag, text, cls) => {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
};
const demo = (window.__demo = { user, room });

const client = new RtClient({
  urls: edges.map((h) => `${wsScheme}//${h}/ws`),
  user,
  storeName: `rtsync-outbox-${user}`,
  backoff: { base: 200, max: 5000 },
});
demo.client = client;
client.on('status', (s) => {
  $('status').textContent = s === 'online' ? `online (${client.welcome?.edge})` : s;
  $('status').className = `status ${s}`;
});
$('whoami').textContent = `you are ${user}`;
client.connect();

function show(name) {
  const on = !only || only === name;
  $(name).hidden = !on;
  return on;
}

// ---- chat: history through the HTTP API, live messages, typing, members ------------

function chat() {
  $('chat-room').textContent = `#${room}`;
  const sub = client.subscribe(room, { presence: true });
  const byOffset = new Map(); // offset → message (history and live, once each)
  const log = $('chat-log');
  let oldest = null;
  demo.chat = { sub, byOffset };

  const render = () => {
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.replaceChildren();
    for (const m of [...byOffset.values()].sort((a, b) => a.offset - b.offset)) {
      const li = el('li');
      li.dataset.offset = m.offset;
      li.append(el('b', m.from), document.createTextNode(`: ${m.data?.text ?? JSON.stringify(m.data)} `), el('span', `#${m.offset}`, 'off'));
      log.append(li);
    }
    client.queued().then((items) => {
      for (const it of items.filter((i) => i.channel === room)) log.append(el('li', `${user}: ${it.data.text} (queued)`, 'pending'));
    });
    if (atBottom) log.scrollTop = log.scrollHeight;
  };
  const add = (m) => {
    if (typeof m.offset !== 'number' || m.event !== 'message') return;
    byOffset.set(m.offset, m);
    if (oldest === null || m.offset < oldest) oldest = m.offset;
  };
  const loadOlder = async () => {
    if (oldest === 1) return;
    const before = oldest ?? (sub.latest ?? 0) + 1;
    const msgs = await client.history(room, { before, limit: 30 });
    msgs.forEach(add);
    if (msgs.length) render();
    $('chat-older').disabled = oldest === 1 || msgs.length === 0;
  };
  demo.chat.loadOlder = loadOlder;
  let loaded = false;
  sub.on('subscribed', () => {
    if (!loaded) {
      loaded = true;
      loadOlder().then(() => (demo.chat.historyLoaded = true));
    }
  });
  sub.on('message', (m) => {
    add(m);
    render();
  });
  $('chat-older').onclick = loadOlder;

  const members = () => {
    const ul = $('chat-members');
    ul.replaceChildren(...[...sub.members.keys()].sort().map((u) => el('li', u)));
    const typing = [...sub.states.entries()]
      .filter(([conn, s]) => conn !== client.conn && s.state?.typing)
      .map(([, s]) => s.user);
    $('chat-typing').textContent = typing.length ? `${[...new Set(typing)].join(', ')} typing…` : '';
  };
  sub.on('members', members);
  sub.on('state', members);

  let typingTimer = null;
  $('chat-input').addEventListener('input', () => {
    if (!typingTimer) sub.setState({ typing: true });
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => {
      typingTimer = null;
      sub.setState({ typing: false });
    }, 2000);
  });
  $('chat-form').onsubmit = (e) => {
    e.preventDefault();
    const text = $('chat-input').value.trim();
    if (!text) return;
    $('chat-input').value = '';
    clearTimeout(typingTimer);
    typingTimer = null;
    sub.setState({ typing: false });
    sub.publish({ text }).then(render, (err) => console.warn('publish', err));
    render();
  };
}

// ---- collaborative editor: CodeMirror 6 + y-codemirror.next + y-websocket ----------

const COLORS = ['#e11d48', '#2563eb', '#16a34a', '#ca8a04', '#9333ea', '#0891b2'];

function editor() {
  const docName = params.get('doc') || `doc-${room}`;
  $('editor-doc').textContent = docName;
  const ydoc = new Y.Doc();
  const provider = new WebsocketProvider(`${wsScheme}//${edges[0]}/yjs`, docName, ydoc, { params: { user } });
  const ytext = ydoc.getText('codemirror');
  const color = COLORS[[...user].reduce((a, c) => a + c.charCodeAt(0), 0) % COLORS.length];
  provider.awareness.setLocalStateField('user', { name: user, color, colorLight: `${color}33` });
  provider.on('status', ({ status }) => ($('editor-status').textContent = `document ${status}`));
  const view = new EditorView({
    doc: ytext.toString(),
    extensions: [basicSetup, EditorView.lineWrapping, yCollab(ytext, provider.awareness)],
    parent: $('editor-host'),
  });
  demo.editor = { ydoc, ytext, provider, view };
}

// ---- LLM-style stream over SSE, resumed across reloads --------------------------------

function stream() {
  const out = $('stream-out');
  const saved = JSON.parse(sessionStorage.getItem('rt-stream') || 'null');
  let state = saved; // {channel, lastId, text, done}
  demo.stream = { get state() { return state; }, tokens: 0 };

  const save = () => sessionStorage.setItem('rt-stream', JSON.stringify(state));
  const open = () => {
    const since = state.lastId ? `?since=${state.lastId}&user=${encodeURIComponent(user)}` : `?user=${encodeURIComponent(user)}`;
    const es = new EventSource(`/sse/${state.channel}${since}`);
    demo.stream.es = es;
    $('stream-state').textContent = 'streaming…';
    es.addEventListener('token', (ev) => {
      const id = Number(ev.lastEventId);
      if (id && state.lastId && id <= state.lastId) return; // already shown
      state.text += ev.data;
      state.lastId = id || state.lastId;
      demo.stream.tokens++;
      save();
      out.textContent = state.text;
    });
    es.addEventListener('done', () => {
      state.done = true;
      save();
      es.close();
      $('stream-state').textContent = 'done';
    });
  };
  if (state) {
    out.textContent = state.text;
    if (!state.done) open();
    else $('stream-state').textContent = 'done';
  }
  $('stream-form').onsubmit = async (e) => {
    e.preventDefault();
    demo.stream.es?.close();
    const channel = `llm-${user.replace(/[^A-Za-z0-9_.:-]/g, '')}-${Date.now().toString(36)}`;
    state = { channel, lastId: 0, text: '', done: false };
    save();
    out.textContent = '';
    open(); // listen first, then ask: nothing is missed (and since= covers it anyway)
    await client.publish('llm-requests', { prompt: $('stream-prompt').value, channel, id: channel }, { event: 'prompt' });
  };
}

// ---- dashboard: stats pushed over SSE, drawn on a canvas --------------------------------

function dashboard() {
  const es = new EventSource(`/sse/cluster-stats?user=${encodeURIComponent(user)}`);
  const series = new Map(); // edge url → [{ts, conns, rate}]
  demo.dashboard = { series, samples: 0 };
  es.addEventListener('stats', (ev) => {
    const s = JSON.parse(ev.data);
    demo.dashboard.samples++;
    const tbody = $('dash-table').tBodies[0];
    tbody.replaceChildren();
    for (const e of s.edges) {
      const points = series.get(e.url) || [];
      points.push({ ts: s.ts, conns: e.connections, rate: e.in_per_s + e.out_per_s });
      if (points.length > 60) points.shift();
      series.set(e.url, points);
      const tr = el('tr');
      for (const v of [e.edge || e.url, e.up ? 'yes' : 'no', e.connections, e.sse, e.in_per_s, e.out_per_s]) tr.append(el('td', String(v)));
      tbody.append(tr);
    }
    draw();
  });
  const draw = () => {
    const c = $('dash-chart');
    const g = c.getContext('2d');
    g.fillStyle = '#fff';
    g.fillRect(0, 0, c.width, c.height);
    g.strokeStyle = '#eee';
    for (let y = 0; y < c.height; y += 40) g.strokeRect(0, y, c.width, 0.5);
    let max = 1;
    for (const pts of series.values()) for (const p of pts) max = Math.max(max, p.rate, p.conns);
    let i = 0;
    for (const [url, pts] of series) {
      const color = COLORS[i++ % COLORS.length];
      for (const [key, dash] of [['rate', []], ['conns', [4, 3]]]) {
        g.strokeStyle = color;
        g.setLineDash(dash);
        g.lineWidth = 2;
        g.beginPath();
        pts.forEach((p, j) => {
          const x = (j / 59) * (c.width - 10) + 5;
          const y = c.height - 10 - (p[key] / max) * (c.height - 30);
          j ? g.lineTo(x, y) : g.moveTo(x, y);
        });
        g.stroke();
      }
      g.setLineDash([]);
      g.fillStyle = color;
      g.fillText(`${url.replace(/^https?:\/\//, '')}: msgs/s (solid), connections (dashed)`, 8, 14 * i);
    }
  };
}

// ---- WebRTC data channel signaled through `signal` frames -------------------------------

function rtc() {
  const channel = `rtc-${room}`;
  const sub = client.subscribe(channel, { presence: true });
  const state = (t) => ($('rtc-state').textContent = t);
  const logMsg = (t) => $('rtc-log').append(el('li', t));
  let pc = null;
  let dc = null;
  let peer = null;
  demo.rtc = { received: [], get open() { return dc?.readyState === 'open'; } };

  const setup = (remote) => {
    pc?.close();
    peer = remote;
    pc = new RTCPeerConnection({ iceServers: [] });
    pc.onicecandidate = (e) => e.candidate && sub.signal(peer, { candidate: e.candidate.toJSON() });
    pc.onconnectionstatechange = () => state(`peer ${pc.connectionState}`);
    const wire = (ch) => {
      dc = ch;
      dc.onopen = () => state(`data channel open with ${remote}`);
      dc.onmessage = (e) => {
        demo.rtc.received.push(e.data);
        logMsg(`peer: ${e.data}`);
      };
    };
    pc.ondatachannel = (e) => wire(e.channel);
    return wire;
  };
  // the member with the smaller conn id calls the other
  const maybeCall = async () => {
    if (pc || !client.conn) return;
    const others = [...sub.members.values()].flatMap((s) => [...s]).filter((c) => c !== client.conn).sort();
    if (!others.length || client.conn > others[0]) return;
    const wire = setup(others[0]);
    wire(pc.createDataChannel('demo'));
    await pc.setLocalDescription(await pc.createOffer());
    sub.signal(peer, { sdp: pc.localDescription.toJSON() });
    state(`calling ${peer}`);
  };
  sub.on('members', maybeCall);
  sub.on('signal', async (s) => {
    const d = s.data || {};
    if (d.sdp?.type === 'offer') {
      setup(s.from_conn);
      await pc.setRemoteDescription(d.sdp);
      await pc.setLocalDescription(await pc.createAnswer());
      sub.signal(peer, { sdp: pc.localDescription.toJSON() });
    } else if (d.sdp?.type === 'answer' && pc) {
      await pc.setRemoteDescription(d.sdp);
    } else if (d.candidate && pc) {
      await pc.addIceCandidate(d.candidate).catch(() => {});
    }
  });
  sub.on('leave', (e) => {
    if (e.conn === peer) {
      pc?.close();
      pc = dc = peer = null;
      state('peer left');
    }
  });
  $('rtc-form').onsubmit = (e) => {
    e.preventDefault();
    if (dc?.readyState !== 'open') return;
    dc.send($('rtc-input').value);
    logMsg(`me: ${$('rtc-input').value}`);
    $('rtc-input').value = '';
  };
}

for (const [name, init] of [['chat', chat], ['editor', editor], ['stream', stream], ['dashboard', dashboard], ['rtc', rtc]]) {
  if (show(name)) init();
}
