-- durable_state 0.2.0 -> 0.3.0
--
-- state.log keeps row images of the events of tables with row-level
-- security enabled, so that roles under their policies can follow the log
-- through state.changes (filtered; src/rls.c).
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

ALTER TABLE state.log ADD COLUMN images jsonb[];
DO $$
BEGIN
    ALTER TABLE state.log ALTER COLUMN images SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    NULL;
END
$$;

-- The events after since that the caller may see, for a caller under the
-- row-level security of a collection of the stream (state.changes).
CREATE FUNCTION state._changes_filtered(stream text, since bigint, max_events integer)
RETURNS TABLE (seq bigint, event jsonb, verdict text)
AS 'MODULE_PATHNAME', 'ds_changes_filtered'
LANGUAGE C STABLE STRICT;

-- A role that may read the stream's log gets its events as they are.  A
-- role under the row-level security of a collection of the stream (with
-- SELECT on every collection table) gets the events of the rows its SELECT
-- policies let it see: an event whose row it sees after it; as an insert
-- (no old_value) if it could not see the row before; a delete when the row
-- left its view; none of the rest (offsets then have gaps).  Folding them
-- from a snapshot gives what state.get_type shows the role.
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
    RETURN QUERY
        SELECT state.format_offset(l.first_seq + e.ord - 1),
               jsonb_set(e.ev, '{headers,offset}',
                         to_jsonb(state.format_offset(l.first_seq + e.ord - 1)))
          FROM state.log l
         CROSS JOIN LATERAL unnest(l.events) WITH ORDINALITY AS e(ev, ord)
         WHERE l.stream_id = s.id AND l.last_seq > since_seq
           AND l.first_seq + e.ord - 1 > since_seq
         ORDER BY l.last_seq, e.ord
         LIMIT max_events;
END
$$;

