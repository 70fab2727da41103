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
	MarkGUCPrefixReserved("durable_state");
	ds_catalog_init();
	ds_changelog_init();
}
