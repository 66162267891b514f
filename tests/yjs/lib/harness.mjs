// harness.mjs: runs `ydoc session` over generated sessions and compares every
// output with what Yjs produced.  Used by differential.test.js and repro.mjs.

import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { isDeepStrictEqual } from 'node:util'
import { ROOT } from './trace.mjs'
export { ROOT }
import { normalizeJson } from './sessions.mjs'

export const YDOC = process.env.YDOC || path.join(ROOT, 'build/bin/ydoc') // YDOC= to test another build

// Output fields by check group; a group can be left out of the default run.
export const CHECKS = {
  core: ['events', 'sv', 'state', 'state_mid', 'json'],
  merge: ['merge', 'merge_sv', 'diff_mid', 'merge_pairs', 'diff_each', 'sv_each'],
  v2: ['v2_to_v1', 'updates_v2_to_v1', 'v2_apply_state', 'events_v2'],
  nogc: ['events_nogc', 'state_nogc']
}

export function tmpDir () {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'rtsync-yjs-'))
}

/** Writes each session (without its expected outputs) to dir; returns the paths. */
export function writeSessions (dir, sessions) {
  return sessions.map((s, i) => {
    const file = path.join(dir, `${String(i).padStart(5, '0')}-${s.name}.json`)
    const { expect, ...input } = s
    fs.writeFileSync(file, JSON.stringify(input))
    return file
  })
}

function runYdoc (files) {
  return new Promise((resolve, reject) => {
    const p = spawn(YDOC, ['session', ...files], { stdio: ['ignore', 'pipe', 'pipe'] })
    const out = []
    let err = ''
    p.stdout.on('data', d => out.push(d))
    p.stderr.on('data', d => { err += d })
    p.on('error', reject)
    p.on('close', (code, signal) => {
      const lines = Buffer.concat(out).toString('utf8').split('\n').filter(Boolean)
      if (signal || code !== 0 || lines.length !== files.length) {
        reject(new Error(`ydoc session exited with ${signal || code} after ${lines.length}/${files.length} sessions: ${err.slice(0, 2000)}`))
      } else {
        resolve(lines.map(l => JSON.parse(l)))
      }
    })
  })
}

/** Runs ydoc over the files in batches, `jobs` processes at a time. */
export async function runSessions (files, { batch = 100, jobs = Math.max(1, os.cpus().length) } = {}) {
  const batches = []
  for (let i = 0; i < files.length; i += batch) batches.push(files.slice(i, i + batch))
  const results = new Array(batches.length)
  let next = 0
  const worker = async () => {
    while (next < batches.length) {
      const i = next++
      results[i] = await runYdoc(batches[i])
    }
  }
  await Promise.all(Array.from({ length: Math.min(jobs, batches.length) }, worker))
  return results.flat()
}

// the check group an error of `ydoc session` belongs to (steps are output fields or apply steps)
function errorGroup (step) {
  if (step === 'apply') return 'core'
  if (step === 'apply_v2') return 'v2'
  if (step === 'apply_nogc') return 'nogc'
  return Object.keys(CHECKS).find(g => CHECKS[g].includes(step)) || 'core'
}

function parseJson (text) {
  try {
    return text === undefined ? undefined : normalizeJson(JSON.parse(text))
  } catch (e) {
    return `unparsable JSON: ${text}`
  }
}

function firstDiff (exp, act) {
  if (Array.isArray(exp) && Array.isArray(act)) {
    for (let i = 0; i < Math.max(exp.length, act.length); i++) {
      if (!isDeepStrictEqual(exp[i], act[i])) return { index: i, expected: exp[i], actual: act[i] }
    }
  }
  return { expected: exp, actual: act }
}

/** Compares one session on the fields of `checks` except `skip`; returns [{session, field, ...diff}]. */
export function compare (session, result, checks, skip = []) {
  const out = []
  const errors = Object.entries(result.errors || {}).filter(([step]) => checks.includes(errorGroup(step)) && !skip.includes(step))
  if (errors.length > 0) {
    out.push({ session: session.name, field: 'errors', expected: {}, actual: Object.fromEntries(errors) })
  }
  for (const group of checks) {
    for (const field of CHECKS[group]) {
      if (skip.includes(field)) continue
      const exp = field === 'json' ? normalizeJson(session.expect.json) : session.expect[field]
      const act = field === 'json' ? parseJson(result.json_text) : result[field]
      if (!isDeepStrictEqual(exp, act)) out.push({ session: session.name, field, ...firstDiff(exp, act) })
    }
  }
  return out
}

export function describeMismatch (m) {
  const at = m.index !== undefined ? `[${m.index}]` : ''
  const show = v => {
    const s = typeof v === 'string' ? v : JSON.stringify(v)
    return s === undefined ? 'undefined' : s.length > 300 ? s.slice(0, 300) + '...' : s
  }
  return `${m.session} ${m.field}${at}: expected ${show(m.expected)} got ${show(m.actual)}`
}
