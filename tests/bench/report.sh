#!/usr/bin/env bash
# tests/bench/report.sh RESULTS_DIR: turns one `make bench` run
# (bench/results/<time>/, a directory per scenario holding rt-loadgen JSON
# lines) into RESULTS_DIR/report.md -- one table per scenario, every server
# side by side, with the ratio of rtsync to each peer -- and PNG plots
# (gnuplot) of how throughput per server CPU-second and p99 latency grow with
# the scenario's size.  Scenarios with their own format (idle, history,
# yjs-e2e) are quoted from their summaries.  Called by scripts/bench.sh.
set -euo pipefail
OUT=${1:?usage: report.sh RESULTS_DIR}
REPORT=$OUT/report.md
PLOTS=$OUT/plots
mkdir -p "$PLOTS"

# Per scenario: which JSON lines count, the size on the x axis, its name, and
# the series a line belongs to (server, plus the rate where several are run).
declare -A SELECT=(
	[fanout]='select(.label | test("-n[0-9]+$"))' [many]='.' [sse]='.' [durable]='.' [churn]='.')
declare -A XEXPR=([fanout]='.ready' [many]='.ready' [sse]='.ready' [durable]='.ready' [churn]='.rate')
declare -A XNAME=([fanout]='subscribers (one channel)' [many]='connections (channels of 5)' [sse]='SSE readers'
	[durable]='concurrent publishers' [churn]='joins asked per second')
# shellcheck disable=SC2016 # jq expressions, not shell ones
declare -A SERIES=([fanout]='$srv' [many]='$srv' [sse]='$srv + " @" + (.rate | tostring) + "/s"' [durable]='$srv'
	[churn]='$srv')
declare -A EVENTS=([fanout]='deliveries' [many]='deliveries' [sse]='deliveries' [durable]='acks' [churn]='joins seen')

# rows SCENARIO: one TSV row per run: series x label events/s events/CPU-s p50 p99 max cpu peakRSS lost errors
rows() {
	local s=$1
	jq -r "${SELECT[$s]} | (.label | split(\"-\")[0]) as \$srv |
	  [${SERIES[$s]}, ${XEXPR[$s]}, .label, (.deliveries_per_s // .events_per_s // 0),
	   (.deliveries_per_server_cpu_s // .events_per_server_cpu_s // 0), .lat_p50_us / 1000, .lat_p99_us / 1000,
	   .lat_max_us / 1000, .server_cpu_s, ([.procs[] | select(.aux | not) | .hwm_kb] | add // 0) / 1024,
	   (.lost // 0), ((.errors // 0) + (.failed // 0))] | @tsv" "$OUT/$s/$s.jsonl"
}

table() { # SCENARIO
	local s=$1
	echo "| run | ${XNAME[$s]} | ${EVENTS[$s]}/s | per server CPU-s | p50 ms | p99 ms | max ms | server CPU s | peak RSS MiB | lost | errors | rtsync ÷ this (per CPU-s) |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	rows "$s" | awk -F'\t' '
	  { series[NR] = $1; x[NR] = $2; line[NR] = $0; eff[NR] = $5
	    if ($1 ~ /^rtsync/) { k = $1; sub(/^rtsync/, "", k); ref[k SUBSEP $2] = $5 } }
	  END { for (i = 1; i <= NR; i++) {
	      split(line[i], f, "\t"); k = series[i]; sub(/^[^ ]+/, "", k)
	      r = (series[i] !~ /^rtsync/ && (k SUBSEP x[i]) in ref && eff[i] > 0) ? sprintf("%.2fx", ref[k SUBSEP x[i]] / eff[i]) : ""
	      printf "| %s | %d | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f | %.1f | %d | %d | %s |\n",
	        f[3], f[2], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12], r } }'
}

# plot SCENARIO COLUMN YLABEL NAME: one line per series, x = size (log scale when it spans 10x)
plot() {
	local s=$1 col=$2 ylabel=$3 name=$4 data=$PLOTS/$1.dat series cmd="" first=1
	command -v gnuplot >/dev/null || return 0
	rows "$s" | sort -t$'\t' -k1,1 -k2,2n >"$data"
	[[ -s $data ]] || return 0
	while IFS= read -r series; do
		grep -F -- "$series"$'\t' "$data" | awk -F'\t' -v c="$col" '{print $2, $c}' >"$PLOTS/$s-$name-${series//[^A-Za-z0-9]/_}.dat"
		((first)) || cmd+=", "
		first=0
		cmd+="'$PLOTS/$s-$name-${series//[^A-Za-z0-9]/_}.dat' using 1:2 with linespoints lw 2 title '$series'"
	done < <(cut -f1 "$data" | sort -u)
	local logx=""
	awk 'NR == 1 {min = $2} {if ($2 < min) min = $2; if ($2 > max) max = $2} END {exit !(min > 0 && max >= 10 * min)}' \
		FS='\t' "$data" && logx="set logscale x"
	gnuplot <<-EOF 2>/dev/null || true
		set terminal pngcairo size 800,480 noenhanced
		set output '$PLOTS/$s-$name.png'
		set title '$s: $ylabel'
		set xlabel '${XNAME[$s]}'
		set ylabel '$ylabel'
		set key outside right
		set grid
		$logx
		plot $cmd
	EOF
	echo "![$s $name](plots/$s-$name.png)"
}

{
	echo "# rtsync benchmark report"
	echo
	echo '```'
	cat "$OUT/machine.txt" 2>/dev/null || true
	echo '```'
	echo
	echo "Servers on core ${BENCH_SERVER_CPU:-0}, the generator (rt-loadgen) on core ${BENCH_GEN_CPU:-1}."
	echo "Server CPU = rtsync's edges + nats-server (back-end services and PostgreSQL are not counted; they are in"
	echo "the JSON lines as aux), or the peer's one process. Peak RSS = VmHWM of those processes (over their life,"
	echo "which spans the runs of a scenario). Latency: publish (or POST, or subscribe) to arrival in the"
	echo "generator's socket. A peer process holds at most ~19,000 connections: the fd cap is 20,000 per process."
	echo "bare = rt-bare (tests/bench/bare/), a bare epoll C server with one write() per delivery and nothing else:"
	echo "the floor of this core; its \"rtsync ÷ this\" is the fraction of the floor's efficiency rtsync reaches."
	echo "Other work on the machine during the run is flagged per run (server_core_other_s in the JSON lines)."
	for s in fanout many sse durable churn; do
		[[ -s $OUT/$s/$s.jsonl ]] || continue
		echo
		echo "## $s"
		echo
		if [[ -s $OUT/$s/$s.txt ]]; then head -n 2 "$OUT/$s/$s.txt" | sed 's/^/> /'; fi
		echo
		table "$s"
		echo
		plot "$s" 5 "${EVENTS[$s]} per server CPU-second" efficiency
		plot "$s" 7 "p99 latency (ms)" p99
	done
	for s in fanout idle history yjs-e2e soak; do
		f=$OUT/$s/summary.txt
		[[ -s $f ]] || continue
		echo
		echo "## $s (summary)"
		echo
		echo '```'
		cat "$f"
		echo '```'
	done
	echo
	targets=$(cat "$OUT"/*/summary.txt 2>/dev/null | grep -E '^(target|the floor|rtsync reaches)' || true)
	if [[ -n $targets ]]; then
		echo "## Targets"
		echo
		echo '```'
		echo "$targets"
		echo '```'
		echo
	fi
	# what bounds the missed targets: measured once, kept with the scenarios
	sed 's/^# /## /' "$(dirname "$0")/bounds.md"
} >"$REPORT"
echo "bench: report in $REPORT"
