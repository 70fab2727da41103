-- durable_state 0.7.0 -> 0.8.0
--
-- state.remove in C.  Each section below belongs to one change; keep them
-- apart.

\echo Use "ALTER EXTENSION durable_state UPDATE TO '0.8.0'" to load this file. \quit

-- == kv: remove in C ==

-- state.remove is written in C (src/kv.c), beside state.put: it takes the
-- entity's key lock, reads the entity under a snapshot taken after it
-- (READ COMMITTED), and logs a delete only if the entity is there.  Of two
-- concurrent removes of one entity exactly one returns true (the PL/pgSQL
-- version read without the lock: both could return true, and it needed an
-- EXCEPTION block, a subtransaction per call, for a strict collection).
-- It runs as the caller and looks up nothing by name, so it needs no
-- pinned search_path.
CREATE OR REPLACE FUNCTION state.remove(type text, key text, stream text DEFAULT 'default')
RETURNS boolean
AS 'MODULE_PATHNAME', 'ds_remove'
LANGUAGE C VOLATILE;
