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

-- == txids: registration position, replicated horizon, WAL cost ==
