/*
 * format.c
 *		The "format" checks of the JSON Schema validator: date-time, date,
 *		time, uuid and email.
 *
 * A format is an annotation unless the caller asks for assertions
 * (ds_schema_validate's assert_formats); the formats not known here always
 * pass.  Dates and times are RFC 3339 as util.c parses them.
 */
#include "postgres.h"

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
 * Is s the inside of an e-mail domain literal: a dotted-quad IPv4 address
 * or "IPv6:" and hexadecimal digits, colons and dots?
 */
static bool
valid_ip_literal(const char *s, int len)
{
	int			i,
				parts = 0,
				v = -1;

	if (len > 5 && strncmp(s, "IPv6:", 5) == 0)
	{
		for (i = 5; i < len; i++)
			if (!isxdigit((unsigned char) s[i]) && s[i] != ':' && s[i] != '.')
				return false;
		return true;
	}
	for (i = 0; i <= len; i++)
	{
		if (i == len || s[i] == '.')
		{
			if (v < 0 || v > 255)
				return false;
			parts++;
			v = -1;
		}
		else if (isdigit((unsigned char) s[i]))
			v = (v < 0 ? 0 : v * 10) + (s[i] - '0');
		else
			return false;
	}
	return parts == 4;
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
 * Is s an e-mail address (RFC 5321 Mailbox, roughly): a local part without
 * stray dots (or quoted), "@", and a host name or a bracketed IP literal?
 */
static bool
valid_email(const char *s, int len)
{
	int			i;
	const char *at = NULL;

	for (i = len - 1; i >= 0; i--)
		if (s[i] == '@')
		{
			at = s + i;
			break;
		}
	if (at == NULL || at == s || at == s + len - 1)
		return false;
	/* local part: no leading/trailing/double dots (unless quoted) */
	if (s[0] != '"')
	{
		if (s[0] == '.' || at[-1] == '.')
			return false;
		for (i = 0; s + i < at; i++)
			if ((s[i] == '.' && s[i + 1] == '.') || s[i] == ' ' || s[i] == '@')
				return false;
	}
	/* domain: hostname labels or an IP literal */
	if (at[1] == '[')
		return s[len - 1] == ']' &&
			valid_ip_literal(at + 2, (s + len - 1) - (at + 2));
	for (i = at - s + 1; i < len; i++)
		if (!(isalnum((unsigned char) s[i]) || s[i] == '-' || s[i] == '.' ||
			  (unsigned char) s[i] >= 0x80))
			return false;
	return at[1] != '.' && at[1] != '-' && s[len - 1] != '.';
}

/*
 * Does string s (len bytes) satisfy the format?  Unknown formats are
 * annotations only, and always do.
 */
bool
js_check_format(const char *format, const char *s, int len)
{
	if (strcmp(format, "date-time") == 0)
		return valid_time(s, len, DS_RFC3339_DATE_TIME);
	if (strcmp(format, "date") == 0)
		return ds_parse_rfc3339(s, len, DS_RFC3339_DATE, NULL);
	if (strcmp(format, "time") == 0)
		return valid_time(s, len, DS_RFC3339_TIME);
	if (strcmp(format, "uuid") == 0)
		return valid_uuid(s, len);
	if (strcmp(format, "email") == 0)
		return valid_email(s, len);
	return true;				/* unknown formats are annotations */
}
