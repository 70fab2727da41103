/*
 * cache.c
 *		The per-backend cache of compiled JSON Schemas.
 *
 * Compiling a schema costs far more than validating a small value with it,
 * and a backend validates with few distinct schemas, so up to
 * DS_SCHEMA_CACHE_SIZE compiled schemas are kept, keyed by the schema's
 * jsonb bytes and evicted least recently used first.  Each compiled schema
 * has its own memory context, a child of "ds jsonschema cache" (under
 * CacheMemoryContext); ds_schema_cache_reset drops them all.
 *
 * A batch of state.apply may hold a compiled schema for the rest of its
 * transaction ("pinned" with the transaction's local id): eviction skips
 * it, and a reset hands its context to TopTransactionContext instead of
 * freeing it under the batch.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "storage/proc.h"
#include "utils/memutils.h"

#include "jsonschema_int.h"
#include "compat.h"

#define DS_SCHEMA_CACHE_SIZE 64

/* a cached compiled schema */
typedef struct JsCacheEntry
{
	uint32		hash;
	Jsonb	   *key;			/* copy of the schema bytes */
	JsonSchema *schema;
	uint64		last_used;
	LocalTransactionId pinned;	/* in use by a batch of this transaction */
} JsCacheEntry;

static MemoryContext cache_cxt = NULL;
static JsCacheEntry cache[DS_SCHEMA_CACHE_SIZE];
static int	cache_n = 0;
static uint64 cache_clock = 0;
static int	cache_last = -1;	/* entry returned last */
static uint64 cache_generation = 1; /* changes whenever an entry goes */

/*
 * Forget every compiled schema.  Entries pinned by the running transaction
 * may be in use by a batch up the stack (a trigger can register a
 * document): their memory goes with the transaction instead.
 */
void
ds_schema_cache_reset(void)
{
	for (int i = 0; i < cache_n; i++)
		if (cache[i].pinned == ds_my_lxid())
			MemoryContextSetParent(cache[i].schema->cxt, TopTransactionContext);
	if (cache_cxt)
		MemoryContextDelete(cache_cxt);
	cache_generation++;
	cache_cxt = NULL;
	cache_n = 0;
	cache_last = -1;
}

/*
 * Make a document available to "$ref" by absolute URI (uri.c keeps it for
 * the backend's life), and forget every compiled schema, since some may
 * have resolved references to a document registered before under the same
 * URI.
 */
void
ds_schema_register_document(const char *uri, Jsonb *doc)
{
	js_register_document(uri, doc);
	ds_schema_cache_reset();
}

/*
 * The compiled form of schema, from the cache or compiled into it (an
 * invalid schema raises ERROR and caches nothing).  With pin, the entry is
 * not evicted until the current transaction ends; if every entry is so
 * held, the schema is compiled into private_cxt and not cached.
 */
static JsonSchema *
cache_lookup(Jsonb *schema, bool pin, MemoryContext private_cxt)
{
	uint32		size = VARSIZE(schema);
	uint32		hash;
	int			i;
	int			victim;
	JsonSchema *s;
	MemoryContext old;

	/* callers mostly repeat the previous schema: try it before hashing */
	if (cache_last >= 0 && cache_last < cache_n &&
		VARSIZE(cache[cache_last].key) == size &&
		memcmp(cache[cache_last].key, schema, size) == 0)
	{
		i = cache_last;
		goto hit;
	}
	hash = hash_bytes((const unsigned char *) schema, size);
	for (i = 0; i < cache_n; i++)
		if (cache[i].hash == hash && VARSIZE(cache[i].key) == size &&
			memcmp(cache[i].key, schema, size) == 0)
			goto hit;

	/*
	 * Compile under the caller's context first, so that an invalid schema
	 * leaves nothing behind; adopt it into the cache once it succeeded.
	 */
	s = ds_schema_compile(schema, pin ? private_cxt : CurrentMemoryContext);
	if (cache_n < DS_SCHEMA_CACHE_SIZE)
		victim = cache_n++;
	else
	{
		/* the least recently used entry that no batch of ours holds */
		victim = -1;
		for (i = 0; i < cache_n; i++)
			if (cache[i].pinned != ds_my_lxid() &&
				(victim < 0 || cache[i].last_used < cache[victim].last_used))
				victim = i;
		if (victim < 0)
			return s;			/* all in use: the caller keeps a private copy */
		/* the key copy lives in the schema's context */
		MemoryContextDelete(cache[victim].schema->cxt);
		cache_generation++;
	}
	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(CacheMemoryContext, "ds jsonschema cache",
										  ALLOCSET_SMALL_SIZES);
	MemoryContextSetParent(s->cxt, cache_cxt);
	old = MemoryContextSwitchTo(s->cxt);
	cache[victim].key = palloc(size);
	memcpy(cache[victim].key, schema, size);
	MemoryContextSwitchTo(old);
	cache[victim].hash = hash;
	cache[victim].schema = s;
	cache[victim].pinned = InvalidLocalTransactionId;
	i = victim;

hit:
	cache[i].last_used = ++cache_clock;
	if (pin)
		cache[i].pinned = ds_my_lxid();
	cache_last = i;
	return cache[i].schema;
}

/* Compiled schema, valid for the current call. */
JsonSchema *
ds_schema_get(Jsonb *schema)
{
	return cache_lookup(schema, false, NULL);
}

/*
 * A number that changes whenever a compiled schema leaves the cache: a
 * caller that kept a JsonSchema pointer may keep using it while this
 * stays the same.
 */
uint64
ds_schema_cache_generation(void)
{
	return cache_generation;
}

/*
 * Compiled schema, valid until the end of the transaction: the cache does
 * not evict it meanwhile (if every entry is so held, the schema is compiled
 * into private_cxt instead).
 */
JsonSchema *
ds_schema_get_pinned(Jsonb *schema, MemoryContext private_cxt)
{
	return cache_lookup(schema, true, private_cxt);
}
