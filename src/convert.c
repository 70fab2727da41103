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

/* Text of a JSON scalar, as its input function should see it. */
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

static void
type_mismatch(DsColumn *col, JsonbValue *v, const char *want)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("member \"%s\" must be %s, not %s", col->name, want, ds_json_kind(v)),
			 errdetail("Column \"%s\" has type %s.", col->name, format_type_be(col->typid)),
			 v->type == jbvBinary ?
			 errhint("Objects and arrays are stored in json or jsonb columns.") : 0));
}

/* A JSON number as an integer, if it is one (1.0 is; 1.5 is not). */
static Datum
numeric_to_integer(DsColumn *col, JsonbValue *v, PGFunction conv)
{
	Datum		n = NumericGetDatum(v->val.numeric);
	Datum		t = DirectFunctionCall2(numeric_trunc, n, Int32GetDatum(0));

	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, n, t)))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("member \"%s\" must be an integer, not %s", col->name,
						DatumGetCString(DirectFunctionCall1(numeric_out, n))),
				 errdetail("Column \"%s\" has type %s.", col->name, format_type_be(col->typid))));
	return DirectFunctionCall1(conv, n);
}

/*
 * Converts a JSON member value to a datum for col.  JSON null is SQL NULL.
 * The JSON type must fit the column's type category: strings for string
 * types, numbers for numeric types, booleans for boolean; json and jsonb
 * take anything; every other type (timestamps, uuid, enums, domains over
 * them...) takes a string through its input function.
 */
static Datum json_to_base_datum(DsColumn *col, JsonbValue *v);

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

/* Converts a non-null JSON value to a datum of the column's base type. */
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

/* Pushes one column value as a JSON value. */
static void
push_datum(JsonbParseState **state, DsColumn *col, Datum d)
{
	JsonbValue	jv;
	char		buf[MAXDATELEN + 1];

	switch (col->typid)
	{
		case JSONBOID:
			{
				Jsonb	   *jb = DatumGetJsonbP(d);

				if (JB_ROOT_IS_SCALAR(jb))
				{
					JsonbExtractScalar(&jb->root, &jv);
					pushJsonbValue(state, WJB_VALUE, &jv);
				}
				else
				{
					jv.type = jbvBinary;
					jv.val.binary.data = &jb->root;
					jv.val.binary.len = VARSIZE(jb) - VARHDRSZ;
					pushJsonbValue(state, WJB_VALUE, &jv);
				}
				return;
			}
		case JSONOID:
			{
				char	   *txt = TextDatumGetCString(d);
				Jsonb	   *jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(txt)));

				push_datum(state, &(DsColumn)
						   {
						   .typid = JSONBOID
						   }, JsonbPGetDatum(jb));
				return;
			}
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			{
				text	   *t = DatumGetTextPP(d);

				jv.type = jbvString;
				jv.val.string.val = VARDATA_ANY(t);
				jv.val.string.len = VARSIZE_ANY_EXHDR(t);
				break;
			}
		case BOOLOID:
			jv.type = jbvBool;
			jv.val.boolean = DatumGetBool(d);
			break;
		case INT2OID:
			jv.type = jbvNumeric;
			jv.val.numeric = int64_to_numeric(DatumGetInt16(d));
			break;
		case INT4OID:
			jv.type = jbvNumeric;
			jv.val.numeric = int64_to_numeric(DatumGetInt32(d));
			break;
		case INT8OID:
			jv.type = jbvNumeric;
			jv.val.numeric = int64_to_numeric(DatumGetInt64(d));
			break;
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
			{
				Numeric		n;

				if (col->typid == NUMERICOID)
					n = DatumGetNumeric(d);
				else if (col->typid == FLOAT4OID)
					n = DatumGetNumeric(DirectFunctionCall1(float4_numeric, d));
				else
					n = DatumGetNumeric(DirectFunctionCall1(float8_numeric, d));
				if (numeric_is_nan(n) || numeric_is_inf(n))
				{
					/* JSON has no NaN or Infinity: keep the text */
					char	   *s = OutputFunctionCall(&col->outfunc, d);

					jv.type = jbvString;
					jv.val.string.val = s;
					jv.val.string.len = strlen(s);
				}
				else
				{
					jv.type = jbvNumeric;
					jv.val.numeric = n;
				}
				break;
			}
		case DATEOID:
		case TIMEOID:
		case TIMETZOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			{
				char	   *s = pstrdup(JsonEncodeDateTime(buf, d, col->typid, NULL));

				jv.type = jbvString;
				jv.val.string.val = s;
				jv.val.string.len = strlen(s);
				break;
			}
		default:
			{
				char	   *s = OutputFunctionCall(&col->outfunc, d);

				jv.type = jbvString;
				jv.val.string.val = s;
				jv.val.string.len = strlen(s);
				break;
			}
	}
	pushJsonbValue(state, WJB_VALUE, &jv);
}

/*
 * A typed row as a JSON object: one member per non-null column.  (SQL NULL
 * and an absent member are the same thing in a typed table.)
 */
Jsonb *
ds_row_to_jsonb(DsRelInfo *ri, TupleTableSlot *slot)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;

	slot_getallattrs(slot);
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < ri->nsorted; i++)
	{
		DsColumn   *col = ri->sorted[i];
		JsonbValue	k;

		if (slot->tts_isnull[col->attnum - 1])
			continue;
		k.type = jbvString;
		k.val.string.val = (char *) col->name;
		k.val.string.len = col->name_len;
		pushJsonbValue(&state, WJB_KEY, &k);
		push_datum(&state, col, slot->tts_values[col->attnum - 1]);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}

/* The entity value stored in a slot of a collection's table. */
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

/* Does JSON value a equal jsonb b? */
bool
ds_jsonb_value_equals(JsonbValue *a, Jsonb *b)
{
	Jsonb	   *ja = JsonbValueToJsonb(a);

	return compareJsonbContainers(&ja->root, &b->root) == 0;
}
