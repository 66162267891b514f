// ydoc.test.js: the command-line behaviour of build/bin/ydoc (framing, every
// command against Yjs on a small two-client document, errors and exit codes).

import test from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import * as Y from 'yjs'
import { YDOC, tmpDir } from './lib/harness.mjs'
import { frameUpdates } from './lib/trace.mjs'

function run (args, input) {
  const r = spawnSync(YDOC, args, { input, maxBuffer: 1 << 26 })
  return { code: r.status, out: r.stdout, err: r.stderr.toString() }
}

// Two clients, one concurrent edit each, a map overwrite and a delete.
function twoClients () {
  const a = new Y.Doc()
  a.clientID = 11
  const b = new Y.Doc()
  b.clientID = 22
  const ups = []
  a.on('update', (u, o) => { if (o !== 'sync') ups.push(u) })
  b.on('update', (u, o) => { if (o !== 'sync') ups.push(u) })
  a.getText('t').insert(0, 'hello 😀')
  b.getText('t').insert(0, 'B')
  b.getMap('m').set('k', 1)
  a.getMap('m').set('k', [1, 'x'])
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a), 'sync')
  b.getText('t').delete(2, 3)
  const server = new Y.Doc()
  for (const u of ups) Y.applyUpdate(server, u)
  return { ups, server }
}

const hex = u => Buffer.from(u).toString('hex')

test('ydoc: commands agree with Yjs', async (t) => {
  assert.ok(fs.existsSync(YDOC), `${YDOC} is missing: run make first`)
  const { ups, server } = twoClients()
  const dir = tmpDir()
  const stream = path.join(dir, 'stream.bin')
  fs.writeFileSync(stream, frameUpdates(ups))
  const raws = ups.map((u, i) => {
    const f = path.join(dir, `u${i}.bin`)
    fs.writeFileSync(f, u)
    return f
  })
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))

  await t.test('--help explains the framing', () => {
    const r = run(['--help'])
    assert.equal(r.code, 0)
    assert.match(r.out.toString(), /4-byte little-endian/)
    assert.match(r.out.toString(), /--raw/)
  })
  await t.test('sv, state, json from a stream file, stdin and raw files', () => {
    const sv = hex(Y.encodeStateVector(server)) + '\n'
    assert.equal(run(['sv', stream]).out.toString(), sv)
    assert.equal(run(['sv'], fs.readFileSync(stream)).out.toString(), sv)
    assert.equal(run(['--raw', 'sv', ...raws]).out.toString(), sv)
    assert.ok(run(['state', stream]).out.equals(Buffer.from(Y.encodeStateAsUpdate(server))))
    assert.equal(run(['--hex', 'state', stream]).out.toString(), hex(Y.encodeStateAsUpdate(server)) + '\n')
    const json = JSON.parse(run(['--root', 't=text', '--root', 'm=map', 'json', stream]).out.toString())
    assert.deepEqual(json, { t: server.getText('t').toString(), m: server.getMap('m').toJSON() })
  })
  await t.test('merge, diff, svfrom, v1, events', () => {
    const merged = Y.mergeUpdates(ups)
    assert.ok(run(['--raw', 'merge', ...raws]).out.equals(Buffer.from(merged)))
    const first = new Y.Doc()
    Y.applyUpdate(first, ups[0])
    const sv = Y.encodeStateVector(first)
    assert.equal(run(['--hex', 'diff', hex(sv), stream]).out.toString(), hex(Y.diffUpdate(merged, sv)) + '\n')
    assert.equal(run(['svfrom', stream]).out.toString(), hex(Y.encodeStateVectorFromUpdate(merged)) + '\n')
    const v2 = path.join(dir, 'v2.bin')
    fs.writeFileSync(v2, Y.encodeStateAsUpdateV2(server))
    assert.ok(run(['--raw', 'v1', v2]).out.equals(Buffer.from(Y.convertUpdateFormatV2ToV1(Y.encodeStateAsUpdateV2(server)))))
    const lines = run(['events', stream, stream]).out.toString().trim().split('\n')
    assert.equal(lines.length, 2 * ups.length)
    assert.deepEqual(lines.slice(ups.length), ups.map(() => '-'), 'a duplicate changes nothing')
  })
  await t.test('a malformed update is reported with its index, exit 1', () => {
    const bad = path.join(dir, 'bad.bin')
    fs.writeFileSync(bad, frameUpdates([ups[0], Buffer.from([1, 5, 0])]))
    const r = run(['state', bad])
    assert.equal(r.code, 1)
    assert.match(r.err, /update 1 of 2 .*does not decode as a V1 update/)
    assert.equal(r.out.length, 0)
    fs.writeFileSync(bad, Buffer.concat([frameUpdates([ups[0]]), Buffer.from([9, 0, 0, 0, 1])]))
    const t2 = run(['sv', bad])
    assert.equal(t2.code, 1)
    assert.match(t2.err, /update 1 \(offset \d+\): length 9 exceeds/)
    assert.equal(run(['--raw', 'merge', raws[0], bad]).code, 1)
  })
  await t.test('usage errors exit 2', () => {
    assert.equal(run(['nosuchcommand']).code, 2)
    assert.equal(run(['--nosuchoption', 'sv']).code, 2)
    assert.equal(run(['diff']).code, 2)
  })
})
