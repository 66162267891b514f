#!/usr/bin/env bash
# tests/bench/sse/run.sh: SSE token streaming.  SSE_CLIENTS EventSource-style
# readers of /sse/{ch} (half on each rtsync edge) and one worker POSTing
# ephemeral `token` events to /v1/channels/{ch}/publish at each rate of
# SSE_RATES for SSE_DURATION seconds: deliveries/s, POST-to-arrival latency,
# loss, server CPU and RSS.  Against rtsync (nats-server + 2 edges) and the
# FastAPI peer (StreamingResponse per reader, one uvicorn process).  Several
# client counts: SSE_CLIENTS may be a list ("1000 5000").
#
# Environment: SSE_CLIENTS ("1000 5000"), SSE_RATES ("20 100"), SSE_DURATION
# (10), SSE_SIZE (40), SSE_SERVERS ("rtsync fastapi"), and those of ../lib.sh.
# Results: $BENCH_OUT/sse.jsonl, sse.txt.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "$0")/../lib.sh"

CLIENTS=${SSE_CLIENTS:-1000 5000}
RATES=${SSE_RATES:-20 100}
DURATION=${SSE_DURATION:-10}
SIZE=${SSE_SIZE:-40}
SERVERS=${SSE_SERVERS:-rtsync fastapi}
RESULTS=$BENCH_OUT/sse.jsonl
SUMMARY=$BENCH_OUT/sse.txt

bench_raise_fds
trap bench_cleanup EXIT
: >"$RESULTS"

load() { # SERVER READER-URLS PUBLISH-URL
	local n rate
	for n in $CLIENTS; do
		for rate in $RATES; do
			bench_gen "$1" "$RESULTS" "$1-$n-$rate/s" --mode sse --urls "$2" --pub-url "$3" --conns "$n" \
				--rate "$rate" --duration "$DURATION" --size "$SIZE" --settle 2
		done
	done
}

run_rtsync() {
	if ! rtsync_built || ! rtsync_up; then
		bench_say "sse: rtsync did not start; skipped"
		rtsync_down
		return
	fi
	local p=$B_EDGE_PORT
	load rtsync "http://127.0.0.1:$p/sse/tokens,http://127.0.0.1:$((p + 1))/sse/tokens" \
		"http://127.0.0.1:$p/v1/channels/tokens/publish"
	rtsync_down
}

run_fastapi() {
	fastapi_up || { bench_say "sse: the FastAPI server did not start"; return; }
	load fastapi "http://127.0.0.1:$B_FASTAPI_PORT/sse/tokens" "http://127.0.0.1:$B_FASTAPI_PORT/v1/channels/tokens/publish"
	fastapi_down
}

for s in $SERVERS; do "run_$s"; done

{
	echo "sse: readers of /sse/tokens, a worker POSTs ephemeral ${SIZE}-byte token events; $DURATION s per run;" \
		"events/s = deliveries/s; latency = POST sent to event arrival"
	echo "rtsync: readers split over 2 edges, server = edges + nats; fastapi: one uvicorn process"
	bench_table "$RESULTS"
} | tee "$SUMMARY"
