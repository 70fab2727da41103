#!/usr/bin/env bash
#
# test/t/pgbouncer.sh -- subscribers through PgBouncer in transaction mode
# (issue 14): a PgBouncer of its own (pool_mode = transaction, as hosted
# services run it) in front of the test cluster, run as the cluster's owner
# (PgBouncer refuses root); a database ds_pgbouncer with a collection on
# stream "pgb".  Checks:
#  - a waiting read through it: state.changes(..., wait_ms) returns an event
#    committed meanwhile through another pooled client
#  - test/node/pgbouncer_follow.js: the Node client's subscribe({ wait })
#    follows the stream through it, every event once and in order, where
#    LISTEN mode hears nothing
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
source test/lib.sh
ds_t_need_cluster

DB=ds_pgbouncer
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
PA() { "${PSQL[@]}" -d "${PGDATABASE:-postgres}" "$@" </dev/null 2>&1; }
WORK=$(mktemp -d /tmp/ds-pgbouncer.XXXXXX) || exit 1
chmod 755 "$WORK"
PGB_PID=
cleanup() {
    [[ -f $WORK/pgbouncer.pid ]] && kill "$(cat "$WORK/pgbouncer.pid")" 2>/dev/null
    sleep 0.2
    PA -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
    rm -rf "$WORK"
}
ds_finish_on_exit

PGB=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
if [[ ! -x $PGB ]]; then
    not_ok "pgbouncer is installed (apt-get install pgbouncer)"
    exit 1
fi
PA -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
PA -c "CREATE DATABASE $DB" >/dev/null
is "setup" "$("${PSQL[@]}" -d $DB -c "CREATE EXTENSION durable_state" \
    -c "SELECT state.create_collection('items', 'item', stream => 'pgb')" 2>&1)" items

port=$((PGPORT + 40))
while ds_port_in_use "$port"; do port=$((port + 1)); done
users=$(PA -c "SELECT string_agg(format('\"%s\" \"\"', rolname), E'\n') FROM pg_roles WHERE rolcanlogin")
printf '%s\n' "$users" >"$WORK/users.txt"
cat >"$WORK/pgbouncer.ini" <<INI
[databases]
$DB = host=$PGHOST port=$PGPORT dbname=$DB
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $WORK/users.txt
pool_mode = transaction
default_pool_size = 3
max_client_conn = 50
ignore_startup_parameters = extra_float_digits,options
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
INI
chown -R "$DS_CLUSTER_USER:" "$WORK" 2>/dev/null
if ! ds_as_owner "$PGB" -d "$WORK/pgbouncer.ini" >"$WORK/start.log" 2>&1; then
    not_ok "pgbouncer started: $(cat "$WORK/start.log")"
    exit 1
fi
for _ in $(seq 50); do
    "${PSQL[@]}" -h 127.0.0.1 -p "$port" -d $DB -c "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.1
done
B() { "${PSQL[@]}" -h 127.0.0.1 -p "$port" -d $DB "$@" </dev/null 2>&1; }
is "PgBouncer runs in transaction mode in front of the cluster" "$(B -c "SELECT current_database()")" $DB

# a waiting read through the pooler, woken by a commit through it
since=$(B -c "SELECT state.tail('pgb')")
B -c "SELECT count(*) || '|' || string_agg(event->>'key', ',') FROM state.changes('pgb', '$since', 10, 10000)" >"$WORK/wait.out" &
reader=$!
sleep 0.5
kill -0 "$reader" 2>/dev/null
check "a waiting read through PgBouncer waits while nothing follows $since" $?
B -c "SELECT applied FROM state.apply('{\"type\":\"item\",\"key\":\"via-pgbouncer\",\"value\":{},\"headers\":{\"operation\":\"upsert\"}}', 'pgb')" >/dev/null
wait "$reader"
is "... and returns the event committed through another pooled client" "$(cat "$WORK/wait.out")" "1|via-pgbouncer"

# the Node client
if [[ -d test/node/node_modules/pg && -d clients/node/node_modules/pg ]]; then
    DS_PGB_PORT=$port DS_PGB_DB=$DB timeout 120 node test/node/pgbouncer_follow.js >"$WORK/node.out" 2>&1
    ds_relay_tap "$WORK/node.out" test/node/pgbouncer_follow.js
else
    not_ok "pg is installed in test/node and clients/node (npm ci)"
fi
