#!/usr/bin/env bash
# Installs what rtsync needs to build, run and test, and only what is missing:
# Debian packages (checked with dpkg-query, so a complete machine costs no apt
# call at all) and the npm packages of every committed package-lock.json.
# Called by `make run`, `make test`, `make bench`; safe to run any number of times.
set -euo pipefail

cd "$(dirname "$0")/.."

PACKAGES=(
	build-essential pkg-config clang curl jq
	libh2o-evloop-dev libwslay-dev libnats-dev liburing-dev nats-server
	libprotobuf-c-dev protobuf-c-compiler
	libpq-dev postgresql
	libcunit1-dev libjansson-dev libjwt-dev libssl-dev
	docker-compose
	# tests/browser: headless Chromium driven by npm playwright-core (it cannot download a browser)
	chromium
	# make bench: the FastAPI peer (tests/bench/peers/fastapi_server.py) and the report's plots
	python3-fastapi python3-uvicorn python3-websockets gnuplot-nox
)

say() { printf 'deps: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

installed() {
	[[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

# Every Debian package we need that is not installed yet.
missing_packages() {
	local p
	for p in "${PACKAGES[@]}"; do
		installed "$p" || echo "$p"
	done
	# tests/deploy renders k8s/ with `kubectl kustomize`: any kubectl will do
	# (Debian's kubernetes-client is kubectl 1.20 with kustomize v2.0)
	command -v kubectl >/dev/null || echo kubernetes-client
	# node may come from elsewhere (nodesource, nvm): only install Debian's when absent
	if ! command -v node >/dev/null; then
		echo nodejs
		command -v npm >/dev/null || echo npm
	elif ! command -v npm >/dev/null; then
		echo npm
	fi
}

# A distribution PostgreSQL starts a cluster on 5432 when installed; ours are
# private clusters on their own ports, so stop system clusters and keep them off.
quiet_system_postgres() {
	command -v pg_lsclusters >/dev/null || return 0
	local ver name port status
	while read -r ver name port status _; do
		[[ "$ver" =~ ^[0-9]+$ ]] || continue
		local conf="/etc/postgresql/$ver/$name/start.conf"
		if [[ -w "$conf" ]] && grep -qx auto "$conf"; then
			sed -i 's/^auto$/manual/' "$conf"
			say "system PostgreSQL cluster $ver/$name set to manual start"
		fi
		if [[ "$status" == online* ]]; then
			say "stopping system PostgreSQL cluster $ver/$name on port $port"
			pg_ctlcluster "$ver" "$name" stop || true
		fi
	done < <(pg_lsclusters --no-header 2>/dev/null || true)
}

install_debian() {
	local missing
	mapfile -t missing < <(missing_packages)
	((${#missing[@]})) || return 0
	[[ $EUID -eq 0 ]] || die "missing Debian packages (${missing[*]}); run as root or install them"
	say "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
	# a daemon started by apt would sit on ports the stack may want
	if [[ " ${missing[*]} " == *" nats-server "* ]] && command -v systemctl >/dev/null; then
		systemctl disable --now nats-server >/dev/null 2>&1 || true
	fi
	quiet_system_postgres
	say "Debian packages installed"
}

# npm ci in every folder with a committed package-lock.json whose node_modules
# is missing or older than the lock file (npm records each install in
# node_modules/.package-lock.json).
install_npm() {
	local lock dir stamp
	while IFS= read -r lock; do
		dir=$(dirname "$lock")
		stamp=$dir/node_modules/.package-lock.json
		if [[ -f "$stamp" && ! "$lock" -nt "$stamp" ]]; then
			continue
		fi
		command -v npm >/dev/null || die "npm not found"
		say "npm ci in $dir"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error </dev/null)
		touch "$stamp"
	done < <(find . \( -name node_modules -o -name build -o -name .run -o -name .git \) -prune \
		-o -name package-lock.json -type f -print | sort)
}

install_debian
install_npm
