// repro.mjs: shrinks a differential-test failure to a minimal reproduction.
//
//   node tests/yjs/repro.mjs KIND SEED [FIELD]
//
// Regenerates session KIND-SEED, runs it through build/bin/ydoc session, and if
// an output differs from Yjs (FIELD, or the first differing field), removes
// updates one at a time while the same field still differs.  Prints a Markdown
// block (updates as hex, expected vs actual) ready for /tmp/yjs-mismatches.md.

import fs from 'node:fs'
import { makeSession, sessionFrom } from './lib/sessions.mjs'
import { compare, runSessions, tmpDir, writeSessions, CHECKS } from './lib/harness.mjs'

const [kind, seedArg, fieldArg] = process.argv.slice(2)
if (!kind || !seedArg) {
  console.error('usage: node tests/yjs/repro.mjs KIND SEED [FIELD]')
  process.exit(2)
}
const seed = Number(seedArg)
const dir = tmpDir()
const allChecks = Object.keys(CHECKS)

async function mismatches (session) {
  const [result] = await runSessions(writeSessions(dir, [session]), { jobs: 1 })
  return compare(session, result, allChecks)
}

const original = makeSession(seed, kind)
const first = await mismatches(original)
const target = fieldArg || first[0]?.field
if (!target || !first.some(m => m.field === target)) {
  console.log(`${original.name}: no mismatch${target ? ` in ${target}` : ''}`)
  fs.rmSync(dir, { recursive: true, force: true })
  process.exit(0)
}
const stillFails = async (ups) => {
  let s
  try {
    s = sessionFrom(original.name, kind, seed, original.roots, ups)
  } catch {
    return false // Yjs itself cannot handle this subset (e.g. after an ID collision)
  }
  return (await mismatches(s)).some(m => m.field === target)
}

let ups = original.updates.map(h => Buffer.from(h, 'hex'))
// first cut everything after the first failing prefix, then drop single updates
for (let n = 1; n < ups.length; n++) {
  if (await stillFails(ups.slice(0, n))) { ups = ups.slice(0, n); break }
}
for (let changed = true; changed;) {
  changed = false
  for (let i = ups.length - 1; i >= 0 && ups.length > 1; i--) {
    const fewer = ups.slice(0, i).concat(ups.slice(i + 1))
    if (await stillFails(fewer)) { ups = fewer; changed = true }
  }
}
const final = sessionFrom(original.name, kind, seed, original.roots, ups)
const ms = (await mismatches(final)).filter(m => m.field === target)
fs.rmSync(dir, { recursive: true, force: true })

const show = v => typeof v === 'string' ? v : JSON.stringify(v)
console.log(`### ${new Date().toISOString()} ${original.name}: \`${target}\` differs (${ups.length} of ${original.updates.length} updates)\n`)
console.log(`Regenerate: \`node tests/yjs/repro.mjs ${kind} ${seed} ${target}\`. Updates applied in order to a fresh doc (V1 hex):\n`)
console.log('```')
ups.forEach((u, i) => console.log(`${i}: ${u.toString('hex')}`))
console.log('```\n')
for (const m of ms) {
  const at = m.index !== undefined ? ` [${m.index}]` : ''
  console.log(`- ${m.field}${at} expected (Yjs): \`${show(m.expected)}\``)
  console.log(`- ${m.field}${at} actual (C):     \`${show(m.actual)}\``)
}
if (target === 'json') console.log(`\nRoots: ${JSON.stringify(original.roots)}`)
