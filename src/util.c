/*
 * util.c
 *		Helpers shared by the apply engine and the JSON Schema validator
 *		(see util.h).
 *
 * A leaf: nothing here depends on the extension's other modules.  All but
 * ds_keep_plan are pure functions of their arguments.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "port/pg_bitutils.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "util.h"

/* the names of the DS_JSON_* types, by bit position: bare and in a phrase */
static const char *const json_type_names[DS_JSON_NTYPES][2] = {
	{"null", "null"},
	{"boolean", "a boolean"},
	{"object", "an object"},
	{"array", "an array"},
	{"number", "a number"},
	{"string", "a string"},
	{"integer", "an integer"},
};

/*
 * The name of one DS_JSON_* type as JSON Schema spells it ("string").
 * type must be exactly one of the bits.
 */
const char *
ds_json_type_name(uint32 type)
{
	Assert(type != 0 && (type & (type - 1)) == 0);
	return json_type_names[pg_rightmost_one_pos32(type)][0];
}

/*
 * The JSON type of a value as a noun phrase for messages ("a string", "an
 * object", "null"); "unknown" for the non-JSON jsonb types.
 */
const char *
ds_json_kind(JsonbValue *v)
{
	uint32		type = ds_json_type(v);

	if (type == 0)
		return "unknown";
	return json_type_names[pg_rightmost_one_pos32(type)][1];
}

/*
 * Are two scalars (or two binary containers) the same JSON, text for text?
 * Numbers are equal only when they print the same (1.0 is not 1): the
 * engine asks whether a value survives a round trip unchanged.  Callers
 * that want numbers compared by value compare them before calling this.
 */
bool
ds_scalar_equals(JsonbValue *a, JsonbValue *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvNull:
			return true;
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		case jbvNumeric:
			return strcmp(DatumGetCString(DirectFunctionCall1(numeric_out,
															  NumericGetDatum(a->val.numeric))),
						  DatumGetCString(DirectFunctionCall1(numeric_out,
															  NumericGetDatum(b->val.numeric)))) == 0;
		case jbvBinary:
			return compareJsonbContainers(a->val.binary.data, b->val.binary.data) == 0;
		default:
			return false;
	}
}

/* The n ASCII digits at s as a number, or -1 if one is not a digit. */
static int
rfc3339_digits(const char *s, int n)
{
	int			r = 0;

	for (int i = 0; i < n; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return -1;
		r = r * 10 + (s[i] - '0');
	}
	return r;
}

/*
 * If s is exactly a full-date (YYYY-MM-DD) that exists in the proleptic
 * Gregorian calendar, store it in tm and return true.
 */
static bool
rfc3339_date(const char *s, int len, DsRfc3339 *tm)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int			y,
				mo,
				d;

	if (len != 10 || s[4] != '-' || s[7] != '-')
		return false;
	y = rfc3339_digits(s, 4);
	mo = rfc3339_digits(s + 5, 2);
	d = rfc3339_digits(s + 8, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
		return false;
	if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	tm->year = y;
	tm->month = mo;
	tm->day = d;
	return true;
}

/*
 * If s is exactly a full-time (HH:MM:SS, optional fraction, then "Z" or a
 * numeric offset), store it in tm and return true.  Second 60 is accepted
 * at any minute: whether a leap second can fall there is the caller's
 * question.
 */
static bool
rfc3339_time(const char *s, int len, DsRfc3339 *tm)
{
	int			i = 8;

	if (len < 9 || s[2] != ':' || s[5] != ':')
		return false;
	tm->hour = rfc3339_digits(s, 2);
	tm->minute = rfc3339_digits(s + 3, 2);
	tm->second = rfc3339_digits(s + 6, 2);
	if (tm->hour < 0 || tm->hour > 23 || tm->minute < 0 || tm->minute > 59 ||
		tm->second < 0 || tm->second > 60)
		return false;
	if (s[i] == '.')
	{
		int			start = ++i;

		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start)
			return false;
	}
	if (i >= len)
		return false;
	if (s[i] == 'Z' || s[i] == 'z')
	{
		tm->offset = 0;
		return i + 1 == len;
	}
	if ((s[i] == '+' || s[i] == '-') && len - i == 6 && s[i + 3] == ':')
	{
		int			oh = rfc3339_digits(s + i + 1, 2);
		int			om = rfc3339_digits(s + i + 4, 2);

		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return false;
		tm->offset = (s[i] == '+' ? 1 : -1) * (oh * 60 + om);
		return true;
	}
	return false;
}

/*
 * If s is exactly the requested part of RFC 3339 (section 5.6), store its
 * fields in *tm (when tm is not NULL) and return true.  "T"/"t" and
 * "Z"/"z" are accepted as the RFC allows; dates are calendar-checked.
 */
bool
ds_parse_rfc3339(const char *s, int len, DsRfc3339Part part, DsRfc3339 *tm)
{
	DsRfc3339	scratch;

	if (tm == NULL)
		tm = &scratch;
	switch (part)
	{
		case DS_RFC3339_DATE:
			return rfc3339_date(s, len, tm);
		case DS_RFC3339_TIME:
			return rfc3339_time(s, len, tm);
		case DS_RFC3339_DATE_TIME:
			return len > 11 && (s[10] == 'T' || s[10] == 't') &&
				rfc3339_date(s, 10, tm) && rfc3339_time(s + 11, len - 11, tm);
	}
	return false;
}

/*
 * A printable copy of a string for a message, cut (at a character
 * boundary) to 61 bytes and "..." when longer than 64; "?" for NULL.
 */
char *
ds_shorten(const char *s, int len)
{
	if (s == NULL)
		return pstrdup("?");
	if (len > 64)
	{
		int			cut = pg_mbcliplen(s, len, 61);

		return psprintf("%.*s...", cut, s);
	}
	return pnstrdup(s, len);
}

/*
 * Return *plan, preparing it from sql (with nargs parameters of argtypes)
 * the first time and keeping it for the backend's life (SPI_keepplan).
 * The caller must be connected to SPI; a statement that does not prepare
 * is an internal error.
 */
SPIPlanPtr
ds_keep_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	return *plan;
}

/*
 * Point v at the whole of jb as one value: the scalar itself for a scalar
 * document, otherwise its root container (jbvBinary), as the validator and
 * the event parser take values.
 */
void
ds_jsonb_root_value(Jsonb *jb, JsonbValue *v)
{
	if (JB_ROOT_IS_SCALAR(jb))
		JsonbExtractScalar(&jb->root, v);
	else
	{
		v->type = jbvBinary;
		v->val.binary.data = &jb->root;
		v->val.binary.len = VARSIZE(jb) - VARHDRSZ;
	}
}

/*
 * Open rel (at range table index rti of estate) as a result relation that
 * ExecSimpleRelationInsert/Update/Delete can write: a ResultRelInfo with
 * its indexes open, listed in estate->es_opened_result_relations so that
 * ExecCloseResultRelations closes them and AFTER triggers find it.
 */
ResultRelInfo *
ds_result_rel_open(EState *estate, Relation rel, Index rti)
{
	ResultRelInfo *rri = makeNode(ResultRelInfo);

	InitResultRelInfo(rri, rel, rti, NULL, 0);
	ExecOpenIndices(rri, false);
	estate->es_opened_result_relations =
		lappend(estate->es_opened_result_relations, rri);
	return rri;
}

/* qsort comparator of uint32s, in increasing order. */
int
ds_cmp_uint32(const void *a, const void *b)
{
	uint32		x = *(const uint32 *) a;
	uint32		y = *(const uint32 *) b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/*
 * ds_sort_int64(int64 *a, size_t n): sorts n int64s in increasing order,
 * the comparison inlined (a batch's txid hashes: qsort with a comparator
 * function was 2% of a 100k-txid batch).
 */
#define ST_SORT ds_sort_int64
#define ST_ELEMENT_TYPE int64
#define ST_COMPARE(a, b) (*(a) < *(b) ? -1 : (*(a) > *(b) ? 1 : 0))
#define ST_SCOPE
#define ST_DEFINE
#include "lib/sort_template.h"

/*
 * Fills bgw for one of the extension's background workers: its function
 * (by name, in this library), the name shown as its process title and
 * backend type, flags, start time and restart delay.
 */
void
ds_bgworker_fill(BackgroundWorker *bgw, const char *function, const char *name, int flags,
				 BgWorkerStartTime start, int restart)
{
	memset(bgw, 0, sizeof(BackgroundWorker));
	bgw->bgw_flags = flags;
	bgw->bgw_start_time = start;
	bgw->bgw_restart_time = restart;
	strlcpy(bgw->bgw_library_name, "durable_state", BGW_MAXLEN);
	strlcpy(bgw->bgw_function_name, function, BGW_MAXLEN);
	strlcpy(bgw->bgw_name, name, BGW_MAXLEN);
	strlcpy(bgw->bgw_type, name, BGW_MAXLEN);
}

/*
 * Begins a jsonb object of n members written straight in jsonb's binary
 * form (DsJsonbObject), with room for size bytes (0: grown as needed).
 */
void
ds_jsonb_object_begin(DsJsonbObject *o, int n, Size size)
{
	uint32		header = JB_FOBJECT | (uint32) n;

	initStringInfo(&o->buf);
	if (size > 0)
		enlargeStringInfo(&o->buf, (int) size);
	appendStringInfoSpaces(&o->buf, VARHDRSZ);
	appendBinaryStringInfo(&o->buf, (char *) &header, sizeof(header));
	o->jentries = o->buf.len;
	appendStringInfoSpaces(&o->buf, 2 * n * sizeof(JEntry));
	o->n = n;
	o->i = 0;
	o->totallen = 0;
}

/*
 * Sets the JEntry of the entry just written (its data from start to the
 * end of the buffer, type bits meta): every JB_OFFSET_STRIDE'th entry has
 * its end offset, the others their length.  Raises
 * ERRCODE_PROGRAM_LIMIT_EXCEEDED past jsonb's size limit.
 */
static void
object_entry(DsJsonbObject *o, int start, uint32 meta)
{
	uint32		len = o->buf.len - start;

	o->totallen += len;
	if (o->totallen > JENTRY_OFFLENMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("total size of jsonb object elements exceeds the maximum of %d bytes",
						JENTRY_OFFLENMASK)));
	meta |= (o->i % JB_OFFSET_STRIDE == 0) ? (o->totallen | JENTRY_HAS_OFF) : len;
	memcpy(o->buf.data + o->jentries + o->i * sizeof(JEntry), &meta, sizeof(JEntry));
	o->i++;
}

/* Writes the next key (len bytes) of o. */
void
ds_jsonb_object_key(DsJsonbObject *o, const char *key, int len)
{
	int			start = o->buf.len;

	Assert(o->i < o->n);
	appendBinaryStringInfo(&o->buf, key, len);
	object_entry(o, start, JENTRY_ISSTRING);
}

/*
 * Writes the next value of o, after all its keys: a scalar as its own
 * data, a container (jbvBinary) copied as it is stored, numerics and
 * containers int-aligned, as convertJsonbScalar and convertJsonbValue
 * write them.
 */
void
ds_jsonb_object_value(DsJsonbObject *o, const JsonbValue *v)
{
	int			start = o->buf.len;
	uint32		meta;

	Assert(o->i >= o->n && o->i < 2 * o->n);
	switch (v->type)
	{
		case jbvNull:
			meta = JENTRY_ISNULL;
			break;
		case jbvBool:
			meta = v->val.boolean ? JENTRY_ISBOOL_TRUE : JENTRY_ISBOOL_FALSE;
			break;
		case jbvString:
			appendBinaryStringInfo(&o->buf, v->val.string.val, v->val.string.len);
			meta = JENTRY_ISSTRING;
			break;
		case jbvNumeric:
			(void) ds_jsonb_pad(&o->buf);
			appendBinaryStringInfo(&o->buf, (char *) v->val.numeric,
								   VARSIZE_ANY(v->val.numeric));
			meta = JENTRY_ISNUMERIC;
			break;
		case jbvBinary:
			(void) ds_jsonb_pad(&o->buf);
			appendBinaryStringInfo(&o->buf, (char *) v->val.binary.data, v->val.binary.len);
			meta = JENTRY_ISCONTAINER;
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d in an object", (int) v->type);
			meta = 0;			/* keep the compiler quiet */
	}
	object_entry(o, start, meta);
}

/* The finished object, every key and value written. */
Jsonb *
ds_jsonb_object_end(DsJsonbObject *o)
{
	Assert(o->i == 2 * o->n);
	SET_VARSIZE(o->buf.data, o->buf.len);
	return (Jsonb *) o->buf.data;
}

/* Pushes string s (len bytes, not copied) onto state as a key or value (tok). */
void
ds_push_jsonb_string(JsonbParseState **state, JsonbIteratorToken tok, const char *s, int len)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = len;
	(void) pushJsonbValue(state, tok, &v);
}
