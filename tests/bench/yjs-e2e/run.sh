#!/usr/bin/env bash
# tests/bench/yjs-e2e/run.sh: the automerge-paper trace end to end, one provider
# to another across two edges, on rtsync and on the reference servers
# (y-websocket@1.5.4, Hocuspocus 3.4; tests/bench/peers).  See bench.mjs.
#   BENCH_UPDATES=N  only the first N of the 259,778 updates (default: all)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
cd "$ROOT"
[[ -d tests/bench/peers/node_modules ]] || (cd tests/bench/peers && npm ci --no-audit --no-fund >/dev/null)
[[ -x build/bin/crdt-merge && -x build/bin/edge ]] || make -s
BENCH_OUT=${BENCH_OUT:-$ROOT/bench/results/manual}
mkdir -p "$BENCH_OUT"
export BENCH_OUT
taskset -c "${BENCH_GEN_CPU:-1}" node "$HERE/bench.mjs" "$@" | tee "$BENCH_OUT/yjs-e2e.txt"
