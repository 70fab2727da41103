/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  The internal PostgreSQL APIs that differ between the majors
 *	  durable_state builds against (15 to 18), each behind one small helper.
 *
 * Every PG_VERSION_NUM condition of the extension is in this file: the
 * engine calls the helpers and reads the same on every major.  When a new
 * major moves an API, its helper changes here and nowhere else.
 *
 *	 range tables	PG16 moved a relation's privilege fields (requiredPerms,
 *					checkAsUser, insertedCols, updatedCols) from its
 *					RangeTblEntry to an RTEPermissionInfo in a list beside the
 *					range table; PG18's ExecInitRangeTable also takes the set
 *					of unpruned entries.  DsRangeTable keeps both lists.
 *	 RLS			get_row_security_policies finds the privileges in the
 *					query's permission infos from PG16 on.
 *	 search path	PG17 removed PushOverrideSearchPath: a GUC nest level with
 *					search_path = 'pg_catalog, pg_temp' does the same.
 *	 EPQ			EvalPlanQualInit takes the result relations from PG16 on.
 *	 result rels	CheckValidResultRel takes MERGE actions from PG17 on and
 *					an ON CONFLICT action from PG18 on; ExecInsertIndexTuples
 *					asks from PG16 on whether only summarizing indexes change.
 *	 primary keys	RelationGetPrimaryKeyIndex asks from PG18 on whether a
 *					deferrable one will do.
 *	 index scans	index_beginscan takes scan instrumentation from PG18 on.
 *	 proc			MyProc's local transaction id is in vxid from PG17 on, and
 *					a backend's PGPROC number is MyProcNumber.
 *	 noreturn		pg_noreturn (a declaration specifier) replaces
 *					pg_attribute_noreturn() in PG18.
 *	 GUC extra		a check hook's "extra" comes from guc_malloc from PG16 on.
 *	 backend status	pgstat_fetch_stat_local_beentry became
 *					pgstat_get_local_beentry_by_index in PG17.
 *	 walsenders		WalSnd says whether it is logical from PG16 on.
 *	 JSON lexer		makeJsonLexContextCstringLen takes the context to fill
 *					from PG16 on.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DS_COMPAT_H
#define DS_COMPAT_H

#include "postgres.h"

#include "access/genam.h"
#include "catalog/namespace.h"
#include "common/jsonapi.h"
#include "executor/executor.h"
#include "nodes/bitmapset.h"
#include "nodes/parsenodes.h"
#include "parser/parse_relation.h"
#include "parser/parsetree.h"
#include "rewrite/rowsecurity.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#if PG_VERSION_NUM < 150000
#error "durable_state needs PostgreSQL 15 or later"
#endif

/* static pg_noreturn void f(void): the PG18 spelling on every major */
#ifndef pg_noreturn
#define pg_noreturn pg_attribute_noreturn()
#endif

/* A JSON lexer over len bytes of text in the database encoding, palloc'd. */
#if PG_VERSION_NUM >= 160000
#define ds_json_lexer(json, len) \
	makeJsonLexContextCstringLen(NULL, (json), (len), GetDatabaseEncoding(), false)
#else
#define ds_json_lexer(json, len) \
	makeJsonLexContextCstringLen((json), (len), GetDatabaseEncoding(), false)
#endif

/* The local id of this backend's top-level transaction. */
#if PG_VERSION_NUM >= 170000
#define ds_my_lxid() (MyProc->vxid.lxid)
#else
#define ds_my_lxid() (MyProc->lxid)
#endif

/* This backend's index among the PGPROCs (below MaxBackends for backends). */
#if PG_VERSION_NUM >= 170000
#define ds_my_proc_number() ((int) MyProcNumber)
#else
#define ds_my_proc_number() (MyProc ? MyProc->pgprocno : -1)
#endif

/* A range table being built: its entries and their permission infos. */
typedef struct DsRangeTable
{
	List	   *rtable;
	List	   *perminfos;		/* PG16+; NIL before */
} DsRangeTable;

/*
 * Adds an entry for rel, locked with lockmode, whose statement needs perms
 * of the current user; returns its range table index.
 */
static inline Index
ds_rt_add(DsRangeTable *rt, Relation rel, LOCKMODE lockmode, AclMode perms)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);

	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = lockmode;
#if PG_VERSION_NUM >= 160000
	addRTEPermissionInfo(&rt->perminfos, rte)->requiredPerms = perms;
#else
	rte->requiredPerms = perms;
#endif
	rt->rtable = lappend(rt->rtable, rte);
	return list_length(rt->rtable);
}

/*
 * Marks every column of entry rti as inserted and updated by its statement
 * (UPDATE OF triggers and error details look there).
 */
static inline void
ds_rt_all_columns_written(DsRangeTable *rt, Index rti, TupleDesc desc)
{
	RangeTblEntry *rte = rt_fetch(rti, rt->rtable);
	Bitmapset **inserted;
	Bitmapset **updated;
#if PG_VERSION_NUM >= 160000
	RTEPermissionInfo *perminfo = getRTEPermissionInfo(rt->perminfos, rte);

	inserted = &perminfo->insertedCols;
	updated = &perminfo->updatedCols;
#else
	inserted = &rte->insertedCols;
	updated = &rte->updatedCols;
#endif
	for (int i = 0; i < desc->natts; i++)
	{
		if (TupleDescAttr(desc, i)->attisdropped)
			continue;
		*inserted = bms_add_member(*inserted, i + 1 - FirstLowInvalidHeapAttributeNumber);
		*updated = bms_add_member(*updated, i + 1 - FirstLowInvalidHeapAttributeNumber);
	}
}

/* Gives estate the range table rt (every entry unpruned). */
static inline void
ds_exec_init_range_table(EState *estate, DsRangeTable *rt)
{
#if PG_VERSION_NUM >= 180000
	ExecInitRangeTable(estate, rt->rtable, rt->perminfos,
					   bms_add_range(NULL, 1, list_length(rt->rtable)));
#elif PG_VERSION_NUM >= 160000
	ExecInitRangeTable(estate, rt->rtable, rt->perminfos);
#else
	ExecInitRangeTable(estate, rt->rtable);
#endif
}

/*
 * get_row_security_policies for query, whose range table is rt, on its
 * entry rti.
 */
static inline void
ds_get_row_security_policies(Query *query, DsRangeTable *rt, Index rti,
							 List **securityQuals, List **withCheckOptions,
							 bool *hasRowSecurity, bool *hasSubLinks)
{
	query->rtable = rt->rtable;
#if PG_VERSION_NUM >= 160000
	query->rteperminfos = rt->perminfos;
#endif
	get_row_security_policies(query, rt_fetch(rti, rt->rtable), rti, securityQuals,
							  withCheckOptions, hasRowSecurity, hasSubLinks);
}

/* An EvalPlanQual state for ExecSimpleRelationUpdate/Delete (no plan). */
static inline void
ds_epq_init(EPQState *epq, EState *estate)
{
#if PG_VERSION_NUM >= 160000
	EvalPlanQualInit(epq, estate, NULL, NIL, -1, NIL);
#else
	EvalPlanQualInit(epq, estate, NULL, NIL, -1);
#endif
}

/* CheckValidResultRel for a plain INSERT, UPDATE or DELETE. */
static inline void
ds_check_valid_result_rel(ResultRelInfo *rri, CmdType operation)
{
#if PG_VERSION_NUM >= 180000
	CheckValidResultRel(rri, operation, ONCONFLICT_NONE, NIL);
#elif PG_VERSION_NUM >= 170000
	CheckValidResultRel(rri, operation, NIL);
#else
	CheckValidResultRel(rri, operation);
#endif
}

/*
 * The index entries of a row that table_multi_insert stored from slot,
 * into every index of rri, as COPY makes them (no conflict checks).
 */
static inline void
ds_insert_index_tuples(ResultRelInfo *rri, TupleTableSlot *slot, EState *estate)
{
#if PG_VERSION_NUM >= 160000
	list_free(ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL, false));
#else
	list_free(ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL));
#endif
}

/* The OID of rel's primary key index if it is not deferrable, else InvalidOid. */
static inline Oid
ds_primary_key_index(Relation rel)
{
#if PG_VERSION_NUM >= 180000
	return RelationGetPrimaryKeyIndex(rel, false);
#else
	return RelationGetPrimaryKeyIndex(rel);
#endif
}

/*
 * Until ds_pop_catalog_search_path(returned value), names are looked up in
 * pg_catalog only (and temporary relations after it from PG17 on), whatever
 * the caller's search_path; a plan prepared meanwhile keeps that path.
 */
static inline int
ds_push_catalog_search_path(void)
{
#if PG_VERSION_NUM >= 170000
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
#else
	OverrideSearchPath *path = GetOverrideSearchPath(CurrentMemoryContext);

	path->schemas = NIL;
	path->addCatalog = true;
	path->addTemp = false;
	PushOverrideSearchPath(path);
	return 0;
#endif
}

static inline void
ds_pop_catalog_search_path(int nestlevel)
{
#if PG_VERSION_NUM >= 170000
	AtEOXact_GUC(false, nestlevel);
#else
	(void) nestlevel;
	PopOverrideSearchPath();
#endif
}

/* index_beginscan without instrumentation. */
static inline IndexScanDesc
ds_index_beginscan(Relation heap, Relation index, Snapshot snapshot,
				   int nkeys, int norderbys)
{
#if PG_VERSION_NUM >= 180000
	return index_beginscan(heap, index, snapshot, NULL, nkeys, norderbys);
#else
	return index_beginscan(heap, index, snapshot, nkeys, norderbys);
#endif
}

/*
 * Memory a string GUC's "extra" may hold (guc_malloc from 16 on; plain
 * malloc before, which the GUC machinery frees with free()).  NULL when
 * out of memory.
 */
static inline void *
ds_guc_malloc(Size size)
{
#if PG_VERSION_NUM >= 160000
	return guc_malloc(LOG, size);
#else
	return malloc(size);
#endif
}

/* The i-th (1-based) entry of this backend's snapshot of backend status. */
#if PG_VERSION_NUM >= 170000
#define ds_local_beentry(i) pgstat_get_local_beentry_by_index(i)
#else
#define ds_local_beentry(i) pgstat_fetch_stat_local_beentry(i)
#endif

/*
 * Is walsender slot w (WalSnd *, its mutex held) a logical one?  WalSnd
 * says so from 16 on; before, the caller must find out otherwise (a
 * logical walsender is connected to a database).
 */
#if PG_VERSION_NUM >= 160000
#define DS_WALSND_IS_LOGICAL(w) ((w)->kind == REPLICATION_KIND_LOGICAL)
#else
#define DS_WALSND_IS_LOGICAL(w) ((void) (w), false)
#endif

#endif							/* DS_COMPAT_H */
