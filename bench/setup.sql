-- durable_state benchmark: schema, baseline materializers and input data.
--
-- Loaded by bench/run.sh into a fresh database with these psql variables:
--   :events   events per timed batch (default 100000)
--   :preload  keys loaded before each timed batch (default 50000)
--   :txid     'event' (one txid per event), 'batch' (one per batch) or 'none'
-- Everything generated here is built before any timing starts.

\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE SCHEMA bench;

-- The adopted typed table (C path, plpgsql baseline and COPY all use it).
CREATE TABLE public.bench_items (
    id     text PRIMARY KEY,
    name   text NOT NULL,
    score  bigint NOT NULL,
    active boolean NOT NULL
);

-- Same shape as a durable_state document collection's table; used by the
-- plpgsql baseline and by COPY.  (The C path writes public.docs, created by
-- state.create_collection('docs', 'doc').)
CREATE TABLE public.docs_plain (
    key   text PRIMARY KEY,
    value jsonb NOT NULL
);

-- What a user would write by hand: a change log shaped like state.log and a
-- per-stream counter that hands out seq numbers.
CREATE TABLE bench.plain_streams (
    id   integer PRIMARY KEY,
    tail bigint NOT NULL DEFAULT 0
);

CREATE TABLE bench.plain_log (
    stream_id  integer NOT NULL,
    seq        bigint NOT NULL,
    event      jsonb NOT NULL,
    applied_at timestamptz NOT NULL,
    PRIMARY KEY (stream_id, seq)
);

CREATE TABLE bench.input (
    name   text PRIMARY KEY,
    n      integer NOT NULL,
    events jsonb NOT NULL,      -- one JSON array (state.apply, plpgsql)
    ndjson text NOT NULL        -- the same events, one per line (state.apply_text)
);

CREATE TABLE bench.results (
    method  text NOT NULL,
    target  text NOT NULL,
    rep     integer NOT NULL,
    events  bigint NOT NULL,
    seconds double precision NOT NULL,    -- inside the statement
    seconds_commit double precision,      -- statement + commit, as the client sees it
    cpu_seconds double precision,         -- the backend's CPU time inside the statement
    applied bigint,
    check_ok boolean,
    note    text
);

-- ---------------------------------------------------------------------------
-- Baseline: the materializer a competent user would write in plpgsql.
-- One row lock on the stream counter per batch, then one upsert per event in
-- order (later events for the same key must win), then every event appended
-- to the log with its seq in one INSERT ... SELECT (about 15% faster than an
-- INSERT per event inside the loop, so the baseline is not a straw man).
-- ---------------------------------------------------------------------------

CREATE FUNCTION bench.plain_apply_items(events jsonb, p_stream integer,
    log_per_event boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    n    bigint := jsonb_array_length(events);
    base bigint;
    i    bigint := 0;
    e    jsonb;
    v    jsonb;
BEGIN
    UPDATE bench.plain_streams SET tail = tail + n
     WHERE id = p_stream
    RETURNING tail - n INTO base;
    IF base IS NULL THEN
        RAISE EXCEPTION 'stream % does not exist', p_stream;
    END IF;

    FOR e IN SELECT value FROM jsonb_array_elements(events) LOOP
        i := i + 1;
        IF log_per_event THEN
            -- the baseline exactly as the issue describes it: a log INSERT in the loop
            INSERT INTO bench.plain_log (stream_id, seq, event, applied_at)
            VALUES (p_stream, base + i, e, now());
        END IF;
        v := e->'value';
        CASE e->'headers'->>'operation'
        WHEN 'upsert', 'insert', 'update' THEN
            INSERT INTO public.bench_items (id, name, score, active)
            VALUES (e->>'key', v->>'name', (v->>'score')::bigint, (v->>'active')::boolean)
            ON CONFLICT (id) DO UPDATE
               SET name = EXCLUDED.name, score = EXCLUDED.score, active = EXCLUDED.active;
        WHEN 'delete' THEN
            DELETE FROM public.bench_items WHERE id = e->>'key';
        ELSE
            RAISE EXCEPTION 'event %: unknown operation %', i, e->'headers'->>'operation';
        END CASE;
    END LOOP;
    -- the whole batch into the log in one statement, seq in event order
    IF NOT log_per_event THEN
        INSERT INTO bench.plain_log (stream_id, seq, event, applied_at)
        SELECT p_stream, base + x.o, x.e, now()
          FROM jsonb_array_elements(events) WITH ORDINALITY x(e, o);
    END IF;
    RETURN n;
END
$$;

CREATE FUNCTION bench.plain_apply_docs(events jsonb, p_stream integer,
    log_per_event boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    n    bigint := jsonb_array_length(events);
    base bigint;
    i    bigint := 0;
    e    jsonb;
BEGIN
    UPDATE bench.plain_streams SET tail = tail + n
     WHERE id = p_stream
    RETURNING tail - n INTO base;
    IF base IS NULL THEN
        RAISE EXCEPTION 'stream % does not exist', p_stream;
    END IF;

    FOR e IN SELECT value FROM jsonb_array_elements(events) LOOP
        i := i + 1;
        IF log_per_event THEN
            -- the baseline exactly as the issue describes it: a log INSERT in the loop
            INSERT INTO bench.plain_log (stream_id, seq, event, applied_at)
            VALUES (p_stream, base + i, e, now());
        END IF;
        CASE e->'headers'->>'operation'
        WHEN 'upsert', 'insert', 'update' THEN
            INSERT INTO public.docs_plain (key, value)
            VALUES (e->>'key', e->'value')
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
        WHEN 'delete' THEN
            DELETE FROM public.docs_plain WHERE key = e->>'key';
        ELSE
            RAISE EXCEPTION 'event %: unknown operation %', i, e->'headers'->>'operation';
        END CASE;
    END LOOP;
    -- the whole batch into the log in one statement, seq in event order
    IF NOT log_per_event THEN
        INSERT INTO bench.plain_log (stream_id, seq, event, applied_at)
        SELECT p_stream, base + x.o, x.e, now()
          FROM jsonb_array_elements(events) WITH ORDINALITY x(e, o);
    END IF;
    RETURN n;
END
$$;

-- ---------------------------------------------------------------------------
-- Input data.  Preload: keys k1..kP (version 0).  Batch of N events:
-- odd positions update k1, k2, ... (keys that exist before the batch), even
-- positions insert new keys k(P+1), k(P+2), ...  So half updates, half new
-- keys, interleaved, and all N keys of a batch are distinct (COPY can load
-- exactly the same rows).
-- ---------------------------------------------------------------------------

CREATE FUNCTION bench.event(typ text, i bigint, ver integer, txid text)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_build_object(
        'type', typ,
        'key', 'k' || i,
        'value', jsonb_build_object(
            'id', 'k' || i,
            'name', 'n' || i || CASE WHEN ver > 0 THEN '-v' || ver ELSE '' END,
            'score', i * 10 + ver,
            'active', (i + ver) % 2 = 0),
        'headers', CASE WHEN txid IS NULL
                        THEN jsonb_build_object('operation', 'upsert')
                        ELSE jsonb_build_object('operation', 'upsert', 'txid', txid) END)
$$;

CREATE TEMP TABLE gen AS
SELECT 'preload'::text AS part, i AS pos, i AS k, 0 AS ver
  FROM generate_series(1, :preload) i
UNION ALL
SELECT 'batch', j,
       CASE WHEN j % 2 = 1 THEN (j + 1) / 2 ELSE :preload + j / 2 END,
       1
  FROM generate_series(1, :events) j;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM gen WHERE part = 'batch' AND ver = 1 AND pos % 2 = 1
               AND k > (SELECT max(k) FROM gen WHERE part = 'preload')) THEN
        RAISE EXCEPTION 'bench: BENCH_PRELOAD must be at least half of BENCH_EVENTS';
    END IF;
END $$;

INSERT INTO bench.input (name, n, events, ndjson)
SELECT t.typ || '_' || g.part,
       count(*),
       jsonb_agg(g.ev ORDER BY g.pos),
       string_agg(g.ev::text, E'\n' ORDER BY g.pos)
  FROM (VALUES ('item'), ('doc')) t(typ)
 CROSS JOIN LATERAL (
       SELECT gen.part, gen.pos,
              bench.event(t.typ, gen.k, gen.ver,
                          CASE :'txid'
                               WHEN 'event' THEN gen.part || '-' || gen.pos
                               WHEN 'batch' THEN gen.part
                          END) AS ev
         FROM gen) g
 GROUP BY t.typ, g.part;

DROP TABLE gen;
ANALYZE bench.input;

-- ---------------------------------------------------------------------------
-- Harness.  bench.run() applies one input with one method; the input is
-- read into a variable (plpgsql detoasts it there) before the clock starts,
-- so only the apply itself is timed, server-side, with clock_timestamp().
-- ---------------------------------------------------------------------------

CREATE FUNCTION bench.target_table(method text, target text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN target = 'items' THEN 'public.bench_items'
                WHEN method IN ('apply', 'apply_text') THEN 'public.docs'
                ELSE 'public.docs_plain' END
$$;

-- The CPU time this backend has used, in seconds (user and system, from
-- /proc/self/stat, whose times are in USER_HZ, 100 a second on Linux), or
-- NULL where it cannot be read (not Linux, not allowed to read files).
-- Unlike the clock it does not count time the backend waited for a CPU,
-- which on a shared 2-core machine is most of the noise.
CREATE FUNCTION bench.cpu_seconds() RETURNS double precision
LANGUAGE plpgsql
AS $$
DECLARE
    f text[];
BEGIN
    -- the fields after the command name, which is in parentheses
    f := string_to_array(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' ');
    RETURN (f[12]::bigint + f[13]::bigint) / 100.0;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;

CREATE FUNCTION bench.run(method text, target text, stream text, input_name text,
                          copy_path text DEFAULT NULL, rep integer DEFAULT 0)
RETURNS double precision
LANGUAGE plpgsql
AS $$
DECLARE
    ev   jsonb;
    txt  text;
    n_in integer;
    n    bigint;
    t0   timestamptz;
    t1   timestamptz;
    c0   double precision;
    secs double precision;
BEGIN
    IF method IN ('apply', 'plpgsql', 'plpgsql_row') THEN
        SELECT i.events, i.n INTO STRICT ev, n_in FROM bench.input i WHERE i.name = input_name;
    ELSIF method = 'apply_text' THEN
        SELECT i.ndjson, i.n INTO STRICT txt, n_in FROM bench.input i WHERE i.name = input_name;
    ELSE
        SELECT i.n INTO STRICT n_in FROM bench.input i WHERE i.name = input_name;
    END IF;

    c0 := bench.cpu_seconds();
    t0 := clock_timestamp();
    CASE method
    WHEN 'apply' THEN
        SELECT a.applied INTO n FROM state.apply(ev, stream) a;
    WHEN 'apply_text' THEN
        SELECT a.applied INTO n FROM state.apply_text(txt, stream) a;
    WHEN 'plpgsql' THEN
        IF target = 'items' THEN
            n := bench.plain_apply_items(ev, stream::integer);
        ELSE
            n := bench.plain_apply_docs(ev, stream::integer);
        END IF;
    WHEN 'plpgsql_row' THEN
        IF target = 'items' THEN
            n := bench.plain_apply_items(ev, stream::integer, true);
        ELSE
            n := bench.plain_apply_docs(ev, stream::integer, true);
        END IF;
    WHEN 'copy' THEN
        EXECUTE format('COPY %s FROM %L WITH (FORMAT csv)',
                       bench.target_table(method, target), copy_path);
        GET DIAGNOSTICS n = ROW_COUNT;
    END CASE;
    t1 := clock_timestamp();

    secs := extract(epoch FROM t1 - t0);
    IF rep > 0 THEN
        INSERT INTO bench.results (method, target, rep, events, seconds, applied, cpu_seconds)
        VALUES (method, target, rep, n_in, secs, n, bench.cpu_seconds() - c0);
    END IF;
    RETURN secs;
END
$$;

-- Checks the result of a timed run: row count, an updated and a new key,
-- and (for the apply/plpgsql methods) the number of logged events.
CREATE FUNCTION bench.verify(method text, target text, stream text, rep integer,
                            preload integer, events integer)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    tbl      text := bench.target_table(method, target);
    col_key  text := CASE WHEN target = 'items' THEN 'id' ELSE 'key' END;
    col_name text := CASE WHEN target = 'items' THEN 'name' ELSE 'value->>''name''' END;
    want     bigint := CASE WHEN method = 'copy' THEN events
                            ELSE preload + events / 2 END;
    got      bigint;
    logged   bigint;
    upd      text;
    new_key  text;
    problems text[] := '{}';
BEGIN
    EXECUTE format('SELECT count(*) FROM %s', tbl) INTO got;
    IF got <> want THEN
        problems := problems || format('%s rows, expected %s', got, want);
    END IF;
    EXECUTE format('SELECT %s FROM %s WHERE %I = %L', col_name, tbl, col_key, 'k1') INTO upd;
    IF upd IS DISTINCT FROM 'n1-v1' THEN
        problems := problems || format('k1 has name %s, expected n1-v1', coalesce(upd, 'NULL'));
    END IF;
    EXECUTE format('SELECT %s FROM %s WHERE %I = %L', col_name, tbl, col_key,
                   'k' || (preload + 1)) INTO new_key;
    IF new_key IS DISTINCT FROM 'n' || (preload + 1) || '-v1' THEN
        problems := problems || format('k%s missing or wrong', preload + 1);
    END IF;
    IF method IN ('apply', 'apply_text') THEN
        -- through the public API, whatever the log's physical layout
        EXECUTE 'SELECT count(*) FROM state.changes($1, ''-1'', $2)'
           INTO logged USING stream, preload + events + 1;
    ELSIF method IN ('plpgsql', 'plpgsql_row') THEN
        SELECT count(*) INTO logged FROM bench.plain_log WHERE stream_id = stream::integer;
    END IF;
    IF logged IS NOT NULL AND logged <> preload + events THEN
        problems := problems || format('%s events logged, expected %s', logged, preload + events);
    END IF;
    UPDATE bench.results r
       SET check_ok = cardinality(problems) = 0,
           note = nullif(array_to_string(problems, '; '), '')
     WHERE r.method = verify.method AND r.target = verify.target AND r.rep = verify.rep;
    RETURN coalesce(nullif(array_to_string(problems, '; '), ''), 'ok');
END
$$;
