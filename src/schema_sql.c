/*
 * schema_sql.c
 *		state.json_schema_validate, state.json_schema_errors and
 *		state.json_schema_register: the validator of jsonschema.c from SQL.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "nodes/primnodes.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/tuplestore.h"

#include "durable_state.h"
#include "jsonschema.h"

/* the compiled schema of a call site whose schema argument is a constant */
typedef struct SchemaCallCache
{
	bool		constant;		/* is the argument a Const? */
	Datum		arg;			/* the argument it was compiled for */
	uint64		generation;		/* ds_schema_cache_generation() then */
	JsonSchema *schema;
} SchemaCallCache;

/* Is argument 0 of the call a Const of the expression tree? */
static bool
schema_arg_is_const(FmgrInfo *flinfo)
{
	Node	   *expr = flinfo->fn_expr;
	List	   *args;

	if (expr == NULL || !IsA(expr, FuncExpr))
		return false;
	args = ((FuncExpr *) expr)->args;
	return list_length(args) >= 1 && IsA(linitial(args), Const);
}

/*
 * The compiled schema argument 0.  A constant is the same datum for every
 * row: kept in fn_extra, it costs no cache lookup (which compares the
 * schema's bytes) per row, as long as the cache has not dropped it.  Any
 * other argument, a Param included, goes through the cache every call: a
 * PL/pgSQL variable is an external Param whose value (and even its value's
 * address) may change between calls through the same FmgrInfo.
 */
static JsonSchema *
schema_arg(FunctionCallInfo fcinfo)
{
	SchemaCallCache *cc = fcinfo->flinfo->fn_extra;
	Datum		arg = PG_GETARG_DATUM(0);

	if (cc == NULL)
	{
		cc = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(SchemaCallCache));
		cc->constant = schema_arg_is_const(fcinfo->flinfo);
		fcinfo->flinfo->fn_extra = cc;
	}
	else if (cc->constant && cc->schema != NULL && cc->arg == arg &&
			 cc->generation == ds_schema_cache_generation())
		return cc->schema;
	if (!cc->constant)
		return ds_schema_get(PG_GETARG_JSONB_P(0));
	cc->schema = ds_schema_get(PG_GETARG_JSONB_P(0));
	cc->arg = arg;
	cc->generation = ds_schema_cache_generation();
	return cc->schema;
}

/*
 * state.json_schema_validate(schema, value, assert_formats): is value valid?
 * Stops at the first failure.
 */
PG_FUNCTION_INFO_V1(ds_json_schema_validate);

Datum
ds_json_schema_validate(PG_FUNCTION_ARGS)
{
	JsonSchema *schema = schema_arg(fcinfo);
	Jsonb	   *value = PG_GETARG_JSONB_P(1);
	bool		assert_formats = PG_GETARG_BOOL(2);
	JsonbValue	v;

	ds_jsonb_root_value(value, &v);
	PG_RETURN_BOOL(ds_schema_validate(schema, &v, assert_formats, NULL));
}

/*
 * state.json_schema_errors(schema, value, assert_formats): one row (path,
 * keyword, message) per failure, none when value is valid.
 */
PG_FUNCTION_INFO_V1(ds_json_schema_errors);

Datum
ds_json_schema_errors(PG_FUNCTION_ARGS)
{
	Jsonb	   *schema = PG_GETARG_JSONB_P(0);
	Jsonb	   *value = PG_GETARG_JSONB_P(1);
	bool		assert_formats = PG_GETARG_BOOL(2);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	JsonbValue	v;
	List	   *errors = NIL;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	ds_jsonb_root_value(value, &v);
	ds_schema_validate(ds_schema_get(schema), &v, assert_formats, &errors);
	foreach(lc, errors)
	{
		JsonSchemaError *e = lfirst(lc);
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = CStringGetTextDatum(e->path);
		values[1] = CStringGetTextDatum(e->keyword);
		values[2] = CStringGetTextDatum(e->message);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * Registers a document that schemas may $ref by URI (this session only):
 * what a validator that cannot fetch over the network needs for remote
 * references.
 */
PG_FUNCTION_INFO_V1(ds_json_schema_register);

Datum
ds_json_schema_register(PG_FUNCTION_ARGS)
{
	char	   *uri = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Jsonb	   *doc = PG_GETARG_JSONB_P(1);

	if (ds_batch_in_progress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("state.json_schema_register cannot run inside state.apply"),
				 errdetail("Registering a document drops the compiled schemas that the running batch may be using.")));

	ds_schema_register_document(uri, doc);
	PG_RETURN_VOID();
}
