/*
 * regex.c
 *		ECMA-262 regular expressions (JSON Schema's "pattern" and
 *		"patternProperties") on PostgreSQL's regex engine.
 *
 * A pattern is translated into an ARE (translate_regex) and compiled with
 * pg_regcomp once per schema.  Most patterns in real schemas are a run of
 * literal characters and ASCII classes with quantifiers (^[a-z0-9_]{2,30}$),
 * for which the ARE engine pays a large setup cost per match; those are
 * also compiled to a JsSimplePat and matched by a small backtracking loop,
 * falling back to the ARE when it backtracks too much.
 *
 * The regex_t lives outside palloc: a reset callback on the schema's
 * memory context frees it with the schema.
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"

#include "jsonschema_int.h"


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

/* a growing buffer of code points: the translated pattern */
typedef struct WBuf
{
	pg_wchar   *data;
	int			len;
	int			cap;
} WBuf;

/* Append one code point. */
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

/* Append an ASCII string. */
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

/* Append code point ranges as bracket-expression members (a-z). */
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

/*
 * Append the class escape \c (d, w, s, or p with the property name prop)
 * as bracket-expression members.  Return false for a Unicode property we
 * do not know.
 */
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

/* The value of a hexadecimal digit, or -1. */
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

/*
 * If p (n code points, just after a backslash) starts \xHH, \uHHHH (or a
 * surrogate pair of them) or \u{H...}, set *cp to the code point and *used
 * to the code points consumed, and return true.
 */
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
 * Translate the class escape at p[i] (a backslash followed by d, w, s, D, W,
 * S, p{...} or P{...}) into out, as members when in_class or as a bracket
 * expression otherwise.  Return the code points consumed, or 0 for what an
 * ARE cannot express (a negated class inside brackets, an unknown
 * property).
 */
static int
translate_class_escape(const pg_wchar *p, int n, int i, bool in_class, WBuf *out)
{
	pg_wchar	e = p[i + 1];
	bool		neg = (e == 'D' || e == 'W' || e == 'S' || e == 'P');
	pg_wchar	lower = (e == 'P') ? 'p' : (neg ? e + ('a' - 'A') : e);
	const pg_wchar *prop = NULL;
	int			proplen = 0;
	int			skip = 2;

	if (lower == 'p')
	{
		int			j = i + 2;

		if (j >= n || p[j] != '{')
			return 0;
		prop = &p[j + 1];
		while (j < n && p[j] != '}')
			j++;
		if (j >= n)
			return 0;
		proplen = &p[j] - prop;
		skip = j + 1 - i;
	}
	if (in_class)
		return (!neg && class_members(out, lower, prop, proplen)) ? skip : 0;
	wb_add(out, '[');
	if (neg)
		wb_add(out, '^');
	if (!class_members(out, lower, prop, proplen))
		return 0;
	wb_add(out, ']');
	return skip;
}

/*
 * Translate the escape sequence at p[i] (a backslash and at least one more
 * code point) into out.  Return the code points consumed, or 0 for what an
 * ARE cannot express.
 */
static int
translate_escape(const pg_wchar *p, int n, int i, bool in_class, WBuf *out)
{
	pg_wchar	e = p[i + 1];
	pg_wchar	cp;
	int			used;

	if (e == 'd' || e == 'w' || e == 's' || e == 'D' || e == 'W' || e == 'S' ||
		e == 'p' || e == 'P')
		return translate_class_escape(p, n, i, in_class, out);
	if ((e == 'b' || e == 'B') && !in_class)
	{
		/* word boundaries are \y and \Y in an ARE */
		wb_str(out, e == 'b' ? "\\y" : "\\Y");
		return 2;
	}
	if ((e == 'x' || e == 'u') && parse_hex_escape(&p[i + 1], n - i - 1, &used, &cp))
	{
		wb_literal(out, cp);
		return 1 + used;
	}
	if (e == 'b')				/* in a class: backspace */
		wb_literal(out, 0x08);
	else if (e == 'c' && i + 2 < n && isalpha((int) p[i + 2]))
	{
		wb_literal(out, p[i + 2] % 32);
		return 3;
	}
	else if (e == '0')
		wb_literal(out, 0);
	else if (e == 't' || e == 'n' || e == 'r' || e == 'f' || e == 'v')
		wb_literal(out, e == 't' ? 9 : e == 'n' ? 10 : e == 'r' ? 13 : e == 'f' ? 12 : 11);
	else if (e >= '1' && e <= '9' && !in_class)
	{
		/* a back reference */
		wb_add(out, '\\');
		wb_add(out, e);
	}
	else
		wb_literal(out, e);		/* identity escape */
	return 2;
}

/*
 * Translate the "[" at p[i] that opens a class, and return the code points
 * consumed.  "[]" (matches nothing) and "[^]" (matches anything) become
 * groups, and leave *in_class false; otherwise it is set.
 */
static int
translate_class_open(const pg_wchar *p, int n, int i, WBuf *out, bool *in_class)
{
	int			start = i;
	bool		negated = false;

	i++;
	if (i < n && p[i] == '^')
	{
		negated = true;
		i++;
	}
	if (i < n && p[i] == ']')
	{
		wb_str(out, negated ? "(?:.|\\n)" : "(?!)");
		*in_class = false;
		return i + 1 - start;
	}
	wb_add(out, '[');
	if (negated)
		wb_add(out, '^');
	*in_class = true;
	return i - start;
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
		int			used;

		if (c == '\\' && i + 1 < n)
		{
			if ((used = translate_escape(p, n, i, in_class, out)) == 0)
				return false;
			i += used;
		}
		else if (in_class)
		{
			if (c == ']')
				in_class = false;
			if (c == '[' || c == '\\')
				wb_add(out, '\\');
			wb_add(out, c);
			i++;
		}
		else if (c == '[')
			i += translate_class_open(p, n, i, out, &in_class);
		else if (c == '.')
		{
			/* any code point but a line terminator */
			wb_str(out, "[^\n\r");
			wb_add(out, 0x2028);
			wb_add(out, 0x2029);
			wb_add(out, ']');
			i++;
		}
		else if (c == '(' && i + 3 < n && p[i + 1] == '?' && p[i + 2] == '<' &&
				 p[i + 3] != '=' && p[i + 3] != '!')
		{
			/* named group: drop the name */
			int			j = i + 3;

			while (j < n && p[j] != '>')
				j++;
			wb_add(out, '(');
			i = j + 1;
		}
		else
		{
			wb_add(out, c);
			i++;
		}
	}
	return !in_class;
}

/* Add ASCII code point c to an item's set. */
static void
simple_add(JsSimpleItem *it, int c)
{
	it->set[c >> 3] |= (uint8) (1 << (c & 7));
}

/* Add the ASCII code points lo..hi to an item's set. */
static void
simple_add_range(JsSimpleItem *it, int lo, int hi)
{
	for (int c = lo; c <= hi; c++)
		simple_add(it, c);
}

/*
 * If e is d or w, add \d or \w to the item's set (ASCII in ECMA-262
 * without the u flag's case folding) and return true.
 */
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

/* Is \e an escaped syntax character, matching e itself? */
static bool
simple_literal_escape(char e)
{
	return e != '\0' && strchr("\\/.-^$()[]{}|*+?", e) != NULL;
}

/*
 * Parse the class "[...]" at src[*i] into it, and advance *i past it.
 * Return false for anything but literals, ranges, \d and \w in ASCII.
 */
static bool
simple_class(const char *src, int len, int *pi, JsSimpleItem *it)
{
	int			i = *pi + 1;

	if (i < len && src[i] == '^')
	{
		it->negated = true;
		i++;
	}
	if (i >= len || src[i] == ']')
		return false;
	while (i < len && src[i] != ']')
	{
		unsigned char c = (unsigned char) src[i];
		int			lo;

		if (c >= 128 || c == '[')
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
	*pi = i + 1;				/* past the ] */
	return true;
}

/*
 * Parse the decimal number at src[*i] (at most a little over 100000) and
 * advance *i past it; -1 if there is no digit there.
 */
static int
simple_number(const char *src, int len, int *i)
{
	int			v = 0;

	if (*i >= len || !isdigit((unsigned char) src[*i]))
		return -1;
	while (*i < len && isdigit((unsigned char) src[*i]) && v < 100000)
		v = v * 10 + (src[(*i)++] - '0');
	return v;
}

/*
 * Parse the quantifier at src[*i], if any, into its min and max and
 * advance *i past it (and past a "?" that makes it lazy: laziness does not
 * change whether a pattern matches).  Return false for a malformed or
 * doubled quantifier.
 */
static bool
simple_quantifier(const char *src, int len, int *i, JsSimpleItem *it)
{
	if (*i < len && (src[*i] == '*' || src[*i] == '+' || src[*i] == '?'))
	{
		it->min = src[*i] == '+' ? 1 : 0;
		it->max = src[*i] == '?' ? 1 : -1;
		(*i)++;
	}
	else if (*i < len && src[*i] == '{')
	{
		int			j = *i + 1;
		int			lo = simple_number(src, len, &j);
		int			hi = lo;

		if (lo < 0)
			return false;
		if (j < len && src[j] == ',')
		{
			j++;
			if (j < len && src[j] == '}')
				hi = -1;
			else if ((hi = simple_number(src, len, &j)) < 0)
				return false;
		}
		if (j >= len || src[j] != '}' || (hi >= 0 && hi < lo))
			return false;
		it->min = lo;
		it->max = hi;
		*i = j + 1;
	}
	else
		return true;
	if (*i < len && src[*i] == '?')
		(*i)++;
	return !(*i < len && (src[*i] == '*' || src[*i] == '+' || src[*i] == '?' ||
						  src[*i] == '{'));
}

/*
 * Parse an ECMA-262 pattern into the simple form, or return false if it
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
			if (!simple_class(src, len, &i, it))
				return false;
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
		if (!simple_quantifier(src, len, &i, it))
			return false;
	}
	return true;
}

/* Does an item's class match code point c (any non-ASCII when negated)? */
static inline bool
simple_in(const JsSimpleItem *it, pg_wchar c)
{
	if (c >= 128)
		return it->negated;
	return ((it->set[c >> 3] >> (c & 7)) & 1) != it->negated;
}

/*
 * Match items item.. of p against w[pos..len), longest repetition first.
 * Return 1 for a match, 0 for none, -1 when *budget (steps left) ran out.
 */
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

/*
 * Search w (len code points) for p: 1 if it matches somewhere, 0 if not,
 * -1 if it gave up (the caller then asks the ARE).
 */
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

/*
 * Reset callback of a schema's memory context: compiled regexes live
 * outside palloc, so free them with the schema.
 */
static void
js_regex_cleanup(void *arg)
{
	JsonSchema *s = arg;
	ListCell   *lc;

	foreach(lc, s->regexes)
		pg_regfree(&((JsRegex *) lfirst(lc))->re);
	s->regexes = NIL;
}

/*
 * Compile an ECMA-262 pattern (len bytes in the database encoding) for
 * schema s: the regex and its source are kept in s's context.  Return NULL
 * with *err set to the reason when the pattern cannot be compiled.
 */
JsRegex *
js_compile_regex(JsonSchema *s, const char *src, int len, char **err)
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

/*
 * Does the pattern match somewhere in str (len bytes)?  Raises ERROR if the
 * regex engine fails (out of memory, too complex).
 */
bool
js_regex_match(JsRegex *r, const char *str, int len)
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
