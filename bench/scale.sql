-- bench/scale.sql: what bench/scale.sh measures with (schema "scale").
--
-- A typed collection on stream 'scale' (scale.items, adopted, lenient) and
-- its plain-SQL equivalent: a table of the same shape (scale.plain_items)
-- written with INSERT ... ON CONFLICT DO UPDATE, and a jsonb log table read
-- by primary key (scale.plain_log).  Only durable_state's public SQL API is
-- called (apply, changes, tail, snapshot, get_type, set_retention and the
-- state.streams view), so the bench keeps working whatever the functions
-- are made of.

CREATE EXTENSION IF NOT EXISTS durable_state;
CREATE SCHEMA scale;

CREATE TABLE scale.items (id text PRIMARY KEY, name text NOT NULL, score bigint NOT NULL, active boolean NOT NULL);
CREATE TABLE scale.plain_items (id text PRIMARY KEY, name text NOT NULL, score bigint NOT NULL, active boolean NOT NULL);
CREATE TABLE scale.plain_log (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event jsonb NOT NULL);
SELECT state.create_collection('items', 'item', table_name => 'scale.items', stream => 'scale', mode => 'lenient');

-- Keys are k1 .. k<n_keys>; both sides always hold the same ones.
CREATE TABLE scale.meta (n_keys bigint NOT NULL);
INSERT INTO scale.meta VALUES (0);

-- A batch of protocol upserts: n_upd distinct existing keys spread over the
-- whole key space from a random start (stride n_keys / n_upd, so no key
-- twice: ON CONFLICT refuses that), then the n_new keys after n_keys.  With
-- txid, every event carries its own headers.txid (txid || '.' || key number).
-- start and salt (which makes the values differ from the stored ones) are
-- random unless given.
CREATE FUNCTION scale.batch(n_keys bigint, n_upd int, n_new int, txid text DEFAULT NULL,
                            start bigint DEFAULT NULL, salt bigint DEFAULT NULL)
RETURNS jsonb LANGUAGE sql VOLATILE AS $$
    WITH r AS (SELECT coalesce(start, floor(random() * 1e15)::bigint) % greatest(n_keys, 1) AS start,
                      greatest(n_keys / greatest(n_upd, 1), 1) AS stride,
                      coalesce(salt, floor(random() * 1000000)::bigint) AS salt),
    k AS (SELECT 1 + (r.start + i * r.stride) % n_keys AS n, r.salt
            FROM r, generate_series(0, n_upd - 1) i
           WHERE n_keys > 0
          UNION ALL
          SELECT n_keys + i, r.salt FROM r, generate_series(1, n_new) i)
    SELECT jsonb_agg(jsonb_build_object(
               'type', 'item', 'key', 'k' || n,
               'value', jsonb_build_object('id', 'k' || n, 'name', 'n' || n || '.' || salt,
                                           'score', n + salt, 'active', (n + salt) % 2 = 0),
               'headers', CASE WHEN txid IS NULL THEN jsonb_build_object('operation', 'upsert')
                               ELSE jsonb_build_object('operation', 'upsert', 'txid', txid || '.' || n) END))
      FROM k
$$;

-- The plain-SQL equivalent of state.apply(b) for this table: the upserts,
-- then every event in a jsonb log table, in batch order.
CREATE FUNCTION scale.plain_apply(b jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO scale.plain_items
    SELECT e->>'key', e->'value'->>'name', (e->'value'->>'score')::bigint, (e->'value'->>'active')::boolean
      FROM jsonb_array_elements(b) e
    ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, score = EXCLUDED.score, active = EXCLUDED.active;
    INSERT INTO scale.plain_log (event)
    SELECT e FROM jsonb_array_elements(b) WITH ORDINALITY AS x(e, i) ORDER BY i;
$$;

-- CALL scale.run(batches, n_upd, n_new): the same batches through
-- state.apply and scale.plain_apply, each in its own transaction, the side
-- that goes first alternating.  Seconds are the server's clock around the
-- call and its COMMIT; building the batch is not timed.
CREATE PROCEDURE scale.run(batches int, n_upd int, n_new int, txid text DEFAULT NULL,
                           INOUT ds_s float8 DEFAULT 0, INOUT plain_s float8 DEFAULT 0,
                           INOUT events bigint DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    nk bigint;
    b jsonb;
    t0 timestamptz;
BEGIN
    ds_s := 0; plain_s := 0; events := 0;
    FOR r IN 1..batches LOOP
        SELECT n_keys INTO nk FROM scale.meta;
        b := scale.batch(nk, n_upd, n_new, CASE WHEN txid IS NOT NULL THEN txid || '.' || r END);
        UPDATE scale.meta SET n_keys = n_keys + n_new;
        COMMIT;
        FOR side IN 0..1 LOOP
            t0 := clock_timestamp();
            IF (side + r) % 2 = 0 THEN
                PERFORM state.apply(b, 'scale');
                COMMIT;
                ds_s := ds_s + extract(epoch FROM clock_timestamp() - t0);
            ELSE
                PERFORM scale.plain_apply(b);
                COMMIT;
                plain_s := plain_s + extract(epoch FROM clock_timestamp() - t0);
            END IF;
        END LOOP;
        events := events + jsonb_array_length(b);
    END LOOP;
END
$$;

-- CALL scale.wal(side, batches, n_upd, txid, seed, salt): WAL written
-- (insert LSN difference) by that many batches of updates through one side;
-- the caller runs CHECKPOINT just before, so the first change to every page
-- pays its full-page image, as after any checkpoint.  Batches are built
-- before the first LSN is read, from seed: calls with the same seed update
-- the same keys, so they touch the same pages; a salt of as many digits
-- gives values of the same size (a new salt: values that really change).
CREATE PROCEDURE scale.wal(side text, batches int, n_upd int, txid text, seed bigint, salt bigint,
                           INOUT wal_bytes numeric DEFAULT 0, INOUT events bigint DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    nk bigint := (SELECT n_keys FROM scale.meta);
    bs jsonb[];
    lsn0 pg_lsn;
BEGIN
    SELECT array_agg(scale.batch(nk, n_upd, 0, CASE WHEN txid IS NOT NULL THEN txid || '.' || r END,
                                 seed + r * 104729, salt) ORDER BY r)
      INTO bs FROM generate_series(1, batches) r;
    lsn0 := pg_current_wal_insert_lsn();
    FOR r IN 1..batches LOOP
        IF side = 'ds' THEN
            PERFORM state.apply(bs[r], 'scale');
        ELSE
            PERFORM scale.plain_apply(bs[r]);
        END IF;
        COMMIT;
    END LOOP;
    wal_bytes := pg_current_wal_insert_lsn() - lsn0;
    events := batches::bigint * n_upd;
END
$$;

-- One page of up to 1000 events as a client gets it (the events' text).
CREATE FUNCTION scale.page_ds(since text, OUT n bigint, OUT last text, OUT bytes bigint)
LANGUAGE sql AS $$
    SELECT count(*), max(c."offset"), sum(length(c.event::text)) FROM state.changes('scale', since, 1000) c
$$;
CREATE FUNCTION scale.page_plain(since bigint, OUT n bigint, OUT last bigint, OUT bytes bigint)
LANGUAGE sql AS $$
    SELECT count(*), max(p.seq), sum(length(p.event::text))
      FROM (SELECT seq, event FROM scale.plain_log WHERE seq > since ORDER BY seq LIMIT 1000) p
$$;

-- Median milliseconds of reps reads of one page of 1000 events at the tail
-- (the last 1000) and from the middle of the log, each side, interleaved.
CREATE FUNCTION scale.latency(reps int, OUT figure text, OUT ds_ms float8, OUT plain_ms float8,
                              OUT ds_rows bigint, OUT plain_rows bigint)
RETURNS SETOF record LANGUAGE plpgsql AS $$
DECLARE
    ds_tail bigint := state.tail('scale')::bigint;
    pl_tail bigint := (SELECT max(seq) FROM scale.plain_log);
    ds_since text;
    pl_since bigint;
    a float8[];
    p float8[];
    t0 timestamptz;
    pg record;
BEGIN
    FOREACH figure IN ARRAY ARRAY['tail', 'middle'] LOOP
        IF figure = 'tail' THEN
            ds_since := lpad(greatest(ds_tail - 1000, 0)::text, 20, '0');
            pl_since := pl_tail - 1000;
        ELSE
            ds_since := lpad((ds_tail / 2)::text, 20, '0');
            pl_since := pl_tail / 2;
        END IF;
        a := '{}'; p := '{}';
        FOR i IN 1..reps LOOP
            t0 := clock_timestamp();
            pg := scale.page_ds(ds_since);
            a := a || extract(epoch FROM clock_timestamp() - t0) * 1000;
            ds_rows := pg.n;
            t0 := clock_timestamp();
            pg := scale.page_plain(pl_since);
            p := p || extract(epoch FROM clock_timestamp() - t0) * 1000;
            plain_rows := pg.n;
        END LOOP;
        ds_ms := (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(a) x);
        plain_ms := (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(p) x);
        RETURN NEXT;
    END LOOP;
END
$$;

-- The whole log read in pages of 1000, as a subscriber catching up from
-- the beginning: events read and seconds.
CREATE FUNCTION scale.catchup_ds(OUT events bigint, OUT secs float8) LANGUAGE plpgsql AS $$
DECLARE
    since text := '-1';
    t0 timestamptz := clock_timestamp();
    pg record;
BEGIN
    events := 0;
    LOOP
        pg := scale.page_ds(since);
        EXIT WHEN pg.n = 0;
        events := events + pg.n;
        since := pg.last;
    END LOOP;
    secs := extract(epoch FROM clock_timestamp() - t0);
END
$$;
CREATE FUNCTION scale.catchup_plain(OUT events bigint, OUT secs float8) LANGUAGE plpgsql AS $$
DECLARE
    since bigint := 0;
    t0 timestamptz := clock_timestamp();
    pg record;
BEGIN
    events := 0;
    LOOP
        pg := scale.page_plain(since);
        EXIT WHEN pg.n = 0;
        events := events + pg.n;
        since := pg.last;
    END LOOP;
    secs := extract(epoch FROM clock_timestamp() - t0);
END
$$;

-- A writer that never pauses: batches of n_upd updates, a transaction
-- each, for the given seconds, through one side.
CREATE PROCEDURE scale.writer(side text, seconds float8, n_upd int, INOUT events bigint DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    stop timestamptz := clock_timestamp() + make_interval(secs => seconds);
    nk bigint := (SELECT n_keys FROM scale.meta);
    b jsonb;
BEGIN
    events := 0;
    WHILE clock_timestamp() < stop LOOP
        b := scale.batch(nk, n_upd, 0);
        IF side = 'ds' THEN
            PERFORM state.apply(b, 'scale');
        ELSE
            PERFORM scale.plain_apply(b);
        END IF;
        COMMIT;
        events := events + n_upd;
    END LOOP;
END
$$;

-- What a user would run instead of set_retention(max_events => bound): a
-- DELETE of the plain log's older rows every second (the worker's interval).
CREATE PROCEDURE scale.plain_pruner(bound bigint, seconds float8)
LANGUAGE plpgsql AS $$
DECLARE
    stop timestamptz := clock_timestamp() + make_interval(secs => seconds);
BEGIN
    WHILE clock_timestamp() < stop LOOP
        DELETE FROM scale.plain_log WHERE seq <= (SELECT max(seq) FROM scale.plain_log) - bound;
        COMMIT;
        PERFORM pg_sleep(1);
    END LOOP;
END
$$;
