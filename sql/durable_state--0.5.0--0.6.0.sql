-- durable_state 0.5.0 -> 0.6.0
--
-- Costs that stay flat as data grows, and txid states that never move back.
-- Each section below belongs to one change; keep them apart.

\echo Use "ALTER EXTENSION durable_state UPDATE TO '0.6.0'" to load this file. \quit

-- == reads: constant-memory get_type / get_many / snapshot ==

-- state.snapshot and state._snapshot are written in C (src/reads.c), in
-- constant memory: the rows go straight to the call's one tuplestore,
-- which spills past work_mem (the PL/pgSQL loop's RETURN QUERY copied a
-- sorted copy of them).  Unchanged: one snapshot for the offsets and every
-- row (the offset computed once; under READ COMMITTED a snapshot that is
-- not exact waits and tries again with a new one, a few times, then with
-- the barrier, 50 times on a standby; otherwise 40001), the collections by
-- type and the entities by key, both COLLATE "C" (the key index is read in
-- order when it holds the keys in that order, else a tuplesort sorts each
-- collection).
CREATE OR REPLACE FUNCTION state._snapshot(stream text) RETURNS SETOF jsonb
AS 'MODULE_PATHNAME', 'ds_snapshot_rows'
LANGUAGE C STABLE
SET search_path = pg_catalog;

CREATE OR REPLACE FUNCTION state.snapshot(stream text DEFAULT 'default') RETURNS SETOF jsonb
AS 'MODULE_PATHNAME', 'ds_snapshot'
LANGUAGE C VOLATILE
SET search_path = pg_catalog;

-- == changes: the log read in C, pruning under load ==

-- state.changes reads the log in C (src/changes.c): one MVCC scan of
-- state.log's primary key in offset order from since, stopping before a
-- gap a later commit could fill (the stable offset, src/stable.c) and
-- after max_events events.  No plan to go wrong before state.log has
-- statistics, one scan instead of two (state._changes_cap, now unused),
-- constant memory for any max_events.  Same output, offsets and errors;
-- roles under row-level security still get the filtered feed.
-- wait_ms (issue 14): when nothing after since is readable, sleep up to
-- wait_ms until something is (src/waitread.c), on a primary and on a hot
-- standby; one statement, so it works through transaction pooling.
DROP FUNCTION state.changes(text, text, integer);
CREATE FUNCTION state.changes(stream text DEFAULT 'default', since text DEFAULT '-1',
                              max_events integer DEFAULT 1000, wait_ms integer DEFAULT 0)
RETURNS TABLE ("offset" text, event jsonb)
AS 'MODULE_PATHNAME', 'ds_changes'
LANGUAGE C VOLATILE;

DROP FUNCTION state._changes_cap(integer, bigint, integer);

-- Pruning under load.  It never needed what ordinary batches hold (they do
-- not lock the stream's row), but it skipped a stream whose row a batch
-- that needs the whole stream held at that moment (FOR UPDATE SKIP LOCKED),
-- which a busy writer of such batches holds nearly all the time, and it
-- deleted everything beyond the limit in one statement.  Now a chunk of at
-- most max_rows log rows and about max_events events (state._prune) is
-- deleted first, then the stream's row is updated (waiting, if a batch
-- holds it, for that batch only) and the chunk commits at once: a batch
-- that locks the row next waits for a commit, not for a delete.  The worker
-- runs each chunk in a transaction of its own (src/worker.c), until the log
-- is within its limits, sending notifications in between.
--
-- A row goes when it is below the stable tail (a batch still in flight
-- below it would commit under the retained offset; the newest row at or
-- below the tail stays, the tail is read from the log) and it and every
-- row before it are beyond max_events or older than max_age: the oldest
-- rows first, read by the log's primary key, never the whole log.
CREATE FUNCTION state._prune(stream_id integer, max_rows integer, max_events bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    s record;
    tail bigint;
    by_events bigint := 0;
    by_age timestamptz := '-infinity';
    upto bigint;
    n integer;
BEGIN
    SELECT st.retention_age, st.retention_events INTO s
      FROM state._streams st WHERE st.id = _prune.stream_id;
    IF NOT FOUND OR (s.retention_age IS NULL AND s.retention_events IS NULL) THEN
        RETURN 0;
    END IF;
    tail := state._tail(_prune.stream_id);
    IF s.retention_events IS NOT NULL THEN
        by_events := tail - s.retention_events;
    END IF;
    IF s.retention_age IS NOT NULL THEN
        by_age := now() - s.retention_age;
    END IF;
    SELECT max(x.last_seq) INTO upto
      FROM (SELECT l.last_seq,
                   bool_and(l.last_seq <= by_events OR l.applied_at < by_age) OVER w AS old,
                   sum(l.last_seq - l.first_seq + 1) OVER w AS events,
                   row_number() OVER w AS r
              FROM state.log l
             WHERE l.stream_id = _prune.stream_id AND l.last_seq < tail
            WINDOW w AS (ORDER BY l.last_seq ROWS UNBOUNDED PRECEDING)
             ORDER BY l.last_seq
             LIMIT greatest(_prune.max_rows, 1)) x
     WHERE x.old AND (x.events <= _prune.max_events OR x.r = 1);
    IF upto IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM state.log l WHERE l.stream_id = _prune.stream_id AND l.last_seq <= upto;
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE state._streams st
       SET retained_from = greatest(st.retained_from, upto + 1),
           tail = greatest(st.tail, upto)
     WHERE st.id = _prune.stream_id;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION state._prune(integer, integer, bigint) FROM PUBLIC;

-- One chunk of every stream with a retention: the log rows deleted.
CREATE FUNCTION state._prune_streams(max_rows integer, max_events bigint) RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog
BEGIN ATOMIC
    SELECT coalesce(sum(state._prune(st.id, _prune_streams.max_rows, _prune_streams.max_events)), 0)
      FROM state._streams st
     WHERE st.retention_age IS NOT NULL OR st.retention_events IS NOT NULL;
END;
REVOKE ALL ON FUNCTION state._prune_streams(integer, bigint) FROM PUBLIC;

-- The worker's maintenance but pruning the logs: TTLs and old txids
-- (state._prune_txids, below in the txids section: the function is looked
-- up when called).
CREATE FUNCTION state._housekeep(txid_retention integer) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM state._expire();
    PERFORM state._prune_txids(txid_retention);
END
$$;
REVOKE ALL ON FUNCTION state._housekeep(integer) FROM PUBLIC;

-- All of it in one transaction (the worker runs the chunks in their own).
CREATE OR REPLACE FUNCTION state._maintain(txid_retention integer) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM state._housekeep(txid_retention);
    LOOP
        EXIT WHEN state._prune_streams(1000, 100000) = 0;
    END LOOP;
END
$$;

-- == txids: registration position, replicated horizon, WAL cost ==

-- One row per txid, found through a btree on (gen, hash): gen is the
-- 5-minute bucket of applied_at times 16, plus one for every 65,536 txids
-- the bucket already had (up to 15), so a commit only ever inserts into
-- the part of the index that holds the newest gen, which stays small.  A
-- GIN index over random 64-bit hashes touched a random leaf page per txid,
-- and after each checkpoint every such page was written whole to the WAL
-- (full-page images doubled apply's WAL).  A look-up probes the buckets
-- from the newest (src/txid.c), so a recent txid costs one index descent.
--
-- xid is the transaction that committed the txid: whether it is
-- replicated is decided by it (src/horizon.c), so that the answer never
-- moves back once the in-memory ring of recent commits has forgotten the
-- txid or the server restarted.  NULL in rows written before 0.6.0.
-- (The table is changed in place: a config table dropped by its own
-- extension's script would stay behind in pg_extension.extconfig.)
ALTER TABLE state._txids ADD COLUMN gen integer, ADD COLUMN hash bigint, ADD COLUMN xid xid8;
INSERT INTO state._txids (stream_id, last_seq, hashes, applied_at, gen, hash)
SELECT t.stream_id, t.last_seq, '{}', t.applied_at,
       floor(extract(epoch FROM t.applied_at) / 300)::integer * 16, h
  FROM state._txids t, unnest(t.hashes) h
 WHERE t.hash IS NULL;
DELETE FROM state._txids WHERE hash IS NULL;
DROP INDEX state._txids_hashes_idx;
DROP INDEX state._txids_applied_at_idx;
ALTER TABLE state._txids DROP COLUMN hashes,
    ALTER COLUMN gen SET NOT NULL, ALTER COLUMN hash SET NOT NULL;
CREATE INDEX _txids_gen_hash_idx ON state._txids (gen, hash);
COMMENT ON TABLE state._txids IS
    'The txids of committed batches, one row each (state.await_txid, state.txid_status); pruned after durable_state.txid_retention.';
COMMENT ON COLUMN state._txids.gen IS
    'floor(epoch of applied_at / 300) * 16, plus one per 65,536 txids of that 5-minute bucket before (up to 15): the index''s leading column.';
COMMENT ON COLUMN state._txids.hash IS 'The txid, hashed (64-bit).';
COMMENT ON COLUMN state._txids.xid IS
    'The top-level transaction that committed the txid (NULL: written before 0.6.0).';

-- Prunes txids older than txid_retention seconds, whole buckets through
-- the index first.
CREATE FUNCTION state._prune_txids(txid_retention integer) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog
AS $$
    DELETE FROM state._txids
     WHERE gen <= floor(extract(epoch FROM now() - make_interval(secs => txid_retention)) / 300)::integer * 16 + 15
       AND applied_at < now() - make_interval(secs => txid_retention);
$$;
REVOKE EXECUTE ON FUNCTION state._prune_txids(integer) FROM PUBLIC;

