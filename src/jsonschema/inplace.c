/*
 * inplace.c
 *		Yes/no validation of a jsonb value in place: the JSON Schema
 *		evaluator for "is this value valid?", reading the value's jsonb
 *		containers directly instead of expanding them first.
 *
 * validate.c's general evaluator expands the value into an in-memory tree
 * and dispatches keyword by keyword, keeping the path and the annotations
 * that the error list and unevaluated* need.  Most validations only ask
 * whether a value is valid (state.json_schema_validate, and apply's check
 * before it pays for the errors), and for them a node's keywords are
 * regrouped once into a JsPlan: the checks of each JSON type side by side,
 * and an object's "properties", "patternProperties" and
 * "additionalProperties" merged into one walk of its members (jsonb keeps
 * members in the order of the sorted property names, so the walk is a
 * merge, without lookups), whose pairing of members with subschemas each
 * plan keeps for the next object with the same keys (JsShape).
 *
 * Memory: plans and shapes live in the schema's context and go with it;
 * uniqueItems compares scalars in one buffer kept in TopMemoryContext.
 * Nothing else is allocated per value, but the pairing of an object of
 * more than JS_SHAPE_MEMBERS members (in the caller's context).
 *
 * js_plan_schema builds the plans when a schema is compiled, for every
 * node reachable from its root, unless one of them needs what only the
 * general evaluator does: the annotations of unevaluatedItems and
 * unevaluatedProperties, the dynamic scope of a "$dynamicRef" or
 * "$recursiveRef" that has one, the content keywords, a keyword kind twice
 * in a node.  Even then a value may need the general evaluator:
 * js_validate_inplace answers JS_INPLACE_UNSURE for a reference followed
 * in a loop or nesting deeper than JS_INPLACE_MAX_DEPTH (the general
 * evaluator reports the loop, or checks the stack), and for enum, const
 * and uniqueItems on arrays and objects, which it compares expanded.
 *
 * Order.  A failure ends an evaluation, and the general evaluator raises
 * the error of a reference loop only if it gets there: so that both
 * always agree, a plan evaluates keywords in the general evaluator's
 * order, and where the merged walk of members interleaves three keywords
 * it still evaluates at least what the general order would before its
 * first failure.  A "properties" subschema failing ends the walk (the
 * general evaluator stops at the same member); a "patternProperties" or
 * "additionalProperties" one only ends the evaluation of that keyword and
 * of those after it, and the walk goes on with "properties".  (What is
 * evaluated beyond the general order can change one outcome only: a
 * pattern that exhausts PCRE2's match limit raises its ERROR here where
 * the general evaluator might have stopped at a failure first.)
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "jsonschema_int.h"

/* nesting of nodes beyond which the general evaluator takes over */
#define JS_INPLACE_MAX_DEPTH 128

/* the state of one js_validate_inplace call */
typedef struct JsIpCtx
{
	bool		assert_formats;
	bool		unsure;			/* give the value to the general evaluator */
	int			depth;			/* ip_node calls in progress */
	int			enc_max;		/* pg_database_encoding_max_length() */
	MemoryContext cxt;			/* the schema's, for the shapes */
} JsIpCtx;

/*
 * The shape of the last object a plan's members were walked for: its keys
 * (their JEntries and bytes) and, per member, the subschema that applies.
 * Rows of a table mostly have the same keys: the next object with the
 * same ones (two memcmps) reuses the pairing of members with "properties"
 * instead of merging names again, and is known to have the required ones.
 * Only objects that got past "required" are kept, and only for plans
 * without "patternProperties".
 */
#define JS_SHAPE_MEMBERS	32
#define JS_SHAPE_KEYBYTES	512

struct JsShape
{
	bool		valid;
	uint64		generation;		/* counts the shapes kept */
	uint32		n;				/* members */
	uint32		keylen;			/* bytes of all keys */
	JEntry		entries[JS_SHAPE_MEMBERS];	/* the keys' JEntries */
	JsNode	   *subs[JS_SHAPE_MEMBERS]; /* member i's subschema, or NULL */
	bool		named[JS_SHAPE_MEMBERS];	/* from "properties"? */
	char		keys[JS_SHAPE_KEYBYTES];
};

static inline bool ip_node(JsIpCtx *ctx, JsNode *node, const JsonbValue *inst);

/* ---------------------------------------------------------------------
 * Plans
 * ---------------------------------------------------------------------
 */

/* Append the nodes of keyword k's subschemas to todo. */
static List *
plan_subs(List *todo, JsKw *k)
{
	int			i;

	switch (k->kind)
	{
		case KW_REF:
		case KW_DYNREF:
		case KW_RECREF:
			return lappend(todo, k->u.ref.target);
		case KW_ALLOF:
		case KW_ANYOF:
		case KW_ONEOF:
		case KW_PREFIXITEMS:
			for (i = 0; i < k->u.list.n; i++)
				todo = lappend(todo, k->u.list.subs[i]);
			return todo;
		case KW_NOT:
		case KW_PROPNAMES:
			return lappend(todo, k->u.sub);
		case KW_IF:
			todo = lappend(todo, k->u.cond.ifs);
			if (k->u.cond.thens)
				todo = lappend(todo, k->u.cond.thens);
			if (k->u.cond.elses)
				todo = lappend(todo, k->u.cond.elses);
			return todo;
		case KW_DEPSCHEMAS:
		case KW_PROPERTIES:
			for (i = 0; i < k->u.props.n; i++)
				todo = lappend(todo, k->u.props.props[i].node);
			return todo;
		case KW_PATTERNPROPS:
			for (i = 0; i < k->u.pats.n; i++)
				todo = lappend(todo, k->u.pats.pats[i].node);
			return todo;
		case KW_ITEMS:
			return lappend(todo, k->u.items.sub);
		case KW_CONTAINS:
			return lappend(todo, k->u.contains.sub);
		case KW_ADDITIONALPROPS:
			return lappend(todo, k->u.addl.sub);
		default:
			return todo;
	}
}

/* Put keyword k, a scalar check or a count, into plan p. */
static void
plan_check(JsPlan *p, JsKw *k)
{
	switch (k->kind)
	{
		case KW_TYPE:
			p->types = k->u.types & ~JS_TYPE_STRICT_INTEGER;
			if (k->u.types & JS_TYPE_STRICT_INTEGER)
				p->flags |= JS_PLAN_TYPE_STRICT;
			break;
		case KW_ENUM:
			p->enumkw = k;
			break;
		case KW_CONST:
			p->constval = k->u.value;
			break;
		case KW_MULTIPLEOF:
			p->multiple_of = k->u.num;
			p->flags |= JS_PLAN_NUMBER;
			break;
		case KW_MAXIMUM:
		case KW_EXMAXIMUM:
		case KW_MINIMUM:
		case KW_EXMINIMUM:
			{
				JsBound    *b = &p->bounds[p->nbounds++];

				b->kind = k->kind;
				b->num = k->u.num;
				b->has_view = js_num_view(k->u.num, &b->view);
				b->has_int = b->has_view && js_num_view_int64(&b->view, &b->ival);
				p->flags |= JS_PLAN_NUMBER;
			}
			break;
		case KW_MAXLENGTH:
			p->maxlen = k->u.count;
			p->flags |= JS_PLAN_STRING;
			break;
		case KW_MINLENGTH:
			p->minlen = k->u.count;
			p->flags |= JS_PLAN_STRING;
			break;
		case KW_PATTERN:
			p->re = k->u.re;
			p->flags |= JS_PLAN_STRING;
			break;
		case KW_FORMAT:
			p->format = k;
			p->flags |= JS_PLAN_STRING;
			break;
		case KW_MAXITEMS:
			p->maxitems = k->u.count;
			p->flags |= JS_PLAN_ARRAY_PRE;
			break;
		case KW_MINITEMS:
			p->minitems = k->u.count;
			p->flags |= JS_PLAN_ARRAY_PRE;
			break;
		case KW_UNIQUEITEMS:
			p->unique = true;
			p->flags |= JS_PLAN_ARRAY_PRE;
			break;
		case KW_MAXPROPS:
			p->maxprops = k->u.count;
			p->flags |= JS_PLAN_OBJECT_PRE;
			break;
		case KW_MINPROPS:
			p->minprops = k->u.count;
			p->flags |= JS_PLAN_OBJECT_PRE;
			break;
		case KW_REQUIRED:
			p->nrequired = k->u.vals.n;
			p->required = k->u.vals.sorted;
			p->flags |= JS_PLAN_OBJECT_PRE;
			break;
		default:
			Assert(false);
	}
}

/* Set p->quick (see JS_QUICK_STRING), once p holds all its keywords. */
static void
plan_quick(JsPlan *p)
{
	bool		plain = p->napply == 0 && p->enumkw == NULL && p->constval == NULL;
	int			asserted;

	for (asserted = 0; asserted <= 1; asserted++)
	{
		uint8		q = 0;
		bool		format = p->format &&
			(asserted || p->format->u.format.assert);

		if (plain && (p->types == 0 || (p->types & DS_JSON_STRING)) &&
			p->re == NULL && !format)
			q |= JS_QUICK_STRING;
		if (plain && (p->types == 0 || (p->types & DS_JSON_BOOLEAN)))
			q |= JS_QUICK_BOOL;
		if (plain && (p->types == 0 || (p->types & DS_JSON_NULL)))
			q |= JS_QUICK_NULL;
		if (plain && (p->types == 0 || (p->types & (DS_JSON_NUMBER | DS_JSON_INTEGER))) &&
			p->multiple_of == NULL && !(p->flags & JS_PLAN_TYPE_STRICT))
		{
			int			i;

			q |= JS_QUICK_INTEGER;
			for (i = 0; i < p->nbounds; i++)
				if (!p->bounds[i].has_int)
					q &= ~JS_QUICK_INTEGER;
		}
		p->quick[asserted] = q;
	}
}

/*
 * Build node's plan (in the current memory context), or return false if
 * the node needs the general evaluator.  apply has room for every keyword.
 */
static bool
plan_node(JsNode *node, JsKw **apply)
{
	JsPlan	   *p = palloc0(sizeof(JsPlan));
	uint64		seen = 0;
	int			i;

	p->maxlen = p->maxitems = p->maxprops = -1;
	p->apply = apply;
	for (i = 0; i < node->nkw; i++)
	{
		JsKw	   *k = &node->kw[i];

		if (seen & (UINT64CONST(1) << k->kind))
			return false;
		seen |= UINT64CONST(1) << k->kind;
		switch (k->kind)
		{
			case KW_CONTENT:
			case KW_UNEVALITEMS:
			case KW_UNEVALPROPS:
				return false;
			case KW_DYNREF:
				if (k->u.ref.anchor)
					return false;	/* the dynamic scope decides */
				p->apply[p->napply++] = k;
				break;
			case KW_RECREF:
				if (k->u.ref.recursive)
					return false;
				p->apply[p->napply++] = k;
				break;
			case KW_DEPREQUIRED:
			case KW_REF:
			case KW_ALLOF:
			case KW_ANYOF:
			case KW_ONEOF:
			case KW_NOT:
			case KW_IF:
			case KW_DEPSCHEMAS:
				p->apply[p->napply++] = k;
				break;
			case KW_PREFIXITEMS:
				p->nprefix = k->u.list.n;
				p->prefix = k->u.list.subs;
				p->flags |= JS_PLAN_ARRAY_POST;
				break;
			case KW_ITEMS:
				/* after prefixItems (or the array form of draft-07's items) */
				if (k->u.items.start != p->nprefix)
					return false;
				p->items = k->u.items.sub;
				p->flags |= JS_PLAN_ARRAY_POST;
				break;
			case KW_CONTAINS:
				p->contains = k;
				p->flags |= JS_PLAN_ARRAY_POST;
				break;
			case KW_PROPERTIES:
				p->nprops = k->u.props.n;
				p->props = k->u.props.props;
				p->flags |= JS_PLAN_MEMBERS;
				break;
			case KW_PATTERNPROPS:
				p->npats = k->u.pats.n;
				p->pats = k->u.pats.pats;
				p->flags |= JS_PLAN_MEMBERS;
				break;
			case KW_ADDITIONALPROPS:
				p->addl = k->u.addl.sub;
				p->flags |= JS_PLAN_MEMBERS;
				break;
			case KW_PROPNAMES:
				p->propnames = k->u.sub;
				break;
			default:
				plan_check(p, k);
				break;
		}
	}
	plan_quick(p);
	node->plan = p;
	return true;
}

/*
 * May the evaluation of one of the member subschemas of node's plan come
 * back to node (a recursive schema)?  Then a walk of its members must not
 * read the plan's shape while it evaluates them, since an inner walk may
 * keep another.  Past a few thousand nodes, assume it may.  stamp marks
 * the nodes seen.
 */
static bool
plan_reentrant(JsNode *node, uint32 stamp)
{
	JsPlan	   *p = node->plan;
	List	   *todo = NIL;
	int			budget = 4096;
	bool		found = false;
	int			i;

	for (i = 0; i < p->nprops; i++)
		todo = lappend(todo, p->props[i].node);
	for (i = 0; i < p->npats; i++)
		todo = lappend(todo, p->pats[i].node);
	if (p->addl)
		todo = lappend(todo, p->addl);
	while (todo != NIL)
	{
		JsNode	   *n = llast(todo);

		todo = list_delete_last(todo);
		if (n == node || --budget < 0)
		{
			found = true;
			break;
		}
		if (n->is_bool || n->plan->visit == stamp)
			continue;
		n->plan->visit = stamp;
		for (i = 0; i < n->nkw; i++)
			todo = plan_subs(todo, &n->kw[i]);
	}
	list_free(todo);
	return found;
}

/*
 * See jsonschema_int.h.  Called at the end of ds_schema_compile, in the
 * schema's memory context; sets s->inplace if every node reachable from
 * the root has a plan.
 */
void
js_plan_schema(JsonSchema *s)
{
	List	   *todo;
	List	   *planned = NIL;
	ListCell   *lc;
	uint32		stamp = 0;

	s->inplace = false;
	if (s->has_unevaluated)
		return;
	todo = list_make1(s->root);
	while (todo != NIL)
	{
		JsNode	   *node = llast(todo);
		int			i;

		todo = list_delete_last(todo);
		if (node->is_bool || node->plan != NULL)
			continue;
		if (!plan_node(node, palloc(sizeof(JsKw *) * Max(node->nkw, 1))))
		{
			list_free(todo);
			list_free(planned);
			return;
		}
		planned = lappend(planned, node);
		for (i = 0; i < node->nkw; i++)
			todo = plan_subs(todo, &node->kw[i]);
	}
	foreach(lc, planned)
	{
		JsNode	   *node = lfirst(lc);

		if (node->plan->flags & JS_PLAN_MEMBERS)
			node->plan->reentrant = plan_reentrant(node, ++stamp);
	}
	list_free(planned);
	s->inplace = true;
}

/* ---------------------------------------------------------------------
 * Values in place
 * ---------------------------------------------------------------------
 */

/* Does object container c have a member named key (keylen bytes)? */
static bool
ip_has_key(JsonbContainer *c, const char *key, int keylen)
{
	JsonbValue	v;

	return getKeyJsonValueFromContainer(c, key, keylen, &v) != NULL;
}

/* ---------------------------------------------------------------------
 * Keywords
 * ---------------------------------------------------------------------
 */

/* Is the number inst (read into *view when has_view) an integer for p? */
static bool
ip_integer(JsPlan *p, const JsonbValue *inst, const JsNumView *view,
		   bool has_view)
{
	if (has_view ? view->ndigits > view->weight + 1 :
		!js_num_is_integral(inst->val.numeric))
		return false;
	/* draft-04: 1.0 is not an integer */
	return !(p->flags & JS_PLAN_TYPE_STRICT) ||
		DatumGetInt32(DirectFunctionCall1(numeric_scale,
										  NumericGetDatum(inst->val.numeric))) == 0;
}

/* "multipleOf" and the bounds on the number inst */
static bool
ip_number(JsPlan *p, const JsonbValue *inst, const JsNumView *view,
		  bool has_view)
{
	int64		ival = 0;
	bool		has_int;
	int			i;

	if (p->multiple_of)
	{
		Numeric		rem = DatumGetNumeric(DirectFunctionCall2(numeric_mod,
															  NumericGetDatum(inst->val.numeric),
															  NumericGetDatum(p->multiple_of)));

		if (js_num_sign(rem) != 0)
			return false;
	}
	has_int = has_view && js_num_view_int64(view, &ival);
	for (i = 0; i < p->nbounds; i++)
	{
		JsBound    *b = &p->bounds[i];
		int			c = has_int && b->has_int ?
			(ival > b->ival) - (ival < b->ival) :
			has_view && b->has_view ?
			js_num_view_cmp(view, &b->view) :
			js_num_cmp(inst->val.numeric, b->num);

		if (!js_bound_holds(b->kind, c))
			return false;
	}
	return true;
}

/* The string checks on inst: lengths, "pattern", "format". */
static bool
ip_string(JsIpCtx *ctx, JsPlan *p, const JsonbValue *inst)
{
	return js_string_holds(p->maxlen, p->minlen, p->re, p->format, ctx->assert_formats,
						   ctx->enc_max, inst->val.string.val, inst->val.string.len);
}

/* "enum" and "const" on inst; containers need the general evaluator */
static bool
ip_values(JsIpCtx *ctx, JsPlan *p, const JsonbValue *inst)
{
	int			i;

	if (inst->type == jbvBinary)
	{
		ctx->unsure = true;
		return false;
	}
	if (p->enumkw)
	{
		for (i = 0; i < p->enumkw->u.vals.n; i++)
			if (js_json_equal((JsonbValue *) inst, &p->enumkw->u.vals.vals[i]))
				break;
		if (i == p->enumkw->u.vals.n)
			return false;
	}
	return p->constval == NULL || js_json_equal((JsonbValue *) inst, p->constval);
}

/*
 * "uniqueItems" on array container c of n items: scalars are compared in
 * place, containers need the general evaluator.
 */
static bool
ip_unique(JsIpCtx *ctx, JsonbContainer *c, uint32 n)
{
	static JsonbValue *buf = NULL;
	static uint32 bufsize = 0;
	const char *base = (const char *) &c->children[n];
	uint32		offset = 0;
	uint32		i,
				j;

	if (n < 2)
		return true;
	if (n > bufsize)
	{
		uint32		size = Max(n, 64);

		buf = buf ? repalloc(buf, sizeof(JsonbValue) * size) :
			MemoryContextAlloc(TopMemoryContext, sizeof(JsonbValue) * size);
		bufsize = size;
	}
	for (i = 0; i < n; i++)
	{
		uint32		start = offset;

		JBE_ADVANCE_OFFSET(offset, c->children[i]);
		ds_jsonb_entry_value(c->children[i], base, start, offset, &buf[i]);
		if (buf[i].type == jbvBinary)
		{
			ctx->unsure = true;
			return false;
		}
	}
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
		{
			/* strings, the usual items, compared here */
			if (buf[i].type == jbvString && buf[j].type == jbvString ?
				buf[i].val.string.len == buf[j].val.string.len &&
				memcmp(buf[i].val.string.val, buf[j].val.string.val,
					   buf[i].val.string.len) == 0 :
				js_json_equal(&buf[i], &buf[j]))
				return false;
		}
	return true;
}

/*
 * The checks of object container c before the applicators ("required"
 * holds if c has the shape of an object that got past it: hit).
 */
static bool
ip_object_pre(JsPlan *p, JsonbContainer *c, bool hit)
{
	uint32		n = JsonContainerSize(c);
	const char *base = (const char *) &c->children[2 * n];
	uint32		start = 0,
				end = 0;
	uint32		i = 0;
	int			r;

	if (n < p->minprops || (p->maxprops >= 0 && n > p->maxprops))
		return false;
	if (p->nrequired == 0 || hit)
		return true;
	if (n == 0)
		return false;
	/* "required": the sorted names (maybe repeated) merged with the keys */
	JBE_ADVANCE_OFFSET(end, c->children[0]);
	for (r = 0; r < p->nrequired; r++)
	{
		JsonbValue *name = &p->required[r];
		int			cmp;

		/* key i is [start, end) */
		while ((cmp = ds_jsonb_key_cmp(name->val.string.val, name->val.string.len,
									   base + start, end - start)) > 0)
		{
			if (++i >= n)
				return false;
			start = end;
			JBE_ADVANCE_OFFSET(end, c->children[i]);
		}
		if (cmp != 0)
			return false;
	}
	return true;
}

/*
 * One applicator keyword (or dependentRequired, evaluated in their order)
 * on inst, whose type is kind.
 */
static bool
ip_apply(JsIpCtx *ctx, JsKw *k, const JsonbValue *inst, uint32 kind)
{
	int			i,
				n = 0;

	switch (k->kind)
	{
		case KW_REF:
		case KW_DYNREF:
		case KW_RECREF:
			return ip_node(ctx, k->u.ref.target, inst);
		case KW_ALLOF:
			for (i = 0; i < k->u.list.n; i++)
				if (!ip_node(ctx, k->u.list.subs[i], inst))
					return false;
			return true;
		case KW_ANYOF:
			for (i = 0; i < k->u.list.n && !ctx->unsure; i++)
				if (ip_node(ctx, k->u.list.subs[i], inst))
					return true;
			return false;
		case KW_ONEOF:
			for (i = 0; i < k->u.list.n && !ctx->unsure; i++)
				if (ip_node(ctx, k->u.list.subs[i], inst) && ++n > 1)
					return false;
			return n == 1;
		case KW_NOT:
			return !ip_node(ctx, k->u.sub, inst) && !ctx->unsure;
		case KW_IF:
			if (ip_node(ctx, k->u.cond.ifs, inst))
				return k->u.cond.thens == NULL || ip_node(ctx, k->u.cond.thens, inst);
			return !ctx->unsure &&
				(k->u.cond.elses == NULL || ip_node(ctx, k->u.cond.elses, inst));
		case KW_DEPREQUIRED:
		case KW_DEPSCHEMAS:
			if (kind != DS_JSON_OBJECT)
				return true;
			for (i = 0; i < k->u.props.n; i++)
			{
				JsProp	   *pr = &k->u.props.props[i];
				int			j;

				if (!ip_has_key(inst->val.binary.data, pr->key, pr->keylen))
					continue;
				if (k->kind == KW_DEPSCHEMAS)
				{
					if (!ip_node(ctx, pr->node, inst))
						return false;
					continue;
				}
				for (j = 0; j < pr->nnames; j++)
					if (!ip_has_key(inst->val.binary.data, pr->names[j].val.string.val,
									pr->names[j].val.string.len))
						return false;
			}
			return true;
		default:
			Assert(false);
			return false;
	}
}

/* Is n an integer below 10^16 within p's bounds (JS_QUICK_INTEGER)? */
static pg_noinline bool
ip_quick_integer(JsPlan *p, Numeric n)
{
	JsNumView	view;
	int64		ival;
	int			i;

	if (!js_num_view(n, &view) || !js_num_view_int64(&view, &ival))
		return false;
	for (i = 0; i < p->nbounds; i++)
	{
		int64		b = p->bounds[i].ival;

		if (!js_bound_holds(p->bounds[i].kind, (ival > b) - (ival < b)))
			return false;
	}
	return true;
}

/*
 * Is a member or item whose JEntry is e and data len bytes valid against
 * node on its JEntry alone (JsPlan.quick)?  False if it takes a closer look.
 */
static pg_attribute_always_inline bool
ip_quick(JsIpCtx *ctx, JsNode *node, JEntry e, const char *base,
		 uint32 offset, uint32 len)
{
	JsPlan	   *p = node->plan;
	uint8		q;

	if (node->is_bool)
		return false;
	q = p->quick[ctx->assert_formats ? 1 : 0];
	switch (e & JENTRY_TYPEMASK)
	{
		case JENTRY_ISSTRING:
			/* lengths in bytes: within both bounds whatever the characters */
			return (q & JS_QUICK_STRING) &&
				(p->maxlen < 0 || len <= p->maxlen) &&
				len >= p->minlen * ctx->enc_max;
		case JENTRY_ISBOOL_TRUE:
		case JENTRY_ISBOOL_FALSE:
			return (q & JS_QUICK_BOOL) != 0;
		case JENTRY_ISNULL:
			return (q & JS_QUICK_NULL) != 0;
		case JENTRY_ISNUMERIC:
			return (q & JS_QUICK_INTEGER) &&
				ip_quick_integer(p, (Numeric) (base + INTALIGN(offset)));
		default:
			return false;
	}
}

/*
 * "prefixItems", "items" and "contains" on array container c, in the
 * general evaluator's order: the item subschemas (prefix, then the rest,
 * one pass since they take turns), then "contains".
 */
static bool
ip_array_post(JsIpCtx *ctx, JsPlan *p, JsonbContainer *c)
{
	uint32		n = JsonContainerSize(c);
	const char *base = (const char *) &c->children[n];
	uint32		offset = 0;
	uint32		i;
	JsonbValue	v;

	if (p->nprefix > 0 || p->items)
		for (i = 0; i < n; i++)
		{
			uint32		start = offset;
			JsNode	   *sub = i < (uint32) p->nprefix ? p->prefix[i] : p->items;

			JBE_ADVANCE_OFFSET(offset, c->children[i]);
			if (sub == NULL)
				break;
			if (ip_quick(ctx, sub, c->children[i], base, start, offset - start))
				continue;
			ds_jsonb_entry_value(c->children[i], base, start, offset, &v);
			if (!ip_node(ctx, sub, &v))
				return false;
		}
	if (p->contains)
	{
		JsKw	   *k = p->contains;
		int64		matches = 0;

		offset = 0;
		for (i = 0; i < n; i++)
		{
			uint32		start = offset;

			JBE_ADVANCE_OFFSET(offset, c->children[i]);
			ds_jsonb_entry_value(c->children[i], base, start, offset, &v);
			if (ip_node(ctx, k->u.contains.sub, &v) &&
				++matches >= k->u.contains.min && k->u.contains.max < 0)
				break;
			if (ctx->unsure)
				return false;
		}
		if (matches < k->u.contains.min ||
			(k->u.contains.max >= 0 && matches > k->u.contains.max))
			return false;
	}
	return true;
}

/* Is object container c, of n members, of the shape sh keeps? */
static inline bool
ip_shape_hit(JsShape *sh, JsonbContainer *c, uint32 n)
{
	return sh != NULL && sh->valid && sh->n == n &&
		memcmp(sh->entries, c->children, sizeof(JEntry) * n) == 0 &&
		memcmp(sh->keys, &c->children[2 * n], sh->keylen) == 0;
}

/*
 * Remember the shape of object container c (n members, keylen bytes of
 * keys) for plan p, with the subschemas its members got.
 */
static void
ip_shape_keep(JsIpCtx *ctx, JsPlan *p, JsonbContainer *c, uint32 n,
			  uint32 keylen, JsNode **subs, bool *named)
{
	JsShape    *sh = p->shape;

	if (n > JS_SHAPE_MEMBERS || keylen > JS_SHAPE_KEYBYTES)
		return;
	if (sh == NULL)
		sh = p->shape = MemoryContextAllocZero(ctx->cxt, sizeof(JsShape));
	sh->valid = false;
	sh->generation++;
	sh->n = n;
	sh->keylen = keylen;
	memcpy(sh->entries, c->children, sizeof(JEntry) * n);
	memcpy(sh->subs, subs, sizeof(JsNode *) * n);
	memcpy(sh->named, named, sizeof(bool) * n);
	memcpy(sh->keys, &c->children[2 * n], keylen);
	sh->valid = true;
}

/*
 * The members of object container c, n of them, against their
 * subschemas: subs[i] (none if NULL), from "properties" when named[i],
 * else from "patternProperties" or "additionalProperties".  values is
 * the offset of the first value.  (See the file's comment for the order
 * of failures.)
 */
static bool
ip_members_of(JsIpCtx *ctx, JsonbContainer *c, uint32 n, uint32 values,
			  JsNode **subs, bool *named)
{
	const char *base = (const char *) &c->children[2 * n];
	uint32		voff = values;
	bool		ok = true;
	uint32		i;
	JsonbValue	v;

	for (i = 0; i < n; i++)
	{
		uint32		vstart = voff;

		JBE_ADVANCE_OFFSET(voff, c->children[n + i]);
		if (subs[i] == NULL || (!ok && !named[i]) ||
			ip_quick(ctx, subs[i], c->children[n + i], base, vstart, voff - vstart))
			continue;
		ds_jsonb_entry_value(c->children[n + i], base, vstart, voff, &v);
		if (!ip_node(ctx, subs[i], &v))
		{
			if (named[i])
				return false;
			ok = false;
		}
	}
	return ok;
}

/*
 * "properties", "patternProperties" and "additionalProperties" on object
 * container c: its members paired with their subschemas by one merge of
 * the keys with the sorted property names, or by p's shape if c had it
 * when the shape's generation was hit (0: it did not), then evaluated in
 * one walk.
 */
static bool
ip_members(JsIpCtx *ctx, JsPlan *p, JsonbContainer *c, uint64 hit)
{
	uint32		n = JsonContainerSize(c);
	const char *base = (const char *) &c->children[2 * n];
	JsNode	   *local_subs[JS_SHAPE_MEMBERS];
	bool		local_named[JS_SHAPE_MEMBERS];
	JsNode	  **subs = local_subs;
	bool	   *named = local_named;
	uint32		koff = 0;
	uint32		i;
	int			j = 0;
	bool		pats_ok = true;

	/* the applicators may have kept another object's shape since */
	if (hit != 0 && p->shape->generation == hit)
	{
		if (!p->reentrant)
			return ip_members_of(ctx, c, n, p->shape->keylen,
								 p->shape->subs, p->shape->named);
		/* copied: a member's evaluation may keep another shape */
		memcpy(local_subs, p->shape->subs, sizeof(JsNode *) * n);
		memcpy(local_named, p->shape->named, sizeof(bool) * n);
		return ip_members_of(ctx, c, n, p->shape->keylen, subs, named);
	}
	if (n > JS_SHAPE_MEMBERS)
	{
		subs = palloc(sizeof(JsNode *) * n);
		named = palloc(sizeof(bool) * n);
	}
	for (i = 0; i < n; i++)
	{
		uint32		kstart = koff;
		const char *key = base + kstart;
		int			keylen;
		int			cmp = 1;
		bool		matched = false;
		int			pj;

		JBE_ADVANCE_OFFSET(koff, c->children[i]);
		keylen = koff - kstart;
		subs[i] = NULL;
		named[i] = false;
		while (j < p->nprops &&
			   (cmp = ds_jsonb_key_cmp(p->props[j].key, p->props[j].keylen,
									   key, keylen)) < 0)
			j++;
		if (j < p->nprops && cmp == 0)
		{
			subs[i] = p->props[j].node;
			named[i] = true;
		}

		/*
		 * "patternProperties", evaluated here in member order (the
		 * general evaluator does after "properties"); the members they
		 * match, named or not, are not additional
		 */
		for (pj = 0; pj < p->npats; pj++)
		{
			if (!js_regex_match(p->pats[pj].re, key, keylen))
				continue;
			matched = true;
			if (pats_ok)
			{
				JsonbValue	v;
				uint32		vstart = getJsonbOffset(c, n + i);

				ds_jsonb_entry_value(c->children[n + i], base, vstart,
									 vstart + getJsonbLength(c, n + i), &v);
				pats_ok = ip_node(ctx, p->pats[pj].node, &v);
			}
		}
		if (!named[i] && !matched && pats_ok)
			subs[i] = p->addl;
	}
	/* the pairing depends on the keys only: keep it whatever the values */
	if (p->npats == 0)
		ip_shape_keep(ctx, p, c, n, koff, subs, named);
	return ip_members_of(ctx, c, n, koff, subs, named) && pats_ok;
}

/* "propertyNames" on object container c: every key is valid */
static bool
ip_property_names(JsIpCtx *ctx, JsPlan *p, JsonbContainer *c)
{
	uint32		n = JsonContainerSize(c);
	const char *base = (const char *) &c->children[2 * n];
	uint32		offset = 0;
	uint32		i;
	JsonbValue	key;

	key.type = jbvString;
	for (i = 0; i < n; i++)
	{
		uint32		start = offset;

		JBE_ADVANCE_OFFSET(offset, c->children[i]);
		key.val.string.val = (char *) base + start;
		key.val.string.len = offset - start;
		if (!ip_node(ctx, p->propnames, &key))
			return false;
	}
	return true;
}

/*
 * The checks of plan p that need no recursion: "type", "enum", "const"
 * and those of strings and numbers.  kind is inst's DS_JSON_* type.
 */
static inline bool
ip_scalar(JsIpCtx *ctx, JsPlan *p, const JsonbValue *inst, uint32 kind)
{
	if (kind == DS_JSON_NUMBER &&
		((p->types & DS_JSON_INTEGER) || (p->flags & JS_PLAN_NUMBER)))
	{
		JsNumView	view;
		bool		has_view = js_num_view(inst->val.numeric, &view);

		if (p->types && !(p->types & kind) &&
			!((p->types & DS_JSON_INTEGER) && ip_integer(p, inst, &view, has_view)))
			return false;
		if ((p->enumkw || p->constval) && !ip_values(ctx, p, inst))
			return false;
		return !(p->flags & JS_PLAN_NUMBER) || ip_number(p, inst, &view, has_view);
	}
	if (p->types && !(p->types & kind))
		return false;
	if ((p->enumkw || p->constval) && !ip_values(ctx, p, inst))
		return false;
	return kind != DS_JSON_STRING || !(p->flags & JS_PLAN_STRING) ||
		ip_string(ctx, p, inst);
}

/* Is inst valid against plan p?  kind is its DS_JSON_* type. */
static bool
ip_plan(JsIpCtx *ctx, JsPlan *p, const JsonbValue *inst, uint32 kind)
{
	JsonbContainer *c = kind & (DS_JSON_OBJECT | DS_JSON_ARRAY) ?
		inst->val.binary.data : NULL;
	uint64		hit = 0;
	int			i;

	if (!ip_scalar(ctx, p, inst, kind))
		return false;
	if (kind == DS_JSON_ARRAY && (p->flags & JS_PLAN_ARRAY_PRE))
	{
		uint32		n = JsonContainerSize(c);

		if (n < p->minitems || (p->maxitems >= 0 && n > p->maxitems) ||
			(p->unique && !ip_unique(ctx, c, n)))
			return false;
	}
	if (kind == DS_JSON_OBJECT)
	{
		if (ip_shape_hit(p->shape, c, JsonContainerSize(c)))
			hit = p->shape->generation;
		if ((p->flags & JS_PLAN_OBJECT_PRE) && !ip_object_pre(p, c, hit != 0))
			return false;
	}
	for (i = 0; i < p->napply; i++)
		if (!ip_apply(ctx, p->apply[i], inst, kind))
			return false;
	if (kind == DS_JSON_ARRAY)
		return !(p->flags & JS_PLAN_ARRAY_POST) || ip_array_post(ctx, p, c);
	if (kind == DS_JSON_OBJECT)
		return (!(p->flags & JS_PLAN_MEMBERS) || ip_members(ctx, p, c, hit)) &&
			(p->propnames == NULL || ip_property_names(ctx, p, c));
	return true;
}

/*
 * ip_node for what may recurse (containers, applicators): with the depth
 * limit, the stack check and interrupts.
 */
static pg_noinline bool
ip_deep(JsIpCtx *ctx, JsNode *node, const JsonbValue *inst, uint32 kind)
{
	bool		r;

	if (ctx->unsure || ctx->depth >= JS_INPLACE_MAX_DEPTH)
	{
		ctx->unsure = true;
		return false;
	}
	if ((++ctx->depth & 15) == 0)
		check_stack_depth();
	CHECK_FOR_INTERRUPTS();
	r = ip_plan(ctx, node->plan, inst, kind);
	ctx->depth--;
	return r;
}

/* Is inst valid against node?  False, with ctx->unsure set, if in doubt. */
static inline bool
ip_node(JsIpCtx *ctx, JsNode *node, const JsonbValue *inst)
{
	uint32		kind;

	if (node->is_bool)
		return node->bool_value;
	Assert(node->plan != NULL);
	kind = ds_json_type(inst);
	if (unlikely(kind == 0))
	{
		ctx->unsure = true;		/* not JSON: the general evaluator says so */
		return false;
	}
	/* a scalar against keywords that do not recurse: no bookkeeping */
	if (node->plan->napply == 0 && !(kind & (DS_JSON_OBJECT | DS_JSON_ARRAY)))
		return ip_scalar(ctx, node->plan, inst, kind);
	return ip_deep(ctx, node, inst, kind);
}

/*
 * See jsonschema_int.h.  value is a scalar or a jbvBinary container (an
 * in-memory array or object goes to the general evaluator).
 */
int
js_validate_inplace(JsonSchema *s, JsonbValue *value, bool assert_formats)
{
	JsIpCtx		ctx;
	bool		r;

	Assert(s->inplace);
	if (value->type == jbvArray || value->type == jbvObject)
		return JS_INPLACE_UNSURE;
	ctx.assert_formats = assert_formats;
	ctx.unsure = false;
	ctx.depth = 0;
	ctx.enc_max = pg_database_encoding_max_length();
	ctx.cxt = s->cxt;
	r = ip_node(&ctx, s->root, value);
	if (ctx.unsure)
		return JS_INPLACE_UNSURE;
	return r ? 1 : 0;
}
