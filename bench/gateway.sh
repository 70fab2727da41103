#!/usr/bin/env bash
# durable_state HTTP gateway benchmark (issue 15): the gateway
# (clients/gateway/server.mjs) against the reference Durable Streams server
# (@durable-streams/server 0.3.7, in memory, a devDependency of
# clients/gateway), in the same run.  What is measured: bench/gateway.mjs.
#
#   bash bench/gateway.sh        (about 3-5 minutes on 2 cores)
#
# If PGHOST/PGPORT point to a running cluster with durable_state preloaded,
# it is used; otherwise a throwaway cluster (test/lib.sh, DS_PORT, default
# 55545; fsync on).  A fresh database for the run, dropped at the end.
# Knobs: BENCH_GW_EVENTS (100000), BENCH_GW_PRODUCERS (8), BENCH_GW_APPENDS
# (250 per producer), BENCH_GW_ROUNDS (100 awaitTxId rounds per mode),
# BENCH_GW_REPS (3), DS_PGBIN, DS_PORT.  Not part of the test suite.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=test/lib.sh
source "$ROOT/test/lib.sh"
cd "$ROOT"

ds_npm_install clients/gateway >&2
STARTED=0
DB=ds_gw_bench_$$
cleanup() {
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    [[ $STARTED == 1 ]] && ds_stop_cluster 0 >/dev/null 2>&1
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ds_bench_cluster 55545
psql -X -q -d postgres -c "CREATE DATABASE $DB" >/dev/null
echo "durable_state gateway vs @durable-streams/server 0.3.7 (in memory)"
echo "  PostgreSQL $(psql -X -qAt -d "$DB" -c 'SHOW server_version'), fsync $(psql -X -qAt -d "$DB" -c 'SHOW fsync'),"\
     "synchronous_commit $(psql -X -qAt -d "$DB" -c 'SHOW synchronous_commit'); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg); cluster: $CLUSTER"
PGDATABASE=$DB node bench/gateway.mjs
