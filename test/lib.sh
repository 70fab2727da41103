# shellcheck shell=bash
#
# test/lib.sh -- shared helpers for test/run.sh, test/demo.sh and test/t/*.sh.
#
#   source test/lib.sh
#   ds_install_deps      # Postgres $DS_PG_MAJOR, headers, pgTAP, pg_prove (only if missing)
#   ds_build_install     # make && make install against it (warnings are errors)
#   ds_start_cluster     # throwaway cluster with durable_state preloaded; exports PG* env
#   ...                  # psql, pg_regress, pg_prove now connect to it
#   ds_stop_cluster      # also runs automatically on EXIT (trap set by ds_start_cluster)
#
# Postgres refuses to run as root, so when these scripts run as root the
# cluster runs as the unprivileged system user "dstest" (created on demand);
# otherwise it runs as the invoking user.  Clients connect as the invoking
# user (a superuser role of that name is created) over a unix socket in the
# cluster's temp dir, or over TCP on 127.0.0.1:$PGPORT.
#
# Environment knobs:
#   KEEP=1             leave the cluster running on exit and print how to use it
#   DS_PORT=N          first TCP port to try (default 54329; the next free one is used)
#   DS_CLUSTER_USER=u  OS user that runs the server when invoked as root (default dstest)
#   DS_EXTRA_CONF=...  extra postgresql.conf lines (newline separated) for the cluster
#   DS_PG_MAJOR=N      the PostgreSQL major to test against (default 15): 15 is
#                      Debian 12's packages (/usr/lib/postgresql/15); 17 and 18 are
#                      built from Debian's source packages into /opt/postgresql-N
#                      by test/pgbuild.sh, once per machine, when missing
#   DS_PGBIN=dir       that major's binaries (default /usr/lib/postgresql/15/bin or
#                      /opt/postgresql-N/bin; a copy of the installation lets two
#                      work trees install side by side)
#
# After ds_start_cluster these are exported (and written to $DS_TMP/env.sh):
#   PGHOST PGPORT PGUSER PGDATABASE   the cluster (database ds_test)
#   DS_ROOT DS_PGBIN DS_PG_CONFIG     repo root, the major's bin directory, its pg_config
#   DS_TMP DS_DATA DS_LOG             temp dir, data directory, server log
#   DS_CLUSTER_USER                   OS user the server runs as (see ds_as_owner)

# The majors the suite supports; test/run.sh tests every one of them.
DS_PG_MAJORS_SUPPORTED="15 17 18"
DS_PG_MAJOR=${DS_PG_MAJOR:-15}
# ds_pg_prefix N: where major N is installed
ds_pg_prefix() {
    if [[ $1 == 15 ]]; then
        echo "/usr/lib/postgresql/$1"
    else
        echo "/opt/postgresql-$1"
    fi
}
DS_PGBIN=${DS_PGBIN:-$(ds_pg_prefix "$DS_PG_MAJOR")/bin}
DS_PG_CONFIG=$DS_PGBIN/pg_config
DS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DS_PG_MAJOR DS_PGBIN DS_PG_CONFIG DS_ROOT

# Always the binaries of that major first (plain `psql` on Debian is a version
# wrapper, and other tools named pg_ctl/initdb may be on PATH).
case ":$PATH:" in
    *":$DS_PGBIN:"*) ;;
    *) export PATH="$DS_PGBIN:$PATH" ;;
esac

ds_log() { printf '==> %s\n' "$*"; }
ds_err() { printf 'ERROR: %s\n' "$*" >&2; }

# Runs a command as root: directly, or through sudo when not root.
ds_as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        ds_err "need root to run: $*"
        return 1
    fi
}

# Lists what ds_install_deps would install (one missing item per line).
ds_missing_deps() {
    [[ -x $DS_PG_CONFIG ]] || echo "$DS_PG_CONFIG"
    [[ -x $DS_PGBIN/postgres ]] || echo "$DS_PGBIN/postgres"
    if [[ $DS_PG_MAJOR == 15 ]]; then
        [[ -f /usr/include/postgresql/$DS_PG_MAJOR/server/postgres.h ]] \
            || echo "/usr/include/postgresql/$DS_PG_MAJOR/server/postgres.h"
        [[ -f /usr/share/postgresql/$DS_PG_MAJOR/extension/pgtap.control ]] \
            || echo "/usr/share/postgresql/$DS_PG_MAJOR/extension/pgtap.control"
    else
        bash "$DS_ROOT/test/pgbuild.sh" --check "$DS_PG_MAJOR" || echo "$(ds_pg_prefix "$DS_PG_MAJOR") (test/pgbuild.sh)"
    fi
    command -v pg_prove >/dev/null 2>&1 || echo pg_prove
    # test/t/pgbouncer.sh: subscribers through a transaction-pooling pooler
    [[ -x /usr/sbin/pgbouncer ]] || command -v pgbouncer >/dev/null 2>&1 || echo pgbouncer
    # test/t/browser_streamdb.js: StreamDB in headless Chromium
    [[ -x /usr/bin/chromium ]] || echo chromium
    command -v make >/dev/null 2>&1 || echo make
    command -v gcc >/dev/null 2>&1 || echo gcc
    # the JSON Schema validator links PCRE2 (patterns) and libidn2 (IDN host names)
    [[ -f /usr/include/pcre2.h ]] || echo libpcre2-dev
    [[ -f /usr/include/idn2.h ]] || echo libidn2-dev
    if compgen -G "$DS_ROOT/test/t/*.js" >/dev/null && ! command -v node >/dev/null 2>&1; then
        echo node
    fi
    if [[ -f $DS_ROOT/clients/node/package-lock.json || -f $DS_ROOT/test/node/package.json ]] \
        && ! command -v npm >/dev/null 2>&1; then
        echo npm
    fi
    return 0
}

# Installs what the suite needs: for 15, Postgres 15, its server headers and
# pgTAP from Debian 12's packages; for 17 and 18, PostgreSQL and pgTAP built
# from Debian's source packages (test/pgbuild.sh, once per machine); pg_prove,
# make, gcc, node, npm, pgbouncer and chromium with apt-get.  Idempotent:
# does nothing when everything is already there.
ds_install_deps() {
    local missing
    missing=$(ds_missing_deps)
    if [[ -z $missing ]]; then
        return 0
    fi
    local pkgs=(libtap-parser-sourcehandler-pgtap-perl make gcc libc6-dev libpcre2-dev libidn2-dev)
    if [[ $DS_PG_MAJOR == 15 ]]; then
        pkgs+=("postgresql-$DS_PG_MAJOR" "postgresql-server-dev-$DS_PG_MAJOR"
               "postgresql-$DS_PG_MAJOR-pgtap")
    fi
    if grep -qx node <<<"$missing"; then
        pkgs+=(nodejs)
    fi
    if grep -qx pgbouncer <<<"$missing"; then
        pkgs+=(pgbouncer)
    fi
    if grep -qx chromium <<<"$missing"; then
        pkgs+=(chromium)
    fi
    if grep -qx npm <<<"$missing"; then
        pkgs+=(npm)
    fi
    ds_log "missing: $(tr '\n' ' ' <<<"$missing")"
    if ! command -v apt-get >/dev/null 2>&1; then
        ds_err "apt-get not found; install Postgres $DS_PG_MAJOR (server + headers), pgTAP and pg_prove by hand"
        return 1
    fi
    if ((EUID != 0)) && ! command -v sudo >/dev/null 2>&1; then
        ds_err "not root and no sudo; run as root or: apt-get install ${pkgs[*]}"
        return 1
    fi
    # On a machine without Postgres, tell postgresql-common not to create and
    # start a default "main" cluster on port 5432: the tests use their own.
    local nomain=/etc/postgresql-common/createcluster.d/50-durable-state-no-main-cluster.conf
    if [[ ! -e /etc/postgresql-common/createcluster.conf && ! -e $nomain ]]; then
        ds_as_root mkdir -p "$(dirname "$nomain")" &&
            printf '%s\n' '# written by durable_state test/lib.sh' 'create_main_cluster = false' \
                | ds_as_root tee "$nomain" >/dev/null
    fi
    ds_log "apt-get install ${pkgs[*]}"
    ds_as_root apt-get update || return 1
    ds_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${pkgs[@]}" || return 1
    if [[ $DS_PG_MAJOR != 15 ]]; then
        ds_as_root bash "$DS_ROOT/test/pgbuild.sh" "$DS_PG_MAJOR" || return 1
    fi
    missing=$(ds_missing_deps)
    if [[ -n $missing ]]; then
        ds_err "still missing after apt-get install: $(tr '\n' ' ' <<<"$missing")"
        return 1
    fi
}

# ds_npm_install DIR -- installs the dependencies of the npm package in DIR
# (relative to the repo root: clients/node, the Node client; test/node, the
# test scripts' pg) from its lockfile when node_modules is missing or older
# than the lockfile.  Does nothing without a lockfile.
ds_npm_install() {
    local dir=$DS_ROOT/$1
    [[ -f $dir/package-lock.json ]] || return 0
    if [[ -d $dir/node_modules && $dir/node_modules -nt $dir/package-lock.json ]]; then
        return 0
    fi
    ds_log "npm ci in $1"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || return 1
    touch "$dir/node_modules"
}

# Builds and installs the extension against DS_PG_MAJOR.  The objects of a
# build against another major are removed first (PGXS does not notice).
ds_build_install() {
    local jobs built=$DS_ROOT/.ds-built-for
    jobs=$(nproc 2>/dev/null || echo 2)
    if [[ $(cat "$built" 2>/dev/null) != "$DS_PG_CONFIG" ]]; then
        make -C "$DS_ROOT" -s clean PG_CONFIG="$DS_PG_CONFIG" >/dev/null 2>&1
        echo "$DS_PG_CONFIG" >"$built"
    fi
    ds_log "make (PG_CONFIG=$DS_PG_CONFIG)"
    make -C "$DS_ROOT" -j"$jobs" PG_CONFIG="$DS_PG_CONFIG" || return 1
    ds_log "make install"
    local libdir sharedir
    libdir=$("$DS_PG_CONFIG" --pkglibdir)
    sharedir=$("$DS_PG_CONFIG" --sharedir)
    # make install leaves the scripts of an older build that this tree does
    # not ship (such as the full install scripts of 0.2.0 and 0.3.0), and
    # CREATE EXTENSION would run such a script instead of 0.1.0's and the
    # updates: remove them.
    local f stale=()
    for f in "$sharedir"/extension/durable_state--*.sql; do
        [[ -e $f && ! -e $DS_ROOT/sql/${f##*/} ]] && stale+=("$f")
    done
    if [[ -w $libdir && -w $sharedir/extension ]]; then
        rm -f "${stale[@]}" &&
            make -C "$DS_ROOT" install PG_CONFIG="$DS_PG_CONFIG" >/dev/null || return 1
    else
        ds_as_root rm -f "${stale[@]}" &&
            ds_as_root make -C "$DS_ROOT" install PG_CONFIG="$DS_PG_CONFIG" >/dev/null || return 1
    fi
}

# ds_compile_check INCLUDEDIR: compiles every source file (syntax and
# warnings, no objects) against the server headers in INCLUDEDIR with the
# warnings PostgreSQL 16+ builds extensions with, as errors; for a major that
# cannot be built here (test/pgbuild.sh --headers).
ds_compile_check() {
    local inc=$1 f rc=0 n=0
    local flags=(-fsyntax-only -Wall -Werror -Wmissing-prototypes -Wpointer-arith
                 -Wdeclaration-after-statement -Werror=vla -Wendif-labels
                 -Wmissing-format-attribute -Wimplicit-fallthrough=3 -Wcast-function-type
                 -Wshadow=compatible-local -Wformat-security -fno-strict-aliasing -fwrapv
                 -D_GNU_SOURCE -I"$DS_ROOT/src" -I"$DS_ROOT" -I"$inc" -I"$inc/../../internal")
    ds_log "compiling against $(awk '/define PG_VERSION_STR/ { print $4 }' "$inc/pg_config.h" | tr -d '"') headers ($inc)"
    for f in "$DS_ROOT"/src/*.c "$DS_ROOT"/src/jsonschema/*.c; do
        n=$((n + 1))
        gcc "${flags[@]}" "$f" || rc=1
    done
    ((rc == 0)) && ds_log "$n files compiled with -Werror"
    return "$rc"
}

# Runs a command as the OS user that owns the cluster (from "/", so a cwd the
# cluster user cannot read does not bother initdb/pg_ctl).
ds_as_owner() {
    if [[ ${DS_CLUSTER_USER:-} && $DS_CLUSTER_USER != "$(id -un)" ]]; then
        if command -v runuser >/dev/null 2>&1; then
            (cd / && runuser -u "$DS_CLUSTER_USER" -- "$@")
        else
            local q
            printf -v q '%q ' "$@"
            (cd / && su -s /bin/sh "$DS_CLUSTER_USER" -c "$q")
        fi
    else
        (cd / && "$@")
    fi
}

# True if something listens on 127.0.0.1:$1.
ds_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Creates and starts the throwaway cluster and exports the PG* variables.
ds_start_cluster() {
    local me
    me=$(id -un)
    if ((EUID == 0)); then
        DS_CLUSTER_USER=${DS_CLUSTER_USER:-dstest}
        if [[ $DS_CLUSTER_USER == root ]]; then
            ds_err "DS_CLUSTER_USER must not be root: Postgres refuses to run as root"
            return 1
        fi
        if ! id -u "$DS_CLUSTER_USER" >/dev/null 2>&1; then
            ds_log "creating system user $DS_CLUSTER_USER to run Postgres"
            useradd --system --user-group --create-home \
                --home-dir "/var/lib/$DS_CLUSTER_USER" --shell /usr/sbin/nologin \
                "$DS_CLUSTER_USER" || return 1
        fi
    else
        DS_CLUSTER_USER=$me
    fi
    export DS_CLUSTER_USER

    DS_TMP=$(mktemp -d /tmp/ds-cluster.XXXXXX) || return 1
    DS_DATA=$DS_TMP/data
    DS_LOG=$DS_TMP/server.log
    export DS_TMP DS_DATA DS_LOG
    if [[ -z ${DS_NO_TRAP:-} ]]; then
        trap 'ds_stop_cluster $?' EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
    fi
    if [[ $DS_CLUSTER_USER != "$me" ]]; then
        chown "$DS_CLUSTER_USER:" "$DS_TMP" || return 1
    fi

    # initdb: UTF8, C.UTF-8 (codepoint collation, so output is the same
    # everywhere); --no-sync only skips initdb's final flush, the server
    # itself runs with fsync on.
    ds_log "initdb $DS_DATA (as $DS_CLUSTER_USER)"
    if ! ds_as_owner "$DS_PGBIN/initdb" -D "$DS_DATA" -U postgres --auth=trust \
            --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$DS_TMP/initdb.log" 2>&1; then
        rm -rf "$DS_DATA"
        if ! ds_as_owner "$DS_PGBIN/initdb" -D "$DS_DATA" -U postgres --auth=trust \
                --encoding=UTF8 --no-locale --no-sync >"$DS_TMP/initdb.log" 2>&1; then
            cat "$DS_TMP/initdb.log" >&2
            ds_err "initdb failed"
            return 1
        fi
    fi

    local port=${DS_PORT:-54329} attempt
    for attempt in 1 2 3 4 5; do
        while ds_port_in_use "$port"; do
            port=$((port + 1))
        done
        ds_as_owner tee "$DS_DATA/postgresql.auto.conf" >/dev/null <<EOF
# durable_state throwaway test cluster (written by test/lib.sh)
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$DS_TMP'
shared_preload_libraries = 'durable_state'
max_connections = 100
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
fsync = on
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
durable_state.database = 'ds_test'
${DS_EXTRA_CONF:-}
EOF
        ds_log "starting Postgres on port $port (socket in $DS_TMP, log $DS_LOG)"
        if ds_as_owner "$DS_PGBIN/pg_ctl" -D "$DS_DATA" -l "$DS_LOG" -w -t 60 start >/dev/null; then
            break
        fi
        if [[ $attempt -lt 5 ]] && grep -qi 'could not bind\|already in use' "$DS_LOG" 2>/dev/null; then
            port=$((port + 1))
            continue
        fi
        ds_err "Postgres did not start; server log:"
        tail -n 40 "$DS_LOG" >&2 2>/dev/null
        return 1
    done

    export PGHOST=$DS_TMP PGPORT=$port DS_PORT=$port
    export PGUSER=postgres PGDATABASE=postgres
    unset PGPASSWORD PGSERVICE PGHOSTADDR PGOPTIONS
    if [[ $me != postgres ]]; then
        psql -X -q -v ON_ERROR_STOP=1 \
            -c "CREATE ROLE \"$me\" SUPERUSER LOGIN" >/dev/null </dev/null || return 1
    fi
    export PGUSER=$me
    psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE DATABASE ds_test' >/dev/null </dev/null || return 1
    export PGDATABASE=ds_test
    export PGCLIENTENCODING=UTF8

    ds_write_env
    ds_log "cluster ready: PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER PGDATABASE=$PGDATABASE"
}

# Writes $DS_TMP/env.sh, which a shell can source to reach the cluster.
ds_write_env() {
    local v
    {
        echo "# source this file to use the durable_state test cluster"
        for v in PGHOST PGPORT PGUSER PGDATABASE PGCLIENTENCODING DS_ROOT DS_PGBIN \
                 DS_PG_CONFIG DS_TMP DS_DATA DS_LOG DS_PORT DS_CLUSTER_USER; do
            printf 'export %s=%q\n' "$v" "${!v}"
        done
        # shellcheck disable=SC2016  # $PATH is expanded when env.sh is sourced
        printf 'export PATH=%q:"$PATH"\n' "$DS_PGBIN"
    } >"$DS_TMP/env.sh"
    chmod 644 "$DS_TMP/env.sh"
}

# How to reach / stop a cluster that is left running (KEEP=1).
ds_print_keep_info() {
    local stop
    if [[ $DS_CLUSTER_USER != "$(id -un)" ]]; then
        stop="runuser -u $DS_CLUSTER_USER -- $DS_PGBIN/pg_ctl -D $DS_DATA stop && rm -rf $DS_TMP"
    else
        stop="$DS_PGBIN/pg_ctl -D $DS_DATA stop && rm -rf $DS_TMP"
    fi
    cat <<EOF

The cluster is still running (KEEP=1).  To connect:
    source $DS_TMP/env.sh && psql
or
    psql "host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PGDATABASE"
Server log: $DS_LOG
To stop it and remove its files:
    $stop
EOF
}

# Stops the cluster and removes its temp dir.  $1 = exit status of the run:
# when non-zero, the tail of the server log is printed first.  With KEEP=1
# the cluster is left running.  Safe to call twice.
# ds_t_need_cluster: for test/t scripts run against the test cluster; if its
# variables are missing, one failure and out.
ds_t_need_cluster() {
    local v
    for v in PGHOST PGPORT DS_DATA DS_LOG; do
        if [[ -z ${!v:-} ]]; then
            echo "not ok - $v is not set: run through test/run.sh or source the cluster's env.sh"
            echo "0 passed, 1 failed"
            exit 1
        fi
    done
}

# ds_finish_on_exit: for test/t scripts counting with ok / not_ok.  At exit
# (also after INT, TERM or an early exit) it runs the script's cleanup
# function, counts an early exit as a failure, notes the time, prints
# `N passed, M failed` and exits 1 unless all passed.  fds 7 and 8 keep the
# script's stdout and stderr, since the trap may fire inside a redirected
# command; close them (7>&- 8>&-) for daemons the script starts.
# ds_wait_for SECONDS CMD...: runs CMD every 0.1 s until it succeeds, for at
# most SECONDS, then once more; returns its last status.
ds_wait_for() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    "$@"
}

# ds_relay_tap FILE SCRIPT [PREFIX]: counts the `ok - ...` / `not ok - ...`
# lines a helper script (SCRIPT) wrote to FILE as this script's own checks
# (PREFIX before each), echoes its notes, and fails once more unless it
# ended with `N passed, 0 failed`.
ds_relay_tap() {
    local file=$1 script=$2 prefix=${3:-} line
    while IFS= read -r line; do
        case $line in
            "ok - "*) ok "$prefix${line#ok - }" ;;
            "not ok - "*) not_ok "$prefix${line#not ok - }" ;;
            "#"*|"    "*) echo "$line" ;;
        esac
    done <"$file"
    grep -q '^[0-9]* passed, 0 failed$' "$file" ||
        not_ok "$prefix$script ended cleanly ($(tail -n 3 "$file"))"
}

ds_finish_on_exit() {
    exec 7>&1 8>&2
    DS_T_START=$SECONDS
    trap 'ds_t_finish $?' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
ds_t_finish() {
    local rc=$1
    trap - EXIT
    exec 1>&7 2>&8
    cleanup
    ((rc != 0 && FAIL == 0)) && not_ok "the script was interrupted or exited early (status $rc)"
    note "$((SECONDS - DS_T_START))s in all"
    echo "$PASS passed, $FAIL failed"
    ((FAIL == 0 && PASS > 0)) && exit 0
    exit 1
}

# ds_bench_throwaway PORT: what a benchmark without a cluster of its own
# needs: the missing dependencies (tests' own left out), the extension
# (built first with BENCH_BUILD=1, else it must be installed), and a
# ds_bench_start cluster on DS_PORT (default PORT).  Prints why and returns
# 1 if the extension cannot be had.
ds_bench_throwaway() {
    unset PGHOST PGPORT PGDATABASE PGOPTIONS
    if [[ -n "$(ds_missing_deps | grep -v -e pgtap -e pg_prove -e node -e chromium || true)" ]]; then
        ds_install_deps >&2
    fi
    if [[ "${BENCH_BUILD:-0}" == 1 ]] && ! ds_build_install >&2; then
        ds_err "building the extension failed"
        return 1
    fi
    if [[ ! -f "$("$DS_PG_CONFIG" --pkglibdir)/durable_state.so" ]]; then
        ds_err "durable_state is not installed (make install, or BENCH_BUILD=1)"
        return 1
    fi
    export DS_PORT=${DS_PORT:-$1}
    ds_bench_start
}

# ds_bench_start: a throwaway cluster for a benchmark (ds_start_cluster, on
# DS_PORT), with fewer checkpoints during the timed runs; fsync and
# synchronous_commit stay as the tests run them.  The caller stops it with
# ds_stop_cluster.
ds_bench_start() {
    unset PGHOST PGPORT PGDATABASE PGOPTIONS
    DS_EXTRA_CONF="shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
${DS_EXTRA_CONF:-}"
    export DS_EXTRA_CONF
    DS_NO_TRAP=1 ds_start_cluster >&2
}

# ds_bench_cluster PORT: the cluster in PGHOST/PGPORT if it has the
# extension preloaded, else a ds_bench_start cluster on DS_PORT (default
# PORT).  Sets CLUSTER (which one, for the report) and STARTED (1 if it was
# started here: the caller stops it with ds_stop_cluster).
ds_bench_cluster() {
    if [[ -n ${PGHOST:-} ]] && psql -X -qAt -c "SHOW shared_preload_libraries" 2>/dev/null | grep -qw durable_state; then
        CLUSTER="existing (PGHOST=$PGHOST PGPORT=${PGPORT:-})"
        STARTED=0
    else
        export DS_PORT=${DS_PORT:-$1}
        ds_bench_start
        STARTED=1
        CLUSTER="throwaway (test/lib.sh, port $PGPORT)"
    fi
}

ds_stop_cluster() {
    local rc=${1:-0}
    if [[ -z ${DS_TMP:-} || ! -d $DS_TMP ]]; then
        return 0
    fi
    if [[ ${KEEP:-0} == 1 ]]; then
        if [[ -z ${DS_KEEP_INFO_SHOWN:-} ]]; then
            DS_KEEP_INFO_SHOWN=1
            ds_print_keep_info
        fi
        return 0
    fi
    if [[ $rc != 0 && -s $DS_LOG ]]; then
        echo "---- last 60 lines of the server log ($DS_LOG) ----"
        tail -n 60 "$DS_LOG"
        echo "---- end of server log ----"
    fi
    if [[ -f $DS_DATA/postmaster.pid ]]; then
        ds_as_owner "$DS_PGBIN/pg_ctl" -D "$DS_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            ds_as_owner "$DS_PGBIN/pg_ctl" -D "$DS_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1
    fi
    rm -rf "$DS_TMP"
    DS_TMP=
}

# ---------------------------------------------------------------------------
# TAP-style checks for test/t/*.sh: ok, not_ok, note, is, check count into
# PASS and FAIL; the script prints `$PASS passed, $FAIL failed` at the end.
# ---------------------------------------------------------------------------
PASS=0
FAIL=0
ok()     { PASS=$((PASS + 1)); echo "ok - $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
note()   { echo "# $*"; }
# is DESCRIPTION GOT WANT
is() {
    if [[ $2 == "$3" ]]; then
        ok "$1"
    else
        not_ok "$1 (got '$2', want '$3')"
    fi
}
# check DESCRIPTION STATUS [DETAIL]: ok when STATUS is 0
check() {
    if (($2 == 0)); then ok "$1"; else not_ok "$1${3:+ ($3)}"; fi
}

# ds_start_standby DATA PORT NAME SOCKDIR: configures and starts (as the
# cluster's owner, log in DATA.log) a standby made by pg_basebackup -R, with
# the extension preloaded; exits the test if it does not start.  The copied
# postgresql.auto.conf has the primary's port and socket dir: later lines
# win.  Unix socket only (in SOCKDIR), so no TCP port can clash.  NAME is its
# cluster_name, which is its application_name on the primary.
ds_start_standby() {
    ds_as_owner tee -a "$1/postgresql.auto.conf" >/dev/null <<EOF
# standby started by test/lib.sh's ds_start_standby
port = $2
listen_addresses = ''
unix_socket_directories = '$4'
shared_preload_libraries = 'durable_state'
hot_standby = on
cluster_name = '$3'
EOF
    if ds_as_owner "$DS_PGBIN/pg_ctl" -D "$1" -l "$1.log" -w -t 60 start >/dev/null 2>&1 7>&- 8>&-; then
        ok "standby $3 started (port $2, socket in $4)"
    else
        not_ok "standby $3 did not start: $(tail -n 5 "$1.log" 2>/dev/null)"
        exit 1
    fi
}
