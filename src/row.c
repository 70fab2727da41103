/*
 * row.c
 *		The row an event writes: formed from its value, checked against the
 *		key, the collection's JSON Schema and the event's old_value.
 *
 * A document collection stores the value as sent in its value column; a
 * typed one maps each member to the column of that name (convert.c), keeps
 * what a column cannot give back exactly in the extra column, and fills in
 * the columns the value leaves out the way INSERT and UPDATE would.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/typcache.h"

#include "apply.h"
#include "compat.h"

/*
 * A validator message (lower case, no period) as the start of a sentence:
 * its first letter in upper case.
 */
static char *
sentence(const char *msg)
{
	char	   *s = pstrdup(msg);

	if (s[0] >= 'a' && s[0] <= 'z')
		s[0] += 'A' - 'a';
	return s;
}

/*
 * Does a JSON member equal the event key?  Strings and numbers compare as
 * text ("7" and 7 both match key "7"); other kinds never match.
 */
static bool
member_matches_key(JsonbValue *v, DsEvent *ev)
{
	char	   *s;
	int			len;

	if (v->type == jbvString)
		return v->val.string.len == ev->key_len &&
			memcmp(v->val.string.val, ev->key, ev->key_len) == 0;
	if (v->type != jbvNumeric)
		return false;
	s = ds_jsonb_value_text(v, &len);
	return len == ev->key_len && memcmp(s, ev->key, len) == 0;
}

/* Raise the error of a primary-key member v that is not the event key. */
static pg_noreturn void
pk_mismatch(DsCollState *cs, DsEvent *ev, JsonbValue *v)
{
	int			len;
	char	   *text;

	if (v->type == jbvString)
	{
		Jsonb	   *jb = JsonbValueToJsonb(v);	/* quoted, as JSON */

		text = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
		len = strlen(text);
	}
	else
		text = ds_jsonb_value_text(v, &len);

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("primary key member \"%s\" of the value does not match the event key",
					cs->coll->primary_key),
			 errdetail("The value has %s, the key is \"%s\".",
					   ds_shorten(text, len),
					   ds_shorten(ev->key, ev->key_len)),
			 errhint("Omit the member or set it to the event key.")));
}

/*
 * The member a typed collection fills in from the key: a number for a
 * numeric key column, else a string.
 */
static void
key_member(DsCollState *cs, DsEvent *ev, JsonbValue *k)
{
	if (cs->ri.pkcol->typcategory == TYPCATEGORY_NUMERIC)
	{
		k->type = jbvNumeric;
		k->val.numeric = DatumGetNumeric(
			DirectFunctionCall3(numeric_in,
								CStringGetDatum(pnstrdup(ev->key, ev->key_len)),
								ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	}
	else
	{
		k->type = jbvString;
		k->val.string.val = (char *) ev->key;
		k->val.string.len = ev->key_len;
	}
}

/*
 * The value a typed collection's schema checks: the event's object value
 * with the primary-key member added from the key if the value leaves it
 * out (as the stored row will have it).  Other values are checked as sent.
 */
static JsonbValue
value_with_key(DsCollState *cs, DsEvent *ev)
{
	JsonbValue	checked = ev->value;
	JsonbValue	pk;
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbValue	v,
			   *res = NULL;
	JsonbIteratorToken tok;
	Jsonb	   *jb;

	if (cs->coll->kind == DS_KIND_DOCUMENT || checked.type != jbvBinary ||
		!JsonContainerIsObject(checked.val.binary.data) ||
		getKeyJsonValueFromContainer(checked.val.binary.data, cs->coll->primary_key,
									 strlen(cs->coll->primary_key), &pk))
		return checked;

	/* copy the members (nested values stay binary), then add the key */
	it = JsonbIteratorInit(checked.val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_END_OBJECT)
		{
			JsonbValue	k;

			k.type = jbvString;
			k.val.string.val = cs->coll->primary_key;
			k.val.string.len = strlen(cs->coll->primary_key);
			pushJsonbValue(&state, WJB_KEY, &k);
			key_member(cs, ev, &k);
			pushJsonbValue(&state, WJB_VALUE, &k);
		}
		res = pushJsonbValue(&state, tok,
							 tok == WJB_KEY || tok == WJB_VALUE ? &v : NULL);
	}
	jb = JsonbValueToJsonb(res);
	ds_jsonb_root_value(jb, &checked);
	return checked;
}

/*
 * Check an event's value against its collection's JSON Schema, raising
 * 23514 with the first error's path and keyword (its explanation in the
 * detail) if it does not hold.  A typed collection fills the primary-key
 * member in from the key, so the value is checked with it filled in.  Only
 * a failure pays for collecting the errors.
 */
void
ds_check_schema(DsCollState *cs, DsEvent *ev)
{
	JsonbValue	checked = value_with_key(cs, ev);
	List	   *errors = NIL;
	JsonSchemaError *e;

	if (ds_schema_validate(cs->schema, &checked, cs->coll->assert_formats, NULL))
		return;
	ds_schema_validate(cs->schema, &checked, cs->coll->assert_formats, &errors);
	if (errors == NIL)
		elog(ERROR, "schema validation failed without an error");
	e = linitial(errors);
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 e->path[0] ?
			 errmsg("value violates the schema of collection \"%s\" at \"%s\" (keyword \"%s\")",
					cs->coll->name, e->path, e->keyword) :
			 errmsg("value violates the schema of collection \"%s\" at the top level (keyword \"%s\")",
					cs->coll->name, e->keyword),
			 list_length(errors) > 1 ?
			 errdetail("%s. It is the first of %d schema errors.",
					   sentence(e->message), list_length(errors)) :
			 errdetail("%s.", sentence(e->message)),
			 errhint("state.json_schema_errors(schema, value) lists every error.")));
}

/* Push an object built apart (obj, its END_OBJECT result) as a member value. */
static void
push_object(JsonbParseState **state, JsonbValue *obj)
{
	JsonbValue	jv;

	ds_jsonb_root_value(JsonbValueToJsonb(obj), &jv);
	pushJsonbValue(state, WJB_VALUE, &jv);
}

/*
 * The extra column's value: {"exact": {member: [as applied, as the column
 * reads back]}, "members": {member without a column: value}}, from the two
 * objects being built (either may be NULL, not both).
 */
static Jsonb *
extra_value(JsonbParseState *exact, JsonbParseState *members)
{
	JsonbParseState *state = NULL;
	JsonbValue	k;
	JsonbValue *part;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	if (exact)
	{
		part = pushJsonbValue(&exact, WJB_END_OBJECT, NULL);
		k.val.string.val = "exact";
		k.val.string.len = 5;
		pushJsonbValue(&state, WJB_KEY, &k);
		push_object(&state, part);
	}
	if (members)
	{
		part = pushJsonbValue(&members, WJB_END_OBJECT, NULL);
		k.val.string.val = "members";
		k.val.string.len = 7;
		pushJsonbValue(&state, WJB_KEY, &k);
		push_object(&state, part);
	}
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/* Give the row being formed (cs->newslot) this value in column attnum. */
static inline void
set_column(DsCollState *cs, AttrNumber attnum, Datum d, bool isnull)
{
	cs->newslot->tts_values[attnum - 1] = d;
	cs->newslot->tts_isnull[attnum - 1] = isnull;
	cs->provided[attnum - 1] = true;
}

/*
 * A document collection's row: the value as sent, after checking that a
 * primary-key member of an object value, if any, equals the key.
 */
static void
form_document(DsCollState *cs, DsEvent *ev)
{
	JsonbValue	pkv;

	if (ev->value.type == jbvBinary && JsonContainerIsObject(ev->value.val.binary.data) &&
		getKeyJsonValueFromContainer(ev->value.val.binary.data, cs->coll->primary_key,
									 strlen(cs->coll->primary_key), &pkv) &&
		!member_matches_key(&pkv, ev))
		pk_mismatch(cs, ev, &pkv);
	set_column(cs, cs->ri.valuecol->attnum,
			   JsonbPGetDatum(JsonbValueToJsonb(&ev->value)), false);
}

/*
 * The column of a typed value's member k, or NULL if the member has none
 * and is dropped or kept in the extra column (pushed onto *members).
 * Raises 23514 for a member without a column the collection does not
 * allow.
 */
static DsColumn *
member_column(DsCollState *cs, JsonbValue *k, JsonbValue *v,
			  JsonbParseState **members)
{
	DsColumn   *col = ds_relinfo_column(&cs->ri, k->val.string.val, k->val.string.len);

	if (col == NULL)
	{
		if (cs->ri.extracol)
		{
			/* kept as is in the extra column */
			if (*members == NULL)
				pushJsonbValue(members, WJB_BEGIN_OBJECT, NULL);
			pushJsonbValue(members, WJB_KEY, k);
			pushJsonbValue(members, WJB_VALUE, v);
			return NULL;
		}
		if (cs->coll->allow_extra)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("value member \"%s\" has no column in table \"%s\"",
						ds_shorten(k->val.string.val, k->val.string.len),
						RelationGetRelationName(cs->rel)),
				 errhint("Add the column, or create the collection with allow_extra => true to ignore such members.")));
	}
	return col;
}

/*
 * A typed collection's row: each member of the object value in the column
 * of its name (convert.c), the key member checked against the key, and the
 * extra column (if any) set to what the columns cannot give back exactly
 * plus the members without a column.
 */
static void
form_typed(DsCollState *cs, DsEvent *ev)
{
	DsRelInfo  *ri = &cs->ri;
	JsonbContainer *obj;
	int			n;
	char	   *base;
	uint32		kend = 0;		/* where the data of the key before ends */
	uint32		vend = 0;		/* likewise the value before */
	JsonbValue	k,
				v;
	JsonbParseState *exact = NULL,
			   *members = NULL;

	if (ev->value.type != jbvBinary || !JsonContainerIsObject(ev->value.val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("value of typed collection \"%s\" must be an object", cs->coll->name)));

	/*
	 * The members in their stored order, as JsonbIteratorNext would give
	 * them, walking the keys' entries and the values' side by side.
	 */
	obj = ev->value.val.binary.data;
	n = JsonContainerSize(obj);
	base = (char *) &obj->children[n * 2];
	for (int i = 0; i < n; i++)
		JBE_ADVANCE_OFFSET(vend, obj->children[i]);
	for (int i = 0; i < n; i++)
	{
		JEntry		ke = obj->children[i];
		JEntry		ve = obj->children[n + i];
		uint32		kstart = kend;
		uint32		vstart = vend;
		DsColumn   *col;
		bool		isnull;
		Datum		d;
		JsonbValue	canonical;

		JBE_ADVANCE_OFFSET(kend, ke);
		JBE_ADVANCE_OFFSET(vend, ve);
		ds_jsonb_entry_value(ke, base, kstart, kend, &k);
		ds_jsonb_entry_value(ve, base, vstart, vend, &v);
		col = member_column(cs, &k, &v, &members);
		if (col == NULL)
			continue;
		if (col == ri->pkcol)
		{
			if (!member_matches_key(&v, ev))
				pk_mismatch(cs, ev, &v);
			continue;
		}
		if (col->attgenerated || col->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
			ereport(ERROR,
					(errcode(ERRCODE_GENERATED_ALWAYS),
					 errmsg("value member \"%s\" sets column \"%s\", which is %s",
							col->name, col->name,
							col->attgenerated ? "generated" : "GENERATED ALWAYS AS IDENTITY"),
					 errhint("Leave the member out of the value.")));
		d = ds_json_to_datum(col, &v, &isnull);
		set_column(cs, col->attnum, d, isnull);
		if (ri->extracol && !ds_renders_exactly(col, &v, d, isnull, &canonical))
		{
			/* keep the JSON as applied, with what the column reads back as */
			if (exact == NULL)
				pushJsonbValue(&exact, WJB_BEGIN_OBJECT, NULL);
			pushJsonbValue(&exact, WJB_KEY, &k);
			pushJsonbValue(&exact, WJB_BEGIN_ARRAY, NULL);
			pushJsonbValue(&exact, WJB_ELEM, &v);
			pushJsonbValue(&exact, WJB_ELEM, &canonical);
			pushJsonbValue(&exact, WJB_END_ARRAY, NULL);
		}
	}
	if (ri->extracol)
	{
		if (exact || members)
			set_column(cs, ri->extracol->attnum,
					   JsonbPGetDatum(extra_value(exact, members)), false);
		else
			set_column(cs, ri->extracol->attnum, (Datum) 0, true);
	}
}

/*
 * Build the row an event stores into cs->newslot: the key, the value
 * (form_document, form_typed), the version (1 when inserted, one more than
 * the stored row's on update: found says whether cs->oldslot holds one),
 * and for the columns the value leaves out the stored value or the column
 * default.  Raises an error for a value that does not fit the table.
 * Default expressions run in estate's per-tuple context.
 */
void
ds_form_row(EState *estate, DsCollState *cs, DsEvent *ev, Datum key, bool found)
{
	TupleTableSlot *slot = cs->newslot;
	DsRelInfo  *ri = &cs->ri;
	int			natts = ri->natts;
	ExprContext *econtext = GetPerTupleExprContext(estate);

	ExecClearTuple(slot);
	for (int i = 0; i < natts; i++)
	{
		slot->tts_isnull[i] = true;
		slot->tts_values[i] = (Datum) 0;
		cs->provided[i] = false;
	}
	set_column(cs, ri->pkcol->attnum, key, false);
	if (cs->coll->kind == DS_KIND_DOCUMENT)
		form_document(cs, ev);
	else
		form_typed(cs, ev);

	if (ri->versioncol)
	{
		int64		version = 1;

		if (found)
		{
			bool		isnull;
			Datum		d = slot_getattr(cs->oldslot, ri->versioncol->attnum, &isnull);

			if (!isnull)
				version = DatumGetInt64(d) + 1;
		}
		set_column(cs, ri->versioncol->attnum, Int64GetDatum(version), false);
	}

	/*
	 * Members the value leaves out: a column with a default (or identity)
	 * gets it on insert and keeps its value on update, as it would through
	 * INSERT and UPDATE; any other column is NULL, since an update replaces
	 * the value.
	 */
	for (int i = 0; i < natts; i++)
	{
		if (cs->provided[i] || cs->defaults[i] == NULL)
			continue;
		if (found)
			slot->tts_values[i] = slot_getattr(cs->oldslot, i + 1, &slot->tts_isnull[i]);
		else
			slot->tts_values[i] = ExecEvalExprSwitchContext(cs->defaults[i], econtext,
															&slot->tts_isnull[i]);
	}
	ExecStoreVirtualTuple(slot);
}

/* The stored value as shortened JSON text, for messages. */
static char *
stored_text(Jsonb *jb)
{
	char	   *s = JsonbToCString(NULL, &jb->root, VARSIZE(jb));

	return ds_shorten(s, strlen(s));
}

/*
 * For a typed collection, old_value matches when each of its members equals
 * the stored column, compared as the column's type (so "...Z" and
 * "...+00:00" are the same timestamp); members it leaves out are not
 * compared.
 */
static bool
typed_old_value_matches(DsCollState *cs, DsEvent *ev)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;

	if (ev->old_value.type != jbvBinary || !JsonContainerIsObject(ev->old_value.val.binary.data))
		return false;
	it = JsonbIteratorInit(ev->old_value.val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		DsColumn   *col;
		bool		isnull,
					snull;
		Datum		d,
					stored;
		TypeCacheEntry *tce;

		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &v, true);
		col = ds_relinfo_column(&cs->ri, k.val.string.val, k.val.string.len);
		if (col == NULL)
		{
			JsonbValue	sv;

			if (cs->ri.extracol)
			{
				/* a member kept in the extra column: equal as JSON */
				if (!ds_stored_extra_member(&cs->ri, cs->oldslot, k.val.string.val,
											k.val.string.len, &sv))
				{
					if (v.type != jbvNull)
						return false;
				}
				else if (sv.type == jbvNumeric && v.type == jbvNumeric ?
						 !DatumGetBool(DirectFunctionCall2(numeric_eq,
														   NumericGetDatum(sv.val.numeric),
														   NumericGetDatum(v.val.numeric))) :
						 !ds_scalar_equals(&sv, &v))
					return false;
				continue;
			}
			if (cs->coll->allow_extra)
				continue;
			return false;
		}
		if (col == cs->ri.pkcol)
		{
			if (!member_matches_key(&v, ev))
				return false;
			continue;
		}
		d = ds_json_to_datum(col, &v, &isnull);
		stored = slot_getattr(cs->oldslot, col->attnum, &snull);
		if (isnull || snull)
		{
			if (isnull != snull)
				return false;
			continue;
		}
		tce = lookup_type_cache(col->typid, TYPECACHE_EQ_OPR_FINFO);
		if (OidIsValid(tce->eq_opr_finfo.fn_oid))
		{
			if (!DatumGetBool(FunctionCall2Coll(&tce->eq_opr_finfo, col->collation, d, stored)))
				return false;
		}
		else if (!datumIsEqual(d, stored, tce->typbyval, tce->typlen))
			return false;
	}
	return true;
}

/*
 * With check_old_value on, an event that carries old_value must find the
 * entity as old_value says (found tells whether a row was found, now in
 * cs->oldslot; a null old_value stands for an absent entity).  Raise 40001
 * if it differs.
 */
void
ds_check_old_value(DsCollState *cs, DsEvent *ev, bool found)
{
	Jsonb	   *stored;
	bool		matches;

	if (!cs->coll->check_old_value || !ev->has_old_value)
		return;
	if (!found)
	{
		if (ev->old_value.type == jbvNull)
			return;
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("old_value conflict: the entity does not exist"),
				 errhint("Read the current value and retry.")));
	}
	if (cs->coll->kind == DS_KIND_DOCUMENT)
	{
		stored = ds_slot_value(&cs->ri, cs->coll, cs->oldslot);
		matches = stored != NULL && ds_jsonb_value_equals(&ev->old_value, stored);
	}
	else
	{
		matches = typed_old_value_matches(cs, ev);
		/* the row as JSON is only needed for the message */
		stored = matches ? NULL : ds_slot_value(&cs->ri, cs->coll, cs->oldslot);
	}
	if (!matches)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("old_value conflict: the stored value differs"),
				 stored ? errdetail("The stored value is %s.", stored_text(stored)) :
				 errdetail("The entity has no stored value."),
				 errhint("Read the current value and retry.")));
}
