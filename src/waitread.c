/*
 * waitread.c
 *		Waiting reads: state.changes(..., wait_ms) sleeps until its stream
 *		has something readable, on a primary and on a hot standby.
 *
 * A reader that found nothing after its offset sleeps on one of
 * DS_STREAM_CVS condition variables in shared memory (the stream's, by a
 * hash of database and stream) and reads again, with a new snapshot, each
 * time it is woken, until it finds events or its time is up:
 *	 - on a primary, every transaction that applied events of a stream
 *	   wakes the stream's readers when it ends (notify.c): a commit makes
 *	   its events readable, and an abort can unblock a reader stopped at
 *	   the gap the batch left;
 *	 - on a standby no transaction ends there: the replay watcher, a
 *	   background worker running only during recovery, wakes every reader
 *	   when replay moves, checking every millisecond while someone waits
 *	   (and sleeping otherwise), so waiting backends do not poll the log.
 * Without the preload there is no shared memory: readers poll every 10 ms.
 * The sleep is interruptible (cancel, statement_timeout, terminate) and
 * ends with the postmaster.  One statement, no session state: it works
 * through a transaction-pooling pooler.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "durable_state.h"
#include "shmem.h"

/* This backend is counted in stream_waiters (given back at exit too). */
static bool counted = false;
static bool exit_registered = false;

static ConditionVariable *
stream_cv(Oid dbid, int32 stream_id)
{
	uint32		h = hash_combine(murmurhash32((uint32) dbid), murmurhash32((uint32) stream_id));

	return &ds_shared->stream_cv[h % DS_STREAM_CVS];
}

/*
 * Wakes the readers waiting for stream stream_id of this database: a
 * transaction that applied its events ended.  Cheap when nobody waits.
 */
void
ds_wake_stream_readers(int32 stream_id)
{
	if (ds_shared == NULL || pg_atomic_read_u32(&ds_shared->stream_waiters) == 0)
		return;
	ConditionVariableBroadcast(stream_cv(MyDatabaseId, stream_id));
}

/* before_shmem_exit callback: gives back this backend's waiter count. */
static void
waiter_exit(int code, Datum arg)
{
	if (counted && ds_shared)
		pg_atomic_fetch_sub_u32(&ds_shared->stream_waiters, 1);
	counted = false;
}

/*
 * Calls read(arg) until it returns more than zero (events were found) or
 * wait_ms have passed, sleeping in between until stream stream_id may have
 * more; returns read's last result.  read takes its own new snapshot each
 * time.  The first call is made at once.
 */
int64
ds_wait_for_stream(int32 stream_id, int wait_ms, int64 (*read) (void *), void *arg)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
	ConditionVariable *cv = ds_shared ? stream_cv(MyDatabaseId, stream_id) : NULL;
	volatile int64 n = 0;

	if (cv == NULL)
	{
		/* no shared memory: poll */
		for (;;)
		{
			long		remaining;

			if ((n = read(arg)) > 0)
				return n;
			remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
			if (remaining <= 0)
				return n;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(remaining, 10), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}

	if (!exit_registered)
	{
		before_shmem_exit(waiter_exit, 0);
		exit_registered = true;
	}
	pg_atomic_fetch_add_u32(&ds_shared->stream_waiters, 1);
	counted = true;
	if (RecoveryInProgress() && ds_shared->replay_latch)
		SetLatch(ds_shared->replay_latch);
	PG_TRY();
	{
		/* prepared before the first read: a commit after it wakes us */
		ConditionVariablePrepareToSleep(cv);
		for (;;)
		{
			long		remaining;

			if ((n = read(arg)) > 0)
				break;
			remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
			if (remaining <= 0)
				break;
			(void) ConditionVariableTimedSleep(cv, remaining, PG_WAIT_EXTENSION);
		}
		ConditionVariableCancelSleep();
	}
	PG_FINALLY();
	{
		pg_atomic_fetch_sub_u32(&ds_shared->stream_waiters, 1);
		counted = false;
	}
	PG_END_TRY();
	return n;
}

/* ------------------------------------------------------------------------
 * The replay watcher (hot standbys)
 * ------------------------------------------------------------------------ */

/* Registers the replay watcher; from _PG_init while preloading. */
void
ds_replay_watcher_register(void)
{
	BackgroundWorker bgw;

	ds_bgworker_fill(&bgw, "ds_replay_watcher_main", "durable_state replay watcher",
					 BGWORKER_SHMEM_ACCESS, BgWorkerStart_ConsistentState, 1);
	RegisterBackgroundWorker(&bgw);
}

/*
 * The replay watcher's entry point: while the server is in recovery, wakes
 * every waiting reader when replay has moved, looking every millisecond
 * while someone waits (readers set its latch when they start) and every
 * second otherwise.  Exits with status 0 (not to be started again) once
 * recovery has ended, or at once on a primary.
 */
void
ds_replay_watcher_main(Datum arg)
{
	XLogRecPtr	seen = InvalidXLogRecPtr;

	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	if (!RecoveryInProgress())
		proc_exit(0);
	ds_shared->replay_latch = MyLatch;
	while (!ShutdownRequestPending)
	{
		bool		waiting = pg_atomic_read_u32(&ds_shared->stream_waiters) > 0;
		XLogRecPtr	replayed;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 waiting ? 1 : 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!RecoveryInProgress())
			break;
		replayed = GetXLogReplayRecPtr(NULL);
		if (replayed != seen && pg_atomic_read_u32(&ds_shared->stream_waiters) > 0)
		{
			for (int i = 0; i < DS_STREAM_CVS; i++)
				ConditionVariableBroadcast(&ds_shared->stream_cv[i]);
		}
		seen = replayed;
	}
	ds_shared->replay_latch = NULL;
	proc_exit(0);
}
