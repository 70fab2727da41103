/*
 * apply_text.c
 *		state.apply_text(text): a batch given as JSON text, a JSON array
 *		or newline-delimited JSON (NDJSON), parsed and handed to the apply
 *		engine (apply.c) as one batch.
 *
 * Each event object is parsed straight to jsonb by jsontext.c, which gives
 * up on anything but the common case; the text is then parsed by jsonb_in,
 * so malformed input gets jsonb_in's errors, as it always did: for NDJSON
 * named with the event's index and line, for an array as jsonb_in raises
 * them.  Nothing is applied unless every event parses.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "apply.h"
#include "jsontext.h"

/* The events of the batch being read. */
typedef struct TextBatch
{
	JsonbValue *elems;
	DsEvent    *events;			/* as far as parsed (ds_event_from_text) */
	int		   *lines;			/* NDJSON line numbers, or NULL */
	int			n;
	int			cap;
	bool		with_lines;		/* NDJSON: keep line numbers */
} TextBatch;

/* Room for more events in tb: twice as many (see room). */
static pg_noinline void
grow(TextBatch *tb)
{
	tb->cap = Max(64, tb->cap * 2);
	if (tb->elems == NULL)
	{
		tb->elems = palloc(sizeof(JsonbValue) * tb->cap);
		tb->events = palloc(sizeof(DsEvent) * tb->cap);
		if (tb->with_lines)
			tb->lines = palloc(sizeof(int) * tb->cap);
	}
	else
	{
		tb->elems = repalloc(tb->elems, sizeof(JsonbValue) * tb->cap);
		tb->events = repalloc(tb->events, sizeof(DsEvent) * tb->cap);
		if (tb->lines)
			tb->lines = repalloc(tb->lines, sizeof(int) * tb->cap);
	}
}

/* Room for one more event in tb. */
static inline void
room(TextBatch *tb)
{
	if (unlikely(tb->n >= tb->cap))
		grow(tb);
}

/*
 * Parse the JSON array from p (its opening bracket) to end with
 * jsontext.c into tb.  Returns false if it gives up on any element or the
 * array's syntax: the caller then parses the whole text with jsonb_in.
 */
static bool
parse_array_fast(DsJsonText *jt, const char *p, const char *end, TextBatch *tb)
{
	p++;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	if (p < end && *p == ']')
		p++;
	else
	{
		for (;;)
		{
			Jsonb	   *jb;

			room(tb);
			jb = ds_jt_parse_object(jt, p, end, &p);
			if (jb == NULL)
				return false;
			ds_jsonb_root_value(jb, &tb->elems[tb->n]);
			if (!ds_event_from_text(jb, &jt->event, &tb->events[tb->n]))
				tb->events[tb->n].root = NULL;	/* for ds_parse_event */
			tb->n++;
			while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
				p++;
			if (p < end && *p == ',')
			{
				p++;
				continue;
			}
			if (p < end && *p == ']')
			{
				p++;
				break;
			}
			return false;
		}
	}
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p == end;
}

/* Raises the error that NDJSON line q (len bytes; event n, line lineno) is too long, if it is. */
static inline void
check_line_size(size_t len, int n, int lineno)
{
	if ((int64) len > (int64) ds_max_event_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("event %d (line %d) is %zu bytes, more than durable_state.max_event_bytes (%d)",
						n, lineno, len, ds_max_event_bytes)));
}

/*
 * Parses NDJSON line q (len bytes) with jt into *elem, and *ev as far as
 * ds_event_from_text can (else its root is NULL, for ds_parse_event); a
 * scalar is kept as a scalar value, for the event parser to refuse.
 */
static inline void
parse_line(DsJsonText *jt, const char *q, size_t len, JsonbValue *elem, DsEvent *ev)
{
	const char *stop;
	Jsonb	   *jb = ds_jt_parse_object(jt, q, q + len, &stop);
	bool		fast = false;

	if (jb != NULL)
	{
		while (stop < q + len && (*stop == ' ' || *stop == '\t'))
			stop++;
		if (stop != q + len)
			jb = NULL;			/* something after the object */
		fast = jb != NULL;
	}
	if (jb == NULL)
		jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(pnstrdup(q, len))));
	ds_jsonb_root_value(jb, elem);
	if (!fast || !ds_event_from_text(jb, &jt->event, ev))
		ev->root = NULL;
}

/*
 * Re-raises the error being handled with event n (line lineno) in front
 * of its message, its data copied in errcxt.
 */
static void
rethrow_naming_line(MemoryContext errcxt, int n, int lineno)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(errcxt);
	edata = CopyErrorData();
	FlushErrorState();
	edata->message = psprintf("event %d (line %d): %s", n, lineno, edata->message);
	ReThrowError(edata);
}

/*
 * Parse one NDJSON line q (len bytes; event n, line lineno) with jt into
 * *elem and *ev (see parse_line): an error in it is re-raised (its data
 * copied in errcxt) naming the event and the line.
 */
void
ds_parse_ndjson_line(DsJsonText *jt, MemoryContext errcxt, const char *q, size_t len,
					 int n, int lineno, JsonbValue *elem, DsEvent *ev)
{
	check_line_size(len, n, lineno);
	PG_TRY();
	{
		parse_line(jt, q, len, elem, ev);
	}
	PG_CATCH();
	{
		rethrow_naming_line(errcxt, n, lineno);
	}
	PG_END_TRY();
}

/*
 * The NDJSON events from p (the start of the first non-blank line, lineno
 * lines before it) to end into tb, parsed line by line; blank lines are
 * skipped but counted.
 */
static void
parse_ndjson(FunctionCallInfo fcinfo, DsJsonText *jt, const char *p, const char *end,
			 int lineno, TextBatch *tb)
{
	/* the line being parsed (one error handler for them all), or -1 */
	volatile int cur = -1;
	volatile int cur_line = 0;

	PG_TRY();
	{
		while (p < end)
		{
			const char *nl = memchr(p, '\n', end - p);
			const char *e = nl ? nl : end;
			const char *q = p;

			lineno++;
			if (e > p && e[-1] == '\r')
				e--;
			while (q < e && (*q == ' ' || *q == '\t'))
				q++;
			if (q < e)
			{
				if (tb->n >= ds_max_batch_events)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("batch has more than durable_state.max_batch_events (%d) events",
									ds_max_batch_events),
							 errhint("Split the batch or raise durable_state.max_batch_events.")));
				room(tb);
				check_line_size(e - q, tb->n, lineno);
				cur = tb->n;
				cur_line = lineno;
				parse_line(jt, q, e - q, &tb->elems[tb->n], &tb->events[tb->n]);
				cur = -1;
				tb->lines[tb->n] = lineno;
				tb->n++;
			}
			if (!nl)
				break;
			p = nl + 1;
		}
	}
	PG_CATCH();
	{
		if (cur >= 0)
			rethrow_naming_line(fcinfo->flinfo->fn_mcxt, cur, cur_line);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * state.apply_text(events text, ...): a JSON array, or newline-delimited
 * JSON (one event per line; blank lines are ignored, but counted in the
 * line numbers errors give).
 */
PG_FUNCTION_INFO_V1(ds_apply_text);

Datum
ds_apply_text(PG_FUNCTION_ARGS)
{
	text	   *t;
	const char *s;
	const char *end;
	const char *p;
	int			lineno = 0;
	DsJsonText	jt;
	TextBatch	tb = {0};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("events must not be null")));
	/* read in place: the parser needs no NUL terminator and writes nothing */
	t = PG_GETARG_TEXT_PP(0);
	s = p = VARDATA_ANY(t);
	end = s + VARSIZE_ANY_EXHDR(t);
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
	{
		/* blank lines before the first event still count for line numbers */
		if (*p == '\n')
			lineno++;
		p++;
	}
	if (p == end)
	{
		ds_apply_events(fcinfo, NULL, NULL, 0, NULL);
		return (Datum) 0;
	}
	ds_jt_init(&jt);
	if (*p == '[')
	{
		if (parse_array_fast(&jt, p, end, &tb))
		{
			ds_apply_events(fcinfo, tb.elems, tb.events, tb.n, NULL);
			return (Datum) 0;
		}
		/* jsonb_in decides, and names what is wrong */
		fcinfo->args[0].value = DirectFunctionCall1(jsonb_in,
													CStringGetDatum(pnstrdup(p, end - p)));
		return ds_apply(fcinfo);
	}

	/* NDJSON: from the start of the first non-blank line */
	while (p > s && p[-1] != '\n')
		p--;
	tb.with_lines = true;
	parse_ndjson(fcinfo, &jt, p, end, lineno, &tb);
	ds_apply_events(fcinfo, tb.elems, tb.events, tb.n, tb.lines);
	return (Datum) 0;
}
