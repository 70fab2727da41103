-- durable_state 0.6.0 -> 0.7.0
--
-- put in C, the gateway's roles, text ingest at COPY speed, every JSON
-- Schema draft.  Each section below belongs to one change; keep them apart.

\echo Use "ALTER EXTENSION durable_state UPDATE TO '0.7.0'" to load this file. \quit

-- == kv: put in C ==

-- == gateway ==

-- == ingest: JSON text straight to rows, COPY ==

-- COPY state.ingest FROM STDIN WITH (stream '...', source_offset '...',
-- batch_events N) streams NDJSON events into the engine (src/ingest.c: a
-- ProcessUtility hook reads the COPY and applies the lines in batches).
-- The table never holds a row: the hook takes the COPY over, and the
-- trigger refuses any row that reaches it (an INSERT, or a COPY in a
-- session that has not loaded the library yet).  INSERT on it is the
-- privilege to COPY into it.
CREATE TABLE state.ingest (line text);
COMMENT ON TABLE state.ingest IS
    'COPY state.ingest FROM STDIN WITH (stream ''name'', source_offset ''...'', batch_events N): NDJSON events into the engine; never holds rows';

CREATE FUNCTION state._ingest_refuse() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    RAISE EXCEPTION 'state.ingest holds no rows'
        USING ERRCODE = 'feature_not_supported',
              DETAIL = 'COPY state.ingest FROM STDIN streams NDJSON events into durable_state; this COPY or INSERT did not go through it.',
              HINT = 'Load durable_state before the COPY (shared_preload_libraries, session_preload_libraries, or LOAD ''durable_state''), and use COPY ... FROM STDIN.';
END
$$;
CREATE TRIGGER ingest_refuse BEFORE INSERT ON state.ingest
    FOR EACH ROW EXECUTE FUNCTION state._ingest_refuse();

REVOKE ALL ON state.ingest FROM PUBLIC;
GRANT INSERT ON state.ingest TO state_writer;

-- == schema: drafts ==

-- == schema: formats ==
