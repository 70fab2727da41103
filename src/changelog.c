/*
 * changelog.c
 *		Stream rows: the per-stream lock that orders the log, offsets, and
 *		the bookkeeping written back after a batch.
 *
 * A batch locks its stream's row in state._streams (SELECT ... FOR UPDATE)
 * before it applies anything and keeps the lock to commit.  Seq numbers are
 * therefore handed out in commit order: a reader whose snapshot sees a
 * batch also sees every batch with smaller offsets, so "everything after
 * offset X" never misses a later-committing smaller offset.  The two
 * statements are prepared once per backend (SPI_keepplan); the plan cache
 * replans them if the catalog changes.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "durable_state.h"

static SPIPlanPtr lock_plan = NULL;
static SPIPlanPtr update_plan = NULL;

char *
ds_format_offset(int64 seq)
{
	return psprintf("%020lld", (long long) seq);
}

/*
 * Locks the stream's row and reads its state.  Returns false if the stream
 * does not exist.  Must be called inside SPI_connect.
 */
bool
ds_stream_lock(const char *name, DsStreamState *st)
{
	Datum		arg = CStringGetTextDatum(name);
	int			ret;
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;

	if (lock_plan == NULL)
	{
		Oid			argtypes[1] = {TEXTOID};
		SPIPlanPtr	p = SPI_prepare("SELECT id, tail, retained_from, source_offset, in_snapshot "
									"FROM state._streams WHERE name = $1 FOR UPDATE",
									1, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		lock_plan = p;
	}
	ret = SPI_execute_plan(lock_plan, &arg, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "locking stream failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return false;

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	st->id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
	st->tail = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
	st->retained_from = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	st->source_offset = SPI_getvalue(tup, desc, 4);
	st->in_snapshot = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
	return true;
}

/* Writes the stream's new state after a batch (inside SPI_connect). */
void
ds_stream_update(DsStreamState *st, int64 applied, bool skipped,
				 const char *source_offset)
{
	Oid			argtypes[6] = {INT4OID, INT8OID, INT8OID, TEXTOID, BOOLOID, BOOLOID};
	Datum		args[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	int			ret;

	if (update_plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare("UPDATE state._streams SET tail = $2, "
									"events_applied = events_applied + $3, "
									"source_offset = coalesce($4, source_offset), "
									"in_snapshot = $5, "
									"batches_applied = batches_applied + (NOT $6)::int, "
									"batches_skipped = batches_skipped + ($6)::int, "
									"updated_at = now() WHERE id = $1",
									6, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		update_plan = p;
	}
	args[0] = Int32GetDatum(st->id);
	args[1] = Int64GetDatum(st->tail);
	args[2] = Int64GetDatum(applied);
	if (source_offset)
		args[3] = CStringGetTextDatum(source_offset);
	else
		nulls[3] = 'n';
	args[4] = BoolGetDatum(st->in_snapshot);
	args[5] = BoolGetDatum(skipped);
	ret = SPI_execute_plan(update_plan, args, nulls, false, 0);
	if (ret != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "updating stream failed: %s", SPI_result_code_string(ret));
}
