-- durable_state 0.5.0 -> 0.6.0
--
-- Costs that stay flat as data grows, and txid states that never move back.
-- Each section below belongs to one change; keep them apart.

\echo Use "ALTER EXTENSION durable_state UPDATE TO '0.6.0'" to load this file. \quit

-- == reads: constant-memory get_type / get_many / snapshot ==

-- == changes: the log read in C, pruning under load ==

-- == txids: registration position, replicated horizon, WAL cost ==

-- The transaction that wrote the row: whether a txid is replicated is
-- decided by it (src/horizon.c), so that the answer never moves back once
-- the in-memory ring of recent commits has forgotten the txid or the
-- server restarted.  NULL in rows written before 0.6.0.
ALTER TABLE state._txids ADD COLUMN xid xid8;
COMMENT ON COLUMN state._txids.xid IS
    'The top-level transaction that committed these txids (NULL: written before 0.6.0).';
