-- durable_state 0.6.0 -> 0.7.0
--
-- put in C, the gateway's roles, text ingest at COPY speed, every JSON
-- Schema draft.  Each section below belongs to one change; keep them apart.

\echo Use "ALTER EXTENSION durable_state UPDATE TO '0.7.0'" to load this file. \quit

-- == kv: put in C ==

-- state.put is written in C (src/kv.c): the same checks, key lock and
-- version check, upsert event, offset and TTL, without the PL/pgSQL call,
-- its SET clause and the SPI round to state.apply.  It runs as the caller
-- and looks up nothing by name, so it needs no pinned search_path.
CREATE OR REPLACE FUNCTION state.put(type text, key text, value jsonb, ttl interval DEFAULT NULL,
                          stream text DEFAULT 'default', expected_version bigint DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'ds_put'
LANGUAGE C VOLATILE;

-- state.increment likewise (src/kv.c): the entity's key lock, its value
-- read under a snapshot taken after the lock, the member added to, one
-- upsert; the same errors.
CREATE OR REPLACE FUNCTION state.increment(type text, key text, member text, by numeric DEFAULT 1,
                                stream text DEFAULT 'default')
RETURNS numeric
AS 'MODULE_PATHNAME', 'ds_increment'
LANGUAGE C VOLATILE;

-- == gateway ==

-- == ingest: JSON text straight to rows, COPY ==

-- == schema: drafts ==

-- "$schema" now selects draft-04, draft-06, draft-07, 2019-09 or 2020-12,
-- and one that names none of them is refused (22023) where it used to be
-- read as 2020-12 (draft-04 and draft-06 as draft-07).  A collection whose
-- schema says so would refuse every write from now on: name it, so that
-- its schema can be fixed with state.alter_collection(name, stream,
-- schema => ...).  (Nothing to do for a new installation.)
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT cc.name, cc.stream, cc.schema FROM state.collections cc
              WHERE cc.schema IS NOT NULL LOOP
        BEGIN
            PERFORM state.json_schema_validate(c.schema, 'null'::jsonb);
        EXCEPTION WHEN invalid_parameter_value THEN
            IF SQLERRM LIKE 'unsupported JSON Schema draft%' THEN
                RAISE WARNING 'durable_state: the schema of collection "%" (stream "%") names no supported draft: %',
                    c.name, c.stream, SQLERRM
                    USING HINT = 'Give it a supported "$schema" (or none, for 2020-12) with state.alter_collection.';
            END IF;
        END;
    END LOOP;
END
$$;

-- == schema: formats ==
