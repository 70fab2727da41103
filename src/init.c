/*
 * init.c
 *		Module load: GUCs and cache callbacks.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/inval.h"

#include "durable_state.h"

PG_MODULE_MAGIC;

int			ds_max_event_bytes = 16 * 1024 * 1024;
int			ds_max_batch_events = 1000000;
int			ds_bulk_probe_min_keys = 1000;
int			ds_bulk_probe_keys_per_block = 16;

void		_PG_init(void);

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
	MarkGUCPrefixReserved("durable_state");
	ds_catalog_init();
	ds_changelog_init();
}
