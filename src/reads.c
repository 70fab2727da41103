/*
 * reads.c
 *		state.get, state.get_versioned, state.get_many, state.get_type and
 *		the rows of state.snapshot: primary-key index reads under the
 *		statement's snapshot, values rebuilt as the JSON applied; rows
 *		hidden by the caller's row-level security policies, and entities
 *		whose TTL has passed, are absent.
 *
 *		Reads of many rows run in constant memory: what a row needs is
 *		allocated in the reader's row context, reset for each row, and the
 *		rows go to a tuplestore (or a tuplesort) that spills to disk past
 *		work_mem.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/memutils.h"
#include "utils/tuplesort.h"
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
	bool		pk_is_text;		/* a key's text is its datum (text, varchar) */
	MemoryContext scancxt;		/* the scan's: where it is advanced */
	MemoryContext rowcxt;		/* what one row needs; reset for each row */
} DsReader;

/*
 * Prepares r to read collection coll: opens its table and primary key
 * index with AccessShareLock and begins an index scan with nkeys keys
 * under the active snapshot.  Raises ERRCODE_INSUFFICIENT_PRIVILEGE
 * without SELECT on the table, and the errors of ds_relinfo_open.  The
 * caller ends with reader_close.
 */
static void
reader_open_collection(DsReader *r, DsCollection *coll, int nkeys)
{
	r->coll = coll;
	ds_relinfo_open(&r->ri, r->coll, AccessShareLock);
	r->rel = r->ri.rel;
	r->pkrel = r->ri.pkrel;
	ds_check_table_access(r->coll, r->rel, ACL_SELECT);
	r->rls = ds_rls_active(r->rel);
	r->pk_is_text = (r->ri.pkcol->basetypid == TEXTOID ||
					 r->ri.pkcol->basetypid == VARCHAROID);
	r->slot = table_slot_create(r->rel, NULL);
	r->scan = ds_index_beginscan(r->rel, r->pkrel, GetActiveSnapshot(), nkeys, 0);
	/* an expired entity is gone for readers, even before the worker deletes it */
	r->expired = ds_ttl_expired_keys(r->coll, &r->nexpired);
	/* btree allocates some of a scan's state as it goes (killed items) */
	r->scancxt = CurrentMemoryContext;
	r->rowcxt = AllocSetContextCreate(CurrentMemoryContext, "durable_state reader row",
									  ALLOCSET_DEFAULT_SIZES);
}

/*
 * Prepares r to read the collection named by the calling function's
 * arguments typearg (the type) and streamarg (the stream), as
 * reader_open_collection.  Raises ERRCODE_NULL_VALUE_NOT_ALLOWED for a
 * null type or stream, and the errors of ds_catalog_stream,
 * ds_stream_collection and reader_open_collection.
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
	reader_open_collection(r, ds_stream_collection(s, type, strlen(type), false), nkeys);
}

/* Ends r's scan and closes what reader_open opened, releasing the locks. */
static void
reader_close(DsReader *r)
{
	index_endscan(r->scan);
	ExecDropSingleTupleTableSlot(r->slot);
	ds_relinfo_close(&r->ri, AccessShareLock);
	MemoryContextDelete(r->rowcxt);
}

/*
 * The text of key datum k of r's collection, in the current memory context
 * (or k itself, detoasted, for a text key).
 */
static text *
reader_key_text(DsReader *r, Datum k)
{
	if (r->pk_is_text)
		return DatumGetTextPP(k);
	return cstring_to_text(OutputFunctionCall(&r->ri.pkcol->outfunc, k));
}

/*
 * Advances r's scan to its next row, in r->slot: in the scan's memory
 * context, whatever the current one.  Returns false at the end.
 */
static bool
reader_fetch(DsReader *r)
{
	MemoryContext old = MemoryContextSwitchTo(r->scancxt);
	bool		found = index_getnext_slot(r->scan, ForwardScanDirection, r->slot);

	MemoryContextSwitchTo(old);
	return found;
}

/*
 * Moves r's scan to the next row that is present for the caller (its TTL
 * has not passed, the caller's row-level security policies let it
 * through) and sets *key to its key's text and *value to its value (NULL
 * for a document's null value), both in r->rowcxt, which is reset first:
 * the previous row's are gone.  Returns false at the end of the scan.
 */
static bool
reader_next(DsReader *r, text **key, Jsonb **value)
{
	MemoryContext old = MemoryContextSwitchTo(r->rowcxt);
	bool		found = false;

	for (;;)
	{
		bool		isnull;
		text	   *k;

		MemoryContextReset(r->rowcxt);
		if (!reader_fetch(r))
			break;
		k = reader_key_text(r, slot_getattr(r->slot, r->ri.pkcol->attnum, &isnull));
		if (r->nexpired > 0 &&
			ds_ttl_is_expired(r->expired, r->nexpired, VARDATA_ANY(k), VARSIZE_ANY_EXHDR(k)))
			continue;
		if (r->rls && !ds_rls_passes(r->rel, DS_RLS_SELECT, r->slot))
			continue;
		*key = k;
		*value = ds_slot_value(&r->ri, r->coll, r->slot);
		found = true;
		break;
	}
	MemoryContextSwitchTo(old);
	return found;
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
	MemoryContext old;

	if (r->nexpired > 0 && ds_ttl_is_expired(r->expired, r->nexpired, key, len))
		return NULL;
	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   r->ri.pk_collation, r->ri.pk_eqproc,
						   ds_key_datum(&r->ri, key, len));
	old = MemoryContextSwitchTo(r->scancxt);
	index_rescan(r->scan, &skey, 1, NULL, 0);
	MemoryContextSwitchTo(old);
	if (!reader_fetch(r))
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

/* Raises ERRCODE_FEATURE_NOT_SUPPORTED if r's collection keeps no versions. */
static void
require_versions(DsReader *r)
{
	if (r->ri.versioncol == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("collection \"%s\" keeps no versions", r->coll->name),
				 errhint("Re-create the collection with state.create_collection(..., version_column => ...) naming a bigint column of the table.")));
}

/*
 * Reads entity key of type in stream as state.get and state.get_versioned
 * do (with their errors): returns its value (NULL if the caller sees no
 * such entity) and, if version is not NULL, sets *version to its version
 * (0 if absent or null; the collection must keep versions).
 */
Jsonb *
ds_entity_get(const char *stream, text *type, text *key, int64 *version)
{
	DsReader	r;
	DsStream   *s = ds_catalog_stream(stream, false);
	Jsonb	   *v;

	reader_open_collection(&r, ds_stream_collection(s, VARDATA_ANY(type),
													VARSIZE_ANY_EXHDR(type), false), 1);
	if (version)
	{
		require_versions(&r);
		*version = 0;
	}
	v = reader_get(&r, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	if (v != NULL && version)
	{
		bool		isnull;
		Datum		d = slot_getattr(r.slot, r.ri.versioncol->attnum, &isnull);

		if (!isnull)
			*version = DatumGetInt64(d);
	}
	reader_close(&r);
	return v;
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
	require_versions(&r);
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

/* An entity state.get_many found: its key and its value (compact). */
typedef struct DsFound
{
	const char *key;
	int			keylen;
	Jsonb	   *value;
} DsFound;

/* qsort comparator of found entities in jsonb's key order (length, bytes). */
static int
found_cmp(const void *a, const void *b)
{
	const DsFound *x = (const DsFound *) a;
	const DsFound *y = (const DsFound *) b;

	if (x->keylen != y->keylen)
		return x->keylen > y->keylen ? 1 : -1;
	return memcmp(x->key, y->key, x->keylen);
}

/*
 * The jsonb object {key: value} of found[0..n-1] (sorted by found_cmp,
 * keys unique), written straight in jsonb's binary form (DsJsonbObject):
 * the values are copied as stored, each freed once it is in the result,
 * so the memory it takes is about the result's size.  Raises
 * ERRCODE_PROGRAM_LIMIT_EXCEEDED past jsonb's size limit.
 */
static Jsonb *
found_object(DsFound *found, int n)
{
	DsJsonbObject o;
	Size		size = VARHDRSZ + sizeof(uint32) + 2 * n * sizeof(JEntry);

	/* the result's size at most (the data, and padding before each value) */
	for (int i = 0; i < n; i++)
		size += found[i].keylen + VARSIZE(found[i].value) - VARHDRSZ + 3;
	if (size >= MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("total size of jsonb object elements exceeds the maximum of %d bytes",
						JENTRY_OFFLENMASK)));
	ds_jsonb_object_begin(&o, n, size);
	for (int i = 0; i < n; i++)
		ds_jsonb_object_key(&o, found[i].key, found[i].keylen);
	for (int i = 0; i < n; i++)
	{
		JsonbValue	v;

		ds_jsonb_root_value(found[i].value, &v);
		ds_jsonb_object_value(&o, &v);
		pfree(found[i].value);	/* as the result grows, the copies go */
	}
	return ds_jsonb_object_end(&o);
}

/*
 * state.get_many(type text, keys text[], stream text) RETURNS jsonb:
 * {key: value} of the keys whose entities are present (null keys are
 * skipped), or NULL if keys is null.  Each probe runs in the reader's row
 * context; only the values found stay, compact, until the result is
 * written (found_object).
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
	DsFound    *found;
	int			nfound = 0;
	int			nunique = 0;

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	keys = PG_GETARG_ARRAYTYPE_P(1);
	deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT, &elems, &enulls, &nelems);
	reader_open(&r, fcinfo, 0, 2, 1);
	found = palloc(sizeof(DsFound) * Max(nelems, 1));
	for (int i = 0; i < nelems; i++)
	{
		text	   *k;
		Jsonb	   *v;
		MemoryContext old;

		if (enulls[i])
			continue;
		MemoryContextReset(r.rowcxt);
		old = MemoryContextSwitchTo(r.rowcxt);
		/* an array's elements are never compressed: k points into keys */
		k = DatumGetTextPP(elems[i]);
		v = reader_get(&r, VARDATA_ANY(k), VARSIZE_ANY_EXHDR(k));
		MemoryContextSwitchTo(old);
		if (v == NULL)
			continue;
		found[nfound].key = VARDATA_ANY(k);
		found[nfound].keylen = VARSIZE_ANY_EXHDR(k);
		found[nfound].value = memcpy(palloc(VARSIZE(v)), v, VARSIZE(v));
		nfound++;
	}
	reader_close(&r);
	/* a key asked for twice is there once (its value is the same) */
	qsort(found, nfound, sizeof(DsFound), found_cmp);
	for (int i = 0; i < nfound; i++)
		if (nunique == 0 || found_cmp(&found[nunique - 1], &found[i]) != 0)
			found[nunique++] = found[i];
	PG_RETURN_JSONB_P(found_object(found, nunique));
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
	text	   *key;
	Jsonb	   *value;

	InitMaterializedSRF(fcinfo, 0);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	reader_open(&r, fcinfo, 0, 1, 0);
	index_rescan(r.scan, NULL, 0, NULL, 0);
	while (reader_next(&r, &key, &value))
	{
		Datum		values[2] = {PointerGetDatum(key), JsonbPGetDatum(value)};
		bool		nulls[2] = {false, value == NULL};

		/* copied into the tuplestore, which spills to disk past work_mem */
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	reader_close(&r);
	return (Datum) 0;
}

/* ------------------------------------------------------------------------
 * The rows of state.snapshot
 *
 * state._snapshot writes a stream's snapshot-start event, one insert event
 * per entity present (collections by type, entities by key, both ordered
 * bytewise as COLLATE "C" orders their text), and its snapshot-end event
 * into its tuplestore, in constant memory.  A collection whose primary key
 * index holds the keys in that order (a text key in a bytewise collation)
 * is read in index order; any other goes through a tuplesort, which also
 * spills past work_mem.
 * ------------------------------------------------------------------------ */

/*
 * Adds {"headers": {"control": control, "offset": tail}} to rsinfo's
 * tuplestore (the offset as state.format_offset writes it).
 */
static void
put_control_event(ReturnSetInfo *rsinfo, const char *control, int64 tail)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;
	char		offset[32];
	Datum		value;
	bool		isnull = false;

	snprintf(offset, sizeof(offset), "%020lld", (long long) tail);
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ds_push_jsonb_string(&state, WJB_KEY, "headers", 7);
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	ds_push_jsonb_string(&state, WJB_KEY, "control", 7);
	ds_push_jsonb_string(&state, WJB_VALUE, control, strlen(control));
	ds_push_jsonb_string(&state, WJB_KEY, "offset", 6);
	ds_push_jsonb_string(&state, WJB_VALUE, offset, strlen(offset));
	pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	value = JsonbPGetDatum(JsonbValueToJsonb(res));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
}

/*
 * Adds the insert event of the entity key of r's collection with value
 * (NULL: a JSON null) to rsinfo's tuplestore, building it in r->rowcxt:
 * {"type": type, "key": key, "value": value, "headers": {"operation":
 * "insert"}}.
 */
static void
put_insert_event(DsReader *r, ReturnSetInfo *rsinfo, text *key, Jsonb *value)
{
	MemoryContext old = MemoryContextSwitchTo(r->rowcxt);
	JsonbValue	jv;
	Datum		ev;
	bool		isnull = false;

	if (value != NULL)
		ds_jsonb_root_value(value, &jv);
	ev = JsonbPGetDatum(ds_make_event(r->coll->type, r->coll->type_len,
									  VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
									  value ? &jv : NULL, "insert"));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &ev, &isnull);
	MemoryContextSwitchTo(old);
}

/*
 * Returns true if r's primary key index holds the keys in bytewise order
 * of their text, so that reading it in index order reads them as COLLATE
 * "C" orders them: one index-only pass over every key of the index
 * (without visibility checks: the rows the snapshot sees are among them),
 * stopping at the first key out of order.
 */
static bool
reader_keys_bytewise(DsReader *r)
{
	IndexScanDesc scan = ds_index_beginscan(r->rel, r->pkrel, GetActiveSnapshot(), 0, 0);
	StringInfoData prev;
	bool		ordered = true;
	bool		first = true;

	initStringInfo(&prev);
	scan->xs_want_itup = true;
	index_rescan(scan, NULL, 0, NULL, 0);
	while (ordered && index_getnext_tid(scan, ForwardScanDirection) != NULL)
	{
		MemoryContext old;
		bool		isnull;
		text	   *k;
		int			len;

		if (scan->xs_itup == NULL)
		{
			ordered = false;	/* the index cannot return its keys */
			break;
		}
		MemoryContextReset(r->rowcxt);
		old = MemoryContextSwitchTo(r->rowcxt);
		k = reader_key_text(r, index_getattr(scan->xs_itup, 1, scan->xs_itupdesc, &isnull));
		len = VARSIZE_ANY_EXHDR(k);
		if (!first)
		{
			int			c = memcmp(prev.data, VARDATA_ANY(k), Min(prev.len, len));

			ordered = c < 0 || (c == 0 && prev.len <= len);
		}
		resetStringInfo(&prev);
		appendBinaryStringInfo(&prev, VARDATA_ANY(k), len);
		first = false;
		MemoryContextSwitchTo(old);
	}
	index_endscan(scan);
	pfree(prev.data);
	return ordered;
}

/*
 * Adds the insert events of r's collection to rsinfo's tuplestore in
 * bytewise order of the keys' text through a tuplesort of (key, value)
 * (work_mem, then temporary files).
 */
static void
put_sorted_events(DsReader *r, ReturnSetInfo *rsinfo)
{
	TupleDesc	desc = CreateTemplateTupleDesc(2);
	AttrNumber	attno = 1;
	Oid			op = TextLessOperator;
	Oid			collation = C_COLLATION_OID;
	bool		nullsfirst = false;
	Tuplesortstate *sort;
	TupleTableSlot *in;
	TupleTableSlot *out;
	text	   *key;
	Jsonb	   *value;

	TupleDescInitEntry(desc, 1, "key", TEXTOID, -1, 0);
	TupleDescInitEntry(desc, 2, "value", JSONBOID, -1, 0);
	sort = tuplesort_begin_heap(desc, 1, &attno, &op, &collation, &nullsfirst,
								work_mem, NULL, TUPLESORT_NONE);
	in = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	out = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	index_rescan(r->scan, NULL, 0, NULL, 0);
	while (reader_next(r, &key, &value))
	{
		MemoryContext old = MemoryContextSwitchTo(r->rowcxt);

		ExecClearTuple(in);
		in->tts_values[0] = PointerGetDatum(key);
		in->tts_isnull[0] = false;
		in->tts_values[1] = JsonbPGetDatum(value);
		in->tts_isnull[1] = (value == NULL);
		ExecStoreVirtualTuple(in);
		tuplesort_puttupleslot(sort, in);
		MemoryContextSwitchTo(old);
	}
	ExecClearTuple(in);
	tuplesort_performsort(sort);
	while (tuplesort_gettupleslot(sort, true, false, out, NULL))
	{
		bool		isnull;
		Datum		v;

		MemoryContextReset(r->rowcxt);
		key = (text *) DatumGetPointer(slot_getattr(out, 1, &isnull));
		v = slot_getattr(out, 2, &isnull);
		put_insert_event(r, rsinfo, key, isnull ? NULL : DatumGetJsonbP(v));
	}
	tuplesort_end(sort);
	ExecDropSingleTupleTableSlot(in);
	ExecDropSingleTupleTableSlot(out);
}

/* qsort comparator of collections by type, bytewise (COLLATE "C"). */
static int
collection_type_cmp(const void *a, const void *b)
{
	const DsCollection *x = (const DsCollection *) a;
	const DsCollection *y = (const DsCollection *) b;
	int			c = memcmp(x->type, y->type, Min(x->type_len, y->type_len));

	return c != 0 ? c : x->type_len - y->type_len;
}

/*
 * Adds the events of a snapshot of stream s at offset tail to rsinfo's
 * tuplestore, reading with the active snapshot: snapshot-start, the
 * insert events of every collection (by type, then key), snapshot-end.
 * Raises ERRCODE_INSUFFICIENT_PRIVILEGE without SELECT on each table.
 */
static void
put_snapshot_events(ReturnSetInfo *rsinfo, DsStream *s, int64 tail)
{
	put_control_event(rsinfo, "snapshot-start", tail);
	qsort(s->colls, s->ncolls, sizeof(DsCollection), collection_type_cmp);
	for (int i = 0; i < s->ncolls; i++)
	{
		DsReader	r;
		text	   *key;
		Jsonb	   *value;

		reader_open_collection(&r, &s->colls[i], 0);
		if (reader_keys_bytewise(&r))
		{
			index_rescan(r.scan, NULL, 0, NULL, 0);
			while (reader_next(&r, &key, &value))
				put_insert_event(&r, rsinfo, key, value);
		}
		else
			put_sorted_events(&r, rsinfo);
		reader_close(&r);
	}
	put_control_event(rsinfo, "snapshot-end", tail);
}

/*
 * state._snapshot(stream text) RETURNS SETOF jsonb: the events of a
 * snapshot of the stream with the statement's snapshot (none for a null
 * or unknown stream).  Raises ERRCODE_T_R_SERIALIZATION_FAILURE when the
 * snapshot would not be exact (ds_snapshot_offset), and the errors of
 * put_snapshot_events.
 */
PG_FUNCTION_INFO_V1(ds_snapshot_rows);

Datum
ds_snapshot_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo;
	DsStream   *s;
	int64		tail;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	if (PG_ARGISNULL(0))
		return (Datum) 0;
	s = ds_catalog_stream(text_to_cstring(PG_GETARG_TEXT_PP(0)), true);
	if (s == NULL)
		return (Datum) 0;
	(void) ds_snapshot_offset(s->id, GetActiveSnapshot(), false, &tail);
	put_snapshot_events(rsinfo, s, tail);
	return (Datum) 0;
}

/*
 * state.snapshot(stream text) RETURNS SETOF jsonb: snapshot() +
 * changes(after its snapshot-end offset) is the current state, no event
 * missing or repeated: the rows are the fold of the log up to the
 * snapshot-end offset.  A snapshot taken while a batch below a visible one
 * is in flight would not be; under READ COMMITTED it waits for that batch
 * and takes another, with a new snapshot as a new statement would (a few
 * times, then with a short barrier: new batches of the stream wait until
 * the snapshot is taken; on a hot standby, which cannot hold the primary's
 * writers back, it keeps waiting for the batches in flight a while
 * longer).  Under REPEATABLE READ or SERIALIZABLE the transaction's
 * snapshot cannot move: ERRCODE_T_R_SERIALIZATION_FAILURE.  Raises
 * ERRCODE_UNDEFINED_OBJECT for an unknown stream.  The events go straight
 * to the one tuplestore of the call, which spills past work_mem.
 */
PG_FUNCTION_INFO_V1(ds_snapshot);

Datum
ds_snapshot(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo;
	DsStream   *s;
	bool		standby = RecoveryInProgress();
	bool		retry = (XactIsoLevel == XACT_READ_COMMITTED);
	char	   *name;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	name = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	s = name ? ds_catalog_stream(name, false) : NULL;
	if (s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("stream \"<NULL>\" does not exist"),
				 errhint("A stream is created by the first state.create_collection() that names it.")));
	for (int attempt = 1; attempt <= (standby ? 50 : 4); attempt++)
	{
		int64		tail;
		bool		exact;

		PushActiveSnapshot(GetTransactionSnapshot());
		exact = ds_snapshot_offset(s->id, GetActiveSnapshot(), retry, &tail);
		if (exact)
			put_snapshot_events(rsinfo, s, tail);
		PopActiveSnapshot();
		if (exact)
			return (Datum) 0;
		ds_snapshot_wait(s->id, attempt >= 3 && !standby);
	}
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("could not take an exact snapshot of stream \"%s\"", name),
			 errhint("Retry.")));
	return (Datum) 0;
}
