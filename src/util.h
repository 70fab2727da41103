/*
 * util.h
 *		Helpers shared by the apply engine and the JSON Schema validator:
 *		JSON type names, jsonb's key order, scalar equality, RFC 3339
 *		date/time parsing, strings shortened for messages, a jsonb as one
 *		value, SPI plans kept for the backend's life, and result relations
 *		opened for ExecSimpleRelation*.
 *
 * A leaf: it depends on PostgreSQL's headers only, so both sides can use it
 * without knowing about each other.
 */
#ifndef DS_UTIL_H
#define DS_UTIL_H

#include "postgres.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/execnodes.h"
#include "postmaster/bgworker.h"
#include "utils/jsonb.h"

/*
 * JSON types as bits, so that a set of types (a schema's "type") is a mask.
 * DS_JSON_INTEGER is never the type of a value: it is the refinement of
 * "number" that a schema may ask for.
 */
#define DS_JSON_NULL		0x01
#define DS_JSON_BOOLEAN		0x02
#define DS_JSON_OBJECT		0x04
#define DS_JSON_ARRAY		0x08
#define DS_JSON_NUMBER		0x10
#define DS_JSON_STRING		0x20
#define DS_JSON_INTEGER		0x40
#define DS_JSON_NTYPES		7

/*
 * The JSON type of a value as one DS_JSON_* bit (a jbvBinary container is
 * an array or an object), or 0 for the non-JSON jsonb types.
 */
static inline uint32
ds_json_type(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return DS_JSON_NULL;
		case jbvBool:
			return DS_JSON_BOOLEAN;
		case jbvNumeric:
			return DS_JSON_NUMBER;
		case jbvString:
			return DS_JSON_STRING;
		case jbvArray:
			return DS_JSON_ARRAY;
		case jbvObject:
			return DS_JSON_OBJECT;
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ?
				DS_JSON_ARRAY : DS_JSON_OBJECT;
		default:
			return 0;
	}
}

/*
 * jsonb's order of object keys: shorter first, then bytewise.  Expanded
 * objects and binary containers keep their members in this order, so a
 * sorted list of names can be merged with them or binary-searched.
 */
static inline int
ds_jsonb_key_cmp(const char *a, int alen, const char *b, int blen)
{
	if (alen != blen)
		return alen < blen ? -1 : 1;
	/* member names are short: a byte loop beats a call to memcmp */
	if (alen <= 16)
	{
		for (int i = 0; i < alen; i++)
			if (a[i] != b[i])
				return (unsigned char) a[i] < (unsigned char) b[i] ? -1 : 1;
		return 0;
	}
	return memcmp(a, b, alen);
}

/*
 * The parts of an RFC 3339 full-date, full-time or date-time.  offset is
 * in minutes east of UTC; second may be 60 (a leap second).
 */
typedef struct DsRfc3339
{
	int			year;
	int			month;
	int			day;
	int			hour;
	int			minute;
	int			second;
	int			offset;
} DsRfc3339;

typedef enum DsRfc3339Part
{
	DS_RFC3339_DATE,			/* YYYY-MM-DD */
	DS_RFC3339_TIME,			/* HH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
	DS_RFC3339_DATE_TIME		/* date "T" time */
} DsRfc3339Part;

extern const char *ds_json_type_name(uint32 type);
extern const char *ds_json_kind(JsonbValue *v);
extern bool ds_scalar_equals(JsonbValue *a, JsonbValue *b);
extern bool ds_parse_rfc3339(const char *s, int len, DsRfc3339Part part,
							 DsRfc3339 *tm);
extern char *ds_shorten(const char *s, int len);

extern void ds_jsonb_root_value(Jsonb *jb, JsonbValue *v);
extern void ds_push_jsonb_string(JsonbParseState **state, JsonbIteratorToken tok,
								 const char *s, int len);

/*
 * The value of a container's entry e, whose data is at base + start up to
 * base + end, into out, as jsonb_util.c's fillJsonbValue gives it (and so
 * getKeyJsonValueFromContainer and JsonbIteratorNext): strings in place,
 * numerics and containers at their aligned offsets.  For walking a
 * container's entries in one pass (JBE_ADVANCE_OFFSET gives end from
 * start); the engine's readers and the JSON Schema validator's share it.
 */
static inline void
ds_jsonb_entry_value(JEntry e, const char *base, uint32 start, uint32 end, JsonbValue *out)
{
	switch (e & JENTRY_TYPEMASK)
	{
		case JENTRY_ISSTRING:
			out->type = jbvString;
			out->val.string.val = (char *) base + start;
			out->val.string.len = end - start;
			break;
		case JENTRY_ISNUMERIC:
			out->type = jbvNumeric;
			out->val.numeric = (Numeric) (base + INTALIGN(start));
			break;
		case JENTRY_ISBOOL_TRUE:
		case JENTRY_ISBOOL_FALSE:
			out->type = jbvBool;
			out->val.boolean = JBE_ISBOOL_TRUE(e);
			break;
		case JENTRY_ISNULL:
			out->type = jbvNull;
			break;
		default:
			Assert(JBE_ISCONTAINER(e));
			out->type = jbvBinary;
			out->val.binary.data = (JsonbContainer *) (base + INTALIGN(start));
			out->val.binary.len = end - INTALIGN(start);
			break;
	}
}

/* Pads buf with zero bytes to a 4-byte boundary, as jsonb aligns data; returns the padding. */
static inline int
ds_jsonb_pad(StringInfo buf)
{
	int			pad = INTALIGN(buf->len) - buf->len;

	if (pad > 0)
	{
		enlargeStringInfo(buf, pad);
		memset(buf->data + buf->len, 0, pad);
		buf->len += pad;
	}
	return pad;
}

/*
 * A jsonb object written straight in jsonb's binary form, as
 * convertJsonbObject writes it, from members given in jsonb's key order
 * (shorter keys first, then bytewise; keys unique): ds_jsonb_object_begin,
 * its n keys, its n values, ds_jsonb_object_end.  A container value is
 * copied as it is stored, not unpacked into JsonbValues and converted
 * back (what pushJsonbValue and JsonbValueToJsonb do), so the memory it
 * takes is about the result's size.
 */
typedef struct DsJsonbObject
{
	StringInfoData buf;
	int			n;				/* members */
	int			i;				/* entries written */
	int			jentries;		/* where the JEntries are in buf */
	uint32		totallen;		/* the data's length so far */
} DsJsonbObject;

extern void ds_jsonb_object_begin(DsJsonbObject *o, int n, Size size);
extern void ds_jsonb_object_key(DsJsonbObject *o, const char *key, int len);
extern void ds_jsonb_object_value(DsJsonbObject *o, const JsonbValue *v);
extern Jsonb *ds_jsonb_object_end(DsJsonbObject *o);

/* SPI plans prepared once per backend */
extern SPIPlanPtr ds_keep_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes);

/* the executor */
extern ResultRelInfo *ds_result_rel_open(EState *estate, Relation rel, Index rti);

extern int	ds_cmp_uint32(const void *a, const void *b);
extern void ds_sort_int64(int64 *a, size_t n);
extern void ds_bgworker_fill(BackgroundWorker *bgw, const char *function, const char *name,
							 int flags, BgWorkerStartTime start, int restart);

#endif							/* DS_UTIL_H */
