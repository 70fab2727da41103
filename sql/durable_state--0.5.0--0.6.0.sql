-- durable_state 0.5.0 -> 0.6.0
--
-- Costs that stay flat as data grows, and txid states that never move back.
-- Each section below belongs to one change; keep them apart.

\echo Use "ALTER EXTENSION durable_state UPDATE TO '0.6.0'" to load this file. \quit

-- == reads: constant-memory get_type / get_many / snapshot ==

-- The events of a snapshot, written in C (src/reads.c) in constant memory:
-- the statement's snapshot for the offsets and every row, as before (the
-- offset computed once, an error 40001 if the snapshot is not exact), the
-- collections by type and the entities by key, both COLLATE "C", read in
-- index order when the primary key index holds the keys in that order and
-- through a tuplesort (which spills past work_mem) otherwise.
CREATE OR REPLACE FUNCTION state._snapshot(stream text) RETURNS SETOF jsonb
AS 'MODULE_PATHNAME', 'ds_snapshot_rows'
LANGUAGE C STABLE;

-- == changes: the log read in C, pruning under load ==

-- == txids: registration position, replicated horizon, WAL cost ==
