#!/usr/bin/env bash
# durable_state as the data grows: does a cost stay flat?  The dataset is
# grown in steps (10k, 100k, 1M, ... up to SIZE entities) and at every step
# each figure is measured beside its plain-SQL equivalent, in the same run:
#
#   bash bench/scale.sh [SIZE]     (or: make bench-scale; SIZE=5M make bench-scale)
#
# SIZE: entities at the last step, 1000000 by default; 50k, 1M, 5M work.
# Per step (see bench/README.md, "Costs as the data grows"):
#   apply      state.apply of batches of typed upserts (new keys while the
#              data grows, then updates of existing keys) vs INSERT ... ON
#              CONFLICT DO UPDATE into a table of the same shape plus an
#              INSERT into a jsonb log table; interleaved per batch, each
#              batch its own transaction, commit included
#   changes    state.changes(stream, since, 1000) at the tail and from the
#              middle of the log (median of BENCH_SCALE_REPS), and the whole
#              log read in pages of 1000 (catch-up) vs the log table read by
#              primary key in pages of 1000
#   reads      COPY (SELECT * FROM state.snapshot()) / state.get_type() TO
#              '/dev/null' vs COPY (SELECT id, to_jsonb(row) ... ORDER BY id):
#              time, the backend's peak private memory (RssAnon from
#              /proc/<pid>/status, sampled every 10 ms, minus its value
#              before the statement) and temporary files written
#   WAL        bytes of WAL per event (pg_current_wal_insert_lsn difference)
#              of BENCH_SCALE_WAL_BATCHES batches of updates right after a
#              CHECKPOINT: apply without txids, apply with a headers.txid per
#              event, and the plain SQL
# At the end, once: pruning under a writer that never pauses:
# set_retention(max_events => BENCH_SCALE_RETAIN) on the grown stream, the
# log's size (state.streams.events_retained) every second against the
# bound, vs a plain log table pruned by a DELETE every second.
#
# Always runs on a throwaway cluster (test/lib.sh ds_bench_throwaway, port
# DS_PORT, default 55600): pruning needs the background worker serving the
# database, and the memory figures read /proc of the backend.  Only the
# public SQL API of durable_state is called (bench/scale.sql).
#
# Knobs (environment):
#   BENCH_SCALE_STEPS="10k 100k 1M"  the steps (default: powers of ten from 10k, then SIZE)
#   BENCH_SCALE_BATCH=1000           events per batch (fill, updates, WAL)
#   BENCH_SCALE_UPDATES=20000        update events timed per step (at most the step's size)
#   BENCH_SCALE_REPS=30              page reads per latency figure
#   BENCH_SCALE_WAL_BATCHES=10       batches per WAL figure
#   BENCH_SCALE_RETAIN=N             the pruning bound (default: SIZE/10, at least 10000)
#   BENCH_SCALE_PRUNE_SECONDS=30     seconds per pruning run (0 skips pruning)
#   BENCH_SCALE_TIMEOUT=900          statement_timeout (seconds) of every statement
#   BENCH_SCALE_VACUUM=1             VACUUM ANALYZE after each fill (0: leave it to autovacuum)
#   BENCH_BUILD=1                    make && make install first (test/lib.sh)
#   DS_PORT=55600, DS_PG_MAJOR=15, DS_PGBIN   the throwaway cluster (test/lib.sh)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

say() { printf '%s\n' "$*" >&2; }
die() { say "bench/scale: $*"; exit 1; }

# count N: 50k -> 50000, 1M -> 1000000
count() {
    [[ $1 =~ ^([0-9]+)([kKmM]?)$ ]] || return 1
    case "${BASH_REMATCH[2]}" in
        k|K) echo $(( 10#${BASH_REMATCH[1]} * 1000 )) ;;
        m|M) echo $(( 10#${BASH_REMATCH[1]} * 1000000 )) ;;
        *) echo $(( 10#${BASH_REMATCH[1]} )) ;;
    esac
}

SIZE=$(count "${1:-${SIZE:-1000000}}") || die "SIZE must be a count such as 50000, 50k, 1M (got '${1:-$SIZE}')"
BATCH=${BENCH_SCALE_BATCH:-1000}
UPDATES=${BENCH_SCALE_UPDATES:-20000}
REPS=${BENCH_SCALE_REPS:-30}
WAL_BATCHES=${BENCH_SCALE_WAL_BATCHES:-10}
PRUNE_SECONDS=${BENCH_SCALE_PRUNE_SECONDS:-30}
TIMEOUT=${BENCH_SCALE_TIMEOUT:-900}
VACUUM=${BENCH_SCALE_VACUUM:-1}
for v in BATCH UPDATES REPS WAL_BATCHES PRUNE_SECONDS TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
(( BATCH >= 1 && REPS >= 1 && WAL_BATCHES >= 1 && TIMEOUT >= 1 )) || die "BATCH, REPS, WAL_BATCHES and TIMEOUT must be at least 1"
(( SIZE >= BATCH )) || die "SIZE ($SIZE) must be at least one batch ($BATCH): updates need that many keys"

STEPS=()
if [[ -n ${BENCH_SCALE_STEPS:-} ]]; then
    for s in $BENCH_SCALE_STEPS; do
        s=$(count "$s") || die "bad step '$s' in BENCH_SCALE_STEPS"
        (( s >= BATCH )) || die "step $s is under one batch ($BATCH)"
        (( ${#STEPS[@]} == 0 || s > STEPS[-1] )) || die "BENCH_SCALE_STEPS must grow"
        STEPS+=("$s")
    done
    SIZE=${STEPS[-1]}
else
    for (( s = 10000; s < SIZE; s *= 10 )); do
        (( s >= BATCH )) && STEPS+=("$s")
    done
    STEPS+=("$SIZE")
fi
RETAIN=$(count "${BENCH_SCALE_RETAIN:-$(( SIZE / 10 > 10000 ? SIZE / 10 : 10000 ))}") || die "bad BENCH_SCALE_RETAIN"
(( RETAIN >= 1 )) || die "BENCH_SCALE_RETAIN must be at least 1"

# --------------------------------------------------------------------------
# Cleanup: background clients first, then the cluster and the work dir
# --------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/ds_scale_bench.XXXXXX)
BG_PIDS=()
STARTED=0
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${BG_PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    (( STARTED )) && ds_stop_cluster "${1:-0}" >&2
    rm -rf "$WORK"
}
trap 'cleanup $?' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ -f $ROOT/test/lib.sh ]] || die "test/lib.sh is missing"
# shellcheck source=/dev/null
source "$ROOT/test/lib.sh"
STARTED=1
ds_bench_throwaway 55600 || die "no throwaway cluster"
# every statement of the run is bounded, and every client too
export PGOPTIONS="-c statement_timeout=${TIMEOUT}s"
CLIENT_TIMEOUT=$(( TIMEOUT + 60 ))
q() { timeout -k 10 "$CLIENT_TIMEOUT" psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

q -f "$HERE/scale.sql" >/dev/null
# durable_state.notify stays at the server's default; the bench has no listener
say "bench/scale: steps ${STEPS[*]}, batches of $BATCH; PostgreSQL $(q -c 'SHOW server_version'), durable_state $(q -c "SELECT extversion FROM pg_extension WHERE extname = 'durable_state'")"

# --------------------------------------------------------------------------
# Measurements; results go to DS[step,figure] and PL[step,figure]
# --------------------------------------------------------------------------
declare -A DS PL
N_KEYS=0

# fill STEP: new keys up to STEP entities, both sides, in calls of up to 100 batches
fill() {
    local target=$1 ds=0 pl=0 ev=0 n nb r a b e
    while (( N_KEYS < target )); do
        n=$(( target - N_KEYS ))
        if (( n >= BATCH )); then
            nb=$(( n / BATCH > 100 ? 100 : n / BATCH )); r=$BATCH
        else
            nb=1; r=$n
        fi
        IFS='|' read -r a b e < <(q -c "CALL scale.run($nb, 0, $r)")
        ds=$(awk -v x="$ds" -v y="$a" 'BEGIN { print x + y }')
        pl=$(awk -v x="$pl" -v y="$b" 'BEGIN { print x + y }')
        ev=$(( ev + e ))
        N_KEYS=$(( N_KEYS + nb * r ))
        printf '\r  fill: %d / %d entities' "$N_KEYS" "$target" >&2
    done
    printf '\n' >&2
    (( ev > 0 )) || return 0
    DS[$target,fill]=$(awk -v s="$ds" -v n="$ev" 'BEGIN { printf "%.2f", s * 1e6 / n }')
    PL[$target,fill]=$(awk -v s="$pl" -v n="$ev" 'BEGIN { printf "%.2f", s * 1e6 / n }')
}

# updates STEP: timed batches of updates of existing keys
updates() {
    local step=$1 n nb a b e
    n=$(( UPDATES < step ? UPDATES : step ))
    nb=$(( n / BATCH > 0 ? n / BATCH : 1 ))
    IFS='|' read -r a b e < <(q -c "CALL scale.run($nb, $BATCH, 0)")
    DS[$step,update]=$(awk -v s="$a" -v n="$e" 'BEGIN { printf "%.2f", s * 1e6 / n }')
    PL[$step,update]=$(awk -v s="$b" -v n="$e" 'BEGIN { printf "%.2f", s * 1e6 / n }')
}

# pages STEP: changes() latency at the tail and the middle, and catch-up
pages() {
    local step=$1 fig a b ra rb e s
    while IFS='|' read -r fig a b ra rb; do
        DS[$step,$fig]=$(printf '%.3f' "$a")
        PL[$step,$fig]=$(printf '%.3f' "$b")
        (( ra == 1000 && rb == 1000 )) || say "bench/scale: a page at the $fig had $ra (changes) and $rb (plain) events, not 1000"
    done < <(q -c "SELECT * FROM scale.latency($REPS)")
    IFS='|' read -r e s < <(q -c "SELECT * FROM scale.catchup_ds()")
    DS[$step,catchup]=$(awk -v s="$s" -v n="$e" 'BEGIN { printf "%.2f", s * 1e6 / n }')
    DS[$step,log]=$e
    IFS='|' read -r e s < <(q -c "SELECT * FROM scale.catchup_plain()")
    PL[$step,catchup]=$(awk -v s="$s" -v n="$e" 'BEGIN { printf "%.2f", s * 1e6 / n }')
    PL[$step,log]=$e
    [[ ${DS[$step,log]} == "$e" ]] || say "bench/scale: the catch-up read ${DS[$step,log]} events from changes() and $e from the plain log"
}

# RSS: the RssAnon (kB) of backend $1, without a fork
rss_anon() {
    local k v _
    RSS=
    while read -r k v _; do
        if [[ $k == RssAnon: ]]; then RSS=$v; return 0; fi
    done <"/proc/$1/status"
}

# copy_mem SQL: runs SQL (a COPY ... TO '/dev/null') in a new session while
# sampling its backend's RssAnon; sets M_SECS, M_MB (peak minus the value
# before the statement), M_TEMP (MB of temporary files) and M_ROWS.
copy_mem() {
    local sql=$1 tag="ds_scale_mem_$$_$RANDOM" out=$WORK/mem.out pid='' cpid base peak t0 t1 i
    t0=$(q -c "SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()")
    PGAPPNAME=$tag timeout -k 10 "$CLIENT_TIMEOUT" psql -X -v ON_ERROR_STOP=1 \
        -c 'SELECT pg_sleep(0.5)' -c '\timing on' -c "$sql" >"$out" 2>&1 &
    cpid=$!
    BG_PIDS+=("$cpid")
    for (( i = 0; i < 200; i++ )); do
        pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$tag'")
        [[ -n $pid ]] && break
        sleep 0.02
    done
    [[ -n $pid ]] || die "could not find the backend of: $sql"
    rss_anon "$pid" 2>/dev/null || true
    base=${RSS:-0}; peak=$base
    while kill -0 "$cpid" 2>/dev/null; do
        rss_anon "$pid" 2>/dev/null || true
        [[ -n $RSS ]] && (( RSS > peak )) && peak=$RSS
        sleep 0.01
    done
    wait "$cpid" || { cat "$out" >&2; die "failed: $sql"; }
    sleep 0.3    # the backend's statistics reach pg_stat_database as it exits
    t1=$(q -c "SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()")
    M_SECS=$(awk '/^Time: / { printf "%.3f", $2 / 1000 }' "$out" | tail -n 1)
    M_ROWS=$(awk '/^COPY [0-9]+/ { print $2 }' "$out" | tail -n 1)
    M_MB=$(awk -v p="$peak" -v b="$base" 'BEGIN { printf "%.1f", (p - b) / 1024 }')
    M_TEMP=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1048576 }')
}

# reads STEP: snapshot() and get_type() vs COPY of the plain table
reads() {
    local step=$1
    copy_mem "COPY (SELECT p.id, to_jsonb(p) FROM scale.plain_items p ORDER BY p.id) TO '/dev/null'"
    (( M_ROWS == step )) || say "bench/scale: COPY of the plain table gave $M_ROWS rows, not $step"
    PL[$step,read_s]=$M_SECS; PL[$step,read_mb]=$M_MB; PL[$step,read_tmp]=$M_TEMP
    copy_mem "COPY (SELECT * FROM state.snapshot('scale')) TO '/dev/null'"
    (( M_ROWS == step + 2 )) || say "bench/scale: snapshot() gave $M_ROWS rows, not $step + 2"
    DS[$step,snap_s]=$M_SECS; DS[$step,snap_mb]=$M_MB; DS[$step,snap_tmp]=$M_TEMP
    copy_mem "COPY (SELECT * FROM state.get_type('item', 'scale')) TO '/dev/null'"
    (( M_ROWS == step )) || say "bench/scale: get_type() gave $M_ROWS rows, not $step"
    DS[$step,gt_s]=$M_SECS; DS[$step,gt_mb]=$M_MB; DS[$step,gt_tmp]=$M_TEMP
    for f in s mb tmp; do
        PL[$step,snap_$f]=${PL[$step,read_$f]}
        PL[$step,gt_$f]=${PL[$step,read_$f]}
    done
}

# wal STEP: WAL per event of batches of updates right after a CHECKPOINT,
# without txids and with a headers.txid per event, through each side (the
# plain log stores the txid in the event, unindexed).  All four update the
# same keys (one seed), so that they touch the same pages and pay the same
# full-page images, with values of the same size that differ from the
# stored ones (a salt of 6 digits per run).
wal() {
    local step=$1 w e side txid salt key seed=$(( RANDOM * 32768 + RANDOM ))
    for key in ds_none plain_none ds_txid plain_txid; do
        side=${key%%_*}
        txid=NULL salt=$(( 100000 + RANDOM ))
        [[ $key == *_txid ]] && txid="'w$step'" salt=$(( 500000 + RANDOM ))
        q -c CHECKPOINT
        IFS='|' read -r w e < <(q -c "CALL scale.wal('$side', $WAL_BATCHES, $BATCH, $txid, $seed, $salt)")
        W[$key]=$(awk -v w="$w" -v n="$e" 'BEGIN { printf "%.0f", w / n }')
    done
    DS[$step,wal]=${W[ds_none]}; PL[$step,wal]=${W[plain_none]}
    DS[$step,wal_txid]=${W[ds_txid]}; PL[$step,wal_txid]=${W[plain_txid]}
}
declare -A W

# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------
FIGS=(fill update tail middle catchup snap_s snap_mb snap_tmp gt_s gt_mb gt_tmp wal wal_txid)
declare -A LABEL=(
    [fill]="apply, new keys (us/event)"
    [update]="apply, updates of existing keys (us/event)"
    [tail]="changes(1000) at the tail (ms/page)"
    [middle]="changes(1000) from the middle (ms/page)"
    [catchup]="catch-up, whole log in pages of 1000 (us/event)"
    [snap_s]="snapshot() vs COPY (s)"
    [snap_mb]="snapshot() peak backend memory (MB)"
    [snap_tmp]="snapshot() temporary files (MB)"
    [gt_s]="get_type() vs COPY (s)"
    [gt_mb]="get_type() peak backend memory (MB)"
    [gt_tmp]="get_type() temporary files (MB)"
    [wal]="WAL after CHECKPOINT, no txid (bytes/event)"
    [wal_txid]="WAL after CHECKPOINT, txid per event (bytes/event)"
)
# ratio A B [MIN]: A/B, or "-" when B is under MIN (memory and temporary
# files: a COPY of a table grows its backend by about nothing) or missing
ratio() {
    awk -v a="$1" -v b="$2" -v m="${3:-0}" 'BEGIN { if (a == "" || b == "" || b + 0 <= 0 || b + 0 < m + 0) print "-"; else printf "%.2f", a / b }'
}
# rate US: events per second from microseconds per event
rate() { awk -v u="$1" 'BEGIN { if (u + 0 > 0) printf "%.0f", 1e6 / u; else print "-" }'; }
# min_of FIGURE: the smallest plain-SQL figure worth dividing by
min_of() { case "$1" in *_mb|*_tmp) echo 1 ;; *) echo 0 ;; esac; }
report_step() {
    local step=$1 i=$2 f
    printf '\n== %s entities (step %d of %d): log %s events; %s s into the run ==\n' \
        "$(printf "%'d" "$step")" "$i" "${#STEPS[@]}" "$(printf "%'d" "${DS[$step,log]}")" "$SECONDS"
    printf '%-52s %14s %14s %9s\n' "" "durable_state" "plain SQL" "ds/plain"
    for f in "${FIGS[@]}"; do
        [[ -n ${DS[$step,$f]:-} ]] || continue
        printf '%-52s %14s %14s %9s\n' "${LABEL[$f]}" "${DS[$step,$f]}" "${PL[$step,$f]}" "$(ratio "${DS[$step,$f]}" "${PL[$step,$f]}" "$(min_of "$f")")"
    done
    printf '  events/s, durable_state vs plain SQL: apply new keys %s vs %s, updates %s vs %s, catch-up %s vs %s\n' \
        "$(rate "${DS[$step,fill]:-}")" "$(rate "${PL[$step,fill]:-}")" "$(rate "${DS[$step,update]}")" \
        "$(rate "${PL[$step,update]}")" "$(rate "${DS[$step,catchup]}")" "$(rate "${PL[$step,catchup]}")"
    printf '  WAL with a txid per event / without: durable_state %s, plain SQL %s\n' \
        "$(ratio "${DS[$step,wal_txid]}" "${DS[$step,wal]}")" "$(ratio "${PL[$step,wal_txid]}" "${PL[$step,wal]}")"
}

# --------------------------------------------------------------------------
# The steps
# --------------------------------------------------------------------------
i=0
for step in "${STEPS[@]}"; do
    i=$(( i + 1 ))
    say "bench/scale: step $i of ${#STEPS[@]}: $step entities"
    fill "$step"
    if [[ $VACUUM == 1 ]]; then
        say "  VACUUM ANALYZE"
        q -c 'VACUUM ANALYZE'
    fi
    say "  updates"; updates "$step"
    say "  WAL"; wal "$step"
    say "  changes()"; pages "$step"
    say "  snapshot(), get_type(), COPY"; reads "$step"
    report_step "$step" "$i"
done

# --------------------------------------------------------------------------
# Pruning under a writer that never pauses (once, on the grown log)
# --------------------------------------------------------------------------
# sample_log SIDE: "retained MB" of the log of that side
sample_log() {
    if [[ $1 == ds ]]; then
        q -c "SELECT (SELECT events_retained FROM state.streams WHERE stream = 'scale'),
                     round(coalesce(pg_total_relation_size(to_regclass('state.log')), 0) / 1048576.0, 1)" | tr '|' ' '
    else
        q -c "SELECT coalesce(max(seq) - min(seq) + 1, 0),
                     round(pg_total_relation_size('scale.plain_log') / 1048576.0, 1) FROM scale.plain_log" | tr '|' ' '
    fi
}
# prune SIDE: the writer (and for plain, the pruner) for PRUNE_SECONDS,
# one sample per second into $WORK/prune_SIDE (t retained MB)
prune() {
    local side=$1 wpid ppid='' start now t0
    : >"$WORK/prune_$side"
    if [[ $side == ds ]]; then
        q -c "SELECT state.set_retention('scale', max_events => $RETAIN)" >/dev/null
    else
        timeout -k 10 "$CLIENT_TIMEOUT" psql -X -qAt -v ON_ERROR_STOP=1 \
            -c "CALL scale.plain_pruner($RETAIN, $PRUNE_SECONDS + 1)" >/dev/null &
        ppid=$!; BG_PIDS+=("$ppid")
    fi
    timeout -k 10 "$CLIENT_TIMEOUT" psql -X -qAt -v ON_ERROR_STOP=1 \
        -c "CALL scale.writer('$side', $PRUNE_SECONDS, 100)" >"$WORK/writer_$side" &
    wpid=$!; BG_PIDS+=("$wpid")
    start=$(date +%s%N)
    echo "0.0 $(sample_log "$side")" >>"$WORK/prune_$side"
    for (( t0 = 1; t0 <= PRUNE_SECONDS; t0++ )); do
        sleep "$(awk -v s="$start" -v n="$(date +%s%N)" -v t="$t0" 'BEGIN { d = t - (n - s) / 1e9; print (d > 0 ? d : 0) }')"
        now=$(date +%s%N)
        echo "$(awk -v s="$start" -v n="$now" 'BEGIN { printf "%.1f", (n - s) / 1e9 }') $(sample_log "$side")" >>"$WORK/prune_$side"
    done
    wait "$wpid" || die "the $side writer failed"
    [[ -n $ppid ]] && { wait "$ppid" || die "the plain pruner failed"; }
    echo "$(( $(cat "$WORK/writer_$side") / PRUNE_SECONDS ))" >"$WORK/rate_$side"
}
# prune_summary SIDE: retained/bound over the second half of the run
# (median and largest), beside what one second of the writer adds (pruning
# runs once a second on both sides)
prune_summary() {
    local rate
    rate=$(cat "$WORK/rate_$1")
    awk -v b="$RETAIN" -v r="$rate" '
        { t[NR] = $1; v[NR] = $2 / b }
        END {
            n = 0
            for (i = 1; i <= NR; i++) if (t[i] >= t[NR] / 2) a[++n] = v[i]
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
            printf "median %.2fx, max %.2fx (bound + 1 s of writes = %.2fx)", a[int((n + 1) / 2)], a[n], (b + r) / b
        }' "$WORK/prune_$1"
}
if (( PRUNE_SECONDS > 0 )); then
    say "bench/scale: pruning to $RETAIN events under a writer, ${PRUNE_SECONDS} s per side"
    prune ds
    prune plain
    {
        printf '\n== pruning under a writer that never pauses (batches of 100 updates), bound %s events, after the last step ==\n' "$(printf "%'d" "$RETAIN")"
        printf 'durable_state: set_retention(max_events => %s), the worker prunes; plain SQL: DELETE of the older log rows every second\n' "$RETAIN"
        printf '%8s %14s %9s %9s   %8s %14s %9s %9s\n' "s" "ds retained" "/bound" "log MB" "s" "plain rows" "/bound" "log MB"
        paste -d' ' "$WORK/prune_ds" "$WORK/prune_plain" | awk -v b="$RETAIN" '
            { printf "%8s %14d %9.2f %9s   %8s %14d %9.2f %9s\n", $1, $2, $2 / b, $3, $4, $5, $5 / b, $6 }'
        printf 'writer: durable_state %s events/s, plain SQL %s events/s\n' "$(cat "$WORK/rate_ds")" "$(cat "$WORK/rate_plain")"
        printf 'retained / bound over the second half: durable_state %s\n' "$(prune_summary ds)"
        printf '                                       plain SQL     %s\n' "$(prune_summary plain)"
    }
fi

# --------------------------------------------------------------------------
# Summary: every figure across the steps
# --------------------------------------------------------------------------
if (( ${#STEPS[@]} > 1 )); then
    {
        printf '\n== durable_state across the steps (ds/plain in brackets) ==\n'
        printf '%-52s' ""
        for step in "${STEPS[@]}"; do printf ' %18s' "$(printf "%'d" "$step")"; done
        printf '\n'
        for f in "${FIGS[@]}"; do
            printf '%-52s' "${LABEL[$f]}"
            for step in "${STEPS[@]}"; do
                printf ' %18s' "${DS[$step,$f]:--} ($(ratio "${DS[$step,$f]:-}" "${PL[$step,$f]:-}" "$(min_of "$f")"))"
            done
            printf '\n'
        done
    }
fi
printf '\nPostgreSQL %s, %s cores, fsync on, load average %s; ratios: durable_state / plain SQL, below 1 = durable_state costs less\n' \
    "$(q -c 'SHOW server_version')" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
