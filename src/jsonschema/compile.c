/*
 * compile.c
 *		Compilation of a JSON Schema document into the graph of JsNode that
 *		validate.c walks.
 *
 * Compiling is two passes.  scan_schema walks the document and every
 * subschema it declares, creating a JsNode per schema object and recording
 * base URIs, resources ("$id") and anchors; then compile_node turns each
 * node's keywords into its JsKw array, resolving "$ref"s to nodes that by
 * then all exist (so cycles are fine).  A reference into a registered
 * document or a meta-schema loads and scans that document on demand.
 *
 * Each schema object is read in a draft (JsDraft): the one its "$schema"
 * names, else its parent's, else (a document's root) the referring
 * schema's, else 2020-12.  Scanning and compiling ask node->draft wherever
 * the drafts differ; validation does not need to (the compiled keywords
 * already say what each draft meant).
 *
 * The compiled schema lives in its own memory context; the bookkeeping of
 * the compilation (the URI list, the raw-JSON-to-node hash) in a child
 * context that goes away when compilation ends.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "jsonschema_int.h"
#include "compat.h"
#include "jsonschema_meta.h"

/* a resource by one of its URIs */
typedef struct JsUriEntry
{
	const char *uri;
	JsResource *res;
} JsUriEntry;

/* the node of a schema object, by the address of its expanded JSON */
typedef struct JsNodeMapEntry
{
	JsonbValue *raw;			/* hash key */
	JsNode	   *node;
} JsNodeMapEntry;

/* the state of one compilation; all but schema is freed at its end */
typedef struct JsCompiler
{
	JsonSchema *schema;
	List	   *uris;			/* JsUriEntry * */
	HTAB	   *nodes;			/* raw JSON -> JsNode */
	List	   *pending;		/* JsNode * whose keywords are not compiled */
	int			loading;		/* nesting of external document loads */
} JsCompiler;

/*
 * Raise the ERROR for an invalid schema.  what says what is wrong with
 * keyword of node (or with node itself when keyword is NULL), as the
 * predicate of a sentence: "must be a string".
 */
static pg_noreturn void
schema_error(JsNode *node, const char *keyword, const char *what)
{
	if (keyword)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid JSON Schema"),
				 errdetail("Keyword \"%s\" at \"#%s\" %s.",
						   keyword, node->location, what)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid JSON Schema"),
			 errdetail("The schema at \"#%s\" %s.", node->location, what)));
}

/* A JSON string's text as a palloc'd C string. */
static char *
jstr(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* The resource with absolute URI uri (without fragment), or NULL. */
static JsResource *
find_resource(JsCompiler *c, const char *uri)
{
	ListCell   *lc;

	foreach(lc, c->uris)
	{
		JsUriEntry *e = lfirst(lc);

		if (strcmp(e->uri, uri) == 0)
			return e->res;
	}
	return NULL;
}

/*
 * Make res reachable by uri as well; the first resource registered under a
 * URI keeps it.
 */
static void
add_uri(JsCompiler *c, const char *uri, JsResource *res)
{
	JsUriEntry *e;

	if (find_resource(c, uri))
		return;
	e = palloc(sizeof(JsUriEntry));
	e->uri = pstrdup(uri);
	e->res = res;
	c->uris = lappend(c->uris, e);
}

/* Record that anchor name of res ("$dynamicAnchor" if dynamic) is node. */
static void
add_anchor(JsResource *res, const char *name, JsNode *node, bool dynamic)
{
	JsAnchor   *a = palloc(sizeof(JsAnchor));

	a->name = pstrdup(name);
	a->node = node;
	a->dynamic = dynamic;
	res->anchors = lappend(res->anchors, a);
}

/*
 * The anchor called name in resource res (only a "$dynamicAnchor" when
 * dynamic_only), or NULL.
 */
JsAnchor *
js_find_anchor(JsResource *res, const char *name, bool dynamic_only)
{
	ListCell   *lc;

	foreach(lc, res->anchors)
	{
		JsAnchor   *a = lfirst(lc);

		if (strcmp(a->name, name) == 0 && (a->dynamic || !dynamic_only))
			return a;
	}
	return NULL;
}

static JsResource *load_document(JsCompiler *c, const char *uri, JsDraft draft);

/* the drafts a "$schema" can name, by their meta-schemas' URIs */
static const struct
{
	const char *uri;			/* without scheme and empty fragment */
	JsDraft		draft;
}			js_drafts[] = {
	{"json-schema.org/draft/2020-12/schema", JS_DRAFT2020},
	{"json-schema.org/draft/2019-09/schema", JS_DRAFT2019},
	{"json-schema.org/draft-07/schema", JS_DRAFT7},
	{"json-schema.org/draft-06/schema", JS_DRAFT6},
	{"json-schema.org/draft-04/schema", JS_DRAFT4},
};

/*
 * Raise the ERROR for a "$schema" (v, of node) that names no supported
 * draft, naming those that are.
 */
static pg_noreturn void
schema_uri_error(JsNode *node, JsonbValue *v)
{
	const char *what;

	switch (v->type)
	{
		case jbvString:
			what = psprintf("\"%s\"", jstr(v));
			break;
		case jbvNumeric:
			what = numeric_normalize(v->val.numeric);
			break;
		case jbvBool:
			what = v->val.boolean ? "true" : "false";
			break;
		case jbvNull:
			what = "null";
			break;
		default:
			what = v->type == jbvArray ? "an array" : "an object";
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unsupported JSON Schema draft %s", what),
			 errdetail("\"$schema\" at \"#%s\" must be the URI of a supported draft "
					   "(draft-04, draft-06, draft-07, 2019-09 or 2020-12), or of a "
					   "registered meta-schema that declares \"$vocabulary\".",
					   node->location),
			 errhint("Use \"https://json-schema.org/draft/2020-12/schema\", "
					 "\"https://json-schema.org/draft/2019-09/schema\", "
					 "\"http://json-schema.org/draft-07/schema#\", "
					 "\"http://json-schema.org/draft-06/schema#\" or "
					 "\"http://json-schema.org/draft-04/schema#\", or leave "
					 "\"$schema\" out for 2020-12.")));
}

/*
 * The draft a "$schema" URI names, if it is one of the official
 * meta-schemas (http or https, with or without an empty fragment); else 0.
 */
static JsDraft
known_draft(const char *uri, int len)
{
	int			i;
	int			skip;

	if (len > 0 && uri[len - 1] == '#')
		len--;
	if (len > 7 && strncmp(uri, "http://", 7) == 0)
		skip = 7;
	else if (len > 8 && strncmp(uri, "https://", 8) == 0)
		skip = 8;
	else
		return 0;
	uri += skip;
	len -= skip;
	for (i = 0; i < lengthof(js_drafts); i++)
		if (strlen(js_drafts[i].uri) == len && memcmp(js_drafts[i].uri, uri, len) == 0)
			return js_drafts[i].draft;
	return 0;
}

/*
 * Read node's "$schema" v: set node->draft and node->vocab.  Besides the
 * official meta-schemas, a meta-schema of the validator's own (a bundled
 * vocabulary meta-schema) or a registered document may be named if it
 * declares "$vocabulary": the node is then read in that document's draft,
 * with the vocabularies it lists.  Anything else raises ERROR (22023).
 */
static void
scan_schema_uri(JsCompiler *c, JsNode *node, JsonbValue *v)
{
	char	   *u;
	char	   *frag;
	JsResource *res;
	JsonbValue *vocab;

	if (v->type != jbvString)
		schema_uri_error(node, v);
	node->draft = known_draft(v->val.string.val, v->val.string.len);
	if (node->draft != 0)
	{
		node->vocab = JS_VOCAB_VALIDATION;
		return;
	}
	js_uri_split(jstr(v), &u, &frag);
	res = find_resource(c, u);
	if (res == NULL && c->loading < 8)
		res = load_document(c, u, JS_DRAFT2020);
	if (res == NULL || res->raw->type != jbvObject ||
		(vocab = js_member(res->raw, "$vocabulary")) == NULL ||
		vocab->type != jbvObject)
		schema_uri_error(node, v);
	node->draft = res->root->draft;
	node->vocab = 0;
	if (js_member(vocab, "https://json-schema.org/draft/2020-12/vocab/validation") ||
		js_member(vocab, "https://json-schema.org/draft/2019-09/vocab/validation"))
		node->vocab |= JS_VOCAB_VALIDATION;
	if (js_member(vocab, "https://json-schema.org/draft/2020-12/vocab/format-assertion"))
		node->vocab |= JS_VOCAB_FORMAT_ASSERT;
}

static JsNode *scan_schema(JsCompiler *c, JsonbValue *raw, const char *base,
						   JsDraft draft, uint8 vocab, JsResource *res,
						   const char *location, bool doc_root);

/*
 * Scan the subschemas of node that its keywords declare: single schemas,
 * arrays of schemas and maps of schemas, in every draft's spellings.
 */
static void
scan_children(JsCompiler *c, JsNode *node, JsonbValue *raw)
{
	static const char *const single[] = {
		"additionalItems", "additionalProperties", "contains", "propertyNames",
		"not", "if", "then", "else", "unevaluatedItems", "unevaluatedProperties",
		"items"
	};
	static const char *const arrays[] = {
		"allOf", "anyOf", "oneOf", "prefixItems", "items"
	};
	static const char *const maps[] = {
		"properties", "patternProperties", "$defs", "definitions",
		"dependentSchemas", "dependencies"
	};
	int			k,
				i;

	for (k = 0; k < lengthof(single); k++)
	{
		JsonbValue *v = js_member(raw, single[k]);

		if (v && (v->type == jbvObject || v->type == jbvBool))
			scan_schema(c, v, node->base, node->draft, node->vocab, node->res,
						psprintf("%s/%s", node->location, single[k]), false);
	}
	for (k = 0; k < lengthof(arrays); k++)
	{
		JsonbValue *v = js_member(raw, arrays[k]);

		if (v && v->type == jbvArray)
			for (i = 0; i < v->val.array.nElems; i++)
			{
				JsonbValue *e = &v->val.array.elems[i];

				if (e->type == jbvObject || e->type == jbvBool)
					scan_schema(c, e, node->base, node->draft, node->vocab,
								node->res,
								psprintf("%s/%s/%d", node->location, arrays[k], i),
								false);
			}
	}
	for (k = 0; k < lengthof(maps); k++)
	{
		JsonbValue *v = js_member(raw, maps[k]);

		if (v && v->type == jbvObject)
			for (i = 0; i < v->val.object.nPairs; i++)
			{
				JsonbValue *e = &v->val.object.pairs[i].value;

				if (e->type == jbvObject || e->type == jbvBool)
					scan_schema(c, e, node->base, node->draft, node->vocab,
								node->res,
								psprintf("%s/%s/%s", node->location, maps[k],
										 jstr(&v->val.object.pairs[i].key)),
								false);
			}
	}
}

/* A new resource: uri (absolute, without fragment) with root node root. */
static JsResource *
new_resource(const char *uri, JsonbValue *raw, JsNode *root)
{
	JsResource *res = palloc0(sizeof(JsResource));

	res->uri = uri;
	res->raw = raw;
	res->root = root;
	return res;
}

/*
 * Apply node's "$id" id.  Up to draft-07 an id "#name" is a plain-name anchor.
 * Otherwise id gives node a new base URI and makes it a resource of its
 * own, unless node is the root of a document being loaded, whose $id is an
 * alias of the URI it was loaded by.
 */
static void
scan_id(JsCompiler *c, JsNode *node, const char *id, bool doc_root)
{
	JsResource *res = node->res;
	char	   *uri;
	char	   *frag;

	if (node->draft <= JS_DRAFT7 && id[0] == '#')
	{
		if (res)
			add_anchor(res, id + 1, node, false);
		return;
	}
	js_uri_split(js_uri_resolve(node->base, id), &uri, &frag);
	node->base = uri;
	if (doc_root && res)
	{
		add_uri(c, uri, res);
		res->root = node;
	}
	else
	{
		node->res = new_resource(uri, node->raw, node);
		add_uri(c, uri, node->res);
	}
	if (frag[0] && node->draft <= JS_DRAFT7)
		add_anchor(node->res, frag, node, false);
}

/*
 * First pass over a schema (sub)tree: create a JsNode per schema object,
 * track base URIs, register resources ($id) and anchors.  Keywords are
 * compiled later, once every reference target exists.
 */
static JsNode *
scan_schema(JsCompiler *c, JsonbValue *raw, const char *base, JsDraft draft,
			uint8 vocab, JsResource *res, const char *location,
			bool doc_root)
{
	JsNodeMapEntry *ent;
	bool		found;
	JsNode	   *node;
	JsonbValue *v;

	ent = hash_search(c->nodes, &raw, HASH_ENTER, &found);
	if (found)
		return ent->node;
	node = palloc0(sizeof(JsNode));
	ent->node = node;
	node->raw = raw;
	node->location = location;
	node->draft = draft;
	node->vocab = vocab;
	node->base = base;
	node->res = res;

	if (raw->type == jbvBool)
	{
		node->is_bool = true;
		node->bool_value = raw->val.boolean;
		node->compiled = true;
		return node;
	}
	if (raw->type != jbvObject)
		schema_error(node, NULL, "must be an object or a boolean");

	if ((v = js_member(raw, "$schema")) != NULL)
		scan_schema_uri(c, node, v);

	/* draft-04 says "id"; up to draft-07 "$ref" hides its siblings */
	v = js_member(raw, node->draft == JS_DRAFT4 ? "id" : "$id");
	if (v && v->type == jbvString &&
		!(node->draft <= JS_DRAFT7 && js_member(raw, "$ref")))
		scan_id(c, node, jstr(v), doc_root);
	if (node->res == NULL)
	{
		node->res = new_resource(base, raw, node);
		add_uri(c, base, node->res);
	}
	else if (doc_root && node->res->root == NULL)
		node->res->root = node;

	if (node->draft >= JS_DRAFT2019)
	{
		v = js_member(raw, "$anchor");
		if (v && v->type == jbvString)
			add_anchor(node->res, jstr(v), node, false);
	}
	if (node->draft == JS_DRAFT2020)
	{
		v = js_member(raw, "$dynamicAnchor");
		if (v && v->type == jbvString)
			add_anchor(node->res, jstr(v), node, true);
	}
	/* 2019-09: "$recursiveAnchor" counts only at a resource's root */
	if (node->draft == JS_DRAFT2019 && node->res->root == node &&
		(v = js_member(raw, "$recursiveAnchor")) != NULL &&
		v->type == jbvBool && v->val.boolean)
		node->res->recursive_anchor = true;

	c->pending = lappend(c->pending, node);
	scan_children(c, node, raw);
	return node;
}

/*
 * If uri names a registered document or a built-in meta-schema, copy it
 * into the schema, scan it as a new resource (under draft unless it says
 * otherwise) and return the resource.  Return NULL otherwise.
 */
static JsResource *
load_document(JsCompiler *c, const char *uri, JsDraft draft)
{
	Jsonb	   *doc = js_registered_document(uri);
	int			i;
	MemoryContext old;
	JsResource *res;
	JsonbValue *raw;

	/* the compiled schema points into the document: keep a copy */
	if (doc != NULL)
	{
		Jsonb	   *copy = palloc(VARSIZE(doc));

		memcpy(copy, doc, VARSIZE(doc));
		doc = copy;
	}
	else
		for (i = 0; i < lengthof(js_meta_docs); i++)
			if (strcmp(js_meta_docs[i].uri, uri) == 0)
			{
				doc = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
														 CStringGetDatum(js_meta_docs[i].json)));
				break;
			}
	if (doc == NULL)
		return NULL;

	old = MemoryContextSwitchTo(c->schema->cxt);
	c->loading++;
	raw = js_expand_container(&doc->root);
	res = palloc0(sizeof(JsResource));
	res->uri = pstrdup(uri);
	res->raw = raw;
	add_uri(c, uri, res);
	scan_schema(c, raw, res->uri, draft, JS_VOCAB_VALIDATION, res, "", true);
	if (res->root == NULL)
		res->root = scan_schema(c, raw, res->uri, draft, JS_VOCAB_VALIDATION, res,
								"", true);
	c->loading--;
	MemoryContextSwitchTo(old);
	return res;
}

/*
 * The next reference token of a JSON Pointer, from p up to slash (or the
 * end), with ~1 and ~0 decoded.
 */
static char *
pointer_token(const char *p, const char *slash)
{
	StringInfoData tok;
	const char *q;

	initStringInfo(&tok);
	for (q = p; *q && q != slash; q++)
	{
		if (q[0] == '~' && q[1] == '1')
		{
			appendStringInfoChar(&tok, '/');
			q++;
		}
		else if (q[0] == '~' && q[1] == '0')
		{
			appendStringInfoChar(&tok, '~');
			q++;
		}
		else
			appendStringInfoChar(&tok, *q);
	}
	return tok.data;
}

/*
 * The node at the JSON Pointer frag ("/...") in resource res, the target of
 * reference ref of node's keyword.  A location that no keyword declares as
 * a schema is scanned now; a pointer to nothing raises ERROR.
 */
static JsNode *
resolve_pointer(JsCompiler *c, JsNode *node, const char *keyword,
				const char *ref, JsResource *res, const char *frag)
{
	JsonbValue *cur = res->raw;
	const char *p = frag + 1;
	StringInfoData loc;
	JsNodeMapEntry *ent;

	initStringInfo(&loc);
	appendStringInfoString(&loc, res->root->location);
	for (;;)
	{
		const char *slash = strchr(p, '/');
		char	   *tok = pointer_token(p, slash);

		if (cur->type == jbvObject)
			cur = js_member(cur, tok);
		else if (cur->type == jbvArray)
		{
			char	   *end;
			long		idx = strtol(tok, &end, 10);

			if (*end || tok[0] == '\0' || idx < 0 || idx >= cur->val.array.nElems)
				cur = NULL;
			else
				cur = &cur->val.array.elems[idx];
		}
		else
			cur = NULL;
		if (cur == NULL)
			schema_error(node, keyword,
						 psprintf("refers to \"%s\", which does not exist", ref));
		appendStringInfo(&loc, "/%s", tok);
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	ent = hash_search(c->nodes, &cur, HASH_FIND, NULL);
	if (ent)
		return ent->node;
	/* a location no keyword we know of declares as a schema */
	return scan_schema(c, cur, res->root->base, res->root->draft,
					   res->root->vocab, res, loc.data, false);
}

/*
 * Resolve the reference ref of node's keyword to its target node: a whole
 * resource, a JSON Pointer into one, or an anchor.  When the target is an
 * anchor, *anchor is set to it (else NULL).  An unresolvable reference
 * raises ERROR.
 */
static JsNode *
resolve_ref(JsCompiler *c, JsNode *node, const char *keyword, const char *ref,
			JsAnchor **anchor)
{
	char	   *abs = js_uri_resolve(node->base, ref);
	char	   *uri;
	char	   *frag;
	JsResource *res;

	*anchor = NULL;
	js_uri_split(abs, &uri, &frag);
	res = find_resource(c, uri);
	if (res == NULL)
		res = load_document(c, uri, node->draft);
	if (res == NULL)
		schema_error(node, keyword,
					 psprintf("refers to \"%s\", but no schema has the URI \"%s\"",
							  ref, uri));
	if (frag[0] == '\0')
		return res->root;
	if (frag[0] == '/')
		return resolve_pointer(c, node, keyword, ref, res, frag);
	*anchor = js_find_anchor(res, frag, false);
	if (*anchor == NULL)
		schema_error(node, keyword,
					 psprintf("refers to \"%s\", but there is no anchor \"%s\"",
							  ref, frag));
	return (*anchor)->node;
}

/* keyword-argument helpers */

/*
 * The node of subschema v of node's keyword kw (a path relative to node,
 * for its location), scanning it if no keyword declared it.  v must be an
 * object or a boolean.
 */
static JsNode *
sub_node(JsCompiler *c, JsNode *node, const char *kw, JsonbValue *v)
{
	JsNodeMapEntry *ent;

	if (v->type != jbvObject && v->type != jbvBool)
		schema_error(node, kw, "must be a schema (object or boolean)");
	ent = hash_search(c->nodes, &v, HASH_FIND, NULL);
	if (ent)
		return ent->node;
	return scan_schema(c, v, node->base, node->draft, node->vocab, node->res,
					   psprintf("%s/%s", node->location, kw), false);
}

/*
 * The argument of a count keyword (maxLength...): a non-negative integer,
 * clamped to PG_INT32_MAX since no JSON value is that large.
 */
static int64
kw_count(JsNode *node, const char *kw, JsonbValue *v)
{
	Numeric		n;
	Numeric		maxn;

	if (v->type != jbvNumeric || !js_num_is_integral(v->val.numeric) ||
		js_num_sign(v->val.numeric) < 0)
		schema_error(node, kw, "must be a non-negative integer");
	n = v->val.numeric;
	maxn = int64_to_numeric(PG_INT32_MAX);
	if (js_num_cmp(n, maxn) > 0)
		return PG_INT32_MAX;
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(n)));
}

/* The argument of a keyword that must be a number. */
static Numeric
kw_number(JsNode *node, const char *kw, JsonbValue *v)
{
	if (v->type != jbvNumeric)
		schema_error(node, kw, "must be a number");
	return v->val.numeric;
}

/* The argument of keyword kw, an array of strings, as *n and *names. */
static void
kw_string_array(JsNode *node, const char *kw, JsonbValue *v, int *n, JsonbValue **names)
{
	int			i;

	if (v->type != jbvArray)
		schema_error(node, kw, "must be an array of strings");
	for (i = 0; i < v->val.array.nElems; i++)
		if (v->val.array.elems[i].type != jbvString)
			schema_error(node, kw, "must be an array of strings");
	*n = v->val.array.nElems;
	*names = v->val.array.elems;
}

/* The DS_JSON_* bit of the type name v; anything else is an invalid "type". */
static uint32
type_bit(JsNode *node, JsonbValue *v)
{
	static const struct
	{
		const char *name;
		uint32		bit;
	}			types[] = {
		{"null", DS_JSON_NULL}, {"boolean", DS_JSON_BOOLEAN}, {"object", DS_JSON_OBJECT},
		{"array", DS_JSON_ARRAY}, {"number", DS_JSON_NUMBER}, {"string", DS_JSON_STRING},
		{"integer", DS_JSON_INTEGER}
	};
	int			i;

	if (v->type == jbvString)
		for (i = 0; i < lengthof(types); i++)
			if (strlen(types[i].name) == v->val.string.len &&
				memcmp(types[i].name, v->val.string.val, v->val.string.len) == 0)
				return types[i].bit;
	schema_error(node, "type", "must be a type name or an array of type names");
}

/* qsort comparator: jsonb strings in jsonb key order */
static int
string_cmp(const void *a, const void *b)
{
	const JsonbValue *va = a;
	const JsonbValue *vb = b;

	return ds_jsonb_key_cmp(va->val.string.val, va->val.string.len,
							vb->val.string.val, vb->val.string.len);
}

/* qsort comparator: JsProps in jsonb key order */
static int
prop_cmp(const void *a, const void *b)
{
	const JsProp *pa = a;
	const JsProp *pb = b;

	return ds_jsonb_key_cmp(pa->key, pa->keylen, pb->key, pb->keylen);
}

/*
 * The argument of keyword kw, an object of schemas, as *n JsProps sorted in
 * jsonb key order (so that validation can merge them with an object's
 * members).
 */
static JsProp *
kw_schema_map(JsCompiler *c, JsNode *node, const char *kw, JsonbValue *v, int *n)
{
	JsProp	   *props;
	int			i;

	if (v->type != jbvObject)
		schema_error(node, kw, "must be an object of schemas");
	*n = v->val.object.nPairs;
	props = palloc0(sizeof(JsProp) * Max(*n, 1));
	for (i = 0; i < *n; i++)
	{
		JsonbPair  *p = &v->val.object.pairs[i];

		props[i].key = p->key.val.string.val;
		props[i].keylen = p->key.val.string.len;
		props[i].node = sub_node(c, node, psprintf("%s/%s", kw, jstr(&p->key)), &p->value);
	}
	qsort(props, *n, sizeof(JsProp), prop_cmp);
	return props;
}

/* The argument of keyword kw, a non-empty array of schemas, as *n nodes. */
static JsNode **
kw_schema_list(JsCompiler *c, JsNode *node, const char *kw, JsonbValue *v, int *n)
{
	JsNode	  **subs;
	int			i;

	if (v->type != jbvArray || v->val.array.nElems == 0)
		schema_error(node, kw, "must be a non-empty array of schemas");
	*n = v->val.array.nElems;
	subs = palloc(sizeof(JsNode *) * *n);
	for (i = 0; i < *n; i++)
		subs[i] = sub_node(c, node, psprintf("%s/%d", kw, i), &v->val.array.elems[i]);
	return subs;
}

/* the growing keyword array of the node being compiled */
typedef struct KwBuf
{
	JsKw	   *kw;
	int			n;
	int			cap;
} KwBuf;

/*
 * Append a zeroed keyword of the kind to b.  The result is valid until the
 * next kw_add, which may move the array.
 */
static JsKw *
kw_add(KwBuf *b, JsKwKind kind, const char *name)
{
	if (b->n >= b->cap)
	{
		b->cap = b->cap ? b->cap * 2 : 8;
		b->kw = b->kw ? repalloc(b->kw, sizeof(JsKw) * b->cap) : palloc(sizeof(JsKw) * b->cap);
	}
	memset(&b->kw[b->n], 0, sizeof(JsKw));
	b->kw[b->n].kind = kind;
	b->kw[b->n].name = name;
	return &b->kw[b->n++];
}

/*
 * The argument of "patternProperties" as *n pairs of compiled regex and
 * node, in the schema's order.
 */
static JsPatProp *
kw_patterns(JsCompiler *c, JsNode *node, JsonbValue *v, int *n)
{
	JsPatProp  *pats;
	int			i;

	if (v->type != jbvObject)
		schema_error(node, "patternProperties", "must be an object of schemas");
	*n = v->val.object.nPairs;
	pats = palloc0(sizeof(JsPatProp) * Max(*n, 1));
	for (i = 0; i < *n; i++)
	{
		JsonbPair  *p = &v->val.object.pairs[i];
		char	   *err;

		pats[i].re = js_compile_regex(c->schema, p->key.val.string.val,
								   p->key.val.string.len, &err);
		if (pats[i].re == NULL)
			js_regex_error(node->location, "patternProperties", jstr(&p->key), err);
		pats[i].node = sub_node(c, node,
								psprintf("patternProperties/%s", jstr(&p->key)),
								&p->value);
	}
	return pats;
}

/* "type": a type name or an array of them, as a mask of DS_JSON_* bits */
static void
compile_type(JsNode *node, KwBuf *b, JsonbValue *v)
{
	JsKw	   *k = kw_add(b, KW_TYPE, "type");
	int			i;

	if (v->type == jbvArray)
		for (i = 0; i < v->val.array.nElems; i++)
			k->u.types |= type_bit(node, &v->val.array.elems[i]);
	else
		k->u.types = type_bit(node, v);
	if (k->u.types & DS_JSON_NUMBER)
		k->u.types |= DS_JSON_INTEGER;
	else if ((k->u.types & DS_JSON_INTEGER) && node->draft == JS_DRAFT4)
		k->u.types |= JS_TYPE_STRICT_INTEGER;
}

/* "pattern": the regular expression, compiled */
static void
compile_pattern(JsCompiler *c, JsNode *node, KwBuf *b, JsonbValue *v)
{
	JsKw	   *k;
	char	   *err;

	if (v->type != jbvString)
		schema_error(node, "pattern", "must be a string");
	k = kw_add(b, KW_PATTERN, "pattern");
	k->u.re = js_compile_regex(c->schema, v->val.string.val, v->val.string.len, &err);
	if (k->u.re == NULL)
		js_regex_error(node->location, "pattern", jstr(v), err);
}

/* "dependentRequired": per property name, the names it requires */
static void
compile_dependent_required(JsNode *node, KwBuf *b, JsonbValue *v)
{
	JsKw	   *k;
	int			i;

	if (v->type != jbvObject)
		schema_error(node, "dependentRequired", "must be an object");
	k = kw_add(b, KW_DEPREQUIRED, "dependentRequired");
	k->u.props.n = v->val.object.nPairs;
	k->u.props.props = palloc0(sizeof(JsProp) * Max(k->u.props.n, 1));
	for (i = 0; i < k->u.props.n; i++)
	{
		JsonbPair  *p = &v->val.object.pairs[i];
		JsProp	   *jp = &k->u.props.props[i];

		jp->key = p->key.val.string.val;
		jp->keylen = p->key.val.string.len;
		kw_string_array(node, "dependentRequired", &p->value, &jp->nnames, &jp->names);
	}
}

/*
 * "dependencies" (up to draft-07), which 2019-09 split into dependentRequired
 * (the members whose value is an array of names) and dependentSchemas (the
 * others): it compiles into one keyword of each kind.
 */
static void
compile_dependencies(JsCompiler *c, JsNode *node, KwBuf *b, JsonbValue *v)
{
	JsKw	   *kr,
			   *ks;
	int			nr = 0,
				ns = 0;
	int			i;

	if (v->type != jbvObject)
		schema_error(node, "dependencies", "must be an object");
	kr = kw_add(b, KW_DEPREQUIRED, "dependencies");
	kr->u.props.props = palloc0(sizeof(JsProp) * Max(v->val.object.nPairs, 1));
	ks = kw_add(b, KW_DEPSCHEMAS, "dependencies");
	kr = &b->kw[b->n - 2];		/* kw_add may have moved the array */
	ks->u.props.props = palloc0(sizeof(JsProp) * Max(v->val.object.nPairs, 1));
	for (i = 0; i < v->val.object.nPairs; i++)
	{
		JsonbPair  *p = &v->val.object.pairs[i];
		JsProp	   *jp;

		if (p->value.type == jbvArray)
		{
			jp = &kr->u.props.props[nr++];
			kw_string_array(node, "dependencies", &p->value, &jp->nnames, &jp->names);
		}
		else
		{
			jp = &ks->u.props.props[ns++];
			jp->node = sub_node(c, node,
								psprintf("dependencies/%s", jstr(&p->key)), &p->value);
		}
		jp->key = p->key.val.string.val;
		jp->keylen = p->key.val.string.len;
	}
	kr->u.props.n = nr;
	ks->u.props.n = ns;
}

/*
 * "$ref" (kind KW_REF), "$dynamicRef" (KW_DYNREF) or 2019-09's
 * "$recursiveRef" (KW_RECREF): the target resolved now.  A "$dynamicRef" to
 * a "$dynamicAnchor" also keeps the anchor's name, which validation looks
 * up in the dynamic scope ("bookending"); a "$recursiveRef" to a resource
 * whose root has "$recursiveAnchor": true is marked recursive, and
 * validation then takes the outermost such resource of the dynamic scope.
 */
static void
compile_ref(JsCompiler *c, JsNode *node, KwBuf *b, JsKwKind kind,
			const char *keyword, JsonbValue *v)
{
	JsAnchor   *anchor;
	JsNode	   *target;
	JsKw	   *k;

	if (v->type != jbvString)
		schema_error(node, keyword, "must be a string");
	target = resolve_ref(c, node, keyword, jstr(v), &anchor);
	k = kw_add(b, kind, keyword);
	k->u.ref.target = target;
	if (kind == KW_DYNREF && anchor && anchor->dynamic)
		k->u.ref.anchor = anchor->name;
	/* 2019-09: a "$recursiveRef" to a root with "$recursiveAnchor": true */
	if (kind == KW_RECREF && target->res->root == target && target->res->recursive_anchor)
		k->u.ref.recursive = true;
}

/* "allOf", "anyOf" or "oneOf": a non-empty list of subschemas */
static void
compile_schema_list(JsCompiler *c, JsNode *node, KwBuf *b, JsKwKind kind,
					const char *keyword, JsonbValue *v)
{
	JsKw	   *k = kw_add(b, kind, keyword);

	k->u.list.subs = kw_schema_list(c, node, keyword, v, &k->u.list.n);
}

/* "if" with its "then" and "else" (which mean nothing without it) */
static void
compile_if(JsCompiler *c, JsNode *node, KwBuf *b, JsonbValue *v)
{
	JsNode	   *ifs = sub_node(c, node, "if", v);
	JsNode	   *thens = NULL,
			   *elses = NULL;
	JsonbValue *v2;
	JsKw	   *k;

	if ((v2 = js_member(node->raw, "then")) != NULL)
		thens = sub_node(c, node, "then", v2);
	if ((v2 = js_member(node->raw, "else")) != NULL)
		elses = sub_node(c, node, "else", v2);
	k = kw_add(b, KW_IF, "if");
	k->u.cond.ifs = ifs;
	k->u.cond.thens = thens;
	k->u.cond.elses = elses;
}

/*
 * The array keywords up to 2019-09: "items" as an array is 2020-12's
 * prefixItems, and "additionalItems" is then 2020-12's "items" after them.
 */
static void
compile_items_draft7(JsCompiler *c, JsNode *node, KwBuf *b)
{
	JsonbValue *v;
	JsKw	   *k;
	int			nitems = -1;

	if ((v = js_member(node->raw, "items")) != NULL)
	{
		k = kw_add(b, v->type == jbvArray ? KW_PREFIXITEMS : KW_ITEMS, "items");
		if (v->type == jbvArray)
		{
			if (v->val.array.nElems == 0)
				k->u.list.n = 0;
			else
				k->u.list.subs = kw_schema_list(c, node, "items", v, &k->u.list.n);
			nitems = k->u.list.n;
		}
		else
			k->u.items.sub = sub_node(c, node, "items", v);
	}
	if (nitems >= 0 && (v = js_member(node->raw, "additionalItems")) != NULL)
	{
		k = kw_add(b, KW_ITEMS, "additionalItems");
		k->u.items.sub = sub_node(c, node, "additionalItems", v);
		k->u.items.start = nitems;
	}
}

/* 2020-12's "prefixItems", and "items" for the items after them */
static void
compile_items(JsCompiler *c, JsNode *node, KwBuf *b)
{
	JsonbValue *v;
	JsKw	   *k;
	int			nprefix = 0;

	if ((v = js_member(node->raw, "prefixItems")) != NULL)
	{
		k = kw_add(b, KW_PREFIXITEMS, "prefixItems");
		k->u.list.subs = kw_schema_list(c, node, "prefixItems", v, &k->u.list.n);
		nprefix = k->u.list.n;
	}
	if ((v = js_member(node->raw, "items")) != NULL)
	{
		k = kw_add(b, KW_ITEMS, "items");
		k->u.items.sub = sub_node(c, node, "items", v);
		k->u.items.start = nprefix;
	}
}

/* "contains", with 2020-12's "minContains" and "maxContains" */
static void
compile_contains(JsCompiler *c, JsNode *node, KwBuf *b, JsonbValue *v)
{
	JsKw	   *k = kw_add(b, KW_CONTAINS, "contains");
	bool		bounds = node->draft >= JS_DRAFT2019 &&
		(node->vocab & JS_VOCAB_VALIDATION);
	JsonbValue *v2;

	k->u.contains.sub = sub_node(c, node, "contains", v);
	k->u.contains.min = 1;
	k->u.contains.max = -1;
	/* for unevaluatedItems, only 2020-12 counts the items that matched */
	k->u.contains.annotate = node->draft == JS_DRAFT2020;
	if (bounds && (v2 = js_member(node->raw, "minContains")) != NULL)
		k->u.contains.min = kw_count(node, "minContains", v2);
	if (bounds && (v2 = js_member(node->raw, "maxContains")) != NULL)
		k->u.contains.max = kw_count(node, "maxContains", v2);
}

/*
 * "properties", "patternProperties" and "additionalProperties", which
 * applies to the members the other two do not name.
 */
static void
compile_properties(JsCompiler *c, JsNode *node, KwBuf *b)
{
	JsonbValue *v;
	JsKw	   *k;
	JsProp	   *props = NULL;
	int			nprops = 0;
	JsPatProp  *pats = NULL;
	int			npats = 0;

	if ((v = js_member(node->raw, "properties")) != NULL)
	{
		props = kw_schema_map(c, node, "properties", v, &nprops);
		k = kw_add(b, KW_PROPERTIES, "properties");
		k->u.props.n = nprops;
		k->u.props.props = props;
	}
	if ((v = js_member(node->raw, "patternProperties")) != NULL)
	{
		pats = kw_patterns(c, node, v, &npats);
		k = kw_add(b, KW_PATTERNPROPS, "patternProperties");
		k->u.pats.n = npats;
		k->u.pats.pats = pats;
	}
	if ((v = js_member(node->raw, "additionalProperties")) != NULL)
	{
		k = kw_add(b, KW_ADDITIONALPROPS, "additionalProperties");
		k->u.addl.sub = sub_node(c, node, "additionalProperties", v);
		k->u.addl.nprops = nprops;
		k->u.addl.props = props;
		k->u.addl.npats = npats;
		k->u.addl.pats = pats;
	}
}

/* a keyword whose argument is one subschema */
static void
compile_sub(JsCompiler *c, JsNode *node, KwBuf *b, JsKwKind kind,
			const char *keyword, JsonbValue *v)
{
	kw_add(b, kind, keyword)->u.sub = sub_node(c, node, keyword, v);
}

/*
 * draft-04's bounds: "maximum" and "minimum", made exclusive by a boolean
 * "exclusiveMaximum" or "exclusiveMinimum" beside them.
 */
static void
compile_bounds_draft4(JsNode *node, KwBuf *b)
{
	JsonbValue *v;
	JsonbValue *ex;

	if ((v = js_member(node->raw, "maximum")) != NULL)
	{
		ex = js_member(node->raw, "exclusiveMaximum");
		if (ex && ex->type != jbvBool)
			schema_error(node, "exclusiveMaximum", "must be a boolean in draft-04");
		if (ex && ex->val.boolean)
			kw_add(b, KW_EXMAXIMUM, "exclusiveMaximum")->u.num =
				kw_number(node, "maximum", v);
		else
			kw_add(b, KW_MAXIMUM, "maximum")->u.num = kw_number(node, "maximum", v);
	}
	if ((v = js_member(node->raw, "minimum")) != NULL)
	{
		ex = js_member(node->raw, "exclusiveMinimum");
		if (ex && ex->type != jbvBool)
			schema_error(node, "exclusiveMinimum", "must be a boolean in draft-04");
		if (ex && ex->val.boolean)
			kw_add(b, KW_EXMINIMUM, "exclusiveMinimum")->u.num =
				kw_number(node, "minimum", v);
		else
			kw_add(b, KW_MINIMUM, "minimum")->u.num = kw_number(node, "minimum", v);
	}
}

/*
 * The validation vocabulary's assertions, in JsKwKind order: skipped when a
 * 2020-12 meta-schema turns the vocabulary off.
 */
static void
compile_assertions(JsCompiler *c, JsNode *node, KwBuf *b)
{
	JsonbValue *raw = node->raw;
	JsonbValue *v;

	if ((v = js_member(raw, "type")) != NULL)
		compile_type(node, b, v);
	if ((v = js_member(raw, "enum")) != NULL)
	{
		JsKw	   *k;

		if (v->type != jbvArray)
			schema_error(node, "enum", "must be an array");
		k = kw_add(b, KW_ENUM, "enum");
		k->u.vals.n = v->val.array.nElems;
		k->u.vals.vals = v->val.array.elems;
	}
	if (node->draft >= JS_DRAFT6 && (v = js_member(raw, "const")) != NULL)
		kw_add(b, KW_CONST, "const")->u.value = v;
	if ((v = js_member(raw, "multipleOf")) != NULL)
	{
		Numeric		n = kw_number(node, "multipleOf", v);

		if (js_num_sign(n) <= 0)
			schema_error(node, "multipleOf", "must be greater than 0");
		kw_add(b, KW_MULTIPLEOF, "multipleOf")->u.num = n;
	}
	if (node->draft == JS_DRAFT4)
		compile_bounds_draft4(node, b);
	else
	{
		if ((v = js_member(raw, "maximum")) != NULL)
			kw_add(b, KW_MAXIMUM, "maximum")->u.num = kw_number(node, "maximum", v);
		/* a boolean (draft-04's form) means nothing from draft-06 on */
		if ((v = js_member(raw, "exclusiveMaximum")) != NULL && v->type != jbvBool)
			kw_add(b, KW_EXMAXIMUM, "exclusiveMaximum")->u.num =
				kw_number(node, "exclusiveMaximum", v);
		if ((v = js_member(raw, "minimum")) != NULL)
			kw_add(b, KW_MINIMUM, "minimum")->u.num = kw_number(node, "minimum", v);
		if ((v = js_member(raw, "exclusiveMinimum")) != NULL && v->type != jbvBool)
			kw_add(b, KW_EXMINIMUM, "exclusiveMinimum")->u.num =
				kw_number(node, "exclusiveMinimum", v);
	}
	if ((v = js_member(raw, "maxLength")) != NULL)
		kw_add(b, KW_MAXLENGTH, "maxLength")->u.count = kw_count(node, "maxLength", v);
	if ((v = js_member(raw, "minLength")) != NULL)
		kw_add(b, KW_MINLENGTH, "minLength")->u.count = kw_count(node, "minLength", v);
	if ((v = js_member(raw, "pattern")) != NULL)
		compile_pattern(c, node, b, v);
}

/* the validation vocabulary's assertions on arrays and objects */
static void
compile_size_assertions(JsNode *node, KwBuf *b)
{
	JsonbValue *raw = node->raw;
	JsonbValue *v;

	if ((v = js_member(raw, "maxItems")) != NULL)
		kw_add(b, KW_MAXITEMS, "maxItems")->u.count = kw_count(node, "maxItems", v);
	if ((v = js_member(raw, "minItems")) != NULL)
		kw_add(b, KW_MINITEMS, "minItems")->u.count = kw_count(node, "minItems", v);
	if ((v = js_member(raw, "uniqueItems")) != NULL)
	{
		if (v->type != jbvBool)
			schema_error(node, "uniqueItems", "must be a boolean");
		if (v->val.boolean)
			kw_add(b, KW_UNIQUEITEMS, "uniqueItems");
	}
	if ((v = js_member(raw, "maxProperties")) != NULL)
		kw_add(b, KW_MAXPROPS, "maxProperties")->u.count =
			kw_count(node, "maxProperties", v);
	if ((v = js_member(raw, "minProperties")) != NULL)
		kw_add(b, KW_MINPROPS, "minProperties")->u.count =
			kw_count(node, "minProperties", v);
	if ((v = js_member(raw, "required")) != NULL)
	{
		JsKw	   *k = kw_add(b, KW_REQUIRED, "required");

		kw_string_array(node, "required", v, &k->u.vals.n, &k->u.vals.vals);
		/* sorted too, to be merged with an object's members */
		k->u.vals.sorted = palloc(sizeof(JsonbValue) * Max(k->u.vals.n, 1));
		memcpy(k->u.vals.sorted, k->u.vals.vals, sizeof(JsonbValue) * k->u.vals.n);
		qsort(k->u.vals.sorted, k->u.vals.n, sizeof(JsonbValue), string_cmp);
	}
	if (node->draft >= JS_DRAFT2019 && (v = js_member(raw, "dependentRequired")) != NULL)
		compile_dependent_required(node, b, v);
}

/*
 * contentEncoding, contentMediaType and (2019-09 on) contentSchema: one
 * keyword, asserted only with the formats (content.c)
 */
static void
compile_content(JsCompiler *c, JsNode *node, KwBuf *b)
{
	JsonbValue *enc = js_member(node->raw, "contentEncoding");
	JsonbValue *mt = js_member(node->raw, "contentMediaType");
	JsonbValue *cs = js_member(node->raw, "contentSchema");
	JsKw	   *k;

	if (enc && enc->type != jbvString)
		enc = NULL;
	if (mt && mt->type != jbvString)
		mt = NULL;
	if (enc == NULL && mt == NULL)
		return;
	k = kw_add(b, KW_CONTENT, mt ? "contentMediaType" : "contentEncoding");
	k->u.content.encoding = enc ? jstr(enc) : NULL;
	k->u.content.media_type = mt ? jstr(mt) : NULL;
	if (cs && mt && node->draft >= JS_DRAFT2019)
		k->u.content.schema = sub_node(c, node, "contentSchema", cs);
}

/*
 * The applicators of node from "$ref" to "dependentSchemas" (and the
 * references of the other drafts), each in the drafts that have it.
 */
static void
compile_applicators(JsCompiler *c, JsNode *node, KwBuf *b)
{
	JsonbValue *raw = node->raw;
	JsonbValue *v;

	/* "dependencies" is up to draft-07; later drafts honour it for compatibility */
	if ((v = js_member(raw, "dependencies")) != NULL)
		compile_dependencies(c, node, b, v);
	if ((v = js_member(raw, "$ref")) != NULL)
		compile_ref(c, node, b, KW_REF, "$ref", v);
	if (node->draft == JS_DRAFT2020 && (v = js_member(raw, "$dynamicRef")) != NULL)
		compile_ref(c, node, b, KW_DYNREF, "$dynamicRef", v);
	if (node->draft == JS_DRAFT2019 && (v = js_member(raw, "$recursiveRef")) != NULL)
		compile_ref(c, node, b, KW_RECREF, "$recursiveRef", v);
	if ((v = js_member(raw, "allOf")) != NULL)
		compile_schema_list(c, node, b, KW_ALLOF, "allOf", v);
	if ((v = js_member(raw, "anyOf")) != NULL)
		compile_schema_list(c, node, b, KW_ANYOF, "anyOf", v);
	if ((v = js_member(raw, "oneOf")) != NULL)
		compile_schema_list(c, node, b, KW_ONEOF, "oneOf", v);
	if ((v = js_member(raw, "not")) != NULL)
		compile_sub(c, node, b, KW_NOT, "not", v);
	if (node->draft >= JS_DRAFT7 && (v = js_member(raw, "if")) != NULL)
		compile_if(c, node, b, v);
	if (node->draft >= JS_DRAFT2019 && (v = js_member(raw, "dependentSchemas")) != NULL)
	{
		JsKw	   *k = kw_add(b, KW_DEPSCHEMAS, "dependentSchemas");

		k->u.props.props = kw_schema_map(c, node, "dependentSchemas", v, &k->u.props.n);
	}
}

/*
 * Compile node's keywords into node->kw, in the order validation evaluates
 * them (JsKwKind's).  Subschemas get nodes now and are compiled later, from
 * the compiler's pending list.  An invalid keyword raises ERROR.
 */
static void
compile_node(JsCompiler *c, JsNode *node)
{
	JsonbValue *raw = node->raw;
	KwBuf		b = {0};
	JsonbValue *v;
	bool		validation = (node->vocab & JS_VOCAB_VALIDATION) != 0;

	node->compiled = true;

	/* up to draft-07, "$ref" makes every sibling keyword be ignored */
	if (node->draft <= JS_DRAFT7 && (v = js_member(raw, "$ref")) != NULL)
	{
		compile_ref(c, node, &b, KW_REF, "$ref", v);
		node->kw = b.kw;
		node->nkw = b.n;
		return;
	}

	if (validation)
		compile_assertions(c, node, &b);
	if ((v = js_member(raw, "format")) != NULL && v->type == jbvString)
	{
		JsKw	   *k = kw_add(&b, KW_FORMAT, "format");

		k->u.format.name = jstr(v);
		k->u.format.assert = (node->vocab & JS_VOCAB_FORMAT_ASSERT) != 0;
	}
	compile_content(c, node, &b);
	if (validation)
		compile_size_assertions(node, &b);
	compile_applicators(c, node, &b);
	if (node->draft <= JS_DRAFT2019)
		compile_items_draft7(c, node, &b);
	else
		compile_items(c, node, &b);
	if (node->draft >= JS_DRAFT6 && (v = js_member(raw, "contains")) != NULL)
		compile_contains(c, node, &b, v);
	compile_properties(c, node, &b);
	if (node->draft >= JS_DRAFT6 && (v = js_member(raw, "propertyNames")) != NULL)
		compile_sub(c, node, &b, KW_PROPNAMES, "propertyNames", v);
	if (node->draft >= JS_DRAFT2019 && (v = js_member(raw, "unevaluatedItems")) != NULL)
	{
		compile_sub(c, node, &b, KW_UNEVALITEMS, "unevaluatedItems", v);
		c->schema->has_unevaluated = true;
	}
	if (node->draft >= JS_DRAFT2019 &&
		(v = js_member(raw, "unevaluatedProperties")) != NULL)
	{
		compile_sub(c, node, &b, KW_UNEVALPROPS, "unevaluatedProperties", v);
		c->schema->has_unevaluated = true;
	}
	node->kw = b.kw;
	node->nkw = b.n;
}

/*
 * See jsonschema.h.  The document is expanded and scanned from its root
 * (base URI ""), then every node found is compiled, including those of
 * documents that references loaded on the way.
 */
JsonSchema *
ds_schema_compile(Jsonb *schema, MemoryContext cxt)
{
	MemoryContext scxt = AllocSetContextCreate(cxt, "ds jsonschema",
											   ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(scxt);
	JsonSchema *s = palloc0(sizeof(JsonSchema));
	JsCompiler	c = {0};
	HASHCTL		hctl;
	Jsonb	   *copy;
	JsonbValue *raw;
	JsResource *res;
	MemoryContext tmp;

	s->cxt = scxt;
	c.schema = s;

	/* the compiled form points into the schema's bytes: keep a copy */
	copy = palloc(VARSIZE(schema));
	memcpy(copy, schema, VARSIZE(schema));
	raw = js_expand_container(&copy->root);

	/* compile-time bookkeeping goes away with this context */
	tmp = AllocSetContextCreate(scxt, "ds jsonschema compile", ALLOCSET_DEFAULT_SIZES);
	memset(&hctl, 0, sizeof(hctl));
	hctl.keysize = sizeof(JsonbValue *);
	hctl.entrysize = sizeof(JsNodeMapEntry);
	hctl.hcxt = tmp;
	c.nodes = hash_create("ds jsonschema nodes", 256, &hctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	res = palloc0(sizeof(JsResource));
	res->uri = "";
	res->raw = raw;
	add_uri(&c, "", res);
	s->root = scan_schema(&c, raw, "", JS_DRAFT2020, JS_VOCAB_VALIDATION, res, "", true);
	if (res->root == NULL)
		res->root = s->root;

	while (c.pending != NIL)
	{
		JsNode	   *node = linitial(c.pending);

		c.pending = list_delete_first(c.pending);
		if (!node->compiled)
			compile_node(&c, node);
	}
	js_plan_schema(s);
	MemoryContextSwitchTo(old);
	hash_destroy(c.nodes);
	return s;
}

/* Release a compiled schema and everything it points to. */
void
ds_schema_free(JsonSchema *s)
{
	MemoryContextDelete(s->cxt);
}
