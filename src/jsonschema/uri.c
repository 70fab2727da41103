/*
 * uri.c
 *		URIs for the JSON Schema validator: RFC 3986 reference resolution,
 *		and the documents registered for "$ref" by absolute URI.
 *
 * The validator never fetches anything: a "$ref" to another document
 * resolves only to a meta-schema compiled in (jsonschema_meta.h) or to a
 * document registered in this backend with ds_schema_register_document.
 * Registered documents live in TopMemoryContext for the backend's life.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/memutils.h"

#include "jsonschema_int.h"

typedef struct UriParts
{
	char	   *scheme;
	char	   *authority;
	char	   *path;
	char	   *query;
	char	   *fragment;
} UriParts;

/*
 * Split s into the five components of RFC 3986 section 3 (each a palloc'd
 * string, NULL when absent; the path is always present, perhaps empty).
 */
static void
uri_parse(const char *s, UriParts *u)
{
	const char *p = s;
	const char *q;

	memset(u, 0, sizeof(UriParts));
	/* scheme */
	if (isalpha((unsigned char) *p))
	{
		q = p;
		while (isalnum((unsigned char) *q) || *q == '+' || *q == '-' || *q == '.')
			q++;
		if (*q == ':')
		{
			u->scheme = pnstrdup(p, q - p);
			p = q + 1;
		}
	}
	if (p[0] == '/' && p[1] == '/')
	{
		p += 2;
		q = p;
		while (*q && *q != '/' && *q != '?' && *q != '#')
			q++;
		u->authority = pnstrdup(p, q - p);
		p = q;
	}
	q = p;
	while (*q && *q != '?' && *q != '#')
		q++;
	u->path = pnstrdup(p, q - p);
	p = q;
	if (*p == '?')
	{
		p++;
		q = p;
		while (*q && *q != '#')
			q++;
		u->query = pnstrdup(p, q - p);
		p = q;
	}
	if (*p == '#')
		u->fragment = pstrdup(p + 1);
}

/* RFC 3986 section 5.2.4: path with its "." and ".." segments applied */
static char *
remove_dot_segments(const char *path)
{
	StringInfoData out;
	const char *in = path;

	initStringInfo(&out);
	while (*in)
	{
		if (strncmp(in, "../", 3) == 0)
			in += 3;
		else if (strncmp(in, "./", 2) == 0)
			in += 2;
		else if (strncmp(in, "/./", 3) == 0)
			in += 2;
		else if (strcmp(in, "/.") == 0)
			in = "/";
		else if (strncmp(in, "/../", 4) == 0 || strcmp(in, "/..") == 0)
		{
			char	   *slash;

			in = (in[3] == '/') ? in + 3 : "/";
			slash = strrchr(out.data, '/');
			if (slash)
				out.len = slash - out.data;
			else
				out.len = 0;
			out.data[out.len] = '\0';
		}
		else if (strcmp(in, ".") == 0 || strcmp(in, "..") == 0)
			in += strlen(in);
		else
		{
			const char *q = in + (*in == '/' ? 1 : 0);

			while (*q && *q != '/')
				q++;
			appendBinaryStringInfo(&out, in, q - in);
			in = q;
		}
	}
	return out.data;
}

/*
 * Resolve the reference ref against the absolute URI base (RFC 3986
 * section 5.2.2) and return the target URI, palloc'd.  An empty fragment
 * is dropped.
 */
char *
js_uri_resolve(const char *base, const char *ref)
{
	UriParts	b,
				r,
				t;
	StringInfoData out;

	uri_parse(base, &b);
	uri_parse(ref, &r);
	memset(&t, 0, sizeof(t));
	if (r.scheme)
	{
		t = r;
		t.path = remove_dot_segments(r.path);
	}
	else
	{
		if (r.authority)
		{
			t.authority = r.authority;
			t.path = remove_dot_segments(r.path);
			t.query = r.query;
		}
		else
		{
			if (r.path[0] == '\0')
			{
				t.path = b.path;
				t.query = r.query ? r.query : b.query;
			}
			else
			{
				if (r.path[0] == '/')
					t.path = remove_dot_segments(r.path);
				else
				{
					char	   *merged;

					if (b.authority && b.path[0] == '\0')
						merged = psprintf("/%s", r.path);
					else
					{
						char	   *slash = strrchr(b.path, '/');

						if (slash)
							merged = psprintf("%.*s%s", (int) (slash - b.path + 1),
											  b.path, r.path);
						else
							merged = pstrdup(r.path);
					}
					t.path = remove_dot_segments(merged);
				}
				t.query = r.query;
			}
			t.authority = b.authority;
		}
		t.scheme = b.scheme;
		t.fragment = r.fragment;
	}
	initStringInfo(&out);
	if (t.scheme)
		appendStringInfo(&out, "%s:", t.scheme);
	if (t.authority)
		appendStringInfo(&out, "//%s", t.authority);
	appendStringInfoString(&out, t.path);
	if (t.query)
		appendStringInfo(&out, "?%s", t.query);
	if (t.fragment && t.fragment[0])
		appendStringInfo(&out, "#%s", t.fragment);
	return out.data;
}

/*
 * Split "uri#fragment" into its parts (palloc'd; the fragment is "" when
 * absent, and percent-decoded).
 */
void
js_uri_split(const char *abs, char **uri, char **frag)
{
	const char *hash = strchr(abs, '#');
	StringInfoData f;
	const char *p;

	if (hash == NULL)
	{
		*uri = pstrdup(abs);
		*frag = pstrdup("");
		return;
	}
	*uri = pnstrdup(abs, hash - abs);
	initStringInfo(&f);
	for (p = hash + 1; *p; p++)
	{
		if (*p == '%' && isxdigit((unsigned char) p[1]) && isxdigit((unsigned char) p[2]))
		{
			char		hex[3] = {p[1], p[2], 0};

			appendStringInfoChar(&f, (char) strtol(hex, NULL, 16));
			p += 2;
		}
		else
			appendStringInfoChar(&f, *p);
	}
	*frag = f.data;
}

/* a registered document: the jsonb bytes, copied */
typedef struct JsDocument
{
	char	   *uri;			/* absolute URI without fragment */
	Jsonb	   *doc;
} JsDocument;

static List *registered_docs = NIL;	/* JsDocument *, in TopMemoryContext */

/*
 * Register a copy of doc under uri (its fragment ignored), replacing a
 * document registered under the same URI.  Compiled schemas may have
 * resolved references to the old document: the caller resets the cache
 * (ds_schema_register_document).
 */
void
js_register_document(const char *uri, Jsonb *doc)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	char	   *u;
	char	   *frag;
	ListCell   *lc;
	JsDocument *d = NULL;

	js_uri_split(uri, &u, &frag);
	foreach(lc, registered_docs)
	{
		if (strcmp(((JsDocument *) lfirst(lc))->uri, u) == 0)
		{
			d = lfirst(lc);
			pfree(d->doc);
			break;
		}
	}
	if (d == NULL)
	{
		d = palloc(sizeof(JsDocument));
		d->uri = u;
		registered_docs = lappend(registered_docs, d);
	}
	/* jsonb has zero bytes: copy by length, not as a string */
	d->doc = palloc(VARSIZE(doc));
	memcpy(d->doc, doc, VARSIZE(doc));
	MemoryContextSwitchTo(old);
}

/*
 * The document registered under uri (absolute, without fragment), or NULL.
 * The result belongs to the registry: copy it before keeping it.
 */
Jsonb *
js_registered_document(const char *uri)
{
	ListCell   *lc;

	foreach(lc, registered_docs)
	{
		JsDocument *d = lfirst(lc);

		if (strcmp(d->uri, uri) == 0)
			return d->doc;
	}
	return NULL;
}
