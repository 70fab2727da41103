/*
 * durable_state.h
 *		Shared declarations of the durable_state extension.
 *
 * The extension is split by responsibility:
 * What every module shares.  The extension is split by responsibility (the
 * README's "How it works" names each file's one concern); the apply engine
 * (apply.c, probe.c, row.c) shares apply.h, the files that use shared
 * memory share shmem.h, the JSON Schema validator has jsonschema.h.
 */
#ifndef DURABLE_STATE_H
#define DURABLE_STATE_H

#include "postgres.h"

#include "datatype/timestamp.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "nodes/execnodes.h"
#include "nodes/parsenodes.h"
#include "nodes/primnodes.h"
#include "storage/lockdefs.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

#include "util.h"

/* Every module's init function, called by _PG_init (init.c). */
extern void ds_event_init(void);
extern void ds_apply_init(void);
extern void ds_ingest_init(void);
extern void ds_probe_init(void);

/* ------------------------------------------------------------------------
 * Events (event.c)
 * ------------------------------------------------------------------------ */

typedef enum DsOperation
{
	DS_OP_NONE = 0,
	DS_OP_INSERT,
	DS_OP_UPDATE,
	DS_OP_DELETE,
	DS_OP_UPSERT
} DsOperation;

typedef enum DsControl
{
	DS_CTL_NONE = 0,
	DS_CTL_SNAPSHOT_START,
	DS_CTL_SNAPSHOT_END,
	DS_CTL_RESET
} DsControl;

/*
 * The members of an event, and (a space of their own) of its headers,
 * that are read by name.
 */
typedef enum DsEventMember
{
	DS_EV_TYPE,
	DS_EV_KEY,
	DS_EV_VALUE,
	DS_EV_OLD_VALUE,
	DS_EV_HEADERS,
	DS_EV_NMEMBERS
} DsEventMember;

typedef enum DsEventHeader
{
	DS_H_OPERATION,
	DS_H_TXID,
	DS_H_TIMESTAMP,
	DS_H_OFFSET,
	DS_H_FROM,
	DS_H_CONTROL,
	DS_H_NHEADERS
} DsEventHeader;

#define DS_EV_MAX_NAMES Max((int) DS_EV_NMEMBERS, (int) DS_H_NHEADERS)

/*
 * Which member of an event (or, if headers, of its headers) key k (len
 * bytes) names: a DsEventMember (DsEventHeader), or -1 for any other.
 * For event.c's scan of an event's jsonb and the text parser's notes.
 */
static inline int
ds_event_name(const char *k, uint32 len, bool headers)
{
#define IS(name) (memcmp(k, (name), sizeof(name) - 1) == 0)
	if (!headers)
	{
		switch (len)
		{
			case 3:
				return IS("key") ? DS_EV_KEY : -1;
			case 4:
				return IS("type") ? DS_EV_TYPE : -1;
			case 5:
				return IS("value") ? DS_EV_VALUE : -1;
			case 7:
				return IS("headers") ? DS_EV_HEADERS : -1;
			case 9:
				return IS("old_value") ? DS_EV_OLD_VALUE : -1;
		}
		return -1;
	}
	switch (len)
	{
		case 4:
			return IS("txid") ? DS_H_TXID : IS("from") ? DS_H_FROM : -1;
		case 6:
			return IS("offset") ? DS_H_OFFSET : -1;
		case 7:
			return IS("control") ? DS_H_CONTROL : -1;
		case 9:
			return IS("operation") ? DS_H_OPERATION : IS("timestamp") ? DS_H_TIMESTAMP : -1;
	}
	return -1;
#undef IS
}

/*
 * One parsed event.  Strings point into the event's jsonb and are not
 * NUL-terminated; the jsonb outlives the batch.
 */
typedef struct DsEvent
{
	JsonbContainer *root;		/* the event object */
	uint32		root_len;		/* its size in bytes */
	Jsonb	   *datum;			/* the jsonb whose root it is, or NULL */
	DsControl	control;
	DsOperation op;
	const char *type;
	int			type_len;
	const char *key;
	int			key_len;
	const char *txid;			/* headers.txid, or NULL */
	int			txid_len;
	bool		has_value;
	bool		has_old_value;
	JsonbValue	value;
	JsonbValue	old_value;
} DsEvent;

/* durable_state.max_event_bytes (event.c) */
extern int	ds_max_event_bytes;

extern void ds_parse_event(JsonbValue *v, int index, DsEvent *ev);
extern Jsonb *ds_event_datum(DsEvent *ev);
extern Jsonb *ds_make_event(const char *type, int type_len, const char *key, int key_len,
							 JsonbValue *value, const char *op);
extern const char *ds_op_name(DsOperation op);
extern void ds_check_source_offset(const char *off);

/* ------------------------------------------------------------------------
 * Catalog (catalog.c)
 * ------------------------------------------------------------------------ */

typedef enum DsKind
{
	DS_KIND_DOCUMENT,
	DS_KIND_ADOPTED,
	DS_KIND_GENERATED
} DsKind;

/* One row of state._collections, as cached per backend. */
typedef struct DsCollection
{
	int32		stream_id;
	char	   *name;
	char	   *type;
	int			type_len;
	Oid			relid;
	char	   *primary_key;
	DsKind		kind;
	bool		strict;
	bool		allow_extra;
	bool		check_old_value;
	bool		assert_formats; /* "format" asserts date-time, uuid, email... */
	bool		has_ttl;		/* some entity was ever put with a TTL */
	char	   *extra_column;	/* jsonb column for extras and exact JSON, or NULL */
	char	   *version_column; /* bigint column of entity versions, or NULL */
	Interval   *default_ttl;	/* TTL of every write, or NULL */
	Jsonb	   *schema;			/* its JSON Schema, or NULL */
} DsCollection;

/* A stream and its collections (copied out of the cache for a caller). */
typedef struct DsStream
{
	int32		id;
	char	   *name;
	int			ncolls;
	DsCollection *colls;
} DsStream;

extern DsStream *ds_catalog_stream(const char *name, bool missing_ok);
extern DsCollection *ds_stream_collection(DsStream *stream, const char *type,
										  int type_len, bool missing_ok);
/* OIDs and attribute numbers of the extension's own tables */
typedef struct DsCatalogOids
{
	Oid			collections;
	Oid			streams;
	Oid			streams_name_idx;
	Oid			streams_pkey;
	Oid			log;
	Oid			txids;
	Oid			expiry;
	AttrNumber	streams_att_id;
	AttrNumber	streams_att_name;
	AttrNumber	streams_att_tail;
	AttrNumber	streams_att_retained_from;
	AttrNumber	streams_att_source_offset;
	AttrNumber	streams_att_in_snapshot;
	AttrNumber	streams_att_updated_at;
	AttrNumber	log_att_stable; /* state.log.stable_seq, or 0 before 0.5.0 */
	AttrNumber	log_att_images; /* state.log.images, or 0 before 0.3.0 */
	AttrNumber	txids_att_xid;	/* state._txids.xid, or 0 before 0.6.0 */
	Oid			txids_gen_idx;	/* state._txids (gen, hash): a row per txid (0.6.0), else 0 */
	AttrNumber	txids_att_gen;	/* state._txids.gen and .hash (0.6.0) */
	AttrNumber	txids_att_hash;
	AttrNumber	txids_att_packed;	/* state._txids.packed (0.9.0), or 0 */
} DsCatalogOids;

extern const DsCatalogOids *ds_catalog_oids(void);

/* state._txids (0.6.0): a row per txid, in buckets of applied_at */
#define DS_TXID_BUCKET_SECS 300
#define DS_TXID_SUBGENS 16		/* gens per bucket */
#define DS_TXID_SUBGEN_ROWS 65536	/* txids per gen before the next */
#define DS_TXID_FRESH_GEN_ROWS 8192	/* txids of a batch that begin a gen */
#define DS_TXIDS_ATT_STREAM 1	/* before and since 0.6.0 */
#define DS_TXIDS_ATT_LAST 2
#define DS_TXIDS_ATT_AT 4
#define DS_TXIDS_IDX_GEN 1		/* the columns of state._txids_gen_hash_idx */
#define DS_TXIDS_IDX_HASH 2

/*
 * Packed rows (0.9.0): a batch of at least DS_TXID_FRESH_GEN_ROWS txids
 * stores its sorted hashes grouped by their top DS_TXID_PACK_BITS bits, at
 * most DS_TXID_PACK_ROW to a row (inline, under the TOAST threshold), with
 * hash set to the group's key: its top bits, every lower bit set.
 */
#define DS_TXID_PACK_BITS 10
#define DS_TXID_PACK_ROW 200

static inline int64
ds_txid_pack_key(int64 hash)
{
	uint64		low = (UINT64CONST(1) << (64 - DS_TXID_PACK_BITS)) - 1;

	return (int64) ((uint64) hash | low);
}
extern int32 ds_txid_bucket(TimestampTz t);
extern int32 ds_txid_gen(TimestampTz at, int n);
extern void ds_txid_register(FullTransactionId xid);
extern void ds_catalog_init(void);

/* Per-column facts needed to convert JSON into a datum and back. */
typedef struct DsColumn
{
	const char *name;			/* attname */
	int			name_len;
	AttrNumber	attnum;
	Oid			typid;
	Oid			basetypid;		/* typid, or the base type of a domain */
	void	   *domain_extra;	/* domain_check's cache */
	int32		typmod;
	Oid			collation;
	Oid			ioparam;
	FmgrInfo	infunc;
	FmgrInfo	outfunc;
	char		typcategory;	/* of the base type, for JSON type checks */
	char		attgenerated;
	char		attidentity;
	bool		notnull;
} DsColumn;

/*
 * What the engine and the readers need to know about a collection's table.
 * The facts are cached per relation for the backend's life (catalog.c),
 * dropped by the relcache callback when the table changes; rel and pkrel
 * are opened per call.
 */
typedef struct DsRelInfo
{
	Relation	rel;
	Relation	pkrel;			/* the primary key index */
	int			natts;
	DsColumn   *cols;			/* by attnum - 1; dropped columns have name NULL */
	DsColumn  **sorted;			/* live columns in jsonb key order */
	int			nsorted;
	DsColumn   *pkcol;
	DsColumn   *valuecol;		/* document collections: the value column */
	DsColumn   *extracol;		/* the extra column (not in sorted), or NULL */
	DsColumn   *versioncol;		/* the version column (not in sorted), or NULL */
	RegProcedure pk_eqproc;
	Oid			pk_collation;
	Expr	  **defaults;		/* column defaults, planned, by attnum - 1 */
} DsRelInfo;

extern void ds_relinfo_open(DsRelInfo *ri, DsCollection *coll, LOCKMODE lockmode);
extern void ds_relinfo_close(DsRelInfo *ri, LOCKMODE lockmode);
extern DsColumn *ds_relinfo_column(DsRelInfo *ri, const char *name, int len);
extern Datum ds_key_datum(DsRelInfo *ri, const char *key, int len);
extern void ds_check_table_access(DsCollection *coll, Relation rel, AclMode mode);

/* ------------------------------------------------------------------------
 * Row-level security (rls.c)
 * ------------------------------------------------------------------------ */

typedef enum DsRlsCheck
{
	DS_RLS_SELECT,				/* SELECT USING on a stored row */
	DS_RLS_UPDATE_OLD,			/* UPDATE USING and SELECT USING on a stored row */
	DS_RLS_UPDATE_NEW,			/* UPDATE WITH CHECK and SELECT USING on a new row */
	DS_RLS_DELETE_OLD,			/* DELETE USING and SELECT USING on a stored row */
	DS_RLS_INSERT_NEW			/* INSERT WITH CHECK on a new row */
} DsRlsCheck;

extern void ds_rls_init(void);
extern bool ds_rls_active(Relation rel);
extern bool ds_rls_passes(Relation rel, DsRlsCheck check, TupleTableSlot *slot);
extern Jsonb *ds_rls_row_images(DsRelInfo *ri, TupleTableSlot *oldslot, TupleTableSlot *newslot);

/* ------------------------------------------------------------------------
 * Conversion (convert.c)
 * ------------------------------------------------------------------------ */

extern Datum ds_json_to_datum(DsColumn *col, JsonbValue *v, bool *isnull);
extern Jsonb *ds_row_to_jsonb(DsRelInfo *ri, TupleTableSlot *slot);
extern void ds_datum_to_jsonbvalue(DsColumn *col, Datum d, JsonbValue *jv);
extern bool ds_renders_exactly(DsColumn *col, JsonbValue *v, Datum d, bool isnull,
							   JsonbValue *canonical);
extern bool ds_stored_extra_member(DsRelInfo *ri, TupleTableSlot *slot,
								   const char *name, int len, JsonbValue *out);
extern Jsonb *ds_slot_value(DsRelInfo *ri, DsCollection *coll, TupleTableSlot *slot);
extern char *ds_jsonb_value_text(JsonbValue *v, int *len);
extern bool ds_jsonb_value_equals(JsonbValue *a, Jsonb *b);

/* ------------------------------------------------------------------------
 * Change log (changelog.c)
 * ------------------------------------------------------------------------ */

typedef struct DsStreamState
{
	ItemPointerData tid;		/* the row version (locked if exclusive) */
	int32		id;
	bool		exclusive;		/* the batch has the whole stream to itself */
	int64		tail;
	int64		stable;			/* every batch at or below it had ended */
	int64		retained_from;
	char	   *source_offset;	/* NULL if none */
	bool		in_snapshot;
	bool		was_in_snapshot;	/* as stored in the row */
} DsStreamState;

/* durable_state.concurrent_writes, durable_state.max_key_locks (inflight.c) */
extern bool ds_concurrent_writes;
extern int	ds_max_key_locks;

extern bool ds_stream_open(const char *name, DsStreamState *st, bool exclusive);
extern bool ds_stream_concurrent(int32 stream_id);
extern int64 ds_log_assign(DsStreamState *st, int n);
extern void ds_log_release(DsStreamState *st);
extern void ds_stream_update(DsStreamState *st, const char *source_offset);
extern char *ds_format_offset(int64 seq);

/* A batch's events for state.log, written once it has its offsets. */
typedef struct DsLogWriter
{
	Relation	rel;			/* state.log */
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	EState	   *estate;
	int32		stream_id;
	AttrNumber	imgatt;			/* state.log.images, or 0 (0.2.0 catalog) */
	AttrNumber	stableatt;		/* state.log.stable_seq, or 0 (before 0.5.0) */
	MemoryContext cxt;			/* the images, for the batch */
	MemoryContext segcxt;		/* a segment's arrays, reset per row */
	DsEvent   **events;			/* the batch's events */
	Jsonb	  **images;			/* their row images, or NULL */
	int			n;
} DsLogWriter;

extern void ds_log_writer_open(DsLogWriter *w, EState *estate, Relation rel, Index rti,
							   int32 stream_id, int capacity);
extern void ds_log_writer_append(DsLogWriter *w, DsEvent *ev, Jsonb *img);
extern void ds_log_writer_write(DsLogWriter *w, int64 first, int64 stable);

/* ------------------------------------------------------------------------
 * Writers side by side: their locks, the batches in flight (inflight.c)
 * ------------------------------------------------------------------------ */

extern void ds_inflight_init(void);
extern void ds_stream_lock_acquire(int32 stream_id, LOCKMODE mode);
extern void ds_stream_lock_release(int32 stream_id, LOCKMODE mode);
extern int64 ds_append_begin(int32 stream_id, Oid logrelid);
extern void ds_append_end(int32 stream_id, Oid logrelid, int64 tail);
extern uint32 ds_key_lock_hash(const char *type, int type_len, const char *key, int key_len);
extern void ds_lock_keys(int32 stream_id, uint32 *hashes, int n);
extern bool ds_flights_available(void);
extern bool ds_flight_room(int32 stream_id);
extern int64 ds_flight_begin(int32 stream_id, int64 first, bool register_it);
extern TransactionId ds_flight_xid(int32 stream_id);

/* ------------------------------------------------------------------------
 * The stable offset (stable.c)
 * ------------------------------------------------------------------------ */

/* Reading a stream's log in offset order, stopping where readers must. */
typedef struct DsLogReader
{
	int32		stream_id;
	Snapshot	snap;
	Relation	rel;
	Relation	idx;
	IndexScanDesc scan;
	TupleTableSlot *slot;		/* the current row */
	IndexScanDesc gapscan;		/* rows the snapshot does not see */
	TupleTableSlot *gapslot;
	int64		first;			/* the current row's offsets */
	int64		last;
	int64		next;			/* the offset after the last row read */
	bool		blocked;		/* stopped before rows snap cannot see yet */
	TransactionId blocker;		/* their transaction */
} DsLogReader;

extern void ds_stable_init(void);
extern void ds_log_reader_begin(DsLogReader *r, int32 stream_id, int64 since, Snapshot snap);
extern bool ds_log_reader_next(DsLogReader *r);
extern void ds_log_reader_end(DsLogReader *r);
extern int64 ds_log_newest(int32 stream_id, Snapshot snap, int64 *first, int64 *stable);
extern int64 ds_log_cap(int32 stream_id, int64 since, int64 max_events, Snapshot snap);
extern int64 ds_stable_tail(int32 stream_id, Snapshot snap, int64 *newest,
							TransactionId *blocker);
extern bool ds_snapshot_offset(int32 stream_id, Snapshot snap, bool noerror, int64 *tail);
extern void ds_snapshot_wait(int32 stream_id, bool barrier);

/* ------------------------------------------------------------------------
 * Apply (apply.c)
 * ------------------------------------------------------------------------ */

extern bool ds_batch_in_progress(void);
extern void ds_apply_batch(const char *stream_name, const char *source_offset,
						   JsonbValue *elems, DsEvent *parsed, int n, int *lines,
						   int index_base, int64 *applied, int64 *skipped, int64 *tail);

/* entities (reads.c), for state.put (kv.c) */
extern Jsonb *ds_entity_get(const char *stream, text *type, text *key, int64 *version);

/* SQL functions other files call directly (kv.c) */
extern Datum ds_lock_key(PG_FUNCTION_ARGS);
extern Datum ds_ttl_set(PG_FUNCTION_ARGS);

/* ------------------------------------------------------------------------
 * Counters (shared.c), notifications (notify.c), TTLs (ttl.c), the
 * background worker (worker.c).  The shared-memory structures themselves
 * are in shmem.h, for the files that use them.
 * ------------------------------------------------------------------------ */

typedef enum DsCounter
{
	DS_CNT_EVENTS_APPLIED,
	DS_CNT_BATCHES_APPLIED,
	DS_CNT_EVENTS_REJECTED,
	DS_CNT_NOTIFICATIONS_SENT,
	DS_CNT_NOTICES_HANDED,
	DS_CNT_MESSAGES_PUBLISHED,
	DS_CNT_TXIDS_COMMITTED,
	DS_NCOUNTERS
} DsCounter;

extern void ds_shared_init(void);
extern void ds_count(DsCounter c, uint64 n);
extern uint64 ds_txid_hash(const char *txid, int len);

extern void ds_notify_init(void);
extern void ds_note_batch(int32 stream_id, const char *stream, int64 from, int64 to,
						  DsEvent *events, int nevents);

extern char **ds_ttl_expired_keys(DsCollection *coll, int *n);
extern bool ds_ttl_is_expired(char **keys, int n, const char *key, int len);
extern void ds_ttl_after_batch(DsCollection *coll, Datum *keys, bool *deleted, int nkeys);

extern void ds_worker_init(void);
extern void ds_launcher_init(void);
extern void ds_launcher_register(bool start);
extern int64 ds_wait_for_stream(int32 stream_id, int wait_ms, int64 (*read) (void *), void *arg);
extern void ds_replay_watcher_register(void);
extern PGDLLEXPORT void ds_replay_watcher_main(Datum arg);
extern char *ds_worker_database;
extern int	ds_worker_naptime;
extern PGDLLEXPORT void ds_launcher_main(Datum arg);
extern PGDLLEXPORT void ds_worker_main(Datum arg);

#endif							/* DURABLE_STATE_H */
