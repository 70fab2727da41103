#!/usr/bin/env bash
# durable_state key/value round trips against Redis, through Node:
# state.put / state.get via the Node client (clients/node) and SET / GET via
# node-redis, 8 concurrent clients, the same JSON payloads (~110 bytes),
# random keys of 10,000 preloaded ones, in the same run.
#
#   bash bench/kv.sh            (or: make bench-kv; about 1.5 minutes)
#
# Redis is Debian's redis-server (installed with apt-get if missing), run
# twice on free ports: with its default persistence (RDB snapshots, no AOF)
# and with appendfsync always (every write on disk before the reply, as a
# Postgres commit with synchronous_commit = on).  durable_state runs in a
# throwaway cluster (test/lib.sh), or the one in PGHOST/PGPORT if it has the
# extension preloaded.  Knobs: BENCH_KV_CLIENTS (8), BENCH_KV_SECONDS (5),
# BENCH_KV_KEYS (10000).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=/dev/null
source "$ROOT/test/lib.sh"

if ! command -v redis-server >/dev/null 2>&1; then
    ds_as_root apt-get update >&2 && ds_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends redis-server >&2
fi
ds_npm_install clients/node >&2

WORK=$(mktemp -d /tmp/ds_kv_bench.XXXXXX)
REDIS_PIDS=()
cleanup() {
    for p in "${REDIS_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [[ ${STARTED:-0} == 1 ]] && ds_stop_cluster 0 >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -n ${PGHOST:-} ]] && psql -X -qAt -c "SHOW shared_preload_libraries" 2>/dev/null | grep -qw durable_state; then
    CLUSTER="existing (PGHOST=$PGHOST PGPORT=${PGPORT:-})"
else
    export DS_PORT=${DS_PORT:-55400}
    ds_bench_start
    STARTED=1
    CLUSTER="throwaway (test/lib.sh, port $PGPORT)"
fi
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION IF NOT EXISTS durable_state;
SELECT state.create_collection('kvb_' || i, 'kv', stream => 'kvb_' || i, mode => 'lenient')
  FROM generate_series(0, 7) i
 WHERE NOT EXISTS (SELECT 1 FROM state.collections WHERE name = 'kvb_' || i);
SQL

port=56379
# start_redis ARGS...: a redis-server on the next free port; its URL in REDIS_URL
start_redis() {
    while ds_port_in_use "$port"; do port=$((port + 1)); done
    redis-server --port "$port" --bind 127.0.0.1 --dir "$WORK" --dbfilename "r$port.rdb" \
        --appendfilename "r$port.aof" "$@" >"$WORK/redis$port.log" 2>&1 &
    REDIS_PIDS+=($!)
    for _ in $(seq 50); do ds_port_in_use "$port" && break; sleep 0.1; done
    REDIS_URL="redis://127.0.0.1:$port"
    port=$((port + 1))
}
start_redis
R1=$REDIS_URL
start_redis --appendonly yes --appendfsync always
R2=$REDIS_URL

json=$(node "$HERE/kv_bench.mjs" "Redis (default: RDB, no AOF)=$R1" "Redis (appendfsync always)=$R2")

echo
echo "durable_state vs Redis: key/value round trips through Node, ${BENCH_KV_CLIENTS:-8} concurrent clients"
echo "  $(redis-server --version | cut -d' ' -f1-3); PostgreSQL $(psql -X -qAt -c 'SHOW server_version'), fsync on; cluster: $CLUSTER"
node -e '
const rows = JSON.parse(process.argv[1]);
const by = Object.fromEntries(rows.map((r) => [r.label, r]));
console.log("  " + "operation".padEnd(66) + "ops/s".padStart(9) + "p50 ms".padStart(9) + "p99 ms".padStart(9));
for (const r of rows) console.log("  " + r.label.padEnd(66) + r.ops.toFixed(0).padStart(9) + r.p50.toFixed(3).padStart(9) + r.p99.toFixed(3).padStart(9));
const base = "Redis (default: RDB, no AOF)", dur = "Redis (appendfsync always)";
console.log("");
for (const v of ["durable_state, one stream", "durable_state, a stream per client", "durable_state, one stream, synchronous_commit=off"]) {
  const put = by[v + ": put"].ops, get = by[v + ": get"].ops;
  console.log("  " + v.padEnd(52) + " put/SET = " + (put / by[base + ": SET"].ops).toFixed(3) + " (vs appendfsync always: " + (put / by[dur + ": SET"].ops).toFixed(3) + ")" + "   get/GET = " + (get / by[base + ": GET"].ops).toFixed(3));
}' "$json"
