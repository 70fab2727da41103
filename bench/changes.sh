#!/usr/bin/env bash
# durable_state log benchmark (issue 20, items 2 and 3): reading the log
# with state.changes() against reading a plain table of the same events by
# its primary key, at a small and a large log, and what pruning under load
# costs a writer's batches.
#
#   bash bench/changes.sh        (make bench-changes; about 8 minutes on 2
#                                 cores with the default 5M events, most of
#                                 it loading them)
#
# Setup, in a throwaway cluster (test/lib.sh, port DS_PORT, default 55520):
# streams cs (BENCH_CHANGES_SMALL events, default 10000) and cb
# (BENCH_CHANGES_LARGE, default 5000000), applied in batches of 1000
# document upserts; tables plain_cs and plain_cb (seq bigint primary key,
# event jsonb) hold the same events as changes() returns them, ANALYZEd;
# state.log is left as it is (no ANALYZE: changes() must not need it).
#
# Measures, each run BENCH_CHANGES_REPS times (default 3) interleaved
# (changes, plain, changes, plain...), medians reported:
#   catch-up   the whole large log in pages of 1000: changes(since => last
#              offset of the page before, 1000) against SELECT ... FROM
#              plain_cb WHERE seq > last ORDER BY seq LIMIT 1000, in one
#              plpgsql loop each; every page's events are turned into text
#              (as a client receives them).  Events per second, and the
#              ratio changes / plain (issue 20's target: >= 0.5).
#   latency    BENCH_CHANGES_CALLS (default 200) pages of 1000 from offsets
#              around the middle of each log, ms per page, small and large;
#              ratios large / small (target: <= 1.5) and changes / plain.
#   pruning    a writer that never pauses (pgbench, one client, BENCH_CHANGES_WRITE_SECONDS
#              per run, default 8) applies batches of K keys (BENCH_CHANGES_KEYS,
#              default "20 200": 20 run side by side with other batches,
#              200 exceed durable_state.max_key_locks and lock the whole
#              stream and its row, as pruning's bookkeeping does), with no
#              retention and with set_retention(max_events => 20000);
#              batch latency median, p99 and max (ms) of each, the log's
#              largest size seen (sampled every 200 ms) with retention.
#
# Knobs: BENCH_CHANGES_SMALL, BENCH_CHANGES_LARGE, BENCH_CHANGES_REPS,
# BENCH_CHANGES_CALLS, BENCH_CHANGES_WRITE_SECONDS, BENCH_CHANGES_KEYS,
# BENCH_BUILD=1 (make && make install first), DS_PORT, DS_PGBIN,
# DS_PG_MAJOR (as test/lib.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

SMALL=${BENCH_CHANGES_SMALL:-10000}
LARGE=${BENCH_CHANGES_LARGE:-5000000}
REPS=${BENCH_CHANGES_REPS:-3}
CALLS=${BENCH_CHANGES_CALLS:-200}
WSECS=${BENCH_CHANGES_WRITE_SECONDS:-8}
KEYS=${BENCH_CHANGES_KEYS:-20 200}
MAX_EVENTS=20000

say() { printf '%s\n' "$*" >&2; }
die() { say "bench/changes: $*"; exit 1; }
for v in SMALL LARGE REPS CALLS WSECS; do
    [[ "${!v}" =~ ^[0-9]+$ ]] && (( ${!v} >= 1 )) || die "$v must be a positive integer (got '${!v}')"
done
(( SMALL >= 2000 && LARGE >= 2000 )) || die "the logs need at least 2000 events"

WORK=$(mktemp -d /tmp/ds_changes_bench.XXXXXX)
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
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=test/lib.sh
source "$ROOT/test/lib.sh"
ds_bench_throwaway 55520 || die "no throwaway cluster"
CLEANUPS+=("ds_stop_cluster >/dev/null 2>&1")
command -v pgbench >/dev/null || die "pgbench not found in $DS_PGBIN"
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

q -c 'CREATE EXTENSION IF NOT EXISTS durable_state' >/dev/null
say "bench/changes: $(q -c "SELECT 'durable_state ' || extversion FROM pg_extension WHERE extname = 'durable_state'"), $(q -c 'SHOW server_version')"

# --------------------------------------------------------------------------
# The logs and their plain tables
# --------------------------------------------------------------------------
load() {    # load STREAM EVENTS
    local t0=$SECONDS
    q <<SQL
SELECT state.create_collection('$1_docs', stream => '$1');
DO \$\$
BEGIN
    FOR b IN 0 .. ($2 - 1) / 1000 LOOP
        PERFORM state.apply((SELECT jsonb_agg(jsonb_build_object(
                    'type', '$1_docs', 'key', 'k' || g,
                    'value', jsonb_build_object('n', g, 'name', 'user ' || g, 'active', g % 2 = 0),
                    'headers', jsonb_build_object('operation', 'upsert')))
                FROM generate_series(b * 1000 + 1, least(b * 1000 + 1000, $2)) g), '$1');
        COMMIT;
    END LOOP;
END
\$\$;
CREATE TABLE plain_$1 (seq bigint PRIMARY KEY, event jsonb NOT NULL);
INSERT INTO plain_$1 SELECT "offset"::bigint, event FROM state.changes('$1', '-1', $2);
VACUUM ANALYZE plain_$1;
SQL
    say "bench/changes: $1: $2 events loaded in $((SECONDS - t0)) s"
}
load cs "$SMALL"
load cb "$LARGE"
q -c "CHECKPOINT" >/dev/null

# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------
# catch_up changes|plain STREAM: events per second reading the whole log
catch_up() {
    local page
    if [[ $1 == changes ]]; then
        page="SELECT count(*), max(c.\"offset\"), sum(length(c.event::text)) INTO n, last, b
                FROM state.changes('$2', since, 1000) c"
    else
        page="SELECT count(*), max(p.seq), sum(length(p.event::text)) INTO n, hi, b
                FROM (SELECT seq, event FROM plain_$2 WHERE seq > since::bigint ORDER BY seq LIMIT 1000) p;
              last := hi"
    fi
    q 2>&1 <<SQL | sed -n 's/.*RESULT \([0-9.]*\).*/\1/p'
DO \$\$
DECLARE since text := '00000000000000000000'; n bigint; tot bigint := 0; last text; b bigint; hi bigint;
        t0 timestamptz := clock_timestamp();
BEGIN
    LOOP
        $page;
        EXIT WHEN n = 0;
        tot := tot + n;
        since := last;
    END LOOP;
    RAISE NOTICE 'RESULT %', round(tot / extract(epoch FROM clock_timestamp() - t0));
END
\$\$;
SQL
}
# latency changes|plain STREAM EVENTS: ms per page of 1000 from around the middle
latency() {
    local page
    if [[ $1 == changes ]]; then
        page="SELECT count(*), sum(length(c.event::text)) INTO n, b
                FROM state.changes('$2', state.format_offset(s), 1000) c"
    else
        page="SELECT count(*), sum(length(p.event::text)) INTO n, b
                FROM (SELECT seq, event FROM plain_$2 WHERE seq > s ORDER BY seq LIMIT 1000) p"
    fi
    q 2>&1 <<SQL | sed -n 's/.*RESULT \([0-9.]*\).*/\1/p'
DO \$\$
DECLARE n bigint; b bigint; s bigint; t0 timestamptz := clock_timestamp();
BEGIN
    FOR i IN 1 .. $CALLS LOOP
        s := $3 / 2 - 500 + (i * 7919) % 1000;
        $page;
    END LOOP;
    RAISE NOTICE 'RESULT %', round((extract(epoch FROM clock_timestamp() - t0) * 1000 / $CALLS)::numeric, 3);
END
\$\$;
SQL
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'; }

declare -A R=()
for (( r = 1; r <= REPS; r++ )); do
    say "bench/changes: reading, repetition $r of $REPS"
    R[cu_changes]+=" $(catch_up changes cb)"
    R[cu_plain]+=" $(catch_up plain cb)"
    for s in cs cb; do
        n=$([[ $s == cs ]] && echo "$SMALL" || echo "$LARGE")
        R[lat_changes_$s]+=" $(latency changes $s "$n")"
        R[lat_plain_$s]+=" $(latency plain $s "$n")"
    done
done
declare -A M=()
for k in "${!R[@]}"; do M[$k]=$(median <<<"${R[$k]}"); done

# --------------------------------------------------------------------------
# Pruning under load
# --------------------------------------------------------------------------
# write KEYS retention(on|off) REP: pgbench for WSECS s; prints "p50 p99 max maxlog"
write() {
    local st=cw$1_$2_$3 log="$WORK/pgbench_$1_$2_$3"
    q -c "SELECT state.create_collection('${st}_docs', stream => '$st')" >/dev/null
    [[ $2 == on ]] && q -c "SELECT state.set_retention('$st', max_events => $MAX_EVENTS)" >/dev/null
    cat >"$WORK/w.sql" <<SQL
SELECT state.apply((SELECT jsonb_agg(jsonb_build_object('type', '${st}_docs', 'key', 'k' || g,
        'value', jsonb_build_object('g', g, 'pad', repeat('x', 40)),
        'headers', jsonb_build_object('operation', 'upsert'))) FROM generate_series(1, $1) g), '$st');
SQL
    ( while :; do
          q -c "SELECT events_retained FROM state.streams WHERE stream = '$st'" 2>/dev/null || true
          sleep 0.2
      done >"$WORK/size_$st" ) &
    local sampler=$!
    (cd "$WORK" && pgbench -n -f w.sql -c 1 -T "$WSECS" -l --log-prefix="$log" >/dev/null 2>&1) ||
        die "pgbench failed"
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    # per transaction: client, transaction, latency (us), ...
    cat "$log".* | awk '{print $3 / 1000}' | sort -g | awk -v maxlog="$(sort -g "$WORK/size_$st" | tail -1)" '
        {a[NR] = $1}
        END {printf "%.1f %.1f %.1f %s\n", a[int(NR * 0.5) + 1], a[int(NR * 0.99) + 1], a[NR], maxlog}'
    rm -f "$log".*
}
declare -A W=()
for (( r = 1; r <= REPS; r++ )); do
    for k in $KEYS; do
        say "bench/changes: pruning, $k keys per batch, repetition $r of $REPS"
        for ret in off on; do
            read -r p50 p99 mx maxlog < <(write "$k" "$ret" "$r")
            W[p50_${k}_$ret]+=" $p50"; W[p99_${k}_$ret]+=" $p99"; W[max_${k}_$ret]+=" $mx"
            W[log_${k}_$ret]+=" $maxlog"
        done
    done
done

# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------
cat <<EOF

durable_state log benchmark ($(nproc) cores; medians of $REPS interleaved runs)

catch-up, the whole log of $LARGE events in pages of 1000 (events/s):
  changes()           ${M[cu_changes]}   (runs:${R[cu_changes]})
  plain table by key  ${M[cu_plain]}   (runs:${R[cu_plain]})
  ratio changes/plain $(ratio "${M[cu_changes]}" "${M[cu_plain]}")   (target >= 0.5)

a page of 1000 from the middle (ms; $CALLS pages per run):
                      $SMALL events   $LARGE events   large/small
  changes()           ${M[lat_changes_cs]}   ${M[lat_changes_cb]}   $(ratio "${M[lat_changes_cb]}" "${M[lat_changes_cs]}")   (target <= 1.5)
  plain table by key  ${M[lat_plain_cs]}   ${M[lat_plain_cb]}   $(ratio "${M[lat_plain_cb]}" "${M[lat_plain_cs]}")
  changes/plain       $(ratio "${M[lat_changes_cs]}" "${M[lat_plain_cs]}")   $(ratio "${M[lat_changes_cb]}" "${M[lat_plain_cb]}")

a writer that never pauses, $WSECS s per run, batch latency in ms (median / p99 / max)
and the largest log seen (events; retention max_events => $MAX_EVENTS):
EOF
for k in $KEYS; do
    for ret in off on; do
        printf '  %3s keys, retention %-3s  %s / %s / %s   log %s\n' "$k" "$ret" \
            "$(median <<<"${W[p50_${k}_$ret]}")" "$(median <<<"${W[p99_${k}_$ret]}")" \
            "$(median <<<"${W[max_${k}_$ret]}")" "$(median <<<"${W[log_${k}_$ret]}")"
    done
done
