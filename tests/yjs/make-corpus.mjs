// make-corpus.mjs: writes the seed corpora of the Yjs fuzz targets from real
// Yjs updates (random sessions of every kind, plus the worked examples of the
// spec).  File names are content hashes; existing files are kept, because the
// corpora also hold regression inputs found by fuzzing.
//
//   node tests/yjs/make-corpus.mjs [PER_TARGET=40]
//
//   tests/fuzz/corpus/yjs_v1/     single V1 updates (incremental, merged, full states)
//   tests/fuzz/corpus/yjs_v2/     the same updates in V2
//   tests/fuzz/corpus/yjs_apply/  short update sequences, each prefixed by a u16 LE length

import fs from 'node:fs'
import path from 'node:path'
import crypto from 'node:crypto'
import * as Y from 'yjs'
import { KINDS, Rng, makeSession } from './lib/sessions.mjs'
import { ROOT } from './lib/trace.mjs'

const PER_TARGET = Number(process.argv[2] || 40)
const MAX_FILE = 1500 // bytes; small seeds mutate best

const dirs = Object.fromEntries(['yjs_v1', 'yjs_v2', 'yjs_apply'].map(n => [n, path.join(ROOT, 'tests/fuzz/corpus', n)]))
for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true })

const seen = { yjs_v1: new Set(), yjs_v2: new Set(), yjs_apply: new Set() }
function put (target, bytes) {
  if (bytes.length > MAX_FILE || seen[target].size >= PER_TARGET) return
  const name = crypto.createHash('sha1').update(bytes).digest('hex')
  if (seen[target].has(name)) return
  seen[target].add(name)
  fs.writeFileSync(path.join(dirs[target], name), bytes)
}

function frame16 (updates) {
  return Buffer.concat(updates.flatMap(u => {
    const h = Buffer.alloc(2)
    h.writeUInt16LE(u.length)
    return [h, Buffer.from(u)]
  }))
}

// the spec's worked example and the minimal update
put('yjs_v1', Buffer.from('0103010001010174018401000162c40100010101580101010001', 'hex'))
put('yjs_v1', Buffer.from('0000', 'hex'))
put('yjs_v2', Y.convertUpdateFormatV1ToV2(new Uint8Array([0, 0])))

const rng = new Rng(20261128)
for (let i = 0; seen.yjs_apply.size < PER_TARGET || seen.yjs_v1.size < PER_TARGET; i++) {
  if (i > 2000) break
  const s = makeSession(1000 + i, KINDS[i % KINDS.length])
  const ups = s.updates.map(h => Buffer.from(h, 'hex'))
  const pick = ups[rng.int(ups.length)]
  const v1 = rng.bool(0.2) ? Buffer.from(s.expect.merge, 'hex') : rng.bool(0.2) ? Buffer.from(s.expect.state, 'hex') : pick
  put('yjs_v1', v1)
  put('yjs_v2', Y.convertUpdateFormatV1ToV2(v1))
  const start = rng.int(ups.length)
  put('yjs_apply', frame16(ups.slice(start, start + rng.range(2, 6))))
}
for (const [t, set] of Object.entries(seen)) console.log(`${t}: ${set.size} files`)
