/*
 * shared.c
 *		Shared memory (with shared_preload_libraries only): counters, the
 *		background worker's state, the ring of recently committed txids,
 *		the notifications handed to the worker, and state._shared_stats()
 *		that shows them.
 *
 * Everything here is fixed-size: a ring of DS_TXID_RING txids (older ones
 * are looked up in state._txids) and DS_NOTIFY_SLOTS streams with pending
 * notifications (a transaction that finds no slot sends its own NOTIFY).
 */
#include "postgres.h"

#include "access/xlog.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"

#include "durable_state.h"
#include "compat.h"
#include "shmem.h"

DsShared   *ds_shared = NULL;

/*
 * Per backend, the transaction that wrote txids and has not published them
 * to the ring yet (under ds_shared->lock: a backend sets its own in shared
 * mode; publishing clears it, with the ring entries, in exclusive mode).
 */
static FullTransactionId *registered = NULL;
static FullTransactionId my_registered;	/* this backend's */

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* shmem_request_hook: asks for DsShared and its LWLock. */
static void
ds_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(DsShared)));
	RequestAddinShmemSpace(MAXALIGN(sizeof(FullTransactionId) * MaxBackends));
	RequestNamedLWLockTranche("durable_state", 1);
}

/*
 * shmem_startup_hook: attaches ds_shared, initializing it (all zero, no
 * worker, empty ring and slots) in the first process to get there.
 */
static void
ds_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ds_shared = ShmemInitStruct("durable_state", sizeof(DsShared), &found);
	if (!found)
	{
		memset(ds_shared, 0, sizeof(DsShared));
		ds_shared->lock = &(GetNamedLWLockTranche("durable_state"))->lock;
		ConditionVariableInit(&ds_shared->cv);
		for (int i = 0; i < DS_STREAM_CVS; i++)
			ConditionVariableInit(&ds_shared->stream_cv[i]);
		pg_atomic_init_u32(&ds_shared->stream_waiters, 0);
		pg_atomic_init_u32(&ds_shared->waiters, 0);
		pg_atomic_init_u64(&ds_shared->txid_gen, 0);
		for (int i = 0; i < DS_NCOUNTERS; i++)
			pg_atomic_init_u64(&ds_shared->counters[i], 0);
	}
	registered = ShmemInitStruct("durable_state txid registrations",
								 sizeof(FullTransactionId) * MaxBackends, &found);
	if (!found)
		memset(registered, 0, sizeof(FullTransactionId) * MaxBackends);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Installs the shared memory hooks; called from _PG_init only when the
 * library is preloaded.
 */
void
ds_shared_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ds_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ds_shmem_startup;
}

/* Adds n to shared counter c; does nothing without shared memory. */
void
ds_count(DsCounter c, uint64 n)
{
	if (ds_shared && n > 0)
		pg_atomic_fetch_add_u64(&ds_shared->counters[c], n);
}

/*
 * The 64-bit hash txid (len bytes) is known by in state._txids and the
 * shared ring.
 */
uint64
ds_txid_hash(const char *txid, int len)
{
	return hash_bytes_extended((const unsigned char *) txid, len, 0);
}

/* The 5-minute bucket of t: floor(unix epoch / 300) (state._txids.gen / 16). */
int32
ds_txid_bucket(TimestampTz t)
{
	int64		secs = t / USECS_PER_SEC +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;

	if (secs < 0)
		secs -= DS_TXID_BUCKET_SECS - 1;
	return (int32) (secs / DS_TXID_BUCKET_SECS);
}

/*
 * The state._txids.gen of n txids written at "at": its 5-minute bucket
 * times DS_TXID_SUBGENS, plus one more for every DS_TXID_SUBGEN_ROWS txids
 * the bucket already had (up to DS_TXID_SUBGENS - 1), so that the part of
 * the index that inserts go to stays small however fast txids come.
 * A batch of at least DS_TXID_FRESH_GEN_ROWS txids begins a new part
 * (while the bucket has parts left): its hashes, inserted in order, then
 * all go to the rightmost leaf of the index, which btree fills without
 * descending the tree for each (its fastpath), where inserts among an
 * older part's hashes would each descend to a leaf of their own.
 * Without shared memory, every txid of a bucket is in its first part.
 */
int32
ds_txid_gen(TimestampTz at, int n)
{
	uint64		bucket = (uint64) ds_txid_bucket(at);
	uint64		old,
				new;
	uint64		count = 0;

	if (ds_shared != NULL)
	{
		old = pg_atomic_read_u64(&ds_shared->txid_gen);
		for (;;)
		{
			/* a clock that went back writes in the newest bucket */
			if ((old >> 32) > bucket)
				bucket = old >> 32;
			count = (old >> 32) == bucket ? (old & 0xFFFFFFFF) : 0;
			/* many txids: a part of their own, begun at a part's start */
			if (n >= DS_TXID_FRESH_GEN_ROWS && count % DS_TXID_SUBGEN_ROWS != 0)
				count += DS_TXID_SUBGEN_ROWS - count % DS_TXID_SUBGEN_ROWS;
			new = (bucket << 32) | Min(count + n, 0xFFFFFFFF);
			if (pg_atomic_compare_exchange_u64(&ds_shared->txid_gen, &old, new))
				break;
		}
	}
	return (int32) (bucket * DS_TXID_SUBGENS +
					Min(count / DS_TXID_SUBGEN_ROWS, DS_TXID_SUBGENS - 1));
}

/*
 * This database's entry among the served databases, or NULL; with create,
 * a free entry is taken for it (NULL if there is none).  The caller holds
 * ds_shared->lock (exclusively to create).
 */
DsDbWorker *
ds_dbw_find(Oid dbid, bool create)
{
	DsDbWorker *free_entry = NULL;

	for (int i = 0; i < DS_DB_WORKERS; i++)
	{
		DsDbWorker *w = &ds_shared->dbw[i];

		if (w->dbid == dbid)
			return w;
		if (!OidIsValid(w->dbid) && free_entry == NULL)
			free_entry = w;
	}
	if (!create || free_entry == NULL)
		return NULL;
	memset(free_entry, 0, sizeof(DsDbWorker));
	free_entry->dbid = dbid;
	return free_entry;
}

/*
 * Sets the launcher's latch, if it runs: someone waits for a watermark,
 * or a database wants a worker.
 */
void
ds_wake_launcher(void)
{
	Latch	   *latch;

	if (ds_shared == NULL)
		return;
	latch = ds_shared->launcher_latch;
	if (latch)
		SetLatch(latch);
}

/*
 * The running worker of this database, or NULL.  The caller holds
 * ds_shared->lock.
 */
static DsDbWorker *
running_worker(void)
{
	DsDbWorker *w = ds_dbw_find(MyDatabaseId, false);

	return w != NULL && w->state == DS_DBW_RUNNING && w->pid != 0 ? w : NULL;
}

/*
 * Publishes the n txid hashes of a transaction of this database that just
 * committed, with lsn, the end of its commit record, and xid, its
 * transaction id (what decides "replicated", horizon.c), and wakes their
 * waiters.  Takes the shared lock exclusively; the oldest entries fall out
 * of the ring (their highest LSN is kept as evicted_max_lsn).  Does nothing
 * without shared memory.
 */
void
ds_publish_txids(uint64 *hashes, int n, XLogRecPtr lsn, FullTransactionId xid)
{
	if (ds_shared == NULL || n == 0)
		return;
	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
	{
		DsTxidEntry *e = &ds_shared->ring[ds_shared->ring_next % DS_TXID_RING];

		/* an entry falls out: its LSN bounds every forgotten txid's */
		if (ds_shared->ring_next >= DS_TXID_RING && e->lsn > ds_shared->evicted_max_lsn)
			ds_shared->evicted_max_lsn = e->lsn;
		e->hash = hashes[i];
		e->dbid = MyDatabaseId;
		e->lsn = lsn;
		e->xid = xid;
		ds_shared->ring_next++;
	}
	ds_shared->published_max_lsn = Max(ds_shared->published_max_lsn, lsn);
	/* published: a sample may count the transaction as ended now */
	if (registered && FullTransactionIdIsValid(my_registered))
		registered[ds_my_proc_number()] = InvalidFullTransactionId;
	my_registered = InvalidFullTransactionId;
	LWLockRelease(ds_shared->lock);
	if (pg_atomic_read_u32(&ds_shared->waiters) > 0)
		ConditionVariableBroadcast(&ds_shared->cv);
}

/*
 * Looks up the txid hashed as hash among this database's entries published
 * at or after ring position "since" (0: the whole ring).  If found, sets
 * *lsn to its commit LSN and *xid to its transaction and returns true; returns false otherwise.  Either
 * way *next is set to the current ring position, so that a waiter's next
 * look only reads what was published since.  Requires shared memory; takes
 * the shared lock in shared mode.
 */
bool
ds_ring_lookup(uint64 hash, uint64 since, XLogRecPtr *lsn, FullTransactionId *xid,
			   uint64 *next)
{
	bool		found = false;
	uint64		pos;
	uint64		stop;

	LWLockAcquire(ds_shared->lock, LW_SHARED);
	pos = ds_shared->ring_next;
	stop = pos > DS_TXID_RING ? pos - DS_TXID_RING : 0;
	stop = Max(stop, since);
	*next = pos;
	while (pos > stop)
	{
		DsTxidEntry *e = &ds_shared->ring[--pos % DS_TXID_RING];

		if (e->hash == hash && e->dbid == MyDatabaseId)
		{
			*lsn = e->lsn;
			*xid = e->xid;
			found = true;
			break;
		}
	}
	LWLockRelease(ds_shared->lock);
	return found;
}

/*
 * Registers this backend's transaction xid as one that wrote txids (from
 * the batch that writes them; once per transaction): until it publishes
 * them (ds_publish_txids) or ends (ds_txid_unregister), the horizon's
 * samples count it as not ended (horizon.c).
 */
void
ds_txid_register(FullTransactionId xid)
{
	if (registered == NULL || FullTransactionIdEquals(my_registered, xid))
		return;
	LWLockAcquire(ds_shared->lock, LW_SHARED);
	registered[ds_my_proc_number()] = xid;
	LWLockRelease(ds_shared->lock);
	my_registered = xid;
}

/*
 * The transaction ended without publishing txids (it aborted, or every
 * batch with txids was rolled back to a savepoint): clears its
 * registration.
 */
void
ds_txid_unregister(void)
{
	if (registered == NULL || !FullTransactionIdIsValid(my_registered))
		return;
	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	registered[ds_my_proc_number()] = InvalidFullTransactionId;
	LWLockRelease(ds_shared->lock);
	my_registered = InvalidFullTransactionId;
}

/*
 * Copies into out (room for MaxBackends) the transactions registered but
 * not published, and returns how many; sets *published to the newest
 * commit position published to the ring and *started to where the
 * launcher started (every commit before it ended by then).  All read at
 * once, under the lock publishing takes.
 */
int
ds_txids_unpublished(FullTransactionId *out, XLogRecPtr *published, XLogRecPtr *started)
{
	int			n = 0;

	LWLockAcquire(ds_shared->lock, LW_SHARED);
	for (int i = 0; i < MaxBackends; i++)
		if (FullTransactionIdIsValid(registered[i]))
			out[n++] = registered[i];
	*published = ds_shared->published_max_lsn;
	*started = ds_shared->startup_lsn;
	LWLockRelease(ds_shared->lock);
	return n;
}

/* How many txids were ever published to the ring (since the server started). */
uint64
ds_ring_position(void)
{
	uint64		pos;

	LWLockAcquire(ds_shared->lock, LW_SHARED);
	pos = ds_shared->ring_next;
	LWLockRelease(ds_shared->lock);
	return pos;
}

/*
 * An upper bound of the commit LSN of any committed txid the ring does not
 * have: it fell out of the ring, or committed before the worker started
 * (before a restart, say).  Before the worker has started, the current WAL
 * insert position.  Requires shared memory.
 */
XLogRecPtr
ds_forgotten_lsn_bound(void)
{
	XLogRecPtr	bound;

	LWLockAcquire(ds_shared->lock, LW_SHARED);
	bound = Max(ds_shared->evicted_max_lsn, ds_shared->startup_lsn);
	if (XLogRecPtrIsInvalid(ds_shared->startup_lsn))
		bound = InvalidXLogRecPtr;
	LWLockRelease(ds_shared->lock);
	/* no worker yet: everything committed so far is before the insert point */
	if (XLogRecPtrIsInvalid(bound))
		bound = GetXLogInsertRecPtr();
	return bound;
}

/* ------------------------------------------------------------------------
 * Notification slots (durable_state.notify = worker)
 * ------------------------------------------------------------------------ */

/*
 * Adds s (len bytes) to items[0..*n-1] unless it is there already.  Sets
 * *more instead if s is too long for an item or the list is full.
 */
static void
list_add(char items[][DS_NOTIFY_ITEM], int *n, bool *more, const char *s, int len)
{
	if (len >= DS_NOTIFY_ITEM)
	{
		*more = true;
		return;
	}
	for (int i = 0; i < *n; i++)
		if (strlen(items[i]) == len && memcmp(items[i], s, len) == 0)
			return;
	if (*n >= DS_NOTIFY_LIST)
	{
		*more = true;
		return;
	}
	memcpy(items[*n], s, len);
	items[*n][len] = '\0';
	(*n)++;
}

/* Adds event type s (len bytes) to notice n's types; see list_add. */
void
ds_notice_add_type(DsNotice *n, const char *s, int len)
{
	list_add(n->types, &n->ntypes, &n->more_types, s, len);
}

/* Adds txid s (len bytes) to notice n's txids; see list_add. */
void
ds_notice_add_txid(DsNotice *n, const char *s, int len)
{
	list_add(n->txids, &n->ntxids, &n->more_txids, s, len);
}

/*
 * Merges notice src into dst, of the same stream: the union of their
 * offset ranges, types and txids, and the sum of their counts.  An empty
 * dst (count 0) takes src's range.
 */
void
ds_notice_merge(DsNotice *dst, const DsNotice *src)
{
	if (dst->count == 0 || src->from < dst->from)
		dst->from = src->from;
	if (dst->count == 0 || src->to > dst->to)
		dst->to = src->to;
	dst->count += src->count;
	for (int i = 0; i < src->ntypes; i++)
		ds_notice_add_type(dst, src->types[i], strlen(src->types[i]));
	for (int i = 0; i < src->ntxids; i++)
		ds_notice_add_txid(dst, src->txids[i], strlen(src->txids[i]));
	dst->more_types |= src->more_types;
	dst->more_txids |= src->more_txids;
}

/*
 * Reserves a slot for stream stream_id for a committing transaction, the
 * slot already holding that stream's pending notice if there is one, and
 * returns its index.  Returns -1 if the worker does not serve this
 * database, the name is too long to hand over, or every slot is taken.
 * The caller must fill (ds_slot_fill) or release (ds_slot_release) it.
 * One acquisition of ds_shared->lock (with the fill, two per committing
 * stream): every writer of the cluster goes through it.
 */
int
ds_slot_reserve(int32 stream_id, const char *stream)
{
	int			found = -1;

	if (ds_shared == NULL || strlen(stream) >= DS_STREAM_NAME_MAX)
		return -1;
	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	if (running_worker() == NULL)
	{
		LWLockRelease(ds_shared->lock);
		return -1;
	}
	for (int i = 0; i < DS_NOTIFY_SLOTS; i++)
	{
		DsNotifySlot *s = &ds_shared->slots[i];

		if ((s->reserved > 0 || s->pending) && s->dbid == MyDatabaseId &&
			s->stream_id == stream_id && strcmp(s->stream, stream) == 0)
		{
			found = i;
			break;
		}
		if (found < 0 && s->reserved == 0 && !s->pending)
			found = -2 - i;		/* the first free one, if no match */
	}
	if (found <= -2)
	{
		DsNotifySlot *s = &ds_shared->slots[-2 - found];

		found = -2 - found;
		memset(s, 0, sizeof(DsNotifySlot));
		s->dbid = MyDatabaseId;
		s->stream_id = stream_id;
		strlcpy(s->stream, stream, DS_STREAM_NAME_MAX);
	}
	if (found >= 0)
		ds_shared->slots[found].reserved++;
	LWLockRelease(ds_shared->lock);
	return found;
}

/*
 * Merges a committed transaction's notice into the slot it reserved, marks
 * the slot pending, drops the reservation and wakes the worker, unless the
 * slot was pending already: whoever made it pending wakes the worker (it
 * sets the latch after releasing the lock), and the worker has not taken
 * it yet (taking clears pending under the lock), so it sends ours too.
 * A stale latch pointer is harmless: it points to a PGPROC's latch.
 */
void
ds_slot_fill(int slot, const DsNotice *notice)
{
	DsNotifySlot *s = &ds_shared->slots[slot];
	DsDbWorker *w;
	Latch	   *latch = NULL;

	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	ds_notice_merge(&s->notice, notice);
	if (!s->pending && (w = running_worker()) != NULL)
		latch = w->latch;
	s->pending = true;
	s->reserved--;
	LWLockRelease(ds_shared->lock);
	ds_count(DS_CNT_NOTICES_HANDED, 1);
	if (latch)
		SetLatch(latch);
}

/* Drops an aborted transaction's reservation of slot, sending nothing. */
void
ds_slot_release(int slot)
{
	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	ds_shared->slots[slot].reserved--;
	LWLockRelease(ds_shared->lock);
}

/*
 * Moves up to max pending notices of this database into out, their stream
 * names into names, and empties those slots (reservations held by
 * transactions still committing stay).  Returns how many.  Called by the
 * worker.
 */
int
ds_slots_take(DsNotice *out, char (*names)[DS_STREAM_NAME_MAX], int max)
{
	int			n = 0;

	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < DS_NOTIFY_SLOTS && n < max; i++)
	{
		DsNotifySlot *s = &ds_shared->slots[i];

		if (!s->pending || s->dbid != MyDatabaseId)
			continue;
		out[n] = s->notice;
		memcpy(names[n], s->stream, DS_STREAM_NAME_MAX);
		n++;
		memset(&s->notice, 0, sizeof(DsNotice));
		s->pending = false;
	}
	LWLockRelease(ds_shared->lock);
	return n;
}

/* ------------------------------------------------------------------------
 * state._shared_stats()
 * ------------------------------------------------------------------------ */

/*
 * One row: whether shared memory exists, the worker's status, pid, start
 * and last loop times, start count, published watermarks, standbys,
 * txid waiters, pending slots, and every counter.  All but the first two
 * are NULL when the library was not preloaded.
 */
PG_FUNCTION_INFO_V1(ds_shared_stats);

Datum
ds_shared_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[18];
	bool		nulls[18];
	int			i = 0;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(nulls, 0, sizeof(nulls));
	values[i++] = BoolGetDatum(ds_shared != NULL);
	if (ds_shared == NULL)
	{
		for (; i < lengthof(values); i++)
			nulls[i] = true;
		values[1] = CStringGetTextDatum("not loaded");
		nulls[1] = false;
	}
	else
	{
		pid_t		pid;
		TimestampTz started,
					last;
		int32		starts;
		XLogRecPtr	flushed,
					replicated;
		int			standbys;
		int			pending = 0;
		DsDbWorker *w;

		LWLockAcquire(ds_shared->lock, LW_SHARED);
		w = ds_dbw_find(MyDatabaseId, false);
		pid = w && w->state == DS_DBW_RUNNING ? w->pid : 0;
		started = w ? w->started_at : 0;
		last = w ? w->last_loop_at : 0;
		starts = w ? w->starts : 0;
		flushed = ds_shared->flushed_lsn;
		replicated = ds_shared->replicated_lsn;
		standbys = ds_shared->standbys;
		for (int s = 0; s < DS_NOTIFY_SLOTS; s++)
			if (ds_shared->slots[s].pending)
				pending++;
		LWLockRelease(ds_shared->lock);

		values[i++] = CStringGetTextDatum(pid != 0 ? "running" :
										  starts > 0 ? "restarting" : "not started");
		values[i] = Int32GetDatum(pid);
		nulls[i++] = pid == 0;
		values[i] = TimestampTzGetDatum(started);
		nulls[i++] = started == 0;
		values[i] = TimestampTzGetDatum(last);
		nulls[i++] = last == 0;
		values[i++] = Int32GetDatum(starts);
		values[i] = LSNGetDatum(flushed);
		nulls[i++] = XLogRecPtrIsInvalid(flushed);
		values[i] = LSNGetDatum(replicated);
		nulls[i++] = XLogRecPtrIsInvalid(replicated);
		values[i++] = Int32GetDatum(standbys);
		values[i++] = Int32GetDatum((int32) pg_atomic_read_u32(&ds_shared->waiters));
		values[i++] = Int32GetDatum(pending);
		for (int c = 0; c < DS_NCOUNTERS; c++)
			values[i++] = Int64GetDatum((int64) pg_atomic_read_u64(&ds_shared->counters[c]));
	}
	Assert(i == lengthof(values) || ds_shared == NULL);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
