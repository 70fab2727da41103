#!/usr/bin/env bash
#
# test/t/gateway_conformance.sh -- the official Durable Streams server
# conformance suite (@durable-streams/server-conformance-tests, pinned in
# clients/gateway/package.json; test/run.sh installs it with npm ci) against
# the gateway's /v1/stream/<path> routes, on a database of its own.
#
# Counts: every conformance test that passes is one passed, every failure one
# failed (forks included: they are implemented).  Tests the suite itself
# skips (its reserved subscription APIs) are noted.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
GW=clients/gateway
DB=ds_gateway_conf
WORK=$(mktemp -d /tmp/ds-gwconf.XXXXXX)
PID=
cleanup() {
    [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    dropdb --if-exists --force "$DB" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ ! -d $GW/node_modules/@durable-streams/server-conformance-tests ]]; then
    echo "not ok - $GW/node_modules is missing (npm ci in $GW)"
    echo "0 passed, 1 failed"
    exit 1
fi
dropdb --if-exists --force "$DB" >/dev/null 2>&1
createdb "$DB" || { echo "0 passed, 1 failed"; exit 1; }

# the suite's tests wait at most 5 s, so long-polls time out after 2 s here
PGDATABASE=$DB PORT=0 LONG_POLL_TIMEOUT_MS=2000 node $GW/server.mjs >"$WORK/gateway.log" 2>&1 &
PID=$!
URL=
for _ in $(seq 1 100); do
    URL=$(grep -o 'http://[^ ]*' "$WORK/gateway.log" | head -n 1)
    [[ -n $URL ]] && break
    sleep 0.1
done
if [[ -z $URL ]]; then
    cat "$WORK/gateway.log"
    echo "not ok - the gateway did not start"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "# gateway at $URL"

(cd $GW && CONFORMANCE_TEST_URL=$URL timeout 500 npx --no-install vitest run test/conformance.test.mjs \
    --reporter=json --outputFile="$WORK/result.json" >"$WORK/vitest.log" 2>&1)
if [[ ! -s $WORK/result.json ]]; then
    tail -n 50 "$WORK/vitest.log"
    echo "not ok - the conformance suite did not report"
    echo "0 passed, 1 failed"
    exit 1
fi

node - "$WORK/result.json" <<'JS'
const [file] = process.argv.slice(2);
const tests = require(file).testResults.flatMap((f) => f.assertionResults);
let passed = 0, failed = 0, skipped = 0;
for (const t of tests) {
    const group = t.ancestorTitles.join(' > ');
    if (t.status === 'passed') {
        passed++;
    } else if (t.status === 'failed') {
        failed++;
        console.log(`not ok - ${group} > ${t.title}`);
        console.log(`    ${(t.failureMessages[0] || '').split('\n')[0]}`);
    } else {
        skipped++;
        console.log(`# ${t.status} by the suite: ${group} > ${t.title}`);
    }
}
console.log(`# conformance 0.3.6: ${passed} passed, ${failed} failed, ${skipped} skipped, of ${tests.length}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
JS
