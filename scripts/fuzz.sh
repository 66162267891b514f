#!/usr/bin/env bash
# fuzz.sh: runs libFuzzer targets built by `make build/fuzz/fuzz_NAME`.
#
#   scripts/fuzz.sh smoke fuzz_A fuzz_B ...   short bounded runs (make test); the whole
#                                             smoke stays under FUZZ_SMOKE_BUDGET seconds
#                                             (default 110), at most 20 s per target
#   scripts/fuzz.sh long  fuzz_A ...          FUZZ_SECONDS each (default 300)
#
# Targets are named fuzz_NAME (or given as build/fuzz/fuzz_NAME).  The seed corpus of
# fuzz_NAME is tests/fuzz/corpus/NAME/ (created empty if missing).  Smoke runs work on a
# temporary copy of it, so the committed corpus never changes; long runs keep what they
# find in build/fuzz/corpus/NAME/.  Crash, leak and timeout inputs are written to
# build/fuzz/artifacts/NAME/.  Exit 1 if any target found something or failed to run.
set -u
cd "$(dirname "$0")/.."

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

[ $# -ge 1 ] || usage
mode=$1
shift
case $mode in smoke | long) ;; *) usage ;; esac
[ $# -ge 1 ] || { echo "fuzz.sh: no targets given" >&2; exit 2; }

n=$#
if [ "$mode" = smoke ]; then
    budget=${FUZZ_SMOKE_BUDGET:-110}
    per=$((budget / n))
    [ $per -gt 20 ] && per=20
    [ $per -lt 2 ] && per=2
else
    per=${FUZZ_SECONDS:-300}
fi

failed=0
summary=()
for t in "$@"; do
    name=$(basename "$t")
    short=${name#fuzz_}
    bin=build/fuzz/$name
    if [ ! -x "$bin" ]; then
        echo "fuzz.sh: $bin is missing (make $bin)" >&2
        failed=1
        summary+=("$name: NOT BUILT")
        continue
    fi
    seeds=tests/fuzz/corpus/$short
    mkdir -p "$seeds"
    artifacts=build/fuzz/artifacts/$short
    mkdir -p "$artifacts"
    if [ "$mode" = smoke ]; then
        work=$(mktemp -d)
        cp -r "$seeds/." "$work/" 2>/dev/null
    else
        work=build/fuzz/corpus/$short
        mkdir -p "$work"
        cp -rn "$seeds/." "$work/" 2>/dev/null
    fi
    log=$(mktemp)
    echo "== $name: $mode, ${per}s, corpus $seeds ($(ls "$seeds" | wc -l) seeds)"
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
        "$bin" -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$work" >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    finds=$(grep -cE '^==[0-9]+==ERROR|^SUMMARY: |deadly signal|Test unit written' "$log")
    if [ $rc -ne 0 ]; then
        failed=1
        tail -60 "$log"
        summary+=("$name: FAILED (exit $rc), ${execs:-?} executions, $cov, artifacts in $artifacts/")
    else
        summary+=("$name: ok, ${execs:-?} executions, $cov, $finds findings")
    fi
    [ "$mode" = smoke ] && rm -rf "$work"
    rm -f "$log"
done

echo "== fuzz $mode summary"
printf '  %s\n' "${summary[@]}"
exit $failed
