// trace.mjs: the automerge-paper editing trace replayed through real Yjs
// (clientID 1, one transaction per txn) into 259,778 V1 updates.  The result
// is cached under build/yjs/ because the replay takes Yjs several seconds:
//   trace-updates.bin   every update, each prefixed by its length (u32 LE)
//   trace-state.bin     Y.encodeStateAsUpdate of the final document (V1)
//   trace-events.bin    the 'update' events of a server doc applying them one by one
//                       (length-prefixed; an empty record when there was none)
//   trace-merged.bin    Y.mergeUpdates of all updates (merged in chunks of 1000, then
//                       the chunks: Yjs's merge is quadratic in the number of inputs)
//   trace-diff.bin      Y.diffUpdate(merged, DIFF_SV), the state vector {1: 100000}
//   trace-meta.json     counts and the expected final text

import * as Y from 'yjs'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
// the team's shared folder sits beside the checkout (CI lays a copy there too)
export const TRACE_GZ = process.env.RT_TRACE_GZ || path.join(ROOT, '../shared/data/automerge-paper.json.gz')
export const CACHE = path.join(ROOT, 'build/yjs')
export const DIFF_SV = Y.encodeStateVector(new Map([[1, 100000]]))

export function loadTrace () {
  return JSON.parse(zlib.gunzipSync(fs.readFileSync(TRACE_GZ)).toString('utf8'))
}

// The trace counts positions in code points; Y.Text counts UTF-16 units.
function utf16Index (s, cp) {
  let i = 0
  for (let n = 0; n < cp && i < s.length; n++) i += s.codePointAt(i) > 0xffff ? 2 : 1
  return i
}

/** Frames updates as a stream: u32 little-endian length, then the bytes. */
export function frameUpdates (updates) {
  let total = 0
  for (const u of updates) total += 4 + u.length
  const out = Buffer.alloc(total)
  let o = 0
  for (const u of updates) {
    out.writeUInt32LE(u.length, o)
    out.set(u, o + 4)
    o += 4 + u.length
  }
  return out
}

/** Splits a length-prefixed stream back into updates. */
export function unframeUpdates (buf) {
  const out = []
  for (let o = 0; o < buf.length;) {
    const n = buf.readUInt32LE(o)
    out.push(buf.subarray(o + 4, o + 4 + n))
    o += 4 + n
  }
  return out
}

/** Replays the trace; returns { updates, doc, trace, ms }. */
export function replayTrace (trace = loadTrace()) {
  const doc = new Y.Doc()
  doc.clientID = 1
  const text = doc.getText('text')
  const updates = []
  doc.on('update', u => updates.push(u))
  // without astral characters code points and UTF-16 units coincide (the paper trace)
  const astral = /[\uD800-\uDFFF]/.test(trace.startContent) ||
    trace.txns.some(t => t.patches.some(p => /[\uD800-\uDFFF]/.test(p[2] || '')))
  const t0 = performance.now()
  if (trace.startContent) text.insert(0, trace.startContent)
  for (const txn of trace.txns) {
    doc.transact(() => {
      for (const [pos, del, ins] of txn.patches) {
        let at = pos
        let n = del
        if (astral) {
          const cur = text.toString()
          at = utf16Index(cur, pos)
          n = utf16Index(cur.slice(at), del)
        }
        if (n > 0) text.delete(at, n)
        if (ins) text.insert(at, ins)
      }
    })
  }
  return { updates, doc, trace, ms: performance.now() - t0 }
}

/** The 'update' event of a fresh server doc for each update (empty when none). */
export function serverEvents (updates) {
  const server = new Y.Doc()
  let evs = []
  server.on('update', u => { evs.push(u) })
  return updates.map(u => {
    evs = []
    Y.applyUpdate(server, u)
    return evs.length === 0 ? new Uint8Array(0) : evs.length === 1 ? evs[0] : Y.mergeUpdates(evs)
  })
}

function chunkedMerge (updates, n) {
  const chunks = []
  for (let i = 0; i < updates.length; i += n) chunks.push(Y.mergeUpdates(updates.slice(i, i + n)))
  return Y.mergeUpdates(chunks)
}

/** Returns the cached paths, producing them first if missing or stale. */
export function ensureTraceCache () {
  const files = {
    updates: path.join(CACHE, 'trace-updates.bin'),
    state: path.join(CACHE, 'trace-state.bin'),
    events: path.join(CACHE, 'trace-events.bin'),
    merged: path.join(CACHE, 'trace-merged.bin'),
    diff: path.join(CACHE, 'trace-diff.bin'),
    meta: path.join(CACHE, 'trace-meta.json')
  }
  // the cache is valid for this trace file and this version of the code that made it
  const traceFile = TRACE_GZ
  const st = fs.statSync(traceFile)
  const key = crypto.createHash('sha1').update(fs.readFileSync(fileURLToPath(import.meta.url)))
    .update(`${traceFile}:${st.size}:${st.mtimeMs}`).digest('hex')
  const complete = Object.values(files).every(f => fs.existsSync(f))
  if (complete && JSON.parse(fs.readFileSync(files.meta, 'utf8')).key === key) return files
  const { updates, doc, trace } = replayTrace()
  fs.mkdirSync(CACHE, { recursive: true })
  fs.writeFileSync(files.updates, frameUpdates(updates))
  fs.writeFileSync(files.state, Y.encodeStateAsUpdate(doc))
  fs.writeFileSync(files.events, frameUpdates(serverEvents(updates)))
  const merged = chunkedMerge(updates, 1000)
  fs.writeFileSync(files.merged, merged)
  fs.writeFileSync(files.diff, Y.diffUpdate(merged, DIFF_SV))
  // meta last, renamed into place: a meta with the current key marks a complete cache
  fs.writeFileSync(files.meta + '.' + process.pid, JSON.stringify({
    key,
    updates: updates.length,
    updateBytes: updates.reduce((a, u) => a + u.length, 0),
    mergedSv: Buffer.from(Y.encodeStateVectorFromUpdate(merged)).toString('hex'),
    endContent: trace.endContent
  }))
  fs.renameSync(files.meta + '.' + process.pid, files.meta)
  return files
}
