#!/usr/bin/env bash
#
# test/pgbuild.sh MAJOR -- builds PostgreSQL MAJOR (17, 18) and pgTAP for it
# from Debian's source packages into /opt/postgresql-MAJOR, once per machine.
#
#   bash test/pgbuild.sh 18          # (test/lib.sh runs it for DS_PG_MAJOR=17/18)
#   bash test/pgbuild.sh --check 18  # exit 0 if it is built and up to date
#   bash test/pgbuild.sh --headers 17  # prints a directory with 17's server headers
#
# Exit status 3: the source package cannot be downloaded here (the mirror
# has answered 404 for every file of postgresql-17's).  Then --headers gives
# at least the server headers, from Debian's postgresql-server-dev-N binary
# package: downloaded with a private apt configuration (the machine's apt
# sources are not touched) and extracted into /opt/postgresql-N-headers,
# never installed; pg_config.h is adjusted to Debian 12's C library (no
# strlcpy), so the extension can be compiled, not run, against that major.
#
# Debian 12 has packages of PostgreSQL 15 only; the binary packages of 17
# (trixie) and 18 (sid) are built for a newer C library and must not be
# installed here.  So: deb-src entries for trixie and sid are added (source
# entries only: nothing is ever installed from those suites), the build
# dependencies come from bookworm, and `apt-get source --download-only` fetches
# the newest postgresql-MAJOR and pgtap source packages.  PostgreSQL is built
# from the upstream tarball inside the source package (Debian's patches are
# about Debian's file layout, which /opt does not use) with what the
# extension and its tests need: lz4 (state.log's compressed columns), zstd,
# ICU, OpenSSL, readline; then `make install` (server, client programs,
# pg_upgrade, headers and PGXS) and pg_regress / pg_isolation_regress into
# lib/pgxs for `make installcheck`.  pgTAP is built against it with its own
# pg_config.
#
# Done when $PREFIX/.ds-pgbuild-stamp holds this script's recipe hash; an
# interrupted build leaves no stamp and is redone from scratch.  On 2 shared
# cores (nice 19) a build takes about as long as the log says at its end
# ("built ... in N s"); DS_PGBUILD_JOBS sets make's -j (default: nproc).
#
# Knobs: DS_PGBUILD_PREFIX (/opt/postgresql-MAJOR), DS_PGBUILD_REBUILD=1.
set -uo pipefail

CHECK=0
HEADERS=0
if [[ ${1:-} == --check ]]; then
    CHECK=1
    shift
elif [[ ${1:-} == --headers ]]; then
    HEADERS=1
    shift
fi
MAJOR=${1:?usage: test/pgbuild.sh [--check | --headers] MAJOR}
case $MAJOR in
    1[6-9]) ;;
    *) echo "test/pgbuild.sh: PostgreSQL $MAJOR is not built from source here (15 comes from Debian's packages)" >&2; exit 2 ;;
esac
PREFIX=${DS_PGBUILD_PREFIX:-/opt/postgresql-$MAJOR}
SRCDIR=$PREFIX-src
JOBS=${DS_PGBUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}
CONFIGURE_OPTS=(--prefix="$PREFIX" --with-lz4 --with-zstd --with-icu --with-openssl
                --with-readline --with-libxml --enable-debug)
BUILD_DEPS=(gcc make libc6-dev bison flex perl pkg-config dpkg-dev bzip2 xz-utils
            libicu-dev libreadline-dev zlib1g-dev libssl-dev liblz4-dev libzstd-dev
            libxml2-dev)
SRC_LIST=/etc/apt/sources.list.d/ds-postgresql-src.sources

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# --headers: postgresql-server-dev-N's headers in $PREFIX-headers
if ((HEADERS)); then
    dir=$PREFIX-headers
    inc=$dir/usr/include/postgresql/$MAJOR/server
    if [[ -f $dir/.ds-stamp && -f $inc/pg_config.h ]]; then
        echo "$inc"
        exit 0
    fi
    ((EUID == 0)) || die "extracting PostgreSQL $MAJOR's headers into $dir needs root"
    rm -rf "$dir" && mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" || exit 1
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian %s main\n' \
        trixie sid >"$dir/apt/sources.list"
    apt_opts=(-o "Dir::Etc::SourceList=$dir/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
              -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache"
              -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
    {
        apt-get "${apt_opts[@]}" update &&
        (cd "$dir/apt" && apt-get "${apt_opts[@]}" download "postgresql-server-dev-$MAJOR") &&
        dpkg-deb -x "$(compgen -G "$dir/apt/postgresql-server-dev-${MAJOR}_*.deb" | head -n 1)" "$dir"
    } >"$dir/apt.log" 2>&1 || { tail -n 5 "$dir/apt.log" >&2; die "could not get postgresql-server-dev-$MAJOR"; }
    [[ -f $inc/pg_config.h ]] || die "no pg_config.h in postgresql-server-dev-$MAJOR"
    sed -i -e 's/^#define HAVE_DECL_STRLCPY 1/#define HAVE_DECL_STRLCPY 0/' \
           -e 's/^#define HAVE_DECL_STRLCAT 1/#define HAVE_DECL_STRLCAT 0/' \
           -e 's/^#define HAVE_STRLCPY 1/#undef HAVE_STRLCPY/' \
           -e 's/^#define HAVE_STRLCAT 1/#undef HAVE_STRLCAT/' "$inc/pg_config.h"
    rm -rf "$dir/apt"
    touch "$dir/.ds-stamp"
    echo "$inc"
    exit 0
fi

recipe() {
    printf '%s\n' "1" "${CONFIGURE_OPTS[*]}"
}
stamp=$PREFIX/.ds-pgbuild-stamp
want=$(recipe | md5sum | cut -d' ' -f1)
if [[ ${DS_PGBUILD_REBUILD:-0} != 1 && -x $PREFIX/bin/postgres &&
      $(cat "$stamp" 2>/dev/null) == "$want" ]]; then
    exit 0
fi
((CHECK == 0)) || exit 1
((EUID == 0)) || die "building PostgreSQL $MAJOR into $PREFIX needs root (run as root once)"
if [[ -e $PREFIX && ! -e $PREFIX/.ds-pgbuild ]]; then
    die "$PREFIX exists and was not made by test/pgbuild.sh; move it away or set DS_PGBUILD_PREFIX"
fi

start=$SECONDS
mkdir -p "$SRCDIR" || exit 1
BUILD_LOG=$SRCDIR/build.log
log "building PostgreSQL $MAJOR and pgTAP into $PREFIX (log $BUILD_LOG)"

# --- sources -----------------------------------------------------------------
if [[ ! -f $SRC_LIST ]]; then
    log "adding deb-src entries for trixie and sid ($SRC_LIST)"
    cat >"$SRC_LIST" <<'EOF' || exit 1
# written by durable_state test/pgbuild.sh: SOURCE packages of PostgreSQL 17
# (trixie) and 18 (sid), and of pgTAP, built into /opt/postgresql-NN.  Source
# entries only: never install binary packages from these suites on Debian 12.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie trixie-updates sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
log "apt-get update"
apt-get update >>"$BUILD_LOG" 2>&1 || { tail -n 20 "$BUILD_LOG"; die "apt-get update failed"; }
missing=()
for p in "${BUILD_DEPS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
    log "apt-get install ${missing[*]}"
    env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "${missing[@]}" >>"$BUILD_LOG" 2>&1 || { tail -n 20 "$BUILD_LOG"; die "installing build dependencies failed"; }
fi

# fetch PACKAGE VERSION-PREFIX -> prints the unpacked upstream source directory
# (newest version of PACKAGE whose version starts with VERSION-PREFIX)
fetch() {
    local pkg=$1 vpre=$2 v up tarball dir
    for v in $(apt-cache showsrc "$pkg" 2>/dev/null | awk '/^Version:/ { print $2 }' | sort -rVu); do
        [[ $v == "$vpre"* ]] || continue
        up=${v%-*}; up=${up#*:}
        # (cd in a subshell: apt-get source writes into the current
        # directory).  Only the upstream tarball is used, and the mirror
        # does not always have the .dsc and Debian's tarball: a failure
        # that still left the tarball (checked by apt) is fine.
        (cd "$SRCDIR" && apt-get source --download-only "$pkg=$v" >>"$BUILD_LOG" 2>&1)
        tarball=$(compgen -G "$SRCDIR/${pkg}_${up}.orig.tar.*" | head -n 1)
        if [[ -n $tarball ]]; then
            dir=$SRCDIR/$pkg-$up
            rm -rf "$dir" && mkdir -p "$dir" &&
                tar -C "$dir" --strip-components=1 -xf "$tarball" || return 1
            log "$pkg $v unpacked in $dir"
            echo "$dir"
            return 0
        fi
        log "$pkg $v: not downloadable, trying an older one"
    done
    return 1
}
if ! pgsrc=$(fetch "postgresql-$MAJOR" "$MAJOR"); then
    printf 'ERROR: %s\n' "the source package of postgresql-$MAJOR cannot be downloaded here (log $BUILD_LOG)" >&2
    exit 3
fi
tapsrc=$(fetch pgtap "") || tapsrc=

# --- build -------------------------------------------------------------------
rm -rf "$PREFIX"
mkdir -p "$PREFIX" && touch "$PREFIX/.ds-pgbuild" || exit 1
pgstart=$SECONDS
{
    cd "$pgsrc" &&
    nice -n 19 ./configure "${CONFIGURE_OPTS[@]}" CFLAGS="-O2 -g" &&
    nice -n 19 make -j"$JOBS" &&
    make install &&
    # pg_regress and pg_isolation_regress, where PGXS's installcheck looks
    nice -n 19 make -C src/test/isolation -j"$JOBS" install &&
    make -C src/test/regress install
} >>"$BUILD_LOG" 2>&1 || { tail -n 30 "$BUILD_LOG"; die "building PostgreSQL $MAJOR failed (log $BUILD_LOG)"; }
pgsecs=$((SECONDS - pgstart))
tapstart=$SECONDS
if [[ -n $tapsrc ]]; then
    {
        cd "$tapsrc" &&
        nice -n 19 make PG_CONFIG="$PREFIX/bin/pg_config" &&
        make PG_CONFIG="$PREFIX/bin/pg_config" install
    } >>"$BUILD_LOG" 2>&1 || { tail -n 30 "$BUILD_LOG"; die "building pgTAP for PostgreSQL $MAJOR failed (log $BUILD_LOG)"; }
else
    # No pgtap source package could be downloaded: pgTAP is plain SQL, and
    # the scripts of Debian 12's postgresql-15-pgtap (test/lib.sh installs
    # it for pg_prove's sake anyway) load in later majors too.
    log "no pgtap source package downloadable: using the SQL of Debian's postgresql-15-pgtap"
    if ! compgen -G "/usr/share/postgresql/15/extension/pgtap*.control" >/dev/null; then
        env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            postgresql-15-pgtap >>"$BUILD_LOG" 2>&1 || die "installing postgresql-15-pgtap failed"
    fi
    cp /usr/share/postgresql/15/extension/pgtap* "$PREFIX/share/extension/" || exit 1
fi
tapsecs=$((SECONDS - tapstart))
[[ -f $PREFIX/lib/pgxs/src/test/regress/pg_regress && -f $PREFIX/lib/pgxs/src/test/isolation/pg_isolation_regress &&
   -f $PREFIX/share/extension/pgtap.control ]] || die "PostgreSQL $MAJOR in $PREFIX is incomplete (log $BUILD_LOG)"
echo "$want" >"$stamp"
log "built $("$PREFIX/bin/postgres" -V) in ${pgsecs}s and pgTAP $(awk -F"'" '/default_version/ {print $2}' "$PREFIX/share/extension/pgtap.control") in ${tapsecs}s ($((SECONDS - start))s in all, -j$JOBS)"
