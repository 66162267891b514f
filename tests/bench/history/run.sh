#!/usr/bin/env bash
# tests/bench/history/run.sh: the chat-history benchmark, through NATS
# directly (no edge).  Starts its own nats-server, PostgreSQL (fsync on, the
# defaults of `scripts/stack.sh pg-init`) and one chat-history, then drives it
# with build/bin/hist-probe:
#
#   c1, c10, c100   closed loop: 1, 10, 100 publishers each waiting for its ack
#                   before the next publish -> acked msgs/s, p50/p99/max ack latency
#   rate10k         open loop at 10,000 msgs/s (target: p99 ack < 20 ms)
#   max             1,000 publishers in flight (target: >= 30,000 acked msgs/s)
#   query1, query10 history queries (newest 50 of a channel), 1 and 10 in flight
#
# Publishes go to HIST_BENCH_CHANNELS channels with HIST_BENCH_SIZE-byte JSON
# payloads and idempotency keys.  Nothing is pinned: PostgreSQL, nats-server,
# the service and the probe share the machine's cores, as in `make run`.
#
# Environment: HIST_BENCH_CHANNELS (100), HIST_BENCH_SIZE (100), HIST_BENCH_SCALE
# (1.0: multiplies every message count), BENCH_HIST_NATS_PORT (14291),
# BENCH_HIST_PG_PORT (15491), and BENCH_OUT / BENCH_QUIET_WAIT of ../lib.sh.
# Results: $BENCH_OUT/history.jsonl (one hist-probe summary per run, with its
# label), $BENCH_OUT/history.txt (the table).
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"

CHANNELS=${HIST_BENCH_CHANNELS:-100}
SIZE=${HIST_BENCH_SIZE:-100}
SCALE=${HIST_BENCH_SCALE:-1.0}
NATS_PORT=${BENCH_HIST_NATS_PORT:-14291}
PG_PORT=${BENCH_HIST_PG_PORT:-15491}
PROBE=$BENCH_ROOT/build/bin/hist-probe
HIST=$BENCH_ROOT/build/bin/chat-history
RESULTS=$BENCH_OUT/history.jsonl
SUMMARY=$BENCH_OUT/history.txt
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg() { if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

[[ -x $PROBE && -x $HIST ]] || make -s -C "$BENCH_ROOT" build/bin/hist-probe build/bin/chat-history

# a data dir the postgres user can reach, whatever the checkout's permissions
TMP=$(mktemp -d /var/tmp/rtsync-hist-bench.XXXXXX)
chmod 755 "$TMP"
NATS_PID= HIST_PID=
cleanup() {
	[[ -n $HIST_PID ]] && kill -TERM "$HIST_PID" 2>/dev/null && wait "$HIST_PID" 2>/dev/null
	[[ -n $NATS_PID ]] && kill -INT "$NATS_PID" 2>/dev/null && wait "$NATS_PID" 2>/dev/null
	[[ -e $TMP/pg/postmaster.pid ]] && as_pg "$PG_BIN/pg_ctl" -D "$TMP/pg" -m fast -w stop >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT

bench_say "history: PostgreSQL on $PG_PORT, nats-server on $NATS_PORT, logs in $BENCH_OUT/logs/"
"$BENCH_ROOT/scripts/stack.sh" pg-init "$TMP/pg" >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$TMP/pg" -o "-p $PG_PORT" -w -t 60 start >>"$BENCH_OUT/logs/hist-postgres.log" 2>&1
setsid nats-server -a 127.0.0.1 -p "$NATS_PORT" </dev/null >>"$BENCH_OUT/logs/hist-nats.log" 2>&1 &
NATS_PID=$!
wait_port "$NATS_PORT" "$NATS_PID"
export RT_NATS_URL=nats://127.0.0.1:$NATS_PORT
RT_DATABASE_URL=postgresql://rtsync@127.0.0.1:$PG_PORT/rtsync RT_LOG_LEVEL=warn \
	setsid "$HIST" </dev/null >>"$BENCH_OUT/logs/chat-history.log" 2>&1 &
HIST_PID=$!
# ready when a publish is acknowledged
for ((i = 0; i < 100; i++)); do
	"$PROBE" publish --channel warmup --n 1 --timeout 500 >/dev/null 2>&1 && break
	kill -0 "$HIST_PID" 2>/dev/null || { tail -n 20 "$BENCH_OUT/logs/chat-history.log" >&2; exit 1; }
	sleep 0.1
done

: >"$RESULTS"
n_of() { awk -v n="$1" -v s="$SCALE" 'BEGIN { printf "%d", n * s }'; }

# run LABEL hist-probe-ARGS...: one measured run, its summary line labelled
run() {
	local label=$1 line
	shift
	bench_wait_quiet
	bench_say "== history $label: hist-probe $*"
	line=$("$PROBE" "$@" | tail -n 1)
	jq -c --arg l "$label" '{label: $l} + .' <<<"$line" | tee -a "$RESULTS" >&2
}

common=(--channel bench --channels "$CHANNELS" --size "$SIZE" --ids --timeout 10000)
"$PROBE" publish "${common[@]}" --id-prefix w --n 20000 --concurrency 100 >/dev/null # warm-up
run c1 publish "${common[@]}" --id-prefix a --n "$(n_of 3000)" --concurrency 1
run c10 publish "${common[@]}" --id-prefix b --n "$(n_of 30000)" --concurrency 10
run c100 publish "${common[@]}" --id-prefix c --n "$(n_of 200000)" --concurrency 100
run rate10k publish "${common[@]}" --id-prefix d --n "$(n_of 100000)" --rate 10000 --concurrency 5000
run max publish "${common[@]}" --id-prefix e --n "$(n_of 300000)" --concurrency 1000
run query1 qbench --channel bench-0 --limit 50 --n "$(n_of 3000)" --concurrency 1
run query10 qbench --channel bench-0 --limit 50 --n "$(n_of 20000)" --concurrency 10

{
	echo "chat-history through NATS ($CHANNELS channels, $SIZE-byte messages, PostgreSQL fsync on)"
	printf '%-9s %10s %10s %10s %10s %8s\n' run 'acked/s' 'p50 ms' 'p99 ms' 'max ms' failed
	jq -r '[.label, .rate, (.p50_us / 1000), (.p99_us / 1000), (.max_us / 1000),
		(.unavailable + .failed + .timeout)] | @tsv' "$RESULTS" |
		awk -F'\t' '{ printf "%-9s %10d %10.2f %10.2f %10.2f %8d\n", $1, $2, $3, $4, $5, $6 }'
	max=$(jq -r 'select(.label == "max") | .rate' "$RESULTS")
	p99=$(jq -r 'select(.label == "rate10k") | .p99_us' "$RESULTS")
	echo "target >= 30000 acked/s: $(awk -v m="$max" 'BEGIN { print (m >= 30000 ? "met" : "MISSED") }') ($max/s)"
	echo "target p99 < 20 ms at 10,000/s: $(awk -v p="$p99" 'BEGIN { print (p < 20000 ? "met" : "MISSED") }') ($((p99 / 1000)) ms)"
} | tee "$SUMMARY"
