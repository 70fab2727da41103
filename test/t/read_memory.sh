#!/usr/bin/env bash
#
# test/t/read_memory.sh -- reads of many rows run in constant memory
# (issue 20): state.get_type and state.snapshot of 200,000 typed entities
# (and 50,000 more under an integer key, whose snapshot goes through a
# sort), streamed with COPY ... TO STDOUT, and state.get_many of 200,000
# keys, each in a backend of its own whose peak anonymous memory (RssAnon
# of /proc/<pid>/status, sampled every 10 ms) must stay under a bound: a
# per-row leak (0.5.0 kept every row's key and value to the end of the
# call: 460 MB for get_type or snapshot here, 930 MB for get_many) fails
# it.  Also checks what the reads return (counts, order, values) and notes
# the times beside a COPY of the table.
#
# Bounds (kB): DS_READ_MEM_KB (64 MB) for get_type and snapshot, whose
# memory does not grow with the rows; DS_READ_MANY_KB (160 MB) for
# get_many, whose one jsonb result (35 MB here) must be built in memory.
#
# Runs in database ds_read_memory of the test cluster (PGHOST/PGPORT from
# test/run.sh), which must be on this machine.  Prints `N passed, M failed`.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
# shellcheck source=test/lib.sh
source test/lib.sh
ds_t_need_cluster

DB=ds_read_memory
N=200000
NINT=50000
MEM_KB=${DS_READ_MEM_KB:-65536}
MANY_KB=${DS_READ_MANY_KB:-163840}
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
export PGTZ=UTC
Q() { "${PSQL[@]}" -d "$DB" "$@" </dev/null; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ds-read-memory.XXXXXX") || exit 1
cleanup() {
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 </dev/null
    rm -rf "$WORK"
}
ds_finish_on_exit
cleanup
mkdir -p "$WORK"

"${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB" </dev/null >/dev/null || exit 1
"${PSQL[@]}" -d "$DB" -v n="$N" -v nint="$NINT" >/dev/null <<'EOF' || { not_ok "setup"; exit 1; }
CREATE EXTENSION durable_state;
CREATE TABLE items (id text PRIMARY KEY, name text, qty int, price numeric,
                    active boolean, updated timestamptz);
SELECT state.create_collection('items', 'item', table_name => 'items', stream => 'mem');
INSERT INTO items
SELECT 'item-' || lpad(i::text, 8, '0'), 'name of item ' || i, i % 1000, (i % 10000) / 100.0,
       i % 2 = 0, timestamptz '2025-01-01 00:00:00+00' + i * interval '1 second'
  FROM generate_series(1, :n) i;
-- an integer key: its text order is not the index's, the snapshot sorts it
CREATE TABLE counters (id int PRIMARY KEY, n bigint);
SELECT state.create_collection('counters', 'counter', table_name => 'counters', stream => 'mem');
INSERT INTO counters SELECT i, i * 7 FROM generate_series(1, :nint) i;
VACUUM ANALYZE items, counters;
EOF
ok "loaded $N typed entities and $NINT under an integer key"

# measure NAME SQL: runs SQL in a backend of its own, output to $WORK/out;
# sets PEAK (kB of RssAnon, the most sampled) and SECS
measure() {
    local app=ds_read_memory_$$_$RANDOM pid="" v rc t0
    PEAK=0 SECS=0
    t0=$EPOCHREALTIME
    PGAPPNAME=$app "${PSQL[@]}" -d "$DB" -c 'DO $$BEGIN PERFORM pg_sleep(0.3); END$$' -c "$2" >"$WORK/out" 2>"$WORK/err" </dev/null &
    local cpid=$!
    for ((i = 0; i < 200; i++)); do
        pid=$(Q -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$app'")
        [[ -n $pid ]] && break
        sleep 0.01
    done
    while kill -0 "$cpid" 2>/dev/null; do
        v=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
        [[ -n $v ]] && ((v > PEAK)) && PEAK=$v
        sleep 0.01
    done
    wait "$cpid"
    rc=$?
    SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a - 0.3 }')
    if ((rc != 0)); then
        not_ok "$1: $(head -n 3 "$WORK/err")"
        return 1
    fi
    if [[ -z $pid ]]; then
        not_ok "$1: its backend was not found in pg_stat_activity"
        return 1
    fi
    return 0
}

# bounded NAME BOUND_KB: PEAK was under the bound
bounded() {
    if ((PEAK == 0)); then
        not_ok "$1: no memory sample (/proc of the server not readable here?)"
    elif ((PEAK < $2)); then
        ok "$1: peak $((PEAK / 1024)) MB anonymous memory (bound $(($2 / 1024)) MB), ${SECS}s"
    else
        not_ok "$1: peak $((PEAK / 1024)) MB anonymous memory, over the bound of $(($2 / 1024)) MB (${SECS}s)"
    fi
}

if measure "COPY of the table" "COPY (SELECT id, to_jsonb(i) - 'id' FROM items i ORDER BY id) TO STDOUT"; then
    note "for comparison: COPY (SELECT ... FROM items ORDER BY id) TO STDOUT: ${SECS}s, peak $((PEAK / 1024)) MB"
fi

if measure "get_type" "COPY (SELECT * FROM state.get_type('item', 'mem')) TO STDOUT"; then
    bounded "state.get_type of $N entities through COPY TO STDOUT" "$MEM_KB"
    is "get_type: every entity, in key order, values as applied" \
        "$(wc -l <"$WORK/out") $(head -n 1 "$WORK/out" | cut -f 1) $(tail -n 1 "$WORK/out")" \
        "$N item-00000001 item-00200000	{\"id\": \"item-00200000\", \"qty\": 0, \"name\": \"name of item 200000\", \"price\": 0.00000000000000000000, \"active\": true, \"updated\": \"2025-01-03T07:33:20+00:00\"}"
fi

if measure "snapshot" "COPY (SELECT * FROM state.snapshot('mem')) TO STDOUT"; then
    bounded "state.snapshot of $((N + NINT)) entities through COPY TO STDOUT" "$MEM_KB"
    is "snapshot: start, every entity, end" \
        "$(wc -l <"$WORK/out") $(head -n 1 "$WORK/out") $(tail -n 1 "$WORK/out")" \
        "$((N + NINT + 2)) {\"headers\": {\"offset\": \"00000000000000000000\", \"control\": \"snapshot-start\"}} {\"headers\": {\"offset\": \"00000000000000000000\", \"control\": \"snapshot-end\"}}"
    # types in order, keys in COLLATE "C" order of their text (1, 10, 100, ...)
    got=$(sed -n 's/^{"key": "\([^"]*\)", "type": "\([^"]*\)".*/\2 \1/p' "$WORK/out" | md5sum)
    want=$( (seq 1 "$NINT" | LC_ALL=C sort | sed 's/^/counter /'
             seq -f 'item item-%08g' 1 "$N") | md5sum)
    is "snapshot: collections by type, entities by key text (bytewise)" "$got" "$want"
fi

if measure "get_many" "SELECT concat_ws(' ', m ? 'item-00000001', m ? 'item-00200000', m ? 'item-00200001',
                                   m->'item-00123456'->>'name')
                         FROM (SELECT state.get_many('item', array(SELECT 'item-' || lpad(i::text, 8, '0')
                                                                     FROM generate_series(1, $N + 10) i),
                                                     'mem') AS m OFFSET 0) x"; then
    bounded "state.get_many of $N keys" "$MANY_KB"
    is "get_many: the keys present, with their values" "$(cat "$WORK/out")" "t t f name of item 123456"
fi
