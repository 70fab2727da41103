/*
 * value.c
 *		Expanded JSON values for the JSON Schema validator: expansion of
 *		jsonb into in-memory trees, member lookup, and the numeric and
 *		equality comparisons that JSON Schema defines on them.
 *
 * Both schemas and the values validated against them are expanded once, so
 * that objects and arrays can be indexed cheaply and repeatedly.  Strings
 * and numbers still point into the jsonb they came from: the tree is valid
 * as long as that is.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "jsonschema_int.h"

/*
 * Expand the value the iterator just returned (tok, v) into *out,
 * consuming the iterator up to the end of that value if it is a container.
 */
static void
expand_from_iter(JsonbIterator **it, JsonbIteratorToken tok, JsonbValue *v,
				 JsonbValue *out)
{
	JsonbValue	tmp;

	if (tok == WJB_BEGIN_ARRAY)
	{
		int			n = v->val.array.nElems;
		bool		raw_scalar = v->val.array.rawScalar;
		JsonbValue *elems = palloc(sizeof(JsonbValue) * Max(n, 1));
		int			i = 0;

		while ((tok = JsonbIteratorNext(it, &tmp, false)) != WJB_END_ARRAY)
		{
			Assert(i < Max(n, 1));
			expand_from_iter(it, tok, &tmp, &elems[i++]);
		}
		if (raw_scalar)
			*out = elems[0];
		else
		{
			out->type = jbvArray;
			out->val.array.nElems = i;
			out->val.array.elems = elems;
			out->val.array.rawScalar = false;
		}
	}
	else if (tok == WJB_BEGIN_OBJECT)
	{
		int			n = v->val.object.nPairs;
		JsonbPair  *pairs = palloc(sizeof(JsonbPair) * Max(n, 1));
		int			i = 0;

		while ((tok = JsonbIteratorNext(it, &tmp, false)) != WJB_END_OBJECT)
		{
			Assert(tok == WJB_KEY);
			pairs[i].key = tmp;
			pairs[i].order = i;
			tok = JsonbIteratorNext(it, &tmp, false);
			expand_from_iter(it, tok, &tmp, &pairs[i].value);
			i++;
		}
		out->type = jbvObject;
		out->val.object.nPairs = i;
		out->val.object.pairs = pairs;
	}
	else
		*out = *v;
}

/* Expand a container into an in-memory tree (strings still point into it). */
JsonbValue *
js_expand_container(JsonbContainer *c)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	v;
	JsonbValue *out = palloc(sizeof(JsonbValue));
	JsonbIteratorToken tok;

	tok = JsonbIteratorNext(&it, &v, false);
	expand_from_iter(&it, tok, &v, out);
	return out;
}

/*
 * Expand any JsonbValue (a binary container, an in-memory array or object
 * that may hold binary containers, or a scalar) into a tree without
 * binary containers.  A scalar is returned as is.
 */
JsonbValue *
js_expand_value(JsonbValue *v)
{
	if (v->type == jbvBinary)
		return js_expand_container(v->val.binary.data);
	if (v->type == jbvArray)
	{
		JsonbValue *out = palloc(sizeof(JsonbValue));
		int			i;

		*out = *v;
		out->val.array.elems = palloc(sizeof(JsonbValue) * Max(v->val.array.nElems, 1));
		for (i = 0; i < v->val.array.nElems; i++)
			out->val.array.elems[i] = *js_expand_value(&v->val.array.elems[i]);
		return out;
	}
	if (v->type == jbvObject)
	{
		JsonbValue *out = palloc(sizeof(JsonbValue));
		int			i;

		*out = *v;
		out->val.object.pairs = palloc(sizeof(JsonbPair) * Max(v->val.object.nPairs, 1));
		for (i = 0; i < v->val.object.nPairs; i++)
		{
			out->val.object.pairs[i] = v->val.object.pairs[i];
			out->val.object.pairs[i].value = *js_expand_value(&v->val.object.pairs[i].value);
		}
		return out;
	}
	return v;
}

/*
 * The value of obj's member named key, or NULL if obj has no such member or
 * is not an object.  A linear scan: schemas are small and read once.
 */
JsonbValue *
js_member(JsonbValue *obj, const char *key)
{
	int			len = strlen(key);
	int			i;

	if (obj->type != jbvObject)
		return NULL;
	for (i = 0; i < obj->val.object.nPairs; i++)
	{
		JsonbValue *k = &obj->val.object.pairs[i].key;

		if (k->val.string.len == len && memcmp(k->val.string.val, key, len) == 0)
			return &obj->val.object.pairs[i].value;
	}
	return NULL;
}

/* numeric_cmp without the fmgr boilerplate at the call sites */
int
js_num_cmp(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
											 NumericGetDatum(a),
											 NumericGetDatum(b)));
}

/* -1, 0 or 1 as n is negative, zero or positive */
int
js_num_sign(Numeric n)
{
	static Numeric zero = NULL;

	if (zero == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		zero = int64_to_numeric(0);
		MemoryContextSwitchTo(old);
	}
	return js_num_cmp(n, zero);
}

/* Is n a whole number (1.0 is, as JSON Schema counts integers)? */
bool
js_num_is_integral(Numeric n)
{
	Numeric		f;

	/* no digits after the point (the usual case): no arithmetic needed */
	if (!numeric_is_nan(n) && !numeric_is_inf(n) &&
		DatumGetInt32(DirectFunctionCall1(numeric_scale, NumericGetDatum(n))) == 0)
		return true;
	f = DatumGetNumeric(DirectFunctionCall1(numeric_floor,
														NumericGetDatum(n)));

	return js_num_cmp(n, f) == 0;
}

/*
 * JSON Schema's equality: numbers by value (1.0 equals 1), arrays item by
 * item, objects member by member regardless of order, other scalars as
 * ds_scalar_equals compares them.
 */
bool
js_json_equal(JsonbValue *a, JsonbValue *b)
{
	int			i;

	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvNumeric:
			return js_num_cmp(a->val.numeric, b->val.numeric) == 0;
		case jbvArray:
			if (a->val.array.nElems != b->val.array.nElems)
				return false;
			for (i = 0; i < a->val.array.nElems; i++)
				if (!js_json_equal(&a->val.array.elems[i], &b->val.array.elems[i]))
					return false;
			return true;
		case jbvObject:
			if (a->val.object.nPairs != b->val.object.nPairs)
				return false;
			for (i = 0; i < a->val.object.nPairs; i++)
			{
				JsonbPair  *pa = &a->val.object.pairs[i];
				JsonbPair  *pb = NULL;
				int			j;

				/* both come from jsonb, so the same index is the likely match */
				if (ds_jsonb_key_cmp(pa->key.val.string.val, pa->key.val.string.len,
							b->val.object.pairs[i].key.val.string.val,
							b->val.object.pairs[i].key.val.string.len) == 0)
					pb = &b->val.object.pairs[i];
				else
					for (j = 0; j < b->val.object.nPairs; j++)
						if (ds_jsonb_key_cmp(pa->key.val.string.val, pa->key.val.string.len,
									b->val.object.pairs[j].key.val.string.val,
									b->val.object.pairs[j].key.val.string.len) == 0)
						{
							pb = &b->val.object.pairs[j];
							break;
						}
				if (pb == NULL || !js_json_equal(&pa->value, &pb->value))
					return false;
			}
			return true;
		default:
			return ds_scalar_equals(a, b);
	}
}
