#!/usr/bin/env bash
# tests/bench/durable/run.sh: durable publish with acknowledgement.  P
# publishers (each a WebSocket subscribed to a channel of its own) publish
# non-ephemeral messages with ids in a closed loop, the next when the previous
# is acked, for DURATION seconds: acks/s and publish-to-ack latency, at each
# P of DURABLE_PUBS.  A closed loop's rate is P / latency: group commit makes
# one PostgreSQL round trip and fsync serve every publish that arrived during
# the previous one, so the rate grows with P and 30,000 acks/s (the issue's
# target) needs about a thousand publishes in flight.  rtsync runs the whole
# stack (PostgreSQL, chat-history: every ack means committed); the Node ws
# server acks without storing anything, so it is a reference for the
# transport cost only.
#
# Environment: DURABLE_PUBS ("1 10 100 1000"), DURABLE_DURATION (10), DURABLE_SIZE
# (100), DURABLE_SERVERS ("rtsync node socketio"), and those of ../lib.sh.
# Results: $BENCH_OUT/durable.jsonl, durable.txt.
set -euo pipefail
BENCH_STACK=${BENCH_STACK:-stack}
# shellcheck source=tests/bench/lib.sh
source "$(dirname "$0")/../lib.sh"

PUBS=${DURABLE_PUBS:-1 10 100 1000}
DURATION=${DURABLE_DURATION:-10}
SIZE=${DURABLE_SIZE:-100}
SERVERS=${DURABLE_SERVERS:-rtsync node socketio}
RESULTS=$BENCH_OUT/durable.jsonl
SUMMARY=$BENCH_OUT/durable.txt

bench_raise_fds
trap bench_cleanup EXIT
: >"$RESULTS"

load() { # SERVER URLS
	local p
	"${GEN[@]}" --mode durable --urls "$2" --conns 10 --channel-per-conn --channel warm --duration 2 \
		>/dev/null 2>&1 || true
	for p in $PUBS; do
		bench_gen "$1" "$RESULTS" "$1-p$p" --mode durable --urls "$2" --conns "$p" --channel-per-conn \
			--channel "dur$p" --duration "$DURATION" --size "$SIZE" --drain 5
	done
}

bench_servers durable load

{
	echo "durable: closed-loop publishers, ${SIZE}-byte messages with ids, $DURATION s per run; events/s = acks/s;" \
		"latency = publish to ack"
	echo "rtsync: 2 edges + nats + chat-history + PostgreSQL (fsync on; server CPU/RSS = edges + nats, the rest in the JSON as aux);" \
		"node ws: acks without storing (transport reference only)"
	bench_table "$RESULTS"
	jq -r 'select(.label | startswith("rtsync")) | "\(.label): chat-history CPU \([.procs[] | select(.name | startswith("chat-history")) | .cpu_s] | add // 0) s, postgres not sampled"' "$RESULTS"
	jq -s -r '[.[] | select(.label | startswith("rtsync"))] | max_by(.events_per_s // 0) // empty |
		"target >= 30000 acks/s: \(if (.events_per_s // 0) >= 30000 then "PASS" else "MISSED" end) (best: \(.events_per_s | floor)/s with \(.ready) publishers, p99 \(.lat_p99_us / 1000) ms)"' "$RESULTS"
} | tee "$SUMMARY"
