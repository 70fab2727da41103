-- durable_state 0.5.0 -> 0.6.0
--
-- Costs that stay flat as data grows, and txid states that never move back.
-- Each section below belongs to one change; keep them apart.

\echo Use "ALTER EXTENSION durable_state UPDATE TO '0.6.0'" to load this file. \quit

-- == reads: constant-memory get_type / get_many / snapshot ==

-- == changes: the log read in C, pruning under load ==

-- == txids: registration position, replicated horizon, WAL cost ==
