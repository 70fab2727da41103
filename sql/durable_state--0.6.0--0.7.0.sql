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

-- == schema: formats ==
