/*
 * rls.c
 *		Row-level security through the direct apply and read paths.
 *
 * state.apply and the readers touch a collection's table directly, not
 * through SQL statements, so the rewriter never adds the table's policies.
 * For a table whose policies apply to the current user this module asks
 * PostgreSQL which quals a statement would get (get_row_security_policies:
 * the policies of the user's roles, permissive ones OR-ed, restrictive ones
 * AND-ed, the default deny, the extension hook) and evaluates them on one
 * row at a time.  Quals without sub-selects are compiled once into an
 * ExprState over the row's slot, as the executor evaluates a statement's
 * quals.  Quals with sub-selects need the planner: they are deparsed (as
 * pg_dump deparses them) into
 *
 *   SELECT COALESCE((q1) AND (q2) ..., false) FROM (SELECT ($1::tbl).*) AS tbl
 *
 * prepared once and run with the row as $1.  Either is kept per table, user
 * and check, and rebuilt when the table's relcache entry is invalidated
 * (CREATE / ALTER / DROP POLICY, ALTER TABLE ... ROW LEVEL SECURITY), role
 * membership changes or a function is replaced.
 *
 * The log keeps row images of tables with row-level security enabled, so
 * that a role under their policies can follow it (ds_changes_filtered, at
 * the end of this file).
 *
 * What each operation checks mirrors the statement it stands for:
 *   get / get_type (snapshot)      SELECT USING on the stored row
 *   update / upsert of a stored row UPDATE USING and SELECT USING on the
 *                                  stored row, UPDATE WITH CHECK and SELECT
 *                                  USING on the new row (an UPDATE ... WHERE)
 *   delete                         DELETE USING and SELECT USING on the row
 *   insert / upsert of a new key   INSERT WITH CHECK on the new row
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "rewrite/rowsecurity.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/ruleutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "durable_state.h"
#include "compat.h"

typedef struct DsRlsKey
{
	Oid			relid;
	Oid			userid;
	int			check;
} DsRlsKey;

/*
 * How one check is evaluated.  Quals without sub-selects are compiled once
 * into an ExprState evaluated on the row's slot, as the executor evaluates
 * a statement's quals; quals with sub-selects need the planner and run as
 * a prepared query.  A state is replaced when invalidated, and freed once
 * no evaluation is using it (a policy's function may read the same table
 * through state.get while the outer check runs).
 */
typedef struct DsRlsState
{
	MemoryContext cxt;
	bool		always;			/* no quals: every row passes */
	ExprState  *qual;			/* quals without sub-selects, or NULL */
	ExprContext *econtext;		/* for qual */
	SPIPlanPtr	plan;			/* quals with sub-selects (saved), or NULL */
	int			busy;			/* evaluations under way */
	bool		orphan;			/* replaced: free when no longer busy */
} DsRlsState;

typedef struct DsRlsPlan
{
	DsRlsKey	key;
	bool		valid;
	DsRlsState *state;
} DsRlsPlan;

static HTAB *rls_plans = NULL;
static uint64 rls_invalidations = 0;	/* counts the callbacks below */

/* Frees st: its saved plan, if any, and its memory context. */
static void
rls_state_free(DsRlsState *st)
{
	if (st->plan)
		SPI_freeplan(st->plan);
	MemoryContextDelete(st->cxt);
}

/*
 * Marks the cached checks of relid (or of every table, if relid is
 * InvalidOid) stale, and counts the invalidation.  Frees nothing: a state
 * may be in use, and is replaced at its next look-up.
 */
static void
rls_invalidate(Oid relid)
{
	HASH_SEQ_STATUS seq;
	DsRlsPlan  *p;

	rls_invalidations++;
	if (rls_plans == NULL)
		return;
	hash_seq_init(&seq, rls_plans);
	while ((p = hash_seq_search(&seq)) != NULL)
	{
		/* replaced at the next look-up: the state may be in use right now */
		if (relid == InvalidOid || p->key.relid == relid)
			p->valid = false;
	}
}

/*
 * Relcache callback: relid's policies or row-level security settings may
 * have changed, so its cached checks are marked stale.
 */
static void
rls_relcache_callback(Datum arg, Oid relid)
{
	rls_invalidate(relid);
}

/*
 * Syscache callback for role membership and functions: marks every cached
 * check stale.
 */
static void
rls_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	rls_invalidate(InvalidOid);
}

/* Registers the invalidation callbacks of the check cache; at load. */
void
ds_rls_init(void)
{
	CacheRegisterRelcacheCallback(rls_relcache_callback, (Datum) 0);
	/* which policies are the user's depends on role membership */
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, rls_syscache_callback, (Datum) 0);
	/* compiled quals may have inlined a SQL function since replaced */
	CacheRegisterSyscacheCallback(PROCOID, rls_syscache_callback, (Datum) 0);
}

/*
 * Returns true if row-level security applies to the current user on rel
 * (enabled, and the user neither owns the table without FORCE nor bypasses
 * it); false otherwise.
 */
bool
ds_rls_active(Relation rel)
{
	return check_enable_rls(RelationGetRelid(rel), InvalidOid, false) == RLS_ENABLED;
}

/*
 * The quals a statement of check's kind would get for rel from the current
 * user's policies (implicitly AND-ed, Vars of varno 1; NIL if none), and in
 * *hasSubLinks whether any has a sub-select.  USING quals for the checks of
 * a stored row, WITH CHECK quals for those of a new row.
 */
static List *
rls_quals(Relation rel, DsRlsCheck check, bool *hasSubLinks)
{
	Query	   *query = makeNode(Query);
	DsRangeTable rt = {0};
	AclMode		perms;
	List	   *securityQuals = NIL;
	List	   *withCheckOptions = NIL;
	List	   *quals = NIL;
	bool		hasRowSecurity = false;
	ListCell   *lc;

	switch (check)
	{
		case DS_RLS_SELECT:
			query->commandType = CMD_SELECT;
			perms = ACL_SELECT;
			break;
		case DS_RLS_UPDATE_OLD:
		case DS_RLS_UPDATE_NEW:
			query->commandType = CMD_UPDATE;
			query->resultRelation = 1;
			perms = ACL_UPDATE | ACL_SELECT;
			break;
		case DS_RLS_DELETE_OLD:
			query->commandType = CMD_DELETE;
			query->resultRelation = 1;
			perms = ACL_DELETE | ACL_SELECT;
			break;
		case DS_RLS_INSERT_NEW:
			query->commandType = CMD_INSERT;
			query->resultRelation = 1;
			perms = ACL_INSERT;
			break;
		default:
			elog(ERROR, "unknown row-level security check %d", (int) check);
	}
	ds_rt_add(&rt, rel, AccessShareLock, perms);
	*hasSubLinks = false;
	ds_get_row_security_policies(query, &rt, 1, &securityQuals, &withCheckOptions,
								 &hasRowSecurity, hasSubLinks);
	if (check == DS_RLS_UPDATE_NEW || check == DS_RLS_INSERT_NEW)
	{
		foreach(lc, withCheckOptions)
			quals = lappend(quals, ((WithCheckOption *) lfirst(lc))->qual);
	}
	else
		quals = securityQuals;
	return quals;
}

/*
 * The quals as the text of one SQL query over the row in $1, palloc'd:
 *   SELECT COALESCE((q1) AND (q2) ..., false) FROM (SELECT ($1::tbl).*) AS tbl
 * Names are deparsed as the current search path requires.
 */
static char *
rls_query(Relation rel, List *quals)
{
	List	   *dpcontext;
	StringInfoData buf;
	ListCell   *lc;

	dpcontext = deparse_context_for(RelationGetRelationName(rel), RelationGetRelid(rel));
	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT COALESCE(");
	foreach(lc, quals)
	{
		if (lc != list_head(quals))
			appendStringInfoString(&buf, " AND ");
		appendStringInfo(&buf, "(%s)",
						 deparse_expression(lfirst(lc), dpcontext, false, false));
	}
	appendStringInfo(&buf, ", false) FROM (SELECT ($1::%s).*) AS %s",
					 format_type_be_qualified(rel->rd_rel->reltype),
					 quote_identifier(RelationGetRelationName(rel)));
	return buf.data;
}

/*
 * The quals as a prepared, kept plan (rls_query), deparsed and parsed again
 * with only pg_catalog in the search path, so that every other name is
 * written schema-qualified and means the same whatever the caller's
 * search_path (our functions pin it to pg_catalog; a policy's tables are
 * elsewhere).  The plan cache keeps this search path for re-planning.
 * (Its own function: PG_TRY blocks do not nest in one function from 16 on,
 * whose -Wshadow=compatible-local sees the second one's locals.)
 */
static SPIPlanPtr
rls_prepare(Relation rel, List *quals)
{
	int			pathlevel = ds_push_catalog_search_path();
	SPIPlanPtr	plan = NULL;

	PG_TRY();
	{
		Oid			argtype = rel->rd_rel->reltype;
		char	   *sql = rls_query(rel, quals);

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		plan = SPI_prepare(sql, 1, &argtype);
		if (plan == NULL)
			elog(ERROR, "could not prepare the row-level security check of \"%s\": %s",
				 RelationGetRelationName(rel), SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		SPI_finish();
	}
	PG_FINALLY();
	{
		ds_pop_catalog_search_path(pathlevel);
	}
	PG_END_TRY();
	return plan;
}

/*
 * A new evaluation state for check on rel, in its own context under
 * CacheMemoryContext: no quals, compiled quals, or a query prepared and
 * kept with SPI.  On error nothing is left allocated.
 */
static DsRlsState *
rls_state_build(Relation rel, DsRlsCheck check)
{
	MemoryContext cxt = AllocSetContextCreate(CacheMemoryContext,
											  "durable_state row-level security check",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	DsRlsState *st = palloc0(sizeof(DsRlsState));
	List	   *quals;
	bool		hasSubLinks;

	st->cxt = cxt;
	PG_TRY();
	{
		quals = rls_quals(rel, check, &hasSubLinks);
		if (quals == NIL)
			st->always = true;
		else if (!hasSubLinks)
		{
			/* as the planner leaves a qual: constants folded, operators looked up */
			quals = (List *) expression_planner((Expr *) quals);
			st->qual = ExecInitQual(quals, NULL);
			st->econtext = CreateStandaloneExprContext();
		}
		else
			st->plan = rls_prepare(rel, quals);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	return st;
}

/*
 * The evaluation state of check on rel for the current user, from the cache
 * or built (rls_state_build) if missing or stale.  A replaced state is freed
 * at once, or when its last evaluation ends.  Raises whatever building the
 * check raises, leaving the cache entry stale.
 */
static DsRlsState *
rls_state(Relation rel, DsRlsCheck check)
{
	DsRlsKey	key;
	DsRlsPlan  *p;
	bool		found;
	DsRlsState *st;
	uint64		seen;

	if (rls_plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(DsRlsKey);
		ctl.entrysize = sizeof(DsRlsPlan);
		ctl.hcxt = CacheMemoryContext;
		rls_plans = hash_create("durable_state row-level security checks", 32, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	key.relid = RelationGetRelid(rel);
	key.userid = GetUserId();
	key.check = (int) check;
	p = hash_search(rls_plans, &key, HASH_ENTER, &found);
	if (!found)
	{
		p->valid = false;
		p->state = NULL;
	}
	if (p->valid)
		return p->state;
	/*
	 * Build first: an error leaves the entry invalid, its old state in
	 * place.  An invalidation that arrives while building (the parser opens
	 * relations) leaves the new state invalid too, to be built again.
	 */
	seen = rls_invalidations;
	st = rls_state_build(rel, check);
	if (p->state)
	{
		if (p->state->busy > 0)
			p->state->orphan = true;
		else
			rls_state_free(p->state);
	}
	p->state = st;
	p->valid = (seen == rls_invalidations);
	return st;
}

/*
 * Returns true if the row in slot (of rel's row type) passes check for the
 * current user, false if it fails (a null result fails, as for a
 * statement's quals).  Call only when ds_rls_active(rel).  Sub-selects of
 * the policies see the changes of the current command so far.  Errors the
 * policies' expressions raise propagate.
 */
bool
ds_rls_passes(Relation rel, DsRlsCheck check, TupleTableSlot *slot)
{
	DsRlsState *st = rls_state(rel, check);
	bool		passes;

	if (st->always)
		return true;
	st->busy++;
	PG_TRY();
	{
		if (st->qual)
		{
			ResetExprContext(st->econtext);
			st->econtext->ecxt_scantuple = slot;
			/* a null result fails, as for a statement's quals */
			passes = ExecQual(st->qual, st->econtext);
			st->econtext->ecxt_scantuple = NULL;
		}
		else
		{
			Datum		row;
			int			ret;
			bool		isnull;

			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			row = ExecFetchSlotHeapTupleDatum(slot);
			PushCopiedSnapshot(GetActiveSnapshot());
			UpdateActiveSnapshotCommandId();
			ret = SPI_execute_plan(st->plan, &row, NULL, true, 1);
			PopActiveSnapshot();
			if (ret != SPI_OK_SELECT || SPI_processed != 1)
				elog(ERROR, "row-level security check of \"%s\" failed: %s",
					 RelationGetRelationName(rel), SPI_result_code_string(ret));
			passes = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
			passes = passes && !isnull;
			SPI_finish();
		}
	}
	PG_FINALLY();
	{
		st->busy--;
		if (st->orphan && st->busy == 0)
			rls_state_free(st);
	}
	PG_END_TRY();
	return passes;
}

/* ------------------------------------------------------------------------
 * Row images in the log, and the change feed of a role under row-level
 * security
 *
 * For a table with row-level security enabled, each logged change carries
 * the row before and after it, {"old": row, "new": row} with row
 * {column: text or null}, so that a role whose policies filter the table
 * can follow the log: it sees an event when its SELECT policies let it see
 * the row after it ("as_is"; "enter" if it could not see the row before:
 * the row came into its view), a delete when it could see the row before
 * but not after ("leave"), and nothing else.  Policies are the reader's, as
 * they are now, as for get.
 * ------------------------------------------------------------------------ */

/*
 * Pushes the row in slot onto state as an array of column texts by attnum,
 * null for a null or dropped column.
 */
static void
push_row(JsonbParseState **state, DsRelInfo *ri, TupleTableSlot *slot)
{
	slot_getallattrs(slot);
	pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < ri->natts; i++)
	{
		JsonbValue	v;

		if (ri->cols[i].name == NULL || slot->tts_isnull[i])
			v.type = jbvNull;	/* a dropped column, or null */
		else
		{
			char	   *s = OutputFunctionCall(&ri->cols[i].outfunc, slot->tts_values[i]);

			v.type = jbvString;
			v.val.string.val = s;
			v.val.string.len = strlen(s);
		}
		pushJsonbValue(state, WJB_ELEM, &v);
	}
	pushJsonbValue(state, WJB_END_ARRAY, NULL);
}

/*
 * The images of one change, [old, new]: each the row as an array of column
 * texts by attnum (stable across ALTER TABLE: a dropped column stays a
 * hole, an added one comes last, a changed type is read back through its
 * text), or null where there is no row (before an insert, after a delete).
 * Returns a palloc'd jsonb array.
 */
Jsonb *
ds_rls_row_images(DsRelInfo *ri, TupleTableSlot *oldslot, TupleTableSlot *newslot)
{
	JsonbParseState *state = NULL;
	JsonbValue	null;

	null.type = jbvNull;
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	if (oldslot)
		push_row(&state, ri, oldslot);
	else
		pushJsonbValue(&state, WJB_ELEM, &null);
	if (newslot)
		push_row(&state, ri, newslot);
	else
		pushJsonbValue(&state, WJB_ELEM, &null);
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_ARRAY, NULL));
}

/*
 * Stores the row of an image (an array of column texts) in virtual slot of
 * the table, through the columns' input functions; a column the image
 * lacks, a non-string, or a dropped column is null.  The input functions
 * raise their errors if a text no longer fits its column's type.
 */
static void
image_to_slot(DsRelInfo *ri, JsonbContainer *row, TupleTableSlot *slot)
{
	int			n = JsonContainerSize(row);

	ExecClearTuple(slot);
	for (int i = 0; i < ri->natts; i++)
	{
		JsonbValue *v = NULL;

		slot->tts_isnull[i] = true;
		slot->tts_values[i] = (Datum) 0;
		if (ri->cols[i].name != NULL && i < n)
			v = getIthJsonbValueFromContainer(row, i);
		if (v != NULL && v->type == jbvString)
		{
			slot->tts_values[i] = InputFunctionCall(&ri->cols[i].infunc,
													pnstrdup(v->val.string.val, v->val.string.len),
													ri->cols[i].ioparam, ri->cols[i].typmod);
			slot->tts_isnull[i] = false;
		}
	}
	ExecStoreVirtualTuple(slot);
}

/*
 * Returns true if the reader's SELECT policies show row which (0 old, 1
 * new) of image img, using slot; false if they do not or there is no such
 * row.
 */
static bool
image_visible(DsRelInfo *ri, JsonbContainer *img, int which, TupleTableSlot *slot)
{
	JsonbValue *v;

	if (!JsonContainerIsArray(img) || JsonContainerSize(img) != 2)
		return false;
	v = getIthJsonbValueFromContainer(img, which);
	if (v == NULL || v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		return false;
	image_to_slot(ri, v->val.binary.data, slot);
	return ds_rls_passes(ri->rel, DS_RLS_SELECT, slot);
}

/*
 * state._changes_filtered(stream text, since bigint, max_events integer):
 * (seq, event, verdict) of the events after since that the caller may see,
 * at most max_events; verdict is "as_is", "enter" or "leave" (above).  Reads
 * state.log directly: the log's policy hides these streams from the caller,
 * and this function is the caller's filter instead.  Events of a dropped
 * collection, and events of a table under row-level security logged
 * without images, are left out.  Raises ERRCODE_INSUFFICIENT_PRIVILEGE
 * without SELECT on every collection table of the stream, and the errors
 * of ds_catalog_stream.
 */
PG_FUNCTION_INFO_V1(ds_changes_filtered);

Datum
ds_changes_filtered(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		since = PG_GETARG_INT64(1);
	int32		max = PG_GETARG_INT32(2);
	DsStream   *s;
	DsRelInfo  *ris;
	bool	   *rls;
	TupleTableSlot **slots;
	Relation	log;
	AttrNumber	imgatt;
	DsLogReader reader;
	int64		emitted = 0;
	MemoryContext evcxt,
				old;

	InitMaterializedSRF(fcinfo, 0);
	s = ds_catalog_stream(name, false);
	ris = palloc0(sizeof(DsRelInfo) * Max(s->ncolls, 1));
	rls = palloc0(sizeof(bool) * Max(s->ncolls, 1));
	slots = palloc0(sizeof(TupleTableSlot *) * Max(s->ncolls, 1));
	for (int c = 0; c < s->ncolls; c++)
	{
		ds_relinfo_open(&ris[c], &s->colls[c], AccessShareLock);
		ds_check_table_access(&s->colls[c], ris[c].rel, ACL_SELECT);
		rls[c] = ds_rls_active(ris[c].rel);
		slots[c] = MakeSingleTupleTableSlot(RelationGetDescr(ris[c].rel), &TTSOpsVirtual);
	}

	log = table_open(ds_catalog_oids()->log, AccessShareLock);
	imgatt = get_attnum(RelationGetRelid(log), "images");
	/* in offset order, never past a batch the snapshot cannot see yet */
	ds_log_reader_begin(&reader, s->id, since, GetActiveSnapshot());
	evcxt = AllocSetContextCreate(CurrentMemoryContext, "durable_state filtered changes",
								  ALLOCSET_DEFAULT_SIZES);
	while (emitted < max && ds_log_reader_next(&reader))
	{
		TupleDesc	desc = RelationGetDescr(log);
		bool		isnull;
		HeapTuple	tup = ExecFetchSlotHeapTuple(reader.slot, false, NULL);
		int64		first = reader.first;
		Datum	   *evs;
		int			nevs;
		Datum	   *imgs = NULL;
		bool	   *imgnulls = NULL;
		int			nimgs = 0;
		Datum		d;

		old = MemoryContextSwitchTo(evcxt);
		deconstruct_array(DatumGetArrayTypeP(heap_getattr(tup, 4, desc, &isnull)),
						  JSONBOID, -1, false, TYPALIGN_INT, &evs, NULL, &nevs);
		if (imgatt != InvalidAttrNumber)
		{
			d = heap_getattr(tup, imgatt, desc, &isnull);
			if (!isnull)
				deconstruct_array(DatumGetArrayTypeP(d), JSONBOID, -1, false, TYPALIGN_INT,
								  &imgs, &imgnulls, &nimgs);
		}
		for (int i = 0; i < nevs && emitted < max; i++)
		{
			int64		seq = first + i;
			Jsonb	   *ev = DatumGetJsonbP(evs[i]);
			JsonbValue *type;
			const char *verdict = NULL;

			if (seq <= since)
				continue;
			type = getKeyJsonValueFromContainer(&ev->root, "type", 4, NULL);
			if (type == NULL || type->type != jbvString)
				verdict = "as_is";	/* a control event: no row in it */
			else
			{
				DsCollection *coll = ds_stream_collection(s, type->val.string.val,
														  type->val.string.len, true);
				int			c = coll ? coll - s->colls : -1;

				if (c < 0)
					verdict = NULL; /* its collection is gone: nothing to judge by */
				else if (!rls[c])
					verdict = "as_is";
				else if (i < nimgs && !imgnulls[i])
				{
					Jsonb	   *img = DatumGetJsonbP(imgs[i]);
					bool		was = image_visible(&ris[c], &img->root, 0, slots[c]);
					bool		is = image_visible(&ris[c], &img->root, 1, slots[c]);

					if (is)
						verdict = was ? "as_is" : "enter";
					else if (was)
						verdict = "leave";
				}
				/* logged without images (before RLS was enabled): hidden */
			}
			if (verdict != NULL)
			{
				Datum		values[3];
				bool		nulls[3] = {false, false, false};

				values[0] = Int64GetDatum(seq);
				values[1] = JsonbPGetDatum(ev);
				values[2] = CStringGetTextDatum(verdict);
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
				emitted++;
			}
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(evcxt);
	}
	ds_log_reader_end(&reader);
	table_close(log, AccessShareLock);
	for (int c = 0; c < s->ncolls; c++)
	{
		ExecDropSingleTupleTableSlot(slots[c]);
		ds_relinfo_close(&ris[c], AccessShareLock);
	}
	return (Datum) 0;
}
