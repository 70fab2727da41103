/*
 * durable_state.h
 *		Shared declarations of the durable_state extension.
 *
 * The extension is split by responsibility:
 *	 init.c		 module load, GUCs
 *	 event.c	 protocol event parsing and validation
 *	 catalog.c	 collection catalog, its backend cache and relation metadata
 *	 convert.c	 JSON value <-> column datum conversion
 *	 changelog.c stream row locking, offsets, log appends
 *	 apply.c	 the apply engine (state.apply, state.apply_text)
 *	 reads.c	 state.get, state.get_many, state.get_type
 *	 rls.c		 row-level security through the apply and read paths
 *	 shared.c	 shared memory: counters, txid ring, worker hand-over
 *	 notify.c	 notifications after commit, state.publish
 *	 txid.c	 state.await_txid, state.txid_status
 *	 worker.c	 the background worker
 */
#ifndef DURABLE_STATE_H
#define DURABLE_STATE_H

#include "postgres.h"

#include "datatype/timestamp.h"

#include "access/relscan.h"
#include "access/xlogdefs.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "nodes/primnodes.h"
#include "storage/lockdefs.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

/* GUCs (init.c) */
extern int	ds_max_event_bytes;
extern int	ds_max_batch_events;
extern int	ds_bulk_probe_min_keys;
extern int	ds_bulk_probe_keys_per_block;

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

struct DsCollState;

/*
 * One parsed event.  Strings point into the event's jsonb and are not
 * NUL-terminated; the jsonb outlives the batch.
 */
typedef struct DsEvent
{
	JsonbContainer *root;		/* the event object */
	uint32		root_len;		/* its size in bytes */
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
	struct DsCollState *coll;	/* resolved collection (apply.c) */
	struct DsKeyState *ks;		/* bulk probe state of its key (apply.c) */
} DsEvent;

extern void ds_parse_event(JsonbValue *v, int index, DsEvent *ev);
extern Jsonb *ds_event_datum(DsEvent *ev);
extern const char *ds_op_name(DsOperation op);
extern const char *ds_json_kind(JsonbValue *v);
extern char *ds_shorten(const char *s, int len);
extern bool ds_valid_rfc3339(const char *s, int len);
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
	Oid			log;
	Oid			txids;
	Oid			expiry;
	AttrNumber	streams_att_id;
	AttrNumber	streams_att_tail;
	AttrNumber	streams_att_retained_from;
	AttrNumber	streams_att_source_offset;
	AttrNumber	streams_att_in_snapshot;
	AttrNumber	streams_att_updated_at;
} DsCatalogOids;

extern const DsCatalogOids *ds_catalog_oids(void);
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
	Expr	  **defaults;		/* column default expressions, by attnum - 1 */
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
extern Datum ds_changes_filtered(PG_FUNCTION_ARGS);

/* ------------------------------------------------------------------------
 * Conversion (convert.c)
 * ------------------------------------------------------------------------ */

extern Datum ds_json_to_datum(DsColumn *col, JsonbValue *v, bool *isnull);
extern Jsonb *ds_row_to_jsonb(DsRelInfo *ri, TupleTableSlot *slot);
extern void ds_datum_to_jsonbvalue(DsColumn *col, Datum d, JsonbValue *jv);
extern bool ds_renders_exactly(DsColumn *col, JsonbValue *v, Datum d, bool isnull,
							   JsonbValue *canonical);
extern bool ds_scalar_equals(JsonbValue *a, JsonbValue *b);
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
	ItemPointerData tid;		/* the locked row version */
	int32		id;
	int64		tail;
	int64		retained_from;
	char	   *source_offset;	/* NULL if none */
	bool		in_snapshot;
	bool		was_in_snapshot;	/* as stored in the row */
} DsStreamState;

extern bool ds_stream_lock(const char *name, DsStreamState *st);
extern void ds_stream_update(DsStreamState *st, const char *source_offset);
extern void ds_stream_set_tail(int32 stream_id, int64 tail);
extern void ds_forget_tails(void);
extern void ds_changelog_init(void);
extern char *ds_format_offset(int64 seq);

/* ------------------------------------------------------------------------
 * Apply (apply.c) and reads (reads.c)
 * ------------------------------------------------------------------------ */

extern bool ds_batch_in_progress(void);
extern Datum ds_apply(PG_FUNCTION_ARGS);
extern Datum ds_apply_text(PG_FUNCTION_ARGS);
extern Datum ds_get(PG_FUNCTION_ARGS);
extern Datum ds_get_many(PG_FUNCTION_ARGS);
extern Datum ds_get_type(PG_FUNCTION_ARGS);
extern Datum ds_catalog_changed(PG_FUNCTION_ARGS);

/* ------------------------------------------------------------------------
 * Shared memory (shared.c), notifications (notify.c), txids (txid.c),
 * the background worker (worker.c)
 * ------------------------------------------------------------------------ */

#define DS_TXID_RING 16384		/* recently committed txids kept in memory */
#define DS_NOTIFY_SLOTS 64		/* streams with notifications for the worker */
#define DS_NOTIFY_LIST 8		/* types / txids named per notification */
#define DS_NOTIFY_ITEM 64		/* longest type or txid named (bytes + 1) */
#define DS_STREAM_NAME_MAX 256	/* longest stream name the worker notifies for */

typedef enum DsNotifyMode
{
	DS_NOTIFY_OFF,
	DS_NOTIFY_COMMIT,
	DS_NOTIFY_WORKER
} DsNotifyMode;

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

/* What one notification says about one stream. */
typedef struct DsNotice
{
	int64		from;
	int64		to;
	int64		count;
	int			ntypes;
	int			ntxids;
	bool		more_types;
	bool		more_txids;
	char		types[DS_NOTIFY_LIST][DS_NOTIFY_ITEM];
	char		txids[DS_NOTIFY_LIST][DS_NOTIFY_ITEM];
} DsNotice;

typedef struct DsNotifySlot
{
	Oid			dbid;
	int32		stream_id;
	int			reserved;		/* transactions between pre-commit and end */
	bool		pending;		/* notice has something to send */
	char		stream[DS_STREAM_NAME_MAX];
	DsNotice	notice;
} DsNotifySlot;

typedef struct DsTxidEntry
{
	uint64		hash;
	Oid			dbid;
	XLogRecPtr	lsn;			/* end of the commit record */
} DsTxidEntry;

typedef struct DsShared
{
	LWLock	   *lock;
	ConditionVariable cv;		/* txid committed, or a watermark moved */
	pg_atomic_uint32 waiters;
	pg_atomic_uint64 counters[DS_NCOUNTERS];
	/* the worker (under lock) */
	pid_t		worker_pid;
	Oid			worker_dbid;
	struct Latch *worker_latch;
	TimestampTz worker_started_at;
	TimestampTz worker_last_loop_at;
	int32		worker_starts;
	XLogRecPtr	startup_lsn;	/* WAL insert position when it started */
	XLogRecPtr	flushed_lsn;	/* watermarks it last published */
	XLogRecPtr	replicated_lsn;
	int			standbys;		/* standbys that count for it (standbys.c) */
	/* txids (under lock) */
	uint64		ring_next;
	XLogRecPtr	evicted_max_lsn;
	DsTxidEntry ring[DS_TXID_RING];
	DsNotifySlot slots[DS_NOTIFY_SLOTS];
} DsShared;

extern DsShared *ds_shared;		/* NULL unless preloaded */
extern int	ds_notify_mode;
extern char *ds_worker_database;
extern int	ds_txid_retention;
extern int	ds_worker_naptime;
extern int	ds_notify_coalesce;
extern int	ds_maintenance_interval;

extern void ds_shared_init(void);
extern void ds_count(DsCounter c, uint64 n);
extern uint64 ds_txid_hash(const char *txid, int len);
extern void ds_wake_worker(void);
extern bool ds_worker_serves_this_database(void);
extern void ds_publish_txids(uint64 *hashes, int n, XLogRecPtr lsn);
extern bool ds_ring_lookup(uint64 hash, uint64 since, XLogRecPtr *lsn, uint64 *next);
extern XLogRecPtr ds_forgotten_lsn_bound(void);
extern void ds_notice_add_type(DsNotice *n, const char *s, int len);
extern void ds_notice_add_txid(DsNotice *n, const char *s, int len);
extern void ds_notice_merge(DsNotice *dst, const DsNotice *src);
extern int	ds_slot_reserve(int32 stream_id, const char *stream);
extern void ds_slot_fill(int slot, const DsNotice *notice);
extern void ds_slot_release(int slot);
extern int	ds_slots_take(DsNotice *out, char (*names)[DS_STREAM_NAME_MAX], int max);

extern void ds_notify_init(void);
extern void ds_note_batch(int32 stream_id, const char *stream, int64 from, int64 to,
						  DsEvent *events, int nevents);
extern char *ds_channel_name(const char *stream);
extern char *ds_notice_payload(const char *stream, const DsNotice *n);

extern char **ds_ttl_expired_keys(DsCollection *coll, int *n);
extern bool ds_ttl_is_expired(char **keys, int n, const char *key, int len);
extern SPIPlanPtr ds_keep_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes);
extern void ds_ttl_after_batch(DsCollection *coll, Datum *keys, bool *deleted, int nkeys);

extern void ds_worker_register(void);
extern PGDLLEXPORT void ds_worker_main(Datum arg);

#endif							/* DURABLE_STATE_H */
