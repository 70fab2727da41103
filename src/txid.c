/*
 * txid.c
 *		state.await_txid and state.txid_status.
 *
 * A txid is committed once a row of state._txids naming it is visible;
 * each batch writes that row in its own transaction.  With the library
 * preloaded, committing backends also put (txid, end of commit record) in
 * a shared ring and broadcast a condition variable, and the worker
 * broadcasts it when the flushed or replicated watermark moves, so waiters
 * sleep until something changed instead of polling.  A txid the ring no
 * longer has (older, or from before a restart) is bounded by an LSN every
 * such commit precedes.  Without the preload, "committed" is found by
 * polling the table; "flushed" and "replicated" need the worker.
 */
#include "postgres.h"

#include "access/xlog.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "durable_state.h"

typedef enum DsDurability
{
	DS_DUR_COMMITTED,
	DS_DUR_FLUSHED,
	DS_DUR_REPLICATED
} DsDurability;

static SPIPlanPtr lookup_plan = NULL;

/* Is a row naming txid visible now (to the latest snapshot)? */
static bool
txid_in_table(uint64 hash)
{
	Datum		arg = Int64GetDatum((int64) hash);
	bool		found;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (lookup_plan == NULL)
	{
		Oid			argtype = INT8OID;
		SPIPlanPtr	plan = SPI_prepare("SELECT 1 FROM state._txids "
									   "WHERE hashes @> ARRAY[$1] LIMIT 1",
									   1, &argtype);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		lookup_plan = plan;
	}
	/* a fresh snapshot, whatever the isolation level */
	if (SPI_execute_snapshot(lookup_plan, &arg, NULL, GetLatestSnapshot(),
							 InvalidSnapshot, true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "txid lookup failed");
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

static DsDurability
parse_durability(text *t)
{
	char	   *s = text_to_cstring(t);

	if (strcmp(s, "committed") == 0)
		return DS_DUR_COMMITTED;
	if (strcmp(s, "flushed") == 0)
		return DS_DUR_FLUSHED;
	if (strcmp(s, "replicated") == 0)
		return DS_DUR_REPLICATED;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("durability must be \"committed\", \"flushed\" or \"replicated\", not \"%s\"",
					ds_shorten(s, strlen(s)))));
	return DS_DUR_COMMITTED;	/* keep the compiler quiet */
}

static void
need_worker(DsDurability d)
{
	if (d == DS_DUR_COMMITTED)
		return;
	if (ds_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("durability \"%s\" needs the durable_state background worker",
						d == DS_DUR_FLUSHED ? "flushed" : "replicated"),
				 errhint("Add durable_state to shared_preload_libraries and restart the server.")));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("durability \"%s\" can only be awaited on the primary",
						d == DS_DUR_FLUSHED ? "flushed" : "replicated"),
				 errhint("On a standby, a committed (visible) txid has been replicated to it.")));
}

static text *
txid_arg(FunctionCallInfo fcinfo)
{
	text	   *t;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("txid must not be null")));
	t = PG_GETARG_TEXT_PP(0);
	if (VARSIZE_ANY_EXHDR(t) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("txid must be a non-empty string")));
	return t;
}

/*
 * What is known of a txid: 0 unknown, else committed with *lsn an upper
 * bound of its commit record's end (exact if the ring has it).
 * *table_checked avoids asking the table again while the ring cannot have
 * lost it (ring_seen: the ring position at the last table check).
 */
static bool
txid_known(uint64 hash, XLogRecPtr *lsn, bool *table_checked,
		   uint64 *ring_seen)
{
	uint64		next;

	if (ds_shared && !RecoveryInProgress())
	{
		/*
		 * The ring knows the LSN; the table says whether the txid is (still)
		 * committed: its row may have been pruned or deleted since.
		 */
		if (ds_ring_lookup(hash, lsn, &next))
			return txid_in_table(hash);
		/* not in the ring: older, or not committed (yet) */
		if (*table_checked && next - *ring_seen < DS_TXID_RING)
			return false;
		*table_checked = true;
		*ring_seen = next;
		if (txid_in_table(hash))
		{
			*lsn = ds_forgotten_lsn_bound();
			return true;
		}
		return false;
	}
	*lsn = InvalidXLogRecPtr;
	return txid_in_table(hash);
}

static bool
satisfied(DsDurability d, XLogRecPtr lsn)
{
	XLogRecPtr	replicated;

	switch (d)
	{
		case DS_DUR_COMMITTED:
			return true;
		case DS_DUR_FLUSHED:
			return lsn <= GetFlushRecPtr(NULL);
		case DS_DUR_REPLICATED:
			LWLockAcquire(ds_shared->lock, LW_SHARED);
			replicated = ds_shared->replicated_lsn;
			LWLockRelease(ds_shared->lock);
			return !XLogRecPtrIsInvalid(replicated) && lsn <= replicated;
	}
	return false;
}

/* state.txid_status(txid text) RETURNS text */
PG_FUNCTION_INFO_V1(ds_txid_status);

Datum
ds_txid_status(PG_FUNCTION_ARGS)
{
	text	   *txid = txid_arg(fcinfo);
	uint64		hash = ds_txid_hash(VARDATA_ANY(txid), VARSIZE_ANY_EXHDR(txid));
	XLogRecPtr	lsn;
	bool		checked = false;
	uint64		seen = 0;
	const char *status;

	if (!txid_known(hash, &lsn, &checked, &seen))
		status = "unknown";
	else if (ds_shared == NULL || RecoveryInProgress())
		status = "committed";
	else if (satisfied(DS_DUR_REPLICATED, lsn))
		status = "replicated";
	else if (satisfied(DS_DUR_FLUSHED, lsn))
		status = "flushed";
	else
		status = "committed";
	PG_RETURN_TEXT_P(cstring_to_text(status));
}

/* state.await_txid(txid text, timeout_ms int, durability text) RETURNS boolean */
PG_FUNCTION_INFO_V1(ds_await_txid);

Datum
ds_await_txid(PG_FUNCTION_ARGS)
{
	text	   *txid = txid_arg(fcinfo);
	int			timeout_ms = PG_ARGISNULL(1) ? 5000 : PG_GETARG_INT32(1);
	DsDurability d = PG_ARGISNULL(2) ? DS_DUR_COMMITTED : parse_durability(PG_GETARG_TEXT_PP(2));
	uint64		hash = ds_txid_hash(VARDATA_ANY(txid), VARSIZE_ANY_EXHDR(txid));
	TimestampTz deadline;
	XLogRecPtr	lsn;
	bool		checked = false;
	uint64		seen = 0;
	volatile bool result = false;
	bool		shared_wait;

	if (timeout_ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout_ms must not be negative")));
	need_worker(d);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	shared_wait = ds_shared != NULL && !RecoveryInProgress();

	if (!shared_wait)
	{
		/* no shared memory (or a standby): poll the table */
		for (;;)
		{
			long		remaining;

			if (txid_known(hash, &lsn, &checked, &seen))
				PG_RETURN_BOOL(true);
			remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
			if (remaining <= 0)
				PG_RETURN_BOOL(false);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(remaining, 10), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}

	pg_atomic_fetch_add_u32(&ds_shared->waiters, 1);
	/* the worker polls the watermarks while someone waits for them */
	if (d != DS_DUR_COMMITTED)
		ds_wake_worker();
	PG_TRY();
	{
		for (;;)
		{
			long		remaining;

			if (txid_known(hash, &lsn, &checked, &seen) && satisfied(d, lsn))
			{
				result = true;
				break;
			}
			remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
			if (remaining <= 0)
				break;
			/* the first call only prepares the sleep; the loop checks again */
			(void) ConditionVariableTimedSleep(&ds_shared->cv, remaining, PG_WAIT_EXTENSION);
		}
		ConditionVariableCancelSleep();
	}
	PG_FINALLY();
	{
		pg_atomic_fetch_sub_u32(&ds_shared->waiters, 1);
	}
	PG_END_TRY();
	PG_RETURN_BOOL(result);
}
