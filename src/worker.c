/*
 * worker.c
 *		The durable_state worker of one database (shared_preload_libraries
 *		only); the launcher (launcher.c) starts one for every database that
 *		has the extension.
 *
 * Each loop:
 *	 - sends the notifications committing transactions of its database
 *	   handed over (durable_state.notify = worker), one NOTIFY per stream;
 *	 - every durable_state.maintenance_interval, expires TTLs and prunes
 *	   old txids (state._housekeep), then the log of streams with a
 *	   retention in bounded chunks, one transaction each, until they are
 *	   within it (state._prune_streams; state._maintain in a catalog older
 *	   than 0.6.0); where the extension is gone (DROP EXTENSION) it stops,
 *	   until a CREATE EXTENSION there has the launcher start it again.
 * It sleeps on its latch, which committing backends set.  SIGTERM stops it
 * (the launcher starts it again within a second unless its database is
 * being dropped), SIGHUP reloads the configuration; a durable_state.database
 * that no longer names its database stops it.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/async.h"
#include "commands/dbcommands.h"
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

static int	ds_txid_retention = 86400;
static int	ds_notify_coalesce = 1;
static int	ds_maintenance_interval = 1000;

/*
 * Registers the worker's settings.  They exist in every backend (so that
 * SHOW and ALTER SYSTEM know them), whether or not the worker runs.
 */
void
ds_worker_init(void)
{
	DefineCustomIntVariable("durable_state.txid_retention",
							"How long txids are kept for state.await_txid and state.txid_status.",
							NULL,
							&ds_txid_retention,
							86400, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
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

/* before_shmem_exit callback: this database is no longer served. */
static void
worker_exit(int code, Datum arg)
{
	ds_dbw_detach(DS_DBW_FREE);
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

/* Whether the extension is installed here (as the last maintenance saw). */
static bool extension_here = true;
/* Whether the catalog prunes in chunks (state._prune_streams, 0.6.0). */
static bool prune_in_chunks = false;
/* The log rows the last chunk deleted. */
static int64 chunk_rows = 0;

/*
 * Runs state._housekeep(durable_state.txid_retention) in this database (it
 * expires TTLs and prunes old txids; pruning the logs is prune_chunk's), or
 * state._maintain, which also prunes, in a catalog older than 0.6.0, if
 * the extension is installed here; otherwise clears extension_here.  Runs inside
 * in_transaction, as the bootstrap superuser the worker connects as;
 * raises an error if the SQL fails.
 */
static void
maintain(void)
{
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prune_in_chunks = false;
	extension_here = SPI_execute("SELECT pg_catalog.to_regprocedure('state._prune_streams(integer,bigint)') IS NOT NULL"
								 "  FROM pg_catalog.pg_extension WHERE extname = 'durable_state'",
								 true, 1) == SPI_OK_SELECT && SPI_processed > 0;
	if (extension_here)
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
		sent = send_notices();
		if (chunk_rows == 0)
			break;
	}
	return sent;
}

/*
 * The entry point of a database's worker (started by the launcher with the
 * database's oid).  Connects, records itself in shared memory (or exits if
 * its database is being dropped), and loops as the file's header describes
 * until SIGTERM, postmaster death, the extension's absence or a
 * durable_state.database that no longer names its database.  Never
 * returns.
 */
void
ds_worker_main(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);
	char	   *dbname;
	TimestampTz next_maintenance = 0;
	bool		sent = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	if (!ds_dbw_attach(dbid))
		proc_exit(0);
	before_shmem_exit(worker_exit, 0);
	StartTransactionCommand();
	dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(dbid));
	CommitTransactionCommand();
	ereport(LOG,
			(errmsg("durable_state worker started (database \"%s\")", dbname)));

	for (;;)
	{
		TimestampTz now;
		/* wake for the next maintenance, not up to a nap after it is due */
		long		due = next_maintenance == 0 ? 0 :
			TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_maintenance);
		long		nap = Max(Min(ds_worker_naptime, due), 1);

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
			if (!ds_database_allowed(dbname))
			{
				ereport(LOG,
						(errmsg("durable_state worker stopping: durable_state.database does not name database \"%s\"",
								dbname)));
				ds_dbw_detach(DS_DBW_FREE);
				proc_exit(0);
			}
		}

		sent = send_notices();
		now = GetCurrentTimestamp();
		if (now >= next_maintenance)
		{
			sent = maintain_all() || sent;
			next_maintenance = TimestampTzPlusMilliseconds(now, ds_maintenance_interval);
			if (!extension_here)
			{
				ereport(LOG,
						(errmsg("durable_state worker stopping: the extension is not installed in database \"%s\"",
								dbname)));
				ds_dbw_detach(DS_DBW_IDLE);
				proc_exit(0);
			}
		}
		ds_dbw_loop_done(now);
	}
}
