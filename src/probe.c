/*
 * probe.c
 *		Finding the stored row of an event's key.
 *
 * Per event, the primary key index is searched the way logical replication
 * does it (execReplication.c), with a dirty snapshot, and the row locked.
 *
 * Bulk probe.  A batch that touches many keys of a collection compared with
 * the size of its primary key index learns which keys exist by reading the
 * index once from end to end and looking each entry up in a hash table of
 * the batch's keys, instead of descending the B-tree once per event: for a
 * large batch that is far fewer comparisons (under a libc collation each
 * is a strcoll).  Only for key types whose equality is byte equality.
 * Each key's state then follows the batch's own changes; anything
 * unexpected (a row changed by another transaction meanwhile, a row of an
 * in-progress transaction) falls back to the per-event probe.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "apply.h"
#include "compat.h"

int			ds_bulk_probe_min_keys = 1000;
int			ds_bulk_probe_keys_per_block = 16;

/* Registers the bulk probe's settings. */
void
ds_probe_init(void)
{
	DefineCustomIntVariable("durable_state.bulk_probe_min_keys",
							"Fewest events on one collection for which a batch reads its primary key index whole instead of probing it per event.",
							"0 turns the bulk probe off.",
							&ds_bulk_probe_min_keys,
							1000, 0, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("durable_state.bulk_probe_keys_per_block",
							"Distinct keys per index block a batch needs before it reads the primary key index whole.",
							"0 ignores the index size (for tests).",
							&ds_bulk_probe_keys_per_block,
							16, 0, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
}

/*
 * Under REPEATABLE READ or SERIALIZABLE, a batch running side by side with
 * others must not change a row its transaction snapshot does not see as it
 * is (changed or deleted by a transaction that committed after the
 * snapshot), nor act on a missing key the snapshot still sees: like
 * UPDATE, it fails with ERRCODE_T_R_SERIALIZATION_FAILURE.  Returns found.
 * (An exclusive batch checked the whole stream when it locked it.)
 */
static bool
rr_checked(DsCollState *cs, bool found)
{
	Snapshot	snap;
	bool		conflict;

	if (!cs->rr_check)
		return found;
	snap = GetTransactionSnapshot();
	if (found)
		conflict = !table_tuple_satisfies_snapshot(cs->rel, cs->oldslot, snap);
	else
	{
		IndexScanDesc scan = ds_index_beginscan(cs->rel, cs->pkrel, snap, 1, 0);
		TupleTableSlot *slot = table_slot_create(cs->rel, NULL);

		index_rescan(scan, &cs->skey, 1, NULL, 0);
		conflict = index_getnext_slot(scan, ForwardScanDirection, slot);
		index_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
	}
	if (conflict)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access due to concurrent update"),
				 errdetail("The key was changed by a transaction that committed after this transaction's snapshot was taken."),
				 errhint("Retry the transaction.")));
	return found;
}

/*
 * Search the collection's primary key index for the row with this key, as
 * logical replication does (RelationFindReplTupleByIndex): a dirty
 * snapshot sees rows of in-progress transactions, whose end we wait for
 * before looking again.  If a row is found, store it in cs->oldslot, lock
 * it (when lock is true) so it cannot change under us, and return true;
 * a row that a concurrent transaction updated or deleted before we could
 * lock it is looked up again.  Return false if no row has the key.
 */
bool
ds_find_row(DsCollState *cs, Datum key, bool lock)
{
	TM_FailureData tmfd;
	TM_Result	res;
	bool		found;
	bool		got;
	MemoryContext old;

retry:
	found = false;
	InitDirtySnapshot(cs->dirty);
	ScanKeyEntryInitialize(&cs->skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   cs->ri.pk_collation, cs->ri.pk_eqproc, key);

	/*
	 * The scan lives for the whole batch and may allocate as it goes (btree
	 * remembers killed items), so it must not allocate in the per-event
	 * context.
	 */
	old = MemoryContextSwitchTo(GetMemoryChunkContext(cs->scan));
	index_rescan(cs->scan, &cs->skey, 1, NULL, 0);
	got = index_getnext_slot(cs->scan, ForwardScanDirection, cs->oldslot);
	MemoryContextSwitchTo(old);
	if (got)
	{
		TransactionId xwait;

		found = true;
		xwait = TransactionIdIsValid(cs->dirty.xmin) ? cs->dirty.xmin : cs->dirty.xmax;
		if (TransactionIdIsValid(xwait))
		{
			XactLockTableWait(xwait, NULL, NULL, XLTW_None);
			goto retry;
		}
	}
	if (!found || !lock)
		return rr_checked(cs, found);

	PushActiveSnapshot(GetLatestSnapshot());
	res = table_tuple_lock(cs->rel, &(cs->oldslot->tts_tid), GetLatestSnapshot(),
						   cs->oldslot, GetCurrentCommandId(false),
						   LockTupleExclusive, LockWaitBlock, 0, &tmfd);
	PopActiveSnapshot();
	switch (res)
	{
		case TM_Ok:
			break;
		case TM_Updated:
		case TM_Deleted:
			/* changed by a transaction that committed meanwhile: look again */
			goto retry;
		case TM_Invisible:
			elog(ERROR, "attempted to lock invisible tuple");
			break;
		default:
			elog(ERROR, "unexpected table_tuple_lock status: %u", res);
			break;
	}
	return rr_checked(cs, true);
}

/* ------------------------------------------------------------------------
 * Bulk probe
 * ------------------------------------------------------------------------ */

/*
 * If typid is a key type whose equality is byte equality, point *data and
 * *len at the bytes that identify the key datum d (integers are widened to
 * 8 bytes in buf) and return true; otherwise return false.
 */
static bool
key_bytes(Oid typid, Datum d, const char **data, int *len, char *buf)
{
	switch (typid)
	{
		case TEXTOID:
		case VARCHAROID:
			{
				text	   *t = DatumGetTextPP(d);

				*data = VARDATA_ANY(t);
				*len = VARSIZE_ANY_EXHDR(t);
				return true;
			}
		case INT2OID:
		case INT4OID:
		case INT8OID:
			{
				int64		v = typid == INT8OID ? DatumGetInt64(d) :
					typid == INT4OID ? DatumGetInt32(d) : DatumGetInt16(d);

				memcpy(buf, &v, sizeof(v));
				*data = buf;
				*len = sizeof(v);
				return true;
			}
		case UUIDOID:
			*data = (const char *) DatumGetPointer(d);
			*len = 16;
			return true;
		default:
			return false;
	}
}

/*
 * Look the key bytes up in the table.  Return its entry; if it is absent,
 * add it when insert is true (the table keeps the data pointer, not a
 * copy; the entry is neither known nor existing) or return NULL.  The
 * table is sized so that it never fills.
 */
static DsKeyState *
keytable_find(DsKeyTable *kt, const char *data, int len, bool insert)
{
	uint32		h = hash_bytes((const unsigned char *) data, len);
	uint32		i = h & kt->mask;

	for (;;)
	{
		uint64		slot = kt->slots[i];
		DsKeyState *ks;

		if (slot == 0)
		{
			if (!insert)
				return NULL;
			ks = &kt->entries[kt->n];
			memset(ks, 0, sizeof(DsKeyState));
			ks->hash = h;
			ks->data = data;
			ks->len = len;
			kt->slots[i] = ((uint64) h << 32) | (uint32) (kt->n + 1);
			kt->n++;
			return ks;
		}
		if ((uint32) (slot >> 32) == h)
		{
			ks = &kt->entries[(uint32) slot - 1];
			if (ks->len == len && memcmp(ks->data, data, len) == 0)
				return ks;
		}
		i = (i + 1) & kt->mask;
	}
}

/*
 * Convert the keys of cs's events to datums once, into cs->keys, and
 * decide whether to probe them in bulk.  If so, read the primary key index
 * once from end to end, checking the live row of every entry whose key the
 * batch touches with a dirty snapshot, as ds_find_row() does, and mark each
 * key known to exist (with its tid) or known to be absent.  Keys whose row
 * is being changed by an in-progress transaction stay unknown, for
 * ds_find_row() to wait on.  Does nothing for a collection with few events,
 * a key type without byte equality, or when BEFORE ROW triggers of the
 * batch's tables could change rows behind the probe's back.
 */
void
ds_bulk_probe(DsBatch *b, DsCollState *cs)
{
	Oid			typid = cs->ri.pkcol->typid;
	TriggerDesc *trig;
	DsKeyTable *kt;
	uint32		size = 16;
	BlockNumber blocks;
	IndexScanDesc scan;
	IndexFetchTableData *fetch;
	TupleTableSlot *slot;
	ItemPointer tid;
	char		buf[8];

	if (ds_bulk_probe_min_keys <= 0 || cs->nevents < ds_bulk_probe_min_keys)
		return;
	/* byte equality must be the index's equality */
	if ((typid == TEXTOID || typid == VARCHAROID) &&
		!get_collation_isdeterministic(cs->ri.pk_collation))
		return;
	if (typid != TEXTOID && typid != VARCHAROID && typid != INT2OID &&
		typid != INT4OID && typid != INT8OID && typid != UUIDOID)
		return;
	/*
	 * BEFORE ROW triggers of any table of the batch may skip, redirect or
	 * add changes behind the probe's back: probe per event then.  (Rows
	 * changed otherwise -- by the batch itself through another path, or by
	 * another transaction -- are caught when the lock finds the row
	 * changed, and probed again.)
	 */
	for (int c = 0; c < b->stream->ncolls; c++)
	{
		DsCollState *other = &b->colls[c];

		if (!other->opened)
			continue;
		trig = other->rel->trigdesc;
		if (trig && (trig->trig_insert_before_row || trig->trig_update_before_row ||
					 trig->trig_delete_before_row))
			return;
	}

	while (size < (uint32) cs->nevents * 2)
		size <<= 1;
	kt = palloc(sizeof(DsKeyTable));
	kt->slots = palloc0(sizeof(uint64) * size);
	kt->entries = palloc(sizeof(DsKeyState) * cs->nevents);
	kt->mask = size - 1;
	kt->n = 0;
	for (int i = 0; i < b->nevents; i++)
	{
		DsEvent    *ev = &b->events[i];
		DsEventState *es = &b->evstate[i];
		Datum		d;
		const char *data;
		int			len;
		char	   *copy;

		if (es->cs != cs)
			continue;
		b->current = i;
		d = ds_key_datum(&cs->ri, ev->key, ev->key_len);
		key_bytes(typid, d, &data, &len, buf);
		if (data == buf)
		{
			copy = palloc(len);
			memcpy(copy, buf, len);
			data = copy;
		}
		es->ks = keytable_find(kt, data, len, true);
		es->ks->datum = d;
	}
	b->current = -1;

	/* reading the whole index pays off only for many keys per index page */
	blocks = RelationGetNumberOfBlocks(cs->pkrel);
	if (ds_bulk_probe_keys_per_block > 0 &&
		(double) kt->n < (double) blocks * ds_bulk_probe_keys_per_block)
	{
		/* keep the converted keys, drop the probe */
		for (int i = 0; i < b->nevents; i++)
		{
			if (b->evstate[i].ks)
				b->evstate[i].ks->known = false;
		}
		cs->keys = kt;
		return;
	}

	elog(DEBUG1, "durable_state: bulk probe of %d keys of collection \"%s\" (%u index blocks)",
		 kt->n, cs->coll->name, blocks);
	scan = ds_index_beginscan(cs->rel, cs->pkrel, SnapshotAny, 0, 0);
	scan->xs_want_itup = true;
	index_rescan(scan, NULL, 0, NULL, 0);
	fetch = table_index_fetch_begin(cs->rel);
	slot = table_slot_create(cs->rel, NULL);
	for (int i = 0; i < kt->n; i++)
		kt->entries[i].known = true;	/* absent unless found below */
	while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		k = index_getattr(scan->xs_itup, 1, scan->xs_itupdesc, &isnull);
		const char *data;
		int			len;
		DsKeyState *ks;
		SnapshotData dirty;
		ItemPointerData t = *tid;
		bool		call_again = false;
		bool		all_dead = false;

		CHECK_FOR_INTERRUPTS();
		if (isnull)
			continue;
		key_bytes(typid, k, &data, &len, buf);
		ks = keytable_find(kt, data, len, false);
		if (ks == NULL || !ks->known || ks->exists)
			continue;
		InitDirtySnapshot(dirty);
		if (table_index_fetch_tuple(fetch, &t, &dirty, slot, &call_again, &all_dead))
		{
			if (TransactionIdIsValid(dirty.xmin) || TransactionIdIsValid(dirty.xmax))
				ks->known = false;	/* in progress elsewhere: ds_find_row waits */
			else
			{
				ks->exists = true;
				ks->tid = slot->tts_tid;
			}
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	table_index_fetch_end(fetch);
	index_endscan(scan);
	cs->keys = kt;
}

/*
 * Find and lock the row of a key, as ds_find_row() does, using what the
 * bulk probe knows of the key (ks, or NULL) when it knows anything: a key
 * known to be absent returns false at once, a key known to exist is locked
 * at its tid.  If that row changed since the probe, forget what the probe
 * knew and look the key up in the index.  Return whether a row exists.
 */
bool
ds_find_row_known(DsCollState *cs, DsKeyState *ks, Datum key)
{
	TM_FailureData tmfd;
	TM_Result	res;

	if (ks == NULL || !ks->known)
		return ds_find_row(cs, key, true);
	if (!ks->exists)
		return false;
	PushActiveSnapshot(GetLatestSnapshot());
	res = table_tuple_lock(cs->rel, &ks->tid, GetLatestSnapshot(), cs->oldslot,
						   GetCurrentCommandId(false), LockTupleExclusive,
						   LockWaitBlock, 0, &tmfd);
	PopActiveSnapshot();
	if (res == TM_Ok)
		return true;
	/* changed by another transaction since the probe: look it up again */
	ks->known = false;
	return ds_find_row(cs, key, true);
}

/*
 * Record in the bulk probe's table what an applied change did to its key
 * (ks, or NULL): deleted, or written at cs->newslot's tid.
 */
void
ds_key_applied(DsCollState *cs, DsKeyState *ks, bool deleted)
{
	if (ks == NULL || !ks->known)
		return;
	ks->exists = !deleted;
	if (!deleted)
		ks->tid = cs->newslot->tts_tid;
}

/*
 * Forget what the bulk probe learned about every collection of the batch
 * (a reset emptied the tables behind its back): each key is probed per
 * event from now on.
 */
void
ds_probe_forget(DsBatch *b)
{
	for (int c = 0; c < b->stream->ncolls; c++)
	{
		DsKeyTable *kt = b->colls[c].keys;

		for (int i = 0; kt && i < kt->n; i++)
			kt->entries[i].known = false;
	}
}
