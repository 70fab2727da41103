/*
 * regex_simple.c
 *		Patterns simple enough to match without PCRE2: a sequence of
 *		quantified ASCII characters and classes, optionally anchored.
 *
 * Schemas' patterns are mostly of that kind (^[a-z0-9_]{2,30}$,
 * ^\d{4}-\d{2}$), and for them the entry into PCRE2's JIT matcher costs
 * several times the match itself.  js_simple_regex recognises them, from
 * the ECMA-262 source, as a list of atoms (a set of ASCII characters with
 * a minimum and maximum count); anything else (".", groups, alternation,
 * negated classes, other escapes, characters outside printable ASCII in
 * the pattern) is left to PCRE2, which compiled the pattern first.
 *
 * Why bytes will do: every atom matches ASCII characters only, and in
 * UTF-8 the bytes of any other character are >= 0x80, so they match no
 * atom, and a count of matched bytes is a count of characters; a match
 * could start inside a character only if the rest of the pattern matched
 * the empty string there, and then it matches at the start too.  Lazy
 * quantifiers match where greedy ones do (only whether there is a match
 * matters).  The matcher backtracks over the counts; past
 * JS_SIMPLE_STEPS steps it gives up and PCRE2 decides.
 */
#include "postgres.h"

#include "jsonschema_int.h"

/* steps of backtracking after which PCRE2 takes over */
#define JS_SIMPLE_STEPS 10000

/* the largest count taken from a pattern's {n,m} */
#define JS_SIMPLE_MAX_COUNT 100000

/* one quantified character or class */
typedef struct JsSimpleAtom
{
	bool		set[256];		/* the bytes it matches (ASCII only) */
	int			min;
	int			max;			/* -1: no maximum */
} JsSimpleAtom;

struct JsSimpleRe
{
	bool		start;			/* anchored by "^" */
	bool		end;			/* anchored by "$" */
	int			natoms;
	JsSimpleAtom atoms[FLEXIBLE_ARRAY_MEMBER];
};

static inline void
set_add(bool *set, unsigned char lo, unsigned char hi)
{
	for (int c = lo; c <= hi; c++)
		set[c] = true;
}

/* ECMA-262's SyntaxCharacter and "/": what "\" makes a literal */
static bool
is_syntax_char(char c)
{
	return c != '\0' && strchr("^$\\.*+?()[]{}|/", c) != NULL;
}

/* a character that stands for itself outside a class ("/" does) */
static bool
is_plain_char(char c)
{
	return c >= 0x20 && c < 0x7f && (c == '/' || !is_syntax_char(c));
}

/*
 * The class escape at p (after its "\"): \d or \w into set.  Return false
 * for any other.
 */
static bool
class_escape(char e, bool *set)
{
	if (e == 'd')
		set_add(set, '0', '9');
	else if (e == 'w')
	{
		set_add(set, '0', '9');
		set_add(set, 'A', 'Z');
		set_add(set, 'a', 'z');
		set_add(set, '_', '_');
	}
	else
		return false;
	return true;
}

/*
 * One literal of a class at src[*i] (an ASCII character, or "\" and a
 * syntax character or "-") into *c; false if it is something else.
 */
static bool
class_literal(const char *src, int len, int *i, char *c)
{
	if (src[*i] == '\\')
	{
		if (*i + 1 >= len ||
			!(is_syntax_char(src[*i + 1]) || src[*i + 1] == '-'))
			return false;
		*c = src[*i + 1];
		*i += 2;
		return true;
	}
	if (src[*i] < 0x20 || src[*i] >= 0x7f || src[*i] == '[' || src[*i] == ']')
		return false;
	*c = src[(*i)++];
	return true;
}

/*
 * The class at src[*i] (just after its "[") into set, *i moved past its
 * "]": literals, ranges of literals, \d and \w.  False if not simple.
 */
static bool
parse_class(const char *src, int len, int *i, bool *set)
{
	if (*i >= len || src[*i] == '^' || src[*i] == ']')
		return false;
	while (*i < len && src[*i] != ']')
	{
		char		lo,
					hi;

		if (src[*i] == '\\' && *i + 1 < len && class_escape(src[*i + 1], set))
		{
			*i += 2;
			/* "[\d-x]": no range from a class (an error in "u" mode) */
			if (*i + 1 < len && src[*i] == '-' && src[*i + 1] != ']')
				return false;
			continue;
		}
		if (!class_literal(src, len, i, &lo))
			return false;
		if (*i + 1 < len && src[*i] == '-' && src[*i + 1] != ']')
		{
			(*i)++;
			if (!class_literal(src, len, i, &hi) || hi < lo ||
				(*i < len && src[*i] == '-' && *i + 1 < len && src[*i + 1] != ']'))
				return false;
			set_add(set, lo, hi);
		}
		else
			set_add(set, lo, lo);
	}
	if (*i >= len)
		return false;
	(*i)++;
	return true;
}

/* A count at src[*i] into *n (at most JS_SIMPLE_MAX_COUNT), or false. */
static bool
parse_count(const char *src, int len, int *i, int *n)
{
	int			start = *i;

	*n = 0;
	while (*i < len && src[*i] >= '0' && src[*i] <= '9')
	{
		*n = *n * 10 + (src[*i] - '0');
		if (*n > JS_SIMPLE_MAX_COUNT)
			return false;
		(*i)++;
	}
	return *i > start;
}

/*
 * The quantifier at src[*i], if any, into a's counts (1 and 1 without
 * one), *i moved past it.  False if not simple.
 */
static bool
parse_quantifier(const char *src, int len, int *i, JsSimpleAtom *a)
{
	a->min = a->max = 1;
	if (*i >= len)
		return true;
	switch (src[*i])
	{
		case '?':
			a->min = 0;
			break;
		case '*':
			a->min = 0;
			a->max = -1;
			break;
		case '+':
			a->max = -1;
			break;
		case '{':
			(*i)++;
			if (!parse_count(src, len, i, &a->min))
				return false;
			a->max = a->min;
			if (*i < len && src[*i] == ',')
			{
				(*i)++;
				a->max = -1;
				if (*i < len && src[*i] != '}' &&
					(!parse_count(src, len, i, &a->max) || a->max < a->min))
					return false;
			}
			if (*i >= len || src[*i] != '}')
				return false;
			break;
		default:
			return true;
	}
	(*i)++;
	/* lazy: the same matches */
	if (*i < len && src[*i] == '?')
		(*i)++;
	return true;
}

/*
 * The simple form of the ECMA-262 pattern src (len bytes, already known
 * to be valid), allocated in cxt, or NULL if it is not simple.
 */
JsSimpleRe *
js_simple_regex(const char *src, int len, MemoryContext cxt)
{
	JsSimpleAtom *atoms = palloc0(sizeof(JsSimpleAtom) * Max(len, 1));
	int			natoms = 0;
	bool		start = false,
				end = false;
	int			i = 0;
	JsSimpleRe *re;

	if (len > 0 && src[0] == '^')
	{
		start = true;
		i++;
	}
	while (i < len)
	{
		JsSimpleAtom *a = &atoms[natoms];
		char		c = src[i];

		if (c == '$' && i == len - 1)
		{
			end = true;
			break;
		}
		if (c == '[')
		{
			i++;
			if (!parse_class(src, len, &i, a->set))
				return NULL;
		}
		else if (c == '\\' && i + 1 < len &&
				 (class_escape(src[i + 1], a->set) || is_syntax_char(src[i + 1])))
		{
			if (is_syntax_char(src[i + 1]))
				set_add(a->set, src[i + 1], src[i + 1]);
			i += 2;
		}
		else if (is_plain_char(c))
		{
			set_add(a->set, c, c);
			i++;
		}
		else
			return NULL;
		if (!parse_quantifier(src, len, &i, a))
			return NULL;
		natoms++;
	}
	re = MemoryContextAlloc(cxt, offsetof(JsSimpleRe, atoms) +
							sizeof(JsSimpleAtom) * natoms);
	re->start = start;
	re->end = end;
	re->natoms = natoms;
	memcpy(re->atoms, atoms, sizeof(JsSimpleAtom) * natoms);
	pfree(atoms);
	return re;
}

/*
 * Does re match the bytes from p to end, atoms from ai on, starting at p?
 * 1 yes, 0 no, -1 out of steps.
 */
static int
match_from(const JsSimpleRe *re, int ai, const unsigned char *p,
		   const unsigned char *end, int *steps)
{
	for (; ai < re->natoms; ai++)
	{
		const JsSimpleAtom *a = &re->atoms[ai];
		const unsigned char *lim = a->max < 0 || a->max > end - p ? end : p + a->max;
		const unsigned char *q = p;

		while (q < lim && a->set[*q])
			q++;
		if (q - p < a->min)
			return 0;
		if (ai == re->natoms - 1)
		{
			/* the last atom: as many as it takes, or any number */
			return !re->end || q == end;
		}
		if (q - p > a->min)
		{
			/* the longest first, then fewer */
			for (; q >= p + a->min; q--)
			{
				int			r;

				if (--*steps < 0)
					return -1;
				if ((r = match_from(re, ai + 1, q, end, steps)) != 0)
					return r;
			}
			return 0;
		}
		p = q;
	}
	return !re->end || p == end;
}

/*
 * Does re match somewhere in s (len bytes of UTF-8)?  1 yes, 0 no, -1 if
 * it would take too many steps to tell.
 */
int
js_simple_match(const JsSimpleRe *re, const char *s, int len)
{
	const unsigned char *p = (const unsigned char *) s;
	const unsigned char *end = p + len;
	int			steps = JS_SIMPLE_STEPS;

	if (re->start)
		return match_from(re, 0, p, end, &steps);
	for (; p <= end; p++)
	{
		int			r = match_from(re, 0, p, end, &steps);

		if (r != 0)
			return r;
	}
	return 0;
}
