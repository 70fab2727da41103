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
 * What each operation checks mirrors the statement it stands for:
 *   get / get_type (snapshot)      SELECT USING on the stored row
 *   update / upsert of a stored row UPDATE USING and SELECT USING on the
 *                                  stored row, UPDATE WITH CHECK and SELECT
 *                                  USING on the new row (an UPDATE ... WHERE)
 *   delete                         DELETE USING and SELECT USING on the row
 *   insert / upsert of a new key   INSERT WITH CHECK on the new row
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "rewrite/rowsecurity.h"
#include "utils/acl.h"
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

static void
rls_state_free(DsRlsState *st)
{
	if (st->plan)
		SPI_freeplan(st->plan);
	MemoryContextDelete(st->cxt);
}

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

static void
rls_relcache_callback(Datum arg, Oid relid)
{
	rls_invalidate(relid);
}

static void
rls_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	rls_invalidate(InvalidOid);
}

void
ds_rls_init(void)
{
	CacheRegisterRelcacheCallback(rls_relcache_callback, (Datum) 0);
	/* which policies are the user's depends on role membership */
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, rls_syscache_callback, (Datum) 0);
	/* compiled quals may have inlined a SQL function since replaced */
	CacheRegisterSyscacheCallback(PROCOID, rls_syscache_callback, (Datum) 0);
}

/* Whether row-level security applies to the current user on rel. */
bool
ds_rls_active(Relation rel)
{
	return check_enable_rls(RelationGetRelid(rel), InvalidOid, false) == RLS_ENABLED;
}

/*
 * The quals a statement of this kind would get for rel (implicitly AND-ed,
 * Vars of varno 1), and whether any has a sub-select.
 */
static List *
rls_quals(Relation rel, DsRlsCheck check, bool *hasSubLinks)
{
	Query	   *query = makeNode(Query);
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	List	   *securityQuals = NIL;
	List	   *withCheckOptions = NIL;
	List	   *quals = NIL;
	bool		hasRowSecurity = false;
	ListCell   *lc;

	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = AccessShareLock;
	rte->checkAsUser = InvalidOid;
	query->rtable = list_make1(rte);
	switch (check)
	{
		case DS_RLS_SELECT:
			query->commandType = CMD_SELECT;
			rte->requiredPerms = ACL_SELECT;
			break;
		case DS_RLS_UPDATE_OLD:
		case DS_RLS_UPDATE_NEW:
			query->commandType = CMD_UPDATE;
			query->resultRelation = 1;
			rte->requiredPerms = ACL_UPDATE | ACL_SELECT;
			break;
		case DS_RLS_DELETE_OLD:
			query->commandType = CMD_DELETE;
			query->resultRelation = 1;
			rte->requiredPerms = ACL_DELETE | ACL_SELECT;
			break;
		case DS_RLS_INSERT_NEW:
			query->commandType = CMD_INSERT;
			query->resultRelation = 1;
			rte->requiredPerms = ACL_INSERT;
			break;
		default:
			elog(ERROR, "unknown row-level security check %d", (int) check);
	}
	*hasSubLinks = false;
	get_row_security_policies(query, rte, 1, &securityQuals, &withCheckOptions,
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
 * The quals as one SQL query over the row in $1:
 *   SELECT COALESCE((q1) AND (q2) ..., false) FROM (SELECT ($1::tbl).*) AS tbl
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

/* A new evaluation state for a check: compiled quals, or a prepared query. */
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
		{
			/*
			 * Deparsed and parsed again with only pg_catalog in the search
			 * path, so that every other name is written schema-qualified and
			 * means the same whatever the caller's search_path (our functions
			 * pin it to pg_catalog; a policy's tables are elsewhere).  The
			 * plan cache keeps this search path for re-planning.
			 */
			OverrideSearchPath *path = GetOverrideSearchPath(CurrentMemoryContext);

			path->schemas = NIL;
			path->addCatalog = true;
			path->addTemp = false;
			PushOverrideSearchPath(path);
			PG_TRY();
			{
				Oid			argtype = rel->rd_rel->reltype;
				char	   *sql = rls_query(rel, quals);

				if (SPI_connect() != SPI_OK_CONNECT)
					elog(ERROR, "SPI_connect failed");
				st->plan = SPI_prepare(sql, 1, &argtype);
				if (st->plan == NULL)
					elog(ERROR, "could not prepare the row-level security check of \"%s\": %s",
						 RelationGetRelationName(rel), SPI_result_code_string(SPI_result));
				if (SPI_keepplan(st->plan) != 0)
					elog(ERROR, "SPI_keepplan failed");
				SPI_finish();
			}
			PG_FINALLY();
			{
				PopOverrideSearchPath();
			}
			PG_END_TRY();
		}
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
 * Whether the row in slot (of rel's row type) passes the check for the
 * current user.  Call only when ds_rls_active(rel).  Sub-selects of the
 * policies see the changes of the current command so far.
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
