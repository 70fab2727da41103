-- durable_state 0.6.0 -> 0.7.0
--
-- put in C, the gateway's roles, text ingest at COPY speed, every JSON
-- Schema draft.  Each section below belongs to one change; keep them apart.

\echo Use "ALTER EXTENSION durable_state UPDATE TO '0.7.0'" to load this file. \quit

-- == kv: put in C ==

-- == gateway ==

-- == ingest: JSON text straight to rows, COPY ==

-- == schema: drafts ==

-- == schema: formats ==
