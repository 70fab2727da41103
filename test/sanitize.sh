#!/usr/bin/env bash
#
# test/sanitize.sh -- the whole suite (test/run.sh: regress, isolation, pgTAP,
# test/t) against a PostgreSQL 15 server and a durable_state built with
# AddressSanitizer and UndefinedBehaviorSanitizer, then a report of every
# sanitizer error.  Fails on any error at all, in the extension or not.
#
#   bash test/sanitize.sh                  (or: make sanitize)
#   bash test/sanitize.sh regress pgtap    # only some layers, as test/run.sh
#
# Debian's postgres is not instrumented, and preloading libasan into it
# deadlocks at startup (bindtextdomain), so the first run builds PostgreSQL 15
# from Debian's source package (a deb-src entry is added for it) with
# -fsanitize=address,undefined and --enable-cassert into /opt/pgasan: about
# 4.5 minutes on 2 cores, done once (skipped while
# /opt/pgasan/.ds-sanitize-stamp matches this script's recipe).  The suite
# then takes about 3.5 minutes.  PostgreSQL is built with -DUSE_VALGRIND and a
# stand-in <valgrind/memcheck.h> that turns PostgreSQL's Valgrind client
# requests into ASan poisoning, so ASan also sees palloc chunks one by one:
# a byte past a chunk's requested size, a pfree'd chunk, a reset context, an
# unpinned shared buffer.  The extension is built in a copy of the work tree
# (/tmp/ds-sanitize/tree; the tree's own build for Debian's server is left
# alone) against /opt/pgasan, whose pg_config passes -fsanitize to PGXS.
#
# Every sanitized process (the servers of every cluster the tests start,
# psql, pg_dump...) writes its reports to /tmp/ds-sanitize/logs/asan.PID and
# ubsan.PID, which outlive the throwaway clusters.  An ASan error aborts the
# process, as a crash (memory is no longer trustworthy after one); a UBSan
# error is logged and the process carries on, so that one does not fail
# every test after it.  DS_SANITIZE_HALT=all aborts on UBSan errors too,
# =none on neither.  Why any report fails the run: the whole suite gives no
# report in PostgreSQL's own code, so a new one there is most likely caused
# by the extension all the same (a bad pointer or length handed to core, a
# clobbered chunk, found later by someone else); each report says whether its
# stack runs through durable_state, and the same report from many processes
# is shown once.
#
# Knobs: DS_SANITIZE_PREFIX (/opt/pgasan), DS_SANITIZE_DIR (/tmp/ds-sanitize),
# DS_SANITIZE_REBUILD=1 (rebuild PostgreSQL), DS_SANITIZE_HALT (asan|all|none),
# DS_PORT (first port, default 56329, away from plain test runs on 54329),
# DS_TEST_TIMEOUT (default 1800 s here) and the tests' own DS_* knobs.
# Output: the suite's, a report of the sanitizer errors, and last
# `N passed, M failed`: the suite's counts plus one for "no sanitizer error".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$(pwd)
# shellcheck source=test/lib.sh
source test/lib.sh   # with Debian's PostgreSQL: ds_install_deps, ds_as_root

PREFIX=${DS_SANITIZE_PREFIX:-/opt/pgasan}
DIR=${DS_SANITIZE_DIR:-/tmp/ds-sanitize}
SRCDIR=$PREFIX-src
SHIM=$PREFIX/share/asan-shim
JOBS=$(nproc 2>/dev/null || echo 2)
SAN_CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fsanitize-recover=address -fno-sanitize=alignment"
CONFIGURE_OPTS=(--prefix="$PREFIX" --enable-debug --enable-cassert --without-readline --without-icu)
# LeakSanitizer is useless with memory contexts (and fails every client
# program at exit); also while building, as configure runs test programs
export ASAN_OPTIONS=detect_leaks=0

# ---------------------------------------------------------------------------
# PostgreSQL with ASan + UBSan in $PREFIX
# ---------------------------------------------------------------------------

# <valgrind/memcheck.h> for -DUSE_VALGRIND: poisoning never covers more than
# the bytes PostgreSQL marks NOACCESS and unpoisoning never hides an access,
# so it can only add reports that PostgreSQL itself asks Valgrind for.
write_memcheck_shim() {
    cat <<'EOF'
/* <valgrind/memcheck.h> stand-in written by durable_state test/sanitize.sh:
 * PostgreSQL's Valgrind client requests (USE_VALGRIND) as ASan poisoning. */
#ifndef DS_ASAN_MEMCHECK_SHIM_H
#define DS_ASAN_MEMCHECK_SHIM_H
#include <sanitizer/asan_interface.h>
#define VALGRIND_MAKE_MEM_NOACCESS(addr, size)       ASAN_POISON_MEMORY_REGION((addr), (size))
#define VALGRIND_MAKE_MEM_UNDEFINED(addr, size)      ASAN_UNPOISON_MEMORY_REGION((addr), (size))
#define VALGRIND_MAKE_MEM_DEFINED(addr, size)        ASAN_UNPOISON_MEMORY_REGION((addr), (size))
#define VALGRIND_MEMPOOL_ALLOC(pool, addr, size)     ASAN_UNPOISON_MEMORY_REGION((addr), (size))
#define VALGRIND_MEMPOOL_CHANGE(pool, a, b, size)    ASAN_UNPOISON_MEMORY_REGION((b), (size))
#define VALGRIND_MEMPOOL_FREE(pool, addr)            ((void) 0)
#define VALGRIND_CREATE_MEMPOOL(pool, rz, zeroed)    ((void) 0)
#define VALGRIND_DESTROY_MEMPOOL(pool)               ((void) 0)
#define VALGRIND_CHECK_MEM_IS_DEFINED(addr, size)    ((void) 0)
#endif
EOF
}

# Linked into every PostgreSQL program (LDFLAGS_EX).  GCC's libubsan reads
# UBSAN_OPTIONS lazily, at its first report, from /proc/self/environ -- which
# a backend has overwritten with its ps title by then, so a backend would run
# with the defaults (no stack, no halt).  This saves UBSAN_OPTIONS at startup
# and hands it back through __ubsan_default_options().  Also, libubsan's own
# log_path call lands in libasan (same symbol, loaded first): so set
# libubsan's report path directly, and give libubsan ASan's log_path so that
# its call leaves ASan's reports where ASAN_OPTIONS sends them.
write_ubsan_hooks() {
    cat <<'EOF'
/* written by durable_state test/sanitize.sh: see there */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char ubsan_options[4096];

/* the value of NAME= in sanitizer options OPTS (separated by : , or space) */
static int
option_value(const char *opts, const char *name, char *out, size_t outlen)
{
	size_t		n = strlen(name);
	const char *p = opts;
	int			found = 0;

	while (p && *p)
	{
		size_t		len = strcspn(p, ": ,");

		if (len > n && strncmp(p, name, n) == 0 && p[n] == '=' && len - n - 1 < outlen)
		{
			memcpy(out, p + n + 1, len - n - 1);
			out[len - n - 1] = '\0';
			found = 1;			/* the last one wins, as for the sanitizers */
		}
		p += len;
		if (*p)
			p++;
	}
	return found;
}

__attribute__((constructor)) static void
ds_save_ubsan_options(void)
{
	const char *u = getenv("UBSAN_OPTIONS");
	const char *a = getenv("ASAN_OPTIONS");
	char		upath[1024],
				apath[1024] = "stderr";

	if (u == NULL)
		return;
	if (a)
		option_value(a, "log_path", apath, sizeof(apath));
	snprintf(ubsan_options, sizeof(ubsan_options), "%s:log_path=%s", u, apath);
	if (option_value(u, "log_path", upath, sizeof(upath)))
	{
		void	   *h = dlopen("libubsan.so.1", RTLD_LAZY | RTLD_NOLOAD);
		void		(*set_path) (const char *) =
			h ? (void (*) (const char *)) dlsym(h, "__sanitizer_set_report_path") : NULL;

		if (set_path)
			set_path(upath);
	}
}

const char *__ubsan_default_options(void);
const char *
__ubsan_default_options(void)
{
	return ubsan_options;
}
EOF
}

recipe() {
    printf '%s\n' "$SAN_CFLAGS" "${CONFIGURE_OPTS[*]}"
    write_memcheck_shim
    write_ubsan_hooks
}

# Downloads postgresql-15's Debian source package into $SRCDIR (adding a
# deb-src entry for the configured suites if there is none), newest version
# that the mirror has, and unpacks it; prints the source directory.
fetch_pg_source() {
    local list=/etc/apt/sources.list.d/ds-sanitize-src.sources v dir
    if [[ -z $(apt-cache showsrc "postgresql-$DS_PG_MAJOR" 2>/dev/null) ]]; then
        ds_log "adding deb-src entries ($list)" >&2
        ds_as_root tee "$list" >/dev/null <<'EOF'
# written by durable_state test/sanitize.sh: PostgreSQL source for /opt/pgasan
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        ds_as_root apt-get update >/dev/null 2>&1
    fi
    mkdir -p "$SRCDIR" || return 1
    # the security suite's newest version is not always on the mirror: try each
    for v in $(apt-cache showsrc "postgresql-$DS_PG_MAJOR" | awk '/^Version:/ { print $2 }' | sort -rV); do
        dir=$SRCDIR/postgresql-${v%%-*}
        if [[ -f $dir/configure ]]; then
            echo "$dir"
            return 0
        fi
        if (cd "$SRCDIR" && apt-get source --download-only "postgresql-$DS_PG_MAJOR=$v" >/dev/null 2>&1); then
            tar -C "$SRCDIR" -xf "$SRCDIR/postgresql-${DS_PG_MAJOR}_${v%%-*}.orig.tar.bz2" || return 1
            echo "$dir"
            return 0
        fi
        ds_log "postgresql-$DS_PG_MAJOR $v: source not downloadable, trying an older one" >&2
    done
    ds_err "could not download the source of postgresql-$DS_PG_MAJOR (apt-get source)"
    return 1
}

build_pg() {
    local stamp=$PREFIX/.ds-sanitize-stamp want src start=$SECONDS
    want=$(recipe | md5sum | cut -d' ' -f1)
    if [[ ${DS_SANITIZE_REBUILD:-0} != 1 && -x $PREFIX/bin/postgres && $(cat "$stamp" 2>/dev/null) == "$want" ]]; then
        ds_log "PostgreSQL with sanitizers: $PREFIX ($("$PREFIX/bin/postgres" -V | awk '{print $3}'), up to date)"
        return 0
    fi
    if [[ -e $PREFIX && ! -e $PREFIX/.ds-sanitize ]]; then
        ds_err "$PREFIX exists and was not made by test/sanitize.sh; move it away or set DS_SANITIZE_PREFIX"
        return 1
    fi
    ds_log "building PostgreSQL $DS_PG_MAJOR with ASan + UBSan into $PREFIX (about 4.5 minutes; log $DIR/pg-build.log)"
    local pkgs=(gcc make libc6-dev zlib1g-dev bzip2 perl dpkg-dev) missing=() p
    for p in "${pkgs[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if ((${#missing[@]} > 0)); then
        ds_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null || return 1
    fi
    src=$(fetch_pg_source) || return 1
    rm -rf "$PREFIX"
    mkdir -p "$SHIM/valgrind" && touch "$PREFIX/.ds-sanitize" || return 1
    write_memcheck_shim >"$SHIM/valgrind/memcheck.h"
    write_ubsan_hooks >"$SHIM/ubsan_hooks.c"
    {
        gcc -O1 -g -fPIC -c "$SHIM/ubsan_hooks.c" -o "$SHIM/ubsan_hooks.o" &&
        cd "$src" &&
        { [[ ! -f GNUmakefile ]] || make -s distclean; } &&
        ./configure "${CONFIGURE_OPTS[@]}" CFLAGS="$SAN_CFLAGS" \
            CPPFLAGS="-I$SHIM -DUSE_VALGRIND" LDFLAGS="-fsanitize=address,undefined" \
            LDFLAGS_EX="$SHIM/ubsan_hooks.o -Wl,--export-dynamic-symbol=__ubsan_default_options" &&
        make -j"$JOBS" &&
        make install &&
        make -C src/test/isolation -j"$JOBS" install   # pg_isolation_regress for PGXS
    } >"$DIR/pg-build.log" 2>&1
    local rc=$?
    cd "$ROOT" || return 1
    if ((rc != 0)); then
        tail -n 30 "$DIR/pg-build.log"
        ds_err "building PostgreSQL failed (log: $DIR/pg-build.log)"
        return 1
    fi
    echo "$want" >"$stamp"
    ds_log "built $("$PREFIX/bin/postgres" -V) in $((SECONDS - start))s"
}

# ---------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------
mkdir -p "$DIR" || exit 1
START=$SECONDS
# Debian's PostgreSQL, pgTAP, pg_prove, node (test/run.sh's dependencies)
ds_install_deps || exit 1
build_pg || exit 1
pgbin=$PREFIX/bin
sharedir=$("$pgbin/pg_config" --sharedir)
# pgTAP is plain SQL: Debian's package's files work in $PREFIX too
cp -u "/usr/share/postgresql/$DS_PG_MAJOR/extension/"pgtap* "$sharedir/extension/" || exit 1

# a copy of the work tree, without build products
TREE=$DIR/tree
rm -rf "$TREE" && mkdir -p "$TREE" || exit 1
tar -C "$ROOT" --exclude=./.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
    --exclude=./results --exclude=./output_iso --exclude=./regression.diffs \
    --exclude=./regression.out --exclude=./log --exclude=./tmp_check --exclude=./tmp_check_iso \
    --warning=no-file-changed -cf - . | tar -C "$TREE" -xf -
# status 1: a file changed while it was read (someone is editing): fine
st=("${PIPESTATUS[@]}")
((st[0] <= 1 && st[1] == 0)) || exit 1
ds_log "building durable_state with ASan + UBSan in $TREE"
if ! make -C "$TREE" -s -j"$JOBS" PG_CONFIG="$pgbin/pg_config" >"$DIR/ext-build.log" 2>&1; then
    cat "$DIR/ext-build.log"
    echo "not ok - make against $PREFIX"
    echo "0 passed, 1 failed"
    exit 1
fi
if [[ $(nm -D "$TREE/durable_state.so" | grep -c __asan_report) == 0 ]]; then
    ds_err "$TREE/durable_state.so is not instrumented"
    exit 1
fi

LOGS=$DIR/logs
rm -rf "$LOGS" && mkdir -p "$LOGS" && chmod 1777 "$LOGS" || exit 1
case ${DS_SANITIZE_HALT:-asan} in
    asan) ahalt=1 uhalt=0 ;;
    all)  ahalt=1 uhalt=1 ;;
    none) ahalt=0 uhalt=0 ;;
    *) ds_err "DS_SANITIZE_HALT must be asan, all or none"; exit 2 ;;
esac
# detect_stack_use_after_return=0: fake stacks break check_stack_depth();
# allocator_may_return_null=1: a huge malloc fails as in production (ERROR)
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=$ahalt:abort_on_error=1:print_stacktrace=1:detect_stack_use_after_return=0:allocator_may_return_null=1:log_path=$LOGS/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=$uhalt:abort_on_error=1:log_path=$LOGS/ubsan"
export DS_PGBIN=$pgbin DS_PORT=${DS_PORT:-56329}
# the sanitized server is slower: make stress's crash loop takes > 600 s
export DS_TEST_TIMEOUT=${DS_TEST_TIMEOUT:-1800}

# ---------------------------------------------------------------------------
# the suite
# ---------------------------------------------------------------------------
ds_log "test/run.sh ${*:-(every layer)} against $("$pgbin/postgres" -V) (reports in $LOGS)"
suite_start=$SECONDS
(cd "$TREE" && bash test/run.sh "$@") 2>&1 | tee "$DIR/run.log"
suite_rc=${PIPESTATUS[0]}
suite_secs=$((SECONDS - suite_start))

# ---------------------------------------------------------------------------
# the reports
# ---------------------------------------------------------------------------
echo
echo "==== sanitizer reports ($LOGS) ===="
# One block per report: ASan's from its ==PID==ERROR line, UBSan's from each
# "runtime error:" line, with the stack that follows.  The extension's files
# are compiled as src/NAME.c: shown as $ROOT/src/NAME.c.  Reports that differ
# only in addresses and PIDs are shown once, with a count.
declare -A seen=() count=()
order=()
nrep=0 nours=0
for f in "$LOGS"/asan.* "$LOGS"/ubsan.*; do
    [[ -f $f ]] || continue
    while IFS= read -r -d $'\f' rep; do
        [[ -n $rep ]] || continue
        nrep=$((nrep + 1))
        rep=$(sed -E "s#(^|[[:space:]])src/([A-Za-z0-9_]+\.[ch]:)#\1$ROOT/src/\2#g" <<<"$rep")
        key=$(grep -E 'runtime error:|ERROR: AddressSanitizer|^ *#[0-3] ' <<<"$rep" | head -n 5 |
              sed -E 's/0x[0-9a-f]+//g; s/==[0-9]+==//g')
        if [[ -z ${seen[$key]+x} ]]; then
            if grep -qE "durable_state\.so|$ROOT/src/" <<<"$rep"; then
                nours=$((nours + 1)); where="involves durable_state"
            else
                where="does not involve durable_state"
            fi
            seen[$key]="$where ($(basename "$f"))
$(grep -vE '^\s*$' <<<"$rep" | sed -n '1,40p')"
            order+=("$key")
        fi
        count[$key]=$((${count[$key]:-0} + 1))
    done < <(awk '
        /==[0-9]+==ERROR: AddressSanitizer/ || /runtime error:/ {
            if (rep != "") printf "%s\f", rep
            rep = ""; inrep = 1 }
        /^SUMMARY:|^Shadow bytes around/ { inrep = 0 }
        inrep { rep = rep $0 "\n" }
        END { if (rep != "") printf "%s\f", rep }' "$f")
done
for key in "${order[@]}"; do
    echo "---- ${count[$key]}x, ${seen[$key]}"
done
# programs' own stderr (clients) and the server log tails run.sh printed
other=$(grep -hE 'runtime error:|ERROR: AddressSanitizer|^TRAP: ' "$DIR/run.log" | sort | uniq -c)
if [[ -n $other ]]; then
    echo "---- in the suite's output (client programs, server log tails, assertion failures):"
    echo "$other"
    nrep=$((nrep + $(wc -l <<<"$other")))
fi
echo "==== ${#order[@]} distinct sanitizer report(s) ($nrep in all), $nours involving durable_state; suite ${suite_secs}s, all $((SECONDS - START))s ===="

# ---------------------------------------------------------------------------
# summary: the suite's counts, plus one for the sanitizers
# ---------------------------------------------------------------------------
read -r p f < <(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$DIR/run.log" | tail -n 1 | awk '{ print $1, $3 }')
p=${p:-0} f=${f:-0}
((suite_rc != 0 && f == 0)) && f=1
if ((nrep == 0)); then
    p=$((p + 1)); echo "ok - no sanitizer report ($(find "$LOGS" -type f | wc -l) log files)"
else
    f=$((f + 1)); echo "not ok - ${#order[@]} distinct sanitizer report(s), $nours involving durable_state (logs: $LOGS)"
fi
echo "$p passed, $f failed"
((f == 0))
