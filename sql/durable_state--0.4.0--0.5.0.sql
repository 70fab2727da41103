-- durable_state 0.4.0 -> 0.5.0
--
-- One stream, many writers.  Batches of one stream no longer wait for each
-- other through their commits: an ordinary batch locks its stream in a
-- shared mode and each key it changes; offsets are handed out at the end
-- of the batch, when it holds every lock, and rows enter the log in offset
-- order (src/changelog.c).  Commits may come in another order, so readers
-- read up to the stable offset: never past a batch their snapshot cannot
-- see yet (src/stable.c).  Offsets still strictly increase per stream;
-- they may have gaps (a rolled-back batch leaves one).
--
-- state.log.stable_seq: an offset below which every batch had ended when
-- the row's batch got its offsets; the tail is found by reading forward
-- from the newest row's.

\echo Use "ALTER EXTENSION durable_state UPDATE TO '0.5.0'" to load this file. \quit

ALTER TABLE state.log ADD COLUMN stable_seq bigint;
COMMENT ON COLUMN state.log.stable_seq IS
    'Every batch of the stream at or below this offset had ended when this row''s batch got its offsets (NULL: written before 0.5.0, in commit order).';

-- The stable tail of a stream as the statement's snapshot sees it: the
-- highest offset a reader may read up to.  One number per stream, for
-- every role (it reads the log past its row-level security, which governs
-- the events).
CREATE OR REPLACE FUNCTION state._tail(stream_id integer) RETURNS bigint
AS 'MODULE_PATHNAME', 'ds_tail'
LANGUAGE C STABLE STRICT;
ALTER FUNCTION state._tail(integer) SECURITY INVOKER;

-- How far state.changes may read after since (at least max_events events
-- if the stable offset allows).
CREATE FUNCTION state._changes_cap(stream_id integer, since bigint, max_events integer)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ds_changes_cap'
LANGUAGE C STABLE STRICT;

-- The offset of a snapshot taken with the statement's snapshot; an error
-- (40001) if the snapshot sees batches beyond one it cannot see yet.
CREATE FUNCTION state._snapshot_tail(stream_id integer) RETURNS bigint
AS 'MODULE_PATHNAME', 'ds_snapshot_tail'
LANGUAGE C STABLE STRICT;

-- Before another try at an exact snapshot: wait for the batch in flight
-- that held the last one back, or (barrier) lock new batches out until the
-- next snapshot is taken.
CREATE FUNCTION state._snapshot_settle(stream_id integer, barrier boolean) RETURNS void
AS 'MODULE_PATHNAME', 'ds_snapshot_settle'
LANGUAGE C VOLATILE STRICT;

-- The locks a batch changing (type, key) takes, held to commit: for
-- read-modify-write (state.increment, state.put with expected_version).
CREATE FUNCTION state._lock_key(stream text, type text, key text) RETURNS boolean
AS 'MODULE_PATHNAME', 'ds_lock_key'
LANGUAGE C VOLATILE STRICT;
REVOKE EXECUTE ON FUNCTION state._lock_key(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION state._lock_key(text, text, text) TO state_writer;

CREATE OR REPLACE FUNCTION state.changes(stream text DEFAULT 'default', since text DEFAULT '-1',
                              max_events integer DEFAULT 1000)
RETURNS TABLE ("offset" text, event jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
    s         state._streams;
    since_seq bigint;
    full_log  boolean;
    cap       bigint;
BEGIN
    SELECT * INTO s FROM state._streams st WHERE st.id = state._stream_id(stream);
    full_log := state._can_read_stream(s.id);
    IF max_events IS NULL OR max_events < 0 THEN
        RAISE EXCEPTION 'max_events must be zero or positive'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    since_seq := state._parse_offset(since, CASE WHEN since = 'now' THEN state._tail(s.id) END);
    IF since_seq < s.retained_from - 1 THEN
        RAISE EXCEPTION 'offset % of stream "%" is no longer retained', since, stream
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The log of this stream starts after offset %s.',
                                  state.format_offset(s.retained_from - 1)),
                  HINT = 'Resync from state.snapshot(), then read changes after its snapshot-end offset.';
    END IF;
    IF NOT full_log THEN
        IF EXISTS (SELECT 1 FROM state._collections c
                    WHERE c.stream_id = s.id AND NOT has_table_privilege(c.relid, 'SELECT')) THEN
            RAISE EXCEPTION 'permission denied for the changes of stream "%"', stream
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = 'Reading a stream''s changes needs SELECT on every collection table of the stream.',
                      HINT = 'Grant SELECT on the stream''s tables, or keep tenants in separate streams.';
        END IF;
        RETURN QUERY
            SELECT state.format_offset(f.seq),
                   jsonb_set(CASE f.verdict
                                 WHEN 'enter' THEN jsonb_set(f.event - 'old_value', '{headers,operation}',
                                     CASE WHEN f.event->'headers'->>'operation' IN ('update', 'upsert')
                                          THEN '"insert"' ELSE f.event->'headers'->'operation' END)
                                 WHEN 'leave' THEN jsonb_build_object('type', f.event->'type', 'key', f.event->'key',
                                     'headers', jsonb_build_object('operation', 'delete'))
                                 ELSE f.event END,
                             '{headers,offset}', to_jsonb(state.format_offset(f.seq)))
              FROM state._changes_filtered(s.name, since_seq, max_events) f;
        RETURN;
    END IF;
    -- never past a batch this snapshot cannot see yet (src/stable.c)
    cap := state._changes_cap(s.id, since_seq, max_events);
    RETURN QUERY
        SELECT state.format_offset(l.first_seq + e.ord - 1),
               jsonb_set(e.ev, '{headers,offset}',
                         to_jsonb(state.format_offset(l.first_seq + e.ord - 1)))
          FROM state.log l
         CROSS JOIN LATERAL unnest(l.events) WITH ORDINALITY AS e(ev, ord)
         WHERE l.stream_id = s.id AND l.last_seq > since_seq AND l.last_seq <= cap
           AND l.first_seq + e.ord - 1 > since_seq
         ORDER BY l.last_seq, e.ord
         LIMIT max_events;
END
$$;

-- The events of a snapshot in one statement, so one MVCC snapshot: the
-- inserts and the offsets agree, and state._snapshot_tail (computed once,
-- for the start and the end) refuses a snapshot that sees a batch beyond
-- one it cannot see yet.
CREATE OR REPLACE FUNCTION state._snapshot(stream text) RETURNS SETOF jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog
BEGIN ATOMIC
    WITH tl AS MATERIALIZED (
        SELECT state.format_offset(state._snapshot_tail(s.id)) AS tail
          FROM state._streams s WHERE s.name = _snapshot.stream
    )
    SELECT ev FROM (
        SELECT 0 AS part, ''::text AS t, ''::text AS k,
               jsonb_build_object('headers', jsonb_build_object(
                   'control', 'snapshot-start', 'offset', tl.tail)) AS ev
          FROM tl
        UNION ALL
        SELECT 1, c.type, g.key,
               jsonb_build_object('type', c.type, 'key', g.key, 'value', g.value,
                                  'headers', jsonb_build_object('operation', 'insert'))
          FROM state._streams s
          JOIN state._collections c ON c.stream_id = s.id
          CROSS JOIN LATERAL state.get_type(c.type, s.name) g
         WHERE s.name = _snapshot.stream
        UNION ALL
        SELECT 2, '', '',
               jsonb_build_object('headers', jsonb_build_object(
                   'control', 'snapshot-end', 'offset', tl.tail))
          FROM tl
    ) x
    ORDER BY part, t COLLATE "C", k COLLATE "C";
END;

-- snapshot() + changes(after its snapshot-end offset) is the current state,
-- no event missing or repeated: the rows are the fold of the log up to the
-- snapshot-end offset.  A snapshot taken while a batch below a visible one
-- is in flight would not be; under READ COMMITTED it waits for that batch
-- and takes another (a few times, then with a short barrier: new batches of
-- the stream wait until the snapshot is taken; on a hot standby, which
-- cannot hold the primary's writers back, it keeps waiting for the batches
-- in flight a while longer).  Under REPEATABLE READ or SERIALIZABLE the
-- transaction's snapshot cannot move: 40001.
CREATE OR REPLACE FUNCTION state.snapshot(stream text DEFAULT 'default') RETURNS SETOF jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
    sid integer := state._stream_id(stream);   -- an unknown stream: a clear error
    standby boolean := pg_is_in_recovery();
BEGIN
    FOR attempt IN 1..CASE WHEN standby THEN 50 ELSE 4 END LOOP
        BEGIN
            RETURN QUERY SELECT * FROM state._snapshot(stream);
            RETURN;
        EXCEPTION WHEN serialization_failure THEN
            IF current_setting('transaction_isolation') <> 'read committed' THEN
                RAISE;
            END IF;
        END;
        PERFORM state._snapshot_settle(sid, attempt >= 3 AND NOT standby);
    END LOOP;
    RAISE EXCEPTION 'could not take an exact snapshot of stream "%"', stream
        USING ERRCODE = 'serialization_failure',
              HINT = 'Retry.';
END
$$;

CREATE OR REPLACE FUNCTION state.put(type text, key text, value jsonb, ttl interval DEFAULT NULL,
                          stream text DEFAULT 'default', expected_version bigint DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    off text;
    cur bigint;
BEGIN
    IF ttl IS NOT NULL AND ttl <= interval '0' THEN
        RAISE EXCEPTION 'ttl must be positive, not %', ttl
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Leave ttl NULL for an entity that does not expire.';
    END IF;
    IF value IS NULL THEN
        RAISE EXCEPTION 'value must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Use state.remove() to delete an entity.';
    END IF;
    IF expected_version IS NOT NULL THEN
        IF expected_version < 0 THEN
            RAISE EXCEPTION 'expected_version must be 0 (absent) or a version, not %', expected_version
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- no batch changes the entity between this read and the write
        PERFORM state._lock_key(put.stream, put.type, put.key);
        cur := coalesce((SELECT g.version FROM state.get_versioned(put.type, put.key, put.stream) g), 0);
        IF cur <> expected_version THEN
            RAISE EXCEPTION 'version conflict on "%" of type "%": expected version %, found %',
                            put.key, put.type, expected_version, cur
                USING ERRCODE = 'serialization_failure',
                      DETAIL = CASE WHEN cur = 0 THEN 'The entity does not exist.'
                                    ELSE format('The entity is at version %s.', cur) END,
                      HINT = 'Read the entity again (state.get_versioned) and retry with its version.';
        END IF;
    END IF;
    SELECT a.last_offset INTO off
      FROM state.apply(jsonb_build_object('type', put.type, 'key', put.key, 'value', put.value,
                                          'headers', jsonb_build_object('operation', 'upsert')),
                       put.stream) a;
    -- the batch ended any earlier TTL of the entity (or set the default one)
    IF ttl IS NOT NULL THEN
        PERFORM state._ttl_set(put.stream, put.type, put.key, clock_timestamp() + ttl);
    END IF;
    RETURN off;
END
$$;

CREATE OR REPLACE FUNCTION state.increment(type text, key text, member text, by numeric DEFAULT 1,
                                stream text DEFAULT 'default')
RETURNS numeric
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    v jsonb;
    cur jsonb;
    n numeric;
BEGIN
    IF member IS NULL OR by IS NULL THEN
        RAISE EXCEPTION 'member and by must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF member = '' THEN
        RAISE EXCEPTION 'member must be a non-empty name'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the entity's lock: counters on other keys of the stream go on
    PERFORM state._lock_key(increment.stream, increment.type, increment.key);
    v := state.get(increment.type, increment.key, increment.stream);
    IF v IS NULL THEN
        v := '{}';
    ELSIF jsonb_typeof(v) <> 'object' THEN
        RAISE EXCEPTION 'cannot increment "%" of "%" of type "%": the value is %, not an object',
                        member, key, type, jsonb_typeof(v)
            USING ERRCODE = 'wrong_object_type';
    END IF;
    cur := v -> member;
    IF cur IS NULL OR cur = 'null' THEN
        n := by;
    ELSIF jsonb_typeof(cur) = 'number' THEN
        n := cur::numeric + by;
    ELSE
        RAISE EXCEPTION 'cannot increment "%" of "%" of type "%": it is %, not a number',
                        member, key, type, jsonb_typeof(cur)
            USING ERRCODE = 'wrong_object_type';
    END IF;
    PERFORM state.apply(jsonb_build_object('type', increment.type, 'key', increment.key,
                                           'value', v || jsonb_build_object(member, n),
                                           'headers', jsonb_build_object('operation', 'upsert')),
                        increment.stream);
    RETURN n;
END
$$;

-- Pruning never deletes past the stable tail (a batch still in flight
-- below it would commit under the retained offset), and keeps the newest
-- row at or below it (the tail is read from the log).  It no longer waits
-- for ordinary batches, which do not lock the stream's row.
CREATE OR REPLACE FUNCTION state._maintain(txid_retention integer) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    s record;
    tail bigint;
    cutoff bigint;
    pruned bigint;
BEGIN
    PERFORM state._expire();
    DELETE FROM state._txids
     WHERE applied_at < now() - make_interval(secs => txid_retention);
    -- recent txids into the index proper (see state._txids)
    PERFORM gin_clean_pending_list('state._txids_hashes_idx'::regclass);
    FOR s IN SELECT st.id, st.retention_age, st.retention_events FROM state._streams st
              WHERE st.retention_age IS NOT NULL OR st.retention_events IS NOT NULL LOOP
        cutoff := 0;
        tail := state._tail(s.id);
        IF s.retention_events IS NOT NULL THEN
            cutoff := greatest(cutoff, tail - s.retention_events);
        END IF;
        IF s.retention_age IS NOT NULL THEN
            cutoff := greatest(cutoff, coalesce((SELECT max(l.last_seq) FROM state.log l
                                                  WHERE l.stream_id = s.id
                                                    AND l.applied_at < now() - s.retention_age), 0));
        END IF;
        cutoff := least(cutoff, tail - 1);
        CONTINUE WHEN cutoff <= 0 OR NOT EXISTS (SELECT 1 FROM state.log l
                                                  WHERE l.stream_id = s.id AND l.last_seq <= cutoff);
        PERFORM 1 FROM state._streams st WHERE st.id = s.id FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        WITH d AS (DELETE FROM state.log l WHERE l.stream_id = s.id AND l.last_seq <= cutoff
                   RETURNING l.last_seq)
        SELECT max(d.last_seq) INTO pruned FROM d;
        UPDATE state._streams st
           SET retained_from = greatest(st.retained_from, pruned + 1),
               tail = greatest(st.tail, pruned)
         WHERE st.id = s.id;
    END LOOP;
END
$$;

-- The TTL sweep locks each stream whole (state._lock_stream) before it
-- reads what expired: a put that renews a TTL either committed before and
-- is seen, or waits and comes after.
CREATE OR REPLACE FUNCTION state._expire() RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    s record;
    e record;
    evs jsonb;
    n bigint := 0;
BEGIN
    FOR s IN SELECT DISTINCT x.stream_id, st.name
               FROM state._expiry x JOIN state._streams st ON st.id = x.stream_id
              WHERE x.expires_at <= clock_timestamp() LOOP
        PERFORM state._lock_stream(s.name);
        SELECT jsonb_agg(jsonb_build_object('type', x.type, 'key', x.key,
                                            'headers', jsonb_build_object('operation', 'delete'))
                         ORDER BY x.type, x.key)
          INTO evs
          FROM state._expiry x
         WHERE x.stream_id = s.stream_id AND x.expires_at <= clock_timestamp();
        CONTINUE WHEN evs IS NULL;
        BEGIN
            PERFORM state.apply(evs, s.name);
            n := n + jsonb_array_length(evs);
        EXCEPTION WHEN OTHERS THEN
            -- one by one: an entity deleted behind the collection's back, or
            -- a collection dropped since, only loses its expiry row
            FOR e IN SELECT x.type, x.key FROM state._expiry x
                      WHERE x.stream_id = s.stream_id AND x.expires_at <= clock_timestamp() LOOP
                BEGIN
                    PERFORM state.apply(jsonb_build_object('type', e.type, 'key', e.key,
                                        'headers', jsonb_build_object('operation', 'delete')), s.name);
                    n := n + 1;
                EXCEPTION WHEN OTHERS THEN
                    RAISE WARNING 'durable_state: could not expire "%" of type "%" in stream "%": %',
                                  e.key, e.type, s.name, SQLERRM;
                    DELETE FROM state._expiry x
                     WHERE x.stream_id = s.stream_id AND x.type = e.type AND x.key = e.key;
                END;
            END LOOP;
        END;
    END LOOP;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION state._expire() FROM PUBLIC;

-- Whether batches of one stream run side by side here (with the preload
-- and durable_state.concurrent_writes) or one after the other through
-- their commits (without the preload).
CREATE FUNCTION state._write_mode() RETURNS text
AS 'MODULE_PATHNAME', 'ds_write_mode'
LANGUAGE C STABLE;

CREATE OR REPLACE VIEW state.stats AS
SELECT x.*,
       current_setting('durable_state.notify') AS notify_mode,
       (SELECT count(*) FROM state._streams) AS streams,
       (SELECT count(*) FROM state._collections) AS collections,
       state._write_mode() AS write_mode
  FROM state._shared_stats() x;
