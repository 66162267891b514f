#!/usr/bin/env bash
# Runs the node:test integration suites (tests/integration/, tests/yjs/,
# tests/browser/ in headless Chromium) one
# file at a time against real servers (each file starts its own stack through
# tests/integration/lib/stack.js), and the offline checks of the deployment
# files (tests/deploy/).
#
# Environment: TEST_FILTER (only tests whose name matches this regex),
# TEST_FILES (files or dirs instead of the default dirs), TEST_TIMEOUT (ms;
# node applies it to each test and to each whole file, so a test that can
# hang should set its own shorter { timeout }; default 600000),
# INTEGRATION_TIMEOUT (s for the whole run, default 1800).
# Process logs are in build/test-logs/<file>/<process>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

TEST_TIMEOUT=${TEST_TIMEOUT:-600000}
INTEGRATION_TIMEOUT=${INTEGRATION_TIMEOUT:-1800}

paths=()
if [[ -n "${TEST_FILES:-}" ]]; then
	read -r -a paths <<<"$TEST_FILES"
else
	for d in tests/integration tests/yjs tests/browser tests/deploy; do
		[[ -d "$d" ]] && paths+=("$d/")
	done
fi
if ((${#paths[@]} == 0)); then
	echo "integration: no test directories" >&2
	exit 0
fi

args=(--test --test-concurrency=1 --test-timeout="$TEST_TIMEOUT" --test-reporter=spec)
[[ -z "${TEST_FILTER:-}" ]] || args+=(--test-name-pattern="$TEST_FILTER")

echo "integration: node ${args[*]} ${paths[*]}" >&2
status=0
timeout --foreground -k 15 "$INTEGRATION_TIMEOUT" node "${args[@]}" "${paths[@]}" || status=$?
if ((status == 124)); then
	echo "integration: timed out after ${INTEGRATION_TIMEOUT}s" >&2
fi
if ((status != 0)); then
	echo "integration: FAILED (process logs: build/test-logs/)" >&2
fi
exit "$status"
