#!/usr/bin/env node
// bench.mjs: the C Yjs engine against Yjs 13.6.33 on the automerge-paper trace
// (259,778 updates, clientID 1).  For each side: apply every update one by one
// to a fresh document (a server's work), encode the state (V1), load that
// state into a fresh document, peak memory (VmHWM).  Prints the figures and
// the ratios; the target is C apply >= 10x faster than Yjs.
//
//   node tests/bench/yjs/bench.mjs            (make all first: needs build/bin/ydoc)
//   BENCH_RUNS=3                              runs per side; the best time is kept
//
// Each measurement runs in its own process so peak memory is per side.  The C
// figure comes from `ydoc bench`; its peak RSS includes the 4.9 MB input file
// it holds in memory, and Node's includes its runtime (~40 MB at start).

import fs from 'node:fs'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import * as Y from 'yjs'

const HERE = fileURLToPath(import.meta.url)
const ROOT = path.resolve(path.dirname(HERE), '../../..')
const YDOC = path.join(ROOT, 'build/bin/ydoc')
const RUNS = Number(process.env.BENCH_RUNS || 3)

function vmHwmKib () {
  const m = /VmHWM:\s*(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))
  return m ? Number(m[1]) : 0
}

function unframe (buf) {
  const out = []
  for (let o = 0; o < buf.length;) {
    const n = buf.readUInt32LE(o)
    out.push(buf.subarray(o + 4, o + 4 + n))
    o += 4 + n
  }
  return out
}

// The Yjs side, run in a child process: prints one JSON line like `ydoc bench`.
// Loads first, in a fresh heap, so the heap delta is the loaded document's.
function yjsChild (file, stateFile) {
  const updates = unframe(fs.readFileSync(file))
  const stateIn = fs.readFileSync(stateFile)
  const rssInput = vmHwmKib()
  globalThis.gc?.()
  const heap0 = process.memoryUsage().heapUsed
  let t0 = performance.now()
  const loaded = new Y.Doc()
  Y.applyUpdate(loaded, stateIn)
  const loadMs = performance.now() - t0
  globalThis.gc?.()
  const loadedHeap = process.memoryUsage().heapUsed - heap0
  t0 = performance.now()
  const doc = new Y.Doc()
  for (const u of updates) Y.applyUpdate(doc, u)
  const applyMs = performance.now() - t0
  t0 = performance.now()
  const state = Y.encodeStateAsUpdate(doc)
  const encodeMs = performance.now() - t0
  // with an 'update' listener, as a server that broadcasts needs
  const withEvents = new Y.Doc()
  withEvents.on('update', () => {})
  t0 = performance.now()
  for (const u of updates) Y.applyUpdate(withEvents, u)
  const applyEvMs = performance.now() - t0
  console.log(JSON.stringify({
    updates: updates.length,
    apply_ms: applyMs,
    apply_with_events_ms: applyEvMs,
    encode_ms: encodeMs,
    state_bytes: state.length,
    load_ms: loadMs,
    loaded_doc_bytes: loadedHeap,
    peak_rss_input_kib: rssInput,
    peak_rss_kib: vmHwmKib()
  }))
}

function best (runs) {
  const out = { ...runs[0] }
  for (const k of ['apply_ms', 'apply_with_events_ms', 'encode_ms', 'load_ms']) out[k] = Math.min(...runs.map(r => r[k]))
  out.peak_rss_kib = Math.max(...runs.map(r => r.peak_rss_kib))
  return out
}

async function main () {
  if (process.argv[2] === '--yjs-child') return yjsChild(process.argv[3], process.argv[4])
  if (!fs.existsSync(YDOC)) throw new Error(`${YDOC} is missing: run make first`)
  const { ensureTraceCache } = await import(path.join(ROOT, 'tests/yjs/lib/trace.mjs'))
  const files = ensureTraceCache()
  const run = (cmd, args) => JSON.parse(execFileSync(cmd, args, { maxBuffer: 1 << 26 }).toString())
  const c = []
  const js = []
  for (let i = 0; i < RUNS; i++) {
    c.push(run(YDOC, ['bench', files.updates]))
    js.push(run(process.execPath, ['--expose-gc', HERE, '--yjs-child', files.updates, files.state]))
  }
  const C = best(c)
  const J = best(js)
  if (C.state_bytes !== J.state_bytes) console.log(`WARNING: state sizes differ: C ${C.state_bytes} B, Yjs ${J.state_bytes} B`)
  const row = (name, cv, jv, unit, better = 'lower') => {
    const ratio = better === 'lower' ? jv / cv : cv / jv
    console.log(`${name.padEnd(34)} ${fmt(cv, unit).padStart(12)} ${fmt(jv, unit).padStart(12)} ${(ratio.toFixed(1) + 'x').padStart(9)}`)
  }
  const fmt = (v, unit) => unit === 'ms' ? `${v.toFixed(1)} ms` : unit === 'KiB' ? `${(v / 1024).toFixed(1)} MiB` : `${v} B`
  console.log(`Yjs engine benchmark: automerge-paper trace, ${C.updates} updates, best of ${RUNS}`)
  console.log(`${''.padEnd(34)} ${'C (ydoc)'.padStart(12)} ${'Yjs 13.6.33'.padStart(12)} ${'Yjs / C'.padStart(9)}`)
  row('apply all updates one by one', C.apply_ms, J.apply_ms, 'ms')
  row('  ... with update events', C.apply_with_events_ms, J.apply_with_events_ms, 'ms')
  row('encodeStateAsUpdate (V1)', C.encode_ms, J.encode_ms, 'ms')
  row('load state into a fresh doc', C.load_ms, J.load_ms, 'ms')
  console.log(`${'encoded state'.padEnd(34)} ${fmt(C.state_bytes).padStart(12)} ${fmt(J.state_bytes).padStart(12)}`)
  console.log(`${'document memory after load'.padEnd(34)} ${fmt(C.loaded_doc_bytes).padStart(12)} ${fmt(J.loaded_doc_bytes).padStart(12)}   (C: rt_ydoc_memory_usage; Yjs: heap delta)`)
  row('peak RSS of the process (VmHWM)', C.peak_rss_kib, J.peak_rss_kib, 'KiB')
  row('  ... above the loaded input', C.peak_rss_kib - C.peak_rss_input_kib, J.peak_rss_kib - J.peak_rss_input_kib, 'KiB')
  const ratio = J.apply_ms / C.apply_ms
  console.log('(Yjs / C: how many times faster, or smaller, the C engine is)')
  console.log(`apply target >= 10x faster than Yjs: ${ratio >= 10 ? 'MET' : 'NOT MET'} (${ratio.toFixed(1)}x)`)
}

await main()
