-- durable_state 0.2.0 -> 0.3.0
--
-- Row-level security holds through state.apply, get, get_many,
-- get_versioned, get_type and snapshot (the library checks each row against
-- the caller's policies; src/rls.c).  A snapshot is therefore open to
-- roles whose policies filter the tables: it no longer demands the log's
-- read rule, only SELECT on each collection table (checked by get_type).
-- Its offsets, and the tails in state.streams, come from state._tail, which
-- now reads state.log past the log's policy (SECURITY DEFINER, reviewed:
-- one number per stream).

\echo Use "ALTER EXTENSION durable_state UPDATE TO '0.3.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION state.snapshot(stream text DEFAULT 'default') RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM state._stream_id(stream);   -- an unknown stream: a clear error
    RETURN QUERY SELECT * FROM state._snapshot(stream);
END
$$;

ALTER FUNCTION state._tail(integer) SECURITY DEFINER;
