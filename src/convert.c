/*
 * convert.c
 *		JSON values to column datums and rows back to JSON.
 *
 * Common types take a direct path (text, numbers, booleans, jsonb); every
 * other type goes through its input function with the JSON scalar's text,
 * so Postgres's own parsing (and its error messages) apply.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "durable_state.h"

/*
 * The text of JSON value v as a type's input function should see it: a
 * string unquoted, a number, boolean or null as JSON writes it, an object or
 * array as JSON text.  Returns a palloc'd string, its length in *len.
 */
char *
ds_jsonb_value_text(JsonbValue *v, int *len)
{
	char	   *s;

	switch (v->type)
	{
		case jbvString:
			*len = v->val.string.len;
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			s = DatumGetCString(DirectFunctionCall1(numeric_out,
													NumericGetDatum(v->val.numeric)));
			break;
		case jbvBool:
			s = pstrdup(v->val.boolean ? "true" : "false");
			break;
		case jbvNull:
			s = pstrdup("null");
			break;
		default:
			{
				Jsonb	   *jb = JsonbValueToJsonb(v);

				s = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
			}
			break;
	}
	*len = strlen(s);
	return s;
}

/*
 * Raises ERRCODE_DATATYPE_MISMATCH: member value v does not have the JSON
 * type want ("a string", "a number", ...) that column col takes.  Does not
 * return.
 */
static void
type_mismatch(DsColumn *col, JsonbValue *v, const char *want)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("member \"%s\" must be %s, not %s", col->name, want, ds_json_kind(v)),
			 errdetail("Column \"%s\" has type %s.", col->name, format_type_be(col->typid)),
			 v->type == jbvBinary ?
			 errhint("Store objects and arrays in a json or jsonb column.") : 0));
}

/*
 * JSON number v converted with conv (numeric_int2, _int4 or _int8) to
 * column col's integer type.  Raises ERRCODE_DATATYPE_MISMATCH if v has a
 * fraction (1.0 is an integer; 1.5 is not), and conv raises
 * ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE if it does not fit.
 */
/*
 * Whether numeric num is an integer of at most 16 digits written in the
 * short format without a display scale (as numeric_in writes JSON's 42 and
 * 1E2, and the text parser its integers): if so, sets *out to it.  The
 * format is the one stored on disk (numeric.c keeps its macros to itself):
 * a 16-bit header, 0x8000 for the short format (0xC000 marks NaN and the
 * infinities), 0x2000 the sign, the display scale in bits 7-12, the weight
 * in the low 6 bits (0x0040 its sign), then base-10000 digits from the most
 * significant.  Anything else is left to numeric.c.
 */
static bool
numeric_small_int(Numeric num, int64 *out)
{
	const char *p = VARDATA_ANY(num);
	int			ndigits = (VARSIZE_ANY_EXHDR(num) - (int) sizeof(uint16)) / (int) sizeof(int16);
	uint16		header;
	int			weight;
	int64		v = 0;

	memcpy(&header, p, sizeof(uint16));
	if ((header & 0xC000) != 0x8000 || (header & 0x1F80) != 0 || (header & 0x0040) != 0)
		return false;
	weight = header & 0x003F;
	if (weight > 3 || ndigits > weight + 1)
		return false;
	for (int i = 0; i <= weight; i++)
	{
		int16		d = 0;

		if (i < ndigits)
			memcpy(&d, p + sizeof(uint16) + i * sizeof(int16), sizeof(int16));
		v = v * 10000 + d;
	}
	*out = (header & 0x2000) ? -v : v;
	return true;
}

static Datum
numeric_to_integer(DsColumn *col, JsonbValue *v, PGFunction conv)
{
	Datum		n = NumericGetDatum(v->val.numeric);
	Datum		t;
	int64		i;

	/* most integers: read off their digits, as numeric_int8/4/2 would give them */
	if (numeric_small_int(v->val.numeric, &i))
	{
		if (conv == numeric_int8)
			return Int64GetDatum(i);
		if (conv == numeric_int4 && i >= PG_INT32_MIN && i <= PG_INT32_MAX)
			return Int32GetDatum((int32) i);
		if (conv == numeric_int2 && i >= PG_INT16_MIN && i <= PG_INT16_MAX)
			return Int16GetDatum((int16) i);
	}
	/* no digits after the point (JSON's 42): an integer, no truncation needed */
	if (!numeric_is_nan(v->val.numeric) && !numeric_is_inf(v->val.numeric) &&
		DatumGetInt32(DirectFunctionCall1(numeric_scale, n)) == 0)
		return DirectFunctionCall1(conv, n);
	t = DirectFunctionCall2(numeric_trunc, n, Int32GetDatum(0));
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, n, t)))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("member \"%s\" must be an integer, not %s", col->name,
						DatumGetCString(DirectFunctionCall1(numeric_out, n))),
				 errdetail("Column \"%s\" has type %s.", col->name, format_type_be(col->typid))));
	return DirectFunctionCall1(conv, n);
}

static Datum json_to_base_datum(DsColumn *col, JsonbValue *v);

/*
 * Converts JSON member value v to a datum for column col, allocated in the
 * current memory context; JSON null is SQL NULL (*isnull).  The JSON type
 * must fit the column's type category: strings for string types, numbers
 * for numeric types, booleans for boolean; json and jsonb take anything;
 * every other type (timestamps, uuid, enums...) takes a string through its
 * input function.  A domain's constraints are checked (its state cached in
 * CacheMemoryContext).  Raises ERRCODE_DATATYPE_MISMATCH on a JSON type
 * that does not fit, and whatever the type's input function or the domain
 * check raises.
 */
Datum
ds_json_to_datum(DsColumn *col, JsonbValue *v, bool *isnull)
{
	Datum		d = (Datum) 0;

	*isnull = (v->type == jbvNull);
	if (!*isnull)
		d = json_to_base_datum(col, v);
	/* a domain: convert as its base type, then check its constraints */
	if (col->basetypid != col->typid)
		domain_check(d, *isnull, col->typid, &col->domain_extra, CacheMemoryContext);
	return d;
}

/*
 * Converts non-null JSON value v to a datum of column col's base type; the
 * errors are those of ds_json_to_datum.
 */
static Datum
json_to_base_datum(DsColumn *col, JsonbValue *v)
{
	char	   *s;
	int			len;

	switch (col->basetypid)
	{
		case JSONBOID:
			return JsonbPGetDatum(JsonbValueToJsonb(v));
		case JSONOID:
			{
				Jsonb	   *jb = JsonbValueToJsonb(v);

				s = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
				return InputFunctionCall(&col->infunc, s, col->ioparam, col->typmod);
			}
		case TEXTOID:
			if (v->type != jbvString)
				type_mismatch(col, v, "a string");
			return PointerGetDatum(cstring_to_text_with_len(v->val.string.val,
															v->val.string.len));
		case NUMERICOID:
			if (v->type != jbvNumeric)
				type_mismatch(col, v, "a number");
			if (col->typmod < 0)
				return NumericGetDatum(v->val.numeric);
			break;
		case INT8OID:
			if (v->type != jbvNumeric)
				type_mismatch(col, v, "a number");
			return numeric_to_integer(col, v, numeric_int8);
		case INT4OID:
			if (v->type != jbvNumeric)
				type_mismatch(col, v, "a number");
			return numeric_to_integer(col, v, numeric_int4);
		case INT2OID:
			if (v->type != jbvNumeric)
				type_mismatch(col, v, "a number");
			return numeric_to_integer(col, v, numeric_int2);
		case FLOAT8OID:
			if (v->type != jbvNumeric)
				type_mismatch(col, v, "a number");
			return DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric));
		case BOOLOID:
			if (v->type != jbvBool)
				type_mismatch(col, v, "a boolean");
			return BoolGetDatum(v->val.boolean);
		default:
			switch (col->typcategory)
			{
				case TYPCATEGORY_STRING:
					if (v->type != jbvString)
						type_mismatch(col, v, "a string");
					break;
				case TYPCATEGORY_NUMERIC:
					if (v->type != jbvNumeric)
						type_mismatch(col, v, "a number");
					break;
				case TYPCATEGORY_BOOLEAN:
					if (v->type != jbvBool)
						type_mismatch(col, v, "a boolean");
					break;
				default:
					if (v->type != jbvString)
						type_mismatch(col, v, "a string");
					break;
			}
			break;
	}

	s = ds_jsonb_value_text(v, &len);
	return InputFunctionCall(&col->infunc, s, col->ioparam, col->typmod);
}

/*
 * Fills jv with non-null column value d rendered as a JSON value by col's
 * base type: a string for text and for types without a JSON counterpart, a
 * number for numeric types (NaN and infinities as strings), RFC 3339 text
 * for timestamps.  jsonb objects and arrays come back as jbvBinary.  jv may
 * point into d; anything new is palloc'd in the current memory context.
 */
void
ds_datum_to_jsonbvalue(DsColumn *col, Datum d, JsonbValue *jv)
{
	char		buf[MAXDATELEN + 1];

	switch (col->basetypid)
	{
		case JSONBOID:
			{
				ds_jsonb_root_value(DatumGetJsonbP(d), jv);
				return;
			}
		case JSONOID:
			{
				char	   *txt = TextDatumGetCString(d);
				Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(txt)));

				ds_datum_to_jsonbvalue(&(DsColumn)
									   {
									   .typid = JSONBOID,.basetypid = JSONBOID
									   }, JsonbPGetDatum(jb), jv);
				return;
			}
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			{
				text	   *t = DatumGetTextPP(d);

				jv->type = jbvString;
				jv->val.string.val = VARDATA_ANY(t);
				jv->val.string.len = VARSIZE_ANY_EXHDR(t);
				return;
			}
		case BOOLOID:
			jv->type = jbvBool;
			jv->val.boolean = DatumGetBool(d);
			return;
		case INT2OID:
			jv->type = jbvNumeric;
			jv->val.numeric = int64_to_numeric(DatumGetInt16(d));
			return;
		case INT4OID:
			jv->type = jbvNumeric;
			jv->val.numeric = int64_to_numeric(DatumGetInt32(d));
			return;
		case INT8OID:
			jv->type = jbvNumeric;
			jv->val.numeric = int64_to_numeric(DatumGetInt64(d));
			return;
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
			{
				Numeric		n;

				if (col->basetypid == NUMERICOID)
					n = DatumGetNumeric(d);
				else if (col->basetypid == FLOAT4OID)
					n = DatumGetNumeric(DirectFunctionCall1(float4_numeric, d));
				else
					n = DatumGetNumeric(DirectFunctionCall1(float8_numeric, d));
				if (!numeric_is_nan(n) && !numeric_is_inf(n))
				{
					jv->type = jbvNumeric;
					jv->val.numeric = n;
					return;
				}
				/* JSON has no NaN or Infinity: keep the text */
				break;
			}
		case DATEOID:
		case TIMEOID:
		case TIMETZOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			{
				char	   *s = pstrdup(JsonEncodeDateTime(buf, d, col->basetypid, NULL));

				jv->type = jbvString;
				jv->val.string.val = s;
				jv->val.string.len = strlen(s);
				return;
			}
		default:
			break;
	}
	{
		char	   *s = OutputFunctionCall(&col->outfunc, d);

		jv->type = jbvString;
		jv->val.string.val = s;
		jv->val.string.len = strlen(s);
	}
}

/*
 * Returns true if column value d (converted from member value v) reads back
 * as exactly v.  If not, returns false and sets *canonical to what it reads
 * back as (JSON null for SQL NULL: an absent member).  Text, booleans, JSON
 * and unconstrained numerics always do; integers do unless v had a fraction
 * part (1.0); timestamps, uuids and the like do when v was in their output
 * format.
 */
bool
ds_renders_exactly(DsColumn *col, JsonbValue *v, Datum d, bool isnull,
				   JsonbValue *canonical)
{
	if (isnull)
	{
		canonical->type = jbvNull;
		return false;			/* an explicit null reads back as absent */
	}
	switch (col->basetypid)
	{
		case TEXTOID:
		case BOOLOID:
		case JSONBOID:
		case JSONOID:
			return true;
		case NUMERICOID:
			if (col->typmod < 0)
				return true;
			break;
		default:
			break;
	}
	ds_datum_to_jsonbvalue(col, d, canonical);
	return ds_scalar_equals(v, canonical);
}

/* Pushes non-null column value d onto state as an object member's value. */
static void
push_datum(JsonbParseState **state, DsColumn *col, Datum d)
{
	JsonbValue	jv;

	ds_datum_to_jsonbvalue(col, d, &jv);
	pushJsonbValue(state, WJB_VALUE, &jv);
}

/*
 * Looks up member name (len bytes) of object container c, which may be NULL.
 * If found, fills *out and returns true; returns false otherwise.
 */
static bool
container_member(JsonbContainer *c, const char *name, int len, JsonbValue *out)
{
	return c != NULL && getKeyJsonValueFromContainer(c, name, len, out) != NULL;
}

/*
 * Sets *exact and *members to the "exact" and "members" objects of the
 * extra column of the row in slot (whose attributes the caller has
 * deformed), each NULL when the collection has no extra column, it is null,
 * or it lacks that object.
 */
static void
extra_parts(DsRelInfo *ri, TupleTableSlot *slot, JsonbContainer **exact,
			JsonbContainer **members)
{
	JsonbValue	jv;
	Jsonb	   *extra;

	*exact = *members = NULL;
	if (ri->extracol == NULL || slot->tts_isnull[ri->extracol->attnum - 1])
		return;
	extra = DatumGetJsonbP(slot->tts_values[ri->extracol->attnum - 1]);
	if (!JB_ROOT_IS_OBJECT(extra))
		return;
	if (container_member(&extra->root, "exact", 5, &jv) && jv.type == jbvBinary &&
		JsonContainerIsObject(jv.val.binary.data))
		*exact = jv.val.binary.data;
	if (container_member(&extra->root, "members", 7, &jv) && jv.type == jbvBinary &&
		JsonContainerIsObject(jv.val.binary.data))
		*members = jv.val.binary.data;
}

/*
 * Looks up member name (len bytes) among the members without a column of
 * their own that the row in slot keeps in its extra column's "members".
 * If found, fills *out (pointing into the slot's tuple) and returns true;
 * returns false otherwise.
 */
bool
ds_stored_extra_member(DsRelInfo *ri, TupleTableSlot *slot, const char *name,
					   int len, JsonbValue *out)
{
	JsonbContainer *exact,
			   *members;

	slot_getallattrs(slot);
	extra_parts(ri, slot, &exact, &members);
	return container_member(members, name, len, out);
}

/*
 * The row in slot as a jsonb object, palloc'd in the current memory
 * context: one member per non-null column (in jsonb key order), plus what
 * the extra column keeps: members without a column, and the exact JSON of
 * members a column would re-render ("2024-01-01T00:00:00Z" in a timestamptz
 * column, 1.0 in a bigint, an explicit null) as long as the column still
 * holds what was applied (an UPDATE behind the collection's back wins).
 */
Jsonb *
ds_row_to_jsonb(DsRelInfo *ri, TupleTableSlot *slot)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;
	JsonbContainer *exact,
			   *members;

	slot_getallattrs(slot);
	extra_parts(ri, slot, &exact, &members);
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < ri->nsorted; i++)
	{
		DsColumn   *col = ri->sorted[i];
		bool		isnull = slot->tts_isnull[col->attnum - 1];
		Datum		d = slot->tts_values[col->attnum - 1];
		JsonbValue	pair;

		if (container_member(exact, col->name, col->name_len, &pair) &&
			pair.type == jbvBinary && JsonContainerIsArray(pair.val.binary.data) &&
			JsonContainerSize(pair.val.binary.data) == 2)
		{
			JsonbValue *orig = getIthJsonbValueFromContainer(pair.val.binary.data, 0);
			JsonbValue *canon = getIthJsonbValueFromContainer(pair.val.binary.data, 1);
			JsonbValue	cur;

			if (isnull)
				cur.type = jbvNull;
			else
				ds_datum_to_jsonbvalue(col, d, &cur);
			if (ds_scalar_equals(&cur, canon))
			{
				ds_push_jsonb_string(&state, WJB_KEY, col->name, col->name_len);
				pushJsonbValue(&state, WJB_VALUE, orig);
				continue;
			}
		}
		if (isnull)
			continue;
		ds_push_jsonb_string(&state, WJB_KEY, col->name, col->name_len);
		push_datum(&state, col, d);
	}
	if (members)
	{
		JsonbIterator *it = JsonbIteratorInit(members);
		JsonbValue	k,
					v;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			if (tok != WJB_KEY)
				continue;
			tok = JsonbIteratorNext(&it, &v, true);
			/* a column added since wins over a member kept before */
			if (ds_relinfo_column(ri, k.val.string.val, k.val.string.len))
				continue;
			pushJsonbValue(&state, WJB_KEY, &k);
			pushJsonbValue(&state, WJB_VALUE, &v);
		}
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}

/*
 * The entity value of the row in slot of collection coll's table: a
 * document collection's "value" column (NULL if null, detoasted but not
 * copied), or the row as a JSON object (ds_row_to_jsonb).
 */
Jsonb *
ds_slot_value(DsRelInfo *ri, DsCollection *coll, TupleTableSlot *slot)
{
	if (coll->kind == DS_KIND_DOCUMENT)
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, ri->valuecol->attnum, &isnull);

		if (isnull)
			return NULL;
		return DatumGetJsonbP(d);
	}
	return ds_row_to_jsonb(ri, slot);
}

/* Returns true if JSON value a equals jsonb b, as jsonb compares them. */
bool
ds_jsonb_value_equals(JsonbValue *a, Jsonb *b)
{
	Jsonb	   *ja = JsonbValueToJsonb(a);

	return compareJsonbContainers(&ja->root, &b->root) == 0;
}
