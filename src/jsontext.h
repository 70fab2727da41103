/*
 * jsontext.h
 *		JSON text straight to jsonb (jsontext.c), for state.apply_text.
 */
#ifndef DS_JSONTEXT_H
#define DS_JSONTEXT_H

#include "utils/jsonb.h"

/* A reader of a batch's events: its scratch memory and the blocks its jsonb live in. */
typedef struct DsJsonText
{
	MemoryContext scratch;		/* one event's tree, reset after it */
	MemoryContext owner;		/* where the blocks are allocated */
	char	   *block;			/* the block being filled */
	Size		used;
	Size		size;
	uint64		parser[16];		/* jsontext.c's parser (its buffers reused) */
} DsJsonText;

extern void ds_jt_init(DsJsonText *jt);
extern Jsonb *ds_jt_parse_object(DsJsonText *jt, const char *s, const char *end,
								 const char **stop);

/* apply_text.c: one NDJSON line to an event, errors naming it */
extern void ds_parse_ndjson_line(DsJsonText *jt, MemoryContext errcxt, const char *q, size_t len,
								 int n, int lineno, JsonbValue *elem);

#endif							/* DS_JSONTEXT_H */
