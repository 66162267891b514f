#!/usr/bin/env bash
# tests/bench/churn/run.sh: presence churn.  An observer on edge 2 subscribes
# to one channel with presence; CHURN_RATE times a second a connection opens
# on edge 1, subscribes to the channel, is held CHURN_HOLD seconds and
# closes: subscribe-to-`join` latency as the observer sees it (p50/p99/max),
# joins/s, server CPU.  Runs at each rate of CHURN_RATES (the number of
# members present at once is about rate x hold).  rtsync only: the peers
# have no presence.
#
# Environment: CHURN_RATES ("50 200 500"), CHURN_HOLD (2), CHURN_DURATION
# (10), and those of ../lib.sh.  Results: $BENCH_OUT/churn.jsonl, churn.txt.
set -euo pipefail
BENCH_STACK=${BENCH_STACK:-stack}
# shellcheck source=tests/bench/lib.sh
source "$(dirname "$0")/../lib.sh"

RATES=${CHURN_RATES:-50 200 500}
HOLD=${CHURN_HOLD:-2}
DURATION=${CHURN_DURATION:-10}
RESULTS=$BENCH_OUT/churn.jsonl
SUMMARY=$BENCH_OUT/churn.txt

bench_raise_fds
trap bench_cleanup EXIT
: >"$RESULTS"

if rtsync_built && rtsync_up; then
	a=${EDGE_URLS%%,*} b=${EDGE_URLS#*,}
	# warm-up: the first subscribers may find presence not ready yet
	"${GEN[@]}" --mode churn --urls "$a" --pub-url "$b" --conns 50 --channel churn-warm --rate 20 --hold 0.5 \
		--duration 1 >/dev/null 2>&1 || true
	for rate in $RATES; do
		# slots: twice the members expected at once, so that a slow close never starves the opener
		slots=$(awk -v r="$rate" -v h="$HOLD" 'BEGIN { s = int(2 * r * h + 50); print (s > 15000 ? 15000 : s) }')
		bench_gen rtsync "$RESULTS" "rtsync-$rate/s" --mode churn --urls "$a" --pub-url "$b" --conns "$slots" \
			--channel "churn$rate" --rate "$rate" --hold "$HOLD" --duration "$DURATION" --drain 5
	done
	rtsync_down
else
	bench_say "churn: rtsync did not start; skipped"
fi

{
	echo "churn: connections open on edge 1, subscribe to one channel, stay $HOLD s, close; an observer on edge 2" \
		"(presence: true) measures subscribe-to-join latency; $DURATION s per rate; events/s = joins seen/s"
	echo "server CPU/RSS = edges + nats; presence and chat-history are in the JSON as aux"
	bench_table "$RESULTS"
	jq -r '"\(.label): \(.churns) churned, \(.joins) joins seen, \(.leaves) leaves, \(.churn_busy) skipped (no free slot), \(.failed) failed; presence CPU \([.procs[] | select(.name | startswith("presence")) | .cpu_s] | add // 0) s"' "$RESULTS"
} | tee "$SUMMARY"
