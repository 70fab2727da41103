/*
 * launcher.c
 *		The durable_state launcher (shared_preload_libraries only): one
 *		process per cluster that publishes what is cluster-wide and starts
 *		a worker (worker.c) for every database that has the extension.
 *
 * Each loop the launcher
 *	 - publishes the flushed and replicated watermarks (which standbys
 *	   count is standbys.c's) and the replicated horizon (horizon.c), and
 *	   wakes txid waiters when they moved; while someone waits, or while
 *	   standbys count and txids were committed since its last look, it
 *	   loops every millisecond;
 *	 - every durable_state.worker_naptime, or when woken for it, reads
 *	   pg_database and starts a worker for every database that
 *	   durable_state.database allows and that has none (a dynamic
 *	   background worker, as TimescaleDB's launcher starts its
 *	   schedulers).  A worker that finds no extension in its database
 *	   stops and leaves it "idle": a CREATE EXTENSION durable_state there
 *	   wakes the launcher at commit, and idle databases are looked at again
 *	   every five minutes.
 * DROP DATABASE (and ALTER DATABASE ... RENAME) need the database to
 * themselves: a utility hook stops its worker first and marks it blocked,
 * so it is not started again while the command runs (the command waits up
 * to five seconds for it to go).  At most DS_DB_WORKERS databases are
 * served; the workers count against max_worker_processes.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "durable_state.h"
#include "shmem.h"
#include "standbys.h"

#define IDLE_RECHECK_MS (5 * 60 * 1000)	/* idle databases looked at again */
#define START_TIMEOUT_MS 10000	/* a worker that never attached */
#define BLOCK_TIMEOUT_MS 10000	/* a database whose DROP failed */
#define NOSLOT_RETRY_MS 10000	/* a worker that found no slot */

char	   *ds_worker_database = NULL;
int			ds_worker_naptime = 1000;

static ProcessUtility_hook_type prev_utility_hook = NULL;
static bool created_here = false;	/* CREATE EXTENSION in this transaction */
static bool rescan = true;

/* Registers the launcher's settings (in every backend, for SHOW). */
void
ds_launcher_init(void)
{
	DefineCustomStringVariable("durable_state.database",
							   "Databases the durable_state workers serve: * for every database that has the extension, or one database's name.",
							   "Worker-mode notifications, TTL expiry and pruning happen only in the databases served.",
							   &ds_worker_database,
							   "*",
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("durable_state.worker_naptime",
							"How long the background worker sleeps when nothing wakes it.",
							NULL,
							&ds_worker_naptime,
							1000, 1, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/* Whether durable_state.database lets the workers serve database dbname. */
bool
ds_database_allowed(const char *dbname)
{
	return ds_worker_database == NULL || strcmp(ds_worker_database, "*") == 0 ||
		strcmp(ds_worker_database, dbname) == 0;
}

/*
 * Called by a database's worker once connected: records it as serving
 * dbid and returns true, or returns false if the database is being
 * dropped (the worker then exits).
 */
bool
ds_dbw_attach(Oid dbid)
{
	DsDbWorker *w;
	bool		ok;

	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	w = ds_dbw_find(dbid, true);
	ok = w != NULL && w->state != DS_DBW_BLOCKED;
	if (ok)
	{
		w->state = DS_DBW_RUNNING;
		w->pid = MyProcPid;
		w->latch = MyLatch;
		w->since = w->started_at = GetCurrentTimestamp();
		w->starts++;
	}
	LWLockRelease(ds_shared->lock);
	return ok;
}

/*
 * Called by a database's worker as it stops: its database goes to state
 * (free: to be started again; idle: no extension), unless it is blocked
 * (being dropped) or another worker took it over meanwhile.
 */
void
ds_dbw_detach(DsDbWorkerState state)
{
	DsDbWorker *w;

	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	w = ds_dbw_find(MyDatabaseId, false);
	if (w && w->pid == MyProcPid)
	{
		w->pid = 0;
		w->latch = NULL;
		if (w->state != DS_DBW_BLOCKED)
		{
			w->state = state;
			w->since = GetCurrentTimestamp();
		}
	}
	LWLockRelease(ds_shared->lock);
	ds_wake_launcher();
}

/* Called by a database's worker after each loop (for state.stats). */
void
ds_dbw_loop_done(TimestampTz now)
{
	DsDbWorker *w;

	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	w = ds_dbw_find(MyDatabaseId, false);
	if (w && w->pid == MyProcPid)
		w->last_loop_at = now;
	LWLockRelease(ds_shared->lock);
}

/*
 * Transaction callback: a committed CREATE EXTENSION durable_state has the
 * launcher start this database's worker.
 */
static void
launcher_xact(XactEvent event, void *arg)
{
	DsDbWorker *w;

	if (!created_here)
		return;
	if (event == XACT_EVENT_COMMIT)
	{
		LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
		w = ds_dbw_find(MyDatabaseId, true);
		if (w && w->state == DS_DBW_IDLE)
			w->state = DS_DBW_FREE;
		if (ds_shared->launcher_pid != 0)
			ds_shared->launcher_rescan = true;
		LWLockRelease(ds_shared->lock);
		ds_wake_launcher();
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
		created_here = false;
}

/*
 * Stops the worker of database dbname (if it has one) and blocks it from
 * being started again for a while: the command about to run needs the
 * database to itself.
 */
static void
stop_database_worker(const char *dbname)
{
	Oid			dbid = get_database_oid(dbname, true);
	DsDbWorker *w;
	pid_t		pid = 0;

	if (!OidIsValid(dbid))
		return;
	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	w = ds_dbw_find(dbid, true);
	if (w)
	{
		pid = w->pid;
		w->state = DS_DBW_BLOCKED;
		w->since = GetCurrentTimestamp();
	}
	LWLockRelease(ds_shared->lock);
	if (pid != 0)
		(void) kill(pid, SIGTERM);
}

/*
 * ProcessUtility hook: DROP DATABASE and ALTER DATABASE ... RENAME stop the
 * database's worker first; CREATE EXTENSION durable_state has the launcher
 * start one at commit.
 */
static void
launcher_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				 ProcessUtilityContext context, ParamListInfo params,
				 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *node = pstmt->utilityStmt;

	if (IsA(node, DropdbStmt))
		stop_database_worker(((DropdbStmt *) node)->dbname);
	else if (IsA(node, RenameStmt) && ((RenameStmt *) node)->renameType == OBJECT_DATABASE)
		stop_database_worker(((RenameStmt *) node)->subname);
	else if (IsA(node, CreateExtensionStmt) &&
			 strcmp(((CreateExtensionStmt *) node)->extname, "durable_state") == 0)
		created_here = true;
	if (prev_utility_hook)
		prev_utility_hook(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

/*
 * Registers the launcher with the postmaster and installs the hooks that
 * keep the databases' workers in step with CREATE EXTENSION and DROP
 * DATABASE; called from _PG_init while shared_preload_libraries is
 * processed (the launcher only outside pg_upgrade).
 */
void
ds_launcher_register(bool start)
{
	BackgroundWorker bgw;

	prev_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = launcher_utility;
	RegisterXactCallback(launcher_xact, NULL);
	if (!start)
		return;
	ds_bgworker_fill(&bgw, "ds_launcher_main", "durable_state launcher",
					 BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION,
					 BgWorkerStart_RecoveryFinished, 1);
	RegisterBackgroundWorker(&bgw);
}

/*
 * The flushed and replicated positions (which standbys count, and how far
 * they replayed, is standbys.c's) and the replicated horizon (horizon.c);
 * waiters are woken if they moved.
 */
static void
update_watermarks(void)
{
	XLogRecPtr	flushed = GetFlushRecPtr(NULL);
	XLogRecPtr	replicated;
	bool		moved = ds_standbys_advance();

	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	moved |= flushed != ds_shared->flushed_lsn;
	ds_shared->flushed_lsn = flushed;
	replicated = ds_shared->replicated_lsn;
	LWLockRelease(ds_shared->lock);
	moved |= ds_horizon_advance(replicated);
	if (moved && pg_atomic_read_u32(&ds_shared->waiters) > 0)
		ConditionVariableBroadcast(&ds_shared->cv);
}

/* Starts the worker of database dbid; returns false if no slot was free. */
static bool
start_worker(Oid dbid)
{
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;

	ds_bgworker_fill(&bgw, "ds_worker_main", "durable_state worker",
					 BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION,
					 BgWorkerStart_RecoveryFinished, BGW_NEVER_RESTART);
	bgw.bgw_main_arg = ObjectIdGetDatum(dbid);
	bgw.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&bgw, &handle);
}

/* Whether the state of w, now, calls for a worker to be started. */
static bool
wants_worker(DsDbWorker *w, TimestampTz now)
{
	switch (w->state)
	{
		case DS_DBW_FREE:
			return true;
		case DS_DBW_STARTING:
			return TimestampDifferenceExceeds(w->since, now, START_TIMEOUT_MS);
		case DS_DBW_IDLE:
			return TimestampDifferenceExceeds(w->since, now, IDLE_RECHECK_MS);
		case DS_DBW_BLOCKED:
			return TimestampDifferenceExceeds(w->since, now, BLOCK_TIMEOUT_MS);
		case DS_DBW_NOSLOT:
			return TimestampDifferenceExceeds(w->since, now, NOSLOT_RETRY_MS);
		case DS_DBW_RUNNING:
			return false;
	}
	return false;
}

/*
 * Reads pg_database and starts a worker for every database that is
 * allowed, accepts connections and wants one; forgets the databases that
 * are gone.
 */
static void
reconcile(void)
{
	Oid			seen[DS_DB_WORKERS];
	int			nseen = 0;
	TimestampTz now = GetCurrentTimestamp();
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	static bool warned_full = false;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		DsDbWorker *w;
		bool		start = false;

		if (!db->datallowconn || db->datistemplate || !ds_database_allowed(NameStr(db->datname)))
			continue;
		LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
		w = ds_dbw_find(db->oid, true);
		if (w && nseen < DS_DB_WORKERS)
			seen[nseen++] = db->oid;
		if (w && wants_worker(w, now))
		{
			w->state = DS_DBW_STARTING;
			w->since = now;
			start = true;
		}
		LWLockRelease(ds_shared->lock);
		if (w == NULL && !warned_full)
			ereport(WARNING,
					(errmsg("durable_state serves at most %d databases; database \"%s\" is not served",
							DS_DB_WORKERS, NameStr(db->datname))));
		warned_full |= w == NULL;
		if (start && !start_worker(db->oid))
		{
			ereport(WARNING,
					(errmsg("could not start the durable_state worker of database \"%s\"",
							NameStr(db->datname)),
					 errhint("Raise max_worker_processes: each database with durable_state needs a worker.")));
			LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
			w->state = DS_DBW_NOSLOT;
			w->since = now;
			LWLockRelease(ds_shared->lock);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();

	/* databases dropped, or no longer allowed, whose worker has gone */
	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < DS_DB_WORKERS; i++)
	{
		DsDbWorker *w = &ds_shared->dbw[i];
		bool		listed = false;

		for (int j = 0; j < nseen && !listed; j++)
			listed = seen[j] == w->dbid;
		if (OidIsValid(w->dbid) && !listed && w->pid == 0)
			memset(w, 0, sizeof(DsDbWorker));
	}
	LWLockRelease(ds_shared->lock);
}

/* before_shmem_exit callback: the launcher is gone. */
static void
launcher_exit(int code, Datum arg)
{
	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	if (ds_shared->launcher_pid == MyProcPid)
	{
		ds_shared->launcher_pid = 0;
		ds_shared->launcher_latch = NULL;
	}
	LWLockRelease(ds_shared->lock);
}

/*
 * The launcher's entry point: connects to no database (it reads only
 * shared catalogs), records itself, and loops as the file's header
 * describes until SIGTERM or postmaster death.  Never returns.
 */
void
ds_launcher_main(Datum arg)
{
	TimestampTz next_scan = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	before_shmem_exit(launcher_exit, 0);
	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	ds_shared->launcher_pid = MyProcPid;
	ds_shared->launcher_latch = MyLatch;
	/* every commit before now ended before this point */
	ds_shared->startup_lsn = GetXLogInsertRecPtr();
	LWLockRelease(ds_shared->lock);
	ereport(LOG, (errmsg("durable_state launcher started")));

	for (;;)
	{
		TimestampTz now;
		/* 1 ms while someone waits, or while standbys count and txids came */
		bool		busy = pg_atomic_read_u32(&ds_shared->waiters) > 0 ||
			(!XLogRecPtrIsInvalid(ds_shared->replicated_lsn) && ds_horizon_behind());
		long		nap = busy ? 1 : ds_worker_naptime;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 nap, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			rescan = true;
		}

		update_watermarks();
		now = GetCurrentTimestamp();
		LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
		rescan |= ds_shared->launcher_rescan;
		ds_shared->launcher_rescan = false;
		/* a worker that stopped (SIGTERM, an error) is started a second later */
		for (int i = 0; i < DS_DB_WORKERS; i++)
			rescan |= OidIsValid(ds_shared->dbw[i].dbid) &&
				ds_shared->dbw[i].state == DS_DBW_FREE &&
				TimestampDifferenceExceeds(ds_shared->dbw[i].since, now, 1000);
		LWLockRelease(ds_shared->lock);
		if (rescan || now >= next_scan)
		{
			rescan = false;
			reconcile();
			next_scan = TimestampTzPlusMilliseconds(now, Max(ds_worker_naptime, 1000));
		}
	}
}
