#!/usr/bin/env bash
# durable_state under row-level security: what checking the caller's
# policies on every row costs, measured in the same run against the same
# work with no policy applying (the table's owner) and against the SQL a
# user would write instead (INSERT ... ON CONFLICT DO UPDATE from the JSON,
# which PostgreSQL checks against the same policies).
#
#   bash bench/rls.sh           (or: make bench-rls; about a minute)
#
# Batches of BENCH_RLS_BATCH (1000) upserts of new and existing keys into a
# typed table, BENCH_RLS_ROUNDS (5) batches per run, medians of 3 runs; then
# BENCH_RLS_GETS (20000) single-key state.get calls.  Two policies: a plain
# comparison with a setting, and a sub-select on a membership table.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=/dev/null
source "$ROOT/test/lib.sh"

BATCH=${BENCH_RLS_BATCH:-1000}
ROUNDS=${BENCH_RLS_ROUNDS:-5}
GETS=${BENCH_RLS_GETS:-20000}

cleanup() { [[ ${STARTED:-0} == 1 ]] && ds_stop_cluster 0 >/dev/null 2>&1; true; }
trap cleanup EXIT
export DS_PORT=${DS_PORT:-55500}
ds_bench_start
STARTED=1

psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION IF NOT EXISTS durable_state;
DROP ROLE IF EXISTS bench_tenant;
CREATE ROLE bench_tenant IN ROLE state_writer;
CREATE TABLE members (role name, tenant text);
INSERT INTO members VALUES ('bench_tenant', 't1');
GRANT SELECT ON members TO bench_tenant;
CREATE FUNCTION bench_table(name text, policy text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE %I (id text PRIMARY KEY, tenant text NOT NULL, title text, n int, done boolean)', name);
    PERFORM state.create_collection(name, name, table_name => name::regclass, stream => name);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO bench_tenant', name);
    IF policy IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', name);
        EXECUTE format('CREATE POLICY p ON %I USING (%s)', name, policy);
    END IF;
END
$$;
SELECT bench_table('plain', NULL);
SELECT bench_table('setting', $$tenant = current_setting('app.tenant')$$);
SELECT bench_table('subselect', $$tenant IN (SELECT m.tenant FROM members m WHERE m.role = current_user)$$);
SELECT bench_table('sqlbase', $$tenant = current_setting('app.tenant')$$);
CREATE FUNCTION batch(typ text, round int, size int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_agg(jsonb_build_object('type', typ, 'key', 'k' || ((round * size / 2) + i),
                     'value', jsonb_build_object('tenant', 't1', 'title', 'title ' || i, 'n', i, 'done', i % 2 = 0),
                     'headers', jsonb_build_object('operation', 'upsert')))
      FROM generate_series(1, size) i
$$;
GRANT EXECUTE ON FUNCTION batch(text, int, int) TO bench_tenant;
SQL

# run ROLE TABLE: events per second of ROUNDS batches (apply, or the SQL baseline)
run() {
    local role=$1 tbl=$2 stmt
    if [[ $tbl == sqlbase ]]; then
        stmt="INSERT INTO sqlbase SELECT e->>'key', e->'value'->>'tenant', e->'value'->>'title', (e->'value'->>'n')::int, (e->'value'->>'done')::boolean
                FROM jsonb_array_elements(b) e
              ON CONFLICT (id) DO UPDATE SET tenant = EXCLUDED.tenant, title = EXCLUDED.title, n = EXCLUDED.n, done = EXCLUDED.done"
    else
        stmt="PERFORM state.apply(b, '$tbl')"
    fi
    psql -X -qAt -v ON_ERROR_STOP=1 <<SQL
SET ROLE $role;
SET app.tenant = 't1';
DO \$\$
DECLARE
    b jsonb;
    t0 timestamptz;
    spent interval := '0';
BEGIN
    FOR r IN 1..$ROUNDS LOOP
        b := batch('$tbl', r + (SELECT count(*) FROM $tbl)::int / $BATCH, $BATCH);
        t0 := clock_timestamp();
        $stmt;
        spent := spent + (clock_timestamp() - t0);
    END LOOP;
    RAISE NOTICE '%', round(($ROUNDS * $BATCH) / extract(epoch FROM spent));
END
\$\$;
SQL
}
# gets ROLE TABLE: state.get calls per second
gets() {
    psql -X -qAt -v ON_ERROR_STOP=1 <<SQL
SET ROLE $1;
SET app.tenant = 't1';
DO \$\$
DECLARE
    t0 timestamptz := clock_timestamp();
    n int := (SELECT count(*) FROM $2);
BEGIN
    FOR i IN 1..$GETS LOOP
        PERFORM state.get('$2', 'k' || (1 + i % n), '$2');
    END LOOP;
    RAISE NOTICE '%', round($GETS / extract(epoch FROM clock_timestamp() - t0));
END
\$\$;
SQL
}
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
measure() {
    local fn=$1 role=$2 tbl=$3 a b c
    a=$($fn "$role" "$tbl" 2>&1 | sed -n 's/^NOTICE: *//p')
    b=$($fn "$role" "$tbl" 2>&1 | sed -n 's/^NOTICE: *//p')
    c=$($fn "$role" "$tbl" 2>&1 | sed -n 's/^NOTICE: *//p')
    median "$a" "$b" "$c"
}

say() { printf '%s\n' "$*" >&2; }
say "bench: applying as the owner (no policy applies)"
owner=$(measure run "$(psql -X -qAt -c 'SELECT current_user')" plain)
say "bench: applying as a role filtered by a comparison with a setting"
setting=$(measure run bench_tenant setting)
say "bench: applying as a role filtered by a sub-select"
subselect=$(measure run bench_tenant subselect)
say "bench: the SQL a user would write, under the same comparison policy"
sqlbase=$(measure run bench_tenant sqlbase)
say "bench: state.get"
g_owner=$(measure gets "$(psql -X -qAt -c 'SELECT current_user')" plain)
g_setting=$(measure gets bench_tenant setting)
g_sub=$(measure gets bench_tenant subselect)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "durable_state under row-level security: batches of $BATCH upserts (half new keys), medians of 3 runs of $ROUNDS batches"
echo "PostgreSQL $(psql -X -qAt -c 'SHOW server_version'), fsync on, $(nproc) cores"
printf '%-58s %12s %10s\n' "apply" "events/s" "/ owner"
printf '%-58s %12s %10s\n' "state.apply, owner (no policy applies)" "$owner" "1.00"
printf '%-58s %12s %10s\n' "state.apply, policy: tenant = current_setting(...)" "$setting" "$(ratio "$setting" "$owner")"
printf '%-58s %12s %10s\n' "state.apply, policy: tenant IN (SELECT ... members ...)" "$subselect" "$(ratio "$subselect" "$owner")"
printf '%-58s %12s %10s\n' "SQL INSERT ... ON CONFLICT, policy: current_setting" "$sqlbase" "$(ratio "$sqlbase" "$owner")"
echo "  state.apply under the setting policy / the SQL under it: $(ratio "$setting" "$sqlbase")"
printf '%-58s %12s %10s\n' "state.get ($GETS calls)" "calls/s" "/ owner"
printf '%-58s %12s %10s\n' "owner" "$g_owner" "1.00"
printf '%-58s %12s %10s\n' "policy: current_setting" "$g_setting" "$(ratio "$g_setting" "$g_owner")"
printf '%-58s %12s %10s\n' "policy: sub-select" "$g_sub" "$(ratio "$g_sub" "$g_owner")"
