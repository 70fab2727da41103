/*
 * init.c
 *		Module load: GUCs and cache callbacks.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/inval.h"

#include "durable_state.h"
#include "standbys.h"

PG_MODULE_MAGIC;

int			ds_max_event_bytes = 16 * 1024 * 1024;
int			ds_max_batch_events = 1000000;
int			ds_bulk_probe_min_keys = 1000;
int			ds_bulk_probe_keys_per_block = 16;

void		_PG_init(void);

static const struct config_enum_entry notify_options[] = {
	{"off", DS_NOTIFY_OFF, false},
	{"commit", DS_NOTIFY_COMMIT, false},
	{"worker", DS_NOTIFY_WORKER, false},
	{NULL, 0, false}
};

void
_PG_init(void)
{
	DefineCustomIntVariable("durable_state.max_event_bytes",
							"Largest event, in bytes, that state.apply accepts.",
							NULL,
							&ds_max_event_bytes,
							16 * 1024 * 1024, 64, MaxAllocSize / 4,
							PGC_USERSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomIntVariable("durable_state.max_batch_events",
							"Most events one state.apply call accepts.",
							NULL,
							&ds_max_batch_events,
							1000000, 1, INT_MAX / 64,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("durable_state.bulk_probe_min_keys",
							"Fewest events on one collection for which a batch reads its primary key index whole instead of probing it per event.",
							"0 turns the bulk probe off.",
							&ds_bulk_probe_min_keys,
							1000, 0, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("durable_state.bulk_probe_keys_per_block",
							"Distinct keys per index block a batch needs before it reads the primary key index whole.",
							"0 ignores the index size (for tests).",
							&ds_bulk_probe_keys_per_block,
							16, 0, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("durable_state.notify",
							 "How subscribers hear of committed events: commit (NOTIFY in the writing transaction), worker (coalesced by the background worker) or off.",
							 NULL,
							 &ds_notify_mode,
							 DS_NOTIFY_COMMIT, notify_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("durable_state.database",
							   "Database the durable_state background worker connects to.",
							   "Worker-mode notifications and maintenance happen in this database.",
							   &ds_worker_database,
							   "postgres",
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("durable_state.txid_retention",
							"How long txids are kept for state.await_txid and state.txid_status.",
							NULL,
							&ds_txid_retention,
							86400, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("durable_state.worker_naptime",
							"How long the background worker sleeps when nothing wakes it.",
							NULL,
							&ds_worker_naptime,
							1000, 1, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("durable_state.notify_coalesce",
							"How long the background worker lets commits gather after it sent notifications (notify = worker).",
							"0 sends every hand-over at once.",
							&ds_notify_coalesce,
							1, 0, 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("durable_state.maintenance_interval",
							"How often the background worker expires TTLs and prunes txids and logs.",
							NULL,
							&ds_maintenance_interval,
							1000, 10, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	ds_standbys_init();
	MarkGUCPrefixReserved("durable_state");
	if (process_shared_preload_libraries_in_progress)
	{
		ds_shared_init();
		ds_worker_register();
	}
	ds_notify_init();
	ds_catalog_init();
	ds_changelog_init();
	ds_rls_init();
}
