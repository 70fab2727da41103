#!/usr/bin/env bash
# durable_state benchmark: C apply engine vs a plpgsql materializer vs COPY.
#
#   bash bench/run.sh          (or: make bench)
#
# Uses the cluster in PGHOST/PGPORT if it is running and has durable_state
# available; otherwise starts a throwaway cluster (test/lib.sh, or its own
# initdb as an unprivileged user).  Runs in a fresh database that it drops.
#
# Knobs (environment):
#   BENCH_EVENTS=100000   events per timed batch (half updates, half new keys)
#   BENCH_PRELOAD=50000   keys loaded (untimed, same method) before each batch
#   BENCH_REPS=3          runs per method; the best is reported, median shown;
#                         ratios are taken within a repetition, median reported
#   BENCH_METHODS="apply apply_text plpgsql plpgsql_row copy"
#   BENCH_TARGETS="items docs"
#   BENCH_TXID=event      txid header: event (one per event) | batch | none
#   BENCH_MODE=lenient    collection mode for the C path (strict also works)
#   BENCH_NO_BUILD=1      do not build/install the extension before running
#   DS_PG_MAJOR=15        the PostgreSQL major: 15 (Debian), 17 or 18 (/opt/postgresql-N)
#   BENCH_KEEP_DB=1       keep the benchmark database
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

EVENTS=${BENCH_EVENTS:-100000}
PRELOAD=${BENCH_PRELOAD:-50000}
REPS=${BENCH_REPS:-3}
METHODS=${BENCH_METHODS:-apply apply_text plpgsql plpgsql_row copy}
TARGETS=${BENCH_TARGETS:-items docs}
TXID=${BENCH_TXID:-event}
MODE=${BENCH_MODE:-lenient}

if [[ -z "${PG_CONFIG:-}" ]]; then
    # DS_PG_MAJOR (default 15): Debian's 15, or 17/18 in /opt (test/pgbuild.sh)
    if [[ ${DS_PG_MAJOR:-15} != 15 ]]; then
        PG_CONFIG=/opt/postgresql-$DS_PG_MAJOR/bin/pg_config
    elif [[ -x /usr/lib/postgresql/15/bin/pg_config ]]; then
        PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
    else
        PG_CONFIG=pg_config
    fi
fi
export PG_CONFIG

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

[[ "$EVENTS" =~ ^[0-9]+$ && "$PRELOAD" =~ ^[0-9]+$ && "$REPS" =~ ^[0-9]+$ ]] \
    || die "BENCH_EVENTS, BENCH_PRELOAD and BENCH_REPS must be integers"
(( EVENTS >= 2 && REPS >= 1 )) || die "need BENCH_EVENTS >= 2 and BENCH_REPS >= 1"
(( PRELOAD >= (EVENTS + 1) / 2 )) \
    || die "BENCH_PRELOAD ($PRELOAD) must be at least half of BENCH_EVENTS ($EVENTS): half the batch updates preloaded keys"
case "$TXID" in event|batch|none) ;; *) die "BENCH_TXID must be event, batch or none" ;; esac
case "$MODE" in strict|lenient) ;; *) die "BENCH_MODE must be strict or lenient" ;; esac
for m in $METHODS; do
    case "$m" in apply|apply_text|plpgsql|plpgsql_row|copy) ;; *) die "unknown method '$m'" ;; esac
done
for t in $TARGETS; do
    case "$t" in items|docs) ;; *) die "unknown target '$t'" ;; esac
done

NEED_EXT=0
for m in $METHODS; do [[ "$m" == apply* ]] && NEED_EXT=1; done

WORK=$(mktemp -d /tmp/ds_bench.XXXXXX)
chmod 755 "$WORK"
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
trap 'exit 130' INT TERM

# --------------------------------------------------------------------------
# Cluster
# --------------------------------------------------------------------------

# psql against the maintenance database of whatever cluster PG* points to.
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -d "${BENCH_ADMIN_DB:-${PGDATABASE:-postgres}}" "$@"; }

ext_available() {
    [[ "$(psql_admin -At -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'durable_state'" 2>/dev/null)" == 1 ]]
}

build_install() {
    [[ "${BENCH_NO_BUILD:-0}" == 1 ]] && return 0
    if [[ ! -d "$ROOT/src" ]] || ! ls "$ROOT"/src/*.c >/dev/null 2>&1; then
        say "bench: no C sources in src/ yet; not building"
        return 0
    fi
    if [[ $(id -u) -ne 0 && ! -w "$("$PG_CONFIG" --pkglibdir)" ]]; then
        say "bench: not root and $("$PG_CONFIG" --pkglibdir) is not writable; using the installed extension"
        return 0
    fi
    say "bench: building and installing durable_state"
    if ! make -C "$ROOT" -s PG_CONFIG="$PG_CONFIG" >"$WORK/build.log" 2>&1 \
       || ! make -C "$ROOT" -s PG_CONFIG="$PG_CONFIG" install >>"$WORK/build.log" 2>&1; then
        tail -n 30 "$WORK/build.log" >&2
        return 1
    fi
}

# A throwaway cluster of our own, owned by an unprivileged user.
own_cluster() {
    local bindir user run=() preload=""
    bindir=$("$PG_CONFIG" --bindir)
    if [[ $(id -u) -eq 0 ]]; then
        user=${BENCH_OS_USER:-postgres}
        id "$user" >/dev/null 2>&1 || die "user '$user' does not exist (set BENCH_OS_USER to an unprivileged user)"
        chown "$user" "$WORK"
        run=(runuser -u "$user" --)
    else
        user=$(id -un)
    fi
    if (( ${SO_OK:-0} )); then
        preload=durable_state
    fi
    say "bench: starting a throwaway cluster in $WORK/data (as $user)"
    "${run[@]}" "$bindir/initdb" -D "$WORK/data" -A trust -U "$user" --no-sync \
        >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
    cat >>"$WORK/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$WORK'
port = 5432
shared_preload_libraries = '$preload'
shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
EOF
    "${run[@]}" "$bindir/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w -t 60 start \
        >/dev/null || { cat "$WORK/postgres.log" >&2; die "could not start the cluster"; }
    CLEANUPS+=("${run[*]} '$bindir/pg_ctl' -D '$WORK/data' -m fast -w stop >/dev/null")
    export PGHOST=$WORK PGPORT=5432 PGUSER=$user PGDATABASE=postgres
    CLUSTER="throwaway (bench/run.sh initdb, preload='$preload')"
}

CLUSTER=""
if [[ -n "${PGHOST:-}${PGPORT:-}" ]] && psql_admin -c 'SELECT 1' >/dev/null 2>&1 \
   && { (( ! NEED_EXT )) || ext_available; }; then
    CLUSTER="existing (PGHOST=${PGHOST:-} PGPORT=${PGPORT:-})"
else
    unset PGHOST PGPORT PGDATABASE
    HAVE_LIB=0
    if [[ -f "$ROOT/test/lib.sh" ]]; then
        # shellcheck source=/dev/null
        source "$ROOT/test/lib.sh"
        HAVE_LIB=1
        PG_CONFIG=$DS_PG_CONFIG
        if [[ -n "$(ds_missing_deps | grep -v -e pgtap -e pg_prove -e node || true)" ]]; then
            ds_install_deps >&2
        fi
    fi
    command -v "$PG_CONFIG" >/dev/null 2>&1 || die "no pg_config ($PG_CONFIG); install postgresql-15 and postgresql-server-dev-15"
    BUILD_OK=1
    if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
        if (( HAVE_LIB )); then
            ds_build_install >&2 || BUILD_OK=0
        else
            build_install || BUILD_OK=0
        fi
    fi
    if (( ! BUILD_OK )); then
        (( NEED_EXT )) && die "building the extension failed (BENCH_METHODS='plpgsql copy' benches the baselines only)"
        say "bench: building the extension failed; benching the baselines only"
    fi
    SO_OK=0
    [[ $BUILD_OK == 1 && -f "$("$PG_CONFIG" --pkglibdir)/durable_state.so" ]] && SO_OK=1
    if (( HAVE_LIB && SO_OK )); then
        ds_bench_start
        CLEANUPS+=("ds_stop_cluster >/dev/null")
        CLUSTER="throwaway (test/lib.sh ds_start_cluster)"
    else
        own_cluster
    fi
fi

SERVER_LOG=""
if [[ "$CLUSTER" == *test/lib.sh* ]]; then
    SERVER_LOG=${DS_LOG:-}
elif [[ "$CLUSTER" == *"bench/run.sh initdb"* ]]; then
    SERVER_LOG=$WORK/postgres.log
fi

if (( NEED_EXT )) && ! ext_available; then
    die "the durable_state extension is not installed in this cluster (make install, or BENCH_METHODS='plpgsql copy')"
fi

# --------------------------------------------------------------------------
# Database and input data
# --------------------------------------------------------------------------

DB="ds_bench_$$_$(date +%s)"
ADMIN_DB=${PGDATABASE:-postgres}
BENCH_ADMIN_DB=$ADMIN_DB
psql_admin -c "CREATE DATABASE \"$DB\""
if [[ "${BENCH_KEEP_DB:-0}" != 1 ]]; then
    CLEANUPS+=("psql -X -q -d '$ADMIN_DB' -c 'DROP DATABASE IF EXISTS \"$DB\"' >/dev/null 2>&1")
fi
export PGDATABASE=$DB
psql_db() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

HAVE_EXT=0
if ext_available && psql_db -c 'CREATE EXTENSION durable_state' 2>"$WORK/ext.err"; then
    HAVE_EXT=1
elif (( NEED_EXT )); then
    cat "$WORK/ext.err" >&2
    die "CREATE EXTENSION durable_state failed"
fi

IS_SUPER=$(psql_db -At -c "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")

say "bench: generating input ($PRELOAD preload + $EVENTS batch events per target, untimed)"
psql_db -v events="$EVENTS" -v preload="$PRELOAD" -v txid="$TXID" -f "$HERE/setup.sql" >/dev/null

# COPY input: the same rows as the batch events, as CSV.  Server-side files
# (timed inside the server) when we are superuser, client \copy otherwise.
csv_query() {
    if [[ $1 == items ]]; then
        echo "SELECT e->'value'->>'id', e->'value'->>'name', e->'value'->>'score', e->'value'->>'active'
                FROM bench.input i, jsonb_array_elements(i.events) WITH ORDINALITY x(e, o)
               WHERE i.name = 'item_batch' ORDER BY o"
    else
        echo "SELECT e->>'key', (e->'value')::text
                FROM bench.input i, jsonb_array_elements(i.events) WITH ORDINALITY x(e, o)
               WHERE i.name = 'doc_batch' ORDER BY o"
    fi
}
COPY_MODE=""
declare -A COPY_FILE
if [[ " $METHODS " == *" copy "* ]]; then
    if [[ "$IS_SUPER" == t ]]; then
        COPY_MODE=server
        datadir=$(psql_db -At -c "SHOW data_directory")
        for t in $TARGETS; do
            COPY_FILE[$t]="$datadir/ds_bench_$$_$t.csv"
            psql_db -c "COPY ($(csv_query "$t")) TO '${COPY_FILE[$t]}' WITH (FORMAT csv)"
            CLEANUPS+=("psql -X -q -d '$DB' -c \"COPY (SELECT 1 WHERE false) TO PROGRAM 'rm -f ${COPY_FILE[$t]}'\" >/dev/null 2>&1")
        done
    else
        COPY_MODE=client
        for t in $TARGETS; do
            COPY_FILE[$t]="$WORK/$t.csv"
            psql_db -c "\\copy ($(csv_query "$t" | tr '\n' ' ')) TO '${COPY_FILE[$t]}' WITH (FORMAT csv)"
        done
    fi
fi

# Truncating state.log between runs keeps every run's log the same size.
CAN_TRUNCATE_LOG=0
if (( HAVE_EXT )) && [[ "$(psql_db -At -c "SELECT has_table_privilege('state.log', 'TRUNCATE')")" == t ]]; then
    CAN_TRUNCATE_LOG=1
fi

# --------------------------------------------------------------------------
# One run: reset, preload with the same method (untimed), timed batch, check
# --------------------------------------------------------------------------

typ_of() { [[ $1 == items ]] && echo item || echo doc; }

rep_script() {
    local method=$1 target=$2 rep=$3 typ stream tbl
    typ=$(typ_of "$target")
    echo "\\set ON_ERROR_STOP 1"
    echo "SET client_min_messages = warning;"
    case "$method" in
    apply|apply_text)
        stream="bench_${method}_${target}_${rep}"
        tbl=$([[ $target == items ]] && echo public.bench_items || echo public.docs)
        cat <<EOF
SELECT state.drop_collection(c.name, c.stream, drop_table => c.name = 'docs')
  FROM state.collections c WHERE c.name IN ('items', 'docs');
DROP TABLE IF EXISTS public.docs;
TRUNCATE public.bench_items;
EOF
        (( CAN_TRUNCATE_LOG )) && echo "TRUNCATE state.log;"
        if [[ $target == items ]]; then
            echo "SELECT state.create_collection('items', 'item', table_name => 'public.bench_items', stream => '$stream', mode => '$MODE');"
        else
            echo "SELECT state.create_collection('docs', 'doc', stream => '$stream', mode => '$MODE');"
        fi
        echo "SELECT bench.run('$method', '$target', '$stream', '${typ}_preload');"
        echo "VACUUM ANALYZE $tbl;"
        echo "VACUUM ANALYZE state.log;"
        ;;
    plpgsql|plpgsql_row)
        stream=$(( rep * 10 + $([[ $target == items ]] && echo 1 || echo 2) + $([[ $method == plpgsql_row ]] && echo 4 || echo 0) ))
        tbl=$([[ $target == items ]] && echo public.bench_items || echo public.docs_plain)
        cat <<EOF
TRUNCATE $tbl, bench.plain_log;
INSERT INTO bench.plain_streams (id) VALUES ($stream);
SELECT bench.run('$method', '$target', '$stream', '${typ}_preload');
VACUUM ANALYZE $tbl;
VACUUM ANALYZE bench.plain_log;
EOF
        ;;
    copy)
        stream=none
        tbl=$([[ $target == items ]] && echo public.bench_items || echo public.docs_plain)
        echo "TRUNCATE $tbl;"
        echo "VACUUM ANALYZE $tbl;"
        ;;
    esac
    echo "CHECKPOINT;"
    if [[ $method == copy && $COPY_MODE == client ]]; then
        cat <<EOF
SELECT clock_timestamp() AS t0 \\gset
\\copy $tbl FROM '${COPY_FILE[$target]}' WITH (FORMAT csv)
INSERT INTO bench.results (method, target, rep, events, seconds, seconds_commit)
SELECT 'copy', '$target', $rep, $EVENTS, s, s
  FROM extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) s;
EOF
    else
        cat <<EOF
SELECT clock_timestamp() AS t0 \\gset
SELECT bench.run('$method', '$target', '$stream', '${typ}_batch', '${COPY_FILE[$target]:-}', $rep);
UPDATE bench.results SET seconds_commit = extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)
 WHERE method = '$method' AND target = '$target' AND rep = $rep;
EOF
    fi
    echo "SELECT bench.verify('$method', '$target', '$stream', $rep, $PRELOAD, $EVENTS);"
    if [[ $method == apply* ]]; then
        echo "SELECT state.drop_collection('$([[ $target == items ]] && echo items || echo docs)', '$stream', drop_table => $([[ $target == docs ]] && echo true || echo false));"
    fi
}

label() {
    case "$1" in
    apply) echo "C state.apply(jsonb)" ;;
    apply_text) echo "C state.apply_text(ndjson)" ;;
    plpgsql) echo "plpgsql materializer" ;;
    plpgsql_row) echo "plpgsql, log row per event" ;;
    copy) echo "COPY FROM (empty table)" ;;
    esac
}

declare -A FAILED
ERRORS=()
start_all=$(date +%s)
# The order alternates from one repetition to the next (even repetitions run
# the targets and the methods in reverse), so that no method always runs
# first: what one run leaves behind (the 5-minute txid bucket's index parts
# used up, WAL, dirty buffers) falls on each method in turn.
reversed() { local out=() w; for w in "$@"; do out=("$w" "${out[@]}"); done; echo "${out[*]}"; }
for (( rep = 1; rep <= REPS; rep++ )); do
    rep_targets=$TARGETS rep_methods=$METHODS
    if (( rep % 2 == 0 )); then
        # shellcheck disable=SC2086  # word lists
        rep_targets=$(reversed $TARGETS) rep_methods=$(reversed $METHODS)
    fi
    for target in $rep_targets; do
        for method in $rep_methods; do
            [[ -n "${FAILED[$method/$target]:-}" ]] && continue
            rep_script "$method" "$target" "$rep" >"$WORK/rep.sql"
            if psql_db -At -f "$WORK/rep.sql" >"$WORK/rep.out" 2>"$WORK/rep.err"; then
                res=$(psql_db -At -F ' ' -c "SELECT round(seconds::numeric, 3), coalesce(note, CASE WHEN check_ok THEN 'ok' ELSE '?' END) FROM bench.results WHERE method = '$method' AND target = '$target' AND rep = $rep")
                say "bench: run $rep/$REPS  $(printf '%-5s %-28s' "$target" "$(label "$method")") ${res%% *}s  check: ${res#* }"
            else
                FAILED[$method/$target]=1
                msg=$(grep -E 'ERROR|DETAIL|HINT|CONTEXT|FATAL|server closed' "$WORK/rep.err" | head -n 8 || true)
                [[ -n "$msg" ]] || msg=$(head -n 8 "$WORK/rep.err")
                if grep -q 'server closed the connection' "$WORK/rep.err" && [[ -n "$SERVER_LOG" && -r "$SERVER_LOG" ]]; then
                    crash=$(grep -E 'terminated by signal|PANIC|TRAP:|FailedAssertion|server process .* was terminated' "$SERVER_LOG" | tail -n 4 || true)
                    [[ -n "$crash" ]] && msg+=$'\n'"server log: $crash"
                    # wait for crash recovery before the next method
                    for _ in $(seq 60); do
                        psql_db -c 'SELECT 1' >/dev/null 2>&1 && break
                        sleep 1
                    done
                fi
                ERRORS+=("$target / $(label "$method") (run $rep):"$'\n'"$msg")
                say "bench: run $rep/$REPS  $target $(label "$method") FAILED:"
                say "$msg"
            fi
        done
    done
done
elapsed=$(( $(date +%s) - start_all ))

# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

server_info=$(psql_db -At -F '|' -c "SELECT current_setting('server_version'), current_setting('shared_buffers'), current_setting('synchronous_commit'), current_setting('fsync')")
IFS='|' read -r pgver sbuf scommit fsyncv <<<"$server_info"

echo
echo "durable_state benchmark"
echo "  PostgreSQL $pgver, shared_buffers=$sbuf, synchronous_commit=$scommit, fsync=$fsyncv, $(nproc 2>/dev/null || echo '?') CPUs"
echo "  cluster: $CLUSTER"
echo "  batch: $EVENTS upsert events (half updates of preloaded keys, half new keys, interleaved);"
echo "         $PRELOAD keys preloaded untimed with the same method; txid header: $TXID; C collections mode: $MODE"
echo "  timing: server-side clock_timestamp() around the apply/COPY call inside the statement (commit not included);"
echo "          best of $REPS runs, median shown; 'incl. commit' = server clock from before the statement to after its commit;"
echo "          the order of the targets and methods alternates between repetitions (reversed in even ones)"
if [[ -n "$COPY_MODE" ]]; then
    if [[ $COPY_MODE == server ]]; then
        echo "  COPY: server-side COPY FROM a CSV file of the batch's $EVENTS rows into an EMPTY table"
    else
        echo "  COPY: client \\copy (not superuser; timed around the \\copy, includes transfer and commit) into an EMPTY table"
    fi
    echo "        (COPY cannot upsert, so it is a ceiling: no preload, no conflicts, no change log)"
fi
echo "  C path: events go through state.apply/apply_text into the collection table and state.log;"
echo "          apply(jsonb) gets already-parsed jsonb, apply_text includes parsing the NDJSON"
echo "  plpgsql: loop over jsonb_array_elements doing INSERT ... ON CONFLICT DO UPDATE per event,"
echo "           then one INSERT ... SELECT of all events into a log table shaped like state.log"
echo "  plpgsql, log row per event: the same loop with the log INSERT inside it (the issue's baseline)"
echo

psql_db -P footer=off <<'EOF'
WITH m(method, ord, label) AS (
    VALUES ('apply', 1, 'C state.apply(jsonb)'),
           ('apply_text', 2, 'C state.apply_text(ndjson)'),
           ('plpgsql', 3, 'plpgsql materializer'),
           ('plpgsql_row', 4, 'plpgsql, log row per event'),
           ('copy', 5, 'COPY FROM (empty table)')
), a AS (
    SELECT target, method, max(events) AS events, count(*) AS runs,
           min(seconds) AS best,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median,
           min(seconds_commit) AS best_commit,
           bool_and(coalesce(check_ok, true)) AS ok,
           string_agg(DISTINCT note, '; ') AS notes
      FROM bench.results GROUP BY target, method
)
SELECT CASE a.target WHEN 'items' THEN 'typed (bench_items)' ELSE 'document (docs)' END AS target,
       m.label AS method,
       a.events,
       a.runs,
       round(a.best::numeric, 3) AS "seconds (best)",
       round(a.median::numeric, 3) AS "seconds (median)",
       round(a.events / a.best) AS "events/s",
       round(a.best_commit::numeric, 3) AS "s incl. commit (best)",
       CASE WHEN a.ok THEN 'ok' ELSE 'FAILED: ' || a.notes END AS check
  FROM a JOIN m USING (method)
 ORDER BY a.target DESC, m.ord;
EOF

echo "Ratios (throughput of the C path divided by the other method's; > 1 means the C path is faster),"
echo "each taken within one repetition (the runs next to each other), then the median over the repetitions;"
echo "'same, by CPU time' divides the backend's CPU time (/proc/self/stat) instead of the clock's, leaving out"
echo "the time it waited for a CPU (on a shared machine most of the noise); n/a where it cannot be read:"
psql_db -P footer=off <<'EOF'
WITH r AS (
    SELECT target, method, rep, events / seconds AS eps FROM bench.results
), c(method, label) AS (
    VALUES ('apply', 'state.apply(jsonb)'), ('apply_text', 'state.apply_text(ndjson)')
), cpu AS (
    SELECT target, method, rep, nullif(cpu_seconds, 0) AS cpu FROM bench.results
), per_rep AS (
    SELECT x.target, c.method, c.label, x.rep,
           x.eps / p.eps AS vs_plpgsql, x.eps / q.eps AS vs_plpgsql_row,
           x.eps / k.eps AS vs_copy, x.eps / a.eps AS vs_apply,
           (SELECT ca.cpu / cx.cpu FROM cpu ca, cpu cx
             WHERE ca.target = x.target AND ca.rep = x.rep AND ca.method = 'apply'
               AND cx.target = x.target AND cx.rep = x.rep AND cx.method = x.method) AS vs_apply_cpu
      FROM c
      JOIN r x ON x.method = c.method
      LEFT JOIN r p ON p.target = x.target AND p.rep = x.rep AND p.method = 'plpgsql'
      LEFT JOIN r q ON q.target = x.target AND q.rep = x.rep AND q.method = 'plpgsql_row'
      LEFT JOIN r k ON k.target = x.target AND k.rep = x.rep AND k.method = 'copy'
      LEFT JOIN r a ON a.target = x.target AND a.rep = x.rep AND a.method = 'apply'
)
SELECT CASE target WHEN 'items' THEN 'typed (bench_items)' ELSE 'document (docs)' END AS target,
       label AS "C path",
       coalesce(round(percentile_cont(0.5) WITHIN GROUP (ORDER BY vs_plpgsql)::numeric, 2)::text, 'n/a') AS "C / plpgsql",
       coalesce(round(percentile_cont(0.5) WITHIN GROUP (ORDER BY vs_plpgsql_row)::numeric, 2)::text, 'n/a') AS "C / plpgsql (log row per event)",
       coalesce(round(percentile_cont(0.5) WITHIN GROUP (ORDER BY vs_copy)::numeric, 2)::text, 'n/a') AS "C / COPY",
       CASE WHEN method = 'apply_text'
            THEN coalesce(round(percentile_cont(0.5) WITHIN GROUP (ORDER BY vs_apply)::numeric, 2)::text, 'n/a')
            ELSE '' END AS "apply_text / apply",
       CASE WHEN method = 'apply_text'
            THEN coalesce(round(percentile_cont(0.5) WITHIN GROUP (ORDER BY vs_apply_cpu)::numeric, 2)::text, 'n/a')
            ELSE '' END AS "same, by CPU time",
       string_agg(rep || ': ' || coalesce(round(vs_copy::numeric, 2)::text, '-') ||
                  CASE WHEN method = 'apply_text'
                       THEN ' / ' || coalesce(round(vs_apply::numeric, 2)::text, '-') ||
                            coalesce(' (' || round(vs_apply_cpu::numeric, 2) || ')', '') ELSE '' END,
                  ', ' ORDER BY rep) AS "per repetition: / COPY (/ apply (by CPU))"
  FROM per_rep
 GROUP BY target, method, label
 ORDER BY target DESC, method;
EOF

echo "Total benchmark time: ${elapsed}s (plus setup)."

# What JSON Schema checks cost (bench/schema.sql), unless BENCH_SCHEMA=0.
if (( HAVE_EXT )) && [[ "${BENCH_SCHEMA:-1}" != 0 ]]; then
    if ! psql_db -f "$ROOT/bench/schema.sql" 2>"$WORK/schema.err"; then
        ERRORS+=("schema bench:"$'\n'"$(head -n 8 "$WORK/schema.err")")
    fi
fi

if (( ${#ERRORS[@]} )); then
    echo
    echo "ERRORS:"
    for e in "${ERRORS[@]}"; do
        printf '  %s\n' "${e//$'\n'/$'\n'    }"
    done
    exit 1
fi
bad=$(psql_db -At -c "SELECT count(*) FROM bench.results WHERE check_ok IS FALSE")
if (( bad > 0 )); then
    echo
    echo "CHECK FAILED: $bad run(s) left the tables in an unexpected state (see the check column)."
    exit 1
fi
exit 0
