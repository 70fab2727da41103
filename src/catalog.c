/*
 * catalog.c
 *		The collection catalog (state._streams, state._collections), its
 *		per-backend cache, and the per-relation facts the engine needs.
 *
 * The cache holds every stream and collection.  It is read with plain
 * table scans and dropped by a relcache callback when state._collections is
 * invalidated (state._catalog_changed() sends that invalidation from
 * create_collection, alter_collection and drop_collection, so it reaches
 * every backend at commit).  Callers get a palloc'd copy, so an
 * invalidation arriving while they work can never leave them holding freed
 * memory.  Facts about each collection table (columns, conversion
 * functions, primary key, defaults) are cached per relation the same way.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "utils/snapmgr.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/timestamp.h"

#include "durable_state.h"
#include "compat.h"

static MemoryContext cache_cxt = NULL;
static bool cache_valid = false;
static int	cache_nstreams = 0;
static DsStream *cache_streams = NULL;
static DsCatalogOids oids;

static void relmeta_invalidate(Oid relid);

/*
 * Relcache invalidation callback.  Marks the catalog cache stale when relid
 * is one of the extension's tables (or InvalidOid, a reset of the whole
 * relcache), and marks relid's cached relation facts stale.  Frees nothing:
 * the next reader rebuilds.
 */
static void
relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == oids.collections || relid == oids.log ||
		relid == oids.streams || relid == oids.txids)
		cache_valid = false;
	relmeta_invalidate(relid);
}

/* Registers the relcache callback that keeps the caches valid; at load. */
void
ds_catalog_init(void)
{
	CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
}

/*
 * The OID of relation relname in schema state.  Raises
 * ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE if there is no such relation,
 * that is, if the extension is not installed in this database.
 */
static Oid
state_relid(const char *relname)
{
	Oid			nsp = get_namespace_oid("state", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("durable_state is not installed in this database"),
				 errhint("Run CREATE EXTENSION durable_state.")));
	return relid;
}

/*
 * The value of NOT NULL column attname of a catalog row of state.relname.
 * A null is corruption: elog(ERROR).
 */
static Datum
attr(TupleTableSlot *slot, const char *relname, const char *attname)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, get_attnum(slot->tts_tableOid, attname), &isnull);

	if (isnull)
		elog(ERROR, "null %s in state.%s", attname, relname);
	return d;
}

/* A palloc'd copy of src in the current memory context. */
static Interval *
copy_interval(const Interval *src)
{
	Interval   *dst = palloc(sizeof(Interval));

	memcpy(dst, src, sizeof(Interval));
	return dst;
}

/*
 * A nullable column of a catalog row, or one that an older version of the
 * extension's tables does not have (the library is newer than the catalog
 * until ALTER EXTENSION ... UPDATE): NULL then.
 */
static Datum
optional_attr(TupleTableSlot *slot, const char *attname, bool *isnull)
{
	AttrNumber	att = get_attnum(slot->tts_tableOid, attname);

	if (att == InvalidAttrNumber)
	{
		*isnull = true;
		return (Datum) 0;
	}
	return slot_getattr(slot, att, isnull);
}

/*
 * The value of NOT NULL text column attname, as a palloc'd C string in the
 * current memory context.
 */
static char *
text_attr(TupleTableSlot *slot, const char *relname, const char *attname)
{
	return TextDatumGetCString(attr(slot, relname, attname));
}

/*
 * Fills cache_streams and cache_nstreams (which must be empty) from
 * state._streams and state._collections, read with the latest snapshot,
 * allocating in the current memory context.  Plain table scans, not SQL:
 * the caller needs no privileges on the extension's own tables for this,
 * and nothing is planned.  Collections of an unknown stream are skipped.
 */
static void
cache_read(void)
{
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	Relation	rel;
	TableScanDesc scan;
	TupleTableSlot *slot;
	int			cap = 8;

	cache_streams = palloc0(sizeof(DsStream) * cap);
	rel = table_open(oids.streams, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, snap, 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		DsStream   *st;

		if (cache_nstreams == cap)
		{
			cap *= 2;
			cache_streams = repalloc(cache_streams, sizeof(DsStream) * cap);
		}
		st = &cache_streams[cache_nstreams++];
		memset(st, 0, sizeof(DsStream));
		st->id = DatumGetInt32(attr(slot, "_streams", "id"));
		st->name = text_attr(slot, "_streams", "name");
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);

	rel = table_open(oids.collections, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, snap, 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		int32		sid = DatumGetInt32(attr(slot, "_collections", "stream_id"));
		DsStream   *st = NULL;
		DsCollection *c;
		char	   *kind;

		for (int i = 0; i < cache_nstreams; i++)
		{
			if (cache_streams[i].id == sid)
				st = &cache_streams[i];
		}
		if (st == NULL)
			continue;			/* cannot happen: a foreign key */
		if (st->ncolls % 8 == 0)
			st->colls = st->colls ? repalloc(st->colls, sizeof(DsCollection) * (st->ncolls + 8))
				: palloc(sizeof(DsCollection) * 8);
		c = &st->colls[st->ncolls++];
		c->stream_id = sid;
		c->name = text_attr(slot, "_collections", "name");
		c->type = text_attr(slot, "_collections", "type");
		c->type_len = strlen(c->type);
		c->relid = DatumGetObjectId(attr(slot, "_collections", "relid"));
		c->primary_key = text_attr(slot, "_collections", "primary_key");
		kind = text_attr(slot, "_collections", "kind");
		c->kind = strcmp(kind, "document") == 0 ? DS_KIND_DOCUMENT :
			strcmp(kind, "adopted") == 0 ? DS_KIND_ADOPTED : DS_KIND_GENERATED;
		c->strict = strcmp(text_attr(slot, "_collections", "mode"), "strict") == 0;
		c->allow_extra = DatumGetBool(attr(slot, "_collections", "allow_extra"));
		c->check_old_value = DatumGetBool(attr(slot, "_collections", "check_old_value"));
		c->assert_formats = DatumGetBool(attr(slot, "_collections", "assert_formats"));
		c->has_ttl = DatumGetBool(attr(slot, "_collections", "has_ttl"));
		{
			bool		isnull;
			Datum		d;

			d = optional_attr(slot, "extra_column", &isnull);
			c->extra_column = isnull ? NULL : pstrdup(NameStr(*DatumGetName(d)));
			/* 0.2.0's columns: absent until ALTER EXTENSION UPDATE */
			d = optional_attr(slot, "version_column", &isnull);
			c->version_column = isnull ? NULL : pstrdup(NameStr(*DatumGetName(d)));
			d = optional_attr(slot, "default_ttl", &isnull);
			c->default_ttl = isnull ? NULL : copy_interval(DatumGetIntervalP(d));
			d = optional_attr(slot, "schema", &isnull);
			c->schema = isnull ? NULL : DatumGetJsonbPCopy(d);
		}
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	UnregisterSnapshot(snap);
}

/*
 * Rebuilds the catalog cache: looks up the OIDs and attribute numbers of
 * the extension's tables, then reads every stream and collection into
 * cache_cxt (a child of CacheMemoryContext, reset first).  On error the
 * cache is left empty and invalid, and the error is re-thrown; it is
 * ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE if the extension is not
 * installed.
 */
static void
cache_load(void)
{
	MemoryContext oldcxt;

	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(CacheMemoryContext, "durable_state catalog",
										  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(cache_cxt);
	cache_nstreams = 0;
	cache_streams = NULL;

	/* mark valid first: an invalidation arriving during the load must win */
	cache_valid = true;
	PG_TRY();
	{
		oids.collections = state_relid("_collections");
		oids.log = state_relid("log");
		oids.txids = state_relid("_txids");
		oids.expiry = state_relid("_expiry");
		oids.streams = state_relid("_streams");
		oids.streams_name_idx = state_relid("_streams_name_key");
		oids.streams_pkey = state_relid("_streams_pkey");
		oids.log_att_stable = get_attnum(oids.log, "stable_seq");
		oids.log_att_images = get_attnum(oids.log, "images");
		oids.txids_att_xid = get_attnum(oids.txids, "xid");
		oids.txids_att_gen = get_attnum(oids.txids, "gen");
		oids.txids_att_hash = get_attnum(oids.txids, "hash");
		oids.txids_att_packed = get_attnum(oids.txids, "packed");
		oids.txids_gen_idx = get_relname_relid("_txids_gen_hash_idx", get_rel_namespace(oids.txids));
		oids.streams_att_id = get_attnum(oids.streams, "id");
		oids.streams_att_name = get_attnum(oids.streams, "name");
		oids.streams_att_tail = get_attnum(oids.streams, "tail");
		oids.streams_att_retained_from = get_attnum(oids.streams, "retained_from");
		oids.streams_att_source_offset = get_attnum(oids.streams, "source_offset");
		oids.streams_att_in_snapshot = get_attnum(oids.streams, "in_snapshot");
		oids.streams_att_updated_at = get_attnum(oids.streams, "updated_at");

		oldcxt = MemoryContextSwitchTo(cache_cxt);
		cache_read();
		MemoryContextSwitchTo(oldcxt);
	}
	PG_CATCH();
	{
		cache_valid = false;
		cache_nstreams = 0;
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * Return stream name and its collections, deep-copied into the current
 * memory context (loading the catalog cache first if it is stale).  If the
 * stream does not exist, return NULL when missing_ok, else raise
 * ERRCODE_UNDEFINED_OBJECT.
 */
DsStream *
ds_catalog_stream(const char *name, bool missing_ok)
{
	DsStream   *found = NULL;
	DsStream   *copy;

	if (!cache_valid)
		cache_load();
	for (int i = 0; i < cache_nstreams; i++)
	{
		if (strcmp(cache_streams[i].name, name) == 0)
		{
			found = &cache_streams[i];
			break;
		}
	}
	if (found == NULL)
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("stream \"%s\" does not exist", ds_shorten(name, strlen(name))),
				 errhint("A stream is created by the first state.create_collection() that names it.")));
	}

	copy = palloc(sizeof(DsStream));
	copy->id = found->id;
	copy->name = pstrdup(found->name);
	copy->ncolls = found->ncolls;
	copy->colls = palloc(sizeof(DsCollection) * Max(found->ncolls, 1));
	for (int i = 0; i < found->ncolls; i++)
	{
		DsCollection *src = &found->colls[i];
		DsCollection *dst = &copy->colls[i];

		*dst = *src;
		dst->name = pstrdup(src->name);
		dst->type = pstrdup(src->type);
		dst->primary_key = pstrdup(src->primary_key);
		/* the cache may be rebuilt while the caller still uses its copy */
		if (src->extra_column)
			dst->extra_column = pstrdup(src->extra_column);
		if (src->version_column)
			dst->version_column = pstrdup(src->version_column);
		if (src->default_ttl)
			dst->default_ttl = copy_interval(src->default_ttl);
		if (src->schema)
		{
			dst->schema = palloc(VARSIZE(src->schema));
			memcpy(dst->schema, src->schema, VARSIZE(src->schema));
		}
	}
	return copy;
}

/*
 * Return stream's collection of event type type (type_len bytes, not
 * necessarily NUL-terminated), pointing into stream.  If there is none,
 * return NULL when missing_ok, else raise ERRCODE_UNDEFINED_OBJECT.
 */
DsCollection *
ds_stream_collection(DsStream *stream, const char *type, int type_len, bool missing_ok)
{
	for (int i = 0; i < stream->ncolls; i++)
	{
		DsCollection *c = &stream->colls[i];

		if (c->type_len == type_len && memcmp(c->type, type, type_len) == 0)
			return c;
	}
	if (!missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("unknown type \"%s\" in stream \"%s\"",
						ds_shorten(type, type_len), ds_shorten(stream->name, strlen(stream->name))),
				 errhint("Register a collection for it with state.create_collection().")));
	return NULL;
}

/*
 * The OIDs and attribute numbers of the extension's tables, loading the
 * catalog cache first if it is stale.  The result points into static
 * memory, valid until the next cache load; raises
 * ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE if the extension is not
 * installed.
 */
const DsCatalogOids *
ds_catalog_oids(void)
{
	if (!cache_valid)
		cache_load();
	return &oids;
}

/* ------------------------------------------------------------------------
 * Relation metadata
 * ------------------------------------------------------------------------ */

/*
 * Cached relation facts.  An entry is rebuilt when the relcache callback
 * marks it stale.  A stale entry's memory may still be in use by a batch
 * further up the stack (a trigger can call state.apply), so it is handed to
 * the top transaction's memory context instead of being freed at once.
 */
typedef struct DsRelMeta
{
	Oid			relid;			/* hash key */
	bool		valid;
	MemoryContext cxt;
	char	   *pkname;			/* column the entry was built for */
	char	   *extraname;		/* its extra column, or NULL */
	char	   *versionname;	/* its version column, or NULL */
	DsKind		kind;			/* and the kind of collection */
	Oid			pkindex;
	DsRelInfo	info;			/* rel and pkrel unset */
} DsRelMeta;

static HTAB *relmeta = NULL;

/*
 * Marks relid's cached relation facts stale, or every entry's if relid is
 * InvalidOid.  Frees nothing: the memory may still be in use (see
 * DsRelMeta); ds_relinfo_open rebuilds the entry on next use.
 */
static void
relmeta_invalidate(Oid relid)
{
	HASH_SEQ_STATUS seq;
	DsRelMeta  *m;

	if (relmeta == NULL)
		return;
	if (OidIsValid(relid))
	{
		m = hash_search(relmeta, &relid, HASH_FIND, NULL);
		if (m)
			m->valid = false;
		return;
	}
	hash_seq_init(&seq, relmeta);
	while ((m = hash_seq_search(&seq)) != NULL)
		m->valid = false;
}

/*
 * qsort comparator of DsColumn pointers in jsonb's key order (shorter names
 * first, then bytewise), the order in which a row is rendered as JSON.
 */
static int
column_cmp(const void *a, const void *b)
{
	const DsColumn *ca = *(DsColumn *const *) a;
	const DsColumn *cb = *(DsColumn *const *) b;

	return ds_jsonb_key_cmp(ca->name, ca->name_len, cb->name, cb->name_len);
}

/*
 * Builds the facts about rel, the table of collection coll keyed by column
 * pkname, into m, allocating in m->cxt (and switching back to the caller's
 * context on success only).  Raises ERRCODE_INVALID_TABLE_DEFINITION if the
 * table no longer fits the collection: no primary key, a primary key that
 * is not (pkname), a missing or mistyped extra, version or value column.
 */
static void
relmeta_build(DsRelMeta *m, DsCollection *coll, Relation rel, const char *pkname)
{
	DsRelInfo  *ri = &m->info;
	TupleDesc	desc = RelationGetDescr(rel);
	MemoryContext old = MemoryContextSwitchTo(m->cxt);
	Relation	idx;
	bool		ok;
	Oid			pk = ds_primary_key_index(rel);

	if (!OidIsValid(pk))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("table \"%s\" of collection \"%s\" has no primary key",
						RelationGetRelationName(rel), coll->name),
				 errhint("Add PRIMARY KEY (%s) to the table.", pkname)));

	memset(ri, 0, sizeof(DsRelInfo));
	m->pkname = pstrdup(pkname);
	m->extraname = coll->extra_column ? pstrdup(coll->extra_column) : NULL;
	m->versionname = coll->version_column ? pstrdup(coll->version_column) : NULL;
	m->kind = coll->kind;
	m->pkindex = pk;
	ri->natts = desc->natts;
	ri->cols = palloc0(sizeof(DsColumn) * desc->natts);
	ri->sorted = palloc0(sizeof(DsColumn *) * desc->natts);
	ri->defaults = palloc0(sizeof(Expr *) * desc->natts);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		DsColumn   *col = &ri->cols[i];
		Oid			infunc,
					outfunc;
		bool		isvarlena;

		if (att->attisdropped)
			continue;
		col->name = pstrdup(NameStr(att->attname));
		col->name_len = strlen(col->name);
		col->attnum = att->attnum;
		col->typid = att->atttypid;
		col->basetypid = getBaseType(att->atttypid);
		col->collation = att->attcollation;
		col->typmod = att->atttypmod;
		{
			bool		preferred;

			get_type_category_preferred(col->basetypid, &col->typcategory,
										&preferred);
		}
		col->attgenerated = att->attgenerated;
		col->attidentity = att->attidentity;
		col->notnull = att->attnotnull;
		getTypeInputInfo(att->atttypid, &infunc, &col->ioparam);
		fmgr_info_cxt(infunc, &col->infunc, m->cxt);
		getTypeOutputInfo(att->atttypid, &outfunc, &isvarlena);
		fmgr_info_cxt(outfunc, &col->outfunc, m->cxt);
		/*
		 * Planned once here (constants folded, operators looked up), as the
		 * row-level security quals are (rls.c): a batch only builds its
		 * evaluation state from it, where ExecPrepareExpr ran the planner
		 * on every default of the table for every batch (4% of a put).
		 */
		if (!att->attgenerated)
		{
			Expr	   *def = (Expr *) build_column_default(rel, i + 1);

			ri->defaults[i] = def ? expression_planner(def) : NULL;
		}
		/* the extra column is no member of its own */
		if (coll->extra_column && strcmp(col->name, coll->extra_column) == 0)
		{
			if (col->typid != JSONBOID || col->attgenerated)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
						 errmsg("extra column \"%s\" of collection \"%s\" must be a plain jsonb column",
								col->name, coll->name)));
			ri->extracol = col;
			continue;
		}
		/* so is the version column: the collection keeps it */
		if (coll->version_column && strcmp(col->name, coll->version_column) == 0)
		{
			if (col->typid != INT8OID || col->attgenerated ||
				col->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
						 errmsg("version column \"%s\" of collection \"%s\" must be a plain bigint column",
								col->name, coll->name)));
			ri->versioncol = col;
			continue;
		}
		ri->sorted[ri->nsorted++] = col;
	}
	qsort(ri->sorted, ri->nsorted, sizeof(DsColumn *), column_cmp);

	idx = index_open(pk, AccessShareLock);
	ok = idx->rd_index->indnkeyatts == 1 && idx->rd_index->indkey.values[0] > 0 &&
		strcmp(NameStr(TupleDescAttr(desc, idx->rd_index->indkey.values[0] - 1)->attname),
			   pkname) == 0;
	if (ok)
	{
		Oid			opfamily = idx->rd_opfamily[0];
		Oid			opcintype = idx->rd_opcintype[0];

		ri->pkcol = &ri->cols[idx->rd_index->indkey.values[0] - 1];
		ri->pk_eqproc = get_opcode(get_opfamily_member(opfamily, opcintype, opcintype,
													   BTEqualStrategyNumber));
		ri->pk_collation = idx->rd_indcollation[0];
	}
	index_close(idx, AccessShareLock);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("primary key of table \"%s\" is not (%s)",
						RelationGetRelationName(rel), pkname),
				 errdetail("The table was altered after state.create_collection()."),
				 errhint("Restore PRIMARY KEY (%s).", pkname)));
	if (coll->extra_column && ri->extracol == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("table \"%s\" of collection \"%s\" has no extra column \"%s\"",
						RelationGetRelationName(rel), coll->name, coll->extra_column),
				 errdetail("The table was altered after state.create_collection()."),
				 errhint("Restore the jsonb column.")));
	if (coll->version_column && ri->versioncol == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("table \"%s\" of collection \"%s\" has no version column \"%s\"",
						RelationGetRelationName(rel), coll->name, coll->version_column),
				 errdetail("The table was altered after state.create_collection()."),
				 errhint("Restore the bigint column.")));
	if (!RegProcedureIsValid(ri->pk_eqproc))
		elog(ERROR, "no equality operator for the primary key of \"%s\"",
			 RelationGetRelationName(rel));

	if (coll->kind == DS_KIND_DOCUMENT)
	{
		ri->valuecol = ds_relinfo_column(ri, "value", 5);
		if (ri->valuecol == NULL || ri->valuecol->typid != JSONBOID)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
					 errmsg("document collection \"%s\" needs a jsonb column \"value\" in table \"%s\"",
							coll->name, RelationGetRelationName(rel))));
	}
	MemoryContextSwitchTo(old);
}

/*
 * Opens collection coll's table and its primary key index, both with
 * lockmode, and fills ri with the cached facts about them, (re)building
 * the cache entry if it is stale or was built for a different collection
 * of the same table.  The facts live in CacheMemoryContext; a replaced
 * entry's memory is handed to TopTransactionContext.  Raises
 * ERRCODE_UNDEFINED_TABLE if the table was dropped, and the errors of
 * relmeta_build.  The caller closes both with ds_relinfo_close.
 */
void
ds_relinfo_open(DsRelInfo *ri, DsCollection *coll, LOCKMODE lockmode)
{
	/* a document table is keyed by "key"; primary_key names a value member */
	const char *pkname = coll->kind == DS_KIND_DOCUMENT ? "key" : coll->primary_key;
	Relation	rel = try_table_open(coll->relid, lockmode);
	DsRelMeta  *m;
	bool		found;

	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table of collection \"%s\" no longer exists", coll->name),
				 errhint("Drop the collection with state.drop_collection().")));

	if (relmeta == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(DsRelMeta);
		ctl.hcxt = CacheMemoryContext;
		relmeta = hash_create("durable_state relation facts", 64, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	m = hash_search(relmeta, &coll->relid, HASH_ENTER, &found);
	if (!found)
	{
		m->valid = false;
		m->cxt = NULL;
	}
	/* two collections may share a table: the facts depend on the kind too */
	if (m->valid && (strcmp(m->pkname, pkname) != 0 || m->kind != coll->kind ||
					 (m->extraname == NULL) != (coll->extra_column == NULL) ||
					 (m->extraname && strcmp(m->extraname, coll->extra_column) != 0) ||
					 (m->versionname == NULL) != (coll->version_column == NULL) ||
					 (m->versionname && strcmp(m->versionname, coll->version_column) != 0) ||
					 ds_primary_key_index(rel) != m->pkindex))
		m->valid = false;
	if (!m->valid)
	{
		MemoryContext callercxt = CurrentMemoryContext;

		if (m->cxt)
			MemoryContextSetParent(m->cxt, TopTransactionContext);
		m->cxt = AllocSetContextCreate(CacheMemoryContext, "durable_state relation facts",
									   ALLOCSET_SMALL_SIZES);
		PG_TRY();
		{
			relmeta_build(m, coll, rel, pkname);
		}
		PG_CATCH();
		{
			/* the error left us in m->cxt: leave it before deleting it */
			MemoryContextSwitchTo(callercxt);
			MemoryContextDelete(m->cxt);
			m->cxt = NULL;
			PG_RE_THROW();
		}
		PG_END_TRY();
		m->valid = true;
	}
	*ri = m->info;
	ri->rel = rel;
	ri->pkrel = index_open(m->pkindex, lockmode);
}

/*
 * Closes the index and the table ds_relinfo_open opened, releasing
 * lockmode (which must be the mode they were opened with).
 */
void
ds_relinfo_close(DsRelInfo *ri, LOCKMODE lockmode)
{
	index_close(ri->pkrel, lockmode);
	table_close(ri->rel, lockmode);
}

/*
 * The column of ri named name (len bytes), found by binary search in jsonb
 * key order, or NULL.  The extra and version columns are not found.
 */
DsColumn *
ds_relinfo_column(DsRelInfo *ri, const char *name, int len)
{
	int			lo = 0,
				hi = ri->nsorted - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		DsColumn   *c = ri->sorted[mid];
		int			cmp = ds_jsonb_key_cmp(name, len, c->name, c->name_len);

		if (cmp == 0)
			return c;
		if (cmp < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

/*
 * The event key key (len bytes) as a datum of the primary key column's
 * type (in the current memory context if the type is passed by reference).
 * The type's input function raises its own error if the key is not valid
 * input.
 */
Datum
ds_key_datum(DsRelInfo *ri, const char *key, int len)
{
	DsColumn   *pk = ri->pkcol;

	if (pk->typid == TEXTOID)
		return PointerGetDatum(cstring_to_text_with_len(key, len));
	return InputFunctionCall(&pk->infunc, pnstrdup(key, len), pk->ioparam, pk->typmod);
}

/*
 * Raises the usual "permission denied for table" error
 * (ERRCODE_INSUFFICIENT_PRIVILEGE) unless the current user holds every
 * privilege in mode on rel.  Functions run with the caller's rights: the
 * caller needs the table privileges the batch uses.  Row-level security is
 * the caller's too: see rls.c.
 */
void
ds_check_table_access(DsCollection *coll, Relation rel, AclMode mode)
{
	/* every privilege in mode is needed (pg_class_aclcheck accepts any one) */
	if (pg_class_aclmask(RelationGetRelid(rel), GetUserId(), mode, ACLMASK_ALL) != mode)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, RelationGetRelationName(rel));
}

/*
 * state._catalog_changed(): every backend drops its cached catalog when
 * this transaction commits (create_collection, drop_collection and
 * alter_collection call it).
 */
PG_FUNCTION_INFO_V1(ds_catalog_changed);

Datum
ds_catalog_changed(PG_FUNCTION_ARGS)
{
	Oid			nsp = get_namespace_oid("state", false);

	CacheInvalidateRelcacheByRelid(get_relname_relid("_collections", nsp));
	PG_RETURN_VOID();
}
