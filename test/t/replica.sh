#!/usr/bin/env bash
#
# test/t/replica.sh -- txid confirmation with a streaming standby, and the
# background worker across SIGTERM, a crash and a clean restart.
#
# Runs against the test cluster of test/run.sh (PGHOST/PGPORT/PGUSER and
# DS_DATA/DS_LOG/DS_CLUSTER_USER from the environment; by hand:
# `source /tmp/ds-cluster.*/env.sh && ./test/t/replica.sh`).  It works in its
# own database, ds_replica (DS_REPLICA_DB to change it; DS_REPLICA_KEEP=1
# keeps it afterwards), stream "replica".  About 30 s on an idle machine.
#
#  1. standby: pg_basebackup -R of the cluster (as the cluster's owner, into
#     its own temp dir, unix socket only), durable_state preloaded there too;
#     pg_stat_replication shows it streaming, state.stats.standbys = 1
#  2. 'replicated': an autocommit apply of txid r1, await_txid(r1, 5000,
#     'replicated') is true and at that moment the row is visible on the
#     standby (state.get, state.changes, txid_status there)
#  2c. concurrent writers of one stream on the primary (4, with rollbacks
#     and late commits, for DS_REPLICA_CONC_SECONDS, default 5), a reader
#     polling state.changes(since) and a snapshotter on the standby
#     (test/node/replica_readers.js): the reader reads strictly increasing
#     offsets, every committed event exactly once in offset order (never one
#     at or below what it read already); its fold is the standby's table
#     after catch-up; state.tail there is its last offset; every snapshot
#     taken there is exact
#  2r. a waiting read (state.changes(..., wait_ms)) on the standby waits,
#     then returns the event the primary commits (woken by the replay
#     watcher, which runs only there); REPEATABLE READ refuses to wait
#  2w. a WAL-only client next to the standby: pg_receivewal streams too
#     (state.standbys shows it, 'no replay position', not counted), and
#     'replicated' still confirms at once with standbys = 1
#  2v. durable_state.replicated_standbys: valid values (all, sync, FIRST n,
#     ANY n, a bare list, quoted names, *) are taken; bad syntax is refused
#     with 22023 and a DETAIL saying what was expected, and the HINT
#  2b. rebuilding a standby: while pg_basebackup -X stream copies the
#     primary (rate-limited, so that it lasts a few seconds) writers keep
#     applying txids and awaiting 'replicated': every await is true, and
#     state.standbys showed the backup's walsenders, not counted
#  2a. two standbys (the second one from that backup), the second one's
#     replay paused: ANY 1 of the two confirms, all and FIRST 1 (second,
#     first) do not, ANY 2 does not; state.standbys says which count, with
#     priorities; a txid 'replicated' under ANY 1 stays 'replicated' after
#     the switch to all (the watermark never moves back); after resume all
#     confirm; the second standby is then removed
#  2s. durable_state.replicated_standbys = sync: an async standby does not
#     count (never replicated); named in synchronous_standby_names, it does
#     (set with ALTER SYSTEM; the primary's postgresql.auto.conf is put back
#     as it was afterwards, by the trap too)
#  3. replay paused on the standby: 'replicated' times out (false, after the
#     full timeout), 'flushed' is true, txid_status = flushed; 17,000 txids
#     in one batch make the ring of recent commits go round, and r1 and rw
#     still read replicated (at once for await_txid); a waiter
#     started while paused returns true once replay resumes, and the row is
#     then visible on the standby
#  4. on the standby: 'committed' of a replicated txid is true, an unknown
#     one false after the timeout; 'flushed' and writes are refused
#  3b. standby stopped: standbys = 0, 'replicated' is never reached for new
#     txids, while those replicated before stay so (the watermark does not
#     move back); the standby is then removed
#  5. worker SIGTERM: a new worker pid within a few seconds, worker_starts
#     + 1, txids still confirm ('flushed'), a replicated one stays so
#  8. waiters (before 6 and 7, which reset shared memory): 3 concurrent
#     await_txid(r9) are counted in txid_waiters and all return true at the
#     commit; a cancelled waiter errors with 57014 and leaves txid_waiters 0,
#     as does a waiter that times out, and one terminated with
#     pg_terminate_backend (FATAL)
#  6. worker crash (kill -9): the postmaster restarts every backend, the
#     worker comes back, every committed event and txid is there and old
#     txids confirm at once ('flushed' too); those replicated before the
#     crash still read 'replicated' (the horizon is read back from disk, the
#     server log says so)
#  7. clean restart (pg_ctl restart): old txids confirm at once (< 100 ms
#     measured in the server), 'flushed' too, replicated ones stay
#     'replicated'; an unknown txid is false after
#     its timeout
#
# Whatever happens, the EXIT trap kills the psql clients and pg_receivewal
# it started, puts the primary's postgresql.auto.conf back, stops and
# removes the standbys,
# starts the primary again if it is down, waits until it accepts
# connections and drops the database.  A part that finds the primary gone
# gives up (not ok) instead of timing out check after check.
#
# Prints `ok - ...` / `not ok - ...` per check, `# ...` notes (timings), and
# finally `N passed, M failed`; exits 1 on failure.

set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
# shellcheck source=test/lib.sh
source test/lib.sh

DB=${DS_REPLICA_DB:-ds_replica}
ADMIN_DB=${PGDATABASE:-postgres}
STREAM=replica
export PGCLIENTENCODING=UTF8

# float comparison: cmp A OP B (awk), e.g. cmp "$ms" '<' 100
cmp() { awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; }

ds_t_need_cluster

# psql against the primary / the standby: unaligned, tuples only, errors to stderr
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
P()  { "${PSQL[@]}" -d "$DB" "$@" </dev/null; }
PA() { "${PSQL[@]}" -d "$ADMIN_DB" "$@" </dev/null; }
S()  { "${PSQL[@]}" -h "$SB_DIR" -p "$SB_PORT" -d "$DB" "$@" </dev/null; }
S2() { "${PSQL[@]}" -h "$SB_DIR" -p "$SB2_PORT" -d "$DB" "$@" </dev/null; }
# pg_ctl as the cluster's owner; fds 7 and 8 (the script's own stdout and
# stderr, see the traps) are closed so that a postmaster it starts does not
# keep the caller's pipe open
pg_owner() { ds_as_owner "$DS_PGBIN/pg_ctl" "$@" 7>&- 8>&-; }

# apply_txid KEY TXID [VALUE]: one autocommit insert event carrying TXID
apply_txid() {
    local v=${3:-'{"k":"'$1'"}'}
    P -c "SELECT applied FROM state.apply(
            '{\"type\":\"thing\",\"key\":\"$1\",\"value\":$v,\"headers\":{\"operation\":\"insert\",\"txid\":\"$2\"}}',
            '$STREAM')"
}
# timed_await TXID TIMEOUT DURABILITY [psql fn]: prints "t|12.3" (result|ms,
# measured in the server, so connection setup does not count)
timed_await() {
    "${4:-P}" -c "SELECT * FROM pg_temp_timed_await('$1', $2, '$3')" 2>&1
}
sstat() { P -c "SELECT $1 FROM state.stats" 2>&1; }
# await_check LABEL WANT OP MS TXID TIMEOUT DURABILITY [psql fn]: await_txid
# returns WANT (checked as LABEL), and the time it took in ms is OP MS
await_check() {
    local res
    res=$(timed_await "$5" "$6" "$7" "${8:-P}")
    is "$1" "${res%%|*}" "$2"
    cmp "${res#*|}" "$3" "$4" 2>/dev/null
    check "... $([[ $3 == '<' ]] && echo 'at once' || echo 'after its timeout') (${res#*|} ms $3 $4)" $?
}

wait_for() { ds_wait_for "$@"; }
# the primary answers queries (after a crash it restarts; wait for that)
server_up() { PA -c 'SELECT 1' >/dev/null 2>&1; }
# before each part: without a primary the rest cannot run (the trap then
# tries to start it again)
need_primary() {
    wait_for 30 server_up && return 0
    not_ok "the primary does not accept connections (before $1): giving up"
    exit 1
}
# stat_is EXPR VALUE
stat_is() { [[ $(sstat "$1") == "$2" ]]; }

# Background psql clients (bg OUTFILE APPNAME SQL), killed by the trap if
# still running; $LAST_BG is the psql process.
BG_PIDS=()
bg() {
    PGAPPNAME=$2 "${PSQL[@]}" -v VERBOSITY=verbose -d "$DB" -c "$3" </dev/null >"$1" 2>&1 &
    LAST_BG=$!
    BG_PIDS+=("$LAST_BG")
}
# finished PID: the client has exited
finished() { ! kill -0 "$1" 2>/dev/null; }

SB_DIR=
SB_PORT=
SB_DATA=
SB2_PORT=
SB2_DATA=
RECEIVEWAL_PID=
CREATED_DB=0
SYNC_SET=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ds-replica-work.XXXXXX") || exit 1

# The primary's postgresql.auto.conf is saved before ALTER SYSTEM and put
# back byte for byte afterwards (ALTER SYSTEM RESET would rewrite the file).
save_primary_conf() {
    ds_as_owner cp -p "$DS_DATA/postgresql.auto.conf" "$SB_DIR/primary.auto.conf"
}
restore_primary_conf() {
    ds_as_owner cp "$SB_DIR/primary.auto.conf" "$DS_DATA/postgresql.auto.conf" &&
        { ! server_up || PA -c 'SELECT pg_reload_conf()' >/dev/null; }
}
# standby_running [DATA]: the standby (by default the first one) is up
standby_running() { [[ -n ${1-$SB_DATA} && -f ${1-$SB_DATA}/postmaster.pid ]]; }
# end_walsenders APPNAME: terminates the primary's walsenders of that name
end_walsenders() {
    PA -c "SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = '$1'" >/dev/null 2>&1
}

cleanup() {
    local p running
    running=" $(jobs -p | tr '\n' ' ') "
    for p in "${BG_PIDS[@]}"; do
        [[ $running == *" $p "* ]] && kill "$p" 2>/dev/null
    done
    # pg_receivewal and pg_basebackup run under ds_as_owner's subshell:
    # ending their connections ends them
    if server_up; then
        end_walsenders ds_replica_receivewal
        end_walsenders pg_basebackup
    fi
    # synchronous replication must be off before the standby goes away
    ((SYNC_SET == 1)) && restore_primary_conf
    if standby_running; then
        pg_owner -D "$SB_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1
    fi
    if standby_running "$SB2_DATA"; then
        pg_owner -D "$SB2_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1
    fi
    [[ -n $SB_DIR ]] && rm -rf "$SB_DIR"
    # the primary must be left running for the scripts after this one
    if ! server_up; then
        if ! pg_owner -D "$DS_DATA" status >/dev/null 2>&1; then
            echo "# the primary is down: starting it again"
            pg_owner -D "$DS_DATA" -l "$DS_LOG" -w -t 60 start >/dev/null 2>&1 ||
                echo "# WARNING: the primary did not start; see $DS_LOG"
        fi
        wait_for 30 server_up || echo "# WARNING: the primary does not accept connections"
    fi
    if ((CREATED_DB == 1)) && [[ ${DS_REPLICA_KEEP:-} != 1 ]]; then
        # cancel waiters first: DROP DATABASE ... WITH (FORCE) terminates
        # them (FATAL), which leaked their txid_waiters count before e197a17
        PA -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = '$DB'" >/dev/null 2>&1 &&
            sleep 0.2
        PA -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
    fi
    [[ -n ${SERVED_BEFORE:-} ]] &&
        PA -c "ALTER SYSTEM SET durable_state.database = '$SERVED_BEFORE'" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
    rm -rf "$WORK"
}
# fds 7 and 8 keep the script's stdout and stderr for the trap (pg_owner
# closes them for pg_ctl)
ds_finish_on_exit

# ---------------------------------------------------------------------------
# Setup: a fresh database with a collection on stream "replica"
# ---------------------------------------------------------------------------
if ! wait_for 30 server_up; then
    not_ok "the primary does not accept connections"
    exit 1
fi
PA -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
if ! PA -c "CREATE DATABASE \"$DB\"" >/dev/null; then
    not_ok "CREATE DATABASE $DB"
    exit 1
fi
CREATED_DB=1
# the test cluster's workers serve its test database only: serve this one
# (the setting is put back at the end: the cluster's own is in
# postgresql.auto.conf, where ALTER SYSTEM RESET would remove it)
SERVED_BEFORE=$(PA -c "SHOW durable_state.database")
PA -c "ALTER SYSTEM SET durable_state.database = '$DB'" -c "SELECT pg_reload_conf()" >/dev/null
# pg_temp_timed_await is an ordinary function (a pg_temp one would not
# exist in the next session); the name only says it is the test's own.
if ! P -c "CREATE EXTENSION durable_state" \
       -c "SELECT state.create_collection('things', 'thing', stream => '$STREAM')" \
       -c "CREATE FUNCTION pg_temp_timed_await(txid text, t int, d text, OUT ok bool, OUT ms numeric)
           LANGUAGE plpgsql AS \$\$
           DECLARE s timestamptz := clock_timestamp();
           BEGIN
               ok := state.await_txid(txid, t, d);
               ms := round((extract(epoch FROM clock_timestamp() - s) * 1000)::numeric, 1);
           END \$\$" >/dev/null; then
    not_ok "setup of database $DB"
    exit 1
fi
wait_for 10 stat_is "preloaded, worker_state" "t|running"
is "preloaded, worker running" "$(sstat "preloaded, worker_state")" "t|running"
# txid_waiters is cluster-wide: a count leaked before this script (see the
# terminated waiter in 8.) stays until the next restart, so 2. to 8. count
# from here
W0=$(sstat txid_waiters)
[[ $W0 == 0 ]] || note "txid_waiters is $W0 before any waiter of this script"

# ---------------------------------------------------------------------------
# 1. A streaming standby
# ---------------------------------------------------------------------------
SB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ds-standby.XXXXXX") || exit 1
if [[ -n ${DS_CLUSTER_USER:-} && $DS_CLUSTER_USER != "$(id -un)" ]]; then
    chown "$DS_CLUSTER_USER:" "$SB_DIR" || exit 1
fi
SB_DATA=$SB_DIR/data
SB_PORT=$((PGPORT + 100))
while ds_port_in_use "$SB_PORT" || [[ -e /tmp/.s.PGSQL.$SB_PORT ]]; do
    SB_PORT=$((SB_PORT + 1))
done
t0=$(date +%s.%N)
if ds_as_owner "$DS_PGBIN/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres \
        -D "$SB_DATA" -R -X stream -c fast >"$WORK/basebackup.log" 2>&1; then
    ok "pg_basebackup -R of the primary"
else
    not_ok "pg_basebackup -R of the primary: $(tail -n 3 "$WORK/basebackup.log")"
    exit 1
fi
free_port() {
    local port=$1
    while ds_port_in_use "$port" || [[ -e /tmp/.s.PGSQL.$port || -e $SB_DIR/.s.PGSQL.$port ]]; do
        port=$((port + 1))
    done
    echo "$port"
}
ds_start_standby "$SB_DATA" "$SB_PORT" ds_replica_standby "$SB_DIR"
is "standby is in recovery" "$(S -c 'SELECT pg_is_in_recovery()' 2>&1)" t
streaming() {
    [[ $(PA -c "SELECT state FROM pg_stat_replication WHERE application_name = 'ds_replica_standby'" 2>/dev/null) == streaming ]]
}
wait_for 30 streaming
is "pg_stat_replication on the primary shows the standby streaming" \
    "$(PA -c "SELECT application_name, state FROM pg_stat_replication" 2>&1)" "ds_replica_standby|streaming"
# A standby that has not reported its replay position yet counts, with
# replicated_lsn NULL: wait for its first report too.  The walreceiver
# reports when WAL arrives (else every wal_receiver_status_interval, 10 s),
# so each poll writes a commit record.
reported() {
    PA -c 'SELECT txid_current()' >/dev/null 2>&1
    stat_is "standbys, replicated_lsn IS NOT NULL" "1|t"
}
wait_for 20 reported
is "state.stats: standbys = 1, replicated_lsn set, not past flushed_lsn" \
    "$(sstat "standbys, replicated_lsn IS NOT NULL, replicated_lsn <= flushed_lsn")" "1|t|t"
note "standby ready in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"

# ---------------------------------------------------------------------------
# 2. 'replicated' means visible on the standby
# ---------------------------------------------------------------------------
is "apply txid r1 (autocommit)" "$(apply_txid k1 r1 '{"v":1}' 2>&1)" 1
res=$(timed_await r1 5000 replicated)
is "await_txid('r1', 5000, 'replicated') = true" "${res%%|*}" t
note "replicated wait for r1: ${res#*|} ms"
# immediately afterwards, on the standby
is "r1's row is visible on the standby right after (state.get)" \
    "$(S -c "SELECT state.get('thing', 'k1', '$STREAM')" 2>&1)" '{"v": 1}'
is "state.changes works on the standby and has r1's event" \
    "$(S -c "SELECT count(*), max(\"offset\"), max(event->'headers'->>'txid') FROM state.changes('$STREAM')" 2>&1)" \
    "1|00000000000000000001|r1"
is "state.get_type and state.snapshot work on the standby" \
    "$(S -c "SELECT (SELECT count(*) FROM state.get_type('thing', '$STREAM')),
                    (SELECT count(*) FROM state.snapshot('$STREAM'))" 2>&1)" "1|3"
is "txid_status('r1') on the standby = committed" "$(S -c "SELECT state.txid_status('r1')" 2>&1)" committed
is "txid_status('r1') on the primary = replicated" "$(P -c "SELECT state.txid_status('r1')" 2>&1)" replicated

# ---------------------------------------------------------------------------
# 2c. Concurrent writers of one stream; a reader and snapshots on the standby
# ---------------------------------------------------------------------------
need_primary "2c"
if [[ -d test/node/node_modules/pg ]]; then
    DS_STANDBY_HOST=$SB_DIR DS_STANDBY_PORT=$SB_PORT DS_REPLICA_DB=$DB \
        timeout 300 node test/node/replica_readers.js >"$WORK/readers.out" 2>&1
    ds_relay_tap "$WORK/readers.out" test/node/replica_readers.js "2c: "
else
    not_ok "2c: pg is installed in test/node (cd test/node && npm ci)"
fi

# ---------------------------------------------------------------------------
# 2r. A waiting read on the standby is woken by replay
# ---------------------------------------------------------------------------
need_primary "2r"
since=$(S -c "SELECT state.tail('$STREAM')" 2>&1)
PGAPPNAME=ds_replica_wr "${PSQL[@]}" -h "$SB_DIR" -p "$SB_PORT" -d "$DB" \
    -c "SELECT count(*) || '|' || extract(epoch FROM clock_timestamp()) FROM state.changes('$STREAM', '$since', 10, 10000)" \
    </dev/null >"$WORK/wr.out" 2>&1 &
wr=$!
BG_PIDS+=("$wr")
sleep 0.5
finished "$wr"
check "2r: a waiting read on the standby waits while nothing follows $since" $((!$?)) "$(cat "$WORK/wr.out")"
is "2r: apply on the primary" "$(apply_txid kwr rwr 2>&1)" 1
t_commit=$(date +%s.%N)
wait_for 5 finished "$wr"
res=$(cat "$WORK/wr.out")
is "2r: the waiting read on the standby returns the replayed event" "${res%%|*}" 1
note "2r: the standby's reader returned $(awk -v a="$t_commit" -v b="${res#*|}" 'BEGIN{printf "%.1f", (b-a)*1000}') ms after the primary's apply returned to its client (same clock; negative: before psql exited)"
out=$(S -v VERBOSITY=verbose -c "BEGIN ISOLATION LEVEL REPEATABLE READ" -c "SELECT * FROM state.changes('$STREAM', 'now', 10, 100)" 2>&1)
[[ $out == *"ERROR:  0A000:"*"cannot wait under REPEATABLE READ"* ]]
check "2r: on the standby too, waiting under REPEATABLE READ is refused (0A000)" $? "$out"
# (it has no database connection, so it is not in pg_stat_activity)
watchers() { pgrep -P "$(head -n 1 "$1/postmaster.pid")" -f 'durable_state replay watcher' | wc -l; }
is "2r: the replay watcher runs on the standby" "$(watchers "$SB_DATA")" 1
is "2r: ... and not on the primary" "$(watchers "$DS_DATA")" 0

# ---------------------------------------------------------------------------
# 2w. A WAL-only client next to the standby does not stall 'replicated'
# ---------------------------------------------------------------------------
need_primary "2w"
# sstandbys COLUMNS: state.standbys as "a|b|..." lines joined by spaces,
# ordered by application_name
sstandbys() {
    P -c "SELECT $1 FROM state.standbys ORDER BY application_name COLLATE \"C\"" 2>&1 | tr '\n' ' ' | sed 's/ $//'
}
ds_as_owner mkdir "$SB_DIR/receivewal"
ds_as_owner "$DS_PGBIN/pg_receivewal" -d "host=$PGHOST port=$PGPORT user=postgres application_name=ds_replica_receivewal" \
    -D "$SB_DIR/receivewal" --no-loop >"$WORK/receivewal.log" 2>&1 7>&- 8>&- &
RECEIVEWAL_PID=$!
receivewal_seen() {
    [[ $(sstandbys "application_name, state, role") == "ds_replica_receivewal|streaming|no replay position ds_replica_standby|streaming|counts" ]]
}
wait_for 20 receivewal_seen
is "state.standbys: pg_receivewal streams without a replay position, the standby counts" \
    "$(sstandbys "application_name, state, replay_lsn IS NOT NULL, counts, role")" \
    "ds_replica_receivewal|streaming|f|f|no replay position ds_replica_standby|streaming|t|t|counts"
is "pg_stat_replication shows both walsenders" \
    "$(PA -c "SELECT string_agg(application_name, ' ' ORDER BY application_name) FROM pg_stat_replication" 2>&1)" \
    "ds_replica_receivewal ds_replica_standby"
is "state.stats with pg_receivewal attached: standbys = 1, replicated_lsn set" \
    "$(sstat "standbys, replicated_lsn IS NOT NULL")" "1|t"
is "apply txid rw (pg_receivewal attached)" "$(apply_txid kw rw 2>&1)" 1
await_check "with pg_receivewal attached: await_txid('rw', 5000, 'replicated') = true" t '<' 2000 rw 5000 replicated
is "txid_status('rw') = replicated" "$(P -c "SELECT state.txid_status('rw')" 2>&1)" replicated
is "... and rw is visible on the standby" "$(S -c "SELECT state.get('thing', 'kw', '$STREAM') IS NOT NULL" 2>&1)" t
# (its pid is that of ds_as_owner's subshell: end its connection instead,
# and --no-loop ends it)
end_walsenders ds_replica_receivewal
wait "$RECEIVEWAL_PID" 2>/dev/null
RECEIVEWAL_PID=
receivewal_gone() { [[ $(sstandbys application_name) == ds_replica_standby ]]; }
wait_for 10 receivewal_gone
check "pg_receivewal stopped: state.standbys shows the standby alone" $?

# ---------------------------------------------------------------------------
# 2v. The setting's syntax (ALTER SYSTEM runs its check)
# ---------------------------------------------------------------------------
need_primary "2v"
save_primary_conf
SYNC_SET=1
# set_standbys VALUE: ALTER SYSTEM + reload; prints psql's output
set_standbys() {
    PA -v VERBOSITY=verbose -c "ALTER SYSTEM SET durable_state.replicated_standbys = \$v\$$1\$v\$" \
        -c "SELECT pg_reload_conf()" 2>&1 >/dev/null
}
setting_is() { [[ $(PA -c "SHOW durable_state.replicated_standbys" 2>/dev/null) == "$1" ]]; }
for v in 'sync' 'FIRST 2 (a, "B c", *)' 'any 1 (x)' '2 (a,b)' 'a, b' '"first", 3' '*' 'ALL'; do
    out=$(set_standbys "$v")
    wait_for 5 setting_is "$v"
    check "replicated_standbys = '$v' is taken" $? "$out"
done
# reject VALUE DETAIL: refused with 22023, DETAIL as given and the hint
reject() {
    local out
    out=$(set_standbys "$1")
    [[ $out == *'ERROR:  22023: invalid value for parameter "durable_state.replicated_standbys"'* &&
       $out == *"DETAIL:  $2"* &&
       $out == *"HINT:  Use all, sync, or the syntax of synchronous_standby_names: FIRST n (name, ...), ANY n (name, ...) or a list of names, where * matches any standby."* ]]
    check "replicated_standbys = '$1' is refused: $2" $? "$out"
}
reject '' 'The value is empty.'
reject 'FIRST (a)' 'Expected the number of standbys after FIRST, found "(a)".'
reject 'ANY a (b)' 'Expected the number of standbys after ANY, found "a (b)".'
reject 'ANY 0 (a)' 'The number of standbys must be between 1 and 2147483647, not 0.'
reject 'FIRST 1 a' 'Expected "(" after the number of standbys, found "a".'
reject 'a,' 'Expected a standby name, found the end of the value.'
reject 'a b' 'Expected "," or the end of the value after a standby name, found "b".'
reject 'ANY 1 (a' 'Expected "," or ")" after a standby name, found the end of the value.'
reject 'ANY 1 (a) b' 'Expected the end of the value after ")", found "b".'
reject '"unterminated' 'Expected a standby name, found an unterminated quoted name.'
reject 'a; b' 'Expected "," or the end of the value after a standby name, found "; b".'
is "after the refusals the setting is still all" "$(PA -c "SHOW durable_state.replicated_standbys" 2>&1)" ALL
restore_primary_conf
wait_for 5 setting_is all
SYNC_SET=0

# ---------------------------------------------------------------------------
# 2b. Rebuilding a standby (pg_basebackup -X stream) while writers await
# 'replicated'
# ---------------------------------------------------------------------------
need_primary "2b"
SB2_DATA=$SB_DIR/data2
SB2_PORT=$(free_port $((SB_PORT + 1)))
# about 4 s of copying, whatever the cluster's size (at least 32 kB/s)
kb=$(PA -c "SELECT (sum(pg_database_size(oid)) / 1024)::bigint FROM pg_database" 2>/dev/null)
rate=$(( ${kb:-0} / 4 > 32 ? ${kb:-0} / 4 : 32 ))
# (its own application_name would go into the standby's primary_conninfo:
# its walsenders show up as pg_basebackup)
ds_as_owner "$DS_PGBIN/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres \
    -D "$SB2_DATA" -R -X stream -c fast --max-rate="${rate}k" >"$WORK/basebackup2.log" 2>&1 7>&- 8>&- &
bb=$!
BG_PIDS+=("$bb")
t0=$(date +%s.%N)
n=0 trues=0 slow=0 seen_backup=0 max_ms=0
while ! finished "$bb"; do
    n=$((n + 1))
    apply_txid "kb$n" "rb$n" >/dev/null 2>&1
    res=$(timed_await "rb$n" 3000 replicated)
    [[ ${res%%|*} == t ]] && trues=$((trues + 1))
    cmp "${res#*|}" '>' "$max_ms" 2>/dev/null && max_ms=${res#*|}
    # the backup's walsenders: there, streaming or backing up, not counted
    [[ $(P -c "SELECT count(*) FROM state.standbys WHERE application_name = 'pg_basebackup' AND NOT counts" 2>/dev/null) -ge 1 &&
       $(sstat standbys) == 1 ]] && seen_backup=$((seen_backup + 1))
    ((n >= 200)) && break
done
wait "$bb"
bb_rc=$?
note "pg_basebackup at ${rate} kB/s took $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s; $n writes awaited during it, slowest ${max_ms} ms"
check "pg_basebackup -X stream of the primary succeeded" "$bb_rc" "$(tail -n 3 "$WORK/basebackup2.log")"
((n >= 3))
check "the writers applied and awaited during the backup ($n times, at least 3)" $?
is "every 'replicated' await during the backup was true" "$trues" "$n"
((seen_backup >= 1))
check "state.standbys showed the backup's walsenders, not counted, with standbys = 1 ($seen_backup times)" $?

# ---------------------------------------------------------------------------
# 2a. Two standbys, one paused: ANY 1 confirms, all / FIRST / ANY 2 do not
# ---------------------------------------------------------------------------
need_primary "2a"
ds_start_standby "$SB2_DATA" "$SB2_PORT" ds_replica_standby2 "$SB_DIR"
both_count() {
    PA -c 'SELECT txid_current()' >/dev/null 2>&1
    [[ $(sstandbys "application_name, counts") == "ds_replica_standby|t ds_replica_standby2|t" ]]
}
wait_for 30 both_count
is "two standbys replay and count: standbys = 2" \
    "$(sstandbys "application_name, role")|$(sstat standbys)" "ds_replica_standby|counts ds_replica_standby2|counts|2"
S2 -c 'SELECT pg_wal_replay_pause()' >/dev/null 2>&1
is "replay paused on the second standby" \
    "$(S2 -c "SELECT pg_get_wal_replay_pause_state() IN ('paused', 'pause requested')" 2>&1)" t
save_primary_conf
SYNC_SET=1
# use_standbys VALUE: set and wait until the worker follows (it reloads on
# SIGHUP; state.standbys then shows the priorities of that value)
use_standbys() {
    local out
    out=$(set_standbys "$1")
    wait_for 5 setting_is "$1" || not_ok "replicated_standbys = '$1' not taken: $out"
}
# is_standbys LABEL COLUMNS WANT: sstandbys COLUMNS is WANT (waiting up to 5
# s for the worker to follow a new setting)
standbys_are() { [[ $(sstandbys "$1") == "$2" ]]; }
is_standbys() {
    wait_for 5 standbys_are "$2" "$3"
    is "$1" "$(sstandbys "$2")" "$3"
}
use_standbys 'ANY 1 (ds_replica_standby, DS_REPLICA_STANDBY2)'
is_standbys "ANY 1 (both): both count, priorities 1 and 2" \
    "application_name, priority, counts" "ds_replica_standby|1|t ds_replica_standby2|2|t"
is "apply txid ra1" "$(apply_txid ka1 ra1 2>&1)" 1
await_check "ANY 1 of two, the second paused: await_txid('ra1', 5000, 'replicated') = true" t '<' 2000 ra1 5000 replicated
lsn_any=$(sstat replicated_lsn)
is "ra1 is visible on the first standby, not on the paused one" \
    "$(S -c "SELECT state.get('thing', 'ka1', '$STREAM') IS NOT NULL" 2>&1)|$(S2 -c "SELECT state.get('thing', 'ka1', '$STREAM') IS NOT NULL" 2>&1)" "t|f"
use_standbys 'all'
is_standbys "all: both count, no priorities" "application_name, coalesce(priority, -1), counts" \
    "ds_replica_standby|-1|t ds_replica_standby2|-1|t"
is "switched to all: ra1 stays replicated (txid_status)" "$(P -c "SELECT state.txid_status('ra1')" 2>&1)" replicated
is "switched to all: the replicated watermark did not move back" \
    "$(P -c "SELECT replicated_lsn >= '$lsn_any' FROM state.stats" 2>&1)" t
await_check "... and await_txid('ra1', 1000, 'replicated') = true at once" t '<' 100 ra1 1000 replicated
is "apply txid ra2" "$(apply_txid ka2 ra2 2>&1)" 1
await_check "all, the second paused: await_txid('ra2', 1000, 'replicated') = false" f '>=' 990 ra2 1000 replicated
use_standbys 'FIRST 1 (ds_replica_standby2, ds_replica_standby)'
is_standbys "FIRST 1 (second, first): the second counts (priority 1), the first is not chosen" \
    "application_name, priority, role" "ds_replica_standby|2|not chosen ds_replica_standby2|1|counts"
await_check "FIRST 1 (second, first): await_txid('ra2', 500, 'replicated') = false" f '>=' 490 ra2 500 replicated
use_standbys 'ANY 2 (*)'
is_standbys "ANY 2 (*): both count" "priority, counts" "1|t 1|t"
is "... standbys = 2" "$(sstat standbys)" 2
await_check "ANY 2 (*): await_txid('ra2', 500, 'replicated') = false" f '>=' 490 ra2 500 replicated
use_standbys 'FIRST 1 (nosuch)'
is_standbys "FIRST 1 (nosuch): no standby counts" "priority, counts" "0|f 0|f"
is "... standbys = 0" "$(sstat standbys)" 0
is "... ra1 is still replicated" "$(P -c "SELECT state.txid_status('ra1')" 2>&1)" replicated
use_standbys 'ANY 2 (*)'
wait_for 5 stat_is standbys 2
bg "$WORK/ra2.out" ds_replica_ra2 "SELECT * FROM pg_temp_timed_await('ra2', 10000, 'replicated')"
w=$LAST_BG
sleep 0.3
S2 -c 'SELECT pg_wal_replay_resume()' >/dev/null 2>&1
wait_for 10 finished "$w"
res=$(cat "$WORK/ra2.out")
is "ANY 2: after the second standby resumes, the waiter on ra2 returns true" "${res%%|*}" t
restore_primary_conf
wait_for 5 setting_is all
SYNC_SET=0
if pg_owner -D "$SB2_DATA" -m fast -w -t 60 stop >/dev/null 2>&1; then
    ok "second standby stopped"
else
    not_ok "second standby stopped"
fi
rm -rf "$SB2_DATA" "$SB2_DATA.log"
SB2_DATA=''
wait_for 10 stat_is standbys 1
is "back to one standby: standbys = 1" "$(sstat standbys)" 1

# ---------------------------------------------------------------------------
# 2s. durable_state.replicated_standbys = sync: only synchronous standbys
# count (none: never replicated)
# ---------------------------------------------------------------------------
need_primary "2s"
save_primary_conf
SYNC_SET=1
PA -c "ALTER SYSTEM SET durable_state.replicated_standbys = 'sync'" -c "SELECT pg_reload_conf()" >/dev/null
wait_for 10 stat_is standbys 0
is "replicated_standbys = sync, the standby is async: standbys = 0" "$(sstat standbys)" 0
is "apply txid r1s" "$(apply_txid ks r1s 2>&1)" 1
res=$(timed_await r1s 500 replicated)
is "sync mode, no synchronous standby: await_txid('r1s', 500, 'replicated') = false" "${res%%|*}" f
PA -c "ALTER SYSTEM SET synchronous_standby_names = 'ds_replica_standby'" -c "SELECT pg_reload_conf()" >/dev/null
sync_ready() {
    [[ $(PA -c "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'ds_replica_standby'" 2>/dev/null) == sync ]] &&
        stat_is standbys 1
}
wait_for 10 sync_ready
is "synchronous_standby_names names the standby: sync_state = sync, standbys = 1" \
    "$(PA -c "SELECT sync_state FROM pg_stat_replication" 2>&1)|$(sstat standbys)" "sync|1"
res=$(timed_await r1s 5000 replicated)
is "sync mode, synchronous standby: await_txid('r1s', 5000, 'replicated') = true" "${res%%|*}" t
is "apply txid r1t (synchronous commit)" "$(apply_txid kt r1t 2>&1)" 1
res=$(timed_await r1t 5000 replicated)
is "sync mode: await_txid('r1t', 5000, 'replicated') = true" "${res%%|*}" t
is "... and r1t is visible on the standby" "$(S -c "SELECT state.get('thing', 'kt', '$STREAM') IS NOT NULL" 2>&1)" t
restore_primary_conf
async_again() {
    [[ $(PA -c "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'ds_replica_standby'" 2>/dev/null) == async ]]
}
wait_for 10 async_again
is "settings reset: the standby is async again" \
    "$(PA -c "SELECT sync_state, current_setting('durable_state.replicated_standbys') FROM pg_stat_replication" 2>&1)" "async|all"
SYNC_SET=0

# ---------------------------------------------------------------------------
# 3. Replay paused: not replicated until it resumes
# ---------------------------------------------------------------------------
need_primary "3"
S -c 'SELECT pg_wal_replay_pause()' >/dev/null 2>&1
# 'pause requested' becomes 'paused' when the next record arrives: either way
# nothing after this point is replayed
is "replay paused on the standby" \
    "$(S -c "SELECT pg_get_wal_replay_pause_state() IN ('paused', 'pause requested')" 2>&1)" t
is "apply txid r2" "$(apply_txid k2 r2 '{"v":2}' 2>&1)" 1
await_check "await_txid('r2', 1500, 'replicated') = false while replay is paused" f '>=' 1490 r2 1500 replicated
res=$(timed_await r2 1000 flushed)
is "await_txid('r2', 1000, 'flushed') = true" "${res%%|*}" t
is "txid_status('r2') = flushed" "$(P -c "SELECT state.txid_status('r2')" 2>&1)" flushed
is "r2's row is not visible on the paused standby" \
    "$(S -c "SELECT coalesce(state.get('thing', 'k2', '$STREAM')::text, 'NULL')" 2>&1)" NULL
# the ring of recent commits goes round (16,384 txids in one batch) while
# the standby is paused: r1 keeps its answer (before 0.6.0 a txid the ring
# had dropped was judged by the newest position dropped, not yet replayed)
is "apply 17,000 txids in one batch while replay is paused" \
    "$(P -c "SELECT applied FROM state.apply((SELECT jsonb_agg(jsonb_build_object('type', 'thing',
               'key', 'ev' || i, 'value', '{}'::jsonb,
               'headers', jsonb_build_object('operation', 'upsert', 'txid', 'ev' || i)))
             FROM generate_series(1, 17000) i), '$STREAM')" 2>&1)" 17000
is "the ring went round: txid_status of r1 (replicated before) and rw = replicated still" \
    "$(P -c "SELECT state.txid_status('r1') || ',' || state.txid_status('rw')" 2>&1)" "replicated,replicated"
await_check "the ring went round: await_txid('r1', 1000, 'replicated') = true at once" t '<' 100 r1 1000 replicated
is "... and the paused txid r2 and the new ev1 are not: flushed" \
    "$(P -c "SELECT state.txid_status('r2') || ',' || state.txid_status('ev1')" 2>&1)" "flushed,flushed"
bg "$WORK/r2.out" ds_replica_r2 "SELECT * FROM pg_temp_timed_await('r2', 10000, 'replicated')"
w=$LAST_BG
wait_for 5 stat_is txid_waiters $((W0 + 1))
is "the background 'replicated' waiter is counted in txid_waiters" "$(sstat txid_waiters)" $((W0 + 1))
sleep 0.5
finished "$w"
check "the waiter is still waiting 0.5 s later" $((!$?))
S -c 'SELECT pg_wal_replay_resume()' >/dev/null 2>&1
t0=$(date +%s.%N)
wait_for 10 finished "$w"
t1=$(date +%s.%N)
res=$(cat "$WORK/r2.out")
is "after resume, await_txid('r2', 10000, 'replicated') = true" "${res%%|*}" t
note "r2 replicated within $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", (b-a)*1000}') ms of pg_wal_replay_resume() (polled every 0.1 s; waited ${res#*|} ms in all)"
await_check "after resume, await_txid('ev1', 5000, 'replicated') = true" t '<' 5000 ev1 5000 replicated
is "r2's row is then visible on the standby" \
    "$(S -c "SELECT state.get('thing', 'k2', '$STREAM')" 2>&1)" '{"v": 2}'
is "txid_status('r2') = replicated" "$(P -c "SELECT state.txid_status('r2')" 2>&1)" replicated

# ---------------------------------------------------------------------------
# 4. await_txid on the standby
# ---------------------------------------------------------------------------
need_primary "4"
await_check "on the standby: await_txid('r2', 1000, 'committed') = true" t '<' 100 r2 1000 committed S
await_check "on the standby: an unknown txid is false" f '>=' 290 never-on-standby 300 committed S
is "on the standby: state.stats works, no worker runs there (it starts after recovery)" \
    "$(S -c "SELECT preloaded, worker_state, standbys FROM state.stats" 2>&1)" "t|not started|0"
out=$(S -v VERBOSITY=verbose -c "SELECT state.await_txid('r2', 100, 'flushed')" 2>&1)
[[ $out == *"ERROR:  0A000:"*"can only be awaited on the primary"* ]]
check "on the standby: 'flushed' is refused (0A000)" $? "$out"
out=$(S -v VERBOSITY=verbose -c "SELECT * FROM state.apply('{\"type\":\"thing\",\"key\":\"k0\",\"value\":{},\"headers\":{\"operation\":\"insert\"}}', '$STREAM')" 2>&1)
[[ $out == *"ERROR:  25006:"* ]]
check "on the standby: state.apply fails with 25006 (read-only)" $? "$out"

# ---------------------------------------------------------------------------
# 3b. Standby stopped: 'replicated' is never reached
# ---------------------------------------------------------------------------
need_primary "3b"
lsn_before_stop=$(sstat replicated_lsn)
if pg_owner -D "$SB_DATA" -m fast -w -t 60 stop >/dev/null 2>&1; then
    ok "standby stopped"
else
    not_ok "standby stopped"
fi
wait_for 10 stat_is standbys 0
lsn0=$(sstat replicated_lsn)
is "state.stats: standbys = 0, replicated_lsn kept (it never moves back)" \
    "$(sstat "standbys, replicated_lsn >= '$lsn_before_stop'")" "0|t"
is "state.standbys is empty" "$(P -c "SELECT count(*) FROM state.standbys" 2>&1)" 0
is "apply txid r3" "$(apply_txid k3 r3 2>&1)" 1
res=$(timed_await r3 1000 replicated)
is "no standby: await_txid('r3', 1000, 'replicated') = false" "${res%%|*}" f
is "no standby: txid_status('r3') = flushed" "$(P -c "SELECT state.txid_status('r3')" 2>&1)" flushed
# a txid replicated while the standby was there stays so (before 0.4.0 it
# went back to flushed)
await_check "no standby: await_txid('r1', 1000, 'replicated') = true at once, r1 was replicated" t '<' 100 r1 1000 replicated
is "no standby: txid_status of r1, r2, rw, ra1 = replicated still" \
    "$(P -c "SELECT string_agg(state.txid_status(t), ',') FROM unnest(ARRAY['r1','r2','rw','ra1']) t" 2>&1)" \
    "replicated,replicated,replicated,replicated"
is "no standby: replicated_lsn has not moved" "$(sstat replicated_lsn)" "$lsn0"
rm -rf "$SB_DIR"
SB_DIR='' SB_DATA=''

# ---------------------------------------------------------------------------
# 5. Worker SIGTERM: restarted a second later
# ---------------------------------------------------------------------------
need_primary "5"
read -r old_pid old_starts <<<"$(sstat "worker_pid, worker_starts" | tr '|' ' ')"
if [[ $old_pid =~ ^[0-9]+$ ]] && kill -TERM "$old_pid"; then
    ok "SIGTERM to the worker (pid $old_pid, starts $old_starts)"
else
    not_ok "SIGTERM to the worker (pid '$old_pid')"
fi
t0=$(date +%s.%N)
new_worker() { [[ $(sstat "worker_state = 'running' AND worker_pid <> $old_pid") == t ]]; }
wait_for 10 new_worker
t1=$(date +%s.%N)
read -r st new_pid new_starts <<<"$(sstat "worker_state, worker_pid, worker_starts" | tr '|' ' ')"
is "worker running again with a new pid" "$st|$([[ $new_pid != "$old_pid" ]] && echo new)" "running|new"
note "worker back $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s after SIGTERM (pid $old_pid -> $new_pid)"
is "worker_starts grew by 1" "$new_starts" "$((old_starts + 1))"
finished_pid() { ! kill -0 "$old_pid" 2>/dev/null; }
wait_for 5 finished_pid
check "the old worker process is gone" $?
is "apply txid r5" "$(apply_txid k5 r5 2>&1)" 1
res=$(timed_await r5 2000 flushed)
is "after SIGTERM: await_txid('r5', 2000, 'flushed') = true" "${res%%|*}" t
is "after SIGTERM (shared memory stays): txid_status('r1') = replicated, r3 = flushed" \
    "$(P -c "SELECT state.txid_status('r1'), state.txid_status('r3')" 2>&1)" "replicated|flushed"

# ---------------------------------------------------------------------------
# 8. Waiters (before 6 and 7: they reset shared memory)
# ---------------------------------------------------------------------------
need_primary "8"
is "txid_waiters back where it was before 2. (no leak so far)" "$(sstat txid_waiters)" "$W0"
w9=()
for i in 1 2 3; do
    bg "$WORK/r9_$i.out" ds_replica_r9 "SELECT * FROM pg_temp_timed_await('r9', 10000, 'committed')"
    w9+=("$LAST_BG")
done
wait_for 10 stat_is txid_waiters $((W0 + 3))
is "3 concurrent await_txid('r9', 10000): txid_waiters = 3" "$(sstat txid_waiters)" $((W0 + 3))
is "apply txid r9" "$(apply_txid k9 r9 2>&1)" 1
t0=$(date +%s.%N)
all_done() { local p; for p in "${w9[@]}"; do finished "$p" || return 1; done; }
wait_for 5 all_done
t1=$(date +%s.%N)
for i in 1 2 3; do
    res=$(cat "$WORK/r9_$i.out")
    is "waiter $i on r9 returns true" "${res%%|*}" t
done
note "3 waiters on r9 all returned within $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", (b-a)*1000}') ms of the apply"
is "txid_waiters = 0 after they returned" "$(sstat txid_waiters)" "$W0"

# cancelled waiter
bg "$WORK/cancel.out" ds_replica_cancel "SELECT state.await_txid('never-cancel', 10000)"
wc=$LAST_BG
wait_for 10 stat_is txid_waiters $((W0 + 1))
is "a waiter on a never-committed txid: txid_waiters = 1" "$(sstat txid_waiters)" $((W0 + 1))
is "pg_cancel_backend of the waiter" \
    "$(P -c "SELECT count(*) FILTER (WHERE pg_cancel_backend(pid)) FROM pg_stat_activity WHERE application_name = 'ds_replica_cancel'" 2>&1)" 1
wait_for 5 finished "$wc"
check "the cancelled waiter returned" $?
out=$(cat "$WORK/cancel.out")
[[ $out == *"ERROR:  57014: canceling statement due to user request"* ]]
check "the cancelled waiter fails with 57014" $? "$out"
wait_for 2 stat_is txid_waiters "$W0"
is "txid_waiters = 0 after the cancel (no leaked slot)" "$(sstat txid_waiters)" "$W0"

# timed-out waiter
await_check "await_txid('never-timeout', 300) = false" f '>=' 290 never-timeout 300 committed
is "txid_waiters = 0 after the timeout" "$(sstat txid_waiters)" "$W0"
res=$(timed_await never-timeout2 300 flushed)
is "await_txid('never-timeout2', 300, 'flushed') = false, txid_waiters = 0" \
    "${res%%|*}|$(sstat txid_waiters)" "f|$W0"

# terminated waiter: FATAL does not unwind PG_TRY/PG_FINALLY; before
# e197a17 a waiter killed with pg_terminate_backend (or by DROP DATABASE
# ... WITH (FORCE)) never gave its count back, and the worker then polled
# every millisecond until the next restart
bg "$WORK/term.out" ds_replica_term "SELECT state.await_txid('never-term', 10000)"
wt=$LAST_BG
wait_for 10 stat_is txid_waiters $((W0 + 1))
is "pg_terminate_backend of a waiter" \
    "$(P -c "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE application_name = 'ds_replica_term'" 2>&1)" 1
wait_for 5 finished "$wt"
out=$(cat "$WORK/term.out")
[[ $out == *"FATAL:  57P01: terminating connection due to administrator command"* ]]
check "the terminated waiter got FATAL 57P01" $? "$out"
wait_for 2 stat_is txid_waiters "$W0"
n=$(sstat txid_waiters)
[[ $n == "$W0" ]]
check "txid_waiters = 0 after a waiter was terminated (FATAL)" $? "txid_waiters = $n, was $W0"

# ---------------------------------------------------------------------------
# 6. Worker crash: kill -9, the postmaster reinitializes
# ---------------------------------------------------------------------------
need_primary "6"
before=$(P -c "SELECT state.tail('$STREAM'), (SELECT count(*) FROM state.changes('$STREAM')),
                      (SELECT jsonb_object_agg(key, value ORDER BY key) FROM state.get_type('thing', '$STREAM'))" 2>&1)
bg "$WORK/victim.out" ds_replica_victim "SELECT pg_sleep(60)"
victim=$LAST_BG
victim_connected() {
    [[ $(P -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ds_replica_victim'" 2>/dev/null) == 1 ]]
}
wait_for 5 victim_connected
log_from=$(($(stat -c %s "$DS_LOG" 2>/dev/null || echo 0) + 1))
old_pid=$(sstat worker_pid)
if [[ $old_pid =~ ^[0-9]+$ ]] && kill -KILL "$old_pid"; then
    ok "SIGKILL to the worker (pid $old_pid)"
else
    not_ok "SIGKILL to the worker (pid '$old_pid')"
fi
t0=$(date +%s.%N)
# the victim is killed by the crash restart; only then is "server up" news
wait_for 20 finished "$victim"
check "an unrelated session was terminated by the crash restart" $?
wait_for 60 server_up || need_primary "the checks after the crash"
t1=$(date +%s.%N)
out=$(cat "$WORK/victim.out")
[[ $out == *"terminating connection because of crash of another server process"* ]]
check "... with 'terminating connection because of crash of another server process'" $? "$out"
log=$(tail -c +"$log_from" "$DS_LOG" 2>/dev/null)
[[ $log == *"(PID $old_pid) was terminated by signal 9"* && $log == *"all server processes terminated; reinitializing"* ]]
check "server log: worker terminated by signal 9, all server processes reinitialized" $?
note "accepting connections $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s after the SIGKILL"
running_new() { [[ $(sstat "worker_state = 'running' AND worker_pid <> $old_pid") == t ]]; }
wait_for 10 running_new
is "worker running again after the crash, with a new pid" "$(sstat "worker_state, worker_pid <> $old_pid")" "running|t"
note "after the crash restart (shared memory reinitialized): $(sstat "'worker_starts=' || worker_starts || ' events_applied=' || events_applied")"
is "after the crash restart: txid_waiters = 0" "$(sstat txid_waiters)" 0
is "every committed event and entity is still there" \
    "$(P -c "SELECT state.tail('$STREAM'), (SELECT count(*) FROM state.changes('$STREAM')),
                    (SELECT jsonb_object_agg(key, value ORDER BY key) FROM state.get_type('thing', '$STREAM'))" 2>&1)" \
    "$before"
await_check "after the crash: await_txid('r5', 200) = true" t '<' 100 r5 200 committed
await_check "after the crash: await_txid('r9', 200, 'flushed') = true" t '<' 100 r9 200 flushed
# the crash reset shared memory, but not the replicated horizon, which is
# on disk: what was replicated stays so (before 0.6.0 it read flushed until
# the standbys replayed past the restart); r5 and r9 came after the standby
# was gone
is "after the crash: txid_status of r1, r2, ev1, r5, r9 = replicated x3, flushed x2" \
    "$(P -c "SELECT string_agg(state.txid_status(t), ',') FROM unnest(ARRAY['r1','r2','ev1','r5','r9']) t" 2>&1)" \
    "replicated,replicated,replicated,flushed,flushed"
await_check "after the crash: await_txid('r1', 1000, 'replicated') = true at once" t '<' 100 r1 1000 replicated
log=$(tail -c +"$log_from" "$DS_LOG" 2>/dev/null)
[[ $log == *"durable_state: txids of transactions before "*" are replicated (horizon read back at "* ]]
check "server log: the replicated horizon was read back" $? "$(grep -a horizon <<<"$log")"
is "after the crash: a new apply confirms ('flushed')" \
    "$(apply_txid k6 r6 2>&1)|$(timed_await r6 2000 flushed | cut -d'|' -f1)" "1|t"

# ---------------------------------------------------------------------------
# 7. Clean restart
# ---------------------------------------------------------------------------
need_primary "7"
started=$(PA -c "SELECT pg_postmaster_start_time()" 2>&1)
data_before=$(P -c "SELECT state.tail('$STREAM'), (SELECT count(*) FROM state.get_type('thing', '$STREAM'))" 2>&1)
t0=$(date +%s.%N)
if pg_owner -D "$DS_DATA" -l "$DS_LOG" -m fast -w -t 60 restart >"$WORK/restart.log" 2>&1; then
    ok "pg_ctl restart of the primary"
else
    not_ok "pg_ctl restart of the primary: $(tail -n 3 "$WORK/restart.log")"
fi
need_primary "the checks after the restart"
t1=$(date +%s.%N)
note "pg_ctl restart took $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s"
is "the postmaster was restarted" "$(PA -c "SELECT pg_postmaster_start_time() > '$started'" 2>&1)" t
# first thing after the restart, before anything else touches the txids
await_check "after restart: await_txid('r1') = true" t '<' 100 r1 5000 committed
await_check "after restart: await_txid('r6', 5000, 'flushed') = true" t '<' 100 r6 5000 flushed
is "after restart: txid_status of r1, r2, ev17000 = replicated, of r3, r5, r6, r9 = flushed" \
    "$(P -c "SELECT string_agg(state.txid_status(t), ',') FROM unnest(ARRAY['r1','r2','ev17000','r3','r5','r6','r9']) t" 2>&1)" \
    "replicated,replicated,replicated,flushed,flushed,flushed,flushed"
await_check "after restart: an unknown txid is false" f '>=' 490 never-restart 500 committed
wait_for 10 stat_is worker_state running
is "after restart: worker running, txid_waiters = 0" "$(sstat "worker_state, txid_waiters")" "running|0"
# every apply of this script inserted a new key: as many entities as events
is "after restart: the data is intact (tail = entities, as before the restart)" \
    "$(P -c "SELECT state.tail('$STREAM'), (SELECT count(*) FROM state.get_type('thing', '$STREAM'))" 2>&1)" \
    "$data_before"
[[ $data_before =~ ^0*([0-9]+)\|([0-9]+)$ && ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" && ${BASH_REMATCH[2]} -ge 8 ]]
check "... that is one event per entity, 8 or more ($data_before)" $?
