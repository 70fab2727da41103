#!/usr/bin/env bash
#
# test/valgrind.sh -- the regression and isolation suites, the subscriber,
# fuzzer (10k events), differential and Node client tests against a server
# running under valgrind memcheck, then a report of every memory error whose
# stack runs through durable_state.  About 8 minutes on 2 cores.
#
#   bash test/valgrind.sh          (or: make valgrind)
#
# Debian's postgres is not built with USE_VALGRIND, so palloc'd chunks are
# not tracked one by one and the server's own known reports (uninitialised
# padding written to WAL and the relcache init file, strncmp in the dynamic
# loader) appear in the logs; only reports that involve the extension count.
# Prints `N passed, M failed` (one per suite, plus the memory check).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
# shellcheck source=test/lib.sh
source test/lib.sh

command -v valgrind >/dev/null 2>&1 || ds_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y valgrind >/dev/null
ds_install_deps && ds_build_install >/dev/null && ds_npm_install clients/node && ds_npm_install test/node || exit 1
ds_start_cluster >/dev/null || exit 1
VG=$DS_TMP/valgrind
ds_as_owner mkdir -p "$VG"
ds_as_owner "$DS_PGBIN/pg_ctl" -D "$DS_DATA" -m fast -w stop >/dev/null
# the postmaster under valgrind, every backend with it (fds 1 and 2 to a file
# so that it does not hold the caller's pipe)
(cd / && ds_as_owner valgrind --quiet --trace-children=yes --error-limit=no --num-callers=30 \
    --log-file="$VG/%p.log" "$DS_PGBIN/postgres" -D "$DS_DATA" >"$VG/server.out" 2>&1 &)
for _ in $(seq 120); do psql -X -At -d postgres -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done

PASS=0
FAIL=0
run() {  # NAME CMD...
    local name=$1
    shift
    if "$@" >"$VG/$name.out" 2>&1; then
        PASS=$((PASS + 1)); echo "ok - $name under valgrind"
    else
        FAIL=$((FAIL + 1)); echo "not ok - $name under valgrind (see $VG/$name.out)"; tail -n 20 "$VG/$name.out"
    fi
}
run installcheck make --no-print-directory installcheck PG_CONFIG="$DS_PG_CONFIG"
run subscriber node test/t/subscriber.js
run fuzz env DS_FUZZ_EVENTS=10000 node test/t/fuzz.js
run differential ./test/t/differential.sh
run node_client ./test/t/node_client.sh

# errors whose stack involves the extension
bad=$(awk '
    /^==[0-9]+== [A-Z]/ { if (rec != "" && ours && kind) print rec; rec = $0 "\n"; ours = 0;
                          kind = ($0 ~ /Invalid (read|write|free)|Conditional jump|uninitialised value|Mismatched|overlap/); next }
    /^==[0-9]+==    (at|by) / { rec = rec $0 "\n"; if ($0 ~ /durable_state|ds_[a-z_]+ \(/) ours = 1; next }
    END { if (rec != "" && ours && kind) print rec }' "$VG"/*.log)
if [[ -z $bad ]]; then
    PASS=$((PASS + 1)); echo "ok - no memory error involves durable_state ($(ls "$VG"/*.log | wc -l) processes checked)"
else
    FAIL=$((FAIL + 1)); echo "not ok - memory errors in durable_state:"; head -n 80 <<<"$bad"
fi
echo "$PASS passed, $FAIL failed"
((FAIL == 0))
