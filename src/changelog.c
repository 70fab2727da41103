/*
 * changelog.c
 *		Writing a stream's log: the locks that order its writers, offsets,
 *		the bookkeeping written back after a batch, and the log writer.
 *
 * Writers of one stream run side by side.  A batch takes, as heavyweight
 * locks held to commit (shown in pg_locks as advisory locks of the
 * database with objsubid 25715 and 25717, see inflight.c):
 *
 *	 - the stream's lock: in ROW EXCLUSIVE mode for an ordinary batch, so
 *	   they do not wait for each other; in EXCLUSIVE mode for what needs
 *	   the whole stream (reset, snapshot-start/-end, source_offset, a batch
 *	   with more keys than durable_state.max_key_locks, and every batch
 *	   without the preload or with durable_state.concurrent_writes off);
 *	 - in EXCLUSIVE mode, one lock per key it changes (type and key,
 *	   hashed), in hash order before it applies anything: two batches that
 *	   touch one key are applied one after the other, including a delete of
 *	   a missing key racing its insert, which no row lock covers.
 *
 * Offsets are handed out only at the end of a batch, when it holds every
 * lock it needs, under the stream's append lock (a short LWLock): the tail
 * is the last offset handed out (remembered by the lock, else read from
 * the log: its highest last_seq, found by a backward scan of its primary
 * key with SnapshotAny, so rows of batches in flight or rolled back
 * count), the batch's rows are inserted, the lock is released.  So rows enter the log
 * and the WAL in offset order, and a later batch on the same key gets
 * later offsets.  Commits may still come in another order: readers stop
 * at the stable offset (stable.c).
 *
 * The stream's row in state._streams is only locked and rewritten by the
 * batches that need the whole stream (it keeps the source offset and the
 * snapshot state).
 *
 * The log writer (DsLogWriter) collects a batch's events and writes them
 * to state.log in segments: one row per DS_SEGMENT_EVENTS events or
 * DS_SEGMENT_BYTES bytes, each row an array of events (and, for tables
 * under row-level security, of their rows' images: see rls.c).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/datum.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "durable_state.h"
#include "compat.h"

/*
 * Whether batches of stream stream_id may run side by side with others in
 * this session and transaction: the preload's flights exist, the setting
 * allows it, the log records stable offsets (ALTER EXTENSION UPDATE done)
 * and this transaction can list one more stream.
 */
bool
ds_stream_concurrent(int32 stream_id)
{
	return ds_concurrent_writes && ds_flights_available() &&
		ds_catalog_oids()->log_att_stable != InvalidAttrNumber &&
		ds_flight_room(stream_id);
}

/* An offset as the protocol writes it: the seq as 20 zero-padded digits. */
char *
ds_format_offset(int64 seq)
{
	return psprintf("%020lld", (long long) seq);
}

/*
 * Whether the transaction's snapshot sees every batch of the stream that
 * committed (the caller has the stream to itself, so none is in flight):
 * none beyond the newest it sees, and none in a gap below it (a batch that
 * was in flight below a visible one when the snapshot was taken).
 */
static bool
snapshot_sees_stream(int32 stream_id)
{
	int64		newest;
	TransactionId blocker;

	(void) ds_stable_tail(stream_id, GetActiveSnapshot(), &newest, &blocker);
	return !TransactionIdIsValid(blocker) && ds_log_newest(stream_id, NULL, NULL, NULL) <= newest;
}

/* Refuses writing in a read-only transaction (the functions below write). */
static void
check_writable(void)
{
	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot write state events in a read-only transaction")));
}

/*
 * state._lock_stream(stream text) RETURNS boolean: takes the lock a batch
 * that needs the whole stream takes (held to commit): no other batch of
 * the stream runs until the transaction ends.  Returns false if the stream
 * does not exist.  Raises ERRCODE_READ_ONLY_SQL_TRANSACTION in a read-only
 * transaction, and the errors of ds_stream_open.
 */
PG_FUNCTION_INFO_V1(ds_lock_stream);

Datum
ds_lock_stream(PG_FUNCTION_ARGS)
{
	DsStreamState st;

	check_writable();
	PG_RETURN_BOOL(ds_stream_open(text_to_cstring(PG_GETARG_TEXT_PP(0)), &st, true));
}

/*
 * state._lock_key(stream text, type text, key text) RETURNS boolean: takes
 * the locks a batch changing that key takes (held to commit), for
 * read-modify-write functions (state.increment, state.put with
 * expected_version): no other batch changes the key until the transaction
 * ends, and every earlier one has committed.  Batches on other keys go on.
 * Returns false if the stream does not exist.
 */
PG_FUNCTION_INFO_V1(ds_lock_key);

Datum
ds_lock_key(PG_FUNCTION_ARGS)
{
	DsStreamState st;
	text	   *type = PG_GETARG_TEXT_PP(1);
	text	   *key = PG_GETARG_TEXT_PP(2);
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	uint32		hash;

	check_writable();
	if (!ds_stream_open(name, &st, false))
		PG_RETURN_BOOL(false);
	if (!st.exclusive)
	{
		hash = ds_key_lock_hash(VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type),
								VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
		ds_lock_keys(st.id, &hash, 1);
	}
	PG_RETURN_BOOL(true);
}

/*
 * Where this backend last found the rows of the streams it writes: a
 * stream's row is rewritten only by batches that need the whole stream, so
 * an ordinary batch usually finds it where the last one did, by its TID,
 * without a descent of the name index.  A hint only: the version there
 * counts if it is in the table, visible to the batch's snapshot and has
 * the name (a visible row with the name is the stream's row, the name
 * being unique); anything else (moved, vacuumed away and reused, the table
 * truncated or rewritten, another catalog) falls back to the index and
 * replaces the entry.  Entries are reused round robin.
 */
#define DS_STREAM_TIDS 16

typedef struct StreamTid
{
	Oid			rel;			/* state._streams it was found in */
	ItemPointerData tid;
	char		name[NAMEDATALEN];	/* empty: unused */
} StreamTid;

static StreamTid stream_tids[DS_STREAM_TIDS];
static int	stream_tids_next = 0;

/* The entry of name (of at most NAMEDATALEN - 1 bytes), or NULL. */
static StreamTid *
stream_tid_entry(Oid rel, const char *name)
{
	for (int i = 0; i < DS_STREAM_TIDS; i++)
		if (stream_tids[i].rel == rel && strcmp(stream_tids[i].name, name) == 0)
			return &stream_tids[i];
	return NULL;
}

/* Remembers that stream name's row is at tid (names too long are not kept). */
static void
stream_tid_remember(Oid rel, const char *name, ItemPointer tid)
{
	StreamTid  *e;

	if (strlen(name) >= NAMEDATALEN)
		return;
	e = stream_tid_entry(rel, name);
	if (e == NULL)
	{
		e = &stream_tids[stream_tids_next];
		stream_tids_next = (stream_tids_next + 1) % DS_STREAM_TIDS;
		e->rel = rel;
		strlcpy(e->name, name, NAMEDATALEN);
	}
	e->tid = *tid;
}

/*
 * Whether the row version at the remembered TID of stream name is its row
 * as the active snapshot sees it; if so it is in slot.
 */
static bool
stream_row_at_tid(Relation rel, const char *name, TupleTableSlot *slot)
{
	StreamTid  *e = strlen(name) < NAMEDATALEN ?
		stream_tid_entry(RelationGetRelid(rel), name) : NULL;
	ItemPointerData tid;
	bool		isnull;
	Datum		d;
	text	   *stored;

	if (e == NULL)
		return false;
	tid = e->tid;
	/* VACUUM may have truncated the table, VACUUM FULL rewritten it */
	if (ItemPointerGetBlockNumber(&tid) >= RelationGetNumberOfBlocks(rel))
		return false;
	if (!table_tuple_fetch_row_version(rel, &tid, GetActiveSnapshot(), slot))
		return false;
	d = slot_getattr(slot, ds_catalog_oids()->streams_att_name, &isnull);
	if (isnull)
		return false;
	stored = DatumGetTextPP(d);
	return VARSIZE_ANY_EXHDR(stored) == strlen(name) &&
		memcmp(VARDATA_ANY(stored), name, strlen(name)) == 0;
}

/*
 * Finds stream name's row with the statement's snapshot as of now (an
 * earlier batch of this very statement may have rewritten it) into slot:
 * at its remembered TID, else through the name index.
 */
static bool
find_stream_row(Relation rel, const char *name, TupleTableSlot *slot)
{
	Relation	idx;
	ScanKeyData key;
	IndexScanDesc scan;
	bool		found;

	if (stream_row_at_tid(rel, name, slot))
		return true;
	idx = index_open(ds_catalog_oids()->streams_name_idx, AccessShareLock);

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(name));
	key.sk_collation = idx->rd_indcollation[0];
	scan = ds_index_beginscan(rel, idx, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	index_close(idx, AccessShareLock);
	if (found)
		stream_tid_remember(RelationGetRelid(rel), name, &slot->tts_tid);
	return found;
}

/*
 * Locks the stream's row found in slot, as SELECT ... FOR UPDATE does:
 * under READ COMMITTED a newer committed version is followed and locked
 * (as the executor's LockRows does), under REPEATABLE READ or SERIALIZABLE
 * a concurrent update is a serialization failure.
 */
static void
lock_stream_row(Relation rel, const char *name, TupleTableSlot *slot)
{
	TM_FailureData tmfd;
	TM_Result	res;

	res = table_tuple_lock(rel, &slot->tts_tid, GetActiveSnapshot(), slot,
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
}

/*
 * Opens a stream for a batch: finds its row (returns false if the stream
 * does not exist) and takes its lock, in ROW EXCLUSIVE mode or, with
 * exclusive or when batches of the stream cannot run side by side
 * (ds_stream_concurrent), in EXCLUSIVE mode together with its row's lock.
 * Fills st with the row's TID, id, offsets and snapshot state; st->tail is
 * the stream's floor in ROW EXCLUSIVE mode (ds_log_assign reads the log),
 * the highest seq logged so far (our own included) in EXCLUSIVE mode.
 * Raises ERRCODE_T_R_SERIALIZATION_FAILURE when, under REPEATABLE READ or
 * SERIALIZABLE, an exclusive batch's stream was applied to after the
 * transaction snapshot was taken or its row updated, and
 * ERRCODE_UNDEFINED_OBJECT when the stream was dropped concurrently.
 */
bool
ds_stream_open(const char *name, DsStreamState *st, bool exclusive)
{
	const DsCatalogOids *oids = ds_catalog_oids();
	Relation	rel = table_open(oids->streams, RowShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	bool		isnull;
	Datum		d;

	CommandCounterIncrement();
	PushCopiedSnapshot(GetActiveSnapshot());
	UpdateActiveSnapshotCommandId();
	if (!find_stream_row(rel, name, slot))
	{
		PopActiveSnapshot();
		ExecDropSingleTupleTableSlot(slot);
		table_close(rel, NoLock);
		return false;
	}
	st->id = DatumGetInt32(slot_getattr(slot, oids->streams_att_id, &isnull));
	st->exclusive = exclusive || !ds_stream_concurrent(st->id);
	ds_stream_lock_acquire(st->id, st->exclusive ? ExclusiveLock : RowExclusiveLock);
	if (st->exclusive)
		lock_stream_row(rel, name, slot);

	st->tid = slot->tts_tid;
	st->tail = DatumGetInt64(slot_getattr(slot, oids->streams_att_tail, &isnull));
	st->retained_from = DatumGetInt64(slot_getattr(slot, oids->streams_att_retained_from, &isnull));
	d = slot_getattr(slot, oids->streams_att_source_offset, &isnull);
	st->source_offset = isnull ? NULL : TextDatumGetCString(d);
	st->in_snapshot = DatumGetBool(slot_getattr(slot, oids->streams_att_in_snapshot, &isnull));
	st->was_in_snapshot = st->in_snapshot;
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);

	if (st->exclusive)
	{
		st->tail = Max(st->tail, ds_log_newest(st->id, SnapshotAny, NULL, NULL));

		/*
		 * Under REPEATABLE READ or SERIALIZABLE, events another transaction
		 * committed to the stream after our snapshot was taken are invisible
		 * to us: applying after them (a reset that cannot see their rows, a
		 * strict insert that cannot see their key) would not be
		 * serializable.
		 */
		if (IsolationUsesXactSnapshot() && !snapshot_sees_stream(st->id))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize access due to concurrent apply to stream \"%s\"",
							ds_shorten(name, strlen(name))),
					 errhint("Retry the transaction.")));
	}
	PopActiveSnapshot();
	return true;
}

/*
 * Hands out n offsets to the batch, the first returned: at the end of the
 * batch, once it holds every lock it needs, under the stream's append lock
 * (inflight.c), which ds_log_release releases once the batch's rows are in
 * the log.  The tail is the last offset the append lock remembers handing
 * out, else read from the log (the highest last_seq with SnapshotAny: rows
 * of batches in flight count, and of rolled-back ones while they are there,
 * so their offsets are not handed out again).  A batch running side by side with
 * others is listed as in flight until its transaction ends.  Sets
 * st->stable, the offset below which every batch had ended.
 */
int64
ds_log_assign(DsStreamState *st, int n)
{
	int64		remembered = ds_append_begin(st->id, ds_catalog_oids()->log);
	int64		first;

	if (remembered >= 0)
		st->tail = Max(st->tail, remembered);
	else if (!st->exclusive)
		st->tail = Max(st->tail, ds_log_newest(st->id, SnapshotAny, NULL, NULL));
	first = st->tail + 1;
	st->stable = st->exclusive ? st->tail : ds_flight_begin(st->id, first, true);
	st->tail += n;

	/*
	 * No other batch of the stream runs beside an exclusive one: it need
	 * not hold the lock (nor keep interrupts off) while it writes its rows.
	 */
	if (st->exclusive)
		ds_append_end(st->id, ds_catalog_oids()->log, st->tail);
	return first;
}

/* Ends what ds_log_assign began: the batch's rows are in the log. */
void
ds_log_release(DsStreamState *st)
{
	if (!st->exclusive)
		ds_append_end(st->id, ds_catalog_oids()->log, st->tail);
}

/*
 * Writes the stream's row after a batch if anything kept there changed: the
 * new source_offset (if not NULL) or the snapshot state, and updated_at.
 * The caller holds the row's lock (an exclusive ds_stream_open); st->tid
 * is moved to the new row version.  Directly, like the log: this is the extension's own
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
 * Prepare w to collect up to capacity events of a batch for the log, rel
 * (state.log, locked RowExclusiveLock by the caller, at range table index
 * rti of estate), for stream stream_id.  The events are written once the
 * batch has its offsets (ds_log_writer_write); the images are copied into
 * a context under the current one.
 */
void
ds_log_writer_open(DsLogWriter *w, EState *estate, Relation rel, Index rti,
				   int32 stream_id, int capacity)
{
	memset(w, 0, sizeof(*w));
	w->rel = rel;
	w->estate = estate;
	w->rri = ds_result_rel_open(estate, rel, rti);
	w->slot = ExecInitExtraTupleSlot(estate, RelationGetDescr(rel), &TTSOpsVirtual);
	/* 0.3.0's and 0.5.0's columns: absent until ALTER EXTENSION UPDATE */
	Assert(RelationGetRelid(rel) == ds_catalog_oids()->log);
	w->imgatt = ds_catalog_oids()->log_att_images;
	w->stableatt = ds_catalog_oids()->log_att_stable;
	w->stream_id = stream_id;
	w->cxt = AllocSetContextCreate(CurrentMemoryContext, "durable_state log images",
								   ALLOCSET_DEFAULT_SIZES);
	w->segcxt = AllocSetContextCreate(CurrentMemoryContext, "durable_state log segment",
									  ALLOCSET_DEFAULT_SIZES);
	w->events = palloc(sizeof(DsEvent *) * Max(capacity, 1));
	w->images = palloc0(sizeof(Jsonb *) * Max(capacity, 1));
}

/*
 * Insert events [from, to) of the batch as one log row (stream, first seq,
 * last seq, events, time, the images if any event has one, the stable
 * offset), the first getting offset first.
 */
static void
write_segment(DsLogWriter *w, int from, int to, int64 first, int64 stable)
{
	TupleTableSlot *slot = w->slot;
	int			n = to - from;
	Datum	   *events;
	Datum	   *images = NULL;
	bool	   *imgnull = NULL;
	bool		has_img = false;
	MemoryContext old = MemoryContextSwitchTo(w->segcxt);

	events = palloc(sizeof(Datum) * n);
	if (w->imgatt != InvalidAttrNumber)
	{
		images = palloc(sizeof(Datum) * n);
		imgnull = palloc(sizeof(bool) * n);
	}
	for (int i = 0; i < n; i++)
	{
		events[i] = JsonbPGetDatum(ds_event_datum(w->events[from + i]));
		if (images)
		{
			Jsonb	   *img = w->images[from + i];

			imgnull[i] = (img == NULL);
			images[i] = PointerGetDatum(img);
			has_img |= (img != NULL);
		}
	}
	ExecClearTuple(slot);
	slot->tts_values[0] = Int32GetDatum(w->stream_id);
	slot->tts_values[1] = Int64GetDatum(first);
	slot->tts_values[2] = Int64GetDatum(first + n - 1);
	slot->tts_values[3] = PointerGetDatum(construct_array(events, n, JSONBOID,
														  -1, false, TYPALIGN_INT));
	slot->tts_values[4] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	memset(slot->tts_isnull, 0, sizeof(bool) * 5);
	/* any other column of a newer catalog: null unless it is ours */
	for (int i = 5; i < slot->tts_tupleDescriptor->natts; i++)
		slot->tts_isnull[i] = true;
	if (has_img)
	{
		int			dims[1] = {n};
		int			lbs[1] = {1};

		slot->tts_values[w->imgatt - 1] =
			PointerGetDatum(construct_md_array(images, imgnull, 1, dims, lbs,
											   JSONBOID, -1, false, TYPALIGN_INT));
		slot->tts_isnull[w->imgatt - 1] = false;
	}
	if (w->stableatt != InvalidAttrNumber)
	{
		slot->tts_values[w->stableatt - 1] = Int64GetDatum(stable);
		slot->tts_isnull[w->stableatt - 1] = false;
	}
	ExecStoreVirtualTuple(slot);
	ExecSimpleRelationInsert(w->rri, w->estate, slot);
	ExecClearTuple(slot);
	MemoryContextSwitchTo(old);
	MemoryContextReset(w->segcxt);
}

/*
 * Write the collected events to the log in segments of up to
 * DS_SEGMENT_EVENTS events or DS_SEGMENT_BYTES bytes, the first event
 * getting offset first, each row recording stable (see stable.c).
 */
void
ds_log_writer_write(DsLogWriter *w, int64 first, int64 stable)
{
	int			from = 0;
	int64		bytes = 0;

	for (int i = 0; i < w->n; i++)
	{
		bytes += w->events[i]->root_len + (w->images[i] ? VARSIZE(w->images[i]) : 0);
		if (i + 1 - from >= DS_SEGMENT_EVENTS || bytes >= DS_SEGMENT_BYTES || i + 1 == w->n)
		{
			write_segment(w, from, i + 1, first + from, stable);
			from = i + 1;
			bytes = 0;
		}
	}
}

/*
 * Collect one event and its row images (img, or NULL, copied) for the
 * log.  The event's own memory outlives the batch.
 */
void
ds_log_writer_append(DsLogWriter *w, DsEvent *ev, Jsonb *img)
{
	w->events[w->n] = ev;
	w->images[w->n] = NULL;
	if (img)
	{
		MemoryContext old = MemoryContextSwitchTo(w->cxt);

		w->images[w->n] = (Jsonb *) DatumGetPointer(datumCopy(JsonbPGetDatum(img), false, -1));
		MemoryContextSwitchTo(old);
	}
	w->n++;
}
