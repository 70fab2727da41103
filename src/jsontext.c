/*
 * jsontext.c
 *		JSON text straight to jsonb, for state.apply_text: one pass over an
 *		event's text, without jsonb_in's detour.
 *
 * jsonb_in runs PostgreSQL's general JSON parser (a lexer with a callback
 * per token), builds a JsonbValue tree with pushJsonbValue (growing and
 * copying the member arrays as it goes), serializes it, and keeps
 * everything it allocated until the end of the call: for a large NDJSON
 * batch the garbage, not the parsing, dominated (the kernel zeroing fresh
 * pages was a third of apply_text's time).  Here an event object is parsed
 * by a small recursive-descent parser that writes jsonb's binary format
 * directly: each container's members are parsed into a stack of small
 * records (strings without escapes point into the text, integers of up to
 * 18 digits become numerics without numeric_in, nested containers are
 * already in their binary form), sorted and de-duplicated as jsonb does
 * (shorter keys first, then bytewise; the last of equal keys wins), then
 * laid out with their JEntries, offsets every JB_OFFSET_STRIDE entries and
 * the padding jsonb puts before numerics and containers, exactly as
 * convertToJsonb does, so the result is byte for byte what jsonb_in gives
 * (test/sql/json_text.sql and test/t/fuzz.js compare the two).  The
 * finished jsonb goes into blocks that hold the batch's events back to
 * back; the parser's buffers are reused from one event to the next.
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

/*
 * A parsed value before it is placed in its container: its JEntry type and
 * its bytes (a container's or a numeric's without the padding that aligns
 * them, which depends on where they land).  Strings without escapes and
 * numerics are in stable memory (ptr); containers and unescaped strings
 * are in the parser's buffer (at off), which may move as it grows.
 */
typedef struct JtVal
{
	uint32		type;			/* JENTRY_IS* */
	const char *ptr;			/* the bytes, or NULL: at off in the buffer */
	Size		off;
	int			len;
} JtVal;

/* An object's member (an array's element leaves key unused). */
typedef struct JtMember
{
	JtVal		key;
	JtVal		val;
	int			order;			/* position in the text */
} JtMember;

typedef struct JtParser
{
	const char *p;				/* next byte */
	const char *end;			/* end of the text */
	int			depth;
	StringInfoData buf;			/* containers and unescaped strings */
	JtMember   *mem;			/* members of the open containers */
	int			nmem;
	int			capmem;
} JtParser;

StaticAssertDecl(sizeof(JtParser) <= sizeof(((DsJsonText *) NULL)->parser),
				 "DsJsonText has room for a JtParser");

static bool parse_value(JtParser *ps, JtVal *out);

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
	const char *p = ps->p;

	/* every JSON blank is at most ' ': one comparison for the other bytes */
	while (p < ps->end && (unsigned char) *p <= ' ' && is_ws(*p))
		p++;
	ps->p = p;
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

/* The bytes of parsed value v. */
static inline const char *
val_data(JtParser *ps, const JtVal *v)
{
	return v->ptr ? v->ptr : ps->buf.data + v->off;
}

#define JT_ONES UINT64CONST(0x0101010101010101)
#define JT_HIGHS UINT64CONST(0x8080808080808080)

/*
 * The first byte from s on (before end) that ends a run of plain string
 * bytes ('"', '\\' or a control character), or end.  Eight bytes at a time
 * while they last: a word's bytes equal to '"' or '\\', or below 0x20, each
 * set the high bit of their own byte in m (and maybe bits above the first
 * one, never below), so its lowest set bit is the first such byte.
 */
static inline const char *
string_stop(const char *s, const char *end)
{
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
 * A string at ps->p (its opening quote) into out: pointing into the text
 * if it has no escapes, else unescaped into the buffer.  Returns false
 * (give up) on a control character, a \u escape or an invalid one, a
 * missing closing quote, or a string too long for jsonb.
 */
static bool
parse_string(JtParser *ps, JtVal *out)
{
	const char *start = ps->p + 1;
	const char *s = start;
	bool		escaped = false;
	char	   *d;

	for (;;)
	{
		unsigned char c;

		/* the bytes that need a look: '"', '\\' and control characters */
		s = string_stop(s, ps->end);
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
	out->type = JENTRY_ISSTRING;
	if (!escaped)
	{
		out->ptr = start;
		out->len = s - start;
		return true;
	}
	enlargeStringInfo(&ps->buf, s - start);
	out->ptr = NULL;
	out->off = ps->buf.len;
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
				return false;
		}
	}
	out->len = d - (ps->buf.data + out->off);
	ps->buf.len += out->len;
	return true;
}

/*
 * The numeric of integer v (|v| < 10^18) into the buffer as out, byte for
 * byte what int64_to_numeric gives (numeric.c's make_result): the short
 * format (a 16-bit header: NUMERIC_SHORT 0x8000, the sign 0x2000, display
 * scale 0, the weight in the low 6 bits), then the base-10000 digits from
 * the most significant, trailing zero digits dropped; zero is positive and
 * has no digits.  numeric.c keeps these macros to itself; the format is the
 * one stored on disk.
 */
static void
put_integer(JtParser *ps, int64 v, JtVal *out)
{
	uint64		u = v < 0 ? -(uint64) v : (uint64) v;
	int16		digits[5];
	int			n = 0;
	int			len;
	char	   *d;
	uint16		header;

	while (u != 0)
	{
		digits[n++] = (int16) (u % 10000);
		u /= 10000;
	}
	/* digits[n - 1] is the most significant: weight n - 1 */
	header = 0x8000 | (v < 0 ? 0x2000 : 0) | (n > 0 ? (n - 1) : 0);
	while (n > 0 && digits[0] == 0)
	{
		/* trailing zeros dropped: the weight stays */
		memmove(digits, digits + 1, sizeof(int16) * (n - 1));
		n--;
	}
	len = VARHDRSZ + sizeof(uint16) + n * sizeof(int16);
	enlargeStringInfo(&ps->buf, len);
	d = ps->buf.data + ps->buf.len;
	SET_VARSIZE(d, len);
	memcpy(d + VARHDRSZ, &header, sizeof(uint16));
	for (int i = 0; i < n; i++)
		memcpy(d + VARHDRSZ + sizeof(uint16) + i * sizeof(int16), &digits[n - 1 - i],
			   sizeof(int16));
	out->type = JENTRY_ISNUMERIC;
	out->ptr = NULL;
	out->off = ps->buf.len;
	out->len = len;
	ps->buf.len += len;
}

/*
 * A number at ps->p into out, checked against JSON's grammar.  An integer
 * of up to 18 digits is converted directly (the numeric numeric_in would
 * give: no scale, no leading zeros); any other number goes through
 * numeric_in as in jsonb_in.  Returns false (give up) on a malformed one.
 */
static bool
parse_number(JtParser *ps, JtVal *out)
{
	const char *start = ps->p;
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
	if (simple && ndigits <= 18)
	{
		put_integer(ps, neg ? -v : v, out);
		return true;
	}
	num = DatumGetNumeric(DirectFunctionCall3(numeric_in,
											  CStringGetDatum(pnstrdup(start, s - start)),
											  ObjectIdGetDatum(InvalidOid),
											  Int32GetDatum(-1)));
	out->type = JENTRY_ISNUMERIC;
	out->ptr = (const char *) num;
	out->len = VARSIZE_ANY(num);
	return true;
}

/* "true", "false" or "null" (lit, len bytes) at ps->p; false if not there */
static inline bool
parse_literal(JtParser *ps, const char *lit, int len)
{
	if (ps->end - ps->p < len)
		return false;
	/* lit is a constant: compared inline, its first byte already seen */
	for (int i = 1; i < len; i++)
		if (ps->p[i] != lit[i])
			return false;
	ps->p += len;
	return at_delimiter(ps);
}

/*
 * Orders two members as jsonb does: shorter keys first, then bytewise; of
 * equal keys the later one first, so that de-duplication keeps it.
 */
static inline int
member_cmp(JtParser *ps, const JtMember *a, const JtMember *b)
{
	int			r;

	if (a->key.len != b->key.len)
		return a->key.len < b->key.len ? -1 : 1;
	r = memcmp(val_data(ps, &a->key), val_data(ps, &b->key), a->key.len);
	if (r != 0)
		return r;
	return a->order > b->order ? -1 : 1;
}

/*
 * Sorts the n members at ps->mem[first] into jsonb's order (insertion sort
 * of their indexes: objects are small) into idx, and drops all but the last
 * of equal keys; returns how many are left.
 */
static int
sort_members(JtParser *ps, int first, int n, int *idx)
{
	int			kept = 0;

	for (int i = 0; i < n; i++)
	{
		int			j = i - 1;

		while (j >= 0 && member_cmp(ps, &ps->mem[first + idx[j]], &ps->mem[first + i]) > 0)
		{
			idx[j + 1] = idx[j];
			j--;
		}
		idx[j + 1] = i;
	}
	for (int i = 0; i < n; i++)
	{
		JtMember   *m = &ps->mem[first + idx[i]];

		if (kept > 0)
		{
			JtMember   *prev = &ps->mem[first + idx[kept - 1]];

			if (prev->key.len == m->key.len &&
				memcmp(val_data(ps, &prev->key), val_data(ps, &m->key), m->key.len) == 0)
				continue;
		}
		idx[kept++] = idx[i];
	}
	return kept;
}

/*
 * Copies len bytes from src to dst, which do not overlap: the short runs
 * of an event's strings without a call to memcpy.
 */
static inline void
copy_bytes(char *dst, const char *src, int len)
{
	if (len >= 8 && len <= 16)
	{
		uint64		a;
		uint64		b;

		memcpy(&a, src, 8);
		memcpy(&b, src + len - 8, 8);
		memcpy(dst, &a, 8);
		memcpy(dst + len - 8, &b, 8);
	}
	else if (len < 8)
	{
		for (int i = 0; i < len; i++)
			dst[i] = src[i];
	}
	else
		memcpy(dst, src, len);
}

/*
 * Appends value v at *d, aligned as jsonb aligns it (to 4 bytes from the
 * buffer's start, base: zeros before a numeric or a container), and sets
 * *je to its JEntry (its length, padding included, with the stride's
 * offset every JB_OFFSET_STRIDE entries: entry i, *totallen the data's
 * length so far).  The buffer has room for the padding.
 */
static inline void
place(const char *base, const JtVal *v, const char *src, int i, char **d, int *totallen,
	  JEntry *je)
{
	int			len = v->len;

	if (v->type == JENTRY_ISNUMERIC || v->type == JENTRY_ISCONTAINER)
	{
		int			pad = INTALIGN(*d - base) - (*d - base);

		for (int k = 0; k < pad; k++)
			*(*d)++ = 0;
		len += pad;
	}
	copy_bytes(*d, src, v->len);
	*d += v->len;
	*totallen += len;
	if (i % JB_OFFSET_STRIDE == 0)
		*je = v->type | *totallen | JENTRY_HAS_OFF;
	else
		*je = v->type | len;
}

/*
 * Composes the container of the n members (or elements) at ps->mem[first]
 * in jsonb's format, in the order idx gives, at the end of the buffer
 * (aligned), then moves it down to region, where its members' own bytes
 * began, into out.  Returns false if it is too large for jsonb.
 */
static bool
compose(JtParser *ps, bool object, int first, int n, int *idx, Size region, JtVal *out)
{
	uint32		header = n | (object ? JB_FOBJECT : JB_FARRAY);
	int			nentries = object ? 2 * n : n;
	Size		start;
	Size		room;
	int			totallen = 0;
	int			e = 0;
	Size		len;
	char	   *d;
	JEntry	   *jentries;

	/* the most it can take: every entry padded, and the container's own padding */
	room = 3 + sizeof(uint32) + (sizeof(JEntry) + 3) * (Size) nentries;
	for (int i = 0; i < n; i++)
	{
		JtMember   *m = &ps->mem[first + idx[i]];

		room += m->val.len + (object ? m->key.len : 0);
	}
	if (room > MaxAllocSize / 2)
		return false;
	ds_jsonb_pad(&ps->buf);
	enlargeStringInfo(&ps->buf, room);
	start = ps->buf.len;
	d = ps->buf.data + start;
	memcpy(d, &header, sizeof(uint32));
	jentries = (JEntry *) (d + sizeof(uint32));
	d += sizeof(uint32) + sizeof(JEntry) * nentries;
	if (object)
	{
		for (int i = 0; i < n; i++, e++)
		{
			JtVal	   *k = &ps->mem[first + idx[i]].key;
			JEntry		je;

			place(ps->buf.data, k, val_data(ps, k), e, &d, &totallen, &je);
			memcpy(&jentries[e], &je, sizeof(JEntry));
		}
	}
	for (int i = 0; i < n; i++, e++)
	{
		JtVal	   *v = &ps->mem[first + idx[i]].val;
		JEntry		je;

		place(ps->buf.data, v, val_data(ps, v), e, &d, &totallen, &je);
		memcpy(&jentries[e], &je, sizeof(JEntry));
	}
	len = d - (ps->buf.data + start);
	if (totallen > JENTRY_OFFLENMASK || len > JENTRY_OFFLENMASK)
		return false;
	memmove(ps->buf.data + region, ps->buf.data + start, len);
	ps->buf.len = region + len;
	out->type = JENTRY_ISCONTAINER;
	out->ptr = NULL;
	out->off = region;
	out->len = len;
	return true;
}

/* A slot for one more member; false (give up) if there are too many. */
static inline int
push_member(JtParser *ps)
{
	if (ps->nmem >= ps->capmem)
	{
		if (ps->capmem >= (int) (MaxAllocSize / sizeof(JtMember) / 2))
			return -1;
		ps->capmem *= 2;
		ps->mem = repalloc(ps->mem, sizeof(JtMember) * ps->capmem);
	}
	return ps->nmem++;
}

/*
 * An object or array at ps->p (its opening brace or bracket) into out;
 * false: give up.
 */
static bool
parse_container(JtParser *ps, bool object, JtVal *out)
{
	char		close = object ? '}' : ']';
	int			first = ps->nmem;
	int			n = 0;
	int			local[16];
	int		   *idx;
	Size		region;
	bool		ok;

	ds_jsonb_pad(&ps->buf);
	region = ps->buf.len;
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close)
		ps->p++;
	else
	{
		for (;;)
		{
			int			slot = push_member(ps);
			JtVal		v;

			if (slot < 0)
				return false;
			ps->mem[slot].order = n++;
			if (object)
			{
				if (ps->p >= ps->end || *ps->p != '"' ||
					!parse_string(ps, &ps->mem[slot].key))
					return false;
				skip_ws(ps);
				if (ps->p >= ps->end || *ps->p != ':')
					return false;
				ps->p++;
			}
			/* a string, the most common value, without parse_value's frame */
			skip_ws(ps);
			if (ps->p < ps->end && *ps->p == '"' ? !parse_string(ps, &v) : !parse_value(ps, &v))
				return false;
			ps->mem[slot].val = v;	/* ps->mem may have moved */
			skip_ws(ps);
			if (ps->p < ps->end && *ps->p == ',')
			{
				ps->p++;
				skip_ws(ps);
				continue;
			}
			if (ps->p < ps->end && *ps->p == close)
			{
				ps->p++;
				break;
			}
			return false;
		}
	}
	idx = n <= lengthof(local) ? local : palloc(sizeof(int) * n);
	if (object)
		n = sort_members(ps, first, n, idx);
	else
		for (int i = 0; i < n; i++)
			idx[i] = i;
	ok = compose(ps, object, first, n, idx, region, out);
	ps->nmem = first;
	return ok;
}

/* Any JSON value at ps->p (after whitespace) into out; false: give up. */
static bool
parse_value(JtParser *ps, JtVal *out)
{
	bool		ok;

	skip_ws(ps);
	if (ps->p >= ps->end)
		return false;
	out->ptr = NULL;
	out->len = 0;
	switch (*ps->p)
	{
		case '{':
		case '[':
			if (++ps->depth > DS_JT_MAX_DEPTH)
				return false;
			ok = parse_container(ps, *ps->p == '{', out);
			ps->depth--;
			return ok;
		case '"':
			return parse_string(ps, out);
		case 't':
			out->type = JENTRY_ISBOOL_TRUE;
			return parse_literal(ps, "true", 4);
		case 'f':
			out->type = JENTRY_ISBOOL_FALSE;
			return parse_literal(ps, "false", 5);
		case 'n':
			out->type = JENTRY_ISNULL;
			return parse_literal(ps, "null", 4);
		default:
			return parse_number(ps, out);
	}
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
	ps->capmem = 64;
	ps->mem = palloc(sizeof(JtMember) * ps->capmem);
}

/* Room for len bytes in the reader's blocks (allocated in its owner's context). */
static char *
keep(DsJsonText *jt, Size len)
{
	Size		sz = MAXALIGN(len);
	char	   *p;

	if (jt->block == NULL || jt->used + sz > jt->size)
	{
		jt->size = Max(DS_JT_BLOCK_BYTES, sz);
		jt->block = MemoryContextAlloc(jt->owner, jt->size);
		jt->used = 0;
	}
	p = jt->block + jt->used;
	jt->used += sz;
	return p;
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
	JtParser   *ps = (JtParser *) jt->parser;
	JtVal		root;
	Jsonb	   *res = NULL;
	MemoryContext old;

	ps->p = s;
	ps->end = end;
	ps->depth = 0;
	ps->nmem = 0;
	resetStringInfo(&ps->buf);
	skip_ws(ps);
	if (ps->p >= ps->end || *ps->p != '{')
		return NULL;
	old = MemoryContextSwitchTo(jt->scratch);
	if (parse_value(ps, &root))
	{
		*stop = ps->p;
		res = (Jsonb *) keep(jt, VARHDRSZ + root.len);
		SET_VARSIZE(res, VARHDRSZ + root.len);
		memcpy(&res->root, val_data(ps, &root), root.len);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(jt->scratch);
	return res;
}
