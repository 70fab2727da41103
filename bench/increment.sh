#!/usr/bin/env bash
# durable_state counter benchmark: state.increment(type, key, member, by) of
# 8 different counters (8 clients, each its own key) all on ONE stream,
# against 8 counters on 8 streams (a stream per client), in the same run.
#
#   bash bench/increment.sh         (about 2.5 minutes on 2 cores)
#
# pgbench, 8 clients (-c 8 -j 2), one transaction = one state.increment() of
# the client's own counter by 1 (bench/increment.sql), for each
# durable_state.notify mode of BENCH_INC_NOTIFY and synchronous_commit value
# of BENCH_INC_SYNC.  Layouts:
#   per-client  client N increments key cN on stream ib_cN (8 counters, 8 streams)
#   shared      client N increments key cN on stream ib    (8 counters, 1 stream)
#   hot         every client increments c0 on stream ib    (1 counter; not run
#               by default: the ceiling of a single hot counter)
# Runs are interleaved: per synchronous_commit value and repetition, the
# modes in rotated order, each with its layouts back to back (the first
# rotates).  The report gives the median tps per layout and, per mode and
# synchronous_commit, the ratio shared/per-client of the medians (issue 13's
# target: >= 0.80) with the ratio within each repetition.  After every run
# the counters must have grown by exactly the transactions pgbench counted
# (no increment lost), or the script fails.
#
# notify = commit is not run by default: every committing writer holds
# PostgreSQL's global NOTIFY lock through its commit, so counters on
# different streams are serialized too (BENCH_INC_NOTIFY="commit" to see it).
#
# Uses the cluster in PGHOST/PGPORT if it runs with durable_state preloaded
# (in a fresh database, dropped at the end; notify = worker then notifies
# from the writers unless durable_state.database names that database);
# otherwise starts a throwaway cluster with test/lib.sh (port DS_PORT,
# default 55500) and runs in ds_test, which its worker serves.  Does not
# build or install the extension unless BENCH_BUILD=1.
#
# Knobs (environment):
#   BENCH_INC_SECONDS=5          seconds per pgbench run
#   BENCH_INC_REPS=3             runs per layout, mode and synchronous_commit
#   BENCH_INC_NOTIFY="off worker"  durable_state.notify modes
#   BENCH_INC_SYNC="on off"      synchronous_commit values
#   BENCH_INC_LAYOUTS="per-client shared"   (also: hot)
#   BENCH_INC_CLIENTS=8          pgbench -c = counters = streams (threads: BENCH_INC_THREADS=2)
#   BENCH_BUILD=1                make && make install first (test/lib.sh)
#   DS_PORT=55500                port of the throwaway cluster
#   DS_PG_MAJOR=15               the PostgreSQL major: 15 (Debian), 17 or 18 (/opt/postgresql-N)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

SECONDS_PER_RUN=${BENCH_INC_SECONDS:-5}
REPS=${BENCH_INC_REPS:-3}
MODES=${BENCH_INC_NOTIFY:-off worker}
SYNCS=${BENCH_INC_SYNC:-on off}
LAYOUTS=${BENCH_INC_LAYOUTS:-per-client shared}
CLIENTS=${BENCH_INC_CLIENTS:-8}
THREADS=${BENCH_INC_THREADS:-2}

say() { printf '%s\n' "$*" >&2; }
die() { say "bench/increment: $*"; exit 1; }

for v in SECONDS_PER_RUN REPS CLIENTS THREADS; do
    if ! [[ "${!v}" =~ ^[0-9]+$ ]] || (( ${!v} < 1 )); then
        die "$v must be a positive integer (got '${!v}')"
    fi
done
(( THREADS <= CLIENTS )) || THREADS=$CLIENTS
[[ -n ${MODES// /} ]] || die "BENCH_INC_NOTIFY names no mode"
[[ -n ${LAYOUTS// /} ]] || die "BENCH_INC_LAYOUTS names no layout"
for m in $MODES; do
    case "$m" in off|commit|worker) ;; *) die "unknown notify mode '$m' (off, commit, worker)" ;; esac
done
for l in $LAYOUTS; do
    case "$l" in per-client|shared|hot) ;; *) die "unknown layout '$l' (per-client, shared, hot)" ;; esac
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
export PATH="$PGBIN:$PATH"

WORK=$(mktemp -d /tmp/ds_increment_bench.XXXXXX)
CLEANUPS=()
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    local i
    for (( i = ${#CLEANUPS[@]} - 1; i >= 0; i-- )); do
        eval "${CLEANUPS[$i]}" || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --------------------------------------------------------------------------
# Cluster and database
# --------------------------------------------------------------------------

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -d "${ADMIN_DB:-${PGDATABASE:-postgres}}" "$@"; }

preloaded() {
    [[ "$(psql_admin -At -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'durable_state'" 2>/dev/null)" == 1 ]] &&
        psql_admin -At -c "SHOW shared_preload_libraries" 2>/dev/null | grep -qw durable_state
}

if [[ -n "${PGHOST:-}${PGPORT:-}" ]] && psql_admin -c 'SELECT 1' >/dev/null 2>&1 && preloaded; then
    CLUSTER="existing (PGHOST=${PGHOST:-} PGPORT=${PGPORT:-})"
    ADMIN_DB=${PGDATABASE:-postgres}
    DB="ds_increment_bench_$$"
    psql_admin -c "CREATE DATABASE \"$DB\""
    CLEANUPS+=("psql -X -q -d '$ADMIN_DB' -c 'DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)' >/dev/null 2>&1")
else
    [[ -n "${PGHOST:-}${PGPORT:-}" ]] &&
        say "bench/increment: no reachable cluster with durable_state preloaded at PGHOST=${PGHOST:-} PGPORT=${PGPORT:-}; starting a throwaway one"
    unset PGHOST PGPORT PGDATABASE PGOPTIONS
    [[ -f $ROOT/test/lib.sh ]] || die "test/lib.sh is missing; point PGHOST/PGPORT to a cluster with durable_state preloaded"
    # shellcheck source=/dev/null
    source "$ROOT/test/lib.sh"
    # durable_state.database = ds_test, as the tests run
    ds_bench_throwaway 55500 || die "no throwaway cluster"
    CLEANUPS+=("ds_stop_cluster >/dev/null 2>&1")
    CLUSTER="throwaway (test/lib.sh ds_start_cluster, port $PGPORT)"
    ADMIN_DB=postgres
    DB=ds_test
fi
export PGDATABASE=$DB
psql_db() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

psql_db -c 'CREATE EXTENSION IF NOT EXISTS durable_state' >/dev/null
# Stream ib (shared) and ib_c0..ib_c<N-1> (one per client); every collection
# is a document collection of type 'counter'.  Every counter exists before
# the timed runs (untimed), so that every run updates rows.
STREAM=ib
TYPE=counter
psql_db -At >/dev/null <<EOF
SET durable_state.notify = off;
SELECT state.create_collection('ib_counters', '$TYPE', stream => '$STREAM');
SELECT state.create_collection('ib_counters_c' || i, '$TYPE', stream => '${STREAM}_c' || i)
  FROM generate_series(0, $CLIENTS - 1) i;
SELECT state.increment('$TYPE', 'c' || i, 'n', 0, '$STREAM') FROM generate_series(0, $CLIENTS - 1) i;
SELECT state.increment('$TYPE', 'c' || i, 'n', 0, '${STREAM}_c' || i) FROM generate_series(0, $CLIENTS - 1) i;
EOF
ALL_TABLES=$(psql_db -At -c "SELECT string_agg(format('SELECT value FROM %s', table_name), ' UNION ALL ')
                               FROM state.collections WHERE type = '$TYPE'")
# the sum of every counter of every layout
counter_sum() { psql_db -At -c "SELECT coalesce(sum((value->>'n')::numeric), 0) FROM ($ALL_TABLES) t"; }

WORKER_DB=$(psql_db -At -c "SHOW durable_state.database")
WORKER_NOTE=""
if [[ " $MODES " == *" worker "* ]]; then
    if [[ "$WORKER_DB" != "$DB" ]]; then
        WORKER_NOTE="the worker serves database '$WORKER_DB', not '$DB': in worker mode the writers notify themselves"
        say "bench/increment: WARNING: $WORKER_NOTE"
    else
        # a worker whose database did not exist yet retries every second
        for _ in $(seq 30); do
            [[ "$(psql_db -At -c "SELECT coalesce(worker_state, '?') FROM state.stats")" == running ]] && break
            sleep 0.5
        done
        [[ "$(psql_db -At -c "SELECT coalesce(worker_state, '?') FROM state.stats")" == running ]] \
            || die "the durable_state worker is not running"
    fi
fi

server_info=$(psql_db -At -F '|' -c "SELECT current_setting('server_version'), current_setting('fsync'), current_setting('wal_sync_method'), current_setting('shared_buffers'),
                                             (SELECT extversion FROM pg_extension WHERE extname = 'durable_state')")
IFS='|' read -r PGVER FSYNC WALSYNC SBUF EXTVER <<<"$server_info"
# which build runs: the server's library directory and the .so's checksum
# (several builds may be installed into one PostgreSQL in turn)
SO_PATH="$(psql_db -At -c "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'" 2>/dev/null || echo '?')/durable_state.so"
SO_SUM=$( { md5sum <"$SO_PATH" | cut -c1-12; } 2>/dev/null || echo '?')

# --------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------

ERRORS=()
# RESULTS lines: layout sync mode rep tps txns counted
RESULTS=$WORK/results
: >"$RESULTS"
run_no=0

# inc_run LAYOUT SYNC MODE REP: one pgbench run; a line in RESULTS
inc_run() {
    local layout=$1 sync=$2 mode=$3 rep=$4 pgb_stream=$STREAM per_client=0 hot=0 rc=0 tps txns sum0 sum1 counted
    case $layout in
        per-client) pgb_stream=${STREAM}_c; per_client=1 ;;
        hot) hot=1 ;;
    esac
    run_no=$(( run_no + 1 ))
    psql_db -c 'CHECKPOINT' >/dev/null
    sum0=$(counter_sum)
    PGOPTIONS="-c durable_state.notify=$mode -c synchronous_commit=$sync" \
        "$PGBIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$THREADS" -T "$SECONDS_PER_RUN" \
        -D type="$TYPE" -D stream="$pgb_stream" -D per_client="$per_client" -D hot="$hot" \
        -f "$HERE/increment.sql" "$DB" >"$WORK/pgbench.out" 2>&1 || rc=$?
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$WORK/pgbench.out")
    txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")
    if (( rc != 0 )) || [[ -z $tps || -z $txns ]] || grep -q 'error' "$WORK/pgbench.out"; then
        ERRORS+=("pgbench, $layout, notify=$mode, synchronous_commit=$sync: $(grep -m 5 -i 'error' "$WORK/pgbench.out" || tail -n 5 "$WORK/pgbench.out")")
        say "bench/increment: run $run_no/$total_runs $layout sync=$sync notify=$mode FAILED"
        return 0
    fi
    sum1=$(counter_sum)
    counted=$(awk -v a="$sum0" -v b="$sum1" 'BEGIN { printf "%d", b - a }')
    echo "$layout $sync $mode $rep $tps $txns $counted" >>"$RESULTS"
    say "$(printf 'bench/increment: run %2d/%d %-10s sync=%-3s notify=%-6s %8.1f tps %7d txns, counters +%d' \
        "$run_no" "$total_runs" "$layout" "$sync" "$mode" "$tps" "$txns" "$counted")"
    (( counted == txns )) || ERRORS+=("$layout, notify=$mode, synchronous_commit=$sync run $rep: pgbench counted $txns transactions, the counters grew by $counted")
}

read -r -a mode_order <<<"$MODES"
read -r -a layout_order <<<"$LAYOUTS"
nmodes=${#mode_order[@]}
nlayouts=${#layout_order[@]}
total_runs=$(( REPS * nmodes * $(wc -w <<<"$SYNCS") * nlayouts ))
start_all=$(date +%s)
for sync in $SYNCS; do
    for (( rep = 1; rep <= REPS; rep++ )); do
        for (( k = 0; k < nmodes; k++ )); do
            mode=${mode_order[$(( (k + rep - 1) % nmodes ))]}
            for (( l = 0; l < nlayouts; l++ )); do
                inc_run "${layout_order[$(( (l + rep - 1) % nlayouts ))]}" "$sync" "$mode" "$rep"
            done
        done
    done
done
elapsed=$(( $(date +%s) - start_all ))

# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

echo
echo "durable_state counters: state.increment() of $CLIENTS counters on one stream vs on $CLIENTS streams"
echo "  durable_state $EXTVER ($SO_PATH, md5 $SO_SUM), PostgreSQL $PGVER, fsync=$FSYNC, wal_sync_method=$WALSYNC, shared_buffers=$SBUF, $(nproc 2>/dev/null || echo '?') CPUs;"
echo "  cluster: $CLUSTER; database $DB; worker serves '$WORKER_DB'${WORKER_NOTE:+ -- NOTE: $WORKER_NOTE}"
echo "  pgbench -M prepared -c $CLIENTS -j $THREADS -T $SECONDS_PER_RUN; a transaction = one state.increment() by 1;"
echo "  $REPS runs per layout, mode and synchronous_commit, interleaved (the layouts of a mode back to back);"
echo "  tps excludes connection time; the median is the headline.  Layouts:"
echo "    per-client  client N increments key cN on stream ${STREAM}_cN ($CLIENTS counters, $CLIENTS streams)"
echo "    shared      client N increments key cN on stream $STREAM ($CLIENTS counters, one stream)"
echo "    hot         every client increments key c0 on stream $STREAM (one counter)"
if [[ -s $RESULTS ]]; then
    echo
    awk -v syncs="$SYNCS" -v modes="$MODES" -v layouts="$LAYOUTS" -v clients="$CLIENTS" '
        function median(arr, n,   i, j, t, s) {
            for (i = 1; i <= n; i++) s[i] = arr[i]
            for (i = 2; i <= n; i++) for (j = i; j > 1 && s[j-1] > s[j]; j--) { t = s[j]; s[j] = s[j-1]; s[j-1] = t }
            return (n % 2) ? s[(n+1)/2] : (s[n/2] + s[n/2+1]) / 2
        }
        # ratio(NAME, A, B, TARGET): median A / median B of (sync, mode), and within each repetition
        function ratio(name, a, b, target, s, m,   ka, kb, r, reps, t, nr, pr) {
            ka = a SUBSEP s SUBSEP m; kb = b SUBSEP s SUBSEP m
            if (!(ka in med) || !(kb in med) || med[kb] <= 0) return
            reps = ""; nr = 0
            for (r = 1; r <= maxrep; r++)
                if (((ka, r) in byrep) && ((kb, r) in byrep) && byrep[kb, r] > 0) {
                    pr[++nr] = byrep[ka, r] / byrep[kb, r]
                    reps = reps sprintf(" %.2f", pr[nr])
                }
            if (nr > 1) reps = reps sprintf(", median %.2f", median(pr, nr))
            t = target > 0 ? sprintf("; target >= %.2f %s", target, (med[ka] / med[kb] >= target ? "met" : "NOT met")) : ""
            printf "  ratio %s notify=%s sync=%s: %.2fx  (%.1f / %.1f tps; per repetition:%s%s)\n", name, m, s, med[ka] / med[kb], med[ka], med[kb], reps, t
        }
        { k = $1 SUBSEP $2 SUBSEP $3; n = ++cnt[k]; tps[k, n] = $5; byrep[k, $4] = $5; if ($4 > maxrep) maxrep = $4 }
        END {
            ns = split(syncs, sl, " "); nm = split(modes, ml, " "); nl = split(layouts, ll, " ")
            for (k in cnt) { for (i = 1; i <= cnt[k]; i++) x[i] = tps[k, i]; med[k] = median(x, cnt[k]) }
            printf "  %-10s %-7s %-12s %11s   %s\n", "sync", "notify", "layout", "tps median", "every run (tps)"
            for (a = 1; a <= ns; a++) for (b = 1; b <= nm; b++) for (c = 1; c <= nl; c++) {
                k = ll[c] SUBSEP sl[a] SUBSEP ml[b]
                if (!cnt[k]) continue
                runs = ""
                for (r = 1; r <= maxrep; r++) if ((k, r) in byrep) runs = runs sprintf(" %9.1f", byrep[k, r])
                printf "  %-10s %-7s %-12s %11.1f  %s\n", "sync=" sl[a], ml[b], ll[c], med[k], runs
            }
            print ""
            print "  Ratios of the median tps (issue 13: " clients " counters on one stream >= 0.80x " clients " counters on " clients " streams);"
            print "  in brackets the ratio within each repetition (the layouts ran back to back):"
            for (a = 1; a <= ns; a++) for (b = 1; b <= nm; b++) {
                ratio("one-stream/" clients "-streams increment", "shared", "per-client", (ml[b] == "commit" ? 0 : 0.8), sl[a], ml[b])
                ratio("one-counter/" clients "-streams increment", "hot", "per-client", 0, sl[a], ml[b])
            }
        }' "$RESULTS"
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
