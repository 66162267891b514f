#!/usr/bin/env bash
# tests/bench/many/run.sh: many small channels.  CONNS WebSocket connections
# in channels of MANY_GROUP members (connection i in channel i/GROUP); one
# publisher sends MANY_RATE ephemeral messages a second, round-robin over the
# channels, for MANY_DURATION s: deliveries/s, latency, loss, server CPU and
# RSS, at each size of MANY_CONNS, against rtsync (2 edges) and the peers.
# The issue's size is 10,000 channels x 5 = 50,000 connections: beyond one
# generator's and one peer process's fd cap (20,000) on this machine, so the
# largest default size is 3,000 channels (15,000 connections, one generator).
#
# Environment: MANY_CONNS ("2500 5000 15000"), MANY_GROUP (5), MANY_RATE
# (1000), MANY_DURATION (10), MANY_SERVERS ("rtsync node socketio fastapi
# bare"; bare = rt-bare, the one-write-per-delivery C floor), and those of
# ../lib.sh.  Results: $BENCH_OUT/many.jsonl, many.txt.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "$0")/../lib.sh"

SIZES=${MANY_CONNS:-2500 5000 15000}
GROUP=${MANY_GROUP:-5}
RATE=${MANY_RATE:-1000}
DURATION=${MANY_DURATION:-10}
SERVERS=${MANY_SERVERS:-rtsync node socketio fastapi bare}
RESULTS=$BENCH_OUT/many.jsonl
SUMMARY=$BENCH_OUT/many.txt

bench_raise_fds
trap bench_cleanup EXIT
: >"$RESULTS"

load() { # SERVER URLS
	local n
	for n in $SIZES; do
		"${1}_alive" || "${1}_up" || return 1
		bench_gen "$1" "$RESULTS" "$1-$((n / GROUP))ch" --mode fanout --urls "$2" --conns "$n" --group "$GROUP" \
			--channel "many$n" --rate "$RATE" --duration "$DURATION" --settle 2 --setup-timeout 240
	done
}

run_rtsync() {
	if ! rtsync_built || ! rtsync_up; then
		bench_say "many: rtsync did not start; skipped"
		rtsync_down
		return
	fi
	load rtsync "$EDGE_URLS"
	rtsync_down
}

run_node() {
	node_up || { bench_say "many: the node ws server did not start"; return; }
	load node "$NODE_URL"
	node_down
}

run_fastapi() {
	fastapi_up || { bench_say "many: the FastAPI server did not start"; return; }
	load fastapi "$FASTAPI_URL"
	fastapi_down
}

run_socketio() {
	socketio_up || { bench_say "many: the Socket.IO server did not start"; return; }
	load socketio "$SOCKETIO_URL"
	socketio_down
}

run_bare() {
	bare_up || { bench_say "many: rt-bare did not start"; return; }
	load bare "$BARE_URL"
	bare_down
}

for s in $SERVERS; do "run_$s"; done

{
	echo "many: channels of $GROUP members, one publisher at $RATE msg/s round-robin over the channels, $DURATION s per run;" \
		"events/s = deliveries/s"
	echo "rtsync: 2 edges (half the connections each) + nats; node ws, socketio, fastapi, bare (rt-bare): one process"
	bench_table "$RESULTS"
} | tee "$SUMMARY"
