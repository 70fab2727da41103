/*
 * changelog.c
 *		Writing a stream's log: the per-stream lock that orders it, offsets,
 *		the bookkeeping written back after a batch, and the segment writer.
 *
 * A batch locks its stream's row in state._streams before it applies
 * anything, as SELECT ... FOR UPDATE would but without planning a query,
 * and keeps the lock to commit.  Seq numbers are therefore handed out in
 * commit order: a reader whose snapshot sees a batch also sees every batch
 * with smaller offsets, so "everything after offset X" never misses a
 * later-committing smaller offset.
 *
 * The tail is read from state.log itself (the highest last_seq, found by a
 * backward scan of its primary key) after the lock is granted, with a dirty
 * snapshot: that sees the segments of the writer we may have waited for,
 * and our own.  No other writer of the stream can be in progress while we
 * hold the lock.  Within a transaction the tail is remembered (tail_cache).
 * The row itself is only rewritten, directly, when the source offset or
 * the snapshot state changes, so a transaction that applies many batches
 * does not pile up row versions.
 *
 * The log writer (DsLogWriter) appends a batch's events to state.log in
 * segments: one row per DS_SEGMENT_EVENTS events or DS_SEGMENT_BYTES
 * bytes, each row an array of events (and, for tables under row-level
 * security, of their rows' images: see rls.c).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/datum.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "durable_state.h"
#include "compat.h"


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

/* the log and stream tables the cached tails were read from */
static Oid	tail_log_relid = InvalidOid;
static Oid	tail_streams_relid = InvalidOid;

/*
 * Transaction callback: forgets every remembered tail at any transaction
 * event (pre-commit, commit, abort, prepare): the transaction is ending.
 */
static void
tail_cache_xact(XactEvent event, void *arg)
{
	tail_cache_n = 0;
}

/*
 * Subtransaction callback: forgets every remembered tail when a
 * subtransaction aborts, since the segments it wrote are gone.
 */
static void
tail_cache_subxact(SubXactEvent event, SubTransactionId mySubid,
				   SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		tail_cache_n = 0;
}

/*
 * Forget every remembered tail when the log or the stream table may have
 * been replaced (DROP and CREATE EXTENSION in one transaction): the next
 * batch reads the tail from the log.
 */
static void
tail_cache_relcache(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == tail_log_relid || relid == tail_streams_relid)
		tail_cache_n = 0;
}

/* Registers the tail cache's transaction and relcache callbacks. */
void
ds_changelog_init(void)
{
	RegisterXactCallback(tail_cache_xact, NULL);
	RegisterSubXactCallback(tail_cache_subxact, NULL);
	CacheRegisterRelcacheCallback(tail_cache_relcache, (Datum) 0);
}

/*
 * Remembers tail as stream stream_id's tail until this transaction ends or
 * a subtransaction aborts; the caller holds the stream's lock.  If the
 * cache is full the tail is not remembered and the next batch scans the
 * log instead.
 */
void
ds_stream_set_tail(int32 stream_id, int64 tail)
{
	const DsCatalogOids *oids = ds_catalog_oids();

	tail_log_relid = oids->log;
	tail_streams_relid = oids->streams;
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

/* An offset as the protocol writes it: the seq as 20 zero-padded digits. */
char *
ds_format_offset(int64 seq)
{
	return psprintf("%020lld", (long long) seq);
}

/*
 * The highest seq logged for a stream, or 0: as a dirty snapshot sees it
 * (snap NULL: committed and in-progress rows, our own included), or as snap
 * sees it.
 */
static int64
log_tail(int32 stream_id, Snapshot snap)
{
	Relation	rel = table_open(ds_catalog_oids()->log, AccessShareLock);
	Relation	idx = index_open(ds_primary_key_index(rel), AccessShareLock);
	SnapshotData dirty;
	ScanKeyData key;
	IndexScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	int64		tail = 0;

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

		tail = DatumGetInt64(slot_getattr(slot, 3, &isnull));
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return tail;
}

/*
 * state._lock_stream(stream text) RETURNS boolean: takes the row lock a
 * batch takes (held to commit), for read-modify-write functions that must
 * read after every earlier batch of the stream committed.  Returns false if
 * the stream does not exist.  Raises ERRCODE_READ_ONLY_SQL_TRANSACTION in a
 * read-only transaction, and the errors of ds_stream_lock.
 */
PG_FUNCTION_INFO_V1(ds_lock_stream);

Datum
ds_lock_stream(PG_FUNCTION_ARGS)
{
	DsStreamState st;

	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot write state events in a read-only transaction")));
	PG_RETURN_BOOL(ds_stream_lock(text_to_cstring(PG_GETARG_TEXT_PP(0)), &st));
}

/*
 * Locks the stream's row and reads its state: what SELECT ... FOR UPDATE
 * does, without planning a query per batch.  The row is found with the
 * statement's snapshot and locked with table_tuple_lock; under READ
 * COMMITTED a newer committed version is followed and locked (as the
 * executor's LockRows does), under REPEATABLE READ or SERIALIZABLE a
 * concurrent update is a serialization failure.  Returns false if the
 * stream does not exist.  Otherwise fills st with the row's TID, id,
 * offsets and snapshot state, st->tail being the highest seq logged so far
 * (this transaction's own segments included).  Raises
 * ERRCODE_T_R_SERIALIZATION_FAILURE when the stream was applied to after
 * the transaction snapshot was taken, or its row updated, under REPEATABLE
 * READ or SERIALIZABLE, and ERRCODE_UNDEFINED_OBJECT when the stream was
 * dropped concurrently.
 */
bool
ds_stream_lock(const char *name, DsStreamState *st)
{
	const DsCatalogOids *oids = ds_catalog_oids();
	Relation	rel = table_open(oids->streams, RowShareLock);
	Relation	idx = index_open(oids->streams_name_idx, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	Snapshot	snap;
	IndexScanDesc scan;
	ScanKeyData key;
	TM_FailureData tmfd;
	TM_Result	res;
	bool		found;
	bool		isnull;
	Datum		d;

	/*
	 * Find the row with the statement's snapshot as of now: an earlier batch
	 * of this very statement may have rewritten it.
	 */
	CommandCounterIncrement();
	PushCopiedSnapshot(GetActiveSnapshot());
	UpdateActiveSnapshotCommandId();
	snap = GetActiveSnapshot();

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(name));
	key.sk_collation = idx->rd_indcollation[0];
	scan = ds_index_beginscan(rel, idx, snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	index_close(idx, AccessShareLock);
	if (!found)
	{
		PopActiveSnapshot();
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

	st->tid = slot->tts_tid;
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
			PopActiveSnapshot();
			return true;
		}
	}

	{
		int64		tail = log_tail(st->id, NULL);

		/*
		 * Under REPEATABLE READ or SERIALIZABLE, events another transaction
		 * committed to the stream after our snapshot was taken are invisible
		 * to us: applying after them (a reset that cannot see their rows, a
		 * strict insert that cannot see their key) would not be
		 * serializable.
		 */
		if (IsolationUsesXactSnapshot() && tail > log_tail(st->id, snap))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize access due to concurrent apply to stream \"%s\"",
							ds_shorten(name, strlen(name))),
					 errhint("Retry the transaction.")));
		st->tail = Max(st->tail, tail);
	}
	PopActiveSnapshot();
	return true;
}

/*
 * Writes the stream's row after a batch if anything kept there changed: the
 * new source_offset (if not NULL) or the snapshot state, and updated_at.
 * The caller holds the row's lock (ds_stream_lock); st->tid is moved to the
 * new row version.  Directly, like the log: this is the extension's own
 * bookkeeping, which the caller's table privileges do not govern.  Fires
 * the foreign key's triggers.
 */
void
ds_stream_update(DsStreamState *st, const char *source_offset)
{
	const DsCatalogOids *oids = ds_catalog_oids();
	Relation	rel;
	EState	   *estate;
	DsRangeTable rt = {0};
	ResultRelInfo *rri;
	TupleTableSlot *oldslot;
	TupleTableSlot *newslot;
	EPQState	epq;
	int			natts;

	if (source_offset == NULL && st->in_snapshot == st->was_in_snapshot)
		return;

	rel = table_open(oids->streams, RowExclusiveLock);
	estate = CreateExecutorState();
	ds_rt_add(&rt, rel, RowExclusiveLock, ACL_UPDATE);
	ds_exec_init_range_table(estate, &rt);
	rri = ds_result_rel_open(estate, rel, 1);
	estate->es_output_cid = GetCurrentCommandId(true);

	oldslot = table_slot_create(rel, &estate->es_tupleTable);
	if (!table_tuple_fetch_row_version(rel, &st->tid, SnapshotAny, oldslot))
		elog(ERROR, "stream row vanished");
	slot_getallattrs(oldslot);
	natts = RelationGetDescr(rel)->natts;
	newslot = ExecInitExtraTupleSlot(estate, RelationGetDescr(rel), &TTSOpsVirtual);
	ExecClearTuple(newslot);
	memcpy(newslot->tts_values, oldslot->tts_values, sizeof(Datum) * natts);
	memcpy(newslot->tts_isnull, oldslot->tts_isnull, sizeof(bool) * natts);
	if (source_offset)
	{
		newslot->tts_values[oids->streams_att_source_offset - 1] = CStringGetTextDatum(source_offset);
		newslot->tts_isnull[oids->streams_att_source_offset - 1] = false;
	}
	newslot->tts_values[oids->streams_att_in_snapshot - 1] = BoolGetDatum(st->in_snapshot);
	newslot->tts_isnull[oids->streams_att_in_snapshot - 1] = false;
	newslot->tts_values[oids->streams_att_updated_at - 1] =
		TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	newslot->tts_isnull[oids->streams_att_updated_at - 1] = false;
	ExecStoreVirtualTuple(newslot);

	/* the foreign key of state._collections has an update trigger here */
	AfterTriggerBeginQuery();
	ds_epq_init(&epq, estate);
	ExecSimpleRelationUpdate(rri, estate, &epq, oldslot, newslot);
	EvalPlanQualEnd(&epq);
	AfterTriggerEndQuery(estate);
	st->tid = newslot->tts_tid;
	st->was_in_snapshot = st->in_snapshot;

	ExecCloseResultRelations(estate);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
}

/* ------------------------------------------------------------------------
 * The log writer
 * ------------------------------------------------------------------------ */

#define DS_SEGMENT_EVENTS 1000
#define DS_SEGMENT_BYTES (1024 * 1024)

/*
 * Prepare w to append a batch's events to the log, rel (state.log, locked
 * RowExclusiveLock by the caller, at range table index rti of estate), for
 * stream stream_id, the first event getting seq first.  The segment's
 * memory is a context under the current one.
 */
void
ds_log_writer_open(DsLogWriter *w, EState *estate, Relation rel, Index rti,
				   int32 stream_id, int64 first)
{
	memset(w, 0, sizeof(*w));
	w->rel = rel;
	w->estate = estate;
	w->rri = ds_result_rel_open(estate, rel, rti);
	w->slot = ExecInitExtraTupleSlot(estate, RelationGetDescr(rel), &TTSOpsVirtual);
	/* 0.3.0's column: absent until ALTER EXTENSION UPDATE */
	w->imgatt = get_attnum(RelationGetRelid(rel), "images");
	w->stream_id = stream_id;
	w->first = first;
	w->cxt = AllocSetContextCreate(CurrentMemoryContext, "durable_state log segment",
								   ALLOCSET_DEFAULT_SIZES);
	w->events = palloc(sizeof(Datum) * DS_SEGMENT_EVENTS);
	w->images = palloc(sizeof(Datum) * DS_SEGMENT_EVENTS);
	w->imgnull = palloc(sizeof(bool) * DS_SEGMENT_EVENTS);
}

/*
 * Insert the events collected so far as one log row (stream, first seq,
 * last seq, events, time, and the images if any event has one), and start
 * a new segment.  Does nothing if the segment is empty.
 */
void
ds_log_writer_flush(DsLogWriter *w)
{
	TupleTableSlot *slot = w->slot;
	MemoryContext old;

	if (w->n == 0)
		return;
	old = MemoryContextSwitchTo(w->cxt);
	ExecClearTuple(slot);
	slot->tts_values[0] = Int32GetDatum(w->stream_id);
	slot->tts_values[1] = Int64GetDatum(w->first);
	slot->tts_values[2] = Int64GetDatum(w->first + w->n - 1);
	slot->tts_values[3] = PointerGetDatum(construct_array(w->events, w->n, JSONBOID,
														  -1, false, TYPALIGN_INT));
	slot->tts_values[4] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	memset(slot->tts_isnull, 0, sizeof(bool) * 5);
	/* any other column of a newer catalog: null unless it is images */
	for (int i = 5; i < slot->tts_tupleDescriptor->natts; i++)
		slot->tts_isnull[i] = true;
	if (w->imgatt != InvalidAttrNumber && w->has_img)
	{
		int			dims[1] = {w->n};
		int			lbs[1] = {1};

		slot->tts_values[w->imgatt - 1] =
			PointerGetDatum(construct_md_array(w->images, w->imgnull, 1, dims, lbs,
											   JSONBOID, -1, false, TYPALIGN_INT));
		slot->tts_isnull[w->imgatt - 1] = false;
	}
	ExecStoreVirtualTuple(slot);
	ExecSimpleRelationInsert(w->rri, w->estate, slot);
	ExecClearTuple(slot);
	MemoryContextSwitchTo(old);
	MemoryContextReset(w->cxt);
	w->first += w->n;
	w->n = 0;
	w->bytes = 0;
	w->has_img = false;
}

/*
 * Append one event and its row images (img, or NULL) to the segment,
 * copying both into the segment's memory; flush the segment when it is
 * full.
 */
void
ds_log_writer_append(DsLogWriter *w, DsEvent *ev, Jsonb *img)
{
	MemoryContext old = MemoryContextSwitchTo(w->cxt);

	if (w->imgatt != InvalidAttrNumber)
	{
		w->imgnull[w->n] = (img == NULL);
		w->images[w->n] = img ? datumCopy(JsonbPGetDatum(img), false, -1) : (Datum) 0;
		if (img)
		{
			w->has_img = true;
			w->bytes += VARSIZE(img);
		}
	}
	w->events[w->n++] = JsonbPGetDatum(ds_event_datum(ev));
	w->bytes += ev->root_len;
	MemoryContextSwitchTo(old);
	if (w->n >= DS_SEGMENT_EVENTS || w->bytes >= DS_SEGMENT_BYTES)
		ds_log_writer_flush(w);
}
