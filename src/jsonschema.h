/*
 * jsonschema.h
 *		JSON Schema validation over jsonb: drafts 4, 6, 7, 2019-09 and 2020-12.
 *
 * A schema is compiled once into a JsonSchema (keyword lists per schema
 * object, resolved references, compiled regular expressions) and values are
 * validated by walking that compiled form.  ds_schema_get() keeps a small
 * per-backend cache of compiled schemas keyed by the schema's jsonb bytes.
 */
#ifndef DS_JSONSCHEMA_H
#define DS_JSONSCHEMA_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/palloc.h"

typedef struct JsonSchema JsonSchema;

/* One validation failure, as returned through ds_schema_validate's list. */
typedef struct JsonSchemaError
{
	char	   *path;			/* JSON Pointer into the value ("" = root) */
	char	   *keyword;		/* failing keyword, e.g. "required" */
	char	   *message;		/* human-readable explanation */
} JsonSchemaError;

/*
 * Compile a schema into a new memory context created under cxt (delete that
 * context, or call ds_schema_free, to release it).  An invalid schema raises
 * ERROR with SQLSTATE 22023.
 */
extern JsonSchema *ds_schema_compile(Jsonb *schema, MemoryContext cxt);
extern void ds_schema_free(JsonSchema *s);

/* Compiled schema from the per-backend cache (compiling on a miss). */
extern JsonSchema *ds_schema_get(Jsonb *schema);
extern JsonSchema *ds_schema_get_pinned(Jsonb *schema, MemoryContext private_cxt);
extern void ds_schema_cache_reset(void);
extern uint64 ds_schema_cache_generation(void);

/*
 * Validate a value (jbvBinary or any scalar/in-memory JsonbValue).  With
 * errors == NULL validation stops at the first failure; otherwise every
 * failure is appended (as JsonSchemaError *) to *errors, allocated in the
 * caller's memory context.  assert_formats makes "format" an assertion for
 * every format the specification defines, and the content keywords
 * (contentEncoding base64, contentMediaType application/json,
 * contentSchema) assertions too.
 */
extern bool ds_schema_validate(JsonSchema *s, JsonbValue *value,
							   bool assert_formats, List **errors);

/*
 * Make a document available to "$ref" by absolute URI (backend-local; used
 * for remote schemas).  Resets the compiled-schema cache.
 */
extern void ds_schema_register_document(const char *uri, Jsonb *doc);

#endif							/* DS_JSONSCHEMA_H */
