/*
 * regex.c
 *		ECMA-262 regular expressions (JSON Schema's "pattern",
 *		"patternProperties" and the "regex" format) on PCRE2 with its JIT.
 *
 * A pattern is read as ECMA-262 with the "u" flag (what JSON Schema
 * recommends) and translated into PCRE2 syntax (translate_regex), then
 * compiled once per schema in UTF mode, without PCRE2_UCP so that \d, \w
 * and \b keep ECMA's ASCII meaning, with PCRE2_DOLLAR_ENDONLY so that "$"
 * does not match before a final newline, and JIT-compiled.  What the
 * translation rewrites: "." (ECMA excludes four line terminators), \s and
 * \S (ECMA's white space is Unicode's), \uHHHH, \u{H...} and surrogate
 * pairs, \xHH, \0, \v, "[]" and "[^]", a "[" inside a class, and Unicode
 * property names (\p{Letter}, \p{digit}, \p{Script=Greek}).  What it
 * refuses, as ECMA-262 does: escapes of letters and digits that ECMA does
 * not define (\a, \e, \z, \Q...), groups other than (?:, (?=, (?!, (?<=,
 * (?<! and (?<name>, PCRE2's verbs "(*" and possessive quantifiers.  It
 * accepts, as browsers do outside "u" mode, escaped punctuation (\-, \:)
 * and a "{" that starts no quantifier.  Differences left: a lookbehind
 * must have a bounded length (PCRE2 10.42; the "regex" format accepts an
 * unbounded one, which is valid ECMA-262), and \S inside a class is
 * PCRE2's (ASCII).
 *
 * The compiled code and its match data live outside palloc: a reset
 * callback on the schema's memory context frees them with the schema.  A
 * match allocates nothing (one match data per pattern, one JIT stack and
 * match context per backend); the subject is the string's UTF-8 bytes as
 * jsonb holds them, converted only in a database of another encoding.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"

#include "jsonschema_int.h"

/* a match gives up (ERROR 2201B) after this many backtracking steps */
#define JS_REGEX_MATCH_LIMIT 10000000

/* ECMA-262 WhiteSpace and LineTerminator (\s), as PCRE2 class members */
#define ECMA_SPACE "\\t\\n\\x{0b}\\f\\r \\x{a0}\\x{1680}\\x{2000}-\\x{200a}" \
	"\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}\\x{feff}"

/* Unicode general categories by long name and alias, and PCRE2's name */
static const char *const gc_names[][2] = {
	{"Letter", "L"}, {"Cased_Letter", "L&"}, {"LC", "L&"},
	{"Uppercase_Letter", "Lu"}, {"Lowercase_Letter", "Ll"},
	{"Titlecase_Letter", "Lt"}, {"Modifier_Letter", "Lm"},
	{"Other_Letter", "Lo"}, {"Mark", "M"}, {"Combining_Mark", "M"},
	{"Nonspacing_Mark", "Mn"}, {"Spacing_Mark", "Mc"},
	{"Enclosing_Mark", "Me"}, {"Number", "N"}, {"Decimal_Number", "Nd"},
	{"digit", "Nd"}, {"Letter_Number", "Nl"}, {"Other_Number", "No"},
	{"Punctuation", "P"}, {"punct", "P"}, {"Connector_Punctuation", "Pc"},
	{"Dash_Punctuation", "Pd"}, {"Open_Punctuation", "Ps"},
	{"Close_Punctuation", "Pe"}, {"Initial_Punctuation", "Pi"},
	{"Final_Punctuation", "Pf"}, {"Other_Punctuation", "Po"},
	{"Symbol", "S"}, {"Math_Symbol", "Sm"}, {"Currency_Symbol", "Sc"},
	{"Modifier_Symbol", "Sk"}, {"Other_Symbol", "So"}, {"Separator", "Z"},
	{"Space_Separator", "Zs"}, {"Line_Separator", "Zl"},
	{"Paragraph_Separator", "Zp"}, {"Other", "C"}, {"Control", "Cc"},
	{"cntrl", "Cc"}, {"Format", "Cf"}, {"Surrogate", "Cs"},
	{"Private_Use", "Co"}, {"Unassigned", "Cn"}
};

/* the per-backend match context: JIT stack and backtracking limit */
static pcre2_match_context *match_cxt = NULL;

/* the per-backend compile context: surrogate escapes allowed */
static pcre2_compile_context *compile_cxt = NULL;

/* the value of hexadecimal digit c, or -1 */
static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* the value of the n hexadecimal digits at p, or -1 */
static int32
hexn(const char *p, int n)
{
	int32		v = 0;

	for (int i = 0; i < n; i++)
	{
		if (hexval(p[i]) < 0)
			return -1;
		v = v * 16 + hexval(p[i]);
	}
	return v;
}

/*
 * Read the \u escape at p[i] (p[i] is the backslash): \uHHHH, a surrogate
 * pair of them, or \u{H...}.  Return the bytes consumed (0 if malformed)
 * and the code point in *cp.
 */
static int
read_u_escape(const char *p, int n, int i, int32 *cp)
{
	int32		v,
				lo;
	int			j;

	if (i + 2 < n && p[i + 2] == '{')
	{
		v = 0;
		for (j = i + 3; j < n && hexval(p[j]) >= 0 && v <= 0x10FFFF; j++)
			v = v * 16 + hexval(p[j]);
		if (j == i + 3 || j >= n || p[j] != '}' || v > 0x10FFFF)
			return 0;
		*cp = v;
		return j + 1 - i;
	}
	if (i + 6 > n || (v = hexn(p + i + 2, 4)) < 0)
		return 0;
	*cp = v;
	if (v >= 0xD800 && v <= 0xDBFF && i + 12 <= n && p[i + 6] == '\\' &&
		p[i + 7] == 'u' && (lo = hexn(p + i + 8, 4)) >= 0xDC00 && lo <= 0xDFFF)
	{
		*cp = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
		return 12;
	}
	return 6;
}

/*
 * Append \p{name} or \P{name} (neg) in PCRE2's spelling: general
 * categories by their short names, Script=X as sc:X.  Return false for a
 * malformed property (PCRE2 itself refuses names it does not know).
 */
static bool
append_property(StringInfo out, const char *name, int len, bool neg)
{
	char		buf[64];
	const char *eq;
	const char *val = buf;

	if (len <= 0 || len >= (int) sizeof(buf))
		return false;
	memcpy(buf, name, len);
	buf[len] = '\0';
	if (strspn(buf, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_=") != len)
		return false;
	appendStringInfoString(out, neg ? "\\P{" : "\\p{");
	if ((eq = strchr(buf, '=')) != NULL)
	{
		int			keylen = eq - buf;

		val = eq + 1;
		if (strncmp(buf, "Script", keylen) == 0 || strncmp(buf, "sc", keylen) == 0)
		{
			appendStringInfo(out, "sc:%s}", val);
			return true;
		}
		if (strncmp(buf, "Script_Extensions", keylen) == 0 ||
			strncmp(buf, "scx", keylen) == 0)
		{
			appendStringInfo(out, "scx:%s}", val);
			return true;
		}
		if (strncmp(buf, "General_Category", keylen) != 0 &&
			strncmp(buf, "gc", keylen) != 0)
			return false;
	}
	for (int k = 0; k < lengthof(gc_names); k++)
		if (strcmp(val, gc_names[k][0]) == 0)
		{
			val = gc_names[k][1];
			break;
		}
	appendStringInfo(out, "%s}", val);
	return true;
}

/*
 * Translate the escape at p[i] (a backslash with at least one byte after
 * it) into out.  Return the bytes consumed, or 0 with *err set for an
 * escape ECMA-262 does not allow.
 */
static int
translate_escape(const char *p, int n, int i, bool in_class, StringInfo out,
				 const char **err)
{
	char		e = p[i + 1];
	int32		cp;
	int			used;

	switch (e)
	{
		case 'd':
		case 'D':
		case 'w':
		case 'W':
		case 't':
		case 'n':
		case 'r':
		case 'f':
			/* the same in PCRE2 without UCP */
			appendBinaryStringInfo(out, p + i, 2);
			return 2;
		case 'b':
		case 'B':
			if (!in_class)
				appendBinaryStringInfo(out, p + i, 2);
			else if (e == 'b')
				appendStringInfoString(out, "\\x{08}");	/* backspace */
			else
				break;
			return 2;
		case 's':
			appendStringInfoString(out, in_class ? ECMA_SPACE : "[" ECMA_SPACE "]");
			return 2;
		case 'S':
			appendStringInfoString(out, in_class ? "\\S" : "[^" ECMA_SPACE "]");
			return 2;
		case 'v':
			appendStringInfoString(out, "\\x{0b}");
			return 2;
		case 'p':
		case 'P':
			{
				const char *close = (i + 2 < n && p[i + 2] == '{') ?
					memchr(p + i + 3, '}', n - i - 3) : NULL;

				if (close == NULL ||
					!append_property(out, p + i + 3, close - (p + i + 3), e == 'P'))
				{
					*err = "invalid Unicode property escape";
					return 0;
				}
				return close + 1 - (p + i);
			}
		case 'u':
			if ((used = read_u_escape(p, n, i, &cp)) == 0)
				break;
			appendStringInfo(out, "\\x{%x}", cp);
			return used;
		case 'x':
			if (i + 4 > n || (cp = hexn(p + i + 2, 2)) < 0)
				break;
			appendStringInfo(out, "\\x{%x}", cp);
			return 4;
		case 'c':
			if (i + 2 >= n || !JS_ASCII_ALPHA((unsigned char) p[i + 2]))
				break;
			appendStringInfo(out, "\\x{%x}", p[i + 2] % 32);
			return 3;
		case '0':
			if (i + 2 < n && isdigit((unsigned char) p[i + 2]))
				break;
			appendStringInfoString(out, "\\x{0}");
			return 2;
		case 'k':
			if (in_class || i + 2 >= n || p[i + 2] != '<')
				break;
			appendStringInfoString(out, "\\k");
			return 2;
		default:
			if (e >= '1' && e <= '9' && !in_class)
			{
				/* a back reference (PCRE2 refuses one to no group) */
				appendBinaryStringInfo(out, p + i, 2);
				return 2;
			}
			if ((unsigned char) e >= 0x80)
				return 1;		/* \é is é: drop the backslash */
			if (!JS_ASCII_ALNUM((unsigned char) e))
			{
				/* an escaped syntax character or punctuation: itself */
				appendBinaryStringInfo(out, p + i, 2);
				return 2;
			}
			break;
	}
	*err = psprintf("invalid escape \\%c", e);
	return 0;
}

/*
 * Check the group opened at p[i] ("(?..." or "(*"): ECMA-262 has (?:,
 * (?=, (?!, (?<=, (?<! and (?<name>.  Return false with *err set if not.
 */
static bool
check_group(const char *p, int n, int i, const char **err)
{
	if (i + 1 < n && p[i + 1] == '*')
	{
		*err = "nothing to repeat";
		return false;
	}
	if (i + 1 >= n || p[i + 1] != '?')
		return true;
	if (i + 2 < n && (p[i + 2] == ':' || p[i + 2] == '=' || p[i + 2] == '!'))
		return true;
	if (i + 3 < n && p[i + 2] == '<')
	{
		int			j = i + 3;

		if (p[j] == '=' || p[j] == '!')
			return true;
		/* a group name: an identifier */
		while (j < n && (JS_ASCII_ALNUM((unsigned char) p[j]) || p[j] == '_' || p[j] == '$' ||
						 (unsigned char) p[j] >= 0x80))
			j++;
		if (j > i + 3 && j < n && p[j] == '>' && !isdigit((unsigned char) p[i + 3]))
			return true;
	}
	*err = "invalid group";
	return false;
}

/*
 * Translate the "[" at p[i] outside a class into out and return the bytes
 * consumed; *in_class says whether a class is left open.  "[]" matches
 * nothing and "[^]" anything in ECMA-262.
 */
static int
translate_class_open(const char *p, int n, int i, StringInfo out, bool *in_class)
{
	bool		neg = (i + 1 < n && p[i + 1] == '^');
	int			j = i + (neg ? 2 : 1);

	if (j < n && p[j] == ']')
	{
		appendStringInfoString(out, neg ? "[\\s\\S]" : "(?!)");
		*in_class = false;
		return j + 1 - i;
	}
	appendStringInfoString(out, neg ? "[^" : "[");
	*in_class = true;
	return j - i;
}

/*
 * Translate an ECMA-262 pattern (n bytes of UTF-8) into a PCRE2 pattern
 * in out.  Return false with *err set for syntax ECMA-262 does not have.
 */
static bool
translate_regex(const char *p, int n, StringInfo out, const char **err)
{
	int			i = 0;
	bool		in_class = false;
	bool		quantified = false; /* the last thing read is a quantifier */

	while (i < n)
	{
		char		c = p[i];
		bool		quant = false;
		int			used = 1;

		if (c == '\\')
		{
			if (i + 1 >= n)
			{
				*err = "\\ at end of pattern";
				return false;
			}
			if ((used = translate_escape(p, n, i, in_class, out, err)) == 0)
				return false;
		}
		else if (in_class)
		{
			if (c == ']')
				in_class = false;
			if (c == '[')
				appendStringInfoChar(out, '\\');
			appendStringInfoChar(out, c);
		}
		else if (c == '[')
			used = translate_class_open(p, n, i, out, &in_class);
		else if (c == '.')
			appendStringInfoString(out, "[^\\n\\r\\x{2028}\\x{2029}]");
		else if (c == '(' && !check_group(p, n, i, err))
			return false;
		else if (c == '+' && quantified)
		{
			*err = "nothing to repeat";
			return false;
		}
		else
		{
			quant = (c == '*' || c == '+' || c == '?' || c == '}');
			appendStringInfoChar(out, c);
		}
		quantified = quant;
		i += used;
	}
	if (in_class)
	{
		*err = "missing terminating ] for character class";
		return false;
	}
	return true;
}

/*
 * Compile ECMA-262 pattern src (len bytes in the database encoding) with
 * PCRE2.  Return NULL with *err set (palloc'd) if it is invalid, and
 * *ecode to PCRE2's error code (0 for what the translation refused).
 */
static pcre2_code *
compile_pattern(const char *src, int len, char **err, int *ecode)
{
	StringInfoData out;
	const char *terr = NULL;
	const char *utf8 = src;
	pcre2_code *code;
	PCRE2_SIZE	eoff;

	*ecode = 0;
	if (GetDatabaseEncoding() != PG_UTF8)
	{
		utf8 = pg_server_to_any(src, len, PG_UTF8);
		if (utf8 != src)
			len = strlen(utf8);
	}
	if (compile_cxt == NULL)
	{
		if ((compile_cxt = pcre2_compile_context_create(NULL)) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		/* \uD800 is valid ECMA-262; it never matches valid UTF-8 */
		pcre2_set_compile_extra_options(compile_cxt, PCRE2_EXTRA_ALLOW_SURROGATE_ESCAPES);
	}
	initStringInfo(&out);
	if (!translate_regex(utf8, len, &out, &terr))
	{
		*err = pstrdup(terr);
		return NULL;
	}
	code = pcre2_compile((PCRE2_SPTR) out.data, out.len,
						 PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_UCP |
						 PCRE2_NEVER_BACKSLASH_C,
						 ecode, &eoff, compile_cxt);
	if (code == NULL)
	{
		PCRE2_UCHAR buf[256];

		pcre2_get_error_message(*ecode, buf, sizeof(buf));
		*err = pstrdup((char *) buf);
	}
	pfree(out.data);
	return code;
}

/*
 * Reset callback of a schema's memory context: compiled patterns live
 * outside palloc, so free them with the schema.
 */
static void
js_regex_cleanup(void *arg)
{
	JsonSchema *s = arg;
	ListCell   *lc;

	foreach(lc, s->regexes)
	{
		JsRegex    *r = lfirst(lc);

		pcre2_match_data_free(r->match_data);
		pcre2_code_free(r->code);
	}
	s->regexes = NIL;
}

/* The backend's match context, created on first use. */
static pcre2_match_context *
get_match_context(void)
{
	if (match_cxt == NULL)
	{
		pcre2_match_context *m = pcre2_match_context_create(NULL);
		pcre2_jit_stack *stack;

		if (m == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		pcre2_set_match_limit(m, JS_REGEX_MATCH_LIMIT);
		/* deep patterns need more than the 32 kB default */
		stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, NULL);
		if (stack != NULL)
			pcre2_jit_stack_assign(m, NULL, stack);
		match_cxt = m;
	}
	return match_cxt;
}

/*
 * Compile an ECMA-262 pattern (len bytes in the database encoding) for
 * schema s: JIT-compiled once, with its match data, freed with s's
 * context.  Return NULL with *err set to the reason when the pattern is
 * invalid.
 */
JsRegex *
js_compile_regex(JsonSchema *s, const char *src, int len, char **err)
{
	JsRegex    *r;
	MemoryContext old;
	int			ecode;

	*err = NULL;
	/* registered before compiling: an error from here frees the code */
	r = MemoryContextAllocZero(s->cxt, sizeof(JsRegex));
	r->source = MemoryContextStrdup(s->cxt, pnstrdup(src, len));
	if (s->regexes == NIL)
	{
		MemoryContextCallback *cb = MemoryContextAlloc(s->cxt, sizeof(MemoryContextCallback));

		cb->func = js_regex_cleanup;
		cb->arg = s;
		MemoryContextRegisterResetCallback(s->cxt, cb);
	}
	old = MemoryContextSwitchTo(s->cxt);
	s->regexes = lappend(s->regexes, r);
	MemoryContextSwitchTo(old);
	if ((r->code = compile_pattern(src, len, err, &ecode)) == NULL)
	{
		if (ecode == PCRE2_ERROR_LOOKBEHIND_NOT_FIXED_LENGTH ||
			ecode == PCRE2_ERROR_LOOKBEHIND_TOO_COMPLICATED)
			*err = psprintf("%s (valid ECMA-262, but PCRE2 runs only lookbehinds of bounded length)",
							*err);
		return NULL;
	}
	r->jit = pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE) == 0;
	/* the subject's bytes are UTF-8 only in a UTF-8 database */
	if (GetDatabaseEncoding() == PG_UTF8)
		r->simple = js_simple_regex(src, len, s->cxt);
	r->match_data = pcre2_match_data_create(1, NULL);
	if (r->match_data == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return r;
}

/*
 * Is s (len bytes) a valid ECMA-262 regular expression?  A lookbehind of
 * unbounded length is (ES2018) even though PCRE2 cannot run it.
 */
bool
js_regex_is_valid(const char *s, int len)
{
	char	   *err;
	int			ecode;
	pcre2_code *code = compile_pattern(s, len, &err, &ecode);

	if (code == NULL)
		return ecode == PCRE2_ERROR_LOOKBEHIND_NOT_FIXED_LENGTH ||
			ecode == PCRE2_ERROR_LOOKBEHIND_TOO_COMPLICATED;
	pcre2_code_free(code);
	return true;
}

/*
 * Does the pattern match somewhere in str (len bytes)?  Raises ERROR if
 * the match fails (too much backtracking, out of memory).
 */
bool
js_regex_match(JsRegex *r, const char *str, int len)
{
	pcre2_match_context *m;
	int			rc;

	/* a simple pattern (in a UTF-8 database) needs no PCRE2, unless in doubt */
	if (r->simple && (rc = js_simple_match(r->simple, str, len)) >= 0)
		return rc == 1;
	m = get_match_context();
	if (GetDatabaseEncoding() != PG_UTF8)
	{
		const char *utf8 = pg_server_to_any(str, len, PG_UTF8);

		if (utf8 != str)
		{
			str = utf8;
			len = strlen(utf8);
		}
	}
	if (r->jit)
		rc = pcre2_jit_match(r->code, (PCRE2_SPTR) str, len, 0, 0, r->match_data, m);
	else
		rc = pcre2_match(r->code, (PCRE2_SPTR) str, len, 0, 0, r->match_data, m);
	if (rc >= 0)
		return true;
	if (rc == PCRE2_ERROR_NOMATCH)
		return false;
	{
		PCRE2_UCHAR buf[256];

		pcre2_get_error_message(rc, buf, sizeof(buf));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
				 errmsg("regular expression failed: %s", (char *) buf),
				 errdetail("Pattern \"%s\".", r->source)));
	}
	return false;
}

/*
 * Raise the error for an invalid pattern in a schema: SQLSTATE 2201B,
 * naming the keyword, where it is, the pattern and what is wrong.
 */
void
js_regex_error(const char *location, const char *keyword, const char *src,
			   const char *err)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
			 errmsg("invalid JSON Schema"),
			 errdetail("Keyword \"%s\" at \"#%s\" has an invalid regular expression \"%s\": %s.",
					   keyword, location, src, err),
			 errhint("Patterns are ECMA-262 regular expressions.")));
}
