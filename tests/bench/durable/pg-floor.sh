#!/usr/bin/env bash
# tests/bench/durable/pg-floor.sh: what PostgreSQL alone costs per durable
# message on the servers' core, measured in the bench's own cluster (pinned to
# that core) with pgbench on the generator's core: 4 clients, each committing
# 100 rows per transaction (fsync on, as the stack runs it), for DURATION s:
#
#   minimal  INSERT into a table of (channel, offset, data) with only its
#            primary key: the least any durable history can write;
#   rtsync   chat-history's statements in one transaction on copies of its
#            tables (indexes included): claim the offsets, look the ids up,
#            insert the rows.
#
# PostgreSQL's CPU is read from /proc: the postmaster's reaped children plus
# every live child.  Prints one JSON line per variant.
#
#   pg-floor.sh PG_PORT POSTMASTER_PID DURATION GEN_CPU
set -euo pipefail
port=$1 postmaster=$2 duration=$3 gen_cpu=$4
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
db="postgresql://rtsync@127.0.0.1:$port/rtsync"
tck=$(getconf CLK_TCK)
work=$(mktemp -d)
trap 'rm -rf "$work"; "$bin/psql" -q "$db" -c "DROP TABLE IF EXISTS floor_min, floor_messages, floor_channels" >/dev/null 2>&1 || true' EXIT

"$bin/psql" -q -v ON_ERROR_STOP=1 "$db" >/dev/null <<-'EOF'
	DROP TABLE IF EXISTS floor_min, floor_messages, floor_channels;
	CREATE TABLE floor_min (channel text, msg_offset bigint, data bytea, PRIMARY KEY (channel, msg_offset));
	CREATE TABLE floor_messages (LIKE hist_messages INCLUDING ALL);
	CREATE TABLE floor_channels (LIKE hist_channels INCLUDING ALL);
EOF

# 100 rows a transaction, 100-byte data; client c writes channels fc-c-1..100.
# Offsets and ids grow with the clock, as a channel's offsets and a client's
# "<connection>-<counter>" ids do: each row lands at the end of its key range.
rows="FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint AS b) t, generate_series(1, 100) g"
chan="'fc-' || :client_id || '-' || g"
data="decode(repeat('ab', 100), 'hex')"
cat >"$work/minimal.sql" <<-EOF
	INSERT INTO floor_min SELECT $chan, t.b * 100 + g, $data $rows;
EOF
cat >"$work/rtsync.sql" <<-EOF
	BEGIN;
	INSERT INTO floor_channels AS h (channel, last_offset) SELECT $chan, 1 $rows ORDER BY ($chan) COLLATE "C" ON CONFLICT (channel) DO UPDATE SET last_offset = h.last_offset + EXCLUDED.last_offset RETURNING channel, last_offset;
	SELECT k.channel, m.msg_offset FROM (SELECT $chan AS channel, 'user-' || :client_id AS from_user, (:client_id || '-' || (t.b * 100 + g)) AS msg_id $rows) k CROSS JOIN LATERAL (SELECT msg_offset FROM floor_messages m WHERE m.channel = k.channel AND m.from_user = k.from_user AND m.msg_id = k.msg_id AND m.msg_id <> '' LIMIT 1) m;
	INSERT INTO floor_messages (channel, msg_offset, event, data, from_user, msg_id, ts_ms, from_conn, origin_edge) SELECT $chan, t.b * 100 + g, 'message', $data, 'user-' || :client_id, (:client_id || '-' || (t.b * 100 + g)), 1765000000000, 'edge-1-0-' || :client_id, 'edge-1' $rows;
	COMMIT;
EOF

pg_ticks() { # the cluster's CPU so far: reaped children + live ones
	local t p
	t=$(awk '{print $16 + $17}' "/proc/$postmaster/stat")
	for p in $(pgrep -P "$postmaster"); do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

for variant in minimal rtsync; do
	before=$(pg_ticks)
	out=$(taskset -c "$gen_cpu" "$bin/pgbench" -n -h 127.0.0.1 -p "$port" -U rtsync -c 4 -T "$duration" \
		-f "$work/$variant.sql" rtsync 2>&1) || { echo "pg-floor: pgbench $variant failed: $out" >&2; exit 1; }
	sleep 1 # the postmaster reaps pgbench's backends, and their CPU joins its own
	after=$(pg_ticks)
	tx=$(awk '/actually processed/ {print $NF}' <<<"$out")
	jq -nc --arg v "$variant" --argjson tx "$tx" --argjson ticks $((after - before)) --argjson tck "$tck" \
		--argjson d "$duration" '{variant: $v, rows: ($tx * 100), rows_per_s: ($tx * 100 / $d),
		  pg_cpu_s: ($ticks / $tck), pg_us_per_row: (if $tx > 0 then $ticks / $tck * 1e6 / ($tx * 100) else null end)}'
done
