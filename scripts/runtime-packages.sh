#!/usr/bin/env bash
# Prints the Debian packages that hold the shared libraries the given
# binaries load (one per line, sorted), so that an image can install exactly
# those and nothing of the build tool chain. The Dockerfile's build stage runs
# it on the built services; tests/deploy runs it on build/bin here.
#
#   scripts/runtime-packages.sh BINARY...
set -euo pipefail

(($# > 0)) || { echo "usage: runtime-packages.sh BINARY..." >&2; exit 2; }

# ldd names a library by the path the loader found (/lib/... on a merged-/usr
# system) while dpkg may have recorded /usr/lib/...: try the path as given,
# then its canonical form, then below /usr.
owner() {
	local lib=$1 p
	for p in "$lib" "$(readlink -f "$lib")" "/usr$lib"; do
		dpkg-query -S "$p" 2>/dev/null | head -n 1 | cut -d: -f1 && return 0
	done
	echo "runtime-packages: no Debian package holds $lib" >&2
	return 1
}

libs=$(for bin in "$@"; do
	out=$(ldd "$bin") || { echo "runtime-packages: ldd $bin failed" >&2; exit 1; }
	if grep -q 'not found' <<<"$out"; then
		echo "runtime-packages: $bin: a library is missing:" >&2
		grep 'not found' <<<"$out" >&2
		exit 1
	fi
	awk '$2 == "=>" && $3 ~ /^\// { print $3 }' <<<"$out"
done | sort -u)

for lib in $libs; do owner "$lib"; done | sort -u
