/*
 * ingest.c
 *		COPY state.ingest FROM STDIN: a stream of NDJSON events into the
 *		apply engine, with no single-statement size limit and memory that
 *		does not grow with the input.
 *
 *   COPY state.ingest FROM STDIN WITH (stream 'orders', source_offset '...', batch_events 10000);
 *
 * A ProcessUtility hook takes over a COPY FROM STDIN whose target is the
 * table state.ingest (which never holds rows: its trigger refuses any that
 * reach it, as when the hook is not loaded).  The hook runs PostgreSQL's
 * own COPY reader (client encoding conversion, the COPY protocol, the end
 * marker) with options that hand over each line unchanged: CSV with a
 * delimiter and a quote character that valid JSON text never contains (a
 * raw control character), so JSON's backslashes and quotes pass through.
 * Each line is parsed straight to jsonb (jsontext.c, as state.apply_text
 * does), and every batch_events events (durable_state.ingest_batch_events
 * by default) are applied as one batch of the engine (apply.c), after which
 * their memory is freed: the COPY holds one batch in memory at a time.
 *
 * The COPY is atomic, like any statement: an error in any event (named by
 * its index in the whole input and its line) rolls back everything it
 * applied.  The source_offset is the whole input's: if it is not past the
 * stream's recorded one, the input is read and nothing is applied (COPY 0);
 * otherwise the first batch records it, in the same transaction.  The
 * command tag counts the events applied.
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/copy.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "apply.h"
#include "jsontext.h"

/* durable_state.ingest_batch_events: events per batch of a COPY */
static int	ds_ingest_batch_events = 10000;

static ProcessUtility_hook_type prev_utility_hook = NULL;

/* What one COPY state.ingest reads into, a batch at a time. */
typedef struct IngestState
{
	const char *stream;
	const char *source_offset;	/* NULL once recorded (or if none) */
	int			batch_events;
	MemoryContext batchcxt;		/* the batch's events, reset after it */
	MemoryContext errcxt;		/* where errors are copied */
	DsJsonText	jt;
	JsonbValue *elems;
	DsEvent    *events;			/* as far as parsed (ds_event_from_text) */
	int		   *lines;
	int			n;				/* events in the batch */
	int64		index;			/* events before the batch */
	bool		skipping;		/* at or before the recorded offset */
	bool		flushed;		/* a batch has run */
	int64		applied;
} IngestState;

/*
 * Is rv the table state.ingest of the extension (not a table of that name
 * in a database without it)?
 */
static bool
is_ingest_table(RangeVar *rv)
{
	Oid			nsp;
	Oid			relid;

	if (strcmp(rv->relname, "ingest") != 0)
		return false;
	nsp = get_namespace_oid("state", true);
	if (!OidIsValid(nsp))
		return false;
	relid = RangeVarGetRelid(rv, NoLock, true);
	return OidIsValid(relid) && relid == get_relname_relid("ingest", nsp) &&
		getExtensionOfObject(RelationRelationId, relid) ==
		get_extension_oid("durable_state", true);
}

/* Reads the COPY's own options (stream, source_offset, batch_events) into is. */
static void
ingest_options(CopyStmt *stmt, IngestState *is)
{
	ListCell   *lc;

	is->stream = "default";
	is->source_offset = NULL;
	is->batch_events = ds_ingest_batch_events;
	if (stmt->attlist != NIL || stmt->whereClause != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("COPY state.ingest takes neither a column list nor WHERE"),
				 errhint("Each line of the input is one event, as NDJSON.")));
	foreach(lc, stmt->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "stream") == 0)
			is->stream = defGetString(def);
		else if (strcmp(def->defname, "source_offset") == 0)
			is->source_offset = defGetString(def);
		else if (strcmp(def->defname, "batch_events") == 0)
		{
			int64		v = defGetInt64(def);

			if (v < 1 || v > 1000000)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("batch_events must be between 1 and 1000000")));
			is->batch_events = (int) v;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("COPY state.ingest does not take option \"%s\"", def->defname),
					 errhint("Its options are stream, source_offset and batch_events; the input is NDJSON.")));
	}
	if (is->source_offset)
		ds_check_source_offset(is->source_offset);
}

/*
 * Applies the events read so far as one batch (the first with the COPY's
 * source offset), then frees them.  A first batch skipped as old skips
 * the rest of the input too.
 */
static void
flush_batch(IngestState *is)
{
	int64		applied,
				skipped,
				tail;

	if (!is->skipping)
	{
		ds_apply_batch(is->stream, is->source_offset, is->elems, is->events, is->n,
					   is->lines, (int) Min(is->index, INT_MAX), &applied, &skipped, &tail);
		is->skipping = skipped > 0;
		is->applied += applied;
		is->source_offset = NULL;
	}
	is->flushed = true;
	is->index += is->n;
	is->n = 0;
	MemoryContextReset(is->batchcxt);
	is->elems = NULL;
	is->events = NULL;
	is->lines = NULL;
}

/* Starts a batch: its arrays and the parser's memory in the batch context. */
static void
start_batch(IngestState *is)
{
	MemoryContext old = MemoryContextSwitchTo(is->batchcxt);

	is->elems = palloc(sizeof(JsonbValue) * is->batch_events);
	is->events = palloc(sizeof(DsEvent) * is->batch_events);
	is->lines = palloc(sizeof(int) * is->batch_events);
	ds_jt_init(&is->jt);
	MemoryContextSwitchTo(old);
}

/*
 * Adds the line (NUL-terminated, line lineno) to the batch, applying the
 * batch once it is full.  Blank lines are skipped.
 */
static void
add_line(IngestState *is, char *line, int lineno)
{
	char	   *q = line;
	size_t		len;
	MemoryContext old;

	while (*q == ' ' || *q == '\t' || *q == '\r')
		q++;
	if (*q == '\0')
		return;
	len = strlen(q);
	while (len > 0 && (q[len - 1] == '\r' || q[len - 1] == ' ' || q[len - 1] == '\t'))
		q[--len] = '\0';
	if (is->skipping)
	{
		is->index++;
		return;
	}
	if (is->elems == NULL)
		start_batch(is);
	old = MemoryContextSwitchTo(is->batchcxt);
	ds_parse_ndjson_line(&is->jt, is->errcxt, q, len,
						 (int) Min(is->index + is->n, INT_MAX), lineno, &is->elems[is->n],
						 &is->events[is->n]);
	MemoryContextSwitchTo(old);
	is->lines[is->n++] = lineno;
	if (is->n >= is->batch_events)
		flush_batch(is);
}

/*
 * Runs COPY state.ingest FROM STDIN (stmt): reads the client's lines with
 * PostgreSQL's COPY reader and applies them in batches; sets qc to the
 * events applied.
 */
static void
ingest_copy(CopyStmt *stmt, const char *queryString, QueryCompletion *qc)
{
	IngestState is = {0};
	ParseState *pstate;
	Relation	rel;
	CopyFromState cstate;
	List	   *options;
	char	  **fields;
	int			nfields;
	int			lineno = 0;

	ingest_options(stmt, &is);
	rel = table_openrv(stmt->relation, AccessShareLock);
	if (pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, RelationGetRelationName(rel));
	PreventCommandIfReadOnly("COPY state.ingest");

	/* each line one field, as it is: CSV whose delimiter and quote JSON never has */
	options = list_make3(makeDefElem("format", (Node *) makeString("csv"), -1),
						 makeDefElem("delimiter", (Node *) makeString("\x01"), -1),
						 makeDefElem("quote", (Node *) makeString("\x02"), -1));
	pstate = make_parsestate(NULL);
	pstate->p_sourcetext = queryString;
	is.errcxt = CurrentMemoryContext;
	is.batchcxt = AllocSetContextCreate(CurrentMemoryContext, "durable_state ingest batch",
										ALLOCSET_DEFAULT_SIZES);
	cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, NULL, NIL, options);
	while (NextCopyFromRawFields(cstate, &fields, &nfields))
	{
		lineno++;
		CHECK_FOR_INTERRUPTS();
		if (nfields != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("event %lld (line %d): invalid input syntax for type json",
							(long long) (is.index + is.n), lineno),
					 errdetail("The line contains the byte 0x01, which JSON text cannot contain.")));
		if (fields[0] != NULL)
			add_line(&is, fields[0], lineno);
	}
	if (is.n > 0 || !is.flushed)
		flush_batch(&is);
	EndCopyFrom(cstate);
	free_parsestate(pstate);
	table_close(rel, AccessShareLock);
	MemoryContextDelete(is.batchcxt);
	if (qc)
		SetQueryCompletion(qc, CMDTAG_COPY, is.applied);
}

/*
 * The ProcessUtility hook: COPY state.ingest FROM STDIN is ours, the rest
 * goes on to the previous hook or PostgreSQL.
 */
static void
ingest_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			   ProcessUtilityContext context, ParamListInfo params,
			   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (IsA(parsetree, CopyStmt))
	{
		CopyStmt   *stmt = (CopyStmt *) parsetree;

		if (stmt->is_from && stmt->relation && stmt->filename == NULL &&
			!stmt->is_program && is_ingest_table(stmt->relation))
		{
			ingest_copy(stmt, queryString, qc);
			return;
		}
	}
	if (prev_utility_hook)
		prev_utility_hook(pstmt, queryString, readOnlyTree, context, params,
						  queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

/* Installs the hook and defines durable_state.ingest_batch_events; at load. */
void
ds_ingest_init(void)
{
	DefineCustomIntVariable("durable_state.ingest_batch_events",
							"Events per batch of COPY state.ingest.",
							NULL,
							&ds_ingest_batch_events,
							10000, 1, 1000000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	prev_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = ingest_utility;
}
