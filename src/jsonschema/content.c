/*
 * content.c
 *		The content keywords of the JSON Schema validator as assertions:
 *		contentEncoding (base64), contentMediaType (application/json) and
 *		the document contentSchema then applies to.
 *
 * JSON Schema makes them annotations; like "format", the validator asserts
 * them when asked (assert_formats), as draft-07's optional tests expect.
 * Encodings and media types not known here pass.  base64 is RFC 4648's
 * alphabet with its padding; the JSON is checked by PostgreSQL's own
 * parser, and turned into a jsonb only when a contentSchema needs it.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "utils/fmgrprotos.h"

#include "compat.h"
#include "jsonschema_int.h"

/* the value of base64 digit c (RFC 4648 section 4), or -1 */
static int
base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Decode base64 s (len bytes) into a palloc'd, NUL-terminated buffer
 * (*outlen bytes).  Return NULL if s is not base64: a character outside
 * the alphabet, a length not a multiple of four, misplaced padding.
 */
static char *
base64_decode(const char *s, int len, int *outlen)
{
	char	   *out;
	int			n = 0;
	uint32		acc = 0;
	int			pad = 0;

	if (len % 4 != 0)
		return NULL;
	if (len > 0 && s[len - 1] == '=')
		pad = (s[len - 2] == '=') ? 2 : 1;
	out = palloc(len / 4 * 3 + 1);
	for (int i = 0; i < len; i++)
	{
		int			v = (i >= len - pad) ? 0 : base64_value((unsigned char) s[i]);

		if (v < 0)
			return NULL;
		acc = (acc << 6) | v;
		if (i % 4 == 3)
		{
			out[n++] = (acc >> 16) & 0xFF;
			out[n++] = (acc >> 8) & 0xFF;
			out[n++] = acc & 0xFF;
			acc = 0;
		}
	}
	n -= pad;
	out[n] = '\0';
	*outlen = n;
	return out;
}

/* Is s (len bytes) valid JSON text? */
static bool
valid_json(char *s, int len)
{
	JsonLexContext *lex;

	if (!pg_verify_mbstr(GetDatabaseEncoding(), s, len, true) ||
		memchr(s, '\0', len) != NULL)
		return false;
	lex = ds_json_lexer(s, len);
	return pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS;
}

/* Is media type mt application/json (any case, parameters ignored)? */
static bool
is_json_media_type(const char *mt)
{
	int			n = strcspn(mt, ";");

	while (n > 0 && mt[n - 1] == ' ')
		n--;
	return n == 16 && pg_strncasecmp(mt, "application/json", 16) == 0;
}

/*
 * Check string s (len bytes) against contentEncoding encoding and
 * contentMediaType media_type (either NULL if absent).  Return false with
 * *why set if it fails; otherwise, when doc is not NULL and the content is
 * a JSON document, set *doc to it as a jsonb (else to NULL).
 */
bool
js_check_content(const char *encoding, const char *media_type,
				 const char *s, int len, Jsonb **doc, const char **why)
{
	char	   *text = (char *) s;
	int			textlen = len;

	if (doc)
		*doc = NULL;
	if (encoding != NULL && pg_strcasecmp(encoding, "base64") == 0)
	{
		if ((text = base64_decode(s, len, &textlen)) == NULL)
		{
			*why = "string is not valid base64";
			return false;
		}
	}
	else if (encoding != NULL)
		return true;			/* an encoding we do not know */
	if (media_type == NULL || !is_json_media_type(media_type))
		return true;
	if (text == s)
		text = pnstrdup(s, len);
	if (!valid_json(text, textlen))
	{
		*why = "content is not a valid JSON document";
		return false;
	}
	if (doc)
		*doc = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	return true;
}
