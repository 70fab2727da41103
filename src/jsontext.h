/*
 * jsontext.h
 *		JSON text straight to jsonb (jsontext.c), for state.apply_text.
 */
#ifndef DS_JSONTEXT_H
#define DS_JSONTEXT_H

#include "utils/jsonb.h"

#include "durable_state.h"

/*
 * The members of an event object the parser notes as it parses them, so
 * that the engine need not look for them in the jsonb again: of the
 * event, and of its "headers" object.
 */
typedef enum DsJtName
{
	DS_JT_TYPE = DS_EV_TYPE,
	DS_JT_KEY = DS_EV_KEY,
	DS_JT_VALUE = DS_EV_VALUE,
	DS_JT_OLD_VALUE = DS_EV_OLD_VALUE,
	DS_JT_HEADERS = DS_EV_HEADERS,
	DS_JT_OPERATION = DS_EV_NMEMBERS,	/* headers.operation */
	DS_JT_TXID,					/* headers.txid */
	DS_JT_NNAMES
} DsJtName;

/*
 * Where a noted member's value is in its object (the event, or the
 * headers): its JEntry type, and its start and end as JEntry offsets
 * count them, from the start of the object's data (before the padding
 * that aligns a numeric or a container).
 */
typedef struct DsJtSpot
{
	uint32		type;			/* JENTRY_IS*; 0 (a string) if absent */
	uint32		start;
	uint32		end;
} DsJtSpot;

/*
 * What the parser saw of the last event object it parsed.  plain: the
 * event and its headers (if an object) have no members but the noted
 * ones, none twice; found: which are present.
 */
typedef struct DsJtEvent
{
	bool		plain;
	bool		found[DS_JT_NNAMES];
	DsJtSpot	spot[DS_JT_NNAMES];
} DsJtEvent;

/* A reader of a batch's events: its scratch memory and the blocks its jsonb live in. */
typedef struct DsJsonText
{
	MemoryContext scratch;		/* one event's tree, reset after it */
	MemoryContext owner;		/* where the blocks are allocated */
	char	   *block;			/* the block being filled */
	Size		used;
	Size		size;
	uint64		parser[16];		/* jsontext.c's parser (its buffers reused) */
	DsJtEvent	event;			/* of the last object parsed */
} DsJsonText;

extern void ds_jt_init(DsJsonText *jt);
extern Jsonb *ds_jt_parse_object(DsJsonText *jt, const char *s, const char *end,
								 const char **stop);

/* event.c: the event jb the parser just wrote, from what it noted, if plain */
extern bool ds_event_from_text(Jsonb *jb, const DsJtEvent *je, DsEvent *ev);

/* apply_text.c: one NDJSON line to an event, errors naming it */
extern void ds_parse_ndjson_line(DsJsonText *jt, MemoryContext errcxt, const char *q, size_t len,
								 int n, int lineno, JsonbValue *elem, DsEvent *ev);

#endif							/* DS_JSONTEXT_H */
