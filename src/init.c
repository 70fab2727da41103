/*
 * init.c
 *		Module load: each module registers its own settings and callbacks.
 *
 * _PG_init only calls the modules' init functions; every GUC is defined
 * next to the code that reads it.  Shared memory and the background worker
 * exist only when the library is in shared_preload_libraries.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "durable_state.h"
#include "shmem.h"
#include "standbys.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * Module load: defines every GUC and registers the caches' and
 * transactions' callbacks; while shared_preload_libraries is processed,
 * also requests shared memory and registers the background worker.
 */
void
_PG_init(void)
{
	ds_event_init();
	ds_apply_init();
	ds_ingest_init();
	ds_probe_init();
	ds_notify_init();
	ds_worker_init();
	ds_launcher_init();
	ds_standbys_init();
	MarkGUCPrefixReserved("durable_state");
	if (process_shared_preload_libraries_in_progress)
	{
		ds_shared_init();
		ds_horizon_shmem_init();
		ds_standbys_shmem_init();
		/* no launcher under pg_upgrade: it restores the databases served */
		ds_launcher_register(!IsBinaryUpgrade);
		if (!IsBinaryUpgrade)
			ds_replay_watcher_register();
	}
	ds_catalog_init();
	ds_stable_init();
	ds_inflight_init();
	ds_rls_init();
}
