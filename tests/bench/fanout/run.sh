#!/usr/bin/env bash
# tests/bench/fanout/run.sh: the fan-out benchmark.  One publisher, SUBS
# WebSocket subscribers on one channel (split over the two edges), 100-byte
# ephemeral messages at each rate of RATES for DURATION seconds; first
# against rtsync (nats-server + 2 edges, RT_EDGE_THREADS=1, all pinned to the
# server core), then against the Node `ws` reference server and the other
# peers (one process on the same core), and rt-bare (tests/bench/bare/: a
# bare epoll C server, one write() per delivery, the floor any broadcast
# server can reach on this core).  The generator runs on its own core.
#
# Per run: deliveries/s, deliveries per server CPU-second (server = edges +
# nats-server, or the node process; utime+stime from /proc/PID/stat over the
# publish window), p50/p99/max publish-to-receive latency, loss, CPU, RSS,
# write syscalls per delivery (/proc/PID/io syscw: write/writev, not sendmsg;
# rtsync's edges send through io_uring, so for the rate runs the summary adds
# their socket sends and the io_uring calls that carried them, fanout-writes.txt);
# then the rtsync/node ratio, the fraction of rt-bare's efficiency rtsync
# reaches, rt-bare's p99 (is the latency target reachable on one core at all)
# and the targets.
#
# Environment: FANOUT_SUBS (1000), FANOUT_RATES ("50 100"), FANOUT_DURATION (10),
# FANOUT_SIZE (100), FANOUT_SERVERS ("rtsync node socketio fastapi bare"), FANOUT_SWEEP
# ("100 1000 5000 19000": subscriber counts at FANOUT_SWEEP_RATE (20) msg/s,
# labelled SERVER-nCOUNT), and those of ../lib.sh.
# Results: $BENCH_OUT/fanout.jsonl (one rt-loadgen JSON line per run), fanout.txt,
# fanout-writes.txt.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
source "$(dirname "$0")/../lib.sh"

SUBS=${FANOUT_SUBS:-1000}
RATES=${FANOUT_RATES:-50 100}
DURATION=${FANOUT_DURATION:-10}
SIZE=${FANOUT_SIZE:-100}
SERVERS=${FANOUT_SERVERS:-rtsync node socketio fastapi bare}
# how cost grows: one run per subscriber count at SWEEP_RATE msg/s (19,000 at
# most: one generator process and one peer process each stay under the fd cap)
SWEEP=${FANOUT_SWEEP:-100 1000 5000 19000}
SWEEP_RATE=${FANOUT_SWEEP_RATE:-20}
RESULTS=$BENCH_OUT/fanout.jsonl
SUMMARY=$BENCH_OUT/fanout.txt
WRITES=$BENCH_OUT/fanout-writes.txt # LABEL SENDS CALLS (before) SENDS CALLS (after) of rtsync's edges

bench_raise_fds
trap bench_cleanup EXIT
: >"$RESULTS"
: >"$WRITES"

# load SERVER URLS: a warm-up, then one measured run per rate, using the
# server's functions from ../lib.sh: SERVER_up, SERVER_alive, SERVER_pids,
# SERVER_aux_pids.  A server that died is reported and started again.
load() {
	local server=$1 urls=$2 rate aux before
	"${GEN[@]}" --mode fanout --urls "$urls" --conns "$SUBS" --rate 50 --duration 2 --size "$SIZE" \
		--label "$server-warmup" >/dev/null 2>&1 || true
	for rate in $RATES; do
		if ! "${server}_alive"; then
			bench_say "fanout: $server died (logs: $BENCH_OUT/logs/); starting it again"
			"${server}_up" || return 1
		fi
		aux=$("${server}_aux_pids")
		bench_wait_quiet
		bench_say "== fanout $server: $SUBS subscribers x $rate msg/s x $DURATION s"
		[[ $server != rtsync ]] || before=$(rtsync_write_counters)
		"${GEN[@]}" --mode fanout --urls "$urls" --conns "$SUBS" --rate "$rate" --duration "$DURATION" \
			--size "$SIZE" --pids "$("${server}_pids")" ${aux:+--aux-pids "$aux"} --server-core "$SERVER_CPU" \
			--label "$server-$rate" \
			>>"$RESULTS" || bench_say "fanout $server-$rate: the generator reported a failure"
		[[ $server != rtsync ]] || echo "$server-$rate $before $(rtsync_write_counters)" >>"$WRITES"
		"${server}_alive" || bench_say "fanout $server-$rate: $server died during the run (logs: $BENCH_OUT/logs/)"
	done
	local n
	for n in $SWEEP; do
		"${server}_alive" || "${server}_up" || return 1
		bench_gen "$server" "$RESULTS" "$server-n$n" --mode fanout --urls "$urls" --conns "$n" --rate "$SWEEP_RATE" \
			--duration "$DURATION" --size "$SIZE" --settle 2 --setup-timeout 240
	done
}

bench_servers fanout load

# bare_fraction KEY WHERE: the share of rt-bare's deliveries per server CPU-s
# that rtsync reaches in the runs rtsync-KEY and bare-KEY.
bare_fraction() {
	jq -rs --arg k "$1" --arg at "$2" '
	  (map(select(.label == "rtsync-" + $k)) | .[0].deliveries_per_server_cpu_s) as $e |
	  (map(select(.label == "bare-" + $k)) | .[0].deliveries_per_server_cpu_s) as $b |
	  if $e and $b and $b > 0 then
	    "rtsync reaches \($e * 1000 / $b | round / 10)% of the bare one-write-per-delivery C server\u0027s" +
	    " deliveries per server CPU-s at \($at) (\($e | round) vs \($b | round))"
	  else "rtsync vs bare at \($at): n/a (a run is missing)" end' "$RESULTS"
}

# ---- summary -------------------------------------------------------------------
{
	echo "fanout: $SUBS subscribers, ${SIZE}-byte ephemeral messages, $DURATION s per run;" \
		"servers on core $SERVER_CPU, generator on core $GEN_CPU"
	echo "server CPU = edges + nats-server (rtsync) or the peer's one process; RSS/HWM and writes (write/writev syscalls per delivery; io_uring sends are not among them) of the edges or the peer"
	echo "latency: publish to arrival in the subscriber's socket (kernel timestamp); p99_rd: to the generator's read"
	echo "others_s: CPU time other processes took on the servers' core during the run (should be ~0; from tick-sampled" \
		"/proc/stat, so approximate)"
	printf '%-12s %5s %9s %11s %8s %8s %8s %8s %7s %8s %8s %8s %8s %8s %7s %7s %8s\n' run subs deliv/s deliv/CPU-s \
		p50_ms p99_ms max_ms p99_rd lost srv_CPU edge_CPU nats_CPU RSS_MiB HWM_MiB writes gen_CPU others_s
	jq -r '
	  def sum(f): [.procs[] | select(.aux | not) | f] | add // 0;
	  def of(n; f): [.procs[] | select(.name == n) | f] | add // 0;
	  (if (.label | startswith("rtsync")) then "edge" else (.label | split("-")[0]) end) as $srv |
	  [.label, .ready, .deliveries_per_s, .deliveries_per_server_cpu_s, .lat_p50_us / 1000, .lat_p99_us / 1000,
	   .lat_max_us / 1000, .lat_read_p99_us / 1000, .lost, .server_cpu_s, of("edge"; .cpu_s), of("nats"; .cpu_s),
	   of($srv; .rss_kb) / 1024, of($srv; .hwm_kb) / 1024, (if .delivered > 0 then of($srv; .syscw) / .delivered else 0 end),
	   .generator_cpu_s, ([.server_core_other_s // 0, 0] | max)] | @tsv' "$RESULTS" |
		awk -F'\t' '{printf "%-12s %5d %9.0f %11.0f %8.2f %8.2f %8.2f %8.2f %7d %8.2f %8.2f %8.2f %8.1f %8.1f %7.3f %7.2f %8.2f\n",
			$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17}'
	for rate in $RATES; do
		jq -rs --arg r "$rate" '
		  (map(select(.label == "rtsync-" + $r)) | .[0]) as $e |
		  (map(select(.label == "node-" + $r)) | .[0]) as $n |
		  if $e and $n and $n.deliveries_per_server_cpu_s > 0 then
		    "rtsync/node deliveries per server CPU-s at \($r) msg/s: \($e.deliveries_per_server_cpu_s * 100 / $n.deliveries_per_server_cpu_s | round / 100)x (\($e.deliveries_per_server_cpu_s | round) vs \($n.deliveries_per_server_cpu_s | round))"
		  else "rtsync/node at \($r) msg/s: n/a (a run is missing)" end' "$RESULTS"
		bare_fraction "$rate" "$rate msg/s"
	done
	for n in $SWEEP; do bare_fraction "n$n" "$n subscribers x $SWEEP_RATE msg/s"; done
	while read -r label s0 c0 s1 c1; do
		jq -r --arg l "$label" --argjson sends $((s1 - s0)) --argjson calls $((c1 - c0)) '
		  select(.label == $l and .delivered > 0) |
		  ([.procs[] | select(.name == "edge") | .syscw] | add // 0) as $w |
		  "\($l): system calls that write per delivery \(($calls + $w) / .delivered * 10000 | round / 10000)" +
		  " (io_uring calls \($calls), each carrying \(if $calls > 0 then $sends / $calls | round else 0 end) socket" +
		  " sends; write syscalls \($w); counted over the whole run, setup and drain included)"' "$RESULTS"
	done <"$WRITES"
	jq -rs --argjson subs "$SUBS" '
	  def valid: . != null and .ready == $subs and .failed == 0 and .delivered > 0;
	  def verdict(ok): if ok then "PASS" else "FAIL" end;
	  (map(select(.label == "rtsync-50")) | .[0]) as $e50 | (map(select(.label == "node-50")) | .[0]) as $n50 |
	  (map(select(.label == "rtsync-100")) | .[0]) as $e100 | (map(select(.label == "bare-100")) | .[0]) as $b100 |
	  (if $e50 != null and $n50 != null then "target 1000x50: >= 1.5x node deliveries per CPU-s: " +
	     verdict(($e50 | valid) and ($n50 | valid) and $e50.lost == 0 and
	             $e50.deliveries_per_server_cpu_s >= 1.5 * $n50.deliveries_per_server_cpu_s)
	   else empty end),
	  (if $e100 != null then "target 1000x100: no loss and p99 < 5 ms: " +
	     verdict(($e100 | valid) and $e100.lost == 0 and $e100.dups == 0 and $e100.lat_p99_us < 5000) +
	     " (\($e100.ready) subscribers, lost \($e100.lost) of \($e100.expected), p99 \($e100.lat_p99_us / 10 | round / 100) ms)"
	   else empty end),
	  (if $b100 != null then "the floor: rt-bare at \($b100.ready)x100: p99 \($b100.lat_p99_us / 10 | round / 100) ms," +
	     " lost \($b100.lost) of \($b100.expected) (its \($b100.ready) write()s of one publish take" +
	     " \(if $b100.deliveries_per_server_cpu_s > 0 then $b100.ready * 1e5 / $b100.deliveries_per_server_cpu_s | round / 100
	        else "?" end) ms of CPU)"
	   else empty end),
	  (if $e100 != null and $e100.delivered > 0 then
	     ([$e100.procs[] | select(.name == "edge") | .cpu_s] | add / $e100.delivered) as $per |
	     "rtsync at \($e100.ready)x100: the edges take \($per * 1e8 | round / 100) us of CPU per delivery, so the" +
	     " \($e100.ready) sends of one publish alone take \($per * 1e5 * $e100.ready | round / 100) ms of the core"
	   else empty end)' "$RESULTS"
} | tee "$SUMMARY"
