#!/usr/bin/env bash
# durable_state notification benchmark: what notifications cost writers, and
# how fast a committed txid / a notification reaches a waiting client.
#
#   bash bench/notify.sh            (about 5 minutes on 2 cores)
#
# 1. Latency (first, on an idle cluster and an empty state._txids), one
#    client process with two connections and asynchronous queries
#    (bench/notify_client.c):
#      - commit of a state.apply() carrying a txid -> state.await_txid()
#        returning in another session that was already asleep waiting for it;
#      - plain NOTIFY (autocommit) -> the notification reaching a LISTENer;
#      - commit of a state.apply() -> its notification reaching a LISTENer,
#        with durable_state.notify = commit and = worker.
# 2. Throughput: pgbench, 8 clients (-c 8 -j 2), one transaction = one
#    state.apply() of one upsert event with a txid (bench/notify_apply.sql),
#    for durable_state.notify = off, commit and worker, while one subscriber
#    LISTENs on every channel and counts notifications; with
#    synchronous_commit = on and = off; with a stream per client (writers do
#    not wait for each other, so the global notify lock is what serializes
#    commits) and with one stream shared by all clients (on main before
#    issue 13 its row lock serializes the writers through their commits).
#    Runs are interleaved: per synchronous_commit value and repetition, the
#    modes in rotated order, each with both layouts back to back (the first
#    alternates).  The report gives, per mode and synchronous_commit, the
#    ratio one-stream/N-streams of the median tps (issue 13's target:
#    >= 0.90 for notify off and worker), and the ratio within each
#    repetition.
# 3. await_txid latency again, now that state._txids holds every txid of the
#    throughput runs.
#
# Uses the cluster in PGHOST/PGPORT if it runs with durable_state preloaded
# (then in a fresh database, dropped at the end; worker mode needs
# durable_state.database to name it -- or set BENCH_NOTIFY_DB to the database
# the worker serves); otherwise starts a throwaway cluster with test/lib.sh
# (port DS_PORT, default 55300) and runs in ds_test, which its worker serves.
# Does not build or install the extension unless BENCH_BUILD=1.
#
# Knobs (environment):
#   BENCH_NOTIFY_SECONDS=5     seconds per pgbench run
#   BENCH_NOTIFY_REPS=3        runs per mode, layout and synchronous_commit
#   BENCH_NOTIFY_MODES="off commit worker"
#   BENCH_NOTIFY_SYNC="on off" synchronous_commit values for the pgbench runs
#   BENCH_NOTIFY_LAYOUTS="per-client shared"   a stream per client / one stream
#   BENCH_NOTIFY_CLIENTS=8     pgbench -c (threads: BENCH_NOTIFY_THREADS=2)
#   BENCH_NOTIFY_KEYS=100000   keys the upserts pick from at random
#   BENCH_AWAIT_N=10000        samples per latency measurement (step 1)
#   BENCH_AWAIT_AFTER_N=50     await_txid samples in step 3 (0 skips it)
#   BENCH_NOTIFY_LATENCY=1     0 skips step 1;  BENCH_NOTIFY_TPS=1: 0 skips 2
#   BENCH_NOTIFY_DB=name       existing cluster: run in this existing database
#                              (objects get a unique name; dropped at the end,
#                              the stream's log rows stay)
#   BENCH_BUILD=1              make && make install first (test/lib.sh)
#   DS_PG_MAJOR=15             the PostgreSQL major: 15 (Debian), 17 or 18 (/opt/postgresql-N)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

SECONDS_PER_RUN=${BENCH_NOTIFY_SECONDS:-5}
REPS=${BENCH_NOTIFY_REPS:-3}
MODES=${BENCH_NOTIFY_MODES:-off commit worker}
SYNCS=${BENCH_NOTIFY_SYNC:-on off}
LAYOUTS=${BENCH_NOTIFY_LAYOUTS:-per-client shared}
CLIENTS=${BENCH_NOTIFY_CLIENTS:-8}
THREADS=${BENCH_NOTIFY_THREADS:-2}
KEYS=${BENCH_NOTIFY_KEYS:-100000}
AWAIT_N=${BENCH_AWAIT_N:-10000}
AWAIT_AFTER_N=${BENCH_AWAIT_AFTER_N:-50}
DO_LATENCY=${BENCH_NOTIFY_LATENCY:-1}
DO_TPS=${BENCH_NOTIFY_TPS:-1}

say() { printf '%s\n' "$*" >&2; }
die() { say "bench/notify: $*"; exit 1; }

for v in SECONDS_PER_RUN REPS CLIENTS THREADS KEYS AWAIT_N AWAIT_AFTER_N; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
(( SECONDS_PER_RUN >= 1 && REPS >= 1 && CLIENTS >= 1 && THREADS >= 1 && KEYS >= 1 && AWAIT_N >= 1 )) \
    || die "BENCH_NOTIFY_SECONDS, _REPS, _CLIENTS, _THREADS, _KEYS and BENCH_AWAIT_N must be at least 1"
(( THREADS <= CLIENTS )) || THREADS=$CLIENTS
for m in $MODES; do
    case "$m" in off|commit|worker) ;; *) die "unknown notify mode '$m' (off, commit, worker)" ;; esac
done
for l in $LAYOUTS; do
    case "$l" in per-client|shared) ;; *) die "unknown layout '$l' (per-client, shared)" ;; esac
done
for s in $SYNCS; do
    case "$s" in on|off|local|remote_write|remote_apply) ;; *) die "bad synchronous_commit value '$s'" ;; esac
done

# DS_PG_MAJOR (default 15): Debian's 15, or 17/18 in /opt (test/pgbuild.sh)
if [[ ${DS_PG_MAJOR:-15} == 15 ]]; then
    PGBIN=/usr/lib/postgresql/15/bin
else
    PGBIN=/opt/postgresql-$DS_PG_MAJOR/bin
    [[ -x $PGBIN/pgbench ]] || bash "$ROOT/test/pgbuild.sh" "$DS_PG_MAJOR" >&2 || die "could not build PostgreSQL $DS_PG_MAJOR"
fi
[[ -x $PGBIN/pgbench ]] || PGBIN=$(dirname "$(command -v pgbench || echo /nonexistent/pgbench)")
[[ -x $PGBIN/pgbench ]] || die "pgbench not found (install postgresql-${DS_PG_MAJOR:-15})"
PG_CONFIG=${PG_CONFIG:-$PGBIN/pg_config}
[[ -x $PG_CONFIG ]] || PG_CONFIG=pg_config
export PATH="$PGBIN:$PATH"

WORK=$(mktemp -d /tmp/ds_notify_bench.XXXXXX)
chmod 755 "$WORK"
CLEANUPS=()
BG_PIDS=()
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    local i p
    for p in "${BG_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${BG_PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    for (( i = ${#CLEANUPS[@]} - 1; i >= 0; i-- )); do
        eval "${CLEANUPS[$i]}" || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --------------------------------------------------------------------------
# The client (libpq)
# --------------------------------------------------------------------------

CLIENT=$WORK/notify_client
incdir=$("$PG_CONFIG" --includedir 2>/dev/null || echo /usr/include/postgresql)
libdir=$("$PG_CONFIG" --libdir 2>/dev/null || echo /usr/lib)
[[ -f $incdir/libpq-fe.h ]] || die "libpq-fe.h not found in $incdir (apt-get install libpq-dev)"
command -v gcc >/dev/null 2>&1 || die "gcc not found (apt-get install gcc)"
gcc -O2 -Wall -I"$incdir" -o "$CLIENT" "$HERE/notify_client.c" -L"$libdir" -lpq 2>"$WORK/cc.log" \
    || { cat "$WORK/cc.log" >&2; die "could not compile bench/notify_client.c"; }

# --------------------------------------------------------------------------
# Cluster and database
# --------------------------------------------------------------------------

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -d "${ADMIN_DB:-${PGDATABASE:-postgres}}" "$@"; }

preloaded() {
    [[ "$(psql_admin -At -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'durable_state'" 2>/dev/null)" == 1 ]] &&
        psql_admin -At -c "SHOW shared_preload_libraries" 2>/dev/null | grep -qw durable_state
}

STREAM=nb
COLL=nb_items
CREATED_EXT=0
if [[ -n "${PGHOST:-}${PGPORT:-}" ]] && psql_admin -c 'SELECT 1' >/dev/null 2>&1 && preloaded; then
    CLUSTER="existing (PGHOST=${PGHOST:-} PGPORT=${PGPORT:-})"
    ADMIN_DB=${PGDATABASE:-postgres}
    if [[ -n "${BENCH_NOTIFY_DB:-}" ]]; then
        DB=$BENCH_NOTIFY_DB
        STREAM=nb_bench_$$
        COLL=nb_items_bench_$$
    else
        DB="ds_notify_bench_$$"
        psql_admin -c "CREATE DATABASE \"$DB\""
        CLEANUPS+=("psql -X -q -d '$ADMIN_DB' -c 'DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)' >/dev/null 2>&1")
    fi
else
    [[ -n "${PGHOST:-}${PGPORT:-}" ]] &&
        say "bench/notify: no reachable cluster with durable_state preloaded at PGHOST=${PGHOST:-} PGPORT=${PGPORT:-}; starting a throwaway one"
    unset PGHOST PGPORT PGDATABASE PGOPTIONS
    [[ -f $ROOT/test/lib.sh ]] || die "test/lib.sh is missing; point PGHOST/PGPORT to a cluster with durable_state preloaded"
    # shellcheck source=/dev/null
    source "$ROOT/test/lib.sh"
    # durable_state.database = ds_test, as the tests run
    ds_bench_throwaway 55300 || die "no throwaway cluster"
    CLEANUPS+=("ds_stop_cluster >/dev/null 2>&1")
    CLUSTER="throwaway (test/lib.sh ds_start_cluster, port $PGPORT)"
    ADMIN_DB=postgres
    DB=ds_test
fi
export PGDATABASE=$DB
psql_db() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

if [[ "$(psql_db -At -c "SELECT count(*) FROM pg_extension WHERE extname = 'durable_state'")" == 0 ]]; then
    psql_db -c 'CREATE EXTENSION durable_state'
    CREATED_EXT=1
fi
if (( CREATED_EXT )) && [[ -n "${BENCH_NOTIFY_DB:-}" ]]; then
    CLEANUPS+=("psql -X -q -d '$DB' -c 'DROP EXTENSION durable_state' >/dev/null 2>&1")
fi
# The shared stream ($STREAM, collection $COLL) and one stream per client
# (${STREAM}_c<N>, collection ${COLL}_c<N>); every collection has type $COLL.
psql_db -At -v ON_ERROR_STOP=1 >/dev/null <<EOF
SELECT state.create_collection('$COLL', stream => '$STREAM', mode => 'lenient');
SELECT state.create_collection('${COLL}_c' || i, '$COLL', stream => '${STREAM}_c' || i, mode => 'lenient')
  FROM generate_series(0, $CLIENTS - 1) i;
EOF
if [[ -n "${BENCH_NOTIFY_DB:-}" ]]; then
    CLEANUPS+=("psql -X -q -d '$DB' -c \"SELECT state.drop_collection(name, stream, drop_table => true) FROM state.collections WHERE (name, stream) = ('$COLL', '$STREAM') OR (name LIKE '${COLL}_c%' AND stream LIKE '${STREAM}_c%')\" >/dev/null 2>&1")
fi
SHARED_STREAMS="'$STREAM'"
PER_CLIENT_STREAMS=$(seq -s, -f "'${STREAM}_c%g'" 0 $(( CLIENTS - 1 )))
mapfile -t CHANNELS < <(psql_db -At -c "SELECT state.channel(s) FROM unnest(ARRAY[$SHARED_STREAMS, $PER_CLIENT_STREAMS]) s")

WORKER_DB=$(psql_db -At -c "SHOW durable_state.database")
WORKER_STATE=$(psql_db -At -c "SELECT coalesce(worker_state, '?') FROM state.stats")
WORKER_NOTE=""
if [[ "$WORKER_DB" != "$DB" ]]; then
    WORKER_NOTE="the worker serves database '$WORKER_DB', not '$DB': in worker mode the writers notify themselves (set durable_state.database or BENCH_NOTIFY_DB)"
    say "bench/notify: WARNING: $WORKER_NOTE"
elif [[ "$WORKER_STATE" != running ]]; then
    # a worker whose database did not exist yet retries every second
    for _ in $(seq 30); do
        sleep 0.5
        WORKER_STATE=$(psql_db -At -c "SELECT coalesce(worker_state, '?') FROM state.stats")
        [[ "$WORKER_STATE" == running ]] && break
    done
    [[ "$WORKER_STATE" == running ]] || die "the durable_state worker is not running (state: $WORKER_STATE)"
fi

server_info=$(psql_db -At -F '|' -c "SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit'), current_setting('wal_sync_method'), current_setting('shared_buffers'),
                                             (SELECT extversion FROM pg_extension WHERE extname = 'durable_state')")
IFS='|' read -r PGVER FSYNC SCOMMIT WALSYNC SBUF EXTVER <<<"$server_info"
# which build runs: the server's library directory and the .so's checksum
# (several builds may be installed into one PostgreSQL in turn)
SO_PATH="$(psql_db -At -c "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'" 2>/dev/null || echo '?')/durable_state.so"
SO_SUM=$( { md5sum <"$SO_PATH" | cut -c1-12; } 2>/dev/null || echo '?')

ERRORS=()
start_all=$(date +%s)

# --------------------------------------------------------------------------
# Latency
# --------------------------------------------------------------------------

# latency LABEL [ENV...] -- CLIENT-ARGS: runs the client, records one line.
declare -a LAT_LINES=()
latency() {
    local label=$1 out rc=0
    shift
    local envs=()
    while [[ $1 != -- ]]; do envs+=("$1"); shift; done
    shift
    say "bench/notify: latency: $label"
    out=$(env "${envs[@]}" "$CLIENT" "$@" 2>"$WORK/lat.err") || rc=$?
    if (( rc != 0 && rc != 2 )) || [[ -z $out ]]; then
        ERRORS+=("latency '$label': $(head -n 5 "$WORK/lat.err")")
        LAT_LINES+=("$label|failed")
        return 0
    fi
    (( rc == 2 )) && ERRORS+=("latency '$label': some await_txid calls returned false ($out)")
    LAT_LINES+=("$label|$out")
}

txid_rows() { psql_db -At -c "SELECT count(*) FROM state._txids" 2>/dev/null || echo '?'; }

if [[ "$DO_LATENCY" != 0 ]]; then
    latency "await_txid after apply commit (state._txids: $(txid_rows) rows at start)" \
        PGOPTIONS="-c durable_state.notify=off" -- await "$AWAIT_N" "$STREAM" "$COLL"
    latency "await_txid called after the apply committed (incl. its round trip)" \
        PGOPTIONS="-c durable_state.notify=off" -- await-after "$AWAIT_N" "$STREAM" "$COLL"
    latency "plain NOTIFY -> LISTENer" -- notify "$AWAIT_N" "nb_bench_plain"
    latency "apply commit -> notification, notify=commit" \
        PGOPTIONS="-c durable_state.notify=commit" -- apply-notify "$AWAIT_N" "$STREAM" "$COLL"
    latency "apply commit -> notification, notify=worker" \
        PGOPTIONS="-c durable_state.notify=worker" -- apply-notify "$AWAIT_N" "$STREAM" "$COLL"
fi

# --------------------------------------------------------------------------
# Throughput
# --------------------------------------------------------------------------

# stats STREAMS: notifications_sent notifications_handed_to_worker events applied to STREAMS
stats() {
    psql_db -At -F ' ' -c "SELECT s.notifications_sent, s.notifications_handed_to_worker,
                                  (SELECT coalesce(sum(events_applied), 0) FROM state.streams
                                    WHERE stream IN ($1))
                             FROM state.stats s"
}

listener_stat() {
    local line
    echo stat 1>&"${LISTENER[1]}"
    IFS= read -r -t 10 line <&"${LISTENER[0]}" || die "the subscriber does not answer"
    echo "$line"
}

# RESULTS lines: layout sync mode rep tps txns applied notifications events_covered sent_delta handed_delta
RESULTS=$WORK/results
: >"$RESULTS"

if [[ "$DO_TPS" != 0 ]]; then
    # Every key exists before the timed runs (untimed; no txids), so that all
    # runs update rows of tables of the same size, whatever their order.
    say "bench/notify: preloading $KEYS keys into each of the $(( CLIENTS + 1 )) collections (untimed)"
    psql_db -At -v ON_ERROR_STOP=1 >/dev/null <<EOF
SET durable_state.notify = off;
SELECT state.apply((SELECT jsonb_agg(jsonb_build_object('type', '$COLL', 'key', 'k' || g,
                                                        'value', jsonb_build_object('n', 0),
                                                        'headers', jsonb_build_object('operation', 'upsert')))
                      FROM generate_series(1, $KEYS) g), s)
  FROM unnest(ARRAY[$SHARED_STREAMS, $PER_CLIENT_STREAMS]) s;
EOF
    psql_db -At >/dev/null <<EOF
SELECT format('VACUUM ANALYZE %s', table_name) FROM state.collections
 WHERE stream IN ($SHARED_STREAMS, $PER_CLIENT_STREAMS) \\gexec
VACUUM ANALYZE state.log;
EOF

    coproc LISTENER { exec "$CLIENT" listen "${CHANNELS[@]}" 2>"$WORK/listener.err"; }
    BG_PIDS+=("$LISTENER_PID")
    IFS= read -r -t 15 ready <&"${LISTENER[0]}" || ready=""
    [[ $ready == ready ]] || die "the subscriber did not start: $(cat "$WORK/listener.err")"

    # tps_run LAYOUT SYNC MODE REP: one pgbench run; a line in RESULTS
    tps_run() {
        local layout=$1 sync=$2 mode=$3 rep=$4 streams pgb_stream per_client
        local rc=0 tps txns sent0 handed0 tail0 sent1 handed1 tail1 n0 e0 n1 e1 applied deadline notes covered
        if [[ $layout == shared ]]; then
            streams=$SHARED_STREAMS; pgb_stream=$STREAM; per_client=0
        else
            streams=$PER_CLIENT_STREAMS; pgb_stream=${STREAM}_c; per_client=1
        fi
        run_no=$(( run_no + 1 ))
        psql_db -c 'CHECKPOINT' >/dev/null
        read -r sent0 handed0 tail0 <<<"$(stats "$streams")"
        read -r n0 e0 <<<"$(listener_stat)"
        PGOPTIONS="-c durable_state.notify=$mode -c synchronous_commit=$sync" \
            "$PGBIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$THREADS" -T "$SECONDS_PER_RUN" \
            -D keys="$KEYS" -D stream="$pgb_stream" -D per_client="$per_client" -D type="$COLL" \
            -f "$HERE/notify_apply.sql" "$DB" >"$WORK/pgbench.out" 2>&1 || rc=$?
        tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$WORK/pgbench.out")
        txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")
        if (( rc != 0 )) || [[ -z $tps || -z $txns ]] || grep -q 'error' "$WORK/pgbench.out"; then
            ERRORS+=("pgbench, $layout, notify=$mode, synchronous_commit=$sync: $(grep -m 5 -i 'error' "$WORK/pgbench.out" || tail -n 5 "$WORK/pgbench.out")")
            say "bench/notify: run $run_no/$total_runs $layout sync=$sync notify=$mode FAILED"
            return 0
        fi
        read -r sent1 handed1 tail1 <<<"$(stats "$streams")"
        applied=$(( tail1 - tail0 ))
        # wait for the last notifications (the worker sends them after the commits)
        deadline=$(( $(date +%s) + 10 ))
        while :; do
            read -r n1 e1 <<<"$(listener_stat)"
            if [[ $mode == off ]]; then
                sleep 0.3
                read -r n1 e1 <<<"$(listener_stat)"
                break
            fi
            (( e1 - e0 >= applied )) && break
            (( $(date +%s) >= deadline )) && break
            sleep 0.05
        done
        notes=$(( n1 - n0 ))
        covered=$(( e1 - e0 ))
        echo "$layout $sync $mode $rep $tps $txns $applied $notes $covered $(( sent1 - sent0 )) $(( handed1 - handed0 ))" >>"$RESULTS"
        say "$(printf 'bench/notify: run %2d/%d %-10s sync=%-3s notify=%-6s %8.1f tps %7d txns %7d notifications covering %7d events' \
            "$run_no" "$total_runs" "$layout" "$sync" "$mode" "$tps" "$txns" "$notes" "$covered")"
        if [[ $mode == off ]]; then
            (( notes == 0 )) || ERRORS+=("$layout, notify=off, synchronous_commit=$sync run $rep: the subscriber got $notes notifications")
        else
            (( covered == applied )) || ERRORS+=("$layout, notify=$mode, synchronous_commit=$sync run $rep: notifications cover $covered events, $applied were applied")
            (( notes > 0 )) || ERRORS+=("$layout, notify=$mode, synchronous_commit=$sync run $rep: no notification at all")
        fi
        (( applied == txns )) || ERRORS+=("$layout, notify=$mode, synchronous_commit=$sync run $rep: pgbench counted $txns transactions, the stream grew by $applied events")
    }

    # Interleaved: for each synchronous_commit value and repetition, every
    # mode (in rotated order) runs with both layouts back to back (which one
    # goes first alternates), so that the shared/per-client ratio of a mode
    # compares runs seconds apart, not minutes apart on a noisy machine.
    read -r -a mode_order <<<"$MODES"
    read -r -a layout_order <<<"$LAYOUTS"
    nmodes=${#mode_order[@]}
    nlayouts=${#layout_order[@]}
    run_no=0
    total_runs=$(( REPS * nmodes * $(wc -w <<<"$SYNCS") * nlayouts ))
    for sync in $SYNCS; do
        for (( rep = 1; rep <= REPS; rep++ )); do
            for (( k = 0; k < nmodes; k++ )); do
                mode=${mode_order[$(( (k + rep - 1) % nmodes ))]}
                for (( l = 0; l < nlayouts; l++ )); do
                    tps_run "${layout_order[$(( (l + rep - 1) % nlayouts ))]}" "$sync" "$mode" "$rep"
                done
            done
        done
    done
    { echo quit 1>&"${LISTENER[1]}"; } 2>/dev/null || true
fi

LOOKUP_NOTE=""
if [[ "$DO_LATENCY" != 0 ]] && (( AWAIT_AFTER_N > 0 )); then
    rows=$(txid_rows)
    latency "await_txid after apply commit, again (state._txids: $rows rows)" \
        PGOPTIONS="-c durable_state.notify=off" -- await "$AWAIT_AFTER_N" "$STREAM" "$COLL"
    latency "await_txid called after the apply committed, again ($rows rows)" \
        PGOPTIONS="-c durable_state.notify=off" -- await-after "$AWAIT_AFTER_N" "$STREAM" "$COLL"
    # what one look-up of a txid in state._txids costs now
    lookup_ms=$(psql_db -At -c '\timing on' -c "SELECT state.txid_status('bench-no-such-txid')" 2>/dev/null \
                | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n 1)
    LOOKUP_NOTE="state.txid_status() of an unknown txid (one look-up in state._txids, $rows rows): ${lookup_ms:-?} ms"
fi
elapsed=$(( $(date +%s) - start_all ))

# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

echo
echo "durable_state notification benchmark"
echo "  durable_state $EXTVER ($SO_PATH, md5 $SO_SUM), PostgreSQL $PGVER, fsync=$FSYNC, synchronous_commit=$SCOMMIT (server default), wal_sync_method=$WALSYNC,"
echo "  shared_buffers=$SBUF, $(nproc 2>/dev/null || echo '?') CPUs; cluster: $CLUSTER; database $DB,"
echo "  streams: '$STREAM' (shared) and '${STREAM}_c0'..'${STREAM}_c$(( CLIENTS - 1 ))' (one per client);"
echo "  worker serves '$WORKER_DB'${WORKER_NOTE:+ -- NOTE: $WORKER_NOTE}"

if [[ -s $RESULTS ]]; then
    echo
    echo "Throughput: pgbench -M prepared -c $CLIENTS -j $THREADS -T $SECONDS_PER_RUN; a transaction = one state.apply() of one"
    echo "upsert event with a txid (random key of $KEYS); one subscriber LISTENs on all $(( CLIENTS + 1 )) channels throughout."
    echo "tps excludes connection time; $REPS runs per mode and layout, modes in rotated order, the layouts of a"
    echo "mode back to back (interleaved); the median is the headline,"
    echo "the best is shown.  Counts are those of the median run: notifications the subscriber received, the"
    echo "events they cover (their count members; = transactions), notifications_handed_to_worker."
    for layout in $LAYOUTS; do
      for sync in $SYNCS; do
        grep -q "^$layout $sync " "$RESULTS" || continue
        echo
        if [[ $layout == per-client ]]; then
            echo "  a stream per client, synchronous_commit = $sync"
        else
            echo "  one stream shared by all clients, synchronous_commit = $sync"
        fi
        awk -v layout="$layout" -v sync="$sync" -v modes="$MODES" '
            function median(arr, n,   i, j, t, s) {
                for (i = 1; i <= n; i++) s[i] = arr[i]
                for (i = 2; i <= n; i++) for (j = i; j > 1 && s[j-1] > s[j]; j--) { t = s[j]; s[j] = s[j-1]; s[j-1] = t }
                return (n % 2) ? s[(n+1)/2] : (s[n/2] + s[n/2+1]) / 2
            }
            $1 == layout && $2 == sync {
                m = $3; k = ++cnt[m]
                tps[m, k] = $5; txns[m, k] = $6; notes[m, k] = $8; cov[m, k] = $9; handed[m, k] = $11
            }
            END {
                printf "    %-7s %4s %11s %11s %9s %9s %13s %10s %10s %10s\n", "notify", "runs", "tps median", "tps best", "/off med", "/off best", "transactions", "notified", "covering", "handed"
                nm = split(modes, ml, " ")
                for (x = 1; x <= nm; x++) {
                    m = ml[x]; n = cnt[m]
                    if (n == 0) continue
                    for (i = 1; i <= n; i++) t[i] = tps[m, i]
                    med[m] = median(t, n); best[m] = 0
                    for (i = 1; i <= n; i++) if (tps[m, i] > best[m]) best[m] = tps[m, i]
                    bi = 1; bd = -1     # the run closest to the median
                    for (i = 1; i <= n; i++) { d = tps[m, i] - med[m]; if (d < 0) d = -d; if (bd < 0 || d < bd) { bd = d; bi = i } }
                    rn[m] = notes[m, bi]; rc[m] = cov[m, bi]; rh[m] = handed[m, bi]; rt[m] = txns[m, bi]
                }
                for (x = 1; x <= nm; x++) {
                    m = ml[x]
                    if (cnt[m] == 0) continue
                    r1 = ("off" in med && med["off"] > 0) ? sprintf("%.2f", med[m] / med["off"]) : "n/a"
                    r2 = ("off" in best && best["off"] > 0) ? sprintf("%.2f", best[m] / best["off"]) : "n/a"
                    printf "    %-7s %4d %11.1f %11.1f %9s %9s %13d %10d %10d %10d\n", m, cnt[m], med[m], best[m], r1, r2, rt[m], rn[m], rc[m], rh[m]
                }
                if ("off" in med && med["off"] > 0) {
                    if ("worker" in med)
                        printf "    worker/off = %.2f (median), %.2f (best): target >= 0.90 %s\n", med["worker"] / med["off"], best["worker"] / best["off"], (med["worker"] / med["off"] >= 0.9 ? "met" : "NOT met")
                    if ("commit" in med)
                        printf "    commit/off = %.2f (median), %.2f (best)\n", med["commit"] / med["off"], best["commit"] / best["off"]
                }
            }' "$RESULTS"
      done
    done
    if grep -q '^shared ' "$RESULTS" && grep -q '^per-client ' "$RESULTS"; then
        echo
        echo "  One stream shared by the $CLIENTS clients vs a stream per client (issue 13): median tps of the"
        echo "  shared layout / median tps of the per-client layout; in brackets the ratio within each repetition"
        echo "  (the two layouts ran back to back); target >= 0.90 for notify off and worker."
        awk -v syncs="$SYNCS" -v modes="$MODES" -v clients="$CLIENTS" '
            function median(arr, n,   i, j, t, s) {
                for (i = 1; i <= n; i++) s[i] = arr[i]
                for (i = 2; i <= n; i++) for (j = i; j > 1 && s[j-1] > s[j]; j--) { t = s[j]; s[j] = s[j-1]; s[j-1] = t }
                return (n % 2) ? s[(n+1)/2] : (s[n/2] + s[n/2+1]) / 2
            }
            { k = $1 SUBSEP $2 SUBSEP $3; n = ++cnt[k]; tps[k, n] = $5; byrep[k, $4] = $5; if ($4 > maxrep) maxrep = $4 }
            END {
                ns = split(syncs, sl, " "); nm = split(modes, ml, " ")
                for (a = 1; a <= ns; a++) for (b = 1; b <= nm; b++) {
                    s = sl[a]; m = ml[b]
                    ks = "shared" SUBSEP s SUBSEP m; kp = "per-client" SUBSEP s SUBSEP m
                    if (!cnt[ks] || !cnt[kp]) continue
                    for (i = 1; i <= cnt[ks]; i++) x[i] = tps[ks, i]
                    ms = median(x, cnt[ks])
                    for (i = 1; i <= cnt[kp]; i++) x[i] = tps[kp, i]
                    mp = median(x, cnt[kp])
                    if (mp <= 0) continue
                    reps = ""; nr = 0
                    for (r = 1; r <= maxrep; r++)
                        if (((ks, r) in byrep) && ((kp, r) in byrep) && byrep[kp, r] > 0) {
                            pr[++nr] = byrep[ks, r] / byrep[kp, r]
                            reps = reps sprintf(" %.2f", pr[nr])
                        }
                    if (nr > 1) reps = reps sprintf(", median %.2f", median(pr, nr))
                    tgt = (m == "off" || m == "worker") ? sprintf("; target >= 0.90 %s", (ms / mp >= 0.9 ? "met" : "NOT met")) : ""
                    printf "  ratio one-stream/%d-streams notify=%s sync=%s: %.2fx  (%.1f / %.1f tps; per repetition:%s%s)\n", clients, m, s, ms / mp, ms, mp, reps, tgt
                }
            }' "$RESULTS"
    fi
    echo
    echo "  every run (tps):"
    awk '{ k = $1 " sync=" $2 " notify=" $3; if (!(k in line)) { order[++n] = k; line[k] = "" } line[k] = line[k] sprintf(" %9.1f", $5) }
         END { for (i = 1; i <= n; i++) printf "    %-36s%s\n", order[i], line[order[i]] }' "$RESULTS"
fi

if (( ${#LAT_LINES[@]} )); then
    echo
    echo "Latency (ms): one client, two connections, asynchronous queries polled in one loop; t0 = the"
    echo "committing statement's result reached the client, t1 = the waiter's result / notification did;"
    echo "sample = t1 - t0 (negative: the waiter heard before the committer got its answer)."
    printf '  %-76s %7s %7s %8s %8s %8s %8s\n' "measurement" "n" "min" "p50" "p99" "max" "mean"
    for line in "${LAT_LINES[@]}"; do
        label=${line%%|*}
        res=${line#*|}
        if [[ $res == failed ]]; then
            printf '  %-76s %s\n' "$label" "FAILED"
            continue
        fi
        declare -A kv=()
        for f in $res; do kv[${f%%=*}]=${f#*=}; done
        printf '  %-76s %7s %7s %8s %8s %8s %8s\n' "$label" "${kv[n]}" "${kv[min]}" "${kv[p50]}" "${kv[p99]}" "${kv[max]}" "${kv[mean]}"
        if [[ $label == "await_txid after apply commit (state"* ]]; then
            awk -v p="${kv[p99]}" 'BEGIN { printf "    -> await_txid p99 = %s ms: target <= 2 ms %s\n", p, (p <= 2 ? "met" : "NOT met") }'
        fi
        unset kv
    done
    if [[ -n $LOOKUP_NOTE ]]; then
        echo "  $LOOKUP_NOTE"
    fi
fi

echo
echo "Total benchmark time: ${elapsed}s (plus setup)."

if (( ${#ERRORS[@]} )); then
    echo
    echo "ERRORS:"
    for e in "${ERRORS[@]}"; do
        printf '  %s\n' "${e//$'\n'/$'\n'    }"
    done
    exit 1
fi
exit 0
