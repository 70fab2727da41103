/*
 * horizon.c
 *		Which committed txids are replicated, for good: the replicated
 *		horizon (shared_preload_libraries only).
 *
 * A transaction's txids are "replicated" once the standbys
 * durable_state.replicated_standbys chooses have replayed its commit
 * record.  The ring of recent commits (shared.c) knows commit positions
 * only for a while: it forgets them when it goes round and when the server
 * restarts.  Judged by a bound of the commit position instead, a txid that
 * was replicated could read "flushed" again.  So "replicated" is decided by
 * the transaction, whose id state._txids stores with its txids:
 *
 *	 - The launcher samples, in each loop in which commits with txids
 *	   arrived, which transactions have ended (a snapshot: below its xmax
 *	   and not running, nor registered as having written txids it has not
 *	   published yet) and the newest commit position published to the ring
 *	   of recent txids: every transaction with txids that the sample counts
 *	   as ended committed at or before it.
 *	 - Once the replicated watermark reaches a sample's position, every
 *	   transaction that sample saw ended is replicated: the newest such
 *	   sample becomes the horizon.  A later sample's ended transactions
 *	   include an earlier's, so the set only grows; a long transaction that
 *	   is still running holds back nobody but itself.
 *	 - The horizon is written to two files in the data directory in turn
 *	   ($PGDATA/durable_state.replicated.0 and .1, each with a sequence
 *	   number and a CRC, so a write torn by a crash leaves the other) and
 *	   fsynced before it is used, and read back when shared memory is set
 *	   up: a txid once "replicated" stays so across restarts and crashes.
 *
 * A transaction ended before the server started is covered as soon as the
 * standbys have replayed past the worker's first sample, or before if the
 * horizon read back covers it.  Rows written before 0.6.0 have no
 * transaction and are still judged by their commit position (txid.c).
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "access/transam.h"
#include "access/twophase.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "durable_state.h"
#include "shmem.h"

#define HORIZON_FILE "durable_state.replicated"
#define HORIZON_MAGIC 0x44534831	/* "DSH1" */
#define HORIZON_PENDING 32		/* samples waiting for the standbys */

/* Which transactions have ended: every one below xmax but those in xip. */
typedef struct DsEnded
{
	XLogRecPtr	lsn;			/* their txids committed by then */
	FullTransactionId xmax;
	int			nxip;
	FullTransactionId *xip;
} DsEnded;

/* The horizon in shared memory (under lock). */
typedef struct DsHorizon
{
	LWLock	   *lock;
	bool		valid;			/* adopted, or read back at start */
	uint64		seq;			/* writes of the files so far */
	XLogRecPtr	lsn;
	FullTransactionId xmax;
	int			nxip;
	int			maxxip;
	FullTransactionId xip[FLEXIBLE_ARRAY_MEMBER];
} DsHorizon;

/* One file's contents: this header, nxip transaction ids, a CRC of both. */
typedef struct HorizonFileHeader
{
	uint32		magic;
	uint32		nxip;
	uint64		seq;
	uint64		lsn;
	uint64		xmax;
} HorizonFileHeader;

static DsHorizon *horizon = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* the worker's samples, oldest first */
static DsEnded pending[HORIZON_PENDING];
static int	npending = 0;
static uint64 sampled_ring = PG_UINT64_MAX;

/*
 * Transactions a sample can list as not ended: those a snapshot lists as
 * running (backends and prepared ones) and those whose txids are not
 * published yet (a backend each).
 */
static int
max_running(void)
{
	return 2 * MaxBackends + max_prepared_xacts;
}

static Size
horizon_size(void)
{
	return add_size(offsetof(DsHorizon, xip),
					mul_size(sizeof(FullTransactionId), max_running()));
}

static void
horizon_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(horizon_size()));
	RequestNamedLWLockTranche("durable_state horizon", 1);
}

static void
horizon_path(char *path, int which)
{
	snprintf(path, MAXPGPATH, "%s/%s.%d", DataDir, HORIZON_FILE, which);
}

/*
 * Reads horizon file "which" into h (which has room for h->maxxip ids).
 * Returns false, leaving h alone, if it is missing, torn or does not fit.
 */
static bool
horizon_read(DsHorizon *h, int which)
{
	char		path[MAXPGPATH];
	HorizonFileHeader hdr;
	FullTransactionId *xip;
	pg_crc32c	crc,
				stored;
	int			fd;
	bool		ok = false;

	horizon_path(path, which);
	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
		return false;
	if (read(fd, &hdr, sizeof(hdr)) == sizeof(hdr) && hdr.magic == HORIZON_MAGIC &&
		hdr.nxip <= (uint32) h->maxxip)
	{
		Size		len = sizeof(FullTransactionId) * hdr.nxip;

		xip = palloc(len + 1);
		if (read(fd, xip, len) == len && read(fd, &stored, sizeof(stored)) == sizeof(stored))
		{
			INIT_CRC32C(crc);
			COMP_CRC32C(crc, &hdr, sizeof(hdr));
			COMP_CRC32C(crc, xip, len);
			FIN_CRC32C(crc);
			ok = EQ_CRC32C(crc, stored) && (!h->valid || hdr.seq > h->seq);
		}
		if (ok)
		{
			h->valid = true;
			h->seq = hdr.seq;
			h->lsn = hdr.lsn;
			h->xmax = FullTransactionIdFromU64(hdr.xmax);
			h->nxip = hdr.nxip;
			memcpy(h->xip, xip, len);
		}
		pfree(xip);
	}
	CloseTransientFile(fd);
	return ok;
}

/*
 * shmem_startup_hook: sets up the horizon, from the newer intact file if
 * there is one (in the postmaster, also after a crash).
 */
static void
horizon_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	horizon = ShmemInitStruct("durable_state horizon", horizon_size(), &found);
	if (!found)
	{
		memset(horizon, 0, offsetof(DsHorizon, xip));
		horizon->lock = &(GetNamedLWLockTranche("durable_state horizon"))->lock;
		horizon->maxxip = max_running();
		(void) horizon_read(horizon, 0);
		(void) horizon_read(horizon, 1);
		if (horizon->valid)
			ereport(LOG,
					(errmsg("durable_state: txids of transactions before %llu are replicated (horizon read back at %X/%X)",
							(unsigned long long) U64FromFullTransactionId(horizon->xmax),
							LSN_FORMAT_ARGS(horizon->lsn))));
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Requests the horizon's shared memory; from _PG_init while preloading. */
void
ds_horizon_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = horizon_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = horizon_shmem_startup;
}

/*
 * Whether the transaction xid is known to be replicated: the horizon says
 * it had ended when the standbys had replayed past its sample.  False
 * without shared memory.
 */
bool
ds_horizon_covers(FullTransactionId xid)
{
	bool		covered = false;

	if (horizon == NULL || !FullTransactionIdIsValid(xid))
		return false;
	LWLockAcquire(horizon->lock, LW_SHARED);
	if (horizon->valid && FullTransactionIdPrecedes(xid, horizon->xmax))
	{
		covered = true;
		for (int i = 0; i < horizon->nxip; i++)
			if (FullTransactionIdEquals(horizon->xip[i], xid))
			{
				covered = false;
				break;
			}
	}
	LWLockRelease(horizon->lock);
	return covered;
}

/* xid, at most 2^31 transactions before next, as a full transaction id. */
static FullTransactionId
full_xid(TransactionId xid, FullTransactionId next)
{
	return FullTransactionIdFromU64(U64FromFullTransactionId(next) -
									(uint32) (XidFromFullTransactionId(next) - xid));
}

/*
 * p, an insert position, as a record's end position: at a page boundary an
 * insert position points past the next page's header, where no record ends.
 */
static XLogRecPtr
as_end(XLogRecPtr p)
{
	uint64		in_segment = XLogSegmentOffset(p, wal_segment_size);

	if (in_segment == SizeOfXLogLongPHD)
		return p - SizeOfXLogLongPHD;
	if (p % XLOG_BLCKSZ == SizeOfXLogShortPHD)
		return p - SizeOfXLogShortPHD;
	return p;
}

/* Adds xid to e's not-ended list unless it is there. */
static void
add_not_ended(DsEnded *e, FullTransactionId xid)
{
	for (int i = 0; i < e->nxip; i++)
		if (FullTransactionIdEquals(e->xip[i], xid))
			return;
	if (e->nxip < max_running())
		e->xip[e->nxip++] = xid;
}

/*
 * Samples into e which transactions have ended and the position every
 * txid of those has committed by.  Only transactions that wrote txids are
 * ever asked about, and each publishes its commit position to the ring
 * (ds_publish_txids) after it ended: so the sample takes the snapshot
 * first, then, under the lock publishing takes, the newest position
 * published and the transactions registered but not published yet, which
 * it counts as not ended.  The position is thus the last txid commit, not
 * the end of WAL, which a standby that has nothing newer to receive may
 * not report having replayed for a while.  Never below where the launcher
 * started: every commit before it (before a restart, say) ended by then.
 * Runs in a transaction of its own (the launcher is between transactions).
 */
static void
sample(DsEnded *e)
{
	Snapshot	snap;
	FullTransactionId next;
	XLogRecPtr	published;
	XLogRecPtr	started;
	int			n;
	static FullTransactionId *unpublished = NULL;

	if (e->xip == NULL)
		e->xip = MemoryContextAlloc(TopMemoryContext,
									sizeof(FullTransactionId) * max_running());
	StartTransactionCommand();
	snap = GetLatestSnapshot();
	next = ReadNextFullTransactionId();
	e->xmax = full_xid(snap->xmax, next);
	e->nxip = Min(snap->xcnt, max_running());
	for (int i = 0; i < e->nxip; i++)
		e->xip[i] = full_xid(snap->xip[i], next);
	CommitTransactionCommand();
	if (unpublished == NULL)
		unpublished = MemoryContextAlloc(TopMemoryContext, sizeof(FullTransactionId) * MaxBackends);
	n = ds_txids_unpublished(unpublished, &published, &started);
	for (int i = 0; i < n; i++)
		add_not_ended(e, unpublished[i]);
	e->lsn = Max(published, as_end(started));
}

/*
 * Writes e as the horizon's next file (the older of the two) and fsyncs
 * it.  Returns false, having logged why, if it could not: the horizon is
 * then not moved, so nothing is claimed that a restart could take back.
 */
static bool
horizon_write(const DsEnded *e, uint64 seq)
{
	char		path[MAXPGPATH];
	HorizonFileHeader hdr;
	Size		len = sizeof(FullTransactionId) * e->nxip;
	pg_crc32c	crc;
	int			fd;
	bool		ok;
	bool		created;

	hdr.magic = HORIZON_MAGIC;
	hdr.nxip = e->nxip;
	hdr.seq = seq;
	hdr.lsn = e->lsn;
	hdr.xmax = U64FromFullTransactionId(e->xmax);
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, &hdr, sizeof(hdr));
	COMP_CRC32C(crc, e->xip, len);
	FIN_CRC32C(crc);

	horizon_path(path, (int) (seq % 2));
	created = access(path, F_OK) != 0;
	fd = OpenTransientFile(path, O_WRONLY | O_CREAT | PG_BINARY);
	if (fd < 0)
	{
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", path)));
		return false;
	}
	ok = pg_pwrite(fd, &hdr, sizeof(hdr), 0) == sizeof(hdr) &&
		pg_pwrite(fd, e->xip, len, sizeof(hdr)) == len &&
		pg_pwrite(fd, &crc, sizeof(crc), sizeof(hdr) + len) == sizeof(crc) &&
		pg_fsync(fd) == 0;
	if (!ok)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", path)));
	CloseTransientFile(fd);
	/* a new file's directory entry must survive a crash too */
	if (ok && created)
		fsync_fname(DataDir, true);
	return ok;
}

/*
 * The worker's step, after it published the replicated watermark
 * "replicated": samples which transactions have ended if commits with
 * txids arrived since the last sample, and moves the horizon to the newest
 * sample the standbys have replayed past (written to disk first).  Returns
 * true if the horizon moved (the caller wakes the waiters).
 */
bool
ds_horizon_advance(XLogRecPtr replicated)
{
	uint64		ring = ds_ring_position();
	int			newest = -1;
	DsEnded		adopt;

	if (horizon == NULL)
		return false;
	if (ring != sampled_ring)
	{
		/* full (the standbys are behind): the newest sample is replaced */
		if (npending == HORIZON_PENDING)
			npending--;
		sample(&pending[npending]);
		npending++;
		sampled_ring = ring;
	}
	if (XLogRecPtrIsInvalid(replicated))
		return false;
	for (int i = 0; i < npending; i++)
		if (pending[i].lsn <= replicated)
			newest = i;
	if (newest < 0)
		return false;

	adopt = pending[newest];
	if (!horizon_write(&adopt, horizon->seq + 1))
		return false;
	LWLockAcquire(horizon->lock, LW_EXCLUSIVE);
	horizon->valid = true;
	horizon->seq++;
	horizon->lsn = adopt.lsn;
	horizon->xmax = adopt.xmax;
	horizon->nxip = adopt.nxip;
	memcpy(horizon->xip, adopt.xip, sizeof(FullTransactionId) * adopt.nxip);
	LWLockRelease(horizon->lock);

	/* drop the samples up to the one adopted, keeping their buffers */
	{
		FullTransactionId *bufs[HORIZON_PENDING];
		int			k = newest + 1;

		for (int i = 0; i < k; i++)
			bufs[i] = pending[i].xip;
		memmove(&pending[0], &pending[k], sizeof(DsEnded) * (npending - k));
		npending -= k;
		for (int i = 0; i < k; i++)
			pending[npending + i].xip = bufs[i];
	}
	return true;
}

/*
 * Whether txids committed since the launcher last sampled which
 * transactions have ended: while standbys count, it then looks again a
 * millisecond later (at most a sample per millisecond, however many
 * commits) instead of after its nap.
 */
bool
ds_horizon_behind(void)
{
	return horizon != NULL && ds_ring_position() != sampled_ring;
}

/* The horizon's position (where its transactions had committed by), or invalid if none. */
XLogRecPtr
ds_horizon_lsn(void)
{
	XLogRecPtr	lsn = InvalidXLogRecPtr;

	if (horizon == NULL)
		return lsn;
	LWLockAcquire(horizon->lock, LW_SHARED);
	if (horizon->valid)
		lsn = horizon->lsn;
	LWLockRelease(horizon->lock);
	return lsn;
}
