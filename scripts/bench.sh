#!/usr/bin/env bash
# scripts/bench.sh (make bench): runs the benchmark scenarios in order and
# collects their outputs under bench/results/<UTC time>/ (gitignored), with
# bench/results/latest pointing at the newest.
#
# A scenario is a directory tests/bench/<name>/ with an executable run.sh that
# writes its results into $BENCH_OUT and prints a summary; add yours to
# SCENARIOS below.  Helpers for scenarios: tests/bench/lib.sh.
#
#   scripts/bench.sh                 every scenario
#   scripts/bench.sh fanout          only the named ones
#   BENCH_SERVER_CPU / BENCH_GEN_CPU cores of the servers / the generator (0 / 1)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

SCENARIOS=(
	fanout   # one publisher, 1000 subscribers over 2 edges vs a Node ws server
	many     # channels of 5 members, messages round-robin over them (rtsync, node ws, FastAPI)
	sse      # SSE readers, a worker POSTing token events (rtsync, FastAPI)
	durable  # closed-loop durable publishes, publish-to-ack latency at 1, 10, 100 publishers
	churn    # presence churn: subscribe-to-join latency seen from the other edge
	idle     # RSS per idle WebSocket connection at 50,000 connections (5 edges)
	history  # chat-history through NATS: acked msgs/s and ack latency
	yjs      # the Yjs engine alone vs Yjs in Node on the automerge-paper trace
	yjs-e2e  # the automerge-paper Yjs trace across two edges vs y-websocket and Hocuspocus
)
(($# == 0)) || SCENARIOS=("$@")

[[ -x build/bin/rt-loadgen ]] || make -s build/bin/rt-loadgen || exit 1
[[ -x build/bin/rt-bare ]] || make -s build/bin/rt-bare || exit 1
if [[ ! -x build/bin/edge ]]; then
	make -s build/bin/edge >/dev/null 2>&1 || echo "bench: build/bin/edge does not build yet; rtsync runs will be skipped"
fi
for tool in jq taskset node nats-server curl; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing (run scripts/deps.sh)"; exit 1; }
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$ROOT/bench/results/$stamp
mkdir -p "$out"
ln -sfn "$stamp" "$ROOT/bench/results/latest"
{
	echo "rtsync bench $stamp, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
	echo "$(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "kernel $(uname -r), node $(node --version), $(nats-server --version 2>&1 | head -n 1)"
} | tee "$out/machine.txt"

failed=()
for s in "${SCENARIOS[@]}"; do
	script=tests/bench/$s/run.sh
	if [[ ! -x $script ]]; then
		echo "bench: no scenario $s ($script)"
		failed+=("$s")
		continue
	fi
	echo
	echo "=== bench: $s"
	mkdir -p "$out/$s"
	if ! BENCH_OUT=$out/$s "$script" 2> >(tee "$out/$s/stderr.log" >&2) | tee "$out/$s/summary.txt"; then
		failed+=("$s")
	fi
done

echo
echo "bench: results in bench/results/$stamp/"
for s in "${SCENARIOS[@]}"; do
	[[ -s $out/$s/summary.txt ]] && { echo "--- $s"; cat "$out/$s/summary.txt"; }
done > "$out/summary.txt"
"$ROOT/tests/bench/report.sh" "$out" || echo "bench: the report failed"
((${#failed[@]} == 0)) || { echo "bench: failed: ${failed[*]}"; exit 1; }
