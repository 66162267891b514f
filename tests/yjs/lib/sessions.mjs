// sessions.mjs: seeded random editing sessions run through real Yjs, and the
// outputs a Yjs "server" document produces for them.  The differential test
// feeds the same updates to the C engine (build/bin/ydoc session) and
// compares every output byte for byte.
//
// A session: 2-4 clients with fixed client IDs edit their own Y.Doc in rounds
// and sync with each other now and then, so many edits are concurrent (same
// positions, same map keys).  Every local transaction's update is collected;
// the server receives them in a perturbed order (shuffled, duplicated, some
// merged into batches with gaps, some re-sent as SyncStep2 answers).

import * as Y from 'yjs'

// Session kinds, one per feature area; the test can select kinds by name.
export const KINDS = ['text', 'format', 'emoji', 'array', 'map', 'nested', 'xml', 'anyedge', 'mixed', 'collision', 'long']

// The root types each kind edits: name -> Yjs type kind.
const ROOTS = {
  text: { text: 'text' },
  format: { text: 'text' },
  emoji: { text: 'text' },
  array: { arr: 'array' },
  map: { map: 'map' },
  nested: { map: 'map', arr: 'array' },
  xml: { xml: 'xml' },
  anyedge: { arr: 'array', map: 'map' },
  mixed: { text: 'text', arr: 'array', map: 'map', xml: 'xml' },
  collision: { text: 'text', map: 'map' }, // two clients share a client ID (e.g. a reused ID)
  long: { text: 'text', arr: 'array', map: 'map', xml: 'xml' } // mixed, 8-20 rounds (~100-300 updates)
}

/** mulberry32: a small, seedable 32-bit PRNG. */
export class Rng {
  constructor (seed) { this.s = seed >>> 0 }
  next () {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  int (n) { return Math.floor(this.next() * n) } // 0 <= x < n
  range (lo, hi) { return lo + this.int(hi - lo + 1) } // lo <= x <= hi
  bool (p = 0.5) { return this.next() < p }
  pick (a) { return a[this.int(a.length)] }
}

const WORDS = ['a', 'b', 'xy', 'hello', ' ', 'the ', 'quick\n', 'Zz', '0123', 'lorem ipsum']
const UNICODE = ['😀', '👍🏽', 'é', 'e\u0301', '中文', 'ß', '🇫🇷', '𝄞', 'a😀b', '\u{10FFFF}', 'Ω≈ç', '\uD83D', '\uDE00x', '🙂🙃']
const KEYS = ['k1', 'k2', 'k3', 'title', 'é', '😀', '']
const FORMATS = [{ bold: true }, { italic: true }, { bold: null }, { color: '#ff0000' }, { link: { href: 'https://x.y' } }, { bold: true, italic: 2 }]
const EMBEDS = [{ image: 'a.png' }, { formula: 'e=mc^2' }, 42, 'embed-string', [1, 2]]

function anyValue (rng, depth = 0, edge = false) {
  const r = rng.int(edge ? 14 : 11)
  switch (r) {
    case 0: return rng.int(1000) - 500
    case 1: return rng.pick([0, 1, -1, 63, 64, -64, -65, 127, 128, 2147483647, -2147483647, 2147483648])
    case 2: return rng.pick([1.5, 0.1, -2.25, 2 ** 40, 1e300, 3.14159, 2 ** 53 - 1])
    case 3: return rng.pick(WORDS) + rng.pick(UNICODE)
    case 4: return rng.bool()
    case 5: return null
    case 6: return depth < 2 ? { a: anyValue(rng, depth + 1, edge), [rng.pick(KEYS)]: anyValue(rng, depth + 1, edge) } : 7
    case 7: return depth < 2 ? [anyValue(rng, depth + 1, edge), anyValue(rng, depth + 1, edge)] : 'leaf'
    case 8: return new Uint8Array(Array.from({ length: rng.int(5) }, () => rng.int(256)))
    case 9: return ''
    case 10: return { 'key with space': 'v', 2: 'numeric key', z: [] }
    // edge values: their JSON rendering is lossy, so only the anyedge kind uses them
    case 11: return rng.pick([NaN, Infinity, -Infinity, -0])
    case 12: return { u: undefined, v: [undefined] } // top-level undefined only fits a map
    default: return { big: BigInt(rng.pick(['0', '-1', '9007199254740993', '-9223372036854775808'])) } // Yjs only takes bigint nested
  }
}

function someText (rng, kind) {
  if (kind === 'emoji' || (kind === 'mixed' && rng.bool(0.3))) {
    let s = ''
    for (let i = rng.range(1, 3); i > 0; i--) s += rng.bool(0.7) ? rng.pick(UNICODE) : rng.pick(WORDS)
    return s
  }
  if (rng.bool(0.02)) return 'long '.repeat(rng.range(30, 80)) // lengths past one varUint byte
  return rng.pick(WORDS) + (rng.bool(0.2) ? rng.pick(WORDS) : '')
}

// a position that makes concurrent inserts collide often
function textPos (rng, len) {
  const r = rng.int(4)
  if (r === 0) return 0
  if (r === 1) return len
  return rng.int(len + 1)
}

function editText (rng, ytext, kind) {
  const len = ytext.length
  const r = rng.int(10)
  if (len > 0 && r < 3) {
    const pos = rng.int(len)
    ytext.delete(pos, Math.min(len - pos, rng.range(1, 12)))
  } else if (kind !== 'text' && kind !== 'emoji' && r === 3) {
    ytext.insertEmbed(textPos(rng, len), rng.pick(EMBEDS), rng.bool(0.3) ? rng.pick(FORMATS) : undefined)
  } else if (kind !== 'text' && kind !== 'emoji' && len > 0 && r === 4) {
    const pos = rng.int(len)
    ytext.format(pos, Math.min(len - pos, rng.range(1, 8)), rng.pick(FORMATS))
  } else if (kind !== 'text' && kind !== 'emoji' && r === 5) {
    ytext.insert(textPos(rng, len), someText(rng, kind), rng.pick(FORMATS))
  } else {
    ytext.insert(textPos(rng, len), someText(rng, kind))
  }
}

function editArray (rng, yarr, kind, depth = 0) {
  const len = yarr.length
  const r = rng.int(10)
  if (len > 0 && r < 3) {
    const pos = rng.int(len)
    yarr.delete(pos, Math.min(len - pos, rng.range(1, 5)))
  } else if (kind === 'nested' && depth === 0 && r < 5) {
    const t = rng.pick([new Y.Map(), new Y.Array(), new Y.Text()])
    yarr.insert(rng.int(len + 1), [t])
    if (t instanceof Y.Map) t.set('init', anyValue(rng))
    else if (t instanceof Y.Array) t.push([1, 'x'])
    else t.insert(0, 'nested text')
  } else if (kind === 'nested' && len > 0 && r < 7) {
    editNestedAt(rng, yarr.get(rng.int(len)), kind, depth + 1)
  } else if (kind === 'anyedge' && r === 9) {
    yarr.insert(rng.int(len + 1), [subdoc(rng)])
  } else {
    const items = Array.from({ length: rng.range(1, 4) }, () => anyValue(rng, 0, kind === 'anyedge'))
    const r2 = rng.int(3)
    if (r2 === 0) yarr.push(items)
    else if (r2 === 1) yarr.unshift(items)
    else yarr.insert(rng.int(len + 1), items)
  }
}

function editMap (rng, ymap, kind, depth = 0) {
  const r = rng.int(10)
  const key = rng.pick(KEYS)
  if (r < 2) {
    ymap.delete(key)
  } else if (kind === 'nested' && depth === 0 && r < 4) {
    const t = rng.pick([new Y.Map(), new Y.Array(), new Y.Text()])
    ymap.set(key, t)
    if (t instanceof Y.Map) t.set('x', anyValue(rng))
    else if (t instanceof Y.Array) t.insert(0, [anyValue(rng), anyValue(rng)])
    else t.insert(0, someText(rng, 'emoji'))
  } else if (kind === 'nested' && r < 7) {
    const keys = [...ymap.keys()]
    if (keys.length > 0) editNestedAt(rng, ymap.get(rng.pick(keys)), kind, depth + 1)
    else ymap.set(key, anyValue(rng))
  } else if (kind === 'anyedge' && r === 8) {
    ymap.set(key, subdoc(rng))
  } else if (kind === 'anyedge' && r === 9) {
    ymap.set(key, rng.pick([undefined, 2n ** 63n - 1n, -0]))
  } else {
    ymap.set(key, anyValue(rng, 0, kind === 'anyedge'))
  }
}

// a subdocument (ContentDoc): guid from the seed so sessions stay reproducible
function subdoc (rng) {
  const opts = { guid: `guid-${rng.int(1e6)}` }
  if (rng.bool()) opts.autoLoad = true
  if (rng.bool()) opts.meta = { title: rng.pick(WORDS) }
  if (rng.bool(0.3)) opts.gc = false
  return new Y.Doc(opts)
}

function editNestedAt (rng, v, kind, depth) {
  if (v instanceof Y.Map) editMap(rng, v, kind, depth)
  else if (v instanceof Y.Array) editArray(rng, v, kind, depth)
  else if (v instanceof Y.Text) editText(rng, v, 'format')
}

const TAGS = ['p', 'h1', 'li', 'div']

function randomXmlNode (rng, depth) {
  if (rng.bool(0.05)) {
    const hook = new Y.XmlHook(rng.pick(['embed', 'widget'])) // a YMap with a hook name (typeRef 5)
    hook.set('k', anyValue(rng))
    return hook
  }
  const r = rng.int(depth < 2 ? 3 : 2)
  if (r === 0) {
    const t = new Y.XmlText()
    t.insert(0, someText(rng, 'format'), rng.bool(0.3) ? rng.pick(FORMATS) : undefined)
    return t
  }
  const el = new Y.XmlElement(rng.pick(TAGS))
  el.setAttribute(rng.pick(['class', 'id', 'data-x']), rng.pick(['a', 'b', 'c d']))
  if (r === 2) el.insert(0, [randomXmlNode(rng, depth + 1)])
  return el
}

function editXml (rng, node, depth = 0) {
  const len = node.length
  const r = rng.int(10)
  if (len > 0 && r < 2) {
    const pos = rng.int(len)
    node.delete(pos, Math.min(len - pos, rng.range(1, 2)))
  } else if (len > 0 && r < 6) {
    const child = node.get(rng.int(len))
    if (child instanceof Y.XmlText) editText(rng, child, 'format')
    else if (child instanceof Y.XmlElement) {
      const r2 = rng.int(3)
      if (r2 === 0) child.setAttribute(rng.pick(['class', 'id', 'data-x']), rng.pick(['x', 'y', '😀']))
      else if (r2 === 1) child.removeAttribute(rng.pick(['class', 'id', 'data-x']))
      else editXml(rng, child, depth + 1)
    }
  } else if (depth < 3) {
    node.insert(rng.int(len + 1), [randomXmlNode(rng, depth)])
  }
}

function editOnce (rng, doc, kind) {
  const roots = Object.keys(ROOTS[kind])
  const root = rng.pick(roots)
  const type = ROOTS[kind][root]
  const k = kind === 'mixed' || kind === 'long' ? rng.pick(['format', 'emoji', 'nested', 'array'])
    : kind === 'collision' ? 'format' : kind
  if (type === 'text') editText(rng, doc.getText(root), k)
  else if (type === 'array') editArray(rng, doc.getArray(root), k)
  else if (type === 'map') editMap(rng, doc.getMap(root), k)
  else editXml(rng, doc.getXmlFragment(root))
}

function clientIds (rng, kind) {
  const n = rng.range(2, 4)
  const ids = new Set()
  const big = rng.bool(0.5)
  while (ids.size < n) ids.add(big ? rng.int(2 ** 32) : rng.range(0, 12))
  const list = [...ids]
  if (kind === 'collision') list.push(list[0])
  return list
}

function rootType (doc, name, type) {
  if (type === 'text') return doc.getText(name)
  if (type === 'array') return doc.getArray(name)
  if (type === 'map') return doc.getMap(name)
  return doc.getXmlFragment(name)
}

// Runs the clients and returns the local updates in the order they were made.
// Each client also has an UndoManager over its roots: undo and redo make
// deletions of its own items and re-insertions of deleted content.
function runClients (rng, kind) {
  const clients = clientIds(rng, kind).map(id => {
    const doc = new Y.Doc()
    doc.clientID = id
    const roots = Object.entries(ROOTS[kind]).map(([name, type]) => rootType(doc, name, type))
    const c = { doc, out: [], undo: new Y.UndoManager(roots, { captureTimeout: 0 }) }
    doc.on('update', (u, origin) => { if (origin !== 'remote') c.out.push(u) })
    return c
  })
  const all = []
  const rounds = kind === 'long' ? rng.range(8, 20) : rng.range(2, 7)
  for (let r = 0; r < rounds; r++) {
    for (const c of clients) {
      const before = c.out.length
      for (let t = rng.range(0, 4); t > 0; t--) {
        c.doc.transact(() => { for (let e = rng.range(1, 3); e > 0; e--) editOnce(rng, c.doc, kind) })
      }
      const r2 = rng.int(10)
      if (r2 < 2) c.undo.undo()
      else if (r2 === 2) c.undo.redo()
      for (const u of c.out.slice(before)) all.push(u)
    }
    // sync: every client gets every other client's updates, or a random subset of clients.
    // Clients sharing an ID receive nothing: a Yjs client that sees its own ID in remote
    // data picks a new random ID, which would make the session irreproducible.
    const shared = id => clients.filter(o => o.doc.clientID === id).length > 1
    for (const c of clients) {
      if (!rng.bool(0.7) || shared(c.doc.clientID)) continue
      for (const o of clients) {
        if (o !== c && rng.bool(0.8)) Y.applyUpdate(c.doc, Y.encodeStateAsUpdate(o.doc, Y.encodeStateVector(c.doc)), 'remote')
      }
    }
  }
  return { clients, all }
}

// Perturbs delivery: reordering, duplicates, merged batches (with gaps, so Skip
// structs appear) and SyncStep2-style state answers.
function deliver (rng, clients, all) {
  let list = all.slice()
  const mode = rng.int(4)
  if (mode === 1) {
    for (let i = list.length - 1; i > 0; i--) { const j = rng.int(i + 1); [list[i], list[j]] = [list[j], list[i]] }
  } else if (mode === 2) {
    for (let i = 0; i + 1 < list.length; i++) if (rng.bool(0.3)) { [list[i], list[i + 1]] = [list[i + 1], list[i]]; i++ }
  } else if (mode === 3) {
    list.reverse()
  }
  const out = []
  for (let i = 0; i < list.length; i++) {
    if (rng.bool(0.08) && i + 2 < list.length) {
      // a merged batch of a random subset of the next few updates
      const n = rng.range(2, Math.min(5, list.length - i))
      const batch = list.slice(i, i + n).filter(() => rng.bool(0.7))
      if (batch.length > 0) out.push(Y.mergeUpdates(batch))
      for (const u of list.slice(i, i + n)) if (!batch.includes(u)) out.push(u)
      i += n - 1
      continue
    }
    out.push(list[i])
    if (rng.bool(0.1)) out.push(rng.pick(out)) // a duplicate of something already sent
  }
  if (rng.bool(0.3)) {
    const c = rng.pick(clients)
    out.splice(rng.int(out.length + 1), 0, Y.encodeStateAsUpdate(c.doc)) // a full SyncStep2
  }
  list = out
  return list
}

export const hex = u => Buffer.from(u).toString('hex')

// The JSON content of a document as rtsync renders it: roots by their kind,
// Uint8Array as an array of bytes, undefined as null, bigint as a number,
// NaN and infinities as null, a subdocument as {} (Doc.toJSON of an unloaded doc).
export function docJson (doc, roots) {
  const out = {}
  for (const [name, type] of Object.entries(roots)) out[name] = rootType(doc, name, type).toJSON()
  return normalizeJson(out)
}

export function normalizeJson (v) {
  if (v === undefined) return null
  if (typeof v === 'bigint') return Number(v)
  if (typeof v === 'number') return Number.isFinite(v) ? (v === 0 ? 0 : v) : null // JSON.stringify: -0 is 0
  if (v instanceof Uint8Array) return Array.from(v)
  if (v instanceof Y.Doc) return normalizeJson(v.toJSON()) // a subdocument: as JSON.stringify shows it
  if (Array.isArray(v)) return v.map(normalizeJson)
  if (v !== null && typeof v === 'object') {
    const o = {}
    for (const k of Object.keys(v)) o[k] = normalizeJson(v[k])
    return o
  }
  return v
}

/**
 * Generates one session and its expected outputs.
 * Returns { name, kind, seed, roots, updates: [hex], midIndex, v2: {...}, expect: {...} }.
 */
export function makeSession (seed, kind) {
  for (let attempt = 0; ; attempt++) {
    try {
      const rng = new Rng(seed + attempt * 0x9e3779b9)
      const { clients, all } = runClients(rng, kind)
      return sessionFrom(`${kind}-${seed}`, kind, seed, ROOTS[kind], deliver(rng, clients, all))
    } catch (e) {
      // Yjs itself sometimes cannot encode a document that went through an ID collision
      // (findRootTypeKey: unexpected case); such a session is replaced by the next attempt
      if (kind !== 'collision' || attempt >= 5) throw e
    }
  }
}

// What one applyUpdate emitted: null, or the update.  Yjs emits a second event when
// the apply leads to formatting cleanup of a typed (nested) Y.Text / Y.XmlText,
// which runs in its own transaction; a server broadcasts both, so the expected
// change is their merge (Y.mergeUpdates).
function eventOf (evs) {
  if (evs.length === 0) return null
  return hex(evs.length === 1 ? evs[0] : Y.mergeUpdates(evs))
}

/** A session from given updates (Uint8Array[], V1), with Yjs's expected outputs. */
export function sessionFrom (name, kind, seed, roots, updates) {
  const server = new Y.Doc()
  let evs = []
  server.on('update', u => { evs.push(u) })
  const events = []
  const midIndex = Math.floor(updates.length / 2)
  let svMid = Y.encodeStateVector(server)
  updates.forEach((u, i) => {
    evs = []
    Y.applyUpdate(server, u)
    events.push(eventOf(evs))
    if (i + 1 === midIndex) svMid = Y.encodeStateVector(server)
  })
  if (midIndex === 0) svMid = Y.encodeStateVector(new Y.Doc())
  const merged = Y.mergeUpdates(updates)
  const stateV2 = Y.encodeStateAsUpdateV2(server)
  const updatesV2 = updates.map(u => Y.convertUpdateFormatV1ToV2(u))
  const loaded = new Y.Doc()
  Y.applyUpdateV2(loaded, stateV2)
  const nogc = new Y.Doc({ gc: false })
  nogc.on('update', u => { evs.push(u) })
  const eventsNogc = updates.map(u => { evs = []; Y.applyUpdate(nogc, u); return eventOf(evs) })
  const server2 = new Y.Doc()
  server2.on('update', u => { evs.push(u) })
  const eventsV2 = updatesV2.map(u => { evs = []; Y.applyUpdateV2(server2, u); return eventOf(evs) })
  return {
    name,
    kind,
    seed,
    roots,
    updates: updates.map(hex),
    sv_mid: hex(svMid),
    state_v2: hex(stateV2),
    updates_v2: updatesV2.map(hex),
    expect: {
      events,
      sv: hex(Y.encodeStateVector(server)),
      state: hex(Y.encodeStateAsUpdate(server)),
      json: docJson(server, roots),
      merge: hex(merged),
      merge_pairs: updates.slice(1).map((u, i) => hex(Y.mergeUpdates([updates[i], u]))),
      diff_each: updates.map(u => hex(Y.diffUpdate(u, svMid))),
      sv_each: updates.map(u => hex(Y.encodeStateVectorFromUpdate(u))),
      merge_sv: hex(Y.encodeStateVectorFromUpdate(merged)),
      diff_mid: hex(Y.diffUpdate(merged, svMid)),
      state_mid: hex(Y.encodeStateAsUpdate(server, svMid)),
      v2_to_v1: hex(Y.convertUpdateFormatV2ToV1(stateV2)),
      updates_v2_to_v1: updatesV2.map(u => hex(Y.convertUpdateFormatV2ToV1(u))),
      v2_apply_state: hex(Y.encodeStateAsUpdate(loaded)),
      events_v2: eventsV2,
      events_nogc: eventsNogc,
      state_nogc: hex(Y.encodeStateAsUpdate(nogc))
    }
  }
}
