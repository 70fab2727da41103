/*
 * validate.c
 *		The JSON Schema evaluator: validation of a value against a compiled
 *		schema (ds_schema_validate).
 *
 * When only validity is asked, inplace.c answers for most schemas without
 * expanding anything (ds_schema_validate tries it first).  Here the value
 * is expanded into an in-memory tree and the compiled graph is walked:
 * eval_node evaluates a node's keywords in order, eval_kw dispatches one
 * keyword, and every keyword too large for the switch has
 * its own eval_* function (the shape of PostgreSQL's execExprInterp.c).
 * Annotations needed by unevaluatedProperties/Items are collected only
 * when the schema uses those keywords.
 *
 * All memory of a validation is in a scratch context reset at the next
 * call; only the errors reported go to the caller's context.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "jsonschema_int.h"

/*
 * Annotations: which members and items of the current instance the
 * keywords evaluated so far (successfully) have evaluated, for
 * unevaluatedProperties and unevaluatedItems.
 */
typedef struct JsAnn
{
	Bitmapset  *props;			/* indexes of evaluated object members */
	bool		all_props;
	int			items_upto;		/* items [0, items_upto) evaluated */
	bool		all_items;
	Bitmapset  *items;			/* other evaluated item indexes */
} JsAnn;

/* one step of the JSON Pointer to the instance being validated */
typedef struct JsPathSeg
{
	const char *key;			/* NULL: array index */
	int			keylen;
	int			index;
} JsPathSeg;

/* a reference being followed: the same one on the same instance loops */
typedef struct JsRefFrame
{
	JsNode	   *node;
	JsonbValue *inst;
} JsRefFrame;

/* the state of one ds_schema_validate call, all in its scratch context */
typedef struct JsCtx
{
	JsonSchema *schema;
	bool		assert_formats;
	bool		collect;		/* collect annotations */
	List	  **errors;			/* NULL: stop at first failure */
	MemoryContext result_cxt;
	JsPathSeg  *path;
	int			depth;
	int			path_cap;
	JsResource **scope;			/* dynamic scope */
	int			nscope;
	int			scope_cap;
	JsRefFrame *refs;			/* active references, for loop detection */
	int			nrefs;
	int			refs_cap;
	int			nest;			/* eval_node calls in progress */
	JsResource *scope_buf[8];	/* the first entries of scope */
	/* the last "properties" run to the end: how many members it named */
	JsProp	   *props_seen;
	JsonbValue *props_seen_inst;
	int			props_matched;
} JsCtx;

static bool eval_node(JsCtx *ctx, JsNode *node, JsonbValue *inst, JsAnn *ann);

/* Add the annotations of src (if any) to dst (if any). */
static void
ann_merge(JsAnn *dst, JsAnn *src)
{
	if (dst == NULL || src == NULL)
		return;
	dst->props = bms_add_members(dst->props, src->props);
	dst->all_props |= src->all_props;
	dst->items_upto = Max(dst->items_upto, src->items_upto);
	dst->all_items |= src->all_items;
	dst->items = bms_add_members(dst->items, src->items);
}

/*
 * Descend into member key (keylen bytes) or, when key is NULL, item index
 * of the instance; the caller pops with ctx->depth--.
 */
static void
path_push(JsCtx *ctx, const char *key, int keylen, int index)
{
	if (ctx->depth >= ctx->path_cap)
	{
		ctx->path_cap = ctx->path_cap ? ctx->path_cap * 2 : 16;
		ctx->path = ctx->path ? repalloc(ctx->path, sizeof(JsPathSeg) * ctx->path_cap)
			: palloc(sizeof(JsPathSeg) * ctx->path_cap);
	}
	ctx->path[ctx->depth].key = key;
	ctx->path[ctx->depth].keylen = keylen;
	ctx->path[ctx->depth].index = index;
	ctx->depth++;
}

/* The JSON Pointer (RFC 6901) of the current instance, palloc'd. */
static char *
path_string(JsCtx *ctx)
{
	StringInfoData s;
	int			i,
				j;

	initStringInfo(&s);
	for (i = 0; i < ctx->depth; i++)
	{
		JsPathSeg  *seg = &ctx->path[i];

		appendStringInfoChar(&s, '/');
		if (seg->key == NULL)
			appendStringInfo(&s, "%d", seg->index);
		else
			for (j = 0; j < seg->keylen; j++)
			{
				if (seg->key[j] == '~')
					appendStringInfoString(&s, "~0");
				else if (seg->key[j] == '/')
					appendStringInfoString(&s, "~1");
				else
					appendStringInfoChar(&s, seg->key[j]);
			}
	}
	return s.data;
}

static void
report(JsCtx *ctx, const char *keyword, const char *fmt,...) pg_attribute_printf(3, 4);

/*
 * Record a failure of keyword at the current instance, with a message
 * formatted from fmt, in the caller's error list; nothing when the caller
 * asked only whether the value is valid.
 */
static void
report(JsCtx *ctx, const char *keyword, const char *fmt,...)
{
	MemoryContext old;
	JsonSchemaError *e;
	StringInfoData msg;

	if (ctx->errors == NULL)
		return;
	old = MemoryContextSwitchTo(ctx->result_cxt);
	initStringInfo(&msg);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&msg, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&msg, needed);
	}
	e = palloc(sizeof(JsonSchemaError));
	e->path = path_string(ctx);
	e->keyword = pstrdup(keyword);
	e->message = msg.data;
	*ctx->errors = lappend(*ctx->errors, e);
	MemoryContextSwitchTo(old);
}

/*
 * Evaluate node without reporting errors: for a branch that may
 * legitimately fail (anyOf, not, if, contains...).
 */
static bool
eval_quiet(JsCtx *ctx, JsNode *node, JsonbValue *inst, JsAnn *ann)
{
	List	  **save = ctx->errors;
	bool		r;

	ctx->errors = NULL;
	r = eval_node(ctx, node, inst, ann);
	ctx->errors = save;
	return r;
}

/*
 * Evaluate the target of a reference on inst.  Following the same
 * reference again on the same instance would recurse forever: raise ERROR
 * instead.
 */
static bool
eval_ref(JsCtx *ctx, JsNode *target, JsonbValue *inst, JsAnn *ann)
{
	int			i;
	bool		r;

	for (i = 0; i < ctx->nrefs; i++)
		if (ctx->refs[i].node == target && ctx->refs[i].inst == inst)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid JSON Schema"),
					 errdetail("The reference to \"#%s\" loops without consuming any input.",
							   target->location)));
	if (ctx->nrefs >= ctx->refs_cap)
	{
		ctx->refs_cap = ctx->refs_cap ? ctx->refs_cap * 2 : 16;
		ctx->refs = ctx->refs ? repalloc(ctx->refs, sizeof(JsRefFrame) * ctx->refs_cap)
			: palloc(sizeof(JsRefFrame) * ctx->refs_cap);
	}
	ctx->refs[ctx->nrefs].node = target;
	ctx->refs[ctx->nrefs].inst = inst;
	ctx->nrefs++;
	r = eval_node(ctx, target, inst, ann);
	ctx->nrefs--;
	return r;
}

/* The length of a string in characters, as maxLength counts. */
static int
json_length(JsonbValue *v)
{
	return pg_mbstrlen_with_len(v->val.string.val, v->val.string.len);
}

/* Is v a number with no fraction ("integer" in JSON Schema)? */
static bool
num_is_integer(JsonbValue *v)
{
	return v->type == jbvNumeric && js_num_is_integral(v->val.numeric);
}

/*
 * Gather node's keywords into a JsLeaf (in the schema's memory) if they
 * are all of the kinds it holds, each at most once; else mark it JS_LEAF_NO.
 */
static void
leaf_prepare(JsCtx *ctx, JsNode *node)
{
	JsLeaf		l = {0, -1, -1, NULL, NULL, NULL, NULL, NULL, NULL, -1, -1};
	uint64		seen = 0;
	int			i;

	node->leaf_state = JS_LEAF_NO;
	if (node->is_bool || !node->compiled)
		return;
	for (i = 0; i < node->nkw; i++)
	{
		JsKw	   *k = &node->kw[i];

		if (seen & (UINT64CONST(1) << k->kind))
			return;
		seen |= UINT64CONST(1) << k->kind;
		switch (k->kind)
		{
			case KW_TYPE:
				if (k->u.types & JS_TYPE_STRICT_INTEGER)
					return;
				l.types = k->u.types;
				break;
			case KW_MAXLENGTH:
				l.maxlen = k->u.count;
				break;
			case KW_MINLENGTH:
				l.minlen = k->u.count;
				break;
			case KW_PATTERN:
				l.re = k->u.re;
				break;
			case KW_FORMAT:
				l.format = k;
				break;
			case KW_MAXIMUM:
				l.max = k->u.num;
				break;
			case KW_EXMAXIMUM:
				l.exmax = k->u.num;
				break;
			case KW_MINIMUM:
				l.min = k->u.num;
				break;
			case KW_EXMINIMUM:
				l.exmin = k->u.num;
				break;
			case KW_MAXITEMS:
				l.maxitems = k->u.count;
				break;
			case KW_MINITEMS:
				l.minitems = k->u.count;
				break;
			default:
				return;
		}
	}
	node->leaf = MemoryContextAlloc(ctx->schema->cxt, sizeof(JsLeaf));
	*node->leaf = l;
	node->leaf_state = JS_LEAF_YES;
}

/*
 * Is inst valid against a leaf node (leaf_prepare)?  The same answers as
 * eval_node's keywords, without reports: only for yes/no validation.
 */
static bool
eval_leaf(JsCtx *ctx, JsLeaf *l, JsonbValue *inst)
{
	uint32		kind = ds_json_type(inst);

	if (l->types != 0 && !(l->types & kind) &&
		!((l->types & DS_JSON_INTEGER) && num_is_integer(inst)))
		return false;
	switch (kind)
	{
		case DS_JSON_STRING:
			return js_string_holds(l->maxlen, l->minlen, l->re, l->format, ctx->assert_formats,
								   pg_database_encoding_max_length(),
								   inst->val.string.val, inst->val.string.len);
		case DS_JSON_NUMBER:
			return (l->max == NULL || js_num_cmp(inst->val.numeric, l->max) <= 0) &&
				(l->exmax == NULL || js_num_cmp(inst->val.numeric, l->exmax) < 0) &&
				(l->min == NULL || js_num_cmp(inst->val.numeric, l->min) >= 0) &&
				(l->exmin == NULL || js_num_cmp(inst->val.numeric, l->exmin) > 0);
		case DS_JSON_ARRAY:
			return (l->maxitems < 0 || inst->val.array.nElems <= l->maxitems) &&
				(l->minitems < 0 || inst->val.array.nElems >= l->minitems);
		default:
			return true;
	}
}

/*
 * Evaluate node on a member (key, keylen) or item (index, key NULL) of the
 * current instance, with the path extended for the errors it reports.
 */
static bool
eval_child(JsCtx *ctx, JsNode *node, JsonbValue *inst, const char *key,
		   int keylen, int index)
{
	bool		r;

	/* fast paths that need no path bookkeeping */
	if (node->is_bool && node->bool_value)
		return true;

	/*
	 * The path only ever goes into reported errors: without any, skip it
	 * (ctx->errors is the same again when eval_node returns)
	 */
	if (ctx->errors == NULL)
	{
		if (node->leaf_state == JS_LEAF_UNKNOWN)
			leaf_prepare(ctx, node);
		if (node->leaf_state == JS_LEAF_YES)
			return eval_leaf(ctx, node->leaf, inst);
		return eval_node(ctx, node, inst, NULL);
	}
	path_push(ctx, key, keylen, index);
	r = eval_node(ctx, node, inst, NULL);
	ctx->depth--;
	return r;
}

/* A type mask for messages: "integer or string". */
static const char *
types_text(uint32 types)
{
	StringInfoData s;
	int			i;

	initStringInfo(&s);
	if (types & DS_JSON_NUMBER)
		types &= ~DS_JSON_INTEGER;
	for (i = 0; i < DS_JSON_NTYPES; i++)
		if (types & (1 << i))
			appendStringInfo(&s, "%s%s", s.len ? " or " : "",
							 ds_json_type_name(1 << i));
	return s.data;
}

/* Does object obj (expanded) have a member named key (keylen bytes)? */
static bool
has_member(JsonbValue *obj, const char *key, int keylen)
{
	int			lo = 0,
				hi = obj->val.object.nPairs - 1;
	JsonbPair  *pairs = obj->val.object.pairs;

	/* expanded objects keep jsonb's sorted key order */
	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int			c = ds_jsonb_key_cmp(key, keylen, pairs[mid].key.val.string.val,
								pairs[mid].key.val.string.len);

		if (c == 0)
			return true;
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return false;
}

/* out of line keyword implementations: each is too large for the switch */

/* "type": inst is one of the types (an integral number is an "integer") */
static bool
eval_type(JsCtx *ctx, JsKw *k, JsonbValue *inst, uint32 kind)
{
	if (k->u.types & kind)
		return true;
	if ((k->u.types & DS_JSON_INTEGER) && kind == DS_JSON_NUMBER && num_is_integer(inst) &&
		(!(k->u.types & JS_TYPE_STRICT_INTEGER) ||
		 DatumGetInt32(DirectFunctionCall1(numeric_scale,
										   NumericGetDatum(inst->val.numeric))) == 0))
		return true;
	report(ctx, k->name, "expected %s, got %s",
		   types_text(k->u.types & ~JS_TYPE_STRICT_INTEGER),
		   ds_json_type_name(kind));
	return false;
}

/* "enum": inst equals one of the values */
static bool
eval_enum(JsCtx *ctx, JsKw *k, JsonbValue *inst)
{
	int			i;

	for (i = 0; i < k->u.vals.n; i++)
		if (js_json_equal(inst, &k->u.vals.vals[i]))
			return true;
	report(ctx, k->name, "value is not one of the allowed values");
	return false;
}

/* "multipleOf": the number inst divided by the argument leaves nothing */
static bool
eval_multiple_of(JsCtx *ctx, JsKw *k, JsonbValue *inst)
{
	Numeric		rem = DatumGetNumeric(DirectFunctionCall2(numeric_mod,
														  NumericGetDatum(inst->val.numeric),
														  NumericGetDatum(k->u.num)));

	if (js_num_sign(rem) == 0)
		return true;
	report(ctx, k->name, "%s is not a multiple of %s",
		   numeric_normalize(inst->val.numeric), numeric_normalize(k->u.num));
	return false;
}

/* "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum" on a number */
static bool
eval_bound(JsCtx *ctx, JsKw *k, JsonbValue *inst)
{
	int			c = js_num_cmp(inst->val.numeric, k->u.num);
	const char *op;

	if (js_bound_holds(k->kind, c))
		return true;
	switch (k->kind)
	{
		case KW_MAXIMUM:
			op = "less than or equal to";
			break;
		case KW_EXMAXIMUM:
			op = "less than";
			break;
		case KW_MINIMUM:
			op = "greater than or equal to";
			break;
		default:
			op = "greater than";
			break;
	}
	report(ctx, k->name, "%s is not %s %s",
		   numeric_normalize(inst->val.numeric), op,
		   numeric_normalize(k->u.num));
	return false;
}

/* "uniqueItems": no two items of the array inst are equal */
static bool
eval_unique_items(JsCtx *ctx, JsKw *k, JsonbValue *inst)
{
	int			n = inst->val.array.nElems;
	int			i,
				j;

	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (js_json_equal(&inst->val.array.elems[i], &inst->val.array.elems[j]))
			{
				report(ctx, k->name, "items %d and %d are equal", i, j);
				return false;
			}
	return true;
}

/* "required": the object inst has every named member */
static bool
eval_required(JsCtx *ctx, JsKw *k, JsonbValue *inst)
{
	bool		ok = true;
	int			i;

	/*
	 * Asked only whether it is valid: one merge of the sorted names with
	 * the members, which are in the same order
	 */
	if (ctx->errors == NULL)
	{
		JsonbPair  *pairs = inst->val.object.pairs;
		int			n = inst->val.object.nPairs;
		int			j = 0;

		for (i = 0; i < k->u.vals.n; i++)
		{
			JsonbValue *name = &k->u.vals.sorted[i];
			int			c = 1;

			while (j < n &&
				   (c = ds_jsonb_key_cmp(name->val.string.val, name->val.string.len,
										 pairs[j].key.val.string.val,
										 pairs[j].key.val.string.len)) > 0)
				j++;
			if (c != 0)
				return false;
		}
		return true;
	}
	for (i = 0; i < k->u.vals.n; i++)
	{
		JsonbValue *name = &k->u.vals.vals[i];

		if (!has_member(inst, name->val.string.val, name->val.string.len))
		{
			report(ctx, k->name, "missing required property \"%.*s\"",
				   name->val.string.len, name->val.string.val);
			ok = false;
			if (ctx->errors == NULL)
				break;
		}
	}
	return ok;
}

/*
 * "dependentRequired" (and draft-07 "dependencies" with names): each member
 * of the object inst that has dependencies brings the named members along.
 */
static bool
eval_dependent_required(JsCtx *ctx, JsKw *k, JsonbValue *inst)
{
	bool		ok = true;
	int			i,
				j;

	for (i = 0; i < k->u.props.n; i++)
	{
		JsProp	   *p = &k->u.props.props[i];

		if (!has_member(inst, p->key, p->keylen))
			continue;
		for (j = 0; j < p->nnames; j++)
			if (!has_member(inst, p->names[j].val.string.val,
							p->names[j].val.string.len))
			{
				report(ctx, k->name,
					   "property \"%.*s\" requires property \"%.*s\"",
					   p->keylen, p->key, p->names[j].val.string.len,
					   p->names[j].val.string.val);
				ok = false;
				if (ctx->errors == NULL)
					return false;
			}
	}
	return ok;
}

/*
 * "$dynamicRef": to a "$dynamicAnchor", the outermost resource in the
 * dynamic scope with an anchor of that name wins over the static target.
 */
static bool
eval_dynamic_ref(JsCtx *ctx, JsKw *k, JsonbValue *inst, JsAnn *ann)
{
	JsNode	   *target = k->u.ref.target;
	int			i;

	if (k->u.ref.anchor)
		for (i = 0; i < ctx->nscope; i++)
		{
			JsAnchor   *a = js_find_anchor(ctx->scope[i], k->u.ref.anchor, true);

			if (a)
			{
				target = a->node;
				break;
			}
		}
	return eval_ref(ctx, target, inst, ann);
}

/*
 * 2019-09's "$recursiveRef": to a root with "$recursiveAnchor": true, the
 * outermost resource in the dynamic scope whose root has one too wins over
 * the static target.
 */
static bool
eval_recursive_ref(JsCtx *ctx, JsKw *k, JsonbValue *inst, JsAnn *ann)
{
	JsNode	   *target = k->u.ref.target;
	int			i;

	if (k->u.ref.recursive)
		for (i = 0; i < ctx->nscope; i++)
			if (ctx->scope[i]->recursive_anchor)
			{
				target = ctx->scope[i]->root;
				break;
			}
	return eval_ref(ctx, target, inst, ann);
}

/* "allOf": inst is valid against every subschema */
static bool
eval_all_of(JsCtx *ctx, JsKw *k, JsonbValue *inst, JsAnn *ann)
{
	bool		ok = true;
	int			i;

	for (i = 0; i < k->u.list.n; i++)
		if (!eval_node(ctx, k->u.list.subs[i], inst, ann))
		{
			ok = false;
			if (ctx->errors == NULL)
				break;
		}
	return ok;
}

/*
 * "anyOf": inst is valid against some subschema.  When annotations are
 * collected every subschema is tried, since each valid one contributes.
 */
static bool
eval_any_of(JsCtx *ctx, JsKw *k, JsonbValue *inst, JsAnn *ann)
{
	bool		ok = false;
	int			i;

	for (i = 0; i < k->u.list.n; i++)
	{
		JsAnn		sub = {0};

		if (eval_quiet(ctx, k->u.list.subs[i], inst, ann ? &sub : NULL))
		{
			ok = true;
			ann_merge(ann, &sub);
			if (!ctx->collect)
				break;
		}
	}
	if (!ok)
		report(ctx, k->name, "value does not match any schema of anyOf");
	return ok;
}

/* "oneOf": inst is valid against exactly one subschema */
static bool
eval_one_of(JsCtx *ctx, JsKw *k, JsonbValue *inst, JsAnn *ann)
{
	int			nvalid = 0;
	int			first = -1;
	int			i;

	for (i = 0; i < k->u.list.n; i++)
	{
		JsAnn		sub = {0};

		if (!eval_quiet(ctx, k->u.list.subs[i], inst, ann ? &sub : NULL))
			continue;
		if (nvalid++ > 0)
		{
			report(ctx, k->name,
				   "value matches schemas %d and %d of oneOf", first, i);
			return false;
		}
		first = i;
		ann_merge(ann, &sub);
	}
	if (nvalid == 1)
		return true;
	report(ctx, k->name, "value does not match any schema of oneOf");
	return false;
}

/* "if": inst must then be valid against "then" if it is, else "else" */
static bool
eval_if(JsCtx *ctx, JsKw *k, JsonbValue *inst, JsAnn *ann)
{
	JsAnn		sub = {0};

	if (eval_quiet(ctx, k->u.cond.ifs, inst, ann ? &sub : NULL))
	{
		ann_merge(ann, &sub);
		return k->u.cond.thens == NULL ||
			eval_node(ctx, k->u.cond.thens, inst, ann);
	}
	return k->u.cond.elses == NULL ||
		eval_node(ctx, k->u.cond.elses, inst, ann);
}

/*
 * "dependentSchemas" (and draft-07 "dependencies" with schemas): the object
 * inst is valid against the schema of each member it has.
 */
static bool
eval_dependent_schemas(JsCtx *ctx, JsKw *k, JsonbValue *inst, JsAnn *ann)
{
	bool		ok = true;
	int			i;

	for (i = 0; i < k->u.props.n; i++)
	{
		JsProp	   *p = &k->u.props.props[i];

		if (has_member(inst, p->key, p->keylen) &&
			!eval_node(ctx, p->node, inst, ann))
		{
			ok = false;
			if (ctx->errors == NULL)
				break;
		}
	}
	return ok;
}

/* "prefixItems": item i of the array inst is valid against subschema i */
static bool
eval_prefix_items(JsCtx *ctx, JsKw *k, JsonbValue *inst, JsAnn *ann)
{
	bool		ok = true;
	int			n = Min(inst->val.array.nElems, k->u.list.n);
	int			i;

	for (i = 0; i < n; i++)
		if (!eval_child(ctx, k->u.list.subs[i], &inst->val.array.elems[i],
						NULL, 0, i))
		{
			ok = false;
			if (ctx->errors == NULL)
				break;
		}
	if (ann)
		ann->items_upto = Max(ann->items_upto, n);
	return ok;
}

/* "items" (or "additionalItems"): the items from start on are valid */
static bool
eval_items(JsCtx *ctx, JsKw *k, JsonbValue *inst, JsAnn *ann)
{
	bool		ok = true;
	int			n = inst->val.array.nElems;
	int			i;

	for (i = k->u.items.start; i < n; i++)
		if (!eval_child(ctx, k->u.items.sub, &inst->val.array.elems[i],
						NULL, 0, i))
		{
			if (ctx->errors == NULL)
				return false;
			ok = false;
		}
	if (ann)
		ann->all_items = true;
	return ok;
}

/*
 * "contains" with "minContains"/"maxContains": the number of items valid
 * against the subschema is within bounds.  Without annotations (or, before
 * 2020-12, when matches are not annotations) or a maximum, counting stops
 * once the minimum is reached.
 */
static bool
eval_contains(JsCtx *ctx, JsKw *k, JsonbValue *inst, JsAnn *ann)
{
	int			matches = 0;
	int			n = inst->val.array.nElems;
	int			i;

	for (i = 0; i < n; i++)
	{
		bool		match;

		path_push(ctx, NULL, 0, i);
		match = eval_quiet(ctx, k->u.contains.sub, &inst->val.array.elems[i], NULL);
		ctx->depth--;
		if (!match)
			continue;
		matches++;
		if (ann && k->u.contains.annotate)
			ann->items = bms_add_member(ann->items, i);
		else if (k->u.contains.max < 0 && matches >= k->u.contains.min)
			break;
	}
	if (matches < k->u.contains.min)
	{
		report(ctx, k->name,
			   "array contains %d matching items, fewer than %lld",
			   matches, (long long) k->u.contains.min);
		return false;
	}
	if (k->u.contains.max >= 0 && matches > k->u.contains.max)
	{
		report(ctx, "maxContains",
			   "array contains %d matching items, more than %lld",
			   matches, (long long) k->u.contains.max);
		return false;
	}
	return true;
}

/*
 * "properties": each member of the object inst that the keyword names is
 * valid against its schema.  Members and names are both in jsonb key
 * order, so one merge pass pairs them.
 */
static bool
eval_properties(JsCtx *ctx, JsKw *k, JsonbValue *inst, JsAnn *ann)
{
	bool		ok = true;
	int			matched = 0;
	int			i,
				j = 0;

	for (i = 0; i < inst->val.object.nPairs; i++)
	{
		JsonbPair  *pair = &inst->val.object.pairs[i];
		int			c = 1;

		while (j < k->u.props.n &&
			   (c = ds_jsonb_key_cmp(pair->key.val.string.val, pair->key.val.string.len,
									 k->u.props.props[j].key,
									 k->u.props.props[j].keylen)) > 0)
			j++;
		if (j >= k->u.props.n || c != 0)
			continue;
		matched++;
		if (ann)
			ann->props = bms_add_member(ann->props, i);
		if (!eval_child(ctx, k->u.props.props[j].node, &pair->value,
						pair->key.val.string.val, pair->key.val.string.len, 0))
		{
			ok = false;
			if (ctx->errors == NULL)
				return false;
		}
	}
	/* for "additionalProperties" next: are there other members at all? */
	ctx->props_seen = k->u.props.props;
	ctx->props_seen_inst = inst;
	ctx->props_matched = matched;
	return ok;
}

/*
 * "patternProperties": each member of the object inst is valid against the
 * schema of every pattern its name matches.
 */
static bool
eval_pattern_properties(JsCtx *ctx, JsKw *k, JsonbValue *inst, JsAnn *ann)
{
	bool		ok = true;
	int			i,
				j;

	for (i = 0; i < inst->val.object.nPairs; i++)
	{
		JsonbPair  *pair = &inst->val.object.pairs[i];

		for (j = 0; j < k->u.pats.n; j++)
		{
			JsPatProp  *pp = &k->u.pats.pats[j];

			if (!js_regex_match(pp->re, pair->key.val.string.val,
								pair->key.val.string.len))
				continue;
			if (ann)
				ann->props = bms_add_member(ann->props, i);
			if (!eval_child(ctx, pp->node, &pair->value,
							pair->key.val.string.val,
							pair->key.val.string.len, 0))
			{
				ok = false;
				if (ctx->errors == NULL)
					return false;
			}
		}
	}
	return ok;
}

/*
 * Evaluate sub, the subschema of keyword k (additionalProperties or an
 * unevaluated* keyword), on the member key or item index of the instance,
 * whose value is v.  A "false" subschema reports that the member or item is
 * not allowed at all, rather than that no value is.
 */
static bool
eval_leftover(JsCtx *ctx, JsKw *k, JsNode *sub, JsonbValue *v,
			  const char *key, int keylen, int index)
{
	if (sub->is_bool && !sub->bool_value)
	{
		path_push(ctx, key, keylen, index);
		report(ctx, k->name, key ? "property is not allowed" : "item is not allowed");
		ctx->depth--;
		return false;
	}
	return eval_child(ctx, sub, v, key, keylen, index);
}

/*
 * "additionalProperties": each member of the object inst that neither
 * "properties" names nor a "patternProperties" pattern matches is valid
 * against the subschema.
 */
static bool
eval_additional_properties(JsCtx *ctx, JsKw *k, JsonbValue *inst, JsAnn *ann)
{
	bool		ok = true;
	int			pj = 0;
	int			i,
				j;

	/*
	 * "properties" (the same names: the same array) just named every
	 * member of this instance, and no pattern is involved: none is left.
	 * The expanded instance does not change during a validation.
	 */
	if (k->u.addl.npats == 0 && k->u.addl.props != NULL &&
		ctx->props_seen == k->u.addl.props && ctx->props_seen_inst == inst &&
		ctx->props_matched == inst->val.object.nPairs)
	{
		if (ann)
			ann->all_props = true;
		return true;
	}
	for (i = 0; i < inst->val.object.nPairs; i++)
	{
		JsonbPair  *pair = &inst->val.object.pairs[i];
		const char *key = pair->key.val.string.val;
		int			keylen = pair->key.val.string.len;
		bool		matched = false;
		int			c = 1;

		/* members and properties are both in jsonb key order */
		while (pj < k->u.addl.nprops &&
			   (c = ds_jsonb_key_cmp(key, keylen, k->u.addl.props[pj].key,
									 k->u.addl.props[pj].keylen)) > 0)
			pj++;
		if (pj < k->u.addl.nprops && c == 0)
			continue;
		for (j = 0; j < k->u.addl.npats && !matched; j++)
			matched = js_regex_match(k->u.addl.pats[j].re, key, keylen);
		if (matched)
			continue;
		if (!eval_leftover(ctx, k, k->u.addl.sub, &pair->value, key, keylen, 0))
		{
			ok = false;
			if (ctx->errors == NULL)
				return false;
		}
	}
	if (ann)
		ann->all_props = true;
	return ok;
}

/* "propertyNames": every member name of the object inst is valid */
static bool
eval_property_names(JsCtx *ctx, JsKw *k, JsonbValue *inst)
{
	bool		ok = true;
	int			i;

	for (i = 0; i < inst->val.object.nPairs; i++)
	{
		JsonbPair  *pair = &inst->val.object.pairs[i];

		if (!eval_quiet(ctx, k->u.sub, &pair->key, NULL))
		{
			path_push(ctx, pair->key.val.string.val,
					  pair->key.val.string.len, 0);
			report(ctx, k->name, "property name does not match propertyNames");
			ctx->depth--;
			ok = false;
			if (ctx->errors == NULL)
				break;
		}
	}
	return ok;
}

/*
 * "unevaluatedItems": the items of the array inst that no keyword before
 * it evaluated (per *ann) are valid against the subschema.
 */
static bool
eval_unevaluated_items(JsCtx *ctx, JsKw *k, JsonbValue *inst, JsAnn *ann)
{
	bool		ok = true;
	int			i;

	if (ann == NULL || !ann->all_items)
		for (i = ann ? ann->items_upto : 0; i < inst->val.array.nElems; i++)
		{
			if (ann && bms_is_member(i, ann->items))
				continue;
			if (!eval_leftover(ctx, k, k->u.sub, &inst->val.array.elems[i], NULL, 0, i))
			{
				ok = false;
				if (ctx->errors == NULL)
					return false;
			}
		}
	if (ann)
		ann->all_items = true;
	return ok;
}

/*
 * "unevaluatedProperties": the members of the object inst that no keyword
 * before it evaluated (per *ann) are valid against the subschema.
 */
static bool
eval_unevaluated_properties(JsCtx *ctx, JsKw *k, JsonbValue *inst, JsAnn *ann)
{
	bool		ok = true;
	int			i;

	if (ann == NULL || !ann->all_props)
		for (i = 0; i < inst->val.object.nPairs; i++)
		{
			JsonbPair  *pair = &inst->val.object.pairs[i];

			if (ann && bms_is_member(i, ann->props))
				continue;
			if (!eval_leftover(ctx, k, k->u.sub, &pair->value,
							   pair->key.val.string.val, pair->key.val.string.len, 0))
			{
				ok = false;
				if (ctx->errors == NULL)
					return false;
			}
		}
	if (ann)
		ann->all_props = true;
	return ok;
}

/*
 * The content keywords on string inst, asserted: its encoding and media
 * type (content.c), then contentSchema on the document it holds.
 */
static bool
eval_content(JsCtx *ctx, JsKw *k, JsonbValue *inst)
{
	Jsonb	   *doc;
	const char *why;

	if (!js_check_content(k->u.content.encoding, k->u.content.media_type,
						  inst->val.string.val, inst->val.string.len,
						  k->u.content.schema ? &doc : NULL, &why))
	{
		report(ctx, k->name, "%s", why);
		return false;
	}
	if (k->u.content.schema == NULL || doc == NULL ||
		eval_quiet(ctx, k->u.content.schema, js_expand_container(&doc->root), NULL))
		return true;
	report(ctx, "contentSchema", "content does not match contentSchema");
	return false;
}

/*
 * Evaluate one keyword on inst, whose type (a DS_JSON_* bit) is kind.
 * Return true if inst satisfies it; keywords about other types than
 * inst's are satisfied.  Failures are reported to ctx; annotations for the
 * unevaluated* keywords are added to *ann when ann is not NULL.
 */
static bool
eval_kw(JsCtx *ctx, JsKw *k, JsonbValue *inst, uint32 kind, JsAnn *ann)
{
	switch (k->kind)
	{
		case KW_TYPE:
			return eval_type(ctx, k, inst, kind);
		case KW_ENUM:
			return eval_enum(ctx, k, inst);
		case KW_CONST:
			if (js_json_equal(inst, k->u.value))
				return true;
			report(ctx, k->name, "value does not equal the constant");
			return false;
		case KW_MULTIPLEOF:
			return kind != DS_JSON_NUMBER || eval_multiple_of(ctx, k, inst);
		case KW_MAXIMUM:
		case KW_EXMAXIMUM:
		case KW_MINIMUM:
		case KW_EXMINIMUM:
			return kind != DS_JSON_NUMBER || eval_bound(ctx, k, inst);
		case KW_MAXLENGTH:
			if (kind != DS_JSON_STRING || inst->val.string.len <= k->u.count ||
				json_length(inst) <= k->u.count)
				return true;
			report(ctx, k->name, "string is longer than %lld characters",
				   (long long) k->u.count);
			return false;
		case KW_MINLENGTH:
			/* a character takes at most max_length bytes */
			if (kind != DS_JSON_STRING ||
				inst->val.string.len >= k->u.count * pg_database_encoding_max_length() ||
				json_length(inst) >= k->u.count)
				return true;
			report(ctx, k->name, "string is shorter than %lld characters",
				   (long long) k->u.count);
			return false;
		case KW_PATTERN:
			if (kind != DS_JSON_STRING ||
				js_regex_match(k->u.re, inst->val.string.val, inst->val.string.len))
				return true;
			report(ctx, k->name, "string does not match pattern \"%s\"", k->u.re->source);
			return false;
		case KW_FORMAT:
			if (!(ctx->assert_formats || k->u.format.assert) || kind != DS_JSON_STRING ||
				js_check_format(k->u.format.name, inst->val.string.val, inst->val.string.len))
				return true;
			report(ctx, k->name, "string is not a valid \"%s\"", k->u.format.name);
			return false;
		case KW_CONTENT:
			return !ctx->assert_formats || kind != DS_JSON_STRING ||
				eval_content(ctx, k, inst);
		case KW_MAXITEMS:
			if (kind != DS_JSON_ARRAY || inst->val.array.nElems <= k->u.count)
				return true;
			report(ctx, k->name, "array has more than %lld items", (long long) k->u.count);
			return false;
		case KW_MINITEMS:
			if (kind != DS_JSON_ARRAY || inst->val.array.nElems >= k->u.count)
				return true;
			report(ctx, k->name, "array has fewer than %lld items", (long long) k->u.count);
			return false;
		case KW_UNIQUEITEMS:
			return kind != DS_JSON_ARRAY || eval_unique_items(ctx, k, inst);
		case KW_MAXPROPS:
			if (kind != DS_JSON_OBJECT || inst->val.object.nPairs <= k->u.count)
				return true;
			report(ctx, k->name, "object has more than %lld properties",
				   (long long) k->u.count);
			return false;
		case KW_MINPROPS:
			if (kind != DS_JSON_OBJECT || inst->val.object.nPairs >= k->u.count)
				return true;
			report(ctx, k->name, "object has fewer than %lld properties",
				   (long long) k->u.count);
			return false;
		case KW_REQUIRED:
			return kind != DS_JSON_OBJECT || eval_required(ctx, k, inst);
		case KW_DEPREQUIRED:
			return kind != DS_JSON_OBJECT || eval_dependent_required(ctx, k, inst);
		case KW_REF:
			return eval_ref(ctx, k->u.ref.target, inst, ann);
		case KW_DYNREF:
			return eval_dynamic_ref(ctx, k, inst, ann);
		case KW_RECREF:
			return eval_recursive_ref(ctx, k, inst, ann);
		case KW_ALLOF:
			return eval_all_of(ctx, k, inst, ann);
		case KW_ANYOF:
			return eval_any_of(ctx, k, inst, ann);
		case KW_ONEOF:
			return eval_one_of(ctx, k, inst, ann);
		case KW_NOT:
			if (!eval_quiet(ctx, k->u.sub, inst, NULL))
				return true;
			report(ctx, k->name, "value must not match the schema");
			return false;
		case KW_IF:
			return eval_if(ctx, k, inst, ann);
		case KW_DEPSCHEMAS:
			return kind != DS_JSON_OBJECT || eval_dependent_schemas(ctx, k, inst, ann);
		case KW_PREFIXITEMS:
			return kind != DS_JSON_ARRAY || eval_prefix_items(ctx, k, inst, ann);
		case KW_ITEMS:
			return kind != DS_JSON_ARRAY || eval_items(ctx, k, inst, ann);
		case KW_CONTAINS:
			return kind != DS_JSON_ARRAY || eval_contains(ctx, k, inst, ann);
		case KW_PROPERTIES:
			return kind != DS_JSON_OBJECT || eval_properties(ctx, k, inst, ann);
		case KW_PATTERNPROPS:
			return kind != DS_JSON_OBJECT || eval_pattern_properties(ctx, k, inst, ann);
		case KW_ADDITIONALPROPS:
			return kind != DS_JSON_OBJECT || eval_additional_properties(ctx, k, inst, ann);
		case KW_PROPNAMES:
			return kind != DS_JSON_OBJECT || eval_property_names(ctx, k, inst);
		case KW_UNEVALITEMS:
			return kind != DS_JSON_ARRAY || eval_unevaluated_items(ctx, k, inst, ann);
		case KW_UNEVALPROPS:
			return kind != DS_JSON_OBJECT || eval_unevaluated_properties(ctx, k, inst, ann);
	}
	return true;
}

/*
 * Evaluate node on inst: every keyword, or up to the first failure when no
 * errors are being collected.  If valid and ann is not NULL, add what the
 * keywords evaluated to *ann.
 */
static bool
eval_node(JsCtx *ctx, JsNode *node, JsonbValue *inst, JsAnn *ann)
{
	JsAnn		local;
	JsAnn	   *la = NULL;
	bool		valid = true;
	bool		pushed = false;
	uint32		kind;
	int			i;

	if (node->is_bool)
	{
		if (!node->bool_value)
			report(ctx, "false", "no value is allowed here");
		return node->bool_value;
	}

	/*
	 * A node costs little to evaluate, and a stack check as much: one every
	 * 8 levels of nesting is enough to catch a runaway recursion long
	 * before the stack runs out.
	 */
	if ((++ctx->nest & 7) == 0)
		check_stack_depth();
	CHECK_FOR_INTERRUPTS();
	if (ctx->collect)
	{
		memset(&local, 0, sizeof(local));
		la = &local;
	}

	/* entering another schema resource extends the dynamic scope */
	if (ctx->nscope == 0 || ctx->scope[ctx->nscope - 1] != node->res)
	{
		if (ctx->nscope >= ctx->scope_cap)
		{
			JsResource **old = ctx->scope;

			/* scope_buf first, then palloc'd (no palloc for most values) */
			ctx->scope_cap = ctx->scope_cap ? ctx->scope_cap * 2 : lengthof(ctx->scope_buf);
			if (old == NULL)
				ctx->scope = ctx->scope_buf;
			else if (old == ctx->scope_buf)
			{
				ctx->scope = palloc(sizeof(JsResource *) * ctx->scope_cap);
				memcpy(ctx->scope, old, sizeof(ctx->scope_buf));
			}
			else
				ctx->scope = repalloc(old, sizeof(JsResource *) * ctx->scope_cap);
		}
		ctx->scope[ctx->nscope++] = node->res;
		pushed = true;
	}

	kind = ds_json_type(inst);
	if (unlikely(kind == 0))
		elog(ERROR, "unexpected jsonb value type %d", (int) inst->type);

	/*
	 * "type" (always first when present) passes without a call in the
	 * usual case; eval_type sees the rest (integers, failures)
	 */
	i = 0;
	if (node->nkw > 0 && node->kw[0].kind == KW_TYPE && (node->kw[0].u.types & kind))
		i = 1;
	for (; i < node->nkw; i++)
	{
		if (!eval_kw(ctx, &node->kw[i], inst, kind, la))
		{
			valid = false;
			if (ctx->errors == NULL)
				break;
		}
	}
	if (pushed)
		ctx->nscope--;
	ctx->nest--;
	if (valid && ann && la)
		ann_merge(ann, la);
	return valid;
}

/*
 * The general evaluator on value: expanded into scratch memory first, since
 * the keywords index objects and arrays repeatedly.
 */
static pg_noinline bool
validate_expanded(JsonSchema *s, JsonbValue *value, bool assert_formats,
				  List **errors)
{
	static MemoryContext work = NULL;
	MemoryContext old;
	JsCtx		ctx = {0};
	JsonbValue *inst;
	bool		r;

	/*
	 * Scratch memory is reused across calls (validation never nests):
	 * creating and deleting a context per value costs more than validating
	 * a small object.  An error unwinding out of here leaves garbage that
	 * the next call's reset frees.
	 */
	if (work == NULL)
		work = AllocSetContextCreate(TopMemoryContext, "ds jsonschema validate",
									 ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(work);
	old = MemoryContextSwitchTo(work);

	ctx.schema = s;
	ctx.assert_formats = assert_formats;
	ctx.collect = s->has_unevaluated;
	ctx.errors = errors;
	ctx.result_cxt = old;
	inst = js_expand_scratch(value);
	r = eval_node(&ctx, s->root, inst, NULL);
	MemoryContextSwitchTo(old);
	MemoryContextReset(work);
	return r;
}

/*
 * See jsonschema.h.  Only whether the value is valid: in place
 * (inplace.c) when the schema and the value allow, else expanded.
 */
bool
ds_schema_validate(JsonSchema *s, JsonbValue *value, bool assert_formats,
				   List **errors)
{
	if (errors == NULL && s->inplace)
	{
		int			ip = js_validate_inplace(s, value, assert_formats);

		if (ip != JS_INPLACE_UNSURE)
			return ip != 0;
	}
	return validate_expanded(s, value, assert_formats, errors);
}
