#!/usr/bin/env bash
#
# test/t/upgrade.sh -- the SQL of each version is written once (README,
# "Upgrades"): sql/ holds the frozen install script of 0.1.0 and update
# scripts, and CREATE EXTENSION runs 0.1.0's script and then the updates.
#   - the scripts: sql/ has one install script, durable_state--0.1.0.sql;
#     default_version in durable_state.control is the Makefile's EXTVERSION;
#     the installed scripts are those of sql/ (a full script left installed
#     by an older build would be run instead of the chain);
#   - the chain installs each released version as it was released: the full
#     install scripts of 0.2.0 and 0.3.0 are kept in test/fixtures (not
#     installed by make install); CREATE EXTENSION durable_state VERSION V
#     gives the same extension as V's released script (so an edit of a
#     released script fails here);
#   - ALTER EXTENSION durable_state UPDATE from 0.1.0 and from each released
#     full script, to default_version: data and behaviour survive
#     (collections made under 0.1.0 -- document, generated, adopted -- keep
#     their entities, logs, offsets and txids; the new library serves the
#     0.1.0 catalog until the update; after it their entities have versions
#     (1), and put / increment / compare-and-set, default TTLs and the roles
#     work on them), and the updated extension is a fresh one.
# "The same extension" is: pg_dump --binary-upgrade writes the same for both
# (every member object's definition, owner, privileges, initial privileges,
# comment and membership; the tables pg_dump dumps), column order aside.
# A released script is installed for the test as version V-released (copied
# into the installation's extension directory, removed at exit), then
# relabelled V, as a database made with that release is.
# Databases ds_up_* of the test cluster.  Prints `N passed, M failed`.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
# shellcheck source=test/lib.sh
source test/lib.sh
ds_t_need_cluster

PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
Q() { local db=$1; shift; "${PSQL[@]}" -d "$db" "$@" </dev/null 2>&1; }
EXTDIR=$("$DS_PG_CONFIG" --sharedir)/extension
mapfile -t RELEASED < <(compgen -G 'test/fixtures/durable_state--*.sql' | sed 's/.*--\(.*\)\.sql$/\1/' | sort -V)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ds-upgrade.XXXXXX") || exit 1
# as root when the extension directory is not ours (as ds_build_install)
as_installer() { if [[ -w $EXTDIR ]]; then "$@"; else ds_as_root "$@"; fi; }
cleanup() {
    local db v
    for db in $(Q postgres -c "SELECT datname FROM pg_database WHERE datname LIKE 'ds\_up\_%'"); do
        Q postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    done
    for v in "${RELEASED[@]}"; do
        as_installer rm -f "$EXTDIR/durable_state--$v-released.sql"
    done
    rm -rf "$WORK"
}
ds_finish_on_exit
cleanup
mkdir -p "$WORK"
version() { Q "$1" -c "SELECT extversion FROM pg_extension WHERE extname = 'durable_state'"; }

# the scripts
is "sql/ has one install script, the frozen 0.1.0's" \
   "$(compgen -G 'sql/durable_state--*.sql' | grep -v -- '--.*--' | tr '\n' ' ')" "sql/durable_state--0.1.0.sql "
TARGET=$(sed -n "s/^default_version = '\(.*\)'$/\1/p" durable_state.control)
is "durable_state.control's default_version is the Makefile's EXTVERSION" \
   "$TARGET" "$(sed -n 's/^EXTVERSION = //p' Makefile)"
is "the installed scripts are those of sql/ (make install; test/lib.sh removes stale ones)" \
   "$(cd "$EXTDIR" && for f in durable_state--*.sql; do cmp -s "$f" "$DS_ROOT/sql/$f" && echo "$f" || echo "$f differs from sql/ or is not there"; done)" \
   "$(cd sql && printf '%s\n' durable_state--*.sql)"
is "the installed default_version" \
   "$(Q postgres -c "SELECT default_version FROM pg_available_extensions WHERE name = 'durable_state'")" "$TARGET"

# catalog DB: the extension as pg_dump --binary-upgrade writes it (every
# member object: its definition, owner, privileges, initial privileges,
# comment and membership), then the tables (and sequences) it has pg_dump
# dump, by name.  Left out: what differs between two equal installs (oids,
# xids, sequence positions, pg_dump's random \restrict key) and the order of
# a table's columns (an update appends the columns it adds; the library
# finds columns by name).
catalog() {
    pg_dump --binary-upgrade --schema-only -n state -e durable_state -d "$1" 2>&1 </dev/null | awk '
        /^\\(un)?restrict / || /binary_upgrade_set_next_/ || /pg_catalog\.setval\(/ { next }
        {
            gsub(/relfrozenxid = \047[0-9]+\047, relminmxid = \047[0-9]+\047/, "relfrozenxid = X, relminmxid = X")
            gsub(/WHERE oid = \047[0-9]+\047/, "WHERE oid = X")
            gsub(/\047\{[0-9,]*\}\047/, "\047{oids}\047")
        }
        intable && /^\);$/ {
            for (i = 2; i <= n; i++)            # insertion sort (mawk has no asort)
                for (j = i; j > 1 && cols[j - 1] > cols[j]; j--) {
                    t = cols[j]; cols[j] = cols[j - 1]; cols[j - 1] = t
                }
            for (i = 1; i <= n; i++) print "    " cols[i]
            intable = 0
        }
        intable { sub(/^ +/, ""); sub(/,$/, ""); cols[++n] = $0; next }
        /^CREATE TABLE .*\($/ { intable = 1; n = 0 }
        { print }'
    Q "$1" -c "SELECT 'dumped by pg_dump: ' || c::regclass || ' ' || quote_literal(w)
                 FROM pg_extension e, unnest(e.extconfig, e.extcondition) u(c, w)
                WHERE e.extname = 'durable_state' ORDER BY 1"
}
# same DESCRIPTION DB1 DB2: ok when the extension of DB2 is that of DB1
same() {
    local d
    catalog "$2" >"$WORK/$2.txt"
    catalog "$3" >"$WORK/$3.txt"
    for d in "$2" "$3"; do
        if ! grep -q '^ALTER EXTENSION durable_state ADD ' "$WORK/$d.txt"; then
            not_ok "$1: pg_dump --binary-upgrade of $d: $(head -n 5 "$WORK/$d.txt")"
            return
        fi
    done
    if diff -u "$WORK/$2.txt" "$WORK/$3.txt" >"$WORK/diff.txt"; then
        ok "$1 ($(grep -c '^ALTER EXTENSION durable_state ADD ' "$WORK/$2.txt") member objects in $(wc -l <"$WORK/$2.txt") lines of pg_dump --binary-upgrade)"
    else
        not_ok "$1: $2 and $3 differ:
$(head -n 40 "$WORK/diff.txt")"
    fi
}
mkdb() { Q postgres -c "CREATE DATABASE $1" >/dev/null; }

# a fresh install: 0.1.0's script, then the updates
mkdb ds_up_fresh
if out=$(Q ds_up_fresh -c "CREATE EXTENSION durable_state"); then ok "CREATE EXTENSION durable_state"; else not_ok "CREATE EXTENSION durable_state: $out"; fi
is "a fresh install is at default_version" "$(version ds_up_fresh)" "$TARGET"

# the chain installs each released version as its released script did
for v in "${RELEASED[@]}"; do
    db=ds_up_${v//./_}
    mkdb "$db" && mkdb "${db}_chain"
    as_installer install -m 644 "test/fixtures/durable_state--$v.sql" "$EXTDIR/durable_state--$v-released.sql"
    if out=$(Q "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION durable_state VERSION '$v-released'" \
                     -c "UPDATE pg_extension SET extversion = '$v' WHERE extname = 'durable_state'" &&
             Q "${db}_chain" -c "SET client_min_messages = warning" -c "CREATE EXTENSION durable_state VERSION '$v'"); then
        same "CREATE EXTENSION durable_state VERSION '$v' is $v as released (test/fixtures/durable_state--$v.sql)" "$db" "${db}_chain"
    else
        not_ok "$v as released and through the chain: $out"
    fi
done

# 0.1.0, with data, used by the new library
mkdb ds_up_0_1_0
if out=$("${PSQL[@]}" -d ds_up_0_1_0 2>&1 <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION durable_state VERSION '0.1.0';
CREATE TABLE acc (id text PRIMARY KEY, n int);
SELECT state.create_collection('docs', 'doc', stream => 'up', mode => 'lenient');
SELECT state.create_collection('tasks', 'task', stream => 'up', schema => '{"type": "object",
    "properties": {"id": {"type": "string"}, "title": {"type": "string"}, "_version": {"type": "string"}}}');
SELECT state.create_collection('acc', 'acc', table_name => 'acc', stream => 'up', mode => 'lenient');
SELECT applied FROM state.apply('[
  {"type": "doc", "key": "a", "value": {"x": 1}, "headers": {"operation": "insert", "txid": "old-1"}},
  {"type": "doc", "key": "a", "value": {"x": 2}, "headers": {"operation": "update"}},
  {"type": "task", "key": "t1", "value": {"title": "keep me", "_version": "mine"}, "headers": {"operation": "insert"}},
  {"type": "acc", "key": "c1", "value": {"n": 5}, "headers": {"operation": "insert"}}]', 'up');
SELECT state.put('doc', 'ttl', '1', ttl => '1 hour', stream => 'up');
SQL
); then ok "0.1.0 installed and used"; else not_ok "0.1.0 installed and used: $out"; fi
is "installed version" "$(version ds_up_0_1_0)" 0.1.0
before=$(Q ds_up_0_1_0 -c "SELECT string_agg(format('%s %s %s', c.type, g.key, g.value), '; ' ORDER BY c.type, g.key)
                            FROM state.collections c, state.get_type(c.type, c.stream) g" -c "SELECT state.tail('up')")

if out=$(Q ds_up_0_1_0 -c "ALTER EXTENSION durable_state UPDATE"); then ok "ALTER EXTENSION durable_state UPDATE"; else not_ok "ALTER EXTENSION UPDATE: $out"; fi
is "updated version" "$(version ds_up_0_1_0)" "$TARGET"
after=$(Q ds_up_0_1_0 -c "SELECT string_agg(format('%s %s %s', c.type, g.key, g.value), '; ' ORDER BY c.type, g.key)
                           FROM state.collections c, state.get_type(c.type, c.stream) g" -c "SELECT state.tail('up')")
is "entities and the tail are unchanged" "$after" "$before"
is "existing entities are at version 1, the generated table's own _version member kept" \
   "$(Q ds_up_0_1_0 -c "SELECT string_agg(format('%s=%s', v.value, v.version), ' ')
                         FROM (VALUES ('doc', 'a'), ('task', 't1')) k(t, key), state.get_versioned(k.t, k.key, 'up') v")" \
   '{"x": 2}=1 {"id": "t1", "title": "keep me", "_version": "mine"}=1'
is "version columns of the collections" \
   "$(Q ds_up_0_1_0 -c "SELECT string_agg(name || ':' || coalesce(version_column, '-'), ' ' ORDER BY name) FROM state.collections")" \
   "acc:- docs:version tasks:_version_1"
is "compare-and-set, increment and the log go on" \
   "$(Q ds_up_0_1_0 -c "SELECT state.put('doc', 'a', '{\"x\": 3}', stream => 'up', expected_version => 1) IS NOT NULL" \
                  -c "SELECT state.increment('doc', 'a', 'x', 1, 'up')" \
                  -c "SELECT version FROM state.get_versioned('doc', 'a', 'up')" \
                  -c "SELECT state.tail('up')" | tr '\n' ' ')" "t 4 3 $(printf '%020d' 7) "
is "an old txid confirms" "$(Q ds_up_0_1_0 -c "SELECT state.await_txid('old-1', 0)")" t
is "default TTLs on an old collection" \
   "$(Q ds_up_0_1_0 -c "SELECT state.alter_collection('docs', 'up', default_ttl => '1 day')" \
                  -c "SELECT state.put('doc', 'd', '1', stream => 'up') IS NOT NULL" \
                  -c "SELECT expires_at > now() + interval '23 hours' FROM state._expiry WHERE key = 'd'" | tr '\n' ' ')" " t t "
is "the roles exist and apply is not PUBLIC" \
   "$(Q ds_up_0_1_0 -c "SELECT count(*) FROM pg_roles WHERE rolname IN ('state_reader', 'state_writer')" \
                  -c "SELECT has_function_privilege('public', 'state.apply(jsonb, text, text)', 'EXECUTE')" | tr '\n' ' ')" "2 f "

# and from each released full script, with data
for v in "${RELEASED[@]}"; do
    db=ds_up_${v//./_}
    if out=$("${PSQL[@]}" -d "$db" 2>&1 <<'SQL'
SET client_min_messages = warning;
SELECT state.create_collection('docs', 'doc', stream => 'up');
SELECT state.put('doc', 'a', '{"owner": "x"}', stream => 'up');
ALTER EXTENSION durable_state UPDATE;
SQL
    ); then ok "$v as released: used and updated"; else not_ok "$v as released: used and updated: $out"; fi
    is "updated version from $v" "$(version "$db")" "$TARGET"
    is "entities kept from $v, and compare-and-set goes on" \
       "$(Q "$db" -c "SELECT value, version FROM state.get_versioned('doc', 'a', 'up')" \
                  -c "SELECT state.put('doc', 'a', '{\"owner\": \"y\"}', stream => 'up', expected_version => 1) IS NOT NULL" \
                  -c "SELECT value, version FROM state.get_versioned('doc', 'a', 'up')" | tr '\n' ' ')" \
       '{"owner": "x"}|1 t {"owner": "y"}|2 '
done

# the updated extensions are the fresh one
for v in 0.1.0 "${RELEASED[@]}"; do
    same "updated from $v, the extension equals a fresh install" ds_up_fresh "ds_up_${v//./_}"
done
