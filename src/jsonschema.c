/*
 * jsonschema.c
 *		JSON Schema validation (draft 2020-12 and draft-07) over jsonb.
 *
 * Compilation turns a schema document into a graph of JsNode: one per schema
 * object, each with an ordered array of JsKw (keyword + pre-digested
 * argument).  "$ref" targets are resolved to JsNode pointers at compile time
 * (cycles are fine: nodes are created before their keywords are compiled),
 * regular expressions are compiled once with PostgreSQL's regex engine, and
 * const/enum values are kept as expanded JsonbValue trees.
 *
 * Validation expands the value into an in-memory JsonbValue tree (so that
 * objects and arrays can be indexed cheaply and repeatedly) and walks the
 * compiled graph.  Annotations needed by unevaluatedProperties/Items are
 * only collected when the schema uses those keywords.
 *
 * Portions: the embedded meta-schemas (jsonschema_meta.h) are copyright the
 * JSON Schema specification authors, see the notice in that file.
 */
#include "postgres.h"

#include "storage/proc.h"

#include "catalog/pg_collation.h"
#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "regex/regex.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "jsonschema.h"
#include "jsonschema_meta.h"
#include "jsonutil.h"

typedef enum JsDraft
{
	JS_DRAFT7 = 7,
	JS_DRAFT2020 = 2020
} JsDraft;

/*
 * Keyword kinds.  A node's keywords are evaluated in this order: "type"
 * first because it fails fastest, the unevaluated* keywords last because
 * they consume the annotations of everything before them.
 */
typedef enum JsKwKind
{
	KW_TYPE,
	KW_ENUM,
	KW_CONST,
	KW_MULTIPLEOF,
	KW_MAXIMUM,
	KW_EXMAXIMUM,
	KW_MINIMUM,
	KW_EXMINIMUM,
	KW_MAXLENGTH,
	KW_MINLENGTH,
	KW_PATTERN,
	KW_FORMAT,
	KW_MAXITEMS,
	KW_MINITEMS,
	KW_UNIQUEITEMS,
	KW_MAXPROPS,
	KW_MINPROPS,
	KW_REQUIRED,
	KW_DEPREQUIRED,
	KW_REF,
	KW_DYNREF,
	KW_ALLOF,
	KW_ANYOF,
	KW_ONEOF,
	KW_NOT,
	KW_IF,
	KW_DEPSCHEMAS,
	KW_PREFIXITEMS,
	KW_ITEMS,
	KW_CONTAINS,
	KW_PROPERTIES,
	KW_PATTERNPROPS,
	KW_ADDITIONALPROPS,
	KW_PROPNAMES,
	KW_UNEVALITEMS,
	KW_UNEVALPROPS
} JsKwKind;

typedef struct JsNode JsNode;
typedef struct JsResource JsResource;

/*
 * Most patterns in real schemas are a run of literal characters and ASCII
 * character classes with quantifiers, anchored or not (^[a-z0-9_]{2,30}$).
 * PostgreSQL's regex engine pays a large setup cost per match for those
 * (a bounded repetition becomes that many NFA states), so such patterns are
 * also compiled to this small form and matched by a backtracking loop; any
 * other syntax, or a match that backtracks too much, uses the regex.
 */
#define JS_SIMPLE_MAX_ITEMS 32

typedef struct JsSimpleItem
{
	uint8		set[16];		/* ASCII code points in the class */
	bool		negated;		/* [^...]: also matches every non-ASCII */
	int			min;
	int			max;			/* -1: unbounded */
} JsSimpleItem;

typedef struct JsSimplePat
{
	bool		anchored_start;
	bool		anchored_end;
	int			nitems;
	JsSimpleItem items[JS_SIMPLE_MAX_ITEMS];
} JsSimplePat;

typedef struct JsRegex
{
	regex_t		re;
	const char *source;
	JsSimplePat *simple;		/* the fast form, or NULL */
} JsRegex;

/* a property name with its schema (properties, dependentSchemas) */
typedef struct JsProp
{
	const char *key;
	int			keylen;
	JsNode	   *node;
	int			nnames;			/* dependentRequired: required names */
	JsonbValue *names;
} JsProp;

typedef struct JsPatProp
{
	JsRegex    *re;
	JsNode	   *node;
} JsPatProp;

typedef struct JsKw
{
	JsKwKind	kind;
	const char *name;			/* keyword as spelled in the schema */
	union
	{
		uint32		types;
		JsNode	   *sub;
		Numeric		num;
		int64		count;
		JsonbValue *value;
		JsRegex    *re;
		const char *format;
		struct
		{
			int			n;
			JsNode	  **subs;
		}			list;
		struct
		{
			int			n;
			JsonbValue *vals;
		}			vals;
		struct
		{
			int			n;
			JsProp	   *props;
		}			props;
		struct
		{
			int			n;
			JsPatProp  *pats;
		}			pats;
		struct
		{
			JsNode	   *sub;
			int			nprops;
			JsProp	   *props;
			int			npats;
			JsPatProp  *pats;
		}			addl;
		struct
		{
			JsNode	   *sub;
			int			start;	/* first index "items" applies to */
		}			items;
		struct
		{
			JsNode	   *sub;
			int64		min;
			int64		max;	/* -1: no maximum */
		}			contains;
		struct
		{
			JsNode	   *ifs;
			JsNode	   *thens;
			JsNode	   *elses;
		}			cond;
		struct
		{
			JsNode	   *target;
			const char *anchor; /* $dynamicRef to a $dynamicAnchor */
		}			ref;
	}			u;
} JsKw;

struct JsNode
{
	bool		is_bool;
	bool		bool_value;
	bool		compiled;
	bool		validation;		/* validation vocabulary enabled */
	JsDraft		draft;
	int			nkw;
	JsKw	   *kw;
	JsonbValue *raw;			/* the schema JSON (expanded) */
	const char *base;			/* base URI, without fragment */
	const char *location;		/* JSON Pointer of the node in its document */
	JsResource *res;			/* schema resource the node belongs to */
};

typedef struct JsAnchor
{
	const char *name;
	JsNode	   *node;
	bool		dynamic;
} JsAnchor;

struct JsResource
{
	const char *uri;			/* absolute URI without fragment */
	JsonbValue *raw;
	JsNode	   *root;
	List	   *anchors;		/* JsAnchor * */
};

struct JsonSchema
{
	MemoryContext cxt;
	JsNode	   *root;
	bool		has_unevaluated;	/* collect annotations? */
	List	   *regexes;		/* JsRegex *, freed by a reset callback */
};

/* ------------------------------------------------------------------------
 * Expanded JSON trees
 * ------------------------------------------------------------------------ */

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
static JsonbValue *
expand_container(JsonbContainer *c)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	v;
	JsonbValue *out = palloc(sizeof(JsonbValue));
	JsonbIteratorToken tok;

	tok = JsonbIteratorNext(&it, &v, false);
	expand_from_iter(&it, tok, &v, out);
	return out;
}

static JsonbValue *
expand_value(JsonbValue *v)
{
	if (v->type == jbvBinary)
		return expand_container(v->val.binary.data);
	if (v->type == jbvArray)
	{
		JsonbValue *out = palloc(sizeof(JsonbValue));
		int			i;

		*out = *v;
		out->val.array.elems = palloc(sizeof(JsonbValue) * Max(v->val.array.nElems, 1));
		for (i = 0; i < v->val.array.nElems; i++)
			out->val.array.elems[i] = *expand_value(&v->val.array.elems[i]);
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
			out->val.object.pairs[i].value = *expand_value(&v->val.object.pairs[i].value);
		}
		return out;
	}
	return v;
}

static JsonbValue *
member(JsonbValue *obj, const char *key)
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

static int
num_cmp(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
											 NumericGetDatum(a),
											 NumericGetDatum(b)));
}

static int
num_sign(Numeric n)
{
	static Numeric zero = NULL;

	if (zero == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		zero = int64_to_numeric(0);
		MemoryContextSwitchTo(old);
	}
	return num_cmp(n, zero);
}

static bool
num_is_integral(Numeric n)
{
	Numeric		f;

	/* no digits after the point (the usual case): no arithmetic needed */
	if (!numeric_is_nan(n) && !numeric_is_inf(n) &&
		DatumGetInt32(DirectFunctionCall1(numeric_scale, NumericGetDatum(n))) == 0)
		return true;
	f = DatumGetNumeric(DirectFunctionCall1(numeric_floor,
														NumericGetDatum(n)));

	return num_cmp(n, f) == 0;
}

/* JSON equality: numbers by value, objects regardless of member order */
static bool
json_equal(JsonbValue *a, JsonbValue *b)
{
	int			i;

	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvNumeric:
			return num_cmp(a->val.numeric, b->val.numeric) == 0;
		case jbvArray:
			if (a->val.array.nElems != b->val.array.nElems)
				return false;
			for (i = 0; i < a->val.array.nElems; i++)
				if (!json_equal(&a->val.array.elems[i], &b->val.array.elems[i]))
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
				if (pb == NULL || !json_equal(&pa->value, &pb->value))
					return false;
			}
			return true;
		default:
			return ds_scalar_equals(a, b);
	}
}

/* ------------------------------------------------------------------------
 * URIs (RFC 3986 reference resolution)
 * ------------------------------------------------------------------------ */

typedef struct UriParts
{
	char	   *scheme;
	char	   *authority;
	char	   *path;
	char	   *query;
	char	   *fragment;
} UriParts;

static void
uri_parse(const char *s, UriParts *u)
{
	const char *p = s;
	const char *q;

	memset(u, 0, sizeof(UriParts));
	/* scheme */
	if (isalpha((unsigned char) *p))
	{
		q = p;
		while (isalnum((unsigned char) *q) || *q == '+' || *q == '-' || *q == '.')
			q++;
		if (*q == ':')
		{
			u->scheme = pnstrdup(p, q - p);
			p = q + 1;
		}
	}
	if (p[0] == '/' && p[1] == '/')
	{
		p += 2;
		q = p;
		while (*q && *q != '/' && *q != '?' && *q != '#')
			q++;
		u->authority = pnstrdup(p, q - p);
		p = q;
	}
	q = p;
	while (*q && *q != '?' && *q != '#')
		q++;
	u->path = pnstrdup(p, q - p);
	p = q;
	if (*p == '?')
	{
		p++;
		q = p;
		while (*q && *q != '#')
			q++;
		u->query = pnstrdup(p, q - p);
		p = q;
	}
	if (*p == '#')
		u->fragment = pstrdup(p + 1);
}

static char *
remove_dot_segments(const char *path)
{
	StringInfoData out;
	const char *in = path;

	initStringInfo(&out);
	while (*in)
	{
		if (strncmp(in, "../", 3) == 0)
			in += 3;
		else if (strncmp(in, "./", 2) == 0)
			in += 2;
		else if (strncmp(in, "/./", 3) == 0)
			in += 2;
		else if (strcmp(in, "/.") == 0)
			in = "/";
		else if (strncmp(in, "/../", 4) == 0 || strcmp(in, "/..") == 0)
		{
			char	   *slash;

			in = (in[3] == '/') ? in + 3 : "/";
			slash = strrchr(out.data, '/');
			if (slash)
				out.len = slash - out.data;
			else
				out.len = 0;
			out.data[out.len] = '\0';
		}
		else if (strcmp(in, ".") == 0 || strcmp(in, "..") == 0)
			in += strlen(in);
		else
		{
			const char *q = in + (*in == '/' ? 1 : 0);

			while (*q && *q != '/')
				q++;
			appendBinaryStringInfo(&out, in, q - in);
			in = q;
		}
	}
	return out.data;
}

static char *
uri_resolve(const char *base, const char *ref)
{
	UriParts	b,
				r,
				t;
	StringInfoData out;

	uri_parse(base, &b);
	uri_parse(ref, &r);
	memset(&t, 0, sizeof(t));
	if (r.scheme)
	{
		t = r;
		t.path = remove_dot_segments(r.path);
	}
	else
	{
		if (r.authority)
		{
			t.authority = r.authority;
			t.path = remove_dot_segments(r.path);
			t.query = r.query;
		}
		else
		{
			if (r.path[0] == '\0')
			{
				t.path = b.path;
				t.query = r.query ? r.query : b.query;
			}
			else
			{
				if (r.path[0] == '/')
					t.path = remove_dot_segments(r.path);
				else
				{
					char	   *merged;

					if (b.authority && b.path[0] == '\0')
						merged = psprintf("/%s", r.path);
					else
					{
						char	   *slash = strrchr(b.path, '/');

						if (slash)
							merged = psprintf("%.*s%s", (int) (slash - b.path + 1),
											  b.path, r.path);
						else
							merged = pstrdup(r.path);
					}
					t.path = remove_dot_segments(merged);
				}
				t.query = r.query;
			}
			t.authority = b.authority;
		}
		t.scheme = b.scheme;
		t.fragment = r.fragment;
	}
	initStringInfo(&out);
	if (t.scheme)
		appendStringInfo(&out, "%s:", t.scheme);
	if (t.authority)
		appendStringInfo(&out, "//%s", t.authority);
	appendStringInfoString(&out, t.path);
	if (t.query)
		appendStringInfo(&out, "?%s", t.query);
	if (t.fragment && t.fragment[0])
		appendStringInfo(&out, "#%s", t.fragment);
	return out.data;
}

/* Split "uri#fragment" into its parts; the fragment is percent-decoded. */
static void
uri_split(const char *abs, char **uri, char **frag)
{
	const char *hash = strchr(abs, '#');
	StringInfoData f;
	const char *p;

	if (hash == NULL)
	{
		*uri = pstrdup(abs);
		*frag = pstrdup("");
		return;
	}
	*uri = pnstrdup(abs, hash - abs);
	initStringInfo(&f);
	for (p = hash + 1; *p; p++)
	{
		if (*p == '%' && isxdigit((unsigned char) p[1]) && isxdigit((unsigned char) p[2]))
		{
			char		hex[3] = {p[1], p[2], 0};

			appendStringInfoChar(&f, (char) strtol(hex, NULL, 16));
			p += 2;
		}
		else
			appendStringInfoChar(&f, *p);
	}
	*frag = f.data;
}

/* ------------------------------------------------------------------------
 * Registered documents (remote schemas), backend-local
 * ------------------------------------------------------------------------ */

typedef struct JsDocument
{
	char	   *uri;
	Jsonb	   *doc;
} JsDocument;

static List *registered_docs = NIL;

void
ds_schema_register_document(const char *uri, Jsonb *doc)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	char	   *u;
	char	   *frag;
	ListCell   *lc;
	JsDocument *d;

	uri_split(uri, &u, &frag);
	foreach(lc, registered_docs)
	{
		d = lfirst(lc);
		if (strcmp(d->uri, u) == 0)
		{
			pfree(d->doc);
			d->doc = (Jsonb *) pnstrdup((char *) doc, VARSIZE(doc));
			goto done;
		}
	}
	d = palloc(sizeof(JsDocument));
	d->uri = u;
	d->doc = palloc(VARSIZE(doc));
	memcpy(d->doc, doc, VARSIZE(doc));
	registered_docs = lappend(registered_docs, d);
done:
	MemoryContextSwitchTo(old);
	ds_schema_cache_reset();
}

/* ------------------------------------------------------------------------
 * Regular expressions: ECMA-262 patterns on PostgreSQL's ARE engine
 * ------------------------------------------------------------------------ */

/* Approximation of \p{L} (Unicode letters) as code point ranges. */
static const pg_wchar unicode_letters[][2] = {
	{0x41, 0x5A}, {0x61, 0x7A}, {0xAA, 0xAA}, {0xB5, 0xB5}, {0xBA, 0xBA},
	{0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x2C1}, {0x2C6, 0x2D1}, {0x2E0, 0x2E4},
	{0x2EC, 0x2EC}, {0x2EE, 0x2EE}, {0x370, 0x374}, {0x376, 0x377},
	{0x37A, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A},
	{0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481},
	{0x48A, 0x52F}, {0x531, 0x556}, {0x559, 0x559}, {0x560, 0x588},
	{0x5D0, 0x5EA}, {0x5EF, 0x5F2}, {0x620, 0x64A}, {0x66E, 0x66F},
	{0x671, 0x6D3}, {0x6D5, 0x6D5}, {0x6E5, 0x6E6}, {0x6EE, 0x6EF},
	{0x6FA, 0x6FC}, {0x6FF, 0x6FF}, {0x904, 0x939}, {0x93D, 0x93D},
	{0x950, 0x950}, {0x958, 0x961}, {0x971, 0x980}, {0xE01, 0xE30},
	{0xE32, 0xE33}, {0xE40, 0xE46}, {0x10A0, 0x10C5}, {0x10D0, 0x10FA},
	{0x10FC, 0x1248}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D}, {0x1F20, 0x1F45},
	{0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B},
	{0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC},
	{0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3},
	{0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC},
	{0x2071, 0x2071}, {0x207F, 0x207F}, {0x2090, 0x209C}, {0x2102, 0x2102},
	{0x2107, 0x2107}, {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D},
	{0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128}, {0x212A, 0x212D},
	{0x212F, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149}, {0x214E, 0x214E},
	{0x2183, 0x2184}, {0x2C00, 0x2CE4}, {0x2D00, 0x2D25}, {0x3005, 0x3006},
	{0x3031, 0x3035}, {0x303B, 0x303C}, {0x3041, 0x3096}, {0x309D, 0x309F},
	{0x30A1, 0x30FA}, {0x30FC, 0x30FF}, {0x3105, 0x312F}, {0x3131, 0x318E},
	{0x31A0, 0x31BF}, {0x31F0, 0x31FF}, {0x3400, 0x4DBF}, {0x4E00, 0x9FFF},
	{0xA000, 0xA48C}, {0xA4D0, 0xA4FD}, {0xA500, 0xA60C}, {0xA640, 0xA66E},
	{0xA680, 0xA69D}, {0xA6A0, 0xA6E5}, {0xA722, 0xA788}, {0xA78B, 0xA7CA},
	{0xAC00, 0xD7A3}, {0xF900, 0xFA6D}, {0xFB00, 0xFB06}, {0xFB1D, 0xFB1D},
	{0xFB1F, 0xFB28}, {0xFB2A, 0xFB36}, {0xFB50, 0xFBB1}, {0xFE70, 0xFE74},
	{0xFE76, 0xFEFC}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0xFF66, 0xFFBE},
	{0x20000, 0x2A6DF}, {0x2A700, 0x2EBEF}, {0x30000, 0x3134F}
};

/* ECMA-262 white space and line terminators (\s) */
static const pg_wchar ecma_space[][2] = {
	{0x09, 0x0D}, {0x20, 0x20}, {0xA0, 0xA0}, {0x1680, 0x1680},
	{0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F},
	{0x3000, 0x3000}, {0xFEFF, 0xFEFF}
};

typedef struct WBuf
{
	pg_wchar   *data;
	int			len;
	int			cap;
} WBuf;

static void
wb_add(WBuf *b, pg_wchar c)
{
	if (b->len >= b->cap)
	{
		b->cap = b->cap ? b->cap * 2 : 64;
		b->data = b->data ? repalloc(b->data, b->cap * sizeof(pg_wchar))
			: palloc(b->cap * sizeof(pg_wchar));
	}
	b->data[b->len++] = c;
}

static void
wb_str(WBuf *b, const char *s)
{
	while (*s)
		wb_add(b, (unsigned char) *s++);
}

/* a code point as a literal inside or outside brackets */
static void
wb_literal(WBuf *b, pg_wchar c)
{
	if (c < 128 && !isalnum((int) c) && c != ' ' && c != '_')
		wb_add(b, '\\');
	wb_add(b, c);
}

static void
wb_ranges(WBuf *b, const pg_wchar (*ranges)[2], int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		wb_literal(b, ranges[i][0]);
		if (ranges[i][1] != ranges[i][0])
		{
			wb_add(b, '-');
			wb_literal(b, ranges[i][1]);
		}
	}
}

/* class escapes \d \w \s (and \p{L}) as bracket-expression members */
static bool
class_members(WBuf *b, pg_wchar c, const pg_wchar *prop, int proplen)
{
	switch (c)
	{
		case 'd':
			wb_str(b, "0-9");
			return true;
		case 'w':
			wb_str(b, "A-Za-z0-9_");
			return true;
		case 's':
			wb_ranges(b, ecma_space, lengthof(ecma_space));
			return true;
		case 'p':
			{
				char		name[32];
				int			i;

				for (i = 0; i < proplen && i < 31; i++)
					name[i] = (char) prop[i];
				name[i] = '\0';
				if (strcmp(name, "L") == 0 || strcmp(name, "Letter") == 0 ||
					strcmp(name, "Alphabetic") == 0)
				{
					wb_ranges(b, unicode_letters, lengthof(unicode_letters));
					return true;
				}
				if (strcmp(name, "Nd") == 0 || strcmp(name, "digit") == 0 ||
					strcmp(name, "Decimal_Number") == 0)
				{
					wb_str(b, "0-9");
					return true;
				}
				return false;
			}
	}
	return false;
}

static int
hexval(pg_wchar c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* parse \xHH, \uHHHH, \u{H...} at p (pointing after the backslash) */
static bool
parse_hex_escape(const pg_wchar *p, int n, int *used, pg_wchar *cp)
{
	int			i,
				v = 0;

	if (n >= 3 && p[0] == 'x' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0)
	{
		*cp = hexval(p[1]) * 16 + hexval(p[2]);
		*used = 3;
		return true;
	}
	if (n >= 3 && p[0] == 'u' && p[1] == '{')
	{
		for (i = 2; i < n && hexval(p[i]) >= 0; i++)
			v = v * 16 + hexval(p[i]);
		if (i < n && p[i] == '}')
		{
			*cp = v;
			*used = i + 1;
			return true;
		}
		return false;
	}
	if (n >= 5 && p[0] == 'u')
	{
		for (i = 1; i <= 4; i++)
		{
			if (hexval(p[i]) < 0)
				return false;
			v = v * 16 + hexval(p[i]);
		}
		*used = 5;
		/* surrogate pair */
		if (v >= 0xD800 && v <= 0xDBFF && n >= 11 && p[5] == '\\' && p[6] == 'u')
		{
			int			lo = 0;

			for (i = 7; i <= 10; i++)
			{
				if (hexval(p[i]) < 0)
					break;
				lo = lo * 16 + hexval(p[i]);
			}
			if (i == 11 && lo >= 0xDC00 && lo <= 0xDFFF)
			{
				v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
				*used = 11;
			}
		}
		*cp = v;
		return true;
	}
	return false;
}

/*
 * Translate an ECMA-262 pattern into an ARE.  Returns false for constructs
 * we cannot express.  Differences handled: \d \w \s are ASCII/ECMA sets
 * rather than locale classes, "." excludes line terminators, \b is \y,
 * \xHH has exactly two digits, \u{...}, \p{Letter}, named groups.
 */
static bool
translate_regex(const pg_wchar *p, int n, WBuf *out)
{
	int			i = 0;
	bool		in_class = false;

	while (i < n)
	{
		pg_wchar	c = p[i];

		if (c == '\\' && i + 1 < n)
		{
			pg_wchar	e = p[i + 1];
			pg_wchar	cp;
			int			used;

			if (e == 'd' || e == 'w' || e == 's' || e == 'D' || e == 'W' || e == 'S' ||
				e == 'p' || e == 'P')
			{
				bool		neg = (e == 'D' || e == 'W' || e == 'S' || e == 'P');
				pg_wchar	lower = (e == 'P') ? 'p' : (neg ? e + ('a' - 'A') : e);
				const pg_wchar *prop = NULL;
				int			proplen = 0;
				int			skip = 2;

				if (lower == 'p')
				{
					int			j = i + 2;

					if (j >= n || p[j] != '{')
						return false;
					prop = &p[j + 1];
					while (j < n && p[j] != '}')
						j++;
					if (j >= n)
						return false;
					proplen = &p[j] - prop;
					skip = j + 1 - i;
				}
				if (in_class)
				{
					if (neg)
						return false;
					if (!class_members(out, lower, prop, proplen))
						return false;
				}
				else
				{
					wb_add(out, '[');
					if (neg)
						wb_add(out, '^');
					if (!class_members(out, lower, prop, proplen))
						return false;
					wb_add(out, ']');
				}
				i += skip;
				continue;
			}
			if (e == 'b' && !in_class)
			{
				wb_str(out, "\\y");
				i += 2;
				continue;
			}
			if (e == 'B' && !in_class)
			{
				wb_str(out, "\\Y");
				i += 2;
				continue;
			}
			if ((e == 'x' || e == 'u') && parse_hex_escape(&p[i + 1], n - i - 1, &used, &cp))
			{
				wb_literal(out, cp);
				i += 1 + used;
				continue;
			}
			if (e == 'b' && in_class)
			{
				wb_literal(out, 0x08);
				i += 2;
				continue;
			}
			if (e == 'c' && i + 2 < n && isalpha((int) p[i + 2]))
			{
				wb_literal(out, p[i + 2] % 32);
				i += 3;
				continue;
			}
			if (e == '0')
			{
				wb_literal(out, 0);
				i += 2;
				continue;
			}
			if (e == 't' || e == 'n' || e == 'r' || e == 'f' || e == 'v')
			{
				wb_literal(out, e == 't' ? 9 : e == 'n' ? 10 : e == 'r' ? 13 : e == 'f' ? 12 : 11);
				i += 2;
				continue;
			}
			if (e >= '1' && e <= '9' && !in_class)
			{
				wb_add(out, '\\');
				wb_add(out, e);
				i += 2;
				continue;
			}
			/* identity escape */
			wb_literal(out, e);
			i += 2;
			continue;
		}
		if (in_class)
		{
			if (c == ']')
				in_class = false;
			if (c == '[' || (c == '\\'))
				wb_add(out, '\\');
			wb_add(out, c);
			i++;
			continue;
		}
		if (c == '[')
		{
			in_class = true;
			wb_add(out, '[');
			i++;
			if (i < n && p[i] == '^')
			{
				wb_add(out, '^');
				i++;
			}
			/* "[]" matches nothing, "[^]" anything */
			if (i < n && p[i] == ']')
			{
				out->len--;
				if (out->data[out->len] == '^')
				{
					out->len--;
					wb_str(out, "(?:.|\\n)");
				}
				else
					wb_str(out, "(?!)");
				in_class = false;
				i++;
			}
			continue;
		}
		if (c == '.')
		{
			wb_str(out, "[^\n\r");
			wb_add(out, 0x2028);
			wb_add(out, 0x2029);
			wb_add(out, ']');
			i++;
			continue;
		}
		if (c == '(' && i + 2 < n && p[i + 1] == '?' && p[i + 2] == '<' &&
			i + 3 < n && p[i + 3] != '=' && p[i + 3] != '!')
		{
			/* named group: drop the name */
			int			j = i + 3;

			while (j < n && p[j] != '>')
				j++;
			wb_add(out, '(');
			i = j + 1;
			continue;
		}
		wb_add(out, c);
		i++;
	}
	return !in_class;
}

static void js_regex_cleanup(void *arg);

static void
simple_add(JsSimpleItem *it, int c)
{
	it->set[c >> 3] |= (uint8) (1 << (c & 7));
}

static void
simple_add_range(JsSimpleItem *it, int lo, int hi)
{
	for (int c = lo; c <= hi; c++)
		simple_add(it, c);
}

/* \d and \w (ASCII in ECMA-262 without the u flag's case folding) */
static bool
simple_escape_class(JsSimpleItem *it, char e)
{
	if (e == 'd')
		simple_add_range(it, '0', '9');
	else if (e == 'w')
	{
		simple_add_range(it, '0', '9');
		simple_add_range(it, 'a', 'z');
		simple_add_range(it, 'A', 'Z');
		simple_add(it, '_');
	}
	else
		return false;
	return true;
}

static bool
simple_literal_escape(char e)
{
	return e != '\0' && strchr("\\/.-^$()[]{}|*+?", e) != NULL;
}

/*
 * Parses an ECMA-262 pattern into the simple form, or returns false if it
 * uses anything beyond literals, ASCII classes, \d, \w, quantifiers and
 * the two anchors.
 */
static bool
simple_compile(const char *src, int len, JsSimplePat *p)
{
	int			i = 0;

	memset(p, 0, sizeof(JsSimplePat));
	if (i < len && src[i] == '^')
	{
		p->anchored_start = true;
		i++;
	}
	while (i < len)
	{
		JsSimpleItem *it;
		unsigned char c = (unsigned char) src[i];

		if (c == '$' && i == len - 1)
		{
			p->anchored_end = true;
			break;
		}
		if (p->nitems == JS_SIMPLE_MAX_ITEMS || c >= 128)
			return false;
		it = &p->items[p->nitems++];
		it->min = it->max = 1;
		if (c == '[')
		{
			i++;
			if (i < len && src[i] == '^')
			{
				it->negated = true;
				i++;
			}
			if (i >= len || src[i] == ']')
				return false;
			while (i < len && src[i] != ']')
			{
				int			lo;

				c = (unsigned char) src[i];
				if (c >= 128)
					return false;
				if (c == '\\')
				{
					if (i + 1 >= len)
						return false;
					if (simple_escape_class(it, src[i + 1]))
					{
						i += 2;
						continue;
					}
					if (!simple_literal_escape(src[i + 1]))
						return false;
					lo = (unsigned char) src[i + 1];
					i += 2;
				}
				else if (c == '[')
					return false;
				else
				{
					lo = c;
					i++;
				}
				if (i + 1 < len && src[i] == '-' && src[i + 1] != ']')
				{
					int			hi = (unsigned char) src[i + 1];

					if (hi >= 128 || hi == '\\' || hi == '[' || hi < lo)
						return false;
					simple_add_range(it, lo, hi);
					i += 2;
				}
				else
					simple_add(it, lo);
			}
			if (i >= len)
				return false;
			i++;				/* ] */
		}
		else if (c == '\\')
		{
			if (i + 1 >= len)
				return false;
			if (!simple_escape_class(it, src[i + 1]))
			{
				if (!simple_literal_escape(src[i + 1]))
					return false;
				simple_add(it, (unsigned char) src[i + 1]);
			}
			i += 2;
		}
		else if (strchr(".()|^$*+?{}]", c))
			return false;
		else
		{
			simple_add(it, c);
			i++;
		}

		/* quantifier, possibly lazy (laziness does not change whether it matches) */
		if (i < len && (src[i] == '*' || src[i] == '+' || src[i] == '?'))
		{
			it->min = src[i] == '+' ? 1 : 0;
			it->max = src[i] == '?' ? 1 : -1;
			i++;
		}
		else if (i < len && src[i] == '{')
		{
			int			j = i + 1,
						lo = 0,
						hi;

			if (j >= len || !isdigit((unsigned char) src[j]))
				return false;
			while (j < len && isdigit((unsigned char) src[j]) && lo < 100000)
				lo = lo * 10 + (src[j++] - '0');
			hi = lo;
			if (j < len && src[j] == ',')
			{
				j++;
				if (j < len && src[j] == '}')
					hi = -1;
				else
				{
					if (j >= len || !isdigit((unsigned char) src[j]))
						return false;
					hi = 0;
					while (j < len && isdigit((unsigned char) src[j]) && hi < 100000)
						hi = hi * 10 + (src[j++] - '0');
				}
			}
			if (j >= len || src[j] != '}' || (hi >= 0 && hi < lo))
				return false;
			it->min = lo;
			it->max = hi;
			i = j + 1;
		}
		else
			continue;
		if (i < len && src[i] == '?')
			i++;
		if (i < len && (src[i] == '*' || src[i] == '+' || src[i] == '?' || src[i] == '{'))
			return false;
	}
	return true;
}

static inline bool
simple_in(const JsSimpleItem *it, pg_wchar c)
{
	if (c >= 128)
		return it->negated;
	return ((it->set[c >> 3] >> (c & 7)) & 1) != it->negated;
}

/* 1: match, 0: no match, -1: gave up (too much backtracking) */
static int
simple_match_at(const JsSimplePat *p, int item, const pg_wchar *w, int pos, int len,
				int *budget)
{
	const JsSimpleItem *it;
	int			n = 0;

	if (--(*budget) < 0)
		return -1;
	if (item == p->nitems)
		return !p->anchored_end || pos == len;
	it = &p->items[item];
	while (pos + n < len && (it->max < 0 || n < it->max) && simple_in(it, w[pos + n]))
		n++;
	for (int k = n; k >= it->min; k--)
	{
		int			r = simple_match_at(p, item + 1, w, pos + k, len, budget);

		if (r != 0)
			return r;
	}
	return 0;
}

static int
simple_match(const JsSimplePat *p, const pg_wchar *w, int len)
{
	int			budget = 10000;

	for (int start = 0; start <= len; start++)
	{
		int			r = simple_match_at(p, 0, w, start, len, &budget);

		if (r != 0)
			return r;
		if (p->anchored_start)
			break;
	}
	return 0;
}

static JsRegex *
compile_regex(JsonSchema *s, const char *src, int len, char **err)
{
	pg_wchar   *wsrc = palloc((len + 1) * sizeof(pg_wchar));
	int			wlen = pg_mb2wchar_with_len(src, wsrc, len);
	WBuf		out = {0};
	JsRegex    *r;
	int			rc;

	*err = NULL;
	if (!translate_regex(wsrc, wlen, &out))
	{
		*err = "unsupported regular expression syntax";
		return NULL;
	}
	wb_add(&out, 0);
	out.len--;
	r = MemoryContextAllocZero(s->cxt, sizeof(JsRegex));
	rc = pg_regcomp(&r->re, out.data, out.len, REG_ADVANCED, C_COLLATION_OID);
	if (rc != REG_OKAY)
	{
		char		buf[256];

		pg_regerror(rc, &r->re, buf, sizeof(buf));
		*err = pstrdup(buf);
		return NULL;
	}
	r->source = MemoryContextStrdup(s->cxt, pnstrdup(src, len));
	{
		JsSimplePat sp;

		if (simple_compile(src, len, &sp))
		{
			r->simple = MemoryContextAlloc(s->cxt, sizeof(JsSimplePat));
			memcpy(r->simple, &sp, sizeof(JsSimplePat));
		}
	}
	if (s->regexes == NIL)
	{
		MemoryContextCallback *cb = MemoryContextAlloc(s->cxt, sizeof(MemoryContextCallback));

		cb->func = js_regex_cleanup;
		cb->arg = s;
		MemoryContextRegisterResetCallback(s->cxt, cb);
	}
	{
		MemoryContext old = MemoryContextSwitchTo(s->cxt);

		s->regexes = lappend(s->regexes, r);
		MemoryContextSwitchTo(old);
	}
	return r;
}

/* compiled regexes live outside palloc; free them with the schema */
static void
js_regex_cleanup(void *arg)
{
	JsonSchema *s = arg;
	ListCell   *lc;

	foreach(lc, s->regexes)
		pg_regfree(&((JsRegex *) lfirst(lc))->re);
	s->regexes = NIL;
}

static bool
regex_match(JsRegex *r, const char *str, int len)
{
	pg_wchar	stackbuf[256];
	pg_wchar   *w = (len < 256) ? stackbuf : palloc((len + 1) * sizeof(pg_wchar));
	int			wlen = pg_mb2wchar_with_len(str, w, len);
	int			rc;

	if (r->simple)
	{
		int			m = simple_match(r->simple, w, wlen);

		if (m >= 0)
			return m == 1;
	}
	rc = pg_regexec(&r->re, w, wlen, 0, NULL, 0, NULL, 0);

	if (rc == REG_OKAY)
		return true;
	if (rc == REG_NOMATCH)
		return false;
	{
		char		buf[256];

		pg_regerror(rc, &r->re, buf, sizeof(buf));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
				 errmsg("regular expression failed: %s", buf)));
	}
	return false;
}

/* ------------------------------------------------------------------------
 * Compilation
 * ------------------------------------------------------------------------ */

typedef struct JsUriEntry
{
	const char *uri;
	JsResource *res;
} JsUriEntry;

typedef struct JsNodeMapEntry
{
	JsonbValue *raw;			/* hash key */
	JsNode	   *node;
} JsNodeMapEntry;

typedef struct JsCompiler
{
	JsonSchema *schema;
	List	   *uris;			/* JsUriEntry * */
	HTAB	   *nodes;			/* raw JSON -> JsNode */
	List	   *pending;		/* JsNode * whose keywords are not compiled */
	int			loading;		/* nesting of external document loads */
} JsCompiler;

static void pg_attribute_noreturn()
schema_error(JsNode *node, const char *keyword, const char *msg)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid JSON Schema"),
			 errdetail("%s%s%s at \"#%s\": %s",
					   keyword ? "keyword \"" : "", keyword ? keyword : "",
					   keyword ? "\"" : "",
					   node ? node->location : "", msg)));
}

static char *
jstr(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

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

static void
add_anchor(JsResource *res, const char *name, JsNode *node, bool dynamic)
{
	JsAnchor   *a = palloc(sizeof(JsAnchor));

	a->name = pstrdup(name);
	a->node = node;
	a->dynamic = dynamic;
	res->anchors = lappend(res->anchors, a);
}

static JsAnchor *
find_anchor(JsResource *res, const char *name, bool dynamic_only)
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

/*
 * Which draft (and whether the validation vocabulary is on) a "$schema"
 * selects.  Unknown meta-schemas are looked up among registered documents
 * so that their "$vocabulary" can be honoured; otherwise 2020-12.
 */
static JsDraft
draft_from_schema_uri(JsCompiler *c, const char *uri, bool *validation)
{
	char	   *u;
	char	   *frag;
	JsResource *res;

	*validation = true;
	if (strstr(uri, "json-schema.org/draft-07/") ||
		strstr(uri, "json-schema.org/draft-06/") ||
		strstr(uri, "json-schema.org/draft-04/"))
		return JS_DRAFT7;
	if (strstr(uri, "json-schema.org/"))
		return JS_DRAFT2020;
	uri_split(uri, &u, &frag);
	res = find_resource(c, u);
	if (res == NULL && c->loading < 8)
	{
		ListCell   *lc;

		foreach(lc, registered_docs)
			if (strcmp(((JsDocument *) lfirst(lc))->uri, u) == 0)
			{
				res = load_document(c, u, JS_DRAFT2020);
				break;
			}
	}
	if (res && res->raw->type == jbvObject)
	{
		JsonbValue *vocab = member(res->raw, "$vocabulary");

		if (vocab && vocab->type == jbvObject &&
			!member(vocab, "https://json-schema.org/draft/2020-12/vocab/validation"))
			*validation = false;
		return res->root->draft;
	}
	return JS_DRAFT2020;
}

static JsNode *scan_schema(JsCompiler *c, JsonbValue *raw, const char *base,
						   JsDraft draft, bool validation, JsResource *res,
						   const char *location, bool doc_root);

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
		JsonbValue *v = member(raw, single[k]);

		if (v && (v->type == jbvObject || v->type == jbvBool))
			scan_schema(c, v, node->base, node->draft, node->validation, node->res,
						psprintf("%s/%s", node->location, single[k]), false);
	}
	for (k = 0; k < lengthof(arrays); k++)
	{
		JsonbValue *v = member(raw, arrays[k]);

		if (v && v->type == jbvArray)
			for (i = 0; i < v->val.array.nElems; i++)
			{
				JsonbValue *e = &v->val.array.elems[i];

				if (e->type == jbvObject || e->type == jbvBool)
					scan_schema(c, e, node->base, node->draft, node->validation,
								node->res,
								psprintf("%s/%s/%d", node->location, arrays[k], i),
								false);
			}
	}
	for (k = 0; k < lengthof(maps); k++)
	{
		JsonbValue *v = member(raw, maps[k]);

		if (v && v->type == jbvObject)
			for (i = 0; i < v->val.object.nPairs; i++)
			{
				JsonbValue *e = &v->val.object.pairs[i].value;

				if (e->type == jbvObject || e->type == jbvBool)
					scan_schema(c, e, node->base, node->draft, node->validation,
								node->res,
								psprintf("%s/%s/%s", node->location, maps[k],
										 jstr(&v->val.object.pairs[i].key)),
								false);
			}
	}
}

/*
 * First pass over a schema (sub)tree: create a JsNode per schema object,
 * track base URIs, register resources ($id) and anchors.  Keywords are
 * compiled later, once every reference target exists.
 */
static JsNode *
scan_schema(JsCompiler *c, JsonbValue *raw, const char *base, JsDraft draft,
			bool validation, JsResource *res, const char *location,
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
	node->validation = validation;
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
		schema_error(node, NULL, "a schema must be an object or a boolean");

	v = member(raw, "$schema");
	if (v && v->type == jbvString)
	{
		node->draft = draft_from_schema_uri(c, jstr(v), &node->validation);
		/* draft_from_schema_uri may have grown the hash table */
	}

	v = member(raw, "$id");
	if (v && v->type == jbvString &&
		!(node->draft == JS_DRAFT7 && member(raw, "$ref")))
	{
		char	   *id = jstr(v);

		if (node->draft == JS_DRAFT7 && id[0] == '#')
		{
			if (res)
				add_anchor(res, id + 1, node, false);
		}
		else
		{
			char	   *abs = uri_resolve(base, id);
			char	   *uri;
			char	   *frag;

			uri_split(abs, &uri, &frag);
			node->base = uri;
			if (doc_root && res)
			{
				/* a document's own $id is an alias of its retrieval URI */
				add_uri(c, uri, res);
				res->root = node;
			}
			else
			{
				JsResource *nres = palloc0(sizeof(JsResource));

				nres->uri = uri;
				nres->raw = raw;
				nres->root = node;
				if (!find_resource(c, uri))
					add_uri(c, uri, nres);
				node->res = nres;
			}
			if (frag[0] && node->draft == JS_DRAFT7)
				add_anchor(node->res, frag, node, false);
		}
	}
	if (node->res == NULL)
	{
		JsResource *nres = palloc0(sizeof(JsResource));

		nres->uri = base;
		nres->raw = raw;
		nres->root = node;
		add_uri(c, base, nres);
		node->res = nres;
	}
	else if (doc_root && node->res->root == NULL)
		node->res->root = node;

	if (node->draft == JS_DRAFT2020)
	{
		v = member(raw, "$anchor");
		if (v && v->type == jbvString)
			add_anchor(node->res, jstr(v), node, false);
		v = member(raw, "$dynamicAnchor");
		if (v && v->type == jbvString)
			add_anchor(node->res, jstr(v), node, true);
	}

	c->pending = lappend(c->pending, node);
	scan_children(c, node, raw);
	return node;
}

/* Fetch a registered or built-in document and scan it as a new resource. */
static JsResource *
load_document(JsCompiler *c, const char *uri, JsDraft draft)
{
	Jsonb	   *doc = NULL;
	ListCell   *lc;
	int			i;
	MemoryContext old;
	JsResource *res;
	JsonbValue *raw;

	foreach(lc, registered_docs)
	{
		JsDocument *d = lfirst(lc);

		if (strcmp(d->uri, uri) == 0)
		{
			doc = palloc(VARSIZE(d->doc));
			memcpy(doc, d->doc, VARSIZE(d->doc));
			break;
		}
	}
	if (doc == NULL)
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
	raw = expand_container(&doc->root);
	res = palloc0(sizeof(JsResource));
	res->uri = pstrdup(uri);
	res->raw = raw;
	add_uri(c, uri, res);
	scan_schema(c, raw, res->uri, draft, true, res, "", true);
	if (res->root == NULL)
		res->root = scan_schema(c, raw, res->uri, draft, true, res, "", true);
	c->loading--;
	MemoryContextSwitchTo(old);
	return res;
}

/* Resolve a "$ref"-style reference from node to a target node. */
static JsNode *
resolve_ref(JsCompiler *c, JsNode *node, const char *keyword, const char *ref,
			JsAnchor **anchor)
{
	char	   *abs = uri_resolve(node->base, ref);
	char	   *uri;
	char	   *frag;
	JsResource *res;

	*anchor = NULL;
	uri_split(abs, &uri, &frag);
	res = find_resource(c, uri);
	if (res == NULL)
		res = load_document(c, uri, node->draft);
	if (res == NULL)
		schema_error(node, keyword,
					 psprintf("cannot resolve reference \"%s\" (no schema with URI \"%s\")",
							  ref, uri));
	if (frag[0] == '\0')
		return res->root;
	if (frag[0] == '/')
	{
		JsonbValue *cur = res->raw;
		char	   *p = frag + 1;
		StringInfoData loc;
		JsNodeMapEntry *ent;

		initStringInfo(&loc);
		appendStringInfoString(&loc, res->root->location);
		for (;;)
		{
			char	   *slash = strchr(p, '/');
			StringInfoData tok;
			char	   *q;

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
			if (cur->type == jbvObject)
				cur = member(cur, tok.data);
			else if (cur->type == jbvArray)
			{
				char	   *end;
				long		idx = strtol(tok.data, &end, 10);

				if (*end || tok.len == 0 || idx < 0 || idx >= cur->val.array.nElems)
					cur = NULL;
				else
					cur = &cur->val.array.elems[idx];
			}
			else
				cur = NULL;
			if (cur == NULL)
				schema_error(node, keyword,
							 psprintf("cannot resolve reference \"%s\"", ref));
			appendStringInfo(&loc, "/%s", tok.data);
			if (slash == NULL)
				break;
			p = slash + 1;
		}
		ent = hash_search(c->nodes, &cur, HASH_FIND, NULL);
		if (ent)
			return ent->node;
		/* a location no keyword we know of declares as a schema */
		return scan_schema(c, cur, res->root->base, res->root->draft,
						   res->root->validation, res, loc.data, false);
	}
	*anchor = find_anchor(res, frag, false);
	if (*anchor == NULL)
		schema_error(node, keyword,
					 psprintf("cannot resolve reference \"%s\" (no anchor \"%s\")",
							  ref, frag));
	return (*anchor)->node;
}

/* keyword-argument helpers */

static JsNode *
sub_node(JsCompiler *c, JsNode *node, const char *kw, JsonbValue *v)
{
	JsNodeMapEntry *ent;

	if (v->type != jbvObject && v->type != jbvBool)
		schema_error(node, kw, "must be a schema (object or boolean)");
	ent = hash_search(c->nodes, &v, HASH_FIND, NULL);
	if (ent)
		return ent->node;
	return scan_schema(c, v, node->base, node->draft, node->validation, node->res,
					   psprintf("%s/%s", node->location, kw), false);
}

static int64
kw_count(JsNode *node, const char *kw, JsonbValue *v)
{
	Numeric		n;
	Numeric		maxn;

	if (v->type != jbvNumeric || !num_is_integral(v->val.numeric) ||
		num_sign(v->val.numeric) < 0)
		schema_error(node, kw, "must be a non-negative integer");
	n = v->val.numeric;
	maxn = int64_to_numeric(PG_INT32_MAX);
	if (num_cmp(n, maxn) > 0)
		return PG_INT32_MAX;
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(n)));
}

static Numeric
kw_number(JsNode *node, const char *kw, JsonbValue *v)
{
	if (v->type != jbvNumeric)
		schema_error(node, kw, "must be a number");
	return v->val.numeric;
}

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

static int
prop_cmp(const void *a, const void *b)
{
	const JsProp *pa = a;
	const JsProp *pb = b;

	return ds_jsonb_key_cmp(pa->key, pa->keylen, pb->key, pb->keylen);
}

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

typedef struct KwBuf
{
	JsKw	   *kw;
	int			n;
	int			cap;
} KwBuf;

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

		pats[i].re = compile_regex(c->schema, p->key.val.string.val,
								   p->key.val.string.len, &err);
		if (pats[i].re == NULL)
			schema_error(node, "patternProperties",
						 psprintf("invalid regular expression \"%s\": %s",
								  jstr(&p->key), err));
		pats[i].node = sub_node(c, node,
								psprintf("patternProperties/%s", jstr(&p->key)),
								&p->value);
	}
	return pats;
}

static void
compile_node(JsCompiler *c, JsNode *node)
{
	JsonbValue *raw = node->raw;
	KwBuf		b = {0};
	JsKw	   *k;
	JsonbValue *v;
	JsonbValue *v2;
	bool		d7 = (node->draft == JS_DRAFT7);
	bool		val = node->validation;
	JsProp	   *props = NULL;
	int			nprops = 0;
	JsPatProp  *pats = NULL;
	int			npats = 0;
	int			i;
	JsAnchor   *anchor;

	node->compiled = true;

	/* draft-07: "$ref" makes every sibling keyword be ignored */
	if (d7 && (v = member(raw, "$ref")) != NULL)
	{
		if (v->type != jbvString)
			schema_error(node, "$ref", "must be a string");
		k = kw_add(&b, KW_REF, "$ref");
		k->u.ref.target = resolve_ref(c, node, "$ref", jstr(v), &anchor);
		node->kw = b.kw;
		node->nkw = b.n;
		return;
	}

	if (val && (v = member(raw, "type")) != NULL)
	{
		k = kw_add(&b, KW_TYPE, "type");
		if (v->type == jbvArray)
			for (i = 0; i < v->val.array.nElems; i++)
				k->u.types |= type_bit(node, &v->val.array.elems[i]);
		else
			k->u.types = type_bit(node, v);
		if (k->u.types & DS_JSON_NUMBER)
			k->u.types |= DS_JSON_INTEGER;
	}
	if (val && (v = member(raw, "enum")) != NULL)
	{
		if (v->type != jbvArray)
			schema_error(node, "enum", "must be an array");
		k = kw_add(&b, KW_ENUM, "enum");
		k->u.vals.n = v->val.array.nElems;
		k->u.vals.vals = v->val.array.elems;
	}
	if (val && (v = member(raw, "const")) != NULL)
		kw_add(&b, KW_CONST, "const")->u.value = v;
	if (val && (v = member(raw, "multipleOf")) != NULL)
	{
		Numeric		n = kw_number(node, "multipleOf", v);

		if (num_sign(n) <= 0)
			schema_error(node, "multipleOf", "must be greater than 0");
		kw_add(&b, KW_MULTIPLEOF, "multipleOf")->u.num = n;
	}
	if (val && (v = member(raw, "maximum")) != NULL)
		kw_add(&b, KW_MAXIMUM, "maximum")->u.num = kw_number(node, "maximum", v);
	if (val && (v = member(raw, "exclusiveMaximum")) != NULL && v->type != jbvBool)
		kw_add(&b, KW_EXMAXIMUM, "exclusiveMaximum")->u.num =
			kw_number(node, "exclusiveMaximum", v);
	if (val && (v = member(raw, "minimum")) != NULL)
		kw_add(&b, KW_MINIMUM, "minimum")->u.num = kw_number(node, "minimum", v);
	if (val && (v = member(raw, "exclusiveMinimum")) != NULL && v->type != jbvBool)
		kw_add(&b, KW_EXMINIMUM, "exclusiveMinimum")->u.num =
			kw_number(node, "exclusiveMinimum", v);
	if (val && (v = member(raw, "maxLength")) != NULL)
		kw_add(&b, KW_MAXLENGTH, "maxLength")->u.count = kw_count(node, "maxLength", v);
	if (val && (v = member(raw, "minLength")) != NULL)
		kw_add(&b, KW_MINLENGTH, "minLength")->u.count = kw_count(node, "minLength", v);
	if (val && (v = member(raw, "pattern")) != NULL)
	{
		char	   *err;

		if (v->type != jbvString)
			schema_error(node, "pattern", "must be a string");
		k = kw_add(&b, KW_PATTERN, "pattern");
		k->u.re = compile_regex(c->schema, v->val.string.val, v->val.string.len, &err);
		if (k->u.re == NULL)
			schema_error(node, "pattern",
						 psprintf("invalid regular expression \"%s\": %s", jstr(v), err));
	}
	if ((v = member(raw, "format")) != NULL && v->type == jbvString)
		kw_add(&b, KW_FORMAT, "format")->u.format = jstr(v);
	if (val && (v = member(raw, "maxItems")) != NULL)
		kw_add(&b, KW_MAXITEMS, "maxItems")->u.count = kw_count(node, "maxItems", v);
	if (val && (v = member(raw, "minItems")) != NULL)
		kw_add(&b, KW_MINITEMS, "minItems")->u.count = kw_count(node, "minItems", v);
	if (val && (v = member(raw, "uniqueItems")) != NULL)
	{
		if (v->type != jbvBool)
			schema_error(node, "uniqueItems", "must be a boolean");
		if (v->val.boolean)
			kw_add(&b, KW_UNIQUEITEMS, "uniqueItems");
	}
	if (val && (v = member(raw, "maxProperties")) != NULL)
		kw_add(&b, KW_MAXPROPS, "maxProperties")->u.count =
			kw_count(node, "maxProperties", v);
	if (val && (v = member(raw, "minProperties")) != NULL)
		kw_add(&b, KW_MINPROPS, "minProperties")->u.count =
			kw_count(node, "minProperties", v);
	if (val && (v = member(raw, "required")) != NULL)
	{
		k = kw_add(&b, KW_REQUIRED, "required");
		kw_string_array(node, "required", v, &k->u.vals.n, &k->u.vals.vals);
	}
	if (!d7 && val && (v = member(raw, "dependentRequired")) != NULL)
	{
		if (v->type != jbvObject)
			schema_error(node, "dependentRequired", "must be an object");
		k = kw_add(&b, KW_DEPREQUIRED, "dependentRequired");
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
	/* "dependencies" is draft-07; 2020-12 keeps honouring it for compatibility */
	if ((v = member(raw, "dependencies")) != NULL)
	{
		JsKw	   *kr,
				   *ks;
		int			nr = 0,
					ns = 0;

		if (v->type != jbvObject)
			schema_error(node, "dependencies", "must be an object");
		kr = kw_add(&b, KW_DEPREQUIRED, "dependencies");
		kr->u.props.props = palloc0(sizeof(JsProp) * Max(v->val.object.nPairs, 1));
		ks = kw_add(&b, KW_DEPSCHEMAS, "dependencies");
		kr = &b.kw[b.n - 2];	/* kw_add may have moved the array */
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
	if ((v = member(raw, "$ref")) != NULL)
	{
		if (v->type != jbvString)
			schema_error(node, "$ref", "must be a string");
		k = kw_add(&b, KW_REF, "$ref");
		k->u.ref.target = resolve_ref(c, node, "$ref", jstr(v), &anchor);
	}
	if (!d7 && (v = member(raw, "$dynamicRef")) != NULL)
	{
		JsNode	   *target;

		if (v->type != jbvString)
			schema_error(node, "$dynamicRef", "must be a string");
		target = resolve_ref(c, node, "$dynamicRef", jstr(v), &anchor);
		k = kw_add(&b, KW_DYNREF, "$dynamicRef");
		k->u.ref.target = target;
		/* only a reference to a $dynamicAnchor is dynamic ("bookending") */
		if (anchor && anchor->dynamic)
			k->u.ref.anchor = anchor->name;
	}
	if ((v = member(raw, "allOf")) != NULL)
	{
		k = kw_add(&b, KW_ALLOF, "allOf");
		k->u.list.subs = kw_schema_list(c, node, "allOf", v, &k->u.list.n);
	}
	if ((v = member(raw, "anyOf")) != NULL)
	{
		k = kw_add(&b, KW_ANYOF, "anyOf");
		k->u.list.subs = kw_schema_list(c, node, "anyOf", v, &k->u.list.n);
	}
	if ((v = member(raw, "oneOf")) != NULL)
	{
		k = kw_add(&b, KW_ONEOF, "oneOf");
		k->u.list.subs = kw_schema_list(c, node, "oneOf", v, &k->u.list.n);
	}
	if ((v = member(raw, "not")) != NULL)
		kw_add(&b, KW_NOT, "not")->u.sub = sub_node(c, node, "not", v);
	if ((v = member(raw, "if")) != NULL)
	{
		JsNode	   *ifs = sub_node(c, node, "if", v);
		JsNode	   *thens = NULL,
				   *elses = NULL;

		if ((v2 = member(raw, "then")) != NULL)
			thens = sub_node(c, node, "then", v2);
		if ((v2 = member(raw, "else")) != NULL)
			elses = sub_node(c, node, "else", v2);
		k = kw_add(&b, KW_IF, "if");
		k->u.cond.ifs = ifs;
		k->u.cond.thens = thens;
		k->u.cond.elses = elses;
	}
	if (!d7 && (v = member(raw, "dependentSchemas")) != NULL)
	{
		int			n;
		JsProp	   *dp = kw_schema_map(c, node, "dependentSchemas", v, &n);

		k = kw_add(&b, KW_DEPSCHEMAS, "dependentSchemas");
		k->u.props.n = n;
		k->u.props.props = dp;
	}
	/* arrays */
	if (d7)
	{
		int			nitems = -1;

		if ((v = member(raw, "items")) != NULL)
		{
			k = kw_add(&b, v->type == jbvArray ? KW_PREFIXITEMS : KW_ITEMS, "items");
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
		if (nitems >= 0 && (v = member(raw, "additionalItems")) != NULL)
		{
			k = kw_add(&b, KW_ITEMS, "additionalItems");
			k->u.items.sub = sub_node(c, node, "additionalItems", v);
			k->u.items.start = nitems;
		}
	}
	else
	{
		int			nprefix = 0;

		if ((v = member(raw, "prefixItems")) != NULL)
		{
			k = kw_add(&b, KW_PREFIXITEMS, "prefixItems");
			k->u.list.subs = kw_schema_list(c, node, "prefixItems", v, &k->u.list.n);
			nprefix = k->u.list.n;
		}
		if ((v = member(raw, "items")) != NULL)
		{
			k = kw_add(&b, KW_ITEMS, "items");
			k->u.items.sub = sub_node(c, node, "items", v);
			k->u.items.start = nprefix;
		}
	}
	if ((v = member(raw, "contains")) != NULL)
	{
		k = kw_add(&b, KW_CONTAINS, "contains");
		k->u.contains.sub = sub_node(c, node, "contains", v);
		k->u.contains.min = 1;
		k->u.contains.max = -1;
		if (!d7 && val && (v2 = member(raw, "minContains")) != NULL)
			k->u.contains.min = kw_count(node, "minContains", v2);
		if (!d7 && val && (v2 = member(raw, "maxContains")) != NULL)
			k->u.contains.max = kw_count(node, "maxContains", v2);
	}
	/* objects */
	if ((v = member(raw, "properties")) != NULL)
	{
		props = kw_schema_map(c, node, "properties", v, &nprops);
		k = kw_add(&b, KW_PROPERTIES, "properties");
		k->u.props.n = nprops;
		k->u.props.props = props;
	}
	if ((v = member(raw, "patternProperties")) != NULL)
	{
		pats = kw_patterns(c, node, v, &npats);
		k = kw_add(&b, KW_PATTERNPROPS, "patternProperties");
		k->u.pats.n = npats;
		k->u.pats.pats = pats;
	}
	if ((v = member(raw, "additionalProperties")) != NULL)
	{
		k = kw_add(&b, KW_ADDITIONALPROPS, "additionalProperties");
		k->u.addl.sub = sub_node(c, node, "additionalProperties", v);
		k->u.addl.nprops = nprops;
		k->u.addl.props = props;
		k->u.addl.npats = npats;
		k->u.addl.pats = pats;
	}
	if ((v = member(raw, "propertyNames")) != NULL)
		kw_add(&b, KW_PROPNAMES, "propertyNames")->u.sub =
			sub_node(c, node, "propertyNames", v);
	if (!d7 && (v = member(raw, "unevaluatedItems")) != NULL)
	{
		kw_add(&b, KW_UNEVALITEMS, "unevaluatedItems")->u.sub =
			sub_node(c, node, "unevaluatedItems", v);
		c->schema->has_unevaluated = true;
	}
	if (!d7 && (v = member(raw, "unevaluatedProperties")) != NULL)
	{
		kw_add(&b, KW_UNEVALPROPS, "unevaluatedProperties")->u.sub =
			sub_node(c, node, "unevaluatedProperties", v);
		c->schema->has_unevaluated = true;
	}
	node->kw = b.kw;
	node->nkw = b.n;
}

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
	raw = expand_container(&copy->root);

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
	s->root = scan_schema(&c, raw, "", JS_DRAFT2020, true, res, "", true);
	if (res->root == NULL)
		res->root = s->root;

	while (c.pending != NIL)
	{
		JsNode	   *node = linitial(c.pending);

		c.pending = list_delete_first(c.pending);
		if (!node->compiled)
			compile_node(&c, node);
	}
	MemoryContextSwitchTo(old);
	hash_destroy(c.nodes);
	return s;
}

void
ds_schema_free(JsonSchema *s)
{
	MemoryContextDelete(s->cxt);
}

/* ------------------------------------------------------------------------
 * Validation
 * ------------------------------------------------------------------------ */

typedef struct JsAnn
{
	Bitmapset  *props;			/* indexes of evaluated object members */
	bool		all_props;
	int			items_upto;		/* items [0, items_upto) evaluated */
	bool		all_items;
	Bitmapset  *items;			/* other evaluated item indexes */
} JsAnn;

typedef struct JsPathSeg
{
	const char *key;			/* NULL: array index */
	int			keylen;
	int			index;
} JsPathSeg;

typedef struct JsRefFrame
{
	JsNode	   *node;
	JsonbValue *inst;
} JsRefFrame;

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
} JsCtx;

static bool eval_node(JsCtx *ctx, JsNode *node, JsonbValue *inst, JsAnn *ann);

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

/* evaluate without reporting errors (a branch that may legitimately fail) */
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
					 errdetail("reference to \"#%s\" loops without consuming any input",
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

/* child instance: properties, items */
static bool
eval_child(JsCtx *ctx, JsNode *node, JsonbValue *inst, const char *key,
		   int keylen, int index)
{
	bool		r;

	/* fast paths that need no path bookkeeping */
	if (node->is_bool && node->bool_value)
		return true;
	path_push(ctx, key, keylen, index);
	r = eval_node(ctx, node, inst, NULL);
	ctx->depth--;
	return r;
}

static int
json_length(JsonbValue *v)
{
	return pg_mbstrlen_with_len(v->val.string.val, v->val.string.len);
}

static bool
num_is_integer(JsonbValue *v)
{
	return v->type == jbvNumeric && num_is_integral(v->val.numeric);
}

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

/* formats (asserted only on request) */

/*
 * Is s an RFC 3339 full-time (part) or date-time whose leap second, if it
 * has one, falls at 23:59:60 UTC?
 */
static bool
valid_time(const char *s, int len, DsRfc3339Part part)
{
	DsRfc3339	tm;

	if (!ds_parse_rfc3339(s, len, part, &tm))
		return false;
	/* a leap second is only at 23:59:60 UTC */
	return tm.second < 60 ||
		(tm.hour * 60 + tm.minute - tm.offset + 1440) % 1440 == 23 * 60 + 59;
}

/* the inside of an e-mail domain literal: dotted-quad IPv4 or "IPv6:..." */
static bool
valid_ip_literal(const char *s, int len)
{
	int			i,
				parts = 0,
				v = -1;

	if (len > 5 && strncmp(s, "IPv6:", 5) == 0)
	{
		for (i = 5; i < len; i++)
			if (!isxdigit((unsigned char) s[i]) && s[i] != ':' && s[i] != '.')
				return false;
		return true;
	}
	for (i = 0; i <= len; i++)
	{
		if (i == len || s[i] == '.')
		{
			if (v < 0 || v > 255)
				return false;
			parts++;
			v = -1;
		}
		else if (isdigit((unsigned char) s[i]))
			v = (v < 0 ? 0 : v * 10) + (s[i] - '0');
		else
			return false;
	}
	return parts == 4;
}

static bool
check_format(const char *format, const char *s, int len)
{
	int			i;

	if (strcmp(format, "date-time") == 0)
		return valid_time(s, len, DS_RFC3339_DATE_TIME);
	if (strcmp(format, "date") == 0)
		return ds_parse_rfc3339(s, len, DS_RFC3339_DATE, NULL);
	if (strcmp(format, "time") == 0)
		return valid_time(s, len, DS_RFC3339_TIME);
	if (strcmp(format, "uuid") == 0)
	{
		if (len != 36)
			return false;
		for (i = 0; i < 36; i++)
		{
			if (i == 8 || i == 13 || i == 18 || i == 23)
			{
				if (s[i] != '-')
					return false;
			}
			else if (!isxdigit((unsigned char) s[i]))
				return false;
		}
		return true;
	}
	if (strcmp(format, "email") == 0)
	{
		const char *at = NULL;

		for (i = len - 1; i >= 0; i--)
			if (s[i] == '@')
			{
				at = s + i;
				break;
			}
		if (at == NULL || at == s || at == s + len - 1)
			return false;
		/* local part: no leading/trailing/double dots (unless quoted) */
		if (s[0] != '"')
		{
			if (s[0] == '.' || at[-1] == '.')
				return false;
			for (i = 0; s + i < at; i++)
				if ((s[i] == '.' && s[i + 1] == '.') || s[i] == ' ' || s[i] == '@')
					return false;
		}
		/* domain: hostname labels or an IP literal */
		if (at[1] == '[')
			return s[len - 1] == ']' &&
				valid_ip_literal(at + 2, (s + len - 1) - (at + 2));
		for (i = at - s + 1; i < len; i++)
			if (!(isalnum((unsigned char) s[i]) || s[i] == '-' || s[i] == '.' ||
				  (unsigned char) s[i] >= 0x80))
				return false;
		return at[1] != '.' && at[1] != '-' && s[len - 1] != '.';
	}
	return true;				/* unknown formats are annotations */
}

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

static bool
eval_kw(JsCtx *ctx, JsKw *k, JsonbValue *inst, uint32 kind, JsAnn *ann)
{
	int			i,
				j,
				n;

	switch (k->kind)
	{
		case KW_TYPE:
			if (k->u.types & kind)
				return true;
			if ((k->u.types & DS_JSON_INTEGER) && kind == DS_JSON_NUMBER && num_is_integer(inst))
				return true;
			report(ctx, k->name, "expected %s, got %s", types_text(k->u.types),
				   ds_json_type_name(kind));
			return false;
		case KW_ENUM:
			for (i = 0; i < k->u.vals.n; i++)
				if (json_equal(inst, &k->u.vals.vals[i]))
					return true;
			report(ctx, k->name, "value is not one of the allowed values");
			return false;
		case KW_CONST:
			if (json_equal(inst, k->u.value))
				return true;
			report(ctx, k->name, "value does not equal the constant");
			return false;
		case KW_MULTIPLEOF:
			if (kind != DS_JSON_NUMBER)
				return true;
			{
				Numeric		rem = DatumGetNumeric(DirectFunctionCall2(numeric_mod,
																	  NumericGetDatum(inst->val.numeric),
																	  NumericGetDatum(k->u.num)));

				if (num_sign(rem) == 0)
					return true;
			}
			report(ctx, k->name, "%s is not a multiple of %s",
				   numeric_normalize(inst->val.numeric), numeric_normalize(k->u.num));
			return false;
		case KW_MAXIMUM:
		case KW_EXMAXIMUM:
		case KW_MINIMUM:
		case KW_EXMINIMUM:
			if (kind != DS_JSON_NUMBER)
				return true;
			{
				int			c = num_cmp(inst->val.numeric, k->u.num);
				bool		ok;
				const char *op;

				switch (k->kind)
				{
					case KW_MAXIMUM:
						ok = c <= 0;
						op = "less than or equal to";
						break;
					case KW_EXMAXIMUM:
						ok = c < 0;
						op = "less than";
						break;
					case KW_MINIMUM:
						ok = c >= 0;
						op = "greater than or equal to";
						break;
					default:
						ok = c > 0;
						op = "greater than";
						break;
				}
				if (ok)
					return true;
				report(ctx, k->name, "%s is not %s %s",
					   numeric_normalize(inst->val.numeric), op,
					   numeric_normalize(k->u.num));
				return false;
			}
		case KW_MAXLENGTH:
			if (kind != DS_JSON_STRING || inst->val.string.len <= k->u.count ||
				json_length(inst) <= k->u.count)
				return true;
			report(ctx, k->name, "string is longer than %lld characters",
				   (long long) k->u.count);
			return false;
		case KW_MINLENGTH:
			if (kind != DS_JSON_STRING || json_length(inst) >= k->u.count)
				return true;
			report(ctx, k->name, "string is shorter than %lld characters",
				   (long long) k->u.count);
			return false;
		case KW_PATTERN:
			if (kind != DS_JSON_STRING ||
				regex_match(k->u.re, inst->val.string.val, inst->val.string.len))
				return true;
			report(ctx, k->name, "string does not match pattern \"%s\"", k->u.re->source);
			return false;
		case KW_FORMAT:
			if (!ctx->assert_formats || kind != DS_JSON_STRING ||
				check_format(k->u.format, inst->val.string.val, inst->val.string.len))
				return true;
			report(ctx, k->name, "string is not a valid \"%s\"", k->u.format);
			return false;
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
			if (kind != DS_JSON_ARRAY)
				return true;
			n = inst->val.array.nElems;
			for (i = 0; i < n; i++)
				for (j = i + 1; j < n; j++)
					if (json_equal(&inst->val.array.elems[i], &inst->val.array.elems[j]))
					{
						report(ctx, k->name, "items %d and %d are equal", i, j);
						return false;
					}
			return true;
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
			{
				bool		ok = true;

				if (kind != DS_JSON_OBJECT)
					return true;
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
		case KW_DEPREQUIRED:
			{
				bool		ok = true;

				if (kind != DS_JSON_OBJECT)
					return true;
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
		case KW_REF:
			return eval_ref(ctx, k->u.ref.target, inst, ann);
		case KW_DYNREF:
			{
				JsNode	   *target = k->u.ref.target;

				if (k->u.ref.anchor)
					for (i = 0; i < ctx->nscope; i++)
					{
						JsAnchor   *a = find_anchor(ctx->scope[i], k->u.ref.anchor, true);

						if (a)
						{
							target = a->node;
							break;
						}
					}
				return eval_ref(ctx, target, inst, ann);
			}
		case KW_ALLOF:
			{
				bool		ok = true;

				for (i = 0; i < k->u.list.n; i++)
					if (!eval_node(ctx, k->u.list.subs[i], inst, ann))
					{
						ok = false;
						if (ctx->errors == NULL)
							break;
					}
				return ok;
			}
		case KW_ANYOF:
			{
				bool		ok = false;

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
		case KW_ONEOF:
			{
				int			nvalid = 0;
				int			first = -1;

				for (i = 0; i < k->u.list.n; i++)
				{
					JsAnn		sub = {0};

					if (eval_quiet(ctx, k->u.list.subs[i], inst, ann ? &sub : NULL))
					{
						if (nvalid++ == 0)
						{
							first = i;
							ann_merge(ann, &sub);
						}
						else
						{
							report(ctx, k->name,
								   "value matches schemas %d and %d of oneOf", first, i);
							return false;
						}
					}
				}
				if (nvalid == 1)
					return true;
				report(ctx, k->name, "value does not match any schema of oneOf");
				return false;
			}
		case KW_NOT:
			if (!eval_quiet(ctx, k->u.sub, inst, NULL))
				return true;
			report(ctx, k->name, "value must not match the schema");
			return false;
		case KW_IF:
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
		case KW_DEPSCHEMAS:
			{
				bool		ok = true;

				if (kind != DS_JSON_OBJECT)
					return true;
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
		case KW_PREFIXITEMS:
			{
				bool		ok = true;

				if (kind != DS_JSON_ARRAY)
					return true;
				n = Min(inst->val.array.nElems, k->u.list.n);
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
		case KW_ITEMS:
			{
				bool		ok = true;

				if (kind != DS_JSON_ARRAY)
					return true;
				n = inst->val.array.nElems;
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
				if (!ok)
					return false;
				return true;
			}
		case KW_CONTAINS:
			{
				int			matches = 0;

				if (kind != DS_JSON_ARRAY)
					return true;
				n = inst->val.array.nElems;
				for (i = 0; i < n; i++)
				{
					path_push(ctx, NULL, 0, i);
					if (eval_quiet(ctx, k->u.contains.sub, &inst->val.array.elems[i], NULL))
					{
						matches++;
						if (ann)
							ann->items = bms_add_member(ann->items, i);
						else if (k->u.contains.max < 0 && matches >= k->u.contains.min)
						{
							ctx->depth--;
							break;
						}
					}
					ctx->depth--;
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
		case KW_PROPERTIES:
			{
				bool		ok = true;

				if (kind != DS_JSON_OBJECT)
					return true;
				/* members and properties are both in jsonb key order: merge */
				j = 0;
				for (i = 0; i < inst->val.object.nPairs; i++)
				{
					JsonbPair  *pair = &inst->val.object.pairs[i];
					JsProp	   *p = NULL;
					int			c = 1;

					while (j < k->u.props.n &&
						   (c = ds_jsonb_key_cmp(pair->key.val.string.val, pair->key.val.string.len,
										k->u.props.props[j].key,
										k->u.props.props[j].keylen)) > 0)
						j++;
					if (j < k->u.props.n && c == 0)
						p = &k->u.props.props[j];
					if (p == NULL)
						continue;
					if (ann)
						ann->props = bms_add_member(ann->props, i);
					if (!eval_child(ctx, p->node, &pair->value, pair->key.val.string.val,
									pair->key.val.string.len, 0))
					{
						ok = false;
						if (ctx->errors == NULL)
							break;
					}
				}
				return ok;
			}
		case KW_PATTERNPROPS:
			{
				bool		ok = true;

				if (kind != DS_JSON_OBJECT)
					return true;
				for (i = 0; i < inst->val.object.nPairs; i++)
				{
					JsonbPair  *pair = &inst->val.object.pairs[i];

					for (j = 0; j < k->u.pats.n; j++)
					{
						JsPatProp  *pp = &k->u.pats.pats[j];

						if (!regex_match(pp->re, pair->key.val.string.val,
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
		case KW_ADDITIONALPROPS:
			{
				bool		ok = true;

				int			pj = 0;

				if (kind != DS_JSON_OBJECT)
					return true;
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
						matched = regex_match(k->u.addl.pats[j].re, key, keylen);
					if (matched)
						continue;
					if (k->u.addl.sub->is_bool && !k->u.addl.sub->bool_value)
					{
						path_push(ctx, key, keylen, 0);
						report(ctx, k->name, "property is not allowed");
						ctx->depth--;
						ok = false;
					}
					else if (!eval_child(ctx, k->u.addl.sub, &pair->value, key, keylen, 0))
						ok = false;
					if (!ok && ctx->errors == NULL)
						return false;
				}
				if (ann)
					ann->all_props = true;
				return ok;
			}
		case KW_PROPNAMES:
			{
				bool		ok = true;

				if (kind != DS_JSON_OBJECT)
					return true;
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
		case KW_UNEVALITEMS:
			{
				bool		ok = true;

				if (kind != DS_JSON_ARRAY)
					return true;
				if (ann == NULL || !ann->all_items)
					for (i = ann ? ann->items_upto : 0; i < inst->val.array.nElems; i++)
					{
						if (ann && bms_is_member(i, ann->items))
							continue;
						if (k->u.sub->is_bool && !k->u.sub->bool_value)
						{
							path_push(ctx, NULL, 0, i);
							report(ctx, k->name, "item is not allowed");
							ctx->depth--;
							ok = false;
						}
						else if (!eval_child(ctx, k->u.sub, &inst->val.array.elems[i], NULL, 0, i))
							ok = false;
						if (!ok)
						{
							if (ctx->errors == NULL)
								return false;
						}
					}
				if (ann)
					ann->all_items = true;
				return ok;
			}
		case KW_UNEVALPROPS:
			{
				bool		ok = true;

				if (kind != DS_JSON_OBJECT)
					return true;
				if (ann == NULL || !ann->all_props)
					for (i = 0; i < inst->val.object.nPairs; i++)
					{
						JsonbPair  *pair = &inst->val.object.pairs[i];

						if (ann && bms_is_member(i, ann->props))
							continue;
						if (k->u.sub->is_bool && !k->u.sub->bool_value)
						{
							path_push(ctx, pair->key.val.string.val,
									  pair->key.val.string.len, 0);
							report(ctx, k->name, "property is not allowed");
							ctx->depth--;
							ok = false;
						}
						else if (!eval_child(ctx, k->u.sub, &pair->value,
											 pair->key.val.string.val,
											 pair->key.val.string.len, 0))
							ok = false;
						if (!ok)
						{
							if (ctx->errors == NULL)
								return false;
						}
					}
				if (ann)
					ann->all_props = true;
				return ok;
			}
	}
	return true;
}

static bool
eval_node(JsCtx *ctx, JsNode *node, JsonbValue *inst, JsAnn *ann)
{
	JsAnn		local = {0};
	JsAnn	   *la = ctx->collect ? &local : NULL;
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
	check_stack_depth();
	CHECK_FOR_INTERRUPTS();

	/* entering another schema resource extends the dynamic scope */
	if (ctx->nscope == 0 || ctx->scope[ctx->nscope - 1] != node->res)
	{
		if (ctx->nscope >= ctx->scope_cap)
		{
			ctx->scope_cap = ctx->scope_cap ? ctx->scope_cap * 2 : 8;
			ctx->scope = ctx->scope ? repalloc(ctx->scope, sizeof(JsResource *) * ctx->scope_cap)
				: palloc(sizeof(JsResource *) * ctx->scope_cap);
		}
		ctx->scope[ctx->nscope++] = node->res;
		pushed = true;
	}

	kind = ds_json_type(inst);
	if (unlikely(kind == 0))
		elog(ERROR, "unexpected jsonb value type %d", (int) inst->type);
	for (i = 0; i < node->nkw; i++)
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
	if (valid && ann && la)
		ann_merge(ann, la);
	return valid;
}

bool
ds_schema_validate(JsonSchema *s, JsonbValue *value, bool assert_formats,
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
	inst = expand_value(value);
	r = eval_node(&ctx, s->root, inst, NULL);
	MemoryContextSwitchTo(old);
	MemoryContextReset(work);
	return r;
}

/* ------------------------------------------------------------------------
 * Per-backend cache of compiled schemas
 * ------------------------------------------------------------------------ */

#define DS_SCHEMA_CACHE_SIZE 64

typedef struct JsCacheEntry
{
	uint32		hash;
	Jsonb	   *key;			/* copy of the schema bytes */
	JsonSchema *schema;
	uint64		last_used;
	LocalTransactionId pinned;	/* in use by a batch of this transaction */
} JsCacheEntry;

static MemoryContext cache_cxt = NULL;
static JsCacheEntry cache[DS_SCHEMA_CACHE_SIZE];
static int	cache_n = 0;
static uint64 cache_clock = 0;
static int	cache_last = -1;	/* entry returned last */

/*
 * Entries pinned by the running transaction may be in use by a batch up
 * the stack (a trigger can register a document): their memory goes with
 * the transaction instead.
 */
void
ds_schema_cache_reset(void)
{
	for (int i = 0; i < cache_n; i++)
		if (cache[i].pinned == MyProc->lxid)
			MemoryContextSetParent(cache[i].schema->cxt, TopTransactionContext);
	if (cache_cxt)
		MemoryContextDelete(cache_cxt);
	cache_cxt = NULL;
	cache_n = 0;
	cache_last = -1;
}

static JsonSchema *
cache_lookup(Jsonb *schema, bool pin, MemoryContext private_cxt)
{
	uint32		size = VARSIZE(schema);

	uint32		hash;
	int			i;
	int			victim;
	JsonSchema *s;
	MemoryContext old;

	/* callers mostly repeat the previous schema: try it before hashing */
	if (cache_last >= 0 && cache_last < cache_n &&
		VARSIZE(cache[cache_last].key) == size &&
		memcmp(cache[cache_last].key, schema, size) == 0)
	{
		i = cache_last;
		goto hit;
	}
	hash = hash_bytes((const unsigned char *) schema, size);
	for (i = 0; i < cache_n; i++)
		if (cache[i].hash == hash && VARSIZE(cache[i].key) == size &&
			memcmp(cache[i].key, schema, size) == 0)
			goto hit;

	/*
	 * Compile under the caller's context first, so that an invalid schema
	 * leaves nothing behind; adopt it into the cache once it succeeded.
	 */
	s = ds_schema_compile(schema, pin ? private_cxt : CurrentMemoryContext);
	if (cache_n < DS_SCHEMA_CACHE_SIZE)
		victim = cache_n++;
	else
	{
		/* the least recently used entry that no batch of ours holds */
		victim = -1;
		for (i = 0; i < cache_n; i++)
			if (cache[i].pinned != MyProc->lxid &&
				(victim < 0 || cache[i].last_used < cache[victim].last_used))
				victim = i;
		if (victim < 0)
			return s;			/* all in use: the caller keeps a private copy */
		/* the key copy lives in the schema's context */
		MemoryContextDelete(cache[victim].schema->cxt);
	}
	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(CacheMemoryContext, "ds jsonschema cache",
										  ALLOCSET_SMALL_SIZES);
	MemoryContextSetParent(s->cxt, cache_cxt);
	old = MemoryContextSwitchTo(s->cxt);
	cache[victim].key = palloc(size);
	memcpy(cache[victim].key, schema, size);
	MemoryContextSwitchTo(old);
	cache[victim].hash = hash;
	cache[victim].schema = s;
	cache[victim].pinned = InvalidLocalTransactionId;
	i = victim;

hit:
	cache[i].last_used = ++cache_clock;
	if (pin)
		cache[i].pinned = MyProc->lxid;
	cache_last = i;
	return cache[i].schema;
}

/* Compiled schema, valid for the current call. */
JsonSchema *
ds_schema_get(Jsonb *schema)
{
	return cache_lookup(schema, false, NULL);
}

/*
 * Compiled schema, valid until the end of the transaction: the cache does
 * not evict it meanwhile (if every entry is so held, the schema is compiled
 * into private_cxt instead).
 */
JsonSchema *
ds_schema_get_pinned(Jsonb *schema, MemoryContext private_cxt)
{
	return cache_lookup(schema, true, private_cxt);
}
