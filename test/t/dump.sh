#!/usr/bin/env bash
#
# test/t/dump.sh -- pg_dump / pg_restore of a database that uses the
# extension: collections (document, generated, adopted with a version
# column, a default TTL), logs, offsets, source offsets, retention, txids,
# TTLs and versions come back, and the restored database goes on where the
# old one stopped (new streams and events, offsets continuing, old txids
# confirmed).  Plain-format dump through psql too.
#
# Runs in databases ds_dump_src / ds_dump_dst / ds_dump_sql of the test
# cluster (PGHOST/PGPORT from test/run.sh).  Prints `N passed, M failed`.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
# shellcheck source=test/lib.sh
source test/lib.sh


PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
Q() { local db=$1; shift; "${PSQL[@]}" -d "$db" "$@" </dev/null; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ds-dump.XXXXXX") || exit 1
cleanup() {
    for db in ds_dump_src ds_dump_dst ds_dump_sql; do
        Q postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
cleanup
mkdir -p "$WORK"

Q postgres -c "CREATE DATABASE ds_dump_src" >/dev/null || { not_ok "create ds_dump_src"; echo "$PASS passed, $FAIL failed"; exit 1; }
"${PSQL[@]}" -d ds_dump_src -f test/fixtures/sample_state.sql </dev/null >/dev/null || not_ok "setup"

snapshot() {  # everything that must survive, as text
    Q "$1" -c "SELECT name, type, stream, table_name::text, kind, mode, version_column, default_ttl FROM state.collections ORDER BY name" \
        -c "SELECT stream, tail, retained_from, source_offset, events_applied, retention_events FROM state.streams ORDER BY stream" \
        -c "SELECT stream, \"offset\", event FROM state.log_events ORDER BY stream, seq" \
        -c "SELECT c.type, g.key, g.value FROM state.collections c, state.get_type(c.type, c.stream) g ORDER BY 1, 2" \
        -c "SELECT * FROM state.get_versioned('account', 'acc1', 'bank')" \
        -c "SELECT type, key, expires_at > now() FROM state._expiry e ORDER BY 1, 2" \
        -c "SELECT state.txid_status('t-1') <> 'unknown', state.txid_status('t-2') <> 'unknown', state.txid_status('t-3')"
}
snapshot ds_dump_src >"$WORK/before.txt" 2>&1

# custom format, restored into a new database
if pg_dump -Fc -d ds_dump_src -f "$WORK/src.dump" 2>"$WORK/dump.err"; then
    ok "pg_dump -Fc"
else
    not_ok "pg_dump -Fc: $(head -n 5 "$WORK/dump.err")"
fi
Q postgres -c "CREATE DATABASE ds_dump_dst" >/dev/null
if pg_restore -d ds_dump_dst --exit-on-error "$WORK/src.dump" 2>"$WORK/restore.err"; then
    ok "pg_restore"
else
    not_ok "pg_restore: $(head -n 5 "$WORK/restore.err")"
fi
snapshot ds_dump_dst >"$WORK/after.txt" 2>&1
if diff -u "$WORK/before.txt" "$WORK/after.txt" >"$WORK/diff.txt"; then
    ok "collections, streams, logs, offsets, source offsets, retention, entities, versions, TTLs and txids restored ($(wc -l <"$WORK/before.txt") lines compared)"
else
    not_ok "the restored database differs: $(head -n 20 "$WORK/diff.txt")"
fi

# it goes on where the old one stopped
res=$(Q ds_dump_dst -c "SELECT last_offset FROM state.apply('{\"type\": \"doc\", \"key\": \"c\", \"value\": 3, \"headers\": {\"operation\": \"insert\", \"txid\": \"t-3\"}}', 'main')" 2>&1)
is "an apply after the restore continues the offsets (6 events before it)" "$res" "$(printf '%020d' 7)"
is "its txid confirms, as do the old ones" "$(Q ds_dump_dst -c "SELECT state.await_txid('t-3', 0) AND state.await_txid('t-1', 0)" 2>&1)" t
is "a source offset at or below the restored one is skipped" \
    "$(Q ds_dump_dst -c "SELECT skipped FROM state.apply('{\"type\": \"account\", \"key\": \"acc2\", \"value\": {\"owner\": \"bob\"}, \"headers\": {\"operation\": \"insert\"}}', 'bank', 'src-0007')" 2>&1)" 1
res=$(Q ds_dump_dst -c "SELECT state.create_collection('more', stream => 'new stream')::text" \
                   -c "SELECT applied FROM state.apply('{\"type\": \"more\", \"key\": \"m\", \"value\": 1, \"headers\": {\"operation\": \"insert\"}}', 'new stream')" \
                   -c "SELECT count(DISTINCT id) = count(*) FROM state._streams" 2>&1 | tr '\n' ' ')
is "a new stream and collection after the restore" "$res" "more 1 t "
is "versions go on" "$(Q ds_dump_dst -c "SELECT state.increment('account', 'acc1', 'balance', 1, 'bank')" -c "SELECT version FROM state.get_versioned('account', 'acc1', 'bank')" 2>&1 | tr '\n' ' ')" "16 3 "
is "dropping a restored collection's table drops the collection (event trigger)" \
    "$(Q ds_dump_dst -c "DROP TABLE tasks" -c "SELECT count(*) FROM state.collections WHERE name = 'tasks'" 2>&1)" 0

# plain format through psql
Q postgres -c "CREATE DATABASE ds_dump_sql" >/dev/null
if pg_dump -d ds_dump_src 2>"$WORK/dump.err" | psql -X -q -v ON_ERROR_STOP=1 -d ds_dump_sql >"$WORK/psql.out" 2>&1; then
    ok "pg_dump (plain) | psql"
else
    not_ok "pg_dump (plain) | psql: $(grep -m 3 ERROR "$WORK/psql.out")"
fi
snapshot ds_dump_sql >"$WORK/after_sql.txt" 2>&1
if diff -u "$WORK/before.txt" "$WORK/after_sql.txt" >"$WORK/diff.txt"; then
    ok "the plain dump restores the same"
else
    not_ok "the plain dump restores differently: $(head -n 20 "$WORK/diff.txt")"
fi
echo "$PASS passed, $FAIL failed"
((FAIL == 0))
