#!/usr/bin/env bash
#
# test/t/gateway_standby.sh -- the gateway's readers served from a hot
# standby (READ_DATABASE_URL) while writes go to the primary.
#
# Runs against the test cluster of test/run.sh.  Makes a database
# (ds_gateway_sb), a streaming standby of the cluster (pg_basebackup -R, as
# the cluster's owner, its own temp dir, unix socket only), then
# test/node/gateway_standby_checks.js starts the gateway with
# READ_DATABASE_URL pointing at the standby and checks: waiting reads are
# the wake-up ('wait': a standby cannot LISTEN for the primary's
# notifications), a POST to the gateway (primary) reaches a long-poll reader
# and an SSE reader served from the standby, a SQL commit with a txid too,
# the reads really are the standby's (with its replay paused nothing is
# delivered; resumed, it is), and 100 readers at one offset cost one
# waiting read per commit.  The EXIT trap stops and removes the standby and
# drops the database.  Prints `N passed, M failed`.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
# shellcheck source=test/lib.sh
source test/lib.sh
ds_t_need_cluster

DB=ds_gateway_sb
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
P() { "${PSQL[@]}" -d "$DB" "$@" </dev/null; }
PA() { "${PSQL[@]}" -d "${PGDATABASE:-postgres}" "$@" </dev/null; }
S() { "${PSQL[@]}" -h "$SB_DIR" -p "$SB_PORT" -d "$DB" "$@" </dev/null; }
pg_owner() { ds_as_owner "$DS_PGBIN/pg_ctl" "$@" 7>&- 8>&-; }

SB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ds-gwsb.XXXXXX") || exit 1
SB_DATA=$SB_DIR/data
cleanup() {
    if [[ -f $SB_DATA/postmaster.pid ]]; then
        pg_owner -D "$SB_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1
    fi
    rm -rf "$SB_DIR"
    PA -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
}
ds_finish_on_exit

if [[ -n ${DS_CLUSTER_USER:-} && $DS_CLUSTER_USER != "$(id -un)" ]]; then
    chown "$DS_CLUSTER_USER:" "$SB_DIR" || exit 1
fi
PA -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
PA -c "CREATE DATABASE $DB" >/dev/null || exit 1
P -c "CREATE EXTENSION durable_state" \
  -c "SELECT state.create_collection('m', stream => 'sb')" >/dev/null || exit 1

SB_PORT=$((PGPORT + 150))
while ds_port_in_use "$SB_PORT" || [[ -e /tmp/.s.PGSQL.$SB_PORT ]]; do
    SB_PORT=$((SB_PORT + 1))
done
if ds_as_owner "$DS_PGBIN/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres \
        -D "$SB_DATA" -R -X stream -c fast >"$SB_DIR/basebackup.log" 2>&1; then
    ok "pg_basebackup -R of the primary"
else
    not_ok "pg_basebackup -R of the primary: $(tail -n 3 "$SB_DIR/basebackup.log")"
    exit 1
fi
ds_start_standby "$SB_DATA" "$SB_PORT" ds_gateway_standby "$SB_DIR"
streaming() {
    [[ $(PA -c "SELECT state FROM pg_stat_replication WHERE application_name = 'ds_gateway_standby'" 2>/dev/null) == streaming ]]
}
ds_wait_for 30 streaming
check "the standby streams from the primary" $?
is "the standby is in recovery" "$(S -c 'SELECT pg_is_in_recovery()' 2>&1)" t

out=$SB_DIR/checks.out
DS_GW_DB=$DB DS_STANDBY_HOST=$SB_DIR DS_STANDBY_PORT=$SB_PORT \
    timeout 180 node test/node/gateway_standby_checks.js >"$out" 2>&1 7>&- 8>&-
ds_relay_tap "$out" gateway_standby_checks.js
