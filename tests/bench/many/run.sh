#!/usr/bin/env bash
# tests/bench/many/run.sh: many small channels.  CONNS WebSocket connections
# in channels of MANY_GROUP members (connection i in channel i/GROUP); one
# publisher sends MANY_RATE ephemeral messages a second, round-robin over the
# channels, for MANY_DURATION s: deliveries/s, latency, loss, server CPU and
# RSS, at each size of MANY_CONNS, against rtsync (2 edges) and the peers.
# The issue's size, 10,000 channels x 5 = 50,000 connections (MANY_BIG), is
# past the fd cap (20,000 per process) of one generator and of one peer
# process: rtsync runs it alone, on MANY_BIG_EDGES edges, driven by
# generators of at most 19,000 connections each that start publishing
# together (each its own channels and publisher at MANY_RATE / generators);
# their JSON lines are merged into one (deliveries summed, the server CPU of
# the common window, the worst generator's latency percentiles).
#
# Environment: MANY_CONNS ("2500 5000 15000"), MANY_BIG (50000; 0 = skip),
# MANY_BIG_EDGES (3), MANY_GROUP (5), MANY_RATE (1000), MANY_DURATION (10),
# MANY_SERVERS ("rtsync node socketio fastapi bare"), and those of
# ../lib.sh.  Results: $BENCH_OUT/many.jsonl, many.txt.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "$0")/../lib.sh"

SIZES=${MANY_CONNS:-2500 5000 15000}
BIG=${MANY_BIG:-50000}
BIG_EDGES=${MANY_BIG_EDGES:-3}
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

# load_split SERVER URLS N: N connections from generators of at most 19,000
# each, started together; one merged JSON line in RESULTS.
load_split() {
	local server=$1 urls=$2 n=$3 gens i per tmp=$BENCH_OUT/many-split aux
	gens=$(((n + 18999) / 19000))
	per=$(((n / gens + GROUP - 1) / GROUP * GROUP)) # whole channels per generator
	rm -rf "$tmp" && mkdir -p "$tmp"
	aux=$("${server}_aux_pids")
	bench_wait_quiet
	bench_say "== $server-$((n / GROUP))ch: $n connections from $gens generators"
	local -a pids=()
	for ((i = 0; i < gens; i++)); do
		local c=$((i < gens - 1 ? per : n - per * (gens - 1)))
		"${GEN[@]}" --mode fanout --urls "$urls" --conns "$c" --group "$GROUP" --channel "big$i-" \
			--rate "$(jq -n "$RATE / $gens")" --duration "$DURATION" --settle 2 --setup-timeout 300 \
			--start-file "$tmp/start" --ready-file "$tmp/ready-$i" --pids "$("${server}_pids")" \
			${aux:+--aux-pids "$aux"} --server-core "$SERVER_CPU" --label "$server-$i" >"$tmp/gen-$i.json" &
		pids+=($!)
	done
	local deadline=$((SECONDS + 320))
	while (($(find "$tmp" -name 'ready-*' | wc -l) < gens)) && ((SECONDS < deadline)); do sleep 0.5; done
	touch "$tmp/start"
	for p in "${pids[@]}"; do wait "$p" || bench_say "many: a generator of $server reported a failure"; done
	jq -c -s --arg name "$server-$((n / GROUP))ch" --argjson gens "$gens" '
		def total(f): map(f // 0) | add;
		(map(.server_cpu_s) | max) as $cpu | (total(.deliveries_per_s)) as $dps | (map(.duration_s) | max) as $d |
		.[0] + {"label": $name, "generators": $gens, "conns": total(.conns), "ready": total(.ready),
		  "failed": total(.failed), "rate": total(.rate), "sent": total(.sent), "expected": total(.expected),
		  "delivered": total(.delivered), "lost": total(.lost), "errors": total(.errors), "deliveries_per_s": $dps,
		  "server_cpu_s": $cpu, "deliveries_per_server_cpu_s": (if $cpu > 0 then ($dps * $d / $cpu | floor) else 0 end),
		  "lat_p50_us": (map(.lat_p50_us) | max), "lat_p99_us": (map(.lat_p99_us) | max),
		  "lat_max_us": (map(.lat_max_us) | max)}' "$tmp"/gen-*.json >>"$RESULTS"
	"${server}_alive" || bench_say "many: $server died during the $n-connection run (logs: $BENCH_OUT/logs/)"
}

bench_servers many load

# the issue's size, rtsync only: more edges (fd cap), each a third of the connections
if [[ " $SERVERS " == *" rtsync "* ]] && ((BIG > 0)) && rtsync_built; then
	B_EDGES=$BIG_EDGES
	EDGE_URLS=$(seq -f "ws://127.0.0.1:%g/ws" "$B_EDGE_PORT" $((B_EDGE_PORT + B_EDGES - 1)) | paste -sd,)
	if rtsync_up; then
		load_split rtsync "$EDGE_URLS" "$BIG"
	else
		bench_say "many: rtsync with $B_EDGES edges did not start; the $BIG-connection run is skipped"
	fi
	rtsync_down
fi

{
	echo "many: channels of $GROUP members, one publisher at $RATE msg/s round-robin over the channels, $DURATION s per run;" \
		"events/s = deliveries/s"
	echo "rtsync: 2 edges (half the connections each) + nats, and $BIG_EDGES edges for $BIG connections (generators of <= 19,000 merged);" \
		"node ws, socketio, fastapi, bare (rt-bare): one process"
	bench_table "$RESULTS"
} | tee "$SUMMARY"
