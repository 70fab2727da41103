/*
 * shmem.h
 *		The extension's shared memory (shared.c), for the files that use it:
 *		notify.c hands notifications to the worker through its slots, txid.c
 *		and notify.c use the txid ring and the watermarks, worker.c publishes
 *		them.  Every structure is of fixed size: nothing in it grows with
 *		the data.
 */
#ifndef DS_SHMEM_H
#define DS_SHMEM_H

#include "access/transam.h"
#include "access/xlogdefs.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"

#include "durable_state.h"

#define DS_TXID_RING 16384		/* recently committed txids kept in memory */
#define DS_NOTIFY_SLOTS 64		/* streams with notifications for the worker */
#define DS_NOTIFY_LIST 8		/* types / txids named per notification */
#define DS_NOTIFY_ITEM 64		/* longest type or txid named (bytes + 1) */
#define DS_STREAM_NAME_MAX 256	/* longest stream name the worker notifies for */
#define DS_DB_WORKERS 32		/* databases served at once */
#define DS_STREAM_CVS 64		/* condition variables waiting readers share */

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
	FullTransactionId xid;		/* the transaction that committed it */
} DsTxidEntry;

/* What serves one database (launcher.c). */
typedef enum DsDbWorkerState
{
	DS_DBW_FREE = 0,			/* to be started when allowed */
	DS_DBW_STARTING,			/* registered, not attached yet */
	DS_DBW_RUNNING,
	DS_DBW_IDLE,				/* no extension there: until CREATE EXTENSION */
	DS_DBW_BLOCKED,				/* being dropped: not restarted */
	DS_DBW_NOSLOT				/* no background worker slot: retried later */
} DsDbWorkerState;

typedef struct DsDbWorker
{
	Oid			dbid;			/* InvalidOid: a free entry */
	DsDbWorkerState state;
	pid_t		pid;
	struct Latch *latch;
	TimestampTz since;			/* of the state */
	TimestampTz started_at;
	TimestampTz last_loop_at;
	int32		starts;
} DsDbWorker;

typedef struct DsShared
{
	LWLock	   *lock;
	ConditionVariable cv;		/* txid committed, or a watermark moved */
	/* waiting reads (waitread.c): a stream's batch ended, or replay moved */
	ConditionVariable stream_cv[DS_STREAM_CVS];
	pg_atomic_uint32 stream_waiters;
	struct Latch *replay_latch;	/* the replay watcher, on a standby */
	pg_atomic_uint32 waiters;
	pg_atomic_uint64 counters[DS_NCOUNTERS];
	pg_atomic_uint64 txid_gen;	/* bucket << 32 | txids written in it */
	/* the launcher and the databases' workers (under lock, launcher.c) */
	pid_t		launcher_pid;
	struct Latch *launcher_latch;
	bool		launcher_rescan;	/* a database wants a worker now */
	DsDbWorker	dbw[DS_DB_WORKERS];
	XLogRecPtr	startup_lsn;	/* WAL insert position when it started */
	XLogRecPtr	flushed_lsn;	/* watermarks it last published */
	XLogRecPtr	replicated_lsn;
	int			standbys;		/* standbys that count for it (standbys.c) */
	/* txids (under lock) */
	uint64		ring_next;
	XLogRecPtr	evicted_max_lsn;
	XLogRecPtr	published_max_lsn;	/* newest commit published to the ring */
	DsTxidEntry ring[DS_TXID_RING];
	DsNotifySlot slots[DS_NOTIFY_SLOTS];
} DsShared;

extern DsShared *ds_shared;		/* NULL unless preloaded */

extern void ds_wake_launcher(void);
extern DsDbWorker *ds_dbw_find(Oid dbid, bool create);

/* waitread.c: readers waiting for a stream's next events */
extern void ds_wake_stream_readers(int32 stream_id);

/* launcher.c: the launcher starts a worker per database (worker.c) */
extern bool ds_dbw_attach(Oid dbid);
extern void ds_dbw_detach(DsDbWorkerState state);
extern void ds_dbw_loop_done(TimestampTz now);
extern bool ds_database_allowed(const char *dbname);
extern void ds_publish_txids(uint64 *hashes, int n, XLogRecPtr lsn, FullTransactionId xid);
extern bool ds_ring_lookup(uint64 hash, uint64 since, XLogRecPtr *lsn,
						   FullTransactionId *xid, uint64 *next);
extern uint64 ds_ring_position(void);
extern void ds_txid_unregister(void);
extern int	ds_txids_unpublished(FullTransactionId *out, XLogRecPtr *published,
								 XLogRecPtr *started);
extern XLogRecPtr ds_forgotten_lsn_bound(void);

/* horizon.c: which transactions' txids are replicated, for good */
extern void ds_horizon_shmem_init(void);
extern bool ds_horizon_covers(FullTransactionId xid);
extern bool ds_horizon_advance(XLogRecPtr replicated);
extern bool ds_horizon_behind(void);

extern XLogRecPtr ds_horizon_lsn(void);
extern void ds_notice_add_type(DsNotice *n, const char *s, int len);
extern void ds_notice_add_txid(DsNotice *n, const char *s, int len);
extern void ds_notice_merge(DsNotice *dst, const DsNotice *src);
extern int	ds_slot_reserve(int32 stream_id, const char *stream);
extern void ds_slot_fill(int slot, const DsNotice *notice);
extern void ds_slot_release(int slot);
extern int	ds_slots_take(DsNotice *out, char (*names)[DS_STREAM_NAME_MAX], int max);

/* notify.c: what the worker sends for the notices it takes */
extern char *ds_channel_name(const char *stream);
extern char *ds_notice_payload(const char *stream, const DsNotice *n);

#endif							/* DS_SHMEM_H */
