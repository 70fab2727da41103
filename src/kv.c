/*
 * kv.c
 *		state.put: a key/value write as one upsert event, in C.
 *
 * state.put(type, key, value, ttl, stream, expected_version) is the
 * commonest call of an application that uses durable_state as a key/value
 * store (the Node client's put).  It was PL/pgSQL: a function with a SET
 * clause (its GUC saved and restored on every call), jsonb_build_object,
 * then state.apply through SPI.  Here it builds the event and hands it to
 * the apply engine (ds_apply_batch) directly; what it does is unchanged:
 *	1. the arguments are checked (a positive ttl, a value);
 *	2. with expected_version, the entity's key lock is taken (as
 *	   state._lock_key: no batch changes it until commit) and its version
 *	   read under a snapshot taken after the lock (READ COMMITTED), so a
 *	   put that waited for another sees its version; a mismatch is 40001;
 *	3. the upsert event {type, key, value, headers: {operation: upsert}}
 *	   is applied as a batch of one (logged, notified, schema-checked);
 *	4. a ttl sets the entity's expiry (state._ttl_set); the batch itself
 *	   ended any earlier one.
 * state.remove and state.increment are here too, on the same key lock.
 * It runs as the caller (no SECURITY DEFINER): the engine checks the
 * caller's privileges and policies, and looks up nothing by name.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "durable_state.h"

/*
 * The upsert event of (type, key, value), or with value NULL the delete
 * event of (type, key), as the element of a batch: a jbvBinary of its
 * object, in the current memory context.
 */
static void
put_event(text *type, text *key, JsonbValue *value, JsonbValue *elem)
{
	ds_jsonb_root_value(ds_make_event(VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type),
									  VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
									  value, value ? "upsert" : "delete"),
						elem);
}

/*
 * Sets *type, *key and *stream from arguments 0, 1 and stream_arg of a
 * call of state.put, state.increment or state.remove, and *name to the
 * stream's name as a C string; ERRCODE_NULL_VALUE_NOT_ALLOWED if one is
 * null.
 */
static void
entity_args(FunctionCallInfo fcinfo, int stream_arg, text **type, text **key, text **stream,
			char **name)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(stream_arg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("type, key and stream must not be null")));
	*type = PG_GETARG_TEXT_PP(0);
	*key = PG_GETARG_TEXT_PP(1);
	*stream = PG_GETARG_TEXT_PP(stream_arg);
	*name = text_to_cstring(*stream);
}

/*
 * Takes the entity's key lock (as state._lock_key: no batch changes it
 * until commit) and, under READ COMMITTED, makes a snapshot taken after it
 * the active one, so that what committed while the lock was awaited is
 * seen, as a new statement would see it.  Returns whether it pushed one
 * (to be popped by the caller).
 */
static bool
lock_entity(text *stream, text *type, text *key)
{
	DirectFunctionCall3(ds_lock_key, PointerGetDatum(stream), PointerGetDatum(type),
						PointerGetDatum(key));
	if (IsolationUsesXactSnapshot())
		return false;
	PushActiveSnapshot(GetTransactionSnapshot());
	return true;
}

/*
 * Raises ERRCODE_SERIALIZATION_FAILURE if the entity's version (0: absent)
 * is not expected.  The caller holds its key lock.
 */
static void
check_version(const char *stream, text *type, text *key, int64 expected)
{
	int64		cur;

	(void) ds_entity_get(stream, type, key, &cur);
	if (cur != expected)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("version conflict on \"%s\" of type \"%s\": expected version " INT64_FORMAT ", found " INT64_FORMAT,
						text_to_cstring(key), text_to_cstring(type), expected, cur),
				 cur == 0 ? errdetail("The entity does not exist.")
				 : errdetail("The entity is at version " INT64_FORMAT ".", cur),
				 errhint("Read the entity again (state.get_versioned) and retry with its version.")));
}

/*
 * state.put(type text, key text, value jsonb, ttl interval, stream text,
 * expected_version bigint) RETURNS text: the upsert's offset.
 */
PG_FUNCTION_INFO_V1(ds_put);

Datum
ds_put(PG_FUNCTION_ARGS)
{
	text	   *type;
	text	   *key;
	text	   *stream;
	char	   *name;
	JsonbValue	value;
	JsonbValue	elem;
	int64		applied,
				skipped,
				tail;
	bool		pushed = false;

	if (!PG_ARGISNULL(3))
	{
		Interval   *ttl = PG_GETARG_INTERVAL_P(3);
		Interval	zero = {0};

		if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(ttl),
											  IntervalPGetDatum(&zero))) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("ttl must be positive, not %s",
							DatumGetCString(DirectFunctionCall1(interval_out,
																IntervalPGetDatum(ttl)))),
					 errhint("Leave ttl NULL for an entity that does not expire.")));
	}
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("value must not be null"),
				 errhint("Use state.remove() to delete an entity.")));
	entity_args(fcinfo, 4, &type, &key, &stream, &name);

	if (!PG_ARGISNULL(5))
	{
		int64		expected = PG_GETARG_INT64(5);

		if (expected < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("expected_version must be 0 (absent) or a version, not " INT64_FORMAT,
							expected)));
		/* the check and the write see what committed before the lock */
		pushed = lock_entity(stream, type, key);
		check_version(name, type, key, expected);
	}
	ds_jsonb_root_value(PG_GETARG_JSONB_P(2), &value);
	put_event(type, key, &value, &elem);
	ds_apply_batch(name, NULL, &elem, NULL, 1, NULL, 0, &applied, &skipped, &tail);
	if (pushed)
		PopActiveSnapshot();

	if (!PG_ARGISNULL(3))
	{
		Datum		expires = DirectFunctionCall2(timestamptz_pl_interval,
												  TimestampTzGetDatum(GetCurrentTimestamp()),
												  PG_GETARG_DATUM(3));

		DirectFunctionCall4(ds_ttl_set, PointerGetDatum(stream), PointerGetDatum(type),
							PointerGetDatum(key), expires);
	}
	PG_RETURN_TEXT_P(cstring_to_text(ds_format_offset(tail)));
}

/*
 * The object cur (NULL: {}) with member set to n, in the current memory
 * context, as a value to push: cur's other members, then member (a
 * duplicate key keeps the last, as in jsonb_in and ||).
 */
static void
with_member(Jsonb *cur, const char *member, Numeric n, JsonbValue *out)
{
	JsonbParseState *st = NULL;
	JsonbValue	v;
	JsonbValue *res;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	if (cur != NULL)
	{
		JsonbIterator *it = JsonbIteratorInit(&cur->root);
		JsonbIteratorToken tok;

		(void) JsonbIteratorNext(&it, &v, true);	/* WJB_BEGIN_OBJECT */
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_END_OBJECT)
			pushJsonbValue(&st, tok, &v);
	}
	ds_push_jsonb_string(&st, WJB_KEY, member, strlen(member));
	v.type = jbvNumeric;
	v.val.numeric = n;
	pushJsonbValue(&st, WJB_VALUE, &v);
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	ds_jsonb_root_value(JsonbValueToJsonb(res), out);
}

/*
 * state.increment(type text, key text, member text, by numeric, stream
 * text) RETURNS numeric: adds by to the numeric member of the entity (an
 * absent entity is {}, an absent or null member 0) under the entity's key
 * lock, as one logged upsert, and returns the new number.  Counters on
 * other keys of the stream go on meanwhile.
 */
PG_FUNCTION_INFO_V1(ds_increment);

Datum
ds_increment(PG_FUNCTION_ARGS)
{
	text	   *type;
	text	   *key;
	text	   *stream;
	char	   *name;
	char	   *member;
	Numeric		by;
	Numeric		n;
	Jsonb	   *cur;
	JsonbValue	m;
	JsonbValue	value;
	JsonbValue	elem;
	int64		applied,
				skipped,
				tail;
	bool		pushed;

	if (PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("member and by must not be null")));
	member = text_to_cstring(PG_GETARG_TEXT_PP(2));
	by = PG_GETARG_NUMERIC(3);
	if (member[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("member must be a non-empty name")));
	entity_args(fcinfo, 4, &type, &key, &stream, &name);

	/* the entity's lock: counters on other keys of the stream go on */
	pushed = lock_entity(stream, type, key);
	cur = ds_entity_get(name, type, key, NULL);
	if (cur != NULL && !JB_ROOT_IS_OBJECT(cur))
	{
		JsonbValue	root;

		ds_jsonb_root_value(cur, &root);
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot increment \"%s\" of \"%s\" of type \"%s\": the value is %s, not an object",
						member, text_to_cstring(key), text_to_cstring(type),
						ds_json_type_name(ds_json_type(&root)))));
	}
	if (cur == NULL ||
		!getKeyJsonValueFromContainer(&cur->root, member, strlen(member), &m) ||
		m.type == jbvNull)
		n = by;
	else if (m.type == jbvNumeric)
		n = DatumGetNumeric(DirectFunctionCall2(numeric_add, NumericGetDatum(m.val.numeric),
												NumericGetDatum(by)));
	else
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot increment \"%s\" of \"%s\" of type \"%s\": it is %s, not a number",
						member, text_to_cstring(key), text_to_cstring(type),
						ds_json_type_name(ds_json_type(&m)))));

	with_member(cur, member, n, &value);
	put_event(type, key, &value, &elem);
	ds_apply_batch(name, NULL, &elem, NULL, 1, NULL, 0, &applied, &skipped, &tail);
	if (pushed)
		PopActiveSnapshot();
	PG_RETURN_NUMERIC(n);
}

/*
 * state.remove(type text, key text, stream text) RETURNS boolean: deletes
 * the entity as one logged delete event and returns true, or returns false
 * (writing nothing) if the caller sees no such entity.  Under the entity's
 * key lock and, in READ COMMITTED, a snapshot taken after it, so that of
 * two concurrent removes of one entity exactly one returns true, and a
 * strict collection never meets a delete of a missing key.
 */
PG_FUNCTION_INFO_V1(ds_remove);

Datum
ds_remove(PG_FUNCTION_ARGS)
{
	text	   *type;
	text	   *key;
	text	   *stream;
	char	   *name;
	JsonbValue	elem;
	int64		applied,
				skipped,
				tail;
	bool		pushed;
	bool		present;

	/* a null key names no entity (as state.get) */
	if (PG_ARGISNULL(1) && !PG_ARGISNULL(0) && !PG_ARGISNULL(2))
		PG_RETURN_BOOL(false);
	entity_args(fcinfo, 2, &type, &key, &stream, &name);
	pushed = lock_entity(stream, type, key);
	present = ds_entity_get(name, type, key, NULL) != NULL;
	if (present)
	{
		put_event(type, key, NULL, &elem);
		ds_apply_batch(name, NULL, &elem, NULL, 1, NULL, 0, &applied, &skipped, &tail);
	}
	if (pushed)
		PopActiveSnapshot();
	PG_RETURN_BOOL(present);
}
