/*
 * inflight.c
 *		What writers of a stream hold while they run side by side: the
 *		stream's, keys' and append locks, and the batches in flight.
 *
 * The stream's and the keys' locks are heavyweight locks, held to commit
 * unless said otherwise, shown in pg_locks as advisory locks of the
 * database whose objsubid says which: 25715 the stream (ROW EXCLUSIVE for
 * ordinary batches, EXCLUSIVE for what needs the whole stream, SHARE for a
 * snapshot's barrier), 25717 a key (objid is the hash of its type and
 * key).  The append lock, held while a batch gets its offsets and writes
 * its log rows, is one of a few LWLocks in shared memory.  changelog.c
 * says who takes which.
 *
 * The flights are the batches whose offsets are handed out and whose
 * transaction has not ended, one small array per backend in shared memory
 * (with the preload only): a batch records below which offset every other
 * batch had ended (stable.c reads that back), and a snapshot waits for
 * them.
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "durable_state.h"
#include "compat.h"

/* the kinds of the extension's heavyweight locks (LOCKTAG field4) */
#define DS_LOCK_STREAM 25715
#define DS_LOCK_KEY 25717

/* ------------------------------------------------------------------------
 * Locks
 * ------------------------------------------------------------------------ */

bool		ds_concurrent_writes = true;
int			ds_max_key_locks = 64;

/* Registers the settings of writers side by side. */
static void
inflight_gucs(void)
{
	DefineCustomBoolVariable("durable_state.concurrent_writes",
							 "Lets batches of one stream run side by side (with the preload).",
							 "Off: every batch locks its whole stream until it commits, and offsets are in commit order.",
							 &ds_concurrent_writes,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("durable_state.max_key_locks",
							"Most distinct keys a batch locks one by one; a batch with more locks its whole stream.",
							"Each key lock is an entry of the shared lock table (see max_locks_per_transaction).",
							&ds_max_key_locks,
							64, 0, 100000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
}

static void
ds_lock_tag(LOCKTAG *tag, int32 stream_id, uint32 sub, uint16 kind)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) stream_id, sub, kind);
}

/* Takes stream stream_id's lock in mode (held to commit unless released). */
void
ds_stream_lock_acquire(int32 stream_id, LOCKMODE mode)
{
	LOCKTAG		tag;

	ds_lock_tag(&tag, stream_id, 0, DS_LOCK_STREAM);
	(void) LockAcquire(&tag, mode, false, false);
}

/* Releases stream stream_id's lock in mode before the transaction ends. */
void
ds_stream_lock_release(int32 stream_id, LOCKMODE mode)
{
	LOCKTAG		tag;

	ds_lock_tag(&tag, stream_id, 0, DS_LOCK_STREAM);
	LockRelease(&tag, mode, false);
}

/* The hash a key lock is taken on: of the type and the key. */
uint32
ds_key_lock_hash(const char *type, int type_len, const char *key, int key_len)
{
	return hash_combine(hash_bytes((const unsigned char *) type, type_len),
						hash_bytes((const unsigned char *) key, key_len));
}

/*
 * Locks the n keys (hashes, sorted in place) of stream stream_id, each
 * once, in hash order, so that two batches never wait for each other in a
 * cycle.  Held to commit.
 */
void
ds_lock_keys(int32 stream_id, uint32 *hashes, int n)
{
	qsort(hashes, n, sizeof(uint32), ds_cmp_uint32);
	for (int i = 0; i < n; i++)
	{
		LOCKTAG		tag;

		if (i > 0 && hashes[i] == hashes[i - 1])
			continue;
		ds_lock_tag(&tag, stream_id, hashes[i], DS_LOCK_KEY);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	}
}

/* ------------------------------------------------------------------------
 * Flights: the batches whose offsets are assigned and whose transaction
 * has not ended, per backend.
 * ------------------------------------------------------------------------ */

#define DS_FLIGHTS 8			/* streams one transaction writes side by side */

typedef struct DsFlight
{
	Oid			dbid;
	int32		stream_id;
	int64		first;			/* its first offset in the stream */
	TransactionId xid;			/* its top-level transaction */
} DsFlight;

typedef struct DsFlightSlot
{
	int			n;
	DsFlight	f[DS_FLIGHTS];
} DsFlightSlot;

/*
 * The append locks: a partition of them per stream (by hash), each keeping
 * the tails of a few streams it saw last, so that a batch need not read
 * the tail from the log.  LWLocks, not heavyweight locks: held a few
 * microseconds by a running backend, they must not be granted to a waiter
 * that is not yet running (a convoy when backends outnumber cores).
 */
#define DS_APPEND_PARTITIONS 64
#define DS_TAILS_PER_PARTITION 8

typedef struct DsTail
{
	Oid			dbid;
	Oid			logrelid;		/* state.log: a new one after DROP EXTENSION */
	int32		stream_id;
	int64		tail;			/* the last offset handed out */
	uint64		used;			/* for replacing the least recently used */
} DsTail;

typedef struct DsFlights
{
	LWLock	   *lock;
	LWLockPadded *append;		/* DS_APPEND_PARTITIONS of them */
	pg_atomic_uint64 clock;		/* for the tails' last use */
	DsTail		tails[DS_APPEND_PARTITIONS][DS_TAILS_PER_PARTITION];
	int			nslots;
	DsFlightSlot slots[FLEXIBLE_ARRAY_MEMBER];
} DsFlights;

static DsFlights *flights = NULL;
static int	my_nflights = 0;	/* this backend's entries, without the lock */

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* One slot per backend (MaxBackends counts bgworkers and autovacuum too). */
static Size
flights_shmem_size(void)
{
	return MAXALIGN(add_size(offsetof(DsFlights, slots),
							 mul_size(MaxBackends, sizeof(DsFlightSlot))));
}

/* shmem_request_hook: asks for the flights and their LWLock. */
static void
flights_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(flights_shmem_size());
	RequestNamedLWLockTranche("durable_state flights", 1);
	RequestNamedLWLockTranche("durable_state append", DS_APPEND_PARTITIONS);
}

/* shmem_startup_hook: attaches the flights, empty in the first process. */
static void
flights_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	flights = ShmemInitStruct("durable_state flights", flights_shmem_size(), &found);
	if (!found)
	{
		memset(flights, 0, flights_shmem_size());
		flights->nslots = MaxBackends;
		pg_atomic_init_u64(&flights->clock, 0);
		flights->lock = &(GetNamedLWLockTranche("durable_state flights"))->lock;
		flights->append = GetNamedLWLockTranche("durable_state append");
	}
	LWLockRelease(AddinShmemInitLock);
}

/* This backend's slot, or NULL (not preloaded, or not a regular backend). */
static DsFlightSlot *
my_slot(void)
{
	int			i = ds_my_proc_number();

	if (flights == NULL || i < 0 || i >= flights->nslots)
		return NULL;
	return &flights->slots[i];
}

/* Whether flight f is of stream stream_id of this database. */
static inline bool
flight_of(const DsFlight *f, int32 stream_id)
{
	return f->stream_id == stream_id && f->dbid == MyDatabaseId;
}

/* Forgets this backend's flights: its transaction ended (and is visible). */
static void
flights_clear(void)
{
	DsFlightSlot *slot = my_slot();

	if (my_nflights == 0 || slot == NULL)
		return;
	LWLockAcquire(flights->lock, LW_EXCLUSIVE);
	slot->n = 0;
	LWLockRelease(flights->lock);
	my_nflights = 0;
}

/*
 * Transaction callback: a transaction's flights end when it commits,
 * which calls back after the commit is visible to every new snapshot, or
 * when it aborts.  (PREPARE of a transaction that applied events is
 * refused, notify.c.)
 */
static void
flights_xact(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
		flights_clear();
}

/* Backend exit: never leave a flight behind. */
static void
flights_exit(int code, Datum arg)
{
	flights_clear();
}

/* Registers the flights' callbacks; with the preload, their shared memory. */
void
ds_inflight_init(void)
{
	inflight_gucs();
	RegisterXactCallback(flights_xact, NULL);
	if (process_shared_preload_libraries_in_progress)
	{
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = flights_shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = flights_shmem_startup;
	}
}

/*
 * Whether a batch of this transaction may write stream stream_id side by
 * side with others: the flights exist and this backend's slot has room for
 * the stream (or already lists it).  Only this backend changes its slot, so
 * the answer holds until the transaction ends.
 */
bool
ds_flight_room(int32 stream_id)
{
	DsFlightSlot *slot = my_slot();

	if (slot == NULL)
		return false;
	if (my_nflights < DS_FLIGHTS)
		return true;
	for (int i = 0; i < my_nflights; i++)
		if (flight_of(&slot->f[i], stream_id))
			return true;
	return false;
}

/*
 * A batch of stream stream_id takes offsets from first on; the caller
 * holds the stream's append lock.  Returns the stream's stable offset as
 * of now: the offset below the first of every other backend's flight in
 * the stream (every batch at or below it has ended), or first - 1.  With
 * register, lists the batch as a flight of this backend until its
 * transaction ends (one flight per stream, from the lowest offset any of
 * the transaction's batches got).
 */
int64
ds_flight_begin(int32 stream_id, int64 first, bool register_it)
{
	DsFlightSlot *mine = my_slot();
	int64		stable = first - 1;

	if (flights == NULL)
		return stable;
	LWLockAcquire(flights->lock, register_it ? LW_EXCLUSIVE : LW_SHARED);
	for (int s = 0; s < flights->nslots; s++)
	{
		DsFlightSlot *slot = &flights->slots[s];

		if (slot == mine)
			continue;
		for (int i = 0; i < slot->n; i++)
			if (flight_of(&slot->f[i], stream_id))
				stable = Min(stable, slot->f[i].first - 1);
	}
	if (register_it && mine != NULL)
	{
		bool		listed = false;

		/*
		 * A later batch of the transaction may get lower offsets than an
		 * earlier one (whose rows a rolled-back savepoint took, and whose
		 * offsets were handed out again): the flight starts at the lowest.
		 */
		for (int i = 0; i < mine->n; i++)
			if (flight_of(&mine->f[i], stream_id))
			{
				mine->f[i].first = Min(mine->f[i].first, first);
				listed = true;
			}
		if (!listed)
		{
			Assert(mine->n < DS_FLIGHTS);
			mine->f[mine->n].dbid = MyDatabaseId;
			mine->f[mine->n].stream_id = stream_id;
			mine->f[mine->n].first = first;
			mine->f[mine->n].xid = GetTopTransactionId();
			mine->n++;
			my_nflights = mine->n;
		}
	}
	LWLockRelease(flights->lock);
	if (my_nflights > 0)
	{
		static bool exit_registered = false;

		if (!exit_registered)
			on_shmem_exit(flights_exit, (Datum) 0);
		exit_registered = true;
	}
	return stable;
}

/*
 * The transaction of another backend's flight in stream stream_id, or
 * InvalidTransactionId if it has none: what a snapshot that must see no
 * batch in flight waits for.
 */
TransactionId
ds_flight_xid(int32 stream_id)
{
	DsFlightSlot *mine = my_slot();
	TransactionId xid = InvalidTransactionId;

	if (flights == NULL)
		return xid;
	LWLockAcquire(flights->lock, LW_SHARED);
	for (int s = 0; s < flights->nslots && !TransactionIdIsValid(xid); s++)
	{
		DsFlightSlot *slot = &flights->slots[s];

		if (slot == mine)
			continue;
		for (int i = 0; i < slot->n; i++)
			if (flight_of(&slot->f[i], stream_id))
				xid = slot->f[i].xid;
	}
	LWLockRelease(flights->lock);
	return xid;
}

/* Whether the extension can let writers of one stream run side by side. */
bool
ds_flights_available(void)
{
	return flights != NULL;
}


/* ------------------------------------------------------------------------
 * Append locks and the tails they keep
 * ------------------------------------------------------------------------ */

/* Whether t remembers the tail of stream stream_id of this database. */
static inline bool
tail_of(const DsTail *t, int32 stream_id, Oid logrelid)
{
	return t->stream_id == stream_id && t->dbid == MyDatabaseId && t->logrelid == logrelid;
}

static int
append_partition(int32 stream_id)
{
	uint32		h = hash_combine(hash_bytes_uint32(MyDatabaseId), hash_bytes_uint32((uint32) stream_id));

	return h % DS_APPEND_PARTITIONS;
}

/*
 * Takes stream stream_id's append lock (exclusively: one batch of the
 * stream gets offsets and writes its log rows at a time) and returns the
 * last offset handed out in the stream that it remembers, or -1 if it does
 * not remember one (the caller reads the log).  Does nothing and returns
 * -1 without the preload.  An error releases it (LWLockReleaseAll).
 */
int64
ds_append_begin(int32 stream_id, Oid logrelid)
{
	int			p = append_partition(stream_id);

	if (flights == NULL)
		return -1;
	LWLockAcquire(&flights->append[p].lock, LW_EXCLUSIVE);
	for (int i = 0; i < DS_TAILS_PER_PARTITION; i++)
	{
		DsTail	   *t = &flights->tails[p][i];

		if (tail_of(t, stream_id, logrelid))
		{
			t->used = pg_atomic_fetch_add_u64(&flights->clock, 1);
			return t->tail;
		}
	}
	return -1;
}

/*
 * Remembers tail as the last offset handed out in stream stream_id and
 * releases its append lock.
 */
void
ds_append_end(int32 stream_id, Oid logrelid, int64 tail)
{
	int			p = append_partition(stream_id);
	DsTail	   *victim = NULL;

	if (flights == NULL)
		return;
	for (int i = 0; i < DS_TAILS_PER_PARTITION; i++)
	{
		DsTail	   *t = &flights->tails[p][i];

		if (tail_of(t, stream_id, logrelid))
		{
			victim = t;
			break;
		}
		if (victim == NULL || t->used < victim->used)
			victim = t;
	}
	victim->dbid = MyDatabaseId;
	victim->logrelid = logrelid;
	victim->stream_id = stream_id;
	victim->tail = tail;
	victim->used = pg_atomic_fetch_add_u64(&flights->clock, 1);
	LWLockRelease(&flights->append[p].lock);
}
