#!/usr/bin/env bash
#
# test/t/databases.sh -- a worker for every database that has the extension
# (src/launcher.c).  On the test cluster, with durable_state.database = '*'
# (ALTER SYSTEM + reload; put back at the end, by the trap too):
#
#  1. the launcher runs (pg_stat_activity); a database with the extension has
#     a worker
#  2. CREATE EXTENSION in a new database ds_dbw_a: its worker runs within
#     3 s (state.stats there), a database without the extension gets none
#  3. worker-mode notifications in ds_dbw_a come from its worker's pid
#  4. log retention is applied there by its worker (max_events => 5)
#  5. TTL expiry there: an entity put with a 1 s TTL is deleted from the
#     table by the worker
#  6. SIGTERM to its worker: another one within 3 s, worker_starts + 1
#  7. DROP EXTENSION: the worker stops; CREATE EXTENSION: it is back
#  8. DROP DATABASE (without FORCE) succeeds while it is served, in < 6 s
#  9. durable_state.database = one other name: ds_dbw_b's worker stops
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
source test/lib.sh
ds_t_need_cluster

PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
Q() { local db=$1; shift; "${PSQL[@]}" -d "$db" "$@" </dev/null 2>&1; }
A=ds_dbw_a
B=ds_dbw_b
C=ds_dbw_c
D=ds_dbw_d
cleanup() {
    [[ -n ${SERVED_BEFORE:-} ]] &&
        Q postgres -c "ALTER SYSTEM SET durable_state.database = '$SERVED_BEFORE'" -c "SELECT pg_reload_conf()" >/dev/null
    for db in $A $B $C $D; do
        Q postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    done
}
SERVED_BEFORE=$(Q postgres -c "SHOW durable_state.database")
ds_finish_on_exit
cleanup

wait_for() { ds_wait_for "$@"; }
worker_of() {
    Q postgres -c "SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_stat_activity
                    WHERE backend_type = 'durable_state worker' AND datname = '$1'"
}
has_worker() { [[ -n $(worker_of "$1") ]]; }
no_worker() { [[ -z $(worker_of "$1") ]]; }
stats() { Q "$1" -c "SELECT $2 FROM state.stats"; }
stats_is() { [[ $(stats "$1" "$2") == "$3" ]]; }

Q postgres -c "ALTER SYSTEM SET durable_state.database = '*'" -c "SELECT pg_reload_conf()" >/dev/null
is "the launcher runs" \
   "$(Q postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'durable_state launcher'")" 1
Q postgres -c "CREATE DATABASE $D" >/dev/null
Q $D -c "CREATE EXTENSION durable_state" >/dev/null
wait_for 5 has_worker $D
check "$D, with the extension, has a worker" $?

# 2. CREATE EXTENSION starts a worker
Q postgres -c "CREATE DATABASE $A" -c "CREATE DATABASE $B" >/dev/null
out=$(Q $A -c "CREATE EXTENSION durable_state" \
           -c "SELECT state.create_collection('docs', 'doc', stream => 's1')")
is "CREATE EXTENSION in $A" "$out" docs
t0=$(date +%s%N)
wait_for 3 stats_is $A worker_state running
check "$A: its worker runs within 3 s (after $((($(date +%s%N) - t0) / 1000000)) ms)" $? "$(stats $A worker_state)"
pid=$(stats $A worker_pid)
is "$A: state.stats names the worker pg_stat_activity shows" "$(worker_of $A)" "$pid"
sleep 1.5
is "$B (no extension): no worker stays there" "$(worker_of $B)" ""

# 3. worker-mode notifications come from the worker
listen_out=$(mktemp)
"${PSQL[@]}" -d $A -c "LISTEN state_s1" -c "SELECT pg_sleep(2)" -c "SELECT 1" >"$listen_out" 2>&1 &
lpid=$!
sleep 0.5
Q $A -c "SET durable_state.notify = 'worker'" \
     -c "SELECT applied FROM state.apply('[{\"type\":\"doc\",\"key\":\"k1\",\"value\":{\"n\":1},\"headers\":{\"operation\":\"insert\"}}]', 's1')" >/dev/null
wait $lpid
grep -q "Asynchronous notification \"state_s1\" with payload .* received from server process with PID $pid\." "$listen_out"
check "$A: the notification of a worker-mode commit came from its worker (pid $pid)" $? "$(cat "$listen_out")"
rm -f "$listen_out"

# 4. log retention
Q $A -c "SELECT state.set_retention('s1', max_events => 5)" >/dev/null
for i in $(seq 2 30); do
    Q $A -c "SELECT applied FROM state.apply('[{\"type\":\"doc\",\"key\":\"k$i\",\"value\":{\"n\":$i},\"headers\":{\"operation\":\"insert\"}}]', 's1')" >/dev/null
done
retained() { Q $A -c "SELECT events_retained FROM state.streams WHERE stream = 's1'"; }
pruned() { local n; n=$(retained); [[ $n =~ ^[0-9]+$ ]] && ((n <= 6)); }
wait_for 5 pruned
check "$A: its worker prunes the log to max_events (5, + the newest)" $? "events_retained = $(retained)"

# 5. TTL expiry
Q $A -c "SELECT state.put('doc', 'ttl1', '{\"n\":0}', ttl => interval '1 second', stream => 's1')" >/dev/null
expired() { [[ $(Q $A -c "SELECT count(*) FROM docs WHERE key = 'ttl1'") == 0 ]]; }
wait_for 6 expired
check "$A: its worker deletes an expired entity from the table" $?

# 6. SIGTERM: started again
starts=$(stats $A worker_starts)
kill -TERM "$pid"
new_worker() { has_worker $A && [[ $(worker_of $A) != "$pid" ]] && stats_is $A worker_state running; }
wait_for 4 new_worker
check "$A: after SIGTERM, a new worker within 4 s" $? "$(worker_of $A)"
is "$A: worker_starts grew by one" "$(stats $A worker_starts)" $((starts + 1))

# 7. DROP / CREATE EXTENSION
Q $A -c "DROP EXTENSION durable_state CASCADE" >/dev/null
wait_for 4 no_worker $A
check "$A: DROP EXTENSION stops its worker" $?
Q $A -c "CREATE EXTENSION durable_state" >/dev/null
wait_for 3 has_worker $A
check "$A: CREATE EXTENSION again starts it again within 3 s" $?
wait_for 3 stats_is $A worker_state running
is "$A: state.stats says running" "$(stats $A worker_state)" running

# 8. DROP DATABASE without FORCE
t0=$(date +%s%N)
out=$(Q postgres -c "DROP DATABASE $A")
ms=$((($(date +%s%N) - t0) / 1000000))
is "DROP DATABASE $A (served, no FORCE) succeeds" "$out" ""
((ms < 6000))
check "... in under 6 s ($ms ms)" $?
is "$A is gone" "$(Q postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$A'")" 0

# 9. durable_state.database names another database
Q postgres -c "CREATE DATABASE $C" >/dev/null
Q $C -c "CREATE EXTENSION durable_state" >/dev/null
wait_for 3 has_worker $C
check "$C: served under '*'" $?
Q postgres -c "ALTER SYSTEM SET durable_state.database = '$D'" -c "SELECT pg_reload_conf()" >/dev/null
wait_for 4 no_worker $C
check "durable_state.database = '$D': $C's worker stops" $?
is "... and $D keeps its worker" "$(stats $D worker_state)" running
grep -q "durable_state worker stopping: durable_state.database does not name database \"$C\"" "$DS_LOG"
check "server log: why $C's worker stopped" $?


