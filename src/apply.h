/*
 * apply.h
 *		The apply engine's batch, shared by its files:
 *	 apply.c	 the batch: state.apply, opening the collections, applying
 *				 each event in order, the end of the batch (log, txids,
 *				 TTLs, triggers)
 *	 apply_text.c state.apply_text: JSON text to the batch's events
 *				 (jsontext.c), handed to apply.c
 *	 probe.c	 finding the stored row of a key: the per-event index probe
 *				 and the bulk probe of a whole batch's keys
 *	 row.c		 the row an event writes: formed from its value and
 *				 checked against the key, the schema and old_value
 *
 * Only these files include it; everything else sees the engine through
 * durable_state.h.
 */
#ifndef DS_APPLY_H
#define DS_APPLY_H

#include "access/genam.h"
#include "nodes/execnodes.h"

#include "durable_state.h"
#include "jsonschema.h"

/* apply.c */
extern int	ds_max_batch_events;
extern void ds_apply_events(FunctionCallInfo fcinfo, JsonbValue *elems, DsEvent *parsed,
							int n, int *lines);
extern Datum ds_apply(PG_FUNCTION_ARGS);

/* settings (probe.c) */
extern int	ds_bulk_probe_min_keys;
extern int	ds_bulk_probe_keys_per_block;

/*
 * What the bulk probe knows of one key of the batch: its datum, and, if
 * known, whether a row has it and where.  Each key's state follows the
 * batch's own changes (ds_key_applied).
 */
typedef struct DsKeyState
{
	uint32		hash;
	const char *data;			/* key bytes; NULL: empty slot */
	int			len;
	Datum		datum;			/* the key as a column datum */
	bool		known;			/* existence and tid are known */
	bool		exists;
	ItemPointerData tid;
} DsKeyState;

/*
 * The distinct keys of one collection in a batch: entries in the order
 * the batch first names them, found by open addressing in slots, each
 * slot 0 (empty) or a key's hash << 32 | its entry's index + 1 (8 bytes a
 * slot, so the table of a 100k-key batch is 2 MB, not 10).
 */
typedef struct DsKeyTable
{
	uint64	   *slots;
	DsKeyState *entries;
	uint32		mask;
	int			n;
} DsKeyTable;

/* Per-collection state for one batch. */
typedef struct DsCollState
{
	DsCollection *coll;
	bool		opened;
	AclMode		needed;			/* privileges the batch's events need */
	Relation	rel;
	Relation	pkrel;
	Index		rti;
	ResultRelInfo *rri;
	DsRelInfo	ri;
	IndexScanDesc scan;
	SnapshotData dirty;
	ScanKeyData skey;
	TupleTableSlot *oldslot;	/* the stored row, once found */
	TupleTableSlot *newslot;	/* the row an event writes */
	ExprState **defaults;		/* by attnum - 1; NULL if none */
	bool	   *provided;		/* scratch: members given by the event */
	int			nevents;		/* change events of the batch for it */
	DsKeyTable *keys;			/* bulk probe results, or NULL */
	JsonSchema *schema;			/* compiled JSON Schema of the values, or NULL */
	bool		rls;			/* row-level security applies to the caller */
	bool		images;			/* the log keeps its rows' images (RLS enabled) */
	bool		rr_check;		/* a row must be one the transaction snapshot sees */
} DsCollState;

/* What the batch knows of one event while applying it. */
typedef struct DsEventState
{
	DsCollState *cs;			/* its collection; NULL for control events */
	DsKeyState *ks;				/* its key in the bulk probe, or NULL */
} DsEventState;

typedef struct DsBatch
{
	const char *stream_name;
	DsStream   *stream;
	DsStreamState st;
	int			nevents;
	DsEvent    *events;
	DsEventState *evstate;		/* by event index */
	int		   *lines;			/* NDJSON line numbers, or NULL */
	int			index_base;		/* errors name event i as index_base + i */
	DsCollState *colls;			/* one per collection of the stream */
	EState	   *estate;
	EPQState	epq;
	DsLogWriter log;			/* the log segment being filled */
	Jsonb	   *cur_img;		/* the current event's row images, or NULL */
	uint32	   *keyhashes;		/* what its key locks are taken on */
	int			nkeyhashes;
	int			ntxids;			/* events with a txid header */
	Relation	txidrel;		/* state._txids, if ntxids > 0 */
	ResultRelInfo *txidrri;
	MemoryContext evcxt;		/* reset after every event */
	int			active_slot;	/* our place in active_streams, or -1 */
	volatile int current;		/* event being processed, for errors; see
								 * DS_END_OF_BATCH */
} DsBatch;

/* probe.c */
extern bool ds_find_row(DsCollState *cs, Datum key, bool lock);
extern void ds_bulk_probe(DsBatch *b, DsCollState *cs);
extern bool ds_find_row_known(DsCollState *cs, DsKeyState *ks, Datum key);
extern void ds_key_applied(DsCollState *cs, DsKeyState *ks, bool deleted);
extern void ds_probe_forget(DsBatch *b);

/* row.c */
extern void ds_form_row(EState *estate, DsCollState *cs, DsEvent *ev, Datum key,
						bool found);
extern void ds_check_schema(DsCollState *cs, DsEvent *ev);
extern void ds_check_old_value(DsCollState *cs, DsEvent *ev, bool found);

#endif							/* DS_APPLY_H */
