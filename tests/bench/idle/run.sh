#!/usr/bin/env bash
# tests/bench/idle/run.sh: memory per idle WebSocket connection.  Opens
# IDLE_CONNS connections (each subscribed to a channel of its own) and holds them;
# bytes per connection = (server RSS with them - RSS before) / connections.
# rtsync: 10,000 per edge (5 edges for the default 50,000: an edge is one
# process under the fd cap of 20,000), the edges' RSS summed.  Node: one
# process, so at most IDLE_NODE_CONNS (19,000).  Each generator process holds
# at most 10,000 (the same fd cap), so several run side by side on the
# generator's core.
#
# Environment: IDLE_CONNS (50000), IDLE_NODE_CONNS (19000), IDLE_SERVERS
# ("rtsync node socketio fastapi"; the peers get IDLE_NODE_CONNS), IDLE_ONE_CHANNEL (0), and those of ../lib.sh.
# Results: $BENCH_OUT/idle.jsonl (one line per server), idle.txt.
set -euo pipefail
CONNS=${IDLE_CONNS:-50000}
# 10,000 connections per edge: an edge is one process under the fd cap too
BENCH_EDGES=${BENCH_EDGES:-$(((CONNS + 9999) / 10000))}
# shellcheck source=tests/bench/lib.sh
source "$(dirname "$0")/../lib.sh"

NODE_CONNS=${IDLE_NODE_CONNS:-19000}
SERVERS=${IDLE_SERVERS:-rtsync node socketio fastapi}
# Each connection subscribes to a channel of its own: thousands of members in
# one channel would measure the join/leave fan-out among them, not idle
# connections.  IDLE_ONE_CHANNEL=1 puts each generator's connections in one channel.
CHANNEL_OPT=(--channel-per-conn)
[[ ${IDLE_ONE_CHANNEL:-0} == 0 ]] || CHANNEL_OPT=()
RESULTS=$BENCH_OUT/idle.jsonl
SUMMARY=$BENCH_OUT/idle.txt
GEN_PIDS=()

bench_raise_fds
stop_gens() {
	local p
	for p in "${GEN_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	GEN_PIDS=()
}
trap 'stop_gens; bench_cleanup' EXIT
: >"$RESULTS"

# hold SERVER RSS_FN TOTAL URLS: TOTAL connections from generators of at most
# 10,000 each (the fd cap), generator i on URL i of the comma-separated URLS
# (round-robin); RSS_FN prints the server's RSS in KiB.
hold() {
	local server=$1 rss_fn=$2 total=$3 i before after
	local -a urls
	IFS=, read -r -a urls <<<"$4"
	local gens=$(((total + 9999) / 10000)) tmp=$BENCH_OUT/idle-$server
	rm -rf "$tmp" && mkdir -p "$tmp"
	bench_wait_quiet
	before=$($rss_fn)
	bench_say "== idle $server: $total connections ($gens generators), server RSS before: $before KiB"
	for ((i = 0; i < gens; i++)); do
		local n=$((total / gens + (i < total % gens ? 1 : 0)))
		"${GEN[@]}" --mode idle --urls "${urls[i % ${#urls[@]}]}" --conns "$n" --hold 900 \
			--channel "idle$i" "${CHANNEL_OPT[@]}" --ready-file "$tmp/ready-$i" --label "$server-$i" \
			>"$tmp/gen-$i.json" &
		GEN_PIDS+=($!)
	done
	local deadline=$((SECONDS + 300)) ready
	while :; do
		ready=$(find "$tmp" -name 'ready-*' | wc -l)
		((ready < gens)) || break
		for ((i = 0; i < gens; i++)); do
			kill -0 "${GEN_PIDS[$i]}" 2>/dev/null || { bench_say "idle $server: a generator exited early"; break 2; }
		done
		((SECONDS < deadline)) || { bench_say "idle $server: setup timed out"; break; }
		sleep 0.5
	done
	sleep 3 # let the servers settle (timers, lazy allocations) before sampling
	after=$($rss_fn)
	for p in "${GEN_PIDS[@]}"; do kill -USR1 "$p" 2>/dev/null || true; done
	for p in "${GEN_PIDS[@]}"; do wait "$p" || true; done
	GEN_PIDS=()
	cat "$tmp"/gen-*.json | jq -c -s --arg s "$server" --argjson b "$before" --argjson a "$after" \
		--argjson total "$total" --argjson gens "$gens" '
		(map(.ready - .closed_during_run) | add) as $held |
		{server: $s, conns: $total, generators: $gens, held: $held, failed: (map(.failed) | add),
		 other_frames: (map(.other_frames) | add), errors: (map(.errors) | add),
		 setup_s: (map(.setup_s) | max), rss_before_kb: $b, rss_after_kb: $a,
		 bytes_per_conn: (if $held > 0 then (($a - $b) * 1024 / $held | round) else null end)}' >>"$RESULTS"
}

# idle_load SERVER URLS: rtsync's edges hold CONNS, a peer's one process NODE_CONNS
idle_load() {
	if [[ $1 == rtsync ]]; then
		hold rtsync rtsync_edges_rss_kb "$CONNS" "$2"
	else
		hold "$1" "${1}_rss_kb" "$NODE_CONNS" "$2"
	fi
}
node_rss_kb() { rss_kb "$NODE_PID"; }
socketio_rss_kb() { rss_kb "$SOCKETIO_PID"; }
fastapi_rss_kb() { rss_kb "$FASTAPI_PID"; }

bench_servers idle idle_load

{
	echo "idle: RSS per idle WebSocket connection ($([[ ${#CHANNEL_OPT[@]} -gt 0 ]] && echo "each subscribed to a channel of its own" || echo "all of a generator subscribed to one channel"))"
	echo "rtsync: $CONNS connections, 10,000 per edge over $B_EDGES edges, RSS of the edges summed;" \
		"peers: $NODE_CONNS connections on their one process (the fd cap is 20,000 per process)"
	printf '%-8s %7s %7s %7s %12s %12s %14s\n' server conns held failed RSS_before RSS_after bytes/conn
	jq -r '[.server, .conns, .held, .failed, .rss_before_kb, .rss_after_kb, .bytes_per_conn] | @tsv' "$RESULTS" |
		awk -F'\t' '{printf "%-8s %7d %7d %7d %9d KiB %9d KiB %14s\n", $1, $2, $3, $4, $5, $6, $7}'
	jq -rs '(map(select(.server == "rtsync")) | .[0]) as $e |
	  if $e and $e.bytes_per_conn != null then
	    "target: at most 4096 bytes per idle connection: " + (if $e.bytes_per_conn <= 4096 then "PASS" else "FAIL" end)
	  else empty end' "$RESULTS"
} | tee "$SUMMARY"
