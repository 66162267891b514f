// trace.test.js: the real automerge-paper editing trace (259,778 transactions)
// replayed through Yjs with clientID 1, then applied update by update to the C
// engine through build/bin/ydoc.  The final text must equal the trace's
// endContent, and the encoded state, every 'update' event and the merge of
// all updates must equal Yjs's.
// The Yjs side is cached in build/yjs/ (see lib/trace.mjs).

import test from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { execFileSync } from 'node:child_process'
import { DIFF_SV, ensureTraceCache, unframeUpdates } from './lib/trace.mjs'
import { YDOC } from './lib/harness.mjs'

const ydoc = (args, opts = {}) => execFileSync(YDOC, args, { maxBuffer: 1 << 30, ...opts })

test('trace: Yjs replay (cached) has the known shape', () => {
  const files = ensureTraceCache()
  const meta = JSON.parse(fs.readFileSync(files.meta, 'utf8'))
  assert.equal(meta.updates, 259778)
  assert.equal(meta.updateBytes, 3828798)
  assert.equal(fs.statSync(files.state).size, 223414)
})

test('trace: C engine applies every update like a Yjs server', async (t) => {
  assert.ok(fs.existsSync(YDOC), `${YDOC} is missing: run make first`)
  const files = ensureTraceCache()
  const meta = JSON.parse(fs.readFileSync(files.meta, 'utf8'))
  const expectedState = fs.readFileSync(files.state)

  await t.test('final text equals endContent', () => {
    const json = JSON.parse(ydoc(['--root', 'text=text', 'json', files.updates]).toString('utf8'))
    assert.equal(json.text.length, meta.endContent.length)
    assert.ok(json.text === meta.endContent, 'the text differs from endContent')
  })

  await t.test('encoded state equals Yjs byte for byte', () => {
    const state = ydoc(['state', files.updates])
    assert.equal(state.length, expectedState.length)
    assert.ok(state.equals(expectedState), 'the encoded state differs from Yjs')
  })

  await t.test('every update event equals Yjs', () => {
    const lines = ydoc(['events', files.updates]).toString('latin1').split('\n')
    lines.pop()
    const expected = unframeUpdates(fs.readFileSync(files.events))
    assert.equal(lines.length, expected.length)
    for (let i = 0; i < expected.length; i++) {
      const want = expected[i].length ? expected[i].toString('hex') : '-'
      if (lines[i] !== want) assert.fail(`event ${i}: expected ${want} got ${lines[i]}`)
    }
  })

  await t.test('mergeUpdates of all updates equals Yjs', () => {
    const merged = ydoc(['merge', files.updates])
    const expected = fs.readFileSync(files.merged)
    assert.equal(merged.length, expected.length)
    assert.ok(merged.equals(expected), 'the merged update differs from Yjs')
  })

  await t.test('diffUpdate and encodeStateVectorFromUpdate of the merge equal Yjs', () => {
    const diff = ydoc(['diff', Buffer.from(DIFF_SV).toString('hex'), files.updates])
    assert.ok(diff.equals(fs.readFileSync(files.diff)), 'the diff differs from Yjs')
    const sv = ydoc(['svfrom', files.updates]).toString().trim()
    assert.equal(sv, meta.mergedSv)
  })

  await t.test('the Yjs state loads and re-encodes unchanged', () => {
    assert.ok(ydoc(['--raw', 'state', files.state]).equals(expectedState))
    const json = JSON.parse(ydoc(['--raw', '--root', 'text=text', 'json', files.state]).toString('utf8'))
    assert.ok(json.text === meta.endContent)
  })
})
