/*
 * ttl.c
 *		Entity TTLs: state.put(..., ttl) records an expiry in state._expiry.
 *
 * Reads (get, get_many, get_type, snapshot) hide an entity from the moment
 * it expires; the worker then deletes it with a logged delete event
 * (state._expire).  Any later write or delete of the entity through a
 * batch clears its TTL (a put with a TTL sets a new one after its batch).
 * Only collections that ever had a TTL (state._collections.has_ttl) pay
 * for any of this.
 *
 * state._expiry is the extension's own table: callers need no privileges
 * on it.  The functions here check the caller's rights on the collection's
 * table, then read or write state._expiry as the extension's owner (as
 * foreign-key checks run as the table owner), with queries whose text is
 * fixed and whose names are all schema-qualified.
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "durable_state.h"

static SPIPlanPtr expired_plan = NULL;
static SPIPlanPtr clear_plan = NULL;
static SPIPlanPtr set_plan = NULL;
static SPIPlanPtr unset_plan = NULL;
static SPIPlanPtr flag_plan = NULL;
static SPIPlanPtr default_plan = NULL;

/* Runs SPI as the owner of state._expiry; saves what to restore. */
static void
become_owner(Oid *saved_user, int *saved_sec)
{
	Relation	rel = table_open(ds_catalog_oids()->expiry, AccessShareLock);
	Oid			owner = rel->rd_rel->relowner;

	table_close(rel, AccessShareLock);
	GetUserIdAndSecContext(saved_user, saved_sec);
	SetUserIdAndSecContext(owner, *saved_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/* Undoes become_owner: disconnects from SPI and restores the saved user. */
static void
restore_user(Oid saved_user, int saved_sec)
{
	SPI_finish();
	SetUserIdAndSecContext(saved_user, saved_sec);
}

/* qsort comparator of C string pointers, bytewise. */
static int
cstring_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * The keys of a collection's entities that have expired by the clock now
 * (sorted bytewise, allocated in the caller's context), their number in *n;
 * NULL with *n = 0 if none, or at once if the collection never had a TTL.
 * Reads state._expiry as its owner: the caller needs no privileges on it.
 */
char	  **
ds_ttl_expired_keys(DsCollection *coll, int *n)
{
	Oid			argtypes[2] = {INT4OID, TEXTOID};
	Datum		args[2];
	Oid			saved_user;
	int			saved_sec;
	MemoryContext callercxt = CurrentMemoryContext;
	char	  **keys = NULL;

	*n = 0;
	if (!coll->has_ttl)
		return NULL;
	args[0] = Int32GetDatum(coll->stream_id);
	args[1] = CStringGetTextDatum(coll->type);
	become_owner(&saved_user, &saved_sec);
	ds_keep_plan(&expired_plan,
			  "SELECT e.key FROM state._expiry e WHERE e.stream_id = $1 AND e.type = $2 "
			  "AND e.expires_at <= pg_catalog.clock_timestamp()", 2, argtypes);
	if (SPI_execute_plan(expired_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading expired keys failed");
	if (SPI_processed > 0)
	{
		MemoryContext old = MemoryContextSwitchTo(callercxt);

		keys = palloc(sizeof(char *) * SPI_processed);
		for (uint64 i = 0; i < SPI_processed; i++)
			keys[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		*n = (int) SPI_processed;
		MemoryContextSwitchTo(old);
		qsort(keys, *n, sizeof(char *), cstring_cmp);
	}
	restore_user(saved_user, saved_sec);
	return keys;
}

/*
 * Returns true if key (len bytes) is among keys[0..n-1], the sorted output
 * of ds_ttl_expired_keys; false otherwise.
 */
bool
ds_ttl_is_expired(char **keys, int n, const char *key, int len)
{
	int			lo = 0,
				hi = n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int			c = strncmp(key, keys[mid], len);

		if (c == 0 && keys[mid][len] != '\0')
			c = -1;				/* key is a proper prefix of keys[mid] */
		if (c == 0)
			return true;
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return false;
}

/*
 * A batch wrote or deleted these keys of a collection: their TTLs end, and
 * in a collection with a default TTL the entities it left in place expire
 * that long from now (a key may come more than once; its last event
 * decides).  keys are text datums, deleted[i] says whether keys[i]'s last
 * event deleted it.  Writes state._expiry as its owner, with one switch to
 * the owner for both statements.  Does nothing for a collection that never
 * had a TTL.
 */
void
ds_ttl_after_batch(DsCollection *coll, Datum *keys, bool *deleted, int nkeys)
{
	Oid			argtypes[5] = {INT4OID, TEXTOID, TEXTARRAYOID, BOOLARRAYOID, INTERVALOID};
	Datum		args[5];
	Oid			saved_user;
	int			saved_sec;

	if (!coll->has_ttl || nkeys == 0)
		return;
	args[0] = Int32GetDatum(coll->stream_id);
	args[1] = CStringGetTextDatum(coll->type);
	args[2] = PointerGetDatum(construct_array(keys, nkeys, TEXTOID, -1, false, TYPALIGN_INT));
	if (coll->default_ttl)
	{
		Datum	   *dels = palloc(sizeof(Datum) * nkeys);

		for (int i = 0; i < nkeys; i++)
			dels[i] = BoolGetDatum(deleted[i]);
		args[3] = PointerGetDatum(construct_array(dels, nkeys, BOOLOID, 1, true, TYPALIGN_CHAR));
		args[4] = IntervalPGetDatum(coll->default_ttl);
	}
	become_owner(&saved_user, &saved_sec);
	ds_keep_plan(&clear_plan,
			  "DELETE FROM state._expiry e WHERE e.stream_id = $1 AND e.type = $2 "
			  "AND e.key = ANY ($3)", 3, argtypes);
	if (SPI_execute_plan(clear_plan, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "clearing TTLs failed");
	if (coll->default_ttl)
	{
		ds_keep_plan(&default_plan,
				  "INSERT INTO state._expiry AS e (stream_id, type, key, expires_at) "
				  "SELECT $1, $2, s.k, pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) $5 "
				  "  FROM (SELECT DISTINCT ON (u.k) u.k, u.d "
				  "          FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4)) "
				  "               WITH ORDINALITY AS u(k, d, o) "
				  "         ORDER BY u.k, u.o DESC) s "
				  " WHERE NOT s.d "
				  "ON CONFLICT (stream_id, type, key) DO UPDATE SET expires_at = EXCLUDED.expires_at",
				  5, argtypes);
		if (SPI_execute_plan(default_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "setting default TTLs failed");
	}
	restore_user(saved_user, saved_sec);
}

/*
 * state._ttl_set(stream text, type text, key text, expires_at timestamptz):
 * the entity expires then (NULL: never).  The first TTL of a collection
 * sets its has_ttl and invalidates every backend's catalog cache at commit.
 * Raises ERRCODE_NULL_VALUE_NOT_ALLOWED for a null stream, type or key,
 * the errors of ds_catalog_stream and ds_stream_collection, and
 * ERRCODE_INSUFFICIENT_PRIVILEGE unless the caller may insert, update and
 * delete in the collection's table (an expiry deletes the entity).
 */
PG_FUNCTION_INFO_V1(ds_ttl_set);

Datum
ds_ttl_set(PG_FUNCTION_ARGS)
{
	char	   *stream;
	text	   *type;
	text	   *key;
	DsStream   *s;
	DsCollection *coll;
	Relation	rel;
	AclMode		need = ACL_INSERT | ACL_UPDATE | ACL_DELETE;
	Oid			saved_user;
	int			saved_sec;
	Datum		args[4];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream, type and key must not be null")));
	stream = text_to_cstring(PG_GETARG_TEXT_PP(0));
	type = PG_GETARG_TEXT_PP(1);
	key = PG_GETARG_TEXT_PP(2);
	s = ds_catalog_stream(stream, false);
	coll = ds_stream_collection(s, VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type), false);
	rel = table_open(coll->relid, AccessShareLock);
	if (pg_class_aclmask(coll->relid, GetUserId(), need, ACLMASK_ALL) != need)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, RelationGetRelationName(rel));
	table_close(rel, AccessShareLock);

	args[0] = Int32GetDatum(coll->stream_id);
	args[1] = PointerGetDatum(type);
	args[2] = PointerGetDatum(key);
	become_owner(&saved_user, &saved_sec);
	if (PG_ARGISNULL(3))
	{
		Oid			argtypes[3] = {INT4OID, TEXTOID, TEXTOID};

		ds_keep_plan(&unset_plan,
				  "DELETE FROM state._expiry e WHERE e.stream_id = $1 AND e.type = $2 "
				  "AND e.key = $3", 3, argtypes);
		if (SPI_execute_plan(unset_plan, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "clearing a TTL failed");
	}
	else
	{
		Oid			argtypes[4] = {INT4OID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
		Oid			flagtypes[2] = {INT4OID, TEXTOID};

		args[3] = PG_GETARG_DATUM(3);
		ds_keep_plan(&set_plan,
				  "INSERT INTO state._expiry AS e (stream_id, type, key, expires_at) "
				  "VALUES ($1, $2, $3, $4) ON CONFLICT (stream_id, type, key) "
				  "DO UPDATE SET expires_at = EXCLUDED.expires_at", 4, argtypes);
		if (SPI_execute_plan(set_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "setting a TTL failed");
		/* the first TTL of a collection turns the checks on everywhere */
		if (!coll->has_ttl)
		{
			ds_keep_plan(&flag_plan,
					  "UPDATE state._collections c SET has_ttl = true "
					  "WHERE c.stream_id = $1 AND c.type = $2 AND NOT c.has_ttl",
					  2, flagtypes);
			if (SPI_execute_plan(flag_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "marking the collection failed");
			CacheInvalidateRelcacheByRelid(ds_catalog_oids()->collections);
		}
	}
	restore_user(saved_user, saved_sec);
	PG_RETURN_VOID();
}
