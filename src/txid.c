/*
 * txid.c
 *		state.await_txid and state.txid_status: whether a client
 *		transaction's events are committed, flushed or replicated.
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

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xlog.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/xid8.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "durable_state.h"
#include "compat.h"
#include "shmem.h"

typedef enum DsDurability
{
	DS_DUR_COMMITTED,
	DS_DUR_FLUSHED,
	DS_DUR_REPLICATED
} DsDurability;

static SPIPlanPtr lookup_plan = NULL;

/* What is known of a committed txid. */
typedef struct TxidFound
{
	XLogRecPtr	lsn;			/* end of its commit record, or a bound of it */
	FullTransactionId xid;		/* its transaction; invalid before 0.6.0 */
} TxidFound;

/*
 * This backend is counted in ds_shared->waiters.  PG_FINALLY gives the count
 * back on an error, but a FATAL one (pg_terminate_backend) exits without
 * unwinding, so an exit callback does it then.
 */
static bool counted_waiter = false;
static bool exit_callback_registered = false;

/* before_shmem_exit callback: gives back this backend's waiter count. */
static void
waiter_exit(int code, Datum arg)
{
	if (counted_waiter && ds_shared)
		pg_atomic_fetch_sub_u32(&ds_shared->waiters, 1);
	counted_waiter = false;
}

/*
 * Sets *gen to the bucket of the first visible row of state._txids in
 * direction dir among those after key (if not NULL: one condition on gen)
 * and returns true, or returns false if there is none.  scan was begun
 * with as many keys.
 */
static bool
first_gen(IndexScanDesc scan, TupleTableSlot *slot, ScanKey key, ScanDirection dir, int32 *gen)
{
	bool		isnull;

	index_rescan(scan, key, key ? 1 : 0, NULL, 0);
	if (!index_getnext_slot(scan, dir, slot))
		return false;
	*gen = DatumGetInt32(slot_getattr(slot, ds_catalog_oids()->txids_att_gen, &isnull));
	return true;
}

/*
 * Whether the row in slot, found under index key key, names the txid
 * hashed as hash: a packed row (0.9.0) if hash is in its sorted array, a
 * row without one if hash is its key.
 */
static bool
row_names(TupleTableSlot *slot, int64 key, int64 hash)
{
	AttrNumber	att = ds_catalog_oids()->txids_att_packed;
	bool		isnull = true;
	Datum		d = att != InvalidAttrNumber ? slot_getattr(slot, att, &isnull) : (Datum) 0;
	ArrayType  *a;
	const int64 *h;
	int			lo = 0,
				hi;

	if (isnull)
		return key == hash;
	a = DatumGetArrayTypeP(d);
	if (ARR_HASNULL(a) || ARR_ELEMTYPE(a) != INT8OID)
		return false;			/* not what a batch writes */
	h = (const int64 *) ARR_DATA_PTR(a);
	hi = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a)) - 1;
	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (h[mid] == hash)
			return true;
		if (h[mid] < hash)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return false;
}

/*
 * Looks for rows of the txid hashed as hash in bucket gen through probe
 * (begun with two keys) under index key key (the hash, or its packed
 * group's key), setting *found if there is one and *xid to its
 * transaction.  Returns true when the search can stop: a row was found
 * here and, when horizon_in_use, the replicated horizon covers its
 * transaction.
 */
static bool
probe_key(IndexScanDesc probe, TupleTableSlot *slot, int32 gen, int64 key, int64 hash,
		  bool horizon_in_use, bool *found, FullTransactionId *xid)
{
	ScanKeyData keys[2];

	ScanKeyInit(&keys[0], DS_TXIDS_IDX_GEN, BTEqualStrategyNumber, F_INT4EQ,
				Int32GetDatum(gen));
	ScanKeyInit(&keys[1], DS_TXIDS_IDX_HASH, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(key));
	index_rescan(probe, keys, 2, NULL, 0);
	while (index_getnext_slot(probe, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d;

		if (!row_names(slot, key, hash))
			continue;
		d = slot_getattr(slot, ds_catalog_oids()->txids_att_xid, &isnull);
		*found = true;
		if (!isnull)
			*xid = DatumGetFullTransactionId(d);
		if (!horizon_in_use || ds_horizon_covers(*xid))
			return true;
	}
	return false;
}

/*
 * probe_key for the txid's own row and, in a catalog of 0.9.0 on, for the
 * packed rows of its group.
 */
static bool
probe_bucket(IndexScanDesc probe, TupleTableSlot *slot, int32 gen, uint64 hash,
			 bool horizon_in_use, bool *found, FullTransactionId *xid)
{
	int64		h = (int64) hash;

	if (probe_key(probe, slot, gen, h, h, horizon_in_use, found, xid))
		return true;
	return ds_catalog_oids()->txids_att_packed != InvalidAttrNumber &&
		ds_txid_pack_key(h) != h &&
		probe_key(probe, slot, gen, ds_txid_pack_key(h), h, horizon_in_use, found, xid);
}

/*
 * txid_in_table for a catalog of 0.6.0 or later: probes state._txids's
 * (gen, hash) index bucket by bucket, newest first, jumping over buckets
 * with no row, under the latest snapshot.  A recent txid costs one probe
 * (two descents: the newest bucket, the probe).  Once a row is found the
 * search stops, unless the replicated horizon is in use and does not
 * cover the row's transaction: then an older row of the txid (sent again
 * in a later transaction) may be replicated, and the search goes on.
 */
static bool
txid_in_index(const DsCatalogOids *oids, uint64 hash, FullTransactionId *xid)
{
	Relation	rel = table_open(oids->txids, AccessShareLock);
	Relation	idx;
	Snapshot	snap;
	TupleTableSlot *slot;
	IndexScanDesc newest,
				older,
				probe;
	bool		horizon_in_use = !XLogRecPtrIsInvalid(ds_horizon_lsn());
	bool		found = false;
	int32		gen;

	if (pg_class_aclcheck(oids->txids, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, RelationGetRelationName(rel));
	idx = index_open(oids->txids_gen_idx, AccessShareLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	slot = table_slot_create(rel, NULL);
	newest = ds_index_beginscan(rel, idx, snap, 0, 0);
	older = ds_index_beginscan(rel, idx, snap, 1, 0);
	probe = ds_index_beginscan(rel, idx, snap, 2, 0);
	*xid = InvalidFullTransactionId;
	if (first_gen(newest, slot, NULL, BackwardScanDirection, &gen))
	{
		for (;;)
		{
			ScanKeyData key;

			CHECK_FOR_INTERRUPTS();
			if (probe_bucket(probe, slot, gen, hash, horizon_in_use, &found, xid))
				break;
			/* the next older bucket that has a row */
			ScanKeyInit(&key, DS_TXIDS_IDX_GEN, BTLessStrategyNumber, F_INT4LT,
						Int32GetDatum(gen));
			if (!first_gen(older, slot, &key, BackwardScanDirection, &gen))
				break;
		}
	}
	index_endscan(probe);
	index_endscan(older);
	index_endscan(newest);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snap);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Returns true if a row of state._txids naming the txid hashed as hash is
 * visible to the latest snapshot, whatever the isolation level; false
 * otherwise.  Sets *xid to the transaction of such a row: one the
 * replicated horizon covers if there is one (a txid may be sent in more
 * than one transaction), else any; invalid for rows written before 0.6.0.
 *
 * Before 0.6.0 (one row per batch, hashes in an array under a GIN index)
 * it runs a kept SPI plan, which must go through the GIN index whatever
 * the statistics say: on a table that was never analyzed the planner
 * guesses hundreds of matches and, under LIMIT, prefers reading the table
 * from the start.  So that plan is made (and used, since a kept plan may
 * be replanned) with sequential scans disabled.
 */
static bool
txid_in_table(uint64 hash, FullTransactionId *xid)
{
	const DsCatalogOids *oids = ds_catalog_oids();
	Datum		arg = Int64GetDatum((int64) hash);
	Oid			argtype = INT8OID;
	bool		found;
	int			save_nestlevel;

	if (OidIsValid(oids->txids_gen_idx))
		return txid_in_index(oids, hash, xid);
	*xid = InvalidFullTransactionId;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	ds_keep_plan(&lookup_plan, "SELECT 1 FROM state._txids WHERE hashes @> ARRAY[$1] LIMIT 1",
				 1, &argtype);
	/* a fresh snapshot, whatever the isolation level */
	if (SPI_execute_snapshot(lookup_plan, &arg, NULL, GetLatestSnapshot(),
							 InvalidSnapshot, true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "txid lookup failed");
	found = SPI_processed > 0;
	AtEOXact_GUC(true, save_nestlevel);
	SPI_finish();
	return found;
}

/*
 * The durability level t names.  Raises ERRCODE_INVALID_PARAMETER_VALUE if
 * it is not "committed", "flushed" or "replicated".
 */
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

/*
 * Raises an error unless durability d can be awaited here: "flushed" and
 * "replicated" need the library preloaded
 * (ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE) and a primary
 * (ERRCODE_FEATURE_NOT_SUPPORTED); "committed" can always be awaited.
 */
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
				 errhint("On a standby, await durability \"committed\": a txid visible there has been replicated to it.")));
}

/*
 * The txid argument (the first) of the calling SQL function.  Raises
 * ERRCODE_NULL_VALUE_NOT_ALLOWED if it is null and
 * ERRCODE_INVALID_PARAMETER_VALUE if it is empty.
 */
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

/* What a waiter has looked at so far. */
typedef struct TxidLook
{
	uint64		ring_seen;		/* ring position up to which it was read */
	uint64		table_seen;		/* ring position at the last table look-up */
	bool		table_checked;
} TxidLook;

/*
 * Returns true if the txid hashed as hash is committed, setting f->lsn to
 * its commit record's end (exact if the ring has it) or an upper bound of
 * it (InvalidXLogRecPtr without shared memory or on a standby) and f->xid
 * to its transaction; returns false otherwise.  look carries what this
 * waiter has read across calls.
 *
 * The table decides: a txid is committed while a visible row of
 * state._txids names it (its row may be pruned or deleted, the ring does
 * not know).  A commit puts its txids in the ring after it became visible,
 * so a txid the ring does not have was either committed before the ring's
 * oldest entry (the table has it) or not yet (it will appear in the ring).
 * A waiter therefore reads the table once, and then only when the ring
 * entries published since its last look name the txid, or the ring went
 * round in between.  Without shared memory (or on a standby, whose ring
 * does not see the primary's commits) the table alone decides.
 */
static bool
txid_known(uint64 hash, TxidFound *f, TxidLook *look)
{
	uint64		next;

	if (ds_shared && !RecoveryInProgress())
	{
		bool		in_ring = ds_ring_lookup(hash, look->ring_seen, &f->lsn, &f->xid, &next);
		FullTransactionId table_xid;

		look->ring_seen = next;
		if (!in_ring && look->table_checked && next - look->table_seen < DS_TXID_RING)
			return false;
		look->table_checked = true;
		look->table_seen = next;
		if (!txid_in_table(hash, &table_xid))
			return false;
		if (!in_ring)
		{
			f->lsn = ds_forgotten_lsn_bound();
			f->xid = table_xid;
		}
		return true;
	}
	f->lsn = InvalidXLogRecPtr;
	return txid_in_table(hash, &f->xid);
}

/*
 * Returns true if committed txid f meets durability d: always for
 * "committed", once WAL is flushed past its commit for "flushed"; for
 * "replicated", once the replicated horizon covers its transaction
 * (horizon.c: never taken back), or for a row written before 0.6.0, once
 * the replicated watermark the worker published is past its commit.
 * Requires shared memory for "replicated".
 */
static bool
satisfied(DsDurability d, const TxidFound *f)
{
	XLogRecPtr	replicated;

	switch (d)
	{
		case DS_DUR_COMMITTED:
			return true;
		case DS_DUR_FLUSHED:
			return f->lsn <= GetFlushRecPtr(NULL) || satisfied(DS_DUR_REPLICATED, f);
		case DS_DUR_REPLICATED:
			if (FullTransactionIdIsValid(f->xid))
				return ds_horizon_covers(f->xid);
			LWLockAcquire(ds_shared->lock, LW_SHARED);
			replicated = ds_shared->replicated_lsn;
			LWLockRelease(ds_shared->lock);
			return !XLogRecPtrIsInvalid(replicated) && f->lsn <= replicated;
	}
	return false;
}

/*
 * state.txid_status(txid text) RETURNS text: "unknown" if the txid is not
 * committed, else the strongest of "replicated", "flushed" and "committed"
 * that holds now ("committed" without the preload or on a standby).  Does
 * not wait.
 */
PG_FUNCTION_INFO_V1(ds_txid_status);

Datum
ds_txid_status(PG_FUNCTION_ARGS)
{
	text	   *txid = txid_arg(fcinfo);
	uint64		hash = ds_txid_hash(VARDATA_ANY(txid), VARSIZE_ANY_EXHDR(txid));
	TxidFound	f;
	TxidLook	look = {0};
	const char *status;

	if (!txid_known(hash, &f, &look))
		status = "unknown";
	else if (ds_shared == NULL || RecoveryInProgress())
		status = "committed";
	else if (satisfied(DS_DUR_REPLICATED, &f))
		status = "replicated";
	else if (satisfied(DS_DUR_FLUSHED, &f))
		status = "flushed";
	else
		status = "committed";
	PG_RETURN_TEXT_P(cstring_to_text(status));
}

/*
 * state.await_txid(txid text, timeout_ms int, durability text) RETURNS
 * boolean: waits up to timeout_ms (default 5000) until the txid is
 * committed and meets durability (default "committed"), and returns true
 * then, false on timeout.  With shared memory on a primary it sleeps on the
 * shared condition variable, counted in ds_shared->waiters; otherwise it
 * polls the table every 10 ms.  Raises ERRCODE_INVALID_PARAMETER_VALUE for
 * a negative timeout or unknown durability, and the errors of txid_arg and
 * need_worker.  Interruptible.
 */
PG_FUNCTION_INFO_V1(ds_await_txid);

Datum
ds_await_txid(PG_FUNCTION_ARGS)
{
	text	   *txid = txid_arg(fcinfo);
	int			timeout_ms = PG_ARGISNULL(1) ? 5000 : PG_GETARG_INT32(1);
	DsDurability d = PG_ARGISNULL(2) ? DS_DUR_COMMITTED : parse_durability(PG_GETARG_TEXT_PP(2));
	uint64		hash = ds_txid_hash(VARDATA_ANY(txid), VARSIZE_ANY_EXHDR(txid));
	TimestampTz deadline;
	TxidFound	f = {InvalidXLogRecPtr};
	TxidLook	look = {0};
	bool		known = false;
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

			if (txid_known(hash, &f, &look))
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

	if (!exit_callback_registered)
	{
		before_shmem_exit(waiter_exit, 0);
		exit_callback_registered = true;
	}
	pg_atomic_fetch_add_u32(&ds_shared->waiters, 1);
	counted_waiter = true;
	/* the worker polls the watermarks while someone waits for them */
	if (d != DS_DUR_COMMITTED)
		ds_wake_launcher();
	PG_TRY();
	{
		for (;;)
		{
			long		remaining;

			/* once known, only the watermarks are left to wait for */
			if (!known)
				known = txid_known(hash, &f, &look);
			if (known && satisfied(d, &f))
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
		counted_waiter = false;
	}
	PG_END_TRY();
	PG_RETURN_BOOL(result);
}
