/*
 * apply.c
 *		The apply engine's batch: state.apply(jsonb), and the batch that
 *		state.apply_text(text) (apply_text.c) hands over parsed.
 *
 * A call is one batch, applied all-or-nothing:
 *	1. every event is parsed and validated (event.c);
 *	2. the stream's row is locked (changelog.c): seq order is commit order;
 *	3. each event's collection is resolved from the cached catalog, and each
 *	   table is opened once, with its indexes, privileges checked;
 *	4. a collection with many events is probed in bulk (probe.c);
 *	5. events are applied in order the way logical replication applies a
 *	   change (execReplication.c): the stored row found and locked
 *	   (probe.c), the new row formed and checked (row.c), then
 *	   ExecSimpleRelationInsert/Update/Delete so constraints, indexes and
 *	   triggers all apply; every event is appended to the log segment being
 *	   filled (changelog.c);
 *	6. the end of the batch: the last log segment, the batch's txids, TTLs,
 *	   then AFTER triggers (foreign keys among them).
 * No SQL is planned per event or per batch (only a reset runs a DELETE).
 * Any error names the event's index, type and key (the PG_CATCH in
 * ds_apply_events prefixes it to whatever was raised).
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parsetree.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "apply.h"
#include "compat.h"

/* durable_state.max_batch_events: the most events one call accepts */
int			ds_max_batch_events = 1000000;

/* Registers the apply engine's settings. */
void
ds_apply_init(void)
{
	DefineCustomIntVariable("durable_state.max_batch_events",
							"Most events one state.apply call accepts.",
							NULL,
							&ds_max_batch_events,
							1000000, 1, INT_MAX / 64,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
}

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

/*
 * "event 3 (line 4) (type "user", key "u1")": how error messages name event
 * i of the batch.
 */
static char *
describe_event(DsBatch *b, int i)
{
	DsEvent    *ev = &b->events[i];
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "event %d", b->index_base + i);
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
 * Opening and closing the batch's tables
 * ------------------------------------------------------------------------ */

/*
 * Open the log, the txid table (if the batch has txids) and the table of
 * every collection the batch writes, check the caller's privileges on
 * them, and give the executor state a range table of them all: the log at
 * index 1, the txid table next, then the collections (cs->rti).
 */
static void
open_relations(DsBatch *b)
{
	DsRangeTable rt = {0};
	Relation	logrel;

	logrel = table_open(ds_catalog_oids()->log, RowExclusiveLock);
	ds_rt_add(&rt, logrel, RowExclusiveLock, ACL_INSERT);
	if (b->ntxids > 0)
	{
		b->txidrel = table_open(ds_catalog_oids()->txids, RowExclusiveLock);
		ds_rt_add(&rt, b->txidrel, RowExclusiveLock, ACL_INSERT);
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
		if (cs->rel->rd_rel->relkind != RELKIND_RELATION)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("table of collection \"%s\" is not an ordinary table", cs->coll->name)));

		/*
		 * An event sets the whole row, so every column counts as inserted
		 * and updated (UPDATE OF triggers, error details use these).
		 */
		cs->rti = ds_rt_add(&rt, cs->rel, RowExclusiveLock, cs->needed);
		ds_rt_all_columns_written(&rt, cs->rti, RelationGetDescr(cs->rel));
	}
	ds_exec_init_range_table(b->estate, &rt);
	ds_log_writer_open(&b->log, b->estate, logrel, 1, b->st.id, b->nevents);
	if (b->txidrel)
	{
		b->txidrri = ds_result_rel_open(b->estate, b->txidrel, 2);
	}
}

/*
 * Make an opened collection ready to be written: its result relation and
 * indexes, its slots, its default expressions, the index scan the
 * per-event probe reuses, and its compiled schema.
 */
static void
init_collection(DsBatch *b, DsCollState *cs)
{
	EState	   *estate = b->estate;
	TupleDesc	desc = RelationGetDescr(cs->rel);
	MemoryContext old;

	/* listed in the estate, so AFTER triggers find it instead of opening it again */
	cs->rri = ds_result_rel_open(estate, cs->rel, cs->rti);
	ds_check_valid_result_rel(cs->rri, CMD_INSERT);

	cs->oldslot = table_slot_create(cs->rel, &estate->es_tupleTable);
	cs->newslot = ExecInitExtraTupleSlot(estate, desc, &TTSOpsVirtual);
	cs->provided = palloc0(sizeof(bool) * desc->natts);
	cs->defaults = palloc0(sizeof(ExprState *) * desc->natts);
	/* the defaults come planned (catalog.c): only their state is built */
	old = MemoryContextSwitchTo(estate->es_query_cxt);
	for (int i = 0; i < desc->natts; i++)
	{
		if (cs->ri.defaults[i] != NULL)
			cs->defaults[i] = ExecInitExpr(cs->ri.defaults[i], NULL);
	}
	MemoryContextSwitchTo(old);

	InitDirtySnapshot(cs->dirty);
	cs->scan = ds_index_beginscan(cs->rel, cs->pkrel, &cs->dirty, 1, 0);
	/* side by side with other batches: the snapshot must see what we change */
	cs->rr_check = !b->st.exclusive && IsolationUsesXactSnapshot();
	/* for whoever reads the log under the table's policies */
	cs->images = cs->rel->rd_rel->relrowsecurity && b->log.imgatt != InvalidAttrNumber;
	cs->opened = true;

	/* held until the transaction ends: nested batches cannot evict it */
	if (cs->coll->schema)
		cs->schema = ds_schema_get_pinned(cs->coll->schema, CurrentMemoryContext);
}

/*
 * Fire the BEFORE STATEMENT triggers of cs's table once for each kind of
 * change the batch may make to it, as for one INSERT ... ON CONFLICT
 * statement.  Transition tables would need the executor's capture of every
 * row, which this path does not do: refuse rather than hand such triggers
 * empty tables.
 */
static void
before_statement(DsBatch *b, DsCollState *cs)
{
	TriggerDesc *trig = cs->rel->trigdesc;

	if (trig && (trig->trig_insert_new_table || trig->trig_update_old_table ||
				 trig->trig_update_new_table || trig->trig_delete_old_table))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" of collection \"%s\" has triggers with transition tables",
						RelationGetRelationName(cs->rel), cs->coll->name),
				 errhint("state.apply does not fill REFERENCING OLD/NEW TABLE; use row-level triggers.")));
	if (cs->needed & ACL_INSERT)
		ExecBSInsertTriggers(b->estate, cs->rri);
	if (cs->needed & ACL_UPDATE)
		ExecBSUpdateTriggers(b->estate, cs->rri);
	if (cs->needed & ACL_DELETE)
		ExecBSDeleteTriggers(b->estate, cs->rri);
}

/*
 * Open everything the batch writes (open_relations, init_collection) in a
 * new executor state, and begin the batch as one query: AFTER triggers
 * are queued until close_collections, BEFORE STATEMENT triggers fire now.
 */
static void
open_collections(DsBatch *b)
{
	b->estate = CreateExecutorState();
	b->estate->es_output_cid = GetCurrentCommandId(true);
	open_relations(b);
	for (int c = 0; c < b->stream->ncolls; c++)
	{
		if (b->colls[c].needed != 0)
			init_collection(b, &b->colls[c]);
	}
	ds_epq_init(&b->epq, b->estate);
	AfterTriggerBeginQuery();
	for (int c = 0; c < b->stream->ncolls; c++)
	{
		if (b->colls[c].opened)
			before_statement(b, &b->colls[c]);
	}
}

/*
 * End the batch as a query: AFTER STATEMENT triggers, then every queued
 * AFTER trigger (foreign keys among them), then close what
 * open_collections opened, keeping the locks to the end of the
 * transaction.
 */
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
	table_close(b->log.rel, NoLock);
	if (b->txidrel)
		table_close(b->txidrel, NoLock);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
}

/* ------------------------------------------------------------------------
 * Applying one event
 * ------------------------------------------------------------------------ */

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

/*
 * Apply change event i (insert, update, upsert or delete) to its
 * collection's table, as logical replication applies a change: find and
 * lock the stored row, check the operation against the collection's mode,
 * row-level security and old_value, then delete the row, or form the new
 * row, check it against the schema and the policies and insert or update
 * it.  Sets b->cur_img to the rows' images when the log keeps them.
 */
static void
apply_change(DsBatch *b, int i)
{
	DsEvent    *ev = &b->events[i];
	DsCollState *cs = b->evstate[i].cs;
	DsKeyState *ks = b->evstate[i].ks;
	Datum		key = ks ? ks->datum : ds_key_datum(&cs->ri, ev->key, ev->key_len);
	bool		strict = cs->coll->strict;
	bool		found;

	found = ds_find_row_known(cs, ks, key);
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
	ds_check_old_value(cs, ev, found);

	if (ev->op == DS_OP_DELETE)
	{
		if (cs->images)
			b->cur_img = ds_rls_row_images(&cs->ri, found ? cs->oldslot : NULL, NULL);
		if (found)
		{
			ExecSimpleRelationDelete(cs->rri, b->estate, &b->epq, cs->oldslot);
			ds_key_applied(cs, ks, true);
		}
		return;
	}
	if (cs->schema)
		ds_check_schema(cs, ev);
	ds_form_row(b->estate, cs, ev, key, found);
	if (cs->rls)
		rls_check(cs, ev, found ? DS_RLS_UPDATE_NEW : DS_RLS_INSERT_NEW, cs->newslot);
	if (found)
	{
		EvalPlanQualSetSlot(&b->epq, cs->newslot);
		ExecSimpleRelationUpdate(cs->rri, b->estate, &b->epq, cs->oldslot, cs->newslot);
	}
	else
		ExecSimpleRelationInsert(cs->rri, b->estate, cs->newslot);
	ds_key_applied(cs, ks, false);
	/* after the write: stored generated columns are in the slot now */
	if (cs->images)
		b->cur_img = ds_rls_row_images(&cs->ri, found ? cs->oldslot : NULL, cs->newslot);
}

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
	ds_probe_forget(b);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute(sql.data, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reset failed: %s", SPI_result_code_string(ret));
	SPI_finish();
}

/*
 * Apply a control event: snapshot-start and snapshot-end move the stream's
 * snapshot state (refusing a start inside a snapshot and an end outside
 * one), reset empties the stream's collections.
 */
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
 * Stores a row of state._txids in slot: the n columns attnums of values,
 * the others null.
 */
static void
fill_txid_slot(TupleTableSlot *slot, const AttrNumber *attnums, const Datum *values, int n)
{
	ExecClearTuple(slot);
	for (int a = 0; a < slot->tts_tupleDescriptor->natts; a++)
		slot->tts_isnull[a] = true;
	for (int i = 0; i < n; i++)
	{
		slot->tts_values[attnums[i] - 1] = values[i];
		slot->tts_isnull[attnums[i] - 1] = false;
	}
	ExecStoreVirtualTuple(slot);
}

/* rows of state._txids stored by one table_multi_insert call */
#define DS_TXID_CHUNK 1000

/*
 * Whether rows of state._txids may be stored in chunks by
 * table_multi_insert, as COPY stores them: the table is ours, but a
 * trigger, a CHECK constraint or a generated column added to it would need
 * ExecSimpleRelationInsert's row by row path.
 */
static bool
txids_multi_insert_ok(DsBatch *b)
{
	TupleConstr *constr = RelationGetDescr(b->txidrel)->constr;

	return b->txidrri->ri_TrigDesc == NULL &&
		(constr == NULL || (constr->num_check == 0 && !constr->has_generated_stored));
}

/*
 * Store the n rows in slots into state._txids with one table_multi_insert
 * call (a WAL record per heap page instead of per row), then their index
 * entries, in the rows' order (the hashes' order: see ds_txid_gen).
 * Memory used goes with the per-tuple context.
 */
static void
flush_txid_rows(DsBatch *b, TupleTableSlot **slots, int n, BulkInsertState bistate)
{
	MemoryContext old = MemoryContextSwitchTo(GetPerTupleMemoryContext(b->estate));

	table_multi_insert(b->txidrel, slots, n, b->estate->es_output_cid, 0, bistate);
	for (int i = 0; i < n; i++)
	{
		ds_insert_index_tuples(b->txidrri, slots[i], b->estate);
		ExecClearTuple(slots[i]);
	}
	MemoryContextSwitchTo(old);
	ResetPerTupleExprContext(b->estate);
}

/*
 * Where rows of state._txids go: in chunks of DS_TXID_CHUNK by
 * table_multi_insert when the table allows it, else one by one.
 */
typedef struct TxidSink
{
	DsBatch    *b;
	TupleTableSlot *one;		/* row by row */
	TupleTableSlot **slots;		/* in chunks */
	BulkInsertState bistate;
	int			k;				/* rows in slots */
} TxidSink;

/* Begins a sink for up to nrows rows. */
static void
txid_sink_begin(TxidSink *s, DsBatch *b, int nrows)
{
	memset(s, 0, sizeof(TxidSink));
	s->b = b;
	if (txids_multi_insert_ok(b))
	{
		s->slots = palloc(sizeof(TupleTableSlot *) * Min(nrows, DS_TXID_CHUNK));
		for (int i = 0; i < Min(nrows, DS_TXID_CHUNK); i++)
			s->slots[i] = table_slot_create(b->txidrel, &b->estate->es_tupleTable);
		s->bistate = GetBulkInsertState();
	}
	else
		s->one = ExecInitExtraTupleSlot(b->estate, RelationGetDescr(b->txidrel), &TTSOpsVirtual);
}

/* Adds a row: the n columns attnums of values, the others null. */
static void
txid_sink_add(TxidSink *s, const AttrNumber *attnums, const Datum *values, int n)
{
	TupleTableSlot *slot = s->slots ? s->slots[s->k] : s->one;

	fill_txid_slot(slot, attnums, values, n);
	if (s->slots == NULL)
	{
		ExecSimpleRelationInsert(s->b->txidrri, s->b->estate, slot);
		ResetPerTupleExprContext(s->b->estate);
	}
	else if (++s->k == DS_TXID_CHUNK)
	{
		flush_txid_rows(s->b, s->slots, s->k, s->bistate);
		s->k = 0;
	}
}

/* Stores the rows still in the sink. */
static void
txid_sink_end(TxidSink *s)
{
	if (s->k > 0)
		flush_txid_rows(s->b, s->slots, s->k, s->bistate);
	if (s->bistate)
		FreeBulkInsertState(s->bistate);
}

/*
 * Adds a packed row of the ngroup sorted hashes of group, which share
 * their top DS_TXID_PACK_BITS bits, values giving the other columns.  The
 * array is made in the per-tuple context, which a flush resets after
 * storing it.
 */
static void
add_packed_row(TxidSink *sink, const AttrNumber *attnums, Datum *values,
			   Datum *group, int ngroup)
{
	MemoryContext old = MemoryContextSwitchTo(GetPerTupleMemoryContext(sink->b->estate));

	values[5] = Int64GetDatum(ds_txid_pack_key(DatumGetInt64(group[0])));
	values[6] = PointerGetDatum(construct_array(group, ngroup, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	MemoryContextSwitchTo(old);
	txid_sink_add(sink, attnums, values, 7);
}

/*
 * Rows of state._txids (0.6.0 on) for the n sorted hashes, values giving
 * the other columns (values[5], the hash, and values[6], packed, are set
 * here): a row for each distinct hash or, for a large batch in a catalog
 * of 0.9.0 on, packed rows (DS_TXID_PACK_BITS).
 */
static void
insert_txid_rows(DsBatch *b, const AttrNumber *attnums, Datum *values,
				 const int64 *hashes, int n)
{
	bool		packed = n >= DS_TXID_FRESH_GEN_ROWS &&
		ds_catalog_oids()->txids_att_packed != InvalidAttrNumber;
	TxidSink	sink;
	Datum	   *group = packed ? palloc(sizeof(Datum) * DS_TXID_PACK_ROW) : NULL;
	int			ngroup = 0;

	txid_sink_begin(&sink, b, packed ? Min(n, (1 << DS_TXID_PACK_BITS) + n / DS_TXID_PACK_ROW) : n);
	for (int i = 0; i < n; i++)
	{
		if (i > 0 && hashes[i] == hashes[i - 1])
			continue;
		if (!packed)
		{
			values[5] = Int64GetDatum(hashes[i]);
			txid_sink_add(&sink, attnums, values, 6);
			continue;
		}
		/* a row ends when it is full or the next hash is of another group */
		if (ngroup == DS_TXID_PACK_ROW ||
			(ngroup > 0 && ds_txid_pack_key(hashes[i]) != ds_txid_pack_key(hashes[i - 1])))
		{
			add_packed_row(&sink, attnums, values, group, ngroup);
			ngroup = 0;
		}
		group[ngroup++] = Int64GetDatum(hashes[i]);
	}
	if (ngroup > 0)
		add_packed_row(&sink, attnums, values, group, ngroup);
	txid_sink_end(&sink);
}

/*
 * The batch's txids, durably and in the same transaction, so that
 * state.await_txid and state.txid_status know them after the commit and
 * after a restart: since 0.6.0 one row of state._txids per distinct txid,
 * with the transaction (horizon.c decides "replicated" by it) and the gen
 * that keeps inserts in a small part of the index; before, one row per
 * batch with an array of the hashes (a GIN index).
 */
static void
record_txids(DsBatch *b, int64 last)
{
	const DsCatalogOids *oids = ds_catalog_oids();
	int64	   *hashes;
	DsEvent    *prev = NULL;
	int			n = 0;
	TimestampTz at = GetCurrentTransactionStartTimestamp();

	if (b->ntxids == 0)
		return;
	/* not ended for the replicated horizon until its txids are published */
	ds_txid_register(GetTopFullTransactionId());
	hashes = palloc(sizeof(int64) * b->ntxids);
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
		hashes[n++] = (int64) ds_txid_hash(ev->txid, ev->txid_len);
	}
	if (OidIsValid(oids->txids_gen_idx))
	{
		AttrNumber	attnums[7] = {DS_TXIDS_ATT_STREAM, DS_TXIDS_ATT_LAST, DS_TXIDS_ATT_AT,
		oids->txids_att_gen, oids->txids_att_xid, oids->txids_att_hash, oids->txids_att_packed};
		Datum		values[7];

		ds_sort_int64(hashes, n);
		values[0] = Int32GetDatum(b->st.id);
		values[1] = Int64GetDatum(last);
		values[2] = TimestampTzGetDatum(at);
		values[3] = Int32GetDatum(ds_txid_gen(at, n));
		values[4] = FullTransactionIdGetDatum(GetTopFullTransactionId());
		insert_txid_rows(b, attnums, values, hashes, n);
	}
	else
	{
		AttrNumber	attnums[4] = {DS_TXIDS_ATT_STREAM, DS_TXIDS_ATT_LAST, DS_TXIDS_ATT_AT, 3};
		Datum		values[4];
		Datum	   *elems = palloc(sizeof(Datum) * n);
		TupleTableSlot *slot = ExecInitExtraTupleSlot(b->estate, RelationGetDescr(b->txidrel),
													  &TTSOpsVirtual);

		for (int i = 0; i < n; i++)
			elems[i] = Int64GetDatum(hashes[i]);
		values[0] = Int32GetDatum(b->st.id);
		values[1] = Int64GetDatum(last);
		values[2] = TimestampTzGetDatum(at);
		/* the hashes column, third before 0.6.0 */
		values[3] = PointerGetDatum(construct_array(elems, n, INT8OID, sizeof(int64),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		fill_txid_slot(slot, attnums, values, 4);
		ExecSimpleRelationInsert(b->txidrri, b->estate, slot);
		ExecClearTuple(slot);
	}
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
			if (b->evstate[i].cs == cs)
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

/* The table privileges an operation needs in a strict or lenient collection. */
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

/* the most events a batch writes beside others (its log rows hold a lock) */
#define DS_MAX_SIDE_BY_SIDE_EVENTS 1000

/*
 * Whether the batch needs its whole stream (see changelog.c): a control
 * event, a source offset, more than DS_MAX_SIDE_BY_SIDE_EVENTS events, or
 * more distinct keys than it may lock one by one.  Otherwise fills b->keyhashes with the hashes its key locks are
 * taken on.
 */
static bool
needs_whole_stream(DsBatch *b, const char *source_offset)
{
	int			n = 0;

	/* its log rows are written under the append lock: keep that short */
	if (source_offset != NULL || b->nevents > DS_MAX_SIDE_BY_SIDE_EVENTS)
		return true;
	b->keyhashes = palloc(sizeof(uint32) * Max(b->nevents, 1));
	for (int i = 0; i < b->nevents; i++)
	{
		DsEvent    *ev = &b->events[i];

		if (ev->control != DS_CTL_NONE)
			return true;
		b->keyhashes[n++] = ds_key_lock_hash(ev->type, ev->type_len, ev->key, ev->key_len);
	}
	if (n > ds_max_key_locks)
	{
		int			distinct = 0;

		qsort(b->keyhashes, n, sizeof(uint32), ds_cmp_uint32);
		for (int i = 0; i < n; i++)
			if (i == 0 || b->keyhashes[i] != b->keyhashes[i - 1])
				distinct++;
		if (distinct > ds_max_key_locks)
			return true;
	}
	b->nkeyhashes = n;
	return false;
}

/*
 * Lock the batch's stream (b->st), and its keys if it runs side by side
 * with other batches of the stream, refusing a stream that does not exist
 * and a batch nested inside another batch of the same stream.
 */
static void
lock_stream(DsBatch *b, const char *source_offset)
{
	bool		whole = needs_whole_stream(b, source_offset);

	if (!ds_stream_open(b->stream_name, &b->st, whole))
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
	if (!b->st.exclusive)
		ds_lock_keys(b->st.id, b->keyhashes, b->nkeyhashes);
}

/*
 * Resolve every change event's collection in the stream's catalog (42704
 * for an unknown type), and count per collection the events and the
 * privileges they need, and the batch's txids.
 */
static void
resolve_collections(DsBatch *b)
{
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
		b->evstate[i].cs = cs;
		if (ev->txid)
			b->ntxids++;
	}
	b->current = -1;
}

/*
 * Apply the events in order, each as its own command (so it sees the
 * ones before it) in a memory context reset after it, and append each to
 * the log.
 */
static void
apply_all(DsBatch *b)
{
	MemoryContext batchcxt = CurrentMemoryContext;

	b->evcxt = AllocSetContextCreate(batchcxt, "durable_state event", ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < b->nevents; i++)
	{
		DsEvent    *ev = &b->events[i];

		b->current = i;
		CHECK_FOR_INTERRUPTS();
		CommandCounterIncrement();
		b->estate->es_output_cid = GetCurrentCommandId(true);
		MemoryContextSwitchTo(b->evcxt);

		if (ev->control != DS_CTL_NONE)
			apply_control(b, ev);
		else
			apply_change(b, i);
		ds_log_writer_append(&b->log, ev, b->cur_img);
		b->cur_img = NULL;

		MemoryContextSwitchTo(batchcxt);
		MemoryContextReset(b->evcxt);
		ResetPerTupleExprContext(b->estate);
	}
	b->current = -1;
}

/*
 * Apply the parsed events to the stream; set *applied and *skipped.  A
 * batch at or before the stream's recorded source offset is skipped
 * whole.
 */
static void
run_batch(DsBatch *b, const char *source_offset, int64 *applied, int64 *skipped)
{
	int64		first;

	/* we write tables directly, so the executor's read-only check is ours */
	PreventCommandIfReadOnly("state.apply");
	if (source_offset)
		ds_check_source_offset(source_offset);
	lock_stream(b, source_offset);

	/* exactly-once resume: a batch at or before the recorded offset is skipped */
	if (source_offset && b->st.source_offset &&
		strcmp(source_offset, b->st.source_offset) <= 0)
	{
		*applied = 0;
		*skipped = b->nevents;
		return;
	}

	resolve_collections(b);
	b->active_slot = nactive;
	active_streams[nactive++] = b->st.id;
	open_collections(b);
	for (int c = 0; c < b->stream->ncolls; c++)
	{
		if (b->colls[c].opened)
			ds_bulk_probe(b, &b->colls[c]);
	}
	apply_all(b);

	/* every lock is held now: the batch gets its offsets, its rows log */
	b->current = DS_END_OF_BATCH;
	first = ds_log_assign(&b->st, b->nevents);
	ds_log_writer_write(&b->log, first, b->st.stable);
	ds_log_release(&b->st);
	record_txids(b, b->st.tail);
	clear_ttls(b);
	close_collections(b);
	b->current = -1;
	ds_note_batch(b->st.id, b->stream_name, first, b->st.tail, b->events, b->nevents);
	nactive = b->active_slot;
	b->active_slot = -1;
	ds_stream_update(&b->st, source_offset);
	ds_count(DS_CNT_EVENTS_APPLIED, b->nevents);
	ds_count(DS_CNT_BATCHES_APPLIED, 1);
	*applied = b->nevents;
	*skipped = 0;
}

/*
 * Parse and apply the n events elems (with their NDJSON line numbers, or
 * NULL) as one batch to stream stream_name, with source_offset (or NULL);
 * parsed, if not NULL, is the events as far as the caller has parsed them
 * already (ds_event_from_text; root NULL: not parsed), and is filled in;
 * set *applied, *skipped and *tail (the stream's last offset).  Errors
 * name event i as event index_base + i (a COPY's batches count on).  An
 * error raised while an event or the end of the batch is processed is
 * re-raised with the event named in front of its message.
 */
void
ds_apply_batch(const char *stream_name, const char *source_offset, JsonbValue *elems,
			   DsEvent *parsed, int n, int *lines, int index_base, int64 *applied,
			   int64 *skipped, int64 *tail)
{
	MemoryContext callercxt = CurrentMemoryContext;
	MemoryContext batchcxt;
	DsBatch    *b;

	*applied = *skipped = 0;
	if (n > ds_max_batch_events)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("batch has %d events, more than durable_state.max_batch_events (%d)",
						n, ds_max_batch_events),
				 errhint("Split the batch or raise durable_state.max_batch_events.")));

	batchcxt = AllocSetContextCreate(CurrentMemoryContext, "durable_state batch",
									 ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(batchcxt);
	b = palloc0(sizeof(DsBatch));
	b->stream_name = stream_name;
	b->nevents = n;
	b->events = parsed ? parsed : palloc0(sizeof(DsEvent) * Max(n, 1));
	b->evstate = palloc0(sizeof(DsEventState) * Max(n, 1));
	b->lines = lines;
	b->index_base = index_base;
	b->current = -1;
	b->active_slot = -1;

	PG_TRY();
	{
		for (int i = 0; i < n; i++)
		{
			b->current = i;
			if (b->events[i].root == NULL)
				ds_parse_event(&elems[i], i, &b->events[i]);
		}
		b->current = -1;
		run_batch(b, source_offset, applied, skipped);
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
	*tail = b->st.tail;
	MemoryContextDelete(batchcxt);
}

/*
 * Apply the n events elems (with their NDJSON line numbers, or NULL) as
 * one batch to the stream named by argument 1, with the source offset of
 * argument 2, and return state.apply's row (applied, skipped, last_offset)
 * through fcinfo.
 */
void
ds_apply_events(FunctionCallInfo fcinfo, JsonbValue *elems, DsEvent *parsed, int n,
				int *lines)
{
	ReturnSetInfo *rsinfo;
	int64		applied,
				skipped,
				tail;
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

	InitMaterializedSRF(fcinfo, 0);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ds_apply_batch(stream_name, source_offset, elems, parsed, n, lines, 0,
				   &applied, &skipped, &tail);
	values[0] = Int64GetDatum(applied);
	values[1] = Int64GetDatum(skipped);
	values[2] = CStringGetTextDatum(ds_format_offset(tail));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* ------------------------------------------------------------------------
 * SQL entry points
 * ------------------------------------------------------------------------ */

/*
 * state.apply(events jsonb, stream text, source_offset text): one event
 * object or an array of events, applied as one batch.
 */
PG_FUNCTION_INFO_V1(ds_apply);

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
		ds_jsonb_root_value(jb, &elems[0]);
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
	ds_apply_events(fcinfo, elems, NULL, n, NULL);
	return (Datum) 0;
}
