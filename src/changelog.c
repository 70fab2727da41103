/*
 * changelog.c
 *		Stream rows: the per-stream lock that orders the log, offsets, and
 *		the bookkeeping written back after a batch.
 *
 * A batch locks its stream's row in state._streams (SELECT ... FOR UPDATE)
 * before it applies anything and keeps the lock to commit.  Seq numbers are
 * therefore handed out in commit order: a reader whose snapshot sees a
 * batch also sees every batch with smaller offsets, so "everything after
 * offset X" never misses a later-committing smaller offset.
 *
 * The tail is read from state.log itself (the highest last_seq, found by a
 * backward scan of its primary key) after the lock is granted, with a dirty
 * snapshot: that sees the segments of the writer we may have waited for
 * even in REPEATABLE READ, and our own.  No other writer of the stream can
 * be in progress while we hold the lock.  The row itself is only rewritten
 * when the source offset or the snapshot state changes, so a transaction
 * that applies many batches does not pile up row versions.  The statements
 * are prepared once per backend (SPI_keepplan); the plan cache replans them
 * if the catalog changes.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/xact.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "durable_state.h"

static SPIPlanPtr update_plan = NULL;

/*
 * The tail each stream had after this transaction's last batch to it.  We
 * hold those streams' locks until the transaction ends, so nobody else can
 * move their tails: later batches of the transaction need not scan the
 * log.  Forgotten when the transaction ends or any subtransaction aborts
 * (its segments are gone then).  A few entries; a miss just scans the log.
 */
#define DS_TAIL_CACHE 8
typedef struct TailCacheEntry
{
	int32		stream_id;
	int64		tail;
} TailCacheEntry;

static TailCacheEntry tail_cache[DS_TAIL_CACHE];
static int	tail_cache_n = 0;

static void
tail_cache_xact(XactEvent event, void *arg)
{
	tail_cache_n = 0;
}

static void
tail_cache_subxact(SubXactEvent event, SubTransactionId mySubid,
				   SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		tail_cache_n = 0;
}

void
ds_changelog_init(void)
{
	RegisterXactCallback(tail_cache_xact, NULL);
	RegisterSubXactCallback(tail_cache_subxact, NULL);
}

/* Records the tail of a stream after a batch of this transaction. */
void
ds_stream_set_tail(int32 stream_id, int64 tail)
{
	for (int i = 0; i < tail_cache_n; i++)
	{
		if (tail_cache[i].stream_id == stream_id)
		{
			tail_cache[i].tail = tail;
			return;
		}
	}
	if (tail_cache_n < DS_TAIL_CACHE)
	{
		tail_cache[tail_cache_n].stream_id = stream_id;
		tail_cache[tail_cache_n].tail = tail;
		tail_cache_n++;
	}
}

char *
ds_format_offset(int64 seq)
{
	return psprintf("%020lld", (long long) seq);
}

/* The highest seq logged for a stream, or 0. */
static int64
log_tail(int32 stream_id)
{
	Relation	rel = table_open(ds_catalog_oids()->log, AccessShareLock);
	Relation	idx = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	SnapshotData dirty;
	ScanKeyData key;
	IndexScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	int64		tail = 0;

	InitDirtySnapshot(dirty);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(stream_id));
	scan = index_beginscan(rel, idx, &dirty, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		bool		isnull;

		tail = DatumGetInt64(slot_getattr(slot, 3, &isnull));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return tail;
}

/*
 * Locks the stream's row and reads its state: what SELECT ... FOR UPDATE
 * does, without planning a query per batch.  The row is found with the
 * statement's snapshot and locked with table_tuple_lock; under READ
 * COMMITTED a newer committed version is followed and locked (as the
 * executor's LockRows does), under REPEATABLE READ or SERIALIZABLE a
 * concurrent update is a serialization failure.  Returns false if the
 * stream does not exist.
 */
bool
ds_stream_lock(const char *name, DsStreamState *st)
{
	const DsCatalogOids *oids = ds_catalog_oids();
	Relation	rel = table_open(oids->streams, RowShareLock);
	Relation	idx = index_open(oids->streams_name_idx, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	Snapshot	snap = GetActiveSnapshot();
	IndexScanDesc scan;
	ScanKeyData key;
	TM_FailureData tmfd;
	TM_Result	res;
	bool		found;
	bool		isnull;
	Datum		d;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(name));
	key.sk_collation = idx->rd_indcollation[0];
	scan = index_beginscan(rel, idx, snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	index_close(idx, AccessShareLock);
	if (!found)
	{
		ExecDropSingleTupleTableSlot(slot);
		table_close(rel, NoLock);
		return false;
	}

	res = table_tuple_lock(rel, &slot->tts_tid, snap, slot,
						   GetCurrentCommandId(false), LockTupleExclusive,
						   LockWaitBlock,
						   TUPLE_LOCK_FLAG_LOCK_UPDATE_IN_PROGRESS |
						   (IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION),
						   &tmfd);
	switch (res)
	{
		case TM_Ok:
		case TM_SelfModified:
			break;
		case TM_Updated:
		case TM_Deleted:
			if (IsolationUsesXactSnapshot())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update of stream \"%s\"",
								ds_shorten(name, strlen(name)))));
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("stream \"%s\" was dropped concurrently", ds_shorten(name, strlen(name)))));
			break;
		default:
			elog(ERROR, "unexpected table_tuple_lock status: %u", res);
	}

	st->id = DatumGetInt32(slot_getattr(slot, oids->streams_att_id, &isnull));
	st->tail = DatumGetInt64(slot_getattr(slot, oids->streams_att_tail, &isnull));
	st->retained_from = DatumGetInt64(slot_getattr(slot, oids->streams_att_retained_from, &isnull));
	d = slot_getattr(slot, oids->streams_att_source_offset, &isnull);
	st->source_offset = isnull ? NULL : TextDatumGetCString(d);
	st->in_snapshot = DatumGetBool(slot_getattr(slot, oids->streams_att_in_snapshot, &isnull));
	st->was_in_snapshot = st->in_snapshot;
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);

	for (int i = 0; i < tail_cache_n; i++)
	{
		if (tail_cache[i].stream_id == st->id)
		{
			st->tail = Max(st->tail, tail_cache[i].tail);
			return true;
		}
	}
	st->tail = Max(st->tail, log_tail(st->id));
	return true;
}

/*
 * Writes the stream's row after a batch, if anything kept there changed.
 */
void
ds_stream_update(DsStreamState *st, const char *source_offset)
{
	Oid			argtypes[3] = {INT4OID, TEXTOID, BOOLOID};
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};
	int			ret;

	if (source_offset == NULL && st->in_snapshot == st->was_in_snapshot)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (update_plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare("UPDATE state._streams SET "
									"source_offset = coalesce($2, source_offset), "
									"in_snapshot = $3, updated_at = now() WHERE id = $1",
									3, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		update_plan = p;
	}
	args[0] = Int32GetDatum(st->id);
	if (source_offset)
		args[1] = CStringGetTextDatum(source_offset);
	else
		nulls[1] = 'n';
	args[2] = BoolGetDatum(st->in_snapshot);
	ret = SPI_execute_plan(update_plan, args, nulls, false, 0);
	if (ret != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "updating stream failed: %s", SPI_result_code_string(ret));
	SPI_finish();
	st->was_in_snapshot = st->in_snapshot;
}
