/*
 * worker.c
 *		The durable_state background worker (shared_preload_libraries only).
 *
 * One worker per cluster, connected to durable_state.database.  Each loop:
 *	 - publishes the flushed and replicated watermarks (the replicated one
 *	   is what the standbys durable_state.replicated_standbys chooses have
 *	   replayed, see standbys.c) and wakes txid waiters when they move;
 *	 - sends the notifications committing transactions handed over
 *	   (durable_state.notify = worker), one NOTIFY per stream per loop;
 *	 - every durable_state.maintenance_interval, expires TTLs and prunes
 *	   old txids (state._housekeep), then the log of streams with a
 *	   retention in bounded chunks, one transaction each, until they are
 *	   within it (state._prune_streams; state._maintain in a catalog older
 *	   than 0.6.0).
 * It sleeps on its latch: committing backends set it, and while someone
 * waits for a watermark it wakes every millisecond.  SIGTERM stops it (the
 * postmaster starts it again after a second unless the server is shutting
 * down), SIGHUP reloads the configuration; changing durable_state.database
 * restarts it.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "durable_state.h"
#include "shmem.h"
#include "standbys.h"

static char *ds_worker_database = NULL;
static int	ds_txid_retention = 86400;
static int	ds_worker_naptime = 1000;
static int	ds_notify_coalesce = 1;
static int	ds_maintenance_interval = 1000;

/*
 * Registers the worker's settings.  They exist in every backend (so that
 * SHOW and ALTER SYSTEM know them), whether or not the worker runs.
 */
void
ds_worker_init(void)
{
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
}

/*
 * Registers the background worker with the postmaster; called from
 * _PG_init only while shared_preload_libraries is processed.  It starts
 * once recovery has finished and is restarted a second after it exits.
 */
void
ds_worker_register(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 1;
	strlcpy(bgw.bgw_library_name, "durable_state", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "ds_worker_main", BGW_MAXLEN);
	strlcpy(bgw.bgw_name, "durable_state worker", BGW_MAXLEN);
	strlcpy(bgw.bgw_type, "durable_state worker", BGW_MAXLEN);
	RegisterBackgroundWorker(&bgw);
}

/*
 * before_shmem_exit callback: clears the worker's pid and latch in shared
 * memory, unless a newer worker has already taken its place.
 */
static void
worker_exit(int code, Datum arg)
{
	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	if (ds_shared->worker_pid == MyProcPid)
	{
		ds_shared->worker_pid = 0;
		ds_shared->worker_latch = NULL;
	}
	LWLockRelease(ds_shared->lock);
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

/*
 * Runs fn in a transaction of its own, reporting what as the worker's
 * activity, and commits.  An error is logged and the transaction aborted;
 * the worker goes on.  Returns in the caller's memory context.
 */
static void
in_transaction(void (*fn) (void), const char *what)
{
	MemoryContext cxt = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, what);
	PG_TRY();
	{
		fn();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
}

static DsNotice *taken;
static char (*taken_names)[DS_STREAM_NAME_MAX];
static int	ntaken;

/*
 * Queues one NOTIFY per notice taken from the slots (taken[0..ntaken-1]),
 * to be sent when in_transaction commits, with synchronous_commit off for
 * this transaction.
 */
static void
notify_taken(void)
{
	/*
	 * Postgres gives a transaction that notifies an xid, so its commit is a
	 * WAL record; a notification need not survive a crash (the log does),
	 * so the worker does not wait for that record to be flushed, which
	 * also shortens the time it holds the global notify lock.
	 */
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	for (int i = 0; i < ntaken; i++)
		Async_Notify(ds_channel_name(taken_names[i]),
					 ds_notice_payload(taken_names[i], &taken[i]));
}

/*
 * Takes what committing transactions handed over in the slots and sends it,
 * one NOTIFY per stream, in a transaction of its own.  Returns true if
 * there was anything to send (even if sending failed and was logged),
 * false otherwise.
 */
static bool
send_notices(void)
{
	if (taken == NULL)
	{
		taken = MemoryContextAlloc(TopMemoryContext, sizeof(DsNotice) * DS_NOTIFY_SLOTS);
		taken_names = MemoryContextAlloc(TopMemoryContext,
										 DS_STREAM_NAME_MAX * DS_NOTIFY_SLOTS);
	}
	ntaken = ds_slots_take(taken, taken_names, DS_NOTIFY_SLOTS);
	if (ntaken == 0)
		return false;
	in_transaction(notify_taken, "durable_state notifications");
	ds_count(DS_CNT_NOTIFICATIONS_SENT, ntaken);
	return true;
}

/* Whether the catalog prunes in chunks (state._prune_streams, 0.6.0). */
static bool prune_in_chunks = false;
/* The log rows the last chunk deleted. */
static int64 chunk_rows = 0;

/*
 * Runs state._housekeep(durable_state.txid_retention) in this database (it
 * expires TTLs and prunes old txids; pruning the logs is prune_chunk's), or
 * state._maintain, which also prunes, in a catalog older than 0.6.0, if
 * the extension is installed here; does nothing otherwise.  Runs inside
 * in_transaction, as the bootstrap superuser the worker connects as;
 * raises an error if the SQL fails.
 */
static void
maintain(void)
{
	prune_in_chunks = false;
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT pg_catalog.to_regprocedure('state._prune_streams(integer,bigint)') IS NOT NULL"
					"  FROM pg_catalog.pg_extension WHERE extname = 'durable_state'",
					true, 1) == SPI_OK_SELECT && SPI_processed > 0)
	{
		char		sql[64];
		bool		isnull;

		prune_in_chunks = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1, &isnull));
		snprintf(sql, sizeof(sql), "SELECT state.%s(%d)",
				 prune_in_chunks ? "_housekeep" : "_maintain", ds_txid_retention);
		if (SPI_execute(sql, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "%s failed", sql);
	}
	SPI_finish();
	PopActiveSnapshot();
}

/*
 * Prunes one chunk of the log of every stream with a retention (at most
 * 1000 rows and about 100000 events each: state._prune_streams) and sets
 * chunk_rows to the rows deleted.  Runs inside in_transaction.
 */
static void
prune_chunk(void)
{
	bool		isnull;

	chunk_rows = 0;

	/*
	 * The stream's row, which a batch that needs the whole stream waits
	 * for, is locked from the chunk's last statement to its commit: not
	 * waiting for the commit's WAL flush keeps that short.  A chunk lost
	 * in a crash is pruned again (its delete and the stream's row go
	 * together either way).
	 */
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT state._prune_streams(1000, 100000)", false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "state._prune_streams() failed");
	chunk_rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											 1, &isnull));
	SPI_finish();
	PopActiveSnapshot();
}

/*
 * The maintenance of one interval: TTLs and txids, then the logs chunk by
 * chunk, each chunk in a transaction of its own (the locks it takes last
 * as long as one chunk), with notifications sent in between, until no
 * stream is beyond its retention or a chunk fails (SIGTERM ends it at
 * CHECK_FOR_INTERRUPTS).  Returns whether notifications were sent last.
 */
static bool
maintain_all(void)
{
	bool		sent = false;

	in_transaction(maintain, "durable_state maintenance");
	while (prune_in_chunks)
	{
		in_transaction(prune_chunk, "durable_state pruning");
		CHECK_FOR_INTERRUPTS();
		update_watermarks();
		sent = send_notices();
		if (chunk_rows == 0)
			break;
	}
	return sent;
}

/*
 * The worker's entry point.  Connects to durable_state.database, records
 * itself in shared memory, and loops as the file's header describes until
 * SIGTERM or postmaster death.  Exits with status 1, to be restarted, when
 * durable_state.database changes.  Never returns.
 */
void
ds_worker_main(Datum arg)
{
	char	   *dbname;
	TimestampTz next_maintenance = 0;
	bool		sent = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(ds_worker_database, NULL, 0);
	dbname = MemoryContextStrdup(TopMemoryContext, ds_worker_database);

	before_shmem_exit(worker_exit, 0);
	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	ds_shared->worker_pid = MyProcPid;
	ds_shared->worker_dbid = MyDatabaseId;
	ds_shared->worker_latch = MyLatch;
	ds_shared->worker_started_at = GetCurrentTimestamp();
	ds_shared->worker_starts++;
	/* every commit before now ended before this point */
	ds_shared->startup_lsn = GetXLogInsertRecPtr();
	LWLockRelease(ds_shared->lock);
	ereport(LOG,
			(errmsg("durable_state worker started (database \"%s\")", dbname)));

	for (;;)
	{
		TimestampTz now;
		long		nap = pg_atomic_read_u32(&ds_shared->waiters) > 0 ? 1 : ds_worker_naptime;
		/* wake for the next maintenance, not up to a nap after it is due */
		long		due = next_maintenance == 0 ? 0 :
			TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_maintenance);

		nap = Max(Min(nap, due), 1);

		/*
		 * Right after sending, the worker lets a millisecond of commits
		 * gather before it looks again: an idle stream's first commit is
		 * notified at once, a busy stream gets one notification per
		 * millisecond covering all its commits, instead of a transaction
		 * of the worker (and a wake-up of every listener) per commit.
		 */
		if (sent && ds_notify_coalesce > 0)
			(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 ds_notify_coalesce, PG_WAIT_EXTENSION);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 nap, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (strcmp(dbname, ds_worker_database) != 0)
			{
				ereport(LOG,
						(errmsg("durable_state worker restarting for database \"%s\"",
								ds_worker_database)));
				proc_exit(1);
			}
		}

		update_watermarks();
		sent = send_notices();
		now = GetCurrentTimestamp();
		if (now >= next_maintenance)
		{
			sent = maintain_all() || sent;
			next_maintenance = TimestampTzPlusMilliseconds(now, ds_maintenance_interval);
		}

		LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
		ds_shared->worker_last_loop_at = now;
		LWLockRelease(ds_shared->lock);
	}
}
