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
# server and rt-bare ack without storing anything, so they are references for
# the transport cost only: rt-bare's is the floor of this core.  After
# rtsync's runs, pg-floor.sh measures what PostgreSQL alone takes per message
# in the same cluster (the least a durable history can write, and rtsync's
# statements), so the summary can tell what one core allows at best: rt-bare's
# CPU per ack plus PostgreSQL's least per row, and nothing else.
#
# Environment: DURABLE_PUBS ("1 10 100 1000"), DURABLE_DURATION (10), DURABLE_SIZE
# (100), DURABLE_SERVERS ("rtsync node socketio"), and those of ../lib.sh.
# Results: $BENCH_OUT/durable.jsonl, durable-pg.jsonl, durable.txt.
set -euo pipefail
BENCH_STACK=${BENCH_STACK:-stack}
# shellcheck source=tests/bench/lib.sh
source "$(dirname "$0")/../lib.sh"

PUBS=${DURABLE_PUBS:-1 10 100 1000}
DURATION=${DURABLE_DURATION:-10}
SIZE=${DURABLE_SIZE:-100}
SERVERS=${DURABLE_SERVERS:-rtsync node socketio bare}
RESULTS=$BENCH_OUT/durable.jsonl
PG_RESULTS=$BENCH_OUT/durable-pg.jsonl
SUMMARY=$BENCH_OUT/durable.txt

bench_raise_fds
trap bench_cleanup EXIT
: >"$RESULTS"
: >"$PG_RESULTS"

load() { # SERVER URLS
	local p
	"${GEN[@]}" --mode durable --urls "$2" --conns 10 --channel-per-conn --channel warm --duration 2 \
		>/dev/null 2>&1 || true
	for p in $PUBS; do
		bench_gen "$1" "$RESULTS" "$1-p$p" --mode durable --urls "$2" --conns "$p" --channel-per-conn \
			--channel "dur$p" --duration "$DURATION" --size "$SIZE" --drain 5
	done
	if [[ $1 == rtsync ]]; then
		bench_wait_quiet
		bench_say "== durable: PostgreSQL alone per row (pg-floor.sh)"
		"$(dirname "$0")/pg-floor.sh" "$B_PG_PORT" "$(head -n 1 "$BENCH_RUN_DIR/pg/postmaster.pid")" "$DURATION" \
			"$GEN_CPU" >>"$PG_RESULTS" || bench_say "durable: pg-floor.sh failed"
	fi
}

bench_servers durable load

{
	echo "durable: closed-loop publishers, ${SIZE}-byte messages with ids, $DURATION s per run; events/s = acks/s;" \
		"latency = publish to ack"
	echo "rtsync: 2 edges + nats + chat-history + PostgreSQL (fsync on; server CPU/RSS = edges + nats, the rest in the JSON as aux);" \
		"node ws: acks without storing (transport reference only)"
	bench_table "$RESULTS"
	jq -r 'select(.label | startswith("rtsync")) | "\(.label): chat-history CPU \([.procs[] | select(.name | startswith("chat-history")) | .cpu_s] | add // 0) s, postgres not sampled"' "$RESULTS"
	jq -r '"PostgreSQL alone, \(.variant) statements, 100 rows per commit, 4 clients: \(.rows_per_s | round) rows/s," +
	       " \(.pg_us_per_row * 10 | round / 10) us of its CPU per row"' "$PG_RESULTS"
	jq -rs --slurpfile pg "$PG_RESULTS" --argjson d "$DURATION" '
	  (map(select(.label | startswith("bare-p"))) | max_by(.events_per_s) // null) as $b |
	  ($pg | map(select(.variant == "minimal")) | .[0].pg_us_per_row // null) as $row |
	  if $b != null and $row != null and $b.events_per_s > 0 then
	    ($b.server_cpu_s * 1e6 / ($b.events_per_s * $d)) as $ack |
	    "the floor: rt-bare acks at \($ack * 10 | round / 10) us of CPU each (\($b.events_per_s | round)/s, nothing stored)" +
	    " + PostgreSQL'"'"'s least per row \($row * 10 | round / 10) us = one core acks at most" +
	    " \(1e6 / ($ack + $row) | round)/s durably, with nothing else on it"
	  else "the floor: n/a (rt-bare or pg-floor missing)" end' "$RESULTS"
	jq -s -r '[.[] | select(.label | startswith("rtsync"))] | max_by(.events_per_s // 0) // empty |
		"target >= 30000 acks/s: \(if (.events_per_s // 0) >= 30000 then "PASS" else "MISSED" end) (best: \(.events_per_s | floor)/s with \(.ready) publishers, p99 \(.lat_p99_us / 1000) ms)"' "$RESULTS"
} | tee "$SUMMARY"
