// corpus-diff.mjs: differential check of a fuzz corpus against real Yjs.
//
//   node tests/yjs/corpus-diff.mjs [DIR=build/fuzz/corpus/yjs_apply] [MAX_FILES=2000]
//
// Each file is a fuzz_yjs_apply input (V1 updates, each prefixed by a u16 LE
// length).  Inputs that Yjs applies without throwing become sessions, and the
// C engine (build/bin/ydoc session) must give the same outputs as Yjs for
// them, as in differential.test.js (all checks but JSON, whose root kinds are
// unknown here).  Inputs Yjs rejects are counted and skipped: Yjs may throw
// half-way through an update, leaving its document changed, while the C
// engine validates every update before touching the document.
// Exit 1 if any accepted input differs.

import fs from 'node:fs'
import path from 'node:path'
import * as Y from 'yjs'
import { sessionFrom } from './lib/sessions.mjs'
import { CHECKS, ROOT, compare, describeMismatch, runSessions, tmpDir, writeSessions } from './lib/harness.mjs'

const dir = process.argv[2] || path.join(ROOT, 'build/fuzz/corpus/yjs_apply')
const maxFiles = Number(process.argv[3] || 2000)

function unframe16 (b) {
  const ups = []
  for (let o = 0; o + 2 <= b.length;) {
    const n = Math.min(b.readUInt16LE(o), b.length - o - 2)
    ups.push(new Uint8Array(b.subarray(o + 2, o + 2 + n)))
    o += 2 + n
  }
  return ups
}

// Yjs logs some rejections instead of throwing; treat those as rejections too.
function quietly (fn) {
  const { error, warn, log } = console
  let noisy = false
  console.error = console.warn = console.log = () => { noisy = true }
  try {
    return fn() && !noisy
  } catch {
    return false
  } finally {
    Object.assign(console, { error, warn, log })
  }
}

const files = fs.readdirSync(dir).slice(0, maxFiles)
const sessions = []
let rejected = 0
for (const f of files) {
  const ups = unframe16(fs.readFileSync(path.join(dir, f)))
  let s = null
  const ok = quietly(() => {
    const d = new Y.Doc()
    for (const u of ups) Y.applyUpdate(d, u)
    s = sessionFrom(f, 'corpus', 0, {}, ups)
    return true
  })
  if (ok) sessions.push(s)
  else rejected++
}

const tmp = tmpDir()
const results = await runSessions(writeSessions(tmp, sessions))
fs.rmSync(tmp, { recursive: true, force: true })
const mismatches = sessions.flatMap((s, i) => compare(s, results[i], Object.keys(CHECKS), ['json']))
console.log(`${files.length} inputs: ${sessions.length} accepted by Yjs and compared, ${rejected} rejected by Yjs (skipped)`)
for (const m of mismatches.slice(0, 20)) console.log(describeMismatch(m))
console.log(`${new Set(mismatches.map(m => m.session)).size} inputs differ`)
process.exit(mismatches.length ? 1 : 0)
