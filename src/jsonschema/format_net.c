/*
 * format_net.c
 *		The network formats of the JSON Schema validator: ipv4, ipv6,
 *		hostname and idn-hostname, email and idn-email.
 *
 * Host names are RFC 1123 labels; an internationalized one (a U-label, or
 * an A-label "xn--..." in either format) must be valid IDNA2008 (RFC 5891
 * to 5893).  libidn2 checks a label's code points, NFC, hyphens, leading
 * combining marks, CONTEXTJ and CONTEXTO rules (idn2_register_u8) and the
 * Bidi rule within the label (idn2_lookup_u8); what it leaves out is done
 * here: A-labels that are not canonical or decode to ASCII, a right-to-left
 * label mixing European and Arabic-Indic digits, and RFC 5893's rule that
 * in a domain name holding any right-to-left label every label satisfies
 * the Bidi rule (checked with Unicode's Bidi_Class through PCRE2).  The
 * ASCII path (every host name of a plain e-mail address) calls neither.
 *
 * IP addresses are RFC 3986's dotted-decimal (no leading zeros) and RFC
 * 4291's text form; e-mail addresses RFC 5321's Mailbox (local part as
 * dot-atom or quoted string, domain as host name or address literal), and
 * RFC 6531's with UTF-8 for idn-email.
 */
#include "postgres.h"

#include <idn2.h>

#include "jsonschema_int.h"

/* the Bidi rule's patterns (RFC 5893 section 2), compiled once per backend */
#define BC(x) "\\p{bc=" x "}"
#define BIDI_RTL_CHAR "[" BC("R") BC("AL") BC("AN") "]"
#define BIDI_RTL_LABEL "^[" BC("R") BC("AL") "](?:[" BC("R") BC("AL") BC("AN") \
	BC("EN") BC("ES") BC("CS") BC("ET") BC("ON") BC("BN") BC("NSM") "]*[" \
	BC("R") BC("AL") BC("EN") BC("AN") "])?" BC("NSM") "*$"
#define BIDI_LTR_LABEL "^" BC("L") "(?:[" BC("L") BC("EN") BC("ES") BC("CS") \
	BC("ET") BC("ON") BC("BN") BC("NSM") "]*[" BC("L") BC("EN") "])?" BC("NSM") "*$"

enum
{
	BIDI_RTL_CHAR_RE,
	BIDI_RTL_LABEL_RE,
	BIDI_LTR_LABEL_RE,
	BIDI_EN_RE,
	BIDI_AN_RE,
	BIDI_NRE
};

static pcre2_code *bidi_re[BIDI_NRE];
static pcre2_match_data *bidi_md = NULL;

/* Does bidi pattern which match UTF-8 string s? */
static bool
bidi_match(int which, const char *s)
{
	if (bidi_md == NULL)
	{
		static const char *const src[BIDI_NRE] = {
			BIDI_RTL_CHAR, BIDI_RTL_LABEL, BIDI_LTR_LABEL, BC("EN"), BC("AN")
		};

		for (int i = 0; i < BIDI_NRE; i++)
		{
			int			ecode;
			PCRE2_SIZE	eoff;

			if (bidi_re[i] == NULL &&
				(bidi_re[i] = pcre2_compile((PCRE2_SPTR) src[i], PCRE2_ZERO_TERMINATED,
											PCRE2_UTF, &ecode, &eoff, NULL)) == NULL)
				elog(ERROR, "could not compile the Bidi rule's pattern %d", i);
		}
		if ((bidi_md = pcre2_match_data_create(1, NULL)) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
	}
	return pcre2_match(bidi_re[which], (PCRE2_SPTR) s, PCRE2_ZERO_TERMINATED, 0, 0,
					   bidi_md, NULL) >= 0;
}

/*
 * Is s (len bytes) an IPv4 address in dotted-decimal form: four decimal
 * numbers 0-255 without leading zeros?
 */
bool
js_valid_ipv4(const char *s, int len)
{
	int			parts = 0,
				digits = 0,
				v = 0;

	for (int i = 0; i <= len; i++)
	{
		if (i == len || s[i] == '.')
		{
			if (digits == 0 || v > 255 || (digits > 1 && s[i - digits] == '0'))
				return false;
			parts++;
			digits = v = 0;
		}
		else if (s[i] >= '0' && s[i] <= '9' && digits < 3)
		{
			v = v * 10 + (s[i] - '0');
			digits++;
		}
		else
			return false;
	}
	return parts == 4;
}

/*
 * Is s (len bytes) an IPv6 address in RFC 4291's text form: eight groups
 * of 1-4 hex digits, "::" once for a run of zero groups, the last two
 * groups perhaps an IPv4 address?
 */
bool
js_valid_ipv6(const char *s, int len)
{
	int			groups = 0;
	bool		gap = false;
	int			i = 0;

	if (len >= 2 && s[0] == ':' && s[1] == ':')
	{
		gap = true;
		i = 2;
	}
	else if (len >= 1 && s[0] == ':')
		return false;
	while (i < len)
	{
		int			start = i;

		while (i < len && isxdigit((unsigned char) s[i]) && i - start < 5)
			i++;
		if (i < len && s[i] == '.')
		{
			/* an embedded IPv4 address ends the address */
			return js_valid_ipv4(s + start, len - start) &&
				(gap ? groups <= 5 : groups == 6);
		}
		if (i == start || i - start > 4)
			return false;
		groups++;
		if (i == len)
			break;
		if (s[i] != ':' || i + 1 >= len)
			return false;
		i++;
		if (s[i] == ':')
		{
			if (gap)
				return false;
			gap = true;
			i++;
		}
	}
	return gap ? groups <= 7 : groups == 8;
}

/*
 * Validate U-label ulabel (NUL-terminated UTF-8) with libidn2: the
 * registration rules (code points, CONTEXTJ, CONTEXTO) and the lookup
 * ones (Bidi within the label).  Return its A-label length, or -1 if it
 * is invalid; with alabel, also return its A-label (malloc'd, idn2_free).
 */
static int
check_ulabel(const char *ulabel, char **alabel)
{
	uint8_t    *out = NULL;
	int			n;

	if (idn2_register_u8((const uint8_t *) ulabel, NULL, &out, IDN2_NFC_INPUT) != IDN2_OK)
		return -1;
	idn2_free(out);
	out = NULL;
	if (idn2_lookup_u8((const uint8_t *) ulabel, &out, IDN2_NFC_INPUT) != IDN2_OK)
		return -1;
	n = strlen((char *) out);
	/* a right-to-left label has European or Arabic-Indic digits, not both */
	if (bidi_match(BIDI_RTL_CHAR_RE, ulabel) && bidi_match(BIDI_EN_RE, ulabel) &&
		bidi_match(BIDI_AN_RE, ulabel))
		n = -1;
	if (alabel && n >= 0)
		*alabel = (char *) out;
	else
		idn2_free(out);
	return n;
}

/*
 * Check the A-label label (NUL-terminated, "xn--" and LDH): its Punycode
 * decodes to a valid U-label that is not all ASCII and encodes back to the
 * same A-label.  Return the U-label (palloc'd) or NULL.
 */
static char *
check_alabel(const char *label)
{
	char	   *u = NULL;
	char	   *back = NULL;
	char	   *result = NULL;

	if (idn2_to_unicode_8z8z(label, &u, 0) != IDN2_OK)
		return NULL;
	for (const char *p = u; *p; p++)
		if ((unsigned char) *p >= 0x80)
		{
			if (check_ulabel(u, &back) >= 0 && pg_strcasecmp(back, label) == 0)
				result = pstrdup(u);
			break;
		}
	idn2_free(back);
	idn2_free(u);
	return result;
}

/*
 * Is the ASCII label s (n bytes) letters, digits and hyphens, 1 to 63 of
 * them, not starting or ending with a hyphen?
 */
static bool
valid_ldh_label(const char *s, int n)
{
	if (n < 1 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (int i = 0; i < n; i++)
		if (!JS_ASCII_ALNUM((unsigned char) s[i]) && s[i] != '-')
			return false;
	return true;
}

/*
 * The length of the label separator at s (n bytes left): "." always, and
 * for an IDN U+3002, U+FF0E and U+FF61 (RFC 3490 section 3.1); 0 if none.
 */
static int
label_separator(const char *s, int n, bool idn)
{
	if (s[0] == '.')
		return 1;
	if (idn && n >= 3 && ((memcmp(s, "\xE3\x80\x82", 3) == 0) ||
						  memcmp(s, "\xEF\xBC\x8E", 3) == 0 ||
						  memcmp(s, "\xEF\xBD\xA1", 3) == 0))
		return 3;
	return 0;
}

/*
 * Check one label s (n bytes): its ASCII length (its A-label's for a
 * U-label), or -1 if invalid.  *ulabel is set to its Unicode form when it
 * is internationalized (NULL otherwise).
 */
static int
check_label(const char *s, int n, bool idn, char **ulabel)
{
	bool		ascii = true;
	char	   *label;
	int			alen;

	*ulabel = NULL;
	for (int i = 0; i < n; i++)
		if ((unsigned char) s[i] >= 0x80)
			ascii = false;
	if (ascii)
	{
		if (!valid_ldh_label(s, n))
			return -1;
		if (n < 4 || pg_strncasecmp(s, "xn--", 4) != 0)
			return n;
		/* an A-label */
		*ulabel = check_alabel(pnstrdup(s, n));
		return *ulabel ? n : -1;
	}
	if (!idn || n == 0)
		return -1;
	label = pnstrdup(s, n);
	if ((alen = check_ulabel(label, NULL)) < 0 || alen > 63)
		return -1;
	*ulabel = label;
	return alen;
}

/*
 * Split s (len bytes) into labels and check each: call check_label on
 * every one, and with bidi also the Bidi rule (RFC 5893) on each label's
 * Unicode form.  Return false at the first invalid label; *rtl says
 * whether a label holds right-to-left characters, *total is the name's
 * length in ASCII form.
 */
static bool
check_labels(const char *s, int len, bool idn, bool bidi, bool *rtl, int *total)
{
	int			start = 0;

	*rtl = false;
	*total = 0;
	for (int i = 0; i <= len;)
	{
		int			sep = (i < len) ? label_separator(s + i, len - i, idn) : 0;
		int			alen;
		char	   *u;

		if (i < len && sep == 0)
		{
			i++;
			continue;
		}
		/* a label s[start, i) ends here (empty: a leading or double dot) */
		if ((alen = check_label(s + start, i - start, idn, &u)) < 0)
			return false;
		*total += alen + (i < len ? 1 : 0);
		if (u != NULL && bidi_match(BIDI_RTL_CHAR_RE, u))
			*rtl = true;
		if (bidi)
		{
			if (u == NULL)
				u = pnstrdup(s + start, i - start);
			if (!(bidi_match(BIDI_RTL_CHAR_RE, u) ? bidi_match(BIDI_RTL_LABEL_RE, u)
				  : bidi_match(BIDI_LTR_LABEL_RE, u)))
				return false;
		}
		if (i == len)
			break;
		i += sep;
		start = i;
		if (i == len)
			return false;		/* a final dot */
	}
	return true;
}

/*
 * Is s (len bytes) a host name (RFC 1123), or with idn an internationalized
 * one (IDNA2008)?  Labels are 1 to 63 octets, the name at most 253 in its
 * ASCII form.  A name with a right-to-left label is a Bidi domain name:
 * its labels are checked again for the Bidi rule (a rare second pass, so
 * that an ASCII name allocates nothing).
 */
bool
js_valid_hostname(const char *s, int len, bool idn)
{
	bool		rtl;
	int			total;

	if (len == 0 || len > 1024)
		return false;
	if (!check_labels(s, len, idn, false, &rtl, &total) || total > 253)
		return false;
	return !rtl || check_labels(s, len, idn, true, &rtl, &total);
}

/*
 * Is the e-mail local part s (n bytes) a dot-atom or a quoted string?
 * With idn, UTF-8 is allowed in both (RFC 6531).
 */
static bool
valid_local_part(const char *s, int n, bool idn)
{
	if (n == 0 || n > 64 * 4)
		return false;
	if (s[0] == '"')
	{
		if (n < 2 || s[n - 1] != '"')
			return false;
		for (int i = 1; i < n - 1; i++)
		{
			unsigned char c = (unsigned char) s[i];

			if (c == '\\' && i + 1 < n - 1 && (unsigned char) s[i + 1] >= 32)
				i++;
			else if (c == '"' || c == '\\' || (c < 32) || (c >= 0x80 && !idn) || c == 127)
				return false;
		}
		return true;
	}
	if (s[0] == '.' || s[n - 1] == '.')
		return false;
	for (int i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '.' ? s[i + 1] == '.' :
			!(JS_ASCII_ALNUM(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL ||
			  (c >= 0x80 && idn)))
			return false;
	}
	return true;
}

/*
 * Is s (len bytes) an e-mail address: local part, "@", and a host name or
 * an address literal ([192.0.2.1], [IPv6:...])?  With idn, UTF-8 in both
 * parts (idn-email).
 */
bool
js_valid_email(const char *s, int len, bool idn)
{
	int			at = -1;

	/* the local part ends at the first "@" outside quotes */
	if (len > 0 && s[0] == '"')
	{
		for (int i = 1; i < len; i++)
		{
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
			{
				at = i + 1;
				break;
			}
		}
		if (at < 0 || at >= len || s[at] != '@')
			return false;
	}
	else
	{
		const char *p = memchr(s, '@', len);

		at = p ? p - s : -1;
	}
	if (at <= 0 || at == len - 1 || !valid_local_part(s, at, idn))
		return false;
	s += at + 1;
	len -= at + 1;
	if (s[0] == '[')
	{
		if (s[len - 1] != ']')
			return false;
		if (len > 7 && strncmp(s + 1, "IPv6:", 5) == 0)
			return js_valid_ipv6(s + 6, len - 7);
		return js_valid_ipv4(s + 1, len - 2);
	}
	return js_valid_hostname(s, len, idn);
}
