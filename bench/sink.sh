#!/usr/bin/env bash
# durable_state: the Durable Streams sink (clients/node/sink.js) from the
# reference server (@durable-streams/server, in memory, its own process)
# into Postgres, against the reference server's own catch-up read rate, in
# the same run (bench/sink_bench.mjs):
#   - the server's catch-up read: one GET from -1 (body read), and through
#     @durable-streams/client (text; parsed);
#   - the sink's catch-up: from -1 with live false, into a generated typed
#     table ('user') and a document collection ('message'), lenient;
#   - the sink following live while the events are appended (1,000 per POST);
#   - the same events applied straight with apply_text (NDJSON, 10,000 per
#     call), for where the time goes.
#
#   bash bench/sink.sh          (about 2-3 minutes on 2 cores)
#
# durable_state runs in a throwaway cluster (test/lib.sh, port DS_PORT,
# default 55420), or the one in PGHOST/PGPORT if it has the extension
# preloaded.
#
# Knobs (environment):
#   BENCH_SINK_EVENTS=200000   events per run
#   BENCH_SINK_REPS=3          runs; best and median reported
#   BENCH_SINK_KEYS=20000      keys per type
#   BENCH_SINK_TXID=event      event: a txid per event; none
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=/dev/null
source "$ROOT/test/lib.sh"

ds_npm_install clients/node >&2
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() { [[ ${STARTED:-0} == 1 ]] && ds_stop_cluster 0 >/dev/null 2>&1; return 0; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ds_bench_cluster 55420
psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION IF NOT EXISTS durable_state' >/dev/null
EXTVER=$(psql -X -qAt -c "SELECT extversion FROM pg_extension WHERE extname = 'durable_state'")
echo
echo "Durable Streams sink: reference server -> Postgres (durable_state $EXTVER, PostgreSQL $(psql -X -qAt -c 'SHOW server_version'), fsync $(psql -X -qAt -c 'SHOW fsync'), $(nproc) CPUs, node $(node --version); cluster: $CLUSTER)"
node "$HERE/sink_bench.mjs"
