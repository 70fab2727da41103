#!/usr/bin/env bash
#
# test/t/differential_bulk.sh -- the differential test again, with the bulk
# primary-key probe forced for every batch (durable_state.bulk_probe_min_keys
# = 1 and no index-size rule), so both key-lookup paths of the engine are
# compared with the independent model.  Another seed and database.
export PGOPTIONS="${PGOPTIONS:-} -c durable_state.bulk_probe_min_keys=1 -c durable_state.bulk_probe_keys_per_block=0"
export DS_DIFF_DB=ds_differential_bulk
export DS_DIFF_SEED=${DS_DIFF_SEED_BULK:-20261125}
exec bash "$(dirname "${BASH_SOURCE[0]}")/differential.sh"
