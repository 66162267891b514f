# shellcheck shell=bash
# tests/bench/lib.sh: what the benchmark scenarios share (sourced by
# tests/bench/*/run.sh): core pinning, starting and stopping the servers
# under test (the rtsync edges with their nats-server, the Node `ws`
# reference server, the other peers, or rt-bare, the one-write-per-delivery C
# floor), reading their pids and memory from /proc.
#
# Environment (defaults):
#   BENCH_SERVER_CPU (0)  core of the servers under test (taskset -c)
#   BENCH_GEN_CPU (1)     core of the load generator
#   BENCH_STACK (direct)  how rtsync is started: direct = nats-server and the
#                         two edges only (ephemeral fan-out needs nothing else);
#                         stack = scripts/stack.sh up (PostgreSQL and the
#                         back-end services too, which are sampled as aux)
#   BENCH_RUN_DIR (.run/bench-PID, removed at the end), BENCH_NATS_PORT (14222), BENCH_PG_PORT (15433),
#   BENCH_EDGE_PORT (18080, and +1), BENCH_NODE_PORT (18090), BENCH_BARE_PORT (18094):
#   the first free ports from these on
#   BENCH_QUIET_WAIT (120) seconds to wait, before each measured run, for the
#                         machine to be quiet (both cores under 10 % busy for 3 s);
#                         0 = do not wait.  Other work on the cores skews the figures.
#   BENCH_OUT             directory for the scenario's results and the servers'
#                         logs (set by scripts/bench.sh)

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOADGEN=${BENCH_LOADGEN:-$BENCH_ROOT/build/bin/rt-loadgen}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
GEN_CPU=${BENCH_GEN_CPU:-1}
BENCH_STACK=${BENCH_STACK:-direct}
# A run directory of this process's own: several engineers' benchmarks share the
# checkout, and a shared one let one's `stack.sh down` stop another's stack.
BENCH_RUN_DIR=${BENCH_RUN_DIR:-$BENCH_ROOT/.run/bench-$$}
BENCH_OUT=${BENCH_OUT:-$BENCH_ROOT/bench/results/manual}
NODE_PID=

# Settings of the edges for a benchmark: one thread each, no rate limit on
# the publisher, room for 10,000+ connections.
RTSYNC_ENV=(RT_EDGE_THREADS=1 RT_RATE_LIMIT=100000 RT_RATE_WINDOW=1 RT_MAX_CONNS=30000
	RT_SEND_QUEUE=4194304 "RT_LOG_LEVEL=${RT_LOG_LEVEL:-warn}")

mkdir -p "$BENCH_OUT/logs"

bench_say() { printf '%s\n' "$*" >&2; }

# The fd cap of this machine is 20,000 per process; servers and generators
# inherit it from here.
bench_raise_fds() { ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # PORT PID
	local i
	for ((i = 0; i < 200; i++)); do
		port_open "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# Busy and total ticks of all cores, from the first line of /proc/stat.
cpu_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit}' /proc/stat; }

# Waits up to BENCH_QUIET_WAIT seconds until the machine has been quiet for 3 s.
bench_wait_quiet() {
	local max=${BENCH_QUIET_WAIT:-120} quiet=0 b0 t0 b1 t1 deadline
	((max > 0)) || return 0
	deadline=$((SECONDS + max))
	read -r b0 t0 < <(cpu_ticks)
	while ((quiet < 3)); do
		if ((SECONDS >= deadline)); then
			bench_say "bench: the machine is still busy after ${max}s (other processes); measuring anyway"
			return 0
		fi
		sleep 1
		read -r b1 t1 < <(cpu_ticks)
		if (((b1 - b0) * 10 < (t1 - t0))); then quiet=$((quiet + 1)); else quiet=0; fi
		b0=$b1 t0=$t1
	done
}

# The first port from $1 on such that it and the $2 - 1 after it are free:
# other engineers' stacks share this machine.
free_ports() {
	local p i
	for ((p = $1; p < $1 + 500; p++)); do
		for ((i = 0; i < $2; i++)); do ! port_open $((p + i)) || continue 2; done
		echo "$p"
		return 0
	done
	return 1
}

B_NATS_PORT=$(free_ports "${BENCH_NATS_PORT:-14222}" 1)
B_PG_PORT=$(free_ports "${BENCH_PG_PORT:-15433}" 1)
# BENCH_EDGES (2): rtsync edges; 50,000 idle connections need 5 (the fd cap)
B_EDGES=${BENCH_EDGES:-2}
B_EDGE_PORT=$(free_ports "${BENCH_EDGE_PORT:-18080}" "$B_EDGES")
B_NODE_PORT=$(free_ports "${BENCH_NODE_PORT:-18090}" 1)
B_FASTAPI_PORT=$(free_ports "${BENCH_FASTAPI_PORT:-18092}" 1)
B_SOCKETIO_PORT=$(free_ports "${BENCH_SOCKETIO_PORT:-18093}" 1)
# shellcheck disable=SC2034 # used by the scenario scripts
EDGE_URLS=$(seq -f "ws://127.0.0.1:%g/ws" "$B_EDGE_PORT" $((B_EDGE_PORT + B_EDGES - 1)) | paste -sd,)
# shellcheck disable=SC2034
NODE_URL="ws://127.0.0.1:$B_NODE_PORT/ws"
# shellcheck disable=SC2034
FASTAPI_URL="ws://127.0.0.1:$B_FASTAPI_PORT/ws"
FASTAPI_PID=
# shellcheck disable=SC2034
SOCKETIO_URL="ws://127.0.0.1:$B_SOCKETIO_PORT/socket.io/?EIO=4&transport=websocket"
SOCKETIO_PID=
B_BARE_PORT=$(free_ports "${BENCH_BARE_PORT:-18094}" 1)
# shellcheck disable=SC2034
BARE_URL="ws://127.0.0.1:$B_BARE_PORT/ws"
BARE_PID=

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# The load generator, pinned to the generator's core: "${GEN[@]}" ARGS...
# (an array, not a function, so that `... &` gives the generator's own pid).
# shellcheck disable=SC2034
GEN=(taskset -c "$GEN_CPU" "$LOADGEN")

# ---- rtsync ------------------------------------------------------------------

rtsync_built() { [[ -x $BENCH_ROOT/build/bin/edge ]]; }

# Starts one process in the background, pinned to the server core, and records its pid.
rtsync_start() { # NAME CMD...
	local name=$1
	shift
	taskset -c "$SERVER_CPU" setsid "$@" </dev/null >>"$BENCH_OUT/logs/$name.log" 2>&1 &
	echo $! >"$BENCH_RUN_DIR/pids/$name.pid"
}

rtsync_up_direct() {
	mkdir -p "$BENCH_RUN_DIR/pids" "$BENCH_OUT/logs"
	rm -f "$BENCH_RUN_DIR"/pids/*.pid
	local p
	for p in "$B_NATS_PORT" $(seq "$B_EDGE_PORT" $((B_EDGE_PORT + B_EDGES - 1))); do
		! port_open "$p" || { bench_say "port $p is taken (set BENCH_NATS_PORT / BENCH_EDGE_PORT)"; return 1; }
	done
	rtsync_start nats nats-server -a 127.0.0.1 -p "$B_NATS_PORT"
	wait_port "$B_NATS_PORT" "$(cat "$BENCH_RUN_DIR/pids/nats.pid")" || return 1
	local i port
	for ((i = 1; i <= B_EDGES; i++)); do
		port=$((B_EDGE_PORT + i - 1))
		rtsync_start "edge-$i" env "${RTSYNC_ENV[@]}" RT_NATS_URL="nats://127.0.0.1:$B_NATS_PORT" \
			RT_EDGE_LISTEN="127.0.0.1:$port" RT_EDGE_ID="edge-$i" "$BENCH_ROOT/build/bin/edge"
	done
	for ((i = 1; i <= B_EDGES; i++)); do
		port=$((B_EDGE_PORT + i - 1))
		if ! wait_port "$port" "$(cat "$BENCH_RUN_DIR/pids/edge-$i.pid")"; then
			bench_say "edge-$i did not listen on $port; the end of its log:"
			tail -n 15 "$BENCH_OUT/logs/edge-$i.log" >&2
			return 1
		fi
	done
	rtsync_wait_ready
}

rtsync_wait_ready() {
	local i port deadline=$((SECONDS + 30))
	for ((i = 1; i <= B_EDGES; i++)); do
		port=$((B_EDGE_PORT + i - 1))
		until curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$port/readyz"; do
			((SECONDS < deadline)) || { bench_say "edge-$i not ready on $port"; return 1; }
			sleep 0.2
		done
	done
}

rtsync_stack_env() {
	echo RUN_DIR="$BENCH_RUN_DIR" NATS_PORT="$B_NATS_PORT" NATS_MON_PORT=0 PG_PORT="$B_PG_PORT" \
		EDGE_PORT="$B_EDGE_PORT" EDGES="$B_EDGES"
}

# Starts nats-server and two edges (and with BENCH_STACK=stack the rest),
# all pinned to the server core.  Logs in $BENCH_OUT/logs/ (stack: $BENCH_RUN_DIR/logs/).
rtsync_up() {
	rtsync_down
	if [[ $BENCH_STACK == stack ]]; then
		# shellcheck disable=SC2046
		env $(rtsync_stack_env) "${RTSYNC_ENV[@]}" taskset -c "$SERVER_CPU" "$BENCH_ROOT/scripts/stack.sh" up >/dev/null
	else
		rtsync_up_direct
	fi
}

rtsync_down() {
	if [[ $BENCH_STACK == stack ]]; then
		# shellcheck disable=SC2046
		env $(rtsync_stack_env) "$BENCH_ROOT/scripts/stack.sh" down >/dev/null 2>&1 || true
		return
	fi
	local f pid
	for f in "$BENCH_RUN_DIR"/pids/edge-*.pid "$BENCH_RUN_DIR"/pids/nats.pid; do
		[[ -e $f ]] || continue
		pid=$(cat "$f")
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		rm -f "$f"
	done
}

rtsync_pid() { cat "$BENCH_RUN_DIR/pids/$1.pid"; }

# Whether nats-server and both edges still run (an edge may crash under load).
rtsync_alive() {
	local n
	for n in nats $(seq -f 'edge-%g' 1 "$B_EDGES"); do kill -0 "$(rtsync_pid "$n" 2>/dev/null)" 2>/dev/null || return 1; done
}

# NAME:PID list of the edges and nats-server, for rt-loadgen --pids.
rtsync_pids() {
	local i out=
	for ((i = 1; i <= B_EDGES; i++)); do out+="edge:$(rtsync_pid "edge-$i"),"; done
	echo "${out}nats:$(rtsync_pid nats)"
}

# NAME:PID list of the other processes scripts/stack.sh started (may be empty).
rtsync_aux_pids() {
	local f n out=()
	for f in "$BENCH_RUN_DIR"/pids/*.pid; do
		[[ -e $f ]] || continue
		n=$(basename "$f" .pid)
		case $n in edge-* | nats) ;; *) out+=("$n:$(cat "$f")") ;; esac
	done
	(IFS=,; echo "${out[*]}")
}

rtsync_edges_rss_kb() {
	local i sum=0
	for ((i = 1; i <= B_EDGES; i++)); do sum=$((sum + $(rss_kb "$(rtsync_pid "edge-$i")"))); done
	echo "$sum"
}

# ---- one-process peers: Node ws, FastAPI, Socket.IO, rt-bare --------------------

# peer_start VAR PORT LOG CMD...: starts a peer server of one process, pinned to
# the server core, with PORT in its environment, its output appended to
# $BENCH_OUT/logs/LOG; its pid goes into the variable VAR (NODE_PID, ...).
peer_start() {
	local var=$1 port=$2 log=$3
	shift 3
	! port_open "$port" || { bench_say "port $port is taken (set BENCH_${var%_PID}_PORT)"; return 1; }
	taskset -c "$SERVER_CPU" env PORT="$port" "$@" >>"$BENCH_OUT/logs/$log" 2>&1 &
	printf -v "$var" '%s' "$!"
	wait_port "$port" "$!"
}

# peer_stop VAR: stops the peer whose pid is in the variable VAR and empties it.
peer_stop() {
	local pid=${!1}
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	printf -v "$1" '%s' ''
}

peer_alive() { [[ -n ${!1} ]] && kill -0 "${!1}" 2>/dev/null; }

# ---- Node ws reference -------------------------------------------------------

node_up() {
	node_down
	peer_start NODE_PID "$B_NODE_PORT" node-ws.log node "$BENCH_ROOT/tests/bench/node-ws/server.mjs"
}

node_pids() { echo "node:$NODE_PID"; }
node_aux_pids() { :; }
node_alive() { peer_alive NODE_PID; }
node_down() { peer_stop NODE_PID; }

# ---- FastAPI + uvicorn (tests/bench/peers/fastapi_server.py) ------------------

fastapi_up() {
	fastapi_down
	/usr/bin/python3 -c 'import fastapi, uvicorn' 2>/dev/null || { bench_say "python3-fastapi / python3-uvicorn are missing (scripts/deps.sh)"; return 1; }
	peer_start FASTAPI_PID "$B_FASTAPI_PORT" fastapi.log /usr/bin/python3 "$BENCH_ROOT/tests/bench/peers/fastapi_server.py"
}

fastapi_pids() { echo "fastapi:$FASTAPI_PID"; }
fastapi_aux_pids() { :; }
fastapi_alive() { peer_alive FASTAPI_PID; }
fastapi_down() { peer_stop FASTAPI_PID; }

# ---- Socket.IO 4 (tests/bench/peers/socketio-server.mjs) ----------------------

socketio_up() {
	socketio_down
	[[ -d $BENCH_ROOT/tests/bench/peers/node_modules/socket.io ]] || (cd "$BENCH_ROOT/tests/bench/peers" && npm ci --no-audit --no-fund >/dev/null)
	peer_start SOCKETIO_PID "$B_SOCKETIO_PORT" socketio.log node "$BENCH_ROOT/tests/bench/peers/socketio-server.mjs"
}

socketio_pids() { echo "socketio:$SOCKETIO_PID"; }
socketio_aux_pids() { :; }
socketio_alive() { peer_alive SOCKETIO_PID; }
socketio_down() { peer_stop SOCKETIO_PID; }

# ---- rt-bare: one write() per delivery, the floor (tests/bench/bare/bare.c) -----

bare_up() {
	bare_down
	[[ -x $BENCH_ROOT/build/bin/rt-bare ]] || make -s -C "$BENCH_ROOT" build/bin/rt-bare >&2 || return 1
	peer_start BARE_PID "$B_BARE_PORT" bare.log "$BENCH_ROOT/build/bin/rt-bare"
}

bare_pids() { echo "bare:$BARE_PID"; }
bare_aux_pids() { :; }
bare_alive() { peer_alive BARE_PID; }
bare_down() { peer_stop BARE_PID; }

# bench_servers SCENARIO LOAD: for each server of $SERVERS (rtsync, node,
# socketio, fastapi, bare), starts it, calls LOAD SERVER URLS and stops it; a
# server that is not built or does not start is reported and skipped.
bench_servers() {
	local scenario=$1 load=$2 s url
	for s in $SERVERS; do
		case $s in
		rtsync) url=$EDGE_URLS ;;
		node) url=$NODE_URL ;;
		socketio) url=$SOCKETIO_URL ;;
		fastapi) url=$FASTAPI_URL ;;
		bare) url=$BARE_URL ;;
		*) bench_say "$scenario: unknown server $s"; continue ;;
		esac
		if [[ $s == rtsync ]] && ! rtsync_built; then
			bench_say "$scenario: build/bin/edge is not built; rtsync skipped"
			continue
		fi
		if ! "${s}_up"; then
			bench_say "$scenario: $s did not start (logs: $BENCH_OUT/logs/); skipped"
			"${s}_down"
			continue
		fi
		"$load" "$s" "$url"
		"${s}_down"
	done
}

# bench_gen SERVER RESULTS LABEL GEN-ARGS...: one measured generator run
# against SERVER (rtsync, node, fastapi, ...: its _pids and _aux_pids
# functions name what to sample), its JSON line appended to RESULTS.
bench_gen() {
	local server=$1 results=$2 label=$3 aux
	shift 3
	aux=$("${server}_aux_pids")
	bench_wait_quiet
	bench_say "== $label: rt-loadgen $*"
	"${GEN[@]}" "$@" --pids "$("${server}_pids")" ${aux:+--aux-pids "$aux"} --server-core "$SERVER_CPU" \
		--label "$label" >>"$results" || bench_say "$label: the generator reported a failure"
	"${server}_alive" || bench_say "$label: $server died during the run (logs: $BENCH_OUT/logs/)"
}

# rtsync_write_counters: "SENDS CALLS" summed over the edges' /metrics: the
# writes to client sockets, and the io_uring system calls that carried them in
# batches (a write syscall of its own is in /proc's syscw instead).
rtsync_write_counters() {
	local i m s=0 c=0
	for ((i = 0; i < B_EDGES; i++)); do
		m=$(curl -sf "http://127.0.0.1:$((B_EDGE_PORT + i))/metrics") || continue
		s=$((s + $(awk '/^rtsync_edge_socket_writes_total/ {print $2}' <<<"$m")))
		c=$((c + $(awk '/^rtsync_edge_socket_write_batches_total/ {print $2}' <<<"$m")))
	done
	echo "$s $c"
}

bench_cleanup() {
	bare_down
	socketio_down
	fastapi_down
	node_down
	if rtsync_built; then rtsync_down; fi
	[[ $BENCH_RUN_DIR != "$BENCH_ROOT/.run/bench-$$" ]] || rm -rf "$BENCH_RUN_DIR"
}

# bench_table RESULTS: the common table of rt-loadgen JSON lines: the rate of
# the scenario's events (deliveries, acks or joins per second), latency,
# server CPU seconds and RSS (of the processes summed into the server totals).
bench_table() {
	printf '%-22s %6s %10s %9s %9s %9s %8s %8s %7s %7s\n' run conns events/s p50_ms p99_ms max_ms srv_CPU RSS_MiB lost errors
	jq -r '[.label, .ready, (.deliveries_per_s // .events_per_s // 0), .lat_p50_us / 1000, .lat_p99_us / 1000,
	        .lat_max_us / 1000, .server_cpu_s, .server_rss_kb / 1024, (.lost // 0), (.errors // 0)] | @tsv' "$1" |
		awk -F'\t' '{printf "%-22s %6d %10.0f %9.2f %9.2f %9.2f %8.2f %8.1f %7d %7d\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10}'
}
