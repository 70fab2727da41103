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

static void expand_into(JsonbContainer *c, JsonbValue *out, bool scratch);

/*
 * Scratch space for the values being validated (js_expand_scratch): the
 * expanded tree of a small value fits, and taking it costs less than
 * pallocs and the reset of a context that they would need.  What does not
 * fit is palloc'd.
 */
#define JS_SCRATCH_SIZE 32768
static char *scratch_buf = NULL;
static Size scratch_used = 0;

/* size bytes from the scratch space when scratch and it fits, else palloc */
static inline void *
expand_alloc(Size size, bool scratch)
{
	size = MAXALIGN(size);
	if (scratch && scratch_used + size <= JS_SCRATCH_SIZE)
	{
		void	   *p = scratch_buf + scratch_used;

		scratch_used += size;
		return p;
	}
	return palloc(size);
}

/*
 * Fill *out with the value of a container entry whose data is at base +
 * start up to base + end, expanding a nested container.
 */
static inline void
expand_entry(JEntry entry, const char *base, uint32 start, uint32 end,
			 JsonbValue *out, bool scratch)
{
	ds_jsonb_entry_value(entry, base, start, end, out);
	if (out->type == jbvBinary)
		expand_into(out->val.binary.data, out, scratch);
}

/*
 * Expand container c into *out, reading its entries directly (one pass,
 * one allocation per container): the validator expands every value it
 * checks, and JsonbIterator costs several times more.  Members come out
 * in jsonb's key order, as the iterator returns them.
 */
static void
expand_into(JsonbContainer *c, JsonbValue *out, bool scratch)
{
	uint32		n = c->header & JB_CMASK;
	JEntry	   *children = c->children;
	uint32		offset = 0;
	uint32		i;

	if (c->header & JB_FOBJECT)
	{
		JsonbPair  *pairs = expand_alloc(sizeof(JsonbPair) * Max(n, 1), scratch);
		const char *base = (const char *) &children[n * 2];

		/* keys first, then values: one running offset over both */
		for (i = 0; i < n; i++)
		{
			uint32		start = offset;

			JBE_ADVANCE_OFFSET(offset, children[i]);
			pairs[i].key.type = jbvString;
			pairs[i].key.val.string.val = (char *) base + start;
			pairs[i].key.val.string.len = offset - start;
			pairs[i].order = i;
		}
		for (i = 0; i < n; i++)
		{
			uint32		start = offset;

			JBE_ADVANCE_OFFSET(offset, children[n + i]);
			expand_entry(children[n + i], base, start, offset, &pairs[i].value, scratch);
		}
		out->type = jbvObject;
		out->val.object.nPairs = n;
		out->val.object.pairs = pairs;
	}
	else
	{
		JsonbValue *elems = expand_alloc(sizeof(JsonbValue) * Max(n, 1), scratch);
		const char *base = (const char *) &children[n];

		for (i = 0; i < n; i++)
		{
			uint32		start = offset;

			JBE_ADVANCE_OFFSET(offset, children[i]);
			expand_entry(children[i], base, start, offset, &elems[i], scratch);
		}
		if ((c->header & JB_FSCALAR) && n == 1)
		{
			*out = elems[0];
			return;
		}
		out->type = jbvArray;
		out->val.array.nElems = n;
		out->val.array.elems = elems;
		out->val.array.rawScalar = false;
	}
}

/* Expand a container into an in-memory tree (strings still point into it). */
JsonbValue *
js_expand_container(JsonbContainer *c)
{
	JsonbValue *out = palloc(sizeof(JsonbValue));

	expand_into(c, out, false);
	return out;
}

/*
 * js_expand_value for the value being validated: a jsonb container is
 * expanded into the scratch space, valid until the next call (validation
 * never nests).
 */
JsonbValue *
js_expand_scratch(JsonbValue *v)
{
	JsonbValue *out;

	if (v->type != jbvBinary)
		return js_expand_value(v);
	if (scratch_buf == NULL)
		scratch_buf = MemoryContextAlloc(TopMemoryContext, JS_SCRATCH_SIZE);
	scratch_used = 0;
	out = expand_alloc(sizeof(JsonbValue), true);
	expand_into(v->val.binary.data, out, true);
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

/* (js_num_view and the layout it reads are in jsonschema_int.h) */

/* numeric_cmp of two finite numbers read by js_num_view */
int
js_num_view_cmp(const JsNumView *a, const JsNumView *b)
{
	int			c = 0;
	int			i;

	if (a->sign != b->sign)
		return a->sign < b->sign ? -1 : 1;
	if (a->sign == 0)
		return 0;
	if (a->weight != b->weight)
		c = a->weight > b->weight ? 1 : -1;
	else
		for (i = 0; i < Max(a->ndigits, b->ndigits) && c == 0; i++)
		{
			int			da = i < a->ndigits ? a->digits[i] : 0;
			int			db = i < b->ndigits ? b->digits[i] : 0;

			if (da != db)
				c = da > db ? 1 : -1;
		}
	return a->sign > 0 ? c : -c;
}

/* numeric_cmp without the fmgr boilerplate at the call sites */
int
js_num_cmp(Numeric a, Numeric b)
{
	JsNumView	va,
				vb;

	if (js_num_view(a, &va) && js_num_view(b, &vb))
		return js_num_view_cmp(&va, &vb);
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
											 NumericGetDatum(a),
											 NumericGetDatum(b)));
}

/* -1, 0 or 1 as n is negative, zero or positive */
int
js_num_sign(Numeric n)
{
	static Numeric zero = NULL;
	JsNumView	v;

	if (js_num_view(n, &v))
		return v.sign;

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
	JsNumView	v;

	/* no digit after the units digit: a whole number */
	if (js_num_view(n, &v))
		return v.ndigits <= v.weight + 1;
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
