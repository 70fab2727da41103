#!/usr/bin/env bash
#
# test/t/crash.sh -- crash safety: writers apply batches while the
# whole server is killed with SIGKILL at random moments, KILLS times
# (DS_CRASH_KILLS, default 20; `make stress` runs 100 kills of batches of
# up to 200 events, DS_CRASH_BATCH, default 50).
# The WRITERS (4) client processes all write ONE stream, on 500 shared keys,
# so they run side by side (a batch of up to 64 distinct keys locks only its
# keys; a bigger one the whole stream) and commit out of offset order.
# Batch n of writer w has a size fixed by (w, n) (1..BATCH events, one
# txid); of every ten, two are rolled back (BEGIN, apply, ROLLBACK), two
# committed after a short sleep (so a batch with lower offsets is often in
# flight when later ones commit, and the kill cuts it), the rest autocommit.
# After every restart:
#   - every batch a writer saw acknowledged (its commit returned) is in the
#     log, complete, at the offsets its apply returned; no batch is there in
#     part (each logged txid has its batch's size, at consecutive offsets);
#     nothing rolled back is there;
#   - the stream's offsets are strictly increasing: no two logged events
#     share one; state.tail is the highest; a reader that read up to the
#     tail before the round gets, from there, exactly the log above it, in
#     offset order (gaps, from rolled-back batches and batches the kill cut,
#     are allowed);
#   - writers after a restart get offsets above every committed offset: no
#     event appears later at or below the highest offset committed when the
#     previous restart was checked;
#   - the collection's table is the fold of the log (every key's row is the
#     value of its last logged event), and state.snapshot() is exact (at the
#     tail, its inserts are that fold);
#   - every txid in the log confirms at once (await_txid(t, 0)), and a
#     batch that is not in the log has no confirmation;
#   - the worker is back;
#   - exactly-once resume: a consumer that tails an external stream with
#     source_offset re-sends its last batches after the restart; those at or
#     below the recorded source offset are skipped, the rest applied, and
#     every source position is in the log exactly once.
# The kill takes the postmaster and every backend at once (SIGKILL to all
# of the cluster's processes), as a power cut would; fsync is on.
#
# Runs in its own database ds_crash of the test cluster (PGHOST/PGPORT,
# DS_DATA, DS_LOG, DS_CLUSTER_USER from test/run.sh), which it drops; leaves
# the cluster running.  Prints `ok`/`not ok` lines and `N passed, M failed`.

set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
# shellcheck source=test/lib.sh
source test/lib.sh

KILLS=${DS_CRASH_KILLS:-20}
WRITERS=4
BATCH=${DS_CRASH_BATCH:-50}
DB=ds_crash
ADMIN_DB=${PGDATABASE:-postgres}


ds_t_need_cluster

PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
P()  { "${PSQL[@]}" -d "$DB" "$@" </dev/null; }
PA() { "${PSQL[@]}" -d "$ADMIN_DB" "$@" </dev/null; }
# fds 7 and 8 (this script's stdout and stderr) are closed for pg_ctl, so
# that the postmaster it starts does not hold run.sh's pipe open
pg_owner() { ds_as_owner "$DS_PGBIN/pg_ctl" "$@" 7>&- 8>&-; }
server_up() { PA -c 'SELECT 1' >/dev/null 2>&1; }
wait_for() { ds_wait_for "$@"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ds-crash.XXXXXX") || exit 1
WPIDS=()
cleanup() {
    local p
    for p in "${WPIDS[@]}"; do kill "$p" 2>/dev/null; done
    if ! server_up; then
        pg_owner -D "$DS_DATA" status >/dev/null 2>&1 ||
            pg_owner -D "$DS_DATA" -l "$DS_LOG" -w -t 60 start >/dev/null 2>&1
        wait_for 30 server_up || echo "# WARNING: the server does not accept connections"
    fi
    PA -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    [[ -n ${SERVED_BEFORE:-} ]] &&
        PA -c "ALTER SYSTEM SET durable_state.database = '$SERVED_BEFORE'" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
    rm -rf "$WORK"
}
ds_finish_on_exit

PA -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
# the test cluster's workers serve its test database only: serve this one
# (put back at the end: the cluster's own setting is in postgresql.auto.conf,
# where ALTER SYSTEM RESET would remove it)
SERVED_BEFORE=$(PA -c "SHOW durable_state.database" 2>/dev/null)
PA -c "ALTER SYSTEM SET durable_state.database = '$DB'" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
if ! PA -c "CREATE DATABASE $DB" >/dev/null || ! "${PSQL[@]}" -d "$DB" >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION durable_state;
SELECT state.create_collection('items', 'item', stream => 'cr', mode => 'lenient');
SELECT state.create_collection('feed', 'entry', stream => 'cr_src', mode => 'lenient');
-- the size of batch w/n: 1..maxsize events
CREATE FUNCTION crash_size(w int, n int, maxsize int) RETURNS int LANGUAGE sql IMMUTABLE AS $$
    SELECT 1 + (n * 37 + w * 11) % maxsize
$$;
-- batch w/n: upserts of keys a writer shares with the others, one txid
CREATE FUNCTION crash_batch(w int, n int, maxsize int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_agg(jsonb_build_object(
               'type', 'item', 'key', 'k' || ((n * 7919 + i * 104729 + w) % 500),
               'value', jsonb_build_object('w', w, 'n', n, 'i', i, 'pad', repeat('x', 40)),
               'headers', jsonb_build_object('operation', 'upsert', 'txid', 'w' || w || '-' || n))
           ORDER BY i)
      FROM generate_series(1, crash_size(w, n, maxsize)) i
$$;
-- the external stream's entry at position n (exactly-once resume)
CREATE FUNCTION src_batch(n int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_array(jsonb_build_object('type', 'entry', 'key', 'e' || n,
               'value', jsonb_build_object('n', n), 'headers', jsonb_build_object('operation', 'insert')))
$$;
SQL
then
    not_ok "setup of database $DB"
    exit 1
fi

# writer W: batches N.. until killed; prints "off W N LAST APPLIED" (what
# apply returned) and "ack W N" after each commit.  Batch n is rolled back
# when n % 10 is 0 or 5 (crash_rolled_back below), committed after a sleep
# when it is 3 or 7, else in autocommit.
writer() {
    local w=$1 from=$2 n apply
    {
        for ((n = from; n < from + 100000; n++)); do
            apply="SELECT 'off $w $n ' || last_offset::bigint || ' ' || applied FROM state.apply(crash_batch($w, $n, $BATCH), 'cr');"
            case $((n % 10)) in
                0|5) echo "BEGIN; $apply ROLLBACK;" ;;
                3|7) echo "BEGIN; $apply SELECT pg_sleep(0.0$((n % 4 + 1))); COMMIT;"
                     echo "\\echo ack $w $n" ;;
                *)   echo "$apply"
                     echo "\\echo ack $w $n" ;;
            esac
        done
    } | "${PSQL[@]}" -d "$DB" >>"$WORK/acks.$w" 2>/dev/null
}
# the exactly-once consumer: source positions N.. with source_offset
consumer() {
    local from=$1 n
    {
        for ((n = from; n < from + 100000; n++)); do
            printf "SELECT applied, skipped FROM state.apply(src_batch(%d), 'cr_src', source_offset => '%010d');\n" "$n" "$n"
            echo "\\echo ack src $n"
        done
    } | "${PSQL[@]}" -d "$DB" >>"$WORK/acks.src" 2>/dev/null
}

# every process of the cluster, postmaster first
kill_cluster() {
    local pm kids
    pm=$(head -n 1 "$DS_DATA/postmaster.pid" 2>/dev/null)
    [[ -n $pm ]] || return 1
    kids=$(ps -o pid= --ppid "$pm" | tr '\n' ' ')
    # shellcheck disable=SC2086
    ds_as_root kill -9 "$pm" $kids 2>/dev/null
    wait_for 10 bash -c "! kill -0 $pm 2>/dev/null"
}

next_n() {  # the next batch number of writer W: past everything it ever sent
    local last
    last=$(awk -v w="$1" '$1 == "ack" && $2 == w { n = $3 } END { print n + 0 }' "$WORK/acks.$1" 2>/dev/null)
    echo $((last + 50))
}

declare -A LAST_SRC=()
src_from=1
prev_max=0 prev_count=0  # the highest committed offset after the last restart, and how many events were at or below it
crash_ok=0 crash_bad=0
for ((k = 1; k <= KILLS; k++)); do
    WPIDS=()
    for ((w = 1; w <= WRITERS; w++)); do
        writer "$w" "$( [[ -f $WORK/acks.$w ]] && next_n "$w" || echo 1)" &
        WPIDS+=($!)
    done
    consumer "$src_from" &
    WPIDS+=($!)
    # 0.2 .. 1 s of writes, then everything dies at once
    sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.2 + (r % 800) / 1000 }')"
    if ! kill_cluster; then
        not_ok "kill $k: could not find the postmaster"
        break
    fi
    for p in "${WPIDS[@]}"; do wait "$p" 2>/dev/null; done
    WPIDS=()
    if ! pg_owner -D "$DS_DATA" -l "$DS_LOG" -w -t 120 start >/dev/null 2>&1 || ! wait_for 30 server_up; then
        not_ok "kill $k: the server came back"
        break
    fi

    # --- checks after this restart (one line per kind of check at the end) ---
    errs=()
    acked=$(cat "$WORK"/acks.[0-9]* 2>/dev/null | awk '$1 == "ack" { printf "w%s-%s\n", $2, $3 }' | sort -u)
    # what apply returned to each acknowledged batch: txid|last offset|applied
    ackoff=$(cat "$WORK"/acks.[0-9]* 2>/dev/null | awk '
        $1 == "off" { o["w" $2 "-" $3] = $4 "|" $5 }
        $1 == "ack" { a["w" $2 "-" $3] = 1 }
        END { for (t in a) print t "|" ((t in o) ? o[t] : "none|none") }' | sort)
    # per logged txid: count, span of its offsets, highest offset, whether
    # the count is its batch's size, whether its batch was rolled back
    logged=$(P -c "SELECT t, count(*), max(seq) - min(seq) + 1, max(seq),
                          count(*) = crash_size(split_part(substr(t, 2), '-', 1)::int, split_part(t, '-', 2)::int, $BATCH),
                          split_part(t, '-', 2)::int % 5 = 0
                     FROM (SELECT event->'headers'->>'txid' AS t, seq FROM state.log_events WHERE stream = 'cr') x
                    GROUP BY t" 2>&1) || errs+=("log query: $logged")
    # complete batches only, each at consecutive offsets
    bad=$(awk -F'|' '$5 != "t" || $3 != $2' <<<"$logged" | head -n 3)
    [[ -z $bad ]] || errs+=("partial or split batches: $bad")
    # nothing rolled back
    bad=$(awk -F'|' '$6 == "t"' <<<"$logged" | head -n 3)
    [[ -z $bad ]] || errs+=("rolled-back batches in the log: $bad")
    # every acknowledged batch is there, at the offsets its apply returned
    missing=$(comm -23 <(echo "$acked") <(cut -d'|' -f1 <<<"$logged" | sort -u) | sed '/^$/d' | head -n 3)
    [[ -z $missing ]] || errs+=("acknowledged batches missing: $missing")
    bad=$(awk -F'|' 'NR == FNR { c[$1] = $2; m[$1] = $4; next }
                     ($1 in c) && ($2 != m[$1] || $3 != c[$1]) { print $1 ": apply returned last " $2 " of " $3 ", logged last " m[$1] " of " c[$1] }' \
            <(echo "$logged") <(echo "$ackoff") | head -n 3)
    [[ -z $bad ]] || errs+=("acknowledged batches not at the offsets apply returned: $bad")
    # offsets: no two events share one, the tail is the highest, and nothing
    # appeared at or below the highest offset committed before this round
    off=$(P -c "SELECT count(*), count(DISTINCT seq), coalesce(max(seq), 0), state.tail('cr')::bigint,
                       count(*) FILTER (WHERE seq <= $prev_max)
                  FROM state.log_events WHERE stream = 'cr'")
    IFS='|' read -r cnt dcnt mx tl below <<<"$off"
    [[ $cnt == "$dcnt" && $mx == "$tl" ]] || errs+=("offsets: $cnt events at $dcnt distinct offsets, max $mx, tail $tl")
    [[ $below == "$prev_count" ]] ||
        errs+=("$((below - prev_count)) events appeared at or below $prev_max, the highest offset committed before this round")
    # a reader that had read up to the tail before this round goes on from
    # there (from the start the first time) and gets exactly the log above
    # it, in offset order
    rd=$(P -c "WITH c AS (SELECT \"offset\"::bigint AS o, event #- '{headers,offset}' AS e, ord
                            FROM state.changes('cr', '$(printf %020d "$prev_max")', 100000000)
                                 WITH ORDINALITY AS c(\"offset\", event, ord)),
                    l AS (SELECT seq AS o, event AS e, row_number() OVER (ORDER BY seq) AS ord
                            FROM state.log_events WHERE stream = 'cr' AND seq > $prev_max)
               SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM l),
                      (SELECT count(*) FROM c FULL JOIN l USING (ord) WHERE c.o IS DISTINCT FROM l.o OR c.e IS DISTINCT FROM l.e)" 2>&1)
    IFS='|' read -r rdn rdl rdbad <<<"$rd"
    [[ $rdn == "$rdl" && $rdbad == 0 ]] || errs+=("changes() after $prev_max: $rd (returned|logged|differing)")
    # the table is the fold of the log
    diff=$(P -c "SELECT count(*) FROM (
                   SELECT key, value FROM state.get_type('item', 'cr')
                   EXCEPT
                   (SELECT DISTINCT ON (event->>'key') event->>'key', event->'value'
                      FROM state.log_events WHERE stream = 'cr' ORDER BY event->>'key', seq DESC)) d")
    nrows=$(P -c "SELECT (SELECT count(*) FROM items) = (SELECT count(DISTINCT event->>'key') FROM state.log_events WHERE stream = 'cr')")
    [[ $diff == 0 && $nrows == t ]] || errs+=("table vs log: $diff rows differ, same key count: $nrows")
    # state.snapshot() is exact: at the tail, its inserts are the fold of the log
    snap=$(P -c "WITH s AS MATERIALIZED (SELECT s FROM state.snapshot('cr') s),
                      e AS (SELECT (s->'headers'->>'offset')::bigint AS o FROM s WHERE s->'headers'->>'control' = 'snapshot-end'),
                      ins AS (SELECT s->>'key' AS k, s->'value' AS v FROM s WHERE s->'headers'->>'operation' = 'insert'),
                      fold AS (SELECT DISTINCT ON (event->>'key') event->>'key' AS k, event->'value' AS v
                                 FROM state.log_events WHERE stream = 'cr' AND seq <= (SELECT o FROM e)
                                ORDER BY event->>'key', seq DESC)
                 SELECT (SELECT o FROM e), (SELECT count(*) FROM ins),
                        (SELECT count(*) FROM (SELECT * FROM ins EXCEPT SELECT * FROM fold) x)
                      + (SELECT count(*) FROM (SELECT * FROM fold EXCEPT SELECT * FROM ins) x)" 2>&1)
    IFS='|' read -r snend snins sndiff <<<"$snap"
    [[ $snend == "$tl" && $sndiff == 0 ]] || errs+=("snapshot: end $snend (tail $tl), $snins inserts, $sndiff differ from the fold")
    # txids: every logged one confirms at once; a batch that is not there does not
    unconf=$(P -c "SELECT count(*) FROM (SELECT DISTINCT event->'headers'->>'txid' t FROM state.log_events
                                           WHERE stream = 'cr') x WHERE NOT state.await_txid(t, 0)")
    [[ $unconf == 0 ]] || errs+=("$unconf logged txids do not confirm")
    ghost=$(P -c "SELECT count(*) FROM (VALUES ('w1-99999'), ('w2-99999')) v(t) WHERE state.txid_status(t) <> 'unknown'")
    [[ $ghost == 0 ]] || errs+=("txids never written confirm")
    # the worker is back
    wait_for 10 bash -c "[[ \$(psql -X -At -d $DB -c 'SELECT worker_state FROM state.stats' 2>/dev/null) == running ]]" ||
        errs+=("worker not running")
    # exactly-once resume: re-send from a few positions back
    rec=$(P -c "SELECT coalesce(source_offset, '0')::bigint FROM state.streams WHERE stream = 'cr_src'" 2>/dev/null)
    rec=${rec:-0}
    last_ack=$(awk '$1 == "ack" && $2 == "src" { n = $3 } END { print n + 0 }' "$WORK/acks.src" 2>/dev/null)
    ((rec >= last_ack)) || errs+=("source offset $rec behind the last acknowledged position $last_ack")
    replay_from=$((rec > 3 ? rec - 3 : 1))
    for ((n = replay_from; n <= rec + 1; n++)); do
        r=$(P -c "SELECT applied || '/' || skipped FROM state.apply(src_batch($n), 'cr_src', source_offset => '$(printf %010d $n)')" 2>&1)
        if ((n <= rec)); then want=0/1; else want=1/0; fi
        [[ $r == "$want" ]] || errs+=("resume at $n (recorded $rec): applied/skipped $r, want $want")
    done
    src_from=$((rec + 2))
    dup=$(P -c "SELECT count(*) - count(DISTINCT event->>'key'), count(*), max((event->'value'->>'n')::int)
                  FROM state.log_events WHERE stream = 'cr_src'")
    IFS='|' read -r dups srccount srcmax <<<"$dup"
    [[ $dups == 0 && $srccount == "$srcmax" ]] || errs+=("source positions: $dups duplicates, $srccount events, max $srcmax")

    prev_max=$mx prev_count=$cnt
    gaps=$((mx - cnt))
    rolled=$(cat "$WORK"/acks.[0-9]* 2>/dev/null | awk '$1 == "off" && $3 % 5 == 0' | wc -l)
    if ((${#errs[@]} == 0)); then
        crash_ok=$((crash_ok + 1))
        ok "kill $k: $cnt events ($(wc -l <<<"$acked") batches acknowledged, $rolled rolled back; $gaps offsets below the tail are gaps), source at $rec: consistent"
    else
        crash_bad=$((crash_bad + 1))
        not_ok "kill $k: ${errs[*]}"
    fi
done

is "the server was killed and restarted $KILLS times, consistent every time" "$crash_ok" "$KILLS"
total=$(P -c "SELECT count(*) FROM state.log_events WHERE stream = 'cr'")
srcn=$(P -c "SELECT count(*) FROM state.log_events WHERE stream = 'cr_src'")
batches=$(P -c "SELECT count(DISTINCT event->'headers'->>'txid') FROM state.log_events WHERE stream = 'cr'")
note "$total events in $batches batches and $srcn source positions survived $KILLS kills"
is "the $WRITERS writers of one stream ran side by side (state._write_mode())" "$(P -c 'SELECT state._write_mode()')" concurrent
((total > 0 && srcn > 0))
if (($? == 0)); then ok "writes went through between the kills"; else not_ok "writes went through between the kills"; fi
