#!/usr/bin/env bash
# tests/bench/soak/run.sh (make soak): SOAK_CONNS WebSocket connections
# (half on each rtsync edge, in channels of 5) with steady traffic for
# SOAK_DURATION seconds: two generators (10,000 connections each: the fd
# cap), each publishing SOAK_RATE messages a second round-robin over its
# channels from the other edge.  Every SOAK_INTERVAL seconds each generator
# prints a sample: deliveries/s and latency of that window, and (the first)
# the edges' + nats-server's RSS.  Flat RSS expected: the summary compares
# the last sample with the one a minute in.
#
# Environment: SOAK_CONNS (20000), SOAK_RATE (100), SOAK_DURATION (600),
# SOAK_INTERVAL (10), and those of ../lib.sh.  Results in $BENCH_OUT (default
# bench/results/soak-<time>/): soak.jsonl (samples, then each generator's
# totals), soak.txt, soak-rss.png and soak-latency.png (gnuplot).
set -euo pipefail
BENCH_OUT=${BENCH_OUT:-$(cd "$(dirname "$0")/../../.." && pwd)/bench/results/soak-$(date -u +%Y%m%dT%H%M%SZ)}
export BENCH_OUT
# shellcheck source=tests/bench/lib.sh
source "$(dirname "$0")/../lib.sh"

CONNS=${SOAK_CONNS:-20000}
RATE=${SOAK_RATE:-100}
DURATION=${SOAK_DURATION:-600}
INTERVAL=${SOAK_INTERVAL:-10}
RESULTS=$BENCH_OUT/soak.jsonl
SUMMARY=$BENCH_OUT/soak.txt
GEN_PIDS=()

[[ -x $LOADGEN && -x $BENCH_ROOT/build/bin/edge ]] || make -s -C "$BENCH_ROOT" build/bin/rt-loadgen build/bin/edge
bench_raise_fds
# shellcheck disable=SC2317 # called by the EXIT trap
stop_gens() {
	local p
	for p in "${GEN_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	GEN_PIDS=()
}
trap 'stop_gens; bench_cleanup' EXIT
: >"$RESULTS"

rtsync_up || { bench_say "soak: rtsync did not start (logs: $BENCH_OUT/logs/)"; exit 1; }
a=${EDGE_URLS%%,*} b=${EDGE_URLS#*,}
half=$((CONNS / 2))
bench_wait_quiet
bench_say "== soak: $CONNS connections, 2 x $RATE msg/s, $DURATION s, a sample every $INTERVAL s"
"${GEN[@]}" --mode fanout --urls "$a" --pub-url "$b" --conns "$half" --group 5 --channel soakA --rate "$RATE" \
	--duration "$DURATION" --interval "$INTERVAL" --settle 2 --setup-timeout 300 --pids "$(rtsync_pids)" \
	--server-core "$SERVER_CPU" --label soak-A >"$BENCH_OUT/soak-A.jsonl" &
GEN_PIDS+=($!)
"${GEN[@]}" --mode fanout --urls "$b" --pub-url "$a" --conns "$((CONNS - half))" --group 5 --channel soakB \
	--rate "$RATE" --duration "$DURATION" --interval "$INTERVAL" --settle 2 --setup-timeout 300 --label soak-B \
	>"$BENCH_OUT/soak-B.jsonl" &
GEN_PIDS+=($!)
status=0
for p in "${GEN_PIDS[@]}"; do wait "$p" || status=1; done
GEN_PIDS=()
rtsync_alive || { bench_say "soak: an rtsync process died (logs: $BENCH_OUT/logs/)"; status=1; }
cat "$BENCH_OUT/soak-A.jsonl" "$BENCH_OUT/soak-B.jsonl" >"$RESULTS"

# A's samples carry the RSS; latency is the worse of the two generators' windows
jq -r -s '
  (map(select(.window and .label == "soak-B")) | map({key: (.t_s | floor | tostring), value: .}) | from_entries) as $b |
  map(select(.window and .label == "soak-A"))[] |
  ($b[(.t_s | floor | tostring)] // {}) as $o |
  [.t_s, .server_rss_kb / 1024, .deliveries_per_s + ($o.deliveries_per_s // 0), ([.lat_p50_us, $o.lat_p50_us // 0] | max) / 1000,
   ([.lat_p99_us, $o.lat_p99_us // 0] | max) / 1000, ([.lat_max_us, $o.lat_max_us // 0] | max) / 1000,
   .ready - .closed_during_run + (($o.ready // 0) - ($o.closed_during_run // 0))] | @tsv' "$RESULTS" >"$BENCH_OUT/soak.dat"

{
	echo "soak: $CONNS connections over 2 edges (channels of 5), 2 x $RATE msg/s, $DURATION s; a sample every $INTERVAL s"
	echo "RSS = edges + nats-server; latency = the worse of the two generators' windows"
	printf '%8s %9s %10s %9s %9s %9s %7s\n' t_s RSS_MiB deliv/s p50_ms p99_ms max_ms open
	awk -F'\t' '{printf "%8.0f %9.1f %10.0f %9.2f %9.2f %9.2f %7d\n", $1, $2, $3, $4, $5, $6, $7}' "$BENCH_OUT/soak.dat"
	jq -r 'select(.window | not) | "\(.label): delivered \(.delivered) of \(.expected) (lost \(.lost)), p99 \(.lat_p99_us / 1000) ms, max \(.lat_max_us / 1000) ms"' "$RESULTS"
	awk -F'\t' -v iv="$INTERVAL" 'NR == 1 {first = $2} $1 >= 60 && !ref {ref = $2} {last = $2}
	  END { if (!ref) ref = first
	        if (ref > 0) printf "RSS from the 60 s sample to the last: %.1f -> %.1f MiB (%+.1f %%): %s\n", ref, last,
	          (last - ref) * 100 / ref, (last - ref) * 100 / ref <= 5 ? "flat (within 5 %)" : "GROWING" }' "$BENCH_OUT/soak.dat"
} | tee "$SUMMARY"

if command -v gnuplot >/dev/null && [[ -s $BENCH_OUT/soak.dat ]]; then
	gnuplot <<-EOF || true
		set terminal pngcairo size 800,420 noenhanced
		set grid
		set xlabel 'seconds'
		set output '$BENCH_OUT/soak-rss.png'
		set title 'soak: RSS of the edges + nats-server, $CONNS connections'
		set ylabel 'MiB'
		set yrange [0:*]
		plot '$BENCH_OUT/soak.dat' using 1:2 with linespoints lw 2 title 'RSS'
		set output '$BENCH_OUT/soak-latency.png'
		set title 'soak: delivery latency per window'
		set ylabel 'ms'
		plot '$BENCH_OUT/soak.dat' using 1:4 with linespoints lw 2 title 'p50', '' using 1:5 with linespoints lw 2 title 'p99'
	EOF
fi
exit "$status"
