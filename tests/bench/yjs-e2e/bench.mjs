#!/usr/bin/env node
// bench.mjs: the automerge-paper trace replayed as individual updates from one
// provider to a second one, end to end, on rtsync (two edges, crdt-merge,
// NATS, PostgreSQL), the reference y-websocket server (y-websocket@1.5.4
// bin/server.js) and Hocuspocus 3.4 (tests/bench/peers/).
//
// For each system:
//   - paced: the first BENCH_PACED updates (default 2000) one at a time, each
//     sent when the previous one reached the second provider: unloaded latency;
//   - full speed: the rest with up to BENCH_WINDOW (default 1000) in flight:
//     updates/s and the latency under load;
//   - server CPU seconds per update, for each phase (utime+stime of every server
//     process, PostgreSQL's backends included for rtsync; the full-speed figure
//     includes 1.5 s of settling after the last update) and the servers' RSS
//     growth with the document loaded;
//   - a fresh client's sync of the whole document, and for rtsync a cold load
//     (crdt-merge restarted: the document comes from PostgreSQL).
// The servers merge broadcasts (rtsync merges the changes of one loop turn),
// so the second provider's progress is read from its content, not counted in
// messages: update i has arrived once the second document's clock for the
// trace's client reaches what a Yjs server's state had after update i, and its
// deleted length too (both from trace-events.bin, a Yjs server's 'update'
// events; an update after which Yjs emits none is not waited for).
//
//   node tests/bench/yjs-e2e/bench.mjs [rtsync] [yws] [hocus]     (default: all three)
//   BENCH_UPDATES=N  only the first N trace updates;  BENCH_OUT=dir  results.json there
//   BENCH_ROUNDS (3)  runs of each system, alternating; the summary uses each one's median
//   BENCH_SERVER_CPU (0)  core of every server process (taskset -c); run.sh puts
//                         this script, the clients, on BENCH_GEN_CPU (1)

import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { startStack, freePort } from '../../integration/lib/stack.js'
import { ensureTraceCache, unframeUpdates } from '../../yjs/lib/trace.mjs'

const SERVER_CPU = process.env.BENCH_SERVER_CPU || '0'
// This VM's speed drifts by tens of percent within minutes: each system runs
// BENCH_ROUNDS times, alternating with the others, and the ratios use medians.
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS || 3))

const HERE = path.dirname(fileURLToPath(import.meta.url))
const PEERS = path.resolve(HERE, '../peers')
const PACED = Number(process.env.BENCH_PACED || 2000)
const WINDOW = Number(process.env.BENCH_WINDOW || 1000)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const ticks = 100 // USER_HZ

function procCpuSec (pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(f[11]) + Number(f[12])) / ticks // utime + stime
  } catch { return 0 }
}
// Context switches of every thread of pid: on this VM a wake-up costs more than the work it wakes for.
function procSwitches (pid) {
  let n = 0
  try {
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      const st = fs.readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8')
      for (const m of st.matchAll(/ctxt_switches:\s+(\d+)/g)) n += Number(m[1])
    }
  } catch {}
  return n
}
function children (pid) {
  const out = []
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const ppid = Number(fs.readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ')[1])
      if (ppid === pid) out.push(Number(d))
    } catch {}
  }
  return out
}
const rssKb = (pid) => { try { return Number(/VmRSS:\s*(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) } catch { return 0 } }
const pct = (a, p) => a.length ? a[Math.min(a.length - 1, Math.floor(a.length * p))] : NaN

// Clock end and deleted length an update adds (for the trace's one client).
function progressOf (Y, u) {
  const { structs, ds } = Y.decodeUpdate(u)
  let clock = 0; let del = 0
  for (const st of structs) clock = Math.max(clock, st.id.clock + st.length)
  for (const items of ds.clients.values()) for (const it of items) del += it.len
  return { clock, del }
}

async function loadTrace () {
  const Y = await import('yjs')
  const files = ensureTraceCache()
  const updates = unframeUpdates(fs.readFileSync(files.updates))
  const n = Math.min(updates.length, Number(process.env.BENCH_UPDATES || updates.length))
  const events = unframeUpdates(fs.readFileSync(files.events)).slice(0, n)
  const clocks = new Float64Array(n); const dels = new Float64Array(n)
  let clock = 0; let del = 0
  events.forEach((e, i) => {
    if (e.length > 0) { const p = progressOf(Y, e); clock = Math.max(clock, p.clock); del += p.del }
    clocks[i] = clock; dels[i] = del
  })
  return { updates: updates.slice(0, n), expected: events.map((e) => e.length > 0), clocks, dels }
}

// The number of leading entries of the nondecreasing `arr` that are <= v.
function covered (arr, v) {
  let lo = 0; let hi = arr.length
  while (lo < hi) { const mid = (lo + hi) >> 1; if (arr[mid] <= v) lo = mid + 1; else hi = mid }
  return lo
}

// ---- the systems ----------------------------------------------------------------

async function rtsyncSystem () {
  const stack = await startStack({
    name: 'bench-yjs-e2e', edges: 2, services: ['crdt-merge'], cpus: SERVER_CPU,
    env: { RT_LOG_LEVEL: 'warn', RT_EDGE_THREADS: '1' }
  })
  const pgPid = stack.pid('postgres')
  return {
    name: 'rtsync',
    urls: [`${stack.edges[0].ws}/yjs`, `${stack.edges[1].ws}/yjs`],
    client: 'y-websocket',
    cpu: () => ['edge-1', 'edge-2', 'crdt-merge-1', 'nats'].reduce((s, n) => s + procCpuSec(stack.pid(n)), 0) +
      [pgPid, ...children(pgPid)].reduce((s, p) => s + procCpuSec(p), 0),
    cpuNoPg: () => ['edge-1', 'edge-2', 'crdt-merge-1', 'nats'].reduce((s, n) => s + procCpuSec(stack.pid(n)), 0),
    docRss: () => rssKb(stack.pid('crdt-merge-1')),
    breakdown: () => Object.fromEntries([...['edge-1', 'edge-2', 'crdt-merge-1', 'nats'].map((n) => [n, procCpuSec(stack.pid(n))]),
      ['postgres', [pgPid, ...children(pgPid)].reduce((s, p) => s + procCpuSec(p), 0)]]),
    switches: () => Object.fromEntries([...['edge-1', 'edge-2', 'crdt-merge-1', 'nats'].map((n) => [n, procSwitches(stack.pid(n))]),
      ['postgres', [pgPid, ...children(pgPid)].reduce((s, p) => s + procSwitches(p), 0)]]),
    natsMsgs: async () => { const v = await (await fetch(`${stack.nats.monitorUrl}/varz`)).json(); return { in: v.in_msgs, out: v.out_msgs, inBytes: v.in_bytes, outBytes: v.out_bytes } },
    coldRestart: async () => { await stack.restart('crdt-merge-1') },
    stop: () => stack.stop({ allowExits: true })
  }
}

async function nodeServer (name, args, env, client) {
  const port = await freePort()
  const child = spawn('taskset', ['-c', SERVER_CPU, process.execPath, ...args], { cwd: PEERS, env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => { if (/running|listening/.test(d.toString())) resolve() })
    child.on('exit', (c) => reject(new Error(`${name} exited ${c}`)))
  })
  return {
    name,
    urls: [`ws://127.0.0.1:${port}`, `ws://127.0.0.1:${port}`],
    client,
    cpu: () => procCpuSec(child.pid),
    docRss: () => rssKb(child.pid),
    stop: async () => { child.kill('SIGKILL'); await sleep(100) }
  }
}

const ywsSystem = () => nodeServer('y-websocket@1.5.4', ['node_modules/y-websocket/bin/server.js'], {}, 'y-websocket')
const hocusSystem = () => nodeServer('hocuspocus@3.4.4', ['hocuspocus-server.mjs'], {}, 'hocuspocus')

// ---- clients -------------------------------------------------------------------

async function clientLib (kind) {
  if (kind === 'hocuspocus') {
    const req = createRequire(path.join(PEERS, 'package.json'))
    const Y = await import(req.resolve('yjs'))
    const { HocuspocusProvider } = await import(req.resolve('@hocuspocus/provider'))
    return {
      Y,
      connect: (url, room, doc) => new Promise((resolve) => {
        const p = new HocuspocusProvider({ url, name: room, document: doc, WebSocketPolyfill: WebSocket, onSynced: () => resolve(p) })
      })
    }
  }
  const Y = await import('yjs')
  const { WebsocketProvider } = await import('y-websocket')
  return {
    Y,
    connect: (url, room, doc) => new Promise((resolve) => {
      const p = new WebsocketProvider(url, room, doc, { WebSocketPolyfill: WebSocket, disableBc: true })
      p.on('sync', (s) => { if (s) resolve(p) })
    })
  }
}

// ---- one run ---------------------------------------------------------------------

async function run (sys, trace) {
  const { Y, connect } = await clientLib(sys.client)
  const room = `trace-${Date.now()}`
  const rssBefore = sys.docRss()
  const docA = new Y.Doc(); const docB = new Y.Doc()
  const a = await connect(sys.urls[0], room, docA)
  const b = await connect(sys.urls[1], room, docB)
  const { updates, expected, clocks, dels } = trace
  let received = 0 // trace updates the second provider has
  let clockB = 0; let delB = 0
  let wake = null
  const sentAt = new Float64Array(updates.length)
  const phaseOf = new Uint8Array(updates.length) // 0 paced, 1 full speed
  const lat = { paced: [], full: [] }
  docB.on('update', (u) => {
    const p = progressOf(Y, u)
    clockB = Math.max(clockB, p.clock); delB += p.del
    const now = performance.now()
    const upto = Math.min(covered(clocks, clockB), covered(dels, delB))
    for (; received < upto; received++) {
      if (expected[received]) (phaseOf[received] ? lat.full : lat.paced).push(now - sentAt[received])
    }
    if (wake) { const w = wake; wake = null; w() }
  })
  const waitFor = (cond) => new Promise((resolve) => {
    const check = () => { if (cond()) resolve(); else { wake = check; setTimeout(() => { if (wake === check) { wake = null; check() } }, 200) } }
    check()
  })
  const cpu0 = sys.cpu(); const cpuNoPg0 = sys.cpuNoPg?.(); const parts0 = sys.breakdown?.()
  let nats0 = null; let natsMid = null
  const paced = Math.min(PACED, updates.length)
  const tStart = performance.now()
  let tFull0 = 0
  let cpuMid = cpu0; let cpuNoPgMid = cpuNoPg0; let partsMid = parts0; let switchesMid = null
  for (let i = 0; i < updates.length; i++) {
    if (i === 0 && sys.natsMsgs) nats0 = await sys.natsMsgs()
    if (i === paced) {
      tFull0 = performance.now(); cpuMid = sys.cpu(); cpuNoPgMid = sys.cpuNoPg?.(); partsMid = sys.breakdown?.(); switchesMid = sys.switches?.()
      if (sys.natsMsgs) natsMid = await sys.natsMsgs()
    }
    phaseOf[i] = i >= paced ? 1 : 0
    sentAt[i] = performance.now()
    Y.applyUpdate(docA, updates[i])
    if (i < paced) await waitFor(() => received > i)
    else if (i + 1 - received >= WINDOW) await waitFor(() => i + 1 - received < WINDOW / 2)
  }
  await waitFor(() => received >= updates.length)
  const tEnd = performance.now()
  await sleep(1500) // let persistence settle before reading CPU
  const cpu = sys.cpu() - cpuMid
  const cpuNoPg = sys.cpuNoPg ? sys.cpuNoPg() - cpuNoPgMid : null
  const text = docA.getText('text').toString()
  if (docB.getText('text').toString() !== text) throw new Error(`${sys.name}: the second provider differs`)
  const fullN = updates.length - paced
  lat.paced.sort((x, y) => x - y); lat.full.sort((x, y) => x - y)
  const res = {
    system: sys.name,
    updates: updates.length,
    replay_s: (tEnd - tStart) / 1000,
    full_speed_updates_per_s: fullN / ((tEnd - tFull0) / 1000),
    paced_p50_ms: pct(lat.paced, 0.5), paced_p99_ms: pct(lat.paced, 0.99),
    full_p50_ms: pct(lat.full, 0.5), full_p99_ms: pct(lat.full, 0.99),
    full_speed_server_cpu_s: cpu,
    full_speed_server_cpu_us_per_update: (cpu / fullN) * 1e6,
    full_speed_server_cpu_no_pg_us_per_update: cpuNoPg === null ? null : (cpuNoPg / fullN) * 1e6,
    paced_server_cpu_us_per_update: paced ? ((cpuMid - cpu0) / paced) * 1e6 : null,
    doc_rss_growth_kb: sys.docRss() - rssBefore
  }
  if (natsMid) {
    // NATS messages in and out per trace update: how well the hops batch
    const n1 = await sys.natsMsgs()
    res.paced_nats_msgs_in_out_per_update = [(natsMid.in - nats0.in) / paced, (natsMid.out - nats0.out) / paced].map((x) => +x.toFixed(3))
    res.full_speed_nats_msgs_in_out_per_update = [(n1.in - natsMid.in) / fullN, (n1.out - natsMid.out) / fullN].map((x) => +x.toFixed(3))
    res.full_speed_nats_bytes_in_out_per_update = [(n1.inBytes - natsMid.inBytes) / fullN, (n1.outBytes - natsMid.outBytes) / fullN].map((x) => +x.toFixed(1))
  }
  if (parts0) {
    const parts1 = sys.breakdown()
    res.full_speed_server_cpu_s_by_process = Object.fromEntries(Object.keys(parts1).map((k) => [k, +(parts1[k] - partsMid[k]).toFixed(2)]))
    res.paced_server_cpu_s_by_process = Object.fromEntries(Object.keys(parts1).map((k) => [k, +(partsMid[k] - parts0[k]).toFixed(2)]))
    const sw1 = sys.switches()
    res.full_speed_context_switches_per_1000_updates = Object.fromEntries(Object.keys(sw1).map((k) => [k, +((sw1[k] - switchesMid[k]) / fullN * 1000).toFixed(1)]))
  }
  // a fresh client syncs the whole document
  let t0 = performance.now()
  const docC = new Y.Doc()
  const c = await connect(sys.urls[1], room, docC)
  res.fresh_sync_ms = performance.now() - t0
  if (docC.getText('text').toString() !== text) throw new Error(`${sys.name}: a fresh client got another document`)
  c.destroy(); a.destroy(); b.destroy()
  if (sys.coldRestart) {
    await sleep(500)
    await sys.coldRestart()
    t0 = performance.now()
    const docD = new Y.Doc()
    const d = await connect(sys.urls[0], room, docD)
    res.cold_load_sync_ms = performance.now() - t0
    if (docD.getText('text').toString() !== text) throw new Error(`${sys.name}: the cold load differs`)
    res.doc_rss_cold_kb = sys.docRss()
    d.destroy()
  }
  return res
}

// The table and the issue's targets, on stdout after the JSON lines.
function summarize (results) {
  const f = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x)) ? '-' : x.toFixed(d)
  console.log(`\nyjs-e2e: ${results[0]?.updates} trace updates, the first ${PACED} paced (one at a time), the rest up to ${WINDOW} in flight`)
  console.log('server CPU = every server process (rtsync: 2 edges, crdt-merge, nats-server, PostgreSQL); doc memory = RSS growth of crdt-merge or the peer')
  console.log('system              replay_s  full_upd/s  full_p50_ms  full_p99_ms  paced_p50_ms  cpu_us/upd(full)  cpu_us/upd(paced)  doc_MiB')
  for (const r of results) {
    console.log(`${r.system.padEnd(18)} ${f(r.replay_s, 2).padStart(9)} ${f(r.full_speed_updates_per_s, 0).padStart(11)} ${f(r.full_p50_ms, 2).padStart(12)} ${f(r.full_p99_ms, 2).padStart(12)} ${f(r.paced_p50_ms, 2).padStart(13)} ${f(r.full_speed_server_cpu_us_per_update).padStart(17)} ${f(r.paced_server_cpu_us_per_update, 0).padStart(18)} ${f(r.doc_rss_growth_kb / 1024).padStart(8)}`)
  }
  const rt = results.find((r) => r.system === 'rtsync')
  const peers = results.filter((r) => r !== rt)
  if (!rt || peers.length === 0) return
  if (rt.full_speed_nats_msgs_in_out_per_update) console.log(`rtsync: NATS messages in/out per update: paced ${rt.paced_nats_msgs_in_out_per_update.join('/')}, full speed ${rt.full_speed_nats_msgs_in_out_per_update.join('/')}; CPU s by process (full speed): ${JSON.stringify(rt.full_speed_server_cpu_s_by_process)}; context switches per 1,000 updates: ${JSON.stringify(rt.full_speed_context_switches_per_1000_updates)}`)
  const bestCpu = Math.min(...peers.map((r) => r.full_speed_server_cpu_us_per_update))
  const bestMem = Math.min(...peers.map((r) => r.doc_rss_growth_kb))
  const cpuRatio = rt.full_speed_server_cpu_us_per_update / bestCpu
  const memRatio = rt.doc_rss_growth_kb / bestMem
  console.log(`target server CPU per update <= 1/10 of the better peer's: ${cpuRatio <= 0.1 ? 'PASS' : 'MISSED'} (${f(rt.full_speed_server_cpu_us_per_update)} vs ${f(bestCpu)} us: ${f(cpuRatio, 2)}x)`)
  console.log(`target memory per document <= 1/3 of the better peer's: ${memRatio <= 1 / 3 ? 'PASS' : 'MISSED'} (${f(rt.doc_rss_growth_kb / 1024)} vs ${f(bestMem / 1024)} MiB: ${f(memRatio, 2)}x)`)
  const fastest = Math.min(...peers.map((r) => r.replay_s))
  console.log(`target replay not slower end to end than either peer: ${rt.replay_s <= fastest ? 'PASS' : 'MISSED'} (${f(rt.replay_s, 2)} s vs ${peers.map((r) => `${r.system} ${f(r.replay_s, 2)} s`).join(', ')})`)
}

// The run of median server CPU per update among a system's rounds.
function medianRun (runs) {
  const sorted = [...runs].sort((x, y) => x.full_speed_server_cpu_us_per_update - y.full_speed_server_cpu_us_per_update)
  return sorted[(sorted.length - 1) >> 1]
}

const which = process.argv.slice(2).length ? process.argv.slice(2) : ['rtsync', 'yws', 'hocus']
const makers = { rtsync: rtsyncSystem, yws: ywsSystem, hocus: hocusSystem }
const trace = await loadTrace()
console.error(`trace: ${trace.updates.length} updates, ${trace.expected.filter(Boolean).length} with a server event`)
const runs = Object.fromEntries(which.map((w) => [w, []]))
for (let round = 0; round < ROUNDS; round++) {
  for (const w of which) {
    const sys = await makers[w]()
    try {
      const r = await run(sys, trace)
      r.round = round + 1
      console.log(JSON.stringify(r))
      runs[w].push(r)
    } finally {
      await sys.stop()
    }
  }
}
const results = which.map((w) => medianRun(runs[w]))
if (process.env.BENCH_OUT) fs.writeFileSync(path.join(process.env.BENCH_OUT, 'yjs-e2e.json'), JSON.stringify(Object.values(runs).flat(), null, 2))
summarize(results)
if (ROUNDS > 1) {
  console.log(`rounds (${ROUNDS}, systems alternating; the table shows each system's median run by server CPU): cpu_us/upd(full) ` +
    which.map((w) => `${runs[w][0].system} ${runs[w].map((r) => r.full_speed_server_cpu_us_per_update.toFixed(1)).join('/')}`).join(', '))
}
process.exit(0)
