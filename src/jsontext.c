/*
 * jsontext.c
 *		JSON text straight to jsonb, for state.apply_text: one pass over an
 *		event's text, without jsonb_in's detour.
 *
 * jsonb_in runs PostgreSQL's general JSON parser (a lexer with a callback
 * per token), builds a JsonbValue tree with pushJsonbValue (growing and
 * copying the member arrays as it goes), serializes it, and keeps
 * everything it allocated until the end of the call: for a large NDJSON
 * batch the garbage, not the parsing, dominated.  Here an event object is
 * parsed by a small recursive-descent parser into a tape: one node per
 * value (strings without escapes point into the text, integers of up to
 * 18 digits become numerics without numeric_in).  When a container
 * closes, its members are sorted and de-duplicated as jsonb does (shorter
 * keys first, then bytewise; the last of equal keys wins) and its size in
 * jsonb's format is worked out, padding included; so when the event
 * closes its size is known, and one pass over the tape writes it in
 * jsonb's binary format straight into the block that keeps it: JEntries,
 * offsets every JB_OFFSET_STRIDE entries and the padding jsonb puts before
 * numerics and containers, exactly as convertToJsonb does, so the result
 * is byte for byte what jsonb_in gives (test/sql/json_text.sql and
 * test/t/fuzz.js compare the two).  Every byte is written once; the tape
 * is reused from one event to the next.
 *
 * As it parses, the parser notes where the event's members the engine
 * reads are (DsJtEvent), so that ds_event_from_text (event.c) can fill
 * the engine's event without reading the jsonb again.
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

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "lib/stringinfo.h"
#include "port/pg_bitutils.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "jsontext.h"
#include "util.h"

/* deeper nesting is left to jsonb_in (and its stack depth check) */
#define DS_JT_MAX_DEPTH 64

/* the events' jsonb are carved out of blocks of this size */
#define DS_JT_BLOCK_BYTES (1024 * 1024)

/* the most nodes one event may have */
#define DS_JT_MAX_NODES ((int) (MaxAllocSize / sizeof(JtNode) / 2))

/*
 * The most bytes a node can add to its event's jsonb besides its own: a
 * JEntry, the padding before it and, a container's, its header.
 */
#define DS_JT_NODE_OVERHEAD 12

/*
 * A value on the tape, in the order of the text.  A container's members
 * follow it: each key's node, then its value's (with the value's own
 * members, if a container).
 */
typedef struct JtNode
{
	uint32		type;			/* JENTRY_IS* */
	uint32		len;			/* a string's or numeric's bytes */
	const char *ptr;			/* those bytes, or NULL: at off in the
								 * parser's buffer, which may move */
	uint32		off;
	int			count;			/* a container's members or elements */
	int			next;			/* a container's: the node after its members */
	int16		name;			/* a noted key's DsJtName, or -1 */
	bool		object;			/* a container: an object */
	bool		sorted;			/* an object: its keys in jsonb's order, none
								 * twice */
	bool		noted;			/* an object: its keys may be noted */
} JtNode;

/* Which members of an object are noted (DsJtEvent): none, the event's, the headers' */
typedef enum JtScope
{
	JT_SCOPE_NONE,
	JT_SCOPE_EVENT,
	JT_SCOPE_HEADERS
} JtScope;

typedef struct JtParser
{
	int			depth;
	JtScope		scope;			/* of the next object parsed */
	DsJtEvent  *event;			/* what is noted */
	StringInfoData buf;			/* unescaped strings and numerics */
	JtNode	   *nodes;			/* the tape */
	int			nnodes;
	int			capnodes;
	Size		bytes;			/* the strings' and numerics' bytes */
} JtParser;

StaticAssertDecl(sizeof(JtParser) <= sizeof(((DsJsonText *) NULL)->parser),
				 "DsJsonText has room for a JtParser");

static const char *parse_value(JtParser *ps, const char *p, const char *end);

/* string_special[c]: byte c ends a run of plain string bytes */
static bool string_special[256];
static bool string_special_ready = false;

/* JSON's whitespace, as PostgreSQL's lexer takes it */
static inline bool
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The first byte from p on (before end) that is not JSON whitespace, or end. */
static inline const char *
skip_ws(const char *p, const char *end)
{
	/*
	 * Every JSON blank is at most ' ': one comparison for the other bytes.
	 * Most often there is none, or one space (after ':' and ',', as
	 * jsonb's output and many writers put them).
	 */
	if (likely(p < end && (unsigned char) *p > ' '))
		return p;
	if (p + 1 < end && *p == ' ' && (unsigned char) p[1] > ' ')
		return p + 1;
	while (p < end && (unsigned char) *p <= ' ' && is_ws(*p))
		p++;
	return p;
}

/*
 * Whether a number or literal may end here: at the end, whitespace or a
 * structural character.  jsonb_in refuses "truex" and "1x", so anything
 * else is left to it.
 */
static inline bool
at_delimiter(const char *p, const char *end)
{
	char		c;

	if (p >= end)
		return true;
	c = *p;
	return is_ws(c) || c == ',' || c == ']' || c == '}' || c == ':';
}

/* The bytes of node n. */
static inline const char *
node_data(const JtParser *ps, const JtNode *n)
{
	return n->ptr ? n->ptr : ps->buf.data + n->off;
}

/*
 * A new node on the tape: its index, or -1 (give up) if there are too
 * many.  A pointer to a node is good until the next one is made.
 */
static inline int
new_node(JtParser *ps)
{
	if (unlikely(ps->nnodes >= ps->capnodes))
	{
		if (ps->capnodes >= DS_JT_MAX_NODES)
			return -1;
		ps->capnodes *= 2;
		ps->nodes = repalloc(ps->nodes, sizeof(JtNode) * ps->capnodes);
	}
	return ps->nnodes++;
}

#define JT_ONES UINT64CONST(0x0101010101010101)
#define JT_HIGHS UINT64CONST(0x8080808080808080)

/*
 * The first byte from s on (before end) that ends a run of plain string
 * bytes ('"', '\\' or a control character), or end.  Sixteen bytes at a
 * time with SSE2 (every x86-64 has it): the bytes equal to '"' or '\\', or
 * at most 0x1f, as a bit mask.  Then eight at a time: a word's bytes equal
 * to '"' or '\\', or below 0x20, each set the high bit of their own byte in
 * m (and maybe bits above the first one, never below), so its lowest set
 * bit is the first such byte.
 */
static inline const char *
string_stop(const char *s, const char *end)
{
#ifdef __SSE2__
	while (end - s >= 16)
	{
		__m128i		w = _mm_loadu_si128((const __m128i *) s);
		__m128i		ctl = _mm_set1_epi8(0x1f);
		__m128i		hit;
		int			mask;

		hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(w, _mm_set1_epi8('"')),
										_mm_cmpeq_epi8(w, _mm_set1_epi8('\\'))),
						   _mm_cmpeq_epi8(_mm_max_epu8(w, ctl), ctl));
		mask = _mm_movemask_epi8(hit);
		if (mask != 0)
			return s + pg_rightmost_one_pos32((uint32) mask);
		s += 16;
	}
#endif
	while (end - s >= 8)
	{
		uint64		w;
		uint64		q;
		uint64		b;
		uint64		m;

		memcpy(&w, s, 8);
#ifdef WORDS_BIGENDIAN
		w = pg_bswap64(w);		/* the first byte lowest, as below */
#endif
		q = w ^ (JT_ONES * '"');
		b = w ^ (JT_ONES * '\\');
		m = (((q - JT_ONES) & ~q) | ((b - JT_ONES) & ~b) |
			 ((w - JT_ONES * 0x20) & ~w)) & JT_HIGHS;
		if (m != 0)
			return s + pg_rightmost_one_pos64(m) / 8;
		s += 8;
	}
	while (s < end && !string_special[(unsigned char) *s])
		s++;
	return s;
}

/*
 * The string from start on, whose first byte to look at is s (a
 * backslash, or a control character, before end), into node n, unescaped
 * into the buffer.  Returns the byte after its closing quote, or NULL
 * (give up) on a control character, a \u escape or an invalid one, a
 * missing closing quote, or a string too long for jsonb.
 */
static pg_noinline const char *
parse_escaped_string(JtParser *ps, const char *start, const char *s, const char *end,
					 JtNode *n)
{
	char	   *d;

	for (;;)
	{
		unsigned char c = (unsigned char) *s;

		if (c == '"')
			break;
		if (c < 0x20)
			return NULL;
		s++;					/* a backslash */
		if (s >= end || *s == 'u')
			return NULL;
		s = string_stop(s + 1, end);
		if (s >= end)
			return NULL;
	}
	if (s - start > JENTRY_OFFLENMASK)
		return NULL;
	n->type = JENTRY_ISSTRING;
	enlargeStringInfo(&ps->buf, s - start);
	n->ptr = NULL;
	n->off = ps->buf.len;
	d = ps->buf.data + ps->buf.len;
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
				return NULL;
		}
	}
	n->len = d - (ps->buf.data + n->off);
	ps->buf.len += n->len;
	ps->bytes += n->len;
	return s + 1;
}

/*
 * The string at p (its opening quote; the text ends at end) into node n:
 * pointing into the text if it has no escapes, else unescaped into the
 * buffer.  Returns the byte after its closing quote, or NULL (give up) on
 * a control character, a \u escape or an invalid one, a missing closing
 * quote, or a string too long for jsonb.
 */
static pg_attribute_always_inline const char *
parse_string(JtParser *ps, const char *p, const char *end, JtNode *n)
{
	const char *start = p + 1;

	/* the bytes that need a look: '"', '\\' and control characters */
	const char *s = string_stop(start, end);

	if (unlikely(s >= end || *s != '"'))
		return s < end ? parse_escaped_string(ps, start, s, end, n) : NULL;
	if (unlikely(s - start > JENTRY_OFFLENMASK))
		return NULL;
	n->type = JENTRY_ISSTRING;
	n->ptr = start;
	n->len = s - start;
	ps->bytes += n->len;
	return s + 1;
}

/*
 * The numeric of integer v (|v| < 10^18) into the buffer as node n, byte
 * for byte what int64_to_numeric gives (numeric.c's make_result): the
 * short format (a 16-bit header: NUMERIC_SHORT 0x8000, the sign 0x2000,
 * display scale 0, the weight in the low 6 bits), then the base-10000
 * digits from the most significant, trailing zero digits dropped; zero is
 * positive and has no digits.  numeric.c keeps these macros to itself;
 * the format is the one stored on disk.
 */
static void
put_integer(JtParser *ps, int64 v, JtNode *n)
{
	uint64		u = v < 0 ? -(uint64) v : (uint64) v;
	int16		digits[5];
	int			nd = 0;
	int			len;
	char	   *d;
	uint16		header;

	while (u != 0)
	{
		digits[nd++] = (int16) (u % 10000);
		u /= 10000;
	}
	/* digits[nd - 1] is the most significant: weight nd - 1 */
	header = 0x8000 | (v < 0 ? 0x2000 : 0) | (nd > 0 ? (nd - 1) : 0);
	while (nd > 0 && digits[0] == 0)
	{
		/* trailing zeros dropped: the weight stays */
		memmove(digits, digits + 1, sizeof(int16) * (nd - 1));
		nd--;
	}
	len = VARHDRSZ + sizeof(uint16) + nd * sizeof(int16);
	enlargeStringInfo(&ps->buf, len);
	d = ps->buf.data + ps->buf.len;
	SET_VARSIZE(d, len);
	memcpy(d + VARHDRSZ, &header, sizeof(uint16));
	for (int i = 0; i < nd; i++)
		memcpy(d + VARHDRSZ + sizeof(uint16) + i * sizeof(int16), &digits[nd - 1 - i],
			   sizeof(int16));
	n->type = JENTRY_ISNUMERIC;
	n->ptr = NULL;
	n->off = ps->buf.len;
	n->len = len;
	ps->buf.len += len;
	ps->bytes += len;
}

/*
 * A number at p (before end) into node n, checked against JSON's grammar.
 * An integer of up to 18 digits is converted directly (the numeric
 * numeric_in would give: no scale, no leading zeros); any other number
 * goes through numeric_in as in jsonb_in.  Returns the byte after it, or
 * NULL (give up) on a malformed one.
 */
static const char *
parse_number(JtParser *ps, const char *p, const char *end, JtNode *n)
{
	const char *start = p;
	const char *s = start;
	bool		neg = false;
	bool		simple = true;
	int64		v = 0;
	int			ndigits;
	Numeric		num;

	if (*s == '-')
	{
		neg = true;
		s++;
	}
	if (s >= end || !isdigit((unsigned char) *s))
		return NULL;
	if (*s == '0')
		s++;
	else
		while (s < end && isdigit((unsigned char) *s))
			v = v * 10 + (*s++ - '0');
	ndigits = s - start - (neg ? 1 : 0);
	if (s < end && *s == '.')
	{
		simple = false;
		s++;
		if (s >= end || !isdigit((unsigned char) *s))
			return NULL;
		while (s < end && isdigit((unsigned char) *s))
			s++;
	}
	if (s < end && (*s == 'e' || *s == 'E'))
	{
		simple = false;
		s++;
		if (s < end && (*s == '+' || *s == '-'))
			s++;
		if (s >= end || !isdigit((unsigned char) *s))
			return NULL;
		while (s < end && isdigit((unsigned char) *s))
			s++;
	}
	if (!at_delimiter(s, end))
		return NULL;
	if (simple && ndigits <= 18)
	{
		put_integer(ps, neg ? -v : v, n);
		return s;
	}
	num = DatumGetNumeric(DirectFunctionCall3(numeric_in,
											  CStringGetDatum(pnstrdup(start, s - start)),
											  ObjectIdGetDatum(InvalidOid),
											  Int32GetDatum(-1)));
	n->type = JENTRY_ISNUMERIC;
	n->ptr = (const char *) num;
	n->len = VARSIZE_ANY(num);
	ps->bytes += n->len;
	return s;
}

/*
 * "true", "false" or "null" (lit, len bytes) at p (before end): the byte
 * after it, or NULL if it is not there.
 */
static inline const char *
parse_literal(const char *p, const char *end, const char *lit, int len)
{
	if (end - p < len)
		return NULL;
	/* lit is a constant: compared inline, its first byte already seen */
	for (int i = 1; i < len; i++)
		if (p[i] != lit[i])
			return NULL;
	p += len;
	return at_delimiter(p, end) ? p : NULL;
}

/*
 * Which member of an object of scope key k (len bytes) names: a
 * DsJtName, or -1 for any other.
 */
static inline int
noted_name(JtScope scope, const char *k, int len)
{
	int			name = ds_event_name(k, len, scope == JT_SCOPE_HEADERS);

	if (scope == JT_SCOPE_EVENT)
		return name;
	return name == DS_H_OPERATION ? DS_JT_OPERATION : name == DS_H_TXID ? DS_JT_TXID : -1;
}

/*
 * Notes key k of an object of scope: which name it is, and whether the
 * event stays plain.
 */
static inline void
note_key(JtParser *ps, JtScope scope, JtNode *k)
{
	DsJtEvent  *ev = ps->event;
	int			name = noted_name(scope, node_data(ps, k), k->len);

	k->name = name;
	if (name < 0 || ev->found[name])
		ev->plain = false;		/* another member, or one given twice */
	else
		ev->found[name] = true;
}

/* Compares keys a and b as jsonb orders them: shorter keys first, then bytewise. */
static inline int
key_cmp(const JtParser *ps, int a, int b)
{
	const JtNode *ka = &ps->nodes[a];
	const JtNode *kb = &ps->nodes[b];

	if (ka->len != kb->len)
		return ka->len < kb->len ? -1 : 1;
	return memcmp(node_data(ps, ka), node_data(ps, kb), ka->len);
}

/*
 * Whether key a sorts after key b: in jsonb's order, and of equal keys
 * the later one (b, if a is earlier on the tape) first, so that
 * de-duplication keeps it.
 */
static inline bool
key_after(const JtParser *ps, int a, int b)
{
	int			r = key_cmp(ps, a, b);

	return r != 0 ? r > 0 : a < b;
}

/*
 * Sorts the n keys at m into jsonb's order (insertion sort: objects are
 * small, and often sorted already) and drops all but the last of equal
 * keys; returns how many are left.
 */
static int
sort_keys(const JtParser *ps, int *m, int n)
{
	int			kept = 1;

	for (int i = 1; i < n; i++)
	{
		int			k = m[i];
		int			j = i - 1;

		while (j >= 0 && key_after(ps, m[j], k))
		{
			m[j + 1] = m[j];
			j--;
		}
		m[j + 1] = k;
	}
	for (int i = 1; i < n; i++)
	{
		if (key_cmp(ps, m[kept - 1], m[i]) == 0)
			continue;
		m[kept++] = m[i];
	}
	return n > 0 ? kept : 0;
}

/*
 * An object or array at p (its opening brace or bracket; the text ends at
 * end) into node ci, its members on the tape after it.  Returns the byte
 * after it, or NULL (give up).
 */
static const char *
parse_container(JtParser *ps, const char *p, const char *end, int ci, bool object)
{
	char		close = object ? '}' : ']';
	JtScope		scope = object ? ps->scope : JT_SCOPE_NONE;
	int			count = 0;
	int			prev = -1;		/* an object's last key */
	bool		sorted = true;
	JtNode	   *c;

	ps->scope = JT_SCOPE_NONE;	/* the objects inside are not noted */
	p = skip_ws(p + 1, end);
	if (p < end && *p == close)
		p++;
	else
	{
		for (;;)
		{
			if (object)
			{
				int			k = new_node(ps);

				if (k < 0 || p >= end || *p != '"' ||
					(p = parse_string(ps, p, end, &ps->nodes[k])) == NULL)
					return NULL;
				ps->nodes[k].name = -1;
				/* often already in order: written as jsonb writes them */
				if (sorted && prev >= 0 && key_cmp(ps, prev, k) >= 0)
					sorted = false;
				prev = k;
				if (scope != JT_SCOPE_NONE)
				{
					note_key(ps, scope, &ps->nodes[k]);
					if (ps->nodes[k].name == DS_JT_HEADERS)
						ps->scope = JT_SCOPE_HEADERS;	/* if an object */
				}
				if (unlikely(p >= end || *p != ':'))
				{
					p = skip_ws(p, end);
					if (p >= end || *p != ':')
						return NULL;
				}
				p = skip_ws(p + 1, end);
			}
			/* a string, the most common value, without parse_value's frame */
			if (p < end && *p == '"')
			{
				int			v = new_node(ps);

				if (v < 0 || (p = parse_string(ps, p, end, &ps->nodes[v])) == NULL)
					return NULL;
			}
			else if ((p = parse_value(ps, p, end)) == NULL)
				return NULL;
			count++;
			ps->scope = JT_SCOPE_NONE;
			if (unlikely(p >= end || (*p != ',' && *p != close)))
				p = skip_ws(p, end);
			if (p < end && *p == ',')
			{
				p = skip_ws(p + 1, end);
				continue;
			}
			if (p < end && *p == close)
			{
				p++;
				break;
			}
			return NULL;
		}
	}
	c = &ps->nodes[ci];
	c->type = JENTRY_ISCONTAINER;
	c->ptr = NULL;
	c->len = 0;
	c->count = count;
	c->next = ps->nnodes;
	c->object = object;
	c->sorted = sorted;
	c->noted = scope != JT_SCOPE_NONE;
	return p;
}

/*
 * Any JSON value at p (whitespace skipped; the text ends at end) onto the
 * tape as its next node.  Returns the byte after it, or NULL (give up).
 */
static const char *
parse_value(JtParser *ps, const char *p, const char *end)
{
	int			i;
	JtNode	   *n;

	if (p >= end || (i = new_node(ps)) < 0)
		return NULL;
	n = &ps->nodes[i];
	n->ptr = NULL;
	n->len = 0;
	switch (*p)
	{
		case '{':
		case '[':
			if (++ps->depth > DS_JT_MAX_DEPTH)
				return NULL;
			p = parse_container(ps, p, end, i, *p == '{');
			ps->depth--;
			return p;
		case '"':
			return parse_string(ps, p, end, n);
		case 't':
			n->type = JENTRY_ISBOOL_TRUE;
			return parse_literal(p, end, "true", 4);
		case 'f':
			n->type = JENTRY_ISBOOL_FALSE;
			return parse_literal(p, end, "false", 5);
		case 'n':
			n->type = JENTRY_ISNULL;
			return parse_literal(p, end, "null", 4);
		default:
			return parse_number(ps, p, end, n);
	}
}

/* Copies len bytes (w <= len <= 2 * w) as two overlapping runs of w. */
static pg_attribute_always_inline void
copy_two_runs(char *dst, const char *src, uint32 len, int w)
{
	uint64		a = 0;
	uint64		b = 0;

	memcpy(&a, src, w);
	memcpy(&b, src + len - w, w);
	memcpy(dst, &a, w);
	memcpy(dst + len - w, &b, w);
}

/*
 * Copies len bytes from src to dst, which do not overlap: the short runs
 * of an event's strings without a call to memcpy.
 */
static inline void
copy_bytes(char *dst, const char *src, uint32 len)
{
	if (len >= 8 && len <= 16)
		copy_two_runs(dst, src, len, 8);
	else if (len >= 4 && len < 8)
		copy_two_runs(dst, src, len, 4);
	else if (len < 4)
	{
		for (uint32 i = 0; i < len; i++)
			dst[i] = src[i];
	}
	else
		memcpy(dst, src, len);
}

/* The node after node i and, if it is a container, its members. */
static inline int
node_after(const JtParser *ps, int i)
{
	const JtNode *n = &ps->nodes[i];

	return n->type == JENTRY_ISCONTAINER ? n->next : i + 1;
}

/*
 * The JEntry of entry e of a container whose data starts at base, its
 * value written from at (padding included) to d: its length or, every
 * JB_OFFSET_STRIDE entries, the data's length so far.
 */
static inline JEntry
entry_of(uint32 type, int e, const char *base, const char *at, const char *d)
{
	if (e % JB_OFFSET_STRIDE == 0)
		return type | (uint32) (d - base) | JENTRY_HAS_OFF;
	return type | (uint32) (d - at);
}

/*
 * Writes container node ci in jsonb's format at dst (aligned): its
 * header, its JEntries, its keys, sorted and de-duplicated, then their
 * values (or its elements), each numeric and container after zeros that
 * align it to 4 bytes (by address: the container's start is aligned).
 * Notes where the values of noted keys are.  Returns the end of what it
 * wrote.
 */
static char *
write_container(JtParser *ps, int ci, char *dst)
{
	const JtNode *c = &ps->nodes[ci];
	bool		object = c->object;
	int			n = c->count;
	int			local[32];
	int		   *m = n <= lengthof(local) ? local : palloc(sizeof(int) * n);
	int			at = ci + 1;
	int			nentries;
	uint32		header;
	JEntry	   *je;
	char	   *base;
	char	   *d;
	int			e = 0;

	for (int i = 0; i < n; i++)
	{
		m[i] = at;
		at = node_after(ps, object ? at + 1 : at);
	}
	if (object && !c->sorted)
		n = sort_keys(ps, m, n);
	nentries = object ? 2 * n : n;
	header = n | (object ? JB_FOBJECT : JB_FARRAY);
	memcpy(dst, &header, sizeof(uint32));
	je = (JEntry *) (dst + sizeof(uint32));
	base = d = dst + sizeof(uint32) + sizeof(JEntry) * nentries;
	if (object)
	{
		for (int i = 0; i < n; i++, e++)
		{
			const JtNode *k = &ps->nodes[m[i]];
			char	   *from = d;
			JEntry		entry;

			copy_bytes(d, node_data(ps, k), k->len);
			d += k->len;
			entry = entry_of(JENTRY_ISSTRING, e, base, from, d);
			memcpy(&je[e], &entry, sizeof(JEntry));
		}
	}
	for (int i = 0; i < n; i++, e++)
	{
		int			vi = object ? m[i] + 1 : m[i];
		const JtNode *v = &ps->nodes[vi];
		char	   *from = d;
		JEntry		entry;

		if (v->type == JENTRY_ISCONTAINER || v->type == JENTRY_ISNUMERIC)
		{
			while (((uintptr_t) d & 3) != 0)
				*d++ = 0;
		}
		if (v->type == JENTRY_ISCONTAINER)
			d = write_container(ps, vi, d);
		else
		{
			copy_bytes(d, node_data(ps, v), v->len);
			d += v->len;
		}
		entry = entry_of(v->type, e, base, from, d);
		memcpy(&je[e], &entry, sizeof(JEntry));
		if (c->noted && ps->nodes[m[i]].name >= 0)
		{
			DsJtSpot   *spot = &ps->event->spot[ps->nodes[m[i]].name];

			spot->type = v->type;
			spot->start = from - base;
			spot->end = d - base;
		}
	}
	return d;
}

/* Prepares a reader of events' JSON text, its memory under the current context. */
void
ds_jt_init(DsJsonText *jt)
{
	JtParser   *ps = (JtParser *) jt->parser;

	if (!string_special_ready)
	{
		for (int c = 0; c < 0x20; c++)
			string_special[c] = true;
		string_special['"'] = string_special['\\'] = true;
		string_special_ready = true;
	}
	jt->owner = CurrentMemoryContext;
	jt->scratch = AllocSetContextCreate(CurrentMemoryContext, "durable_state JSON text",
										ALLOCSET_DEFAULT_SIZES);
	jt->block = NULL;
	jt->used = jt->size = 0;
	memset(ps, 0, sizeof(JtParser));
	initStringInfo(&ps->buf);
	ps->capnodes = 64;
	ps->nodes = palloc(sizeof(JtNode) * ps->capnodes);
}

/*
 * Room for up to len bytes in the reader's blocks (allocated in its
 * owner's context); keep_used then says how many were used.
 */
static char *
keep(DsJsonText *jt, Size len)
{
	Size		sz = MAXALIGN(len);

	if (jt->block == NULL || jt->used + sz > jt->size)
	{
		jt->size = Max(DS_JT_BLOCK_BYTES, sz);
		jt->block = MemoryContextAlloc(jt->owner, jt->size);
		jt->used = 0;
	}
	return jt->block + jt->used;
}

/* Keeps the first len bytes of what keep gave last. */
static void
keep_used(DsJsonText *jt, Size len)
{
	jt->used += MAXALIGN(len);
}

/*
 * Parses the JSON object at the start of text s (up to end, not
 * necessarily NUL-terminated) into a jsonb kept as long as the reader's
 * owner context, notes its members in jt->event, and sets *stop to the
 * first byte after it.  Returns NULL if the fast path gives up (see the
 * file's comment): the caller parses the text with jsonb_in instead.  May
 * raise numeric_in's errors.
 */
Jsonb *
ds_jt_parse_object(DsJsonText *jt, const char *s, const char *end, const char **stop)
{
	JtParser   *ps = (JtParser *) jt->parser;
	Jsonb	   *res = NULL;
	const char *p;
	MemoryContext old;

	ps->depth = 0;
	ps->nnodes = 0;
	ps->bytes = 0;
	ps->scope = JT_SCOPE_EVENT;
	ps->event = &jt->event;
	jt->event.plain = true;
	memset(jt->event.found, 0, sizeof(jt->event.found));
	resetStringInfo(&ps->buf);
	p = skip_ws(s, end);
	if (p >= end || *p != '{')
		return NULL;
	old = MemoryContextSwitchTo(jt->scratch);
	p = parse_value(ps, p, end);
	if (p != NULL)
	{
		/*
		 * At most this many bytes: each node's own and what it adds besides.
		 * Within jsonb's limit on a container's data, no container can
		 * exceed it; else jsonb_in decides.
		 */
		Size		bound = ps->bytes + (Size) DS_JT_NODE_OVERHEAD * ps->nnodes;

		if (bound <= JENTRY_OFFLENMASK)
		{
			char	   *end_of;

			*stop = p;
			res = (Jsonb *) keep(jt, VARHDRSZ + bound);
			end_of = write_container(ps, 0, (char *) &res->root);
			SET_VARSIZE(res, end_of - (char *) res);
			keep_used(jt, VARSIZE(res));
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(jt->scratch);
	return res;
}
