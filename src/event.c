/*
 * event.c
 *		Parsing and validation of Durable Streams State Protocol events.
 *
 * An event is validated completely before anything is applied: the shape
 * of SPEC section 1 (the protocol's JSON Schema), with the error naming the
 * rule that was broken.  The caller adds the event's index, type and key to
 * every message (see apply.c), so messages here name only the rule.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "durable_state.h"
#include "jsontext.h"

/* durable_state.max_event_bytes: the largest event state.apply accepts */
int			ds_max_event_bytes = 16 * 1024 * 1024;

/* Defines durable_state.max_event_bytes; at load. */
void
ds_event_init(void)
{
	DefineCustomIntVariable("durable_state.max_event_bytes",
							"Largest event, in bytes, that state.apply accepts.",
							NULL,
							&ds_max_event_bytes,
							16 * 1024 * 1024, 64, MaxAllocSize / 4,
							PGC_USERSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
}

/*
 * An object of the event (the event or its headers) and the values of
 * the members of it the parser looks at, found in one pass over its keys
 * (scan_object) instead of a binary search for each.
 */
typedef struct EventObject
{
	JsonbContainer *c;
	bool		found[DS_EV_MAX_NAMES];
	JsonbValue	v[DS_EV_MAX_NAMES];
} EventObject;

/*
 * Fills o with object container c and the values of its members the
 * parser looks at (headers: c is the headers object), in one pass over
 * its entries, as getKeyJsonValueFromContainer would give each.
 */
static void
scan_object(EventObject *o, JsonbContainer *c, bool headers)
{
	int			n = JsonContainerSize(c);
	char	   *base = (char *) &c->children[n * 2];
	int			at[DS_EV_MAX_NAMES];
	int			last = -1;		/* the last member to fill */
	uint32		end = 0;		/* where the data of the entry before ends */

	o->c = c;
	for (int k = 0; k < DS_EV_MAX_NAMES; k++)
	{
		o->found[k] = false;
		at[k] = -1;
	}
	for (int j = 0; j < n * 2; j++)
	{
		JEntry		e = c->children[j];
		uint32		start = end;
		int			name;

		JBE_ADVANCE_OFFSET(end, e);
		if (j < n)
		{
			name = ds_event_name(base + start, end - start, headers);
			if (name >= 0)
			{
				at[name] = j;
				last = j;
			}
			continue;
		}
		if (j - n > last)
			break;
		for (name = 0; name < DS_EV_MAX_NAMES; name++)
			if (at[name] == j - n)
				break;
		if (name == DS_EV_MAX_NAMES)
			continue;
		o->found[name] = true;
		ds_jsonb_entry_value(e, base, start, end, &o->v[name]);
	}
}

/*
 * Member name of object obj (scanned by scan_object): if present, fills
 * *out and returns out; returns NULL otherwise.
 */
static inline JsonbValue *
member(const EventObject *obj, int name, JsonbValue *out)
{
	if (!obj->found[name])
		return NULL;
	*out = obj->v[name];
	return out;
}

/* The operation named s (len bytes), or DS_OP_NONE if none is. */
static inline DsOperation
operation_named(const char *s, int len)
{
	if (len != 6)
		return DS_OP_NONE;
	if (memcmp(s, "upsert", 6) == 0)
		return DS_OP_UPSERT;
	if (memcmp(s, "insert", 6) == 0)
		return DS_OP_INSERT;
	if (memcmp(s, "update", 6) == 0)
		return DS_OP_UPDATE;
	if (memcmp(s, "delete", 6) == 0)
		return DS_OP_DELETE;
	return DS_OP_NONE;
}

/* The protocol's name of an operation ("insert", ...), for messages. */
const char *
ds_op_name(DsOperation op)
{
	switch (op)
	{
		case DS_OP_INSERT:
			return "insert";
		case DS_OP_UPDATE:
			return "update";
		case DS_OP_DELETE:
			return "delete";
		case DS_OP_UPSERT:
			return "upsert";
		default:
			return "none";
	}
}

/*
 * Raises ERRCODE_INVALID_PARAMETER_VALUE naming the first member of obj
 * whose name is not in allowed[] (NULL-terminated); where names obj and
 * allowed_text lists the allowed names, both for the message.  Returns if
 * every member is allowed.
 */
static void
reject_unknown_member(JsonbContainer *obj, const char *const *allowed,
					  const char *where, const char *allowed_text)
{
	JsonbIterator *it = JsonbIteratorInit(obj);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			bool		known = false;

			for (const char *const *a = allowed; *a; a++)
			{
				if (strlen(*a) == (size_t) v.val.string.len &&
					memcmp(*a, v.val.string.val, v.val.string.len) == 0)
				{
					known = true;
					break;
				}
			}
			if (!known)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown member \"%s\" in %s",
								ds_shorten(v.val.string.val, v.val.string.len), where),
						 errhint("Allowed members are %s.", allowed_text)));
		}
	}
}

/*
 * Sets *s and *len to member name, v (found says whether it is present),
 * pointing into its object.  Raises ERRCODE_INVALID_PARAMETER_VALUE if it
 * is absent or not a non-empty string.
 */
static void
required_string(bool found, JsonbValue v, const char *name, const char **s, int *len)
{
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("change event has no \"%s\"", name),
				 errhint("A change event needs \"type\", \"key\" and \"headers\".")));
	if (v.type != jbvString || v.val.string.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" must be a non-empty string, not %s", name,
						v.type == jbvString ? "an empty string" : ds_json_kind(&v))));
	*s = v.val.string.val;
	*len = v.val.string.len;
}

/*
 * Looks up header name.  Returns false if it is absent; otherwise fills
 * *out and returns true.  Raises ERRCODE_INVALID_PARAMETER_VALUE if it is
 * not a string, or is empty and nonempty is set.
 */
static bool
optional_string_header(const EventObject *headers, int h, const char *name,
					   bool nonempty, JsonbValue *out)
{
	if (!member(headers, h, out))
		return false;
	if (out->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("header \"%s\" must be a string, not %s", name,
						ds_json_kind(out))));
	if (nonempty && out->val.string.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("header \"%s\" must not be empty", name)));
	return true;
}

static const char *const change_members[] = {"type", "key", "value", "old_value", "headers", NULL};
static const char *const change_headers[] = {"operation", "txid", "timestamp", "offset", "from", NULL};
static const char *const control_headers[] = {"control", "offset", NULL};

/*
 * Fills ev->control from control event root, whose headers object is
 * headers and whose "control" header is ctl.  Raises
 * ERRCODE_INVALID_PARAMETER_VALUE if the event also has change members or
 * an "operation" header, if the control is not a known one, or if a header
 * other than "control" and "offset" is present.
 */
static void
parse_control(JsonbContainer *root, const EventObject *headers, JsonbValue *ctl,
			  DsEvent *ev)
{
	JsonbValue	v;

	if (JsonContainerSize(root) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("control event mixes control and change members"),
				 errdetail("A control event has only \"headers\"; \"type\", \"key\", \"value\" and \"old_value\" belong to change events.")));
	if (member(headers, DS_H_OPERATION, &v))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("control event mixes control and change members"),
				 errdetail("Headers \"control\" and \"operation\" cannot both be present.")));
	if (ctl->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("header \"control\" must be a string, not %s", ds_json_kind(ctl))));

#define CTL_IS(lit) (ctl->val.string.len == strlen(lit) && \
					 memcmp(ctl->val.string.val, lit, ctl->val.string.len) == 0)
	if (CTL_IS("snapshot-start"))
		ev->control = DS_CTL_SNAPSHOT_START;
	else if (CTL_IS("snapshot-end"))
		ev->control = DS_CTL_SNAPSHOT_END;
	else if (CTL_IS("reset"))
		ev->control = DS_CTL_RESET;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown control \"%s\"",
						ds_shorten(ctl->val.string.val, ctl->val.string.len)),
				 errhint("Control events are \"snapshot-start\", \"snapshot-end\" and \"reset\".")));
#undef CTL_IS

	if (JsonContainerSize(headers->c) !=
		1 + (optional_string_header(headers, DS_H_OFFSET, "offset", true, &v) ? 1 : 0))
		reject_unknown_member(headers->c, control_headers, "control headers",
							  "\"control\" and \"offset\"");
}

/*
 * Parses and validates one event into ev, whose strings and values point
 * into v.  v is an element of the batch: it must be an object (jbvBinary).
 * Raises an error naming the broken rule on any violation:
 * ERRCODE_INVALID_PARAMETER_VALUE for the shape,
 * ERRCODE_INVALID_TEXT_REPRESENTATION for a malformed timestamp header,
 * ERRCODE_PROGRAM_LIMIT_EXCEEDED for an event over
 * durable_state.max_event_bytes.  ev->type and ev->key are set before any
 * error that can follow them, so that the caller can name the event.
 */
void
ds_parse_event(JsonbValue *v, int index, DsEvent *ev)
{
	EventObject root;
	EventObject headers;
	JsonbValue	hv;
	JsonbValue	tmp;
	JsonbValue	opv;
	JsonbValue	typev;
	JsonbValue	keyv;
	bool		has_type;
	bool		has_key;
	int			known = 0;
	int			hknown = 1;

	memset(ev, 0, sizeof(DsEvent));
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event must be a JSON object, not %s", ds_json_kind(v))));
	scan_object(&root, v->val.binary.data, false);
	ev->root = root.c;
	ev->root_len = v->val.binary.len;

	/* type and key, if they are strings, name the event in any error below */
	has_type = member(&root, DS_EV_TYPE, &typev) != NULL;
	if (has_type && typev.type == jbvString && typev.val.string.len > 0)
	{
		ev->type = typev.val.string.val;
		ev->type_len = typev.val.string.len;
	}
	has_key = member(&root, DS_EV_KEY, &keyv) != NULL;
	if (has_key && keyv.type == jbvString && keyv.val.string.len > 0)
	{
		ev->key = keyv.val.string.val;
		ev->key_len = keyv.val.string.len;
	}

	if ((int64) ev->root_len > (int64) ds_max_event_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("event is %u bytes, more than durable_state.max_event_bytes (%d)",
						ev->root_len, ds_max_event_bytes),
				 errhint("Split the entity or raise durable_state.max_event_bytes.")));

	if (!member(&root, DS_EV_HEADERS, &hv))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event has no \"headers\""),
				 errhint("Give a change event headers.operation, or a control event headers.control.")));
	if (hv.type != jbvBinary || !JsonContainerIsObject(hv.val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"headers\" must be an object, not %s", ds_json_kind(&hv))));
	scan_object(&headers, hv.val.binary.data, true);

	if (member(&headers, DS_H_CONTROL, &tmp))
	{
		parse_control(root.c, &headers, &tmp, ev);
		return;
	}

	/* a change event */
	required_string(has_type, typev, "type", &ev->type, &ev->type_len);
	required_string(has_key, keyv, "key", &ev->key, &ev->key_len);
	known = 3;

	if (!member(&headers, DS_H_OPERATION, &opv))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("change event has no header \"operation\""),
				 errhint("Set headers.operation to \"insert\", \"update\", \"delete\" or \"upsert\".")));
	if (opv.type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("header \"operation\" must be a string, not %s", ds_json_kind(&opv))));
	ev->op = operation_named(opv.val.string.val, opv.val.string.len);
	if (ev->op == DS_OP_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown operation \"%s\"",
						ds_shorten(opv.val.string.val, opv.val.string.len)),
				 errhint("Set headers.operation to \"insert\", \"update\", \"delete\" or \"upsert\".")));

	if (member(&root, DS_EV_VALUE, &ev->value))
	{
		ev->has_value = true;
		known++;
	}
	else if (ev->op != DS_OP_DELETE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s event has no \"value\"", ds_op_name(ev->op)),
				 errdetail("Insert, update and upsert events carry the new value; only a delete may omit it.")));
	/*
	 * Members and headers not looked at yet are looked at only while the
	 * object has members not accounted for: the counts say when every
	 * other one is absent.
	 */
	if (JsonContainerSize(root.c) > known && member(&root, DS_EV_OLD_VALUE, &ev->old_value))
	{
		ev->has_old_value = true;
		known++;
	}
	if (JsonContainerSize(root.c) != known)
		reject_unknown_member(root.c, change_members, "change event",
							  "\"type\", \"key\", \"value\", \"old_value\" and \"headers\"");

	if (JsonContainerSize(headers.c) > hknown &&
		optional_string_header(&headers, DS_H_TXID, "txid", true, &tmp))
	{
		hknown++;
		ev->txid = tmp.val.string.val;
		ev->txid_len = tmp.val.string.len;
	}
	if (JsonContainerSize(headers.c) > hknown &&
		optional_string_header(&headers, DS_H_TIMESTAMP, "timestamp", false, &tmp))
	{
		hknown++;
		if (!ds_parse_rfc3339(tmp.val.string.val, tmp.val.string.len,
							  DS_RFC3339_DATE_TIME, NULL))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("header \"timestamp\" is not an RFC 3339 date-time: \"%s\"",
							ds_shorten(tmp.val.string.val, tmp.val.string.len)),
					 errhint("Use a form like \"2025-01-31T12:00:00.000Z\".")));
	}
	if (JsonContainerSize(headers.c) > hknown &&
		optional_string_header(&headers, DS_H_OFFSET, "offset", false, &tmp))
		hknown++;
	if (JsonContainerSize(headers.c) > hknown &&
		optional_string_header(&headers, DS_H_FROM, "from", false, &tmp))
		hknown++;
	if (JsonContainerSize(headers.c) != hknown)
		reject_unknown_member(headers.c, change_headers, "change headers",
							  "\"operation\", \"txid\", \"timestamp\", \"offset\" and \"from\"");
	(void) index;
}

/* The string at spot of the object whose data starts at base, or false if it is not one or empty. */
static inline bool
spot_string(const DsJtSpot *spot, const char *base, const char **s, int *len)
{
	if (spot->type != JENTRY_ISSTRING || spot->end == spot->start)
		return false;
	*s = base + spot->start;
	*len = spot->end - spot->start;
	return true;
}

/*
 * Fills ev from event jb, which the JSON text parser has just written,
 * with what it noted of the event's members as it parsed them (je), and
 * returns true, if the event is a change event of the common shape: only
 * "type" and "key" (non-empty strings), "headers" (an object of a known
 * "operation" and, maybe, a non-empty "txid"), "value" (unless a delete
 * omits it) and maybe "old_value".  ev is then what ds_parse_event would
 * make of the event, without reading its jsonb again.  Returns false for
 * any other event, for ds_parse_event to parse and, if it breaks a rule,
 * refuse.
 */
bool
ds_event_from_text(Jsonb *jb, const DsJtEvent *je, DsEvent *ev)
{
	JsonbContainer *root = &jb->root;
	const char *base;
	JsonbContainer *hc;
	const char *hbase;
	const DsJtSpot *hs = &je->spot[DS_JT_HEADERS];
	const char *op;
	int			op_len;

	if (!je->plain || !je->found[DS_JT_TYPE] || !je->found[DS_JT_KEY] ||
		!je->found[DS_JT_HEADERS] || !je->found[DS_JT_OPERATION] ||
		hs->type != JENTRY_ISCONTAINER ||
		VARSIZE(jb) - VARHDRSZ > (Size) ds_max_event_bytes)
		return false;
	base = (const char *) &root->children[JsonContainerSize(root) * 2];
	hc = (JsonbContainer *) (base + INTALIGN(hs->start));
	Assert(JsonContainerIsObject(hc));
	hbase = (const char *) &hc->children[JsonContainerSize(hc) * 2];

	ev->root = root;
	ev->root_len = VARSIZE(jb) - VARHDRSZ;
	ev->datum = jb;
	ev->control = DS_CTL_NONE;
	ev->txid = NULL;
	ev->txid_len = 0;
	ev->has_value = ev->has_old_value = false;
	if (!spot_string(&je->spot[DS_JT_TYPE], base, &ev->type, &ev->type_len) ||
		!spot_string(&je->spot[DS_JT_KEY], base, &ev->key, &ev->key_len) ||
		!spot_string(&je->spot[DS_JT_OPERATION], hbase, &op, &op_len))
		return false;
	ev->op = operation_named(op, op_len);
	if (ev->op == DS_OP_NONE)
		return false;
	if (je->found[DS_JT_TXID] &&
		!spot_string(&je->spot[DS_JT_TXID], hbase, &ev->txid, &ev->txid_len))
		return false;
	if (je->found[DS_JT_VALUE])
	{
		const DsJtSpot *v = &je->spot[DS_JT_VALUE];

		ev->has_value = true;
		ds_jsonb_entry_value(v->type, base, v->start, v->end, &ev->value);
	}
	else if (ev->op != DS_OP_DELETE)
		return false;
	if (je->found[DS_JT_OLD_VALUE])
	{
		const DsJtSpot *v = &je->spot[DS_JT_OLD_VALUE];

		ev->has_old_value = true;
		ds_jsonb_entry_value(v->type, base, v->start, v->end, &ev->old_value);
	}
	return true;
}

/*
 * The event as a standalone jsonb datum, for the log: the jsonb it came
 * as, if it came as one (the text parser's), else a palloc'd copy.
 */
Jsonb *
ds_event_datum(DsEvent *ev)
{
	Jsonb	   *jb;

	if (ev->datum)
		return ev->datum;
	jb = palloc(VARHDRSZ + ev->root_len);

	SET_VARSIZE(jb, VARHDRSZ + ev->root_len);
	memcpy(&jb->root, ev->root, ev->root_len);
	return jb;
}

/*
 * Raises ERRCODE_INVALID_PARAMETER_VALUE unless off can be a source offset.
 * Source offsets are opaque strings compared bytewise; the protocol's
 * sentinels ("", "-1", "now") and the URL-reserved characters are refused.
 */
void
ds_check_source_offset(const char *off)
{
	if (off[0] == '\0' || strcmp(off, "-1") == 0 || strcmp(off, "now") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid source_offset \"%s\"", ds_shorten(off, strlen(off))),
				 errdetail("The empty string, \"-1\" and \"now\" are sentinels, not offsets.")));
	if (strpbrk(off, ",&=?/") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid source_offset \"%s\"", ds_shorten(off, strlen(off))),
				 errdetail("Offsets never contain \",\", \"&\", \"=\", \"?\" or \"/\".")));
}

/*
 * The change event {"type": type, "key": key, "value": value, "headers":
 * {"operation": op}} (type_len and key_len bytes, value a scalar or a
 * container, NULL for a JSON null), built in the current memory context,
 * in jsonb's binary form directly (DsJsonbObject): the value's container
 * is copied as it is, where pushJsonbValue unpacked it token by token and
 * JsonbValueToJsonb built it again.  The members in jsonb's order, shorter
 * keys first: key, type, value, headers.
 */
Jsonb *
ds_make_event(const char *type, int type_len, const char *key, int key_len,
			  JsonbValue *value, const char *op)
{
	static const char *const keys[] = {"key", "type", "value", "headers"};
	DsJsonbObject headers;
	DsJsonbObject event;
	JsonbValue	v[4];

	v[0].type = jbvString;
	v[0].val.string.val = unconstify(char *, op);
	v[0].val.string.len = strlen(op);
	ds_jsonb_object_begin(&headers, 1, 0);
	ds_jsonb_object_key(&headers, "operation", 9);
	ds_jsonb_object_value(&headers, &v[0]);
	ds_jsonb_root_value(ds_jsonb_object_end(&headers), &v[3]);

	v[0].val.string.val = unconstify(char *, key);
	v[0].val.string.len = key_len;
	v[1].type = jbvString;
	v[1].val.string.val = unconstify(char *, type);
	v[1].val.string.len = type_len;
	if (value)
		v[2] = *value;
	else
		v[2].type = jbvNull;

	ds_jsonb_object_begin(&event, 4, 0);
	for (int i = 0; i < 4; i++)
		ds_jsonb_object_key(&event, keys[i], strlen(keys[i]));
	for (int i = 0; i < 4; i++)
		ds_jsonb_object_value(&event, &v[i]);
	return ds_jsonb_object_end(&event);
}
