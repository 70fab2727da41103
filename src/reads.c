/*
 * reads.c
 *		state.get, state.get_versioned, state.get_many and state.get_type:
 *		primary-key index reads under the statement's snapshot, values
 *		rebuilt as the JSON applied; rows hidden by the caller's row-level
 *		security policies, and entities whose TTL has passed, are absent.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "durable_state.h"
#include "compat.h"

typedef struct DsReader
{
	DsCollection *coll;
	Relation	rel;
	Relation	pkrel;
	DsRelInfo	ri;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	char	  **expired;		/* keys whose TTL has passed (sorted) */
	int			nexpired;
	bool		rls;			/* row-level security applies: rows are checked */
} DsReader;

/*
 * Prepares r to read the collection named by the calling function's
 * arguments typearg (the type) and streamarg (the stream): opens its table
 * and primary key index with AccessShareLock and begins an index scan with
 * nkeys keys under the active snapshot.  Raises
 * ERRCODE_NULL_VALUE_NOT_ALLOWED for a null type or stream,
 * ERRCODE_INSUFFICIENT_PRIVILEGE without SELECT on the table, and the
 * errors of ds_catalog_stream, ds_stream_collection and ds_relinfo_open.
 * The caller ends with reader_close.
 */
static void
reader_open(DsReader *r, FunctionCallInfo fcinfo, int typearg, int streamarg, int nkeys)
{
	char	   *type;
	char	   *stream;
	DsStream   *s;

	if (PG_ARGISNULL(typearg) || PG_ARGISNULL(streamarg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("type and stream must not be null")));
	type = text_to_cstring(PG_GETARG_TEXT_PP(typearg));
	stream = text_to_cstring(PG_GETARG_TEXT_PP(streamarg));
	s = ds_catalog_stream(stream, false);
	r->coll = ds_stream_collection(s, type, strlen(type), false);
	ds_relinfo_open(&r->ri, r->coll, AccessShareLock);
	r->rel = r->ri.rel;
	r->pkrel = r->ri.pkrel;
	ds_check_table_access(r->coll, r->rel, ACL_SELECT);
	r->rls = ds_rls_active(r->rel);
	r->slot = table_slot_create(r->rel, NULL);
	r->scan = ds_index_beginscan(r->rel, r->pkrel, GetActiveSnapshot(), nkeys, 0);
	/* an expired entity is gone for readers, even before the worker deletes it */
	r->expired = ds_ttl_expired_keys(r->coll, &r->nexpired);
}

/* Ends r's scan and closes what reader_open opened, releasing the locks. */
static void
reader_close(DsReader *r)
{
	index_endscan(r->scan);
	ExecDropSingleTupleTableSlot(r->slot);
	ds_relinfo_close(&r->ri, AccessShareLock);
}

/*
 * The value stored under key (len bytes), palloc'd in the current memory
 * context; NULL if there is no such row, its TTL has passed, the caller's
 * row-level security policies hide it, or a document's value is null.
 * Leaves the row in r->slot when one was returned.
 */
static Jsonb *
reader_get(DsReader *r, const char *key, int len)
{
	ScanKeyData skey;
	Jsonb	   *v;

	if (r->nexpired > 0 && ds_ttl_is_expired(r->expired, r->nexpired, key, len))
		return NULL;
	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   r->ri.pk_collation, r->ri.pk_eqproc,
						   ds_key_datum(&r->ri, key, len));
	index_rescan(r->scan, &skey, 1, NULL, 0);
	if (!index_getnext_slot(r->scan, ForwardScanDirection, r->slot))
		return NULL;
	/* a row the caller's policies hide is absent for the caller */
	if (r->rls && !ds_rls_passes(r->rel, DS_RLS_SELECT, r->slot))
		return NULL;
	v = ds_slot_value(&r->ri, r->coll, r->slot);
	/* a copy: a stored jsonb may point into the buffer, unpinned by the next probe */
	return v ? DatumGetJsonbPCopy(JsonbPGetDatum(v)) : NULL;
}

/*
 * state.get(type text, key text, stream text) RETURNS jsonb: the entity's
 * value, or NULL if it is absent (or key is null).
 */
PG_FUNCTION_INFO_V1(ds_get);

Datum
ds_get(PG_FUNCTION_ARGS)
{
	DsReader	r;
	text	   *key;
	Jsonb	   *v;

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	key = PG_GETARG_TEXT_PP(1);
	reader_open(&r, fcinfo, 0, 2, 1);
	v = reader_get(&r, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	reader_close(&r);
	if (v == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(v);
}

/*
 * state.get_versioned(type text, key text, stream text) RETURNS TABLE
 * (value jsonb, version bigint): one row for an entity that is present,
 * none otherwise.  Raises ERRCODE_FEATURE_NOT_SUPPORTED if the collection
 * has no version column.
 */
PG_FUNCTION_INFO_V1(ds_get_versioned);

Datum
ds_get_versioned(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DsReader	r;
	text	   *key;
	Jsonb	   *v;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(1))
		return (Datum) 0;
	key = PG_GETARG_TEXT_PP(1);
	reader_open(&r, fcinfo, 0, 2, 1);
	if (r.ri.versioncol == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("collection \"%s\" keeps no versions", r.coll->name),
				 errhint("Re-create the collection with state.create_collection(..., version_column => ...) naming a bigint column of the table.")));
	v = reader_get(&r, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	if (v != NULL)
	{
		bool		isnull;

		values[0] = JsonbPGetDatum(v);
		values[1] = slot_getattr(r.slot, r.ri.versioncol->attnum, &isnull);
		nulls[1] = isnull;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	reader_close(&r);
	return (Datum) 0;
}

/*
 * state.get_many(type text, keys text[], stream text) RETURNS jsonb:
 * {key: value} of the keys whose entities are present (null keys are
 * skipped), or NULL if keys is null.
 */
PG_FUNCTION_INFO_V1(ds_get_many);

Datum
ds_get_many(PG_FUNCTION_ARGS)
{
	DsReader	r;
	ArrayType  *keys;
	Datum	   *elems;
	bool	   *enulls;
	int			nelems;
	JsonbParseState *state = NULL;
	JsonbValue *res;

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	keys = PG_GETARG_ARRAYTYPE_P(1);
	deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT, &elems, &enulls, &nelems);
	reader_open(&r, fcinfo, 0, 2, 1);
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < nelems; i++)
	{
		text	   *k;
		Jsonb	   *v;
		JsonbValue	jk,
					jv;

		if (enulls[i])
			continue;
		k = DatumGetTextPP(elems[i]);
		v = reader_get(&r, VARDATA_ANY(k), VARSIZE_ANY_EXHDR(k));
		if (v == NULL)
			continue;
		jk.type = jbvString;
		jk.val.string.val = VARDATA_ANY(k);
		jk.val.string.len = VARSIZE_ANY_EXHDR(k);
		pushJsonbValue(&state, WJB_KEY, &jk);
		ds_jsonb_root_value(v, &jv);
		pushJsonbValue(&state, WJB_VALUE, &jv);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	reader_close(&r);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(res));
}

/*
 * state.get_type(type text, stream text) RETURNS TABLE (key text, value
 * jsonb): every entity present, in primary key order.
 */
PG_FUNCTION_INFO_V1(ds_get_type);

Datum
ds_get_type(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo;
	DsReader	r;

	InitMaterializedSRF(fcinfo, 0);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	reader_open(&r, fcinfo, 0, 1, 0);
	index_rescan(r.scan, NULL, 0, NULL, 0);
	while (index_getnext_slot(r.scan, ForwardScanDirection, r.slot))
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};
		bool		isnull;
		Datum		k = slot_getattr(r.slot, r.ri.pkcol->attnum, &isnull);
		char	   *ktext = OutputFunctionCall(&r.ri.pkcol->outfunc, k);
		Jsonb	   *v;

		if (r.nexpired > 0 && ds_ttl_is_expired(r.expired, r.nexpired, ktext, strlen(ktext)))
			continue;
		if (r.rls && !ds_rls_passes(r.rel, DS_RLS_SELECT, r.slot))
			continue;
		v = ds_slot_value(&r.ri, r.coll, r.slot);
		values[0] = CStringGetTextDatum(ktext);
		values[1] = JsonbPGetDatum(v);
		nulls[1] = (v == NULL);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	reader_close(&r);
	return (Datum) 0;
}
