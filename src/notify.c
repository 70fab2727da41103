/*
 * notify.c
 *		Notifications after commit, the txids a commit confirms, and
 *		state.publish.
 *
 * Each batch leaves a record in the transaction (stream, offsets, types,
 * txids).  A subtransaction that aborts takes its records with it.  At
 * pre-commit the records are coalesced per stream, and then, depending on
 * durable_state.notify:
 *	 commit  one NOTIFY per stream, queued in the transaction, so Postgres
 *			 delivers it at commit and never for a rolled-back transaction;
 *	 worker  a slot in shared memory is reserved per stream and filled once
 *			 the commit is done; the background worker sends one coalesced
 *			 NOTIFY per stream, so writers never take the global notify
 *			 lock (without a worker for this database: as commit);
 *	 off	 nothing.
 * After the commit, the transaction's txids go to the shared ring with the
 * end of the commit record, and their waiters are woken.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/async.h"
#include "common/md5.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "durable_state.h"
#include "shmem.h"

typedef enum DsNotifyMode
{
	DS_NOTIFY_OFF,
	DS_NOTIFY_COMMIT,
	DS_NOTIFY_WORKER
} DsNotifyMode;

/* durable_state.notify */
static int	ds_notify_mode = DS_NOTIFY_COMMIT;

/* One batch's record, or (after coalescing) one stream's. */
typedef struct DsTxnNote
{
	int32		stream_id;
	char	   *stream;
	int			level;			/* transaction nest level of the batch */
	int			slot;			/* reserved worker slot, or -1 */
	DsNotice	notice;
	uint64	   *hashes;			/* every txid of the batch, hashed */
	int			nhashes;
} DsTxnNote;

static List *txn_notes = NIL;	/* in TopTransactionContext */
static List *txn_streams = NIL; /* coalesced at pre-commit */

/*
 * The NOTIFY channel of a stream, palloc'd (state.channel() computes the
 * same): "state_" followed by the name if it is 1 to 48 characters of
 * [a-z0-9_], else by the name's MD5 in hex.
 */
char *
ds_channel_name(const char *stream)
{
	int			len = strlen(stream);
	bool		plain = len >= 1 && len <= 48;
	char		hex[33];
	const char *errstr = NULL;

	for (int i = 0; plain && i < len; i++)
		plain = (stream[i] >= 'a' && stream[i] <= 'z') ||
			(stream[i] >= '0' && stream[i] <= '9') || stream[i] == '_';
	if (plain)
		return psprintf("state_%s", stream);
	if (!pg_md5_hash(stream, len, hex, &errstr))
		elog(ERROR, "could not compute MD5 hash: %s", errstr);
	return psprintf("state_%s", hex);
}

/*
 * Appends ,"name":[items...] to buf, as JSON strings, stopping before the
 * item that would take the payload past 7000 bytes.  Sets *truncated if an
 * item was left out here or before (more).
 */
static void
append_list(StringInfo buf, const char *name, char items[][DS_NOTIFY_ITEM], int n,
			bool more, bool *truncated)
{
	appendStringInfo(buf, ",\"%s\":[", name);
	for (int i = 0; i < n; i++)
	{
		/* stay well under NOTIFY's 8000-byte limit */
		if (buf->len + strlen(items[i]) * 6 + 2 > 7000)
		{
			more = true;
			break;
		}
		if (i > 0)
			appendStringInfoChar(buf, ',');
		escape_json(buf, items[i]);
	}
	appendStringInfoChar(buf, ']');
	if (more)
		*truncated = true;
}

/*
 * The NOTIFY payload of notice n for stream, palloc'd:
 * {"stream":…,"from":…,"to":…,"count":…,"types":[…],"txids":[…]} with
 * "more":true when a list was cut (or the stream name, over 2000 bytes,
 * left null); always under NOTIFY's 8000 bytes.
 */
char *
ds_notice_payload(const char *stream, const DsNotice *n)
{
	StringInfoData buf;
	bool		truncated = false;
	char	   *from = ds_format_offset(n->from);
	char	   *to = ds_format_offset(n->to);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"stream\":");
	if (strlen(stream) <= 2000)
		escape_json(&buf, stream);
	else
	{
		appendStringInfoString(&buf, "null");
		truncated = true;
	}
	appendStringInfo(&buf, ",\"from\":\"%s\",\"to\":\"%s\",\"count\":" INT64_FORMAT,
					 from, to, n->count);
	append_list(&buf, "types", (char (*)[DS_NOTIFY_ITEM]) n->types, n->ntypes,
				n->more_types, &truncated);
	append_list(&buf, "txids", (char (*)[DS_NOTIFY_ITEM]) n->txids, n->ntxids,
				n->more_txids, &truncated);
	if (truncated)
		appendStringInfoString(&buf, ",\"more\":true");
	appendStringInfoChar(&buf, '}');
	Assert(buf.len < 8000);
	return buf.data;
}

/*
 * Records what a batch that just succeeded did (called by apply.c): stream
 * stream_id wrote offsets from..to, events[0..nevents-1].  The record, in
 * TopTransactionContext, belongs to the current subtransaction level and
 * is acted on at commit (see notify_xact).
 */
void
ds_note_batch(int32 stream_id, const char *stream, int64 from, int64 to,
			  DsEvent *events, int nevents)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	DsTxnNote  *note = palloc0(sizeof(DsTxnNote));

	note->stream_id = stream_id;
	note->stream = pstrdup(stream);
	note->level = GetCurrentTransactionNestLevel();
	note->slot = -1;
	note->notice.from = from;
	note->notice.to = to;
	note->notice.count = nevents;
	for (int i = 0; i < nevents; i++)
	{
		DsEvent    *ev = &events[i];

		if (ev->control == DS_CTL_NONE)
			ds_notice_add_type(&note->notice, ev->type, ev->type_len);
		if (ev->txid)
		{
			ds_notice_add_txid(&note->notice, ev->txid, ev->txid_len);
			if (note->hashes == NULL)
				note->hashes = palloc(sizeof(uint64) * nevents);
			{
				uint64		h = ds_txid_hash(ev->txid, ev->txid_len);

				/* events of one client transaction share a txid */
				if (note->nhashes == 0 || note->hashes[note->nhashes - 1] != h)
					note->hashes[note->nhashes++] = h;
			}
		}
	}
	txn_notes = lappend(txn_notes, note);
	MemoryContextSwitchTo(old);
}

/*
 * Coalesces the batches' records into one per stream, in first-batch order,
 * in TopTransactionContext.  The txid hashes stay in the batches' records.
 */
static List *
coalesce_notes(void)
{
	List	   *streams = NIL;
	ListCell   *lc;
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

	foreach(lc, txn_notes)
	{
		DsTxnNote  *note = lfirst(lc);
		DsTxnNote  *st = NULL;
		ListCell   *lc2;

		foreach(lc2, streams)
		{
			DsTxnNote  *s = lfirst(lc2);

			if (s->stream_id == note->stream_id && strcmp(s->stream, note->stream) == 0)
				st = s;
		}
		if (st == NULL)
		{
			st = palloc0(sizeof(DsTxnNote));
			st->stream_id = note->stream_id;
			st->stream = note->stream;
			st->slot = -1;
			streams = lappend(streams, st);
		}
		ds_notice_merge(&st->notice, &note->notice);
	}
	MemoryContextSwitchTo(old);
	return streams;
}

/*
 * Queues the stream's NOTIFY in the current transaction (Async_Notify), so
 * Postgres delivers it at commit.
 */
static void
send_now(DsTxnNote *st)
{
	Async_Notify(ds_channel_name(st->stream), ds_notice_payload(st->stream, &st->notice));
	ds_count(DS_CNT_NOTIFICATIONS_SENT, 1);
}

/*
 * At pre-commit: coalesces the transaction's records per stream and, as
 * durable_state.notify says, queues a NOTIFY per stream or reserves a
 * worker slot per stream in shared memory (queueing the NOTIFY instead when
 * no slot can be had).  Errors here abort the transaction.
 */
static void
pre_commit(void)
{
	ListCell   *lc;

	txn_streams = coalesce_notes();
	foreach(lc, txn_streams)
	{
		DsTxnNote  *st = lfirst(lc);

		switch (ds_notify_mode)
		{
			case DS_NOTIFY_OFF:
				break;
			case DS_NOTIFY_WORKER:
				st->slot = ds_slot_reserve(st->stream_id, st->stream);
				if (st->slot >= 0)
					break;
				/* no worker here, or no free slot: notify ourselves */
				/* FALLTHROUGH */
			case DS_NOTIFY_COMMIT:
				send_now(st);
				break;
		}
	}
}

/*
 * After commit: fills the reserved slots (which wakes the worker), then
 * publishes every txid of the transaction to the shared ring with the end
 * of the commit record, waking their waiters.  Without shared memory there
 * are neither slots nor ring, and nothing is done.
 */
static void
after_commit(void)
{
	ListCell   *lc;
	int			n = 0;
	uint64	   *hashes;

	foreach(lc, txn_streams)
	{
		DsTxnNote  *st = lfirst(lc);

		if (st->slot >= 0)
		{
			ds_slot_fill(st->slot, &st->notice);
			st->slot = -1;
		}
	}
	if (ds_shared == NULL)
		return;
	foreach(lc, txn_notes)
		n += ((DsTxnNote *) lfirst(lc))->nhashes;
	if (n == 0)
		return;
	hashes = MemoryContextAlloc(TopTransactionContext, sizeof(uint64) * n);
	n = 0;
	foreach(lc, txn_notes)
	{
		DsTxnNote  *note = lfirst(lc);

		/* a batch without txids has no array: memcpy from NULL is undefined */
		if (note->nhashes == 0)
			continue;
		memcpy(hashes + n, note->hashes, sizeof(uint64) * note->nhashes);
		n += note->nhashes;
	}
	/* still this transaction's until the commit's last callback */
	ds_publish_txids(hashes, n, XactLastCommitEnd, GetTopFullTransactionIdIfAny());
	ds_count(DS_CNT_TXIDS_COMMITTED, n);
}

/*
 * At abort: gives back the worker slots pre_commit reserved (an error
 * after pre-commit aborts the transaction with them still reserved).
 */
static void
release_slots(void)
{
	ListCell   *lc;

	foreach(lc, txn_streams)
	{
		DsTxnNote  *st = lfirst(lc);

		if (st->slot >= 0)
		{
			ds_slot_release(st->slot);
			st->slot = -1;
		}
	}
}

/*
 * Wakes the waiting readers (waitread.c) of the streams the batches of
 * notes wrote: their events are readable, or their gap is.
 */
static void
wake_readers(List *notes)
{
	ListCell   *lc;
	int32		last = -1;

	foreach(lc, notes)
	{
		DsTxnNote  *note = lfirst(lc);

		if (note->stream_id != last)
			ds_wake_stream_readers(note->stream_id);
		last = note->stream_id;
	}
}

/*
 * Transaction callback: acts on the records at pre-commit and after commit,
 * gives reserved slots back at abort, and forgets the records (freed with
 * TopTransactionContext) when the transaction ends.  Refuses PREPARE
 * TRANSACTION of a transaction that applied events
 * (ERRCODE_FEATURE_NOT_SUPPORTED).
 */
static void
notify_xact(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (txn_notes != NIL)
				pre_commit();
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (txn_notes != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that applied state events"),
						 errdetail("The notifications and txid confirmations of state events happen at commit.")));
			break;
		case XACT_EVENT_COMMIT:
			if (txn_notes != NIL)
				after_commit();
			/* txids all rolled back to savepoints: nothing was published */
			ds_txid_unregister();
			wake_readers(txn_notes);
			txn_notes = txn_streams = NIL;
			break;
		case XACT_EVENT_ABORT:
			release_slots();
			ds_txid_unregister();
			/* a reader may be stopped at the gap the batches leave */
			wake_readers(txn_notes);
			txn_notes = txn_streams = NIL;
			break;
		default:
			break;
	}
}

/*
 * Subtransaction callback: a subtransaction that aborts takes its batches'
 * records with it; one that commits hands them to its parent.
 */
static void
notify_subxact(SubXactEvent event, SubTransactionId mySubid,
			   SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	if (txn_notes == NIL)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, txn_notes)
		{
			DsTxnNote  *note = lfirst(lc);

			if (note->level >= level)
			{
				/* its rows are rolled back: a reader at their gap may go on */
				ds_wake_stream_readers(note->stream_id);
				txn_notes = foreach_delete_current(txn_notes, lc);
			}
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, txn_notes)
		{
			DsTxnNote  *note = lfirst(lc);

			if (note->level >= level)
				note->level = level - 1;
		}
	}
}

static const struct config_enum_entry notify_options[] = {
	{"off", DS_NOTIFY_OFF, false},
	{"commit", DS_NOTIFY_COMMIT, false},
	{"worker", DS_NOTIFY_WORKER, false},
	{NULL, 0, false}
};

/* Registers durable_state.notify and the transaction callbacks. */
void
ds_notify_init(void)
{
	DefineCustomEnumVariable("durable_state.notify",
							 "How subscribers hear of committed events: commit (NOTIFY in the writing transaction), worker (coalesced by the background worker) or off.",
							 NULL,
							 &ds_notify_mode,
							 DS_NOTIFY_COMMIT, notify_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	RegisterXactCallback(notify_xact, NULL);
	RegisterSubXactCallback(notify_subxact, NULL);
}

/* ------------------------------------------------------------------------
 * state.publish(topic text, message jsonb, stream text)
 * ------------------------------------------------------------------------ */

/*
 * The offset a message published now follows in stream_id: the stream's
 * stable tail as of now (every batch at or below it had ended) or, if
 * higher, the last offset this transaction wrote to the stream.  A
 * subscriber delivers the message after the events up to it and before
 * the ones after it, whatever its reads and the notification's arrival
 * interleave.
 */
static int64
publish_after(int32 stream_id)
{
	int64		newest;
	TransactionId blocker;
	int64		after;
	ListCell   *lc;

	PushActiveSnapshot(GetLatestSnapshot());
	after = ds_stable_tail(stream_id, GetActiveSnapshot(), &newest, &blocker);
	PopActiveSnapshot();
	foreach(lc, txn_notes)
	{
		DsTxnNote  *note = lfirst(lc);

		if (note->stream_id == stream_id)
			after = Max(after, note->notice.to);
	}
	return after;
}

/*
 * Sends message (NULL: JSON null) on topic to the subscribers of stream, as
 * a NOTIFY on the stream's channel queued in the current transaction, so it
 * is delivered at commit, with the offset it follows (publish_after).
 * Raises ERRCODE_NULL_VALUE_NOT_ALLOWED for a null topic or stream,
 * ERRCODE_INVALID_PARAMETER_VALUE for an empty topic,
 * ERRCODE_UNDEFINED_OBJECT for an unknown stream, and
 * ERRCODE_PROGRAM_LIMIT_EXCEEDED if the notification would be 8000 bytes
 * or more.
 */
PG_FUNCTION_INFO_V1(ds_publish);

Datum
ds_publish(PG_FUNCTION_ARGS)
{
	text	   *topic;
	Jsonb	   *message;
	char	   *stream;
	int64		after;
	StringInfoData buf;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("topic and stream must not be null")));
	topic = PG_GETARG_TEXT_PP(0);
	stream = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (VARSIZE_ANY_EXHDR(topic) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("topic must be a non-empty string")));
	after = publish_after(ds_catalog_stream(stream, false)->id);	/* it must exist */
	message = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"stream\":");
	escape_json(&buf, stream);
	appendStringInfoString(&buf, ",\"topic\":");
	escape_json(&buf, text_to_cstring(topic));
	appendStringInfoString(&buf, ",\"message\":");
	if (message)
		(void) JsonbToCString(&buf, &message->root, VARSIZE(message));
	else
		appendStringInfoString(&buf, "null");
	appendStringInfo(&buf, ",\"after\":\"%s\"}", ds_format_offset(after));
	if (buf.len >= 8000)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("message for topic \"%s\" is too large to publish",
						ds_shorten(VARDATA_ANY(topic), VARSIZE_ANY_EXHDR(topic))),
				 errdetail("The notification would be %d bytes; NOTIFY takes less than 8000.",
						   buf.len),
				 errhint("Store large data with state.apply or state.put and publish its key.")));
	Async_Notify(ds_channel_name(stream), buf.data);
	ds_count(DS_CNT_MESSAGES_PUBLISHED, 1);
	PG_RETURN_VOID();
}
