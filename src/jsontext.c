/*
 * jsontext.c
 *		JSON text straight to jsonb, for state.apply_text: one pass over an
 *		event's text, without jsonb_in's detour.
 *
 * jsonb_in runs PostgreSQL's general JSON parser (a lexer with a callback
 * per token), builds the value with pushJsonbValue (growing and copying the
 * member arrays as it goes), and keeps everything it allocated until the
 * end of the call: for a large NDJSON batch the garbage, not the parsing,
 * dominated (the kernel zeroing fresh pages was a third of apply_text's
 * time).  Here an event object is parsed by a small recursive-descent
 * parser into a JsonbValue tree in a scratch context that is reset after
 * every event: strings without escapes point into the text, integers of up
 * to 18 digits become numerics without numeric_in, each object's members
 * are sorted and de-duplicated as jsonb does (the last of equal keys wins),
 * and the tree is serialized by jsonb's own JsonbValueToJsonb, so the
 * result is byte for byte what jsonb_in gives.  The finished jsonb is
 * copied into blocks that hold the batch's events back to back.
 *
 * The fast path covers what events are made of.  Anything else makes it
 * give up and the caller runs jsonb_in on the same text, so jsonb_in
 * remains the authority on what is valid JSON and on every error message:
 * malformed text, \u escapes (surrogates, U+0000, the server encoding),
 * nesting deeper than DS_JT_MAX_DEPTH, a top level that is not an object,
 * strings too long for jsonb.  Numbers it does not convert itself go
 * through numeric_in, as jsonb_in's do, at the same point of the text, so
 * an out-of-range number raises the same error in the same order.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "jsontext.h"

/* deeper nesting is left to jsonb_in (and its stack depth check) */
#define DS_JT_MAX_DEPTH 64

/* the events' jsonb are carved out of blocks of this size */
#define DS_JT_BLOCK_BYTES (1024 * 1024)

typedef struct JtParser
{
	const char *p;				/* next byte */
	const char *end;			/* end of the text */
	int			depth;
} JtParser;

static bool parse_value(JtParser *ps, JsonbValue *out);

/* string_special[c]: byte c ends a run of plain string bytes */
static bool string_special[256];
static bool string_special_ready = false;

/* JSON's whitespace, as PostgreSQL's lexer takes it */
static inline bool
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline void
skip_ws(JtParser *ps)
{
	while (ps->p < ps->end && is_ws(*ps->p))
		ps->p++;
}

/*
 * Whether a number or literal may end here: at the end, whitespace or a
 * structural character.  jsonb_in refuses "truex" and "1x", so anything
 * else is left to it.
 */
static inline bool
at_delimiter(JtParser *ps)
{
	char		c;

	if (ps->p >= ps->end)
		return true;
	c = *ps->p;
	return is_ws(c) || c == ',' || c == ']' || c == '}' || c == ':';
}

/*
 * A string at ps->p (its opening quote) into *val, *len: pointing into the
 * text if it has no escapes, else unescaped into a palloc'd copy.  Returns
 * false (give up) on a control character, a \u escape or an invalid one,
 * a missing closing quote, or a string too long for jsonb.
 */
static bool
parse_string(JtParser *ps, char **val, int *len)
{
	const char *start = ps->p + 1;
	const char *s = start;
	bool		escaped = false;
	char	   *buf;
	char	   *d;

	for (;;)
	{
		unsigned char c;

		/* the bytes that need a look: '"', '\\' and control characters */
		while (s < ps->end && !string_special[(unsigned char) *s])
			s++;
		if (s >= ps->end)
			return false;
		c = (unsigned char) *s;
		if (c == '"')
			break;
		if (c < 0x20)
			return false;
		escaped = true;			/* a backslash */
		s++;
		if (s >= ps->end || *s == 'u')
			return false;
		s++;
	}
	if (s - start > JENTRY_OFFLENMASK)
		return false;
	ps->p = s + 1;
	if (!escaped)
	{
		*val = (char *) start;
		*len = s - start;
		return true;
	}
	buf = d = palloc(s - start);
	for (const char *q = start; q < s; q++)
	{
		if (*q != '\\')
		{
			*d++ = *q;
			continue;
		}
		switch (*++q)
		{
			case '"':
			case '\\':
			case '/':
				*d++ = *q;
				break;
			case 'b':
				*d++ = '\b';
				break;
			case 'f':
				*d++ = '\f';
				break;
			case 'n':
				*d++ = '\n';
				break;
			case 'r':
				*d++ = '\r';
				break;
			case 't':
				*d++ = '\t';
				break;
			default:
				return false;
		}
	}
	*val = buf;
	*len = d - buf;
	return true;
}

/*
 * A number at ps->p into out, checked against JSON's grammar.  An integer
 * of up to 18 digits is converted directly (the numeric numeric_in would
 * give: no scale, no leading zeros); any other number goes through
 * numeric_in as in jsonb_in.  Returns false (give up) on a malformed one.
 */
static bool
parse_number(JtParser *ps, JsonbValue *out)
{
	const char *start = ps->p;
	const char *s = start;
	bool		neg = false;
	bool		simple = true;
	int64		v = 0;
	int			ndigits;

	if (*s == '-')
	{
		neg = true;
		s++;
	}
	if (s >= ps->end || !isdigit((unsigned char) *s))
		return false;
	if (*s == '0')
		s++;
	else
		while (s < ps->end && isdigit((unsigned char) *s))
			v = v * 10 + (*s++ - '0');
	ndigits = s - start - (neg ? 1 : 0);
	if (s < ps->end && *s == '.')
	{
		simple = false;
		s++;
		if (s >= ps->end || !isdigit((unsigned char) *s))
			return false;
		while (s < ps->end && isdigit((unsigned char) *s))
			s++;
	}
	if (s < ps->end && (*s == 'e' || *s == 'E'))
	{
		simple = false;
		s++;
		if (s < ps->end && (*s == '+' || *s == '-'))
			s++;
		if (s >= ps->end || !isdigit((unsigned char) *s))
			return false;
		while (s < ps->end && isdigit((unsigned char) *s))
			s++;
	}
	ps->p = s;
	if (!at_delimiter(ps))
		return false;
	out->type = jbvNumeric;
	if (simple && ndigits <= 18)
		out->val.numeric = int64_to_numeric(neg ? -v : v);
	else
		out->val.numeric =
			DatumGetNumeric(DirectFunctionCall3(numeric_in,
												CStringGetDatum(pnstrdup(start, s - start)),
												ObjectIdGetDatum(InvalidOid),
												Int32GetDatum(-1)));
	return true;
}

/* "true", "false" or "null" (lit, len bytes) at ps->p; false if not there */
static bool
parse_literal(JtParser *ps, const char *lit, int len)
{
	if (ps->end - ps->p < len || memcmp(ps->p, lit, len) != 0)
		return false;
	ps->p += len;
	return at_delimiter(ps);
}

/*
 * Orders two members as jsonb does: shorter keys first, then bytewise; of
 * equal keys the later one first, so that de-duplication keeps it.
 */
static inline int
pair_cmp(const JsonbPair *a, const JsonbPair *b)
{
	int			la = a->key.val.string.len;
	int			lb = b->key.val.string.len;
	int			r;

	if (la != lb)
		return la < lb ? -1 : 1;
	r = memcmp(a->key.val.string.val, b->key.val.string.val, la);
	if (r != 0)
		return r;
	return a->order > b->order ? -1 : 1;
}

/*
 * Sorts an object's n members into jsonb's order (insertion sort: objects
 * are small) and drops all but the last of equal keys; returns how many
 * are left.
 */
static int
sort_pairs(JsonbPair *pairs, int n)
{
	int			kept = 0;

	for (int i = 1; i < n; i++)
	{
		JsonbPair	x = pairs[i];
		int			j = i - 1;

		while (j >= 0 && pair_cmp(&pairs[j], &x) > 0)
		{
			pairs[j + 1] = pairs[j];
			j--;
		}
		pairs[j + 1] = x;
	}
	for (int i = 0; i < n; i++)
	{
		if (kept > 0 &&
			pairs[kept - 1].key.val.string.len == pairs[i].key.val.string.len &&
			memcmp(pairs[kept - 1].key.val.string.val, pairs[i].key.val.string.val,
				   pairs[i].key.val.string.len) == 0)
			continue;
		if (kept != i)
			pairs[kept] = pairs[i];
		kept++;
	}
	return kept;
}

/* An object at ps->p (its opening brace) into out; false: give up. */
static bool
parse_object(JtParser *ps, JsonbValue *out)
{
	int			cap = 8;
	int			n = 0;
	JsonbPair  *pairs = palloc(sizeof(JsonbPair) * cap);

	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == '}')
		ps->p++;
	else
	{
		for (;;)
		{
			JsonbPair  *pair;

			if (n >= cap)
			{
				cap *= 2;
				pairs = repalloc(pairs, sizeof(JsonbPair) * cap);
			}
			pair = &pairs[n];
			if (ps->p >= ps->end || *ps->p != '"')
				return false;
			pair->key.type = jbvString;
			if (!parse_string(ps, &pair->key.val.string.val, &pair->key.val.string.len))
				return false;
			pair->order = n++;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':')
				return false;
			ps->p++;
			if (!parse_value(ps, &pair->value))
				return false;
			skip_ws(ps);
			if (ps->p < ps->end && *ps->p == ',')
			{
				ps->p++;
				skip_ws(ps);
				continue;
			}
			if (ps->p < ps->end && *ps->p == '}')
			{
				ps->p++;
				break;
			}
			return false;
		}
	}
	out->type = jbvObject;
	out->val.object.nPairs = sort_pairs(pairs, n);
	out->val.object.pairs = pairs;
	return true;
}

/* An array at ps->p (its opening bracket) into out; false: give up. */
static bool
parse_array(JtParser *ps, JsonbValue *out)
{
	int			cap = 8;
	int			n = 0;
	JsonbValue *elems = palloc(sizeof(JsonbValue) * cap);

	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == ']')
		ps->p++;
	else
	{
		for (;;)
		{
			if (n >= cap)
			{
				cap *= 2;
				elems = repalloc(elems, sizeof(JsonbValue) * cap);
			}
			if (!parse_value(ps, &elems[n++]))
				return false;
			skip_ws(ps);
			if (ps->p < ps->end && *ps->p == ',')
			{
				ps->p++;
				continue;
			}
			if (ps->p < ps->end && *ps->p == ']')
			{
				ps->p++;
				break;
			}
			return false;
		}
	}
	out->type = jbvArray;
	out->val.array.nElems = n;
	out->val.array.elems = elems;
	out->val.array.rawScalar = false;
	return true;
}

/* Any JSON value at ps->p (after whitespace) into out; false: give up. */
static bool
parse_value(JtParser *ps, JsonbValue *out)
{
	bool		ok;

	skip_ws(ps);
	if (ps->p >= ps->end)
		return false;
	switch (*ps->p)
	{
		case '{':
		case '[':
			if (++ps->depth > DS_JT_MAX_DEPTH)
				return false;
			ok = *ps->p == '{' ? parse_object(ps, out) : parse_array(ps, out);
			ps->depth--;
			return ok;
		case '"':
			out->type = jbvString;
			return parse_string(ps, &out->val.string.val, &out->val.string.len);
		case 't':
			out->type = jbvBool;
			out->val.boolean = true;
			return parse_literal(ps, "true", 4);
		case 'f':
			out->type = jbvBool;
			out->val.boolean = false;
			return parse_literal(ps, "false", 5);
		case 'n':
			out->type = jbvNull;
			return parse_literal(ps, "null", 4);
		default:
			return parse_number(ps, out);
	}
}

/* Prepares a reader of events' JSON text, its memory under the current context. */
void
ds_jt_init(DsJsonText *jt)
{
	if (!string_special_ready)
	{
		for (int c = 0; c < 0x20; c++)
			string_special[c] = true;
		string_special['"'] = string_special['\\'] = true;
		string_special_ready = true;
	}
	jt->scratch = AllocSetContextCreate(CurrentMemoryContext, "durable_state JSON text",
										ALLOCSET_DEFAULT_SIZES);
	jt->block = NULL;
	jt->used = jt->size = 0;
	jt->owner = CurrentMemoryContext;
}

/* A copy of jb in the reader's blocks (allocated in its owner's context). */
static Jsonb *
keep_jsonb(DsJsonText *jt, Jsonb *jb)
{
	Size		sz = MAXALIGN(VARSIZE(jb));
	Jsonb	   *copy;

	if (jt->block == NULL || jt->used + sz > jt->size)
	{
		jt->size = Max(DS_JT_BLOCK_BYTES, sz);
		jt->block = MemoryContextAlloc(jt->owner, jt->size);
		jt->used = 0;
	}
	copy = (Jsonb *) (jt->block + jt->used);
	memcpy(copy, jb, VARSIZE(jb));
	jt->used += sz;
	return copy;
}

/*
 * Parses the JSON object at the start of text s (up to end, not
 * necessarily NUL-terminated) into a jsonb kept as long as the reader's
 * owner context, and sets *stop to the first byte after it.  Returns NULL
 * if the fast path gives up (see the file's comment): the caller parses the
 * text with jsonb_in instead.  May raise numeric_in's errors.
 */
Jsonb *
ds_jt_parse_object(DsJsonText *jt, const char *s, const char *end, const char **stop)
{
	JtParser	ps;
	JsonbValue	root;
	Jsonb	   *res = NULL;
	MemoryContext old;

	ps.p = s;
	ps.end = end;
	ps.depth = 0;
	skip_ws(&ps);
	if (ps.p >= ps.end || *ps.p != '{')
		return NULL;
	old = MemoryContextSwitchTo(jt->scratch);
	if (parse_value(&ps, &root))
	{
		*stop = ps.p;
		res = keep_jsonb(jt, JsonbValueToJsonb(&root));
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(jt->scratch);
	return res;
}
