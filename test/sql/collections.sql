-- collections: state.create_collection / state.drop_collection / state.collections
CREATE EXTENSION IF NOT EXISTS durable_state;
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = notice;
SET timezone = 'UTC';

-- The shape of a table: schema, then "column type [not null] [pk] [default]".
CREATE FUNCTION pg_temp.describe(rel regclass) RETURNS TABLE (col text)
LANGUAGE sql AS $$
    SELECT 'schema ' || n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = rel
    UNION ALL
    SELECT * FROM (
        SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
               || CASE WHEN EXISTS (SELECT 1 FROM pg_index i
                                     WHERE i.indrelid = rel AND i.indisprimary
                                       AND a.attnum = ANY (i.indkey)) THEN ' pk' ELSE '' END
          FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum) x
$$;

-- The collections this file created (created_at is left out: it varies).
CREATE VIEW pg_temp.my_collections AS
SELECT name, type, stream, table_name::text, primary_key, kind, mode, allow_extra,
       check_old_value, schema IS NOT NULL AS has_schema
  FROM state.collections
 WHERE stream LIKE 'coll%'
 ORDER BY stream COLLATE "C", name COLLATE "C";

-- ---------------------------------------------------------------------------
-- document collections
-- ---------------------------------------------------------------------------
-- no schema: (key text primary key, value jsonb); type defaults to the name
SELECT state.create_collection('coll_docs', stream => 'coll');
SELECT * FROM pg_temp.describe('coll_docs');
-- a non-object schema also makes a document collection
SELECT state.create_collection('coll_strings', schema => '{"type": "string"}', stream => 'coll');
SELECT state.create_collection('coll_any', schema => 'true', stream => 'coll',
                               mode => 'lenient', check_old_value => true);
SELECT * FROM pg_temp.describe('coll_any');
-- an object schema without properties is still a document collection
SELECT state.create_collection('coll_objects', schema => '{"type": "object"}', stream => 'coll');
-- type differs from the name
SELECT state.create_collection('coll_people', type => 'person', stream => 'coll');
SELECT * FROM state.apply('{"type": "person", "key": "p1", "value": {"name": "Ann"},
                            "headers": {"operation": "insert"}}', 'coll');
SELECT key, value FROM coll_people;
SELECT state.get('person', 'p1', 'coll');

-- ---------------------------------------------------------------------------
-- typed, generated collections
-- ---------------------------------------------------------------------------
SELECT state.create_collection('coll_typed', stream => 'coll', schema => $${
    "type": "object",
    "properties": {
        "id":      {"type": "string"},
        "name":    {"type": "string"},
        "age":     {"type": "integer"},
        "score":   {"type": "number"},
        "active":  {"type": "boolean"},
        "tags":    {"type": "array"},
        "meta":    {"type": "object"},
        "born":    {"type": "string", "format": "date-time"},
        "uid":     {"type": "string", "format": "uuid"},
        "either":  {"type": ["string", "null"]},
        "untyped": {}
    },
    "required": ["name", "age"]
}$$);
SELECT * FROM pg_temp.describe('coll_typed');
-- the primary-key member need not be a property: it is added as a text key
SELECT state.create_collection('coll_sku', stream => 'coll', primary_key => 'sku',
    schema => '{"type": "object", "properties": {"qty": {"type": "integer"}}}');
SELECT * FROM pg_temp.describe('coll_sku');
-- an integer primary key property
SELECT state.create_collection('coll_intkey', stream => 'coll',
    schema => '{"type": "object", "properties": {"id": {"type": "integer"}, "v": {"type": "string"}}, "required": ["id"]}');
SELECT * FROM pg_temp.describe('coll_intkey');
SELECT * FROM state.apply('{"type": "coll_intkey", "key": "42", "value": {"v": "x"},
                            "headers": {"operation": "insert"}}', 'coll');
SELECT * FROM state.get_type('coll_intkey', 'coll');
-- empty properties: only the key column
SELECT state.create_collection('coll_empty', stream => 'coll',
    schema => '{"type": "object", "properties": {}}');
SELECT * FROM pg_temp.describe('coll_empty');

-- ---------------------------------------------------------------------------
-- typed, adopted tables
-- ---------------------------------------------------------------------------
CREATE TABLE coll_adopt (id text PRIMARY KEY, n int NOT NULL DEFAULT 0, note text);
SELECT state.create_collection('coll_adopt', table_name => 'coll_adopt', stream => 'coll',
                               allow_extra => true);
-- the adopted table is left as it was
SELECT * FROM pg_temp.describe('coll_adopt');
-- a key column with another name
CREATE TABLE coll_adopt_code (code text PRIMARY KEY, label text);
SELECT state.create_collection('coll_codes', table_name => 'coll_adopt_code',
                               primary_key => 'code', stream => 'coll');
SELECT * FROM state.apply('{"type": "coll_codes", "key": "c1", "value": {"label": "one"},
                            "headers": {"operation": "insert"}}', 'coll');
SELECT * FROM coll_adopt_code;
SELECT state.get('coll_codes', 'c1', 'coll');
-- an adopted table in another schema
CREATE SCHEMA coll_other;
CREATE TABLE coll_other.items (id bigint PRIMARY KEY, name text);
SELECT state.create_collection('coll_items', table_name => 'coll_other.items', stream => 'coll');

-- ---------------------------------------------------------------------------
-- refusals
-- ---------------------------------------------------------------------------
-- the same type twice in one stream
SELECT t.expect_error_verbose($$SELECT state.create_collection('coll_docs2', type => 'coll_docs', stream => 'coll')$$);
SELECT t.expect_error($$SELECT state.create_collection('coll_people2', type => 'person', stream => 'coll')$$);
-- the same name twice in one stream (with another type)
SELECT t.expect_error($$SELECT state.create_collection('coll_docs', type => 'other', stream => 'coll')$$);
-- the table of a new document/generated collection must not exist yet
CREATE TABLE coll_taken (id text PRIMARY KEY);
SELECT t.expect_error_verbose($$SELECT state.create_collection('coll_taken', stream => 'coll')$$);
SELECT t.expect_error($$SELECT state.create_collection('coll_taken', stream => 'coll', schema => '{"type":"object","properties":{"a":{"type":"string"}}}')$$);
-- adopted: no column for the primary key
CREATE TABLE coll_nokeycol (code text PRIMARY KEY, v text);
SELECT t.expect_error_verbose($$SELECT state.create_collection('coll_nokeycol', table_name => 'coll_nokeycol', stream => 'coll')$$);
-- adopted: the primary key is on another column
CREATE TABLE coll_otherpk (id text UNIQUE, code text PRIMARY KEY);
SELECT t.expect_error_verbose($$SELECT state.create_collection('coll_otherpk', table_name => 'coll_otherpk', stream => 'coll')$$);
-- adopted: no primary key at all (a unique index is not enough)
CREATE TABLE coll_nopk (id text UNIQUE NOT NULL, v text);
SELECT t.expect_error_verbose($$SELECT state.create_collection('coll_nopk', table_name => 'coll_nopk', stream => 'coll')$$);
-- adopted: composite primary key
CREATE TABLE coll_composite (id text, part int, PRIMARY KEY (id, part));
SELECT t.expect_error_verbose($$SELECT state.create_collection('coll_composite', table_name => 'coll_composite', stream => 'coll')$$);
-- not an ordinary table: a view, a materialized view, a partitioned table
CREATE VIEW coll_view AS SELECT * FROM coll_adopt;
SELECT t.expect_error_verbose($$SELECT state.create_collection('coll_view', table_name => 'coll_view', stream => 'coll')$$);
CREATE MATERIALIZED VIEW coll_matview AS SELECT * FROM coll_adopt;
SELECT t.expect_error($$SELECT state.create_collection('coll_matview', table_name => 'coll_matview', stream => 'coll')$$);
CREATE TABLE coll_parted (id text PRIMARY KEY) PARTITION BY LIST (id);
SELECT t.expect_error($$SELECT state.create_collection('coll_parted', table_name => 'coll_parted', stream => 'coll')$$);
-- a table that does not exist (regclass input)
SELECT t.expect_error($$SELECT state.create_collection('coll_ghost', table_name => 'coll_no_such_table', stream => 'coll')$$);
-- invalid arguments
SELECT t.expect_error_verbose($$SELECT state.create_collection('coll_mode', mode => 'sloppy', stream => 'coll')$$);
SELECT t.expect_error($$SELECT state.create_collection('coll_mode', mode => 'STRICT', stream => 'coll')$$);
SELECT t.expect_error($$SELECT state.create_collection('coll_mode', mode => NULL, stream => 'coll')$$);
SELECT t.expect_error($$SELECT state.create_collection('', stream => 'coll')$$);
SELECT t.expect_error($$SELECT state.create_collection(NULL, stream => 'coll')$$);
SELECT t.expect_error($$SELECT state.create_collection('coll_x', type => '', stream => 'coll')$$);
SELECT t.expect_error($$SELECT state.create_collection('coll_x', primary_key => '', stream => 'coll')$$);
SELECT t.expect_error($$SELECT state.create_collection('coll_x', primary_key => NULL, stream => 'coll')$$);
SELECT t.expect_error($$SELECT state.create_collection('coll_x', schema => '5', stream => 'coll')$$);
SELECT t.expect_error($$SELECT state.create_collection('coll_x', schema => '[]', stream => 'coll')$$);
SELECT t.expect_error($$SELECT state.create_collection('coll_x', stream => '')$$);
SELECT t.expect_error($$SELECT state.create_collection('coll_x', stream => NULL)$$);
-- none of the refusals left a collection or a table behind
SELECT count(*) AS leftovers FROM state.collections
 WHERE name IN ('coll_docs2', 'coll_people2', 'coll_taken', 'coll_nokeycol', 'coll_otherpk',
                'coll_nopk', 'coll_composite', 'coll_view', 'coll_matview', 'coll_parted',
                'coll_ghost', 'coll_mode', 'coll_x', '');
SELECT to_regclass('coll_mode') AS mode_table, to_regclass('coll_x') AS x_table;

-- ---------------------------------------------------------------------------
-- the same type in two streams: two independent collections
-- ---------------------------------------------------------------------------
SELECT state.create_collection('coll_task_a', type => 'task', stream => 'coll_a');
SELECT state.create_collection('coll_task_b', type => 'task', stream => 'coll_b');
SELECT * FROM state.apply('{"type": "task", "key": "t1", "value": "in a", "headers": {"operation": "insert"}}', 'coll_a');
SELECT * FROM state.apply('{"type": "task", "key": "t1", "value": "in b", "headers": {"operation": "insert"}}', 'coll_b');
SELECT state.get('task', 't1', 'coll_a') AS a, state.get('task', 't1', 'coll_b') AS b;
SELECT (SELECT count(*) FROM coll_task_a) AS rows_a, (SELECT count(*) FROM coll_task_b) AS rows_b;
-- the type is not registered in the default stream
SELECT t.expect_error($$SELECT state.get('task', 't1', 'coll')$$);

-- ---------------------------------------------------------------------------
-- state.collections
-- ---------------------------------------------------------------------------
SELECT * FROM pg_temp.my_collections;
SELECT name, schema FROM state.collections
 WHERE stream = 'coll' AND name IN ('coll_any', 'coll_sku', 'coll_strings') ORDER BY name;
SELECT stream, collections FROM state.streams WHERE stream LIKE 'coll%' ORDER BY stream;

-- ---------------------------------------------------------------------------
-- tables are created in current_schema()
-- ---------------------------------------------------------------------------
CREATE SCHEMA coll_here;
SET search_path = coll_here, public;
SELECT current_schema();
SELECT state.create_collection('coll_here_docs', stream => 'coll');
SELECT state.create_collection('coll_here_typed', stream => 'coll',
    schema => '{"type": "object", "properties": {"v": {"type": "string"}}}');
SELECT c.relname, c.relnamespace::regnamespace AS schema
  FROM pg_class c WHERE c.relname LIKE 'coll_here_%' AND c.relkind = 'r' ORDER BY 1;
-- a name that exists in another schema of the path is no conflict
SELECT state.create_collection('coll_docs', type => 'coll_docs_here', stream => 'coll_here');
SELECT table_name::regclass::oid = 'coll_here.coll_docs'::regclass::oid AS in_coll_here
  FROM state.collections WHERE stream = 'coll_here';
SELECT * FROM state.apply('{"type": "coll_here_typed", "key": "h1", "value": {"v": "here"},
                            "headers": {"operation": "insert"}}', 'coll');
SELECT * FROM coll_here.coll_here_typed;
RESET search_path;
-- an empty search_path: there is no schema to create the table in
SET search_path = '';
SELECT t.expect_error_verbose($$SELECT state.create_collection('coll_nowhere', stream => 'coll')$$);
RESET search_path;

-- ---------------------------------------------------------------------------
-- hostile names
-- ---------------------------------------------------------------------------
SELECT state.create_collection($$coll 'quoted' "name"; DROP TABLE coll_adopt; --$$, stream => 'coll hostile');
SELECT state.create_collection('Coll_MixedCase', stream => 'coll hostile');
SELECT state.create_collection('coll ünïcødé ✓ 名前', stream => 'coll hostile');
SELECT state.create_collection('coll.with.dots', stream => 'coll hostile');
SELECT state.create_collection('coll_' || repeat('x', 70), stream => 'coll hostile');
SELECT state.create_collection('coll typed; "x"', stream => 'coll hostile', primary_key => 'the "id"',
    schema => $${"type": "object", "properties": {"a b'c": {"type": "string"}, "Ünï \"q\"": {"type": "integer"}, "the \"id\"": {"type": "string"}}}$$);
SELECT * FROM pg_temp.describe('"coll typed; ""x"""');
CREATE TABLE "coll Adopted; ""t""" ("Key ""k""" text PRIMARY KEY, "Val;ue" jsonb);
SELECT state.create_collection($$coll adopted 'a'$$, table_name => '"coll Adopted; ""t"""',
                               primary_key => 'Key "k"', stream => $$coll hostile 'stream'; --$$);
SELECT name, type, stream, table_name::text, primary_key, kind
  FROM state.collections WHERE stream LIKE 'coll hostile%' ORDER BY name COLLATE "C";
-- the event type is the collection name, byte for byte
SELECT * FROM state.apply(jsonb_build_array(
    jsonb_build_object('type', $$coll 'quoted' "name"; DROP TABLE coll_adopt; --$$, 'key', $$k'; --"$$,
                       'value', 'q', 'headers', jsonb_build_object('operation', 'insert')),
    jsonb_build_object('type', 'Coll_MixedCase', 'key', 'K', 'value', 'm',
                       'headers', jsonb_build_object('operation', 'insert')),
    jsonb_build_object('type', 'coll ünïcødé ✓ 名前', 'key', 'ключ', 'value', 'u',
                       'headers', jsonb_build_object('operation', 'insert')),
    jsonb_build_object('type', 'coll.with.dots', 'key', 'a.b', 'value', 'd',
                       'headers', jsonb_build_object('operation', 'insert')),
    jsonb_build_object('type', 'coll_' || repeat('x', 70), 'key', 'long', 'value', 'l',
                       'headers', jsonb_build_object('operation', 'insert')),
    jsonb_build_object('type', 'coll typed; "x"', 'key', 'T;1',
                       'value', jsonb_build_object('a b''c', 's', 'Ünï "q"', 7),
                       'headers', jsonb_build_object('operation', 'insert'))),
    'coll hostile');
SELECT * FROM state.apply(jsonb_build_object('type', $$coll adopted 'a'$$, 'key', 'x"y',
    'value', jsonb_build_object('Val;ue', jsonb_build_object('n', 1)),
    'headers', jsonb_build_object('operation', 'insert')), $$coll hostile 'stream'; --$$);
SELECT state.get($$coll 'quoted' "name"; DROP TABLE coll_adopt; --$$, $$k'; --"$$, 'coll hostile') AS quoted,
       state.get('Coll_MixedCase', 'K', 'coll hostile') AS mixed,
       state.get('coll ünïcødé ✓ 名前', 'ключ', 'coll hostile') AS unicode,
       state.get('coll.with.dots', 'a.b', 'coll hostile') AS dots,
       state.get('coll_' || repeat('x', 70), 'long', 'coll hostile') AS long;
SELECT state.get('coll typed; "x"', 'T;1', 'coll hostile');
SELECT * FROM state.get_type($$coll adopted 'a'$$, $$coll hostile 'stream'; --$$);
SELECT * FROM "coll Adopted; ""t""";
-- coll_adopt survived the name that tried to drop it
SELECT to_regclass('coll_adopt') IS NOT NULL AS coll_adopt_exists;
-- type names are case-sensitive
SELECT t.expect_error($$SELECT * FROM state.apply('{"type": "coll_mixedcase", "key": "K", "value": 1, "headers": {"operation": "insert"}}', 'coll hostile')$$);

-- ---------------------------------------------------------------------------
-- drop_collection
-- ---------------------------------------------------------------------------
-- without drop_table the table stays, with its rows
SELECT state.drop_collection('coll_people', 'coll');
SELECT to_regclass('coll_people') IS NOT NULL AS table_kept, (SELECT count(*) FROM coll_people) AS rows_kept;
SELECT t.expect_error($$SELECT state.get('person', 'p1', 'coll')$$);
SELECT t.expect_error($$SELECT * FROM state.apply('{"type": "person", "key": "p2", "value": 1, "headers": {"operation": "insert"}}', 'coll')$$);
-- the name and the type are free again; the old table can be adopted back
SELECT t.expect_error($$SELECT state.create_collection('coll_people', type => 'person', stream => 'coll')$$);
CREATE TABLE coll_people_v2 (key text PRIMARY KEY, value jsonb NOT NULL);
SELECT state.create_collection('coll_people2', type => 'person', stream => 'coll', table_name => 'coll_people_v2',
                               primary_key => 'key', allow_extra => true);
SELECT state.drop_collection('coll_people2', 'coll', drop_table => true);
SELECT to_regclass('coll_people_v2') AS dropped;
DROP TABLE coll_people;
-- with drop_table => true the table goes too
SELECT state.drop_collection('coll_typed', 'coll', drop_table => true);
SELECT to_regclass('coll_typed') AS dropped;
-- unknown collection, or known collection in another stream
SELECT t.expect_error($$SELECT state.drop_collection('coll_typed', 'coll')$$);
SELECT t.expect_error($$SELECT state.drop_collection('coll_docs', 'coll_a')$$);
SELECT t.expect_error($$SELECT state.drop_collection('coll_docs')$$);
SELECT t.expect_error($$SELECT state.drop_collection('coll_docs', 'coll_no_such_stream')$$);
-- hostile names drop cleanly
SELECT state.drop_collection($$coll 'quoted' "name"; DROP TABLE coll_adopt; --$$, 'coll hostile', true);
SELECT state.drop_collection('Coll_MixedCase', 'coll hostile', true);
SELECT state.drop_collection('coll ünïcødé ✓ 名前', 'coll hostile', true);
SELECT state.drop_collection('coll.with.dots', 'coll hostile', true);
SELECT state.drop_collection('coll_' || repeat('x', 70), 'coll hostile', true);
SELECT state.drop_collection('coll typed; "x"', 'coll hostile', true);
SELECT state.drop_collection($$coll adopted 'a'$$, $$coll hostile 'stream'; --$$, true);
SELECT count(*) AS hostile_tables_left FROM pg_class
 WHERE relname IN ('coll ''quoted'' "name"; DROP TABLE coll_adopt; --', 'Coll_MixedCase',
                   'coll ünïcødé ✓ 名前', 'coll.with.dots', 'coll typed; "x"', 'coll Adopted; "t"')
    OR relname LIKE 'coll_xxxxxxxx%';
SELECT to_regclass('coll_adopt') IS NOT NULL AS coll_adopt_exists;

-- ---------------------------------------------------------------------------
-- dropping a collection's table drops the collection with it (an event
-- trigger keeps the catalog consistent); its events stay in the log
-- ---------------------------------------------------------------------------
SELECT state.create_collection('coll_dropme', stream => 'coll_dz');
SELECT applied FROM state.apply('{"type": "coll_dropme", "key": "a", "value": 1, "headers": {"operation": "insert"}}', 'coll_dz');
DROP TABLE coll_dropme;
SELECT count(*) AS dropme_left FROM state.collections WHERE stream = 'coll_dz';
SELECT t.expect_error($$SELECT * FROM state.apply('{"type": "coll_dropme", "key": "b", "value": 2, "headers": {"operation": "insert"}}', 'coll_dz')$$);
SELECT t.expect_error($$SELECT state.drop_collection('coll_dropme', 'coll_dz', true)$$);
SELECT "offset", event->>'key' AS key FROM state.changes('coll_dz');
-- a new collection can take the type again
SELECT state.create_collection('coll_dropme', stream => 'coll_dz');
SELECT state.get('coll_dropme', 'a', 'coll_dz');
SELECT state.drop_collection('coll_dropme', 'coll_dz', drop_table => true);

-- ---------------------------------------------------------------------------
-- clean up
-- ---------------------------------------------------------------------------
DROP MATERIALIZED VIEW coll_matview;
DROP VIEW coll_view;
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT name, stream FROM state.collections WHERE stream LIKE 'coll%' LOOP
        PERFORM state.drop_collection(c.name, c.stream, drop_table => true);
    END LOOP;
END
$$;
SELECT count(*) AS collections_left FROM state.collections WHERE stream LIKE 'coll%';
DROP TABLE coll_taken, coll_nokeycol, coll_otherpk, coll_nopk, coll_composite, coll_parted;
DROP SCHEMA coll_here, coll_other;
