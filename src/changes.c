/*
 * changes.c
 *		state.changes(stream, since, max_events): the log of a stream after
 *		an offset, each event with its headers.offset.
 *
 * A role that may read the whole log (SELECT on every collection table of
 * the stream, no row-level security applying to it) reads it here with
 * stable.c's DsLogReader: one MVCC index scan of state.log's primary key in
 * offset order from since, which stops before a gap a later commit could
 * fill (the stable offset) and after max_events events.  Its cost does not
 * depend on how long the log is or on the planner's statistics, and the
 * log is scanned once.  A role under row-level security, or without SELECT
 * on every table, gets the filtered feed of rls.c (ds_changes_filtered),
 * its verdicts turned into events by one SQL statement.
 *
 * Memory: the events of one log row (a segment of at most
 * DS_SEGMENT_BYTES) live in a context reset after the row, each event's
 * rewritten copy in one reset after the event; rows go to the result's
 * tuplestore, which spills to disk past work_mem.  So a large max_events
 * reads in constant memory.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "durable_state.h"
#include "compat.h"

/* The largest offset, as the protocol writes it: offsets compare as text. */
#define MAX_OFFSET_TEXT "09223372036854775807"

/*
 * Looks the stream up by name as snap sees it: sets *id and *retained_from
 * and returns true, or returns false if there is no such stream.
 */
static bool
stream_row(const char *name, Snapshot snap, int32 *id, int64 *retained_from)
{
	const DsCatalogOids *oids = ds_catalog_oids();
	Relation	rel = table_open(oids->streams, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&key, get_attnum(oids->streams, "name"), BTEqualStrategyNumber, F_TEXTEQ,
				CStringGetTextDatum(name));
	scan = systable_beginscan(rel, oids->streams_name_idx, true, snap, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;

		*id = DatumGetInt32(heap_getattr(tup, oids->streams_att_id,
										 RelationGetDescr(rel), &isnull));
		*retained_from = DatumGetInt64(heap_getattr(tup, oids->streams_att_retained_from,
													RelationGetDescr(rel), &isnull));
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Whether the current user may read the stream's whole log (as
 * state._can_read_stream): SELECT on every collection table, and no
 * row-level security applying to it on any.  Sets *denied if SELECT is
 * missing on some table.  A table dropped since counts as readable, as
 * has_table_privilege's null did.
 */
static bool
can_read_log(const char *name, bool *denied)
{
	DsStream   *s = ds_catalog_stream(name, true);
	bool		full = true;

	*denied = false;
	for (int c = 0; s != NULL && c < s->ncolls; c++)
	{
		Oid			relid = s->colls[c].relid;
		bool		missing = false;

		if (pg_class_aclcheck_ext(relid, GetUserId(), ACL_SELECT, &missing) != ACLCHECK_OK &&
			!missing)
			*denied = true;
		if (*denied || (!missing && check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED))
			full = false;
	}
	return full;
}

/*
 * The offset since names (as state._parse_offset): 0 for NULL or '-1',
 * the stable tail for 'now', else 20 digits up to the largest bigint.
 * Raises ERRCODE_INVALID_PARAMETER_VALUE for anything else.
 */
static int64
parse_since(text *since, int32 stream_id, Snapshot snap)
{
	char	   *s;
	size_t		len;
	bool		digits = true;

	if (since == NULL)
		return 0;
	s = text_to_cstring(since);
	len = strlen(s);
	if (strcmp(s, "-1") == 0)
		return 0;
	if (strcmp(s, "now") == 0)
	{
		int64		newest;
		TransactionId blocker;

		return ds_stable_tail(stream_id, snap, &newest, &blocker);
	}
	for (size_t i = 0; i < len; i++)
		digits = digits && s[i] >= '0' && s[i] <= '9';
	if (len == 20 && digits && strcmp(s, MAX_OFFSET_TEXT) <= 0)
		return strtoll(s, NULL, 10);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid offset \"%s\"", s),
			 errdetail("Offsets are 20-digit strings returned by state.changes() and state.tail()."),
			 errhint("Use '-1' to read from the beginning or 'now' to read from the tail.")));
	return 0;					/* keep the compiler quiet */
}

/*
 * A member of an object being written out: child index of container c as
 * it is stored, or, if c is NULL, a value of entry type typ (JENTRY_TYPEMASK
 * bits) in the len bytes at data.
 */
typedef struct DsPiece
{
	const JsonbContainer *c;
	int			index;
	uint32		typ;
	const char *data;
	uint32		len;
} DsPiece;

/* A piece that is a child of c as it is stored. */
static DsPiece
child_piece(const JsonbContainer *c, int index)
{
	DsPiece		p = {c, index, c->children[index] & JENTRY_TYPEMASK, NULL, 0};

	return p;
}

/*
 * Appends piece p's bytes to buf, int-aligned for a number or a container
 * as convertJsonbValue writes them (buf starts int-aligned: at a varlena's
 * start, or at a container's).  Returns the length its JEntry counts, the
 * padding included.
 */
static uint32
append_piece(StringInfo buf, const DsPiece *p)
{
	const char *data = p->data;
	uint32		len = p->len;
	uint32		pad = 0;

	if (p->c != NULL)
	{
		uint32		off = getJsonbOffset(p->c, p->index);

		data = (const char *) &p->c->children[JsonContainerSize(p->c) * 2] + off;
		len = getJsonbLength(p->c, p->index);
		if (p->typ == JENTRY_ISNUMERIC || p->typ == JENTRY_ISCONTAINER)
		{
			/* the original's own padding is not copied */
			len -= INTALIGN(off) - off;
			data += INTALIGN(off) - off;
		}
	}
	if (p->typ == JENTRY_ISNUMERIC || p->typ == JENTRY_ISCONTAINER)
	{
		pad = INTALIGN(buf->len) - buf->len;
		enlargeStringInfo(buf, pad);
		memset(buf->data + buf->len, 0, pad);
		buf->len += pad;
	}
	appendBinaryStringInfo(buf, data, len);
	return pad + len;
}

/*
 * Appends an object of the n pairs keys[i]: vals[i] (keys distinct and in
 * jsonb's order: shorter first, then bytewise) to buf, as
 * convertJsonbObject writes one.
 */
static void
append_object(StringInfo buf, const DsPiece *keys, const DsPiece *vals, int n)
{
	uint32		hdr = (uint32) n | JB_FOBJECT;
	int			jentries;
	uint32		total = 0;

	appendBinaryStringInfo(buf, (char *) &hdr, sizeof(hdr));
	jentries = buf->len;
	enlargeStringInfo(buf, sizeof(JEntry) * n * 2);
	buf->len += sizeof(JEntry) * n * 2;
	for (int i = 0; i < n * 2; i++)
	{
		const DsPiece *p = i < n ? &keys[i] : &vals[i - n];
		uint32		len = append_piece(buf, p);
		JEntry		meta;

		total += len;
		if (total > JENTRY_OFFLENMASK)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("total size of jsonb object elements exceeds the maximum of %d bytes",
							JENTRY_OFFLENMASK)));
		/* an end offset every JB_OFFSET_STRIDE entries, else a length */
		meta = p->typ | ((i % JB_OFFSET_STRIDE) == 0 ? (total | JENTRY_HAS_OFF) : len);
		memcpy(buf->data + jentries + i * sizeof(JEntry), &meta, sizeof(JEntry));
	}
}

/*
 * The index of key in object c (jsonb keeps them sorted: shorter first,
 * then bytewise), or -(the index it would go to) - 1 if it is not there.
 */
static int
find_key(const JsonbContainer *c, const char *key, uint32 keylen)
{
	int			n = JsonContainerSize(c);
	const char *base = (const char *) &c->children[n * 2];
	int			i;

	for (i = 0; i < n; i++)
	{
		uint32		len = getJsonbLength(c, i);
		int			cmp = (len != keylen) ? (len < keylen ? -1 : 1) :
			memcmp(base + getJsonbOffset(c, i), key, keylen);

		if (cmp == 0)
			return i;
		if (cmp > 0)
			break;
	}
	return -i - 1;
}

/*
 * The event ev with headers.offset set to off, as jsonb_set(ev,
 * '{headers,offset}', off) does: an event without a headers object is
 * returned as it is.  Nothing is parsed: a container's bytes do not depend
 * on where it sits, so the headers object is written out again with the
 * offset in its place, then the event with its members' bytes copied as
 * they are stored and the new headers in place of the old.
 */
static Jsonb *
with_offset(Jsonb *ev, const char *off)
{
	static const DsPiece offset_key = {NULL, 0, JENTRY_ISSTRING, "offset", 6};
	const JsonbContainer *root = &ev->root;
	const JsonbContainer *hc;
	int			n;
	int			hn;
	int			h;
	int			at;
	DsPiece    *keys;
	DsPiece    *vals;
	StringInfoData hbuf;
	StringInfoData buf;
	int			k = 0;

	if (!JB_ROOT_IS_OBJECT(ev))
		return ev;
	n = JsonContainerSize(root);
	h = find_key(root, "headers", 7);
	if (h < 0 || !JBE_ISCONTAINER(root->children[n + h]))
		return ev;
	hc = (const JsonbContainer *) ((const char *) &root->children[n * 2] +
								   INTALIGN(getJsonbOffset(root, n + h)));
	if (!JsonContainerIsObject(hc))
		return ev;

	/* the headers, with "offset" replaced or inserted where it sorts */
	hn = JsonContainerSize(hc);
	at = find_key(hc, "offset", 6);
	keys = palloc(sizeof(DsPiece) * (Max(n, hn) + 1) * 2);
	vals = keys + Max(n, hn) + 1;
	for (int i = 0; i < hn; i++)
	{
		if (i == -at - 1)
		{
			keys[k] = offset_key;
			vals[k++] = (DsPiece) {NULL, 0, JENTRY_ISSTRING, off, strlen(off)};
		}
		keys[k] = child_piece(hc, i);
		vals[k++] = child_piece(hc, hn + i);
		if (i == at)
			vals[k - 1] = (DsPiece) {NULL, 0, JENTRY_ISSTRING, off, strlen(off)};
	}
	if (-at - 1 == hn)
	{
		keys[k] = offset_key;
		vals[k++] = (DsPiece) {NULL, 0, JENTRY_ISSTRING, off, strlen(off)};
	}
	initStringInfo(&hbuf);
	append_object(&hbuf, keys, vals, k);

	/* the event, its headers replaced */
	for (int i = 0; i < n; i++)
	{
		keys[i] = child_piece(root, i);
		vals[i] = child_piece(root, n + i);
	}
	vals[h] = (DsPiece) {NULL, 0, JENTRY_ISCONTAINER, hbuf.data, hbuf.len};
	initStringInfo(&buf);
	enlargeStringInfo(&buf, VARSIZE(ev) + hbuf.len);
	buf.len = VARHDRSZ;
	append_object(&buf, keys, vals, n);
	SET_VARSIZE(buf.data, buf.len);
	return (Jsonb *) buf.data;
}

/*
 * Puts the events of stream stream_id after since into the result, at most
 * max, in offset order, never past a batch the snapshot cannot see yet.
 */
static int64
read_log(ReturnSetInfo *rsinfo, int32 stream_id, int64 since, int32 max, Snapshot snap)
{
	DsLogReader reader;
	int64		emitted = 0;
	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext,
												 "durable_state changes: log row",
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContext evcxt = AllocSetContextCreate(CurrentMemoryContext,
												"durable_state changes: event",
												ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;

	if (max <= 0)
		return 0;
	ds_log_reader_begin(&reader, stream_id, since, snap);
	while (emitted < max && ds_log_reader_next(&reader))
	{
		bool		isnull;
		Datum	   *evs;
		int			nevs;
		int64		first = reader.first;

		old = MemoryContextSwitchTo(rowcxt);
		deconstruct_array(DatumGetArrayTypeP(slot_getattr(reader.slot, 4, &isnull)),
						  JSONBOID, -1, false, TYPALIGN_INT, &evs, NULL, &nevs);
		/* the first row may begin at or before since */
		for (int i = Max(0, (int) (since + 1 - first)); i < nevs && emitted < max; i++)
		{
			char		off[32];
			Datum		values[2];
			bool		nulls[2] = {false, false};

			MemoryContextSwitchTo(evcxt);
			snprintf(off, sizeof(off), "%020lld", (long long) (first + i));
			values[0] = CStringGetTextDatum(off);
			values[1] = JsonbPGetDatum(with_offset(DatumGetJsonbP(evs[i]), off));
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			emitted++;
			MemoryContextReset(evcxt);
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(rowcxt);
	}
	ds_log_reader_end(&reader);
	MemoryContextDelete(evcxt);
	MemoryContextDelete(rowcxt);
	return emitted;
}

/*
 * The filtered feed of a role under row-level security (rls.c), its
 * verdicts turned into events: "enter" an insert of the row (an update or
 * upsert becomes an insert, old_value goes), "leave" a delete of the key.
 */
static int64
read_filtered(ReturnSetInfo *rsinfo, const char *name, int64 since, int32 max)
{
	static const char *sql =
		"SELECT state.format_offset(f.seq),"
		"       jsonb_set(CASE f.verdict"
		"                     WHEN 'enter' THEN jsonb_set(f.event - 'old_value', '{headers,operation}',"
		"                         CASE WHEN f.event->'headers'->>'operation' IN ('update', 'upsert')"
		"                              THEN '\"insert\"' ELSE f.event->'headers'->'operation' END)"
		"                     WHEN 'leave' THEN jsonb_build_object('type', f.event->'type', 'key', f.event->'key',"
		"                         'headers', jsonb_build_object('operation', 'delete'))"
		"                     ELSE f.event END,"
		"                 '{headers,offset}', to_jsonb(state.format_offset(f.seq)))"
		"  FROM state._changes_filtered($1, $2, $3) f";
	Oid			types[3] = {TEXTOID, INT8OID, INT4OID};
	Datum		args[3];
	int			level = ds_push_catalog_search_path();
	uint64		n;

	args[0] = CStringGetTextDatum(name);
	args[1] = Int64GetDatum(since);
	args[2] = Int32GetDatum(max);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(sql, 3, types, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading the filtered changes of stream \"%s\" failed", name);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		values[2];
		bool		nulls[2];

		values[0] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &nulls[0]);
		values[1] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &nulls[1]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	n = SPI_processed;
	SPI_finish();
	ds_pop_catalog_search_path(level);
	return (int64) n;
}

/* What a waiting read reads again each time it is woken. */
typedef struct ReadAgain
{
	ReturnSetInfo *rsinfo;
	const char *name;
	int32		stream_id;
	int64		since;
	int32		max;
	bool		full;			/* the whole log, not the filtered feed */
} ReadAgain;

/* One more read of a waiting reader, under a new snapshot. */
static int64
read_again(void *arg)
{
	ReadAgain  *r = arg;
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	int64		n;

	PushActiveSnapshot(snap);
	if (r->full)
		n = read_log(r->rsinfo, r->stream_id, r->since, r->max, snap);
	else
		n = read_filtered(r->rsinfo, r->name, r->since, r->max);
	PopActiveSnapshot();
	UnregisterSnapshot(snap);
	return n;
}

/*
 * state.changes(stream text, since text, max_events integer) RETURNS
 * TABLE ("offset" text, event jsonb): the stream's events after since, at
 * most max_events, as the statement's snapshot sees them up to the stable
 * offset.  Raises ERRCODE_UNDEFINED_OBJECT for an unknown stream,
 * ERRCODE_INVALID_PARAMETER_VALUE for a negative or null max_events or a
 * malformed offset, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE for an offset
 * pruned by retention, ERRCODE_INSUFFICIENT_PRIVILEGE without SELECT on
 * every collection table of the stream (or on state.log).
 */
PG_FUNCTION_INFO_V1(ds_changes);

Datum
ds_changes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *since = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);
	Snapshot	snap = GetActiveSnapshot();
	int32		id;
	int64		retained_from;
	int32		max;
	int64		since_seq;
	bool		denied;
	bool		full;
	int32		wait_ms = PG_NARGS() > 3 && !PG_ARGISNULL(3) ? PG_GETARG_INT32(3) : 0;
	ReadAgain	again;
	int64		n;

	InitMaterializedSRF(fcinfo, 0);
	if (name == NULL || !stream_row(name, snap, &id, &retained_from))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("stream \"%s\" does not exist", name ? name : "<NULL>"),
				 errhint("A stream is created by the first state.create_collection() that names it.")));
	full = can_read_log(name, &denied);
	if (PG_ARGISNULL(2) || PG_GETARG_INT32(2) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_events must be zero or positive")));
	max = PG_GETARG_INT32(2);
	if (wait_ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("wait_ms must be zero or positive")));
	if (wait_ms > 0 && IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("state.changes() cannot wait under %s",
						IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
				 errdetail("A waiting read sees each new commit with a new snapshot; the transaction's snapshot never changes."),
				 errhint("Wait in READ COMMITTED, or call with wait_ms => 0.")));
	since_seq = parse_since(since, id, snap);
	if (since_seq < retained_from - 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("offset %s of stream \"%s\" is no longer retained",
						since ? text_to_cstring(since) : "<NULL>", name),
				 errdetail("The log of this stream starts after offset %020lld.",
						   (long long) (retained_from - 1)),
				 errhint("Resync from state.snapshot(), then read changes after its snapshot-end offset.")));
	if (!full)
	{
		if (denied)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for the changes of stream \"%s\"", name),
					 errdetail("Reading a stream's changes needs SELECT on every collection table of the stream."),
					 errhint("Grant SELECT on the stream's tables, or keep tenants in separate streams.")));
	}
	else if (pg_class_aclcheck(ds_catalog_oids()->log, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
	{
		/* the log itself is read past its row-level security, not past its grant */
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, "log");
	}
	n = full ? read_log(rsinfo, id, since_seq, max, snap)
		: read_filtered(rsinfo, name, since_seq, max);
	if (n == 0 && wait_ms > 0 && max > 0)
	{
		again.rsinfo = rsinfo;
		again.name = name;
		again.stream_id = id;
		again.since = since_seq;
		again.max = max;
		again.full = full;
		(void) ds_wait_for_stream(id, wait_ms, read_again, &again);
	}
	return (Datum) 0;
}
