#!/usr/bin/env bash
# tests/bench/yjs/run.sh: the C Yjs engine against Yjs in Node on the real
# editing trace (apply every update, encode, load, peak memory); see bench.mjs.
set -u
cd "$(dirname "$0")/../../.." || exit 1
[[ -x build/bin/ydoc ]] || make -s build/bin/ydoc || exit 1
exec node tests/bench/yjs/bench.mjs
