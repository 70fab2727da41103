#!/usr/bin/env bash
#
# test/demo.sh -- build, install and try durable_state in one command.
#
#   bash test/demo.sh            # run the demo on a throwaway cluster, then remove it
#   KEEP=1 bash test/demo.sh     # leave the cluster running and print how to connect
#
# Installs Postgres 15 + headers with apt-get if missing (Debian 12, root),
# builds and installs the extension, starts a throwaway cluster with
# shared_preload_libraries = 'durable_state' (as user "dstest" when run as
# root), and runs test/demo.sql through psql, echoing every statement.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/lib.sh
source test/lib.sh

ds_install_deps
ds_build_install
ds_start_cluster    # sets an EXIT trap that stops the cluster (unless KEEP=1)

echo
ds_log "running test/demo.sql"
psql -X -e -v ON_ERROR_STOP=1 -f test/demo.sql </dev/null
echo
ds_log "demo finished"
