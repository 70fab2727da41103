/*
 * format_uri.c
 *		The URI formats of the JSON Schema validator: uri, uri-reference,
 *		iri, iri-reference (RFC 3986 and RFC 3987) and uri-template
 *		(RFC 6570).
 *
 * A reference is split as RFC 3986's appendix B does (scheme, authority,
 * path, query, fragment) and each part is checked against its grammar.  An
 * IRI allows any non-ASCII character where a URI allows unreserved ones
 * (RFC 3987's ucschar and iprivate, without telling the two apart).  uri.c
 * resolves references; this file only checks their syntax.
 */
#include "postgres.h"

#include "jsonschema_int.h"

/* which characters a part of a reference may hold, besides %XX */
#define URI_UNRESERVED	0x01	/* ALPHA DIGIT - . _ ~ */
#define URI_SUBDELIM	0x02	/* ! $ & ' ( ) * + , ; = */
#define URI_COLON		0x04
#define URI_AT			0x08
#define URI_SLASH		0x10
#define URI_QUESTION	0x20

#define URI_PCHAR (URI_UNRESERVED | URI_SUBDELIM | URI_COLON | URI_AT)

/* the classes of ASCII character c (0 for none) */
static int
uri_class(unsigned char c)
{
	if (JS_ASCII_ALNUM(c) || c == '-' || c == '.' || c == '_' || c == '~')
		return URI_UNRESERVED;
	if (c != '\0' && strchr("!$&'()*+,;=", c) != NULL)
		return URI_SUBDELIM;
	if (c == ':')
		return URI_COLON;
	if (c == '@')
		return URI_AT;
	if (c == '/')
		return URI_SLASH;
	if (c == '?')
		return URI_QUESTION;
	return 0;
}

/*
 * Does s[from, to) hold only characters of the classes allowed, %XX, and
 * with iri any non-ASCII character?
 */
static bool
uri_chars(const char *s, int from, int to, int allowed, bool iri)
{
	for (int i = from; i < to; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '%')
		{
			if (i + 2 >= to || !isxdigit((unsigned char) s[i + 1]) ||
				!isxdigit((unsigned char) s[i + 2]))
				return false;
			i += 2;
		}
		else if (c >= 0x80 ? !iri : (uri_class(c) & allowed) == 0)
			return false;
	}
	return true;
}

/* Is s[from, to) an IP literal's inside: IPv6 or IPvFuture (v1.x)? */
static bool
valid_ip_literal(const char *s, int from, int to)
{
	int			i = from + 1;

	if (to > from && (s[from] == 'v' || s[from] == 'V'))
	{
		while (i < to && isxdigit((unsigned char) s[i]))
			i++;
		return i > from + 1 && i < to - 1 && s[i] == '.' &&
			uri_chars(s, i + 1, to, URI_UNRESERVED | URI_SUBDELIM | URI_COLON, false);
	}
	return js_valid_ipv6(s + from, to - from);
}

/*
 * Is s[from, to) an authority: [userinfo "@"] host [":" port], the host an
 * IP literal in brackets or a registered name?
 */
static bool
valid_authority(const char *s, int from, int to, bool iri)
{
	const char *at = memchr(s + from, '@', to - from);
	int			host = from;
	int			i;

	if (at != NULL)
	{
		host = at - s + 1;
		if (!uri_chars(s, from, host - 1, URI_UNRESERVED | URI_SUBDELIM | URI_COLON, iri))
			return false;
	}
	if (host < to && s[host] == '[')
	{
		const char *close = memchr(s + host, ']', to - host);

		if (close == NULL || !valid_ip_literal(s, host + 1, close - s))
			return false;
		i = close - s + 1;
	}
	else
	{
		for (i = host; i < to && s[i] != ':'; i++)
			;
		if (!uri_chars(s, host, i, URI_UNRESERVED | URI_SUBDELIM, iri))
			return false;
	}
	if (i == to)
		return true;
	if (s[i] != ':')
		return false;
	for (i++; i < to; i++)
		if (!isdigit((unsigned char) s[i]))
			return false;
	return true;
}

/*
 * Is s (len bytes) a URI (RFC 3986), or with iri an IRI (RFC 3987)?  With
 * reference, a relative reference is allowed too.
 */
bool
js_valid_uri(const char *s, int len, bool iri, bool reference)
{
	int			i = 0,
				end;

	/* scheme: up to a ":" that comes before any "/", "?" or "#" */
	while (i < len && s[i] != ':' && s[i] != '/' && s[i] != '?' && s[i] != '#')
		i++;
	if (i < len && s[i] == ':')
	{
		if (i == 0 || !JS_ASCII_ALPHA((unsigned char) s[0]))
			return false;
		for (int j = 1; j < i; j++)
			if (!JS_ASCII_ALNUM((unsigned char) s[j]) && s[j] != '+' && s[j] != '-' && s[j] != '.')
				return false;
		i++;
	}
	else if (!reference)
		return false;
	else
		i = 0;
	/* authority */
	if (i + 1 < len && s[i] == '/' && s[i + 1] == '/')
	{
		for (end = i + 2; end < len && s[end] != '/' && s[end] != '?' && s[end] != '#'; end++)
			;
		if (!valid_authority(s, i + 2, end, iri))
			return false;
		i = end;
	}
	/* path */
	for (end = i; end < len && s[end] != '?' && s[end] != '#'; end++)
		;
	if (!uri_chars(s, i, end, URI_PCHAR | URI_SLASH, iri))
		return false;
	i = end;
	/* query and fragment */
	if (i < len && s[i] == '?')
	{
		for (end = i + 1; end < len && s[end] != '#'; end++)
			;
		if (!uri_chars(s, i + 1, end, URI_PCHAR | URI_SLASH | URI_QUESTION, iri))
			return false;
		i = end;
	}
	if (i < len && s[i] == '#')
		return uri_chars(s, i + 1, len, URI_PCHAR | URI_SLASH | URI_QUESTION, iri);
	return true;
}

/*
 * Is s[from, to) an RFC 6570 expression's inside: an optional operator,
 * then varspecs (name, with ":" and a length of 1 to 9999 or "*")
 * separated by commas?
 */
static bool
valid_template_expression(const char *s, int from, int to)
{
	int			i = from;

	if (i < to && strchr("+#./;?&", s[i]) != NULL)
		i++;
	for (;;)
	{
		int			start = i;

		/* varname: varchars, single dots between them */
		while (i < to && (JS_ASCII_ALNUM((unsigned char) s[i]) || s[i] == '_' || s[i] == '%' ||
						  (s[i] == '.' && i > start && s[i - 1] != '.')))
		{
			if (s[i] == '%')
			{
				if (i + 2 >= to || !isxdigit((unsigned char) s[i + 1]) ||
					!isxdigit((unsigned char) s[i + 2]))
					return false;
				i += 2;
			}
			i++;
		}
		if (i == start || s[i - 1] == '.')
			return false;
		if (i < to && s[i] == '*')
			i++;
		else if (i < to && s[i] == ':')
		{
			int			digits = 0;

			if (++i >= to || s[i] == '0')
				return false;
			while (i < to && isdigit((unsigned char) s[i]) && digits < 5)
				i++, digits++;
			if (digits == 0 || digits > 4)
				return false;
		}
		if (i == to)
			return true;
		if (s[i] != ',')
			return false;
		i++;
	}
}

/*
 * Is s (len bytes) a URI template (RFC 6570): literals and {expressions},
 * "%" only as %XX?
 */
bool
js_valid_uri_template(const char *s, int len)
{
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '{')
		{
			const char *close = memchr(s + i, '}', len - i);

			if (close == NULL || !valid_template_expression(s, i + 1, close - s))
				return false;
			i = close - s;
		}
		else if (c == '%')
		{
			if (i + 2 >= len || !isxdigit((unsigned char) s[i + 1]) ||
				!isxdigit((unsigned char) s[i + 2]))
				return false;
			i += 2;
		}
		else if (c <= 0x20 || c == 0x7F || (c < 0x80 && strchr("\"<>\\^`|}", c) != NULL))
			return false;
	}
	return true;
}
