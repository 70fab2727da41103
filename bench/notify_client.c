/*
 * bench/notify_client.c -- the libpq client of bench/notify.sh.
 *
 * Built by bench/notify.sh into its temp dir (gcc, libpq); connects with the
 * usual PG* environment variables.
 *
 *   notify_client listen CHANNEL...
 *       LISTENs on the channels, prints "ready", then counts notifications and
 *       the events they cover (the sum of their "count" members).  Reads
 *       commands on stdin: "stat" prints "<notifications> <events>", "quit"
 *       (or end of input) exits.
 *
 *   notify_client await N STREAM TYPE
 *       Latency from commit to state.await_txid() returning, N times.  A
 *       calls await_txid(txid, 5000) and is seen asleep in pg_stat_activity
 *       (wait event "Extension"); then B applies one upsert event carrying
 *       that txid (autocommit).  Both queries are asynchronous and polled in
 *       one loop: t0 = B's result arrived (the commit is done), t1 = A's
 *       result arrived; the sample is t1 - t0 (may be negative: the
 *       committing backend wakes A before it answers B).
 *
 *   notify_client await-after N STREAM TYPE
 *       The usual client pattern: B applies one event with a txid and its
 *       result arrives (t0), then A calls state.await_txid(txid, 5000) and
 *       its result arrives (t1).  The sample t1 - t0 includes A's round trip.
 *
 *   notify_client notify N CHANNEL
 *       The same for plain LISTEN/NOTIFY: A LISTENs, B runs
 *       NOTIFY CHANNEL, '<i>' (autocommit); t1 = A got payload <i>.
 *
 *   notify_client apply-notify N STREAM TYPE
 *       Commit of state.apply() to the extension's notification on
 *       state.channel(STREAM) reaching a listener (the payload names the
 *       txid).  durable_state.notify comes from PGOPTIONS.
 *
 * The latency modes print one summary line:
 *   n=<N> failed=<F> min=<ms> p50=<ms> p99=<ms> max=<ms> mean=<ms>
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static void
die(const char *fmt, ...)
{
	va_list		ap;

	fprintf(stderr, "notify_client: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static PGconn *
connect_db(void)
{
	PGconn	   *c = PQconnectdb("");

	if (PQstatus(c) != CONNECTION_OK)
		die("connection failed: %s", PQerrorMessage(c));
	return c;
}

/* Runs a command that must succeed; returns its result (caller clears). */
static PGresult *
run(PGconn *c, const char *sql)
{
	PGresult   *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		die("%s: %s", sql, PQerrorMessage(c));
	return r;
}

static void
run_cmd(PGconn *c, const char *sql)
{
	PQclear(run(c, sql));
}

static char *
quote_ident(PGconn *c, const char *s)
{
	char	   *q = PQescapeIdentifier(c, s, strlen(s));

	if (q == NULL)
		die("PQescapeIdentifier: %s", PQerrorMessage(c));
	return q;
}

/* Sum of the "count" members of a notification payload (0 if none). */
static long
payload_count(const char *p)
{
	const char *k = strstr(p, "\"count\":");

	return k ? strtol(k + 8, NULL, 10) : 0;
}

/* ------------------------------------------------------------------------
 * listen
 * ------------------------------------------------------------------------ */

/* Takes in what arrived: counts the notifications and the events they cover. */
static void
drain(PGconn *c, long *notifications, long *events)
{
	PGnotify   *n;

	if (!PQconsumeInput(c))
		die("listener lost its connection: %s", PQerrorMessage(c));
	while ((n = PQnotifies(c)) != NULL)
	{
		(*notifications)++;
		*events += payload_count(n->extra);
		PQfreemem(n);
	}
}

static int
do_listen(int nchannels, char **channels)
{
	PGconn	   *c = connect_db();
	char		sql[512];
	long		notifications = 0;
	long		events = 0;
	char		line[256];
	size_t		used = 0;

	for (int i = 0; i < nchannels; i++)
	{
		char	   *qc = quote_ident(c, channels[i]);

		snprintf(sql, sizeof(sql), "LISTEN %s", qc);
		run_cmd(c, sql);
		PQfreemem(qc);
	}
	if (PQsetnonblocking(c, 1) != 0)
		die("PQsetnonblocking failed");
	printf("ready\n");
	fflush(stdout);

	for (;;)
	{
		struct pollfd fds[2];

		fds[0].fd = PQsocket(c);
		fds[0].events = POLLIN;
		fds[1].fd = STDIN_FILENO;
		fds[1].events = POLLIN;
		if (poll(fds, 2, -1) < 0)
		{
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		if (fds[0].revents)
		{
			drain(c, &notifications, &events);
		}
		if (fds[1].revents)
		{
			ssize_t		got = read(STDIN_FILENO, line + used, sizeof(line) - 1 - used);
			char	   *nl;

			if (got <= 0)
				break;
			used += got;
			line[used] = '\0';
			while ((nl = strchr(line, '\n')) != NULL)
			{
				*nl = '\0';
				if (strcmp(line, "stat") == 0)
				{
					/* take in whatever already arrived first */
					drain(c, &notifications, &events);
					printf("%ld %ld\n", notifications, events);
					fflush(stdout);
				}
				else if (strcmp(line, "quit") == 0)
				{
					PQfinish(c);
					return 0;
				}
				else if (line[0] != '\0')
					die("unknown command '%s'", line);
				used -= (nl + 1 - line);
				memmove(line, nl + 1, used + 1);
			}
			if (used >= sizeof(line) - 1)
				die("command line too long");
		}
	}
	PQfinish(c);
	return 0;
}

/* ------------------------------------------------------------------------
 * latency
 * ------------------------------------------------------------------------ */

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* nearest-rank percentile of a sorted array */
static double
pct(const double *v, int n, double p)
{
	int			k = (int) (p / 100.0 * n + 0.999999) - 1;

	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return v[k];
}

static void
summary(double *v, int n, int failed)
{
	double		sum = 0;

	if (n == 0)
	{
		printf("n=0 failed=%d min=- p50=- p99=- max=- mean=-\n", failed);
		return;
	}
	qsort(v, n, sizeof(double), cmp_double);
	for (int i = 0; i < n; i++)
		sum += v[i];
	printf("n=%d failed=%d min=%.3f p50=%.3f p99=%.3f max=%.3f mean=%.3f\n",
		   n, failed, v[0], pct(v, n, 50), pct(v, n, 99), v[n - 1], sum / n);
}

/* The result of an async query has fully arrived; returns it (or dies). */
static PGresult *
finish_query(PGconn *c, const char *what)
{
	PGresult   *r = PQgetResult(c);
	PGresult   *extra;
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		die("%s: %s", what, PQerrorMessage(c));
	while ((extra = PQgetResult(c)) != NULL)
		PQclear(extra);
	return r;
}

static void
send_query(PGconn *c, const char *sql, int nparams, const char *const *params)
{
	if (!PQsendQueryParams(c, sql, nparams, NULL, params, NULL, NULL, 0))
		die("%s: %s", sql, PQerrorMessage(c));
}

/* Waits until backend pid of A sleeps in an extension wait (await_txid). */
static void
wait_asleep(PGconn *b, const char *pid)
{
	const char *params[1] = {pid};
	double		start = now_ms();

	for (;;)
	{
		PGresult   *r = PQexecParams(b,
									 "SELECT wait_event_type = 'Extension' AND state = 'active' "
									 "FROM pg_catalog.pg_stat_get_activity($1::int)",
									 1, NULL, params, NULL, NULL, 0);
		bool		asleep;

		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			die("pg_stat_get_activity: %s", PQerrorMessage(b));
		asleep = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
		PQclear(r);
		if (asleep)
			return;
		if (now_ms() - start > 10000)
			die("await_txid's backend %s never went to sleep in 10 s", pid);
		usleep(50);
	}
}

typedef enum
{
	LAT_AWAIT,
	LAT_AWAIT_AFTER,
	LAT_NOTIFY,
	LAT_APPLY_NOTIFY
} LatKind;

static int
do_latency(LatKind kind, int n, const char *arg1, const char *arg2)
{
	PGconn	   *a = connect_db();
	PGconn	   *b = connect_db();
	double	   *v = calloc(n, sizeof(double));
	int			got = 0;
	int			failed = 0;
	char		apid[32];
	char		sql[1024];
	const char *apply_sql =
		"SELECT state.apply(jsonb_build_array(jsonb_build_object("
		"'type', $1::text, 'key', $2::text, 'value', jsonb_build_object('n', 1), "
		"'headers', jsonb_build_object('operation', 'upsert', 'txid', $3::text))), $4::text)";

	if (v == NULL)
		die("out of memory");
	snprintf(apid, sizeof(apid), "%d", PQbackendPID(a));
	if (kind == LAT_NOTIFY)
	{
		char	   *qc = quote_ident(a, arg1);

		snprintf(sql, sizeof(sql), "LISTEN %s", qc);
		run_cmd(a, sql);
		PQfreemem(qc);
	}
	else if (kind == LAT_APPLY_NOTIFY)
	{
		PGresult   *r;
		char	   *qc;
		const char *params[1] = {arg1};

		r = PQexecParams(a, "SELECT state.channel($1)", 1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			die("state.channel: %s", PQerrorMessage(a));
		qc = quote_ident(a, PQgetvalue(r, 0, 0));
		PQclear(r);
		snprintf(sql, sizeof(sql), "LISTEN %s", qc);
		run_cmd(a, sql);
		PQfreemem(qc);
	}
	else
		run_cmd(b, "SET durable_state.notify = off");

	if (kind == LAT_AWAIT_AFTER)
	{
		for (int i = 0; i < n; i++)
		{
			char		txid[96];
			char		key[64];
			const char *bparams[4] = {arg2, key, txid, arg1};
			const char *aparams[1] = {txid};
			PGresult   *r;
			double		t0;

			snprintf(txid, sizeof(txid), "lat-%d-%d-%d", (int) getpid(), (int) kind, i);
			snprintf(key, sizeof(key), "lat%d", i % 1000);
			r = PQexecParams(b, apply_sql, 4, NULL, bparams, NULL, NULL, 0);
			t0 = now_ms();
			if (PQresultStatus(r) != PGRES_TUPLES_OK)
				die("apply: %s", PQerrorMessage(b));
			PQclear(r);
			r = PQexecParams(a, "SELECT state.await_txid($1, 5000)", 1, NULL, aparams, NULL, NULL, 0);
			v[got++] = now_ms() - t0;
			if (PQresultStatus(r) != PGRES_TUPLES_OK)
				die("await_txid: %s", PQerrorMessage(a));
			if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
				failed++;
			PQclear(r);
		}
		n = 0;					/* skip the loop below */
	}

	for (int i = 0; i < n; i++)
	{
		char		txid[96];
		char		key[64];
		char		notify_sql[512];
		bool		a_done = false;
		bool		b_done = false;
		double		t0 = 0;
		double		t1 = 0;
		double		deadline;

		snprintf(txid, sizeof(txid), "lat-%d-%d-%d", (int) getpid(), (int) kind, i);
		snprintf(key, sizeof(key), "lat%d", i % 1000);

		if (kind == LAT_AWAIT)
		{
			const char *params[1] = {txid};

			send_query(a, "SELECT state.await_txid($1, 5000)", 1, params);
			wait_asleep(b, apid);
		}
		/* B: the commit */
		if (kind == LAT_NOTIFY)
		{
			char	   *qc = quote_ident(b, arg1);
			char	   *lit = PQescapeLiteral(b, txid, strlen(txid));

			snprintf(notify_sql, sizeof(notify_sql), "NOTIFY %s, %s", qc, lit);
			PQfreemem(qc);
			PQfreemem(lit);
			if (!PQsendQuery(b, notify_sql))
				die("NOTIFY: %s", PQerrorMessage(b));
		}
		else
		{
			const char *params[4] = {arg2, key, txid, arg1};

			send_query(b, apply_sql, 4, params);
		}

		deadline = now_ms() + 10000;
		while (!a_done || !b_done)
		{
			struct pollfd fds[2];
			int			nfds = 0;
			int			ia = -1;
			int			ib = -1;
			double		wait = deadline - now_ms();

			if (wait <= 0)
				die("round %d: no %s within 10 s", i,
					!b_done ? "commit" : kind == LAT_AWAIT ? "await_txid result" : "notification");
			if (!a_done)
			{
				ia = nfds;
				fds[nfds].fd = PQsocket(a);
				fds[nfds++].events = POLLIN;
			}
			if (!b_done)
			{
				ib = nfds;
				fds[nfds].fd = PQsocket(b);
				fds[nfds++].events = POLLIN;
			}
			if (poll(fds, nfds, (int) wait + 1) < 0)
			{
				if (errno == EINTR)
					continue;
				die("poll: %s", strerror(errno));
			}
			if (ib >= 0 && fds[ib].revents)
			{
				if (!PQconsumeInput(b))
					die("B lost its connection: %s", PQerrorMessage(b));
				if (!PQisBusy(b))
				{
					t0 = now_ms();
					PQclear(finish_query(b, "B"));
					b_done = true;
				}
			}
			if (ia >= 0 && fds[ia].revents)
			{
				if (!PQconsumeInput(a))
					die("A lost its connection: %s", PQerrorMessage(a));
				if (kind == LAT_AWAIT)
				{
					if (!PQisBusy(a))
					{
						PGresult   *r;

						t1 = now_ms();
						r = finish_query(a, "await_txid");
						if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
							failed++;
						PQclear(r);
						a_done = true;
					}
				}
				else
				{
					PGnotify   *nt;

					while ((nt = PQnotifies(a)) != NULL)
					{
						bool		mine = kind == LAT_NOTIFY
							? strcmp(nt->extra, txid) == 0
							: strstr(nt->extra, txid) != NULL;

						if (mine && !a_done)
						{
							t1 = now_ms();
							a_done = true;
						}
						PQfreemem(nt);
					}
				}
			}
		}
		v[got++] = t1 - t0;
	}
	summary(v, got, failed);
	PQfinish(a);
	PQfinish(b);
	free(v);
	return failed ? 2 : 0;
}

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 3 && strcmp(argv[1], "listen") == 0)
		return do_listen(argc - 2, argv + 2);
	if (argc == 5 && strcmp(argv[1], "await") == 0)
		return do_latency(LAT_AWAIT, atoi(argv[2]), argv[3], argv[4]);
	if (argc == 5 && strcmp(argv[1], "await-after") == 0)
		return do_latency(LAT_AWAIT_AFTER, atoi(argv[2]), argv[3], argv[4]);
	if (argc == 4 && strcmp(argv[1], "notify") == 0)
		return do_latency(LAT_NOTIFY, atoi(argv[2]), argv[3], NULL);
	if (argc == 5 && strcmp(argv[1], "apply-notify") == 0)
		return do_latency(LAT_APPLY_NOTIFY, atoi(argv[2]), argv[3], argv[4]);
	fprintf(stderr,
			"usage: notify_client listen CHANNEL...\n"
			"       notify_client await N STREAM TYPE\n"
			"       notify_client await-after N STREAM TYPE\n"
			"       notify_client notify N CHANNEL\n"
			"       notify_client apply-notify N STREAM TYPE\n");
	return 64;
}
