#!/usr/bin/env bash
# The chat room example, with one command:
#
#   bash examples/chat/run.sh            # terminal 1: starts Postgres, shows the room live
#   bash examples/chat/run.sh demo       # terminal 2: a scripted conversation
#   bash examples/chat/run.sh say ann hello there
#   bash examples/chat/run.sh stop       # stops the cluster and removes its files
#
# The first call installs what is missing (Postgres 15 and the extension,
# as the tests do, and the Node client's packages), starts a cluster that
# stays up (its address is kept in /tmp/durable-state-chat/env.sh) and
# creates the collections (schema.sql).  Every command then runs
# chat.mjs against it.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STATE=/tmp/durable-state-chat
# shellcheck source=/dev/null
source "$ROOT/test/lib.sh"

if [[ ${1:-} == stop ]]; then
    if [[ -f $STATE/env.sh ]]; then
        # shellcheck source=/dev/null
        source "$STATE/env.sh"
        DS_TMP=$DS_TMP ds_stop_cluster 0
    fi
    rm -rf "$STATE"
    exit 0
fi

running() {
    [[ -f $STATE/env.sh ]] && (source "$STATE/env.sh" && psql -X -qAt -c 'SELECT 1' >/dev/null 2>&1)
}
if ! running; then
    ds_install_deps
    ds_build_install >/dev/null
    export DS_PORT=${DS_PORT:-55432} DS_NO_TRAP=1 KEEP=1
    ds_start_cluster
    mkdir -p "$STATE"
    cp "$DS_TMP/env.sh" "$STATE/env.sh"
    psql -X -q -v ON_ERROR_STOP=1 -f "$HERE/schema.sql" >/dev/null
fi
# shellcheck source=/dev/null
source "$STATE/env.sh"
ds_npm_install clients/node >/dev/null
exec node "$HERE/chat.mjs" "${@:-watch}"
