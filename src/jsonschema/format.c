/*
 * format.c
 *		The "format" checks of the JSON Schema validator: which function
 *		checks which format, and the formats of dates, times, durations,
 *		UUIDs, JSON Pointers and regular expressions.
 *
 * A format is an annotation unless the caller asks for assertions
 * (ds_schema_validate's assert_formats); the formats not known here always
 * pass.  Dates and times are RFC 3339 as util.c parses them, durations
 * RFC 3339's Appendix A (ISO 8601), JSON Pointers RFC 6901 and relative
 * ones draft-handrews-relative-json-pointer, regular expressions ECMA-262
 * (regex.c).  Host names, IP addresses and e-mail addresses are in
 * format_net.c, URIs, IRIs and URI templates in format_uri.c.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"

#include "jsonschema_int.h"

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

/*
 * Read a run of components (digits and a designator) of a duration at
 * s[*i], the designators in order within units ("YMD" or "HMS"), each
 * after the one before it (no gaps: P1Y2D is not a duration).  Return the
 * number read, or -1 if the run is malformed.
 */
static int
duration_run(const char *s, int len, int *i, const char *units)
{
	int			n = 0;
	int			last = -1;

	while (*i < len && isdigit((unsigned char) s[*i]))
	{
		const char *u;

		while (*i < len && isdigit((unsigned char) s[*i]))
			(*i)++;
		if (*i >= len || (u = strchr(units, s[*i])) == NULL || s[*i] == '\0')
			return -1;
		if (last >= 0 && u - units != last + 1)
			return -1;
		last = u - units;
		(*i)++;
		n++;
	}
	return n;
}

/* Is s an RFC 3339 (Appendix A) duration, P1Y2M3DT4H5M6S or P2W? */
static bool
valid_duration(const char *s, int len)
{
	int			i = 1;
	int			n;

	if (len < 2 || s[0] != 'P')
		return false;
	/* weeks stand alone */
	if (s[len - 1] == 'W')
	{
		for (i = 1; i < len - 1; i++)
			if (!isdigit((unsigned char) s[i]))
				return false;
		return len > 2;
	}
	if ((n = duration_run(s, len, &i, "YMD")) < 0)
		return false;
	if (i < len && s[i] == 'T')
	{
		i++;
		if (duration_run(s, len, &i, "HMS") <= 0)
			return false;
		n++;
	}
	return n > 0 && i == len;
}

/* Is s a UUID in its 8-4-4-4-12 hexadecimal form? */
static bool
valid_uuid(const char *s, int len)
{
	int			i;

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

/*
 * Is s an RFC 6901 JSON Pointer: empty, or "/" tokens in which "~" is
 * only "~0" or "~1"?
 */
static bool
valid_json_pointer(const char *s, int len)
{
	if (len > 0 && s[0] != '/')
		return false;
	for (int i = 0; i < len; i++)
		if (s[i] == '~' && (i + 1 >= len || (s[i + 1] != '0' && s[i + 1] != '1')))
			return false;
	return true;
}

/*
 * Is s a relative JSON Pointer: a non-negative integer without leading
 * zeros, then "#" or a JSON Pointer?
 */
static bool
valid_relative_json_pointer(const char *s, int len)
{
	int			i = 0;

	while (i < len && isdigit((unsigned char) s[i]))
		i++;
	if (i == 0 || (s[0] == '0' && i > 1))
		return false;
	if (i < len && s[i] == '#')
		return i + 1 == len;
	return valid_json_pointer(s + i, len - i);
}

/*
 * Does string s (len bytes in the database encoding) satisfy the format?
 * Unknown formats are annotations only, and always do.  The formats of the profile schemas
 * people write most (date-time, email, uuid) are tested first.
 */
bool
js_check_format(const char *format, const char *s, int len)
{
	/* the checks read UTF-8 (libidn2, PCRE2) */
	if (GetDatabaseEncoding() != PG_UTF8)
	{
		const char *utf8 = pg_server_to_any(s, len, PG_UTF8);

		if (utf8 != s)
		{
			s = utf8;
			len = strlen(utf8);
		}
	}
	switch (format[0])
	{
		case 'd':
			if (strcmp(format, "date-time") == 0)
				return valid_time(s, len, DS_RFC3339_DATE_TIME);
			if (strcmp(format, "date") == 0)
				return ds_parse_rfc3339(s, len, DS_RFC3339_DATE, NULL);
			if (strcmp(format, "duration") == 0)
				return valid_duration(s, len);
			break;
		case 'e':
			if (strcmp(format, "email") == 0)
				return js_valid_email(s, len, false);
			break;
		case 'u':
			if (strcmp(format, "uuid") == 0)
				return valid_uuid(s, len);
			if (strcmp(format, "uri") == 0)
				return js_valid_uri(s, len, false, false);
			if (strcmp(format, "uri-reference") == 0)
				return js_valid_uri(s, len, false, true);
			if (strcmp(format, "uri-template") == 0)
				return js_valid_uri_template(s, len);
			break;
		case 't':
			if (strcmp(format, "time") == 0)
				return valid_time(s, len, DS_RFC3339_TIME);
			break;
		case 'h':
			if (strcmp(format, "hostname") == 0)
				return js_valid_hostname(s, len, false);
			break;
		case 'i':
			if (strcmp(format, "ipv4") == 0)
				return js_valid_ipv4(s, len);
			if (strcmp(format, "ipv6") == 0)
				return js_valid_ipv6(s, len);
			if (strcmp(format, "idn-hostname") == 0)
				return js_valid_hostname(s, len, true);
			if (strcmp(format, "idn-email") == 0)
				return js_valid_email(s, len, true);
			if (strcmp(format, "iri") == 0)
				return js_valid_uri(s, len, true, false);
			if (strcmp(format, "iri-reference") == 0)
				return js_valid_uri(s, len, true, true);
			break;
		case 'j':
			if (strcmp(format, "json-pointer") == 0)
				return valid_json_pointer(s, len);
			break;
		case 'r':
			if (strcmp(format, "regex") == 0)
				return js_regex_is_valid(s, len);
			if (strcmp(format, "relative-json-pointer") == 0)
				return valid_relative_json_pointer(s, len);
			break;
	}
	return true;				/* unknown formats are annotations */
}
