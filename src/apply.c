/*
 * apply.c
 *		The apply engine: state.apply(jsonb) and state.apply_text(text).
 *
 * A call is one batch, applied all-or-nothing:
 *	1. every event is parsed and validated (event.c);
 *	2. the stream's row is locked (changelog.c): seq order is commit order;
 *	3. each event's collection is resolved from the cached catalog, and each
 *	   table is opened once, with its indexes, privileges checked;
 *	4. a collection with many events is probed in bulk (one pass over its
 *	   primary-key index, see bulk_probe());
 *	5. events are applied in order the way logical replication applies a
 *	   change (execReplication.c): a primary-key index probe with a dirty
 *	   snapshot, the tuple locked, then ExecSimpleRelationInsert/Update/
 *	   Delete so constraints, indexes and triggers all apply; every event is
 *	   appended to the log segment being filled (state.log);
 *	6. AFTER triggers (foreign keys among them) fire at the end of the batch.
 * No SQL is planned per event or per batch (only a reset runs a DELETE).
 * Any error names the event's index, type and key (the PG_CATCH below
 * prefixes it to whatever was raised).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/numeric.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parsetree.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "common/hashfn.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/datum.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"

#include "durable_state.h"
#include "jsonschema.h"

/* Per-collection state for one batch. */
typedef struct DsCollState
{
	DsCollection *coll;
	bool		opened;
	AclMode		needed;			/* privileges the batch's events need */
	Relation	rel;
	Relation	pkrel;
	Index		rti;
	ResultRelInfo *rri;
	DsRelInfo	ri;
	IndexScanDesc scan;
	SnapshotData dirty;
	ScanKeyData skey;
	TupleTableSlot *oldslot;
	TupleTableSlot *newslot;
	ExprState **defaults;		/* by attnum - 1; NULL if none */
	bool	   *provided;		/* scratch: members given by the event */
	int			nevents;		/* change events of the batch for it */
	struct DsKeyTable *keys;	/* bulk probe results, or NULL */
	JsonSchema *schema;			/* compiled JSON Schema of the values, or NULL */
	bool		rls;			/* row-level security applies to the caller */
	bool		images;			/* the log keeps its rows' images (RLS enabled) */
} DsCollState;

/*
 * Bulk probe.  A batch that touches many keys of a collection compared with
 * the size of its primary key index learns which keys exist by reading the
 * index once from end to end and looking each entry up in a hash table of
 * the batch's keys, instead of descending the B-tree once per event: for a
 * large batch that is far fewer comparisons (under a libc collation each
 * is a strcoll).  Only for key types whose equality is byte equality.
 * Each key's state then follows the batch's own changes; anything
 * unexpected (a row changed by another transaction meanwhile, a row of an
 * in-progress transaction) falls back to the per-event probe.
 */
typedef struct DsKeyState
{
	uint32		hash;
	const char *data;			/* key bytes; NULL: empty slot */
	int			len;
	Datum		datum;			/* the key as a column datum */
	bool		known;			/* existence and tid are known */
	bool		exists;
	ItemPointerData tid;
} DsKeyState;

typedef struct DsKeyTable
{
	DsKeyState *slots;
	uint32		mask;
	int			n;
} DsKeyTable;

typedef struct DsBatch
{
	const char *stream_name;
	DsStream   *stream;
	DsStreamState st;
	int			nevents;
	DsEvent    *events;
	int		   *lines;			/* NDJSON line numbers, or NULL */
	DsCollState *colls;			/* one per collection of the stream */
	EState	   *estate;
	EPQState	epq;
	Relation	logrel;
	ResultRelInfo *logrri;
	TupleTableSlot *logslot;
	int			ntxids;			/* events with a txid header */
	Relation	txidrel;		/* state._txids, if ntxids > 0 */
	ResultRelInfo *txidrri;
	Index		txidrti;
	/* the log segment being filled */
	MemoryContext segcxt;
	Datum	   *seg;
	int			nseg;
	int64		seg_bytes;
	int64		seg_first;
	/* row images of the segment's events (see rls.c), if the log has them */
	AttrNumber	log_imgatt;		/* state.log.images, or 0 (0.2.0 catalog) */
	Datum	   *segimg;
	bool	   *segimgnull;
	bool		seg_has_img;
	Jsonb	   *cur_img;		/* the current event's, or NULL */
	MemoryContext evcxt;
	int			active_slot;	/* our place in active_streams, or -1 */
	volatile int current;		/* event being processed, for errors; see
								 * DS_END_OF_BATCH */
} DsBatch;

/*
 * Streams with a batch in progress in this backend.  A trigger on a
 * collection's table may call state.apply; on another stream that is fine,
 * but on the same stream the inner batch would take offsets the outer one
 * has not logged yet, so it is refused.
 */
#define DS_MAX_NESTED 16
static int32 active_streams[DS_MAX_NESTED];
static int	nactive = 0;

/* Is a batch in progress in this backend (a trigger is running inside one)? */
bool
ds_batch_in_progress(void)
{
	return nactive > 0;
}

/* b->current while AFTER triggers (foreign keys) run at the end of a batch */
#define DS_END_OF_BATCH (-2)

PG_FUNCTION_INFO_V1(ds_apply);
PG_FUNCTION_INFO_V1(ds_apply_text);

static char *
describe_event(DsBatch *b, int i)
{
	DsEvent    *ev = &b->events[i];
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "event %d", i);
	if (b->lines)
		appendStringInfo(&s, " (line %d)", b->lines[i]);
	if (ev->type && ev->key)
		appendStringInfo(&s, " (type \"%s\", key \"%s\")",
						 ds_shorten(ev->type, ev->type_len),
						 ds_shorten(ev->key, ev->key_len));
	else if (ev->type)
		appendStringInfo(&s, " (type \"%s\")", ds_shorten(ev->type, ev->type_len));
	else if (ev->key)
		appendStringInfo(&s, " (key \"%s\")", ds_shorten(ev->key, ev->key_len));
	else if (ev->control == DS_CTL_RESET)
		appendStringInfoString(&s, " (control \"reset\")");
	else if (ev->control == DS_CTL_SNAPSHOT_START)
		appendStringInfoString(&s, " (control \"snapshot-start\")");
	else if (ev->control == DS_CTL_SNAPSHOT_END)
		appendStringInfoString(&s, " (control \"snapshot-end\")");
	return s.data;
}

/* ------------------------------------------------------------------------
 * Opening collections
 * ------------------------------------------------------------------------ */

static void
open_collections(DsBatch *b)
{
	EState	   *estate = CreateExecutorState();
	List	   *rtable = NIL;
	Index		rti = 0;
	RangeTblEntry *rte;

	b->estate = estate;
	estate->es_output_cid = GetCurrentCommandId(true);

	/* the log first: it is always written */
	b->logrel = table_open(ds_catalog_oids()->log, RowExclusiveLock);
	/* 0.3.0's column: absent until ALTER EXTENSION UPDATE */
	b->log_imgatt = get_attnum(RelationGetRelid(b->logrel), "images");
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(b->logrel);
	rte->relkind = RELKIND_RELATION;
	rte->rellockmode = RowExclusiveLock;
	rtable = lappend(rtable, rte);
	rti++;
	/* and the txids of the batch, if it has any */
	if (b->ntxids > 0)
	{
		b->txidrel = table_open(ds_catalog_oids()->txids, RowExclusiveLock);
		rte = makeNode(RangeTblEntry);
		rte->rtekind = RTE_RELATION;
		rte->relid = RelationGetRelid(b->txidrel);
		rte->relkind = RELKIND_RELATION;
		rte->rellockmode = RowExclusiveLock;
		rtable = lappend(rtable, rte);
		b->txidrti = ++rti;
	}

	for (int c = 0; c < b->stream->ncolls; c++)
	{
		DsCollState *cs = &b->colls[c];

		if (cs->needed == 0)
			continue;
		ds_relinfo_open(&cs->ri, cs->coll, RowExclusiveLock);
		cs->rel = cs->ri.rel;
		cs->pkrel = cs->ri.pkrel;
		ds_check_table_access(cs->coll, cs->rel, cs->needed);
		cs->rls = ds_rls_active(cs->rel);
		/* for whoever reads the log under the table's policies */
		cs->images = cs->rel->rd_rel->relrowsecurity && b->log_imgatt != InvalidAttrNumber;
		rte = makeNode(RangeTblEntry);
		rte->rtekind = RTE_RELATION;
		rte->relid = cs->coll->relid;
		rte->relkind = cs->rel->rd_rel->relkind;
		rte->rellockmode = RowExclusiveLock;
		/*
		 * An event sets the whole row, so every column counts as inserted
		 * and updated (UPDATE OF triggers, error details use these).
		 */
		for (int i = 0; i < RelationGetDescr(cs->rel)->natts; i++)
		{
			if (TupleDescAttr(RelationGetDescr(cs->rel), i)->attisdropped)
				continue;
			rte->insertedCols = bms_add_member(rte->insertedCols,
											   i + 1 - FirstLowInvalidHeapAttributeNumber);
			rte->updatedCols = bms_add_member(rte->updatedCols,
											  i + 1 - FirstLowInvalidHeapAttributeNumber);
		}
		rtable = lappend(rtable, rte);
		cs->rti = ++rti;
	}
	ExecInitRangeTable(estate, rtable);

	b->logrri = makeNode(ResultRelInfo);
	InitResultRelInfo(b->logrri, b->logrel, 1, NULL, 0);
	ExecOpenIndices(b->logrri, false);
	estate->es_opened_result_relations =
		lappend(estate->es_opened_result_relations, b->logrri);
	b->logslot = ExecInitExtraTupleSlot(estate, RelationGetDescr(b->logrel),
										&TTSOpsVirtual);
	if (b->txidrel)
	{
		b->txidrri = makeNode(ResultRelInfo);
		InitResultRelInfo(b->txidrri, b->txidrel, b->txidrti, NULL, 0);
		ExecOpenIndices(b->txidrri, false);
		estate->es_opened_result_relations =
			lappend(estate->es_opened_result_relations, b->txidrri);
	}

	for (int c = 0; c < b->stream->ncolls; c++)
	{
		DsCollState *cs = &b->colls[c];
		TupleDesc	desc;

		if (cs->needed == 0)
			continue;
		if (cs->rel->rd_rel->relkind != RELKIND_RELATION)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("table of collection \"%s\" is not an ordinary table", cs->coll->name)));
		desc = RelationGetDescr(cs->rel);

		cs->rri = makeNode(ResultRelInfo);
		InitResultRelInfo(cs->rri, cs->rel, cs->rti, NULL, 0);
		/* so AFTER triggers find it instead of opening the table again */
		estate->es_opened_result_relations =
			lappend(estate->es_opened_result_relations, cs->rri);
		CheckValidResultRel(cs->rri, CMD_INSERT);
		ExecOpenIndices(cs->rri, false);

		cs->oldslot = table_slot_create(cs->rel, &estate->es_tupleTable);
		cs->newslot = ExecInitExtraTupleSlot(estate, desc, &TTSOpsVirtual);
		cs->provided = palloc0(sizeof(bool) * desc->natts);
		cs->defaults = palloc0(sizeof(ExprState *) * desc->natts);
		for (int i = 0; i < desc->natts; i++)
		{
			if (cs->ri.defaults[i] != NULL)
				cs->defaults[i] = ExecPrepareExpr(cs->ri.defaults[i], estate);
		}

		InitDirtySnapshot(cs->dirty);
		cs->scan = index_beginscan(cs->rel, cs->pkrel, &cs->dirty, 1, 0);
		cs->opened = true;

		/* held until the transaction ends: nested batches cannot evict it */
		if (cs->coll->schema)
			cs->schema = ds_schema_get_pinned(cs->coll->schema, CurrentMemoryContext);
	}

	EvalPlanQualInit(&b->epq, estate, NULL, NIL, -1);
	AfterTriggerBeginQuery();

	/*
	 * Statement-level triggers fire once per batch for each kind of change
	 * the batch may make to the table, as for one INSERT ... ON CONFLICT
	 * statement.  Transition tables would need the executor's capture of
	 * every row, which this path does not do: refuse rather than hand
	 * such triggers empty tables.
	 */
	for (int c = 0; c < b->stream->ncolls; c++)
	{
		DsCollState *cs = &b->colls[c];
		TriggerDesc *trig;

		if (!cs->opened)
			continue;
		trig = cs->rel->trigdesc;
		if (trig && (trig->trig_insert_new_table || trig->trig_update_old_table ||
					 trig->trig_update_new_table || trig->trig_delete_old_table))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("table \"%s\" of collection \"%s\" has triggers with transition tables",
							RelationGetRelationName(cs->rel), cs->coll->name),
					 errhint("state.apply does not fill REFERENCING OLD/NEW TABLE; use row-level triggers.")));
		if (cs->needed & ACL_INSERT)
			ExecBSInsertTriggers(estate, cs->rri);
		if (cs->needed & ACL_UPDATE)
			ExecBSUpdateTriggers(estate, cs->rri);
		if (cs->needed & ACL_DELETE)
			ExecBSDeleteTriggers(estate, cs->rri);
	}
}

static void
close_collections(DsBatch *b)
{
	EState	   *estate = b->estate;

	for (int c = 0; c < b->stream->ncolls; c++)
	{
		DsCollState *cs = &b->colls[c];

		if (!cs->opened)
			continue;
		if (cs->needed & ACL_INSERT)
			ExecASInsertTriggers(estate, cs->rri, NULL);
		if (cs->needed & ACL_UPDATE)
			ExecASUpdateTriggers(estate, cs->rri, NULL);
		if (cs->needed & ACL_DELETE)
			ExecASDeleteTriggers(estate, cs->rri, NULL);
	}
	AfterTriggerEndQuery(estate);
	EvalPlanQualEnd(&b->epq);
	/* closes the indexes of our result relations and any opened for triggers */
	ExecCloseResultRelations(estate);
	for (int c = 0; c < b->stream->ncolls; c++)
	{
		DsCollState *cs = &b->colls[c];

		if (!cs->opened)
			continue;
		index_endscan(cs->scan);
		ds_relinfo_close(&cs->ri, NoLock);
	}
	table_close(b->logrel, NoLock);
	if (b->txidrel)
		table_close(b->txidrel, NoLock);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
}

/* ------------------------------------------------------------------------
 * Applying one change
 * ------------------------------------------------------------------------ */

/*
 * Finds the row with this key, as logical replication does: a dirty
 * snapshot sees rows of in-progress transactions, whose end we wait for;
 * the row found is locked so it cannot change under us.
 */
static bool
find_row(DsCollState *cs, Datum key, bool lock)
{
	TM_FailureData tmfd;
	TM_Result	res;
	bool		found;
	bool		got;
	MemoryContext old;

retry:
	found = false;
	InitDirtySnapshot(cs->dirty);
	ScanKeyEntryInitialize(&cs->skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   cs->ri.pk_collation, cs->ri.pk_eqproc, key);

	/*
	 * The scan lives for the whole batch and may allocate as it goes (btree
	 * remembers killed items), so it must not allocate in the per-event
	 * context.
	 */
	old = MemoryContextSwitchTo(GetMemoryChunkContext(cs->scan));
	index_rescan(cs->scan, &cs->skey, 1, NULL, 0);
	got = index_getnext_slot(cs->scan, ForwardScanDirection, cs->oldslot);
	MemoryContextSwitchTo(old);
	if (got)
	{
		TransactionId xwait;

		found = true;
		xwait = TransactionIdIsValid(cs->dirty.xmin) ? cs->dirty.xmin : cs->dirty.xmax;
		if (TransactionIdIsValid(xwait))
		{
			XactLockTableWait(xwait, NULL, NULL, XLTW_None);
			goto retry;
		}
	}
	if (!found || !lock)
		return found;

	PushActiveSnapshot(GetLatestSnapshot());
	res = table_tuple_lock(cs->rel, &(cs->oldslot->tts_tid), GetLatestSnapshot(),
						   cs->oldslot, GetCurrentCommandId(false),
						   LockTupleExclusive, LockWaitBlock, 0, &tmfd);
	PopActiveSnapshot();
	switch (res)
	{
		case TM_Ok:
			break;
		case TM_Updated:
		case TM_Deleted:
			/* changed by a transaction that committed meanwhile: look again */
			goto retry;
		case TM_Invisible:
			elog(ERROR, "attempted to lock invisible tuple");
			break;
		default:
			elog(ERROR, "unexpected table_tuple_lock status: %u", res);
			break;
	}
	return true;
}

/* ------------------------------------------------------------------------
 * Bulk probe
 * ------------------------------------------------------------------------ */

/*
 * The bytes that identify a key datum of a byte-comparable key type, or
 * false if the type is not one.
 */
static bool
key_bytes(Oid typid, Datum d, const char **data, int *len, char *buf)
{
	switch (typid)
	{
		case TEXTOID:
		case VARCHAROID:
			{
				text	   *t = DatumGetTextPP(d);

				*data = VARDATA_ANY(t);
				*len = VARSIZE_ANY_EXHDR(t);
				return true;
			}
		case INT2OID:
		case INT4OID:
		case INT8OID:
			{
				int64		v = typid == INT8OID ? DatumGetInt64(d) :
					typid == INT4OID ? DatumGetInt32(d) : DatumGetInt16(d);

				memcpy(buf, &v, sizeof(v));
				*data = buf;
				*len = sizeof(v);
				return true;
			}
		case UUIDOID:
			*data = (const char *) DatumGetPointer(d);
			*len = 16;
			return true;
		default:
			return false;
	}
}

static DsKeyState *
keytable_find(DsKeyTable *kt, const char *data, int len, bool insert)
{
	uint32		h = hash_bytes((const unsigned char *) data, len);
	uint32		i = h & kt->mask;

	for (;;)
	{
		DsKeyState *ks = &kt->slots[i];

		if (ks->data == NULL)
		{
			if (!insert)
				return NULL;
			ks->hash = h;
			ks->data = data;
			ks->len = len;
			kt->n++;
			return ks;
		}
		if (ks->hash == h && ks->len == len && memcmp(ks->data, data, len) == 0)
			return ks;
		i = (i + 1) & kt->mask;
	}
}

/*
 * Decides whether to probe cs's keys in bulk and, if so, does it: one pass
 * over the primary key index, checking the live row of every entry whose
 * key the batch touches with a dirty snapshot, as find_row() does.
 */
static void
bulk_probe(DsBatch *b, DsCollState *cs)
{
	Oid			typid = cs->ri.pkcol->typid;
	TriggerDesc *trig;
	DsKeyTable *kt;
	uint32		size = 16;
	BlockNumber blocks;
	IndexScanDesc scan;
	IndexFetchTableData *fetch;
	TupleTableSlot *slot;
	ItemPointer tid;
	char		buf[8];

	if (ds_bulk_probe_min_keys <= 0 || cs->nevents < ds_bulk_probe_min_keys)
		return;
	/* byte equality must be the index's equality */
	if ((typid == TEXTOID || typid == VARCHAROID) &&
		!get_collation_isdeterministic(cs->ri.pk_collation))
		return;
	if (typid != TEXTOID && typid != VARCHAROID && typid != INT2OID &&
		typid != INT4OID && typid != INT8OID && typid != UUIDOID)
		return;
	/*
	 * BEFORE ROW triggers of any table of the batch may skip, redirect or
	 * add changes behind the probe's back: probe per event then.  (Rows
	 * changed otherwise -- by the batch itself through another path, or by
	 * another transaction -- are caught when the lock finds the row
	 * changed, and probed again.)
	 */
	for (int c = 0; c < b->stream->ncolls; c++)
	{
		DsCollState *other = &b->colls[c];

		if (!other->opened)
			continue;
		trig = other->rel->trigdesc;
		if (trig && (trig->trig_insert_before_row || trig->trig_update_before_row ||
					 trig->trig_delete_before_row))
			return;
	}

	while (size < (uint32) cs->nevents * 2)
		size <<= 1;
	kt = palloc(sizeof(DsKeyTable));
	kt->slots = palloc0(sizeof(DsKeyState) * size);
	kt->mask = size - 1;
	kt->n = 0;
	for (int i = 0; i < b->nevents; i++)
	{
		DsEvent    *ev = &b->events[i];
		Datum		d;
		const char *data;
		int			len;
		char	   *copy;

		if (ev->coll != cs)
			continue;
		b->current = i;
		d = ds_key_datum(&cs->ri, ev->key, ev->key_len);
		key_bytes(typid, d, &data, &len, buf);
		if (data == buf)
		{
			copy = palloc(len);
			memcpy(copy, buf, len);
			data = copy;
		}
		ev->ks = keytable_find(kt, data, len, true);
		ev->ks->datum = d;
	}
	b->current = -1;

	/* reading the whole index pays off only for many keys per index page */
	blocks = RelationGetNumberOfBlocks(cs->pkrel);
	if (ds_bulk_probe_keys_per_block > 0 &&
		(double) kt->n < (double) blocks * ds_bulk_probe_keys_per_block)
	{
		/* keep the converted keys, drop the probe */
		for (int i = 0; i < b->nevents; i++)
		{
			if (b->events[i].ks)
				b->events[i].ks->known = false;
		}
		cs->keys = kt;
		return;
	}

	elog(DEBUG1, "durable_state: bulk probe of %d keys of collection \"%s\" (%u index blocks)",
		 kt->n, cs->coll->name, blocks);
	scan = index_beginscan(cs->rel, cs->pkrel, SnapshotAny, 0, 0);
	scan->xs_want_itup = true;
	index_rescan(scan, NULL, 0, NULL, 0);
	fetch = table_index_fetch_begin(cs->rel);
	slot = table_slot_create(cs->rel, NULL);
	for (uint32 i = 0; i <= kt->mask; i++)
	{
		if (kt->slots[i].data)
			kt->slots[i].known = true;	/* absent unless found below */
	}
	while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		k = index_getattr(scan->xs_itup, 1, scan->xs_itupdesc, &isnull);
		const char *data;
		int			len;
		DsKeyState *ks;
		SnapshotData dirty;
		ItemPointerData t = *tid;
		bool		call_again = false;
		bool		all_dead = false;

		CHECK_FOR_INTERRUPTS();
		if (isnull)
			continue;
		key_bytes(typid, k, &data, &len, buf);
		ks = keytable_find(kt, data, len, false);
		if (ks == NULL || !ks->known || ks->exists)
			continue;
		InitDirtySnapshot(dirty);
		if (table_index_fetch_tuple(fetch, &t, &dirty, slot, &call_again, &all_dead))
		{
			if (TransactionIdIsValid(dirty.xmin) || TransactionIdIsValid(dirty.xmax))
				ks->known = false;	/* in progress elsewhere: find_row waits */
			else
			{
				ks->exists = true;
				ks->tid = slot->tts_tid;
			}
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	table_index_fetch_end(fetch);
	index_endscan(scan);
	cs->keys = kt;
}

/*
 * The row of an event's key, locked, using the bulk probe's knowledge when
 * it has any.  Returns whether it exists.
 */
static bool
find_row_known(DsCollState *cs, DsEvent *ev, Datum key)
{
	DsKeyState *ks = ev->ks;
	TM_FailureData tmfd;
	TM_Result	res;

	if (ks == NULL || !ks->known)
		return find_row(cs, key, true);
	if (!ks->exists)
		return false;
	PushActiveSnapshot(GetLatestSnapshot());
	res = table_tuple_lock(cs->rel, &ks->tid, GetLatestSnapshot(), cs->oldslot,
						   GetCurrentCommandId(false), LockTupleExclusive,
						   LockWaitBlock, 0, &tmfd);
	PopActiveSnapshot();
	if (res == TM_Ok)
		return true;
	/* changed by another transaction since the probe: look it up again */
	ks->known = false;
	return find_row(cs, key, true);
}

/* Records what an applied change did to its key. */
static void
key_applied(DsCollState *cs, DsEvent *ev, bool deleted)
{
	DsKeyState *ks = ev->ks;

	if (ks == NULL || !ks->known)
		return;
	ks->exists = !deleted;
	if (!deleted)
		ks->tid = cs->newslot->tts_tid;
}

/* Does a JSON member equal the event key?  Strings and numbers compare as text. */
static bool
member_matches_key(JsonbValue *v, DsEvent *ev)
{
	char	   *s;
	int			len;

	if (v->type == jbvString)
		return v->val.string.len == ev->key_len &&
			memcmp(v->val.string.val, ev->key, ev->key_len) == 0;
	if (v->type != jbvNumeric)
		return false;
	s = ds_jsonb_value_text(v, &len);
	return len == ev->key_len && memcmp(s, ev->key, len) == 0;
}

static void
pk_mismatch(DsCollState *cs, DsEvent *ev, JsonbValue *v)
{
	int			len;
	char	   *text;

	if (v->type == jbvString)
	{
		Jsonb	   *jb = JsonbValueToJsonb(v);	/* quoted, as JSON */

		text = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
		len = strlen(text);
	}
	else
		text = ds_jsonb_value_text(v, &len);

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("primary key member \"%s\" of the value does not match the event key",
					cs->coll->primary_key),
			 errdetail("The value has %s, the key is \"%s\".",
					   ds_shorten(text, len),
					   ds_shorten(ev->key, ev->key_len)),
			 errhint("Omit the member or set it to the event key.")));
}

/*
 * Checks an event's value against its collection's JSON Schema.  A typed
 * collection fills the primary-key member in from the key, so the value is
 * checked with it filled in.  Only a failure pays for the error details.
 */
static void
check_schema(DsCollState *cs, DsEvent *ev)
{
	JsonbValue	checked = ev->value;
	List	   *errors = NIL;
	JsonSchemaError *e;
	JsonbValue	pk;

	if (cs->coll->kind != DS_KIND_DOCUMENT && checked.type == jbvBinary &&
		JsonContainerIsObject(checked.val.binary.data) &&
		!getKeyJsonValueFromContainer(checked.val.binary.data, cs->coll->primary_key,
									  strlen(cs->coll->primary_key), &pk))
	{
		JsonbParseState *state = NULL;
		JsonbIterator *it = JsonbIteratorInit(checked.val.binary.data);
		JsonbValue	v,
				   *res = NULL;
		JsonbIteratorToken tok;

		/* copy the members (nested values stay binary), then add the key */
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_END_OBJECT)
			{
				JsonbValue	k;

				k.type = jbvString;
				k.val.string.val = cs->coll->primary_key;
				k.val.string.len = strlen(cs->coll->primary_key);
				pushJsonbValue(&state, WJB_KEY, &k);
				if (cs->ri.pkcol->typcategory == TYPCATEGORY_NUMERIC)
				{
					/* a numeric key column: the member is a number */
					k.type = jbvNumeric;
					k.val.numeric = DatumGetNumeric(
						DirectFunctionCall3(numeric_in,
											CStringGetDatum(pnstrdup(ev->key, ev->key_len)),
											ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
				}
				else
				{
					k.val.string.val = (char *) ev->key;
					k.val.string.len = ev->key_len;
				}
				pushJsonbValue(&state, WJB_VALUE, &k);
			}
			res = pushJsonbValue(&state, tok,
								 tok == WJB_KEY || tok == WJB_VALUE ? &v : NULL);
		}
		{
			Jsonb	   *jb = JsonbValueToJsonb(res);

			checked.type = jbvBinary;
			checked.val.binary.data = &jb->root;
			checked.val.binary.len = VARSIZE(jb) - VARHDRSZ;
		}
	}

	if (ds_schema_validate(cs->schema, &checked, cs->coll->assert_formats, NULL))
		return;
	ds_schema_validate(cs->schema, &checked, cs->coll->assert_formats, &errors);
	if (errors == NIL)
		elog(ERROR, "schema validation failed without an error");
	e = linitial(errors);
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 e->path[0] ?
			 errmsg("value violates the schema of collection \"%s\" at \"%s\" (keyword \"%s\"): %s",
					cs->coll->name, e->path, e->keyword, e->message) :
			 errmsg("value violates the schema of collection \"%s\" at the top level (keyword \"%s\"): %s",
					cs->coll->name, e->keyword, e->message),
			 list_length(errors) > 1 ?
			 errdetail("%d schema errors; the first is shown.", list_length(errors)) : 0,
			 errhint("state.json_schema_errors(schema, value) lists every error.")));
}

/* An object built apart, pushed as a member value. */
static void
push_object(JsonbParseState **state, JsonbValue *obj)
{
	Jsonb	   *jb = JsonbValueToJsonb(obj);
	JsonbValue	jv;

	jv.type = jbvBinary;
	jv.val.binary.data = &jb->root;
	jv.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	pushJsonbValue(state, WJB_VALUE, &jv);
}

/*
 * The extra column's value: {"exact": {member: [as applied, as the column
 * reads back]}, "members": {member without a column: value}}.
 */
static Jsonb *
extra_value(JsonbParseState *exact, JsonbParseState *members)
{
	JsonbParseState *state = NULL;
	JsonbValue	k;
	JsonbValue *part;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	if (exact)
	{
		part = pushJsonbValue(&exact, WJB_END_OBJECT, NULL);
		k.val.string.val = "exact";
		k.val.string.len = 5;
		pushJsonbValue(&state, WJB_KEY, &k);
		push_object(&state, part);
	}
	if (members)
	{
		part = pushJsonbValue(&members, WJB_END_OBJECT, NULL);
		k.val.string.val = "members";
		k.val.string.len = 7;
		pushJsonbValue(&state, WJB_KEY, &k);
		push_object(&state, part);
	}
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/* Builds the row an event stores into cs->newslot. */
static void
form_row(DsBatch *b, DsCollState *cs, DsEvent *ev, Datum key, bool found)
{
	TupleTableSlot *slot = cs->newslot;
	DsRelInfo  *ri = &cs->ri;
	Datum	   *values;
	bool	   *nulls;
	int			natts = ri->natts;
	ExprContext *econtext = GetPerTupleExprContext(b->estate);

	ExecClearTuple(slot);
	values = slot->tts_values;
	nulls = slot->tts_isnull;
	for (int i = 0; i < natts; i++)
	{
		nulls[i] = true;
		values[i] = (Datum) 0;
		cs->provided[i] = false;
	}
	values[ri->pkcol->attnum - 1] = key;
	nulls[ri->pkcol->attnum - 1] = false;
	cs->provided[ri->pkcol->attnum - 1] = true;

	if (cs->coll->kind == DS_KIND_DOCUMENT)
	{
		JsonbValue	pkv;

		if (ev->value.type == jbvBinary && JsonContainerIsObject(ev->value.val.binary.data) &&
			getKeyJsonValueFromContainer(ev->value.val.binary.data, cs->coll->primary_key,
										 strlen(cs->coll->primary_key), &pkv) &&
			!member_matches_key(&pkv, ev))
			pk_mismatch(cs, ev, &pkv);
		values[ri->valuecol->attnum - 1] = JsonbPGetDatum(JsonbValueToJsonb(&ev->value));
		nulls[ri->valuecol->attnum - 1] = false;
		cs->provided[ri->valuecol->attnum - 1] = true;
	}
	else
	{
		JsonbIterator *it;
		JsonbValue	k,
					v;
		JsonbIteratorToken tok;
		JsonbParseState *exact = NULL,
				   *members = NULL;

		if (ev->value.type != jbvBinary || !JsonContainerIsObject(ev->value.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("value of typed collection \"%s\" must be an object", cs->coll->name)));
		it = JsonbIteratorInit(ev->value.val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			DsColumn   *col;
			bool		isnull;
			Datum		d;
			JsonbValue	canonical;

			if (tok != WJB_KEY)
				continue;
			tok = JsonbIteratorNext(&it, &v, true);
			Assert(tok == WJB_VALUE);
			col = ds_relinfo_column(ri, k.val.string.val, k.val.string.len);
			if (col == NULL)
			{
				if (ri->extracol)
				{
					/* kept as is in the extra column */
					if (members == NULL)
						pushJsonbValue(&members, WJB_BEGIN_OBJECT, NULL);
					pushJsonbValue(&members, WJB_KEY, &k);
					pushJsonbValue(&members, WJB_VALUE, &v);
					continue;
				}
				if (cs->coll->allow_extra)
					continue;
				ereport(ERROR,
						(errcode(ERRCODE_CHECK_VIOLATION),
						 errmsg("value member \"%s\" has no column in table \"%s\"",
								ds_shorten(k.val.string.val, k.val.string.len),
								RelationGetRelationName(cs->rel)),
						 errhint("Add the column, or create the collection with allow_extra => true to ignore such members.")));
			}
			if (col == ri->pkcol)
			{
				if (!member_matches_key(&v, ev))
					pk_mismatch(cs, ev, &v);
				continue;
			}
			if (col->attgenerated || col->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
				ereport(ERROR,
						(errcode(ERRCODE_GENERATED_ALWAYS),
						 errmsg("value member \"%s\" sets column \"%s\", which is %s",
								col->name, col->name,
								col->attgenerated ? "generated" : "GENERATED ALWAYS AS IDENTITY"),
						 errhint("Leave the member out of the value.")));
			d = ds_json_to_datum(col, &v, &isnull);
			values[col->attnum - 1] = d;
			nulls[col->attnum - 1] = isnull;
			cs->provided[col->attnum - 1] = true;
			if (ri->extracol && !ds_renders_exactly(col, &v, d, isnull, &canonical))
			{
				/* keep the JSON as applied, with what the column reads back as */
				if (exact == NULL)
					pushJsonbValue(&exact, WJB_BEGIN_OBJECT, NULL);
				pushJsonbValue(&exact, WJB_KEY, &k);
				pushJsonbValue(&exact, WJB_BEGIN_ARRAY, NULL);
				pushJsonbValue(&exact, WJB_ELEM, &v);
				pushJsonbValue(&exact, WJB_ELEM, &canonical);
				pushJsonbValue(&exact, WJB_END_ARRAY, NULL);
			}
		}
		if (ri->extracol)
		{
			int			att = ri->extracol->attnum - 1;

			cs->provided[att] = true;
			if (exact || members)
				values[att] = JsonbPGetDatum(extra_value(exact, members));
			nulls[att] = (exact == NULL && members == NULL);
		}
	}

	/* the version: 1 when inserted, one more on every update */
	if (ri->versioncol)
	{
		int			att = ri->versioncol->attnum - 1;
		int64		version = 1;

		if (found)
		{
			bool		isnull;
			Datum		d = slot_getattr(cs->oldslot, att + 1, &isnull);

			if (!isnull)
				version = DatumGetInt64(d) + 1;
		}
		values[att] = Int64GetDatum(version);
		nulls[att] = false;
		cs->provided[att] = true;
	}

	/*
	 * Members the value leaves out: a column with a default (or identity)
	 * gets it on insert and keeps its value on update, as it would through
	 * INSERT and UPDATE; any other column is NULL, since an update replaces
	 * the value.
	 */
	for (int i = 0; i < natts; i++)
	{
		if (cs->provided[i] || cs->defaults[i] == NULL)
			continue;
		if (found)
			values[i] = slot_getattr(cs->oldslot, i + 1, &nulls[i]);
		else
			values[i] = ExecEvalExprSwitchContext(cs->defaults[i], econtext, &nulls[i]);
	}
	ExecStoreVirtualTuple(slot);
}

static char *
stored_text(Jsonb *jb)
{
	char	   *s = JsonbToCString(NULL, &jb->root, VARSIZE(jb));

	return ds_shorten(s, strlen(s));
}

/*
 * For a typed collection, old_value matches when each of its members equals
 * the stored column, compared as the column's type (so "...Z" and
 * "...+00:00" are the same timestamp); members it leaves out are not
 * compared.
 */
static bool
typed_old_value_matches(DsCollState *cs, DsEvent *ev)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;

	if (ev->old_value.type != jbvBinary || !JsonContainerIsObject(ev->old_value.val.binary.data))
		return false;
	it = JsonbIteratorInit(ev->old_value.val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		DsColumn   *col;
		bool		isnull,
					snull;
		Datum		d,
					stored;
		TypeCacheEntry *tce;

		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &v, true);
		col = ds_relinfo_column(&cs->ri, k.val.string.val, k.val.string.len);
		if (col == NULL)
		{
			JsonbValue	sv;

			if (cs->ri.extracol)
			{
				/* a member kept in the extra column: equal as JSON */
				if (!ds_stored_extra_member(&cs->ri, cs->oldslot, k.val.string.val,
											k.val.string.len, &sv))
				{
					if (v.type != jbvNull)
						return false;
				}
				else if (sv.type == jbvNumeric && v.type == jbvNumeric ?
						 !DatumGetBool(DirectFunctionCall2(numeric_eq,
														   NumericGetDatum(sv.val.numeric),
														   NumericGetDatum(v.val.numeric))) :
						 !ds_scalar_equals(&sv, &v))
					return false;
				continue;
			}
			if (cs->coll->allow_extra)
				continue;
			return false;
		}
		if (col == cs->ri.pkcol)
		{
			if (!member_matches_key(&v, ev))
				return false;
			continue;
		}
		d = ds_json_to_datum(col, &v, &isnull);
		stored = slot_getattr(cs->oldslot, col->attnum, &snull);
		if (isnull || snull)
		{
			if (isnull != snull)
				return false;
			continue;
		}
		tce = lookup_type_cache(col->typid, TYPECACHE_EQ_OPR_FINFO);
		if (OidIsValid(tce->eq_opr_finfo.fn_oid))
		{
			if (!DatumGetBool(FunctionCall2Coll(&tce->eq_opr_finfo, col->collation, d, stored)))
				return false;
		}
		else if (!datumIsEqual(d, stored, tce->typbyval, tce->typlen))
			return false;
	}
	return true;
}

static void
check_old_value(DsCollState *cs, DsEvent *ev, bool found)
{
	Jsonb	   *stored;
	bool		matches;

	if (!cs->coll->check_old_value || !ev->has_old_value)
		return;
	if (!found)
	{
		if (ev->old_value.type == jbvNull)
			return;
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("old_value conflict: the entity does not exist"),
				 errhint("Read the current value and retry.")));
	}
	if (cs->coll->kind == DS_KIND_DOCUMENT)
	{
		stored = ds_slot_value(&cs->ri, cs->coll, cs->oldslot);
		matches = stored != NULL && ds_jsonb_value_equals(&ev->old_value, stored);
	}
	else
	{
		matches = typed_old_value_matches(cs, ev);
		/* the row as JSON is only needed for the message */
		stored = matches ? NULL : ds_slot_value(&cs->ri, cs->coll, cs->oldslot);
	}
	if (!matches)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("old_value conflict: the stored value differs"),
				 errdetail("Stored: %s", stored ? stored_text(stored) : "none"),
				 errhint("Read the current value and retry.")));
}

/*
 * Row-level security on a stored or a new row (rls.c).  A stored row the
 * policies hide is an error, not a silent no-op as in UPDATE or DELETE: the
 * event would be in the log without being in the table.
 */
static void
rls_check(DsCollState *cs, DsEvent *ev, DsRlsCheck check, TupleTableSlot *slot)
{
	const char *rel = RelationGetRelationName(cs->rel);

	if (ds_rls_passes(cs->rel, check, slot))
		return;
	if (check == DS_RLS_UPDATE_NEW || check == DS_RLS_INSERT_NEW)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("new row violates row-level security policy for table \"%s\"", rel),
				 errdetail("The %s of this key would write a row the table's %s policies do not allow for the current user.",
						   ds_op_name(ev->op), check == DS_RLS_INSERT_NEW ? "INSERT" : "UPDATE")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("row-level security policy for table \"%s\" does not allow this %s of the stored row",
					rel, ds_op_name(ev->op)),
			 errdetail("The key exists, but the table's %s and SELECT policies hide its row from the current user.",
					   check == DS_RLS_DELETE_OLD ? "DELETE" : "UPDATE"),
			 errhint("Write only keys whose rows your role may see and change.")));
}

static void
apply_change(DsBatch *b, DsEvent *ev)
{
	DsCollState *cs = ev->coll;
	Datum		key = ev->ks ? ev->ks->datum : ds_key_datum(&cs->ri, ev->key, ev->key_len);
	bool		strict = cs->coll->strict;
	bool		found;

	found = find_row_known(cs, ev, key);
	switch (ev->op)
	{
		case DS_OP_INSERT:
			if (found && strict)
				ereport(ERROR,
						(errcode(ERRCODE_UNIQUE_VIOLATION),
						 errmsg("insert of a key that already exists"),
						 errhint("Use \"update\" or \"upsert\", or a lenient collection.")));
			break;
		case DS_OP_UPDATE:
		case DS_OP_DELETE:
			if (!found && strict)
				ereport(ERROR,
						(errcode(ERRCODE_NO_DATA_FOUND),
						 errmsg("%s of a key that does not exist", ds_op_name(ev->op)),
						 errhint("Use \"insert\" or \"upsert\", or a lenient collection.")));
			break;
		default:
			break;
	}
	/* before anything reads the stored row into a message or a merge */
	if (found && cs->rls)
		rls_check(cs, ev, ev->op == DS_OP_DELETE ? DS_RLS_DELETE_OLD : DS_RLS_UPDATE_OLD,
				  cs->oldslot);
	check_old_value(cs, ev, found);

	if (ev->op == DS_OP_DELETE)
	{
		if (cs->images)
			b->cur_img = ds_rls_row_images(&cs->ri, found ? cs->oldslot : NULL, NULL);
		if (found)
		{
			ExecSimpleRelationDelete(cs->rri, b->estate, &b->epq, cs->oldslot);
			key_applied(cs, ev, true);
		}
		return;
	}
	if (cs->schema)
		check_schema(cs, ev);
	form_row(b, cs, ev, key, found);
	if (cs->rls)
		rls_check(cs, ev, found ? DS_RLS_UPDATE_NEW : DS_RLS_INSERT_NEW, cs->newslot);
	if (found)
	{
		EvalPlanQualSetSlot(&b->epq, cs->newslot);
		ExecSimpleRelationUpdate(cs->rri, b->estate, &b->epq, cs->oldslot, cs->newslot);
	}
	else
		ExecSimpleRelationInsert(cs->rri, b->estate, cs->newslot);
	key_applied(cs, ev, false);
	/* after the write: stored generated columns are in the slot now */
	if (cs->images)
		b->cur_img = ds_rls_row_images(&cs->ri, found ? cs->oldslot : NULL, cs->newslot);
}

/* reset: every collection of the stream is emptied (DELETE: triggers fire). */
/*
 * reset: every collection of the stream is emptied, with DELETE so that
 * triggers fire, in one statement so that foreign keys between the
 * collections are checked once all of them are empty.
 */
static void
apply_reset(DsBatch *b)
{
	StringInfoData sql;
	int			ret;

	if (b->stream->ncolls == 0)
		return;
	/* DELETE would remove only the rows the caller sees; the log would say all */
	for (int c = 0; c < b->stream->ncolls; c++)
	{
		DsCollection *coll = &b->stream->colls[c];

		if (check_enable_rls(coll->relid, InvalidOid, false) == RLS_ENABLED)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("reset of stream \"%s\" is not allowed under row-level security",
							ds_shorten(b->stream_name, strlen(b->stream_name))),
					 errdetail("Row-level security applies to the current user on the table of collection \"%s\".",
							   coll->name),
					 errhint("A reset empties every collection of the stream; run it as a role that bypasses row-level security.")));
	}
	initStringInfo(&sql);
	for (int c = 0; c < b->stream->ncolls; c++)
	{
		DsCollection *coll = &b->stream->colls[c];
		char	   *nsp = get_namespace_name(get_rel_namespace(coll->relid));
		char	   *rel = get_rel_name(coll->relid);

		if (nsp == NULL || rel == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("table of collection \"%s\" no longer exists", coll->name),
					 errhint("Drop the collection with state.drop_collection().")));
		appendStringInfo(&sql, "%sd%d AS (DELETE FROM %s)", c == 0 ? "WITH " : ", ",
						 c, quote_qualified_identifier(nsp, rel));
	}
	appendStringInfoString(&sql, " SELECT 1");

	/* what the bulk probe learned is stale now */
	for (int c = 0; c < b->stream->ncolls; c++)
	{
		DsKeyTable *kt = b->colls[c].keys;

		for (uint32 i = 0; kt && i <= kt->mask; i++)
			kt->slots[i].known = false;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute(sql.data, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reset failed: %s", SPI_result_code_string(ret));
	SPI_finish();
}

static void
apply_control(DsBatch *b, DsEvent *ev)
{
	switch (ev->control)
	{
		case DS_CTL_SNAPSHOT_START:
			if (b->st.in_snapshot)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("snapshot-start inside a snapshot"),
						 errdetail("Stream \"%s\" already has an open snapshot.",
								   ds_shorten(b->stream_name, strlen(b->stream_name))),
						 errhint("End it with snapshot-end first.")));
			b->st.in_snapshot = true;
			break;
		case DS_CTL_SNAPSHOT_END:
			if (!b->st.in_snapshot)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("snapshot-end without snapshot-start"),
						 errdetail("Stream \"%s\" has no open snapshot.",
								   ds_shorten(b->stream_name, strlen(b->stream_name)))));
			b->st.in_snapshot = false;
			break;
		case DS_CTL_RESET:
			apply_reset(b);
			break;
		default:
			break;
	}
}

/*
 * The log is written in segments (see state.log): events are collected
 * here and one row is inserted per DS_SEGMENT_EVENTS events or
 * DS_SEGMENT_BYTES bytes, and at the end of the batch.
 */
#define DS_SEGMENT_EVENTS 1000
#define DS_SEGMENT_BYTES (1024 * 1024)

static void
log_flush(DsBatch *b)
{
	TupleTableSlot *slot = b->logslot;
	ArrayType  *arr;
	MemoryContext old;

	if (b->nseg == 0)
		return;
	old = MemoryContextSwitchTo(b->segcxt);
	arr = construct_array(b->seg, b->nseg, JSONBOID, -1, false, TYPALIGN_INT);
	ExecClearTuple(slot);
	slot->tts_values[0] = Int32GetDatum(b->st.id);
	slot->tts_values[1] = Int64GetDatum(b->seg_first);
	slot->tts_values[2] = Int64GetDatum(b->seg_first + b->nseg - 1);
	slot->tts_values[3] = PointerGetDatum(arr);
	slot->tts_values[4] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	memset(slot->tts_isnull, 0, sizeof(bool) * 5);
	/* any other column of a newer catalog: null unless it is images */
	for (int i = 5; i < slot->tts_tupleDescriptor->natts; i++)
		slot->tts_isnull[i] = true;
	if (b->log_imgatt != InvalidAttrNumber && b->seg_has_img)
	{
		int			dims[1] = {b->nseg};
		int			lbs[1] = {1};

		slot->tts_values[b->log_imgatt - 1] =
			PointerGetDatum(construct_md_array(b->segimg, b->segimgnull, 1, dims, lbs,
											   JSONBOID, -1, false, TYPALIGN_INT));
		slot->tts_isnull[b->log_imgatt - 1] = false;
	}
	ExecStoreVirtualTuple(slot);
	ExecSimpleRelationInsert(b->logrri, b->estate, slot);
	ExecClearTuple(slot);
	MemoryContextSwitchTo(old);
	MemoryContextReset(b->segcxt);
	b->seg_first += b->nseg;
	b->nseg = 0;
	b->seg_bytes = 0;
	b->seg_has_img = false;
}

static void
log_append(DsBatch *b, DsEvent *ev)
{
	MemoryContext old = MemoryContextSwitchTo(b->segcxt);

	if (b->log_imgatt != InvalidAttrNumber)
	{
		b->segimgnull[b->nseg] = (b->cur_img == NULL);
		b->segimg[b->nseg] = b->cur_img ? datumCopy(JsonbPGetDatum(b->cur_img), false, -1) : (Datum) 0;
		if (b->cur_img)
		{
			b->seg_has_img = true;
			b->seg_bytes += VARSIZE(b->cur_img);
		}
		b->cur_img = NULL;
	}
	b->seg[b->nseg++] = JsonbPGetDatum(ds_event_datum(ev));
	b->seg_bytes += ev->root_len;
	MemoryContextSwitchTo(old);
	if (b->nseg >= DS_SEGMENT_EVENTS || b->seg_bytes >= DS_SEGMENT_BYTES)
		log_flush(b);
}

/*
 * The batch's txids, durably and in the same transaction: one row of
 * state._txids (a GIN index finds a txid), so that state.await_txid and
 * state.txid_status know them after the commit and after a restart.
 */
static void
record_txids(DsBatch *b)
{
	TupleTableSlot *slot;
	Datum	   *txids;
	DsEvent    *prev = NULL;
	int			n = 0;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (b->ntxids == 0)
		return;
	txids = palloc(sizeof(Datum) * b->ntxids);
	for (int i = 0; i < b->nevents; i++)
	{
		DsEvent    *ev = &b->events[i];

		if (ev->txid == NULL)
			continue;
		/* a run of events of one client transaction shares its txid */
		if (prev && prev->txid_len == ev->txid_len &&
			memcmp(prev->txid, ev->txid, ev->txid_len) == 0)
			continue;
		prev = ev;
		txids[n++] = Int64GetDatum((int64) ds_txid_hash(ev->txid, ev->txid_len));
	}
	slot = ExecInitExtraTupleSlot(b->estate, RelationGetDescr(b->txidrel), &TTSOpsVirtual);
	values[0] = Int32GetDatum(b->st.id);
	values[1] = Int64GetDatum(b->st.tail + b->nevents);
	values[2] = PointerGetDatum(construct_array(txids, n, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	memcpy(slot->tts_values, values, sizeof(values));
	memcpy(slot->tts_isnull, nulls, sizeof(nulls));
	ExecStoreVirtualTuple(slot);
	ExecSimpleRelationInsert(b->txidrri, b->estate, slot);
	ExecClearTuple(slot);
}

/*
 * Every entity a batch wrote or deleted loses its TTL; in a collection with
 * a default TTL, every entity it wrote gets that one (ttl.c).
 */
static void
clear_ttls(DsBatch *b)
{
	for (int c = 0; c < b->stream->ncolls; c++)
	{
		DsCollState *cs = &b->colls[c];
		Datum	   *keys;
		bool	   *deleted;
		int			n = 0;

		if (!cs->coll->has_ttl || cs->nevents == 0)
			continue;
		keys = palloc(sizeof(Datum) * cs->nevents);
		deleted = palloc(sizeof(bool) * cs->nevents);
		for (int i = 0; i < b->nevents; i++)
			if (b->events[i].coll == cs)
			{
				keys[n] = PointerGetDatum(cstring_to_text_with_len(b->events[i].key,
																   b->events[i].key_len));
				deleted[n++] = b->events[i].op == DS_OP_DELETE;
			}
		ds_ttl_after_batch(cs->coll, keys, deleted, n);
	}
}

/* ------------------------------------------------------------------------
 * The batch
 * ------------------------------------------------------------------------ */

static AclMode
op_privileges(DsOperation op, bool strict)
{
	switch (op)
	{
		case DS_OP_INSERT:
			return ACL_SELECT | ACL_INSERT | (strict ? 0 : ACL_UPDATE);
		case DS_OP_UPDATE:
			return ACL_SELECT | ACL_UPDATE | (strict ? 0 : ACL_INSERT);
		case DS_OP_DELETE:
			return ACL_SELECT | ACL_DELETE;
		case DS_OP_UPSERT:
			return ACL_SELECT | ACL_INSERT | ACL_UPDATE;
		default:
			return 0;
	}
}

/*
 * Applies the parsed events to the stream; sets applied and skipped.
 */
static void
run_batch(DsBatch *b, const char *source_offset, int64 *applied, int64 *skipped)
{
	MemoryContext batchcxt = CurrentMemoryContext;

	/* we write tables directly, so the executor's read-only check is ours */
	PreventCommandIfReadOnly("state.apply");
	if (source_offset)
		ds_check_source_offset(source_offset);

	if (!ds_stream_lock(b->stream_name, &b->st))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("stream \"%s\" does not exist",
						ds_shorten(b->stream_name, strlen(b->stream_name))),
				 errhint("A stream is created by the first state.create_collection() that names it.")));

	for (int i = 0; i < nactive; i++)
	{
		if (active_streams[i] == b->st.id)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("state.apply on stream \"%s\" cannot run inside another batch on the same stream",
							ds_shorten(b->stream_name, strlen(b->stream_name))),
					 errhint("A trigger on a collection's table may apply events to other streams only.")));
	}
	if (nactive >= DS_MAX_NESTED)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("state.apply nested too deeply")));

	/* exactly-once resume: a batch at or before the recorded offset is skipped */
	if (source_offset && b->st.source_offset &&
		strcmp(source_offset, b->st.source_offset) <= 0)
	{
		*applied = 0;
		*skipped = b->nevents;
		return;
	}

	b->stream = ds_catalog_stream(b->stream_name, false);
	b->colls = palloc0(sizeof(DsCollState) * Max(b->stream->ncolls, 1));
	for (int c = 0; c < b->stream->ncolls; c++)
		b->colls[c].coll = &b->stream->colls[c];

	for (int i = 0; i < b->nevents; i++)
	{
		DsEvent    *ev = &b->events[i];
		DsCollection *coll;
		DsCollState *cs;

		if (ev->control != DS_CTL_NONE)
			continue;
		b->current = i;
		coll = ds_stream_collection(b->stream, ev->type, ev->type_len, false);
		cs = &b->colls[coll - b->stream->colls];
		cs->needed |= op_privileges(ev->op, coll->strict);
		cs->nevents++;
		ev->coll = cs;
		if (ev->txid)
			b->ntxids++;
	}
	b->current = -1;

	b->active_slot = nactive;
	active_streams[nactive++] = b->st.id;
	open_collections(b);
	for (int c = 0; c < b->stream->ncolls; c++)
	{
		if (b->colls[c].opened)
			bulk_probe(b, &b->colls[c]);
	}
	b->evcxt = AllocSetContextCreate(batchcxt, "durable_state event", ALLOCSET_DEFAULT_SIZES);
	b->segcxt = AllocSetContextCreate(batchcxt, "durable_state log segment",
									  ALLOCSET_DEFAULT_SIZES);
	b->seg = palloc(sizeof(Datum) * DS_SEGMENT_EVENTS);
	b->segimg = palloc(sizeof(Datum) * DS_SEGMENT_EVENTS);
	b->segimgnull = palloc(sizeof(bool) * DS_SEGMENT_EVENTS);
	b->seg_first = b->st.tail + 1;

	for (int i = 0; i < b->nevents; i++)
	{
		DsEvent    *ev = &b->events[i];

		b->current = i;
		CHECK_FOR_INTERRUPTS();
		/* each event is its own command, so it sees the ones before it */
		CommandCounterIncrement();
		b->estate->es_output_cid = GetCurrentCommandId(true);
		MemoryContextSwitchTo(b->evcxt);

		if (ev->control != DS_CTL_NONE)
			apply_control(b, ev);
		else
			apply_change(b, ev);
		log_append(b, ev);

		MemoryContextSwitchTo(batchcxt);
		MemoryContextReset(b->evcxt);
		ResetPerTupleExprContext(b->estate);
	}
	b->current = -1;

	log_flush(b);
	record_txids(b);
	b->current = DS_END_OF_BATCH;
	clear_ttls(b);
	close_collections(b);
	b->current = -1;
	ds_note_batch(b->st.id, b->stream_name, b->st.tail + 1, b->st.tail + b->nevents,
				  b->events, b->nevents);
	b->st.tail += b->nevents;
	nactive = b->active_slot;
	b->active_slot = -1;
	ds_stream_update(&b->st, source_offset);
	ds_stream_set_tail(b->st.id, b->st.tail);
	ds_count(DS_CNT_EVENTS_APPLIED, b->nevents);
	ds_count(DS_CNT_BATCHES_APPLIED, 1);
	*applied = b->nevents;
	*skipped = 0;
}

/* Runs a batch with error messages naming the failing event; returns the row. */
static void
apply_events(FunctionCallInfo fcinfo, JsonbValue *elems, int n, int *lines)
{
	ReturnSetInfo *rsinfo;
	MemoryContext callercxt = CurrentMemoryContext;
	MemoryContext batchcxt;
	DsBatch    *b;
	int64		applied = 0,
				skipped = 0;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	char	   *stream_name;
	char	   *source_offset = NULL;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream must not be null")));
	stream_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!PG_ARGISNULL(2))
		source_offset = text_to_cstring(PG_GETARG_TEXT_PP(2));

	if (n > ds_max_batch_events)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("batch has %d events, more than durable_state.max_batch_events (%d)",
						n, ds_max_batch_events),
				 errhint("Split the batch or raise durable_state.max_batch_events.")));

	InitMaterializedSRF(fcinfo, 0);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	batchcxt = AllocSetContextCreate(CurrentMemoryContext, "durable_state batch",
									 ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(batchcxt);
	b = palloc0(sizeof(DsBatch));
	b->stream_name = stream_name;
	b->nevents = n;
	b->events = palloc0(sizeof(DsEvent) * Max(n, 1));
	b->lines = lines;
	b->current = -1;
	b->active_slot = -1;

	PG_TRY();
	{
		for (int i = 0; i < n; i++)
		{
			b->current = i;
			ds_parse_event(&elems[i], i, &b->events[i]);
		}
		b->current = -1;
		run_batch(b, source_offset, &applied, &skipped);
	}
	PG_CATCH();
	{
		int			cur = b->current;

		ds_count(DS_CNT_EVENTS_REJECTED, b->nevents);

		/* this batch (and any nested in it) is over */
		if (b->active_slot >= 0)
			nactive = b->active_slot;

		if (cur >= 0 || cur == DS_END_OF_BATCH)
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(callercxt);
			edata = CopyErrorData();
			if (edata->elevel == ERROR &&
				edata->sqlerrcode != ERRCODE_QUERY_CANCELED &&
				edata->sqlerrcode != ERRCODE_ADMIN_SHUTDOWN)
			{
				FlushErrorState();
				if (cur == DS_END_OF_BATCH)
					edata->message = psprintf("end of batch (%d event%s): %s", b->nevents,
											  b->nevents == 1 ? "" : "s", edata->message);
				else
					edata->message = psprintf("%s: %s", describe_event(b, cur), edata->message);
				ReThrowError(edata);
			}
		}
		PG_RE_THROW();
	}
	PG_END_TRY();

	MemoryContextSwitchTo(callercxt);
	values[0] = Int64GetDatum(applied);
	values[1] = Int64GetDatum(skipped);
	values[2] = CStringGetTextDatum(ds_format_offset(b->st.tail));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	MemoryContextDelete(batchcxt);
}

/* state.apply(events jsonb, stream text, source_offset text) */
Datum
ds_apply(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb;
	JsonbValue *elems;
	int			n = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("events must not be null")));
	jb = PG_GETARG_JSONB_P(0);

	if (JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events must be an event object or an array of events")));
	if (JB_ROOT_IS_OBJECT(jb))
	{
		elems = palloc(sizeof(JsonbValue));
		elems[0].type = jbvBinary;
		elems[0].val.binary.data = &jb->root;
		elems[0].val.binary.len = VARSIZE(jb) - VARHDRSZ;
		n = 1;
	}
	else
	{
		JsonbIterator *it = JsonbIteratorInit(&jb->root);
		JsonbValue	v;
		JsonbIteratorToken tok;
		int			cap = Max(JB_ROOT_COUNT(jb), 1);

		elems = palloc(sizeof(JsonbValue) * cap);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_ELEM)
				elems[n++] = v;
		}
	}
	apply_events(fcinfo, elems, n, NULL);
	return (Datum) 0;
}

/*
 * state.apply_text(events text, ...): a JSON array, or newline-delimited
 * JSON (one event per line; blank lines are ignored).
 */
Datum
ds_apply_text(PG_FUNCTION_ARGS)
{
	char	   *s;
	char	   *p;
	JsonbValue *elems;
	int		   *lines;
	int			n = 0,
				cap = 64,
				lineno = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("events must not be null")));
	s = text_to_cstring(PG_GETARG_TEXT_PP(0));
	p = s;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
	{
		/* blank lines before the first event still count for line numbers */
		if (*p == '\n')
			lineno++;
		p++;
	}
	if (*p == '[' || *p == '\0')
	{
		Jsonb	   *jb = *p ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(p)))
			: NULL;

		if (jb == NULL)
		{
			apply_events(fcinfo, NULL, 0, NULL);
			return (Datum) 0;
		}
		fcinfo->args[0].value = JsonbPGetDatum(jb);
		return ds_apply(fcinfo);
	}

	/* NDJSON: from the start of the first non-blank line */
	while (p > s && p[-1] != '\n')
		p--;
	elems = palloc(sizeof(JsonbValue) * cap);
	lines = palloc(sizeof(int) * cap);
	while (*p)
	{
		char	   *nl = strchr(p, '\n');
		char	   *end = nl ? nl : p + strlen(p);
		char	   *q = p;
		Jsonb	   *jb;

		lineno++;
		if (nl)
			*nl = '\0';
		if (end > p && end[-1] == '\r')
			end[-1] = '\0';
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q != '\0')
		{
			if ((int64) strlen(q) > (int64) ds_max_event_bytes)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("event %d (line %d) is %zu bytes, more than durable_state.max_event_bytes (%d)",
								n, lineno, strlen(q), ds_max_event_bytes)));
			if (n >= ds_max_batch_events)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("batch has more than durable_state.max_batch_events (%d) events",
								ds_max_batch_events),
						 errhint("Split the batch or raise durable_state.max_batch_events.")));
			PG_TRY();
			{
				jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(q)));
			}
			PG_CATCH();
			{
				ErrorData  *edata;

				MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
				edata = CopyErrorData();
				FlushErrorState();
				edata->message = psprintf("event %d (line %d): %s", n, lineno, edata->message);
				ReThrowError(edata);
			}
			PG_END_TRY();
			if (n >= cap)
			{
				cap *= 2;
				elems = repalloc(elems, sizeof(JsonbValue) * cap);
				lines = repalloc(lines, sizeof(int) * cap);
			}
			if (JB_ROOT_IS_SCALAR(jb))
			{
				elems[n].type = jbvNull;	/* rejected by the parser as not an object */
				JsonbExtractScalar(&jb->root, &elems[n]);
			}
			else
			{
				elems[n].type = jbvBinary;
				elems[n].val.binary.data = &jb->root;
				elems[n].val.binary.len = VARSIZE(jb) - VARHDRSZ;
			}
			lines[n] = lineno;
			n++;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	apply_events(fcinfo, elems, n, lines);
	return (Datum) 0;
}
