// differential.test.js: the C Yjs engine (through build/bin/ydoc session)
// against real Yjs 13.6.33 on seeded random editing sessions.  For every
// session the engine must reproduce, byte for byte, Yjs's server outputs: the
// 'update' event of each applied update, the state vector, encodeStateAsUpdate
// (also against a mid-session state vector), the JSON content, mergeUpdates,
// encodeStateVectorFromUpdate, diffUpdate, V2 conversion and decoding, and the
// events and state of a server document with garbage collection off.
//
// Environment:
//   YJS_SESSIONS=N   sessions per run (default 360, spread over the kinds)
//   YJS_SEED=S       first seed (default 1); session i uses seed S+i
//   YJS_KINDS=a,b    session kinds to run, or "all" (default: DEFAULT_KINDS)
//   YJS_CHECKS=a,b   check groups (core, merge, v2, nogc), or "all" (default: DEFAULT_CHECKS)
//   YJS_STRICT=1     also compare the fields of KNOWN_GAPS
//   YJS_KEEP=1       keep the generated session files (the path is printed)
// Reproduce one session: node tests/yjs/repro.mjs KIND SEED

import test from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { KINDS, makeSession } from './lib/sessions.mjs'
import { CHECKS, YDOC, compare, describeMismatch, runSessions, tmpDir, writeSessions } from './lib/harness.mjs'

// Output fields not compared by default for a kind, while the engine does not match Yjs
// there yet (YJS_STRICT=1 compares them too; details in /tmp/yjs-mismatches.md,
// reproduce with tests/yjs/repro.mjs).  None at the moment: kind -> [field, ...].
const KNOWN_GAPS = {}
const gaps = process.env.YJS_STRICT ? {} : KNOWN_GAPS
const DEFAULT_KINDS = KINDS
const DEFAULT_CHECKS = Object.keys(CHECKS)

const pickList = (env, all, dflt) => !env ? dflt : env === 'all' ? all : env.split(',').map(s => s.trim())
const kinds = pickList(process.env.YJS_KINDS, KINDS, DEFAULT_KINDS)
const checks = pickList(process.env.YJS_CHECKS, Object.keys(CHECKS), DEFAULT_CHECKS)
const total = Number(process.env.YJS_SESSIONS || 360)
const seed0 = Number(process.env.YJS_SEED || 1)

for (const k of kinds) assert.ok(KINDS.includes(k), `unknown session kind ${k}`)
for (const c of checks) assert.ok(CHECKS[c], `unknown check group ${c}`)

test('differential: C engine vs Yjs on random sessions', { timeout: 30 * 60 * 1000 }, async (t) => {
  assert.ok(fs.existsSync(YDOC), `${YDOC} is missing: run make first`)
  const sessions = []
  for (let i = 0; i < total; i++) sessions.push(makeSession(seed0 + i, kinds[i % kinds.length]))
  const dir = tmpDir()
  let results
  try {
    results = await runSessions(writeSessions(dir, sessions))
  } finally {
    if (process.env.YJS_KEEP) t.diagnostic(`session files kept in ${dir}`)
    else fs.rmSync(dir, { recursive: true, force: true })
  }
  const byKind = new Map(kinds.map(k => [k, []]))
  sessions.forEach((s, i) => byKind.get(s.kind).push(...compare(s, results[i], checks, gaps[s.kind] || [])))
  t.diagnostic(`${total} sessions, kinds ${kinds.join(',')}, checks ${checks.join(',')}, seeds ${seed0}..${seed0 + total - 1}`)
  for (const [k, fields] of Object.entries(gaps)) if (kinds.includes(k)) t.diagnostic(`not compared (known gap): ${k} ${fields.join(',')}`)
  for (const [kind, mismatches] of byKind) {
    await t.test(`kind ${kind}`, () => {
      const failed = new Set(mismatches.map(m => m.session))
      assert.equal(mismatches.length, 0,
        `${failed.size} ${kind} sessions differ from Yjs:\n` +
        mismatches.slice(0, 12).map(describeMismatch).join('\n'))
    })
  }
})
