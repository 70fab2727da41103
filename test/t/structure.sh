#!/usr/bin/env bash
# structure.sh -- the source tree keeps the shape the README describes:
#   * no call cycle between source files (from the built objects' symbols:
#     file A uses a symbol file B defines, so A depends on B);
#   * no C function longer than 150 lines, no source file over 2,000 lines;
#   * every SQL-callable function's PG_FUNCTION_INFO_V1 stands just above it.
# Runs after the build (test/run.sh builds first); needs nm (binutils).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
source test/lib.sh

mapfile -t objs < <(find src -name '*.o' | sort)
mapfile -t srcs < <(find src -name '*.c' | sort)
if ((${#objs[@]} == 0)); then
    not_ok "objects built (run make first)"
    echo "$PASS passed, $FAIL failed"
    exit 1
fi

# none DESCRIPTION FINDINGS: ok when FINDINGS is empty, else not ok with them
none() {
    if [[ -z $2 ]]; then
        ok "$1"
    else
        not_ok "$1"
        printf '%s\n' "$2" | sed 's/^/#   /'
    fi
}

# -- call cycles ------------------------------------------------------------
# edges "A B": A uses a symbol defined in B
edges=$(for o in "${objs[@]}"; do nm "$o" | awk -v f="$o" '$2 ~ /^[TDBR]$/ { print "D", f, $3 } $1 == "U" { print "U", f, $2 }'; done |
    awk '$1 == "D" { def[$3] = $2; next } { use[NR] = $2 " " $3 }
         END { for (i in use) { split(use[i], p, " "); if ((p[2] in def) && def[p[2]] != p[1]) print p[1], def[p[2]] } }' | sort -u)
# a cycle exists iff tsort finds one
if cycles=$(printf '%s\n' "$edges" | tsort 2>&1 >/dev/null) && [[ -z $cycles ]]; then
    ok "no call cycle between the ${#objs[@]} object files"
else
    not_ok "no call cycle between source files"
    printf '%s\n' "$cycles" | sed 's/^/#   /'
fi

# -- sizes ------------------------------------------------------------------
long=$(awk '
    FNR == 1 { fn = "" }
    /^[A-Za-z_][A-Za-z0-9_]*\(/ { fn = $0; sub(/\(.*/, "", fn) }
    /^\{/ { start = FNR }
    /^\}/ && start { if (FNR - start + 1 > 150) printf "%s:%d %s (%d lines)\n", FILENAME, start, fn, FNR - start + 1; start = 0 }
' "${srcs[@]}")
none "no C function longer than 150 lines" "$long"
big=$(wc -l "${srcs[@]}" | awk '$2 != "total" && $1 > 2000 { print $2 " (" $1 " lines)" }')
none "no source file over 2,000 lines" "$big"

# -- PG_FUNCTION_INFO_V1 just above its function ----------------------------
astray=$(awk '
    /^PG_FUNCTION_INFO_V1\(/ { name = $0; sub(/^PG_FUNCTION_INFO_V1\(/, "", name); sub(/\);.*/, "", name); want = name; line = FNR; next }
    want != "" && /^[ \t]*$/ { next }
    want != "" && /^Datum$/ { next }
    want != "" { if (index($0, want "(") != 1) printf "%s:%d %s\n", FILENAME, line, want; want = "" }
' "${srcs[@]}")
none "every PG_FUNCTION_INFO_V1 stands just above its function" "$astray"

echo "$PASS passed, $FAIL failed"
((FAIL == 0))
