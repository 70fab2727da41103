#!/usr/bin/env bash
#
# test/run.sh -- THE command that runs the whole durable_state test suite.
# (.ci/run calls it; `make test` too.)
#
#   bash test/run.sh                 # every layer on 15, then the majors' layers on 17, 18
#   bash test/run.sh pgtap other     # only some layers: regress isolation pgtap other
#   DS_PG_MAJOR=18 bash test/run.sh  # every layer against PostgreSQL 18 only
#   KEEP=1 bash test/run.sh          # leave the throwaway cluster running afterwards
#
# Majors: without DS_PG_MAJOR, the suite runs on 15 (Debian 12's packages),
# then, in a child run each, on every other major of DS_PG_MAJORS (default
# "17 18") with the layers regress, isolation and pgtap and, of test/t, the
# scripts in DS_MAJOR_T_SCRIPTS (default: crash.sh replica.sh upgrade.sh
# pg_upgrade.sh); a child's layers are named layer@N (regress@18).
# PostgreSQL 17 and 18 are built from Debian's source packages into
# /opt/postgresql-N the first time (test/pgbuild.sh); a major whose source
# package cannot be downloaded (17 here) is compiled against its server
# headers instead (layer build@N).  test/t/pg_upgrade.sh upgrades a 15
# cluster to the major under test, so it does not run on 15.
#
# Steps: install missing deps (apt, Debian 12), build with -Werror, install,
# start a throwaway cluster (test/lib.sh), then run each layer and count:
#
#   regress    pg_regress via `make installcheck`: test/sql/*.sql vs expected/*.out.
#              One count per test file.
#   isolation  pg_isolation_regress via `make installcheck`: test/specs/*.spec vs
#              expected/*.out.  One count per spec.
#   pgtap      pg_prove over test/pgtap/*.sql.  Each file runs in a FRESH database
#              (ds_tap_<file>) created by this script; the file itself does
#              `CREATE EXTENSION IF NOT EXISTS pgtap; CREATE EXTENSION IF NOT EXISTS
#              durable_state;` (usually inside BEGIN ... ROLLBACK).  One count per
#              TAP assertion; planned-but-not-run assertions count as failed.
#   other      every executable test/t/*.sh, and test/t/*.js (run with node), with the
#              cluster's PG* and DS_* variables exported and the repo root as cwd.
#              The npm packages clients/node, clients/gateway (the HTTP gateway
#              and the pinned Durable Streams conformance suite), test/node
#              (pg for the .js tests) and test/browser (StreamDB, esbuild and
#              playwright-core for the StreamDB tests) are installed first with `npm ci` when node_modules is missing or
#              older than the lockfile (a failure is one failed test).
#              A script counts as one test (exit 0 = passed) unless it prints a line
#              `N passed, M failed`, whose numbers are used instead (a non-zero exit
#              with no failures reported adds one failure).
#
# Every layer runs even if an earlier one failed.  The last line of output is
# `N passed, M failed` (all layers); the exit status is non-zero if anything
# failed or nothing ran.

set -uo pipefail
exec 2>&1
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
# no DS_PG_MAJOR: every major (see above)
ALL_MAJORS=$([[ -z ${DS_PG_MAJOR:-} ]] && echo 1)
# shellcheck source=test/lib.sh
source test/lib.sh
# a layer of another major than 15 is counted as layer@major
AT=$([[ $DS_PG_MAJOR != 15 ]] && echo "@$DS_PG_MAJOR")

TIMEOUT=${DS_TEST_TIMEOUT:-600}   # seconds per command (a hung test must not hang CI)
ALL_LAYERS=(regress isolation pgtap other)
if (($# > 0)); then
    LAYERS=("$@")
    for l in "${LAYERS[@]}"; do
        case " ${ALL_LAYERS[*]} " in
            *" $l "*) ;;
            *) echo "unknown layer '$l' (layers: ${ALL_LAYERS[*]})"; exit 2 ;;
        esac
    done
else
    LAYERS=("${ALL_LAYERS[@]}")
fi

TOTAL_PASS=0
TOTAL_FAIL=0
SUBTOTALS=()
WORK=$(mktemp -d /tmp/ds-run.XXXXXX)

# record LAYER PASSED FAILED [NOTE]
record() {
    TOTAL_PASS=$((TOTAL_PASS + $2))
    TOTAL_FAIL=$((TOTAL_FAIL + $3))
    SUBTOTALS+=("$(printf '  %-12s %4d passed, %4d failed%s' "$1$AT" "$2" "$3" "${4:+  ($4)}")")
}

finish() {
    local status=0
    if ((TOTAL_FAIL > 0 || TOTAL_PASS == 0)); then
        status=1
    fi
    # Stop the cluster now (quietly, except for the server log tail on
    # failure) so that the summary really is the last output.
    ds_stop_cluster "$status"
    rm -rf "$WORK"
    echo
    echo "==== summary ===="
    printf '%s\n' "${SUBTOTALS[@]}"
    if ((TOTAL_PASS + TOTAL_FAIL == 0)); then
        echo "  (no tests ran)"
    fi
    echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
    exit "$status"
}

banner() { printf '\n======== %s ========\n' "$*"; }

wants() { [[ " ${LAYERS[*]} " == *" $1 "* ]]; }

# ---------------------------------------------------------------------------
# setup: deps, build, install, cluster.  A failure here is one failed test.
# ---------------------------------------------------------------------------
banner "setup"
if ! ds_install_deps; then
    record deps 0 1 "could not install dependencies"
    finish
fi
if ! ds_build_install; then
    record build 0 1 "make or make install failed"
    finish
fi
if ! ds_start_cluster; then
    record cluster 0 1 "could not start the test cluster"
    finish
fi

# count_pg_regress OUTPUT_FILE -> "passed failed"
# PG15 prints `test name ... ok   12 ms` (serial) or `     name ... FAILED` (parallel);
# PG16 and later print TAP: `ok 1         - name   12 ms`, `not ok 2     - name ...`.
count_pg_regress() {
    awk '
        /^(test )? *[^ ]+ +\.\.\. +ok/        { p++ }
        /^(test )? *[^ ]+ +\.\.\. +FAILED/    { f++ }
        /^(test )? *[^ ]+ +\.\.\. +failed \(ignored\)/ { p++ }
        /^ok [0-9]+ +[-+] /                    { p++ }
        /^not ok [0-9]+ +[-+] /                { f++ }
        END { printf "%d %d\n", p, f }' "$1"
}

# run_pg_regress LAYER NTESTS DIFFS MAKE-ARGS...
run_pg_regress() {
    local layer=$1 ntests=$2 diffs=$3
    shift 3
    local out=$WORK/$layer.out rc p f note=
    rm -f "$diffs"
    timeout "$TIMEOUT" make --no-print-directory installcheck PG_CONFIG="$DS_PG_CONFIG" "$@" \
        </dev/null 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    read -r p f < <(count_pg_regress "$out")
    if ((p + f < ntests)); then
        note="$((ntests - p - f)) of $ntests did not report"
        f=$((ntests - p))
    fi
    if ((rc != 0 && f == 0)); then
        note="make installcheck exited with $rc"
        f=1
    fi
    if ((f > 0)) && [[ -s $diffs ]]; then
        echo "---- $diffs (first 300 lines) ----"
        head -n 300 "$diffs"
        local n
        n=$(wc -l <"$diffs")
        ((n > 300)) && echo "... ($n lines in all, see $diffs)"
        echo "---- end of $diffs ----"
    fi
    record "$layer" "$p" "$f" "$note"
}

# ---------------------------------------------------------------------------
# pg_regress: test/sql/*.sql (the Makefile's REGRESS).  ISOLATION= keeps
# `make installcheck` to the regress suite; isolation runs below, so it runs
# even when this fails.
# ---------------------------------------------------------------------------
if wants regress; then
    banner "pg_regress (test/sql)"
    mapfile -t files < <(compgen -G 'test/sql/*.sql' | sort)
    if ((${#files[@]} == 0)); then
        echo "no test/sql/*.sql"
        record regress 0 0 "no tests"
    else
        run_pg_regress regress "${#files[@]}" regression.diffs ISOLATION=
    fi
fi

# ---------------------------------------------------------------------------
# isolation: test/specs/*.spec (the Makefile's ISOLATION).
# ---------------------------------------------------------------------------
if wants isolation; then
    banner "isolation (test/specs)"
    mapfile -t files < <(compgen -G 'test/specs/*.spec' | sort)
    if ((${#files[@]} == 0)); then
        echo "no test/specs/*.spec"
        record isolation 0 0 "no tests"
    else
        run_pg_regress isolation "${#files[@]}" output_iso/regression.diffs REGRESS=
    fi
fi

# ---------------------------------------------------------------------------
# pgTAP: test/pgtap/*.sql, each in a fresh database.
# ---------------------------------------------------------------------------
if wants pgtap; then
    banner "pgTAP (test/pgtap)"
    mapfile -t files < <(compgen -G 'test/pgtap/*.sql' | sort)
    tp=0 tf=0 ttodo=0 bad_files=()
    for file in "${files[@]}"; do
        base=$(basename "$file" .sql)
        db="ds_tap_$(tr -c 'a-zA-Z0-9_\n' '_' <<<"$base")"
        out=$WORK/tap_$base.out
        if ! { PGOPTIONS="-c client_min_messages=warning" dropdb --if-exists "$db" && createdb "$db"; } </dev/null; then
            echo "$file .. could not create database $db"
            tf=$((tf + 1)) bad_files+=("$file")
            continue
        fi
        timeout "$TIMEOUT" pg_prove -v -d "$db" "$file" </dev/null >"$out" 2>&1
        rc=$?
        # ok N / not ok N (a `not ok ... # TODO` is an expected failure: not counted)
        read -r p f todo plan < <(awk '
            /^[ \t]*ok [0-9]+/                       { p++ }
            /^[ \t]*not ok [0-9]+/ && /# *TODO/      { t++; next }
            /^[ \t]*not ok [0-9]+/                   { f++ }
            /^[ \t]*1\.\.[0-9]+/ && plan == ""       { plan = substr($1, 4) + 0 }
            END { printf "%d %d %d %d\n", p, f, t, plan }' "$out")
        note=
        if ((plan > p + f + todo)); then
            note="$((plan - p - f - todo)) planned assertions did not run"
            f=$((plan - p - todo))
        fi
        if ((rc != 0 && f == 0)); then
            note="pg_prove exited with $rc"
            f=1
        fi
        if ((p + f + todo == 0)); then
            note="no assertions"
            f=1
        fi
        if ((f > 0)); then
            cat "$out"
            echo "$file: $p passed, $f failed${note:+ ($note)}"
            bad_files+=("$file")
        else
            echo "$file .. ok ($p assertions$( ((todo > 0)) && echo ", $todo todo"))"
        fi
        tp=$((tp + p)) tf=$((tf + f)) ttodo=$((ttodo + todo))
    done
    if ((${#files[@]} == 0)); then
        echo "no test/pgtap/*.sql"
    fi
    note="${#files[@]} files"
    ((ttodo > 0)) && note+=", $ttodo todo"
    ((${#bad_files[@]} > 0)) && note+=", failing: ${bad_files[*]}"
    record pgtap "$tp" "$tf" "$note"
fi

# ---------------------------------------------------------------------------
# other: test/t/*.sh (executable) and test/t/*.js (node).
# ---------------------------------------------------------------------------
if wants other; then
    banner "other tests (test/t)"
    for dir in clients/node clients/gateway test/node test/browser; do
        if ! ds_npm_install "$dir"; then
            record npm 0 1 "npm ci in $dir failed"
        fi
    done
    mapfile -t files < <(compgen -G 'test/t/*.sh'; compgen -G 'test/t/*.js')
    mapfile -t files < <(printf '%s\n' "${files[@]}" | sed '/^$/d' | sort)
    # DS_T_SCRIPTS: only these (names in test/t); pg_upgrade.sh needs a major above 15
    mapfile -t files < <(for f in "${files[@]}"; do
        b=${f##*/}
        if [[ -n ${DS_T_SCRIPTS:-} && " $DS_T_SCRIPTS " != *" $b "* ]]; then
            continue
        fi
        [[ $b == pg_upgrade.sh && $DS_PG_MAJOR == 15 ]] && continue
        echo "$f"
    done)
    op=0 of=0 ran=0 bad_files=()
    for file in "${files[@]}"; do
        case $file in
            *.sh)
                if [[ ! -x $file ]]; then
                    echo "WARNING: $file is not executable; skipped (chmod +x to run it)"
                    continue
                fi
                cmd=("./$file") ;;
            *.js)
                cmd=(node "$file") ;;
        esac
        ran=$((ran + 1))
        out=$WORK/other_$(basename "$file").out
        echo "---- $file"
        start=$SECONDS
        timeout "$TIMEOUT" "${cmd[@]}" </dev/null 2>&1 | tee "$out"
        rc=${PIPESTATUS[0]}
        line=$(grep -E '^[[:space:]]*[0-9]+ passed, [0-9]+ failed[[:space:]]*$' "$out" | tail -n 1)
        if [[ -n $line ]]; then
            read -r p _ f _ <<<"$line"
            if ((rc != 0 && f == 0)); then
                f=1
            fi
        elif ((rc == 0)); then
            p=1 f=0
        else
            p=0 f=1
        fi
        ((rc == 124)) && echo "$file: timed out after ${TIMEOUT}s"
        echo "---- $file: exit $rc, $p passed, $f failed ($((SECONDS - start))s)"
        ((f > 0)) && bad_files+=("$file")
        op=$((op + p)) of=$((of + f))
    done
    if ((${#files[@]} == 0)); then
        echo "no test/t/*.sh or test/t/*.js"
    fi
    note="$ran scripts"
    ((${#bad_files[@]} > 0)) && note+=", failing: ${bad_files[*]}"
    record other "$op" "$of" "$note"
fi

# ---------------------------------------------------------------------------
# the other majors: a child run each, counted here (layer@N)
# ---------------------------------------------------------------------------
if [[ -n $ALL_MAJORS ]]; then
    ds_stop_cluster "$( ((TOTAL_FAIL > 0)) && echo 1 || echo 0)"
    child_layers=()
    for l in regress isolation pgtap other; do
        wants "$l" && child_layers+=("$l")
    done
    for major in ${DS_PG_MAJORS:-17 18}; do
        [[ $major == 15 ]] && continue
        banner "PostgreSQL $major: ${child_layers[*]}"
        out=$WORK/major_$major.out
        start=$SECONDS
        if ! bash test/pgbuild.sh --check "$major"; then
            ds_as_root bash test/pgbuild.sh "$major"
            rc=$?
            if ((rc == 3)); then
                # no source to build a server from: compile against its headers
                echo "PostgreSQL $major cannot be built here; compiling against its server headers instead"
                if inc=$(ds_as_root bash test/pgbuild.sh --headers "$major") && ds_compile_check "$inc"; then
                    record "build@$major" 1 0 "-Werror against $major's headers only: its source package cannot be downloaded"
                else
                    record "build@$major" 0 1 "-Werror against $major's headers"
                fi
                continue
            elif ((rc != 0)); then
                record "deps@$major" 0 1 "test/pgbuild.sh $major failed"
                continue
            fi
        fi
        env -u DS_PGBIN -u DS_PG_CONFIG -u DS_TMP -u DS_DATA -u DS_LOG -u PGHOST -u PGPORT \
            -u PGDATABASE -u PGUSER DS_PG_MAJOR="$major" \
            DS_T_SCRIPTS="${DS_MAJOR_T_SCRIPTS:-crash.sh replica.sh upgrade.sh pg_upgrade.sh}" \
            bash test/run.sh "${child_layers[@]}" </dev/null 2>&1 | tee "$out"
        line=$(tail -n 1 "$out")
        if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
            TOTAL_PASS=$((TOTAL_PASS + BASH_REMATCH[1]))
            TOTAL_FAIL=$((TOTAL_FAIL + BASH_REMATCH[2]))
            mapfile -t sub < <(sed -n '/^==== summary ====$/,$p' "$out" | sed '1d;$d')
            SUBTOTALS+=("${sub[@]}")
        else
            record "suite@$major" 0 1 "the run against PostgreSQL $major did not finish"
        fi
        echo "==== PostgreSQL $major: $((SECONDS - start))s"
    done
fi

finish
