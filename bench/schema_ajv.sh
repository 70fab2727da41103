#!/usr/bin/env bash
# durable_state's JSON Schema validator beside ajv, in the same run
# (bench/schema_ajv.mjs): the profile schema of bench/schema.sql over 100k
# values, formats off, formats on, and with an alternation in a pattern.
#
#   bash bench/schema_ajv.sh     (or: make bench-schema-ajv; about a minute)
#
# npm packages: bench/package.json (ajv, ajv-formats, pg), installed with
# npm ci.  durable_state runs in a throwaway cluster (test/lib.sh, port
# DS_PORT, default 55407), or the one in PGHOST/PGPORT if it has the
# extension.  Knobs: BENCH_AJV_N=100000 values, BENCH_AJV_REPS=3 runs.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
cd "$ROOT"
# shellcheck source=/dev/null
source "$ROOT/test/lib.sh"

ds_npm_install bench >&2

STARTED=0
cleanup() { [[ $STARTED == 1 ]] && ds_stop_cluster 0 >/dev/null 2>&1; return 0; }
trap cleanup EXIT

if [[ -n ${PGHOST:-} ]] && psql -X -qAt -c "SELECT 1 FROM pg_available_extensions WHERE name = 'durable_state'" 2>/dev/null | grep -q 1; then
    echo "cluster: existing (PGHOST=$PGHOST PGPORT=${PGPORT:-})"
else
    ds_bench_throwaway 55407 || exit 1
    STARTED=1
    echo "cluster: throwaway (test/lib.sh, port $PGPORT)"
fi
echo "extension: $(psql -X -qAt -c "SELECT default_version FROM pg_available_extensions WHERE name = 'durable_state'"), server $(psql -X -qAt -c 'SHOW server_version')"
node "$HERE/schema_ajv.mjs"
