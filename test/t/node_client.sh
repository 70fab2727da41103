#!/usr/bin/env bash
#
# test/t/node_client.sh -- the Node client (clients/node) and its adapters,
# against the test cluster, with the real npm packages from the lockfile
# (pg, @durable-streams/state, @purista/core): clients/node/test/*.test.mjs
# under node's test runner.  They use $PGDATABASE (the worker's database:
# the TTL test waits for its sweep) and streams of their own.
#
# Prints node's TAP output and finally `N passed, M failed` (its pass and
# fail counts, subtests included).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../clients/node" || exit 1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
node --test --test-reporter=tap test/*.test.mjs 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$out" | tail -n 1)
f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$out" | tail -n 1)
c=$(sed -n 's/^# cancelled \([0-9]*\)$/\1/p' "$out" | tail -n 1)
p=${p:-0} f=$(( ${f:-0} + ${c:-0} ))
if (( rc != 0 && f == 0 )); then
    f=1
fi
echo "$p passed, $f failed"
(( f == 0 ))
