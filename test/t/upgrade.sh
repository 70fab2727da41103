#!/usr/bin/env bash
#
# test/t/upgrade.sh -- ALTER EXTENSION durable_state UPDATE from 0.1.0 (and
# from 0.2.0):
#   - data and behaviour survive: collections made under 0.1.0 (document,
#     generated, adopted) keep their entities, logs, offsets and txids; the
#     new library serves the 0.1.0 catalog until the update; after it their
#     entities have versions (1), and put / increment / compare-and-set,
#     default TTLs and the roles work on them;
#   - the updated extension is the fresh one: every function's definition,
#     its privileges, every view, table column, index, policy and dumped
#     configuration table of schema state equal those of a fresh
#     CREATE EXTENSION (column order aside), whether updated from 0.1.0 or
#     from 0.2.0.
# Databases ds_upgrade, ds_upgrade2 and ds_fresh of the test cluster.  Prints
# `N passed, M failed`.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
# shellcheck source=test/lib.sh
source test/lib.sh


PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
Q() { local db=$1; shift; "${PSQL[@]}" -d "$db" "$@" </dev/null 2>&1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ds-upgrade.XXXXXX") || exit 1
cleanup() {
    for db in ds_upgrade ds_upgrade2 ds_fresh; do
        "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 </dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
cleanup
mkdir -p "$WORK"
Q postgres -c "CREATE DATABASE ds_upgrade" -c "CREATE DATABASE ds_upgrade2" -c "CREATE DATABASE ds_fresh" >/dev/null

# 0.1.0, with data, used by the new library
if out=$("${PSQL[@]}" -d ds_upgrade 2>&1 <<'SQL'
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
is "installed version" "$(Q ds_upgrade -c "SELECT extversion FROM pg_extension WHERE extname = 'durable_state'")" 0.1.0
before=$(Q ds_upgrade -c "SELECT string_agg(format('%s %s %s', c.type, g.key, g.value), '; ' ORDER BY c.type, g.key)
                            FROM state.collections c, state.get_type(c.type, c.stream) g" -c "SELECT state.tail('up')")

if out=$(Q ds_upgrade -c "ALTER EXTENSION durable_state UPDATE"); then ok "ALTER EXTENSION durable_state UPDATE"; else not_ok "ALTER EXTENSION UPDATE: $out"; fi
is "updated version" "$(Q ds_upgrade -c "SELECT extversion FROM pg_extension WHERE extname = 'durable_state'")" 0.4.0
after=$(Q ds_upgrade -c "SELECT string_agg(format('%s %s %s', c.type, g.key, g.value), '; ' ORDER BY c.type, g.key)
                           FROM state.collections c, state.get_type(c.type, c.stream) g" -c "SELECT state.tail('up')")
is "entities and the tail are unchanged" "$after" "$before"
is "existing entities are at version 1, the generated table's own _version member kept" \
   "$(Q ds_upgrade -c "SELECT string_agg(format('%s=%s', v.value, v.version), ' ')
                         FROM (VALUES ('doc', 'a'), ('task', 't1')) k(t, key), state.get_versioned(k.t, k.key, 'up') v")" \
   '{"x": 2}=1 {"id": "t1", "title": "keep me", "_version": "mine"}=1'
is "version columns of the collections" \
   "$(Q ds_upgrade -c "SELECT string_agg(name || ':' || coalesce(version_column, '-'), ' ' ORDER BY name) FROM state.collections")" \
   "acc:- docs:version tasks:_version_1"
is "compare-and-set, increment and the log go on" \
   "$(Q ds_upgrade -c "SELECT state.put('doc', 'a', '{\"x\": 3}', stream => 'up', expected_version => 1) IS NOT NULL" \
                  -c "SELECT state.increment('doc', 'a', 'x', 1, 'up')" \
                  -c "SELECT version FROM state.get_versioned('doc', 'a', 'up')" \
                  -c "SELECT state.tail('up')" | tr '\n' ' ')" "t 4 3 $(printf '%020d' 7) "
is "an old txid confirms" "$(Q ds_upgrade -c "SELECT state.await_txid('old-1', 0)")" t
is "default TTLs on an old collection" \
   "$(Q ds_upgrade -c "SELECT state.alter_collection('docs', 'up', default_ttl => '1 day')" \
                  -c "SELECT state.put('doc', 'd', '1', stream => 'up') IS NOT NULL" \
                  -c "SELECT expires_at > now() + interval '23 hours' FROM state._expiry WHERE key = 'd'" | tr '\n' ' ')" " t t "
is "the roles exist and apply is not PUBLIC" \
   "$(Q ds_upgrade -c "SELECT count(*) FROM pg_roles WHERE rolname IN ('state_reader', 'state_writer')" \
                  -c "SELECT has_function_privilege('public', 'state.apply(jsonb, text, text)', 'EXECUTE')" | tr '\n' ' ')" "2 f "

# the updated catalog is the fresh one
Q ds_fresh -c "CREATE EXTENSION durable_state" >/dev/null
shape() {
    Q "$1" -c "SELECT 'function ' || p.oid::regprocedure || ' ' || md5(pg_get_functiondef(p.oid)) || ' ' || coalesce(p.proacl::text, 'default')
                 FROM pg_proc p WHERE p.pronamespace = 'state'::regnamespace ORDER BY 1" \
           -c "SELECT 'view ' || c.relname || ' ' || md5(pg_get_viewdef(c.oid)) || ' ' || coalesce(array_to_string(c.reloptions, ','), '') || ' ' || coalesce(c.relacl::text, '')
                 FROM pg_class c WHERE c.relnamespace = 'state'::regnamespace AND c.relkind = 'v' ORDER BY 1" \
           -c "SELECT 'table ' || c.relname || ' rls=' || c.relrowsecurity || ' ' || coalesce(c.relacl::text, '')
                 FROM pg_class c WHERE c.relnamespace = 'state'::regnamespace AND c.relkind = 'r' ORDER BY 1" \
           -c "SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                      || ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-')
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE c.relnamespace = 'state'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY 1" \
           -c "SELECT 'check ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
                WHERE connamespace = 'state'::regnamespace ORDER BY 1" \
           -c "SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
                WHERE c.relnamespace = 'state'::regnamespace ORDER BY 1" \
           -c "SELECT 'policy ' || tablename || ' ' || policyname || ' ' || cmd || ' ' || qual FROM pg_policies WHERE schemaname = 'state' ORDER BY 1" \
           -c "SELECT 'dumped ' || string_agg(c::regclass::text, ' ' ORDER BY c::regclass::text)
                 FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'durable_state'" \
           -c "SELECT 'event trigger ' || evtname || ' ' || evtevent FROM pg_event_trigger ORDER BY 1"
}
# and from 0.2.0: a snapshot is open to a role whose policies filter it
if out=$("${PSQL[@]}" -d ds_upgrade2 2>&1 <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION durable_state VERSION '0.2.0';
SELECT state.create_collection('docs', 'doc', stream => 'up2');
SELECT state.put('doc', 'a', '{"owner": "x"}', stream => 'up2');
ALTER EXTENSION durable_state UPDATE;
SQL
); then ok "0.2.0 installed, used and updated"; else not_ok "0.2.0 installed, used and updated: $out"; fi
is "updated version from 0.2.0" "$(Q ds_upgrade2 -c "SELECT extversion FROM pg_extension WHERE extname = 'durable_state'")" 0.4.0
is "entities kept from 0.2.0" "$(Q ds_upgrade2 -c "SELECT value FROM state.get_versioned('doc', 'a', 'up2')")" '{"owner": "x"}'

shape ds_fresh >"$WORK/fresh.txt"
for db in ds_upgrade ds_upgrade2; do
    shape "$db" >"$WORK/$db.txt"
    if diff -u "$WORK/fresh.txt" "$WORK/$db.txt" >"$WORK/diff.txt"; then
        ok "$db: the updated extension equals a fresh install ($(wc -l <"$WORK/fresh.txt") objects compared: functions, privileges, views, tables, columns, constraints, indexes, policies, dumped tables)"
    else
        not_ok "$db: the updated extension differs from a fresh install:
$(head -n 40 "$WORK/diff.txt")"
    fi
done
echo "$PASS passed, $FAIL failed"
((FAIL == 0))
