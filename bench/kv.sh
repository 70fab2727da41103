#!/usr/bin/env bash
# durable_state key/value round trips against Redis, through Node:
# state.put / state.get via the Node client (clients/node) and SET / GET via
# node-redis, 8 concurrent callers, the same JSON payloads (~110 bytes),
# random keys of 10,000 preloaded ones, in the same run.
#
#   bash bench/kv.sh            (or: make bench-kv; about 3 minutes)
#
# Variants (bench/kv_bench.mjs), each run BENCH_KV_REPS times, interleaved
# (those a ratio compares back to back, their order alternating from one
# repetition to the next), medians reported:
#   - put on ONE stream shared by all callers, and put with a stream per
#     caller, for each durable_state.notify mode of BENCH_KV_NOTIFY;
#   - put on one stream with synchronous_commit = off;
#   - Redis SET as shipped and with appendfsync always;
#   - get (one stream), Redis GET on both instances.
# It prints the ratios issue 13 asks for: put one-stream/N-streams (target
# >= 0.90), put one-stream/Redis SET appendfsync always (>= 0.50), and put
# against Redis as shipped, per notify mode; targets are marked for worker
# and off.  With notify = commit every committing writer holds PostgreSQL's
# global NOTIFY lock through its commit, so a stream per client does not let
# the writers share a WAL flush either (commit is the server's default, so
# it is measured too).
#
# Redis is Debian's redis-server (installed with apt-get if missing), run
# twice on free ports, each in its own directory: "as shipped" is Debian's
# own /etc/redis/redis.conf (RDB snapshots, no AOF: a crash loses the last
# minutes), "appendfsync always" the same file plus --appendonly yes
# --appendfsync always (every write on disk before the reply, as a Postgres
# commit with synchronous_commit = on).  Only the port, bind address,
# directory, pid and log file, daemonize and supervised are overridden.  If
# /etc/redis/redis.conf is not readable, Redis's built-in defaults are used
# instead (the report says which).
#
# durable_state runs in a throwaway cluster (test/lib.sh, port DS_PORT,
# default 55400), or the one in PGHOST/PGPORT if it has the extension
# preloaded (notify = worker then needs durable_state.database to name the
# database, else the writers notify themselves).
#
# Knobs (environment):
#   BENCH_KV_SECONDS=5           seconds per run
#   BENCH_KV_REPS=3              runs per variant
#   BENCH_KV_CLIENTS=8           concurrent callers (pool size, Redis connections, streams)
#   BENCH_KV_KEYS=10000          keys per stream / Redis instance, picked at random
#   BENCH_KV_NOTIFY="worker commit"   durable_state.notify modes of the put variants
#   BENCH_KV_ASYNC=1             0: no synchronous_commit=off put
#   BENCH_KV_GET=1               0: no get / GET runs
#   BENCH_KV_REDIS_CONF=/etc/redis/redis.conf   the "as shipped" configuration
#   DS_PORT=55400                port of the throwaway cluster
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=/dev/null
source "$ROOT/test/lib.sh"

CLIENTS=${BENCH_KV_CLIENTS:-8}
if ! [[ $CLIENTS =~ ^[0-9]+$ ]] || (( CLIENTS < 1 )); then
    echo "bench/kv: BENCH_KV_CLIENTS must be a positive integer" >&2
    exit 1
fi
REDIS_CONF=${BENCH_KV_REDIS_CONF:-/etc/redis/redis.conf}

if ! command -v redis-server >/dev/null 2>&1; then
    ds_as_root apt-get update >&2 && ds_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends redis-server >&2
fi
ds_npm_install clients/node >&2

WORK=$(mktemp -d /tmp/ds_kv_bench.XXXXXX)
REDIS_PIDS=()
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    local p
    for p in "${REDIS_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${REDIS_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [[ ${STARTED:-0} == 1 ]] && ds_stop_cluster 0 >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ds_bench_cluster 55400
# stream kvb (shared by all callers) and kvb_0..kvb_<CLIENTS-1> (one per caller)
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION IF NOT EXISTS durable_state;
SELECT state.create_collection(s, 'kv', stream => s, mode => 'lenient')
  FROM (SELECT 'kvb' AS s UNION ALL SELECT 'kvb_' || i FROM generate_series(0, $CLIENTS - 1) i) x
 WHERE NOT EXISTS (SELECT 1 FROM state.collections c WHERE c.name = x.s AND c.stream = x.s);
SQL
WORKER_DB=$(psql -X -qAt -c "SHOW durable_state.database")
EXTVER=$(psql -X -qAt -c "SELECT extversion FROM pg_extension WHERE extname = 'durable_state'")
# which build runs: the server's library directory and the .so's checksum
# (several builds may be installed into one PostgreSQL in turn)
SO_PATH="$(psql -X -qAt -c "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'" 2>/dev/null || echo '?')/durable_state.so"
SO_SUM=$( { md5sum <"$SO_PATH" | cut -c1-12; } 2>/dev/null || echo '?')
DB=$(psql -X -qAt -c "SELECT current_database()")
WORKER_NOTE=""
[[ $WORKER_DB == "$DB" ]] || WORKER_NOTE="the worker serves '$WORKER_DB', not '$DB': with notify=worker the writers notify themselves"

if [[ -r $REDIS_CONF ]]; then
    SHIPPED_DESC="Debian's $REDIS_CONF"
    CONF_ARGS=("$REDIS_CONF")
else
    SHIPPED_DESC="Redis's built-in defaults ($REDIS_CONF not readable)"
    CONF_ARGS=()
fi
port=56379
# start_redis NAME ARGS...: a redis-server on the next free port, in its own
# directory, with the "as shipped" configuration plus ARGS; its URL in REDIS_URL
start_redis() {
    local name=$1 dir=$WORK/$1
    shift
    mkdir -p "$dir"
    while ds_port_in_use "$port"; do port=$((port + 1)); done
    redis-server "${CONF_ARGS[@]}" --port "$port" --bind 127.0.0.1 --dir "$dir" \
        --daemonize no --supervised no --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@" \
        >"$dir/stdout.log" 2>&1 &
    REDIS_PIDS+=($!)
    for _ in $(seq 50); do ds_port_in_use "$port" && break; sleep 0.1; done
    ds_port_in_use "$port" || { echo "bench/kv: redis-server ($name) did not start:" >&2; cat "$dir/stdout.log" "$dir/redis.log" >&2 2>/dev/null; exit 1; }
    REDIS_URL="redis://127.0.0.1:$port"
    redis_settings[$name]=$(redis-cli -p "$port" CONFIG GET save | paste -sd ' ' | sed 's/^save /save "/; s/$/"/')
    redis_settings[$name]+=" $(redis-cli -p "$port" CONFIG GET appendonly | paste -sd ' ') $(redis-cli -p "$port" CONFIG GET appendfsync | paste -sd ' ')"
    port=$((port + 1))
}
declare -A redis_settings=()
start_redis shipped
R_SHIPPED=$REDIS_URL
start_redis always --appendonly yes --appendfsync always
R_ALWAYS=$REDIS_URL

echo
echo "durable_state vs Redis: key/value round trips through Node, $CLIENTS concurrent callers"
echo "  durable_state $EXTVER ($SO_PATH, md5 $SO_SUM); $(redis-server --version | cut -d' ' -f1-3); PostgreSQL $(psql -X -qAt -c 'SHOW server_version'), fsync $(psql -X -qAt -c 'SHOW fsync'); $(nproc) CPUs; cluster: $CLUSTER"
echo "  Redis as shipped: $SHIPPED_DESC (${redis_settings[shipped]});"
echo "  Redis appendfsync always: the same plus --appendonly yes --appendfsync always (${redis_settings[always]})"
echo "  streams: 'kvb' (one, shared) and 'kvb_0'..'kvb_$(( CLIENTS - 1 ))' (one per caller); worker serves '$WORKER_DB'${WORKER_NOTE:+ -- NOTE: $WORKER_NOTE}"
echo
node "$HERE/kv_bench.mjs" "shipped=$R_SHIPPED" "always=$R_ALWAYS"
