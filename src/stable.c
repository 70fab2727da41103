/*
 * stable.c
 *		The stable offset: how far readers of a stream may read, now that
 *		many writers of one stream run at once.
 *
 * Writers of one stream commit in any order, so a batch with a smaller
 * offset may still be in flight when a later one is visible.  A reader
 * must not read past it: once it has read up to offset X it must never
 * find a committed event at or below X that it did not see.  Readers here
 * need nothing but their MVCC snapshot and the log itself, so the same
 * code is right on the primary and on a hot standby:
 *
 *	 - a writer assigns its offsets and inserts its log rows under the
 *	   stream's append lock (changelog.c), so rows enter the log, and the
 *	   WAL, in offset order;
 *	 - a reader follows the log in offset order with its snapshot; between
 *	   two rows it sees, a gap is either rows of transactions that aborted
 *	   (passed over) or rows its snapshot cannot see yet (in progress, or
 *	   committed after the snapshot was taken): the reader stops before
 *	   those.  Every row of a gap was inserted before the row after it, so
 *	   a scan of the gap, started after that row was seen, finds them all.
 *
 * The tail (state.tail, snapshot-end, 'now') has no row to start from, so
 * each log row also records, as stable_seq, an offset below which every
 * batch had ended when its own offsets were assigned (from the batches in
 * flight, inflight.c).  The tail is then found by reading forward from the
 * newest visible row's stable_seq.
 *
 * Without the preload there is no list of flights: every batch then takes
 * its stream's lock in a mode that excludes the others, to commit, as
 * before, and offsets are in commit order again.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "durable_state.h"
#include "compat.h"

/* The stream whose lock a snapshot's barrier holds until its query began. */
static int32 barrier_stream = 0;

/* Transaction callback: the barrier's lock went with the transaction. */
static void
barrier_xact(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
		barrier_stream = 0;
}

/* Registers the barrier's transaction callback. */
void
ds_stable_init(void)
{
	RegisterXactCallback(barrier_xact, NULL);
}

/* ------------------------------------------------------------------------
 * Reading the log in offset order, up to the stable offset
 * ------------------------------------------------------------------------ */

/*
 * Whether a log row that snap does not see holds readers back: true if
 * its transaction is in progress, or committed after snap was taken (or is
 * our own, not yet visible to snap); false if it aborted, or if the row
 * was deleted (pruned) by a transaction snap sees.  Sets *xid to the
 * row's transaction.
 */
static bool
row_blocks(TupleTableSlot *slot, Snapshot snap, TransactionId *xid)
{
	bool		should_free;
	HeapTuple	tup = ExecFetchSlotHeapTuple(slot, false, &should_free);
	TransactionId xmin = HeapTupleHeaderGetXmin(tup->t_data);
	bool		blocks;

	if (should_free)
		heap_freetuple(tup);
	*xid = xmin;
	if (!TransactionIdIsNormal(xmin))
		return false;
	if (TransactionIdIsCurrentTransactionId(xmin) || TransactionIdIsInProgress(xmin))
		return true;
	if (TransactionIdDidCommit(xmin))
		blocks = XidInMVCCSnapshot(xmin, snap);
	else
		blocks = false;			/* aborted, or running when the server crashed */
	return blocks;
}

/*
 * Whether rows between offsets lo and hi (a gap between two rows the
 * reader's snapshot sees) hold the reader back: any row there that is not
 * of an aborted transaction or pruned.  Rows of a gap never overlap the
 * rows around it (offsets of live rows are distinct), so the rows with
 * last_seq in [lo, hi] are the gap's.
 */
static bool
gap_blocks(DsLogReader *r, int64 lo, int64 hi)
{
	ScanKeyData keys[2];
	bool		blocks = false;

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(r->stream_id));
	ScanKeyInit(&keys[1], 2, BTGreaterEqualStrategyNumber, F_INT8GE, Int64GetDatum(lo));
	if (r->gapscan == NULL)
	{
		r->gapscan = ds_index_beginscan(r->rel, r->idx, SnapshotAny, 2, 0);
		r->gapslot = table_slot_create(r->rel, NULL);
	}
	index_rescan(r->gapscan, keys, 2, NULL, 0);
	while (!blocks && index_getnext_slot(r->gapscan, ForwardScanDirection, r->gapslot))
	{
		bool		isnull;
		int64		last = DatumGetInt64(slot_getattr(r->gapslot, 3, &isnull));

		if (last > hi)
			break;
		if (table_tuple_satisfies_snapshot(r->rel, r->gapslot, r->snap))
			continue;
		blocks = row_blocks(r->gapslot, r->snap, &r->blocker);
	}
	return blocks;
}

/*
 * Begin reading stream stream_id's log after offset since with snapshot
 * snap (registered by the caller for the reader's life).
 */
void
ds_log_reader_begin(DsLogReader *r, int32 stream_id, int64 since, Snapshot snap)
{
	ScanKeyData keys[2];

	memset(r, 0, sizeof(*r));
	r->stream_id = stream_id;
	r->snap = snap;
	r->next = since + 1;
	r->rel = table_open(ds_catalog_oids()->log, AccessShareLock);
	r->idx = index_open(ds_primary_key_index(r->rel), AccessShareLock);
	r->slot = table_slot_create(r->rel, NULL);
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(stream_id));
	ScanKeyInit(&keys[1], 2, BTGreaterStrategyNumber, F_INT8GT, Int64GetDatum(since));
	r->scan = ds_index_beginscan(r->rel, r->idx, snap, 2, 0);
	index_rescan(r->scan, keys, 2, NULL, 0);
}

/*
 * The next log row the reader may read, in r->slot, with r->first and
 * r->last its offsets: false at the end of what the snapshot sees, or
 * before rows it must wait for (then r->blocked, r->blocker their
 * transaction).  r->next is then the offset after the last row read.
 */
bool
ds_log_reader_next(DsLogReader *r)
{
	bool		isnull;

	if (r->blocked || !index_getnext_slot(r->scan, ForwardScanDirection, r->slot))
		return false;
	r->first = DatumGetInt64(slot_getattr(r->slot, 2, &isnull));
	r->last = DatumGetInt64(slot_getattr(r->slot, 3, &isnull));
	if (r->first > r->next && gap_blocks(r, r->next, r->first - 1))
	{
		r->blocked = true;
		return false;
	}
	r->next = r->last + 1;
	return true;
}

/* Ends what ds_log_reader_begin began. */
void
ds_log_reader_end(DsLogReader *r)
{
	index_endscan(r->scan);
	ExecDropSingleTupleTableSlot(r->slot);
	if (r->gapscan)
	{
		index_endscan(r->gapscan);
		ExecDropSingleTupleTableSlot(r->gapslot);
	}
	index_close(r->idx, AccessShareLock);
	table_close(r->rel, AccessShareLock);
}

/*
 * The offset up to which a reader of stream stream_id with snapshot snap
 * may read after since, reading at least max_events events if there are
 * that many: the end of the last row before a gap the snapshot must wait
 * for, or of the max_events-th event's row.
 */
int64
ds_log_cap(int32 stream_id, int64 since, int64 max_events, Snapshot snap)
{
	DsLogReader r;
	int64		events = 0;
	int64		cap = since;

	ds_log_reader_begin(&r, stream_id, since, snap);
	while (events < max_events && ds_log_reader_next(&r))
	{
		events += r.last - Max(r.first, since + 1) + 1;
		cap = r.last;
	}
	ds_log_reader_end(&r);
	return cap;
}

/* The stream's floor: its tail when retention pruned the whole log. */
static int64
stream_floor(int32 stream_id, Snapshot snap)
{
	const DsCatalogOids *oids = ds_catalog_oids();
	Relation	rel = table_open(oids->streams, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	int64		floor = 0;

	ScanKeyInit(&key, oids->streams_att_id, BTEqualStrategyNumber, F_INT4EQ,
				Int32GetDatum(stream_id));
	scan = systable_beginscan(rel, oids->streams_pkey, true, snap, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;

		floor = DatumGetInt64(heap_getattr(tup, oids->streams_att_tail,
										   RelationGetDescr(rel), &isnull));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return floor;
}

/*
 * The newest log row of stream stream_id that snap sees (NULL: a dirty
 * snapshot, which sees rows of batches in progress, our own included):
 * returns its last offset, or 0 if there is none.  If first is not NULL,
 * sets *first to its first offset and *stable to its stable_seq (first
 * offset - 1 for a row written before 0.5.0, in commit order).
 */
int64
ds_log_newest(int32 stream_id, Snapshot snap, int64 *first, int64 *stable)
{
	const DsCatalogOids *oids = ds_catalog_oids();
	Relation	rel = table_open(oids->log, AccessShareLock);
	Relation	idx = index_open(ds_primary_key_index(rel), AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	SnapshotData dirty;
	ScanKeyData key;
	IndexScanDesc scan;
	int64		last = 0;

	if (snap == NULL)
	{
		InitDirtySnapshot(dirty);
		snap = &dirty;
	}
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(stream_id));
	scan = ds_index_beginscan(rel, idx, snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		bool		isnull;

		last = DatumGetInt64(slot_getattr(slot, 3, &isnull));
		if (first != NULL)
		{
			*first = DatumGetInt64(slot_getattr(slot, 2, &isnull));
			isnull = true;
			if (oids->log_att_stable != InvalidAttrNumber)
				*stable = DatumGetInt64(slot_getattr(slot, oids->log_att_stable, &isnull));
			if (isnull)
				*stable = *first - 1;
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return last;
}

/*
 * The stable tail of stream stream_id for snapshot snap: the highest
 * offset a reader with snap may read up to.  *newest is set to the
 * highest offset snap sees: if they differ, snap sees batches beyond a
 * batch it cannot see yet (a snapshot of the tables would not be the
 * fold of the log up to the tail), and *blocker is that batch's
 * transaction.
 */
int64
ds_stable_tail(int32 stream_id, Snapshot snap, int64 *newest, TransactionId *blocker)
{
	int64		floor = stream_floor(stream_id, snap);
	int64		tail = floor;
	int64		first;
	int64		from;
	int64		last = ds_log_newest(stream_id, snap, &first, &from);

	*newest = Max(floor, last);
	*blocker = InvalidTransactionId;
	if (last > 0)
	{
		DsLogReader r;

		/* every batch at or below from had ended: read on from there */
		ds_log_reader_begin(&r, stream_id, from, snap);
		tail = Max(tail, from);
		while (ds_log_reader_next(&r))
			tail = Max(tail, r.last);
		if (r.blocked)
			*blocker = r.blocker;
		ds_log_reader_end(&r);
	}
	return tail;
}

/* ------------------------------------------------------------------------
 * SQL entry points
 * ------------------------------------------------------------------------ */

/*
 * state._tail(stream_id integer) RETURNS bigint: the stream's stable tail
 * as the statement's snapshot sees it (0 for an unknown stream).  One
 * number per stream; reads the log past its row-level security, which
 * only governs the events.
 */
PG_FUNCTION_INFO_V1(ds_tail);

Datum
ds_tail(PG_FUNCTION_ARGS)
{
	int64		newest;
	TransactionId blocker;

	PG_RETURN_INT64(ds_stable_tail(PG_GETARG_INT32(0), GetActiveSnapshot(), &newest, &blocker));
}

/*
 * state._changes_cap(stream_id integer, since bigint, max_events integer)
 * RETURNS bigint: the offset up to which state.changes may return events
 * after since, with the statement's snapshot.
 */
PG_FUNCTION_INFO_V1(ds_changes_cap);

Datum
ds_changes_cap(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(ds_log_cap(PG_GETARG_INT32(0), PG_GETARG_INT64(1),
							   Max(PG_GETARG_INT32(2), 1), GetActiveSnapshot()));
}


/*
 * Sets *tail to the offset of a snapshot of stream stream_id taken with
 * snap: its stable tail, which must also be the newest offset snap sees,
 * or the rows of the tables would hold batches beyond the snapshot-end
 * offset (they would come again after it).  Returns true if it is; if
 * not, returns false when noerror, else raises
 * ERRCODE_T_R_SERIALIZATION_FAILURE (state.snapshot waits and takes
 * another snapshot under READ COMMITTED).  Ends the barrier of
 * ds_snapshot_wait: the snapshot is taken.
 */
bool
ds_snapshot_offset(int32 stream_id, Snapshot snap, bool noerror, int64 *tail)
{
	int64		newest;
	TransactionId blocker;

	*tail = ds_stable_tail(stream_id, snap, &newest, &blocker);
	if (barrier_stream == stream_id)
	{
		ds_stream_lock_release(stream_id, ShareLock);
		barrier_stream = 0;
	}
	if (*tail == newest)
		return true;
	if (noerror)
		return false;
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("could not take an exact snapshot of the stream: a batch below offset %lld was in flight",
					(long long) newest),
			 errdetail("The snapshot sees offsets up to %lld, but transaction %u, which wrote offsets after %lld, had not committed when it was taken.",
					   (long long) newest, blocker, (long long) *tail),
			 errhint("Retry the transaction, or take the snapshot in READ COMMITTED, where state.snapshot() waits for such batches.")));
	return false;
}

/*
 * Before another try at an exact snapshot of stream stream_id: waits until
 * the batch that held the last one back has ended.  With barrier, takes
 * the stream's lock in share mode instead (new batches wait, batches in
 * flight end first) and keeps it until the next snapshot is taken
 * (ds_snapshot_offset releases it).
 */
void
ds_snapshot_wait(int32 stream_id, bool barrier)
{
	TransactionId xid;

	if (barrier)
	{
		ds_stream_lock_acquire(stream_id, ShareLock);
		barrier_stream = stream_id;
		return;
	}
	/* a flight of the stream, else the batch the last snapshot saw */
	xid = ds_flight_xid(stream_id);
	if (!TransactionIdIsValid(xid))
	{
		int64		newest;

		PushActiveSnapshot(GetLatestSnapshot());
		(void) ds_stable_tail(stream_id, GetActiveSnapshot(), &newest, &xid);
		PopActiveSnapshot();
	}
	if (TransactionIdIsValid(xid) && !TransactionIdIsCurrentTransactionId(xid))
		XactLockTableWait(xid, NULL, NULL, XLTW_None);
}

/*
 * state._snapshot_tail(stream_id integer) RETURNS bigint: the offset of a
 * snapshot taken with the statement's snapshot (ds_snapshot_offset, whose
 * error it raises).
 */
PG_FUNCTION_INFO_V1(ds_snapshot_tail);

Datum
ds_snapshot_tail(PG_FUNCTION_ARGS)
{
	int64		tail;

	(void) ds_snapshot_offset(PG_GETARG_INT32(0), GetActiveSnapshot(), false, &tail);
	PG_RETURN_INT64(tail);
}

/*
 * state._snapshot_settle(stream_id integer, barrier boolean) RETURNS void:
 * ds_snapshot_wait, for a snapshot taken in SQL.
 */
PG_FUNCTION_INFO_V1(ds_snapshot_settle);

Datum
ds_snapshot_settle(PG_FUNCTION_ARGS)
{
	ds_snapshot_wait(PG_GETARG_INT32(0), PG_GETARG_BOOL(1));
	PG_RETURN_VOID();
}

/*
 * state._write_mode() RETURNS text: 'concurrent' when batches of one stream
 * run side by side here, 'serialized' when each locks its whole stream to
 * commit (no preload, durable_state.concurrent_writes off, or a catalog
 * not yet updated to 0.5.0).
 */
PG_FUNCTION_INFO_V1(ds_write_mode);

Datum
ds_write_mode(PG_FUNCTION_ARGS)
{
	bool		concurrent = ds_concurrent_writes && ds_flights_available() &&
		ds_catalog_oids()->log_att_stable != InvalidAttrNumber;

	PG_RETURN_TEXT_P(cstring_to_text(concurrent ? "concurrent" : "serialized"));
}
