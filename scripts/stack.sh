#!/usr/bin/env bash
# The local rtsync stack on loopback: a private nats-server, a private
# PostgreSQL cluster, the back-end services found in build/bin and N edges.
#
#   scripts/stack.sh run          foreground; Ctrl-C stops everything
#   scripts/stack.sh up           detached; returns when every edge is ready
#   scripts/stack.sh down         stops what `up` or `run` started
#   scripts/stack.sh status       what is running
#   scripts/stack.sh pg-init DIR [PORT]  create a PostgreSQL data dir with role
#                                 and database rtsync (used by the test harness too)
#
# Environment (defaults): RUN_DIR (.run), NATS_PORT (4222), NATS_MON_PORT
# (NATS_PORT+4000, 0 = off), PG_PORT (5433), EDGE_PORT (8080), EDGES (2),
# REPLICAS (1), SERVICES ("presence chat-history crdt-merge"), BIN_DIR
# (build/bin), PG_BIN (newest /usr/lib/postgresql/*/bin). Everything else in
# the environment (RT_JWT_SECRET, RT_LOG_LEVEL, ...) reaches every process.
set -euo pipefail

CALLER_PWD=$PWD
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

RUN_DIR=${RUN_DIR:-.run}
NATS_PORT=${NATS_PORT:-4222}
NATS_MON_PORT=${NATS_MON_PORT:-$((NATS_PORT + 4000))}
PG_PORT=${PG_PORT:-5433}
EDGE_PORT=${EDGE_PORT:-8080}
EDGES=${EDGES:-2}
REPLICAS=${REPLICAS:-1}
SERVICES=${SERVICES:-presence chat-history crdt-merge}
BIN_DIR=${BIN_DIR:-build/bin}
READY_TIMEOUT=${READY_TIMEOUT:-60}
STOP_TIMEOUT=${STOP_TIMEOUT:-15}
PG_USER=postgres

# RUN_DIR and BIN_DIR, relative to the repository, as absolute paths
setup_dirs() {
	RUN_DIR=$(mkdir -p "$RUN_DIR" && cd "$RUN_DIR" && pwd)
	BIN_DIR=$(cd "$BIN_DIR" 2>/dev/null && pwd || echo "$ROOT/$BIN_DIR")
	PIDS=$RUN_DIR/pids
	LOGS=$RUN_DIR/logs
}

say() { printf 'stack: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

pg_bin() {
	if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN"; return; fi
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[[ -n "$d" ]] || die "PostgreSQL server binaries not found (run scripts/deps.sh)"
	echo "$d"
}

# Runs a PostgreSQL program as the unprivileged cluster owner (initdb and
# postgres refuse root); as a normal user, runs it directly.
as_pg() {
	if [[ $EUID -eq 0 ]]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---- PostgreSQL -----------------------------------------------------------------

# pg-init DIR [PORT]: initdb into DIR (which must not exist), trust auth on
# loopback, no unix socket (TCP 127.0.0.1 only; the port is normally given at
# start, PORT sets a default), a login role and a database both named rtsync.
# Used by `up` and by tests/integration/lib/stack.js.
cmd_pg_init() {
	local dir=${1:?usage: stack.sh pg-init DIR}
	[[ "$dir" == /* ]] || dir=$CALLER_PWD/$dir
	local bin
	bin=$(pg_bin)
	[[ ! -e "$dir/PG_VERSION" ]] || die "$dir is already a PostgreSQL data dir"
	mkdir -p "$dir"
	chmod 700 "$dir"
	if [[ $EUID -eq 0 ]]; then
		chown "$PG_USER:$PG_USER" "$dir"
		as_pg test -w "$dir" ||
			die "user $PG_USER cannot reach $dir (a parent directory is not searchable)"
	fi
	as_pg "$bin/initdb" -D "$dir" -U postgres -E UTF8 --no-locale \
		--auth-local=trust --auth-host=trust >"$dir.initdb.log" 2>&1 ||
		{ cat "$dir.initdb.log" >&2; die "initdb failed"; }
	rm -f "$dir.initdb.log"
	as_pg tee -a "$dir/postgresql.conf" >/dev/null <<-'EOF'

		# rtsync private cluster (scripts/stack.sh pg-init)
		listen_addresses = '127.0.0.1'
		unix_socket_directories = ''
		fsync = on
		max_connections = 200
		shared_buffers = 128MB
		log_line_prefix = '%m [%p] %d '
	EOF
	[[ -z "${2:-}" ]] || echo "port = $2" | as_pg tee -a "$dir/postgresql.conf" >/dev/null
	local sql out
	for sql in "CREATE ROLE rtsync LOGIN CREATEDB" "CREATE DATABASE rtsync OWNER rtsync"; do
		out=$(echo "$sql" | as_pg "$bin/postgres" --single -D "$dir" -c exit_on_error=on template1 2>&1) ||
			{ echo "$out" >&2; die "pg-init: '$sql' failed"; }
	done
}

# A data dir the postgres user can reach: RUN_DIR/pg, or when RUN_DIR sits
# below a directory closed to it (a checkout in /root), a directory in
# /var/tmp that RUN_DIR/pg links to.
pg_data_dir() {
	local dir=$RUN_DIR/pg
	if [[ -e "$dir" || $EUID -ne 0 ]] || as_pg test -x "$RUN_DIR"; then
		readlink -m "$dir"
		return
	fi
	local alt
	alt=/var/tmp/rtsync-pg-$(echo "$RUN_DIR" | md5sum | cut -c1-12)
	mkdir -p "$alt" && chmod 755 "$alt"
	ln -sfn "$alt/pg" "$dir"
	echo "$alt/pg"
}

pg_start() {
	local dir bin
	dir=$(pg_data_dir)
	bin=$(pg_bin)
	if [[ ! -e "$dir/PG_VERSION" ]]; then
		say "creating the PostgreSQL cluster in $dir"
		cmd_pg_init "$dir"
	fi
	# the server inherits the log file this shell opens: no need for the
	# postgres user to reach LOGS
	as_pg "$bin/pg_ctl" -D "$dir" -o "-p $PG_PORT" -w -t 60 start >>"$LOGS/postgres.log" 2>&1 ||
		{ tail -n 20 "$LOGS/postgres.log" >&2; die "PostgreSQL did not start"; }
}

pg_running() {
	local dir
	dir=$(readlink -m "$RUN_DIR/pg")
	[[ -e "$dir/postmaster.pid" ]] && as_pg "$(pg_bin)/pg_ctl" -D "$dir" status >/dev/null 2>&1
}

pg_stop() {
	local dir
	dir=$(readlink -m "$RUN_DIR/pg")
	[[ -e "$dir/postmaster.pid" ]] || return 0
	as_pg "$(pg_bin)/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null ||
		say "PostgreSQL did not stop cleanly (see $LOGS/postgres.log)"
}

# ---- processes -------------------------------------------------------------------

# start NAME ENV... -- CMD ARGS...: runs CMD in its own session (a Ctrl-C meant
# for this script must not reach it), logs to LOGS/NAME.log, records
# PIDS/NAME.pid (the pid) and PIDS/NAME.cmd (argv[0], checked before a kill).
start() {
	local name=$1
	shift
	local envs=()
	while [[ $1 != -- ]]; do envs+=("$1"); shift; done
	shift
	setsid env "${envs[@]}" "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
	echo $! >"$PIDS/$name.pid"
	echo "$1" >"$PIDS/$name.cmd"
	# until the forked shell has exec'd, its cmdline is this script's
	local i
	for ((i = 0; i < 100; i++)); do
		! alive "$name" || return 0
		sleep 0.02
	done
}

# alive NAME: the recorded pid still runs the recorded command: one of its
# arguments is the command's path (argv[0]; argv[1] for a script run by its
# interpreter; later while still `setsid env ... CMD` just before the exec).
alive() {
	local name=$1 pid cmd arg args
	pid=$(cat "$PIDS/$name.pid" 2>/dev/null) || return 1
	cmd=$(cat "$PIDS/$name.cmd" 2>/dev/null) || return 1
	mapfile -t -d '' args <"/proc/$pid/cmdline" 2>/dev/null || return 1
	for arg in "${args[@]}"; do
		[[ "$arg" != "$cmd" ]] || return 0
	done
	return 1
}

# names of recorded processes of one kind (edge, service, nats), sorted by name
recorded() {
	local kind=$1 f
	for f in "$PIDS"/*.pid; do
		[[ -e "$f" ]] || continue
		f=$(basename "$f" .pid)
		case "$kind:$f" in
		edge:edge-*) echo "$f" ;;
		nats:nats) echo "$f" ;;
		service:edge-* | service:nats) ;;
		service:*) echo "$f" ;;
		esac
	done | sort -V
}

# stop_group NAME...: SIGTERM to all, wait up to STOP_TIMEOUT, then SIGKILL.
stop_group() {
	local name pid live=() deadline
	for name in "$@"; do
		if alive "$name"; then
			pid=$(cat "$PIDS/$name.pid")
			kill -TERM "$pid" 2>/dev/null && live+=("$name")
		fi
	done
	deadline=$((SECONDS + STOP_TIMEOUT))
	for name in "${live[@]}"; do
		while alive "$name" && ((SECONDS < deadline)); do sleep 0.1; done
		if alive "$name"; then
			say "$name did not stop within ${STOP_TIMEOUT}s; killing it"
			kill -KILL "$(cat "$PIDS/$name.pid")" 2>/dev/null || true
		fi
	done
	for name in "$@"; do rm -f "$PIDS/$name.pid" "$PIDS/$name.cmd"; done
}

cmd_down() {
	mkdir -p "$PIDS"
	local edges services nats
	mapfile -t edges < <(recorded edge)
	mapfile -t services < <(recorded service)
	mapfile -t nats < <(recorded nats)
	stop_group "${edges[@]}"
	stop_group "${services[@]}"
	stop_group "${nats[@]}"
	pg_stop
	say "stopped"
}

wait_port() {
	local port=$1 name=$2 deadline=$((SECONDS + 20))
	until port_busy "$port"; do
		alive "$name" || { tail -n 20 "$LOGS/$name.log" >&2; die "$name exited"; }
		((SECONDS < deadline)) || die "$name does not listen on $port"
		sleep 0.1
	done
}

wait_ready() {
	local deadline=$((SECONDS + READY_TIMEOUT)) i pending
	while :; do
		pending=0
		for ((i = 1; i <= EDGES; i++)); do
			local port=$((EDGE_PORT + i - 1))
			alive "edge-$i" || fail_up "edge-$i exited"
			curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz" || pending=1
		done
		((pending)) || return 0
		((SECONDS < deadline)) || fail_up "edges not ready after ${READY_TIMEOUT}s"
		sleep 0.2
	done
}

# fail_up MESSAGE: show the logs' tails, stop what was started, fail.
fail_up() {
	local f
	for f in "$LOGS"/*.log; do
		[[ -s "$f" ]] || continue
		printf '\n==> %s (last 15 lines) <==\n' "$f" >&2
		tail -n 15 "$f" >&2
	done
	say "error: $1"
	cmd_down >/dev/null 2>&1 || true
	exit 1
}

check_ports() {
	local port
	for port in "$@"; do
		! port_busy "$port" || die "port $port is in use (move the stack with NATS_PORT, PG_PORT, EDGE_PORT)"
	done
}

cmd_up() {
	mkdir -p "$PIDS" "$LOGS"
	local name
	for name in $(recorded edge) $(recorded service) $(recorded nats); do
		! alive "$name" || die "the stack in $RUN_DIR is already running ($name); stop it with: make down"
	done
	! pg_running || die "PostgreSQL of $RUN_DIR is already running; stop it with: make down"
	rm -f "$PIDS"/*
	# keep one generation of logs: NAME.log is this run's, NAME.log.1 the last one's
	local f
	for f in "$LOGS"/*.log; do [[ ! -e "$f" ]] || mv -f "$f" "$f.1"; done
	[[ -x "$BIN_DIR/edge" ]] || die "$BIN_DIR/edge not built (run make)"

	local ports=("$NATS_PORT" "$PG_PORT") i
	((NATS_MON_PORT == 0)) || ports+=("$NATS_MON_PORT")
	for ((i = 0; i < EDGES; i++)); do ports+=($((EDGE_PORT + i))); done
	check_ports "${ports[@]}"
	# a failure from here on stops what was started (`run` has its own trap)
	[[ -n "${IN_RUN:-}" ]] || trap 'say "stopping what was started"; cmd_down >/dev/null 2>&1' EXIT

	local mon=() nats_bin
	nats_bin=$(command -v nats-server) || die "nats-server not installed (run scripts/deps.sh)"
	((NATS_MON_PORT == 0)) || mon=(-m "$NATS_MON_PORT")
	start nats -- "$nats_bin" -c "$ROOT/scripts/nats.conf" -a 127.0.0.1 -p "$NATS_PORT" "${mon[@]}"
	wait_port "$NATS_PORT" nats
	pg_start

	local common=("RT_NATS_URL=nats://127.0.0.1:$NATS_PORT"
		"RT_DATABASE_URL=postgresql://rtsync@127.0.0.1:$PG_PORT/rtsync")
	local svc started=()
	for svc in $SERVICES; do
		if [[ ! -x "$BIN_DIR/$svc" ]]; then
			say "$svc not built; skipping it"
			continue
		fi
		for ((i = 1; i <= REPLICAS; i++)); do
			start "$svc-$i" "${common[@]}" "RT_INSTANCE_ID=$svc-$i" -- "$BIN_DIR/$svc"
			started+=("$svc-$i")
		done
	done
	for ((i = 1; i <= EDGES; i++)); do
		start "edge-$i" "${common[@]}" "RT_EDGE_LISTEN=127.0.0.1:$((EDGE_PORT + i - 1))" \
			"RT_EDGE_ID=edge-$i" -- "$BIN_DIR/edge"
	done
	wait_ready
	wait_services "${started[@]}"
	start_demo_worker
	[[ -n "${IN_RUN:-}" ]] || trap - EXIT
}

# The demo app's back end (demo/worker/): answers the stream panel's prompts
# token by token and publishes the dashboard's cluster stats. Optional.
start_demo_worker() {
	local node edges=() i
	node=$(command -v node) || { say "node not found; no demo worker"; return 0; }
	[[ -f demo/worker/worker.mjs ]] || return 0
	for ((i = 0; i < EDGES; i++)); do edges+=("127.0.0.1:$((EDGE_PORT + i))"); done
	local IFS=,
	start demo-worker "RT_EDGES=${edges[*]}" -- "$node" "$ROOT/demo/worker/worker.mjs"
}

# Back-end services name their NATS connection after RT_INSTANCE_ID; give
# them a moment to appear on the NATS monitor, and say so if one does not.
wait_services() {
	((NATS_MON_PORT != 0 && $# > 0)) || return 0
	local deadline=$((SECONDS + 15)) name pending connz
	while :; do
		connz=$(curl -fs --max-time 2 "http://127.0.0.1:$NATS_MON_PORT/connz?limit=1024" || true)
		pending=()
		for name in "$@"; do
			alive "$name" || fail_up "$name exited"
			[[ "$connz" =~ \"name\":\ *\"$name\" ]] || pending+=("$name")
		done
		((${#pending[@]})) || return 0
		if ((SECONDS >= deadline)); then
			say "warning: no NATS connection named ${pending[*]} yet (see $LOGS/)"
			return 0
		fi
		sleep 0.2
	done
}

print_urls() {
	local i port
	echo
	echo "rtsync is up (logs in $LOGS/, $1)"
	for ((i = 1; i <= EDGES; i++)); do
		port=$((EDGE_PORT + i - 1))
		echo "  edge-$i  ws://127.0.0.1:$port/ws   http://127.0.0.1:$port/v1/...   http://127.0.0.1:$port/sse/{channel}   ws://127.0.0.1:$port/yjs/{doc}"
	done
	echo "  nats     nats://127.0.0.1:$NATS_PORT$( ((NATS_MON_PORT == 0)) || echo "   monitoring http://127.0.0.1:$NATS_MON_PORT/")"
	echo "  postgres postgresql://rtsync@127.0.0.1:$PG_PORT/rtsync"
	if [[ -f build/demo/index.html ]]; then
		local edges=() IFS=,
		for ((i = 0; i < EDGES; i++)); do edges+=("127.0.0.1:$((EDGE_PORT + i))"); done
		echo "  demo     http://127.0.0.1:$EDGE_PORT/?edges=${edges[*]}   (open it in two windows)"
	fi
	echo
}

cmd_status() {
	mkdir -p "$PIDS"
	local name any=0
	for name in $(recorded nats) $(recorded service) $(recorded edge); do
		any=1
		if alive "$name"; then
			echo "$name: running (pid $(cat "$PIDS/$name.pid"))"
		else
			echo "$name: dead"
		fi
	done
	if pg_running; then
		echo "postgres: running (pid $(head -n 1 "$RUN_DIR/pg/postmaster.pid"), port $(sed -n 4p "$RUN_DIR/pg/postmaster.pid"))"
		any=1
	fi
	((any)) || echo "not running"
}

TAIL_PID=
run_stop() {
	trap - INT TERM EXIT
	echo
	say "stopping"
	cmd_down
	sleep 0.2 # let tail show the last log lines
	[[ -z "$TAIL_PID" ]] || kill "$TAIL_PID" 2>/dev/null || true
}

cmd_run() {
	IN_RUN=1
	trap 'run_stop; exit 0' INT TERM
	trap 'run_stop' EXIT
	cmd_up
	print_urls "stop with Ctrl-C"
	# background jobs ignore SIGINT: run_stop ends tail
	tail -n 0 -q -F "$LOGS"/*.log &
	TAIL_PID=$!
	local name reported=" "
	while :; do
		for name in $(recorded edge) $(recorded service) $(recorded nats); do
			if ! alive "$name" && [[ "$reported" != *" $name "* ]]; then
				say "$name exited (see $LOGS/$name.log)"
				reported+="$name "
			fi
		done
		sleep 1 &
		wait $! || true
	done
}

case "${1:-}" in
run) setup_dirs && cmd_run ;;
up) setup_dirs && cmd_up && print_urls "stop with: make down" ;;
down) setup_dirs && cmd_down ;;
status) setup_dirs && cmd_status ;;
pg-init) shift; cmd_pg_init "$@" ;;
*) die "usage: stack.sh run|up|down|status|pg-init DIR [PORT]" ;;
esac
