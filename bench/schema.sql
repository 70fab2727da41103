-- bench/schema.sql: what JSON Schema checks cost.  Run by bench/run.sh (or
-- alone: psql -f bench/schema.sql in a database with durable_state).
--
-- A realistic 8-property schema with formats (annotations) and a pattern.
--   * apply without a schema: an adopted table of the same shape (and the
--     same extra column)
--   * apply with the schema: the collection generated from it
--   * the C validator alone: state.json_schema_validate over the values, also
--     with the formats asserted and with an alternation in the pattern
--   * a plpgsql validator a user would write (the keywords this schema uses)
--   * the scan both validators run over (reported so the ratio can be given
--     net of it: the validators' own cost)
-- Best of 3 runs each; prints the overhead of checking and the C/plpgsql ratio.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS durable_state;
-- leftovers of an interrupted run
SELECT state.drop_collection(name, stream, drop_table => true)
  FROM state.collections WHERE stream IN ('sb_checked', 'sb_plain') \g /dev/null
DROP SCHEMA IF EXISTS bench_schema CASCADE;
CREATE SCHEMA bench_schema;
SET search_path = bench_schema, public;

CREATE TABLE sb_params AS SELECT $${
  "type": "object",
  "required": ["id", "email", "name", "created"],
  "properties": {
    "id":      {"type": "string", "format": "uuid"},
    "email":   {"type": "string", "format": "email", "maxLength": 254},
    "name":    {"type": "string", "minLength": 1, "maxLength": 100},
    "handle":  {"type": "string", "pattern": "^@[a-z0-9_]{2,30}$"},
    "age":     {"type": "integer", "minimum": 0, "maximum": 150},
    "score":   {"type": "number", "minimum": 0},
    "created": {"type": "string", "format": "date-time"},
    "tags":    {"type": "array", "items": {"type": "string"}, "uniqueItems": true, "maxItems": 10}
  },
  "additionalProperties": false}$$::jsonb AS schema, 100000 AS n;

SELECT state.create_collection('sb_users', 'sb_user', stream => 'sb_checked', schema => schema,
                               mode => 'lenient') FROM sb_params \g /dev/null
CREATE TABLE sb_plain (LIKE sb_users INCLUDING ALL);
-- the same storage work (the extra column keeps the exact timestamp text)
SELECT state.create_collection('sb_plain', 'sb_plain', table_name => 'bench_schema.sb_plain',
                               stream => 'sb_plain', mode => 'lenient',
                               extra_column => '_extra') \g /dev/null

CREATE TABLE sb_input AS
SELECT jsonb_agg(jsonb_build_object('type', 'sb_user', 'key', v->>'id', 'value', v,
                                    'headers', jsonb_build_object('operation', 'upsert'))) AS checked,
       jsonb_agg(jsonb_build_object('type', 'sb_plain', 'key', v->>'id', 'value', v,
                                    'headers', jsonb_build_object('operation', 'upsert'))) AS plain,
       array_agg(v) AS vals
  FROM (SELECT jsonb_build_object('id', gen_random_uuid()::text,
                                  'email', 'user' || g || '@example.com',
                                  'name', 'User ' || g,
                                  'handle', '@user_' || g,
                                  'age', g % 100,
                                  'score', g * 1.5,
                                  'created', '2025-01-31T12:00:00.000Z',
                                  'tags', jsonb_build_array('t' || (g % 7), 'u' || (g % 11))) AS v
          FROM generate_series(1, (SELECT n FROM sb_params)) g) s;

CREATE TABLE sb_vals AS SELECT unnest(vals) AS v FROM sb_input;

-- The plpgsql baseline: a recursive validator for the keywords above.
CREATE FUNCTION pl_validate(s jsonb, v jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    t text := jsonb_typeof(v);
    k text;
    sub jsonb;
BEGIN
    IF s ? 'type' THEN
        IF s->>'type' = 'integer' THEN
            IF t <> 'number' OR (v::text)::numeric <> trunc((v::text)::numeric) THEN RETURN false; END IF;
        ELSIF s->>'type' <> t THEN
            RETURN false;
        END IF;
    END IF;
    IF t = 'object' THEN
        IF s ? 'required' THEN
            FOR k IN SELECT jsonb_array_elements_text(s->'required') LOOP
                IF NOT v ? k THEN RETURN false; END IF;
            END LOOP;
        END IF;
        FOR k, sub IN SELECT key, value FROM jsonb_each(v) LOOP
            IF s->'properties' ? k THEN
                IF NOT pl_validate(s->'properties'->k, sub) THEN RETURN false; END IF;
            ELSIF s->'additionalProperties' = 'false' THEN
                RETURN false;
            END IF;
        END LOOP;
    ELSIF t = 'string' THEN
        IF s ? 'minLength' AND char_length(v #>> '{}') < (s->>'minLength')::int THEN RETURN false; END IF;
        IF s ? 'maxLength' AND char_length(v #>> '{}') > (s->>'maxLength')::int THEN RETURN false; END IF;
        IF s ? 'pattern' AND NOT (v #>> '{}') ~ (s->>'pattern') THEN RETURN false; END IF;
    ELSIF t = 'number' THEN
        IF s ? 'minimum' AND (v::text)::numeric < (s->>'minimum')::numeric THEN RETURN false; END IF;
        IF s ? 'maximum' AND (v::text)::numeric > (s->>'maximum')::numeric THEN RETURN false; END IF;
    ELSIF t = 'array' THEN
        IF s ? 'maxItems' AND jsonb_array_length(v) > (s->>'maxItems')::int THEN RETURN false; END IF;
        IF s->'uniqueItems' = 'true' AND
           (SELECT count(DISTINCT e) <> count(*) FROM jsonb_array_elements(v) e) THEN
            RETURN false;
        END IF;
        IF s ? 'items' THEN
            FOR sub IN SELECT jsonb_array_elements(v) LOOP
                IF NOT pl_validate(s->'items', sub) THEN RETURN false; END IF;
            END LOOP;
        END IF;
    END IF;
    RETURN true;
END
$$;

CREATE TABLE sb_results (method text, rep int, seconds float8);

CREATE FUNCTION sb_run(method text, rep int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz;
    ok bigint;
    inp sb_input;
    sch jsonb := (SELECT schema FROM sb_params);
BEGIN
    SELECT * INTO inp FROM sb_input;
    t0 := clock_timestamp();
    CASE method
    WHEN 'apply without schema' THEN
        PERFORM * FROM state.apply(inp.plain, 'sb_plain');
    WHEN 'apply with schema' THEN
        PERFORM * FROM state.apply(inp.checked, 'sb_checked');
    WHEN 'C validator' THEN
        SELECT count(*) FILTER (WHERE state.json_schema_validate(sch, v)) INTO ok FROM sb_vals;
        IF ok <> cardinality(inp.vals) THEN RAISE EXCEPTION 'C validator rejected % values', cardinality(inp.vals) - ok; END IF;
    WHEN 'C validator, formats asserted' THEN
        SELECT count(*) FILTER (WHERE state.json_schema_validate(sch, v, true)) INTO ok FROM sb_vals;
        IF ok <> cardinality(inp.vals) THEN RAISE EXCEPTION 'C validator rejected % values', cardinality(inp.vals) - ok; END IF;
    WHEN 'C validator, alternation pattern' THEN
        -- an alternation: the pattern shape that PostgreSQL's regex engine
        -- (before PCRE2) paid a large setup for on every match
        sch := jsonb_set(sch, '{properties,handle,pattern}', '"^@(user|admin|guest)_[a-z0-9_]{1,30}$"');
        SELECT count(*) FILTER (WHERE state.json_schema_validate(sch, v)) INTO ok FROM sb_vals;
        IF ok <> cardinality(inp.vals) THEN RAISE EXCEPTION 'C validator rejected % values', cardinality(inp.vals) - ok; END IF;
    WHEN 'plpgsql validator' THEN
        SELECT count(*) FILTER (WHERE pl_validate(sch, v)) INTO ok FROM sb_vals;
        IF ok <> cardinality(inp.vals) THEN RAISE EXCEPTION 'plpgsql validator rejected % values', cardinality(inp.vals) - ok; END IF;
    WHEN 'scan only' THEN
        -- the same scan and count, no validation: the harness both pay
        SELECT count(*) FILTER (WHERE v IS NOT NULL) INTO ok FROM sb_vals;
    END CASE;
    INSERT INTO sb_results VALUES (method, rep, extract(epoch FROM clock_timestamp() - t0));
END
$$;

-- each run in its own transaction, after a checkpoint: dirty buffers and
-- WAL of one run must not be paid for by the next
SELECT 'TRUNCATE bench_schema.sb_users, bench_schema.sb_plain' AS t, 'CHECKPOINT' AS c,
       format('SELECT bench_schema.sb_run(%L, %s)', m, r) AS run
  FROM generate_series(1, 3) r,
       unnest(ARRAY['apply without schema', 'apply with schema', 'scan only', 'C validator',
                     'C validator, formats asserted', 'C validator, alternation pattern',
                     'plpgsql validator']) m
\gexec

\echo
\echo 'JSON Schema checks (8-property schema, formats as annotations, a pattern; best of 3)'
SELECT method, (SELECT n FROM sb_params) AS n, round(min(seconds)::numeric, 3) AS seconds,
       round((SELECT n FROM sb_params) / min(seconds)) AS per_second
  FROM sb_results GROUP BY method ORDER BY min(seconds);
WITH b AS (SELECT method, min(seconds) AS s FROM sb_results GROUP BY method)
SELECT round((100 * ((SELECT s FROM b WHERE method = 'apply with schema') /
                     (SELECT s FROM b WHERE method = 'apply without schema') - 1))::numeric, 1)::text || '%'
           AS "overhead of checking on apply",
       round(((SELECT s FROM b WHERE method = 'plpgsql validator') /
              (SELECT s FROM b WHERE method = 'C validator'))::numeric, 1) AS "C validator / plpgsql",
       round((((SELECT s FROM b WHERE method = 'plpgsql validator') - (SELECT s FROM b WHERE method = 'scan only')) /
              ((SELECT s FROM b WHERE method = 'C validator') - (SELECT s FROM b WHERE method = 'scan only')))::numeric, 1)
           AS "same, net of the scan";

RESET search_path;
DO $$
BEGIN
    PERFORM state.drop_collection('sb_users', 'sb_checked', drop_table => true);
    PERFORM state.drop_collection('sb_plain', 'sb_plain', drop_table => true);
END
$$;
DROP SCHEMA bench_schema CASCADE;
