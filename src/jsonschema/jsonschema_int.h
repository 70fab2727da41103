/*
 * jsonschema_int.h
 *		Private header of the JSON Schema validator (src/jsonschema/):
 *		the compiled form of a schema and the functions the files share.
 *
 * A schema compiles (compile.c) into a graph of JsNode: one per schema
 * object, each with an ordered array of JsKw (keyword + pre-digested
 * argument).  "$ref" targets are resolved to JsNode pointers at compile
 * time (cycles are fine: nodes are created before their keywords are
 * compiled), regular expressions are compiled once (regex.c; simple
 * ones are also matched without PCRE2 by regex_simple.c), and
 * const/enum values are kept as expanded JsonbValue trees (value.c).
 * validate.c walks that graph over an expanded value; inplace.c answers
 * yes/no over the jsonb itself, from a JsPlan per node; format.c (with
 * format_net.c and format_uri.c) checks the formats it asserts, content.c
 * the content keywords; uri.c resolves references and holds the registered
 * documents; cache.c keeps compiled schemas per backend.
 *
 * Everything a compiled schema points to lives in its JsonSchema's memory
 * context, except the PCRE2 code of its regular expressions, which a
 * reset callback on that context frees.
 *
 * Portions: the embedded meta-schemas (src/jsonschema_meta.h) are
 * copyright the JSON Schema specification authors, see the notice there.
 */
#ifndef DS_JSONSCHEMA_INT_H
#define DS_JSONSCHEMA_INT_H

#include "postgres.h"

#include "mb/pg_wchar.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "jsonschema.h"
#include "util.h"

/*
 * The dialect a schema object is read in (its "$schema", else its parent's,
 * else 2020-12).  The values compare in publication order: "draft <=
 * JS_DRAFT7" is every draft whose "$ref" hides its siblings.
 */
typedef enum JsDraft
{
	JS_DRAFT4 = 4,
	JS_DRAFT6 = 6,
	JS_DRAFT7 = 7,
	JS_DRAFT2019 = 2019,
	JS_DRAFT2020 = 2020
} JsDraft;

/*
 * The vocabularies a schema object's meta-schema turns on, as far as they
 * change what its keywords do: the validation vocabulary (on unless a
 * custom meta-schema's "$vocabulary" leaves it out), and 2020-12's
 * format-assertion vocabulary (off unless a custom meta-schema lists it),
 * which makes "format" an assertion whatever assert_formats says.
 */
#define JS_VOCAB_VALIDATION		0x01
#define JS_VOCAB_FORMAT_ASSERT	0x02

/*
 * draft-04's "integer" is a number written without a fraction: 1.0 is not
 * one.  Set in a "type" keyword's mask beside the DS_JSON_* bits.
 */
#define JS_TYPE_STRICT_INTEGER	0x80000000

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
	KW_CONTENT,
	KW_MAXITEMS,
	KW_MINITEMS,
	KW_UNIQUEITEMS,
	KW_MAXPROPS,
	KW_MINPROPS,
	KW_REQUIRED,
	KW_DEPREQUIRED,
	KW_REF,
	KW_DYNREF,
	KW_RECREF,
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

/* a pattern that regex_simple.c matches without PCRE2 */
typedef struct JsSimpleRe JsSimpleRe;

/* a compiled "pattern" or "patternProperties" key (regex.c) */
typedef struct JsRegex
{
	pcre2_code *code;			/* PCRE2, JIT-compiled when jit */
	pcre2_match_data *match_data;	/* reused by every match */
	bool		jit;
	JsSimpleRe *simple;			/* the pattern's simple form, or NULL */
	const char *source;
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

/* a "patternProperties" pattern with its schema */
typedef struct JsPatProp
{
	JsRegex    *re;
	JsNode	   *node;
} JsPatProp;

/* a compiled keyword: its kind and its argument, ready for validation */
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
		struct
		{
			const char *name;
			bool		assert; /* always an assertion (format-assertion) */
		}			format;
		struct
		{
			int			n;
			JsNode	  **subs;
		}			list;
		struct
		{
			int			n;
			JsonbValue *vals;
			JsonbValue *sorted; /* required: vals in jsonb key order */
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
			bool		annotate;	/* matches count as evaluated (2020-12) */
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
			bool		recursive;	/* $recursiveRef to a $recursiveAnchor */
		}			ref;
		struct
		{
			const char *encoding;	/* contentEncoding, or NULL */
			const char *media_type; /* contentMediaType, or NULL */
			JsNode	   *schema; /* contentSchema, or NULL */
		}			content;
	}			u;
} JsKw;

/*
 * A node whose keywords all check a scalar or an array's length (type,
 * lengths, pattern, format, bounds, item counts), gathered by validate.c
 * so that a yes/no validation checks them in straight-line code instead
 * of dispatching each through the keyword switch.
 */
typedef struct JsLeaf
{
	uint32		types;			/* "type" mask, 0: none */
	int64		maxlen;			/* -1: none */
	int64		minlen;
	JsRegex    *re;
	JsKw	   *format;
	Numeric		max;			/* NULL: none */
	Numeric		exmax;
	Numeric		min;
	Numeric		exmin;
	int64		maxitems;		/* -1: none */
	int64		minitems;
} JsLeaf;

/*
 * A finite number read in place (value.c): sign (-1, 0, 1), weight of the
 * first base-10000 digit, and the digits.
 */
typedef struct JsNumView
{
	int			sign;
	int			weight;
	int			ndigits;
	const int16 *digits;
} JsNumView;

/* a bound of a JsPlan: maximum, exclusiveMaximum, minimum, exclusiveMinimum */
typedef struct JsBound
{
	JsKwKind	kind;
	Numeric		num;
	bool		has_view;		/* view holds num (a finite number) */
	bool		has_int;		/* ival holds num (an integer below 10^16) */
	JsNumView	view;
	int64		ival;
} JsBound;

/*
 * A node's keywords regrouped for yes/no validation of a jsonb value in
 * place (inplace.c): the checks of each JSON type together, each once, so
 * that a value costs a few tests per keyword instead of a dispatch, and an
 * object's "properties", "patternProperties" and "additionalProperties"
 * merged into one walk of its members.  Built for every node of a schema
 * when compiled (JsonSchema.inplace says whether all of them could be).
 * The groups keep the node's keyword order, which is validation's.
 */
typedef struct JsShape JsShape;

typedef struct JsPlan
{
	uint32		types;			/* "type" mask, 0: none */
	uint32		flags;			/* JS_PLAN_*: the groups present */
	uint8		quick[2];		/* JS_QUICK_*, without and with assert_formats */
	JsKw	   *enumkw;			/* "enum", or NULL */
	JsonbValue *constval;		/* "const", or NULL */
	/* strings */
	int64		maxlen;			/* -1: none */
	int64		minlen;			/* 0: none */
	JsRegex    *re;
	JsKw	   *format;
	/* numbers */
	Numeric		multiple_of;
	int			nbounds;
	JsBound		bounds[4];
	/* arrays, before the applicators */
	int64		maxitems;		/* -1: none */
	int64		minitems;		/* 0: none */
	bool		unique;
	/* objects, before the applicators */
	int64		maxprops;		/* -1: none */
	int64		minprops;		/* 0: none */
	int			nrequired;
	JsonbValue *required;		/* in jsonb key order */
	/* keywords applying to the value itself, in evaluation order */
	int			napply;
	JsKw	  **apply;
	/* arrays, after the applicators */
	int			nprefix;
	JsNode	  **prefix;
	JsNode	   *items;			/* from index nprefix on, or NULL */
	JsKw	   *contains;
	/* objects, after the applicators */
	int			nprops;
	JsProp	   *props;			/* "properties", in jsonb key order */
	int			npats;
	JsPatProp  *pats;
	JsNode	   *addl;			/* "additionalProperties", or NULL */
	JsNode	   *propnames;
	JsShape    *shape;			/* the last object's members (inplace.c) */
	bool		reentrant;		/* may a member's evaluation walk this plan again? */
	uint32		visit;			/* js_plan_schema's mark */
} JsPlan;

#define JS_PLAN_STRING		0x01	/* string checks */
#define JS_PLAN_NUMBER		0x02	/* number checks */
#define JS_PLAN_ARRAY_PRE	0x04	/* maxItems, minItems, uniqueItems */
#define JS_PLAN_OBJECT_PRE	0x08	/* maxProperties, minProperties, required */
#define JS_PLAN_ARRAY_POST	0x10	/* prefixItems/items, contains */
#define JS_PLAN_MEMBERS		0x20	/* properties, patternProperties, additionalProperties */
#define JS_PLAN_TYPE_STRICT 0x40	/* draft-04 "integer" in types */

/*
 * JsPlan.quick: the scalars a plan lets through on their JEntry alone, so
 * that a walk of members or items checks them without a call: any string
 * whose length in bytes settles the length keywords, an integer below
 * 10^16 within bounds that are such integers too, any boolean, null.
 */
#define JS_QUICK_STRING		0x01
#define JS_QUICK_BOOL		0x02
#define JS_QUICK_NULL		0x04
#define JS_QUICK_INTEGER	0x08

/* JsNode.leaf_state */
#define JS_LEAF_UNKNOWN		0
#define JS_LEAF_YES			1
#define JS_LEAF_NO			2

/*
 * A compiled schema object (or boolean schema).  kw is empty until the
 * node is compiled; raw, base and location are what compilation needs.
 */
struct JsNode
{
	bool		is_bool;
	bool		bool_value;
	bool		compiled;
	uint8		vocab;			/* JS_VOCAB_* */
	JsDraft		draft;
	int			nkw;
	JsKw	   *kw;
	JsonbValue *raw;			/* the schema JSON (expanded) */
	const char *base;			/* base URI, without fragment */
	const char *location;		/* JSON Pointer of the node in its document */
	JsResource *res;			/* schema resource the node belongs to */
	uint8		leaf_state;		/* JS_LEAF_*, set at the first validation */
	JsLeaf	   *leaf;			/* when JS_LEAF_YES */
	JsPlan	   *plan;			/* inplace.c's form, when the schema has one */
};

/* a "$anchor" (or "$dynamicAnchor") of a resource */
typedef struct JsAnchor
{
	const char *name;
	JsNode	   *node;
	bool		dynamic;
} JsAnchor;

/* a schema resource: a document, or a subschema with an "$id" of its own */
struct JsResource
{
	const char *uri;			/* absolute URI without fragment */
	JsonbValue *raw;
	JsNode	   *root;
	List	   *anchors;		/* JsAnchor * */
	bool		recursive_anchor;	/* 2019-09 root with "$recursiveAnchor": true */
};

/* a compiled schema: the public header's opaque JsonSchema */
struct JsonSchema
{
	MemoryContext cxt;
	JsNode	   *root;
	bool		has_unevaluated;	/* collect annotations? */
	bool		inplace;		/* every node has a JsPlan (inplace.c) */
	List	   *regexes;		/* JsRegex *, freed by a reset callback */
};

/* value.c: expanded JSON trees and comparisons on them */
extern JsonbValue *js_expand_container(JsonbContainer *c);
extern JsonbValue *js_expand_value(JsonbValue *v);
extern JsonbValue *js_expand_scratch(JsonbValue *v);
extern JsonbValue *js_member(JsonbValue *obj, const char *key);
extern int	js_num_view_cmp(const JsNumView *a, const JsNumView *b);
extern int	js_num_cmp(Numeric a, Numeric b);
extern int	js_num_sign(Numeric n);
extern bool js_num_is_integral(Numeric n);
extern bool js_json_equal(JsonbValue *a, JsonbValue *b);

/*
 * Finite numerics read in place (JsNumView: sign, weight of the first
 * base-10000 digit, and the digits).  numeric.c keeps its on-disk layout
 * private but it has not changed since PostgreSQL 9.1 (a varlena, then a
 * 16-bit header: short format with sign, display scale and weight packed
 * in it, or long format with the weight in a second 16-bit word; leading
 * and trailing zero digits stripped).  Comparing two numbers this way
 * costs a fraction of numeric_cmp through fmgr, and the bounds keywords
 * compare every number they see.
 */
#define JS_NUMERIC_SIGN_MASK	0xC000
#define JS_NUMERIC_NEG			0x4000
#define JS_NUMERIC_SHORT		0x8000
#define JS_NUMERIC_SHORT_SIGN	0x2000
#define JS_NUMERIC_SHORT_WSIGN	0x0040
#define JS_NUMERIC_SHORT_WMASK	0x003F

/* Read n into *v; false for NaN, infinities, or a packed header. */
static inline bool
js_num_view(Numeric n, JsNumView *v)
{
	const char *p = (const char *) n;
	uint16		h;
	int			hdr;

	if (VARATT_IS_EXTENDED(p))
		return false;
	h = *(const uint16 *) (p + VARHDRSZ);
	switch (h & JS_NUMERIC_SIGN_MASK)
	{
		case JS_NUMERIC_SHORT:
			v->sign = (h & JS_NUMERIC_SHORT_SIGN) ? -1 : 1;
			v->weight = (h & JS_NUMERIC_SHORT_WSIGN) ?
				(int) (h & JS_NUMERIC_SHORT_WMASK) - (JS_NUMERIC_SHORT_WMASK + 1) :
				(int) (h & JS_NUMERIC_SHORT_WMASK);
			hdr = VARHDRSZ + sizeof(uint16);
			break;
		case 0:
		case JS_NUMERIC_NEG:
			v->sign = (h & JS_NUMERIC_SIGN_MASK) == JS_NUMERIC_NEG ? -1 : 1;
			v->weight = *(const int16 *) (p + VARHDRSZ + sizeof(uint16));
			hdr = VARHDRSZ + 2 * sizeof(uint16);
			break;
		default:
			return false;		/* NaN, Infinity, -Infinity */
	}
	v->ndigits = (VARSIZE(p) - hdr) / sizeof(int16);
	v->digits = (const int16 *) (p + hdr);
	if (v->ndigits == 0)
		v->sign = 0;
	return true;
}

/*
 * The integer a view holds, if it holds one below 10^16 in magnitude (four
 * base-10000 digits before the point, none after): compared as int64.
 */
static inline bool
js_num_view_int64(const JsNumView *v, int64 *out)
{
	int64		r = 0;
	int			i;

	if (v->weight > 3 || v->ndigits > v->weight + 1)
		return false;
	for (i = 0; i <= v->weight; i++)
		r = r * 10000 + (i < v->ndigits ? v->digits[i] : 0);
	*out = v->sign < 0 ? -r : r;
	return true;
}

/*
 * inplace.c: yes/no validation over the jsonb container itself.  A result
 * of JS_INPLACE_UNSURE means the value needs the general evaluator
 * (validate.c): a reference loop, deep nesting, or a comparison that
 * needs the value expanded.
 */
#define JS_INPLACE_UNSURE	(-1)
extern void js_plan_schema(JsonSchema *s);
extern int	js_validate_inplace(JsonSchema *s, JsonbValue *value,
								bool assert_formats);

/* uri.c: RFC 3986 references and the registered documents */
extern char *js_uri_resolve(const char *base, const char *ref);
extern void js_uri_split(const char *abs, char **uri, char **frag);
extern void js_register_document(const char *uri, Jsonb *doc);
extern Jsonb *js_registered_document(const char *uri);

/* regex.c: ECMA-262 regular expressions */
extern JsRegex *js_compile_regex(JsonSchema *s, const char *src, int len,
								 char **err);
extern bool js_regex_match(JsRegex *r, const char *str, int len);
extern bool js_regex_is_valid(const char *s, int len);
extern void js_regex_error(const char *location, const char *keyword,
						   const char *src, const char *err);

/* regex_simple.c: patterns matched without PCRE2 */
extern JsSimpleRe *js_simple_regex(const char *src, int len, MemoryContext cxt);
extern int	js_simple_match(const JsSimpleRe *re, const char *s, int len);

/* compile.c: what validation needs of a resource's anchors */
extern JsAnchor *js_find_anchor(JsResource *res, const char *name,
								bool dynamic_only);

/*
 * ASCII letters and digits: the grammars of formats and patterns are ASCII,
 * and isalnum() also says yes to some bytes >= 0x80 in a LATIN1 locale
 */
#define JS_ASCII_ALPHA(c) (((c) >= 'A' && (c) <= 'Z') || ((c) >= 'a' && (c) <= 'z'))
#define JS_ASCII_ALNUM(c) (JS_ASCII_ALPHA(c) || ((c) >= '0' && (c) <= '9'))

/* format.c: the "format" assertions */
extern bool js_check_format(const char *format, const char *s, int len);

/*
 * Whether a number that compares c (<0, 0, >0) with the bound of kind
 * (KW_MAXIMUM, KW_EXMAXIMUM, KW_MINIMUM, KW_EXMINIMUM) satisfies it.
 */
static inline bool
js_bound_holds(JsKwKind kind, int c)
{
	switch (kind)
	{
		case KW_MAXIMUM:
			return c <= 0;
		case KW_EXMAXIMUM:
			return c < 0;
		case KW_MINIMUM:
			return c >= 0;
		default:
			Assert(kind == KW_EXMINIMUM);
			return c > 0;
	}
}

/*
 * The string keywords on s (len bytes): maxLength and minLength (-1 and
 * 0: absent; characters are counted only when the byte length leaves it
 * in doubt, enc_max being the encoding's longest character), pattern re
 * and format (NULL: absent; asserted if assert_formats or the keyword
 * always asserts).
 */
static inline bool
js_string_holds(int maxlen, int minlen, JsRegex *re, JsKw *format, bool assert_formats,
				int enc_max, const char *s, int len)
{
	if (maxlen >= 0 && len > maxlen && pg_mbstrlen_with_len(s, len) > maxlen)
		return false;
	if (minlen > 0 && len < minlen * enc_max && pg_mbstrlen_with_len(s, len) < minlen)
		return false;
	if (re && !js_regex_match(re, s, len))
		return false;
	return format == NULL || !(assert_formats || format->u.format.assert) ||
		js_check_format(format->u.format.name, s, len);
}

/* format_net.c: IP addresses, host names, e-mail addresses */
extern bool js_valid_ipv4(const char *s, int len);
extern bool js_valid_ipv6(const char *s, int len);
extern bool js_valid_hostname(const char *s, int len, bool idn);
extern bool js_valid_email(const char *s, int len, bool idn);

/* content.c: the content keywords as assertions */
extern bool js_check_content(const char *encoding, const char *media_type,
							 const char *s, int len, Jsonb **doc, const char **why);

/* format_uri.c: URIs, IRIs, URI templates */
extern bool js_valid_uri(const char *s, int len, bool iri, bool reference);
extern bool js_valid_uri_template(const char *s, int len);

#endif							/* DS_JSONSCHEMA_INT_H */
