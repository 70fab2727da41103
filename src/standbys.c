/*
 * standbys.c
 *		Which standbys count for 'replicated', and how far they have replayed.
 *
 * One concern: the replicated watermark, the WAL position every standby
 * chosen by durable_state.replicated_standbys has replayed (so a commit
 * below it is visible there), and the view of the walsenders behind it
 * (state.standbys).  The worker calls ds_standbys_advance() every loop.
 *
 *	1. A standby that replays is a physical walsender in the streaming
 *	   state whose client reported a valid replay (apply) position.  A
 *	   walreceiver reports one; pg_receivewal and pg_basebackup -X stream
 *	   always send InvalidXLogRecPtr (receivelog.c, sendFeedback), so they
 *	   never count.  Nor do logical walsenders (their backends are
 *	   connected to a database; PostgreSQL 16 also marks their WalSnd), nor
 *	   a standby that has connected but not reported a position yet.
 *	2. The setting chooses among them: 'all'; 'sync', which reads
 *	   synchronous_standby_names; or that setting's syntax.  FIRST n
 *	   (names): the n connected ones of highest priority (the position of
 *	   the first name that matches; ties go to the lower walsender slot, as
 *	   in syncrep.c), the watermark is the oldest replay among them; ANY n
 *	   (names): the n-th highest replay among those listed; a bare list is
 *	   FIRST 1.  Names match application_name case-insensitively, '*' any.
 *	   With fewer than n of them (for 'all', none) there is no watermark.
 *	   The parser is ours: syncrep_yyparse's signature differs across
 *	   PostgreSQL majors.
 *	3. The published watermark never moves backwards: a standby that
 *	   attaches behind, or a new setting, holds it until the chosen
 *	   standbys pass it, so a txid once 'replicated' stays so while the
 *	   server runs.  (Two gaps, documented in the README: shared memory
 *	   does not outlive a restart, and txids from before it are bounded
 *	   by the worker's start position, which the standbys pass as soon as
 *	   they replay again; and a txid the shared ring forgot is bounded by
 *	   the newest commit it forgot, which may be past the watermark if
 *	   more than DS_TXID_RING txids commit while the standbys lag.  Closing
 *	   them needs each txid's commit position kept with it; see txid.c.)
 *	4. Application names come from the backend status array, read only
 *	   when the set of walsender pids changed: the worker looks every
 *	   millisecond while someone waits.
 *
 * Memory: the parsed setting is the GUC's extra (malloc'd, owned by guc.c);
 * the worker's name cache and its parse of synchronous_standby_names live
 * in TopMemoryContext; the view is in shared memory, one entry per
 * walsender slot (max_wal_senders), written by the worker under
 * ds_shared->lock.
 */
#include "postgres.h"

#include "access/xlog.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "replication/syncrep.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "durable_state.h"
#include "shmem.h"
#include "standbys.h"

typedef enum DsStandbysMethod
{
	DS_STANDBYS_ALL,
	DS_STANDBYS_SYNC,			/* as synchronous_standby_names says */
	DS_STANDBYS_FIRST,
	DS_STANDBYS_ANY
} DsStandbysMethod;

/* A parsed setting in one allocation: nnames NUL-terminated names follow. */
typedef struct DsStandbysConfig
{
	DsStandbysMethod method;
	int			num;
	int			nnames;
	char		names[FLEXIBLE_ARRAY_MEMBER];
} DsStandbysConfig;

/* Why a walsender counts or not (state.standbys.role) */
typedef enum DsStandbyRole
{
	DS_ROLE_NONE,				/* slot unused */
	DS_ROLE_COUNTS,
	DS_ROLE_NOT_CHOSEN,
	DS_ROLE_NO_REPLAY,
	DS_ROLE_NOT_STREAMING,
	DS_ROLE_LOGICAL,
	DS_ROLE_STARTING
} DsStandbyRole;

static const char *const role_names[] = {
	[DS_ROLE_NONE] = "",
	[DS_ROLE_COUNTS] = "counts",
	[DS_ROLE_NOT_CHOSEN] = "not chosen",
	[DS_ROLE_NO_REPLAY] = "no replay position",
	[DS_ROLE_NOT_STREAMING] = "not streaming",
	[DS_ROLE_LOGICAL] = "logical",
	[DS_ROLE_STARTING] = "starting"
};

typedef struct DsStandbyEntry
{
	pid_t		pid;
	char		name[NAMEDATALEN];
	WalSndState state;
	XLogRecPtr	replay;
	int			priority;		/* position in the list, 0 unlisted, -1 n/a */
	DsStandbyRole role;
} DsStandbyEntry;

typedef struct DsStandbysShared
{
	int			nslots;
	DsStandbyEntry slots[FLEXIBLE_ARRAY_MEMBER];
} DsStandbysShared;

/* the worker's cache of one walsender slot's backend */
typedef struct WalSenderSeen
{
	pid_t		pid;
	bool		resolved;		/* name and logical are pid's */
	bool		logical;
	char		name[NAMEDATALEN];
} WalSenderSeen;

static char *standbys_setting = NULL;
static DsStandbysConfig *standbys_config = NULL;
static DsStandbysShared *standbys_shared = NULL;

static WalSenderSeen *seen = NULL;
static DsStandbyEntry *view = NULL;
static int *candidates = NULL;
static XLogRecPtr *replays = NULL;
static TimestampTz next_resolve_at = 0;
static char *sync_names_parsed = NULL;
static DsStandbysConfig *sync_config = NULL;

#define SETTING_HINT "Use all, sync, or the syntax of synchronous_standby_names: " \
	"FIRST n (name, ...), ANY n (name, ...) or a list of names, where * matches any standby."

/* ------------------------------------------------------------------------
 * The parser of the synchronous_standby_names syntax (syncrep_gram.y,
 * syncrep_scanner.l):
 *		config := list | NUM '(' list ')' | (ANY | FIRST) NUM '(' list ')'
 *		list := name (',' name)*	name := NAME | NUM
 * NAME is an identifier, a double-quoted name ("" for a quote) or '*';
 * ANY and FIRST are keywords in any case.
 * ------------------------------------------------------------------------ */

typedef enum TokKind
{
	TOK_END,
	TOK_NAME,
	TOK_NUM,
	TOK_ANY,
	TOK_FIRST,
	TOK_COMMA,
	TOK_OPEN,
	TOK_CLOSE,
	TOK_BAD
} TokKind;

typedef struct Lexer
{
	const char *p;				/* what is left */
	const char *start;			/* where the current token began */
	TokKind		kind;
	StringInfoData text;		/* a name's or number's text */
} Lexer;

static bool
ident_start(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c >= 0200;
}

static bool
ident_cont(unsigned char c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static void
next_token(Lexer *lx)
{
	const char *p = lx->p;

	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')
		p++;
	lx->start = p;
	resetStringInfo(&lx->text);
	if (*p == '\0')
		lx->kind = TOK_END;
	else if (*p == ',' || *p == '(' || *p == ')')
	{
		lx->kind = *p == ',' ? TOK_COMMA : *p == '(' ? TOK_OPEN : TOK_CLOSE;
		p++;
	}
	else if (*p == '*')
	{
		appendStringInfoChar(&lx->text, *p++);
		lx->kind = TOK_NAME;
	}
	else if (*p == '"')
	{
		lx->kind = TOK_BAD;
		for (p++; *p; p++)
		{
			if (*p == '"' && p[1] == '"')
				p++;
			else if (*p == '"')
			{
				lx->kind = TOK_NAME;
				p++;
				break;
			}
			appendStringInfoChar(&lx->text, *p);
		}
	}
	else if (*p >= '0' && *p <= '9')
	{
		while (*p >= '0' && *p <= '9')
			appendStringInfoChar(&lx->text, *p++);
		lx->kind = TOK_NUM;
	}
	else if (ident_start((unsigned char) *p))
	{
		while (ident_cont((unsigned char) *p))
			appendStringInfoChar(&lx->text, *p++);
		lx->kind = pg_strcasecmp(lx->text.data, "any") == 0 ? TOK_ANY :
			pg_strcasecmp(lx->text.data, "first") == 0 ? TOK_FIRST : TOK_NAME;
	}
	else
	{
		p++;
		lx->kind = TOK_BAD;
	}
	lx->p = p;
}

/* "Expected <what>, found <the current token>." */
static char *
expected(Lexer *lx, const char *what)
{
	if (lx->kind == TOK_END)
		return psprintf("Expected %s, found the end of the value.", what);
	if (lx->kind == TOK_BAD && *lx->start == '"')
		return psprintf("Expected %s, found an unterminated quoted name.", what);
	return psprintf("Expected %s, found \"%.*s\".", what,
					pg_mbcliplen(lx->start, strlen(lx->start), 20), lx->start);
}

/*
 * Parses the synchronous_standby_names syntax into a config palloc'd in
 * the current context.  Returns NULL, with *detail a complete sentence,
 * if the value is not in that syntax.
 */
static DsStandbysConfig *
parse_standby_list(const char *value, char **detail)
{
	Lexer		lx = {.p = value};
	DsStandbysMethod method = DS_STANDBYS_FIRST;
	long		num = 1;
	bool		counted = false;
	bool		have_name = false;
	StringInfoData names;
	int			nnames = 0;
	DsStandbysConfig *c;

	initStringInfo(&lx.text);
	initStringInfo(&names);
	next_token(&lx);
	if (lx.kind == TOK_ANY || lx.kind == TOK_FIRST)
	{
		method = lx.kind == TOK_ANY ? DS_STANDBYS_ANY : DS_STANDBYS_FIRST;
		next_token(&lx);
		if (lx.kind != TOK_NUM)
		{
			*detail = expected(&lx, method == DS_STANDBYS_ANY ?
							   "the number of standbys after ANY" :
							   "the number of standbys after FIRST");
			return NULL;
		}
		counted = true;
	}
	if (lx.kind == TOK_NUM)
	{
		char	   *digits = pstrdup(lx.text.data);

		next_token(&lx);
		if (lx.kind == TOK_OPEN)
		{
			num = strlen(digits) > 9 ? LONG_MAX : strtol(digits, NULL, 10);
			if (num <= 0 || num > INT_MAX)
			{
				*detail = psprintf("The number of standbys must be between 1 and %d, not %s.",
								   INT_MAX, digits);
				return NULL;
			}
			counted = true;
			next_token(&lx);
		}
		else if (counted)
		{
			*detail = expected(&lx, "\"(\" after the number of standbys");
			return NULL;
		}
		else
		{
			/* a standby named by digits, the first of a bare list */
			appendBinaryStringInfo(&names, digits, strlen(digits) + 1);
			nnames++;
			have_name = true;
		}
	}
	for (;;)
	{
		if (!have_name)
		{
			if (lx.kind != TOK_NAME && lx.kind != TOK_NUM)
			{
				*detail = expected(&lx, "a standby name");
				return NULL;
			}
			appendBinaryStringInfo(&names, lx.text.data, lx.text.len + 1);
			nnames++;
			next_token(&lx);
		}
		have_name = false;
		if (lx.kind != TOK_COMMA)
			break;
		next_token(&lx);
	}
	if (counted)
	{
		if (lx.kind != TOK_CLOSE)
		{
			*detail = expected(&lx, "\",\" or \")\" after a standby name");
			return NULL;
		}
		next_token(&lx);
	}
	if (lx.kind != TOK_END)
	{
		*detail = expected(&lx, counted ? "the end of the value after \")\"" :
						   "\",\" or the end of the value after a standby name");
		return NULL;
	}

	c = palloc(offsetof(DsStandbysConfig, names) + names.len);
	c->method = method;
	c->num = (int) num;
	c->nnames = nnames;
	memcpy(c->names, names.data, names.len);
	return c;
}

/* Size of a config, names included. */
static Size
config_size(const DsStandbysConfig *c)
{
	const char *n = c->names;

	for (int i = 0; i < c->nnames; i++)
		n += strlen(n) + 1;
	return n - (const char *) c;
}

/*
 * Parses durable_state.replicated_standbys ('all', 'sync' or the syntax
 * above) in a short-lived context; the config is copied with alloc (NULL
 * if it fails).  Returns NULL with *detail set if the value is invalid.
 */
static DsStandbysConfig *
parse_setting(const char *value, bool keywords, void *(*alloc) (Size), char **detail)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "durable_state standbys",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	DsStandbysConfig *parsed = NULL;
	DsStandbysConfig *c = NULL;
	char	   *trimmed = pstrdup(value);
	int			len;

	while (*trimmed == ' ' || *trimmed == '\t' || *trimmed == '\n')
		trimmed++;
	len = strlen(trimmed);
	while (len > 0 && (trimmed[len - 1] == ' ' || trimmed[len - 1] == '\t' || trimmed[len - 1] == '\n'))
		trimmed[--len] = '\0';
	*detail = NULL;
	if (keywords && (pg_strcasecmp(trimmed, "all") == 0 || pg_strcasecmp(trimmed, "sync") == 0))
	{
		parsed = palloc0(offsetof(DsStandbysConfig, names));
		parsed->method = pg_strcasecmp(trimmed, "all") == 0 ? DS_STANDBYS_ALL : DS_STANDBYS_SYNC;
	}
	else if (len == 0)
		*detail = pstrdup("The value is empty.");
	else
		parsed = parse_standby_list(trimmed, detail);
	MemoryContextSwitchTo(old);
	if (parsed)
	{
		Size		size = config_size(parsed);

		c = alloc(size);
		if (c)
			memcpy(c, parsed, size);
	}
	else
		*detail = pstrdup(*detail);
	MemoryContextDelete(cxt);
	return c;
}

static void *
alloc_top(Size size)
{
	return MemoryContextAlloc(TopMemoryContext, size);
}

static bool
check_standbys(char **newval, void **extra, GucSource source)
{
	char	   *detail;
	DsStandbysConfig *c = parse_setting(*newval ? *newval : "", true, ds_guc_malloc, &detail);

	if (c == NULL)
	{
		if (detail == NULL)
		{
			GUC_check_errmsg("out of memory");
			return false;
		}
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errdetail("%s", detail);
		GUC_check_errhint(SETTING_HINT);
		return false;
	}
	*extra = c;
	return true;
}

static void
assign_standbys(const char *newval, void *extra)
{
	standbys_config = extra;
}

/* Registers durable_state.replicated_standbys (from _PG_init). */
void
ds_standbys_init(void)
{
	DefineCustomStringVariable("durable_state.replicated_standbys",
							   "Standbys that must have replayed a commit for it to count as replicated.",
							   "all (every streaming standby that replays), sync (those synchronous_standby_names chooses), "
							   "or that setting's syntax: FIRST n (names), ANY n (names) or a list of names.",
							   &standbys_setting,
							   "all",
							   PGC_SIGHUP, 0,
							   check_standbys, assign_standbys, NULL);
}

/* ------------------------------------------------------------------------
 * Shared memory: the view of every walsender slot
 * ------------------------------------------------------------------------ */

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* The size of the walsender view: one entry per max_wal_senders. */
static Size
standbys_shmem_size(void)
{
	return MAXALIGN(add_size(offsetof(DsStandbysShared, slots),
							 mul_size(max_wal_senders, sizeof(DsStandbyEntry))));
}

/* shmem_request_hook: asks for the walsender view. */
static void
standbys_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(standbys_shmem_size());
}

/*
 * shmem_startup_hook: attaches the walsender view, zeroing it in the first
 * process to get there.
 */
static void
standbys_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	standbys_shared = ShmemInitStruct("durable_state standbys", standbys_shmem_size(), &found);
	if (!found)
	{
		memset(standbys_shared, 0, standbys_shmem_size());
		standbys_shared->nslots = max_wal_senders;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Installs the walsender view's shared memory hooks; called from _PG_init
 * only when the library is preloaded.
 */
void
ds_standbys_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = standbys_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = standbys_shmem_startup;
}

/* ------------------------------------------------------------------------
 * The worker: which walsenders count, and the watermark
 * ------------------------------------------------------------------------ */

/*
 * Reads the application names (and whether they are logical) of the
 * walsenders the cache does not know yet from the backend status array.
 */
static void
resolve_names(void)
{
	int			n;

	pgstat_clear_backend_activity_snapshot();
	n = pgstat_fetch_stat_numbackends();
	for (int b = 1; b <= n; b++)
	{
		LocalPgBackendStatus *l = ds_local_beentry(b);
		PgBackendStatus *st;

		if (l == NULL)
			continue;
		st = &l->backendStatus;
		for (int i = 0; i < max_wal_senders; i++)
		{
			if (seen[i].resolved || seen[i].pid == 0 || seen[i].pid != st->st_procpid)
				continue;
			strlcpy(seen[i].name, st->st_appname ? st->st_appname : "", NAMEDATALEN);
			seen[i].logical = OidIsValid(st->st_databaseid);
			seen[i].resolved = true;
		}
	}
	pgstat_clear_backend_activity_snapshot();
}

/*
 * The config in force: durable_state.replicated_standbys, or for 'sync'
 * our parse of synchronous_standby_names (redone when it changes; NULL if
 * it is empty, so that no standby is chosen).
 */
static const DsStandbysConfig *
config_in_force(void)
{
	const char *s = SyncRepStandbyNames ? SyncRepStandbyNames : "";
	char	   *detail;

	if (standbys_config == NULL || standbys_config->method != DS_STANDBYS_SYNC)
		return standbys_config;
	if (sync_names_parsed != NULL && strcmp(sync_names_parsed, s) == 0)
		return sync_config;
	if (sync_names_parsed)
		pfree(sync_names_parsed);
	if (sync_config)
		pfree(sync_config);
	sync_names_parsed = MemoryContextStrdup(TopMemoryContext, s);
	sync_config = NULL;
	if (s[0] != '\0')
	{
		sync_config = parse_setting(s, false, alloc_top, &detail);
		if (sync_config == NULL)
			ereport(WARNING,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("durable_state cannot read synchronous_standby_names, so no standby counts for 'replicated'"),
					 errdetail("%s", detail)));
	}
	return sync_config;
}

/*
 * The priority of a standby named name: the position of the first listed
 * name that matches it, from 1, or 0 (SyncRepGetStandbyPriority).
 */
static int
standby_priority(const DsStandbysConfig *c, const char *name)
{
	const char *n = c->names;

	for (int i = 1; i <= c->nnames; i++)
	{
		if (strcmp(n, "*") == 0 || pg_strcasecmp(n, name) == 0)
			return i;
		n += strlen(n) + 1;
	}
	return 0;
}

/*
 * Chooses among the replaying walsenders in candidates[0..n) (their
 * priority already set, all > 0): marks those that count and returns the
 * position they have all replayed, InvalidXLogRecPtr if too few are there.
 */
static XLogRecPtr
choose(const DsStandbysConfig *c, int n)
{
	XLogRecPtr	result = InvalidXLogRecPtr;
	int			need = c->method == DS_STANDBYS_ALL ? 1 : c->num;
	int			nchosen = n;

	if (c->method == DS_STANDBYS_FIRST)
	{
		/* by priority, then slot (candidates are in slot order) */
		for (int i = 1; i < n; i++)
		{
			int			x = candidates[i],
						j = i;

			for (; j > 0 && view[candidates[j - 1]].priority > view[x].priority; j--)
				candidates[j] = candidates[j - 1];
			candidates[j] = x;
		}
		nchosen = Min(n, c->num);
	}
	for (int i = 0; i < n; i++)
		view[candidates[i]].role = i < nchosen ? DS_ROLE_COUNTS : DS_ROLE_NOT_CHOSEN;
	if (n < need)
		return InvalidXLogRecPtr;

	for (int i = 0; i < nchosen; i++)
		replays[i] = view[candidates[i]].replay;
	if (c->method == DS_STANDBYS_ANY)
	{
		/* the need-th highest: sort descending */
		for (int i = 1; i < nchosen; i++)
		{
			XLogRecPtr	x = replays[i];
			int			j = i;

			for (; j > 0 && replays[j - 1] < x; j--)
				replays[j] = replays[j - 1];
			replays[j] = x;
		}
		return replays[need - 1];
	}
	for (int i = 0; i < nchosen; i++)
		if (i == 0 || replays[i] < result)
			result = replays[i];
	return result;
}

/*
 * Computes the replicated watermark from the walsenders, publishes it if
 * it moved forward (never back), with the number of standbys that count
 * and the view of every walsender.  Returns whether it moved.
 */
bool
ds_standbys_advance(void)
{
	const DsStandbysConfig *c;
	XLogRecPtr	replicated;
	int			ncand = 0,
				counted = 0;
	bool		unresolved = false,
				moved = false;

	if (seen == NULL)
	{
		seen = MemoryContextAllocZero(TopMemoryContext, sizeof(WalSenderSeen) * Max(max_wal_senders, 1));
		view = MemoryContextAllocZero(TopMemoryContext, sizeof(DsStandbyEntry) * Max(max_wal_senders, 1));
		candidates = MemoryContextAlloc(TopMemoryContext, sizeof(int) * Max(max_wal_senders, 1));
		replays = MemoryContextAlloc(TopMemoryContext, sizeof(XLogRecPtr) * Max(max_wal_senders, 1));
	}
	c = config_in_force();

	for (int i = 0; WalSndCtl != NULL && i < max_wal_senders; i++)
	{
		WalSnd	   *w = &WalSndCtl->walsnds[i];
		DsStandbyEntry *e = &view[i];
		bool		logical = false;

		SpinLockAcquire(&w->mutex);
		e->pid = w->pid;
		e->state = w->state;
		e->replay = w->apply;
		logical = DS_WALSND_IS_LOGICAL(w);
		SpinLockRelease(&w->mutex);
		if (seen[i].pid != e->pid)
		{
			seen[i].pid = e->pid;
			seen[i].resolved = false;
			seen[i].logical = false;
			seen[i].name[0] = '\0';
		}
		if (e->pid != 0 && !seen[i].resolved)
			unresolved = true;
		seen[i].logical |= logical;
	}
	if (unresolved)
	{
		TimestampTz now = GetCurrentTimestamp();

		/* a walsender not in the status array yet: look again in 10 ms */
		if (now >= next_resolve_at)
		{
			resolve_names();
			next_resolve_at = TimestampTzPlusMilliseconds(now, 10);
		}
	}

	for (int i = 0; i < max_wal_senders; i++)
	{
		DsStandbyEntry *e = &view[i];

		strlcpy(e->name, seen[i].name, NAMEDATALEN);
		e->priority = -1;
		if (e->pid == 0)
			e->role = DS_ROLE_NONE;
		else if (!seen[i].resolved)
			e->role = DS_ROLE_STARTING;
		else if (seen[i].logical)
			e->role = DS_ROLE_LOGICAL;
		else if (e->state != WALSNDSTATE_STREAMING)
			e->role = DS_ROLE_NOT_STREAMING;
		else if (XLogRecPtrIsInvalid(e->replay))
			e->role = DS_ROLE_NO_REPLAY;
		else
		{
			e->role = DS_ROLE_NOT_CHOSEN;
			if (c != NULL && c->method != DS_STANDBYS_ALL)
				e->priority = standby_priority(c, e->name);
			if (c != NULL && e->priority != 0)
				candidates[ncand++] = i;
		}
	}
	replicated = c != NULL ? choose(c, ncand) : InvalidXLogRecPtr;
	for (int i = 0; i < max_wal_senders; i++)
		if (view[i].role == DS_ROLE_COUNTS)
			counted++;

	LWLockAcquire(ds_shared->lock, LW_EXCLUSIVE);
	if (!XLogRecPtrIsInvalid(replicated) && replicated > ds_shared->replicated_lsn)
	{
		ds_shared->replicated_lsn = replicated;
		moved = true;
	}
	ds_shared->standbys = counted;
	if (standbys_shared)
		memcpy(standbys_shared->slots, view,
			   sizeof(DsStandbyEntry) * Min(max_wal_senders, standbys_shared->nslots));
	LWLockRelease(ds_shared->lock);
	return moved;
}

static const char *
walsnd_state_name(WalSndState state)
{
	switch (state)
	{
		case WALSNDSTATE_STARTUP:
			return "startup";
		case WALSNDSTATE_BACKUP:
			return "backup";
		case WALSNDSTATE_CATCHUP:
			return "catchup";
		case WALSNDSTATE_STREAMING:
			return "streaming";
		case WALSNDSTATE_STOPPING:
			return "stopping";
	}
	return "unknown";
}

/*
 * state._standbys(): every walsender the worker saw on its last loop, with
 * its replay position and whether it counts for 'replicated'.
 */
PG_FUNCTION_INFO_V1(ds_standbys);

Datum
ds_standbys(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DsStandbyEntry *copy;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	if (ds_shared == NULL || standbys_shared == NULL)
		PG_RETURN_VOID();
	n = standbys_shared->nslots;
	copy = palloc(sizeof(DsStandbyEntry) * Max(n, 1));
	LWLockAcquire(ds_shared->lock, LW_SHARED);
	memcpy(copy, standbys_shared->slots, sizeof(DsStandbyEntry) * n);
	LWLockRelease(ds_shared->lock);

	for (int i = 0; i < n; i++)
	{
		DsStandbyEntry *e = &copy[i];
		Datum		values[7];
		bool		nulls[7] = {0};

		if (e->pid == 0)
			continue;
		values[0] = Int32GetDatum(e->pid);
		values[1] = CStringGetTextDatum(e->name);
		nulls[1] = e->role == DS_ROLE_STARTING;
		values[2] = CStringGetTextDatum(walsnd_state_name(e->state));
		values[3] = LSNGetDatum(e->replay);
		nulls[3] = XLogRecPtrIsInvalid(e->replay);
		values[4] = Int32GetDatum(e->priority);
		nulls[4] = e->priority < 0;
		values[5] = BoolGetDatum(e->role == DS_ROLE_COUNTS);
		values[6] = CStringGetTextDatum(role_names[e->role]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}
