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
 * row at a time:
 *
 *   SELECT COALESCE(q1 AND q2 ..., false) FROM (SELECT ($1::tbl).*) AS tbl
 *
 * where the quals are deparsed as pg_dump deparses them and $1 is the row.
 * Policies with sub-selects work as in a statement: the query is planned by
 * PostgreSQL.  The prepared plans are kept per table, user and check, and
 * dropped when the table's relcache entry is invalidated (CREATE / ALTER /
 * DROP POLICY, ALTER TABLE ... ROW LEVEL SECURITY) or role membership
 * changes.
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
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
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

typedef struct DsRlsPlan
{
	DsRlsKey	key;
	bool		valid;
	bool		always;			/* no quals: every row passes */
	SPIPlanPtr	plan;			/* saved; NULL if always */
} DsRlsPlan;

static HTAB *rls_plans = NULL;

static void
rls_invalidate(Oid relid)
{
	HASH_SEQ_STATUS seq;
	DsRlsPlan  *p;

	if (rls_plans == NULL)
		return;
	hash_seq_init(&seq, rls_plans);
	while ((p = hash_seq_search(&seq)) != NULL)
	{
		/* freed at the next look-up: the plan may be running right now */
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
}

/* Whether row-level security applies to the current user on rel. */
bool
ds_rls_active(Relation rel)
{
	return check_enable_rls(RelationGetRelid(rel), InvalidOid, false) == RLS_ENABLED;
}

/* The quals a statement of this kind would get for rel, as one SQL boolean. */
static char *
rls_condition(Relation rel, DsRlsCheck check)
{
	Query	   *query = makeNode(Query);
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	List	   *securityQuals = NIL;
	List	   *withCheckOptions = NIL;
	List	   *quals = NIL;
	bool		hasRowSecurity = false;
	bool		hasSubLinks = false;
	List	   *dpcontext;
	StringInfoData buf;
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
	get_row_security_policies(query, rte, 1, &securityQuals, &withCheckOptions,
							  &hasRowSecurity, &hasSubLinks);
	if (check == DS_RLS_UPDATE_NEW || check == DS_RLS_INSERT_NEW)
	{
		foreach(lc, withCheckOptions)
			quals = lappend(quals, ((WithCheckOption *) lfirst(lc))->qual);
	}
	else
		quals = securityQuals;
	if (quals == NIL)
		return NULL;

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

static DsRlsPlan *
rls_plan(Relation rel, DsRlsCheck check)
{
	DsRlsKey	key;
	DsRlsPlan  *p;
	bool		found;

	if (rls_plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(DsRlsKey);
		ctl.entrysize = sizeof(DsRlsPlan);
		ctl.hcxt = CacheMemoryContext;
		rls_plans = hash_create("durable_state row-level security plans", 32, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	key.relid = RelationGetRelid(rel);
	key.userid = GetUserId();
	key.check = (int) check;
	p = hash_search(rls_plans, &key, HASH_ENTER, &found);
	if (found && p->valid)
		return p;
	if (found && p->plan)
		SPI_freeplan(p->plan);
	p->valid = false;
	p->always = false;
	p->plan = NULL;

	/*
	 * Deparsed and parsed again with only pg_catalog in the search path, so
	 * that every other name is written schema-qualified and means the same
	 * whatever the caller's search_path (our functions pin it to
	 * pg_catalog; a policy's tables are elsewhere).  The plan cache keeps
	 * this search path for re-planning.
	 */
	{
		OverrideSearchPath *path = GetOverrideSearchPath(CurrentMemoryContext);

		path->schemas = NIL;
		path->addCatalog = true;
		path->addTemp = false;
		PushOverrideSearchPath(path);
	}
	PG_TRY();
	{
		char	   *sql = rls_condition(rel, check);

		if (sql == NULL)
			p->always = true;
		else
		{
			Oid			argtype = rel->rd_rel->reltype;
			SPIPlanPtr	plan = SPI_prepare(sql, 1, &argtype);

			if (plan == NULL)
				elog(ERROR, "could not prepare the row-level security check of \"%s\": %s",
					 RelationGetRelationName(rel), SPI_result_code_string(SPI_result));
			if (SPI_keepplan(plan) != 0)
				elog(ERROR, "SPI_keepplan failed");
			p->plan = plan;
		}
	}
	PG_FINALLY();
	{
		PopOverrideSearchPath();
	}
	PG_END_TRY();
	p->valid = true;
	return p;
}

/*
 * Whether the row in slot (of rel's row type) passes the check for the
 * current user.  Call only when ds_rls_active(rel).  Sub-selects of the
 * policies see the changes of the current command so far.
 */
bool
ds_rls_passes(Relation rel, DsRlsCheck check, TupleTableSlot *slot)
{
	DsRlsPlan  *p;
	Datum		row;
	bool		passes;
	int			ret;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	p = rls_plan(rel, check);
	if (p->always)
	{
		SPI_finish();
		return true;
	}
	row = ExecFetchSlotHeapTupleDatum(slot);
	PushCopiedSnapshot(GetActiveSnapshot());
	UpdateActiveSnapshotCommandId();
	ret = SPI_execute_plan(p->plan, &row, NULL, true, 1);
	PopActiveSnapshot();
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "row-level security check of \"%s\" failed: %s",
			 RelationGetRelationName(rel), SPI_result_code_string(ret));
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		passes = !isnull && DatumGetBool(d);
	}
	SPI_finish();
	return passes;
}
