#!/usr/bin/env bash
#
# test/t/pg_upgrade.sh -- pg_upgrade from a PostgreSQL 15 cluster that uses
# the extension to a cluster of the major under test (DS_PG_MAJOR: 17 or 18;
# test/run.sh runs it on 18): collections (document, generated, adopted with
# a version column, a default TTL), logs, offsets, source offsets, retention,
# entities, versions, TTLs and txids are all there afterwards, and the
# upgraded cluster goes on (offsets continue, old and new txids confirm, the
# worker runs, a new stream and collection).
#
# The 15 side is a private copy of Debian's PostgreSQL 15 with the extension
# built from this tree installed into it (make install DESTDIR=...), so the
# test does not depend on, or race with, what is installed in the shared
# /usr/lib/postgresql/15; the new side is the major under test as test/run.sh
# installed it.  Both clusters are its own, in a temp dir, run by the test
# cluster's OS user on free ports (the test cluster is not touched).  About
# a minute, most of it building the extension for 15.
#
# PostgreSQL 15.20 (Debian 12) stamps every column with a reserved attoption,
# pg_attver, which servers that do not know it (18.6) refuse, so pg_upgrade
# fails on any table at all; the test takes the stamps off in the old
# cluster first when the new server does not know them, and says so.
#
# Prints `ok - ...` / `not ok - ...` and finally `N passed, M failed`.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
# shellcheck source=test/lib.sh
source test/lib.sh

OLD_MAJOR=15
NEW_BIN=$DS_PGBIN
DB=ds_upgrade
export PGCLIENTENCODING=UTF8
DS_CLUSTER_USER=${DS_CLUSTER_USER:-$(id -un)}
if ((EUID == 0)) && [[ $DS_CLUSTER_USER == root ]]; then
    DS_CLUSTER_USER=dstest
fi

WORK=$(mktemp -d /tmp/ds-pgupgrade.XXXXXX) || exit 1
chmod 755 "$WORK"
OLD_ROOT=$WORK/pg$OLD_MAJOR
OLD_BIN=$OLD_ROOT$(ds_pg_prefix "$OLD_MAJOR")/bin

# pg_ctl as the clusters' owner; fds 7 and 8 closed (see ds_finish_on_exit)
pg_owner() { local bin=$1; shift; ds_as_owner "$bin/pg_ctl" "$@" 7>&- 8>&-; }
cleanup() {
    local d
    for d in old new; do
        if [[ -f $WORK/$d/postmaster.pid ]]; then
            pg_owner "$([[ $d == old ]] && echo "$OLD_BIN" || echo "$NEW_BIN")" \
                -D "$WORK/$d" -m immediate -w -t 30 stop >/dev/null 2>&1
        fi
    done
    rm -rf "$WORK"
}
ds_finish_on_exit

if [[ $DS_PG_MAJOR == "$OLD_MAJOR" ]]; then
    not_ok "DS_PG_MAJOR is $OLD_MAJOR: nothing to upgrade to"
    exit 1
fi
want=$(awk -F"'" '/^default_version/ { print $2 }' durable_state.control)
got=$(awk -F"'" '/^default_version/ { print $2 }' "$("$NEW_BIN/pg_config" --sharedir)/extension/durable_state.control" 2>/dev/null)
if [[ $got != "$want" || ! -x $NEW_BIN/pg_upgrade ]]; then
    not_ok "durable_state $want is not installed for $("$NEW_BIN/postgres" -V) (bash test/run.sh installs it)"
    exit 1
fi

# --- PostgreSQL 15 with this tree's extension, in $OLD_ROOT ----------------------
old_pg_config=$(ds_pg_prefix "$OLD_MAJOR")/bin/pg_config
start_s=$SECONDS
{
    mkdir -p "$OLD_ROOT/usr/lib/postgresql" "$OLD_ROOT/usr/share/postgresql" "$WORK/src" &&
    cp -a "$("$old_pg_config" --bindir)/.." "$OLD_ROOT$(ds_pg_prefix "$OLD_MAJOR")" &&
    cp -a "$("$old_pg_config" --sharedir)" "$OLD_ROOT$("$old_pg_config" --sharedir)" &&
    rm -f "$OLD_ROOT$("$old_pg_config" --sharedir)"/extension/durable_state* \
          "$OLD_ROOT$("$old_pg_config" --pkglibdir)"/durable_state.so &&
    tar --exclude=./.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' --exclude=./.ds-built-for \
        --exclude=node_modules --exclude=./clients --exclude=./results --exclude=./output_iso -cf - . | tar -C "$WORK/src" -xf - &&
    make -C "$WORK/src" -j"$(nproc 2>/dev/null || echo 2)" PG_CONFIG="$old_pg_config" &&
    make -C "$WORK/src" install PG_CONFIG="$old_pg_config" DESTDIR="$OLD_ROOT"
} >"$WORK/build15.log" 2>&1
if (($? == 0)) && [[ -x $OLD_BIN/postgres ]]; then
    ok "PostgreSQL $OLD_MAJOR with this tree's durable_state $want in a private copy ($((SECONDS - start_s))s)"
else
    not_ok "PostgreSQL $OLD_MAJOR with this tree's durable_state: $(tail -n 10 "$WORK/build15.log")"
    exit 1
fi
[[ $DS_CLUSTER_USER != "$(id -un)" ]] && chown "$DS_CLUSTER_USER:" "$WORK"

free_port() {
    local p=$1
    while ds_port_in_use "$p"; do p=$((p + 1)); done
    echo "$p"
}
OLD_PORT=$(free_port 55432)
NEW_PORT=$(free_port $((OLD_PORT + 1)))

# cluster NAME BIN PORT: initdb as the test clusters are made (test/lib.sh),
# with the extension preloaded and its worker in $DB
cluster() {
    local dir=$WORK/$1 bin=$2 port=$3 opts=()
    # PG18 turns data checksums on by default; pg_upgrade needs them alike
    [[ $("$bin/initdb" --help) == *--no-data-checksums* ]] && opts+=(--no-data-checksums)
    ds_as_owner "$bin/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 \
        --locale=C.UTF-8 --no-sync "${opts[@]}" >"$WORK/initdb-$1.log" 2>&1 || return 1
    ds_as_owner tee -a "$dir/postgresql.conf" >/dev/null <<EOF
listen_addresses = ''
port = $port
unix_socket_directories = '$WORK'
shared_preload_libraries = 'durable_state'
durable_state.database = '$DB'
log_min_messages = warning
EOF
}
start() { pg_owner "$2" -D "$WORK/$1" -l "$WORK/$1.log" -w -t 60 start >/dev/null; }
stop()  { pg_owner "$2" -D "$WORK/$1" -m fast -w -t 60 stop >/dev/null; }
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1 -h "$WORK" -U postgres)
Q() { local port=$1; shift; "$OLD_BIN/psql" "${PSQL[@]}" -p "$port" -d "$DB" "$@" </dev/null; }

# --- the 15 cluster, with data ------------------------------------------------
if cluster old "$OLD_BIN" "$OLD_PORT" && start old "$OLD_BIN"; then
    ok "PostgreSQL $OLD_MAJOR cluster started"
else
    not_ok "PostgreSQL $OLD_MAJOR cluster: $(tail -n 5 "$WORK/initdb-old.log" "$WORK/old.log" 2>/dev/null)"
    exit 1
fi
"$OLD_BIN/psql" "${PSQL[@]}" -p "$OLD_PORT" -d postgres -c "CREATE DATABASE $DB" </dev/null >/dev/null
"$OLD_BIN/psql" "${PSQL[@]}" -p "$OLD_PORT" -d "$DB" -f test/fixtures/sample_state.sql </dev/null >"$WORK/setup.out" 2>&1
check "collections, events, txids and TTLs in the $OLD_MAJOR cluster" $? "$(grep -m 3 ERROR "$WORK/setup.out")"
is "txids confirm before the upgrade" "$(Q "$OLD_PORT" -c "SELECT state.await_txid('t-1', 5000) AND state.await_txid('t-2', 5000)" 2>&1)" t

snapshot() {  # everything that must survive, as text
    Q "$1" -c "SELECT extversion FROM pg_extension WHERE extname = 'durable_state'" \
        -c "SELECT name, type, stream, table_name::text, kind, mode, version_column, default_ttl FROM state.collections ORDER BY name" \
        -c "SELECT stream, tail, retained_from, source_offset, events_applied, retention_events FROM state.streams ORDER BY stream" \
        -c "SELECT stream, \"offset\", event FROM state.log_events ORDER BY stream, seq" \
        -c "SELECT c.type, g.key, g.value FROM state.collections c, state.get_type(c.type, c.stream) g ORDER BY 1, 2" \
        -c "SELECT * FROM state.get_versioned('account', 'acc1', 'bank')" \
        -c "SELECT type, key, expires_at > now() FROM state._expiry e ORDER BY 1, 2" \
        -c "SELECT state.txid_status('t-1'), state.txid_status('t-2'), state.txid_status('t-3')"
}
snapshot "$OLD_PORT" >"$WORK/before.txt" 2>&1
if grep -q ERROR "$WORK/before.txt" || (($(wc -l <"$WORK/before.txt") < 20)); then
    not_ok "the state before the upgrade: $(head -n 5 "$WORK/before.txt")"
fi
# pg_attver (see above): off, in every database, if the new server refuses it
if ! grep -rqs pg_attver "$("$NEW_BIN/pg_config" --includedir-server)/catalog/pg_attribute.h"; then
    n=0
    for d in $("$OLD_BIN/psql" "${PSQL[@]}" -p "$OLD_PORT" -d postgres \
                   -c "SELECT datname FROM pg_database WHERE datallowconn" </dev/null); do
        c=$("$OLD_BIN/psql" "${PSQL[@]}" -p "$OLD_PORT" -d "$d" </dev/null -c "
            WITH u AS (UPDATE pg_attribute SET attoptions =
                           (SELECT array_agg(o) FROM unnest(attoptions) o WHERE o NOT LIKE 'pg_attver=%')
                       WHERE attrelid >= 16384 AND attoptions::text LIKE '%pg_attver=%' RETURNING 1)
            SELECT count(*) FROM u") || c=error
        [[ $c =~ ^[0-9]+$ ]] && n=$((n + c))
    done
    note "PostgreSQL $OLD_MAJOR's pg_attver stamps taken off $n columns: $("$NEW_BIN/postgres" -V) refuses them"
fi
stop old "$OLD_BIN" || not_ok "stopping the $OLD_MAJOR cluster"

# --- pg_upgrade -----------------------------------------------------------------
cluster new "$NEW_BIN" "$NEW_PORT" || { not_ok "initdb $DS_PG_MAJOR: $(tail -n 5 "$WORK/initdb-new.log")"; exit 1; }
# (as the owner, from $WORK: pg_upgrade writes its logs where it runs)
start_s=$SECONDS
if ds_as_owner bash -c 'cd "$1" && shift && exec "$@"' _ "$WORK" \
        "$NEW_BIN/pg_upgrade" -b "$OLD_BIN" -B "$NEW_BIN" -d "$WORK/old" -D "$WORK/new" \
        -U postgres -p "$OLD_PORT" -P "$NEW_PORT" -s "$WORK" >"$WORK/pg_upgrade.out" 2>&1 7>&- 8>&-; then
    ok "pg_upgrade $OLD_MAJOR -> $DS_PG_MAJOR ($((SECONDS - start_s))s)"
else
    not_ok "pg_upgrade $OLD_MAJOR -> $DS_PG_MAJOR: $(tail -n 15 "$WORK/pg_upgrade.out")"
    find "$WORK/new/pg_upgrade_output.d" -name '*.log' -exec grep -h -B 3 -A 3 -E 'ERROR|FATAL|error' {} + 2>/dev/null | head -n 60
    exit 1
fi
if start new "$NEW_BIN"; then
    ok "the upgraded cluster starts ($("$NEW_BIN/postgres" -V))"
else
    not_ok "the upgraded cluster does not start: $(tail -n 10 "$WORK/new.log")"
    exit 1
fi

snapshot "$NEW_PORT" >"$WORK/after.txt" 2>&1
if diff -u "$WORK/before.txt" "$WORK/after.txt" >"$WORK/diff.txt"; then
    ok "collections, streams, logs, offsets, source offsets, retention, entities, versions, TTLs and txids kept ($(wc -l <"$WORK/before.txt") lines compared)"
else
    not_ok "the upgraded cluster differs: $(head -n 30 "$WORK/diff.txt")"
fi

# --- it goes on ---------------------------------------------------------------
res=$(Q "$NEW_PORT" -c "SELECT last_offset FROM state.apply('{\"type\": \"doc\", \"key\": \"c\", \"value\": 3, \"headers\": {\"operation\": \"insert\", \"txid\": \"t-3\"}}', 'main')" 2>&1)
is "an apply after the upgrade continues the offsets (6 events before it)" "$res" "$(printf '%020d' 7)"
is "its txid confirms (the worker runs), as do the old ones" \
    "$(Q "$NEW_PORT" -c "SELECT state.await_txid('t-3', 10000, 'flushed') AND state.await_txid('t-1', 0)" 2>&1)" t
is "a source offset at or below the kept one is skipped" \
    "$(Q "$NEW_PORT" -c "SELECT skipped FROM state.apply('{\"type\": \"account\", \"key\": \"acc2\", \"value\": {\"owner\": \"bob\"}, \"headers\": {\"operation\": \"insert\"}}', 'bank', 'src-0007')" 2>&1)" 1
is "versions go on" "$(Q "$NEW_PORT" -c "SELECT state.increment('account', 'acc1', 'balance', 1, 'bank')" -c "SELECT version FROM state.get_versioned('account', 'acc1', 'bank')" 2>&1 | tr '\n' ' ')" "16 3 "
res=$(Q "$NEW_PORT" -c "SELECT state.create_collection('more', stream => 'new stream')::text" \
                    -c "SELECT applied FROM state.apply('{\"type\": \"more\", \"key\": \"m\", \"value\": 1, \"headers\": {\"operation\": \"insert\"}}', 'new stream')" \
                    -c "SELECT count(*) FROM state.changes('main', '-1')" 2>&1 | tr '\n' ' ')
is "a new stream and collection; the log reads on" "$res" "more 1 7 "
stop new "$NEW_BIN" || not_ok "stopping the upgraded cluster"
